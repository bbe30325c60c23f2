//! S3 through aws-sdk-s3, as an [`ObjectStore`]: listing, small objects, and the
//! bounded-memory multipart upload that is aborted on any failure.
//!
//! The HTTPS client is the SDK's hyper client with rustls on the ring provider (the rest of
//! the project uses ring; the SDK's default would pull aws-lc-rs).

use std::collections::HashMap;
use std::net::IpAddr;

use async_trait::async_trait;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use bytes::Bytes;
use jiff::Timestamp;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::retention::{ListedObject, PendingUpload};
use crate::store::{ObjectStore, PartPool, Upload};
use vaultkeeper_vault::secret::{ExposeSecret, SecretString};

/// Smallest part S3 accepts (except the last one).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Default part size: 8 MiB, as the AWS CLI uses.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Default number of parts uploading while the next one fills.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 2;
/// S3's limit on parts per upload.
pub const MAX_PARTS: i32 = 10_000;

/// How to authenticate to S3.
#[derive(Debug, Clone)]
pub enum S3Credentials {
    /// Given values (from a Kubernetes Secret).
    Static {
        /// Access key id (not secret on its own).
        access_key_id: String,
        /// Secret access key.
        secret_access_key: SecretString,
        /// Session token, for temporary credentials.
        session_token: Option<SecretString>,
    },
    /// The SDK's default chain: environment, web identity (IRSA / pod identity), profile,
    /// container and instance metadata.
    Ambient,
}

/// Where the bucket is and how to talk to it.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Region (S3-compatible servers usually accept any, e.g. `us-east-1`).
    pub region: String,
    /// Custom endpoint (MinIO, Ceph, moto…); `None` for AWS.
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible servers.
    pub force_path_style: bool,
    /// Credentials.
    pub credentials: S3Credentials,
    /// Extra CA certificates (PEM) to trust for the endpoint, in addition to the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// Ask for CRC checksums on uploads only when S3 requires them. S3-compatible servers
    /// often reject the SDK's default streaming checksums; integrity is ours anyway (the
    /// AEAD and the manifest's SHA-256).
    pub checksums_when_required: bool,
}

impl S3Settings {
    /// The SDK configuration these settings describe, to which a caller may add (e.g. an
    /// interceptor) before [`S3Store::from_config`].
    pub async fn sdk_config(&self) -> Result<aws_sdk_s3::config::Builder> {
        if self.bucket.is_empty() {
            return Err(Error::InvalidArgument {
                field: "--bucket",
                reason: "is empty".into(),
            });
        }
        let mut trust = TrustStore::default();
        if let Some(pem) = &self.ca_pem {
            trust = trust.with_pem_certificate(pem.clone());
        }
        let context = TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| Error::InvalidArgument {
                field: "--s3-ca-cert",
                reason: e.to_string(),
            })?;
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .tls_context(context)
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .region(Region::new(self.region.clone()));
        if let S3Credentials::Static {
            access_key_id,
            secret_access_key,
            session_token,
        } = &self.credentials
        {
            loader = loader.credentials_provider(Credentials::new(
                access_key_id.clone(),
                secret_access_key.expose_secret().to_owned(),
                session_token.as_ref().map(|t| t.expose_secret().to_owned()),
                None,
                "vaultkeeper",
            ));
        }
        let shared = loader.load().await;
        let mut builder =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(self.force_path_style);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        if self.checksums_when_required {
            builder = builder
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(builder)
    }
}

impl S3Settings {
    /// Whether upload bodies are signed, for these settings' endpoint (see
    /// [`payload_signing`]).
    pub fn payload_signing(&self) -> PayloadSigning {
        payload_signing(self.endpoint.as_deref())
    }
}

/// Whether SigV4 covers the SHA-256 of an upload's body.
///
/// Hashing every part for the signature costs about as much CPU as the encryption. It
/// buys integrity only where nothing else protects the body on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadSigning {
    /// The body's SHA-256 is part of the signature: plain HTTP to another host.
    Signed,
    /// `UNSIGNED-PAYLOAD`: TLS protects the body (AWS, any `https://` endpoint), or it
    /// never leaves the host (a loopback endpoint).
    Unsigned,
}

