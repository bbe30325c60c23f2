//! Measures the lifecycle against real OpenBao clusters (3 nodes, TLS, raft) through both
//! transports and prints the numbers:
//!
//! - init: the `sys/init` call plus the key-store write;
//! - unseal per node: entering the threshold shares into one node;
//! - fresh start to all unsealed, and to converged (all voters);
//! - restart-to-unsealed: from "the restarted node listens" to "it reports unsealed",
//!   for one node and for all three.
//!
//! Run: `cargo run --release -p vaultkeeper-vault --example measure_lifecycle [runs]`
//! (needs `scripts/install-tools.sh`; uses loopback addresses 127.10.20.x and 127.10.21.x).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::bao::{Cluster, Seal};
use vaultkeeper_vault::client::{ExecNodeClient, NodeClient};
use vaultkeeper_vault::decide::{Action, ClusterIntent, InitMode, NodeState, SealIntent};
use vaultkeeper_vault::keys::FileKeyStore;
use vaultkeeper_vault::lifecycle::{Lifecycle, PassReport};

#[derive(Default)]
struct Samples {
    init: Vec<Duration>,
    unseal_per_node: Vec<Duration>,
    fresh_to_unsealed: Vec<Duration>,
    fresh_to_converged: Vec<Duration>,
    one_restart_to_unsealed: Vec<Duration>,
    all_restart_to_unsealed: Vec<Duration>,
}

fn all_unsealed(report: &PassReport, pods: usize) -> bool {
    report
        .observation
        .nodes
        .iter()
        .filter(|n| matches!(n.state, NodeState::Standby | NodeState::Active))
        .count()
        == pods
}

/// Runs passes until every pod reports unsealed; returns the time it took and the
/// passes, then keeps going until converged.
async fn until_unsealed<C: NodeClient>(
    lifecycle: &mut Lifecycle<C, FileKeyStore>,
    pods: usize,
    samples: &mut Samples,
) -> (Duration, Duration) {
    let start = Instant::now();
    let mut unsealed_at = None;
    loop {
        let report = lifecycle
            .run_pass(&[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for outcome in &report.outcomes {
            match outcome.action {
                Action::Init { .. } => samples.init.push(outcome.elapsed),
                Action::Unseal { .. } => samples.unseal_per_node.push(outcome.elapsed),
                _ => {}
            }
        }
        if unsealed_at.is_none() && all_unsealed(&report, pods) {
            unsealed_at = Some(start.elapsed());
        }
        if report.is_converged() {
            return (
                unsealed_at.unwrap_or_else(|| start.elapsed()),
                start.elapsed(),
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "no convergence: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn measure<C: NodeClient>(cluster: &mut Cluster, client: C, samples: &mut Samples) {
    let keys = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = FileKeyStore::new(keys.path().join("keys.json"));
    let intent = ClusterIntent::new(
        cluster.pods(3),
        SealIntent::Shamir {
            shares: 5,
            threshold: 3,
        },
        InitMode::Operator,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut lifecycle = Lifecycle::new(client, store, intent);
    let (unsealed, converged) = until_unsealed(&mut lifecycle, 3, samples).await;
    samples.fresh_to_unsealed.push(unsealed);
    samples.fresh_to_converged.push(converged);

    cluster.node(1).server.kill();
    cluster.node(1).server.start();
    cluster.node(1).server.wait_listening();
    let (unsealed, _) = until_unsealed(&mut lifecycle, 3, samples).await;
    samples.one_restart_to_unsealed.push(unsealed);

    cluster.kill_all();
    cluster.start_all();
    let (unsealed, _) = until_unsealed(&mut lifecycle, 3, samples).await;
    samples.all_restart_to_unsealed.push(unsealed);
}

fn summary(name: &str, values: &[Duration]) {
    if values.is_empty() {
        println!("  {name:<34} (no samples)");
        return;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {name:<34} n={:<3} min={:>8.1} ms  median={:>8.1} ms  max={:>8.1} ms",
        sorted.len(),
        ms(sorted[0]),
        ms(sorted[sorted.len() / 2]),
        ms(sorted[sorted.len() - 1])
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    for transport in ["http", "exec"] {
        let mut samples = Samples::default();
        for _ in 0..runs {
            let subnet = if transport == "http" { 20 } else { 21 };
            let mut cluster = Cluster::new(subnet, 3, Seal::Shamir);
            cluster.start_all();
            if transport == "http" {
                let client = cluster.http_client();
                measure(&mut cluster, client, &mut samples).await;
            } else {
                let client = ExecNodeClient::new(cluster.executor(), Cluster::cli());
                measure(&mut cluster, client, &mut samples).await;
            }
        }
        println!(
            "transport {transport} ({runs} run(s), 3 nodes, Shamir 3 of 5, OpenBao {})",
            bao_version()
        );
        summary("init (sys/init + key write)", &samples.init);
        summary("unseal one node (3 shares)", &samples.unseal_per_node);
        summary("fresh start -> all unsealed", &samples.fresh_to_unsealed);
        summary(
            "fresh start -> converged (voters)",
            &samples.fresh_to_converged,
        );
        summary(
            "restart 1 node -> unsealed",
            &samples.one_restart_to_unsealed,
        );
        summary(
            "restart 3 nodes -> all unsealed",
            &samples.all_restart_to_unsealed,
        );
    }
}

fn bao_version() -> String {
    std::process::Command::new(support::bao::bao_binary())
        .arg("version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_default()
}
