//! Plain HTTPS calls for what tests check from the outside (capabilities of a token,
//! snapshot reads), independent of the library under test.

use std::net::Ipv4Addr;

use serde_json::Value;

pub struct Raw {
    http: reqwest::Client,
}

pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub bytes: Vec<u8>,
}

impl Raw {
    pub fn new(ca_pem: &str) -> Raw {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(cert.unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        Raw { http }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        ip: Ipv4Addr,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("https://{ip}:8200/v1/{path}"));
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            request = request.json_body(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            json,
            bytes,
        }
    }

    pub async fn get(&self, ip: Ipv4Addr, path: &str, token: Option<&str>) -> Answer {
        self.call(reqwest::Method::GET, ip, path, token, None).await
    }

    pub async fn post(&self, ip: Ipv4Addr, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(reqwest::Method::POST, ip, path, token, Some(body))
            .await
    }
}

trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header("Content-Type", "application/json")
            .body(serde_json::to_vec(body).unwrap_or_default())
    }
}

impl Raw {
    pub async fn post_bytes(
        &self,
        ip: Ipv4Addr,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self
            .http
            .post(format!("https://{ip}:8200/v1/{path}"))
            .body(body);
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            json,
            bytes,
        }
    }
}
