//! Restore: download, verify everything, then hand the snapshot to Vault.
//!
//! Nothing reaches Vault before the whole object has been authenticated. The choice made
//! here: the *ciphertext* is spooled to a local file (mode 0600) while it is decrypted
//! and checked chunk by chunk and the plaintext discarded; only when the last chunk
//! authenticated and sizes and SHA-256 sums match the manifest is the file decrypted a
//! second time, streaming, into `sys/storage/raft/snapshot[-force]`.
//!
//! Memory stays at one chunk plus I/O buffers whatever the snapshot size (holding the
//! verified plaintext in memory would cost the whole snapshot). Disk needs the object's
//! size once. The spooled bytes stay encrypted at rest, so a crash mid-restore leaves no
//! plaintext snapshot behind, and S3 is read only once. The price is decrypting twice,
//! which is cheap next to the network. The second pass authenticates again: if the file
//! changed in between, the stream errors out and Vault receives an incomplete upload,
//! which it rejects.

use std::io::ErrorKind;
use std::path::Path;

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::format::StreamDecryptor;
use crate::manifest::{Digest, Manifest};
use crate::secret::EncryptionKey;
use crate::store::ObjectStore;
use vaultkeeper_vault::client::VaultHttp;
use vaultkeeper_vault::secret::Token;

/// Read size of the second pass.
const READ_BUFFER: usize = 256 * 1024;

/// Which restore endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreMode {
    /// `sys/storage/raft/snapshot`: the snapshot comes from this cluster.
    Snapshot,
    /// `sys/storage/raft/snapshot-force`: the snapshot comes from another cluster (or the
    /// same one re-created); its keys replace the target's.
    SnapshotForce,
}

/// Picks the restore endpoint. Pure.
///
/// `--force` always means snapshot-force. Without it, a backup known to come from another
/// cluster is refused with an explanation; when either id is unknown the plain endpoint
/// is used and Vault itself refuses a snapshot sealed with other keys.
pub fn decide_restore_mode(
    backup_cluster_id: Option<&str>,
    target_cluster_id: Option<&str>,
    force: bool,
) -> Result<RestoreMode> {
    if force {
        return Ok(RestoreMode::SnapshotForce);
    }
    match (backup_cluster_id, target_cluster_id) {
        (Some(backup), Some(target)) if backup != target => Err(Error::OtherCluster {
            backup_cluster_id: backup.to_owned(),
            target_cluster_id: target.to_owned(),
        }),
        _ => Ok(RestoreMode::Snapshot),
    }
}

/// A downloaded backup whose every byte authenticated, spooled encrypted on local disk.
#[derive(Debug)]
pub struct VerifiedBackup {
    /// Object key.
    pub object: String,
    /// The snapshot's size and SHA-256, as verified.
    pub plaintext: Digest,
    /// The object's size and SHA-256, as verified.
    pub ciphertext: Digest,
    spool: tempfile::NamedTempFile,
}

impl VerifiedBackup {
    /// Path of the spool file (mode 0600, deleted on drop).
    pub fn spool_path(&self) -> &Path {
        self.spool.path()
    }
}

fn check(object: &str, what: &str, expected: &str, found: &str) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::ManifestMismatch {
            object: object.to_owned(),
            reason: format!("{what} is {found}, the manifest says {expected}"),
        })
    }
}

