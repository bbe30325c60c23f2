//! Adoption of a running Vault Helm release, as docs/migrating-from-helm.md walks through
//! it: the official chart (`tests/fixtures/vault-helm`) installed with the real `helm` in
//! HA raft mode, real OpenBao pods initialized, unsealed and joined by hand with the bao
//! CLI, a secret written; then the VaultCluster `vaultkeeper import` makes of the same
//! values file. Without the opt-in it touches nothing and says so; without the keys
//! Secret it adopts nothing and says what to write; with both it takes the release over:
//! Ready, the same cluster id, the secret readable, each pod replaced at most once. Then
//! the release's records are removed and `helm uninstall` can no longer delete anything.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use vaultkeeper_api::VaultCluster;
use vaultkeeper_e2e::helm::{Helm, vault_chart};
use vaultkeeper_e2e::install::{self, parse_yaml_stream};
use vaultkeeper_e2e::operator::{
    Operator, assert_no_secret_leaked, bao_over, capture_logs, cluster_with_pods, count_events,
    events, ready, vaultkeeper_binary, wait_for,
};
use vaultkeeper_sim::SimCluster;

const SLOT: u8 = 231;
const NS: &str = "vault";
const RELEASE: &str = "vault";
const PODS: [&str; 3] = ["vault-0", "vault-1", "vault-2"];
/// The bound on the takeover, from the keys Secret to Ready: three pods replaced one at a
/// time, each unsealed again.
const TAKEOVER: Duration = Duration::from_secs(150);

/// The values the release is installed with, and imported from: HA raft, three voters
/// named after their pods (`setNodeId`), no agent injector (admission webhooks are not
/// simulated).
const VALUES: &str = "\
injector:
  enabled: false
server:
  ha:
    enabled: true
    replicas: 3
    raft:
      enabled: true
      setNodeId: true
";

/// The bao CLI against one pod over plain HTTP (the chart's default `tlsDisable`).
async fn bao(sim: &SimCluster, pod: &str, token: &str, args: &[&str]) -> Result<String, String> {
    bao_over("http", sim, NS, pod, token, args, None).await
}

async fn bao_stdin(sim: &SimCluster, pod: &str, args: &[&str], stdin: &str) -> String {
    bao_over("http", sim, NS, pod, "", args, Some(stdin))
        .await
        .unwrap_or_else(|e| panic!("bao {} at {pod}: {e}", args.join(" ")))
}

/// A pod's `sys/seal-status` (unauthenticated): sealed, initialized, and the cluster id
/// once unsealed.
async fn status(sim: &SimCluster, pod: &str) -> Option<Value> {
    let out = bao(sim, pod, "", &["read", "-format=json", "sys/seal-status"])
        .await
        .ok()?;
    let read: Value = serde_json::from_str(&out).ok()?;
    Some(read["data"].clone())
}

async fn until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The release's cluster, set up as its owners would have: init on vault-0, unseal, join
/// the others to raft and unseal them. Returns the init output.
async fn init_and_unseal_by_hand(sim: &SimCluster) -> Value {
    let started = Instant::now();
    for pod in PODS {
        until(&format!("{pod} answering"), Duration::from_secs(90), || {
            status(sim, pod)
        })
        .await;
    }
    let init: Value = serde_json::from_str(
        &bao(
            sim,
            "vault-0",
            "",
            &[
                "operator",
                "init",
                "-key-shares=5",
                "-key-threshold=3",
                "-format=json",
            ],
        )
        .await
        .expect("operator init"),
    )
    .expect("init prints JSON");
    eprintln!("pods answering, initialized: {:?}", started.elapsed());
    let shares: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .expect("shares")
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    for pod in PODS {
        if pod != "vault-0" {
            // The chart's raft configuration has no retry_join: a person joins by hand.
            eprintln!("joining {pod}: {:?}", started.elapsed());
            until(
                &format!("{pod} joined"),
                Duration::from_secs(60),
                || async {
                    bao(
                        sim,
                        pod,
                        "",
                        &[
                            "operator",
                            "raft",
                            "join",
                            "http://vault-0.vault-internal:8200",
                        ],
                    )
                    .await
                    .ok()
                },
            )
            .await;
        }
        for share in shares.iter().take(3) {
            bao_stdin(sim, pod, &["write", "sys/unseal", "key=-"], share).await;
        }
        until(
            &format!("{pod} unsealed"),
            Duration::from_secs(60),
            || async { status(sim, pod).await.filter(|s| s["sealed"] == false) },
        )
        .await;
        eprintln!("{pod} unsealed: {:?}", started.elapsed());
    }
    init
}

/// Each pod's UIDs, by pod name, in the order they were seen.
type UidsSeen = std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<String>>>>;

