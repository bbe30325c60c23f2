//! The internal PKI of a `tls.mode: SelfSigned` cluster: a CA and a server certificate
//! whose names cover every Service and pod DNS name.
//!
//! Two halves, kept apart: [`plan`] is a pure decision (existing material + the names
//! wanted + a clock value → keep or issue, and why); [`issue`] generates keys and
//! certificates, which needs randomness, and is called only when the plan says so.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};
use vaultkeeper_api::{ClusterNames, VaultCluster};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::RenderError;

/// How long a new CA is valid.
pub const CA_VALIDITY: Duration = Duration::days(3650);
/// A CA with less than this left is replaced (and every server certificate with it).
pub const CA_RENEW_BEFORE: Duration = Duration::days(365);
/// How long a new server certificate is valid.
pub const SERVER_VALIDITY: Duration = Duration::days(365);
/// The most pods a VaultCluster can have (`spec.replicas` is 1, 3, 5 or 7).
pub const MAX_REPLICAS: u32 = 7;
/// A server certificate with less than this left is renewed.
pub const SERVER_RENEW_BEFORE: Duration = Duration::days(30);

/// A PEM private key: printed as `<redacted>`, never in a log line or an error, and wiped
/// from memory when dropped.
#[derive(Clone)]
pub struct PrivateKeyPem(SecretString);

impl PrivateKeyPem {
    /// Wraps a PEM private key.
    pub fn new(pem: String) -> Self {
        Self(SecretString::from(pem))
    }
}

impl ExposeSecret<str> for PrivateKeyPem {
    /// The PEM text, for writing into a Secret.
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

// Compared only to tell whether stored PKI material changed; not a secret comparison that
// an attacker can time.
impl PartialEq for PrivateKeyPem {
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret() == other.expose_secret()
    }
}

impl Eq for PrivateKeyPem {}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem(<redacted>)")
    }
}

/// The CA and the server certificate of one cluster, as stored in its Secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkiMaterial {
    /// The CA certificate (PEM).
    pub ca_cert_pem: String,
    /// The CA's private key (PEM).
    pub ca_key_pem: PrivateKeyPem,
    /// The server certificate (PEM).
    pub server_cert_pem: String,
    /// The server's private key (PEM).
    pub server_key_pem: PrivateKeyPem,
}

/// The names a server certificate must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRequest {
    /// DNS names, in a stable order.
    pub dns_names: Vec<String>,
    /// IP addresses.
    pub ip_addresses: Vec<IpAddr>,
}

/// Every name clients use to reach the cluster: each Service under its short,
/// namespaced, `.svc` and `.svc.<cluster domain>` forms, every pod through a wildcard on
/// the headless Service (so scaling never needs a new certificate), 127.0.0.1, the
/// ingress hosts and the extra names in `spec.tls.extraDnsNames`.
pub fn server_certificate_request(cluster: &VaultCluster, namespace: &str) -> CertificateRequest {
    let names = ClusterNames::new(cluster.metadata.name.as_deref().unwrap_or_default());
    let domain = &cluster.spec.cluster_domain;
    let mut dns_names = Vec::new();
    let services = [
        names.service(),
        names.active_service(),
        names.standby_service(),
        names.internal_service(),
        names.ui_service(),
    ];
    for service in &services {
        dns_names.extend(qualified(service, namespace, domain));
    }
    // Every pod under the headless Service. Wildcards cover them for Go clients, but
    // strict verifiers (webpki/rustls) refuse a wildcard over a single-label name such as
    // `*.vault-internal`, so each possible ordinal is named too: replicas never exceed 7,
    // so scaling never needs a new certificate.
    for ordinal in 0..MAX_REPLICAS {
        dns_names.extend(qualified(
            &names.pod_internal_host(ordinal),
            namespace,
            domain,
        ));
    }
    dns_names.extend(qualified(
        &format!("*.{}", names.internal_service()),
        namespace,
        domain,
    ));
    dns_names.extend(cluster.spec.tls.extra_dns_names.iter().cloned());
    if cluster.spec.ingress.enabled {
        dns_names.extend(cluster.spec.ingress.hosts.iter().cloned());
    }
    let mut seen = std::collections::BTreeSet::new();
    dns_names.retain(|name| seen.insert(name.clone()));
    CertificateRequest {
        dns_names,
        ip_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
    }
}

