//! The server pods: mode and replicas, image, placement, seal, environment and volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, EnvVarSource, LocalObjectReference, PodSecurityContext, ResourceRequirements,
    SecretKeySelector, SecurityContext, Toleration, TopologySpreadConstraint,
};
use serde_json::{Map, Value};
use vaultkeeper_api::{
    AccessMode, AuditStorageSpec, AwsKmsSeal, AzureKeyVaultSeal, Flavor, GcpCkmsSeal,
    ImagePullPolicy, TokenSecretRef, TransitSeal, UnsealType, VaultClusterSpec, rules,
};

use super::config::ConfigFacts;
use super::{
    ChartNames, Mode, NotVaultValues, Reader, Why, chart_defaults, is_true, string_map, templated,
    to_text, truthy,
};

pub(super) fn server_mode(
    r: &mut Reader,
    spec: &mut VaultClusterSpec,
) -> Result<Mode, NotVaultValues> {
    if is_true(r.take("server.dev.enabled").as_ref()) {
        r.left(
            "server.dev.enabled",
            Why::NotUnderOperator,
            "dev mode runs one in-memory, unsealed server with a known root token; \
             vaultkeeper runs a real sealed cluster and keeps its keys, so the import \
             describes a standalone cluster instead",
        );
    }
    r.consume("server.dev");
    if is_true(r.peek("server.dev.enabled")) {
        spec.replicas = 1;
        r.consume("server.ha");
        r.consume("server.standalone");
        return Ok(Mode::Dev);
    }
    if is_true(r.take("server.ha.enabled").as_ref()) {
        let raft = is_true(r.take("server.ha.raft.enabled").as_ref());
        // The chart takes a number as it is and anything else as 3.
        let replicas = match r.take("server.ha.replicas") {
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f.clamp(-1.0, 99.0) as i64))
                .unwrap_or(3),
            _ => 3,
        };
        spec.replicas = match replicas {
            i64::MIN..=1 => 1,
            2 | 3 => 3,
            4 | 5 => 5,
            _ => 7,
        };
        if i64::from(spec.replicas) != replicas {
            r.left(
                "server.ha.replicas",
                Why::NeedsAction,
                format!(
                    "VaultCluster runs 1, 3, 5 or 7 raft voters; {replicas} became {}",
                    spec.replicas
                ),
            );
        }
        r.consume("server.standalone");
        if !raft {
            r.consume("server.ha.raft");
        }
        let set_node_id = is_true(r.take("server.ha.raft.setNodeId").as_ref());
        if raft && !set_node_id {
            r.notes.push(
                "vaultkeeper always sets VAULT_RAFT_NODE_ID to the pod's name; with \
                 server.ha.raft.setNodeId false the chart's pods have random raft node ids"
                    .to_owned(),
            );
        }
        Ok(Mode::Ha { raft })
    } else {
        spec.replicas = 1;
        r.consume("server.ha");
        r.consume("server.standalone.enabled");
        Ok(Mode::Standalone)
    }
}

pub(super) fn image(r: &mut Reader, spec: &mut VaultClusterSpec) {
    let repository = r.take_str("server.image.repository");
    let tag = r.take_str("server.image.tag");
    let tag = if tag.is_empty() { "latest" } else { &tag };
    let image = format!("{repository}:{tag}");
    spec.flavor = Some(Flavor::detect_from_image(&image));
    if spec.flavor == Some(Flavor::OpenBao) {
        r.notes.push(
            "the image is OpenBao: vaultkeeper names the container openbao, labels the pods \
             app.kubernetes.io/name: openbao and uses /openbao paths, as the OpenBao chart \
             does, where the Vault chart used vault"
                .to_owned(),
        );
    }
    if !repository.is_empty() {
        spec.image = Some(image);
    }
    spec.image_pull_policy = match r.take_str("server.image.pullPolicy").as_str() {
        "Always" => Some(ImagePullPolicy::Always),
        "IfNotPresent" => Some(ImagePullPolicy::IfNotPresent),
        "Never" => Some(ImagePullPolicy::Never),
        _ => None,
    };
    if let Some(Value::Array(secrets)) = r.take("global.imagePullSecrets") {
        for secret in secrets {
            let name = match &secret {
                Value::String(s) => s.clone(),
                Value::Object(o) => o.get("name").map(to_text).unwrap_or_default(),
                _ => String::new(),
            };
            if !name.is_empty() {
                spec.image_pull_secrets.push(LocalObjectReference { name });
            }
        }
    }
}

