//! How soon a cluster is looked at again.
//!
//! A converged cluster waits for its resync; one still converging waits the converging
//! requeue. In between, a cluster whose pods are on their way up (a pod that does not
//! answer yet, a sealed one, one not joined, a leader still catching up, a non-voter
//! autopilot is about to promote) is looked at again within a fraction of a second:
//! nothing in Kubernetes announces that a restarted OpenBao now listens, or that autopilot
//! promoted a voter, so only a quick look sees it. A pod that does not answer counts only
//! once its containers run: before that, its start is an event of its own. The pauses grow while nothing changes,
//! so a pod that stays down for good (a crash loop, a missing image) costs a pass every
//! converging requeue again after [`QUICK_LOOKS`] is spent.

use std::time::Duration;

use vaultkeeper_vault::decide::{Action as LifecycleAction, NodeState, WaitReason};
use vaultkeeper_vault::lifecycle::PassReport;

/// The pauses of the quick looks, in order; about 25 s in all.
pub(crate) const QUICK_LOOKS: [Duration; 20] = {
    let ms = Duration::from_millis;
    [
        ms(200),
        ms(200),
        ms(200),
        ms(300),
        ms(300),
        ms(400),
        ms(500),
        ms(500),
        ms(700),
        ms(700),
        ms(1000),
        ms(1000),
        ms(1500),
        ms(1500),
        ms(2000),
        ms(2000),
        ms(2500),
        ms(2500),
        ms(3000),
        ms(3000),
    ]
};

/// What this pass saw, for pacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Ready: the resync.
    Converged,
    /// Pods on their way up: a quick look.
    ComingUp,
    /// Anything else (an operation waiting for a lock, a stop, an error): the converging
    /// requeue.
    Other,
}

/// Whether the lifecycle's pass shows pods on their way up and nothing that a person or
/// a retry after an error has to settle first. `started` says whether a pod's containers
/// all run: a pod that does not answer is only about to when they do (a pod still
/// scheduling or pulling its image announces its start with an event of its own, so it
/// gets no quick looks).
pub(crate) fn coming_up(pass: &PassReport, errors: bool, started: &dyn Fn(&str) -> bool) -> bool {
    if errors || pass.stop_reason().is_some() {
        return false;
    }
    let pods_starting = pass.observation.nodes.iter().any(|n| match n.state {
        NodeState::Unreachable { .. } => started(n.pod.as_str()),
        NodeState::Sealed { .. } | NodeState::Uninitialized => true,
        NodeState::Active | NodeState::Standby => false,
    });
    let soon = pass.actions.iter().any(|a| match a {
        LifecycleAction::Wait(reason) => matches!(
            reason,
            WaitReason::JoiningRaft(_)
                | WaitReason::NoActiveNode
                | WaitReason::SeveralActiveNodes(_)
                | WaitReason::PromotionPending(_)
                | WaitReason::NotRaftMember(_)
                | WaitReason::LeaderCatchingUp { .. }
                | WaitReason::LeaderUnconfirmed(_)
                | WaitReason::AutoUnsealPending(_)
        ),
        // Something was done: its effect shows on the next look.
        _ => true,
    });
    pods_starting || soon
}

