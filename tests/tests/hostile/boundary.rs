//! Attacks through the VaultCluster spec: aiming the keys Secret name at another cluster's
//! keys or at a Secret the attacker cannot touch, then deleting the cluster with
//! `deletionPolicy: Delete`; and namespace/name pairs that once gave two clusters the same
//! cluster-scoped ClusterRoleBinding.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use vaultkeeper_api::{VaultCluster, parse_manifests};
use vaultkeeper_e2e::hostile::{ATTACKER_NAMESPACE, attacker, small_cluster_yaml};
use vaultkeeper_e2e::operator::{Operator, apply_cluster, cluster_with_pods, ready, wait_for};
use vaultkeeper_sim::{SimCluster, SimConfig};

const TIMEOUT: Duration = Duration::from_secs(300);

fn manifest(name: &str, keys_secret: Option<&str>) -> String {
    let keys = keys_secret.map_or(String::new(), |s| format!("\n    secretName: {s}"));
    small_cluster_yaml(
        name,
        &format!("  deletionPolicy: Delete\n  keys:\n    rootToken: Revoke{keys}"),
    )
}

/// Creates a VaultCluster as the attacker (through their RBAC).
async fn attacker_creates(client: &kube::Client, yaml: &str) -> VaultCluster {
    let mut vc = parse_manifests(yaml).expect("manifest").remove(0);
    vc.metadata.namespace = Some(ATTACKER_NAMESPACE.into());
    Api::<VaultCluster>::namespaced(client.clone(), ATTACKER_NAMESPACE)
        .create(&PostParams::default(), &vc)
        .await
        .expect("the attacker may create VaultClusters in their namespace")
}

