//! `SimCluster`: the public entry point. Starts the API server over HTTPS on a loopback
//! address, bootstraps what a fresh cluster has (namespaces, the `kubernetes` Service,
//! RBAC bootstrap policy, a node), runs the controllers, writes a kubeconfig, and hands
//! out clients, the request log, fault injection and the driven clock.

use crate::auth;
use crate::clock::SimClock;
use crate::core::{AddressPlan, Core, WriteOptions};
use crate::error::SimError;
use crate::faults::{FailureRule, Faults};
use crate::pki::{ServerPki, TokenSigner};
use crate::requests::RequestRecord;
use crate::server::ApiServer;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How to start a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Loopback address the API server listens on.
    pub api_address: Ipv4Addr,
    /// Port (6443 like a real API server; every 127.x address has its own ports).
    pub api_port: u16,
    /// First Service cluster IP (loopback, so nothing ever leaves the machine).
    pub service_ip_start: Ipv4Addr,
    /// Number of Service IPs.
    pub service_ip_count: u32,
    /// First pod IP the kubelet hands out.
    pub pod_ip_start: Ipv4Addr,
    /// Number of pod IPs.
    pub pod_ip_count: u32,
    /// Directory for the kubeconfig and pod state; a temporary one when `None`.
    pub state_dir: Option<PathBuf>,
    /// Watch history kept for resuming watches (older resourceVersions get 410 Gone).
    pub watch_history: usize,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// Name of the simulated node.
    pub node_name: String,
    /// Run pods as real processes (needs root and the OpenBao binary); `None` leaves
    /// pods `Pending` as on a cluster without nodes.
    pub pods: Option<crate::kubelet::KubeletConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            api_address: Ipv4Addr::new(127, 20, 0, 1),
            api_port: 6443,
            service_ip_start: Ipv4Addr::new(127, 20, 0, 100),
            service_ip_count: 150,
            pod_ip_start: Ipv4Addr::new(127, 21, 0, 10),
            pod_ip_count: 240,
            state_dir: None,
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            node_name: "sim-node".into(),
            pods: None,
        }
    }
}

impl SimConfig {
    /// A configuration whose addresses are private to `slot`: API server on
    /// 127.20.`slot`.1, Services from 127.20.`slot`.100, pods from 127.21.`slot`.10, so
    /// tests can run clusters side by side.
    pub fn for_slot(slot: u8) -> Self {
        SimConfig {
            api_address: Ipv4Addr::new(127, 20, slot, 1),
            service_ip_start: Ipv4Addr::new(127, 20, slot, 100),
            pod_ip_start: Ipv4Addr::new(127, 21, slot, 10),
            ..SimConfig::default()
        }
    }
}

/// The kubelet and its sync task (taken at shutdown to wait for the pods to stop).
type KubeletSlot = (Arc<crate::kubelet::Kubelet>, Mutex<Option<JoinHandle<()>>>);

enum StateDir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl StateDir {
    fn path(&self) -> &Path {
        match self {
            StateDir::Temp(t) => t.path(),
            StateDir::Given(p) => p,
        }
    }
}

/// A running simulated cluster. Dropping it stops the server and controllers; call
/// [`SimCluster::shutdown`] to wait for that.
pub struct SimCluster {
    core: Arc<Core>,
    server: Arc<ApiServer>,
    admin: SecretString,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    dir: StateDir,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    kubelet: Option<KubeletSlot>,
    config: SimConfig,
}

/// Issues tokens for one ServiceAccount, as the TokenRequest API does (see
/// [`SimCluster::token_requester`]). The tokens never appear in its `Debug` output.
#[derive(Clone)]
pub struct TokenRequester {
    core: Arc<Core>,
    namespace: String,
    name: String,
    audiences: Vec<String>,
    seconds: i64,
}

impl std::fmt::Debug for TokenRequester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequester")
            .field(
                "service_account",
                &format!("{}/{}", self.namespace, self.name),
            )
            .field("audiences", &self.audiences)
            .field("seconds", &self.seconds)
            .finish()
    }
}

