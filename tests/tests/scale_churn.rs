//! Scaling as people really do it, not once on a quiet cluster: up and down twice in a
//! row, up right after the active pod was deleted, up while one new pod's exec never
//! answers, and down then up again with the old data of the removed peers back on their
//! volumes. Every step must reach Ready with exactly the right raft voters within
//! [`STEP_BOUND`]; each step's time is printed. Real OpenBao on the simulated cluster.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use vaultkeeper_api::VaultCluster;
use vaultkeeper_e2e::operator::{
    DnsRefresher, Operator, apply_cluster, capture_logs, cluster_with_pods, condition,
    count_events, events, init_commands, patch_spec, ready, wait_for,
};
use vaultkeeper_sim::SimCluster;
use vaultkeeper_sim::faults::ExecAnswerFault;

/// How long one scaling step may take, from the patch to Ready with the right voters.
/// On an idle 2-CPU machine a step takes 12–25 s (OpenBao's own 10 s
/// `server_stabilization_time` before autopilot promotes a new voter is most of it); the
/// bound leaves room for a loaded CI machine while still catching a step that waits on a
/// 60 s timeout or never converges.
const STEP_BOUND: Duration = Duration::from_secs(120);

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

fn pods(name: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{name}-{i}")).collect()
}

/// Ready for the current spec with exactly `n` pods, all of them raft voters.
fn ready_with(name: &str, n: usize) -> impl Fn(&VaultCluster) -> bool {
    let want = pods(name, n);
    move |vc| {
        ready(vc)
            && vc.status.as_ref().is_some_and(|s| {
                let mut voters = s
                    .raft
                    .as_ref()
                    .map(|r| r.voters.clone())
                    .unwrap_or_default();
                voters.sort();
                s.ready_replicas == n as i32
                    && voters == want
                    && s.raft.as_ref().is_some_and(|r| r.non_voters.is_empty())
            })
    }
}

/// Patches `replicas` and waits for Ready with those voters; answers how long it took.
async fn scale(sim: &SimCluster, ns: &str, name: &str, n: usize) -> Duration {
    scale_watching(sim, ns, name, n).await.0
}

