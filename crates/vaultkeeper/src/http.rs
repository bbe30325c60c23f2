//! The operator's own HTTP endpoints: `/metrics` (Prometheus), `/healthz` (the process
//! runs) and `/readyz` (it reaches the API server; a standby replica waiting for the
//! leader Lease is ready too, so a rollout does not stall on it).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::warn;

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

fn respond(health: &Health, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
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
/// until `shutdown` turns true.
pub async fn serve(
    address: SocketAddr,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(address).await?;
    Ok(tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.changed() => return,
            };
            let (stream, _) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    warn!(error = %e, "accepting a metrics connection failed");
                    continue;
                }
            };
            let health = health.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let response = respond(&health, request.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    warn!(error = %e, "serving a metrics connection failed");
                }
            });
        }
    }))
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
}
