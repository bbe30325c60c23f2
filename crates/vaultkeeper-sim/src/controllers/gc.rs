//! The garbage collector (<https://kubernetes.io/docs/concepts/architecture/garbage-collection/>):
//! dependents whose owners are gone are deleted (background cascading); an owner being
//! deleted in the foreground keeps its `foregroundDeletion` finalizer until its blocking
//! dependents are gone; an owner deleted with `orphan` has its dependents' owner
//! references removed before the finalizer goes.

use super::manager;
use crate::core::{Core, DeleteOptions, PatchType};
use crate::kinds::{ResourceType, View};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

struct Obj {
    rt: Arc<ResourceType>,
    obj: Arc<Value>,
}

fn name(o: &Value) -> (&str, &str) {
    (
        o["metadata"]["namespace"].as_str().unwrap_or_default(),
        o["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

/// One pass over every object.
pub fn pass(core: &Core) {
    let types: Vec<Arc<ResourceType>> = core
        .types()
        .into_iter()
        .filter(|t| t.view == View::Native && !t.create_only())
        .fold(Vec::new(), |mut acc, t| {
            if !acc
                .iter()
                .any(|a: &Arc<ResourceType>| a.storage == t.storage)
            {
                acc.push(t);
            }
            acc
        });
    let mut all = Vec::new();
    for t in &types {
        for o in core.list_raw(t, None) {
            all.push(Obj {
                rt: t.clone(),
                obj: o,
            });
        }
    }
    let by_uid: HashMap<&str, &Obj> = all
        .iter()
        .filter_map(|o| o.obj["metadata"]["uid"].as_str().map(|u| (u, o)))
        .collect();
    let opts = manager("generic-garbage-collector");
    // Dependents of owners that are gone, or being deleted in the foreground.
    for dep in &all {
        let refs = dep.obj["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if refs.is_empty() || !dep.obj["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let mut any_alive = false;
        let mut foreground = false;
        for r in &refs {
            if let Some(owner) = r["uid"].as_str().and_then(|u| by_uid.get(u)) {
                let deleting = !owner.obj["metadata"]["deletionTimestamp"].is_null();
                let fins = owner.obj["metadata"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if deleting && fins.iter().any(|f| f == "foregroundDeletion") {
                    foreground = true;
                } else {
                    if deleting {
                        fins.iter().any(|f| f == "orphan");
                    }
                    any_alive = true;
                }
            }
        }
        let (ns, n) = name(&dep.obj);
        if foreground && !any_alive {
            let _ = core.delete(
                &dep.rt,
                ns,
                n,
                &DeleteOptions {
                    propagation: Some("Foreground".into()),
                    ..Default::default()
                },
            );
        } else if !any_alive && !foreground {
            let _ = core.delete(
                &dep.rt,
                ns,
                n,
                &DeleteOptions {
                    propagation: Some("Background".into()),
                    ..Default::default()
                },
            );
        }
    }
    // Owners waiting on finalizers the collector owns.
    for owner in &all {
        if owner.obj["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let fins: Vec<String> = owner.obj["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        let uid = owner.obj["metadata"]["uid"].as_str().unwrap_or_default();
        let dependents: Vec<&Obj> = all
            .iter()
            .filter(|d| {
                d.obj["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|r| r["uid"] == uid))
            })
            .collect();
        let (ns, n) = name(&owner.obj);
        if fins.iter().any(|f| f == "orphan") {
            for d in &dependents {
                let (dns, dn) = name(&d.obj);
                let kept: Vec<Value> = d.obj["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["uid"] != uid)
                    .cloned()
                    .collect();
                let patch = json!({"metadata": {"ownerReferences": if kept.is_empty() { Value::Null } else { json!(kept) }, "resourceVersion": d.obj["metadata"]["resourceVersion"]}});
                let _ = core.patch(
                    &d.rt,
                    dns,
                    dn,
                    PatchType::Merge,
                    patch.to_string().as_bytes(),
                    None,
                    &opts,
                );
            }
            remove_finalizer(core, owner, "orphan");
        } else if fins.iter().any(|f| f == "foregroundDeletion") {
            let blocking = dependents.iter().any(|d| {
                d.obj["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|rs| {
                        rs.iter()
                            .any(|r| r["uid"] == uid && r["blockOwnerDeletion"] == json!(true))
                    })
            });
            if !blocking {
                remove_finalizer(core, owner, "foregroundDeletion");
            }
        }
        let _ = (ns, n);
    }
}

fn remove_finalizer(core: &Core, o: &Obj, fin: &str) {
    let (ns, n) = name(&o.obj);
    let kept: Vec<Value> = o.obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| *f != fin)
        .cloned()
        .collect();
    let patch = json!({"metadata": {"finalizers": kept, "resourceVersion": o.obj["metadata"]["resourceVersion"]}});
    let _ = core.patch(
        &o.rt,
        ns,
        n,
        PatchType::Merge,
        patch.to_string().as_bytes(),
        None,
        &manager("generic-garbage-collector"),
    );
}
