//! `vaultkeeper`: one binary for the operator, its jobs and its tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vaultkeeper::CliError;
use vaultkeeper::commands::{backup, import, render, restore};

/// Runs production Vault and OpenBao clusters on Kubernetes from one custom resource.
#[derive(Parser)]
#[command(name = "vaultkeeper", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: reconcile VaultClusters until stopped.
    Run(vaultkeeper::commands::run::RunArgs),
    /// Print a CustomResourceDefinition (YAML): VaultCluster unless `--kind` names
    /// another (vaultpolicy, vaultrestore).
    Crd {
        /// The kind, lowercase, as the files in crds/ are named.
        #[arg(long, default_value = "vaultcluster")]
        kind: String,
    },
    /// Render everything vaultkeeper would apply for a VaultCluster manifest, like
    /// `helm template`, generating the cluster's PKI when it needs one.
    Render(render::RenderArgs),
    /// Convert a Vault Helm chart values file into the equivalent VaultCluster (stdout),
    /// naming every value that cannot be carried over and why (stderr). See
    /// docs/migrating-from-helm.md.
    Import(import::ImportArgs),
    /// Take an encrypted raft snapshot and upload it to the object store (S3, GCS or Azure
    /// Blob Storage), then apply retention (the backup CronJob's entry point). Prints one
    /// JSON line with the outcome.
    Backup(backup::BackupArgs),
    /// Download a backup, verify it completely, and restore it into a cluster. Destructive:
    /// the target's data is replaced. See docs/restore-runbook.md.
    Restore(restore::RestoreArgs),
    /// Key escrow for people: create an age identity, decrypt an escrow object (see
    /// docs/custody.md).
    #[command(subcommand)]
    Keys(vaultkeeper::commands::keys::KeysCommand),
    /// Renew the cluster's metrics token, or re-issue it when it lapsed or was revoked
    /// (the metrics-token CronJob's entry point). Prints one JSON line with the outcome.
    MetricsToken(vaultkeeper::commands::metrics_token::MetricsTokenArgs),
    /// Try vaultkeeper with nothing installed: start a simulated Kubernetes cluster whose
    /// pods are real OpenBao processes, install the CRD and the operator, apply an example,
    /// and print what to try with kubectl. Needs root.
    #[cfg(feature = "sandbox")]
    Sandbox(vaultkeeper::commands::sandbox::SandboxArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => {
            return async_command(|| async {
                match vaultkeeper::commands::run::run(args).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => {
                        eprintln!("error: {error}");
                        error.exit_code()
                    }
                }
            });
        }
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => {
            return async_command(|| async {
                match vaultkeeper::commands::sandbox::run(args).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => {
                        eprintln!("error: {error}");
                        error.exit_code()
                    }
                }
            });
        }
        Command::Backup(args) => return async_command(|| backup::run(args)),
        Command::Restore(args) => return async_command(|| restore::run(args)),
        Command::MetricsToken(args) => {
            return async_command(|| vaultkeeper::commands::metrics_token::main(args));
        }
        Command::Keys(command) => {
            return async_command(|| async {
                match vaultkeeper::commands::keys::run(command).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => {
                        eprintln!("error: {error}");
                        error.exit_code()
                    }
                }
            });
        }
        Command::Crd { kind } => match vaultkeeper_api::kind_crd_yaml(&kind) {
            Some(yaml) => yaml
                .map(|yaml| print!("{yaml}"))
                .map_err(|e| CliError::Internal(format!("cannot serialize the CRD: {e}"))),
            None => Err(CliError::Input(format!(
                "--kind: {kind:?} is not a vaultkeeper kind; use one of {}",
                vaultkeeper_api::CRD_KINDS.join(", ")
            ))),
        },
        Command::Render(args) => render::run(&args),
        Command::Import(args) => import::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}

/// Runs an async command on a multi-threaded runtime; start-up failure is exit status 1.
fn async_command<F, Fut>(command: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}