/// Decides [`PayloadSigning`] for an endpoint (`None`: AWS itself, always over TLS). Pure.
///
/// Anything that is not clearly HTTPS or loopback keeps signed payloads, including an
/// endpoint we cannot parse.
pub fn payload_signing(endpoint: Option<&str>) -> PayloadSigning {
    let Some(endpoint) = endpoint else {
        return PayloadSigning::Unsigned;
    };
    let Some((scheme, rest)) = endpoint.trim().split_once("://") else {
        return PayloadSigning::Signed;
    };
    if scheme.eq_ignore_ascii_case("https") {
        return PayloadSigning::Unsigned;
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return PayloadSigning::Signed;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        PayloadSigning::Unsigned
    } else {
        PayloadSigning::Signed
    }
}

fn sdk_error<E>(operation: &'static str, bucket: &str, key: &str, err: E) -> Error
where
    E: std::error::Error,
{
    Error::S3 {
        operation,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message: DisplayErrorContext(&err).to_string(),
    }
}

fn to_timestamp(t: &aws_smithy_types::DateTime) -> Option<Timestamp> {
    Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()
}

/// One bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    payload_signing: PayloadSigning,
}

impl S3Store {
    /// Connects with `settings` (no network call yet).
    pub async fn connect(settings: &S3Settings) -> Result<Self> {
        let config = settings.sdk_config().await?;
        Ok(Self::from_config(
            config,
            &settings.bucket,
            settings.payload_signing(),
        ))
    }

    /// A store from a prepared SDK configuration; `payload_signing` should come from
    /// [`S3Settings::payload_signing`] of the settings the configuration was made from.
    pub fn from_config(
        config: aws_sdk_s3::config::Builder,
        bucket: &str,
        payload_signing: PayloadSigning,
    ) -> Self {
        Self {
            client: Client::from_conf(config.build()),
            bucket: bucket.to_owned(),
            payload_signing,
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn location(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    /// Every object under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ListObjectsV2", &self.bucket, prefix, e))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    out.push(ListedObject {
                        key: key.to_owned(),
                        size: object.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Every unfinished multipart upload under `prefix`.
    async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| sdk_error("ListMultipartUploads", &self.bucket, prefix, e))?;
            for upload in page.uploads() {
                if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                    out.push(PendingUpload {
                        key: key.to_owned(),
                        upload_id: id.to_owned(),
                        initiated: upload.initiated().and_then(to_timestamp),
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(out);
            }
        }
    }

    /// Aborts one multipart upload.
    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| sdk_error("AbortMultipartUpload", &self.bucket, key, e))?;
        Ok(())
    }

    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> Result<bool> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(sdk_error("HeadObject", &self.bucket, key, e)),
        }
    }

    /// Writes a small object in one request.
    async fn put_bytes(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_metadata(Some(metadata.clone()))
            .body(ByteStream::from(body))
            .customize();
        let request = match self.payload_signing {
            PayloadSigning::Signed => request,
            PayloadSigning::Unsigned => request.disable_payload_signing(),
        };
        request
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", &self.bucket, key, e))?;
        Ok(())
    }

    /// Starts downloading `key`; returns its length (when S3 says) and the body stream.
    async fn get_stream(&self, key: &str) -> Result<(Option<u64>, crate::store::ByteStream)> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error("GetObject", &self.bucket, key, e))?;
        let size = output.content_length().map(|l| l.max(0) as u64);
        let (bucket, key) = (self.bucket.clone(), key.to_owned());
        let body = futures::stream::try_unfold(output.body, move |mut body| {
            let (bucket, key) = (bucket.clone(), key.clone());
            async move {
                match body.try_next().await {
                    Ok(Some(chunk)) => Ok(Some((chunk, body))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(sdk_error("GetObject", &bucket, &key, e)),
                }
            }
        });
        Ok((size, Box::pin(body)))
    }

    /// Deletes `key`.
    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteObject", &self.bucket, key, e))?;
        Ok(())
    }

    /// Begins a streaming upload of `key`. Nothing is sent until the first part is full;
    /// an object smaller than one part goes up as a single PutObject on
    /// [`ObjectUpload::finish`].
    fn upload(
        &self,
        key: &str,
        metadata: HashMap<String, String>,
        part_size: usize,
        parts_in_flight: usize,
    ) -> Box<dyn Upload> {
        Box::new(ObjectUpload {
            store: self.clone(),
            key: key.to_owned(),
            metadata,
            part_size: part_size.max(MIN_PART_SIZE),
            parts_in_flight: parts_in_flight.max(1),
            buffer: Vec::new(),
            pool: PartPool::default(),
            upload_id: None,
            next_part: 1,
            tasks: JoinSet::new(),
            completed: Vec::new(),
        })
    }
}

