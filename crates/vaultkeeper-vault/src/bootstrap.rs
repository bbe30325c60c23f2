//! Bootstrap after init: the Kubernetes auth method, and one identity (ACL policy +
//! Kubernetes auth role) per job, each with least privilege. Idempotent: every item is read
//! first and written only when it differs, so a second run reports every item unchanged.
//!
//! The identities:
//! - **operator**: reads raft state, removes peers, steps down, and re-applies this
//!   bootstrap once the root token is revoked. It cannot change its own policy or role.
//! - **backup**: `read` on `sys/storage/raft/snapshot` and nothing else (no `default`
//!   policy either).
//! - **metrics-token job**: may create tokens from one token role, and renew and look up
//!   tokens it holds. The token role issues orphan, periodic tokens carrying only the
//!   metrics policy (`read` on `sys/metrics`), so the job never needs root and the
//!   metrics token outlives the job's short login.
//! - **restore** (optional): `update` on `sys/storage/raft/snapshot` and `snapshot-force`.
//!   The operator runs VaultRestores itself and logs in with this role only for them, so
//!   the role may be bound to the operator's ServiceAccount (in its namespace).
//! - **config** (optional): the identity the operator logs in as to apply the configuration
//!   declared by VaultPolicy resources. It manages ACL policies, except vaultkeeper's own
//!   (`vaultkeeper-*`) and the built-in `default` and `root`, and nothing else: a team's
//!   resource never runs with the operator's own rights, and the operator's identity
//!   cannot be reached through it. Bound to the operator's service account.
//!
//! The operator's policy pins, with `allowed_parameters`, every value it may write: the
//! exact text of each managed policy, the exact bindings of each role, the Kubernetes auth
//! host. So the operator identity can re-apply this bootstrap and nothing else; it cannot
//! widen any identity's rights, bind a role to another service account, or point the auth
//! method at another API server. Changing names later needs the root token (or an
//! operator policy update by someone who holds one).

use std::fmt;

use vaultkeeper_api::login::VAULT_LOGIN_AUDIENCE;

use crate::client::{KubernetesAuthConfig, KubernetesRole, NodeClient, TokenRole};
use crate::error::{Error, Result};
use crate::node::PodName;
use crate::secret::Token;

/// One workload identity: a service account, the Kubernetes auth role it logs in with, and
/// the policy that role grants. All names are chosen by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Service account name (in [`BootstrapSpec::namespace`]).
    pub service_account: String,
    /// Kubernetes auth role name.
    pub role: String,
    /// ACL policy name.
    pub policy: String,
}

/// Everything bootstrap writes, as names and settings chosen by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapSpec {
    /// Namespace of every service account below.
    pub namespace: String,
    /// Mount path of the Kubernetes auth method (normally `kubernetes`).
    pub kubernetes_mount: String,
    /// Its configuration.
    pub kubernetes: KubernetesAuthConfig,
    /// The operator itself.
    pub operator: Identity,
    /// Namespace of the operator's service account when it runs elsewhere than the
    /// cluster (the usual install: `vaultkeeper-system`); `None` means [`Self::namespace`].
    pub operator_namespace: Option<String>,
    /// The backup CronJob.
    pub backup: Identity,
    /// The metrics-token CronJob (the identity that issues and renews the metrics token).
    pub metrics_token_job: Identity,
    /// The policy the metrics token carries (`read` on `sys/metrics`).
    pub metrics_policy: String,
    /// The token role the metrics token is created from.
    pub metrics_token_role: String,
    /// Renewal period of the metrics token, seconds. Make it longer than the renewal
    /// schedule's interval (e.g. 14 days for a weekly job) so one missed run is harmless.
    pub metrics_token_period_seconds: u64,
    /// The restore Job, when restores are allowed.
    pub restore: Option<Identity>,
    /// The identity for declared configuration (VaultPolicy resources), bound to the
    /// operator's service account, when the operator applies such configuration.
    pub config: Option<Identity>,
    /// TTL of the tokens the Kubernetes auth roles issue, seconds.
    pub login_ttl_seconds: u64,
    /// Revoke the initial root token once bootstrap is done and the operator's own login
    /// is proven to work.
    pub revoke_root_token: bool,
}

