//! Real OpenBao servers on loopback addresses: one process per node, each in its own
//! temporary directory, killed when dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use vaultkeeper_vault::client::{
    Cli, HttpNodeClient, HttpOptions, LocalProcessExecutor, RecordingExecutor,
};
use vaultkeeper_vault::node::{NodeEndpoint, PodName};

use super::pki::Pki;

/// The workspace root, from this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Finds the real `bao` binary: the override (from `VAULTKEEPER_BAO`) if given, else
/// `<workspace>/.tools/bin/bao`. The error names the install script.
pub fn locate_bao(override_path: Option<PathBuf>) -> Result<PathBuf, String> {
    let path = override_path.unwrap_or_else(|| workspace_root().join(".tools/bin/bao"));
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "the OpenBao binary is missing at {}: run scripts/install-tools.sh (or set VAULTKEEPER_BAO to a bao binary)",
            path.display()
        ))
    }
}

/// The real `bao` binary; fails the test (never skips it) when it is missing.
pub fn bao_binary() -> PathBuf {
    locate_bao(std::env::var_os("VAULTKEEPER_BAO").map(PathBuf::from))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The seal a cluster uses.
#[derive(Clone)]
pub enum Seal {
    Shamir,
    Transit {
        address: String,
        token: String,
        key_name: String,
        ca_file: PathBuf,
    },
    Static {
        key_file: PathBuf,
    },
}

impl Seal {
    fn stanza(&self) -> String {
        match self {
            Seal::Shamir => String::new(),
            Seal::Transit {
                address,
                token,
                key_name,
                ca_file,
            } => format!(
                "seal \"transit\" {{\n  address = \"{address}\"\n  token = \"{token}\"\n  key_name = \"{key_name}\"\n  mount_path = \"transit/\"\n  tls_ca_cert = \"{}\"\n}}\n",
                ca_file.display()
            ),
            Seal::Static { key_file } => format!(
                "seal \"static\" {{\n  current_key_id = \"k1\"\n  current_key = \"file://{}\"\n}}\n",
                key_file.display()
            ),
        }
    }
}

/// The address of node `ordinal` in `subnet`.
pub fn node_ip(subnet: u8, ordinal: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 10, subnet, 10 + ordinal as u8)
}

