//! A configuration change, and then an image change, roll the pods one at a time:
//! standbys first (highest ordinal first), then the active node steps down and is replaced
//! last, each only after the previous pod is unsealed and a voter again. Every pod's
//! `sys/health` is sampled during each roll: there is never a moment without a quorum.
//!
//! The simulated kubelet runs the one OpenBao binary there is for every OpenBao tag, so
//! the image change is seen in the pods' specs; the version Vault reports stays the same.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
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
async fn config_and_image_changes_roll_standbys_first_and_the_active_last_keeping_quorum() {
    let _logs = capture_logs();
    let sim = cluster_with_pods(144).await;
    let mut operator = Operator::install_and_start(&sim).await;
    apply_cluster(&sim, CLUSTER, "roll").await;
    let vc = wait_for(&sim, "roll", "roll", TIMEOUT, "Ready", ready).await;
    let active = vc.status.and_then(|s| s.active_pod).expect("an active pod");

    let active = roll(
        &sim,
        &active,
        serde_json::json!({"config": {"log_level": "debug"}}),
    )
    .await;
    roll(
        &sim,
        &active,
        serde_json::json!({"image": "quay.io/openbao/openbao:2.7.3"}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(sim.client().expect("admin"), "roll");
    for pod in ["roll-0", "roll-1", "roll-2"] {
        let image = pods
            .get(pod)
            .await
            .expect("pod")
            .spec
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.image);
        assert_eq!(
            image.as_deref(),
            Some("quay.io/openbao/openbao:2.7.3"),
            "{pod}"
        );
    }

    assert_eq!(init_commands(&sim, "roll"), 1);
    operator.stop().await;
    sim.shutdown().await;
}

/// Patches the spec, waits for the roll to finish, checks quorum throughout and the
/// order the Events tell; returns the active pod afterwards.
async fn roll(sim: &vaultkeeper_sim::SimCluster, active: &str, patch: serde_json::Value) -> String {
    let since = jiff::Timestamp::now();
    let sampler = Sampler::start(sim, "roll", "roll", Duration::from_millis(300));
    patch_spec(sim, "roll", "roll", patch.clone()).await;
    // Ready for the new generation with no operation left: every pod rolled.
    let vc = wait_for(sim, "roll", "roll", TIMEOUT, "Ready after the roll", |vc| {
        ready(vc) && vc.status.as_ref().is_some_and(|s| s.operation.is_none())
    })
    .await;
    let samples = sampler.finish().await;
    assert!(samples.len() > 10, "too few samples: {}", samples.len());
    for s in &samples {
        assert!(s.has_quorum(), "{patch}: quorum lost at {:?}: {s:?}", s.at);
        // One disruption at a time: never two of three pods down.
        assert!(
            s.unsealed.len() >= 2,
            "{patch}: two pods down at once at {:?}: {s:?}",
            s.at
        );
    }
    // Leadership moved during the roll (the old active stepped down).
    assert!(
        samples
            .iter()
            .any(|s| s.active.as_deref().is_some_and(|a| a != active)),
        "{patch}: the active node never changed: {samples:#?}"
    );

    // The order, as the Events of this roll tell it.
    let events: Api<Event> = Api::namespaced(sim.client().expect("admin"), "roll");
    let mut steps: Vec<(jiff::Timestamp, String, String)> = events
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
        // A repeated Event (same pod, same words) is counted in its series rather than
        // created again: when it last happened is the series' time.
        .filter_map(|e| {
            let at = e
                .series
                .as_ref()
                .map(|s| s.last_observed_time.0)
                .or(e.event_time.as_ref().map(|t| t.0))?;
            (at >= since).then(|| (at, e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
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
        "{patch}: standbys first, then step-down, the old active last"
    );
    vc.status.and_then(|s| s.active_pod).expect("an active pod")
}
