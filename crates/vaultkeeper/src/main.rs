//! `vaultkeeper`: one binary for the operator, its jobs and its tools.

mod render_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Runs production Vault and OpenBao clusters on Kubernetes from one custom resource.
#[derive(Parser)]
#[command(name = "vaultkeeper", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the VaultCluster CustomResourceDefinition (YAML).
    Crd,
    /// Render everything vaultkeeper would apply for a VaultCluster manifest, like
    /// `helm template`, generating the cluster's PKI when it needs one.
    Render(render_cmd::RenderArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => vaultkeeper_api::crd_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(|e| CliError::Internal(format!("cannot serialize the CRD: {e}"))),
        Command::Render(args) => render_cmd::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The input is wrong: the message names the field and the fix.
    #[error("{0}")]
    Input(String),
    /// Something the user cannot fix by editing the input.
    #[error("{0}")]
    Internal(String),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Input(_) => ExitCode::from(2),
            CliError::Internal(_) => ExitCode::from(1),
        }
    }
}