/// A Kubernetes type (or a list of them) from a value that may be a template string.
pub(super) fn typed<T: serde::de::DeserializeOwned>(
    r: &mut Reader,
    path: &str,
    names: &ChartNames,
) -> Option<T> {
    let value = r.take(path)?;
    let parsed = match templated(&value, names) {
        Ok(v) => v,
        Err(why) => {
            r.left(path, Why::NeedsAction, format!("it holds {why}"));
            return None;
        }
    };
    if !truthy(Some(&parsed)) {
        return None;
    }
    match serde_json::from_value(parsed) {
        Ok(v) => Some(v),
        Err(e) => {
            r.left(
                path,
                Why::NeedsAction,
                format!("it is not what Kubernetes expects here: {e}"),
            );
            None
        }
    }
}

pub(super) fn placement(r: &mut Reader, spec: &mut VaultClusterSpec, names: &ChartNames) {
    spec.pod.resources = typed::<ResourceRequirements>(r, "server.resources", names);
    let affinity = typed::<Affinity>(r, "server.affinity", names);
    // The chart's default (one pod per node) is VaultCluster's default too.
    let default_affinity = templated(&chart_defaults()["server"]["affinity"], names)
        .ok()
        .and_then(|v| serde_json::from_value::<Affinity>(v).ok());
    if affinity != default_affinity {
        spec.pod.affinity = affinity.or_else(|| Some(Affinity::default()));
    }
    if let Some(tolerations) = typed::<Vec<Toleration>>(r, "server.tolerations", names) {
        spec.pod.tolerations = tolerations;
    }
    if let Some(selector) = typed::<BTreeMap<String, String>>(r, "server.nodeSelector", names) {
        spec.pod.node_selector = selector;
    }
    if let Some(spread) =
        typed::<Vec<TopologySpreadConstraint>>(r, "server.topologySpreadConstraints", names)
    {
        spec.pod.topology_spread_constraints = spread;
    }
    let priority = r.take_str("server.priorityClassName");
    spec.pod.priority_class_name = (!priority.is_empty()).then_some(priority);
    if let Some(annotations) = string_map(r, "server.annotations") {
        spec.pod.annotations = annotations;
    }
    if let Some(labels) = string_map(r, "server.extraLabels") {
        spec.pod.labels = labels;
    }
    if let Some(annotations) = string_map(r, "server.serviceAccount.annotations") {
        spec.pod.service_account_annotations = annotations;
    }
    let openshift = is_true(r.take("global.openshift").as_ref());
    let pod_context =
        typed::<PodSecurityContext>(r, "server.statefulSet.securityContext.pod", names);
    let container_context =
        typed::<SecurityContext>(r, "server.statefulSet.securityContext.container", names);
    let uid = r.take("server.uid");
    let gid = r.take("server.gid");
    spec.pod.security_context = match pod_context {
        Some(context) => Some(context),
        // On OpenShift the chart sets none, so the restricted SCC assigns the user.
        None if openshift => Some(PodSecurityContext::default()),
        None if uid.is_some() || gid.is_some() => {
            let number = |v: &Option<Value>, default: i64| {
                v.as_ref().and_then(Value::as_i64).unwrap_or(default)
            };
            Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(number(&uid, 100)),
                run_as_group: Some(number(&gid, 1000)),
                fs_group: Some(number(&gid, 1000)),
                ..PodSecurityContext::default()
            })
        }
        None => None,
    };
    spec.pod.container_security_context = match container_context {
        Some(context) => Some(context),
        None if openshift => Some(SecurityContext::default()),
        None => None,
    };
    if openshift {
        r.notes.push(
            "global.openshift: the pod and container security contexts are left empty, as \
             the chart leaves them, so the restricted SCC assigns the user"
                .to_owned(),
        );
    }
}

