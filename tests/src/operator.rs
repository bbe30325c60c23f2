//! Running the real operator in process against a simulated cluster with real OpenBao
//! pods: the cluster, the operator's installation (its RBAC from `deploy/`, enforced), the
//! operator itself as a task that can be stopped and started again like a crashed pod,
//! and waiting for what `kubectl get vc` would show.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kube::api::{Api, ListParams, PostParams};
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vaultkeeper::controller::faults::{Faults, NoFaults};
use vaultkeeper::controller::{self, Context, Settings};
use vaultkeeper::leader::{LeaderElector, LeaseFaults, LeaseTimings};
use vaultkeeper::metrics::Metrics;
use vaultkeeper_api::login::{VAULT_LOGIN_AUDIENCE, VAULT_LOGIN_TOKEN_SECONDS};
use vaultkeeper_api::{VaultCluster, parse_manifests};
use vaultkeeper_sim::kubelet::KubeletConfig;
use vaultkeeper_sim::{SimCluster, SimConfig, TokenRequester};
use vaultkeeper_vault::lifecycle::JwtSource;
use vaultkeeper_vault::secret::{SecretString, secret_string};

use crate::install::{self, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, workspace_root};

/// Where the project's tools are.
pub fn tool(name: &str, env: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/bin").join(name));
    assert!(
        path.exists(),
        "{name} not found at {}: run scripts/install-tools.sh (or set {env})",
        path.display()
    );
    path
}

/// The built `vaultkeeper` binary, which pods of the project's image run (backup and
/// metrics-token Jobs). Built on demand: the end-to-end package cannot depend on a binary.
pub fn vaultkeeper_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("VAULTKEEPER_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--quiet",
                "-p",
                "vaultkeeper",
                "--bin",
                "vaultkeeper",
                // The features the workspace's test build turns on, so this reuses its
                // binary instead of building another one.
                "--features",
                "sandbox,fault-injection",
            ])
            .current_dir(workspace_root())
            .status()
            .expect("cargo runs");
    assert!(status.success(), "building the vaultkeeper binary failed");
    target.join("debug/vaultkeeper")
}

/// A simulated cluster whose kubelet runs real pods.
pub async fn cluster_with_pods(slot: u8) -> SimCluster {
    cluster_with_images(slot, Vec::new()).await
}

/// A simulated cluster whose kubelet runs real pods, and also `extra_images` (e.g. a
/// hostile stand-in for a Vault image).
pub async fn cluster_with_images(
    slot: u8,
    extra_images: Vec<vaultkeeper_sim::runtime::ImageRule>,
) -> SimCluster {
    let mut config = SimConfig::for_slot(slot);
    config.pods = Some(KubeletConfig {
        bao: tool("bao", "VAULTKEEPER_BAO"),
        vaultkeeper: Some((
            "ghcr.io/vaultkeeper/vaultkeeper".into(),
            vaultkeeper_binary(),
        )),
        backoff: Some(vaultkeeper_sim::runtime::Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(5),
            reset_after: Duration::from_secs(60),
        }),
        extra_images,
    });
    SimCluster::start(config)
        .await
        .expect("the simulated cluster starts")
}

/// The operator's Vault-login token, as its projected token file would hold it: audience
/// Vault logins only, issued fresh at every login so it never expires in a long test.
struct SimJwt(TokenRequester);

#[async_trait]
impl JwtSource for SimJwt {
    async fn jwt(&self) -> vaultkeeper_vault::Result<SecretString> {
        let token = self
            .0
            .issue()
            .map_err(|e| vaultkeeper_vault::Error::NoToken {
                step: vaultkeeper_vault::Step::KubernetesLogin,
                reason: format!("the simulated TokenRequest failed: {e}"),
            })?;
        Ok(secret_string(token.expose_secret().to_owned()))
    }
}

/// Lease faults a test turns on and off while an elected operator runs: renewals held
/// back (a slow or partitioned API server) and a wall clock that is off.
#[derive(Default)]
pub struct LeaseFaultSwitch {
    delay_ms: AtomicU64,
    offset_seconds: AtomicI64,
}