impl TokenRequester {
    /// A fresh token; fails when the ServiceAccount does not exist.
    pub fn issue(&self) -> Result<SecretString, SimError> {
        let sa_t = self.core.core_type("serviceaccounts")?;
        let sa = self.core.get(&sa_t, &self.namespace, &self.name)?;
        Ok(auth::issue_token(
            &self.core,
            &self.namespace,
            &sa,
            &self.audiences,
            self.seconds,
            None,
        )?
        .0)
    }
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCluster")
            .field("addr", &self.addr)
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

fn random_token() -> SecretString {
    let mut b = [0u8; 32];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

impl SimCluster {
    /// Starts the API server and controllers. Fails if the address is taken.
    pub async fn start(config: SimConfig) -> Result<SimCluster, SimError> {
        let dir = match &config.state_dir {
            Some(p) => {
                std::fs::create_dir_all(p)
                    .map_err(|e| SimError::io(format!("creating {}", p.display()), e))?;
                StateDir::Given(p.clone())
            }
            None => StateDir::Temp(
                tempfile::tempdir().map_err(|e| SimError::io("creating a state directory", e))?,
            ),
        };
        let pki = ServerPki::generate(config.api_address.into())?;
        let clock = Arc::new(SimClock::new());
        let core = Arc::new(Core::new(
            clock,
            TokenSigner::generate()?,
            pki.ca_pem.clone(),
            AddressPlan {
                api_ip: config.api_address,
                api_port: config.api_port,
                service_ip_start: config.service_ip_start,
                service_ip_count: config.service_ip_count,
            },
            config.watch_history,
        ));
        let admin = random_token();
        let server = Arc::new(ApiServer::new(
            core.clone(),
            admin.clone(),
            config.bookmark_interval,
        ));
        bootstrap(&core, &config)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key =
            rustls_pki_types::PrivateKeyDer::Pkcs8(pki.key_der.expose_secret().to_vec().into());
        let cert = rustls_pki_types::CertificateDer::from(pki.cert_der.clone());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SimError::Setup(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| SimError::Setup(format!("TLS certificate: {e}")))?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let addr = SocketAddr::from((config.api_address, config.api_port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| SimError::io(format!("binding the API server to {addr}"), e))?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(accept_loop(
            listener,
            acceptor,
            server.clone(),
            shutdown_rx.clone(),
        ))];
        tasks.extend(crate::controllers::start_all(
            core.clone(),
            shutdown_rx,
            config.node_name.clone(),
        ));

        let kubelet = match &config.pods {
            Some(kc) => {
                let k = crate::kubelet::Kubelet::new(
                    core.clone(),
                    kc,
                    dir.path().to_path_buf(),
                    config.node_name.clone(),
                    config.api_address,
                    config.pod_ip_start,
                    config.pod_ip_count,
                )?;
                server.set_pod_io(k.clone());
                let handle = k.spawn(shutdown.subscribe());
                Some((k, Mutex::new(Some(handle))))
            }
            None => None,
        };
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig, addr, &pki.ca_pem, &admin)?;
        let cluster = SimCluster {
            core,
            server,
            admin,
            addr,
            kubeconfig,
            dir,
            shutdown,
            tasks: Mutex::new(tasks),
            kubelet,
            config,
        };
        cluster.wait_for_default_namespace().await?;
        Ok(cluster)
    }

    async fn wait_for_default_namespace(&self) -> Result<(), SimError> {
        let sa_t = self.core.core_type("serviceaccounts")?;
        for _ in 0..100 {
            if self.core.get_raw(&sa_t, "default", "default").is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(SimError::Setup(
            "the namespace controller did not create the default ServiceAccount".into(),
        ))
    }

    /// Path of the kubeconfig (admin identity) that kubectl and `kube::Config` read.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The directory holding the kubeconfig and pod state.
    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `https://ip:port` of the API server.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Address the API server listens on.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.core.ca_pem
    }

    /// The configuration the cluster was started with.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The storage core (for the kubelet glue and in-process controllers).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The API server (to attach the kubelet's exec/log implementation).
    pub fn server(&self) -> &Arc<ApiServer> {
        &self.server
    }

    fn kube_config_with(&self, token: &SecretString) -> Result<kube::Config, SimError> {
        let url: http::Uri = self
            .url()
            .parse()
            .map_err(|e| SimError::Setup(format!("API server URL: {e}")))?;
        let mut cfg = kube::Config::new(url);
        cfg.root_cert = Some(vec![pem_to_der(&self.core.ca_pem)?]);
        cfg.auth_info.token = Some(token.clone());
        cfg.default_namespace = "default".into();
        Ok(cfg)
    }

    /// A `kube::Client` with the administrator's identity (allowed everything).
    pub fn client(&self) -> Result<kube::Client, SimError> {
        kube::Client::try_from(self.kube_config_with(&self.admin)?)
            .map_err(|e| SimError::Setup(format!("building a client: {e}")))
    }

    /// A `kube::Client` that sends `token` as its bearer token, whatever it is (to see what
    /// the API server makes of a token someone got hold of).
    pub fn client_with_token(&self, token: &SecretString) -> Result<kube::Client, SimError> {
        kube::Client::try_from(self.kube_config_with(token)?)
            .map_err(|e| SimError::Setup(format!("building a client: {e}")))
    }

    /// A `kube::Client` authenticated as a ServiceAccount (a token the server issued), so
    /// RBAC applies exactly as to a pod running as that account.
    pub fn client_as_service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client, SimError> {
        let token = self.service_account_token(namespace, name)?;
        kube::Client::try_from(self.kube_config_with(&token)?)
            .map_err(|e| SimError::Setup(format!("building a client: {e}")))
    }

    /// The same, sending `user_agent` with every request, so the request log tells this
    /// client's requests from others' of the same account (two operator replicas).
    pub fn client_as_service_account_with_agent(
        &self,
        namespace: &str,
        name: &str,
        user_agent: &str,
    ) -> Result<kube::Client, SimError> {
        let token = self.service_account_token(namespace, name)?;
        let mut cfg = self.kube_config_with(&token)?;
        let agent = http::HeaderValue::from_str(user_agent)
            .map_err(|e| SimError::Setup(format!("user agent {user_agent:?}: {e}")))?;
        cfg.headers.push((http::header::USER_AGENT, agent));
        kube::Client::try_from(cfg).map_err(|e| SimError::Setup(format!("building a client: {e}")))
    }

    /// Issues a token for a ServiceAccount (TokenRequest with the API audience).
    pub fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<SecretString, SimError> {
        self.token_requester(
            namespace,
            name,
            &[],
            Duration::from_secs(auth::DEFAULT_TOKEN_SECONDS.unsigned_abs()),
        )
        .issue()
    }

    /// Issues a token for a ServiceAccount with `audiences` (empty: the API server's own)
    /// that expires after `lifetime` (at least 10 minutes, as TokenRequest enforces).
    pub fn service_account_token_for(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[&str],
        lifetime: Duration,
    ) -> Result<SecretString, SimError> {
        self.token_requester(namespace, name, audiences, lifetime)
            .issue()
    }

    /// Something that issues such tokens again and again, without borrowing the cluster:
    /// for a token file renewed in the background, or a source asked at every use.
    pub fn token_requester(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[&str],
        lifetime: Duration,
    ) -> TokenRequester {
        TokenRequester {
            core: self.core.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            seconds: i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Every request the API server answered since start (or the last clear).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.server.log.records()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.server.log.clear()
    }

    /// Fault injection.
    pub fn faults(&self) -> &Faults {
        &self.server.faults
    }

    /// Fail a share of matching requests with `code` (500, 429 or 409); `None` clears.
    pub fn fail_requests(&self, rule: Option<FailureRule>) {
        self.server.faults.set_failure(rule)
    }

    /// Makes every discovery request fail with 500 (`true`) or answer again (`false`).
    pub fn fail_discovery(&self, fail: bool) {
        self.server.faults.set_discovery_failure(fail)
    }

    /// The cluster clock (advance it to fire CronJobs).
    pub fn clock(&self) -> &SimClock {
        &self.core.clock
    }

    /// Forget the watch history: every watch resuming from an older resourceVersion
    /// gets 410 Gone.
    pub fn compact(&self) {
        self.core.compact()
    }

    /// Registers more tasks to stop at shutdown (the kubelet).
    pub fn adopt_task(&self, t: JoinHandle<()>) {
        if let Ok(mut ts) = self.tasks.lock() {
            ts.push(t);
        }
    }

    /// A receiver that turns true at shutdown.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Every argv run inside any container (exec, exec probes, hooks), for tests that
    /// prove no secret is ever on a command line. Empty without a kubelet.
    pub fn exec_audit(&self) -> Vec<crate::runtime::ExecRecord> {
        self.kubelet
            .as_ref()
            .map(|(k, _)| k.runtime().exec_audit())
            .unwrap_or_default()
    }

    /// Kills a container's main process (SIGKILL), as a crash would; the kubelet restarts
    /// it per the pod's `restartPolicy`.
    pub fn kill_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<(), SimError> {
        let (k, _) = self.kubelet.as_ref().ok_or_else(|| {
            SimError::NotImplemented(
                "this cluster runs no kubelet (SimConfig::pods is None)".into(),
            )
        })?;
        k.runtime()
            .signal_container(
                &crate::runtime::PodKey::new(namespace, pod),
                container,
                libc::SIGKILL,
            )
            .map_err(|e| SimError::BadRequest(e.to_string()))
    }

    /// The kubelet, when pods run.
    pub fn kubelet(&self) -> Option<&Arc<crate::kubelet::Kubelet>> {
        self.kubelet.as_ref().map(|(k, _)| k)
    }

    /// Stops the server, the controllers and every pod, and waits for them.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Some((_, handle)) = &self.kubelet {
            let h = handle.lock().ok().and_then(|mut h| h.take());
            if let Some(h) = h {
                // The kubelet stops its pods (SIGTERM, then SIGKILL after 5 s) on the signal.
                let _ = tokio::time::timeout(Duration::from_secs(30), h).await;
            }
        }
        let tasks: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Ok(tasks) = self.tasks.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
    }
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, SimError> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| SimError::Setup(format!("decoding the CA certificate: {e}")))
}