fn qualified(name: &str, namespace: &str, domain: &str) -> [String; 4] {
    [
        name.to_owned(),
        format!("{name}.{namespace}"),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}.svc.{domain}"),
    ]
}

/// What to do about the PKI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PkiPlan {
    /// The material is valid, covers every name and is not about to expire.
    Keep,
    /// Keep the CA, issue a new server certificate.
    IssueServer(RenewReason),
    /// Issue a new CA and a new server certificate.
    IssueAll(RenewReason),
}

/// Why new material is needed, in words a person can read in an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenewReason {
    /// Nothing exists yet.
    Missing,
    /// The CA could not be read.
    CaUnreadable(String),
    /// The CA expires within [`CA_RENEW_BEFORE`].
    CaExpiring {
        /// When it expires.
        not_after: OffsetDateTime,
    },
    /// The server certificate could not be read.
    ServerUnreadable(String),
    /// The server certificate expires within [`SERVER_RENEW_BEFORE`].
    ServerExpiring {
        /// When it expires.
        not_after: OffsetDateTime,
    },
    /// The server certificate lacks names the cluster now needs.
    NamesMissing(Vec<String>),
    /// The server certificate was not issued by the stored CA.
    NotIssuedByCa,
}

impl fmt::Display for RenewReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenewReason::Missing => f.write_str("no certificate exists yet"),
            RenewReason::CaUnreadable(why) => write!(f, "the CA certificate cannot be read: {why}"),
            RenewReason::CaExpiring { not_after } => {
                write!(f, "the CA certificate expires at {not_after}")
            }
            RenewReason::ServerUnreadable(why) => {
                write!(f, "the server certificate cannot be read: {why}")
            }
            RenewReason::ServerExpiring { not_after } => {
                write!(f, "the server certificate expires at {not_after}")
            }
            RenewReason::NamesMissing(names) => write!(
                f,
                "the server certificate lacks the names {}",
                names.join(", ")
            ),
            RenewReason::NotIssuedByCa => {
                f.write_str("the server certificate was not issued by the stored CA")
            }
        }
    }
}

/// What a certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// DNS names in the subject alternative names.
    pub dns_names: Vec<String>,
    /// IP addresses in the subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// The raw issuer name, to compare with the CA's subject.
    issuer: Vec<u8>,
    /// The raw subject name.
    subject: Vec<u8>,
    /// The subject key identifier (set on CA certificates).
    subject_key_id: Option<Vec<u8>>,
    /// The authority key identifier: which key signed this certificate.
    authority_key_id: Option<Vec<u8>>,
}

/// Reads validity and names from a PEM certificate.
pub fn certificate_facts(pem: &str) -> Result<CertificateFacts, String> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    let (_, cert) =
        X509Certificate::from_der(&block.contents).map_err(|e| format!("not X.509: {e}"))?;
    let validity = cert.validity();
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    let mut subject_key_id = None;
    let mut authority_key_id = None;
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
            }
            _ => {}
        }
        if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(octets) = <[u8; 4]>::try_from(*bytes) {
                            ip_addresses.push(IpAddr::from(octets));
                        } else if let Ok(octets) = <[u8; 16]>::try_from(*bytes) {
                            ip_addresses.push(IpAddr::from(octets));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(CertificateFacts {
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
        dns_names,
        ip_addresses,
        issuer: cert.issuer().as_raw().to_vec(),
        subject: cert.subject().as_raw().to_vec(),
        subject_key_id,
        authority_key_id,
    })
}

