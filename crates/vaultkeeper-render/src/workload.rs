//! The server configuration ConfigMap, the StatefulSet and its PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, SecretKeySelector, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};
use vaultkeeper_api::{AccessMode, DeletionPolicy, Initialization, UnsealType};

use crate::config::{API_PORT, CLUSTER_PORT, server_config};
use crate::labels::Component;
use crate::manifest::{Manifest, metadata};
use crate::tls::TlsFiles;
use crate::{RenderError, Scope, pod_tuning};

/// Annotation on the pod template with the hash of the server configuration, so a
/// configuration change makes a new StatefulSet revision (which the operator rolls).
pub const CONFIG_HASH_ANNOTATION: &str = "vaultkeeper.io/config-hash";

/// Default pod security context, the Vault Helm chart's.
const RUN_AS_USER: i64 = 100;
const RUN_AS_GROUP: i64 = 1000;
const FS_GROUP: i64 = 1000;
/// Secret files readable by the owner and the pod's fsGroup only.
const SECRET_FILE_MODE: i32 = 0o440;

pub(crate) fn render_config(scope: &Scope<'_>) -> Result<Vec<Manifest>, RenderError> {
    let config = server_config(scope.cluster, scope.layout, &scope.tls)?;
    let meta = metadata(
        scope,
        scope.names.config_map(),
        scope.labels.object(Component::Server),
    );
    let mut data = BTreeMap::from([(scope.layout.config_file_name().to_owned(), config)]);
    if scope.cluster.spec.keys.initialization == Initialization::SelfInit
        && let Some(stanza) = scope.ctx.self_init_stanza
    {
        data.insert(
            crate::self_init::SELF_INIT_KEY.to_owned(),
            stanza.to_owned(),
        );
    }
    Ok(vec![Manifest::new(
        "v1",
        "ConfigMap",
        &meta,
        &ConfigMap {
            metadata: meta.clone(),
            data: Some(data),
            ..ConfigMap::default()
        },
    )?])
}

pub(crate) fn render(scope: &Scope<'_>) -> Result<Vec<Manifest>, RenderError> {
    let mut manifests = vec![statefulset(scope)?];
    let budget = scope.cluster.spec.pod.disruption_budget.as_ref();
    if budget.and_then(|b| b.enabled).unwrap_or(true) {
        manifests.push(pod_disruption_budget(scope)?);
    }
    Ok(manifests)
}

fn statefulset(scope: &Scope<'_>) -> Result<Manifest, RenderError> {
    let spec = &scope.cluster.spec;
    let names = &scope.names;
    let config = server_config(scope.cluster, scope.layout, &scope.tls)?;
    let config_hash = hex::encode(Sha256::digest(config.as_bytes()));

    let mut pod_labels = scope.labels.server_pod();
    pod_labels.extend(spec.pod.labels.clone());
    let mut pod_annotations = spec.pod.annotations.clone();
    pod_annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash);

    let pod = PodSpec {
        service_account_name: Some(names.service_account()),
        termination_grace_period_seconds: Some(pod_tuning::termination_grace_period_seconds(scope)),
        security_context: Some(
            spec.pod
                .security_context
                .clone()
                .unwrap_or(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(RUN_AS_USER),
                    run_as_group: Some(RUN_AS_GROUP),
                    fs_group: Some(FS_GROUP),
                    ..PodSecurityContext::default()
                }),
        ),
        affinity: Some(
            spec.pod
                .affinity
                .clone()
                .unwrap_or_else(|| one_pod_per_node(scope)),
        ),
        node_selector: (!spec.pod.node_selector.is_empty()).then(|| spec.pod.node_selector.clone()),
        tolerations: (!spec.pod.tolerations.is_empty()).then(|| spec.pod.tolerations.clone()),
        topology_spread_constraints: (!spec.pod.topology_spread_constraints.is_empty())
            .then(|| spec.pod.topology_spread_constraints.clone()),
        priority_class_name: spec.pod.priority_class_name.clone(),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty())
            .then(|| spec.image_pull_secrets.clone()),
        volumes: Some(volumes(scope)),
        host_aliases: (!spec.pod.host_aliases.is_empty()).then(|| spec.pod.host_aliases.clone()),
        containers: vec![server_container(scope)],
        ..PodSpec::default()
    };

    let storage = &spec.storage;
    let mut claims = vec![claim(
        scope,
        "data",
        ClaimShape {
            size: &storage.size,
            storage_class: storage.storage_class_name.as_deref(),
            access_mode: storage.access_mode,
            labels: &storage.labels,
            annotations: &storage.annotations,
        },
    )];
    if let Some(audit) = &storage.audit {
        claims.push(claim(
            scope,
            "audit",
            ClaimShape {
                size: &audit.size,
                storage_class: audit.storage_class_name.as_deref(),
                access_mode: audit.access_mode,
                labels: &audit.labels,
                annotations: &audit.annotations,
            },
        ));
    }

    let mut meta = metadata(
        scope,
        names.statefulset(),
        scope.labels.object(Component::Server),
    );
    if !spec.pod.stateful_set_annotations.is_empty() {
        meta.annotations = Some(spec.pod.stateful_set_annotations.clone());
    }
    let statefulset = StatefulSet {
        metadata: meta.clone(),
        spec: Some(StatefulSetSpec {
            service_name: Some(names.internal_service()),
            pod_management_policy: Some("Parallel".to_owned()),
            // vaultkeeper rolls pods itself: standbys first, the active node last, each
            // only after the previous one is unsealed and a voter again.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_owned()),
                rolling_update: None,
            }),
            replicas: Some(scope.ctx.statefulset_replicas.unwrap_or(spec.replicas)),
            selector: LabelSelector {
                match_labels: Some(scope.labels.server_selector()),
                match_expressions: None,
            },
            // A pod removed by a scale-down has also been removed from raft; a later
            // pod with that ordinal must start empty and join again, not come back with
            // a stale raft state. Deleting the cluster keeps data unless asked not to.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(
                        match spec.deletion_policy {
                            DeletionPolicy::Retain => "Retain",
                            DeletionPolicy::Delete => "Delete",
                        }
                        .to_owned(),
                    ),
                    when_scaled: Some("Delete".to_owned()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(claims),
            ..StatefulSetSpec::default()
        }),
        status: None,
    };
    Manifest::new("apps/v1", "StatefulSet", &meta, &statefulset)
}

