//! `vaultkeeper sandbox`: the whole product on one machine, with nothing to install.
//!
//! It starts the simulated cluster (a real HTTPS Kubernetes API server and a kubelet that
//! runs every pod as a real process), installs the CRD and the operator's RBAC exactly as
//! `deploy/` does, runs the operator in this process as its ServiceAccount (so RBAC is
//! enforced on every request it makes), applies a VaultCluster, and reports progress until
//! the cluster is Ready. It then keeps running, so a person can use `kubectl` against it,
//! until Ctrl-C.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use secrecy::ExposeSecret;
use tokio::sync::watch;
use vaultkeeper_api::{Phase, VaultCluster, parse_manifests};
use vaultkeeper_sim::kubelet::KubeletConfig;
use vaultkeeper_sim::{SimCluster, SimConfig};
use vaultkeeper_vault::lifecycle::FileJwt;

mod install;
mod state;

use install::{apply_cluster, install};
use state::{init_file_logging, prepare_state_dir, write_private};

use crate::CliError;
use crate::controller::{self, Context, Settings};
use crate::http::{self, Health};
use crate::metrics::Metrics;

/// The examples that run with nothing else installed (the others need an S3 bucket, a
/// transit Vault or cert-manager).
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "openbao",
        include_str!("../../../../../examples/openbao.yaml"),
    ),
    (
        "ha-raft",
        include_str!("../../../../../examples/ha-raft.yaml"),
    ),
    (
        "minimal",
        include_str!("../../../../../examples/minimal.yaml"),
    ),
];

/// Namespace and ServiceAccount `deploy/` installs the operator as.
const OPERATOR_NAMESPACE: &str = "vaultkeeper-system";
const OPERATOR_SERVICE_ACCOUNT: &str = "vaultkeeper";
/// The ClusterRole `deploy/rbac/vault-server-clusterrole.yaml` creates.
const SERVER_CLUSTER_ROLE: &str = "vaultkeeper-vault-server";
/// Field manager for what the sandbox applies as the cluster's administrator.
const INSTALLER: &str = "vaultkeeper-sandbox";
/// The operator's API token lives an hour and its Vault-login token ten minutes; both
/// files are renewed well before either expires (the Kubernetes client re-reads its file
/// every minute, the Vault login reads its file at every login).
const TOKEN_RENEWAL: Duration = Duration::from_secs(4 * 60);

/// Arguments of `vaultkeeper sandbox`.
#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    /// The built-in example to apply: `openbao` (the OpenBao flavor, whose pods carry the
    /// labels its Services select), `ha-raft` or `minimal`.
    #[arg(long, default_value = "openbao", conflicts_with = "file")]
    pub example: String,
    /// Apply this VaultCluster manifest instead of a built-in example.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Where the kubeconfig, the pods' data and the operator's log go. Emptied at start
    /// when a previous sandbox left it; refused when it holds anything else.
    #[arg(long, default_value = ".sandbox")]
    pub state_dir: PathBuf,
    /// The OpenBao binary every Vault and OpenBao pod runs (scripts/install-tools.sh
    /// installs it into .tools/bin/bao).
    #[arg(long, env = "VAULTKEEPER_BAO", default_value = ".tools/bin/bao")]
    pub bao: PathBuf,
    /// Loopback address of the simulated API server; Services and pods get addresses
    /// next to it (127.20.X.100+ and 127.21.X.10+ for 127.20.X.1).
    #[arg(long, default_value = "127.20.250.1")]
    pub api_address: Ipv4Addr,
    /// Port of the operator's /metrics, /healthz and /readyz (on the API address).
    #[arg(long, default_value_t = 8080)]
    pub metrics_port: u16,
    /// How long to wait for the cluster to become Ready before giving up (exit 1).
    #[arg(long, default_value_t = 600)]
    pub ready_timeout_seconds: u64,
    /// Stop (cleanly) as soon as the cluster is Ready instead of running until Ctrl-C.
    #[arg(long)]
    pub exit_when_ready: bool,
    /// The operator's log filter (its log goes to `<state-dir>/operator.log`).
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

