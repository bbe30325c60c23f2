//! The lifecycle decision, row by row. Each test is one row of the table: an observed
//! cluster and the exact actions it must lead to.

use vaultkeeper_vault::decide::{
    Action, BootstrapState, ClusterIntent, InitMode, KeysState, LEADER_APPLY_SLACK,
    NodeObservation, NodeState, Observation, RaftJoin, SealIntent, StopReason, WaitReason, decide,
};
use vaultkeeper_vault::keys::{KeyKind, KeysSummary};
use vaultkeeper_vault::node::{InitRequest, PodName, RaftConfiguration, RaftServer, SealType};

fn pod(name: &str) -> PodName {
    PodName::new(name).unwrap_or_else(|e| panic!("{e}"))
}

fn pods(n: usize) -> Vec<PodName> {
    (0..n).map(|i| pod(&format!("vault-{i}"))).collect()
}

fn shamir_intent(replicas: usize) -> ClusterIntent {
    ClusterIntent::new(
        pods(replicas),
        SealIntent::Shamir {
            shares: 5,
            threshold: 3,
        },
        InitMode::Operator,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn auto_intent(replicas: usize, mode: InitMode) -> ClusterIntent {
    ClusterIntent::new(
        pods(replicas),
        SealIntent::Auto {
            recovery_shares: 5,
            recovery_threshold: 3,
        },
        mode,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

const SHAMIR: fn() -> SealType = || SealType::Shamir;
const TRANSIT: fn() -> SealType = || SealType::Auto("transit".into());

fn node(name: &str, state: NodeState, seal: SealType) -> NodeObservation {
    let initialized = matches!(state, NodeState::Standby | NodeState::Active);
    let n = NodeObservation::new(pod(name), state).with_seal(seal);
    if initialized {
        n.with_cluster_id("cluster-a")
    } else {
        n
    }
}

fn unreachable(name: &str) -> NodeObservation {
    NodeObservation::new(
        pod(name),
        NodeState::Unreachable {
            reason: "connection refused".into(),
        },
    )
}

fn sealed(progress: u8) -> NodeState {
    NodeState::Sealed {
        progress,
        threshold: 3,
    }
}

fn unseal_keys() -> KeysState {
    KeysState::Stored(KeysSummary {
        kind: KeyKind::Unseal,
        threshold: 3,
        shares: 5,
        root_token_kept: true,
    })
}

fn recovery_keys() -> KeysState {
    KeysState::Stored(KeysSummary {
        kind: KeyKind::Recovery,
        threshold: 3,
        shares: 5,
        root_token_kept: true,
    })
}

fn raft(ids: &[(&str, bool)]) -> Option<RaftConfiguration> {
    Some(RaftConfiguration {
        servers: ids
            .iter()
            .enumerate()
            .map(|(i, (id, voter))| RaftServer {
                node_id: (*id).to_string(),
                address: format!("{id}:8201"),
                leader: i == 0,
                voter: *voter,
            })
            .collect(),
    })
}

fn healthy_raft() -> Option<RaftConfiguration> {
    raft(&[("vault-0", true), ("vault-1", true), ("vault-2", true)])
}

fn observe(
    nodes: Vec<NodeObservation>,
    keys: KeysState,
    raft: Option<RaftConfiguration>,
) -> Observation {
    Observation {
        nodes,
        keys,
        raft,
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

fn init_on(name: &str) -> Action {
    Action::Init {
        pod: pod(name),
        request: InitRequest::Shamir {
            shares: 5,
            threshold: 3,
        },
    }
}

fn never_inits(actions: &[Action]) {
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Init { .. })),
        "{actions:?}"
    );
}

#[test]
fn fresh_cluster_is_initialized_exactly_once_on_the_first_pod() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Uninitialized, SHAMIR()),
            node("vault-1", NodeState::Uninitialized, SHAMIR()),
            node("vault-2", NodeState::Uninitialized, SHAMIR()),
        ],
        KeysState::Missing,
        None,
    );
    assert_eq!(decide(&shamir_intent(3), &obs), vec![init_on("vault-0")]);
}

