//! Applies rendered objects with server-side apply under one field manager, skipping every
//! object that is already in place, and prunes the objects a cluster no longer asks for.
//!
//! A pass that changes nothing makes no write request: each object is compared with the
//! live one first (every field vaultkeeper sets must already have its value), and only
//! drifted or missing objects are applied. Pruning deletes only objects that carry an
//! owner reference to this very VaultCluster (its uid), so owner-less objects such as the
//! keys Secret and the backup key can never be pruned.

use std::collections::BTreeSet;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::Value;
use vaultkeeper_render::Manifest;

/// The field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "vaultkeeper";

/// Kinds the renderer produces and pruning looks at, namespaced ones first.
pub const PRUNABLE_KINDS: &[(&str, &str)] = &[
    ("v1", "ServiceAccount"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "StatefulSet"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("batch/v1", "CronJob"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
];

/// What applying did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Objects created or changed: `Kind/name`.
    pub applied: Vec<String>,
    /// Objects already in place.
    pub unchanged: usize,
    /// Objects deleted because the spec no longer asks for them: `Kind/name`.
    pub pruned: Vec<String>,
}

/// Why applying failed; carries the object, never its content.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server refused or failed a request about one object.
    #[error("{verb} {kind}/{name}: {source}")]
    Request {
        /// What was being done.
        verb: &'static str,
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// An `apiVersion` that is not `group/version` or `version`.
    #[error("{kind}/{name} has an invalid apiVersion {api_version:?}")]
    ApiVersion {
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The bad value.
        api_version: String,
    },
}

pub(crate) fn api_resource(api_version: &str, kind: &str) -> Option<ApiResource> {
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    };
    if version.is_empty() {
        return None;
    }
    Some(ApiResource::from_gvk(&GroupVersionKind::gvk(
        group, version, kind,
    )))
}

fn api_for(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// Whether a failed request is worth repeating at once: the API server was briefly
/// unavailable or overloaded (5xx, 429), or a write raced another (409). Every request
/// this module makes is idempotent (reads, forced server-side apply, deletes), so a
/// repeat cannot do harm; without it one failed request out of the thirty-odd a pass
/// makes aborts the whole pass, and a flaky API server would keep a cluster from ever
/// converging.
pub fn retryable(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if matches!(status.code, 409 | 429 | 500 | 502 | 503 | 504))
}

/// How often a request is tried, and the pause before each repeat.
const RETRY_PAUSES: [std::time::Duration; 2] = [
    std::time::Duration::from_millis(100),
    std::time::Duration::from_millis(300),
];

/// Runs an idempotent request, repeating it after a short pause while it fails with a
/// [`retryable`] error.
pub async fn with_retries<T, F, Fut>(request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    with_retries_after(&RETRY_PAUSES, request).await
}

/// [`with_retries`] with its own pauses: one more try after each.
pub async fn with_retries_after<T, F, Fut>(
    pauses: &[std::time::Duration],
    mut request: F,
) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    for pause in pauses {
        match request().await {
            Err(error) if retryable(&error) => tokio::time::sleep(*pause).await,
            done => return done,
        }
    }
    request().await
}

/// Applies every manifest that is missing or has drifted.
pub async fn apply_all(
    client: &kube::Client,
    manifests: &[Manifest],
) -> Result<ApplyReport, ApplyError> {
    let mut report = ApplyReport::default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for manifest in manifests {
        let resource = api_resource(&manifest.api_version, &manifest.kind).ok_or_else(|| {
            ApplyError::ApiVersion {
                kind: manifest.kind.clone(),
                name: manifest.name.clone(),
                api_version: manifest.api_version.clone(),
            }
        })?;
        let api = api_for(client, &resource, manifest.namespace.as_deref());
        let request_error = |verb: &'static str| {
            let kind = manifest.kind.clone();
            let name = manifest.name.clone();
            move |source| ApplyError::Request {
                verb,
                kind,
                name,
                source,
            }
        };
        let live = with_retries(|| api.get_opt(&manifest.name))
            .await
            .map_err(request_error("read"))?;
        if let Some(live) = live {
            let live = serde_json::to_value(&live).unwrap_or(Value::Null);
            if is_subset(&manifest.object, &live) {
                report.unchanged += 1;
                continue;
            }
        }
        let patch = Patch::Apply(&manifest.object);
        with_retries(|| api.patch(&manifest.name, &params, &patch))
            .await
            .map_err(request_error("apply"))?;
        report
            .applied
            .push(format!("{}/{}", manifest.kind, manifest.name));
    }
    Ok(report)
}

