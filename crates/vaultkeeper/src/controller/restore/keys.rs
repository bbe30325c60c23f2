//! Which backup a VaultRestore means, the keys that open it (from the keys Secret or the
//! escrow object its manifest names), and the copy of the keys the swap replaces.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use vaultkeeper_api::{VaultCluster, VaultRestore};
use vaultkeeper_backup::manifest::Manifest;
use vaultkeeper_backup::naming::{BackupLocation, EscrowLocation};
use vaultkeeper_backup::retention::complete_backups;
use vaultkeeper_backup::store::ObjectStore;
use vaultkeeper_vault::keys::InitKeys;
use vaultkeeper_vault::secret::{ExposeSecret, secret_string};

use super::{Failure, api_summary, refuse};
use crate::controller::context::Context;
use crate::escrow;

/// The newest complete backup started at or before `at`.
pub(super) async fn point_in_time(
    store: &dyn ObjectStore,
    location: &BackupLocation,
    at: jiff::Timestamp,
) -> Result<String, Failure> {
    let listing = store
        .list(&location.list_prefix())
        .await
        .map_err(|e| refuse("ObjectStoreUnreachable", e.to_string()))?;
    complete_backups(&listing, location)
        .into_iter()
        .filter(|b| b.taken_at <= at)
        .max_by_key(|b| b.taken_at)
        .map(|b| b.object_key)
        .ok_or_else(|| {
            refuse(
                "BackupNotFound",
                format!(
                    "no complete backup under {} was started at or before {at}",
                    location.list_prefix()
                ),
            )
        })
}

