//! Azure Blob Storage: a minimal client over the REST API (version 2021-12-02) for what
//! backups need, on the workspace's HTTP client (reqwest, rustls on ring).
//!
//! An upload is a block blob: parts go up as blocks (`Put Block`, several in flight) and
//! become the blob only when the block list is committed (`Put Block List`), so a failed
//! upload never shows a partial blob. Azure has no call that drops uncommitted blocks, so
//! an abort commits an empty block list (which discards them) on the condition that no blob
//! of that name exists yet, and deletes the empty blob it made. Azure would also discard
//! uncommitted blocks after seven days by itself.
//!
//! Credentials: the storage account key (Shared Key signing), a SAS token, or ambient
//! workload identity (Microsoft Entra federated token, as AKS injects it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::TryStreamExt;
use jiff::Timestamp;
use reqwest::{Method, RequestBuilder, StatusCode};
use tokio::task::JoinSet;
use vaultkeeper_vault::secret::{ExposeSecret, SecretString, secret_string};

use crate::error::{Error, Result};
use crate::retention::{ListedObject, PendingUpload};
use crate::store::{ByteStream, ObjectStore, PartFiller, Upload, describe_failure, encode_path};

mod wire;
use wire::{
    metadata_headers, parse_http_date, shared_key_authorization, xml_elements, xml_unescape,
};

/// The REST API version we speak.
const API_VERSION: &str = "2021-12-02";
/// Azure's limit on blocks per blob.
pub const MAX_BLOCKS: usize = 50_000;

/// How to authenticate to the storage account.
#[derive(Debug, Clone)]
pub enum AzureCredentials {
    /// The storage account's access key (base64, as the portal shows it): every request is
    /// signed with Shared Key.
    AccountKey(SecretString),
    /// A shared access signature (the query string, with or without a leading `?`).
    Sas(SecretString),
    /// Workload identity: the federated service-account token in
    /// `AZURE_FEDERATED_TOKEN_FILE` is exchanged for an Entra ID token of `AZURE_CLIENT_ID`
    /// in `AZURE_TENANT_ID` (the variables AKS workload identity injects).
    WorkloadIdentity,
}

/// Where the container is and how to talk to it.
#[derive(Debug, Clone)]
pub struct AzureSettings {
    /// Storage account name.
    pub account: String,
    /// Container name.
    pub container: String,
    /// The account's blob endpoint; `https://<account>.blob.core.windows.net` when absent.
    /// For Azurite: `http://127.0.0.1:10000/<account>`.
    pub endpoint: Option<String>,
    /// Credentials.
    pub credentials: AzureCredentials,
    /// Extra CA certificates (PEM) to trust for the endpoint.
    pub ca_pem: Option<Vec<u8>>,
}

/// One container.
#[derive(Debug, Clone)]
pub struct AzureStore {
    http: reqwest::Client,
    account: String,
    container: String,
    /// The account's endpoint, without a trailing slash.
    base: String,
    auth: std::sync::Arc<Auth>,
}

#[derive(Debug)]
enum Auth {
    SharedKey(SecretKeyBytes),
    Sas(SecretString),
    Bearer(tokio::sync::Mutex<Option<(SecretString, Instant)>>),
}

/// The decoded account key.
struct SecretKeyBytes(zeroize::Zeroizing<Vec<u8>>);

