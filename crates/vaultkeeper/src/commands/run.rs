//! `vaultkeeper run`: the operator process. Configuration comes from flags or the
//! environment the Helm chart and the kustomize base set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};
use vaultkeeper_vault::lifecycle::FileJwt;

use crate::CliError;
use crate::controller::{self, Context, Settings};
use crate::http::{self, Health};
use crate::image_policy::ImagePolicy;
use crate::leader::{LeaderElector, Leadership, LeaseTimings};
use crate::metrics::Metrics;

/// Arguments of `vaultkeeper run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Watch only this namespace (repeat for several). Default: every namespace.
    #[arg(long = "namespace")]
    pub namespaces: Vec<String>,
    /// Address of the /metrics, /healthz and /readyz endpoints (also
    /// `--metrics-bind-address`). The default listens on every address of the pod, as the
    /// kubelet's probes and Prometheus need; give e.g. `127.0.0.1:8080` when a sidecar
    /// proxy serves them. Slow or oversized clients are dropped (see `docs/operations.md`).
    #[arg(
        long,
        visible_alias = "metrics-bind-address",
        env = "VAULTKEEPER_LISTEN_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub listen_address: SocketAddr,
    /// Log filter, e.g. `info` or `vaultkeeper=debug,kube=info`.
    #[arg(long, env = "VAULTKEEPER_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: `json` (one object per line) or `text`.
    #[arg(long, env = "VAULTKEEPER_LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
    /// Name of the leader-election Lease.
    #[arg(long, env = "VAULTKEEPER_LEASE_NAME", default_value = "vaultkeeper")]
    pub lease_name: String,
    /// This replica's name (the pod name), used as the Lease holder identity.
    #[arg(long, env = "VAULTKEEPER_POD_NAME", default_value = "vaultkeeper")]
    pub pod_name: String,
    /// The operator's namespace (where its Lease and ServiceAccount are).
    #[arg(
        long,
        env = "VAULTKEEPER_POD_NAMESPACE",
        default_value = "vaultkeeper-system"
    )]
    pub pod_namespace: String,
    /// The operator's ServiceAccount, whose Kubernetes-auth login Vault accepts once the
    /// root token is revoked.
    #[arg(
        long,
        env = "VAULTKEEPER_SERVICE_ACCOUNT",
        default_value = "vaultkeeper"
    )]
    pub service_account: String,
    /// The token the operator logs in to Vault with: a projected service-account token
    /// whose only audience is Vault logins, rotated by the kubelet and read again at every
    /// login. Never the pod's API token, which would give whoever runs a Vault image the
    /// operator's Kubernetes rights.
    #[arg(
        long,
        env = "VAULTKEEPER_VAULT_LOGIN_TOKEN_FILE",
        default_value = vaultkeeper_api::login::VAULT_LOGIN_TOKEN_FILE
    )]
    pub vault_login_token_file: PathBuf,
    /// The pre-created ClusterRole (pods get/list/watch/update/patch) that Vault's
    /// Kubernetes service registration is bound to in each cluster's namespace; the
    /// operator may bind it (`bind`, limited to this name) but does not hold its rights.
    /// Empty: render a Role instead, which needs those pod rights in the operator's own
    /// RBAC (not granted by `deploy/` or the chart).
    #[arg(
        long,
        env = "VAULTKEEPER_VAULT_SERVER_CLUSTER_ROLE",
        default_value = "vaultkeeper-vault-server"
    )]
    pub vault_server_cluster_role: String,
    /// An image VaultClusters may run (repeat, or separate with commas): a repository
    /// (`docker.io/hashicorp/vault`, any tag or digest) or a prefix ending in `/`
    /// (`registry.example.com/vault/`). Unset: every image. A VaultCluster asking for
    /// another gets `SpecValid: False` naming `spec.image`, and no pod.
    #[arg(
        long = "allowed-image",
        env = "VAULTKEEPER_ALLOWED_IMAGES",
        value_delimiter = ','
    )]
    pub allowed_images: Vec<String>,
    /// Run only images pinned by digest (`…@sha256:…`).
    #[arg(long, env = "VAULTKEEPER_REQUIRE_IMAGE_DIGEST")]
    pub require_image_digest: bool,
    /// A namespace where VaultClusters of other namespaces may have their escrow copy
    /// written (`spec.keys.escrow.secret`; repeat, or separate with commas; `*`: any the
    /// operator's RBAC reaches). Unset: only a cluster's own namespace.
    #[arg(
        long = "escrow-secret-namespace",
        env = "VAULTKEEPER_ESCROW_SECRET_NAMESPACES",
        value_delimiter = ','
    )]
    pub escrow_secret_namespaces: Vec<String>,
    /// The vaultkeeper image the backup and metrics-token CronJobs run. Default: the
    /// operator pod's own image (read from its Pod), so an image change in the Deployment
    /// or a kustomize overlay carries over to the jobs.
    #[arg(long, env = "VAULTKEEPER_IMAGE")]
    pub image: Option<String>,
    /// The API server URL Vault's Kubernetes auth method sends TokenReviews to.
    #[arg(
        long,
        env = "VAULTKEEPER_VAULT_KUBERNETES_HOST",
        default_value = "https://kubernetes.default.svc:443"
    )]
    pub vault_kubernetes_host: String,
    /// Reconcile without electing a leader (one replica only, e.g. on a laptop).
    #[arg(long)]
    pub no_leader_election: bool,
    /// How long the leader Lease is valid without renewal, as the other replicas measure
    /// it on their own clocks. Longer than the renew deadline by at least 1 s.
    #[arg(long, env = "VAULTKEEPER_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// How long the leader keeps acting without a successful renewal; then it stops (and
    /// exits), before any other replica may take over.
    #[arg(
        long,
        env = "VAULTKEEPER_LEASE_RENEW_DEADLINE_SECONDS",
        default_value_t = 10
    )]
    pub lease_renew_deadline_seconds: u64,
    /// How often the leader renews and the others look at the Lease.
    #[arg(
        long,
        env = "VAULTKEEPER_LEASE_RETRY_PERIOD_SECONDS",
        default_value_t = 2
    )]
    pub lease_retry_period_seconds: u64,
    /// Seconds between looks at a converged cluster without any event.
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u64,
}

