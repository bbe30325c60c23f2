//! The `vaultkeeper backup` and `vaultkeeper restore` entry points, as library functions
//! with clap argument structs the binary mounts.
//!
//! Both print one JSON line on stdout (see [`print_outcome`]) for the operator to read from
//! the Job's log, and exit non-zero with the reason on failure. Secrets are read from
//! files (mounted Secrets), never from the command line.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::{Manifest, SourceInfo};
use crate::naming::{BackupLocation, manifest_key};
use crate::pipeline::{PipelineOptions, write_backup};
use crate::restore::{RestoreMode, decide_restore_mode, download_and_verify, restore_verified};
use crate::retention::{
    DEFAULT_STALE_UPLOAD_AFTER, RetentionPolicy, complete_backups, plan_retention, stale_uploads,
};
use crate::s3::{MIN_PART_SIZE, S3Credentials, S3Settings, S3Store};
use crate::secret::{EncryptionKey, SecretString};
use crate::vault::{KubernetesLogin, VaultClient, active_node_address, tls_config};

/// Where the projected service-account token is mounted in a pod.
pub const DEFAULT_SERVICE_ACCOUNT_TOKEN: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How to reach and authenticate to Vault.
#[derive(Debug, Clone, clap::Args)]
pub struct VaultArgs {
    /// Vault API address to start from, e.g. https://vault-active.vault.svc:8200. Backups
    /// read the snapshot from, and restores send it to, the active node this address
    /// reports (sys/leader).
    #[arg(long, env = "VAULTKEEPER_VAULT_ADDR")]
    pub vault_addr: String,
    /// PEM file with the CA that signed Vault's certificate (the cluster CA). Without it
    /// the system roots are used.
    #[arg(long, env = "VAULTKEEPER_VAULT_CA_CERT")]
    pub vault_ca_cert: Option<PathBuf>,
    /// Vault role for Kubernetes auth (the service account's JWT is exchanged for a token).
    #[arg(long, env = "VAULTKEEPER_AUTH_ROLE", conflicts_with = "token_file")]
    pub auth_role: Option<String>,
    /// Mount path of the Kubernetes auth method.
    #[arg(long, env = "VAULTKEEPER_AUTH_MOUNT", default_value = "kubernetes")]
    pub auth_mount: String,
    /// The projected service-account token used for Kubernetes auth.
    #[arg(long, default_value = DEFAULT_SERVICE_ACCOUNT_TOKEN)]
    pub service_account_token_file: PathBuf,
    /// A file holding a Vault token to use instead of Kubernetes auth (outside Kubernetes).
    #[arg(long, env = "VAULTKEEPER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// Where the backups are kept.
#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    /// Bucket name.
    #[arg(long, env = "VAULTKEEPER_S3_BUCKET")]
    pub bucket: String,
    /// Key prefix inside the bucket; backups go to <prefix>/<cluster>/.
    #[arg(long, env = "VAULTKEEPER_S3_PREFIX", default_value = "")]
    pub prefix: String,
    /// Region.
    #[arg(long, env = "VAULTKEEPER_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Endpoint of an S3-compatible server (MinIO, Ceph RGW…); AWS when absent.
    #[arg(long, env = "VAULTKEEPER_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Path-style addressing (endpoint/bucket/key), which most S3-compatible servers need.
    #[arg(long, env = "VAULTKEEPER_S3_PATH_STYLE")]
    pub s3_path_style: bool,
    /// File with the access key id; with --s3-secret-access-key-file. Without both, the
    /// SDK's default chain (env, web identity, instance metadata) is used.
    #[arg(long, requires = "s3_secret_access_key_file")]
    pub s3_access_key_id_file: Option<PathBuf>,
    /// File with the secret access key.
    #[arg(long, requires = "s3_access_key_id_file")]
    pub s3_secret_access_key_file: Option<PathBuf>,
    /// Extra PEM CA to trust for the S3 endpoint.
    #[arg(long)]
    pub s3_ca_cert: Option<PathBuf>,
    /// Send upload checksums only when S3 requires them (default for custom endpoints,
    /// many of which reject the SDK's streaming checksums). Integrity does not depend on
    /// them: the encryption authenticates every chunk and the manifest has SHA-256 sums.
    #[arg(long)]
    pub s3_checksums_when_required: bool,
}

