//! The rendered configuration and TLS Secrets start real servers.
//!
//! For `examples/ha-raft.yaml` and `examples/openbao.yaml`: the ConfigMap, the TLS Secret
//! and the container's own start script and environment (downward API and `$(VAR)`
//! references resolved as the kubelet does) are written where the pod spec mounts them,
//! rewritten into a temporary directory, and three real OpenBao servers start on 127.40.x.y
//! loopback addresses. A rustls client that trusts only the rendered CA then completes TLS
//! to each node under its pod DNS name and reads `sys/health`.
//!
//! What differs from a pod: the three servers share this machine's network, so each
//! listener's `[::]` is rewritten to the node's own loopback address; and two things that
//! need a Kubernetes API are left out, the `service_registration "kubernetes"` block and
//! raft joining through pod DNS names (the simulated cluster's tests cover both, with
//! per-pod network views and hosts files).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};
use secrecy::ExposeSecret;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use vaultkeeper_api::{VaultCluster, parse_manifests};
use vaultkeeper_render::{Manifest, PkiMaterial, RenderContext, pki, render};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tools_bin() -> PathBuf {
    let bin = workspace_root().join(".tools/bin");
    assert!(
        bin.join("bao").exists(),
        "the OpenBao binary is missing: run scripts/install-tools.sh"
    );
    bin
}

fn example(name: &str) -> VaultCluster {
    let path = workspace_root()
        .join("examples")
        .join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).expect("example reads");
    parse_manifests(&text).expect("example parses").remove(0)
}

/// Kills the server when the test ends, whatever happens.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Rendered {
    manifests: Vec<Manifest>,
    pki: PkiMaterial,
    namespace: String,
    name: String,
}

fn render_example(cluster: &VaultCluster) -> Rendered {
    let namespace = cluster
        .metadata
        .namespace
        .clone()
        .expect("namespaced example");
    let name = cluster.metadata.name.clone().expect("named example");
    let material = pki::issue_new(cluster, &namespace, OffsetDateTime::now_utc()).expect("pki");
    let manifests =
        render(cluster, &RenderContext::new(&namespace, Some(&material))).expect("render");
    Rendered {
        manifests,
        pki: material,
        namespace,
        name,
    }
}

fn object<'a>(rendered: &'a Rendered, kind: &str, name: &str) -> &'a Value {
    &rendered
        .manifests
        .iter()
        .find(|m| m.kind == kind && m.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .object
}

/// Resolves a container's env list the way the kubelet does: downward API field
/// references, Secret references refused (none are expected here), `$(VAR)` expansion
/// of earlier variables.
fn resolve_env(env: &[Value], fields: &BTreeMap<&str, String>) -> Vec<(String, String)> {
    let mut resolved: Vec<(String, String)> = Vec::new();
    for var in env {
        let name = var["name"].as_str().expect("env name").to_owned();
        let value = if let Some(path) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            fields
                .get(path)
                .cloned()
                .unwrap_or_else(|| panic!("unexpected field {path}"))
        } else {
            let raw = var["value"].as_str().expect("plain value");
            let mut out = raw.to_owned();
            for (known, val) in &resolved {
                out = out.replace(&format!("$({known})"), val);
            }
            out
        };
        resolved.push((name, value));
    }
    resolved
}

fn start_node(rendered: &Rendered, ordinal: u32, ip: IpAddr, root: &Path) -> Server {
    let sts = object(rendered, "StatefulSet", &rendered.name);
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    let mount_root = mounts
        .iter()
        .find(|m| m["name"] == "config")
        .and_then(|m| m["mountPath"].as_str())
        .and_then(|p| p.strip_suffix("/config"))
        .expect("config mount")
        .to_owned();
    let local_root = root.join(mount_root.trim_start_matches('/'));
    // /tmp first: the temporary directory itself may live under /tmp.
    let rewrite = |text: &str| {
        text.replace("/tmp/", &format!("{}/", root.join("tmp").display()))
            .replace(
                &format!("{mount_root}/"),
                &format!("{}/", local_root.display()),
            )
    };

    // The ConfigMap, minus Kubernetes service registration (no API server here).
    let config_map = object(rendered, "ConfigMap", &format!("{}-config", rendered.name));
    let (file, config) = config_map["data"]
        .as_object()
        .and_then(|d| d.iter().next())
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .expect("config entry");
    assert!(config.contains("service_registration \"kubernetes\" {}"));
    assert!(
        config.contains("\"[::]:8200\""),
        "the listener binds every address:\n{config}"
    );
    let config = rewrite(&config)
        .replace("service_registration \"kubernetes\" {}", "")
        .replace("\"[::]:", &format!("\"{ip}:"));
    std::fs::create_dir_all(local_root.join("config")).expect("mkdir config");
    std::fs::write(local_root.join("config").join(file), config).expect("write config");
    std::fs::create_dir_all(local_root.join("data")).expect("mkdir data");
    std::fs::create_dir_all(root.join("tmp")).expect("mkdir tmp");

    // The TLS Secret, file by file, as the Secret volume would project it.
    let tls_secret = format!("{}-server-tls", rendered.name);
    let tls_dir = local_root.join("userconfig").join(&tls_secret);
    std::fs::create_dir_all(&tls_dir).expect("mkdir tls");
    for (key, value) in [
        ("tls.crt", rendered.pki.server_cert_pem.as_str()),
        ("tls.key", rendered.pki.server_key_pem.expose_secret()),
        ("ca.crt", rendered.pki.ca_cert_pem.as_str()),
    ] {
        std::fs::write(tls_dir.join(key), value).expect("write tls file");
    }

    let pod = format!("{}-{ordinal}", rendered.name);
    let fields = BTreeMap::from([
        ("status.podIP", ip.to_string()),
        ("status.hostIP", "127.0.0.1".to_owned()),
        ("metadata.name", pod.clone()),
        ("metadata.namespace", rendered.namespace.clone()),
    ]);
    let env = resolve_env(container["env"].as_array().expect("env"), &fields);
    let script = rewrite(container["args"][0].as_str().expect("start script"));
    let command: Vec<&str> = container["command"]
        .as_array()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command, ["/bin/sh", "-ec"]);

    let log = root.join("server.log");
    let out = std::fs::File::create(&log).expect("log file");
    let child = Command::new(command[0])
        .arg(command[1])
        .arg(script)
        .env_clear()
        .envs(env.into_iter().map(|(k, v)| (k, rewrite(&v))))
        .env("PATH", format!("{}:/usr/bin:/bin", tools_bin().display()))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("start the server");
    Server { child, log }
}

fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_pki_types_pem(ca_pem) {
        roots.add(cert).expect("CA certificate");
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

fn rustls_pki_types_pem(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates")
}

/// GET /v1/sys/health over TLS to `addr`, verifying the certificate for `server_name`.
async fn health(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    server_name: &str,
) -> Result<(u16, Value), String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let request =
        format!("GET /v1/sys/health HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json_start = body.find('{').unwrap_or(0);
    let json_end = body.rfind('}').map_or(body.len(), |i| i + 1);
    let body: Value = serde_json::from_str(&body[json_start..json_end])
        .map_err(|e| format!("body {body:?}: {e}"))?;
    Ok((status, body))
}

async fn wait_for_health(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    server_name: &str,
    server: &Server,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match health(config.clone(), addr, server_name).await {
            Ok(answer) => return answer,
            Err(e) if Instant::now() > deadline => panic!(
                "{server_name} at {addr} never answered: {e}\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn three_nodes_serve_tls_under_their_pod_names(example_name: &str, subnet: u8) {
    let rendered = render_example(&example(example_name));
    let dir = tempfile::tempdir().expect("tempdir");
    let trusted = client_config(&rendered.pki.ca_cert_pem);
    let mut servers = Vec::new();
    for ordinal in 0..3u32 {
        let ip: IpAddr = format!("127.40.{subnet}.{}", 10 + ordinal)
            .parse()
            .expect("ip");
        let root = dir.path().join(format!("pod-{ordinal}"));
        servers.push((ordinal, ip, start_node(&rendered, ordinal, ip, &root)));
    }
    for (ordinal, ip, server) in &servers {
        let pod_dns = format!("{}-{ordinal}.{}-internal", rendered.name, rendered.name);
        let addr = SocketAddr::new(*ip, 8200);
        let (status, body) = wait_for_health(trusted.clone(), addr, &pod_dns, server).await;
        // A fresh node: not initialized yet (501), which is exactly what sys/health says.
        assert_eq!(status, 501, "{pod_dns}: {body}");
        assert_eq!(body["initialized"], false, "{pod_dns}: {body}");
        // The fully qualified forms verify too.
        let fqdn = format!("{pod_dns}.{}.svc.cluster.local", rendered.namespace);
        health(trusted.clone(), addr, &fqdn)
            .await
            .expect("FQDN verifies");
        // The verification is real: a name the certificate does not carry fails, and
        // so does a client that trusts another CA.
        assert!(
            health(trusted.clone(), addr, "vault.example.org")
                .await
                .is_err()
        );
        let other_request = pki::server_certificate_request(&example(example_name), "other");
        let now = OffsetDateTime::now_utc();
        let other = pki::issue(
            &pki::plan(None, &other_request, now),
            None,
            "other",
            &other_request,
            now,
        )
        .expect("other pki");
        let err = health(client_config(&other.ca_cert_pem), addr, &pod_dns)
            .await
            .expect_err("another CA must not verify");
        assert!(err.contains("TLS"), "{err}");
    }
    // The servers run the configuration vaultkeeper rendered: raft storage at the data
    // mount, listening on the pod address the start script substituted.
    for (_, ip, server) in &servers {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        assert!(log.contains("raft"), "{log}");
        assert!(log.contains(&format!("{ip}:8200")), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_raft_example_serves_tls_under_pod_names_with_the_rendered_ca() {
    three_nodes_serve_tls_under_their_pod_names("ha-raft", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openbao_example_serves_tls_under_pod_names_with_the_rendered_ca() {
    three_nodes_serve_tls_under_their_pod_names("openbao", 2).await;
}
