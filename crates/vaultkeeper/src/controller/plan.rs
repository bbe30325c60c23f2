//! Plan: the pure heart of a pass. From what was observed, decide every write: the
//! objects to apply (missing or drifted) and to prune, the lifecycle actions (init,
//! unseal, raft, bootstrap), the one disruptive operation that may run (a scale-down or
//! one rollout step) and what status says about it. No client, no clock, no randomness:
//! everything comes in as arguments, so the plan is tested by tables (below).
//!
//! The rules, in order:
//! 1. The lifecycle decides about the Vault nodes (`vaultkeeper_vault::decide`).
//! 2. A scale-down keeps the departing pods until raft no longer lists them.
//! 3. Objects are applied only when missing or drifted; objects this cluster owns and the
//!    spec no longer asks for are pruned, except kinds held back because the API they
//!    need is missing (cert-manager, prometheus-operator): those were not dropped from the
//!    spec, so they are never pruned.
//! 4. Objects of this cluster's names that exist and are not its own are adopted or left
//!    alone as `adopt.rs` decides; while it refuses, nothing is written at all.
//! 5. One disruptive operation at a time: a scale-down in progress, or else one step of a
//!    rolling update, and only while the lifecycle has not stopped; a key rotation a person
//!    asked for only on a cluster with nothing else to do.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use vaultkeeper_api::{
    ClusterNames, Initialization, OperationKind, OperationStatus, VaultCluster, VaultClusterStatus,
};
use vaultkeeper_render::{Manifest, RenderContext};
use vaultkeeper_vault::bootstrap::BootstrapSpec;
use vaultkeeper_vault::decide::{Action as LifecycleAction, NodeState, Observation, decide};
use vaultkeeper_vault::node::PodName;

use super::adopt::{self, Adoption};
use super::context::Capabilities;
use super::error::Error;
use super::nodes;
use super::observe::{Observed, desired_pods};
use super::rollout::{self, RolloutPod, RolloutStep};
use super::tls::Tls;
use crate::apply::{self, LiveObjects};

/// What the plan needs besides the VaultCluster and the observation.
pub(crate) struct PlanInputs<'a> {
    /// The image the CronJobs run.
    pub(crate) operator_image: &'a str,
    /// The ClusterRole Vault's service registration is bound to (see `Settings`).
    pub(crate) server_cluster_role: Option<&'a str>,
    /// What the Vault-side bootstrap creates (for the self-init stanza).
    pub(crate) bootstrap: &'a BootstrapSpec,
    /// TLS as this pass leaves it.
    pub(crate) tls: &'a Tls,
    /// The raft peers an earlier pass saw, for a pass that cannot read raft.
    pub(crate) remembered_peers: Option<&'a [String]>,
    /// The clock value of this pass.
    pub(crate) now: jiff::Timestamp,
}

/// Every write of a pass, decided.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Generate the backup encryption key (it does not exist yet).
    pub(crate) create_backup_key: bool,
    /// Objects to apply: missing or drifted.
    pub(crate) apply: Vec<Manifest>,
    /// Objects already as rendered.
    pub(crate) unchanged: usize,
    /// Owned objects the spec no longer asks for: kind and name.
    pub(crate) prune: Vec<(String, String)>,
    /// ClusterRoleBindings of this cluster under a name it no longer uses.
    pub(crate) remove_bindings: Vec<String>,
    /// What the lifecycle does about the Vault nodes.
    pub(crate) lifecycle: Vec<LifecycleAction>,
    /// A rollout step to carry out: delete a pod or have the active node step down.
    pub(crate) rollout: Option<RolloutStep>,
    /// A key rotation to carry out through the active pod.
    pub(crate) rotation: Option<RotationStep>,
    /// The disruptive operation this pass would run (its lock is taken in the pass); the
    /// holder is left empty here.
    pub(crate) operation: Option<OperationStatus>,
    /// What the operator waits for besides the lifecycle, in a sentence.
    pub(crate) waiting_for: Option<String>,
    /// Why TLS is not ready, when it is not.
    pub(crate) tls_problem: Option<String>,
    /// The raft peers (node ids) this pass knows of, to remember.
    pub(crate) raft_peers: Option<Vec<String>>,
    /// Pods whose data volume is discarded: each holds the raft data of a peer removed
    /// earlier (see `vaultkeeper_vault::decide`, rule 6).
    pub(crate) resets: Vec<NodeReset>,
    /// Something only a person can fix, with its reason: Degraded says so.
    pub(crate) needs_person: Option<(&'static str, String)>,
    /// The operation whose disruptive steps this plan holds, named as the backup before
    /// it records it (see `snapshot`): a rolling update by the revision it rolls to, a
    /// rekey by its request, a scale-down that removes raft peers by when it started.
    pub(crate) disruption: Option<String>,
    /// The backup CronJob's `jobTemplate` as rendered this pass, for the one-off backup
    /// before a disruptive operation.
    pub(crate) backup_job_template: Option<serde_json::Value>,
    /// What this pass does about objects of this cluster's names it does not own: a
    /// refusal, or the takeover of a Helm release (see `adopt.rs`).
    pub(crate) adoption: Option<Adoption>,
}

