//! Google Cloud Storage: a minimal client over the JSON API for what backups need, on the
//! workspace's HTTP client (reqwest, rustls on ring).
//!
//! An upload is a resumable upload session: parts go up in order as chunks, and the
//! object exists only once the last chunk (which carries the total size) is accepted, so
//! a failed upload never shows a partial object. A session takes its chunks one after the
//! other, so one part uploads while the next fills, whatever `parts_in_flight` says. An
//! abort cancels the session (`DELETE` on its URI); an unfinished session is not an object,
//! is not listed and expires after a week, so there is nothing for a later run to clean up.
//!
//! Credentials: a service-account key (JSON), exchanged for an OAuth token with a JWT
//! signed here (RS256, ring); or the ambient identity of the metadata server (GKE Workload
//! Identity, Compute Engine); or none, for emulators.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::TryStreamExt;
use jiff::Timestamp;
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use tokio::task::JoinHandle;
use vaultkeeper_vault::secret::{ExposeSecret, SecretString, secret_string};

use crate::azure::exchange_token;
use crate::error::{Error, Result};
use crate::retention::{ListedObject, PendingUpload};
use crate::store::{ByteStream, ObjectStore, PartFiller, Upload, describe_failure, encode_path};

/// Chunks of a resumable upload must be multiples of this (except the last).
pub const CHUNK_GRANULARITY: usize = 256 * 1024;
/// The OAuth scope backups need: objects read, written, deleted.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// How to authenticate to GCS.
#[derive(Debug, Clone)]
pub enum GcsCredentials {
    /// A service-account key file's JSON (from a Kubernetes Secret).
    ServiceAccountKey(SecretString),
    /// The metadata server's identity: GKE Workload Identity, or the node's service
    /// account. `GCE_METADATA_HOST` overrides the server's address.
    Ambient,
    /// No credentials: an emulator, or a bucket open to everyone.
    Anonymous,
}

/// Where the bucket is and how to talk to it.
#[derive(Debug, Clone)]
pub struct GcsSettings {
    /// Bucket name.
    pub bucket: String,
    /// API endpoint; `https://storage.googleapis.com` when absent (an emulator or a
    /// Private Service Connect endpoint otherwise).
    pub endpoint: Option<String>,
    /// Credentials.
    pub credentials: GcsCredentials,
    /// Extra CA certificates (PEM) to trust for the endpoint.
    pub ca_pem: Option<Vec<u8>>,
}

/// One bucket.
#[derive(Debug, Clone)]
pub struct GcsStore {
    http: reqwest::Client,
    bucket: String,
    base: String,
    auth: std::sync::Arc<Auth>,
}

#[derive(Debug)]
enum Auth {
    ServiceAccount {
        key: ServiceAccountKey,
        cache: tokio::sync::Mutex<Option<(SecretString, Instant)>>,
    },
    Metadata(tokio::sync::Mutex<Option<(SecretString, Instant)>>),
    Anonymous,
}

/// The parts of a service-account key file we use.
struct ServiceAccountKey {
    client_email: String,
    private_key: SecretString,
    token_uri: String,
}

/// The key file as it parses; the private key moves into a [`SecretString`] at once.
#[derive(Deserialize)]
struct ServiceAccountKeyFile {
    client_email: String,
    private_key: String,
    #[serde(default = "default_token_uri")]
    token_uri: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key", &"<redacted>")
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

#[derive(Deserialize)]
struct ObjectList {
    #[serde(default)]
    items: Vec<ObjectResource>,
    #[serde(default, rename = "nextPageToken")]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ObjectResource {
    name: String,
    #[serde(default)]
    size: Option<String>,
}

impl GcsStore {
    /// Connects with `settings` (no network call yet; a service-account key is parsed).
    pub fn connect(settings: &GcsSettings) -> Result<Self> {
        if settings.bucket.is_empty() {
            return Err(Error::InvalidArgument {
                field: "--bucket",
                reason: "is empty".into(),
            });
        }
        let auth = match &settings.credentials {
            GcsCredentials::ServiceAccountKey(json) => {
                let file: ServiceAccountKeyFile = serde_json::from_str(json.expose_secret())
                    .map_err(|_| Error::InvalidArgument {
                        field: "--gcs-service-account-key-file",
                        // Not serde's message: it may quote a piece of the key.
                        reason: "not a service-account key file (expected the JSON Google Cloud gives for a key, with client_email and private_key)".into(),
                    })?;
                let key = ServiceAccountKey {
                    client_email: file.client_email,
                    private_key: secret_string(file.private_key),
                    token_uri: file.token_uri,
                };
                signing_key(&key)?;
                Auth::ServiceAccount {
                    key,
                    cache: tokio::sync::Mutex::new(None),
                }
            }
            GcsCredentials::Ambient => Auth::Metadata(tokio::sync::Mutex::new(None)),
            GcsCredentials::Anonymous => Auth::Anonymous,
        };
        let base = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| "https://storage.googleapis.com".into());
        Ok(Self {
            http: crate::store::http_client(settings.ca_pem.as_deref(), "--gcs-ca-cert")?,
            bucket: settings.bucket.clone(),
            base: base.trim_end_matches('/').to_owned(),
            auth: std::sync::Arc::new(auth),
        })
    }

