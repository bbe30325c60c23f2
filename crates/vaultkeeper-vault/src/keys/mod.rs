//! Key custody: the init output (unseal or recovery shares, threshold, root token), the
//! [`KeyStore`] it is persisted to, and a file store.
//!
//! The rule the lifecycle keeps: the init answer is persisted before any other step, exactly
//! as the server gave it ([`RawInit`]), before it is even parsed; it is held in memory (in
//! the lifecycle runner) and retried until it is. Only then is it read into [`InitKeys`]
//! and stored again as a key record. An answer that cannot be read is never dropped: it
//! stays in the store, and loading it gives [`Error::InitAnswerUnreadable`] (a person's
//! job, described in `docs/custody.md`), never "nothing stored". The operator adds a
//! Kubernetes Secret store; the file store here serves tests and single-machine use.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Step};
use crate::secret::{ExposeSecret, KeyShare, SecretSlice, Token, secret_bytes};

mod raw;

pub use raw::{AnswerFormat, RawInit, Stored, decode_stored};

/// What the shares open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Shamir unseal shares: needed after every restart.
    Unseal,
    /// Recovery shares of an auto-unseal cluster: never used to unseal, kept for recovery
    /// operations (and by people, for disaster recovery).
    Recovery,
}

/// The init output, exactly once per cluster.
#[derive(Clone, Serialize, Deserialize)]
pub struct InitKeys {
    /// Unseal or recovery shares.
    pub kind: KeyKind,
    /// Shares needed.
    pub threshold: u8,
    /// Every share, base64, in the order the server returned them.
    pub shares: Vec<KeyShare>,
    /// The initial root token; `None` once bootstrap has revoked it.
    pub root_token: Option<Token>,
    /// New shares of a rekey that is not verified yet: not in force until it is, kept so
    /// that no state of the rekey can lose them ([`crate::rotation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<OtherShares>,
    /// The shares before the last rekey, kept until every pod has been unsealed with the
    /// current ones (a pod whose data predates the rekey needs them once more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<OtherShares>,
}

/// Shares other than the ones in force: a rekey's new ones before verification, or the
/// old ones after it.
#[derive(Clone, Serialize, Deserialize)]
pub struct OtherShares {
    /// Shares needed.
    pub threshold: u8,
    /// The shares.
    pub shares: Vec<KeyShare>,
    /// Pods still to be unsealed with the shares in force before these old ones go
    /// (empty for new shares).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods_left: Vec<String>,
}

impl fmt::Debug for OtherShares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtherShares")
            .field("threshold", &self.threshold)
            .field("shares", &format_args!("<{} redacted>", self.shares.len()))
            .field("pods_left", &self.pods_left)
            .finish()
    }
}

impl fmt::Debug for InitKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitKeys")
            .field("kind", &self.kind)
            .field("threshold", &self.threshold)
            .field("shares", &format_args!("<{} redacted>", self.shares.len()))
            .field(
                "root_token",
                &self.root_token.as_ref().map(|_| "<redacted>"),
            )
            .field("next", &self.next)
            .field("previous", &self.previous)
            .finish()
    }
}

/// The stored record: a versioned envelope so a later format can be told apart.
#[derive(Serialize, Deserialize)]
struct Record {
    version: u32,
    #[serde(flatten)]
    keys: InitKeys,
}

pub(crate) const RECORD_VERSION: u32 = 1;

impl InitKeys {
    /// A summary that is safe to log and to put in status.
    pub fn summary(&self) -> KeysSummary {
        KeysSummary {
            kind: self.kind,
            threshold: self.threshold,
            shares: u8::try_from(self.shares.len()).unwrap_or(u8::MAX),
            root_token_kept: self.root_token.is_some(),
        }
    }

    /// Serializes the record for a store (JSON). The bytes hold secrets, so they come back
    /// in a zeroizing buffer.
    pub fn to_json(&self) -> Result<SecretSlice<u8>> {
        let record = Record {
            version: RECORD_VERSION,
            keys: self.clone(),
        };
        serde_json::to_vec(&record)
            .map(secret_bytes)
            .map_err(|e| Error::KeyStore {
                step: Step::KeyStoreStore,
                reason: format!("cannot encode the key record: {e}"),
            })
    }

    /// Parses a record written by [`InitKeys::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        // serde_json's errors name a line and column, never the text, so they are safe.
        let record: Record = serde_json::from_slice(bytes).map_err(|e| Error::KeyStore {
            step: Step::KeyStoreLoad,
            reason: format!("the key record is not valid JSON of the expected shape: {e}"),
        })?;
        if record.version != RECORD_VERSION {
            return Err(Error::KeyStore {
                step: Step::KeyStoreLoad,
                reason: format!(
                    "the key record has version {}, this build reads version {RECORD_VERSION}; upgrade the operator",
                    record.version
                ),
            });
        }
        let keys = record.keys;
        if keys.threshold == 0 || usize::from(keys.threshold) > keys.shares.len() {
            return Err(Error::KeyStore {
                step: Step::KeyStoreLoad,
                reason: format!(
                    "the key record holds {} shares but a threshold of {}; restore the record from your backup",
                    keys.shares.len(),
                    keys.threshold
                ),
            });
        }
        Ok(keys)
    }
}