impl std::fmt::Debug for SecretKeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl AzureStore {
    /// Connects with `settings` (no network call yet).
    pub fn connect(settings: &AzureSettings) -> Result<Self> {
        for (field, value) in [
            ("--azure-account", &settings.account),
            ("--azure-container", &settings.container),
        ] {
            if value.is_empty() {
                return Err(Error::InvalidArgument {
                    field,
                    reason: "is empty".into(),
                });
            }
        }
        let auth = match &settings.credentials {
            AzureCredentials::AccountKey(key) => {
                let decoded = STANDARD
                    .decode(key.expose_secret().trim())
                    .map_err(|_| Error::InvalidArgument {
                        field: "--azure-account-key-file",
                        reason: "the account key is not base64 (copy key1 or key2 of the storage account as shown)".into(),
                    })?;
                Auth::SharedKey(SecretKeyBytes(zeroize::Zeroizing::new(decoded)))
            }
            AzureCredentials::Sas(sas) => Auth::Sas(secret_string(
                sas.expose_secret()
                    .trim()
                    .trim_start_matches('?')
                    .to_owned(),
            )),
            AzureCredentials::WorkloadIdentity => Auth::Bearer(tokio::sync::Mutex::new(None)),
        };
        let base = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{}.blob.core.windows.net", settings.account));
        Ok(Self {
            http: crate::store::http_client(settings.ca_pem.as_deref(), "--azure-ca-cert")?,
            account: settings.account.clone(),
            container: settings.container.clone(),
            base: base.trim_end_matches('/').to_owned(),
            auth: std::sync::Arc::new(auth),
        })
    }

    /// Creates the container (for emulators and tests: in production the container is the
    /// user's, and the backup identity should not be allowed to create containers).
    pub async fn create_container(&self) -> Result<()> {
        let url = format!("{}/{}", self.base, encode_path(&self.container, false));
        let response = self
            .request(
                ("Create Container", ""),
                Method::PUT,
                &url,
                &[("restype", "container")],
                &[],
                None,
            )
            .await?;
        if response.status().is_success() || response.status() == StatusCode::CONFLICT {
            Ok(())
        } else {
            Err(self.error("Create Container", "", describe_failure(response).await))
        }
    }

    fn error(&self, operation: &'static str, key: &str, message: String) -> Error {
        Error::Store {
            operation,
            location: format!("{}/{key}", self.location()),
            message,
        }
    }

    fn transport(&self, operation: &'static str, key: &str, e: reqwest::Error) -> Error {
        // Without the URL: a SAS token travels in the query string.
        self.error(operation, key, e.without_url().to_string())
    }

    fn blob_url(&self, key: &str) -> String {
        format!(
            "{}/{}/{}",
            self.base,
            encode_path(&self.container, false),
            encode_path(key, true)
        )
    }