impl LeaseFaultSwitch {
    /// Holds every Lease request back by `delay` from now on (zero: no delay).
    pub fn delay_renewals(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Puts this replica's wall clock `seconds` ahead (negative: behind).
    pub fn skew_clock(&self, seconds: i64) {
        self.offset_seconds.store(seconds, Ordering::SeqCst);
    }
}

impl LeaseFaults for LeaseFaultSwitch {
    fn renewal_delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))
    }
    fn clock_offset(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(self.offset_seconds.load(Ordering::SeqCst))
    }
}

/// How an elected operator takes part in leader election.
#[derive(Clone)]
pub struct Election {
    /// Its identity (the Lease holder name; also the operation-lock holder).
    pub identity: String,
    /// The Lease's name (in the operator's namespace).
    pub lease: String,
    /// Lease timings.
    pub timings: LeaseTimings,
    /// Faults injected into its Lease requests.
    pub faults: Arc<LeaseFaultSwitch>,
}

/// One term of an elected operator: when it began leading, and when it lost or gave up.
#[derive(Clone, Debug)]
pub struct Term {
    /// When it became the leader.
    pub acquired: Instant,
    /// When it stopped leading (lost, or stopped), if it did.
    pub ended: Option<Instant>,
    /// Whether it ended by losing the Lease (rather than a stop).
    pub lost: bool,
}