    fn error(&self, operation: &'static str, key: &str, message: String) -> Error {
        Error::Store {
            operation,
            location: format!("gs://{}/{key}", self.bucket),
            message,
        }
    }

    fn transport(&self, operation: &'static str, key: &str, e: reqwest::Error) -> Error {
        // Without the URL: a session URI lets anyone holding it write the upload.
        self.error(operation, key, e.without_url().to_string())
    }

    fn object_url(&self, key: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.base,
            encode_path(&self.bucket, false),
            encode_path(key, false)
        )
    }

    /// `url` with `pairs` appended to its query string.
    fn with_query(&self, url: &str, pairs: &[(&str, &str)]) -> Result<reqwest::Url> {
        let mut parsed = reqwest::Url::parse(url).map_err(|e| Error::InvalidArgument {
            field: "--gcs-endpoint",
            reason: format!("not a URL: {e}"),
        })?;
        parsed.query_pairs_mut().extend_pairs(pairs);
        Ok(parsed)
    }

    fn upload_url(&self) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o",
            self.base,
            encode_path(&self.bucket, false)
        )
    }

    /// `request` with the `Authorization` header, when there are credentials.
    async fn authorized(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> Result<RequestBuilder> {
        let token = match &*self.auth {
            Auth::Anonymous => return Ok(request),
            Auth::ServiceAccount { key, cache } => {
                self.cached_token(cache, || self.service_account_token(key))
                    .await
            }
            Auth::Metadata(cache) => self.cached_token(cache, || self.metadata_token()).await,
        }
        .map_err(|m| self.error(operation, "", format!("cannot get an access token: {m}")))?;
        Ok(request.bearer_auth(token.expose_secret()))
    }

    async fn cached_token<F, Fut>(
        &self,
        cache: &tokio::sync::Mutex<Option<(SecretString, Instant)>>,
        fetch: F,
    ) -> std::result::Result<SecretString, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(SecretString, Duration), String>>,
    {
        let mut cached = cache.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = fetch().await?;
        let until = Instant::now() + lifetime.saturating_sub(Duration::from_secs(300));
        *cached = Some((token.clone(), until));
        Ok(token)
    }

    async fn service_account_token(
        &self,
        key: &ServiceAccountKey,
    ) -> std::result::Result<(SecretString, Duration), String> {
        let assertion = signed_jwt(key, Timestamp::now()).map_err(|e| e.to_string())?;
        let form = format!(
            "grant_type={}&assertion={}",
            encode_path("urn:ietf:params:oauth:grant-type:jwt-bearer", false),
            assertion.expose_secret()
        );
        exchange_token(&self.http, &key.token_uri, form).await
    }

    async fn metadata_token(&self) -> std::result::Result<(SecretString, Duration), String> {
        let host = std::env::var("GCE_METADATA_HOST")
            .unwrap_or_else(|_| "metadata.google.internal".into());
        let url =
            format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
        let response = self
            .http
            .get(url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(|e| {
                format!(
                    "the metadata server is unreachable ({}): without Workload Identity or a node service account, give a service-account key",
                    e.without_url()
                )
            })?;
        if !response.status().is_success() {
            return Err(describe_failure(response).await);
        }
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            expires_in: u64,
        }
        let text = zeroize::Zeroizing::new(
            response
                .text()
                .await
                .map_err(|e| e.without_url().to_string())?,
        );
        let answer: Answer = serde_json::from_str(&text).map_err(|_| {
            "the metadata server's token answer is not the expected JSON".to_owned()
        })?;
        Ok((
            secret_string(answer.access_token),
            Duration::from_secs(answer.expires_in),
        ))
    }

    async fn check(
        &self,
        operation: &'static str,
        key: &str,
        response: reqwest::Response,
    ) -> Result<reqwest::Response> {
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.error(operation, key, describe_failure(response).await))
        }
    }

    /// Starts a resumable upload session; returns its URI (a secret of sorts: it lets
    /// anyone holding it write the upload for a week).
    async fn start_session(
        &self,
        key: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<SecretString> {
        let resource = serde_json::json!({
            "name": key,
            "contentType": "application/octet-stream",
            "metadata": metadata,
        });
        let request = self
            .http
            .post(self.with_query(
                &self.upload_url(),
                &[("uploadType", "resumable"), ("name", key)],
            )?)
            .header("X-Upload-Content-Type", "application/octet-stream")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=UTF-8",
            )
            .body(resource.to_string());
        let response = self
            .authorized("start resumable upload", request)
            .await?
            .send()
            .await
            .map_err(|e| self.transport("start resumable upload", key, e))?;
        let response = self.check("start resumable upload", key, response).await?;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| {
                self.error(
                    "start resumable upload",
                    key,
                    "the answer has no Location (session URI)".into(),
                )
            })?;
        Ok(secret_string(location.to_owned()))
    }

    /// Sends one chunk at `offset`; `total` is set on the last one. Returns whether the
    /// object is complete.
    async fn put_chunk(
        &self,
        key: &str,
        session: &SecretString,
        offset: u64,
        chunk: Bytes,
        total: Option<u64>,
    ) -> Result<bool> {
        let len = chunk.len() as u64;
        let total_text = total.map_or("*".to_owned(), |t| t.to_string());
        let range = if len == 0 {
            format!("bytes */{total_text}")
        } else {
            format!("bytes {}-{}/{total_text}", offset, offset + len - 1)
        };
        let request = self
            .http
            .put(session.expose_secret())
            .header(reqwest::header::CONTENT_RANGE, range)
            .body(chunk);
        let response = self
            .authorized("upload chunk", request)
            .await?
            .send()
            .await
            .map_err(|e| self.transport("upload chunk", key, e))?;
        match response.status() {
            StatusCode::PERMANENT_REDIRECT if total.is_none() => Ok(false),
            s if s.is_success() && total.is_some() => Ok(true),
            s if s.is_success() || s == StatusCode::PERMANENT_REDIRECT => Err(self.error(
                "upload chunk",
                key,
                format!("unexpected HTTP {s} for a chunk at byte {offset}"),
            )),
            _ => Err(self.error("upload chunk", key, describe_failure(response).await)),
        }
    }

    /// Cancels a session. GCS answers 499 when it cancelled it.
    async fn cancel_session(&self, key: &str, session: &SecretString) -> Result<()> {
        let request = self.http.delete(session.expose_secret());
        let response = self
            .authorized("cancel resumable upload", request)
            .await?
            .send()
            .await
            .map_err(|e| self.transport("cancel resumable upload", key, e))?;
        match response.status().as_u16() {
            499 | 404 | 410 => Ok(()),
            s if (200..300).contains(&s) => Ok(()),
            _ => Err(self.error(
                "cancel resumable upload",
                key,
                describe_failure(response).await,
            )),
        }
    }
}

