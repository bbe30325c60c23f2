//! The VaultCluster controller: one pass, from a watch event to the status write.
//!
//! A pass: validate (SpecValid) → keep the PKI and the backup key → render → apply what
//! drifted and prune what the spec dropped → observe every pod and run the lifecycle
//! decision (init once, unseal, raft, bootstrap) → one rollout step → write the status if it
//! changed. Pod events trigger a pass at once, so a restarted pod is unsealed without
//! polling. A pass that finds nothing to do writes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::sync::Mutex;
use tracing::{info, instrument, warn};
use vaultkeeper_api::names::vault as vault_names;
use vaultkeeper_api::{
    ClusterNames, DeletionPolicy, Flavor, Initialization, OperationKind, OperationStatus,
    RootTokenPolicy, TlsMode, TlsStatus, Transport, UnsealType, VaultCluster, VaultClusterStatus,
};
use vaultkeeper_render::{Labels, Manifest, PkiMaterial, RenderContext, ServerLayout, pki};
use vaultkeeper_vault::bootstrap::{BootstrapSpec, Identity};
use vaultkeeper_vault::client::{
    ExecNodeClient, Executor, HttpNodeClient, HttpOptions, KubernetesAuthConfig, NodeClient,
};
use vaultkeeper_vault::decide::{Action as LifecycleAction, ClusterIntent, InitMode, SealIntent};
use vaultkeeper_vault::keys::KeyStore;
use vaultkeeper_vault::lifecycle::{Done, JwtSource, Lifecycle, OperatorLogin, PassReport};
use vaultkeeper_vault::node::{NodeEndpoint, PodName};

use crate::apply::{self, ApplyError};
use crate::backup;
use crate::custody::{KubeExecutor, SecretKeyStore};
use crate::metrics::{CertificateLabels, ClusterLabels, ErrorLabels, Metrics, UnsealLabels};
use crate::rollout::{self, RolloutPod, RolloutStep};
use crate::status::{self, PodView, StatusInputs};

/// The finalizer that removes the cluster-scoped ClusterRoleBinding (and, with
/// `deletionPolicy: Delete`, the volumes and keys) when a VaultCluster is deleted.
pub const FINALIZER: &str = "vaultkeeper.io/cleanup";

/// The controller's name in Events.
pub const CONTROLLER_NAME: &str = "vaultkeeper";

/// How the operator is set up.
#[derive(Clone)]
pub struct Settings {
    /// The vaultkeeper image the CronJobs run.
    pub operator_image: String,
    /// Namespace of the operator's own ServiceAccount.
    pub operator_namespace: String,
    /// Name of the operator's own ServiceAccount (bound to its Vault role).
    pub operator_service_account: String,
    /// The operator's service-account JWT, for its Kubernetes-auth login to Vault.
    pub jwt: Arc<dyn JwtSource>,
    /// The API server URL Vault's Kubernetes auth method calls.
    pub kubernetes_host: String,
    /// That API server's CA, when Vault's pods cannot use their own service-account CA.
    pub kubernetes_ca: Option<String>,
    /// Name of this replica in Events.
    pub instance: String,
    /// How often a converged cluster is looked at again without any event (certificate
    /// renewal, drift the watches cannot see).
    pub resync: Duration,
    /// How soon a cluster that is still converging is looked at again.
    pub converging_requeue: Duration,
    /// Test hooks: wrap the executor and the key store (fault injection).
    pub hooks: Arc<dyn Hooks>,
}

/// Points where tests inject faults. The default does nothing.
pub trait Hooks: Send + Sync {
    /// Wraps the executor of a cluster.
    fn executor(&self, inner: Arc<dyn Executor>) -> Arc<dyn Executor> {
        inner
    }
    /// Wraps the key store of a cluster.
    fn key_store(&self, inner: Arc<dyn KeyStore>) -> Arc<dyn KeyStore> {
        inner
    }
}

/// No fault injection.
pub struct NoHooks;

impl Hooks for NoHooks {}

/// Why a pass failed. Variant names are the `reason` label of the error metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The VaultCluster has no namespace (it is namespaced; this is a bug elsewhere).
    #[error("the VaultCluster has no namespace")]
    NoNamespace,
    /// Applying or pruning rendered objects failed.
    #[error(transparent)]
    Apply(Box<ApplyError>),
    /// A Kubernetes request failed.
    #[error("{step}: {source}")]
    Kube {
        /// What the operator was doing.
        step: &'static str,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Rendering failed (the message names the field).
    #[error("rendering: {0}")]
    Render(#[from] vaultkeeper_render::RenderError),
    /// The lifecycle library refused or failed.
    #[error("lifecycle: {0}")]
    Lifecycle(#[from] vaultkeeper_vault::Error),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The status could not be turned into JSON (a bug, never expected).
    #[error("serializing the status: {0}")]
    Status(#[from] serde_json::Error),
}

impl Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::NoNamespace => "NoNamespace",
            Error::Apply(_) => "Apply",
            Error::Kube { .. } => "Kube",
            Error::Render(_) => "Render",
            Error::Lifecycle(_) => "Lifecycle",
            Error::Finalizer(_) => "Finalizer",
            Error::Status(_) => "Status",
        }
    }
}

fn kube_err(step: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube {
        step,
        source: Box::new(source),
    }
}

impl From<ApplyError> for Error {
    fn from(error: ApplyError) -> Self {
        Error::Apply(Box::new(error))
    }
}

type ClusterLifecycle = Lifecycle<Arc<dyn NodeClient>, Arc<dyn KeyStore>>;

/// What the operator remembers about one cluster between passes.
#[derive(Default)]
struct ClusterMemory {
    lifecycle: Option<(LifecycleKey, ClusterLifecycle, Option<Arc<HttpNodeClient>>)>,
    /// Warning Events already published, with when, so a repeating failure is not
    /// published on every pass.
    warned: HashMap<String, Instant>,
    /// The raft peers (node ids) the last pass saw, to hold a scale-down back until the
    /// departing ones are gone.
    raft_peers: Option<Vec<String>>,
}

#[derive(Clone, PartialEq, Eq)]
struct LifecycleKey {
    transport: Transport,
    flavor: Flavor,
    keys_secret: String,
    ca: Option<String>,
}

/// Optional APIs found in the cluster.
#[derive(Clone, Copy, Debug, Default)]
struct Capabilities {
    cert_manager: bool,
    prometheus_operator: bool,
}

