//! The floor: the same `bao` binary the pods run, driven by hand over HTTP on loopback
//! addresses, with no operator and no Kubernetes. What the operator's numbers are divided
//! by: nothing that forms a raft cluster from these processes can be faster.
//!
//! The servers are configured as the operator renders them (TLS listener with one server
//! certificate and CA, raft storage, OpenBao's default autopilot settings, so the same
//! 10 s `server_stabilization_time` before a new node is promoted to voter), and each step
//! is the one request a person would send: `sys/init` on the first node, `sys/unseal` with
//! three of five keys, `sys/storage/raft/join` on the others before their unseal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The loopback network the floor's servers listen on (node `n` at `.n`).
const NET: &str = "127.35.210";
/// How often the floor polls, finer than anything it measures.
const POLL: Duration = Duration::from_millis(50);
/// Key shares and threshold, as `examples/openbao.yaml` asks.
const SHARES: usize = 5;
const THRESHOLD: usize = 3;

/// What the floor measured.
pub struct Floor {
    /// Each process start → its API answering (the first five starts).
    pub listen: Vec<Duration>,
    /// Start of 3 processes → init, unseal, join → autopilot reports 3 healthy voters.
    pub three_voters: Duration,
    /// Start of 2 more processes → join, unseal → 5 healthy voters.
    pub add_two: Duration,
    /// SIGKILL of a standby → restarted process answers → unsealed by hand.
    pub restart_answers: Duration,
    /// SIGKILL of a standby → unsealed again.
    pub restart_unsealed: Duration,
}

impl Floor {
    /// The median process start → API answering.
    pub fn median_listen(&self) -> Duration {
        let mut sorted = self.listen.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }
}

struct Node {
    n: u8,
    dir: PathBuf,
    child: Option<tokio::process::Child>,
}

impl Node {
    fn ip(&self) -> String {
        format!("{NET}.{}", self.n)
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}:8200/v1/{path}", self.ip())
    }
}

