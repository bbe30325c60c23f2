//! The StatefulSet controller (<https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/>):
//! ordinal pods `<name>-<i>` with stable hostnames under the governing Service, one PVC
//! per claim template and ordinal (`<template>-<name>-<i>`) that survives pod deletion,
//! `OrderedReady` (one at a time, in order, waiting for Ready) or `Parallel` pod
//! management, `RollingUpdate` (highest ordinal first, honouring `partition`) or
//! `OnDelete` updates, revisions recorded as ControllerRevisions, and status.
//! Claims are bound at once by a simulated provisioner (status `Bound`, capacity as
//! requested); the kubelet maps each claim to a directory that outlives its pods.
//! `persistentVolumeClaimRetentionPolicy` is honoured as Kubernetes does it: with
//! `whenDeleted: Delete` the claims are owned by the StatefulSet; with `whenScaled:
//! Delete` a pod removed by a scale-down first becomes the owner of its claims, so the
//! garbage collector deletes them once the pod is gone, and a scale-up that brings the
//! ordinal back before that takes the ownership away again (the claim, and its data,
//! then stay).

use super::{controlled_by, controller_ref, manager, name_of, pod_ready, terminating};
use crate::core::{Core, DeleteOptions, PatchType};
use crate::selectors::LabelSelector;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The revision name of a pod template: `<sts>-<hash>`, stable for equal templates.
pub fn revision_name(sts_name: &str, template: &Value) -> String {
    let digest = Sha256::digest(template.to_string().as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{sts_name}-{hex}")
}

/// One pass over every StatefulSet.
pub fn pass(core: &Core) {
    let Ok(sts_t) = core.type_of("apps", "v1", "statefulsets") else {
        return;
    };
    for sts in core.list_raw(&sts_t, None) {
        if !terminating(&sts) {
            reconcile(core, &sts);
        }
    }
    bind_claims(core);
}

/// The decisions for one StatefulSet given its pods: which ordinals to create and which
/// pods to delete this pass (pure).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ordinals whose pod must be created.
    pub create: Vec<i64>,
    /// Pods to delete (scale-down, failed pods, rolling update).
    pub delete: Vec<String>,
}

/// What the controller knows about one existing pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Ordinal.
    pub ordinal: i64,
    /// Name.
    pub name: String,
    /// Ready condition true.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    /// Phase Failed or Succeeded.
    pub finished: bool,
    /// Its `controller-revision-hash` label.
    pub revision: String,
}

/// Inputs of a plan.
#[derive(Debug, Clone)]
pub struct Spec {
    /// First ordinal (`spec.ordinals.start`).
    pub start: i64,
    /// Replicas.
    pub replicas: i64,
    /// `Parallel` pod management.
    pub parallel: bool,
    /// `RollingUpdate` (else `OnDelete`).
    pub rolling: bool,
    /// Rolling-update partition.
    pub partition: i64,
    /// Revision new pods get.
    pub update_revision: String,
}