/// A streaming upload. Memory: one part filling plus at most `parts_in_flight` parts
/// uploading. Call [`ObjectUpload::abort`] on any failure, including a failure of
/// [`ObjectUpload::finish`].
#[derive(Debug)]
pub struct ObjectUpload {
    store: S3Store,
    key: String,
    metadata: HashMap<String, String>,
    part_size: usize,
    parts_in_flight: usize,
    buffer: Vec<u8>,
    pool: PartPool,
    upload_id: Option<String>,
    next_part: i32,
    tasks: JoinSet<Result<CompletedPart>>,
    completed: Vec<CompletedPart>,
}

impl ObjectUpload {
    /// The object key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The multipart upload id, once one was started.
    pub fn upload_id(&self) -> Option<&str> {
        self.upload_id.as_deref()
    }

    /// Appends `data`; uploads every part that fills, waiting when `parts_in_flight` parts
    /// are already uploading (back-pressure on the producer).
    async fn write_parts(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.buffer.capacity() == 0 {
                self.buffer = self.pool.take(self.part_size);
            }
            let take = (self.part_size - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == self.part_size {
                let part = self.pool.share(std::mem::take(&mut self.buffer));
                self.send_part(part).await?;
            }
        }
        Ok(())
    }

    async fn start(&mut self) -> Result<String> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let store = &self.store;
        let created = store
            .client
            .create_multipart_upload()
            .bucket(&store.bucket)
            .key(&self.key)
            .content_type("application/octet-stream")
            .set_metadata(Some(self.metadata.clone()))
            .send()
            .await
            .map_err(|e| sdk_error("CreateMultipartUpload", &store.bucket, &self.key, e))?;
        let id = created
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| Error::S3 {
                operation: "CreateMultipartUpload",
                bucket: store.bucket.clone(),
                key: self.key.clone(),
                message: "the answer has no UploadId".into(),
            })?;
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    async fn join_one(&mut self) -> Result<()> {
        if let Some(joined) = self.tasks.join_next().await {
            let part = joined.map_err(|e| Error::S3 {
                operation: "UploadPart",
                bucket: self.store.bucket.clone(),
                key: self.key.clone(),
                message: format!("the upload task stopped: {e}"),
            })??;
            self.completed.push(part);
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Bytes) -> Result<()> {
        let upload_id = self.start().await?;
        while self.tasks.len() >= self.parts_in_flight {
            self.join_one().await?;
        }
        let number = self.next_part;
        if number > MAX_PARTS {
            return Err(Error::S3 {
                operation: "UploadPart",
                bucket: self.store.bucket.clone(),
                key: self.key.clone(),
                message: format!(
                    "the snapshot needs more than {MAX_PARTS} parts: raise --part-size-mib"
                ),
            });
        }
        self.next_part += 1;
        let request = self
            .store
            .client
            .upload_part()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(part))
            .customize();
        let request = match self.store.payload_signing {
            PayloadSigning::Signed => request,
            PayloadSigning::Unsigned => request.disable_payload_signing(),
        };
        let (bucket, key) = (self.store.bucket.clone(), self.key.clone());
        self.tasks.spawn(async move {
            let output = request
                .send()
                .await
                .map_err(|e| sdk_error("UploadPart", &bucket, &key, e))?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(output.e_tag().map(str::to_owned))
                .build())
        });
        Ok(())
    }
}

