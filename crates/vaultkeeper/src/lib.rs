//! The vaultkeeper operator as a library: the VaultCluster controller and what it is made
//! of, plus the command implementations the `vaultkeeper` binary dispatches to. The
//! end-to-end tests run the same code in process against the simulated cluster.

pub mod apply;
pub mod backup;
pub mod commands;
pub mod config;
pub mod controller;
pub mod custody;
pub mod escrow;
pub mod helm_values;
pub mod http;
pub mod image_policy;
pub mod leader;
pub mod metrics;
pub mod monitoring;
pub mod ownership;

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
    /// Exit status: 2 for bad input, 1 for everything else.
    pub fn exit_code(&self) -> std::process::ExitCode {
        match self {
            CliError::Input(_) => std::process::ExitCode::from(2),
            CliError::Internal(_) => std::process::ExitCode::from(1),
        }
    }
}
