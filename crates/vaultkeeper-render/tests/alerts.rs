//! Every alert of the rendered PrometheusRule, unit-tested with Prometheus' own
//! `promtool test rules` (Debian's Prometheus 2.42, installed into .tools/ by
//! scripts/install-tools.sh): for each alert, series that make it fire, with the labels and
//! annotations it fires with, and series just short of its threshold or its `for` that
//! keep it quiet; and a healthy cluster on which no alert fires at all.
//!
//! The series carry the labels a real scrape gives them: prometheus-operator's target
//! labels (`namespace`, `service`, `pod`, `instance`, `job`) on Vault's metrics, and the
//! operator's own `namespace`/`name` on vaultkeeper's (its ServiceMonitor honours them).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use vaultkeeper_api::{VaultCluster, parse_manifests};
use vaultkeeper_render::{RenderContext, render};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `VAULTKEEPER_PROMTOOL`, else `<workspace>/.tools/bin/promtool`.
fn promtool() -> PathBuf {
    let path = std::env::var_os("VAULTKEEPER_PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/bin/promtool"));
    assert!(
        path.exists(),
        "promtool not found at {}: run scripts/install-tools.sh",
        path.display()
    );
    path
}

const NS: &str = "vault";

/// A Vault-flavor cluster, backups every 6 hours, monitoring at its defaults (336h token
/// period, weekly renewal), its own CA.
const VAULT: &str = r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: vault
  namespace: vault
spec:
  replicas: 3
  tls:
    mode: Secret
    secretName: vault-tls
  backup:
    schedule: "0 */6 * * *"
    s3:
      bucket: vault-snapshots
      credentialsSecret:
        name: vault-backup-s3
"#;

/// OpenBao, one replica, only the active node scraped, no backups, no TLS.
const OPENBAO_SMALL: &str = r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: vault
  namespace: vault
spec:
  flavor: OpenBao
  replicas: 1
  tls:
    mode: Disabled
  backup:
    enabled: false
  monitoring:
    serviceMonitor:
      scrape: ActiveOnly
"#;

fn cluster(yaml: &str) -> VaultCluster {
    parse_manifests(yaml)
        .expect("manifest parses")
        .pop()
        .expect("one cluster")
}

/// The rendered PrometheusRule's spec.
fn rule_spec(yaml: &str) -> Value {
    let cluster = cluster(yaml);
    let mut ctx = RenderContext::new(NS, None);
    ctx.owner_uid = Some("00000000-0000-4000-8000-000000000000");
    let manifests = render(&cluster, &ctx).expect("renders");
    manifests
        .into_iter()
        .find(|m| m.kind == "PrometheusRule")
        .expect("a PrometheusRule is rendered")
        .object["spec"]
        .clone()
}

