//! The one Vault HTTP client of the workspace: [`VaultHttp`] talks to one Vault/OpenBao
//! server; the operator's [`super::HttpNodeClient`], the backup and restore jobs and the
//! metrics-token job all call through it.
//!
//! Everything every HTTP caller needs is here once: the rustls set-up ([`tls_config`]: the
//! ring provider, trusting a given CA or the system roots), the timeouts ([`HttpOptions`]),
//! the `X-Vault-Token` header (marked sensitive, so no HTTP-layer log prints it), the parser
//! of Vault's `{"errors": [...]}` bodies, the cap on every answer's size
//! ([`crate::bounded`]: a hostile pod cannot fill the operator's memory), and the mapping
//! of failures to [`Error`]s that name the pod (operator) or the address (jobs) and the
//! [`Step`]. Request and answer bodies live in zeroizing buffers, because some carry
//! shares, tokens or JWTs.
//!
//! Calls are plain reqwest requests with typed bodies: the request bodies and answer
//! parsers in [`super::wire`] serve this transport and the exec one alike.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, TryStream, TryStreamExt};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::wire;
use crate::bounded::{self, CappedRead};
use crate::error::{Error, Result, Step};
use crate::node::{Health, LeaderStatus, NodeEndpoint, PodName, TokenInfo};
use crate::secret::{ExposeSecret, SecretSlice, SecretString, Token, secret_bytes};

/// What kind of request is sent: it decides the deadline and the content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// A JSON call within [`HttpOptions::request_timeout`].
    Request,
    /// A JSON call without an overall deadline (`sys/init` only).
    None,
    /// A snapshot stream: no overall deadline (the stall timeout fails a hung server).
    Stream,
}

/// Timeouts of a Vault HTTP client: the one place they are chosen.
#[derive(Clone, Copy, Debug)]
pub struct HttpOptions {
    /// How long to wait for a TCP + TLS connection.
    pub connect_timeout: Duration,
    /// How long a whole JSON call may take.
    pub request_timeout: Duration,
    /// How long a read may stall. Snapshot streams have no overall limit (a large snapshot
    /// takes as long as it takes), so this is what fails a hung server instead of hanging.
    pub stall_timeout: Duration,
}

impl Default for HttpOptions {
    /// The operator's: a pod that does not answer quickly is unreachable for this pass.
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(30),
        }
    }
}

impl HttpOptions {
    /// The jobs' (backup, restore, metrics token): a run may wait longer for a busy server
    /// than a reconcile pass should.
    pub fn job() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(120),
        }
    }
}

