//! The operator's Prometheus metrics, served on `/metrics`.
//!
//! Reconcile counts, errors by reason, duration; per-cluster gauges (pods ready, sealed,
//! unsealed, cluster ready); unseal operations; leadership. Error reasons are the
//! controller error enum's variant names, so alerts can match them.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels naming one VaultCluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Labels of a reconcile error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The cluster's namespace.
    pub namespace: String,
    /// The cluster's name.
    pub name: String,
    /// The error variant.
    pub reason: String,
}

/// Labels of an unseal operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnsealLabels {
    /// The cluster's namespace.
    pub namespace: String,
    /// The cluster's name.
    pub name: String,
    /// `success` or `failure`.
    pub result: String,
}

/// Labels of a certificate's expiry.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    /// The cluster's namespace.
    pub namespace: String,
    /// The cluster's name.
    pub name: String,
    /// `ca` or `server`.
    pub certificate: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Reconcile passes started.
    pub reconciles: Family<ClusterLabels, Counter>,
    /// Reconcile passes that failed, by reason.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration in seconds.
    pub reconcile_duration: Histogram,
    /// Pods that are ready (initialized, unsealed, serving).
    pub ready_pods: Family<ClusterLabels, Gauge>,
    /// Pods that answered sealed.
    pub sealed_pods: Family<ClusterLabels, Gauge>,
    /// Pods that are unsealed.
    pub unsealed_pods: Family<ClusterLabels, Gauge>,
    /// 1 when the cluster's Ready condition is True.
    pub cluster_ready: Family<ClusterLabels, Gauge>,
    /// Unseal operations (one per pod unsealed), by result.
    pub unseal_operations: Family<UnsealLabels, Counter>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge<i64, AtomicI64>,
    /// Write requests the last reconcile of a cluster sent (0 on a pass with nothing to do).
    pub writes_last_pass: Family<ClusterLabels, Gauge<u64, AtomicU64>>,
    /// When the last successful backup finished (Unix seconds).
    pub backup_last_success: Family<ClusterLabels, Gauge<f64, AtomicU64>>,
    /// The longest gap between two runs of the backup schedule, in seconds.
    pub backup_schedule_period: Family<ClusterLabels, Gauge<i64, AtomicI64>>,
    /// How long the last successful backup took, in seconds.
    pub backup_last_duration: Family<ClusterLabels, Gauge<f64, AtomicU64>>,
    /// Size of the last successful backup, in bytes.
    pub backup_last_size: Family<ClusterLabels, Gauge<i64, AtomicI64>>,
    /// Backup Jobs seen failing.
    pub backup_failures: Family<ClusterLabels, Counter>,
    /// 1 when the BackupHealthy condition is True.
    pub backup_healthy: Family<ClusterLabels, Gauge>,
    /// When each certificate expires (Unix seconds).
    pub tls_expiry: Family<CertificateLabels, Gauge<i64, AtomicI64>>,
    /// When the metrics token lapses unless renewed (Unix seconds).
    pub metrics_token_expiry: Family<ClusterLabels, Gauge<i64, AtomicI64>>,
    /// Metrics-token Jobs seen failing.
    pub metrics_token_failures: Family<ClusterLabels, Counter>,
    /// 1 when the MonitoringReady condition is True.
    pub monitoring_ready: Family<ClusterLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric, prefixed `vaultkeeper_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vaultkeeper");
        let reconciles = Family::default();
        registry.register("reconciles", "Reconcile passes started", reconciles.clone());
        let reconcile_errors = Family::default();
        registry.register(
            "reconcile_errors",
            "Reconcile passes that failed, by reason",
            reconcile_errors.clone(),
        );
        let reconcile_duration =
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconcile passes",
            reconcile_duration.clone(),
        );
        let ready_pods = Family::default();
        registry.register(
            "ready_pods",
            "Vault pods that are ready",
            ready_pods.clone(),
        );
        let sealed_pods = Family::default();
        registry.register(
            "sealed_pods",
            "Vault pods that answered sealed",
            sealed_pods.clone(),
        );
        let unsealed_pods = Family::default();
        registry.register(
            "unsealed_pods",
            "Vault pods that are unsealed",
            unsealed_pods.clone(),
        );
        let cluster_ready = Family::default();
        registry.register(
            "cluster_ready",
            "1 when the VaultCluster's Ready condition is True",
            cluster_ready.clone(),
        );
        let unseal_operations = Family::default();
        registry.register(
            "unseal_operations",
            "Pods unsealed by the operator, by result",
            unseal_operations.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica is the leader",
            leader.clone(),
        );
        let writes_last_pass = Family::default();
        registry.register(
            "writes_last_pass",
            "Write requests of the last reconcile of a cluster",
            writes_last_pass.clone(),
        );
        let backup_last_success = Family::default();
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When the last successful backup finished",
            backup_last_success.clone(),
        );
        let backup_schedule_period = Family::default();
        registry.register(
            "backup_schedule_period_seconds",
            "Longest gap between two runs of the backup schedule",
            backup_schedule_period.clone(),
        );
        let backup_last_duration = Family::default();
        registry.register(
            "backup_last_duration_seconds",
            "How long the last successful backup took",
            backup_last_duration.clone(),
        );
        let backup_last_size = Family::default();
        registry.register(
            "backup_last_size_bytes",
            "Size of the last successful backup object",
            backup_last_size.clone(),
        );
        let backup_failures = Family::default();
        registry.register(
            "backup_failures",
            "Backup Jobs seen failing",
            backup_failures.clone(),
        );
        let backup_healthy = Family::default();
        registry.register(
            "backup_healthy",
            "1 when the BackupHealthy condition is True",
            backup_healthy.clone(),
        );
        let tls_expiry = Family::default();
        registry.register(
            "tls_expiry_timestamp_seconds",
            "When the cluster's CA or server certificate expires",
            tls_expiry.clone(),
        );
        let metrics_token_expiry = Family::default();
        registry.register(
            "metrics_token_expiry_timestamp_seconds",
            "When the metrics token lapses unless renewed",
            metrics_token_expiry.clone(),
        );
        let metrics_token_failures = Family::default();
        registry.register(
            "metrics_token_renewal_failures",
            "Metrics-token Jobs seen failing",
            metrics_token_failures.clone(),
        );
        let monitoring_ready = Family::default();
        registry.register(
            "monitoring_ready",
            "1 when the MonitoringReady condition is True",
            monitoring_ready.clone(),
        );
        Self {
            registry,
            metrics_token_failures,
            monitoring_ready,
            backup_last_success,
            backup_schedule_period,
            backup_last_duration,
            backup_last_size,
            backup_failures,
            backup_healthy,
            tls_expiry,
            metrics_token_expiry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            ready_pods,
            sealed_pods,
            unsealed_pods,
            cluster_ready,
            unseal_operations,
            leader,
            writes_last_pass,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Forgets a deleted cluster's series, so dashboards do not show ghosts.
    pub fn forget(&self, labels: &ClusterLabels) {
        self.ready_pods.remove(labels);
        self.sealed_pods.remove(labels);
        self.unsealed_pods.remove(labels);
        self.cluster_ready.remove(labels);
        self.writes_last_pass.remove(labels);
        self.backup_last_success.remove(labels);
        self.backup_schedule_period.remove(labels);
        self.backup_last_duration.remove(labels);
        self.backup_last_size.remove(labels);
        self.backup_failures.remove(labels);
        self.backup_healthy.remove(labels);
        self.metrics_token_expiry.remove(labels);
        self.metrics_token_failures.remove(labels);
        self.monitoring_ready.remove(labels);
        for certificate in ["ca", "server"] {
            self.tls_expiry.remove(&CertificateLabels {
                namespace: labels.namespace.clone(),
                name: labels.name.clone(),
                certificate: certificate.to_owned(),
            });
        }
    }
}