struct Pki {
    ca_pem: String,
    ca_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

/// One CA and one server certificate for every node's address, as the operator issues one
/// certificate for all pods of a cluster.
fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench-floor-ca");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let names: Vec<String> = (1..=5).map(|n| format!("{NET}.{n}")).collect();
    let mut params = rcgen::CertificateParams::new(names).expect("server names");
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The server configuration: the operator's rendering with loopback addresses in place of
/// the pod's, and without Kubernetes service registration.
fn config(node: &Node, tls: &Path) -> String {
    let ip = node.ip();
    let tls = tls.display();
    format!(
        r#"ui = true

listener "tcp" {{
  address = "{ip}:8200"
  cluster_address = "{ip}:8201"
  tls_cert_file = "{tls}/tls.crt"
  tls_key_file = "{tls}/tls.key"
  tls_client_ca_file = "{tls}/ca.crt"
}}

storage "raft" {{
  path = "{data}"
  node_id = "node-{n}"
}}

api_addr = "https://{ip}:8200"
cluster_addr = "https://{ip}:8201"
"#,
        data = node.dir.join("data").display(),
        n = node.n,
    )
}

struct Bench {
    bao: PathBuf,
    tls: PathBuf,
    ca_pem: String,
    http: reqwest::Client,
}

impl Bench {
    fn spawn(&self, node: &mut Node) {
        let child = tokio::process::Command::new(&self.bao)
            .arg("server")
            .arg(format!("-config={}", node.dir.join("config.hcl").display()))
            .env("BAO_LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("bao server starts");
        node.child = Some(child);
    }

    /// Starts `node`'s process and returns how long until its API answered.
    async fn start(&self, node: &mut Node) -> Duration {
        let started = Instant::now();
        self.spawn(node);
        while self.health(node).await.is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "node {} never answered",
                node.n
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        started.elapsed()
    }

    async fn health(&self, node: &Node) -> Option<Value> {
        let response =
            self.http
                .get(node.url(
                    "sys/health?standbyok=true&sealedcode=200&uninitcode=200&perfstandbyok=true",
                ))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .ok()?;
        response.json().await.ok()
    }

    async fn send(
        &self,
        method: reqwest::Method,
        node: &Node,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let mut request = self
            .http
            .request(method, node.url(path))
            .timeout(Duration::from_secs(60));
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path} on node {}: {status}", node.n);
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn unseal(&self, node: &Node, keys: &[String]) {
        for key in &keys[..THRESHOLD] {
            let answer = self
                .send(
                    reqwest::Method::PUT,
                    node,
                    "sys/unseal",
                    None,
                    Some(json!({ "key": key })),
                )
                .await;
            if answer["sealed"] == Value::Bool(false) {
                return;
            }
        }
    }

    async fn join(&self, node: &Node, leader: &Node) {
        self.send(
            reqwest::Method::POST,
            node,
            "sys/storage/raft/join",
            None,
            Some(json!({
                "leader_api_addr": format!("https://{}:8200", leader.ip()),
                "leader_ca_cert": self.ca_pem,
            })),
        )
        .await;
    }

    /// Healthy voters in autopilot's state, read from `leader`.
    async fn healthy_voters(&self, leader: &Node, token: &str) -> usize {
        let Ok(response) = self
            .http
            .get(leader.url("sys/storage/raft/autopilot/state"))
            .header("X-Vault-Token", token)
            .timeout(Duration::from_secs(2))
            .send()
            .await
        else {
            return 0;
        };
        let Ok(state) = response.json::<Value>().await else {
            return 0;
        };
        state["data"]["servers"]
            .as_object()
            .map(|servers| {
                servers
                    .values()
                    // The leader's status is "leader", the others' "voter" once promoted.
                    .filter(|s| {
                        matches!(s["status"].as_str(), Some("leader" | "voter"))
                            && s["healthy"] == Value::Bool(true)
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    async fn until_voters(&self, leader: &Node, token: &str, n: usize) {
        let started = Instant::now();
        while self.healthy_voters(leader, token).await < n {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "autopilot never reported {n} healthy voters"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn until_unsealed(&self, node: &Node) {
        let started = Instant::now();
        while self
            .health(node)
            .await
            .is_none_or(|h| h["sealed"] != Value::Bool(false))
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "node {} never unsealed",
                node.n
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Starts the nodes together, as the StatefulSet (parallel pod management) does, and
    /// returns each one's start → API answering.
    async fn start_all(&self, nodes: &mut [Node]) -> Vec<Duration> {
        let mut listen = Vec::new();
        let started = Instant::now();
        for node in nodes.iter_mut() {
            self.spawn(node);
        }
        for node in nodes.iter() {
            while self.health(node).await.is_none() {
                assert!(started.elapsed() < Duration::from_secs(30));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            listen.push(started.elapsed());
        }
        listen
    }
}

/// Runs the floor with `bao`: 3 nodes to 3 healthy voters, 2 more to 5, then one
/// standby killed and restarted.
pub async fn measure(bao: &Path) -> Floor {
    let root = tempfile::tempdir().expect("temp dir");
    let tls = root.path().join("tls");
    std::fs::create_dir_all(&tls).expect("tls dir");
    let pki = pki();
    std::fs::write(tls.join("ca.crt"), &pki.ca_pem).expect("ca.crt");
    std::fs::write(tls.join("tls.crt"), &pki.cert_pem).expect("tls.crt");
    std::fs::write(tls.join("tls.key"), &pki.key_pem).expect("tls.key");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(pki.ca_der.clone()))
        .expect("CA in the root store");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config)
        .no_proxy()
        .build()
        .expect("HTTP client");
    let bench = Bench {
        bao: bao.to_owned(),
        tls: tls.clone(),
        ca_pem: pki.ca_pem,
        http,
    };
    let mut nodes: Vec<Node> = (1..=5)
        .map(|n| {
            let dir = root.path().join(format!("node-{n}"));
            std::fs::create_dir_all(dir.join("data")).expect("node dir");
            Node {
                n,
                dir,
                child: None,
            }
        })
        .collect();
    for node in &nodes {
        std::fs::write(node.dir.join("config.hcl"), config(node, &bench.tls)).expect("config");
    }

    // 3 nodes → 3 healthy voters.
    let started = Instant::now();
    let mut listen = bench.start_all(&mut nodes[..3]).await;
    let init = bench
        .send(
            reqwest::Method::PUT,
            &nodes[0],
            "sys/init",
            None,
            Some(json!({ "secret_shares": SHARES, "secret_threshold": THRESHOLD })),
        )
        .await;
    let keys: Vec<String> = init["keys_base64"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    let token = init["root_token"].as_str().expect("root token").to_owned();
    bench.unseal(&nodes[0], &keys).await;
    // The others join once the first is active (raft leader), as retry_join would find it.
    let leader_up = Instant::now();
    while bench
        .health(&nodes[0])
        .await
        .is_none_or(|h| h["standby"] != Value::Bool(false) || h["sealed"] != Value::Bool(false))
    {
        assert!(leader_up.elapsed() < Duration::from_secs(60), "no leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for node in &nodes[1..3] {
        bench.join(node, &nodes[0]).await;
        bench.unseal(node, &keys).await;
    }
    bench.until_voters(&nodes[0], &token, 3).await;
    let three_voters = started.elapsed();

    // 2 more → 5 healthy voters.
    let started = Instant::now();
    listen.extend(bench.start_all(&mut nodes[3..5]).await);
    for node in &nodes[3..5] {
        bench.join(node, &nodes[0]).await;
        bench.unseal(node, &keys).await;
    }
    bench.until_voters(&nodes[0], &token, 5).await;
    let add_two = started.elapsed();

    // A standby killed and restarted, then unsealed by hand.
    let standby = &mut nodes[1];
    if let Some(mut child) = standby.child.take() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    let started = Instant::now();
    let restart_answers = bench.start(standby).await;
    bench.unseal(standby, &keys).await;
    bench.until_unsealed(standby).await;
    let restart_unsealed = started.elapsed();

    for node in &mut nodes {
        if let Some(mut child) = node.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
    Floor {
        listen,
        three_voters,
        add_two,
        restart_answers,
        restart_unsealed,
    }
}
