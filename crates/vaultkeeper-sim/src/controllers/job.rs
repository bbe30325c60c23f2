//! The Job controller (<https://kubernetes.io/docs/concepts/workloads/controllers/job/>):
//! runs pods until `completions` succeed (at most `parallelism` at a time), fails the Job
//! after `backoffLimit` failed pods, and records `startTime`, counts, `completionTime`
//! and the `Complete`/`SuccessCriteriaMet` or `Failed`/`FailureTarget` conditions.
//! Pods are counted from their phase; the `batch.kubernetes.io/job-tracking` finalizer is
//! not simulated.

use super::{controlled_by, controller_ref, manager, name_of, pod_ready, terminating};
use crate::core::{Core, DeleteOptions, PatchType};
use serde_json::{Map, Value, json};

/// What to do with a Job this pass (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStep {
    /// Create this many pods.
    Create(usize),
    /// Mark complete.
    Complete,
    /// Mark failed (backoff limit exceeded).
    Fail,
    /// Nothing to do.
    Wait,
}

/// Decides the next step from counts and spec (pure).
pub fn decide(
    completions: i64,
    parallelism: i64,
    backoff_limit: i64,
    active: i64,
    succeeded: i64,
    failed: i64,
    suspended: bool,
) -> JobStep {
    if succeeded >= completions {
        return JobStep::Complete;
    }
    if failed > backoff_limit {
        return JobStep::Fail;
    }
    if suspended {
        return JobStep::Wait;
    }
    let remaining = completions - succeeded - active;
    let room = parallelism - active;
    let n = remaining.min(room);
    if n > 0 {
        JobStep::Create(n as usize)
    } else {
        JobStep::Wait
    }
}

fn finished(job: &Value) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
    })
}

/// One pass over every Job.
pub fn pass(core: &Core) {
    let (Ok(job_t), Ok(pod_t)) = (core.type_of("batch", "v1", "jobs"), core.core_type("pods"))
    else {
        return;
    };
    let opts = manager("job-controller");
    for job in core.list_raw(&job_t, None) {
        if terminating(&job) || finished(&job) {
            continue;
        }
        let ns = job["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = name_of(&job);
        let uid = job["metadata"]["uid"].as_str().unwrap_or_default();
        let pods: Vec<_> = core
            .list_raw(&pod_t, Some(ns))
            .into_iter()
            .filter(|p| controlled_by(p, uid))
            .collect();
        let phase = |p: &Value| {
            p["status"]["phase"]
                .as_str()
                .unwrap_or("Pending")
                .to_string()
        };
        let active: Vec<_> = pods
            .iter()
            .filter(|p| !terminating(p) && !matches!(phase(p).as_str(), "Succeeded" | "Failed"))
            .collect();
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
        let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i64;
        let spec = &job["spec"];
        let step = decide(
            spec["completions"].as_i64().unwrap_or(1),
            spec["parallelism"].as_i64().unwrap_or(1),
            spec["backoffLimit"].as_i64().unwrap_or(6),
            active.len() as i64,
            succeeded,
            failed,
            spec["suspend"] == json!(true),
        );
        let now = core.clock.now_rfc3339();
        let mut status = json!({
            "active": active.len(), "succeeded": succeeded, "failed": failed,
            "ready": active.iter().filter(|p| pod_ready(p)).count(),
            "terminating": pods.iter().filter(|p| terminating(p)).count(),
            "startTime": job["status"]["startTime"].as_str().map(str::to_string).unwrap_or_else(|| now.clone()),
        });
        match step {
            JobStep::Create(n) => {
                for _ in 0..n {
                    let _ = core.create(&pod_t, ns, new_pod(&job), &opts);
                }
                status["active"] = json!(active.len() + n);
            }
            JobStep::Complete => {
                status["completionTime"] = json!(now);
                status["conditions"] = json!([
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now}
                ]);
            }
            JobStep::Fail => {
                for p in &active {
                    let _ = core.delete(&pod_t, ns, name_of(p), &DeleteOptions::default());
                }
                status["active"] = json!(0);
                status["conditions"] = json!([
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": now, "lastTransitionTime": now},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": now, "lastTransitionTime": now}
                ]);
            }
            JobStep::Wait => {}
        }
        let mut changed = false;
        for (k, v) in status.as_object().into_iter().flatten() {
            if job["status"][k] != *v {
                changed = true;
            }
        }
        if changed {
            let body = json!({"status": status});
            let _ = core.patch(
                &job_t,
                ns,
                name,
                PatchType::Merge,
                body.to_string().as_bytes(),
                Some("status"),
                &opts,
            );
        }
    }
}

fn new_pod(job: &Value) -> Value {
    let template = &job["spec"]["template"];
    let labels: Map<String, Value> = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut meta = json!({"generateName": format!("{}-", name_of(job)), "labels": labels, "ownerReferences": [controller_ref(job)]});
    if let Some(a) = template["metadata"].get("annotations") {
        meta["annotations"] = a.clone();
    }
    json!({"metadata": meta, "spec": template["spec"]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_decision_table() {
        // (completions, parallelism, backoffLimit, active, succeeded, failed, suspended) → step
        let cases = [
            ((1, 1, 6, 0, 0, 0, false), JobStep::Create(1)),
            ((1, 1, 6, 1, 0, 0, false), JobStep::Wait),
            ((1, 1, 6, 0, 1, 0, false), JobStep::Complete),
            ((1, 1, 2, 0, 0, 3, false), JobStep::Fail),
            ((1, 1, 2, 0, 0, 2, false), JobStep::Create(1)),
            ((5, 2, 6, 1, 2, 0, false), JobStep::Create(1)),
            ((1, 1, 6, 0, 0, 0, true), JobStep::Wait),
        ];
        for ((c, p, b, a, s, f, susp), want) in cases {
            assert_eq!(decide(c, p, b, a, s, f, susp), want);
        }
    }
}