/// The operator as a task: stop it (a graceful shutdown), abort it (a crash), start it
/// again.
pub struct Operator {
    client: kube::Client,
    settings: Settings,
    faults: Arc<dyn Faults>,
    election: Option<Election>,
    terms: Arc<std::sync::Mutex<Vec<Term>>>,
    /// The operator's metrics (fresh after every start).
    pub metrics: Arc<Metrics>,
    /// The namespaces it manages (empty: every namespace).
    watching: Vec<String>,
    stop: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Operator {
    /// Settings for an operator installed by `deploy/` in `sim`.
    pub fn settings(sim: &SimCluster) -> Settings {
        let jwt = sim.token_requester(
            OPERATOR_NAMESPACE,
            OPERATOR_SERVICE_ACCOUNT,
            &[VAULT_LOGIN_AUDIENCE],
            Duration::from_secs(VAULT_LOGIN_TOKEN_SECONDS.unsigned_abs()),
        );
        Settings {
            operator_image: "ghcr.io/vaultkeeper/vaultkeeper:e2e".into(),
            operator_namespace: OPERATOR_NAMESPACE.into(),
            operator_service_account: OPERATOR_SERVICE_ACCOUNT.into(),
            jwt: Arc::new(SimJwt(jwt)),
            kubernetes_host: sim.url(),
            kubernetes_ca: Some(sim.ca_pem().to_owned()),
            instance: "e2e".into(),
            resync: Duration::from_secs(3),
            converging_requeue: Duration::from_secs(2),
            server_cluster_role: Some("vaultkeeper-vault-server".into()),
            image_policy: Default::default(),
            escrow_secret_namespaces: Vec::new(),
        }
    }

    /// Installs the operator's RBAC from `deploy/` and starts it as its ServiceAccount.
    pub async fn install_and_start(sim: &SimCluster) -> Operator {
        Self::install_and_start_with(sim, Arc::new(NoFaults)).await
    }

    /// The same, with faults injected into the executor and key store.
    pub async fn install_and_start_with(sim: &SimCluster, faults: Arc<dyn Faults>) -> Operator {
        let client = install::install_operator_rbac(sim)
            .await
            .expect("the operator's manifests install");
        let mut operator = Operator {
            client,
            settings: Self::settings(sim),
            faults,
            election: None,
            terms: Default::default(),
            metrics: Arc::new(Metrics::new()),
            watching: Vec::new(),
            stop: None,
            tasks: Vec::new(),
        };
        operator.start();
        operator
    }

    /// Installs the default, namespaced RBAC (`deploy/` plus `deploy/watch/`'s binding in
    /// each of `namespaces`) and starts the operator watching only those namespaces.
    pub async fn install_and_start_watching(sim: &SimCluster, namespaces: &[&str]) -> Operator {
        let client = install::install_operator_rbac_watching(sim, namespaces)
            .await
            .expect("the operator's manifests install");
        let mut operator = Operator {
            client,
            settings: Self::settings(sim),
            faults: Arc::new(NoFaults),
            election: None,
            terms: Default::default(),
            metrics: Arc::new(Metrics::new()),
            watching: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            stop: None,
            tasks: Vec::new(),
        };
        operator.start();
        operator
    }

    /// Installs the operator's RBAC and starts a replica that reconciles only while it
    /// holds the Lease `election.lease`, as `vaultkeeper run` does. Its client sends the
    /// user agent `vaultkeeper/<identity>`, so the request log tells the replicas apart.
    /// A replica that loses the Lease drains and becomes a candidate again, like a pod
    /// that restarted.
    pub async fn install_and_start_elected(sim: &SimCluster, election: Election) -> Operator {
        install::install_operator_rbac(sim)
            .await
            .expect("the operator's manifests install");
        let client = sim
            .client_as_service_account_with_agent(
                OPERATOR_NAMESPACE,
                OPERATOR_SERVICE_ACCOUNT,
                &Self::user_agent(&election.identity),
            )
            .expect("a client as the operator");
        let mut settings = Self::settings(sim);
        settings.instance = election.identity.clone();
        let mut operator = Operator {
            client,
            settings,
            faults: Arc::new(NoFaults),
            election: Some(election),
            terms: Default::default(),
            metrics: Arc::new(Metrics::new()),
            watching: Vec::new(),
            stop: None,
            tasks: Vec::new(),
        };
        operator.start();
        operator
    }

    /// The user agent of an elected replica's requests.
    pub fn user_agent(identity: &str) -> String {
        format!("vaultkeeper/{identity}")
    }

    /// The terms this (elected) operator led, oldest first.
    pub fn terms(&self) -> Vec<Term> {
        self.terms.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Whether this (elected) operator leads now.
    pub fn leads(&self) -> bool {
        self.terms().last().is_some_and(|t| t.ended.is_none())
    }

    /// Starts (again) with fresh memory, as a new operator pod would.
    pub fn start(&mut self) {
        if let Some(election) = self.election.clone() {
            self.start_elected(election);
            return;
        }
        let (stop, stopped) = watch::channel(false);
        self.metrics = Arc::new(Metrics::new());
        let ctx = Arc::new(
            Context::new(
                self.client.clone(),
                self.settings.clone(),
                self.metrics.clone(),
            )
            .with_faults(self.faults.clone()),
        );
        let namespaces: Vec<Option<String>> = if self.watching.is_empty() {
            vec![None]
        } else {
            self.watching.iter().cloned().map(Some).collect()
        };
        let config_ctx = vaultkeeper::config::ConfigContext::new(ctx.clone());
        for namespace in namespaces {
            let mut controller_stopped = stopped.clone();
            let vault_clusters = controller::run(ctx.clone(), namespace.clone(), async move {
                let _ = controller_stopped.wait_for(|s| *s).await;
            });
            let mut config_stopped = stopped.clone();
            let config = vaultkeeper::config::run(config_ctx.clone(), namespace, async move {
                let _ = config_stopped.wait_for(|s| *s).await;
            });
            // One task per namespace that ends when both controllers have, as the process
            // returns only then: a test watching whether the operator returned sees the
            // VaultCluster controller's drain, not the configuration controller's quick stop.
            self.tasks.push(tokio::spawn(async move {
                tokio::join!(vault_clusters, config);
            }));
        }
        self.stop = Some(stop);
    }

    /// The elected replica's life: a candidate until it leads; then controllers with the
    /// leader's fence until it loses the Lease or is stopped; drained before the Lease is
    /// given up; a candidate again after a loss.
    fn start_elected(&mut self, election: Election) {
        let (stop, stopped) = watch::channel(false);
        self.metrics = Arc::new(Metrics::new());
        let client = self.client.clone();
        let settings = self.settings.clone();
        let faults = self.faults.clone();
        let metrics = self.metrics.clone();
        let terms = self.terms.clone();
        self.tasks.push(tokio::spawn(async move {
            loop {
                let elector = LeaderElector::new(
                    client.clone(),
                    OPERATOR_NAMESPACE,
                    &election.lease,
                    &election.identity,
                    election.timings.clone(),
                )
                .with_faults(election.faults.clone());
                let Some(mut leadership) = elector.lead(stopped.clone()).await else {
                    return;
                };
                let term = {
                    let mut terms = terms.lock().unwrap_or_else(|e| e.into_inner());
                    terms.push(Term {
                        acquired: Instant::now(),
                        ended: None,
                        lost: false,
                    });
                    terms.len() - 1
                };
                let ctx = Arc::new(
                    Context::new(client.clone(), settings.clone(), metrics.clone())
                        .with_faults(faults.clone())
                        .with_fence(leadership.fence(), election.timings.duration),
                );
                let (term_stop, term_stopped) = watch::channel(false);
                let mut controller_stopped = term_stopped.clone();
                let mut config_stopped = term_stopped.clone();
                let config = tokio::spawn(vaultkeeper::config::run(
                    vaultkeeper::config::ConfigContext::new(ctx.clone()),
                    None,
                    async move {
                        let _ = config_stopped.wait_for(|s| *s).await;
                    },
                ));
                let controller = tokio::spawn(controller::run(ctx, None, async move {
                    let _ = controller_stopped.wait_for(|s| *s).await;
                }));
                let mut operator_stopped = stopped.clone();
                let lost = tokio::select! {
                    _ = leadership.lost() => true,
                    _ = operator_stopped.wait_for(|s| *s) => false,
                };
                let _ = term_stop.send(true);
                let _ = controller.await;
                let _ = config.await;
                if let Ok(mut terms) = terms.lock() {
                    terms[term].ended = Some(Instant::now());
                    terms[term].lost = lost;
                }
                leadership.release().await;
                if !lost {
                    return;
                }
            }
        }));
        self.stop = Some(stop);
    }

    /// Stops, changes the settings as a new Deployment revision would, and starts again.
    pub async fn restart_with(&mut self, change: impl FnOnce(&mut Settings)) {
        self.stop().await;
        change(&mut self.settings);
        self.start();
    }

    /// Replaces the injected faults for the next start.
    pub fn set_faults(&mut self, faults: Arc<dyn Faults>) {
        self.faults = faults;
    }

    /// Kills the operator where it stands (no cleanup), like a crashed pod.
    pub fn crash(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.stop = None;
    }

    /// Tells the operator to stop, as SIGTERM does, and hands back its tasks so a test can
    /// watch whether (and when) they end.
    pub fn begin_stop(&mut self) -> Vec<JoinHandle<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        self.tasks.drain(..).collect()
    }

    /// Stops gracefully.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.crash();
    }
}