/// Decides whether the stored material can stay. Pure: the clock value is an input.
pub fn plan(
    existing: Option<&PkiMaterial>,
    request: &CertificateRequest,
    now: OffsetDateTime,
) -> PkiPlan {
    let Some(existing) = existing else {
        return PkiPlan::IssueAll(RenewReason::Missing);
    };
    let ca = match certificate_facts(&existing.ca_cert_pem) {
        Ok(ca) => ca,
        Err(why) => return PkiPlan::IssueAll(RenewReason::CaUnreadable(why)),
    };
    if ca.not_after - now < CA_RENEW_BEFORE {
        return PkiPlan::IssueAll(RenewReason::CaExpiring {
            not_after: ca.not_after,
        });
    }
    let server = match certificate_facts(&existing.server_cert_pem) {
        Ok(server) => server,
        Err(why) => return PkiPlan::IssueServer(RenewReason::ServerUnreadable(why)),
    };
    // Same issuer name is not enough (every cluster's CA is named alike): the key that
    // signed the server certificate must be the stored CA's key.
    let same_key = match (&server.authority_key_id, &ca.subject_key_id) {
        (Some(signed_by), Some(ca_key)) => signed_by == ca_key,
        _ => false,
    };
    if server.issuer != ca.subject || !same_key {
        return PkiPlan::IssueServer(RenewReason::NotIssuedByCa);
    }
    if server.not_after - now < SERVER_RENEW_BEFORE {
        return PkiPlan::IssueServer(RenewReason::ServerExpiring {
            not_after: server.not_after,
        });
    }
    let missing: Vec<String> = request
        .dns_names
        .iter()
        .filter(|name| !server.dns_names.contains(name))
        .cloned()
        .chain(
            request
                .ip_addresses
                .iter()
                .filter(|ip| !server.ip_addresses.contains(ip))
                .map(IpAddr::to_string),
        )
        .collect();
    if !missing.is_empty() {
        return PkiPlan::IssueServer(RenewReason::NamesMissing(missing));
    }
    PkiPlan::Keep
}

/// A new CA and server certificate for a cluster that has none yet, as `vaultkeeper
/// render` and tests need them: [`server_certificate_request`], [`plan`] and [`issue`]
/// in one call. Not pure (new keys are random).
pub fn issue_new(
    cluster: &VaultCluster,
    namespace: &str,
    now: OffsetDateTime,
) -> Result<PkiMaterial, RenderError> {
    let request = server_certificate_request(cluster, namespace);
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    issue(&plan(None, &request, now), None, name, &request, now)
}

