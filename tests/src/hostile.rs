//! The attacker of the hostile suite (`tests/tests/hostile/`): a person who may only edit
//! VaultClusters and create pods in their own namespace. Everything they do goes through
//! a client authenticated as their ServiceAccount, so the simulated API server's RBAC
//! decides what they may do, as a real cluster's would.

use serde_json::{Value, json};
use vaultkeeper_sim::SimCluster;

use crate::install::{INSTALLER, InstallError, apply_objects};

/// The attacker's namespace.
pub const ATTACKER_NAMESPACE: &str = "team-a";
/// The attacker's ServiceAccount (in [`ATTACKER_NAMESPACE`]).
pub const ATTACKER: &str = "mallory";
/// A neighbour's namespace, holding what the attacker must not reach.
pub const VICTIM_NAMESPACE: &str = "team-b";

/// What the attacker is granted: VaultClusters (all verbs) and pods (create, read,
/// delete) in their namespace, nothing else.
pub fn attacker_rbac(namespace: &str, name: &str) -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": name, "namespace": namespace}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "vaultcluster-editor", "namespace": namespace},
        "rules": [
            {"apiGroups": ["vaultkeeper.io"], "resources": ["vaultclusters"],
             "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
            {"apiGroups": [""], "resources": ["pods"],
             "verbs": ["get", "list", "watch", "create", "delete"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "vaultcluster-editor", "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": "vaultcluster-editor"},
               "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]}),
    ]
}

/// Creates the attacker's namespace, ServiceAccount and Role (as the cluster admin) and
/// returns a client that acts as the attacker.
pub async fn attacker(sim: &SimCluster) -> Result<kube::Client, InstallError> {
    apply_objects(
        &sim.client()?,
        &attacker_rbac(ATTACKER_NAMESPACE, ATTACKER),
        INSTALLER,
    )
    .await?;
    Ok(sim.client_as_service_account(ATTACKER_NAMESPACE, ATTACKER)?)
}

/// The manifest of a small OpenBao cluster (one replica, backups off) named `name`, with
/// `extra_spec` (YAML lines indented under `spec:`) appended: what the attacks start from.
pub fn small_cluster_yaml(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata:\n  name: {name}\nspec:\n  flavor: OpenBao\n  image: quay.io/openbao/openbao:2.7.2\n  replicas: 1\n  backup:\n    enabled: false\n{extra_spec}\n"
    )
}

/// [`small_cluster_yaml`] parsed, in the attacker's namespace.
pub fn small_cluster(name: &str, extra_spec: &str) -> vaultkeeper_api::VaultCluster {
    let mut vc = vaultkeeper_api::parse_manifests(&small_cluster_yaml(name, extra_spec))
        .expect("the manifest parses")
        .remove(0);
    vc.metadata.namespace = Some(ATTACKER_NAMESPACE.to_owned());
    vc
}