/// A pod to re-create empty, and the claim of its raft data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeReset {
    /// The pod.
    pub(crate) pod: String,
    /// Its UID, so only the pod that was observed is deleted.
    pub(crate) uid: String,
    /// The PersistentVolumeClaim its `data` volume mounts.
    pub(crate) claim: String,
}

/// A key rotation a person asked for (`spec.keys.rotation`), with the request value it
/// answers and the active pod it goes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RotationStep {
    /// New shares.
    Rekey {
        /// `spec.keys.rotation.rekey`.
        request: String,
        /// The active pod.
        via: PodName,
    },
    /// A new encryption key in the keyring.
    EncryptionKey {
        /// `spec.keys.rotation.encryptionKey`.
        request: String,
        /// The active pod.
        via: PodName,
    },
}

/// The rotation this pass should run: one asked for and not done yet, on a cluster whose
/// lifecycle has nothing to do (every pod unsealed, bootstrap applied) and with an active
/// pod. A rekey goes first.
fn rotation(vc: &VaultCluster, observed: &Observed, plan: &Plan) -> Option<RotationStep> {
    let asked = vc.spec.keys.rotation.as_ref()?;
    if !plan.lifecycle.is_empty() || vc.spec.keys.initialization == Initialization::SelfInit {
        return None;
    }
    let done = vc.status.as_ref().and_then(|s| s.rotation.as_ref());
    let pending = |asked: &Option<String>, done: Option<&vaultkeeper_api::RotationDone>| {
        asked
            .as_ref()
            .filter(|request| done.is_none_or(|d| &d.request != *request))
            .cloned()
    };
    let via = observed
        .nodes
        .as_ref()?
        .nodes
        .iter()
        .find(|n| n.state == NodeState::Active)?
        .pod
        .clone();
    if let Some(request) = pending(&asked.rekey, done.and_then(|d| d.rekey.as_ref())) {
        return Some(RotationStep::Rekey { request, via });
    }
    pending(
        &asked.encryption_key,
        done.and_then(|d| d.encryption_key.as_ref()),
    )
    .map(|request| RotationStep::EncryptionKey { request, via })
}

impl Plan {
    /// Drops every disruptive step (a rollout step, a step-down or peer removal of the
    /// scale-down): the operation lock is not this replica's for them this pass.
    pub(crate) fn hold_disruptions(&mut self) {
        self.rollout = None;
        self.rotation = None;
        self.resets.clear();
        self.lifecycle.retain(|a| {
            !matches!(
                a,
                LifecycleAction::StepDown { .. }
                    | LifecycleAction::RemovePeer { .. }
                    | LifecycleAction::ResetNode { .. }
            )
        });
    }
}

