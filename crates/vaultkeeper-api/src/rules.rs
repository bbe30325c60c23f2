//! The validation rules of a VaultCluster, defined once and enforced twice.
//!
//! Each rule has a CEL expression (rendered into the CRD as `x-kubernetes-validations`, so
//! the API server refuses a bad manifest at `kubectl apply` time) and a message that names
//! the field and the fix. [`crate::validate`] checks the same rules in Rust, with the same
//! messages, so the operator can report them as `SpecValid=False` for objects that reached
//! the cluster some other way (an older CRD, validation disabled, a restore from etcd).
//! A test evaluates the CRD's CEL rules with a real CEL interpreter on every case of the
//! validation table and requires both layers to agree.

use kube::core::Rule;

use crate::duration;
use crate::names::MAX_CLUSTER_NAME;

mod workload;
pub use workload::*;

/// One validation rule: where it applies, what it checks and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecRule {
    /// The CEL expression, evaluated with `self` bound to the object the rule is attached to.
    pub cel: String,
    /// The full path of the field the message is about, e.g. `spec.unseal.shamir.threshold`.
    pub field: &'static str,
    /// The sentence a person reads: the field, what is wrong, and the fix.
    pub message: String,
    /// `fieldPath` relative to the object the rule is attached to, when it is narrower.
    pub relative_field_path: Option<&'static str>,
}

impl SpecRule {
    fn new(field: &'static str, cel: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            cel: cel.into(),
            field,
            message: message.into(),
            relative_field_path: None,
        }
    }

    fn at(mut self, relative_field_path: &'static str) -> Self {
        self.relative_field_path = Some(relative_field_path);
        self
    }

    /// The rule as the CRD carries it.
    pub fn rule(&self) -> Rule {
        let rule = Rule::new(self.cel.clone()).message(self.message.as_str());
        match self.relative_field_path {
            Some(path) => rule.field_path(path),
            None => rule,
        }
    }
}

/// The cluster name must be short enough for every derived name.
pub fn name_length() -> SpecRule {
    SpecRule::new(
        "metadata.name",
        format!("self.metadata.name.size() <= {MAX_CLUSTER_NAME}"),
        format!(
            "metadata.name must be at most {MAX_CLUSTER_NAME} characters: vaultkeeper derives \
             CronJob names (<name>-metrics, <name>-backup) that Kubernetes limits to 52 \
             characters; choose a shorter name"
        ),
    )
}

/// The cluster name becomes Service names, which are DNS-1035 labels.
pub fn name_format() -> SpecRule {
    SpecRule::new(
        "metadata.name",
        "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "metadata.name must start with a lowercase letter and contain only lowercase \
         letters, digits and '-': it names the Services <name>, <name>-active and \
         <name>-internal, which must be DNS-1035 labels",
    )
}

/// Raft needs an odd number of voters.
pub fn replicas() -> SpecRule {
    SpecRule::new(
        "spec.replicas",
        "self in [1, 3, 5, 7]",
        "spec.replicas must be 1, 3, 5 or 7: raft needs an odd number of voters for a \
         quorum; use 3 to survive one lost pod, 5 to survive two",
    )
}

/// The static seal exists only in OpenBao.
pub fn static_seal_needs_openbao() -> SpecRule {
    SpecRule::new(
        "spec.flavor",
        "self.unseal.type != 'Static' || (has(self.flavor) && self.flavor == 'OpenBao')",
        "spec.unseal.type Static is an OpenBao seal: set spec.flavor: OpenBao (and an \
         OpenBao image), or choose another spec.unseal.type",
    )
    .at(".flavor")
}

/// Declarative self-initialization exists only in OpenBao.
pub fn self_init_needs_openbao() -> SpecRule {
    SpecRule::new(
        "spec.flavor",
        "self.keys.initialization != 'SelfInit' || (has(self.flavor) && self.flavor == 'OpenBao')",
        "spec.keys.initialization SelfInit uses OpenBao's declarative self-initialization: \
         set spec.flavor: OpenBao, or use initialization: Operator",
    )
    .at(".flavor")
}