/// Plans one pass: StatefulSet semantics as a pure function.
pub fn plan(spec: &Spec, pods: &[PodView]) -> Plan {
    let mut p = Plan::default();
    let wanted = spec.start..spec.start + spec.replicas;
    // Failed pods are deleted and recreated.
    for pod in pods.iter().filter(|x| x.finished && !x.terminating) {
        p.delete.push(pod.name.clone());
    }
    let healthy = |o: i64| {
        pods.iter()
            .any(|x| x.ordinal == o && x.ready && !x.terminating && !x.finished)
    };
    let exists = |o: i64| pods.iter().any(|x| x.ordinal == o);
    // Creation.
    for o in wanted.clone() {
        if exists(o) {
            continue;
        }
        if spec.parallel {
            p.create.push(o);
        } else {
            // OrderedReady: every lower ordinal must be Running and Ready first.
            if (spec.start..o).all(healthy) {
                p.create.push(o);
            }
            break;
        }
    }
    // Scale down: ordinals beyond the range, highest first (one at a time when ordered).
    let mut extra: Vec<&PodView> = pods
        .iter()
        .filter(|x| !wanted.contains(&x.ordinal))
        .collect();
    extra.sort_by_key(|x| std::cmp::Reverse(x.ordinal));
    if spec.parallel {
        p.delete.extend(
            extra
                .iter()
                .filter(|x| !x.terminating)
                .map(|x| x.name.clone()),
        );
    } else if let Some(first) = extra.first()
        && !first.terminating
        && !p.create.iter().any(|_| true)
        && extra.iter().all(|x| !x.terminating)
    {
        p.delete.push(first.name.clone());
    }
    // Rolling update: the highest ordinal at or above the partition that is not yet at
    // the update revision, only when every pod is present, healthy and none is going.
    if spec.rolling
        && p.create.is_empty()
        && extra.is_empty()
        && pods.iter().all(|x| !x.terminating)
    {
        let all_healthy = wanted.clone().all(healthy);
        let mut stale: Vec<&PodView> = pods
            .iter()
            .filter(|x| {
                wanted.contains(&x.ordinal)
                    && x.ordinal >= spec.partition
                    && x.revision != spec.update_revision
            })
            .collect();
        stale.sort_by_key(|x| std::cmp::Reverse(x.ordinal));
        if let Some(s) = stale.first()
            && (all_healthy || spec.parallel)
            && !p.delete.contains(&s.name)
        {
            p.delete.push(s.name.clone());
        }
    }
    p
}

