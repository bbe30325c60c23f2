//! How the cluster is reached: TLS, the UI, the Services, the Ingress and monitoring.

use std::collections::BTreeSet;

use serde_json::Value;
use vaultkeeper_api::{ServiceType, TlsMode, VaultClusterSpec};

use super::config::ConfigFacts;
use super::{Mode, Reader, USERCONFIG_DIR, Why, is_true, string_map, to_text};

pub(super) fn tls(
    r: &mut Reader,
    spec: &mut VaultClusterSpec,
    enabled: bool,
    config: &ConfigFacts,
) {
    let volumes = match r.take("server.extraVolumes") {
        Some(Value::Array(volumes)) => volumes,
        _ => Vec::new(),
    };
    if config.listener_tls_disabled == Some(enabled) {
        r.left(
            "global.tlsDisable",
            Why::NeedsAction,
            "it disagrees with the listener's tls_disable in the server configuration; the \
             import follows global.tlsDisable",
        );
    }
    let mut tls_volume = None;
    if !enabled {
        spec.tls.mode = TlsMode::Disabled;
        r.notes.push(
            "spec.tls.mode is Disabled because global.tlsDisable is true (the chart's \
             default): tokens and unseal keys then cross the network in clear text; remove \
             spec.tls to have vaultkeeper run its own CA"
                .to_owned(),
        );
    } else {
        match tls_secret(config, &volumes) {
            Some((index, secret, files)) => {
                spec.tls.mode = TlsMode::Secret;
                spec.tls.secret_name = Some(secret.clone());
                tls_volume = Some(index);
                if files != ["tls.crt", "tls.key", "ca.crt"] {
                    r.left(
                        format!("server.extraVolumes[{index}]"),
                        Why::NeedsAction,
                        format!(
                            "the listener reads {} from the Secret {secret}; VaultCluster \
                             reads tls.crt, tls.key and ca.crt: add those keys to the Secret",
                            files.join(", ")
                        ),
                    );
                }
            }
            None => {
                spec.tls.mode = TlsMode::SelfSigned;
                r.notes.push(
                    "TLS is on but the listener's files are not in a Secret mounted through \
                     server.extraVolumes: vaultkeeper issues the certificate from its own CA \
                     (spec.tls.mode SelfSigned); set mode Secret or CertManager to use yours"
                        .to_owned(),
                );
            }
        }
    }
    for (index, volume) in volumes.iter().enumerate() {
        if Some(index) == tls_volume {
            continue;
        }
        let name = volume.get("name").map(to_text).unwrap_or_default();
        r.left(
            format!("server.extraVolumes[{index}]"),
            Why::NoField,
            format!("the {name:?} volume: VaultCluster mounts only the TLS and seal Secrets"),
        );
    }
}

/// The `server.extraVolumes` entry holding the listener's certificate files: its index,
/// the Secret's name and the file names (certificate, key, CA).
fn tls_secret(config: &ConfigFacts, volumes: &[Value]) -> Option<(usize, String, Vec<String>)> {
    let cert = config.cert_file.as_deref()?;
    let key = config.key_file.as_deref()?;
    let (dir, cert_name) = cert.rsplit_once('/')?;
    let (key_dir, key_name) = key.rsplit_once('/')?;
    let ca_name = match config.client_ca_file.as_deref() {
        Some(ca) => {
            let (ca_dir, ca_name) = ca.rsplit_once('/')?;
            (ca_dir == dir).then_some(ca_name)?
        }
        None => "ca.crt",
    };
    if key_dir != dir {
        return None;
    }
    volumes.iter().enumerate().find_map(|(index, volume)| {
        let kind = volume.get("type").map(to_text).unwrap_or_default();
        let name = volume.get("name").map(to_text).unwrap_or_default();
        let base = volume
            .get("path")
            .map(to_text)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| USERCONFIG_DIR.to_owned());
        // VaultCluster mounts the Secret where the chart's default path puts it.
        (kind == "secret" && base == USERCONFIG_DIR && dir == format!("{base}/{name}")).then(|| {
            (
                index,
                name,
                vec![
                    cert_name.to_owned(),
                    key_name.to_owned(),
                    ca_name.to_owned(),
                ],
            )
        })
    })
}

