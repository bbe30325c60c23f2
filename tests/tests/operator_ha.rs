//! `examples/ha-raft.yaml` as a user applies it: the cluster becomes Ready, `kubectl get vc`
//! shows it, `kubectl wait --for=condition=Ready` returns, and nothing secret leaks into
//! exec command lines, Events or the operator's log.
//!
//! The example asks for the Vault flavor; the simulated kubelet runs every Vault image with
//! the real OpenBao binary. The pods carry the Vault chart's labels, so the `vault-active`
//! Service is whatever OpenBao's service registration makes it: readiness must come from
//! the pods and the nodes themselves, never from that Service.

use std::time::Duration;

use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, assert_no_secret_leaked, capture_logs, cluster_with_pods,
    count_events, events, example, init_commands, kubectl, ready, secrets_of, stored_keys,
    wait_for,
};

const READY_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ha_raft_example_becomes_ready_and_kubectl_shows_it() {
    let logs = capture_logs();
    let sim = cluster_with_pods(140).await;
    let mut operator = Operator::install_and_start(&sim).await;
    apply_cluster(&sim, &example("ha-raft"), "vault").await;

    // `kubectl wait` is how a pipeline waits; run it against the live cluster.
    let sim_for_wait = kubectl_args(&sim);
    let waiter = tokio::task::spawn_blocking(move || {
        sim_for_wait(&[
            "wait",
            "-n",
            "vault",
            "--for=condition=Ready",
            "vc/vault",
            "--timeout=300s",
        ])
    });

    let vc = wait_for(&sim, "vault", "vault", READY_TIMEOUT, "Ready", ready).await;
    let waited = waiter.await.expect("kubectl wait ran");
    assert!(
        waited
            .as_ref()
            .is_ok_and(|out| out.contains("condition met")),
        "kubectl wait --for=condition=Ready: {waited:?}"
    );

    let status = vc.status.clone().expect("status");
    assert_eq!(status.replicas, 3, "{status:?}");
    assert_eq!(status.ready_replicas, 3, "{status:?}");
    assert_eq!(status.unsealed_replicas, 3, "{status:?}");
    assert_eq!(status.sealed_replicas, 0, "{status:?}");
    assert!(status.initialized && status.bootstrapped, "{status:?}");
    let active = status.active_pod.clone().expect("an active pod");
    assert!(
        ["vault-0", "vault-1", "vault-2"].contains(&active.as_str()),
        "{active}"
    );
    let raft = status.raft.clone().expect("raft status");
    let mut voters = raft.voters.clone();
    voters.sort();
    assert_eq!(voters, ["vault-0", "vault-1", "vault-2"], "{raft:?}");
    assert_eq!(raft.leader.as_deref(), Some(active.as_str()), "{raft:?}");

    // What a person sees: one row, Ready, 3 ready, 0 sealed, the active pod.
    let table = kubectl(&sim, &["get", "vc", "-n", "vault"]).expect("kubectl get vc");
    println!("{table}");
    let header = table.lines().next().expect("a header");
    let row = table
        .lines()
        .find(|l| l.starts_with("vault "))
        .expect("a row for vault");
    // Columns are cut where the header puts them (a value may be empty).
    let column = |name: &str| {
        let start = header
            .find(name)
            .unwrap_or_else(|| panic!("no {name} column in {header:?}"));
        let end = header[start..]
            .find(|c: char| c.is_whitespace())
            .map(|i| start + i)
            .and_then(|i| {
                header[i..]
                    .find(|c: char| !c.is_whitespace())
                    .map(|j| i + j)
            })
            .unwrap_or(row.len());
        row.get(start..end.min(row.len()))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    assert_eq!(column("READY"), "3", "{table}");
    assert_eq!(column("SEALED"), "0", "{table}");
    assert_eq!(column("ACTIVE"), active, "{table}");
    assert_eq!(column("PHASE"), "Ready", "{table}");

    // Initialized exactly once, and said so once.
    assert_eq!(init_commands(&sim, "vault"), 1, "exactly one init");
    let seen = events(&sim, "vault").await;
    let initialized = count_events(&seen, "Initialized");
    assert_eq!(initialized, 1, "one Initialized Event: {seen:?}");

    let keys = stored_keys(&sim, "vault", "vault-unseal-keys")
        .await
        .expect("the keys Secret");
    assert_eq!(keys.shares.len(), 5);
    assert!(keys.root_token.is_none(), "rootToken: Revoke drops it");
    assert_no_secret_leaked(&sim, "vault", &secrets_of(&keys), &logs.text()).await;

    operator.stop().await;
    sim.shutdown().await;
}

/// A kubectl runner that can move to a blocking thread.
fn kubectl_args(
    sim: &vaultkeeper_sim::SimCluster,
) -> impl Fn(&[&str]) -> Result<String, String> + Send + 'static {
    let kubectl = vaultkeeper_e2e::install::kubectl().expect("kubectl");
    let kubeconfig = sim.kubeconfig_path().to_string_lossy().into_owned();
    move |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.as_str()];
        all.extend_from_slice(args);
        vaultkeeper_e2e::install::run(&kubectl, &all).map_err(|e| e.to_string())
    }
}
