//! The operator's own HTTP endpoints: `/metrics` (Prometheus), `/healthz` (the process
//! runs) and `/readyz` (it reaches the API server; a standby replica waiting for the
//! leader Lease is ready too, so a rollout does not stall on it).
//!
//! Anyone who can reach the port can talk to it, so the server gives no client more than a
//! scrape needs ([`Limits`]): headers must arrive within a few seconds (a client that
//! sends them slowly is dropped), a connection lives a bounded time, requests are small
//! GETs, and only so many connections are served at once, so a flood of idle or slow
//! connections cannot exhaust the operator's tasks and memory.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// What the endpoints report.
pub struct Health {
    /// The metrics to serve.
    pub metrics: Arc<Metrics>,
    /// Set once the API server answered.
    pub ready: AtomicBool,
}

impl Health {
    /// Not ready until told otherwise.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            ready: AtomicBool::new(false),
        }
    }
}

/// What the endpoint server allows one client.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a client may take to send a request's headers, from the connection's
    /// start or the end of its previous request.
    pub header_read_timeout: Duration,
    /// How long one connection may stay open, however busy.
    pub connection_lifetime: Duration,
    /// How many connections are served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// The largest request head (request line and headers), in bytes.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    /// A Prometheus scrape or a kubelet probe sends a few hundred bytes at once and is done
    /// in well under a second.
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(120),
            max_connections: 64,
            max_request_bytes: 16 * 1024,
        }
    }
}

fn respond(health: &Health, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        _ if method != Method::GET && method != Method::HEAD => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET is served here\n".to_owned(),
        ),
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            health.metrics.encode(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if health.ready.load(Ordering::Relaxed) => {
            (StatusCode::OK, "text/plain", "ok\n".to_owned())
        }
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the Kubernetes API has not answered yet\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Binds `address` (failing at start-up, so a taken port is a clear error) and serves
/// until `shutdown` turns true, with the default [`Limits`].
pub async fn serve(
    address: SocketAddr,
    health: Arc<Health>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    serve_with(address, health, shutdown, Limits::default()).await
}

/// [`serve`] with the given limits.
pub async fn serve_with(
    address: SocketAddr,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(address).await?;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    Ok(tokio::spawn(async move {
        loop {
            // A free slot first: past the limit, new connections wait in the kernel's
            // backlog instead of each costing a task and buffers here.
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot,
                _ = shutdown.changed() => return,
            };
            let Ok(slot) = slot else { return };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.changed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    warn!(error = %e, "accepting a metrics connection failed");
                    // Out of file descriptors, say: do not spin on it.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let health = health.clone();
            tokio::spawn(async move {
                let _slot = slot;
                serve_connection(stream, health, limits, peer).await;
            });
        }
    }))
}

