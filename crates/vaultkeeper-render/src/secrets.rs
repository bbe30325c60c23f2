//! The certificate Secrets (`tls.mode: SelfSigned`), the cert-manager Certificate
//! (`tls.mode: CertManager`) and the metrics-token Secret shell.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use secrecy::ExposeSecret;
use vaultkeeper_api::TlsMode;

use crate::labels::Component;
use crate::manifest::{Manifest, metadata};
use crate::{RenderError, Scope};

/// The kind of Secret that holds a certificate and its key.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

pub(crate) fn render(scope: &Scope<'_>) -> Result<Vec<Manifest>, RenderError> {
    let names = &scope.names;
    let labels = scope.labels.object(Component::Server);
    let mut out = Vec::new();
    match scope.cluster.spec.tls.mode {
        TlsMode::SelfSigned => {
            let pki = scope.ctx.pki.ok_or(RenderError::MissingPki)?;
            out.push(secret(
                scope,
                names.ca_secret(),
                labels.clone(),
                Some(TLS_SECRET_TYPE),
                [
                    ("tls.crt", pki.ca_cert_pem.as_str()),
                    ("tls.key", pki.ca_key_pem.expose_secret()),
                ],
            )?);
            out.push(secret(
                scope,
                names.server_tls_secret(),
                labels.clone(),
                Some(TLS_SECRET_TYPE),
                [
                    ("tls.crt", pki.server_cert_pem.as_str()),
                    ("tls.key", pki.server_key_pem.expose_secret()),
                    ("ca.crt", pki.ca_cert_pem.as_str()),
                ],
            )?);
        }
        TlsMode::CertManager => out.push(certificate(scope, labels.clone())?),
        TlsMode::Secret | TlsMode::Disabled => {}
    }
    if scope.cluster.spec.monitoring.enabled {
        // Only the shell: the metrics-token job writes the token with its own field
        // manager, so applying this never touches it.
        out.push(secret(
            scope,
            names.metrics_token_secret(),
            scope.labels.object(Component::MetricsToken),
            Some("Opaque"),
            [],
        )?);
    }
    Ok(out)
}

fn secret<const N: usize>(
    scope: &Scope<'_>,
    name: String,
    labels: BTreeMap<String, String>,
    type_: Option<&str>,
    data: [(&str, &str); N],
) -> Result<Manifest, RenderError> {
    let meta = metadata(scope, name, labels);
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    Manifest::new(
        "v1",
        "Secret",
        &meta,
        &Secret {
            metadata: meta.clone(),
            type_: type_.map(str::to_owned),
            data: (!data.is_empty()).then_some(data),
            ..Secret::default()
        },
    )
}

fn certificate(
    scope: &Scope<'_>,
    labels: BTreeMap<String, String>,
) -> Result<Manifest, RenderError> {
    let issuer = scope
        .cluster
        .spec
        .tls
        .cert_manager
        .as_ref()
        .ok_or_else(|| RenderError::Invalid {
            field: "spec.tls.certManager",
            detail: "spec.tls.mode CertManager needs spec.tls.certManager.issuerName".to_owned(),
        })?;
    let request = crate::pki::server_certificate_request(scope.cluster, scope.namespace());
    let meta = metadata(scope, scope.names.certificate(), labels);
    let certificate = serde_json::json!({
        "metadata": meta,
        "spec": {
            "secretName": scope.names.server_tls_secret(),
            "commonName": scope.names.service(),
            "dnsNames": request.dns_names,
            "ipAddresses": request.ip_addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "duration": "8760h",
            "renewBefore": "720h",
            "usages": ["server auth", "client auth", "digital signature", "key encipherment"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": {
                "name": issuer.issuer_name,
                "kind": issuer.issuer_kind.as_str(),
                "group": issuer.issuer_group,
            },
        }
    });
    Manifest::new("cert-manager.io/v1", "Certificate", &meta, &certificate)
}