/// Creates (or leaves as it is) the namespace `name`.
pub async fn create_namespace(admin: &kube::Client, name: &str) {
    let ns =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    install::apply_one(admin, &ns, "e2e")
        .await
        .expect("namespace");
}

/// Applies a VaultCluster manifest (from `examples/` or inline YAML) as a user would.
pub async fn apply_cluster(sim: &SimCluster, yaml: &str, namespace: &str) -> VaultCluster {
    let admin = sim.client().expect("admin client");
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    let _ = install::apply_one(&admin, &ns, "e2e").await;
    let mut cluster = parse_manifests(yaml).expect("manifest parses").remove(0);
    cluster.metadata.namespace = Some(namespace.into());
    let api: Api<VaultCluster> = Api::namespaced(admin, namespace);
    api.create(&PostParams::default(), &cluster)
        .await
        .expect("the VaultCluster is created")
}

/// Reads an example from `examples/`.
pub fn example(name: &str) -> String {
    std::fs::read_to_string(
        workspace_root()
            .join("examples")
            .join(format!("{name}.yaml")),
    )
    .expect("example exists")
}

/// Waits until `check` accepts the VaultCluster, or fails with its last state.
pub async fn wait_for(
    sim: &SimCluster,
    namespace: &str,
    name: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&VaultCluster) -> bool,
) -> VaultCluster {
    let api: Api<VaultCluster> = Api::namespaced(sim.client().expect("admin client"), namespace);
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(vc) = api.get(name).await {
            if check(&vc) {
                return vc;
            }
            last = Some(vc);
        }
        if Instant::now() > deadline {
            diagnose(sim, namespace);
            let status = last
                .and_then(|vc| vc.status)
                .map(|s| serde_json::to_string_pretty(&s).unwrap_or_default());
            panic!("timed out after {timeout:?} waiting for {what}; last status: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether a condition has the given status.
pub fn condition(vc: &VaultCluster, type_: &str, status: &str) -> bool {
    vc.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == status)
    })
}

