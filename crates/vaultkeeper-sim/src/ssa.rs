//! Server-side apply and field ownership
//! (<https://kubernetes.io/docs/reference/using-api/server-side-apply/>): field sets in the
//! `FieldsV1` format, conflict detection (409 unless `force`), ownership transfer on
//! update, and removal of fields a manager stops applying when nobody else owns them.
//! Pure functions over JSON values: no I/O, the time is passed in.

use crate::error::{Cause, SimError};
use crate::patch::{ListType, ListTypes, apply_merge};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// One path element in the `FieldsV1` notation: `f:name`, `k:{"name":"x"}`, `v:"a"`, `i:0`.
pub type PathElem = String;
/// A path to a field or list item.
pub type FieldPath = Vec<PathElem>;
/// A set of owned paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// `metadata` fields the server owns and apply ignores (SSA docs: "fields that are
/// considered to be server-owned").
const IGNORED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// Which part of the object a request may change, from the subresource it targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole object (resource without a status subresource).
    Whole,
    /// Everything but `status` (main resource when a status subresource exists).
    NoStatus,
    /// Only `status` (the status subresource).
    StatusOnly,
}

/// The field set an object (or applied configuration) sets, in the request's scope.
pub fn field_set(obj: &Value, lists: &dyn ListTypes, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    let Value::Object(m) = obj else {
        return out;
    };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" => continue,
            "status" if scope == Scope::NoStatus => continue,
            "metadata" => {
                if let Value::Object(meta) = v {
                    for (mk, mv) in meta {
                        if IGNORED_METADATA.contains(&mk.as_str()) {
                            continue;
                        }
                        let mut path = vec![fe("metadata"), fe(mk)];
                        let mut names = vec!["metadata", mk.as_str()];
                        walk(mv, &mut path, &mut names, lists, &mut out);
                    }
                }
                continue;
            }
            _ if scope == Scope::StatusOnly && k != "status" => continue,
            _ => {}
        }
        let mut path = vec![fe(k)];
        let mut names = vec![k.as_str()];
        walk(v, &mut path, &mut names, lists, &mut out);
    }
    out
}

fn fe(name: &str) -> PathElem {
    format!("f:{name}")
}

fn key_elem(item: &Value, keys: &[String]) -> Option<PathElem> {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    let mut parts = Vec::new();
    for k in sorted {
        let v = item.get(k)?;
        parts.push(format!("{}:{}", Value::String(k.clone()), v));
    }
    Some(format!("k:{{{}}}", parts.join(",")))
}

fn walk<'a>(
    v: &'a Value,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    lists: &dyn ListTypes,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(fe(k));
                names.push(k.as_str());
                walk(child, path, names, lists, out);
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) => match lists.list_type(names) {
            ListType::Atomic => {
                out.insert(path.clone());
            }
            ListType::Set => {
                for item in items {
                    let mut p = path.clone();
                    p.push(format!("v:{item}"));
                    out.insert(p);
                }
            }
            ListType::Map(keys) => {
                for (i, item) in items.iter().enumerate() {
                    let elem = key_elem(item, &keys).unwrap_or_else(|| format!("i:{i}"));
                    path.push(elem);
                    out.insert(path.clone());
                    if let Value::Object(m) = item {
                        for (k, child) in m {
                            path.push(fe(k));
                            names.push(k.as_str());
                            walk(child, path, names, lists, out);
                            names.pop();
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// Renders a field set as `fieldsV1` JSON.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for (i, elem) in path.iter().enumerate() {
            let entry = cur
                .entry(elem.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(next) = entry else { break };
            cur = next;
            // A list item that is itself owned carries the "." marker.
            if i == path.len() - 1 && (elem.starts_with("k:") || elem.starts_with("i:")) {
                cur.insert(".".into(), json!({}));
            }
        }
    }
    Value::Object(root)
}

/// Parses `fieldsV1` JSON back into a field set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    fn rec(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Value::Object(m) = v else { return };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (k, child) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            rec(child, path, out);
            path.pop();
        }
    }
    rec(v, &mut Vec::new(), &mut out);
    out
}

