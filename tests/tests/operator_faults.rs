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
            names: Vec::new(),
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

/// A failed discovery request is not "prometheus-operator is gone": an operator that
/// starts while discovery fails (so it has nothing cached) fails its passes, says why in
/// the error metric, and prunes nothing; the cluster's ServiceMonitor and PrometheusRule
/// stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_discovery_request_prunes_nothing() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, ApiResource, DynamicObject};
    use vaultkeeper_e2e::install;

    let sim = vaultkeeper_sim::SimCluster::start(vaultkeeper_sim::SimConfig::for_slot(153))
        .await
        .expect("the simulated cluster starts");
    let admin = sim.client().expect("admin client");
    install::apply_objects(&admin, &install::integration_crds(), "test")
        .await
        .expect("the prometheus-operator and cert-manager CRDs install");
    let mut operator = Operator::install_and_start(&sim).await;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    assert!(
        crds.get_opt("vaultclusters.vaultkeeper.io")
            .await
            .expect("get")
            .is_some()
    );
    apply_cluster(
        &sim,
        "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: vault}\nspec: {backup: {enabled: false}}\n",
        "vault",
    )
    .await;
    let monitors = Api::<DynamicObject>::namespaced_with(
        admin.clone(),
        "vault",
        &ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "monitoring.coreos.com",
            "v1",
            "ServiceMonitor",
        )),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while monitors.get_opt("vault").await.ok().flatten().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the operator never applied the ServiceMonitor"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A new operator process with discovery failing: nothing is known about the optional
    // APIs, and every pass must end before it writes.
    operator.stop().await;
    sim.fail_discovery(true);
    operator.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let encoded = operator.metrics.encode();
        if encoded.lines().any(|l| {
            l.starts_with("vaultkeeper_reconcile_errors_total") && l.contains("reason=\"Kube\"")
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pass failed on the failed discovery:\n{encoded}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        monitors.get_opt("vault").await.expect("get").is_some(),
        "the ServiceMonitor was pruned on a failed discovery request"
    );

    // Discovery back: the next passes keep it, and nothing was deleted meanwhile.
    sim.fail_discovery(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(monitors.get_opt("vault").await.expect("get").is_some());
    let deleted: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.verb == "delete" && r.user.contains("vaultkeeper"))
        .map(|r| format!("{}/{}", r.resource, r.name))
        .collect();
    assert!(
        !deleted
            .iter()
            .any(|d| d.starts_with("servicemonitors") || d.starts_with("prometheusrules")),
        "{deleted:?}"
    );
    operator.stop().await;
    sim.shutdown().await;
}
