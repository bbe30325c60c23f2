//! Declared Vault configuration end to end: VaultPolicy resources from a team namespace,
//! applied by the operator (running as its ServiceAccount with the RBAC from `deploy/`)
//! through its config identity into a real OpenBao pod on the simulated cluster. One
//! cluster and one operator serve every scenario, in order: create, what a token of the
//! policy may do, a hand change reverted within one resync, Vault refusing bad HCL, a
//! namespace the cluster does not accept, reserved names, a name two resources ask for,
//! deletion, and deletion with Retain.
//!
//! The login tested is a token created for the policy by the root token: declaring a
//! Kubernetes auth role (and logging in with a pod's projected token) is not part of this
//! resource kind yet.

use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, PostParams};
use vaultkeeper_api::VaultPolicy;
use vaultkeeper_e2e::install;
use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, assert_no_secret_leaked, bao_at, bao_at_with_stdin, capture_logs,
    cluster_with_pods, events, kubectl, ready, secrets_of, stored_keys, wait_for,
};
use vaultkeeper_sim::SimCluster;
use vaultkeeper_vault::secret::ExposeSecret;

const READY: Duration = Duration::from_secs(420);
/// Long enough for a pass (login, read, write, status) on a loaded machine.
const SETTLE: Duration = Duration::from_secs(60);
const POD: &str = "vault-0";

fn example(name: &str) -> String {
    std::fs::read_to_string(
        install::workspace_root()
            .join("examples/config")
            .join(format!("{name}.yaml")),
    )
    .expect("example exists")
}

fn policy_from(yaml: &str) -> VaultPolicy {
    serde_saphyr::from_str(yaml).expect("a VaultPolicy manifest")
}

async fn namespace(sim: &SimCluster, name: &str) {
    let ns =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let _ = install::apply_one(&sim.client().expect("admin"), &ns, "e2e").await;
}

async fn create(sim: &SimCluster, policy: &VaultPolicy) {
    let ns = policy.metadata.namespace.clone().expect("namespace");
    let api: Api<VaultPolicy> = Api::namespaced(sim.client().expect("admin"), &ns);
    api.create(&PostParams::default(), policy)
        .await
        .expect("the VaultPolicy is created");
}

fn inline(namespace: &str, name: &str, vault_name: &str, hcl: &str) -> VaultPolicy {
    let mut policy = policy_from(&example("policy"));
    policy.metadata.namespace = Some(namespace.into());
    policy.metadata.name = Some(name.into());
    policy.spec.name = Some(vault_name.into());
    policy.spec.policy = hcl.into();
    policy
}

