//! The backup sub-controller: what the backup CronJob's Jobs report becomes
//! `status.backup`, the `BackupHealthy` condition, Events and metrics.
//!
//! A Job's outcome is the one JSON line `vaultkeeper backup` prints last (object, size,
//! duration, or the reason it failed: never a secret), read from its pod's log; when the
//! pod left no such line (killed at its deadline, image missing), the Job's own failure
//! condition is the reason. Only Jobs our CronJob created count, and only logs of pods
//! those Jobs created are read ([`crate::ownership`]): labels can be copied by anyone who may
//! create a Job or a pod in the namespace, so a copied label must not be able to report
//! a backup that never ran. Folding runs into the status and judging health are pure
//! functions; only [`observe`] talks to the API server.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use vaultkeeper_api::{BackupStatus, condition};
use vaultkeeper_vault::bounded;

use crate::ownership::Controller;

/// How one backup Job ended (or that it has not).
#[derive(Clone, Debug, PartialEq)]
pub enum RunOutcome {
    /// Still running.
    Running,
    /// Wrote a backup.
    Succeeded {
        /// The S3 object.
        object: Option<String>,
        /// Its size in bytes.
        size_bytes: Option<i64>,
        /// Wall time of the backup, in seconds.
        duration_seconds: Option<f64>,
    },
    /// Failed, with a reason a person can act on.
    Failed(String),
}

/// One Job of the backup CronJob.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRun {
    /// The Job's name.
    pub name: String,
    /// When it finished; `None` while running.
    pub finished: Option<jiff::Timestamp>,
    /// Its outcome.
    pub outcome: RunOutcome,
}

/// Folds the runs (any order) into the status: the newest success and the newest failure
/// win over what the previous status recorded, which survives Job history limits and
/// operator restarts.
pub fn fold_runs(previous: Option<&BackupStatus>, runs: &[JobRun]) -> BackupStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let mut runs: Vec<&JobRun> = runs.iter().filter(|r| r.finished.is_some()).collect();
    runs.sort_by_key(|r| r.finished);
    for run in runs {
        let Some(finished) = run.finished else {
            continue;
        };
        match &run.outcome {
            RunOutcome::Running => {}
            RunOutcome::Succeeded {
                object,
                size_bytes,
                duration_seconds,
            } => {
                if status
                    .last_success_time
                    .as_ref()
                    .is_none_or(|t| t.0 < finished)
                {
                    status.last_success_time = Some(Time(finished));
                    status.last_object = object.clone();
                    status.last_size_bytes = *size_bytes;
                    status.last_duration_seconds = *duration_seconds;
                }
            }
            RunOutcome::Failed(reason) => {
                if status
                    .last_failure_time
                    .as_ref()
                    .is_none_or(|t| t.0 < finished)
                {
                    status.last_failure_time = Some(Time(finished));
                    status.last_failure_reason = Some(reason.clone());
                }
            }
        }
    }
    status
}

/// The runs that finished after what `previous` recorded: each gets one Event.
pub fn new_runs<'a>(previous: Option<&BackupStatus>, runs: &'a [JobRun]) -> Vec<&'a JobRun> {
    let seen = |t: Option<&Time>, finished: jiff::Timestamp| t.is_some_and(|t| t.0 >= finished);
    let mut fresh: Vec<&JobRun> = runs
        .iter()
        .filter(|r| match (&r.outcome, r.finished) {
            (RunOutcome::Succeeded { .. }, Some(f)) => {
                !seen(previous.and_then(|p| p.last_success_time.as_ref()), f)
            }
            (RunOutcome::Failed(_), Some(f)) => {
                !seen(previous.and_then(|p| p.last_failure_time.as_ref()), f)
            }
            _ => false,
        })
        .collect();
    fresh.sort_by_key(|r| r.finished);
    fresh
}

/// What `BackupHealthy` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The condition's status.
    pub healthy: bool,
    /// Its reason (CamelCase).
    pub reason: &'static str,
    /// A sentence a person can act on.
    pub message: String,
}

