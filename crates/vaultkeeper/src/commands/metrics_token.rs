//! `vaultkeeper metrics-token`: the metrics-token CronJob's entry point.
//!
//! Keeps the periodic token Prometheus scrapes `sys/metrics` with alive. One run:
//!
//! 1. logs in with Kubernetes auth as the metrics-token job (never with the root token: a
//!    login that turns out to be root is refused);
//! 2. reads the current metrics token from its Secret (key `token`);
//! 3. looks it up and [`decide`]s: renew it when it is a valid periodic token carrying
//!    only the metrics policy, re-issue it (from the token role bootstrap created) when it
//!    is missing, lapsed, revoked or not what the role issues;
//! 4. writes it back with server-side apply under its own field manager, with annotations
//!    saying when it expires and when it was last renewed;
//! 5. revokes its own login token and prints one JSON line ([`Outcome`]) for the operator.
//!
//! No token is ever formatted: tokens live in [`Token`], errors carry Vault's error text
//! and hints only. The Vault calls are the workspace's one Vault client, [`VaultHttp`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use vaultkeeper_vault::client::{HttpOptions, TokenRequest, VaultHttp, tls_config};
use vaultkeeper_vault::secret::{ExposeSecret, Token, secret_string};

use super::DEFAULT_SERVICE_ACCOUNT_TOKEN;
use crate::CliError;

/// The field manager the job applies the Secret's `token` and annotations with; the
/// operator applies the Secret's shell under its own, so neither ever takes the other's
/// fields.
pub const FIELD_MANAGER: &str = "vaultkeeper-metrics-token";
/// The key of the token in the Secret (what the ServiceMonitor references).
pub const TOKEN_KEY: &str = "token";
/// The annotations the job writes and the operator reads into `status.metricsToken`:
/// defined once, where the operator reads them.
pub use crate::monitoring::{EXPIRY_ANNOTATION, RENEWED_ANNOTATION};

/// Arguments of `vaultkeeper metrics-token`; the CronJob sets them through the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsTokenArgs {
    /// Vault API address, e.g. https://vault-active.vault.svc:8200 (the active node).
    #[arg(long, env = "VAULTKEEPER_VAULT_ADDR")]
    pub vault_addr: String,
    /// PEM file with the CA that signed Vault's certificate (the cluster CA). Without it
    /// the system roots are used.
    #[arg(long, env = "VAULTKEEPER_VAULT_CA_CERT")]
    pub vault_ca_cert: Option<PathBuf>,
    /// Kubernetes auth role of the metrics-token job.
    #[arg(long, env = "VAULTKEEPER_AUTH_ROLE")]
    pub auth_role: String,
    /// Mount path of the Kubernetes auth method.
    #[arg(long, env = "VAULTKEEPER_AUTH_MOUNT", default_value = "kubernetes")]
    pub auth_mount: String,
    /// The projected service-account token used for Kubernetes auth: one whose audience
    /// is Vault logins only (the Job's pod mounts it here), not the pod's API token.
    #[arg(
        long,
        env = "VAULTKEEPER_SERVICE_ACCOUNT_TOKEN_FILE",
        default_value = DEFAULT_SERVICE_ACCOUNT_TOKEN
    )]
    pub service_account_token_file: PathBuf,
    /// Name of the VaultCluster (names the issued token in Vault's audit log).
    #[arg(long, env = "VAULTKEEPER_CLUSTER_NAME")]
    pub cluster_name: String,
    /// Namespace of the Secret.
    #[arg(long, env = "VAULTKEEPER_NAMESPACE")]
    pub namespace: String,
    /// The Secret holding the metrics token (key `token`).
    #[arg(long, env = "VAULTKEEPER_TOKEN_SECRET")]
    pub token_secret: String,
    /// The token's period: what one renewal buys, a duration such as 2w or 336h (whole
    /// numbers, each followed by a unit w, d, h, m or s, largest unit first and each unit
    /// at most once), at least an hour. The token role fixes the period Vault grants; this
    /// is asked for on renewal.
    #[arg(long, env = "VAULTKEEPER_TOKEN_PERIOD", default_value = "336h")]
    pub token_period: String,
    /// The token role the metrics token is created from (bootstrap creates it).
    #[arg(
        long,
        env = "VAULTKEEPER_METRICS_TOKEN_ROLE",
        default_value = vaultkeeper_api::names::vault::METRICS_TOKEN_ROLE
    )]
    pub token_role: String,
    /// The only policy the metrics token may carry.
    #[arg(
        long,
        env = "VAULTKEEPER_METRICS_POLICY",
        default_value = vaultkeeper_api::names::vault::METRICS_POLICY
    )]
    pub metrics_policy: String,
}