/// Runs the sandbox until the cluster is Ready (with `--exit-when-ready`) or until Ctrl-C.
/// Logging is set up here (to the state directory), so call it before anything logs.
pub async fn run(args: SandboxArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let (manifest_name, manifest) = manifest(&args)?;
    let mut cluster = parse_manifests(&manifest)
        .map_err(|e| CliError::Input(format!("{manifest_name}: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Input(format!("{manifest_name} holds no VaultCluster")))?;
    if let Err(e) = vaultkeeper_api::validate(&cluster) {
        return Err(CliError::Input(format!("{manifest_name}: {e}")));
    }
    if cluster.metadata.namespace.is_none() {
        cluster.metadata.namespace = Some("default".to_owned());
    }

    if !running_as_root() {
        return Err(CliError::Input(
            "the sandbox runs every pod as a real process in its own mount namespace, which \
             needs root: run it as root (for example with sudo)"
                .into(),
        ));
    }
    let bao = args.bao.canonicalize().map_err(|_| {
        CliError::Input(format!(
            "--bao: no OpenBao binary at {}: run scripts/install-tools.sh, or point \
             --bao (VAULTKEEPER_BAO) at one",
            args.bao.display()
        ))
    })?;
    let vaultkeeper = std::env::current_exe()
        .map_err(|e| CliError::Internal(format!("cannot find this program's own binary: {e}")))?;
    let state_dir = prepare_state_dir(&args.state_dir)?;
    let log_path = state_dir.join("operator.log");
    init_file_logging(&log_path, &args.log_level)?;

    let say = |message: &str| {
        println!("[{:>6.1}s] {message}", started.elapsed().as_secs_f64());
    };

    let mut config = SimConfig {
        api_address: args.api_address,
        service_ip_start: with_last(args.api_address, 100),
        pod_ip_start: next_block(args.api_address),
        state_dir: Some(state_dir.clone()),
        ..SimConfig::default()
    };
    config.pods = Some(KubeletConfig {
        extra_images: Vec::new(),
        bao,
        vaultkeeper: Some((
            image_repository(vaultkeeper_render::DEFAULT_OPERATOR_IMAGE).to_owned(),
            vaultkeeper,
        )),
        backoff: None,
    });
    let sim = SimCluster::start(config).await.map_err(|e| {
        CliError::Internal(format!(
            "the simulated cluster did not start on {}: {e} (another sandbox running? \
             choose another --api-address)",
            args.api_address
        ))
    })?;
    say(&format!("simulated Kubernetes API server at {}", sim.url()));

    let outcome = drive(&args, &sim, &state_dir, cluster, &manifest_name, &say).await;
    if outcome.is_err() {
        say(&format!(
            "stopping; the operator's log is {}",
            log_path.display()
        ));
    }
    sim.shutdown().await;
    say("stopped; every pod is stopped, the state is kept for inspection");
    outcome
}

async fn drive(
    args: &SandboxArgs,
    sim: &SimCluster,
    state_dir: &Path,
    cluster: VaultCluster,
    manifest_name: &str,
    say: &impl Fn(&str),
) -> Result<(), CliError> {
    let admin = sim
        .client()
        .map_err(|e| CliError::Internal(format!("simulated cluster: {e}")))?;
    // The default, namespaced install: the operator manages the one namespace it is given.
    let watched = cluster
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    install(&admin, &watched).await?;
    say(&format!(
        "installed the CRDs and the operator's RBAC (namespace {OPERATOR_NAMESPACE}, managing namespace {watched})"
    ));

    // The operator, as its ServiceAccount: its tokens live in files, renewed in the
    // background, exactly as projected service-account tokens in a pod. The API token and
    // the Vault-login token are separate, as in the Deployment: only the second, which the
    // API server refuses, is ever sent to a Vault pod.
    let token_file = state_dir.join("operator-token");
    let login_token_file = state_dir.join("operator-vault-login-token");
    let issuer = TokenIssuer::new(sim);
    issuer.write(&token_file, &login_token_file)?;
    let client = service_account_client(sim, &token_file).await?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new(metrics.clone()));
    health
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (stop, stopped) = watch::channel(false);
    let metrics_address = SocketAddr::from((args.api_address, args.metrics_port));
    let server = http::serve(metrics_address, health, stopped.clone())
        .await
        .map_err(|e| {
            CliError::Input(format!(
                "--metrics-port: cannot listen on {metrics_address}: {e}"
            ))
        })?;
    let settings = Settings {
        operator_image: vaultkeeper_render::DEFAULT_OPERATOR_IMAGE.to_owned(),
        operator_namespace: OPERATOR_NAMESPACE.to_owned(),
        operator_service_account: OPERATOR_SERVICE_ACCOUNT.to_owned(),
        jwt: Arc::new(FileJwt(login_token_file.clone())),
        kubernetes_host: sim.url(),
        kubernetes_ca: Some(sim.ca_pem().to_owned()),
        instance: "sandbox".to_owned(),
        resync: Duration::from_secs(60),
        converging_requeue: Duration::from_secs(2),
        server_cluster_role: Some(SERVER_CLUSTER_ROLE.to_owned()),
        image_policy: Default::default(),
        escrow_secret_namespaces: Vec::new(),
    };
    let ctx = Arc::new(Context::new(client, settings, metrics));
    let mut config_stopped = stopped.clone();
    let config = tokio::spawn(crate::config::run(
        crate::config::ConfigContext::new(ctx.clone()),
        Some(watched.clone()),
        async move {
            let _ = config_stopped.wait_for(|s| *s).await;
        },
    ));
    let mut controller_stopped = stopped.clone();
    let operator = tokio::spawn(controller::run(ctx, Some(watched), async move {
        let _ = controller_stopped.wait_for(|s| *s).await;
    }));
    let mut renewal_stopped = stopped.clone();
    let renewal = {
        let token_file = token_file.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(TOKEN_RENEWAL) => {}
                    _ = renewal_stopped.wait_for(|s| *s) => return,
                }
                if let Err(e) = issuer.write(&token_file, &login_token_file) {
                    tracing::error!(error = %e, "renewing the operator's token failed");
                }
            }
        })
    };
    say(&format!(
        "operator running as ServiceAccount {OPERATOR_NAMESPACE}/{OPERATOR_SERVICE_ACCOUNT}; \
         metrics at http://{metrics_address}/metrics"
    ));

    let result = async {
        let namespace = cluster.metadata.namespace.clone().unwrap_or_default();
        let name = cluster.metadata.name.clone().unwrap_or_default();
        apply_cluster(&admin, &cluster).await?;
        say(&format!(
            "applied VaultCluster {namespace}/{name} from {manifest_name}"
        ));
        wait_ready(
            &admin,
            &namespace,
            &name,
            Duration::from_secs(args.ready_timeout_seconds),
            say,
        )
        .await?;
        println!("{}", hints(sim.kubeconfig_path(), &namespace, &name));
        if args.exit_when_ready {
            return Ok(());
        }
        println!("Press Ctrl-C to stop.");
        termination().await;
        say("stopping the operator, then every pod (OpenBao shuts down cleanly)");
        Ok(())
    }
    .await;

    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(20), operator).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), config).await;
    renewal.abort();
    server.abort();
    result
}