fn check_name(field: &str, value: &str) -> Result<()> {
    let valid = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with(['-', '.'])
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{value:?} is not a valid name"),
            "use letters, digits, '-', '_' and '.', not starting with '-' or '.'",
        ))
    }
}

impl BootstrapSpec {
    /// Checks every name and number; the error names the field and the fix.
    pub fn validate(&self) -> Result<()> {
        check_name("bootstrap.namespace", &self.namespace)?;
        if let Some(namespace) = &self.operator_namespace {
            check_name("bootstrap.operatorNamespace", namespace)?;
        }
        check_name("bootstrap.kubernetesMount", &self.kubernetes_mount)?;
        if !self.kubernetes.kubernetes_host.starts_with("https://") {
            return Err(Error::invalid(
                "bootstrap.kubernetes.host",
                format!("{:?} is not an https URL", self.kubernetes.kubernetes_host),
                "use the API server URL, e.g. https://kubernetes.default.svc:443",
            ));
        }
        let mut identities = vec![
            ("operator", &self.operator),
            ("backup", &self.backup),
            ("metricsTokenJob", &self.metrics_token_job),
        ];
        if let Some(restore) = &self.restore {
            identities.push(("restore", restore));
        }
        if let Some(config) = &self.config {
            identities.push(("config", config));
        }
        let mut policies = vec![self.metrics_policy.as_str()];
        let mut roles = Vec::new();
        for (name, identity) in &identities {
            check_name(
                &format!("bootstrap.{name}.serviceAccount"),
                &identity.service_account,
            )?;
            check_name(&format!("bootstrap.{name}.role"), &identity.role)?;
            check_name(&format!("bootstrap.{name}.policy"), &identity.policy)?;
            policies.push(&identity.policy);
            roles.push(&identity.role);
        }
        check_name("bootstrap.metricsPolicy", &self.metrics_policy)?;
        check_name("bootstrap.metricsTokenRole", &self.metrics_token_role)?;
        let mut sorted = policies.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::invalid(
                "bootstrap policies",
                format!("the policy name {:?} is used twice", w[0]),
                "give every identity its own policy",
            ));
        }
        if sorted.iter().any(|p| *p == "root" || *p == "default") {
            return Err(Error::invalid(
                "bootstrap policies",
                "\"root\" and \"default\" are built-in policies",
                "choose other policy names",
            ));
        }
        let mut sorted_roles = roles.clone();
        sorted_roles.sort_unstable();
        if let Some(w) = sorted_roles.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::invalid(
                "bootstrap roles",
                format!("the role name {:?} is used twice", w[0]),
                "give every identity its own role",
            ));
        }
        if self.metrics_token_period_seconds < 3600 {
            return Err(Error::invalid(
                "bootstrap.metricsTokenPeriod",
                "shorter than an hour",
                "use a period longer than the renewal schedule's interval, e.g. 336h for a weekly job",
            ));
        }
        if self.login_ttl_seconds < 60 {
            return Err(Error::invalid(
                "bootstrap.loginTTL",
                "shorter than a minute",
                "use e.g. 15m",
            ));
        }
        Ok(())
    }
}

/// An HCL string literal (policy text inside policy text needs escaping).
pub fn hcl_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hcl_list(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| hcl_string(v)).collect();
    format!("[{}]", items.join(", "))
}

/// The `allowed_parameters` value that admits exactly this list. A list parameter is
/// compared as a whole with each allowed value, so the allowed value is the list itself,
/// inside the list of allowed values.
fn pinned_list(values: &[String]) -> String {
    format!("[{}]", hcl_list(values))
}

/// `read` on the raft snapshot, nothing else.
pub fn backup_policy() -> String {
    "# vaultkeeper backup: stream raft snapshots, nothing else.\npath \"sys/storage/raft/snapshot\" {\n  capabilities = [\"read\"]\n}\n".to_string()
}

