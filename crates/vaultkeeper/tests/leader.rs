//! Two operator replicas against one simulated API server: exactly one leads, the other
//! takes over when the leader releases the Lease (only after it drained), or when it
//! stops renewing; a leader that cannot renew within its renew deadline closes its fence
//! before anyone else may take over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use vaultkeeper::leader::{LeaderElector, LeaseTimings};
use vaultkeeper_sim::{SimCluster, SimConfig};

fn timings() -> LeaseTimings {
    LeaseTimings {
        duration: Duration::from_secs(2),
        renew_deadline: Duration::from_secs(1),
        retry: Duration::from_millis(200),
    }
}

async fn setup(slot: u8) -> (SimCluster, kube::Client) {
    let sim = SimCluster::start(SimConfig::for_slot(slot))
        .await
        .expect("sim");
    let client = sim.client().expect("client");
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("vaultkeeper-system".into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    (sim, client)
}

async fn holder(client: &kube::Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), "vaultkeeper-system")
        .get("vaultkeeper")
        .await
        .ok()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_the_other_takes_over_when_it_releases() {
    let (sim, client) = setup(104).await;
    let (stop_a, stop_a_rx) = watch::channel(false);
    let (_stop_b, stop_b_rx) = watch::channel(false);
    let a = LeaderElector::new(
        client.clone(),
        "vaultkeeper-system",
        "vaultkeeper",
        "replica-a",
        timings(),
    );
    let b = LeaderElector::new(
        client.clone(),
        "vaultkeeper-system",
        "vaultkeeper",
        "replica-b",
        timings(),
    );

    let leading_a = a.lead(stop_a_rx).await.expect("a leads first");
    assert_eq!(holder(&client).await.as_deref(), Some("replica-a"));
    let b_task = tokio::spawn(async move { b.lead(stop_b_rx).await });
    // b waits as long as a renews: several lease durations pass without a takeover.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!b_task.is_finished(), "b must not lead while a renews");
    assert!(leading_a.is_leader());
    assert_eq!(holder(&client).await.as_deref(), Some("replica-a"));

    // a is told to stop: while its controllers drain it keeps the Lease (and renews it),
    // so b cannot take over under a pass still in progress.
    let _ = stop_a.send(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!b_task.is_finished(), "b must not lead while a drains");
    assert_eq!(holder(&client).await.as_deref(), Some("replica-a"));
    assert!(leading_a.is_leader(), "a's fence holds while it drains");
    // Drained: a releases, b takes over well before the lease would expire.
    let fence_a = leading_a.fence();
    let released_at = tokio::time::Instant::now();
    leading_a.release().await;
    assert!(
        fence_a.check().is_err(),
        "a's fence closes when it releases"
    );
    let leading_b = tokio::time::timeout(Duration::from_secs(5), b_task)
        .await
        .expect("b takes over")
        .expect("task")
        .expect("b leads");
    assert!(leading_b.is_leader());
    assert_eq!(holder(&client).await.as_deref(), Some("replica-b"));
    assert!(
        released_at.elapsed() < Duration::from_secs(2),
        "takeover waited for expiry"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_the_old_holder_learns_it_lost() {
    let (sim, client) = setup(105).await;
    // A holder that stopped renewing long ago (a crashed replica).
    let api: Api<Lease> = Api::namespaced(client.clone(), "vaultkeeper-system");
    let stale = Lease {
        metadata: ObjectMeta {
            name: Some("vaultkeeper".into()),
            ..ObjectMeta::default()
        },
        spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
            holder_identity: Some("crashed".into()),
            lease_duration_seconds: Some(2),
            renew_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60),
            )),
            ..Default::default()
        }),
    };
    api.create(&PostParams::default(), &stale)
        .await
        .expect("stale lease");
    let (_stop, stop_rx) = watch::channel(false);
    let elector = LeaderElector::new(
        client.clone(),
        "vaultkeeper-system",
        "vaultkeeper",
        "replica-c",
        timings(),
    );
    let mut leading = tokio::time::timeout(Duration::from_secs(5), elector.lead(stop_rx))
        .await
        .expect("takes over an expired lease")
        .expect("leads");
    let lease = api.get("vaultkeeper").await.expect("lease");
    assert_eq!(
        lease.spec.as_ref().and_then(|s| s.lease_transitions),
        Some(1)
    );

    // Someone else takes the lease (an operator replica elsewhere): c notices and stops.
    let mut lease = api.get("vaultkeeper").await.expect("lease");
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = Some("usurper".into());
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            jiff::Timestamp::now(),
        ));
        spec.lease_duration_seconds = Some(60);
    }
    api.replace("vaultkeeper", &PostParams::default(), &lease)
        .await
        .expect("usurp");
    tokio::time::timeout(Duration::from_secs(5), leading.lost())
        .await
        .expect("c notices it lost");
    assert!(!leading.is_leader());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_closes_its_fence_before_the_follower_takes_over() {
    let (sim, client) = setup(191).await;
    let (_stop, stop_rx) = watch::channel(false);
    let elector = |name: &str| {
        LeaderElector::new(
            client.clone(),
            "vaultkeeper-system",
            "vaultkeeper",
            name,
            timings(),
        )
    };
    let mut leading_a = elector("replica-a")
        .lead(stop_rx.clone())
        .await
        .expect("a leads");
    let fence_a = leading_a.fence();
    let b_rx = stop_rx.clone();
    let b = elector("replica-b");
    let b_task = tokio::spawn(async move { b.lead(b_rx).await });
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Every Lease write fails from now on: a cannot renew.
    let failing = tokio::time::Instant::now();
    sim.fail_requests(Some(vaultkeeper_sim::FailureRule {
        share: 1.0,
        code: 500,
        verbs: vec!["update".into()],
        resources: vec!["leases".into()],
        names: Vec::new(),
    }));
    tokio::time::timeout(Duration::from_secs(3), leading_a.lost())
        .await
        .expect("a gives leadership up at its renew deadline");
    let fence_closed = failing.elapsed();
    assert!(fence_a.check().is_err(), "a's fence is closed");
    assert!(
        fence_closed <= Duration::from_millis(1500),
        "a stopped {fence_closed:?} after its renewals began failing (deadline 1 s)"
    );
    assert!(!b_task.is_finished(), "b cannot write the Lease either");

    // Writes work again: b takes over once the record has not changed for a lease
    // duration on its own clock, after a's fence closed.
    sim.fail_requests(None);
    let leading_b = tokio::time::timeout(Duration::from_secs(5), b_task)
        .await
        .expect("b takes over")
        .expect("task")
        .expect("b leads");
    let takeover = failing.elapsed();
    assert!(takeover > fence_closed, "{takeover:?} vs {fence_closed:?}");
    assert!(leading_b.is_leader());
    assert!(fence_a.check().is_err(), "a never leads again by itself");
    assert_eq!(holder(&client).await.as_deref(), Some("replica-b"));
    sim.shutdown().await;
}