#[test]
fn two_uninitialized_pods_lead_to_exactly_one_init() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Uninitialized, SHAMIR()),
            node("vault-1", NodeState::Uninitialized, SHAMIR()),
        ],
        KeysState::Missing,
        None,
    );
    let actions = decide(&shamir_intent(2), &obs);
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::Init { .. }))
            .count(),
        1
    );
    assert_eq!(actions, vec![init_on("vault-0")]);
}

#[test]
fn initialized_cluster_without_keys_is_never_reinitialized() {
    let obs = observe(
        vec![
            node("vault-0", sealed(0), SHAMIR()),
            node("vault-1", NodeState::Uninitialized, SHAMIR()),
            node("vault-2", NodeState::Uninitialized, SHAMIR()),
        ],
        KeysState::Missing,
        None,
    );
    assert_eq!(
        decide(&shamir_intent(3), &obs),
        vec![Action::Stop(StopReason::KeysMissing)]
    );
}

#[test]
fn keys_missing_stops_even_when_the_cluster_is_otherwise_healthy() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Active, SHAMIR()),
            node("vault-1", NodeState::Standby, SHAMIR()),
            node("vault-2", sealed(0), SHAMIR()),
        ],
        KeysState::Missing,
        healthy_raft(),
    );
    // Nothing else: no unseal, no raft change, no bootstrap.
    assert_eq!(
        decide(&shamir_intent(3), &obs),
        vec![Action::Stop(StopReason::KeysMissing)]
    );
}

#[test]
fn init_answered_but_store_write_failed_retries_the_write_and_never_reinits() {
    let pending = KeysState::PendingWrite(KeysSummary {
        kind: KeyKind::Unseal,
        threshold: 3,
        shares: 5,
        root_token_kept: true,
    });
    let obs = observe(
        vec![
            node("vault-0", sealed(0), SHAMIR()),
            node("vault-1", NodeState::Uninitialized, SHAMIR()),
            node("vault-2", NodeState::Uninitialized, SHAMIR()),
        ],
        pending,
        None,
    );
    assert_eq!(decide(&shamir_intent(3), &obs), vec![Action::PersistKeys]);
}

#[test]
fn pending_keys_come_first_even_if_pods_look_uninitialized() {
    // A node that lost its answer to an observation hiccup must not turn a pending write
    // into a second init.
    let pending = KeysState::PendingWrite(KeysSummary {
        kind: KeyKind::Unseal,
        threshold: 3,
        shares: 5,
        root_token_kept: true,
    });
    let obs = observe(
        vec![node("vault-0", NodeState::Uninitialized, SHAMIR())],
        pending,
        None,
    );
    assert_eq!(decide(&shamir_intent(1), &obs), vec![Action::PersistKeys]);
}

#[test]
fn sealed_pods_after_a_restart_are_each_unsealed() {
    let obs = observe(
        vec![
            node("vault-0", sealed(0), SHAMIR()),
            node("vault-1", sealed(0), SHAMIR()),
            node("vault-2", sealed(0), SHAMIR()),
        ],
        unseal_keys(),
        None,
    );
    let actions = decide(&shamir_intent(3), &obs);
    assert_eq!(
        actions,
        vec![
            Action::Unseal {
                pod: pod("vault-0"),
                reset_first: false,
                rejoin: None,
            },
            Action::Unseal {
                pod: pod("vault-1"),
                reset_first: false,
                rejoin: None,
            },
            Action::Unseal {
                pod: pod("vault-2"),
                reset_first: false,
                rejoin: None,
            },
            Action::Wait(WaitReason::NoActiveNode),
        ]
    );
}