/// `read` on `sys/metrics`, nothing else.
pub fn metrics_policy() -> String {
    "# vaultkeeper metrics token: Prometheus scrapes, nothing else.\npath \"sys/metrics\" {\n  capabilities = [\"read\"]\n}\n".to_string()
}

/// The metrics-token job: create tokens from one token role; renew and look up tokens it
/// holds (by value, so it can keep the metrics token alive and check its expiry).
pub fn metrics_token_job_policy(token_role: &str) -> String {
    format!(
        "# vaultkeeper metrics-token job: issue and renew the metrics token.\n\
         path \"auth/token/create/{token_role}\" {{\n  capabilities = [\"create\", \"update\"]\n}}\n\
         path \"auth/token/renew\" {{\n  capabilities = [\"update\"]\n}}\n\
         path \"auth/token/lookup\" {{\n  capabilities = [\"update\"]\n}}\n"
    )
}

/// Restoring raft snapshots (an explicit, destructive act; see the restore runbook).
pub fn restore_policy() -> String {
    "# vaultkeeper restore: load raft snapshots.\npath \"sys/storage/raft/snapshot\" {\n  capabilities = [\"update\"]\n}\npath \"sys/storage/raft/snapshot-force\" {\n  capabilities = [\"update\"]\n}\n".to_string()
}

/// The policy prefix reserved for vaultkeeper's own identities.
pub const RESERVED_POLICY_PREFIX: &str = "vaultkeeper-";

/// The config identity: every ACL policy except vaultkeeper's own and the built-in ones.
/// A glob that starts later in the path wins over an earlier one, and an exact path over
/// any glob, so the denials below take precedence over `sys/policy/*`.
pub fn config_policy() -> String {
    format!(
        "# vaultkeeper managed configuration: the ACL policies VaultPolicy resources declare.\n\
         # vaultkeeper's own policies and the built-in default and root are out of reach.\n\
         path \"sys/policy/*\" {{\n  capabilities = [\"create\", \"read\", \"update\", \"delete\"]\n}}\n\
         path \"sys/policy/{RESERVED_POLICY_PREFIX}*\" {{\n  capabilities = [\"deny\"]\n}}\n\
         path \"sys/policy/default\" {{\n  capabilities = [\"deny\"]\n}}\n\
         path \"sys/policy/root\" {{\n  capabilities = [\"deny\"]\n}}\n"
    )
}

/// The desired state of one bootstrap, computed from the spec. Pure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredBootstrap {
    /// Policies: (name, text, only root may write it).
    pub policies: Vec<(String, String, bool)>,
    /// Kubernetes auth roles: (role, only root may write it).
    pub kubernetes_roles: Vec<(KubernetesRole, bool)>,
    /// Token roles.
    pub token_roles: Vec<TokenRole>,
}

fn role_for(spec: &BootstrapSpec, identity: &Identity, no_default_policy: bool) -> KubernetesRole {
    role_in(spec, identity, &spec.namespace, no_default_policy)
}

fn role_in(
    spec: &BootstrapSpec,
    identity: &Identity,
    namespace: &str,
    no_default_policy: bool,
) -> KubernetesRole {
    KubernetesRole {
        name: identity.role.clone(),
        bound_service_account_names: vec![identity.service_account.clone()],
        bound_service_account_namespaces: vec![namespace.to_owned()],
        // Only tokens minted for Vault log in: a pod's API-server token, valid against
        // the Kubernetes API, is refused even if it leaks.
        audience: VAULT_LOGIN_AUDIENCE.to_owned(),
        token_policies: vec![identity.policy.clone()],
        token_ttl_seconds: spec.login_ttl_seconds,
        token_max_ttl_seconds: spec.login_ttl_seconds,
        token_no_default_policy: no_default_policy,
    }
}

