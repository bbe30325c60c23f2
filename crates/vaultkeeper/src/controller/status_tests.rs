//! Table tests of the status computation.

use super::*;
use vaultkeeper_vault::decide::{Action, BootstrapState, KeysState, NodeObservation, Observation};
use vaultkeeper_vault::node::{PodName, RaftConfiguration, RaftServer};

fn pass(states: &[(&str, NodeState)]) -> PassReport {
    let nodes = states
        .iter()
        .map(|(name, state)| {
            NodeObservation::new(PodName::new(*name).expect("pod name"), state.clone())
        })
        .collect();
    let servers = states
        .iter()
        // A pod restarted since it joined stays in the configuration while it is sealed.
        .filter(|(_, s)| {
            matches!(
                s,
                NodeState::Active | NodeState::Standby | NodeState::Sealed { .. }
            )
        })
        .map(|(name, state)| RaftServer {
            node_id: (*name).to_owned(),
            address: format!("{name}:8201"),
            leader: *state == NodeState::Active,
            voter: true,
        })
        .collect();
    PassReport {
        observation: Observation {
            nodes,
            keys: KeysState::Missing,
            raft: Some(RaftConfiguration { servers }),
            bootstrap: BootstrapState::Done,
            stale_data: Default::default(),
            leader: Some(vaultkeeper_vault::node::LeaderStatus {
                ha_enabled: true,
                is_self: true,
                leader_address: None,
                raft_committed_index: Some(100),
                raft_applied_index: Some(100),
            }),
        },
        actions: Vec::new(),
        outcomes: Vec::new(),
    }
}

fn pods(ready: &[bool]) -> Vec<PodView> {
    ready
        .iter()
        .enumerate()
        .map(|(i, r)| PodView {
            name: format!("vault-{i}"),
            ready: *r,
            up_to_date: true,
        })
        .collect()
}

fn compute_with(
    previous: Option<&VaultClusterStatus>,
    pods: &[PodView],
    pass: &PassReport,
) -> VaultClusterStatus {
    compute_for(3, previous, pods, pass)
}

fn compute_for(
    desired_replicas: i32,
    previous: Option<&VaultClusterStatus>,
    pods: &[PodView],
    pass: &PassReport,
) -> VaultClusterStatus {
    compute(&StatusInputs {
        generation: Some(1),
        previous,
        now: jiff::Timestamp::UNIX_EPOCH,
        desired_replicas,
        invalid: None,
        pods,
        pass: Some(pass),
        bootstrapped: true,
        tls: None,
        tls_problem: None,
        operation: None,
        waiting_for: None,
        needs_person: None,
        errors: Vec::new(),
        fixed: None,
    })
}

fn condition<'a>(status: &'a VaultClusterStatus, type_: &str) -> &'a str {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
        .unwrap_or("absent")
}

#[test]
fn a_cluster_coming_up_is_unsealing_never_degraded() {
    let pass = pass(&[
        ("vault-0", NodeState::Active),
        (
            "vault-1",
            NodeState::Sealed {
                progress: 0,
                threshold: 3,
            },
        ),
        (
            "vault-2",
            NodeState::Sealed {
                progress: 0,
                threshold: 3,
            },
        ),
    ]);
    let first = VaultClusterStatus {
        phase: Some(Phase::Initializing),
        ..VaultClusterStatus::default()
    };
    let status = compute_with(Some(&first), &pods(&[true, false, false]), &pass);
    assert_eq!(status.phase, Some(Phase::Unsealing));
    assert_eq!(condition(&status, "Degraded"), "False");
    assert_eq!(condition(&status, "Progressing"), "True");
    assert_eq!(condition(&status, "Ready"), "False");
}

