//! The adoption rules, one table row each.

use serde_json::{Value, json};
use vaultkeeper_render::Manifest;

use super::*;

const NS: &str = "vault";
const KEYS: &str = "vault-unseal-keys";

fn selector() -> Value {
    json!({"matchLabels": {"app.kubernetes.io/instance": "vault",
        "app.kubernetes.io/name": "vault", "component": "server"}})
}

fn node_id_env() -> Value {
    json!([{"name": "VAULT_RAFT_NODE_ID",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
}

/// The chart's StatefulSet of release `vault`, as Helm installs it.
fn chart_statefulset() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "vault", "uid": "sts-uid",
            "labels": {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "vault"},
            "annotations": {HELM_RELEASE_NAME: "vault", HELM_RELEASE_NAMESPACE: NS}},
        "spec": {"selector": selector(), "serviceName": "vault-internal",
            "podManagementPolicy": "Parallel",
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}],
            "template": {"spec": {"containers": [{"name": "vault", "env": node_id_env()}]}}}
    })
}

fn chart_service(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "uid": format!("{name}-uid"),
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {HELM_RELEASE_NAME: "vault", HELM_RELEASE_NAMESPACE: NS}},
        "spec": {"selector": selector()["matchLabels"]}
    })
}

fn manifest(api_version: &str, kind: &str, name: &str, spec: Value) -> Manifest {
    Manifest {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        namespace: Some(NS.into()),
        object: json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": NS}, "spec": spec}),
    }
}

