//! Rolling a new pod template out, one pod at a time, which no chart or peer automates:
//! standbys first (highest ordinal first), then a step-down and the old active node last,
//! each only after the previous pod is back, unsealed and a raft voter again. A pure
//! decision over what the controller observed; the controller carries it out.

/// One pod as the rollout sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutPod {
    /// Pod name (also its raft node id).
    pub name: String,
    /// StatefulSet ordinal.
    pub ordinal: u32,
    /// The pod's `controller-revision-hash` label.
    pub revision: Option<String>,
    /// Whether the pod is being deleted already.
    pub terminating: bool,
    /// Unsealed and serving (active or standby).
    pub unsealed: bool,
    /// The active node.
    pub active: bool,
    /// A voting raft member.
    pub voter: bool,
}

/// The next step of a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStep {
    /// Every pod runs the current template.
    Done,
    /// Something must settle first; the sentence says what.
    Wait(String),
    /// Delete this standby; the StatefulSet recreates it from the new template.
    DeletePod(String),
    /// Ask the active node to step down, so it can be replaced as a standby.
    StepDown(String),
}

/// Decides the next step. `update_revision` is the StatefulSet's `status.updateRevision`;
/// `desired` the number of pods the spec asks for.
pub fn next_step(
    pods: &[RolloutPod],
    update_revision: Option<&str>,
    desired: usize,
) -> RolloutStep {
    let Some(update_revision) = update_revision else {
        return RolloutStep::Wait(
            "the StatefulSet has not reported its update revision yet".into(),
        );
    };
    let outdated: Vec<&RolloutPod> = pods
        .iter()
        .filter(|p| p.revision.as_deref() != Some(update_revision))
        .collect();
    if outdated.is_empty() {
        return RolloutStep::Done;
    }
    // One disruption at a time: everything must be back before the next pod goes.
    if let Some(p) = pods.iter().find(|p| p.terminating) {
        return RolloutStep::Wait(format!("pod {} is terminating", p.name));
    }
    if pods.len() < desired {
        return RolloutStep::Wait(format!("{} of {desired} pods exist", pods.len()));
    }
    if let Some(p) = pods.iter().find(|p| !p.unsealed) {
        return RolloutStep::Wait(format!("pod {} is not unsealed yet", p.name));
    }
    if let Some(p) = pods.iter().find(|p| !p.voter) {
        return RolloutStep::Wait(format!("pod {} is not a raft voter yet", p.name));
    }
    let actives: Vec<&RolloutPod> = pods.iter().filter(|p| p.active).collect();
    if actives.len() != 1 {
        return RolloutStep::Wait(format!(
            "{} active nodes; waiting for exactly one",
            actives.len()
        ));
    }
    // Standbys first, highest ordinal first (the StatefulSet's own order).
    let mut standbys: Vec<&&RolloutPod> = outdated.iter().filter(|p| !p.active).collect();
    standbys.sort_by_key(|p| std::cmp::Reverse(p.ordinal));
    if let Some(next) = standbys.first() {
        return RolloutStep::DeletePod(next.name.clone());
    }
    // Only the active node is left: it hands leadership over first.
    match outdated.first() {
        Some(active) if pods.len() > 1 => RolloutStep::StepDown(active.name.clone()),
        // A single pod has nobody to hand over to: replacing it is the only way.
        Some(active) => RolloutStep::DeletePod(active.name.clone()),
        None => RolloutStep::Done,
    }
}

/// How many pods the StatefulSet should keep, when that differs from the spec: during a
/// scale-down the departing pods stay until raft no longer lists them, so a departing
/// voter is removed from the configuration while it still runs and quorum is never left to
/// chance. `live` is the StatefulSet's current `spec.replicas`, `desired` the spec's;
/// `raft_peers` the node ids raft listed last (`None`: not known yet) and `initialized`
/// whether the cluster has raft state to protect at all.
pub fn statefulset_replicas(
    live: Option<i32>,
    desired: i32,
    desired_pods: &[String],
    raft_peers: Option<&[String]>,
    initialized: bool,
) -> Option<i32> {
    let live = live.filter(|live| *live > desired)?;
    let departing = match raft_peers {
        Some(peers) => peers.iter().any(|p| !desired_pods.contains(p)),
        // Before init there is no raft configuration to lose.
        None => initialized,
    };
    departing.then_some(live)
}

