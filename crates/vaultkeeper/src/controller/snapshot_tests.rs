//! Table tests of the backup before a disruptive operation: the decision, the Job it
//! creates (from the backup CronJob's template as rendered) and what status says.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use vaultkeeper_api::{
    BackupSpec, BeforeDisruption, SnapshotOutcome, SnapshotStatus, VaultClusterStatus, condition,
};

use super::*;
use crate::backup::{JobRun, RunOutcome};

const OP: &str = "RollingUpdate to revision vault-6d5f8b7c9";

fn at(seconds: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp")
}

fn store() -> BackupSpec {
    serde_json::from_value(json!({
        "s3": {"bucket": "snaps", "region": "us-east-1", "credentialsSecret": {"name": "s3"}},
    }))
    .expect("a backup spec")
}

fn ours(name: &str, outcome: RunOutcome, finished: Option<i64>) -> SnapshotJob {
    SnapshotJob {
        ours: true,
        run: JobRun {
            name: name.to_owned(),
            finished: finished.map(at),
            outcome,
        },
    }
}

fn recorded(operation: &str) -> SnapshotStatus {
    SnapshotStatus {
        operation: operation.to_owned(),
        outcome: SnapshotOutcome::Taken,
        job: Some(job_name("vault", operation)),
        object: Some("e2e/old.snap".into()),
        time: Some(Time(at(-100))),
    }
}

