//! The lifecycle decision: observed state in, typed actions out. Pure: no network, no
//! clock, no randomness; everything it needs is in its arguments, so it is tested by
//! tables (see the tests at the bottom and `tests/decide_table.rs`).
//!
//! The rules, in the order they are applied:
//!
//! 1. **Keys first.** If an init answer is held in memory and not yet persisted, the only
//!    action is [`Action::PersistKeys`]. Nothing else happens until the keys are safe.
//! 2. **Never a second init, never a split brain.** Pods reporting different cluster ids,
//!    or a seal kind other than the intended one, stop everything
//!    ([`StopReason::SplitBrain`], [`StopReason::SealMismatch`]).
//! 3. **Init exactly once, only when it is provably the first time:** every desired pod
//!    answered, every pod (desired or not) reports uninitialized, and the key store is
//!    empty. Then one [`Action::Init`] on the first desired pod. An unreachable pod makes
//!    the decision wait: it may be the one pod that holds initialized data. Keys in the
//!    store with every pod uninitialized is a stop ([`StopReason::KeysWithoutInitializedPods`]):
//!    the data volumes are gone and the stored keys may be the only way to read a backup, so
//!    they must not be overwritten by a new init.
//! 4. **Initialized cluster without keys:** stop and report [`StopReason::KeysMissing`];
//!    do nothing else (for the operator-init mode; the self-init mode has no keys by design).
//! 5. **Unseal** every sealed desired pod of a Shamir cluster with the stored shares. When
//!    the pod reports unseal progress > 0, the shares already entered are reset first.
//!    Why reset rather than continue: the operator enters all threshold shares in one
//!    pass, so progress > 0 means an earlier pass died half-way or a person is typing
//!    shares. We cannot know which shares were entered; a wrong or stale share mixed in
//!    would make the whole attempt fail at the threshold, while a reset costs one call and
//!    makes the outcome depend only on the stored shares. (A person unsealing by hand
//!    while the operator manages the cluster is not a supported mix; the reset is logged.)
//!    Auto-unseal pods are never given shares: a sealed auto-unseal pod waits for its seal
//!    backend ([`WaitReason::AutoUnsealPending`]); recovery shares stay in the store.
//! 6. **Raft:** a desired pod that reports uninitialized in an initialized cluster is
//!    joined explicitly (`sys/storage/raft/join`) as soon as a desired pod is active, rather
//!    than left to `retry_join`'s back-off, and unsealed in the same action. A sealed pod
//!    missing from the raft configuration is between a join and its unseal: it asks the
//!    leader for a fresh challenge before the shares go in (a challenge from an earlier
//!    attempt or an earlier leader makes the unseal fail). An unsealed pod missing from the
//!    raft configuration holds the data of a peer removed earlier (a scale-down, then a
//!    scale-up that found the old volume): once that has been seen twice
//!    ([`Observation::stale_data`]), its data is reset ([`Action::ResetNode`]), which is
//!    safe because nothing in it is the cluster's any more. Peers whose node id is no
//!    desired pod are removed, one per pass, through the active node; if the active node
//!    itself is not desired it steps down first. Removing a departed peer never lowers the
//!    number of live voters, so it never costs quorum.
//! 7. **Serving, not just elected.** The cluster is converged only when the active node
//!    says through `sys/leader` that it leads and has applied its log up to
//!    [`LEADER_APPLY_SLACK`] entries of what is committed
//!    ([`WaitReason::LeaderCatchingUp`], [`WaitReason::LeaderUnconfirmed`]): a leader
//!    elected a moment ago may still be replaying, and a read through it would miss the
//!    latest writes.
//! 8. **Bootstrap** once an active node exists and the keys (or, in self-init mode, the
//!    operator's own login) make it possible.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::{Error, Result};
use crate::keys::{KeyKind, KeysSummary};
use crate::node::{InitRequest, LeaderStatus, PodName, RaftConfiguration, SealType};

