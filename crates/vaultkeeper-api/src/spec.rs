//! `VaultCluster.spec`: what a platform team writes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::status::VaultClusterStatus;
use crate::workload::{PodSpec, StorageSpec};
use crate::{Flavor, defaults, rules};

/// A Vault (or OpenBao) cluster: a raft-replicated StatefulSet that vaultkeeper renders,
/// initializes exactly once, unseals after every restart, backs up and monitors.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "vaultkeeper.io",
    version = "v1alpha1",
    kind = "VaultCluster",
    namespaced,
    shortname = "vc",
    category = "vault",
    status = "VaultClusterStatus",
    derive = "PartialEq",
    doc = "A Vault or OpenBao cluster managed by vaultkeeper.",
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Sealed", type_ = "integer", json_path = ".status.sealedReplicas"),
    printcolumn(name = "Active", type_ = "string", json_path = ".status.activePod"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Last Backup",
        type_ = "date",
        json_path = ".status.backup.lastSuccessTime"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = rules::name_length().rule(),
    validation = rules::name_format().rule()
)]
#[x_kube(
    validation = rules::static_seal_needs_openbao().rule(),
    validation = rules::self_init_needs_openbao().rule(),
    validation = rules::self_init_needs_auto_unseal().rule(),
    validation = rules::rekey_needs_shamir().rule(),
    validation = rules::passthrough_needs_tls().rule(),
    validation = rules::http_transport_needs_tls().rule(),
    validation = rules::flavor_immutable().rule(),
    validation = rules::unseal_type_immutable().rule(),
    validation = rules::keys_secret_immutable().rule(),
    validation = rules::initialization_immutable().rule(),
    validation = rules::disruption_budget_keeps_quorum().rule()
)]
#[serde(rename_all = "camelCase")]
pub struct VaultClusterSpec {
    /// Number of Vault server pods and raft voters: 1, 3, 5 or 7. Three survive the loss
    /// of one pod, five of two. Scaling is safe in both directions: new pods join raft by
    /// themselves, departed ones are removed from the peer set.
    #[serde(default = "defaults::replicas")]
    #[x_kube(validation = rules::replicas().rule())]
    pub replicas: i32,

    /// Server image. Empty means the current release of the flavor: hashicorp/vault 2.0.x
    /// or quay.io/openbao/openbao 2.7.x. Changing it rolls the pods one at a time,
    /// standbys first and the active node last, each only after the previous one is
    /// unsealed and a voter again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// Vault or OpenBao. Decides the CLI inside the pod (`vault` or `bao`), the default
    /// image and the pod labels written by service registration. Empty means detected
    /// from the image: an image whose name mentions openbao is OpenBao, any other Vault.
    /// Fixed once set: to move between flavors, restore a snapshot into a new cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<Flavor>,

    /// Pull policy of the server image (Always, IfNotPresent or Never). Empty means the
    /// Kubernetes default for the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets with registry credentials for pulling the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// The raft data volume of every pod, and an optional audit log volume.
    #[serde(default)]
    pub storage: StorageSpec,

    /// How the listener's TLS certificate is provided. Default SelfSigned: vaultkeeper
    /// runs its own certificate authority for this cluster.
    #[serde(default)]
    pub tls: TlsSpec,

    /// How the barrier is unsealed: Shamir key shares kept by vaultkeeper (the default), or
    /// an auto-unseal seal (Transit, AWS KMS, GCP Cloud KMS, Azure Key Vault, OpenBao's
    /// Static key) with recovery shares.
    #[serde(default)]
    pub unseal: UnsealSpec,

    /// Where the init output (unseal or recovery shares, root token) is kept and what
    /// happens to the root token after bootstrap.
    #[serde(default)]
    pub keys: KeysSpec,

    /// How vaultkeeper talks to each pod: Exec (default; the CLI inside the container
    /// through the pods/exec API, no network path needed) or Http (the API at each pod's
    /// address, verified against the cluster CA).
    #[serde(default)]
    pub transport: Transport,

    /// Extra server configuration merged into the rendered one, as a map of Vault
    /// configuration keys (for example `log_level: debug`, `plugin_directory`,
    /// `default_lease_ttl`, `telemetry`). Keys vaultkeeper renders itself (storage,
    /// ha_storage, listener, service_registration, seal, api_addr, cluster_addr,
    /// initialize) are refused with the field that configures them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::vault_config")]
    pub config: Option<serde_json::Map<String, serde_json::Value>>,

    /// The web UI and its `<name>-ui` Service.
    #[serde(default)]
    pub ui: UiSpec,

