//! The S3 scenarios of `real_s3.rs`, where they apply, against Google Cloud Storage and
//! Azure Blob Storage emulators on loopback: gcp-storage-emulator (PyPI) and Azurite
//! (npm), with a real OpenBao. Each test owns an address block inside 127.31.0.0/16:
//! test N uses 127.31.N.x, GCS on .10 and Azure on .20.

mod support;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::{AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Bao, GcsEmulator, key_file};

use vaultkeeper_backup::azure::{AzureCredentials, AzureSettings, AzureStore};
use vaultkeeper_backup::gcs::{GcsCredentials, GcsSettings, GcsStore};
use vaultkeeper_backup::job::apply_retention;
use vaultkeeper_backup::manifest::{Manifest, SourceInfo};
use vaultkeeper_backup::naming::{BackupLocation, EscrowLocation, manifest_key};
use vaultkeeper_backup::pipeline::{PipelineOptions, write_backup};
use vaultkeeper_backup::retention::RetentionPolicy;
use vaultkeeper_backup::store::ObjectStore;
use vaultkeeper_backup::{
    AzureAccess, AzureCredentialSource, BackupJob, EncryptionKey, Error, GcsAccess,
    GcsCredentialSource, RestoreJob, StoreAccess, VaultAccess, VaultAuth, run_backup, run_restore,
};
use vaultkeeper_vault::secret::secret_string;

const BUCKET: &str = "vault-backups";

/// One emulator, with how a job and a test reach it.
enum Emulator {
    Gcs(GcsEmulator),
    Azure(Azurite, PathBuf),
}

impl Emulator {
    async fn start(kind: &str, ip: &str, dir: &Path) -> Self {
        match kind {
            "gcs" => Emulator::Gcs(GcsEmulator::start(ip, BUCKET).await),
            "azure" => {
                let azurite = Azurite::start(ip).await;
                let key = dir.join("azure-account-key");
                std::fs::write(&key, AZURITE_KEY).unwrap();
                let emulator = Emulator::Azure(azurite, key);
                emulator.azure().create_container().await.unwrap();
                emulator
            }
            other => panic!("unknown store {other}"),
        }
    }

    fn azure(&self) -> AzureStore {
        let Emulator::Azure(azurite, _) = self else {
            panic!("not Azure")
        };
        AzureStore::connect(&AzureSettings {
            account: AZURITE_ACCOUNT.into(),
            container: BUCKET.into(),
            endpoint: Some(azurite.endpoint.clone()),
            credentials: AzureCredentials::AccountKey(secret_string(AZURITE_KEY.into())),
            ca_pem: None,
        })
        .unwrap()
    }

    fn store(&self) -> Box<dyn ObjectStore> {
        match self {
            Emulator::Gcs(gcs) => Box::new(
                GcsStore::connect(&GcsSettings {
                    bucket: BUCKET.into(),
                    endpoint: Some(gcs.endpoint.clone()),
                    credentials: GcsCredentials::Anonymous,
                    ca_pem: None,
                })
                .unwrap(),
            ),
            Emulator::Azure(..) => Box::new(self.azure()),
        }
    }

    fn access(&self) -> StoreAccess {
        match self {
            Emulator::Gcs(gcs) => StoreAccess::Gcs(GcsAccess {
                bucket: BUCKET.into(),
                prefix: "backups".into(),
                endpoint: Some(gcs.endpoint.clone()),
                credentials: GcsCredentialSource::Anonymous,
                ca_cert: None,
            }),
            Emulator::Azure(azurite, key) => StoreAccess::Azure(AzureAccess {
                account: AZURITE_ACCOUNT.into(),
                container: BUCKET.into(),
                prefix: "backups".into(),
                endpoint: Some(azurite.endpoint.clone()),
                credentials: AzureCredentialSource::AccountKeyFile(key.clone()),
                ca_cert: None,
            }),
        }
    }

    async fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .store()
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        keys
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let (_, body) = self.store().get_stream(key).await.unwrap();
        let chunks: Vec<Bytes> = body.try_collect().await.unwrap();
        chunks.concat()
    }
}

