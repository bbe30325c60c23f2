//! The implementations of the `vaultkeeper` subcommands.

pub mod backup;
pub mod metrics_token;
pub mod render;
pub mod restore;
pub mod run;
#[cfg(feature = "sandbox")]
pub mod sandbox;

/// Where Kubernetes mounts a pod's projected service-account token: the jobs' default JWT
/// for Kubernetes auth.
pub const DEFAULT_SERVICE_ACCOUNT_TOKEN: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/token";