/// Issues the operator's service-account tokens: one for the Kubernetes API, one whose
/// only audience is Vault logins (it owns what it needs from the cluster, so the renewal
/// task does not borrow it).
struct TokenIssuer {
    api: vaultkeeper_sim::TokenRequester,
    vault_login: vaultkeeper_sim::TokenRequester,
}

impl TokenIssuer {
    fn new(sim: &SimCluster) -> Self {
        use vaultkeeper_api::login::{VAULT_LOGIN_AUDIENCE, VAULT_LOGIN_TOKEN_SECONDS};
        let seconds = |s: i64| Duration::from_secs(s.unsigned_abs());
        TokenIssuer {
            api: sim.token_requester(
                OPERATOR_NAMESPACE,
                OPERATOR_SERVICE_ACCOUNT,
                &[],
                seconds(vaultkeeper_sim::auth::DEFAULT_TOKEN_SECONDS),
            ),
            vault_login: sim.token_requester(
                OPERATOR_NAMESPACE,
                OPERATOR_SERVICE_ACCOUNT,
                &[VAULT_LOGIN_AUDIENCE],
                seconds(VAULT_LOGIN_TOKEN_SECONDS),
            ),
        }
    }

    /// Writes a fresh API token to `api_file` and a fresh Vault-login token to
    /// `vault_login_file`.
    fn write(&self, api_file: &Path, vault_login_file: &Path) -> Result<(), CliError> {
        for (requester, path) in [(&self.api, api_file), (&self.vault_login, vault_login_file)] {
            let token = requester
                .issue()
                .map_err(|e| CliError::Internal(format!("issuing the operator's token: {e}")))?;
            write_private(path, token.expose_secret().as_bytes())?;
        }
        Ok(())
    }
}

