//! The metrics token as the operator sees it: `status.metricsToken` from the annotations
//! the metrics-token job writes on its Secret, the `MonitoringReady` condition, an Event
//! and a metric for every failed renewal, and whether the prometheus-operator is there to
//! take the ServiceMonitor and PrometheusRule. Judging is pure; reading is in the
//! controller.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use vaultkeeper_api::MetricsTokenStatus;

use crate::backup::{Health, JobRun, JobSource, RunOutcome, clip};

/// The annotation on the metrics-token Secret with the token's expiry (RFC 3339).
pub const EXPIRY_ANNOTATION: &str = "vaultkeeper.io/metrics-token-expiry";
/// The annotation with the time of the last renewal or re-issue (RFC 3339).
pub const RENEWED_ANNOTATION: &str = "vaultkeeper.io/metrics-token-renewed-at";

/// The metrics-token CronJob of a cluster.
pub fn job_source(cronjob: &str) -> JobSource<'_> {
    JobSource {
        cronjob,
        component: "metrics-token",
        container: "metrics-token",
        parse: outcome_from_log,
    }
}

/// `status.metricsToken` from the Secret's annotations; `None` before the first run.
pub fn token_status(annotations: Option<&BTreeMap<String, String>>) -> Option<MetricsTokenStatus> {
    let annotations = annotations?;
    let time = |key: &str| {
        annotations
            .get(key)
            .and_then(|v| v.parse::<jiff::Timestamp>().ok())
            .map(Time)
    };
    let status = MetricsTokenStatus {
        expiry_time: time(EXPIRY_ANNOTATION),
        last_renewal_time: time(RENEWED_ANNOTATION),
    };
    (status != MetricsTokenStatus::default()).then_some(status)
}

/// Parses the JSON line `vaultkeeper metrics-token` printed (`result`: renewed, reissued
/// or failed).
pub fn outcome_from_log(log: &str) -> Option<RunOutcome> {
    let line = log
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{') && l.contains("\"result\""))?;
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    match value["result"].as_str()? {
        "renewed" | "reissued" => Some(RunOutcome::Succeeded {
            object: value["secret"].as_str().map(str::to_owned),
            size_bytes: None,
            duration_seconds: value["duration_seconds"].as_f64(),
        }),
        "failed" => Some(RunOutcome::Failed(clip(
            value["error"].as_str().unwrap_or("the renewal failed"),
        ))),
        _ => None,
    }
}

/// Facts [`health`] judges.
#[derive(Clone, Copy, Debug)]
pub struct MonitoringInputs<'a> {
    /// The prometheus-operator's CRDs are installed.
    pub prometheus_operator: bool,
    /// What the Secret says about the token.
    pub token: Option<&'a MetricsTokenStatus>,
    /// The newest finished run of the metrics-token CronJob.
    pub last_run: Option<&'a JobRun>,
    /// The Secret and CronJob names, for messages.
    pub secret: &'a str,
    /// The CronJob's name.
    pub cronjob: &'a str,
    /// The cluster's namespace.
    pub namespace: &'a str,
    /// The clock value of this pass.
    pub now: jiff::Timestamp,
}