/// Finds the value at a field path.
pub fn value_at<'a>(obj: &'a Value, path: &[PathElem]) -> Option<&'a Value> {
    let mut cur = obj;
    for elem in path {
        cur = step(cur, elem)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, elem: &str) -> Option<&'a Value> {
    if let Some(name) = elem.strip_prefix("f:") {
        return cur.get(name);
    }
    let items = cur.as_array()?;
    if let Some(key) = elem.strip_prefix("k:") {
        let probe: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items
            .iter()
            .find(|i| probe.iter().all(|(k, v)| i.get(k) == Some(v)));
    }
    if let Some(val) = elem.strip_prefix("v:") {
        let probe: Value = serde_json::from_str(val).ok()?;
        return items.iter().find(|i| **i == probe);
    }
    if let Some(idx) = elem.strip_prefix("i:") {
        return items.get(idx.parse::<usize>().ok()?);
    }
    None
}

/// Removes the field or list item a path names.
pub fn remove_at(obj: &mut Value, path: &[PathElem]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for elem in parent_path {
        let next = step_mut(cur, elem);
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Value::Object(m) = cur {
            m.remove(name);
        }
        return;
    }
    let Value::Array(items) = cur else { return };
    if let Some(key) = last.strip_prefix("k:") {
        if let Ok(probe) = serde_json::from_str::<Map<String, Value>>(key) {
            items.retain(|i| !probe.iter().all(|(k, v)| i.get(k) == Some(v)));
        }
    } else if let Some(val) = last.strip_prefix("v:")
        && let Ok(probe) = serde_json::from_str::<Value>(val)
    {
        items.retain(|i| *i != probe);
    }
}

fn step_mut<'a>(cur: &'a mut Value, elem: &str) -> Option<&'a mut Value> {
    if let Some(name) = elem.strip_prefix("f:") {
        return cur.get_mut(name);
    }
    let items = cur.as_array_mut()?;
    if let Some(key) = elem.strip_prefix("k:") {
        let probe: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items
            .iter_mut()
            .find(|i| probe.iter().all(|(k, v)| i.get(k) == Some(v)));
    }
    if let Some(val) = elem.strip_prefix("v:") {
        let probe: Value = serde_json::from_str(val).ok()?;
        return items.iter_mut().find(|i| **i == probe);
    }
    if let Some(idx) = elem.strip_prefix("i:") {
        return items.get_mut(idx.parse::<usize>().ok()?);
    }
    None
}