/// Whether the StatefulSet's reported revisions describe its current template. Not in the
/// pass that has just changed the template (the StatefulSet read before the change says
/// every pod is up to date), nor while its controller has not observed its latest
/// generation. Until then a rollout cannot be judged, and the cluster must not be called
/// Ready for the new generation.
pub fn statefulset_settled(
    changed_by_this_pass: bool,
    generation: Option<i64>,
    observed_generation: Option<i64>,
) -> bool {
    !changed_by_this_pass
        && match (generation, observed_generation) {
            (Some(generation), Some(observed)) => observed >= generation,
            (Some(_), None) => false,
            (None, _) => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_trusted_only_once_the_statefulset_controller_caught_up() {
        // (changed by this pass, generation, observed generation) → settled.
        for (changed, generation, observed, settled) in [
            (true, Some(2), Some(2), false),
            (false, Some(3), Some(2), false),
            (false, Some(3), None, false),
            (false, Some(3), Some(3), true),
            (false, None, None, true),
        ] {
            assert_eq!(
                statefulset_settled(changed, generation, observed),
                settled,
                "changed {changed} generation {generation:?} observed {observed:?}"
            );
        }
    }

    fn names(n: u32) -> Vec<String> {
        (0..n).map(|i| format!("vault-{i}")).collect()
    }

    #[test]
    fn the_statefulset_shrinks_only_once_raft_lists_no_departing_peer() {
        let three = names(3);
        let five = names(5);
        let four = names(4);
        // (live, desired, raft peers, initialized) → replicas to render.
        type Row<'a> = (Option<i32>, i32, Option<&'a [String]>, bool, Option<i32>);
        let table: [Row; 8] = [
            // Scale-down just asked for: raft still lists vault-3 and vault-4.
            (Some(5), 3, Some(&five), true, Some(5)),
            // One removed, one to go.
            (Some(5), 3, Some(&four), true, Some(5)),
            // Both removed: shrink.
            (Some(5), 3, Some(&three), true, None),
            // Raft not read yet (operator restarted mid-way): hold.
            (Some(5), 3, None, true, Some(5)),
            // Never initialized: nothing to protect.
            (Some(5), 3, None, false, None),
            // Scale-up and steady state: the spec decides.
            (Some(3), 5, Some(&three), true, None),
            (Some(3), 3, Some(&three), true, None),
            // No StatefulSet yet.
            (None, 3, None, false, None),
        ];
        for (live, desired, peers, initialized, want) in table {
            let pods = names(u32::try_from(desired).unwrap_or(0));
            assert_eq!(
                statefulset_replicas(live, desired, &pods, peers, initialized),
                want,
                "live {live:?} desired {desired} peers {peers:?} initialized {initialized}"
            );
        }
    }

    fn pod(ordinal: u32, revision: &str, active: bool) -> RolloutPod {
        RolloutPod {
            name: format!("vault-{ordinal}"),
            ordinal,
            revision: Some(revision.to_owned()),
            terminating: false,
            unsealed: true,
            active,
            voter: true,
        }
    }

    #[test]
    fn nothing_to_do_when_every_pod_runs_the_update_revision() {
        let pods = [
            pod(0, "new", true),
            pod(1, "new", false),
            pod(2, "new", false),
        ];
        assert_eq!(next_step(&pods, Some("new"), 3), RolloutStep::Done);
    }

    #[test]
    fn standbys_go_first_highest_ordinal_first() {
        let pods = [
            pod(0, "old", false),
            pod(1, "old", true),
            pod(2, "old", false),
        ];
        assert_eq!(
            next_step(&pods, Some("new"), 3),
            RolloutStep::DeletePod("vault-2".into())
        );
        let pods = [
            pod(0, "old", false),
            pod(1, "old", true),
            pod(2, "new", false),
        ];
        assert_eq!(
            next_step(&pods, Some("new"), 3),
            RolloutStep::DeletePod("vault-0".into())
        );
    }

    #[test]
    fn the_active_node_steps_down_before_it_is_replaced() {
        let pods = [
            pod(0, "new", false),
            pod(1, "old", true),
            pod(2, "new", false),
        ];
        assert_eq!(
            next_step(&pods, Some("new"), 3),
            RolloutStep::StepDown("vault-1".into())
        );
        // After the step-down it is an outdated standby like any other.
        let pods = [
            pod(0, "new", true),
            pod(1, "old", false),
            pod(2, "new", false),
        ];
        assert_eq!(
            next_step(&pods, Some("new"), 3),
            RolloutStep::DeletePod("vault-1".into())
        );
    }

    #[test]
    fn nothing_moves_until_the_last_replaced_pod_is_back_as_a_voter() {
        let mut pods = vec![
            pod(0, "old", true),
            pod(1, "old", false),
            pod(2, "new", false),
        ];
        pods[2].voter = false;
        assert!(
            matches!(next_step(&pods, Some("new"), 3), RolloutStep::Wait(w) if w.contains("voter"))
        );
        pods[2].voter = true;
        pods[2].unsealed = false;
        assert!(
            matches!(next_step(&pods, Some("new"), 3), RolloutStep::Wait(w) if w.contains("unsealed"))
        );
        pods[2].unsealed = true;
        pods[1].terminating = true;
        assert!(
            matches!(next_step(&pods, Some("new"), 3), RolloutStep::Wait(w) if w.contains("terminating"))
        );
        let missing = [pod(0, "old", true), pod(1, "old", false)];
        assert!(
            matches!(next_step(&missing, Some("new"), 3), RolloutStep::Wait(w) if w.contains("2 of 3"))
        );
    }

    #[test]
    fn no_active_node_or_two_of_them_means_wait() {
        let pods = [
            pod(0, "old", false),
            pod(1, "old", false),
            pod(2, "old", false),
        ];
        assert!(matches!(
            next_step(&pods, Some("new"), 3),
            RolloutStep::Wait(_)
        ));
        let pods = [
            pod(0, "old", true),
            pod(1, "old", true),
            pod(2, "old", false),
        ];
        assert!(matches!(
            next_step(&pods, Some("new"), 3),
            RolloutStep::Wait(_)
        ));
    }

    #[test]
    fn a_single_pod_cluster_replaces_its_only_pod() {
        let pods = [pod(0, "old", true)];
        assert_eq!(
            next_step(&pods, Some("new"), 1),
            RolloutStep::DeletePod("vault-0".into())
        );
    }

    #[test]
    fn unknown_update_revision_waits() {
        let pods = [pod(0, "old", true)];
        assert!(matches!(next_step(&pods, None, 1), RolloutStep::Wait(_)));
    }
}
