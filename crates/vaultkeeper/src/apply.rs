//! The objects of a cluster, in three steps kept apart: [`read_live`] reads what exists,
//! [`changes`] decides (pure) what to apply and what to prune, and [`apply_all`] /
//! [`delete_all`] write it, with server-side apply under one field manager.
//!
//! A pass that changes nothing makes no write request: each object is compared with the
//! live one first (every field vaultkeeper sets must already have its value), and only
//! drifted or missing objects are applied. Pruning deletes only objects that carry an
//! owner reference to this very VaultCluster (its uid), so owner-less objects such as the
//! keys Secret and the backup key can never be pruned.

use std::collections::{BTreeMap, BTreeSet};

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
        source: Box<kube::Error>,
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

/// [`with_retries`] for a write that carries a resourceVersion: a conflict is the answer
/// (someone else changed the object), so it is handed back at once, never repeated.
pub async fn with_retries_keeping_conflicts<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    for pause in RETRY_PAUSES {
        match request().await {
            Err(kube::Error::Api(status)) if status.code == 409 => {
                return Err(kube::Error::Api(status));
            }
            Err(error) if retryable(&error) => tokio::time::sleep(pause).await,
            done => return done,
        }
    }
    request().await
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

/// The objects of one cluster as the API server has them, by kind and name.
#[derive(Clone, Debug, Default)]
pub struct LiveObjects {
    /// Each object as JSON, by kind and name.
    pub objects: BTreeMap<(String, String), Value>,
    /// Prunable kinds this API server does not serve (their CRD is not installed).
    pub unserved: BTreeSet<String>,
}

