//! A spec the CRD's CEL rules accept but the operator's own checks refuse (a metrics
//! token period shorter than two renewal gaps): `SpecValid=False` naming the field, phase
//! Blocked, a Warning Event, and nothing created; fixing the field brings the cluster up.
//! Then a valid change Kubernetes refuses (a new volume size: claim templates are fixed)
//! is reported as Degraded with the fix, and setting it back clears it.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, capture_logs, cluster_with_pods, condition, events, patch_spec, ready,
    wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(300);

const CLUSTER: &str = r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: bad
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 1
  monitoring:
    tokenRenewSchedule: "0 13 * * 4"
    tokenPeriod: 24h
  backup:
    enabled: false
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_only_violation_blocks_with_the_field_named_until_fixed() {
    let _logs = capture_logs();
    let sim = cluster_with_pods(150).await;
    let mut operator = Operator::install_and_start(&sim).await;
    // Accepted by the API server: the CEL rules only check the duration's shape.
    apply_cluster(&sim, CLUSTER, "bad").await;

    let vc = wait_for(&sim, "bad", "bad", TIMEOUT, "SpecValid=False", |vc| {
        condition(vc, "SpecValid", "False")
            && vc.status.as_ref().and_then(|s| s.observed_generation) == vc.metadata.generation
    })
    .await;
    let status = vc.status.clone().expect("status");
    assert_eq!(
        status.phase,
        Some(vaultkeeper_api::Phase::Blocked),
        "{status:?}"
    );
    let spec_valid = status
        .conditions
        .iter()
        .find(|c| c.type_ == "SpecValid")
        .expect("SpecValid");
    assert!(
        spec_valid.message.contains("spec.monitoring.tokenPeriod"),
        "the message names the field: {}",
        spec_valid.message
    );
    assert!(
        spec_valid.message.contains("at least"),
        "the message says the fix: {}",
        spec_valid.message
    );
    assert!(condition(&vc, "Ready", "False"));
    let warned: Vec<_> = events(&sim, "bad")
        .await
        .into_iter()
        .filter(|e| e.reason == "InvalidSpec" && e.type_ == "Warning")
        .collect();
    assert!(
        warned
            .iter()
            .any(|e| e.note.contains("spec.monitoring.tokenPeriod")),
        "a Warning Event names the field: {warned:?}"
    );
    // Nothing was rendered from the invalid spec.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let statefulsets: Api<StatefulSet> = Api::namespaced(sim.client().expect("admin"), "bad");
    assert!(
        statefulsets.get_opt("bad").await.expect("read").is_none(),
        "an invalid spec creates nothing"
    );

    // The fix the message asks for.
    patch_spec(
        &sim,
        "bad",
        "bad",
        serde_json::json!({"monitoring": {"tokenPeriod": "336h"}}),
    )
    .await;
    let vc = wait_for(&sim, "bad", "bad", TIMEOUT, "Ready once fixed", ready).await;
    assert!(condition(&vc, "SpecValid", "True"));

    // A valid spec Kubernetes cannot carry out: a StatefulSet's claim templates are fixed,
    // so a new volume size is refused by the API server. Degraded names the fields and
    // the fix; the pod keeps running, unsealed, and nothing else stops.
    let pods: Api<Pod> = Api::namespaced(sim.client().expect("admin"), "bad");
    let pod_uid = pods.get("bad-0").await.expect("the pod").metadata.uid;
    patch_spec(
        &sim,
        "bad",
        "bad",
        serde_json::json!({"storage": {"size": "20Gi"}}),
    )
    .await;
    let vc = wait_for(
        &sim,
        "bad",
        "bad",
        TIMEOUT,
        "Degraded: a fixed field",
        |vc| {
            condition(vc, "Degraded", "True")
                && vc.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Degraded" && c.reason == "StatefulSetFieldFixed")
                })
        },
    )
    .await;
    let degraded = vc
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded"))
        .expect("Degraded");
    assert!(
        degraded.message.contains("spec.storage") && degraded.message.contains("back"),
        "the message names the fields and the fix: {}",
        degraded.message
    );
    assert!(
        condition(&vc, "Ready", "False"),
        "not what the spec asks for"
    );
    assert!(condition(&vc, "Unsealed", "True"), "the pod still serves");
    assert_eq!(
        pods.get("bad-0").await.expect("the pod").metadata.uid,
        pod_uid,
        "the pod was not touched"
    );
    // Setting it back is the fix.
    patch_spec(
        &sim,
        "bad",
        "bad",
        serde_json::json!({"storage": {"size": null}}),
    )
    .await;
    let vc = wait_for(&sim, "bad", "bad", TIMEOUT, "Ready once set back", ready).await;
    assert!(condition(&vc, "Degraded", "False"));

    operator.stop().await;
    sim.shutdown().await;
}