/// How many committed raft entries the active node may still have to apply and count as
/// caught up. Under writes the two indexes are read a moment apart and differ by a few
/// entries; a leader replaying its log after an election is thousands behind.
pub const LEADER_APPLY_SLACK: u64 = 32;

/// How the cluster is sealed, as the VaultCluster asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealIntent {
    /// Shamir: init returns unseal shares; the operator unseals after every restart.
    Shamir {
        /// Unseal shares.
        shares: u8,
        /// Shares needed.
        threshold: u8,
    },
    /// An auto-unseal seal (transit, KMS, static): init returns recovery shares; pods
    /// unseal themselves.
    Auto {
        /// Recovery shares.
        recovery_shares: u8,
        /// Recovery threshold.
        recovery_threshold: u8,
    },
}

/// Who initializes the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitMode {
    /// The operator calls `sys/init` once and keeps the output.
    Operator,
    /// OpenBao initializes itself from `initialize` stanzas in its configuration
    /// (OpenBao >= 2.4, auto-unseal only). The operator never calls init, expects no keys,
    /// and only observes and bootstraps, logging in with the identity the stanzas created.
    SelfInit,
}

/// How a joining node reaches the leader: `<scheme>://<pod>.<domain>:<port>`, the same
/// address the rendered `retry_join` stanzas use, so the certificate the leader presents
/// carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftJoin {
    /// `https` (or `http` with TLS disabled).
    pub scheme: String,
    /// What follows the pod name in its host name (the headless Service).
    pub domain: String,
    /// The API port.
    pub port: u16,
}

impl RaftJoin {
    /// The API address of `leader` as a joining pod reaches it.
    pub fn leader_api_addr(&self, leader: &PodName) -> String {
        format!(
            "{}://{}.{}:{}",
            self.scheme,
            leader.as_str(),
            self.domain,
            self.port
        )
    }
}

/// What the cluster should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterIntent {
    pods: Vec<PodName>,
    seal: SealIntent,
    init_mode: InitMode,
    join: Option<RaftJoin>,
}

impl ClusterIntent {
    /// Validates and builds the intent. `pods` are the desired pods in ordinal order
    /// (`vault-0`, `vault-1`, …); the first is where init happens.
    pub fn new(pods: Vec<PodName>, seal: SealIntent, init_mode: InitMode) -> Result<Self> {
        if pods.is_empty() {
            return Err(Error::invalid(
                "replicas",
                "no pods",
                "set replicas to 1, 3, 5 or 7",
            ));
        }
        let unique: BTreeSet<&PodName> = pods.iter().collect();
        if unique.len() != pods.len() {
            return Err(Error::invalid(
                "pods",
                "a pod name appears twice",
                "give each pod once",
            ));
        }
        let intent = ClusterIntent {
            pods,
            seal,
            init_mode,
            join: None,
        };
        intent.init_request().validate()?;
        if init_mode == InitMode::SelfInit && matches!(seal, SealIntent::Shamir { .. }) {
            return Err(Error::invalid(
                "init.mode",
                "self-initialization needs an auto-unseal seal (OpenBao generates no unseal keys for it)",
                "configure an auto-unseal seal (transit, a KMS or static) or use the Operator init mode",
            ));
        }
        Ok(intent)
    }

    /// Joins new pods explicitly, through these addresses. Without it a new pod is left
    /// to `retry_join`.
    pub fn with_join(mut self, join: RaftJoin) -> Self {
        self.join = Some(join);
        self
    }

    /// How new pods are joined, when they are joined explicitly.
    pub fn join(&self) -> Option<&RaftJoin> {
        self.join.as_ref()
    }

    /// The desired pods.
    pub fn pods(&self) -> &[PodName] {
        &self.pods
    }

    /// The seal.
    pub fn seal(&self) -> SealIntent {
        self.seal
    }

