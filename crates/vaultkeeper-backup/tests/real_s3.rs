//! Backup and restore against a real OpenBao (raft, TLS) and a real S3 server (moto), all
//! on loopback. Each test owns an address block inside 127.30.0.0/16 so they run in
//! parallel: test N uses 127.30.N.x.

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};
use std::num::NonZeroU32;
use support::{Bao, CutProxy, Moto, key_file};

use jiff::SignedDuration;
use vaultkeeper_backup::naming::manifest_key;
use vaultkeeper_backup::retention::RetentionPolicy;
use vaultkeeper_backup::{
    BackupJob, RestoreJob, S3Access, S3CredentialFiles, StoreAccess, VaultAccess, VaultAuth,
    run_backup, run_restore,
};
use vaultkeeper_backup::{Error, manifest::Manifest};

const BUCKET: &str = "vault-backups";

fn secret_files(dir: &Path) -> (PathBuf, PathBuf) {
    let id = dir.join("s3-access-key-id");
    let secret = dir.join("s3-secret-access-key");
    std::fs::write(&id, support::ACCESS_KEY).unwrap();
    std::fs::write(&secret, support::SECRET_KEY).unwrap();
    (id, secret)
}

fn vault_args(bao: &Bao, token_file: PathBuf) -> VaultAccess {
    VaultAccess {
        addr: bao.addr.clone(),
        ca_cert: Some(bao.ca_path.clone()),
        auth: VaultAuth::TokenFile(token_file),
    }
}

fn s3_args(endpoint: &str, dir: &Path) -> S3Access {
    let (access_key_id, secret_access_key) = secret_files(dir);
    S3Access {
        bucket: BUCKET.into(),
        prefix: "backups".into(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint.into()),
        path_style: true,
        credential_files: Some(S3CredentialFiles {
            access_key_id,
            secret_access_key,
        }),
        ca_cert: None,
        checksums_when_required: true,
    }
}

fn backup_args(
    bao: &Bao,
    token_file: PathBuf,
    endpoint: &str,
    key: &Path,
    dir: &Path,
) -> BackupJob {
    BackupJob {
        vault: vault_args(bao, token_file),
        store: StoreAccess::S3(s3_args(endpoint, dir)),
        cluster_name: "vault".into(),
        encryption_key_file: key.to_path_buf(),
        part_size_mib: 5,
        parts_in_flight: 2,
        retention: RetentionPolicy {
            keep_last: None,
            max_age: None,
        },
        stale_upload_after: SignedDuration::from_hours(12),
    }
}

