//! `vaultkeeper`: one binary for the operator, its jobs and its tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vaultkeeper::CliError;
use vaultkeeper::commands::render;

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
    Render(render::RenderArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => vaultkeeper_api::crd_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(|e| CliError::Internal(format!("cannot serialize the CRD: {e}"))),
        Command::Render(args) => render::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}