    /// The main `<name>` Service (also `<name>-active` and `<name>-standby`).
    #[serde(default)]
    pub service: ServiceSpec,

    /// An Ingress for clients outside the cluster.
    #[serde(default)]
    pub ingress: IngressSpec,

    /// A NetworkPolicy limiting who may reach the pods.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,

    /// Scheduled, encrypted raft snapshots to S3. On by default: set `enabled: false` to
    /// opt out, otherwise name a bucket and credentials.
    #[serde(default)]
    pub backup: BackupSpec,

    /// Prometheus metrics: telemetry, the scrape token and its renewal, ServiceMonitor and
    /// alerts.
    #[serde(default)]
    pub monitoring: MonitoringSpec,

    /// Scheduling and shape of the Vault pods: resources, placement, annotations,
    /// security context.
    #[serde(default)]
    pub pod: PodSpec,

    /// The cluster's DNS domain, used for the certificate's names. Default cluster.local.
    #[serde(default = "defaults::cluster_domain")]
    #[schemars(length(min = 1))]
    pub cluster_domain: String,

    /// What deleting the VaultCluster does to data and keys. Retain (default) keeps the
    /// raft volumes and the keys Secret, so re-applying the manifest adopts them without a
    /// new init; Delete removes both.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Namespaces whose configuration resources (VaultPolicy) may configure this
    /// cluster's Vault, besides the cluster's own namespace, which always may. `*` admits
    /// every namespace. A resource from any other namespace is refused with a Synced=False
    /// condition and changes nothing. Whoever may write those resources in a listed
    /// namespace may create or change any policy in this Vault except vaultkeeper's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_config_namespaces: Vec<String>,
}

/// Image pull policy of a container.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull on every pod start.
    Always,
    /// Pull only when the node does not have the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    /// The value Kubernetes expects.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// TLS of the Vault listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = rules::tls_secret_needs_name().rule(),
    validation = rules::tls_secret_name_only_with_secret_mode().rule(),
    validation = rules::tls_cert_manager_needs_issuer().rule(),
    validation = rules::tls_cert_manager_only_with_mode().rule()
)]
pub struct TlsSpec {
    /// SelfSigned (default): vaultkeeper's own CA in the Secret `<name>-ca-internal` and a
    /// server certificate for every Service and pod name, renewed before it expires.
    /// CertManager: a cert-manager Certificate from the named issuer. Secret: a Secret you
    /// provide with tls.crt, tls.key and ca.crt. Disabled: plain HTTP, for development only.
    #[serde(default)]
    pub mode: TlsMode,

    /// The issuer for mode CertManager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<IssuerRef>,

    /// The Secret (tls.crt, tls.key, ca.crt) for mode Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// More DNS names for the server certificate (SelfSigned and CertManager), for
    /// example an external name clients use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_dns_names: Vec<String>,
}

/// How the listener's certificate is provided.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum TlsMode {
    /// vaultkeeper's own CA and server certificate.
    #[default]
    SelfSigned,
    /// A cert-manager Certificate.
    CertManager,
    /// A Secret you provide.
    Secret,
    /// No TLS (development only: tokens and keys would cross the network in clear text).
    Disabled,
}

/// A cert-manager issuer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// Name of the Issuer or ClusterIssuer.
    #[schemars(length(min = 1))]
    pub issuer_name: String,

    /// Issuer (default, in the VaultCluster's namespace) or ClusterIssuer.
    #[serde(default = "defaults::issuer_kind")]
    pub issuer_kind: IssuerKind,

    /// API group of the issuer. Default cert-manager.io.
    #[serde(default = "defaults::issuer_group")]
    pub issuer_group: String,
}

/// Namespaced Issuer or ClusterIssuer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum IssuerKind {
    /// An Issuer in the VaultCluster's namespace.
    Issuer,
    /// A cluster-wide ClusterIssuer.
    ClusterIssuer,
}

impl IssuerKind {
    /// The kind as cert-manager spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerKind::Issuer => "Issuer",
            IssuerKind::ClusterIssuer => "ClusterIssuer",
        }
    }
}