#[test]
fn one_restarted_pod_is_unsealed_and_the_rest_left_alone() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Active, SHAMIR()),
            node("vault-1", sealed(0), SHAMIR()),
            node("vault-2", NodeState::Standby, SHAMIR()),
        ],
        unseal_keys(),
        healthy_raft(),
    );
    assert_eq!(
        decide(&shamir_intent(3), &obs),
        vec![Action::Unseal {
            pod: pod("vault-1"),
            reset_first: false,
            rejoin: None,
        }]
    );
}

#[test]
fn partial_unseal_progress_is_reset_before_the_stored_shares_are_entered() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Active, SHAMIR()),
            node("vault-1", sealed(2), SHAMIR()),
        ],
        unseal_keys(),
        raft(&[("vault-0", true), ("vault-1", true)]),
    );
    assert_eq!(
        decide(&shamir_intent(2), &obs),
        vec![Action::Unseal {
            pod: pod("vault-1"),
            reset_first: true,
            rejoin: None,
        }]
    );
}

#[test]
fn auto_unseal_cluster_gets_no_shares_and_keeps_its_recovery_keys() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Active, TRANSIT()),
            node("vault-1", sealed(0), TRANSIT()),
            node("vault-2", NodeState::Standby, TRANSIT()),
        ],
        recovery_keys(),
        healthy_raft(),
    );
    let actions = decide(&auto_intent(3, InitMode::Operator), &obs);
    assert_eq!(
        actions,
        vec![Action::Wait(WaitReason::AutoUnsealPending(pod("vault-1")))]
    );
}

#[test]
fn fresh_auto_unseal_cluster_is_initialized_with_recovery_shares() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Uninitialized, TRANSIT()),
            node("vault-1", NodeState::Uninitialized, TRANSIT()),
        ],
        KeysState::Missing,
        None,
    );
    assert_eq!(
        decide(&auto_intent(2, InitMode::Operator), &obs),
        vec![Action::Init {
            pod: pod("vault-0"),
            request: InitRequest::Recovery {
                shares: 5,
                threshold: 3
            },
        }]
    );
}

#[test]
fn self_initializing_cluster_is_never_initialized_by_the_operator() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Uninitialized, TRANSIT()),
            node("vault-1", NodeState::Uninitialized, TRANSIT()),
        ],
        KeysState::Missing,
        None,
    );
    assert_eq!(
        decide(&auto_intent(2, InitMode::SelfInit), &obs),
        vec![Action::Wait(WaitReason::AwaitingSelfInitialization)]
    );
}

#[test]
fn self_initialized_cluster_without_keys_is_bootstrapped_not_stopped() {
    let mut obs = observe(
        vec![
            node("vault-0", NodeState::Active, TRANSIT()),
            node("vault-1", NodeState::Standby, TRANSIT()),
        ],
        KeysState::Missing,
        raft(&[("vault-0", true), ("vault-1", true)]),
    );
    obs.bootstrap = BootstrapState::Needed;
    assert_eq!(
        decide(&auto_intent(2, InitMode::SelfInit), &obs),
        vec![Action::Bootstrap {
            via: pod("vault-0")
        }]
    );
}

#[test]
fn departed_peer_after_scale_down_is_removed_through_the_active_pod() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Standby, SHAMIR()),
            node("vault-1", NodeState::Active, SHAMIR()),
            node("vault-2", NodeState::Standby, SHAMIR()),
        ],
        unseal_keys(),
        raft(&[
            ("vault-1", true),
            ("vault-0", true),
            ("vault-2", true),
            ("vault-3", true),
            ("vault-4", true),
        ]),
    );
    // One removal per pass.
    assert_eq!(
        decide(&shamir_intent(3), &obs),
        vec![Action::RemovePeer {
            node_id: "vault-3".into(),
            via: pod("vault-1")
        }]
    );
}

