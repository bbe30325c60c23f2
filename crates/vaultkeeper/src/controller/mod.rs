//! The VaultCluster controller: one pass, from a watch event to the status write.
//!
//! ```text
//!   watch event ──► validate ──► observe ──► plan ──► act ──► status
//!                   (pure)       (reads)     (pure)   (writes) (pure, then one write)
//! ```
//!
//! [`observe`] makes every read (the cluster's objects, pods, TLS Secrets, the Vault nodes
//! through the lifecycle, what the Jobs reported) and ends the pass on a failed read, so
//! nothing is written on a partial picture. [`plan`] decides every write without any I/O
//! and is tested by tables. [`act`] carries the plan out. The status is computed from what
//! was observed, planned and done ([`status`], [`jobs`]) and written only when it changed.
//! Pod events trigger a pass at once, so a restarted pod is unsealed without polling; a
//! pass that finds nothing to do writes nothing.

mod act;
mod adopt;
mod context;
mod error;
mod escrow;
mod events;
#[cfg(feature = "fault-injection")]
pub mod faults;
mod held_keys;
mod jobs;
pub mod lock;
pub(crate) mod members;
mod nodes;
mod observe;
mod pace;
mod plan;
mod record;
pub mod restore;
pub mod rollout;
pub mod snapshot;
pub mod status;
mod tls;
mod write;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::{debug, instrument, warn};
use vaultkeeper_api::{ClusterNames, OperationStatus, Phase, VaultCluster};

pub use context::{Capabilities, Context, Settings};
pub use error::Error;

use crate::metrics::{ClusterLabels, ErrorLabels};
use events::EventSpec;
use status::{PodView, StatusInputs};

/// The finalizer that removes the cluster-scoped ClusterRoleBinding (and, with
/// `deletionPolicy: Delete`, the volumes and keys) when a VaultCluster is deleted.
pub const FINALIZER: &str = "vaultkeeper.io/cleanup";

pub use context::CONTROLLER_NAME;

