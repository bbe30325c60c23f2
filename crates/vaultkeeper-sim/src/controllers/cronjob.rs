//! The CronJob controller (<https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/>),
//! on the cluster's driven clock: when a scheduled time has passed since the last one it
//! creates the Job `<cronjob>-<minutes since epoch>` (unless suspended, too late for
//! `startingDeadlineSeconds`, or `concurrencyPolicy` says otherwise), tracks `active`,
//! `lastScheduleTime`, `lastSuccessfulTime`, and prunes finished Jobs beyond the history
//! limits. `timeZone` is honoured; without it the schedule is read in UTC.

use super::{controlled_by, controller_ref, manager, name_of, terminating};
use crate::builtin::parse_schedule;
use crate::core::{Core, DeleteOptions, PatchType};
use jiff::{Timestamp, tz::TimeZone};
use serde_json::{Value, json};

/// The most recent scheduled time in `(after, now]`, if any (pure).
pub fn most_recent_due(
    cron: &croner::Cron,
    tz: &TimeZone,
    after: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    let mut cursor = after.to_zoned(tz.clone());
    let mut last = None;
    // Bounded like the real controller (which gives up after 100 missed schedules).
    for _ in 0..10_000 {
        let next = cron.find_next_occurrence(&cursor, false).ok()?;
        if next.timestamp() > now {
            break;
        }
        last = Some(next.timestamp());
        cursor = next;
    }
    last
}

fn jobs_of(core: &Core, cj: &Value) -> Vec<std::sync::Arc<Value>> {
    let Ok(job_t) = core.type_of("batch", "v1", "jobs") else {
        return Vec::new();
    };
    let uid = cj["metadata"]["uid"].as_str().unwrap_or_default();
    core.list_raw(&job_t, cj["metadata"]["namespace"].as_str())
        .into_iter()
        .filter(|j| controlled_by(j, uid))
        .collect()
}