/// A client that authenticates with the token in `token_file`, re-read as it changes.
async fn service_account_client(
    sim: &SimCluster,
    token_file: &Path,
) -> Result<kube::Client, CliError> {
    let failed = |e: &dyn std::fmt::Display| {
        CliError::Internal(format!(
            "cannot build the operator's Kubernetes client: {e}"
        ))
    };
    let kubeconfig = Kubeconfig::read_from(sim.kubeconfig_path()).map_err(|e| failed(&e))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| failed(&e))?;
    config.auth_info = kube::config::AuthInfo {
        token_file: Some(token_file.display().to_string()),
        ..Default::default()
    };
    kube::Client::try_from(config).map_err(|e| failed(&e))
}

/// The manifest to apply and a name for it in messages.
fn manifest(args: &SandboxArgs) -> Result<(String, String), CliError> {
    if let Some(file) = &args.file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| CliError::Input(format!("--file: cannot read {}: {e}", file.display())))?;
        return Ok((file.display().to_string(), text));
    }
    EXAMPLES
        .iter()
        .find(|(name, _)| *name == args.example)
        .map(|(name, text)| (format!("examples/{name}.yaml"), (*text).to_owned()))
        .ok_or_else(|| {
            let known: Vec<&str> = EXAMPLES.iter().map(|(n, _)| *n).collect();
            CliError::Input(format!(
                "--example: no built-in example {:?}; choose one of {}, or pass a \
                 manifest with --file",
                args.example,
                known.join(", ")
            ))
        })
}

