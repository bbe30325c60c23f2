//! A hostile "Vault" behind real TLS that answers with a gigabyte: the one Vault HTTP
//! client stops at its cap, says so naming the pod and the cap, and its memory does not
//! grow with the answer. The gigabyte is streamed from one small buffer, never allocated.

#[path = "support/pki.rs"]
mod pki;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vaultkeeper_vault::client::{HttpNodeClient, HttpOptions, NodeClient};
use vaultkeeper_vault::node::{NodeEndpoint, PodName};

const GIB: u64 = 1 << 30;
const CHUNK: usize = 64 * 1024;

/// How the flood is framed.
#[derive(Clone, Copy)]
enum Flood {
    /// `Content-Length: 1 GiB`, then the bytes.
    Declared,
    /// Chunked transfer encoding without a length: only counting can stop it.
    Chunked,
}

/// Serves one flood per connection on `address`; the returned counter says how many body
/// bytes the server managed to hand to the socket.
async fn flooding_server(address: SocketAddr, pki: &pki::Pki, flood: Flood) -> Arc<AtomicU64> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
            .map(|c| c.expect("certificate"))
            .collect();
    let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(address).await.expect("binds");
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let framing = match flood {
                    Flood::Declared => format!("Content-Length: {GIB}"),
                    Flood::Chunked => "Transfer-Encoding: chunked".to_owned(),
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
                );
                if tls.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let zeros = [b' '; CHUNK];
                let chunk_head = format!("{CHUNK:x}\r\n");
                let mut left = GIB;
                while left > 0 {
                    let written = match flood {
                        Flood::Declared => tls.write_all(&zeros).await,
                        Flood::Chunked => {
                            let mut frame = Vec::with_capacity(CHUNK + 16);
                            frame.extend_from_slice(chunk_head.as_bytes());
                            frame.extend_from_slice(&zeros);
                            frame.extend_from_slice(b"\r\n");
                            tls.write_all(&frame).await
                        }
                    };
                    if written.is_err() {
                        return;
                    }
                    counter.fetch_add(CHUNK as u64, Ordering::Relaxed);
                    left -= CHUNK as u64;
                }
            });
        }
    });
    sent
}

/// This process's resident memory, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

async fn ask_flooding_pod(subnet_host: u8, flood: Flood) -> (String, u64, Duration) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::Pki::new(dir.path(), 40);
    let ip = Ipv4Addr::new(127, 10, 40, subnet_host);
    let address = SocketAddr::new(IpAddr::V4(ip), 8200);
    let sent = flooding_server(address, &pki, flood).await;
    let client =
        HttpNodeClient::new(pki.ca_pem.as_bytes(), HttpOptions::default()).expect("client");
    let pod = PodName::new("vault-0").expect("pod name");
    client
        .add_pod(pod.clone(), &NodeEndpoint::by_ip(IpAddr::V4(ip), 8200))
        .expect("pod added");
    let started = Instant::now();
    let error = client
        .seal_status(&pod)
        .await
        .expect_err("a gigabyte is not a seal status");
    let took = started.elapsed();
    (error.to_string(), sent.load(Ordering::Relaxed), took)
}

#[tokio::test]
async fn an_answer_announcing_a_gigabyte_is_refused_before_its_body_is_read() {
    let (error, _sent, took) = ask_flooding_pod(1, Flood::Declared).await;
    assert!(error.contains("vault-0"), "names the pod: {error}");
    assert!(
        error.contains("1 MiB limit on a Vault API answer"),
        "names the cap: {error}"
    );
    assert!(took < Duration::from_secs(10), "refused at once: {took:?}");
}

#[tokio::test]
async fn a_streamed_gigabyte_stops_at_the_cap_with_bounded_memory() {
    let before = resident_bytes();
    let (error, sent, took) = ask_flooding_pod(2, Flood::Chunked).await;
    let grown = resident_bytes().saturating_sub(before);
    eprintln!(
        "offered 1 GiB: the server sent {sent} bytes, resident memory grew by {grown} bytes, {took:?}; {error}"
    );
    assert!(error.contains("vault-0"), "names the pod: {error}");
    assert!(
        error.contains("1 MiB limit on a Vault API answer"),
        "names the cap: {error}"
    );
    assert!(
        sent < 64 * 1024 * 1024,
        "the client stopped reading near the cap; the server could send {sent} bytes"
    );
    assert!(
        grown < 64 * 1024 * 1024,
        "resident memory grew by {grown} bytes while a gigabyte was offered"
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
}
