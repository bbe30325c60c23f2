//! What the sandbox installs as the cluster's administrator: the CRD and the operator's
//! RBAC as `deploy/` and `deploy/watch/` have them (the default, namespaced install, for
//! the VaultCluster's namespace), then the VaultCluster, as `kubectl apply` would.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::Value;
use vaultkeeper_api::VaultCluster;

use super::{INSTALLER, OPERATOR_NAMESPACE};
use crate::CliError;

/// The operator's installation, embedded so the sandbox needs no checkout: the same files
/// `kubectl apply -k deploy/` installs, minus the Deployment (the operator runs in this
/// process instead, as the ServiceAccount these files create).
pub(super) const INSTALL: &[(&str, &str)] = &[
    (
        "deploy/namespace.yaml",
        include_str!("../../../../../deploy/namespace.yaml"),
    ),
    (
        "deploy/rbac/serviceaccount.yaml",
        include_str!("../../../../../deploy/rbac/serviceaccount.yaml"),
    ),
    (
        "deploy/rbac/clusterrole.yaml",
        include_str!("../../../../../deploy/rbac/clusterrole.yaml"),
    ),
    (
        "deploy/rbac/cluster-scope-clusterrole.yaml",
        include_str!("../../../../../deploy/rbac/cluster-scope-clusterrole.yaml"),
    ),
    (
        "deploy/rbac/cluster-scope-clusterrolebinding.yaml",
        include_str!("../../../../../deploy/rbac/cluster-scope-clusterrolebinding.yaml"),
    ),
    (
        "deploy/rbac/vault-server-clusterrole.yaml",
        include_str!("../../../../../deploy/rbac/vault-server-clusterrole.yaml"),
    ),
    (
        "deploy/rbac/leader-election-role.yaml",
        include_str!("../../../../../deploy/rbac/leader-election-role.yaml"),
    ),
    (
        "deploy/rbac/leader-election-rolebinding.yaml",
        include_str!("../../../../../deploy/rbac/leader-election-rolebinding.yaml"),
    ),
];

/// `deploy/watch/`'s RoleBinding: the operator's rights in one watched namespace.
const WATCH_BINDING: (&str, &str) = (
    "deploy/watch/rolebinding.yaml",
    include_str!("../../../../../deploy/watch/rolebinding.yaml"),
);

/// Applies the CRDs and the operator's installation as the cluster's administrator, with
/// `watched` (created if missing) as the one namespace the operator manages.
pub(super) async fn install(admin: &kube::Client, watched: &str) -> Result<(), CliError> {
    // Every kind the operator serves (VaultCluster, VaultPolicy, VaultRestore), so each
    // example can be applied here.
    for kind in vaultkeeper_api::CRD_KINDS {
        let yaml = vaultkeeper_api::kind_crd_yaml(kind)
            .unwrap_or_else(|| Ok(String::new()))
            .map_err(|e| CliError::Internal(format!("cannot serialize the {kind} CRD: {e}")))?;
        let crd: Value = serde_saphyr::from_str(&yaml)
            .map_err(|e| CliError::Internal(format!("the {kind} CRD is not valid YAML: {e}")))?;
        apply_value(admin, &format!("the {kind} CRD"), &crd).await?;
    }
    for (path, text) in INSTALL {
        let docs: Vec<Value> = serde_saphyr::from_multiple(text)
            .map_err(|e| CliError::Internal(format!("{path} is not valid YAML: {e}")))?;
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            apply_value(admin, path, &doc).await?;
        }
    }
    let namespace =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": watched}});
    apply_value(admin, "the watched namespace", &namespace).await?;
    let (path, text) = WATCH_BINDING;
    let mut binding: Value = serde_saphyr::from_str(text)
        .map_err(|e| CliError::Internal(format!("{path} is not valid YAML: {e}")))?;
    binding["metadata"]["namespace"] = Value::String(watched.to_owned());
    apply_value(admin, path, &binding).await
}

/// Server-side applies one object of any kind (resolved by discovery).
pub(super) async fn apply_value(
    client: &kube::Client,
    what: &str,
    obj: &Value,
) -> Result<(), CliError> {
    let failed = |e: &dyn std::fmt::Display| CliError::Internal(format!("applying {what}: {e}"));
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| failed(&e))?;
    let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or(OPERATOR_NAMESPACE);
        Api::namespaced_with(client.clone(), ns, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    api.patch(
        name,
        &PatchParams::apply(INSTALLER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|e| failed(&e))?;
    Ok(())
}

/// Creates the cluster's namespace and applies the VaultCluster, as `kubectl apply` would.
pub(super) async fn apply_cluster(
    admin: &kube::Client,
    cluster: &VaultCluster,
) -> Result<(), CliError> {
    let namespace = cluster.metadata.namespace.clone().unwrap_or_default();
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(namespace.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let params = PatchParams::apply(INSTALLER).force();
    Api::<Namespace>::all(admin.clone())
        .patch(&namespace, &params, &Patch::Apply(&ns))
        .await
        .map_err(|e| CliError::Internal(format!("creating namespace {namespace}: {e}")))?;
    let mut body = serde_json::to_value(cluster)
        .map_err(|e| CliError::Internal(format!("cannot serialize the VaultCluster: {e}")))?;
    if let Some(meta) = body["metadata"].as_object_mut() {
        meta.remove("creationTimestamp");
    }
    body.as_object_mut().map(|o| o.remove("status"));
    Api::<VaultCluster>::namespaced(admin.clone(), &namespace)
        .patch(&name, &params, &Patch::Apply(&body))
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) if status.code == 422 => CliError::Input(format!(
                "the API server refused VaultCluster {namespace}/{name}: {}",
                status.message
            )),
            e => CliError::Internal(format!("applying VaultCluster {namespace}/{name}: {e}")),
        })?;
    Ok(())
}