/// The private key of a service account, checked at start-up so a broken key fails fast.
fn signing_key(key: &ServiceAccountKey) -> Result<ring::signature::RsaKeyPair> {
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject;
    let invalid = |reason: &str| Error::InvalidArgument {
        field: "--gcs-service-account-key-file",
        reason: reason.to_owned(),
    };
    let der = PrivatePkcs8KeyDer::from_pem_slice(key.private_key.expose_secret().as_bytes())
        .map_err(|_| invalid("private_key is not a PEM PKCS#8 private key"))?;
    ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
        .map_err(|_| invalid("private_key is not a usable RSA key"))
}

/// The JWT a service account presents to the token endpoint (RFC 7523), valid one hour.
fn signed_jwt(key: &ServiceAccountKey, now: Timestamp) -> Result<SecretString> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": key.token_uri,
        "iat": now.as_second(),
        "exp": now.as_second() + 3600,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let message = format!("{header}.{claims}");
    let pair = signing_key(key)?;
    let mut signature = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message.as_bytes(),
        &mut signature,
    )
    .map_err(|_| Error::InvalidArgument {
        field: "--gcs-service-account-key-file",
        reason: "signing with private_key failed".into(),
    })?;
    Ok(secret_string(format!(
        "{message}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    )))
}

#[async_trait]
impl ObjectStore for GcsStore {
    fn location(&self) -> String {
        format!("gs://{}", self.bucket)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>> {
        let url = format!(
            "{}/storage/v1/b/{}/o",
            self.base,
            encode_path(&self.bucket, false)
        );
        let mut out = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![
                ("prefix", prefix),
                ("fields", "items(name,size),nextPageToken"),
            ];
            let token = page_token.take().unwrap_or_default();
            if !token.is_empty() {
                query.push(("pageToken", token.as_str()));
            }
            let request = self.http.get(self.with_query(&url, &query)?);
            let response = self
                .authorized("list objects", request)
                .await?
                .send()
                .await
                .map_err(|e| self.transport("list objects", prefix, e))?;
            let response = self.check("list objects", prefix, response).await?;
            let page: ObjectList = response
                .json_bytes()
                .await
                .map_err(|e| self.error("list objects", prefix, e))?;
            for item in page.items {
                out.push(ListedObject {
                    size: item.size.and_then(|s| s.parse().ok()).unwrap_or(0),
                    key: item.name,
                });
            }
            match page.next_page_token {
                Some(token) if !token.is_empty() => page_token = Some(token),
                _ => return Ok(out),
            }
        }
    }

    /// Resumable sessions cannot be listed; they are not objects and expire by themselves.
    async fn list_uploads(&self, _prefix: &str) -> Result<Vec<PendingUpload>> {
        Ok(Vec::new())
    }

    async fn abort_upload(&self, _key: &str, _upload_id: &str) -> Result<()> {
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let request = self
            .http
            .get(self.with_query(&self.object_url(key), &[("fields", "name")])?);
        let response = self
            .authorized("get object metadata", request)
            .await?
            .send()
            .await
            .map_err(|e| self.transport("get object metadata", key, e))?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.error("get object metadata", key, describe_failure(response).await)),
        }
    }

    /// A multipart (metadata + media) upload in one request.
    async fn put_bytes(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        let boundary = format!(
            "vaultkeeper-{}",
            hex::encode(crate::format::random_nonce_prefix()?)
        );
        let resource = serde_json::json!({
            "name": key,
            "contentType": content_type,
            "metadata": metadata,
        });
        let mut multipart = Vec::with_capacity(body.len() + 512);
        multipart.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{resource}\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        multipart.extend_from_slice(&body);
        multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let request = self
            .http
            .post(self.with_query(
                &self.upload_url(),
                &[("uploadType", "multipart"), ("name", key)],
            )?)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/related; boundary={boundary}"),
            )
            .body(multipart);
        let response = self
            .authorized("insert object", request)
            .await?
            .send()
            .await
            .map_err(|e| self.transport("insert object", key, e))?;
        self.check("insert object", key, response).await?;
        Ok(())
    }

    async fn get_stream(&self, key: &str) -> Result<(Option<u64>, ByteStream)> {
        let request = self
            .http
            .get(self.with_query(&self.object_url(key), &[("alt", "media")])?);
        let response = self
            .authorized("get object", request)
            .await?
            .send()
            .await
            .map_err(|e| self.transport("get object", key, e))?;
        let response = self.check("get object", key, response).await?;
        let size = response.content_length();
        let store = self.clone();
        let key = key.to_owned();
        let body = response
            .bytes_stream()
            .map_err(move |e| store.transport("get object", &key, e));
        Ok((size, Box::pin(body)))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let request = self.http.delete(self.object_url(key));
        let response = self
            .authorized("delete object", request)
            .await?
            .send()
            .await
            .map_err(|e| self.transport("delete object", key, e))?;
        self.check("delete object", key, response).await?;
        Ok(())
    }

    fn upload(
        &self,
        key: &str,
        metadata: HashMap<String, String>,
        part_size: usize,
        _parts_in_flight: usize,
    ) -> Box<dyn Upload> {
        // Chunks must be whole multiples of 256 KiB.
        let part_size = part_size.max(CHUNK_GRANULARITY) / CHUNK_GRANULARITY * CHUNK_GRANULARITY;
        Box::new(ResumableUpload {
            store: self.clone(),
            key: key.to_owned(),
            metadata,
            filler: PartFiller::new(part_size),
            session: None,
            offset: 0,
            in_flight: None,
        })
    }
}

