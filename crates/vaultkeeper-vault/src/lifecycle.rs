//! One lifecycle pass: observe every pod, decide, act, report.
//!
//! [`Lifecycle`] is the piece with memory: it holds the init answer from the moment
//! `sys/init` answers until the key store has accepted it, and retries the write on every
//! pass until then (the decision turns a pending write into [`Action::PersistKeys`] and
//! nothing else). The answer is saved exactly as it arrived before it is even read
//! ([`crate::keys::RawInit`]), so neither a parse error nor a check that fails can drop
//! it; `sys/init` itself has no client-side deadline. The operator flushes held keys at
//! the start of every pass ([`Lifecycle::flush_pending`]) and before it exits or lets a
//! deleted cluster go. If the process is killed in that window anyway the keys are gone:
//! the next process sees an initialized cluster without keys and stops with
//! `KeysMissing`; it never initializes again.
//!
//! How later steps authenticate: with the root token while it is kept; once it is revoked
//! (or in self-init mode, where there never was one), with the operator's own Kubernetes
//! auth login ([`OperatorLogin`]), whose policy allows raft membership changes and
//! re-applying bootstrap and nothing else (see [`crate::bootstrap`]). The root token is
//! only revoked after that login has been proven to work. (`sys/generate-root` from the
//! kept shares is not used: OpenBao >= 2.5.3 turns its unauthenticated endpoints off by
//! default.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::{info, warn};

use crate::bootstrap::{self, Authority, BootstrapReport, BootstrapSpec};
use crate::client::NodeClient;
use crate::decide::{
    Action, ClusterIntent, NodeState, Observation, StopReason, WaitReason, decide,
};
use crate::error::{Error, Result, Step};
use crate::keys::{InitKeys, KeyStore, RawInit};
use crate::node::{PodName, UnsealProgress};
use crate::rotation::Kept;
use crate::secret::{SecretString, Token, secret_string};

mod observe;

/// How long a pass waits on one pod. A pod that has not answered by then is unreachable
/// for this pass (an observation) or its action failed and is decided again on the next
/// pass; either way the other pods are not held up, because per-pod work runs
/// concurrently. `sys/init` and key writes have no deadline (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// One pod's observation (seal status and health), and each read through the active
    /// node (the login, the raft configuration).
    pub observe: Duration,
    /// One pod's unseal or join, every call it makes together.
    pub pod_action: Duration,
    /// One step through the active node: a step-down, a peer removal, the bootstrap.
    pub cluster_action: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            observe: Duration::from_secs(5),
            pod_action: Duration::from_secs(10),
            cluster_action: Duration::from_secs(30),
        }
    }
}

/// How long a desired pod must have been seen unsealed and outside the raft
/// configuration, in two observations, before its data is reset: long enough that a
/// single odd answer (a configuration read in the middle of a leadership change) never
/// costs a pod its volume.
pub const NOT_MEMBER_CONFIRMATION: Duration = Duration::from_secs(4);

/// Where the operator's service-account JWT comes from (a projected token file in a pod).
#[async_trait]
pub trait JwtSource: Send + Sync {
    /// The current JWT.
    async fn jwt(&self) -> Result<SecretString>;
}

/// Reads the JWT from a file each time (projected tokens are rotated by the kubelet).
#[derive(Clone, Debug)]
pub struct FileJwt(pub PathBuf);

#[async_trait]
impl JwtSource for FileJwt {
    async fn jwt(&self) -> Result<SecretString> {
        let text = tokio::fs::read_to_string(&self.0)
            .await
            .map_err(|e| Error::NoToken {
                step: Step::KubernetesLogin,
                reason: format!(
                    "cannot read the service-account token {}: {e}",
                    self.0.display()
                ),
            })?;
        Ok(secret_string(text.trim_end().to_string()))
    }
}

/// How the operator logs in once there is no root token.
#[derive(Clone)]
pub struct OperatorLogin {
    /// Kubernetes auth mount path.
    pub mount: String,
    /// The operator's role.
    pub role: String,
    /// Its service-account JWT.
    pub jwt: Arc<dyn JwtSource>,
}

