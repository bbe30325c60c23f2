//! Table tests of the pure steps of a pass: the plan (operation choice, rollout step,
//! scale-down hold, apply and prune), the TLS keep-or-renew decision and the folding of
//! Job outcomes into status.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use vaultkeeper_api::{OperationKind, VaultCluster, VaultClusterStatus};
use vaultkeeper_vault::decide::{
    Action as LifecycleAction, BootstrapState, KeysState, NodeObservation, NodeState, Observation,
};
use vaultkeeper_vault::keys::{KeyKind, KeysSummary};
use vaultkeeper_vault::lifecycle::FileJwt;
use vaultkeeper_vault::node::{PodName, RaftConfiguration, RaftServer, SealType};

use super::context::{Capabilities, Settings};
use super::nodes;
use super::observe::Observed;
use super::plan::{self, Plan, PlanInputs};
use super::rollout::RolloutStep;
use super::tls::{Tls, TlsObserved};
use crate::apply::LiveObjects;

pub(super) const NOW: i64 = 1_800_000_000;

pub(super) fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(NOW).expect("time")
}

/// A VaultCluster `vault` in namespace `vault`, TLS off, with `spec` merged in.
pub(super) fn cluster(spec: serde_json::Value) -> VaultCluster {
    let mut base =
        json!({"replicas": 3, "tls": {"mode": "Disabled"}, "backup": {"enabled": false}});
    if let (Some(base), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    let mut vc: VaultCluster = serde_json::from_value(json!({
        "apiVersion": "vaultkeeper.io/v1alpha1", "kind": "VaultCluster",
        "metadata": {"name": "vault", "namespace": "vault", "uid": "uid-1", "generation": 1},
        "spec": base,
    }))
    .expect("a VaultCluster");
    vc.status = Some(VaultClusterStatus {
        initialized: true,
        bootstrapped: true,
        ..VaultClusterStatus::default()
    });
    vc
}

fn settings() -> Settings {
    Settings {
        operator_image: "ghcr.io/vaultkeeper/vaultkeeper:test".into(),
        operator_namespace: "vaultkeeper-system".into(),
        operator_service_account: "vaultkeeper".into(),
        jwt: Arc::new(FileJwt("/nonexistent".into())),
        kubernetes_host: "https://kubernetes.default.svc".into(),
        kubernetes_ca: None,
        instance: "test".into(),
        resync: std::time::Duration::from_secs(60),
        converging_requeue: std::time::Duration::from_secs(5),
        server_cluster_role: Some("vaultkeeper-vault-server".into()),
        image_policy: Default::default(),
        escrow_secret_namespaces: Vec::new(),
    }
}

fn name(pod: &str) -> PodName {
    PodName::new(pod.to_owned()).expect("pod name")
}

/// A pod of the StatefulSet at `revision`.
fn pod(pod: &str, revision: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(pod.into()),
            labels: Some(BTreeMap::from([(
                "controller-revision-hash".to_owned(),
                revision.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    }
}

/// The lifecycle's view: `states` per pod, raft voters `voters` (leader first).
fn nodes_seen(states: &[(&str, NodeState)], voters: &[&str], keys: KeysState) -> Observation {
    Observation {
        nodes: states
            .iter()
            .map(|(pod, state)| {
                NodeObservation::new(name(pod), state.clone())
                    .with_seal(SealType::Shamir)
                    .with_cluster_id("c1")
            })
            .collect(),
        keys,
        raft: Some(RaftConfiguration {
            servers: voters
                .iter()
                .enumerate()
                .map(|(i, id)| RaftServer {
                    node_id: (*id).to_owned(),
                    address: format!("{id}.vault-internal:8201"),
                    leader: i == 0,
                    voter: true,
                })
                .collect(),
        }),
        bootstrap: BootstrapState::Done,
        stale_data: Default::default(),
        leader: Some(vaultkeeper_vault::node::LeaderStatus {
            ha_enabled: true,
            is_self: true,
            leader_address: None,
            raft_committed_index: Some(100),
            raft_applied_index: Some(100),
        }),
    }
}

fn stored() -> KeysState {
    KeysState::Stored(KeysSummary {
        kind: KeyKind::Unseal,
        threshold: 3,
        shares: 5,
        root_token_kept: false,
    })
}

fn observed(live: LiveObjects, pods: Vec<Pod>, nodes: Option<Observation>) -> Observed {
    Observed {
        capabilities: Capabilities::default(),
        live,
        pods,
        foreign_pods: Vec::new(),
        namesakes: Vec::new(),
        keys_record: None,
        tls: TlsObserved::Disabled,
        backup_key_exists: None,
        nodes,
        backup_jobs: Ok((None, Vec::new())),
        snapshot_jobs: Ok(Vec::new()),
        metrics_token: Ok(None),
        token_jobs: Ok(Vec::new()),
    }
}

/// Nothing of the cluster exists but `namesakes`, objects of its names that are not its
/// own; `keys_record` as the keys Secret was found.
pub(super) fn observed_with_namesakes(
    namesakes: Vec<serde_json::Value>,
    keys_record: Option<bool>,
) -> Observed {
    Observed {
        namesakes,
        keys_record,
        ..observed(LiveObjects::default(), Vec::new(), None)
    }
}

pub(super) fn plan_of(vc: &VaultCluster, observed: &Observed) -> Plan {
    let settings = settings();
    let bootstrap = nodes::bootstrap_spec(&settings, vc, "vault");
    plan::cluster(
        vc,
        observed,
        &PlanInputs {
            operator_image: &settings.operator_image,
            server_cluster_role: settings.server_cluster_role.as_deref(),
            bootstrap: &bootstrap,
            tls: &Tls::default(),
            remembered_peers: None,
            now: now(),
        },
    )
    .expect("plans")
}

/// What exists after `vc` was applied as planned, the StatefulSet reporting
/// `update_revision` and having observed its generation.
fn applied(vc: &VaultCluster, update_revision: &str) -> LiveObjects {
    let plan = plan_of(vc, &observed(LiveObjects::default(), Vec::new(), None));
    let mut live = LiveObjects::default();
    for manifest in plan.apply {
        let mut object = manifest.object.clone();
        if manifest.kind == "StatefulSet" {
            object["metadata"]["generation"] = json!(2);
            object["status"] = json!({"observedGeneration": 2, "updateRevision": update_revision});
        }
        live.objects.insert((manifest.kind, manifest.name), object);
    }
    live
}

#[test]
fn a_plan_over_what_it_applied_applies_nothing_and_prunes_nothing() {
    let vc = cluster(json!({}));
    let live = applied(&vc, "r2");
    let pods = vec![
        pod("vault-0", "r2"),
        pod("vault-1", "r2"),
        pod("vault-2", "r2"),
    ];
    let states = [
        ("vault-0", NodeState::Active),
        ("vault-1", NodeState::Standby),
        ("vault-2", NodeState::Standby),
    ];
    let seen = nodes_seen(&states, &["vault-0", "vault-1", "vault-2"], stored());
    let plan = plan_of(&vc, &observed(live.clone(), pods, Some(seen)));
    let drifted: Vec<String> = plan
        .apply
        .iter()
        .map(|m| format!("{}/{}", m.kind, m.name))
        .collect();
    assert!(drifted.is_empty(), "{drifted:?}");
    assert!(plan.prune.is_empty(), "{:?}", plan.prune);
    assert_eq!(plan.unchanged, live.objects.len());
    assert!(plan.lifecycle.is_empty(), "{:?}", plan.lifecycle);
    assert_eq!(plan.operation, None);
    assert_eq!(plan.rollout, None);
}

/// The one disruptive operation a pass may run, by what it observed.
#[test]
fn operation_choice_table() {
    struct Case {
        what: &'static str,
        /// Pod, its revision, its state.
        pods: Vec<(&'static str, &'static str, NodeState)>,
        voters: Vec<&'static str>,
        keys: KeysState,
        /// The StatefulSet's generation has not been observed by its controller.
        unobserved: bool,
        operation: Option<(OperationKind, &'static str)>,
        step: Option<RolloutStep>,
        /// The operation a backup is taken for before this step (`snapshot`).
        disruption: Option<String>,
    }
    let rolling = Some("RollingUpdate to revision r2".to_owned());
    let up = |p: &'static str, r: &'static str, s: NodeState| (p, r, s);
    let all_voters = vec!["vault-0", "vault-1", "vault-2"];
    let cases = vec![
        Case {
            what: "every pod on the current revision: nothing to do",
            pods: vec![
                up("vault-0", "r2", NodeState::Active),
                up("vault-1", "r2", NodeState::Standby),
                up("vault-2", "r2", NodeState::Standby),
            ],
            voters: all_voters.clone(),
            keys: stored(),
            unobserved: false,
            operation: None,
            step: None,
            disruption: None,
        },
        Case {
            what: "standbys go first, highest ordinal first",
            pods: vec![
                up("vault-0", "r1", NodeState::Active),
                up("vault-1", "r1", NodeState::Standby),
                up("vault-2", "r1", NodeState::Standby),
            ],
            voters: all_voters.clone(),
            keys: stored(),
            unobserved: false,
            operation: Some((OperationKind::RollingUpdate, "replacing vault-2")),
            step: Some(RolloutStep::DeletePod("vault-2".into())),
            disruption: rolling.clone(),
        },
        Case {
            what: "the old active node last, after it stepped down",
            pods: vec![
                up("vault-0", "r1", NodeState::Active),
                up("vault-1", "r2", NodeState::Standby),
                up("vault-2", "r2", NodeState::Standby),
            ],
            voters: all_voters.clone(),
            keys: stored(),
            unobserved: false,
            operation: Some((OperationKind::RollingUpdate, "vault-0 stepping down")),
            step: Some(RolloutStep::StepDown("vault-0".into())),
            disruption: rolling.clone(),
        },
        Case {
            what: "a sealed pod is unsealed before anything else goes",
            pods: vec![
                up("vault-0", "r2", NodeState::Active),
                up(
                    "vault-1",
                    "r2",
                    NodeState::Sealed {
                        progress: 0,
                        threshold: 3,
                    },
                ),
                up("vault-2", "r1", NodeState::Standby),
            ],
            voters: all_voters.clone(),
            keys: stored(),
            unobserved: false,
            operation: Some((
                OperationKind::RollingUpdate,
                "pod vault-1 is not unsealed yet",
            )),
            step: None,
            disruption: None,
        },
        Case {
            what: "a departed raft peer makes it a scale-down, and nothing rolls meanwhile",
            pods: vec![
                up("vault-0", "r1", NodeState::Active),
                up("vault-1", "r1", NodeState::Standby),
                up("vault-2", "r1", NodeState::Standby),
            ],
            voters: vec!["vault-0", "vault-1", "vault-2", "vault-3"],
            keys: stored(),
            unobserved: false,
            operation: Some((
                OperationKind::ScaleDown,
                "1 raft peers and 0 pods to remove",
            )),
            step: None,
            disruption: Some(format!("ScaleDown started {}", now())),
        },
        Case {
            what: "a stopped lifecycle (initialized, keys missing) rolls nothing",
            pods: vec![
                up("vault-0", "r1", NodeState::Active),
                up("vault-1", "r1", NodeState::Standby),
                up("vault-2", "r1", NodeState::Standby),
            ],
            voters: all_voters.clone(),
            keys: KeysState::Missing,
            unobserved: false,
            operation: None,
            step: None,
            disruption: None,
        },
        Case {
            what: "revisions are not trusted before the StatefulSet controller caught up",
            pods: vec![
                up("vault-0", "r2", NodeState::Active),
                up("vault-1", "r2", NodeState::Standby),
                up("vault-2", "r2", NodeState::Standby),
            ],
            voters: all_voters.clone(),
            keys: stored(),
            unobserved: true,
            operation: Some((
                OperationKind::RollingUpdate,
                "the StatefulSet controller has not taken the new pod template yet",
            )),
            step: None,
            disruption: None,
        },
    ];
    for case in cases {
        let vc = cluster(json!({}));
        let mut live = applied(&vc, "r2");
        if case.unobserved
            && let Some(sts) = live
                .objects
                .get_mut(&("StatefulSet".to_owned(), "vault".to_owned()))
        {
            sts["metadata"]["generation"] = json!(3);
        }
        let pods = case.pods.iter().map(|(p, r, _)| pod(p, r)).collect();
        let states: Vec<(&str, NodeState)> =
            case.pods.iter().map(|(p, _, s)| (*p, s.clone())).collect();
        let seen = nodes_seen(&states, &case.voters, case.keys);
        let plan = plan_of(&vc, &observed(live, pods, Some(seen)));
        let operation = plan
            .operation
            .as_ref()
            .map(|o| (o.kind, o.detail.clone().unwrap_or_default()));
        assert_eq!(
            operation,
            case.operation.map(|(k, d)| (k, d.to_owned())),
            "{}",
            case.what
        );
        assert_eq!(plan.rollout, case.step, "{}", case.what);
        assert_eq!(plan.disruption, case.disruption, "{}", case.what);
        if case.keys == KeysState::Missing {
            assert!(
                plan.lifecycle
                    .iter()
                    .all(|a| matches!(a, LifecycleAction::Stop(_))),
                "{}: {:?}",
                case.what,
                plan.lifecycle
            );
        }
    }
}

#[test]
fn a_scale_down_keeps_the_departing_pods_until_raft_no_longer_lists_them() {
    let five = cluster(json!({"replicas": 5}));
    let live = applied(&five, "r1");
    let three = cluster(json!({"replicas": 3}));
    let pods: Vec<Pod> = (0..5).map(|i| pod(&format!("vault-{i}"), "r1")).collect();
    let replicas_rendered = |plan: &Plan| {
        plan.apply
            .iter()
            .find(|m| m.kind == "StatefulSet")
            .map(|m| m.object["spec"]["replicas"].clone())
    };
    let states: Vec<(String, NodeState)> = (0..5)
        .map(|i| {
            let state = if i == 0 {
                NodeState::Active
            } else {
                NodeState::Standby
            };
            (format!("vault-{i}"), state)
        })
        .collect();
    let states: Vec<(&str, NodeState)> = states
        .iter()
        .map(|(p, s)| (p.as_str(), s.clone()))
        .collect();

    // Raft still lists vault-3 and vault-4: the StatefulSet keeps 5 (unchanged).
    let all = ["vault-0", "vault-1", "vault-2", "vault-3", "vault-4"];
    let seen = nodes_seen(&states, &all, stored());
    let plan = plan_of(&three, &observed(live.clone(), pods.clone(), Some(seen)));
    assert_eq!(replicas_rendered(&plan), None, "{:?}", plan.apply);
    assert!(
        plan.lifecycle.iter().any(
            |a| matches!(a, LifecycleAction::RemovePeer { node_id, .. } if node_id == "vault-4" || node_id == "vault-3")
        ),
        "{:?}",
        plan.lifecycle
    );
    assert_eq!(
        plan.operation.map(|o| o.kind),
        Some(OperationKind::ScaleDown)
    );

    // Raft lists only the desired three: now the StatefulSet goes down to 3.
    let seen = nodes_seen(&states, &all[..3], stored());
    let plan = plan_of(&three, &observed(live, pods, Some(seen)));
    assert_eq!(replicas_rendered(&plan), Some(json!(3)));
}

#[test]
fn only_owned_objects_the_spec_dropped_are_pruned_and_never_a_kind_held_back() {
    let owned = json!({"metadata": {"name": "vault", "ownerReferences": [{"kind": "VaultCluster", "uid": "uid-1", "name": "vault"}]}});
    let owned_by_other = json!({"metadata": {"name": "vault", "ownerReferences": [{"kind": "VaultCluster", "uid": "uid-2", "name": "vault"}]}});
    let no_owner = json!({"metadata": {"name": "keys"}});
    // (what, prometheus-operator installed, live objects, pruned)
    type Row<'a> = (
        &'a str,
        bool,
        Vec<(&'a str, &'a str, serde_json::Value)>,
        Vec<(&'a str, &'a str)>,
    );
    let table: Vec<Row> = vec![
        (
            "an Ingress the spec no longer asks for",
            true,
            vec![("Ingress", "vault", owned.clone())],
            vec![("Ingress", "vault")],
        ),
        (
            "a ServiceMonitor while prometheus-operator looks absent: held back, kept",
            false,
            vec![("ServiceMonitor", "vault", owned.clone())],
            vec![],
        ),
        (
            "another cluster's object and an owner-less Secret",
            true,
            vec![
                ("Ingress", "vault", owned_by_other),
                ("Secret", "keys", no_owner),
            ],
            vec![],
        ),
    ];
    for (what, prometheus, objects, pruned) in table {
        let vc = cluster(json!({}));
        let mut live = applied(&vc, "r1");
        for (kind, name, object) in objects {
            live.objects.insert((kind.into(), name.into()), object);
        }
        let mut seen = observed(live, Vec::new(), None);
        seen.capabilities.prometheus_operator = prometheus;
        let plan = plan_of(&vc, &seen);
        let got: Vec<(&str, &str)> = plan
            .prune
            .iter()
            .map(|(k, n)| (k.as_str(), n.as_str()))
            .filter(|(k, _)| *k != "ServiceMonitor" || !prometheus)
            .filter(|(k, _)| *k != "PrometheusRule")
            .collect();
        assert_eq!(got, pruned, "{what}");
    }

    // Monitoring turned off with prometheus-operator installed: its objects go.
    let vc = cluster(json!({"monitoring": {"enabled": false}}));
    let mut live = applied(&cluster(json!({})), "r1");
    live.objects
        .insert(("ServiceMonitor".into(), "vault".into()), owned);
    let mut seen = observed(live, Vec::new(), None);
    seen.capabilities.prometheus_operator = true;
    let plan = plan_of(&vc, &seen);
    assert!(
        plan.prune
            .contains(&("ServiceMonitor".into(), "vault".into())),
        "{:?}",
        plan.prune
    );
}

#[test]
fn the_binding_under_its_old_name_is_removed_only_when_it_binds_this_cluster() {
    // Before names were collision-free, namespace `a-b`/cluster `c` and namespace
    // `a`/cluster `b-c` both had `a-b-c-server-binding`: only the one whose subject is
    // this cluster's ServiceAccount is removed.
    let vc: VaultCluster = serde_json::from_value(json!({
        "apiVersion": "vaultkeeper.io/v1alpha1", "kind": "VaultCluster",
        "metadata": {"name": "c", "namespace": "a-b", "uid": "uid-1", "generation": 1},
        "spec": {"tls": {"mode": "Disabled"}, "backup": {"enabled": false}},
    }))
    .expect("a VaultCluster");
    let binding = |namespace: &str, account: &str| json!({"subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]});
    for (what, subject, removed) in [
        (
            "this cluster's",
            binding("a-b", "c"),
            vec!["a-b-c-server-binding".to_owned()],
        ),
        ("namespace a's cluster b-c", binding("a", "b-c"), vec![]),
        (
            "a binding that also binds someone else",
            json!({"subjects": [
            {"kind": "ServiceAccount", "name": "c", "namespace": "a-b"},
            {"kind": "ServiceAccount", "name": "x", "namespace": "a"}]}),
            vec![],
        ),
    ] {
        let mut live = LiveObjects::default();
        live.objects.insert(
            ("ClusterRoleBinding".into(), "a-b-c-server-binding".into()),
            subject,
        );
        let plan = plan_of(&vc, &observed(live, Vec::new(), None));
        assert_eq!(plan.remove_bindings, removed, "{what}");
    }
    assert_eq!(
        vaultkeeper_api::ClusterNames::new("c").server_cluster_role_binding("a-b"),
        "a-b:c-server-binding"
    );
    assert_ne!(
        vaultkeeper_api::ClusterNames::new("c").server_cluster_role_binding("a-b"),
        vaultkeeper_api::ClusterNames::new("b-c").server_cluster_role_binding("a")
    );
}
