//! How the cluster is reached from elsewhere: the Ingress and the NetworkPolicy.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyIngressRule,
    NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use vaultkeeper_api::IssuerKind;

use crate::config::{API_PORT, CLUSTER_PORT};
use crate::labels::Component;
use crate::manifest::{Manifest, metadata};
use crate::tls::TlsFiles;
use crate::{RenderError, Scope};

pub(crate) fn render(scope: &Scope<'_>) -> Result<Vec<Manifest>, RenderError> {
    let mut out = Vec::new();
    if scope.cluster.spec.ingress.enabled {
        out.push(ingress(scope)?);
    }
    if scope.cluster.spec.network_policy.enabled {
        out.push(network_policy(scope)?);
    }
    Ok(out)
}

fn ingress(scope: &Scope<'_>) -> Result<Manifest, RenderError> {
    let spec = &scope.cluster.spec.ingress;
    let names = &scope.names;
    let mut annotations: BTreeMap<String, String> = BTreeMap::new();
    let mut tls = None;
    if spec.tls.passthrough {
        // ingress-nginx hands the TLS stream to Vault untouched.
        annotations.insert(
            "nginx.ingress.kubernetes.io/ssl-passthrough".into(),
            "true".into(),
        );
    } else {
        if matches!(scope.tls, TlsFiles::Enabled(_)) {
            annotations.insert(
                "nginx.ingress.kubernetes.io/backend-protocol".into(),
                "HTTPS".into(),
            );
        }
        let secret_name = spec.tls.secret_name.clone().or_else(|| {
            spec.tls
                .cert_manager
                .as_ref()
                .map(|_| format!("{}-ingress-tls", names.cluster()))
        });
        if let Some(issuer) = &spec.tls.cert_manager {
            let key = match issuer.issuer_kind {
                IssuerKind::Issuer => "cert-manager.io/issuer",
                IssuerKind::ClusterIssuer => "cert-manager.io/cluster-issuer",
            };
            annotations.insert(key.into(), issuer.issuer_name.clone());
        }
        if let Some(secret_name) = secret_name {
            tls = Some(vec![IngressTLS {
                hosts: Some(spec.hosts.clone()),
                secret_name: Some(secret_name),
            }]);
        }
    }
    // The user's annotations win: they know their ingress controller.
    annotations.extend(spec.annotations.clone());

    let service = if spec.active_only {
        names.active_service()
    } else {
        names.service()
    };
    let rules = spec
        .hosts
        .iter()
        .map(|host| IngressRule {
            host: Some(host.clone()),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    path: Some(spec.path.clone()),
                    path_type: "Prefix".to_owned(),
                    backend: IngressBackend {
                        service: Some(IngressServiceBackend {
                            name: service.clone(),
                            port: Some(ServiceBackendPort {
                                number: Some(i32::from(API_PORT)),
                                name: None,
                            }),
                        }),
                        resource: None,
                    },
                }],
            }),
        })
        .collect();
    let mut meta = metadata(
        scope,
        names.ingress(),
        scope.labels.object(Component::Server),
    );
    if !annotations.is_empty() {
        meta.annotations = Some(annotations);
    }
    Manifest::new(
        "networking.k8s.io/v1",
        "Ingress",
        &meta,
        &Ingress {
            metadata: meta.clone(),
            spec: Some(IngressSpec {
                ingress_class_name: spec.class_name.clone(),
                rules: Some(rules),
                tls,
                default_backend: None,
            }),
            status: None,
        },
    )
}

/// The API port takes the listed peers (everyone when none are listed) plus this
/// cluster's own jobs; the raft port takes only the cluster's own server pods.
fn network_policy(scope: &Scope<'_>) -> Result<Manifest, RenderError> {
    let policy = &scope.cluster.spec.network_policy;
    let port = |number: u16| NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(number))),
        protocol: Some("TCP".to_owned()),
        end_port: None,
    };
    let api_from = if policy.api_from.is_empty() {
        None
    } else {
        let mut peers = policy.api_from.clone();
        peers.push(NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/instance".to_owned(),
                    scope.names.cluster().to_owned(),
                )])),
                match_expressions: None,
            }),
            ..NetworkPolicyPeer::default()
        });
        Some(peers)
    };
    let meta = metadata(
        scope,
        scope.names.network_policy(),
        scope.labels.object(Component::Server),
    );
    Manifest::new(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        &meta,
        &NetworkPolicy {
            metadata: meta.clone(),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(scope.labels.server_selector()),
                    match_expressions: None,
                }),
                policy_types: Some(vec!["Ingress".to_owned()]),
                ingress: Some(vec![
                    NetworkPolicyIngressRule {
                        ports: Some(vec![port(API_PORT)]),
                        from: api_from,
                    },
                    NetworkPolicyIngressRule {
                        ports: Some(vec![port(CLUSTER_PORT)]),
                        from: Some(vec![NetworkPolicyPeer {
                            pod_selector: Some(LabelSelector {
                                match_labels: Some(scope.labels.server_selector()),
                                match_expressions: None,
                            }),
                            ..NetworkPolicyPeer::default()
                        }]),
                    },
                ]),
                egress: None,
            }),
        },
    )
}