/// Every object bootstrap manages, except the operator's own policy (see
/// [`operator_policy`], which depends on these).
fn managed(spec: &BootstrapSpec) -> (Vec<(String, String)>, Vec<KubernetesRole>, Vec<TokenRole>) {
    let mut policies = vec![
        (spec.backup.policy.clone(), backup_policy()),
        (spec.metrics_policy.clone(), metrics_policy()),
        (
            spec.metrics_token_job.policy.clone(),
            metrics_token_job_policy(&spec.metrics_token_role),
        ),
    ];
    let mut roles = vec![
        role_for(spec, &spec.backup, true),
        role_for(spec, &spec.metrics_token_job, true),
    ];
    if let Some(restore) = &spec.restore {
        policies.push((restore.policy.clone(), restore_policy()));
        // The restore identity may be the operator's own ServiceAccount (VaultRestores run
        // in the operator): bound where that account lives.
        let namespace = if Some(&restore.service_account) == Some(&spec.operator.service_account) {
            spec.operator_namespace
                .as_deref()
                .unwrap_or(&spec.namespace)
        } else {
            &spec.namespace
        };
        roles.push(role_in(spec, restore, namespace, true));
    }
    if let Some(config) = &spec.config {
        policies.push((config.policy.clone(), config_policy()));
        // Logged in from the operator's pod; keeps `default` to revoke its own token.
        let namespace = spec
            .operator_namespace
            .as_deref()
            .unwrap_or(&spec.namespace);
        roles.push(role_in(spec, config, namespace, false));
    }
    let token_roles = vec![TokenRole {
        name: spec.metrics_token_role.clone(),
        allowed_policies: vec![spec.metrics_policy.clone()],
        orphan: true,
        renewable: true,
        token_period_seconds: spec.metrics_token_period_seconds,
        token_no_default_policy: true,
    }];
    (policies, roles, token_roles)
}

/// The operator's own policy: raft membership, key rotation, and re-applying exactly this
/// bootstrap.
pub fn operator_policy(spec: &BootstrapSpec) -> String {
    let (policies, roles, token_roles) = managed(spec);
    let mount = &spec.kubernetes_mount;
    let mut text = String::from(
        "# vaultkeeper operator: raft membership, the key rotations a person asks for in the\n\
         # spec, and re-applying bootstrap, nothing else. A rekey also needs a threshold of\n\
         # the current shares, which this token does not give.\n\
         path \"sys/storage/raft/configuration\" {\n  capabilities = [\"read\"]\n}\n\
         path \"sys/rotate/root/*\" {\n  capabilities = [\"read\", \"update\", \"delete\"]\n}\n\
         path \"sys/rotate/keyring\" {\n  capabilities = [\"update\", \"sudo\"]\n}\n\
         path \"sys/rekey/*\" {\n  capabilities = [\"read\", \"update\", \"delete\"]\n}\n\
         path \"sys/rotate\" {\n  capabilities = [\"update\", \"sudo\"]\n}\n\
         path \"sys/storage/raft/autopilot/state\" {\n  capabilities = [\"read\"]\n}\n\
         path \"sys/storage/raft/remove-peer\" {\n  capabilities = [\"update\"]\n}\n\
         path \"sys/step-down\" {\n  capabilities = [\"update\", \"sudo\"]\n}\n\
         path \"sys/auth\" {\n  capabilities = [\"read\"]\n}\n",
    );
    text.push_str(&format!(
        "path \"sys/auth/{mount}\" {{\n  capabilities = [\"create\", \"update\", \"sudo\"]\n  allowed_parameters = {{\n    \"type\" = [\"kubernetes\"]\n  }}\n}}\n"
    ));
    let k = &spec.kubernetes;
    let mut config_params = vec![
        format!(
            "    \"kubernetes_host\" = [{}]",
            hcl_string(&k.kubernetes_host)
        ),
        "    \"disable_iss_validation\" = [false]".to_string(),
        format!(
            "    \"disable_local_ca_jwt\" = [{}]",
            k.disable_local_ca_jwt
        ),
    ];
    if let Some(ca) = &k.kubernetes_ca_cert {
        config_params.push(format!("    \"kubernetes_ca_cert\" = [{}]", hcl_string(ca)));
    }
    if let Some(issuer) = &k.issuer {
        config_params.push(format!("    \"issuer\" = [{}]", hcl_string(issuer)));
    }
    text.push_str(&format!(
        "path \"auth/{mount}/config\" {{\n  capabilities = [\"create\", \"update\", \"read\"]\n  allowed_parameters = {{\n{}\n  }}\n}}\n",
        config_params.join("\n")
    ));
    for role in &roles {
        text.push_str(&format!(
            "path \"auth/{mount}/role/{}\" {{\n  capabilities = [\"create\", \"update\", \"read\"]\n  allowed_parameters = {{\n    \"bound_service_account_names\" = {}\n    \"bound_service_account_namespaces\" = {}\n    \"audience\" = [{}]\n    \"token_policies\" = {}\n    \"token_ttl\" = [\"{}s\"]\n    \"token_max_ttl\" = [\"{}s\"]\n    \"token_no_default_policy\" = [{}]\n  }}\n}}\n",
            role.name,
            pinned_list(&role.bound_service_account_names),
            pinned_list(&role.bound_service_account_namespaces),
            hcl_string(&role.audience),
            pinned_list(&role.token_policies),
            role.token_ttl_seconds,
            role.token_max_ttl_seconds,
            role.token_no_default_policy,
        ));
    }
    text.push_str(&format!(
        "path \"auth/{mount}/role/{}\" {{\n  capabilities = [\"read\"]\n}}\n",
        spec.operator.role
    ));
    // Some clients repeat the name in the body of a policy write; pin it to the policy's own.
    for (name, policy) in &policies {
        text.push_str(&format!(
            "path \"sys/policy/{name}\" {{\n  capabilities = [\"create\", \"update\", \"read\"]\n  allowed_parameters = {{\n    \"name\" = [{}]\n    \"policy\" = [{}]\n  }}\n}}\n",
            hcl_string(name),
            hcl_string(policy)
        ));
    }
    text.push_str(&format!(
        "path \"sys/policy/{}\" {{\n  capabilities = [\"read\"]\n}}\n",
        spec.operator.policy
    ));
    for role in &token_roles {
        text.push_str(&format!(
            "path \"auth/token/roles/{}\" {{\n  capabilities = [\"create\", \"update\", \"read\"]\n  allowed_parameters = {{\n    \"allowed_policies\" = {}\n    \"orphan\" = [{}]\n    \"renewable\" = [{}]\n    \"token_period\" = [\"{}s\"]\n    \"token_no_default_policy\" = [{}]\n  }}\n}}\n",
            role.name,
            pinned_list(&role.allowed_policies),
            role.orphan,
            role.renewable,
            role.token_period_seconds,
            role.token_no_default_policy,
        ));
    }
    text
}