/// A `.spec.replicas`-style rendering of a path, as SSA conflict messages print it.
pub fn display_path(path: &[PathElem]) -> String {
    let mut s = String::new();
    for e in path {
        if let Some(n) = e.strip_prefix("f:") {
            s.push('.');
            s.push_str(n);
        } else if let Some(k) = e.strip_prefix("k:") {
            s.push('[');
            s.push_str(&k.replace("\":", "\"="));
            s.push(']');
        } else if let Some(v) = e.strip_prefix("v:") {
            s.push_str(&format!("[{v}]"));
        } else if let Some(i) = e.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// One `managedFields` entry, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// Field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// API version the manager used.
    pub api_version: String,
    /// When the entry last changed (RFC 3339).
    pub time: String,
    /// Subresource the entry belongs to (`status`), empty for the main resource.
    pub subresource: String,
    /// Owned fields.
    pub fields: FieldSet,
}

/// Parses `metadata.managedFields`.
pub fn parse_managed(obj: &Value) -> Vec<ManagedEntry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    Some(ManagedEntry {
                        manager: e.get("manager")?.as_str()?.to_string(),
                        operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                        api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                        time: e["time"].as_str().unwrap_or_default().to_string(),
                        subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
                        fields: from_fields_v1(&e["fieldsV1"]),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes entries back as `metadata.managedFields` (empty entries dropped).
pub fn write_managed(obj: &mut Value, entries: &[ManagedEntry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Value::Object(meta) = &mut obj["metadata"] {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// What a server-side apply request carries besides the applied configuration.
#[derive(Debug, Clone)]
pub struct ApplyRequest<'a> {
    /// `fieldManager` (required for apply).
    pub manager: &'a str,
    /// `force=true`: take conflicting fields instead of failing.
    pub force: bool,
    /// API version of the request.
    pub api_version: &'a str,
    /// Subresource targeted (`status` or empty).
    pub subresource: &'a str,
    /// Which part of the object this request may change.
    pub scope: Scope,
    /// Current time (RFC 3339), recorded in the entry.
    pub now: &'a str,
}

/// Server-side apply of `applied` onto `live` (an empty object for a create). Returns the
/// new object with updated `managedFields`, or a 409 listing every conflict.
pub fn apply(
    live: &Value,
    applied: &Value,
    lists: &dyn ListTypes,
    req: &ApplyRequest<'_>,
    resource: &str,
    name: &str,
) -> Result<Value, SimError> {
    let mut entries = parse_managed(live);
    let applied_set = field_set(applied, lists, req.scope);
    let is_self = |e: &ManagedEntry| {
        e.manager == req.manager && e.operation == "Apply" && e.subresource == req.subresource
    };

    // Conflicts: a field another manager owns whose value the applied config changes.
    let mut conflicts: Vec<(String, String, FieldPath)> = Vec::new();
    for e in entries.iter().filter(|e| !is_self(e)) {
        for p in applied_set.intersection(&e.fields) {
            let live_v = value_at(live, p);
            let applied_v = value_at(applied, p);
            let is_item = p
                .last()
                .is_some_and(|l| l.starts_with("k:") || l.starts_with("v:"));
            if !is_item && live_v.is_some() && live_v != applied_v {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !req.force {
            let n = conflicts.len();
            let causes: Vec<Cause> = conflicts
                .iter()
                .map(|(m, v, p)| {
                    Cause::new(
                        "FieldManagerConflict",
                        display_path(p),
                        format!("conflict with \"{m}\" using {v}"),
                    )
                })
                .collect();
            let detail = if n == 1 {
                let (m, v, p) = &conflicts[0];
                format!(
                    "Apply failed with 1 conflict: conflict with \"{m}\" using {v}: {}",
                    display_path(p)
                )
            } else {
                let lines: Vec<String> = conflicts
                    .iter()
                    .map(|(m, v, p)| {
                        format!("conflict with \"{m}\" using {v}: {}", display_path(p))
                    })
                    .collect();
                format!("Apply failed with {n} conflicts: {}", lines.join("\n"))
            };
            return Err(SimError::Conflict {
                resource: resource.to_string(),
                name: name.to_string(),
                message: detail,
                causes,
            });
        }
        // force: the applier takes the fields; the others lose them.
        for e in entries.iter_mut().filter(|e| !is_self(e)) {
            for (_, _, p) in &conflicts {
                e.fields.remove(p);
            }
        }
    }

    let mut out = live.clone();
    if !out.is_object() {
        out = json!({});
    }
    let mut scoped = applied.clone();
    if let Value::Object(m) = &mut scoped {
        match req.scope {
            Scope::NoStatus => {
                m.remove("status");
            }
            Scope::StatusOnly => {
                m.retain(|k, _| {
                    matches!(k.as_str(), "status" | "apiVersion" | "kind" | "metadata")
                });
            }
            Scope::Whole => {}
        }
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            meta.retain(|k, _| {
                !IGNORED_METADATA.contains(&k.as_str()) || k == "name" || k == "namespace"
            });
            meta.remove("managedFields");
        }
    }
    apply_merge(&mut out, &scoped, lists, &mut Vec::new());

    // Removal: fields this manager applied before, no longer applies, and nobody else owns.
    let previous: FieldSet = entries
        .iter()
        .find(|e| is_self(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut removed: Vec<&FieldPath> = previous
        .difference(&applied_set)
        .filter(|p| {
            !entries
                .iter()
                .any(|e| !is_self(e) && owns_path_or_child(&e.fields, p))
        })
        .filter(|p| !applied_set.iter().any(|a| a.starts_with(p)))
        .collect();
    // Deepest first, so removing an item does not shift paths of its children.
    removed.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in removed {
        remove_at(&mut out, p);
    }

    entries.retain(|e| !is_self(e));
    entries.push(ManagedEntry {
        manager: req.manager.to_string(),
        operation: "Apply".into(),
        api_version: req.api_version.to_string(),
        time: req.now.to_string(),
        subresource: req.subresource.to_string(),
        fields: applied_set,
    });
    write_managed(&mut out, &entries);
    Ok(out)
}

fn owns_path_or_child(set: &FieldSet, p: &FieldPath) -> bool {
    set.iter().any(|o| o.starts_with(p))
}

/// Ownership after a non-apply write (create, update, patch): the writer takes every
/// field whose value it changed or added; fields that disappeared leave every owner.
#[allow(clippy::too_many_arguments)]
pub fn track_update(
    old: &Value,
    new: &mut Value,
    lists: &dyn ListTypes,
    manager: &str,
    api_version: &str,
    subresource: &str,
    scope: Scope,
    now: &str,
) {
    let mut entries = parse_managed(old);
    let old_set = field_set(old, lists, scope);
    let new_set = field_set(new, lists, scope);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| !old_set.contains(*p) || value_at(old, p) != value_at(new, p))
        .cloned()
        .collect();
    let gone: FieldSet = old_set.difference(&new_set).cloned().collect();
    for e in entries.iter_mut() {
        for p in changed.iter().chain(gone.iter()) {
            e.fields.remove(p);
        }
    }
    if !changed.is_empty() {
        let pos = entries.iter().position(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource == subresource
        });
        match pos {
            Some(i) => {
                entries[i].fields.extend(changed);
                entries[i].time = now.to_string();
                entries[i].api_version = api_version.to_string();
            }
            None => entries.push(ManagedEntry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                subresource: subresource.to_string(),
                fields: changed,
            }),
        }
    }
    write_managed(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::BuiltinLists;

    fn req<'a>(manager: &'a str, force: bool) -> ApplyRequest<'a> {
        ApplyRequest {
            manager,
            force,
            api_version: "apps/v1",
            subresource: "",
            scope: Scope::NoStatus,
            now: "2026-01-01T00:00:00Z",
        }
    }

    fn sts(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "vault", "labels": {"a": "1"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "vault", "image": image}]}}}})
    }

    #[test]
    fn fields_v1_round_trips_and_marks_keyed_items() {
        let set = field_set(&sts(3, "x"), &BuiltinLists, Scope::NoStatus);
        let v = to_fields_v1(&set);
        assert_eq!(
            v["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"vault\"}"]["."],
            json!({})
        );
        assert_eq!(v["f:spec"]["f:replicas"], json!({}));
        assert!(
            v["f:metadata"].get("f:name").is_none(),
            "name is server-owned, never managed"
        );
        assert_eq!(from_fields_v1(&v), set);
    }

    #[test]
    fn apply_conflicts_with_another_managers_different_value_unless_forced() {
        // SSA docs, "Conflicts": a conflict is an apply that changes a field another
        // manager owns; force takes ownership.
        let first = apply(
            &json!({}),
            &sts(3, "a"),
            &BuiltinLists,
            &req("op", false),
            "statefulsets.apps",
            "vault",
        )
        .unwrap();
        let e = apply(
            &first,
            &sts(5, "a"),
            &BuiltinLists,
            &req("kubectl", false),
            "statefulsets.apps",
            "vault",
        )
        .unwrap_err();
        assert_eq!(e.code(), 409);
        assert_eq!(
            e.to_string(),
            "Apply failed with 1 conflict: conflict with \"op\" using apps/v1: .spec.replicas"
        );
        // Same value: shared ownership, no conflict.
        let shared = apply(
            &first,
            &sts(3, "a"),
            &BuiltinLists,
            &req("kubectl", false),
            "statefulsets.apps",
            "vault",
        )
        .unwrap();
        assert_eq!(parse_managed(&shared).len(), 2);
        let forced = apply(
            &first,
            &sts(5, "a"),
            &BuiltinLists,
            &req("kubectl", true),
            "statefulsets.apps",
            "vault",
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 5);
        let op = parse_managed(&forced)
            .into_iter()
            .find(|e| e.manager == "op")
            .unwrap();
        assert!(
            !op.fields
                .contains(&vec!["f:spec".to_string(), "f:replicas".to_string()])
        );
    }

    #[test]
    fn fields_a_manager_stops_applying_are_removed_unless_someone_else_owns_them() {
        // SSA docs, "Field management": removing a field from the applied config removes
        // it from the object when no other manager owns it.
        let first = apply(
            &json!({}),
            &sts(3, "a"),
            &BuiltinLists,
            &req("op", false),
            "statefulsets.apps",
            "vault",
        )
        .unwrap();
        let mut less = sts(3, "a");
        less["metadata"].as_object_mut().unwrap().remove("labels");
        let out = apply(
            &first,
            &less,
            &BuiltinLists,
            &req("op", false),
            "statefulsets.apps",
            "vault",
        )
        .unwrap();
        assert!(
            out["metadata"]
                .get("labels")
                .is_none_or(|l| l.get("a").is_none())
        );

        let shared = apply(
            &first,
            &sts(3, "a"),
            &BuiltinLists,
            &req("other", false),
            "statefulsets.apps",
            "vault",
        )
        .unwrap();
        let out = apply(
            &shared,
            &less,
            &BuiltinLists,
            &req("op", false),
            "statefulsets.apps",
            "vault",
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["labels"]["a"], "1",
            "still owned by 'other'"
        );
    }

    #[test]
    fn update_takes_ownership_of_changed_fields() {
        let first = apply(
            &json!({}),
            &sts(3, "a"),
            &BuiltinLists,
            &req("op", false),
            "statefulsets.apps",
            "vault",
        )
        .unwrap();
        let mut new = first.clone();
        new["spec"]["replicas"] = json!(4);
        track_update(
            &first,
            &mut new,
            &BuiltinLists,
            "kubectl-edit",
            "apps/v1",
            "",
            Scope::NoStatus,
            "t",
        );
        let entries = parse_managed(&new);
        let edit = entries
            .iter()
            .find(|e| e.manager == "kubectl-edit")
            .unwrap();
        assert_eq!(edit.operation, "Update");
        assert!(
            edit.fields
                .contains(&vec!["f:spec".to_string(), "f:replicas".to_string()])
        );
        // Now the operator re-applying 3 conflicts with kubectl-edit.
        let e = apply(
            &new,
            &sts(3, "a"),
            &BuiltinLists,
            &req("op", false),
            "statefulsets.apps",
            "vault",
        )
        .unwrap_err();
        assert!(e.to_string().contains("kubectl-edit"));
    }

    #[test]
    fn keyed_items_merge_instead_of_replacing() {
        let first = apply(
            &json!({}),
            &sts(3, "a"),
            &BuiltinLists,
            &req("op", false),
            "statefulsets.apps",
            "vault",
        )
        .unwrap();
        let side = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "vault"},
            "spec": {"template": {"spec": {"containers": [{"name": "side", "image": "s"}]}}}});
        let out = apply(
            &first,
            &side,
            &BuiltinLists,
            &req("other", false),
            "statefulsets.apps",
            "vault",
        )
        .unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