/// Self-initialization has no unseal keys to hand out, so it needs an auto-unseal seal.
pub fn self_init_needs_auto_unseal() -> SpecRule {
    SpecRule::new(
        "spec.keys.initialization",
        "self.keys.initialization != 'SelfInit' || self.unseal.type != 'Shamir'",
        "spec.keys.initialization SelfInit needs an auto-unseal seal (spec.unseal.type \
         Transit, AwsKms, GcpCkms, AzureKeyVault or Static): a self-initialized Shamir \
         cluster would have no unseal keys anyone could use",
    )
    .at(".keys.initialization")
}

/// A rekey replaces unseal shares; an auto-unseal cluster has recovery shares instead.
pub fn rekey_needs_shamir() -> SpecRule {
    SpecRule::new(
        "spec.keys.rotation.rekey",
        "!has(self.keys.rotation) || !has(self.keys.rotation.rekey) || self.unseal.type == 'Shamir'",
        "spec.keys.rotation.rekey replaces unseal shares, and this cluster unseals through its \
         seal (its shares are recovery shares): remove it, and rotate recovery shares by hand \
         with `bao operator rotate-keys -target=recovery` (docs/custody.md)",
    )
    .at(".keys")
}

/// Ingress TLS passthrough presents Vault's own certificate, which needs TLS on.
pub fn passthrough_needs_tls() -> SpecRule {
    SpecRule::new(
        "spec.ingress.tls.passthrough",
        "!(self.ingress.enabled && self.ingress.tls.passthrough) || self.tls.mode != 'Disabled'",
        "spec.ingress.tls.passthrough sends clients straight to Vault's TLS listener, but \
         spec.tls.mode is Disabled: turn TLS on or turn passthrough off",
    )
    .at(".ingress.tls.passthrough")
}

/// The HTTP transport verifies every pod's certificate, so it needs TLS.
pub fn http_transport_needs_tls() -> SpecRule {
    SpecRule::new(
        "spec.transport",
        "self.transport != 'Http' || self.tls.mode != 'Disabled'",
        "spec.transport Http talks to each pod over HTTPS verified against the cluster CA, \
         but spec.tls.mode is Disabled: use transport Exec, or turn TLS on",
    )
    .at(".transport")
}

/// Keys of `spec.config` that vaultkeeper renders itself, with where to configure them.
pub const RENDERED_CONFIG_KEYS: &[(&str, &str)] = &[
    (
        "storage",
        "raft storage is rendered from spec.storage and spec.replicas",
    ),
    (
        "ha_storage",
        "raft storage is rendered from spec.storage and spec.replicas",
    ),
    ("listener", "the TCP listener is rendered from spec.tls"),
    (
        "service_registration",
        "Kubernetes service registration is always rendered",
    ),
    ("seal", "the seal is rendered from spec.unseal"),
    (
        "api_addr",
        "api_addr is set per pod through the environment",
    ),
    (
        "cluster_addr",
        "cluster_addr is set per pod through the environment",
    ),
    (
        "initialize",
        "self-initialization is rendered from spec.keys.initialization",
    ),
];

/// `spec.config` may not set a key vaultkeeper renders; one rule per key names it.
///
/// CEL cannot see the fields of a free-form object (the API server hides data kept by
/// `x-kubernetes-preserve-unknown-fields` from rules), so each rendered key is declared
/// as a property of its own carrying a rule that always fails: it runs only when the key
/// is present.
pub fn config_key_not_rendered(key: &'static str, why: &str) -> SpecRule {
    SpecRule::new(
        "spec.config",
        "false",
        format!("spec.config.{key} cannot be set: {why}; remove it from spec.config"),
    )
}

/// Every rule on `spec.config`, with the key it guards.
pub fn config_rules() -> Vec<(&'static str, SpecRule)> {
    RENDERED_CONFIG_KEYS
        .iter()
        .map(|(key, why)| (*key, config_key_not_rendered(key, why)))
        .collect()
}

/// `tls.mode: Secret` needs the Secret's name.
pub fn tls_secret_needs_name() -> SpecRule {
    SpecRule::new(
        "spec.tls.secretName",
        "self.mode != 'Secret' || (has(self.secretName) && self.secretName != '')",
        "spec.tls.mode Secret needs spec.tls.secretName: the Secret with tls.crt, tls.key \
         and ca.crt to mount into the Vault pods",
    )
    .at(".secretName")
}

