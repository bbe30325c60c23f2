//! The Deployment and ReplicaSet controllers
//! (<https://kubernetes.io/docs/concepts/workloads/controllers/deployment/>), enough for
//! clients that wait on a Deployment (`helm --wait`, `kubectl rollout status`): each
//! Deployment owns one ReplicaSet per pod template, named `<deployment>-<hash>` and labelled
//! `pod-template-hash`, with the `deployment.kubernetes.io/revision` annotation; the current
//! one is scaled to `spec.replicas` and older ones to zero; each ReplicaSet keeps that many
//! pods. Statuses carry the counts and the `Available`/`Progressing` conditions.
//!
//! Not simulated: the pacing of a rolling update (`maxSurge`/`maxUnavailable`: the new
//! ReplicaSet is scaled up and the old ones down at once), `minReadySeconds` (a ready pod is
//! available), `progressDeadlineSeconds`, pausing and `revisionHistoryLimit`.

use super::{controlled_by, controller_ref, manager, name_of, pod_ready, terminating};
use crate::core::{Core, DeleteOptions, PatchType};
use crate::kinds::ResourceType;
use crate::selectors::LabelSelector;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The label that ties a ReplicaSet and its pods to one pod template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// The `pod-template-hash` of a template: stable for equal templates.
pub fn template_hash(template: &Value) -> String {
    let digest = Sha256::digest(template.to_string().as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

/// One pass over every Deployment, then every ReplicaSet.
pub fn pass(core: &Core) {
    let (Ok(deploy_t), Ok(rs_t)) = (
        core.type_of("apps", "v1", "deployments"),
        core.type_of("apps", "v1", "replicasets"),
    ) else {
        return;
    };
    for deployment in core.list_raw(&deploy_t, None) {
        if !terminating(&deployment) {
            reconcile_deployment(core, &deploy_t, &rs_t, &deployment);
        }
    }
    for rs in core.list_raw(&rs_t, None) {
        if !terminating(&rs) {
            reconcile_replica_set(core, &rs_t, &rs);
        }
    }
}

fn replicas(spec: &Value) -> i64 {
    spec["replicas"].as_i64().unwrap_or(1)
}

fn revision(rs: &Value) -> i64 {
    rs["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn reconcile_deployment(
    core: &Core,
    deploy_t: &Arc<ResourceType>,
    rs_t: &Arc<ResourceType>,
    deployment: &Value,
) {
    let opts = manager("deployment-controller");
    let ns = deployment["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let name = name_of(deployment);
    let uid = deployment["metadata"]["uid"].as_str().unwrap_or_default();
    let desired = replicas(&deployment["spec"]);
    let template = &deployment["spec"]["template"];
    let hash = template_hash(template);
    let new_name = format!("{name}-{hash}");
    let owned: Vec<_> = core
        .list_raw(rs_t, Some(ns))
        .into_iter()
        .filter(|rs| controlled_by(rs, uid))
        .collect();
    let newest_revision = owned.iter().map(|rs| revision(rs)).max().unwrap_or(0);

    // The current template's ReplicaSet: created on first sight, scaled to the desired count.
    match owned.iter().find(|rs| name_of(rs) == new_name) {
        None => {
            let _ = core.create(
                rs_t,
                ns,
                new_replica_set(deployment, &new_name, &hash, newest_revision + 1),
                &opts,
            );
        }
        Some(rs) if replicas(&rs["spec"]) != desired => {
            scale(core, rs_t, ns, name_of(rs), desired);
        }
        Some(_) => {}
    }
    // Older templates' ReplicaSets go to zero.
    for rs in owned.iter().filter(|rs| name_of(rs) != new_name) {
        if replicas(&rs["spec"]) != 0 {
            scale(core, rs_t, ns, name_of(rs), 0);
        }
    }

    let count = |rs: &Value, field: &str| rs["status"][field].as_i64().unwrap_or(0);
    let total = |field: &str| owned.iter().map(|rs| count(rs, field)).sum::<i64>();
    let current = owned.iter().find(|rs| name_of(rs) == new_name);
    let updated = current.map(|rs| count(rs, "replicas")).unwrap_or(0);
    let available = total("availableReplicas");
    let now = core.clock.now_rfc3339();
    let condition = |kind: &str, ok: bool, reason: &str, message: String| {
        // A condition keeps its transition time while its status does not change.
        let previous = deployment["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
        let status = if ok { "True" } else { "False" };
        let since = previous
            .filter(|c| c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(&now)
            .to_string();
        json!({"type": kind, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": since, "lastTransitionTime": since})
    };
    let rolled_out = updated == desired
        && current.is_some_and(|rs| count(rs, "availableReplicas") >= desired)
        && total("replicas") == desired;
    let status = json!({
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": total("replicas"),
        "updatedReplicas": updated,
        "readyReplicas": total("readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": (desired - available).max(0),
        "conditions": [
            condition(
                "Available",
                available >= desired,
                if available >= desired { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                if available >= desired {
                    "Deployment has minimum availability.".to_string()
                } else {
                    "Deployment does not have minimum availability.".to_string()
                },
            ),
            condition(
                "Progressing",
                true,
                if rolled_out { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                if rolled_out {
                    format!("ReplicaSet \"{new_name}\" has successfully progressed.")
                } else {
                    format!("ReplicaSet \"{new_name}\" is progressing.")
                },
            ),
        ],
    });
    write_status(core, deploy_t, ns, name, deployment, status, &opts);
}

fn new_replica_set(deployment: &Value, name: &str, hash: &str, revision: i64) -> Value {
    let mut template = deployment["spec"]["template"].clone();
    template["metadata"]["labels"][POD_TEMPLATE_HASH] = json!(hash);
    let mut selector = deployment["spec"]["selector"].clone();
    selector["matchLabels"][POD_TEMPLATE_HASH] = json!(hash);
    let labels = template["metadata"]["labels"].clone();
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": replicas(&deployment["spec"]).to_string(),
            },
            "ownerReferences": [controller_ref(deployment)],
        },
        "spec": {
            "replicas": replicas(&deployment["spec"]),
            "minReadySeconds": deployment["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
            "selector": selector,
            "template": template,
        },
    })
}

fn scale(core: &Core, rs_t: &Arc<ResourceType>, ns: &str, name: &str, to: i64) {
    let body = json!({"spec": {"replicas": to}});
    let _ = core.patch(
        rs_t,
        ns,
        name,
        PatchType::Merge,
        body.to_string().as_bytes(),
        None,
        &manager("deployment-controller"),
    );
}

fn reconcile_replica_set(core: &Core, rs_t: &Arc<ResourceType>, rs: &Value) {
    let Ok(pod_t) = core.core_type("pods") else {
        return;
    };
    let opts = manager("replicaset-controller");
    let ns = rs["metadata"]["namespace"].as_str().unwrap_or_default();
    let uid = rs["metadata"]["uid"].as_str().unwrap_or_default();
    let desired = replicas(&rs["spec"]);
    let mut alive: Vec<_> = core
        .list_raw(&pod_t, Some(ns))
        .into_iter()
        .filter(|p| controlled_by(p, uid) && !terminating(p))
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .collect();
    let count = alive.len() as i64;
    if count < desired {
        for _ in count..desired {
            let _ = core.create(&pod_t, ns, new_pod(rs), &opts);
        }
    } else if count > desired {
        // Not-ready pods go first, then the newest, as the real controller ranks them.
        alive.sort_by_key(|p| {
            (
                pod_ready(p),
                std::cmp::Reverse(
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
            )
        });
        for p in alive.iter().take((count - desired) as usize) {
            let _ = core.delete(&pod_t, ns, name_of(p), &DeleteOptions::default());
        }
    }
    let alive: Vec<_> = core
        .list_raw(&pod_t, Some(ns))
        .into_iter()
        .filter(|p| controlled_by(p, uid) && !terminating(p))
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .collect();
    let selector = LabelSelector::from_label_selector(&rs["spec"]["selector"]);
    let labelled = alive
        .iter()
        .filter(|p| selector.as_ref().is_ok_and(|s| s.matches_object(p)))
        .count();
    let ready = alive.iter().filter(|p| pod_ready(p)).count();
    let status = json!({
        "observedGeneration": rs["metadata"]["generation"],
        "replicas": alive.len(),
        "fullyLabeledReplicas": labelled,
        "readyReplicas": ready,
        "availableReplicas": ready,
    });
    write_status(core, rs_t, ns, name_of(rs), rs, status, &opts);
}

fn new_pod(rs: &Value) -> Value {
    let template = &rs["spec"]["template"];
    let labels: Map<String, Value> = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut meta = json!({"generateName": format!("{}-", name_of(rs)), "labels": labels,
        "ownerReferences": [controller_ref(rs)]});
    if let Some(a) = template["metadata"].get("annotations") {
        meta["annotations"] = a.clone();
    }
    json!({"metadata": meta, "spec": template["spec"]})
}

/// Writes `status` through the status subresource when any of its fields changed.
fn write_status(
    core: &Core,
    rt: &Arc<ResourceType>,
    ns: &str,
    name: &str,
    object: &Value,
    status: Value,
    opts: &crate::core::WriteOptions,
) {
    let changed = status
        .as_object()
        .into_iter()
        .flatten()
        .any(|(k, v)| object["status"][k] != *v);
    if changed {
        let body = json!({"status": status});
        let _ = core.patch(
            rt,
            ns,
            name,
            PatchType::Merge,
            body.to_string().as_bytes(),
            Some("status"),
            opts,
        );
    }
}
