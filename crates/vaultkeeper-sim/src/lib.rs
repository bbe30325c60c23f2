//! A simulated Kubernetes cluster for tests and `vaultkeeper sandbox`: an in-process API
//! server that `kube::Client` and `kubectl` talk to, the controllers the operator relies on,
//! and a small kubelet that runs pod specs as real processes.
//!
//! Start one with [`SimCluster::start`]; see `docs/simulated-cluster.md` for what it
//! simulates faithfully and what it refuses.
//!
//! Dependencies point one way, from the wiring down to the storage rules:
//! - `cluster` wires it all: the API `server`, the `controllers` and the `kubelet`.
//! - `server` (HTTP, watch, exec), `controllers` and `kubelet` act on [`core::Core`];
//!   the kubelet drives the pod `runtime`, which knows nothing of the API.
//! - `core` holds the storage rules (reads, writes, admission, scale) over `store`,
//!   `builtin`, `crd`, `ssa`, `patch` and `kinds`. It never names a controller: a stored
//!   change reaches the controllers, like any watch, through the store's change feed.
//! - `kinds`, `store`, `error`, `clock`, `selectors` and `pki` depend on nothing above.

pub mod auth;
pub mod builtin;
pub mod clock;
pub mod cluster;
pub mod controllers;
pub mod core;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod escalation;
pub mod events;
pub mod faults;
pub mod kinds;
pub mod kubelet;
pub mod openapi_pb;
pub mod patch;
pub mod pki;
pub mod podio;
pub mod protobuf;
pub mod requests;
pub mod runtime;
pub mod selectors;
pub mod server;
pub mod ssa;
pub mod store;
pub mod table;

pub use cluster::{SimCluster, SimConfig, TokenRequester};
pub use error::SimError;
pub use faults::{ExecAnswerFault, FailureRule};
pub use requests::RequestRecord;
