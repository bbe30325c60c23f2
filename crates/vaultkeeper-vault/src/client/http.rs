//! The HTTP transport: the API on each pod over HTTPS, verifying the cluster CA with
//! rustls (ring provider, configured explicitly, so no process-wide default is needed).
//!
//! vaultrs makes the calls it covers (unseal, policies, auth mounts, Kubernetes
//! auth config/roles/login, token role writes, token revoke). A thin typed call (reqwest plus a
//! private response struct) makes the rest: seal status, init status, leader, raft
//! configuration, autopilot state, remove-peer, step-down (vaultrs 0.8 has no endpoint for
//! them), health (vaultrs's answer type requires a field OpenBao omits), token role reads (vaultrs's answer lacks `token_no_default_policy`), init
//! (vaultrs's init answer has no recovery-key fields, and one code path for
//! both seal kinds is the safer one) and token lookup (its answer repeats the token,
//! which vaultrs would keep in a plain `String`). `docs/vault-client.md` has the table.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use vaultrs::api::EndpointMiddleware;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroize;

use super::{KubernetesAuthConfig, KubernetesRole, NodeClient, TokenRole, Transport, wire};
use crate::error::{Error, Result, Step};
use crate::keys::InitKeys;
use crate::node::{
    AutopilotState, Health, InitRequest, LeaderStatus, NodeEndpoint, PodName, RaftConfiguration,
    SealStatus, TokenInfo, UnsealProgress,
};
use crate::secret::{ExposeSecret, KeyShare, SecretSlice, SecretString, Token, secret_bytes};

