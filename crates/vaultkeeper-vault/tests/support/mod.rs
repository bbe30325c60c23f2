//! Test support shared by the real-server tests: a PKI made with rcgen, real OpenBao
//! processes on loopback addresses, a transit server for auto-unseal, a Kubernetes
//! TokenReview endpoint, log capture and the secret scan.
#![allow(dead_code)]

pub mod bao;
pub mod logs;
pub mod pki;
pub mod raw;
pub mod tokenreview;
pub mod transit;

use std::time::{Duration, Instant};

use vaultkeeper_vault::client::NodeClient;
use vaultkeeper_vault::keys::KeyStore;
use vaultkeeper_vault::lifecycle::{Lifecycle, PassReport};
use vaultkeeper_vault::node::PodName;

/// Runs passes until one decides nothing (converged) or `timeout` passes. Returns every
/// report, the last one last. Fails the test on timeout with the last report.
pub async fn converge<C: NodeClient, S: KeyStore>(
    lifecycle: &mut Lifecycle<C, S>,
    leftovers: &[PodName],
    timeout: Duration,
) -> Vec<PassReport> {
    let start = Instant::now();
    let mut reports = Vec::new();
    loop {
        let report = lifecycle
            .run_pass(leftovers)
            .await
            .unwrap_or_else(|e| panic!("pass failed: {e}"));
        let converged = report.is_converged();
        reports.push(report);
        if converged {
            return reports;
        }
        if start.elapsed() > timeout {
            panic!(
                "did not converge within {timeout:?}; last pass: {:#?}",
                reports.last()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Asserts that none of `secrets` appears in any recorded argv, in any captured log
/// line, or in the given extra texts (error messages, server logs).
pub fn assert_no_secret_leaked(secrets: &[String], argvs: &[Vec<String>], extra: &[String]) {
    let logs = logs::captured();
    assert!(
        !secrets.is_empty(),
        "the scan needs the secrets to look for"
    );
    for secret in secrets {
        assert!(
            secret.len() >= 8,
            "a secret this short would match by accident"
        );
        for argv in argvs {
            for arg in argv {
                assert!(
                    !arg.contains(secret.as_str()),
                    "a secret is in a command vector: {argv:?}"
                );
            }
        }
        assert!(
            !logs.contains(secret.as_str()),
            "a secret is in the captured logs"
        );
        for text in extra {
            assert!(
                !text.contains(secret.as_str()),
                "a secret is in: {}",
                &text[..text.len().min(200)]
            );
        }
    }
}
