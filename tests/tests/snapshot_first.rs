//! A backup before disruption, end to end on the simulated cluster with the real OpenBao
//! and a real S3 server (moto): an image change first runs the one-off backup Job, which
//! writes its object to the bucket, and only then is the pod replaced; a backup that
//! fails (the bucket does not exist) blocks the next image change with the condition
//! SnapshotBeforeDisruption naming the Job and the override, until the override
//! (`spec.backup.beforeDisruption: Skip`) lets the rollout finish.
//!
//! The schedule never fires during the test (once a year), so every object in the bucket
//! is a snapshot's. Bounds: each wait is at most 120 s (Ready at most 180 s); the whole
//! test took 64 s on a busy 2-CPU machine (Ready 20 s, the roll after its snapshot 15 s,
//! the failed snapshot 4 s, the roll with the override 18 s).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use vaultkeeper_api::{SnapshotOutcome, VaultCluster};
use vaultkeeper_e2e::moto::Moto;
use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, cluster_with_pods, patch_spec, ready, wait_for,
};

const SLOT: u8 = 220;
const NAMESPACE: &str = "snapshots";
const S3_HOST: &str = "127.31.1.220";
const BUCKET: &str = "before-disruption";
const WAIT: Duration = Duration::from_secs(120);

fn manifest() -> String {
    format!(
        r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: openbao
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 1
  backup:
    schedule: "0 0 1 1 *"
    s3:
      bucket: {BUCKET}
      region: us-east-1
      endpoint: http://{S3_HOST}:5000
      forcePathStyle: true
      prefix: e2e
      credentialsSecret:
        name: backup-s3
"#
    )
}

fn snapshot_condition(vc: &VaultCluster) -> Option<(String, String, String)> {
    vc.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "SnapshotBeforeDisruption")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    })
}

/// The pod's UID and image.
async fn pod(pods: &Api<Pod>) -> (String, String) {
    let pod = pods.get("openbao-0").await.expect("the pod");
    let image = pod
        .spec
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image)
        .unwrap_or_default();
    (pod.metadata.uid.unwrap_or_default(), image)
}

