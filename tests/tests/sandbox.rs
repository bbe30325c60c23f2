//! `vaultkeeper sandbox`, the README's main command, run as a user runs it: the built
//! binary, its printed instructions followed with the real kubectl, Ctrl-C (SIGTERM) at
//! the end. It must bring the embedded example to Ready, keep it Ready across a pod
//! deletion, never print or log a key, and leave no pod process behind.

use base64::Engine as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vaultkeeper_e2e::install;
use vaultkeeper_e2e::operator::{tool, vaultkeeper_binary};
use vaultkeeper_vault::keys::InitKeys;
use vaultkeeper_vault::secret::ExposeSecret;

/// The sandbox's addresses in this test (the e2e slot range's own sandbox slot).
const API_ADDRESS: &str = "127.20.160.1";
const METRICS: &str = "127.20.160.1:8080";

fn sandbox(state_dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(vaultkeeper_binary());
    command
        .arg("sandbox")
        .arg("--state-dir")
        .arg(state_dir)
        .args(["--api-address", API_ADDRESS])
        .arg("--bao")
        .arg(tool("bao", "VAULTKEEPER_BAO"))
        .args(extra);
    command
}

/// Lines the sandbox prints, as they come, plus everything printed so far.
struct Output {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Output {
    fn of(child: &mut Child) -> Output {
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Output {
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`; panics with everything seen on timeout.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("sandbox | {line}");
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {timeout:?}; the sandbox printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Everything left once the process has exited.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            eprintln!("sandbox | {line}");
            self.seen.push(line);
        }
    }
}

fn kubectl(kubeconfig: &str, args: &[&str]) -> String {
    let mut all = vec!["--kubeconfig", kubeconfig];
    all.extend_from_slice(args);
    install::run(&install::kubectl().expect("kubectl"), &all)
        .unwrap_or_else(|e| panic!("kubectl {}: {e}", args.join(" ")))
}

/// Polls a kubectl jsonpath until it prints `want`.
fn wait_jsonpath(kubeconfig: &str, args: &[&str], want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        last = kubectl(kubeconfig, args);
        if last.trim() == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("kubectl {} printed {last:?}, not {want:?}", args.join(" "));
}

fn metrics() -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(METRICS).expect("the metrics port answers");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("response");
    body
}

/// Pod processes whose command line names the state directory.
fn pod_processes(state_dir: &Path) -> Vec<String> {
    let needle = state_dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && !cmdline.contains("sandbox") {
            found.push(cmdline);
        }
    }
    found
}

#[test]
fn the_sandbox_brings_the_example_to_ready_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir: PathBuf = dir.path().join("sandbox");
    let mut child = sandbox(&state_dir, &[])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the sandbox starts");
    let mut out = Output::of(&mut child);
    let ready_line = out.wait_for("phase Ready", Duration::from_secs(300));
    assert!(
        ready_line.contains("3/3 ready, 0 sealed, active openbao-"),
        "{ready_line}"
    );
    let export = out.wait_for("export KUBECONFIG=", Duration::from_secs(10));
    let kubeconfig = export
        .trim()
        .trim_start_matches("export KUBECONFIG=")
        .to_owned();
    assert!(Path::new(&kubeconfig).is_file(), "{kubeconfig}");
    out.wait_for("Press Ctrl-C", Duration::from_secs(10));

    // What the printed instructions promise, with the real kubectl.
    let table = kubectl(&kubeconfig, &["get", "vaultclusters", "-n", "openbao"]);
    eprintln!("{table}");
    let row = table.lines().nth(1).expect("one VaultCluster row");
    assert!(row.starts_with("openbao "), "{table}");
    assert!(row.contains("Ready"), "{table}");
    kubectl(
        &kubeconfig,
        &[
            "wait",
            "--for=condition=Ready",
            "vaultcluster/openbao",
            "-n",
            "openbao",
            "--timeout=30s",
        ],
    );
    let keys_secrets = kubectl(
        &kubeconfig,
        &[
            "get",
            "secret",
            "-n",
            "openbao",
            "-l",
            "vaultkeeper.io/keys",
            "-o",
            "jsonpath={.items[*].data.init\\.json}",
        ],
    );
    let record = base64::engine::general_purpose::STANDARD
        .decode(keys_secrets.trim())
        .expect("Secret data is base64");
    let keys: InitKeys = serde_json::from_slice(&record).expect("init.json holds the init output");
    assert_eq!(keys.shares.len(), 5);
    let exposition = metrics();
    assert!(
        exposition.contains("vaultkeeper_reconcile"),
        "the operator's metrics are served: {exposition}"
    );

    // A pod deleted as the instructions suggest comes back unsealed.
    kubectl(
        &kubeconfig,
        &["delete", "pod", "openbao-1", "-n", "openbao"],
    );
    wait_jsonpath(
        &kubeconfig,
        &[
            "get",
            "vaultcluster",
            "openbao",
            "-n",
            "openbao",
            "-o",
            "jsonpath={.status.phase} {.status.readyReplicas} {.status.sealedReplicas}",
        ],
        "Ready 3 0",
        Duration::from_secs(120),
    );

    // Ctrl-C: a clean stop, every pod process gone.
    let stopping = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(90);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "the sandbox did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("stopped in {:?}", stopping.elapsed());
    out.drain();
    assert!(exit.success(), "{exit}");
    assert!(
        out.seen.iter().any(|l| l.contains("every pod is stopped")),
        "{:?}",
        out.seen
    );
    assert_eq!(pod_processes(&state_dir), Vec::<String>::new());

    // No key in what the sandbox printed or in the operator's log.
    let log = std::fs::read_to_string(state_dir.join("operator.log")).expect("operator.log");
    assert!(log.contains("\"level\""), "the operator logged JSON lines");
    let printed = out.seen.join("\n");
    for share in &keys.shares {
        assert!(
            !log.contains(share.expose_secret()),
            "an unseal share in the log"
        );
        assert!(
            !printed.contains(share.expose_secret()),
            "an unseal share printed"
        );
    }
    if let Some(root) = &keys.root_token {
        assert!(
            !log.contains(root.expose_secret()),
            "the root token in the log"
        );
    }
}

#[test]
fn bad_input_names_the_flag_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An unknown example: exit status 2, the flag and the choices named.
    let output = sandbox(&dir.path().join("a"), &["--example", "nope"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--example") && stderr.contains("openbao, ha-raft, minimal"),
        "{stderr}"
    );
    assert!(!dir.path().join("a").exists(), "nothing was created");

    // A state directory that is someone else's: refused, left as it was.
    let foreign = dir.path().join("mine");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), "keep me").expect("write");
    let output = sandbox(&foreign, &[]).output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--state-dir"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).expect("kept"),
        "keep me"
    );

    // A manifest the API would refuse: the field and the fix, before anything starts.
    let manifest = dir.path().join("four.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata:\n  name: four\nspec:\n  replicas: 4\n",
    )
    .expect("write");
    let output = sandbox(
        &dir.path().join("b"),
        &["-f", manifest.to_str().expect("utf-8")],
    )
    .output()
    .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("spec.replicas"), "{stderr}");
}
