//! Observe: every read of a pass, and nothing else. The Kubernetes objects the cluster
//! owns, its pods, its TLS Secrets and backup key, its Vault nodes (through the lifecycle)
//! and what its CronJobs' Jobs reported.
//!
//! A failed read that the plan depends on ends the pass here, before anything is written:
//! nothing is pruned, applied or unsealed on a partial picture. Only the Job and
//! metrics-token reads may fail softly; their part of the status then stays as it was.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use tracing::warn;
use vaultkeeper_api::{ClusterNames, MetricsTokenStatus, TlsMode, VaultCluster};
use vaultkeeper_render::{Labels, ServerLayout};
use vaultkeeper_vault::decide::Observation;
use vaultkeeper_vault::node::PodName;

use super::context::{Capabilities, ClusterMemory, Context};
use super::error::{Error, kube_err};
use super::members;
use super::nodes::{self, NodeAccess};
use super::snapshot::{self, SnapshotJob};
use super::tls::TlsObserved;
use crate::apply::{self, LiveObjects, with_retries};
use crate::backup::{self, JobRun};
use crate::monitoring;

/// Everything a pass saw.
pub(crate) struct Observed {
    /// Optional APIs served by the cluster.
    pub(crate) capabilities: Capabilities,
    /// The objects of this cluster that exist now.
    pub(crate) live: LiveObjects,
    /// The cluster's Vault pods (leftovers of a scale-down included): only the members,
    /// pods its own StatefulSet controls (see [`members`]).
    pub(crate) pods: Vec<Pod>,
    /// Other pods carrying the cluster's server labels: ignored, reported.
    pub(crate) foreign_pods: Vec<String>,
    /// Existing objects of this cluster's names that it does not control (a Helm
    /// release's, say), as JSON with their kind; looked for only while the cluster has no
    /// StatefulSet of its own (see `adopt.rs`).
    pub(crate) namesakes: Vec<serde_json::Value>,
    /// Whether the keys Secret holds a key record; read only when there are namesakes.
    pub(crate) keys_record: Option<bool>,
    /// The TLS Secrets.
    pub(crate) tls: TlsObserved,
    /// Whether the backup encryption key exists (`None`: backups to S3 are off, so it
    /// was not looked at).
    pub(crate) backup_key_exists: Option<bool>,
    /// The Vault nodes, keys and raft, as the lifecycle observed them; `None` when they
    /// cannot be reached yet (the HTTP transport before the cluster CA exists).
    pub(crate) nodes: Option<Observation>,
    /// The backup CronJob's creation time and its Jobs, or why they could not be read.
    pub(crate) backup_jobs: Result<(Option<jiff::Timestamp>, Vec<JobRun>), String>,
    /// The one-off backup Jobs taken before disruptive operations, or why they could not
    /// be read (empty when no operation waits for one).
    pub(crate) snapshot_jobs: Result<Vec<SnapshotJob>, String>,
    /// The metrics token as its Secret describes it, or why it could not be read.
    pub(crate) metrics_token: Result<Option<MetricsTokenStatus>, String>,
    /// The metrics-token Jobs, or why they could not be read.
    pub(crate) token_jobs: Result<Vec<JobRun>, String>,
}

