//! A flaky API server: 20% of the requests on the objects the operator manages (its
//! VaultCluster, StatefulSet, Secrets with the keys, Services, RBAC, CronJobs, Events…)
//! fail, alternating between 500 and 409, from before the first pass until the cluster is
//! Ready. The operator retries its way to Ready, initializes exactly once and never loses
//! the keys.
//!
//! Pods are left out of the rule: with the Exec transport every Vault call is a
//! `pods/exec` request, and 20% of those failing is a broken Vault channel, not a flaky
//! API server (the lifecycle then waits on unreachable pods, which its own tests cover).

use std::time::Duration;

use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, capture_logs, cluster_with_pods, count_events, events, example,
    init_commands, ready, stored_keys, wait_for,
};
use vaultkeeper_sim::faults::FailureRule;

const TIMEOUT: Duration = Duration::from_secs(420);

/// Every resource the operator reads or writes, except pods.
const OBJECTS: &[&str] = &[
    "vaultclusters",
    "statefulsets",
    "secrets",
    "configmaps",
    "services",
    "serviceaccounts",
    "roles",
    "rolebindings",
    "clusterrolebindings",
    "poddisruptionbudgets",
    "cronjobs",
    "jobs",
    "events",
    "leases",
    "persistentvolumeclaims",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_percent_failed_api_requests_still_converge_with_one_init() {
    let _logs = capture_logs();
    let sim = cluster_with_pods(152).await;
    let mut operator = Operator::install_and_start(&sim).await;
    // The rule is not scoped to a user: the test's own reads may fail too (wait_for
    // retries them); the VaultCluster is created before the faults begin.
    apply_cluster(&sim, &example("openbao"), "openbao").await;
    let mut code = 500;
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut failed_seen = 0usize;
    let vc = loop {
        sim.fail_requests(Some(FailureRule {
            share: 0.2,
            code,
            verbs: Vec::new(),
            resources: OBJECTS.iter().map(|r| (*r).to_owned()).collect(),
        }));
        code = if code == 500 { 409 } else { 500 };
        tokio::time::sleep(Duration::from_secs(2)).await;
        failed_seen += sim
            .requests()
            .iter()
            .filter(|r| r.user.contains("vaultkeeper") && (r.code == 500 || r.code == 409))
            .count();
        sim.clear_requests();
        let api: kube::Api<vaultkeeper_api::VaultCluster> =
            kube::Api::namespaced(sim.client().expect("admin"), "openbao");
        if let Ok(vc) = api.get("openbao").await
            && ready(&vc)
        {
            break vc;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not Ready under 20% failures after {TIMEOUT:?}"
        );
    };
    sim.fail_requests(None);
    assert!(
        failed_seen > 10,
        "the faults hit the operator: {failed_seen} failed requests"
    );
    let status = vc.status.expect("status");
    assert!(status.initialized && status.bootstrapped, "{status:?}");

    // Settled without faults: still one init, one Initialized Event, keys intact.
    let vc = wait_for(&sim, "openbao", "openbao", TIMEOUT, "Ready", ready).await;
    assert_eq!(vc.status.map(|s| s.sealed_replicas), Some(0));
    assert_eq!(init_commands(&sim, "openbao"), 1, "exactly one init");
    assert_eq!(
        count_events(&events(&sim, "openbao").await, "Initialized"),
        1
    );
    let keys = stored_keys(&sim, "openbao", "openbao-unseal-keys")
        .await
        .expect("the keys survived");
    assert_eq!(keys.shares.len(), 5);
    operator.stop().await;
    sim.shutdown().await;
}