/// How the barrier is unsealed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = rules::seal_type_needs_block("Transit", "transit").rule(),
    validation = rules::seal_block_needs_type("Transit", "transit").rule(),
    validation = rules::seal_type_needs_block("AwsKms", "awsKms").rule(),
    validation = rules::seal_block_needs_type("AwsKms", "awsKms").rule(),
    validation = rules::seal_type_needs_block("GcpCkms", "gcpCkms").rule(),
    validation = rules::seal_block_needs_type("GcpCkms", "gcpCkms").rule(),
    validation = rules::seal_type_needs_block("AzureKeyVault", "azureKeyVault").rule(),
    validation = rules::seal_block_needs_type("AzureKeyVault", "azureKeyVault").rule(),
    validation = rules::seal_type_needs_block("Static", "static").rule(),
    validation = rules::seal_block_needs_type("Static", "static").rule(),
    validation = rules::shamir_only_with_shamir().rule(),
    validation = rules::recovery_only_with_auto_unseal().rule()
)]
pub struct UnsealSpec {
    /// Shamir (default): vaultkeeper keeps the key shares and unseals every pod after
    /// every restart. Transit, AwsKms, GcpCkms, AzureKeyVault, Static: the seal unseals by
    /// itself and init hands out recovery shares instead. Fixed once the cluster exists:
    /// to change the seal, restore a snapshot into a new cluster.
    #[serde(default, rename = "type")]
    pub kind: UnsealType,

    /// Number of unseal key shares and how many unseal. Type Shamir only; default 5 and 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shamir: Option<ShamirSpec>,

    /// Number of recovery key shares and how many are needed (to generate a root token,
    /// for example). Auto-unseal types only; default 5 and 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoverySpec>,

    /// Transit seal: another Vault's transit engine holds the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit: Option<TransitSeal>,

    /// AWS KMS seal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_kms: Option<AwsKmsSeal>,

    /// Google Cloud KMS seal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_ckms: Option<GcpCkmsSeal>,

    /// Azure Key Vault seal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_key_vault: Option<AzureKeyVaultSeal>,

    /// OpenBao's static seal: a 32-byte key from a Secret (OpenBao only).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "static")]
    pub static_key: Option<StaticSeal>,
}

impl UnsealSpec {
    /// The shares init hands out: Shamir unseal shares or recovery shares, with defaults.
    pub fn shares(&self) -> ShareCounts {
        let configured = match self.kind {
            UnsealType::Shamir => self.shamir.as_ref().map(|s| (s.shares, s.threshold)),
            _ => self.recovery.as_ref().map(|r| (r.shares, r.threshold)),
        };
        configured.map_or_else(ShareCounts::default, |(shares, threshold)| ShareCounts {
            shares,
            threshold,
        })
    }
}

/// The seal type.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum UnsealType {
    /// Shamir key shares, kept by vaultkeeper.
    #[default]
    Shamir,
    /// Vault transit engine.
    Transit,
    /// AWS KMS.
    AwsKms,
    /// Google Cloud KMS.
    GcpCkms,
    /// Azure Key Vault.
    AzureKeyVault,
    /// OpenBao static key.
    Static,
}

impl UnsealType {
    /// Whether the seal unseals by itself (everything but Shamir).
    pub fn is_auto_unseal(self) -> bool {
        self != UnsealType::Shamir
    }
}

/// The Shamir unseal key shares init hands out.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = rules::share_rules("spec.unseal.shamir")[0].rule(),
    validation = rules::share_rules("spec.unseal.shamir")[1].rule()
)]
pub struct ShamirSpec {
    /// Number of unseal key shares (1 to 255). Default 5.
    #[serde(default = "defaults::shamir_shares")]
    #[schemars(range(min = 1, max = 255))]
    pub shares: i32,

    /// Number of shares that unseal (1 to shares; at least 2 when there are several
    /// shares). Default 3.
    #[serde(default = "defaults::shamir_threshold")]
    #[schemars(range(min = 1, max = 255))]
    pub threshold: i32,
}

/// The recovery key shares an auto-unseal cluster's init hands out (needed to generate a
/// root token or to rekey, never to unseal).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = rules::share_rules("spec.unseal.recovery")[0].rule(),
    validation = rules::share_rules("spec.unseal.recovery")[1].rule()
)]
pub struct RecoverySpec {
    /// Number of recovery key shares (1 to 255). Default 5.
    #[serde(default = "defaults::shamir_shares")]
    #[schemars(range(min = 1, max = 255))]
    pub shares: i32,

    /// Number of recovery shares needed (1 to shares; at least 2 when there are several
    /// shares). Default 3.
    #[serde(default = "defaults::shamir_threshold")]
    #[schemars(range(min = 1, max = 255))]
    pub threshold: i32,
}

/// How many shares init hands out and how many are needed, whatever their kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareCounts {
    /// Number of shares.
    pub shares: i32,
    /// Number of shares needed.
    pub threshold: i32,
}

impl Default for ShareCounts {
    fn default() -> Self {
        Self {
            shares: defaults::shamir_shares(),
            threshold: defaults::shamir_threshold(),
        }
    }
}

