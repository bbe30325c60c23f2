//! Probes, as the kubelet runs them. [`parse_probe`] and [`ProbeTracker`] are the pure
//! part (spec → timing/action; consecutive results → healthy or not, with thresholds); the
//! HTTP(S) and TCP checks are real network calls against the pod IP; exec probes run
//! inside the container through the runtime's exec path (see `pod.rs`).
//!
//! HTTPS probes do not verify the server certificate, as the kubelet does not. Redirects
//! are not followed: a 3xx answer counts as success, as it does for the kubelet when the
//! redirect leaves the host.

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// Gates the other two until it succeeds once.
    Startup,
    /// Restarts the container when it fails.
    Liveness,
    /// Decides whether the container is ready.
    Readiness,
}

impl ProbeKind {
    /// The spec field name (`livenessProbe`, …).
    pub fn field(&self) -> &'static str {
        match self {
            ProbeKind::Startup => "startupProbe",
            ProbeKind::Liveness => "livenessProbe",
            ProbeKind::Readiness => "readinessProbe",
        }
    }

    /// The result before the first run: not ready, alive, not started.
    pub fn initial_result(&self) -> bool {
        matches!(self, ProbeKind::Liveness)
    }
}

/// HTTP or HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTPS without certificate verification.
    Https,
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    /// Runs a command in the container; exit 0 is success.
    Exec {
        /// argv.
        command: Vec<String>,
    },
    /// GET; 200–399 is success.
    HttpGet {
        /// HTTP or HTTPS.
        scheme: Scheme,
        /// Host to connect to (default: the pod IP).
        host: Option<String>,
        /// Port.
        port: u16,
        /// Path with query.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// Opens a TCP connection.
    TcpSocket {
        /// Host (default: the pod IP).
        host: Option<String>,
        /// Port.
        port: u16,
    },
}

/// A parsed probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Which probe.
    pub kind: ProbeKind,
    /// What it does.
    pub action: ProbeAction,
    /// Wait before the first run.
    pub initial_delay: Duration,
    /// Time between runs.
    pub period: Duration,
    /// Per-run timeout.
    pub timeout: Duration,
    /// Consecutive successes to become healthy.
    pub success_threshold: u32,
    /// Consecutive failures to become unhealthy.
    pub failure_threshold: u32,
    /// Probe-level `terminationGracePeriodSeconds` (liveness/startup kills).
    pub termination_grace: Option<Duration>,
}

fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p} is not a port number (1-65535)")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| {
                format!(
                    "the container has no port named {name:?}; name it in ports[] or use a number"
                )
            }),
    }
}

fn seconds(
    v: Option<i32>,
    default: i32,
    min: i32,
    field: &str,
) -> Result<Duration, (String, String)> {
    let v = v.unwrap_or(default);
    if v < min {
        return Err((field.to_string(), format!("{v} must be at least {min}")));
    }
    Ok(Duration::from_secs(v as u64))
}

/// Parses a probe of `container`. Errors name the field below the probe
/// (`readinessProbe.httpGet.port`).
pub fn parse_probe(
    kind: ProbeKind,
    probe: &Probe,
    container: &Container,
) -> Result<ProbeSpec, (String, String)> {
    let f = kind.field();
    let mut actions = 0;
    let mut action = None;
    if let Some(e) = &probe.exec {
        actions += 1;
        let command = e.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Err((format!("{f}.exec.command"), "must not be empty".to_string()));
        }
        action = Some(ProbeAction::Exec { command });
    }
    if let Some(h) = &probe.http_get {
        actions += 1;
        let scheme = match h.scheme.as_deref() {
            None | Some("HTTP") => Scheme::Http,
            Some("HTTPS") => Scheme::Https,
            Some(other) => {
                return Err((
                    format!("{f}.httpGet.scheme"),
                    format!("{other:?} is not HTTP or HTTPS"),
                ));
            }
        };
        let port =
            resolve_port(&h.port, container).map_err(|m| (format!("{f}.httpGet.port"), m))?;
        let path = match h.path.as_deref() {
            None | Some("") => "/".to_string(),
            Some(p) if p.starts_with('/') => p.to_string(),
            Some(p) => format!("/{p}"),
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err((
                format!("{f}.httpGet.path"),
                format!("{path:?} contains whitespace"),
            ));
        }
        let headers = h
            .http_headers
            .iter()
            .flatten()
            .map(|hh| (hh.name.clone(), hh.value.clone()))
            .collect::<Vec<_>>();
        if let Some((n, _)) = headers.iter().find(|(n, v)| {
            n.is_empty() || n.contains([':', '\r', '\n']) || v.contains(['\r', '\n'])
        }) {
            return Err((
                format!("{f}.httpGet.httpHeaders"),
                format!("{n:?} is not a valid header"),
            ));
        }
        action = Some(ProbeAction::HttpGet {
            scheme,
            host: h.host.clone().filter(|h| !h.is_empty()),
            port,
            path,
            headers,
        });
    }
    if let Some(t) = &probe.tcp_socket {
        actions += 1;
        let port =
            resolve_port(&t.port, container).map_err(|m| (format!("{f}.tcpSocket.port"), m))?;
        action = Some(ProbeAction::TcpSocket {
            host: t.host.clone().filter(|h| !h.is_empty()),
            port,
        });
    }
    if probe.grpc.is_some() {
        return Err((
            format!("{f}.grpc"),
            "gRPC probes are not supported by the simulated kubelet; use exec, httpGet or tcpSocket"
                .to_string(),
        ));
    }
    let action = match (actions, action) {
        (1, Some(a)) => a,
        _ => {
            return Err((
                f.to_string(),
                "exactly one of exec, httpGet or tcpSocket must be set".to_string(),
            ));
        }
    };
    let success_threshold = probe.success_threshold.unwrap_or(1);
    if success_threshold < 1 || (kind != ProbeKind::Readiness && success_threshold != 1) {
        return Err((
            format!("{f}.successThreshold"),
            "must be 1 for liveness and startup probes, and at least 1 otherwise".to_string(),
        ));
    }
    let failure_threshold = probe.failure_threshold.unwrap_or(3);
    if failure_threshold < 1 {
        return Err((
            format!("{f}.failureThreshold"),
            "must be at least 1".to_string(),
        ));
    }
    let termination_grace = match probe.termination_grace_period_seconds {
        Some(s) if s >= 0 => Some(Duration::from_secs(s as u64)),
        Some(s) => {
            return Err((
                format!("{f}.terminationGracePeriodSeconds"),
                format!("{s} must not be negative"),
            ));
        }
        None => None,
    };
    Ok(ProbeSpec {
        kind,
        action,
        initial_delay: seconds(
            probe.initial_delay_seconds,
            0,
            0,
            &format!("{f}.initialDelaySeconds"),
        )?,
        period: seconds(probe.period_seconds, 10, 1, &format!("{f}.periodSeconds"))?,
        timeout: seconds(probe.timeout_seconds, 1, 1, &format!("{f}.timeoutSeconds"))?,
        success_threshold: success_threshold as u32,
        failure_threshold: failure_threshold as u32,
        termination_grace,
    })
}