    /// The init mode.
    pub fn init_mode(&self) -> InitMode {
        self.init_mode
    }

    /// The `sys/init` request this intent makes.
    pub fn init_request(&self) -> InitRequest {
        match self.seal {
            SealIntent::Shamir { shares, threshold } => InitRequest::Shamir { shares, threshold },
            SealIntent::Auto {
                recovery_shares,
                recovery_threshold,
            } => InitRequest::Recovery {
                shares: recovery_shares,
                threshold: recovery_threshold,
            },
        }
    }

    fn wants_auto_seal(&self) -> bool {
        matches!(self.seal, SealIntent::Auto { .. })
    }
}

/// What one pod said about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// It answered nothing (down, not scheduled, network or exec failure).
    Unreachable {
        /// Why, for the report.
        reason: String,
    },
    /// Not initialized (a fresh cluster, or a new pod that has not joined raft yet).
    Uninitialized,
    /// Initialized and sealed.
    Sealed {
        /// Shares entered so far.
        progress: u8,
        /// Shares needed.
        threshold: u8,
    },
    /// Unsealed standby.
    Standby,
    /// Unsealed active node.
    Active,
}

impl NodeState {
    fn is_initialized(&self) -> bool {
        matches!(
            self,
            NodeState::Sealed { .. } | NodeState::Standby | NodeState::Active
        )
    }
}

/// One pod's observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeObservation {
    /// The pod.
    pub pod: PodName,
    /// Its state.
    pub state: NodeState,
    /// The seal kind it reports (`None` when unreachable).
    pub seal_type: Option<SealType>,
    /// The cluster id it reports, once known.
    pub cluster_id: Option<String>,
    /// The server version it reports.
    pub version: Option<String>,
}

impl NodeObservation {
    /// An observation with no seal type or cluster id (handy in tables).
    pub fn new(pod: PodName, state: NodeState) -> Self {
        NodeObservation {
            pod,
            state,
            seal_type: None,
            cluster_id: None,
            version: None,
        }
    }

    /// Sets the reported seal type.
    pub fn with_seal(mut self, seal_type: SealType) -> Self {
        self.seal_type = Some(seal_type);
        self
    }

    /// Sets the reported cluster id.
    pub fn with_cluster_id(mut self, cluster_id: impl Into<String>) -> Self {
        self.cluster_id = Some(cluster_id.into());
        self
    }
}

/// What the key store holds, as far as the decision needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysState {
    /// The store holds nothing.
    Missing,
    /// The store holds init output.
    Stored(KeysSummary),
    /// Init answered; the output is only in memory because persisting it failed.
    PendingWrite(KeysSummary),
    /// The init answer is saved as it arrived but cannot be read into keys.
    Unreadable,
}

/// Whether bootstrap has been applied for the current inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootstrapState {
    /// Applied; nothing to do.
    Done,
    /// Not applied yet (or its inputs changed).
    Needed,
    /// Not wanted.
    Disabled,
}

/// Everything observed in one pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Every pod observed: the desired ones and any others that still exist (pods left
    /// over from a scale-down). A desired pod with no entry counts as unreachable.
    pub nodes: Vec<NodeObservation>,
    /// The key store.
    pub keys: KeysState,
    /// Raft configuration from the active node, when it could be read.
    pub raft: Option<RaftConfiguration>,
    /// Bootstrap state.
    pub bootstrap: BootstrapState,
    /// Desired pods that were unsealed yet absent from the active node's raft
    /// configuration in two observations some seconds apart: each holds the data of a
    /// peer removed earlier. (One sighting is not enough to act on: see
    /// [`crate::lifecycle`].)
    pub stale_data: BTreeSet<PodName>,
    /// `sys/leader` as the active node answered it, when there was one active node and it
    /// answered.
    pub leader: Option<LeaderStatus>,
}