/// What Vault said about the token found in the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenState {
    /// The Secret has no token (first run, or someone emptied it).
    Missing,
    /// Vault does not know the token: it lapsed or was revoked.
    Invalid,
    /// A live token.
    Valid {
        /// Seconds left.
        ttl_seconds: u64,
        /// Its period, when periodic.
        period_seconds: Option<u64>,
        /// Whether it may be renewed.
        renewable: bool,
        /// Its policies.
        policies: Vec<String>,
    },
}

/// Why a token is re-issued instead of renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReissueReason {
    /// The Secret had no token.
    Missing,
    /// The token lapsed or was revoked.
    Invalid,
    /// The token is not periodic or not renewable: renewing cannot keep it alive.
    NotPeriodic,
    /// The token carries other policies than the metrics policy (e.g. someone stored a
    /// root token there): it must never be renewed or scraped with.
    WrongPolicies,
}

/// What to do with the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Renew it in place.
    Renew,
    /// Create a new one from the token role and replace it.
    Reissue(ReissueReason),
}

/// Renew or re-issue. Pure: the lookup result in, the decision out.
///
/// A token is renewed only when it is live, periodic, renewable and carries exactly the
/// metrics policy (`default` is tolerated: an older role may have issued it with it).
pub fn decide(state: &TokenState, metrics_policy: &str) -> Action {
    match state {
        TokenState::Missing => Action::Reissue(ReissueReason::Missing),
        TokenState::Invalid => Action::Reissue(ReissueReason::Invalid),
        TokenState::Valid {
            ttl_seconds,
            period_seconds,
            renewable,
            policies,
        } => {
            let only_metrics = policies.iter().any(|p| p == metrics_policy)
                && policies
                    .iter()
                    .all(|p| p == metrics_policy || p == "default");
            if !only_metrics {
                Action::Reissue(ReissueReason::WrongPolicies)
            } else if !renewable || period_seconds.is_none_or(|p| p == 0) {
                Action::Reissue(ReissueReason::NotPeriodic)
            } else if *ttl_seconds == 0 {
                Action::Reissue(ReissueReason::Invalid)
            } else {
                Action::Renew
            }
        }
    }
}

/// The JSON line a run prints (for the operator, which reads it from the Job's log).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// `renewed`, `reissued` or `failed`.
    pub result: String,
    /// Why the token was re-issued, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the token lapses unless renewed again (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// The same, Unix seconds (what the operator exports as a metric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_unix: Option<i64>,
    /// The Secret written.
    pub secret: String,
    /// How long the run took, seconds.
    pub duration_seconds: f64,
    /// Whether the job's own login token was revoked at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_revoked: Option<bool>,
    /// The reason of a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs the job with a Kubernetes client from the environment (in-cluster config, or the
/// kubeconfig when run outside), prints the JSON line, and maps the result to an exit
/// status.
pub async fn main(args: MetricsTokenArgs) -> std::process::ExitCode {
    let started = Instant::now();
    let outcome = match kube::Client::try_default().await {
        Ok(client) => run(&args, client).await,
        Err(e) => Err(CliError::Internal(format!(
            "cannot reach the Kubernetes API (in-cluster config or kubeconfig): {e}"
        ))),
    };
    let (outcome, code) = match outcome {
        Ok(outcome) => (outcome, std::process::ExitCode::SUCCESS),
        Err(error) => {
            eprintln!("error: {error}");
            let code = error.exit_code();
            (
                Outcome {
                    result: "failed".into(),
                    reason: None,
                    expiry: None,
                    expiry_unix: None,
                    secret: args.token_secret.clone(),
                    duration_seconds: started.elapsed().as_secs_f64(),
                    login_revoked: None,
                    error: Some(error.to_string()),
                },
                code,
            )
        }
    };
    match serde_json::to_string(&outcome) {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("error: cannot print the outcome: {e}"),
    }
    code
}

/// The shortest period the job asks for: a token renewed weekly needs far more, and
/// anything shorter is a typo (`336s` for `336h`).
const MIN_TOKEN_PERIOD_SECONDS: i64 = 3600;

/// Reads `--token-period` in the duration grammar the CRD checks
/// ([`vaultkeeper_api::Duration`]), refusing periods under an hour. Parsed here rather
/// than by clap so that a bad value is reported in the job's outcome line.
pub fn token_period_seconds(text: &str) -> Result<i64, CliError> {
    let period = text
        .parse::<vaultkeeper_api::Duration>()
        .map_err(|invalid| {
            CliError::Input(format!(
                "invalid --token-period (VAULTKEEPER_TOKEN_PERIOD): {invalid}"
            ))
        })?;
    if period.as_seconds() < MIN_TOKEN_PERIOD_SECONDS {
        return Err(CliError::Input(format!(
            "--token-period (VAULTKEEPER_TOKEN_PERIOD) {period} is shorter than an hour: use \
             e.g. 2w (336h) for a weekly renewal"
        )));
    }
    Ok(period.as_seconds())
}