/// The operator's Kubernetes auth role.
pub fn operator_role(spec: &BootstrapSpec) -> KubernetesRole {
    // The operator keeps the `default` policy: it looks up and revokes its own tokens.
    let namespace = spec
        .operator_namespace
        .as_deref()
        .unwrap_or(&spec.namespace);
    role_in(spec, &spec.operator, namespace, false)
}

/// Computes the desired state. Pure.
pub fn desired(spec: &BootstrapSpec) -> DesiredBootstrap {
    let (policies, roles, token_roles) = managed(spec);
    let mut all_policies: Vec<(String, String, bool)> =
        vec![(spec.operator.policy.clone(), operator_policy(spec), true)];
    // Every other identity is pinned in the operator's policy, so the operator re-applies it
    // (a self-initialized cluster gets them all this way). A cluster whose operator policy
    // predates an identity refuses the write, and that item is reported as drifted.
    all_policies.extend(policies.into_iter().map(|(n, t)| (n, t, false)));
    let mut all_roles = vec![(operator_role(spec), true)];
    all_roles.extend(roles.into_iter().map(|r| (r, false)));
    DesiredBootstrap {
        policies: all_policies,
        kubernetes_roles: all_roles,
        token_roles,
    }
}

/// Whose token applies the bootstrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authority {
    /// The root token: may write everything.
    Root,
    /// The operator's own login: may re-apply everything except its own policy and role,
    /// which it only checks.
    Operator,
}