/// Why the decision waits (nothing is wrong that the operator could fix now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// Before init: some pods did not answer, so it cannot be proven that none holds an
    /// initialized cluster.
    PodsUnreachableBeforeInit(Vec<PodName>),
    /// A pod of an initialized cluster did not answer.
    PodUnreachable(PodName),
    /// Self-init mode: the server has not initialized itself yet.
    AwaitingSelfInitialization,
    /// The pod has not joined raft yet (`retry_join` is working on it).
    JoiningRaft(PodName),
    /// An auto-unseal pod is sealed: its seal backend has not answered yet.
    AutoUnsealPending(PodName),
    /// No pod is active (leader election, or quorum lost).
    NoActiveNode,
    /// More than one pod claims to be active (leadership is moving).
    SeveralActiveNodes(Vec<PodName>),
    /// The raft configuration could not be read this pass.
    RaftConfigurationUnknown,
    /// A desired pod is a raft non-voter; autopilot promotes it once it is stable.
    PromotionPending(String),
    /// A desired pod is unsealed but not in the raft configuration; seen once, so its data
    /// is reset when it is seen again ([`Action::ResetNode`]).
    NotRaftMember(PodName),
    /// The active node has not applied all that raft committed yet (it was elected a
    /// moment ago and is replaying its log).
    LeaderCatchingUp {
        /// The active pod.
        pod: PodName,
        /// Entries committed.
        committed: u64,
        /// Entries applied.
        applied: u64,
    },
    /// The active node's `sys/leader` did not answer, or did not say it leads.
    LeaderUnconfirmed(PodName),
}

/// Why the decision stops touching the cluster: a person has to look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The cluster is initialized but the key store is empty. Never init again.
    KeysMissing,
    /// The key store holds the init answer as it arrived, but it cannot be read into
    /// keys (not JSON, or missing shares or the root token). Never init again.
    InitAnswerUnreadable,
    /// The key store holds keys but every pod is uninitialized: the data is gone. A new
    /// init would replace the keys a restore may still need.
    KeysWithoutInitializedPods,
    /// The stored keys are of the other kind (unseal vs recovery) than the seal in use.
    KeysDoNotMatchSeal {
        /// What the store holds.
        stored: KeyKind,
        /// What the pod reports.
        reported: SealType,
    },
    /// The stored threshold differs from the one the pod reports: these are not its keys.
    ThresholdMismatch {
        /// The pod.
        pod: PodName,
        /// Threshold in the store.
        stored: u8,
        /// Threshold the pod reports.
        reported: u8,
    },
    /// The pod's seal is not the intended kind (Shamir vs auto-unseal).
    SealMismatch {
        /// The pod.
        pod: PodName,
        /// What it reports.
        reported: SealType,
    },
    /// Pods report different cluster ids: two clusters where there should be one.
    SplitBrain(Vec<String>),
}

impl StopReason {
    /// A stable reason string for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            StopReason::KeysMissing => "KeysMissing",
            StopReason::InitAnswerUnreadable => "InitAnswerUnreadable",
            StopReason::KeysWithoutInitializedPods => "KeysWithoutInitializedPods",
            StopReason::KeysDoNotMatchSeal { .. } => "KeysDoNotMatchSeal",
            StopReason::ThresholdMismatch { .. } => "ThresholdMismatch",
            StopReason::SealMismatch { .. } => "SealMismatch",
            StopReason::SplitBrain(_) => "SplitBrain",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::KeysMissing => write!(
                f,
                "the cluster is initialized but the keys are not in the key store; restore the keys Secret from your backup, or for a cluster initialized by hand (a Helm chart install) write its key record as docs/custody.md shows (the operator will never initialize again)"
            ),
            StopReason::InitAnswerUnreadable => write!(
                f,
                "the key store holds the init answer exactly as the server gave it, but it is not a complete set of keys; the operator will never initialize again: see docs/custody.md, \"An unreadable init answer\""
            ),
            StopReason::KeysWithoutInitializedPods => write!(
                f,
                "the key store holds keys but no pod is initialized: the data volumes look lost; restore the raft data, or move the old keys away deliberately before a new init"
            ),
            StopReason::KeysDoNotMatchSeal { stored, reported } => write!(
                f,
                "the key store holds {stored:?} shares but the pods use a {reported:?} seal; these keys belong to another seal configuration"
            ),
            StopReason::ThresholdMismatch {
                pod,
                stored,
                reported,
            } => write!(
                f,
                "pod {pod} needs {reported} shares but the stored keys have a threshold of {stored}; the key store holds another cluster's keys"
            ),
            StopReason::SealMismatch { pod, reported } => write!(
                f,
                "pod {pod} reports a {reported:?} seal, which is not the seal the cluster asks for; fix the seal configuration (seal migration is not automatic)"
            ),
            StopReason::SplitBrain(ids) => write!(
                f,
                "pods report different cluster ids {ids:?}: more than one cluster exists; separate them by hand"
            ),
        }
    }
}