/// Timeouts for the HTTP transport.
#[derive(Clone, Copy, Debug)]
pub struct HttpOptions {
    /// How long to wait for a TCP + TLS connection.
    pub connect_timeout: Duration,
    /// How long a whole request may take.
    pub request_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
struct PodHttp {
    base: String,
    http: reqwest::Client,
}

/// The HTTP transport's node client. Knows an endpoint per pod; pods can be added as the
/// cluster scales.
pub struct HttpNodeClient {
    tls: rustls::ClientConfig,
    options: HttpOptions,
    pods: RwLock<BTreeMap<PodName, PodHttp>>,
}

impl HttpNodeClient {
    /// A client that trusts only the CA certificates in `ca_pem` (the cluster CA).
    pub fn new(ca_pem: &[u8], options: HttpOptions) -> Result<Self> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let mut count = 0;
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| {
                Error::invalid(
                    "tls CA certificate",
                    format!("not valid PEM: {e}"),
                    "give the cluster CA certificate in PEM form",
                )
            })?;
            roots.add(cert).map_err(|e| {
                Error::invalid(
                    "tls CA certificate",
                    format!("not a usable CA certificate: {e}"),
                    "give the cluster CA certificate in PEM form",
                )
            })?;
            count += 1;
        }
        if count == 0 {
            return Err(Error::invalid(
                "tls CA certificate",
                "no certificate found",
                "give the cluster CA certificate in PEM form",
            ));
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid("tls", e.to_string(), "report this as a bug"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(HttpNodeClient {
            tls,
            options,
            pods: RwLock::new(BTreeMap::new()),
        })
    }

    /// Adds (or replaces) the endpoint of a pod.
    pub fn add_pod(&self, pod: PodName, endpoint: &NodeEndpoint) -> Result<()> {
        let is_ip = endpoint.server_name.parse::<std::net::IpAddr>().is_ok();
        let host = if is_ip {
            endpoint.address.to_string()
        } else {
            format!("{}:{}", endpoint.server_name, endpoint.address.port())
        };
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(self.tls.clone())
            .no_proxy()
            .https_only(true)
            .connect_timeout(self.options.connect_timeout)
            .timeout(self.options.request_timeout);
        if !is_ip {
            // Connect to the pod address, verify the certificate for the pod's DNS name.
            builder = builder.resolve(&endpoint.server_name, endpoint.address);
        }
        let http = builder.build().map_err(|e| Error::Unreachable {
            pod: pod.clone(),
            step: Step::ClientSetup,
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
        let entry = PodHttp {
            base: format!("https://{host}"),
            http,
        };
        if let Ok(mut pods) = self.pods.write() {
            pods.insert(pod, entry);
        }
        Ok(())
    }

    fn pod(&self, pod: &PodName, step: Step) -> Result<PodHttp> {
        self.pods
            .read()
            .ok()
            .and_then(|pods| pods.get(pod).cloned())
            .ok_or_else(|| Error::UnknownPod {
                pod: pod.clone(),
                step,
            })
    }

    /// A vaultrs client for one call, carrying `token`. The token strings inside vaultrs
    /// are wiped when the call is over.
    fn vault(&self, pod: &PodName, step: Step, token: Option<&Token>) -> Result<ScopedVault> {
        let target = self.pod(pod, step)?;
        let token = token
            .map(|t| t.expose_secret().to_string())
            .unwrap_or_default();
        // Every field is set, so nothing is read from this process's environment
        // (VAULT_TOKEN, VAULT_CACERT, ...).
        let settings = VaultClientSettingsBuilder::default()
            .address(&target.base)
            .token(token.clone())
            .ca_certs(Vec::new())
            .identity(None)
            .verify(true)
            .timeout(Some(self.options.request_timeout))
            .namespace(None)
            .build()
            .map_err(|e| Error::invalid("node endpoint", e.to_string(), "check the pod address"))?;
        let middle = EndpointMiddleware {
            token,
            version: "v1".into(),
            wrap: None,
            namespace: None,
        };
        Ok(ScopedVault(VaultClient {
            http: rustify::clients::reqwest::Client::new(&target.base, target.http),
            middle,
            settings,
        }))
    }

    /// A thin typed call: `method path` with an optional token and JSON body. `Ok(None)` for
    /// 404; the body comes back in a zeroizing buffer because some answers hold secrets.
    async fn call(
        &self,
        pod: &PodName,
        step: Step,
        method: reqwest::Method,
        path: &str,
        token: Option<&Token>,
        body: Option<SecretSlice<u8>>,
    ) -> Result<Option<SecretSlice<u8>>> {
        let target = self.pod(pod, step)?;
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let mut value =
                HeaderValue::from_str(token.expose_secret()).map_err(|_| Error::NoToken {
                    step,
                    reason: "the token has characters a header cannot carry".into(),
                })?;
            // Sensitive headers are left out of reqwest's and hyper's Debug output.
            value.set_sensitive(true);
            headers.insert("X-Vault-Token", value);
        }
        let mut request = target
            .http
            .request(method, format!("{}/v1/{path}", target.base))
            .headers(headers);
        if let Some(body) = &body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.expose_secret().to_vec());
        }
        let response = request.send().await.map_err(|e| Error::Unreachable {
            pod: pod.clone(),
            step,
            reason: error_chain(&e),
        })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| Error::Unreachable {
            pod: pod.clone(),
            step,
            reason: error_chain(&e),
        })?;
        let bytes = secret_bytes(bytes.to_vec());
        match status {
            200..=299 => Ok(Some(bytes)),
            404 => Ok(None),
            403 => Err(Error::PermissionDenied {
                pod: pod.clone(),
                step,
            }),
            _ => Err(Error::Api {
                pod: pod.clone(),
                step,
                status,
                message: api_errors(&bytes),
            }),
        }
    }

    async fn call_json(
        &self,
        pod: &PodName,
        step: Step,
        method: reqwest::Method,
        path: &str,
        token: Option<&Token>,
    ) -> Result<Value> {
        let bytes = self
            .call(pod, step, method, path, token, None)
            .await?
            .ok_or_else(|| Error::UnexpectedResponse {
                pod: pod.clone(),
                step,
                reason: format!("{path} answered 404"),
            })?;
        serde_json::from_slice(bytes.expose_secret()).map_err(|e| Error::UnexpectedResponse {
            pod: pod.clone(),
            step,
            reason: format!("the answer is not JSON: {e}"),
        })
    }

    async fn call_data(
        &self,
        pod: &PodName,
        step: Step,
        path: &str,
        token: &Token,
    ) -> Result<Value> {
        let mut value = self
            .call_json(pod, step, reqwest::Method::GET, path, Some(token))
            .await?;
        Ok(value
            .get_mut("data")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }
}

/// A vaultrs client that wipes the token copies vaultrs keeps when it goes away.
struct ScopedVault(VaultClient);