/// A key inside a Secret in the VaultCluster's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// Transit seal settings. The token reaches the pods as `VAULT_TOKEN` from a Secret; it is
/// never written into the configuration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TransitSeal {
    /// Address of the Vault that serves the transit engine, e.g. https://vault-transit:8200.
    #[schemars(length(min = 1))]
    pub address: String,

    /// Name of the transit key.
    #[schemars(length(min = 1))]
    pub key_name: String,

    /// Mount path of the transit engine. Default transit/.
    #[serde(default = "defaults::transit_mount_path")]
    pub mount_path: String,

    /// Vault namespace of the transit engine (Vault Enterprise / OpenBao namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// The Secret key with the token that may encrypt and decrypt with the transit key.
    pub token_secret: TokenSecretRef,

    /// A Secret key with the CA certificate (PEM) of the transit Vault, mounted into the
    /// pods and used as tls_ca_cert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeyRef>,

    /// The TLS server name to verify, when it differs from the address's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

/// A Secret key holding a token. Key defaults to `token`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the Secret. Default token.
    #[serde(default = "defaults::secret_key_token")]
    pub key: String,
}

/// AWS KMS seal settings. Credentials come from the pod's identity (IRSA through
/// `pod.serviceAccountAnnotations`) or from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsKmsSeal {
    /// AWS region of the key.
    #[schemars(length(min = 1))]
    pub region: String,
    /// Key id, ARN or alias of the KMS key.
    #[schemars(length(min = 1))]
    pub kms_key_id: String,
    /// A KMS endpoint other than the region's default (VPC endpoint, FIPS endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// A Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, passed to the pods as
    /// environment variables. Empty means the pod's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// Google Cloud KMS seal settings. Credentials come from workload identity or from a
/// Secret with a service-account key file.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GcpCkmsSeal {
    /// GCP project of the key ring.
    #[schemars(length(min = 1))]
    pub project: String,
    /// Location of the key ring, e.g. global or europe-west1.
    #[schemars(length(min = 1))]
    pub region: String,
    /// Name of the key ring.
    #[schemars(length(min = 1))]
    pub key_ring: String,
    /// Name of the crypto key.
    #[schemars(length(min = 1))]
    pub crypto_key: String,
    /// A Secret key with a service-account JSON key file, mounted into the pods and named
    /// by GOOGLE_APPLICATION_CREDENTIALS. Empty means workload identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<SecretKeyRef>,
}

/// Azure Key Vault seal settings. Credentials come from a managed identity or from a
/// Secret with AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVaultSeal {
    /// Azure tenant id.
    #[schemars(length(min = 1))]
    pub tenant_id: String,
    /// Name of the Key Vault.
    #[schemars(length(min = 1))]
    pub vault_name: String,
    /// Name of the key.
    #[schemars(length(min = 1))]
    pub key_name: String,
    /// Azure environment, e.g. AZUREPUBLICCLOUD (default when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// A Secret with AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, passed to the pods as
    /// environment variables. Empty means a managed identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// OpenBao's static seal: the barrier key is wrapped with a 32-byte key you keep in a
/// Secret. Simple, and only as safe as that Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StaticSeal {
    /// The Secret key with exactly 32 bytes of key material, mounted into the pods.
    pub key_secret: StaticKeySecretRef,
    /// An identifier for the key, recorded with the wrapped barrier key so a later key
    /// rotation can tell keys apart. Default k1.
    #[serde(default = "defaults::static_key_id")]
    pub key_id: String,
}

/// A Secret key with the static seal key. Key defaults to `key`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StaticKeySecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the Secret. Default key.
    #[serde(default = "defaults::secret_key_key")]
    pub key: String,
}

/// Custody of the init output.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeysSpec {
    /// The Secret that keeps the init output (unseal or recovery shares, and the root
    /// token while it is kept). Default `<name>-unseal-keys`. It is never owned by the
    /// VaultCluster, so garbage collection can never delete it. Copy its shares somewhere
    /// safe outside the cluster as well. Fixed once the cluster exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// What happens to the initial root token once bootstrap is done. Revoke (default):
    /// it is revoked; later privileged steps use a short-lived root token generated from
    /// the kept shares. Keep: it stays in the keys Secret.
    #[serde(default)]
    pub root_token: RootTokenPolicy,

    /// Who initializes the cluster. Operator (default): vaultkeeper runs init exactly
    /// once and keeps the output. SelfInit (OpenBao only, with auto-unseal): OpenBao
    /// initializes itself from declarative `initialize` stanzas and vaultkeeper only
    /// observes and bootstraps. Fixed once the cluster exists.
    #[serde(default)]
    pub initialization: Initialization,

    /// Key rotations a person asks for. Each field is a request: set it to a new value
    /// (a date, a ticket number) and vaultkeeper performs that rotation once, records
    /// the value in `status.rotation`, and does nothing more until it changes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<KeyRotation>,

    /// An encrypted copy of the init output kept outside the cluster, so that losing the
    /// namespace or etcd does not lose the keys. The key record is encrypted to age
    /// recipients whose identities people hold; the operator can never decrypt it. See
    /// docs/custody.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow: Option<EscrowSpec>,
}