/// Ready for the current generation, as `kubectl wait --for=condition=Ready` and kstatus
/// read it.
pub fn ready(vc: &VaultCluster) -> bool {
    condition(vc, "Ready", "True")
        && vc.status.as_ref().and_then(|s| s.observed_generation) == vc.metadata.generation
}

/// Prints what a person would look at: pods, events, and the last log lines of each pod.
pub fn diagnose(sim: &SimCluster, namespace: &str) {
    let Ok(kubectl) = install::kubectl() else {
        return;
    };
    let kubeconfig = sim.kubeconfig_path().to_string_lossy().into_owned();
    let run = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.as_str(), "-n", namespace];
        all.extend_from_slice(args);
        match install::run(&kubectl, &all) {
            Ok(out) => out,
            Err(e) => format!("({e})"),
        }
    };
    eprintln!(
        "--- pods\n{}",
        run(&["get", "pods", "-o", "wide", "--show-labels"])
    );
    eprintln!(
        "--- events\n{}",
        run(&["get", "events", "--sort-by=.lastTimestamp"])
    );
    let pods = run(&["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"]);
    for pod in pods.split_whitespace() {
        eprintln!("--- logs {pod}\n{}", run(&["logs", pod, "--tail=25"]));
    }
}

/// Runs kubectl against the simulated cluster; the error is kubectl's own message.
pub fn kubectl(sim: &SimCluster, args: &[&str]) -> Result<String, String> {
    let kubectl = install::kubectl().map_err(|e| e.to_string())?;
    let kubeconfig = sim.kubeconfig_path().to_string_lossy().into_owned();
    let mut all = vec!["--kubeconfig", kubeconfig.as_str()];
    all.extend_from_slice(args);
    install::run(&kubectl, &all).map_err(|e| e.to_string())
}

/// The init output the operator keeps in the keys Secret, or `None` when there is none.
pub async fn stored_keys(
    sim: &SimCluster,
    namespace: &str,
    secret: &str,
) -> Option<vaultkeeper_vault::keys::InitKeys> {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(sim.client().expect("admin client"), namespace);
    let found = secrets
        .get_opt(secret)
        .await
        .expect("reading the keys Secret")?;
    let record = found.data.as_ref()?.get("init.json")?;
    Some(vaultkeeper_vault::keys::InitKeys::from_json(&record.0).expect("init output parses"))
}

/// Every secret in an init record (shares, recovery shares, root token), to scan for.
pub fn secrets_of(keys: &vaultkeeper_vault::keys::InitKeys) -> Vec<String> {
    let mut secrets: Vec<String> = keys
        .shares
        .iter()
        .map(|s| s.expose_secret().to_owned())
        .collect();
    if let Some(root) = &keys.root_token {
        secrets.push(root.expose_secret().to_owned());
    }
    secrets
}

/// A pod's IP address as its status reports it.
pub async fn pod_ip(sim: &SimCluster, namespace: &str, pod: &str) -> String {
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(sim.client().expect("admin client"), namespace);
    pods.get(pod)
        .await
        .expect("the pod exists")
        .status
        .and_then(|s| s.pod_ip)
        .expect("the pod has an IP")
}

/// Runs the real `bao` CLI against one pod's API (TLS, the pod's certificate is not
/// verified: the test only needs the data path). The token goes in the environment.
pub async fn bao_at(
    sim: &SimCluster,
    namespace: &str,
    pod: &str,
    token: &str,
    args: &[&str],
) -> Result<String, String> {
    bao_at_with_stdin(sim, namespace, pod, token, args, None).await
}