/// What the decision must be: its variant, and words its text must contain.
#[derive(Debug)]
enum Expect {
    Proceed,
    Record(SnapshotOutcome),
    Create,
    Wait(&'static str),
    Blocked(&'static str, &'static [&'static str]),
}

#[test]
fn decision_table() {
    let job = job_name("vault", OP);
    let succeeded = RunOutcome::Succeeded {
        object: Some("e2e/2027-01-15.snap".into()),
        size_bytes: Some(2048),
        duration_seconds: Some(1.0),
    };
    let off = BackupSpec {
        enabled: false,
        ..store()
    };
    let no_store = BackupSpec::default();
    let skip = BackupSpec {
        before_disruption: BeforeDisruption::Skip,
        ..store()
    };
    let on = store();
    let none: Result<Vec<SnapshotJob>, String> = Ok(Vec::new());
    let running = Ok(vec![ours(&job, RunOutcome::Running, None)]);
    let done = Ok(vec![ours(&job, succeeded.clone(), Some(5))]);
    let failed = Ok(vec![ours(
        &job,
        RunOutcome::Failed("s3: AccessDenied: the credentials were refused".into()),
        Some(5),
    )]);
    let foreign = Ok(vec![SnapshotJob {
        ours: false,
        run: JobRun {
            name: job.clone(),
            finished: None,
            outcome: RunOutcome::Running,
        },
    }]);
    let other_operation = Ok(vec![ours(
        &job_name("vault", "Rekey \"2026-11\""),
        succeeded.clone(),
        Some(1),
    )]);
    let unreadable = Err("the API server timed out".to_owned());
    let earlier = recorded("Rekey \"2026-11\"");
    let this_one = recorded(OP);
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        &str,
        &BackupSpec,
        bool,
        Option<&str>,
        Option<&SnapshotStatus>,
        &Result<Vec<SnapshotJob>, String>,
        Expect,
    )> = vec![
        (
            "no disruptive step this pass",
            &on,
            true,
            None,
            None,
            &none,
            Expect::Proceed,
        ),
        (
            "backups off: nothing to take",
            &off,
            true,
            Some(OP),
            None,
            &none,
            Expect::Proceed,
        ),
        (
            "no store: nothing to take",
            &no_store,
            true,
            Some(OP),
            None,
            &none,
            Expect::Proceed,
        ),
        (
            "the first step of an operation: start the Job",
            &on,
            true,
            Some(OP),
            Some(&earlier),
            &none,
            Expect::Create,
        ),
        (
            "a snapshot of another operation does not count",
            &on,
            true,
            Some(OP),
            None,
            &other_operation,
            Expect::Create,
        ),
        (
            "the Job runs: wait",
            &on,
            true,
            Some(OP),
            None,
            &running,
            Expect::Wait("is running"),
        ),
        (
            "the Jobs cannot be read: wait, never go ahead blind",
            &on,
            true,
            Some(OP),
            None,
            &unreadable,
            Expect::Wait("timed out"),
        ),
        (
            "the Job succeeded: record it and go ahead",
            &on,
            true,
            Some(OP),
            None,
            &done,
            Expect::Record(SnapshotOutcome::Taken),
        ),
        (
            "recorded for this operation: never again (a later pass, a restart)",
            &on,
            true,
            Some(OP),
            Some(&this_one),
            &none,
            Expect::Proceed,
        ),
        (
            "recorded, and its failed Job is still there: the record wins",
            &on,
            true,
            Some(OP),
            Some(&this_one),
            &failed,
            Expect::Proceed,
        ),
        (
            "the Job failed: blocked, naming the Job, the failure and the override",
            &on,
            true,
            Some(OP),
            None,
            &failed,
            Expect::Blocked(
                "SnapshotFailed",
                &[
                    "AccessDenied",
                    "spec.backup.beforeDisruption: Skip",
                    "delete Job",
                    OP,
                ],
            ),
        ),
        (
            "the override after a failure: go ahead, recorded as skipped",
            &skip,
            true,
            Some(OP),
            None,
            &failed,
            Expect::Record(SnapshotOutcome::Skipped),
        ),
        (
            "skipped earlier for this operation: not recorded again",
            &skip,
            true,
            Some(OP),
            Some(&this_one),
            &none,
            Expect::Proceed,
        ),
        (
            "a Job of that name someone else made: blocked, not trusted",
            &on,
            true,
            Some(OP),
            None,
            &foreign,
            Expect::Blocked(
                "SnapshotJobNotOurs",
                &["not created by vaultkeeper", "Skip"],
            ),
        ),
        (
            "before the bootstrap there is no backup role: go ahead",
            &on,
            false,
            Some(OP),
            None,
            &none,
            Expect::Proceed,
        ),
    ];
    for (what, spec, bootstrapped, operation, recorded, jobs, expect) in cases {
        let decision = decide(&Inputs {
            cluster: "vault",
            spec,
            bootstrapped,
            operation,
            recorded,
            jobs,
            now: at(10),
        });
        match (&expect, &decision) {
            (Expect::Proceed, Decision::Proceed) => assert!(!decision.holds(), "{what}"),
            (Expect::Record(outcome), Decision::Record(record)) => {
                assert!(!decision.holds(), "{what}");
                assert_eq!(record.outcome, *outcome, "{what}");
                assert_eq!(record.operation, OP, "{what}");
                if *outcome == SnapshotOutcome::Taken {
                    assert_eq!(record.job.as_deref(), Some(job.as_str()), "{what}");
                    assert_eq!(
                        record.object.as_deref(),
                        Some("e2e/2027-01-15.snap"),
                        "{what}"
                    );
                    assert_eq!(record.time, Some(Time(at(5))), "{what}: the Job's end");
                } else {
                    assert_eq!(record.job, None, "{what}");
                    assert_eq!(record.time, Some(Time(at(10))), "{what}");
                }
            }
            (Expect::Create, Decision::Create { operation, job: j }) => {
                assert!(decision.holds(), "{what}");
                assert_eq!((operation.as_str(), j), (OP, &job), "{what}");
            }
            (Expect::Wait(words), Decision::Wait { why, .. }) => {
                assert!(decision.holds(), "{what}");
                assert!(why.contains(words), "{what}: {why}");
            }
            (Expect::Blocked(reason, words), Decision::Blocked { reason: r, message }) => {
                assert!(decision.holds(), "{what}");
                assert_eq!(r, reason, "{what}");
                for w in *words {
                    assert!(message.contains(w), "{what}: {w:?} in {message}");
                }
                assert!(message.contains(&job), "{what}: names the Job: {message}");
            }
            _ => panic!("{what}: expected {expect:?}, decided {decision:?}"),
        }
    }
}

#[test]
fn the_job_name_is_the_operation_s_and_fits_a_label() {
    assert_eq!(job_name("vault", OP), job_name("vault", OP));
    assert_ne!(job_name("vault", OP), job_name("vault", "Rekey \"1\""));
    assert_ne!(job_name("vault", OP), job_name("other", OP));
    assert!(job_name("vault", OP).starts_with("vault-backup-s"));
    let longest = "a".repeat(vaultkeeper_api::names::MAX_CLUSTER_NAME);
    let name = job_name(&longest, OP);
    assert!(
        name.len() <= vaultkeeper_api::names::DNS_LABEL_MAX,
        "{name}: {} characters",
        name.len()
    );
}

/// The backup CronJob of a cluster with backups to S3, as the renderer makes it.
fn rendered_cronjob() -> (vaultkeeper_api::VaultCluster, serde_json::Value) {
    let mut vc: vaultkeeper_api::VaultCluster = serde_json::from_value(json!({
        "apiVersion": "vaultkeeper.io/v1alpha1", "kind": "VaultCluster",
        "metadata": {"name": "vault", "namespace": "vault", "uid": "uid-1"},
        "spec": {"tls": {"mode": "Disabled"}, "backup": {
            "s3": {"bucket": "snaps", "region": "us-east-1", "credentialsSecret": {"name": "s3"}},
        }},
    }))
    .expect("a VaultCluster");
    vc.status = Some(VaultClusterStatus::default());
    let mut ctx = vaultkeeper_render::RenderContext::new("vault", None);
    ctx.operator_image = "ghcr.io/vaultkeeper/vaultkeeper:test";
    ctx.owner_uid = Some("uid-1");
    let cronjob = vaultkeeper_render::render(&vc, &ctx)
        .expect("renders")
        .into_iter()
        .find(|m| m.kind == "CronJob" && m.name == "vault-backup")
        .expect("the backup CronJob");
    (vc, cronjob.object)
}

#[test]
fn the_job_is_the_cronjob_s_template_owned_by_the_cluster() {
    let (vc, cronjob) = rendered_cronjob();
    let template = &cronjob["spec"]["jobTemplate"];
    let name = job_name("vault", OP);
    let job = job(&vc, "vault", template, OP, &name).expect("a Job");
    assert_eq!(job["metadata"]["name"], json!(name));
    assert_eq!(job["metadata"]["namespace"], json!("vault"));
    // The same pod as every scheduled backup: ServiceAccount, token, env, args.
    assert_eq!(job["spec"]["template"], template["spec"]["template"]);
    assert_eq!(
        job["spec"]["activeDeadlineSeconds"],
        template["spec"]["activeDeadlineSeconds"]
    );
    assert_eq!(job["spec"]["ttlSecondsAfterFinished"], json!(86_400));
    let labels = &job["metadata"]["labels"];
    assert_eq!(labels[SNAPSHOT_LABEL], json!(SNAPSHOT_LABEL_VALUE));
    assert_eq!(labels["app.kubernetes.io/instance"], json!("vault"));
    assert_eq!(labels["app.kubernetes.io/component"], json!("backup"));
    assert_eq!(
        job["metadata"]["annotations"][SNAPSHOT_FOR_ANNOTATION],
        json!(OP)
    );
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            &owner["kind"],
            &owner["name"],
            &owner["uid"],
            &owner["controller"]
        ),
        (
            &json!("VaultCluster"),
            &json!("vault"),
            &json!("uid-1"),
            &json!(true)
        )
    );
    // It parses as a Job, and its pod is ours in the way the fold checks.
    let parsed: k8s_openapi::api::batch::v1::Job =
        serde_json::from_value(job.clone()).expect("a Job");
    let owner = crate::ownership::Controller::of("VaultCluster", &vc.metadata).expect("owner");
    assert!(owner.controls(&parsed.metadata));
    // Nothing secret on the command line: the args are flags, and every credential
    // comes from a mounted file or a Secret reference.
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    for arg in container["args"].as_array().expect("args") {
        let arg = arg.as_str().unwrap_or_default().to_lowercase();
        assert!(
            !arg.contains("token=") && !arg.contains("secret=") && !arg.contains("key="),
            "{arg}"
        );
    }
    for env in container["env"].as_array().expect("env") {
        let name = env["name"].as_str().unwrap_or_default();
        if name.contains("SECRET") || name.contains("ACCESS_KEY") {
            assert!(env.get("value").is_none(), "{name} is a reference: {env}");
        }
    }
    // A cluster without a UID (not created yet) gets no Job.
    let mut unnamed = vc.clone();
    unnamed.metadata.uid = None;
    assert!(super::job(&unnamed, "vault", template, OP, &name).is_none());
}