/// Rolled: Ready for this generation, no operation left, the pod on `image`.
fn rolled(vc: &VaultCluster) -> bool {
    ready(vc) && vc.status.as_ref().is_some_and(|s| s.operation.is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_change_takes_a_snapshot_first_and_a_failed_one_blocks_until_skipped() {
    let started = std::time::Instant::now();
    let phase = |what: &str| eprintln!("{:>6.1} s  {what}", started.elapsed().as_secs_f64());
    let dir = tempfile::tempdir().expect("tempdir");
    let moto = Moto::start(dir.path(), S3_HOST);
    assert!(
        moto.request("PUT", &format!("/{BUCKET}"))
            .starts_with("HTTP/1.1 200")
    );
    let listing = || moto.request("GET", &format!("/{BUCKET}?list-type=2&prefix=e2e/"));

    let sim = cluster_with_pods(SLOT).await;
    let mut operator = Operator::install_and_start(&sim).await;
    let admin = sim.client().expect("admin client");
    vaultkeeper_e2e::operator::create_namespace(&admin, NAMESPACE).await;
    vaultkeeper_e2e::moto::s3_credentials(&admin, NAMESPACE).await;
    apply_cluster(&sim, &manifest(), NAMESPACE).await;
    wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(180),
        "Ready",
        ready,
    )
    .await;
    phase("Ready");
    assert!(
        !listing().contains("<Key>"),
        "no backup before the first disruption: {}",
        listing()
    );
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let jobs: Api<Job> = Api::namespaced(admin.clone(), NAMESPACE);
    let (first_uid, _) = pod(&pods).await;

    // 1. An image change: the snapshot first, then the pod.
    sim.clear_requests();
    patch_spec(
        &sim,
        NAMESPACE,
        "openbao",
        serde_json::json!({"image": "quay.io/openbao/openbao:2.7.3"}),
    )
    .await;
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        WAIT,
        "rolled to 2.7.3 after a snapshot",
        |vc| rolled(vc) && vc.status.as_ref().is_some_and(|s| s.snapshot.is_some()),
    )
    .await;
    phase("rolled after the snapshot");
    let (second_uid, image) = pod(&pods).await;
    assert_eq!(image, "quay.io/openbao/openbao:2.7.3");
    assert_ne!(first_uid, second_uid, "the pod was replaced");
    let snapshot = vc
        .status
        .as_ref()
        .and_then(|s| s.snapshot.clone())
        .expect("status.snapshot");
    assert_eq!(snapshot.outcome, SnapshotOutcome::Taken, "{snapshot:?}");
    assert!(
        snapshot.operation.starts_with("RollingUpdate to revision "),
        "{snapshot:?}"
    );
    let job_name = snapshot.job.clone().expect("the Job is named");
    let object = snapshot.object.clone().expect("the object is named");
    assert!(object.starts_with("e2e/"), "{object}");
    assert!(
        listing().contains(&object),
        "the snapshot is in the bucket: {}",
        listing()
    );
    let (status, reason, _) = snapshot_condition(&vc).expect("the condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "SnapshotTaken")
    );
    // The Job is the cluster's, labelled as a snapshot, and finished before the new pod
    // was created.
    let job = jobs.get(&job_name).await.expect("the snapshot Job");
    let labels = job.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("vaultkeeper.io/snapshot").map(String::as_str),
        Some("before-disruption")
    );
    let owner = job
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|o| o.controller == Some(true))
        .expect("a controller");
    assert_eq!(
        (owner.kind.as_str(), Some(owner.uid.as_str())),
        ("VaultCluster", vc.metadata.uid.as_deref())
    );
    let completed = job
        .status
        .as_ref()
        .and_then(|s| s.completion_time.clone())
        .expect("the Job completed")
        .0;
    let created = pods
        .get("openbao-0")
        .await
        .expect("pod")
        .metadata
        .creation_timestamp
        .expect("created")
        .0;
    assert!(completed <= created, "{completed} before {created}");
    // The order as the API server saw it: the Job created, its outcome read from its
    // pod's log (read only once it finished), and only then the pod deleted; exactly one
    // snapshot Job created.
    let requests = sim.requests();
    let position = |what: &str, found: &dyn Fn(&vaultkeeper_sim::RequestRecord) -> bool| {
        requests
            .iter()
            .position(found)
            .unwrap_or_else(|| panic!("no request {what}"))
    };
    let created_job = position("creating the Job", &|r| {
        r.verb == "create" && r.resource == "jobs" && r.code == 201
    });
    let read_outcome = position("reading the Job's log", &|r| {
        r.resource == "pods" && r.subresource == "log" && r.name.starts_with(&job_name)
    });
    let deleted_pod = position("deleting the pod", &|r| {
        r.verb == "delete" && r.resource == "pods" && r.name == "openbao-0"
    });
    assert!(
        created_job < read_outcome && read_outcome < deleted_pod,
        "Job created at {created_job}, its outcome read at {read_outcome}, pod deleted at {deleted_pod}"
    );
    let job_creates = requests
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs")
        .count();
    assert_eq!(job_creates, 1, "one snapshot Job for one operation");

    // 2. The next image change, with a bucket that does not exist: the snapshot fails
    //    and the rollout is blocked, the pod untouched.
    patch_spec(
        &sim,
        NAMESPACE,
        "openbao",
        serde_json::json!({
            "image": "quay.io/openbao/openbao:2.7.2",
            "backup": {"s3": {"bucket": "no-such-bucket"}},
        }),
    )
    .await;
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        WAIT,
        "SnapshotBeforeDisruption False, SnapshotFailed",
        |vc| snapshot_condition(vc).is_some_and(|(s, r, _)| s == "False" && r == "SnapshotFailed"),
    )
    .await;
    phase("blocked by the failed snapshot");
    let (_, _, message) = snapshot_condition(&vc).expect("the condition");
    assert!(
        message.contains("spec.backup.beforeDisruption: Skip"),
        "names the override: {message}"
    );
    assert!(
        message.contains("no-such-bucket") || message.contains("NoSuchBucket"),
        "names the failure: {message}"
    );
    let failed_job = message
        .split_whitespace()
        .find(|w| w.starts_with("openbao-backup-s"))
        .map(|w| w.trim_end_matches([',', '.', ':']).to_owned())
        .expect("names the Job");
    assert_ne!(failed_job, job_name, "another operation, another Job");
    assert_eq!(
        vc.status
            .as_ref()
            .and_then(|s| s.operation.as_ref())
            .map(|o| o.kind),
        Some(vaultkeeper_api::OperationKind::RollingUpdate),
        "the rollout holds the lock while it waits"
    );
    // Blocked for a while: a few more passes, and the pod is still the old one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        pod(&pods).await,
        (
            second_uid.clone(),
            "quay.io/openbao/openbao:2.7.3".to_owned()
        ),
        "nothing disruptive ran after the failed snapshot"
    );
    let events: Api<Event> = Api::namespaced(admin.clone(), NAMESPACE);
    let notes: Vec<(String, String)> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect();
    for reason in ["SnapshotStarted", "SnapshotTaken", "SnapshotFailed"] {
        assert!(
            notes.iter().any(|(r, _)| r == reason),
            "an Event {reason}: {notes:?}"
        );
    }

    // 3. The override: the rollout goes on without a snapshot, and status says so.
    patch_spec(
        &sim,
        NAMESPACE,
        "openbao",
        serde_json::json!({"backup": {"beforeDisruption": "Skip"}}),
    )
    .await;
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        WAIT,
        "rolled to 2.7.2 without a snapshot",
        |vc| {
            rolled(vc)
                && vc
                    .status
                    .as_ref()
                    .and_then(|s| s.snapshot.as_ref())
                    .is_some_and(|s| s.outcome == SnapshotOutcome::Skipped)
        },
    )
    .await;
    phase("rolled with the override");
    let (third_uid, image) = pod(&pods).await;
    assert_eq!(image, "quay.io/openbao/openbao:2.7.2");
    assert_ne!(third_uid, second_uid, "the pod was replaced");
    let (status, reason, _) = snapshot_condition(&vc).expect("the condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "SnapshotSkipped")
    );

    operator.stop().await;
    sim.shutdown().await;
}