fn write_kubeconfig(
    path: &Path,
    addr: SocketAddr,
    ca_pem: &str,
    admin: &SecretString,
) -> Result<(), SimError> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: vaultkeeper-sim\n  cluster:\n    server: https://{addr}\n    certificate-authority-data: {ca}\nusers:\n- name: vaultkeeper-sim-admin\n  user:\n    token: {}\ncontexts:\n- name: vaultkeeper-sim\n  context:\n    cluster: vaultkeeper-sim\n    user: vaultkeeper-sim-admin\n    namespace: default\ncurrent-context: vaultkeeper-sim\n",
        admin.expose_secret()
    );
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SimError::io(format!("writing {}", path.display()), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| SimError::io(format!("writing {}", path.display()), e))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    server: Arc<ApiServer>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let server = server.clone();
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    let svc = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, std::convert::Infallible>(server.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .with_upgrades()
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

/// What a fresh cluster has before anyone uses it.
fn bootstrap(core: &Core, config: &SimConfig) -> Result<(), SimError> {
    let opts = WriteOptions {
        field_manager: "kube-apiserver".into(),
        ..Default::default()
    };
    let ns_t = core.core_type("namespaces")?;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        core.create(
            &ns_t,
            "",
            json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}),
            &opts,
        )?;
    }
    let node_t = core.core_type("nodes")?;
    let now = core.clock.now_rfc3339();
    let node = core.create(
        &node_t,
        "",
        json!({"metadata": {"name": config.node_name, "labels": {"kubernetes.io/hostname": config.node_name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}}, "spec": {}}),
        &opts,
    )?;
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "addresses": [{"type": "InternalIP", "address": config.api_address.to_string()}, {"type": "Hostname", "address": config.node_name}],
        "nodeInfo": {"kubeletVersion": "v1.33.0-vaultkeeper-sim", "operatingSystem": "linux", "architecture": "amd64", "containerRuntimeVersion": "vaultkeeper-sim://0", "kernelVersion": "", "osImage": "", "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}}});
    let _ = node;
    core.patch(
        &node_t,
        "",
        &config.node_name,
        crate::core::PatchType::Merge,
        status.to_string().as_bytes(),
        Some("status"),
        &opts,
    )?;
    let svc_t = core.core_type("services")?;
    core.create(
        &svc_t,
        "default",
        json!({"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
               "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": config.api_port}], "sessionAffinity": "None", "type": "ClusterIP"}}),
        &opts,
    )?;
    let ep_t = core.core_type("endpoints")?;
    core.create(
        &ep_t,
        "default",
        json!({"metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
               "subsets": [{"addresses": [{"ip": config.api_address.to_string()}], "ports": [{"name": "https", "port": config.api_port, "protocol": "TCP"}]}]}),
        &opts,
    )?;
    for obj in auth::bootstrap_policy() {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let plural = if kind == "ClusterRole" {
            "clusterroles"
        } else {
            "clusterrolebindings"
        };
        let t = core.type_of("rbac.authorization.k8s.io", "v1", plural)?;
        core.create(&t, "", obj, &opts)?;
    }
    Ok(())
}