/// Plans a pass.
pub(crate) fn cluster(
    vc: &VaultCluster,
    observed: &Observed,
    inputs: &PlanInputs<'_>,
) -> Result<Plan, Error> {
    let name = vc.metadata.name.clone().unwrap_or_default();
    let namespace = vc.metadata.namespace.clone().ok_or(Error::NoNamespace)?;
    let names = ClusterNames::new(&name);
    let previous = vc.status.as_ref();
    let desired = desired_pods(vc);
    let mut plan = Plan {
        tls_problem: inputs.tls.problem.clone(),
        create_backup_key: observed.backup_key_exists == Some(false),
        ..Plan::default()
    };

    // 1. The lifecycle's decision about the Vault nodes.
    if let Some(observation) = &observed.nodes {
        plan.lifecycle = decide(&nodes::intent_for(vc, &desired)?, observation);
    }
    for action in &plan.lifecycle {
        if let LifecycleAction::ResetNode { pod } = action {
            match node_reset(&observed.pods, pod.as_str()) {
                Some(reset) => plan.resets.push(reset),
                None => {
                    plan.needs_person = Some((
                        "RaftDataOfRemovedPeer",
                        format!(
                            "pod {pod} is unsealed but not a member of raft: its data is that of a peer removed earlier, and it has no `data` volume claim vaultkeeper could reset. Delete the volume that holds its raft data and then the pod, so it starts empty and joins again (docs/operations.md, \"A pod outside raft\")"
                        ),
                    ));
                }
            }
        }
    }
    let stopped = plan
        .lifecycle
        .iter()
        .any(|a| matches!(a, LifecycleAction::Stop(_)));
    let raft = observed.nodes.as_ref().and_then(|o| o.raft.as_ref());
    plan.raft_peers = raft
        .map(|r| r.servers.iter().map(|s| s.node_id.clone()).collect())
        .or_else(|| inputs.remembered_peers.map(<[String]>::to_vec))
        .or_else(|| {
            previous
                .and_then(|s| s.raft.as_ref())
                .map(|r| r.voters.iter().chain(&r.non_voters).cloned().collect())
        });

    // 2. Render, holding a scale-down back while departing peers are still in raft.
    let live_sts = observed.live.statefulset(&names.statefulset());
    let initialized = previous.is_some_and(|s| s.initialized);
    let statefulset_replicas = rollout::statefulset_replicas(
        live_sts
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas),
        vc.spec.replicas,
        &desired,
        plan.raft_peers.as_deref(),
        initialized,
    );
    let self_init_stanza = match (vc.spec.keys.initialization, initialized) {
        (Initialization::SelfInit, false) => Some(vaultkeeper_vault::selfinit::initialize_stanza(
            inputs.bootstrap,
        )?),
        _ => None,
    };
    let uid = vc.metadata.uid.clone().unwrap_or_default();
    let mut render = RenderContext::new(&namespace, inputs.tls.material.as_ref());
    render.operator_image = inputs.operator_image;
    render.owner_uid = Some(&uid);
    render.server_cluster_role = inputs.server_cluster_role;
    render.statefulset_replicas = statefulset_replicas;
    render.self_init_stanza = self_init_stanza.as_deref();
    let (wanted, held_back, missing_api) = available(
        vaultkeeper_render::render(vc, &render)?,
        observed.capabilities,
        previous.is_some_and(|s| s.bootstrapped),
    );
    plan.backup_job_template = wanted
        .iter()
        .find(|m| m.kind == "CronJob" && m.name == names.backup())
        .map(|m| m.object["spec"]["jobTemplate"].clone());
    if let Some(problem) = missing_api {
        plan.tls_problem = Some(problem);
    }

    // 3. Apply what is missing or drifted; prune what the spec dropped. Objects of our
    //    names that are not ours are adopted or left alone (adopt.rs).
    let adoption = adopt::decide(
        vc.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(adopt::ANNOTATION))
            .map(String::as_str),
        &namespace,
        &observed.namesakes,
        &wanted,
        (&nodes::keys_secret_name(vc), observed.keys_record),
    );
    let changes = apply::changes(wanted, &observed.live, &held_back, &uid);
    plan.apply = changes.apply;
    plan.unchanged = changes.unchanged;
    plan.prune = changes.prune;
    match adoption {
        Adoption::Nothing => {}
        Adoption::Refused { reason, message } => {
            plan.apply.clear();
            plan.prune.clear();
            plan.lifecycle.clear();
            plan.waiting_for = Some(message.clone());
            plan.needs_person = Some((reason, message.clone()));
            plan.adoption = Some(Adoption::Refused { reason, message });
            return Ok(plan);
        }
        Adoption::TakeOver(takeover) => {
            // The release's StatefulSet is replaced, never applied over; ours is created
            // once it is gone, and the rollout starts from there.
            plan.apply.retain(|m| m.kind != "StatefulSet");
            plan.waiting_for = Some(format!(
                "adopting Helm release {}: {}",
                takeover.release,
                if takeover.statefulset_going {
                    "waiting for its StatefulSet to be deleted (its pods keep running)"
                } else {
                    "replacing its StatefulSet (its pods keep running) and taking over its objects"
                }
            ));
            plan.adoption = Some(Adoption::TakeOver(takeover));
            return Ok(plan);
        }
    }
    let legacy = names.legacy_server_cluster_role_binding(&namespace);
    if observed
        .live
        .get("ClusterRoleBinding", &legacy)
        .is_some_and(|b| binds_service_account(b, &namespace, &names.service_account()))
    {
        plan.remove_bindings.push(legacy);
    }

    // 5. One disruptive operation at a time.
    let departed = raft.map_or(0, |r| {
        r.servers
            .iter()
            .filter(|s| !desired.contains(&s.node_id))
            .count()
    });
    let leftovers = observed
        .pods
        .iter()
        .filter(|p| !desired.contains(&pod_name(p)))
        .count();
    if !plan.resets.is_empty() {
        let pods: Vec<&str> = plan.resets.iter().map(|r| r.pod.as_str()).collect();
        plan.operation = Some(OperationStatus {
            kind: OperationKind::NodeReset,
            started_at: started_at(previous, OperationKind::NodeReset, inputs.now),
            detail: Some(format!(
                "resetting {}: their volumes hold a removed raft peer's data",
                pods.join(", ")
            )),
            holder: None,
        });
        return Ok(plan);
    }
    if departed > 0 || leftovers > 0 {
        let since = started_at(previous, OperationKind::ScaleDown, inputs.now);
        if departed > 0 {
            // Whole seconds: status keeps no more, and the name must not change once the
            // lock's start time has been written and read back.
            let second = jiff::Timestamp::from_second(since.0.as_second()).unwrap_or(since.0);
            plan.disruption = Some(format!("ScaleDown started {second}"));
        }
        plan.operation = Some(OperationStatus {
            kind: OperationKind::ScaleDown,
            started_at: since,
            detail: Some(format!(
                "{departed} raft peers and {leftovers} pods to remove"
            )),
            holder: None,
        });
        return Ok(plan);
    }
    if stopped {
        return Ok(plan);
    }
    let sts_applied_now = live_sts.is_some()
        && plan
            .apply
            .iter()
            .any(|m| m.kind == "StatefulSet" && m.name == names.statefulset());
    let settled = rollout::statefulset_settled(
        sts_applied_now,
        live_sts.as_ref().and_then(|s| s.metadata.generation),
        live_sts
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.observed_generation),
    );
    let rolling = |detail: &str| OperationStatus {
        kind: OperationKind::RollingUpdate,
        started_at: started_at(previous, OperationKind::RollingUpdate, inputs.now),
        detail: Some(detail.to_owned()),
        holder: None,
    };
    if !settled {
        let reason = "the StatefulSet controller has not taken the new pod template yet";
        plan.operation = Some(rolling(reason));
        plan.waiting_for = Some(format!("rolling update: {reason}"));
        return Ok(plan);
    }
    // Without an update revision the StatefulSet controller has not looked at the new
    // template yet: nothing to roll.
    let Some(update_revision) = update_revision(&observed.live, &names) else {
        return Ok(with_rotation(vc, observed, previous, inputs.now, plan));
    };
    let pods = rollout_view(&observed.pods, observed.nodes.as_ref());
    let (detail, step) = match rollout::next_step(&pods, Some(&update_revision), desired.len()) {
        RolloutStep::Done => return Ok(with_rotation(vc, observed, previous, inputs.now, plan)),
        RolloutStep::Wait(reason) => (reason, None),
        RolloutStep::DeletePod(pod) => (
            format!("replacing {pod}"),
            Some(RolloutStep::DeletePod(pod)),
        ),
        RolloutStep::StepDown(pod) => (
            format!("{pod} stepping down"),
            Some(RolloutStep::StepDown(pod)),
        ),
    };
    plan.waiting_for = Some(format!("rolling update: {detail}"));
    plan.operation = Some(rolling(&detail));
    if step.is_some() {
        plan.disruption = Some(format!("RollingUpdate to revision {update_revision}"));
    }
    plan.rollout = step;
    Ok(plan)
}