/// One run against `kube` (the job's own client). Returns the outcome to print.
pub async fn run(args: &MetricsTokenArgs, kube: kube::Client) -> Result<Outcome, CliError> {
    let started = Instant::now();
    let period = token_period_seconds(&args.token_period)?;
    let ca = match &args.vault_ca_cert {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            CliError::Input(format!(
                "--vault-ca-cert (VAULTKEEPER_VAULT_CA_CERT) {}: {e}: mount the cluster CA there",
                path.display()
            ))
        })?),
        None => None,
    };
    let tls = tls_config(ca.as_deref()).map_err(|e| input(e.in_field("--vault-ca-cert")))?;
    let vault = VaultHttp::new(&args.vault_addr, Arc::new(tls), HttpOptions::job())
        .map_err(|e| input(e.in_field("--vault-addr")))?;

    let jwt = std::fs::read_to_string(&args.service_account_token_file)
        .map(|text| secret_string(zeroize::Zeroizing::new(text).trim().to_owned()))
        .map_err(|e| {
            CliError::Input(format!(
                "--service-account-token-file {}: {e}: the job needs its projected service-account token",
                args.service_account_token_file.display()
            ))
        })?;
    let job_token = vault
        .kubernetes_login(&args.auth_mount, &args.auth_role, &jwt)
        .await
        .map_err(internal)?;
    let result = with_login(args, &kube, &vault, &job_token, period).await;
    // Revoke the short login whatever happened; a failure here is reported, not fatal
    // (the login lapses with its TTL anyway).
    let revoked = vault.revoke_self(&job_token).await;
    let mut outcome = result?;
    outcome.login_revoked = Some(revoked.is_ok());
    if let Err(e) = revoked {
        tracing::warn!(error = %e, "could not revoke the job's own login token; it lapses with its TTL");
    }
    outcome.duration_seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

async fn with_login(
    args: &MetricsTokenArgs,
    kube: &kube::Client,
    vault: &VaultHttp,
    job_token: &Token,
    period: i64,
) -> Result<Outcome, CliError> {
    if vault.is_root_token(job_token).await.map_err(internal)? {
        return Err(CliError::Input(format!(
            "the Kubernetes auth role {:?} issued a root token: the metrics-token job refuses to run as root; bind the role to the metrics-token job policy only",
            args.auth_role
        )));
    }
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), &args.namespace);
    let secret = secrets.get_opt(&args.token_secret).await.map_err(|e| {
        CliError::Internal(format!(
            "cannot read Secret {}/{}: {e}",
            args.namespace, args.token_secret
        ))
    })?;
    let current = secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(TOKEN_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .filter(|t| !t.is_empty())
        .map(Token::new);

    let state = match &current {
        None => TokenState::Missing,
        Some(token) => match vault
            .lookup_token(job_token, token)
            .await
            .map_err(internal)?
        {
            None => TokenState::Invalid,
            Some(info) => TokenState::Valid {
                ttl_seconds: info.ttl_seconds,
                period_seconds: info.period_seconds,
                renewable: info.renewable,
                policies: info.policies,
            },
        },
    };
    let action = decide(&state, &args.metrics_policy);
    let (token, ttl, result, reason) = match (action, current) {
        (Action::Renew, Some(token)) => {
            let increment = Duration::from_secs(u64::try_from(period).unwrap_or_default());
            let ttl = vault
                .renew_token(job_token, &token, increment)
                .await
                .map_err(internal)?;
            (token, ttl, "renewed", None)
        }
        (action, _) => {
            let reason = match action {
                Action::Reissue(reason) => reason,
                Action::Renew => ReissueReason::Missing,
            };
            let request = TokenRequest {
                policies: vec![args.metrics_policy.clone()],
                no_default_policy: true,
                display_name: format!("metrics-{}", args.cluster_name),
                meta: BTreeMap::from([(
                    "vaultkeeper-cluster".to_owned(),
                    args.cluster_name.clone(),
                )]),
            };
            let issued = vault
                .create_token(job_token, &args.token_role, &request)
                .await
                .map_err(internal)?;
            (issued.token, issued.ttl_seconds, "reissued", Some(reason))
        }
    };
    let now = Timestamp::now();
    let expiry = now
        .checked_add(jiff::SignedDuration::from_secs(
            i64::try_from(ttl).unwrap_or(i64::MAX / 2),
        ))
        .map_err(|e| CliError::Internal(format!("token expiry out of range: {e}")))?;
    write_secret(&secrets, &args.token_secret, &token, expiry, now).await?;
    Ok(Outcome {
        result: result.into(),
        reason: reason.map(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        }),
        expiry: Some(expiry.to_string()),
        expiry_unix: Some(expiry.as_second()),
        secret: args.token_secret.clone(),
        duration_seconds: 0.0,
        login_revoked: None,
        error: None,
    })
}