#[test]
fn a_departed_pod_that_is_still_active_steps_down_before_any_removal() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Standby, SHAMIR()),
            node("vault-1", NodeState::Standby, SHAMIR()),
            node("vault-2", NodeState::Standby, SHAMIR()),
            node("vault-3", NodeState::Active, SHAMIR()),
        ],
        unseal_keys(),
        raft(&[
            ("vault-3", true),
            ("vault-0", true),
            ("vault-1", true),
            ("vault-2", true),
        ]),
    );
    assert_eq!(
        decide(&shamir_intent(3), &obs),
        vec![Action::StepDown {
            pod: pod("vault-3")
        }]
    );
}

#[test]
fn a_pod_that_answers_nothing_before_init_blocks_init() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Uninitialized, SHAMIR()),
            unreachable("vault-1"),
            node("vault-2", NodeState::Uninitialized, SHAMIR()),
        ],
        KeysState::Missing,
        None,
    );
    let actions = decide(&shamir_intent(3), &obs);
    never_inits(&actions);
    assert_eq!(
        actions,
        vec![Action::Wait(WaitReason::PodsUnreachableBeforeInit(vec![
            pod("vault-1")
        ]))]
    );
}

#[test]
fn a_pod_that_was_never_observed_counts_as_unreachable() {
    let obs = observe(
        vec![node("vault-0", NodeState::Uninitialized, SHAMIR())],
        KeysState::Missing,
        None,
    );
    let actions = decide(&shamir_intent(2), &obs);
    never_inits(&actions);
}

#[test]
fn a_pod_that_answers_nothing_in_a_running_cluster_is_reported_and_the_rest_proceeds() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Active, SHAMIR()),
            unreachable("vault-1"),
            node("vault-2", sealed(0), SHAMIR()),
        ],
        unseal_keys(),
        healthy_raft(),
    );
    assert_eq!(
        decide(&shamir_intent(3), &obs),
        vec![
            Action::Wait(WaitReason::PodUnreachable(pod("vault-1"))),
            Action::Unseal {
                pod: pod("vault-2"),
                reset_first: false,
                rejoin: None,
            },
        ]
    );
}

#[test]
fn every_pod_unreachable_means_wait_not_init() {
    let obs = observe(
        vec![
            unreachable("vault-0"),
            unreachable("vault-1"),
            unreachable("vault-2"),
        ],
        KeysState::Missing,
        None,
    );
    let actions = decide(&shamir_intent(3), &obs);
    never_inits(&actions);
    assert!(
        matches!(actions.as_slice(), [Action::Wait(WaitReason::PodsUnreachableBeforeInit(p))] if p.len() == 3)
    );
}

#[test]
fn keys_stored_but_every_pod_uninitialized_stops_instead_of_reinitializing() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Uninitialized, SHAMIR()),
            node("vault-1", NodeState::Uninitialized, SHAMIR()),
        ],
        unseal_keys(),
        None,
    );
    assert_eq!(
        decide(&shamir_intent(2), &obs),
        vec![Action::Stop(StopReason::KeysWithoutInitializedPods)]
    );
}

#[test]
fn an_initialized_leftover_pod_outside_the_desired_set_still_prevents_init() {
    // vault-3 was scaled away but its pod still runs with initialized data.
    let obs = observe(
        vec![
            node("vault-0", NodeState::Uninitialized, SHAMIR()),
            node("vault-1", NodeState::Uninitialized, SHAMIR()),
            node("vault-2", NodeState::Uninitialized, SHAMIR()),
            node("vault-3", sealed(0), SHAMIR()),
        ],
        KeysState::Missing,
        None,
    );
    assert_eq!(
        decide(&shamir_intent(3), &obs),
        vec![Action::Stop(StopReason::KeysMissing)]
    );
}