/// A rustls client configuration with the ring provider (named explicitly, so no
/// process-wide default is needed), trusting every certificate in `ca_pem` or, when it is
/// `None`, the system's roots. Errors name the input as "Vault CA certificate"; a caller
/// with a flag for it renames it with [`Error::in_field`].
pub fn tls_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig> {
    const FIELD: &str = "Vault CA certificate";
    const FIX: &str = "give the CA that signed Vault's certificate (the cluster CA) in PEM form";
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| Error::invalid(FIELD, format!("not valid PEM: {e}"), FIX))?;
                roots.add(cert).map_err(|e| {
                    Error::invalid(FIELD, format!("not a usable CA certificate: {e}"), FIX)
                })?;
            }
            if roots.is_empty() {
                return Err(Error::invalid(
                    FIELD,
                    "no certificate found (expected PEM \"BEGIN CERTIFICATE\" blocks)",
                    FIX,
                ));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A malformed system root is skipped, as browsers do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(Error::invalid(
                    FIELD,
                    "none given and the system has no CA certificates",
                    FIX,
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid("TLS", e.to_string(), "report this as a bug"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Who a client talks to, for the errors it returns: the operator asks pods by name, a job
/// asks the address it was given.
#[derive(Clone, Debug)]
enum Peer {
    Pod(PodName),
    Address,
}

/// An answer: the status and the body, held in a zeroizing buffer.
pub(super) struct Reply {
    status: u16,
    pub(super) body: SecretSlice<u8>,
}

impl Reply {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A client for one Vault/OpenBao server.
#[derive(Clone)]
pub struct VaultHttp {
    http: reqwest::Client,
    base: String,
    peer: Peer,
    tls: Arc<rustls::ClientConfig>,
    options: HttpOptions,
    /// A pod's DNS name and the address it resolves to, for a client built again (the
    /// one init uses, without deadlines).
    route: Option<(String, std::net::SocketAddr)>,
}

impl std::fmt::Debug for VaultHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultHttp")
            .field("addr", &self.base)
            .finish_non_exhaustive()
    }
}

impl VaultHttp {
    /// A client for `addr` (e.g. `https://vault-active.vault.svc:8200`). Errors name the
    /// input as "Vault address"; see [`Error::in_field`].
    pub fn new(addr: &str, tls: Arc<rustls::ClientConfig>, options: HttpOptions) -> Result<Self> {
        let base = addr.trim_end_matches('/').to_owned();
        let fix = "give an address such as https://vault-active.vault.svc:8200";
        let url = reqwest::Url::parse(&base).map_err(|e| {
            Error::invalid("Vault address", format!("{base:?} is not a URL ({e})"), fix)
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Error::invalid(
                "Vault address",
                format!("{base:?} does not start with https:// (or http:// for a dev server)"),
                fix,
            ));
        }
        let http = Self::builder(&tls, options)
            .build()
            .map_err(|e| Error::invalid("Vault address", error_chain(&e), fix))?;
        Ok(VaultHttp {
            http,
            base,
            peer: Peer::Address,
            tls,
            options,
            route: None,
        })
    }

    /// A client for a pod: it connects to the pod address and verifies the certificate for
    /// the pod's DNS name, so no DNS lookup is needed and no check is skipped.
    pub fn for_pod(
        pod: PodName,
        endpoint: &NodeEndpoint,
        tls: Arc<rustls::ClientConfig>,
        options: HttpOptions,
    ) -> Result<Self> {
        let is_ip = endpoint.server_name.parse::<std::net::IpAddr>().is_ok();
        let host = if is_ip {
            endpoint.address.to_string()
        } else {
            format!("{}:{}", endpoint.server_name, endpoint.address.port())
        };
        let route = (!is_ip).then(|| (endpoint.server_name.clone(), endpoint.address));
        let http = Self::pod_builder(&tls, options, route.as_ref())
            .read_timeout(options.stall_timeout)
            .build()
            .map_err(|e| Error::Unreachable {
                pod: pod.clone(),
                step: Step::ClientSetup,
                reason: format!("cannot build the HTTP client: {}", error_chain(&e)),
            })?;
        Ok(VaultHttp {
            http,
            base: format!("https://{host}"),
            peer: Peer::Pod(pod),
            tls,
            options,
            route,
        })
    }

    fn pod_builder(
        tls: &rustls::ClientConfig,
        options: HttpOptions,
        route: Option<&(String, std::net::SocketAddr)>,
    ) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .connect_timeout(options.connect_timeout)
            .no_proxy()
            .https_only(true);
        if let Some((name, address)) = route {
            builder = builder.resolve(name, *address);
        }
        builder
    }

    fn builder(tls: &rustls::ClientConfig, options: HttpOptions) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.stall_timeout)
    }

    /// `PUT sys/init` (pods only): the answer's bytes, unread, with no deadline but the
    /// connect timeout. A slow server's answer is the only copy of the keys, so neither a
    /// request timeout nor a stalled read may discard it; the client is built for this one
    /// call.
    pub(super) async fn init(&self, body: &Value) -> Result<SecretSlice<u8>> {
        let step = Step::Init;
        let Peer::Pod(pod) = &self.peer else {
            return Err(Error::invalid(
                "init",
                "only a pod's client initializes",
                "report this as a bug",
            ));
        };
        let patient = Self::pod_builder(&self.tls, self.options, self.route.as_ref())
            .build()
            .map_err(|e| Error::Unreachable {
                pod: pod.clone(),
                step: Step::ClientSetup,
                reason: format!("cannot build the HTTP client: {}", error_chain(&e)),
            })?;
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let response = self
            .send(
                &patient,
                step,
                Method::PUT,
                "sys/init",
                None,
                Some(reqwest::Body::from(bytes)),
                Deadline::None,
            )
            .await?;
        let status = response.status().as_u16();
        let reply = Reply {
            status,
            body: secret_bytes(self.capped_body(step, response).await?),
        };
        if reply.is_success() {
            Ok(reply.body)
        } else {
            Err(self.refused(step, &reply))
        }
    }

    /// A client for another server of the same cluster (same CA, same timeouts).
    pub fn at(&self, addr: &str) -> Result<Self> {
        Self::new(addr, Arc::clone(&self.tls), self.options)
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, step: Step, reason: String) -> Error {
        match &self.peer {
            Peer::Pod(pod) => Error::Unreachable {
                pod: pod.clone(),
                step,
                reason,
            },
            Peer::Address => Error::VaultUnreachable {
                addr: self.base.clone(),
                step,
                reason,
            },
        }
    }

    fn unexpected(&self, step: Step, reason: String) -> Error {
        match &self.peer {
            Peer::Pod(pod) => Error::UnexpectedResponse {
                pod: pod.clone(),
                step,
                reason,
            },
            Peer::Address => Error::VaultUnexpected {
                addr: self.base.clone(),
                step,
                reason,
            },
        }
    }

    fn refused(&self, step: Step, reply: &Reply) -> Error {
        let message = error_text(reply.body.expose_secret());
        match &self.peer {
            Peer::Pod(pod) if reply.status == 403 => Error::PermissionDenied {
                pod: pod.clone(),
                step,
            },
            Peer::Pod(pod) => Error::Api {
                pod: pod.clone(),
                step,
                status: reply.status,
                message,
            },
            Peer::Address => Error::VaultRefused {
                addr: self.base.clone(),
                step,
                status: reply.status,
                hint: refusal_hint(step, reply.status),
                message,
            },
        }
    }

    pub(super) fn decode<T: DeserializeOwned>(&self, step: Step, reply: &Reply) -> Result<T> {
        // serde_json's errors name a line and column, never the text, so they are safe.
        serde_json::from_slice(reply.body.expose_secret())
            .map_err(|e| self.unexpected(step, format!("the answer is not the expected JSON: {e}")))
    }

    /// Sends one request: the token in a sensitive header, the body from a zeroizing
    /// buffer, the JSON-call timeout unless the body streams.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        http: &reqwest::Client,
        step: Step,
        method: Method,
        path: &str,
        token: Option<&Token>,
        body: Option<reqwest::Body>,
        deadline: Deadline,
    ) -> Result<reqwest::Response> {
        let mut request = http.request(
            method,
            format!("{}/v1/{}", self.base, path.trim_start_matches('/')),
        );
        if let Some(token) = token {
            let mut value =
                HeaderValue::from_str(token.expose_secret()).map_err(|_| Error::NoToken {
                    step,
                    reason: "the token has characters an HTTP header cannot carry".into(),
                })?;
            // Sensitive headers are left out of reqwest's and hyper's Debug output.
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        if deadline == Deadline::Request {
            request = request.timeout(self.options.request_timeout);
        }
        if body.is_some() && deadline != Deadline::Stream {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        request
            .send()
            .await
            .map_err(|e| self.unreachable(step, error_chain(&e)))
    }

    /// A JSON call; the answer comes back in a zeroizing buffer. The request bytes belong
    /// to reqwest once sent (it does not wipe them), so callers drop the `Value` holding a
    /// secret right after the call.
    async fn exchange(
        &self,
        step: Step,
        method: Method,
        path: &str,
        token: Option<&Token>,
        body: Option<&Value>,
    ) -> Result<Reply> {
        // Serializing a `Value` cannot fail (all keys are strings).
        let body =
            body.map(|value| reqwest::Body::from(serde_json::to_vec(value).unwrap_or_default()));
        let response = self
            .send(
                &self.http,
                step,
                method,
                path,
                token,
                body,
                Deadline::Request,
            )
            .await?;
        let status = response.status().as_u16();
        let body = self.capped_body(step, response).await?;
        Ok(Reply {
            status,
            body: secret_bytes(body),
        })
    }

    /// The body of an answer, read in chunks up to [`bounded::VAULT_API_ANSWER`]: a
    /// server announcing or sending more is refused without the rest being read.
    async fn capped_body(&self, step: Step, response: reqwest::Response) -> Result<Vec<u8>> {
        let declared = response.content_length();
        bounded::collect_to_limit(response.bytes_stream(), declared, bounded::VAULT_API_ANSWER)
            .await
            .map_err(|e| match e {
                CappedRead::TooLarge(_) => {
                    let error = self.unexpected(step, e.to_string());
                    // Callers may only see "unreachable"; this says why.
                    tracing::warn!(%error, "an answer passed its cap");
                    error
                }
                CappedRead::Failed(e) => self.unreachable(step, error_chain(&e)),
            })
    }

    /// A call that must succeed, answering its body.
    pub(super) async fn call(
        &self,
        step: Step,
        method: Method,
        path: &str,
        token: Option<&Token>,
        body: Option<&Value>,
    ) -> Result<Reply> {
        let reply = self.exchange(step, method, path, token, body).await?;
        if reply.is_success() {
            Ok(reply)
        } else {
            Err(self.refused(step, &reply))
        }
    }

    /// A read whose answer is `{"data": …}`: the data, or `None` for 404 (nothing there).
    pub(super) async fn read_data(
        &self,
        step: Step,
        path: &str,
        token: Option<&Token>,
    ) -> Result<Option<Value>> {
        let reply = self.exchange(step, Method::GET, path, token, None).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        if !reply.is_success() {
            return Err(self.refused(step, &reply));
        }
        #[derive(Deserialize)]
        struct Envelope {
            #[serde(default)]
            data: Value,
        }
        self.decode::<Envelope>(step, &reply).map(|e| Some(e.data))
    }

    /// A read that must find something.
    pub(super) async fn required_data(
        &self,
        step: Step,
        path: &str,
        token: &Token,
    ) -> Result<Value> {
        self.read_data(step, path, Some(token))
            .await?
            .ok_or_else(|| self.unexpected(step, format!("{path} answered 404")))
    }

    /// A write whose answer does not matter.
    pub(super) async fn write(
        &self,
        step: Step,
        path: &str,
        token: &Token,
        body: Option<&Value>,
    ) -> Result<()> {
        self.call(step, Method::POST, path, Some(token), body)
            .await
            .map(|_| ())
    }

    /// `sys/health`, with every state answered (standby, sealed, uninitialized).
    pub async fn health(&self) -> Result<Health> {
        let path =
            "sys/health?standbycode=200&performancestandbycode=200&sealedcode=200&uninitcode=200";
        let reply = self
            .call(Step::Health, Method::GET, path, None, None)
            .await?;
        self.decode(Step::Health, &reply)
    }

    /// `sys/leader` (unauthenticated).
    pub async fn leader(&self) -> Result<LeaderStatus> {
        let reply = self
            .call(Step::Leader, Method::GET, "sys/leader", None, None)
            .await?;
        self.decode(Step::Leader, &reply)
    }

    /// `auth/<mount>/login` with a service-account JWT; answers the client token.
    pub async fn kubernetes_login(
        &self,
        mount: &str,
        role: &str,
        jwt: &SecretString,
    ) -> Result<Token> {
        let mount = mount.trim_matches('/');
        let body = json!({ "role": role, "jwt": jwt.expose_secret() });
        let reply = self
            .exchange(
                Step::KubernetesLogin,
                Method::POST,
                &format!("auth/{mount}/login"),
                None,
                Some(&body),
            )
            .await?;
        drop(body);
        if !reply.is_success() {
            return Err(match self.peer {
                Peer::Pod(_) => self.refused(Step::KubernetesLogin, &reply),
                Peer::Address => {
                    let message = error_text(reply.body.expose_secret());
                    Error::LoginRefused {
                        addr: self.base.clone(),
                        mount: mount.to_owned(),
                        role: role.to_owned(),
                        status: reply.status,
                        hint: login_hint(reply.status, &message),
                        message,
                    }
                }
            });
        }
        wire::client_token(reply.body.expose_secret())
            .map_err(|reason| self.unexpected(Step::KubernetesLogin, reason))
    }

    /// `auth/token/lookup-self`.
    pub async fn lookup_self(&self, token: &Token) -> Result<TokenInfo> {
        let reply = self
            .call(
                Step::TokenLookup,
                Method::GET,
                "auth/token/lookup-self",
                Some(token),
                None,
            )
            .await?;
        self.decode::<Data<TokenInfo>>(Step::TokenLookup, &reply)
            .map(|d| d.data)
    }

    /// Whether `token` is a root token. A token that may not look itself up (no default
    /// policy) is not root: root may do everything.
    pub async fn is_root_token(&self, token: &Token) -> Result<bool> {
        match self.lookup_self(token).await {
            Ok(info) => Ok(info.is_root()),
            Err(Error::PermissionDenied { .. } | Error::VaultRefused { status: 403, .. }) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// `auth/token/revoke-self`: revokes the token used.
    pub async fn revoke_self(&self, token: &Token) -> Result<()> {
        self.write(Step::TokenRevoke, "auth/token/revoke-self", token, None)
            .await
    }

    /// `auth/token/lookup` of another token, by value (in the body, never in the URL):
    /// `None` when Vault does not know it (it lapsed or was revoked).
    pub async fn lookup_token(&self, token: &Token, subject: &Token) -> Result<Option<TokenInfo>> {
        let body = json!({ "token": subject.expose_secret() });
        let reply = self
            .exchange(
                Step::TokenLookup,
                Method::POST,
                "auth/token/lookup",
                Some(token),
                Some(&body),
            )
            .await?;
        drop(body);
        if reply.is_success() {
            return self
                .decode::<Data<TokenInfo>>(Step::TokenLookup, &reply)
                .map(|d| Some(d.data));
        }
        if is_unknown_token(reply.status, &error_text(reply.body.expose_secret())) {
            return Ok(None);
        }
        Err(self.refused(Step::TokenLookup, &reply))
    }

    /// `auth/token/renew` of another token, by value; answers the new TTL in seconds.
    pub async fn renew_token(
        &self,
        token: &Token,
        subject: &Token,
        increment: Duration,
    ) -> Result<u64> {
        let body = json!({
            "token": subject.expose_secret(),
            "increment": format!("{}s", increment.as_secs()),
        });
        let reply = self
            .call(
                Step::TokenRenew,
                Method::POST,
                "auth/token/renew",
                Some(token),
                Some(&body),
            )
            .await?;
        drop(body);
        let answer: AuthAnswer = self.decode(Step::TokenRenew, &reply)?;
        answer
            .auth
            .map(|a| a.lease_duration)
            .filter(|d| *d > 0)
            .ok_or_else(|| self.unexpected(Step::TokenRenew, "the answer has no lease".into()))
    }

    /// `auth/token/create/<role>`: a new token from a token role, with `request`'s fields.
    pub async fn create_token(
        &self,
        token: &Token,
        role: &str,
        request: &TokenRequest,
    ) -> Result<IssuedToken> {
        let body = json!({
            "policies": request.policies,
            "no_default_policy": request.no_default_policy,
            "display_name": request.display_name,
            "meta": request.meta,
        });
        let reply = self
            .call(
                Step::TokenCreate,
                Method::POST,
                &format!("auth/token/create/{role}"),
                Some(token),
                Some(&body),
            )
            .await?;
        let answer: AuthAnswer = self.decode(Step::TokenCreate, &reply)?;
        let ttl_seconds = answer.auth.map(|a| a.lease_duration).unwrap_or_default();
        let token = wire::client_token(reply.body.expose_secret())
            .map_err(|reason| self.unexpected(Step::TokenCreate, reason))?;
        Ok(IssuedToken { token, ttl_seconds })
    }

    /// Streams the raft snapshot out (`GET sys/storage/raft/snapshot`).
    ///
    /// The stream fails (rather than ending early) if the connection breaks, so a cut
    /// snapshot is never mistaken for a whole one. Memory stays at the chunks in flight.
    pub async fn snapshot(
        &self,
        token: &Token,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + Unpin + 'static> {
        let step = Step::Snapshot;
        let path = "sys/storage/raft/snapshot";
        let response = self
            .send(
                &self.http,
                step,
                Method::GET,
                path,
                Some(token),
                None,
                Deadline::Stream,
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.refused_response(step, response).await);
        }
        let client = self.clone();
        Ok(Box::pin(response.bytes_stream().map_err(move |e| {
            client.unreachable(step, format!("the stream broke: {}", error_chain(&e)))
        })))
    }

    /// Restores a snapshot, streaming it in (`POST sys/storage/raft/snapshot`, or
    /// `snapshot-force` when `force`: for a snapshot of another cluster).
    pub async fn restore_snapshot<S>(&self, token: &Token, snapshot: S, force: bool) -> Result<()>
    where
        S: TryStream + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Bytes: From<S::Ok>,
    {
        let step = Step::SnapshotRestore;
        let path = if force {
            "sys/storage/raft/snapshot-force"
        } else {
            "sys/storage/raft/snapshot"
        };
        let body = reqwest::Body::wrap_stream(snapshot);
        let response = self
            .send(
                &self.http,
                step,
                Method::POST,
                path,
                Some(token),
                Some(body),
                Deadline::Stream,
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.refused_response(step, response).await);
        }
        Ok(())
    }

    async fn refused_response(&self, step: Step, response: reqwest::Response) -> Error {
        let status = response.status().as_u16();
        match self.capped_body(step, response).await {
            Ok(body) => self.refused(
                step,
                &Reply {
                    status,
                    body: secret_bytes(body),
                },
            ),
            Err(e) => e,
        }
    }
}

/// What a new token from a token role carries (see [`VaultHttp::create_token`]).
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// Policies on the token (within the role's allowed policies).
    pub policies: Vec<String>,
    /// Leave out the `default` policy.
    pub no_default_policy: bool,
    /// Name in Vault's audit log.
    pub display_name: String,
    /// Metadata on the token.
    pub meta: BTreeMap<String, String>,
}