/// `vaultkeeper backup`: snapshot, encrypt, upload, apply retention.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Vault connection and authentication.
    #[command(flatten)]
    pub vault: VaultArgs,
    /// Bucket and credentials.
    #[command(flatten)]
    pub s3: S3Args,
    /// Name of the VaultCluster (part of every object name).
    #[arg(long, env = "VAULTKEEPER_CLUSTER_NAME")]
    pub cluster_name: String,
    /// File with the 32-byte encryption key (raw or base64), from the encryption key Secret.
    #[arg(long, env = "VAULTKEEPER_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: PathBuf,
    /// S3 part size in MiB (at least 5). Memory use is about (parts in flight + 1) × this.
    #[arg(long, default_value_t = 8)]
    pub part_size_mib: usize,
    /// Parts uploading concurrently while the next one fills.
    #[arg(long, default_value_t = 2)]
    pub parts_in_flight: usize,
    /// Keep at least this many newest complete backups.
    #[arg(long, env = "VAULTKEEPER_KEEP_LAST")]
    pub keep_last: Option<u32>,
    /// Keep every backup younger than this: a duration such as 30d, 2w or 1h30m (whole
    /// numbers, each followed by a unit w, d, h, m or s, largest unit first and each unit
    /// at most once).
    #[arg(long, env = "VAULTKEEPER_MAX_AGE")]
    pub max_age: Option<String>,
    /// Abort our unfinished multipart uploads older than this (left by a killed run); a
    /// duration like --max-age.
    #[arg(long, default_value = "12h")]
    pub stale_upload_after: String,
}

/// `vaultkeeper restore`: download, verify, restore.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// Vault connection and authentication (a token allowed to restore snapshots).
    #[command(flatten)]
    pub vault: VaultArgs,
    /// Bucket and credentials.
    #[command(flatten)]
    pub s3: S3Args,
    /// Name of the VaultCluster whose backups to restore from.
    #[arg(long, env = "VAULTKEEPER_CLUSTER_NAME")]
    pub cluster_name: String,
    /// File with the encryption key the backup was written with.
    #[arg(long, env = "VAULTKEEPER_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: PathBuf,
    /// `latest` (the newest complete backup) or an object key.
    #[arg(long, default_value = "latest")]
    pub from: String,
    /// Use snapshot-force: required when the target is another cluster than the one
    /// backed up (e.g. after a total loss). The target's data AND keys are replaced.
    #[arg(long)]
    pub force: bool,
    /// Directory for the encrypted spool file (needs the object's size free).
    #[arg(long)]
    pub spool_dir: Option<PathBuf>,
}

/// The one-line result of a backup run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupReport {
    /// The object written.
    pub object: String,
    /// Object size in bytes.
    pub size: u64,
    /// SHA-256 of the object (hex).
    pub sha256: String,
    /// Size of the raft snapshot.
    pub snapshot_size: u64,
    /// SHA-256 of the raft snapshot (hex).
    pub snapshot_sha256: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Vault version of the node the snapshot came from.
    pub vault_version: Option<String>,
    /// Committed raft index before the snapshot.
    pub raft_index: Option<u64>,
    /// Keys deleted by retention.
    pub deleted: Vec<String>,
    /// Stale multipart uploads aborted (keys).
    pub aborted_uploads: Vec<String>,
    /// Why retention could not finish, if it could not (the backup itself succeeded).
    pub retention_error: Option<String>,
}

