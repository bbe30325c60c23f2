//! Snapshot before disruption: a rolling update of the pods, a rekey, or a scale-down
//! that removes raft peers first runs a one-off backup Job and waits for it to succeed
//! (`spec.backup.beforeDisruption`, default Required). It lives in its own module because
//! it spans the pass: the Jobs are read in `observe`, the operation's identity comes from
//! the plan, the decision is taken once the operation lock is held, the Job is created
//! in the act step and the outcome goes to status.
//!
//! The rules ([`decide`], pure, tested by tables in `snapshot_tests.rs`):
//! 1. The snapshot belongs to the operation whose lock the pass holds, named by what
//!    identifies it: the StatefulSet revision a rolling update rolls to, the request value
//!    of a rekey, the start of a scale-down (the lock's `startedAt`, kept while it runs).
//!    The Job's name is derived from that name, so a restarted operator (or another
//!    replica taking the lock over) finds the same Job and never starts a second one.
//! 2. Nothing disruptive runs while the snapshot is pending: the pass drops its
//!    disruptive steps, keeps the lock (no other operation can start in between) and
//!    looks again soon. The step runs in the pass that sees the Job succeeded.
//! 3. A succeeded snapshot is recorded in `status.snapshot` in a write of its own (with
//!    the resourceVersion the pass read), and only once that write succeeded does the
//!    operation's first step run. An operation recorded there never takes another,
//!    however often its passes are interrupted; a pass that dies between the Job's
//!    success and the record finds the succeeded Job (kept a day) again.
//! 4. A failed Job blocks the operation: condition SnapshotBeforeDisruption False,
//!    reason SnapshotFailed, naming the Job, its failure and the two ways on: delete the
//!    Job (a new one is taken) or set `spec.backup.beforeDisruption: Skip`.
//! 5. Only a Job this VaultCluster controls (by UID) counts: a Job of the same name made
//!    by someone else (who could fake a success line in its log) blocks the operation
//!    instead of letting it through.
//! 6. Skip is recorded too, so the status says the operation ran without a snapshot.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use vaultkeeper_api::{
    BackupSpec, ClusterNames, SnapshotOutcome, SnapshotStatus, VaultCluster, VaultClusterStatus,
    condition,
};

use super::events::EventSpec;
use crate::backup::{self, Health, JobRun, RunOutcome};
use crate::ownership::Controller;

/// The label that marks a one-off snapshot Job (besides the backup Jobs' own labels).
pub const SNAPSHOT_LABEL: &str = "vaultkeeper.io/snapshot";
/// Its value.
pub const SNAPSHOT_LABEL_VALUE: &str = "before-disruption";
/// The annotation naming the operation a snapshot Job was taken for.
pub const SNAPSHOT_FOR_ANNOTATION: &str = "vaultkeeper.io/snapshot-for";
/// How long a finished snapshot Job is kept (then Kubernetes removes it); the record in
/// status outlives it.
const KEEP_FINISHED_SECONDS: i64 = 86_400;

/// The name of the snapshot Job for `operation`: the backup CronJob's name, `-s` and nine
/// hex digits of the operation's SHA-256, so the same operation always gets the same name
/// (62 characters at most, within the 63 a Job name may have).
pub fn job_name(cluster: &str, operation: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, operation.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-s{}", ClusterNames::new(cluster).backup(), &hex[..9])
}

/// A snapshot Job as observed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SnapshotJob {
    /// Whether this VaultCluster (by UID) is its controller.
    pub(crate) ours: bool,
    /// What it reported (`Running` for a Job not ours: its log is not read).
    pub(crate) run: JobRun,
}

