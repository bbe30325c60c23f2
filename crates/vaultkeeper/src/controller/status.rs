//! What `kubectl get vc` and `kubectl describe vc` say: the status a reconcile pass
//! writes, computed by a pure function from what the pass observed.
//!
//! Conditions follow the kstatus conventions: `observedGeneration` says which spec the
//! status describes; `Ready` is True only when the cluster is what the spec asks for;
//! `Progressing` is True while the operator works towards it; `Degraded` is True when a
//! person must act. A condition's `lastTransitionTime` moves only when its status changes,
//! so a pass that observes the same thing computes the same status and writes nothing.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use vaultkeeper_api::{
    InitializedWith, InvalidSpec, NodeStatus, OperationStatus, Phase, RaftRole, RaftStatus,
    TlsStatus, VaultClusterStatus, condition,
};
use vaultkeeper_vault::decide::{NodeState, StopReason, WaitReason};
use vaultkeeper_vault::lifecycle::PassReport;

/// A pod as Kubernetes reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    /// Pod name.
    pub name: String,
    /// The pod's Ready condition.
    pub ready: bool,
    /// It runs the StatefulSet's current revision.
    pub up_to_date: bool,
}

/// Everything the status is computed from.
pub struct StatusInputs<'a> {
    /// `metadata.generation` of the VaultCluster.
    pub generation: Option<i64>,
    /// The status before this pass (for transition times and what other parts own).
    pub previous: Option<&'a VaultClusterStatus>,
    /// The clock value of this pass.
    pub now: jiff::Timestamp,
    /// Pods the spec asks for.
    pub desired_replicas: i32,
    /// Why the spec is invalid, when it is.
    pub invalid: Option<&'a InvalidSpec>,
    /// The pods that exist.
    pub pods: &'a [PodView],
    /// The lifecycle pass, when one ran.
    pub pass: Option<&'a PassReport>,
    /// Whether bootstrap is applied.
    pub bootstrapped: bool,
    /// Certificate expiry, when known.
    pub tls: Option<TlsStatus>,
    /// Why TLS is not ready, when it is not.
    pub tls_problem: Option<String>,
    /// The disruptive operation under way.
    pub operation: Option<OperationStatus>,
    /// Something the operator is waiting for besides the lifecycle (a rollout step, a
    /// dependency), in a sentence.
    pub waiting_for: Option<String>,
    /// Something only a person can fix, with its reason (Degraded says so).
    pub needs_person: Option<(&'static str, String)>,
    /// Failures of this pass that a person should see (already free of secrets).
    pub errors: Vec<String>,
    /// The spec's fields that are fixed once the cluster is initialized, as they are now:
    /// recorded in `status.initializedWith` the first time the cluster is seen initialized.
    /// `None` keeps what was recorded.
    pub fixed: Option<InitializedWith>,
}

struct Cond {
    type_: &'static str,
    status: bool,
    reason: String,
    message: String,
}

