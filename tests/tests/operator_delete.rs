//! Deleting a VaultCluster. With the default `deletionPolicy: Retain` the keys Secret and
//! the raft volumes stay, and applying the same manifest again adopts them: no second
//! init, the same keys, the data written before still readable. With `Delete` the keys
//! Secret, the backup key, the volumes and the cluster-scoped ClusterRoleBinding go.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use vaultkeeper_api::VaultCluster;
use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, bao_at, capture_logs, cluster_with_pods, count_events, events,
    init_commands, ready, stored_keys, wait_for,
};
use vaultkeeper_sim::SimCluster;
use vaultkeeper_vault::secret::ExposeSecret;

const TIMEOUT: Duration = Duration::from_secs(300);

fn manifest(name: &str, policy: &str, backup: &str) -> String {
    format!(
        r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: {name}
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 1
  keys:
    rootToken: Keep
  deletionPolicy: {policy}
  backup:
{backup}
"#
    )
}

/// Deletes the VaultCluster as a user would and waits until it is gone (the finalizer
/// ran) and its pods are gone (garbage collection ran).
async fn delete_and_wait(sim: &SimCluster, namespace: &str, name: &str) {
    let admin = sim.client().expect("admin");
    let clusters: Api<VaultCluster> = Api::namespaced(admin.clone(), namespace);
    clusters
        .delete(name, &DeleteParams::default())
        .await
        .expect("the delete is accepted");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin, namespace);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let gone = clusters.get_opt(name).await.expect("read").is_none();
        let no_pods = pods
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
            .await
            .expect("list pods")
            .items
            .is_empty();
        if gone && no_pods {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the VaultCluster (gone: {gone}) and its pods (gone: {no_pods}) were not deleted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn pvcs(sim: &SimCluster, namespace: &str) -> Vec<String> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(sim.client().expect("admin"), namespace);
    api.list(&ListParams::default())
        .await
        .expect("list PVCs")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

async fn secret_data(sim: &SimCluster, namespace: &str, name: &str) -> Option<Vec<u8>> {
    let api: Api<Secret> = Api::namespaced(sim.client().expect("admin"), namespace);
    api.get_opt(name)
        .await
        .expect("read Secret")
        .and_then(|s| s.data)
        .and_then(|d| d.get("init.json").map(|b| b.0.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retain_keeps_keys_and_data_and_reapplying_adopts_without_a_second_init() {
    let _logs = capture_logs();
    let sim = cluster_with_pods(142).await;
    let mut operator = Operator::install_and_start(&sim).await;
    let yaml = manifest("keep", "Retain", "    enabled: false");
    apply_cluster(&sim, &yaml, "keep").await;
    wait_for(&sim, "keep", "keep", TIMEOUT, "Ready", ready).await;

    let before = secret_data(&sim, "keep", "keep-unseal-keys")
        .await
        .expect("the keys Secret");
    let keys = stored_keys(&sim, "keep", "keep-unseal-keys")
        .await
        .expect("keys");
    let root = keys
        .root_token
        .as_ref()
        .expect("rootToken: Keep keeps it")
        .expose_secret()
        .to_owned();
    // Data in the barrier: a policy, written through the real API.
    let policy = "path \"e2e/retained\" { capabilities = [\"read\"] }";
    let policy_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(policy_file.path(), policy).expect("write policy");
    let path = policy_file.path().to_string_lossy().into_owned();
    bao_at(
        &sim,
        "keep",
        "keep-0",
        &root,
        &["policy", "write", "retained", &path],
    )
    .await
    .expect("policy written");
    let volumes = pvcs(&sim, "keep").await;
    assert!(!volumes.is_empty(), "a raft volume exists");

    delete_and_wait(&sim, "keep", "keep").await;
    assert_eq!(
        secret_data(&sim, "keep", "keep-unseal-keys")
            .await
            .as_deref(),
        Some(before.as_slice()),
        "Retain keeps the keys Secret as it was"
    );
    assert_eq!(
        pvcs(&sim, "keep").await,
        volumes,
        "Retain keeps the volumes"
    );

    // The same manifest again: the operator finds the keys and an initialized Vault.
    apply_cluster(&sim, &yaml, "keep").await;
    let vc = wait_for(&sim, "keep", "keep", TIMEOUT, "Ready after re-apply", ready).await;
    assert!(vc.status.as_ref().is_some_and(|s| s.initialized));
    assert_eq!(init_commands(&sim, "keep"), 1, "never a second init");
    assert_eq!(
        secret_data(&sim, "keep", "keep-unseal-keys")
            .await
            .as_deref(),
        Some(before.as_slice()),
        "the keys Secret is the same one"
    );
    let read = bao_at(
        &sim,
        "keep",
        "keep-0",
        &root,
        &["policy", "read", "retained"],
    )
    .await
    .expect("the policy written before the delete is readable");
    assert!(read.contains("e2e/retained"), "{read}");
    let initialized = count_events(&events(&sim, "keep").await, "Initialized");
    assert_eq!(initialized, 1, "one Initialized Event over both lives");

    operator.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_policy_removes_keys_backup_key_volumes_and_the_cluster_role_binding() {
    let _logs = capture_logs();
    let sim = cluster_with_pods(143).await;
    let mut operator = Operator::install_and_start(&sim).await;
    let admin = sim.client().expect("admin");
    // Backups to S3 make the operator generate the backup encryption key; the schedule
    // never fires during the test.
    let yaml = manifest(
        "gone",
        "Delete",
        r#"    schedule: "0 0 1 1 *"
    s3:
      bucket: snapshots
      region: us-east-1
      endpoint: http://127.0.0.1:9
      credentialsSecret:
        name: gone-s3"#,
    );
    apply_cluster(&sim, &yaml, "gone").await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "gone");
    let mut credentials = Secret::default();
    credentials.metadata.name = Some("gone-s3".into());
    credentials.string_data = Some(
        [
            ("AWS_ACCESS_KEY_ID".to_owned(), "e2e".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "e2e-secret".to_owned()),
        ]
        .into(),
    );
    let _ = secrets.create(&PostParams::default(), &credentials).await;
    wait_for(&sim, "gone", "gone", TIMEOUT, "Ready", ready).await;

    let crbs: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let crb = vaultkeeper_api::ClusterNames::new("gone").server_cluster_role_binding("gone");
    assert!(
        crbs.get_opt(&crb).await.expect("read").is_some(),
        "{crb} exists"
    );
    assert!(
        secrets
            .get_opt("gone-unseal-keys")
            .await
            .expect("read")
            .is_some()
    );
    let backup_key = vaultkeeper_api::ClusterNames::new("gone").default_backup_key_secret();
    assert!(
        secrets.get_opt(&backup_key).await.expect("read").is_some(),
        "the backup key {backup_key} was generated"
    );
    assert!(!pvcs(&sim, "gone").await.is_empty());

    delete_and_wait(&sim, "gone", "gone").await;
    assert!(
        crbs.get_opt(&crb).await.expect("read").is_none(),
        "{crb} removed"
    );
    assert!(
        secrets
            .get_opt("gone-unseal-keys")
            .await
            .expect("read")
            .is_none(),
        "Delete removes the keys Secret"
    );
    assert!(
        secrets.get_opt(&backup_key).await.expect("read").is_none(),
        "Delete removes the backup key"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pvcs(&sim, "gone").await.is_empty() {
        assert!(Instant::now() < deadline, "Delete removes the volumes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deleted = events(&sim, "gone")
        .await
        .into_iter()
        .any(|e| e.reason == "Deleted");
    assert!(deleted, "the deletion is announced in an Event");

    operator.stop().await;
    sim.shutdown().await;
}
