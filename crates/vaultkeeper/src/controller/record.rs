//! What a pass tells the metrics: the per-cluster gauges from the status it computed, the
//! unseal counter from what the lifecycle did, and the backup and metrics-token gauges
//! from what their Jobs reported.

use vaultkeeper_api::{BackupStatus, VaultClusterStatus, condition};
use vaultkeeper_vault::decide::Action as LifecycleAction;
use vaultkeeper_vault::lifecycle::{Done, Outcome};

use super::jobs::Gauges;
use crate::metrics::{CertificateLabels, ClusterLabels, Metrics, UnsealLabels};

/// Counts the unseal operations of a pass by result.
pub(crate) fn unseals(metrics: &Metrics, labels: &ClusterLabels, outcomes: &[Outcome]) {
    for outcome in outcomes {
        let result = match (&outcome.action, &outcome.result) {
            (LifecycleAction::Unseal { .. } | LifecycleAction::Join { .. }, Ok(Done::Unsealed)) => {
                "success"
            }
            (LifecycleAction::Unseal { .. } | LifecycleAction::Join { .. }, Err(_)) => "failure",
            _ => continue,
        };
        metrics
            .unseal_operations
            .get_or_create(&UnsealLabels {
                namespace: labels.namespace.clone(),
                name: labels.name.clone(),
                result: result.to_owned(),
            })
            .inc();
    }
}

/// The backup gauges and failure counter.
pub(crate) fn backups(
    metrics: &Metrics,
    labels: &ClusterLabels,
    gauges: &Gauges,
    backup: Option<&BackupStatus>,
    failures: u64,
) {
    if failures > 0 {
        metrics
            .backup_failures
            .get_or_create(labels)
            .inc_by(failures);
    }
    match gauges {
        Gauges::Leave => {}
        Gauges::Clear => {
            metrics.backup_last_success.remove(labels);
            metrics.backup_last_duration.remove(labels);
            metrics.backup_schedule_period.remove(labels);
            metrics.backup_last_size.remove(labels);
            metrics.backup_healthy.remove(labels);
        }
        Gauges::Set {
            healthy,
            period_seconds,
        } => {
            if let Some(t) = backup.and_then(|b| b.last_success_time.as_ref()) {
                metrics
                    .backup_last_success
                    .get_or_create(labels)
                    .set(t.0.as_millisecond() as f64 / 1000.0);
            }
            if let Some(d) = backup.and_then(|b| b.last_duration_seconds) {
                metrics.backup_last_duration.get_or_create(labels).set(d);
            }
            if let Some(size) = backup.and_then(|b| b.last_size_bytes) {
                metrics.backup_last_size.get_or_create(labels).set(size);
            }
            if let Some(p) = period_seconds {
                metrics.backup_schedule_period.get_or_create(labels).set(*p);
            }
            metrics
                .backup_healthy
                .get_or_create(labels)
                .set(i64::from(*healthy));
        }
    }
}

/// The monitoring gauge and the metrics-token failure counter.
pub(crate) fn metrics_token(
    metrics: &Metrics,
    labels: &ClusterLabels,
    gauges: &Gauges,
    failures: u64,
) {
    if failures > 0 {
        metrics
            .metrics_token_failures
            .get_or_create(labels)
            .inc_by(failures);
    }
    match gauges {
        Gauges::Leave => {}
        Gauges::Clear => {
            metrics.monitoring_ready.remove(labels);
        }
        Gauges::Set { healthy, .. } => {
            metrics
                .monitoring_ready
                .get_or_create(labels)
                .set(i64::from(*healthy));
        }
    }
}

/// The per-cluster gauges `status` determines.
pub(crate) fn status(metrics: &Metrics, labels: &ClusterLabels, status: &VaultClusterStatus) {
    metrics
        .ready_pods
        .get_or_create(labels)
        .set(i64::from(status.ready_replicas));
    metrics
        .sealed_pods
        .get_or_create(labels)
        .set(i64::from(status.sealed_replicas));
    metrics
        .unsealed_pods
        .get_or_create(labels)
        .set(i64::from(status.unsealed_replicas));
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == condition::READY && c.status == "True");
    metrics
        .cluster_ready
        .get_or_create(labels)
        .set(i64::from(ready));
    let certificates = status.tls.as_ref().map_or([None, None], |t| {
        [t.ca_expiry_time.as_ref(), t.server_expiry_time.as_ref()]
    });
    for (certificate, expiry) in ["ca", "server"].into_iter().zip(certificates) {
        let cert = CertificateLabels {
            namespace: labels.namespace.clone(),
            name: labels.name.clone(),
            certificate: certificate.to_owned(),
        };
        match expiry {
            Some(t) => {
                metrics.tls_expiry.get_or_create(&cert).set(t.0.as_second());
            }
            None => {
                metrics.tls_expiry.remove(&cert);
            }
        }
    }
    match status
        .metrics_token
        .as_ref()
        .and_then(|t| t.expiry_time.as_ref())
    {
        Some(t) => {
            metrics
                .metrics_token_expiry
                .get_or_create(labels)
                .set(t.0.as_second());
        }
        None => {
            metrics.metrics_token_expiry.remove(labels);
        }
    }
}

/// `status.rotation`: what earlier passes recorded, and the rotation this pass completed.
pub(crate) fn rotation(
    previous: Option<&vaultkeeper_api::VaultClusterStatus>,
    done: Option<&super::plan::RotationStep>,
    now: jiff::Timestamp,
) -> Option<vaultkeeper_api::RotationStatus> {
    use super::plan::RotationStep;
    use vaultkeeper_api::RotationDone;
    let mut status = previous.and_then(|s| s.rotation.clone());
    let record = |request: &str| RotationDone {
        request: request.to_owned(),
        completed_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
    };
    match done {
        Some(RotationStep::Rekey { request, .. }) => {
            status.get_or_insert_with(Default::default).rekey = Some(record(request));
        }
        Some(RotationStep::EncryptionKey { request, .. }) => {
            status.get_or_insert_with(Default::default).encryption_key = Some(record(request));
        }
        None => {}
    }
    status
}