/// Facts [`health`] judges.
#[derive(Clone, Copy, Debug)]
pub struct HealthInputs<'a> {
    /// What the Jobs reported.
    pub status: &'a BackupStatus,
    /// The longest gap between two runs of the schedule, in seconds.
    pub period_seconds: Option<i64>,
    /// When backups were turned on (the CronJob's creation).
    pub since: Option<jiff::Timestamp>,
    /// `spec.backup.suspend`.
    pub suspended: bool,
    /// The clock value of this pass.
    pub now: jiff::Timestamp,
}

/// Judges backup health: healthy while the last run succeeded and the last success is
/// younger than two schedule periods; a cluster whose first backup is not due yet is
/// healthy with a reason that says so.
pub fn health(inputs: HealthInputs<'_>) -> Health {
    let HealthInputs {
        status,
        period_seconds,
        since,
        suspended,
        now,
    } = inputs;
    let success = status.last_success_time.as_ref().map(|t| t.0);
    let failure = status.last_failure_time.as_ref().map(|t| t.0);
    let allowed = period_seconds.map(|p| jiff::SignedDuration::from_secs(p.saturating_mul(2)));
    let too_old = |t: jiff::Timestamp| allowed.is_some_and(|a| now.duration_since(t) > a);
    if suspended {
        return Health {
            healthy: false,
            reason: "Suspended",
            message: "backups are suspended (spec.backup.suspend); no new backup is taken"
                .to_owned(),
        };
    }
    if let Some(failed) = failure
        && success.is_none_or(|s| s < failed)
    {
        return Health {
            healthy: false,
            reason: "BackupFailed",
            message: format!(
                "the backup that ended at {failed} failed: {}; see `kubectl logs` of the \
                 backup Job",
                status
                    .last_failure_reason
                    .as_deref()
                    .unwrap_or("no reason reported")
            ),
        };
    }
    match success {
        Some(s) if too_old(s) => Health {
            healthy: false,
            reason: "BackupStale",
            message: format!(
                "the last successful backup was at {s}, more than two schedule periods ago; \
                 check that the backup CronJob runs"
            ),
        },
        Some(s) => Health {
            healthy: true,
            reason: "BackupSucceeded",
            message: format!(
                "last backup at {s}: {}",
                status
                    .last_object
                    .as_deref()
                    .unwrap_or("(object not reported)")
            ),
        },
        None if since.is_some_and(too_old) => Health {
            healthy: false,
            reason: "NoSuccessfulBackup",
            message: "no backup has succeeded in two schedule periods since backups were \
                      turned on; check the backup CronJob's Jobs"
                .to_owned(),
        },
        None => Health {
            healthy: true,
            reason: "FirstBackupPending",
            message: "backups are on; the first one has not run yet".to_owned(),
        },
    }
}

/// Sets (or, with `None`, removes) the `BackupHealthy` condition, keeping its transition
/// time while its status does not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    health: Option<&Health>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    set_named_condition(
        conditions,
        condition::BACKUP_HEALTHY,
        health,
        generation,
        now,
    );
}

/// Sets (or, with `None`, removes) a condition a sub-controller owns, keeping its
/// transition time while its status does not change.
pub fn set_named_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    health: Option<&Health>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let earlier = conditions.iter().position(|c| c.type_ == type_);
    let Some(health) = health else {
        if let Some(i) = earlier {
            conditions.remove(i);
        }
        return;
    };
    let status = if health.healthy { "True" } else { "False" }.to_owned();
    let last_transition_time = earlier
        .map(|i| &conditions[i])
        .filter(|c| c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    let new = Condition {
        type_: type_.to_owned(),
        status,
        reason: health.reason.to_owned(),
        message: health.message.clone(),
        observed_generation: generation,
        last_transition_time,
    };
    match earlier {
        Some(i) => conditions[i] = new,
        None => conditions.push(new),
    }
}

