//! The escrow step of a pass: once the cluster is initialized and `spec.keys.escrow` is
//! set, the key record in the keys Secret is escrowed off the cluster (see
//! [`crate::escrow`]). It runs after every write the plan made (unsealing included) and
//! never fails the pass: what went wrong is the `KeysEscrowed` condition and an Event.

use kube::ResourceExt;
use vaultkeeper_api::{KeysStatus, VaultCluster, VaultClusterStatus, condition};
use vaultkeeper_vault::keys::KeyStore;

use super::context::Context;
use super::events::EventSpec;
use super::nodes::keys_secret_name;
use crate::backup::{Health, set_named_condition};
use crate::custody::{ESCROW_APPROVAL_ANNOTATION, SecretKeyStore};
use crate::escrow::{self, Report};

/// The backup encryption key, escrowed with the shares when the cluster takes backups (a
/// backup cannot be opened without it). Not there yet, or unreadable: escrowed without it
/// for now; the copy is written again once it can be read (the payload changes).
async fn backup_key(
    ctx: &Context,
    vc: &VaultCluster,
    namespace: &str,
) -> Option<crate::escrow::payload::BackupKey> {
    if !vc.spec.backup.enabled {
        return None;
    }
    let (secret, item) = super::nodes::backup_key_ref(vc);
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(ctx.client.clone(), namespace);
    let found = secrets.get_opt(&secret).await.ok().flatten()?;
    let value = found.data?.remove(&item)?;
    Some(crate::escrow::payload::BackupKey {
        secret,
        item,
        value: vaultkeeper_vault::secret::secret_bytes(value.0),
    })
}

/// Why the spec's recipients may not receive the keys, or `None` when they may: the list
/// is the one already escrowed to (approved then), or the one the keys Secret's
/// [`ESCROW_APPROVAL_ANNOTATION`] approves.
async fn unapproved_recipients(
    ctx: &Context,
    spec: &vaultkeeper_api::EscrowSpec,
    escrowed: Option<&vaultkeeper_api::EscrowStatus>,
    namespace: &str,
    keys_secret: &str,
) -> Option<String> {
    let wanted = crate::escrow::recipients_fingerprint(&spec.recipients);
    if escrowed.is_some_and(|e| e.recipients_fingerprint == wanted) {
        return None;
    }
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(ctx.client.clone(), namespace);
    let approved = match secrets.get_opt(keys_secret).await {
        Ok(secret) => secret
            .and_then(|s| s.metadata.annotations)
            .and_then(|mut a| a.remove(ESCROW_APPROVAL_ANNOTATION)),
        Err(e) => {
            return Some(format!(
                "cannot read the keys Secret {keys_secret} to check the escrow recipients: {e}"
            ));
        }
    };
    (approved.as_deref() != Some(wanted.as_str())).then(|| {
        format!(
            "spec.keys.escrow.recipients is not the list approved for this cluster's keys, so nothing \
             is escrowed to it: writing a VaultCluster alone never sends the keys to a new recipient. \
             Someone who may write the keys Secret approves this list with: kubectl -n {namespace} \
             annotate secret {keys_secret} {ESCROW_APPROVAL_ANNOTATION}={wanted} --overwrite"
        )
    })
}

/// Escrows the stored key record when status says it is not escrowed yet; updates
/// `status.keys.escrow` and `KeysEscrowed`, and answers the Events to publish.
pub(crate) async fn step(
    ctx: &Context,
    vc: &VaultCluster,
    status: &mut VaultClusterStatus,
    now: jiff::Timestamp,
) -> Vec<EventSpec> {
    let generation = vc.metadata.generation;
    let Some(spec) = &vc.spec.keys.escrow else {
        set_named_condition(
            &mut status.conditions,
            condition::KEYS_ESCROWED,
            None,
            generation,
            now,
        );
        return Vec::new();
    };
    if !status.initialized {
        // Nothing to escrow before init; the pass that persists the keys comes first.
        return Vec::new();
    }
    let namespace = vc.namespace().unwrap_or_default();
    let keys_secret = keys_secret_name(vc);
    let store = SecretKeyStore::new(ctx.client.clone(), &namespace, &keys_secret, &vc.name_any());
    let escrowed = status.keys.as_ref().and_then(|k| k.escrow.clone());
    // The keys go only to recipients approved for them: the list the spec had when the
    // keys were made, or one someone who may write the keys Secret approved since.
    if let Some(unapproved) =
        unapproved_recipients(ctx, spec, escrowed.as_ref(), &namespace, &keys_secret).await
    {
        let health = Health {
            healthy: false,
            reason: "RecipientsNotApproved",
            message: unapproved.clone(),
        };
        set_named_condition(
            &mut status.conditions,
            condition::KEYS_ESCROWED,
            Some(&health),
            generation,
            now,
        );
        return vec![EventSpec::warning("KeysEscrowFailed", unapproved)];
    }
    // The Secret copy goes to another namespace only where the platform allows it; the
    // bucket copy is written either way.
    let refused_namespace = spec
        .secret
        .as_ref()
        .map(|s| s.namespace.clone())
        .filter(|target| !ctx.settings.escrow_secret_allowed(&namespace, target));
    let allowed_spec;
    let spec = match &refused_namespace {
        Some(_) => {
            allowed_spec = vaultkeeper_api::EscrowSpec {
                secret: None,
                ..spec.clone()
            };
            &allowed_spec
        }
        None => spec,
    };
    let mut report = match store.load().await {
        Ok(Some(_)) if !spec.object_store && spec.secret.is_none() => {
            Report::failed("SecretNamespaceNotAllowed", String::new())
        }
        Ok(Some(keys)) => {
            let backup_key = backup_key(ctx, vc, &namespace).await;
            escrow::ensure(
                &ctx.client,
                vc,
                spec,
                escrowed.as_ref(),
                &keys,
                backup_key.as_ref(),
                now,
            )
            .await
        }
        Ok(None) => Report::failed(
            "NoKeyRecord",
            format!(
                "the keys Secret {keys_secret} holds no key record, so there is nothing to escrow: \
                 restore it (docs/custody.md) before anything else"
            ),
        ),
        Err(e) => Report::failed("KeysUnreadable", format!("cannot read the key record: {e}")),
    };
    if let Some(target) = refused_namespace {
        report.healthy = false;
        report.reason = "SecretNamespaceNotAllowed";
        report.message = format!(
            "spec.keys.escrow.secret.namespace: the operator does not write escrow copies to namespace {target}, \
             which is not this cluster's: a platform admin allows it with --escrow-secret-namespace={target} \
             (chart value escrow.secretNamespaces){}",
            if spec.object_store {
                "; the copy in the bucket is written as usual"
            } else {
                ""
            }
        );
    }
    let mut events = Vec::new();
    if !report.written.is_empty() {
        events.push(EventSpec::normal(
            "KeysEscrowed",
            format!(
                "the key record was encrypted to {} age recipient(s) and written to {}",
                spec.recipients.len(),
                report.written.join(" and ")
            ),
        ));
    }
    if !report.healthy {
        events.push(EventSpec::warning(
            "KeysEscrowFailed",
            report.message.clone(),
        ));
    }
    if let Some(escrowed) = report.escrowed {
        status.keys.get_or_insert_with(KeysStatus::default).escrow = Some(escrowed);
    }
    let health = Health {
        healthy: report.healthy,
        reason: report.reason,
        message: report.message,
    };
    set_named_condition(
        &mut status.conditions,
        condition::KEYS_ESCROWED,
        Some(&health),
        generation,
        now,
    );
    events
}