/// Carries out a plan: generates what it asks for, keeps the rest. Not pure (new keys
/// are random); call it only when [`plan`] did not say [`PkiPlan::Keep`].
pub fn issue(
    plan: &PkiPlan,
    existing: Option<&PkiMaterial>,
    cluster_name: &str,
    request: &CertificateRequest,
    now: OffsetDateTime,
) -> Result<PkiMaterial, RenderError> {
    let pki_error = |step: &'static str| {
        move |e: rcgen::Error| RenderError::Pki {
            step,
            detail: e.to_string(),
        }
    };
    let (ca_cert_pem, ca_key_pem) = match (plan, existing) {
        (PkiPlan::IssueServer(_), Some(existing)) | (PkiPlan::Keep, Some(existing)) => {
            (existing.ca_cert_pem.clone(), existing.ca_key_pem.clone())
        }
        _ => {
            let key = KeyPair::generate().map_err(pki_error("generate the CA key"))?;
            let mut params = CertificateParams::default();
            params.distinguished_name =
                distinguished_name(&format!("{cluster_name} vaultkeeper CA"));
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.not_before = now - Duration::minutes(5);
            params.not_after = now + CA_VALIDITY;
            let cert = params
                .self_signed(&key)
                .map_err(pki_error("sign the CA certificate"))?;
            (cert.pem(), PrivateKeyPem::new(key.serialize_pem()))
        }
    };
    if let (PkiPlan::Keep, Some(existing)) = (plan, existing) {
        return Ok(existing.clone());
    }
    let ca_key =
        KeyPair::from_pem(ca_key_pem.expose_secret()).map_err(pki_error("read the CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key)
        .map_err(pki_error("read the CA certificate"))?;
    let server_key = KeyPair::generate().map_err(pki_error("generate the server key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(cluster_name);
    params.subject_alt_names = request
        .dns_names
        .iter()
        .map(|name| {
            name.clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(pki_error("encode a DNS name"))
        })
        .collect::<Result<_, _>>()?;
    params.subject_alt_names.extend(
        request
            .ip_addresses
            .iter()
            .map(|ip| SanType::IpAddress(*ip)),
    );
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Server auth for clients, client auth because raft peers present the same
    // certificate to each other.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + SERVER_VALIDITY;
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .map_err(pki_error("sign the server certificate"))?;
    Ok(PkiMaterial {
        ca_cert_pem,
        ca_key_pem,
        server_cert_pem: server_cert.pem(),
        server_key_pem: PrivateKeyPem::new(server_key.serialize_pem()),
    })
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "vaultkeeper");
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(names: &[&str]) -> CertificateRequest {
        CertificateRequest {
            dns_names: names.iter().map(|s| (*s).to_owned()).collect(),
            ip_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        }
    }

    fn at(days: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000 + days)
    }

    fn fresh(names: &[&str], now: OffsetDateTime) -> PkiMaterial {
        let req = request(names);
        issue(
            &PkiPlan::IssueAll(RenewReason::Missing),
            None,
            "vault",
            &req,
            now,
        )
        .expect("issue")
    }

    #[test]
    fn nothing_stored_means_issue_everything() {
        assert_eq!(
            plan(None, &request(&["vault"]), at(0)),
            PkiPlan::IssueAll(RenewReason::Missing)
        );
    }

    #[test]
    fn fresh_material_is_kept() {
        let material = fresh(&["vault", "vault-active"], at(0));
        assert_eq!(
            plan(Some(&material), &request(&["vault"]), at(1)),
            PkiPlan::Keep
        );
    }

    #[test]
    fn server_certificate_is_renewed_thirty_days_before_expiry_and_not_earlier() {
        let material = fresh(&["vault"], at(0));
        assert_eq!(
            plan(Some(&material), &request(&["vault"]), at(334)),
            PkiPlan::Keep
        );
        assert!(matches!(
            plan(Some(&material), &request(&["vault"]), at(336)),
            PkiPlan::IssueServer(RenewReason::ServerExpiring { .. })
        ));
    }

    #[test]
    fn ca_is_replaced_a_year_before_expiry() {
        let material = fresh(&["vault"], at(0));
        assert!(matches!(
            plan(Some(&material), &request(&["vault"]), at(3650 - 364)),
            PkiPlan::IssueAll(RenewReason::CaExpiring { .. })
        ));
    }

    #[test]
    fn a_new_name_renews_the_server_certificate_and_keeps_the_ca() {
        let material = fresh(&["vault"], at(0));
        let wanted = request(&["vault", "vault.example.com"]);
        let decided = plan(Some(&material), &wanted, at(1));
        assert_eq!(
            decided,
            PkiPlan::IssueServer(RenewReason::NamesMissing(vec!["vault.example.com".into()]))
        );
        let renewed = issue(&decided, Some(&material), "vault", &wanted, at(1)).expect("renew");
        assert_eq!(renewed.ca_cert_pem, material.ca_cert_pem);
        assert_ne!(renewed.server_cert_pem, material.server_cert_pem);
        assert_eq!(plan(Some(&renewed), &wanted, at(2)), PkiPlan::Keep);
    }

    #[test]
    fn a_server_certificate_from_another_ca_is_reissued() {
        let one = fresh(&["vault"], at(0));
        let other = fresh(&["vault"], at(0));
        let mixed = PkiMaterial {
            server_cert_pem: other.server_cert_pem,
            server_key_pem: other.server_key_pem,
            ..one
        };
        assert_eq!(
            plan(Some(&mixed), &request(&["vault"]), at(1)),
            PkiPlan::IssueServer(RenewReason::NotIssuedByCa)
        );
    }

    #[test]
    fn garbage_in_the_secret_is_replaced_not_trusted() {
        let mut material = fresh(&["vault"], at(0));
        material.server_cert_pem = "not a certificate".into();
        assert!(matches!(
            plan(Some(&material), &request(&["vault"]), at(1)),
            PkiPlan::IssueServer(RenewReason::ServerUnreadable(_))
        ));
    }

    #[test]
    fn private_keys_never_print() {
        let material = fresh(&["vault"], at(0));
        let printed = format!("{material:?}");
        assert!(!printed.contains("PRIVATE KEY"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }
}
