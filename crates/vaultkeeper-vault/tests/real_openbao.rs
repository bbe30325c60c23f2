//! The lifecycle against real OpenBao raft clusters (the `bao` binary from
//! `scripts/install-tools.sh`), TLS on, on loopback addresses 127.10.<subnet>.x, driven
//! through both transports. Each test owns one subnet, so tests run in parallel.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use support::bao::{Cluster, Seal};
use support::raw::Raw;
use support::tokenreview::{API_AUDIENCE, TokenReviewServer};
use support::transit::TransitServer;
use support::{assert_no_secret_leaked, converge, logs};
use vaultkeeper_api::login::VAULT_LOGIN_AUDIENCE;
use vaultkeeper_vault::bootstrap::{self, Authority, BootstrapSpec, Change, Identity, Item};
use vaultkeeper_vault::client::{ExecNodeClient, KubernetesAuthConfig, NodeClient};
use vaultkeeper_vault::decide::{Action, ClusterIntent, InitMode, SealIntent, StopReason};
use vaultkeeper_vault::keys::{FileKeyStore, InitKeys, KeyKind, KeyStore, RawInit};
use vaultkeeper_vault::lifecycle::{Done, JwtSource, Lifecycle, OperatorLogin, PassReport};
use vaultkeeper_vault::node::{NodeEndpoint, PodName};
use vaultkeeper_vault::secret::{ExposeSecret, KeyShare, SecretString, Token};
use vaultkeeper_vault::{Error, Result, Step};

const CONVERGE: Duration = Duration::from_secs(120);

