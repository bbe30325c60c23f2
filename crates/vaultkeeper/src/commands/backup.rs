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
    BackupJob, Error, Result, S3Access, S3CredentialFiles, VaultAccess, VaultAuth, run_backup,
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
    /// The bucket and credentials the flags describe.
    pub fn access(&self) -> S3Access {
        let credential_files = match (&self.s3_access_key_id_file, &self.s3_secret_access_key_file)
        {
            (Some(id), Some(secret)) => Some(S3CredentialFiles {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
            }),
            _ => None,
        };
        S3Access {
            bucket: self.bucket.clone(),
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
            s3: self.s3.access(),
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
        assert!(job.s3.credential_files.is_none());
    }
}
