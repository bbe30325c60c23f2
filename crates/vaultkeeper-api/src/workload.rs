//! `VaultCluster.spec.pod`: the shape of the Vault pods and their StatefulSet.
//!
//! Its own module because it carries most of the Vault Helm chart's `server.*` workload
//! settings (extra arguments and ports, host aliases, probes, shutdown timing, StatefulSet
//! annotations), each with the chart's meaning, next to the placement and security
//! settings the pods always had. What a person who may only write a VaultCluster could
//! gain from each field is decided in [`crate::rules`]; the checks live there and in
//! [`crate::validate`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ContainerPort, EnvVar, HostAlias, PodSecurityContext, ResourceRequirements,
    SecurityContext, Toleration, TopologySpreadConstraint,
};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::{defaults, rules};

/// Scheduling and shape of the Vault pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = rules::pod_env_not_reserved().rule(),
    validation = rules::extra_args_form().rule(),
    validation = rules::extra_args_not_reserved().rule(),
    validation = rules::extra_ports_no_clash().rule(),
    validation = rules::extra_ports_no_host_port().rule(),
    validation = rules::host_aliases_not_in_cluster().rule(),
    validation = rules::liveness_success_threshold().rule(),
    validation = rules::statefulset_annotations_not_reserved().rule()
)]
pub struct PodSpec {
    /// CPU and memory of the Vault container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity of the pods. Empty means one Vault pod per node (required pod
    /// anti-affinity on kubernetes.io/hostname), as the Vault Helm chart does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Topology spread constraints, e.g. across zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// More annotations on the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// More labels on the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Annotations on the pods' ServiceAccount, e.g. eks.amazonaws.com/role-arn for KMS
    /// access through IRSA.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_account_annotations: BTreeMap<String, String>,

    /// Pod security context. Empty means the Helm chart's: non-root, uid 100, gid 1000,
    /// fsGroup 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,

    /// Security context of the Vault container. Empty means no privilege escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_security_context: Option<SecurityContext>,

    /// More environment variables for the Vault container. `VAULT_*` and `BAO_*` names
    /// are refused, except VAULT_LOG_LEVEL, VAULT_LOG_FORMAT, VAULT_LICENSE,
    /// VAULT_LICENSE_PATH, BAO_LOG_LEVEL and BAO_LOG_FORMAT: the others steer the CLI
    /// vaultkeeper runs in the container with unseal shares and tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// More arguments for `vault server` (`bao server`), after the `-config` vaultkeeper
    /// passes, as the chart's `server.extraArgs`. One flag per entry, written `-flag` or
    /// `-flag=value`, for example `-log-level=debug` or `-exit-on-core-shutdown`. Refused:
    /// `-config` (a second configuration file could replace the listener, storage or seal
    /// vaultkeeper renders), `-dev*` and `-recovery` (other server modes, in which the
    /// cluster cannot be initialized, unsealed or joined), and anything that is not a flag.
    /// Never put a secret here: the arguments are visible in the pod's command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 1024)))]
    pub extra_args: Vec<String>,

    /// More ports on the Vault container, as the chart's `server.extraPorts` (for a
    /// listener added through `spec.config`, for example). They may not reuse 8200, 8201
    /// or 8202 or the names vaultkeeper gives those ports (http, https, https-internal,
    /// http-rep, https-rep), and may not set hostPort or hostIP: a port on the node's own
    /// address would bypass the Services and the NetworkPolicy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::extra_ports")]
    pub extra_ports: Vec<ContainerPort>,

    /// Entries for the pods' /etc/hosts, as the chart's `server.hostAliases` (for a KMS or
    /// transit endpoint without DNS, for example). Names of in-cluster Services (`*.svc`,
    /// `*.svc.*`), `localhost` and the names of this cluster's own Services and pods are
    /// refused: the pods reach each other and their peers by those names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::host_aliases")]
    pub host_aliases: Vec<HostAlias>,

    /// Seconds Kubernetes waits between asking the Vault container to stop and killing
    /// it. Default 10, as in the chart. It includes `preStopSleepSeconds`, so keep it
    /// longer than that sleep or the server is killed without a clean shutdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub termination_grace_period_seconds: Option<i64>,

    /// Seconds the container sleeps before it is asked to stop, so endpoint removal
    /// reaches every client first and no request lands on a stopping pod. Default 5, as in
    /// the chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub pre_stop_sleep_seconds: Option<i32>,

    /// The readiness probe. Default on: an HTTP GET of vaultkeeper's readiness path
    /// (sys/health with standbys ready and sealed or uninitialized pods not ready) every
    /// 5 seconds after 5, timeout 3, ready after 1 success, unready after 2 failures.
    /// Turning it off makes sealed pods receive traffic from the Services and count as
    /// ready in the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<ProbeSpec>,

    /// The liveness probe. Default off, as in the chart. When enabled: an HTTP GET of
    /// `/v1/sys/health?standbyok=true&sealedcode=204&uninitcode=204` (a sealed or
    /// uninitialized server is alive: restarting it would not unseal it) every 5 seconds
    /// after 60, timeout 3, restarted after 2 failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<ProbeSpec>,

    /// More annotations on the StatefulSet itself (not its pods), as the chart's
    /// `server.statefulSet.annotations`. Keys under `vaultkeeper.io/` are refused: that
    /// prefix is vaultkeeper's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub stateful_set_annotations: BTreeMap<String, String>,