/// `tls.secretName` only means something in mode Secret.
pub fn tls_secret_name_only_with_secret_mode() -> SpecRule {
    SpecRule::new(
        "spec.tls.secretName",
        "!has(self.secretName) || self.mode == 'Secret'",
        "spec.tls.secretName is only used with spec.tls.mode Secret: set the mode to Secret \
         or remove secretName",
    )
    .at(".secretName")
}

/// `tls.mode: CertManager` needs an issuer.
pub fn tls_cert_manager_needs_issuer() -> SpecRule {
    SpecRule::new(
        "spec.tls.certManager",
        "self.mode != 'CertManager' || has(self.certManager)",
        "spec.tls.mode CertManager needs spec.tls.certManager.issuerName (and issuerKind \
         Issuer or ClusterIssuer) to request the server certificate from",
    )
    .at(".certManager")
}

/// `tls.certManager` only means something in mode CertManager.
pub fn tls_cert_manager_only_with_mode() -> SpecRule {
    SpecRule::new(
        "spec.tls.certManager",
        "!has(self.certManager) || self.mode == 'CertManager'",
        "spec.tls.certManager is only used with spec.tls.mode CertManager: set the mode to \
         CertManager or remove certManager",
    )
    .at(".certManager")
}

/// Auto-unseal providers and the field that configures each.
pub const SEAL_PROVIDERS: &[(&str, &str)] = &[
    ("Transit", "transit"),
    ("AwsKms", "awsKms"),
    ("GcpCkms", "gcpCkms"),
    ("AzureKeyVault", "azureKeyVault"),
    ("Static", "static"),
];

/// An auto-unseal type needs its seal stanza.
pub fn seal_type_needs_block(kind: &str, field: &'static str) -> SpecRule {
    SpecRule::new(
        "spec.unseal",
        format!("self.type != '{kind}' || has(self.{field})"),
        format!(
            "spec.unseal.type {kind} needs spec.unseal.{field} with the seal's settings \
             (see docs/unseal.md)"
        ),
    )
}

/// A seal stanza for another type than the chosen one is a mistake worth stopping.
pub fn seal_block_needs_type(kind: &str, field: &'static str) -> SpecRule {
    SpecRule::new(
        "spec.unseal",
        format!("!has(self.{field}) || self.type == '{kind}'"),
        format!(
            "spec.unseal.{field} is set but spec.unseal.type is not {kind}: set type: {kind} \
             or remove {field}"
        ),
    )
}

/// Every rule tying `spec.unseal.type` to its stanza.
pub fn seal_rules() -> Vec<SpecRule> {
    SEAL_PROVIDERS
        .iter()
        .flat_map(|(kind, field)| {
            [
                seal_type_needs_block(kind, field),
                seal_block_needs_type(kind, field),
            ]
        })
        .collect()
}

/// Shamir shares are for Shamir clusters; auto-unseal clusters get recovery shares.
pub fn shamir_only_with_shamir() -> SpecRule {
    SpecRule::new(
        "spec.unseal.shamir",
        "!has(self.shamir) || self.type == 'Shamir'",
        "spec.unseal.shamir is only for type Shamir: an auto-unseal cluster is initialized \
         with recovery shares, set them in spec.unseal.recovery",
    )
    .at(".shamir")
}

/// Recovery shares exist only with auto-unseal.
pub fn recovery_only_with_auto_unseal() -> SpecRule {
    SpecRule::new(
        "spec.unseal.recovery",
        "!has(self.recovery) || self.type != 'Shamir'",
        "spec.unseal.recovery is only for auto-unseal types: a Shamir cluster's shares are \
         set in spec.unseal.shamir",
    )
    .at(".recovery")
}

/// The rules of a share configuration (Shamir or recovery), for the field at `field`.
pub fn share_rules(field: &'static str) -> Vec<SpecRule> {
    vec![
        SpecRule::new(
            field,
            "self.threshold <= self.shares",
            format!(
                "{field}.threshold must not exceed {field}.shares: Vault could never \
                 collect enough shares to unseal"
            ),
        )
        .at(".threshold"),
        SpecRule::new(
            field,
            "self.shares == 1 || self.threshold >= 2",
            format!(
                "{field}.threshold must be at least 2 when there are several shares \
                 (Vault refuses threshold 1 with more than one share); use shares: 1, \
                 threshold: 1 for a single key"
            ),
        )
        .at(".threshold"),
    ]
}