/// Key rotations, each asked for by a new value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRotation {
    /// A rekey: new unseal (or recovery) shares, in the same number and threshold, and a
    /// new root key behind them. The old shares stop working. The new ones are saved in
    /// the keys Secret before they take effect; the old ones are kept there until every
    /// pod has been unsealed with the new ones. Any new value asks for one rekey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub rekey: Option<String>,

    /// A rotation of the keyring's encryption key (`sys/rotate/keyring`, `sys/rotate` on
    /// Vault): new data is encrypted with a new key; shares do not change. Any new value
    /// asks for one rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub encryption_key: Option<String>,
}

/// Where the encrypted copy of the init output goes, and to whom it is encrypted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EscrowSpec {
    /// age X25519 public keys (`age1...`, from `age-keygen` or `vaultkeeper keys
    /// generate-identity`). Any one of their identities decrypts the copy; give at least
    /// two people's, kept apart.
    #[schemars(length(min = 1, max = 20))]
    pub recipients: Vec<String>,

    /// Write the encrypted copy to the backup bucket, next to the backups:
    /// `<spec.backup.s3.prefix>/escrow/<name>/<time>-<fingerprint>.age`. Default true;
    /// needs `spec.backup` with an S3 bucket.
    #[serde(default = "defaults::yes")]
    pub object_store: bool,

    /// Also write the encrypted copy (ciphertext only) to this Secret, usually in another
    /// namespace. The operator must be allowed to write Secrets there (bind its ClusterRole
    /// in that namespace as for a watched one). A Secret there that is not this cluster's
    /// escrow is never overwritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<EscrowSecretRef>,
}

/// A Secret that receives the encrypted copy of the init output.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EscrowSecretRef {
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What happens to the initial root token.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum RootTokenPolicy {
    /// Revoke it after bootstrap.
    #[default]
    Revoke,
    /// Keep it in the keys Secret.
    Keep,
}

/// Who initializes the cluster.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum Initialization {
    /// vaultkeeper initializes exactly once and keeps the output.
    #[default]
    Operator,
    /// OpenBao initializes itself (OpenBao >= 2.4, auto-unseal only).
    SelfInit,
}

/// How vaultkeeper reaches each pod.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum Transport {
    /// The CLI inside the container through the pods/exec API. Secrets go over stdin,
    /// never into the command line the API server's audit log records.
    #[default]
    Exec,
    /// The HTTP API at each pod's address, verified against the cluster CA.
    Http,
}

/// The web UI.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UiSpec {
    /// Serve the web UI and render the `<name>-ui` Service. Default true.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,

    /// Type of the `<name>-ui` Service. Default ClusterIP.
    #[serde(default)]
    pub service_type: ServiceType,

    /// Annotations of the `<name>-ui` Service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for UiSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            service_type: ServiceType::default(),
            annotations: BTreeMap::new(),
        }
    }
}

/// Kubernetes Service types.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum ServiceType {
    /// A cluster-internal virtual IP.
    #[default]
    ClusterIP,
    /// A port on every node.
    NodePort,
    /// A cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The value Kubernetes expects.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// The main Services.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Type of the `<name>`, `<name>-active` and `<name>-standby` Services. Default
    /// ClusterIP.
    #[serde(default, rename = "type")]
    pub service_type: ServiceType,

    /// Annotations of those Services.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An Ingress in front of the active node.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::ingress_needs_hosts().rule())]
pub struct IngressSpec {
    /// Render the Ingress. Default false.
    #[serde(default)]
    pub enabled: bool,

    /// IngressClass, e.g. nginx. Empty means the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,

    /// External DNS names. They are also added to the server certificate (SelfSigned and
    /// CertManager modes), which passthrough needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,

    /// HTTP path. Default /.
    #[serde(default = "defaults::ingress_path")]
    pub path: String,

    /// Route to the `<name>-active` Service (default true), so requests never take the
    /// extra hop through a standby; false routes to `<name>`.
    #[serde(default = "defaults::yes")]
    pub active_only: bool,

    /// More annotations for the Ingress.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// TLS at the ingress.
    #[serde(default)]
    pub tls: IngressTlsSpec,
}