/// What an executed action achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// Init answered and the keys are persisted.
    Initialized,
    /// Pending keys are now persisted.
    KeysPersisted,
    /// The pod is unsealed.
    Unsealed,
    /// All threshold shares were accepted but the pod still reports sealed (it is
    /// finishing a raft join); the next pass looks again.
    SharesSubmitted(UnsealProgress),
    /// Leadership moved.
    SteppedDown,
    /// The peer is gone.
    PeerRemoved,
    /// Bootstrap applied; the report says what changed.
    Bootstrapped(BootstrapReport),
    /// Bootstrap applied and the root token revoked and dropped from the key store.
    BootstrappedAndRootRevoked(BootstrapReport),
    /// An auto-unseal pod joined raft; it unseals itself.
    Joined,
    /// A wait or stop was reported; nothing was done.
    Reported,
}

/// One action and how it went.
#[derive(Debug)]
pub struct Outcome {
    /// The action.
    pub action: Action,
    /// What it achieved, or why it failed.
    pub result: Result<Done>,
    /// How long it took (for metrics and the measurement program).
    pub elapsed: Duration,
}

/// Everything one pass saw and did.
#[derive(Debug)]
pub struct PassReport {
    /// What was observed.
    pub observation: Observation,
    /// What was decided.
    pub actions: Vec<Action>,
    /// What happened, action by action (a failed init or key write ends the pass early).
    pub outcomes: Vec<Outcome>,
}

impl PassReport {
    /// The stop reason, if the decision stopped.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.actions.iter().find_map(|a| match a {
            Action::Stop(reason) => Some(reason),
            _ => None,
        })
    }

    /// Every wait reason.
    pub fn waits(&self) -> Vec<&WaitReason> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Wait(reason) => Some(reason),
                _ => None,
            })
            .collect()
    }

    /// Every failed action's error.
    pub fn errors(&self) -> Vec<&Error> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err())
            .collect()
    }

    /// Nothing left to do or wait for: every desired pod is unsealed and nothing was
    /// decided.
    pub fn is_converged(&self) -> bool {
        self.actions.is_empty()
    }
}

/// The lifecycle of one cluster.
pub struct Lifecycle<C, S> {
    pub(crate) client: C,
    pub(crate) store: S,
    pub(crate) intent: ClusterIntent,
    bootstrap: Option<BootstrapSpec>,
    operator_login: Option<OperatorLogin>,
    /// The init answer as it arrived, until the store has saved it.
    pending_raw: Option<RawInit>,
    /// The keys read from it, until the store has saved them as a key record.
    pub(crate) pending: Option<InitKeys>,
    /// The stored keys, from [`Lifecycle::observe`] until the [`Lifecycle::execute`] that
    /// follows it (zeroized when dropped).
    held: Option<InitKeys>,
    bootstrapped: bool,
    deadlines: Deadlines,
    /// Desired pods seen unsealed but outside the raft configuration, since when.
    not_members: BTreeMap<PodName, Instant>,
    /// The login [`Lifecycle::observe`] used for the raft read, through which pod, handed
    /// to the [`Lifecycle::execute`] that follows so its actions reuse it; revoked at the
    /// end of that execute, or at the next observe if no execute came.
    session: Option<(PodName, Token, Authority)>,
    /// The pod the last observation found active: the next one logs in and reads raft
    /// through it while the pods are being looked at, and keeps the answer if it is still
    /// the active one.
    last_active: Option<PodName>,
}

impl<C: NodeClient, S: KeyStore> Lifecycle<C, S> {
    /// A lifecycle for `intent`, driving nodes through `client` and keeping keys in `store`.
    pub fn new(client: C, store: S, intent: ClusterIntent) -> Self {
        Lifecycle {
            client,
            store,
            intent,
            bootstrap: None,
            operator_login: None,
            pending_raw: None,
            pending: None,
            held: None,
            bootstrapped: false,
            deadlines: Deadlines::default(),
            not_members: BTreeMap::new(),
            session: None,
            last_active: None,
        }
    }