fn restore_args(
    bao: &Bao,
    endpoint: &str,
    key: &Path,
    dir: &Path,
    from: &str,
    force: bool,
) -> RestoreJob {
    RestoreJob {
        vault: vault_args(bao, bao.root_token_file()),
        store: StoreAccess::S3(s3_args(endpoint, dir)),
        cluster_name: "vault".into(),
        encryption_key_file: key.to_path_buf(),
        from: from.into(),
        force,
        spool_dir: Some(dir.to_path_buf()),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_total_loss_then_restore_into_a_new_cluster_brings_the_data_back() {
    let t0 = std::time::Instant::now();
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let work = tempfile::tempdir().unwrap();
    let moto = Moto::start("127.30.1.10").await;
    moto.create_bucket(BUCKET).await;
    let key = key_file(work.path());

    let old = Bao::start_initialized("127.30.1.1").await;
    old.enable_kv().await;
    let old_root = old.root_token();
    old.write_kv(
        &old_root,
        "app/db",
        json!({"password": "correct horse battery staple"}),
    )
    .await;
    old.fill(16, 512 * 1024).await; // ~11 MiB snapshot: a multipart upload of 3 parts
    let old_keys = old.init.clone().unwrap().keys;

    eprintln!("{:?} cluster filled", t0.elapsed());
    let token_file = old.backup_token_file().await;
    let report = run_backup(&backup_args(
        &old,
        token_file,
        &moto.endpoint,
        &key,
        work.path(),
    ))
    .await
    .expect("backup");
    assert!(report.object.starts_with("backups/vault/vault-") && report.object.ends_with(".vkb"));
    assert!(
        report.size > 10 * 1024 * 1024,
        "snapshot too small to need parts: {}",
        report.size
    );
    assert!(
        report
            .vault_version
            .as_deref()
            .unwrap_or("")
            .starts_with("2."),
        "{report:?}"
    );
    assert!(report.raft_index.unwrap_or(0) > 0, "{report:?}");

    // What is in the bucket is what the report says: object and manifest, no upload left.
    let stored = moto.get(BUCKET, &report.object).await;
    assert_eq!(stored.len() as u64, report.size);
    assert_eq!(sha256_hex(&stored), report.sha256);
    assert_eq!(&stored[..8], b"VKBACKUP");
    let manifest =
        Manifest::from_json("m", &moto.get(BUCKET, &manifest_key(&report.object)).await).unwrap();
    assert_eq!(manifest.ciphertext.sha256, report.sha256);
    assert_eq!(manifest.plaintext.size, report.snapshot_size);
    assert!(manifest.source.cluster_id.is_some());
    assert_eq!(
        moto.keys(BUCKET).await,
        vec![report.object.clone(), manifest_key(&report.object)]
    );
    assert!(moto.pending_uploads(BUCKET).await.is_empty());

    eprintln!("{:?} backup done: {report:?}", t0.elapsed());
    // Total loss.
    old.destroy();

    // A new cluster: new CA, new keys, no data.
    let new = Bao::start_initialized("127.30.1.2").await;
    new.enable_kv().await;
    assert_eq!(new.read_kv(&new.root_token(), "app/db").await.0, 404);

    // Without --force the restore is refused: the backup is from another cluster.
    let refused = run_restore(&restore_args(
        &new,
        &moto.endpoint,
        &key,
        work.path(),
        "latest",
        false,
    ))
    .await
    .unwrap_err();
    assert!(matches!(refused, Error::OtherCluster { .. }), "{refused}");

    let restored = run_restore(&restore_args(
        &new,
        &moto.endpoint,
        &key,
        work.path(),
        "latest",
        true,
    ))
    .await
    .expect("restore");
    assert_eq!(restored.object, report.object);
    assert_eq!(restored.mode, "snapshot-force");
    assert_eq!(restored.snapshot_sha256, report.snapshot_sha256);

    eprintln!(
        "{:?} restored; seal status {}",
        t0.elapsed(),
        new.seal_status().await
    );
    // The barrier keys are now the old cluster's: unseal with the OLD keys.
    let status = new.seal_status().await;
    if !status["sealed"].as_bool().unwrap() {
        // Some versions keep serving until restarted; seal so the old keys are needed.
        let (s, b) = new
            .call(reqwest::Method::PUT, "sys/seal", Some(&old_root), None)
            .await;
        assert!(
            s == 204 || s == 200,
            "seal with the old root token: {s} {b}"
        );
    }
    // The new cluster's own keys no longer open it.
    let new_keys = new.init.clone().unwrap().keys;
    let (s, _) = new
        .call(
            reqwest::Method::PUT,
            "sys/unseal",
            None,
            Some(json!({"key": new_keys[0]})),
        )
        .await;
    let (s2, body) = new
        .call(
            reqwest::Method::PUT,
            "sys/unseal",
            None,
            Some(json!({"key": new_keys[1]})),
        )
        .await;
    assert!(
        s != 200 || s2 != 200 || body["sealed"] == true,
        "the new cluster's keys still unseal it: {body}"
    );
    new.call(
        reqwest::Method::PUT,
        "sys/unseal",
        None,
        Some(json!({"reset": true})),
    )
    .await;
    let still_sealed = new.unseal(&old_keys).await;
    assert!(
        !still_sealed,
        "the old keys must unseal the restored cluster"
    );
    new.wait_active().await;
    let (status, data) = new.read_kv(&old_root, "app/db").await;
    assert_eq!(status, 200);
    assert_eq!(data.unwrap()["password"], "correct horse battery staple");
    let (status, fill) = new.read_kv(&old_root, "fill/15").await;
    assert_eq!(status, 200);
    assert!(fill.unwrap()["v"].as_str().unwrap().len() > 600_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_truncated_or_wrongly_keyed_backups_are_refused_before_vault_is_touched() {
    use vaultkeeper_backup::format::{DEFAULT_CHUNK_SIZE, HEADER_LEN, TAG_LEN};
    let work = tempfile::tempdir().unwrap();
    let moto = Moto::start("127.30.2.10").await;
    moto.create_bucket(BUCKET).await;
    let key = key_file(work.path());
    let bao = Bao::start_initialized_audited("127.30.2.1").await;
    bao.enable_kv().await;
    let root = bao.root_token();
    bao.write_kv(&root, "app/db", json!({"password": "in the backup"}))
        .await;
    bao.fill(4, 256 * 1024).await;
    let token_file = bao.backup_token_file().await;
    let report = run_backup(&backup_args(
        &bao,
        token_file,
        &moto.endpoint,
        &key,
        work.path(),
    ))
    .await
    .expect("backup");
    let object = report.object.clone();
    bao.write_kv(
        &root,
        "app/db",
        json!({"password": "changed after the backup"}),
    )
    .await;
    assert!(bao.audit_log_lines() > 0, "the audit log records nothing");
    let restore_requests = || bao.restore_requests_audited();
    let original = moto.get(BUCKET, &object).await;
    let original_manifest = moto.get(BUCKET, &manifest_key(&object)).await;

    // One bit flipped in the middle; the manifest is untouched.
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    moto.put(BUCKET, &object, flipped).await;
    let err = run_restore(&restore_args(
        &bao,
        &moto.endpoint,
        &key,
        work.path(),
        "latest",
        false,
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Tampered { .. }), "{err}");

    // Cut at a chunk boundary, manifest gone: only the encryption can tell.
    let chunk = DEFAULT_CHUNK_SIZE as usize + TAG_LEN;
    moto.put(BUCKET, &object, original[..HEADER_LEN + 3 * chunk].to_vec())
        .await;
    moto.delete(BUCKET, &manifest_key(&object)).await;
    let err = run_restore(&restore_args(
        &bao,
        &moto.endpoint,
        &key,
        work.path(),
        &object,
        false,
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Truncated { chunks: 3 }), "{err}");

    // Last bytes missing, manifest back.
    moto.put(BUCKET, &object, original[..original.len() - 100].to_vec())
        .await;
    moto.put(BUCKET, &manifest_key(&object), original_manifest.clone())
        .await;
    let err = run_restore(&restore_args(
        &bao,
        &moto.endpoint,
        &key,
        work.path(),
        "latest",
        false,
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Tampered { .. } | Error::Truncated { .. }),
        "{err}"
    );

    // Intact object, wrong key.
    moto.put(BUCKET, &object, original.clone()).await;
    let other_dir = tempfile::tempdir().unwrap();
    let other_key = key_file(other_dir.path());
    let err = run_restore(&restore_args(
        &bao,
        &moto.endpoint,
        &other_key,
        work.path(),
        "latest",
        false,
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::WrongKey { .. }), "{err}");

    // Vault never saw a restore request, and its data is as it was.
    assert_eq!(restore_requests(), 0, "a refused backup reached Vault");
    let (_, data) = bao.read_kv(&root, "app/db").await;
    assert_eq!(data.unwrap()["password"], "changed after the backup");
    assert_eq!(
        std::fs::read_dir(work.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("vaultkeeper-restore-")
            })
            .count(),
        0,
        "spool files must not outlive a refused restore"
    );

    // The same checks see a real restore: the intact backup goes through (same cluster,
    // no force) and brings the old value back.
    let restored = run_restore(&restore_args(
        &bao,
        &moto.endpoint,
        &key,
        work.path(),
        "latest",
        false,
    ))
    .await
    .expect("intact backup restores");
    assert_eq!(restored.mode, "snapshot");
    assert!(
        restore_requests() > 0,
        "the audit check cannot see restores"
    );
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

/// Fails the UploadPart request for one part number, as S3 rejecting that part would.
#[derive(Debug)]
struct RejectPart(i32);

impl aws_sdk_s3::config::Intercept for RejectPart {
    fn name(&self) -> &'static str {
        "RejectPart"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        if context
            .request()
            .uri()
            .contains(&format!("partNumber={}", self.0))
        {
            return Err("S3 rejected this part (injected)".into());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_upload_leaves_no_object_and_no_multipart_upload() {
    use futures::TryStreamExt;
    use std::sync::Arc;
    use vaultkeeper_backup::EncryptionKey;
    use vaultkeeper_backup::manifest::SourceInfo;
    use vaultkeeper_backup::naming::BackupLocation;
    use vaultkeeper_backup::pipeline::{PipelineOptions, write_backup};
    use vaultkeeper_backup::s3::S3Store;
    use vaultkeeper_backup::secret::read_secret_file;
    use vaultkeeper_vault::client::{HttpOptions, VaultHttp, tls_config};
    use vaultkeeper_vault::secret::Token;

    let work = tempfile::tempdir().unwrap();
    let moto = Moto::start("127.30.3.10").await;
    moto.create_bucket(BUCKET).await;
    let key_path = key_file(work.path());
    let key = EncryptionKey::from_file_contents(&std::fs::read(&key_path).unwrap()).unwrap();
    let bao = Bao::start_initialized("127.30.3.1").await;
    bao.enable_kv().await;
    bao.fill(16, 512 * 1024).await;
    let token_file = bao.backup_token_file().await;
    let token = Token::from(read_secret_file("token", &token_file).unwrap());
    let vault = VaultHttp::new(
        &bao.addr,
        Arc::new(tls_config(Some(&std::fs::read(&bao.ca_path).unwrap())).unwrap()),
        HttpOptions::job(),
    )
    .unwrap();
    let location = BackupLocation::new("backups", "vault").unwrap();
    let options = PipelineOptions {
        part_size: 5 * 1024 * 1024,
        ..PipelineOptions::default()
    };
    let source_info = || SourceInfo {
        cluster: "vault".into(),
        cluster_id: None,
        vault_version: None,
        raft_index: None,
        node: bao.addr.clone(),
        keys_escrow: None,
    };
    let nothing_left = || async {
        assert_eq!(
            moto.keys(BUCKET).await,
            Vec::<String>::new(),
            "an object was left"
        );
        assert_eq!(
            moto.pending_uploads(BUCKET).await,
            vec![],
            "a multipart upload was left"
        );
    };

    // 1. S3 rejects part 2 of the real snapshot.
    let settings = moto.settings(&moto.endpoint, BUCKET);
    let config = settings
        .sdk_config()
        .await
        .unwrap()
        .interceptor(RejectPart(2));
    let rejecting = S3Store::from_config(config, BUCKET, settings.payload_signing());
    let snapshot = vault.snapshot(&token).await.unwrap().map_err(Error::from);
    let err = write_backup(
        &rejecting,
        &location,
        jiff::Timestamp::now(),
        snapshot,
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
        matches!(
            **cause,
            Error::S3 {
                operation: "UploadPart",
                ..
            }
        ),
        "{cause}"
    );
    nothing_left().await;

    // 2. The source breaks after 12 MiB (Vault went away mid-snapshot).
    let store = S3Store::connect(&moto.settings(&moto.endpoint, BUCKET))
        .await
        .unwrap();
    let broken = futures::stream::iter((0..13).map(|i| {
        if i < 12 {
            Ok(bytes::Bytes::from(vec![i as u8; 1024 * 1024]))
        } else {
            Err(Error::Spool(std::io::Error::other(
                "connection reset by Vault",
            )))
        }
    }));
    let err = write_backup(
        &store,
        &location,
        jiff::Timestamp::now(),
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
    nothing_left().await;

    // 3. The S3 server vanishes after ~7 MiB: the upload fails and so does the abort.
    let proxy = CutProxy::start("127.30.3.11:5000", moto.addr, 7 * 1024 * 1024).await;
    let args = backup_args(
        &bao,
        token_file.clone(),
        &proxy.endpoint,
        &key_path,
        work.path(),
    );
    let err = run_backup(&args).await.unwrap_err();
    assert!(proxy.is_cut());
    let Error::AbortFailed {
        upload_id,
        key: object,
        ..
    } = &err
    else {
        panic!("expected AbortFailed, got {err}")
    };
    assert!(
        err.to_string().contains("next backup run aborts it"),
        "{err}"
    );
    // Like a crash: the upload is dangling, but no object is listed.
    assert_eq!(moto.keys(BUCKET).await, Vec::<String>::new());
    assert_eq!(
        moto.pending_uploads(BUCKET).await,
        vec![(object.clone(), upload_id.clone())]
    );

    // S3 is back; the next run aborts the stale upload and writes a complete backup.
    proxy.heal();
    let next = run_backup(&BackupJob {
        stale_upload_after: SignedDuration::ZERO,
        ..args
    })
    .await
    .expect("backup after S3 came back");
    assert_eq!(next.aborted_uploads, vec![object.clone()]);
    assert_eq!(moto.pending_uploads(BUCKET).await, vec![]);
    assert_eq!(
        moto.keys(BUCKET).await,
        vec![next.object.clone(), manifest_key(&next.object)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_what_it_should_and_root_tokens_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let moto = Moto::start("127.30.4.10").await;
    moto.create_bucket(BUCKET).await;
    let key = key_file(work.path());
    let bao = Bao::start_initialized("127.30.4.1").await;

    // Never with the root token.
    let err = run_backup(&backup_args(
        &bao,
        bao.root_token_file(),
        &moto.endpoint,
        &key,
        work.path(),
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("root token"), "{err}");
    assert_eq!(moto.keys(BUCKET).await, Vec::<String>::new());

    // Someone else's files, another cluster's backup, and old backups of ours.
    let foreign = [
        "backups/vault/notes.txt",
        "backups/vault/vault-prod-20200101T000000Z.vkb",
        "backups/vault-prod/vault-prod-20200101T000000Z.vkb",
        "backups/vault-prod/vault-prod-20200101T000000Z.vkb.manifest.json",
    ];
    for k in foreign {
        moto.put(BUCKET, k, b"not ours".to_vec()).await;
    }
    let old = |day: u32| format!("backups/vault/vault-202001{day:02}T000000Z.vkb");
    for day in [1, 2] {
        moto.put(BUCKET, &old(day), b"old backup".to_vec()).await;
        moto.put(BUCKET, &manifest_key(&old(day)), b"{}".to_vec())
            .await;
    }
    moto.put(
        BUCKET,
        &old(3),
        b"upload whose manifest never came".to_vec(),
    )
    .await;

    let token_file = bao.backup_token_file().await;
    let args = BackupJob {
        retention: RetentionPolicy {
            keep_last: NonZeroU32::new(2),
            max_age: None,
        },
        ..backup_args(&bao, token_file, &moto.endpoint, &key, work.path())
    };
    let first = run_backup(&args).await.expect("first backup");
    assert!(
        first.size < 5 * 1024 * 1024,
        "a small snapshot goes up in one PutObject"
    );
    let mut deleted = first.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, vec![old(1), manifest_key(&old(1)), old(3)]);
    assert_eq!(first.retention_error, None);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = run_backup(&args).await.expect("second backup");
    assert_eq!(second.deleted, vec![manifest_key(&old(2)), old(2)]);

    // A max-age rule alone keeps everything young, and keeps the newest whatever happens.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let third = run_backup(&BackupJob {
        retention: RetentionPolicy {
            keep_last: None,
            max_age: Some(SignedDuration::from_hours(24)),
        },
        ..args
    })
    .await
    .expect("third backup");
    assert_eq!(third.deleted, Vec::<String>::new());

    let mut expected: Vec<String> = foreign.iter().map(|k| k.to_string()).collect();
    for report in [&first, &second, &third] {
        expected.push(report.object.clone());
        expected.push(manifest_key(&report.object));
    }
    expected.sort();
    assert_eq!(moto.keys(BUCKET).await, expected);
}
