//! The one interface the backup pipeline, restore, retention and escrow use to reach an
//! object store, whichever it is: S3 ([`crate::s3`]), Google Cloud Storage ([`crate::gcs`])
//! or Azure Blob Storage ([`crate::azure`]).
//!
//! Every store streams an upload in parts of a fixed size with bounded memory, makes the
//! object visible only when the last part is committed, and removes what an abandoned
//! upload left when it is aborted. Encryption happens before the store: it only ever sees
//! ciphertext and manifests.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::{Error, Result};
use crate::retention::{ListedObject, PendingUpload};

/// Largest small object (a manifest, an escrow record) we are willing to read.
pub const MAX_SMALL_OBJECT: usize = 1024 * 1024;

/// An object's body as it downloads.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A bucket (S3, GCS) or container (Azure) holding backups.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Where the objects are, as a person writes it: `s3://bucket`, `gs://bucket`,
    /// `https://account.blob.core.windows.net/container`. Used in messages; never holds a
    /// credential.
    fn location(&self) -> String;

    /// Every object under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>>;

    /// Every unfinished upload under `prefix` that [`ObjectStore::abort_upload`] can clean
    /// up. Stores whose unfinished uploads are invisible and expire by themselves (GCS
    /// resumable sessions) return none.
    async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>>;

    /// Removes what an unfinished upload left behind.
    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<()>;

    /// Whether `key` exists (committed; an upload in progress does not count).
    async fn exists(&self, key: &str) -> Result<bool>;

    /// Writes a small object in one request.
    async fn put_bytes(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<()>;

    /// Starts downloading `key`; returns its length (when the store says) and the body.
    async fn get_stream(&self, key: &str) -> Result<(Option<u64>, ByteStream)>;

    /// Deletes `key`.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Begins a streaming upload of `key`. Memory: one part filling plus at most
    /// `parts_in_flight` parts uploading.
    fn upload(
        &self,
        key: &str,
        metadata: HashMap<String, String>,
        part_size: usize,
        parts_in_flight: usize,
    ) -> Box<dyn Upload>;

    /// Reads a small object (a manifest, an escrow record) whole; refuses anything over
    /// 1 MiB.
    async fn get_small(&self, key: &str) -> Result<Vec<u8>> {
        use futures::TryStreamExt;
        let (size, mut body) = self.get_stream(key).await?;
        if size.is_some_and(|s| s > MAX_SMALL_OBJECT as u64) {
            return Err(Error::InvalidManifest {
                object: key.to_owned(),
                reason: format!(
                    "it is {} bytes, more than a manifest can be",
                    size.unwrap_or(0)
                ),
            });
        }
        let mut out = Vec::new();
        while let Some(chunk) = body.try_next().await? {
            out.extend_from_slice(&chunk);
            if out.len() > MAX_SMALL_OBJECT {
                return Err(Error::InvalidManifest {
                    object: key.to_owned(),
                    reason: "it is larger than a manifest can be".into(),
                });
            }
        }
        Ok(out)
    }
}

/// One streaming upload. Call [`Upload::abort`] on any failure, including a failure of
/// [`Upload::finish`]: nothing of the object may remain visible afterwards.
#[async_trait]
pub trait Upload: Send + fmt::Debug {
    /// Appends `data`, sending every part that fills; waits while the parts in flight are
    /// at their limit (back-pressure on the producer).
    async fn write(&mut self, data: &[u8]) -> Result<()>;

    /// Sends what is left and commits the object.
    async fn finish(&mut self) -> Result<()>;

    /// Stops every part in flight and removes what was uploaded. Returns the error to
    /// report: `cause`, wrapped to say the upload was aborted, or that aborting failed too.
    async fn abort(self: Box<Self>, cause: Error) -> Error;
}

/// The part buffers of one upload, reused. A part's memory comes back when the HTTP
/// client drops the request body, so an upload allocates `parts_in_flight + 1` buffers
/// once instead of one per part: no page faults per part, and no freed 8 MiB blocks left
/// behind in the allocator's per-thread arenas (which made the resident size grow past
/// the bound).
#[derive(Debug, Clone, Default)]
pub(crate) struct PartPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl PartPool {
    /// An empty buffer with room for `capacity` bytes: a returned one when there is one.
    pub(crate) fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut free| free.pop());
        match reused {
            Some(buffer) if buffer.capacity() >= capacity => buffer,
            _ => Vec::with_capacity(capacity),
        }
    }

    /// `buffer` as the body of a request; its memory returns here when the body drops.
    pub(crate) fn share(&self, buffer: Vec<u8>) -> Bytes {
        Bytes::from_owner(PooledPart {
            buffer,
            pool: self.clone(),
        })
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.lock().map(|free| free.is_empty()).unwrap_or(true)
    }
}

/// A part's bytes on their way to the store; returns its buffer to the pool on drop.
struct PooledPart {
    buffer: Vec<u8>,
    pool: PartPool,
}

