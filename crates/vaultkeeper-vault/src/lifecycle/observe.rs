//! Observation: every pod at once under a deadline, the key store, the raft configuration
//! through the active node, and which pods have stayed outside raft long enough to reset.

use std::collections::BTreeSet;
use std::time::Instant;

use tracing::{debug, warn};

use super::{Lifecycle, NOT_MEMBER_CONFIRMATION, seconds};
use crate::bootstrap::Authority;
use crate::client::{NodeClient, NodeStatus};
use crate::decide::{BootstrapState, KeysState, NodeObservation, NodeState, Observation};
use crate::error::{Error, Result};
use crate::keys::KeyStore;
use crate::node::{LeaderStatus, PodName, RaftConfiguration};
use crate::secret::Token;

impl<C: NodeClient, S: KeyStore> Lifecycle<C, S> {
    /// One pod: its seal status and, once unsealed, whether it leads (`sys/leader`, which
    /// also says how far its raft log is applied). The exec transport answers both with
    /// one command.
    pub(super) async fn observe_pod(
        &self,
        pod: &PodName,
    ) -> (NodeObservation, Option<LeaderStatus>) {
        let NodeStatus { seal, leader } = match self.client.node_status(pod).await {
            Ok(status) => status,
            Err(e) => {
                let state = NodeState::Unreachable {
                    reason: e.to_string(),
                };
                return (NodeObservation::new(pod.clone(), state), None);
            }
        };
        let state = if !seal.initialized {
            NodeState::Uninitialized
        } else if seal.sealed {
            NodeState::Sealed {
                progress: seal.progress,
                threshold: seal.threshold,
            }
        } else {
            match &leader {
                // Without HA storage every unsealed node serves; raft always has HA.
                Some(l) if l.is_self || !l.ha_enabled => NodeState::Active,
                Some(_) => NodeState::Standby,
                None => NodeState::Unreachable {
                    reason: "unsealed, but sys/leader did not answer".into(),
                },
            }
        };
        let leader = leader.filter(|_| state == NodeState::Active);
        let node = NodeObservation {
            pod: pod.clone(),
            state,
            seal_type: Some(seal.seal_type),
            cluster_id: seal.cluster_id,
            version: (!seal.version.is_empty()).then_some(seal.version),
        };
        (node, leader)
    }

    /// Observes every pod (desired ones and `leftover_pods`, pods that still exist but are
    /// not desired: a scale-down in progress), the key store and, through the active node,
    /// the raft configuration. Reads only. The stored keys, and the login it may need for
    /// the raft read, stay held for the [`Lifecycle::execute`] that follows, which revokes
    /// the login when its actions are done (the next observation revokes one that no
    /// execute took).
    pub async fn observe(&mut self, leftover_pods: &[PodName]) -> Result<Observation> {
        let mut every: Vec<PodName> = self.intent.pods().to_vec();
        every.extend(leftover_pods.iter().cloned());
        self.observe_members(&every, leftover_pods).await
    }

