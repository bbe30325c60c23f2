//! The Events a pass publishes, decided from what it planned and did (pure), and the rule
//! that keeps a repeating failure from being published on every pass.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use vaultkeeper_vault::decide::Action as LifecycleAction;
use vaultkeeper_vault::lifecycle::{Done, PassReport};

/// One Event to publish about the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EventSpec {
    /// A Warning (else Normal).
    pub(crate) warning: bool,
    /// CamelCase reason.
    pub(crate) reason: String,
    /// The sentence a person reads (never a secret).
    pub(crate) note: String,
    /// The pod it concerns, when it concerns one.
    pub(crate) pod: Option<String>,
}

impl EventSpec {
    /// A Normal Event.
    pub(crate) fn normal(reason: &str, note: String) -> Self {
        EventSpec {
            warning: false,
            reason: reason.to_owned(),
            note,
            pod: None,
        }
    }

    /// A Warning Event.
    pub(crate) fn warning(reason: &str, note: String) -> Self {
        EventSpec {
            warning: true,
            ..EventSpec::normal(reason, note)
        }
    }

    /// The same Event about one pod.
    pub(crate) fn about(mut self, pod: impl Into<String>) -> Self {
        self.pod = Some(pod.into());
        self
    }
}

/// How long the same Warning is not published again.
const REPEAT_WARNING_AFTER: Duration = Duration::from_secs(600);

/// Keeps only the Warnings not published in the last ten minutes (remembered in
/// `warned`); Normal Events always pass.
pub(crate) fn unrepeated(
    events: Vec<EventSpec>,
    warned: &mut HashMap<String, Instant>,
    now: Instant,
) -> Vec<EventSpec> {
    events
        .into_iter()
        .filter(|event| {
            if !event.warning {
                return true;
            }
            let due = warned
                .get(&event.note)
                .is_none_or(|at| now.duration_since(*at) > REPEAT_WARNING_AFTER);
            if due {
                warned.insert(event.note.clone(), now);
            }
            due
        })
        .collect()
}

/// One Warning per pod that carries the cluster's server labels without being controlled
/// by its StatefulSet (published once, then held back like any repeated Warning).
pub(crate) fn foreign_pods(pods: &[String]) -> Vec<EventSpec> {
    pods.iter()
        .map(|pod| {
            EventSpec::warning(
                "ForeignPod",
                format!(
                    "pod {pod} carries this cluster's server labels, but no StatefulSet of \
                     this cluster controls it: it is ignored (never sent a command, share or \
                     token, and not counted); delete it, or remove the labels"
                ),
            )
            .about(pod.clone())
        })
        .collect()
}

/// The Events for what the lifecycle did. Failures become `LifecycleFailed` Warnings; a
/// stop becomes a Warning named by its reason.
pub(crate) fn lifecycle(pass: &PassReport, keys_secret: &str) -> Vec<EventSpec> {
    let mut events = Vec::new();
    for outcome in &pass.outcomes {
        let (reason, note) = match (&outcome.action, &outcome.result) {
            (LifecycleAction::Init { pod, .. }, Ok(Done::Initialized)) => (
                "Initialized",
                format!(
                    "initialized Vault on {pod}; the init output is in the keys Secret {keys_secret}"
                ),
            ),
            (_, Ok(Done::KeysPersisted)) => (
                "KeysPersisted",
                "the init output held in memory is now in the keys Secret".into(),
            ),
            (LifecycleAction::Unseal { pod, .. }, Ok(Done::Unsealed)) => {
                ("Unsealed", format!("unsealed pod {pod}"))
            }
            (LifecycleAction::Unseal { pod, .. }, Ok(Done::SharesSubmitted(_))) => (
                "SharesSubmitted",
                format!("entered the unseal shares on pod {pod}; it is finishing its raft join"),
            ),
            (LifecycleAction::Join { pod, leader }, Ok(Done::Unsealed)) => (
                "Joined",
                format!("pod {pod} joined raft through {leader} and is unsealed"),
            ),
            (LifecycleAction::Join { pod, leader }, Ok(Done::SharesSubmitted(_))) => (
                "Joined",
                format!(
                    "pod {pod} joined raft through {leader}; its unseal shares are in and it is finishing the join"
                ),
            ),
            (LifecycleAction::Join { pod, leader }, Ok(Done::Joined)) => (
                "Joined",
                format!("pod {pod} joined raft through {leader}; it unseals itself"),
            ),
            (LifecycleAction::RemovePeer { node_id, .. }, Ok(Done::PeerRemoved)) => (
                "PeerRemoved",
                format!("removed raft peer {node_id}, which no desired pod is"),
            ),
            (LifecycleAction::StepDown { pod }, Ok(Done::SteppedDown)) => {
                ("SteppedDown", format!("{pod} handed leadership over"))
            }
            (_, Ok(Done::Bootstrapped(report))) => {
                ("Bootstrapped", format!("Vault bootstrap applied: {report}"))
            }
            (_, Ok(Done::BootstrappedAndRootRevoked(report))) => (
                "RootTokenRevoked",
                format!(
                    "Vault bootstrap applied ({report}); the initial root token is revoked, vaultkeeper now logs in with its own role"
                ),
            ),
            (_, Ok(_)) => continue,
            (_, Err(error)) => {
                events.push(EventSpec::warning("LifecycleFailed", error.to_string()));
                continue;
            }
        };
        let event = EventSpec::normal(reason, note);
        events.push(match &outcome.action {
            LifecycleAction::Init { pod, .. }
            | LifecycleAction::Unseal { pod, .. }
            | LifecycleAction::Join { pod, .. }
            | LifecycleAction::StepDown { pod } => event.about(pod.as_str()),
            LifecycleAction::RemovePeer { node_id, .. } => event.about(node_id.clone()),
            _ => event,
        });
    }
    if let Some(stop) = pass.stop_reason() {
        events.push(EventSpec::warning(
            stop.reason(),
            format!(
                "{}: vaultkeeper stopped acting on this cluster; see the Degraded condition",
                stop.reason()
            ),
        ));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_is_repeated_only_after_ten_minutes_and_normal_events_always_pass() {
        let mut warned = HashMap::new();
        let start = Instant::now();
        let events = || {
            vec![
                EventSpec::warning("LifecycleFailed", "pod vault-1 does not answer".into()),
                EventSpec::normal("Unsealed", "unsealed pod vault-0".into()),
            ]
        };
        let reasons = |events: Vec<EventSpec>| -> Vec<String> {
            events.into_iter().map(|e| e.reason).collect()
        };
        assert_eq!(
            reasons(unrepeated(events(), &mut warned, start)),
            ["LifecycleFailed", "Unsealed"]
        );
        assert_eq!(
            reasons(unrepeated(
                events(),
                &mut warned,
                start + Duration::from_secs(599)
            )),
            ["Unsealed"]
        );
        assert_eq!(
            reasons(unrepeated(
                events(),
                &mut warned,
                start + Duration::from_secs(601)
            )),
            ["LifecycleFailed", "Unsealed"]
        );
    }
}