    /// Waits on each pod at most this long (see [`Deadlines`]).
    pub fn with_deadlines(mut self, deadlines: Deadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// Bootstraps with `spec` once the cluster has an active node.
    pub fn with_bootstrap(mut self, spec: BootstrapSpec) -> Self {
        self.bootstrap = Some(spec);
        self
    }

    /// Logs in as the operator when no root token is available.
    pub fn with_operator_login(mut self, login: OperatorLogin) -> Self {
        self.operator_login = Some(login);
        self
    }

    /// Replaces the intent (e.g. after a scale).
    pub fn set_intent(&mut self, intent: ClusterIntent) {
        self.intent = intent;
    }

    /// Tells the lifecycle whether bootstrap is already applied for the current spec (the
    /// operator keeps this in status across restarts).
    pub fn set_bootstrapped(&mut self, done: bool) {
        self.bootstrapped = done;
    }

    /// Whether bootstrap has been applied.
    pub fn is_bootstrapped(&self) -> bool {
        self.bootstrapped
    }

    /// Whether init output is held in memory, not yet persisted.
    pub fn has_pending_keys(&self) -> bool {
        self.pending_raw.is_some() || self.pending.is_some()
    }

    /// Saves whatever init output is held (the raw answer first, then the key record read
    /// from it). `Ok(true)` when something was saved now; `Ok(false)` when nothing was
    /// held. The operator calls this first in every pass, before it exits, and before it
    /// lets a deleted cluster go.
    pub async fn flush_pending(&mut self) -> Result<bool> {
        let held = self.has_pending_keys();
        self.persist_pending().await?;
        Ok(held)
    }

    /// The node client.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// The key store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// A token for raft and bootstrap work: the root token while kept (and valid), else the
    /// operator's login. The second value says which.
    pub(crate) async fn token(
        &self,
        via: &PodName,
        keys: &mut Option<InitKeys>,
    ) -> Result<(Token, Authority)> {
        if let Some(root) = keys.as_ref().and_then(|k| k.root_token.clone()) {
            match self.client.lookup_self(via, &root).await {
                Ok(_) => return Ok((root, Authority::Root)),
                Err(Error::PermissionDenied { .. }) => {
                    // Revoked after our own revoke but before the store write, or by a
                    // person: drop it from the store so nobody trusts it again.
                    warn!(pod = %via, "the stored root token is no longer valid; removing it from the key store");
                    if let Some(k) = keys.as_mut() {
                        k.root_token = None;
                        self.store.store(k).await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let login = self.operator_login.clone().ok_or_else(|| Error::NoToken {
            step: Step::KubernetesLogin,
            reason: "the root token is not kept and no operator login is configured".into(),
        })?;
        let jwt = login.jwt.jwt().await?;
        let token = self
            .client
            .kubernetes_login(via, &login.mount, &login.role, &jwt)
            .await?;
        Ok((token, Authority::Operator))
    }

    /// What to do about `observation` (the pure [`decide`] for this lifecycle's intent).
    pub fn decide(&self, observation: &Observation) -> Vec<Action> {
        decide(&self.intent, observation)
    }

    /// Carries out `actions`, decided on `observation`, in order. A failed init or key
    /// write ends the list early: nothing may happen before the keys are safe. The keys
    /// [`Lifecycle::observe`] held are released afterwards, and the operator's login, when
    /// one was needed, is revoked.
    pub async fn execute(&mut self, observation: &Observation, actions: &[Action]) -> Vec<Outcome> {
        self.execute_gated(observation, actions, &|_| Ok(())).await
    }

    /// [`Lifecycle::execute`], asking `gate` right before each action whether it may run
    /// now (the operator's leader fence); a refused action fails with the gate's reason
    /// and is not carried out.
    pub async fn execute_gated(
        &mut self,
        observation: &Observation,
        actions: &[Action],
        gate: &(dyn Fn(&Action) -> std::result::Result<(), String> + Send + Sync),
    ) -> Vec<Outcome> {
        let mut keys = self.held.take();
        let active = observation
            .nodes
            .iter()
            .find(|n| n.state == NodeState::Active)
            .map(|n| n.pod.clone());
        // The observation's login, when it was made through the node the actions use.
        let mut session: Option<(Token, Authority)> = match self.session.take() {
            Some((via, token, authority)) if Some(&via) == active.as_ref() => {
                Some((token, authority))
            }
            Some((via, token, authority)) => {
                self.end_session(&via, Some((token, authority))).await;
                None
            }
            None => None,
        };
        let mut outcomes: Vec<Option<Outcome>> = actions.iter().map(|_| None).collect();
        let refused = |reason: String| {
            Error::invalid(
                "leadership",
                reason,
                "nothing to do: the replica that leads carries it out",
            )
        };

        // 1. The keys: init and key writes, one at a time, with no deadline; nothing else
        //    happens after one of them failed.
        for (i, action) in actions.iter().enumerate() {
            if !matches!(action, Action::Init { .. } | Action::PersistKeys) {
                continue;
            }
            let started = Instant::now();
            let result = match gate(action) {
                Ok(()) => self.act(action, &mut keys, &mut session).await,
                Err(reason) => Err(refused(reason)),
            };
            let failed = result.is_err();
            outcomes[i] = Some(logged(action, result, started));
            if failed {
                return outcomes.into_iter().flatten().collect();
            }
        }

        // 2. Each pod's own work (unseal, join), all pods at once, each within its
        //    deadline: a pod that hangs costs only itself.
        let per_pod: Vec<(usize, &Action, &PodName, Step)> = actions
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match a {
                Action::Unseal { pod, .. } => Some((i, a, pod, Step::Unseal)),
                Action::Join { pod, .. } => Some((i, a, pod, Step::RaftJoin)),
                _ => None,
            })
            .collect();
        if !per_pod.is_empty() {
            let this = &*self;
            let held = keys.as_ref();
            let deadline = self.deadlines.pod_action;
            let results =
                futures::future::join_all(per_pod.iter().map(|&(i, action, pod, step)| {
                    let refused = &refused;
                    async move {
                        let started = Instant::now();
                        let result = match gate(action) {
                            Ok(()) => {
                                match tokio::time::timeout(deadline, this.act_on_pod(action, held))
                                    .await
                                {
                                    Ok(result) => result,
                                    Err(_) => Err(Error::Unreachable {
                                        pod: pod.clone(),
                                        step,
                                        reason: format!(
                                            "not done within {}; decided again on the next pass",
                                            seconds(deadline)
                                        ),
                                    }),
                                }
                            }
                            Err(reason) => Err(refused(reason)),
                        };
                        (i, pod, result, started)
                    }
                }))
                .await;
            for (i, pod, result, started) in results {
                let action = &actions[i];
                let result = match result {
                    Ok((done, Some(kept))) => {
                        if let Some(held) = keys.as_mut() {
                            self.after_unseal(pod, kept, held).await;
                        }
                        Ok(done)
                    }
                    Ok((done, None)) => Ok(done),
                    Err(e) => Err(e),
                };
                outcomes[i] = Some(logged(action, result, started));
            }
        }

        // 3. The rest, through the active node, one at a time.
        let deadline = self.deadlines.cluster_action;
        for (i, action) in actions.iter().enumerate() {
            if outcomes[i].is_some() {
                continue;
            }
            let started = Instant::now();
            let result = match gate(action) {
                Ok(()) => {
                    match tokio::time::timeout(deadline, self.act(action, &mut keys, &mut session))
                        .await
                    {
                        Ok(result) => result,
                        Err(_) => Err(Error::invalid(
                            "deadline",
                            format!("{action:?} was not done within {}", seconds(deadline)),
                            "nothing to do: it is decided again on the next pass",
                        )),
                    }
                }
                Err(reason) => Err(refused(reason)),
            };
            outcomes[i] = Some(logged(action, result, started));
        }

        if let Some(via) = active {
            self.end_session(&via, session).await;
        }
        outcomes.into_iter().flatten().collect()
    }

    /// One pod's own work: reads the kept keys, writes nothing but to that pod. The shares
    /// that unsealed it are answered so the bookkeeping can follow.
    async fn act_on_pod(
        &self,
        action: &Action,
        keys: Option<&InitKeys>,
    ) -> Result<(Done, Option<Kept>)> {
        let stored = || {
            keys.ok_or_else(|| Error::KeyStore {
                step: Step::KeyStoreLoad,
                reason: "no stored shares to unseal with".into(),
            })
        };
        match action {
            Action::Unseal {
                pod,
                reset_first,
                rejoin,
            } => {
                let keys = stored()?;
                if *reset_first {
                    info!(pod = %pod, "discarding a partial unseal before entering the stored shares");
                    self.client.unseal_reset(pod).await?;
                }
                if let Some(leader) = rejoin {
                    info!(pod = %pod, leader = %leader, "the pod is between a raft join and its unseal: asking the leader for a fresh challenge first");
                    self.join(pod, leader).await?;
                }
                let (done, kept) = self.submit_kept_shares(pod, keys).await?;
                Ok((done, Some(kept)))
            }
            Action::Join { pod, leader } => {
                self.join(pod, leader).await?;
                if matches!(self.intent.seal(), crate::decide::SealIntent::Auto { .. }) {
                    return Ok((Done::Joined, None));
                }
                let keys = stored()?;
                match self.submit_kept_shares(pod, keys).await {
                    Ok((done, kept)) => Ok((done, Some(kept))),
                    Err(e) if !crate::rotation::wrong_shares(&e) => {
                        // The challenge this join fetched is gone (`retry_join` asked for
                        // another meanwhile, or the leader moved): once more, from a fresh one.
                        warn!(pod = %pod, error = %e, "the unseal after the join failed; joining again for a fresh challenge");
                        let _ = self.client.unseal_reset(pod).await;
                        self.join(pod, leader).await?;
                        let (done, kept) = self.submit_kept_shares(pod, keys).await?;
                        Ok((done, Some(kept)))
                    }
                    Err(e) => Err(e),
                }
            }
            other => Err(Error::invalid(
                "action",
                format!("{other:?} is not a per-pod action"),
                "report this as a bug",
            )),
        }
    }

    /// `sys/storage/raft/join` on `pod`, towards `leader`.
    async fn join(&self, pod: &PodName, leader: &PodName) -> Result<()> {
        let join = self.intent.join().ok_or_else(|| {
            Error::invalid(
                "raft join",
                "no join address is configured",
                "report this as a bug",
            )
        })?;
        self.client
            .join_raft(pod, &join.leader_api_addr(leader))
            .await
    }

    /// One whole pass: [`Lifecycle::observe`], [`Lifecycle::decide`],
    /// [`Lifecycle::execute`].
    pub async fn run_pass(&mut self, leftover_pods: &[PodName]) -> Result<PassReport> {
        let observation = self.observe(leftover_pods).await?;
        let actions = self.decide(&observation);
        let outcomes = self.execute(&observation, &actions).await;
        Ok(PassReport {
            observation,
            actions,
            outcomes,
        })
    }

    /// Tokens from the operator's login are not left lying around: revoked as soon as the
    /// work they were made for is done (best effort: they expire on their own soon anyway).
    pub(crate) async fn end_session(&self, via: &PodName, session: Option<(Token, Authority)>) {
        if let Some((token, Authority::Operator)) = session {
            let _ = self.client.revoke_self(via, &token).await;
        }
    }

    /// The save-first sequence: the raw answer is stored before it is read; then it is
    /// read, and the key record stored. A failed write leaves what is held in memory for
    /// the next attempt. An answer that cannot be read stays saved as it is and is
    /// [`Error::InitAnswerUnreadable`].
    async fn persist_pending(&mut self) -> Result<()> {
        if let Some(raw) = &self.pending_raw {
            self.store.store_raw(raw).await?;
            info!(keys = ?raw.summary(), "init answer saved as it arrived");
            let parsed = raw.parse();
            self.pending_raw = None;
            self.pending = Some(parsed?);
        }
        if let Some(keys) = &self.pending {
            self.store.store(keys).await?;
            info!(keys = ?keys.summary(), "init output persisted");
            self.pending = None;
        }
        Ok(())
    }

    async fn act(
        &mut self,
        action: &Action,
        keys: &mut Option<InitKeys>,
        session: &mut Option<(Token, Authority)>,
    ) -> Result<Done> {
        match action {
            Action::PersistKeys => {
                self.persist_pending().await?;
                Ok(Done::KeysPersisted)
            }
            Action::Init { pod, request } => {
                // The decision saw every pod uninitialized moments ago; ask the target
                // once more right before the one call that must never happen twice.
                if self.client.init_status(pod).await? {
                    return Err(Error::UnexpectedResponse {
                        pod: pod.clone(),
                        step: Step::Init,
                        reason: "the pod reports initialized now; init skipped".into(),
                    });
                }
                let answer = self.client.init(pod, request).await?;
                info!(pod = %pod, keys = ?answer.summary(), "initialized; saving the answer before anything else");
                self.pending_raw = Some(answer);
                self.persist_pending().await?;
                Ok(Done::Initialized)
            }
            Action::Unseal { pod, .. } | Action::Join { pod, .. } => {
                let (done, kept) = self.act_on_pod(action, keys.as_ref()).await?;
                if let (Some(kept), Some(held)) = (kept, keys.as_mut()) {
                    self.after_unseal(pod, kept, held).await;
                }
                Ok(done)
            }
            Action::StepDown { pod } => {
                let token = self.session_token(pod, keys, session).await?;
                self.client.step_down(pod, &token.0).await?;
                Ok(Done::SteppedDown)
            }
            Action::RemovePeer { node_id, via } => {
                let token = self.session_token(via, keys, session).await?;
                self.client.remove_raft_peer(via, node_id, &token.0).await?;
                Ok(Done::PeerRemoved)
            }
            Action::Bootstrap { via } => {
                let spec = self.bootstrap.clone().ok_or_else(|| {
                    Error::invalid("bootstrap", "no bootstrap spec", "configure bootstrap")
                })?;
                let (token, authority) = self.session_token(via, keys, session).await?;
                let report = bootstrap::apply(&self.client, via, &spec, &token, authority).await?;
                self.bootstrapped = true;
                if spec.revoke_root_token && authority == Authority::Root {
                    self.revoke_root(via, &token, keys).await?;
                    *session = None;
                    return Ok(Done::BootstrappedAndRootRevoked(report));
                }
                Ok(Done::Bootstrapped(report))
            }
            // The operator owns the volumes: it carries this out.
            Action::ResetNode { .. } | Action::Wait(_) | Action::Stop(_) => Ok(Done::Reported),
        }
    }

    async fn session_token(
        &mut self,
        via: &PodName,
        keys: &mut Option<InitKeys>,
        session: &mut Option<(Token, Authority)>,
    ) -> Result<(Token, Authority)> {
        if let Some(credentials) = session {
            return Ok(credentials.clone());
        }
        let credentials = self.token(via, keys).await?;
        *session = Some(credentials.clone());
        Ok(credentials)
    }

    /// Moves leadership away from `pod` (the active node) before it is restarted, as a
    /// rolling update does with the old active node last. Authenticates like raft work does:
    /// the root token while kept, else the operator's login (revoked again afterwards).
    pub async fn step_down(&mut self, pod: &PodName) -> Result<()> {
        let mut keys = match self.has_pending_keys() {
            true => None,
            false => self.store.load().await?,
        };
        let (token, authority) = self.token(pod, &mut keys).await?;
        let result = self.client.step_down(pod, &token).await;
        if authority == Authority::Operator {
            let _ = self.client.revoke_self(pod, &token).await;
        }
        result
    }

    /// Revokes the root token, but only after proving the operator can still get in.
    async fn revoke_root(
        &mut self,
        via: &PodName,
        root: &Token,
        keys: &mut Option<InitKeys>,
    ) -> Result<()> {
        let login = self.operator_login.clone().ok_or_else(|| Error::NoToken {
            step: Step::TokenRevoke,
            reason: "revoking the root token needs the operator's Kubernetes login configured, or the operator would lock itself out".into(),
        })?;
        let jwt = login.jwt.jwt().await?;
        let operator = self
            .client
            .kubernetes_login(via, &login.mount, &login.role, &jwt)
            .await?;
        self.client.lookup_self(via, &operator).await?;
        let _ = self.client.revoke_self(via, &operator).await;
        self.client.revoke_self(via, root).await?;
        info!(pod = %via, "root token revoked; later steps log in as the operator");
        if let Some(k) = keys.as_mut() {
            k.root_token = None;
            self.store.store(k).await?;
        }
        Ok(())
    }
}

/// Logs how an action went and makes its outcome.
fn logged(action: &Action, result: Result<Done>, started: Instant) -> Outcome {
    match &result {
        Ok(done) => info!(
            action = ?action,
            outcome = ?done,
            elapsed_ms = started.elapsed().as_millis(),
            "lifecycle action"
        ),
        Err(e) => warn!(
            action = ?action,
            error = %e,
            elapsed_ms = started.elapsed().as_millis(),
            "lifecycle action failed"
        ),
    }
    Outcome {
        action: action.clone(),
        result,
        elapsed: started.elapsed(),
    }
}

/// A deadline in words.
fn seconds(deadline: Duration) -> String {
    format!("{} s", deadline.as_secs_f32())
}
