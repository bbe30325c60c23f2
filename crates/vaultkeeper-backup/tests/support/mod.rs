//! Real parts for the backup tests: a single-node OpenBao raft cluster with TLS, a moto S3
//! server, and a TCP proxy that can cut the S3 connection mid-upload.
//!
//! Tools come from `VAULTKEEPER_BAO` / `VAULTKEEPER_MOTO` or `<workspace>/.tools/bin/`.
//! Every process is killed when its handle drops.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use vaultkeeper_backup::s3::{S3Credentials, S3Settings, S3Store};
use vaultkeeper_vault::secret::{ExposeSecret, secret_string};

/// Finds a tool: the env override, else `<workspace>/.tools/bin/<name>`.
pub fn tool(env: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join(".tools/bin").join(name);
    assert!(
        path.exists(),
        "{name} not found at {} (set {env} or run scripts/install-tools.sh)",
        path.display()
    );
    path
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

async fn wait_for_port(addr: SocketAddr, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what} did not listen on {addr} within 30 s; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------------------
// S3

/// A moto S3 server on `ip:5000`.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

pub const ACCESS_KEY: &str = "testing-access";
pub const SECRET_KEY: &str = "testing-secret";

impl Moto {
    pub async fn start(ip: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let child = Command::new(tool("VAULTKEEPER_MOTO", "moto_server"))
            .args(["-H", ip, "-p", "5000"])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("moto.err")).unwrap(),
            ))
            .spawn()
            .expect("start moto_server");
        let addr: SocketAddr = format!("{ip}:5000").parse().unwrap();
        let moto = Self {
            child,
            endpoint: format!("http://{addr}"),
            addr,
            _dir: dir,
        };
        wait_for_port(addr, "moto_server", &log).await;
        moto
    }

    /// Settings for talking to this server (or to a proxy in front of it).
    pub fn settings(&self, endpoint: &str, bucket: &str) -> S3Settings {
        S3Settings {
            bucket: bucket.into(),
            region: "us-east-1".into(),
            endpoint: Some(endpoint.into()),
            force_path_style: true,
            credentials: S3Credentials::Static {
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: secret_string(SECRET_KEY.into()),
                session_token: None,
            },
            ca_pem: None,
            checksums_when_required: true,
        }
    }

    /// A raw SDK client straight to moto (for setup and for inspecting what is stored).
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let config = self
            .settings(&self.endpoint, "unused")
            .sdk_config()
            .await
            .unwrap();
        aws_sdk_s3::Client::from_conf(config.build())
    }

    pub async fn create_bucket(&self, bucket: &str) -> S3Store {
        self.client()
            .await
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        S3Store::connect(&self.settings(&self.endpoint, bucket))
            .await
            .unwrap()
    }

    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let out = self
            .client()
            .await
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .collect();
        keys.sort();
        keys
    }

    pub async fn pending_uploads(&self, bucket: &str) -> Vec<(String, String)> {
        let out = self
            .client()
            .await
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        out.uploads()
            .iter()
            .map(|u| {
                (
                    u.key().unwrap_or("").to_owned(),
                    u.upload_id().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let out = self
            .client()
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }

    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.client()
            .await
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }

    pub async fn delete(&self, bucket: &str, key: &str) {
        self.client()
            .await
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }
}

/// A TCP proxy in front of a server that can be cut: once `cut_after_upload_bytes` bytes
/// went client → server it drops every connection and refuses new ones until healed.
/// That is what a client sees when the S3 server dies mid-upload.
pub struct CutProxy {
    pub endpoint: String,
    forwarded: Arc<AtomicU64>,
    limit: Arc<AtomicU64>,
    cut_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn until_cut(mut rx: watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

impl CutProxy {
    pub async fn start(listen: &str, upstream: SocketAddr, cut_after_upload_bytes: u64) -> Self {
        let listener = TcpListener::bind(listen).await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let forwarded = Arc::new(AtomicU64::new(0));
        let limit = Arc::new(AtomicU64::new(cut_after_upload_bytes));
        let (cut_tx, cut_rx) = watch::channel(false);
        let (f, l, tx) = (forwarded.clone(), limit.clone(), cut_tx.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *tx.borrow() {
                    drop(client);
                    continue;
                }
                let (f, l, tx, rx) = (f.clone(), l.clone(), tx.clone(), cut_rx.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let mut cut_up = Box::pin(until_cut(rx.clone()));
                    let mut cut_down = Box::pin(until_cut(rx));
                    let up = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            tokio::select! {
                                _ = &mut cut_up => return,
                                n = cr.read(&mut buf) => {
                                    let Ok(n) = n else { return };
                                    if n == 0 { return; }
                                    let total = f.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                                    if total > l.load(Ordering::SeqCst) {
                                        let _ = tx.send(true);
                                        return;
                                    }
                                    if sw.write_all(&buf[..n]).await.is_err() { return; }
                                }
                            }
                        }
                    };
                    let down = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            tokio::select! {
                                _ = &mut cut_down => return,
                                n = sr.read(&mut buf) => {
                                    let Ok(n) = n else { return };
                                    if n == 0 { return; }
                                    if cw.write_all(&buf[..n]).await.is_err() { return; }
                                }
                            }
                        }
                    };
                    // Either side ending (or the cut) closes both halves of the connection.
                    tokio::select! { _ = up => {}, _ = down => {} }
                });
            }
        });
        Self {
            endpoint,
            forwarded,
            limit,
            cut_tx,
            task,
        }
    }

    pub fn is_cut(&self) -> bool {
        *self.cut_tx.borrow()
    }

    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }

    /// The server is back: forward everything again.
    pub fn heal(&self) {
        self.limit.store(u64::MAX, Ordering::SeqCst);
        let _ = self.cut_tx.send(false);
    }
}