/// Parses the JSON line `vaultkeeper backup` printed (the last one in the log).
pub fn outcome_from_log(log: &str) -> Option<RunOutcome> {
    let line = log
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{') && l.contains("\"status\""))?;
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    match value["status"].as_str()? {
        "ok" => Some(RunOutcome::Succeeded {
            object: value["object"].as_str().map(str::to_owned),
            size_bytes: value["size"].as_i64(),
            duration_seconds: value["duration_ms"].as_f64().map(|ms| ms / 1000.0),
        }),
        "failed" => Some(RunOutcome::Failed(clip(
            value["error"].as_str().unwrap_or("the backup failed"),
        ))),
        _ => None,
    }
}

/// At most 500 characters of a reason, for status and Events.
pub fn clip(text: &str) -> String {
    const MAX: usize = 500;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// The state of a Job from its conditions: finished when `Complete` or `Failed` is True.
fn finished(job: &Job) -> Option<(bool, jiff::Timestamp, Option<String>)> {
    let status = job.status.as_ref()?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let done = conditions
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    let at = status
        .completion_time
        .as_ref()
        .or(done.last_transition_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let why = done
        .message
        .clone()
        .or_else(|| done.reason.clone())
        .filter(|m| !m.is_empty());
    Some((done.type_ == "Complete", at, why))
}

/// Which of a cluster's CronJobs to read, and how its Jobs report.
#[derive(Clone, Copy)]
pub struct JobSource<'a> {
    /// The CronJob's name.
    pub cronjob: &'a str,
    /// The `app.kubernetes.io/component` label of its Jobs.
    pub component: &'a str,
    /// The container whose log holds the outcome line.
    pub container: &'a str,
    /// Parses the outcome line out of that log.
    pub parse: fn(&str) -> Option<RunOutcome>,
}

impl JobSource<'_> {
    /// The backup CronJob of a cluster.
    pub fn backup(cronjob: &str) -> JobSource<'_> {
        JobSource {
            cronjob,
            component: "backup",
            container: "backup",
            parse: outcome_from_log,
        }
    }
}

/// What the API server knows about one of a cluster's CronJobs: its creation time and
/// every Job of it still in the history. `known` are runs already read (by Job name),
/// whose logs are not fetched again.
pub async fn observe(
    client: &kube::Client,
    namespace: &str,
    cluster: &str,
    source: JobSource<'_>,
    known: &std::collections::HashMap<String, JobRun>,
) -> Result<(Option<jiff::Timestamp>, Vec<JobRun>), kube::Error> {
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    let Some(cronjob) = cronjobs.get_opt(source.cronjob).await? else {
        // No CronJob, so no Job can be its: whatever carries the labels is not ours.
        return Ok((None, Vec::new()));
    };
    let since = cronjob.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let Some(owner) = Controller::of("CronJob", &cronjob.metadata) else {
        return Ok((since, Vec::new()));
    };
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let selector = format!(
        "app.kubernetes.io/instance={cluster},app.kubernetes.io/component={}",
        source.component
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut runs = Vec::new();
    for job in jobs
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        // Labels can be copied by anyone who may create a Job here; only a Job our
        // CronJob created speaks for a backup or a token renewal.
        if !owner.controls(&job.metadata) {
            tracing::debug!(job = %job.name_any(), cronjob = source.cronjob, "ignoring a Job with our labels that our CronJob did not create");
            continue;
        }
        runs.push(run_of(&pods, &job, source, known).await);
    }
    Ok((since, runs))
}

/// What one Job reported: a run already read is taken from `known`, a running Job is
/// Running, a finished one is its outcome line (read from the log of the newest pod the
/// Job itself created) or else the Job's own conditions.
pub async fn run_of(
    pods: &Api<Pod>,
    job: &Job,
    source: JobSource<'_>,
    known: &std::collections::HashMap<String, JobRun>,
) -> JobRun {
    let name = job.name_any();
    if let Some(run) = known.get(&name)
        && run.finished.is_some()
    {
        return run.clone();
    }
    let Some((complete, at, why)) = finished(job) else {
        return JobRun {
            name,
            finished: None,
            outcome: RunOutcome::Running,
        };
    };
    let from_log = last_pod_log(pods, job, source.container)
        .await
        .and_then(|l| (source.parse)(&l));
    let outcome = match (complete, from_log) {
        (_, Some(outcome)) => outcome,
        (true, None) => RunOutcome::Succeeded {
            object: None,
            size_bytes: None,
            duration_seconds: None,
        },
        (false, None) => RunOutcome::Failed(clip(
            &why.unwrap_or_else(|| "the Job failed without reporting why".to_owned()),
        )),
    };
    JobRun {
        name,
        finished: Some(at),
        outcome,
    }
}