/// Deletes objects of the prunable kinds that this VaultCluster owns (by uid) and that
/// `desired` no longer contains. Kinds the cluster does not serve are skipped.
pub async fn prune(
    client: &kube::Client,
    namespace: &str,
    owner_uid: &str,
    selector: &str,
    desired: &[Manifest],
) -> Result<Vec<String>, ApplyError> {
    let wanted: BTreeSet<(String, String)> = desired
        .iter()
        .filter(|m| m.namespace.is_some())
        .map(|m| (m.kind.clone(), m.name.clone()))
        .collect();
    let mut pruned = Vec::new();
    for (api_version, kind) in PRUNABLE_KINDS {
        let Some(resource) = api_resource(api_version, kind) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let params = ListParams::default().labels(selector);
        let list = match with_retries(|| api.list(&params)).await {
            Ok(list) => list,
            // The kind is not served here (no cert-manager, no prometheus-operator).
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(source) => {
                return Err(ApplyError::Request {
                    verb: "list",
                    kind: (*kind).to_owned(),
                    name: String::new(),
                    source,
                });
            }
        };
        for object in list.items {
            let name = object.metadata.name.clone().unwrap_or_default();
            let owned = object
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|owner| owner.uid == owner_uid && owner.kind == "VaultCluster");
            if !owned || wanted.contains(&((*kind).to_owned(), name.clone())) {
                continue;
            }
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => pruned.push(format!("{kind}/{name}")),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(ApplyError::Request {
                        verb: "delete",
                        kind: (*kind).to_owned(),
                        name,
                        source,
                    });
                }
            }
        }
    }
    Ok(pruned)
}

/// Whether every field `desired` sets already has that value in `live`. Lists must match
/// element by element (the API server keeps their order); objects may have more fields
/// live (defaults, status, other managers).
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(key, value)| {
            // metadata fields the server owns or rewrites are not ours to compare.
            if matches!(
                key.as_str(),
                "managedFields" | "resourceVersion" | "uid" | "creationTimestamp" | "generation"
            ) {
                return true;
            }
            match have.get(key) {
                Some(found) => is_subset(value, found),
                None => is_empty(value),
            }
        }),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h))
        }
        (Value::Number(want), Value::Number(have)) => want.as_f64() == have.as_f64(),
        (want, have) => want == have,
    }
}

/// Values the API server drops when they are empty (`{}`, `[]`, `null`).
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_transient_api_failures_are_repeated() {
        let api = |code: u16| {
            kube::Error::Api(
                kube::core::Status::failure("injected", "Reason")
                    .with_code(code)
                    .boxed(),
            )
        };
        for (code, repeat) in [
            (500, true),
            (503, true),
            (429, true),
            (409, true),
            (400, false),
            (403, false),
            (404, false),
            (422, false),
        ] {
            assert_eq!(retryable(&api(code)), repeat, "{code}");
        }
    }

    #[test]
    fn live_objects_with_defaults_and_status_still_match() {
        let desired = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "vault"}]}}}});
        let live = json!({
            "metadata": {"resourceVersion": "9", "managedFields": []},
            "spec": {"replicas": 3, "revisionHistoryLimit": 10,
                     "template": {"spec": {"containers": [{"name": "vault", "terminationMessagePath": "/dev/termination-log"}]}}},
            "status": {"readyReplicas": 3}
        });
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn a_changed_or_missing_field_is_drift() {
        let desired = json!({"spec": {"replicas": 3}});
        assert!(!is_subset(&desired, &json!({"spec": {"replicas": 5}})));
        assert!(!is_subset(&desired, &json!({"spec": {}})));
        let list = json!({"args": ["a", "b"]});
        assert!(!is_subset(&list, &json!({"args": ["a"]})));
        assert!(!is_subset(&list, &json!({"args": ["b", "a"]})));
    }

    #[test]
    fn empty_values_the_server_drops_are_not_drift() {
        let desired = json!({"volumes": [{"name": "home", "emptyDir": {}}], "x": null});
        assert!(is_subset(
            &desired,
            &json!({"volumes": [{"name": "home", "emptyDir": {}}]})
        ));
    }

    #[test]
    fn api_versions_map_to_resources() {
        let sts = api_resource("apps/v1", "StatefulSet").expect("apps");
        assert_eq!(sts.plural, "statefulsets");
        let svc = api_resource("v1", "Service").expect("core");
        assert_eq!((svc.group.as_str(), svc.plural.as_str()), ("", "services"));
        assert_eq!(
            api_resource("networking.k8s.io/v1", "Ingress")
                .expect("ing")
                .plural,
            "ingresses"
        );
        assert_eq!(
            api_resource("policy/v1", "PodDisruptionBudget")
                .expect("pdb")
                .plural,
            "poddisruptionbudgets"
        );
        assert!(api_resource("apps/", "StatefulSet").is_none());
    }
}
