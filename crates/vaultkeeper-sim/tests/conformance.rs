//! Conformance-style checks of the simulated API server through `kube::Client`, each
//! naming the documented behaviour it pins:
//! API concepts <https://kubernetes.io/docs/reference/using-api/api-concepts/>,
//! server-side apply <https://kubernetes.io/docs/reference/using-api/server-side-apply/>,
//! garbage collection <https://kubernetes.io/docs/concepts/architecture/garbage-collection/>,
//! finalizers <https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/>,
//! RBAC <https://kubernetes.io/docs/reference/access-authn-authz/rbac/>.
//! Each test owns loopback slot 127.20.(30+n).x.

mod common;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::time::Duration;
use vaultkeeper_sim::{FailureRule, SimCluster, SimConfig};

async fn cluster(slot: u8) -> SimCluster {
    SimCluster::start(SimConfig::for_slot(30 + slot))
        .await
        .expect("cluster starts")
}

fn cm(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap()
}

fn rv<K: kube::Resource>(o: &K) -> String {
    o.meta().resource_version.clone().unwrap_or_default()
}

async fn install_crd(c: &SimCluster) -> Api<DynamicObject> {
    let client = c.client().unwrap();
    let crd: Value = serde_saphyr::from_str(common::VAULTCLUSTER_CRD).unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).unwrap(),
    )
    .await
    .unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("vaultkeeper.io", "v1alpha1", "VaultCluster"),
        "vaultclusters",
    );
    Api::namespaced_with(client, "default", &ar)
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_version_changes_on_every_write_but_not_on_a_no_op_update() {
    // API concepts, "Resource versions": the resourceVersion changes when the object
    // changes; an update that changes nothing is not written.
    let c = cluster(1).await;
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().unwrap());
    let a = api
        .create(&PostParams::default(), &cm("a", json!({"k": "1"})))
        .await
        .unwrap();
    let same = api.replace("a", &PostParams::default(), &a).await.unwrap();
    assert_eq!(rv(&a), rv(&same), "no-op update keeps the resourceVersion");
    let mut changed = same.clone();
    changed
        .data
        .as_mut()
        .unwrap()
        .insert("k".into(), "2".into());
    let b = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(rv(&a), rv(&b));
    // Optimistic concurrency: an update carrying the old resourceVersion is 409 Conflict.
    let err = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message.contains("the object has been modified"),
                "{}",
                s.message
            );
        }
        other => panic!("expected 409, got {other:?}"),
    }
    // Create of an existing name is AlreadyExists.
    let dup = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(dup, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{dup:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_from_a_resource_version_and_old_ones_are_gone_with_410() {
    // API concepts, "Efficient detection of changes" and "410 Gone responses".
    let c = cluster(2).await;
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().unwrap());
    let a = api
        .create(&PostParams::default(), &cm("w", json!({"v": "0"})))
        .await
        .unwrap();
    let start = rv(&a);
    for i in 1..=3 {
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": i.to_string()}})),
        )
        .await
        .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default().fields("metadata.name=w"), &start)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match stream.try_next().await.unwrap() {
            Some(WatchEvent::Modified(o)) => seen.push(o.data.unwrap()["v"].clone()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        ["1", "2", "3"],
        "changes after the resourceVersion, in order"
    );
    api.delete("w", &DeleteParams::default()).await.unwrap();
    assert!(matches!(
        stream.try_next().await.unwrap(),
        Some(WatchEvent::Deleted(_))
    ));
    drop(stream);
    c.compact();
    let mut old = api
        .watch(&WatchParams::default(), &start)
        .await
        .unwrap()
        .boxed();
    match old.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 error event, got {other:?}"),
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sends_bookmarks_and_selector_transitions() {
    // API concepts, "Watch bookmarks"; watches with a label selector see an object that
    // stops matching as DELETED and one that starts matching as ADDED.
    let mut cfg = SimConfig::for_slot(33);
    cfg.bookmark_interval = Duration::from_millis(200);
    let c = SimCluster::start(cfg).await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().unwrap());
    let list = api.list(&ListParams::default()).await.unwrap();
    let from = list.metadata.resource_version.unwrap();
    let wp = WatchParams::default().labels("app=vault");
    let mut stream = api.watch(&wp, &from).await.unwrap().boxed();
    let mut o = cm("sel", json!({}));
    o.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
    api.create(&PostParams::default(), &o).await.unwrap();
    api.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "vault"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "gone"}}})),
    )
    .await
    .unwrap();
    let mut kinds = Vec::new();
    let mut bookmarks = 0;
    while kinds.len() < 2 || bookmarks == 0 {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Added(_)) => kinds.push("ADDED"),
            Some(WatchEvent::Deleted(_)) => kinds.push("DELETED"),
            Some(WatchEvent::Modified(_)) => kinds.push("MODIFIED"),
            Some(WatchEvent::Bookmark(_)) => bookmarks += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED", "DELETED"]);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_runtime_watcher_works_with_streaming_lists_and_list_watch() {
    // API concepts, "Streaming lists": sendInitialEvents with the initial-events-end bookmark.
    let c = cluster(4).await;
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().unwrap());
    api.create(&PostParams::default(), &cm("pre", json!({})))
        .await
        .unwrap();
    for cfg in [
        kube::runtime::watcher::Config::default().streaming_lists(),
        kube::runtime::watcher::Config::default(),
    ] {
        let mut s = kube::runtime::watcher(api.clone(), cfg).boxed();
        let mut saw_init_done = false;
        let mut saw_pre = false;
        while !(saw_init_done && saw_pre) {
            match tokio::time::timeout(Duration::from_secs(5), s.try_next())
                .await
                .unwrap()
                .unwrap()
            {
                Some(kube::runtime::watcher::Event::InitApply(o))
                    if o.metadata.name.as_deref() == Some("pre") =>
                {
                    saw_pre = true
                }
                Some(kube::runtime::watcher::Event::InitDone) => saw_init_done = true,
                _ => {}
            }
        }
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_with_limit_and_continue_from_one_consistent_snapshot() {
    // API concepts, "Retrieving large results sets in chunks".
    let c = cluster(5).await;
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().unwrap());
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("p{i}"), json!({})))
            .await
            .unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().unwrap();
    assert!(first.metadata.remaining_item_count.unwrap() >= 3);
    // A change after the first page does not show up in later pages of the same list.
    api.create(&PostParams::default(), &cm("p9", json!({})))
        .await
        .unwrap();
    let mut names: Vec<String> = first
        .items
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    let mut cont = Some(token);
    while let Some(t) = cont {
        let page = api
            .list(&ListParams::default().limit(2).continue_token(&t))
            .await
            .unwrap();
        assert_eq!(
            page.metadata.resource_version,
            first.metadata.resource_version
        );
        names.extend(page.items.iter().map(|o| o.metadata.name.clone().unwrap()));
        cont = page.metadata.continue_.filter(|c| !c.is_empty());
    }
    let user: Vec<&String> = names.iter().filter(|n| n.starts_with('p')).collect();
    assert_eq!(user, ["p0", "p1", "p2", "p3", "p4"]);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_tracks_spec_changes_and_status_goes_through_its_subresource() {
    // CRD docs, "Status subresource": PUT/PATCH on the main resource ignore status; the
    // status subresource ignores everything else; generation bumps on spec changes only.
    let c = cluster(6).await;
    let api = install_crd(&c).await;
    let obj: DynamicObject = serde_json::from_value(json!({"apiVersion": "vaultkeeper.io/v1alpha1", "kind": "VaultCluster", "metadata": {"name": "g"}, "spec": {"image": "x"}, "status": {"phase": "Bogus"}})).unwrap();
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "status dropped on create"
    );
    let s = api
        .patch_status(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}, "spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(1));
    assert_eq!(s.data["status"]["phase"], "Running");
    assert_eq!(
        s.data["spec"]["replicas"], 3,
        "spec ignored on the status subresource"
    );
    let m = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}, "status": {"phase": "Ignored"}})),
        )
        .await
        .unwrap();
    assert_eq!(m.metadata.generation, Some(2));
    assert_eq!(
        m.data["status"]["phase"], "Running",
        "status ignored on the main resource"
    );
    let l = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        l.metadata.generation,
        Some(2),
        "metadata changes do not bump generation"
    );
    // Scale subresource reads and writes spec.replicas.
    let scale = api.get_scale("g").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(5));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_owns_fields_conflicts_and_removes_what_is_no_longer_applied() {
    // SSA docs: "Conflicts", "Using force", and "Field management" (removing a field from
    // the applied configuration removes it when no other manager owns it).
    let c = cluster(7).await;
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().unwrap());
    let op = PatchParams::apply("operator");
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s", "labels": {"l": "1"}}, "data": {"a": "1", "b": "2"}});
    let o = api.patch("s", &op, &Patch::Apply(&applied)).await.unwrap();
    let mf = o.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("operator"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    // Re-applying the same configuration is a no-op.
    let again = api.patch("s", &op, &Patch::Apply(&applied)).await.unwrap();
    assert_eq!(rv(&o), rv(&again));
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "changed"}});
    let err = api
        .patch("s", &PatchParams::apply("human"), &Patch::Apply(&other))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message.contains("conflict with \"operator\""),
                "{}",
                s.message
            );
        }
        e => panic!("{e:?}"),
    }
    let forced = api
        .patch(
            "s",
            &PatchParams::apply("human").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["a"], "changed");
    // The operator stops applying "b" and the label: they disappear.
    let less =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {}});
    let pruned = api.patch("s", &op, &Patch::Apply(&less)).await.unwrap();
    let data = pruned.data.unwrap_or_default();
    assert!(!data.contains_key("b"), "{data:?}");
    assert_eq!(
        data.get("a").map(String::as_str),
        Some("changed"),
        "owned by 'human', kept"
    );
    assert!(pruned.metadata.labels.unwrap_or_default().is_empty());
    // Apply without a field manager is refused.
    let client = c.client().unwrap();
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/s")
        .header("Content-Type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(&less).unwrap())
        .unwrap();
    let err = client.request::<ConfigMap>(req).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400 && s.message.contains("fieldManager")),
        "{err:?}"
    );
    c.shutdown().await;
}

