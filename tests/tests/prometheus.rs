//! A real Prometheus scrapes real OpenBao pods the way the rendered ServiceMonitor tells
//! the prometheus-operator to, and evaluates the rendered PrometheusRule.
//!
//! The simulated cluster has the prometheus-operator's CRDs (not the operator itself), so
//! vaultkeeper applies its ServiceMonitor and PrometheusRule. The test does what the
//! prometheus-operator would: it resolves the ServiceMonitor to the pods behind its
//! Service, turns its endpoint (path, params, scheme, bearer token from the Secret, CA and
//! server name) into a scrape config with the same target labels, loads the PrometheusRule's
//! groups, and scrapes the in-process operator's `/metrics` with `honor_labels`, as the
//! chart's ServiceMonitor does. Then:
//!
//! - every pod is up and Vault's metrics are there, through the token the real
//!   `vaultkeeper metrics-token` job issued, which cannot read anything else;
//! - every rule evaluates without error and no alert is pending or firing on the healthy
//!   cluster; every query of the Grafana dashboard runs;
//! - a revoked metrics token is re-issued by the next run and scraping recovers;
//! - with the operator stopped, a restarted pod stays sealed, and `VaultNodeDown` turns
//!   pending for exactly that pod; once the operator is back, it clears.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio::sync::watch;
use vaultkeeper::http::{Health, serve};
use vaultkeeper_e2e::install::{self, workspace_root};
use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, bao_at, bao_at_with_stdin, cluster_with_pods, condition, pod_ip,
    ready, stored_keys, tool, wait_for,
};
use vaultkeeper_sim::SimCluster;
use vaultkeeper_vault::secret::ExposeSecret;

const SLOT: u8 = 163;
const NAMESPACE: &str = "observed";
const NAME: &str = "openbao";

const MANIFEST: &str = r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: openbao
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 3
  keys:
    rootToken: Keep
  backup:
    enabled: false
  monitoring:
    tokenRenewSchedule: "* * * * *"
    serviceMonitor:
      labels:
        release: prometheus
"#;

/// The prometheus-operator's CRDs (not the operator itself): their kinds exist, as on a
/// cluster that runs it.
async fn install_prometheus_operator_crds(sim: &SimCluster) {
    let crds: Vec<Value> = install::integration_crds()
        .into_iter()
        .filter(|crd| crd["spec"]["group"] == "monitoring.coreos.com")
        .collect();
    install::apply_objects(&sim.client().expect("admin client"), &crds, "e2e")
        .await
        .expect("the CRDs apply");
}

async fn monitoring_object(sim: &SimCluster, kind: &str) -> Value {
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", kind);
    let resource = ApiResource::from_gvk(&gvk);
    let api: Api<DynamicObject> =
        Api::namespaced_with(sim.client().expect("admin client"), NAMESPACE, &resource);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(object)) = api.get_opt(NAME).await {
            return serde_json::to_value(object).expect("json");
        }
        assert!(Instant::now() < deadline, "the operator applied no {kind}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn secret_value(secret: &Secret, key: &str) -> Vec<u8> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.clone())
        .unwrap_or_else(|| panic!("Secret has no {key}"))
}

async fn secret(sim: &SimCluster, name: &str) -> Secret {
    let api: Api<Secret> = Api::namespaced(sim.client().expect("admin"), NAMESPACE);
    api.get(name).await.expect("the Secret exists")
}