// ---------------------------------------------------------------------------------------
// OpenBao

/// A CA and a server certificate for one IP.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn pki_for(ip: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "vaultkeeper test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress(ip.parse::<IpAddr>().unwrap()));
    leaf.distinguished_name.push(DnType::CommonName, "vault");
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// What `sys/init` gave.
#[derive(Clone)]
pub struct InitKeys {
    pub keys: Vec<String>,
    pub root_token: String,
}

/// A single-node OpenBao raft cluster with TLS on `ip:8200`.
pub struct Bao {
    child: Child,
    pub ip: String,
    pub addr: String,
    pub dir: tempfile::TempDir,
    pub ca_path: PathBuf,
    pub http: reqwest::Client,
    pub init: Option<InitKeys>,
}

impl Drop for Bao {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

impl Bao {
    /// Starts a fresh node, initializes it (3 shares, threshold 2) and unseals it.
    pub async fn start_initialized(ip: &str) -> Self {
        Self::start_initialized_with(ip, false).await
    }

    /// Like [`Bao::start_initialized`], with a file audit device declared in the config.
    ///
    /// Not the default: a declared audit device is part of what a snapshot carries, and
    /// OpenBao refuses to become active after restoring a snapshot whose audit table
    /// disagrees with the config (e.g. another `file_path`).
    pub async fn start_initialized_audited(ip: &str) -> Self {
        Self::start_initialized_with(ip, true).await
    }

    async fn start_initialized_with(ip: &str, audit: bool) -> Self {
        let mut bao = Self::start(ip, audit).await;
        bao.initialize().await;
        let keys = bao.init.clone().unwrap().keys;
        bao.unseal(&keys).await;
        bao.wait_active().await;
        bao
    }