/// A streaming resumable upload: one chunk in flight while the next fills.
#[derive(Debug)]
struct ResumableUpload {
    store: GcsStore,
    key: String,
    metadata: HashMap<String, String>,
    filler: PartFiller,
    session: Option<SecretString>,
    /// Bytes handed to chunks so far.
    offset: u64,
    in_flight: Option<JoinHandle<Result<bool>>>,
}

impl ResumableUpload {
    async fn wait_in_flight(&mut self) -> Result<bool> {
        match self.in_flight.take() {
            Some(handle) => handle.await.map_err(|e| {
                self.store.error(
                    "upload chunk",
                    &self.key,
                    format!("the upload task stopped: {e}"),
                )
            })?,
            None => Ok(false),
        }
    }

    async fn send_chunk(&mut self, chunk: Bytes, last: bool) -> Result<()> {
        if self.session.is_none() {
            self.session = Some(self.store.start_session(&self.key, &self.metadata).await?);
        }
        // Chunks go in order: the previous one must be accepted first.
        self.wait_in_flight().await?;
        let session = self
            .session
            .clone()
            .unwrap_or_else(|| secret_string(String::new()));
        let offset = self.offset;
        self.offset += chunk.len() as u64;
        let total = last.then_some(self.offset);
        let (store, key) = (self.store.clone(), self.key.clone());
        self.in_flight = Some(tokio::spawn(async move {
            store.put_chunk(&key, &session, offset, chunk, total).await
        }));
        Ok(())
    }
}