impl Drop for ScopedVault {
    fn drop(&mut self) {
        self.0.settings.token.zeroize();
        self.0.middle.token.zeroize();
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

fn api_errors(body: &SecretSlice<u8>) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    match serde_json::from_slice::<Errors>(body.expose_secret()) {
        Ok(e) if !e.errors.is_empty() => e.errors.join("; "),
        _ => "no error details".into(),
    }
}

fn is_not_found(e: &ClientError) -> bool {
    match e {
        ClientError::APIError { code, .. } => *code == 404,
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, .. },
        } => *code == 404,
        _ => false,
    }
}

/// Maps a vaultrs error onto ours. vaultrs errors carry status codes, the server's error
/// list and transport errors; none of them carry request bodies or tokens.
fn from_vaultrs(pod: &PodName, step: Step, e: ClientError) -> Error {
    match e {
        ClientError::APIError { code: 403, .. } => Error::PermissionDenied {
            pod: pod.clone(),
            step,
        },
        ClientError::APIError { code, errors } => Error::Api {
            pod: pod.clone(),
            step,
            status: code,
            message: if errors.is_empty() {
                "no error details".into()
            } else {
                errors.join("; ")
            },
        },
        ClientError::RestClientError { source } => match source {
            rustify::errors::ClientError::ServerResponseError { code: 403, .. } => {
                Error::PermissionDenied {
                    pod: pod.clone(),
                    step,
                }
            }
            rustify::errors::ClientError::ServerResponseError { code, .. } => Error::Api {
                pod: pod.clone(),
                step,
                status: code,
                message: "no error details".into(),
            },
            rustify::errors::ClientError::RequestError { source, .. } => Error::Unreachable {
                pod: pod.clone(),
                step,
                reason: format!("{source:#}"),
            },
            other => Error::UnexpectedResponse {
                pod: pod.clone(),
                step,
                reason: error_chain(&other),
            },
        },
        other => Error::UnexpectedResponse {
            pod: pod.clone(),
            step,
            reason: error_chain(&other),
        },
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(
    pod: &PodName,
    step: Step,
    bytes: &SecretSlice<u8>,
) -> Result<T> {
    serde_json::from_slice(bytes.expose_secret()).map_err(|e| Error::UnexpectedResponse {
        pod: pod.clone(),
        step,
        reason: format!("the answer is not the expected JSON: {e}"),
    })
}

fn json_body(value: &Value) -> SecretSlice<u8> {
    // Serializing a `Value` cannot fail (all keys are strings).
    secret_bytes(serde_json::to_vec(value).unwrap_or_default())
}

#[async_trait]
impl NodeClient for HttpNodeClient {
    fn transport(&self) -> Transport {
        Transport::Http
    }

    async fn health(&self, pod: &PodName) -> Result<Health> {
        // Thin call: vaultrs 0.8's health answer requires `performance_standby`, which
        // OpenBao leaves out.
        let path =
            "sys/health?standbycode=200&performancestandbycode=200&sealedcode=200&uninitcode=200";
        let value = self
            .call_json(pod, Step::Health, reqwest::Method::GET, path, None)
            .await?;
        Health::parse(pod, &value)
    }

    async fn seal_status(&self, pod: &PodName) -> Result<SealStatus> {
        let value = self
            .call_json(
                pod,
                Step::SealStatus,
                reqwest::Method::GET,
                "sys/seal-status",
                None,
            )
            .await?;
        SealStatus::parse(pod, Step::SealStatus, &value)
    }

    async fn init_status(&self, pod: &PodName) -> Result<bool> {
        let value = self
            .call_json(
                pod,
                Step::InitStatus,
                reqwest::Method::GET,
                "sys/init",
                None,
            )
            .await?;
        wire::initialized(pod, &value)
    }

    async fn leader(&self, pod: &PodName) -> Result<LeaderStatus> {
        let value = self
            .call_json(pod, Step::Leader, reqwest::Method::GET, "sys/leader", None)
            .await?;
        LeaderStatus::parse(pod, &value)
    }

    async fn raft_configuration(&self, pod: &PodName, token: &Token) -> Result<RaftConfiguration> {
        let data = self
            .call_data(
                pod,
                Step::RaftConfiguration,
                "sys/storage/raft/configuration",
                token,
            )
            .await?;
        RaftConfiguration::parse(pod, &data)
    }

    async fn autopilot_state(&self, pod: &PodName, token: &Token) -> Result<AutopilotState> {
        let data = self
            .call_data(
                pod,
                Step::AutopilotState,
                "sys/storage/raft/autopilot/state",
                token,
            )
            .await?;
        AutopilotState::parse(pod, &data)
    }

    async fn init(&self, pod: &PodName, request: &InitRequest) -> Result<InitKeys> {
        request.validate()?;
        let body = match *request {
            InitRequest::Shamir { shares, threshold } => {
                json!({ "secret_shares": shares, "secret_threshold": threshold })
            }
            InitRequest::Recovery { shares, threshold } => {
                json!({ "recovery_shares": shares, "recovery_threshold": threshold })
            }
        };
        let bytes = self
            .call(
                pod,
                Step::Init,
                reqwest::Method::PUT,
                "sys/init",
                None,
                Some(json_body(&body)),
            )
            .await?
            .ok_or_else(|| Error::UnexpectedResponse {
                pod: pod.clone(),
                step: Step::Init,
                reason: "sys/init answered 404".into(),
            })?;
        #[derive(Deserialize)]
        struct InitAnswer {
            #[serde(default)]
            keys_base64: Vec<String>,
            #[serde(default)]
            recovery_keys_base64: Vec<String>,
            root_token: String,
        }
        let answer: InitAnswer = parse_body(pod, Step::Init, &bytes)?;
        let shares = match request {
            InitRequest::Shamir { .. } => answer.keys_base64,
            InitRequest::Recovery { .. } => answer.recovery_keys_base64,
        };
        wire::init_keys(pod, request, shares, answer.root_token)
    }

    async fn unseal(&self, pod: &PodName, share: &KeyShare) -> Result<UnsealProgress> {
        let client = self.vault(pod, Step::Unseal, None)?;
        let answer = vaultrs::sys::unseal(
            &client.0,
            Some(share.expose_secret().to_string()),
            None,
            None,
        )
        .await
        .map_err(|e| from_vaultrs(pod, Step::Unseal, e))?;
        Ok(UnsealProgress {
            sealed: answer.sealed,
            threshold: u8::try_from(answer.threshold).unwrap_or(u8::MAX),
            progress: u8::try_from(answer.progress).unwrap_or(u8::MAX),
        })
    }

    async fn unseal_reset(&self, pod: &PodName) -> Result<UnsealProgress> {
        let client = self.vault(pod, Step::UnsealReset, None)?;
        let answer = vaultrs::sys::unseal(&client.0, None, Some(true), None)
            .await
            .map_err(|e| from_vaultrs(pod, Step::UnsealReset, e))?;
        Ok(UnsealProgress {
            sealed: answer.sealed,
            threshold: u8::try_from(answer.threshold).unwrap_or(u8::MAX),
            progress: u8::try_from(answer.progress).unwrap_or(u8::MAX),
        })
    }

    async fn remove_raft_peer(&self, pod: &PodName, node_id: &str, token: &Token) -> Result<()> {
        let body = json!({ "server_id": node_id });
        self.call(
            pod,
            Step::RemovePeer,
            reqwest::Method::POST,
            "sys/storage/raft/remove-peer",
            Some(token),
            Some(json_body(&body)),
        )
        .await
        .map(|_| ())
    }

    async fn step_down(&self, pod: &PodName, token: &Token) -> Result<()> {
        self.call(
            pod,
            Step::StepDown,
            reqwest::Method::PUT,
            "sys/step-down",
            Some(token),
            None,
        )
        .await
        .map(|_| ())
    }

    async fn auth_mounts(&self, pod: &PodName, token: &Token) -> Result<BTreeMap<String, String>> {
        let client = self.vault(pod, Step::AuthMount, Some(token))?;
        let mounts = vaultrs::sys::auth::list(&client.0)
            .await
            .map_err(|e| from_vaultrs(pod, Step::AuthMount, e))?;
        Ok(mounts
            .into_iter()
            .map(|(path, mount)| (path, mount.mount_type))
            .collect())
    }

    async fn enable_auth(
        &self,
        pod: &PodName,
        path: &str,
        kind: &str,
        token: &Token,
    ) -> Result<()> {
        let client = self.vault(pod, Step::AuthMount, Some(token))?;
        vaultrs::sys::auth::enable(&client.0, path, kind, None)
            .await
            .map_err(|e| from_vaultrs(pod, Step::AuthMount, e))
    }

    async fn read_policy(
        &self,
        pod: &PodName,
        name: &str,
        token: &Token,
    ) -> Result<Option<String>> {
        let client = self.vault(pod, Step::Policy, Some(token))?;
        match vaultrs::sys::policy::read(&client.0, name).await {
            Ok(policy) => Ok(Some(policy.rules)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(from_vaultrs(pod, Step::Policy, e)),
        }
    }

    async fn write_policy(
        &self,
        pod: &PodName,
        name: &str,
        rules: &str,
        token: &Token,
    ) -> Result<()> {
        let client = self.vault(pod, Step::Policy, Some(token))?;
        vaultrs::sys::policy::set(&client.0, name, rules)
            .await
            .map_err(|e| from_vaultrs(pod, Step::Policy, e))
    }

    async fn read_kubernetes_auth_config(
        &self,
        pod: &PodName,
        mount: &str,
        token: &Token,
    ) -> Result<Option<KubernetesAuthConfig>> {
        let client = self.vault(pod, Step::KubernetesAuthConfig, Some(token))?;
        match vaultrs::auth::kubernetes::read_config(&client.0, mount).await {
            Ok(config) => Ok(Some(KubernetesAuthConfig {
                kubernetes_host: config.kubernetes_host,
                kubernetes_ca_cert: config.kubernetes_ca_cert.filter(|c| !c.is_empty()),
                issuer: config.issuer.filter(|i| !i.is_empty()),
                disable_local_ca_jwt: config.disable_local_ca_jwt,
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            // An unconfigured mount answers an empty `data`.
            Err(ClientError::ResponseDataEmptyError) => Ok(None),
            Err(e) => Err(from_vaultrs(pod, Step::KubernetesAuthConfig, e)),
        }
    }

    async fn write_kubernetes_auth_config(
        &self,
        pod: &PodName,
        mount: &str,
        config: &KubernetesAuthConfig,
        token: &Token,
    ) -> Result<()> {
        use vaultrs::api::auth::kubernetes::requests::ConfigureKubernetesAuthRequest;
        let client = self.vault(pod, Step::KubernetesAuthConfig, Some(token))?;
        let mut options = ConfigureKubernetesAuthRequest::builder();
        options.disable_local_ca_jwt(config.disable_local_ca_jwt);
        if let Some(ca) = &config.kubernetes_ca_cert {
            options.kubernetes_ca_cert(ca.clone());
        }
        if let Some(issuer) = &config.issuer {
            options.issuer(issuer.clone());
        }
        vaultrs::auth::kubernetes::configure(
            &client.0,
            mount,
            &config.kubernetes_host,
            Some(&mut options),
        )
        .await
        .map_err(|e| from_vaultrs(pod, Step::KubernetesAuthConfig, e))
    }

    async fn read_kubernetes_role(
        &self,
        pod: &PodName,
        mount: &str,
        name: &str,
        token: &Token,
    ) -> Result<Option<KubernetesRole>> {
        let client = self.vault(pod, Step::KubernetesAuthRole, Some(token))?;
        match vaultrs::auth::kubernetes::role::read(&client.0, mount, name).await {
            Ok(role) => Ok(Some(KubernetesRole {
                name: name.to_string(),
                bound_service_account_names: role.bound_service_account_names,
                bound_service_account_namespaces: role.bound_service_account_namespaces,
                token_policies: role.token_policies,
                token_ttl_seconds: role.token_ttl,
                token_max_ttl_seconds: role.token_max_ttl,
                token_no_default_policy: role.token_no_default_policy,
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(from_vaultrs(pod, Step::KubernetesAuthRole, e)),
        }
    }

    async fn write_kubernetes_role(
        &self,
        pod: &PodName,
        mount: &str,
        role: &KubernetesRole,
        token: &Token,
    ) -> Result<()> {
        use vaultrs::api::auth::kubernetes::requests::CreateKubernetesRoleRequest;
        let client = self.vault(pod, Step::KubernetesAuthRole, Some(token))?;
        let mut options = CreateKubernetesRoleRequest::builder();
        options
            .bound_service_account_names(role.bound_service_account_names.clone())
            .bound_service_account_namespaces(role.bound_service_account_namespaces.clone())
            .token_policies(role.token_policies.clone())
            .token_ttl(format!("{}s", role.token_ttl_seconds))
            .token_max_ttl(format!("{}s", role.token_max_ttl_seconds))
            .token_no_default_policy(role.token_no_default_policy);
        vaultrs::auth::kubernetes::role::create(&client.0, mount, &role.name, Some(&mut options))
            .await
            .map_err(|e| from_vaultrs(pod, Step::KubernetesAuthRole, e))
    }

    async fn read_token_role(
        &self,
        pod: &PodName,
        name: &str,
        token: &Token,
    ) -> Result<Option<TokenRole>> {
        // Thin call: vaultrs's token role answer has no `token_no_default_policy`.
        let path = format!("auth/token/roles/{name}");
        match self
            .call(
                pod,
                Step::TokenRole,
                reqwest::Method::GET,
                &path,
                Some(token),
                None,
            )
            .await?
        {
            None => Ok(None),
            Some(bytes) => {
                let mut value: Value = parse_body(pod, Step::TokenRole, &bytes)?;
                let data = value
                    .get_mut("data")
                    .map(Value::take)
                    .unwrap_or(Value::Null);
                wire::token_role(pod, name, &data).map(Some)
            }
        }
    }

    async fn write_token_role(&self, pod: &PodName, role: &TokenRole, token: &Token) -> Result<()> {
        use vaultrs::api::token::requests::SetTokenRoleRequest;
        let client = self.vault(pod, Step::TokenRole, Some(token))?;
        let mut options = SetTokenRoleRequest::builder();
        options
            .allowed_policies(role.allowed_policies.clone())
            .orphan(role.orphan)
            .renewable(role.renewable)
            .token_period(format!("{}s", role.token_period_seconds))
            .token_no_default_policy(role.token_no_default_policy);
        vaultrs::token::role::set(&client.0, &role.name, Some(&mut options))
            .await
            .map_err(|e| from_vaultrs(pod, Step::TokenRole, e))
    }

    async fn kubernetes_login(
        &self,
        pod: &PodName,
        mount: &str,
        role: &str,
        jwt: &SecretString,
    ) -> Result<Token> {
        let client = self.vault(pod, Step::KubernetesLogin, None)?;
        let auth = vaultrs::auth::kubernetes::login(&client.0, mount, role, jwt.expose_secret())
            .await
            .map_err(|e| from_vaultrs(pod, Step::KubernetesLogin, e))?;
        // Move the token out of vaultrs's struct into our secret type without copying it.
        Ok(Token::new(auth.client_token))
    }

    async fn lookup_self(&self, pod: &PodName, token: &Token) -> Result<TokenInfo> {
        let bytes = self
            .call(
                pod,
                Step::TokenLookup,
                reqwest::Method::GET,
                "auth/token/lookup-self",
                Some(token),
                None,
            )
            .await?
            .ok_or_else(|| Error::UnexpectedResponse {
                pod: pod.clone(),
                step: Step::TokenLookup,
                reason: "lookup-self answered 404".into(),
            })?;
        #[derive(Deserialize)]
        struct Envelope {
            data: LookupData,
        }
        // Only the fields we keep; the `id` (the token itself) is skipped by serde.
        #[derive(Deserialize)]
        struct LookupData {
            #[serde(default)]
            policies: Vec<String>,
            #[serde(default)]
            ttl: u64,
            #[serde(default)]
            period: Option<u64>,
            #[serde(default)]
            orphan: bool,
        }
        let envelope: Envelope = parse_body(pod, Step::TokenLookup, &bytes)?;
        Ok(TokenInfo {
            policies: envelope.data.policies,
            ttl_seconds: envelope.data.ttl,
            period_seconds: envelope.data.period.filter(|p| *p > 0),
            orphan: envelope.data.orphan,
        })
    }

    async fn revoke_self(&self, pod: &PodName, token: &Token) -> Result<()> {
        let client = self.vault(pod, Step::TokenRevoke, Some(token))?;
        vaultrs::token::revoke_self(&client.0)
            .await
            .map_err(|e| from_vaultrs(pod, Step::TokenRevoke, e))
    }
}
