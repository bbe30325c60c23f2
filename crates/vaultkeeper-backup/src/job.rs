//! The backup and restore jobs as library functions: a job description in, a report out.
//!
//! [`run_backup`] authenticates, finds the active node, streams the snapshot into an
//! encrypted S3 object with its manifest, aborts stale uploads and applies retention;
//! [`run_restore`] resolves, downloads and verifies a backup before anything reaches Vault.
//! The binary's `vaultkeeper backup` and `vaultkeeper restore` commands turn their flags
//! into a [`BackupJob`] or [`RestoreJob`] and print the report. Secrets are read from files
//! (mounted Secrets), never taken as values. Error messages name the flag a value came
//! from, because that is what a person fixes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use vaultkeeper_vault::client::{HttpOptions, VaultHttp, tls_config};
use vaultkeeper_vault::secret::{ExposeSecret, Token};

use crate::azure::{AzureCredentials, AzureSettings, AzureStore};
use crate::error::{Error, Result};
use crate::gcs::{GcsCredentials, GcsSettings, GcsStore};
use crate::manifest::{Manifest, SourceInfo};
use crate::naming::{BackupLocation, EscrowLocation, manifest_key};
use crate::pipeline::{PipelineOptions, write_backup};
use crate::restore::{RestoreMode, decide_restore_mode, download_and_verify, restore_verified};
use crate::retention::{RetentionPolicy, complete_backups, plan_retention, stale_uploads};
use crate::s3::{MIN_PART_SIZE, S3Credentials, S3Settings, S3Store};
use crate::secret::{EncryptionKey, read_secret_file};
use crate::store::ObjectStore;
use crate::vault::{active_node_address, require_unsealed};

/// How to reach and authenticate to Vault.
#[derive(Debug, Clone)]
pub struct VaultAccess {
    /// Vault API address to start from, e.g. `https://vault-active.vault.svc:8200`. Backups
    /// read the snapshot from, and restores send it to, the active node it reports.
    pub addr: String,
    /// PEM file with the CA that signed Vault's certificate; the system roots without it.
    pub ca_cert: Option<PathBuf>,
    /// How to get a token.
    pub auth: VaultAuth,
}

/// How a job gets its Vault token.
#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// Kubernetes auth: the service account's JWT is exchanged for a token, which is
    /// revoked when the job ends.
    Kubernetes {
        /// Vault role bound to the service account.
        role: String,
        /// Mount path of the Kubernetes auth method.
        mount: String,
        /// The projected service-account token.
        jwt_file: PathBuf,
    },
    /// A file holding a Vault token (outside Kubernetes); never revoked by the job.
    TokenFile(PathBuf),
}

/// Files holding static S3 credentials.
#[derive(Debug, Clone)]
pub struct S3CredentialFiles {
    /// The access key id.
    pub access_key_id: PathBuf,
    /// The secret access key.
    pub secret_access_key: PathBuf,
}

/// Where the backups are kept.
#[derive(Debug, Clone)]
pub struct S3Access {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket; backups go to `<prefix>/<cluster>/`.
    pub prefix: String,
    /// Region.
    pub region: String,
    /// Endpoint of an S3-compatible server; AWS when absent.
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`).
    pub path_style: bool,
    /// Static credentials; the SDK's default chain (env, web identity, instance metadata)
    /// when absent.
    pub credential_files: Option<S3CredentialFiles>,
    /// Extra PEM CA to trust for the endpoint.
    pub ca_cert: Option<PathBuf>,
    /// Send upload checksums only when S3 requires them (always so for custom endpoints).
    pub checksums_when_required: bool,
}

/// Where a Google Cloud Storage bucket is and how to authenticate.
#[derive(Debug, Clone)]
pub struct GcsAccess {
    /// Bucket name.
    pub bucket: String,
    /// Object name prefix; backups go to `<prefix>/<cluster>/`.
    pub prefix: String,
    /// API endpoint of an emulator or a private endpoint; Google's when absent.
    pub endpoint: Option<String>,
    /// Credentials.
    pub credentials: GcsCredentialSource,
    /// Extra PEM CA to trust for the endpoint.
    pub ca_cert: Option<PathBuf>,
}

/// Where GCS credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcsCredentialSource {
    /// A file holding a service-account key (JSON).
    ServiceAccountKeyFile(PathBuf),
    /// The metadata server (GKE Workload Identity, the node's service account).
    Ambient,
    /// None: an emulator.
    Anonymous,
}

/// Where an Azure Blob Storage container is and how to authenticate.
#[derive(Debug, Clone)]
pub struct AzureAccess {
    /// Storage account name.
    pub account: String,
    /// Container name.
    pub container: String,
    /// Blob name prefix; backups go to `<prefix>/<cluster>/`.
    pub prefix: String,
    /// The account's blob endpoint (Azurite: `http://127.0.0.1:10000/<account>`);
    /// `https://<account>.blob.core.windows.net` when absent.
    pub endpoint: Option<String>,
    /// Credentials.
    pub credentials: AzureCredentialSource,
    /// Extra PEM CA to trust for the endpoint.
    pub ca_cert: Option<PathBuf>,
}

