//! One pass over a VaultPolicy: admit it, settle who owns the name, log in as the config
//! identity, read the policy from Vault, write it when it differs (an Event says whether
//! that was a new spec or a hand change being reverted), and write the status once. On
//! deletion, remove from Vault the policy this resource recorded, unless it says Retain.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use tracing::instrument;
use vaultkeeper_api::config::{check_policy_name, cluster_key, config_namespace_allowed};
use vaultkeeper_api::{ConfigDeletionPolicy, ConfigStatus, VaultCluster, VaultPolicy};
use vaultkeeper_vault::Error as VaultError;

use super::decide::{self, Claim, Outcome};
use super::session::Session;
use super::{ConfigContext, Error, FINALIZER, kube_err};
use crate::apply;

/// The Vault path of policy `name`.
fn policy_path(name: &str) -> String {
    format!("sys/policy/{name}")
}

/// Reconciles one VaultPolicy.
#[instrument(skip_all, fields(namespace = policy.namespace().unwrap_or_default(), name = policy.name_any()))]
pub(crate) async fn reconcile(
    policy: Arc<VaultPolicy>,
    ctx: Arc<ConfigContext>,
) -> Result<Action, Error> {
    let namespace = policy.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<VaultPolicy> = Api::namespaced(ctx.cluster.client.clone(), &namespace);
    finalizer::finalizer(&api, FINALIZER, policy, |event| async {
        match event {
            FinalizerEvent::Apply(policy) => apply(policy, &ctx).await,
            FinalizerEvent::Cleanup(policy) => cleanup(policy, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

/// The cluster the policy points at, if it exists and admits the policy's namespace;
/// otherwise the outcome that says why not.
async fn admitted_cluster(
    ctx: &ConfigContext,
    policy: &VaultPolicy,
    recorded: Option<String>,
) -> Result<Result<VaultCluster, Outcome>, Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let (cluster_ns, cluster_name) = cluster_key(&policy.spec.cluster_ref, &namespace);
    let clusters: Api<VaultCluster> = Api::namespaced(ctx.cluster.client.clone(), &cluster_ns);
    let Some(vc) = apply::with_retries(|| clusters.get_opt(&cluster_name))
        .await
        .map_err(kube_err("reading the VaultCluster"))?
    else {
        return Ok(Err(Outcome::failed(
            "ClusterNotFound",
            format!(
                "spec.clusterRef: there is no VaultCluster {cluster_ns}/{cluster_name}; fix the reference or create the cluster"
            ),
            recorded,
        )));
    };
    if !config_namespace_allowed(&vc, &cluster_ns, &namespace) {
        return Ok(Err(Outcome::failed(
            "NamespaceNotAllowed",
            format!(
                "spec.clusterRef: VaultCluster {cluster_ns}/{cluster_name} does not accept configuration from namespace {namespace}; its owners can add {namespace} to spec.allowedConfigNamespaces"
            ),
            recorded,
        )));
    }
    Ok(Ok(vc))
}

/// The claim of every admitted, live VaultPolicy that asks for the same policy in the same
/// cluster as `policy` (itself included).
fn claims(ctx: &ConfigContext, policy: &VaultPolicy, vc: &VaultCluster) -> Vec<Claim> {
    let cluster_ns = vc.namespace().unwrap_or_default();
    let wanted = (cluster_ns.clone(), vc.name_any());
    let name = policy.vault_name();
    let mut claims: Vec<Claim> = ctx
        .all_policies()
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.uid() != policy.uid())
        .filter(|p| {
            let own = p.namespace().unwrap_or_default();
            cluster_key(&p.spec.cluster_ref, &own) == wanted
                && p.vault_name() == name
                && config_namespace_allowed(vc, &cluster_ns, &own)
        })
        .map(|p| claim_of(p))
        .collect();
    claims.push(claim_of(policy));
    claims
}

fn claim_of(policy: &VaultPolicy) -> Claim {
    (
        policy.metadata.creation_timestamp.as_ref().map(|t| t.0),
        policy.namespace().unwrap_or_default(),
        policy.name_any(),
    )
}

/// One pass over a policy that is not being deleted.
async fn apply(policy: Arc<VaultPolicy>, ctx: &ConfigContext) -> Result<Action, Error> {
    let previous = policy.status.as_ref();
    let recorded = previous.and_then(|s| s.vault_path.clone());
    let outcome = match admitted_cluster(ctx, &policy, recorded.clone()).await? {
        Err(refused) => refused,
        Ok(vc) => sync(ctx, &policy, &vc, recorded).await?,
    };
    finish(ctx, &policy, outcome).await?;
    Ok(Action::requeue(ctx.resync()))
}

/// Makes Vault hold the policy; answers how that went.
async fn sync(
    ctx: &ConfigContext,
    policy: &VaultPolicy,
    vc: &VaultCluster,
    recorded: Option<String>,
) -> Result<Outcome, Error> {
    let name = policy.vault_name();
    if let Err(message) = check_policy_name(&name) {
        return Ok(Outcome::failed("InvalidSpec", message, recorded));
    }
    let path = policy_path(&name);
    let claims = claims(ctx, policy, vc);
    let mine = claim_of(policy);
    if let Some(owner) = decide::owner(&claims).filter(|o| **o != mine) {
        return Ok(Outcome::failed(
            "Conflict",
            format!(
                "spec.name: policy {name} in this cluster is already managed by VaultPolicy {}/{}; choose another name",
                owner.1, owner.2
            ),
            None,
        ));
    }
    ctx.cluster
        .fence()
        .check()
        .map_err(|e| Error::Fenced(e.to_string()))?;
    let session = match Session::open(&ctx.cluster, vc).await {
        Ok(session) => session,
        Err(outcome) => return Ok(with_path(outcome, recorded)),
    };
    let outcome = write_if_different(ctx, policy, &session, &name, &path, recorded).await;
    session.close().await;
    Ok(outcome)
}

fn with_path(outcome: Outcome, recorded: Option<String>) -> Outcome {
    match outcome {
        Outcome::NotSynced {
            reason, message, ..
        } => Outcome::failed(reason, message, recorded),
        synced => synced,
    }
}

/// Reads the policy and writes it when Vault differs from the spec.
async fn write_if_different(
    ctx: &ConfigContext,
    policy: &VaultPolicy,
    session: &Session,
    name: &str,
    path: &str,
    recorded: Option<String>,
) -> Outcome {
    let Session { client, pod, token } = session;
    let unavailable = |e: VaultError, recorded: Option<String>| {
        Outcome::failed("VaultUnavailable", format!("reading {path}: {e}"), recorded)
    };
    let current = match client.read_policy(pod, name, token).await {
        Ok(current) => current,
        Err(e) => return unavailable(e, recorded),
    };
    let desired = &policy.spec.policy;
    if current.as_deref() == Some(desired.as_str()) {
        // Already right; a renamed policy may still leave the old one behind.
        remove_renamed(ctx, policy, session, path, recorded.as_deref()).await;
        return Outcome::Synced {
            path: path.to_owned(),
        };
    }
    if let Err(e) = client.write_policy(pod, name, desired, token).await {
        return match e {
            VaultError::Api {
                status, message, ..
            } if (400..500).contains(&status) => Outcome::failed(
                "VaultRejected",
                format!("spec.policy: Vault refused the policy: {message}"),
                recorded,
            ),
            VaultError::PermissionDenied { .. } => Outcome::failed(
                "PermissionDenied",
                format!("spec.name: the config identity may not write {path}"),
                recorded,
            ),
            other => unavailable(other, recorded),
        };
    }
    let previous = policy.status.as_ref();
    match &current {
        None => {
            ctx.publish(policy, false, "Created", format!("created {path} in Vault"))
                .await;
        }
        Some(current) if decide::was_synced_at(previous, policy.metadata.generation) => {
            ctx.publish(
                policy,
                true,
                "DriftReverted",
                format!(
                    "{path} was changed in Vault outside this resource and has been rewritten from spec.policy: {}",
                    decide::describe_change(current, desired)
                ),
            )
            .await;
        }
        Some(_) => {
            ctx.publish(
                policy,
                false,
                "Updated",
                format!("wrote {path} from spec.policy"),
            )
            .await;
        }
    }
    remove_renamed(ctx, policy, session, path, recorded.as_deref()).await;
    Outcome::Synced {
        path: path.to_owned(),
    }
}

/// After `spec.name` changed, deletes the policy this resource wrote under its old name
/// (only what `status.vaultPath` recorded).
async fn remove_renamed(
    ctx: &ConfigContext,
    policy: &VaultPolicy,
    session: &Session,
    path: &str,
    recorded: Option<&str>,
) {
    let Some(old) = recorded.filter(|r| *r != path) else {
        return;
    };
    let Some(old_name) = old.strip_prefix("sys/policy/") else {
        return;
    };
    if check_policy_name(old_name).is_err() {
        return;
    }
    match session
        .client
        .delete_policy(&session.pod, old_name, &session.token)
        .await
    {
        Ok(()) => {
            ctx.publish(
                policy,
                false,
                "Deleted",
                format!("deleted {old} from Vault: spec.name now names {path}"),
            )
            .await
        }
        Err(e) => {
            ctx.publish(
                policy,
                true,
                "DeleteFailed",
                format!("could not delete {old} after spec.name changed ({e}); delete it by hand"),
            )
            .await
        }
    }
}

/// Writes the status when it changed, and a Warning the first time a failure is seen.
async fn finish(ctx: &ConfigContext, policy: &VaultPolicy, outcome: Outcome) -> Result<(), Error> {
    let previous = policy.status.as_ref();
    let generation = policy.metadata.generation;
    if let Outcome::NotSynced {
        reason, message, ..
    } = &outcome
        && !decide::same_failure(previous, generation, &outcome)
    {
        ctx.publish(policy, true, reason, message.clone()).await;
    }
    let status = decide::status(previous, generation, &outcome, jiff::Timestamp::now());
    if previous.is_some_and(|p| decide::same_status(p, &status)) {
        return Ok(());
    }
    write_status(ctx, policy, &status).await
}

async fn write_status(
    ctx: &ConfigContext,
    policy: &VaultPolicy,
    status: &ConfigStatus,
) -> Result<(), Error> {
    let api: Api<VaultPolicy> = Api::namespaced(
        ctx.cluster.client.clone(),
        &policy.namespace().unwrap_or_default(),
    );
    // A merge patch replacing the whole status: fields that went away (vaultPath after a
    // conflict, lastError once synced) are written as null.
    let mut value = serde_json::to_value(status)?;
    if let Some(map) = value.as_object_mut() {
        for field in ["vaultPath", "lastError", "lastSyncedTime"] {
            map.entry(field).or_insert(serde_json::Value::Null);
        }
    }
    let patch = serde_json::json!({ "status": value });
    let name = policy.name_any();
    let params = PatchParams::default();
    let patch = Patch::Merge(&patch);
    apply::with_retries(|| api.patch_status(&name, &params, &patch))
        .await
        .map_err(kube_err("writing the status"))?;
    Ok(())
}

/// The resource is being deleted: remove from Vault the policy it recorded, unless it
/// says Retain, the cluster is gone, or the cluster no longer admits its namespace.
async fn cleanup(policy: Arc<VaultPolicy>, ctx: &ConfigContext) -> Result<Action, Error> {
    let Some(path) = policy.status.as_ref().and_then(|s| s.vault_path.clone()) else {
        // Never written by this resource: nothing of it is in Vault.
        return Ok(Action::await_change());
    };
    if policy.spec.deletion_policy == ConfigDeletionPolicy::Retain {
        ctx.publish(
            &*policy,
            false,
            "Retained",
            format!("left {path} in Vault (deletionPolicy: Retain); it is no longer managed"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let vc = match admitted_cluster(ctx, &policy, None).await? {
        Ok(vc) => vc,
        Err(Outcome::NotSynced { message, .. }) => {
            ctx.publish(
                &*policy,
                true,
                "Retained",
                format!("left {path} in Vault: {message}"),
            )
            .await;
            return Ok(Action::await_change());
        }
        Err(Outcome::Synced { .. }) => return Ok(Action::await_change()),
    };
    let Some(name) = path.strip_prefix("sys/policy/") else {
        return Ok(Action::await_change());
    };
    if check_policy_name(name).is_err() {
        return Ok(Action::await_change());
    }
    ctx.cluster
        .fence()
        .check()
        .map_err(|e| Error::Fenced(e.to_string()))?;
    let session = match Session::open(&ctx.cluster, &vc).await {
        Ok(session) => session,
        Err(Outcome::NotSynced { message, .. }) => {
            // The finalizer stays until Vault can be reached; Retain lets go at once.
            return Err(Error::Vault(format!(
                "cannot remove {path} yet: {message}; set spec.deletionPolicy to Retain to delete the resource without touching Vault"
            )));
        }
        Err(Outcome::Synced { .. }) => return Ok(Action::await_change()),
    };
    let deleted = session
        .client
        .delete_policy(&session.pod, name, &session.token)
        .await;
    session.close().await;
    deleted.map_err(|e| Error::Vault(format!("deleting {path}: {e}")))?;
    ctx.publish(
        &*policy,
        false,
        "Deleted",
        format!("deleted {path} from Vault"),
    )
    .await;
    Ok(Action::await_change())
}
