//! Patch semantics: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic
//! merge patch for built-in kinds
//! (<https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/>,
//! <https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md>).
//!
//! The list semantics of built-in kinds (which lists merge by which key) are the
//! `patchStrategy`/`patchMergeKey` tags of the Kubernetes Go types for the fields the
//! project's objects use; server-side apply reuses them as `x-kubernetes-list-type`
//! information. Pure functions: no I/O.

use crate::error::SimError;
use serde_json::{Map, Value};

/// How a list field merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole (`x-kubernetes-list-type: atomic`, no patch strategy).
    Atomic,
    /// Items identified by these key fields (`patchMergeKey` / `x-kubernetes-list-map-keys`).
    Map(Vec<String>),
    /// A set of scalars merged by value (`finalizers`).
    Set,
}

/// Resolves list semantics for a path of field names (list indexes left out).
pub trait ListTypes {
    /// The list type of the field at `path` (the last element is the list field).
    fn list_type(&self, path: &[&str]) -> ListType;
}

/// The built-in kinds' list semantics.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinLists;

impl ListTypes for BuiltinLists {
    fn list_type(&self, path: &[&str]) -> ListType {
        builtin_list_type(path)
    }
}

/// Tags of the Kubernetes Go types, keyed by field name and, where the same name means
/// two things (`ports`), by where it sits.
pub fn builtin_list_type(path: &[&str]) -> ListType {
    let Some(field) = path.last() else {
        return ListType::Atomic;
    };
    let parent = path.len().checked_sub(2).map(|i| path[i]).unwrap_or("");
    let key = |k: &str| ListType::Map(vec![k.to_string()]);
    match *field {
        "finalizers" if parent == "metadata" => ListType::Set,
        "ownerReferences" if parent == "metadata" => key("uid"),
        "managedFields" => ListType::Atomic,
        "containers" | "initContainers" | "ephemeralContainers" => key("name"),
        "env" | "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates" => {
            key("name")
        }
        "volumeMounts" => key("mountPath"),
        "volumeDevices" => key("devicePath"),
        "ports" if path.iter().any(|p| p.ends_with("ontainers")) => key("containerPort"),
        "ports" if path.first() == Some(&"spec") && path.len() == 2 => key("port"),
        "conditions" => key("type"),
        "hostAliases" => key("ip"),
        "topologySpreadConstraints" => key("topologyKey"),
        "secrets" => key("name"),
        "taints" => key("key"),
        _ => ListType::Atomic,
    }
}

/// Applies an RFC 6902 JSON patch.
pub fn json_patch(doc: &mut Value, body: &[u8]) -> Result<(), SimError> {
    let ops: json_patch::Patch = serde_json::from_slice(body)
        .map_err(|e| SimError::BadRequest(format!("invalid JSON patch: {e}")))?;
    // The API server's JSON patch library (evanphx/json-patch v4) reads a missing object
    // key as null: `test` against null passes on a missing path (kube::runtime's
    // finalizer helper relies on it), and `replace` of a missing key inside an existing
    // object sets it (OpenBao's service registration relies on it, replacing labels
    // the pod does not have yet).
    let ops: Vec<json_patch::PatchOperation> = ops
        .0
        .into_iter()
        .filter(|op| match op {
            json_patch::PatchOperation::Test(t) => {
                !(t.value.is_null() && doc.pointer(t.path.as_str()).is_none())
            }
            _ => true,
        })
        .map(|op| match op {
            json_patch::PatchOperation::Replace(r) if missing_object_key(doc, r.path.as_str()) => {
                json_patch::PatchOperation::Add(json_patch::AddOperation {
                    path: r.path,
                    value: r.value,
                })
            }
            other => other,
        })
        .collect();
    json_patch::patch(doc, &ops).map_err(|e| {
        // The real server answers 422 for a patch that cannot apply (failed `test`,
        // missing path), naming the operation.
        SimError::Invalid {
            kind: String::new(),
            group: String::new(),
            name: String::new(),
            causes: vec![crate::error::Cause::new(
                "FieldValueInvalid",
                "patch",
                format!("the server rejected our request due to an error in our request: {e}"),
            )],
        }
    })
}

fn missing_object_key(doc: &Value, path: &str) -> bool {
    let Some((parent, key)) = path.rsplit_once('/') else {
        return false;
    };
    let key = key.replace("~1", "/").replace("~0", "~");
    matches!(doc.pointer(parent), Some(Value::Object(m)) if !m.contains_key(&key))
}

