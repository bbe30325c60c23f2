//! TLS for one pass: what the Secrets hold, whether the internal PKI is kept or renewed
//! (a pure decision, [`decide`]), the material the renderer needs, and the expiry facts
//! for status. Generating keys needs randomness, so [`settle`] does it only when the
//! decision says so.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use vaultkeeper_api::{TlsStatus, VaultCluster};
use vaultkeeper_render::{PkiMaterial, PrivateKeyPem, RenderError, pki};

/// The TLS Secrets as read this pass.
#[derive(Clone, Debug)]
pub(crate) enum TlsObserved {
    /// `tls.mode: Disabled`: nothing to read.
    Disabled,
    /// `SelfSigned`: the operator's CA and server certificate Secrets.
    SelfSigned {
        /// `<name>-ca-internal`.
        ca: Option<Box<Secret>>,
        /// `<name>-server-tls`.
        server: Option<Box<Secret>>,
    },
    /// `Secret` or `CertManager`: a Secret someone else writes.
    External {
        /// Its name.
        name: String,
        /// What it holds, when it exists.
        secret: Option<Box<Secret>>,
    },
}

impl TlsObserved {
    /// The CA the pods' certificates chain to, as stored now (what the HTTP transport
    /// verifies the running pods against).
    pub(crate) fn ca(&self) -> Option<String> {
        match self {
            TlsObserved::Disabled => None,
            TlsObserved::SelfSigned { ca, .. } => ca.as_ref().and_then(|s| text(s, "tls.crt")),
            TlsObserved::External { secret, .. } => secret.as_ref().and_then(|s| text(s, "ca.crt")),
        }
    }
}

/// What to do about the internal PKI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PkiStep {
    /// Nothing of ours to keep (TLS disabled, or certificates from elsewhere).
    NotOurs,
    /// The stored material serves.
    Keep(PkiMaterial),
    /// Issue new material, and why.
    Issue {
        /// What to issue.
        plan: pki::PkiPlan,
        /// What is stored now (the CA survives a server-only renewal).
        existing: Option<PkiMaterial>,
    },
}

/// TLS as this pass leaves it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tls {
    /// The internal PKI for rendering, when the operator owns it.
    pub(crate) material: Option<PkiMaterial>,
    /// Expiry facts for status.
    pub(crate) status: Option<TlsStatus>,
    /// Why TLS is not ready, when it is not.
    pub(crate) problem: Option<String>,
    /// Why new certificates were issued this pass (an Event says so).
    pub(crate) issued: Option<String>,
}

/// A certificate with less than this left is reported in `TLSReady`.
const EXPIRY_WARNING: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 14);

/// Keep or renew the internal PKI. Pure: the stored Secrets, the names the spec wants,
/// the clock value.
pub(crate) fn decide(
    vc: &VaultCluster,
    namespace: &str,
    observed: &TlsObserved,
    now: jiff::Timestamp,
) -> PkiStep {
    let TlsObserved::SelfSigned { ca, server } = observed else {
        return PkiStep::NotOurs;
    };
    let existing = match (ca, server) {
        (Some(ca), Some(server)) => Some(PkiMaterial {
            ca_cert_pem: text(ca, "tls.crt").unwrap_or_default(),
            ca_key_pem: PrivateKeyPem::new(text(ca, "tls.key").unwrap_or_default()),
            server_cert_pem: text(server, "tls.crt").unwrap_or_default(),
            server_key_pem: PrivateKeyPem::new(text(server, "tls.key").unwrap_or_default()),
        }),
        _ => None,
    };
    let request = pki::server_certificate_request(vc, namespace);
    match (pki::plan(existing.as_ref(), &request, clock(now)), existing) {
        (pki::PkiPlan::Keep, Some(existing)) => PkiStep::Keep(existing),
        (plan, existing) => PkiStep::Issue { plan, existing },
    }
}

/// The TLS facts of this pass, issuing new certificates when [`decide`] says so.
pub(crate) fn settle(
    vc: &VaultCluster,
    namespace: &str,
    observed: &TlsObserved,
    now: jiff::Timestamp,
) -> Result<Tls, RenderError> {
    match decide(vc, namespace, observed, now) {
        PkiStep::NotOurs => Ok(external(observed, now)),
        PkiStep::Keep(material) => Ok(own(material, None, now)),
        PkiStep::Issue { plan, existing } => {
            let reason = match &plan {
                pki::PkiPlan::IssueAll(r) | pki::PkiPlan::IssueServer(r) => r.to_string(),
                pki::PkiPlan::Keep => String::new(),
            };
            let request = pki::server_certificate_request(vc, namespace);
            let name = vc.metadata.name.clone().unwrap_or_default();
            let material = pki::issue(&plan, existing.as_ref(), &name, &request, clock(now))?;
            Ok(own(
                material,
                Some(format!("new certificate: {reason}")),
                now,
            ))
        }
    }
}

fn own(material: PkiMaterial, issued: Option<String>, now: jiff::Timestamp) -> Tls {
    let ca_expiry = expiry(&material.ca_cert_pem);
    let server_expiry = expiry(&material.server_cert_pem);
    let problem = expiring(server_expiry, "server certificate", now)
        .or_else(|| expiring(ca_expiry, "CA certificate", now));
    Tls {
        status: Some(TlsStatus {
            ca_expiry_time: ca_expiry.map(Time),
            server_expiry_time: server_expiry.map(Time),
        }),
        material: Some(material),
        problem,
        issued,
    }
}

fn external(observed: &TlsObserved, now: jiff::Timestamp) -> Tls {
    let TlsObserved::External { name, secret } = observed else {
        return Tls::default();
    };
    let Some(secret) = secret else {
        return Tls {
            problem: Some(format!(
                "the TLS Secret {name} does not exist yet; the pods cannot start without it"
            )),
            ..Tls::default()
        };
    };
    let server_expiry = text(secret, "tls.crt").as_deref().and_then(expiry);
    let ca = text(secret, "ca.crt");
    let ca_expiry = ca.as_deref().and_then(expiry);
    let problem = if ca.is_none() {
        Some(format!(
            "the TLS Secret {name} has no ca.crt; pods and clients need the CA to verify each other"
        ))
    } else {
        expiring(server_expiry, "server certificate", now)
    };
    Tls {
        material: None,
        status: Some(TlsStatus {
            ca_expiry_time: ca_expiry.map(Time),
            server_expiry_time: server_expiry.map(Time),
        }),
        problem,
        issued: None,
    }
}

fn expiring(at: Option<jiff::Timestamp>, what: &str, now: jiff::Timestamp) -> Option<String> {
    let at = at?;
    (at.duration_since(now) < EXPIRY_WARNING).then(|| format!("the {what} expires at {at}"))
}

fn clock(now: jiff::Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(now.as_second())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
}

fn expiry(pem: &str) -> Option<jiff::Timestamp> {
    let facts = pki::certificate_facts(pem).ok()?;
    jiff::Timestamp::from_second(facts.not_after.unix_timestamp()).ok()
}
