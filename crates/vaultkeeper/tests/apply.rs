//! Reading, comparing, applying and pruning against the simulated API server: a second
//! pass writes nothing, a field the spec drops is pruned, and nothing vaultkeeper does not
//! own is ever deleted.

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, PostParams};
use std::collections::BTreeSet;
use time::OffsetDateTime;

use vaultkeeper::apply::{Changes, apply_all, changes, delete_all, read_live};
use vaultkeeper::custody::SecretKeyStore;
use vaultkeeper_api::{VaultCluster, parse_manifests};
use vaultkeeper_render::{Labels, Manifest, RenderContext, pki, render};
use vaultkeeper_sim::{SimCluster, SimConfig};
use vaultkeeper_vault::keys::{InitKeys, KeyKind, KeyStore};
use vaultkeeper_vault::secret::{KeyShare, Token};

/// Tests of this crate use simulated clusters in slots 100–119.
async fn cluster(slot: u8) -> (SimCluster, kube::Client) {
    let sim = SimCluster::start(SimConfig::for_slot(slot))
        .await
        .expect("sim starts");
    let client = sim.client().expect("client");
    let crd_yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crds/vaultcluster.yaml"
    ))
    .expect("crd file");
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&crd_yaml).expect("crd parses");
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .expect("crd created");
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("vault".into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    (sim, client)
}

async fn create_cluster(client: &kube::Client, yaml: &str) -> VaultCluster {
    let cluster = parse_manifests(yaml).expect("manifest").remove(0);
    let api: Api<VaultCluster> = Api::namespaced(client.clone(), "vault");
    // The CRD takes a moment to be served after it is created.
    for _ in 0..50 {
        match api.create(&PostParams::default(), &cluster).await {
            Ok(created) => return created,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    panic!("the VaultCluster could not be created");
}

fn rendered(cluster: &VaultCluster, material: &vaultkeeper_render::PkiMaterial) -> Vec<Manifest> {
    let mut ctx = RenderContext::new("vault", Some(material));
    ctx.owner_uid = cluster.metadata.uid.as_deref();
    render(cluster, &ctx)
        .expect("renders")
        .into_iter()
        // No cert-manager or prometheus-operator in this cluster.
        .filter(|m| {
            !m.api_version.starts_with("monitoring.coreos.com")
                && !m.api_version.starts_with("cert-manager")
        })
        .collect()
}

fn material(cluster: &VaultCluster) -> vaultkeeper_render::PkiMaterial {
    let request = pki::server_certificate_request(cluster, "vault");
    let now = OffsetDateTime::now_utc();
    pki::issue(
        &pki::plan(None, &request, now),
        None,
        "vault",
        &request,
        now,
    )
    .expect("pki")
}

fn writes(sim: &SimCluster) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| {
            matches!(
                r.verb.as_str(),
                "create" | "update" | "patch" | "delete" | "deletecollection"
            )
        })
        .map(|r| format!("{} {}/{}", r.verb, r.resource, r.name))
        .collect()
}

/// Reads what exists of cluster `vault` and compares it with `manifests`.
async fn compare(client: &kube::Client, vc: &VaultCluster, manifests: &[Manifest]) -> Changes {
    let live = read_live(
        client,
        "vault",
        &Labels::owned_selector("vault"),
        &[(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            &vaultkeeper_api::ClusterNames::new("vault").server_cluster_role_binding("vault"),
        )],
    )
    .await
    .expect("live objects read");
    let uid = vc.metadata.uid.clone().expect("uid");
    changes(manifests.to_vec(), &live, &BTreeSet::new(), &uid)
}