/// Backups are on by default and need somewhere to go.
pub fn backup_needs_bucket() -> SpecRule {
    SpecRule::new(
        "spec.backup.s3.bucket",
        "!self.enabled || (has(self.s3) && self.s3.bucket != '') || \
         (has(self.gcs) && self.gcs.bucket != '') || has(self.azure)",
        "spec.backup.s3.bucket is required: backups are on by default; set the bucket (and \
         credentials), or use spec.backup.gcs.bucket or spec.backup.azure instead, or opt \
         out explicitly with spec.backup.enabled: false",
    )
}

/// Backups go to one store.
pub fn backup_one_store() -> SpecRule {
    SpecRule::new(
        "spec.backup",
        "(has(self.s3) ? 1 : 0) + (has(self.gcs) ? 1 : 0) + (has(self.azure) ? 1 : 0) <= 1",
        "spec.backup: set exactly one of s3, gcs and azure (backups go to one object \
         store); remove the others",
    )
}

/// GCS needs a service-account key, or an explicit choice of the ambient identity.
pub fn gcs_needs_credentials() -> SpecRule {
    SpecRule::new(
        "spec.backup.gcs.credentialsSecret",
        "!self.enabled || !has(self.gcs) || has(self.gcs.credentialsSecret) || \
         self.gcs.useAmbientCredentials",
        "spec.backup.gcs.credentialsSecret is required: name the Secret key with a \
         service-account key (JSON), or set spec.backup.gcs.useAmbientCredentials: true to \
         use the pod's identity (GKE Workload Identity)",
    )
}

/// Azure needs an account key or SAS, or an explicit choice of workload identity.
pub fn azure_needs_credentials() -> SpecRule {
    SpecRule::new(
        "spec.backup.azure.credentialsSecret",
        "!self.enabled || !has(self.azure) || has(self.azure.credentialsSecret) || \
         self.azure.useAmbientCredentials",
        "spec.backup.azure.credentialsSecret is required: name the Secret with the storage \
         account key or a SAS token, or set spec.backup.azure.useAmbientCredentials: true to \
         use workload identity",
    )
}

/// Backups need credentials, or an explicit choice of the ambient ones.
pub fn backup_needs_credentials() -> SpecRule {
    SpecRule::new(
        "spec.backup.s3.credentialsSecret",
        "!self.enabled || !has(self.s3) || has(self.s3.credentialsSecret) || \
         self.s3.useAmbientCredentials",
        "spec.backup.s3.credentialsSecret is required: name the Secret with the S3 access \
         key, or set spec.backup.s3.useAmbientCredentials: true to use the pod's identity \
         (IRSA, workload identity)",
    )
}

/// The cron grammar Kubernetes CronJobs accept: five fields or a descriptor.
pub fn cron_regex() -> String {
    fn field(number: &str, extra: &str) -> String {
        let atom = format!("(\\*|(({number})(-({number}))?))(/[0-9]+)?{extra}");
        format!("({atom})(,({atom}))*")
    }
    let minute = field("[0-5]?[0-9]", "");
    let hour = field("[01]?[0-9]|2[0-3]", "");
    let day_of_month = field("0?[1-9]|[12][0-9]|3[01]", "|\\?");
    let month = field(
        "0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)",
        "",
    );
    let day_of_week = field("[0-7]|(?i:sun|mon|tue|wed|thu|fri|sat)", "|\\?");
    format!(
        "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\
         {minute} +{hour} +{day_of_month} +{month} +{day_of_week})$"
    )
}

/// A schedule field must be a cron expression a Kubernetes CronJob accepts.
pub fn cron_schedule(field: &'static str, example: &str) -> SpecRule {
    SpecRule::new(
        field,
        format!("self.matches('{}')", cron_regex().replace('\\', "\\\\")),
        format!(
            "{field} must be a cron schedule with five fields (minute hour day-of-month \
             month day-of-week, e.g. \"{example}\") or a descriptor such as @daily"
        ),
    )
}

/// The backup schedule rule.
pub fn backup_schedule() -> SpecRule {
    cron_schedule("spec.backup.schedule", "0 */6 * * *")
}