#[test]
fn status_says_what_the_decision_was() {
    let on = store();
    let previous = VaultClusterStatus {
        snapshot: Some(recorded("Rekey \"2026-11\"")),
        ..VaultClusterStatus::default()
    };
    let condition_of = |status: &VaultClusterStatus| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::SNAPSHOT_BEFORE_DISRUPTION)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let job = job_name("vault", OP);

    // Started: False, in progress, one Normal Event.
    let mut status = previous.clone();
    let decision = Decision::Create {
        operation: OP.into(),
        job: job.clone(),
    };
    let events = fold(
        &on,
        &decision,
        Some(&Ok(true)),
        &mut status,
        Some(&previous),
        Some(2),
        at(0),
    );
    let (s, reason, message) = condition_of(&status).expect("the condition");
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("False", "SnapshotInProgress")
    );
    assert!(message.contains(&job), "{message}");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "SnapshotStarted");
    assert_eq!(status.snapshot, previous.snapshot, "the record is kept");

    // Blocked: False with the reason, a Warning.
    let message = format!("{OP} is blocked: Job {job} failed");
    let decision = Decision::Blocked {
        reason: "SnapshotFailed",
        message: message.clone(),
    };
    let events = fold(
        &on,
        &decision,
        None,
        &mut status,
        Some(&previous),
        Some(2),
        at(1),
    );
    assert_eq!(
        condition_of(&status),
        Some(("False".into(), "SnapshotFailed".into(), message))
    );
    assert!(events[0].warning);
    assert_eq!(events[0].reason, "SnapshotFailed");

    // Taken: True, recorded.
    let record = recorded(OP);
    let decision = Decision::Record(record.clone());
    let events = fold(
        &on,
        &decision,
        None,
        &mut status,
        Some(&previous),
        Some(2),
        at(2),
    );
    let (s, reason, message) = condition_of(&status).expect("the condition");
    assert_eq!((s.as_str(), reason.as_str()), ("True", "SnapshotTaken"));
    assert!(message.contains("e2e/old.snap"), "{message}");
    assert_eq!(status.snapshot, Some(record));
    assert_eq!(events[0].reason, "SnapshotTaken");

    // Nothing this pass: the condition and the record stay.
    let before = status.clone();
    let events = fold(
        &on,
        &Decision::Proceed,
        None,
        &mut status,
        Some(&before),
        Some(2),
        at(3),
    );
    assert!(events.is_empty());
    assert_eq!(condition_of(&status), condition_of(&before));
    assert_eq!(status.snapshot, before.snapshot);

    // Backups off: the condition goes.
    let off = BackupSpec {
        enabled: false,
        ..store()
    };
    fold(
        &off,
        &Decision::Proceed,
        None,
        &mut status,
        Some(&before),
        Some(3),
        at(4),
    );
    assert_eq!(condition_of(&status), None);

    // Nothing pending and nothing recorded (a blocked operation withdrawn before any
    // snapshot succeeded): no condition left False.
    let mut status = VaultClusterStatus::default();
    fold(
        &on,
        &Decision::Blocked {
            reason: "SnapshotFailed",
            message: "blocked".into(),
        },
        None,
        &mut status,
        None,
        Some(4),
        at(5),
    );
    assert!(condition_of(&status).is_some());
    let blocked = status.clone();
    fold(
        &on,
        &Decision::Proceed,
        None,
        &mut status,
        Some(&blocked),
        Some(5),
        at(6),
    );
    assert_eq!(condition_of(&status), None);
}
