//! `vaultkeeper backup`: the backup CronJob's entry point, and the flags, outcome line and
//! exit code it shares with `vaultkeeper restore`.
//!
//! The flags become a [`BackupJob`] for `vaultkeeper_backup::run_backup`. The run prints one
//! JSON line on stdout ([`print_outcome`]), which the operator reads from the Job's log
//! (`crate::backup::outcome_from_log`), and exits non-zero with the reason on failure.
//! Secrets are read from files (mounted Secrets), never taken as flag values.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;

use jiff::SignedDuration;
use serde::Serialize;
use vaultkeeper_backup::retention::{DEFAULT_STALE_UPLOAD_AFTER, RetentionPolicy};
use vaultkeeper_backup::{
    AzureAccess, AzureCredentialSource, BackupJob, Error, GcsAccess, GcsCredentialSource, Result,
    S3Access, S3CredentialFiles, StoreAccess, VaultAccess, VaultAuth, run_backup,
};

use super::DEFAULT_SERVICE_ACCOUNT_TOKEN;

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
    /// The projected service-account token used for Kubernetes auth: one whose audience
    /// is Vault logins only (the Job's pod mounts it here), not the pod's API token.
    #[arg(
        long,
        env = "VAULTKEEPER_SERVICE_ACCOUNT_TOKEN_FILE",
        default_value = DEFAULT_SERVICE_ACCOUNT_TOKEN
    )]
    pub service_account_token_file: PathBuf,
    /// A file holding a Vault token to use instead of Kubernetes auth (outside Kubernetes).
    #[arg(long, env = "VAULTKEEPER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// Which object store holds the backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// Amazon S3 or an S3-compatible server (the --bucket and --s3-* flags).
    S3,
    /// Google Cloud Storage (the --gcs-* flags).
    Gcs,
    /// Azure Blob Storage (the --azure-* flags).
    Azure,
}

/// Where the backups are kept: S3, GCS or Azure, with their flags.
#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    /// The object store: s3, gcs or azure.
    #[arg(long, env = "VAULTKEEPER_STORE", value_enum, default_value_t = StoreKind::S3)]
    pub store: StoreKind,
    /// S3 bucket name (with --store s3).
    #[arg(long, env = "VAULTKEEPER_S3_BUCKET", required_if_eq("store", "s3"))]
    pub bucket: Option<String>,
    /// Key prefix inside the bucket or container, for every store; backups go to
    /// <prefix>/<cluster>/.
    #[arg(long, env = "VAULTKEEPER_S3_PREFIX", default_value = "")]
    pub prefix: String,
    /// GCS bucket name (with --store gcs).
    #[arg(long, env = "VAULTKEEPER_GCS_BUCKET", required_if_eq("store", "gcs"))]
    pub gcs_bucket: Option<String>,
    /// GCS API endpoint (an emulator, Private Service Connect); Google's when absent.
    #[arg(long, env = "VAULTKEEPER_GCS_ENDPOINT")]
    pub gcs_endpoint: Option<String>,
    /// File with a service-account key (JSON). Without it, the metadata server's identity
    /// (GKE Workload Identity, the node's service account) is used.
    #[arg(long, env = "VAULTKEEPER_GCS_SERVICE_ACCOUNT_KEY_FILE")]
    pub gcs_service_account_key_file: Option<PathBuf>,
    /// Send no credentials at all (emulators only).
    #[arg(long, conflicts_with = "gcs_service_account_key_file")]
    pub gcs_anonymous: bool,
    /// Extra PEM CA to trust for the GCS endpoint.
    #[arg(long)]
    pub gcs_ca_cert: Option<PathBuf>,
    /// Azure storage account name (with --store azure).
    #[arg(
        long,
        env = "VAULTKEEPER_AZURE_ACCOUNT",
        required_if_eq("store", "azure")
    )]
    pub azure_account: Option<String>,
    /// Azure container name (with --store azure).
    #[arg(
        long,
        env = "VAULTKEEPER_AZURE_CONTAINER",
        required_if_eq("store", "azure")
    )]
    pub azure_container: Option<String>,
    /// The account's blob endpoint (Azurite: http://127.0.0.1:10000/<account>);
    /// https://<account>.blob.core.windows.net when absent.
    #[arg(long, env = "VAULTKEEPER_AZURE_ENDPOINT")]
    pub azure_endpoint: Option<String>,
    /// File with the storage account key. Without it or --azure-sas-token-file, workload
    /// identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE) is used.
    #[arg(
        long,
        env = "VAULTKEEPER_AZURE_ACCOUNT_KEY_FILE",
        conflicts_with = "azure_sas_token_file"
    )]
    pub azure_account_key_file: Option<PathBuf>,
    /// File with a SAS token for the container.
    #[arg(long, env = "VAULTKEEPER_AZURE_SAS_TOKEN_FILE")]
    pub azure_sas_token_file: Option<PathBuf>,
    /// Extra PEM CA to trust for the Azure endpoint.
    #[arg(long)]
    pub azure_ca_cert: Option<PathBuf>,
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