/// Where Azure credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureCredentialSource {
    /// A file holding the storage account key.
    AccountKeyFile(PathBuf),
    /// A file holding a SAS token.
    SasFile(PathBuf),
    /// Workload identity (the federated token AKS mounts).
    WorkloadIdentity,
}

/// Which object store holds the backups.
#[derive(Debug, Clone)]
pub enum StoreAccess {
    /// Amazon S3 or an S3-compatible server.
    S3(S3Access),
    /// Google Cloud Storage.
    Gcs(GcsAccess),
    /// Azure Blob Storage.
    Azure(AzureAccess),
}

impl StoreAccess {
    /// The key prefix backups go under.
    pub fn prefix(&self) -> &str {
        match self {
            StoreAccess::S3(a) => &a.prefix,
            StoreAccess::Gcs(a) => &a.prefix,
            StoreAccess::Azure(a) => &a.prefix,
        }
    }

    /// Reads the credential files and connects (no network call yet).
    pub async fn connect(&self) -> Result<Box<dyn ObjectStore>> {
        match self {
            StoreAccess::S3(access) => Ok(Box::new(S3Store::connect(&s3_settings(access)?).await?)),
            StoreAccess::Gcs(access) => Ok(Box::new(GcsStore::connect(&gcs_settings(access)?)?)),
            StoreAccess::Azure(access) => {
                Ok(Box::new(AzureStore::connect(&azure_settings(access)?)?))
            }
        }
    }
}

/// GCS settings for a job (reads the credential file).
pub fn gcs_settings(access: &GcsAccess) -> Result<GcsSettings> {
    let credentials = match &access.credentials {
        GcsCredentialSource::ServiceAccountKeyFile(path) => GcsCredentials::ServiceAccountKey(
            read_secret_file("--gcs-service-account-key-file", path)?,
        ),
        GcsCredentialSource::Ambient => GcsCredentials::Ambient,
        GcsCredentialSource::Anonymous => GcsCredentials::Anonymous,
    };
    let ca_pem = access
        .ca_cert
        .as_deref()
        .map(|p| read_file("the GCS CA certificate", p))
        .transpose()?;
    Ok(GcsSettings {
        bucket: access.bucket.clone(),
        endpoint: access.endpoint.clone(),
        credentials,
        ca_pem,
    })
}

/// Azure settings for a job (reads the credential file).
pub fn azure_settings(access: &AzureAccess) -> Result<AzureSettings> {
    let credentials = match &access.credentials {
        AzureCredentialSource::AccountKeyFile(path) => {
            AzureCredentials::AccountKey(read_secret_file("--azure-account-key-file", path)?)
        }
        AzureCredentialSource::SasFile(path) => {
            AzureCredentials::Sas(read_secret_file("--azure-sas-token-file", path)?)
        }
        AzureCredentialSource::WorkloadIdentity => AzureCredentials::WorkloadIdentity,
    };
    let ca_pem = access
        .ca_cert
        .as_deref()
        .map(|p| read_file("the Azure CA certificate", p))
        .transpose()?;
    Ok(AzureSettings {
        account: access.account.clone(),
        container: access.container.clone(),
        endpoint: access.endpoint.clone(),
        credentials,
        ca_pem,
    })
}