    pub async fn start(ip: &str, audit: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki_for(ip);
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &pki.ca_pem).unwrap();
        std::fs::write(dir.path().join("tls.crt"), &pki.cert_pem).unwrap();
        std::fs::write(dir.path().join("tls.key"), &pki.key_pem).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let d = dir.path().display();
        let audit_stanza = if audit {
            format!(
                "audit \"file\" \"to-file\" {{\n  options {{\n    file_path = \"{d}/audit.log\"\n  }}\n}}"
            )
        } else {
            String::new()
        };
        let config = format!(
            r#"
storage "raft" {{
  path    = "{d}/data"
  node_id = "node-{ip}"
}}
listener "tcp" {{
  address         = "{ip}:8200"
  cluster_address = "{ip}:8201"
  tls_cert_file   = "{d}/tls.crt"
  tls_key_file    = "{d}/tls.key"
}}
{audit_stanza}
api_addr     = "https://{ip}:8200"
cluster_addr = "https://{ip}:8201"
log_level    = "info"
"#
        );
        std::fs::write(dir.path().join("config.hcl"), config).unwrap();
        let log = dir.path().join("bao.log");
        let child = Command::new(tool("VAULTKEEPER_BAO", "bao"))
            .arg("server")
            .arg(format!("-config={d}/config.hcl"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("bao.err")).unwrap(),
            ))
            .spawn()
            .expect("start bao");
        let tls = vaultkeeper_vault::client::tls_config(Some(pki.ca_pem.as_bytes())).unwrap();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .unwrap();
        let bao = Self {
            child,
            ip: ip.into(),
            addr: format!("https://{ip}:8200"),
            dir,
            ca_path,
            http,
            init: None,
        };
        wait_for_port(
            format!("{ip}:8200").parse().unwrap(),
            "bao",
            &bao.dir.path().join("bao.err"),
        )
        .await;
        bao
    }

    pub fn root_token(&self) -> String {
        self.init.as_ref().expect("initialized").root_token.clone()
    }

    /// A raw API call; returns status and JSON body (Null when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr));
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, value)
    }

    pub async fn initialize(&mut self) {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                "sys/init",
                None,
                Some(json!({"secret_shares": 3, "secret_threshold": 2})),
            )
            .await;
        assert_eq!(status, 200, "init: {body}");
        self.init = Some(InitKeys {
            keys: body["keys_base64"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect(),
            root_token: body["root_token"].as_str().unwrap().to_owned(),
        });
    }

    /// Submits shares until unsealed; returns the final `sealed` flag.
    pub async fn unseal(&self, keys: &[String]) -> bool {
        let mut sealed = true;
        for key in keys.iter().take(2) {
            let (status, body) = self
                .call(
                    reqwest::Method::PUT,
                    "sys/unseal",
                    None,
                    Some(json!({"key": key})),
                )
                .await;
            assert_eq!(status, 200, "unseal: {body}");
            sealed = body["sealed"].as_bool().unwrap();
        }
        sealed
    }

    pub async fn seal_status(&self) -> Value {
        self.call(reqwest::Method::GET, "sys/seal-status", None, None)
            .await
            .1
    }

    /// Waits until the node is the active node of its cluster.
    pub async fn wait_active(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let resp = self
                .http
                .get(format!("{}/v1/sys/health", self.addr))
                .send()
                .await;
            let last = match resp {
                Ok(r) if r.status().as_u16() == 200 => return,
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.path().join("bao.err")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "bao at {} did not become active; last health: {last}; log tail:\n{}",
                    self.addr,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn enable_kv(&self) {
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                "sys/mounts/secret",
                Some(&self.root_token()),
                Some(json!({"type": "kv", "options": {"version": "2"}})),
            )
            .await;
        assert!(s == 204 || s == 200, "mount kv: {s} {b}");
        // A new KV v2 mount answers 400 ("upgrading") for a moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.read_kv(&self.root_token(), "__probe").await.0 != 404 {
            assert!(Instant::now() < deadline, "kv mount never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn write_kv(&self, token: &str, path: &str, data: Value) {
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                &format!("secret/data/{path}"),
                Some(token),
                Some(json!({"data": data})),
            )
            .await;
        assert_eq!(s, 200, "write {path}: {b}");
    }

    /// Reads a KV value: `None` on 404.
    pub async fn read_kv(&self, token: &str, path: &str) -> (u16, Option<Value>) {
        let (s, b) = self
            .call(
                reqwest::Method::GET,
                &format!("secret/data/{path}"),
                Some(token),
                None,
            )
            .await;
        (s, (s == 200).then(|| b["data"]["data"].clone()))
    }

    /// Writes `count` values of `size` pseudo-random bytes (base64) so the snapshot grows.
    pub async fn fill(&self, count: usize, size: usize) {
        let token = self.root_token();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..count {
            let mut bytes = vec![0u8; size];
            for b in bytes.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            use base64::Engine as _;
            let value = base64::engine::general_purpose::STANDARD.encode(&bytes);
            self.write_kv(&token, &format!("fill/{i}"), json!({"v": value}))
                .await;
        }
    }

    /// The backup policy and a token that carries only it, written to a file.
    pub async fn backup_token_file(&self) -> PathBuf {
        let root = self.root_token();
        let policy = r#"path "sys/storage/raft/snapshot" { capabilities = ["read"] }"#;
        let (s, b) = self
            .call(
                reqwest::Method::PUT,
                "sys/policies/acl/vaultkeeper-backup",
                Some(&root),
                Some(json!({"policy": policy})),
            )
            .await;
        assert!(s == 204 || s == 200, "policy: {s} {b}");
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                "auth/token/create",
                Some(&root),
                Some(json!({"policies": ["vaultkeeper-backup"], "ttl": "1h"})),
            )
            .await;
        assert_eq!(s, 200, "token: {b}");
        let path = self.dir.path().join("backup-token");
        std::fs::write(&path, b["auth"]["client_token"].as_str().unwrap()).unwrap();
        path
    }

    /// The root token, written to a file (for restore).
    pub fn root_token_file(&self) -> PathBuf {
        let path = self.dir.path().join("root-token");
        std::fs::write(&path, self.root_token()).unwrap();
        path
    }

    /// Restore requests (updates of `sys/storage/raft/snapshot*`) in the audit log. The
    /// file audit device is declared in the server config (OpenBao only allows that).
    pub fn restore_requests_audited(&self) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| {
                e["type"] == "request"
                    && e["request"]["operation"] == "update"
                    && e["request"]["path"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("sys/storage/raft/snapshot")
            })
            .count()
    }

    /// Whether the audit log records anything at all (so a zero count means something).
    pub fn audit_log_lines(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Stops the server and deletes its data: the cluster is gone.
    pub fn destroy(mut self) {
        kill(&mut self.child);
    }
}