fn vault_access(bao: &Bao, token_file: PathBuf) -> VaultAccess {
    VaultAccess {
        addr: bao.addr.clone(),
        ca_cert: Some(bao.ca_path.clone()),
        auth: VaultAuth::TokenFile(token_file),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A backup of an ~11 MiB snapshot in 5 MiB parts (three parts, two in flight), the
/// escrow record found by listing, the manifest read back as a small object, and a
/// restore that authenticates every byte and brings the old value back.
async fn backup_then_restore_brings_the_data_back(kind: &str, block: u8) {
    let work = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(kind, &format!("127.31.{block}.10"), work.path()).await;
    let store = emulator.store();
    let key = key_file(work.path());
    let bao = Bao::start_initialized(&format!("127.31.{block}.1")).await;
    bao.enable_kv().await;
    let root = bao.root_token();
    bao.write_kv(&root, "app/db", json!({"password": "in the backup"}))
        .await;
    bao.fill(16, 512 * 1024).await;

    // An escrow record next to the backups: the backup's manifest names it.
    let escrow = EscrowLocation::new("backups", "vault").unwrap();
    let escrow_key = escrow.object_key(Timestamp::now(), "0123456789abcdef");
    store
        .put_bytes(
            &escrow_key,
            Bytes::from_static(b"-----BEGIN AGE ENCRYPTED FILE-----\n"),
            "text/plain",
            &HashMap::new(),
        )
        .await
        .unwrap();

    let report = run_backup(&BackupJob {
        vault: vault_access(&bao, bao.backup_token_file().await),
        store: emulator.access(),
        cluster_name: "vault".into(),
        encryption_key_file: key.clone(),
        part_size_mib: 5,
        parts_in_flight: 2,
        retention: RetentionPolicy::default(),
        stale_upload_after: SignedDuration::from_hours(12),
    })
    .await
    .expect("backup");
    assert!(
        report.size > 10 * 1024 * 1024,
        "snapshot too small to need parts: {}",
        report.size
    );
    let keys = emulator.keys().await;
    assert_eq!(
        keys,
        {
            let mut expected = vec![
                escrow_key.clone(),
                report.object.clone(),
                manifest_key(&report.object),
            ];
            expected.sort();
            expected
        },
        "{kind}"
    );
    let stored = emulator.get(&report.object).await;
    assert_eq!(stored.len() as u64, report.size);
    assert_eq!(sha256_hex(&stored), report.sha256);
    assert_eq!(&stored[..8], b"VKBACKUP");
    let manifest = Manifest::from_json(
        "manifest",
        &store
            .get_small(&manifest_key(&report.object))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.ciphertext.sha256, report.sha256);
    assert_eq!(
        manifest.source.keys_escrow.as_deref(),
        Some(escrow_key.as_str())
    );

    // The value changes after the backup; the restore brings the old one back.
    bao.write_kv(&root, "app/db", json!({"password": "after the backup"}))
        .await;
    let restored = run_restore(&RestoreJob {
        vault: vault_access(&bao, bao.root_token_file()),
        store: emulator.access(),
        cluster_name: "vault".into(),
        encryption_key_file: key,
        from: "latest".into(),
        force: false,
        spool_dir: Some(work.path().to_path_buf()),
    })
    .await
    .expect("restore");
    assert_eq!(restored.object, report.object);
    assert_eq!(restored.snapshot_sha256, report.snapshot_sha256);
    bao.wait_active().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, data) = bao.read_kv(&root, "app/db").await;
        if status == 200 && data.as_ref().unwrap()["password"] == "in the backup" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "restored value never appeared: {status} {data:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_backup_then_restore_brings_the_data_back() {
    backup_then_restore_brings_the_data_back("gcs", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_backup_then_restore_brings_the_data_back() {
    backup_then_restore_brings_the_data_back("azure", 2).await;
}

/// A source that breaks after 12 MiB (two 5 MiB parts sent, a third filling): the upload
/// is aborted and nothing is listed; a wrong key is refused by restore; retention keeps
/// the newest and leaves other files alone.
async fn failures_leave_nothing_and_retention_keeps_the_newest(kind: &str, block: u8) {
    let work = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(kind, &format!("127.31.{block}.10"), work.path()).await;
    let store = emulator.store();
    let key =
        EncryptionKey::from_file_contents(&std::fs::read(key_file(work.path())).unwrap()).unwrap();
    let location = BackupLocation::new("backups", "vault").unwrap();
    let source_info = || SourceInfo {
        cluster: "vault".into(),
        cluster_id: None,
        vault_version: None,
        raft_index: None,
        node: "https://127.0.0.1:8200".into(),
        keys_escrow: None,
    };
    let options = PipelineOptions {
        part_size: 5 * 1024 * 1024,
        ..PipelineOptions::default()
    };

    let broken = futures::stream::iter((0..13).map(|i| {
        if i < 12 {
            Ok(Bytes::from(vec![i as u8; 1024 * 1024]))
        } else {
            Err(Error::Spool(std::io::Error::other(
                "connection reset by Vault",
            )))
        }
    }));
    let err = write_backup(
        store.as_ref(),
        &location,
        Timestamp::now(),
        broken,
        source_info(),
        &key,
        options,
    )
    .await
    .unwrap_err();
    let Error::UploadAborted { cause, .. } = &err else {
        panic!("expected UploadAborted, got {err}")
    };
    assert!(
        cause.to_string().contains("connection reset by Vault"),
        "{cause}"
    );
    assert_eq!(
        emulator.keys().await,
        Vec::<String>::new(),
        "an object was left"
    );
    assert_eq!(
        store.list_uploads("").await.unwrap(),
        vec![],
        "an upload was left"
    );
    match &emulator {
        Emulator::Azure(..) => {
            // Nothing uncommitted either: the abort discarded the blocks.
            assert!(emulator.azure().list_uploads("").await.unwrap().is_empty());
        }
        Emulator::Gcs(gcs) => {
            // gcp-storage-emulator has no route to cancel a session (DELETE on the session
            // URI answers 501), so its session stays in its bookkeeping; it is not an
            // object and not listed, as on GCS, where the cancel is honoured.
            assert_eq!(gcs.open_sessions(), 1);
        }
    }

    // An object of exactly two parts: the last write fills a part, and finishing sends an
    // empty last chunk (GCS) or commits the blocks as they are.
    let exact = "backups/exact.bin";
    let mut upload = store.upload(exact, HashMap::new(), 5 * 1024 * 1024, 2);
    let body: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    upload.write(&body).await.unwrap();
    upload.finish().await.unwrap();
    assert_eq!(sha256_hex(&emulator.get(exact).await), sha256_hex(&body));
    store.delete(exact).await.unwrap();

    // A run killed mid-upload (no abort at all): Azure lists the uncommitted blocks as a
    // pending upload, and aborting it removes them; GCS shows nothing.
    let killed_key = location.object_key(Timestamp::now() - SignedDuration::from_hours(13));
    let mut killed = store.upload(&killed_key, HashMap::new(), 5 * 1024 * 1024, 2);
    killed.write(&vec![7u8; 11 * 1024 * 1024]).await.unwrap();
    // Let the blocks in flight land, as they would before a kill.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    drop(killed);
    let pending = store.list_uploads(&location.list_prefix()).await.unwrap();
    match kind {
        "azure" => {
            assert_eq!(pending.len(), 1, "{pending:?}");
            assert_eq!(pending[0].key, killed_key);
            assert!(pending[0].initiated.is_some());
            store
                .abort_upload(&pending[0].key, &pending[0].upload_id)
                .await
                .unwrap();
            assert!(store.list_uploads("").await.unwrap().is_empty());
            // The abort never replaces a committed blob: its empty block list is sent
            // only-if-absent.
            let kept = location.object_key(Timestamp::now() - SignedDuration::from_hours(30));
            store
                .put_bytes(
                    &kept,
                    Bytes::from_static(b"committed"),
                    "text/plain",
                    &HashMap::new(),
                )
                .await
                .unwrap();
            let err = store.abort_upload(&kept, &kept).await.unwrap_err();
            assert!(err.to_string().contains("Put Block List"), "{err}");
            assert_eq!(emulator.get(&kept).await, b"committed");
            store.delete(&kept).await.unwrap();
        }
        _ => assert!(pending.is_empty()),
    }
    assert_eq!(emulator.keys().await, Vec::<String>::new());

    // Retention over three complete backups, an incomplete old one and a stranger's file.
    let now = Timestamp::now();
    let mut complete = Vec::new();
    for days in [3, 2, 1] {
        let object = location.object_key(now - SignedDuration::from_hours(24 * days));
        for k in [object.clone(), manifest_key(&object)] {
            store
                .put_bytes(
                    &k,
                    Bytes::from_static(b"x"),
                    "application/octet-stream",
                    &HashMap::new(),
                )
                .await
                .unwrap();
        }
        complete.push(object);
    }
    let orphan = location.object_key(now - SignedDuration::from_hours(24 * 4));
    let stranger = "backups/vault/notes.txt".to_owned();
    for k in [&orphan, &stranger] {
        store
            .put_bytes(k, Bytes::from_static(b"x"), "text/plain", &HashMap::new())
            .await
            .unwrap();
    }
    let deleted = apply_retention(
        store.as_ref(),
        &location,
        &RetentionPolicy {
            keep_last: NonZeroU32::new(1),
            max_age: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(deleted.len(), 5, "{deleted:?}");
    let mut expected = vec![
        complete[2].clone(),
        manifest_key(&complete[2]),
        stranger.clone(),
    ];
    expected.sort();
    assert_eq!(emulator.keys().await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_failures_leave_nothing_and_retention_keeps_the_newest() {
    failures_leave_nothing_and_retention_keeps_the_newest("gcs", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_failures_leave_nothing_and_retention_keeps_the_newest() {
    failures_leave_nothing_and_retention_keeps_the_newest("azure", 4).await;
}

/// Shared Key signatures are checked by Azurite: a wrong account key is refused, and the
/// error names the operation but never the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_refuses_a_wrong_key_and_the_error_does_not_carry_it() {
    let work = tempfile::tempdir().unwrap();
    let emulator = Emulator::start("azure", "127.31.5.20", work.path()).await;
    let Emulator::Azure(azurite, _) = &emulator else {
        unreachable!()
    };
    let wrong = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 64]);
    let store = AzureStore::connect(&AzureSettings {
        account: AZURITE_ACCOUNT.into(),
        container: BUCKET.into(),
        endpoint: Some(azurite.endpoint.clone()),
        credentials: AzureCredentials::AccountKey(secret_string(wrong.clone())),
        ca_pem: None,
    })
    .unwrap();
    let err = store.list("").await.unwrap_err().to_string();
    assert!(err.contains("List Blobs") && err.contains("403"), "{err}");
    assert!(!err.contains(&wrong) && !err.contains(AZURITE_KEY), "{err}");
}
