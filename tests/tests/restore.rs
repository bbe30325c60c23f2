//! Disaster recovery with a `VaultRestore`, end to end: real OpenBao pods, the in-process
//! operator, a real S3 server (moto) on loopback. Secrets are written, backed up by the
//! real backup Job, more are written, then the cluster loses its data and its keys (the
//! VaultCluster, its volumes and its keys Secret are deleted, and it is applied again, so
//! it initializes anew with new keys). A VaultRestore of `latest`, given an escrow
//! recipient's identity, brings the first secrets back and not the later ones, swaps the
//! escrowed keys into the keys Secret (keeping the replaced record in a copy), and the
//! restarted pod is unsealed with them. A tampered backup and a foreign cluster's backup
//! are refused with a clear status, leaving the cluster as it was. One simulated cluster
//! serves every case.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use vaultkeeper_api::restore::RestorePhase;
use vaultkeeper_api::{OperationKind, VaultCluster, VaultRestore};
use vaultkeeper_backup::store::ObjectStore as _;
use vaultkeeper_e2e::install;
use vaultkeeper_e2e::moto::Moto;
use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, bao_at, capture_logs, cluster_with_pods, condition, events, ready,
    secrets_of, stored_keys, wait_for,
};
use vaultkeeper_sim::SimCluster;
use vaultkeeper_vault::secret::ExposeSecret;

const SLOT: u8 = 214;
const NAMESPACE: &str = "restore";
const S3_HOST: &str = "127.31.1.214";
const BUCKET: &str = "vault-restore-e2e";
const KEYS: &str = "openbao-unseal-keys";

