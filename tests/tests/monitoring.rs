//! The metrics token end to end on the simulated cluster, which has no prometheus-operator:
//! the operator renders the metrics-token CronJob (held until bootstrap), the Job's pod
//! runs the real `vaultkeeper metrics-token` against real OpenBao pods, the token lands in
//! the Secret, and the operator shows its expiry and last renewal in status. Nothing
//! breaks without the monitoring.coreos.com CRDs, and `MonitoringReady` says why.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use vaultkeeper_api::VaultCluster;
use vaultkeeper_e2e::operator::{Operator, apply_cluster, cluster_with_pods, ready, wait_for};

const SLOT: u8 = 162;
const NAMESPACE: &str = "metrics";

const MANIFEST: &str = r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: openbao
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 1
  backup:
    enabled: false
  monitoring:
    tokenRenewSchedule: "* * * * *"
"#;

fn monitoring_condition(vc: &VaultCluster) -> Option<(String, String, String)> {
    vc.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "MonitoringReady")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_token_job_keeps_a_token_and_status_shows_its_expiry() {
    let sim = cluster_with_pods(SLOT).await;
    let mut operator = Operator::install_and_start(&sim).await;
    apply_cluster(&sim, MANIFEST, NAMESPACE).await;
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(180),
        "Ready",
        ready,
    )
    .await;
    // Ready does not wait for monitoring; the condition says what is missing.
    let (status, reason, message) = monitoring_condition(&vc).expect("MonitoringReady");
    assert_eq!(status, "False", "{reason}: {message}");

    // The CronJob fires every minute once bootstrap has created the job's role.
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(180),
        "a metrics token expiry in status",
        |vc| {
            vc.status
                .as_ref()
                .and_then(|s| s.metrics_token.as_ref())
                .is_some_and(|t| t.expiry_time.is_some())
        },
    )
    .await;
    let token = vc
        .status
        .as_ref()
        .and_then(|s| s.metrics_token.clone())
        .expect("metricsToken");
    let expiry = token.expiry_time.expect("expiry").0;
    let renewed = token.last_renewal_time.expect("last renewal").0;
    assert!(
        expiry > jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24),
        "a periodic token with the default 14-day period: {expiry}"
    );
    assert!(renewed <= jiff::Timestamp::now() + jiff::SignedDuration::from_secs(5));
    // The token is in the Secret the ServiceMonitor would use.
    let secrets: Api<Secret> = Api::namespaced(sim.client().expect("admin"), NAMESPACE);
    let secret = secrets.get("openbao-metrics-token").await.expect("Secret");
    let stored = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .map(|t| t.0.len())
        .unwrap_or_default();
    assert!(stored > 10, "the Secret holds a token");
    // Without the prometheus-operator: nothing applied for it, and status says why.
    let (status, reason, message) = monitoring_condition(&vc).expect("MonitoringReady");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "PrometheusOperatorMissing"),
        "{message}"
    );
    assert!(message.contains("monitoring.coreos.com"), "{message}");
    assert!(ready(&vc), "the cluster stays Ready");

    // The next run renews: the last renewal moves forward.
    let later = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(150),
        "a second renewal",
        |vc| {
            vc.status
                .as_ref()
                .and_then(|s| s.metrics_token.as_ref())
                .and_then(|t| t.last_renewal_time.as_ref())
                .is_some_and(|t| t.0 > renewed)
        },
    )
    .await;
    assert!(ready(&later));
    // Renewing a periodic token restarts its period: the expiry moves forward too.
    let later_expiry = later
        .status
        .as_ref()
        .and_then(|s| s.metrics_token.as_ref())
        .and_then(|t| t.expiry_time.as_ref())
        .map(|t| t.0)
        .expect("expiry after the renewal");
    assert!(
        later_expiry > expiry,
        "the renewal extends the token: {expiry} -> {later_expiry}"
    );

    operator.stop().await;
    sim.shutdown().await;
}
