//! The operator end to end on the simulated cluster with real OpenBao pods, running as
//! its own ServiceAccount with the RBAC from `deploy/` enforced.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use vaultkeeper_e2e::install;
use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, cluster_with_pods, example, ready, wait_for,
};
use vaultkeeper_vault::keys::InitKeys;
use vaultkeeper_vault::secret::ExposeSecret;

const READY_TIMEOUT: Duration = Duration::from_secs(300);

fn secrets_of(keys: &InitKeys) -> Vec<String> {
    let mut secrets: Vec<String> = keys
        .shares
        .iter()
        .map(|s| s.expose_secret().to_owned())
        .collect();
    if let Some(root) = &keys.root_token {
        secrets.push(root.expose_secret().to_owned());
    }
    secrets
}

fn kubectl_get_vc(sim: &vaultkeeper_sim::SimCluster, namespace: &str) -> String {
    let kubectl = install::kubectl().expect("kubectl");
    let kubeconfig = sim.kubeconfig_path().to_string_lossy().into_owned();
    install::run(
        &kubectl,
        &["--kubeconfig", &kubeconfig, "get", "vc", "-n", namespace],
    )
    .expect("kubectl get vc")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openbao_cluster_becomes_ready_and_is_unsealed_after_every_restart() {
    vaultkeeper::commands::run::init_logging(
        "info,vaultkeeper=debug",
        vaultkeeper::commands::run::LogFormat::Text,
    );
    let sim = cluster_with_pods(110).await;
    let mut operator = Operator::install_and_start(&sim).await;
    apply_cluster(&sim, &example("openbao"), "openbao").await;

    let vc = wait_for(&sim, "openbao", "openbao", READY_TIMEOUT, "Ready", ready).await;
    let status = vc.status.clone().expect("status");
    assert_eq!(status.ready_replicas, 3, "{status:?}");
    assert_eq!(status.sealed_replicas, 0);
    assert!(status.initialized && status.bootstrapped, "{status:?}");
    assert!(status.active_pod.is_some());
    let table = kubectl_get_vc(&sim, "openbao");
    println!("{table}");
    assert!(
        table.contains("REPLICAS") && table.contains("READY") && table.contains("SEALED"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("openbao"))
        .expect("a row for the cluster");
    assert!(row.contains("Ready"), "{row}");

    // The keys: in an owner-less Secret, and never in any exec command line.
    let secrets: Api<Secret> = Api::namespaced(sim.client().expect("admin"), "openbao");
    let keys_secret = secrets
        .get("openbao-unseal-keys")
        .await
        .expect("keys Secret");
    assert!(keys_secret.metadata.owner_references.is_none());
    let record = keys_secret
        .data
        .as_ref()
        .and_then(|d| d.get("init.json"))
        .expect("init.json");
    let keys = InitKeys::from_json(&record.0).expect("init output");
    assert_eq!(keys.shares.len(), 5);
    // rootToken: Revoke is the default: bootstrap revoked it and dropped it from the Secret.
    assert!(
        keys.root_token.is_none(),
        "the root token is revoked after bootstrap"
    );

    // One pod dies: it comes back sealed and the operator unseals it.
    sim.kill_container("openbao", "openbao-1", "openbao")
        .expect("kill");
    wait_for(
        &sim,
        "openbao",
        "openbao",
        READY_TIMEOUT,
        "openbao-1 not ready after the kill",
        |vc| !ready(vc),
    )
    .await;
    wait_for(
        &sim,
        "openbao",
        "openbao",
        READY_TIMEOUT,
        "Ready again after one restart",
        ready,
    )
    .await;

    // Every pod dies at once.
    for pod in ["openbao-0", "openbao-1", "openbao-2"] {
        sim.kill_container("openbao", pod, "openbao").expect("kill");
    }
    wait_for(
        &sim,
        "openbao",
        "openbao",
        READY_TIMEOUT,
        "not ready after killing every pod",
        |vc| !ready(vc),
    )
    .await;
    wait_for(
        &sim,
        "openbao",
        "openbao",
        READY_TIMEOUT,
        "Ready again after a full restart",
        ready,
    )
    .await;

    // No share and no token in any command line the API server saw.
    let audit = sim.exec_audit();
    assert!(!audit.is_empty(), "the exec transport was used");
    for record in &audit {
        let argv = format!("{:?}", record);
        for secret in secrets_of(&keys) {
            assert!(
                !argv.contains(&secret),
                "a secret reached an exec command line"
            );
        }
    }

    // A pass with nothing to do writes nothing: watch the operator's requests over a few
    // resync periods.
    tokio::time::sleep(Duration::from_secs(4)).await;
    sim.clear_requests();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let writes: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.user.contains("vaultkeeper") && r.is_write() && r.subresource != "exec")
        .map(|r| format!("{} {}/{} {}", r.verb, r.resource, r.subresource, r.name))
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "no-op passes must not write");

    operator.stop().await;
    sim.shutdown().await;
}
