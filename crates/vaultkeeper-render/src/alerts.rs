//! The alerts of one VaultCluster, as the rule group of its PrometheusRule.
//!
//! Two sources, each for what only it can see:
//! - Vault's own metrics, scraped by the cluster's ServiceMonitor (target labels
//!   `namespace`, `service`, `pod`): scrape health, the active node, autopilot's quorum
//!   view, leader elections, audit and request failures.
//! - The operator's metrics (labels `namespace` and `name` naming the VaultCluster, kept
//!   by the chart's ServiceMonitor with `honorLabels`): sealed pods (a sealed node refuses
//!   `sys/metrics`, so only the operator sees it sealed), backups, the metrics token,
//!   certificates and reconcile errors.
//!
//! Every alert carries `summary`, `description`, a `runbook` with the commands to run for
//! this very cluster, and a `runbook_url` into docs/monitoring.md. Thresholds that depend
//! on the spec (backup schedule, token period) are computed here, so the rule says in
//! numbers what "stale" and "about to expire" mean for this cluster.

use vaultkeeper_api::{Duration, Flavor, ScrapeScope, TlsMode, longest_gap_seconds};

use crate::Scope;

/// Where the runbook section of every alert lives.
pub const RUNBOOK_BASE: &str =
    "https://github.com/vaultkeeper/vaultkeeper/blob/main/docs/monitoring.md";

/// Certificates closer to expiry than this alert (the operator renews its own server
/// certificate 30 days ahead, so for `SelfSigned` the alert means renewal is failing).
pub const TLS_EXPIRY_WARNING_DAYS: i64 = 14;

/// How bad an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Act now: secrets are, or are about to be, unavailable or unrecoverable.
    Critical,
    /// Act today.
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// One alerting rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The alert name, e.g. `VaultSealed`.
    pub name: &'static str,
    /// The PromQL expression.
    pub expr: String,
    /// How long the expression must hold, as a Prometheus duration; `None` fires at once.
    pub hold: Option<String>,
    /// Severity label.
    pub severity: Severity,
    /// One line.
    pub summary: String,
    /// What is wrong and what it means.
    pub description: String,
    /// What to do, with this cluster's names in the commands.
    pub runbook: String,
}

impl Alert {
    fn to_rule(&self, scope: &Scope<'_>) -> serde_json::Value {
        let mut rule = serde_json::json!({
            "alert": self.name,
            "expr": self.expr,
            "labels": {
                "severity": self.severity.as_str(),
                "namespace": scope.namespace(),
                "vaultcluster": scope.names.cluster(),
            },
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook": self.runbook,
                "runbook_url": format!("{RUNBOOK_BASE}#{}", self.name.to_lowercase()),
            },
        });
        if let Some(hold) = &self.hold {
            rule["for"] = hold.clone().into();
        }
        rule
    }
}

/// The rule group of the cluster's PrometheusRule.
pub(crate) fn rule_group(scope: &Scope<'_>) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = alerts(scope).iter().map(|a| a.to_rule(scope)).collect();
    serde_json::json!({
        "name": format!("vaultkeeper.{}.{}", scope.namespace(), scope.names.cluster()),
        "rules": rules,
    })
}