/// `plan` with the key rotation this pass runs, if any, as its operation.
fn with_rotation(
    vc: &VaultCluster,
    observed: &Observed,
    previous: Option<&VaultClusterStatus>,
    now: jiff::Timestamp,
    mut plan: Plan,
) -> Plan {
    if let Some(step) = rotation(vc, observed, &plan) {
        if let RotationStep::Rekey { request, .. } = &step {
            plan.disruption = Some(format!("Rekey {request:?}"));
        }
        let detail = match &step {
            RotationStep::Rekey { request, .. } => format!("rekey {request:?}: new unseal shares"),
            RotationStep::EncryptionKey { request, .. } => {
                format!("encryption key rotation {request:?}")
            }
        };
        plan.operation = Some(OperationStatus {
            kind: OperationKind::Rekey,
            started_at: started_at(previous, OperationKind::Rekey, now),
            detail: Some(detail),
            holder: None,
        });
        plan.rotation = Some(step);
    }
    plan
}

/// The rendered objects this cluster can have now: objects of an API that is not
/// installed are held back (and named, so they are never pruned), and the CronJobs are
/// suspended until the Vault-side bootstrap has created the roles their Jobs log in with
/// (a new cluster then never starts with a failed first backup). The third value says
/// why TLS cannot be ready when cert-manager is asked for but missing.
fn available(
    rendered: Vec<Manifest>,
    capabilities: Capabilities,
    bootstrapped: bool,
) -> (Vec<Manifest>, BTreeSet<String>, Option<String>) {
    let mut held_back = BTreeSet::new();
    let mut problem = None;
    let wanted = rendered
        .into_iter()
        .filter(|m| {
            let served = match m.api_version.split('/').next() {
                Some("monitoring.coreos.com") => capabilities.prometheus_operator,
                Some("cert-manager.io") => {
                    if !capabilities.cert_manager {
                        problem = Some("spec.tls.mode CertManager, but cert-manager (cert-manager.io) is not installed in this cluster".to_owned());
                    }
                    capabilities.cert_manager
                }
                _ => true,
            };
            if !served {
                held_back.insert(m.kind.clone());
            }
            served
        })
        .map(|mut m| {
            if m.kind == "CronJob" && !bootstrapped {
                m.object["spec"]["suspend"] = serde_json::Value::Bool(true);
            }
            m
        })
        .collect();
    (wanted, held_back, problem)
}