/// A random 32-byte key in a file.
pub fn key_file(dir: &Path) -> PathBuf {
    let key = vaultkeeper_backup::EncryptionKey::generate().unwrap();
    let path = dir.join("backup.key");
    std::fs::write(&path, key.to_base64().expose_secret().as_bytes()).unwrap();
    path
}

// ---------------------------------------------------------------------------------------
// GCS and Azure emulators

/// A free TCP port on `ip` (bound, then released for the emulator to take).
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// gcp-storage-emulator (PyPI) on a free port, storing into a temp dir, with one bucket.
pub struct GcsEmulator {
    child: Child,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
}

impl Drop for GcsEmulator {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

impl GcsEmulator {
    pub async fn start(ip: &str, bucket: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("gcs.log");
        let port = free_port(ip);
        let child = Command::new(tool("VAULTKEEPER_GCS_EMULATOR", "gcp-storage-emulator"))
            .args(["--data-dir"])
            .arg(dir.path().join("data"))
            .args(["start", "--host", ip, "--port", &port.to_string()])
            .args(["--default-bucket", bucket])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("start gcp-storage-emulator");
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        let emulator = Self {
            child,
            endpoint: format!("http://{addr}"),
            dir,
        };
        wait_for_port(addr, "gcp-storage-emulator", &log).await;
        emulator
    }

    /// Resumable upload sessions the emulator still holds (its own bookkeeping on disk).
    pub fn open_sessions(&self) -> usize {
        let root = self.dir.path().join("data/.cloudstorage/_resumable");
        std::fs::read_dir(root).map(|d| d.count()).unwrap_or(0)
    }
}

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service (npm azurite) on a free port, storing into a temp dir.
pub struct Azurite {
    child: Child,
    /// The account's endpoint, `http://ip:port/devstoreaccount1`.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

impl Azurite {
    pub async fn start(ip: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("azurite.log");
        let port = free_port(ip);
        let child = Command::new(tool("VAULTKEEPER_AZURITE", "azurite-blob"))
            .args([
                "--blobHost",
                ip,
                "--blobPort",
                &port.to_string(),
                "--location",
            ])
            .arg(dir.path().join("data"))
            .arg("--silent")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("start azurite-blob");
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        let azurite = Self {
            child,
            endpoint: format!("http://{addr}/{AZURITE_ACCOUNT}"),
            _dir: dir,
        };
        wait_for_port(addr, "azurite-blob", &log).await;
        azurite
    }
}