/// Waits until something listens at `address`.
pub fn wait_listening(address: SocketAddr, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "nothing listens at {address} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A `bao server` process.
pub struct Server {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub api: SocketAddr,
    child: Option<Child>,
}

impl Server {
    pub fn new(dir: PathBuf, config_text: &str, api: SocketAddr) -> Server {
        std::fs::create_dir_all(dir.join("data")).unwrap_or_else(|e| panic!("{e}"));
        let config = dir.join("config.hcl");
        std::fs::write(&config, config_text).unwrap_or_else(|e| panic!("{e}"));
        Server {
            dir,
            config,
            api,
            child: None,
        }
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(bao_binary())
            .arg("server")
            .arg(format!("-config={}", self.config.display()))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bao: {e}"));
        self.child = Some(child);
    }

    /// SIGKILL: a crash, not a graceful stop.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Waits for the listener; returns how long it took.
    pub fn wait_listening(&self) -> Duration {
        wait_listening(self.api, Duration::from_secs(30))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One node of a cluster.
pub struct Node {
    pub pod: PodName,
    pub ordinal: usize,
    pub ip: Ipv4Addr,
    pub server: Server,
}

/// A raft cluster of `bao` servers at 127.10.<subnet>.10+N, TLS on, `retry_join` to every
/// node, node ids `vault-N`.
pub struct Cluster {
    pub subnet: u8,
    pub dir: TempDir,
    pub pki: Pki,
    pub seal: Seal,
    pub extra_config: String,
    /// Configuration only the first node gets (OpenBao's `initialize` stanza).
    pub first_node_config: String,
    pub nodes: Vec<Node>,
    /// A directory with `bao` in it, for the local executor's PATH.
    pub bin_dir: PathBuf,
}

impl Cluster {
    pub fn new(subnet: u8, replicas: usize, seal: Seal) -> Cluster {
        Self::with_config(subnet, replicas, seal, String::new())
    }

    pub fn with_config(subnet: u8, replicas: usize, seal: Seal, extra_config: String) -> Cluster {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pki = Pki::new(dir.path(), subnet);
        let bin_dir = dir.path().join("bin");
        std::fs::create_dir_all(&bin_dir).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(bao_binary(), bin_dir.join("bao"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut cluster = Cluster {
            subnet,
            dir,
            pki,
            seal,
            extra_config,
            first_node_config: String::new(),
            nodes: Vec::new(),
            bin_dir,
        };
        for _ in 0..replicas {
            cluster.add_node(replicas);
        }
        cluster
    }

    fn config_for(&self, ordinal: usize, join_count: usize) -> String {
        let ip = node_ip(self.subnet, ordinal);
        let ca = self.pki.ca_file.display().to_string();
        let node_dir = self.dir.path().join(format!("vault-{ordinal}"));
        let mut joins = String::new();
        for j in 0..join_count.max(ordinal + 1) {
            joins.push_str(&format!(
                "  retry_join {{\n    leader_api_addr = \"https://{}:8200\"\n    leader_ca_cert_file = \"{ca}\"\n  }}\n",
                node_ip(self.subnet, j)
            ));
        }
        let first = if ordinal == 0 {
            self.first_node_config.as_str()
        } else {
            ""
        };
        format!(
            "api_addr = \"https://{ip}:8200\"\ncluster_addr = \"https://{ip}:8201\"\n\
             listener \"tcp\" {{\n  address = \"{ip}:8200\"\n  cluster_address = \"{ip}:8201\"\n  tls_cert_file = \"{cert}\"\n  tls_key_file = \"{key}\"\n}}\n\
             storage \"raft\" {{\n  path = \"{data}\"\n  node_id = \"vault-{ordinal}\"\n{joins}}}\n\
             telemetry {{\n  prometheus_retention_time = \"30s\"\n  disable_hostname = true\n}}\n{seal}{extra}{first}",
            cert = self.pki.cert_file.display(),
            key = self.pki.key_file.display(),
            data = node_dir.join("data").display(),
            seal = self.seal.stanza(),
            extra = self.extra_config,
        )
    }

    /// Adds (does not start) the next node; its `retry_join` lists `join_count` nodes.
    pub fn add_node(&mut self, join_count: usize) -> &mut Node {
        let ordinal = self.nodes.len();
        let ip = node_ip(self.subnet, ordinal);
        let node_dir = self.dir.path().join(format!("vault-{ordinal}"));
        let config = self.config_for(ordinal, join_count);
        let server = Server::new(node_dir, &config, SocketAddr::new(ip.into(), 8200));
        self.nodes.push(Node {
            pod: PodName::new(format!("vault-{ordinal}")).unwrap_or_else(|e| panic!("{e}")),
            ordinal,
            ip,
            server,
        });
        let last = self.nodes.len() - 1;
        &mut self.nodes[last]
    }

    /// Rewrites a node's config file from the current settings (as a ConfigMap change
    /// would); it takes effect at the node's next start.
    pub fn rewrite_config(&self, ordinal: usize, join_count: usize) {
        let config = self.config_for(ordinal, join_count);
        std::fs::write(&self.nodes[ordinal].server.config, config)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn start_all(&mut self) {
        for node in &mut self.nodes {
            node.server.start();
        }
        for node in &self.nodes {
            node.server.wait_listening();
        }
    }

    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.server.kill();
        }
    }

    pub fn pods(&self, count: usize) -> Vec<PodName> {
        self.nodes
            .iter()
            .take(count)
            .map(|n| n.pod.clone())
            .collect()
    }

    pub fn node(&mut self, ordinal: usize) -> &mut Node {
        &mut self.nodes[ordinal]
    }

    /// The HTTP transport as the operator uses it: connect to the pod address, verify the
    /// certificate for the pod's DNS name.
    pub fn http_client(&self) -> HttpNodeClient {
        let client = HttpNodeClient::new(self.pki.ca_pem.as_bytes(), HttpOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        self.register_http(&client);
        client
    }

    /// Registers every node (call again after adding nodes).
    pub fn register_http(&self, client: &HttpNodeClient) {
        for node in &self.nodes {
            let endpoint = NodeEndpoint::by_name(
                format!("{}.vault-internal", node.pod),
                SocketAddr::new(node.ip.into(), 8200),
            );
            client
                .add_pod(node.pod.clone(), &endpoint)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// The CLI the exec transport runs, as the operator configures it for a pod with TLS
    /// (the executor points its address and CA at each node).
    pub fn cli() -> Cli {
        Cli::tls("bao", 8200, "/openbao/userconfig/vault-server-tls/ca.crt")
    }

    /// The exec transport's executor: the CLI with the env a pod's container has.
    pub fn executor(&self) -> Arc<RecordingExecutor<LocalProcessExecutor>> {
        let home = self.dir.path().join("cli-home");
        std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
        let executor = Arc::new(RecordingExecutor::new(LocalProcessExecutor::new(
            &self.bin_dir,
            home,
        )));
        self.register_exec(&executor);
        executor
    }

    pub fn register_exec(&self, executor: &RecordingExecutor<LocalProcessExecutor>) {
        for node in &self.nodes {
            executor.inner().add_pod(
                node.pod.clone(),
                format!("https://{}:8200", node.ip),
                &self.pki.ca_file,
            );
        }
    }

    /// Every server log, for the secret scan.
    pub fn server_logs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.server.log()).collect()
    }
}
