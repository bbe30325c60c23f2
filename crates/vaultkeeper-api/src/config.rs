//! Declarative Vault configuration: resources a team keeps in its own namespace (and in
//! Git) that say what must exist inside a VaultCluster's Vault. `VaultPolicy` is the first
//! kind: an ACL policy, applied by the operator through its config identity, read back on
//! every resync and rewritten when someone changed it by hand.
//!
//! What is shared by every kind lives here once: the reference to the cluster, the
//! deletion policy, the status, and the rules that decide whether a resource may attach
//! to a cluster and whether a name may be managed at all. The rules are pure and tested by
//! tables; the controller only calls them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::VaultCluster;
use crate::names::vault::RESERVED_PREFIX;

/// Which VaultCluster a configuration resource belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// Name of the VaultCluster.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Namespace of the VaultCluster. Empty means the resource's own namespace. The
    /// cluster must list this resource's namespace in `spec.allowedConfigNamespaces`
    /// unless both are the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What deleting a configuration resource does to what it created in Vault.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConfigDeletionPolicy {
    /// Remove it from Vault (default).
    #[default]
    Delete,
    /// Leave it in Vault, unmanaged from then on.
    Retain,
}

/// An ACL policy inside a VaultCluster's Vault, kept as this resource says: created,
/// corrected when changed by hand, and removed when the resource is deleted.
// Several printer columns share `type_ = "string"`, which the lint reads as repeated
// attributes of one item.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "vaultkeeper.io",
    version = "v1alpha1",
    kind = "VaultPolicy",
    plural = "vaultpolicies",
    namespaced,
    category = "vault",
    status = "ConfigStatus",
    derive = "PartialEq",
    doc = "An ACL policy inside a VaultCluster's Vault, managed by vaultkeeper.",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.clusterRef.name"
    ),
    printcolumn(
        name = "Synced",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Synced\")].status"
    ),
    printcolumn(name = "Path", type_ = "string", json_path = ".status.vaultPath"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VaultPolicySpec {
    /// The VaultCluster whose Vault holds the policy.
    pub cluster_ref: ClusterRef,
    /// Name of the policy in Vault. Empty means the resource's name. Lowercase letters,
    /// digits, '-', '_' and '.'; `default`, `root` and names starting with `vaultkeeper-`
    /// are refused (Vault's built-ins and vaultkeeper's own identities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The policy in HCL, as `vault policy write` takes it. Vault checks it; a policy it
    /// refuses is reported in the Synced condition with Vault's message, and the policy
    /// in Vault is left as it was.
    #[schemars(length(min = 1))]
    pub policy: String,
    /// Delete (default) removes the policy from Vault when this resource is deleted;
    /// Retain leaves it there.
    #[serde(default)]
    pub deletion_policy: ConfigDeletionPolicy,
}

/// Status of every configuration resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where in Vault the object lives (e.g. `sys/policy/team-a`), once vaultkeeper has
    /// written it. Only what is recorded here is ever deleted from Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_path: Option<String>,
    /// When Vault was last seen to match the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_time: Option<Time>,
    /// The last error, naming the field it concerns; empty once synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// `Synced`: True when Vault holds what the spec says, with the reason and a message
    /// a person can act on otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl VaultPolicy {
    /// The policy's name in Vault: `spec.name`, else the resource's name.
    pub fn vault_name(&self) -> String {
        self.spec
            .name
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }
}

/// The namespace and name of the VaultCluster `cluster_ref` points at from a resource in
/// `own_namespace`.
pub fn cluster_key(cluster_ref: &ClusterRef, own_namespace: &str) -> (String, String) {
    (
        cluster_ref
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| own_namespace.to_owned()),
        cluster_ref.name.clone(),
    )
}

/// Whether `cluster` (in `cluster_namespace`) accepts configuration from `namespace`: its
/// own namespace always, others only when `spec.allowedConfigNamespaces` lists them or
/// holds `*`.
pub fn config_namespace_allowed(
    cluster: &VaultCluster,
    cluster_namespace: &str,
    namespace: &str,
) -> bool {
    namespace == cluster_namespace
        || cluster
            .spec
            .allowed_config_namespaces
            .iter()
            .any(|n| n == "*" || n == namespace)
}

/// Why a name cannot be managed: the field, what is wrong and the fix, as one sentence.
pub fn check_policy_name(name: &str) -> Result<(), String> {
    const FIELD: &str = "spec.name";
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(format!(
            "{FIELD}: {name:?} is not a valid policy name; use up to 128 lowercase letters, digits, '-', '_' and '.', starting with a letter or digit (set spec.name when the resource's name does not fit)"
        ));
    }
    if name == "default" || name == "root" {
        return Err(format!(
            "{FIELD}: {name:?} is a built-in Vault policy and is not managed by resources; choose another name"
        ));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "{FIELD}: names starting with {RESERVED_PREFIX:?} belong to vaultkeeper's own identities; choose another name"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VaultClusterSpec;

    #[test]
    fn policy_names_are_checked_with_the_field_and_the_fix() {
        let table = [
            ("team-a", None),
            ("team_a.read", None),
            ("0team", None),
            ("", Some("not a valid policy name")),
            ("Team", Some("not a valid policy name")),
            ("team/a", Some("not a valid policy name")),
            ("-team", Some("not a valid policy name")),
            ("default", Some("built-in")),
            ("root", Some("built-in")),
            ("vaultkeeper-operator", Some("vaultkeeper's own")),
            ("vaultkeeper-anything", Some("vaultkeeper's own")),
        ];
        for (name, wanted) in table {
            match (check_policy_name(name), wanted) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => {
                    assert!(e.contains(w) && e.starts_with("spec.name"), "{name}: {e}")
                }
                (got, _) => panic!("{name}: {got:?}"),
            }
        }
        assert!(check_policy_name(&"a".repeat(129)).is_err());
    }

    #[test]
    fn only_the_own_namespace_and_listed_ones_may_attach() {
        let mut vc = VaultCluster::new("vault", VaultClusterSpec::default());
        assert!(config_namespace_allowed(&vc, "vault", "vault"));
        assert!(!config_namespace_allowed(&vc, "vault", "team-a"));
        vc.spec.allowed_config_namespaces = vec!["team-a".into()];
        assert!(config_namespace_allowed(&vc, "vault", "team-a"));
        assert!(!config_namespace_allowed(&vc, "vault", "team-b"));
        vc.spec.allowed_config_namespaces = vec!["*".into()];
        assert!(config_namespace_allowed(&vc, "vault", "team-b"));
    }

    #[test]
    fn the_cluster_reference_defaults_to_the_own_namespace() {
        let r = ClusterRef {
            name: "vault".into(),
            namespace: None,
        };
        assert_eq!(cluster_key(&r, "team"), ("team".into(), "vault".into()));
        let r = ClusterRef {
            name: "vault".into(),
            namespace: Some("platform".into()),
        };
        assert_eq!(cluster_key(&r, "team"), ("platform".into(), "vault".into()));
    }
}
