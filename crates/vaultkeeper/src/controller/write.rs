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
use super::status::{self, StatusInputs};
use super::{nodes, plan};
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
        // The lock stays as it is: an invalid spec acts on nothing, and the lock may be
        // another replica's or another operation's.
        operation: previous.and_then(|s| s.operation.clone()),
        waiting_for: None,
        needs_person: None,
        errors: Vec::new(),
        fixed: None,
    });
    let newly_invalid = previous
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "SpecValid"))
        .is_none_or(|c| c.status != "False" || c.observed_generation != generation);
    if newly_invalid {
        ctx.publish(vc, &EventSpec::warning("InvalidSpec", invalid.to_string()))
            .await;
    }
    if let Some(version) = vc.metadata.resource_version.as_deref() {
        status(ctx, vc, computed, version).await?;
    }
    Ok(Action::await_change())
}

/// Reports a pass that failed before it could plan (a read the operator refuses or cannot
/// make) in the status, then hands the error back for the retry. A failure to write the
/// status is logged, not returned: the read error is the one that matters.
pub(crate) async fn failed_read(
    ctx: &Context,
    vc: &VaultCluster,
    error: Error,
    now: jiff::Timestamp,
) -> Error {
    let computed = status::after_failed_read(
        vc.status.as_ref(),
        vc.metadata.generation,
        &error.to_string(),
        now,
    );
    if let Some(version) = vc.metadata.resource_version.as_deref()
        && let Err(e) = status(ctx, vc, computed, version).await
    {
        tracing::warn!(error = %e, "reporting a failed read in the status failed");
    }
    error
}

/// Writes the status when it changed; `true` when it did. The write carries
/// `resource_version` (what the pass read, or its own lock write left): when the
/// VaultCluster changed in between, nothing is written and the next pass reads it again
/// (the change is a watch event, so that pass comes at once).
pub(crate) async fn status(
    ctx: &Context,
    vc: &VaultCluster,
    status: VaultClusterStatus,
    resource_version: &str,
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
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": resource_version },
        "status": merge_patch(&old, &new),
    });
    let name = vc.name_any();
    let params = PatchParams::default();
    let patch = Patch::Merge(&patch);
    match apply::with_retries_keeping_conflicts(|| api.patch_status(&name, &params, &patch)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!(
                "the VaultCluster changed since this pass read it; the next pass reads it again"
            );
            Ok(false)
        }
        Err(e) => Err(kube_err("writing the status")(e)),
    }
}

/// Removes what garbage collection cannot: this cluster's ClusterRoleBinding, and with
/// `deletionPolicy: Delete` the keys Secret and the backup key (the StatefulSet's
/// retention policy deletes the volumes). Only objects that prove to be this cluster's are
/// deleted: a binding whose subject is this cluster's ServiceAccount, a Secret that carries
/// this cluster's labels. A name in the spec pointing at anything else deletes nothing,
/// and an Event says what was left in place.
pub(crate) async fn cleanup(vc: Arc<VaultCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = vc.namespace().ok_or(Error::NoNamespace)?;
    let name = vc.name_any();
    let names = ClusterNames::new(&name);
    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    for binding in [
        names.server_cluster_role_binding(&namespace),
        names.legacy_server_cluster_role_binding(&namespace),
    ] {
        delete_if(&bindings, &binding, |b| {
            serde_json::to_value(b).is_ok_and(|v| {
                plan::binds_service_account(&v, &namespace, &names.service_account())
            })
        })
        .await
        .map_err(kube_err("deleting the ClusterRoleBinding"))?;
    }
    if vc.spec.deletion_policy == DeletionPolicy::Delete {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        let mut left = Vec::new();
        for (secret, component) in [
            (nodes::keys_secret_name(&vc), "keys"),
            (nodes::backup_key_ref(&vc).0, "backup-key"),
        ] {
            let ours = |s: &Secret| is_ours(s, &name, component);
            if delete_if(&secrets, &secret, ours)
                .await
                .map_err(kube_err("deleting a Secret"))?
                == Deletion::NotOurs
            {
                left.push(secret);
            }
        }
        let note = if left.is_empty() {
            "deletionPolicy Delete: the keys Secret and the backup key were deleted; the StatefulSet deletes the volumes".to_owned()
        } else {
            format!(
                "deletionPolicy Delete: left Secret {} in place: it does not carry this cluster's labels, so vaultkeeper did not create it; the StatefulSet deletes the volumes",
                left.join(", ")
            )
        };
        ctx.publish(&vc, &EventSpec::normal("Deleted", note)).await;
    }
    // Keys held in memory are saved before the cluster is forgotten; until then the
    // finalizer stays and the deletion is retried.
    let key = format!("{namespace}/{name}");
    let memory = ctx.memory(&key);
    let mut memory = memory.lock().await;
    super::held_keys::flush_before_forgetting(&ctx, &vc, &mut memory)
        .await
        .map_err(Error::KeysUnsaved)?;
    drop(memory);
    ctx.forget(&key);
    ctx.metrics.forget(&ClusterLabels { namespace, name });
    Ok(Action::await_change())
}

/// What [`delete_if`] did.
#[derive(Debug, PartialEq, Eq)]
enum Deletion {
    Deleted,
    Absent,
    NotOurs,
}

/// Deletes `name` only when `ours` says the live object is ours, and only that very
/// object (a uid precondition: one recreated in between is left alone).
async fn delete_if<K>(
    api: &Api<K>,
    name: &str,
    ours: impl Fn(&K) -> bool,
) -> Result<Deletion, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(object) = apply::with_retries(|| api.get_opt(name)).await? else {
        return Ok(Deletion::Absent);
    };
    if !ours(&object) {
        return Ok(Deletion::NotOurs);
    }
    let params = DeleteParams {
        preconditions: object
            .meta()
            .uid
            .clone()
            .map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(Deletion::Deleted),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Deletion::Absent),
        // The uid no longer matches: what is there now is another object.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Deletion::NotOurs),
        Err(e) => Err(e),
    }
}

/// Whether `secret` is the `component` Secret vaultkeeper made for cluster `cluster`.
fn is_ours(secret: &Secret, cluster: &str, component: &str) -> bool {
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    let has = |k: &str, v: &str| labels.get(k).is_some_and(|l| l == v);
    has("app.kubernetes.io/managed-by", "vaultkeeper")
        && has("app.kubernetes.io/instance", cluster)
        && has("app.kubernetes.io/component", component)
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

#[cfg(test)]
mod ownership_tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::Secret;
    use kube::api::ObjectMeta;

    use super::is_ours;

    fn secret(labels: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }

    #[test]
    fn only_a_secret_labelled_as_this_clusters_own_is_deleted() {
        let ours = [
            ("app.kubernetes.io/managed-by", "vaultkeeper"),
            ("app.kubernetes.io/instance", "vault"),
            ("app.kubernetes.io/component", "keys"),
        ];
        assert!(is_ours(&secret(&ours), "vault", "keys"));
        assert!(
            !is_ours(&secret(&ours), "other", "keys"),
            "another cluster's"
        );
        assert!(
            !is_ours(&secret(&ours), "vault", "backup-key"),
            "another component"
        );
        assert!(
            !is_ours(&secret(&ours[1..]), "vault", "keys"),
            "not made by vaultkeeper"
        );
        assert!(
            !is_ours(&secret(&[]), "vault", "keys"),
            "a Secret of the user's own"
        );
    }
}