/// The pause before the next pass, and how many quick looks are spent after it.
/// `spent` counts the quick looks since the last pass that was not [`Seen::ComingUp`].
pub(crate) fn next(
    seen: Seen,
    spent: usize,
    resync: Duration,
    converging: Duration,
) -> (Duration, usize) {
    match seen {
        Seen::Converged => (resync, 0),
        Seen::Other => (converging, 0),
        Seen::ComingUp => match QUICK_LOOKS.get(spent) {
            Some(pause) => ((*pause).min(converging), spent + 1),
            None => (converging, spent),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESYNC: Duration = Duration::from_secs(300);
    const CONVERGING: Duration = Duration::from_secs(5);

    #[test]
    fn quick_looks_grow_then_fall_back_to_the_converging_requeue() {
        let mut spent = 0;
        let mut pauses = Vec::new();
        for _ in 0..QUICK_LOOKS.len() + 3 {
            let (pause, now_spent) = next(Seen::ComingUp, spent, RESYNC, CONVERGING);
            pauses.push(pause);
            spent = now_spent;
        }
        assert_eq!(pauses[0], Duration::from_millis(200));
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
        assert_eq!(pauses[QUICK_LOOKS.len()], CONVERGING);
        assert_eq!(pauses[QUICK_LOOKS.len() + 2], CONVERGING);
        let total: Duration = QUICK_LOOKS.iter().sum();
        assert!(
            total >= Duration::from_secs(20) && total <= Duration::from_secs(30),
            "{total:?}"
        );
        // Never longer than the converging requeue, even when that is set short.
        let (pause, _) = next(Seen::ComingUp, 19, RESYNC, Duration::from_millis(500));
        assert_eq!(pause, Duration::from_millis(500));
    }

    fn report(states: &[NodeState], actions: Vec<LifecycleAction>) -> PassReport {
        use vaultkeeper_vault::decide::{BootstrapState, KeysState, NodeObservation, Observation};
        use vaultkeeper_vault::node::PodName;
        let nodes = states
            .iter()
            .enumerate()
            .map(|(i, state)| {
                let pod = PodName::new(format!("vault-{i}")).expect("pod name");
                NodeObservation::new(pod, state.clone())
            })
            .collect();
        PassReport {
            observation: Observation {
                nodes,
                keys: KeysState::Missing,
                raft: None,
                bootstrap: BootstrapState::Done,
                stale_data: Default::default(),
                leader: None,
            },
            actions,
            outcomes: Vec::new(),
        }
    }

    #[test]
    fn pods_on_their_way_up_get_quick_looks_and_nothing_else_does() {
        let up = [NodeState::Active, NodeState::Standby, NodeState::Standby];
        let restarted = [
            NodeState::Active,
            NodeState::Standby,
            NodeState::Unreachable {
                reason: "connection refused".into(),
            },
        ];
        let sealed = [
            NodeState::Active,
            NodeState::Standby,
            NodeState::Sealed {
                progress: 0,
                threshold: 3,
            },
        ];
        let running = |_: &str| true;
        let not_started = |_: &str| false;
        assert!(coming_up(&report(&restarted, Vec::new()), false, &running));
        // Still scheduling or pulling: its start is an event of its own.
        assert!(!coming_up(
            &report(&restarted, Vec::new()),
            false,
            &not_started
        ));
        assert!(coming_up(&report(&sealed, Vec::new()), false, &not_started));
        let promoting = vec![LifecycleAction::Wait(WaitReason::PromotionPending(
            "vault-2".into(),
        ))];
        assert!(coming_up(&report(&up, promoting), false, &running));
        // All up and nothing to wait for: nothing to look at soon.
        assert!(!coming_up(&report(&up, Vec::new()), false, &running));
        // A failed action is retried at the converging pace, not hammered.
        assert!(!coming_up(&report(&restarted, Vec::new()), true, &running));
        // A stop waits for a person.
        let stop = vec![LifecycleAction::Stop(
            vaultkeeper_vault::decide::StopReason::KeysMissing,
        )];
        assert!(!coming_up(&report(&sealed, stop), false, &running));
    }

    #[test]
    fn converging_or_ready_starts_the_quick_looks_over() {
        assert_eq!(next(Seen::Converged, 7, RESYNC, CONVERGING), (RESYNC, 0));
        assert_eq!(next(Seen::Other, 7, RESYNC, CONVERGING), (CONVERGING, 0));
        assert_eq!(
            next(Seen::ComingUp, 0, RESYNC, CONVERGING),
            (Duration::from_millis(200), 1)
        );
    }
}