fn ordinal_of(sts_name: &str, pod_name: &str) -> Option<i64> {
    pod_name
        .strip_prefix(sts_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

fn reconcile(core: &Core, sts: &Arc<Value>) {
    let (Ok(pod_t), Ok(pvc_t), Ok(sts_t), Ok(rev_t)) = (
        core.core_type("pods"),
        core.core_type("persistentvolumeclaims"),
        core.type_of("apps", "v1", "statefulsets"),
        core.type_of("apps", "v1", "controllerrevisions"),
    ) else {
        return;
    };
    let ns = sts["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = name_of(sts);
    let uid = sts["metadata"]["uid"].as_str().unwrap_or_default();
    let spec = &sts["spec"];
    let Ok(selector) = LabelSelector::from_label_selector(&spec["selector"]) else {
        return;
    };
    let template = &spec["template"];
    let update_revision = revision_name(name, template);
    ensure_revision(core, &rev_t, sts, &update_revision);
    adopt_orphans(core, &pod_t, sts, &selector);
    let pods: Vec<Arc<Value>> = core
        .list_raw(&pod_t, Some(ns))
        .into_iter()
        .filter(|p| controlled_by(p, uid) && selector.matches_object(p))
        .collect();
    let views: Vec<PodView> = pods
        .iter()
        .filter_map(|p| {
            Some(PodView {
                ordinal: ordinal_of(name, name_of(p))?,
                name: name_of(p).to_string(),
                ready: pod_ready(p),
                terminating: terminating(p),
                finished: matches!(p["status"]["phase"].as_str(), Some("Failed" | "Succeeded")),
                revision: p["metadata"]["labels"]["controller-revision-hash"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect();
    let s = Spec {
        start: spec["ordinals"]["start"].as_i64().unwrap_or(0),
        replicas: spec["replicas"].as_i64().unwrap_or(1),
        parallel: spec["podManagementPolicy"] == "Parallel",
        rolling: spec["updateStrategy"]["type"] != "OnDelete",
        partition: spec["updateStrategy"]["rollingUpdate"]["partition"]
            .as_i64()
            .unwrap_or(0),
        update_revision: update_revision.clone(),
    };
    let p = plan(&s, &views);
    let opts = manager("kube-controller-manager");
    for o in &p.create {
        for claim in spec["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let claim_name = format!("{}-{name}-{o}", name_of(claim));
            if core.get_raw(&pvc_t, ns, &claim_name).is_none() {
                let mut labels: Map<String, Value> = claim["metadata"]["labels"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                if let Some(m) = spec["selector"]["matchLabels"].as_object() {
                    labels.extend(m.clone());
                }
                let mut pvc = json!({
                    "metadata": {"name": claim_name, "labels": labels},
                    "spec": claim["spec"],
                });
                if let Some(a) = claim["metadata"].get("annotations") {
                    pvc["metadata"]["annotations"] = a.clone();
                }
                if spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete" {
                    pvc["metadata"]["ownerReferences"] = json!([controller_ref(sts)]);
                }
                let _ = core.create(&pvc_t, ns, pvc, &opts);
            }
        }
        let pod = new_pod(sts, *o, &update_revision);
        let _ = core.create(&pod_t, ns, pod, &opts);
    }
    let when_scaled_delete = spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete";
    let claim_templates: Vec<&str> = spec["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(name_of)
        .collect();
    let claim_names = |ordinal: i64| -> Vec<String> {
        claim_templates
            .iter()
            .map(|t| format!("{t}-{name}-{ordinal}"))
            .collect()
    };
    let condemned = |ordinal: i64| ordinal >= s.start + s.replicas || ordinal < s.start;
    let when_deleted_delete =
        spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete";
    let set_owner: Vec<Value> = match when_deleted_delete {
        true => vec![controller_ref(sts)],
        false => Vec::new(),
    };
    for d in &p.delete {
        let ordinal = ordinal_of(name, d);
        if let (true, Some(ordinal)) = (when_scaled_delete, ordinal)
            && condemned(ordinal)
            && let Some(pod) = pods.iter().find(|p| name_of(p) == d.as_str())
        {
            for claim in claim_names(ordinal) {
                set_claim_owners(core, &pvc_t, ns, &claim, &[pod_owner(pod)]);
            }
        }
        let _ = core.delete(&pod_t, ns, d, &DeleteOptions::default());
    }
    // A claim a scale-down handed to its pod, whose ordinal is wanted again before the
    // garbage collector got to it: it stays, owned as the other claims are.
    if when_scaled_delete {
        for ordinal in s.start..s.start + s.replicas {
            for claim in claim_names(ordinal) {
                set_claim_owners(core, &pvc_t, ns, &claim, &set_owner);
            }
        }
    }
    // Status.
    let current = core
        .list_raw(&pod_t, Some(ns))
        .into_iter()
        .filter(|p| controlled_by(p, uid))
        .collect::<Vec<_>>();
    let replicas = current.iter().filter(|p| !terminating(p)).count();
    let ready = current
        .iter()
        .filter(|p| !terminating(p) && pod_ready(p))
        .count();
    let updated = current
        .iter()
        .filter(|p| {
            !terminating(p)
                && p["metadata"]["labels"]["controller-revision-hash"] == update_revision.as_str()
        })
        .count();
    let current_revision = if updated == replicas && replicas as i64 == s.replicas {
        update_revision.clone()
    } else {
        sts["status"]["currentRevision"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| update_revision.clone())
    };
    let current_replicas = current
        .iter()
        .filter(|p| {
            !terminating(p)
                && p["metadata"]["labels"]["controller-revision-hash"] == current_revision.as_str()
        })
        .count();
    let status = json!({
        "observedGeneration": sts["metadata"]["generation"],
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": current_replicas,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update_revision,
        "collisionCount": 0,
    });
    if sts["status"] != status {
        let body = json!({"status": status});
        let _ = core.patch(
            &sts_t,
            ns,
            name,
            PatchType::Merge,
            body.to_string().as_bytes(),
            Some("status"),
            &opts,
        );
    }
}

/// Sets who owns a claim, as Kubernetes does for the retention policy: the owner
/// references to StatefulSets and Pods become `owners`; any other owner is left alone.
fn set_claim_owners(
    core: &Core,
    pvc_t: &Arc<crate::kinds::ResourceType>,
    ns: &str,
    claim: &str,
    owners: &[Value],
) {
    let Some(pvc) = core.get_raw(pvc_t, ns, claim) else {
        return;
    };
    let current = pvc["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut wanted: Vec<Value> = current
        .iter()
        .filter(|r| r["kind"] != "Pod" && r["kind"] != "StatefulSet")
        .cloned()
        .collect();
    wanted.extend(owners.iter().cloned());
    let same = |a: &[Value], b: &[Value]| {
        a.len() == b.len() && a.iter().all(|r| b.iter().any(|o| o["uid"] == r["uid"]))
    };
    if same(&current, &wanted) {
        return;
    }
    let body = json!({"metadata": {"ownerReferences": wanted}});
    let _ = core.patch(
        pvc_t,
        ns,
        claim,
        PatchType::Merge,
        body.to_string().as_bytes(),
        None,
        &manager("kube-controller-manager"),
    );
}

/// Gives `sts` the controller reference of every orphan pod it would have created: no
/// controller, not being deleted, matching the selector and named `<sts>-<ordinal>`.
fn adopt_orphans(
    core: &Core,
    pod_t: &Arc<crate::kinds::ResourceType>,
    sts: &Value,
    selector: &LabelSelector,
) {
    let ns = sts["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = name_of(sts);
    for pod in core.list_raw(pod_t, Some(ns)) {
        let has_controller = pod["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| r["controller"] == json!(true)));
        if has_controller
            || terminating(&pod)
            || !selector.matches_object(&pod)
            || ordinal_of(name, name_of(&pod)).is_none()
        {
            continue;
        }
        let mut owners = pod["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        owners.push(controller_ref(sts));
        // The resourceVersion makes this a compare-and-swap, as the real adoption is: a
        // pod changed in between is looked at again on the next pass.
        let body = json!({"metadata": {"ownerReferences": owners,
            "resourceVersion": pod["metadata"]["resourceVersion"]}});
        let _ = core.patch(
            pod_t,
            ns,
            name_of(&pod),
            PatchType::Merge,
            body.to_string().as_bytes(),
            None,
            &manager("kube-controller-manager"),
        );
    }
}

/// The owner reference Kubernetes puts on the claims of a pod a scale-down removes.
fn pod_owner(pod: &Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"],
        "blockOwnerDeletion": true,
    })
}

fn ensure_revision(core: &Core, rev_t: &crate::kinds::ResourceType, sts: &Value, rev_name: &str) {
    let ns = sts["metadata"]["namespace"].as_str().unwrap_or_default();
    if core.get_raw(rev_t, ns, rev_name).is_some() {
        return;
    }
    let uid = sts["metadata"]["uid"].as_str().unwrap_or_default();
    let revision = core
        .list_raw(rev_t, Some(ns))
        .iter()
        .filter(|r| controlled_by(r, uid))
        .filter_map(|r| r["revision"].as_i64())
        .max()
        .unwrap_or(0)
        + 1;
    let rt = Arc::new(rev_t.clone());
    let _ = core.create(
        &rt,
        ns,
        json!({"metadata": {"name": rev_name, "labels": sts["spec"]["selector"]["matchLabels"], "ownerReferences": [controller_ref(sts)]},
               "data": {"spec": {"template": sts["spec"]["template"]}}, "revision": revision}),
        &manager("kube-controller-manager"),
    );
}

fn new_pod(sts: &Value, ordinal: i64, revision: &str) -> Value {
    let name = name_of(sts);
    let pod_name = format!("{name}-{ordinal}");
    let template = &sts["spec"]["template"];
    let mut labels: Map<String, Value> = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert("controller-revision-hash".into(), json!(revision));
    labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
    labels.insert(
        "apps.kubernetes.io/pod-index".into(),
        json!(ordinal.to_string()),
    );
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(pod_name);
    if let Some(svc) = sts["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        spec["subdomain"] = json!(svc);
    }
    let claims: Vec<Value> = sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!({"name": name_of(c), "persistentVolumeClaim": {"claimName": format!("{}-{name}-{ordinal}", name_of(c))}}))
        .collect();
    if !claims.is_empty() {
        let mut vols: Vec<Value> = spec["volumes"].as_array().cloned().unwrap_or_default();
        vols.retain(|v| !claims.iter().any(|c| c["name"] == v["name"]));
        vols.extend(claims);
        spec["volumes"] = json!(vols);
    }
    let mut meta =
        json!({"name": pod_name, "labels": labels, "ownerReferences": [controller_ref(sts)]});
    if let Some(a) = template["metadata"].get("annotations") {
        meta["annotations"] = a.clone();
    }
    json!({"metadata": meta, "spec": spec})
}

/// The simulated provisioner: every pending claim is bound at once.
fn bind_claims(core: &Core) {
    let Ok(pvc_t) = core.core_type("persistentvolumeclaims") else {
        return;
    };
    for pvc in core.list_raw(&pvc_t, None) {
        if pvc["status"]["phase"] == "Bound" || terminating(&pvc) {
            continue;
        }
        let ns = pvc["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = name_of(&pvc);
        let uid = pvc["metadata"]["uid"].as_str().unwrap_or_default();
        let opts = manager("persistentvolume-binder");
        if pvc["spec"]["volumeName"].as_str().is_none_or(str::is_empty) {
            let spec = json!({"spec": {"volumeName": format!("pvc-{uid}")}});
            let _ = core.patch(
                &pvc_t,
                ns,
                name,
                PatchType::Merge,
                spec.to_string().as_bytes(),
                None,
                &opts,
            );
        }
        let status = json!({"status": {"phase": "Bound", "accessModes": pvc["spec"]["accessModes"], "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]}}});
        let _ = core.patch(
            &pvc_t,
            ns,
            name,
            PatchType::Merge,
            status.to_string().as_bytes(),
            Some("status"),
            &opts,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(o: i64, ready: bool, rev: &str) -> PodView {
        PodView {
            ordinal: o,
            name: format!("v-{o}"),
            ready,
            terminating: false,
            finished: false,
            revision: rev.into(),
        }
    }

    fn spec(replicas: i64, parallel: bool, rolling: bool) -> Spec {
        Spec {
            start: 0,
            replicas,
            parallel,
            rolling,
            partition: 0,
            update_revision: "r2".into(),
        }
    }

    #[test]
    fn ordered_ready_creates_one_pod_at_a_time_after_the_previous_is_ready() {
        // StatefulSet docs, "Deployment and Scaling Guarantees".
        assert_eq!(plan(&spec(3, false, true), &[]).create, [0]);
        assert_eq!(
            plan(&spec(3, false, true), &[view(0, false, "r2")]).create,
            Vec::<i64>::new()
        );
        assert_eq!(
            plan(&spec(3, false, true), &[view(0, true, "r2")]).create,
            [1]
        );
    }

    #[test]
    fn parallel_creates_all_missing_pods_at_once() {
        assert_eq!(
            plan(&spec(3, true, false), &[view(1, false, "r2")]).create,
            [0, 2]
        );
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first() {
        let pods = [
            view(0, true, "r2"),
            view(1, true, "r2"),
            view(2, true, "r2"),
        ];
        assert_eq!(plan(&spec(1, false, true), &pods).delete, ["v-2"]);
        let mut par = plan(&spec(1, true, true), &pods).delete;
        par.sort();
        assert_eq!(par, ["v-1", "v-2"]);
    }

    #[test]
    fn rolling_update_replaces_the_highest_stale_ordinal_and_on_delete_never_does() {
        let pods = [
            view(0, true, "r1"),
            view(1, true, "r1"),
            view(2, true, "r2"),
        ];
        assert_eq!(plan(&spec(3, false, true), &pods).delete, ["v-1"]);
        assert!(
            plan(&spec(3, false, false), &pods).delete.is_empty(),
            "OnDelete waits for a human (or the operator)"
        );
        let mut partitioned = spec(3, false, true);
        partitioned.partition = 2;
        assert!(
            plan(&partitioned, &pods).delete.is_empty(),
            "ordinals below the partition keep their revision"
        );
    }

    #[test]
    fn failed_pods_are_replaced() {
        let mut p = view(0, false, "r2");
        p.finished = true;
        assert_eq!(plan(&spec(1, true, false), &[p]).delete, ["v-0"]);
    }
}