/// The one-line result of a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The object restored.
    pub object: String,
    /// Object size.
    pub size: u64,
    /// SHA-256 of the restored snapshot.
    pub snapshot_sha256: String,
    /// The endpoint used.
    pub mode: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Prints the outcome as one JSON line on stdout (`{"status":"ok",...}` or
/// `{"status":"failed","error":"..."}`), the error also on stderr, and returns the exit
/// code (0 or 1).
pub fn print_outcome<T: Serialize>(outcome: &Result<T>) -> ExitCode {
    let (line, code) = outcome_line(outcome);
    println!("{line}");
    if let Err(e) = outcome {
        eprintln!("error: {e}");
    }
    code
}

/// The JSON line [`print_outcome`] prints.
pub fn outcome_line<T: Serialize>(outcome: &Result<T>) -> (String, ExitCode) {
    let value = match outcome {
        Ok(report) => match serde_json::to_value(report) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.insert("status".into(), "ok".into());
                serde_json::Value::Object(map)
            }
            Ok(other) => serde_json::json!({ "status": "ok", "result": other }),
            Err(e) => serde_json::json!({ "status": "failed", "error": e.to_string() }),
        },
        Err(e) => serde_json::json!({ "status": "failed", "error": e.to_string() }),
    };
    let failed = value["status"] == "failed";
    (
        value.to_string(),
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Parses an age such as `30d`, `2w` or `1h30m`, in the one duration grammar the CRD
/// also checks ([`vaultkeeper_api::Duration`]). Pure.
pub fn parse_age(field: &'static str, text: &str) -> Result<SignedDuration> {
    text.parse::<vaultkeeper_api::Duration>()
        .map(SignedDuration::from)
        .map_err(|invalid| Error::InvalidArgument {
            field,
            reason: invalid.to_string(),
        })
}

/// The retention policy the arguments describe. Pure.
pub fn retention_policy(keep_last: Option<u32>, max_age: Option<&str>) -> Result<RetentionPolicy> {
    let keep_last = match keep_last {
        None => None,
        Some(n) => Some(NonZeroU32::new(n).ok_or(Error::InvalidArgument {
            field: "--keep-last",
            reason: "0 would delete every backup; give at least 1, or leave it out".into(),
        })?),
    };
    let max_age = max_age.map(|a| parse_age("--max-age", a)).transpose()?;
    Ok(RetentionPolicy { keep_last, max_age })
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn read_key(path: &Path) -> Result<EncryptionKey> {
    let bytes = zeroize::Zeroizing::new(read_file("the encryption key", path)?);
    EncryptionKey::from_file_contents(&bytes)
}

/// S3 settings from the arguments (reads the credential files).
pub fn s3_settings(args: &S3Args) -> Result<S3Settings> {
    let credentials = match (&args.s3_access_key_id_file, &args.s3_secret_access_key_file) {
        (Some(id), Some(secret)) => S3Credentials::Static {
            access_key_id: SecretString::from_file("--s3-access-key-id-file", id)?
                .expose()
                .to_owned(),
            secret_access_key: SecretString::from_file("--s3-secret-access-key-file", secret)?,
            session_token: None,
        },
        _ => S3Credentials::Ambient,
    };
    let ca_pem = args
        .s3_ca_cert
        .as_deref()
        .map(|p| read_file("the S3 CA certificate", p))
        .transpose()?;
    Ok(S3Settings {
        bucket: args.bucket.clone(),
        region: args.s3_region.clone(),
        endpoint: args.s3_endpoint.clone(),
        force_path_style: args.s3_path_style,
        credentials,
        ca_pem,
        checksums_when_required: args.s3_checksums_when_required || args.s3_endpoint.is_some(),
    })
}

/// A Vault client for the starting address.
pub fn vault_client(args: &VaultArgs) -> Result<VaultClient> {
    let ca = args
        .vault_ca_cert
        .as_deref()
        .map(|p| read_file("the Vault CA certificate", p))
        .transpose()?;
    let tls = tls_config(ca.as_deref()).map_err(|e| match e {
        Error::VaultClient { reason, .. } => Error::VaultClient {
            addr: args.vault_addr.clone(),
            reason,
        },
        other => other,
    })?;
    VaultClient::new(&args.vault_addr, Arc::new(tls))
}

/// A Vault token and whether we obtained it ourselves (and so revoke it when done).
struct Session {
    token: SecretString,
    logged_in: bool,
}

async fn authenticate(vault: &VaultClient, args: &VaultArgs) -> Result<Session> {
    match (&args.auth_role, &args.token_file) {
        (_, Some(path)) => Ok(Session {
            token: SecretString::from_file("--token-file", path)?,
            logged_in: false,
        }),
        (Some(role), None) => {
            let login = KubernetesLogin {
                mount: args.auth_mount.clone(),
                role: role.clone(),
                jwt: SecretString::from_file(
                    "--service-account-token-file",
                    &args.service_account_token_file,
                )?,
            };
            Ok(Session {
                token: vault.login_kubernetes(&login).await?,
                logged_in: true,
            })
        }
        (None, None) => Err(Error::InvalidArgument {
            field: "--auth-role",
            reason: "give --auth-role (Kubernetes auth, in a pod) or --token-file".into(),
        }),
    }
}

async fn end_session(vault: &VaultClient, session: &Session) {
    if session.logged_in
        && let Err(e) = vault.revoke_self(&session.token).await
    {
        tracing::warn!(error = %e, "could not revoke the login token; it expires with its TTL");
    }
}

/// Runs one backup: authenticate, find the active node, stream the snapshot into an
/// encrypted S3 object with its manifest, abort stale uploads, apply retention.
pub async fn run_backup(args: BackupArgs) -> Result<BackupReport> {
    let started = Instant::now();
    let started_at = Timestamp::now();
    let location = BackupLocation::new(&args.s3.prefix, &args.cluster_name)?;
    let policy = retention_policy(args.keep_last, args.max_age.as_deref())?;
    let stale_after = parse_age("--stale-upload-after", &args.stale_upload_after)
        .unwrap_or(DEFAULT_STALE_UPLOAD_AFTER);
    if args.part_size_mib.saturating_mul(1024 * 1024) < MIN_PART_SIZE
        || args.part_size_mib > 5 * 1024
    {
        return Err(Error::InvalidArgument {
            field: "--part-size-mib",
            reason: format!(
                "{} is outside 5..=5120 (S3's part size limits)",
                args.part_size_mib
            ),
        });
    }
    if !(1..=16).contains(&args.parts_in_flight) {
        return Err(Error::InvalidArgument {
            field: "--parts-in-flight",
            reason: format!("{} is outside 1..=16", args.parts_in_flight),
        });
    }
    let key = read_key(&args.encryption_key_file)?;
    let store = S3Store::connect(&s3_settings(&args.s3)?).await?;
    let entry = vault_client(&args.vault)?;
    let session = authenticate(&entry, &args.vault).await?;
    let result = backup_with_session(
        &args,
        &location,
        &policy,
        stale_after,
        started_at,
        &key,
        &store,
        &entry,
        &session,
    )
    .await;
    end_session(&entry, &session).await;
    let mut report = result?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn backup_with_session(
    args: &BackupArgs,
    location: &BackupLocation,
    policy: &RetentionPolicy,
    stale_after: SignedDuration,
    started_at: Timestamp,
    key: &EncryptionKey,
    store: &S3Store,
    entry: &VaultClient,
    session: &Session,
) -> Result<BackupReport> {
    // Backups run as their own least-privileged identity, never as root.
    if entry.is_root_token(&session.token).await? {
        return Err(Error::InvalidArgument {
            field: "--token-file",
            reason: "refusing to back up with a root token: use a token (or a Kubernetes auth role) whose policy grants only read on sys/storage/raft/snapshot".into(),
        });
    }
    let leader = entry.leader().await?;
    let active = entry.at(&active_node_address(entry.addr(), &leader)?)?;
    let health = active.require_unsealed().await?;
    // Uploads a killed run left behind: abort them first so they stop costing storage.
    let mut aborted_uploads = Vec::new();
    let pending = store.list_uploads(&location.list_prefix()).await?;
    for upload in stale_uploads(&pending, location, started_at, stale_after) {
        store.abort_upload(&upload.key, &upload.upload_id).await?;
        aborted_uploads.push(upload.key.clone());
    }
    let source_info = SourceInfo {
        cluster: location.cluster().to_owned(),
        cluster_id: health.cluster_id.clone(),
        vault_version: health.version.clone(),
        raft_index: leader.raft_committed_index,
        node: active.addr().to_owned(),
    };
    let snapshot = active.snapshot(&session.token).await?;
    let options = PipelineOptions {
        part_size: args.part_size_mib * 1024 * 1024,
        parts_in_flight: args.parts_in_flight,
        ..PipelineOptions::default()
    };
    let manifest = write_backup(
        store,
        location,
        started_at,
        snapshot,
        source_info,
        key,
        options,
    )
    .await?;
    tracing::info!(object = %manifest.object, size = manifest.ciphertext.size, "backup written");

    let (deleted, retention_error) = match apply_retention(store, location, policy).await {
        Ok(deleted) => (deleted, None),
        Err((deleted, e)) => {
            tracing::error!(error = %e, "retention failed; the backup itself is complete");
            (deleted, Some(e.to_string()))
        }
    };
    Ok(BackupReport {
        object: manifest.object,
        size: manifest.ciphertext.size,
        sha256: manifest.ciphertext.sha256,
        snapshot_size: manifest.plaintext.size,
        snapshot_sha256: manifest.plaintext.sha256,
        duration_ms: 0,
        vault_version: manifest.source.vault_version,
        raft_index: manifest.source.raft_index,
        deleted,
        aborted_uploads,
        retention_error,
    })
}

/// Lists the location, decides with [`plan_retention`] and deletes in plan order.
/// Returns the deleted keys, or those deleted before the error.
pub async fn apply_retention(
    store: &S3Store,
    location: &BackupLocation,
    policy: &RetentionPolicy,
) -> std::result::Result<Vec<String>, (Vec<String>, Error)> {
    let listing = store
        .list(&location.list_prefix())
        .await
        .map_err(|e| (Vec::new(), e))?;
    let plan = plan_retention(&listing, location, policy, Timestamp::now());
    let mut deleted = Vec::new();
    for deletion in plan.delete {
        if let Err(e) = store.delete(&deletion.key).await {
            return Err((deleted, e));
        }
        tracing::info!(key = %deletion.key, reason = ?deletion.reason, "deleted by retention");
        deleted.push(deletion.key);
    }
    Ok(deleted)
}

/// Resolves `--from`: `latest` is the newest complete backup; anything else must be one
/// of this cluster's object keys. Returns the key and its manifest when there is one.
pub async fn resolve_backup(
    store: &S3Store,
    location: &BackupLocation,
    from: &str,
) -> Result<(String, Option<Manifest>)> {
    let object = if from == "latest" {
        let listing = store.list(&location.list_prefix()).await?;
        complete_backups(&listing, location)
            .into_iter()
            .next()
            .map(|b| b.object_key)
            .ok_or_else(|| Error::NoBackup {
                bucket: store.bucket().to_owned(),
                prefix: location.list_prefix(),
                cluster: location.cluster().to_owned(),
            })?
    } else {
        match location.parse(from) {
            Some(parsed) => parsed.object_key,
            None => {
                return Err(Error::InvalidArgument {
                    field: "--from",
                    reason: format!(
                        "{from:?} is not a backup object of cluster {} (expected \"latest\" or a key like {})",
                        location.cluster(),
                        location.object_key(Timestamp::UNIX_EPOCH)
                    ),
                });
            }
        }
    };
    let manifest_key = manifest_key(&object);
    let manifest = if store.exists(&manifest_key).await? {
        Some(Manifest::from_json(
            &manifest_key,
            &store.get_small(&manifest_key).await?,
        )?)
    } else {
        tracing::warn!(%object, "no manifest: relying on the encryption's authentication alone");
        None
    };
    Ok((object, manifest))
}

/// Runs one restore: resolve the backup, choose the endpoint, download and verify all of
/// the object, then stream the verified snapshot into Vault. Vault receives nothing
/// before the verification finished (the calls before it are read-only).
pub async fn run_restore(args: RestoreArgs) -> Result<RestoreReport> {
    let started = Instant::now();
    let location = BackupLocation::new(&args.s3.prefix, &args.cluster_name)?;
    let key = read_key(&args.encryption_key_file)?;
    let store = S3Store::connect(&s3_settings(&args.s3)?).await?;
    let entry = vault_client(&args.vault)?;
    let (object, manifest) = resolve_backup(&store, &location, &args.from).await?;
    let session = authenticate(&entry, &args.vault).await?;
    let result = async {
        // Decide the endpoint first (read-only calls) so a refused restore fails fast.
        let leader = entry.leader().await?;
        let active = entry.at(&active_node_address(entry.addr(), &leader)?)?;
        let health = active.require_unsealed().await?;
        let mode = decide_restore_mode(
            manifest.as_ref().and_then(|m| m.source.cluster_id.as_deref()),
            health.cluster_id.as_deref(),
            args.force,
        )?;
        let verified = download_and_verify(
            &store,
            &object,
            manifest.as_ref(),
            &key,
            args.spool_dir.as_deref(),
        )
        .await?;
        tracing::info!(%object, size = verified.ciphertext.size, ?mode, "backup verified; restoring");
        restore_verified(&active, &session.token, &verified, &key, mode).await?;
        Ok::<_, Error>((mode, verified.ciphertext.size, verified.plaintext.sha256.clone()))
    }
    .await;
    // After a restore the old token may no longer exist; revocation is best effort.
    end_session(&entry, &session).await;
    let (mode, size, snapshot_sha256) = result?;
    Ok(RestoreReport {
        object,
        size,
        snapshot_sha256,
        mode: match mode {
            RestoreMode::Snapshot => "snapshot".into(),
            RestoreMode::SnapshotForce => "snapshot-force".into(),
        },
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(clap::Subcommand)]
    enum Command {
        Backup(BackupArgs),
        Restore(RestoreArgs),
    }

    #[test]
    fn ages_parse_and_bad_ones_name_the_flag() {
        assert_eq!(
            parse_age("--max-age", "30d").unwrap(),
            SignedDuration::from_hours(720)
        );
        assert_eq!(
            parse_age("--max-age", "2w").unwrap(),
            SignedDuration::from_hours(336)
        );
        assert_eq!(
            parse_age("--max-age", "90m").unwrap(),
            SignedDuration::from_mins(90)
        );
        for bad in [
            "",
            "d",
            "30",
            "30 days",
            "-1d",
            "1.5h",
            "99999999999999999w",
        ] {
            let err = parse_age("--max-age", bad).unwrap_err();
            assert!(err.to_string().contains("--max-age"), "{bad}: {err}");
        }
    }

    #[test]
    fn keep_last_zero_is_refused() {
        let err = retention_policy(Some(0), None).unwrap_err();
        assert!(err.to_string().contains("--keep-last"), "{err}");
        assert!(!retention_policy(None, None).unwrap().is_enabled());
        assert!(retention_policy(Some(3), Some("7d")).unwrap().is_enabled());
    }

    #[test]
    fn backup_args_parse_with_kubernetes_auth_and_token_file_conflicts() {
        let cli = Cli::try_parse_from([
            "vaultkeeper",
            "backup",
            "--vault-addr",
            "https://vault-active:8200",
            "--auth-role",
            "vault-backup",
            "--bucket",
            "b",
            "--cluster-name",
            "vault",
            "--encryption-key-file",
            "/k",
            "--keep-last",
            "7",
        ])
        .unwrap();
        let Command::Backup(args) = cli.command else {
            panic!("not backup")
        };
        assert_eq!(args.vault.auth_mount, "kubernetes");
        assert_eq!(
            args.vault.service_account_token_file,
            Path::new(DEFAULT_SERVICE_ACCOUNT_TOKEN)
        );
        assert_eq!(args.part_size_mib, 8);

        let both = Cli::try_parse_from([
            "vaultkeeper",
            "backup",
            "--vault-addr",
            "https://v:8200",
            "--auth-role",
            "r",
            "--token-file",
            "/t",
            "--bucket",
            "b",
            "--cluster-name",
            "vault",
            "--encryption-key-file",
            "/k",
        ]);
        assert!(both.is_err());
        let restore = Cli::try_parse_from([
            "vaultkeeper",
            "restore",
            "--vault-addr",
            "https://v:8200",
            "--token-file",
            "/t",
            "--bucket",
            "b",
            "--cluster-name",
            "vault",
            "--encryption-key-file",
            "/k",
            "--force",
        ])
        .unwrap();
        let Command::Restore(r) = restore.command else {
            panic!("not restore")
        };
        assert_eq!(r.from, "latest");
        assert!(r.force);
    }

    #[test]
    fn outcome_lines_are_one_json_object_with_a_status() {
        let report = RestoreReport {
            object: "o".into(),
            size: 1,
            snapshot_sha256: "ab".into(),
            mode: "snapshot".into(),
            duration_ms: 5,
        };
        let (ok, code) = outcome_line(&Ok(report));
        assert_eq!(code, ExitCode::SUCCESS);
        let v: serde_json::Value = serde_json::from_str(&ok).unwrap();
        assert_eq!(v["status"], "ok");
        assert_eq!(v["object"], "o");
        assert!(!ok.contains('\n'));

        let failed: Result<RestoreReport> = Err(Error::NoBackup {
            bucket: "b".into(),
            prefix: "vault/".into(),
            cluster: "vault".into(),
        });
        let (line, code) = outcome_line(&failed);
        assert_eq!(code, ExitCode::FAILURE);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["status"], "failed");
        assert!(v["error"].as_str().unwrap().contains("no complete backup"));
    }

    #[tokio::test]
    async fn missing_auth_is_a_clear_error() {
        let args = VaultArgs {
            vault_addr: "https://127.0.0.1:1".into(),
            vault_ca_cert: None,
            auth_role: None,
            auth_mount: "kubernetes".into(),
            service_account_token_file: DEFAULT_SERVICE_ACCOUNT_TOKEN.into(),
            token_file: None,
        };
        let tls = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        );
        let client = VaultClient::new(&args.vault_addr, tls).unwrap();
        let err = authenticate(&client, &args).await.err().unwrap();
        assert!(err.to_string().contains("--auth-role"), "{err}");
    }
}
