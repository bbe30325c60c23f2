//! End-to-end tests for vaultkeeper on the simulated cluster.

pub mod helm;
pub mod hostile;
pub mod install;
pub mod moto;
pub mod operator;