    /// A signed request. `query` holds the decoded parameters; `headers` the `x-ms-*` and
    /// content headers, which Shared Key signs.
    async fn request(
        &self,
        (operation, key): (&'static str, &str),
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        headers: &[(String, String)],
        body: Option<Bytes>,
    ) -> Result<reqwest::Response> {
        let mut url = reqwest::Url::parse(url)
            .map_err(|e| self.error(operation, key, format!("bad endpoint URL: {e}")))?;
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        let date = Timestamp::now()
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let mut all_headers: Vec<(String, String)> = vec![
            ("x-ms-date".into(), date),
            ("x-ms-version".into(), API_VERSION.into()),
        ];
        all_headers.extend(headers.iter().cloned());
        let content_length = body.as_ref().map_or(0, Bytes::len);
        let authorization = match &*self.auth {
            Auth::SharedKey(secret) => Some(shared_key_authorization(
                &self.account,
                &secret.0,
                &method,
                &url,
                &all_headers,
                content_length,
            )),
            Auth::Sas(sas) => {
                let query = match url.query() {
                    Some(q) if !q.is_empty() => format!("{q}&{}", sas.expose_secret()),
                    _ => sas.expose_secret().to_owned(),
                };
                url.set_query(Some(&query));
                None
            }
            Auth::Bearer(cache) => Some(format!(
                "Bearer {}",
                self.bearer_token(cache).await?.expose_secret()
            )),
        };
        let mut request: RequestBuilder = self.http.request(method, url);
        for (name, value) in &all_headers {
            request = request.header(name, value);
        }
        if let Some(authorization) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        if let Some(body) = body {
            request = request.body(body);
        } else if content_length == 0 {
            request = request.header(reqwest::header::CONTENT_LENGTH, "0");
        }
        request
            .send()
            .await
            .map_err(|e| self.transport(operation, key, e))
    }

    /// An Entra ID token for Azure Storage from the federated token file, cached until five
    /// minutes before it expires.
    async fn bearer_token(
        &self,
        cache: &tokio::sync::Mutex<Option<(SecretString, Instant)>>,
    ) -> Result<SecretString> {
        let mut cached = cache.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let missing = |name: &'static str| {
            Error::InvalidArgument {
            field: name,
            reason: "is not set: workload identity needs the variables AKS injects into a pod whose ServiceAccount has the azure.workload.identity/client-id annotation and the label azure.workload.identity/use=true; or give an account key or SAS".into(),
        }
        };
        let client_id = std::env::var("AZURE_CLIENT_ID").map_err(|_| missing("AZURE_CLIENT_ID"))?;
        let tenant = std::env::var("AZURE_TENANT_ID").map_err(|_| missing("AZURE_TENANT_ID"))?;
        let token_file = std::env::var("AZURE_FEDERATED_TOKEN_FILE")
            .map_err(|_| missing("AZURE_FEDERATED_TOKEN_FILE"))?;
        let authority = std::env::var("AZURE_AUTHORITY_HOST")
            .unwrap_or_else(|_| "https://login.microsoftonline.com/".into());
        let assertion = crate::secret::read_secret_file(
            "the federated token (AZURE_FEDERATED_TOKEN_FILE)",
            std::path::Path::new(&token_file),
        )?;
        let form = format!(
            "client_id={}&scope={}&client_assertion_type={}&client_assertion={}&grant_type=client_credentials",
            encode_path(&client_id, false),
            encode_path("https://storage.azure.com/.default", false),
            encode_path(
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                false
            ),
            encode_path(assertion.expose_secret(), false),
        );
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            authority.trim_end_matches('/'),
            encode_path(&tenant, false)
        );
        let (token, lifetime) = exchange_token(&self.http, &url, form)
            .await
            .map_err(|m| self.error("token exchange (workload identity)", "", m))?;
        let until = Instant::now() + lifetime.saturating_sub(Duration::from_secs(300));
        *cached = Some((token.clone(), until));
        Ok(token)
    }

    async fn list_names(
        &self,
        prefix: &str,
        uncommitted: bool,
    ) -> Result<Vec<(ListedObject, Option<Timestamp>)>> {
        let container_url = format!("{}/{}", self.base, encode_path(&self.container, false));
        let mut out = Vec::new();
        let mut marker = String::new();
        loop {
            let mut query = vec![
                ("restype", "container"),
                ("comp", "list"),
                ("prefix", prefix),
            ];
            if uncommitted {
                query.push(("include", "uncommittedblobs"));
            }
            if !marker.is_empty() {
                query.push(("marker", marker.as_str()));
            }
            let response = self
                .request(
                    ("List Blobs", prefix),
                    Method::GET,
                    &container_url,
                    &query,
                    &[],
                    None,
                )
                .await?;
            if !response.status().is_success() {
                return Err(self.error("List Blobs", prefix, describe_failure(response).await));
            }
            let xml = response
                .text()
                .await
                .map_err(|e| self.transport("List Blobs", prefix, e))?;
            for blob in xml_elements(&xml, "Blob") {
                let Some(name) = xml_elements(blob, "Name").next() else {
                    continue;
                };
                let size = xml_elements(blob, "Content-Length")
                    .next()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                let created = xml_elements(blob, "Creation-Time")
                    .next()
                    .and_then(|t| parse_http_date(t.trim()));
                out.push((
                    ListedObject {
                        key: xml_unescape(name),
                        size,
                    },
                    created,
                ));
            }
            marker = xml_elements(&xml, "NextMarker")
                .next()
                .map(xml_unescape)
                .unwrap_or_default();
            if marker.is_empty() {
                return Ok(out);
            }
        }
    }

    async fn put_block(&self, key: &str, block_id: &str, body: Bytes) -> Result<()> {
        let response = self
            .request(
                ("Put Block", key),
                Method::PUT,
                &self.blob_url(key),
                &[("comp", "block"), ("blockid", block_id)],
                &[],
                Some(body),
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.error("Put Block", key, describe_failure(response).await));
        }
        Ok(())
    }

    /// Commits `block_ids` as the blob. `only_if_absent` makes it fail when a committed
    /// blob of that name exists.
    async fn put_block_list(
        &self,
        key: &str,
        block_ids: &[String],
        metadata: &HashMap<String, String>,
        only_if_absent: bool,
    ) -> Result<()> {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in block_ids {
            xml.push_str("<Latest>");
            xml.push_str(id);
            xml.push_str("</Latest>");
        }
        xml.push_str("</BlockList>");
        let mut headers = metadata_headers(metadata);
        headers.push((
            "x-ms-blob-content-type".into(),
            "application/octet-stream".into(),
        ));
        headers.push(("content-type".into(), "application/xml".into()));
        if only_if_absent {
            headers.push(("if-none-match".into(), "*".into()));
        }
        let response = self
            .request(
                ("Put Block List", key),
                Method::PUT,
                &self.blob_url(key),
                &[("comp", "blocklist")],
                &headers,
                Some(Bytes::from(xml)),
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.error("Put Block List", key, describe_failure(response).await));
        }
        Ok(())
    }
}

