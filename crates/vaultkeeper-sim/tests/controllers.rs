//! The simulated controllers through `kube::Client`: StatefulSet, Endpoints/EndpointSlice,
//! Job and CronJob. Pod status is written here by a stand-in for the kubelet (the real
//! kubelet glue runs processes and is exercised by `tests/real_pods.rs`); everything else
//! is the controllers' own doing. Each test owns loopback slot 127.20.(50+n).x.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Endpoints, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::time::Duration;
use vaultkeeper_sim::{SimCluster, SimConfig};

async fn cluster(slot: u8) -> SimCluster {
    SimCluster::start(SimConfig::for_slot(50 + slot))
        .await
        .expect("cluster starts")
}

async fn eventually<F, Fut, T>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..150 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Stand-in kubelet: marks every scheduled pod Running and Ready with an IP.
async fn mark_running(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

/// Stand-in kubelet, second duty: a pod being deleted gracefully is gone once its
/// (imaginary) processes stopped, so finish the deletion with grace period 0.
fn finish_terminations(pods: Api<Pod>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(l) = pods.list(&ListParams::default()).await {
                for p in l
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_some())
                {
                    let _ = pods
                        .delete(
                            p.metadata.name.as_deref().unwrap_or_default(),
                            &DeleteParams::default().grace_period(0),
                        )
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn sts(policy: &str, strategy: &str, replicas: i32) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": "vault"},
        "spec": {"serviceName": "vault-internal", "replicas": replicas, "podManagementPolicy": policy,
            "updateStrategy": {"type": strategy},
            "selector": {"matchLabels": {"app.kubernetes.io/name": "vault", "component": "server"}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": "vault", "component": "server"}},
                "spec": {"containers": [{"name": "vault", "image": "openbao/openbao:2.7.2", "ports": [{"name": "http", "containerPort": 8200}],
                    "volumeMounts": [{"name": "data", "mountPath": "/vault/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_parallel_creates_ordinal_pods_and_claims_that_outlive_their_pods() {
    // StatefulSet docs: "Stable Network ID", "Stable Storage" (PVCs are not deleted with
    // their pods), "Parallel Pod Management".
    let c = cluster(1).await;
    let client = c.client().unwrap();
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    let kubelet = finish_terminations(pods.clone());
    sets.create(&PostParams::default(), &sts("Parallel", "OnDelete", 3))
        .await
        .unwrap();
    let names = eventually("three pods", || {
        let pods = pods.clone();
        async move {
            let l = pods
                .list(&ListParams::default().labels("component=server"))
                .await
                .ok()?;
            (l.items.len() == 3).then(|| {
                l.items
                    .iter()
                    .map(|p| p.metadata.name.clone().unwrap())
                    .collect::<Vec<_>>()
            })
        }
    })
    .await;
    assert_eq!(names, ["vault-0", "vault-1", "vault-2"]);
    let p0 = pods.get("vault-0").await.unwrap();
    let spec = p0.spec.clone().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("vault-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("vault-internal"));
    assert_eq!(spec.node_name.as_deref(), Some("sim-node"), "scheduled");
    let claim = spec
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "data")
        .unwrap();
    assert_eq!(
        claim.persistent_volume_claim.unwrap().claim_name,
        "data-vault-0"
    );
    assert!(spec.service_account_name.as_deref() == Some("default"));
    let labels = p0.metadata.labels.unwrap();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "vault-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");
    let pvc = eventually("claim bound", || {
        let pvcs = pvcs.clone();
        async move {
            pvcs.get("data-vault-0")
                .await
                .ok()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
        }
    })
    .await;
    let pvc_uid = pvc.metadata.uid.clone();
    // A deleted pod comes back with the same name and the same claim.
    let old_uid = p0.metadata.uid.clone();
    pods.delete("vault-0", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("vault-0 recreated", || {
        let pods = pods.clone();
        let old_uid = old_uid.clone();
        async move {
            pods.get("vault-0")
                .await
                .ok()
                .filter(|p| p.metadata.uid != old_uid)
        }
    })
    .await;
    assert_eq!(
        pvcs.get("data-vault-0").await.unwrap().metadata.uid,
        pvc_uid,
        "the claim survived"
    );
    for (i, n) in names.iter().enumerate() {
        mark_running(&pods, n, &format!("127.21.51.{}", 10 + i), true).await;
    }
    let status = eventually("status counts ready pods", || {
        let sets = sets.clone();
        async move {
            sets.get("vault")
                .await
                .ok()?
                .status
                .filter(|s| s.ready_replicas == Some(3))
        }
    })
    .await;
    assert_eq!(status.observed_generation, Some(1));
    // Scale subresource.
    sets.patch_scale(
        "vault",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("scaled down to one", || {
        let pods = pods.clone();
        async move {
            (pods
                .list(&ListParams::default().labels("component=server"))
                .await
                .ok()?
                .items
                .len()
                == 1)
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        pvcs.list(&ListParams::default()).await.unwrap().items.len(),
        3,
        "claims are retained on scale-down"
    );
    kubelet.abort();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_when_scaled_delete_removes_the_claims_of_removed_pods_only() {
    // StatefulSet docs, "PersistentVolumeClaim retention": with `whenScaled: Delete` the
    // claims of pods a scale-down removes are deleted once those pods are gone; the
    // claims of the remaining pods stay; `whenDeleted: Delete` keeps the StatefulSet as
    // the owner of the others.
    let c = cluster(5).await;
    let client = c.client().unwrap();
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    let kubelet = finish_terminations(pods.clone());
    let mut set = sts("Parallel", "OnDelete", 3);
    set.spec
        .as_mut()
        .unwrap()
        .persistent_volume_claim_retention_policy = Some(
        serde_json::from_value(json!({"whenDeleted": "Delete", "whenScaled": "Delete"})).unwrap(),
    );
    sets.create(&PostParams::default(), &set).await.unwrap();
    let claims = |pvcs: Api<PersistentVolumeClaim>| async move {
        let mut names: Vec<String> = pvcs
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name)
            .collect();
        names.sort();
        Some(names)
    };
    eventually("three claims", || {
        let pvcs = pvcs.clone();
        async move { claims(pvcs).await.filter(|n| n.len() == 3) }
    })
    .await;
    let kept_uid = pvcs.get("data-vault-0").await.unwrap().metadata.uid;
    sets.patch_scale(
        "vault",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let left = eventually("the claims of vault-1 and vault-2 deleted", || {
        let pvcs = pvcs.clone();
        async move { claims(pvcs).await.filter(|n| n.len() == 1) }
    })
    .await;
    assert_eq!(left, ["data-vault-0"]);
    let kept = pvcs.get("data-vault-0").await.unwrap();
    assert_eq!(
        kept.metadata.uid, kept_uid,
        "the remaining pod keeps its claim"
    );
    let owners = kept.metadata.owner_references.unwrap_or_default();
    assert!(
        owners.len() == 1 && owners[0].kind == "StatefulSet",
        "the remaining claim is owned by the StatefulSet only: {owners:?}"
    );
    // Back up: new, empty claims for the new pods.
    sets.patch_scale(
        "vault",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    let all = eventually("three claims again", || {
        let pvcs = pvcs.clone();
        async move { claims(pvcs).await.filter(|n| n.len() == 3) }
    })
    .await;
    assert_eq!(all, ["data-vault-0", "data-vault-1", "data-vault-2"]);

    // With `whenScaled: Retain` a scale-down keeps every claim.
    sets.patch(
        "vault",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Retain"}}}),
        ),
    )
    .await
    .unwrap();
    sets.patch_scale(
        "vault",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("scaled down to one pod", || {
        let pods = pods.clone();
        async move {
            (pods.list(&ListParams::default()).await.ok()?.items.len() == 1).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        claims(pvcs.clone()).await.unwrap().len(),
        3,
        "whenScaled: Retain keeps the claims"
    );
    kubelet.abort();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_ordered_ready_and_rolling_update() {
    // "OrderedReady": pod N+1 only after pod N is Running and Ready. "Rolling Updates":
    // highest ordinal first, after a template change.
    let c = cluster(2).await;
    let client = c.client().unwrap();
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let kubelet = finish_terminations(pods.clone());
    sets.create(
        &PostParams::default(),
        &sts("OrderedReady", "RollingUpdate", 2),
    )
    .await
    .unwrap();
    eventually("vault-0", || {
        let pods = pods.clone();
        async move { pods.get("vault-0").await.ok() }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        pods.get_opt("vault-1").await.unwrap().is_none(),
        "waits for vault-0 to be ready"
    );
    mark_running(&pods, "vault-0", "127.21.52.10", true).await;
    eventually("vault-1", || {
        let pods = pods.clone();
        async move { pods.get("vault-1").await.ok() }
    })
    .await;
    mark_running(&pods, "vault-1", "127.21.52.11", true).await;
    let rev0 =
        pods.get("vault-0").await.unwrap().metadata.labels.unwrap()["controller-revision-hash"]
            .clone();
    sets.patch("vault", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "vault", "image": "openbao/openbao:2.7.3"}]}}}})))
        .await
        .unwrap();
    // vault-1 goes first; vault-0 waits until the new vault-1 is ready.
    let new1 = eventually("vault-1 replaced", || {
        let pods = pods.clone();
        let rev0 = rev0.clone();
        async move {
            pods.get("vault-1")
                .await
                .ok()
                .filter(|p| p.metadata.labels.as_ref().unwrap()["controller-revision-hash"] != rev0)
        }
    })
    .await;
    assert_eq!(
        pods.get("vault-0").await.unwrap().metadata.labels.unwrap()["controller-revision-hash"],
        rev0
    );
    let image = new1.spec.unwrap().containers[0].image.clone().unwrap();
    assert_eq!(image, "openbao/openbao:2.7.3");
    mark_running(&pods, "vault-1", "127.21.52.11", true).await;
    eventually("vault-0 replaced", || {
        let pods = pods.clone();
        let rev0 = rev0.clone();
        async move {
            pods.get("vault-0")
                .await
                .ok()
                .filter(|p| p.metadata.labels.as_ref().unwrap()["controller-revision-hash"] != rev0)
        }
    })
    .await;
    // Changing claim templates is forbidden, as on a real cluster.
    let err = sets
        .patch("vault", &PatchParams::default(), &Patch::Merge(json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}}}]}})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("Forbidden: updates to statefulset spec")),
        "{err:?}"
    );
    kubelet.abort();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_pod_labels_and_readiness() {
    // Services docs: endpoints list ready pods matching the selector; the headless
    // internal Service publishes not-ready addresses too.
    let c = cluster(3).await;
    let client = c.client().unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let eps: Api<Endpoints> = Api::default_namespaced(client.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    for (i, n) in ["vault-0", "vault-1"].iter().enumerate() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": n, "labels": {"app": "vault"}}, "spec": {"hostname": n, "subdomain": "vault-internal", "containers": [{"name": "vault", "image": "openbao/openbao:2.7.2"}]}})).unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
        mark_running(&pods, n, &format!("127.21.53.{}", 10 + i), i == 0).await;
    }
    let active: Service = serde_json::from_value(json!({"metadata": {"name": "vault-active"}, "spec": {"selector": {"app": "vault", "openbao-active": "true"}, "ports": [{"name": "http", "port": 8200}]}})).unwrap();
    let internal: Service = serde_json::from_value(json!({"metadata": {"name": "vault-internal"}, "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "selector": {"app": "vault"}, "ports": [{"name": "http", "port": 8200}]}})).unwrap();
    let svc = svcs.create(&PostParams::default(), &active).await.unwrap();
    assert!(
        svc.spec
            .unwrap()
            .cluster_ip
            .unwrap()
            .starts_with("127.20.53."),
        "cluster IPs come from the configured loopback range"
    );
    svcs.create(&PostParams::default(), &internal)
        .await
        .unwrap();
    let ips = |e: &Endpoints| -> Vec<String> {
        e.subsets
            .iter()
            .flatten()
            .flat_map(|s| s.addresses.iter().flatten().map(|a| a.ip.clone()))
            .collect()
    };
    let e = eventually("internal endpoints", || {
        let eps = eps.clone();
        async move {
            eps.get("vault-internal")
                .await
                .ok()
                .filter(|e| e.subsets.is_some())
        }
    })
    .await;
    assert_eq!(ips(&e), ["127.21.53.10", "127.21.53.11"]);
    for (n, active) in [("vault-1", "true"), ("vault-0", "false")] {
        pods.patch(n, &PatchParams::default(), &Patch::Json::<()>(serde_json::from_value(json!([{"op": "add", "path": "/metadata/labels/openbao-active", "value": active}])).unwrap())).await.unwrap();
    }
    // vault-1 is the leader but not ready: it appears as not ready.
    let e = eventually("active endpoints", || {
        let eps = eps.clone();
        async move {
            eps.get("vault-active")
                .await
                .ok()
                .filter(|e| e.subsets.is_some())
        }
    })
    .await;
    assert!(ips(&e).is_empty());
    assert_eq!(
        e.subsets.unwrap()[0].not_ready_addresses.as_ref().unwrap()[0].ip,
        "127.21.53.11"
    );
    mark_running(&pods, "vault-1", "127.21.53.11", true).await;
    eventually("leader ready in endpoints", || {
        let eps = eps.clone();
        async move {
            eps.get("vault-active")
                .await
                .ok()
                .filter(|e| ips(e) == ["127.21.53.11"])
        }
    })
    .await;
    let slice = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=vault-active"))
        .await
        .unwrap();
    assert_eq!(slice.items.len(), 1);
    let value: Value = serde_json::to_value(&slice.items[0]).unwrap();
    assert_eq!(value["endpoints"][0]["addresses"][0], "127.21.53.11");
    svcs.delete("vault-active", &DeleteParams::default())
        .await
        .unwrap();
    eventually("endpoints removed with the service", || {
        let eps = eps.clone();
        async move {
            eps.get_opt("vault-active")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_completes_and_cronjob_fires_on_the_driven_clock() {
    // Job docs: a Job is Complete when `completions` pods succeeded. CronJob docs: one Job
    // per schedule time, named after the scheduled minute.
    let c = cluster(4).await;
    let client = c.client().unwrap();
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let cjs: Api<CronJob> = Api::default_namespaced(client.clone());
    let template = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "backup", "image": "vaultkeeper:dev", "args": ["backup"]}]}});
    let cj: CronJob = serde_json::from_value(json!({"metadata": {"name": "vault-backup"}, "spec": {"schedule": "0 13 * * 4", "jobTemplate": {"spec": {"template": template}}}})).unwrap();
    cjs.create(&PostParams::default(), &cj).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        jobs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing due yet"
    );
    c.clock().advance(jiff::SignedDuration::from_hours(24 * 8));
    let job = eventually("a job for the missed Thursday", || {
        let jobs = jobs.clone();
        async move {
            jobs.list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()
        }
    })
    .await;
    let name = job.metadata.name.clone().unwrap();
    assert!(name.starts_with("vault-backup-"));
    let minutes: i64 = name.trim_start_matches("vault-backup-").parse().unwrap();
    let t = jiff::Timestamp::from_second(minutes * 60).unwrap();
    assert_eq!(t.strftime("%a %H:%M").to_string(), "Thu 13:00");
    let sel = job.spec.as_ref().unwrap().selector.clone().unwrap();
    assert!(
        sel.match_labels
            .unwrap()
            .contains_key("batch.kubernetes.io/controller-uid")
    );
    let pod = eventually("the job's pod", || {
        let pods = pods.clone();
        let name = name.clone();
        async move {
            pods.list(&ListParams::default().labels(&format!("job-name={name}")))
                .await
                .ok()?
                .items
                .into_iter()
                .next()
        }
    })
    .await;
    pods.patch_status(
        pod.metadata.name.as_deref().unwrap(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .unwrap();
    let done = eventually("job complete", || {
        let jobs = jobs.clone();
        let name = name.clone();
        async move {
            jobs.get(&name)
                .await
                .ok()?
                .status
                .filter(|s| s.succeeded == Some(1) && s.completion_time.is_some())
        }
    })
    .await;
    assert!(
        done.conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True")
    );
    let status = eventually("cronjob records success", || {
        let cjs = cjs.clone();
        async move {
            cjs.get("vault-backup")
                .await
                .ok()?
                .status
                .filter(|s| s.last_successful_time.is_some())
        }
    })
    .await;
    assert!(status.last_schedule_time.is_some());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_deleted_with_orphan_leaves_its_pods_to_the_next_one_with_that_selector() {
    // What taking over a StatefulSet whose immutable fields differ relies on: Kubernetes
    // refuses the change, `propagationPolicy: Orphan` keeps the pods running without an
    // owner, and a new StatefulSet of the same name adopts them by selector, restarting
    // none (OnDelete) while they stay on the old revision.
    let c = SimCluster::start(SimConfig::for_slot(230))
        .await
        .expect("cluster starts");
    let client = c.client().unwrap();
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    sets.create(&PostParams::default(), &sts("Parallel", "OnDelete", 2))
        .await
        .unwrap();
    let server_pods = || {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels("component=server"))
                .await
                .ok()
                .map(|l| l.items)
        }
    };
    let before = eventually("two pods", || async {
        server_pods().await.filter(|p| p.len() == 2)
    })
    .await;
    let old_uid = sets.get("vault").await.unwrap().metadata.uid.unwrap();

    let mut changed = sts("Parallel", "OnDelete", 2);
    changed.metadata.resource_version = None;
    let spec = changed.spec.as_mut().unwrap();
    spec.volume_claim_templates.as_mut().unwrap()[0]
        .metadata
        .labels = Some([("component".to_owned(), "server".to_owned())].into());
    spec.template.spec.as_mut().unwrap().containers[0].image = Some("openbao/openbao:2.7.3".into());
    let refused = sets
        .patch(
            "vault",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&changed),
        )
        .await
        .expect_err("a changed claim template is refused");
    let kube::Error::Api(status) = refused else {
        panic!("not an API error: {refused}");
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status
            .message
            .contains("updates to statefulset spec for fields other than"),
        "{}",
        status.message
    );

    // A labelled pod that is not an ordinal of this StatefulSet is never adopted.
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "stray-0", "labels": {"app.kubernetes.io/name": "vault", "component": "server"}},
            "spec": {"containers": [{"name": "vault", "image": "openbao/openbao:2.7.2"}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    sets.delete("vault", &DeleteParams::orphan()).await.unwrap();
    eventually("the old StatefulSet gone", || {
        let sets = sets.clone();
        async move { sets.get_opt("vault").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let orphans = server_pods().await.unwrap();
    for pod in orphans
        .iter()
        .filter(|p| p.metadata.name.as_deref() != Some("stray-0"))
    {
        assert!(
            pod.metadata
                .owner_references
                .iter()
                .flatten()
                .all(|r| r.uid != old_uid),
            "{:?} still owned",
            pod.metadata.name
        );
    }

    sets.create(&PostParams::default(), &changed).await.unwrap();
    let new_uid = sets.get("vault").await.unwrap().metadata.uid.unwrap();
    let adopted = eventually("both pods adopted", || async {
        let pods = server_pods().await?;
        let owned: Vec<Pod> = pods
            .into_iter()
            .filter(|p| {
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == new_uid && r.controller == Some(true))
            })
            .collect();
        (owned.len() == 2).then_some(owned)
    })
    .await;
    for pod in &adopted {
        let was = before
            .iter()
            .find(|p| p.metadata.name == pod.metadata.name)
            .expect("an ordinal pod of before");
        assert_eq!(pod.metadata.uid, was.metadata.uid, "adopted, not replaced");
        assert_eq!(
            pod.metadata.labels.as_ref().unwrap()["controller-revision-hash"],
            was.metadata.labels.as_ref().unwrap()["controller-revision-hash"],
            "still on the old revision, for an update to roll"
        );
    }
    let stray = pods.get("stray-0").await.unwrap();
    assert!(stray.metadata.owner_references.is_none(), "{stray:?}");
    c.shutdown().await;
}