/// Shared by every pass.
pub struct Context {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// How the operator is set up.
    pub settings: Settings,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    recorder: Recorder,
    clusters: std::sync::Mutex<HashMap<String, Arc<Mutex<ClusterMemory>>>>,
    capabilities: Mutex<Option<(Instant, Capabilities)>>,
    /// Finished backup Jobs already read, by cluster then Job name: a finished Job's
    /// outcome never changes, so its log is read once.
    backup_runs: std::sync::Mutex<HashMap<String, HashMap<String, backup::JobRun>>>,
}

impl Context {
    /// A context for `client`.
    pub fn new(client: kube::Client, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance: Some(settings.instance.clone()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            clusters: std::sync::Mutex::new(HashMap::new()),
            capabilities: Mutex::new(None),
            backup_runs: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn memory(&self, key: &str) -> Arc<Mutex<ClusterMemory>> {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.entry(key.to_owned()).or_default().clone()
    }

    fn forget(&self, key: &str) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.remove(key);
        let mut runs = self.backup_runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.retain(|k, _| k != key && !k.starts_with(&format!("{key}/")));
    }

    async fn capabilities(&self) -> Capabilities {
        let mut cached = self.capabilities.lock().await;
        if let Some((at, caps)) = *cached
            && at.elapsed() < Duration::from_secs(60)
        {
            return caps;
        }
        let groups = self
            .client
            .list_api_groups()
            .await
            .map(|g| g.groups)
            .unwrap_or_default();
        let has = |name: &str| groups.iter().any(|g| g.name == name);
        let caps = Capabilities {
            cert_manager: has("cert-manager.io"),
            prometheus_operator: has("monitoring.coreos.com"),
        };
        *cached = Some((Instant::now(), caps));
        caps
    }

    async fn event(&self, vc: &VaultCluster, type_: EventType, reason: &str, note: String) {
        self.pod_event(vc, type_, reason, note, None).await;
    }

    /// An Event about the cluster and, when it concerns one pod, that pod as the related
    /// object. The pod also keeps the Events of different pods apart: the recorder folds
    /// Events with the same reason and related object into one series that keeps the
    /// first note, so "replacing pod vault-1" would otherwise vanish into the series of
    /// "replacing pod vault-2".
    async fn pod_event(
        &self,
        vc: &VaultCluster,
        type_: EventType,
        reason: &str,
        note: String,
        pod: Option<&str>,
    ) {
        let reference = vc.object_ref(&());
        let event = KubeEvent {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(&note, 1000)),
            action: reason.to_owned(),
            secondary: pod.map(|pod| k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: Some(pod.to_owned()),
                namespace: vc.namespace(),
                ..Default::default()
            }),
        };
        // An Event is often the only record a person has of a lifecycle step (the
        // Initialized Event above all), so a briefly failing API server does not lose it:
        // it is tried more often than other requests.
        let published = apply::with_retries_after(&EVENT_RETRY_PAUSES, || {
            self.recorder.publish(&event, &reference)
        })
        .await;
        if let Err(e) = published {
            warn!(error = %e, reason, "cannot publish an Event");
        }
    }
}

/// Pauses before each repeat of an Event the API server failed with a transient error.
const EVENT_RETRY_PAUSES: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

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
            FinalizerEvent::Apply(vc) => apply_cluster(vc, ctx.clone()).await,
            FinalizerEvent::Cleanup(vc) => cleanup(vc, ctx.clone()).await,
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

/// Removes what garbage collection cannot: the ClusterRoleBinding, and with
/// `deletionPolicy: Delete` the raft volumes, the keys Secret and the backup key.
async fn cleanup(vc: Arc<VaultCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = vc.namespace().ok_or(Error::NoNamespace)?;
    let names = ClusterNames::new(vc.name_any());
    let crbs: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    match crbs
        .delete(
            &names.server_cluster_role_binding(&namespace),
            &DeleteParams::default(),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(kube_err("deleting the ClusterRoleBinding")(e)),
    }
    if vc.spec.deletion_policy == DeletionPolicy::Delete {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        let keys_secret = keys_secret_name(&vc);
        let backup_key = backup_key_ref(&vc).0;
        for secret in [keys_secret, backup_key] {
            match secrets.delete(&secret, &DeleteParams::default()).await {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(kube_err("deleting a Secret")(e)),
            }
        }
        ctx.event(
            &vc,
            EventType::Normal,
            "Deleted",
            "deletionPolicy Delete: the keys Secret and the backup key were deleted; the StatefulSet deletes the volumes".into(),
        )
        .await;
    }
    let key = format!("{namespace}/{}", vc.name_any());
    ctx.forget(&key);
    ctx.metrics.forget(&ClusterLabels {
        namespace,
        name: vc.name_any(),
    });
    Ok(Action::await_change())
}

fn keys_secret_name(vc: &VaultCluster) -> String {
    vc.spec
        .keys
        .secret_name
        .clone()
        .unwrap_or_else(|| ClusterNames::new(vc.name_any()).default_keys_secret())
}

fn backup_key_ref(vc: &VaultCluster) -> (String, String) {
    vc.spec.backup.encryption_key_secret.as_ref().map_or_else(
        || {
            (
                ClusterNames::new(vc.name_any()).default_backup_key_secret(),
                "key".to_owned(),
            )
        },
        |r| (r.name.clone(), r.key.clone()),
    )
}

