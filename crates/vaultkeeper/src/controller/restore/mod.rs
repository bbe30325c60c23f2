//! The VaultRestore controller: one explicit restore of a backup into a VaultCluster.
//!
//! ```text
//!   validate ─► lock (Restore) ─► pause the lifecycle ─► resolve + verify the backup ─►
//!   keep the old keys ─► load the snapshot ─► swap the keys ─► resume ─► verify ─► release
//! ```
//!
//! Nothing reaches Vault before the whole object authenticated and matched its manifest:
//! a tampered object, a foreign backup without `allowForeignCluster`, or keys nobody can
//! supply fail the VaultRestore and leave the cluster as it was.
//!
//! The cluster's lifecycle is paused by holding its memory (the same lock every pass of
//! the VaultCluster controller takes first) from the keys check to the keys swap, so no
//! pass unseals or logs in with keys that are about to change. The lifecycle is then
//! rebuilt from the keys Secret, so the stale in-memory keys and login are gone. The
//! operation lock (`OperationKind::Restore`) stays taken until the check at the end:
//! rolling updates and scale-downs wait for it.
//!
//! A VaultRestore runs once: Succeeded and Failed are final. If the operator dies while one
//! is Running, the next leader starts it again from the top once the lock is stale (only
//! this controller takes over a stale Restore lock). Every step repeats safely: the
//! download is verified again, the old keys copy is created only once, the snapshot is
//! loaded again (the plain endpoint once the keys already match), and the keys swap is an
//! idempotent write.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};
use vaultkeeper_api::names::vault as vault_names;
use vaultkeeper_api::restore::{RestorePhase, SourceChoice, validate_restore};
use vaultkeeper_api::{OperationKind, VaultCluster, VaultRestore, VaultRestoreStatus};
use vaultkeeper_backup::EncryptionKey;
use vaultkeeper_backup::job::resolve_backup;
use vaultkeeper_backup::naming::BackupLocation;
use vaultkeeper_backup::restore::{RestoreMode, download_and_verify, restore_verified};
use vaultkeeper_backup::s3::S3Store;
use vaultkeeper_vault::keys::KeyStore;
use vaultkeeper_vault::secret::ExposeSecret;

use super::context::Context;
use super::error::Error;
use super::events::EventSpec;
use super::lock::{self, Busy};
use super::nodes::{backup_key_ref, keys_secret_name};
use crate::custody::SecretKeyStore;
use crate::escrow;

mod keys;
mod verify;

pub use keys::previous_keys_secret_name;
use keys::{keep_previous_keys, open_escrow, point_in_time, record_matches_escrow_name};
use verify::{active_node, verify};

/// Field manager of the VaultRestore status.
const FIELD_MANAGER: &str = "vaultkeeper-restore";
/// How often a VaultRestore that waits (for the lock) looks again.
const WAIT_AGAIN: Duration = Duration::from_secs(5);

/// Why a restore ended without success: a reason for the condition and Event, and a
/// message that names the fix. `changed` says whether the cluster was touched.
struct Failure {
    reason: &'static str,
    message: String,
    changed: bool,
}

fn refuse(reason: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        reason,
        message: message.into(),
        changed: false,
    }
}

/// What a finished restore found.
struct Restored {
    object: String,
    taken_at: Option<jiff::Timestamp>,
    mode: RestoreMode,
    previous_keys_secret: Option<String>,
    verification: String,
}