/// Reads the cluster's snapshot Jobs (by label; ownership is checked, not assumed) and
/// what the ones this VaultCluster created reported. `known` are runs already read.
pub(crate) async fn observe(
    client: &kube::Client,
    vc: &VaultCluster,
    namespace: &str,
    known: &HashMap<String, JobRun>,
) -> Result<Vec<SnapshotJob>, kube::Error> {
    let Some(owner) = Controller::of("VaultCluster", &vc.metadata) else {
        return Ok(Vec::new());
    };
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!(
        "app.kubernetes.io/instance={},{SNAPSHOT_LABEL}={SNAPSHOT_LABEL_VALUE}",
        vc.name_any()
    );
    let cronjob = ClusterNames::new(vc.name_any()).backup();
    let mut out = Vec::new();
    for job in jobs
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        let ours = owner.controls(&job.metadata);
        let run = if ours {
            backup::run_of(&pods, &job, backup::JobSource::backup(&cronjob), known).await
        } else {
            JobRun {
                name: job.name_any(),
                finished: None,
                outcome: RunOutcome::Running,
            }
        };
        out.push(SnapshotJob { ours, run });
    }
    Ok(out)
}

/// What [`decide`] looks at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inputs<'a> {
    /// The VaultCluster's name.
    pub(crate) cluster: &'a str,
    /// `spec.backup`.
    pub(crate) spec: &'a BackupSpec,
    /// Whether the Vault-side bootstrap (which creates the backup role) is applied.
    pub(crate) bootstrapped: bool,
    /// The operation whose disruptive step this pass would run, with its lock held
    /// (`None`: no disruptive step this pass).
    pub(crate) operation: Option<&'a str>,
    /// `status.snapshot` as read.
    pub(crate) recorded: Option<&'a SnapshotStatus>,
    /// The snapshot Jobs, or why they could not be read.
    pub(crate) jobs: &'a Result<Vec<SnapshotJob>, String>,
    /// The clock value of this pass.
    pub(crate) now: jiff::Timestamp,
}

/// What to do about the snapshot before the operation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decision {
    /// Nothing about snapshots this pass: the operation's steps run as planned.
    Proceed,
    /// The operation runs, and this is recorded in `status.snapshot` (taken or skipped).
    Record(SnapshotStatus),
    /// Create the snapshot Job; the operation waits.
    Create {
        /// The operation.
        operation: String,
        /// The Job's name.
        job: String,
    },
    /// The operation waits (the Job runs, or cannot be read).
    Wait {
        /// The operation.
        operation: String,
        /// Why, in a sentence.
        why: String,
    },
    /// The operation is blocked until a person acts.
    Blocked {
        /// The condition's reason.
        reason: &'static str,
        /// What happened and what to do.
        message: String,
    },
}

impl Decision {
    /// Whether the disruptive steps of this pass must not run.
    pub(crate) fn holds(&self) -> bool {
        matches!(
            self,
            Decision::Create { .. } | Decision::Wait { .. } | Decision::Blocked { .. }
        )
    }

    /// What the operation waits for, when it does.
    pub(crate) fn waiting_for(&self) -> Option<String> {
        match self {
            Decision::Create { operation, job } => {
                Some(format!("the backup before {operation}: starting Job {job}"))
            }
            Decision::Wait { operation, why } => {
                Some(format!("the backup before {operation}: {why}"))
            }
            Decision::Blocked { reason, .. } => {
                Some(format!("the backup before the operation: {reason}"))
            }
            Decision::Proceed | Decision::Record(_) => None,
        }
    }
}

/// The override a blocked operation's message names.
const OVERRIDE: &str = "set spec.backup.beforeDisruption: Skip to run the operation without it";