/// Reads everything the plan needs. `memory` gives the lifecycle (which observes the
/// Vault nodes) and the Job runs already read.
pub(crate) async fn cluster(
    ctx: &Context,
    vc: &VaultCluster,
    memory: &mut ClusterMemory,
) -> Result<Observed, Error> {
    let namespace = vc.namespace().ok_or(Error::NoNamespace)?;
    let name = vc.name_any();
    let names = ClusterNames::new(&name);
    let client = &ctx.client;

    let capabilities = ctx.capabilities().await.map_err(kube_err(
        "discovering the optional APIs (cert-manager, prometheus-operator)",
    ))?;
    let binding = names.server_cluster_role_binding(&namespace);
    let legacy_binding = names.legacy_server_cluster_role_binding(&namespace);
    let live = apply::read_live(
        client,
        &namespace,
        &Labels::owned_selector(&name),
        &[
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                &binding,
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                &legacy_binding,
            ),
        ],
    )
    .await?;
    let namesakes = match live.statefulset(&names.statefulset()) {
        Some(_) => Vec::new(),
        None => namesakes(client, &namespace, &names, &live, vc.uid().as_deref()).await?,
    };
    let keys_record = match namesakes.is_empty() {
        true => None,
        false => Some(keys_record(client, &namespace, &nodes::keys_secret_name(vc)).await?),
    };
    let labelled = pods(client, vc, &namespace).await?;
    let uid = vc.uid();
    let members::Membership {
        members: pods,
        foreign: foreign_pods,
    } = members::sort_pods(
        labelled,
        live.statefulset(&names.statefulset()).as_ref(),
        uid.as_deref().map(|uid| (name.as_str(), uid)),
        vc.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(super::adopt::ANNOTATION))
            .then(|| u32::try_from(vc.spec.replicas).unwrap_or(0)),
    );
    let tls = tls_secrets(client, vc, &namespace, &names).await?;
    let backup_key_exists = match vc.spec.backup.enabled && vc.spec.backup.has_store() {
        true => {
            let (secret, _) = nodes::backup_key_ref(vc);
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
            let found = with_retries(|| secrets.get_opt(&secret))
                .await
                .map_err(kube_err("reading the backup key"))?;
            Some(found.is_some())
        }
        false => None,
    };

    // The Vault nodes, through the lifecycle kept in memory.
    let bootstrapped = vc.status.as_ref().is_some_and(|s| s.bootstrapped);
    let ca = tls.ca();
    let desired = desired_pods(vc);
    let nodes = match NodeAccess::prepare(ctx, &mut memory.nodes, vc, ca.as_deref(), bootstrapped)?
    {
        Some(access) => {
            access.locate(&pods, &names);
            access
                .lifecycle
                .set_intent(nodes::intent_for(vc, &desired)?);
            let members: Vec<PodName> = pods
                .iter()
                .filter_map(|p| PodName::new(p.name_any()).ok())
                .collect();
            let leftovers: Vec<PodName> = members
                .iter()
                .filter(|n| !desired.iter().any(|d| d == n.as_str()))
                .cloned()
                .collect();
            Some(
                access
                    .lifecycle
                    .observe_members(&members, &leftovers)
                    .await?,
            )
        }
        None => None,
    };

    // What the CronJobs' Jobs reported. A failed read keeps the status as it was.
    let mut backup_jobs = match vc.spec.backup.enabled {
        true => backup::observe(
            client,
            &namespace,
            &name,
            backup::JobSource::backup(&names.backup()),
            &memory.backup_runs,
        )
        .await
        .map_err(|e| e.to_string()),
        false => Ok((None, Vec::new())),
    };
    // The backups taken before disruptive operations: read while they matter (a failed
    // read holds the operation), and counted with the scheduled ones in status.backup.
    let snapshot_jobs = match vc.spec.backup.snapshot_before_disruption() {
        true => snapshot::observe(client, vc, &namespace, &memory.backup_runs)
            .await
            .map_err(|e| e.to_string()),
        false => Ok(Vec::new()),
    };
    if let (Ok((_, runs)), Ok(snapshots)) = (&mut backup_jobs, &snapshot_jobs) {
        runs.extend(snapshots.iter().filter(|j| j.ours).map(|j| j.run.clone()));
    }
    let (metrics_token, token_jobs) = match vc.spec.monitoring.enabled {
        true => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
            let token = secrets
                .get_opt(&names.metrics_token_secret())
                .await
                .map(|s| s.and_then(|s| monitoring::token_status(s.metadata.annotations.as_ref())))
                .map_err(|e| e.to_string());
            let cronjob = names.metrics_token_job();
            let runs = backup::observe(
                client,
                &namespace,
                &name,
                monitoring::job_source(&cronjob),
                &memory.token_runs,
            )
            .await
            .map(|(_, runs)| runs)
            .map_err(|e| e.to_string());
            (token, runs)
        }
        false => (Ok(None), Ok(Vec::new())),
    };
    for (what, failed) in [
        ("the backup Jobs", backup_jobs.as_ref().err()),
        ("the snapshot Jobs", snapshot_jobs.as_ref().err()),
        ("the metrics-token Secret", metrics_token.as_ref().err()),
        ("the metrics-token Jobs", token_jobs.as_ref().err()),
    ] {
        if let Some(error) = failed {
            warn!(%error, "cannot read {what}; what status says of them stays as it was");
        }
    }

    Ok(Observed {
        capabilities,
        live,
        pods,
        foreign_pods,
        namesakes,
        keys_record,
        tls,
        backup_key_exists,
        nodes,
        backup_jobs,
        snapshot_jobs,
        metrics_token,
        token_jobs,
    })
}

/// The objects a chart install of this cluster's name would have, by kind and name.
fn chart_objects(names: &ClusterNames) -> [(&'static str, &'static str, String); 11] {
    [
        ("apps/v1", "StatefulSet", names.statefulset()),
        ("v1", "Service", names.service()),
        ("v1", "Service", names.active_service()),
        ("v1", "Service", names.standby_service()),
        ("v1", "Service", names.internal_service()),
        ("v1", "Service", names.ui_service()),
        ("v1", "ConfigMap", names.config_map()),
        ("v1", "ServiceAccount", names.service_account()),
        (
            "policy/v1",
            "PodDisruptionBudget",
            names.pod_disruption_budget(),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "Role",
            names.discovery_role(),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            names.discovery_role_binding(),
        ),
    ]
}