fn shamir(pods: Vec<PodName>) -> ClusterIntent {
    ClusterIntent::new(
        pods,
        SealIntent::Shamir {
            shares: 5,
            threshold: 3,
        },
        InitMode::Operator,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn count_actions(reports: &[PassReport], pick: impl Fn(&Action) -> bool) -> usize {
    reports
        .iter()
        .flat_map(|r| &r.outcomes)
        .filter(|o| pick(&o.action))
        .count()
}

async fn stored_keys(store: &FileKeyStore) -> InitKeys {
    store
        .load()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no keys stored"))
}

fn secrets_of(keys: &InitKeys) -> Vec<String> {
    let mut secrets: Vec<String> = keys
        .shares
        .iter()
        .map(|s| s.expose_secret().to_string())
        .collect();
    secrets.extend(
        keys.root_token
            .iter()
            .map(|t| t.expose_secret().to_string()),
    );
    secrets
}

/// Every desired pod unsealed, exactly one active, raft peers = the desired pods, all voters.
async fn assert_healthy(client: &dyn NodeClient, pods: &[PodName], token: &Token) {
    let mut active = Vec::new();
    for pod in pods {
        let status = client
            .seal_status(pod)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            status.initialized && !status.sealed,
            "{pod} is not unsealed: {status:?}"
        );
        let health = client.health(pod).await.unwrap_or_else(|e| panic!("{e}"));
        if health.is_active() {
            active.push(pod.clone());
        }
    }
    assert_eq!(active.len(), 1, "exactly one active pod, got {active:?}");
    let raft = client
        .raft_configuration(&active[0], token)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut peers: Vec<&str> = raft.servers.iter().map(|s| s.node_id.as_str()).collect();
    peers.sort_unstable();
    let mut expected: Vec<&str> = pods.iter().map(PodName::as_str).collect();
    expected.sort_unstable();
    assert_eq!(peers, expected, "raft peers");
    assert!(raft.servers.iter().all(|s| s.voter), "all voters: {raft:?}");
    // Autopilot refreshes its view on its own schedule; give it a few seconds to agree.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let autopilot = client
            .autopilot_state(&active[0], token)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if autopilot.healthy && autopilot.voters.len() == pods.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "autopilot never agreed: {autopilot:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Fresh cluster → one init, keys persisted first, all unsealed; then one node and then
/// all nodes are killed and restarted and come back unsealed. Returns the secrets seen.
async fn fresh_then_restarts<C: NodeClient>(
    cluster: &mut Cluster,
    client: C,
    label: &str,
) -> (Vec<String>, Lifecycle<C, FileKeyStore>) {
    let keys_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = FileKeyStore::new(keys_dir.path().join("keys.json"));
    let pods = cluster.pods(3);
    let mut lifecycle = Lifecycle::new(client, store.clone(), shamir(pods.clone()));

    let started = Instant::now();
    let reports = converge(&mut lifecycle, &[], CONVERGE).await;
    eprintln!(
        "[{label}] fresh cluster converged in {:?} over {} passes",
        started.elapsed(),
        reports.len()
    );
    assert_eq!(
        count_actions(&reports, |a| matches!(a, Action::Init { .. })),
        1,
        "exactly one init"
    );
    // Keys first: the pass that initialized did nothing before the init and ended with
    // the keys in the store.
    let init_pass = reports
        .iter()
        .find(|r| {
            r.outcomes
                .iter()
                .any(|o| matches!(o.action, Action::Init { .. }))
        })
        .unwrap_or_else(|| panic!("no init pass"));
    assert!(matches!(init_pass.outcomes[0].action, Action::Init { .. }));
    assert!(
        matches!(init_pass.outcomes[0].result, Ok(Done::Initialized)),
        "{:?}",
        init_pass.outcomes[0]
    );
    let keys = stored_keys(&store).await;
    assert_eq!((keys.shares.len(), keys.threshold), (5, 3));
    let root = keys
        .root_token
        .clone()
        .unwrap_or_else(|| panic!("root token kept"));
    assert_healthy(lifecycle.client(), &pods, &root).await;

    // One node crashes and comes back.
    cluster.node(1).server.kill();
    cluster.node(1).server.start();
    cluster.node(1).server.wait_listening();
    let listening = Instant::now();
    let reports = converge(&mut lifecycle, &[], CONVERGE).await;
    eprintln!(
        "[{label}] restarted vault-1: listening -> unsealed in {:?}",
        listening.elapsed()
    );
    assert_eq!(
        count_actions(&reports, |a| matches!(a, Action::Init { .. })),
        0
    );
    assert!(
        count_actions(
            &reports,
            |a| matches!(a, Action::Unseal { pod, .. } if pod.as_str() == "vault-1")
        ) >= 1
    );
    assert_healthy(lifecycle.client(), &pods, &root).await;

    // Every node crashes and comes back.
    cluster.kill_all();
    cluster.start_all();
    let listening = Instant::now();
    let reports = converge(&mut lifecycle, &[], CONVERGE).await;
    eprintln!(
        "[{label}] restarted all nodes: listening -> all unsealed in {:?}",
        listening.elapsed()
    );
    assert_eq!(
        count_actions(&reports, |a| matches!(a, Action::Init { .. })),
        0
    );
    assert_eq!(
        count_actions(&reports, |a| matches!(a, Action::Unseal { .. })),
        3
    );
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
    // The container may carry a token of its own (a transit seal's), which the OpenBao CLI
    // prefers over VAULT_TOKEN: our commands must still use the token they were given.
    executor
        .inner()
        .set_container_env("BAO_TOKEN", "s.the-transit-seal-token-of-the-container");
    let client = ExecNodeClient::new(executor.clone(), Cluster::cli());
    let (secrets, _lifecycle) = fresh_then_restarts(&mut cluster, client, "exec").await;
    let argvs: Vec<Vec<String>> = executor.recorded().into_iter().map(|c| c.argv).collect();
    assert!(
        argvs.len() > 20,
        "the exec transport did the work: {} commands",
        argvs.len()
    );
    assert_eq!(
        argvs
            .iter()
            .filter(|a| a.iter().any(|x| x == "init"))
            .count(),
        1,
        "one operator init command"
    );
    // Shares (and a reset) went over stdin: every unseal command ends in a stdin marker.
    assert!(
        argvs
            .iter()
            .filter(|a| a.iter().any(|x| x == "sys/unseal"))
            .all(|a| a.last().is_some_and(|x| x == "key=-" || x == "-"))
    );
    assert_no_secret_leaked(&secrets, &argvs, &cluster.server_logs());
}

/// Debug prints of reports, for the leak scan (errors inside them included).
fn report_texts(reports: &[PassReport]) -> Vec<String> {
    reports.iter().map(|r| format!("{r:?}")).collect()
}

/// A key store whose writes fail while `failing` is set: the operator "crashing" (or the
/// API server refusing) between init and the key write.
#[derive(Clone)]
struct FlakyStore {
    inner: FileKeyStore,
    failing: Arc<AtomicBool>,
}

#[async_trait]
impl KeyStore for FlakyStore {
    async fn load(&self) -> Result<Option<InitKeys>> {
        self.inner.load().await
    }

    async fn store(&self, keys: &InitKeys) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::KeyStore {
                step: Step::KeyStoreStore,
                reason: "simulated: the API server refused the Secret write".into(),
            });
        }
        self.inner.store(keys).await
    }

    async fn store_raw(&self, raw: &RawInit) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::KeyStore {
                step: Step::KeyStoreStore,
                reason: "simulated: the API server refused the Secret write".into(),
            });
        }
        self.inner.store_raw(raw).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_key_store_after_init_never_reinitializes() {
    logs::init();
    let mut cluster = Cluster::new(3, 3, Seal::Shamir);
    cluster.start_all();
    let executor = cluster.executor();
    let keys_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let failing = Arc::new(AtomicBool::new(true));
    let store = FlakyStore {
        inner: FileKeyStore::new(keys_dir.path().join("keys.json")),
        failing: failing.clone(),
    };
    let intent = shamir(cluster.pods(3));
    let mut lifecycle = Lifecycle::new(
        ExecNodeClient::new(executor.clone(), Cluster::cli()),
        store.clone(),
        intent.clone(),
    );
    let mut reports = Vec::new();

    // Pass 1: init answers, the key write fails; the pass ends there.
    let first = lifecycle
        .run_pass(&[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.outcomes.len(), 1, "{first:?}");
    assert!(matches!(first.outcomes[0].action, Action::Init { .. }));
    let error = first.outcomes[0]
        .result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(error.contains("store keys"), "{error}");
    assert!(lifecycle.has_pending_keys());
    reports.push(first);

    // Pass 2: the only action is the retried write, which fails again. No init.
    let second = lifecycle
        .run_pass(&[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.actions, vec![Action::PersistKeys]);
    assert!(second.outcomes[0].result.is_err());
    reports.push(second);

    // The operator process dies here and a new one starts: the keys are gone with it.
    // The new one sees an initialized cluster without keys and stops, pass after pass.
    let mut restarted = Lifecycle::new(
        ExecNodeClient::new(executor.clone(), Cluster::cli()),
        store.clone(),
        intent,
    );
    for _ in 0..3 {
        let report = restarted
            .run_pass(&[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            report.stop_reason(),
            Some(&StopReason::KeysMissing),
            "{report:?}"
        );
        assert_eq!(report.actions.len(), 1);
        reports.push(report);
    }

    // The first process is still alive in this test: once the store accepts writes it
    // persists the keys it held and the cluster converges, still with one init ever.
    failing.store(false, Ordering::SeqCst);
    reports.extend(converge(&mut lifecycle, &[], CONVERGE).await);
    let keys = stored_keys(&store.inner).await;
    let root = keys
        .root_token
        .clone()
        .unwrap_or_else(|| panic!("root kept"));
    assert_healthy(lifecycle.client(), &cluster.pods(3), &root).await;
    let argvs: Vec<Vec<String>> = executor.recorded().into_iter().map(|c| c.argv).collect();
    assert_eq!(
        argvs
            .iter()
            .filter(|a| a.iter().any(|x| x == "init"))
            .count(),
        1,
        "one operator init command ever"
    );
    assert_eq!(
        count_actions(&reports, |a| matches!(a, Action::Init { .. })),
        1
    );
    let mut extra = report_texts(&reports);
    extra.extend(cluster.server_logs());
    assert_no_secret_leaked(&secrets_of(&keys), &argvs, &extra);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_three_to_five_to_three_joins_and_removes_peers() {
    logs::init();
    let mut cluster = Cluster::new(4, 3, Seal::Shamir);
    cluster.start_all();
    let keys_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = FileKeyStore::new(keys_dir.path().join("keys.json"));
    let mut lifecycle = Lifecycle::new(
        cluster.http_client(),
        store.clone(),
        shamir(cluster.pods(3)),
    );
    let mut reports = converge(&mut lifecycle, &[], CONVERGE).await;
    let keys = stored_keys(&store).await;
    let root = keys
        .root_token
        .clone()
        .unwrap_or_else(|| panic!("root kept"));

    // 3 → 5: the new pods join through retry_join and are unsealed; nobody inits.
    for _ in 0..2 {
        let node = cluster.add_node(5);
        node.server.start();
        node.server.wait_listening();
    }
    cluster.register_http(lifecycle.client());
    lifecycle.set_intent(shamir(cluster.pods(5)));
    let up = converge(&mut lifecycle, &[], CONVERGE).await;
    assert_eq!(count_actions(&up, |a| matches!(a, Action::Init { .. })), 0);
    assert!(
        count_actions(
            &up,
            |a| matches!(a, Action::Unseal { pod, .. } if pod.as_str() == "vault-3")
        ) >= 1
    );
    assert_healthy(lifecycle.client(), &cluster.pods(5), &root).await;
    reports.extend(up);

    // 5 → 3: the StatefulSet removes the two highest pods; their peers are removed, one
    // per pass, and three voters remain.
    cluster.node(4).server.kill();
    cluster.node(3).server.kill();
    lifecycle.set_intent(shamir(cluster.pods(3)));
    let down = converge(&mut lifecycle, &[], CONVERGE).await;
    let removed: Vec<String> = down
        .iter()
        .flat_map(|r| &r.outcomes)
        .filter_map(|o| match (&o.action, &o.result) {
            (Action::RemovePeer { node_id, .. }, Ok(Done::PeerRemoved)) => Some(node_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(removed, vec!["vault-3".to_string(), "vault-4".to_string()]);
    assert!(down.iter().all(|r| {
        r.actions
            .iter()
            .filter(|a| matches!(a, Action::RemovePeer { .. }))
            .count()
            <= 1
    }));
    assert_healthy(lifecycle.client(), &cluster.pods(3), &root).await;
    let autopilot = lifecycle
        .client()
        .autopilot_state(&cluster.pods(1)[0], &root)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        autopilot.failure_tolerance, 1,
        "three voters tolerate one failure: {autopilot:?}"
    );
    reports.extend(down);
    let mut extra = report_texts(&reports);
    extra.extend(cluster.server_logs());
    assert_no_secret_leaked(&secrets_of(&keys), &[], &extra);
}

fn bootstrap_spec(kubernetes_host: &str, ca_pem: &str) -> BootstrapSpec {
    let identity = |n: &str| Identity {
        service_account: format!("vault-{n}"),
        role: format!("vaultkeeper-{n}"),
        policy: format!("vaultkeeper-{n}"),
    };
    BootstrapSpec {
        namespace: "secrets".into(),
        kubernetes_mount: "kubernetes".into(),
        kubernetes: KubernetesAuthConfig {
            kubernetes_host: kubernetes_host.into(),
            kubernetes_ca_cert: Some(ca_pem.into()),
            issuer: None,
            disable_local_ca_jwt: true,
        },
        operator: Identity {
            service_account: "vaultkeeper".into(),
            role: "vaultkeeper-operator".into(),
            policy: "vaultkeeper-operator".into(),
        },
        operator_namespace: None,
        backup: identity("backup"),
        metrics_token_job: identity("metrics-token"),
        metrics_policy: "vaultkeeper-metrics".into(),
        metrics_token_role: "vaultkeeper-metrics".into(),
        metrics_token_period_seconds: 14 * 24 * 3600,
        restore: Some(identity("restore")),
        config: None,
        login_ttl_seconds: 900,
        revoke_root_token: false,
    }
}

/// Everything bootstrap manages, read back from the server.
async fn read_back(
    client: &dyn NodeClient,
    pod: &PodName,
    spec: &BootstrapSpec,
    token: &Token,
) -> String {
    let desired = bootstrap::desired(spec);
    let mut out = String::new();
    out.push_str(&format!(
        "{:?}\n",
        client
            .read_kubernetes_auth_config(pod, &spec.kubernetes_mount, token)
            .await
    ));
    for (name, _, _) in &desired.policies {
        out.push_str(&format!(
            "{name}: {:?}\n",
            client.read_policy(pod, name, token).await
        ));
    }
    for (role, _) in &desired.kubernetes_roles {
        out.push_str(&format!(
            "{:?}\n",
            client
                .read_kubernetes_role(pod, &spec.kubernetes_mount, &role.name, token)
                .await
        ));
    }
    for role in &desired.token_roles {
        out.push_str(&format!(
            "{:?}\n",
            client.read_token_role(pod, &role.name, token).await
        ));
    }
    out
}

async fn login(raw: &Raw, ip: Ipv4Addr, role: &str, jwt: &SecretString) -> String {
    let answer = raw
        .post(
            ip,
            "auth/kubernetes/login",
            None,
            json!({"role": role, "jwt": jwt.expose_secret()}),
        )
        .await;
    assert_eq!(answer.status, 200, "login as {role}: {}", answer.json);
    answer.json["auth"]["client_token"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

struct StaticJwt(SecretString);

#[async_trait]
impl JwtSource for StaticJwt {
    async fn jwt(&self) -> Result<SecretString> {
        Ok(self.0.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_twice_gives_the_same_policies_and_roles_and_least_privilege() {
    logs::init();
    let mut cluster = Cluster::new(5, 1, Seal::Shamir);
    cluster.start_all();
    let reviewer = TokenReviewServer::start(
        SocketAddr::new(Ipv4Addr::new(127, 10, 5, 3).into(), 8443),
        &cluster.pki,
    )
    .await;
    let spec = bootstrap_spec(&reviewer.url, &cluster.pki.ca_pem);
    let keys_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = FileKeyStore::new(keys_dir.path().join("keys.json"));
    let pods = cluster.pods(1);
    let pod = &pods[0];
    let ip = cluster.nodes[0].ip;
    let mut lifecycle = Lifecycle::new(cluster.http_client(), store.clone(), shamir(pods.clone()))
        .with_bootstrap(spec.clone());
    let reports = converge(&mut lifecycle, &[], CONVERGE).await;
    let first = reports
        .iter()
        .flat_map(|r| &r.outcomes)
        .find_map(|o| match &o.result {
            Ok(Done::Bootstrapped(report)) => Some(report.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("bootstrap ran"));
    assert!(
        first.items.iter().any(|(_, c)| *c == Change::Created),
        "{first:?}"
    );
    let keys = stored_keys(&store).await;
    let root = keys
        .root_token
        .clone()
        .unwrap_or_else(|| panic!("root kept"));
    let http = lifecycle.client();
    let before = read_back(http, pod, &spec, &root).await;

    // Twice more, once through each transport: nothing changes.
    let executor = cluster.executor();
    let exec = ExecNodeClient::new(executor.clone(), Cluster::cli());
    for client in [&exec as &dyn NodeClient, http as &dyn NodeClient] {
        let again = bootstrap::apply(client, pod, &spec, &root, Authority::Root)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.is_unchanged(), "{again:?}");
    }
    assert_eq!(read_back(http, pod, &spec, &root).await, before);
    assert_eq!(
        read_back(&exec, pod, &spec, &root).await,
        before,
        "both transports read the same state"
    );

    let raw = Raw::new(&cluster.pki.ca_pem);
    let mut secrets = secrets_of(&keys);

    // The operator's own login re-applies the same bootstrap, and nothing more.
    let operator_jwt = reviewer.issue("secrets", "vaultkeeper");
    let operator = http
        .kubernetes_login(pod, "kubernetes", "vaultkeeper-operator", &operator_jwt)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let as_operator = bootstrap::apply(&exec, pod, &spec, &operator, Authority::Operator)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(as_operator.is_unchanged(), "{as_operator:?}");
    // Drift made with root (a person editing by hand) is repaired by the operator's own
    // login, through either transport: the pinned values admit exactly these writes.
    let desired = bootstrap::desired(&spec);
    for client in [&exec as &dyn NodeClient, http as &dyn NodeClient] {
        let mut drifted_role = desired.kubernetes_roles[1].0.clone();
        drifted_role.token_ttl_seconds = 60;
        http.write_kubernetes_role(pod, "kubernetes", &drifted_role, &root)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        http.write_policy(
            pod,
            "vaultkeeper-metrics",
            "path \"sys/metrics\" { capabilities = [\"list\"] }",
            &root,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let mut drifted_token_role = desired.token_roles[0].clone();
        drifted_token_role.token_period_seconds = 7200;
        http.write_token_role(pod, &drifted_token_role, &root)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let repaired = bootstrap::apply(client, pod, &spec, &operator, Authority::Operator)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let updated: Vec<&Item> = repaired
            .items
            .iter()
            .filter(|(_, c)| *c == Change::Updated)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(updated.len(), 3, "{:?}: {repaired:?}", client.transport());
        assert_eq!(read_back(http, pod, &spec, &root).await, before);
    }
    http.raft_configuration(pod, &operator)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let widened = http
        .write_policy(
            pod,
            "vaultkeeper-backup",
            "path \"*\" { capabilities = [\"sudo\", \"read\"] }",
            &operator,
        )
        .await;
    assert!(
        matches!(widened, Err(Error::PermissionDenied { .. })),
        "{widened:?}"
    );
    let own = http
        .write_policy(
            pod,
            "vaultkeeper-operator",
            &bootstrap::backup_policy(),
            &operator,
        )
        .await;
    assert!(
        matches!(own, Err(Error::PermissionDenied { .. })),
        "{own:?}"
    );
    let mut rebound = bootstrap::desired(&spec).kubernetes_roles[1].0.clone();
    rebound.bound_service_account_names = vec!["vaultkeeper".into()];
    let rebound = exec
        .write_kubernetes_role(pod, "kubernetes", &rebound, &operator)
        .await;
    assert!(
        matches!(rebound, Err(Error::PermissionDenied { .. })),
        "{rebound:?}"
    );
    let mut elsewhere = spec.kubernetes.clone();
    elsewhere.kubernetes_host = "https://attacker.example:443".into();
    let elsewhere = http
        .write_kubernetes_auth_config(pod, "kubernetes", &elsewhere, &operator)
        .await;
    assert!(
        matches!(elsewhere, Err(Error::PermissionDenied { .. })),
        "{elsewhere:?}"
    );
    secrets.push(operator.expose_secret().to_string());
    secrets.push(operator_jwt.expose_secret().to_string());

    // Backup: its login reads a snapshot and nothing else.
    let backup_jwt = reviewer.issue("secrets", "vault-backup");
    let backup = login(&raw, ip, "vaultkeeper-backup", &backup_jwt).await;
    let snapshot = raw
        .get(ip, "sys/storage/raft/snapshot", Some(&backup))
        .await;
    assert_eq!(snapshot.status, 200);
    assert!(
        snapshot.bytes.len() > 1000,
        "a real snapshot: {} bytes",
        snapshot.bytes.len()
    );
    for path in [
        "sys/metrics",
        "sys/storage/raft/configuration",
        "auth/token/lookup-self",
        "sys/policy/vaultkeeper-backup",
        "sys/auth",
    ] {
        assert_eq!(
            raw.get(ip, path, Some(&backup)).await.status,
            403,
            "backup must not read {path}"
        );
    }
    assert_eq!(
        raw.post(ip, "sys/storage/raft/snapshot", Some(&backup), json!({}))
            .await
            .status,
        403,
        "backup must not restore"
    );
    assert_eq!(
        raw.post(ip, "auth/token/create", Some(&backup), json!({}))
            .await
            .status,
        403
    );
    // The wrong service account cannot use the backup role.
    let stranger = reviewer.issue("secrets", "someone-else");
    let refused = raw
        .post(
            ip,
            "auth/kubernetes/login",
            None,
            json!({"role": "vaultkeeper-backup", "jwt": stranger.expose_secret()}),
        )
        .await;
    assert_eq!(refused.status, 403);
    // Every role requires the Vault-login audience: the right service account's token for
    // the API server (what a pod's default token is, valid against the Kubernetes API) is
    // refused by every role, and so is a token with no audience at all. Only a token minted
    // for Vault logs in, so a Vault pod that records what it is sent holds nothing the API
    // server accepts.
    for (role, account) in [
        ("vaultkeeper-operator", "vaultkeeper"),
        ("vaultkeeper-backup", "vault-backup"),
        ("vaultkeeper-metrics-token", "vault-metrics-token"),
        ("vaultkeeper-restore", "vault-restore"),
    ] {
        let api_token = reviewer.issue_with_audiences("secrets", account, &[API_AUDIENCE]);
        let no_audience = reviewer.issue_with_audiences("secrets", account, &[]);
        for (what, jwt) in [
            ("API-audience", &api_token),
            ("audience-less", &no_audience),
        ] {
            let refused = raw
                .post(
                    ip,
                    "auth/kubernetes/login",
                    None,
                    json!({"role": role, "jwt": jwt.expose_secret()}),
                )
                .await;
            assert_eq!(
                refused.status, 403,
                "role {role} must refuse an {what} token"
            );
            assert!(refused.json["auth"].is_null(), "role {role} issued a token");
        }
        let read = raw
            .get(
                ip,
                &format!("auth/kubernetes/role/{role}"),
                Some(root.expose_secret()),
            )
            .await;
        assert_eq!(
            read.json["data"]["audience"],
            json!(VAULT_LOGIN_AUDIENCE),
            "{role}"
        );
        // The same account with the Vault audience is accepted (the refusals above are
        // about the audience, nothing else).
        let accepted = login(&raw, ip, role, &reviewer.issue("secrets", account)).await;
        assert!(!accepted.is_empty());
    }

    // Metrics token: the job issues an orphan periodic token carrying only the metrics
    // policy, renews it and looks it up, all without root.
    let job_jwt = reviewer.issue("secrets", "vault-metrics-token");
    let job = login(&raw, ip, "vaultkeeper-metrics-token", &job_jwt).await;
    let created = raw
        .post(
            ip,
            "auth/token/create/vaultkeeper-metrics",
            Some(&job),
            json!({}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.json);
    let metrics = created.json["auth"]["client_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        created.json["auth"]["policies"],
        json!(["vaultkeeper-metrics"])
    );
    assert_eq!(created.json["auth"]["orphan"], json!(true));
    assert_eq!(
        created.json["auth"]["lease_duration"],
        json!(14 * 24 * 3600)
    );
    assert_eq!(
        raw.get(ip, "sys/metrics?format=prometheus", Some(&metrics))
            .await
            .status,
        200
    );
    for path in [
        "sys/storage/raft/snapshot",
        "auth/token/lookup-self",
        "sys/policy/vaultkeeper-metrics",
    ] {
        assert_eq!(
            raw.get(ip, path, Some(&metrics)).await.status,
            403,
            "metrics token must not read {path}"
        );
    }
    let looked = raw
        .post(
            ip,
            "auth/token/lookup",
            Some(&job),
            json!({ "token": metrics }),
        )
        .await;
    assert_eq!(looked.status, 200, "{}", looked.json);
    assert_eq!(
        looked.json["data"]["policies"],
        json!(["vaultkeeper-metrics"])
    );
    assert_eq!(looked.json["data"]["renewable"], json!(true));
    // Renewal resets the TTL to the full period: the token lives as long as it is renewed.
    let renewed = raw
        .post(
            ip,
            "auth/token/renew",
            Some(&job),
            json!({ "token": metrics }),
        )
        .await;
    assert_eq!(renewed.status, 200, "{}", renewed.json);
    assert_eq!(
        renewed.json["auth"]["lease_duration"],
        json!(14 * 24 * 3600)
    );
    assert_eq!(
        raw.get(ip, "sys/metrics", Some(&job)).await.status,
        403,
        "the job itself cannot scrape"
    );
    let wider = raw
        .post(
            ip,
            "auth/token/create/vaultkeeper-metrics",
            Some(&job),
            json!({"policies": ["vaultkeeper-backup"]}),
        )
        .await;
    assert_eq!(
        wider.status, 400,
        "the token role refuses other policies: {}",
        wider.json
    );

    // Restore: loads the snapshot taken above.
    let restore_jwt = reviewer.issue("secrets", "vault-restore");
    let restore = login(&raw, ip, "vaultkeeper-restore", &restore_jwt).await;
    assert_eq!(
        raw.get(ip, "sys/storage/raft/snapshot", Some(&restore))
            .await
            .status,
        403
    );
    let restored = raw
        .post_bytes(
            ip,
            "sys/storage/raft/snapshot",
            Some(&restore),
            snapshot.bytes.clone(),
        )
        .await;
    assert_eq!(restored.status, 204, "{}", restored.json);
    assert!(
        reviewer.reviews() >= 4,
        "every accepted login went through the TokenReview endpoint: {}",
        reviewer.reviews()
    );

    secrets.extend([backup, metrics, job, restore]);
    secrets.extend(
        [backup_jwt, job_jwt, restore_jwt, stranger]
            .iter()
            .map(|j| j.expose_secret().to_string()),
    );
    let argvs: Vec<Vec<String>> = executor.recorded().into_iter().map(|c| c.argv).collect();
    let mut extra = report_texts(&reports);
    extra.extend(cluster.server_logs());
    assert_no_secret_leaked(&secrets, &argvs, &extra);
}

fn auto(pods: Vec<PodName>, mode: InitMode) -> ClusterIntent {
    ClusterIntent::new(
        pods,
        SealIntent::Auto {
            recovery_shares: 5,
            recovery_threshold: 3,
        },
        mode,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Auto-unseal: init gives recovery shares, no share is ever entered, and after every
/// node is killed and restarted the pods come back unsealed on their own.
async fn auto_unseal_lifecycle<C: NodeClient>(
    cluster: &mut Cluster,
    client: C,
    label: &str,
) -> (Vec<String>, Vec<PassReport>) {
    let keys_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = FileKeyStore::new(keys_dir.path().join("keys.json"));
    let pods = cluster.pods(3);
    let mut lifecycle = Lifecycle::new(
        client,
        store.clone(),
        auto(pods.clone(), InitMode::Operator),
    );
    let mut reports = converge(&mut lifecycle, &[], CONVERGE).await;
    let keys = stored_keys(&store).await;
    assert_eq!(
        (keys.kind, keys.shares.len(), keys.threshold),
        (KeyKind::Recovery, 5, 3)
    );
    let root = keys
        .root_token
        .clone()
        .unwrap_or_else(|| panic!("root kept"));
    assert_healthy(lifecycle.client(), &pods, &root).await;

    cluster.kill_all();
    cluster.start_all();
    let listening = Instant::now();
    let restart = converge(&mut lifecycle, &[], CONVERGE).await;
    eprintln!(
        "[{label}] auto-unseal restart: listening -> all unsealed in {:?}",
        listening.elapsed()
    );
    assert_healthy(lifecycle.client(), &pods, &root).await;
    reports.extend(restart);
    assert_eq!(
        count_actions(&reports, |a| matches!(a, Action::Unseal { .. })),
        0,
        "no share is ever entered"
    );
    assert_eq!(
        count_actions(&reports, |a| matches!(a, Action::Init { .. })),
        1
    );
    (secrets_of(&keys), reports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transit_auto_unseal_cluster_comes_back_unsealed_without_keys() {
    logs::init();
    let transit_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let transit_pki = support::pki::Pki::new(transit_dir.path(), 6);
    let transit = TransitServer::start(
        &transit_dir.path().join("server"),
        Ipv4Addr::new(127, 10, 6, 2),
        &transit_pki,
    )
    .await;
    let seal = Seal::Transit {
        address: transit.address.clone(),
        token: transit.token.clone(),
        key_name: transit.key_name.clone(),
        ca_file: transit_pki.ca_file.clone(),
    };
    let mut cluster = Cluster::new(6, 3, seal);
    cluster.start_all();
    let executor = cluster.executor();
    let client = ExecNodeClient::new(executor.clone(), Cluster::cli());
    let (mut secrets, reports) = auto_unseal_lifecycle(&mut cluster, client, "transit").await;
    let argvs: Vec<Vec<String>> = executor.recorded().into_iter().map(|c| c.argv).collect();
    assert!(
        !argvs.iter().any(|a| a.iter().any(|x| x == "sys/unseal")),
        "no unseal command was run"
    );
    assert!(
        argvs
            .iter()
            .any(|a| a.iter().any(|x| x == "-recovery-shares=5"))
    );
    secrets.extend(transit.secrets.iter().cloned());
    let mut extra = report_texts(&reports);
    extra.extend(cluster.server_logs());
    assert_no_secret_leaked(&secrets, &argvs, &extra);
}

fn write_static_key(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Read;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("unseal.key");
    std::fs::write(&path, key).unwrap_or_else(|e| panic!("{e}"));
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_seal_cluster_comes_back_unsealed_without_keys() {
    logs::init();
    let key_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cluster = Cluster::new(
        7,
        3,
        Seal::Static {
            key_file: write_static_key(key_dir.path()),
        },
    );
    cluster.start_all();
    let client = cluster.http_client();
    let (secrets, reports) = auto_unseal_lifecycle(&mut cluster, client, "static").await;
    let mut extra = report_texts(&reports);
    extra.extend(cluster.server_logs());
    assert_no_secret_leaked(&secrets, &[], &extra);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_initialized_openbao_is_observed_and_bootstrapped_never_initialized() {
    logs::init();
    let key_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key_file = write_static_key(key_dir.path());
    // The stanza needs the reviewer's URL and the cluster's CA: the reviewer listens on an
    // address fixed in advance, the PKI comes with the cluster, and the nodes are added
    // once the stanza is known. Only the first pod gets the stanza: with it on every pod,
    // each one initializes a cluster of its own (checked: three cluster ids, which the
    // decision reports as SplitBrain); without it the others join through retry_join.
    let reviewer_address = SocketAddr::new(Ipv4Addr::new(127, 10, 8, 3).into(), 8443);
    let mut cluster = Cluster::new(
        8,
        0,
        Seal::Static {
            key_file: key_file.clone(),
        },
    );
    let spec = bootstrap_spec(&format!("https://{reviewer_address}"), &cluster.pki.ca_pem);
    cluster.first_node_config =
        vaultkeeper_vault::selfinit::initialize_stanza(&spec).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..3 {
        cluster.add_node(3);
    }
    let reviewer = TokenReviewServer::start(reviewer_address, &cluster.pki).await;
    cluster.start_all();

    let operator_jwt = reviewer.issue("secrets", "vaultkeeper");
    let keys_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = FileKeyStore::new(keys_dir.path().join("keys.json"));
    let pods = cluster.pods(3);
    let executor = cluster.executor();
    let mut lifecycle = Lifecycle::new(
        ExecNodeClient::new(executor.clone(), Cluster::cli()),
        store.clone(),
        auto(pods.clone(), InitMode::SelfInit),
    )
    .with_bootstrap(spec.clone())
    .with_operator_login(OperatorLogin {
        mount: "kubernetes".into(),
        role: "vaultkeeper-operator".into(),
        jwt: Arc::new(StaticJwt(operator_jwt.clone())),
    });
    let reports = converge(&mut lifecycle, &[], CONVERGE).await;
    assert_eq!(
        count_actions(&reports, |a| matches!(a, Action::Init { .. })),
        0,
        "the operator never inits"
    );
    let argvs: Vec<Vec<String>> = executor.recorded().into_iter().map(|c| c.argv).collect();
    assert!(
        !argvs.iter().any(|a| a.iter().any(|x| x == "init")),
        "no init command"
    );
    assert!(
        store
            .load()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "no keys exist in self-init mode"
    );
    let report = reports
        .iter()
        .flat_map(|r| &r.outcomes)
        .find_map(|o| match &o.result {
            Ok(Done::Bootstrapped(report)) => Some(report.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("bootstrap ran"));
    // The stanza created the operator's identity exactly as bootstrap wants it.
    for (item, change) in &report.items {
        match item {
            Item::Policy(n) | Item::KubernetesRole(n) if n == "vaultkeeper-operator" => {
                assert_eq!(*change, Change::Unchanged, "{item}")
            }
            Item::AuthMount(_) | Item::KubernetesConfig(_) => {
                assert_eq!(*change, Change::Unchanged, "{item}")
            }
            _ => assert_eq!(*change, Change::Created, "{item}"),
        }
    }
    // The identities the operator created work: backup reads a snapshot.
    let raw = Raw::new(&cluster.pki.ca_pem);
    let ip = cluster.nodes[0].ip;
    let backup_jwt = reviewer.issue("secrets", "vault-backup");
    let backup = login(&raw, ip, "vaultkeeper-backup", &backup_jwt).await;
    assert_eq!(
        raw.get(ip, "sys/storage/raft/snapshot", Some(&backup))
            .await
            .status,
        200
    );
    // Once the cluster is initialized the stanza is taken out of the first pod's config
    // (a pod-0 that lost its volume must join, not start a cluster of its own); after a
    // restart of every node all come back unsealed, still with nothing to init.
    cluster.first_node_config.clear();
    cluster.rewrite_config(0, 3);
    cluster.kill_all();
    cluster.start_all();
    lifecycle.set_bootstrapped(false);
    let again = converge(&mut lifecycle, &[], CONVERGE).await;
    assert_eq!(
        count_actions(&again, |a| matches!(
            a,
            Action::Init { .. } | Action::Unseal { .. }
        )),
        0
    );
    let secrets = vec![
        operator_jwt.expose_secret().to_string(),
        backup_jwt.expose_secret().to_string(),
        backup,
    ];
    let argvs: Vec<Vec<String>> = executor.recorded().into_iter().map(|c| c.argv).collect();
    let mut extra = report_texts(&reports);
    extra.extend(report_texts(&again));
    extra.extend(cluster.server_logs());
    assert_no_secret_leaked(&secrets, &argvs, &extra);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_token_is_revoked_after_bootstrap_and_the_operator_login_takes_over() {
    logs::init();
    let mut cluster = Cluster::new(9, 3, Seal::Shamir);
    cluster.start_all();
    let reviewer = TokenReviewServer::start(
        SocketAddr::new(Ipv4Addr::new(127, 10, 9, 3).into(), 8443),
        &cluster.pki,
    )
    .await;
    let mut spec = bootstrap_spec(&reviewer.url, &cluster.pki.ca_pem);
    spec.revoke_root_token = true;
    let operator_jwt = reviewer.issue("secrets", "vaultkeeper");
    let keys_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = FileKeyStore::new(keys_dir.path().join("keys.json"));
    let pods = cluster.pods(3);
    let mut lifecycle = Lifecycle::new(cluster.http_client(), store.clone(), shamir(pods.clone()))
        .with_bootstrap(spec)
        .with_operator_login(OperatorLogin {
            mount: "kubernetes".into(),
            role: "vaultkeeper-operator".into(),
            jwt: Arc::new(StaticJwt(operator_jwt.clone())),
        });
    // The root token is read from the store before it is revoked, for the checks below.
    let mut reports = Vec::new();
    let mut root = None;
    let start = Instant::now();
    loop {
        let report = lifecycle
            .run_pass(&[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if root.is_none() {
            root = store.load().await.ok().flatten().and_then(|k| k.root_token);
        }
        let done = report.is_converged();
        reports.push(report);
        if done {
            break;
        }
        assert!(
            start.elapsed() < CONVERGE,
            "no convergence: {:?}",
            reports.last()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let root = root.unwrap_or_else(|| panic!("root token seen"));
    assert!(
        reports
            .iter()
            .flat_map(|r| &r.outcomes)
            .any(|o| matches!(o.result, Ok(Done::BootstrappedAndRootRevoked(_)))),
        "root revoked"
    );
    let keys = stored_keys(&store).await;
    assert!(
        keys.root_token.is_none(),
        "the store no longer keeps the root token"
    );
    let revoked = lifecycle.client().lookup_self(&pods[0], &root).await;
    assert!(
        matches!(revoked, Err(Error::PermissionDenied { .. })),
        "{revoked:?}"
    );

    // Later steps authenticate as the operator: re-bootstrap and a restart of every node.
    lifecycle.set_bootstrapped(false);
    cluster.kill_all();
    cluster.start_all();
    let later = converge(&mut lifecycle, &[], CONVERGE).await;
    let rebootstrap = later
        .iter()
        .flat_map(|r| &r.outcomes)
        .find_map(|o| match &o.result {
            Ok(Done::Bootstrapped(report)) => Some(report.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("re-bootstrap ran as the operator"));
    assert!(rebootstrap.is_unchanged(), "{rebootstrap:?}");
    assert_eq!(
        count_actions(&later, |a| matches!(a, Action::Unseal { .. })),
        3
    );
    let operator = lifecycle
        .client()
        .kubernetes_login(
            &pods[0],
            "kubernetes",
            "vaultkeeper-operator",
            &operator_jwt,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_healthy(lifecycle.client(), &pods, &operator).await;

    let mut secrets = secrets_of(&keys);
    secrets.push(root.expose_secret().to_string());
    secrets.push(operator.expose_secret().to_string());
    secrets.push(operator_jwt.expose_secret().to_string());
    let mut extra = report_texts(&reports);
    extra.extend(report_texts(&later));
    extra.extend(cluster.server_logs());
    assert_no_secret_leaked(&secrets, &[], &extra);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_pod_and_the_step_and_carry_no_secret() {
    logs::init();
    let mut cluster = Cluster::new(10, 1, Seal::Shamir);
    cluster.start_all();
    let executor = cluster.executor();
    let http = cluster.http_client();
    let ghost = PodName::new("vault-9").unwrap_or_else(|e| panic!("{e}"));
    // A pod whose address answers nothing.
    http.add_pod(
        ghost.clone(),
        &NodeEndpoint::by_ip(Ipv4Addr::new(127, 10, 10, 99).into(), 8200),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    executor.inner().add_pod(
        ghost.clone(),
        "https://127.10.10.99:8200",
        &cluster.pki.ca_file,
    );
    let exec = ExecNodeClient::new(executor.clone(), Cluster::cli());
    let pod = cluster.pods(1)[0].clone();
    let share = KeyShare::new("c2VjcmV0LXNoYXJlLXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw==".into());
    let token = Token::new("s.aSecretTokenThatMustNotLeak42".into());
    let mut texts = Vec::new();
    for client in [&http as &dyn NodeClient, &exec as &dyn NodeClient] {
        let cases: Vec<(Step, &PodName, Result<()>)> = vec![
            (
                Step::Unseal,
                &pod,
                client.unseal(&pod, &share).await.map(|_| ()),
            ),
            (
                Step::RaftConfiguration,
                &pod,
                client.raft_configuration(&pod, &token).await.map(|_| ()),
            ),
            (
                Step::TokenLookup,
                &pod,
                client.lookup_self(&pod, &token).await.map(|_| ()),
            ),
            (
                Step::SealStatus,
                &ghost,
                client.seal_status(&ghost).await.map(|_| ()),
            ),
            (
                Step::Unseal,
                &ghost,
                client.unseal(&ghost, &share).await.map(|_| ()),
            ),
        ];
        for (step, target, result) in cases {
            let error = result
                .err()
                .unwrap_or_else(|| panic!("{step} on {target} must fail"));
            let text = error.to_string();
            assert!(
                text.contains(target.as_str()) && text.contains(&step.to_string()),
                "{:?}: {text}",
                client.transport()
            );
            assert_eq!(error.step(), Some(step));
            texts.push(text);
            texts.push(format!("{error:?}"));
        }
    }
    let argvs: Vec<Vec<String>> = executor.recorded().into_iter().map(|c| c.argv).collect();
    assert_no_secret_leaked(
        &[
            share.expose_secret().to_string(),
            token.expose_secret().to_string(),
        ],
        &argvs,
        &texts,
    );
}

#[test]
fn a_missing_bao_binary_fails_with_the_install_script_named() {
    let error = support::bao::locate_bao(Some("/nonexistent/bao".into()))
        .err()
        .unwrap_or_default();
    assert!(error.contains("scripts/install-tools.sh"), "{error}");
}

/// Relays TCP from `listen` to `target`, holding every byte the server sends back for
/// `delay` after it arrives: a node that answers, but slowly.
async fn slow_answering_proxy(listen: SocketAddr, target: SocketAddr, delay: Duration) {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| panic!("binding {listen}: {e}"));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let n = match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    tokio::time::sleep(delay).await;
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_answer_slower_than_every_http_deadline_is_still_received() {
    logs::init();
    let mut cluster = Cluster::new(11, 1, Seal::Shamir);
    cluster.start_all();
    let pod = cluster.pods(1).remove(0);
    // Every byte back from the server is held 3 s; the client's deadlines for a call are
    // 1 s (the connect timeout, TLS handshake included, is left room for the held
    // handshake).
    let proxy = SocketAddr::new(Ipv4Addr::new(127, 10, 11, 99).into(), 8200);
    let node = SocketAddr::new(support::bao::node_ip(11, 0).into(), 8200);
    slow_answering_proxy(proxy, node, Duration::from_secs(3)).await;
    let options = vaultkeeper_vault::client::HttpOptions {
        connect_timeout: Duration::from_secs(15),
        request_timeout: Duration::from_secs(1),
        stall_timeout: Duration::from_secs(1),
    };
    let http =
        vaultkeeper_vault::client::HttpNodeClient::new(cluster.pki.ca_pem.as_bytes(), options)
            .unwrap_or_else(|e| panic!("{e}"));
    http.add_pod(
        pod.clone(),
        &NodeEndpoint::by_name(format!("{pod}.vault-internal"), proxy),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Any other call through the slow node fails on its deadline...
    let status = http.seal_status(&pod).await;
    assert!(
        matches!(status, Err(Error::Unreachable { .. })),
        "a bounded call outlives its deadline: {status:?}"
    );
    // ...but init waits for its answer, which comes back unread and whole.
    let started = Instant::now();
    let raw = http
        .init(
            &pod,
            &vaultkeeper_vault::node::InitRequest::Shamir {
                shares: 5,
                threshold: 3,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("init waits for a slow answer: {e}"));
    assert!(started.elapsed() >= Duration::from_secs(3));
    let keys = raw.parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((keys.shares.len(), keys.threshold), (5, 3));
    assert!(keys.root_token.is_some());
}

/// The active pod of `pods`.
async fn active_pod<C: NodeClient>(client: &C, pods: &[PodName]) -> PodName {
    for pod in pods {
        if client.health(pod).await.is_ok_and(|h| h.is_active()) {
            return pod.clone();
        }
    }
    panic!("no active pod among {pods:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_saves_before_verifying_and_the_new_shares_unseal_every_restarted_node() {
    use vaultkeeper_vault::rotation::RotationApi;
    logs::init();
    let mut cluster = Cluster::new(12, 3, Seal::Shamir);
    cluster.start_all();
    let executor = cluster.executor();
    let client = ExecNodeClient::new(executor.clone(), Cluster::cli());
    let keys_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = FileKeyStore::new(keys_dir.path().join("keys.json"));
    let pods = cluster.pods(3);
    let mut lifecycle = Lifecycle::new(client, store.clone(), shamir(pods.clone()));
    converge(&mut lifecycle, &[], CONVERGE).await;
    let before = stored_keys(&store).await;

    let via = active_pod(lifecycle.client(), &pods).await;
    let report = lifecycle
        .rekey(&via, RotationApi::OpenBao)
        .await
        .unwrap_or_else(|e| panic!("rekey: {e}"));
    assert_eq!((report.shares, report.threshold), (5, 3));
    let after = stored_keys(&store).await;
    let old: Vec<&str> = before.shares.iter().map(|s| s.expose_secret()).collect();
    assert!(
        after
            .shares
            .iter()
            .all(|s| !old.contains(&s.expose_secret())),
        "every share is new"
    );
    let previous = after
        .previous
        .clone()
        .unwrap_or_else(|| panic!("old shares kept"));
    assert_eq!(previous.pods_left.len(), 3, "{previous:?}");
    assert!(after.next.is_none());

    // The old shares no longer unseal: a restarted node refuses them...
    cluster.node(2).server.kill();
    cluster.node(2).server.start();
    cluster.node(2).server.wait_listening();
    let restarted = &pods[2];
    let mut refused = false;
    for share in before.shares.iter().take(3) {
        match lifecycle.client().unseal(restarted, share).await {
            Ok(p) => assert!(p.sealed, "an old share unsealed the node"),
            Err(e) => {
                refused = matches!(e, Error::Api { status: 400, .. });
                break;
            }
        }
    }
    assert!(
        refused,
        "the old shares are refused once the threshold is entered"
    );
    lifecycle
        .client()
        .unseal_reset(restarted)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // ...and the lifecycle unseals every restarted node with the new ones; once all three
    // have been, the old shares are dropped from the store.
    cluster.kill_all();
    cluster.start_all();
    converge(&mut lifecycle, &[], CONVERGE).await;
    let settled = stored_keys(&store).await;
    assert!(settled.previous.is_none(), "{settled:?}");
    assert_eq!(
        settled
            .shares
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect::<Vec<_>>(),
        after
            .shares
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect::<Vec<_>>()
    );

    // The keyring rotates too.
    let via = active_pod(lifecycle.client(), &pods).await;
    lifecycle
        .rotate_keyring(&via, RotationApi::OpenBao)
        .await
        .unwrap_or_else(|e| panic!("keyring rotation: {e}"));

    // No share travelled on a command line.
    let argvs: Vec<Vec<String>> = executor.recorded().into_iter().map(|c| c.argv).collect();
    let mut secrets = secrets_of(&before);
    secrets.extend(secrets_of(&after));
    assert_no_secret_leaked(&secrets, &argvs, &cluster.server_logs());
}

/// The config identity (what VaultPolicy resources are applied with) manages team
/// policies through both transports, gets Vault's own parse error for bad HCL, and is
/// refused on vaultkeeper's policies, the built-in ones and everything outside
/// `sys/policy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_identity_manages_team_policies_and_nothing_of_vaultkeeper() {
    logs::init();
    let mut cluster = Cluster::new(217, 1, Seal::Shamir);
    cluster.start_all();
    let reviewer = TokenReviewServer::start(
        SocketAddr::new(Ipv4Addr::new(127, 10, 217, 3).into(), 8443),
        &cluster.pki,
    )
    .await;
    let mut spec = bootstrap_spec(&reviewer.url, &cluster.pki.ca_pem);
    spec.config = Some(Identity {
        service_account: "vaultkeeper".into(),
        role: "vaultkeeper-config".into(),
        policy: "vaultkeeper-config".into(),
    });
    let keys_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = FileKeyStore::new(keys_dir.path().join("keys.json"));
    let pods = cluster.pods(1);
    let pod = &pods[0];
    let mut lifecycle = Lifecycle::new(cluster.http_client(), store.clone(), shamir(pods.clone()))
        .with_bootstrap(spec.clone());
    converge(&mut lifecycle, &[], CONVERGE).await;
    let http = lifecycle.client();
    let exec = ExecNodeClient::new(cluster.executor(), Cluster::cli());
    let jwt = reviewer.issue("secrets", "vaultkeeper");
    let config = http
        .kubernetes_login(pod, "kubernetes", "vaultkeeper-config", &jwt)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let team = "path \"secret/data/team-a/*\" {\n  capabilities = [\"read\"]\n}\n";
    for client in [&exec as &dyn NodeClient, http as &dyn NodeClient] {
        client
            .write_policy(pod, "team-a", team, &config)
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", client.transport()));
        assert_eq!(
            client
                .read_policy(pod, "team-a", &config)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .as_deref(),
            Some(team),
            "the text reads back exactly as written"
        );
        client
            .delete_policy(pod, "team-a", &config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            client
                .read_policy(pod, "team-a", &config)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            None
        );
        // Deleting what is already gone succeeds (a retried cleanup).
        client
            .delete_policy(pod, "team-a", &config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        let invalid = client
            .write_policy(pod, "team-b", "path \"x\" { capabilities = ", &config)
            .await;
        match invalid {
            Err(Error::Api { message, .. }) => {
                assert!(message.contains("parse"), "{message}")
            }
            other => panic!("{:?}: {other:?}", client.transport()),
        }

        for reserved in [
            "vaultkeeper-backup",
            "vaultkeeper-operator",
            "vaultkeeper-new",
            "default",
        ] {
            let write = client.write_policy(pod, reserved, team, &config).await;
            assert!(
                matches!(write, Err(Error::PermissionDenied { .. })),
                "{reserved}: {write:?}"
            );
            let delete = client.delete_policy(pod, reserved, &config).await;
            assert!(
                matches!(delete, Err(Error::PermissionDenied { .. })),
                "{reserved}: {delete:?}"
            );
        }
        let raft = client.raft_configuration(pod, &config).await;
        assert!(
            matches!(raft, Err(Error::PermissionDenied { .. })),
            "{raft:?}"
        );
        let role = client
            .read_kubernetes_role(pod, "kubernetes", "vaultkeeper-operator", &config)
            .await;
        assert!(
            matches!(role, Err(Error::PermissionDenied { .. })),
            "{role:?}"
        );
    }
}
