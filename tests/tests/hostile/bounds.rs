//! Issue 13, findings 7 and 9: a pod that floods whatever reads it, and a Job that claims
//! a backup nobody took.
//!
//! - The attacker's VaultCluster runs an image whose CLI answers every command with a
//!   gigabyte. The operator reads a megabyte of it, says which cap was hit, keeps its own
//!   memory bounded, and keeps serving a neighbour's cluster.
//! - A Job that carries the backup Jobs' labels but was not created by the backup
//!   CronJob reports nothing; the same Job created under the CronJob does, which shows the
//!   observation was live all along.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, PostParams};
use vaultkeeper_api::VaultCluster;
use vaultkeeper_e2e::hostile::{ATTACKER_NAMESPACE, VICTIM_NAMESPACE, attacker};
use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, capture_logs, cluster_with_images, cluster_with_pods, count_events,
    diagnose, events, ready, wait_for,
};
use vaultkeeper_sim::runtime::{DEFAULT_PATH, ImageRule};

const TIMEOUT: Duration = Duration::from_secs(240);

/// A "Vault" whose server idles and whose CLI answers every command with 1 GiB.
const FLOOD_CLI: &str = "#!/bin/sh\n\
# Stands in for a Vault image chosen to exhaust whoever reads its output.\n\
if [ \"$1\" = server ]; then exec sleep 100000; fi\n\
exec head -c 1073741824 /dev/zero\n";

fn flood_image(dir: &Path) -> ImageRule {
    let binary = dir.join("flood-cli");
    std::fs::write(&binary, FLOOD_CLI).expect("the flooding CLI is written");
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("executable");
    ImageRule {
        repository: "attacker/flood".into(),
        binary,
        names: vec!["bao".into(), "vault".into()],
        entrypoint: Vec::new(),
        cmd: Vec::new(),
        env: vec![("PATH".into(), DEFAULT_PATH.into())],
        user: 0,
        files: Vec::new(),
        shell: None,
    }
}

/// How many commands the operator ran in pods of `namespace`.
fn commands_in(sim: &vaultkeeper_sim::SimCluster, namespace: &str) -> usize {
    sim.exec_audit()
        .iter()
        .filter(|r| r.pod.namespace == namespace)
        .count()
}

/// This process's resident memory (the operator and the simulated API server run in it;
/// the pods are processes of their own).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/self/status")
}

const FLOODING_CLUSTER: &str = r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: flood
spec:
  flavor: OpenBao
  image: attacker/flood:1
  replicas: 1
  backup:
    enabled: false
"#;

const HONEST_CLUSTER: &str = r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: honest
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 1
  backup:
    enabled: false
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_answering_with_a_gigabyte_costs_the_operator_a_megabyte_and_no_other_cluster() {
    let logs = capture_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = cluster_with_images(175, vec![flood_image(dir.path())]).await;
    let mallory = attacker(&sim).await.expect("the attacker exists");
    let mut operator = Operator::install_and_start(&sim).await;
    let before = resident_bytes();

    let mut flood = vaultkeeper_api::parse_manifests(FLOODING_CLUSTER)
        .expect("manifest")
        .remove(0);
    flood.metadata.namespace = Some(ATTACKER_NAMESPACE.into());
    Api::<VaultCluster>::namespaced(mallory, ATTACKER_NAMESPACE)
        .create(&PostParams::default(), &flood)
        .await
        .expect("the attacker may create a VaultCluster");
    apply_cluster(&sim, HONEST_CLUSTER, VICTIM_NAMESPACE).await;

    // The operator runs commands in the flooding pod and stops at the cap.
    let cap = "1 MiB limit on the standard output of a command run in the pod";
    let deadline = Instant::now() + TIMEOUT;
    while !logs.text().contains(cap) {
        if Instant::now() > deadline {
            diagnose(&sim, ATTACKER_NAMESPACE);
            panic!("the operator never reported the cap on exec output");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let floods = commands_in(&sim, ATTACKER_NAMESPACE);
    assert!(floods > 0, "the operator ran commands in the flooding pod");

    // The neighbour's cluster is served meanwhile; the flooding one is reported as a pod
    // that does not answer.
    wait_for(&sim, VICTIM_NAMESPACE, "honest", TIMEOUT, "Ready", ready).await;
    let vc = wait_for(
        &sim,
        ATTACKER_NAMESPACE,
        "flood",
        TIMEOUT,
        "the flooding pod reported as not answering",
        |vc| {
            vc.status
                .as_ref()
                .is_some_and(|s| s.nodes.iter().any(|n| n.name == "flood-0" && !n.reachable))
        },
    )
    .await;
    assert!(!ready(&vc), "a cluster whose pod floods is not Ready");

    // A few more passes over the flooding pod, then memory is measured.
    let deadline = Instant::now() + TIMEOUT;
    while commands_in(&sim, ATTACKER_NAMESPACE) < floods + 3 {
        assert!(
            Instant::now() < deadline,
            "the operator stopped reconciling"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let grown = resident_bytes().saturating_sub(before);
    let floods = commands_in(&sim, ATTACKER_NAMESPACE);
    eprintln!(
        "{floods} commands in the flooding pod, each offered 1 GiB; resident memory grew by \
         {} MiB (two clusters started meanwhile)",
        grown / (1024 * 1024)
    );
    assert!(
        grown < 256 * 1024 * 1024,
        "resident memory grew by {grown} bytes over {floods} commands offering 1 GiB each"
    );
    wait_for(
        &sim,
        VICTIM_NAMESPACE,
        "honest",
        TIMEOUT,
        "still Ready",
        ready,
    )
    .await;
    operator.stop().await;
    sim.shutdown().await;
}

const BACKED_UP_CLUSTER: &str = r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: vault
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 1
  backup:
    # Once a year: the real CronJob does not run during the test.
    schedule: "0 0 1 1 *"
    s3:
      bucket: vault-snapshots
      region: us-east-1
      credentialsSecret:
        name: backup-s3
"#;

/// A Job that says "backup written" with the backup Jobs' labels; `owner` makes it the
/// CronJob's.
fn claimed_backup(name: &str, owner: Option<&CronJob>) -> Job {
    let mut job = serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/instance": "vault",
                "app.kubernetes.io/component": "backup",
            },
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"job-name": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "backup",
                        "image": "ghcr.io/vaultkeeper/vaultkeeper:e2e",
                        "command": ["/bin/sh", "-c",
                            "echo '{\"status\":\"ok\",\"object\":\"forged.vkb\",\"size\":1,\"duration_ms\":1}'"],
                    }],
                },
            },
        },
    });
    if let Some(cronjob) = owner {
        job["metadata"]["ownerReferences"] = serde_json::json!([{
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": cronjob.metadata.name,
            "uid": cronjob.metadata.uid,
            "controller": true,
        }]);
    }
    serde_json::from_value(job).expect("a Job")
}

