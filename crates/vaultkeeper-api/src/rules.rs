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

/// The container ports vaultkeeper renders on the Vault container (API, cluster,
/// replication); `spec.pod.extraPorts` may not reuse them.
pub const RENDERED_PORTS: &[i32] = &[8200, 8201, 8202];

/// The names of [`RENDERED_PORTS`] with and without TLS.
pub const RENDERED_PORT_NAMES: &[&str] =
    &["http", "https", "https-internal", "http-rep", "https-rep"];

/// The shape of one `spec.pod.extraArgs` entry: a flag, with its value after `=`.
pub const EXTRA_ARG_FORM: &str = "^--?[a-z][-a-z0-9]*(=.*)?$";

/// `vault server` flags vaultkeeper relies on not being given: a second configuration
/// file, the dev server and recovery mode.
pub const EXTRA_ARG_RESERVED: &str = "^--?(config|recovery|dev(-[-a-z0-9]*)?)(=.*)?$";

fn quoted_list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every `spec.pod.extraArgs` entry is one flag (it is quoted into the start script, so
/// it cannot be anything else, but a bare word would be taken as a positional argument).
pub fn extra_args_form() -> SpecRule {
    SpecRule::new(
        "spec.pod.extraArgs",
        format!("!has(self.extraArgs) || self.extraArgs.all(a, a.matches('{EXTRA_ARG_FORM}'))"),
        "spec.pod.extraArgs must hold one flag per entry, written -flag or -flag=value (for \
         example -log-level=debug): split \"-log-level debug\" into \"-log-level=debug\"",
    )
    .at(".extraArgs")
}

/// `spec.pod.extraArgs` may not override what vaultkeeper passes to the server.
pub fn extra_args_not_reserved() -> SpecRule {
    SpecRule::new(
        "spec.pod.extraArgs",
        format!(
            "!has(self.extraArgs) || self.extraArgs.all(a, !a.matches('{EXTRA_ARG_RESERVED}'))"
        ),
        "spec.pod.extraArgs may not contain -config, -dev* or -recovery: vaultkeeper passes \
         the configuration it renders and relies on a normal server it can initialize, \
         unseal and join; put server settings in spec.config and remove the flag",
    )
    .at(".extraArgs")
}

/// `spec.pod.extraPorts` may not take the ports or port names vaultkeeper renders.
pub fn extra_ports_no_clash() -> SpecRule {
    SpecRule::new(
        "spec.pod.extraPorts",
        format!(
            "!has(self.extraPorts) || self.extraPorts.all(p, !(p.containerPort in [{}]) && \
             !(has(p.name) && p.name in [{}]))",
            RENDERED_PORTS
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            quoted_list(RENDERED_PORT_NAMES)
        ),
        format!(
            "spec.pod.extraPorts may not use the container ports {} or the names {}: \
             vaultkeeper renders those for the API, cluster and replication listeners; pick \
             another port and name",
            RENDERED_PORTS
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            RENDERED_PORT_NAMES.join(", ")
        ),
    )
    .at(".extraPorts")
}

/// `spec.pod.extraPorts` may not open a port on the node.
pub fn extra_ports_no_host_port() -> SpecRule {
    SpecRule::new(
        "spec.pod.extraPorts",
        "!has(self.extraPorts) || self.extraPorts.all(p, (!has(p.hostPort) || p.hostPort == 0) \
         && (!has(p.hostIP) || p.hostIP == ''))",
        "spec.pod.extraPorts may not set hostPort or hostIP: a port on the node's address \
         would reach Vault past its Services and NetworkPolicy; remove them and expose the \
         port through a Service",
    )
    .at(".extraPorts")
}

/// `spec.pod.hostAliases` may not shadow in-cluster names. The cluster's own Service and
/// pod names are checked by the operator too (the rule cannot know them).
pub fn host_aliases_not_in_cluster() -> SpecRule {
    SpecRule::new(
        "spec.pod.hostAliases",
        "!has(self.hostAliases) || self.hostAliases.all(h, !has(h.hostnames) || \
         h.hostnames.all(n, n != 'localhost' && !n.endsWith('.svc') && !n.contains('.svc.')))",
        HOST_ALIAS_MESSAGE,
    )
    .at(".hostAliases")
}

const HOST_ALIAS_MESSAGE: &str = "spec.pod.hostAliases may not name localhost, an in-cluster \
     Service (*.svc, *.svc.*) or this cluster's own Services and pods: the Vault pods reach \
     each other and their peers by those names; alias only names outside the cluster";

/// Whether `spec.pod.hostAliases` may map `hostname` (the CEL rule's check).
pub fn host_alias_allowed(hostname: &str) -> bool {
    hostname != "localhost" && !hostname.ends_with(".svc") && !hostname.contains(".svc.")
}

/// Whether `hostname` names one of this cluster's own Services or pods in a form the pods
/// resolve without `.svc` (which [`host_alias_allowed`] refuses already): a bare Service
/// name (`vault-active`), one qualified by a namespace (`vault-active.secrets`), or a pod
/// under the internal Service (`vault-0.vault-internal`, `vault-0.vault-internal.secrets`).
/// Operator-only: the CRD's rule cannot know the names.
pub fn host_alias_names_cluster(hostname: &str, names: &crate::ClusterNames) -> bool {
    let own = [
        names.service(),
        names.active_service(),
        names.standby_service(),
        names.internal_service(),
        names.ui_service(),
        names.statefulset(),
    ];
    let labels: Vec<&str> = hostname.split('.').collect();
    (labels.len() <= 2 && own.iter().any(|s| s == labels[0]))
        || labels.get(1) == Some(&names.internal_service().as_str())
}

/// The message of [`host_aliases_not_in_cluster`], for the operator's own check.
pub fn host_alias_message() -> &'static str {
    HOST_ALIAS_MESSAGE
}