/// Reconciles one VaultCluster.
#[instrument(skip_all, fields(namespace = vc.namespace().unwrap_or_default(), name = vc.name_any()))]
pub async fn reconcile(vc: Arc<VaultCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = vc.namespace().ok_or(Error::NoNamespace)?;
    let labels = ClusterLabels {
        namespace: namespace.clone(),
        name: vc.name_any(),
    };
    ctx.metrics.reconciles.get_or_create(&labels).inc();
    let started = Instant::now();
    let api: Api<VaultCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer::finalizer(&api, FINALIZER, vc, |event| async {
        match event {
            FinalizerEvent::Apply(vc) => pass(vc, ctx.clone()).await,
            FinalizerEvent::Cleanup(vc) => write::cleanup(vc, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

/// Requeues a failed pass with a short delay and counts the error by reason.
pub fn error_policy(vc: Arc<VaultCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(namespace = vc.namespace().unwrap_or_default(), name = vc.name_any(), error = %error, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            namespace: vc.namespace().unwrap_or_default(),
            name: vc.name_any(),
            reason: error.reason().to_owned(),
        })
        .inc();
    Action::requeue(Duration::from_secs(10))
}

/// One pass over a cluster that is not being deleted.
async fn pass(vc: Arc<VaultCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = vc.namespace().ok_or(Error::NoNamespace)?;
    let labels = ClusterLabels {
        namespace: namespace.clone(),
        name: vc.name_any(),
    };
    let memory = ctx.memory(&format!("{namespace}/{}", vc.name_any()));
    let mut memory = memory.lock().await;
    let now = jiff::Timestamp::now();
    memory.cluster = Some(vc.clone());

    // 0. Keys held in memory are saved before anything else, even before a read that
    //    could end this pass.
    held_keys::flush_at_pass_start(&ctx, &vc, &mut memory).await;

    // 1. Validate: an invalid spec changes nothing but the status.
    if let Err(invalid) = vaultkeeper_api::validate(&vc) {
        return write::blocked(&ctx, &vc, &invalid, now).await;
    }
    //    The fields fixed at initialization must still be what they were, even when the
    //    change reached the cluster without the CRD's transition rules.
    if let Some(recorded) = vc.status.as_ref().and_then(|s| s.initialized_with.as_ref()) {
        let now_fixed = vaultkeeper_api::fixed_fields(&vc.name_any(), &vc.spec);
        let violations = vaultkeeper_api::validate_fixed(recorded, &now_fixed);
        if !violations.is_empty() {
            let invalid = vaultkeeper_api::InvalidSpec { violations };
            return write::blocked(&ctx, &vc, &invalid, now).await;
        }
    }
    // The platform's image policy: an image it refuses never reaches a pod, and the pods
    // of a running cluster whose image it no longer allows are handed no key.
    if let Err(refused) = ctx
        .settings
        .image_policy
        .check("spec.image", &vc.spec.effective_image())
    {
        let invalid = vaultkeeper_api::InvalidSpec {
            violations: vec![refused],
        };
        return write::blocked(&ctx, &vc, &invalid, now).await;
    }

    // 2. Observe: every read. A failed read ends the pass before anything is written.
    let started = Instant::now();
    let mut observed = match observe::cluster(&ctx, &vc, &mut memory).await {
        Ok(observed) => observed,
        Err(e) => return Err(write::failed_read(&ctx, &vc, e, now).await),
    };

    let observed_ms = started.elapsed().as_millis();
    // 3. Plan: keep or renew the internal PKI (new keys need randomness, so they are made
    //    here, not in the plan), then decide every write.
    let tls = tls::settle(&vc, &namespace, &observed.tls, now)?;
    let bootstrap = nodes::bootstrap_spec(&ctx.settings, &vc, &namespace);
    let mut plan = plan::cluster(
        &vc,
        &observed,
        &plan::PlanInputs {
            operator_image: &ctx.settings.operator_image,
            server_cluster_role: ctx.settings.server_cluster_role.as_deref(),
            bootstrap: &bootstrap,
            tls: &tls,
            remembered_peers: memory.raft_peers.as_deref(),
            now,
        },
    )?;

    //    The operation lock: nothing disruptive runs unless this replica holds it for
    //    the operation the plan is in (lock.rs).
    let gate = lock::gate(&ctx, &vc, plan.operation.as_ref(), now).await?;
    let wanted = plan.operation.take();
    let held = gate
        .held
        .as_ref()
        .filter(|h| wanted.as_ref().is_some_and(|w| w.kind == h.kind));
    if held.is_none() {
        plan.hold_disruptions();
        if let (Some(wanted), Some(waiting)) = (&wanted, &gate.waiting) {
            plan.waiting_for = Some(format!("{:?}: waiting for {waiting}", wanted.kind));
        }
    }
    //    The backup before a disruptive operation: decided once the lock is ours for it,
    //    so nothing else disruptive can start between the backup and the operation; while
    //    it is pending, the operation's steps wait (snapshot.rs). A snapshot taken is
    //    recorded before the first step runs, or the step waits for the next pass.
    let mut snapshot_decision = snapshot::decide(&snapshot::Inputs {
        cluster: &vc.name_any(),
        spec: &vc.spec.backup,
        bootstrapped: vc.status.as_ref().is_some_and(|s| s.bootstrapped),
        operation: held.and(plan.disruption.as_deref()),
        recorded: vc.status.as_ref().and_then(|s| s.snapshot.as_ref()),
        jobs: &observed.snapshot_jobs,
        now,
    });
    let mut status_version = gate.resource_version.clone();
    if let snapshot::Decision::Record(record) = &snapshot_decision {
        let written = match ctx.fence().check() {
            Ok(()) => snapshot::record(&ctx.client, &vc, record, status_version.as_deref()).await,
            Err(fenced) => Err(fenced.to_string()),
        };
        match written {
            Ok(version) => status_version = version,
            Err(why) => {
                snapshot_decision = snapshot::Decision::Wait {
                    operation: record.operation.clone(),
                    why,
                };
            }
        }
    }
    if snapshot_decision.holds() {
        plan.hold_disruptions();
        plan.waiting_for = snapshot_decision.waiting_for();
    }
    if let snapshot::Decision::Blocked { reason, message } = &snapshot_decision {
        plan.needs_person = Some((reason, message.clone()));
    }
    let operation = match (held, &wanted) {
        (Some(held), Some(wanted)) => Some(OperationStatus {
            // While the backup is pending, that is what the operation is doing.
            detail: snapshot_decision
                .waiting_for()
                .or_else(|| wanted.detail.clone()),
            ..held.operation.clone()
        }),
        _ => gate.operation.clone(),
    };

    // 4. Act: every write the plan decided.
    let nodes = observed
        .nodes
        .take()
        .zip(memory.nodes.as_mut().map(|n| &mut n.lifecycle));
    let acted = act::cluster(&ctx.client, &vc, &plan, nodes, ctx.fence()).await?;
    let snapshot_started = match &snapshot_decision {
        snapshot::Decision::Create { operation, job } => Some(
            match (ctx.fence().check(), plan.backup_job_template.as_ref()) {
                (Err(fenced), _) => Err(fenced.to_string()),
                (Ok(()), None) => Err(
                    "the backup CronJob is not rendered, so there is no Job template".to_owned(),
                ),
                (Ok(()), Some(template)) => {
                    match snapshot::job(&vc, &namespace, template, operation, job) {
                        Some(object) => snapshot::create(&ctx.client, &namespace, object).await,
                        None => Err("the VaultCluster has no UID yet".to_owned()),
                    }
                }
            },
        ),
        _ => None,
    };

    // 5. Status, Events and metrics from what was observed, planned and done.
    let previous = vc.status.as_ref();
    let bootstrapped = memory
        .nodes
        .as_ref()
        .map(|n| n.lifecycle.is_bootstrapped())
        .unwrap_or_else(|| previous.is_some_and(|s| s.bootstrapped));
    let mut status = status::compute(&StatusInputs {
        generation: vc.metadata.generation,
        previous,
        now,
        desired_replicas: vc.spec.replicas,
        invalid: None,
        pods: &pod_views(&observed, &vc),
        pass: acted.pass.as_ref(),
        bootstrapped,
        tls: tls.status.clone(),
        tls_problem: plan.tls_problem.clone(),
        operation,
        // A refused StatefulSet change means the cluster is not what the spec asks for.
        waiting_for: plan
            .waiting_for
            .clone()
            .or_else(|| acted.needs_person.as_ref().map(|(_, m)| m.clone())),
        needs_person: plan
            .needs_person
            .clone()
            .or_else(|| acted.needs_person.clone()),
        errors: acted.errors.clone(),
        fixed: Some(vaultkeeper_api::fixed_fields(&vc.name_any(), &vc.spec)),
    });
    status.rotation = record::rotation(previous, acted.rotated.as_ref(), now);
    let backups = jobs::fold_backups(
        &vc.spec.backup,
        vc.metadata.generation,
        previous.and_then(|s| s.backup.as_ref()),
        &observed.backup_jobs,
        &mut status,
        now,
    );
    let snapshot_events = snapshot::fold(
        &vc.spec.backup,
        &snapshot_decision,
        snapshot_started.as_ref(),
        &mut status,
        previous,
        vc.metadata.generation,
        now,
    );
    let tokens = jobs::fold_metrics_token(
        &vc,
        jobs::TokenObserved {
            token: &observed.metrics_token,
            runs: &observed.token_jobs,
            known: &memory.token_runs,
            prometheus_operator: observed.capabilities.prometheus_operator,
        },
        &mut status,
        now,
    );
    // Key escrow: after every write (unsealing never waits for it), from the stored record.
    let escrow_events = escrow::step(&ctx, &vc, &mut status, now).await;

    let mut events: Vec<EventSpec> = Vec::new();
    events.extend(
        tls.issued
            .clone()
            .map(|reason| EventSpec::normal("CertificateIssued", reason)),
    );
    events.extend(gate.events.iter().cloned());
    events.extend(acted.events.iter().cloned());
    events.extend(events::unrepeated(
        events::foreign_pods(&observed.foreign_pods),
        &mut memory.warned,
        Instant::now(),
    ));
    if let Some(pass) = &acted.pass {
        let keys_secret = nodes::keys_secret_name(&vc);
        let lifecycle = events::lifecycle(pass, &keys_secret);
        events.extend(events::unrepeated(
            lifecycle,
            &mut memory.warned,
            Instant::now(),
        ));
        record::unseals(&ctx.metrics, &labels, &pass.outcomes);
    }
    events.extend(backups.events.iter().cloned());
    events.extend(events::unrepeated(
        snapshot_events,
        &mut memory.warned,
        Instant::now(),
    ));
    events.extend(tokens.events.iter().cloned());
    events.extend(events::unrepeated(
        escrow_events,
        &mut memory.warned,
        Instant::now(),
    ));
    for event in &events {
        ctx.publish(&vc, event).await;
    }
    record::backups(
        &ctx.metrics,
        &labels,
        &backups.gauges,
        status.backup.as_ref(),
        backups.failures,
    );
    record::metrics_token(&ctx.metrics, &labels, &tokens.gauges, tokens.failures);
    record::status(&ctx.metrics, &labels, &status);

    // What the next pass needs to remember.
    if plan.raft_peers.is_some() {
        memory.raft_peers = plan.raft_peers.clone();
    }
    if let Some(runs) = backups.remember {
        memory.backup_runs = runs;
    }
    if let Some(runs) = tokens.remember {
        memory.token_runs = runs;
    }

    // A failed escrow is retried soon, not at the next resync.
    let escrow_pending = status
        .conditions
        .iter()
        .any(|c| c.type_ == vaultkeeper_api::condition::KEYS_ESCROWED && c.status == "False");
    let converged = status.phase == Some(Phase::Ready) && !escrow_pending;
    let status_phase = status.phase;
    // The status write carries the resourceVersion the pass read (or its own lock write
    // left): a VaultCluster changed in between is read again, never overwritten.
    let status_written = match status_version.as_deref() {
        Some(version) if !gate.conflict => write::status(&ctx, &vc, status, version).await?,
        _ => false,
    };
    ctx.metrics
        .writes_last_pass
        .get_or_create(&labels)
        .set(acted.writes + u64::from(status_written));
    let seen = if converged {
        pace::Seen::Converged
    } else if acted.pass.as_ref().is_some_and(|p| {
        pace::coming_up(p, !acted.errors.is_empty(), &|pod| {
            containers_run(&observed.pods, pod)
        })
    }) && plan.waiting_for.is_none()
    {
        pace::Seen::ComingUp
    } else {
        pace::Seen::Other
    };
    let (pause, spent) = pace::next(
        seen,
        memory.quick_looks,
        ctx.settings.resync,
        ctx.settings.converging_requeue,
    );
    memory.quick_looks = spent;
    debug!(
        cluster = %labels.name,
        phase = ?status_phase,
        next_look_ms = pause.as_millis(),
        observed_ms,
        pass_ms = started.elapsed().as_millis(),
        "pass done"
    );
    Ok(Action::requeue(pause))
}

/// Whether `name`'s containers all run (started, not waiting or terminated).
fn containers_run(pods: &[Pod], name: &str) -> bool {
    pods.iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|c| {
            !c.is_empty()
                && c.iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}

/// The pods as status shows them: ready, and on the StatefulSet's current revision.
fn pod_views(observed: &observe::Observed, vc: &VaultCluster) -> Vec<PodView> {
    let names = ClusterNames::new(vc.name_any());
    let update_revision = observed
        .live
        .statefulset(&names.statefulset())
        .and_then(|s| s.status)
        .and_then(|s| s.update_revision);
    observed
        .pods
        .iter()
        .map(|p| PodView {
            name: p.name_any(),
            ready: p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            up_to_date: update_revision.is_some() && plan::pod_revision(p) == update_revision,
        })
        .collect()
}

/// Runs the controller for the VaultClusters of `namespace` (every namespace when `None`)
/// until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    fn api<K>(client: &kube::Client, namespace: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    // VaultRestores run next to the VaultClusters, with the same context and leader fence.
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let restores = tokio::spawn(restore::run(
        ctx.clone(),
        namespace.clone(),
        shutdown.clone(),
    ));
    let ours = watcher::Config::default().labels("app.kubernetes.io/managed-by=vaultkeeper");
    let pods = watcher::Config::default().labels("component=server,app.kubernetes.io/instance");
    Controller::new(
        api::<VaultCluster>(&client, &namespace),
        watcher::Config::default(),
    )
    .owns(api::<StatefulSet>(&client, &namespace), ours.clone())
    .owns(api::<Service>(&client, &namespace), ours.clone())
    .owns(api::<ConfigMap>(&client, &namespace), ours.clone())
    .owns(api::<Secret>(&client, &namespace), ours.clone())
    .owns(api::<ServiceAccount>(&client, &namespace), ours.clone())
    .owns(api::<Role>(&client, &namespace), ours.clone())
    .owns(api::<RoleBinding>(&client, &namespace), ours.clone())
    .owns(
        api::<PodDisruptionBudget>(&client, &namespace),
        ours.clone(),
    )
    .owns(api::<CronJob>(&client, &namespace), ours)
    // Jobs belong to the CronJobs (the backups before disruptive operations to the
    // VaultCluster); they carry the cluster's labels, so a finished backup or token
    // renewal reaches its cluster's status at once, and a waiting operation goes on.
    .watches(
        api::<Job>(&client, &namespace),
        watcher::Config::default().labels(
            "app.kubernetes.io/managed-by=vaultkeeper,app.kubernetes.io/component in (backup,metrics-token)",
        ),
        |job| {
            let cluster = job.labels().get("app.kubernetes.io/instance").cloned();
            cluster
                .zip(job.namespace())
                .map(|(name, ns)| ObjectRef::<VaultCluster>::new(&name).within(&ns))
        },
    )
    // Pods are the StatefulSet's, not ours: map them to their cluster by label, so a
    // restarted pod is unsealed the moment it appears.
    .watches(api::<Pod>(&client, &namespace), pods, |pod| {
        let cluster = pod.labels().get("app.kubernetes.io/instance").cloned();
        let namespace = pod.namespace();
        cluster
            .zip(namespace)
            .map(|(name, ns)| ObjectRef::<VaultCluster>::new(&name).within(&ns))
    })
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx.clone())
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "controller event");
        }
    })
    .await;
    if let Err(e) = restores.await {
        warn!(error = %e, "the VaultRestore controller ended abnormally");
    }
    // The passes have finished; init output still held in memory is saved before this
    // returns, however long that takes.
    held_keys::flush_before_exit(&ctx).await;
}

#[cfg(test)]
mod outcome_tests;
#[cfg(test)]
mod plan_tests;