const MINIMAL: &str = "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: vault, namespace: vault}\nspec: {backup: {enabled: false}}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_of_the_same_objects_makes_no_write_request() {
    let (sim, client) = cluster(100).await;
    let vc = create_cluster(&client, MINIMAL).await;
    let material = material(&vc);
    let manifests = rendered(&vc, &material);

    let first = compare(&client, &vc, &manifests).await;
    assert_eq!(first.apply.len(), manifests.len(), "everything is new");
    assert_eq!(first.unchanged, 0);
    let applied = apply_all(&client, &first.apply).await.expect("first apply");
    assert_eq!(applied.len(), manifests.len());

    sim.clear_requests();
    let second = compare(&client, &vc, &manifests).await;
    let nothing: Vec<String> = second
        .apply
        .iter()
        .map(|m| format!("{}/{}", m.kind, m.name))
        .collect();
    assert!(
        nothing.is_empty(),
        "nothing changed, yet {nothing:?} drifted"
    );
    assert!(second.prune.is_empty(), "{:?}", second.prune);
    assert_eq!(second.unchanged, manifests.len());
    apply_all(&client, &second.apply)
        .await
        .expect("second apply");
    assert_eq!(writes(&sim), Vec::<String>::new());

    // A person edits an object: the next pass puts it back, and only that one.
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), "vault");
    let mut config = api.get("vault-config").await.expect("config map");
    config.data = Some(
        [(
            "extraconfig-from-values.hcl".to_owned(),
            "ui = false".to_owned(),
        )]
        .into(),
    );
    api.replace("vault-config", &PostParams::default(), &config)
        .await
        .expect("edit");
    let third = compare(&client, &vc, &manifests).await;
    let third = apply_all(&client, &third.apply).await.expect("third apply");
    assert_eq!(third, vec!["ConfigMap/vault-config".to_owned()]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_spec_drops_is_pruned_and_nothing_unowned_is_touched() {
    let (sim, client) = cluster(101).await;
    let with_ingress = MINIMAL.replace(
        "spec: {backup: {enabled: false}}",
        "spec: {backup: {enabled: false}, ingress: {enabled: true, hosts: [vault.example.com]}}",
    );
    let vc = create_cluster(&client, &with_ingress).await;
    let uid = vc.metadata.uid.clone().expect("uid");
    let material = material(&vc);
    apply_all(&client, &rendered(&vc, &material))
        .await
        .expect("apply");

    // The keys Secret: owner-less, labelled like the cluster's objects.
    let store = SecretKeyStore::new(client.clone(), "vault", "vault-unseal-keys", "vault");
    let keys = InitKeys {
        kind: KeyKind::Unseal,
        threshold: 2,
        shares: vec![
            KeyShare::new("c2hhcmUtb25l".into()),
            KeyShare::new("c2hhcmUtdHdv".into()),
        ],
        root_token: Some(Token::new("s.root-token-for-test".into())),
        next: None,
        previous: None,
    };
    store.store(&keys).await.expect("keys stored");

    let mut without: VaultCluster = vc.clone();
    without.spec.ingress.enabled = false;
    let desired = rendered(&without, &material);
    let planned = compare(&client, &vc, &desired).await;
    assert_eq!(
        planned.prune,
        vec![("Ingress".to_owned(), "vault".to_owned())]
    );
    let pruned = delete_all(&client, "vault", &planned.prune)
        .await
        .expect("prune");
    assert_eq!(pruned, vec!["Ingress/vault".to_owned()]);
    assert!(
        store.load().await.expect("load").is_some(),
        "the keys Secret survives pruning"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "vault");
    assert!(
        secrets
            .get_opt("vault-server-tls")
            .await
            .expect("get")
            .is_some()
    );

    // Nothing left to prune: a second comparison deletes nothing.
    let again = compare(&client, &vc, &desired).await;
    assert!(again.prune.is_empty(), "{:?}", again.prune);
    // A kind held back (its API missing) is never pruned, even when the spec has none.
    let live = read_live(&client, "vault", &Labels::owned_selector("vault"), &[])
        .await
        .expect("live");
    let without_services: Vec<Manifest> = desired
        .iter()
        .filter(|m| m.kind != "Service")
        .cloned()
        .collect();
    let held = changes(
        without_services.clone(),
        &live,
        &BTreeSet::from(["Service".to_owned()]),
        &uid,
    );
    assert!(held.prune.is_empty(), "{:?}", held.prune);
    let dropped = changes(without_services, &live, &BTreeSet::new(), &uid);
    assert!(
        dropped.prune.iter().any(|(kind, _)| kind == "Service"),
        "{:?}",
        dropped.prune
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_secret_round_trips_and_a_foreign_secret_is_never_read_as_no_keys() {
    let (sim, client) = cluster(102).await;
    let store = SecretKeyStore::new(client.clone(), "vault", "vault-unseal-keys", "vault");
    assert!(store.load().await.expect("empty store").is_none());

    let keys = InitKeys {
        kind: KeyKind::Recovery,
        threshold: 3,
        shares: (0..5)
            .map(|i| KeyShare::new(format!("cmVjb3Zlcnkt{i}")))
            .collect(),
        root_token: None,
        next: None,
        previous: None,
    };
    store.store(&keys).await.expect("stored");
    let loaded = store.load().await.expect("load").expect("present");
    assert_eq!(loaded.summary(), keys.summary());
    assert_eq!(loaded.shares.len(), 5);

    let secret = Api::<Secret>::namespaced(client.clone(), "vault")
        .get("vault-unseal-keys")
        .await
        .expect("secret");
    assert!(
        secret.metadata.owner_references.is_none(),
        "the keys Secret must never be owned"
    );
    assert_eq!(
        secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("vaultkeeper.io/keys"))
            .map(String::as_str),
        Some("true")
    );

    // A Secret of that name that someone else made: "cannot tell", never "no keys".
    let foreign = Secret {
        metadata: ObjectMeta {
            name: Some("other-keys".into()),
            ..ObjectMeta::default()
        },
        string_data: Some([("note".to_owned(), "not ours".to_owned())].into()),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), "vault")
        .create(&PostParams::default(), &foreign)
        .await
        .expect("foreign secret");
    let other = SecretKeyStore::new(client.clone(), "vault", "other-keys", "vault");
    let err = other.load().await.expect_err("must not read as empty");
    assert!(err.to_string().contains("init.json"), "{err}");

    // Another cluster naming this cluster's keys Secret in its spec.keys.secretName gets
    // neither the shares (its pods would be handed them) nor the Secret (a write would
    // take it over).
    let neighbour = SecretKeyStore::new(client.clone(), "vault", "vault-unseal-keys", "evil");
    let err = neighbour
        .load()
        .await
        .expect_err("another cluster's keys are never loaded");
    assert!(
        err.to_string()
            .contains("holds the keys of VaultCluster vault, not evil"),
        "{err}"
    );
    let err = neighbour
        .store(&keys)
        .await
        .expect_err("another cluster's keys Secret is never written");
    assert!(err.to_string().contains("spec.keys.secretName"), "{err}");
    let still = store.load().await.expect("load").expect("present");
    assert_eq!(still.shares.len(), 5, "the owner's keys are untouched");
    sim.shutdown().await;
}
