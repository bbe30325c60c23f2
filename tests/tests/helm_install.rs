//! The operator's chart installed into the simulated cluster with the real Helm binary, as
//! docs/sandbox.md tells a person to: `helm install`, `status`, `upgrade`, `rollback`,
//! `history` and `uninstall`. Helm's release storage writes its Secrets as protobuf, so this
//! is also the end-to-end check of the API server's protobuf bodies.
//!
//! The second test installs the official Vault chart (`tests/fixtures/vault-helm`) in HA
//! raft mode with real OpenBao pods and runs its `helm test` hook.

use std::collections::BTreeSet;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use vaultkeeper_e2e::helm::{Helm as Tools, vault_chart};
use vaultkeeper_e2e::install::{
    InstallError, chart_dir, helm, kind, name, namespace, parse_yaml_stream,
};
use vaultkeeper_e2e::operator::tool;
use vaultkeeper_sim::kubelet::KubeletConfig;
use vaultkeeper_sim::{SimCluster, SimConfig};

/// The simulated-cluster slots of the tests here.
const SLOT: u8 = 210;
const VAULT_CHART_SLOT: u8 = 212;
const RELEASE: &str = "vk";
const RELEASE_NAMESPACE: &str = "vk-test";
/// The namespace the chart's default values watch; it must exist before install.
const WATCHED: &str = "vault";

