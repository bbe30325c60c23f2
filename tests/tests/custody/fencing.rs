//! Two operator replicas with leader election against one Lease, with real OpenBao pods:
//! renewals held back past the renew deadline and a wall clock 10 s off never let both
//! act at once. Every disruptive request (a pod delete, the exec of a step-down or a raft
//! peer removal) of one replica ends before the other's begins, as the API server's
//! request log times them; the operation lock in status passes from one to the other with
//! an Event; the cluster converges. A rolling update and a scale-down asked in one patch
//! run one after the other.

use std::time::{Duration, Instant};

use vaultkeeper::controller::lock;
use vaultkeeper::leader::LeaseTimings;
use vaultkeeper_api::{OperationKind, VaultCluster};
use vaultkeeper_e2e::install::{OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT};
use vaultkeeper_e2e::operator::{
    DnsRefresher, Election, LeaseFaultSwitch, Operator, apply_cluster, capture_logs,
    cluster_with_pods, count_events, events, init_commands, patch_spec, ready, wait_for,
};
use vaultkeeper_sim::{RequestRecord, SimCluster};

const TIMEOUT: Duration = Duration::from_secs(420);

fn cluster(name: &str) -> String {
    format!(
        r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: {name}
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 3
  backup:
    enabled: false
"#
    )
}

/// A request that disrupts a Vault cluster: a pod deleted, or a step-down or raft peer
/// removal run in a pod (the exec's command is in its query, as in an audit log).
fn disruptive(r: &RequestRecord, namespace: &str) -> bool {
    r.namespace == namespace
        && r.resource == "pods"
        && ((r.verb == "delete" && r.subresource.is_empty())
            || (r.subresource == "exec"
                && (r.query.contains("step-down") || r.query.contains("remove-peer"))))
}

fn describe(r: &RequestRecord, origin: Instant) -> String {
    let what = if r.query.contains("step-down") {
        "step-down"
    } else if r.query.contains("remove-peer") {
        "remove-peer"
    } else {
        "delete"
    };
    format!(
        "{} {what} {} [{:?} – {:?}]",
        r.user_agent,
        r.name,
        r.started.saturating_duration_since(origin),
        r.finished.saturating_duration_since(origin)
    )
}