/// Turns consecutive probe results into a healthy/unhealthy verdict with thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTracker {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    result: bool,
}

impl ProbeTracker {
    /// A tracker at the probe kind's initial result.
    pub fn new(spec: &ProbeSpec) -> Self {
        ProbeTracker {
            success_threshold: spec.success_threshold,
            failure_threshold: spec.failure_threshold,
            successes: 0,
            failures: 0,
            result: spec.kind.initial_result(),
        }
    }

    /// The current verdict.
    pub fn result(&self) -> bool {
        self.result
    }

    /// Records one run; returns the new verdict when it changed.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        if success {
            self.successes += 1;
            self.failures = 0;
            if !self.result && self.successes >= self.success_threshold {
                self.result = true;
                return Some(true);
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.result && self.failures >= self.failure_threshold {
                self.result = false;
                return Some(false);
            }
        }
        None
    }
}

/// One probe run's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Whether it succeeded.
    pub success: bool,
    /// What happened (status code, error, command output), bounded.
    pub message: String,
}

impl ProbeOutcome {
    fn failure(message: impl Into<String>) -> Self {
        ProbeOutcome {
            success: false,
            message: message.into(),
        }
    }
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        // The kubelet probes HTTPS without verifying the certificate.
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn probe_tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn send_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    host_header: &str,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {host_header}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("user-agent"))
    {
        request.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("accept"))
    {
        request.push_str("Accept: */*\r\n");
    }
    for (n, v) in headers {
        request.push_str(&format!("{n}: {v}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < 1024 {
        if stream.read(&mut byte).await? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("malformed HTTP response {:?}", line.trim()),
        )),
    }
}