/// Decides about the snapshot before the operation. Pure.
pub(crate) fn decide(inputs: &Inputs<'_>) -> Decision {
    let Some(operation) = inputs.operation else {
        return Decision::Proceed;
    };
    if !(inputs.spec.enabled && inputs.spec.has_store()) {
        return Decision::Proceed;
    }
    if inputs.recorded.is_some_and(|r| r.operation == operation) {
        return Decision::Proceed;
    }
    if !inputs.spec.snapshot_before_disruption() {
        return Decision::Record(SnapshotStatus {
            operation: operation.to_owned(),
            outcome: SnapshotOutcome::Skipped,
            job: None,
            object: None,
            time: Some(Time(inputs.now)),
        });
    }
    // Before the bootstrap there is no backup role to log in with (the CronJob is held
    // suspended too): nothing can be taken, and nothing has been written to lose.
    if !inputs.bootstrapped {
        return Decision::Proceed;
    }
    let job = job_name(inputs.cluster, operation);
    let jobs = match inputs.jobs {
        Ok(jobs) => jobs,
        Err(error) => {
            return Decision::Wait {
                operation: operation.to_owned(),
                why: format!("cannot read the snapshot Jobs ({error}); retried on the next pass"),
            };
        }
    };
    let Some(found) = jobs.iter().find(|j| j.run.name == job) else {
        return Decision::Create {
            operation: operation.to_owned(),
            job,
        };
    };
    if !found.ours {
        return Decision::Blocked {
            reason: "SnapshotJobNotOurs",
            message: format!(
                "{operation} waits for a backup, but Job {job} was not created by vaultkeeper for this VaultCluster, so its outcome is not trusted; delete it (vaultkeeper then starts its own) or {OVERRIDE}"
            ),
        };
    }
    match &found.run.outcome {
        RunOutcome::Running => Decision::Wait {
            operation: operation.to_owned(),
            why: format!("backup Job {job} is running"),
        },
        RunOutcome::Succeeded { object, .. } => Decision::Record(SnapshotStatus {
            operation: operation.to_owned(),
            outcome: SnapshotOutcome::Taken,
            job: Some(job),
            object: object.clone(),
            time: Some(Time(found.run.finished.unwrap_or(inputs.now))),
        }),
        RunOutcome::Failed(reason) => Decision::Blocked {
            reason: "SnapshotFailed",
            message: format!(
                "{operation} is blocked: the backup before it, Job {job}, failed: {reason}. Fix the cause and delete Job {job} to take it again, or {OVERRIDE}"
            ),
        },
    }
}

/// The one-off Job for `operation`, from the backup CronJob's `jobTemplate` as rendered
/// this pass: the same ServiceAccount, Vault role, audience-bound login token, store
/// credentials and encryption key as every scheduled backup, and nothing on its command
/// line but flags. Owned by the VaultCluster (deleted with it) and removed a day after it
/// finishes.
pub(crate) fn job(
    vc: &VaultCluster,
    namespace: &str,
    template: &serde_json::Value,
    operation: &str,
    name: &str,
) -> Option<serde_json::Value> {
    let uid = vc.metadata.uid.clone()?;
    let mut labels: BTreeMap<String, serde_json::Value> = template["metadata"]["labels"]
        .as_object()
        .map(|l| l.clone().into_iter().collect())
        .unwrap_or_default();
    labels.insert(SNAPSHOT_LABEL.to_owned(), SNAPSHOT_LABEL_VALUE.into());
    let mut spec = template.get("spec")?.clone();
    spec["ttlSecondsAfterFinished"] = KEEP_FINISHED_SECONDS.into();
    Some(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": { SNAPSHOT_FOR_ANNOTATION: operation },
            "ownerReferences": [{
                "apiVersion": "vaultkeeper.io/v1alpha1",
                "kind": "VaultCluster",
                "name": vc.name_any(),
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    }))
}

/// Creates the snapshot Job. `Ok(false)` when it exists already (another pass or replica
/// created it: the next pass reads it).
pub(crate) async fn create(
    client: &kube::Client,
    namespace: &str,
    job: serde_json::Value,
) -> Result<bool, String> {
    let job: Job =
        serde_json::from_value(job).map_err(|e| format!("building the snapshot Job: {e}"))?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    match jobs.create(&PostParams::default(), &job).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(format!("creating the snapshot Job: {e}")),
    }
}