/// Everything a normal pass does.
async fn apply_cluster(vc: Arc<VaultCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = vc.namespace().ok_or(Error::NoNamespace)?;
    let name = vc.name_any();
    let key = format!("{namespace}/{name}");
    let memory = ctx.memory(&key);
    let mut memory = memory.lock().await;
    let now = jiff::Timestamp::now();
    let previous = vc.status.clone();
    let generation = vc.metadata.generation;

    // 1. Validate. An invalid spec changes nothing but the status.
    if let Err(invalid) = vaultkeeper_api::validate(&vc) {
        let status = status::compute(&StatusInputs {
            generation,
            previous: previous.as_ref(),
            now,
            desired_replicas: vc.spec.replicas,
            invalid: Some(&invalid),
            pods: &[],
            pass: None,
            bootstrapped: previous.as_ref().is_some_and(|s| s.bootstrapped),
            tls: previous.as_ref().and_then(|s| s.tls.clone()),
            tls_problem: None,
            operation: None,
            waiting_for: None,
            errors: Vec::new(),
        });
        let newly_invalid = previous
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "SpecValid"))
            .is_none_or(|c| c.status != "False" || c.observed_generation != generation);
        if newly_invalid {
            ctx.event(&vc, EventType::Warning, "InvalidSpec", invalid.to_string())
                .await;
        }
        write_status(&ctx, &vc, status).await?;
        return Ok(Action::await_change());
    }

    let names = ClusterNames::new(&name);
    let layout = ServerLayout::new(vc.spec.effective_flavor());
    let uid = vc.metadata.uid.clone().unwrap_or_default();
    let mut errors: Vec<String> = Vec::new();

    // 2. PKI and TLS facts.
    let tls = tls_state(&ctx, &vc, &namespace, now).await?;
    if let Some(reason) = &tls.issued {
        ctx.event(&vc, EventType::Normal, "CertificateIssued", reason.clone())
            .await;
    }

    // 3. The backup encryption key: generated once when absent, never owned, never
    //    replaced (every backup ever written needs it).
    if vc.spec.backup.enabled && vc.spec.backup.s3.is_some() {
        ensure_backup_key(&ctx, &vc, &namespace).await?;
    }

    // 4. Render, apply what drifted, prune what the spec dropped.
    let caps = ctx.capabilities().await;
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let sts_name = names.statefulset();
    let live_sts = apply::with_retries(|| statefulsets.get_opt(&sts_name))
        .await
        .map_err(kube_err("reading the StatefulSet"))?;
    let live_replicas = live_sts
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);
    // A scale-down keeps the departing pods until raft no longer lists them. What raft
    // listed comes from the last pass, or after a restart from the last status written.
    let desired: Vec<String> = (0..u32::try_from(vc.spec.replicas).unwrap_or(0))
        .map(|i| names.pod(i))
        .collect();
    let known_peers = memory.raft_peers.clone().or_else(|| {
        previous
            .as_ref()
            .and_then(|s| s.raft.as_ref())
            .map(|r| r.voters.iter().chain(&r.non_voters).cloned().collect())
    });
    let statefulset_replicas = rollout::statefulset_replicas(
        live_replicas,
        vc.spec.replicas,
        &desired,
        known_peers.as_deref(),
        previous.as_ref().is_some_and(|s| s.initialized),
    );
    let bootstrap = bootstrap_spec(&ctx.settings, &vc, &namespace, &names);
    let self_init_stanza = match (
        vc.spec.keys.initialization,
        previous.as_ref().is_some_and(|s| s.initialized),
    ) {
        (Initialization::SelfInit, false) => {
            Some(vaultkeeper_vault::selfinit::initialize_stanza(&bootstrap)?)
        }
        _ => None,
    };
    let mut render_ctx = RenderContext::new(&namespace, tls.material.as_ref());
    render_ctx.operator_image = &ctx.settings.operator_image;
    render_ctx.owner_uid = Some(&uid);
    render_ctx.statefulset_replicas = statefulset_replicas;
    render_ctx.self_init_stanza = self_init_stanza.as_deref();
    let mut tls_problem = tls.problem.clone();
    let manifests: Vec<Manifest> = vaultkeeper_render::render(&vc, &render_ctx)?
        .into_iter()
        .filter(|m| match m.api_version.split('/').next() {
            Some("monitoring.coreos.com") => caps.prometheus_operator,
            Some("cert-manager.io") => {
                if !caps.cert_manager {
                    tls_problem = Some("spec.tls.mode CertManager, but cert-manager (cert-manager.io) is not installed in this cluster".into());
                }
                caps.cert_manager
            }
            _ => true,
        })
        .map(|m| hold_jobs_until_bootstrapped(m, previous.as_ref()))
        .collect();
    let report = apply::apply_all(&ctx.client, &manifests).await?;
    let pruned = apply::prune(
        &ctx.client,
        &namespace,
        &uid,
        &Labels::owned_selector(&name),
        &manifests,
    )
    .await?;
    if !report.applied.is_empty() {
        info!(applied = ?report.applied, "applied");
    }
    if !pruned.is_empty() {
        ctx.event(
            &vc,
            EventType::Normal,
            "Pruned",
            format!(
                "removed what the spec no longer asks for: {}",
                pruned.join(", ")
            ),
        )
        .await;
    }

    // 5. Observe the pods and run the lifecycle.
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = Labels::new(layout, &name, None)
        .server_selector()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pod_list = ListParams::default().labels(&selector);
    let pods = apply::with_retries(|| pods_api.list(&pod_list))
        .await
        .map_err(kube_err("listing the pods"))?
        .items;
    let leftovers: Vec<PodName> = pods
        .iter()
        .map(|p| p.name_any())
        .filter(|n| !desired.contains(n))
        .filter_map(|n| PodName::new(n).ok())
        .collect();

    let ClusterMemory {
        lifecycle: slot,
        warned,
        raft_peers,
    } = &mut *memory;
    let (lifecycle, http) = lifecycle_for(
        &ctx,
        slot,
        &vc,
        &namespace,
        layout,
        tls.ca.clone(),
        &bootstrap,
    )?;
    if let Some(http) = http {
        register_pod_addresses(&http, &pods, &names);
    }
    let intent = intent_for(&vc, &desired)?;
    lifecycle.set_intent(intent);
    let pass = lifecycle.run_pass(&leftovers).await?;
    publish_outcomes(&ctx, &vc, &pass, warned).await;
    for error in pass.errors() {
        errors.push(error.to_string());
    }
    let bootstrapped = lifecycle.is_bootstrapped();
    let departed = pass.observation.raft.as_ref().map_or(0, |r| {
        r.servers
            .iter()
            .filter(|s| !desired.contains(&s.node_id))
            .count()
    });
    if let Some(raft) = &pass.observation.raft {
        *raft_peers = Some(raft.servers.iter().map(|s| s.node_id.clone()).collect());
    }

    // 6. One rollout step, when the StatefulSet has a newer template than some pods.
    let mut operation = None;
    let mut waiting_for = None;
    if departed > 0 || !leftovers.is_empty() {
        operation = Some(OperationStatus {
            kind: OperationKind::ScaleDown,
            started_at: started_at(previous.as_ref(), OperationKind::ScaleDown, now),
            detail: Some(format!(
                "{departed} raft peers and {} pods to remove",
                leftovers.len()
            )),
        });
    }
    let update_revision = live_sts
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.update_revision.clone());
    let rollout_pods = rollout_view(&pods, &pass);
    let sts_changed_now = live_sts.is_some()
        && report
            .applied
            .iter()
            .any(|a| *a == format!("StatefulSet/{}", names.statefulset()));
    let settled = rollout::statefulset_settled(
        sts_changed_now,
        live_sts.as_ref().and_then(|s| s.metadata.generation),
        live_sts
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.observed_generation),
    );
    if !settled && pass.stop_reason().is_none() && operation.is_none() {
        let reason = "the StatefulSet controller has not taken the new pod template yet";
        operation = Some(rolling(previous.as_ref(), now, reason));
        waiting_for = Some(format!("rolling update: {reason}"));
    }
    // Without an update revision the StatefulSet controller has not looked at the new
    // template yet: nothing to roll.
    if let (None, Some(update_revision)) = (pass.stop_reason(), update_revision.as_deref())
        && operation.is_none()
        && settled
    {
        match rollout::next_step(&rollout_pods, Some(update_revision), desired.len()) {
            RolloutStep::Done => {}
            RolloutStep::Wait(reason) => {
                operation = Some(rolling(previous.as_ref(), now, &reason));
                waiting_for = Some(format!("rolling update: {reason}"));
            }
            RolloutStep::DeletePod(pod) => {
                pods_api
                    .delete(&pod, &DeleteParams::default())
                    .await
                    .map_err(kube_err("deleting a pod for the rolling update"))?;
                ctx.pod_event(
                    &vc,
                    EventType::Normal,
                    "RollingUpdate",
                    format!("replacing pod {pod} with the new template"),
                    Some(&pod),
                )
                .await;
                operation = Some(rolling(previous.as_ref(), now, &format!("replacing {pod}")));
                waiting_for = Some(format!("rolling update: replacing {pod}"));
            }
            RolloutStep::StepDown(pod) => {
                let pod_name = PodName::new(pod.clone())?;
                match lifecycle.step_down(&pod_name).await {
                    Ok(()) => {
                        ctx.pod_event(
                            &vc,
                            EventType::Normal,
                            "SteppedDown",
                            format!("{pod} handed leadership over before its replacement"),
                            Some(&pod),
                        )
                        .await;
                    }
                    Err(e) => errors.push(e.to_string()),
                }
                operation = Some(rolling(
                    previous.as_ref(),
                    now,
                    &format!("{pod} stepping down"),
                ));
                waiting_for = Some(format!("rolling update: {pod} stepping down"));
            }
        }
    }

    // 7. Status.
    let pod_views: Vec<PodView> = pods
        .iter()
        .map(|p| PodView {
            name: p.name_any(),
            ready: pod_ready(p),
            up_to_date: update_revision.is_some() && pod_revision(p) == update_revision,
        })
        .collect();
    let mut status = status::compute(&StatusInputs {
        generation,
        previous: previous.as_ref(),
        now,
        desired_replicas: vc.spec.replicas,
        invalid: None,
        pods: &pod_views,
        pass: Some(&pass),
        bootstrapped,
        tls: tls.status,
        tls_problem,
        operation,
        waiting_for,
        errors,
    });
    // 8. Backups: what the backup Jobs reported.
    let cluster_labels = ClusterLabels { namespace, name };
    backup_pass(&ctx, &vc, &cluster_labels, &names, &mut status, now).await;
    monitoring_pass(
        &ctx,
        &vc,
        &cluster_labels,
        &names,
        caps.prometheus_operator,
        &mut status,
        now,
    )
    .await;
    let converged = status.phase == Some(vaultkeeper_api::Phase::Ready);
    record_gauges(&ctx.metrics, &cluster_labels, &status);
    write_status(&ctx, &vc, status).await?;
    Ok(if converged {
        Action::requeue(ctx.settings.resync)
    } else {
        Action::requeue(ctx.settings.converging_requeue)
    })
}

