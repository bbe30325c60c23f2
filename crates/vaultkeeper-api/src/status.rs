//! `VaultCluster.status`: what vaultkeeper observed, written only by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Flavor;
use crate::spec::{Initialization, UnsealType};

/// What vaultkeeper observed on its last pass. Follows the kstatus conventions:
/// `observedGeneration` says which spec it describes, and the `Ready` condition is what
/// `kubectl wait`, Flux and Argo CD health checks read.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultClusterStatus {
    /// One word for where the cluster stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Pods that exist.
    #[serde(default)]
    pub replicas: i32,

    /// Pods that are initialized, unsealed and ready to serve.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Pods that are unsealed.
    #[serde(default)]
    pub unsealed_replicas: i32,

    /// Pods that answered and are sealed.
    #[serde(default)]
    pub sealed_replicas: i32,

    /// Whether Vault has been initialized (once, ever).
    #[serde(default)]
    pub initialized: bool,

    /// What the cluster was initialized with: the fields that cannot change afterwards.
    /// The operator compares the spec with it on every pass, so a change that reached the
    /// cluster without the CRD's rules (an older CRD, a restore from etcd) is refused too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialized_with: Option<InitializedWith>,

    /// Whether the Vault-side bootstrap (Kubernetes auth, the jobs' policies and roles) is
    /// applied.
    #[serde(default)]
    pub bootstrapped: bool,

    /// The pod that is the active node, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_pod: Option<String>,

    /// The server version the pods report (the lowest, while an upgrade rolls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Per-pod detail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStatus>,

    /// Raft membership and health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft: Option<RaftStatus>,

    /// The disruptive operation under way, if any. Only one runs at a time per cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationStatus>,

    /// The key rotations done, by the request value that asked for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,

    /// Backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,

    /// The backup taken before the latest disruptive operation (`spec.backup.beforeDisruption`),
    /// or that it was skipped. An operation whose snapshot is recorded here does not take
    /// another one, however often its passes are interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotStatus>,

    /// The Prometheus metrics token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<MetricsTokenStatus>,

    /// Certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsStatus>,

    /// Custody of the init output: where its encrypted copy is escrowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeysStatus>,

    /// Ready, Initialized, Unsealed, Progressing, Degraded, BackupHealthy, TLSReady,
    /// SpecValid: each with a reason and a message a person can act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Where the cluster stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Objects are being created; no pod has answered yet.
    Pending,
    /// Pods answer; Vault is being initialized.
    Initializing,
    /// Initialized; pods are being unsealed.
    Unsealing,
    /// Every pod is unsealed, ready and a raft voter, and there is an active node.
    Ready,
    /// A rolling upgrade or a scale operation is under way.
    Updating,
    /// Serving, but not every pod is healthy.
    Degraded,
    /// Needs a person: the spec is invalid, or the keys are missing for an initialized
    /// cluster. The conditions say what to do.
    Blocked,
}

/// One pod as vaultkeeper saw it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Pod name (also its raft node id).
    pub name: String,
    /// Whether the pod answered at all.
    #[serde(default)]
    pub reachable: bool,
    /// Whether the node reports Vault initialized.
    #[serde(default)]
    pub initialized: bool,
    /// Whether the node is sealed.
    #[serde(default)]
    pub sealed: bool,
    /// The node's raft role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_role: Option<RaftRole>,
    /// Server version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether the pod runs the image the spec asks for.
    #[serde(default)]
    pub up_to_date: bool,
}

/// The fields of a cluster that are fixed once it is initialized, as they were then (the
/// effective values: the flavor detected from the image when none was set, the default
/// keys Secret name when none was given).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitializedWith {
    /// The flavor.
    pub flavor: Flavor,
    /// The seal type.
    pub unseal_type: UnsealType,
    /// The Secret holding the init output.
    pub keys_secret_name: String,
    /// Who initialized the cluster.
    pub initialization: Initialization,
}

/// A node's place in raft.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RaftRole {
    /// The active node.
    Leader,
    /// A voting standby.
    Follower,
    /// A member that does not vote (yet).
    NonVoter,
    /// Not in the raft configuration.
    NotMember,
}

/// Raft membership and health.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RaftStatus {
    /// The leader's node id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Voting members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voters: Vec<String>,
    /// Members that do not vote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_voters: Vec<String>,
    /// How many voters may fail without losing quorum (autopilot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_tolerance: Option<i32>,
    /// Whether autopilot reports the cluster healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
}

