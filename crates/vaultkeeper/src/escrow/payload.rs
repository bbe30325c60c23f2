//! What an escrow object holds, before encryption: the key record and, for a cluster that
//! takes backups, the key its backups are encrypted with. Both are needed to come back from
//! the loss of the namespace: the shares open the restored data, the backup key opens the
//! backup that holds it. Version 1 objects held the bare key record; they are still read.

use serde::{Deserialize, Serialize};
use vaultkeeper_vault::keys::InitKeys;
use vaultkeeper_vault::secret::{ExposeSecret, SecretSlice, secret_bytes};

/// The backup encryption key, with where it lives in the cluster.
pub struct BackupKey {
    /// The Secret that holds it (`spec.backup.encryptionKeySecret`, or the default one).
    pub secret: String,
    /// Its key in that Secret.
    pub item: String,
    /// The key itself.
    pub value: SecretSlice<u8>,
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupKey")
            .field("secret", &self.secret)
            .field("item", &self.item)
            .finish_non_exhaustive()
    }
}

/// An opened escrow object.
#[derive(Debug)]
pub struct Payload {
    /// The key record, as the keys Secret holds it.
    pub keys: InitKeys,
    /// Its exact bytes (`init.json`).
    pub record: SecretSlice<u8>,
    /// The backup key, when the cluster takes backups.
    pub backup_key: Option<BackupKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    version: u32,
    /// The key record, base64 of its exact bytes.
    keys: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backup_key: Option<WireBackupKey>,
}

#[derive(Serialize, Deserialize)]
struct WireBackupKey {
    secret: String,
    item: String,
    /// base64.
    value: String,
}

const VERSION: u32 = 2;

/// The plaintext of an escrow object for `keys` and `backup_key`.
pub fn seal(keys: &InitKeys, backup_key: Option<&BackupKey>) -> Result<SecretSlice<u8>, String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let record = keys.to_json().map_err(|e| e.to_string())?;
    let mut envelope = Envelope {
        version: VERSION,
        keys: b64.encode(record.expose_secret()),
        backup_key: backup_key.map(|k| WireBackupKey {
            secret: k.secret.clone(),
            item: k.item.clone(),
            value: b64.encode(k.value.expose_secret()),
        }),
    };
    let bytes = serde_json::to_vec(&envelope).map_err(|e| format!("cannot encode: {e}"));
    zeroize::Zeroize::zeroize(&mut envelope.keys);
    if let Some(k) = envelope.backup_key.as_mut() {
        zeroize::Zeroize::zeroize(&mut k.value);
    }
    bytes.map(secret_bytes)
}

/// Opens the plaintext of an escrow object: a version 2 envelope, or a version 1 bare key
/// record. Errors say what is wrong, never the content.
pub fn open(bytes: &[u8]) -> Result<Payload, String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let Ok(mut envelope) = serde_json::from_slice::<Envelope>(bytes) else {
        let keys = InitKeys::from_json(bytes).map_err(|e| e.to_string())?;
        return Ok(Payload {
            keys,
            record: secret_bytes(bytes.to_vec()),
            backup_key: None,
        });
    };
    if envelope.version != VERSION {
        return Err(format!(
            "the escrow object has version {}, this build reads version {VERSION}; use a newer vaultkeeper",
            envelope.version
        ));
    }
    let record = b64
        .decode(envelope.keys.as_bytes())
        .map_err(|e| format!("its key record is not base64: {e}"));
    zeroize::Zeroize::zeroize(&mut envelope.keys);
    let record = secret_bytes(record?);
    let keys = InitKeys::from_json(record.expose_secret()).map_err(|e| e.to_string())?;
    let backup_key = match envelope.backup_key.as_mut() {
        Some(k) => {
            let value = b64
                .decode(k.value.as_bytes())
                .map_err(|e| format!("its backup key is not base64: {e}"));
            zeroize::Zeroize::zeroize(&mut k.value);
            Some(BackupKey {
                secret: k.secret.clone(),
                item: k.item.clone(),
                value: secret_bytes(value?),
            })
        }
        None => None,
    };
    Ok(Payload {
        keys,
        record,
        backup_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaultkeeper_vault::keys::KeyKind;
    use vaultkeeper_vault::secret::KeyShare;

    fn keys() -> InitKeys {
        InitKeys {
            kind: KeyKind::Unseal,
            threshold: 1,
            shares: vec![KeyShare::new("c2hhcmUtb25l".into())],
            root_token: None,
            next: None,
            previous: None,
        }
    }

    #[test]
    fn the_envelope_carries_the_record_and_the_backup_key() -> Result<(), String> {
        let backup = BackupKey {
            secret: "vault-backup-key".into(),
            item: "key".into(),
            value: secret_bytes(vec![7u8; 32]),
        };
        let sealed = seal(&keys(), Some(&backup))?;
        let opened = open(sealed.expose_secret())?;
        assert_eq!(opened.keys.summary(), keys().summary());
        let record = keys().to_json().map_err(|e| e.to_string())?;
        assert_eq!(opened.record.expose_secret(), record.expose_secret());
        let key = opened.backup_key.ok_or("no backup key")?;
        assert_eq!(
            (key.secret.as_str(), key.item.as_str()),
            ("vault-backup-key", "key")
        );
        assert_eq!(key.value.expose_secret(), &[7u8; 32][..]);
        assert!(!format!("{key:?}").contains("7, 7"));
        Ok(())
    }

    #[test]
    fn a_version_1_object_is_a_bare_record() -> Result<(), String> {
        let record = keys().to_json().map_err(|e| e.to_string())?;
        let opened = open(record.expose_secret())?;
        assert!(opened.backup_key.is_none());
        assert_eq!(opened.keys.shares.len(), 1);
        let err = open(b"{\"version\":2,\"keys\":\"c2hhcmU\"}")
            .err()
            .unwrap_or_default();
        assert!(err.contains("not base64") || err.contains("JSON"), "{err}");
        Ok(())
    }
}
