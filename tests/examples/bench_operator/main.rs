//! Measures the operator on the simulated cluster with real OpenBao pods and prints a
//! table (run by `scripts/bench-operator.sh`; numbers, not a test):
//!
//! 1. apply → Ready of a 3-node OpenBao cluster, next to the part of that time OpenBao
//!    itself needs in the same run: its processes starting until their API answers, and
//!    the first leader election after the first unseal (polled from every pod's
//!    `sys/health` every 100 ms);
//! 2. pod restart → unsealed (SIGKILL one standby's container), split the same way;
//! 3. API requests per pass with nothing to do (the API server's request log, operator's
//!    user only), reads and writes;
//! 4. scale 3 → 5 (`spec.replicas` patched) → Ready with 5 ready pods, all voters;
//! 5. the RSS of the real `vaultkeeper run` process with 100 VaultClusters, in a simulated
//!    cluster without a kubelet (the pods exist as objects only), from `/proc/<pid>/status`;
//! 6. the floor ([`floor`]): the same `bao` binary formed into a raft cluster by hand over
//!    HTTP, without Kubernetes, in the same run; the operator's times are divided by it.

mod floor;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use secrecy::ExposeSecret;
use vaultkeeper_api::VaultCluster;
use vaultkeeper_e2e::install;
use vaultkeeper_e2e::operator::{
    DnsRefresher, Operator, apply_cluster, cluster_with_pods, example, patch_spec, ready, tool,
};
use vaultkeeper_sim::{SimCluster, SimConfig};

/// What one `sys/health` poll of one pod said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Down,
    Uninitialized,
    Sealed,
    Standby,
    Active,
}

async fn health(ip: &str) -> Health {
    let url =
        format!("https://{ip}:8200/v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200");
    let Ok(out) = tokio::process::Command::new("curl")
        .args(["-sk", "--max-time", "1", &url])
        .output()
        .await
    else {
        return Health::Down;
    };
    let Ok(h) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return Health::Down;
    };
    match (&h["initialized"], &h["sealed"], &h["standby"]) {
        (serde_json::Value::Bool(false), _, _) => Health::Uninitialized,
        (_, serde_json::Value::Bool(true), _) => Health::Sealed,
        (_, _, serde_json::Value::Bool(true)) => Health::Standby,
        _ => Health::Active,
    }
}

async fn pod_ips(sim: &SimCluster, namespace: &str) -> BTreeMap<String, String> {
    let pods: Api<Pod> = Api::namespaced(sim.client().expect("admin"), namespace);
    pods.list(&ListParams::default().labels("component=server"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.clone()?;
            Some((p.metadata.name?, ip))
        })
        .collect()
}