impl LiveObjects {
    /// The live object `kind/name`.
    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(kind.to_owned(), name.to_owned()))
    }

    /// The StatefulSet `name`, typed.
    pub fn statefulset(&self, name: &str) -> Option<k8s_openapi::api::apps::v1::StatefulSet> {
        self.get("StatefulSet", name)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

/// Reads every object of the prunable kinds in `namespace` that matches `selector` (a
/// cluster's labels), and the cluster-scoped objects named in `cluster_scoped` (kind,
/// name). A kind the API server does not serve is recorded as such; any other failure is
/// an error, so that nothing is ever pruned on a partial picture.
pub async fn read_live(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
    cluster_scoped: &[(&str, &str, &str)],
) -> Result<LiveObjects, ApplyError> {
    let mut live = LiveObjects::default();
    let params = ListParams::default().labels(selector);
    for (api_version, kind) in PRUNABLE_KINDS {
        let resource = resource_of(api_version, kind, "")?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        match with_retries(|| api.list(&params)).await {
            Ok(list) => {
                for object in list.items {
                    let name = object.metadata.name.clone().unwrap_or_default();
                    live.objects
                        .insert(((*kind).to_owned(), name), json(&object));
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                live.unserved.insert((*kind).to_owned());
            }
            Err(source) => {
                return Err(ApplyError::Request {
                    verb: "list",
                    kind: (*kind).to_owned(),
                    name: String::new(),
                    source: Box::new(source),
                });
            }
        }
    }
    for (api_version, kind, name) in cluster_scoped {
        let resource = resource_of(api_version, kind, name)?;
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let found =
            with_retries(|| api.get_opt(name))
                .await
                .map_err(|source| ApplyError::Request {
                    verb: "read",
                    kind: (*kind).to_owned(),
                    name: (*name).to_owned(),
                    source: Box::new(source),
                })?;
        if let Some(object) = found {
            live.objects
                .insert(((*kind).to_owned(), (*name).to_owned()), json(&object));
        }
    }
    Ok(live)
}

fn json(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

fn resource_of(api_version: &str, kind: &str, name: &str) -> Result<ApiResource, ApplyError> {
    api_resource(api_version, kind).ok_or_else(|| ApplyError::ApiVersion {
        kind: kind.to_owned(),
        name: name.to_owned(),
        api_version: api_version.to_owned(),
    })
}

/// What must change for the live objects to be what was rendered.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Objects to apply: missing, or some field we set differs.
    pub apply: Vec<Manifest>,
    /// Objects already as rendered.
    pub unchanged: usize,
    /// Objects to delete (kind, name): owned by this VaultCluster (its uid) and no longer
    /// wanted.
    pub prune: Vec<(String, String)>,
}

/// Compares `wanted` with `live`. Pure. Only namespaced objects of the prunable kinds
/// that carry an owner reference to this very VaultCluster (`owner_uid`) are ever pruned,
/// so owner-less objects such as the keys Secret and the backup key never are; nor are
/// kinds in `held_back` (rendered, but not applied because their API is missing: the
/// spec did not drop them).
pub fn changes(
    wanted: Vec<Manifest>,
    live: &LiveObjects,
    held_back: &BTreeSet<String>,
    owner_uid: &str,
) -> Changes {
    let keep: BTreeSet<(String, String)> = wanted
        .iter()
        .filter(|m| m.namespace.is_some())
        .map(|m| (m.kind.clone(), m.name.clone()))
        .collect();
    let prunable: BTreeSet<&str> = PRUNABLE_KINDS.iter().map(|(_, kind)| *kind).collect();
    let prune = live
        .objects
        .iter()
        .filter(|((kind, _), _)| prunable.contains(kind.as_str()) && !held_back.contains(kind))
        .filter(|(key, _)| !keep.contains(*key))
        .filter(|(_, object)| {
            object["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|owners| {
                    owners
                        .iter()
                        .any(|o| o["uid"] == owner_uid && o["kind"] == "VaultCluster")
                })
        })
        .map(|(key, _)| key.clone())
        .collect();
    let mut unchanged = 0;
    let apply = wanted
        .into_iter()
        .filter(|m| {
            let in_place = live
                .get(&m.kind, &m.name)
                .is_some_and(|live| is_subset(&m.object, live));
            unchanged += usize::from(in_place);
            !in_place
        })
        .collect();
    Changes {
        apply,
        unchanged,
        prune,
    }
}

/// Applies `manifests` with server-side apply (forced, one field manager). Returns what
/// was applied, as `Kind/name`.
pub async fn apply_all(
    client: &kube::Client,
    manifests: &[Manifest],
) -> Result<Vec<String>, ApplyError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::new();
    for manifest in manifests {
        let resource = resource_of(&manifest.api_version, &manifest.kind, &manifest.name)?;
        let api = api_for(client, &resource, manifest.namespace.as_deref());
        let patch = Patch::Apply(&manifest.object);
        with_retries(|| api.patch(&manifest.name, &params, &patch))
            .await
            .map_err(|source| ApplyError::Request {
                verb: "apply",
                kind: manifest.kind.clone(),
                name: manifest.name.clone(),
                source: Box::new(source),
            })?;
        applied.push(format!("{}/{}", manifest.kind, manifest.name));
    }
    Ok(applied)
}

/// Deletes the namespaced objects `objects` (kind, name) of the prunable kinds. Returns
/// what was deleted, as `Kind/name`; an object already gone is not an error.
pub async fn delete_all(
    client: &kube::Client,
    namespace: &str,
    objects: &[(String, String)],
) -> Result<Vec<String>, ApplyError> {
    let mut deleted = Vec::new();
    for (kind, name) in objects {
        let Some((api_version, _)) = PRUNABLE_KINDS.iter().find(|(_, k)| k == kind) else {
            continue;
        };
        let resource = resource_of(api_version, kind, name)?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let params = DeleteParams::background();
        match with_retries(|| api.delete(name, &params)).await {
            Ok(_) => deleted.push(format!("{kind}/{name}")),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(ApplyError::Request {
                    verb: "delete",
                    kind: kind.clone(),
                    name: name.clone(),
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(deleted)
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
