//! Init output the operator holds in memory because the keys Secret did not take it yet.
//! The rule: no pass, no shutdown, no lost Lease and no deletion lets it go unsaved.
//!
//! - Every pass starts here ([`flush_at_pass_start`]), before any read that could end the
//!   pass early, so a held answer is retried even while the rest of the cluster cannot
//!   be observed.
//! - A deleted VaultCluster keeps its finalizer until its held keys are saved
//!   ([`flush_before_forgetting`]).
//! - When the controllers stop (SIGTERM, or the Lease lost), [`flush_before_exit`] retries
//!   until every held answer is saved, saying so in the log and in a Warning Event; the
//!   process does not exit, and does not give up its Lease, before. Only the kubelet's
//!   SIGKILL at the end of the termination grace period can cut it short, and the Event
//!   published first says what that would lose.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use tracing::{error, info};
use vaultkeeper_api::VaultCluster;

use super::context::{ClusterMemory, Context};
use super::events::EventSpec;

/// How long to wait between two attempts while the process is stopping.
const RETRY: Duration = Duration::from_secs(2);

/// Saves what `memory` holds; publishes what happened. `Err` carries a secret-free reason.
async fn flush(ctx: &Context, vc: &VaultCluster, memory: &mut ClusterMemory) -> Result<(), String> {
    let Some(nodes) = memory.nodes.as_mut() else {
        return Ok(());
    };
    match nodes.lifecycle.flush_pending().await {
        Ok(false) => Ok(()),
        Ok(true) => {
            info!(cluster = %vc.name_any(), "held init output saved to the keys Secret");
            ctx.publish(
                vc,
                &EventSpec::normal(
                    "KeysPersisted",
                    "the init output held in memory is now saved in the keys Secret".into(),
                ),
            )
            .await;
            Ok(())
        }
        // Saved as it arrived, but unreadable: nothing is held any more; the next pass
        // stops the cluster with the condition that says what to do.
        Err(e @ vaultkeeper_vault::Error::InitAnswerUnreadable { .. }) => {
            error!(cluster = %vc.name_any(), error = %e, "the saved init answer cannot be read");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The first step of every pass. A failure does not end the pass (the lifecycle decides
/// `PersistKeys` and nothing else while keys are held), it is logged and published.
pub(crate) async fn flush_at_pass_start(
    ctx: &Context,
    vc: &VaultCluster,
    memory: &mut ClusterMemory,
) {
    if let Err(reason) = flush(ctx, vc, memory).await {
        error!(cluster = %vc.name_any(), %reason, "the init output is still only in memory; retrying");
        ctx.publish(
            vc,
            &EventSpec::warning(
                "KeysUnsaved",
                format!(
                    "the init output is held only in this operator's memory because the keys Secret cannot be written ({reason}); it is retried on every pass. Do not stop the operator until this clears"
                ),
            ),
        )
        .await;
    }
}

/// Before a deleted cluster is forgotten: `Err` keeps the finalizer, and the deletion is
/// retried, until the held keys are saved.
pub(crate) async fn flush_before_forgetting(
    ctx: &Context,
    vc: &VaultCluster,
    memory: &mut ClusterMemory,
) -> Result<(), String> {
    flush(ctx, vc, memory).await
}

/// Retries every cluster's held keys until all are saved. Called when the controllers
/// have stopped, before the process exits or gives up its Lease.
pub(crate) async fn flush_before_exit(ctx: &Arc<Context>) {
    let mut announced = false;
    loop {
        let mut unsaved = 0usize;
        for memory in ctx.remembered() {
            let mut memory = memory.lock().await;
            let holds = memory
                .nodes
                .as_ref()
                .is_some_and(|n| n.lifecycle.has_pending_keys());
            let Some(vc) = memory.cluster.clone().filter(|_| holds) else {
                continue;
            };
            if let Err(reason) = flush(ctx, &vc, &mut memory).await {
                unsaved += 1;
                error!(cluster = %vc.name_any(), %reason, "stopping, but the init output is only in memory; not exiting until it is saved");
                if !announced {
                    ctx.publish(
                        &vc,
                        &EventSpec::warning(
                            "KeysUnsavedAtShutdown",
                            format!(
                                "the operator is stopping while this cluster's init output is held only in its memory ({reason}); it keeps retrying the save and does not exit until it succeeds. If the pod is killed first, the keys are lost: make the keys Secret writable now"
                            ),
                        ),
                    )
                    .await;
                }
            }
        }
        if unsaved == 0 {
            return;
        }
        announced = true;
        tokio::time::sleep(RETRY).await;
    }
}
