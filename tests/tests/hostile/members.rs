//! Members and fixed fields. The attacker copies a cluster's server labels onto pods of
//! their own, before and while it initializes, hoping to be exec'd into and handed shares
//! or a token; then, once it runs, tries to change what the cluster was initialized with
//! (flavor, seal type, keys Secret). They get neither: the squatting pods never see a
//! single command, are counted nowhere and are reported once; the changes are refused by
//! the API server with the field and the way to migrate instead, and nothing changes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use vaultkeeper_api::{Flavor, VaultCluster, rules};
use vaultkeeper_e2e::hostile::{ATTACKER_NAMESPACE, attacker, small_cluster};
use vaultkeeper_e2e::operator::{
    Operator, cluster_with_pods, count_events, events, ready, wait_for,
};
use vaultkeeper_render::{Labels, ServerLayout};
use vaultkeeper_sim::SimCluster;

const TIMEOUT: Duration = Duration::from_secs(300);

/// A pod of the attacker's with the cluster's three server labels and its container name,
/// running a real OpenBao dev server that would gladly answer any command.
fn squatter(cluster: &str, name: &str) -> Pod {
    let layout = ServerLayout::new(Flavor::OpenBao);
    let labels = Labels::new(layout, cluster, None).server_selector();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ATTACKER_NAMESPACE, "labels": labels},
        "spec": {"containers": [{
            "name": layout.container_name(),
            "image": "quay.io/openbao/openbao:2.7.2",
            "command": ["bao", "server", "-dev", "-dev-root-token-id=squatter"],
        }]}
    }))
    .expect("a pod")
}

/// Every request that tried to exec into `pod` in the attacker's namespace, and every exec
/// the kubelet ran there.
fn execs_into(sim: &SimCluster, pod: &str) -> usize {
    let requested = sim
        .requests()
        .iter()
        .filter(|r| r.subresource == "exec" && r.namespace == ATTACKER_NAMESPACE && r.name == pod)
        .count();
    let ran = sim
        .exec_audit()
        .iter()
        .filter(|r| r.pod.namespace == ATTACKER_NAMESPACE && r.pod.name == pod)
        .count();
    requested + ran
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_that_copy_the_server_labels_are_never_treated_as_members() {
    let sim = cluster_with_pods(172).await;
    let _operator = Operator::install_and_start(&sim).await;
    let mallory = attacker(&sim).await.expect("the attacker's client");
    let pods: Api<Pod> = Api::namespaced(mallory.clone(), ATTACKER_NAMESPACE);
    let clusters: Api<VaultCluster> = Api::namespaced(mallory, ATTACKER_NAMESPACE);
    let name = "squatted";

    // Before the cluster exists, and while it initializes: one under a name no member
    // has, one under the name a departed member would have (a scale-down leftover).
    let early = format!("{name}-early");
    pods.create(&PostParams::default(), &squatter(name, &early))
        .await
        .expect("the attacker may create pods");
    clusters
        .create(&PostParams::default(), &small_cluster(name, ""))
        .await
        .expect("the attacker may create VaultClusters");
    let leftover = format!("{name}-3");
    pods.create(&PostParams::default(), &squatter(name, &leftover))
        .await
        .expect("the attacker may create pods");

    let vc = wait_for(&sim, ATTACKER_NAMESPACE, name, TIMEOUT, "Ready", ready).await;
    // A few more passes, so a late mistake would show.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let member = format!("{name}-0");
    assert!(
        execs_into(&sim, &member) > 0,
        "the real member was worked on"
    );
    for squatter in [&early, &leftover] {
        assert_eq!(
            execs_into(&sim, squatter),
            0,
            "no command, share or token was sent to {squatter}"
        );
    }
    let status = vc.status.expect("status");
    assert_eq!(status.replicas, 1, "the squatters are counted nowhere");
    assert!(
        status.nodes.iter().all(|n| n.name == member),
        "{:?}",
        status.nodes
    );
    let seen = events(&sim, ATTACKER_NAMESPACE).await;
    assert_eq!(
        count_events(&seen, "ForeignPod"),
        2,
        "each squatter is reported once: {seen:?}"
    );
    for squatter in [&early, &leftover] {
        assert!(
            seen.iter()
                .any(|e| e.reason == "ForeignPod" && e.note.contains(squatter.as_str())),
            "the Warning names {squatter}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flavor_seal_and_keys_secret_cannot_change_after_init() {
    let sim = cluster_with_pods(173).await;
    let _operator = Operator::install_and_start(&sim).await;
    let mallory = attacker(&sim).await.expect("the attacker's client");
    let clusters: Api<VaultCluster> = Api::namespaced(mallory, ATTACKER_NAMESPACE);
    let name = "fixed";
    clusters
        .create(&PostParams::default(), &small_cluster(name, ""))
        .await
        .expect("the attacker may create VaultClusters");
    let before = wait_for(&sim, ATTACKER_NAMESPACE, name, TIMEOUT, "Ready", ready).await;
    let recorded = before
        .status
        .as_ref()
        .and_then(|s| s.initialized_with.clone())
        .expect("status records what the cluster was initialized with");
    assert_eq!(recorded.flavor, Flavor::OpenBao);
    assert_eq!(recorded.keys_secret_name, format!("{name}-unseal-keys"));

    let attempts = [
        (
            json!({"spec": {"flavor": "Vault"}}),
            rules::flavor_immutable(),
        ),
        (
            json!({"spec": {"unseal": {"type": "AwsKms",
                "awsKms": {"region": "eu-west-1", "kmsKeyId": "alias/vault"}}}}),
            rules::unseal_type_immutable(),
        ),
        (
            json!({"spec": {"keys": {"secretName": "someone-elses-keys"}}}),
            rules::keys_secret_immutable(),
        ),
    ];
    for (patch, rule) in attempts {
        let refused = clusters
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err("the API server refuses the change");
        match refused {
            kube::Error::Api(status) => {
                assert_eq!(status.code, 422, "{status:?}");
                assert!(
                    status.message.contains(&rule.message),
                    "the refusal says {}: {}",
                    rule.field,
                    status.message
                );
                assert!(status.message.contains(rule.field));
            }
            other => panic!("unexpected error: {other}"),
        }
    }
    let after = clusters.get(name).await.expect("read the cluster");
    assert_eq!(after.spec, before.spec, "nothing changed");
    assert_eq!(after.metadata.generation, before.metadata.generation);
}