/// One thing to do (or to report) this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write the in-memory init output to the key store.
    PersistKeys,
    /// Initialize the cluster through this pod.
    Init {
        /// Where.
        pod: PodName,
        /// With which share split.
        request: InitRequest,
    },
    /// Unseal this pod with the stored shares.
    Unseal {
        /// Which pod.
        pod: PodName,
        /// Discard shares already entered first (see the module docs for why).
        reset_first: bool,
        /// The pod is between a raft join and its unseal: ask this leader for a fresh
        /// join challenge first (after a reset).
        rejoin: Option<PodName>,
    },
    /// Join this uninitialized pod to raft through the active node, then (Shamir) unseal
    /// it with the stored shares; an auto-unseal pod unseals itself once joined.
    Join {
        /// The new pod.
        pod: PodName,
        /// The active node it joins.
        leader: PodName,
    },
    /// The pod holds the raft data of a peer removed earlier: discard its data volume and
    /// let the StatefulSet re-create it empty, so it joins as a new member. Carried out by
    /// the operator (it owns the volumes), not by the lifecycle.
    ResetNode {
        /// The pod.
        pod: PodName,
    },
    /// The active pod is not a desired pod: make it give up leadership first.
    StepDown {
        /// The active pod.
        pod: PodName,
    },
    /// Remove a raft peer that no desired pod owns.
    RemovePeer {
        /// The peer's node id.
        node_id: String,
        /// The active pod to send it through.
        via: PodName,
    },
    /// Apply the bootstrap (auth, policies, roles) through the active pod.
    Bootstrap {
        /// The active pod.
        via: PodName,
    },
    /// Nothing to do about this now; report it.
    Wait(WaitReason),
    /// Stop touching the cluster and report.
    Stop(StopReason),
}

/// Decides the next actions. Pure.
pub fn decide(intent: &ClusterIntent, observation: &Observation) -> Vec<Action> {
    // 1. Keys first.
    match observation.keys {
        KeysState::PendingWrite(_) => return vec![Action::PersistKeys],
        // Whatever the pods say: the saved answer is this cluster's only copy of its keys,
        // and any init now would be a second one.
        KeysState::Unreadable => return vec![Action::Stop(StopReason::InitAnswerUnreadable)],
        KeysState::Missing | KeysState::Stored(_) => {}
    }

    let desired: Vec<NodeObservation> = intent
        .pods
        .iter()
        .map(|pod| {
            observation
                .nodes
                .iter()
                .find(|n| &n.pod == pod)
                .cloned()
                .unwrap_or_else(|| {
                    NodeObservation::new(
                        pod.clone(),
                        NodeState::Unreachable {
                            reason: "not observed".into(),
                        },
                    )
                })
        })
        .collect();

    // 2. One cluster, with the intended seal.
    let cluster_ids: BTreeSet<&String> = observation
        .nodes
        .iter()
        .filter_map(|n| n.cluster_id.as_ref())
        .collect();
    if cluster_ids.len() > 1 {
        return vec![Action::Stop(StopReason::SplitBrain(
            cluster_ids.into_iter().cloned().collect(),
        ))];
    }
    for node in &observation.nodes {
        if let Some(seal) = &node.seal_type {
            // An uninitialized node's seal type is only what its config says, which is just
            // as binding: init would create keys of the wrong kind.
            if seal.is_auto() != intent.wants_auto_seal() {
                return vec![Action::Stop(StopReason::SealMismatch {
                    pod: node.pod.clone(),
                    reported: seal.clone(),
                })];
            }
        }
    }

    let initialized = observation.nodes.iter().any(|n| n.state.is_initialized());
    if !initialized {
        return decide_before_init(intent, observation, &desired);
    }
    decide_initialized(intent, observation, &desired)
}

