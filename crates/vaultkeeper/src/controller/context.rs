//! What every pass shares: how the operator is set up ([`Settings`]), the client, the
//! metrics, the Event recorder, and what the operator remembers about each cluster
//! between passes ([`ClusterMemory`], the one place such state lives).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Resource;
use kube::ResourceExt;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use tokio::sync::Mutex;
use tracing::warn;
use vaultkeeper_api::VaultCluster;
use vaultkeeper_vault::lifecycle::JwtSource;

use super::nodes::NodeAccess;
use crate::apply;
use crate::backup::JobRun;
use crate::metrics::Metrics;

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
    /// The operator's service-account JWT for its Kubernetes-auth login to Vault: a token
    /// whose audience is Vault logins only (`vaultkeeper_api::login`), never one the
    /// Kubernetes API accepts, because Vault pods run images chosen by users.
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
    /// The pre-created ClusterRole that grants Vault's service registration its pod
    /// rights, which the operator binds in each cluster's namespace without holding them.
    /// `None` renders a Role instead, as offline rendering does; the operator then needs
    /// pod update and patch rights itself.
    pub server_cluster_role: Option<String>,
    /// The images VaultClusters may run; a refused one blocks the cluster with a
    /// condition and nothing is applied or handed to its pods.
    pub image_policy: crate::image_policy::ImagePolicy,
    /// Namespaces other than a cluster's own where `spec.keys.escrow.secret` may have the
    /// escrow copy written (`*`: any the operator's RBAC reaches). A platform decision: a
    /// person who may only write a VaultCluster must not make the operator create Secrets
    /// in other teams' namespaces.
    pub escrow_secret_namespaces: Vec<String>,
}

impl Settings {
    /// Whether an escrow Secret of a cluster in `own` may be written to `target`.
    pub fn escrow_secret_allowed(&self, own: &str, target: &str) -> bool {
        target == own
            || self
                .escrow_secret_namespaces
                .iter()
                .any(|n| n == "*" || n == target)
    }
}

/// What the operator remembers about one cluster between passes. Everything here can be
/// rebuilt from the cluster itself after a restart, except init output that is not yet
/// in the keys Secret, which the lifecycle holds until it is.
#[derive(Default)]
pub(crate) struct ClusterMemory {
    /// The VaultCluster as the last pass saw it (for Events about held keys at shutdown).
    pub(crate) cluster: Option<Arc<VaultCluster>>,
    /// The cluster's Vault nodes: the lifecycle and the client that reaches them.
    pub(crate) nodes: Option<NodeAccess>,
    /// Warning Events already published, with when, so a repeating failure is not
    /// published on every pass.
    pub(crate) warned: HashMap<String, Instant>,
    /// The raft peers (node ids) the last pass saw, to hold a scale-down back until the
    /// departing ones are gone even in a pass that cannot read raft.
    pub(crate) raft_peers: Option<Vec<String>>,
    /// Finished backup Jobs already read, by Job name: a finished Job's outcome never
    /// changes, so its log is read once.
    pub(crate) backup_runs: HashMap<String, JobRun>,
    /// Finished metrics-token Jobs already read, likewise.
    pub(crate) token_runs: HashMap<String, JobRun>,
    /// Quick looks spent since the cluster last converged or stopped coming up (pace.rs).
    pub(crate) quick_looks: usize,
}

/// Optional APIs found in the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// cert-manager (`cert-manager.io`) serves Certificates.
    pub cert_manager: bool,
    /// prometheus-operator (`monitoring.coreos.com`) serves ServiceMonitors and rules.
    pub prometheus_operator: bool,
}