fn last_backup_object(vc: &VaultCluster) -> Option<String> {
    vc.status
        .as_ref()
        .and_then(|s| s.backup.as_ref())
        .and_then(|b| b.last_object.clone())
}

async fn wait_for_job_to_finish(jobs: &Api<Job>, name: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let done = jobs
            .get(name)
            .await
            .ok()
            .and_then(|j| j.status)
            .is_some_and(|s| {
                s.conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            });
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "Job {name} never completed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_with_our_labels_that_our_cronjob_did_not_create_reports_no_backup() {
    let sim = cluster_with_pods(176).await;
    let mut operator = Operator::install_and_start(&sim).await;
    let admin = sim.client().expect("admin client");
    let namespace = VICTIM_NAMESPACE;
    apply_cluster(&sim, BACKED_UP_CLUSTER, namespace).await;
    vaultkeeper_e2e::moto::s3_credentials(&admin, namespace).await;
    let cronjobs: Api<CronJob> = Api::namespaced(admin.clone(), namespace);
    let deadline = Instant::now() + TIMEOUT;
    let cronjob = loop {
        if let Ok(Some(c)) = cronjobs.get_opt("vault-backup").await {
            break c;
        }
        assert!(Instant::now() < deadline, "no backup CronJob");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Someone who may create Jobs in the namespace forges a successful backup.
    let jobs: Api<Job> = Api::namespaced(admin, namespace);
    jobs.create(&PostParams::default(), &claimed_backup("forged", None))
        .await
        .expect("the forged Job is created");
    wait_for_job_to_finish(&jobs, "forged").await;
    // Passes after the forged Job finished (the operator resyncs every few seconds).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let vc = wait_for(&sim, namespace, "vault", TIMEOUT, "a status", |vc| {
        vc.status.is_some()
    })
    .await;
    assert_eq!(
        last_backup_object(&vc),
        None,
        "a forged Job reported a backup"
    );
    let seen = events(&sim, namespace).await;
    assert_eq!(
        count_events(&seen, "BackupSucceeded"),
        0,
        "a forged Job produced a BackupSucceeded Event: {seen:?}"
    );

    // The same Job under the CronJob counts: the observation was live all along.
    jobs.create(
        &PostParams::default(),
        &claimed_backup("owned", Some(&cronjob)),
    )
    .await
    .expect("the owned Job is created");
    let vc = wait_for(
        &sim,
        namespace,
        "vault",
        TIMEOUT,
        "the owned Job's backup in status",
        |vc| last_backup_object(vc).is_some(),
    )
    .await;
    assert_eq!(last_backup_object(&vc).as_deref(), Some("forged.vkb"));
    operator.stop().await;
    sim.shutdown().await;
}