fn started_at(
    previous: Option<&VaultClusterStatus>,
    kind: OperationKind,
    now: jiff::Timestamp,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    previous
        .and_then(|s| s.operation.as_ref())
        .filter(|o| o.kind == kind)
        .map_or(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            |o| o.started_at.clone(),
        )
}

fn rolling(
    previous: Option<&VaultClusterStatus>,
    now: jiff::Timestamp,
    detail: &str,
) -> OperationStatus {
    OperationStatus {
        kind: OperationKind::RollingUpdate,
        started_at: started_at(previous, OperationKind::RollingUpdate, now),
        detail: Some(detail.to_owned()),
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_revision(pod: &Pod) -> Option<String> {
    pod.labels().get("controller-revision-hash").cloned()
}

fn rollout_view(pods: &[Pod], pass: &PassReport) -> Vec<RolloutPod> {
    pods.iter()
        .map(|p| {
            let name = p.name_any();
            let node = pass
                .observation
                .nodes
                .iter()
                .find(|n| n.pod.as_str() == name);
            let state = node.map(|n| &n.state);
            let voter = pass
                .observation
                .raft
                .as_ref()
                .is_some_and(|r| r.servers.iter().any(|s| s.node_id == name && s.voter));
            RolloutPod {
                ordinal: PodName::new(name.clone())
                    .ok()
                    .and_then(|n| n.ordinal())
                    .unwrap_or(0),
                revision: pod_revision(p),
                terminating: p.metadata.deletion_timestamp.is_some(),
                unsealed: matches!(
                    state,
                    Some(
                        vaultkeeper_vault::decide::NodeState::Active
                            | vaultkeeper_vault::decide::NodeState::Standby
                    )
                ),
                active: matches!(state, Some(vaultkeeper_vault::decide::NodeState::Active)),
                voter,
                name,
            }
        })
        .collect()
}

fn record_gauges(metrics: &Metrics, labels: &ClusterLabels, status: &VaultClusterStatus) {
    metrics
        .ready_pods
        .get_or_create(labels)
        .set(i64::from(status.ready_replicas));
    metrics
        .sealed_pods
        .get_or_create(labels)
        .set(i64::from(status.sealed_replicas));
    metrics
        .unsealed_pods
        .get_or_create(labels)
        .set(i64::from(status.unsealed_replicas));
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    metrics
        .cluster_ready
        .get_or_create(labels)
        .set(i64::from(ready));
    let certificates = status.tls.as_ref().map_or([None, None], |t| {
        [t.ca_expiry_time.as_ref(), t.server_expiry_time.as_ref()]
    });
    for (certificate, expiry) in ["ca", "server"].into_iter().zip(certificates) {
        let cert = CertificateLabels {
            namespace: labels.namespace.clone(),
            name: labels.name.clone(),
            certificate: certificate.to_owned(),
        };
        match expiry {
            Some(t) => {
                metrics.tls_expiry.get_or_create(&cert).set(t.0.as_second());
            }
            None => {
                metrics.tls_expiry.remove(&cert);
            }
        }
    }
    match status
        .metrics_token
        .as_ref()
        .and_then(|t| t.expiry_time.as_ref())
    {
        Some(t) => {
            metrics
                .metrics_token_expiry
                .get_or_create(labels)
                .set(t.0.as_second());
        }
        None => {
            metrics.metrics_token_expiry.remove(labels);
        }
    }
}

/// Reads the metrics-token Secret's annotations and the metrics-token Jobs into
/// `status.metricsToken`, the `MonitoringReady` condition, an Event per failed renewal and
/// the metrics. A failure to read leaves what the previous status said.
async fn monitoring_pass(
    ctx: &Context,
    vc: &VaultCluster,
    labels: &ClusterLabels,
    names: &ClusterNames,
    prometheus_operator: bool,
    status: &mut VaultClusterStatus,
    now: jiff::Timestamp,
) {
    let generation = vc.metadata.generation;
    if !vc.spec.monitoring.enabled {
        status.metrics_token = None;
        backup::set_named_condition(
            &mut status.conditions,
            vaultkeeper_api::condition::MONITORING_READY,
            None,
            generation,
            now,
        );
        ctx.metrics.monitoring_ready.remove(labels);
        return;
    }
    let secret_name = names.metrics_token_secret();
    let cronjob = names.metrics_token_job();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &labels.namespace);
    let token = match secrets.get_opt(&secret_name).await {
        Ok(secret) => {
            secret.and_then(|s| crate::monitoring::token_status(s.metadata.annotations.as_ref()))
        }
        Err(e) => {
            warn!(error = %e, "cannot read the metrics-token Secret; its status stays as it was");
            return;
        }
    };
    let key = format!("{}/{}/metrics-token", labels.namespace, labels.name);
    let known = {
        let runs = ctx.backup_runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(&key).cloned().unwrap_or_default()
    };
    let runs = match backup::observe(
        &ctx.client,
        &labels.namespace,
        &labels.name,
        crate::monitoring::job_source(&cronjob),
        &known,
    )
    .await
    {
        Ok((_, runs)) => runs,
        Err(e) => {
            warn!(error = %e, "cannot read the metrics-token Jobs");
            Vec::new()
        }
    };
    for run in &runs {
        if let (backup::RunOutcome::Failed(reason), Some(finished)) = (&run.outcome, run.finished)
            && !known.contains_key(&run.name)
            && status
                .conditions
                .iter()
                .find(|c| c.type_ == vaultkeeper_api::condition::MONITORING_READY)
                .is_none_or(|c| c.last_transition_time.0 < finished || c.status == "True")
        {
            ctx.metrics
                .metrics_token_failures
                .get_or_create(labels)
                .inc();
            ctx.event(
                vc,
                EventType::Warning,
                "MetricsTokenRenewalFailed",
                format!("metrics-token Job {} failed: {reason}", run.name),
            )
            .await;
        }
    }
    let last_run = runs
        .iter()
        .filter(|r| r.finished.is_some())
        .max_by_key(|r| r.finished);
    let health = crate::monitoring::health(crate::monitoring::MonitoringInputs {
        prometheus_operator,
        token: token.as_ref(),
        last_run,
        secret: &secret_name,
        cronjob: &cronjob,
        namespace: &labels.namespace,
        now,
    });
    backup::set_named_condition(
        &mut status.conditions,
        vaultkeeper_api::condition::MONITORING_READY,
        Some(&health),
        generation,
        now,
    );
    ctx.metrics
        .monitoring_ready
        .get_or_create(labels)
        .set(i64::from(health.healthy));
    status.metrics_token = token;
    let finished: HashMap<String, backup::JobRun> = runs
        .into_iter()
        .filter(|r| r.finished.is_some())
        .map(|r| (r.name.clone(), r))
        .collect();
    let mut cache = ctx.backup_runs.lock().unwrap_or_else(|e| e.into_inner());
    cache.insert(key, finished);
}

/// Reads the backup Jobs, folds them into `status.backup`, judges `BackupHealthy`,
/// publishes one Event per finished Job and updates the backup metrics. A failure to
/// read leaves what the previous status said, so an API hiccup never erases the record.
async fn backup_pass(
    ctx: &Context,
    vc: &VaultCluster,
    labels: &ClusterLabels,
    names: &ClusterNames,
    status: &mut VaultClusterStatus,
    now: jiff::Timestamp,
) {
    let spec = &vc.spec.backup;
    let key = format!("{}/{}", labels.namespace, labels.name);
    if !spec.enabled {
        status.backup = None;
        backup::set_condition(&mut status.conditions, None, vc.metadata.generation, now);
        for gauge in [
            &ctx.metrics.backup_last_success,
            &ctx.metrics.backup_last_duration,
        ] {
            gauge.remove(labels);
        }
        ctx.metrics.backup_schedule_period.remove(labels);
        ctx.metrics.backup_last_size.remove(labels);
        ctx.metrics.backup_healthy.remove(labels);
        return;
    }
    let known = {
        let runs = ctx.backup_runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(&key).cloned().unwrap_or_default()
    };
    let previous = vc.status.as_ref().and_then(|s| s.backup.as_ref());
    let cronjob = names.backup();
    let (since, runs) = match backup::observe(
        &ctx.client,
        &labels.namespace,
        &labels.name,
        backup::JobSource::backup(&cronjob),
        &known,
    )
    .await
    {
        Ok(observed) => observed,
        Err(e) => {
            warn!(error = %e, "cannot read the backup Jobs; the backup status stays as it was");
            return;
        }
    };
    for run in backup::new_runs(previous, &runs) {
        match &run.outcome {
            backup::RunOutcome::Succeeded {
                object, size_bytes, ..
            } => {
                ctx.event(
                    vc,
                    EventType::Normal,
                    "BackupSucceeded",
                    format!(
                        "backup Job {} wrote {} ({} bytes)",
                        run.name,
                        object.as_deref().unwrap_or("an object"),
                        size_bytes.unwrap_or_default()
                    ),
                )
                .await;
            }
            backup::RunOutcome::Failed(reason) => {
                ctx.metrics.backup_failures.get_or_create(labels).inc();
                ctx.event(
                    vc,
                    EventType::Warning,
                    "BackupFailed",
                    format!("backup Job {} failed: {reason}", run.name),
                )
                .await;
            }
            backup::RunOutcome::Running => {}
        }
    }
    let folded = backup::fold_runs(previous, &runs);
    let period = vaultkeeper_api::longest_gap_seconds(&spec.schedule);
    let health = backup::health(backup::HealthInputs {
        status: &folded,
        period_seconds: period,
        since,
        suspended: spec.suspend,
        now,
    });
    backup::set_condition(
        &mut status.conditions,
        Some(&health),
        vc.metadata.generation,
        now,
    );
    let metrics = &ctx.metrics;
    if let Some(t) = &folded.last_success_time {
        metrics
            .backup_last_success
            .get_or_create(labels)
            .set(t.0.as_millisecond() as f64 / 1000.0);
    }
    if let Some(d) = folded.last_duration_seconds {
        metrics.backup_last_duration.get_or_create(labels).set(d);
    }
    if let Some(size) = folded.last_size_bytes {
        metrics.backup_last_size.get_or_create(labels).set(size);
    }
    if let Some(p) = period {
        metrics.backup_schedule_period.get_or_create(labels).set(p);
    }
    metrics
        .backup_healthy
        .get_or_create(labels)
        .set(i64::from(health.healthy));
    status.backup = (folded != vaultkeeper_api::BackupStatus::default()).then_some(folded);
    let finished: HashMap<String, backup::JobRun> = runs
        .into_iter()
        .filter(|r| r.finished.is_some())
        .map(|r| (r.name.clone(), r))
        .collect();
    let mut cache = ctx.backup_runs.lock().unwrap_or_else(|e| e.into_inner());
    cache.insert(key, finished);
}

/// Writes the status with server-side apply, only when it changed.
async fn write_status(
    ctx: &Context,
    vc: &VaultCluster,
    status: VaultClusterStatus,
) -> Result<(), Error> {
    if vc.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<VaultCluster> =
        Api::namespaced(ctx.client.clone(), &vc.namespace().unwrap_or_default());
    // A merge patch from the status as read to the new one, so a field that goes away
    // (an operation that finished) is written as null and removed. Server-side apply
    // cannot clear it: omitting `operation` removes its fields but leaves `operation: {}`
    // behind (structured-merge-diff keeps emptied maps), which the CRD's required
    // `kind`/`startedAt` then reject, and every later status write would fail.
    let old = vc
        .status
        .as_ref()
        .map(serde_json::to_value)
        .transpose()?
        .unwrap_or(serde_json::Value::Null);
    let new = serde_json::to_value(&status)?;
    let patch = serde_json::json!({ "status": merge_patch(&old, &new) });
    let name = vc.name_any();
    let params = PatchParams::default();
    let patch = Patch::Merge(&patch);
    apply::with_retries(|| api.patch_status(&name, &params, &patch))
        .await
        .map_err(kube_err("writing the status"))?;
    Ok(())
}

/// The RFC 7386 merge patch that turns `old` into `new`: keys `new` no longer has become
/// `null`, objects are diffed key by key, everything else is replaced whole.
fn merge_patch(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            for (key, value) in new {
                match old.get(key) {
                    Some(before) if before == value => {}
                    Some(before) => {
                        patch.insert(key.clone(), merge_patch(before, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// The PKI decision and its facts for status.
struct TlsState {
    material: Option<PkiMaterial>,
    status: Option<TlsStatus>,
    problem: Option<String>,
    issued: Option<String>,
    /// The CA pods are verified against (for the HTTP transport).
    ca: Option<String>,
}

fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
}

fn expiry(pem: &str) -> Option<jiff::Timestamp> {
    let facts = pki::certificate_facts(pem).ok()?;
    jiff::Timestamp::from_second(facts.not_after.unix_timestamp()).ok()
}

async fn tls_state(
    ctx: &Context,
    vc: &VaultCluster,
    namespace: &str,
    now: jiff::Timestamp,
) -> Result<TlsState, Error> {
    let names = ClusterNames::new(vc.name_any());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let time = |t: jiff::Timestamp| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t);
    let soon = |t: Option<jiff::Timestamp>, what: &str| -> Option<String> {
        let t = t?;
        let left = t.duration_since(now);
        (left < jiff::SignedDuration::from_hours(24 * 14))
            .then(|| format!("the {what} expires at {t}"))
    };
    match vc.spec.tls.mode {
        TlsMode::Disabled => Ok(TlsState {
            material: None,
            status: None,
            problem: None,
            issued: None,
            ca: None,
        }),
        TlsMode::SelfSigned => {
            let (ca_name, server_name) = (names.ca_secret(), names.server_tls_secret());
            let ca_secret = apply::with_retries(|| secrets.get_opt(&ca_name))
                .await
                .map_err(kube_err("reading the CA Secret"))?;
            let server_secret = apply::with_retries(|| secrets.get_opt(&server_name))
                .await
                .map_err(kube_err("reading the server certificate Secret"))?;
            let existing = match (&ca_secret, &server_secret) {
                (Some(ca), Some(server)) => Some(PkiMaterial {
                    ca_cert_pem: secret_text(ca, "tls.crt").unwrap_or_default(),
                    ca_key_pem: vaultkeeper_render::PrivateKeyPem::new(
                        secret_text(ca, "tls.key").unwrap_or_default(),
                    ),
                    server_cert_pem: secret_text(server, "tls.crt").unwrap_or_default(),
                    server_key_pem: vaultkeeper_render::PrivateKeyPem::new(
                        secret_text(server, "tls.key").unwrap_or_default(),
                    ),
                }),
                _ => None,
            };
            let request = pki::server_certificate_request(vc, namespace);
            let clock = time::OffsetDateTime::from_unix_timestamp(now.as_second())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let plan = pki::plan(existing.as_ref(), &request, clock);
            let (material, issued) = match (&plan, existing) {
                (pki::PkiPlan::Keep, Some(existing)) => (existing, None),
                (plan, existing) => {
                    let reason = match plan {
                        pki::PkiPlan::IssueAll(r) | pki::PkiPlan::IssueServer(r) => r.to_string(),
                        pki::PkiPlan::Keep => String::new(),
                    };
                    let material =
                        pki::issue(plan, existing.as_ref(), &vc.name_any(), &request, clock)?;
                    (material, Some(format!("new certificate: {reason}")))
                }
            };
            let ca_expiry = expiry(&material.ca_cert_pem);
            let server_expiry = expiry(&material.server_cert_pem);
            let problem = soon(server_expiry, "server certificate")
                .or_else(|| soon(ca_expiry, "CA certificate"));
            Ok(TlsState {
                ca: Some(material.ca_cert_pem.clone()),
                status: Some(TlsStatus {
                    ca_expiry_time: ca_expiry.map(time),
                    server_expiry_time: server_expiry.map(time),
                }),
                material: Some(material),
                problem,
                issued,
            })
        }
        TlsMode::Secret | TlsMode::CertManager => {
            let secret_name = match vc.spec.tls.mode {
                TlsMode::Secret => vc.spec.tls.secret_name.clone().unwrap_or_default(),
                _ => names.server_tls_secret(),
            };
            let secret = secrets
                .get_opt(&secret_name)
                .await
                .map_err(kube_err("reading the TLS Secret"))?;
            let Some(secret) = secret else {
                return Ok(TlsState {
                    material: None,
                    status: None,
                    problem: Some(format!(
                        "the TLS Secret {secret_name} does not exist yet; the pods cannot start without it"
                    )),
                    issued: None,
                    ca: None,
                });
            };
            let server_expiry = secret_text(&secret, "tls.crt").as_deref().and_then(expiry);
            let ca = secret_text(&secret, "ca.crt");
            let ca_expiry = ca.as_deref().and_then(expiry);
            let problem = if ca.is_none() {
                Some(format!(
                    "the TLS Secret {secret_name} has no ca.crt; pods and clients need the CA to verify each other"
                ))
            } else {
                soon(server_expiry, "server certificate")
            };
            Ok(TlsState {
                material: None,
                status: Some(TlsStatus {
                    ca_expiry_time: ca_expiry.map(time),
                    server_expiry_time: server_expiry.map(time),
                }),
                problem,
                issued: None,
                ca,
            })
        }
    }
}

async fn ensure_backup_key(ctx: &Context, vc: &VaultCluster, namespace: &str) -> Result<(), Error> {
    let (name, key) = backup_key_ref(vc);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    if secrets
        .get_opt(&name)
        .await
        .map_err(kube_err("reading the backup key"))?
        .is_some()
    {
        return Ok(());
    }
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Error::Finalizer("the system random number generator failed".into()))?;
    let mut labels = crate::custody::keys_secret_labels(&vc.name_any());
    labels.insert("app.kubernetes.io/component".into(), "backup-key".into());
    labels.remove("vaultkeeper.io/keys");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "vaultkeeper.io/description".to_owned(),
                "Encryption key of this VaultCluster's backups. Without it no backup can be restored: keep a copy outside the cluster.".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(key, ByteString(bytes.to_vec()))])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            ctx.event(vc, EventType::Normal, "BackupKeyGenerated", format!("generated the backup encryption key in Secret {name}; keep a copy outside the cluster")).await;
            Ok(())
        }
        // Created by another pass or replica in between: that one stands.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(kube_err("creating the backup key")(e)),
    }
}