fn condition(job: &Value, ty: &str) -> bool {
    job["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

/// One pass over every CronJob.
pub fn pass(core: &Core) {
    let (Ok(cj_t), Ok(job_t)) = (
        core.type_of("batch", "v1", "cronjobs"),
        core.type_of("batch", "v1", "jobs"),
    ) else {
        return;
    };
    let opts = manager("cronjob-controller");
    let now = core.clock.now();
    for cj in core.list_raw(&cj_t, None) {
        if terminating(&cj) {
            continue;
        }
        let ns = cj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = name_of(&cj).to_string();
        let spec = &cj["spec"];
        let mut jobs = jobs_of(core, &cj);
        let active: Vec<&std::sync::Arc<Value>> = jobs
            .iter()
            .filter(|j| !condition(j, "Complete") && !condition(j, "Failed") && !terminating(j))
            .collect();
        let mut active_refs: Vec<Value> = active
            .iter()
            .map(|j| json!({"kind": "Job", "apiVersion": "batch/v1", "name": j["metadata"]["name"], "namespace": ns, "uid": j["metadata"]["uid"], "resourceVersion": j["metadata"]["resourceVersion"]}))
            .collect();
        let mut last_schedule = cj["status"]["lastScheduleTime"]
            .as_str()
            .map(str::to_string);
        let last_success = jobs
            .iter()
            .filter(|j| condition(j, "Complete"))
            .filter_map(|j| j["status"]["completionTime"].as_str().map(str::to_string))
            .max()
            .or_else(|| {
                cj["status"]["lastSuccessfulTime"]
                    .as_str()
                    .map(str::to_string)
            });
        let schedule = spec["schedule"].as_str().unwrap_or_default();
        let tz = match spec["timeZone"].as_str() {
            Some(z) => TimeZone::get(z).unwrap_or(TimeZone::UTC),
            None => TimeZone::UTC,
        };
        if let (Ok(cron), false) = (parse_schedule(schedule), spec["suspend"] == json!(true)) {
            let after = last_schedule
                .as_deref()
                .or(cj["metadata"]["creationTimestamp"].as_str())
                .and_then(crate::clock::parse_time)
                .unwrap_or(now);
            if let Some(due) = most_recent_due(&cron, &tz, after, now) {
                let too_late = spec["startingDeadlineSeconds"]
                    .as_i64()
                    .is_some_and(|d| now.duration_since(due).as_secs() > d);
                let policy = spec["concurrencyPolicy"].as_str().unwrap_or("Allow");
                let skip = too_late || (policy == "Forbid" && !active.is_empty());
                if !skip {
                    if policy == "Replace" {
                        for j in &active {
                            let _ = core.delete(
                                &job_t,
                                &ns,
                                name_of(j),
                                &DeleteOptions {
                                    propagation: Some("Background".into()),
                                    ..Default::default()
                                },
                            );
                        }
                        active_refs.clear();
                    }
                    let job_name = format!("{name}-{}", due.as_second() / 60);
                    let tmpl = &spec["jobTemplate"];
                    let mut meta = json!({"name": job_name, "ownerReferences": [controller_ref(&cj)],
                        "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": crate::clock::format_time(due)}});
                    if let Some(l) = tmpl["metadata"].get("labels") {
                        meta["labels"] = l.clone();
                    }
                    if let Some(Value::Object(a)) = tmpl["metadata"].get("annotations") {
                        for (k, v) in a {
                            meta["annotations"][k] = v.clone();
                        }
                    }
                    if let Ok(w) = core.create(
                        &job_t,
                        &ns,
                        json!({"metadata": meta, "spec": tmpl["spec"]}),
                        &opts,
                    ) {
                        active_refs.push(json!({"kind": "Job", "apiVersion": "batch/v1", "name": w.object["metadata"]["name"], "namespace": ns, "uid": w.object["metadata"]["uid"], "resourceVersion": w.object["metadata"]["resourceVersion"]}));
                        jobs = jobs_of(core, &cj);
                    }
                }
                // A skipped run still counts as scheduled (the real controller moves on).
                last_schedule = Some(crate::clock::format_time(due));
            }
        }
        // History limits.
        for (cond, limit) in [
            (
                "Complete",
                spec["successfulJobsHistoryLimit"].as_i64().unwrap_or(3),
            ),
            (
                "Failed",
                spec["failedJobsHistoryLimit"].as_i64().unwrap_or(1),
            ),
        ] {
            let mut done: Vec<&std::sync::Arc<Value>> = jobs
                .iter()
                .filter(|j| condition(j, cond) && !terminating(j))
                .collect();
            done.sort_by_key(|j| {
                j["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            });
            let excess = done.len().saturating_sub(limit.max(0) as usize);
            for j in done.into_iter().take(excess) {
                let _ = core.delete(
                    &job_t,
                    &ns,
                    name_of(j),
                    &DeleteOptions {
                        propagation: Some("Background".into()),
                        ..Default::default()
                    },
                );
            }
        }
        let mut status = json!({"active": if active_refs.is_empty() { Value::Null } else { json!(active_refs) }});
        if let Some(t) = &last_schedule {
            status["lastScheduleTime"] = json!(t);
        }
        if let Some(t) = &last_success {
            status["lastSuccessfulTime"] = json!(t);
        }
        let cur = &cj["status"];
        let same = cur["lastScheduleTime"] == status["lastScheduleTime"]
            && cur["lastSuccessfulTime"] == status["lastSuccessfulTime"]
            && cur["active"]
                .as_array()
                .map(|a| a.iter().map(|r| r["uid"].clone()).collect::<Vec<_>>())
                == status["active"]
                    .as_array()
                    .map(|a| a.iter().map(|r| r["uid"].clone()).collect::<Vec<_>>());
        if !same {
            let body = json!({"status": status});
            let _ = core.patch(
                &cj_t,
                &ns,
                &name,
                PatchType::Merge,
                body.to_string().as_bytes(),
                Some("status"),
                &opts,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_due_picks_the_latest_missed_time() {
        let cron = parse_schedule("0 13 * * 4").unwrap();
        let after: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap(); // a Thursday
        let now: Timestamp = "2026-01-16T12:00:00Z".parse().unwrap();
        let due = most_recent_due(&cron, &TimeZone::UTC, after, now).unwrap();
        assert_eq!(due.to_string(), "2026-01-15T13:00:00Z");
        assert!(most_recent_due(&cron, &TimeZone::UTC, due, now).is_none());
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let due = most_recent_due(&cron, &berlin, after, now).unwrap();
        assert_eq!(
            due.to_string(),
            "2026-01-15T12:00:00Z",
            "13:00 in Berlin is 12:00 UTC in winter"
        );
    }
}