/// Whether the (cluster-scoped) binding `object` binds exactly this ServiceAccount: how
/// the operator tells its own ClusterRoleBinding from another's that has the same name.
pub(crate) fn binds_service_account(
    object: &serde_json::Value,
    namespace: &str,
    service_account: &str,
) -> bool {
    object["subjects"].as_array().is_some_and(|subjects| {
        !subjects.is_empty()
            && subjects.iter().all(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == service_account
                    && s["namespace"] == namespace
            })
    })
}

fn update_revision(live: &LiveObjects, names: &ClusterNames) -> Option<String> {
    live.statefulset(&names.statefulset())?
        .status?
        .update_revision
}

fn started_at(
    previous: Option<&VaultClusterStatus>,
    kind: OperationKind,
    now: jiff::Timestamp,
) -> Time {
    previous
        .and_then(|s| s.operation.as_ref())
        .filter(|o| o.kind == kind)
        .map_or(Time(now), |o| o.started_at.clone())
}

/// What resetting `pod` deletes: the pod (by UID) and the claim its `data` volume mounts.
fn node_reset(pods: &[k8s_openapi::api::core::v1::Pod], pod: &str) -> Option<NodeReset> {
    let found = pods.iter().find(|p| pod_name(p) == pod)?;
    let claim = found
        .spec
        .as_ref()?
        .volumes
        .as_ref()?
        .iter()
        .find(|v| v.name == "data")?
        .persistent_volume_claim
        .as_ref()?
        .claim_name
        .clone();
    Some(NodeReset {
        pod: pod.to_owned(),
        uid: found.metadata.uid.clone()?,
        claim,
    })
}

fn pod_name(pod: &k8s_openapi::api::core::v1::Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The `controller-revision-hash` of a pod: which StatefulSet revision it runs.
pub(crate) fn pod_revision(pod: &k8s_openapi::api::core::v1::Pod) -> Option<String> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("controller-revision-hash"))
        .cloned()
}

/// The pods as the rollout sees them: revision, and what the lifecycle observed.
fn rollout_view(
    pods: &[k8s_openapi::api::core::v1::Pod],
    nodes: Option<&Observation>,
) -> Vec<RolloutPod> {
    pods.iter()
        .map(|p| {
            let name = pod_name(p);
            let state = nodes
                .and_then(|o| o.nodes.iter().find(|n| n.pod.as_str() == name))
                .map(|n| &n.state);
            let voter = nodes
                .and_then(|o| o.raft.as_ref())
                .is_some_and(|r| r.servers.iter().any(|s| s.node_id == name && s.voter));
            RolloutPod {
                ordinal: PodName::new(name.clone())
                    .ok()
                    .and_then(|n| n.ordinal())
                    .unwrap_or(0),
                revision: pod_revision(p),
                terminating: p.metadata.deletion_timestamp.is_some(),
                unsealed: matches!(state, Some(NodeState::Active | NodeState::Standby)),
                active: matches!(state, Some(NodeState::Active)),
                voter,
                name,
            }
        })
        .collect()
}