#[async_trait]
impl Upload for ObjectUpload {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.write_parts(data).await
    }

    /// Uploads what is left and completes the object.
    async fn finish(&mut self) -> Result<()> {
        let rest = self.pool.share(std::mem::take(&mut self.buffer));
        if self.upload_id.is_none() {
            return self
                .store
                .put_bytes(&self.key, rest, "application/octet-stream", &self.metadata)
                .await;
        }
        if !rest.is_empty() {
            self.send_part(rest).await?;
        }
        while !self.tasks.is_empty() {
            self.join_one().await?;
        }
        let mut parts = std::mem::take(&mut self.completed);
        parts.sort_by_key(|p| p.part_number());
        let store = &self.store;
        store
            .client
            .complete_multipart_upload()
            .bucket(&store.bucket)
            .key(&self.key)
            .upload_id(self.upload_id.clone().unwrap_or_default())
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("CompleteMultipartUpload", &store.bucket, &self.key, e))?;
        Ok(())
    }

    /// Stops every part upload and aborts the multipart upload, so no partial object and
    /// no dangling upload remains. Returns the error to report: `cause`, wrapped to say
    /// the upload was aborted, or that aborting failed too.
    async fn abort(mut self: Box<Self>, cause: Error) -> Error {
        // Let no part land after the abort: stop the tasks and wait until they are gone.
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let store = self.store.location();
        let Some(upload_id) = self.upload_id.take() else {
            // Nothing was created (single PutObject, or failed before the first part).
            return Error::UploadAborted {
                store,
                key: self.key,
                cause: Box::new(cause),
            };
        };
        let mut last_error = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(500 << attempt)).await;
            }
            match self.store.abort_upload(&self.key, &upload_id).await {
                Ok(()) => {
                    tracing::warn!(key = %self.key, %upload_id, "multipart upload aborted");
                    return Error::UploadAborted {
                        store,
                        key: self.key,
                        cause: Box::new(cause),
                    };
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        Error::AbortFailed {
            store,
            key: self.key,
            upload_kind: crate::error::UploadKind::S3Multipart,
            upload_id,
            cause: Box::new(cause),
            abort_error: last_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_signed_only_where_nothing_else_protects_it() {
        use PayloadSigning::{Signed, Unsigned};
        let table: &[(Option<&str>, PayloadSigning)] = &[
            // AWS itself: always TLS.
            (None, Unsigned),
            // TLS protects the body, wherever the server is.
            (Some("https://minio.storage.svc:9000"), Unsigned),
            (Some("HTTPS://s3.example.com"), Unsigned),
            (Some("https://10.0.0.5"), Unsigned),
            // Plain HTTP that never leaves the host.
            (Some("http://127.0.0.1:5000"), Unsigned),
            (Some("http://127.30.200.10:5000/"), Unsigned),
            (Some("http://localhost:9000"), Unsigned),
            (Some("http://LOCALHOST"), Unsigned),
            (Some("http://[::1]:9000"), Unsigned),
            (Some("http://user:pw@127.0.0.1:9000/path"), Unsigned),
            // Plain HTTP across a network: only the signature covers the body.
            (Some("http://minio.storage.svc:9000"), Signed),
            (Some("http://10.0.0.5:9000"), Signed),
            (Some("http://[fd00::1]:9000"), Signed),
            (Some("http://127.0.0.1.example.com"), Signed),
            (Some("http://localhost.example.com:9000"), Signed),
            (Some("http://127.0.0.1@evil.example.com"), Signed),
            // What we cannot read keeps the safe choice.
            (Some("minio:9000"), Signed),
            (Some("ftp://127.0.0.1"), Signed),
            (Some(""), Signed),
        ];
        for (endpoint, expected) in table {
            assert_eq!(payload_signing(*endpoint), *expected, "{endpoint:?}");
        }
    }
}
