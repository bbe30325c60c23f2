//! Act: every write a plan decided, in order, and nothing it did not decide. The backup
//! key first (every backup needs it), then the objects (apply, prune), then the Vault
//! nodes (the lifecycle's actions), then the one rollout step.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams, Preconditions,
    PropagationPolicy,
};
use tracing::info;
use vaultkeeper_api::VaultCluster;
use vaultkeeper_vault::decide::{Action as LifecycleAction, Observation};
use vaultkeeper_vault::lifecycle::PassReport;
use vaultkeeper_vault::node::PodName;
use vaultkeeper_vault::rotation::RotationApi;

use super::adopt::{self, Adoption, TakeOver};
use super::error::{Error, kube_err};
use super::events::EventSpec;
use super::nodes::{self, ClusterLifecycle};
use super::plan::{NodeReset, Plan, RotationStep};
use super::rollout::RolloutStep;
use crate::apply;
use crate::leader::Fence;

/// What a pass did.
#[derive(Debug, Default)]
pub(crate) struct Acted {
    /// The lifecycle's pass: what it observed, decided and did.
    pub(crate) pass: Option<PassReport>,
    /// Failures a person should see in status (already free of secrets).
    pub(crate) errors: Vec<String>,
    /// Events for what was done besides the lifecycle.
    pub(crate) events: Vec<EventSpec>,
    /// Kubernetes write requests sent (Events aside).
    pub(crate) writes: u64,
    /// The key rotation completed this pass.
    pub(crate) rotated: Option<RotationStep>,
    /// Something this pass could not do that only a person can fix (reason, message):
    /// Degraded says so.
    pub(crate) needs_person: Option<(&'static str, String)>,
}

/// The reason Degraded gives when the API server refuses a StatefulSet change.
pub(crate) const STATEFULSET_FIELD_FIXED: &str = "StatefulSetFieldFixed";

/// Whether `error` is the API server refusing a change to a StatefulSet field that is
/// fixed once it exists (its volume claim templates, selector, service name or pod
/// management policy), rather than a failure worth retrying.
pub(crate) fn is_fixed_statefulset_field(error: &apply::ApplyError) -> bool {
    match error {
        apply::ApplyError::Request { kind, source, .. } if kind == "StatefulSet" => {
            matches!(source.as_ref(), kube::Error::Api(status)
                if status.code == 422
                    && status.message.contains("updates to statefulset spec for fields other than"))
        }
        _ => false,
    }
}

/// What Degraded says when StatefulSet `name` cannot be changed as rendered.
pub(crate) fn fixed_statefulset_field_message(name: &str) -> String {
    format!(
        "Kubernetes refuses to change StatefulSet {name}: its volume claim templates are fixed \
         once it exists, so spec.storage (size, storageClassName, accessMode, labels, \
         annotations, and the same under spec.storage.audit) must stay what the cluster was \
         created with. Set those fields back; to grow a volume, expand its claim \
         (kubectl edit pvc data-{name}-0, and each other pod's) where the storage class allows \
         it. No other change to the StatefulSet (image, pod settings) is applied until then; \
         the pods keep running and are unsealed as before"
    )
}

/// Takes a Helm release's objects over, after the objects were applied: Helm's release
/// marks come off the ones applied over in place (so neither `helm upgrade` nor
/// `helm uninstall` of the old release touches them again), and the release's
/// StatefulSet is deleted with `propagationPolicy: Orphan`, only the one observed (its
/// UID), so its pods keep running for this cluster's StatefulSet to adopt.
async fn take_over(
    client: &kube::Client,
    namespace: &str,
    takeover: &TakeOver,
    fence: &Fence,
    acted: &mut Acted,
) -> Result<(), Error> {
    if takeover.statefulset_going {
        // Done in an earlier pass; the release's StatefulSet is on its way out.
        return Ok(());
    }
    if let Err(fenced) = fence.check() {
        acted.errors.push(fenced.to_string());
        return Ok(());
    }
    let unmark = serde_json::json!({"metadata": {
        "annotations": {adopt::HELM_RELEASE_NAME: null, adopt::HELM_RELEASE_NAMESPACE: null},
        "labels": {"helm.sh/chart": null},
    }});
    let params = PatchParams {
        field_manager: Some(apply::FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let unmark = Patch::Merge(&unmark);
    for (kind, name) in &takeover.in_place {
        let Some((api_version, _)) = apply::PRUNABLE_KINDS.iter().find(|(_, k)| k == kind) else {
            continue;
        };
        let Some(resource) = apply::api_resource(api_version, kind) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        apply::with_retries(|| api.patch(name, &params, &unmark))
            .await
            .map_err(kube_err(
                "removing Helm's release marks from an adopted object",
            ))?;
        acted.writes += 1;
    }
    let mut replaced = String::new();
    if let Some((statefulset, uid)) = &takeover.orphan_statefulset {
        let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
        let orphan = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match apply::with_retries(|| statefulsets.delete(statefulset, &orphan)).await {
            Ok(_) => acted.writes += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => {
                return Err(kube_err(
                    "deleting the Helm release's StatefulSet, orphaning its pods",
                )(e));
            }
        }
        let why = match takeover.immutable_differences.as_slice() {
            [] => String::new(),
            fields => format!(", as its {} cannot be changed in place", fields.join(", ")),
        };
        replaced = format!(
            " StatefulSet/{statefulset} is replaced by this cluster's{why}; its pods keep running, are adopted and then rolled one at a time."
        );
    }
    acted.events.push(EventSpec::normal(
        "Adopted",
        format!(
            "took over Helm release {}: {}.{replaced} Remove the release's records (docs/migrating-from-helm.md) so that Helm no longer acts on them",
            takeover.release,
            takeover.objects.join(", ")
        ),
    ));
    info!(release = %takeover.release, objects = ?takeover.objects, "adopted a Helm release");
    Ok(())
}

/// Carries out `plan`. `nodes` is what the lifecycle observed this pass, with the
/// lifecycle that observed it.
pub(crate) async fn cluster(
    client: &kube::Client,
    vc: &VaultCluster,
    plan: &Plan,
    nodes: Option<(Observation, &mut ClusterLifecycle)>,
    fence: &Fence,
) -> Result<Acted, Error> {
    let namespace = vc.namespace().ok_or(Error::NoNamespace)?;
    let mut acted = Acted::default();

    if plan.create_backup_key && create_backup_key(client, vc, &namespace).await? {
        acted.writes += 1;
        let (name, _) = nodes::backup_key_ref(vc);
        acted.events.push(EventSpec::normal(
            "BackupKeyGenerated",
            format!(
                "generated the backup encryption key in Secret {name}; keep a copy outside the cluster"
            ),
        ));
    }

    // One object at a time, so a StatefulSet change Kubernetes refuses for good (a fixed
    // field) stops neither the other objects nor the unsealing below.
    let mut applied = Vec::new();
    for manifest in &plan.apply {
        match apply::apply_all(client, std::slice::from_ref(manifest)).await {
            Ok(done) => applied.extend(done),
            Err(error) if is_fixed_statefulset_field(&error) => {
                acted.needs_person = Some((
                    STATEFULSET_FIELD_FIXED,
                    fixed_statefulset_field_message(&manifest.name),
                ));
            }
            Err(error) => return Err(error.into()),
        }
    }
    acted.writes += applied.len() as u64;
    if !applied.is_empty() {
        info!(applied = ?applied, "applied");
    }
    if let Some(Adoption::TakeOver(takeover)) = &plan.adoption {
        take_over(client, &namespace, takeover, fence, &mut acted).await?;
    }
    let pruned = apply::delete_all(client, &namespace, &plan.prune).await?;
    acted.writes += pruned.len() as u64;
    if !pruned.is_empty() {
        acted.events.push(EventSpec::normal(
            "Pruned",
            format!(
                "removed what the spec no longer asks for: {}",
                pruned.join(", ")
            ),
        ));
    }

    for binding in &plan.remove_bindings {
        let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
        let params = DeleteParams::background();
        match apply::with_retries(|| bindings.delete(binding, &params)).await {
            Ok(_) => {
                acted.writes += 1;
                acted.events.push(EventSpec::normal(
                    "Pruned",
                    format!(
                        "removed ClusterRoleBinding {binding}, the name this cluster's binding had before"
                    ),
                ));
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(kube_err("removing the old ClusterRoleBinding")(e)),
        }
    }

    let mut lifecycle = None;
    if let Some((observation, nodes)) = nodes {
        // Right before each action that changes the cluster rather than just reopening
        // it: does this replica still lead? Keys are always saved.
        let gate = |action: &LifecycleAction| match action {
            LifecycleAction::Init { .. }
            | LifecycleAction::StepDown { .. }
            | LifecycleAction::RemovePeer { .. }
            | LifecycleAction::Bootstrap { .. } => fence.check().map_err(|e| e.to_string()),
            _ => Ok(()),
        };
        let outcomes = nodes
            .execute_gated(&observation, &plan.lifecycle, &gate)
            .await;
        let pass = PassReport {
            observation,
            actions: plan.lifecycle.clone(),
            outcomes,
        };
        acted
            .errors
            .extend(pass.errors().into_iter().map(|e| e.to_string()));
        acted.pass = Some(pass);
        lifecycle = Some(nodes);
    }

    for reset in &plan.resets {
        if let Err(fenced) = fence.check() {
            acted.errors.push(fenced.to_string());
            break;
        }
        reset_node(client, &namespace, reset, &mut acted).await?;
    }

    match &plan.rollout {
        Some(RolloutStep::DeletePod(_) | RolloutStep::StepDown(_))
            if let Err(fenced) = fence.check() =>
        {
            acted.errors.push(fenced.to_string());
        }
        Some(RolloutStep::DeletePod(pod)) => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            pods.delete(pod, &DeleteParams::default())
                .await
                .map_err(kube_err("deleting a pod for the rolling update"))?;
            acted.writes += 1;
            acted.events.push(
                EventSpec::normal(
                    "RollingUpdate",
                    format!("replacing pod {pod} with the new template"),
                )
                .about(pod.clone()),
            );
        }
        Some(RolloutStep::StepDown(pod)) => {
            let stepped = match lifecycle.as_mut() {
                Some(nodes) => nodes.step_down(&PodName::new(pod.clone())?).await,
                None => Err(vaultkeeper_vault::Error::invalid(
                    "rollout",
                    "the Vault nodes cannot be reached this pass",
                    "wait for the next pass",
                )),
            };
            match stepped {
                Ok(()) => acted.events.push(
                    EventSpec::normal(
                        "SteppedDown",
                        format!("{pod} handed leadership over before its replacement"),
                    )
                    .about(pod.clone()),
                ),
                Err(e) => acted.errors.push(e.to_string()),
            }
        }
        Some(RolloutStep::Done | RolloutStep::Wait(_)) | None => {}
    }

    if let (Some(step), Some(nodes)) = (&plan.rotation, lifecycle) {
        match fence.check() {
            Ok(()) => {
                rotate(vc, step, nodes, &mut acted).await;
                if acted.rotated.is_some() {
                    record_rotation(client, vc, &namespace, step).await?;
                    acted.writes += 1;
                }
            }
            Err(fenced) => acted.errors.push(fenced.to_string()),
        }
    }
    Ok(acted)
}

/// Discards the raft data of a pod that holds a removed peer's: its claim first, then the
/// pod (only the one observed, by UID), so the StatefulSet re-creates the pod on a new,
/// empty volume and it joins as a new member. In that order because a pod re-created
/// before its old claim is gone would mount the old data again. (Kubernetes keeps a claim
/// in use until its pod is gone; the StatefulSet controller then makes a new one.)
async fn reset_node(
    client: &kube::Client,
    namespace: &str,
    reset: &NodeReset,
    acted: &mut Acted,
) -> Result<(), Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    match claims
        .delete(&reset.claim, &DeleteParams::background())
        .await
    {
        Ok(_) => acted.writes += 1,
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => {
            return Err(kube_err("deleting the raft data volume of a removed peer")(
                e,
            ));
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some(reset.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods.delete(&reset.pod, &params).await {
        Ok(_) => acted.writes += 1,
        // Gone already, or re-created meanwhile (another UID): nothing of the old one left.
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {}
        Err(e) => {
            return Err(kube_err(
                "re-creating a pod that holds a removed peer's data",
            )(e));
        }
    }
    acted.events.push(
        EventSpec::normal(
            "RaftDataReset",
            format!(
                "pod {} was unsealed but not a member of raft: volume {} held the data of a peer removed earlier. Deleted the volume and the pod; the StatefulSet re-creates both and the pod joins raft as a new member",
                reset.pod, reset.claim
            ),
        )
        .about(reset.pod.clone()),
    );
    info!(pod = %reset.pod, claim = %reset.claim, "reset the data of a pod outside raft");
    Ok(())
}

/// Writes the rotation just done to `status.rotation` at once, in its own merge patch:
/// the pass's status write may be skipped (a conflict), and a request not recorded would
/// be carried out a second time.
async fn record_rotation(
    client: &kube::Client,
    vc: &VaultCluster,
    namespace: &str,
    step: &RotationStep,
) -> Result<(), Error> {
    let rotation = super::record::rotation(vc.status.as_ref(), Some(step), jiff::Timestamp::now());
    let api: Api<VaultCluster> = Api::namespaced(client.clone(), namespace);
    let patch = kube::api::Patch::Merge(serde_json::json!({ "status": { "rotation": rotation } }));
    let params = kube::api::PatchParams::default();
    let name = vc.name_any();
    apply::with_retries(|| api.patch_status(&name, &params, &patch))
        .await
        .map_err(kube_err("recording the key rotation in status"))?;
    Ok(())
}

/// Carries out the key rotation a person asked for; the outcome goes to Events, errors
/// and (when done) status.
async fn rotate(
    vc: &VaultCluster,
    step: &RotationStep,
    nodes: &mut ClusterLifecycle,
    acted: &mut Acted,
) {
    let api = match vc.spec.effective_flavor() {
        vaultkeeper_api::Flavor::OpenBao => RotationApi::OpenBao,
        vaultkeeper_api::Flavor::Vault => RotationApi::Vault,
    };
    let outcome = match step {
        RotationStep::Rekey { request, via } => nodes.rekey(via, api).await.map(|report| {
            format!(
                "rekey {request:?} done through {via}: {} new shares, {} to unseal, saved in the keys Secret before they took effect; the old shares stop working and are kept only until every pod has been unsealed with the new ones",
                report.shares, report.threshold
            )
        }),
        RotationStep::EncryptionKey { request, via } => nodes
            .rotate_keyring(via, api)
            .await
            .map(|()| format!("encryption key rotation {request:?} done through {via}")),
    };
    let reason = match step {
        RotationStep::Rekey { .. } => "Rekeyed",
        RotationStep::EncryptionKey { .. } => "EncryptionKeyRotated",
    };
    match outcome {
        Ok(note) => {
            info!(%note, "key rotation");
            acted.events.push(EventSpec::normal(reason, note));
            acted.rotated = Some(step.clone());
        }
        Err(e) => {
            acted.events.push(EventSpec::warning(
                "KeyRotationFailed",
                format!("{reason}: {e}; retried on the next pass"),
            ));
            acted.errors.push(e.to_string());
        }
    }
}

/// Generates the backup encryption key: once, never owned, never replaced (every backup
/// ever written needs it). `false` when another pass or replica created it in between.
async fn create_backup_key(
    client: &kube::Client,
    vc: &VaultCluster,
    namespace: &str,
) -> Result<bool, Error> {
    let (name, key) = nodes::backup_key_ref(vc);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut bytes = zeroize::Zeroizing::new(vec![0u8; 32]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Error::Random)?;
    let mut labels = crate::custody::keys_secret_labels(&vc.name_any());
    labels.insert("app.kubernetes.io/component".into(), "backup-key".into());
    labels.remove("vaultkeeper.io/keys");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "vaultkeeper.io/description".to_owned(),
                "Encryption key of this VaultCluster's backups. Without it no backup can be restored: keep a copy outside the cluster.".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(key, ByteString(bytes.to_vec()))])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(kube_err("creating the backup key")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(kind: &str, code: u16, message: &str) -> apply::ApplyError {
        apply::ApplyError::Request {
            verb: "apply",
            kind: kind.to_owned(),
            name: "vault".to_owned(),
            source: Box::new(kube::Error::Api(
                kube::core::Status::failure(message, "Invalid")
                    .with_code(code)
                    .boxed(),
            )),
        }
    }

    const FORBIDDEN: &str = "StatefulSet.apps \"vault\" is invalid: spec: Forbidden: updates to \
        statefulset spec for fields other than 'replicas', 'ordinals', 'template', \
        'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and \
        'minReadySeconds' are forbidden";

    #[test]
    fn only_a_refused_fixed_statefulset_field_needs_a_person() {
        assert!(is_fixed_statefulset_field(&refused(
            "StatefulSet",
            422,
            FORBIDDEN
        )));
        // Anything else is a failure of the pass, retried as before.
        assert!(!is_fixed_statefulset_field(&refused(
            "StatefulSet",
            500,
            FORBIDDEN
        )));
        assert!(!is_fixed_statefulset_field(&refused(
            "StatefulSet",
            422,
            "spec.template.spec.containers[0].image: Required value"
        )));
        assert!(!is_fixed_statefulset_field(&refused(
            "Service", 422, FORBIDDEN
        )));
    }

    #[test]
    fn the_fixed_field_message_names_the_fields_and_the_claims() {
        let message = fixed_statefulset_field_message("vault");
        for needle in [
            "StatefulSet vault",
            "spec.storage",
            "spec.storage.audit",
            "data-vault-0",
            "Set those fields back",
        ] {
            assert!(message.contains(needle), "{needle:?} in {message}");
        }
    }
}
