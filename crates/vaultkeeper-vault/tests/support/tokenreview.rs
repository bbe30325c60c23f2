//! The one Kubernetes API call OpenBao's Kubernetes auth makes: `POST
//! /apis/authentication.k8s.io/v1/tokenreviews`, over HTTPS. There is no Kubernetes API
//! server on this machine, so this stands in for it: it issues service-account JWTs and
//! answers reviews for exactly the JWTs it issued (anything else is "not authenticated").
//! Audiences are honoured as a real API server honours them: a review that names
//! audiences authenticates only a token carrying one of them, and answers which.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vaultkeeper_api::login::VAULT_LOGIN_AUDIENCE;
use vaultkeeper_vault::secret::{SecretString, secret_string};

use super::pki::Pki;

#[derive(Clone)]
struct Account {
    namespace: String,
    name: String,
    uid: String,
    audiences: Vec<String>,
}

/// The audience of the API server's own tokens (what a pod's default token carries).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

pub struct TokenReviewServer {
    pub url: String,
    issued: Arc<Mutex<HashMap<String, Account>>>,
    reviews: Arc<Mutex<u32>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenReviewServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenReviewServer {
    pub async fn start(address: SocketAddr, pki: &Pki) -> TokenReviewServer {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
                .map(|c| c.unwrap_or_else(|e| panic!("{e}")))
                .collect();
        let key =
            PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap_or_else(|e| panic!("{e}"));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(address)
            .await
            .unwrap_or_else(|e| panic!("bind {address}: {e}"));
        let issued: Arc<Mutex<HashMap<String, Account>>> = Arc::default();
        let reviews: Arc<Mutex<u32>> = Arc::default();
        let (issued_task, reviews_task) = (issued.clone(), reviews.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let issued = issued_task.clone();
                let reviews = reviews_task.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    // Keep-alive: answer requests until the client closes.
                    while let Some(body) = read_request(&mut tls).await {
                        if let Ok(mut count) = reviews.lock() {
                            *count += 1;
                        }
                        let answer = review(&issued, &body);
                        let bytes = serde_json::to_vec(&answer).unwrap_or_default();
                        let head = format!(
                            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            bytes.len()
                        );
                        if tls.write_all(head.as_bytes()).await.is_err()
                            || tls.write_all(&bytes).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        TokenReviewServer {
            url: format!("https://{address}"),
            issued,
            reviews,
            task,
        }
    }

    /// A service-account JWT for Vault logins: its audience is the one vaultkeeper's
    /// processes request ([`VAULT_LOGIN_AUDIENCE`]).
    pub fn issue(&self, namespace: &str, name: &str) -> SecretString {
        self.issue_with_audiences(namespace, name, &[VAULT_LOGIN_AUDIENCE])
    }

    /// A service-account JWT carrying `audiences` (unsigned: the auth method is not given
    /// keys, it relies on the review, exactly as with a real API server).
    pub fn issue_with_audiences(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[&str],
    ) -> SecretString {
        let uid = format!(
            "uid-{namespace}-{name}-{}",
            self.issued.lock().map(|m| m.len()).unwrap_or(0)
        );
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = json!({
            "aud": audiences,
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        });
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let nonce: [u8; 32] =
            std::array::from_fn(|i| (i as u8).wrapping_mul(31).wrapping_add(uid.len() as u8));
        let jwt = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(nonce));
        if let Ok(mut issued) = self.issued.lock() {
            issued.insert(
                jwt.clone(),
                Account {
                    namespace: namespace.into(),
                    name: name.into(),
                    uid,
                    audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
                },
            );
        }
        secret_string(jwt)
    }

    /// How many reviews were answered (proves the login went through this server).
    pub fn reviews(&self) -> u32 {
        self.reviews.lock().map(|c| *c).unwrap_or(0)
    }
}

async fn read_request<S: AsyncReadExt + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Some(buffer[header_end..header_end + length].to_vec())
}

fn review(issued: &Mutex<HashMap<String, Account>>, body: &[u8]) -> Value {
    let request = serde_json::from_slice::<Value>(body).unwrap_or_default();
    let token = request["spec"]["token"].as_str().unwrap_or_default();
    // No audiences in the review means the API server's own.
    let mut wanted: Vec<String> = request["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if wanted.is_empty() {
        wanted.push(API_AUDIENCE.to_owned());
    }
    let account = issued.lock().ok().and_then(|m| m.get(token).cloned());
    let status = match account {
        Some(a) => {
            let common: Vec<&String> = wanted.iter().filter(|w| a.audiences.contains(w)).collect();
            if common.is_empty() {
                json!({"authenticated": false, "error": "token audiences are invalid"})
            } else {
                json!({
                    "authenticated": true,
                    "audiences": common,
                    "user": {"username": format!("system:serviceaccount:{}:{}", a.namespace, a.name), "uid": a.uid},
                })
            }
        }
        None => json!({"authenticated": false, "error": "token not issued by this API server"}),
    };
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})
}