impl VaultArgs {
    /// The Vault access the flags describe: Kubernetes auth, or a token file.
    pub fn access(&self) -> Result<VaultAccess> {
        let auth = match (&self.auth_role, &self.token_file) {
            (_, Some(path)) => VaultAuth::TokenFile(path.clone()),
            (Some(role), None) => VaultAuth::Kubernetes {
                role: role.clone(),
                mount: self.auth_mount.clone(),
                jwt_file: self.service_account_token_file.clone(),
            },
            (None, None) => {
                return Err(Error::InvalidArgument {
                    field: "--auth-role",
                    reason: "give --auth-role (Kubernetes auth, in a pod) or --token-file".into(),
                });
            }
        };
        Ok(VaultAccess {
            addr: self.vault_addr.clone(),
            ca_cert: self.vault_ca_cert.clone(),
            auth,
        })
    }
}

impl S3Args {
    /// The store and credentials the flags describe.
    pub fn access(&self) -> Result<StoreAccess> {
        let required = |value: &Option<String>, field: &'static str| {
            value.clone().ok_or_else(|| Error::InvalidArgument {
                field,
                reason: format!("is required with --store {}", self.store_name()),
            })
        };
        Ok(match self.store {
            StoreKind::S3 => StoreAccess::S3(self.s3_access(required(&self.bucket, "--bucket")?)),
            StoreKind::Gcs => StoreAccess::Gcs(GcsAccess {
                bucket: required(&self.gcs_bucket, "--gcs-bucket")?,
                prefix: self.prefix.clone(),
                endpoint: self.gcs_endpoint.clone(),
                credentials: match (&self.gcs_service_account_key_file, self.gcs_anonymous) {
                    (Some(path), _) => GcsCredentialSource::ServiceAccountKeyFile(path.clone()),
                    (None, true) => GcsCredentialSource::Anonymous,
                    (None, false) => GcsCredentialSource::Ambient,
                },
                ca_cert: self.gcs_ca_cert.clone(),
            }),
            StoreKind::Azure => StoreAccess::Azure(AzureAccess {
                account: required(&self.azure_account, "--azure-account")?,
                container: required(&self.azure_container, "--azure-container")?,
                prefix: self.prefix.clone(),
                endpoint: self.azure_endpoint.clone(),
                credentials: match (&self.azure_account_key_file, &self.azure_sas_token_file) {
                    (Some(path), _) => AzureCredentialSource::AccountKeyFile(path.clone()),
                    (None, Some(path)) => AzureCredentialSource::SasFile(path.clone()),
                    (None, None) => AzureCredentialSource::WorkloadIdentity,
                },
                ca_cert: self.azure_ca_cert.clone(),
            }),
        })
    }

    fn store_name(&self) -> &'static str {
        match self.store {
            StoreKind::S3 => "s3",
            StoreKind::Gcs => "gcs",
            StoreKind::Azure => "azure",
        }
    }

    /// The S3 bucket and credentials the flags describe.
    fn s3_access(&self, bucket: String) -> S3Access {
        let credential_files = match (&self.s3_access_key_id_file, &self.s3_secret_access_key_file)
        {
            (Some(id), Some(secret)) => Some(S3CredentialFiles {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
            }),
            _ => None,
        };
        S3Access {
            bucket,
            prefix: self.prefix.clone(),
            region: self.s3_region.clone(),
            endpoint: self.s3_endpoint.clone(),
            path_style: self.s3_path_style,
            credential_files,
            ca_cert: self.s3_ca_cert.clone(),
            checksums_when_required: self.s3_checksums_when_required,
        }
    }
}

impl BackupArgs {
    /// The backup job the flags describe.
    pub fn job(&self) -> Result<BackupJob> {
        let retention = retention_policy(self.keep_last, self.max_age.as_deref())?;
        // An unreadable value keeps the default rather than failing the backup over a
        // clean-up setting.
        let stale_upload_after = parse_age("--stale-upload-after", &self.stale_upload_after)
            .unwrap_or(DEFAULT_STALE_UPLOAD_AFTER);
        Ok(BackupJob {
            vault: self.vault.access()?,
            store: self.s3.access()?,
            cluster_name: self.cluster_name.clone(),
            encryption_key_file: self.encryption_key_file.clone(),
            part_size_mib: self.part_size_mib,
            parts_in_flight: self.parts_in_flight,
            retention,
            stale_upload_after,
        })
    }
}