/// The log of the newest pod the Job itself created (its last lines, capped at
/// [`bounded::JOB_LOG`]), if any can be read. A pod that only carries the Job's label is
/// not read: anyone who may create pods could write a fake outcome line into one.
async fn last_pod_log(pods: &Api<Pod>, job: &Job, container: &str) -> Option<String> {
    let name = job.name_any();
    let owner = Controller::of("Job", &job.metadata)?;
    let mut list = pods
        .list(&ListParams::default().labels(&format!("job-name={name}")))
        .await
        .ok()?
        .items;
    list.retain(|p| owner.controls(&p.metadata));
    list.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    let pod = list.last()?;
    let params = LogParams {
        container: Some(container.to_owned()),
        tail_lines: Some(50),
        // The API server stops here; the read below is capped too, in case it does not.
        limit_bytes: i64::try_from(bounded::JOB_LOG.bytes).ok(),
        ..LogParams::default()
    };
    let read = async {
        let stream = pods
            .log_stream(&pod.name_any(), &params)
            .await
            .map_err(|e| e.to_string())?;
        bounded::read_futures_to_limit(Box::pin(stream), bounded::JOB_LOG)
            .await
            .map_err(|e| e.to_string())
    };
    match read.await {
        Ok(log) => Some(String::from_utf8_lossy(&log).into_owned()),
        Err(error) => {
            tracing::debug!(%error, job = %name, pod = %pod.name_any(), "cannot read the Job's log");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp")
    }

    fn ok(name: &str, finished: i64, object: &str) -> JobRun {
        JobRun {
            name: name.into(),
            finished: Some(at(finished)),
            outcome: RunOutcome::Succeeded {
                object: Some(object.into()),
                size_bytes: Some(1024),
                duration_seconds: Some(1.5),
            },
        }
    }

    fn failed(name: &str, finished: i64, why: &str) -> JobRun {
        JobRun {
            name: name.into(),
            finished: Some(at(finished)),
            outcome: RunOutcome::Failed(why.into()),
        }
    }

    #[test]
    fn the_newest_success_and_failure_win_whatever_the_order() {
        let runs = [
            failed("b-2", 200, "bucket missing"),
            ok("b-3", 300, "vault/3.snap"),
            ok("b-1", 100, "vault/1.snap"),
            JobRun {
                name: "b-4".into(),
                finished: None,
                outcome: RunOutcome::Running,
            },
        ];
        let status = fold_runs(None, &runs);
        assert_eq!(status.last_success_time, Some(Time(at(300))));
        assert_eq!(status.last_object.as_deref(), Some("vault/3.snap"));
        assert_eq!(status.last_size_bytes, Some(1024));
        assert_eq!(status.last_failure_time, Some(Time(at(200))));
        assert_eq!(
            status.last_failure_reason.as_deref(),
            Some("bucket missing")
        );
    }

    #[test]
    fn what_the_status_remembers_outlives_the_job_history() {
        let earlier = fold_runs(None, &[ok("b-9", 900, "vault/9.snap")]);
        // The Job was deleted by the history limit; an older one is still listed.
        let status = fold_runs(Some(&earlier), &[ok("b-1", 100, "vault/1.snap")]);
        assert_eq!(status.last_object.as_deref(), Some("vault/9.snap"));
        assert!(new_runs(Some(&earlier), &[ok("b-1", 100, "vault/1.snap")]).is_empty());
        let fresh = [ok("b-10", 1000, "vault/10.snap")];
        assert_eq!(new_runs(Some(&earlier), &fresh).len(), 1);
    }

    fn judge(status: &BackupStatus, since: i64, now: i64, suspended: bool) -> Health {
        health(HealthInputs {
            status,
            period_seconds: Some(3600),
            since: Some(at(since)),
            suspended,
            now: at(now),
        })
    }

    #[test]
    fn health_table() {
        let none = BackupStatus::default();
        let good = fold_runs(None, &[ok("b-1", 0, "o")]);
        let then_failed = fold_runs(Some(&good), &[failed("b-2", 3600, "AccessDenied")]);
        let recovered = fold_runs(Some(&then_failed), &[ok("b-3", 7200, "o3")]);
        let cases: [(&str, &BackupStatus, i64, i64, bool, bool, &str); 8] = [
            (
                "nothing yet, first not due",
                &none,
                0,
                3000,
                false,
                true,
                "FirstBackupPending",
            ),
            (
                "nothing in two periods",
                &none,
                0,
                7201,
                false,
                false,
                "NoSuccessfulBackup",
            ),
            (
                "fresh success",
                &good,
                0,
                3000,
                false,
                true,
                "BackupSucceeded",
            ),
            (
                "success within two periods",
                &good,
                0,
                7200,
                false,
                true,
                "BackupSucceeded",
            ),
            (
                "success too old",
                &good,
                0,
                7201,
                false,
                false,
                "BackupStale",
            ),
            (
                "last run failed",
                &then_failed,
                0,
                3700,
                false,
                false,
                "BackupFailed",
            ),
            (
                "failure then success",
                &recovered,
                0,
                7300,
                false,
                true,
                "BackupSucceeded",
            ),
            ("suspended", &good, 0, 100, true, false, "Suspended"),
        ];
        for (what, status, since, now, suspended, healthy, reason) in cases {
            let h = judge(status, since, now, suspended);
            assert_eq!((h.healthy, h.reason), (healthy, reason), "{what}: {h:?}");
        }
        let failed = judge(&then_failed, 0, 3700, false);
        assert!(
            failed.message.contains("AccessDenied"),
            "{}",
            failed.message
        );
    }

    #[test]
    fn the_condition_keeps_its_transition_time_while_unchanged() {
        let mut conditions = Vec::new();
        let good = Health {
            healthy: true,
            reason: "BackupSucceeded",
            message: "m".into(),
        };
        set_condition(&mut conditions, Some(&good), Some(1), at(0));
        set_condition(&mut conditions, Some(&good), Some(2), at(50));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, Time(at(0)));
        let bad = Health {
            healthy: false,
            reason: "BackupFailed",
            message: "m".into(),
        };
        set_condition(&mut conditions, Some(&bad), Some(2), at(60));
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions[0].last_transition_time, Time(at(60)));
        set_condition(&mut conditions, None, Some(3), at(70));
        assert!(conditions.is_empty(), "backups turned off: no condition");
    }

    #[test]
    fn the_outcome_is_the_last_json_line_of_the_log() {
        let log = "starting\n{\"status\":\"ok\",\"object\":\"vault/x.vkb\",\"size\":2048,\"duration_ms\":1500}\n";
        assert_eq!(
            outcome_from_log(log),
            Some(RunOutcome::Succeeded {
                object: Some("vault/x.vkb".into()),
                size_bytes: Some(2048),
                duration_seconds: Some(1.5),
            })
        );
        let failed = "{\"status\":\"failed\",\"error\":\"S3: NoSuchBucket: vault-snapshots\"}\nerror: S3: NoSuchBucket\n";
        assert_eq!(
            outcome_from_log(failed),
            Some(RunOutcome::Failed(
                "S3: NoSuchBucket: vault-snapshots".into()
            ))
        );
        assert_eq!(outcome_from_log("panic\nno json here"), None);
        let long = format!(
            "{{\"status\":\"failed\",\"error\":\"{}\"}}",
            "x".repeat(2000)
        );
        match outcome_from_log(&long) {
            Some(RunOutcome::Failed(why)) => assert!(why.chars().count() <= 501),
            other => panic!("{other:?}"),
        }
    }
}