/// TLS of the Ingress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::passthrough_excludes_cert_manager().rule())]
pub struct IngressTlsSpec {
    /// Pass TLS through to Vault untouched (ingress-nginx ssl-passthrough): clients see
    /// Vault's own certificate and can use TLS client certificates end to end.
    #[serde(default)]
    pub passthrough: bool,

    /// Have cert-manager issue the ingress certificate (annotation on the Ingress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<IssuerRef>,

    /// The Secret with the ingress certificate. Default `<name>-ingress-tls` when
    /// cert-manager issues it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// A NetworkPolicy for the Vault pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Render the NetworkPolicy. Default false. When on, the raft port 8201 accepts only
    /// the cluster's own pods, and the API port 8200 accepts the peers listed in
    /// `apiFrom` (everyone when empty).
    #[serde(default)]
    pub enabled: bool,

    /// Who may reach the API port 8200. Empty means everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_from: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
}

/// Scheduled encrypted backups.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = rules::backup_needs_bucket().rule(),
    validation = rules::backup_one_store().rule(),
    validation = rules::backup_needs_credentials().rule(),
    validation = rules::gcs_needs_credentials().rule(),
    validation = rules::azure_needs_credentials().rule()
)]
pub struct BackupSpec {
    /// Take backups. Default true: backups are opt-out.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,

    /// Cron schedule of the backup CronJob. Default every six hours ("0 */6 * * *").
    #[serde(default = "defaults::backup_schedule")]
    #[schemars(length(max = 100))]
    #[x_kube(validation = rules::backup_schedule().rule())]
    pub schedule: String,

    /// Time zone of the schedule (IANA name, e.g. Europe/Berlin). Empty means the
    /// controller manager's time zone, usually UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,

    /// Pause scheduled backups without removing the CronJob.
    #[serde(default)]
    pub suspend: bool,

    /// Where backups go: Amazon S3 or an S3-compatible service. Set exactly one of s3,
    /// gcs and azure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,

    /// Where backups go: Google Cloud Storage. Set exactly one of s3, gcs and azure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsSpec>,

    /// Where backups go: Azure Blob Storage. Set exactly one of s3, gcs and azure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSpec>,

    /// The Secret key with the 32-byte backup encryption key. Default
    /// `<name>-backup-key` / `key`, generated when absent. Keep a copy outside the
    /// cluster: without it no backup can be restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_secret: Option<SecretKeyRef>,

    /// Which backups to keep. Default: the last 30.
    #[serde(default)]
    pub retention: RetentionSpec,

    /// Successful backup Jobs kept for inspection. Default 3.
    #[serde(default = "defaults::history_limit")]
    #[schemars(range(min = 0))]
    pub successful_jobs_history_limit: i32,

    /// Failed backup Jobs kept for inspection. Default 3.
    #[serde(default = "defaults::history_limit")]
    #[schemars(range(min = 0))]
    pub failed_jobs_history_limit: i32,

    /// A backup Job running longer than this is stopped and counted as failed.
    /// Default 3600.
    #[serde(default = "defaults::backup_deadline_seconds")]
    #[schemars(range(min = 60))]
    pub active_deadline_seconds: i64,

    /// Resources of the backup container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Whether a disruptive operation first takes a backup and waits for it to succeed:
    /// a rolling update of the pods (an image or configuration change), a rekey
    /// (`spec.keys.rotation.rekey`), or a scale-down that removes raft peers. Required
    /// (the default): the operator runs a one-off backup Job from the backup CronJob's
    /// template before the operation's first disruptive step, and a failed backup blocks
    /// the operation (condition SnapshotBeforeDisruption, reason SnapshotFailed) until a
    /// retried backup succeeds or this field is set to Skip. Skip: operations run without
    /// that backup. Without backups (`enabled: false`, or no s3, gcs or azure store) there
    /// is nothing to take and operations never wait.
    #[serde(default)]
    pub before_disruption: BeforeDisruption,
}

/// Whether a disruptive operation waits for a backup first.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum BeforeDisruption {
    /// Take a backup first; the operation waits for it and a failed one blocks it.
    #[default]
    Required,
    /// Run the operation without a backup first (the override for a failing one).
    Skip,
}

impl Default for BackupSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            schedule: defaults::backup_schedule(),
            time_zone: None,
            suspend: false,
            s3: None,
            gcs: None,
            azure: None,
            encryption_key_secret: None,
            retention: RetentionSpec::default(),
            successful_jobs_history_limit: defaults::history_limit(),
            failed_jobs_history_limit: defaults::history_limit(),
            active_deadline_seconds: defaults::backup_deadline_seconds(),
            resources: None,
            before_disruption: BeforeDisruption::Required,
        }
    }
}