/// Log output format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Sets up logging once; later calls (tests) keep the first setup.
pub fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The image of this operator's own container, read from its Pod; the built-in default
/// when not running in a pod (or the Pod cannot be read).
async fn own_image(client: &kube::Client, namespace: &str, pod: &str) -> String {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), namespace);
    let image = match pods.get(pod).await {
        Ok(pod) => pod.spec.and_then(|s| {
            s.containers
                .iter()
                .find(|c| c.name == "vaultkeeper")
                .or(s.containers.first())
                .and_then(|c| c.image.clone())
        }),
        Err(e) => {
            warn!(error = %e, "cannot read this operator's own Pod; the CronJobs get the built-in image");
            None
        }
    };
    image.unwrap_or_else(|| vaultkeeper_render::DEFAULT_OPERATOR_IMAGE.to_owned())
}

/// Resolves on SIGTERM or SIGINT.
async fn termination() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = terminate => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

impl RunArgs {
    /// The election's timings, checked (the error names the flag and the fix).
    pub fn lease_timings(&self) -> Result<LeaseTimings, CliError> {
        let timings = LeaseTimings {
            duration: Duration::from_secs(self.lease_duration_seconds),
            renew_deadline: Duration::from_secs(self.lease_renew_deadline_seconds),
            retry: Duration::from_secs(self.lease_retry_period_seconds),
        };
        timings
            .validate()
            .map_err(|e| CliError::Input(e.to_string()))?;
        Ok(timings)
    }
}

/// Whatever the reason for stopping, every controller stops (and its pass in progress
/// ends) before the Lease is given up: another replica may act only once this one has.
async fn drain_then_release(
    stop: &watch::Sender<bool>,
    controllers: Vec<tokio::task::JoinHandle<()>>,
    leadership: Option<Leadership>,
) {
    let _ = stop.send(true);
    for c in controllers {
        if let Err(e) = c.await {
            warn!(error = %e, "a controller task ended abnormally");
        }
    }
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
}

