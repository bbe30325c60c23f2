//! The platform's image policy: a VaultCluster asking for an image the operator may not
//! run is refused with a condition naming `spec.image`, and no pod ever runs that image.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, PostParams};
use vaultkeeper::image_policy::ImagePolicy;
use vaultkeeper_api::{VaultCluster, parse_manifests};
use vaultkeeper_e2e::hostile::{ATTACKER_NAMESPACE, attacker};
use vaultkeeper_e2e::operator::{Operator, condition, wait_for};
use vaultkeeper_sim::{SimCluster, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_outside_the_platforms_policy_gets_a_condition_and_no_pod() {
    let sim = SimCluster::start(SimConfig::for_slot(183))
        .await
        .expect("the simulated cluster starts");
    let mut operator = Operator::install_and_start_watching(&sim, &[ATTACKER_NAMESPACE]).await;
    operator
        .restart_with(|s| {
            s.image_policy = ImagePolicy {
                allowed: vec!["quay.io/openbao/".into()],
                require_digest: false,
            }
        })
        .await;
    let mallory = attacker(&sim).await.expect("the attacker's account");
    let mut vc = parse_manifests(
        r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: recorder
spec:
  flavor: OpenBao
  image: evil.example.com/openbao/openbao:2.7.2
  replicas: 1
  backup:
    enabled: false
"#,
    )
    .expect("manifest")
    .remove(0);
    vc.metadata.namespace = Some(ATTACKER_NAMESPACE.into());
    Api::<VaultCluster>::namespaced(mallory, ATTACKER_NAMESPACE)
        .create(&PostParams::default(), &vc)
        .await
        .expect("created");

    let refused = wait_for(
        &sim,
        ATTACKER_NAMESPACE,
        "recorder",
        Duration::from_secs(60),
        "SpecValid False",
        |vc| condition(vc, "SpecValid", "False"),
    )
    .await;
    let message = refused
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "SpecValid"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("spec.image"), "{message}");
    assert!(message.contains("quay.io/openbao/"), "{message}");
    // Nothing was rendered for it: no StatefulSet, so no pod with that image.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sets: Api<StatefulSet> = Api::namespaced(sim.client().expect("admin"), ATTACKER_NAMESPACE);
    assert!(sets.get_opt("recorder").await.expect("read").is_none());

    // Positive control: an allowed image is not refused.
    let mut allowed = vc.clone();
    allowed.metadata.name = Some("allowed".into());
    allowed.metadata.resource_version = None;
    allowed.spec.image = Some("quay.io/openbao/openbao:2.7.2".into());
    Api::<VaultCluster>::namespaced(sim.client().expect("admin"), ATTACKER_NAMESPACE)
        .create(&PostParams::default(), &allowed)
        .await
        .expect("created");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sets.get_opt("allowed").await.expect("read").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the allowed cluster got no StatefulSet"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