/// Deletes a VaultCluster as the attacker and waits until the finalizer has run.
async fn attacker_deletes(client: &kube::Client, name: &str) {
    let api = Api::<VaultCluster>::namespaced(client.clone(), ATTACKER_NAMESPACE);
    api.delete(name, &DeleteParams::default())
        .await
        .expect("the attacker may delete their VaultCluster");
    let deadline = Instant::now() + TIMEOUT;
    while api.get_opt(name).await.expect("read").is_some() {
        assert!(Instant::now() < deadline, "{name} was never deleted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn secret(sim: &SimCluster, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(sim.client().expect("admin"), ATTACKER_NAMESPACE)
        .get_opt(name)
        .await
        .expect("read Secret")
}

/// Whether any condition of `vc` says `text`.
fn says(vc: &VaultCluster, text: &str) -> bool {
    vc.status
        .as_ref()
        .is_some_and(|s| s.conditions.iter().any(|c| c.message.contains(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keys_secret_name_aimed_at_another_clusters_keys_reads_and_overwrites_nothing() {
    let sim = cluster_with_pods(180).await;
    let _operator = Operator::install_and_start_watching(&sim, &[ATTACKER_NAMESPACE]).await;
    let mallory = attacker(&sim).await.expect("the attacker's account");
    // The platform team's cluster, initialized, in the same namespace.
    apply_cluster(&sim, &manifest("alpha", None), ATTACKER_NAMESPACE).await;
    wait_for(
        &sim,
        ATTACKER_NAMESPACE,
        "alpha",
        TIMEOUT,
        "alpha Ready",
        ready,
    )
    .await;
    let before = secret(&sim, "alpha-unseal-keys")
        .await
        .expect("alpha's keys");
    let own_read = Api::<Secret>::namespaced(mallory.clone(), ATTACKER_NAMESPACE)
        .get("alpha-unseal-keys")
        .await;
    assert!(
        matches!(own_read, Err(kube::Error::Api(ref s)) if s.code == 403),
        "the attacker cannot read Secrets themselves"
    );

    // The attack: a cluster of their own whose keys Secret is alpha's.
    attacker_creates(&mallory, &manifest("mallet", Some("alpha-unseal-keys"))).await;
    let refused = wait_for(
        &sim,
        ATTACKER_NAMESPACE,
        "mallet",
        TIMEOUT,
        "mallet refused alpha's keys",
        |vc| says(vc, "holds the keys of VaultCluster alpha"),
    )
    .await;
    assert!(!ready(&refused));

    // Nothing of alpha's moved, and nothing was unsealed or initialized with it.
    let after = secret(&sim, "alpha-unseal-keys")
        .await
        .expect("alpha's keys");
    assert_eq!(after.data, before.data, "alpha's keys are unchanged");
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "alpha's keys Secret was not even rewritten"
    );
    let touched: Vec<String> = sim
        .exec_audit()
        .iter()
        .filter(|r| r.pod.name.starts_with("mallet"))
        .filter(|r| r.argv.iter().any(|a| a == "unseal" || a == "init"))
        .map(|r| r.argv.join(" "))
        .collect();
    assert!(
        touched.is_empty(),
        "mallet's pods were handed keys: {touched:?}"
    );

    // Deleting the attacker's cluster with deletionPolicy Delete leaves alpha's keys.
    attacker_deletes(&mallory, "mallet").await;
    let kept = secret(&sim, "alpha-unseal-keys")
        .await
        .expect("alpha's keys survive the attacker's cluster");
    assert_eq!(kept.data, before.data);
    let alpha = wait_for(
        &sim,
        ATTACKER_NAMESPACE,
        "alpha",
        TIMEOUT,
        "alpha Ready",
        ready,
    )
    .await;
    assert!(ready(&alpha));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_cluster_never_deletes_a_secret_that_is_not_its_own() {
    let sim = SimCluster::start(SimConfig::for_slot(181))
        .await
        .expect("the simulated cluster starts");
    let _operator = Operator::install_and_start_watching(&sim, &[ATTACKER_NAMESPACE]).await;
    let mallory = attacker(&sim).await.expect("the attacker's account");
    // A Secret the platform keeps in the team's namespace, which the attacker may not touch.
    let admin_secrets = Api::<Secret>::namespaced(sim.client().expect("admin"), ATTACKER_NAMESPACE);
    let platform: Secret = serde_json::from_value(json!({
        "metadata": {"name": "platform-db", "namespace": ATTACKER_NAMESPACE},
        "stringData": {"password": "correct horse battery staple"},
    }))
    .expect("a Secret");
    admin_secrets
        .create(&PostParams::default(), &platform)
        .await
        .expect("created");
    let before = secret(&sim, "platform-db")
        .await
        .expect("the platform Secret");
    assert!(
        Api::<Secret>::namespaced(mallory.clone(), ATTACKER_NAMESPACE)
            .delete("platform-db", &DeleteParams::default())
            .await
            .is_err(),
        "the attacker cannot delete it themselves"
    );

    // The attack: make the operator do it.
    attacker_creates(&mallory, &manifest("decoy", Some("platform-db"))).await;
    wait_for(
        &sim,
        ATTACKER_NAMESPACE,
        "decoy",
        TIMEOUT,
        "the finalizer",
        |vc| {
            vc.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty())
                && vc.status.is_some()
        },
    )
    .await;
    attacker_deletes(&mallory, "decoy").await;
    let after = secret(&sim, "platform-db")
        .await
        .expect("the platform Secret survives deletionPolicy Delete");
    assert_eq!(after.data, before.data, "and is unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_and_name_pairs_that_once_collided_keep_their_own_bindings() {
    let sim = SimCluster::start(SimConfig::for_slot(182))
        .await
        .expect("the simulated cluster starts");
    let _operator = Operator::install_and_start_watching(&sim, &["a-b", "a"]).await;
    let bindings: Api<ClusterRoleBinding> = Api::all(sim.client().expect("admin"));
    // Someone else's binding under the old, collision-prone name of cluster a/b-c.
    let foreign: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "a-b-c-server-binding"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [{"kind": "ServiceAccount", "name": "vault", "namespace": "payroll"}],
    }))
    .expect("a binding");
    bindings
        .create(&PostParams::default(), &foreign)
        .await
        .expect("created");

    apply_cluster(&sim, &manifest("c", None), "a-b").await;
    apply_cluster(&sim, &manifest("b-c", None), "a").await;
    let deadline = Instant::now() + TIMEOUT;
    for name in ["a-b:c-server-binding", "a:b-c-server-binding"] {
        while bindings.get_opt(name).await.expect("read").is_none() {
            assert!(Instant::now() < deadline, "{name} was never created");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // Deleting a/b-c removes its binding, and neither the other cluster's nor the foreign one.
    let clusters: Api<VaultCluster> = Api::namespaced(sim.client().expect("admin"), "a");
    clusters
        .delete("b-c", &DeleteParams::default())
        .await
        .expect("deleted");
    while bindings
        .get_opt("a:b-c-server-binding")
        .await
        .expect("read")
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "a/b-c's binding was never removed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        bindings
            .get_opt("a-b:c-server-binding")
            .await
            .expect("read")
            .is_some()
    );
    let kept = bindings
        .get_opt("a-b-c-server-binding")
        .await
        .expect("read")
        .expect("the binding under the old name is not this cluster's, so it stays");
    assert_eq!(kept.subjects, foreign.subjects);
}