/// The S3 bucket for backups.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// Bucket name.
    pub bucket: String,

    /// Key prefix inside the bucket. Default `<namespace>/<name>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,

    /// Region. Default us-east-1.
    #[serde(default = "defaults::s3_region")]
    pub region: String,

    /// Endpoint of an S3-compatible service (MinIO, Ceph, Garage…). Empty means AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Path-style addressing (bucket in the path, not the host name), which most
    /// S3-compatible services need.
    #[serde(default)]
    pub force_path_style: bool,

    /// The Secret with the access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<S3CredentialsSecret>,

    /// Use the pod's ambient credentials (IRSA, instance profile, workload identity)
    /// instead of a Secret.
    #[serde(default)]
    pub use_ambient_credentials: bool,
}

/// A Secret with an S3 access key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsSecret {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key with the access key id. Default AWS_ACCESS_KEY_ID.
    #[serde(default = "defaults::access_key_id_key")]
    pub access_key_id_key: String,
    /// Key with the secret access key. Default AWS_SECRET_ACCESS_KEY.
    #[serde(default = "defaults::secret_access_key_key")]
    pub secret_access_key_key: String,
}

impl BackupSpec {
    /// Whether an object store is configured (s3, gcs or azure).
    pub fn has_store(&self) -> bool {
        self.s3.is_some() || self.gcs.is_some() || self.azure.is_some()
    }

    /// Whether disruptive operations wait for a backup first: backups on, a store to send
    /// them to, and `beforeDisruption` not Skip.
    pub fn snapshot_before_disruption(&self) -> bool {
        self.enabled && self.has_store() && self.before_disruption == BeforeDisruption::Required
    }
}

/// The Google Cloud Storage bucket for backups.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GcsSpec {
    /// Bucket name.
    pub bucket: String,

    /// Object name prefix inside the bucket. Default the VaultCluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,

    /// JSON API endpoint of an emulator or a Private Service Connect endpoint, e.g.
    /// https://storage-xyz.p.googleapis.com. Empty means https://storage.googleapis.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// The Secret key holding a service-account key file (the JSON Google Cloud gives
    /// for a key). The account needs roles/storage.objectUser on the bucket (objects
    /// read, written and deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<SecretKeyRef>,

    /// Use the pod's ambient identity (GKE Workload Identity, the node's service account)
    /// instead of a Secret.
    #[serde(default)]
    pub use_ambient_credentials: bool,
}

/// The Azure Blob Storage container for backups.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AzureSpec {
    /// Storage account name.
    #[schemars(length(min = 1))]
    pub account: String,

    /// Container name.
    #[schemars(length(min = 1))]
    pub container: String,

    /// Blob name prefix inside the container. Default the VaultCluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,

    /// The account's blob endpoint, for another cloud (e.g.
    /// https://<account>.blob.core.usgovcloudapi.net), a private endpoint or an emulator
    /// (Azurite: http://<host>:10000/<account>). Empty means
    /// https://<account>.blob.core.windows.net.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// The Secret with the storage account key or a SAS token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<AzureCredentialsSecret>,

    /// Use workload identity (the backup ServiceAccount federated with a managed identity
    /// that has Storage Blob Data Contributor on the container) instead of a Secret.
    #[serde(default)]
    pub use_ambient_credentials: bool,
}

/// A Secret with an Azure storage credential.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AzureCredentialsSecret {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// What the key holds: AccountKey (the storage account's access key, which signs every
    /// request) or SAS (a shared access signature token for the container, with read,
    /// add, create, write, delete and list permissions). Default AccountKey.
    #[serde(default)]
    pub kind: AzureCredentialKind,
    /// Key inside the Secret. Default AZURE_STORAGE_KEY.
    #[serde(default = "defaults::azure_credential_key")]
    pub key: String,
}

/// What an Azure credentials Secret holds.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum AzureCredentialKind {
    /// The storage account's access key.
    #[default]
    AccountKey,
    /// A shared access signature token.
    #[serde(rename = "SAS")]
    Sas,
}

/// Which backups retention keeps. A backup is kept when any rule keeps it, and the newest
/// good backup is never deleted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::retention_keeps_something().rule())]
pub struct RetentionSpec {
    /// Keep the newest N backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<i32>,

    /// Keep every backup younger than this: a duration such as 30d, 2w or 1h30m (whole
    /// numbers, each followed by a unit w, d, h, m or s, largest unit first and each unit
    /// at most once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::duration::MAX_LENGTH))]
    #[x_kube(validation = rules::retention_max_age().rule())]
    pub max_age: Option<String>,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        Self {
            keep_last: defaults::keep_last(),
            max_age: None,
        }
    }
}