/// Downloads `object`, spooling it to a 0600 file under `spool_dir` (the system temp
/// directory when `None`) while authenticating every chunk, and checks it against
/// `manifest` when there is one. Returns only when the whole object is proven intact.
pub async fn download_and_verify(
    store: &dyn ObjectStore,
    object: &str,
    manifest: Option<&Manifest>,
    key: &EncryptionKey,
    spool_dir: Option<&Path>,
) -> Result<VerifiedBackup> {
    if let Some(m) = manifest {
        check(
            object,
            "the key id",
            &m.encryption.key_id,
            &key.key_id().to_string(),
        )
        .map_err(|_| Error::WrongKey {
            backup_key_id: m.encryption.key_id.clone(),
            given_key_id: key.key_id().to_string(),
        })?;
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix("vaultkeeper-restore-").suffix(".vkb");
    let spool = match spool_dir {
        Some(dir) => builder.tempfile_in(dir),
        None => builder.tempfile(),
    }
    .map_err(Error::Spool)?;
    restrict_to_owner(spool.path())?;
    let mut file = tokio::fs::File::from_std(spool.reopen().map_err(Error::Spool)?);

    let (_, mut body) = store.get_stream(object).await?;
    let mut decryptor = StreamDecryptor::new(key);
    let mut plain = (Sha256::new(), 0u64);
    let mut sealed = (Sha256::new(), 0u64);
    let mut scratch = Vec::with_capacity(READ_BUFFER);
    while let Some(piece) = body.try_next().await? {
        sealed.0.update(&piece);
        sealed.1 += piece.len() as u64;
        file.write_all(&piece).await.map_err(Error::Spool)?;
        decryptor.update(&piece, &mut scratch)?;
        plain.0.update(&scratch);
        plain.1 += scratch.len() as u64;
        scratch.clear();
    }
    decryptor.finish(&mut scratch)?;
    plain.0.update(&scratch);
    plain.1 += scratch.len() as u64;
    file.flush().await.map_err(Error::Spool)?;
    file.sync_all().await.map_err(Error::Spool)?;

    let plaintext = Digest {
        size: plain.1,
        sha256: hex::encode(plain.0.finalize()),
    };
    let ciphertext = Digest {
        size: sealed.1,
        sha256: hex::encode(sealed.0.finalize()),
    };
    if let Some(m) = manifest {
        check(
            object,
            "the object size",
            &m.ciphertext.size.to_string(),
            &ciphertext.size.to_string(),
        )?;
        check(
            object,
            "the object SHA-256",
            &m.ciphertext.sha256,
            &ciphertext.sha256,
        )?;
        check(
            object,
            "the snapshot size",
            &m.plaintext.size.to_string(),
            &plaintext.size.to_string(),
        )?;
        check(
            object,
            "the snapshot SHA-256",
            &m.plaintext.sha256,
            &plaintext.sha256,
        )?;
    }
    Ok(VerifiedBackup {
        object: object.to_owned(),
        plaintext,
        ciphertext,
        spool,
    })
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(Error::Spool)
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) -> Result<()> {
    Ok(())
}

struct SecondPass {
    file: tokio::fs::File,
    decryptor: Option<StreamDecryptor>,
    hasher: Sha256,
    expected_sha256: String,
    buffer: Vec<u8>,
}

/// The verified snapshot, decrypted again from the spool file as a byte stream. It fails
/// instead of ending if anything no longer matches what was verified.
pub fn verified_snapshot_stream(
    verified: &VerifiedBackup,
    key: &EncryptionKey,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
    let file = tokio::fs::File::from_std(verified.spool.reopen().map_err(Error::Spool)?);
    let state = SecondPass {
        file,
        decryptor: Some(StreamDecryptor::new(key)),
        hasher: Sha256::new(),
        expected_sha256: verified.plaintext.sha256.clone(),
        buffer: vec![0u8; READ_BUFFER],
    };
    Ok(futures::stream::try_unfold(state, |mut state| async move {
        loop {
            let Some(decryptor) = state.decryptor.as_mut() else {
                return Ok(None);
            };
            let read = state.file.read(&mut state.buffer).await?;
            let mut plain = Vec::new();
            if read == 0 {
                let Some(decryptor) = state.decryptor.take() else {
                    return Ok(None);
                };
                decryptor.finish(&mut plain).map_err(changed)?;
                state.hasher.update(&plain);
                let found = hex::encode(std::mem::take(&mut state.hasher).finalize());
                if found != state.expected_sha256 {
                    return Err(changed("the snapshot hash differs from the verified one"));
                }
                return Ok(Some((Bytes::from(plain), state)));
            }
            decryptor
                .update(&state.buffer[..read], &mut plain)
                .map_err(changed)?;
            if !plain.is_empty() {
                state.hasher.update(&plain);
                return Ok(Some((Bytes::from(plain), state)));
            }
        }
    }))
}

fn changed(reason: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        ErrorKind::InvalidData,
        format!("the spooled backup changed after verification: {reason}"),
    )
}

/// Sends a verified backup to Vault with the chosen endpoint.
pub async fn restore_verified(
    vault: &VaultHttp,
    token: &Token,
    verified: &VerifiedBackup,
    key: &EncryptionKey,
    mode: RestoreMode,
) -> Result<()> {
    let stream = verified_snapshot_stream(verified, key)?;
    vault
        .restore_snapshot(token, stream, mode == RestoreMode::SnapshotForce)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_mode_table() {
        use RestoreMode::*;
        // (backup cluster id, target cluster id, --force, expected mode or refusal)
        type Row<'a> = (Option<&'a str>, Option<&'a str>, bool, Option<RestoreMode>);
        let table: Vec<Row> = vec![
            (Some("a"), Some("a"), false, Some(Snapshot)),
            (Some("a"), Some("a"), true, Some(SnapshotForce)),
            (Some("a"), Some("b"), true, Some(SnapshotForce)),
            (Some("a"), Some("b"), false, None),
            (None, Some("b"), false, Some(Snapshot)),
            (Some("a"), None, false, Some(Snapshot)),
            (None, None, true, Some(SnapshotForce)),
        ];
        for (backup, target, force, expected) in table {
            let got = decide_restore_mode(backup, target, force);
            match expected {
                Some(mode) => assert_eq!(got.unwrap(), mode, "{backup:?} {target:?} {force}"),
                None => {
                    let err = got.unwrap_err();
                    assert!(err.to_string().contains("--force"), "{err}");
                }
            }
        }
    }
}