/// [`scale`], looking at the status every 200 ms on the way; also answers whether
/// `Degraded` was ever `True` meanwhile.
async fn scale_watching(sim: &SimCluster, ns: &str, name: &str, n: usize) -> (Duration, bool) {
    let started = Instant::now();
    patch_spec(sim, ns, name, serde_json::json!({ "replicas": n })).await;
    let api: Api<VaultCluster> = Api::namespaced(sim.client().expect("client"), ns);
    let done = ready_with(name, n);
    let mut degraded = false;
    loop {
        if let Ok(vc) = api.get(name).await {
            degraded |= condition(&vc, "Degraded", "True");
            if done(&vc) {
                return (started.elapsed(), degraded);
            }
        }
        assert!(
            started.elapsed() < STEP_BOUND,
            "not Ready with {n} voters within {STEP_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn claim_names(sim: &SimCluster, ns: &str) -> Vec<String> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(sim.client().expect("client"), ns);
    let mut names: Vec<String> = api
        .list(&Default::default())
        .await
        .expect("listing claims")
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| c.metadata.name)
        .collect();
    names.sort();
    names
}

/// Waits until exactly the claims of `n` pods exist (a scale-down deletes the others).
async fn wait_for_claims(sim: &SimCluster, ns: &str, name: &str, n: usize) {
    let want: Vec<String> = pods(name, n).iter().map(|p| format!("data-{p}")).collect();
    let deadline = Instant::now() + STEP_BOUND;
    loop {
        let have = claim_names(sim, ns).await;
        if have == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the claims are {have:?}, not {want:?}, {STEP_BOUND:?} after the scale-down"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How many `sys/storage/raft/join` commands ran in `namespace`'s pods.
fn join_commands(sim: &SimCluster, ns: &str) -> usize {
    sim.exec_audit()
        .iter()
        .filter(|r| r.pod.namespace == ns)
        .filter(|r| r.argv.iter().any(|a| a == "sys/storage/raft/join"))
        .count()
}

fn report(steps: &[(String, Duration)]) {
    for (step, took) in steps {
        eprintln!("scale_churn: {step}: {:.1} s", took.as_secs_f64());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scaling_up_and_down_twice_in_a_row_and_right_after_the_active_pod_died_converges() {
    let _logs = capture_logs();
    let sim = cluster_with_pods(200).await;
    let mut operator = Operator::install_and_start(&sim).await;
    let (ns, name) = ("churn", "churn");
    apply_cluster(&sim, &cluster(name), ns).await;
    let dns = DnsRefresher::start(&sim, ns);
    let mut steps = Vec::new();
    let started = Instant::now();
    wait_for(&sim, ns, name, STEP_BOUND, "Ready", ready_with(name, 3)).await;
    steps.push(("apply -> Ready 3".to_owned(), started.elapsed()));

    for round in 1..=2 {
        for n in [5, 3, 5, 3] {
            let (took, degraded) = scale_watching(&sim, ns, name, n).await;
            steps.push((format!("round {round}: -> {n}"), took));
            // New pods joining are progress; nothing that served went away.
            assert!(
                !(n == 5 && degraded),
                "Degraded was True during the scale-up to {n} of round {round}"
            );
            if n == 3 {
                // whenScaled: Delete, as Kubernetes honours it: the removed pods' volumes go.
                wait_for_claims(&sim, ns, name, 3).await;
            }
        }
    }

    // The active pod dies, and a scale-up is asked for at once.
    let vc = wait_for(&sim, ns, name, STEP_BOUND, "Ready", ready_with(name, 3)).await;
    let active = vc
        .status
        .and_then(|s| s.active_pod)
        .expect("a Ready cluster names its active pod");
    let pods_api: Api<Pod> = Api::namespaced(sim.client().expect("client"), ns);
    pods_api
        .delete(&active, &DeleteParams::default().grace_period(0))
        .await
        .expect("deleting the active pod");
    let took = scale(&sim, ns, name, 5).await;
    steps.push((
        format!("-> 5 right after active {active} was deleted"),
        took,
    ));

    report(&steps);
    assert_eq!(init_commands(&sim, ns), 1, "one init for the whole life");
    let seen = events(&sim, ns).await;
    assert_eq!(count_events(&seen, "RaftDataReset"), 0, "no data was reset");
    // Five scale-ups of two pods each: every new pod joins through an explicit
    // `sys/storage/raft/join` unless `retry_join` beat it to it, which is rare.
    let joins = join_commands(&sim, ns);
    eprintln!("scale_churn: {joins} explicit joins over 5 scale-ups");
    assert!(
        joins >= 5,
        "new pods join explicitly: {joins} join commands"
    );
    // A new pod is reported as `Joined` when the operator's join came first, and as
    // `SharesSubmitted` ("finishing its raft join") when `retry_join` had already asked
    // and the operator re-joined it from a fresh challenge; which one wins is timing.
    for new_pod in ["churn-3", "churn-4"] {
        assert!(
            seen.iter().any(|e| e.api == "events.k8s.io/v1"
                && (e.reason == "Joined" || e.reason == "SharesSubmitted")
                && names_pod(&e.note, new_pod)),
            "no Joined or SharesSubmitted Event names {new_pod}: {seen:?}"
        );
    }
    dns.stop().await;
    operator.stop().await;
    sim.shutdown().await;
}

/// The directory the simulated kubelet keeps a claim's data in.
fn claim_dir(sim: &SimCluster, ns: &str, claim: &str, uid: &str) -> PathBuf {
    sim.state_dir()
        .join("claims")
        .join(ns)
        .join(format!("{claim}-{uid}"))
}

fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(status.success(), "copying {from:?} to {to:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_new_pod_and_a_removed_peers_old_data_do_not_stop_a_scale_up() {
    let _logs = capture_logs();
    let sim = cluster_with_pods(201).await;
    let mut operator = Operator::install_and_start(&sim).await;
    let (ns, name) = ("faults", "faults");
    apply_cluster(&sim, &cluster(name), ns).await;
    let dns = DnsRefresher::start(&sim, ns);
    let mut steps = Vec::new();
    wait_for(&sim, ns, name, STEP_BOUND, "Ready", ready_with(name, 3)).await;

    // 1. Every command run in the new pod faults-4 is held back 150 s (a hung node): the
    //    other new pod must still join and become a voter, well before any 60 s timeout.
    let hung = format!("{name}-4");
    sim.faults().set_exec_answer(Some(ExecAnswerFault {
        pods: vec![hung.clone()],
        delay: Duration::from_secs(150),
        ..ExecAnswerFault::default()
    }));
    let started = Instant::now();
    patch_spec(&sim, ns, name, serde_json::json!({ "replicas": 5 })).await;
    let other = format!("{name}-3");
    let vc = wait_for(
        &sim,
        ns,
        name,
        STEP_BOUND,
        "the pod that answers to become a voter",
        |vc| {
            vc.status
                .as_ref()
                .and_then(|s| s.raft.as_ref())
                .is_some_and(|r| r.voters.contains(&other))
        },
    )
    .await;
    steps.push((
        format!("{other} a voter while {hung} hangs"),
        started.elapsed(),
    ));
    assert!(
        !ready(&vc),
        "Ready while {hung} has never answered: {:?}",
        vc.status
    );
    let pods_status = vc.status.clone().expect("status");
    let hung_node = pods_status.nodes.iter().find(|n| n.name == hung);
    assert!(
        hung_node.is_none_or(|n| !n.reachable),
        "the hung pod is reported unreachable: {hung_node:?}"
    );
    // The node answers again: the step completes.
    sim.faults().set_exec_answer(None);
    let resumed = Instant::now();
    wait_for(
        &sim,
        ns,
        name,
        STEP_BOUND,
        "Ready with 5",
        ready_with(name, 5),
    )
    .await;
    steps.push((format!("-> 5 once {hung} answers again"), resumed.elapsed()));

    // 2. Down to 3, then the removed peers' data comes back on their volumes (a volume
    //    restored by hand, or a scale-up that raced the garbage collector): their pods
    //    come up initialized but outside raft. Their data is reset and they join anew.
    //    The copy is taken from the running pods (on a quiet cluster, as a crash would
    //    leave it), because the scale-down deletes the claims and their data with them.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(sim.client().expect("client"), ns);
    let saved = tempfile::tempdir().expect("a directory for the old data");
    let mut old = Vec::new();
    for pod in [format!("{name}-3"), format!("{name}-4")] {
        let claim = format!("data-{pod}");
        let uid = claims
            .get(&claim)
            .await
            .expect("the claim exists")
            .metadata
            .uid
            .expect("uid");
        let from = claim_dir(&sim, ns, &claim, &uid);
        assert!(from.join("raft").exists(), "raft data at {from:?}");
        let copy = saved.path().join(&claim);
        std::fs::create_dir_all(&copy).expect("a directory for one claim's data");
        copy_tree(&from, &copy);
        old.push((claim, copy));
    }
    let took = scale(&sim, ns, name, 3).await;
    steps.push(("-> 3".to_owned(), took));
    wait_for_claims(&sim, ns, name, 3).await;
    for (claim, copy) in &old {
        let template = serde_json::json!({
            "metadata": {"name": claim},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}
        });
        let created = claims
            .create(
                &PostParams::default(),
                &serde_json::from_value(template).expect("a claim"),
            )
            .await
            .expect("re-creating the claim");
        let uid = created.metadata.uid.expect("uid");
        let to = claim_dir(&sim, ns, claim, &uid);
        std::fs::create_dir_all(&to).expect("the new claim's directory");
        copy_tree(copy, &to);
    }
    let took = scale(&sim, ns, name, 5).await;
    steps.push(("-> 5 with the removed peers' old data".to_owned(), took));
    let seen = events(&sim, ns).await;
    assert_eq!(
        count_events(&seen, "RaftDataReset"),
        2,
        "both pods' stale data was reset, once each"
    );
    let vc = wait_for(&sim, ns, name, STEP_BOUND, "Ready", ready_with(name, 5)).await;
    assert!(condition(&vc, "Degraded", "False"), "{:?}", vc.status);

    report(&steps);
    assert_eq!(init_commands(&sim, ns), 1, "one init for the whole life");
    dns.stop().await;
    operator.stop().await;
    sim.shutdown().await;
}

/// Whether an Event's note names `pod` as a whole word: "pod churn-3 joined" and "on pod
/// churn-3; it is" do, "pod churn-30" does not.
fn names_pod(note: &str, pod: &str) -> bool {
    let needle = format!("pod {pod}");
    note.match_indices(&needle).any(|(at, _)| {
        !note[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[test]
fn an_event_note_names_a_pod_only_as_a_whole_word() {
    assert!(names_pod(
        "pod churn-3 joined raft through churn-0",
        "churn-3"
    ));
    assert!(names_pod(
        "entered the unseal shares on pod churn-3; it is finishing its raft join",
        "churn-3"
    ));
    assert!(names_pod("unsealed pod churn-4", "churn-4"));
    assert!(!names_pod("unsealed pod churn-30", "churn-3"));
    assert!(!names_pod("removed raft peer churn-3", "churn-3"));
}