#[async_trait]
impl Upload for ResumableUpload {
    async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let (taken, full) = self.filler.fill(data);
            data = &data[taken..];
            if let Some(chunk) = full {
                self.send_chunk(chunk, false).await?;
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        let rest = self.filler.rest();
        if self.session.is_none() {
            return self
                .store
                .put_bytes(&self.key, rest, "application/octet-stream", &self.metadata)
                .await;
        }
        self.send_chunk(rest, true).await?;
        if self.wait_in_flight().await? {
            Ok(())
        } else {
            Err(self.store.error(
                "upload chunk",
                &self.key,
                "the last chunk did not complete the object".into(),
            ))
        }
    }

    async fn abort(mut self: Box<Self>, cause: Error) -> Error {
        if let Some(handle) = self.in_flight.take() {
            handle.abort();
            let _ = handle.await;
        }
        if let Some(session) = self.session.take() {
            // An unfinished session is never an object and expires after a week; a failed
            // cancel leaves nothing anyone can list, so it is reported but not fatal.
            match self.store.cancel_session(&self.key, &session).await {
                Ok(()) => tracing::warn!(key = %self.key, "resumable upload cancelled"),
                Err(e) => {
                    tracing::warn!(key = %self.key, error = %e, "cannot cancel the resumable upload; GCS drops it after a week")
                }
            }
        }
        Error::UploadAborted {
            store: self.store.location(),
            key: self.key,
            cause: Box::new(cause),
        }
    }
}

/// Parses a JSON answer body.
trait JsonBytes {
    async fn json_bytes<T: for<'de> Deserialize<'de>>(self) -> std::result::Result<T, String>;
}

impl JsonBytes for reqwest::Response {
    async fn json_bytes<T: for<'de> Deserialize<'de>>(self) -> std::result::Result<T, String> {
        let bytes = self
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("unexpected answer: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_service_account_key_is_refused_without_echoing_it() {
        let json = r#"{"client_email":"b@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n"}"#;
        let err = GcsStore::connect(&GcsSettings {
            bucket: "b".into(),
            endpoint: None,
            credentials: GcsCredentials::ServiceAccountKey(secret_string(json.into())),
            ca_pem: None,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("--gcs-service-account-key-file"), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
        let err = GcsStore::connect(&GcsSettings {
            bucket: "b".into(),
            endpoint: None,
            credentials: GcsCredentials::ServiceAccountKey(secret_string(
                "{\"private_key\": \"hunter2\"}".into(),
            )),
            ca_pem: None,
        })
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