/// The scrape job the prometheus-operator makes of the ServiceMonitor's one endpoint:
/// the pods behind every selected Service, at the named port, with its target labels.
async fn scrape_job(sim: &SimCluster, monitor: &Value, dir: &Path) -> Value {
    let spec = &monitor["spec"];
    let endpoint = &spec["endpoints"][0];
    let selector: BTreeMap<String, String> =
        serde_json::from_value(spec["selector"]["matchLabels"].clone()).expect("matchLabels");
    let label_selector = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let namespaces: Vec<String> =
        serde_json::from_value(spec["namespaceSelector"]["matchNames"].clone())
            .expect("matchNames");
    assert_eq!(namespaces, vec![NAMESPACE.to_owned()]);
    let admin = sim.client().expect("admin");
    let services: Api<Service> = Api::namespaced(admin.clone(), NAMESPACE);
    let selected = services
        .list(&ListParams::default().labels(&label_selector))
        .await
        .expect("Services list");
    assert_eq!(
        selected.items.len(),
        1,
        "the ServiceMonitor selects exactly one Service ({label_selector})"
    );
    let service = &selected.items[0];
    let service_name = service.metadata.name.clone().expect("name");
    let port_name = endpoint["port"].as_str().expect("endpoint port");
    let endpoints: Api<Endpoints> = Api::namespaced(admin, NAMESPACE);
    let mut groups = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while groups.len() < 3 {
        groups.clear();
        if let Ok(found) = endpoints.get(&service_name).await {
            for subset in found.subsets.unwrap_or_default() {
                let port = subset
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .find(|p| p.name.as_deref() == Some(port_name))
                    .unwrap_or_else(|| panic!("the Service has no port named {port_name}"));
                let addresses = subset
                    .addresses
                    .unwrap_or_default()
                    .into_iter()
                    .chain(subset.not_ready_addresses.unwrap_or_default());
                for address in addresses {
                    let pod = address.target_ref.and_then(|t| t.name).expect("pod");
                    groups.push(json!({
                        "targets": [format!("{}:{}", address.ip, port.port)],
                        "labels": {"namespace": NAMESPACE, "service": service_name, "pod": pod,
                            "endpoint": port_name},
                    }));
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the Service {service_name} has no endpoint for every pod"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let token_ref = &endpoint["authorization"]["credentials"];
    let token = secret_value(
        &secret(sim, token_ref["name"].as_str().expect("name")).await,
        token_ref["key"].as_str().expect("key"),
    );
    write_private(&dir.join("token"), &token);
    let ca_ref = &endpoint["tlsConfig"]["ca"]["secret"];
    let ca = secret_value(
        &secret(sim, ca_ref["name"].as_str().expect("name")).await,
        ca_ref["key"].as_str().expect("key"),
    );
    std::fs::write(dir.join("ca.crt"), ca).expect("CA");
    json!({
        // prometheus-operator names the job after the Service.
        "job_name": service_name,
        "scheme": endpoint["scheme"],
        "metrics_path": endpoint["path"],
        "params": endpoint["params"],
        // The rendered interval is 30s; the test scrapes faster to get on with it.
        "scrape_interval": "2s",
        "authorization": {"type": endpoint["authorization"]["type"],
            "credentials_file": dir.join("token")},
        "tls_config": {"ca_file": dir.join("ca.crt"),
            "server_name": endpoint["tlsConfig"]["serverName"]},
        "static_configs": groups,
    })
}

fn write_private(path: &Path, contents: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A real Prometheus server on loopback.
struct Prometheus {
    child: std::process::Child,
    base: String,
    http: reqwest::Client,
}

impl Prometheus {
    fn start(dir: &Path, listen: SocketAddr) -> Prometheus {
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = std::process::Command::new(tool("prometheus", "VAULTKEEPER_PROMETHEUS"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            base: format!("http://{listen}"),
            http: reqwest::Client::new(),
        }
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(body.to_string())
        }
    }

    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until `check` accepts what `expr` returns.
    async fn wait_query(
        &self,
        expr: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut last: Result<Vec<Value>, String> = Err("not asked yet".to_owned());
        loop {
            if let Ok(result) = &last
                && check(result)
            {
                return result.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({expr}): last answer {last:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            last = self.query(expr).await;
        }
    }

    /// Alerts pending or firing.
    async fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts", &[])
            .await
            .map(|d| d["alerts"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits until `check` accepts the alerts pending or firing, and returns them.
    async fn wait_alerts(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let alerts = self.alerts().await;
            if check(&alerts) {
                return alerts;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; alerts: {:?}",
                summary(&alerts)
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sample_value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn summary(alerts: &[Value]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a["labels"]["alertname"].as_str().unwrap_or("?"),
                a["state"].as_str().unwrap_or("?"),
                a["labels"]
            )
        })
        .collect()
}

/// Every PromQL expression of the Grafana dashboard, with its variables filled in.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = workspace_root().join("charts/vaultkeeper/dashboards/vaultkeeper.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard exists");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut panels: Vec<Value> = dashboard["panels"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner.iter().cloned());
        }
        for target in panel["targets"].as_array().cloned().unwrap_or_default() {
            if let Some(expr) = target["expr"].as_str() {
                let filled = expr
                    .replace("$namespace", NAMESPACE)
                    .replace("$cluster", NAME)
                    .replace("$__rate_interval", "1m")
                    .replace("$__interval", "10s")
                    .replace("$__range", "1h");
                out.push((panel["title"].as_str().unwrap_or("?").to_owned(), filled));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_pods_with_the_rendered_monitor_and_the_rules_hold() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = cluster_with_pods(SLOT).await;
    install_prometheus_operator_crds(&sim).await;
    let mut operator = Operator::install_and_start(&sim).await;
    apply_cluster(&sim, MANIFEST, NAMESPACE).await;
    wait_for(
        &sim,
        NAMESPACE,
        NAME,
        Duration::from_secs(240),
        "Ready",
        ready,
    )
    .await;
    // With the prometheus-operator's CRDs there, monitoring is ready once the job has
    // issued the token.
    let vc = wait_for(
        &sim,
        NAMESPACE,
        NAME,
        Duration::from_secs(180),
        "MonitoringReady",
        |vc| condition(vc, "MonitoringReady", "True"),
    )
    .await;
    assert!(ready(&vc));

    let monitor = monitoring_object(&sim, "ServiceMonitor").await;
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let rule = monitoring_object(&sim, "PrometheusRule").await;
    let groups = rule["spec"]["groups"].clone();
    let rule_names: Vec<String> = groups[0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    assert!(
        rule_names.len() >= 10,
        "the rule has the cluster's alerts: {rule_names:?}"
    );

    // The operator's /metrics, as its Deployment serves it.
    let operator_metrics = SocketAddr::from((Ipv4Addr::new(127, 20, SLOT, 251), 8080));
    let (stop_metrics, stopped) = watch::channel(false);
    let health = Arc::new(Health::new(operator.metrics.clone()));
    let metrics_server = serve(operator_metrics, health, stopped)
        .await
        .expect("the metrics endpoint binds");

    let dir = tempfile::tempdir().expect("tempdir");
    let vault_job = scrape_job(&sim, &monitor, dir.path()).await;
    std::fs::write(
        dir.path().join("rules.yaml"),
        json!({"groups": groups}).to_string(),
    )
    .expect("rules");
    let config = json!({
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "rule_files": [dir.path().join("rules.yaml")],
        "scrape_configs": [
            vault_job,
            {"job_name": "vaultkeeper", "honor_labels": true, "scrape_interval": "2s",
             "static_configs": [{"targets": [operator_metrics.to_string()]}]},
        ],
    });
    std::fs::write(dir.path().join("prometheus.yml"), config.to_string()).expect("config");
    let prometheus = Prometheus::start(
        dir.path(),
        SocketAddr::from((Ipv4Addr::new(127, 20, SLOT, 250), 9090)),
    );

    // Every pod scraped with the token the job issued; Vault's own series are there.
    let internal = format!("namespace=\"{NAMESPACE}\",service=\"{NAME}-internal\"");
    let up = prometheus
        .wait_query(
            &format!("up{{{internal}}}"),
            "all three pods up",
            Duration::from_secs(90),
            |r| r.len() == 3 && r.iter().all(|s| sample_value(s) == 1.0),
        )
        .await;
    let mut pods: Vec<String> = up
        .iter()
        .filter_map(|s| s["metric"]["pod"].as_str().map(str::to_owned))
        .collect();
    pods.sort();
    assert_eq!(pods, ["openbao-0", "openbao-1", "openbao-2"]);
    prometheus
        .wait_query(
            &format!("sum(vault_core_active{{{internal}}})"),
            "one active node",
            Duration::from_secs(30),
            |r| r.len() == 1 && sample_value(&r[0]) == 1.0,
        )
        .await;
    prometheus
        .wait_query(
            &format!("count(vault_core_unsealed{{{internal}}} == 1)"),
            "three unsealed nodes",
            Duration::from_secs(30),
            |r| r.len() == 1 && sample_value(&r[0]) == 3.0,
        )
        .await;
    prometheus
        .wait_query(
            &format!("max(vault_autopilot_failure_tolerance{{{internal}}})"),
            "autopilot tolerating one failure",
            Duration::from_secs(90),
            |r| r.len() == 1 && sample_value(&r[0]) == 1.0,
        )
        .await;
    // The operator's per-cluster series keep the cluster's namespace (honor_labels).
    prometheus
        .wait_query(
            &format!("vaultkeeper_cluster_ready{{namespace=\"{NAMESPACE}\",name=\"{NAME}\"}}"),
            "the operator's Ready gauge",
            Duration::from_secs(30),
            |r| r.len() == 1 && sample_value(&r[0]) == 1.0,
        )
        .await;

    // Every rule evaluates cleanly on real data, and on this healthy cluster nothing is
    // pending or firing.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let data = prometheus
            .api("/api/v1/rules", &[])
            .await
            .expect("rules API");
        let loaded: Vec<Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = loaded
            .iter()
            .filter(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            })
            .count();
        if loaded.len() == rule_names.len() && evaluated == loaded.len() {
            for r in &loaded {
                assert_eq!(
                    r["health"], "ok",
                    "rule {} failed: {}",
                    r["name"], r["lastError"]
                );
            }
            break;
        }
        assert!(Instant::now() < deadline, "rules not evaluated: {data}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let active = prometheus.alerts().await;
    assert!(
        active.is_empty(),
        "a healthy cluster has no alert: {:?}",
        summary(&active)
    );

    // The dashboard's queries run against the same data; those about the cluster and
    // its nodes have answers.
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "the dashboard has its panels");
    let mut answered = 0;
    for (title, expr) in &queries {
        let result = prometheus
            .query(expr)
            .await
            .unwrap_or_else(|e| panic!("dashboard panel {title:?}: {expr}: {e}"));
        if !result.is_empty() {
            answered += 1;
        }
    }
    for must in [
        "vault_core_active",
        "vaultkeeper_cluster_ready",
        "vault_autopilot_node_healthy",
    ] {
        let (title, expr) = queries
            .iter()
            .find(|(_, e)| e.contains(must))
            .unwrap_or_else(|| panic!("a panel shows {must}"));
        // Some of Vault's gauges appear only after its next metrics interval.
        prometheus
            .wait_query(
                expr,
                &format!("panel {title:?} to have data"),
                Duration::from_secs(60),
                |r| !r.is_empty(),
            )
            .await;
    }
    eprintln!(
        "dashboard: {answered} of {} queries have data (no backups in this cluster)",
        queries.len()
    );

    // The token the job issued reads metrics and nothing else.
    let metrics_token = String::from_utf8(secret_value(
        &secret(&sim, &format!("{NAME}-metrics-token")).await,
        "token",
    ))
    .expect("token text");
    let keys = stored_keys(&sim, NAMESPACE, &format!("{NAME}-unseal-keys"))
        .await
        .expect("the keys Secret");
    let root = keys
        .root_token
        .expect("rootToken: Keep")
        .expose_secret()
        .to_owned();
    let active_pod = prometheus
        .query(&format!("vault_core_active{{{internal}}} == 1"))
        .await
        .expect("query")
        .first()
        .and_then(|s| s["metric"]["pod"].as_str().map(str::to_owned))
        .expect("an active pod");
    bao_at(
        &sim,
        NAMESPACE,
        &active_pod,
        &root,
        &["secrets", "enable", "-path=app", "kv"],
    )
    .await
    .expect("kv mount");
    bao_at(
        &sim,
        NAMESPACE,
        &active_pod,
        &root,
        &["kv", "put", "app/db", "password=hunter2"],
    )
    .await
    .expect("kv write");
    let denied = bao_at(
        &sim,
        NAMESPACE,
        &active_pod,
        &metrics_token,
        &["read", "app/db"],
    )
    .await
    .expect_err("the metrics token reads no secret");
    assert!(denied.contains("Code: 403"), "{denied}");
    let denied = bao_at(
        &sim,
        NAMESPACE,
        &active_pod,
        &metrics_token,
        &["read", "sys/storage/raft/configuration"],
    )
    .await
    .expect_err("nor raft");
    assert!(denied.contains("Code: 403"), "{denied}");

    // Revoked: scraping fails until the next run re-issues a token.
    // As root, with the token to revoke on stdin, never on a command line.
    bao_at_with_stdin(
        &sim,
        NAMESPACE,
        &active_pod,
        &root,
        &["write", "auth/token/revoke", "token=-"],
        Some(&metrics_token),
    )
    .await
    .expect("the metrics token is revoked");
    prometheus
        .wait_query(
            &format!("max(up{{{internal}}})"),
            "scrapes refused with the revoked token",
            Duration::from_secs(30),
            |r| r.len() == 1 && sample_value(&r[0]) == 0.0,
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(150);
    let reissued = loop {
        let current = String::from_utf8(secret_value(
            &secret(&sim, &format!("{NAME}-metrics-token")).await,
            "token",
        ))
        .expect("token text");
        if current != metrics_token {
            break current;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked token was not re-issued"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    // What the prometheus-operator does when the Secret changes: the new token is used.
    write_private(&dir.path().join("token"), reissued.as_bytes());
    prometheus
        .wait_query(
            &format!("min(up{{{internal}}})"),
            "every pod scraped again with the re-issued token",
            Duration::from_secs(30),
            |r| r.len() == 1 && sample_value(&r[0]) == 1.0,
        )
        .await;

    // The alerts the revoked token set pending clear at the next evaluations.
    prometheus
        .wait_alerts(
            "the alerts of the revoked token to clear",
            Duration::from_secs(30),
            <[Value]>::is_empty,
        )
        .await;

    // Without the operator, a restarted pod stays sealed: VaultNodeDown turns pending for
    // that pod (and only it), and the operator's return clears it.
    operator.stop().await;
    let victim = ["openbao-0", "openbao-1", "openbao-2"]
        .into_iter()
        .find(|p| *p != active_pod)
        .expect("a standby");
    let before = pod_ip(&sim, NAMESPACE, victim).await;
    let pods: Api<Pod> = Api::namespaced(sim.client().expect("admin"), NAMESPACE);
    pods.delete(victim, &DeleteParams::default())
        .await
        .expect("delete the pod");
    let node_down = |alerts: &[Value]| -> Vec<Value> {
        alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == "VaultNodeDown")
            .cloned()
            .collect()
    };
    let down = node_down(
        &prometheus
            .wait_alerts(
                &format!("VaultNodeDown for the sealed pod {victim} (pod IP was {before})"),
                Duration::from_secs(90),
                |alerts| !node_down(alerts).is_empty(),
            )
            .await,
    );
    assert_eq!(down.len(), 1, "{:?}", summary(&down));
    assert_eq!(down[0]["labels"]["pod"], victim);
    assert_eq!(down[0]["state"], "pending", "its `for` has not passed yet");
    assert_eq!(down[0]["labels"]["severity"], "critical");
    assert_eq!(down[0]["labels"]["vaultcluster"], NAME);
    let description = down[0]["annotations"]["description"].as_str().unwrap_or("");
    assert!(description.contains(victim), "{description}");

    operator.start();
    prometheus
        .wait_query(
            &format!("min(up{{{internal}}})"),
            "the pod unsealed and scraped again",
            Duration::from_secs(120),
            |r| r.len() == 1 && sample_value(&r[0]) == 1.0,
        )
        .await;
    prometheus
        .wait_alerts(
            "VaultNodeDown to clear",
            Duration::from_secs(30),
            |alerts| node_down(alerts).is_empty(),
        )
        .await;

    drop(prometheus);
    let _ = stop_metrics.send(true);
    let _ = metrics_server.await;
    operator.stop().await;
    sim.shutdown().await;
}
