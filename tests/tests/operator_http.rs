//! The Http transport: the operator talks to each pod's API over TLS, verified against the
//! cluster CA, instead of exec. The cluster converges the same way, and no exec is used.

use std::time::Duration;

use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, assert_no_secret_leaked, capture_logs, cluster_with_pods,
    count_events, events, example, ready, secrets_of, stored_keys, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_http_transport_converges() {
    let logs = capture_logs();
    let sim = cluster_with_pods(151).await;
    let mut operator = Operator::install_and_start(&sim).await;
    let yaml = example("openbao").replace("  replicas: 3\n", "  replicas: 3\n  transport: Http\n");
    assert!(yaml.contains("transport: Http"), "{yaml}");
    apply_cluster(&sim, &yaml, "openbao").await;

    let vc = wait_for(&sim, "openbao", "openbao", TIMEOUT, "Ready", ready).await;
    let status = vc.status.expect("status");
    assert_eq!(status.ready_replicas, 3, "{status:?}");
    assert_eq!(status.sealed_replicas, 0, "{status:?}");
    assert!(status.initialized && status.bootstrapped, "{status:?}");
    assert_eq!(status.raft.map(|r| r.voters.len()), Some(3));

    // Nothing went through exec: the transport is really HTTP.
    let execs: Vec<String> = sim
        .exec_audit()
        .iter()
        .filter(|r| r.pod.namespace == "openbao")
        .map(|r| r.argv.join(" "))
        .collect();
    assert_eq!(
        execs,
        Vec::<String>::new(),
        "the Http transport execs nothing"
    );
    let seen = events(&sim, "openbao").await;
    assert_eq!(count_events(&seen, "Initialized"), 1, "{seen:?}");

    // A restarted pod is unsealed over HTTP too.
    sim.kill_container("openbao", "openbao-2", "openbao")
        .expect("kill");
    wait_for(
        &sim,
        "openbao",
        "openbao",
        TIMEOUT,
        "not Ready after the kill",
        |vc| !ready(vc),
    )
    .await;
    wait_for(&sim, "openbao", "openbao", TIMEOUT, "Ready again", ready).await;

    let keys = stored_keys(&sim, "openbao", "openbao-unseal-keys")
        .await
        .expect("keys");
    assert_no_secret_leaked(&sim, "openbao", &secrets_of(&keys), &logs.text()).await;
    operator.stop().await;
    sim.shutdown().await;
}