/// Applies an RFC 7386 JSON merge patch.
pub fn merge_patch(doc: &mut Value, body: &[u8]) -> Result<(), SimError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| SimError::BadRequest(format!("invalid JSON merge patch: {e}")))?;
    if !patch.is_object() {
        return Err(SimError::BadRequest(
            "invalid JSON merge patch: the patch must be a JSON object".into(),
        ));
    }
    json_patch::merge(doc, &patch);
    Ok(())
}

/// Applies a strategic merge patch to a built-in object.
pub fn strategic_merge_patch(doc: &mut Value, body: &[u8]) -> Result<(), SimError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| SimError::BadRequest(format!("invalid strategic merge patch: {e}")))?;
    let Value::Object(p) = patch else {
        return Err(SimError::BadRequest(
            "invalid strategic merge patch: the patch must be a JSON object".into(),
        ));
    };
    let mut path = Vec::new();
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    if let Value::Object(d) = doc
        && smp_map(d, &p, &mut path)? == MapOutcome::Delete
    {
        *doc = Value::Object(Map::new());
    }
    Ok(())
}

#[derive(PartialEq, Eq)]
enum MapOutcome {
    Keep,
    Delete,
}

fn smp_map(
    doc: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<MapOutcome, SimError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(MapOutcome::Delete),
        Some("replace") => {
            *doc = strip_directives(patch);
            return Ok(MapOutcome::Keep);
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(SimError::BadRequest(format!(
                "invalid strategic merge patch: unknown $patch directive {other:?} at {}",
                path.join(".")
            )));
        }
    }
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        doc.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(del)) = (doc.get_mut(field), v.as_array()) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            return Err(SimError::BadRequest(format!(
                "invalid strategic merge patch: unknown directive {k:?}"
            )));
        }
        path.push(k.clone());
        match v {
            Value::Null => {
                doc.remove(k);
            }
            Value::Object(pm) => match doc.get_mut(k) {
                Some(Value::Object(dm)) => {
                    if smp_map(dm, pm, path)? == MapOutcome::Delete {
                        doc.remove(k);
                    }
                }
                _ => {
                    if pm.get("$patch").and_then(Value::as_str) != Some("delete") {
                        let mut fresh = Map::new();
                        smp_map(&mut fresh, pm, path)?;
                        doc.insert(k.clone(), Value::Object(fresh));
                    }
                }
            },
            Value::Array(pl) => {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                let lt = builtin_list_type(&refs);
                let merged = match (lt, doc.remove(k)) {
                    (ListType::Map(keys), Some(Value::Array(dl))) => {
                        merge_keyed_list(dl, pl, &keys, path)?
                    }
                    (ListType::Set, Some(Value::Array(mut dl))) => {
                        for item in pl {
                            if !dl.contains(item) {
                                dl.push(item.clone());
                            }
                        }
                        dl
                    }
                    (ListType::Map(keys), _) => merge_keyed_list(Vec::new(), pl, &keys, path)?,
                    _ => pl.iter().map(strip_value).collect(),
                };
                doc.insert(k.clone(), Value::Array(merged));
            }
            other => {
                doc.insert(k.clone(), other.clone());
            }
        }
        path.pop();
    }
    Ok(MapOutcome::Keep)
}

fn item_matches(item: &Value, probe: &Value, keys: &[String]) -> bool {
    keys.iter().all(|k| item.get(k) == probe.get(k))
}

fn merge_keyed_list(
    mut doc: Vec<Value>,
    patch: &[Value],
    keys: &[String],
    path: &mut Vec<String>,
) -> Result<Vec<Value>, SimError> {
    // A list-level `{"$patch": "replace"}` item replaces the whole list.
    if patch.iter().any(|i| {
        i.get("$patch").and_then(Value::as_str) == Some("replace")
            && keys.iter().all(|k| i.get(k).is_none())
    }) {
        return Ok(patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip_value)
            .collect());
    }
    for item in patch {
        let Value::Object(pm) = item else {
            return Err(SimError::BadRequest(format!(
                "invalid strategic merge patch: items of {} must be objects",
                path.join(".")
            )));
        };
        let pos = doc.iter().position(|d| item_matches(d, item, keys));
        if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
            doc.retain(|d| !item_matches(d, item, keys));
            continue;
        }
        match pos {
            Some(i) => {
                if let Value::Object(dm) = &mut doc[i]
                    && smp_map(dm, pm, path)? == MapOutcome::Delete
                {
                    doc.remove(i);
                }
            }
            None => {
                let mut fresh = Map::new();
                smp_map(&mut fresh, pm, path)?;
                doc.push(Value::Object(fresh));
            }
        }
    }
    Ok(doc)
}

fn strip_directives(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), strip_value(v)))
        .collect()
}

