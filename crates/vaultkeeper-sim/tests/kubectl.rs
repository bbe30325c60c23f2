//! Drives the real `kubectl` (v1.32) against the simulated API server. Each test owns a
//! loopback slot (127.20.10+n.1) so tests run in parallel.

mod common;

use common::{VAULTCLUSTER_CRD, kubectl};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use vaultkeeper_sim::{SimCluster, SimConfig};

struct Kubectl<'a> {
    kubeconfig: &'a Path,
    dir: tempfile::TempDir,
}

impl<'a> Kubectl<'a> {
    fn new(c: &'a SimCluster) -> Self {
        Kubectl {
            kubeconfig: c.kubeconfig_path(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(kubectl())
            .args(args)
            .env("KUBECONFIG", self.kubeconfig)
            .env("HOME", self.dir.path())
            .output()
            .expect("kubectl runs")
    }

    /// Runs and requires success, returning stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }
}

const DEMO: &str = "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata:\n  name: demo\nspec:\n  image: openbao/openbao:2.7.2\n";

async fn cluster(slot: u8) -> SimCluster {
    SimCluster::start(SimConfig::for_slot(10 + slot))
        .await
        .expect("cluster starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_crd_and_object_client_side_then_server_side_and_prints_columns() {
    let c = cluster(1).await;
    let k = Kubectl::new(&c);
    let crd = k.file("crd.yaml", VAULTCLUSTER_CRD);
    let out = k.ok(&["apply", "-f", &crd]);
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/vaultclusters.vaultkeeper.io created"
        ),
        "{out}"
    );
    let vc = k.file("vc.yaml", DEMO);
    assert!(
        k.ok(&["apply", "-f", &vc])
            .contains("vaultcluster.vaultkeeper.io/demo created")
    );
    // Re-applying an unchanged manifest changes nothing.
    assert!(k.ok(&["apply", "-f", &vc]).contains("unchanged"));
    // Printer columns come from the CRD; the default (3) was applied by the server.
    let table = k.ok(&["get", "vaultclusters"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "REPLICAS", "PHASE", "READY", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["demo", "3"]);
    assert!(
        row[2].ends_with('s'),
        "age column prints as a duration: {row:?}"
    );
    // Short name resolves through discovery.
    assert!(
        k.ok(&["get", "vc", "demo", "-o", "name"])
            .contains("vaultcluster.vaultkeeper.io/demo")
    );
    // Server-side apply takes over the fields with the kubectl field manager.
    let out = k.ok(&["apply", "--server-side", "--force-conflicts", "-f", &vc]);
    assert!(out.contains("serverside-applied"), "{out}");
    let obj: Value =
        serde_json::from_str(&k.ok(&["get", "vc", "demo", "-o", "json", "--show-managed-fields"]))
            .unwrap();
    let managers: Vec<&str> = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"kubectl"), "{managers:?}");
    // A conflicting server-side apply from another manager is refused with the field named.
    let five = k.file(
        "vc5.yaml",
        &DEMO.replace(
            "image: openbao/openbao:2.7.2",
            "image: openbao/openbao:2.7.2\n  replicas: 5",
        ),
    );
    // The creator owns the defaulted replicas, so the operator must force to take it.
    let refused = k.run(&[
        "apply",
        "--server-side",
        "--field-manager",
        "operator",
        "-f",
        &five,
    ]);
    assert!(!refused.status.success());
    k.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "operator",
        "-f",
        &five,
    ]);
    let seven = k.file(
        "vc7.yaml",
        &DEMO.replace(
            "image: openbao/openbao:2.7.2",
            "image: openbao/openbao:2.7.2\n  replicas: 7",
        ),
    );
    let out2 = k.run(&["apply", "--server-side", "-f", &seven]);
    assert!(!out2.status.success());
    let err = String::from_utf8_lossy(&out2.stderr);
    assert!(
        err.contains("conflict") && err.contains(".spec.replicas") && err.contains("operator"),
        "{err}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_yaml_explain_patch_and_validation_errors() {
    let c = cluster(2).await;
    let k = Kubectl::new(&c);
    k.ok(&["apply", "-f", &k.file("crd.yaml", VAULTCLUSTER_CRD)]);
    k.ok(&["apply", "-f", &k.file("vc.yaml", DEMO)]);
    let yaml = k.ok(&["get", "vc", "demo", "-o", "yaml"]);
    for want in [
        "apiVersion: vaultkeeper.io/v1alpha1",
        "kind: VaultCluster",
        "generation: 1",
        "replicas: 3",
        "uid:",
        "creationTimestamp:",
    ] {
        assert!(yaml.contains(want), "{want} missing from\n{yaml}");
    }
    let explain = k.ok(&["explain", "vaultcluster.spec.replicas"]);
    assert!(explain.contains("Number of Vault pods."), "{explain}");
    // Merge patch bumps generation; a status patch does not.
    k.ok(&[
        "patch",
        "vc",
        "demo",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
    ]);
    k.ok(&[
        "patch",
        "vc",
        "demo",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running"}}"#,
    ]);
    let obj: Value = serde_json::from_str(&k.ok(&["get", "vc", "demo", "-o", "json"])).unwrap();
    assert_eq!(obj["spec"]["replicas"], 5);
    assert_eq!(obj["status"]["phase"], "Running");
    assert_eq!(obj["metadata"]["generation"], 2);
    // JSON patch works on custom objects too.
    k.ok(&[
        "patch",
        "vc",
        "demo",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/image","value":"openbao/openbao:2.7.3"}]"#,
    ]);
    // Schema and CEL failures come back as the real server words them.
    let bad = k.run(&[
        "patch",
        "vc",
        "demo",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":9}}"#,
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 7"), "{err}");
    let even = k.run(&[
        "patch",
        "vc",
        "demo",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ]);
    assert!(String::from_utf8_lossy(&even.stderr).contains("replicas must be odd"));
    // Strategic merge patch is refused for custom resources, as by the real server.
    let smp = k.run(&[
        "patch",
        "vc",
        "demo",
        "--type=strategic",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]);
    assert!(!smp.status.success());
    // Unknown fields are refused under kubectl's default strict validation.
    let unknown = k.file("bad.yaml", &DEMO.replace("spec:\n", "spec:\n  bogus: 1\n"));
    let out = k.run(&["apply", "-f", &unknown]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown field \"spec.bogus\""),
        "{err}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_shows_events_recorded_through_events_k8s_io() {
    let c = cluster(3).await;
    let k = Kubectl::new(&c);
    k.ok(&["apply", "-f", &k.file("crd.yaml", VAULTCLUSTER_CRD)]);
    k.ok(&["apply", "-f", &k.file("vc.yaml", DEMO)]);
    let obj: Value = serde_json::from_str(&k.ok(&["get", "vc", "demo", "-o", "json"])).unwrap();
    // The operator's recorder writes events.k8s.io/v1 Events; describe reads core/v1.
    let client = c.client().unwrap();
    let reporter = kube::runtime::events::Reporter {
        controller: "vaultkeeper".into(),
        instance: Some("op-0".into()),
    };
    let recorder = kube::runtime::events::Recorder::new(client, reporter);
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("vaultkeeper.io/v1alpha1".into()),
        kind: Some("VaultCluster".into()),
        name: Some("demo".into()),
        namespace: Some("default".into()),
        uid: obj["metadata"]["uid"].as_str().map(str::to_string),
        ..Default::default()
    };
    recorder
        .publish(
            &kube::runtime::events::Event {
                type_: kube::runtime::events::EventType::Normal,
                reason: "Initialized".into(),
                note: Some("cluster initialized on demo-0".into()),
                action: "Init".into(),
                secondary: None,
            },
            &reference,
        )
        .await
        .expect("event recorded");
    let out = k.ok(&["describe", "vc", "demo"]);
    assert!(
        out.contains("Initialized") && out.contains("cluster initialized on demo-0"),
        "{out}"
    );
    let events = k.ok(&["get", "events"]);
    assert!(events.contains("vaultcluster/demo"), "{events}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_keeps_the_object_until_the_last_finalizer_goes() {
    let c = cluster(4).await;
    let k = Kubectl::new(&c);
    k.ok(&["apply", "-f", &k.file("crd.yaml", VAULTCLUSTER_CRD)]);
    let with_fin = DEMO.replace(
        "  name: demo\n",
        "  name: demo\n  finalizers: [vaultkeeper.io/cleanup]\n",
    );
    k.ok(&["apply", "-f", &k.file("vc.yaml", &with_fin)]);
    k.ok(&["delete", "vc", "demo", "--wait=false"]);
    let obj: Value = serde_json::from_str(&k.ok(&["get", "vc", "demo", "-o", "json"])).unwrap();
    assert!(
        obj["metadata"]["deletionTimestamp"].is_string(),
        "marked for deletion, still there"
    );
    k.ok(&[
        "patch",
        "vc",
        "demo",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    let gone = k.run(&["get", "vc", "demo"]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_wait_for_condition_returns_when_the_status_says_so() {
    let c = cluster(5).await;
    let k = Kubectl::new(&c);
    k.ok(&["apply", "-f", &k.file("crd.yaml", VAULTCLUSTER_CRD)]);
    k.ok(&["apply", "-f", &k.file("vc.yaml", DEMO)]);
    let kubeconfig = c.kubeconfig_path().to_path_buf();
    let home = k.dir.path().to_path_buf();
    let waiter = std::thread::spawn(move || {
        Command::new(kubectl())
            .args(["wait", "--for=condition=Ready", "vc/demo", "--timeout=30s"])
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", home)
            .output()
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "AllPodsReady", "message": "3/3 ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    k.ok(&[
        "patch",
        "vc",
        "demo",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
    let out = tokio::task::spawn_blocking(move || waiter.join().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));
    let cols = k.ok(&["get", "vc", "demo"]);
    assert!(
        cols.lines().nth(1).unwrap().contains("True"),
        "Ready column: {cols}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_and_logs_reach_a_running_pod() {
    // Needs root and the OpenBao binary (scripts/install-tools.sh): the pod really runs.
    let mut cfg = SimConfig::for_slot(16);
    cfg.pods = Some(vaultkeeper_sim::kubelet::KubeletConfig {
        extra_images: Vec::new(),
        bao: common::bao(),
        vaultkeeper: None,
        backoff: None,
    });
    let c = SimCluster::start(cfg)
        .await
        .expect("cluster with a kubelet");
    let k = Kubectl::new(&c);
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: shell\nspec:\n  containers:\n  - name: main\n    image: openbao/openbao:2.7.2\n    command: [\"/bin/sh\", \"-c\", \"echo hello from the pod; exec sleep 3600\"]\n";
    k.ok(&["apply", "-f", &k.file("pod.yaml", pod)]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/shell",
        "--timeout=60s",
    ]);
    let logs = k.ok(&["logs", "shell"]);
    assert_eq!(logs.trim(), "hello from the pod");
    // stdin reaches the command; stdout comes back.
    let mut child = Command::new(kubectl())
        .args(["exec", "-i", "shell", "--", "cat"])
        .env("KUBECONFIG", c.kubeconfig_path())
        .env("HOME", k.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"through stdin\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");
    // The exit code of the command is kubectl's exit code.
    let failed = k.run(&["exec", "shell", "--", "sh", "-c", "exit 3"]);
    assert_eq!(
        failed.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    // Every exec is in the audit, with its argv.
    assert!(
        c.exec_audit()
            .iter()
            .any(|r| r.argv == ["sh", "-c", "exit 3"])
    );
    c.shutdown().await;
}

/// An old client (Debian's kubectl 1.20, from `.tools/`) reads the schema only from
/// `/openapi/v2`, as protobuf: `explain` of a custom field and of a built-in one, and the
/// strategic merge patch of a client-side `apply` of a built-in kind, come from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_kubectl_explains_and_applies_through_openapi_v2_protobuf() {
    let old = common::workspace_root().join(".tools/bin/kubectl-1.20");
    assert!(
        old.exists(),
        "{} is missing: run scripts/install-tools.sh",
        old.display()
    );
    let c = cluster(7).await;
    let k = Kubectl::new(&c);
    let run = |args: &[&str]| {
        let out = Command::new(&old)
            .args(args)
            .env("KUBECONFIG", c.kubeconfig_path())
            .env("HOME", k.dir.path())
            .output()
            .expect("kubectl 1.20 runs");
        assert!(
            out.status.success(),
            "kubectl 1.20 {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    k.ok(&["apply", "-f", &k.file("crd.yaml", VAULTCLUSTER_CRD)]);
    let explain = run(&["explain", "vaultcluster.spec.replicas"]);
    assert!(explain.contains("Number of Vault pods."), "{explain}");
    let explain = run(&["explain", "configmap.data"]);
    assert!(
        explain.contains("FIELD:    data <map[string]string>"),
        "{explain}"
    );
    // Client-side apply of a built-in kind: create, then a change computed as a
    // strategic merge patch from the schema (the annotation keeps the last applied state).
    let cm = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old-client\n  namespace: default\ndata:\n  a: \"{value}\"\n  b: kept\n"
        )
    };
    assert!(
        run(&["apply", "-f", &k.file("cm.yaml", &cm("1"))])
            .contains("configmap/old-client created")
    );
    assert!(
        run(&["apply", "-f", &k.file("cm.yaml", &cm("2"))])
            .contains("configmap/old-client configured")
    );
    let obj: Value = serde_json::from_str(&k.ok(&[
        "get",
        "configmap",
        "old-client",
        "-n",
        "default",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(obj["data"], json!({"a": "2", "b": "kept"}));
    // And a custom object, which is patched with a JSON merge patch.
    assert!(
        run(&["apply", "-f", &k.file("vc.yaml", DEMO)])
            .contains("vaultcluster.vaultkeeper.io/demo created")
    );
    c.shutdown().await;
}