/// [`bao_at`], with `stdin` for an argument given as `-` (a secret that must not be on a
/// command line).
pub async fn bao_at_with_stdin(
    sim: &SimCluster,
    namespace: &str,
    pod: &str,
    token: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, String> {
    bao_over("https", sim, namespace, pod, token, args, stdin).await
}

/// [`bao_at_with_stdin`] over `scheme`: `http` for a pod that serves without TLS (the
/// Vault chart's default).
pub async fn bao_over(
    scheme: &str,
    sim: &SimCluster,
    namespace: &str,
    pod: &str,
    token: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, String> {
    use tokio::io::AsyncWriteExt;
    let ip = pod_ip(sim, namespace, pod).await;
    let mut child = tokio::process::Command::new(tool("bao", "VAULTKEEPER_BAO"))
        .args(args)
        .env("VAULT_ADDR", format!("{scheme}://{ip}:8200"))
        .env("VAULT_SKIP_VERIFY", "true")
        .env("VAULT_TOKEN", token)
        .env_remove("BAO_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut input = child.stdin.take().ok_or("no stdin")?;
    if let Some(text) = stdin {
        input
            .write_all(text.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    drop(input);
    let output = child.wait_with_output().await.map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// One Event as a person reads it, from either Events API.
#[derive(Clone, Debug)]
pub struct SeenEvent {
    /// The object it is about (`kind/name`).
    pub regarding: String,
    /// Normal or Warning.
    pub type_: String,
    /// The reason.
    pub reason: String,
    /// The sentence.
    pub note: String,
    /// Which API listed it: `events.k8s.io/v1` or `v1` (one Event shows in both).
    pub api: &'static str,
}

/// Every Event in `namespace`, from both `events.k8s.io/v1` and core `v1` (the same Event
/// shows in both: count with [`count_events`]).
pub async fn events(sim: &SimCluster, namespace: &str) -> Vec<SeenEvent> {
    let client = sim.client().expect("admin client");
    let mut seen = Vec::new();
    let new: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    for e in new
        .list(&Default::default())
        .await
        .expect("listing events.k8s.io")
        .items
    {
        seen.push(SeenEvent {
            regarding: e
                .regarding
                .map(|r| {
                    format!(
                        "{}/{}",
                        r.kind.unwrap_or_default(),
                        r.name.unwrap_or_default()
                    )
                })
                .unwrap_or_default(),
            type_: e.type_.unwrap_or_default(),
            reason: e.reason.unwrap_or_default(),
            note: e.note.unwrap_or_default(),
            api: "events.k8s.io/v1",
        });
    }
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, namespace);
    for e in core
        .list(&Default::default())
        .await
        .expect("listing core events")
        .items
    {
        seen.push(SeenEvent {
            regarding: format!(
                "{}/{}",
                e.involved_object.kind.unwrap_or_default(),
                e.involved_object.name.unwrap_or_default()
            ),
            type_: e.type_.unwrap_or_default(),
            reason: e.reason.unwrap_or_default(),
            note: e.message.unwrap_or_default(),
            api: "v1",
        });
    }
    seen
}

/// How many Events with `reason` there are (as `events.k8s.io/v1` lists them).
pub fn count_events(events: &[SeenEvent], reason: &str) -> usize {
    events
        .iter()
        .filter(|e| e.api == "events.k8s.io/v1" && e.reason == reason)
        .count()
}

/// How many `operator init` commands the exec transport ran in `namespace` (reading
/// `sys/init` is not one).
pub fn init_commands(sim: &SimCluster, namespace: &str) -> usize {
    sim.exec_audit()
        .iter()
        .filter(|r| r.pod.namespace == namespace)
        .filter(|r| {
            r.argv
                .windows(2)
                .any(|w| w[0] == "operator" && w[1] == "init")
        })
        .count()
}

/// Fails when any secret appears in an exec command line, in an Event, or in `logs`.
pub async fn assert_no_secret_leaked(
    sim: &SimCluster,
    namespace: &str,
    secrets: &[String],
    logs: &str,
) {
    assert!(!secrets.is_empty(), "nothing to look for");
    let audit = sim.exec_audit();
    let events = events(sim, namespace).await;
    for secret in secrets {
        for record in &audit {
            assert!(
                !record.argv.iter().any(|a| a.contains(secret.as_str())),
                "a secret reached an exec command line in pod {:?}",
                record.pod
            );
        }
        for event in &events {
            assert!(
                !event.note.contains(secret.as_str()) && !event.reason.contains(secret.as_str()),
                "a secret reached an Event ({} on {})",
                event.reason,
                event.regarding
            );
        }
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the operator's log"
        );
    }
}

/// Everything the operator logged in this test process (every test of one binary shares
/// it), kept to scan for secrets; also copied to stderr for a failing test's output.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// The text logged so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the process' log subscriber (debug for the operator, as verbose as anyone
/// would run it) writing into a capture; returns the same capture on every call.
pub fn capture_logs() -> LogCapture {
    static CAPTURE: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = LogCapture::default();
            let writer = capture.clone();
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "info,vaultkeeper=debug,vaultkeeper_vault=debug",
                ))
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .try_init();
            capture
        })
        .clone()
}

