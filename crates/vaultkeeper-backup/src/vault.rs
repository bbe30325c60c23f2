//! The few Vault HTTP calls backup and restore need, over rustls (ring) verifying the
//! cluster CA.
//!
//! Tokens travel only in the `X-Vault-Token` header, marked sensitive so no HTTP-layer log
//! prints it. The request shapes and the error mapping of Kubernetes login are plain
//! functions, tested without a server.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use reqwest::header::{HeaderMap, HeaderValue};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, Result};
use vaultkeeper_vault::secret::{ExposeSecret, SecretString, secret_string};

/// How long to wait for a TCP + TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read may stall (a hung server fails the run instead of hanging the Job).
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout of the small JSON calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A rustls client configuration with the ring provider, trusting `ca_pem` (all
/// certificates in it) or, when absent, the system's roots.
pub fn tls_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig> {
    let tls_error = |reason: String| Error::VaultClient {
        addr: String::from("(any)"),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| tls_error(format!("--vault-ca-cert is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(tls_error(
                    "--vault-ca-cert holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)"
                        .into(),
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| tls_error(format!("--vault-ca-cert: {e}")))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A malformed system root is skipped, as browsers do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(tls_error(
                    "no --vault-ca-cert given and the system has no CA certificates".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// `GET sys/health`, the parts we use.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Health {
    /// Whether the cluster is initialized.
    pub initialized: bool,
    /// Whether this node is sealed.
    pub sealed: bool,
    /// Whether this node is a standby.
    #[serde(default)]
    pub standby: bool,
    /// Server version.
    #[serde(default)]
    pub version: Option<String>,
    /// Cluster id (absent while sealed on some versions).
    #[serde(default)]
    pub cluster_id: Option<String>,
}

/// `GET sys/leader`, the parts we use.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Leader {
    /// Whether the node answering is the active node.
    #[serde(default)]
    pub is_self: bool,
    /// API address of the active node (empty when there is none).
    #[serde(default)]
    pub leader_address: String,
    /// The committed raft index (raft storage only).
    #[serde(default)]
    pub raft_committed_index: Option<u64>,
}

/// Which address to take the snapshot from: the node we asked when it is active, else the
/// active node it names. Pure.
pub fn active_node_address(asked: &str, leader: &Leader) -> Result<String> {
    if leader.is_self {
        return Ok(asked.to_owned());
    }
    let named = leader.leader_address.trim_end_matches('/');
    if named.is_empty() {
        return Err(Error::VaultResponse {
            addr: asked.to_owned(),
            operation: "GET sys/leader",
            reason: "no active node is known (no raft leader): wait for the cluster to elect one, or check that it is unsealed".into(),
        });
    }
    Ok(named.to_owned())
}

/// A Kubernetes auth login request.
#[derive(Debug)]
pub struct KubernetesLogin {
    /// Auth mount path (usually `kubernetes`).
    pub mount: String,
    /// Vault role bound to the service account.
    pub role: String,
    /// The service-account JWT (redacted in Debug).
    pub jwt: SecretString,
}

impl KubernetesLogin {
    /// The API path, relative to `/v1/`.
    pub fn path(&self) -> String {
        format!("auth/{}/login", self.mount.trim_matches('/'))
    }

    /// The JSON body. Holds the JWT: send it, never print it.
    pub fn body(&self) -> serde_json::Value {
        json!({ "role": self.role, "jwt": self.jwt.expose_secret() })
    }

    /// The error for a refused login, with what to check. Pure.
    pub fn refused(&self, status: u16, body: &[u8]) -> Error {
        let message = vault_errors(body);
        let lower = message.to_ascii_lowercase();
        let hint = if status == 404 || lower.contains("no handler for route") {
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
        };
        Error::KubernetesLogin {
            mount: self.mount.clone(),
            role: self.role.clone(),
            status,
            message,
            hint,
        }
    }
}

/// Vault's `errors` array joined with "; ", or a short excerpt of the body.
pub fn vault_errors(body: &[u8]) -> String {
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

fn status_hint(operation: &'static str, status: u16) -> String {
    match (operation, status) {
        (_, 503) => "; the node is sealed or in standby".into(),
        (op, 403) if op.contains("snapshot") => {
            "; the token's policy must grant this path (backup: read on sys/storage/raft/snapshot; restore: update on sys/storage/raft/snapshot and snapshot-force)".into()
        }
        (_, 403) => "; the token lacks permission or has expired".into(),
        _ => String::new(),
    }
}

/// A client for one Vault node.
#[derive(Clone)]
pub struct VaultClient {
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    addr: String,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl VaultClient {
    /// A client for `addr` (e.g. `https://vault-active.vault.svc:8200`) trusting `tls`.
    pub fn new(addr: &str, tls: Arc<rustls::ClientConfig>) -> Result<Self> {
        let addr = addr.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&addr).map_err(|e| Error::InvalidArgument {
            field: "--vault-addr",
            reason: format!(
                "{addr:?} is not a URL ({e}); expected e.g. https://vault-active.vault.svc:8200"
            ),
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Error::InvalidArgument {
                field: "--vault-addr",
                reason: format!("{addr:?} must start with https:// (or http:// for a dev server)"),
            });
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| Error::VaultClient {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self { http, tls, addr })
    }

    /// A client for another node of the same cluster (same CA).
    pub fn at(&self, addr: &str) -> Result<Self> {
        Self::new(addr, Arc::clone(&self.tls))
    }

    /// The node's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.addr, path.trim_start_matches('/'))
    }

    fn token_header(token: &SecretString) -> Result<HeaderMap> {
        let mut value =
            HeaderValue::from_str(token.expose_secret()).map_err(|_| Error::InvalidArgument {
                field: "Vault token",
                reason: "it contains characters that cannot be sent in an HTTP header".into(),
            })?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("X-Vault-Token", value);
        Ok(headers)
    }

    fn unreachable(&self, operation: &'static str) -> impl FnOnce(reqwest::Error) -> Error + '_ {
        move |source| Error::VaultUnreachable {
            addr: self.addr.clone(),
            operation,
            source,
        }
    }

    async fn refused(&self, operation: &'static str, response: reqwest::Response) -> Error {
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        Error::VaultStatus {
            addr: self.addr.clone(),
            operation,
            status,
            message: vault_errors(&body),
            hint: status_hint(operation, status),
        }
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        operation: &'static str,
        path: &str,
        accept_any_status: bool,
    ) -> Result<T> {
        let response = self
            .http
            .get(self.url(path))
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(self.unreachable(operation))?;
        if !accept_any_status && !response.status().is_success() {
            return Err(self.refused(operation, response).await);
        }
        let body = response
            .bytes()
            .await
            .map_err(self.unreachable(operation))?;
        serde_json::from_slice(&body).map_err(|e| Error::VaultResponse {
            addr: self.addr.clone(),
            operation,
            reason: e.to_string(),
        })
    }

    /// `GET sys/health` (any status: sealed and standby nodes answer with a body too).
    pub async fn health(&self) -> Result<Health> {
        self.get_json(
            "GET sys/health",
            "sys/health?standbyok=true&perfstandbyok=true",
            true,
        )
        .await
    }

    /// Fails with a clear reason unless the node is initialized and unsealed.
    pub async fn require_unsealed(&self) -> Result<Health> {
        let health = self.health().await?;
        if !health.initialized {
            return Err(Error::VaultNotReady {
                addr: self.addr.clone(),
                state: "not initialized",
                hint: "initialize it first (a restore needs an initialized, unsealed target)",
            });
        }
        if health.sealed {
            return Err(Error::VaultNotReady {
                addr: self.addr.clone(),
                state: "sealed",
                hint: "unseal it first",
            });
        }
        Ok(health)
    }

    /// `GET sys/leader` (unauthenticated).
    pub async fn leader(&self) -> Result<Leader> {
        self.get_json("GET sys/leader", "sys/leader", false).await
    }

    /// Logs in with Kubernetes auth; returns the client token.
    pub async fn login_kubernetes(&self, login: &KubernetesLogin) -> Result<SecretString> {
        const OPERATION: &str = "POST auth/<mount>/login";
        let response = self
            .http
            .post(self.url(&login.path()))
            .timeout(CALL_TIMEOUT)
            .json(&login.body())
            .send()
            .await
            .map_err(self.unreachable(OPERATION))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(self.unreachable(OPERATION))?;
        if !(200..300).contains(&status) {
            return Err(login.refused(status, &body));
        }
        parse_login_token(&body).ok_or_else(|| Error::VaultResponse {
            addr: self.addr.clone(),
            operation: OPERATION,
            reason: "the answer has no auth.client_token".into(),
        })
    }

    /// Whether `token` is a root token (policy `root`). A token that may not look itself
    /// up (no default policy) is not root: root may read everything.
    pub async fn is_root_token(&self, token: &SecretString) -> Result<bool> {
        const OPERATION: &str = "GET auth/token/lookup-self";
        #[derive(Deserialize)]
        struct Data {
            #[serde(default)]
            policies: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Lookup {
            data: Data,
        }
        let response = self
            .http
            .get(self.url("auth/token/lookup-self"))
            .headers(Self::token_header(token)?)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(self.unreachable(OPERATION))?;
        if response.status().as_u16() == 403 {
            return Ok(false);
        }
        if !response.status().is_success() {
            return Err(self.refused(OPERATION, response).await);
        }
        let body = response
            .bytes()
            .await
            .map_err(self.unreachable(OPERATION))?;
        let lookup: Lookup = serde_json::from_slice(&body).map_err(|e| Error::VaultResponse {
            addr: self.addr.clone(),
            operation: OPERATION,
            reason: e.to_string(),
        })?;
        Ok(lookup.data.policies.iter().any(|p| p == "root"))
    }

    /// Revokes the token (best effort hygiene for tokens we obtained by login).
    pub async fn revoke_self(&self, token: &SecretString) -> Result<()> {
        const OPERATION: &str = "POST auth/token/revoke-self";
        let response = self
            .http
            .post(self.url("auth/token/revoke-self"))
            .headers(Self::token_header(token)?)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(self.unreachable(OPERATION))?;
        if !response.status().is_success() {
            return Err(self.refused(OPERATION, response).await);
        }
        Ok(())
    }

    /// Starts streaming the raft snapshot (`GET sys/storage/raft/snapshot`).
    ///
    /// The stream fails (rather than ending early) if the connection breaks, so a cut
    /// snapshot is never mistaken for a whole one.
    pub async fn snapshot(
        &self,
        token: &SecretString,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + Unpin + 'static> {
        const OPERATION: &str = "GET sys/storage/raft/snapshot";
        let response = self
            .http
            .get(self.url("sys/storage/raft/snapshot"))
            .headers(Self::token_header(token)?)
            .send()
            .await
            .map_err(self.unreachable(OPERATION))?;
        if !response.status().is_success() {
            return Err(self.refused(OPERATION, response).await);
        }
        let addr = self.addr.clone();
        Ok(Box::pin(response.bytes_stream().map_err(move |source| {
            Error::SnapshotStream {
                addr: addr.clone(),
                source,
            }
        })))
    }

    /// Restores a snapshot (`POST sys/storage/raft/snapshot`, or `snapshot-force` when
    /// `force`), streaming `body`.
    pub async fn restore_snapshot(
        &self,
        token: &SecretString,
        body: reqwest::Body,
        force: bool,
    ) -> Result<()> {
        let (path, operation) = if force {
            (
                "sys/storage/raft/snapshot-force",
                "POST sys/storage/raft/snapshot-force",
            )
        } else {
            (
                "sys/storage/raft/snapshot",
                "POST sys/storage/raft/snapshot",
            )
        };
        let response = self
            .http
            .post(self.url(path))
            .headers(Self::token_header(token)?)
            .body(body)
            .send()
            .await
            .map_err(self.unreachable(operation))?;
        if !response.status().is_success() {
            return Err(self.refused(operation, response).await);
        }
        Ok(())
    }
}

/// `auth.client_token` of a login answer.
pub fn parse_login_token(body: &[u8]) -> Option<SecretString> {
    #[derive(Deserialize)]
    struct Auth {
        client_token: String,
    }
    #[derive(Deserialize)]
    struct Login {
        auth: Option<Auth>,
    }
    let login: Login = serde_json::from_slice(body).ok()?;
    let token = login.auth?.client_token;
    (!token.is_empty()).then(|| secret_string(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> KubernetesLogin {
        KubernetesLogin {
            mount: "kubernetes".into(),
            role: "vault-backup".into(),
            jwt: secret_string("eyJhbGciOiJSUzI1NiJ9.payload.sig".into()),
        }
    }

    #[test]
    fn login_request_has_the_role_and_jwt_and_debug_hides_the_jwt() {
        let l = login();
        assert_eq!(l.path(), "auth/kubernetes/login");
        assert_eq!(
            l.body(),
            json!({"role": "vault-backup", "jwt": "eyJhbGciOiJSUzI1NiJ9.payload.sig"})
        );
        let custom = KubernetesLogin {
            mount: "/k8s-prod/".into(),
            ..login()
        };
        assert_eq!(custom.path(), "auth/k8s-prod/login");
        assert!(!format!("{l:?}").contains("payload"));
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
            let err = login().refused(status, body.as_bytes());
            let text = err.to_string();
            assert!(text.contains(hint), "{status} {body}: {text}");
            assert!(
                text.contains("vault-backup") && text.contains(&status.to_string()),
                "{text}"
            );
            assert!(!text.contains("payload"), "JWT leaked: {text}");
        }
    }

    #[test]
    fn login_token_is_read_from_auth_client_token() {
        let ok = br#"{"auth":{"client_token":"s.abc","policies":["backup"]}}"#;
        assert_eq!(parse_login_token(ok).unwrap().expose_secret(), "s.abc");
        assert!(parse_login_token(br#"{"auth":null}"#).is_none());
        assert!(parse_login_token(br#"{"auth":{"client_token":""}}"#).is_none());
        assert!(parse_login_token(b"garbage").is_none());
    }

    #[test]
    fn active_node_table() {
        let leader = |is_self, addr: &str| Leader {
            is_self,
            leader_address: addr.into(),
            raft_committed_index: Some(7),
        };
        let asked = "https://vault-active:8200";
        assert_eq!(
            active_node_address(asked, &leader(true, "https://vault-1:8200")).unwrap(),
            asked
        );
        assert_eq!(
            active_node_address(asked, &leader(false, "https://vault-1:8200/")).unwrap(),
            "https://vault-1:8200"
        );
        let err = active_node_address(asked, &leader(false, "")).unwrap_err();
        assert!(err.to_string().contains("no active node"), "{err}");
    }

    #[test]
    fn vault_errors_joins_the_errors_array() {
        assert_eq!(vault_errors(br#"{"errors":["a","b"]}"#), "a; b");
        assert_eq!(vault_errors(b""), "(no error message)");
        assert_eq!(vault_errors(b"plain text\n"), "plain text");
    }

    #[test]
    fn bad_vault_addresses_name_the_flag() {
        let tls = Arc::new(tls_config(None).unwrap_or_else(|_| {
            // A machine without system roots still lets us test address validation.
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
        }));
        for bad in ["vault:8200", "ftp://vault:8200", ""] {
            let err = VaultClient::new(bad, Arc::clone(&tls)).unwrap_err();
            assert!(err.to_string().contains("--vault-addr"), "{bad}: {err}");
        }
    }
}