/// A token just created, and how long it lives unless renewed.
#[derive(Debug)]
pub struct IssuedToken {
    /// The token.
    pub token: Token,
    /// Seconds it lives unless renewed.
    pub ttl_seconds: u64,
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

// Only the lease; the token in a create answer is read separately, into its secret type.
#[derive(Deserialize)]
struct AuthAnswer {
    auth: Option<LeaseWire>,
}

#[derive(Deserialize)]
struct LeaseWire {
    #[serde(default)]
    lease_duration: u64,
}

/// Vault's `errors` list joined with "; ", or a short excerpt of a body that has none (a
/// proxy's error page). Vault does not echo credentials in its errors.
pub fn error_text(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(parsed) if !parsed.errors.is_empty() => parsed.errors.join("; "),
        _ => {
            let text = String::from_utf8_lossy(body);
            let trimmed = text.trim();
            if trimmed.is_empty() {
                "(no error message)".into()
            } else {
                trimmed.chars().take(300).collect()
            }
        }
    }
}

/// Whether a refused token lookup means "Vault does not know this token (any more)": an
/// unknown token is answered with 403 "bad token" (older servers: 400 "invalid token").
/// A 403 "permission denied" is the caller's own policy and is an error.
fn is_unknown_token(status: u16, message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    matches!(status, 400 | 403 | 404)
        && (message.contains("bad token") || message.contains("invalid token"))
}

