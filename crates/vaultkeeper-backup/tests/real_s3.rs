//! Backup and restore against a real OpenBao (raft, TLS) and a real S3 server (moto), all
//! on loopback. Each test owns an address block inside 127.30.0.0/16 so they run in
//! parallel: test N uses 127.30.N.x.

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};
use support::{Bao, CutProxy, Moto, key_file};
use vaultkeeper_backup::cli::{BackupArgs, RestoreArgs, S3Args, VaultArgs, run_backup, run_restore};
use vaultkeeper_backup::naming::manifest_key;
use vaultkeeper_backup::{Error, manifest::Manifest};

const BUCKET: &str = "vault-backups";

fn secret_files(dir: &Path) -> (PathBuf, PathBuf) {
    let id = dir.join("s3-access-key-id");
    let secret = dir.join("s3-secret-access-key");
    std::fs::write(&id, support::ACCESS_KEY).unwrap();
    std::fs::write(&secret, support::SECRET_KEY).unwrap();
    (id, secret)
}

fn vault_args(bao: &Bao, token_file: PathBuf) -> VaultArgs {
    VaultArgs {
        vault_addr: bao.addr.clone(),
        vault_ca_cert: Some(bao.ca_path.clone()),
        auth_role: None,
        auth_mount: "kubernetes".into(),
        service_account_token_file: "/nonexistent".into(),
        token_file: Some(token_file),
    }
}

fn s3_args(endpoint: &str, dir: &Path) -> S3Args {
    let (id, secret) = secret_files(dir);
    S3Args {
        bucket: BUCKET.into(),
        prefix: "backups".into(),
        s3_region: "us-east-1".into(),
        s3_endpoint: Some(endpoint.into()),
        s3_path_style: true,
        s3_access_key_id_file: Some(id),
        s3_secret_access_key_file: Some(secret),
        s3_ca_cert: None,
        s3_checksums_when_required: true,
    }
}

fn backup_args(bao: &Bao, token_file: PathBuf, endpoint: &str, key: &Path, dir: &Path) -> BackupArgs {
    BackupArgs {
        vault: vault_args(bao, token_file),
        s3: s3_args(endpoint, dir),
        cluster_name: "vault".into(),
        encryption_key_file: key.to_path_buf(),
        part_size_mib: 5,
        parts_in_flight: 2,
        keep_last: None,
        max_age: None,
        stale_upload_after: "12h".into(),
    }
}

fn restore_args(bao: &Bao, endpoint: &str, key: &Path, dir: &Path, from: &str, force: bool) -> RestoreArgs {
    RestoreArgs {
        vault: vault_args(bao, bao.root_token_file()),
        s3: s3_args(endpoint, dir),
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
    old.write_kv(&old_root, "app/db", json!({"password": "correct horse battery staple"})).await;
    old.fill(16, 512 * 1024).await; // ~11 MiB snapshot: a multipart upload of 3 parts
    let old_keys = old.init.clone().unwrap().keys;

    eprintln!("{:?} cluster filled", t0.elapsed());
    let token_file = old.backup_token_file().await;
    let report = run_backup(backup_args(&old, token_file, &moto.endpoint, &key, work.path()))
        .await
        .expect("backup");
    assert!(report.object.starts_with("backups/vault/vault-") && report.object.ends_with(".vkb"));
    assert!(report.size > 10 * 1024 * 1024, "snapshot too small to need parts: {}", report.size);
    assert!(report.vault_version.as_deref().unwrap_or("").starts_with("2."), "{report:?}");
    assert!(report.raft_index.unwrap_or(0) > 0, "{report:?}");

    // What is in the bucket is what the report says: object and manifest, no upload left.
    let stored = moto.get(BUCKET, &report.object).await;
    assert_eq!(stored.len() as u64, report.size);
    assert_eq!(sha256_hex(&stored), report.sha256);
    assert_eq!(&stored[..8], b"VKBACKUP");
    let manifest = Manifest::from_json("m", &moto.get(BUCKET, &manifest_key(&report.object)).await).unwrap();
    assert_eq!(manifest.ciphertext.sha256, report.sha256);
    assert_eq!(manifest.plaintext.size, report.snapshot_size);
    assert!(manifest.source.cluster_id.is_some());
    assert_eq!(moto.keys(BUCKET).await, vec![report.object.clone(), manifest_key(&report.object)]);
    assert!(moto.pending_uploads(BUCKET).await.is_empty());

    eprintln!("{:?} backup done: {report:?}", t0.elapsed());
    // Total loss.
    old.destroy();

    // A new cluster: new CA, new keys, no data.
    let new = Bao::start_initialized("127.30.1.2").await;
    new.enable_kv().await;
    assert_eq!(new.read_kv(&new.root_token(), "app/db").await.0, 404);

    // Without --force the restore is refused: the backup is from another cluster.
    let refused = run_restore(restore_args(&new, &moto.endpoint, &key, work.path(), "latest", false))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::OtherCluster { .. }), "{refused}");

    let restored = run_restore(restore_args(&new, &moto.endpoint, &key, work.path(), "latest", true))
        .await
        .expect("restore");
    assert_eq!(restored.object, report.object);
    assert_eq!(restored.mode, "snapshot-force");
    assert_eq!(restored.snapshot_sha256, report.snapshot_sha256);

    eprintln!("{:?} restored; seal status {}", t0.elapsed(), new.seal_status().await);
    // The barrier keys are now the old cluster's: unseal with the OLD keys.
    let status = new.seal_status().await;
    if !status["sealed"].as_bool().unwrap() {
        // Some versions keep serving until restarted; seal so the old keys are needed.
        let (s, b) = new.call(reqwest::Method::PUT, "sys/seal", Some(&old_root), None).await;
        assert!(s == 204 || s == 200, "seal with the old root token: {s} {b}");
    }
    // The new cluster's own keys no longer open it.
    let new_keys = new.init.clone().unwrap().keys;
    let (s, _) = new
        .call(reqwest::Method::PUT, "sys/unseal", None, Some(json!({"key": new_keys[0]})))
        .await;
    let (s2, body) = new
        .call(reqwest::Method::PUT, "sys/unseal", None, Some(json!({"key": new_keys[1]})))
        .await;
    assert!(
        s != 200 || s2 != 200 || body["sealed"] == true,
        "the new cluster's keys still unseal it: {body}"
    );
    new.call(reqwest::Method::PUT, "sys/unseal", None, Some(json!({"reset": true}))).await;
    let still_sealed = new.unseal(&old_keys).await;
    assert!(!still_sealed, "the old keys must unseal the restored cluster");
    new.wait_active().await;
    let (status, data) = new.read_kv(&old_root, "app/db").await;
    assert_eq!(status, 200);
    assert_eq!(data.unwrap()["password"], "correct horse battery staple");
    let (status, fill) = new.read_kv(&old_root, "fill/15").await;
    assert_eq!(status, 200);
    assert!(fill.unwrap()["v"].as_str().unwrap().len() > 600_000);
}