/// One backup run.
#[derive(Debug, Clone)]
pub struct BackupJob {
    /// Vault connection and authentication.
    pub vault: VaultAccess,
    /// The object store and its credentials.
    pub store: StoreAccess,
    /// Name of the VaultCluster (part of every object name).
    pub cluster_name: String,
    /// File with the 32-byte encryption key (raw or base64).
    pub encryption_key_file: PathBuf,
    /// S3 part size in MiB (5..=5120). Memory use is about (parts in flight + 1) × this.
    pub part_size_mib: usize,
    /// Parts uploading concurrently while the next one fills (1..=16).
    pub parts_in_flight: usize,
    /// Which older backups to delete after this one is written.
    pub retention: RetentionPolicy,
    /// Our unfinished multipart uploads older than this (left by a killed run) are aborted.
    pub stale_upload_after: SignedDuration,
}

/// One restore.
#[derive(Debug, Clone)]
pub struct RestoreJob {
    /// Vault connection and authentication (a token allowed to restore snapshots).
    pub vault: VaultAccess,
    /// The object store and its credentials.
    pub store: StoreAccess,
    /// Name of the VaultCluster whose backups to restore from.
    pub cluster_name: String,
    /// File with the encryption key the backup was written with.
    pub encryption_key_file: PathBuf,
    /// `latest` (the newest complete backup) or an object key.
    pub from: String,
    /// Use snapshot-force: the target is another cluster than the one backed up; its data
    /// and keys are replaced.
    pub force: bool,
    /// Directory for the encrypted spool file (the system temp directory when absent).
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

/// S3 settings for a job (reads the credential files).
pub fn s3_settings(access: &S3Access) -> Result<S3Settings> {
    let credentials = match &access.credential_files {
        Some(files) => S3Credentials::Static {
            access_key_id: read_secret_file("--s3-access-key-id-file", &files.access_key_id)?
                .expose_secret()
                .to_owned(),
            secret_access_key: read_secret_file(
                "--s3-secret-access-key-file",
                &files.secret_access_key,
            )?,
            session_token: None,
        },
        None => S3Credentials::Ambient,
    };
    let ca_pem = access
        .ca_cert
        .as_deref()
        .map(|p| read_file("the S3 CA certificate", p))
        .transpose()?;
    Ok(S3Settings {
        bucket: access.bucket.clone(),
        region: access.region.clone(),
        endpoint: access.endpoint.clone(),
        force_path_style: access.path_style,
        credentials,
        ca_pem,
        checksums_when_required: access.checksums_when_required || access.endpoint.is_some(),
    })
}

/// A Vault client for the starting address.
pub fn vault_client(access: &VaultAccess) -> Result<VaultHttp> {
    let ca = access
        .ca_cert
        .as_deref()
        .map(|p| read_file("the Vault CA certificate", p))
        .transpose()?;
    let tls = tls_config(ca.as_deref()).map_err(|e| e.in_field("--vault-ca-cert"))?;
    VaultHttp::new(&access.addr, Arc::new(tls), HttpOptions::job())
        .map_err(|e| Error::from(e.in_field("--vault-addr")))
}

/// A Vault token and whether we obtained it ourselves (and so revoke it when done).
struct Session {
    token: Token,
    logged_in: bool,
}

async fn authenticate(vault: &VaultHttp, auth: &VaultAuth) -> Result<Session> {
    match auth {
        VaultAuth::TokenFile(path) => Ok(Session {
            token: Token::from(read_secret_file("--token-file", path)?),
            logged_in: false,
        }),
        VaultAuth::Kubernetes {
            role,
            mount,
            jwt_file,
        } => {
            let jwt = read_secret_file("--service-account-token-file", jwt_file)?;
            Ok(Session {
                token: vault.kubernetes_login(mount, role, &jwt).await?,
                logged_in: true,
            })
        }
    }
}

async fn end_session(vault: &VaultHttp, session: &Session) {
    if session.logged_in
        && let Err(e) = vault.revoke_self(&session.token).await
    {
        tracing::warn!(error = %e, "could not revoke the login token; it expires with its TTL");
    }
}

/// Runs one backup: authenticate, find the active node, stream the snapshot into an
/// encrypted S3 object with its manifest, abort stale uploads, apply retention.
pub async fn run_backup(job: &BackupJob) -> Result<BackupReport> {
    let started = Instant::now();
    let started_at = Timestamp::now();
    let location = BackupLocation::new(job.store.prefix(), &job.cluster_name)?;
    if job.part_size_mib.saturating_mul(1024 * 1024) < MIN_PART_SIZE || job.part_size_mib > 5 * 1024
    {
        return Err(Error::InvalidArgument {
            field: "--part-size-mib",
            reason: format!(
                "{} is outside 5..=5120 (S3's part size limits)",
                job.part_size_mib
            ),
        });
    }
    if !(1..=16).contains(&job.parts_in_flight) {
        return Err(Error::InvalidArgument {
            field: "--parts-in-flight",
            reason: format!("{} is outside 1..=16", job.parts_in_flight),
        });
    }
    let key = read_key(&job.encryption_key_file)?;
    let store = job.store.connect().await?;
    let store = store.as_ref();
    let entry = vault_client(&job.vault)?;
    let session = authenticate(&entry, &job.vault.auth).await?;
    let result =
        backup_with_session(job, &location, started_at, &key, store, &entry, &session).await;
    end_session(&entry, &session).await;
    let mut report = result?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

async fn backup_with_session(
    job: &BackupJob,
    location: &BackupLocation,
    started_at: Timestamp,
    key: &EncryptionKey,
    store: &dyn ObjectStore,
    entry: &VaultHttp,
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
    let health = require_unsealed(&active).await?;
    // Uploads a killed run left behind: abort them first so they stop costing storage.
    let mut aborted_uploads = Vec::new();
    let pending = store.list_uploads(&location.list_prefix()).await?;
    for upload in stale_uploads(&pending, location, started_at, job.stale_upload_after) {
        store.abort_upload(&upload.key, &upload.upload_id).await?;
        aborted_uploads.push(upload.key.clone());
    }
    let source_info = SourceInfo {
        cluster: location.cluster().to_owned(),
        cluster_id: health.cluster_id.clone(),
        vault_version: Some(health.version.clone()).filter(|v| !v.is_empty()),
        raft_index: leader.raft_committed_index,
        node: active.addr().to_owned(),
        keys_escrow: newest_escrow(store, location).await,
    };
    let snapshot = active.snapshot(&session.token).await?.map_err(Error::from);
    let options = PipelineOptions {
        part_size: job.part_size_mib * 1024 * 1024,
        parts_in_flight: job.parts_in_flight,
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

    let (deleted, retention_error) = match apply_retention(store, location, &job.retention).await {
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

/// The newest escrow object of the cluster, to record in the backup's manifest. A failed
/// listing (a policy that allows only the backups' own prefix) costs the record, never
/// the backup.
async fn newest_escrow(store: &dyn ObjectStore, location: &BackupLocation) -> Option<String> {
    let escrow = EscrowLocation::new(location.prefix(), location.cluster()).ok()?;
    match store.list(&escrow.list_prefix()).await {
        Ok(listed) => escrow
            .newest(listed.iter().map(|o| o.key.as_str()))
            .map(str::to_owned),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the escrow objects; the backup's manifest names none");
            None
        }
    }
}

/// Lists the location, decides with [`plan_retention`] and deletes in plan order.
/// Returns the deleted keys, or those deleted before the error.
pub async fn apply_retention(
    store: &dyn ObjectStore,
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
    store: &dyn ObjectStore,
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
                store: store.location(),
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
pub async fn run_restore(job: &RestoreJob) -> Result<RestoreReport> {
    let started = Instant::now();
    let location = BackupLocation::new(job.store.prefix(), &job.cluster_name)?;
    let key = read_key(&job.encryption_key_file)?;
    let store = job.store.connect().await?;
    let store = store.as_ref();
    let entry = vault_client(&job.vault)?;
    let (object, manifest) = resolve_backup(store, &location, &job.from).await?;
    let session = authenticate(&entry, &job.vault.auth).await?;
    let result = async {
        // Decide the endpoint first (read-only calls) so a refused restore fails fast.
        let leader = entry.leader().await?;
        let active = entry.at(&active_node_address(entry.addr(), &leader)?)?;
        let health = require_unsealed(&active).await?;
        let mode = decide_restore_mode(
            manifest.as_ref().and_then(|m| m.source.cluster_id.as_deref()),
            health.cluster_id.as_deref(),
            job.force,
        )?;
        let verified = download_and_verify(
            store,
            &object,
            manifest.as_ref(),
            &key,
            job.spool_dir.as_deref(),
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
