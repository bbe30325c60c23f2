//! The real Helm binary against a simulated cluster, and the official Vault chart kept in
//! `tests/fixtures/vault-helm`: what the chart tests and the adoption test share.

use std::path::PathBuf;

use serde_json::Value;
use vaultkeeper_sim::SimCluster;

use crate::install::{self, InstallError};

/// The packaged Vault chart the tests install (0.34.1, as `vaultkeeper import` reads its
/// values).
pub fn vault_chart() -> PathBuf {
    install::workspace_root().join("tests/fixtures/vault-helm/vault-0.34.1.tgz")
}

fn ok<T>(r: Result<T, InstallError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// `helm` and `kubectl` pointed at one simulated cluster.
pub struct Helm {
    /// The cluster's kubeconfig file.
    pub kubeconfig: String,
}

impl Helm {
    /// The tools for `sim`.
    pub fn for_cluster(sim: &SimCluster) -> Helm {
        Helm {
            kubeconfig: sim.kubeconfig_path().to_string_lossy().into_owned(),
        }
    }

    /// Runs helm; a failure fails the test with Helm's message.
    pub fn helm(&self, args: &[&str]) -> String {
        ok(self.try_helm(args))
    }

    /// Runs helm.
    pub fn try_helm(&self, args: &[&str]) -> Result<String, InstallError> {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--kubeconfig", &self.kubeconfig]);
        install::run(&ok(install::helm()), &all)
    }

    /// Runs kubectl.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, InstallError> {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--kubeconfig", &self.kubeconfig]);
        install::run(&ok(install::kubectl()), &all)
    }

    /// `helm status` of a release, as JSON.
    pub fn status_of(&self, release: &str, namespace: &str) -> Value {
        let out = self.helm(&["status", release, "-n", namespace, "-o", "json"]);
        serde_json::from_str(&out).expect("helm status prints JSON")
    }
}