/// Judges monitoring: ready when the token is valid, its last renewal did not fail, and
/// the prometheus-operator is there to scrape with it.
pub fn health(inputs: MonitoringInputs<'_>) -> Health {
    let MonitoringInputs {
        prometheus_operator,
        token,
        last_run,
        secret,
        cronjob,
        namespace,
        now,
    } = inputs;
    let renewed = token
        .and_then(|t| t.last_renewal_time.as_ref())
        .map(|t| t.0);
    if let Some(run) = last_run
        && let (RunOutcome::Failed(reason), Some(finished)) = (&run.outcome, run.finished)
        && renewed.is_none_or(|r| r < finished)
    {
        return Health {
            healthy: false,
            reason: "RenewalFailed",
            message: format!(
                "the metrics-token Job {} failed: {reason}; the token in Secret {secret} \
                 lapses at its expiry unless a run succeeds",
                run.name
            ),
        };
    }
    let expiry = token.and_then(|t| t.expiry_time.as_ref()).map(|t| t.0);
    match expiry {
        None => {
            return Health {
                healthy: false,
                reason: "TokenPending",
                message: format!(
                    "no metrics token yet: the first run of CronJob {cronjob} issues it; to \
                     issue it now: kubectl create job --from=cronjob/{cronjob} -n {namespace} \
                     {cronjob}-now"
                ),
            };
        }
        Some(e) if e <= now => {
            return Health {
                healthy: false,
                reason: "TokenExpired",
                message: format!(
                    "the metrics token in Secret {secret} expired at {e}; the next run of \
                     CronJob {cronjob} re-issues it"
                ),
            };
        }
        Some(_) => {}
    }
    if !prometheus_operator {
        return Health {
            healthy: false,
            reason: "PrometheusOperatorMissing",
            message: format!(
                "the prometheus-operator's CRDs (monitoring.coreos.com) are not installed, so \
                 no ServiceMonitor or PrometheusRule is applied; the token in Secret {secret} \
                 is kept alive for any scraper you configure"
            ),
        };
    }
    Health {
        healthy: true,
        reason: "TokenValid",
        message: format!(
            "the metrics token is valid until {}",
            expiry.map(|e| e.to_string()).unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp")
    }

    fn token(expiry: i64, renewed: i64) -> MetricsTokenStatus {
        MetricsTokenStatus {
            expiry_time: Some(Time(at(expiry))),
            last_renewal_time: Some(Time(at(renewed))),
        }
    }

    #[test]
    fn the_status_comes_from_the_secret_annotations() {
        let annotations = BTreeMap::from([
            (EXPIRY_ANNOTATION.to_owned(), at(1000).to_string()),
            (RENEWED_ANNOTATION.to_owned(), at(10).to_string()),
            ("other".to_owned(), "x".to_owned()),
        ]);
        assert_eq!(token_status(Some(&annotations)), Some(token(1000, 10)));
        assert_eq!(token_status(None), None);
        assert_eq!(token_status(Some(&BTreeMap::new())), None);
        let garbage = BTreeMap::from([(EXPIRY_ANNOTATION.to_owned(), "soon".to_owned())]);
        assert_eq!(
            token_status(Some(&garbage)),
            None,
            "unparsable times are not shown"
        );
    }

    #[test]
    fn the_outcome_line_of_a_run_is_read() {
        let ok = r#"{"result":"reissued","reason":"missing","expiry":"2027-01-01T00:00:00Z","secret":"v-metrics-token","duration_seconds":0.4}"#;
        assert!(matches!(
            outcome_from_log(ok),
            Some(RunOutcome::Succeeded { object: Some(s), .. }) if s == "v-metrics-token"
        ));
        let failed = "{\"result\":\"failed\",\"secret\":\"s\",\"duration_seconds\":0.1,\"error\":\"permission denied\"}\nerror: permission denied";
        assert_eq!(
            outcome_from_log(failed),
            Some(RunOutcome::Failed("permission denied".into()))
        );
        assert_eq!(outcome_from_log("nothing"), None);
    }

    fn judge(
        prometheus_operator: bool,
        token: Option<&MetricsTokenStatus>,
        last_run: Option<&JobRun>,
        now: i64,
    ) -> Health {
        health(MonitoringInputs {
            prometheus_operator,
            token,
            last_run,
            secret: "v-metrics-token",
            cronjob: "v-metrics-token",
            namespace: "vault",
            now: at(now),
        })
    }

    #[test]
    fn health_table() {
        let valid = token(10_000, 100);
        let failed_after = JobRun {
            name: "v-metrics-token-2".into(),
            finished: Some(at(200)),
            outcome: RunOutcome::Failed("permission denied".into()),
        };
        let failed_before = JobRun {
            finished: Some(at(50)),
            ..failed_after.clone()
        };
        let cases: [(&str, Health, bool, &str); 6] = [
            (
                "valid",
                judge(true, Some(&valid), None, 300),
                true,
                "TokenValid",
            ),
            (
                "no token yet",
                judge(true, None, None, 0),
                false,
                "TokenPending",
            ),
            (
                "expired",
                judge(true, Some(&valid), None, 10_000),
                false,
                "TokenExpired",
            ),
            (
                "last run failed",
                judge(true, Some(&valid), Some(&failed_after), 300),
                false,
                "RenewalFailed",
            ),
            (
                "failed before the last renewal",
                judge(true, Some(&valid), Some(&failed_before), 300),
                true,
                "TokenValid",
            ),
            (
                "no prometheus-operator",
                judge(false, Some(&valid), None, 300),
                false,
                "PrometheusOperatorMissing",
            ),
        ];
        for (what, h, healthy, reason) in cases {
            assert_eq!(
                (h.healthy, h.reason),
                (healthy, reason),
                "{what}: {}",
                h.message
            );
        }
        let pending = judge(true, None, None, 0);
        assert!(
            pending
                .message
                .contains("kubectl create job --from=cronjob/v-metrics-token"),
            "{}",
            pending.message
        );
    }
}
