//! The Deployment and ReplicaSet controllers, as a client waiting on a rollout sees them
//! (<https://kubernetes.io/docs/concepts/workloads/controllers/deployment/>): a
//! ReplicaSet per pod template with `pod-template-hash`, pods owned by it, counts and
//! conditions in the Deployment's status, and a new template replacing the old ReplicaSet.
//! Slot 213. Pods do not run here (no kubelet); the test marks them ready itself.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use vaultkeeper_sim::{SimCluster, SimConfig};

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..100 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn deployment(image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            }
        }
    }))
    .expect("a Deployment")
}

async fn mark_ready(pods: &Api<Pod>, selector: &str) {
    for pod in pods
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
    {
        let status = json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        pods.patch_status(
            &pod.metadata.name.unwrap(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_rolls_out_through_a_replica_set_per_template() {
    let cluster = SimCluster::start(SimConfig::for_slot(213))
        .await
        .expect("cluster starts");
    let client = cluster.client().unwrap();
    let deployments = Api::<Deployment>::default_namespaced(client.clone());
    let sets = Api::<ReplicaSet>::default_namespaced(client.clone());
    let pods = Api::<Pod>::default_namespaced(client);
    deployments
        .create(&PostParams::default(), &deployment("example/web:1", 2))
        .await
        .unwrap();

    // One ReplicaSet for the template, labelled with its hash, owning two pods.
    let first = eventually("the first ReplicaSet and its pods", || async {
        let list = sets.list(&ListParams::default()).await.ok()?;
        let rs = list.items.into_iter().next()?;
        (rs.status.as_ref()?.replicas == 2).then_some(rs)
    })
    .await;
    let hash = first.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        first.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        first.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    let selector = format!("app=web,pod-template-hash={hash}");
    assert_eq!(
        pods.list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    // Not available until the pods are ready; then Available and fully progressed.
    let status = deployments.get("web").await.unwrap().status.unwrap();
    assert_eq!(status.available_replicas.unwrap_or(0), 0);
    mark_ready(&pods, &selector).await;
    eventually("the Deployment to be available", || async {
        let d = deployments.get("web").await.ok()?;
        let s = d.status?;
        let progressed = s.conditions?.iter().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")
        });
        (s.observed_generation == d.metadata.generation
            && s.available_replicas == Some(2)
            && s.updated_replicas == Some(2)
            && progressed)
            .then_some(())
    })
    .await;

    // A new template: a second ReplicaSet takes over, the first goes to zero.
    deployments
        .replace("web", &PostParams::default(), &{
            let mut d = deployment("example/web:2", 3);
            d.metadata.resource_version = deployments
                .get("web")
                .await
                .unwrap()
                .metadata
                .resource_version;
            d
        })
        .await
        .unwrap();
    eventually("the second ReplicaSet to take over", || async {
        let list = sets.list(&ListParams::default()).await.ok()?;
        let old = list
            .items
            .iter()
            .find(|rs| rs.metadata.name == first.metadata.name)?;
        let new = list
            .items
            .iter()
            .find(|rs| rs.metadata.name != first.metadata.name)?;
        let revision = &new.metadata.annotations.as_ref()?["deployment.kubernetes.io/revision"];
        (old.spec.as_ref()?.replicas == Some(0)
            && new.spec.as_ref()?.replicas == Some(3)
            && new.status.as_ref()?.replicas == 3
            && revision == "2")
            .then_some(())
    })
    .await;
    let status = deployments.get("web").await.unwrap().status.unwrap();
    assert_eq!(status.updated_replicas, Some(3));
    assert_eq!(
        status.available_replicas.unwrap_or(0),
        0,
        "the new pods are not ready"
    );
    cluster.shutdown().await;
}