/// Opens the escrow object the manifest names with the identity the spec points to, when
/// it points to one. The identity is read here and dropped at the end of this function.
pub(super) async fn open_escrow(
    ctx: &Context,
    vr: &VaultRestore,
    namespace: &str,
    store: &dyn ObjectStore,
    manifest: &Manifest,
    from_cluster: &str,
    prefix: &str,
) -> Result<Option<escrow::payload::Payload>, Failure> {
    let Some(reference) = vr
        .spec
        .keys
        .as_ref()
        .and_then(|k| k.escrow_identity_secret_ref.as_ref())
    else {
        return Ok(None);
    };
    let Some(escrow_object) = &manifest.source.keys_escrow else {
        return Err(refuse(
            "NoEscrowRecorded",
            "the backup's manifest names no escrow object, so spec.keys.escrowIdentitySecretRef cannot open its keys; put the old cluster's key record into the keys Secret and restore with `vaultkeeper restore --force` (docs/restore-runbook.md)",
        ));
    };
    // Only the escrow objects of the backup's own cluster are opened.
    let location = EscrowLocation::new(prefix, from_cluster)
        .map_err(|e| refuse("InvalidSpec", e.to_string()))?;
    if location.parse(escrow_object).is_none() {
        return Err(refuse(
            "EscrowObjectRefused",
            format!(
                "the manifest names {escrow_object}, which is not an escrow object of cluster {from_cluster} under {}",
                location.list_prefix()
            ),
        ));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let field = "spec.keys.escrowIdentitySecretRef";
    let identity = secrets
        .get_opt(&reference.name)
        .await
        .map_err(|e| refuse("IdentityUnreadable", format!("{field}: cannot read Secret {}: {}", reference.name, api_summary(&e))))?
        // `stringData` is write-only: the API server folds it into `data`.
        .and_then(|s| s.data.and_then(|mut d| d.remove(&reference.key)))
        .ok_or_else(|| {
            refuse(
                "IdentityMissing",
                format!(
                    "{field}: Secret {} has no key {}; create it with the age identity (AGE-SECRET-KEY-1...) of an escrow recipient",
                    reference.name, reference.key
                ),
            )
        })?;
    let text = secret_string(String::from_utf8_lossy(&identity.0).into_owned());
    let mut raw = identity.0;
    zeroize::Zeroize::zeroize(&mut raw);
    let identities = escrow::parse_identities(field, &text)
        .map_err(|e| refuse("IdentityInvalid", e.to_string()))?;
    let ciphertext = store
        .get_small(escrow_object)
        .await
        .map_err(|e| refuse("EscrowObjectUnreadable", e.to_string()))?;
    let plaintext = escrow::decrypt(&ciphertext, &identities).map_err(|e| {
        refuse(
            "EscrowNotOpened",
            format!("{escrow_object}: {e}; give the identity of one of its recipients in a new VaultRestore"),
        )
    })?;
    escrow::payload::open(plaintext.expose_secret())
        .map(Some)
        .map_err(|e| refuse("EscrowNotOpened", format!("{escrow_object}: {e}")))
}

/// Without an identity: whether the stored record is the one the backup's escrow object
/// holds, judged by the fingerprint in the object's name.
pub(super) fn record_matches_escrow_name(
    current: Option<&InitKeys>,
    backup_key: Option<&vaultkeeper_vault::secret::SecretSlice<u8>>,
    backup_key_secret: &str,
    backup_key_item: &str,
    manifest: &Manifest,
    prefix: &str,
    from_cluster: &str,
) -> bool {
    let (Some(current), Some(escrow_object)) = (current, &manifest.source.keys_escrow) else {
        return false;
    };
    let Some(named) = EscrowLocation::new(prefix, from_cluster)
        .ok()
        .and_then(|l| l.parse(escrow_object))
    else {
        return false;
    };
    let key = backup_key.map(|value| escrow::payload::BackupKey {
        secret: backup_key_secret.to_owned(),
        item: backup_key_item.to_owned(),
        value: vaultkeeper_vault::secret::secret_bytes(value.expose_secret().to_vec()),
    });
    [key.as_ref(), None].into_iter().any(|key| {
        escrow::payload::seal(current, key)
            .map(|sealed| {
                escrow::fingerprint(sealed.expose_secret()).starts_with(&named.fingerprint_prefix)
            })
            .unwrap_or(false)
    })
}

/// Copies the keys Secret's data to `<keys Secret>-before-<VaultRestore>`, once: a repeat
/// after an interruption finds the copy and keeps it (it holds the record from before).
pub(super) async fn keep_previous_keys(
    ctx: &Context,
    vr: &VaultRestore,
    vc: &VaultCluster,
    namespace: &str,
    keys_secret: &str,
) -> Result<String, Failure> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let name = previous_keys_secret_name(keys_secret, &vr.name_any());
    let Some(live) = secrets
        .get_opt(keys_secret)
        .await
        .map_err(|e| refuse("KeysUnreadable", api_summary(&e)))?
    else {
        // Nothing to keep: the Secret is gone (total loss, no re-initialized cluster).
        return Ok(String::new());
    };
    let copy = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            labels: Some(std::collections::BTreeMap::from([
                ("app.kubernetes.io/instance".to_owned(), vc.name_any()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "vaultkeeper".to_owned(),
                ),
                ("vaultkeeper.io/previous-keys".to_owned(), "true".to_owned()),
            ])),
            annotations: Some(std::collections::BTreeMap::from([(
                "vaultkeeper.io/description".to_owned(),
                format!(
                    "The key record Secret {keys_secret} held before VaultRestore {} swapped in the keys of the restored backup. It unseals the data the cluster had before the restore, which is gone from the cluster; delete this copy once you no longer need that.",
                    vr.name_any()
                ),
            )])),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: live.data,
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &copy).await {
        Ok(_) => Ok(name),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(name),
        Err(e) => Err(refuse(
            "KeysCopyFailed",
            format!(
                "cannot keep a copy of the current keys in Secret {name} ({}); nothing was restored",
                api_summary(&e)
            ),
        )),
    }
}

/// The name of the copy of the keys a VaultRestore replaced.
pub fn previous_keys_secret_name(keys_secret: &str, restore: &str) -> String {
    let name = format!("{keys_secret}-before-{restore}");
    name.chars().take(253).collect()
}
