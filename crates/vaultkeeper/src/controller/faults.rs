//! Fault injection for the end-to-end tests, compiled only with the `fault-injection`
//! feature (never in the operator's image): wrappers around the executor and the key
//! store through which tests make exec calls or key writes fail at a chosen moment.

use std::sync::Arc;

use vaultkeeper_vault::client::Executor;
use vaultkeeper_vault::keys::KeyStore;

use super::context::Context;

/// Wraps what the controller builds for each cluster.
pub trait Faults: Send + Sync {
    /// Wraps the executor of a cluster.
    fn executor(&self, inner: Arc<dyn Executor>) -> Arc<dyn Executor> {
        inner
    }
    /// Wraps the key store of a cluster.
    fn key_store(&self, inner: Arc<dyn KeyStore>) -> Arc<dyn KeyStore> {
        inner
    }
    /// The exec timeout of bounded commands, instead of the operator's 60 s (a test makes
    /// it short to show that `operator init` is not bound by it).
    fn exec_timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

/// No faults.
pub struct NoFaults;

impl Faults for NoFaults {}

impl Context {
    /// The same context, with `faults` wrapped around every cluster's executor and key
    /// store.
    pub fn with_faults(mut self, faults: Arc<dyn Faults>) -> Self {
        self.faults = faults;
        self
    }
}