fn synced(policy: &VaultPolicy) -> Option<(String, String, String)> {
    let status = policy.status.as_ref()?;
    if status.observed_generation != policy.metadata.generation {
        return None;
    }
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Synced")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the policy's Synced condition for its current generation has `status`.
async fn wait_synced(sim: &SimCluster, ns: &str, name: &str, status: &str) -> VaultPolicy {
    let api: Api<VaultPolicy> = Api::namespaced(sim.client().expect("admin"), ns);
    let deadline = Instant::now() + SETTLE;
    loop {
        let current = api.get(name).await.expect("the VaultPolicy exists");
        if synced(&current).is_some_and(|(s, _, _)| s == status) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "{ns}/{name} never reached Synced={status}: {:?}",
            current.status
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_gone(sim: &SimCluster, ns: &str, name: &str) {
    let api: Api<VaultPolicy> = Api::namespaced(sim.client().expect("admin"), ns);
    let deadline = Instant::now() + SETTLE;
    while api.get_opt(name).await.expect("reading").is_some() {
        assert!(Instant::now() < deadline, "{ns}/{name} was never deleted");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn delete(sim: &SimCluster, ns: &str, name: &str) {
    let api: Api<VaultPolicy> = Api::namespaced(sim.client().expect("admin"), ns);
    api.delete(name, &DeleteParams::default())
        .await
        .expect("the delete is accepted");
    wait_gone(sim, ns, name).await;
}

/// The policy text in Vault, or `None` when Vault has no such policy.
async fn vault_policy(sim: &SimCluster, root: &str, name: &str) -> Option<String> {
    let out = bao_at(
        sim,
        "vault",
        POD,
        root,
        &["read", "-format=json", &format!("sys/policy/{name}")],
    )
    .await
    .ok()?;
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    json["data"]["rules"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declared_policies_are_applied_kept_refused_and_removed() {
    let started = Instant::now();
    let logs = capture_logs();
    let sim = cluster_with_pods(217).await;
    let mut operator = Operator::install_and_start(&sim).await;
    println!(
        "simulated cluster and operator up after {:?}",
        started.elapsed()
    );
    // The test makes hand changes as root, so the cluster keeps its root token.
    let cluster_yaml = example("cluster").replace(
        "  replicas: 1\n",
        "  replicas: 1\n  keys:\n    rootToken: Keep\n",
    );
    assert!(cluster_yaml.contains("rootToken: Keep"));
    apply_cluster(&sim, &cluster_yaml, "vault").await;
    for ns in ["team-a", "team-b"] {
        namespace(&sim, ns).await;
    }
    wait_for(&sim, "vault", "vault", READY, "Ready", ready).await;
    let keys = stored_keys(&sim, "vault", "vault-unseal-keys")
        .await
        .expect("keys");
    let root = keys
        .root_token
        .as_ref()
        .expect("root kept")
        .expose_secret()
        .to_owned();
    println!("cluster Ready after {:?}", started.elapsed());

    // 1. The team's policy reaches Vault exactly as written.
    let app = policy_from(&example("policy"));
    let app_text = app.spec.policy.clone();
    create(&sim, &app).await;
    let applied = wait_synced(&sim, "team-a", "app", "True").await;
    let status = applied.status.clone().expect("status");
    assert_eq!(status.vault_path.as_deref(), Some("sys/policy/team-a-app"));
    assert!(status.last_synced_time.is_some() && status.last_error.is_none());
    assert_eq!(
        vault_policy(&sim, &root, "team-a-app").await.as_deref(),
        Some(app_text.as_str())
    );
    let table = kubectl(&sim, &["get", "vaultpolicies", "-n", "team-a"]).expect("kubectl");
    println!("{table}");
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "CLUSTER", "SYNCED", "PATH", "AGE"] {
        assert!(header.contains(column), "{table}");
    }
    let row = table
        .lines()
        .find(|l| l.starts_with("app "))
        .expect("a row");
    assert!(
        row.contains("vault") && row.contains("True") && row.contains("sys/policy/team-a-app"),
        "{row}"
    );

    // 2. A token carrying the policy does what it allows and nothing else.
    bao_at(
        &sim,
        "vault",
        POD,
        &root,
        &["secrets", "enable", "-path=secret", "kv-v2"],
    )
    .await
    .expect("kv-v2 mounted");
    for path in ["secret/team-a/db", "secret/team-b/db"] {
        bao_at(
            &sim,
            "vault",
            POD,
            &root,
            &["kv", "put", path, "password=not-for-logs"],
        )
        .await
        .expect("kv put");
    }
    let token = bao_at(
        &sim,
        "vault",
        POD,
        &root,
        &[
            "token",
            "create",
            "-policy=team-a-app",
            "-ttl=10m",
            "-field=token",
        ],
    )
    .await
    .expect("token for the policy");
    let token = token.trim();
    bao_at(
        &sim,
        "vault",
        POD,
        token,
        &["kv", "get", "secret/team-a/db"],
    )
    .await
    .expect("the policy allows reading the team's secrets");
    let denied = [
        vec!["kv", "get", "secret/team-b/db"],
        vec!["kv", "put", "secret/team-a/db", "password=changed"],
        vec!["policy", "write", "team-a-app", "-"],
    ];
    for args in &denied {
        let refused =
            bao_at_with_stdin(&sim, "vault", POD, token, &args[..], Some("path \"*\" {}"))
                .await
                .expect_err("refused");
        assert!(refused.contains("permission denied"), "{args:?}: {refused}");
    }

    // 3. A hand change is reverted within one resync, and an Event says what changed.
    let widened = format!("{app_text}path \"secret/data/*\" {{\n  capabilities = [\"read\"]\n}}\n");
    let changed_at = Instant::now();
    bao_at_with_stdin(
        &sim,
        "vault",
        POD,
        &root,
        &["policy", "write", "team-a-app", "-"],
        Some(&widened),
    )
    .await
    .expect("a hand change");
    let deadline = changed_at + SETTLE;
    while vault_policy(&sim, &root, "team-a-app").await.as_deref() != Some(app_text.as_str()) {
        assert!(
            Instant::now() < deadline,
            "the hand change was never reverted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reverted_after = changed_at.elapsed();
    println!("hand change reverted after {reverted_after:?}");
    // The operator's resync is 3 s here: one period plus a pass, with room for a slow box.
    assert!(
        reverted_after < Duration::from_secs(15),
        "{reverted_after:?}"
    );
    let seen = events(&sim, "team-a").await;
    let drift = seen
        .iter()
        .find(|e| e.reason == "DriftReverted" && e.regarding == "VaultPolicy/app")
        .unwrap_or_else(|| panic!("a DriftReverted Event: {seen:?}"));
    assert_eq!(drift.type_, "Warning");
    assert!(
        drift.note.contains("sys/policy/team-a-app") && drift.note.contains("secret/data/*"),
        "{}",
        drift.note
    );
    assert!(
        seen.iter()
            .any(|e| e.reason == "Created" && e.regarding == "VaultPolicy/app"),
        "{seen:?}"
    );
    bao_at(
        &sim,
        "vault",
        POD,
        token,
        &["kv", "get", "secret/team-b/db"],
    )
    .await
    .expect_err("the widening is gone");

    // 4. HCL that Vault refuses: Synced=False with Vault's own message, nothing written.
    let broken = inline(
        "team-a",
        "broken",
        "team-a-broken",
        "path \"secret/data/x\" {\n  capabilities = [\"read\"\n",
    );
    create(&sim, &broken).await;
    let refused = wait_synced(&sim, "team-a", "broken", "False").await;
    let (_, reason, message) = synced(&refused).expect("condition");
    assert_eq!(reason, "VaultRejected", "{message}");
    assert!(
        message.starts_with("spec.policy:") && message.contains("failed to parse policy"),
        "{message}"
    );
    assert_eq!(
        refused.status.as_ref().and_then(|s| s.last_error.clone()),
        Some(message.clone())
    );
    assert_eq!(vault_policy(&sim, &root, "team-a-broken").await, None);
    // Fixing the spec syncs it.
    let api: Api<VaultPolicy> = Api::namespaced(sim.client().expect("admin"), "team-a");
    let fix = serde_json::json!({"spec": {"policy": "path \"secret/data/x\" {\n  capabilities = [\"read\"]\n}\n"}});
    api.patch(
        "broken",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&fix),
    )
    .await
    .expect("patch");
    wait_synced(&sim, "team-a", "broken", "True").await;
    assert!(vault_policy(&sim, &root, "team-a-broken").await.is_some());

    // 5. A namespace the cluster does not accept changes nothing, even naming a policy
    //    that exists, and deleting it deletes nothing.
    let intruder = inline(
        "team-b",
        "takeover",
        "team-a-app",
        "path \"*\" {\n  capabilities = [\"sudo\", \"read\", \"update\"]\n}\n",
    );
    create(&sim, &intruder).await;
    let refused = wait_synced(&sim, "team-b", "takeover", "False").await;
    let (_, reason, message) = synced(&refused).expect("condition");
    assert_eq!(reason, "NamespaceNotAllowed", "{message}");
    assert!(
        message.contains("spec.clusterRef") && message.contains("allowedConfigNamespaces"),
        "{message}"
    );
    assert_eq!(
        refused.status.as_ref().and_then(|s| s.vault_path.clone()),
        None
    );
    delete(&sim, "team-b", "takeover").await;
    assert_eq!(
        vault_policy(&sim, &root, "team-a-app").await.as_deref(),
        Some(app_text.as_str()),
        "a refused resource never touches Vault"
    );

    // 6. vaultkeeper's own policies and the built-ins are out of reach by name.
    let operator_policy = vault_policy(&sim, &root, "vaultkeeper-operator").await;
    assert!(operator_policy.is_some());
    for (name, vault_name) in [("own", "vaultkeeper-operator"), ("builtin", "default")] {
        create(
            &sim,
            &inline(
                "team-a",
                name,
                vault_name,
                "path \"*\" {\n  capabilities = [\"sudo\"]\n}\n",
            ),
        )
        .await;
        let refused = wait_synced(&sim, "team-a", name, "False").await;
        let (_, reason, message) = synced(&refused).expect("condition");
        assert_eq!(reason, "InvalidSpec", "{message}");
        assert!(message.starts_with("spec.name:"), "{message}");
        delete(&sim, "team-a", name).await;
    }
    assert_eq!(
        vault_policy(&sim, &root, "vaultkeeper-operator").await,
        operator_policy
    );

    // 7. Two resources asking for one name: the older keeps it, the younger is refused.
    create(
        &sim,
        &inline(
            "vault",
            "duplicate",
            "team-a-app",
            "path \"x\" {\n  capabilities = [\"read\"]\n}\n",
        ),
    )
    .await;
    let refused = wait_synced(&sim, "vault", "duplicate", "False").await;
    let (_, reason, message) = synced(&refused).expect("condition");
    assert_eq!(reason, "Conflict", "{message}");
    assert!(message.contains("team-a/app"), "{message}");
    delete(&sim, "vault", "duplicate").await;
    assert_eq!(
        vault_policy(&sim, &root, "team-a-app").await.as_deref(),
        Some(app_text.as_str())
    );

    // 8. Deleting a resource removes its policy; with Retain the policy stays.
    let retained = policy_from(&example("policy-retain"));
    create(&sim, &retained).await;
    wait_synced(&sim, "team-a", "shared-read", "True").await;
    assert!(
        vault_policy(&sim, &root, "team-a-shared-read")
            .await
            .is_some()
    );
    delete(&sim, "team-a", "shared-read").await;
    assert_eq!(
        vault_policy(&sim, &root, "team-a-shared-read")
            .await
            .as_deref(),
        Some(retained.spec.policy.as_str()),
        "Retain leaves the policy in Vault"
    );
    delete(&sim, "team-a", "app").await;
    assert_eq!(vault_policy(&sim, &root, "team-a-app").await, None);
    delete(&sim, "team-a", "broken").await;
    assert_eq!(vault_policy(&sim, &root, "team-a-broken").await, None);
    let seen = events(&sim, "team-a").await;
    assert!(
        seen.iter()
            .any(|e| e.reason == "Deleted" && e.note.contains("sys/policy/team-a-app")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| e.reason == "Retained"), "{seen:?}");

    let mut secrets = secrets_of(&keys);
    secrets.push(token.to_owned());
    for ns in ["vault", "team-a", "team-b"] {
        assert_no_secret_leaked(&sim, ns, &secrets, &logs.text()).await;
    }
    println!("whole scenario took {:?}", started.elapsed());
    operator.stop().await;
    sim.shutdown().await;
}
