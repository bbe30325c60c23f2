//! Starts a simulated cluster and prints the path of its kubeconfig, until
//! `vaultkeeper sandbox` takes this over:
//!
//! ```text
//! vaultkeeper-sim --state-dir /tmp/sim &
//! KUBECONFIG=/tmp/sim/kubeconfig kubectl get namespaces
//! ```

use clap::Parser;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use vaultkeeper_sim::{SimCluster, SimConfig};

/// A simulated Kubernetes cluster on loopback addresses.
#[derive(Debug, Parser)]
#[command(name = "vaultkeeper-sim", version)]
struct Args {
    /// Address of the API server (a loopback address).
    #[arg(long, default_value = "127.20.0.1")]
    api_address: Ipv4Addr,
    /// Port of the API server.
    #[arg(long, default_value_t = 6443)]
    api_port: u16,
    /// Directory for the kubeconfig and pod state (kept after exit).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut config = SimConfig::default();
    config.api_address = args.api_address;
    config.api_port = args.api_port;
    config.state_dir = args.state_dir;
    let cluster = match SimCluster::start(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultkeeper-sim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{}", cluster.kubeconfig_path().display());
    eprintln!("API server at {}; stop with Ctrl-C", cluster.url());
    let _ = tokio::signal::ctrl_c().await;
    cluster.shutdown().await;
    std::process::ExitCode::SUCCESS
}
