//! The server configuration (HCL), as the charts render it in HA raft mode, plus the
//! seal, telemetry and the user's `spec.config`.
//!
//! The listener binds every address of the pod (`[::]`), as the charts do, so the CLI
//! inside the pod reaches it at 127.0.0.1 and `kubectl port-forward` works.

use hcl::{Attribute, Block, Body, Expression};
use serde_json::{Map, Value};
use vaultkeeper_api::{ClusterNames, Flavor, UnsealType, VaultCluster};

use crate::RenderError;
use crate::layout::ServerLayout;
use crate::tls::TlsFiles;

/// The listen address: every address of the pod, IPv4 and IPv6.
pub const LISTEN_ADDRESS: &str = "[::]";

/// The API port.
pub const API_PORT: u16 = 8200;
/// The cluster (raft and request forwarding) port.
pub const CLUSTER_PORT: u16 = 8201;

/// Renders the HCL configuration of the server pods.
pub fn server_config(
    cluster: &VaultCluster,
    layout: ServerLayout,
    tls: &TlsFiles,
) -> Result<String, RenderError> {
    let spec = &cluster.spec;
    let names = ClusterNames::new(cluster.metadata.name.as_deref().unwrap_or_default());

    // Plain settings first; spec.config may override any of them.
    let mut settings = Map::new();
    settings.insert("ui".into(), Value::Bool(spec.ui.enabled));
    if layout.flavor() == Flavor::Vault {
        // Integrated storage: HashiCorp recommends disabling mlock (the raft database
        // is memory-mapped). OpenBao dropped the option and warns about it.
        settings.insert("disable_mlock".into(), Value::Bool(true));
    }
    if spec.monitoring.enabled {
        settings.insert(
            "telemetry".into(),
            serde_json::json!({
                "prometheus_retention_time": "30s",
                "disable_hostname": true,
            }),
        );
    }
    if let Some(config) = &spec.config {
        for (key, value) in config {
            check_identifier(key)?;
            match (settings.get_mut(key), value) {
                (Some(Value::Object(ours)), Value::Object(theirs)) => {
                    for (k, v) in theirs {
                        ours.insert(k.clone(), v.clone());
                    }
                }
                _ => {
                    settings.insert(key.clone(), value.clone());
                }
            }
        }
    }

    let mut body = Body::builder();
    for key in ["ui", "disable_mlock"] {
        if let Some(value) = settings.remove(key) {
            body = body.add_structures(structures(key, &value)?);
        }
    }
    body = body
        .add_block(listener(layout, tls))
        .add_block(raft_storage(cluster, &names, layout, tls))
        .add_block(
            Block::builder("service_registration")
                .add_label("kubernetes")
                .build(),
        );
    if let Some(seal) = seal(cluster, layout)? {
        body = body.add_block(seal);
    }
    for (key, value) in &settings {
        body = body.add_structures(structures(key, value)?);
    }
    hcl::to_string(&body.build()).map_err(|e| RenderError::Config {
        detail: e.to_string(),
    })
}

fn listener(layout: ServerLayout, tls: &TlsFiles) -> Block {
    let mut listener = Block::builder("listener")
        .add_label("tcp")
        .add_attribute(("address", format!("{LISTEN_ADDRESS}:{API_PORT}")))
        .add_attribute((
            "cluster_address",
            format!("{LISTEN_ADDRESS}:{CLUSTER_PORT}"),
        ));
    match tls {
        TlsFiles::Enabled(files) => {
            listener = listener
                .add_attribute(("tls_cert_file", files.cert_file(layout)))
                .add_attribute(("tls_key_file", files.key_file(layout)))
                .add_attribute(("tls_client_ca_file", files.ca_file(layout)));
        }
        TlsFiles::Disabled => {
            listener = listener.add_attribute(("tls_disable", 1));
        }
    }
    listener.build()
}

