//! A simulated Kubernetes cluster for tests and `vaultkeeper sandbox`: an in-process API
//! server that `kube::Client` and `kubectl` talk to, the controllers the operator relies on,
//! and a small kubelet that runs pod specs as real processes.

pub mod runtime;