fn strip_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m)),
        Value::Array(a) => Value::Array(a.iter().map(strip_value).collect()),
        other => other.clone(),
    }
}

/// Merges an applied configuration into a live object following the list semantics
/// (server-side apply's merge): maps merge recursively, keyed lists merge by key, sets
/// union, atomic lists and scalars are replaced.
pub fn apply_merge(
    live: &mut Value,
    applied: &Value,
    lists: &dyn ListTypes,
    path: &mut Vec<String>,
) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, v) in a {
                path.push(k.clone());
                match l.get_mut(k) {
                    Some(existing) if !v.is_null() => apply_merge(existing, v, lists, path),
                    _ => {
                        l.insert(k.clone(), v.clone());
                    }
                }
                path.pop();
            }
        }
        (live @ Value::Array(_), Value::Array(a)) => {
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            match lists.list_type(&refs) {
                ListType::Atomic => *live = Value::Array(a.clone()),
                ListType::Set => {
                    if let Value::Array(l) = live {
                        for item in a {
                            if !l.contains(item) {
                                l.push(item.clone());
                            }
                        }
                    }
                }
                ListType::Map(keys) => {
                    if let Value::Array(l) = live {
                        for item in a {
                            match l.iter().position(|d| item_matches(d, item, &keys)) {
                                Some(i) => apply_merge(&mut l[i], item, lists, path),
                                None => l.push(item.clone()),
                            }
                        }
                    }
                }
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(doc: Value, patch: Value) -> Value {
        let mut d = doc;
        strategic_merge_patch(&mut d, patch.to_string().as_bytes()).unwrap();
        d
    }

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        // Strategic merge patch: lists with patchMergeKey merge item by item.
        let doc = json!({"spec": {"containers": [
            {"name": "vault", "image": "a", "env": [{"name": "X", "value": "1"}]},
            {"name": "side", "image": "s"}
        ]}});
        let out = smp(
            doc,
            json!({"spec": {"containers": [{"name": "vault", "image": "b", "env": [{"name": "Y", "value": "2"}]}]}}),
        );
        assert_eq!(out["spec"]["containers"][0]["image"], "b");
        assert_eq!(
            out["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(out["spec"]["containers"][1]["name"], "side");
    }

    #[test]
    fn patch_delete_directive_removes_a_keyed_item() {
        let doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let out = smp(
            doc,
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}], "$setElementOrder/containers": [{"name": "b"}]}}),
        );
        assert_eq!(out, json!({"spec": {"containers": [{"name": "b"}]}}));
    }

    #[test]
    fn atomic_lists_are_replaced_and_null_deletes() {
        let doc = json!({"spec": {"containers": [{"name": "a", "args": ["x", "y"], "workingDir": "/w"}]}});
        let out = smp(
            doc,
            json!({"spec": {"containers": [{"name": "a", "args": ["z"], "workingDir": null}]}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}})
        );
    }

    #[test]
    fn finalizers_merge_as_a_set_and_delete_from_primitive_list() {
        let doc = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = smp(doc.clone(), json!({"metadata": {"finalizers": ["c", "a"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = smp(
            doc,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn service_ports_merge_by_port_container_ports_by_container_port() {
        assert_eq!(
            builtin_list_type(&["spec", "ports"]),
            ListType::Map(vec!["port".into()])
        );
        assert_eq!(
            builtin_list_type(&["spec", "template", "spec", "containers", "ports"]),
            ListType::Map(vec!["containerPort".into()])
        );
    }

    #[test]
    fn retain_keys_and_replace() {
        let out = smp(
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
        let out = smp(
            json!({"data": {"a": "1", "b": "2"}}),
            json!({"data": {"$patch": "replace", "c": "3"}}),
        );
        assert_eq!(out, json!({"data": {"c": "3"}}));
    }

    #[test]
    fn json_patch_failures_are_invalid() {
        let mut d = json!({"metadata": {}});
        let e = json_patch(
            &mut d,
            br#"[{"op":"replace","path":"/metadata/labels/x","value":"1"}]"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), 422);
        json_patch(
            &mut d,
            br#"[{"op":"add","path":"/metadata/labels","value":{"openbao-active":"true"}}]"#,
        )
        .unwrap();
        assert_eq!(d["metadata"]["labels"]["openbao-active"], "true");
        // OpenBao replaces labels the pod does not have yet; the API server accepts it.
        json_patch(
            &mut d,
            br#"[{"op":"replace","path":"/metadata/labels/openbao-sealed","value":"true"}]"#,
        )
        .unwrap();
        assert_eq!(d["metadata"]["labels"]["openbao-sealed"], "true");
    }
}
