//! Encrypted, streaming raft-snapshot backups of Vault / OpenBao to S3, Google Cloud Storage
//! or Azure Blob Storage, and verified restore.
//!
//! The backup pipeline never holds a whole snapshot: the snapshot streams from the active
//! node ([`vault`]), through authenticated chunked encryption ([`format`]), into a streaming
//! upload to an [`store::ObjectStore`] ([`s3`], [`gcs`], [`azure`]) that is aborted on any
//! failure, so a partial object is never listed as a backup. Memory is bounded by the part
//! size times a small factor.
//!
//! Restore ([`restore`]) downloads an object, authenticates and checks every byte of it
//! before anything is sent to Vault, then streams the verified snapshot into
//! `sys/storage/raft/snapshot` (or `snapshot-force` for another cluster).
//!
//! Decisions are pure and table-tested: object naming ([`naming`]), retention and stale
//! upload clean-up ([`retention`]), and the restore mode ([`restore::decide_restore_mode`]).
//! [`job`] runs one backup or restore from a plain job description; the binary's
//! `vaultkeeper backup` and `vaultkeeper restore` commands parse their flags into one.

pub mod azure;
pub mod error;
pub mod format;
pub mod gcs;
pub mod job;
pub mod manifest;
pub mod naming;
pub mod pipeline;
pub mod restore;
pub mod retention;
pub mod s3;
pub mod secret;
pub mod store;
pub mod vault;

pub use error::{Error, Result};
pub use job::{
    AzureAccess, AzureCredentialSource, BackupJob, BackupReport, GcsAccess, GcsCredentialSource,
    RestoreJob, RestoreReport, S3Access, S3CredentialFiles, StoreAccess, VaultAccess, VaultAuth,
    run_backup, run_restore,
};
pub use secret::{EncryptionKey, KeyId};