#[test]
fn new_pods_of_a_scale_up_wait_for_retry_join_then_get_unsealed() {
    let joining = observe(
        vec![
            node("vault-0", NodeState::Active, SHAMIR()),
            node("vault-1", NodeState::Standby, SHAMIR()),
            node("vault-2", NodeState::Standby, SHAMIR()),
            node("vault-3", NodeState::Uninitialized, SHAMIR()),
            node("vault-4", sealed(0), SHAMIR()),
        ],
        unseal_keys(),
        healthy_raft(),
    );
    let actions = decide(&shamir_intent(5), &joining);
    never_inits(&actions);
    assert_eq!(
        actions,
        vec![
            Action::Wait(WaitReason::JoiningRaft(pod("vault-3"))),
            Action::Unseal {
                pod: pod("vault-4"),
                reset_first: false,
                rejoin: None,
            },
        ]
    );
}

#[test]
fn non_voters_are_reported_as_waiting_for_promotion() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Active, SHAMIR()),
            node("vault-1", NodeState::Standby, SHAMIR()),
        ],
        unseal_keys(),
        raft(&[("vault-0", true), ("vault-1", false)]),
    );
    assert_eq!(
        decide(&shamir_intent(2), &obs),
        vec![Action::Wait(WaitReason::PromotionPending("vault-1".into()))]
    );
}

#[test]
fn an_active_node_still_applying_its_log_is_waited_for() {
    let healthy = || {
        observe(
            vec![
                node("vault-0", NodeState::Active, SHAMIR()),
                node("vault-1", NodeState::Standby, SHAMIR()),
                node("vault-2", NodeState::Standby, SHAMIR()),
            ],
            unseal_keys(),
            healthy_raft(),
        )
    };
    let with_indexes = |committed: u64, applied: u64| {
        let mut obs = healthy();
        if let Some(leader) = obs.leader.as_mut() {
            leader.raft_committed_index = Some(committed);
            leader.raft_applied_index = Some(applied);
        }
        decide(&shamir_intent(3), &obs)
    };
    // Replaying after an election: wait, naming both indexes.
    assert_eq!(
        with_indexes(5_000, 1_200),
        vec![Action::Wait(WaitReason::LeaderCatchingUp {
            pod: pod("vault-0"),
            committed: 5_000,
            applied: 1_200,
        })]
    );
    // A few entries apart under writes is caught up; so is equal.
    assert_eq!(with_indexes(5_000, 5_000 - LEADER_APPLY_SLACK), vec![]);
    assert_eq!(with_indexes(5_000, 5_000), vec![]);
    assert_eq!(
        with_indexes(5_000, 5_000 - LEADER_APPLY_SLACK - 1).len(),
        1,
        "one entry past the slack is still catching up"
    );

    // No answer from sys/leader, or one that says another node leads: not confirmed.
    let mut silent = healthy();
    silent.leader = None;
    assert_eq!(
        decide(&shamir_intent(3), &silent),
        vec![Action::Wait(WaitReason::LeaderUnconfirmed(pod("vault-0")))]
    );
    let mut deposed = healthy();
    if let Some(leader) = deposed.leader.as_mut() {
        leader.is_self = false;
    }
    assert_eq!(
        decide(&shamir_intent(3), &deposed),
        vec![Action::Wait(WaitReason::LeaderUnconfirmed(pod("vault-0")))]
    );
}

#[test]
fn bootstrap_runs_through_the_active_pod_once_needed() {
    let mut obs = observe(
        vec![
            node("vault-0", NodeState::Active, SHAMIR()),
            node("vault-1", NodeState::Standby, SHAMIR()),
        ],
        unseal_keys(),
        raft(&[("vault-0", true), ("vault-1", true)]),
    );
    obs.bootstrap = BootstrapState::Needed;
    assert_eq!(
        decide(&shamir_intent(2), &obs),
        vec![Action::Bootstrap {
            via: pod("vault-0")
        }]
    );
    obs.bootstrap = BootstrapState::Done;
    assert_eq!(decide(&shamir_intent(2), &obs), vec![]);
}