/// One look at a cluster during a disruptive operation.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Since the sampler started.
    pub at: Duration,
    /// Pods whose `sys/health` answered unsealed (active or standby), measured directly.
    pub unsealed: Vec<String>,
    /// The pod whose `sys/health` answered active, if any.
    pub active: Option<String>,
    /// The raft voters the operator last reported (`status.raft.voters`).
    pub voters: Vec<String>,
    /// The StatefulSet's `spec.replicas`.
    pub statefulset_replicas: Option<i32>,
    /// Pods that exist (any phase), by name.
    pub pods: Vec<String>,
}

impl Sample {
    /// Whether the unsealed pods that are voters are a majority of the voters: raft can
    /// commit. With no voters known yet there is nothing to judge.
    pub fn has_quorum(&self) -> bool {
        if self.voters.is_empty() {
            return true;
        }
        let live = self
            .voters
            .iter()
            .filter(|v| self.unsealed.contains(v))
            .count();
        live > self.voters.len() / 2
    }
}

/// Samples a cluster until stopped: each pod's `sys/health` over its IP (curl, no token),
/// the operator's reported voters and the StatefulSet's replicas.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Starts sampling the cluster `name` in `namespace` every `every`.
    pub fn start(sim: &SimCluster, namespace: &str, name: &str, every: Duration) -> Sampler {
        let client = sim.client().expect("admin client");
        let (stop, stopped) = watch::channel(false);
        let namespace = namespace.to_owned();
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let pods: Api<k8s_openapi::api::core::v1::Pod> =
                Api::namespaced(client.clone(), &namespace);
            let clusters: Api<VaultCluster> = Api::namespaced(client.clone(), &namespace);
            let statefulsets: Api<k8s_openapi::api::apps::v1::StatefulSet> =
                Api::namespaced(client, &namespace);
            let mut samples = Vec::new();
            while !*stopped.borrow() {
                let listed = pods
                    .list(&ListParams::default().labels(&format!(
                        "app.kubernetes.io/instance={name},component=server"
                    )))
                    .await
                    .map(|l| l.items)
                    .unwrap_or_default();
                let mut probes = Vec::new();
                for pod in &listed {
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
                    probes.push(async move {
                        let Some(ip) = ip else {
                            return (pod_name, None);
                        };
                        let out = tokio::process::Command::new("curl")
                            .args([
                                "-sk",
                                "--max-time",
                                "2",
                                &format!("https://{ip}:8200/v1/sys/health?standbyok=true&perfstandbyok=true&sealedcode=200&uninitcode=200"),
                            ])
                            .output()
                            .await
                            .ok()
                            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok());
                        (pod_name, out)
                    });
                }
                let health = futures_join_all(probes).await;
                let mut unsealed = Vec::new();
                let mut active = None;
                for (pod, h) in health {
                    let Some(h) = h else { continue };
                    if h["initialized"] == true && h["sealed"] == false {
                        if h["standby"] == false {
                            active = Some(pod.clone());
                        }
                        unsealed.push(pod);
                    }
                }
                let voters = clusters
                    .get(&name)
                    .await
                    .ok()
                    .and_then(|vc| vc.status)
                    .and_then(|s| s.raft)
                    .map(|r| r.voters)
                    .unwrap_or_default();
                let statefulset_replicas = statefulsets
                    .get_opt(&name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|s| s.spec)
                    .and_then(|s| s.replicas);
                samples.push(Sample {
                    at: started.elapsed(),
                    unsealed,
                    active,
                    voters,
                    statefulset_replicas,
                    pods: listed
                        .iter()
                        .filter_map(|p| p.metadata.name.clone())
                        .collect(),
                });
                tokio::time::sleep(every).await;
            }
            samples
        });
        Sampler { stop, task }
    }

    /// Stops and returns every sample.
    pub async fn finish(self) -> Vec<Sample> {
        let _ = self.stop.send(true);
        self.task.await.expect("the sampler ran")
    }
}

