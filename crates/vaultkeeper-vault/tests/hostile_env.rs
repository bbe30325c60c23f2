//! The CLI that carries unseal shares and tokens ignores a hostile container environment.
//!
//! A container's environment is user input (`spec.pod.env`, the image's own `ENV`), and the
//! `bao`/`vault` CLI reads its address, TLS trust, proxy, response wrapping and namespace
//! from it. These tests set every such variable to something hostile in the environment of
//! the real `bao` CLI, with a decoy listener standing where the variables point, and show
//! that the exec transport's commands still reach the right server and verify it, and that
//! nothing ever connects to the decoy.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::bao::{Cluster, Seal};
use support::{converge, logs};
use vaultkeeper_vault::client::{ExecNodeClient, NodeClient};
use vaultkeeper_vault::decide::{ClusterIntent, InitMode, SealIntent};
use vaultkeeper_vault::keys::FileKeyStore;
use vaultkeeper_vault::lifecycle::Lifecycle;

/// A TCP listener that counts the connections it gets and answers none of them: where
/// every hostile variable points.
struct Decoy {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Decoy {
    fn start() -> Decoy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Decoy {
            address,
            connections,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Every variable that could steer the CLI, set to the decoy, to a wrong CA, or to
/// something that would break or divert the call.
fn hostile_environment(decoy: &Decoy, wrong_ca: &str) -> Vec<(String, String)> {
    let https = format!("https://{}", decoy.address);
    let http = format!("http://{}", decoy.address);
    let mut env = Vec::new();
    for prefix in ["VAULT_", "BAO_"] {
        for (name, value) in [
            ("ADDR", https.as_str()),
            ("AGENT_ADDR", http.as_str()),
            ("SKIP_VERIFY", "true"),
            ("CACERT", wrong_ca),
            ("CAPATH", "/nonexistent"),
            ("CLIENT_CERT", "/nonexistent/cert.pem"),
            ("CLIENT_KEY", "/nonexistent/key.pem"),
            ("TLS_SERVER_NAME", "evil.example"),
            ("NAMESPACE", "evil"),
            ("WRAP_TTL", "5m"),
            ("MFA", "evil:123456"),
            ("HTTP_PROXY", http.as_str()),
            ("PROXY_ADDR", http.as_str()),
            ("TOKEN", "s.an-attackers-token"),
            ("FORMAT", "table"),
            ("CONFIG_PATH", "/nonexistent/config.hcl"),
            ("MAX_RETRIES", "0"),
            ("CLIENT_TIMEOUT", "1"),
        ] {
            env.push((format!("{prefix}{name}"), value.to_owned()));
        }
    }
    for proxy in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
    ] {
        env.push((proxy.to_owned(), http.clone()));
    }
    env
}

/// A CA file of another PKI: trusting it instead of the cluster's would fail every call.
fn wrong_ca(dir: &std::path::Path) -> String {
    let other = support::pki::Pki::new(dir, 74);
    other.ca_file.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_and_tokens_reach_the_pods_own_server_whatever_the_container_environment_says() {
    logs::init();
    let decoy = Decoy::start();
    let mut cluster = Cluster::new(73, 1, Seal::Shamir);
    cluster.start_all();
    let executor = cluster.executor();
    let other_pki = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, value) in hostile_environment(&decoy, &wrong_ca(other_pki.path())) {
        executor.inner().set_container_env(name, value);
    }
    let client = ExecNodeClient::new(executor.clone(), Cluster::cli());
    let pods = cluster.pods(1);
    let keys_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let intent = ClusterIntent::new(
        pods.clone(),
        SealIntent::Shamir {
            shares: 3,
            threshold: 2,
        },
        InitMode::Operator,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut lifecycle = Lifecycle::new(
        client,
        FileKeyStore::new(keys_dir.path().join("keys.json")),
        intent,
    );
    // Init (the answer parsed as JSON: neither wrapped nor in a table), unseal with the
    // shares, and raft work with the root token: all through the hostile environment.
    converge(&mut lifecycle, &[], Duration::from_secs(60)).await;
    let status = lifecycle
        .client()
        .seal_status(&pods[0])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.initialized && !status.sealed, "{status:?}");
    assert_eq!(
        decoy.connections(),
        0,
        "no command connected to where the hostile variables point"
    );
    let commands = executor.recorded();
    assert!(commands.len() >= 4, "{} commands", commands.len());
    assert!(
        commands
            .iter()
            .all(|c| c.argv.iter().any(|a| a == "-tls-skip-verify=false")),
        "every command turns verification on explicitly"
    );
}

/// Runs the real CLI's `read sys/seal-status` against `address` with `args` before the
/// command and `env` as its whole environment; `(succeeded, stdout, stderr)`.
fn run_bao(
    cluster: &Cluster,
    prefix: &[String],
    ca: &str,
    env: &[(String, String)],
    home: &std::path::Path,
) -> (bool, String, String) {
    let address = format!("https://{}:8200", cluster.nodes[0].ip);
    let bao = cluster.bin_dir.join("bao").display().to_string();
    let mut argv: Vec<String> = prefix.to_vec();
    argv.extend([
        bao,
        "read".to_owned(),
        format!("-address={address}"),
        format!("-ca-cert={ca}"),
        "-tls-skip-verify=false".to_owned(),
        "-format=json".to_owned(),
        "sys/seal-status".to_owned(),
    ]);
    let output = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().cloned())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", argv[0]));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The flags alone, without the prologue that clears the environment: the real CLI ranks
/// `-address` and `-ca-cert` above the environment, and a CA that does not match fails
/// the call. Two variables outrank every flag, which is why the prologue exists: the agent
/// address (sent to even with `-address` and `-agent-address` given) and `*_SKIP_VERIFY`
/// (`-tls-skip-verify=false` does not turn it off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_ranks_explicit_flags_above_a_hostile_environment_and_fails_closed() {
    let decoy = Decoy::start();
    let mut cluster = Cluster::new(72, 1, Seal::Shamir);
    cluster.start_all();
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let wrong = wrong_ca(home.path());
    let right = cluster.pki.ca_file.display().to_string();
    let hostile = hostile_environment(&decoy, &wrong);
    // What the address and CA flags must beat on their own. (A server name or CA path
    // from the environment only breaks the call, closed; the prologue clears them too.)
    let flags_alone = |ca_in_env: &str| -> Vec<(String, String)> {
        hostile
            .iter()
            .filter(|(n, _)| {
                ["_ADDR", "_CACERT", "_TOKEN", "_FORMAT"]
                    .iter()
                    .any(|s| n.ends_with(s))
                    && !n.ends_with("AGENT_ADDR")
                    && !n.ends_with("PROXY_ADDR")
            })
            .map(|(n, v)| match n.ends_with("_CACERT") {
                true => (n.clone(), ca_in_env.to_owned()),
                false => (n.clone(), v.clone()),
            })
            .collect()
    };

