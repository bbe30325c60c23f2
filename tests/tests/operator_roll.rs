//! A configuration change rolls the pods one at a time: standbys first (highest ordinal
//! first), then the active node steps down and is replaced last, each only after the
//! previous pod is unsealed and a voter again. Every pod's `sys/health` is sampled during
//! the roll: there is never a moment without a quorum.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use vaultkeeper_e2e::operator::{
    Operator, Sampler, apply_cluster, capture_logs, cluster_with_pods, init_commands, patch_spec,
    ready, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(420);

const CLUSTER: &str = r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: roll
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 3
  config:
    log_level: info
  backup:
    enabled: false
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_config_change_rolls_standbys_first_and_the_active_last_keeping_quorum() {
    let _logs = capture_logs();
    let sim = cluster_with_pods(144).await;
    let mut operator = Operator::install_and_start(&sim).await;
    apply_cluster(&sim, CLUSTER, "roll").await;
    let vc = wait_for(&sim, "roll", "roll", TIMEOUT, "Ready", ready).await;
    let active = vc.status.and_then(|s| s.active_pod).expect("an active pod");

    let sampler = Sampler::start(&sim, "roll", "roll", Duration::from_millis(300));
    patch_spec(
        &sim,
        "roll",
        "roll",
        serde_json::json!({"config": {"log_level": "debug"}}),
    )
    .await;
    // Ready for the new generation with no operation left: every pod rolled.
    wait_for(
        &sim,
        "roll",
        "roll",
        TIMEOUT,
        "Ready after the roll",
        |vc| ready(vc) && vc.status.as_ref().is_some_and(|s| s.operation.is_none()),
    )
    .await;
    let samples = sampler.finish().await;
    assert!(samples.len() > 10, "too few samples: {}", samples.len());
    for s in &samples {
        assert!(s.has_quorum(), "quorum lost at {:?}: {s:?}", s.at);
        // One disruption at a time: never two of three pods down.
        assert!(
            s.unsealed.len() >= 2,
            "two pods down at once at {:?}: {s:?}",
            s.at
        );
    }
    // Leadership moved during the roll (the old active stepped down).
    assert!(
        samples
            .iter()
            .any(|s| s.active.as_deref().is_some_and(|a| a != active)),
        "the active node never changed: {samples:#?}"
    );

    // The order, as the Events tell it.
    let events: Api<Event> = Api::namespaced(sim.client().expect("admin"), "roll");
    let mut steps: Vec<(String, String, String)> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| {
            matches!(
                e.reason.as_deref(),
                Some("RollingUpdate") | Some("SteppedDown")
            )
        })
        .map(|e| {
            let at = e.event_time.map(|t| t.0.to_string()).unwrap_or_default();
            (at, e.reason.unwrap_or_default(), e.note.unwrap_or_default())
        })
        .collect();
    steps.sort();
    let order: Vec<String> = steps
        .iter()
        .map(|(_, reason, note)| {
            let pod = note
                .split_whitespace()
                .find(|w| w.starts_with("roll-"))
                .unwrap_or_default();
            format!("{reason} {pod}")
        })
        .collect();
    let mut standbys: Vec<String> = ["roll-0", "roll-1", "roll-2"]
        .iter()
        .filter(|p| **p != active)
        .map(|p| (*p).to_owned())
        .collect();
    standbys.sort_by(|a, b| b.cmp(a));
    let mut expected: Vec<String> = standbys
        .iter()
        .map(|p| format!("RollingUpdate {p}"))
        .collect();
    expected.push(format!("SteppedDown {active}"));
    expected.push(format!("RollingUpdate {active}"));
    assert_eq!(
        order, expected,
        "standbys first, then step-down, the old active last"
    );

    assert_eq!(init_commands(&sim, "roll"), 1);
    operator.stop().await;
    sim.shutdown().await;
}