pub(super) fn ui_and_config(r: &mut Reader, spec: &mut VaultClusterSpec, config: ConfigFacts) {
    spec.ui.enabled = is_true(r.take("ui.enabled").as_ref());
    let mut extra = config.extra;
    // VaultCluster's ui.enabled also writes `ui` into the configuration; the chart keeps the
    // Service and the setting apart.
    let config_ui = config
        .ui
        .map(|v| matches!(v, Value::Bool(true)) || matches!(&v, Value::String(s) if s == "true"));
    if let Some(ui) = config_ui
        && ui != spec.ui.enabled
    {
        extra.insert("ui".to_owned(), Value::Bool(ui));
    }
    if !extra.is_empty() {
        spec.config = Some(extra);
    }
    if !spec.ui.enabled {
        r.consume("ui");
        return;
    }
    spec.ui.service_type = match service_type(r, "ui.serviceType") {
        Some(t) => t,
        None => ServiceType::ClusterIP,
    };
    if let Some(annotations) = string_map(r, "ui.annotations") {
        spec.ui.annotations = annotations;
    }
    for (path, detail) in [
        (
            "ui.activeVaultPodOnly",
            "the <name>-ui Service selects every server pod",
        ),
        (
            "ui.serviceNodePort",
            "the node port is assigned by Kubernetes",
        ),
        ("ui.externalPort", "the <name>-ui Service listens on 8200"),
        ("ui.targetPort", "the <name>-ui Service targets 8200"),
        (
            "ui.publishNotReadyAddresses",
            "the <name>-ui Service publishes not-ready addresses",
        ),
        ("ui.serviceIPFamilyPolicy", "no IP family settings"),
        ("ui.serviceIPFamilies", "no IP family settings"),
        ("ui.loadBalancerIP", "no load balancer settings"),
        ("ui.loadBalancerSourceRanges", "no load balancer settings"),
    ] {
        r.left_if_changed(path, Why::NoField, detail);
    }
    if r.changed("ui.externalTrafficPolicy") && spec.ui.service_type != ServiceType::ClusterIP {
        r.left(
            "ui.externalTrafficPolicy",
            Why::NoField,
            "no externalTrafficPolicy setting",
        );
    }
    r.consume("ui.externalTrafficPolicy");
}

fn service_type(r: &mut Reader, path: &str) -> Option<ServiceType> {
    match r.take_str(path).as_str() {
        "" | "ClusterIP" => Some(ServiceType::ClusterIP),
        "NodePort" => Some(ServiceType::NodePort),
        "LoadBalancer" => Some(ServiceType::LoadBalancer),
        other => {
            r.left(
                path,
                Why::NoField,
                format!(
                    "VaultCluster Services are ClusterIP, NodePort or LoadBalancer, not {other:?}"
                ),
            );
            None
        }
    }
}

pub(super) fn services(r: &mut Reader, spec: &mut VaultClusterSpec, mode: Mode) {
    if !is_true(r.take("server.service.enabled").as_ref()) {
        r.left(
            "server.service.enabled",
            Why::NoField,
            "VaultCluster always renders the <name>, <name>-active, <name>-standby and \
             <name>-internal Services",
        );
    }
    if let Some(t) = service_type(r, "server.service.type") {
        spec.service.service_type = t;
    }
    if let Some(annotations) = string_map(r, "server.service.annotations") {
        spec.service.annotations = annotations;
    }
    let ha = matches!(mode, Mode::Ha { .. });
    for (path, detail) in [
        (
            "server.service.active.enabled",
            "the <name>-active Service is always rendered",
        ),
        (
            "server.service.standby.enabled",
            "the <name>-standby Service is always rendered",
        ),
        (
            "server.service.active.annotations",
            "no per-Service annotations",
        ),
        (
            "server.service.standby.annotations",
            "no per-Service annotations",
        ),
    ] {
        if ha {
            r.left_if_changed(path, Why::NoField, detail);
        } else {
            r.consume(path);
        }
    }
    for (path, detail) in [
        (
            "server.service.instanceSelector.enabled",
            "the Services always select the instance label",
        ),
        ("server.service.ipFamilyPolicy", "no IP family settings"),
        ("server.service.ipFamilies", "no IP family settings"),
        (
            "server.service.publishNotReadyAddresses",
            "the Services publish not-ready addresses, as raft joins need",
        ),
        ("server.service.port", "the Services listen on 8200"),
        ("server.service.targetPort", "the Services target 8200"),
        (
            "server.service.clusterIP",
            "the cluster IP is assigned by Kubernetes",
        ),
        (
            "server.service.nodePort",
            "node ports are assigned by Kubernetes",
        ),
        (
            "server.service.activeNodePort",
            "node ports are assigned by Kubernetes",
        ),
        (
            "server.service.standbyNodePort",
            "node ports are assigned by Kubernetes",
        ),
    ] {
        r.left_if_changed(path, Why::NoField, detail);
    }
    if r.changed("server.service.externalTrafficPolicy")
        && spec.service.service_type != ServiceType::ClusterIP
    {
        r.left(
            "server.service.externalTrafficPolicy",
            Why::NoField,
            "no externalTrafficPolicy setting",
        );
    }
    r.consume("server.service.externalTrafficPolicy");
    if is_true(r.take("server.networkPolicy.enabled").as_ref()) {
        spec.network_policy.enabled = true;
        r.left_if_changed(
            "server.networkPolicy.ingress",
            Why::NoField,
            "VaultCluster's NetworkPolicy admits raft (8201) from the cluster's own pods and \
             the API (8200) from spec.networkPolicy.apiFrom: write the chart's peers there",
        );
        r.left_if_changed(
            "server.networkPolicy.egress",
            Why::NoField,
            "VaultCluster's NetworkPolicy does not restrict egress",
        );
    } else {
        r.consume("server.networkPolicy");
    }
}

