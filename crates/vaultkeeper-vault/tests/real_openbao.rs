//! The lifecycle against real OpenBao raft clusters (the `bao` binary from
//! `scripts/install-tools.sh`), TLS on, on loopback addresses 127.10.<subnet>.x, driven
//! through both transports. Each test owns one subnet, so tests run in parallel.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::bao::{Cluster, Seal};
use support::{assert_no_secret_leaked, converge, logs};
use vaultkeeper_vault::client::{ExecNodeClient, NodeClient};
use vaultkeeper_vault::decide::{Action, ClusterIntent, InitMode, SealIntent, StopReason};
use vaultkeeper_vault::keys::{FileKeyStore, InitKeys, KeyStore};
use vaultkeeper_vault::lifecycle::{Done, Lifecycle, PassReport};
use vaultkeeper_vault::node::PodName;
use vaultkeeper_vault::secret::Token;
use vaultkeeper_api::Flavor;

const CONVERGE: Duration = Duration::from_secs(120);

fn shamir(pods: Vec<PodName>) -> ClusterIntent {
    ClusterIntent::new(pods, SealIntent::Shamir { shares: 5, threshold: 3 }, InitMode::Operator).unwrap_or_else(|e| panic!("{e}"))
}

fn count_actions(reports: &[PassReport], pick: impl Fn(&Action) -> bool) -> usize {
    reports.iter().flat_map(|r| &r.outcomes).filter(|o| pick(&o.action)).count()
}

async fn stored_keys(store: &FileKeyStore) -> InitKeys {
    store.load().await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("no keys stored"))
}

fn secrets_of(keys: &InitKeys) -> Vec<String> {
    let mut secrets: Vec<String> = keys.shares.iter().map(|s| s.expose().to_string()).collect();
    secrets.extend(keys.root_token.iter().map(|t| t.expose().to_string()));
    secrets
}