fn ok<T>(r: Result<T, InstallError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// What the tests here ask of the release beyond Helm's own commands.
trait ReleaseChecks {
    async fn helm_while_pods_become_ready(&self, pods: &Api<Pod>, args: &[&str]);
    fn live(&self, rendered: &Value) -> Option<Value>;
    fn manifest(&self) -> Vec<Value>;
    fn status(&self) -> Value;
    fn deployment_replicas(&self) -> i64;
}

impl ReleaseChecks for Tools {
    /// Runs Helm (e.g. with `--wait`) while marking every pod of the release namespace
    /// ready, as a kubelet would once its containers pass their readiness probes.
    async fn helm_while_pods_become_ready(&self, pods: &Api<Pod>, args: &[&str]) {
        let mut child = std::process::Command::new(ok(helm()))
            .args(args)
            .args(["--kubeconfig", &self.kubeconfig])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("helm starts");
        let ready = json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        while child.try_wait().expect("helm runs").is_none() {
            for pod in pods.list(&ListParams::default()).await.expect("pods list") {
                let Some(name) = pod.metadata.name else {
                    continue;
                };
                let _ = pods
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&ready))
                    .await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let output = child.wait_with_output().expect("helm's output");
        assert!(
            output.status.success(),
            "helm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The live object a rendered one names, or `None` when it does not exist.
    fn live(&self, rendered: &Value) -> Option<Value> {
        let api_version = rendered["apiVersion"].as_str().unwrap_or_default();
        let resource = match api_version.split_once('/') {
            Some((group, version)) => format!("{}.{version}.{group}", kind(rendered)),
            None => kind(rendered).to_string(),
        };
        let mut args = vec!["get", resource.as_str(), name(rendered), "-o", "json"];
        let ns = namespace(rendered);
        if !ns.is_empty() {
            args.extend_from_slice(&["-n", ns]);
        }
        match self.kubectl(&args) {
            Ok(out) => Some(serde_json::from_str(&out).expect("kubectl prints JSON")),
            Err(InstallError::Command { stderr, .. }) if stderr.contains("NotFound") => None,
            Err(e) => panic!("{e}"),
        }
    }

    /// What the release applied (`helm get manifest`), each object with the namespace
    /// Helm gave it when the template left it out.
    fn manifest(&self) -> Vec<Value> {
        let out = self.helm(&["get", "manifest", RELEASE, "-n", RELEASE_NAMESPACE]);
        ok(parse_yaml_stream("helm get manifest", &out))
    }

    fn status(&self) -> Value {
        self.status_of(RELEASE, RELEASE_NAMESPACE)
    }

    fn deployment_replicas(&self) -> i64 {
        let out = self
            .kubectl(&[
                "get",
                "deployment",
                "vk-vaultkeeper",
                "-n",
                RELEASE_NAMESPACE,
                "-o",
                "jsonpath={.spec.replicas}",
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        out.trim().parse().expect("replicas is a number")
    }
}

/// The first place where `rendered` says something `live` does not (the server may add
/// defaults and metadata, never change or drop what was asked).
fn first_difference(live: &Value, rendered: &Value, path: &str) -> Option<String> {
    match (live, rendered) {
        (Value::Object(l), Value::Object(r)) => r.iter().find_map(|(k, rv)| {
            let lv = l.get(k).unwrap_or(&Value::Null);
            first_difference(lv, rv, &format!("{path}.{k}"))
        }),
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => l
            .iter()
            .zip(r)
            .enumerate()
            .find_map(|(i, (lv, rv))| first_difference(lv, rv, &format!("{path}[{i}]"))),
        // A key rendered empty (`annotations:` with nothing under it) asks for nothing.
        (_, Value::Null) => None,
        (l, r) if l == r => None,
        (l, r) => Some(format!("{path}: rendered {r}, live {l}")),
    }
}

/// Every rendered object exists and carries every field as rendered.
fn assert_applied_as_rendered(tools: &Tools, rendered: &[Value]) {
    assert!(!rendered.is_empty(), "the release rendered nothing");
    for object in rendered {
        let what = format!("{} {}/{}", kind(object), namespace(object), name(object));
        let Some(live) = tools.live(object) else {
            panic!("{what} was rendered but does not exist");
        };
        if let Some(diff) = first_difference(&live, object, "") {
            panic!("{what} differs from what Helm rendered: {diff}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_rolls_back_and_uninstalls_the_operator_chart() {
    let started = Instant::now();
    let sim = SimCluster::start(SimConfig::for_slot(SLOT))
        .await
        .expect("simulated cluster starts");
    let client = sim.client().expect("administrator client");
    let pods = Api::<Pod>::namespaced(client.clone(), RELEASE_NAMESPACE);
    Api::<Namespace>::all(client)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": WATCHED}})).expect("namespace"),
        )
        .await
        .expect("the watched namespace is created");
    let tools = Tools::for_cluster(&sim);
    let chart = chart_dir().display().to_string();

    // Install: the command docs/sandbox.md shows.
    tools.helm(&[
        "install",
        RELEASE,
        &chart,
        "-n",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "--skip-crds",
    ]);
    let status = tools.status();
    assert_eq!(status["info"]["status"], "deployed", "{status:#}");
    assert_eq!(status["version"], 1);
    let installed = tools.manifest();
    let kinds: BTreeSet<&str> = installed.iter().map(kind).collect();
    for wanted in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ] {
        assert!(kinds.contains(wanted), "no {wanted} in {kinds:?}");
    }
    assert_applied_as_rendered(&tools, &installed);
    assert_eq!(tools.deployment_replicas(), 2);

    // Upgrade with a changed value, waiting for the rollout: the new template's pods
    // become ready as a kubelet would report them (this cluster runs no pods).
    let waited = Instant::now();
    tools
        .helm_while_pods_become_ready(
            &pods,
            &[
                "upgrade",
                RELEASE,
                &chart,
                "-n",
                RELEASE_NAMESPACE,
                "--skip-crds",
                "--set",
                "replicaCount=3",
                "--set",
                "logLevel=debug",
                "--wait",
                "--timeout",
                "60s",
            ],
        )
        .await;
    eprintln!("helm upgrade --wait: {:?}", waited.elapsed());
    let rollout: Value = serde_json::from_str(
        &tools
            .kubectl(&[
                "get",
                "deployment",
                "vk-vaultkeeper",
                "-n",
                RELEASE_NAMESPACE,
                "-o",
                "json",
            ])
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .expect("JSON");
    assert_eq!(rollout["status"]["updatedReplicas"], 3, "{rollout:#}");
    assert_eq!(rollout["status"]["availableReplicas"], 3, "{rollout:#}");
    let status = tools.status();
    assert_eq!(status["info"]["status"], "deployed", "{status:#}");
    assert_eq!(status["version"], 2);
    let upgraded = tools.manifest();
    assert_ne!(upgraded, installed, "the changed values changed nothing");
    assert_applied_as_rendered(&tools, &upgraded);
    assert_eq!(tools.deployment_replicas(), 3);

    // Rollback to the first revision.
    tools.helm(&["rollback", RELEASE, "1", "-n", RELEASE_NAMESPACE]);
    let status = tools.status();
    assert_eq!(status["info"]["status"], "deployed", "{status:#}");
    assert_eq!(status["version"], 3);
    assert_applied_as_rendered(&tools, &tools.manifest());
    assert_eq!(tools.deployment_replicas(), 2);
    let history: Value = serde_json::from_str(&tools.helm(&[
        "history",
        RELEASE,
        "-n",
        RELEASE_NAMESPACE,
        "-o",
        "json",
    ]))
    .expect("helm history prints JSON");
    let statuses: Vec<&str> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert_eq!(statuses, ["superseded", "superseded", "deployed"]);
    // The release records are Secrets found by label, as Helm's storage driver finds them.
    let records = tools
        .kubectl(&[
            "get",
            "secrets",
            "-n",
            RELEASE_NAMESPACE,
            "-l",
            "owner=helm,name=vk",
            "-o",
            "name",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(records.lines().count(), 3, "{records}");

    // Uninstall removes every object and every release record.
    tools.helm(&["uninstall", RELEASE, "-n", RELEASE_NAMESPACE]);
    for object in &installed {
        assert!(
            tools.live(object).is_none(),
            "{} {}/{} is left after uninstall",
            kind(object),
            namespace(object),
            name(object)
        );
    }
    let records = tools
        .kubectl(&[
            "get",
            "secrets",
            "-n",
            RELEASE_NAMESPACE,
            "-l",
            "owner=helm",
            "-o",
            "name",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(records.trim().is_empty(), "release records left: {records}");

    // Nothing Helm sent was refused or failed: the 404s are its look-ups before creating.
    assert!(
        sim.requests().iter().any(|r| {
            r.user_agent.to_ascii_lowercase().starts_with("helm")
                && r.verb == "create"
                && r.resource == "secrets"
                && r.code == 201
        }),
        "no release Secret was created by Helm"
    );
    let refused = refused_helm_requests(&sim);
    assert!(refused.is_empty(), "Helm's refused requests: {refused:#?}");
    eprintln!(
        "helm install/upgrade/rollback/uninstall: {:?}",
        started.elapsed()
    );
    sim.shutdown().await;
}

/// Helm's own refused requests in this cluster, beyond the 404s of its look-ups.
fn refused_helm_requests(sim: &SimCluster) -> Vec<String> {
    sim.requests()
        .iter()
        .filter(|r| r.user_agent.to_ascii_lowercase().starts_with("helm"))
        .filter(|r| r.code >= 400 && r.code != 404)
        .map(|r| format!("{} {} {}?{}", r.code, r.method, r.path, r.query))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_vault_chart_installs_in_ha_raft_mode_and_its_helm_test_passes() {
    let started = Instant::now();
    let mut config = SimConfig::for_slot(VAULT_CHART_SLOT);
    config.pods = Some(KubeletConfig {
        bao: tool("bao", "VAULTKEEPER_BAO"),
        vaultkeeper: None,
        backoff: None,
        extra_images: Vec::new(),
    });
    let sim = SimCluster::start(config)
        .await
        .expect("simulated cluster starts");
    let tools = Tools::for_cluster(&sim);
    let chart = vault_chart().display().to_string();
    // The agent injector is a MutatingWebhookConfiguration; admission webhooks are not
    // simulated, so it stays off.
    tools.helm(&[
        "install",
        "vault",
        &chart,
        "-n",
        "vault",
        "--create-namespace",
        "--set",
        "injector.enabled=false",
        "--set",
        "server.ha.enabled=true",
        "--set",
        "server.ha.raft.enabled=true",
        "--set",
        "server.ha.replicas=3",
    ]);
    let status = tools.status_of("vault", "vault");
    assert_eq!(status["info"]["status"], "deployed", "{status:#}");
    let rendered = ok(parse_yaml_stream(
        "helm get manifest",
        &tools.helm(&["get", "manifest", "vault", "-n", "vault"]),
    ));
    let names: BTreeSet<String> = rendered
        .iter()
        .map(|o| format!("{}/{}", kind(o), name(o)))
        .collect();
    for wanted in [
        "StatefulSet/vault",
        "Service/vault",
        "Service/vault-active",
        "Service/vault-standby",
        "Service/vault-internal",
        "ConfigMap/vault-config",
        "PodDisruptionBudget/vault",
        "ServiceAccount/vault",
        "Role/vault-discovery-role",
    ] {
        assert!(names.contains(wanted), "{wanted} not rendered: {names:?}");
    }
    assert_applied_as_rendered(&tools, &rendered);

    // The chart's test pod asks the `vault` Service for `vault status` until it reports a
    // seal state; the servers answer (sealed, uninitialized) once their pods run.
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    let report = loop {
        match tools.try_helm(&["test", "vault", "-n", "vault", "--timeout", "90s", "--logs"]) {
            Ok(report) => break report,
            Err(e) if Instant::now() < deadline => {
                eprintln!("helm test not passing yet: {e}");
                let _ = tools.kubectl(&["delete", "pod", "vault-server-test", "-n", "vault"]);
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(report.contains("Phase:          Succeeded"), "{report}");
    assert!(report.contains("sealed: true"), "{report}");

    tools.helm(&["uninstall", "vault", "-n", "vault"]);
    for object in &rendered {
        assert!(
            tools.live(object).is_none(),
            "{} {} is left after uninstall",
            kind(object),
            name(object)
        );
    }
    let refused = refused_helm_requests(&sim);
    assert!(refused.is_empty(), "Helm's refused requests: {refused:#?}");
    eprintln!(
        "official Vault chart install/test/uninstall: {:?}",
        started.elapsed()
    );
    sim.shutdown().await;
}