/// Applies only the token and the two annotations, under [`FIELD_MANAGER`].
async fn write_secret(
    secrets: &Api<Secret>,
    name: &str,
    token: &Token,
    expiry: Timestamp,
    now: Timestamp,
) -> Result<(), CliError> {
    use base64::Engine;
    let encoded = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD.encode(token.expose_secret().as_bytes()),
    );
    // The JSON body holds the encoded token until the request is sent; serde_json values
    // cannot be zeroized, so it is dropped as soon as the call returns.
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "annotations": {
                EXPIRY_ANNOTATION: expiry.to_string(),
                RENEWED_ANNOTATION: now.to_string(),
            },
        },
        "data": { TOKEN_KEY: encoded.as_str() },
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    secrets
        .patch(name, &params, &Patch::Apply(&patch))
        .await
        .map(|_| ())
        .map_err(|e| {
            // kube's error carries the API server's status message, never our body.
            CliError::Internal(format!(
                "cannot write the metrics token to Secret {name}: {e}; the job's Role must allow patch on it"
            ))
        })
}

fn internal(e: vaultkeeper_vault::Error) -> CliError {
    CliError::Internal(e.to_string())
}

fn input(e: vaultkeeper_vault::Error) -> CliError {
    CliError::Input(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(ttl: u64, period: Option<u64>, renewable: bool, policies: &[&str]) -> TokenState {
        TokenState::Valid {
            ttl_seconds: ttl,
            period_seconds: period,
            renewable,
            policies: policies.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn token_periods_use_the_crd_grammar_and_last_at_least_an_hour() {
        assert_eq!(token_period_seconds("336h").unwrap(), 336 * 3600);
        assert_eq!(token_period_seconds("2w").unwrap(), 336 * 3600);
        assert_eq!(token_period_seconds("1h30m").unwrap(), 5400);
        for bad in ["", "1x", "h", "-1d", "30m1h", "336s"] {
            let message = token_period_seconds(bad).unwrap_err().to_string();
            assert!(message.contains("--token-period"), "{bad:?}: {message}");
        }
        let message = token_period_seconds("1x").unwrap_err().to_string();
        assert!(
            message.ends_with(&format!(
                "must be {}",
                vaultkeeper_api::duration::description()
            )),
            "{message}"
        );
    }

    #[test]
    fn renewal_or_reissue_table() {
        const P: &str = "vaultkeeper-metrics";
        let week = Some(7 * 86_400);
        let cases = [
            (TokenState::Missing, Action::Reissue(ReissueReason::Missing)),
            (TokenState::Invalid, Action::Reissue(ReissueReason::Invalid)),
            (valid(3600, week, true, &[P]), Action::Renew),
            (valid(3600, week, true, &["default", P]), Action::Renew),
            (
                valid(3600, week, true, &["root"]),
                Action::Reissue(ReissueReason::WrongPolicies),
            ),
            (
                valid(3600, week, true, &[P, "admin"]),
                Action::Reissue(ReissueReason::WrongPolicies),
            ),
            (
                valid(3600, week, true, &["default"]),
                Action::Reissue(ReissueReason::WrongPolicies),
            ),
            (
                valid(3600, None, true, &[P]),
                Action::Reissue(ReissueReason::NotPeriodic),
            ),
            (
                valid(3600, Some(0), true, &[P]),
                Action::Reissue(ReissueReason::NotPeriodic),
            ),
            (
                valid(3600, week, false, &[P]),
                Action::Reissue(ReissueReason::NotPeriodic),
            ),
            (
                valid(0, week, true, &[P]),
                Action::Reissue(ReissueReason::Invalid),
            ),
        ];
        for (state, expected) in cases {
            assert_eq!(decide(&state, P), expected, "{state:?}");
        }
    }

    #[test]
    fn the_outcome_line_has_no_token_field() {
        let outcome = Outcome {
            result: "renewed".into(),
            reason: None,
            expiry: Some("2026-01-01T00:00:00Z".into()),
            expiry_unix: Some(1_767_225_600),
            secret: "vault-metrics-token".into(),
            duration_seconds: 0.5,
            login_revoked: Some(true),
            error: None,
        };
        let line = serde_json::to_string(&outcome).unwrap_or_default();
        assert!(line.contains("\"result\":\"renewed\""), "{line}");
        assert!(!line.contains("token\":"), "{line}");
    }
}
