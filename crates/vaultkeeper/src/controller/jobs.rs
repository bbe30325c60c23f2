//! What the CronJobs' Jobs reported, folded into the status: `status.backup` and
//! `BackupHealthy` from the backup Jobs, `status.metricsToken` and `MonitoringReady` from
//! the metrics-token Secret and Jobs, with the Events and metric updates that go with
//! them. Pure: the reads are in `observe`, the Events and metrics are carried out by the
//! pipeline.

use std::collections::HashMap;

use vaultkeeper_api::{
    BackupStatus, ClusterNames, MetricsTokenStatus, VaultClusterStatus, condition,
};

use super::events::EventSpec;
use crate::backup::{self, JobRun, RunOutcome};
use crate::monitoring;

/// What folding one CronJob's Jobs changed besides the status.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct JobsReport {
    /// Events to publish (one per newly finished run worth telling).
    pub(crate) events: Vec<EventSpec>,
    /// Newly seen failed runs (the failure counter's increment).
    pub(crate) failures: u64,
    /// What the health gauges should say.
    pub(crate) gauges: Gauges,
    /// The finished runs to remember, so their logs are not read again (`None`: keep
    /// what is remembered).
    pub(crate) remember: Option<HashMap<String, JobRun>>,
}

/// What the gauges of a sub-controller should do.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Gauges {
    /// Leave them as they are (the read failed).
    #[default]
    Leave,
    /// Remove them (the sub-controller is off).
    Clear,
    /// Set them: healthy or not, and the backup schedule's longest gap when known.
    Set {
        /// The condition's status.
        healthy: bool,
        /// The schedule's longest gap, in seconds (backups only).
        period_seconds: Option<i64>,
    },
}

/// Folds the backup Jobs into `status.backup` and `BackupHealthy`. `status` is the one
/// this pass computed (it starts from the previous backup record); `previous` the one
/// read with the VaultCluster.
pub(crate) fn fold_backups(
    spec: &vaultkeeper_api::BackupSpec,
    generation: Option<i64>,
    previous: Option<&BackupStatus>,
    observed: &Result<(Option<jiff::Timestamp>, Vec<JobRun>), String>,
    status: &mut VaultClusterStatus,
    now: jiff::Timestamp,
) -> JobsReport {
    if !spec.enabled {
        status.backup = None;
        backup::set_condition(&mut status.conditions, None, generation, now);
        return JobsReport {
            gauges: Gauges::Clear,
            ..JobsReport::default()
        };
    }
    let Ok((since, runs)) = observed else {
        return JobsReport::default();
    };
    let mut report = JobsReport::default();
    for run in backup::new_runs(previous, runs) {
        match &run.outcome {
            RunOutcome::Succeeded {
                object, size_bytes, ..
            } => report.events.push(EventSpec::normal(
                "BackupSucceeded",
                format!(
                    "backup Job {} wrote {} ({} bytes)",
                    run.name,
                    object.as_deref().unwrap_or("an object"),
                    size_bytes.unwrap_or_default()
                ),
            )),
            RunOutcome::Failed(reason) => {
                report.failures += 1;
                report.events.push(EventSpec::warning(
                    "BackupFailed",
                    format!("backup Job {} failed: {reason}", run.name),
                ));
            }
            RunOutcome::Running => {}
        }
    }
    let folded = backup::fold_runs(previous, runs);
    let period = vaultkeeper_api::longest_gap_seconds(&spec.schedule);
    let health = backup::health(backup::HealthInputs {
        status: &folded,
        period_seconds: period,
        since: *since,
        suspended: spec.suspend,
        now,
    });
    backup::set_condition(&mut status.conditions, Some(&health), generation, now);
    status.backup = (folded != BackupStatus::default()).then_some(folded);
    report.gauges = Gauges::Set {
        healthy: health.healthy,
        period_seconds: period,
    };
    report.remember = Some(super::observe::finished_runs(runs));
    report
}

/// What the metrics-token side observed.
pub(crate) struct TokenObserved<'a> {
    /// The token as its Secret describes it, or why it could not be read.
    pub(crate) token: &'a Result<Option<MetricsTokenStatus>, String>,
    /// The metrics-token Jobs, or why they could not be read.
    pub(crate) runs: &'a Result<Vec<JobRun>, String>,
    /// Runs already read in earlier passes.
    pub(crate) known: &'a HashMap<String, JobRun>,
    /// Whether the prometheus-operator's CRDs are installed.
    pub(crate) prometheus_operator: bool,
}

/// Folds the metrics token into `status.metricsToken` and `MonitoringReady`: a Warning
/// for every renewal that failed since the condition last changed.
pub(crate) fn fold_metrics_token(
    vc: &vaultkeeper_api::VaultCluster,
    observed: TokenObserved<'_>,
    status: &mut VaultClusterStatus,
    now: jiff::Timestamp,
) -> JobsReport {
    let generation = vc.metadata.generation;
    if !vc.spec.monitoring.enabled {
        status.metrics_token = None;
        backup::set_named_condition(
            &mut status.conditions,
            condition::MONITORING_READY,
            None,
            generation,
            now,
        );
        return JobsReport {
            gauges: Gauges::Clear,
            ..JobsReport::default()
        };
    }
    let Ok(token) = observed.token else {
        return JobsReport::default();
    };
    let names = ClusterNames::new(vc.metadata.name.as_deref().unwrap_or_default());
    let namespace = vc.metadata.namespace.clone().unwrap_or_default();
    let runs: &[JobRun] = observed.runs.as_deref().unwrap_or_default();
    let mut report = JobsReport::default();
    let condition_before = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::MONITORING_READY);
    for run in runs {
        if let (RunOutcome::Failed(reason), Some(finished)) = (&run.outcome, run.finished)
            && !observed.known.contains_key(&run.name)
            && condition_before
                .is_none_or(|c| c.last_transition_time.0 < finished || c.status == "True")
        {
            report.failures += 1;
            report.events.push(EventSpec::warning(
                "MetricsTokenRenewalFailed",
                format!("metrics-token Job {} failed: {reason}", run.name),
            ));
        }
    }
    let last_run = runs
        .iter()
        .filter(|r| r.finished.is_some())
        .max_by_key(|r| r.finished);
    let health = monitoring::health(monitoring::MonitoringInputs {
        prometheus_operator: observed.prometheus_operator,
        token: token.as_ref(),
        last_run,
        secret: &names.metrics_token_secret(),
        cronjob: &names.metrics_token_job(),
        namespace: &namespace,
        now,
    });
    backup::set_named_condition(
        &mut status.conditions,
        condition::MONITORING_READY,
        Some(&health),
        generation,
        now,
    );
    status.metrics_token = token.clone();
    report.gauges = Gauges::Set {
        healthy: health.healthy,
        period_seconds: None,
    };
    report.remember = observed
        .runs
        .as_ref()
        .ok()
        .map(|runs| super::observe::finished_runs(runs));
    report
}