/// What to check when a job's call was refused.
fn refusal_hint(step: Step, status: u16) -> &'static str {
    match (step, status) {
        (_, 503) => "the node is sealed or in standby",
        (Step::Snapshot | Step::SnapshotRestore, 403) => {
            "the token's policy must grant this path (backup: read on sys/storage/raft/snapshot; restore: update on sys/storage/raft/snapshot and snapshot-force)"
        }
        (Step::TokenLookup, 403) => {
            "the token's policy must grant update on auth/token/lookup (bootstrap writes it)"
        }
        (Step::TokenRenew, 403) => {
            "the token's policy must grant update on auth/token/renew (bootstrap writes it)"
        }
        (Step::TokenCreate, _) => {
            "the token role must exist and the token's policy must grant update on auth/token/create/<role> (bootstrap writes both)"
        }
        (_, 403) => "the token lacks permission or has expired",
        _ => "check Vault's server log",
    }
}

/// What to check when a Kubernetes auth login was refused.
fn login_hint(status: u16, message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    if status == 404 || lower.contains("no handler for route") {
        "Kubernetes auth is not enabled at that mount: enable it or fix --auth-mount"
    } else if lower.contains("invalid role name") || lower.contains("role not found") {
        "the role does not exist: create it or fix --auth-role"
    } else if status == 403
        || lower.contains("permission denied")
        || lower.contains("not authorized")
    {
        "the service account or namespace is not bound to this role (bound_service_account_names / bound_service_account_namespaces), or the JWT was rejected by the TokenReview"
    } else if status >= 500 {
        "Vault could not review the token with the Kubernetes API: check auth/<mount>/config and Vault's access to TokenReview"
    } else {
        "check the role and Vault's server log"
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login_refusal(status: u16, body: &str) -> Error {
        let message = error_text(body.as_bytes());
        Error::LoginRefused {
            addr: "https://vault-active:8200".into(),
            mount: "kubernetes".into(),
            role: "vault-backup".into(),
            status,
            hint: login_hint(status, &message),
            message,
        }
    }

    #[test]
    fn login_failures_map_to_an_actionable_hint() {
        let table: Vec<(u16, &str, &str)> = vec![
            (
                400,
                r#"{"errors":["invalid role name \"vault-backup\""]}"#,
                "--auth-role",
            ),
            (
                403,
                r#"{"errors":["permission denied"]}"#,
                "bound_service_account_names",
            ),
            (
                404,
                r#"{"errors":["no handler for route \"auth/kubernetes/login\""]}"#,
                "--auth-mount",
            ),
            (
                500,
                r#"{"errors":["lookup failed: service account unauthorized"]}"#,
                "TokenReview",
            ),
            (502, "<html>bad gateway</html>", "TokenReview"),
            (400, "", "server log"),
        ];
        for (status, body, hint) in table {
            let text = login_refusal(status, body).to_string();
            assert!(text.contains(hint), "{status} {body}: {text}");
            assert!(
                text.contains("vault-backup") && text.contains(&status.to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn error_text_joins_the_errors_list_or_quotes_the_body() {
        assert_eq!(error_text(br#"{"errors":["a","b"]}"#), "a; b");
        assert_eq!(error_text(b""), "(no error message)");
        assert_eq!(error_text(b"plain text\n"), "plain text");
    }

    #[test]
    fn only_unknown_token_answers_count_as_lapsed() {
        assert!(is_unknown_token(403, "bad token"));
        assert!(is_unknown_token(400, "invalid token"));
        assert!(!is_unknown_token(403, "permission denied"));
        assert!(!is_unknown_token(500, "bad token"));
        assert!(!is_unknown_token(503, "Vault is sealed"));
    }

    #[test]
    fn bad_addresses_and_ca_files_are_refused_with_the_fix() {
        let tls = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        );
        for bad in ["vault:8200", "ftp://vault:8200", ""] {
            let err = VaultHttp::new(bad, Arc::clone(&tls), HttpOptions::job())
                .unwrap_err()
                .in_field("--vault-addr");
            assert!(err.to_string().contains("--vault-addr"), "{bad}: {err}");
            assert!(err.to_string().contains("https://"), "{bad}: {err}");
        }
        let err = tls_config(Some(b"not a certificate")).unwrap_err();
        assert!(err.to_string().contains("PEM"), "{err}");
    }

    #[test]
    fn token_requests_and_answers_never_print_a_token() {
        let issued = IssuedToken {
            token: Token::new("hvs.secret-token".into()),
            ttl_seconds: 60,
        };
        assert!(!format!("{issued:?}").contains("secret-token"));
    }
}