fn election(identity: &str, faults: &std::sync::Arc<LeaseFaultSwitch>) -> Election {
    Election {
        identity: identity.into(),
        lease: "vaultkeeper".into(),
        timings: LeaseTimings::default(),
        faults: faults.clone(),
    }
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn operation(vc: &VaultCluster) -> Option<(OperationKind, Option<String>)> {
    vc.status
        .as_ref()
        .and_then(|s| s.operation.as_ref())
        .map(|o| (o.kind, o.holder.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_operators_with_faulty_leases_never_disrupt_a_cluster_at_the_same_time() {
    let _logs = capture_logs();
    let sim = cluster_with_pods(192).await;
    let origin = Instant::now();
    let (ns, name) = ("fence", "fence");
    let faults_a = std::sync::Arc::new(LeaseFaultSwitch::default());
    let faults_b = std::sync::Arc::new(LeaseFaultSwitch::default());
    // a's wall clock is 10 s behind: its renewTime always looks 10 s old to b.
    faults_a.skew_clock(-10);
    let mut a = Operator::install_and_start_elected(&sim, election("op-a", &faults_a)).await;
    wait_until("op-a to lead", Duration::from_secs(30), || a.leads()).await;
    let mut b = Operator::install_and_start_elected(&sim, election("op-b", &faults_b)).await;
    let dns = DnsRefresher::start(&sim, ns);
    apply_cluster(&sim, &cluster(name), ns).await;
    wait_for(&sim, ns, name, TIMEOUT, "Ready", ready).await;
    assert!(
        b.terms().is_empty(),
        "op-b took over a Lease op-a kept renewing (its clock is 10 s off): {:?}",
        b.terms()
    );

    // A rolling update; once op-a has replaced a pod, its Lease requests stall for 12 s,
    // past its 10 s renew deadline: it must stop before op-b takes over and finishes.
    patch_spec(
        &sim,
        ns,
        name,
        serde_json::json!({"config": {"log_level": "debug"}}),
    )
    .await;
    let agent_a = Operator::user_agent("op-a");
    let agent_b = Operator::user_agent("op-b");
    wait_until("op-a's first rollout step", TIMEOUT, || {
        sim.requests()
            .iter()
            .any(|r| disruptive(r, ns) && r.user_agent == agent_a)
    })
    .await;
    let stalled_a = Instant::now();
    faults_a.delay_renewals(Duration::from_secs(12));
    wait_until("op-b to take over", Duration::from_secs(60), || b.leads()).await;
    let takeover_b = b.terms()[0].acquired.saturating_duration_since(stalled_a);
    let a_stopped = a.terms()[0].ended.expect("op-a's term ended");
    assert!(
        a_stopped < b.terms()[0].acquired,
        "op-a still led when op-b took over"
    );
    faults_a.delay_renewals(Duration::ZERO);
    let rolled = wait_for(&sim, ns, name, TIMEOUT, "Ready after the roll", |vc| {
        ready(vc) && operation(vc).is_none()
    })
    .await;
    assert_eq!(
        rolled.status.as_ref().map(|s| s.ready_replicas),
        Some(3),
        "{:?}",
        rolled.status
    );

    // A scale-down 3 → 1; op-b's Lease requests stall as soon as it is asked for, and
    // op-a (a candidate again) takes over.
    patch_spec(&sim, ns, name, serde_json::json!({"replicas": 1})).await;
    let stalled_b = Instant::now();
    faults_b.delay_renewals(Duration::from_secs(12));
    wait_until("op-a to lead again", Duration::from_secs(60), || {
        a.terms().len() == 2 && a.leads()
    })
    .await;
    let takeover_a = a.terms()[1].acquired.saturating_duration_since(stalled_b);
    faults_b.delay_renewals(Duration::ZERO);
    let scaled = wait_for(&sim, ns, name, TIMEOUT, "Ready with one pod", |vc| {
        ready(vc)
            && operation(vc).is_none()
            && vc.status.as_ref().is_some_and(|s| {
                s.replicas == 1 && s.raft.as_ref().is_some_and(|r| r.voters.len() == 1)
            })
    })
    .await;
    assert_eq!(scaled.status.as_ref().map(|s| s.ready_replicas), Some(1));

    // The request log: no disruptive request of one replica overlaps one of the other.
    let requests: Vec<RequestRecord> = sim
        .requests()
        .into_iter()
        .filter(|r| disruptive(r, ns))
        .collect();
    let by_a: Vec<&RequestRecord> = requests
        .iter()
        .filter(|r| r.user_agent == agent_a)
        .collect();
    let by_b: Vec<&RequestRecord> = requests
        .iter()
        .filter(|r| r.user_agent == agent_b)
        .collect();
    let timeline: Vec<String> = requests.iter().map(|r| describe(r, origin)).collect();
    println!("disruptive requests:\n{}", timeline.join("\n"));
    assert!(
        !by_a.is_empty() && !by_b.is_empty(),
        "both replicas acted: {timeline:#?}"
    );
    for ra in &by_a {
        for rb in &by_b {
            assert!(
                !ra.overlaps(rb),
                "overlap: {} and {}",
                describe(ra, origin),
                describe(rb, origin)
            );
        }
    }
    // Only the two replicas' clients disrupted anything (the StatefulSet controller's
    // deletes do not go through the API server's HTTP front).
    let operator_user =
        format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}");
    for r in &requests {
        if r.user == operator_user {
            assert!(
                r.user_agent == agent_a || r.user_agent == agent_b,
                "{}",
                describe(r, origin)
            );
        }
    }
    let seen = events(&sim, ns).await;
    assert!(
        count_events(&seen, "OperationLockTakenOver") >= 1,
        "the new leader took the old one's lock over, with an Event: {seen:?}"
    );
    assert_eq!(init_commands(&sim, ns), 1, "one init, whoever led");
    println!(
        "takeover after the leader's Lease requests stalled (lease 15 s, renew deadline 10 s, retry 2 s): op-b {takeover_b:?}, op-a {takeover_a:?}; op-a stopped acting {:?} after its stall",
        a_stopped.saturating_duration_since(stalled_a)
    );
    dns.stop().await;
    a.stop().await;
    b.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_update_and_a_scale_down_asked_together_run_one_after_the_other_and_the_lock_is_shared()
 {
    let _logs = capture_logs();
    let sim = cluster_with_pods(193).await;
    let (ns, name) = ("together", "together");
    let mut operator = Operator::install_and_start(&sim).await;
    apply_cluster(&sim, &cluster(name), ns).await;
    wait_for(&sim, ns, name, TIMEOUT, "Ready", ready).await;

    let sampler = OperationSampler::start(&sim, ns, name);
    let since = Instant::now();
    patch_spec(
        &sim,
        ns,
        name,
        serde_json::json!({"replicas": 1, "config": {"log_level": "debug"}}),
    )
    .await;
    wait_for(&sim, ns, name, TIMEOUT, "Ready with one rolled pod", |vc| {
        ready(vc)
            && operation(vc).is_none()
            && vc
                .status
                .as_ref()
                .is_some_and(|s| s.replicas == 1 && s.nodes.iter().all(|n| n.up_to_date))
    })
    .await;
    let kinds = sampler.finish().await;
    // One kind at a time, each to its end: the scale-down, then the rolling update.
    let mut order: Vec<OperationKind> = Vec::new();
    for kind in kinds.iter().flatten() {
        if order.last() != Some(kind) {
            order.push(*kind);
        }
    }
    assert_eq!(
        order,
        [OperationKind::ScaleDown, OperationKind::RollingUpdate],
        "samples: {kinds:?}"
    );

    // The requests agree: every peer removal ends before the first rollout delete starts.
    let requests: Vec<RequestRecord> = sim
        .requests()
        .into_iter()
        .filter(|r| r.started >= since && disruptive(r, ns))
        .collect();
    let operator_user =
        format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}");
    let last_removal = requests
        .iter()
        .filter(|r| r.query.contains("remove-peer"))
        .map(|r| r.finished)
        .max()
        .expect("peers were removed");
    let first_delete = requests
        .iter()
        .filter(|r| r.verb == "delete" && r.user == operator_user)
        .map(|r| r.started)
        .min()
        .expect("the rollout deleted a pod");
    assert!(
        last_removal < first_delete,
        "the rolling update began before the scale-down ended: {:#?}",
        requests
            .iter()
            .map(|r| describe(r, since))
            .collect::<Vec<_>>()
    );

    // Another operation (a rekey) takes the lock through the API other code uses: the
    // pass keeps it, and a roll asked meanwhile waits until it is released.
    let ctx = vaultkeeper::controller::Context::new(
        sim.client().expect("admin client"),
        Operator::settings(&sim),
        std::sync::Arc::new(vaultkeeper::metrics::Metrics::new()),
    );
    let api: kube::Api<VaultCluster> =
        kube::Api::namespaced(sim.client().expect("admin client"), ns);
    // A conflict (the operator wrote the status in between) means: read again.
    let mut attempts = 0;
    let held = loop {
        let vc = api.get(name).await.expect("the VaultCluster");
        match lock::acquire(
            &ctx,
            &vc,
            OperationKind::Rekey,
            Some("rekey in a test".into()),
        )
        .await
        {
            Err(lock::Busy::Conflict) if attempts < 5 => attempts += 1,
            taken => break taken.expect("the lock is free"),
        }
    };
    let before_roll = Instant::now();
    patch_spec(
        &sim,
        ns,
        name,
        serde_json::json!({"config": {"log_level": "info"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let vc = api.get(name).await.expect("the VaultCluster");
    assert_eq!(
        operation(&vc),
        Some((OperationKind::Rekey, Some("e2e".into()))),
        "{:?}",
        vc.status
    );
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.started >= before_roll && disruptive(r, ns)),
        "the roll went ahead while the rekey held the lock"
    );
    assert!(
        matches!(
            lock::acquire(&ctx, &vc, OperationKind::Restore, None).await,
            Err(lock::Busy::HeldBy {
                kind: OperationKind::Rekey,
                ..
            })
        ),
        "a second operation is refused"
    );
    lock::release(&ctx, &vc, held).await.expect("released");
    wait_for(&sim, ns, name, TIMEOUT, "Ready after the roll", |vc| {
        ready(vc) && operation(vc).is_none()
    })
    .await;
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.started >= before_roll && disruptive(r, ns)),
        "the roll ran once the lock was released"
    );

    // Break-glass: a lock whose holder is gone, and the annotation naming that holder.
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({
            "metadata": {"annotations": {lock::BREAK_LOCK_ANNOTATION: "op-gone"}}
        })),
    )
    .await
    .expect("annotated");
    api.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({
            "status": {"operation": {
                "kind": "Restore", "holder": "op-gone", "startedAt": "2026-01-01T00:00:00Z"
            }}
        })),
    )
    .await
    .expect("a lock of a replica that is gone");
    wait_for(&sim, ns, name, TIMEOUT, "the lock broken", |vc| {
        operation(vc).is_none()
            && !vc
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(lock::BREAK_LOCK_ANNOTATION))
    })
    .await;
    let seen = events(&sim, ns).await;
    assert_eq!(count_events(&seen, "OperationLockBroken"), 1, "{seen:?}");

    assert_eq!(init_commands(&sim, ns), 1);
    operator.stop().await;
    sim.shutdown().await;
}

/// Samples `status.operation` kinds (every 200 ms) until stopped.
struct OperationSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<Option<OperationKind>>>,
}

impl OperationSampler {
    fn start(sim: &SimCluster, namespace: &str, name: &str) -> Self {
        let api: kube::Api<VaultCluster> =
            kube::Api::namespaced(sim.client().expect("admin client"), namespace);
        let name = name.to_owned();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut kinds = Vec::new();
            while !*stopped.borrow() {
                if let Ok(vc) = api.get(&name).await {
                    kinds.push(operation(&vc).map(|(kind, _)| kind));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            kinds
        });
        Self { stop, task }
    }

    async fn finish(self) -> Vec<Option<OperationKind>> {
        let _ = self.stop.send(true);
        self.task.await.expect("the sampler ran")
    }
}