/// How long a successful discovery answer is trusted.
const CAPABILITIES_TTL: Duration = Duration::from_secs(60);

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
    fence: crate::leader::Fence,
    lock_stale_after: Duration,
    #[cfg(feature = "fault-injection")]
    pub(crate) faults: Arc<dyn super::faults::Faults>,
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
            metrics,
            clusters: std::sync::Mutex::new(HashMap::new()),
            capabilities: Mutex::new(None),
            fence: crate::leader::Fence::unelected(&settings.instance),
            lock_stale_after: crate::leader::LeaseTimings::default().duration,
            settings,
            #[cfg(feature = "fault-injection")]
            faults: Arc::new(super::faults::NoFaults),
        }
    }

    /// The same context for a replica elected with `fence`: disruptive actions check it
    /// right before acting, and the operation lock is taken as its identity. A lock of
    /// another replica is stale once this one has led for `lock_stale_after` (the lease
    /// duration).
    pub fn with_fence(mut self, fence: crate::leader::Fence, lock_stale_after: Duration) -> Self {
        self.fence = fence;
        self.lock_stale_after = lock_stale_after;
        self
    }

    /// The leader fence of this replica (always open without leader election).
    pub fn fence(&self) -> &crate::leader::Fence {
        &self.fence
    }

    /// How long this replica must have led before another replica's lock is stale.
    pub(crate) fn lock_stale_after(&self) -> Duration {
        self.lock_stale_after
    }

    /// The memory of the cluster `key` (`namespace/name`).
    pub(crate) fn memory(&self, key: &str) -> Arc<Mutex<ClusterMemory>> {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.entry(key.to_owned()).or_default().clone()
    }

    /// Forgets a deleted cluster.
    /// Every cluster's memory.
    pub(crate) fn remembered(&self) -> Vec<Arc<Mutex<ClusterMemory>>> {
        let clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.values().cloned().collect()
    }

    pub(crate) fn forget(&self, key: &str) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.remove(key);
    }

    /// The optional APIs this cluster serves. A failed discovery request is an error, not
    /// "not installed": reading it as absent would prune every object of those kinds.
    pub(crate) async fn capabilities(&self) -> Result<Capabilities, kube::Error> {
        let mut cached = self.capabilities.lock().await;
        if let Some((at, caps)) = *cached
            && at.elapsed() < CAPABILITIES_TTL
        {
            return Ok(caps);
        }
        let groups = apply::with_retries(|| self.client.list_api_groups())
            .await?
            .groups;
        let has = |name: &str| groups.iter().any(|g| g.name == name);
        let caps = Capabilities {
            cert_manager: has("cert-manager.io"),
            prometheus_operator: has("monitoring.coreos.com"),
        };
        *cached = Some((Instant::now(), caps));
        Ok(caps)
    }

    /// Publishes an Event about the cluster and, when it concerns one pod, that pod as the
    /// related object. The pod also keeps the Events of different pods apart: the recorder
    /// folds Events with the same reason and related object into one series that keeps
    /// the first note, so "replacing pod vault-1" would otherwise vanish into the series
    /// of "replacing pod vault-2".
    pub(crate) async fn publish(&self, vc: &VaultCluster, event: &super::events::EventSpec) {
        self.publish_about(vc.object_ref(&()), vc.namespace(), event)
            .await;
    }

    /// Publishes an Event about any object (a VaultRestore, say).
    pub(crate) async fn publish_about(
        &self,
        reference: k8s_openapi::api::core::v1::ObjectReference,
        namespace: Option<String>,
        event: &super::events::EventSpec,
    ) {
        let type_ = if event.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let event = KubeEvent {
            type_,
            reason: event.reason.to_owned(),
            note: Some(truncate(&event.note, 1000)),
            action: event.reason.to_owned(),
            secondary: event
                .pod
                .as_ref()
                .map(|pod| k8s_openapi::api::core::v1::ObjectReference {
                    api_version: Some("v1".to_owned()),
                    kind: Some("Pod".to_owned()),
                    name: Some(pod.clone()),
                    namespace: namespace.clone(),
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
            warn!(error = %e, reason = %event.reason, "cannot publish an Event");
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
