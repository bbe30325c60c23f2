//! Every Kubernetes name derived from a VaultCluster, built in one place.
//!
//! The names follow the official Vault Helm chart in HA raft mode with the release name
//! equal to the VaultCluster name, so runbooks written for the chart keep working:
//! a cluster called `vault` gets the StatefulSet `vault`, the Services `vault`,
//! `vault-active`, `vault-standby`, `vault-internal` and `vault-ui`, the ConfigMap
//! `vault-config`, and so on.

/// Kubernetes' limit for DNS-1035 labels: Service names, label values, hostnames.
pub const DNS_LABEL_MAX: usize = 63;

/// Kubernetes' limit for CronJob names: the Jobs it creates append an 11-character suffix
/// and must still be valid label values.
pub const CRONJOB_NAME_MAX: usize = 52;

/// Suffixes appended to the cluster name for names that must stay within a DNS label.
/// The longest one decides how long a VaultCluster name may be (see [`MAX_CLUSTER_NAME`]).
const LABEL_BOUND_SUFFIXES: &[&str] = &["-internal", "-standby", "-active", "-ui", "-6"];

/// Suffixes of CronJob names, which must stay within [`CRONJOB_NAME_MAX`].
const CRONJOB_SUFFIXES: &[&str] = &[BACKUP_SUFFIX, METRICS_CRONJOB_SUFFIX];

const BACKUP_SUFFIX: &str = "-backup";
const METRICS_CRONJOB_SUFFIX: &str = "-metrics";

/// A StatefulSet adds the label `controller-revision-hash: <name>-<10 characters>`.
const REVISION_HASH_SUFFIX_LEN: usize = 11;

/// The longest VaultCluster name for which every derived name is still valid.
pub const MAX_CLUSTER_NAME: usize = max_cluster_name();

const fn max_cluster_name() -> usize {
    let mut max = DNS_LABEL_MAX - REVISION_HASH_SUFFIX_LEN;
    let mut i = 0;
    while i < LABEL_BOUND_SUFFIXES.len() {
        let bound = DNS_LABEL_MAX - LABEL_BOUND_SUFFIXES[i].len();
        if bound < max {
            max = bound;
        }
        i += 1;
    }
    let mut j = 0;
    while j < CRONJOB_SUFFIXES.len() {
        let bound = CRONJOB_NAME_MAX - CRONJOB_SUFFIXES[j].len();
        if bound < max {
            max = bound;
        }
        j += 1;
    }
    max
}

/// Names inside Vault, the same in every cluster (each cluster is its own Vault).
pub mod vault {
    /// The operator's Kubernetes-auth role and its policy.
    pub const OPERATOR_ROLE: &str = "vaultkeeper-operator";
    /// The operator's policy.
    pub const OPERATOR_POLICY: &str = "vaultkeeper-operator";
    /// The backup job's policy (`read` on `sys/storage/raft/snapshot`).
    pub const BACKUP_POLICY: &str = "vaultkeeper-backup";
    /// The metrics-token job's policy (create and renew tokens from the token role).
    pub const METRICS_JOB_POLICY: &str = "vaultkeeper-metrics-token";
    /// The policy the metrics token carries (`read` on `sys/metrics`).
    pub const METRICS_POLICY: &str = "vaultkeeper-metrics";
    /// The token role the metrics token is created from.
    pub const METRICS_TOKEN_ROLE: &str = "vaultkeeper-metrics";
    /// The Kubernetes-auth role the operator logs in with to apply the configuration that
    /// VaultPolicy (and later) resources declare; a separate identity from its own, so that
    /// what a team's resource asks for never runs with the operator's rights.
    pub const CONFIG_ROLE: &str = "vaultkeeper-config";
    /// That identity's policy.
    pub const CONFIG_POLICY: &str = "vaultkeeper-config";
    /// Prefix of every policy vaultkeeper itself manages: out of reach of declared
    /// configuration.
    pub const RESERVED_PREFIX: &str = "vaultkeeper-";
    /// The Kubernetes-auth role a VaultRestore logs in with: bound to the operator's own
    /// ServiceAccount, granting only the restore policy.
    pub const RESTORE_ROLE: &str = "vaultkeeper-restore";
    /// The restore policy (`update` on `sys/storage/raft/snapshot` and `snapshot-force`).
    pub const RESTORE_POLICY: &str = "vaultkeeper-restore";
    /// The mount path of the Kubernetes auth method.
    pub const KUBERNETES_AUTH_MOUNT: &str = "kubernetes";
}

/// The names of everything rendered for one VaultCluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNames {
    cluster: String,
}