/// Posts an OAuth form; returns the access token and its lifetime. The error never
/// carries the form (it holds the assertion).
pub(crate) async fn exchange_token(
    http: &reqwest::Client,
    url: &str,
    form: String,
) -> std::result::Result<(SecretString, Duration), String> {
    let response = http
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(describe_failure(response).await);
    }
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        access_token: String,
        #[serde(default)]
        expires_in: Option<serde_json::Value>,
    }
    let text = zeroize::Zeroizing::new(
        response
            .text()
            .await
            .map_err(|e| e.without_url().to_string())?,
    );
    let answer: TokenAnswer = serde_json::from_str(&text)
        .map_err(|_| "the token answer is not the expected JSON".to_owned())?;
    let seconds = match answer.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(300),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(300),
        _ => 300,
    };
    Ok((
        secret_string(answer.access_token),
        Duration::from_secs(seconds),
    ))
}

#[async_trait]
impl ObjectStore for AzureStore {
    fn location(&self) -> String {
        format!("{}/{}", self.base, self.container)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>> {
        Ok(self
            .list_names(prefix, false)
            .await?
            .into_iter()
            .map(|(o, _)| o)
            .collect())
    }

    /// Blobs that have uncommitted blocks only: listed with `uncommittedblobs` but not
    /// without.
    async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let committed: std::collections::HashSet<String> = self
            .list_names(prefix, false)
            .await?
            .into_iter()
            .map(|(o, _)| o.key)
            .collect();
        Ok(self
            .list_names(prefix, true)
            .await?
            .into_iter()
            .filter(|(o, _)| !committed.contains(&o.key))
            .map(|(o, created)| PendingUpload {
                upload_id: o.key.clone(),
                key: o.key,
                initiated: created,
            })
            .collect())
    }

    /// Commits an empty block list, only if no blob of that name exists (which discards
    /// the uncommitted blocks), then deletes the empty blob.
    async fn abort_upload(&self, key: &str, _upload_id: &str) -> Result<()> {
        self.put_block_list(key, &[], &HashMap::new(), true).await?;
        self.delete(key).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let response = self
            .request(
                ("Get Blob Properties", key),
                Method::HEAD,
                &self.blob_url(key),
                &[],
                &[],
                None,
            )
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.error("Get Blob Properties", key, describe_failure(response).await)),
        }
    }

    async fn put_bytes(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        let mut headers = metadata_headers(metadata);
        headers.push(("x-ms-blob-type".into(), "BlockBlob".into()));
        headers.push(("content-type".into(), content_type.into()));
        let response = self
            .request(
                ("Put Blob", key),
                Method::PUT,
                &self.blob_url(key),
                &[],
                &headers,
                Some(body),
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.error("Put Blob", key, describe_failure(response).await));
        }
        Ok(())
    }

    async fn get_stream(&self, key: &str) -> Result<(Option<u64>, ByteStream)> {
        let response = self
            .request(
                ("Get Blob", key),
                Method::GET,
                &self.blob_url(key),
                &[],
                &[],
                None,
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.error("Get Blob", key, describe_failure(response).await));
        }
        let size = response.content_length();
        let store = self.clone();
        let key = key.to_owned();
        let body = response
            .bytes_stream()
            .map_err(move |e| store.transport("Get Blob", &key, e));
        Ok((size, Box::pin(body)))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let response = self
            .request(
                ("Delete Blob", key),
                Method::DELETE,
                &self.blob_url(key),
                &[],
                &[],
                None,
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.error("Delete Blob", key, describe_failure(response).await));
        }
        Ok(())
    }

    fn upload(
        &self,
        key: &str,
        metadata: HashMap<String, String>,
        part_size: usize,
        parts_in_flight: usize,
    ) -> Box<dyn Upload> {
        Box::new(BlockUpload {
            store: self.clone(),
            key: key.to_owned(),
            metadata,
            filler: PartFiller::new(part_size.max(1)),
            parts_in_flight: parts_in_flight.max(1),
            block_ids: Vec::new(),
            tasks: JoinSet::new(),
        })
    }
}

