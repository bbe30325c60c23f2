//! The Services of the Vault Helm chart in HA raft mode: `<name>`, `<name>-active`,
//! `<name>-standby`, `<name>-internal` (headless) and `<name>-ui`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::config::{API_PORT, CLUSTER_PORT};
use crate::labels::Component;
use crate::manifest::{Manifest, metadata};
use crate::{RenderError, Scope};

pub(crate) fn render(scope: &Scope<'_>) -> Result<Vec<Manifest>, RenderError> {
    let names = &scope.names;
    let spec = &scope.cluster.spec;
    let active_label = scope.layout.registration_label("active");
    let service_type = spec.service.service_type.as_str();
    let mut out = vec![
        service(
            scope,
            ServiceShape {
                name: names.service(),
                service_type: Some(service_type),
                headless: false,
                extra_selector: None,
                extra_label: None,
                annotations: &spec.service.annotations,
                cluster_port: true,
            },
        )?,
        service(
            scope,
            ServiceShape {
                name: names.active_service(),
                service_type: Some(service_type),
                headless: false,
                extra_selector: Some((active_label.clone(), "true")),
                extra_label: Some((active_label.clone(), "true")),
                annotations: &spec.service.annotations,
                cluster_port: true,
            },
        )?,
        service(
            scope,
            ServiceShape {
                name: names.standby_service(),
                service_type: Some(service_type),
                headless: false,
                extra_selector: Some((active_label, "false")),
                extra_label: None,
                annotations: &spec.service.annotations,
                cluster_port: true,
            },
        )?,
        service(
            scope,
            ServiceShape {
                name: names.internal_service(),
                service_type: None,
                headless: true,
                extra_selector: None,
                extra_label: Some((scope.layout.registration_label("internal"), "true")),
                annotations: &BTreeMap::new(),
                cluster_port: true,
            },
        )?,
    ];
    if spec.ui.enabled {
        out.push(service(
            scope,
            ServiceShape {
                name: names.ui_service(),
                service_type: Some(spec.ui.service_type.as_str()),
                headless: false,
                extra_selector: None,
                extra_label: None,
                annotations: &spec.ui.annotations,
                cluster_port: false,
            },
        )?);
    }
    Ok(out)
}

struct ServiceShape<'a> {
    name: String,
    service_type: Option<&'a str>,
    headless: bool,
    extra_selector: Option<(String, &'a str)>,
    extra_label: Option<(String, &'a str)>,
    annotations: &'a BTreeMap<String, String>,
    cluster_port: bool,
}

fn service(scope: &Scope<'_>, shape: ServiceShape<'_>) -> Result<Manifest, RenderError> {
    let mut labels = scope.labels.object(Component::Server);
    if let Some((key, value)) = &shape.extra_label {
        labels.insert(key.clone(), (*value).to_owned());
    }
    let mut meta = metadata(scope, shape.name, labels);
    if !shape.annotations.is_empty() {
        meta.annotations = Some(shape.annotations.clone());
    }
    let mut selector = scope.labels.server_selector();
    if let Some((key, value)) = &shape.extra_selector {
        selector.insert(key.clone(), (*value).to_owned());
    }
    let mut ports = vec![port(scope.tls.scheme(), API_PORT)];
    if shape.cluster_port {
        ports.push(port("https-internal", CLUSTER_PORT));
    }
    let spec = ServiceSpec {
        type_: shape.service_type.map(str::to_owned),
        cluster_ip: shape.headless.then(|| "None".to_owned()),
        // As the charts do: pods are reachable before they are ready, because raft
        // joins and the operator need to reach sealed and uninitialized pods.
        publish_not_ready_addresses: Some(true),
        ports: Some(ports),
        selector: Some(selector),
        ..ServiceSpec::default()
    };
    Manifest::new(
        "v1",
        "Service",
        &meta,
        &Service {
            metadata: meta.clone(),
            spec: Some(spec),
            status: None,
        },
    )
}

fn port(name: &str, number: u16) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: i32::from(number),
        target_port: Some(IntOrString::Int(i32::from(number))),
        ..ServicePort::default()
    }
}
