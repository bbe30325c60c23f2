//! The configuration controller: resources that declare what must exist inside a
//! VaultCluster's Vault (`VaultPolicy`), applied through the config identity, re-read on
//! every resync so a change made by hand is reverted with an Event, and removed from Vault
//! when the resource is deleted (unless it says `deletionPolicy: Retain`).
//!
//! ```text
//!   watch event ──► admit ──► claim ──► login ──► read, compare, write ──► status
//!                   (pure)    (pure)    (Vault)   (Vault)                  (one patch)
//! ```
//!
//! A resource is admitted only when its VaultCluster lists the resource's namespace
//! (`spec.allowedConfigNamespaces`, or is in it); a refused one never reaches Vault. Of
//! several resources asking for the same Vault object, the oldest owns it. Only what a
//! resource recorded in `status.vaultPath` is ever deleted. It runs in the same process,
//! behind the same leader election, as the VaultCluster controller, whose node client it
//! borrows.

mod decide;
mod policy;
mod session;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::warn;
use vaultkeeper_api::{VaultCluster, VaultPolicy};

use crate::controller::{CONTROLLER_NAME, Context};

/// The finalizer that removes from Vault what a configuration resource created.
pub const FINALIZER: &str = "vaultkeeper.io/vault-config";

/// Why a configuration pass failed (the outcomes a person can act on go to the status
/// instead; these are retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resource has no namespace (it is namespaced; a bug elsewhere).
    #[error("the resource has no namespace")]
    NoNamespace,
    /// A Kubernetes request failed.
    #[error("{step}: {source}")]
    Kube {
        /// What the operator was doing.
        step: &'static str,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Vault could not be reached or refused while removing an object.
    #[error("{0}")]
    Vault(String),
    /// This replica no longer leads: it writes nothing to Vault.
    #[error("not the leader: {0}")]
    Fenced(String),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The status could not be turned into JSON (a bug, never expected).
    #[error("serializing the status: {0}")]
    Status(#[from] serde_json::Error),
}

pub(crate) fn kube_err(step: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube {
        step,
        source: Box::new(source),
    }
}

/// What every configuration pass shares.
pub struct ConfigContext {
    /// The VaultCluster controller's context: the client, the settings (the operator's
    /// login token), the leader fence and the per-cluster node clients.
    pub(crate) cluster: Arc<Context>,
    recorder: Recorder,
    /// Every VaultPolicy this operator watches (one store per watched namespace), to
    /// settle which resource owns a Vault name.
    policies: RwLock<Vec<Store<VaultPolicy>>>,
}

impl ConfigContext {
    /// A context sharing `cluster`'s client, settings and fence.
    pub fn new(cluster: Arc<Context>) -> Arc<Self> {
        let reporter = Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance: Some(cluster.settings.instance.clone()),
        };
        Arc::new(ConfigContext {
            recorder: Recorder::new(cluster.client.clone(), reporter),
            cluster,
            policies: RwLock::new(Vec::new()),
        })
    }

    /// Every VaultPolicy in the watched namespaces.
    pub(crate) fn all_policies(&self) -> Vec<Arc<VaultPolicy>> {
        let stores = self.policies.read().unwrap_or_else(|e| e.into_inner());
        stores.iter().flat_map(|s| s.state()).collect()
    }

    /// How often Vault is read again to find drift.
    pub(crate) fn resync(&self) -> Duration {
        self.cluster.settings.resync
    }

    /// Publishes an Event about a configuration resource.
    pub(crate) async fn publish<K>(&self, object: &K, warning: bool, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = KubeEvent {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note.chars().take(1000).collect()),
            action: reason.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            warn!(error = %e, reason, "cannot publish an Event");
        }
    }
}

/// Requeues a failed pass with a short delay.
fn error_policy(policy: Arc<VaultPolicy>, error: &Error, _ctx: Arc<ConfigContext>) -> Action {
    warn!(namespace = policy.namespace().unwrap_or_default(), name = policy.name_any(), error = %error, "configuration pass failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the configuration controller for `namespace` (every namespace when `None`)
/// until `shutdown` completes.
pub async fn run(
    ctx: Arc<ConfigContext>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.cluster.client.clone();
    let (policies, clusters): (Api<VaultPolicy>, Api<VaultCluster>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let controller = Controller::new(policies, watcher::Config::default());
    let store = controller.store();
    ctx.policies
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(store.clone());
    // A change to a cluster (its allowed namespaces, its active pod) reaches every policy
    // that points at it at once.
    controller
        .watches(clusters, watcher::Config::default(), move |vc| {
            let cluster_ns = vc.namespace().unwrap_or_default();
            let name = vc.name_any();
            store
                .state()
                .iter()
                .filter(|p| {
                    let own = p.namespace().unwrap_or_default();
                    vaultkeeper_api::config::cluster_key(&p.spec.cluster_ref, &own)
                        == (cluster_ns.clone(), name.clone())
                })
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(policy::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "configuration controller event");
            }
        })
        .await;
}