/// The chart's default placement: at most one Vault pod per node, so losing a node
/// never costs more than one raft voter.
fn one_pod_per_node(scope: &Scope<'_>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(scope.labels.server_selector()),
                    match_expressions: None,
                }),
                topology_key: "kubernetes.io/hostname".to_owned(),
                ..PodAffinityTerm::default()
            }]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// What `spec.storage` (or its `audit`) says about one claim template.
struct ClaimShape<'a> {
    size: &'a str,
    storage_class: Option<&'a str>,
    access_mode: Option<AccessMode>,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
}

fn claim(scope: &Scope<'_>, name: &str, shape: ClaimShape<'_>) -> PersistentVolumeClaim {
    // The user's labels first: vaultkeeper's, which select the claims, win.
    let mut labels = shape.labels.clone();
    labels.extend(scope.labels.server_selector());
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            annotations: (!shape.annotations.is_empty()).then(|| shape.annotations.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![
                shape
                    .access_mode
                    .map_or("ReadWriteOnce", AccessMode::as_str)
                    .to_owned(),
            ]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(shape.size.to_owned()),
                )])),
                limits: None,
            }),
            storage_class_name: shape.storage_class.map(str::to_owned),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// The container's start script: the charts' substitution of pod facts into a copy of
/// the configuration (so `spec.config` may use `POD_IP`, `HOST_IP` and `HOSTNAME` as
/// the chart's values may), then `exec` so the server is the process Kubernetes signals.
fn start_script(scope: &Scope<'_>) -> String {
    let layout = scope.layout;
    let config = format!("{}/{}", layout.config_dir(), layout.config_file_name());
    let self_init = if scope.cluster.spec.keys.initialization == Initialization::SelfInit {
        crate::self_init::start_script_lines(&layout.config_dir())
    } else {
        String::new()
    };
    format!(
        "cp {config} /tmp/storageconfig.hcl;\n\
         {self_init}\
         [ -n \"${{HOST_IP}}\" ] && sed -Ei \"s|HOST_IP|${{HOST_IP?}}|g\" /tmp/storageconfig.hcl;\n\
         [ -n \"${{POD_IP}}\" ] && sed -Ei \"s|POD_IP|${{POD_IP?}}|g\" /tmp/storageconfig.hcl;\n\
         [ -n \"${{HOSTNAME}}\" ] && sed -Ei \"s|HOSTNAME|${{HOSTNAME?}}|g\" /tmp/storageconfig.hcl;\n\
         exec {binary} server -config=/tmp/storageconfig.hcl{extra}\n",
        binary = layout.binary(),
        extra = pod_tuning::extra_args(scope),
    )
}