/// What the key store holds, without a secret: safe for logs, status and decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeysSummary {
    /// Unseal or recovery shares.
    pub kind: KeyKind,
    /// Shares needed.
    pub threshold: u8,
    /// Shares held.
    pub shares: u8,
    /// Whether the root token is still kept.
    pub root_token_kept: bool,
}

/// Where init output is kept. Implementations must make `store` and `store_raw` atomic
/// (all or nothing) and durable before returning `Ok`, because the lifecycle treats `Ok`
/// as "the keys are safe, the in-memory copy may go".
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The stored keys, or `None` when nothing is stored. An error means "cannot tell",
    /// which is never treated as "nothing stored". When only a raw answer is stored, it is
    /// read now ([`Stored::into_keys`]); an unreadable one is
    /// [`Error::InitAnswerUnreadable`].
    async fn load(&self) -> Result<Option<InitKeys>>;

    /// Replaces the stored keys (and drops a raw answer stored before them).
    async fn store(&self, keys: &InitKeys) -> Result<()>;

    /// Saves the init answer as it arrived. Refuses when a key record is stored already:
    /// a second answer would mean a second init.
    async fn store_raw(&self, raw: &RawInit) -> Result<()>;
}

/// A shared store is a store.
#[async_trait]
impl<T: KeyStore + ?Sized> KeyStore for std::sync::Arc<T> {
    async fn load(&self) -> Result<Option<InitKeys>> {
        (**self).load().await
    }

    async fn store(&self, keys: &InitKeys) -> Result<()> {
        (**self).store(keys).await
    }

    async fn store_raw(&self, raw: &RawInit) -> Result<()> {
        (**self).store_raw(raw).await
    }
}

/// A key store in one file: mode 0600, written to a temporary file in the same directory,
/// synced, then renamed over the old one, so a crash leaves either the old or the new
/// record, never half of one.
#[derive(Clone, Debug)]
pub struct FileKeyStore {
    path: PathBuf,
}

impl FileKeyStore {
    /// A store at `path`. The directory must exist.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileKeyStore { path: path.into() }
    }

    /// The file the keys are kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn temp_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "keys".into());
        self.path.with_file_name(format!(".{name}.tmp"))
    }
}

fn store_error(path: &Path, action: &str, e: std::io::Error) -> Error {
    Error::KeyStore {
        step: Step::KeyStoreStore,
        reason: format!("{action} {}: {e}", path.display()),
    }
}

#[async_trait]
impl KeyStore for FileKeyStore {
    async fn load(&self) -> Result<Option<InitKeys>> {
        let path = self.path.clone();
        let bytes = tokio::task::spawn_blocking(move || -> Result<Option<SecretSlice<u8>>> {
            use std::os::unix::fs::PermissionsExt;
            let metadata = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(Error::KeyStore {
                        step: Step::KeyStoreLoad,
                        reason: format!("cannot read {}: {e}", path.display()),
                    });
                }
            };
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::KeyStore {
                    step: Step::KeyStoreLoad,
                    reason: format!(
                        "{} is readable by others (mode {mode:o}); run chmod 600 on it and check who read it",
                        path.display()
                    ),
                });
            }
            std::fs::read(&path).map(|b| Some(secret_bytes(b))).map_err(|e| Error::KeyStore {
                step: Step::KeyStoreLoad,
                reason: format!("cannot read {}: {e}", path.display()),
            })
        })
        .await
        .map_err(|e| Error::KeyStore {
            step: Step::KeyStoreLoad,
            reason: format!("the reading task failed: {e}"),
        })??;
        bytes
            .map(|b| decode_stored(b.expose_secret()).and_then(Stored::into_keys))
            .transpose()
    }

    async fn store(&self, keys: &InitKeys) -> Result<()> {
        self.write(keys.to_json()?).await
    }

    async fn store_raw(&self, raw: &RawInit) -> Result<()> {
        // What is there already decides: a key record means init answered before.
        let path = self.path.clone();
        let existing = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| Error::KeyStore {
                step: Step::KeyStoreStore,
                reason: format!("the reading task failed: {e}"),
            })?;
        if let Ok(bytes) = existing {
            let bytes = secret_bytes(bytes);
            if let Ok(Stored::Keys(_)) = decode_stored(bytes.expose_secret()) {
                return Err(Error::KeyStore {
                    step: Step::KeyStoreStore,
                    reason: format!(
                        "{} already holds a key record; a second init answer is not saved over it",
                        self.path.display()
                    ),
                });
            }
        }
        self.write(raw.to_json()?).await
    }
}

