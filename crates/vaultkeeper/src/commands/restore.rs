//! `vaultkeeper restore`: download a backup, verify all of it, and restore it into a
//! cluster. Destructive: the target's data is replaced (see docs/restore-runbook.md).
//!
//! The flags become a [`RestoreJob`] for `vaultkeeper_backup::run_restore`; the outcome
//! line and exit code are the backup command's ([`print_outcome`]).

use std::path::PathBuf;
use std::process::ExitCode;

use vaultkeeper_backup::{RestoreJob, Result, run_restore};

use super::backup::{S3Args, VaultArgs, print_outcome};

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

impl RestoreArgs {
    /// The restore job the flags describe.
    pub fn job(&self) -> Result<RestoreJob> {
        Ok(RestoreJob {
            vault: self.vault.access()?,
            store: self.s3.access()?,
            cluster_name: self.cluster_name.clone(),
            encryption_key_file: self.encryption_key_file.clone(),
            from: self.from.clone(),
            force: self.force,
            spool_dir: self.spool_dir.clone(),
        })
    }
}

/// Runs `vaultkeeper restore`: prints the outcome line and answers the exit code.
pub async fn run(args: RestoreArgs) -> ExitCode {
    let outcome = match args.job() {
        Ok(job) => run_restore(&job).await,
        Err(e) => Err(e),
    };
    print_outcome(&outcome)
}