/// One object bootstrap manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// The Kubernetes auth mount.
    AuthMount(String),
    /// The Kubernetes auth configuration.
    KubernetesConfig(String),
    /// An ACL policy.
    Policy(String),
    /// A Kubernetes auth role.
    KubernetesRole(String),
    /// A token role.
    TokenRole(String),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::AuthMount(p) => write!(f, "auth mount {p}"),
            Item::KubernetesConfig(p) => write!(f, "auth/{p}/config"),
            Item::Policy(n) => write!(f, "policy {n}"),
            Item::KubernetesRole(n) => write!(f, "Kubernetes auth role {n}"),
            Item::TokenRole(n) => write!(f, "token role {n}"),
        }
    }
}

/// What happened to one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// It did not exist and was written.
    Created,
    /// It differed and was rewritten.
    Updated,
    /// It was already as desired.
    Unchanged,
    /// It differs, and this authority may not fix it (the operator's own policy or role
    /// under [`Authority::Operator`]); someone with the root token must.
    Drifted,
}

/// What one bootstrap run did, item by item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootstrapReport {
    /// Every item in the order applied.
    pub items: Vec<(Item, Change)>,
}

impl fmt::Display for BootstrapReport {
    /// A one-line summary for Events: how many items were created, updated, left alone,
    /// and which drifted out of reach.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |change: Change| self.items.iter().filter(|(_, c)| *c == change).count();
        write!(
            f,
            "{} created, {} updated, {} unchanged",
            count(Change::Created),
            count(Change::Updated),
            count(Change::Unchanged)
        )?;
        let drifted: Vec<String> = self.drifted().iter().map(|i| format!("{i:?}")).collect();
        if !drifted.is_empty() {
            write!(
                f,
                "; drifted beyond the operator's rights: {}",
                drifted.join(", ")
            )?;
        }
        Ok(())
    }
}

impl BootstrapReport {
    /// Whether nothing was written.
    pub fn is_unchanged(&self) -> bool {
        self.items.iter().all(|(_, c)| *c == Change::Unchanged)
    }

    /// Items that drifted and could not be fixed.
    pub fn drifted(&self) -> Vec<&Item> {
        self.items
            .iter()
            .filter(|(_, c)| *c == Change::Drifted)
            .map(|(i, _)| i)
            .collect()
    }
}

fn change<T: PartialEq>(current: Option<&T>, desired: &T) -> Option<Change> {
    match current {
        None => Some(Change::Created),
        Some(c) if c == desired => None,
        Some(_) => Some(Change::Updated),
    }
}

/// A write the operator's own login was refused: an identity added by a newer release
/// than the operator policy in Vault (which only root may rewrite) is out of its reach.
/// That is reported as drift, not a failed bootstrap, so the rest keeps working.
fn beyond_rights(error: Error, authority: Authority) -> Result<Change> {
    match (&error, authority) {
        (Error::PermissionDenied { .. }, Authority::Operator) => Ok(Change::Drifted),
        _ => Err(error),
    }
}

