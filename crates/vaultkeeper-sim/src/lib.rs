//! A simulated Kubernetes cluster for tests and `vaultkeeper sandbox`: an in-process API
//! server that `kube::Client` and `kubectl` talk to, the controllers the operator relies on,
//! and a small kubelet that runs pod specs as real processes.
//!
//! Start one with [`SimCluster::start`]; see `docs/simulated-cluster.md` for what it
//! simulates faithfully and what it refuses.

pub mod auth;
pub mod builtin;
pub mod clock;
pub mod cluster;
pub mod controllers;
pub mod core;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod events;
pub mod faults;
pub mod kinds;
pub mod kubelet;
pub mod patch;
pub mod pki;
pub mod podio;
pub mod requests;
pub mod runtime;
pub mod selectors;
pub mod server;
pub mod ssa;
pub mod store;
pub mod table;

pub use cluster::{SimCluster, SimConfig};
pub use error::SimError;
pub use faults::FailureRule;
pub use requests::RequestRecord;
