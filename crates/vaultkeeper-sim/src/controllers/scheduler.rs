//! A one-node scheduler: every pod without a node is bound to the simulated node
//! through the same `pods/binding` semantics the real scheduler uses.

use super::manager;
use crate::core::{Core, PatchType};
use serde_json::json;

/// Binds every unscheduled, not-deleted pod to `node`.
pub fn pass(core: &Core, node: &str) {
    let Ok(pod_t) = core.core_type("pods") else {
        return;
    };
    for pod in core.list_raw(&pod_t, None) {
        if pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
            || !pod["metadata"]["deletionTimestamp"].is_null()
        {
            continue;
        }
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let opts = manager("kube-scheduler");
        let patch = json!({"spec": {"nodeName": node}});
        if core
            .patch(
                &pod_t,
                ns,
                name,
                PatchType::Merge,
                patch.to_string().as_bytes(),
                None,
                &opts,
            )
            .is_ok()
        {
            let now = core.clock.now_rfc3339();
            let status = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}]}});
            let _ = core.patch(
                &pod_t,
                ns,
                name,
                PatchType::Strategic,
                status.to_string().as_bytes(),
                Some("status"),
                &opts,
            );
        }
    }
}