impl ClusterNames {
    /// Names for the VaultCluster called `cluster`.
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
        }
    }

    /// The VaultCluster's own name (the Helm release name).
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    fn with(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.cluster)
    }

    /// The StatefulSet, the PodDisruptionBudget, the server ServiceAccount and the main Service.
    pub fn statefulset(&self) -> String {
        self.cluster.clone()
    }

    /// The ServiceAccount the Vault pods run as.
    pub fn service_account(&self) -> String {
        self.cluster.clone()
    }

    /// The Service that selects every server pod.
    pub fn service(&self) -> String {
        self.cluster.clone()
    }

    /// The Service that selects the active node only.
    pub fn active_service(&self) -> String {
        self.with("-active")
    }

    /// The Service that selects unsealed standbys only.
    pub fn standby_service(&self) -> String {
        self.with("-standby")
    }

    /// The headless Service that gives every pod a stable DNS name.
    pub fn internal_service(&self) -> String {
        self.with("-internal")
    }

    /// The Service for the web UI.
    pub fn ui_service(&self) -> String {
        self.with("-ui")
    }

    /// The ConfigMap holding the server configuration.
    pub fn config_map(&self) -> String {
        self.with("-config")
    }

    /// The PodDisruptionBudget.
    pub fn pod_disruption_budget(&self) -> String {
        self.cluster.clone()
    }

    /// The Role that lets the pods label themselves (Kubernetes service registration).
    pub fn discovery_role(&self) -> String {
        self.with("-discovery-role")
    }

    /// The RoleBinding of the server to the pre-created service-registration ClusterRole.
    /// A name of its own, since a binding's role reference cannot change in place.
    pub fn discovery_cluster_role_binding(&self) -> String {
        self.with("-discovery")
    }

    /// The RoleBinding for [`Self::discovery_role`].
    pub fn discovery_role_binding(&self) -> String {
        self.with("-discovery-rolebinding")
    }

    /// The ClusterRoleBinding to `system:auth-delegator` (Kubernetes auth TokenReview).
    /// Cluster-scoped, so it carries the namespace; a `:` separates the two because neither
    /// a namespace nor a VaultCluster name can contain one, so no two clusters ever share
    /// the name (with `-`, namespace `a-b`/cluster `c` and `a`/`b-c` did).
    pub fn server_cluster_role_binding(&self, namespace: &str) -> String {
        format!("{namespace}:{}-server-binding", self.cluster)
    }

    /// The name [`Self::server_cluster_role_binding`] had before it became collision-free:
    /// the operator removes a binding of that name once it has checked that the binding
    /// is this cluster's (its subject is this cluster's ServiceAccount).
    pub fn legacy_server_cluster_role_binding(&self, namespace: &str) -> String {
        format!("{namespace}-{}-server-binding", self.cluster)
    }

    /// The Ingress.
    pub fn ingress(&self) -> String {
        self.cluster.clone()
    }

    /// The NetworkPolicy.
    pub fn network_policy(&self) -> String {
        self.cluster.clone()
    }

    /// The Secret with the internal certificate authority (like the yk8s role's
    /// `<name>-ca-internal`).
    pub fn ca_secret(&self) -> String {
        self.with("-ca-internal")
    }

    /// The Secret with the server certificate, key and CA bundle mounted into the pods.
    pub fn server_tls_secret(&self) -> String {
        self.with("-server-tls")
    }

    /// The cert-manager Certificate (mode `CertManager`).
    pub fn certificate(&self) -> String {
        self.with("-server-tls")
    }

    /// The Secret that keeps the init output (unseal or recovery shares, root token).
    /// Never owned by the VaultCluster, so garbage collection can never delete it.
    pub fn default_keys_secret(&self) -> String {
        self.with("-unseal-keys")
    }

    /// The backup CronJob, its ServiceAccount and its Vault role.
    pub fn backup(&self) -> String {
        self.with(BACKUP_SUFFIX)
    }

    /// The Secret with the backup encryption key when the spec names none.
    pub fn default_backup_key_secret(&self) -> String {
        self.with("-backup-key")
    }

    /// The metrics-token renewal CronJob and its ServiceAccount.
    pub fn metrics_token_job(&self) -> String {
        self.with(METRICS_CRONJOB_SUFFIX)
    }

    /// The Secret holding the Prometheus metrics token.
    pub fn metrics_token_secret(&self) -> String {
        self.with("-metrics-token")
    }

    /// The ServiceMonitor and the PrometheusRule.
    pub fn monitoring(&self) -> String {
        self.cluster.clone()
    }

    /// The Kubernetes-auth role the backup job logs in with (its ServiceAccount's name).
    pub fn vault_backup_role(&self) -> String {
        self.backup()
    }

    /// The Kubernetes-auth role the metrics-token job logs in with (its ServiceAccount's
    /// name).
    pub fn vault_metrics_job_role(&self) -> String {
        self.metrics_token_job()
    }

    /// The name of pod `ordinal` of the StatefulSet.
    pub fn pod(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.cluster)
    }

    /// A pod's stable DNS name inside the namespace: `<pod>.<name>-internal`.
    pub fn pod_internal_host(&self, ordinal: u32) -> String {
        format!("{}.{}", self.pod(ordinal), self.internal_service())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_cluster_name_keeps_every_derived_name_valid() {
        let name = "a".repeat(MAX_CLUSTER_NAME);
        let names = ClusterNames::new(&name);
        for label_bound in [
            names.internal_service(),
            names.standby_service(),
            names.active_service(),
            names.ui_service(),
            names.pod(6),
            format!("{}-0123456789", names.statefulset()),
        ] {
            assert!(label_bound.len() <= DNS_LABEL_MAX, "{label_bound}");
        }
        for cronjob in [names.backup(), names.metrics_token_job()] {
            assert!(cronjob.len() <= CRONJOB_NAME_MAX, "{cronjob}");
        }
        // And one more character breaks at least one of them.
        let names = ClusterNames::new("a".repeat(MAX_CLUSTER_NAME + 1));
        assert!(names.metrics_token_job().len() > CRONJOB_NAME_MAX);
    }

    #[test]
    fn names_follow_the_vault_helm_chart() {
        let n = ClusterNames::new("vault");
        assert_eq!(n.statefulset(), "vault");
        assert_eq!(n.active_service(), "vault-active");
        assert_eq!(n.standby_service(), "vault-standby");
        assert_eq!(n.internal_service(), "vault-internal");
        assert_eq!(n.ui_service(), "vault-ui");
        assert_eq!(n.config_map(), "vault-config");
        assert_eq!(n.discovery_role(), "vault-discovery-role");
        assert_eq!(n.discovery_role_binding(), "vault-discovery-rolebinding");
        assert_eq!(n.pod_internal_host(2), "vault-2.vault-internal");
        assert_eq!(n.ca_secret(), "vault-ca-internal");
    }
}