    /// The PodDisruptionBudget `<name>`, as the chart's `server.ha.disruptionBudget`.
    /// Default on, with ⌊(replicas-1)/2⌋ pods that a voluntary eviction (a node drain)
    /// may take down at once, so a drain never costs the raft quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<DisruptionBudgetSpec>,
}

/// The PodDisruptionBudget of the Vault pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudgetSpec {
    /// Whether the budget is rendered. Default true; without it a node drain may evict
    /// every Vault pod at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// How many pods may be down for voluntary evictions at once. Default
    /// ⌊(replicas-1)/2⌋ (0 for one replica); more than that is refused, because the
    /// evictions would then be allowed to break the raft quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_unavailable: Option<i32>,
}

/// Tuning of a probe of the Vault container, as the chart's `server.readinessProbe` and
/// `server.livenessProbe`. Every field left out keeps the probe's default.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::probe_path_absolute().rule())]
pub struct ProbeSpec {
    /// Whether the probe runs. Default true for the readiness probe, false for the
    /// liveness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// The HTTP path the probe requests, starting with `/`, for example
    /// `/v1/sys/health?standbyok=true`. The scheme follows spec.tls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub path: Option<String>,

    /// The container port the probe requests. Default 8200, the API port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,

    /// Seconds after the container starts before the first probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub initial_delay_seconds: Option<i32>,

    /// Seconds between probes (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub period_seconds: Option<i32>,

    /// Seconds one probe may take (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<i32>,

    /// Consecutive successes after a failure to count as passing (at least 1; Kubernetes
    /// requires exactly 1 for a liveness probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub success_threshold: Option<i32>,

    /// Consecutive failures to count as failing (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub failure_threshold: Option<i32>,
}

/// Persistent volumes of the Vault pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = rules::storage_mount_path("spec.storage.mountPath").rule(),
    validation = rules::storage_mount_paths_distinct().rule(),
    validation = rules::claim_annotations_not_reserved("spec.storage.annotations").rule()
)]
pub struct StorageSpec {
    /// Size of each pod's raft data volume (a PersistentVolumeClaim from the `data` claim
    /// template). Default 10Gi.
    #[serde(default = "defaults::storage_size")]
    #[schemars(length(min = 1))]
    pub size: String,

    /// StorageClass of the data volumes. Empty means the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// Where the data volume is mounted, and so the raft `path` in the rendered
    /// configuration, as the chart's `server.dataStorage.mountPath`. Default /vault/data
    /// (/openbao/data for OpenBao). An absolute path outside the directories vaultkeeper
    /// mounts (config, userconfig, home) and /var/run/secrets. Changing it on a running
    /// cluster moves no data: the pods would start with an empty raft directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub mount_path: Option<String>,

    /// Access mode of the claims: ReadWriteOnce (default, as in the chart),
    /// ReadWriteOncePod or ReadWriteMany. Vault writes to the volume, so ReadOnlyMany is
    /// not offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<AccessMode>,

    /// More labels on the claims (the claim template's). vaultkeeper's own labels, which
    /// select the claims, win over a key given here too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub labels: BTreeMap<String, String>,

    /// Annotations on the claims (the claim template's), for a provisioner's settings.
    /// Keys under pv.kubernetes.io/ and volume.kubernetes.io/ are refused: Kubernetes'
    /// volume controllers write those to record binding and provisioning.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub annotations: BTreeMap<String, String>,

    /// An audit log volume mounted at /vault/audit, for a file audit device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditStorageSpec>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: defaults::storage_size(),
            storage_class_name: None,
            mount_path: None,
            access_mode: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            audit: None,
        }
    }
}

/// The audit log volume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = rules::storage_mount_path("spec.storage.audit.mountPath").rule(),
    validation = rules::claim_annotations_not_reserved("spec.storage.audit.annotations").rule()
)]
pub struct AuditStorageSpec {
    /// Size of each pod's audit volume. Default 10Gi.
    #[serde(default = "defaults::storage_size")]
    #[schemars(length(min = 1))]
    pub size: String,

    /// StorageClass of the audit volumes. Empty means the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// Where the audit volume is mounted, as the chart's `server.auditStorage.mountPath`.
    /// Default /vault/audit (/openbao/audit for OpenBao). The same limits as
    /// spec.storage.mountPath, and not the data volume's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub mount_path: Option<String>,

    /// Access mode of the claims: ReadWriteOnce (default, as in the chart),
    /// ReadWriteOncePod or ReadWriteMany. Vault writes to the volume, so ReadOnlyMany is
    /// not offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<AccessMode>,

    /// More labels on the claims (the claim template's). vaultkeeper's own labels, which
    /// select the claims, win over a key given here too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub labels: BTreeMap<String, String>,

    /// Annotations on the claims (the claim template's), for a provisioner's settings.
    /// Keys under pv.kubernetes.io/ and volume.kubernetes.io/ are refused: Kubernetes'
    /// volume controllers write those to record binding and provisioning.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub annotations: BTreeMap<String, String>,
}

/// Access mode of a volume claim.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum AccessMode {
    /// Read-write by the pods of one node.
    ReadWriteOnce,
    /// Read-write by one pod.
    ReadWriteOncePod,
    /// Read-write by pods on many nodes.
    ReadWriteMany,
}

impl AccessMode {
    /// The value Kubernetes expects.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadWriteOncePod => "ReadWriteOncePod",
            AccessMode::ReadWriteMany => "ReadWriteMany",
        }
    }
}