/// Runs futures concurrently, each as its own task.
async fn futures_join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for h in handles {
        if let Ok(out) = h.await {
            outputs.push(out);
        }
    }
    outputs
}

/// Patches the VaultCluster's spec as a user would (`kubectl patch --type merge`).
pub async fn patch_spec(sim: &SimCluster, namespace: &str, name: &str, spec: serde_json::Value) {
    let api: Api<VaultCluster> = Api::namespaced(sim.client().expect("admin client"), namespace);
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({ "spec": spec })),
    )
    .await
    .expect("the spec patch is accepted");
}

/// Keeps every running pod's hosts file naming every pod of the namespace, as cluster DNS
/// would. The simulated kubelet writes a pod's hosts file once, at the pod's start, with
/// the StatefulSet ordinals that existed then; after a scale-up the older pods could not
/// resolve the new ones, which no real cluster does. Until the kubelet updates them
/// itself, scale tests run this next to the cluster. Rewrites in place (same inode), so the
/// bind-mounted file inside each pod sees the change.
pub struct DnsRefresher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DnsRefresher {
    /// Starts refreshing `namespace`'s pods every second.
    pub fn start(sim: &SimCluster, namespace: &str) -> DnsRefresher {
        let client = sim.client().expect("admin client");
        let root = sim.state_dir().join("pods").join("pods");
        let namespace = namespace.to_owned();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, &namespace);
            while !*stopped.borrow() {
                let listed = pods
                    .list(&ListParams::default())
                    .await
                    .map(|l| l.items)
                    .unwrap_or_default();
                let entries: Vec<(String, String, String)> = listed
                    .iter()
                    .filter_map(|p| {
                        let ip = p.status.as_ref()?.pod_ip.clone()?;
                        let subdomain = p.spec.as_ref()?.subdomain.clone()?;
                        Some((p.metadata.name.clone()?, subdomain, ip))
                    })
                    .collect();
                let dirs = std::fs::read_dir(&root)
                    .map(|d| d.flatten().collect::<Vec<_>>())
                    .unwrap_or_default();
                for dir in dirs {
                    let name = dir.file_name().to_string_lossy().into_owned();
                    if !name.starts_with(&format!("{namespace}_")) {
                        continue;
                    }
                    let hosts = dir.path().join("hosts");
                    let Ok(text) = std::fs::read_to_string(&hosts) else {
                        continue;
                    };
                    let mut added = String::new();
                    for (pod, subdomain, ip) in &entries {
                        let short = format!("{pod}.{subdomain}");
                        if text
                            .lines()
                            .any(|l| l.split_whitespace().any(|n| n == short))
                        {
                            continue;
                        }
                        added.push_str(&format!(
                            "{ip}\t{short}.{namespace}.svc.cluster.local\t{short}.{namespace}.svc\t{short}.{namespace}\t{short}\n"
                        ));
                    }
                    if !added.is_empty() {
                        let _ = std::fs::write(&hosts, format!("{text}{added}"));
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        DnsRefresher { stop, task }
    }

    /// Stops refreshing.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