fn manifest(recipient: &str, suspend: bool) -> String {
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
  keys:
    rootToken: Keep
    escrow:
      recipients: ["{recipient}"]
  backup:
    schedule: "* * * * *"
    suspend: {suspend}
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

async fn bucket() -> vaultkeeper_backup::s3::S3Store {
    let settings = vaultkeeper_backup::s3::S3Settings {
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        endpoint: Some(format!("http://{S3_HOST}:5000")),
        force_path_style: true,
        credentials: vaultkeeper_backup::s3::S3Credentials::Static {
            access_key_id: "testing".into(),
            secret_access_key: vaultkeeper_vault::secret::secret_string("testing".into()),
            session_token: None,
        },
        ca_pem: None,
        checksums_when_required: true,
    };
    vaultkeeper_backup::s3::S3Store::connect(&settings)
        .await
        .expect("S3 settings")
}

async fn root_token(sim: &SimCluster) -> String {
    stored_keys(sim, NAMESPACE, KEYS)
        .await
        .expect("the keys Secret")
        .root_token
        .expect("the root token is kept")
        .expose_secret()
        .to_owned()
}

async fn read(sim: &SimCluster, token: &str, path: &str) -> Result<String, String> {
    bao_at(
        sim,
        NAMESPACE,
        "openbao-0",
        token,
        &["read", "-field=value", path],
    )
    .await
}

async fn apply_restore(admin: &kube::Client, name: &str, spec: serde_json::Value) {
    let restore = serde_json::json!({
        "apiVersion": "vaultkeeper.io/v1alpha1", "kind": "VaultRestore",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    });
    install::apply_one(admin, &restore, "e2e")
        .await
        .expect("the VaultRestore applies");
}

async fn wait_restore(admin: &kube::Client, name: &str, within: Duration) -> VaultRestore {
    let api: Api<VaultRestore> = Api::namespaced(admin.clone(), NAMESPACE);
    let deadline = Instant::now() + within;
    loop {
        let vr = api.get(name).await.expect("the VaultRestore");
        if vr
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(RestorePhase::is_final)
        {
            return vr;
        }
        assert!(
            Instant::now() < deadline,
            "VaultRestore {name} did not finish: {:?}",
            vr.status
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn failure_reason(vr: &VaultRestore) -> (String, String) {
    let status = vr.status.as_ref().expect("status");
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Succeeded")
        .expect("the Succeeded condition");
    (c.reason.clone(), status.message.clone().unwrap_or_default())
}

/// Deletes the VaultCluster (Retain), waits until it and its pods are gone, then deletes
/// its volumes and its keys Secret: everything the cluster had is lost but the bucket.
async fn lose_the_cluster(sim: &SimCluster) {
    let admin = sim.client().expect("admin");
    let clusters: Api<VaultCluster> = Api::namespaced(admin.clone(), NAMESPACE);
    clusters
        .delete("openbao", &DeleteParams::default())
        .await
        .expect("delete");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let gone = clusters.get_opt("openbao").await.expect("read").is_none();
        let no_pods = pods
            .list(&ListParams::default().labels("app.kubernetes.io/instance=openbao"))
            .await
            .expect("pods")
            .items
            .is_empty();
        if gone && no_pods {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster was not deleted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), NAMESPACE);
    for claim in claims
        .list(&ListParams::default())
        .await
        .expect("PVCs")
        .items
    {
        let name = claim.metadata.name.expect("name");
        claims
            .delete(&name, &DeleteParams::default())
            .await
            .expect("delete the PVC");
    }
    while !claims
        .list(&ListParams::default())
        .await
        .expect("PVCs")
        .items
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Api::<Secret>::namespaced(admin, NAMESPACE)
        .delete(KEYS, &DeleteParams::default())
        .await
        .expect("delete the keys Secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_cluster_comes_back_from_its_backup_and_bad_sources_are_refused() {
    let started = Instant::now();
    let logs = capture_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let moto = Moto::start(dir.path(), S3_HOST);
    assert!(
        moto.request("PUT", &format!("/{BUCKET}"))
            .starts_with("HTTP/1.1 200")
    );
    let (identity, recipient) = vaultkeeper::escrow::generate_identity();

    let sim = cluster_with_pods(SLOT).await;
    let _operator = Operator::install_and_start(&sim).await;
    let admin = sim.client().expect("admin client");
    vaultkeeper_e2e::operator::create_namespace(&admin, NAMESPACE).await;
    vaultkeeper_e2e::moto::s3_credentials(&admin, NAMESPACE).await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NAMESPACE);

    // 1. A cluster with escrow and a backup every minute; a first secret.
    apply_cluster(&sim, &manifest(&recipient, false), NAMESPACE).await;
    wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(240),
        "Ready, bootstrapped and KeysEscrowed",
        |vc| {
            ready(vc)
                && condition(vc, "KeysEscrowed", "True")
                && vc.status.as_ref().is_some_and(|s| s.bootstrapped)
        },
    )
    .await;
    let old_keys = stored_keys(&sim, NAMESPACE, KEYS).await.expect("keys");
    let old_root = root_token(&sim).await;
    bao_at(
        &sim,
        NAMESPACE,
        "openbao-0",
        &old_root,
        &["secrets", "enable", "-path=kv", "kv"],
    )
    .await
    .expect("kv enabled");
    bao_at(
        &sim,
        NAMESPACE,
        "openbao-0",
        &old_root,
        &["write", "kv/first", "value=before-backup"],
    )
    .await
    .expect("first secret written");
    let written_at = jiff::Timestamp::now();
    let location = vaultkeeper_backup::naming::BackupLocation::new("e2e", "openbao").expect("loc");

    // 2. A backup started after that write; then backups stop and a second secret is
    //    written.
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(150),
        "a backup started after the first write",
        |vc| {
            vc.status
                .as_ref()
                .and_then(|s| s.backup.as_ref())
                .and_then(|b| b.last_object.as_deref())
                .and_then(|o| location.parse(o))
                .is_some_and(|p| p.taken_at > written_at)
        },
    )
    .await;
    let backup_object = vc
        .status
        .and_then(|s| s.backup)
        .and_then(|b| b.last_object)
        .expect("the object");
    Api::<VaultCluster>::namespaced(admin.clone(), NAMESPACE)
        .patch(
            "openbao",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"backup": {"suspend": true}}})),
        )
        .await
        .expect("backups suspended");
    bao_at(
        &sim,
        NAMESPACE,
        "openbao-0",
        &old_root,
        &["write", "kv/second", "value=after-backup"],
    )
    .await
    .expect("second secret written");
    let store = bucket().await;
    let manifest_key = vaultkeeper_backup::naming::manifest_key(&backup_object);
    let manifest_json = store.get_small(&manifest_key).await.expect("manifest");
    let backup_manifest =
        vaultkeeper_backup::manifest::Manifest::from_json(&manifest_key, &manifest_json)
            .expect("manifest parses");
    assert!(
        backup_manifest.source.keys_escrow.is_some(),
        "the backup names the escrow object of its keys"
    );

    // 3. Total loss: cluster, volumes and keys; applied again it starts empty, new keys.
    lose_the_cluster(&sim).await;
    let lost_at = Instant::now();
    apply_cluster(&sim, &manifest(&recipient, true), NAMESPACE).await;
    wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(240),
        "the re-created cluster Ready and escrowed",
        |vc| {
            ready(vc)
                && condition(vc, "KeysEscrowed", "True")
                && vc.status.as_ref().is_some_and(|s| s.bootstrapped)
        },
    )
    .await;
    let new_keys = stored_keys(&sim, NAMESPACE, KEYS).await.expect("new keys");
    assert_ne!(secrets_of(&new_keys), secrets_of(&old_keys), "new keys");
    let new_root = root_token(&sim).await;
    assert!(read(&sim, &new_root, "kv/first").await.is_err(), "empty");

    let identity_secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "restore-identity", "namespace": NAMESPACE},
        "data": {"identity": base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            identity.expose_secret(),
        )},
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &identity_secret)
        .await
        .expect("identity Secret");

    // 4. A foreign cluster's backup without the explicit field: refused, nothing touched.
    apply_restore(
        &admin,
        "foreign",
        serde_json::json!({
            "clusterRef": {"name": "openbao"},
            "source": {"latest": true, "fromCluster": {"name": "other"}},
        }),
    )
    .await;
    let foreign = wait_restore(&admin, "foreign", Duration::from_secs(30)).await;
    let (reason, message) = failure_reason(&foreign);
    assert_eq!(reason, "InvalidSpec", "{message}");
    assert!(message.contains("allowForeignCluster"), "{message}");
    assert!(message.contains("not changed"), "{message}");

    // 5. A tampered backup (one byte changed, manifest intact): refused before Vault.
    let original = {
        let mut body = store.get_stream(&backup_object).await.expect("object").1;
        let mut bytes = Vec::new();
        use futures::TryStreamExt;
        while let Some(piece) = body.try_next().await.expect("read") {
            bytes.extend_from_slice(&piece);
        }
        bytes
    };
    let taken = location.parse(&backup_object).expect("ours").taken_at;
    let tampered_key = location.object_key(taken - jiff::SignedDuration::from_hours(1));
    let mut tampered = original.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    store
        .put_bytes(
            &tampered_key,
            bytes::Bytes::from(tampered),
            "application/octet-stream",
            &Default::default(),
        )
        .await
        .expect("tampered object");
    let mut tampered_manifest = backup_manifest.clone();
    tampered_manifest.object = tampered_key.clone();
    store
        .put_bytes(
            &vaultkeeper_backup::naming::manifest_key(&tampered_key),
            bytes::Bytes::from(tampered_manifest.to_json().expect("json")),
            "application/json",
            &Default::default(),
        )
        .await
        .expect("its manifest");
    apply_restore(
        &admin,
        "tampered",
        serde_json::json!({
            "clusterRef": {"name": "openbao"},
            "source": {"object": tampered_key},
            "keys": {"escrowIdentitySecretRef": {"name": "restore-identity", "key": "identity"}},
        }),
    )
    .await;
    let tampered = wait_restore(&admin, "tampered", Duration::from_secs(60)).await;
    let (reason, message) = failure_reason(&tampered);
    assert_eq!(reason, "BackupRejected", "{message}");
    assert!(message.contains("Nothing was sent to Vault"), "{message}");
    assert_eq!(
        secrets_of(&stored_keys(&sim, NAMESPACE, KEYS).await.expect("keys")),
        secrets_of(&new_keys),
        "a refused restore leaves the keys alone"
    );
    assert!(read(&sim, &new_root, "kv/first").await.is_err());
    let vc: VaultCluster = Api::namespaced(admin.clone(), NAMESPACE)
        .get("openbao")
        .await
        .expect("vc");
    assert!(
        vc.status
            .as_ref()
            .and_then(|s| s.operation.as_ref())
            .is_none(),
        "the lock was given back"
    );

    // 6. The real restore of `latest`, sampling the cluster's lock while it runs.
    let restore_started = Instant::now();
    // examples/restore.yaml, pointed at this cluster and this identity Secret.
    let mut example: serde_json::Value =
        serde_saphyr::from_str(&vaultkeeper_e2e::operator::example("restore")).expect("YAML");
    assert_eq!(example["kind"], "VaultRestore");
    assert_eq!(example["spec"]["source"]["latest"], true);
    example["spec"]["clusterRef"]["name"] = "openbao".into();
    example["spec"]["keys"]["escrowIdentitySecretRef"]["name"] = "restore-identity".into();
    apply_restore(&admin, "recover", example["spec"].clone()).await;
    let clusters: Api<VaultCluster> = Api::namespaced(admin.clone(), NAMESPACE);
    let restores: Api<VaultRestore> = Api::namespaced(admin.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let pod_uid = || async {
        pods.get("openbao-0")
            .await
            .ok()
            .and_then(|p| p.metadata.uid)
            .unwrap_or_default()
    };
    let uid_before = pod_uid().await;
    let mut uids_while_running = Vec::new();
    let mut roll_requested = false;
    let mut lock_kinds = Vec::new();
    let mut seen_running = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    let recovered = loop {
        let vr = restores.get("recover").await.expect("vr");
        let phase = vr.status.as_ref().and_then(|s| s.phase);
        if phase.is_some_and(RestorePhase::is_final) {
            break vr;
        }
        if phase == Some(RestorePhase::Running) {
            seen_running = true;
            // A configuration change that rolls the pods, asked for mid-restore: it waits.
            if !roll_requested {
                clusters
                    .patch(
                        "openbao",
                        &PatchParams::default(),
                        &Patch::Merge(
                            serde_json::json!({"spec": {"config": {"log_level": "debug"}}}),
                        ),
                    )
                    .await
                    .expect("config changed");
                roll_requested = true;
            }
            let vc = clusters.get("openbao").await.expect("vc");
            lock_kinds.push(vc.status.and_then(|s| s.operation).map(|o| o.kind));
            uids_while_running.push(pod_uid().await);
        }
        assert!(Instant::now() < deadline, "the restore did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let restore_took = restore_started.elapsed();
    let status = recovered.status.clone().expect("status");
    assert_eq!(
        status.phase,
        Some(RestorePhase::Succeeded),
        "{:?}",
        status.message
    );
    assert!(seen_running, "the restore was seen Running");
    assert!(
        uids_while_running.iter().all(|u| *u == uid_before),
        "no pod was replaced while the restore ran"
    );
    assert!(
        !lock_kinds.is_empty()
            && lock_kinds
                .iter()
                .all(|k| *k == Some(OperationKind::Restore)),
        "the Restore lock was held whenever the restore ran: {lock_kinds:?}"
    );
    assert_eq!(
        status.backup_object.as_deref(),
        Some(backup_object.as_str())
    );
    assert_eq!(status.mode.as_deref(), Some("snapshot-force"));
    assert!(status.snapshot_time.is_some() && status.started_at.is_some());
    assert!(status.finished_at.is_some());
    assert!(status.verification.is_some());
    assert!(condition_true(&recovered, "Succeeded"));

    // The escrowed keys are in the keys Secret; the replaced record is in a copy.
    let swapped = stored_keys(&sim, NAMESPACE, KEYS).await.expect("keys");
    assert_eq!(secrets_of(&swapped), secrets_of(&old_keys));
    let copy = status.previous_keys_secret.clone().expect("a copy");
    let kept = stored_keys(&sim, NAMESPACE, &copy).await.expect("the copy");
    assert_eq!(secrets_of(&kept), secrets_of(&new_keys));

    // The data as of the backup: the first secret, not the second.
    assert_eq!(
        read(&sim, &old_root, "kv/first")
            .await
            .expect("first")
            .trim(),
        "before-backup"
    );
    assert!(
        read(&sim, &old_root, "kv/second").await.is_err(),
        "after the backup"
    );

    // The roll asked for during the restore runs now: the replaced pod comes back sealed
    // and is unsealed with the escrowed keys.
    let deadline = Instant::now() + Duration::from_secs(120);
    while pod_uid().await == uid_before {
        assert!(Instant::now() < deadline, "the waiting roll never ran");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(120),
        "Ready again after the roll",
        |vc| {
            ready(vc)
                && vc
                    .status
                    .as_ref()
                    .is_some_and(|s| s.sealed_replicas == 0 && s.operation.is_none())
        },
    )
    .await;
    let mut first = Err(String::new());
    for _ in 0..20 {
        first = read(&sim, &old_root, "kv/first").await;
        if first.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(first.expect("after restart").trim(), "before-backup");

    // kubectl shows it; Events tell the story; a final restore never runs again.
    let table = install::run(
        &install::kubectl().expect("kubectl"),
        &[
            "--kubeconfig",
            &sim.kubeconfig_path().to_string_lossy(),
            "get",
            "vaultrestores",
            "-n",
            NAMESPACE,
        ],
    )
    .expect("kubectl get vaultrestores");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("recover") && l.contains("Succeeded") && l.contains("openbao")),
        "{table}"
    );
    let seen = events(&sim, NAMESPACE).await;
    assert!(seen.iter().any(|e| e.reason == "Restored"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|e| e.reason == "RestoreFailed" && e.note.contains("BackupRejected")),
        "{seen:?}"
    );
    restores
        .patch(
            "recover",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"source": {"latest": null, "object": tampered_key}}}),
            ),
        )
        .await
        .expect("spec edited");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = restores.get("recover").await.expect("vr");
    assert_eq!(
        after.status, recovered.status,
        "a final restore never runs again"
    );

    // The identity never reached a log line or an Event.
    let text = logs.text();
    assert!(
        !text.contains(identity.expose_secret()),
        "the identity is not logged"
    );
    for e in &seen {
        assert!(!e.note.contains(identity.expose_secret()));
        for s in secrets_of(&old_keys) {
            assert!(!e.note.contains(&s));
        }
    }
    eprintln!(
        "restore e2e: loss to restored {:?}, restore itself {:?}, whole test {:?}",
        lost_at.elapsed(),
        restore_took,
        started.elapsed()
    );
}

fn condition_true(vr: &VaultRestore, type_: &str) -> bool {
    vr.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    })
}