/// Where the raft data lives: `spec.storage.mountPath`, else the flavor's directory.
pub(crate) fn data_dir(cluster: &VaultCluster, layout: ServerLayout) -> String {
    cluster
        .spec
        .storage
        .mount_path
        .clone()
        .unwrap_or_else(|| layout.data_dir())
}

fn raft_storage(
    cluster: &VaultCluster,
    names: &ClusterNames,
    layout: ServerLayout,
    tls: &TlsFiles,
) -> Block {
    let scheme = tls.scheme();
    let mut storage = Block::builder("storage")
        .add_label("raft")
        .add_attribute(("path", data_dir(cluster, layout)));
    // One retry_join per pod a cluster can ever have (not per pod it has now): a new or
    // wiped pod asks each peer until one answers as leader, and pods that already hold
    // raft state ignore it. Listing every possible ordinal keeps the configuration, and so
    // the StatefulSet revision, the same across a scale: scaling 3 -> 5 starts two pods
    // and restarts none. Names of pods that do not exist simply do not resolve.
    for ordinal in 0..crate::pki::MAX_REPLICAS {
        let mut join = Block::builder("retry_join").add_attribute((
            "leader_api_addr",
            format!("{scheme}://{}:{API_PORT}", names.pod_internal_host(ordinal)),
        ));
        if let TlsFiles::Enabled(files) = tls {
            join = join.add_attribute(("leader_ca_cert_file", files.ca_file(layout)));
        }
        storage = storage.add_block(join.build());
    }
    storage.build()
}

/// The seal stanza. Credentials never appear here: they reach the pod as environment
/// variables or files from Secrets (see `workload.rs`).
fn seal(cluster: &VaultCluster, layout: ServerLayout) -> Result<Option<Block>, RenderError> {
    let unseal = &cluster.spec.unseal;
    let missing = |field: &'static str| RenderError::Invalid {
        field,
        detail: format!("{field} is required by spec.unseal.type"),
    };
    let block = match unseal.kind {
        UnsealType::Shamir => return Ok(None),
        UnsealType::Transit => {
            let transit = unseal
                .transit
                .as_ref()
                .ok_or_else(|| missing("spec.unseal.transit"))?;
            let mut seal = Block::builder("seal")
                .add_label("transit")
                .add_attribute(("address", transit.address.as_str()))
                .add_attribute(("key_name", transit.key_name.as_str()))
                .add_attribute(("mount_path", transit.mount_path.as_str()));
            if let Some(namespace) = &transit.namespace {
                seal = seal.add_attribute(("namespace", namespace.as_str()));
            }
            if let Some(ca) = &transit.ca_secret {
                seal = seal.add_attribute((
                    "tls_ca_cert",
                    format!("{}/{}", layout.userconfig_dir(&ca.name), ca.key),
                ));
            }
            if let Some(server_name) = &transit.tls_server_name {
                seal = seal.add_attribute(("tls_server_name", server_name.as_str()));
            }
            seal.build()
        }
        UnsealType::AwsKms => {
            let kms = unseal
                .aws_kms
                .as_ref()
                .ok_or_else(|| missing("spec.unseal.awsKms"))?;
            let mut seal = Block::builder("seal")
                .add_label("awskms")
                .add_attribute(("region", kms.region.as_str()))
                .add_attribute(("kms_key_id", kms.kms_key_id.as_str()));
            if let Some(endpoint) = &kms.endpoint {
                seal = seal.add_attribute(("endpoint", endpoint.as_str()));
            }
            seal.build()
        }
        UnsealType::GcpCkms => {
            let kms = unseal
                .gcp_ckms
                .as_ref()
                .ok_or_else(|| missing("spec.unseal.gcpCkms"))?;
            let mut seal = Block::builder("seal")
                .add_label("gcpckms")
                .add_attribute(("project", kms.project.as_str()))
                .add_attribute(("region", kms.region.as_str()))
                .add_attribute(("key_ring", kms.key_ring.as_str()))
                .add_attribute(("crypto_key", kms.crypto_key.as_str()));
            if let Some(credentials) = &kms.credentials_secret {
                seal = seal.add_attribute((
                    "credentials",
                    format!(
                        "{}/{}",
                        layout.userconfig_dir(&credentials.name),
                        credentials.key
                    ),
                ));
            }
            seal.build()
        }
        UnsealType::AzureKeyVault => {
            let akv = unseal
                .azure_key_vault
                .as_ref()
                .ok_or_else(|| missing("spec.unseal.azureKeyVault"))?;
            let mut seal = Block::builder("seal")
                .add_label("azurekeyvault")
                .add_attribute(("tenant_id", akv.tenant_id.as_str()))
                .add_attribute(("vault_name", akv.vault_name.as_str()))
                .add_attribute(("key_name", akv.key_name.as_str()));
            if let Some(environment) = &akv.environment {
                seal = seal.add_attribute(("environment", environment.as_str()));
            }
            seal.build()
        }
        UnsealType::Static => {
            let key = unseal
                .static_key
                .as_ref()
                .ok_or_else(|| missing("spec.unseal.static"))?;
            Block::builder("seal")
                .add_label("static")
                .add_attribute(("current_key_id", key.key_id.as_str()))
                .add_attribute((
                    "current_key",
                    format!(
                        "file://{}/{}",
                        layout.userconfig_dir(&key.key_secret.name),
                        key.key_secret.key
                    ),
                ))
                .build()
        }
    };
    Ok(Some(block))
}