#[test]
fn no_active_pod_means_no_raft_change_and_no_bootstrap() {
    let mut obs = observe(
        vec![
            node("vault-0", NodeState::Standby, SHAMIR()),
            node("vault-1", NodeState::Standby, SHAMIR()),
        ],
        unseal_keys(),
        raft(&[("vault-0", true), ("vault-1", true), ("vault-2", true)]),
    );
    obs.bootstrap = BootstrapState::Needed;
    assert_eq!(
        decide(&shamir_intent(2), &obs),
        vec![Action::Wait(WaitReason::NoActiveNode)]
    );
}

#[test]
fn pods_of_two_different_clusters_stop_everything() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Active, SHAMIR()).with_cluster_id("cluster-a"),
            node("vault-1", NodeState::Active, SHAMIR()).with_cluster_id("cluster-b"),
        ],
        unseal_keys(),
        None,
    );
    assert!(
        matches!(decide(&shamir_intent(2), &obs).as_slice(), [Action::Stop(StopReason::SplitBrain(ids))] if ids.len() == 2)
    );
}

#[test]
fn a_seal_other_than_the_intended_one_stops_before_init() {
    let obs = observe(
        vec![node("vault-0", NodeState::Uninitialized, TRANSIT())],
        KeysState::Missing,
        None,
    );
    assert!(matches!(
        decide(&shamir_intent(1), &obs).as_slice(),
        [Action::Stop(StopReason::SealMismatch { .. })]
    ));
}

#[test]
fn stored_keys_of_the_wrong_kind_are_not_used() {
    let obs = observe(
        vec![node("vault-0", sealed(0), SHAMIR())],
        recovery_keys(),
        None,
    );
    assert!(matches!(
        decide(&shamir_intent(1), &obs).as_slice(),
        [Action::Stop(StopReason::KeysDoNotMatchSeal { .. })]
    ));
}

#[test]
fn stored_keys_with_another_threshold_are_not_used() {
    let obs = observe(
        vec![node(
            "vault-0",
            NodeState::Sealed {
                progress: 0,
                threshold: 2,
            },
            SHAMIR(),
        )],
        unseal_keys(),
        None,
    );
    assert!(matches!(
        decide(&shamir_intent(1), &obs).as_slice(),
        [Action::Stop(StopReason::ThresholdMismatch {
            stored: 3,
            reported: 2,
            ..
        })]
    ));
}

#[test]
fn intent_validation_names_the_field_and_the_fix() {
    let cases: Vec<(Vec<PodName>, SealIntent, InitMode, &str)> = vec![
        (
            vec![],
            SealIntent::Shamir {
                shares: 5,
                threshold: 3,
            },
            InitMode::Operator,
            "replicas",
        ),
        (
            pods(3),
            SealIntent::Shamir {
                shares: 3,
                threshold: 5,
            },
            InitMode::Operator,
            "keyThreshold",
        ),
        (
            pods(3),
            SealIntent::Shamir {
                shares: 5,
                threshold: 3,
            },
            InitMode::SelfInit,
            "init.mode",
        ),
        (
            vec![pod("vault-0"), pod("vault-0")],
            SealIntent::Shamir {
                shares: 5,
                threshold: 3,
            },
            InitMode::Operator,
            "pods",
        ),
    ];
    for (pods, seal, mode, field) in cases {
        let err = ClusterIntent::new(pods, seal, mode)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(field), "{field}: {err}");
    }
}

fn joining(intent: ClusterIntent) -> ClusterIntent {
    intent.with_join(RaftJoin {
        scheme: "https".into(),
        domain: "vault-internal".into(),
        port: 8200,
    })
}

#[test]
fn the_join_address_is_the_one_retry_join_uses() {
    let join = RaftJoin {
        scheme: "https".into(),
        domain: "vault-internal".into(),
        port: 8200,
    };
    assert_eq!(
        join.leader_api_addr(&pod("vault-2")),
        "https://vault-2.vault-internal:8200"
    );
}