/// Serves one connection within `limits`.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    health: Arc<Health>,
    limits: Limits,
    peer: SocketAddr,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&health, request.method(), request.uri().path());
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_request_bytes.max(8 * 1024))
        .serve_connection(TokioIo::new(stream), service);
    let outcome = tokio::time::timeout(limits.connection_lifetime, connection).await;
    match outcome {
        Ok(Ok(())) => {}
        // A client that was too slow, sent too much or went away is its own problem;
        // the operator's log is not the place for every such client.
        Ok(Err(e)) => debug!(error = %e, %peer, "a metrics connection ended with an error"),
        Err(_) => debug!(%peer, "a metrics connection outlived its limit and was closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ClusterLabels;

    async fn get(address: SocketAddr, path: &str) -> (u16, String) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::Client::new()
            .get(format!("http://{address}{path}"))
            .send()
            .await
            .expect("the endpoint answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    #[tokio::test]
    async fn health_readiness_and_metrics_are_served_until_shutdown() {
        let address: SocketAddr = "127.23.0.1:18080".parse().expect("address");
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::new(metrics.clone()));
        let (stop, stopped) = watch::channel(false);
        let server = serve(address, health.clone(), stopped)
            .await
            .expect("binds");

        assert_eq!(get(address, "/healthz").await.0, 200);
        let (status, body) = get(address, "/readyz").await;
        assert_eq!(status, 503, "not ready before the API server answered");
        assert!(body.contains("Kubernetes API"), "{body}");
        health.ready.store(true, Ordering::Relaxed);
        assert_eq!(get(address, "/readyz").await.0, 200);

        let labels = ClusterLabels {
            namespace: "vault".into(),
            name: "prod".into(),
        };
        metrics.sealed_pods.get_or_create(&labels).set(2);
        let (status, body) = get(address, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.contains(r#"vaultkeeper_sealed_pods{namespace="vault",name="prod"} 2"#),
            "{body}"
        );
        assert_eq!(get(address, "/nothing").await.0, 404);

        // A second bind of the same address is a clear start-up error.
        let (_keep, unused) = watch::channel(false);
        assert!(serve(address, health, unused).await.is_err());

        stop.send(true).expect("stop");
        server.await.expect("the server stops");
    }

    fn quick(max_connections: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(1),
            connection_lifetime: Duration::from_secs(30),
            max_connections,
            max_request_bytes: 16 * 1024,
        }
    }

    async fn start(address: SocketAddr, limits: Limits) -> watch::Sender<bool> {
        let health = Arc::new(Health::new(Arc::new(Metrics::new())));
        let (stop, stopped) = watch::channel(false);
        serve_with(address, health, stopped, limits)
            .await
            .expect("binds");
        stop
    }

    /// Sends half a request line and waits for the server to end the connection; how
    /// long that took.
    async fn hold_half_a_request(address: SocketAddr) -> Duration {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut slow = tokio::net::TcpStream::connect(address)
            .await
            .expect("connects");
        let started = std::time::Instant::now();
        slow.write_all(b"GET /metr").await.expect("writes");
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection");
        started.elapsed()
    }

    #[tokio::test]
    async fn a_client_sending_headers_slowly_is_dropped_while_others_are_served() {
        let address: SocketAddr = "127.23.0.1:18081".parse().expect("address");
        let _stop = start(address, quick(8)).await;
        let slow = tokio::spawn(hold_half_a_request(address));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(get(address, "/healthz").await.0, 200, "others are served");
        let held = slow.await.expect("the slow client ends");
        assert!(
            held >= Duration::from_millis(900) && held < Duration::from_secs(5),
            "dropped after the 1 s header timeout, not before and not much later: {held:?}"
        );
        assert_eq!(get(address, "/healthz").await.0, 200, "still serving");
    }

    #[tokio::test]
    async fn connections_past_the_limit_wait_until_a_slot_frees() {
        let address: SocketAddr = "127.23.0.1:18082".parse().expect("address");
        let _stop = start(address, quick(2)).await;
        let slow: Vec<_> = (0..2)
            .map(|_| tokio::spawn(hold_half_a_request(address)))
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        assert_eq!(get(address, "/healthz").await.0, 200);
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "both slots were held by slow clients, so the third waited: {:?}",
            started.elapsed()
        );
        for client in slow {
            client.await.expect("the slow client ends");
        }
    }

    #[tokio::test]
    async fn oversized_requests_and_other_methods_are_refused() {
        let address: SocketAddr = "127.23.0.1:18083".parse().expect("address");
        let _stop = start(address, quick(8)).await;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let huge = "x".repeat(64 * 1024);
        let status = reqwest::Client::new()
            .get(format!("http://{address}/metrics"))
            .header("x-padding", huge)
            .send()
            .await
            .expect("the server answers")
            .status();
        assert_eq!(
            status.as_u16(),
            431,
            "a request head past the limit is refused"
        );
        let status = reqwest::Client::new()
            .post(format!("http://{address}/metrics"))
            .body("x")
            .send()
            .await
            .expect("the server answers")
            .status();
        assert_eq!(status.as_u16(), 405);
    }
}