impl Cond {
    fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn role(node_id: &str, pass: Option<&PassReport>) -> Option<RaftRole> {
    let raft = pass?.observation.raft.as_ref()?;
    Some(match raft.servers.iter().find(|s| s.node_id == node_id) {
        Some(s) if s.leader => RaftRole::Leader,
        Some(s) if s.voter => RaftRole::Follower,
        Some(_) => RaftRole::NonVoter,
        None => RaftRole::NotMember,
    })
}

fn wait_sentence(wait: &WaitReason) -> String {
    match wait {
        WaitReason::PodsUnreachableBeforeInit(pods) => format!(
            "waiting for every pod to answer before initializing: {} not yet",
            pods.iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        WaitReason::PodUnreachable(pod) => format!("pod {} does not answer", pod.as_str()),
        WaitReason::AwaitingSelfInitialization => "waiting for OpenBao to initialize itself".into(),
        WaitReason::JoiningRaft(pod) => format!("pod {} is joining raft", pod.as_str()),
        WaitReason::AutoUnsealPending(pod) => {
            format!(
                "pod {} is sealed and waiting for its auto-unseal backend",
                pod.as_str()
            )
        }
        WaitReason::NoActiveNode => "no active node yet (leader election)".into(),
        WaitReason::SeveralActiveNodes(pods) => format!(
            "several pods claim to be active: {}",
            pods.iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        WaitReason::RaftConfigurationUnknown => {
            "the raft configuration could not be read yet".into()
        }
        WaitReason::PromotionPending(id) => {
            format!("{id} is a raft non-voter until autopilot promotes it")
        }
        WaitReason::NotRaftMember(pod) => format!(
            "pod {} is unsealed but not a member of raft (its volume holds a removed peer's data); its data is reset if that is still so at the next look",
            pod.as_str()
        ),
        WaitReason::LeaderCatchingUp {
            pod,
            committed,
            applied,
        } => format!(
            "active pod {} has applied raft index {applied} of {committed} committed; it serves reads once caught up",
            pod.as_str()
        ),
        WaitReason::LeaderUnconfirmed(pod) => format!(
            "active pod {} has not confirmed through sys/leader that it leads",
            pod.as_str()
        ),
    }
}

fn stop_sentence(stop: &StopReason) -> String {
    match stop {
        StopReason::KeysMissing => "Vault is initialized but the keys Secret holds no init output; vaultkeeper will never initialize again and leaves the cluster alone. Restore the keys Secret from your copy of the shares (see docs/restore-runbook.md); for a cluster initialized by hand (a Vault Helm chart install), write its key record into the keys Secret as docs/custody.md (\"write the key record by hand\") shows".into(),
        StopReason::InitAnswerUnreadable => format!("the keys Secret holds Vault's init answer exactly as it arrived (key {}), but it is not a complete set of keys, so vaultkeeper cannot unseal with it and will never initialize again. Read it and write the key record by hand as docs/custody.md (\"An unreadable init answer\") shows; until then nothing happens to this cluster", crate::custody::RAW_INIT_KEY),
        StopReason::KeysWithoutInitializedPods => "the keys Secret holds init output but every pod is uninitialized: the data volumes are gone. vaultkeeper will not initialize over keys a restore may need; restore from a backup, or delete the keys Secret to start a new, empty cluster".into(),
        StopReason::KeysDoNotMatchSeal { stored, reported } => format!("the keys Secret holds {stored:?} shares but the pods report a {reported:?} seal; these are not this cluster's keys"),
        StopReason::ThresholdMismatch { pod, stored, reported } => format!("pod {} wants {reported} shares to unseal but the keys Secret holds a threshold of {stored}: these are not its keys", pod.as_str()),
        StopReason::SealMismatch { pod, reported } => format!("pod {} reports a {reported:?} seal, not the one spec.unseal asks for; seal migration is not automated", pod.as_str()),
        StopReason::SplitBrain(ids) => format!("pods report different cluster ids ({}): two clusters where there should be one", ids.join(", ")),
    }
}

/// What `status.initializedWith` says: what was recorded, never rewritten; else, once the
/// cluster is initialized, the fixed fields as they are now.
fn initialized_with(
    previous: Option<&VaultClusterStatus>,
    initialized: bool,
    fixed: Option<&InitializedWith>,
) -> Option<InitializedWith> {
    previous
        .and_then(|p| p.initialized_with.clone())
        .or_else(|| fixed.filter(|_| initialized).cloned())
}

/// Computes the status.
pub fn compute(inputs: &StatusInputs<'_>) -> VaultClusterStatus {
    let previous = inputs.previous;
    let mut status = VaultClusterStatus {
        observed_generation: inputs.generation,
        backup: previous.and_then(|p| p.backup.clone()),
        snapshot: previous.and_then(|p| p.snapshot.clone()),
        metrics_token: previous.and_then(|p| p.metrics_token.clone()),
        keys: previous.and_then(|p| p.keys.clone()),
        tls: inputs.tls.clone(),
        operation: inputs.operation.clone(),
        bootstrapped: inputs.bootstrapped,
        replicas: i32::try_from(inputs.pods.len()).unwrap_or(i32::MAX),
        ..VaultClusterStatus::default()
    };
    let mut conditions = Vec::new();

    if let Some(invalid) = inputs.invalid {
        let message = invalid.to_string();
        conditions.push(Cond::new(
            condition::SPEC_VALID,
            false,
            "InvalidSpec",
            message.clone(),
        ));
        conditions.push(Cond::new(
            condition::READY,
            false,
            "InvalidSpec",
            message.clone(),
        ));
        conditions.push(Cond::new(condition::DEGRADED, true, "InvalidSpec", message));
        conditions.push(Cond::new(
            condition::PROGRESSING,
            false,
            "InvalidSpec",
            "nothing is changed until the spec is fixed",
        ));
        status.phase = Some(Phase::Blocked);
        // What was observed before stays visible.
        if let Some(previous) = previous {
            status.initialized = previous.initialized;
            status.initialized_with = previous.initialized_with.clone();
            status.nodes = previous.nodes.clone();
        }
        status.conditions = finish(conditions, previous, inputs.generation, inputs.now);
        return status;
    }
    conditions.push(Cond::new(
        condition::SPEC_VALID,
        true,
        "Valid",
        "the spec passed validation",
    ));

    let pods_by_name: BTreeMap<&str, &PodView> =
        inputs.pods.iter().map(|p| (p.name.as_str(), p)).collect();
    let nodes = inputs
        .pass
        .map(|p| p.observation.nodes.as_slice())
        .unwrap_or_default();
    let mut sealed = Vec::new();
    let mut unsealed = 0;
    let mut ready = 0;
    let mut initialized = false;
    let mut actives = Vec::new();
    let mut versions: Vec<String> = Vec::new();
    for node in nodes {
        let name = node.pod.as_str();
        let pod = pods_by_name.get(name);
        let (reachable, is_init, is_sealed) = match &node.state {
            NodeState::Unreachable { .. } => (false, false, false),
            NodeState::Uninitialized => (true, false, false),
            NodeState::Sealed { .. } => (true, true, true),
            NodeState::Standby => (true, true, false),
            NodeState::Active => (true, true, false),
        };
        initialized |= is_init;
        if is_sealed {
            sealed.push(name.to_owned());
        }
        if reachable && is_init && !is_sealed {
            unsealed += 1;
        }
        if node.state == NodeState::Active {
            actives.push(name.to_owned());
        }
        if pod.is_some_and(|p| p.ready) && reachable && is_init && !is_sealed {
            ready += 1;
        }
        if let Some(v) = &node.version {
            versions.push(v.clone());
        }
        if pod.is_some() {
            status.nodes.push(NodeStatus {
                name: name.to_owned(),
                reachable,
                initialized: is_init,
                sealed: is_sealed,
                raft_role: role(name, inputs.pass),
                version: node.version.clone(),
                up_to_date: pod.is_some_and(|p| p.up_to_date),
            });
        }
    }
    // Keep the lifecycle's knowledge when this pass did not run it (e.g. init in progress).
    if inputs.pass.is_none()
        && let Some(previous) = previous
    {
        initialized = previous.initialized;
    }
    status.initialized = initialized;
    status.initialized_with = initialized_with(previous, initialized, inputs.fixed.as_ref());
    status.unsealed_replicas = unsealed;
    status.sealed_replicas = i32::try_from(sealed.len()).unwrap_or(i32::MAX);
    status.ready_replicas = ready;
    status.active_pod = (actives.len() == 1).then(|| actives[0].clone());
    versions.sort_by(|a, b| compare_versions(a, b));
    status.version = versions.first().cloned();
    if let Some(raft) = inputs.pass.and_then(|p| p.observation.raft.as_ref()) {
        status.raft = Some(RaftStatus {
            leader: raft
                .servers
                .iter()
                .find(|s| s.leader)
                .map(|s| s.node_id.clone()),
            voters: raft
                .servers
                .iter()
                .filter(|s| s.voter)
                .map(|s| s.node_id.clone())
                .collect(),
            non_voters: raft
                .servers
                .iter()
                .filter(|s| !s.voter)
                .map(|s| s.node_id.clone())
                .collect(),
            failure_tolerance: None,
            healthy: None,
        });
    }

    let stop = inputs.pass.and_then(PassReport::stop_reason);
    let waits: Vec<String> = inputs
        .pass
        .map(|p| p.waits().into_iter().map(wait_sentence).collect())
        .unwrap_or_default();
    let desired = usize::try_from(inputs.desired_replicas).unwrap_or(0);
    let all_voters = status
        .raft
        .as_ref()
        .is_some_and(|r| r.voters.len() >= desired && r.non_voters.is_empty());

    conditions.push(if initialized {
        Cond::new(
            condition::INITIALIZED,
            true,
            "Initialized",
            "Vault is initialized",
        )
    } else {
        Cond::new(
            condition::INITIALIZED,
            false,
            "NotInitialized",
            "Vault is not initialized yet",
        )
    });
    conditions.push(
        if sealed.is_empty() && usize::try_from(unsealed).unwrap_or(0) >= desired {
            Cond::new(
                condition::UNSEALED,
                true,
                "AllUnsealed",
                "every pod is unsealed",
            )
        } else if !sealed.is_empty() {
            Cond::new(
                condition::UNSEALED,
                false,
                "PodsSealed",
                format!("sealed: {}", sealed.join(", ")),
            )
        } else {
            Cond::new(
                condition::UNSEALED,
                false,
                "PodsNotUnsealed",
                format!("{unsealed} of {desired} pods unsealed"),
            )
        },
    );

    let converged = stop.is_none()
        && inputs.errors.is_empty()
        && waits.is_empty()
        && inputs.waiting_for.is_none()
        && usize::try_from(ready).unwrap_or(0) >= desired
        && inputs.pods.len() == desired
        && status.active_pod.is_some()
        && all_voters;

    let progress_message = inputs
        .waiting_for
        .clone()
        .or_else(|| waits.first().cloned())
        .unwrap_or_else(|| format!("{ready} of {desired} pods ready"));

    if let Some(stop) = stop {
        let message = stop_sentence(stop);
        conditions.push(Cond::new(
            condition::READY,
            false,
            stop.reason(),
            message.clone(),
        ));
        conditions.push(Cond::new(condition::DEGRADED, true, stop.reason(), message));
        conditions.push(Cond::new(
            condition::PROGRESSING,
            false,
            stop.reason(),
            "stopped until a person acts",
        ));
        status.phase = Some(Phase::Blocked);
    } else if converged {
        conditions.push(Cond::new(
            condition::READY,
            true,
            "Ready",
            format!(
                "{ready} of {desired} pods unsealed and voting; {} is active",
                status.active_pod.clone().unwrap_or_default()
            ),
        ));
        conditions.push(Cond::new(
            condition::DEGRADED,
            false,
            "Healthy",
            "nothing needs a person",
        ));
        conditions.push(Cond::new(
            condition::PROGRESSING,
            false,
            "Converged",
            "the cluster is what the spec asks for",
        ));
        status.phase = Some(Phase::Ready);
    } else {
        let reason = if !inputs.errors.is_empty() {
            "Retrying"
        } else if inputs.operation.is_some() {
            "Updating"
        } else if !initialized {
            "Initializing"
        } else if !sealed.is_empty() {
            "Unsealing"
        } else {
            "Converging"
        };
        let message = match inputs.errors.first() {
            Some(error) => format!("{progress_message}; last error: {error}"),
            None => progress_message,
        };
        conditions.push(Cond::new(condition::READY, false, reason, message.clone()));
        conditions.push(Cond::new(
            condition::PROGRESSING,
            true,
            reason,
            message.clone(),
        ));
        // Serving with some pods unhealthy is degraded; a cluster still coming up is not:
        // only one that was Ready (or already Degraded) before can be Degraded now, so
        // `kubectl get vc` never alarms anyone during the first minute of a new cluster.
        let serving = status.active_pod.is_some();
        let was_serving =
            previous.is_some_and(|p| matches!(p.phase, Some(Phase::Ready | Phase::Degraded)));
        // Only pods that were serving count: voters of the raft configuration (this pass's,
        // else the last one seen). New pods of a scale-up, not voters yet, are progress,
        // not damage.
        let voters = status
            .raft
            .as_ref()
            .or_else(|| previous.and_then(|p| p.raft.as_ref()))
            .map(|r| r.voters.clone());
        let established_not_ready = match &voters {
            Some(voters) => nodes
                .iter()
                .filter(|n| voters.iter().any(|v| v == n.pod.as_str()))
                .any(|n| {
                    let unsealed = matches!(n.state, NodeState::Active | NodeState::Standby);
                    !(unsealed && pods_by_name.get(n.pod.as_str()).is_some_and(|p| p.ready))
                }),
            None => usize::try_from(ready).unwrap_or(0) < desired,
        };
        let degraded = inputs.needs_person.is_some()
            || (serving
                && was_serving
                && initialized
                && established_not_ready
                && inputs.operation.is_none());
        conditions.push(if let Some((reason, message)) = &inputs.needs_person {
            Cond::new(condition::DEGRADED, true, *reason, message.clone())
        } else if degraded {
            Cond::new(
                condition::DEGRADED,
                true,
                "PodsNotReady",
                format!("{ready} of {desired} pods ready; {message}"),
            )
        } else {
            Cond::new(
                condition::DEGRADED,
                false,
                "Healthy",
                "nothing needs a person",
            )
        });
        status.phase = Some(if inputs.operation.is_some() {
            Phase::Updating
        } else if nodes
            .iter()
            .all(|n| matches!(n.state, NodeState::Unreachable { .. }))
        {
            Phase::Pending
        } else if !initialized {
            Phase::Initializing
        } else if !sealed.is_empty() && status.active_pod.is_none() {
            Phase::Unsealing
        } else if degraded {
            Phase::Degraded
        } else {
            Phase::Unsealing
        });
    }
    conditions.push(match &inputs.tls_problem {
        Some(problem) => Cond::new(
            condition::TLS_READY,
            false,
            "CertificateProblem",
            problem.clone(),
        ),
        None => Cond::new(
            condition::TLS_READY,
            true,
            "Valid",
            "certificates are valid",
        ),
    });
    status.conditions = finish(conditions, previous, inputs.generation, inputs.now);
    status
}

/// The status after a pass that could not read the cluster (a Secret it refuses, an API
/// error): what earlier passes saw stays, and Ready and Progressing say what failed, so
/// `kubectl get vaultclusters` shows why nothing moves instead of an empty status. `error`
/// never carries key material (errors are built without it).
pub fn after_failed_read(
    previous: Option<&VaultClusterStatus>,
    generation: Option<i64>,
    error: &str,
    now: jiff::Timestamp,
) -> VaultClusterStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let message = format!("cannot read this cluster's state, retrying: {error}");
    let conditions = vec![
        Cond::new(condition::READY, false, "ReadFailed", message.clone()),
        Cond::new(condition::PROGRESSING, true, "ReadFailed", message),
    ];
    status.conditions = finish(conditions, previous, generation, now);
    if status.phase.is_none() {
        status.phase = Some(Phase::Pending);
    }
    status
}

/// Semantic version order, lowest first; unparsable versions sort last.
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |v: &str| -> Option<Vec<u64>> {
        v.trim_start_matches('v')
            .split(['.', '-', '+'])
            .take(3)
            .map(|p| p.parse().ok())
            .collect()
    };
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Turns computed conditions into Kubernetes conditions, keeping the previous
/// `lastTransitionTime` when the status did not change.
fn finish(
    conditions: Vec<Cond>,
    previous: Option<&VaultClusterStatus>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Vec<Condition> {
    // Extra conditions other parts of the operator own (BackupHealthy) are carried over.
    let ours: Vec<&str> = conditions.iter().map(|c| c.type_).collect();
    let mut out: Vec<Condition> = conditions
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" }.to_owned();
            let earlier = previous.and_then(|p| p.conditions.iter().find(|x| x.type_ == c.type_));
            let last_transition_time = match earlier {
                Some(e) if e.status == status => e.last_transition_time.clone(),
                _ => Time(now),
            };
            Condition {
                type_: c.type_.to_owned(),
                status,
                reason: c.reason,
                message: c.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();
    if let Some(previous) = previous {
        out.extend(
            previous
                .conditions
                .iter()
                .filter(|c| !ours.contains(&c.type_.as_str()))
                .cloned(),
        );
    }
    out
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