/// Applies the bootstrap through `pod` (the active node). Reads each item first and writes
/// only what differs.
pub async fn apply(
    client: &dyn NodeClient,
    pod: &PodName,
    spec: &BootstrapSpec,
    token: &Token,
    authority: Authority,
) -> Result<BootstrapReport> {
    spec.validate()?;
    let desired = desired(spec);
    let mut report = BootstrapReport::default();
    let mount = &spec.kubernetes_mount;

    let mounts = client.auth_mounts(pod, token).await?;
    match mounts.get(&format!("{mount}/")) {
        Some(kind) if kind == "kubernetes" => report
            .items
            .push((Item::AuthMount(mount.clone()), Change::Unchanged)),
        Some(kind) => {
            return Err(Error::invalid(
                "bootstrap.kubernetesMount",
                format!("auth/{mount} is already a {kind} auth method"),
                "choose another mount path for Kubernetes auth",
            ));
        }
        None => {
            client.enable_auth(pod, mount, "kubernetes", token).await?;
            report
                .items
                .push((Item::AuthMount(mount.clone()), Change::Created));
        }
    }

    let current = client
        .read_kubernetes_auth_config(pod, mount, token)
        .await?;
    let outcome = match change(current.as_ref(), &spec.kubernetes) {
        None => Change::Unchanged,
        Some(c) => {
            client
                .write_kubernetes_auth_config(pod, mount, &spec.kubernetes, token)
                .await?;
            c
        }
    };
    report
        .items
        .push((Item::KubernetesConfig(mount.clone()), outcome));

    for (name, text, root_only) in &desired.policies {
        let current = client.read_policy(pod, name, token).await?;
        let outcome = match change(current.as_ref(), text) {
            None => Change::Unchanged,
            Some(_) if *root_only && authority == Authority::Operator => Change::Drifted,
            Some(c) => match client.write_policy(pod, name, text, token).await {
                Ok(()) => c,
                Err(e) => beyond_rights(e, authority)?,
            },
        };
        report.items.push((Item::Policy(name.clone()), outcome));
    }

    for (role, root_only) in &desired.kubernetes_roles {
        let current = client
            .read_kubernetes_role(pod, mount, &role.name, token)
            .await?;
        let outcome = match change(current.as_ref(), role) {
            None => Change::Unchanged,
            Some(_) if *root_only && authority == Authority::Operator => Change::Drifted,
            Some(c) => match client.write_kubernetes_role(pod, mount, role, token).await {
                Ok(()) => c,
                Err(e) => beyond_rights(e, authority)?,
            },
        };
        report
            .items
            .push((Item::KubernetesRole(role.name.clone()), outcome));
    }

    for role in &desired.token_roles {
        let current = client.read_token_role(pod, &role.name, token).await?;
        let outcome = match change(current.as_ref(), role) {
            None => Change::Unchanged,
            Some(c) => {
                client.write_token_role(pod, role, token).await?;
                c
            }
        };
        report
            .items
            .push((Item::TokenRole(role.name.clone()), outcome));
    }
    Ok(report)
}

/// The spec with the names the operator uses by default (for tests and documentation).
#[cfg(test)]
pub(crate) struct ExampleSpec;