/// What VaultCluster `vault` renders, reduced to what the rules look at.
fn ours() -> Vec<Manifest> {
    vec![
        manifest(
            "apps/v1",
            "StatefulSet",
            "vault",
            json!({"selector": selector(), "serviceName": "vault-internal",
                "podManagementPolicy": "Parallel",
                "volumeClaimTemplates": [{"metadata": {"name": "data",
                    "labels": {"component": "server"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]}),
        ),
        manifest("v1", "Service", "vault", json!({})),
        manifest("v1", "Service", "vault-internal", json!({})),
    ]
}

fn with(mut object: Value, path: &[&str], value: Value) -> Value {
    let mut at = &mut object;
    for key in path {
        at = &mut at[*key];
    }
    *at = value;
    object
}

fn refused_because(adoption: &Adoption) -> Option<&'static str> {
    match adoption {
        Adoption::Refused { reason, .. } => Some(reason),
        _ => None,
    }
}

/// What a row describes, the annotation, the objects of our names, the keys Secret (name,
/// holds a record) and the refusal's reason (`None`: not refused).
type Case = (
    &'static str,
    Option<&'static str>,
    Vec<Value>,
    (&'static str, Option<bool>),
    Option<&'static str>,
);

#[test]
fn objects_of_our_names_are_adopted_only_from_the_named_release_with_its_keys() {
    let release = [chart_statefulset(), chart_service("vault")];
    let annotated = Some("helm-release/vault");
    let with_keys = (KEYS, Some(true));
    let cases: Vec<Case> = vec![
        (
            "nothing of our names exists",
            annotated,
            vec![],
            with_keys,
            None,
        ),
        (
            "only a chart object we do not render (its UI Service)",
            None,
            vec![chart_service("vault-ui")],
            with_keys,
            None,
        ),
        (
            "the release, no opt-in",
            None,
            release.to_vec(),
            with_keys,
            Some("ObjectsNotOurs"),
        ),
        (
            "an opt-in of another form",
            Some("vault"),
            release.to_vec(),
            with_keys,
            Some("AdoptAnnotationInvalid"),
        ),
        (
            "an opt-in without a release name",
            Some("helm-release/"),
            release.to_vec(),
            with_keys,
            Some("AdoptAnnotationInvalid"),
        ),
        (
            "another release's objects",
            Some("helm-release/other"),
            release.to_vec(),
            with_keys,
            Some("NotTheHelmRelease"),
        ),
        (
            "the release's name, another namespace's release",
            annotated,
            vec![with(
                chart_statefulset(),
                &["metadata", "annotations", HELM_RELEASE_NAMESPACE],
                json!("elsewhere"),
            )],
            with_keys,
            Some("NotTheHelmRelease"),
        ),
        (
            "an object not installed by Helm among the release's",
            annotated,
            vec![
                chart_statefulset(),
                with(
                    chart_service("vault"),
                    &["metadata", "labels"],
                    json!({"app.kubernetes.io/managed-by": "someone"}),
                ),
            ],
            with_keys,
            Some("NotTheHelmRelease"),
        ),
        (
            "a StatefulSet selecting other pods",
            annotated,
            vec![with(
                chart_statefulset(),
                &["spec", "selector", "matchLabels", "app.kubernetes.io/name"],
                json!("openbao"),
            )],
            with_keys,
            Some("SelectorDiffers"),
        ),
        (
            "raft node ids the chart generated",
            annotated,
            vec![with(
                chart_statefulset(),
                &["spec", "template", "spec", "containers"],
                json!([{"name": "vault", "env": []}]),
            )],
            with_keys,
            Some("RaftNodeIdsDiffer"),
        ),
        (
            "no keys Secret",
            annotated,
            release.to_vec(),
            (KEYS, Some(false)),
            Some("KeysMissing"),
        ),
        (
            "keys Secret not read",
            annotated,
            release.to_vec(),
            (KEYS, None),
            Some("KeysMissing"),
        ),
        (
            "the named release with its keys",
            annotated,
            release.to_vec(),
            with_keys,
            None,
        ),
    ];
    for (what, annotation, namesakes, keys, refused) in cases {
        let adoption = decide(annotation, NS, &namesakes, &ours(), keys);
        assert_eq!(refused_because(&adoption), refused, "{what}: {adoption:?}");
    }
}

#[test]
fn a_refusal_names_the_objects_and_the_fix_and_never_a_secret() {
    let Adoption::Refused { message, .. } = decide(
        None,
        NS,
        &[chart_statefulset(), chart_service("vault-internal")],
        &ours(),
        (KEYS, Some(true)),
    ) else {
        panic!("refused without the opt-in");
    };
    for needed in [
        "StatefulSet/vault",
        "Service/vault-internal",
        "vaultkeeper.io/adopt: helm-release/<release>",
        KEYS,
        "docs/migrating-from-helm.md",
    ] {
        assert!(message.contains(needed), "{needed} not in: {message}");
    }
    let Adoption::Refused { message, .. } = decide(
        Some("helm-release/vault"),
        NS,
        &[chart_statefulset()],
        &ours(),
        (KEYS, Some(false)),
    ) else {
        panic!("refused without keys");
    };
    assert!(message.contains("docs/custody.md"), "{message}");
    assert!(message.contains(KEYS), "{message}");
}

#[test]
fn the_release_statefulset_is_replaced_with_its_pods_orphaned_and_the_rest_applied_over() {
    let Adoption::TakeOver(takeover) = decide(
        Some("helm-release/vault"),
        NS,
        &[chart_statefulset(), chart_service("vault")],
        &ours(),
        (KEYS, Some(true)),
    ) else {
        panic!("taken over");
    };
    assert_eq!(takeover.release, "vault");
    assert_eq!(takeover.objects, ["StatefulSet/vault", "Service/vault"]);
    assert_eq!(
        takeover.orphan_statefulset,
        Some(("vault".to_owned(), "sts-uid".to_owned()))
    );
    assert_eq!(takeover.immutable_differences, ["volumeClaimTemplates"]);
    assert_eq!(
        takeover.in_place,
        [("Service".to_owned(), "vault".to_owned())]
    );
    assert!(!takeover.statefulset_going);

    // While the API server deletes it, the pass waits for it to be gone.
    let going = with(
        chart_statefulset(),
        &["metadata", "deletionTimestamp"],
        json!("2026-12-07T04:00:00Z"),
    );
    let Adoption::TakeOver(takeover) = decide(
        Some("helm-release/vault"),
        NS,
        &[going],
        &ours(),
        (KEYS, Some(true)),
    ) else {
        panic!("taken over");
    };
    assert!(takeover.statefulset_going);
    assert_eq!(takeover.orphan_statefulset, None);
}

/// The whole plan, over the chart's objects of the same names.
mod whole_plan {
    use serde_json::json;

    use super::super::super::plan_tests::{cluster, observed_with_namesakes, plan_of};
    use super::{Adoption, chart_service, chart_statefulset};

    #[test]
    fn a_refused_adoption_writes_nothing_and_a_takeover_replaces_only_the_statefulset() {
        let namesakes = vec![chart_statefulset(), chart_service("vault")];
        let plan = plan_of(
            &cluster(json!({})),
            &observed_with_namesakes(namesakes.clone(), Some(true)),
        );
        assert!(plan.apply.is_empty(), "{:?}", plan.apply);
        assert!(plan.prune.is_empty());
        let (reason, message) = plan.needs_person.clone().expect("a person must act");
        assert_eq!(reason, "ObjectsNotOurs");
        assert!(message.contains("StatefulSet/vault"), "{message}");

        let mut vc = cluster(json!({}));
        vc.metadata.annotations = Some(
            [(
                "vaultkeeper.io/adopt".to_owned(),
                "helm-release/vault".to_owned(),
            )]
            .into(),
        );
        let plan = plan_of(&vc, &observed_with_namesakes(namesakes, Some(true)));
        let applied: Vec<String> = plan
            .apply
            .iter()
            .map(|m| format!("{}/{}", m.kind, m.name))
            .collect();
        assert!(applied.contains(&"Service/vault".to_owned()), "{applied:?}");
        assert!(
            !applied.contains(&"StatefulSet/vault".to_owned()),
            "the release's StatefulSet is replaced, never applied over: {applied:?}"
        );
        assert!(plan.needs_person.is_none());
        assert_eq!(
            plan.operation, None,
            "no rollout before our StatefulSet exists"
        );
        let Some(Adoption::TakeOver(takeover)) = plan.adoption else {
            panic!("taken over: {:?}", plan.adoption);
        };
        assert_eq!(
            takeover.orphan_statefulset,
            Some(("vault".to_owned(), "sts-uid".to_owned()))
        );
        assert!(
            plan.waiting_for
                .as_deref()
                .is_some_and(|w| w.contains("adopting Helm release vault")),
            "{:?}",
            plan.waiting_for
        );
    }
}
