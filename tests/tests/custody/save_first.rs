//! Save first. The init answer is the only copy of a cluster's keys, so nothing may stand
//! between it and the keys Secret: not a client timeout (a slow node answers after every
//! deadline the operator has for other commands), not a parser (an answer that is cut
//! short or incomplete is saved exactly as it arrived, and the cluster stops with a
//! condition that says what to do), and not a shutdown (an operator told to stop while the
//! Secret refuses writes keeps retrying and does not return until the keys are saved).
//! Whatever happens, `operator init` runs exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use vaultkeeper::controller::faults::Faults;
use vaultkeeper::custody::{INIT_KEY, RAW_INIT_KEY};
use vaultkeeper_e2e::hostile::small_cluster_yaml;
use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, assert_no_secret_leaked, capture_logs, cluster_with_pods,
    count_events, events, init_commands, ready, secrets_of, stored_keys, wait_for,
};
use vaultkeeper_sim::{ExecAnswerFault, FailureRule, SimCluster};
use vaultkeeper_vault::keys::{RawInit, Stored, decode_stored};
use vaultkeeper_vault::secret::ExposeSecret;

const TIMEOUT: Duration = Duration::from_secs(300);

/// Bounded exec commands time out after 3 s instead of 60 s.
struct ShortExecTimeout;

impl Faults for ShortExecTimeout {
    fn exec_timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(3))
    }
}

fn init_answer(fault: ExecAnswerFault) -> Option<ExecAnswerFault> {
    Some(ExecAnswerFault {
        argv_contains: vec!["operator".into(), "init".into()],
        ..fault
    })
}

/// The keys Secret's data keys.
async fn keys_secret_keys(sim: &SimCluster, namespace: &str, name: &str) -> Vec<String> {
    let secrets: Api<Secret> = Api::namespaced(sim.client().expect("admin client"), namespace);
    secrets
        .get_opt(name)
        .await
        .expect("reading the keys Secret")
        .and_then(|s| s.data)
        .map(|d| d.into_keys().collect())
        .unwrap_or_default()
}

/// The raw answer saved in the keys Secret.
async fn saved_answer(sim: &SimCluster, namespace: &str, name: &str) -> RawInit {
    let secrets: Api<Secret> = Api::namespaced(sim.client().expect("admin client"), namespace);
    let secret = secrets.get(name).await.expect("the keys Secret exists");
    let bytes = &secret.data.expect("data")[RAW_INIT_KEY].0;
    match decode_stored(bytes).expect("the saved answer decodes") {
        Stored::Raw(raw) => raw,
        Stored::Keys(_) => panic!("{RAW_INIT_KEY} holds a key record"),
    }
}

