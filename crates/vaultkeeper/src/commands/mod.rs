//! The implementations of the `vaultkeeper` subcommands.

pub mod backup;
pub mod import;
pub mod keys;
pub mod metrics_token;
pub mod render;
pub mod restore;
pub mod run;
#[cfg(feature = "sandbox")]
pub mod sandbox;

/// The jobs' default JWT for Kubernetes auth: the projected token whose only audience is
/// Vault logins, never the pod's API-server token (see `vaultkeeper_api::login`).
pub const DEFAULT_SERVICE_ACCOUNT_TOKEN: &str = vaultkeeper_api::login::VAULT_LOGIN_TOKEN_FILE;