/// The backup and metrics-token Jobs log in to Vault with roles the bootstrap creates: until
/// it has run their CronJobs are applied suspended, so a new cluster never starts with a
/// failed first backup (and a Warning that means nothing).
fn hold_jobs_until_bootstrapped(
    mut manifest: Manifest,
    previous: Option<&VaultClusterStatus>,
) -> Manifest {
    if manifest.kind == "CronJob" && !previous.is_some_and(|s| s.bootstrapped) {
        manifest.object["spec"]["suspend"] = serde_json::Value::Bool(true);
    }
    manifest
}

fn bootstrap_spec(
    settings: &Settings,
    vc: &VaultCluster,
    namespace: &str,
    names: &ClusterNames,
) -> BootstrapSpec {
    let period = str::parse::<vaultkeeper_api::Duration>(&vc.spec.monitoring.token_period)
        .map_or(336 * 3600, vaultkeeper_api::Duration::as_seconds);
    BootstrapSpec {
        namespace: namespace.to_owned(),
        kubernetes_mount: vault_names::KUBERNETES_AUTH_MOUNT.to_owned(),
        kubernetes: KubernetesAuthConfig {
            kubernetes_host: settings.kubernetes_host.clone(),
            kubernetes_ca_cert: settings.kubernetes_ca.clone(),
            issuer: None,
            disable_local_ca_jwt: false,
        },
        operator: Identity {
            service_account: settings.operator_service_account.clone(),
            role: vault_names::OPERATOR_ROLE.to_owned(),
            policy: vault_names::OPERATOR_POLICY.to_owned(),
        },
        operator_namespace: Some(settings.operator_namespace.clone()),
        backup: Identity {
            service_account: names.backup(),
            role: names.vault_backup_role(),
            policy: vault_names::BACKUP_POLICY.to_owned(),
        },
        metrics_token_job: Identity {
            service_account: names.metrics_token_job(),
            role: names.vault_metrics_job_role(),
            policy: vault_names::METRICS_JOB_POLICY.to_owned(),
        },
        metrics_policy: vault_names::METRICS_POLICY.to_owned(),
        metrics_token_role: vault_names::METRICS_TOKEN_ROLE.to_owned(),
        metrics_token_period_seconds: u64::try_from(period).unwrap_or(336 * 3600),
        restore: None,
        login_ttl_seconds: 900,
        revoke_root_token: vc.spec.keys.root_token == RootTokenPolicy::Revoke,
    }
}

