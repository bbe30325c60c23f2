//! Two operator replicas against one simulated API server: exactly one leads, the other
//! takes over when the leader releases the Lease on shutdown, or when it stops renewing.

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

    let mut leading_a = a.lead(stop_a_rx).await.expect("a leads first");
    assert_eq!(holder(&client).await.as_deref(), Some("replica-a"));
    let b_task = tokio::spawn(async move { b.lead(stop_b_rx).await });
    // b waits as long as a renews: several lease durations pass without a takeover.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!b_task.is_finished(), "b must not lead while a renews");
    assert!(leading_a.is_leader());
    assert_eq!(holder(&client).await.as_deref(), Some("replica-a"));

    // a shuts down gracefully: it releases, b takes over well before the lease expires.
    let released_at = tokio::time::Instant::now();
    stop_a.send(true).expect("stop a");
    leading_a.lost().await;
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
