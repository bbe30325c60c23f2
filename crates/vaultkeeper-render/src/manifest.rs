//! A rendered object: what the operator applies with server-side apply and what
//! `vaultkeeper render` prints.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;

use crate::{RenderError, Scope};

/// One Kubernetes object, ready to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `StatefulSet`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The whole object, with `apiVersion` and `kind`.
    pub object: serde_json::Value,
}

impl Manifest {
    /// Serializes a typed object. `api_version` and `kind` are set here, so typed values
    /// from k8s-openapi (which leave them out) and hand-built JSON both work.
    pub(crate) fn new<T: Serialize>(
        api_version: &str,
        kind: &str,
        metadata: &ObjectMeta,
        object: &T,
    ) -> Result<Self, RenderError> {
        let name = metadata.name.clone().unwrap_or_default();
        let mut value = serde_json::to_value(object).map_err(|e| RenderError::Serialize {
            kind: kind.to_owned(),
            name: name.clone(),
            detail: e.to_string(),
        })?;
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), api_version.into());
            map.insert("kind".into(), kind.into());
            // Canonical key order makes the YAML stable for review and golden files.
            let sorted: BTreeMap<String, serde_json::Value> =
                std::mem::take(map).into_iter().collect();
            map.extend(sorted);
        }
        Ok(Self {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            name,
            namespace: metadata.namespace.clone(),
            object: value,
        })
    }

    /// Whether the object is one of the cluster's Secrets (holding key material).
    pub fn is_secret(&self) -> bool {
        self.kind == "Secret"
    }
}

/// Object metadata with the cluster's labels, namespace and owner reference.
pub(crate) fn metadata(
    scope: &Scope<'_>,
    name: String,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(scope.namespace().to_owned()),
        labels: Some(labels),
        owner_references: owner_reference(scope).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Metadata of a cluster-scoped object: no namespace and no owner reference (a
/// namespaced owner cannot own it; the operator's finalizer removes it).
pub(crate) fn cluster_metadata(name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn owner_reference(scope: &Scope<'_>) -> Option<OwnerReference> {
    scope.ctx.owner_uid.map(|uid| OwnerReference {
        api_version: "vaultkeeper.io/v1alpha1".to_owned(),
        kind: "VaultCluster".to_owned(),
        name: scope.names.cluster().to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Multi-document YAML, like `helm template` prints.
pub fn to_yaml_stream(manifests: &[Manifest]) -> Result<String, RenderError> {
    let mut out = String::new();
    for manifest in manifests {
        out.push_str("---\n");
        let yaml =
            serde_saphyr::to_string(&manifest.object).map_err(|e| RenderError::Serialize {
                kind: manifest.kind.clone(),
                name: manifest.name.clone(),
                detail: e.to_string(),
            })?;
        out.push_str(&yaml);
        if !yaml.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}