/// Each pod's UIDs seen so far, sampled until the test ends.
fn watch_pod_uids(sim: &SimCluster) -> (tokio::task::JoinHandle<()>, UidsSeen) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, Vec<String>>::new()));
    let pods: Api<Pod> = Api::namespaced(sim.client().expect("admin client"), NS);
    let record = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            if let Ok(list) = pods
                .list(&ListParams::default().labels("component=server"))
                .await
                && let Ok(mut seen) = record.lock()
            {
                for pod in list.items {
                    let uids = seen.entry(pod.name_any()).or_default();
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    if !uids.contains(&uid) {
                        uids.push(uid);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    (task, seen)
}

/// The release's StatefulSet as Helm left it: the same object, its spec and metadata
/// unchanged, written by no one but Helm and the StatefulSet controller's status.
async fn assert_untouched(statefulsets: &Api<StatefulSet>, chart: &StatefulSet) {
    let now = statefulsets.get("vault").await.expect("still there");
    assert_eq!(now.metadata.uid, chart.metadata.uid);
    assert_eq!(now.metadata.generation, chart.metadata.generation);
    assert_eq!(now.metadata.labels, chart.metadata.labels);
    assert_eq!(
        now.metadata.owner_references,
        chart.metadata.owner_references
    );
    let managers: Vec<String> = now
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        !managers.iter().any(|m| m == "vaultkeeper"),
        "the release's StatefulSet was written to: {managers:?}"
    );
}

fn degraded_because(vc: &VaultCluster, reason: &str) -> bool {
    vc.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Degraded" && c.status == "True" && c.reason == reason)
    })
}