pub(super) fn ingress(r: &mut Reader, spec: &mut VaultClusterSpec, mode: Mode) {
    if !is_true(r.take("server.ingress.enabled").as_ref()) {
        r.consume("server.ingress");
        return;
    }
    spec.ingress.enabled = true;
    let class = r.take_str("server.ingress.ingressClassName");
    spec.ingress.class_name = (!class.is_empty()).then_some(class);
    spec.ingress.active_only =
        matches!(mode, Mode::Ha { .. }) && is_true(r.take("server.ingress.activeService").as_ref());
    if let Some(annotations) = string_map(r, "server.ingress.annotations") {
        spec.ingress.annotations = annotations;
    }
    let mut paths = BTreeSet::new();
    if let Some(Value::Array(hosts)) = r.take("server.ingress.hosts") {
        for host in &hosts {
            let name = host.get("host").map(to_text).unwrap_or_default();
            if !name.is_empty() {
                spec.ingress.hosts.push(name);
            }
            match host.get("paths") {
                Some(Value::Array(list)) if !list.is_empty() => {
                    paths.extend(list.iter().map(to_text));
                }
                _ => {
                    paths.insert("/".to_owned());
                }
            }
        }
    }
    if spec.ingress.hosts.is_empty() {
        spec.ingress.enabled = false;
        r.left(
            "server.ingress.hosts",
            Why::NeedsAction,
            "the Ingress names no host; VaultCluster's needs at least one (spec.ingress.hosts)",
        );
    }
    let mut paths = paths.into_iter();
    if let Some(first) = paths.next() {
        spec.ingress.path = first;
    }
    if paths.next().is_some() {
        r.left(
            "server.ingress.hosts[].paths",
            Why::NoField,
            "VaultCluster's Ingress routes one path for every host",
        );
    }
    if let Some(Value::Array(tls)) = r.take("server.ingress.tls") {
        let secrets: BTreeSet<String> = tls
            .iter()
            .filter_map(|t| t.get("secretName").map(to_text))
            .collect();
        if secrets.len() > 1 {
            r.left(
                "server.ingress.tls",
                Why::NoField,
                "VaultCluster's Ingress uses one TLS Secret for every host",
            );
        }
        spec.ingress.tls.secret_name = secrets.into_iter().next();
    }
    for path in [
        "server.ingress.labels",
        "server.ingress.pathType",
        "server.ingress.extraPaths",
    ] {
        r.left_if_changed(
            path,
            Why::NoField,
            "VaultCluster's Ingress has no such setting",
        );
    }
}

pub(super) fn monitoring(r: &mut Reader, spec: &mut VaultClusterSpec) {
    let monitor = is_true(r.take("serverTelemetry.serviceMonitor.enabled").as_ref());
    spec.monitoring.service_monitor.enabled = monitor;
    if monitor {
        let interval = r.take_str("serverTelemetry.serviceMonitor.interval");
        if !interval.is_empty() {
            spec.monitoring.service_monitor.interval = interval;
        }
        if let Some(labels) = string_map(r, "serverTelemetry.serviceMonitor.selectors") {
            spec.monitoring.service_monitor.labels = labels;
        }
    } else {
        r.consume("serverTelemetry.serviceMonitor");
    }
    let rules = is_true(r.take("serverTelemetry.prometheusRules.enabled").as_ref());
    spec.monitoring.prometheus_rule.enabled = rules;
    if rules {
        if let Some(labels) = string_map(r, "serverTelemetry.prometheusRules.selectors") {
            spec.monitoring.prometheus_rule.labels = labels;
        }
        r.left_if_changed(
            "serverTelemetry.prometheusRules.rules",
            Why::NoField,
            "vaultkeeper's PrometheusRule carries its own alerts (docs/monitoring.md)",
        );
    } else {
        r.consume("serverTelemetry.prometheusRules");
    }
}