#[test]
fn with_explicit_joins_a_new_pod_joins_the_active_node_at_once_and_a_half_joined_one_rejoins() {
    // vault-3 is new; vault-4 joined earlier but its unseal never completed (it is
    // initialized, sealed, and not in the configuration); vault-2 restarted (a member).
    let obs = observe(
        vec![
            node("vault-0", NodeState::Active, SHAMIR()),
            node("vault-1", NodeState::Standby, SHAMIR()),
            node("vault-2", sealed(0), SHAMIR()),
            node("vault-3", NodeState::Uninitialized, SHAMIR()),
            node("vault-4", sealed(0), SHAMIR()),
        ],
        unseal_keys(),
        healthy_raft(),
    );
    let actions = decide(&joining(shamir_intent(5)), &obs);
    never_inits(&actions);
    assert_eq!(
        actions,
        vec![
            Action::Unseal {
                pod: pod("vault-2"),
                reset_first: false,
                rejoin: None,
            },
            Action::Join {
                pod: pod("vault-3"),
                leader: pod("vault-0"),
            },
            Action::Unseal {
                pod: pod("vault-4"),
                reset_first: true,
                rejoin: Some(pod("vault-0")),
            },
        ]
    );
}

#[test]
fn without_a_desired_active_node_a_new_pod_waits_for_retry_join() {
    for (case, nodes) in [
        (
            "no active node",
            vec![
                node("vault-0", NodeState::Standby, SHAMIR()),
                node("vault-1", NodeState::Uninitialized, SHAMIR()),
            ],
        ),
        (
            "the active node is leaving",
            vec![
                node("vault-0", NodeState::Standby, SHAMIR()),
                node("vault-1", NodeState::Uninitialized, SHAMIR()),
                node("vault-2", NodeState::Active, SHAMIR()),
            ],
        ),
    ] {
        let obs = observe(nodes, unseal_keys(), None);
        let actions = decide(&joining(shamir_intent(2)), &obs);
        assert!(
            actions.contains(&Action::Wait(WaitReason::JoiningRaft(pod("vault-1")))),
            "{case}: {actions:?}"
        );
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Join { .. })),
            "{case}: {actions:?}"
        );
    }
}

#[test]
fn an_auto_unseal_pod_is_joined_and_left_to_unseal_itself() {
    let obs = observe(
        vec![
            node("vault-0", NodeState::Active, TRANSIT()),
            node("vault-1", NodeState::Uninitialized, TRANSIT()),
        ],
        recovery_keys(),
        raft(&[("vault-0", true)]),
    );
    assert_eq!(
        decide(&joining(auto_intent(2, InitMode::Operator)), &obs),
        vec![Action::Join {
            pod: pod("vault-1"),
            leader: pod("vault-0"),
        }]
    );
}

#[test]
fn an_unsealed_pod_outside_raft_is_reset_only_once_confirmed() {
    let mut obs = observe(
        vec![
            node("vault-0", NodeState::Active, SHAMIR()),
            node("vault-1", NodeState::Standby, SHAMIR()),
            node("vault-2", NodeState::Standby, SHAMIR()),
        ],
        unseal_keys(),
        raft(&[("vault-0", true), ("vault-1", true)]),
    );
    let intent = joining(shamir_intent(3));
    assert_eq!(
        decide(&intent, &obs),
        vec![Action::Wait(WaitReason::NotRaftMember(pod("vault-2")))]
    );
    obs.stale_data.insert(pod("vault-2"));
    assert_eq!(
        decide(&intent, &obs),
        vec![Action::ResetNode {
            pod: pod("vault-2")
        }]
    );
    // Without the configuration (it could not be read) nothing is said about membership.
    obs.raft = None;
    assert_eq!(
        decide(&intent, &obs),
        vec![Action::Wait(WaitReason::RaftConfigurationUnknown)]
    );
}
