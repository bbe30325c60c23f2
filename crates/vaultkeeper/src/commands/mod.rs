//! The implementations of the `vaultkeeper` subcommands.

pub mod metrics_token;
pub mod render;
pub mod run;
#[cfg(feature = "sandbox")]
pub mod sandbox;
