//! The writes that end a pass: the status (only when it changed), the status of a spec
//! that does not validate, and the clean-up when a VaultCluster is deleted.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use vaultkeeper_api::{
    ClusterNames, DeletionPolicy, InvalidSpec, VaultCluster, VaultClusterStatus,
};

use super::context::Context;
use super::error::{Error, kube_err};
use super::events::EventSpec;
use super::nodes;
use super::status::{self, StatusInputs};
use crate::apply;
use crate::metrics::ClusterLabels;

/// Writes the status of a spec that does not validate: nothing else is touched, and a
/// Warning says what is wrong once per generation.
pub(crate) async fn blocked(
    ctx: &Context,
    vc: &VaultCluster,
    invalid: &InvalidSpec,
    now: jiff::Timestamp,
) -> Result<Action, Error> {
    let previous = vc.status.as_ref();
    let generation = vc.metadata.generation;
    let computed = status::compute(&StatusInputs {
        generation,
        previous,
        now,
        desired_replicas: vc.spec.replicas,
        invalid: Some(invalid),
        pods: &[],
        pass: None,
        bootstrapped: previous.is_some_and(|s| s.bootstrapped),
        tls: previous.and_then(|s| s.tls.clone()),
        tls_problem: None,
        operation: None,
        waiting_for: None,
        errors: Vec::new(),
    });
    let newly_invalid = previous
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "SpecValid"))
        .is_none_or(|c| c.status != "False" || c.observed_generation != generation);
    if newly_invalid {
        ctx.publish(vc, &EventSpec::warning("InvalidSpec", invalid.to_string()))
            .await;
    }
    status(ctx, vc, computed).await?;
    Ok(Action::await_change())
}

/// Writes the status when it changed; `true` when it did.
pub(crate) async fn status(
    ctx: &Context,
    vc: &VaultCluster,
    status: VaultClusterStatus,
) -> Result<bool, Error> {
    if vc.status.as_ref() == Some(&status) {
        return Ok(false);
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
    Ok(true)
}

/// Removes what garbage collection cannot: the ClusterRoleBinding, and with
/// `deletionPolicy: Delete` the keys Secret and the backup key (the StatefulSet's
/// retention policy deletes the volumes).
pub(crate) async fn cleanup(vc: Arc<VaultCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
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
        let keys_secret = nodes::keys_secret_name(&vc);
        let backup_key = nodes::backup_key_ref(&vc).0;
        for secret in [keys_secret, backup_key] {
            match secrets.delete(&secret, &DeleteParams::default()).await {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(kube_err("deleting a Secret")(e)),
            }
        }
        ctx.publish(
            &vc,
            &EventSpec::normal(
                "Deleted",
                "deletionPolicy Delete: the keys Secret and the backup key were deleted; the StatefulSet deletes the volumes".into(),
            ),
        )
        .await;
    }
    ctx.forget(&format!("{namespace}/{}", vc.name_any()));
    ctx.metrics.forget(&ClusterLabels {
        namespace,
        name: vc.name_any(),
    });
    Ok(Action::await_change())
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