/// The seal stanza as `spec.unseal`. Attributes holding credentials are never copied: the
/// leftover names the attribute and where the credential goes instead. Returns the index
/// of the `server.extraSecretEnvironmentVars` entry that became the transit token.
pub(super) fn unseal(
    r: &mut Reader,
    spec: &mut VaultClusterSpec,
    config: &ConfigFacts,
) -> Option<usize> {
    let (at, kind, body) = config.seal.as_ref()?;
    let empty = Map::new();
    let map = body.as_object().unwrap_or(&empty);
    let text = |key: &str| map.get(key).map(to_text).filter(|s| !s.is_empty());
    let unknown = |known: &[&str]| -> Vec<String> {
        map.keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    let credential = |r: &mut Reader, key: &str, instead: &str| {
        r.left(
            format!("{at}.{key}"),
            Why::NeedsAction,
            format!("a credential in the configuration: {instead}"),
        );
    };
    let mut token_env = None;
    let extra: Vec<String> = match kind.as_str() {
        "awskms" => {
            let (Some(region), Some(kms_key_id)) = (text("region"), text("kms_key_id")) else {
                r.left(
                    at.clone(),
                    Why::NeedsAction,
                    "it needs region and kms_key_id (they may come \
                    from the environment in the chart): write spec.unseal.awsKms",
                );
                return None;
            };
            for key in ["access_key", "secret_key", "session_token"] {
                if map.contains_key(key) {
                    credential(
                        r,
                        key,
                        "put AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in a \
                        Secret and name it in spec.unseal.awsKms.credentialsSecret, or use IRSA",
                    );
                }
            }
            spec.unseal.kind = UnsealType::AwsKms;
            spec.unseal.aws_kms = Some(AwsKmsSeal {
                region,
                kms_key_id,
                endpoint: text("endpoint"),
                credentials_secret: None,
            });
            unknown(&[
                "region",
                "kms_key_id",
                "endpoint",
                "access_key",
                "secret_key",
                "session_token",
            ])
        }
        "gcpckms" => {
            let (Some(project), Some(region), Some(key_ring), Some(crypto_key)) = (
                text("project"),
                text("region"),
                text("key_ring"),
                text("crypto_key"),
            ) else {
                r.left(
                    at.clone(),
                    Why::NeedsAction,
                    "it needs project, region, key_ring and \
                    crypto_key: write spec.unseal.gcpCkms",
                );
                return None;
            };
            if map.contains_key("credentials") {
                credential(
                    r,
                    "credentials",
                    "name a Secret with the key file in \
                    spec.unseal.gcpCkms.credentialsSecret, or use workload identity",
                );
            }
            spec.unseal.kind = UnsealType::GcpCkms;
            spec.unseal.gcp_ckms = Some(GcpCkmsSeal {
                project,
                region,
                key_ring,
                crypto_key,
                credentials_secret: None,
            });
            unknown(&["project", "region", "key_ring", "crypto_key", "credentials"])
        }
        "azurekeyvault" => {
            let (Some(tenant_id), Some(vault_name), Some(key_name)) =
                (text("tenant_id"), text("vault_name"), text("key_name"))
            else {
                r.left(
                    at.clone(),
                    Why::NeedsAction,
                    "it needs tenant_id, vault_name and \
                    key_name: write spec.unseal.azureKeyVault",
                );
                return None;
            };
            for key in ["client_id", "client_secret"] {
                if map.contains_key(key) {
                    credential(
                        r,
                        key,
                        "put AZURE_CLIENT_ID and AZURE_CLIENT_SECRET in a \
                        Secret and name it in spec.unseal.azureKeyVault.credentialsSecret",
                    );
                }
            }
            spec.unseal.kind = UnsealType::AzureKeyVault;
            spec.unseal.azure_key_vault = Some(AzureKeyVaultSeal {
                tenant_id,
                vault_name,
                key_name,
                environment: text("environment"),
                credentials_secret: None,
            });
            unknown(&[
                "tenant_id",
                "vault_name",
                "key_name",
                "environment",
                "client_id",
                "client_secret",
            ])
        }
        "transit" => {
            let (Some(address), Some(key_name)) = (text("address"), text("key_name")) else {
                r.left(
                    at.clone(),
                    Why::NeedsAction,
                    "it needs address and key_name: write \
                    spec.unseal.transit",
                );
                return None;
            };
            if map.contains_key("token") {
                credential(
                    r,
                    "token",
                    "put the token in a Secret and name it in \
                    spec.unseal.transit.tokenSecret",
                );
            }
            // The chart's way to give the token: VAULT_TOKEN from a Secret.
            let token = match r.peek("server.extraSecretEnvironmentVars") {
                Some(Value::Array(vars)) => vars.iter().enumerate().find_map(|(i, v)| {
                    let field = |k: &str| v.get(k).map(to_text).filter(|s| !s.is_empty());
                    (field("envName").as_deref() == Some("VAULT_TOKEN"))
                        .then(|| Some((i, field("secretName")?, field("secretKey")?)))
                        .flatten()
                }),
                _ => None,
            };
            let Some((index, name, key)) = token else {
                r.left(
                    at.clone(),
                    Why::NeedsAction,
                    "the transit token's Secret is not given \
                    as VAULT_TOKEN in server.extraSecretEnvironmentVars: write \
                    spec.unseal.transit with tokenSecret",
                );
                return None;
            };
            token_env = Some(index);
            spec.unseal.kind = UnsealType::Transit;
            spec.unseal.transit = Some(TransitSeal {
                address,
                key_name,
                mount_path: text("mount_path").unwrap_or_else(|| "transit/".to_owned()),
                namespace: text("namespace"),
                token_secret: TokenSecretRef { name, key },
                ca_secret: None,
                tls_server_name: text("tls_server_name"),
            });
            unknown(&[
                "address",
                "key_name",
                "mount_path",
                "namespace",
                "token",
                "tls_server_name",
            ])
        }
        other => {
            r.left(
                at.clone(),
                Why::NoField,
                format!("VaultCluster has no {other:?} seal: write spec.unseal by hand"),
            );
            return None;
        }
    };
    for key in extra {
        r.left(
            format!("{at}.{key}"),
            Why::NoField,
            "spec.unseal has no field for this seal setting",
        );
    }
    r.notes.push(
        "the seal became spec.unseal: init hands out recovery shares, which vaultkeeper keeps"
            .to_owned(),
    );
    token_env
}

pub(super) fn environment(r: &mut Reader, spec: &mut VaultClusterSpec, token_env: Option<usize>) {
    let mut env = Vec::new();
    for (path, name) in [
        ("server.logLevel", "VAULT_LOG_LEVEL"),
        ("server.logFormat", "VAULT_LOG_FORMAT"),
    ] {
        let value = r.take_str(path);
        if !value.is_empty() {
            env.push(EnvVar {
                name: name.to_owned(),
                value: Some(value),
                value_from: None,
            });
        }
    }
    if let Some(Value::Object(vars)) = r.take("server.extraEnvironmentVars") {
        for (key, value) in vars {
            // The chart's name mangling: dots to underscores, upper case.
            let name = key.replace('.', "_").to_uppercase();
            let var = EnvVar {
                name: name.clone(),
                value: Some(to_text(&value)),
                value_from: None,
            };
            push_env(
                r,
                &mut env,
                var,
                &format!("server.extraEnvironmentVars.{key}"),
            );
        }
    }
    if let Some(Value::Array(vars)) = r.take("server.extraSecretEnvironmentVars") {
        for (index, var) in vars.iter().enumerate() {
            if Some(index) == token_env {
                continue;
            }
            let field = |k: &str| var.get(k).map(to_text).unwrap_or_default();
            let (name, secret, key) = (field("envName"), field("secretName"), field("secretKey"));
            let path = format!("server.extraSecretEnvironmentVars[{index}]");
            if name.is_empty() || secret.is_empty() || key.is_empty() {
                r.left(
                    path,
                    Why::NeedsAction,
                    "it needs envName, secretName and secretKey",
                );
                continue;
            }
            let var = EnvVar {
                name,
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret,
                        key,
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
            };
            push_env(r, &mut env, var, &path);
        }
    }
    spec.pod.env = env;
}

fn push_env(r: &mut Reader, env: &mut Vec<EnvVar>, var: EnvVar, path: &str) {
    if !rules::env_name_allowed(&var.name) {
        r.left(
            path,
            Why::NotUnderOperator,
            format!(
                "{} steers the CLI vaultkeeper runs in the pod with unseal keys and tokens, \
                 so VaultCluster refuses it; vaultkeeper sets the address and CA itself",
                var.name
            ),
        );
    } else if is_rendered_env(&var.name) {
        r.left(
            path,
            Why::NotUnderOperator,
            format!("vaultkeeper sets {} itself", var.name),
        );
    } else {
        env.push(var);
    }
}

fn is_rendered_env(name: &str) -> bool {
    matches!(
        name,
        "HOST_IP" | "POD_IP" | "HOSTNAME" | "HOME" | "SKIP_CHOWN" | "SKIP_SETCAP"
    )
}

pub(super) fn storage(r: &mut Reader, spec: &mut VaultClusterSpec, mode: Mode) {
    let raft_data = matches!(mode, Mode::Standalone | Mode::Ha { raft: true });
    if raft_data {
        if !is_true(r.take("server.dataStorage.enabled").as_ref()) {
            r.left(
                "server.dataStorage.enabled",
                Why::NotUnderOperator,
                "raft data always lives on a persistent volume under vaultkeeper",
            );
        }
        spec.storage.size = r.take_str("server.dataStorage.size");
        if spec.storage.size.is_empty() {
            spec.storage.size = "10Gi".to_owned();
        }
        let class = r.take_str("server.dataStorage.storageClass");
        spec.storage.storage_class_name = (!class.is_empty()).then_some(class);
        let claim = claim_extras(r, "server.dataStorage");
        spec.storage.mount_path = claim.mount_path;
        spec.storage.access_mode = claim.access_mode;
        spec.storage.labels = claim.labels;
        spec.storage.annotations = claim.annotations;
    } else {
        r.consume("server.dataStorage");
    }
    if is_true(r.take("server.auditStorage.enabled").as_ref()) {
        let size = r.take_str("server.auditStorage.size");
        let class = r.take_str("server.auditStorage.storageClass");
        let claim = claim_extras(r, "server.auditStorage");
        spec.storage.audit = Some(AuditStorageSpec {
            size: if size.is_empty() {
                "10Gi".to_owned()
            } else {
                size
            },
            storage_class_name: (!class.is_empty()).then_some(class),
            mount_path: claim.mount_path,
            access_mode: claim.access_mode,
            labels: claim.labels,
            annotations: claim.annotations,
        });
    } else {
        r.consume("server.auditStorage");
    }
    // A value VaultCluster refuses (a mount path over its own directories, a volume
    // controller's annotation) is named and left out, so the output stays valid.
    let refusals: Vec<(String, String)> = vaultkeeper_api::validate_spec("vault", spec)
        .into_iter()
        .filter(|v| v.field.starts_with("spec.storage."))
        .map(|v| (v.field, v.message))
        .collect();
    for (field, message) in refusals {
        let (chart, clear): (&str, fn(&mut VaultClusterSpec)) = match field.as_str() {
            "spec.storage.mountPath" => ("server.dataStorage.mountPath", |s| {
                s.storage.mount_path = None
            }),
            "spec.storage.annotations" => ("server.dataStorage.annotations", |s| {
                s.storage.annotations.clear()
            }),
            "spec.storage.audit.annotations" => ("server.auditStorage.annotations", |s| {
                if let Some(a) = &mut s.storage.audit {
                    a.annotations.clear();
                }
            }),
            _ => ("server.auditStorage.mountPath", |s| {
                if let Some(a) = &mut s.storage.audit {
                    a.mount_path = None;
                }
            }),
        };
        clear(spec);
        r.left(
            chart,
            Why::NotUnderOperator,
            format!("VaultCluster refuses it: {message}"),
        );
    }
}

/// A claim's mount path, access mode, labels and annotations, when they differ from the
/// chart's defaults.
struct ClaimExtras {
    mount_path: Option<String>,
    access_mode: Option<AccessMode>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn claim_extras(r: &mut Reader, base: &str) -> ClaimExtras {
    let mount = format!("{base}.mountPath");
    let mount_path = r.changed(&mount).then(|| r.take_str(&mount));
    r.consume(&mount);
    let mode = format!("{base}.accessMode");
    let access_mode = match r.take_str(&mode).as_str() {
        "" | "ReadWriteOnce" => None,
        "ReadWriteOncePod" => Some(AccessMode::ReadWriteOncePod),
        "ReadWriteMany" => Some(AccessMode::ReadWriteMany),
        other => {
            let shown: String = other.chars().take(40).collect();
            r.left(
                &mode,
                Why::NeedsAction,
                format!(
                    "{shown:?}: Vault writes to the volume, so VaultCluster takes                      ReadWriteOnce, ReadWriteOncePod or ReadWriteMany"
                ),
            );
            None
        }
    };
    ClaimExtras {
        mount_path: mount_path.filter(|p| !p.is_empty()),
        access_mode,
        labels: string_map(r, &format!("{base}.labels")).unwrap_or_default(),
        annotations: string_map(r, &format!("{base}.annotations")).unwrap_or_default(),
    }
}
