//! JSON shapes shared by both transports: request bodies built from the typed objects, and
//! answers parsed back into them. The HTTP API and the CLI's `-format=json` output carry the
//! same fields, so one parser serves both.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{KubernetesAuthConfig, KubernetesRole, TokenRole};
use crate::error::{Error, Result, Step};
use crate::node::{PodName, parse_wire};
use crate::secret::{ExposeSecret, Token};

pub(crate) fn initialized(pod: &PodName, data: &Value) -> Result<bool> {
    #[derive(Deserialize)]
    struct Wire {
        initialized: bool,
    }
    parse_wire::<Wire>(pod, Step::InitStatus, data).map(|w| w.initialized)
}

pub(crate) fn auth_mounts(pod: &PodName, data: &Value) -> Result<BTreeMap<String, String>> {
    let object = data.as_object().ok_or_else(|| Error::UnexpectedResponse {
        pod: pod.clone(),
        step: Step::AuthMount,
        reason: "the auth mount list is not an object".into(),
    })?;
    Ok(object
        .iter()
        .filter_map(|(path, mount)| {
            let kind = mount.get("type")?.as_str()?;
            Some((path.clone(), kind.to_string()))
        })
        .collect())
}

/// The text of a policy read from `sys/policy/<name>` (`rules`).
pub(crate) fn policy_text(pod: &PodName, data: &Value) -> Result<String> {
    #[derive(Deserialize)]
    struct Wire {
        rules: String,
    }
    parse_wire::<Wire>(pod, Step::Policy, data).map(|w| w.rules)
}

pub(crate) fn kubernetes_config_body(config: &KubernetesAuthConfig) -> Value {
    // Both transports send exactly these fields, so an ACL that pins the parameters
    // (see `bootstrap`) accepts either.
    let mut body = json!({
        "kubernetes_host": config.kubernetes_host,
        "disable_iss_validation": false,
        "disable_local_ca_jwt": config.disable_local_ca_jwt,
    });
    if let Some(ca) = &config.kubernetes_ca_cert {
        body["kubernetes_ca_cert"] = json!(ca);
    }
    if let Some(issuer) = &config.issuer {
        body["issuer"] = json!(issuer);
    }
    body
}

pub(crate) fn kubernetes_config(pod: &PodName, data: &Value) -> Result<KubernetesAuthConfig> {
    #[derive(Deserialize)]
    struct Wire {
        kubernetes_host: String,
        #[serde(default)]
        kubernetes_ca_cert: Option<String>,
        #[serde(default)]
        issuer: Option<String>,
        #[serde(default)]
        disable_local_ca_jwt: bool,
    }
    let wire: Wire = parse_wire(pod, Step::KubernetesAuthConfig, data)?;
    Ok(KubernetesAuthConfig {
        kubernetes_host: wire.kubernetes_host,
        kubernetes_ca_cert: wire.kubernetes_ca_cert.filter(|c| !c.is_empty()),
        issuer: wire.issuer.filter(|i| !i.is_empty()),
        disable_local_ca_jwt: wire.disable_local_ca_jwt,
    })
}

pub(crate) fn kubernetes_role_body(role: &KubernetesRole) -> Value {
    // Both transports send exactly these fields, so the operator policy's pinned
    // `allowed_parameters` (see `bootstrap`) accept either.
    json!({
        "bound_service_account_names": role.bound_service_account_names,
        "bound_service_account_namespaces": role.bound_service_account_namespaces,
        "audience": role.audience,
        "token_policies": role.token_policies,
        "token_ttl": format!("{}s", role.token_ttl_seconds),
        "token_max_ttl": format!("{}s", role.token_max_ttl_seconds),
        "token_no_default_policy": role.token_no_default_policy,
    })
}

pub(crate) fn kubernetes_role(pod: &PodName, name: &str, data: &Value) -> Result<KubernetesRole> {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(default)]
        bound_service_account_names: Vec<String>,
        #[serde(default)]
        bound_service_account_namespaces: Vec<String>,
        #[serde(default)]
        audience: Option<String>,
        #[serde(default)]
        token_policies: Vec<String>,
        #[serde(default)]
        token_ttl: u64,
        #[serde(default)]
        token_max_ttl: u64,
        #[serde(default)]
        token_no_default_policy: bool,
    }
    let wire: Wire = parse_wire(pod, Step::KubernetesAuthRole, data)?;
    Ok(KubernetesRole {
        name: name.to_string(),
        bound_service_account_names: wire.bound_service_account_names,
        bound_service_account_namespaces: wire.bound_service_account_namespaces,
        audience: wire.audience.unwrap_or_default(),
        token_policies: wire.token_policies,
        token_ttl_seconds: wire.token_ttl,
        token_max_ttl_seconds: wire.token_max_ttl,
        token_no_default_policy: wire.token_no_default_policy,
    })
}

pub(crate) fn token_role_body(role: &TokenRole) -> Value {
    json!({
        "allowed_policies": role.allowed_policies,
        "orphan": role.orphan,
        "renewable": role.renewable,
        "token_period": format!("{}s", role.token_period_seconds),
        "token_no_default_policy": role.token_no_default_policy,
    })
}

pub(crate) fn token_role(pod: &PodName, name: &str, data: &Value) -> Result<TokenRole> {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(default)]
        allowed_policies: Vec<String>,
        #[serde(default)]
        orphan: bool,
        #[serde(default)]
        renewable: bool,
        #[serde(default)]
        token_period: u64,
        #[serde(default)]
        token_no_default_policy: bool,
    }
    let wire: Wire = parse_wire(pod, Step::TokenRole, data)?;
    Ok(TokenRole {
        name: name.to_string(),
        allowed_policies: wire.allowed_policies,
        orphan: wire.orphan,
        renewable: wire.renewable,
        token_period_seconds: wire.token_period,
        token_no_default_policy: wire.token_no_default_policy,
    })
}

/// Takes `auth.client_token` out of a login answer without keeping the rest.
pub(crate) fn login_token(pod: &PodName, body: &[u8]) -> Result<Token> {
    client_token(body).map_err(|reason| Error::UnexpectedResponse {
        pod: pod.clone(),
        step: Step::KubernetesLogin,
        reason,
    })
}

/// `auth.client_token` of a login or token-create answer, or why there is none. Only the
/// token is deserialized, straight into its secret type.
pub(crate) fn client_token(body: &[u8]) -> std::result::Result<Token, String> {
    #[derive(Deserialize)]
    struct Wire {
        auth: Option<AuthWire>,
    }
    #[derive(Deserialize)]
    struct AuthWire {
        client_token: Token,
    }
    let wire: Wire = serde_json::from_slice(body)
        .map_err(|e| format!("the answer is not the expected JSON: {e}"))?;
    wire.auth
        .map(|auth| auth.client_token)
        .filter(|token| !token.expose_secret().is_empty())
        .ok_or_else(|| "the answer has no auth.client_token".to_owned())
}

/// The answer of `sys/storage/raft/join`: `{"joined": true}`, or the node did not join.
pub(crate) fn joined(pod: &PodName, data: &Value) -> Result<()> {
    match data.get("joined").and_then(Value::as_bool) {
        Some(true) => Ok(()),
        _ => Err(Error::UnexpectedResponse {
            pod: pod.clone(),
            step: Step::RaftJoin,
            reason: "the node did not report that it joined".into(),
        }),
    }
}
