//! Running the real operator in process against a simulated cluster with real OpenBao
//! pods: the cluster, the operator's installation (its RBAC from `deploy/`, enforced), the
//! operator itself as a task that can be stopped and started again like a crashed pod,
//! and waiting for what `kubectl get vc` would show.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vaultkeeper::controller::{self, Context, Hooks, NoHooks, Settings};
use vaultkeeper::metrics::Metrics;
use vaultkeeper_api::{VaultCluster, parse_manifests};
use vaultkeeper_sim::kubelet::KubeletConfig;
use vaultkeeper_sim::{SimCluster, SimConfig};
use vaultkeeper_vault::lifecycle::JwtSource;
use vaultkeeper_vault::secret::SecretString;

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
            ])
            .current_dir(workspace_root())
            .status()
            .expect("cargo runs");
    assert!(status.success(), "building the vaultkeeper binary failed");
    target.join("debug/vaultkeeper")
}

/// A simulated cluster whose kubelet runs real pods.
pub async fn cluster_with_pods(slot: u8) -> SimCluster {
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
    });
    SimCluster::start(config)
        .await
        .expect("the simulated cluster starts")
}

/// The operator's service-account token, as the projected token file would hold it.
struct SimJwt(String);

#[async_trait]
impl JwtSource for SimJwt {
    async fn jwt(&self) -> vaultkeeper_vault::Result<SecretString> {
        Ok(SecretString::new(self.0.clone()))
    }
}

/// The operator as a task: stop it (a graceful shutdown), abort it (a crash), start it
/// again.
pub struct Operator {
    client: kube::Client,
    settings: Settings,
    /// The operator's metrics (fresh after every start).
    pub metrics: Arc<Metrics>,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl Operator {
    /// Settings for an operator installed by `deploy/` in `sim`.
    pub fn settings(sim: &SimCluster, hooks: Arc<dyn Hooks>) -> Settings {
        let jwt = sim
            .service_account_token(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)
            .expect("the operator's ServiceAccount exists");
        Settings {
            operator_image: "ghcr.io/vaultkeeper/vaultkeeper:e2e".into(),
            operator_namespace: OPERATOR_NAMESPACE.into(),
            operator_service_account: OPERATOR_SERVICE_ACCOUNT.into(),
            jwt: Arc::new(SimJwt(jwt.expose().to_owned())),
            kubernetes_host: sim.url(),
            kubernetes_ca: Some(sim.ca_pem().to_owned()),
            instance: "e2e".into(),
            resync: Duration::from_secs(3),
            converging_requeue: Duration::from_secs(2),
            hooks,
        }
    }

    /// Installs the operator's RBAC from `deploy/` and starts it as its ServiceAccount.
    pub async fn install_and_start(sim: &SimCluster) -> Operator {
        Self::install_and_start_with(sim, Arc::new(NoHooks)).await
    }

    /// The same, with fault-injection hooks.
    pub async fn install_and_start_with(sim: &SimCluster, hooks: Arc<dyn Hooks>) -> Operator {
        let client = install::install_operator_rbac(sim)
            .await
            .expect("the operator's manifests install");
        let mut operator = Operator {
            client,
            settings: Self::settings(sim, hooks),
            metrics: Arc::new(Metrics::new()),
            stop: None,
            task: None,
        };
        operator.start();
        operator
    }

    /// Starts (again) with fresh memory, as a new operator pod would.
    pub fn start(&mut self) {
        let (stop, mut stopped) = watch::channel(false);
        self.metrics = Arc::new(Metrics::new());
        let ctx = Arc::new(Context::new(
            self.client.clone(),
            self.settings.clone(),
            self.metrics.clone(),
        ));
        self.task = Some(tokio::spawn(controller::run(ctx, None, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
        self.stop = Some(stop);
    }

    /// Replaces the hooks for the next start.
    pub fn set_hooks(&mut self, hooks: Arc<dyn Hooks>) {
        self.settings.hooks = hooks;
    }

    /// Kills the operator where it stands (no cleanup), like a crashed pod.
    pub fn crash(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.stop = None;
    }

    /// Stops gracefully.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.crash();
    }
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