fn rules(spec: &Value) -> BTreeMap<String, Value> {
    spec["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| (r["alert"].as_str().expect("alert").to_owned(), r.clone()))
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn selector(metric: &str, labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{metric}{{{}}}", inner.join(","))
}

/// Target labels of pod `pod` scraped through `service`.
fn target(service: &str, pod: &str) -> BTreeMap<String, String> {
    labels(&[
        ("namespace", NS),
        ("service", service),
        ("pod", pod),
        ("job", service),
        ("instance", &format!("{pod}:8200")),
        ("endpoint", "https"),
    ])
}

fn internal(pod: &str) -> BTreeMap<String, String> {
    target("vault-internal", pod)
}

/// Labels of a per-cluster operator metric, as the operator's ServiceMonitor keeps them.
fn operator(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = labels(&[
        ("namespace", NS),
        ("name", "vault"),
        ("instance", "10.0.0.9:8080"),
        ("job", "vaultkeeper"),
    ]);
    l.extend(labels(extra));
    l
}

fn series(metric: &str, labels: &BTreeMap<String, String>, values: &str) -> Value {
    json!({"series": selector(metric, labels), "values": values})
}

/// The alert as promtool must see it fire: the series' labels left after the
/// expression, the rule's own labels, and the annotations with `$labels` filled in.
fn firing(rule: &Value, from_series: BTreeMap<String, String>) -> Value {
    let mut all = from_series;
    for (k, v) in rule["labels"].as_object().expect("rule labels") {
        all.insert(k.clone(), v.as_str().expect("label").to_owned());
    }
    let mut annotations = serde_json::Map::new();
    for (k, v) in rule["annotations"].as_object().expect("annotations") {
        let mut text = v.as_str().expect("annotation").to_owned();
        for (label, value) in &all {
            text = text.replace(&format!("{{{{ $labels.{label} }}}}"), value);
        }
        assert!(
            !text.contains("{{"),
            "{}: an annotation uses a template this test does not fill: {text}",
            rule["alert"]
        );
        annotations.insert(k.clone(), text.into());
    }
    json!({"exp_labels": all, "exp_annotations": annotations})
}

/// One promtool test group.
struct Group {
    input: Vec<Value>,
    checks: Vec<Value>,
}

impl Group {
    fn new(input: Vec<Value>) -> Self {
        Self {
            input,
            checks: Vec::new(),
        }
    }

    fn expect(mut self, alert: &str, at: &str, alerts: Vec<Value>) -> Self {
        self.checks
            .push(json!({"eval_time": at, "alertname": alert, "exp_alerts": alerts}));
        self
    }

    fn quiet(self, alert: &str, at: &str) -> Self {
        self.expect(alert, at, Vec::new())
    }

    fn to_json(&self) -> Value {
        json!({"interval": "1m", "input_series": self.input, "alert_rule_test": self.checks})
    }
}

/// Writes the rules and the tests, runs `promtool check rules` and `promtool test rules`,
/// and fails with promtool's own report.
fn run_promtool(spec: &Value, groups: &[Group]) {
    let dir = tempfile::tempdir().expect("tempdir");
    // JSON is YAML: promtool reads both.
    let rules_file = dir.path().join("rules.yaml");
    std::fs::write(&rules_file, json!({"groups": spec["groups"]}).to_string()).expect("rules");
    let tests_file = dir.path().join("tests.yaml");
    let tests = json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": groups.iter().map(Group::to_json).collect::<Vec<_>>(),
    });
    std::fs::write(&tests_file, tests.to_string()).expect("tests");

    let check = Command::new(promtool())
        .arg("check")
        .arg("rules")
        .arg(&rules_file)
        .output()
        .expect("promtool runs");
    assert!(
        check.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let test = Command::new(promtool())
        .current_dir(dir.path())
        .arg("test")
        .arg("rules")
        .arg("tests.yaml")
        .output()
        .expect("promtool runs");
    assert!(
        test.status.success(),
        "promtool test rules:\n{}{}\ntests: {}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr),
        serde_json::to_string_pretty(&tests).unwrap_or_default()
    );
    let report = String::from_utf8_lossy(&test.stdout);
    assert!(report.contains("SUCCESS"), "promtool reported: {report}");
}

/// A cluster with nothing wrong: three unsealed voters, vault-0 active, backups every
/// hour up to now, a token and certificates far from expiry, no errors.
fn healthy() -> Vec<Value> {
    let now = "0+60x2000"; // a timestamp that keeps up with the clock: always "just now"
    let mut input = Vec::new();
    for (pod, active) in [
        ("vault-0", "1x2000"),
        ("vault-1", "0x2000"),
        ("vault-2", "0x2000"),
    ] {
        input.push(series("up", &internal(pod), "1x2000"));
        input.push(series("vault_core_active", &internal(pod), active));
        input.push(series("vault_core_unsealed", &internal(pod), "1x2000"));
        input.push(series(
            "vault_audit_log_request_failure",
            &internal(pod),
            "0x2000",
        ));
    }
    input.push(series(
        "vault_autopilot_failure_tolerance",
        &internal("vault-0"),
        "1x2000",
    ));
    input.push(series(
        "vault_autopilot_healthy",
        &internal("vault-0"),
        "1x2000",
    ));
    for (code, class, values) in [("200", "2xx", "0+100x2000"), ("500", "5xx", "0+1x2000")] {
        let mut l = internal("vault-0");
        l.extend(labels(&[("code", code), ("type", class)]));
        input.push(series("vault_core_response_status_code", &l, values));
    }
    let op = operator(&[]);
    input.push(series("vaultkeeper_cluster_ready", &op, "1x2000"));
    input.push(series("vaultkeeper_sealed_pods", &op, "0x2000"));
    input.push(series("vaultkeeper_backup_healthy", &op, "1x2000"));
    input.push(series(
        "vaultkeeper_backup_last_success_timestamp_seconds",
        &op,
        now,
    ));
    input.push(series(
        "vaultkeeper_metrics_token_expiry_timestamp_seconds",
        &op,
        "1209600+60x2000",
    ));
    for cert in ["ca", "server"] {
        input.push(series(
            "vaultkeeper_tls_expiry_timestamp_seconds",
            &operator(&[("certificate", cert)]),
            "31536000x2000",
        ));
    }
    input.push(series(
        "vaultkeeper_reconcile_errors_total",
        &operator(&[("reason", "Kube")]),
        "3x2000",
    ));
    input
}

#[test]
fn every_alert_fires_on_its_condition_and_stays_quiet_short_of_it() {
    let spec = rule_spec(VAULT);
    let rules = rules(&spec);
    let expected: Vec<&str> = vec![
        "VaultSealed",
        "VaultNodeDown",
        "VaultNoActiveNode",
        "VaultRaftQuorumAtRisk",
        "VaultRaftUnhealthy",
        "VaultLeadershipChurn",
        "VaultRequestErrors",
        "VaultAuditLogFailing",
        "VaultBackupFailing",
        "VaultBackupStale",
        "VaultMetricsTokenExpiring",
        "VaultCertificateExpiring",
        "VaultClusterNotReady",
        "VaultkeeperReconcileErrors",
        "VaultkeeperMetricsAbsent",
        "VaultMetricsAbsent",
    ];
    assert_eq!(
        rules.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut sorted = expected.clone();
            sorted.sort();
            sorted
        },
        "the Vault-flavor cluster renders every alert"
    );
    let rule = |name: &str| &rules[name];
    let aggregated = BTreeMap::new;
    let op = operator(&[]);

    let mut groups = Vec::new();

    // A healthy cluster: nothing fires, late in the run when every `for` has passed.
    let mut calm = Group::new(healthy());
    for alert in &expected {
        calm = calm.quiet(alert, "1900m");
    }
    groups.push(calm);

    // Sealed: pending for the first five minutes, then firing.
    groups.push(
        Group::new(vec![series("vaultkeeper_sealed_pods", &op, "0 1x20")])
            .quiet("VaultSealed", "4m")
            .expect(
                "VaultSealed",
                "10m",
                vec![firing(rule("VaultSealed"), aggregated())],
            ),
    );

    // A node down: the one whose scrape fails, named by its pod.
    groups.push(
        Group::new(vec![
            series("up", &internal("vault-0"), "1x20"),
            series("up", &internal("vault-1"), "1 1 0x20"),
            series("up", &internal("vault-2"), "1x20"),
        ])
        .quiet("VaultNodeDown", "5m")
        .expect(
            "VaultNodeDown",
            "10m",
            vec![firing(rule("VaultNodeDown"), internal("vault-1"))],
        ),
    );

    // No active node: the active one steps down and nobody takes over; and a cluster
    // whose series are gone altogether.
    groups.push(
        Group::new(vec![
            series("vault_core_active", &internal("vault-0"), "1x5 0x20"),
            series("vault_core_active", &internal("vault-1"), "0x25"),
        ])
        .quiet("VaultNoActiveNode", "6m")
        .expect(
            "VaultNoActiveNode",
            "10m",
            vec![firing(rule("VaultNoActiveNode"), aggregated())],
        ),
    );
    groups.push(
        Group::new(vec![series(
            "vault_core_active",
            &labels(&[("namespace", "other"), ("service", "vault-internal")]),
            "1x20",
        )])
        .expect(
            "VaultNoActiveNode",
            "10m",
            vec![firing(rule("VaultNoActiveNode"), aggregated())],
        ),
    );

    // Quorum at risk: failure tolerance 0 for five minutes.
    groups.push(
        Group::new(vec![series(
            "vault_autopilot_failure_tolerance",
            &internal("vault-0"),
            "1x3 0x20",
        )])
        .quiet("VaultRaftQuorumAtRisk", "7m")
        .expect(
            "VaultRaftQuorumAtRisk",
            "10m",
            vec![firing(rule("VaultRaftQuorumAtRisk"), aggregated())],
        ),
    );
    groups.push(
        Group::new(vec![series(
            "vault_autopilot_healthy",
            &internal("vault-0"),
            "1 0x20",
        )])
        .quiet("VaultRaftUnhealthy", "9m")
        .expect(
            "VaultRaftUnhealthy",
            "12m",
            vec![firing(rule("VaultRaftUnhealthy"), aggregated())],
        ),
    );

    // Leadership churn: three elections in ten minutes fire; one does not.
    groups.push(
        Group::new(vec![
            series(
                "vault_core_active",
                &internal("vault-0"),
                "1 1 0 0 1 1 0 0 0 0",
            ),
            series(
                "vault_core_active",
                &internal("vault-1"),
                "0 0 1 1 0 0 0 0 0 0",
            ),
            series(
                "vault_core_active",
                &internal("vault-2"),
                "0 0 0 0 0 0 1 1 1 1",
            ),
        ])
        .expect(
            "VaultLeadershipChurn",
            "9m",
            vec![firing(rule("VaultLeadershipChurn"), aggregated())],
        ),
    );
    groups.push(
        Group::new(vec![
            series(
                "vault_core_active",
                &internal("vault-0"),
                "1 1 0 0 0 0 0 0 0 0",
            ),
            series(
                "vault_core_active",
                &internal("vault-1"),
                "0 0 1 1 1 1 1 1 1 1",
            ),
        ])
        .quiet("VaultLeadershipChurn", "9m"),
    );

    // Request errors: 9% server errors fire after ten minutes; 1% never.
    let status = |code: &str, class: &str| {
        let mut l = internal("vault-0");
        l.extend(labels(&[("code", code), ("type", class)]));
        l
    };
    groups.push(
        Group::new(vec![
            series(
                "vault_core_response_status_code",
                &status("200", "2xx"),
                "0+100x30",
            ),
            series(
                "vault_core_response_status_code",
                &status("500", "5xx"),
                "0+10x30",
            ),
        ])
        .quiet("VaultRequestErrors", "8m")
        .expect(
            "VaultRequestErrors",
            "20m",
            vec![firing(rule("VaultRequestErrors"), aggregated())],
        ),
    );
    groups.push(
        Group::new(vec![
            series(
                "vault_core_response_status_code",
                &status("200", "2xx"),
                "0+100x30",
            ),
            series(
                "vault_core_response_status_code",
                &status("503", "5xx"),
                "0+1x30",
            ),
        ])
        .quiet("VaultRequestErrors", "20m"),
    );

    // An audit device failing fires at once.
    groups.push(
        Group::new(vec![
            series(
                "vault_audit_log_request_failure",
                &internal("vault-1"),
                "0 0 0 1 1 1 1",
            ),
            series(
                "vault_audit_log_response_failure",
                &internal("vault-1"),
                "0x6",
            ),
        ])
        .quiet("VaultAuditLogFailing", "2m")
        .expect(
            "VaultAuditLogFailing",
            "4m",
            vec![firing(rule("VaultAuditLogFailing"), aggregated())],
        ),
    );

    // Backups: unhealthy for 15 minutes; no success for two periods (6h schedule: 12h).
    groups.push(
        Group::new(vec![series("vaultkeeper_backup_healthy", &op, "1 0x30")])
            .quiet("VaultBackupFailing", "14m")
            .expect(
                "VaultBackupFailing",
                "20m",
                vec![firing(rule("VaultBackupFailing"), aggregated())],
            ),
    );
    groups.push(
        Group::new(vec![series(
            "vaultkeeper_backup_last_success_timestamp_seconds",
            &op,
            "0x800",
        )])
        .quiet("VaultBackupStale", "710m")
        .expect(
            "VaultBackupStale",
            "730m",
            vec![firing(rule("VaultBackupStale"), aggregated())],
        ),
    );

    // The metrics token: 336h period, weekly renewal, so 3.5 days (302400 s) left is a
    // missed renewal. Expiry at 400000 s: under the threshold from 97600 s (~1627 min).
    groups.push(
        Group::new(vec![series(
            "vaultkeeper_metrics_token_expiry_timestamp_seconds",
            &op,
            "400000x1800",
        )])
        .quiet("VaultMetricsTokenExpiring", "1600m")
        .quiet("VaultMetricsTokenExpiring", "1630m")
        .expect(
            "VaultMetricsTokenExpiring",
            "1700m",
            vec![firing(rule("VaultMetricsTokenExpiring"), aggregated())],
        ),
    );

    // Certificates: the server one 11.6 days from expiry fires, the CA at 23 days not.
    let server = operator(&[("certificate", "server")]);
    groups.push(
        Group::new(vec![
            series(
                "vaultkeeper_tls_expiry_timestamp_seconds",
                &server,
                "1000000x30",
            ),
            series(
                "vaultkeeper_tls_expiry_timestamp_seconds",
                &operator(&[("certificate", "ca")]),
                "2000000x30",
            ),
        ])
        .expect(
            "VaultCertificateExpiring",
            "15m",
            vec![firing(rule("VaultCertificateExpiring"), server)],
        ),
    );

    groups.push(
        Group::new(vec![series("vaultkeeper_cluster_ready", &op, "1 0x30")])
            .quiet("VaultClusterNotReady", "14m")
            .expect(
                "VaultClusterNotReady",
                "20m",
                vec![firing(rule("VaultClusterNotReady"), aggregated())],
            ),
    );

    // Reconcile errors: failing every minute for a quarter of an hour, by reason.
    groups.push(
        Group::new(vec![
            series(
                "vaultkeeper_reconcile_errors_total",
                &operator(&[("reason", "Vault")]),
                "0+1x30",
            ),
            series(
                "vaultkeeper_reconcile_errors_total",
                &operator(&[("reason", "Kube")]),
                "2x30",
            ),
        ])
        .quiet("VaultkeeperReconcileErrors", "10m")
        .expect(
            "VaultkeeperReconcileErrors",
            "25m",
            vec![firing(
                rule("VaultkeeperReconcileErrors"),
                labels(&[("reason", "Vault")]),
            )],
        ),
    );

    // Absent metrics: only another cluster's series exist.
    groups.push(
        Group::new(vec![
            series(
                "vaultkeeper_cluster_ready",
                &labels(&[("namespace", NS), ("name", "other")]),
                "1x30",
            ),
            series("up", &target("other-internal", "other-0"), "1x30"),
        ])
        .quiet("VaultkeeperMetricsAbsent", "10m")
        .expect(
            "VaultkeeperMetricsAbsent",
            "20m",
            vec![firing(
                rule("VaultkeeperMetricsAbsent"),
                labels(&[("namespace", NS), ("name", "vault")]),
            )],
        )
        .quiet("VaultMetricsAbsent", "10m")
        .expect(
            "VaultMetricsAbsent",
            "20m",
            vec![firing(
                rule("VaultMetricsAbsent"),
                labels(&[("namespace", NS), ("service", "vault-internal")]),
            )],
        ),
    );

    run_promtool(&spec, &groups);
}

