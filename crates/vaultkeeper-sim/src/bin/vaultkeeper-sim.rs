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
    /// Run pods with this OpenBao binary (needs root); without it pods stay Pending.
    #[arg(long, env = "VAULTKEEPER_BAO")]
    bao: Option<PathBuf>,
    /// The project's image repository and the `vaultkeeper` binary its pods run.
    #[arg(long, requires = "vaultkeeper_binary")]
    vaultkeeper_image: Option<String>,
    /// The built `vaultkeeper` binary (with --vaultkeeper-image).
    #[arg(long)]
    vaultkeeper_binary: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut config = SimConfig {
        api_address: args.api_address,
        api_port: args.api_port,
        state_dir: args.state_dir,
        ..SimConfig::default()
    };
    if let Some(bao) = args.bao {
        config.pods = Some(vaultkeeper_sim::kubelet::KubeletConfig {
            bao,
            vaultkeeper: args.vaultkeeper_image.zip(args.vaultkeeper_binary),
            backoff: None,
            extra_images: Vec::new(),
        });
    }
    let cluster = match SimCluster::start(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultkeeper-sim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{}", cluster.kubeconfig_path().display());
    eprintln!("API server at {}; stop with Ctrl-C", cluster.url());
    // Stop on Ctrl-C or SIGTERM, so pods are stopped cleanly either way.
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    cluster.shutdown().await;
    std::process::ExitCode::SUCCESS
}