/// Reconciles one VaultRestore.
pub(crate) async fn reconcile(vr: Arc<VaultRestore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = vr.namespace().ok_or(Error::NoNamespace)?;
    let status = vr.status.clone().unwrap_or_default();
    // One-shot: a final VaultRestore never runs again, whatever its spec now says.
    if status.phase.is_some_and(RestorePhase::is_final) {
        // The lock is given back after the final status is written; a release that failed
        // then is retried here.
        return release_if_ours(&ctx, &vr, &namespace).await;
    }
    if ctx.fence().check().is_err() {
        return Ok(Action::requeue(WAIT_AGAIN));
    }
    let (choice, from_cluster) = match validate_restore(&vr.spec, &namespace) {
        Ok(valid) => valid,
        Err(invalid) => {
            let failure = refuse("InvalidSpec", invalid.to_string());
            finish(&ctx, &vr, status, None, Err(failure)).await?;
            return Ok(Action::await_change());
        }
    };
    let clusters: Api<VaultCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(vc) =
        clusters
            .get_opt(&vr.spec.cluster_ref.name)
            .await
            .map_err(super::error::kube_err(
                "reading the VaultCluster to restore",
            ))?
    else {
        let failure = refuse(
            "ClusterNotFound",
            format!(
                "spec.clusterRef.name: there is no VaultCluster {} in namespace {namespace}; create a new VaultRestore naming an existing one",
                vr.spec.cluster_ref.name
            ),
        );
        finish(&ctx, &vr, status, None, Err(failure)).await?;
        return Ok(Action::await_change());
    };
    if vc.spec.backup.s3.is_none() {
        let failure = refuse(
            "NoS3Backups",
            "the VaultCluster keeps no backups in S3 (spec.backup.s3): a VaultRestore reads S3 \
             buckets; restore from GCS or Azure with `vaultkeeper restore` (docs/restore-runbook.md)",
        );
        finish(&ctx, &vr, status, None, Err(failure)).await?;
        return Ok(Action::await_change());
    }

    let held = match lock::acquire(
        &ctx,
        &vc,
        OperationKind::Restore,
        Some(format!("VaultRestore {}", vr.name_any())),
    )
    .await
    {
        Ok(held) => held,
        Err(busy) => {
            let message = match &busy {
                Busy::Fenced(_) => return Ok(Action::requeue(WAIT_AGAIN)),
                Busy::Conflict => return Ok(Action::requeue(Duration::from_millis(500))),
                other => format!("waiting: {other}"),
            };
            pending(&ctx, &vr, &status, choice.describe(), message).await?;
            return Ok(Action::requeue(WAIT_AGAIN));
        }
    };

    let mut running = status.clone();
    running.phase = Some(RestorePhase::Running);
    running.observed_generation = vr.metadata.generation;
    running.source = Some(choice.describe());
    running.message = Some(format!(
        "restoring into VaultCluster {}; its lifecycle actions are paused and the operation lock is held",
        vc.name_any()
    ));
    if running.started_at.is_none() {
        running.started_at = Some(Time(jiff::Timestamp::now()));
    } else {
        running.step = Some("ResumedAfterInterruption".into());
    }
    write_status(&ctx, &vr, &running).await?;
    let started = EventSpec::normal(
        "RestoreStarted",
        format!(
            "VaultRestore {} started: source {}",
            vr.name_any(),
            choice.describe()
        ),
    );
    ctx.publish(&vc, &started).await;
    ctx.publish_about(vr.object_ref(&()), vr.namespace(), &started)
        .await;

    let outcome = restore_locked(&ctx, &vr, &vc, &namespace, &choice, &from_cluster).await;
    // Final first, then the lock: while the restore is not final, nothing else holds it.
    finish(&ctx, &vr, running, Some(&vc), outcome).await?;
    if let Err(e) = lock::release(&ctx, &vc, held).await {
        warn!(error = %e, "cannot release the restore lock yet; retrying");
        return Ok(Action::requeue(WAIT_AGAIN));
    }
    Ok(Action::await_change())
}

/// Gives back the cluster's Restore lock when this replica holds it for `vr`.
async fn release_if_ours(
    ctx: &Context,
    vr: &VaultRestore,
    namespace: &str,
) -> Result<Action, Error> {
    let clusters: Api<VaultCluster> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(vc) =
        clusters
            .get_opt(&vr.spec.cluster_ref.name)
            .await
            .map_err(super::error::kube_err(
                "reading the VaultCluster to release the lock",
            ))?
    else {
        return Ok(Action::await_change());
    };
    let detail = format!("VaultRestore {}", vr.name_any());
    let Some(operation) = vc
        .status
        .as_ref()
        .and_then(|s| s.operation.as_ref())
        .filter(|o| {
            o.kind == OperationKind::Restore
                && o.detail.as_deref() == Some(detail.as_str())
                && o.holder.as_deref() == Some(ctx.fence().identity())
        })
    else {
        return Ok(Action::await_change());
    };
    let held = lock::Held {
        kind: OperationKind::Restore,
        operation: operation.clone(),
        resource_version: vc.metadata.resource_version.clone(),
    };
    match lock::release(ctx, &vc, held).await {
        Ok(()) => Ok(Action::await_change()),
        Err(e) => {
            warn!(error = %e, "cannot release the restore lock yet; retrying");
            Ok(Action::requeue(WAIT_AGAIN))
        }
    }
}

