//! Scaling a running cluster 1 → 3 → 5 → 3: new pods join raft and become voters; on the
//! way down the departed peers are removed from raft first, and only then does the
//! StatefulSet shrink; quorum holds throughout (sampled from every pod's `sys/health`).

use std::time::Duration;

use vaultkeeper_e2e::operator::{
    DnsRefresher, Operator, Sample, Sampler, apply_cluster, capture_logs, cluster_with_pods,
    init_commands, patch_spec, ready, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(300);

const CLUSTER: &str = r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: scale
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 1
  backup:
    enabled: false
"#;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn pods(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("scale-{i}")).collect()
}

/// Ready with exactly these voters.
fn ready_with(n: u32) -> impl Fn(&vaultkeeper_api::VaultCluster) -> bool {
    move |vc| {
        ready(vc)
            && vc.status.as_ref().is_some_and(|s| {
                s.ready_replicas == n as i32
                    && s.raft.as_ref().is_some_and(|r| {
                        sorted(r.voters.clone()) == pods(n) && r.non_voters.is_empty()
                    })
            })
    }
}

fn assert_quorum_throughout(samples: &[Sample], what: &str) {
    assert!(
        samples.len() > 5,
        "{what}: too few samples: {}",
        samples.len()
    );
    for s in samples {
        assert!(s.has_quorum(), "{what}: quorum lost at {:?}: {s:?}", s.at);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_one_three_five_three_keeps_quorum_and_removes_departed_peers_first() {
    let _logs = capture_logs();
    let sim = cluster_with_pods(141).await;
    let mut operator = Operator::install_and_start(&sim).await;
    apply_cluster(&sim, CLUSTER, "scale").await;
    // Cluster DNS for pods added by the scale-up (see DnsRefresher).
    let dns = DnsRefresher::start(&sim, "scale");
    wait_for(
        &sim,
        "scale",
        "scale",
        TIMEOUT,
        "1 pod Ready",
        ready_with(1),
    )
    .await;

    // Up: 1 → 3.
    let sampler = Sampler::start(&sim, "scale", "scale", Duration::from_millis(500));
    patch_spec(&sim, "scale", "scale", serde_json::json!({"replicas": 3})).await;
    wait_for(&sim, "scale", "scale", TIMEOUT, "3 voters", ready_with(3)).await;
    assert_quorum_throughout(&sampler.finish().await, "1 → 3");

    // Up: 3 → 5.
    let sampler = Sampler::start(&sim, "scale", "scale", Duration::from_millis(500));
    patch_spec(&sim, "scale", "scale", serde_json::json!({"replicas": 5})).await;
    wait_for(&sim, "scale", "scale", TIMEOUT, "5 voters", ready_with(5)).await;
    assert_quorum_throughout(&sampler.finish().await, "3 → 5");

    // Down: 5 → 3. The departing pods stay until raft no longer lists them.
    let sampler = Sampler::start(&sim, "scale", "scale", Duration::from_millis(300));
    let sampling_since = jiff::Timestamp::now();
    let asked = std::time::Instant::now();
    patch_spec(&sim, "scale", "scale", serde_json::json!({"replicas": 3})).await;
    let vc = wait_for(
        &sim,
        "scale",
        "scale",
        TIMEOUT,
        "3 voters after scale-down",
        |vc| ready_with(3)(vc) && vc.status.as_ref().is_some_and(|s| s.operation.is_none()),
    )
    .await;
    // Let the StatefulSet settle and the departing pods go.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let samples = sampler.finish().await;
    assert_quorum_throughout(&samples, "5 → 3");
    let departing = ["scale-3", "scale-4"];
    // The voters a sample shows are the status of the pass before: a pass applies the
    // shrink (after its own raft read found the departing peers gone) and writes its status
    // a moment later. So a sample may show the shrink beside the previous pass's voters,
    // but the status must catch up within two seconds, with the StatefulSet still shrunk.
    for (i, s) in samples.iter().enumerate() {
        if s.statefulset_replicas.is_some_and(|r| r < 5)
            && s.voters.iter().any(|v| departing.contains(&v.as_str()))
        {
            let caught_up = samples[i..]
                .iter()
                .take_while(|later| later.at <= s.at + Duration::from_secs(2))
                .any(|later| {
                    later.statefulset_replicas.is_some_and(|r| r < 5)
                        && !later.voters.iter().any(|v| departing.contains(&v.as_str()))
                });
            assert!(
                caught_up,
                "the StatefulSet shrank while raft still listed a departing peer: {s:?}"
            );
        }
    }
    // And from the pods' own command log: both departed peers were removed through
    // `sys/storage/raft/remove-peer` before any sample saw the StatefulSet shrink.
    let first_shrunk = samples
        .iter()
        .find(|s| s.statefulset_replicas.is_some_and(|r| r < 5))
        .map(|s| s.at)
        .expect("a sample after the shrink");
    let removals: Vec<jiff::Timestamp> = sim
        .exec_audit()
        .iter()
        .filter(|r| r.pod.namespace == "scale" && r.at >= sampling_since)
        .filter(|r| r.argv.iter().any(|a| a == "sys/storage/raft/remove-peer"))
        .map(|r| r.at)
        .collect();
    assert!(
        removals.len() >= 2,
        "two departed peers, {} remove-peer commands",
        removals.len()
    );
    let shrunk_by =
        sampling_since + jiff::SignedDuration::try_from(first_shrunk).expect("a sample time");
    assert!(
        removals.iter().all(|at| *at <= shrunk_by),
        "a peer was removed after the StatefulSet shrank: removals {removals:?}, shrink seen by {shrunk_by}"
    );
    // The same order as the API server saw it, exactly (a sampler can miss a state that
    // lasts less than its period): both remove-peer commands were over before the
    // operator's first write of the StatefulSet after the scale-down was asked for.
    let requests = sim.requests();
    let removals: Vec<_> = requests
        .iter()
        .filter(|r| r.namespace == "scale" && r.started >= asked)
        .filter(|r| r.subresource == "exec" && r.query.contains("remove-peer"))
        .collect();
    let shrink = requests
        .iter()
        .filter(|r| r.namespace == "scale" && r.started >= asked)
        .filter(|r| r.resource == "statefulsets" && r.subresource.is_empty() && r.is_write())
        .map(|r| r.started)
        .min()
        .expect("the operator wrote the StatefulSet after the scale-down");
    assert!(
        removals.len() >= 2 && removals.iter().all(|r| r.finished <= shrink),
        "the departed peers are removed before the StatefulSet shrinks: {} remove-peer \
         commands, {} of them not over at the shrink",
        removals.len(),
        removals.iter().filter(|r| r.finished > shrink).count()
    );
    let last = samples.last().expect("samples");
    assert_eq!(last.statefulset_replicas, Some(3), "{last:?}");
    assert_eq!(sorted(last.pods.clone()), pods(3), "{last:?}");
    let status = vc.status.expect("status");
    assert_eq!(status.replicas, 3);

    assert_eq!(
        init_commands(&sim, "scale"),
        1,
        "one init for the whole life"
    );
    dns.stop().await;
    operator.stop().await;
    sim.shutdown().await;
}