    let env = flags_alone(&wrong);
    assert!(env.len() >= 6, "{env:?}");
    let (ok, stdout, stderr) = run_bao(&cluster, &[], &right, &env, home.path());
    assert!(
        ok,
        "-address and -ca-cert outrank the environment: {stderr}"
    );
    assert!(stdout.contains("\"sealed\""), "{stdout}");

    let (ok, _, stderr) = run_bao(&cluster, &[], &wrong, &flags_alone(&right), home.path());
    assert!(!ok, "a -ca-cert that does not match fails the call");
    assert!(
        stderr.contains("certificate"),
        "on the certificate: {stderr}"
    );
    assert_eq!(decoy.connections(), 0, "nothing went to the decoy");

    // Skip-verify in the environment beats -tls-skip-verify=false...
    let skip = vec![("BAO_SKIP_VERIFY".to_owned(), "true".to_owned())];
    let (ok, _, _) = run_bao(&cluster, &[], &wrong, &skip, home.path());
    assert!(
        ok,
        "the CLI skipped verification despite -tls-skip-verify=false"
    );
    // ...and the agent address beats -address...
    let agent = vec![(
        "BAO_AGENT_ADDR".to_owned(),
        format!("http://{}", decoy.address),
    )];
    let (ok, _, _) = run_bao(&cluster, &[], &right, &agent, home.path());
    assert!(!ok);
    assert!(
        decoy.connections() > 0,
        "the agent address outranks -address"
    );
    // ...so every command runs behind the prologue, which removes them (and every other
    // steering variable) first: the whole hostile environment is then harmless, and a
    // wrong CA still fails.
    let seen = decoy.connections();
    let prologue = ["sh", "-c", vaultkeeper_vault::commands::CLEAN_ENV].map(str::to_owned);
    let (ok, stdout, stderr) = run_bao(&cluster, &prologue, &right, &hostile, home.path());
    assert!(ok, "behind the prologue: {stderr}");
    assert!(stdout.contains("\"sealed\""), "{stdout}");
    let (ok, _, stderr) = run_bao(&cluster, &prologue, &wrong, &hostile, home.path());
    assert!(!ok && stderr.contains("certificate"), "{stderr}");
    assert_eq!(decoy.connections(), seen, "nothing more went to the decoy");
}