#[test]
fn a_serving_cluster_that_loses_a_pod_is_degraded_until_it_is_back() {
    let all = pass(&[
        ("vault-0", NodeState::Active),
        ("vault-1", NodeState::Standby),
        ("vault-2", NodeState::Standby),
    ]);
    let ready = compute_with(None, &pods(&[true, true, true]), &all);
    assert_eq!(ready.phase, Some(Phase::Ready));
    assert_eq!(condition(&ready, "Ready"), "True");
    assert_eq!(ready.active_pod.as_deref(), Some("vault-0"));

    let one_sealed = pass(&[
        ("vault-0", NodeState::Active),
        ("vault-1", NodeState::Standby),
        (
            "vault-2",
            NodeState::Sealed {
                progress: 0,
                threshold: 3,
            },
        ),
    ]);
    let degraded = compute_with(Some(&ready), &pods(&[true, true, false]), &one_sealed);
    assert_eq!(degraded.phase, Some(Phase::Degraded));
    assert_eq!(condition(&degraded, "Degraded"), "True");
    assert_eq!(degraded.sealed_replicas, 1);
    // Still degraded on the next pass, then Ready again once the pod is back.
    let still = compute_with(Some(&degraded), &pods(&[true, true, false]), &one_sealed);
    assert_eq!(still.phase, Some(Phase::Degraded));
    let back = compute_with(Some(&still), &pods(&[true, true, true]), &all);
    assert_eq!(back.phase, Some(Phase::Ready));
    assert_eq!(condition(&back, "Degraded"), "False");
}

#[test]
fn an_invalid_spec_blocks_and_names_the_field() {
    let invalid = vaultkeeper_api::validate(&{
        let mut vc: vaultkeeper_api::VaultCluster = vaultkeeper_api::parse_manifests(
            "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: v, namespace: ns}\nspec: {replicas: 4}\n",
        )
        .map(|mut v| v.remove(0))
        .unwrap_or_else(|e| panic!("{e}"));
        vc.metadata.generation = Some(1);
        vc
    })
    .expect_err("replicas 4 is invalid");
    let status = compute(&StatusInputs {
        generation: Some(1),
        previous: None,
        now: jiff::Timestamp::UNIX_EPOCH,
        desired_replicas: 4,
        invalid: Some(&invalid),
        pods: &[],
        pass: None,
        bootstrapped: false,
        tls: None,
        tls_problem: None,
        operation: None,
        waiting_for: None,
        needs_person: None,
        errors: Vec::new(),
        fixed: None,
    });
    assert_eq!(status.phase, Some(Phase::Blocked));
    assert_eq!(condition(&status, "SpecValid"), "False");
    let message = &status
        .conditions
        .iter()
        .find(|c| c.type_ == "SpecValid")
        .expect("SpecValid")
        .message;
    assert!(message.contains("spec.replicas"), "{message}");
}

#[test]
fn the_escrow_record_survives_every_pass_that_does_not_rewrite_it() {
    let escrow = vaultkeeper_api::EscrowStatus {
        fingerprint: "f".repeat(64),
        recipients_fingerprint: "r".repeat(64),
        recipients: 2,
        object: Some("p/escrow/vault/20260101T000000Z-ffffffffffffffff.age".into()),
        ..Default::default()
    };
    let previous = VaultClusterStatus {
        keys: Some(vaultkeeper_api::KeysStatus {
            escrow: Some(escrow.clone()),
        }),
        ..VaultClusterStatus::default()
    };
    let next = compute_with(
        Some(&previous),
        &pods(&[true]),
        &pass(&[("vault-0", NodeState::Active)]),
    );
    assert_eq!(next.keys.and_then(|k| k.escrow), Some(escrow.clone()));
    let failed = after_failed_read(Some(&previous), Some(2), "x", jiff::Timestamp::UNIX_EPOCH);
    assert_eq!(failed.keys.and_then(|k| k.escrow), Some(escrow));
}

#[test]
fn a_failed_read_says_so_and_keeps_what_earlier_passes_saw() {
    let serving = compute_with(
        None,
        &pods(&[true, true, true]),
        &pass(&[
            ("vault-0", NodeState::Active),
            ("vault-1", NodeState::Standby),
            ("vault-2", NodeState::Standby),
        ]),
    );
    let failed = after_failed_read(
        Some(&serving),
        Some(2),
        "Secret vault-unseal-keys: holds the keys of VaultCluster other",
        jiff::Timestamp::UNIX_EPOCH,
    );
    assert_eq!(condition(&failed, "Ready"), "False");
    assert_eq!(condition(&failed, "Progressing"), "True");
    let ready = failed
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert!(
        ready
            .message
            .contains("holds the keys of VaultCluster other")
    );
    assert_eq!(ready.observed_generation, Some(2));
    // What it cannot see now is not forgotten: pods, phase and other conditions stay.
    assert_eq!(failed.nodes, serving.nodes);
    assert_eq!(failed.phase, serving.phase);
    assert_eq!(
        condition(&failed, "Unsealed"),
        condition(&serving, "Unsealed")
    );

    // A brand-new cluster gets a status at all.
    let first = after_failed_read(None, Some(1), "boom", jiff::Timestamp::UNIX_EPOCH);
    assert_eq!(first.phase, Some(Phase::Pending));
    assert_eq!(condition(&first, "Ready"), "False");
}