fn degraded_message(vc: &VaultCluster) -> String {
    vc.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_helm_release_is_adopted_without_reinit_and_each_pod_restarts_at_most_once() {
    let started = Instant::now();
    let logs = capture_logs();
    let sim = cluster_with_pods(SLOT).await;
    let tools = Helm::for_cluster(&sim);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, VALUES).expect("values file written");
    let values = values.display().to_string();

    // 1. The release, as its owners run it today.
    tools.helm(&[
        "install",
        RELEASE,
        &vault_chart().display().to_string(),
        "-n",
        NS,
        "--create-namespace",
        "-f",
        &values,
    ]);
    let init = init_and_unseal_by_hand(&sim).await;
    let root = init["root_token"].as_str().expect("root token").to_owned();
    bao(
        &sim,
        "vault-0",
        &root,
        &["secrets", "enable", "-path=kv", "kv"],
    )
    .await
    .expect("kv enabled");
    bao(
        &sim,
        "vault-0",
        &root,
        &["write", "kv/app", "password=chart-era"],
    )
    .await
    .expect("secret written");
    // The root token is revoked once vaultkeeper has made its own identities (the default
    // `keys.rootToken: Revoke`); the release's users read with their own tokens.
    bao_over(
        "http",
        &sim,
        NS,
        "vault-0",
        &root,
        &["policy", "write", "app-reader", "-"],
        Some("path \"kv/*\" { capabilities = [\"read\"] }"),
    )
    .await
    .expect("policy written");
    let reader: Value = serde_json::from_str(
        &bao(
            &sim,
            "vault-0",
            &root,
            &[
                "token",
                "create",
                "-orphan",
                "-policy=app-reader",
                "-format=json",
            ],
        )
        .await
        .expect("a reader token"),
    )
    .expect("token JSON");
    let reader = reader["auth"]["client_token"]
        .as_str()
        .expect("client token")
        .to_owned();
    let cluster_id = status(&sim, "vault-0").await.expect("status")["cluster_id"].clone();
    assert!(cluster_id.is_string(), "no cluster id: {cluster_id}");
    let statefulsets: Api<StatefulSet> = Api::namespaced(sim.client().expect("client"), NS);
    let chart_sts = statefulsets
        .get("vault")
        .await
        .expect("the chart's StatefulSet");
    let (uid_watch, uids) = watch_pod_uids(&sim);
    eprintln!(
        "release installed, initialized by hand: {:?}",
        started.elapsed()
    );

    // 2. The VaultCluster, imported from the same values file.
    let imported = install::run(
        &vaultkeeper_binary(),
        &[
            "import",
            "--from-helm-values",
            &values,
            "--release",
            RELEASE,
            "--namespace",
            NS,
        ],
    )
    .expect("vaultkeeper import");
    let manifest = parse_yaml_stream("vaultkeeper import", &imported)
        .expect("import prints YAML")
        .remove(0);
    let mut operator = Operator::install_and_start(&sim).await;
    let clusters: Api<VaultCluster> = Api::namespaced(sim.client().expect("client"), NS);
    clusters
        .create(
            &PostParams::default(),
            &serde_json::from_value(manifest).expect("a VaultCluster"),
        )
        .await
        .expect("the VaultCluster is created");

    // 3. Without the opt-in nothing of the release is touched, and status says why.
    let vc = wait_for(
        &sim,
        NS,
        "vault",
        Duration::from_secs(30),
        "ObjectsNotOurs",
        |vc| degraded_because(vc, "ObjectsNotOurs"),
    )
    .await;
    let message = degraded_message(&vc);
    assert!(message.contains("vaultkeeper.io/adopt"), "{message}");
    assert_untouched(&statefulsets, &chart_sts).await;

    // 4. With the opt-in but no keys Secret: nothing adopted, and what to write.
    clusters
        .patch(
            "vault",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "vaultkeeper.io/adopt": format!("helm-release/{RELEASE}")}}})),
        )
        .await
        .expect("annotated");
    let vc = wait_for(
        &sim,
        NS,
        "vault",
        Duration::from_secs(30),
        "KeysMissing",
        |vc| degraded_because(vc, "KeysMissing"),
    )
    .await;
    let message = degraded_message(&vc);
    assert!(
        message.contains("vault-unseal-keys") && message.contains("docs/custody.md"),
        "{message}"
    );
    assert_untouched(&statefulsets, &chart_sts).await;

    // 5. The keys Secret, as docs/custody.md writes it by hand: then the takeover.
    let record = json!({
        "version": 1, "kind": "unseal", "threshold": 3,
        "shares": init["unseal_keys_b64"], "root_token": root,
    });
    let secrets: Api<Secret> = Api::namespaced(sim.client().expect("client"), NS);
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some("vault-unseal-keys".into()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    "init.json".to_owned(),
                    k8s_openapi::ByteString(record.to_string().into_bytes()),
                )])),
                ..Default::default()
            },
        )
        .await
        .expect("the keys Secret is created");
    let keys_written = Instant::now();
    let vc = wait_for(
        &sim,
        NS,
        "vault",
        TAKEOVER,
        "Ready after the takeover",
        ready,
    )
    .await;
    eprintln!("keys Secret to Ready: {:?}", keys_written.elapsed());
    let status_now = vc.status.clone().expect("status");
    assert!(status_now.initialized);

    // The same cluster, not a new one: its id, and the secret written before.
    let active = status_now.active_pod.clone().expect("an active pod");
    let now = status(&sim, &active).await.expect("status");
    assert_eq!(now["cluster_id"], cluster_id, "another cluster: {now:#}");
    let read = bao(
        &sim,
        &active,
        &reader,
        &["read", "-field=password", "kv/app"],
    )
    .await
    .expect("the secret reads");
    assert_eq!(read.trim(), "chart-era");
    assert_eq!(
        vaultkeeper_e2e::operator::init_commands(&sim, NS),
        0,
        "vaultkeeper initialized again"
    );

    // Ours now: the StatefulSet is the VaultCluster's, Helm's marks are off the Services.
    let sts = statefulsets.get("vault").await.expect("the StatefulSet");
    assert_ne!(sts.metadata.uid, chart_sts.metadata.uid, "replaced");
    assert!(
        sts.owner_references()
            .iter()
            .any(|r| r.kind == "VaultCluster" && r.controller == Some(true)),
        "{:?}",
        sts.metadata.owner_references
    );
    let services: Api<Service> = Api::namespaced(sim.client().expect("client"), NS);
    for name in ["vault", "vault-active", "vault-standby", "vault-internal"] {
        let svc = services.get(name).await.expect("the Service");
        assert_eq!(svc.labels()["app.kubernetes.io/managed-by"], "vaultkeeper");
        assert!(
            !svc.annotations().contains_key("meta.helm.sh/release-name"),
            "{name} still names the release"
        );
    }
    let seen = events(&sim, NS).await;
    assert_eq!(count_events(&seen, "Adopted"), 1, "{seen:#?}");
    uid_watch.abort();
    let uids = uids.lock().expect("uids").clone();
    for pod in PODS {
        let seen = uids.get(pod).cloned().unwrap_or_default();
        assert!(
            (1..=2).contains(&seen.len()),
            "{pod} ran as {} pods: {seen:?}",
            seen.len()
        );
    }

    // 6. Helm afterwards: with the release's records gone, `helm uninstall` finds nothing
    //    to delete.
    tools
        .kubectl(&["delete", "secret", "-n", NS, "-l", "owner=helm,name=vault"])
        .expect("the release records are deleted");
    let listed = tools.helm(&["list", "-n", NS, "-q"]);
    assert!(listed.trim().is_empty(), "{listed}");
    let uninstall = tools.try_helm(&["uninstall", RELEASE, "-n", NS]);
    assert!(
        uninstall
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not found")),
        "{uninstall:?}"
    );
    assert!(statefulsets.get_opt("vault").await.expect("read").is_some());
    assert!(services.get_opt("vault").await.expect("read").is_some());

    let mut secrets_to_find: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    secrets_to_find.push(root.clone());
    secrets_to_find.push(reader.clone());
    assert_no_secret_leaked(&sim, NS, &secrets_to_find, &logs.text()).await;
    eprintln!("adoption test: {:?}", started.elapsed());
    operator.stop().await;
    sim.shutdown().await;
}
