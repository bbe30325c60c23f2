//! Table tests of what a pass decides besides the plan: the TLS keep-or-renew decision and
//! the folding of Job outcomes into status, Events and metrics.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use vaultkeeper_api::{BackupStatus, VaultCluster, VaultClusterStatus, condition};
use vaultkeeper_render::pki;

use super::jobs::{self, Gauges, TokenObserved};
use super::plan_tests::{cluster, now};
use super::tls::{self, PkiStep, TlsObserved};
use crate::backup::{JobRun, RunOutcome};

fn pki_secrets(material: &vaultkeeper_render::PkiMaterial) -> TlsObserved {
    use vaultkeeper_vault::secret::ExposeSecret;
    let secret = |cert: &str, key: &str| {
        Box::new(Secret {
            data: Some(BTreeMap::from([
                ("tls.crt".to_owned(), ByteString(cert.as_bytes().to_vec())),
                ("tls.key".to_owned(), ByteString(key.as_bytes().to_vec())),
            ])),
            ..Secret::default()
        })
    };
    TlsObserved::SelfSigned {
        ca: Some(secret(
            &material.ca_cert_pem,
            material.ca_key_pem.expose_secret(),
        )),
        server: Some(secret(
            &material.server_cert_pem,
            material.server_key_pem.expose_secret(),
        )),
    }
}

#[test]
fn the_internal_pki_is_kept_while_valid_and_renewed_before_it_expires() {
    let vc = cluster(json!({"tls": {"mode": "SelfSigned"}}));
    let clock = |t: jiff::Timestamp| {
        time::OffsetDateTime::from_unix_timestamp(t.as_second()).expect("time")
    };
    let fresh = pki::issue_new(&vc, "vault", clock(now())).expect("pki");
    let old = pki::issue_new(
        &vc,
        "vault",
        clock(now() - jiff::SignedDuration::from_hours(24 * 340)),
    )
    .expect("pki");
    let renamed =
        cluster(json!({"tls": {"mode": "SelfSigned", "extraDnsNames": ["vault.example.com"]}}));
    let issue_server = |step: &PkiStep| {
        matches!(
            step,
            PkiStep::Issue {
                plan: pki::PkiPlan::IssueServer(_),
                existing: Some(_)
            }
        )
    };
    let none = TlsObserved::SelfSigned {
        ca: None,
        server: None,
    };
    assert!(matches!(
        tls::decide(&vc, "vault", &none, now()),
        PkiStep::Issue {
            plan: pki::PkiPlan::IssueAll(pki::RenewReason::Missing),
            existing: None
        }
    ));
    assert_eq!(
        tls::decide(&vc, "vault", &pki_secrets(&fresh), now()),
        PkiStep::Keep(fresh.clone())
    );
    let step = tls::decide(&vc, "vault", &pki_secrets(&old), now());
    assert!(issue_server(&step), "25 days left: {step:?}");
    let step = tls::decide(&renamed, "vault", &pki_secrets(&fresh), now());
    assert!(issue_server(&step), "a new DNS name: {step:?}");
    assert_eq!(
        tls::decide(&cluster(json!({})), "vault", &TlsObserved::Disabled, now()),
        PkiStep::NotOurs
    );

    // What status and the Event say about a renewal.
    let settled = tls::settle(&vc, "vault", &pki_secrets(&old), now()).expect("issued");
    assert!(
        settled
            .issued
            .as_deref()
            .is_some_and(|r| r.starts_with("new certificate")),
        "{:?}",
        settled.issued
    );
    assert_eq!(settled.problem, None);
    let kept = tls::settle(
        &vc,
        "vault",
        &pki_secrets(&old),
        now() - jiff::SignedDuration::from_hours(24 * 200),
    )
    .expect("kept");
    assert_eq!(kept.issued, None);
}

fn run(name: &str, minutes_ago: i64, outcome: RunOutcome) -> JobRun {
    JobRun {
        name: name.into(),
        finished: Some(now() - jiff::SignedDuration::from_mins(minutes_ago)),
        outcome,
    }
}

fn succeeded() -> RunOutcome {
    RunOutcome::Succeeded {
        object: Some("vault/2027-01-15T00-00-00Z.snap".into()),
        size_bytes: Some(4096),
        duration_seconds: Some(1.5),
    }
}