#[test]
fn a_small_openbao_cluster_gets_the_alerts_that_apply_to_it() {
    let spec = rule_spec(OPENBAO_SMALL);
    let rules = rules(&spec);
    // One replica tolerates no failure by design; OpenBao exports no response codes; no
    // backups, no TLS: those alerts would only ever be noise.
    for absent in [
        "VaultRaftQuorumAtRisk",
        "VaultRequestErrors",
        "VaultBackupFailing",
        "VaultBackupStale",
        "VaultCertificateExpiring",
    ] {
        assert!(!rules.contains_key(absent), "{absent} is not rendered");
    }
    let active = |pod: &str| target("vault-active", pod);
    // Only the active node is scraped: its selector is the -active Service, and leader
    // churn is counted from raft's leader transitions.
    assert!(
        rules["VaultNodeDown"]["expr"]
            .as_str()
            .expect("expr")
            .contains(r#"service="vault-active""#)
    );
    let churn = &rules["VaultLeadershipChurn"];
    let groups = vec![
        Group::new(vec![
            series(
                "vault_raft_state_leader",
                &active("vault-0"),
                "1 1 1 2 2 2 3 3 3 4",
            ),
            series("up", &active("vault-0"), "1x10"),
            series("vault_core_active", &active("vault-0"), "1x10"),
        ])
        .expect(
            "VaultLeadershipChurn",
            "9m",
            vec![firing(churn, BTreeMap::new())],
        )
        .quiet("VaultNodeDown", "9m")
        .quiet("VaultNoActiveNode", "9m"),
        Group::new(vec![series(
            "vault_raft_state_leader",
            &active("vault-0"),
            "1 1 1 1 1 2 2 2 2 2",
        )])
        .quiet("VaultLeadershipChurn", "9m"),
    ];
    run_promtool(&spec, &groups);
}

#[test]
fn thresholds_follow_the_spec() {
    let yaml = VAULT.replace("0 */6 * * *", "0 3 * * *").replace(
        "  replicas: 3\n",
        "  replicas: 3\n  monitoring:\n    tokenPeriod: 720h\n    tokenRenewSchedule: \"0 13 * * *\"\n",
    );
    let rules = rules(&rule_spec(&yaml));
    // Daily backups: stale after two days.
    assert!(
        rules["VaultBackupStale"]["expr"]
            .as_str()
            .expect("expr")
            .ends_with("> 172800"),
        "{}",
        rules["VaultBackupStale"]["expr"]
    );
    // 30-day token renewed daily: at least 29 days left before a renewal; alert at 14.5.
    assert!(
        rules["VaultMetricsTokenExpiring"]["expr"]
            .as_str()
            .expect("expr")
            .ends_with("< 1252800"),
        "{}",
        rules["VaultMetricsTokenExpiring"]["expr"]
    );
    assert_eq!(
        rules["VaultBackupStale"]["annotations"]["summary"],
        "No successful backup of vault/vault for 2d"
    );
}

#[test]
fn every_alert_names_the_cluster_and_links_its_runbook() {
    for yaml in [VAULT, OPENBAO_SMALL] {
        for (name, rule) in rules(&rule_spec(yaml)) {
            let annotations = &rule["annotations"];
            for key in ["summary", "description", "runbook"] {
                let text = annotations[key].as_str().unwrap_or_default();
                assert!(text.len() > 20, "{name}: {key} is missing or empty");
            }
            assert!(
                annotations["description"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("vault/vault")
                    || annotations["summary"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("vault/vault"),
                "{name} names the cluster"
            );
            assert_eq!(
                annotations["runbook_url"],
                format!(
                    "https://github.com/vaultkeeper/vaultkeeper/blob/main/docs/monitoring.md#{}",
                    name.to_lowercase()
                )
            );
            assert_eq!(rule["labels"]["vaultcluster"], "vault");
            assert!(
                ["critical", "warning"]
                    .contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
                "{name}: severity"
            );
        }
    }
}

#[test]
fn the_runbook_links_land_on_sections_of_docs_monitoring() {
    let doc = std::fs::read_to_string(workspace_root().join("docs/monitoring.md"))
        .expect("docs/monitoring.md");
    // GitHub's anchors: the heading text, lower-cased.
    let anchors: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    for yaml in [VAULT, OPENBAO_SMALL] {
        for name in rules(&rule_spec(yaml)).keys() {
            assert!(
                anchors.contains(&name.to_lowercase()),
                "docs/monitoring.md has no `### {name}` section"
            );
        }
    }
}