fn stopped_with(reason: &'static str) -> impl Fn(&vaultkeeper_api::VaultCluster) -> bool {
    move |vc| {
        vc.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Degraded" && c.status == "True" && c.reason == reason)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_init_answer_later_than_every_client_timeout_is_saved_and_init_runs_once() {
    let logs = capture_logs();
    let sim = cluster_with_pods(185).await;
    // The node answers init 12 s after it has initialized: four times the operator's
    // timeout for any other command here, as a slow disk or a loaded node would.
    sim.faults().set_exec_answer(init_answer(ExecAnswerFault {
        delay: Duration::from_secs(12),
        ..ExecAnswerFault::default()
    }));
    let _operator = Operator::install_and_start_with(&sim, Arc::new(ShortExecTimeout)).await;
    let started = Instant::now();
    apply_cluster(&sim, &small_cluster_yaml("slow", ""), "vault").await;

    let vc = wait_for(&sim, "vault", "slow", TIMEOUT, "Ready", ready).await;
    assert!(
        started.elapsed() > Duration::from_secs(12),
        "the answer was held back 12 s, yet Ready came after {:?}",
        started.elapsed()
    );
    assert_eq!(init_commands(&sim, "vault"), 1, "init runs exactly once");
    let keys = stored_keys(&sim, "vault", "slow-unseal-keys")
        .await
        .expect("the keys are saved");
    assert_eq!(keys.shares.len(), 5);
    assert_eq!(
        keys_secret_keys(&sim, "vault", "slow-unseal-keys").await,
        vec![INIT_KEY.to_owned()],
        "once read, the raw answer gives way to the key record"
    );
    assert_eq!(vc.status.map(|s| s.ready_replicas), Some(1));
    assert_no_secret_leaked(&sim, "vault", &secrets_of(&keys), &logs.text()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreadable_or_partial_init_answer_is_saved_as_it_arrived_and_stops_the_cluster() {
    let sim = cluster_with_pods(186).await;
    let _operator = Operator::install_and_start(&sim).await;

    // Cut short: the first 60 bytes of the CLI's JSON.
    sim.faults().set_exec_answer(init_answer(ExecAnswerFault {
        truncate_to: Some(60),
        ..ExecAnswerFault::default()
    }));
    apply_cluster(&sim, &small_cluster_yaml("cut", ""), "vault").await;
    let vc = wait_for(
        &sim,
        "vault",
        "cut",
        TIMEOUT,
        "Degraded: InitAnswerUnreadable",
        stopped_with("InitAnswerUnreadable"),
    )
    .await;
    let message = vc
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(RAW_INIT_KEY) && message.contains("docs/custody.md"),
        "the condition names where the answer is and what to read: {message}"
    );
    let saved = saved_answer(&sim, "vault", "cut-unseal-keys").await;
    assert_eq!(
        saved.answer.expose_secret().len(),
        60,
        "saved exactly as it arrived"
    );
    assert!(saved.parse().is_err());

    // A complete JSON answer with one share of the five asked for, and no root token.
    sim.faults().set_exec_answer(init_answer(ExecAnswerFault {
        replace_stdout: Some(br#"{"unseal_keys_b64":["c2hhcmUtb25l"]}"#.to_vec()),
        ..ExecAnswerFault::default()
    }));
    apply_cluster(&sim, &small_cluster_yaml("partial", ""), "partial").await;
    wait_for(
        &sim,
        "partial",
        "partial",
        TIMEOUT,
        "Degraded: InitAnswerUnreadable",
        stopped_with("InitAnswerUnreadable"),
    )
    .await;
    let saved = saved_answer(&sim, "partial", "partial-unseal-keys").await;
    let reason = saved
        .parse()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(reason.contains("holds 1"), "{reason}");

    // Several passes later: still stopped, and never a second init.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(init_commands(&sim, "vault"), 1);
    assert_eq!(init_commands(&sim, "partial"), 1);
    let api: Api<vaultkeeper_api::VaultCluster> =
        Api::namespaced(sim.client().expect("admin client"), "vault");
    let vc = api.get("cut").await.expect("the cluster");
    assert!(stopped_with("InitAnswerUnreadable")(&vc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_operator_does_not_return_while_it_holds_unsaved_keys() {
    let logs = capture_logs();
    let sim = cluster_with_pods(187).await;
    // The API server refuses every write of this one Secret: init answers, and the keys
    // can only be held.
    sim.fail_requests(Some(FailureRule {
        share: 1.0,
        code: 500,
        verbs: vec!["create".into(), "patch".into(), "update".into()],
        resources: vec!["secrets".into()],
        names: vec!["held-unseal-keys".into()],
    }));
    let mut operator = Operator::install_and_start(&sim).await;
    apply_cluster(&sim, &small_cluster_yaml("held", ""), "vault").await;
    let deadline = Instant::now() + TIMEOUT;
    while count_events(&events(&sim, "vault").await, "KeysUnsaved") == 0 {
        assert!(Instant::now() < deadline, "no KeysUnsaved Event");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(init_commands(&sim, "vault"), 1);

    // SIGTERM: the controllers stop, but the operator does not return.
    let tasks = operator.begin_stop();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        tasks.iter().all(|t| !t.is_finished()),
        "the operator returned while the keys were only in its memory"
    );
    let seen = events(&sim, "vault").await;
    assert!(
        count_events(&seen, "KeysUnsavedAtShutdown") >= 1,
        "a loud Event says what stopping now would lose"
    );

    // The Secret becomes writable: the keys are saved and only then does it return.
    sim.fail_requests(None);
    let saved_by = Instant::now() + Duration::from_secs(30);
    for task in tasks {
        let left = saved_by.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, task)
            .await
            .expect("the operator returns once the keys are saved")
            .expect("the controller task ends cleanly");
    }
    let keys = stored_keys(&sim, "vault", "held-unseal-keys")
        .await
        .expect("the held keys were saved before the operator returned");

    // A new operator unseals with them; init never runs again.
    operator.start();
    wait_for(&sim, "vault", "held", TIMEOUT, "Ready", ready).await;
    assert_eq!(init_commands(&sim, "vault"), 1);
    assert_no_secret_leaked(&sim, "vault", &secrets_of(&keys), &logs.text()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_cluster_is_let_go_only_once_its_held_keys_are_saved() {
    let sim = cluster_with_pods(198).await;
    sim.fail_requests(Some(FailureRule {
        share: 1.0,
        code: 500,
        verbs: vec!["create".into(), "patch".into(), "update".into()],
        resources: vec!["secrets".into()],
        names: vec!["gone-unseal-keys".into()],
    }));
    let _operator = Operator::install_and_start(&sim).await;
    apply_cluster(&sim, &small_cluster_yaml("gone", ""), "vault").await;
    let deadline = Instant::now() + TIMEOUT;
    while count_events(&events(&sim, "vault").await, "KeysUnsaved") == 0 {
        assert!(Instant::now() < deadline, "no KeysUnsaved Event");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Deleted while its keys are only in memory: the finalizer holds it.
    let api: Api<vaultkeeper_api::VaultCluster> =
        Api::namespaced(sim.client().expect("admin client"), "vault");
    api.delete("gone", &Default::default())
        .await
        .expect("the delete is accepted");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let held = api.get_opt("gone").await.expect("reading the cluster");
    assert!(
        held.is_some_and(|vc| vc.metadata.deletion_timestamp.is_some()),
        "the cluster must wait for its keys to be saved"
    );

    // The Secret takes the keys; only then is the cluster gone, and the keys stay
    // (deletionPolicy Retain, the default).
    sim.fail_requests(None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while api
        .get_opt("gone")
        .await
        .expect("reading the cluster")
        .is_some()
    {
        assert!(Instant::now() < deadline, "the cluster was never let go");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let keys = stored_keys(&sim, "vault", "gone-unseal-keys").await;
    assert_eq!(keys.map(|k| k.shares.len()), Some(5));
    assert_eq!(init_commands(&sim, "vault"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_that_loses_its_lease_while_holding_keys_saves_them_before_it_steps_back() {
    use vaultkeeper::leader::LeaseTimings;
    use vaultkeeper_e2e::operator::{Election, LeaseFaultSwitch};
    let sim = cluster_with_pods(199).await;
    sim.fail_requests(Some(FailureRule {
        share: 1.0,
        code: 500,
        verbs: vec!["create".into(), "patch".into(), "update".into()],
        resources: vec!["secrets".into()],
        names: vec!["leased-unseal-keys".into()],
    }));
    let faults = Arc::new(LeaseFaultSwitch::default());
    let operator = Operator::install_and_start_elected(
        &sim,
        Election {
            identity: "op-a".into(),
            lease: "vaultkeeper".into(),
            timings: LeaseTimings::default(),
            faults: faults.clone(),
        },
    )
    .await;
    apply_cluster(&sim, &small_cluster_yaml("leased", ""), "vault").await;
    let deadline = Instant::now() + TIMEOUT;
    while count_events(&events(&sim, "vault").await, "KeysUnsaved") == 0 {
        assert!(Instant::now() < deadline, "no KeysUnsaved Event");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Its Lease requests stall: past the renew deadline it is no longer the leader, and
    // its controllers stop, but the term does not end while the keys are only in memory.
    // (Each held request waits 25 s, longer than the 10 s renew deadline.)
    faults.delay_renewals(Duration::from_secs(25));
    tokio::time::sleep(Duration::from_secs(20)).await;
    let terms = operator.terms();
    assert_eq!(terms.len(), 1, "{terms:?}");
    assert!(
        terms[0].ended.is_none(),
        "the lost term ended while the keys were only in memory"
    );
    assert!(count_events(&events(&sim, "vault").await, "KeysUnsavedAtShutdown") >= 1);

    // The Secret takes the keys: saved, and only then does the term end (as lost).
    sim.fail_requests(None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while operator.terms()[0].ended.is_none() {
        assert!(Instant::now() < deadline, "the term never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(operator.terms()[0].lost);
    let keys = stored_keys(&sim, "vault", "leased-unseal-keys")
        .await
        .expect("the keys were saved before the lost leader stepped back");
    assert_eq!(keys.shares.len(), 5);

    // Its Lease requests recover: it leads again and unseals with those keys; one init.
    faults.delay_renewals(Duration::ZERO);
    wait_for(&sim, "vault", "leased", TIMEOUT, "Ready", ready).await;
    assert_eq!(init_commands(&sim, "vault"), 1);
}