fn intent_for(vc: &VaultCluster, desired: &[String]) -> Result<ClusterIntent, Error> {
    let shares = vc.spec.unseal.shares();
    let share = |v: i32| u8::try_from(v).unwrap_or(u8::MAX);
    let seal = if vc.spec.unseal.kind == UnsealType::Shamir {
        SealIntent::Shamir {
            shares: share(shares.shares),
            threshold: share(shares.threshold),
        }
    } else {
        SealIntent::Auto {
            recovery_shares: share(shares.shares),
            recovery_threshold: share(shares.threshold),
        }
    };
    let init_mode = match vc.spec.keys.initialization {
        Initialization::Operator => InitMode::Operator,
        Initialization::SelfInit => InitMode::SelfInit,
    };
    let pods = desired
        .iter()
        .map(|p| PodName::new(p.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ClusterIntent::new(pods, seal, init_mode)?)
}

/// The cluster's lifecycle, rebuilt only when the transport, flavor, keys Secret or CA
/// changes (the in-memory copy of a not-yet-persisted init output must survive passes).
fn lifecycle_for<'m>(
    ctx: &Context,
    slot: &'m mut Option<(LifecycleKey, ClusterLifecycle, Option<Arc<HttpNodeClient>>)>,
    vc: &VaultCluster,
    namespace: &str,
    layout: ServerLayout,
    ca: Option<String>,
    bootstrap: &BootstrapSpec,
) -> Result<(&'m mut ClusterLifecycle, Option<Arc<HttpNodeClient>>), Error> {
    let key = LifecycleKey {
        transport: vc.spec.transport,
        flavor: layout.flavor(),
        keys_secret: keys_secret_name(vc),
        ca: ca.clone(),
    };
    let rebuild = match &*slot {
        Some((existing, lifecycle, _)) => *existing != key && !lifecycle.has_pending_keys(),
        None => true,
    };
    if rebuild {
        let store: Arc<dyn KeyStore> = ctx.settings.hooks.key_store(Arc::new(SecretKeyStore::new(
            ctx.client.clone(),
            namespace,
            &key.keys_secret,
            &vc.name_any(),
        )));
        let (client, http): (Arc<dyn NodeClient>, Option<Arc<HttpNodeClient>>) =
            match vc.spec.transport {
                Transport::Exec => {
                    let executor: Arc<dyn Executor> = ctx.settings.hooks.executor(Arc::new(
                        KubeExecutor::new(ctx.client.clone(), namespace, layout.container_name()),
                    ));
                    (
                        Arc::new(ExecNodeClient::new(executor, layout.flavor())),
                        None,
                    )
                }
                Transport::Http => {
                    let ca = ca.clone().unwrap_or_default();
                    let http =
                        Arc::new(HttpNodeClient::new(ca.as_bytes(), HttpOptions::default())?);
                    (http.clone(), Some(http))
                }
            };
        let mut lifecycle = Lifecycle::new(
            client,
            store,
            intent_for(vc, &[ClusterNames::new(vc.name_any()).pod(0)])?,
        )
        .with_bootstrap(bootstrap.clone())
        .with_operator_login(OperatorLogin {
            mount: vault_names::KUBERNETES_AUTH_MOUNT.to_owned(),
            role: vault_names::OPERATOR_ROLE.to_owned(),
            jwt: ctx.settings.jwt.clone(),
        });
        // After an operator restart, status remembers whether bootstrap is applied.
        lifecycle.set_bootstrapped(vc.status.as_ref().is_some_and(|s| s.bootstrapped));
        *slot = Some((key, lifecycle, http));
    }
    match slot {
        Some((_, lifecycle, http)) => Ok((lifecycle, http.clone())),
        None => Err(Error::Finalizer("the lifecycle could not be built".into())),
    }
}