/// Every desired pod unsealed, exactly one active, raft peers = the desired pods, all voters.
async fn assert_healthy(client: &dyn NodeClient, pods: &[PodName], token: &Token) {
    let mut active = Vec::new();
    for pod in pods {
        let status = client.seal_status(pod).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(status.initialized && !status.sealed, "{pod} is not unsealed: {status:?}");
        let health = client.health(pod).await.unwrap_or_else(|e| panic!("{e}"));
        if health.is_active() {
            active.push(pod.clone());
        }
    }
    assert_eq!(active.len(), 1, "exactly one active pod, got {active:?}");
    let raft = client.raft_configuration(&active[0], token).await.unwrap_or_else(|e| panic!("{e}"));
    let mut peers: Vec<&str> = raft.servers.iter().map(|s| s.node_id.as_str()).collect();
    peers.sort_unstable();
    let mut expected: Vec<&str> = pods.iter().map(PodName::as_str).collect();
    expected.sort_unstable();
    assert_eq!(peers, expected, "raft peers");
    assert!(raft.servers.iter().all(|s| s.voter), "all voters: {raft:?}");
    // Autopilot refreshes its view on its own schedule; give it a few seconds to agree.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let autopilot = client.autopilot_state(&active[0], token).await.unwrap_or_else(|e| panic!("{e}"));
        if autopilot.healthy && autopilot.voters.len() == pods.len() {
            break;
        }
        assert!(Instant::now() < deadline, "autopilot never agreed: {autopilot:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Fresh cluster → one init, keys persisted first, all unsealed; then one node and then
/// all nodes are killed and restarted and come back unsealed. Returns the secrets seen.
async fn fresh_then_restarts<C: NodeClient>(cluster: &mut Cluster, client: C, label: &str) -> (Vec<String>, Lifecycle<C, FileKeyStore>) {
    let keys_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = FileKeyStore::new(keys_dir.path().join("keys.json"));
    let pods = cluster.pods(3);
    let mut lifecycle = Lifecycle::new(client, store.clone(), shamir(pods.clone()));

    let started = Instant::now();
    let reports = converge(&mut lifecycle, &[], CONVERGE).await;
    eprintln!("[{label}] fresh cluster converged in {:?} over {} passes", started.elapsed(), reports.len());
    assert_eq!(count_actions(&reports, |a| matches!(a, Action::Init { .. })), 1, "exactly one init");
    // Keys first: the pass that initialized did nothing before the init and ended with
    // the keys in the store.
    let init_pass = reports
        .iter()
        .find(|r| r.outcomes.iter().any(|o| matches!(o.action, Action::Init { .. })))
        .unwrap_or_else(|| panic!("no init pass"));
    assert!(matches!(init_pass.outcomes[0].action, Action::Init { .. }));
    assert!(matches!(init_pass.outcomes[0].result, Ok(Done::Initialized)), "{:?}", init_pass.outcomes[0]);
    let keys = stored_keys(&store).await;
    assert_eq!((keys.shares.len(), keys.threshold), (5, 3));
    let root = keys.root_token.clone().unwrap_or_else(|| panic!("root token kept"));
    assert_healthy(lifecycle.client(), &pods, &root).await;

    // One node crashes and comes back.
    cluster.node(1).server.kill();
    cluster.node(1).server.start();
    cluster.node(1).server.wait_listening();
    let listening = Instant::now();
    let reports = converge(&mut lifecycle, &[], CONVERGE).await;
    eprintln!("[{label}] restarted vault-1: listening -> unsealed in {:?}", listening.elapsed());
    assert_eq!(count_actions(&reports, |a| matches!(a, Action::Init { .. })), 0);
    assert!(count_actions(&reports, |a| matches!(a, Action::Unseal { pod, .. } if pod.as_str() == "vault-1")) >= 1);
    assert_healthy(lifecycle.client(), &pods, &root).await;

    // Every node crashes and comes back.
    cluster.kill_all();
    cluster.start_all();
    let listening = Instant::now();
    let reports = converge(&mut lifecycle, &[], CONVERGE).await;
    eprintln!("[{label}] restarted all nodes: listening -> all unsealed in {:?}", listening.elapsed());
    assert_eq!(count_actions(&reports, |a| matches!(a, Action::Init { .. })), 0);
    assert_eq!(count_actions(&reports, |a| matches!(a, Action::Unseal { .. })), 3);
    assert_healthy(lifecycle.client(), &pods, &root).await;
    (secrets_of(&keys), lifecycle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_cluster_lifecycle_over_http() {
    logs::init();
    let mut cluster = Cluster::new(1, 3, Seal::Shamir);
    cluster.start_all();
    let client = cluster.http_client();
    let (secrets, _lifecycle) = fresh_then_restarts(&mut cluster, client, "http").await;
    assert!(logs::line_count() > 0, "the scan must see log lines");
    assert_no_secret_leaked(&secrets, &[], &cluster.server_logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_cluster_lifecycle_over_exec() {
    logs::init();
    let mut cluster = Cluster::new(2, 3, Seal::Shamir);
    cluster.start_all();
    let executor = cluster.executor();
    let client = ExecNodeClient::new(executor.clone(), Flavor::OpenBao);
    let (secrets, _lifecycle) = fresh_then_restarts(&mut cluster, client, "exec").await;
    let argvs: Vec<Vec<String>> = executor.recorded().into_iter().map(|c| c.argv).collect();
    assert!(argvs.len() > 20, "the exec transport did the work: {} commands", argvs.len());
    assert_eq!(argvs.iter().filter(|a| a.iter().any(|x| x == "init")).count(), 1, "one operator init command");
    // Shares went over stdin: every unseal command is the key=- form.
    assert!(argvs.iter().filter(|a| a.iter().any(|x| x == "sys/unseal")).all(|a| a.last().is_some_and(|x| x == "key=-" || x == "reset=true")));
    assert_no_secret_leaked(&secrets, &argvs, &cluster.server_logs());
}

#[allow(dead_code)]
fn unused() -> (StopReason, serde_json::Value) {
    (StopReason::KeysMissing, json!({}))
}