/// The objects of this cluster's names that exist and are not controlled by this
/// VaultCluster (`uid`). Only names missing from `live` (our own, found by label) are
/// looked up, one read each, and only while the cluster has no StatefulSet of its own:
/// a cluster that runs makes no extra request.
async fn namesakes(
    client: &kube::Client,
    namespace: &str,
    names: &ClusterNames,
    live: &LiveObjects,
    uid: Option<&str>,
) -> Result<Vec<serde_json::Value>, Error> {
    let mut found = Vec::new();
    for (api_version, kind, name) in chart_objects(names) {
        if live.get(kind, &name).is_some() {
            continue;
        }
        let Some(resource) = apply::api_resource(api_version, kind) else {
            continue;
        };
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &resource);
        let Some(object) = with_retries(|| api.get_opt(&name)).await.map_err(kube_err(
            "looking for existing objects of the cluster's names",
        ))?
        else {
            continue;
        };
        let ours = uid.is_some_and(|uid| {
            members::controlled_by(
                &object.metadata,
                "vaultkeeper.io/v1alpha1",
                "VaultCluster",
                names.cluster(),
                uid,
            )
        });
        if !ours {
            let mut object = serde_json::to_value(&object).unwrap_or_default();
            object["apiVersion"] = serde_json::Value::from(api_version);
            object["kind"] = serde_json::Value::from(kind);
            found.push(object);
        }
    }
    Ok(found)
}

/// Whether the keys Secret exists and holds a key record. Only the key's presence is
/// looked at here; the record itself is read by the lifecycle.
async fn keys_record(client: &kube::Client, namespace: &str, name: &str) -> Result<bool, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = with_retries(|| secrets.get_opt(name))
        .await
        .map_err(kube_err("reading the keys Secret"))?;
    Ok(secret
        .and_then(|s| s.data)
        .is_some_and(|d| d.contains_key(crate::custody::INIT_KEY)))
}

/// The pods the spec asks for, by name.
pub(crate) fn desired_pods(vc: &VaultCluster) -> Vec<String> {
    let names = ClusterNames::new(vc.name_any());
    (0..u32::try_from(vc.spec.replicas).unwrap_or(0))
        .map(|i| names.pod(i))
        .collect()
}

/// The pods carrying the StatefulSet's selector labels: members and foreign pods alike,
/// for [`members::sort_pods`] to tell apart.
async fn pods(
    client: &kube::Client,
    vc: &VaultCluster,
    namespace: &str,
) -> Result<Vec<Pod>, Error> {
    let layout = ServerLayout::new(vc.spec.effective_flavor());
    let selector = Labels::new(layout, &vc.name_any(), None)
        .server_selector()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&selector);
    Ok(with_retries(|| api.list(&params))
        .await
        .map_err(kube_err("listing the pods"))?
        .items)
}

/// The Secrets TLS is made of, for the mode the spec asks for.
async fn tls_secrets(
    client: &kube::Client,
    vc: &VaultCluster,
    namespace: &str,
    names: &ClusterNames,
) -> Result<TlsObserved, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = |name: String, step: &'static str| {
        let secrets = secrets.clone();
        async move {
            with_retries(|| secrets.get_opt(&name))
                .await
                .map(|s| s.map(Box::new))
                .map_err(kube_err(step))
        }
    };
    Ok(match vc.spec.tls.mode {
        TlsMode::Disabled => TlsObserved::Disabled,
        TlsMode::SelfSigned => TlsObserved::SelfSigned {
            ca: read(names.ca_secret(), "reading the CA Secret").await?,
            server: read(
                names.server_tls_secret(),
                "reading the server certificate Secret",
            )
            .await?,
        },
        TlsMode::Secret | TlsMode::CertManager => {
            let name = match vc.spec.tls.mode {
                TlsMode::Secret => vc.spec.tls.secret_name.clone().unwrap_or_default(),
                _ => names.server_tls_secret(),
            };
            TlsObserved::External {
                secret: read(name.clone(), "reading the TLS Secret").await?,
                name,
            }
        }
    })
}

/// The finished runs of `runs`, to remember so their logs are not read again.
pub(crate) fn finished_runs(runs: &[JobRun]) -> HashMap<String, JobRun> {
    runs.iter()
        .filter(|r| r.finished.is_some())
        .map(|r| (r.name.clone(), r.clone()))
        .collect()
}