/// Kubernetes refuses a liveness probe whose successThreshold is not 1.
pub fn liveness_success_threshold() -> SpecRule {
    SpecRule::new(
        "spec.pod.livenessProbe.successThreshold",
        "!has(self.livenessProbe) || !has(self.livenessProbe.successThreshold) || \
         self.livenessProbe.successThreshold == 1",
        "spec.pod.livenessProbe.successThreshold must be 1: Kubernetes accepts no other \
         value for a liveness probe; remove it or set 1",
    )
    .at(".livenessProbe.successThreshold")
}

/// A probe path is an absolute HTTP path.
pub fn probe_path_absolute() -> SpecRule {
    SpecRule::new(
        "spec.pod.readinessProbe.path",
        "!has(self.path) || self.path.startsWith('/')",
        "spec.pod.readinessProbe.path and spec.pod.livenessProbe.path must start with /, for \
         example /v1/sys/health?standbyok=true",
    )
    .at(".path")
}

/// The `vaultkeeper.io/` annotation prefix is the operator's.
pub fn statefulset_annotations_not_reserved() -> SpecRule {
    SpecRule::new(
        "spec.pod.statefulSetAnnotations",
        "!has(self.statefulSetAnnotations) || \
         self.statefulSetAnnotations.all(k, !k.startsWith('vaultkeeper.io/'))",
        "spec.pod.statefulSetAnnotations may not use keys under vaultkeeper.io/: that prefix \
         is vaultkeeper's own; choose another prefix",
    )
    .at(".statefulSetAnnotations")
}

/// Directories a volume may not be mounted at, over or under: what vaultkeeper mounts
/// (configuration, Secrets, HOME, for both flavors) and the ServiceAccount token's
/// directory.
pub const RESERVED_MOUNT_DIRS: &[&str] = &[
    "/vault/config",
    "/vault/userconfig",
    "/home/vault",
    "/openbao/config",
    "/openbao/userconfig",
    "/home/openbao",
    "/var/run/secrets",
    "/run/secrets",
];