fn decide_before_init(
    intent: &ClusterIntent,
    observation: &Observation,
    desired: &[NodeObservation],
) -> Vec<Action> {
    let unreachable: Vec<PodName> = desired
        .iter()
        .filter(|n| matches!(n.state, NodeState::Unreachable { .. }))
        .map(|n| n.pod.clone())
        .collect();
    if !unreachable.is_empty() {
        return vec![Action::Wait(WaitReason::PodsUnreachableBeforeInit(
            unreachable,
        ))];
    }
    if let KeysState::Stored(_) = observation.keys {
        return vec![Action::Stop(StopReason::KeysWithoutInitializedPods)];
    }
    match (intent.init_mode, intent.pods.first()) {
        (InitMode::Operator, Some(first)) => vec![Action::Init {
            pod: first.clone(),
            request: intent.init_request(),
        }],
        // `ClusterIntent::new` refuses an empty pod list, so `None` cannot happen.
        (InitMode::Operator, None) | (InitMode::SelfInit, _) => {
            vec![Action::Wait(WaitReason::AwaitingSelfInitialization)]
        }
    }
}

fn decide_initialized(
    intent: &ClusterIntent,
    observation: &Observation,
    desired: &[NodeObservation],
) -> Vec<Action> {
    let stored = match (intent.init_mode, observation.keys) {
        (InitMode::Operator, KeysState::Missing) => {
            return vec![Action::Stop(StopReason::KeysMissing)];
        }
        (_, KeysState::Stored(summary)) => Some(summary),
        _ => None,
    };
    if let Some(summary) = stored {
        // The kind of the stored keys must fit the seal the pods report.
        if let Some(seal) = observation.nodes.iter().find_map(|n| n.seal_type.as_ref()) {
            let fits = matches!(
                (summary.kind, seal.is_auto()),
                (KeyKind::Unseal, false) | (KeyKind::Recovery, true)
            );
            if !fits {
                return vec![Action::Stop(StopReason::KeysDoNotMatchSeal {
                    stored: summary.kind,
                    reported: seal.clone(),
                })];
            }
        }
    }

    // The node new pods join and whose raft configuration is authoritative: the one
    // active node, when it is a desired pod.
    let leader = match observation
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Active)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [one] if intent.pods.contains(&one.pod) => Some(one.pod.clone()),
        _ => None,
    };
    // Whether the pod is in that configuration (`None`: not known this pass).
    let member = |pod: &PodName| -> Option<bool> {
        leader.as_ref()?;
        let raft = observation.raft.as_ref()?;
        Some(raft.servers.iter().any(|s| s.node_id == pod.as_str()))
    };

    let mut actions = Vec::new();
    for node in desired {
        match &node.state {
            NodeState::Unreachable { .. } => {
                actions.push(Action::Wait(WaitReason::PodUnreachable(node.pod.clone())))
            }
            NodeState::Uninitialized => match (&leader, intent.join.is_some()) {
                (Some(leader), true) if *leader != node.pod => actions.push(Action::Join {
                    pod: node.pod.clone(),
                    leader: leader.clone(),
                }),
                _ => actions.push(Action::Wait(WaitReason::JoiningRaft(node.pod.clone()))),
            },
            NodeState::Sealed {
                progress,
                threshold,
            } => {
                if intent.wants_auto_seal() {
                    actions.push(Action::Wait(WaitReason::AutoUnsealPending(
                        node.pod.clone(),
                    )));
                    continue;
                }
                let Some(summary) = stored else {
                    // Shamir with no keys cannot happen past the checks above; waiting is safe.
                    continue;
                };
                if summary.threshold != *threshold {
                    return vec![Action::Stop(StopReason::ThresholdMismatch {
                        pod: node.pod.clone(),
                        stored: summary.threshold,
                        reported: *threshold,
                    })];
                }
                let rejoin = match (&leader, member(&node.pod), intent.join.is_some()) {
                    (Some(leader), Some(false), true) => Some(leader.clone()),
                    _ => None,
                };
                actions.push(Action::Unseal {
                    pod: node.pod.clone(),
                    reset_first: *progress > 0 || rejoin.is_some(),
                    rejoin,
                });
            }
            NodeState::Standby => {
                if member(&node.pod) == Some(false) {
                    actions.push(if observation.stale_data.contains(&node.pod) {
                        Action::ResetNode {
                            pod: node.pod.clone(),
                        }
                    } else {
                        Action::Wait(WaitReason::NotRaftMember(node.pod.clone()))
                    });
                }
            }
            NodeState::Active => {}
        }
    }

    let active: Vec<&NodeObservation> = observation
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Active)
        .collect();
    let active = match active.as_slice() {
        [] => {
            actions.push(Action::Wait(WaitReason::NoActiveNode));
            return actions;
        }
        [one] => *one,
        several => {
            actions.push(Action::Wait(WaitReason::SeveralActiveNodes(
                several.iter().map(|n| n.pod.clone()).collect(),
            )));
            return actions;
        }
    };
    if !intent.pods.contains(&active.pod) {
        // The leader is on its way out: move leadership to a desired pod before anything
        // that writes.
        actions.push(Action::StepDown {
            pod: active.pod.clone(),
        });
        return actions;
    }

    match &observation.raft {
        None => actions.push(Action::Wait(WaitReason::RaftConfigurationUnknown)),
        Some(raft) => {
            let departed: Vec<&str> = raft
                .servers
                .iter()
                .map(|s| s.node_id.as_str())
                .filter(|id| !intent.pods.iter().any(|p| p.as_str() == *id))
                .collect();
            // One removal per pass: one disruptive operation at a time.
            if let Some(node_id) = departed.first() {
                actions.push(Action::RemovePeer {
                    node_id: (*node_id).to_string(),
                    via: active.pod.clone(),
                });
            }
            for server in raft.servers.iter().filter(|s| !s.voter) {
                if intent.pods.iter().any(|p| p.as_str() == server.node_id) {
                    actions.push(Action::Wait(WaitReason::PromotionPending(
                        server.node_id.clone(),
                    )));
                }
            }
        }
    }

    match &observation.leader {
        Some(leader) if leader.is_self || !leader.ha_enabled => {
            if let (Some(lag), Some(committed), Some(applied)) = (
                leader.apply_lag(),
                leader.raft_committed_index,
                leader.raft_applied_index,
            ) && lag > LEADER_APPLY_SLACK
            {
                actions.push(Action::Wait(WaitReason::LeaderCatchingUp {
                    pod: active.pod.clone(),
                    committed,
                    applied,
                }));
            }
        }
        _ => actions.push(Action::Wait(WaitReason::LeaderUnconfirmed(
            active.pod.clone(),
        ))),
    }

    if observation.bootstrap == BootstrapState::Needed {
        actions.push(Action::Bootstrap {
            via: active.pod.clone(),
        });
    }
    actions
}