/// Runs `vaultkeeper backup`: prints the outcome line and answers the exit code.
pub async fn run(args: BackupArgs) -> ExitCode {
    let outcome = match args.job() {
        Ok(job) => run_backup(&job).await,
        Err(e) => Err(e),
    };
    print_outcome(&outcome)
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;
    use vaultkeeper_backup::RestoreReport;

    use super::*;
    use crate::commands::restore::RestoreArgs;

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
            store: "s3://b".into(),
            prefix: "vault/".into(),
            cluster: "vault".into(),
        });
        let (line, code) = outcome_line(&failed);
        assert_eq!(code, ExitCode::FAILURE);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["status"], "failed");
        assert!(v["error"].as_str().unwrap().contains("no complete backup"));
    }

    #[test]
    fn missing_auth_is_a_clear_error() {
        let args = VaultArgs {
            vault_addr: "https://127.0.0.1:1".into(),
            vault_ca_cert: None,
            auth_role: None,
            auth_mount: "kubernetes".into(),
            service_account_token_file: DEFAULT_SERVICE_ACCOUNT_TOKEN.into(),
            token_file: None,
        };
        let err = args.access().err().unwrap();
        assert!(err.to_string().contains("--auth-role"), "{err}");
    }

    #[test]
    fn flags_become_the_job_with_the_token_file_winning() {
        let cli = Cli::try_parse_from([
            "vaultkeeper",
            "backup",
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
            "--max-age",
            "7d",
            "--stale-upload-after",
            "nonsense",
        ])
        .unwrap();
        let Command::Backup(args) = cli.command else {
            panic!("not backup")
        };
        let job = args.job().unwrap();
        assert!(matches!(job.vault.auth, VaultAuth::TokenFile(ref p) if p == Path::new("/t")));
        assert_eq!(job.retention.max_age, Some(SignedDuration::from_hours(168)));
        assert_eq!(job.stale_upload_after, DEFAULT_STALE_UPLOAD_AFTER);
        let StoreAccess::S3(s3) = &job.store else {
            panic!("not S3: {:?}", job.store)
        };
        assert!(s3.credential_files.is_none());
        assert_eq!(s3.bucket, "b");
    }

    #[test]
    fn each_store_needs_its_own_location_flags() {
        let parse = |extra: &[&str]| {
            let mut argv = vec![
                "vaultkeeper",
                "backup",
                "--vault-addr",
                "https://v:8200",
                "--token-file",
                "/t",
                "--cluster-name",
                "vault",
                "--encryption-key-file",
                "/k",
            ];
            argv.extend_from_slice(extra);
            match Cli::try_parse_from(argv) {
                Ok(cli) => match cli.command {
                    Command::Backup(args) => args.job().map_err(|e| e.to_string()),
                    _ => panic!("not backup"),
                },
                Err(e) => Err(e.to_string()),
            }
        };
        // S3 stays the default and still needs --bucket (clap's check does not see the
        // default value of --store; the job's does).
        assert!(parse(&[]).unwrap_err().contains("--bucket"));
        assert!(
            parse(&["--store", "gcs"])
                .unwrap_err()
                .contains("--gcs-bucket")
        );
        let job = parse(&["--store", "gcs", "--gcs-bucket", "g", "--prefix", "ns"]).unwrap();
        let StoreAccess::Gcs(gcs) = &job.store else {
            panic!("not GCS")
        };
        assert_eq!((gcs.bucket.as_str(), job.store.prefix()), ("g", "ns"));
        assert_eq!(gcs.credentials, GcsCredentialSource::Ambient);
        let err = parse(&["--store", "azure", "--azure-account", "a"]).unwrap_err();
        assert!(err.contains("--azure-container"), "{err}");
        let job = parse(&[
            "--store",
            "azure",
            "--azure-account",
            "a",
            "--azure-container",
            "c",
            "--azure-sas-token-file",
            "/sas",
        ])
        .unwrap();
        let StoreAccess::Azure(azure) = &job.store else {
            panic!("not Azure")
        };
        assert_eq!(
            azure.credentials,
            AzureCredentialSource::SasFile("/sas".into())
        );
    }
}
