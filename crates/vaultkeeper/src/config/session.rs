//! A short login to one cluster's Vault as the config identity (Kubernetes auth role
//! `vaultkeeper-config`, see `vaultkeeper_vault::bootstrap`), through the same node client
//! and transport the VaultCluster controller uses, at the active pod. The token lives for
//! one pass and is revoked at its end; it is never logged or stored.

use std::sync::Arc;

use kube::ResourceExt;
use tracing::debug;
use vaultkeeper_api::VaultCluster;
use vaultkeeper_api::names::vault as vault_names;
use vaultkeeper_vault::client::NodeClient;
use vaultkeeper_vault::node::PodName;
use vaultkeeper_vault::secret::Token;

use super::decide::Outcome;
use crate::controller::Context;

/// A logged-in session: the client, the pod it talks to and the token.
pub(crate) struct Session {
    pub(crate) client: Arc<dyn NodeClient>,
    pub(crate) pod: PodName,
    pub(crate) token: Token,
}

impl Session {
    /// Logs in at the cluster's active pod. A cluster that cannot be reached yet is an
    /// [`Outcome`] for the status (with the reason and what to wait for), not an error.
    pub(crate) async fn open(ctx: &Context, vc: &VaultCluster) -> Result<Session, Outcome> {
        let namespace = vc.namespace().unwrap_or_default();
        let unavailable = |message: String| Outcome::failed("VaultUnavailable", message, None);
        let Some(active) = vc.status.as_ref().and_then(|s| s.active_pod.clone()) else {
            return Err(unavailable(format!(
                "spec.clusterRef: VaultCluster {namespace}/{} has no active pod yet; waiting for it to be Ready",
                vc.name_any()
            )));
        };
        let pod = PodName::new(active)
            .map_err(|e| unavailable(format!("status.activePod of the cluster: {e}")))?;
        // The client the VaultCluster controller keeps for this cluster: same transport,
        // same pod addresses. Taken under the cluster's lock, which a pass holds briefly.
        let client = {
            let memory = ctx.memory(&format!("{namespace}/{}", vc.name_any()));
            let memory = memory.lock().await;
            memory
                .nodes
                .as_ref()
                .map(|nodes| nodes.lifecycle.client().clone())
        };
        let Some(client) = client else {
            return Err(unavailable(format!(
                "spec.clusterRef: VaultCluster {namespace}/{} is not reached by the operator yet; waiting for its first pass",
                vc.name_any()
            )));
        };
        let jwt = ctx.settings.jwt.jwt().await.map_err(|e| {
            Outcome::failed(
                "LoginFailed",
                format!("the operator's Vault login token cannot be read: {e}"),
                None,
            )
        })?;
        let token = client
            .kubernetes_login(
                &pod,
                vault_names::KUBERNETES_AUTH_MOUNT,
                vault_names::CONFIG_ROLE,
                &jwt,
            )
            .await
            .map_err(|e| {
                Outcome::failed(
                    "LoginFailed",
                    format!(
                        "logging in to Vault as {} failed ({e}); the cluster's bootstrap creates that role, and a cluster whose root token was revoked before this release needs its operator policy rewritten with a root token (docs/configuration.md)",
                        vault_names::CONFIG_ROLE
                    ),
                    None,
                )
            })?;
        Ok(Session { client, pod, token })
    }

    /// Revokes the token (best effort: it expires with the role's TTL anyway).
    pub(crate) async fn close(self) {
        if let Err(e) = self.client.revoke_self(&self.pod, &self.token).await {
            debug!(error = %e, "revoking the config login failed; it expires by itself");
        }
    }
}