/// Writes the snapshot taken (or skipped) for an operation to `status.snapshot`, before
/// the operation's first step runs: in its own merge patch, with the resourceVersion the
/// pass read as its precondition, so the record cannot be lost to a status write that a
/// conflict skips, and nothing written in between is overwritten. The new resourceVersion
/// (the pass's own status write carries it); an error holds the operation this pass.
pub(crate) async fn record(
    client: &kube::Client,
    vc: &VaultCluster,
    record: &SnapshotStatus,
    resource_version: Option<&str>,
) -> Result<Option<String>, String> {
    let api: Api<VaultCluster> =
        Api::namespaced(client.clone(), &vc.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": resource_version },
        "status": { "snapshot": record },
    });
    match api
        .patch_status(
            &vc.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(written) => Ok(written.metadata.resource_version),
        Err(kube::Error::Api(s)) if s.code == 409 => Err(
            "the VaultCluster changed since this pass read it; the next pass records the backup and goes on"
                .to_owned(),
        ),
        Err(e) => Err(format!("recording the backup in status.snapshot: {e}")),
    }
}

/// Folds the decision (and whether the Job was created: `started`) into
/// `status.snapshot` and the SnapshotBeforeDisruption condition; the Events to publish.
pub(crate) fn fold(
    spec: &BackupSpec,
    decision: &Decision,
    started: Option<&Result<bool, String>>,
    status: &mut VaultClusterStatus,
    previous: Option<&VaultClusterStatus>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Vec<EventSpec> {
    status.snapshot = previous.and_then(|p| p.snapshot.clone());
    let set =
        |status: &mut VaultClusterStatus, healthy: bool, reason: &'static str, message: String| {
            backup::set_named_condition(
                &mut status.conditions,
                condition::SNAPSHOT_BEFORE_DISRUPTION,
                Some(&Health {
                    healthy,
                    reason,
                    message,
                }),
                generation,
                now,
            );
        };
    if !(spec.enabled && spec.has_store()) {
        backup::set_named_condition(
            &mut status.conditions,
            condition::SNAPSHOT_BEFORE_DISRUPTION,
            None,
            generation,
            now,
        );
        return Vec::new();
    }
    let mut events = Vec::new();
    match decision {
        // No snapshot pending: the condition tells of the last one recorded (an operation
        // that was blocked and then withdrawn leaves no False behind).
        Decision::Proceed => match &status.snapshot {
            Some(record) => {
                let (reason, message) = recorded_condition(record);
                set(status, true, reason, message);
            }
            None => backup::set_named_condition(
                &mut status.conditions,
                condition::SNAPSHOT_BEFORE_DISRUPTION,
                None,
                generation,
                now,
            ),
        },
        Decision::Record(record) => {
            let (reason, message) = recorded_condition(record);
            set(status, true, reason, message.clone());
            events.push(EventSpec::normal(reason, message));
            status.snapshot = Some(record.clone());
        }
        Decision::Create { operation, job } => match started {
            Some(Ok(true)) => {
                let message = format!("started backup Job {job} before {operation}");
                set(status, false, "SnapshotInProgress", message.clone());
                events.push(EventSpec::normal("SnapshotStarted", message));
            }
            Some(Err(error)) => {
                let message = format!(
                    "{operation} waits for a backup first, but {error}; retried on the next pass"
                );
                set(status, false, "SnapshotInProgress", message.clone());
                events.push(EventSpec::warning("SnapshotNotStarted", message));
            }
            _ => set(
                status,
                false,
                "SnapshotInProgress",
                format!("{operation} waits for backup Job {job}"),
            ),
        },
        Decision::Wait { operation, why } => set(
            status,
            false,
            "SnapshotInProgress",
            format!("{operation} waits for a backup first: {why}"),
        ),
        Decision::Blocked { reason, message } => {
            set(status, false, reason, message.clone());
            events.push(EventSpec::warning(reason, message.clone()));
        }
    }
    events
}

/// The condition's reason and message for a recorded snapshot.
fn recorded_condition(record: &SnapshotStatus) -> (&'static str, String) {
    match record.outcome {
        SnapshotOutcome::Taken => (
            "SnapshotTaken",
            format!(
                "backup Job {} wrote {} before {}",
                record.job.as_deref().unwrap_or("(unnamed)"),
                record.object.as_deref().unwrap_or("its object"),
                record.operation
            ),
        ),
        SnapshotOutcome::Skipped => (
            "SnapshotSkipped",
            format!(
                "{} ran without a backup first: spec.backup.beforeDisruption is Skip",
                record.operation
            ),
        ),
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
