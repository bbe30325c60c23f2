//! A simulated Kubernetes cluster for tests and `vaultkeeper sandbox`: an in-process API
//! server that `kube::Client` and `kubectl` talk to, the controllers the operator relies on,
//! and a small kubelet that runs pod specs as real processes.

pub mod clock;
pub mod crd;
pub mod error;
pub mod kinds;
pub mod patch;
pub mod pki;
pub mod runtime;
pub mod secret;
pub mod selectors;
pub mod ssa;
pub mod store;

pub use error::SimError;