/// A disruptive operation and when it started: the per-cluster lock a person can see.
/// Taken with a write that carries the resourceVersion the operator read (a concurrent
/// change makes it fail), held until the operation ends, then removed. To break a lock
/// whose holder is gone, see `docs/operations.md` (annotation `vaultkeeper.io/break-lock`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// What is under way.
    pub kind: OperationKind,
    /// When it started.
    pub started_at: Time,
    /// Where it is, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The operator replica holding the lock (its leader-election identity, the pod
    /// name). Absent on locks written before the lock had a holder: any leader may take
    /// those over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// The kinds of disruptive operation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OperationKind {
    /// Pods are rolling to a new image or configuration.
    RollingUpdate,
    /// Raft peers of departed pods are being removed.
    ScaleDown,
    /// A snapshot is being restored.
    Restore,
    /// The unseal shares are being replaced, or the encryption key rotated.
    Rekey,
    /// A pod whose volume holds a removed raft peer's data is being reset: its data claim
    /// and the pod are deleted so it comes back empty and joins again.
    NodeReset,
}

/// The key rotations done.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    /// The last rekey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey: Option<RotationDone>,
    /// The last rotation of the encryption key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<RotationDone>,
}

/// One rotation done.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationDone {
    /// The request value (`spec.keys.rotation.*`) it answered.
    pub request: String,
    /// When it completed.
    pub completed_at: Time,
}

/// Backups as the operator last saw them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// When the last successful backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    /// The object the last successful backup wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_object: Option<String>,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_size_bytes: Option<i64>,
    /// How long it took, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_seconds: Option<f64>,
    /// When the last failed backup ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_reason: Option<String>,
}

/// The backup taken before a disruptive operation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    /// The operation it was taken for: its kind and what identifies it (the pods'
    /// target revision of a rolling update, the request of a rekey, the start of a
    /// scale-down).
    pub operation: String,
    /// Taken (the backup succeeded) or Skipped (`spec.backup.beforeDisruption: Skip`).
    pub outcome: SnapshotOutcome,
    /// The one-off backup Job that took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The object it wrote, when the Job reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// When the Job finished (or when the snapshot was skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// How the snapshot before an operation ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SnapshotOutcome {
    /// The backup succeeded.
    #[default]
    Taken,
    /// `spec.backup.beforeDisruption` was Skip when the operation went ahead.
    Skipped,
}

/// The metrics token as the operator last saw it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsTokenStatus {
    /// When the token lapses unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_time: Option<Time>,
    /// When it was last renewed or issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewal_time: Option<Time>,
}

/// Certificate expiry dates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsStatus {
    /// When the CA certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_expiry_time: Option<Time>,
    /// When the server certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_expiry_time: Option<Time>,
}

/// Custody of the init output, as the operator last wrote it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeysStatus {
    /// The encrypted copy of the key record outside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow: Option<EscrowStatus>,
}

/// The escrowed copy of the key record: which record, to whom, and where. Never the record.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EscrowStatus {
    /// SHA-256 (hex) of the key record the copy holds: compare it with
    /// `vaultkeeper keys decrypt`'s output to know a copy is the current one.
    pub fingerprint: String,
    /// SHA-256 (hex) of the recipient list it was encrypted to (sorted, one per line).
    pub recipients_fingerprint: String,
    /// How many recipients can decrypt it.
    pub recipients: i32,
    /// When it was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<Time>,
    /// The bucket holding the object, when the object store holds this record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The object key of the current copy, when the object store holds this record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// `<namespace>/<name>` of the Secret holding this record, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The condition types vaultkeeper writes.
pub mod condition {
    /// Every pod unsealed, ready and a voter, with an active node.
    pub const READY: &str = "Ready";
    /// Vault has been initialized.
    pub const INITIALIZED: &str = "Initialized";
    /// Every pod is unsealed.
    pub const UNSEALED: &str = "Unsealed";
    /// The operator is changing something (kstatus: reconciling).
    pub const PROGRESSING: &str = "Progressing";
    /// Something is wrong that the operator cannot fix by itself (kstatus: stalled).
    pub const DEGRADED: &str = "Degraded";
    /// The last backup succeeded and is recent enough.
    pub const BACKUP_HEALTHY: &str = "BackupHealthy";
    /// The metrics token is valid and scraping is set up (absent when monitoring is off).
    pub const MONITORING_READY: &str = "MonitoringReady";
    /// The certificates are valid and not about to expire.
    pub const TLS_READY: &str = "TLSReady";
    /// The spec passed validation.
    pub const SPEC_VALID: &str = "SpecValid";
    /// The backup a disruptive operation waits for succeeded (or was skipped); False
    /// while it runs or after it failed (absent without backups).
    pub const SNAPSHOT_BEFORE_DISRUPTION: &str = "SnapshotBeforeDisruption";
    /// The current key record is escrowed, encrypted, wherever `spec.keys.escrow` asks
    /// (absent without escrow or before init).
    pub const KEYS_ESCROWED: &str = "KeysEscrowed";
}