/// The metrics-token renewal schedule rule.
pub fn token_renew_schedule() -> SpecRule {
    cron_schedule("spec.monitoring.tokenRenewSchedule", "0 13 * * 4")
}

/// An enabled Ingress needs at least one host.
pub fn ingress_needs_hosts() -> SpecRule {
    SpecRule::new(
        "spec.ingress.hosts",
        "!self.enabled || (has(self.hosts) && self.hosts.size() > 0)",
        "spec.ingress.hosts needs at least one DNS name when spec.ingress.enabled is true",
    )
    .at(".hosts")
}

/// Passthrough and ingress-terminated certificates exclude each other.
pub fn passthrough_excludes_cert_manager() -> SpecRule {
    SpecRule::new(
        "spec.ingress.tls.certManager",
        "!(self.passthrough && has(self.certManager))",
        "spec.ingress.tls.certManager cannot be combined with passthrough: with passthrough \
         the ingress never terminates TLS, Vault presents its own certificate; remove one",
    )
    .at(".certManager")
}

/// A duration field must be written in the grammar of [`crate::Duration`]; the
/// expression, the `maxLength` and the words of the message all come from
/// [`crate::duration`], which the Rust parser reads too.
pub fn duration(field: &'static str) -> SpecRule {
    SpecRule::new(
        field,
        duration::cel_rule(),
        format!("{field} must be {}", duration::description()),
    )
}

/// The retention age rule.
pub fn retention_max_age() -> SpecRule {
    duration("spec.backup.retention.maxAge")
}

/// The metrics-token period rule.
pub fn token_period() -> SpecRule {
    duration("spec.monitoring.tokenPeriod")
}

/// A retention that keeps nothing would delete every backup.
pub fn retention_keeps_something() -> SpecRule {
    SpecRule::new(
        "spec.backup.retention",
        "has(self.keepLast) || has(self.maxAge)",
        "spec.backup.retention needs keepLast or maxAge (or both); remove the retention \
         block to use the default (keep the last 30)",
    )
}

/// `VAULT_*` and `BAO_*` names that `spec.pod.env` may still set: the server reads them
/// and people set them on purpose, and none of them changes where the CLI connects, what it
/// trusts or what it sends. Every other name with these prefixes is reserved, because the
/// `vault`/`bao` CLI that vaultkeeper runs inside the container with unseal shares and
/// tokens reads its address (`VAULT_ADDR`, `VAULT_AGENT_ADDR`), its trust (`VAULT_CACERT`,
/// `VAULT_SKIP_VERIFY`, `VAULT_TLS_SERVER_NAME`, `VAULT_CLIENT_CERT`), its proxy
/// (`VAULT_HTTP_PROXY`), response wrapping (`VAULT_WRAP_TTL`), namespace, MFA and token
/// helper (`VAULT_CONFIG_PATH`) from them, in both spellings (OpenBao reads `BAO_*` first).
/// A prefix rule rather than a list of known names, so a variable a future CLI learns is
/// refused before it can matter. The server's own settings belong in `spec.config`; the
/// names vaultkeeper sets itself (`VAULT_API_ADDR`, `VAULT_CLUSTER_ADDR`, …) are rendered.
///
/// The generic proxy variables (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`) stay allowed: a
/// server that reaches a KMS or transit seal through a proxy needs them, and the CLI only
/// ever talks to `127.0.0.1`, which Go's HTTP client never sends through those proxies.
/// The exec transport also removes every steering variable from the CLI's environment
/// before it runs, so a variable that reaches the container another way (the image's own
/// `ENV`) is neutralised too.
pub const ALLOWED_VAULT_ENV: &[&str] = &[
    "VAULT_LOG_LEVEL",
    "VAULT_LOG_FORMAT",
    "VAULT_LICENSE",
    "VAULT_LICENSE_PATH",
    "BAO_LOG_LEVEL",
    "BAO_LOG_FORMAT",
];

/// The prefixes of the names [`ALLOWED_VAULT_ENV`] carves exceptions out of.
pub const RESERVED_ENV_PREFIXES: &[&str] = &["VAULT_", "BAO_"];