fn check_identifier(key: &str) -> Result<(), RenderError> {
    let mut chars = key.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if valid_start && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Ok(())
    } else {
        Err(RenderError::Invalid {
            field: "spec.config",
            detail: format!(
                "spec.config key {key:?} is not a valid configuration key: use letters, \
                 digits, '_' and '-', starting with a letter"
            ),
        })
    }
}

/// Turns one configuration key and its JSON value into HCL: objects become blocks (an
/// object whose values are all objects becomes labelled blocks, `seal "transit" {…}`
/// style), lists of objects become repeated blocks, everything else an attribute.
fn structures(key: &str, value: &Value) -> Result<Vec<hcl::Structure>, RenderError> {
    check_identifier(key)?;
    match value {
        Value::Object(map) if !map.is_empty() && map.values().all(Value::is_object) => map
            .iter()
            .map(|(label, inner)| {
                Ok(hcl::Structure::Block(
                    Block::builder(key)
                        .add_label(label.as_str())
                        .add_structures(object_body(inner)?)
                        .build(),
                ))
            })
            .collect(),
        Value::Object(_) => Ok(vec![hcl::Structure::Block(
            Block::builder(key)
                .add_structures(object_body(value)?)
                .build(),
        )]),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => items
            .iter()
            .map(|item| {
                Ok(hcl::Structure::Block(
                    Block::builder(key)
                        .add_structures(object_body(item)?)
                        .build(),
                ))
            })
            .collect(),
        scalar => Ok(vec![hcl::Structure::Attribute(Attribute::new(
            key,
            expression(scalar)?,
        ))]),
    }
}

fn object_body(value: &Value) -> Result<Vec<hcl::Structure>, RenderError> {
    let mut out = Vec::new();
    if let Value::Object(map) = value {
        for (key, inner) in map {
            match inner {
                Value::Object(_) => out.extend(structures(key, inner)?),
                _ => {
                    check_identifier(key)?;
                    out.push(hcl::Structure::Attribute(Attribute::new(
                        key.as_str(),
                        expression(inner)?,
                    )));
                }
            }
        }
    }
    Ok(out)
}

fn expression(value: &Value) -> Result<Expression, RenderError> {
    hcl::to_expression(value).map_err(|e| RenderError::Config {
        detail: e.to_string(),
    })
}