/// An absolute path of plain segments (no `.` or `..`, no empty segment, no trailing `/`).
pub const MOUNT_PATH_FORM: &str = "^(/[^/]+)+$";

/// A `.` or `..` segment.
pub const MOUNT_PATH_DOTS: &str = "(^|/)[.][.]?(/|$)";

/// A volume's `mountPath` is absolute and stays clear of what vaultkeeper mounts.
pub fn storage_mount_path(field: &'static str) -> SpecRule {
    SpecRule::new(
        field,
        format!(
            "!has(self.mountPath) || (self.mountPath.matches('{MOUNT_PATH_FORM}') && \
             !self.mountPath.matches('{MOUNT_PATH_DOTS}') && [{}].all(r, self.mountPath != r \
             && !self.mountPath.startsWith(r + '/') && !r.startsWith(self.mountPath + '/')))",
            quoted_list(RESERVED_MOUNT_DIRS)
        ),
        format!(
            "{field} must be an absolute path without . or .. segments or a trailing /, \
             and neither at, above nor below {}: vaultkeeper mounts the configuration, the \
             TLS and seal Secrets and HOME there; choose a path such as /vault/file",
            RESERVED_MOUNT_DIRS.join(", ")
        ),
    )
    .at(".mountPath")
}

/// Whether `path` passes [`storage_mount_path`] (the Rust side of the rule).
pub fn mount_path_allowed(path: &str) -> bool {
    let plain = !path.is_empty()
        && path.starts_with('/')
        && !path.ends_with('/')
        && path[1..]
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    plain
        && RESERVED_MOUNT_DIRS.iter().all(|r| {
            path != *r && !path.starts_with(&format!("{r}/")) && !r.starts_with(&format!("{path}/"))
        })
}

/// The data and audit volumes need separate, non-nested mount points.
pub fn storage_mount_paths_distinct() -> SpecRule {
    SpecRule::new(
        "spec.storage.audit.mountPath",
        "!has(self.mountPath) || !has(self.audit) || !has(self.audit.mountPath) || \
         (self.mountPath != self.audit.mountPath && \
         !self.mountPath.startsWith(self.audit.mountPath + '/') && \
         !self.audit.mountPath.startsWith(self.mountPath + '/'))",
        STORAGE_DISTINCT_MESSAGE,
    )
    .at(".audit.mountPath")
}

const STORAGE_DISTINCT_MESSAGE: &str = "spec.storage.audit.mountPath and \
     spec.storage.mountPath must be separate directories, neither inside the other: the \
     audit log would land in the raft directory; choose another path for one of them";

/// The message of [`storage_mount_paths_distinct`], for the operator's check with the
/// flavor's default paths, which the rule cannot know.
pub fn storage_distinct_message() -> &'static str {
    STORAGE_DISTINCT_MESSAGE
}

/// Annotation prefixes Kubernetes' volume controllers write on claims.
pub const RESERVED_CLAIM_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/",
    "volume.kubernetes.io/",
    "volume.beta.kubernetes.io/",
];

/// A claim's annotations may not pose as the volume controllers' records.
pub fn claim_annotations_not_reserved(field: &'static str) -> SpecRule {
    SpecRule::new(
        field,
        format!(
            "!has(self.annotations) || self.annotations.all(k, {})",
            RESERVED_CLAIM_ANNOTATIONS
                .iter()
                .map(|p| format!("!k.startsWith('{p}')"))
                .collect::<Vec<_>>()
                .join(" && ")
        ),
        format!(
            "{field} may not use keys under {}: Kubernetes' volume controllers record \
             binding and provisioning there; set the StorageClass instead",
            RESERVED_CLAIM_ANNOTATIONS.join(", ")
        ),
    )
    .at(".annotations")
}