/// Whether `spec.pod.env` may set `name` (see [`ALLOWED_VAULT_ENV`]).
pub fn env_name_allowed(name: &str) -> bool {
    !RESERVED_ENV_PREFIXES.iter().any(|p| name.starts_with(p)) || ALLOWED_VAULT_ENV.contains(&name)
}

/// `spec.pod.env` may not set a name that steers the CLI carrying shares and tokens.
pub fn pod_env_not_reserved() -> SpecRule {
    let prefixes = RESERVED_ENV_PREFIXES
        .iter()
        .map(|p| format!("e.name.startsWith('{p}')"))
        .collect::<Vec<_>>()
        .join(" || ");
    let allowed = ALLOWED_VAULT_ENV
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    SpecRule::new(
        "spec.pod.env",
        format!("!has(self.env) || self.env.all(e, !({prefixes}) || e.name in [{allowed}])"),
        format!(
            "spec.pod.env may not set VAULT_* or BAO_* variables other than {}: they steer \
             the vault/bao CLI that vaultkeeper runs in the container with unseal shares and \
             tokens (address, TLS trust, proxy, wrapping); remove the variable and put server \
             settings in spec.config",
            ALLOWED_VAULT_ENV.join(", ")
        ),
    )
    .at(".env")
}

/// The flavor of an existing cluster is fixed once set (a transition rule: it runs on
/// updates only, with `oldSelf` the stored spec).
pub fn flavor_immutable() -> SpecRule {
    SpecRule::new(
        "spec.flavor",
        "!has(oldSelf.flavor) || (has(self.flavor) && self.flavor == oldSelf.flavor)",
        "spec.flavor cannot change (or be removed) on an existing cluster: the raft data \
         and the CLI vaultkeeper runs belong to the flavor the cluster was created with; to \
         move between OpenBao and Vault, restore a snapshot into a new VaultCluster",
    )
    .at(".flavor")
}

/// The seal type of an existing cluster is fixed (absent means the default, Shamir).
pub fn unseal_type_immutable() -> SpecRule {
    SpecRule::new(
        "spec.unseal.type",
        "(has(self.unseal) && has(self.unseal.type) ? self.unseal.type : 'Shamir') == \
         (has(oldSelf.unseal) && has(oldSelf.unseal.type) ? oldSelf.unseal.type : 'Shamir')",
        "spec.unseal.type cannot change on an existing cluster: the barrier stays sealed \
         the way it was initialized, and vaultkeeper does not run a seal migration; to use \
         another seal, restore a snapshot into a new VaultCluster with that seal",
    )
    .at(".unseal.type")
}

/// The keys Secret of an existing cluster is fixed (absent means `<name>-unseal-keys`).
pub fn keys_secret_immutable() -> SpecRule {
    SpecRule::new(
        "spec.keys.secretName",
        "(has(self.keys) && has(self.keys.secretName) ? self.keys.secretName : '') == \
         (has(oldSelf.keys) && has(oldSelf.keys.secretName) ? oldSelf.keys.secretName : '')",
        "spec.keys.secretName cannot change on an existing cluster: that Secret holds this \
         cluster's unseal or recovery shares, and another name would point vaultkeeper at \
         keys that are not this cluster's; to keep the keys elsewhere, copy them yourself \
         and leave the name, or restore a snapshot into a new VaultCluster",
    )
    .at(".keys.secretName")
}

/// Who initializes an existing cluster is fixed (absent means the default, Operator).
pub fn initialization_immutable() -> SpecRule {
    SpecRule::new(
        "spec.keys.initialization",
        "(has(self.keys) && has(self.keys.initialization) ? self.keys.initialization : \
         'Operator') == (has(oldSelf.keys) && has(oldSelf.keys.initialization) ? \
         oldSelf.keys.initialization : 'Operator')",
        "spec.keys.initialization cannot change on an existing cluster: a cluster is \
         initialized once, by vaultkeeper or by itself; to change who does it, restore a \
         snapshot into a new VaultCluster",
    )
    .at(".keys.initialization")
}

/// Every transition rule on `spec`: fields that must not change once the cluster exists.
pub fn immutable_rules() -> Vec<SpecRule> {
    vec![
        flavor_immutable(),
        unseal_type_immutable(),
        keys_secret_immutable(),
        initialization_immutable(),
    ]
}