/// A streaming block-blob upload.
#[derive(Debug)]
struct BlockUpload {
    store: AzureStore,
    key: String,
    metadata: HashMap<String, String>,
    filler: PartFiller,
    parts_in_flight: usize,
    /// Every block sent, in order.
    block_ids: Vec<String>,
    tasks: JoinSet<Result<()>>,
}

impl BlockUpload {
    async fn join_one(&mut self) -> Result<()> {
        if let Some(joined) = self.tasks.join_next().await {
            joined.map_err(|e| {
                self.store.error(
                    "Put Block",
                    &self.key,
                    format!("the upload task stopped: {e}"),
                )
            })??;
        }
        Ok(())
    }

    async fn send_block(&mut self, body: Bytes) -> Result<()> {
        while self.tasks.len() >= self.parts_in_flight {
            self.join_one().await?;
        }
        if self.block_ids.len() >= MAX_BLOCKS {
            return Err(self.store.error(
                "Put Block",
                &self.key,
                format!("the snapshot needs more than {MAX_BLOCKS} blocks: raise --part-size-mib"),
            ));
        }
        // Block ids must all have the same length within a blob.
        let id = STANDARD.encode(format!("vk{:08}", self.block_ids.len()));
        self.block_ids.push(id.clone());
        let (store, key) = (self.store.clone(), self.key.clone());
        self.tasks
            .spawn(async move { store.put_block(&key, &id, body).await });
        Ok(())
    }
}

#[async_trait]
impl Upload for BlockUpload {
    async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let (taken, full) = self.filler.fill(data);
            data = &data[taken..];
            if let Some(block) = full {
                self.send_block(block).await?;
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        let rest = self.filler.rest();
        if self.block_ids.is_empty() {
            return self
                .store
                .put_bytes(&self.key, rest, "application/octet-stream", &self.metadata)
                .await;
        }
        if !rest.is_empty() {
            self.send_block(rest).await?;
        }
        while !self.tasks.is_empty() {
            self.join_one().await?;
        }
        self.store
            .put_block_list(&self.key, &self.block_ids, &self.metadata, true)
            .await
    }

    async fn abort(mut self: Box<Self>, cause: Error) -> Error {
        // Let no block land after the abort.
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let store = self.store.location();
        if self.block_ids.is_empty() {
            return Error::UploadAborted {
                store,
                key: self.key,
                cause: Box::new(cause),
            };
        }
        let mut last_error = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            match self.store.abort_upload(&self.key, "").await {
                Ok(()) => {
                    tracing::warn!(key = %self.key, "block blob upload aborted");
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
            upload_kind: crate::error::UploadKind::AzureBlocks,
            upload_id: self.key.clone(),
            key: self.key,
            cause: Box::new(cause),
            abort_error: last_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let store = AzureStore::connect(&AzureSettings {
            account: "acct".into(),
            container: "c".into(),
            endpoint: None,
            credentials: AzureCredentials::AccountKey(secret_string(STANDARD.encode(b"k3y-value"))),
            ca_pem: None,
        })
        .unwrap();
        let printed = format!("{store:?}");
        assert!(!printed.contains(&STANDARD.encode(b"k3y-value")));
        assert!(printed.contains("<redacted>"));
    }
}