    /// [`Lifecycle::observe`], touching only `members`: the pods the cluster's own
    /// StatefulSet controls. A desired pod that is not a member (not created yet, or a pod
    /// someone else made under that name) is reported unreachable without a single call
    /// to it, so no command, share or token ever reaches it, and the decision waits for
    /// the real one. Leftovers that are not members are ignored.
    pub async fn observe_members(
        &mut self,
        members: &[PodName],
        leftover_pods: &[PodName],
    ) -> Result<Observation> {
        let mut pods: Vec<PodName> = self.intent.pods().to_vec();
        pods.extend(
            leftover_pods
                .iter()
                .filter(|p| !self.intent.pods().contains(p) && members.contains(p))
                .cloned(),
        );
        // A login an earlier observation left (no execute followed it) goes first.
        if let Some((via, token, authority)) = self.session.take() {
            self.end_session(&via, Some((token, authority))).await;
        }
        let pending = match (&self.pending_raw, &self.pending) {
            (Some(raw), _) => Some(raw.summary()),
            (None, Some(keys)) => Some(keys.summary()),
            (None, None) => None,
        };
        let (keys_state, mut keys) = match pending {
            Some(summary) => (KeysState::PendingWrite(summary), None),
            None => match self.store.load().await {
                Ok(Some(keys)) => (KeysState::Stored(keys.summary()), Some(keys)),
                Ok(None) => (KeysState::Missing, None),
                Err(Error::InitAnswerUnreadable { reason }) => {
                    warn!(%reason, "the saved init answer cannot be read; waiting for a person");
                    (KeysState::Unreadable, None)
                }
                Err(e) => return Err(e),
            },
        };

        let keys_usable = !matches!(keys_state, KeysState::PendingWrite(_));
        let started = Instant::now();
        let this = &*self;
        let deadline = self.deadlines.observe;
        let guess = self
            .last_active
            .clone()
            .filter(|p| keys_usable && members.contains(p));
        let keys_ref = &mut keys;
        let speculative = async move {
            match guess {
                Some(via) => Some((via.clone(), this.raft_through(&via, keys_ref).await)),
                None => None,
            }
        };
        let nodes_observed = futures::future::join_all(pods.iter().map(|p| async move {
            if members.contains(p) {
                match tokio::time::timeout(deadline, this.observe_pod(p)).await {
                    Ok(observed) => observed,
                    Err(_) => {
                        let state = NodeState::Unreachable {
                            reason: format!("no answer within {}", seconds(deadline)),
                        };
                        (NodeObservation::new(p.clone(), state), None)
                    }
                }
            } else {
                let state = NodeState::Unreachable {
                    reason: "no pod of this cluster's StatefulSet has this name yet".into(),
                };
                (NodeObservation::new(p.clone(), state), None)
            }
        }));
        let (observed, speculative) = futures::future::join(nodes_observed, speculative).await;
        let (nodes, leaders): (Vec<NodeObservation>, Vec<Option<LeaderStatus>>) =
            observed.into_iter().unzip();
        // Meaningful only when exactly one node is active (the decision checks that).
        let leader = leaders.into_iter().flatten().next();
        let pods_done = Instant::now();

        // Raft membership from the active node, when there is one and a token for it: the
        // read made meanwhile through the last active pod if that is still the one, else
        // one made now.
        let mut raft = None;
        let active: Vec<&NodeObservation> = nodes
            .iter()
            .filter(|n| n.state == NodeState::Active)
            .collect();
        let active = match active.as_slice() {
            [one] => Some(one.pod.clone()),
            _ => None,
        };
        let mut read = None;
        if let Some((via, result)) = speculative {
            if Some(&via) == active.as_ref() {
                read = Some(result);
            } else if let (_, Some(session)) = result {
                self.end_session(&via, Some(session)).await;
            }
        }
        if let (Some(via), None, true) = (&active, &read, keys_usable) {
            read = Some(self.raft_through(via, &mut keys).await);
        }
        if let (Some(via), Some((config, session))) = (&active, read) {
            raft = config;
            // Kept for the execute that follows, which revokes it.
            self.session = session.map(|(token, authority)| (via.clone(), token, authority));
        }
        self.last_active = active;
        debug!(
            pods_ms = pods_done.duration_since(started).as_millis(),
            raft_ms = pods_done.elapsed().as_millis(),
            "observed the nodes"
        );
        self.held = keys;
        let stale_data = self.track_not_members(&nodes, raft.as_ref());

        let bootstrap = match (&self.bootstrap, self.bootstrapped) {
            (None, _) => BootstrapState::Disabled,
            (Some(_), true) => BootstrapState::Done,
            (Some(_), false) => BootstrapState::Needed,
        };
        Ok(Observation {
            nodes,
            keys: keys_state,
            raft,
            bootstrap,
            stale_data,
            leader,
        })
    }

    /// Logs in through `via` and reads the raft configuration there, each within the
    /// observation deadline. Answers the configuration (`None` when it could not be read,
    /// which is logged) and the login, when one was made.
    async fn raft_through(
        &self,
        via: &PodName,
        keys: &mut Option<crate::keys::InitKeys>,
    ) -> (Option<RaftConfiguration>, Option<(Token, Authority)>) {
        let deadline = self.deadlines.observe;
        let (token, authority) = match tokio::time::timeout(deadline, self.token(via, keys)).await {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => {
                warn!(pod = %via, error = %e, "cannot log in for raft and bootstrap work");
                return (None, None);
            }
            Err(_) => {
                warn!(pod = %via, "no login for raft and bootstrap work within {}", seconds(deadline));
                return (None, None);
            }
        };
        let config = match tokio::time::timeout(
            deadline,
            self.client.raft_configuration(via, &token),
        )
        .await
        {
            Ok(Ok(config)) => Some(config),
            Ok(Err(e)) => {
                warn!(pod = %via, error = %e, "cannot read the raft configuration");
                None
            }
            Err(_) => {
                warn!(pod = %via, "the raft configuration did not come within {}", seconds(deadline));
                None
            }
        };
        (config, Some((token, authority)))
    }

    /// Remembers which desired pods are unsealed but missing from the raft configuration
    /// of a desired active node, and answers those seen so for at least
    /// [`NOT_MEMBER_CONFIRMATION`]. A pass that cannot tell (no such active node, no
    /// configuration) forgets them all: the confirmation starts again.
    fn track_not_members(
        &mut self,
        nodes: &[NodeObservation],
        raft: Option<&RaftConfiguration>,
    ) -> BTreeSet<PodName> {
        let active: Vec<&NodeObservation> = nodes
            .iter()
            .filter(|n| n.state == NodeState::Active)
            .collect();
        let authoritative =
            matches!(active.as_slice(), [one] if self.intent.pods().contains(&one.pod));
        let outside: BTreeSet<PodName> = match (authoritative, raft) {
            (true, Some(raft)) => nodes
                .iter()
                .filter(|n| n.state == NodeState::Standby && self.intent.pods().contains(&n.pod))
                .filter(|n| !raft.servers.iter().any(|s| s.node_id == n.pod.as_str()))
                .map(|n| n.pod.clone())
                .collect(),
            _ => BTreeSet::new(),
        };
        self.not_members.retain(|pod, _| outside.contains(pod));
        let now = Instant::now();
        for pod in &outside {
            self.not_members.entry(pod.clone()).or_insert(now);
        }
        self.not_members
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= NOT_MEMBER_CONFIRMATION)
            .map(|(pod, _)| pod.clone())
            .collect()
    }
}