/// Metrics and alerting.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Render Vault's telemetry stanza and the metrics token. Default true.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,

    /// Cron schedule of the metrics-token renewal CronJob. Default Thursdays at 13:00
    /// ("0 13 * * 4").
    #[serde(default = "defaults::token_renew_schedule")]
    #[schemars(length(max = 100))]
    #[x_kube(validation = rules::token_renew_schedule().rule())]
    pub token_renew_schedule: String,

    /// Period of the metrics token: it lapses when not renewed within this time. A
    /// duration such as 2w or 336h (whole numbers, each followed by a unit w, d, h, m or s,
    /// largest unit first and each unit at most once). Must be at least twice the longest
    /// gap between renewals. Default 336h (two weeks).
    #[serde(default = "defaults::token_period")]
    #[schemars(length(max = crate::duration::MAX_LENGTH))]
    #[x_kube(validation = rules::token_period().rule())]
    pub token_period: String,

    /// A prometheus-operator ServiceMonitor (only when its CRD exists in the cluster).
    #[serde(default)]
    pub service_monitor: ServiceMonitorSpec,

    /// A prometheus-operator PrometheusRule with alerts (only when its CRD exists).
    #[serde(default)]
    pub prometheus_rule: PrometheusRuleSpec,
}

impl Default for MonitoringSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            token_renew_schedule: defaults::token_renew_schedule(),
            token_period: defaults::token_period(),
            service_monitor: ServiceMonitorSpec::default(),
            prometheus_rule: PrometheusRuleSpec::default(),
        }
    }
}

/// The ServiceMonitor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Render it. Default true.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,

    /// Scrape interval. Default 30s.
    #[serde(default = "defaults::scrape_interval")]
    pub interval: String,

    /// Which nodes to scrape: AllNodes (default; sealed and standby nodes report their
    /// own health) or ActiveOnly.
    #[serde(default)]
    pub scrape: ScrapeScope,

    /// Labels your Prometheus selects ServiceMonitors by, e.g. release: prometheus.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for ServiceMonitorSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: defaults::scrape_interval(),
            scrape: ScrapeScope::default(),
            labels: BTreeMap::new(),
        }
    }
}

/// Which nodes Prometheus scrapes.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum ScrapeScope {
    /// Every pod, through the `<name>-internal` Service.
    #[default]
    AllNodes,
    /// Only the active node, through `<name>-active`.
    ActiveOnly,
}

/// The PrometheusRule.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRuleSpec {
    /// Render it. Default true.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,

    /// Labels your Prometheus selects rules by.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for PrometheusRuleSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            labels: BTreeMap::new(),
        }
    }
}

/// What deleting the VaultCluster does to data and keys.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    /// Keep the raft volumes and the keys Secret (default).
    #[default]
    Retain,
    /// Delete the raft volumes and the keys Secret with the cluster.
    Delete,
}

impl Default for VaultClusterSpec {
    fn default() -> Self {
        Self {
            replicas: defaults::replicas(),
            image: None,
            flavor: None,
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            storage: StorageSpec::default(),
            tls: TlsSpec::default(),
            unseal: UnsealSpec::default(),
            keys: KeysSpec::default(),
            transport: Transport::default(),
            config: None,
            ui: UiSpec::default(),
            service: ServiceSpec::default(),
            ingress: IngressSpec::default(),
            network_policy: NetworkPolicySpec::default(),
            backup: BackupSpec::default(),
            monitoring: MonitoringSpec::default(),
            pod: PodSpec::default(),
            cluster_domain: defaults::cluster_domain(),
            deletion_policy: DeletionPolicy::default(),
            allowed_config_namespaces: Vec::new(),
        }
    }
}

impl VaultClusterSpec {
    /// The flavor: the explicit one, or the one detected from the image.
    pub fn effective_flavor(&self) -> Flavor {
        match (self.flavor, &self.image) {
            (Some(flavor), _) => flavor,
            (None, Some(image)) => Flavor::detect_from_image(image),
            (None, None) => Flavor::Vault,
        }
    }

    /// The image: the explicit one, or the flavor's current release.
    pub fn effective_image(&self) -> String {
        match &self.image {
            Some(image) => image.clone(),
            None => match self.effective_flavor() {
                Flavor::Vault => defaults::VAULT_IMAGE.to_owned(),
                Flavor::OpenBao => defaults::OPENBAO_IMAGE.to_owned(),
            },
        }
    }
}