/// An HTTP(S) GET against `addr`; 200–399 is success.
pub async fn http_probe(
    addr: SocketAddr,
    scheme: Scheme,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> ProbeOutcome {
    let host_header = addr.to_string();
    let run = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        match scheme {
            Scheme::Http => send_get(tcp, &host_header, path, headers).await,
            Scheme::Https => {
                let config = probe_tls_config().map_err(std::io::Error::other)?;
                let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                send_get(tls, &host_header, path, headers).await
            }
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => ProbeOutcome::failure(format!(
            "Get \"{}://{host_header}{path}\": context deadline exceeded",
            if scheme == Scheme::Https {
                "https"
            } else {
                "http"
            }
        )),
        Ok(Err(e)) => ProbeOutcome::failure(format!("Get {host_header}{path}: {e}")),
        Ok(Ok(code)) if (200..400).contains(&code) => ProbeOutcome {
            success: true,
            message: format!("HTTP probe succeeded with statuscode: {code}"),
        },
        Ok(Ok(code)) => ProbeOutcome::failure(format!("HTTP probe failed with statuscode: {code}")),
    }
}

/// A TCP connect to `addr`.
pub async fn tcp_probe(addr: SocketAddr, timeout: Duration) -> ProbeOutcome {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => ProbeOutcome {
            success: true,
            message: String::new(),
        },
        Ok(Err(e)) => ProbeOutcome::failure(format!("dial tcp {addr}: {e}")),
        Err(_) => ProbeOutcome::failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, ExecAction, GRPCAction, HTTPGetAction, TCPSocketAction,
    };

    fn container() -> Container {
        Container {
            name: "vault".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8200,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn helm_readiness_probe_parses_with_defaults() {
        let probe = Probe {
            exec: Some(ExecAction {
                command: Some(vec![
                    "/bin/sh".into(),
                    "-ec".into(),
                    "vault status -tls-skip-verify".into(),
                ]),
            }),
            failure_threshold: Some(2),
            initial_delay_seconds: Some(5),
            period_seconds: Some(5),
            success_threshold: Some(1),
            timeout_seconds: Some(3),
            ..Default::default()
        };
        let spec = parse_probe(ProbeKind::Readiness, &probe, &container()).unwrap();
        assert_eq!(spec.period, Duration::from_secs(5));
        assert_eq!(spec.failure_threshold, 2);
        assert!(matches!(spec.action, ProbeAction::Exec { .. }));

        let http = Probe {
            http_get: Some(HTTPGetAction {
                path: Some("v1/sys/health?standbyok=true".into()),
                port: IntOrString::String("http".into()),
                scheme: Some("HTTPS".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = parse_probe(ProbeKind::Liveness, &http, &container()).unwrap();
        assert_eq!(
            spec.action,
            ProbeAction::HttpGet {
                scheme: Scheme::Https,
                host: None,
                port: 8200,
                path: "/v1/sys/health?standbyok=true".into(),
                headers: vec![],
            }
        );
        assert_eq!(
            (
                spec.period.as_secs(),
                spec.timeout.as_secs(),
                spec.failure_threshold
            ),
            (10, 1, 3)
        );
    }

    #[test]
    fn invalid_probes_name_the_field() {
        let cases: Vec<(ProbeKind, Probe, &str)> = vec![
            (ProbeKind::Readiness, Probe::default(), "readinessProbe"),
            (
                ProbeKind::Liveness,
                Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::String("nope".into()),
                        host: None,
                    }),
                    ..Default::default()
                },
                "livenessProbe.tcpSocket.port",
            ),
            (
                ProbeKind::Liveness,
                Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(8200),
                        host: None,
                    }),
                    success_threshold: Some(2),
                    ..Default::default()
                },
                "livenessProbe.successThreshold",
            ),
            (
                ProbeKind::Startup,
                Probe {
                    grpc: Some(GRPCAction {
                        port: 9000,
                        service: None,
                    }),
                    ..Default::default()
                },
                "startupProbe.grpc",
            ),
            (
                ProbeKind::Readiness,
                Probe {
                    exec: Some(ExecAction {
                        command: Some(vec![]),
                    }),
                    ..Default::default()
                },
                "readinessProbe.exec.command",
            ),
        ];
        for (kind, probe, want) in cases {
            let (field, _) = parse_probe(kind, &probe, &container()).unwrap_err();
            assert_eq!(field, want);
        }
    }

    #[test]
    fn tracker_applies_thresholds() {
        let spec = ProbeSpec {
            kind: ProbeKind::Readiness,
            action: ProbeAction::TcpSocket {
                host: None,
                port: 1,
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: 2,
            failure_threshold: 2,
            termination_grace: None,
        };
        let mut t = ProbeTracker::new(&spec);
        assert!(!t.result(), "readiness starts false");
        let seq = [
            (true, None),
            (true, Some(true)),
            (false, None),
            (true, None),
            (false, None),
            (false, Some(false)),
            (false, None),
        ];
        for (i, (ok, want)) in seq.into_iter().enumerate() {
            assert_eq!(t.record(ok), want, "step {i}");
        }
        let live = ProbeTracker::new(&ProbeSpec {
            kind: ProbeKind::Liveness,
            ..spec
        });
        assert!(live.result(), "liveness starts true");
    }

    #[tokio::test]
    async fn http_and_tcp_probes_talk_to_real_sockets() {
        // A tiny real HTTP server on a loopback address of this crate's test range.
        let listener = tokio::net::TcpListener::bind("127.22.250.1:0")
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for code in [200u16, 503] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
                assert!(req.contains("User-Agent: kube-probe/1.33"), "{req}");
                assert!(req.contains("X-Probe: yes"), "{req}");
                s.write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        let headers = vec![("X-Probe".to_string(), "yes".to_string())];
        let ok = http_probe(
            addr,
            Scheme::Http,
            "/healthz",
            &headers,
            Duration::from_secs(2),
        )
        .await;
        assert!(ok.success, "{ok:?}");
        let bad = http_probe(
            addr,
            Scheme::Http,
            "/healthz",
            &headers,
            Duration::from_secs(2),
        )
        .await;
        assert!(!bad.success && bad.message.contains("503"), "{bad:?}");
        server.await.unwrap();
        let closed: SocketAddr = "127.22.250.2:1".parse().unwrap();
        assert!(!tcp_probe(closed, Duration::from_secs(1)).await.success);
        assert!(
            !http_probe(closed, Scheme::Https, "/", &[], Duration::from_secs(1))
                .await
                .success
        );
    }
}