fn server_container(scope: &Scope<'_>) -> Container {
    let spec = &scope.cluster.spec;
    let layout = scope.layout;
    let scheme = scope.tls.scheme();
    Container {
        name: layout.container_name().to_owned(),
        image: Some(scope.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        command: Some(vec!["/bin/sh".to_owned(), "-ec".to_owned()]),
        args: Some(vec![start_script(scope)]),
        security_context: Some(spec.pod.container_security_context.clone().unwrap_or(
            SecurityContext {
                allow_privilege_escalation: Some(false),
                ..SecurityContext::default()
            },
        )),
        env: Some(server_env(scope)),
        resources: spec.pod.resources.clone(),
        ports: Some(
            [
                container_port(scheme, API_PORT),
                container_port("https-internal", CLUSTER_PORT),
                container_port(&format!("{scheme}-rep"), CLUSTER_PORT + 1),
            ]
            .into_iter()
            .chain(spec.pod.extra_ports.iter().cloned())
            .collect(),
        ),
        volume_mounts: Some(volume_mounts(scope)),
        readiness_probe: pod_tuning::readiness_probe(scope),
        liveness_probe: pod_tuning::liveness_probe(scope),
        lifecycle: Some(pod_tuning::lifecycle(scope)),
        ..Container::default()
    }
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        ..ContainerPort::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn value_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// The charts' environment, in their order. The CLI inside the pod (the exec transport)
/// reaches the server at 127.0.0.1, which the server certificate carries, so it verifies
/// TLS. The API address other nodes and redirected clients use is the pod's fully
/// qualified name, which the certificate carries too (the charts use the bare pod IP,
/// which no certificate names).
fn server_env(scope: &Scope<'_>) -> Vec<EnvVar> {
    let layout = scope.layout;
    let scheme = scope.tls.scheme();
    let pod_name = layout.env("K8S_POD_NAME");
    let namespace = layout.env("K8S_NAMESPACE");
    let pod_fqdn = format!(
        "$({pod_name}).{}.$({namespace}).svc.{}",
        scope.names.internal_service(),
        scope.cluster.spec.cluster_domain
    );
    let mut env = vec![
        field_env("HOST_IP", "status.hostIP"),
        field_env("POD_IP", "status.podIP"),
        field_env(&pod_name, "metadata.name"),
        field_env(&namespace, "metadata.namespace"),
        value_env(
            &layout.env("ADDR"),
            format!("{scheme}://{pod_fqdn}:{API_PORT}"),
        ),
        value_env(
            &layout.env("API_ADDR"),
            format!("{scheme}://{pod_fqdn}:{API_PORT}"),
        ),
    ];
    if let TlsFiles::Enabled(files) = &scope.tls {
        env.push(value_env(&layout.env("CACERT"), files.ca_file(layout)));
    }
    env.extend([
        value_env("SKIP_CHOWN", "true"),
        value_env("SKIP_SETCAP", "true"),
        field_env("HOSTNAME", "metadata.name"),
        value_env(
            &layout.env("CLUSTER_ADDR"),
            format!(
                "https://$(HOSTNAME).{}:{CLUSTER_PORT}",
                scope.names.internal_service()
            ),
        ),
        field_env(&layout.env("RAFT_NODE_ID"), "metadata.name"),
        value_env("HOME", layout.home_dir()),
    ]);
    env.extend(seal_env(scope));
    env.extend(scope.cluster.spec.pod.env.iter().cloned());
    env
}

/// Credentials of the auto-unseal seal, from Secrets, never in the configuration.
fn seal_env(scope: &Scope<'_>) -> Vec<EnvVar> {
    let unseal = &scope.cluster.spec.unseal;
    let mut env = Vec::new();
    match unseal.kind {
        UnsealType::Transit => {
            if let Some(transit) = &unseal.transit {
                env.push(secret_env(
                    &scope.layout.env("TOKEN"),
                    &transit.token_secret.name,
                    &transit.token_secret.key,
                ));
            }
        }
        UnsealType::AwsKms => {
            if let Some(secret) = unseal
                .aws_kms
                .as_ref()
                .and_then(|k| k.credentials_secret.as_ref())
            {
                env.push(secret_env("AWS_ACCESS_KEY_ID", secret, "AWS_ACCESS_KEY_ID"));
                env.push(secret_env(
                    "AWS_SECRET_ACCESS_KEY",
                    secret,
                    "AWS_SECRET_ACCESS_KEY",
                ));
            }
        }
        UnsealType::AzureKeyVault => {
            if let Some(secret) = unseal
                .azure_key_vault
                .as_ref()
                .and_then(|k| k.credentials_secret.as_ref())
            {
                env.push(secret_env("AZURE_CLIENT_ID", secret, "AZURE_CLIENT_ID"));
                env.push(secret_env(
                    "AZURE_CLIENT_SECRET",
                    secret,
                    "AZURE_CLIENT_SECRET",
                ));
            }
        }
        UnsealType::Shamir | UnsealType::GcpCkms | UnsealType::Static => {}
    }
    env
}

/// Secrets mounted under the userconfig directory, one directory each: the TLS Secret
/// and whatever the seal needs as files.
fn mounted_secrets(scope: &Scope<'_>) -> Vec<(String, Option<String>)> {
    let unseal = &scope.cluster.spec.unseal;
    let mut secrets: Vec<(String, Option<String>)> = Vec::new();
    if let TlsFiles::Enabled(files) = &scope.tls {
        secrets.push((files.secret_name.clone(), None));
    }
    match unseal.kind {
        UnsealType::Transit => {
            if let Some(ca) = unseal.transit.as_ref().and_then(|t| t.ca_secret.as_ref()) {
                secrets.push((ca.name.clone(), Some(ca.key.clone())));
            }
        }
        UnsealType::GcpCkms => {
            if let Some(creds) = unseal
                .gcp_ckms
                .as_ref()
                .and_then(|g| g.credentials_secret.as_ref())
            {
                secrets.push((creds.name.clone(), Some(creds.key.clone())));
            }
        }
        UnsealType::Static => {
            if let Some(key) = &unseal.static_key {
                secrets.push((
                    key.key_secret.name.clone(),
                    Some(key.key_secret.key.clone()),
                ));
            }
        }
        UnsealType::Shamir | UnsealType::AwsKms | UnsealType::AzureKeyVault => {}
    }
    // One volume per Secret even when two uses name the same one.
    let mut seen = std::collections::BTreeSet::new();
    secrets.retain(|(name, _)| seen.insert(name.clone()));
    secrets
}

fn secret_volume_name(secret: &str) -> String {
    // Volume names are DNS labels; the charts use `userconfig-<secret>`.
    let name = format!("userconfig-{secret}");
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

fn volumes(scope: &Scope<'_>) -> Vec<Volume> {
    let mut volumes = vec![Volume {
        name: "config".to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: scope.names.config_map(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    for (secret, key) in mounted_secrets(scope) {
        volumes.push(Volume {
            name: secret_volume_name(&secret),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                default_mode: Some(SECRET_FILE_MODE),
                items: key.map(|key| {
                    vec![KeyToPath {
                        key: key.clone(),
                        path: key,
                        mode: None,
                    }]
                }),
                optional: Some(false),
            }),
            ..Volume::default()
        });
    }
    volumes.push(Volume {
        name: "home".to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    });
    volumes
}

fn volume_mounts(scope: &Scope<'_>) -> Vec<VolumeMount> {
    let layout = scope.layout;
    let mount = |name: &str, path: String, read_only: bool| VolumeMount {
        name: name.to_owned(),
        mount_path: path,
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    };
    let mut mounts = Vec::new();
    let storage = &scope.cluster.spec.storage;
    if let Some(audit) = &storage.audit {
        let path = audit
            .mount_path
            .clone()
            .unwrap_or_else(|| layout.audit_dir());
        mounts.push(mount("audit", path, false));
    }
    mounts.push(mount(
        "data",
        crate::config::data_dir(scope.cluster, layout),
        false,
    ));
    mounts.push(mount("config", layout.config_dir(), false));
    for (secret, _) in mounted_secrets(scope) {
        mounts.push(mount(
            &secret_volume_name(&secret),
            layout.userconfig_dir(&secret),
            true,
        ));
    }
    mounts.push(mount("home", layout.home_dir().to_owned(), false));
    mounts
}

/// The charts' budget: ⌊(n-1)/2⌋ pods may be disrupted (0 for a single pod), so a
/// voluntary eviction never costs the raft quorum.
pub fn max_unavailable(replicas: i32) -> i32 {
    if replicas <= 1 { 0 } else { (replicas - 1) / 2 }
}

fn pod_disruption_budget(scope: &Scope<'_>) -> Result<Manifest, RenderError> {
    let meta = metadata(
        scope,
        scope.names.pod_disruption_budget(),
        scope.labels.object(Component::Server),
    );
    Manifest::new(
        "policy/v1",
        "PodDisruptionBudget",
        &meta,
        &PodDisruptionBudget {
            metadata: meta.clone(),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(
                    scope
                        .cluster
                        .spec
                        .pod
                        .disruption_budget
                        .as_ref()
                        .and_then(|b| b.max_unavailable)
                        .unwrap_or_else(|| max_unavailable(scope.cluster.spec.replicas)),
                )),
                selector: Some(LabelSelector {
                    match_labels: Some(scope.labels.server_selector()),
                    match_expressions: None,
                }),
                ..PodDisruptionBudgetSpec::default()
            }),
            status: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disruption_budget_never_costs_the_quorum() {
        assert_eq!(max_unavailable(1), 0);
        assert_eq!(max_unavailable(3), 1);
        assert_eq!(max_unavailable(5), 2);
        assert_eq!(max_unavailable(7), 3);
    }

    /// The ports spec.pod.extraPorts may not take are the ones rendered here.
    #[test]
    fn reserved_extra_ports_are_the_rendered_ones() {
        assert_eq!(
            vaultkeeper_api::rules::RENDERED_PORTS,
            [API_PORT, CLUSTER_PORT, CLUSTER_PORT + 1].map(i32::from)
        );
    }
}
