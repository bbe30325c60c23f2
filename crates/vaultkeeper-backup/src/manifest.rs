//! The manifest written next to every completed backup object.
//!
//! S3 object metadata is fixed when an upload starts, before the size and checksums are
//! known, so they go into a small JSON object written after the upload completed. A
//! backup is complete only when both exist; `--from latest` and retention count only
//! complete backups. Nothing secret is in it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Version of the manifest's JSON layout.
pub const MANIFEST_VERSION: u32 = 1;

/// Size and SHA-256 of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Length in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// How the object is encrypted (no key material: only the key's public fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionInfo {
    /// Backup format version of the object's header.
    pub format_version: u8,
    /// Algorithm name (e.g. `xchacha20poly1305-stream-be32`).
    pub algorithm: String,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Fingerprint of the encryption key (hex).
    pub key_id: String,
}

/// What we know about the Vault cluster the snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// VaultCluster name.
    pub cluster: String,
    /// Vault's own `cluster_id` (from `sys/health`); restore compares it with the target's.
    pub cluster_id: Option<String>,
    /// Vault / OpenBao version of the node that produced the snapshot.
    pub vault_version: Option<String>,
    /// The leader's committed raft index just before the snapshot was requested: the
    /// snapshot contains at least this index.
    pub raft_index: Option<u64>,
    /// The API address the snapshot was read from.
    pub node: String,
    /// The escrow object holding the cluster's key record when the backup was taken (the
    /// newest under `{prefix}escrow/{cluster}/`): the keys that unseal a cluster restored
    /// from this snapshot. Absent when the cluster has no escrow in the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_escrow: Option<String>,
}

/// The manifest of one backup object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version ([`MANIFEST_VERSION`]).
    pub manifest_version: u32,
    /// The snapshot object's key.
    pub object: String,
    /// When the backup started (RFC 3339, UTC).
    pub started_at: String,
    /// When the upload completed (RFC 3339, UTC).
    pub completed_at: String,
    /// Where the snapshot came from.
    pub source: SourceInfo,
    /// The raft snapshot as Vault produced it.
    pub plaintext: Digest,
    /// The object as stored in S3.
    pub ciphertext: Digest,
    /// How it is encrypted.
    pub encryption: EncryptionInfo,
}

impl Manifest {
    /// The manifest as JSON bytes.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|source| Error::Serialize {
            what: "the manifest",
            source,
        })
    }

    /// Parses a manifest read from `key`.
    pub fn from_json(key: &str, bytes: &[u8]) -> Result<Self> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| Error::InvalidManifest {
                object: key.to_owned(),
                reason: e.to_string(),
            })?;
        if manifest.manifest_version != MANIFEST_VERSION {
            return Err(Error::InvalidManifest {
                object: key.to_owned(),
                reason: format!(
                    "manifest_version {} is not supported (this build reads {MANIFEST_VERSION})",
                    manifest.manifest_version
                ),
            });
        }
        Ok(manifest)
    }
}