impl FileKeyStore {
    async fn write(&self, bytes: SecretSlice<u8>) -> Result<()> {
        let path = self.path.clone();
        let temp = self.temp_path();
        tokio::task::spawn_blocking(move || -> Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            // A leftover temporary file from a crash may have any mode: start from nothing.
            match std::fs::remove_file(&temp) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(store_error(&temp, "cannot remove stale", e)),
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .map_err(|e| store_error(&temp, "cannot create", e))?;
            file.write_all(bytes.expose_secret())
                .map_err(|e| store_error(&temp, "cannot write", e))?;
            file.sync_all()
                .map_err(|e| store_error(&temp, "cannot sync", e))?;
            drop(file);
            std::fs::rename(&temp, &path)
                .map_err(|e| store_error(&path, "cannot rename into", e))?;
            // The rename is durable only once the directory entry is.
            if let Some(dir) = path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| store_error(dir, "cannot sync directory", e))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::KeyStore {
            step: Step::KeyStoreStore,
            reason: format!("the writing task failed: {e}"),
        })?
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::raw::tests::{CLI_ANSWER, raw};
    use super::*;

    pub(crate) fn sample() -> InitKeys {
        InitKeys {
            kind: KeyKind::Unseal,
            threshold: 2,
            shares: vec![
                KeyShare::new("c2hhcmUtb25l".into()),
                KeyShare::new("c2hhcmUtdHdv".into()),
                KeyShare::new("c2hhcmUtdGhyZWU=".into()),
            ],
            root_token: Some(Token::new("s.rootTokenValue".into())),
            next: None,
            previous: None,
        }
    }

    #[test]
    fn debug_of_init_keys_shows_shape_not_values() {
        let printed = format!("{:?}", sample());
        assert!(
            printed.contains("threshold: 2") && printed.contains("<3 redacted>"),
            "{printed}"
        );
        for secret in ["c2hhcmUtb25l", "s.rootTokenValue"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[tokio::test]
    async fn file_store_round_trips_with_mode_0600() -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().map_err(|e| store_error(Path::new("tmp"), "tempdir", e))?;
        let store = FileKeyStore::new(dir.path().join("keys.json"));
        assert!(
            store.load().await?.is_none(),
            "empty store loads as nothing"
        );
        store.store(&sample()).await?;
        let mode = std::fs::metadata(store.path())
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        let loaded = store
            .load()
            .await?
            .ok_or_else(|| Error::invalid("test", "no keys", "-"))?;
        assert_eq!(loaded.summary(), sample().summary());
        assert_eq!(loaded.shares[1].expose_secret(), "c2hhcmUtdHdv");
        // Overwrite: the record is replaced, and no temporary file is left behind.
        let mut without_root = sample();
        without_root.root_token = None;
        store.store(&without_root).await?;
        assert!(store.load().await?.is_some_and(|k| k.root_token.is_none()));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        Ok(())
    }

    #[tokio::test]
    async fn file_store_refuses_a_world_readable_key_file() -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().map_err(|e| store_error(Path::new("tmp"), "tempdir", e))?;
        let store = FileKeyStore::new(dir.path().join("keys.json"));
        store.store(&sample()).await?;
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| store_error(store.path(), "chmod", e))?;
        let err = store
            .load()
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("chmod 600"), "{err}");
        Ok(())
    }

    #[tokio::test]
    async fn file_store_saves_the_raw_answer_first_and_reads_it_back() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| store_error(Path::new("tmp"), "tempdir", e))?;
        let store = FileKeyStore::new(dir.path().join("keys.json"));
        // Readable raw answer: it loads as keys.
        store.store_raw(&raw(AnswerFormat::Cli, CLI_ANSWER)).await?;
        let loaded = store.load().await?.map(|k| k.summary());
        assert_eq!(loaded, Some(sample().summary()));
        // Once the record is stored, a second raw answer is refused.
        store.store(&sample()).await?;
        let refused = store
            .store_raw(&raw(AnswerFormat::Cli, CLI_ANSWER))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("already holds a key record"), "{refused}");

        // An unreadable answer stays saved and loads as InitAnswerUnreadable, never None.
        let other = FileKeyStore::new(dir.path().join("other.json"));
        other
            .store_raw(&raw(AnswerFormat::Cli, "{\"unseal_keys_b6"))
            .await?;
        assert!(matches!(
            other.load().await,
            Err(Error::InitAnswerUnreadable { .. })
        ));
        let bytes =
            std::fs::read(other.path()).map_err(|e| store_error(other.path(), "read", e))?;
        let RawInit { answer, .. } = match decode_stored(&bytes)? {
            Stored::Raw(raw) => raw,
            Stored::Keys(_) => return Err(Error::invalid("test", "a record", "-")),
        };
        assert_eq!(answer.expose_secret(), b"{\"unseal_keys_b6");
        Ok(())
    }

    #[test]
    fn a_corrupt_record_is_an_error_without_its_content() {
        let err = InitKeys::from_json(
            br#"{"version":1,"kind":"unseal","threshold":4,"shares":["c2VjcmV0"]}"#,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("threshold of 4") && !err.contains("c2VjcmV0"),
            "{err}"
        );
        let err = InitKeys::from_json(b"not json c2VjcmV0")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("not valid JSON") && !err.contains("c2VjcmV0"),
            "{err}"
        );
    }
}
