//! Scheduled backups end to end on the simulated cluster: the operator renders the backup
//! CronJob, the simulated CronJob controller fires it (every minute), the Job's pod runs the real `vaultkeeper backup` against
//! the real OpenBao pods and a real S3 server (moto) on loopback, and the operator turns
//! the Job's outcome into `status.backup`, the `BackupHealthy` condition, the Last Backup
//! column of `kubectl get vc` and an Event. A bucket that does not exist makes
//! BackupHealthy False with the S3 error as the reason; turning backups off removes the
//! CronJob and the condition.

use std::time::Duration;

use k8s_openapi::api::batch::v1::CronJob;
use kube::api::{Api, Patch, PatchParams};
use vaultkeeper_api::VaultCluster;
use vaultkeeper_e2e::install;
use vaultkeeper_e2e::moto::Moto;
use vaultkeeper_e2e::operator::{Operator, apply_cluster, cluster_with_pods, ready, wait_for};

const SLOT: u8 = 161;
const NAMESPACE: &str = "backups";
const BUCKET: &str = "vault-snapshots";

const MANIFEST: &str = r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: openbao
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 1
  backup:
    schedule: "* * * * *"
    s3:
      bucket: vault-snapshots
      region: us-east-1
      endpoint: http://127.31.0.1:5000
      forcePathStyle: true
      prefix: e2e
      credentialsSecret:
        name: backup-s3
    retention:
      keepLast: 5
"#;

fn kubectl_get_vc(kubeconfig: &str) -> String {
    install::run(
        &install::kubectl().expect("kubectl"),
        &[
            "--kubeconfig",
            kubeconfig,
            "get",
            "vaultclusters",
            "-n",
            NAMESPACE,
        ],
    )
    .expect("kubectl get vc")
}

fn backup_condition(vc: &VaultCluster) -> Option<(String, String, String)> {
    vc.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "BackupHealthy")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_backup_reaches_s3_and_the_status_and_a_failing_bucket_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let moto = Moto::start(dir.path(), "127.31.0.1");
    assert!(
        moto.request("PUT", &format!("/{BUCKET}"))
            .starts_with("HTTP/1.1 200")
    );

    let sim = cluster_with_pods(SLOT).await;
    let mut operator = Operator::install_and_start(&sim).await;
    let admin = sim.client().expect("admin client");
    vaultkeeper_e2e::operator::create_namespace(&admin, NAMESPACE).await;
    vaultkeeper_e2e::moto::s3_credentials(&admin, NAMESPACE).await;
    apply_cluster(&sim, MANIFEST, NAMESPACE).await;
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(180),
        "Ready",
        ready,
    )
    .await;
    // The CronJob was held suspended until bootstrap created the backup role, so no run
    // has failed for lack of it.
    assert_eq!(
        backup_condition(&vc).map(|c| c.0),
        Some("True".into()),
        "no failed backup on a new cluster: {:?}",
        backup_condition(&vc)
    );
    let cronjobs: Api<CronJob> = Api::namespaced(admin.clone(), NAMESPACE);
    assert!(
        cronjobs
            .get_opt("openbao-backup")
            .await
            .expect("get")
            .is_some()
    );

    // The schedule fires every minute. (Moving the cluster's clock forward instead would
    // also age every service-account token past its expiry and its not-before time,
    // which OpenBao's Kubernetes auth checks.)
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(180),
        "a successful backup in status",
        |vc| {
            vc.status
                .as_ref()
                .and_then(|s| s.backup.as_ref())
                .is_some_and(|b| b.last_success_time.is_some())
        },
    )
    .await;
    let backup = vc
        .status
        .as_ref()
        .and_then(|s| s.backup.clone())
        .expect("backup");
    let object = backup.last_object.clone().expect("the object is named");
    assert!(object.starts_with("e2e/"), "{object}");
    assert!(backup.last_size_bytes.unwrap_or_default() > 0, "{backup:?}");
    let (status, reason, _) = backup_condition(&vc).expect("BackupHealthy");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "BackupSucceeded")
    );
    // The object is really in the bucket.
    let listing = moto.request("GET", &format!("/{BUCKET}?list-type=2&prefix=e2e/"));
    assert!(listing.contains(&object), "{listing}");
    // kubectl shows it in the Last Backup column.
    let kubeconfig = sim.kubeconfig_path().to_string_lossy().into_owned();
    let table = kubectl_get_vc(&kubeconfig);
    let header = table.lines().next().expect("header");
    let column = header.find("LAST BACKUP").expect("Last Backup column");
    let row = table.lines().nth(1).expect("row");
    assert!(
        row.get(column..column + 3)
            .is_some_and(|c| !c.trim().is_empty()),
        "Last Backup is filled in:\n{table}"
    );

    // A bucket that does not exist: the next run fails and says why.
    let api: Api<VaultCluster> = Api::namespaced(admin.clone(), NAMESPACE);
    api.patch(
        "openbao",
        &PatchParams::default(),
        &Patch::Merge(
            serde_json::json!({"spec": {"backup": {"s3": {"bucket": "no-such-bucket"}}}}),
        ),
    )
    .await
    .expect("patch");
    wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(60),
        "the new CronJob",
        |vc| vc.status.as_ref().and_then(|s| s.observed_generation) == vc.metadata.generation,
    )
    .await;
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(180),
        "BackupHealthy=False",
        |vc| backup_condition(vc).is_some_and(|c| c.0 == "False"),
    )
    .await;
    let (_, reason, message) = backup_condition(&vc).expect("BackupHealthy");
    assert_eq!(reason, "BackupFailed", "{message}");
    assert!(
        message.contains("no-such-bucket") || message.contains("NoSuchBucket"),
        "{message}"
    );
    let backup = vc
        .status
        .as_ref()
        .and_then(|s| s.backup.clone())
        .expect("backup");
    assert_eq!(
        backup.last_object.as_deref(),
        Some(object.as_str()),
        "the last good backup is still named"
    );
    assert!(backup.last_failure_reason.is_some());
    // Ready is about Vault: a failed backup does not make the cluster unready.
    assert!(ready(&vc));
    let events = install::run(
        &install::kubectl().expect("kubectl"),
        &[
            "--kubeconfig",
            &kubeconfig,
            "get",
            "events",
            "-n",
            NAMESPACE,
        ],
    )
    .expect("events");
    assert!(events.contains("BackupSucceeded"), "{events}");
    assert!(events.contains("BackupFailed"), "{events}");

    // Backups off: the CronJob and the condition go.
    api.patch(
        "openbao",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"backup": {"enabled": false}}})),
    )
    .await
    .expect("patch");
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(60),
        "no BackupHealthy",
        |vc| ready(vc) && backup_condition(vc).is_none(),
    )
    .await;
    let record = vc.status.as_ref().and_then(|s| s.backup.clone());
    assert!(record.is_none(), "no backup record is left: {record:?}");
    let gone = cronjobs.get_opt("openbao-backup").await.expect("get");
    assert!(gone.is_none(), "the CronJob was pruned");

    operator.stop().await;
    sim.shutdown().await;
}