#[cfg(test)]
impl ExampleSpec {
    pub(crate) fn spec() -> BootstrapSpec {
        tests::spec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> BootstrapSpec {
        let identity = |n: &str| Identity {
            service_account: format!("vault-{n}"),
            role: format!("vaultkeeper-{n}"),
            policy: format!("vaultkeeper-{n}"),
        };
        BootstrapSpec {
            namespace: "vault".into(),
            kubernetes_mount: "kubernetes".into(),
            kubernetes: KubernetesAuthConfig {
                kubernetes_host: "https://kubernetes.default.svc:443".into(),
                kubernetes_ca_cert: None,
                issuer: None,
                disable_local_ca_jwt: false,
            },
            operator: Identity {
                service_account: "vaultkeeper".into(),
                role: "vaultkeeper-operator".into(),
                policy: "vaultkeeper-operator".into(),
            },
            operator_namespace: None,
            backup: identity("backup"),
            metrics_token_job: identity("metrics-token"),
            metrics_policy: "vaultkeeper-metrics".into(),
            metrics_token_role: "vaultkeeper-metrics".into(),
            metrics_token_period_seconds: 14 * 24 * 3600,
            restore: Some(identity("restore")),
            config: Some(Identity {
                service_account: "vaultkeeper".into(),
                role: "vaultkeeper-config".into(),
                policy: "vaultkeeper-config".into(),
            }),
            login_ttl_seconds: 900,
            revoke_root_token: false,
        }
    }

    #[test]
    fn the_backup_policy_grants_snapshot_read_only() {
        let policy = backup_policy();
        assert_eq!(policy.matches("path ").count(), 1);
        assert!(
            policy.contains("path \"sys/storage/raft/snapshot\"") && policy.contains("[\"read\"]")
        );
    }

    #[test]
    fn the_operator_policy_is_stable() {
        insta::assert_snapshot!(operator_policy(&spec()));
    }

    #[test]
    fn the_operator_policy_pins_every_value_it_may_write() {
        let spec = spec();
        let policy = operator_policy(&spec);
        // Its own policy and role are read-only to it.
        assert!(policy.contains(
            "path \"sys/policy/vaultkeeper-operator\" {\n  capabilities = [\"read\"]\n}"
        ));
        assert!(policy.contains(
            "path \"auth/kubernetes/role/vaultkeeper-operator\" {\n  capabilities = [\"read\"]\n}"
        ));
        // The backup policy text is pinned, escaped as an HCL string.
        assert!(policy.contains(&hcl_string(&backup_policy())));
        assert!(policy.contains("\"bound_service_account_names\" = [[\"vault-backup\"]]"));
        assert!(policy.contains("\"kubernetes_host\" = [\"https://kubernetes.default.svc:443\"]"));
    }

    #[test]
    fn every_role_requires_the_vault_login_audience_and_the_operator_cannot_drop_it() {
        let spec = spec();
        let desired = desired(&spec);
        for (role, _) in &desired.kubernetes_roles {
            assert_eq!(role.audience, VAULT_LOGIN_AUDIENCE, "{}", role.name);
        }
        // Every role the operator may write has its audience pinned: a write without it, or
        // with another audience, is refused by Vault's ACL.
        let policy = operator_policy(&spec);
        let writable = policy.matches("path \"auth/kubernetes/role/").count() - 1;
        assert_eq!(
            policy.matches("\"audience\" = [\"vaultkeeper\"]").count(),
            writable
        );
    }

    #[test]
    fn the_config_identity_binds_the_operator_account_and_cannot_reach_reserved_policies() {
        let mut spec = spec();
        spec.operator_namespace = Some("vaultkeeper-system".into());
        let desired = desired(&spec);
        let (role, root_only) = desired
            .kubernetes_roles
            .iter()
            .find(|(r, _)| r.name == "vaultkeeper-config")
            .expect("the config role is managed");
        assert!(!root_only);
        assert_eq!(
            role.bound_service_account_names,
            vec!["vaultkeeper".to_owned()]
        );
        assert_eq!(
            role.bound_service_account_namespaces,
            vec!["vaultkeeper-system".to_owned()]
        );
        assert_eq!(role.token_policies, vec!["vaultkeeper-config".to_owned()]);
        let text = config_policy();
        for denied in ["vaultkeeper-*", "default", "root"] {
            assert!(
                text.contains(&format!(
                    "path \"sys/policy/{denied}\" {{\n  capabilities = [\"deny\"]"
                )),
                "{denied}"
            );
        }
        // Nothing outside sys/policy.
        assert_eq!(
            text.matches("path \"").count(),
            text.matches("path \"sys/policy/").count()
        );
        // The operator may write exactly this text and nothing else there.
        assert!(operator_policy(&spec).contains(&hcl_string(&text)));
    }

    #[test]
    fn hcl_strings_escape_quotes_and_newlines() {
        assert_eq!(hcl_string("a \"b\"\nc\\"), "\"a \\\"b\\\"\\nc\\\\\"");
    }

    #[test]
    fn spec_validation_names_the_field() {
        let mut bad = spec();
        bad.backup.policy = "vaultkeeper-operator".into();
        assert!(
            bad.validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("used twice")
        );
        let mut bad = spec();
        bad.backup.service_account = "-x".into();
        assert!(
            bad.validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("bootstrap.backup.serviceAccount")
        );
        let mut bad = spec();
        bad.kubernetes.kubernetes_host = "http://x".into();
        assert!(
            bad.validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("bootstrap.kubernetes.host")
        );
        assert!(spec().validate().is_ok());
    }

    #[test]
    fn the_operator_role_binds_the_operator_namespace_and_jobs_stay_in_the_cluster_namespace() {
        let mut spec = spec();
        spec.operator_namespace = Some("vaultkeeper-system".into());
        assert_eq!(
            operator_role(&spec).bound_service_account_namespaces,
            vec!["vaultkeeper-system".to_owned()]
        );
        let desired = desired(&spec);
        for (role, _) in desired
            .kubernetes_roles
            .iter()
            .filter(|(r, _)| r.name != spec.operator.role && r.name != "vaultkeeper-config")
        {
            assert_eq!(
                role.bound_service_account_namespaces,
                vec!["vault".to_owned()],
                "{}",
                role.name
            );
        }
    }
}