/// Runs the operator until it is told to stop or loses leadership.
pub async fn run(args: RunArgs) -> Result<(), CliError> {
    init_logging(&args.log_level, args.log_format);
    let timings = args.lease_timings()?;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| CliError::Internal(format!("cannot configure the Kubernetes client: {e}")))?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new(metrics.clone()));
    let (stop, stopped) = watch::channel(false);
    let server = http::serve(args.listen_address, health.clone(), stopped.clone())
        .await
        .map_err(|e| {
            CliError::Internal(format!("cannot listen on {}: {e}", args.listen_address))
        })?;
    info!(address = %args.listen_address, "serving /metrics, /healthz and /readyz");

    match client.apiserver_version().await {
        Ok(version) => info!(version = %version.git_version, "connected to the Kubernetes API"),
        Err(e) => {
            return Err(CliError::Internal(format!(
                "the Kubernetes API does not answer: {e}"
            )));
        }
    }
    health
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);

    let signal_stop = stop.clone();
    tokio::spawn(async move {
        termination().await;
        info!("shutting down");
        let _ = signal_stop.send(true);
    });

    let mut leadership = if args.no_leader_election {
        None
    } else {
        let elector = LeaderElector::new(
            client.clone(),
            &args.pod_namespace,
            &args.lease_name,
            &args.pod_name,
            timings.clone(),
        );
        match elector.lead(stopped.clone()).await {
            Some(leadership) => Some(leadership),
            None => {
                server.abort();
                return Ok(());
            }
        }
    };
    metrics.leader.set(1);

    let operator_image = match &args.image {
        Some(image) => image.clone(),
        None => own_image(&client, &args.pod_namespace, &args.pod_name).await,
    };
    info!(image = %operator_image, "the CronJobs run this image");
    let settings = Settings {
        operator_image,
        operator_namespace: args.pod_namespace.clone(),
        operator_service_account: args.service_account.clone(),
        jwt: Arc::new(FileJwt(args.vault_login_token_file.clone())),
        kubernetes_host: args.vault_kubernetes_host.clone(),
        kubernetes_ca: None,
        instance: args.pod_name.clone(),
        resync: Duration::from_secs(args.resync_seconds),
        converging_requeue: Duration::from_secs(5),
        server_cluster_role: (!args.vault_server_cluster_role.is_empty())
            .then(|| args.vault_server_cluster_role.clone()),
        image_policy: ImagePolicy {
            allowed: args.allowed_images.clone(),
            require_digest: args.require_image_digest,
        },
        escrow_secret_namespaces: args.escrow_secret_namespaces.clone(),
    };
    let mut ctx = Context::new(client, settings, metrics.clone());
    if let Some(leadership) = &leadership {
        ctx = ctx.with_fence(leadership.fence(), timings.duration);
    }
    let ctx = Arc::new(ctx);
    let namespaces: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    let mut controllers = Vec::new();
    for namespace in namespaces {
        let mut stopped = stopped.clone();
        controllers.push(tokio::spawn(controller::run(
            ctx.clone(),
            namespace,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        )));
    }
    // Declared Vault configuration (VaultPolicy), behind the same election: it starts
    // only once this replica leads, and drains with the VaultCluster controllers.
    let config_ctx = crate::config::ConfigContext::new(ctx.clone());
    let config_namespaces: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    for namespace in config_namespaces {
        let mut stopped = stopped.clone();
        controllers.push(tokio::spawn(crate::config::run(
            config_ctx.clone(),
            namespace,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        )));
    }
    info!("reconciling VaultClusters and their declared configuration");

    let lost = async {
        match leadership.as_mut() {
            Some(l) => l.lost().await,
            None => futures::future::pending().await,
        }
    };
    let mut stopped_wait = stopped.clone();
    let lost_leadership = tokio::select! {
        _ = lost => true,
        _ = stopped_wait.wait_for(|s| *s) => false,
    };
    metrics.leader.set(0);
    drain_then_release(&stop, controllers, leadership).await;
    server.abort();
    if lost_leadership {
        error!("leadership lost; exiting so that only the new leader reconciles");
        return Err(CliError::Internal("leadership lost".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::Api;

    async fn holder(client: &kube::Client) -> Option<String> {
        Api::<Lease>::namespaced(client.clone(), "default")
            .get("vaultkeeper")
            .await
            .ok()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lease_is_released_only_after_every_controller_drained() {
        let sim = vaultkeeper_sim::SimCluster::start(vaultkeeper_sim::SimConfig::for_slot(194))
            .await
            .expect("the simulated API server starts");
        let client = sim.client().expect("client");
        let timings = LeaseTimings {
            duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry: Duration::from_millis(200),
        };
        let (_never, never) = watch::channel(false);
        let leadership = LeaderElector::new(client.clone(), "default", "vaultkeeper", "a", timings)
            .lead(never)
            .await
            .expect("leads");
        let (stop, stopped) = watch::channel(false);
        // A controller whose pass in progress takes 2 s to end after the stop; it sees the
        // Lease still held, and its fence still open, until it has ended.
        let fence = leadership.fence();
        let probe = client.clone();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen_by_controller = seen.clone();
        let controller = tokio::spawn(async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|s| *s).await;
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let look = (holder(&probe).await, fence.check().is_ok());
                if let Ok(mut seen) = seen_by_controller.lock() {
                    seen.push(look);
                }
            }
        });
        drain_then_release(&stop, vec![controller], Some(leadership)).await;
        let seen = seen.lock().expect("not poisoned").clone();
        assert_eq!(seen.len(), 10);
        assert!(
            seen.iter()
                .all(|(h, open)| h.as_deref() == Some("a") && *open),
            "the Lease or the fence went while the controller drained: {seen:?}"
        );
        assert_eq!(holder(&client).await, None, "released once drained");
        sim.shutdown().await;
    }
}