/// Every alert of the cluster, in the order of docs/monitoring.md.
pub(crate) fn alerts(scope: &Scope<'_>) -> Vec<Alert> {
    let spec = &scope.cluster.spec;
    let names = &scope.names;
    let ns = scope.namespace();
    let name = names.cluster();
    let id = format!("{ns}/{name}");
    let scraped = match spec.monitoring.service_monitor.scrape {
        ScrapeScope::AllNodes => names.internal_service(),
        ScrapeScope::ActiveOnly => names.active_service(),
    };
    // Vault's metrics, as the ServiceMonitor's targets label them; the operator's, as
    // it labels them.
    let vault = format!(r#"namespace="{ns}",service="{scraped}""#);
    let op = format!(r#"namespace="{ns}",name="{name}""#);
    let describe = format!("kubectl describe vaultcluster {name} -n {ns}");
    let pods = format!("kubectl get pods -n {ns} -l app.kubernetes.io/instance={name}");
    let cli = scope.layout.binary();
    let operator_logs =
        "kubectl logs -n <operator namespace> deploy/vaultkeeper (look for this cluster's name)";

    let mut out = vec![
        Alert {
            name: "VaultSealed",
            expr: format!("max(vaultkeeper_sealed_pods{{{op}}}) > 0"),
            hold: Some("5m".into()),
            severity: Severity::Critical,
            summary: format!("A Vault pod of {id} has been sealed for 5 minutes"),
            description: format!(
                "The operator sees sealed pods in VaultCluster {id}. It unseals every pod \
                 after every restart, so a pod that stays sealed means unsealing fails: a \
                 sealed pod serves no secrets and counts against the raft quorum."
            ),
            runbook: format!(
                "1. `{describe}`: the Unsealed condition and the Events say which pod and \
                 why. 2. `{pods}`: is the pod restarting? 3. Shamir: check that the keys \
                 Secret {} exists (a KeysMissing condition means it does not; never \
                 re-initialize). Auto-unseal: check that the KMS or transit seal is \
                 reachable from the pod (`kubectl logs` of the pod).",
                spec.keys
                    .secret_name
                    .clone()
                    .unwrap_or_else(|| names.default_keys_secret())
            ),
        },
        Alert {
            name: "VaultNodeDown",
            expr: format!("up{{{vault}}} == 0"),
            hold: Some("5m".into()),
            severity: Severity::Critical,
            summary: format!("Prometheus cannot scrape {{{{ $labels.pod }}}} of {id}"),
            description: format!(
                "Scraping {{{{ $labels.pod }}}} of VaultCluster {id} has failed for 5 \
                 minutes: the pod is down, sealed (a sealed node refuses sys/metrics), or \
                 rejects the metrics token in Secret {}.",
                names.metrics_token_secret()
            ),
            runbook: format!(
                "1. `{pods}` and `kubectl logs -n {ns} {{{{ $labels.pod }}}}`. 2. A \
                 VaultSealed alert for the same cluster means the pod is up but sealed. 3. \
                 If the pod serves, check the token: the MonitoringReady condition in \
                 `{describe}`."
            ),
        },
        Alert {
            name: "VaultNoActiveNode",
            expr: format!("(max(vault_core_active{{{vault}}}) or vector(0)) < 1"),
            hold: Some("2m".into()),
            severity: Severity::Critical,
            summary: format!("VaultCluster {id} has no active node"),
            description: format!(
                "No node of VaultCluster {id} has reported itself active for 2 minutes: \
                 no request can be served, writes and reads alike."
            ),
            runbook: format!(
                "1. `{pods}`: are the pods running and unsealed? 2. `kubectl exec -n {ns} \
                 {} -- {cli} operator raft list-peers` (with a token) shows whether raft \
                 has a leader; losing more than half the voters loses the quorum. 3. \
                 `{describe}` for the operator's view.",
                names.pod(0)
            ),
        },
    ];
    if spec.replicas >= 3 {
        out.push(Alert {
            name: "VaultRaftQuorumAtRisk",
            expr: format!("min(vault_autopilot_failure_tolerance{{{vault}}}) < 1"),
            hold: Some("5m".into()),
            severity: Severity::Critical,
            summary: format!("VaultCluster {id} cannot lose another node"),
            description: format!(
                "Raft autopilot on the active node of VaultCluster {id} reports a failure \
                 tolerance of 0 for 5 minutes: one more node lost loses the quorum, and \
                 with it every read and write."
            ),
            runbook: format!(
                "1. `{pods}`: bring back the missing or failing pods first. 2. `kubectl \
                 exec -n {ns} {} -- {cli} operator raft autopilot state` (with a token) \
                 names the unhealthy servers. 3. Do not delete pods or PVCs of this cluster \
                 until the tolerance is back.",
                names.pod(0)
            ),
        });
    }
    out.push(Alert {
        name: "VaultRaftUnhealthy",
        expr: format!("min(vault_autopilot_healthy{{{vault}}}) < 1"),
        hold: Some("10m".into()),
        severity: Severity::Warning,
        summary: format!("Raft autopilot reports VaultCluster {id} unhealthy"),
        description: format!(
            "Autopilot on the active node of VaultCluster {id} has reported an unhealthy \
             raft configuration for 10 minutes: a peer is lagging, unreachable or not a \
             voter."
        ),
        runbook: format!(
            "`kubectl exec -n {ns} {} -- {cli} operator raft autopilot state` (with a token) \
             names the server and why; `{describe}` shows the raft peers the operator sees.",
            names.pod(0)
        ),
    });
    out.push(leadership_churn(
        spec.monitoring.service_monitor.scrape,
        &vault,
        &id,
        &pods,
    ));
    if scope.layout.flavor() == Flavor::Vault {
        // OpenBao exports no per-status response counter (checked with 2.7.2); for it the
        // audit alert below is the failing-requests signal.
        out.push(Alert {
            name: "VaultRequestErrors",
            expr: format!(
                "sum(rate(vault_core_response_status_code{{{vault},code=~\"5..\"}}[5m])) \
                 / sum(rate(vault_core_response_status_code{{{vault}}}[5m])) > 0.05"
            ),
            hold: Some("10m".into()),
            severity: Severity::Warning,
            summary: format!("More than 5% of the requests to {id} fail with 5xx"),
            description: format!(
                "For 10 minutes more than 5% of the responses of VaultCluster {id} have \
                 been server errors."
            ),
            runbook: format!(
                "`kubectl logs -n {ns} -l app.kubernetes.io/instance={name}` shows the \
                 errors; check storage (PVC full?), the seal, and the audit devices."
            ),
        });
    }
    out.push(Alert {
        name: "VaultAuditLogFailing",
        expr: format!(
            "(sum(increase(vault_audit_log_request_failure{{{vault}}}[5m])) or vector(0)) + \
             (sum(increase(vault_audit_log_response_failure{{{vault}}}[5m])) or vector(0)) > 0"
        ),
        hold: None,
        severity: Severity::Critical,
        summary: format!("Audit logging fails on VaultCluster {id}"),
        description: format!(
            "An audit device of VaultCluster {id} failed to log a request or response. \
             When every audit device fails, Vault refuses the requests themselves."
        ),
        runbook: format!(
            "`kubectl logs -n {ns} -l app.kubernetes.io/instance={name}` names the device; \
             check that the audit volume is mounted and not full (`{pods}`)."
        ),
    });
    out.extend(backup_alerts(scope, &op, &id, &describe));
    if spec.monitoring.enabled {
        out.push(token_alert(scope, &op, &id, &describe));
    }
    if spec.tls.mode != TlsMode::Disabled {
        out.push(Alert {
            name: "VaultCertificateExpiring",
            expr: format!(
                "vaultkeeper_tls_expiry_timestamp_seconds{{{op}}} - time() < {}",
                TLS_EXPIRY_WARNING_DAYS * 86_400
            ),
            hold: Some("10m".into()),
            severity: Severity::Warning,
            summary: format!(
                "The {{{{ $labels.certificate }}}} certificate of {id} expires within \
                 {TLS_EXPIRY_WARNING_DAYS} days"
            ),
            description: format!(
                "The {{{{ $labels.certificate }}}} certificate of VaultCluster {id} expires \
                 in less than {TLS_EXPIRY_WARNING_DAYS} days; once it has, clients and raft \
                 peers refuse the nodes."
            ),
            runbook: match spec.tls.mode {
                TlsMode::SelfSigned => format!(
                    "The operator renews its own server certificate 30 days and its CA 365 \
                     days ahead, so renewal is failing: the TLSReady condition in \
                     `{describe}` and {operator_logs} say why."
                ),
                TlsMode::CertManager => format!(
                    "cert-manager renews this certificate: `kubectl describe certificate -n \
                     {ns}` and the issuer's status say why it has not; `{describe}` shows \
                     TLSReady."
                ),
                _ => format!(
                    "The certificate comes from your Secret {}: replace it with a renewed \
                     one; the operator rolls the pods onto it.",
                    spec.tls
                        .secret_name
                        .as_deref()
                        .unwrap_or("(spec.tls.secretName)")
                ),
            },
        });
    }
    out.push(Alert {
        name: "VaultClusterNotReady",
        expr: format!("max(vaultkeeper_cluster_ready{{{op}}}) < 1"),
        hold: Some("15m".into()),
        severity: Severity::Warning,
        summary: format!("VaultCluster {id} has not been Ready for 15 minutes"),
        description: format!(
            "The Ready condition of VaultCluster {id} has been False for 15 minutes."
        ),
        runbook: format!("`{describe}`: the conditions and Events say what is missing."),
    });
    out.push(Alert {
        name: "VaultkeeperReconcileErrors",
        expr: format!("sum by (reason) (rate(vaultkeeper_reconcile_errors_total{{{op}}}[5m])) > 0"),
        hold: Some("15m".into()),
        severity: Severity::Warning,
        summary: format!("The operator keeps failing to reconcile {id}: {{{{ $labels.reason }}}}"),
        description: format!(
            "Reconciling VaultCluster {id} has failed with {{{{ $labels.reason }}}} for 15 \
             minutes: changes to the spec are not applied and pods may not be unsealed."
        ),
        runbook: format!(
            "`{describe}` (Events) and {operator_logs}; a SpecValid=False condition names \
             the field to fix."
        ),
    });
    out.push(Alert {
        name: "VaultkeeperMetricsAbsent",
        expr: format!("absent(vaultkeeper_cluster_ready{{{op}}})"),
        hold: Some("15m".into()),
        severity: Severity::Warning,
        summary: format!("No operator metrics for {id}: its alerts cannot fire"),
        description: format!(
            "Prometheus has no vaultkeeper metrics for VaultCluster {id}, so the alerts on \
             sealed pods, backups, the metrics token and certificates cannot fire. The \
             operator is down, not scraped, or scraped without honorLabels."
        ),
        runbook: "Install the operator chart with serviceMonitor.enabled=true (its \
                  ServiceMonitor keeps the per-cluster namespace label with honorLabels) and \
                  check that the operator pod runs."
            .to_owned(),
    });
    out.push(Alert {
        name: "VaultMetricsAbsent",
        expr: format!("absent(up{{{vault}}})"),
        hold: Some("15m".into()),
        severity: Severity::Warning,
        summary: format!("Prometheus does not scrape {id}"),
        description: format!(
            "Prometheus has no scrape target for VaultCluster {id}: the alerts on Vault's \
             own metrics cannot fire."
        ),
        runbook: format!(
            "Check that your Prometheus selects the ServiceMonitor {} in namespace {ns} \
             (spec.monitoring.serviceMonitor.labels must match its serviceMonitorSelector, \
             and its namespace its serviceMonitorNamespaceSelector).",
            names.monitoring()
        ),
    });
    out
}

fn leadership_churn(scrape: ScrapeScope, vault: &str, id: &str, pods: &str) -> Alert {
    // Every pod is scraped in AllNodes, so each election flips vault_core_active on the
    // new leader (and the old one, when it lives): more than four flips is more than two
    // elections. With only the active node scraped, count the leader transitions.
    let expr = match scrape {
        ScrapeScope::AllNodes => format!("sum(changes(vault_core_active{{{vault}}}[1h])) > 4"),
        ScrapeScope::ActiveOnly => {
            format!("sum(increase(vault_raft_state_leader{{{vault}}}[1h])) > 2")
        }
    };
    Alert {
        name: "VaultLeadershipChurn",
        expr,
        hold: None,
        severity: Severity::Warning,
        summary: format!("VaultCluster {id} changed leaders more than twice in an hour"),
        description: format!(
            "VaultCluster {id} has elected a new leader more than twice within an hour; \
             every election interrupts requests. Pods restarting, nodes starved of CPU or \
             a slow network between them are the usual causes."
        ),
        runbook: format!(
            "`{pods}` (restarts?), `kubectl top pods` (CPU throttling?), and the pods' logs \
             around the elections."
        ),
    }
}

fn backup_alerts(scope: &Scope<'_>, op: &str, id: &str, describe: &str) -> Vec<Alert> {
    let backup = &scope.cluster.spec.backup;
    if !backup.enabled {
        return Vec::new();
    }
    let cronjob = scope.names.backup();
    let ns = scope.namespace();
    let name = scope.names.cluster();
    let mut out = vec![Alert {
        name: "VaultBackupFailing",
        expr: format!("max(vaultkeeper_backup_healthy{{{op}}}) < 1"),
        hold: Some("15m".into()),
        severity: Severity::Warning,
        summary: format!("Backups of {id} are unhealthy"),
        description: format!(
            "The BackupHealthy condition of VaultCluster {id} has been False for 15 \
             minutes: the last backup failed, none succeeded yet in two periods, or backups \
             are suspended."
        ),
        runbook: format!(
            "`{describe}` gives the reason; `kubectl logs -n {ns} -l \
             app.kubernetes.io/instance={name},app.kubernetes.io/component=backup` the \
             Job's own words. To try again now: `kubectl create job \
             --from=cronjob/{cronjob} -n {ns} {cronjob}-now`."
        ),
    }];
    if let Some(period) = longest_gap_seconds(&backup.schedule) {
        let allowed = period.saturating_mul(2);
        out.push(Alert {
            name: "VaultBackupStale",
            expr: format!(
                "time() - max(vaultkeeper_backup_last_success_timestamp_seconds{{{op}}}) > \
                 {allowed}"
            ),
            hold: None,
            severity: Severity::Critical,
            summary: format!(
                "No successful backup of {id} for {}",
                human_duration(allowed)
            ),
            description: format!(
                "The last successful backup of VaultCluster {id} is older than two periods \
                 of its schedule ({}: {} allowed). A total loss now loses everything since.",
                backup.schedule,
                human_duration(allowed)
            ),
            runbook: format!(
                "`{describe}` and `kubectl get jobs -n {ns} -l \
                 app.kubernetes.io/instance={name},app.kubernetes.io/component=backup`: is the CronJob suspended, failing, or \
                 not scheduled? Run one now: `kubectl create job --from=cronjob/{cronjob} -n \
                 {ns} {cronjob}-now`."
            ),
        });
    }
    out
}

fn token_alert(scope: &Scope<'_>, op: &str, id: &str, describe: &str) -> Alert {
    let monitoring = &scope.cluster.spec.monitoring;
    let period = monitoring
        .token_period
        .parse::<Duration>()
        .ok()
        .map(Duration::as_seconds);
    let gap = longest_gap_seconds(&monitoring.token_renew_schedule);
    // Right before a scheduled renewal at least `period - gap` is left; half of that left
    // means a renewal was missed, with time to spare before the token lapses.
    let threshold = match (period, gap) {
        (Some(p), Some(g)) if p > g => (p - g) / 2,
        _ => 86_400,
    };
    let cronjob = scope.names.metrics_token_job();
    let ns = scope.namespace();
    Alert {
        name: "VaultMetricsTokenExpiring",
        expr: format!(
            "max(vaultkeeper_metrics_token_expiry_timestamp_seconds{{{op}}}) - time() < \
             {threshold}"
        ),
        hold: Some("10m".into()),
        severity: Severity::Warning,
        summary: format!(
            "The metrics token of {id} lapses within {}",
            human_duration(threshold)
        ),
        description: format!(
            "The metrics token in Secret {} lapses in less than {}: a renewal by CronJob \
             {cronjob} was missed. Once it lapses, Prometheus can no longer scrape the \
             cluster.",
            scope.names.metrics_token_secret(),
            human_duration(threshold)
        ),
        runbook: format!(
            "`{describe}` (MonitoringReady) and `kubectl logs -n {ns} -l \
             app.kubernetes.io/instance={},app.kubernetes.io/component=metrics-token`; \
             renew now: `kubectl create job --from=cronjob/{cronjob} -n {ns} {cronjob}-now`.",
            scope.names.cluster()
        ),
    }
}

/// `172800` → `2d`, `5400` → `1h30m`: how long, for a person.
pub fn human_duration(seconds: i64) -> String {
    let mut rest = seconds.max(0);
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(human_duration(172_800), "2d");
        assert_eq!(human_duration(5_400), "1h30m");
        assert_eq!(human_duration(302_400), "3d12h");
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(-5), "0s");
    }
}
