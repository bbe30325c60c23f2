//! Whoever runs code as the operator (its pod, its image, a stolen token) holds the
//! operator's RBAC. With the default install that is: the namespaced rules in the watched
//! namespaces only, `bind` on exactly two ClusterRoles, and nothing that reads a Secret,
//! execs into or changes a pod elsewhere. These tests use the operator's own identity, as
//! such a person would, against the simulated API server's RBAC and escalation checks.

use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use vaultkeeper_e2e::hostile::{ATTACKER_NAMESPACE, VICTIM_NAMESPACE};
use vaultkeeper_e2e::install::install_operator_rbac_watching;
use vaultkeeper_sim::{SimCluster, SimConfig};

async fn sim(slot: u8) -> SimCluster {
    SimCluster::start(SimConfig::for_slot(slot))
        .await
        .expect("the simulated cluster starts")
}

fn api(
    client: &kube::Client,
    kind: &str,
    version: &str,
    group: &str,
    ns: &str,
) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(client.clone(), ns, &resource)
}

fn status(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other}"),
    }
}

fn binding(name: &str, role_kind: &str, role: &str, ns: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}],
    }))
    .expect("a RoleBinding")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_identity_reaches_no_secret_or_pod_outside_its_namespaces() {
    let sim = sim(177).await;
    let operator = install_operator_rbac_watching(&sim, &[ATTACKER_NAMESPACE])
        .await
        .expect("the default install");
    let admin = sim.client().expect("admin");
    // The neighbour's namespace, with a Secret in it.
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": VICTIM_NAMESPACE}})).expect("ns"),
    )
    .await
    .expect("namespace");
    let secrets = api(&admin, "Secret", "v1", "", VICTIM_NAMESPACE);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "payroll-db", "namespace": VICTIM_NAMESPACE},
                "stringData": {"password": "hunter2"}}))
            .expect("secret"),
        )
        .await
        .expect("secret");

    // In its watched namespace the operator may do its job…
    let own = api(&operator, "Secret", "v1", "", ATTACKER_NAMESPACE);
    own.list(&ListParams::default())
        .await
        .expect("the operator lists Secrets where it manages clusters");
    // …and nothing of the kind anywhere else.
    let theirs = api(&operator, "Secret", "v1", "", VICTIM_NAMESPACE);
    assert_eq!(
        status(theirs.get("payroll-db").await.expect_err("refused")),
        403
    );
    assert_eq!(
        status(
            theirs
                .list(&ListParams::default())
                .await
                .expect_err("refused")
        ),
        403
    );
    let all_secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::all(operator.clone());
    assert_eq!(
        status(
            all_secrets
                .list(&ListParams::default())
                .await
                .expect_err("refused")
        ),
        403
    );
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(operator.clone(), VICTIM_NAMESPACE);
    assert_eq!(
        status(
            pods.list(&ListParams::default())
                .await
                .expect_err("refused")
        ),
        403
    );
    assert_eq!(
        status(
            pods.delete("anything", &Default::default())
                .await
                .expect_err("refused")
        ),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_identity_binds_only_the_two_roles_it_needs() {
    let sim = sim(178).await;
    let operator = install_operator_rbac_watching(&sim, &[ATTACKER_NAMESPACE])
        .await
        .expect("the default install");
    let bindings = api(
        &operator,
        "RoleBinding",
        "v1",
        "rbac.authorization.k8s.io",
        ATTACKER_NAMESPACE,
    );

    // What it renders for Vault's service registration: allowed by `bind` on that name.
    bindings
        .create(
            &PostParams::default(),
            &binding(
                "registration",
                "ClusterRole",
                "vaultkeeper-vault-server",
                ATTACKER_NAMESPACE,
            ),
        )
        .await
        .expect("the operator binds the service-registration ClusterRole");

    // Anything stronger is an escalation, refused however it is asked for.
    for role in ["cluster-admin", "admin", "edit"] {
        let refused = bindings
            .create(
                &PostParams::default(),
                &binding("escalate", "ClusterRole", role, ATTACKER_NAMESPACE),
            )
            .await
            .expect_err("binding a stronger role is refused");
        assert_eq!(status(refused), 403, "binding {role}");
    }
    let crbs: Api<DynamicObject> = Api::all_with(
        operator.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
        )),
    );
    let mut admin_crb = binding("escalate", "ClusterRole", "cluster-admin", "");
    admin_crb.types = Some(kube::core::TypeMeta {
        api_version: "rbac.authorization.k8s.io/v1".into(),
        kind: "ClusterRoleBinding".into(),
    });
    admin_crb.metadata.namespace = None;
    assert_eq!(
        status(
            crbs.create(&PostParams::default(), &admin_crb)
                .await
                .expect_err("refused")
        ),
        403,
        "a ClusterRoleBinding to cluster-admin"
    );
    // A Role granting pod patch (which would let it change images) is refused too: the
    // operator does not hold that right, so it cannot hand it out.
    let roles = api(
        &operator,
        "Role",
        "v1",
        "rbac.authorization.k8s.io",
        ATTACKER_NAMESPACE,
    );
    let patcher: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "patch-pods", "namespace": ATTACKER_NAMESPACE},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}],
    }))
    .expect("a Role");
    assert_eq!(
        status(
            roles
                .create(&PostParams::default(), &patcher)
                .await
                .expect_err("refused")
        ),
        403
    );
    // Positive control: a Role within what it holds is accepted, so the refusals above are
    // the escalation check and not a blanket denial.
    let reader: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "read-pods", "namespace": ATTACKER_NAMESPACE},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }))
    .expect("a Role");
    roles
        .create(&PostParams::default(), &reader)
        .await
        .expect("a Role within the operator's own rights");
}