/// Tells the HTTP client where each pod is now (pod IPs change on restart); the pod's DNS
/// name is what its certificate is verified against.
fn register_pod_addresses(http: &HttpNodeClient, pods: &[Pod], names: &ClusterNames) {
    for pod in pods {
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
        let (Some(ip), Ok(name)) = (ip, PodName::new(pod.name_any())) else {
            continue;
        };
        let server_name = format!("{}.{}", name.as_str(), names.internal_service());
        let endpoint = NodeEndpoint::by_name(
            server_name,
            std::net::SocketAddr::new(ip, vaultkeeper_render::API_PORT),
        );
        if let Err(e) = http.add_pod(name, &endpoint) {
            warn!(pod = %pod.name_any(), error = %e, "cannot reach this pod over HTTP");
        }
    }
}

/// Events for what the lifecycle did; failures at most every ten minutes per message.
async fn publish_outcomes(
    ctx: &Context,
    vc: &VaultCluster,
    pass: &PassReport,
    warned: &mut HashMap<String, Instant>,
) {
    let labels = |result: &str| UnsealLabels {
        namespace: vc.namespace().unwrap_or_default(),
        name: vc.name_any(),
        result: result.to_owned(),
    };
    for outcome in &pass.outcomes {
        let (reason, note) = match (&outcome.action, &outcome.result) {
            (LifecycleAction::Init { pod, .. }, Ok(Done::Initialized)) => (
                "Initialized",
                format!(
                    "initialized Vault on {pod}; the init output is in the keys Secret {}",
                    keys_secret_name(vc)
                ),
            ),
            (_, Ok(Done::KeysPersisted)) => (
                "KeysPersisted",
                "the init output held in memory is now in the keys Secret".into(),
            ),
            (LifecycleAction::Unseal { pod, .. }, Ok(Done::Unsealed)) => {
                ctx.metrics
                    .unseal_operations
                    .get_or_create(&labels("success"))
                    .inc();
                ("Unsealed", format!("unsealed pod {pod}"))
            }
            (LifecycleAction::Unseal { pod, .. }, Ok(Done::SharesSubmitted(_))) => (
                "SharesSubmitted",
                format!("entered the unseal shares on pod {pod}; it is finishing its raft join"),
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
            (action, Err(error)) => {
                if matches!(action, LifecycleAction::Unseal { .. }) {
                    ctx.metrics
                        .unseal_operations
                        .get_or_create(&labels("failure"))
                        .inc();
                }
                let note = error.to_string();
                let due = warned
                    .get(&note)
                    .is_none_or(|at| at.elapsed() > Duration::from_secs(600));
                if due {
                    warned.insert(note.clone(), Instant::now());
                    ctx.event(vc, EventType::Warning, "LifecycleFailed", note)
                        .await;
                }
                continue;
            }
        };
        let pod = match &outcome.action {
            LifecycleAction::Init { pod, .. }
            | LifecycleAction::Unseal { pod, .. }
            | LifecycleAction::StepDown { pod } => Some(pod.as_str().to_owned()),
            LifecycleAction::RemovePeer { node_id, .. } => Some(node_id.clone()),
            _ => None,
        };
        ctx.pod_event(vc, EventType::Normal, reason, note, pod.as_deref())
            .await;
    }
    if let Some(stop) = pass.stop_reason() {
        let note = format!(
            "{}: vaultkeeper stopped acting on this cluster; see the Degraded condition",
            stop.reason()
        );
        let due = warned
            .get(&note)
            .is_none_or(|at| at.elapsed() > Duration::from_secs(600));
        if due {
            warned.insert(note.clone(), Instant::now());
            ctx.event(vc, EventType::Warning, stop.reason(), note).await;
        }
    }
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
    // Jobs belong to the CronJobs; they carry the cluster's labels, so a finished backup
    // or token renewal reaches its cluster's status at once.
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
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "controller event");
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn a_merge_patch_removes_what_the_new_status_dropped_and_keeps_what_did_not_change() {
        let table = [
            // A finished operation is written as null (removed), not left as `{}`.
            (
                json!({"phase": "Updating", "operation": {"kind": "ScaleDown", "startedAt": "t"}}),
                json!({"phase": "Ready"}),
                json!({"phase": "Ready", "operation": null}),
            ),
            // Unchanged keys are left out; nested objects are diffed.
            (
                json!({"raft": {"leader": "a", "voters": ["a", "b"]}, "replicas": 3}),
                json!({"raft": {"leader": "b", "voters": ["a", "b"]}, "replicas": 3}),
                json!({"raft": {"leader": "b"}}),
            ),
            // Lists are replaced whole.
            (
                json!({"conditions": [{"type": "Ready"}]}),
                json!({"conditions": [{"type": "Ready"}, {"type": "Degraded"}]}),
                json!({"conditions": [{"type": "Ready"}, {"type": "Degraded"}]}),
            ),
            // No status before: the whole new one.
            (
                json!(null),
                json!({"phase": "Initializing"}),
                json!({"phase": "Initializing"}),
            ),
        ];
        for (old, new, want) in table {
            assert_eq!(merge_patch(&old, &new), want, "{old} → {new}");
        }
    }
}