/// Everything done under the operation lock.
async fn restore_locked(
    ctx: &Context,
    vr: &VaultRestore,
    vc: &VaultCluster,
    namespace: &str,
    choice: &SourceChoice,
    from_cluster: &str,
) -> Result<Restored, Failure> {
    // Pause the cluster's passes: they take this memory first.
    let memory = ctx.memory(&format!("{namespace}/{}", vc.name_any()));
    let mut memory = memory.lock().await;
    if memory
        .nodes
        .as_ref()
        .is_some_and(|n| n.lifecycle.has_pending_keys())
    {
        return Err(refuse(
            "KeysNotSaved",
            "the cluster's init output is still held in memory, not yet in the keys Secret; \
             wait until the VaultCluster reports it saved, then create a new VaultRestore",
        ));
    }

    // The backup, its manifest, and the keys that open it. Read-only so far.
    let settings = escrow::s3_settings(&ctx.client, vc)
        .await
        .map_err(|e| refuse("ObjectStoreUnreachable", format!("spec.backup.s3: {e}")))?;
    let store = S3Store::connect(&settings)
        .await
        .map_err(|e| refuse("ObjectStoreUnreachable", e.to_string()))?;
    let prefix = vc
        .spec
        .backup
        .s3
        .as_ref()
        .and_then(|s| s.prefix.clone())
        .unwrap_or_else(|| namespace.to_owned());
    let location = BackupLocation::new(&prefix, from_cluster)
        .map_err(|e| refuse("InvalidSpec", format!("spec.source.fromCluster.name: {e}")))?;
    let from = match choice {
        SourceChoice::Latest => "latest".to_owned(),
        SourceChoice::Object(key) => key.clone(),
        SourceChoice::PointInTime(at) => point_in_time(&store, &location, *at).await?,
    };
    let (object, manifest) = resolve_backup(&store, &location, &from)
        .await
        .map_err(|e| refuse("BackupNotFound", e.to_string()))?;
    let Some(manifest) = manifest else {
        return Err(refuse(
            "NoManifest",
            format!(
                "{object} has no manifest, so nothing says which keys open it; pick a complete backup, or restore it by hand with `vaultkeeper restore`"
            ),
        ));
    };
    if manifest.source.cluster != vc.name_any() && !vr.spec.source.allow_foreign_cluster {
        return Err(refuse(
            "ForeignBackup",
            format!(
                "{object} was taken from cluster {}, the target is {}: restoring it replaces the target's data and keys; set spec.source.allowForeignCluster: true in a new VaultRestore if that is what you mean",
                manifest.source.cluster,
                vc.name_any()
            ),
        ));
    }
    let taken_at = location.parse(&object).map(|p| p.taken_at);

    let keys_secret = keys_secret_name(vc);
    let key_store =
        SecretKeyStore::new(ctx.client.clone(), namespace, &keys_secret, &vc.name_any());
    let current = key_store
        .load()
        .await
        .map_err(|e| refuse("KeysUnreadable", e.to_string()))?;
    let (backup_key_secret, backup_key_item) = backup_key_ref(vc);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let cluster_backup_key = secrets
        .get_opt(&backup_key_secret)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(&backup_key_item))
        .map(|v| vaultkeeper_vault::secret::secret_bytes(v.0));
    let escrowed =
        open_escrow(ctx, vr, namespace, &store, &manifest, from_cluster, &prefix).await?;
    let keys_match = match (&escrowed, &current) {
        (Some(payload), Some(current)) => current
            .to_json()
            .map(|c| c.expose_secret() == payload.record.expose_secret())
            .unwrap_or(false),
        (Some(_), None) => false,
        (None, current) => record_matches_escrow_name(
            current.as_ref(),
            cluster_backup_key.as_ref(),
            &backup_key_secret,
            &backup_key_item,
            &manifest,
            &prefix,
            from_cluster,
        ),
    };
    if escrowed.is_none() && !keys_match {
        return Err(refuse(
            "KeysNeeded",
            match &manifest.source.keys_escrow {
                Some(escrow_object) => format!(
                    "the keys Secret {keys_secret} does not hold the keys that open {object} (they are in the escrow object {escrow_object}); create a new VaultRestore with spec.keys.escrowIdentitySecretRef naming a Secret that holds an escrow recipient's age identity"
                ),
                None => format!(
                    "the keys Secret {keys_secret} does not hold the keys that open {object}, and its manifest names no escrow object: put the old cluster's key record into the keys Secret and restore with `vaultkeeper restore --force` (docs/restore-runbook.md)"
                ),
            },
        ));
    }

    // The backup encryption key: the cluster's own, or the one escrowed with the keys.
    let mut candidates = Vec::new();
    if let Some(key) = &cluster_backup_key {
        candidates.push(key.expose_secret().to_vec());
    }
    if let Some(key) = escrowed.as_ref().and_then(|p| p.backup_key.as_ref()) {
        candidates.push(key.value.expose_secret().to_vec());
    }
    let key = candidates
        .iter()
        .filter_map(|c| EncryptionKey::from_file_contents(c).ok())
        .find(|k| k.key_id().to_string() == manifest.encryption.key_id)
        .ok_or_else(|| {
            refuse(
                "EncryptionKeyMissing",
                format!(
                    "{object} was encrypted with key {}, which neither Secret {backup_key_secret} nor the escrow object holds; put that key into {backup_key_secret} (key {backup_key_item}) and create a new VaultRestore",
                    manifest.encryption.key_id
                ),
            )
        })?;
    for candidate in &mut candidates {
        zeroize::Zeroize::zeroize(candidate);
    }

    // Every byte authenticated and matched against the manifest before Vault sees any.
    let verified = download_and_verify(&store, &object, Some(&manifest), &key, None)
        .await
        .map_err(|e| {
            refuse(
                "BackupRejected",
                format!(
                    "{e}. Nothing was sent to Vault; the cluster is as it was. Restore an earlier backup (spec.source.object) in a new VaultRestore"
                ),
            )
        })?;

    let active = active_node(ctx, vc, namespace).await?;
    let target = active
        .health()
        .await
        .map_err(|e| refuse("ClusterUnreachable", e.to_string()))?;
    let same_cluster = matches!(
        (&manifest.source.cluster_id, &target.cluster_id),
        (Some(backup), Some(target)) if backup == target
    );
    let mode = if keys_match && same_cluster {
        RestoreMode::Snapshot
    } else {
        RestoreMode::SnapshotForce
    };

    // The record the cluster has now stays recoverable: copied once, never overwritten.
    let previous_keys_secret = if keys_match {
        None
    } else {
        Some(keep_previous_keys(ctx, vr, vc, namespace, &keys_secret).await?)
    };

    let jwt = ctx
        .settings
        .jwt
        .jwt()
        .await
        .map_err(|e| refuse("RestoreIdentityUnavailable", e.to_string()))?;
    let token = active
        .kubernetes_login(
            vault_names::KUBERNETES_AUTH_MOUNT,
            vault_names::RESTORE_ROLE,
            &jwt,
        )
        .await
        .map_err(|e| {
            refuse(
                "RestoreIdentityMissing",
                format!(
                    "cannot log in with the restore role {}: {e}. Clusters bootstrapped by an older vaultkeeper lack it; restore by hand with `vaultkeeper restore` (docs/restore-runbook.md)",
                    vault_names::RESTORE_ROLE
                ),
            )
        })?;
    info!(%object, ?mode, cluster = %vc.name_any(), "backup verified; restoring");
    restore_verified(&active, &token, &verified, &key, mode)
        .await
        .map_err(|e| Failure {
            reason: "RestoreFailed",
            message: format!(
                "{e}. Vault may hold a partly restored state: create a new VaultRestore of the same backup"
            ),
            changed: true,
        })?;
    drop(verified);

    // The keys that open the restored data replace the stale ones.
    if let (false, Some(payload)) = (keys_match, &escrowed) {
        key_store.store(&payload.keys).await.map_err(|e| Failure {
            reason: "KeysSwapFailed",
            message: format!(
                "the snapshot is restored but the keys Secret {keys_secret} could not take its keys ({e}); create a new VaultRestore of the same backup to retry. The previous record is in Secret {}",
                previous_keys_secret.clone().unwrap_or_default()
            ),
            changed: true,
        })?;
    }
    // Rebuilt from the keys Secret by the next pass: no stale keys or login survive.
    if !memory
        .nodes
        .as_ref()
        .is_some_and(|n| n.lifecycle.has_pending_keys())
    {
        memory.nodes = None;
    }
    drop(memory);

    let verification = verify(ctx, vc, namespace, manifest.source.cluster_id.as_deref()).await?;
    Ok(Restored {
        object,
        taken_at,
        mode,
        previous_keys_secret,
        verification,
    })
}