impl AsRef<[u8]> for PooledPart {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for PooledPart {
    fn drop(&mut self) {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        if let Ok(mut free) = self.pool.0.lock() {
            free.push(buffer);
        }
    }
}

/// Fills fixed-size parts from arbitrary writes; hands out each full part.
#[derive(Debug)]
pub(crate) struct PartFiller {
    pool: PartPool,
    part_size: usize,
    buffer: Vec<u8>,
}

impl PartFiller {
    pub(crate) fn new(part_size: usize) -> Self {
        Self {
            pool: PartPool::default(),
            part_size,
            buffer: Vec::new(),
        }
    }

    /// Copies as much of `data` as fits into the current part; returns the bytes taken
    /// and the part when it became full.
    pub(crate) fn fill(&mut self, data: &[u8]) -> (usize, Option<Bytes>) {
        if self.buffer.capacity() == 0 {
            self.buffer = self.pool.take(self.part_size);
        }
        let take = (self.part_size - self.buffer.len()).min(data.len());
        self.buffer.extend_from_slice(&data[..take]);
        if self.buffer.len() == self.part_size {
            (
                take,
                Some(self.pool.share(std::mem::take(&mut self.buffer))),
            )
        } else {
            (take, None)
        }
    }

    /// The last, partly filled part (possibly empty).
    pub(crate) fn rest(&mut self) -> Bytes {
        self.pool.share(std::mem::take(&mut self.buffer))
    }
}

/// The HTTP client of the GCS and Azure stores: rustls on the ring provider, trusting the
/// system roots plus `ca_pem`.
pub(crate) fn http_client(ca_pem: Option<&[u8]>, field: &'static str) -> Result<reqwest::Client> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A malformed system root is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(pem) = ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::InvalidArgument {
                field,
                reason: format!("not valid PEM: {e}"),
            })?;
            roots.add(cert).map_err(|e| Error::InvalidArgument {
                field,
                reason: format!("not a usable CA certificate: {e}"),
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::InvalidArgument {
                field,
                reason: "no certificate found (expected PEM \"BEGIN CERTIFICATE\" blocks)".into(),
            });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidArgument {
            field,
            reason: format!("TLS: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| Error::InvalidArgument {
            field,
            reason: format!("cannot build the HTTP client: {e}"),
        })
}

/// The text of a failed HTTP exchange for an error message: status and the start of the
/// body (stores answer with a code and a sentence; never a credential of ours).
pub(crate) async fn describe_failure(response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let body: String = error_summary(&body).chars().take(400).collect();
    if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {body}")
    }
}

/// The part of an error body worth showing. Of Azure's XML errors only `Code` and
/// `Message`: its `AuthenticationErrorDetail` quotes the request's signature.
fn error_summary(body: &str) -> String {
    let body = body.trim();
    if !body.starts_with('<') {
        return body.to_owned();
    }
    let element = |tag: &str| {
        let open = format!("<{tag}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{tag}>"))? + start;
        Some(body[start..end].trim().to_owned())
    };
    match (element("Code"), element("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        (None, Some(message)) => message,
        (None, None) => String::new(),
    }
}

/// Percent-encodes an object name for a URL path, keeping `/` (Azure) or not (GCS JSON
/// API, where the name is one path segment).
pub(crate) fn encode_path(name: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_buffer_is_reused_once_every_copy_of_its_body_dropped() {
        let pool = PartPool::default();
        let mut buffer = pool.take(1024);
        buffer.extend_from_slice(b"part");
        let address = buffer.as_ptr();
        let body = pool.share(buffer);
        // The HTTP client keeps a clone of the body for retries.
        let retry = body.clone();
        assert_eq!(&body[..], b"part");
        drop(body);
        assert!(pool.is_empty(), "back while a clone lives");
        drop(retry);
        let again = pool.take(1024);
        assert_eq!(again.as_ptr(), address);
        assert!(again.is_empty() && again.capacity() >= 1024);
        assert!(
            pool.take(4096).capacity() >= 4096,
            "a larger part gets a new buffer"
        );
    }

    #[test]
    fn the_filler_hands_out_full_parts_and_keeps_the_rest() {
        let mut filler = PartFiller::new(4);
        let (taken, part) = filler.fill(b"abc");
        assert_eq!((taken, part), (3, None));
        let (taken, part) = filler.fill(b"defgh");
        assert_eq!(taken, 1);
        assert_eq!(part.as_deref(), Some(&b"abcd"[..]));
        let (taken, part) = filler.fill(b"efgh");
        assert_eq!(part.as_deref(), Some(&b"efgh"[..]));
        assert_eq!(taken, 4);
        filler.fill(b"i");
        assert_eq!(&filler.rest()[..], b"i");
    }

    #[test]
    fn azure_errors_keep_code_and_message_but_not_the_signature() {
        let body = "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message><AuthenticationErrorDetail>The MAC signature found in the HTTP request 'c2lnbmF0dXJl' is not the same</AuthenticationErrorDetail></Error>";
        let summary = error_summary(body);
        assert_eq!(
            summary,
            "AuthenticationFailed: Server failed to authenticate the request."
        );
        assert_eq!(error_summary(" {\"error\": 1} "), "{\"error\": 1}");
    }

    #[test]
    fn object_names_are_escaped_for_paths() {
        assert_eq!(encode_path("a/b c+d", true), "a/b%20c%2Bd");
        assert_eq!(encode_path("a/b", false), "a%2Fb");
    }
}