/// First time (since `start`) each milestone was seen.
#[derive(Default, Debug)]
struct Timeline {
    first_answer: Option<Duration>,
    all_answer: Option<Duration>,
    first_unsealed: Option<Duration>,
    first_active: Option<Duration>,
    ready: Option<Duration>,
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

async fn vc(sim: &SimCluster, namespace: &str, name: &str) -> Option<VaultCluster> {
    let api: Api<VaultCluster> = Api::namespaced(sim.client().ok()?, namespace);
    api.get(name).await.ok()
}

async fn apply_to_ready(sim: &SimCluster) -> Timeline {
    let start = Instant::now();
    apply_cluster(sim, &example("openbao"), "openbao").await;
    let mut t = Timeline::default();
    let deadline = start + Duration::from_secs(300);
    while t.ready.is_none() && Instant::now() < deadline {
        let ips = pod_ips(sim, "openbao").await;
        let mut states = Vec::new();
        for ip in ips.values() {
            states.push(health(ip).await);
        }
        let now = start.elapsed();
        let answering = states.iter().filter(|h| **h != Health::Down).count();
        if answering > 0 && t.first_answer.is_none() {
            t.first_answer = Some(now);
        }
        if answering == 3 && t.all_answer.is_none() {
            t.all_answer = Some(now);
        }
        if states
            .iter()
            .any(|h| matches!(h, Health::Standby | Health::Active))
            && t.first_unsealed.is_none()
        {
            t.first_unsealed = Some(now);
        }
        if states.contains(&Health::Active) && t.first_active.is_none() {
            t.first_active = Some(now);
        }
        if vc(sim, "openbao", "openbao")
            .await
            .is_some_and(|v| ready(&v))
        {
            t.ready = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t
}

/// Kills one standby and times its way back: API answering (OpenBao started), unsealed.
async fn restart_to_unsealed(sim: &SimCluster) -> (Duration, Duration) {
    let ips = pod_ips(sim, "openbao").await;
    let mut standby = None;
    for (pod, ip) in &ips {
        if health(ip).await == Health::Standby {
            standby = Some((pod.clone(), ip.clone()));
            break;
        }
    }
    let (pod, ip) = standby.expect("a standby");
    sim.kill_container("openbao", &pod, "openbao")
        .expect("kill");
    let start = Instant::now();
    // Until the old process is gone.
    while matches!(health(&ip).await, Health::Standby) && start.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut answered = None;
    loop {
        let h = health(&ip).await;
        if h != Health::Down && answered.is_none() {
            answered = Some(start.elapsed());
        }
        if matches!(h, Health::Standby | Health::Active) {
            return (answered.unwrap_or_default(), start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{pod} never unsealed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Patches `spec.replicas` from 3 to 5 and times until the status is Ready with 5 ready
/// pods, all of them raft voters.
async fn scale_three_to_five(sim: &SimCluster) -> Option<Duration> {
    // Cluster DNS for the pods the scale-up adds (see DnsRefresher).
    let dns = DnsRefresher::start(sim, "openbao");
    let start = Instant::now();
    patch_spec(
        sim,
        "openbao",
        "openbao",
        serde_json::json!({"replicas": 5}),
    )
    .await;
    let mut done = None;
    while start.elapsed() < Duration::from_secs(300) {
        let five = vc(sim, "openbao", "openbao").await.is_some_and(|v| {
            ready(&v)
                && v.status.as_ref().is_some_and(|s| {
                    s.ready_replicas == 5
                        && s.raft
                            .as_ref()
                            .is_some_and(|r| r.voters.len() == 5 && r.non_voters.is_empty())
                })
        });
        if five {
            done = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dns.stop().await;
    done
}

/// Requests the operator makes per pass while nothing changes.
async fn requests_per_noop_pass(sim: &SimCluster, operator: &Operator) -> (f64, f64, u64) {
    let passes = || -> u64 {
        let labels = vaultkeeper::metrics::ClusterLabels {
            namespace: "openbao".into(),
            name: "openbao".into(),
        };
        operator.metrics.reconciles.get_or_create(&labels).get()
    };
    tokio::time::sleep(Duration::from_secs(8)).await;
    sim.clear_requests();
    let before = passes();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after = passes();
    let requests: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.user.contains("vaultkeeper"))
        .collect();
    let n = (after - before).max(1);
    let writes = requests
        .iter()
        .filter(|r| r.is_write() && r.subresource != "exec")
        .count();
    let reads = requests.len() - writes;
    (reads as f64 / n as f64, writes as f64 / n as f64, n)
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The real operator binary against 100 VaultClusters whose pods never run.
async fn rss_with_clusters(binary: &str, clusters: usize) -> (u64, u64, u64, Duration) {
    let mut config = SimConfig::for_slot(159);
    config.pods = None;
    let sim = SimCluster::start(config).await.expect("sim starts");
    install::install_operator_rbac(&sim).await.expect("RBAC");
    let token = sim
        .service_account_token(
            install::OPERATOR_NAMESPACE,
            install::OPERATOR_SERVICE_ACCOUNT,
        )
        .expect("token");
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token.expose_secret()).expect("token file");
    let mut child = tokio::process::Command::new(binary)
        .args([
            "run",
            "--no-leader-election",
            "--resync-seconds",
            "60",
            "--listen-address",
            "127.20.159.2:8080",
        ])
        .env("KUBECONFIG", sim.kubeconfig_path())
        .env("VAULTKEEPER_SERVICE_ACCOUNT_TOKEN_FILE", &token_file)
        .env("VAULTKEEPER_LOG_LEVEL", "warn")
        .env("VAULTKEEPER_IMAGE", "ghcr.io/vaultkeeper/vaultkeeper:bench")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("vaultkeeper run starts");
    let pid = child.id().expect("pid");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (idle, _) = rss_kib(pid);
    let manifest = example("openbao");
    let started = Instant::now();
    for i in 0..clusters {
        let yaml = manifest.replace("name: openbao", &format!("name: bench-{i}"));
        apply_cluster(&sim, &yaml, &format!("bench-{}", i % 10)).await;
    }
    // Every cluster has been through a pass (a status for its generation).
    let all: Api<VaultCluster> = Api::all(sim.client().expect("admin"));
    loop {
        let seen = all
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|v| {
                        v.status.as_ref().and_then(|s| s.observed_generation)
                            == v.metadata.generation
                    })
                    .count()
            })
            .unwrap_or(0);
        if seen == clusters || started.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let first_pass = started.elapsed();
    // Let the requeues run for a while, then sample.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (rss, hwm) = rss_kib(pid);
    let _ = child.start_kill();
    let _ = child.wait().await;
    sim.shutdown().await;
    (idle, rss, hwm, first_pass)
}

fn ratio(operator: Option<Duration>, floor: Duration) -> String {
    operator.map_or("-".into(), |o| {
        format!("{:.2}×", o.as_secs_f64() / floor.as_secs_f64())
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let binary = std::env::var("VAULTKEEPER_BIN").unwrap_or_else(|_| {
        vaultkeeper_e2e::operator::vaultkeeper_binary()
            .to_string_lossy()
            .into_owned()
    });
    // `BENCH_ONLY=rss`: the memory measurement alone, for working on memory.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("rss") {
        let (idle, rss, hwm, first_pass) = rss_with_clusters(&binary, 100).await;
        println!(
            "idle {} MiB, 100 clusters {} MiB, peak {} MiB, first pass {:.1} s",
            idle / 1024,
            rss / 1024,
            hwm / 1024,
            first_pass.as_secs_f64()
        );
        return;
    }

    // `BENCH_ONLY=restart`: apply, then five pod restarts, for working on the unseal path.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("restart") {
        // The operator's own log on stderr, with how long each pass and action took.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "warn,vaultkeeper=debug,vaultkeeper_vault=debug",
            ))
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init();
        let sim = cluster_with_pods(158).await;
        let operator = Operator::install_and_start(&sim).await;
        let t = apply_to_ready(&sim).await;
        println!("apply → Ready {}", secs(t.ready));
        for _ in 0..5 {
            let (answered, unsealed) = restart_to_unsealed(&sim).await;
            println!(
                "restart: answers {:.2} s, unsealed {:.2} s, unsealed minus start {:.2} s",
                answered.as_secs_f64(),
                unsealed.as_secs_f64(),
                unsealed.saturating_sub(answered).as_secs_f64()
            );
            while !vc(&sim, "openbao", "openbao")
                .await
                .is_some_and(|v| ready(&v))
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        drop(operator);
        sim.shutdown().await;
        return;
    }

    // The floor first, on a machine the simulated cluster does not load yet.
    let floor = floor::measure(&tool("bao", "VAULTKEEPER_BAO")).await;

    let sim = cluster_with_pods(158).await;
    let operator = Operator::install_and_start(&sim).await;
    let t = apply_to_ready(&sim).await;
    let (answered, unsealed) = restart_to_unsealed(&sim).await;
    // Back to Ready before counting quiet passes.
    while !vc(&sim, "openbao", "openbao")
        .await
        .is_some_and(|v| ready(&v))
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (reads, writes, passes) = requests_per_noop_pass(&sim, &operator).await;
    let scaled = scale_three_to_five(&sim).await;
    drop(operator);
    sim.shutdown().await;

    let (idle, rss, hwm, first_pass) = rss_with_clusters(&binary, 100).await;

    let election = match (t.first_unsealed, t.first_active) {
        (Some(u), Some(a)) => Some(a.saturating_sub(u)),
        _ => None,
    };
    let openbao_own = match (t.all_answer, election) {
        (Some(s), Some(e)) => Some(s + e),
        _ => None,
    };
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| apply → Ready (3 pods, Exec transport) | {} |",
        secs(t.ready)
    );
    println!(
        "| floor: 3 `bao server` started → 3 healthy voters (by hand over HTTP) | {} |",
        secs(Some(floor.three_voters))
    );
    println!(
        "| **ratio** apply → Ready / floor | {} |",
        ratio(t.ready, floor.three_voters)
    );
    println!(
        "| scale 3 → 5 (spec.replicas) → Ready, 5 ready, 5 voters | {} |",
        secs(scaled)
    );
    println!(
        "| floor: 2 more `bao server` started → 5 healthy voters | {} |",
        secs(Some(floor.add_two))
    );
    println!(
        "| **ratio** scale 3 → 5 / floor | {} |",
        ratio(scaled, floor.add_two)
    );
    println!(
        "| apply → first pod's API answers | {} |",
        secs(t.first_answer)
    );
    println!(
        "| apply → all 3 pods' APIs answer (OpenBao started) | {} |",
        secs(t.all_answer)
    );
    println!(
        "| apply → first node unsealed | {} |",
        secs(t.first_unsealed)
    );
    println!("| apply → first active node | {} |", secs(t.first_active));
    println!(
        "| OpenBao's election: first unsealed → first active | {} |",
        secs(election)
    );
    println!(
        "| OpenBao's own start + elect (all APIs answer + election) | {} |",
        secs(openbao_own)
    );
    println!(
        "| pod restart (SIGKILL) → its API answers (OpenBao start) | {:.2} s |",
        answered.as_secs_f64()
    );
    println!(
        "| pod restart (SIGKILL) → unsealed | {:.2} s |",
        unsealed.as_secs_f64()
    );
    println!(
        "| **restart → unsealed minus the restarted process's start** (target ≤ 1 s) | {:.2} s |",
        unsealed.saturating_sub(answered).as_secs_f64()
    );
    println!(
        "| floor: `bao server` start → API answers (median of {}) | {:.2} s |",
        floor.listen.len(),
        floor.median_listen().as_secs_f64()
    );
    println!(
        "| floor: SIGKILL → restarted process answers → unsealed by hand | {:.2} s → {:.2} s |",
        floor.restart_answers.as_secs_f64(),
        floor.restart_unsealed.as_secs_f64()
    );
    println!("| no-op pass: reads per pass (incl. exec observe) | {reads:.1} |");
    println!("| no-op pass: writes per pass (excl. exec) | {writes:.1} |");
    println!("| no-op passes counted | {passes} |");
    println!(
        "| operator RSS, started, no VaultCluster | {} MiB |",
        idle / 1024
    );
    println!(
        "| operator RSS, 100 VaultClusters, after every first pass + 30 s | {} MiB |",
        rss / 1024
    );
    println!(
        "| operator peak RSS (VmHWM) during the 100 | {} MiB |",
        hwm / 1024
    );
    println!(
        "| 100 VaultClusters: apply → every one has a status | {:.1} s |",
        first_pass.as_secs_f64()
    );
}
