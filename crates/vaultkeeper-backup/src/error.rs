//! The one error type of this crate.
//!
//! Every variant says what failed and, where a person can fix it, which input to change.
//! No variant carries a secret: keys, tokens and JWTs never reach an error message (Vault's
//! own error strings are passed through, and Vault does not echo credentials in them).

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an abort that failed was removing, and what removes it eventually.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// An S3 multipart upload.
    S3Multipart,
    /// The uncommitted blocks of an Azure block blob.
    AzureBlocks,
}

impl UploadKind {
    /// What removes the leftovers eventually.
    pub fn cleanup(self) -> &'static str {
        match self {
            UploadKind::S3Multipart => {
                "the next backup run aborts it, or add an AbortIncompleteMultipartUpload lifecycle rule"
            }
            UploadKind::AzureBlocks => {
                "the next backup run removes them, and Azure discards uncommitted blocks after seven days"
            }
        }
    }
}

impl std::fmt::Display for UploadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UploadKind::S3Multipart => "multipart upload",
            UploadKind::AzureBlocks => "the uncommitted blocks of",
        })
    }
}

/// Everything that can go wrong while backing up or restoring.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line or configuration value is unusable.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The flag or field, as the user wrote it (e.g. `--part-size-mib`).
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A file named by an argument could not be read.
    #[error("cannot read {what} from {path}: {source}")]
    ReadFile {
        /// What the file should hold (e.g. "the encryption key").
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// The encryption key material has the wrong shape.
    #[error(
        "invalid encryption key: {reason} (expected exactly 32 raw bytes, or their standard base64 encoding)"
    )]
    InvalidKey {
        /// What is wrong with it (never the key itself).
        reason: String,
    },

    /// The operating system's random source failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),

    /// The object does not start with the backup format's magic bytes.
    #[error("not a vaultkeeper backup: the object does not start with the VKBACKUP header")]
    NotABackup,

    /// The object ends inside the header.
    #[error("backup is truncated: it ends inside its {expected}-byte header")]
    TruncatedHeader {
        /// The header length.
        expected: usize,
    },

    /// The header names a format version this build cannot read.
    #[error(
        "backup format version {found} is not supported by this build (supported: {supported}); use a vaultkeeper release that knows it"
    )]
    UnsupportedFormatVersion {
        /// Version found in the header.
        found: u8,
        /// Version this build reads and writes.
        supported: u8,
    },

    /// The header names an encryption algorithm this build cannot read.
    #[error("backup uses encryption algorithm id {found}, which this build does not support")]
    UnsupportedAlgorithm {
        /// Algorithm id found in the header.
        found: u8,
    },

    /// The header's chunk size is outside the accepted range.
    #[error("backup header has chunk size {found}, outside 1..={max}: the header is corrupt")]
    InvalidChunkSize {
        /// Chunk size in the header.
        found: u32,
        /// Largest accepted chunk size.
        max: u32,
    },

    /// The backup was encrypted with another key than the one given.
    #[error(
        "backup was encrypted with key {backup_key_id}, but the key given is {given_key_id}: use the encryption key Secret of the cluster that wrote the backup"
    )]
    WrongKey {
        /// Fingerprint of the key recorded in the backup header.
        backup_key_id: String,
        /// Fingerprint of the key given.
        given_key_id: String,
    },

    /// A chunk failed authentication: the object was modified, reordered, or cut.
    #[error(
        "backup failed authentication at chunk {chunk}: the object was modified, reordered or truncated; it will not be restored"
    )]
    Tampered {
        /// Zero-based index of the failing chunk.
        chunk: u64,
    },

    /// The stream ended before the final chunk.
    #[error(
        "backup is truncated: it ends after chunk {chunks} without the final chunk; it will not be restored"
    )]
    Truncated {
        /// Number of complete chunks seen.
        chunks: u64,
    },

    /// Encryption refused to continue (the chunk counter would overflow).
    #[error("encryption failed at chunk {chunk}: the snapshot is larger than the format allows")]
    EncryptionLimit {
        /// Chunk index at which it stopped.
        chunk: u64,
    },

    /// A downloaded object does not match its manifest.
    #[error("backup {object} does not match its manifest: {reason}; it will not be restored")]
    ManifestMismatch {
        /// Object key.
        object: String,
        /// What differs.
        reason: String,
    },

    /// The manifest could not be parsed.
    #[error("manifest {object} is not valid: {reason}")]
    InvalidManifest {
        /// Manifest object key.
        object: String,
        /// Parse error.
        reason: String,
    },

    /// A Vault call failed; the error names the address, the step and what to check.
    #[error(transparent)]
    Vault(#[from] vaultkeeper_vault::Error),

    /// The Vault to snapshot or restore is sealed, not initialized, or has no active node.
    #[error("Vault at {addr} is {state}: {hint}")]
    VaultNotReady {
        /// The Vault address.
        addr: String,
        /// "sealed", "not initialized" or "without an active node".
        state: &'static str,
        /// What to do.
        hint: &'static str,
    },

    /// The backup in S3 comes from another cluster and `--force` was not given.
    #[error(
        "backup was taken from Vault cluster {backup_cluster_id}, the target is cluster {target_cluster_id}: restoring replaces all its data and its keys with the backup's; pass --force to use snapshot-force"
    )]
    OtherCluster {
        /// `cluster_id` recorded in the manifest.
        backup_cluster_id: String,
        /// `cluster_id` of the target.
        target_cluster_id: String,
    },

    /// An S3 call failed.
    #[error("S3 {operation} on s3://{bucket}/{key} failed: {message}")]
    S3 {
        /// The S3 operation (e.g. "UploadPart").
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// Object key or prefix.
        key: String,
        /// The SDK's error, with its service code when there is one.
        message: String,
    },

    /// A GCS or Azure call failed.
    #[error("{operation} on {location} failed: {message}")]
    Store {
        /// The store's operation (e.g. "Put Block").
        operation: &'static str,
        /// `gs://bucket/key`, or the Azure container's URL and key (never a credential).
        location: String,
        /// What the store answered.
        message: String,
    },

    /// An upload failed and was aborted; nothing is left behind.
    #[error("upload of {store}/{key} failed and was aborted, no object was written: {cause}")]
    UploadAborted {
        /// Where: `s3://bucket`, `gs://bucket`, or the Azure container's URL.
        store: String,
        /// Object key.
        key: String,
        /// Why it failed.
        cause: Box<Error>,
    },

    /// An upload failed and aborting it failed as well.
    #[error(
        "upload of {store}/{key} failed ({cause}) and aborting {upload_kind} {upload_id} failed too ({abort_error}); {cleanup}",
        cleanup = .upload_kind.cleanup()
    )]
    AbortFailed {
        /// Where: `s3://bucket`, `gs://bucket`, or the Azure container's URL.
        store: String,
        /// Object key.
        key: String,
        /// What was being aborted.
        upload_kind: UploadKind,
        /// Multipart upload id (not a secret), or the key for Azure.
        upload_id: String,
        /// Why the upload failed.
        cause: Box<Error>,
        /// Why the abort failed.
        abort_error: String,
    },

    /// The object to write exists already.
    #[error("{store}/{key} already exists; another backup ran in the same second, retry later")]
    ObjectExists {
        /// Where: `s3://bucket`, `gs://bucket`, or the Azure container's URL.
        store: String,
        /// Object key.
        key: String,
    },

    /// No complete backup was found for `--from latest`.
    #[error(
        "no complete backup of cluster {cluster} under {store}/{prefix} (a complete backup has both its object and its manifest)"
    )]
    NoBackup {
        /// Where: `s3://bucket`, `gs://bucket`, or the Azure container's URL.
        store: String,
        /// Prefix listed.
        prefix: String,
        /// Cluster name.
        cluster: String,
    },

    /// The task running the backup pipeline ended without a result (the runtime shut
    /// down under it).
    #[error("the backup pipeline stopped before it finished: {0}")]
    PipelineStopped(String),

    /// Local spool file I/O failed during restore.
    #[error("restore spool file: {0}")]
    Spool(std::io::Error),

    /// Serializing the report or the manifest failed.
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// What was serialized.
        what: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
}
