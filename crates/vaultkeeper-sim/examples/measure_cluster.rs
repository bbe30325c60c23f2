//! Measures the simulated cluster with three OpenBao pods: how long the API server takes
//! to start, how long until three pods run and have registered themselves through the
//! API (OpenBao's service registration), and the memory this takes (resident set of the
//! process holding the API server, controllers and kubelet, and of the pods' processes).
//!
//! ```text
//! cargo run --release -p vaultkeeper-sim --example measure_cluster
//! ```
//!
//! Needs root and the OpenBao binary (`scripts/install-tools.sh`, or `VAULTKEEPER_BAO`).

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::{Discovery, Scope};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vaultkeeper_sim::kubelet::KubeletConfig;
use vaultkeeper_sim::{SimCluster, SimConfig};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: ppid follows the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every process descended from `root`.
fn descendants(root: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let mut cur = pid;
        for _ in 0..64 {
            match parent(cur) {
                Some(p) if p == root => {
                    out.push(pid);
                    break;
                }
                Some(0) | Some(1) | None => break,
                Some(p) => cur = p,
            }
        }
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bao = std::env::var_os("VAULTKEEPER_BAO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/bao"));
    if !bao.exists() {
        return Err(format!(
            "OpenBao binary missing at {}: run scripts/install-tools.sh",
            bao.display()
        )
        .into());
    }
    let before = rss_kib(std::process::id());
    let mut cfg = SimConfig::for_slot(90);
    cfg.pods = Some(KubeletConfig {
        bao,
        vaultkeeper: None,
        backoff: None,
        extra_images: Vec::new(),
    });
    let t0 = Instant::now();
    let cluster = SimCluster::start(cfg).await?;
    let api_ready = t0.elapsed();
    let client = cluster.client()?;
    let t1 = Instant::now();
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.patch("vault", &PatchParams::apply("measure"), &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vault"}}))).await?;
    let discovery = Discovery::new(client.clone()).run().await?;
    for doc in include_str!("../tests/fixtures/openbao-ha-raft.yaml").split("\n---\n") {
        let obj: Value = serde_saphyr::from_str(doc)?;
        let av = obj["apiVersion"].as_str().unwrap_or_default();
        let (g, v) = av.rsplit_once('/').unwrap_or(("", av));
        let gvk = GroupVersionKind::gvk(g, v, obj["kind"].as_str().unwrap_or_default());
        let (ar, caps) = discovery.resolve_gvk(&gvk).ok_or("kind not served")?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(client.clone(), "vault", &ar),
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        api.patch(
            obj["metadata"]["name"].as_str().unwrap_or_default(),
            &PatchParams::apply("measure"),
            &Patch::Apply(&obj),
        )
        .await?;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "vault");
    let mut running = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let list = pods.list(&Default::default()).await?;
        let up = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        if running.is_none() && up == 3 {
            running = Some(t1.elapsed());
        }
        let registered = list
            .items
            .iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("openbao-sealed"))
            })
            .count();
        if registered == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let registered = t1.elapsed();
    // Let the probes and registrations settle before sampling memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let me = std::process::id();
    let own = rss_kib(me);
    let pod_procs = descendants(me);
    let pods_rss: u64 = pod_procs.iter().map(|p| rss_kib(*p)).sum();
    println!("api_server_start_ms            {}", api_ready.as_millis());
    println!(
        "three_pods_running_ms          {}",
        running
            .map(|d| d.as_millis().to_string())
            .unwrap_or_else(|| "timeout".into())
    );
    println!("three_pods_registered_ms       {}", registered.as_millis());
    println!("sim_process_rss_kib_before     {before}");
    println!("sim_process_rss_kib            {own}");
    println!("pod_processes                  {}", pod_procs.len());
    println!("pod_processes_rss_kib          {pods_rss}");
    println!("total_rss_kib                  {}", own + pods_rss);
    let requests = cluster.requests();
    println!("api_requests_served            {}", requests.len());
    cluster.shutdown().await;
    Ok(())
}
