//! Reaching the cluster's pods over HTTPS, and the check after a restore: every pod
//! unsealed with the backup's cluster id, raft voters, an active node, a login.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use vaultkeeper_api::VaultCluster;
use vaultkeeper_api::names::vault as vault_names;
use vaultkeeper_render::{API_PORT, TlsFiles};
use vaultkeeper_vault::client::{HttpOptions, VaultHttp, tls_config};
use vaultkeeper_vault::node::{NodeEndpoint, PodName};

use super::{Failure, api_summary, refuse};
use crate::controller::context::Context;

/// How long the check after the restore waits for every pod to be unsealed and Ready.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(300);

/// Every pod of the cluster with an IP, reached over HTTP at that IP and verified against
/// the cluster CA (by the pod's DNS name, which its certificate carries).
async fn cluster_nodes(
    ctx: &Context,
    vc: &VaultCluster,
    namespace: &str,
) -> Result<Vec<(String, VaultHttp)>, Failure> {
    let names = vaultkeeper_api::ClusterNames::new(vc.name_any());
    let tls = match TlsFiles::of(vc) {
        TlsFiles::Enabled(files) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
            let ca = secrets
                .get_opt(&files.secret_name)
                .await
                .ok()
                .flatten()
                .and_then(|s| s.data)
                .and_then(|mut d| d.remove("ca.crt"))
                .ok_or_else(|| {
                    refuse(
                        "ClusterUnreachable",
                        format!("Secret {} has no ca.crt", files.secret_name),
                    )
                })?;
            Some(ca.0)
        }
        TlsFiles::Disabled => None,
    };
    let config = Arc::new(
        tls_config(tls.as_deref()).map_err(|e| refuse("ClusterUnreachable", e.to_string()))?,
    );
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/instance={},component=server",
            vc.name_any()
        )))
        .await
        .map_err(|e| refuse("ClusterUnreachable", api_summary(&e)))?;
    let mut nodes = Vec::new();
    for pod in &listed.items {
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        else {
            continue;
        };
        let address = std::net::SocketAddr::new(ip, API_PORT);
        let node = if tls.is_some() {
            let Ok(name) = PodName::new(pod.name_any()) else {
                continue;
            };
            let endpoint = NodeEndpoint::by_name(
                format!("{}.{}", name.as_str(), names.internal_service()),
                address,
            );
            VaultHttp::for_pod(name, &endpoint, config.clone(), HttpOptions::job())
        } else {
            VaultHttp::new(
                &format!("http://{address}"),
                config.clone(),
                HttpOptions::job(),
            )
        };
        if let Ok(node) = node {
            nodes.push((pod.name_any(), node));
        }
    }
    Ok(nodes)
}

/// The active node of the cluster.
pub(super) async fn active_node(
    ctx: &Context,
    vc: &VaultCluster,
    namespace: &str,
) -> Result<VaultHttp, Failure> {
    for (_, node) in cluster_nodes(ctx, vc, namespace).await? {
        if let Ok(health) = node.health().await
            && health.initialized
            && !health.sealed
            && !health.standby
        {
            return Ok(node);
        }
    }
    Err(refuse(
        "NoActiveNode",
        format!(
            "no pod of VaultCluster {} is initialized, unsealed and active; wait until it is Ready (a re-created cluster initializes first), then create a new VaultRestore",
            vc.name_any()
        ),
    ))
}

/// Waits until the cluster is back: every pod answers unsealed with the backup's cluster
/// id, raft reports every pod a voter, and a login through the restored
/// barrier works. Not the VaultCluster's `Ready`: a change asked for meanwhile (a roll that
/// waits for this lock) keeps it False until the lock is released.
pub(super) async fn verify(
    ctx: &Context,
    vc: &VaultCluster,
    namespace: &str,
    cluster_id: Option<&str>,
) -> Result<String, Failure> {
    let clusters: Api<VaultCluster> = Api::namespaced(ctx.client.clone(), namespace);
    let deadline = std::time::Instant::now() + VERIFY_TIMEOUT;
    let mut last = String::from("nothing answered yet");
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(live) = clusters.get(&vc.name_any()).await else {
            continue;
        };
        let replicas = usize::try_from(live.spec.replicas).unwrap_or(0);
        let Ok(nodes) = cluster_nodes(ctx, vc, namespace).await else {
            continue;
        };
        let mut unsealed = 0;
        let mut active = None;
        for (_, node) in &nodes {
            let Ok(health) = node.health().await else {
                continue;
            };
            if cluster_id.is_some()
                && health.cluster_id.is_some()
                && health.cluster_id.as_deref() != cluster_id
            {
                return Err(Failure {
                    reason: "VerificationFailed",
                    message: format!(
                        "the restored cluster answers with cluster id {:?}, the backup's is {:?}: the snapshot did not take; create a new VaultRestore",
                        health.cluster_id, cluster_id
                    ),
                    changed: true,
                });
            }
            if health.initialized && !health.sealed {
                unsealed += 1;
                if !health.standby {
                    active = Some(node);
                }
            }
        }
        let voters = live
            .status
            .as_ref()
            .and_then(|s| s.raft.as_ref())
            .map_or(0, |r| r.voters.len());
        last = format!(
            "{unsealed}/{replicas} pods unsealed, {voters} raft voters, active node: {}",
            if active.is_some() { "yes" } else { "no" }
        );
        let Some(active) = active else { continue };
        if unsealed < replicas || voters < replicas {
            tracing::debug!(check = %last, "the restored cluster is not back yet");
            continue;
        }
        // A read through the restored barrier: a login reads the auth configuration and
        // the role from the restored data and writes a token into it. (The restore role
        // has no default policy, so its token cannot even look itself up; it expires with
        // its short TTL.)
        let Ok(jwt) = ctx.settings.jwt.jwt().await else {
            continue;
        };
        if let Err(e) = active
            .kubernetes_login(
                vault_names::KUBERNETES_AUTH_MOUNT,
                vault_names::RESTORE_ROLE,
                &jwt,
            )
            .await
        {
            last.push_str(&format!("; login failed: {e}"));
            tracing::debug!(check = %last, "the restored cluster is not back yet");
            continue;
        }
        return Ok(format!(
            "{last}; cluster id {} as in the backup; a login through the restored data worked",
            cluster_id.unwrap_or("unknown")
        ));
    }
    Err(Failure {
        reason: "VerificationFailed",
        message: format!(
            "the snapshot is restored and the keys swapped, but the cluster did not come back within {} s ({last}); see the VaultCluster's conditions",
            VERIFY_TIMEOUT.as_secs()
        ),
        changed: true,
    })
}