async fn owned_cm(api: &Api<ConfigMap>, name: &str, owner: &ConfigMap, block: bool) {
    let mut o = cm(name, json!({}));
    o.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: owner.metadata.name.clone().unwrap(),
            uid: owner.metadata.uid.clone().unwrap(),
            block_owner_deletion: Some(block),
            controller: Some(true),
        },
    ]);
    api.create(&PostParams::default(), &o).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_background_foreground_and_orphan() {
    // GC docs, "Cascading deletion": background deletes dependents after the owner;
    // foreground keeps the owner (deletionTimestamp + foregroundDeletion finalizer) until
    // blocking dependents are gone; orphan removes the owner references.
    let c = cluster(8).await;
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().unwrap());
    for (policy, owner_name) in [("Background", "bg"), ("Foreground", "fg"), ("Orphan", "or")] {
        let owner = api
            .create(&PostParams::default(), &cm(owner_name, json!({})))
            .await
            .unwrap();
        owned_cm(&api, &format!("{owner_name}-dep"), &owner, true).await;
        let dp = match policy {
            "Background" => DeleteParams::background(),
            "Foreground" => DeleteParams::foreground(),
            _ => DeleteParams::orphan(),
        };
        let res = api.delete(owner_name, &dp).await.unwrap();
        if policy == "Foreground" {
            let pending = res
                .left()
                .expect("foreground returns the object still being deleted");
            assert!(
                pending
                    .metadata
                    .finalizers
                    .unwrap()
                    .contains(&"foregroundDeletion".to_string())
            );
        }
        let dep = format!("{owner_name}-dep");
        let api2 = api.clone();
        match policy {
            "Orphan" => {
                eventually("orphaned dependent loses its owner reference", || {
                    let api = api2.clone();
                    let dep = dep.clone();
                    async move {
                        api.get(&dep)
                            .await
                            .map(|d| d.metadata.owner_references.unwrap_or_default().is_empty())
                            .unwrap_or(false)
                    }
                })
                .await;
            }
            _ => {
                eventually("dependent deleted", || {
                    let api = api2.clone();
                    let dep = dep.clone();
                    async move { api.get_opt(&dep).await.unwrap().is_none() }
                })
                .await;
            }
        }
        let api3 = api.clone();
        eventually("owner gone", || {
            let api = api3.clone();
            async move { api.get_opt(owner_name).await.unwrap().is_none() }
        })
        .await;
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_runtime_finalizer_helper_adds_and_removes_its_finalizer() {
    // Finalizers docs: the object stays with a deletionTimestamp until the last finalizer
    // is removed; kube::runtime::finalizer drives exactly that.
    use kube::runtime::finalizer::{Event as FinEvent, finalizer};
    let c = cluster(9).await;
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().unwrap());
    api.create(&PostParams::default(), &cm("f", json!({})))
        .await
        .unwrap();
    let run = |api: Api<ConfigMap>| async move {
        let obj = std::sync::Arc::new(api.get("f").await.unwrap());
        finalizer(&api, "vaultkeeper.io/test", obj, |ev| async move {
            match ev {
                FinEvent::Apply(_) | FinEvent::Cleanup(_) => Ok::<_, std::convert::Infallible>(
                    kube::runtime::controller::Action::await_change(),
                ),
            }
        })
        .await
    };
    run(api.clone()).await.unwrap();
    run(api.clone()).await.unwrap();
    assert_eq!(
        api.get("f").await.unwrap().metadata.finalizers.unwrap(),
        ["vaultkeeper.io/test"]
    );
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let pending = api.get("f").await.unwrap();
    assert!(pending.metadata.deletion_timestamp.is_some());
    // Adding a finalizer while deleting is refused.
    let err = api
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["vaultkeeper.io/test", "other"]}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );
    run(api.clone()).await.unwrap();
    assert!(
        api.get_opt("f").await.unwrap().is_none(),
        "gone once the finalizer is removed"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_applies_to_service_account_identities_and_token_review_authenticates_them() {
    // RBAC docs: a service account may do only what a (Cluster)Role bound to it allows;
    // the denial names user, verb, resource and namespace.
    let c = cluster(10).await;
    let admin = c.client().unwrap();
    let sas: Api<ServiceAccount> = Api::default_namespaced(admin.clone());
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "vault"}})).unwrap(),
    )
    .await
    .unwrap();
    let as_sa = c.client_as_service_account("default", "vault").unwrap();
    let pods: Api<Pod> = Api::default_namespaced(as_sa.clone());
    let err = pods.list(&ListParams::default()).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(
                s.message,
                "pods is forbidden: User \"system:serviceaccount:default:vault\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
            );
        }
        e => panic!("{e:?}"),
    }
    let roles: Api<Role> = Api::default_namespaced(admin.clone());
    roles
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "vault-discovery-role"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list", "update", "patch"]}]})).unwrap())
        .await
        .unwrap();
    let rbs: Api<RoleBinding> = Api::default_namespaced(admin.clone());
    rbs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "vault-discovery-rolebinding"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vault-discovery-role"}, "subjects": [{"kind": "ServiceAccount", "name": "vault", "namespace": "default"}]})).unwrap(),
    )
    .await
    .unwrap();
    pods.list(&ListParams::default())
        .await
        .expect("allowed by the role");
    let cms: Api<ConfigMap> = Api::default_namespaced(as_sa.clone());
    assert!(
        cms.list(&ListParams::default()).await.is_err(),
        "configmaps are not in the role"
    );
    let other_ns: Api<Pod> = Api::namespaced(as_sa, "kube-system");
    assert!(
        other_ns.list(&ListParams::default()).await.is_err(),
        "a Role is namespaced"
    );

    // TokenReview of a token the server issued, by an identity allowed to review tokens.
    let token = c.service_account_token("default", "vault").unwrap();
    let reviews: Api<k8s_openapi::api::authentication::v1::TokenReview> = Api::all(admin.clone());
    let review = reviews
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"spec": {"token": token.expose_secret()}})).unwrap(),
        )
        .await
        .unwrap();
    let status = review.status.unwrap();
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(
        status.user.unwrap().username.as_deref(),
        Some("system:serviceaccount:default:vault")
    );
    let bad = reviews
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"spec": {"token": "not-a-token"}})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(bad.status.unwrap().authenticated, Some(false));
    // Deleting the account invalidates its tokens.
    sas.delete("vault", &DeleteParams::default()).await.unwrap();
    let after = reviews
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"spec": {"token": token.expose_secret()}})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(after.status.unwrap().authenticated, Some(false));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    // Namespaces docs: a deleted namespace is Terminating until its content is gone, and
    // nothing new may be created in it meanwhile.
    let c = cluster(11).await;
    let client = c.client().unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap(),
    )
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    api.create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let nss2 = nss.clone();
    eventually("namespace gone", || {
        let nss = nss2.clone();
        async move { nss.get_opt("doomed").await.unwrap().is_none() }
    })
    .await;
    let missing = api
        .create(&PostParams::default(), &cm("y", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404),
        "{missing:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_fail_requests_add_latency_and_drop_watches() {
    let c = cluster(12).await;
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().unwrap());
    // 409 rather than 429 here: kube::Client retries 429 by itself.
    c.fail_requests(Some(FailureRule {
        share: 1.0,
        code: 409,
        verbs: vec!["create".into()],
        resources: vec![],
        names: vec![],
    }));
    let err = api
        .create(&PostParams::default(), &cm("f", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );
    api.list(&ListParams::default())
        .await
        .expect("lists are not affected");
    c.fail_requests(Some(FailureRule {
        share: 1.0,
        code: 500,
        verbs: vec![],
        resources: vec!["configmaps".into()],
        names: vec![],
    }));
    assert!(
        matches!(api.list(&ListParams::default()).await.unwrap_err(), kube::Error::Api(ref s) if s.code == 500)
    );
    c.fail_requests(None);
    c.faults().set_latency(Duration::from_millis(300));
    let t = std::time::Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    c.faults().set_latency(Duration::ZERO);
    let list = api.list(&ListParams::default()).await.unwrap();
    let mut stream = api
        .watch(
            &WatchParams::default(),
            &list.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    c.faults().drop_watches();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("stream ends promptly");
    assert!(end.is_none(), "the watch ended: {end:?}");
    // The request log recorded every write attempt, with its status.
    let writes: Vec<_> = c.requests().into_iter().filter(|r| r.is_write()).collect();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].code, 409);
    c.shutdown().await;
}