#[test]
fn the_fixed_fields_are_recorded_once_the_cluster_is_initialized_and_never_rewritten() {
    let fields = |flavor, keys: &str| InitializedWith {
        flavor,
        unseal_type: vaultkeeper_api::UnsealType::Shamir,
        keys_secret_name: keys.to_owned(),
        initialization: vaultkeeper_api::Initialization::Operator,
    };
    let at_init = fields(vaultkeeper_api::Flavor::OpenBao, "vault-unseal-keys");
    let changed = fields(vaultkeeper_api::Flavor::Vault, "someone-elses-keys");
    let with = |previous: Option<&VaultClusterStatus>, pass: &PassReport, now: &InitializedWith| {
        compute(&StatusInputs {
            generation: Some(1),
            previous,
            now: jiff::Timestamp::UNIX_EPOCH,
            desired_replicas: 1,
            invalid: None,
            pods: &pods(&[true]),
            pass: Some(pass),
            bootstrapped: false,
            tls: None,
            tls_problem: None,
            operation: None,
            waiting_for: None,
            needs_person: None,
            errors: Vec::new(),
            fixed: Some(now.clone()),
        })
    };
    let fresh = with(
        None,
        &pass(&[("vault-0", NodeState::Uninitialized)]),
        &at_init,
    );
    assert_eq!(
        fresh.initialized_with, None,
        "nothing to record before init"
    );
    let initialized = with(
        Some(&fresh),
        &pass(&[("vault-0", NodeState::Active)]),
        &at_init,
    );
    assert_eq!(initialized.initialized_with.as_ref(), Some(&at_init));
    let later = with(
        Some(&initialized),
        &pass(&[("vault-0", NodeState::Active)]),
        &changed,
    );
    assert_eq!(
        later.initialized_with.as_ref(),
        Some(&at_init),
        "a later spec never rewrites what the cluster was initialized with"
    );
}

#[test]
fn new_pods_of_a_scale_up_are_progress_not_damage() {
    let three = pass(&[
        ("vault-0", NodeState::Active),
        ("vault-1", NodeState::Standby),
        ("vault-2", NodeState::Standby),
    ]);
    let ready = compute_with(None, &pods(&[true, true, true]), &three);
    assert_eq!(ready.phase, Some(Phase::Ready));

    // Scaled to 5: the two new pods are not members yet.
    let growing = |vault_1: NodeState| {
        pass(&[
            ("vault-0", NodeState::Active),
            ("vault-1", vault_1),
            ("vault-2", NodeState::Standby),
            ("vault-3", NodeState::Uninitialized),
            (
                "vault-4",
                NodeState::Unreachable {
                    reason: "not created yet".into(),
                },
            ),
        ])
    };
    let scaling = compute_for(
        5,
        Some(&ready),
        &pods(&[true, true, true, false]),
        &growing(NodeState::Standby),
    );
    assert_eq!(condition(&scaling, "Degraded"), "False");
    assert_eq!(condition(&scaling, "Ready"), "False");
    assert_ne!(scaling.phase, Some(Phase::Degraded));

    // One of the serving pods goes meanwhile: that is damage.
    let losing = growing(NodeState::Sealed {
        progress: 0,
        threshold: 3,
    });
    let hurt = compute_for(5, Some(&ready), &pods(&[true, false, true, false]), &losing);
    assert_eq!(condition(&hurt, "Degraded"), "True");
    assert_eq!(hurt.phase, Some(Phase::Degraded));
}

#[test]
fn a_leader_still_replaying_its_log_is_not_ready() {
    let mut catching_up = pass(&[
        ("vault-0", NodeState::Active),
        ("vault-1", NodeState::Standby),
        ("vault-2", NodeState::Standby),
    ]);
    catching_up.actions = vec![Action::Wait(WaitReason::LeaderCatchingUp {
        pod: PodName::new("vault-0").expect("pod name"),
        committed: 5000,
        applied: 1200,
    })];
    let status = compute_with(None, &pods(&[true, true, true]), &catching_up);
    assert_eq!(condition(&status, "Ready"), "False");
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert!(
        ready.message.contains("applied raft index 1200 of 5000"),
        "{}",
        ready.message
    );
}