fn api_summary(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} {}", status.code, status.reason),
        other => other.to_string(),
    }
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: Time(jiff::Timestamp::now()),
    }
}

async fn write_status(
    ctx: &Context,
    vr: &VaultRestore,
    status: &VaultRestoreStatus,
) -> Result<(), Error> {
    let api: Api<VaultRestore> =
        Api::namespaced(ctx.client.clone(), &vr.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": "vaultkeeper.io/v1alpha1",
        "kind": "VaultRestore",
        "status": status,
    });
    api.patch_status(
        &vr.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(super::error::kube_err("writing the VaultRestore status"))?;
    Ok(())
}

async fn pending(
    ctx: &Context,
    vr: &VaultRestore,
    status: &VaultRestoreStatus,
    source: String,
    message: String,
) -> Result<(), Error> {
    let mut next = status.clone();
    next.phase = Some(next.phase.unwrap_or(RestorePhase::Pending));
    next.observed_generation = vr.metadata.generation;
    next.source = Some(source);
    if next.message.as_deref() == Some(message.as_str()) && status.phase.is_some() {
        return Ok(());
    }
    next.message = Some(message);
    write_status(ctx, vr, &next).await
}

/// Writes the final status and publishes the outcome.
async fn finish(
    ctx: &Context,
    vr: &VaultRestore,
    mut status: VaultRestoreStatus,
    vc: Option<&VaultCluster>,
    outcome: Result<Restored, Failure>,
) -> Result<(), Error> {
    let generation = vr.metadata.generation;
    status.observed_generation = generation;
    status.finished_at = Some(Time(jiff::Timestamp::now()));
    let event = match outcome {
        Ok(done) => {
            let message = format!(
                "restored {} ({}) and verified: {}. This VaultRestore is final and never runs again; create a new one to restore again",
                done.object,
                match done.mode {
                    RestoreMode::Snapshot => "snapshot",
                    RestoreMode::SnapshotForce => "snapshot-force",
                },
                done.verification
            );
            status.phase = Some(RestorePhase::Succeeded);
            status.backup_object = Some(done.object);
            status.snapshot_time = done.taken_at.map(Time);
            status.mode = Some(
                match done.mode {
                    RestoreMode::Snapshot => "snapshot",
                    RestoreMode::SnapshotForce => "snapshot-force",
                }
                .to_owned(),
            );
            status.previous_keys_secret = done.previous_keys_secret.filter(|s| !s.is_empty());
            status.verification = Some(done.verification);
            status.step = Some("Verified".into());
            status.conditions = vec![
                condition("Complete", true, "Restored", &message, generation),
                condition("Succeeded", true, "Restored", &message, generation),
            ];
            status.message = Some(message.clone());
            EventSpec::normal("Restored", message)
        }
        Err(failure) => {
            let message = if failure.changed {
                failure.message
            } else {
                format!("{} The cluster was not changed.", failure.message)
            };
            status.phase = Some(RestorePhase::Failed);
            status.conditions = vec![
                condition("Complete", true, failure.reason, &message, generation),
                condition("Succeeded", false, failure.reason, &message, generation),
            ];
            status.message = Some(message.clone());
            EventSpec::warning("RestoreFailed", format!("{}: {message}", failure.reason))
        }
    };
    write_status(ctx, vr, &status).await?;
    ctx.publish_about(vr.object_ref(&()), vr.namespace(), &event)
        .await;
    if let Some(vc) = vc {
        ctx.publish(vc, &event).await;
    }
    Ok(())
}

fn error_policy(vr: Arc<VaultRestore>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(name = vr.name_any(), error = %error, "VaultRestore reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the VaultRestore controller for `namespace` (every namespace when `None`) until
/// `shutdown` resolves.
pub(crate) async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<VaultRestore> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "restore controller event");
            }
        })
        .await;
}