/// Reports every change of phase and of the counts until Ready for the current
/// generation; an error when it takes longer than `timeout` or the spec is refused.
async fn wait_ready(
    admin: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    say: &impl Fn(&str),
) -> Result<(), CliError> {
    let api: Api<VaultCluster> = Api::namespaced(admin.clone(), namespace);
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        if let Ok(vc) = api.get(name).await {
            let line = progress_line(&vc);
            if line != last {
                say(&format!("{name}: {line}"));
                last = line;
            }
            if is_ready(&vc) {
                return Ok(());
            }
            if let Some(message) = spec_invalid(&vc) {
                return Err(CliError::Input(format!(
                    "VaultCluster {namespace}/{name} is invalid: {message}"
                )));
            }
        }
        if Instant::now() > deadline {
            return Err(CliError::Internal(format!(
                "VaultCluster {namespace}/{name} was not Ready after {}s (last: {last}); \
                 see the operator's log and `kubectl describe vaultcluster {name} -n {namespace}`",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What `kubectl get vc` would show, on one line.
fn progress_line(vc: &VaultCluster) -> String {
    let Some(status) = &vc.status else {
        return "waiting for the operator".to_owned();
    };
    let phase = status
        .phase
        .as_ref()
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "-".to_owned());
    let mut line = format!(
        "phase {phase}, {}/{} ready, {} sealed",
        status.ready_replicas, status.replicas, status.sealed_replicas
    );
    if let Some(active) = &status.active_pod {
        let _ = write!(line, ", active {active}");
    }
    if let Some(version) = &status.version {
        let _ = write!(line, ", version {version}");
    }
    if let Some(reason) = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status != "True")
        .map(|c| c.reason.clone())
        .filter(|r| !r.is_empty())
    {
        let _ = write!(line, " ({reason})");
    }
    line
}

/// Ready for the generation the user applied, as `kubectl wait --for=condition=Ready`
/// and kstatus read it.
fn is_ready(vc: &VaultCluster) -> bool {
    vc.status.as_ref().is_some_and(|s| {
        s.phase == Some(Phase::Ready)
            && s.observed_generation == vc.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// The operator's refusal of the spec, if any.
fn spec_invalid(vc: &VaultCluster) -> Option<String> {
    let status = vc.status.as_ref()?;
    if status.observed_generation != vc.metadata.generation {
        return None;
    }
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "SpecValid" && c.status == "False")
        .map(|c| c.message.clone())
}

/// What to try next, with the exact commands.
fn hints(kubeconfig: &Path, namespace: &str, name: &str) -> String {
    format!(
        "\nThe cluster is Ready. In another terminal:\n\n  \
         export KUBECONFIG={kubeconfig}\n  \
         kubectl get vaultclusters -n {namespace}          # Ready, sealed, active, version\n  \
         kubectl describe vaultcluster {name} -n {namespace}   # conditions, nodes, raft, events\n  \
         kubectl get pods -n {namespace} --show-labels\n  \
         kubectl delete pod {name}-1 -n {namespace}          # watch it come back unsealed\n  \
         kubectl patch vaultcluster {name} -n {namespace} --type merge -p '{{\"spec\":{{\"replicas\":5}}}}'\n  \
         kubectl get events -n {namespace} --sort-by=.lastTimestamp\n  \
         kubectl get secret -n {namespace} -l vaultkeeper.io/keys   # where the keys are kept\n",
        kubeconfig = kubeconfig.display(),
    )
}

/// The image name without its tag (the kubelet maps repositories to binaries).
fn image_repository(image: &str) -> &str {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => image,
    }
}

/// `address` with its last octet replaced.
fn with_last(address: Ipv4Addr, last: u8) -> Ipv4Addr {
    let [a, b, c, _] = address.octets();
    Ipv4Addr::new(a, b, c, last)
}

/// Pods get addresses in the next /16 (127.21.X.10+ for an API server on 127.20.X.1).
fn next_block(address: Ipv4Addr) -> Ipv4Addr {
    let [a, b, c, _] = address.octets();
    Ipv4Addr::new(a, b.wrapping_add(1), c, 10)
}

/// Whether this process runs as root (effective user id 0), read from /proc.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn termination() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_parses_and_validates() {
        for (name, text) in EXAMPLES {
            let clusters = parse_manifests(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(clusters.len(), 1, "{name}");
            vaultkeeper_api::validate(&clusters[0]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn image_repository_drops_only_the_tag() {
        assert_eq!(
            image_repository("ghcr.io/vaultkeeper/vaultkeeper:0.1.0"),
            "ghcr.io/vaultkeeper/vaultkeeper"
        );
        assert_eq!(image_repository("localhost:5000/vk"), "localhost:5000/vk");
        assert_eq!(image_repository("vk"), "vk");
    }

    #[test]
    fn addresses_follow_the_api_server() {
        let api = Ipv4Addr::new(127, 20, 250, 1);
        assert_eq!(with_last(api, 100), Ipv4Addr::new(127, 20, 250, 100));
        assert_eq!(next_block(api), Ipv4Addr::new(127, 21, 250, 10));
    }

    #[test]
    fn a_foreign_state_directory_is_refused_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
        let err = prepare_state_dir(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("--state-dir"), "{err}");
        assert!(dir.path().join("notes.txt").exists());
    }

    #[test]
    fn a_previous_sandbox_directory_is_emptied() {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare_state_dir(dir.path()).expect("fresh");
        std::fs::create_dir_all(dir.path().join("pods/a")).expect("mkdir");
        std::fs::write(dir.path().join("pods/a/data"), "old").expect("write");
        prepare_state_dir(dir.path()).expect("reused");
        assert!(!dir.path().join("pods").exists());
        assert!(dir.path().join(state::MARKER).exists());
    }

    #[test]
    fn an_unknown_example_names_the_known_ones() {
        let args = SandboxArgs {
            example: "nope".into(),
            file: None,
            state_dir: ".sandbox".into(),
            bao: ".tools/bin/bao".into(),
            api_address: Ipv4Addr::LOCALHOST,
            metrics_port: 8080,
            ready_timeout_seconds: 1,
            exit_when_ready: true,
            log_level: "info".into(),
        };
        let err = manifest(&args).expect_err("unknown");
        let text = err.to_string();
        assert!(
            text.contains("--example") && text.contains("openbao"),
            "{text}"
        );
    }
}