#[test]
fn backup_job_outcomes_table() {
    let on = cluster(
        json!({"backup": {"enabled": true, "s3": {"bucket": "b", "credentialsSecret": {"name": "s3"}}}}),
    );
    let previous = BackupStatus {
        last_success_time: Some(Time(now() - jiff::SignedDuration::from_hours(1))),
        last_object: Some("vault/older.snap".into()),
        ..BackupStatus::default()
    };
    // (what, spec, what the read gave, reasons of the Events, failures, condition, gauges)
    type Read = Result<(Option<jiff::Timestamp>, Vec<JobRun>), String>;
    type Row<'a> = (
        &'a str,
        &'a VaultCluster,
        Read,
        Vec<&'a str>,
        u64,
        Option<(&'a str, &'a str)>,
    );
    let table: Vec<Row> = vec![
        (
            "a new failed run",
            &on,
            Ok((
                None,
                vec![run("b-1", 5, RunOutcome::Failed("S3 refused".into()))],
            )),
            vec!["BackupFailed"],
            1,
            Some(("False", "BackupFailed")),
        ),
        (
            "a new success",
            &on,
            Ok((None, vec![run("b-2", 5, succeeded())])),
            vec!["BackupSucceeded"],
            0,
            Some(("True", "BackupSucceeded")),
        ),
        (
            "a run still going",
            &on,
            Ok((
                None,
                vec![JobRun {
                    name: "b-3".into(),
                    finished: None,
                    outcome: RunOutcome::Running,
                }],
            )),
            vec![],
            0,
            Some(("True", "BackupSucceeded")),
        ),
        (
            "the Jobs could not be read: status stays",
            &on,
            Err("500".into()),
            vec![],
            0,
            None,
        ),
    ];
    for (what, vc, read, events, failures, want) in table {
        let mut status = VaultClusterStatus {
            backup: Some(previous.clone()),
            ..VaultClusterStatus::default()
        };
        let report = jobs::fold_backups(
            &vc.spec.backup,
            Some(1),
            Some(&previous),
            &read,
            &mut status,
            now(),
        );
        let reasons: Vec<&str> = report.events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, events, "{what}");
        assert_eq!(report.failures, failures, "{what}");
        let got = status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::BACKUP_HEALTHY)
            .map(|c| (c.status.as_str(), c.reason.as_str()));
        assert_eq!(got, want, "{what}");
        match &read {
            Ok((_, runs)) => {
                let finished = runs.iter().filter(|r| r.finished.is_some()).count();
                assert_eq!(report.remember.map(|r| r.len()), Some(finished), "{what}");
                assert!(matches!(report.gauges, Gauges::Set { .. }), "{what}");
            }
            Err(_) => {
                assert_eq!(status.backup, Some(previous.clone()), "{what}");
                assert_eq!(report.remember, None, "{what}");
                assert_eq!(report.gauges, Gauges::Leave, "{what}");
            }
        }
    }

    // Backups off: no record, no condition, gauges cleared.
    let off = cluster(json!({}));
    let mut status = VaultClusterStatus {
        backup: Some(previous.clone()),
        ..VaultClusterStatus::default()
    };
    let report = jobs::fold_backups(
        &off.spec.backup,
        Some(1),
        Some(&previous),
        &Ok((None, Vec::new())),
        &mut status,
        now(),
    );
    assert_eq!(status.backup, None);
    assert!(status.conditions.is_empty());
    assert_eq!(report.gauges, Gauges::Clear);
}

#[test]
fn a_failed_metrics_token_renewal_is_told_once() {
    let vc = cluster(json!({}));
    let failed = run("m-1", 5, RunOutcome::Failed("permission denied".into()));
    let runs = Ok(vec![failed.clone()]);
    let token = Ok(None);
    let fold = |known: &HashMap<String, JobRun>, status: &mut VaultClusterStatus| {
        jobs::fold_metrics_token(
            &vc,
            TokenObserved {
                token: &token,
                runs: &runs,
                known,
                prometheus_operator: true,
            },
            status,
            now(),
        )
    };
    let mut status = VaultClusterStatus::default();
    let first = fold(&HashMap::new(), &mut status);
    assert_eq!(first.failures, 1);
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].reason, "MetricsTokenRenewalFailed");
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::MONITORING_READY)
        .expect("MonitoringReady");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "RenewalFailed")
    );

    // The next pass remembers the run: no second Event, no second count.
    let known = first.remember.expect("remembered");
    let second = fold(&known, &mut status);
    assert_eq!((second.failures, second.events.len()), (0, 0));
}
