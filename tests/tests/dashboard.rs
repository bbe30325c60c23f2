//! The Grafana dashboard the chart ships (`charts/vaultkeeper/dashboards/vaultkeeper.json`):
//! its structure; that every query names a metric the operator registers
//! (`crates/vaultkeeper/src/metrics.rs`) or one Vault exports, selected by the labels that
//! series carries once scraped; that every query returns data for series shaped like the
//! real ones and nothing for another cluster, evaluated by the real `promtool`; and the
//! chart objects around it: the sidecar ConfigMap and the operator's ServiceMonitor.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use vaultkeeper::metrics::{CertificateLabels, ClusterLabels, ErrorLabels, Metrics, UnsealLabels};
use vaultkeeper_e2e::install::{
    self, InstallError, OPERATOR_NAMESPACE, chart_dir, find, helm_template, kind, of_kind,
    workspace_root,
};

fn ok<T>(r: Result<T, InstallError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard_text() -> String {
    read(&chart_dir().join("dashboards/vaultkeeper.json"))
}

fn dashboard() -> Value {
    serde_json::from_str(&dashboard_text())
        .unwrap_or_else(|e| panic!("charts/vaultkeeper/dashboards/vaultkeeper.json: {e}"))
}

/// Vault's own series the dashboard reads, as a real OpenBao 2.7.2 exports them on
/// `sys/metrics?format=prometheus`, plus Prometheus's `up` for the scrape itself.
const VAULT_METRICS: &[&str] = &[
    "up",
    "vault_core_active",
    "vault_core_unsealed",
    "vault_autopilot_node_healthy",
    "vault_autopilot_failure_tolerance",
    "vault_autopilot_healthy",
    "vault_core_handle_request_count",
    "vault_core_handle_request",
    "vault_audit_log_request_failure",
    "process_resident_memory_bytes",
];

/// How the dashboard selects one cluster's operator series.
const OPERATOR_SELECTOR: &[(&str, &str, &str)] =
    &[("namespace", "=", "$namespace"), ("name", "=", "$cluster")];

/// How it selects one cluster's Vault series: the per-cluster ServiceMonitor scrapes the
/// `<name>-internal` Service (every node) or `<name>-active`, and prometheus-operator
/// labels each target with its namespace, Service and pod.
const VAULT_SELECTOR: &[(&str, &str, &str)] = &[
    ("namespace", "=", "$namespace"),
    ("service", "=~", "$cluster-internal|$cluster-active"),
];

/// Labels prometheus-operator gives every target; a selector may use them on any series.
const TARGET_LABELS: &[&str] = &["job", "instance", "pod", "service", "container", "endpoint"];

// ---------------------------------------------------------------------------------------
// The operator's metrics, read from the source that registers them.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric the operator registers, with the names it is exported under.
#[derive(Debug)]
struct OperatorMetric {
    /// The registered name with the registry's prefix (`vaultkeeper_reconciles`).
    name: String,
    kind: MetricKind,
    /// The labels of its family; empty for a plain metric.
    labels: BTreeSet<String>,
}

impl OperatorMetric {
    /// The series names Prometheus sees (the prometheus-client conventions).
    fn exported(&self) -> Vec<String> {
        match self.kind {
            MetricKind::Counter => vec![format!("{}_total", self.name)],
            MetricKind::Gauge => vec![self.name.clone()],
            MetricKind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{}{s}", self.name))
                .collect(),
        }
    }

    fn per_cluster(&self) -> bool {
        self.labels.contains("namespace") && self.labels.contains("name")
    }
}

/// The first string literal at or after `from`: its text and the index after it.
fn string_literal(text: &str, from: usize) -> Option<(String, usize)> {
    let start = from + text[from..].find('"')? + 1;
    let mut out = String::new();
    let mut chars = text[start..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    out.push(escaped);
                }
            }
            '"' => return Some((out, start + i + 1)),
            _ => out.push(c),
        }
    }
    None
}

/// `pub struct Name { pub field: Type, ... }` blocks: struct name to (field, type).
fn struct_fields(source: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    for line in source.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub struct ") {
            if let Some(name) = rest.strip_suffix('{') {
                current = Some((name.trim().to_owned(), Vec::new()));
            }
        } else if line == "}" {
            if let Some((name, fields)) = current.take() {
                out.insert(name, fields);
            }
        } else if let (Some((_, fields)), Some(field)) = (&mut current, line.strip_prefix("pub "))
            && let Some((name, ty)) = field.split_once(':')
        {
            fields.push((
                name.trim().to_owned(),
                ty.trim().trim_end_matches(',').to_owned(),
            ));
        }
    }
    out
}

/// Every metric `crates/vaultkeeper/src/metrics.rs` registers: the name from each
/// `registry.register("name", "help", field.clone())`, the kind and labels from the type
/// of `field` in `struct Metrics`.
fn operator_metrics() -> Vec<OperatorMetric> {
    let path = workspace_root().join("crates/vaultkeeper/src/metrics.rs");
    let source = read(&path);
    let prefix_at = source
        .find("Registry::with_prefix(")
        .unwrap_or_else(|| panic!("{}: no Registry::with_prefix", path.display()));
    let (prefix, _) = string_literal(&source, prefix_at)
        .unwrap_or_else(|| panic!("{}: the registry's prefix", path.display()));
    let structs = struct_fields(&source);
    let fields: BTreeMap<&str, &str> = structs
        .get("Metrics")
        .unwrap_or_else(|| panic!("{}: no pub struct Metrics", path.display()))
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();

    let mut out = Vec::new();
    for (at, _) in source.match_indices("registry.register(") {
        let parsed = string_literal(&source, at).and_then(|(name, after_name)| {
            let (_help, after_help) = string_literal(&source, after_name)?;
            let rest = source[after_help..].trim_start().strip_prefix(',')?;
            let field = rest.trim_start().split(".clone()").next()?.trim();
            Some((name, field.to_owned()))
        });
        let Some((name, field)) = parsed else {
            panic!(
                "{}: cannot read the registration at byte {at}",
                path.display()
            )
        };
        let ty = fields.get(field.as_str()).unwrap_or_else(|| {
            panic!(
                "{}: {name} registers `{field}`, not a field of Metrics",
                path.display()
            )
        });
        let kind = if ty.contains("Counter") {
            MetricKind::Counter
        } else if ty.contains("Histogram") {
            MetricKind::Histogram
        } else if ty.contains("Gauge") {
            MetricKind::Gauge
        } else {
            panic!(
                "{}: {field} has a type this test does not know: {ty}",
                path.display()
            )
        };
        let labels = match ty.strip_prefix("Family<") {
            Some(args) => {
                let label_struct = args.split(',').next().unwrap_or_default().trim();
                structs
                    .get(label_struct)
                    .unwrap_or_else(|| panic!("{}: no pub struct {label_struct}", path.display()))
                    .iter()
                    .map(|(n, _)| n.clone())
                    .collect()
            }
            None => BTreeSet::new(),
        };
        out.push(OperatorMetric {
            name: format!("{prefix}_{name}"),
            kind,
            labels,
        });
    }
    // Every field but the registry is registered once: the parse missed nothing.
    let registered: BTreeSet<&str> = source
        .match_indices("registry.register(")
        .filter_map(|(at, _)| {
            let (_, after_name) = string_literal(&source, at)?;
            let (_, after_help) = string_literal(&source, after_name)?;
            source[after_help..]
                .trim_start()
                .strip_prefix(',')?
                .trim_start()
                .split(".clone()")
                .next()
                .map(str::trim)
        })
        .collect();
    let declared: BTreeSet<&str> = fields
        .keys()
        .copied()
        .filter(|f| *f != "registry")
        .collect();
    assert_eq!(
        registered,
        declared,
        "{}: every metric field is registered exactly once",
        path.display()
    );
    out
}

// ---------------------------------------------------------------------------------------
// The dashboard's queries.
// ---------------------------------------------------------------------------------------

/// Every panel, rows and what rows hold included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// (panel title, expr) for every target of every panel.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_owned();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| t["expr"].as_str().map(|e| (title.clone(), e.to_owned())))
        })
        .collect()
}

/// A series selector in a PromQL expression: the metric name and its label matchers.
#[derive(Debug, PartialEq)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

impl Selector {
    fn has(&self, label: &str, op: &str, value: &str) -> bool {
        self.matchers
            .iter()
            .any(|(l, o, v)| l == label && o == op && v == value)
    }
}

/// Aggregations and keywords: never metric names.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
];
/// Keywords followed by a parenthesised list of label names.
const PROMQL_LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn skip_string(chars: &[char], at: usize) -> usize {
    let quote = chars[at];
    let mut i = at + 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

fn skip_past(chars: &[char], at: usize, close: char) -> usize {
    let mut i = at;
    while i < chars.len() && chars[i] != close {
        i += 1;
    }
    i + 1
}

fn skip_space(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Label matchers between `{` at `at` and the closing `}`; returns them and the index
/// after the `}`.
fn matchers(expr: &str, chars: &[char], at: usize) -> (Vec<(String, String, String)>, usize) {
    let mut out = Vec::new();
    let mut i = at + 1;
    loop {
        i = skip_space(chars, i);
        match chars.get(i) {
            None => panic!("unclosed selector in {expr}"),
            Some('}') => return (out, i + 1),
            Some(',') => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let start = i;
        while i < chars.len() && is_name_char(chars[i]) {
            i += 1;
        }
        let label: String = chars[start..i].iter().collect();
        i = skip_space(chars, i);
        let op_start = i;
        while i < chars.len() && matches!(chars[i], '=' | '!' | '~') {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        i = skip_space(chars, i);
        assert!(
            label
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && matches!(op.as_str(), "=" | "!=" | "=~" | "!~")
                && matches!(chars.get(i), Some('"' | '\'')),
            "cannot read the label matchers of {expr}"
        );
        let end = skip_string(chars, i);
        let value: String = chars[i + 1..end - 1].iter().collect();
        out.push((label, op, value));
        i = end;
    }
}

/// The series selectors of a PromQL expression, in order. Function names, aggregations,
/// keywords, label lists, numbers, strings and range durations are skipped.
fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '[' {
            i = skip_past(&chars, i, ']');
        } else if c == '{' {
            let (m, next) = matchers(expr, &chars, i);
            out.push(Selector {
                metric: String::new(),
                matchers: m,
            });
            i = next;
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_space(&chars, i);
            if PROMQL_LABEL_LISTS.contains(&word.as_str()) && chars.get(next) == Some(&'(') {
                i = skip_past(&chars, next, ')');
            } else if PROMQL_WORDS.contains(&word.as_str()) || chars.get(next) == Some(&'(') {
                // An aggregation, keyword or function call.
            } else if chars.get(next) == Some(&'{') {
                let (m, after) = matchers(expr, &chars, next);
                out.push(Selector {
                    metric: word,
                    matchers: m,
                });
                i = after;
            } else {
                out.push(Selector {
                    metric: word,
                    matchers: Vec::new(),
                });
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn the_selector_reader_finds_names_and_matchers_and_skips_the_rest() {
    let got = selectors(
        r#"histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="1", y=~"p|q"}[5m]))) / on (pod) group_left(z) max without (w) (b) - time() > bool 1e3 and c{v!="}"}"#,
    );
    let names: Vec<&str> = got.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(names, ["a_bucket", "b", "c"]);
    assert!(got[0].has("x", "=", "1") && got[0].has("y", "=~", "p|q"));
    assert!(got[1].matchers.is_empty());
    assert!(got[2].has("v", "!=", "}"));
}

#[test]
fn dashboard_has_its_uid_title_variables_and_rows() {
    let d = dashboard();
    assert_eq!(d["uid"], "vaultkeeper");
    assert_eq!(d["title"], "vaultkeeper / Vault clusters");
    let schema = d["schemaVersion"].as_u64().unwrap_or_default();
    assert!(
        (38..=41).contains(&schema),
        "schemaVersion {schema}: Grafana 10 and 11 read 38 to 41"
    );
    assert!(
        d["id"].is_null(),
        "no database id, so an import creates the dashboard instead of overwriting another"
    );

    let vars = d["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(
        names,
        ["datasource", "namespace", "cluster"],
        "the variables, each after the ones it depends on"
    );
    assert_eq!(vars[0]["type"], "datasource");
    assert_eq!(vars[0]["query"], "prometheus");
    for (var, query) in [
        (
            &vars[1],
            "label_values(vaultkeeper_cluster_ready, namespace)",
        ),
        (
            &vars[2],
            r#"label_values(vaultkeeper_cluster_ready{namespace="$namespace"}, name)"#,
        ),
    ] {
        let name = &var["name"];
        assert_eq!(var["type"], "query", "{name}");
        assert_eq!(var["datasource"]["uid"], "${datasource}", "{name}");
        assert_eq!(var["definition"], query, "{name}");
        let stored = var["query"]
            .as_str()
            .or_else(|| var["query"]["query"].as_str());
        assert_eq!(stored, Some(query), "{name}");
        assert_eq!(
            var["multi"], false,
            "{name}: one value, since the panels select with ="
        );
        assert_eq!(var["includeAll"], false, "{name}");
    }

    let rows: Vec<&str> = panels(&d)
        .into_iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(
        rows,
        [
            "Cluster overview",
            "Vault nodes",
            "Backups",
            "Metrics token and TLS",
            "Operator"
        ]
    );
}

#[test]
fn every_panel_has_a_title_a_description_and_queries_the_chosen_data_source() {
    let d = dashboard();
    let all = panels(&d);
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut queried = 0;
    for p in &all {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.trim().is_empty(), "a panel without a title: {p}");
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("{title}: no id"));
        assert!(ids.insert(id), "{title}: id {id} is taken");
        let pos = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
            pos[k]
                .as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        });
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {pos}");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.to_owned()) {
                    panic!("{title} overlaps {other} at x={cx} y={cy}");
                }
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert!(
            p["description"]
                .as_str()
                .is_some_and(|s| s.trim().len() > 20),
            "{title}: no description"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in &targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "{title}: a target without expr: {t}"
            );
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            let r = t["refId"].as_str().unwrap_or_default();
            assert!(
                !r.is_empty() && refs.insert(r.to_owned()),
                "{title}: refId {r:?}"
            );
            queried += 1;
        }
    }
    assert!(
        queried >= 30,
        "{queried} queries: the dashboard lost panels"
    );
}

#[test]
fn every_query_reads_known_metrics_with_the_labels_they_carry() {
    let operator = operator_metrics();
    let by_name: BTreeMap<String, &OperatorMetric> = operator
        .iter()
        .flat_map(|m| m.exported().into_iter().map(move |n| (n, m)))
        .collect();
    let mut used = BTreeSet::new();
    for (title, expr) in queries(&dashboard()) {
        let found = selectors(&expr);
        assert!(!found.is_empty(), "{title}: {expr} reads no series");
        for s in found {
            used.insert(s.metric.clone());
            if let Some(m) = by_name.get(&s.metric) {
                let mut allowed: BTreeSet<&str> = m.labels.iter().map(String::as_str).collect();
                allowed.extend(TARGET_LABELS);
                if s.metric.ends_with("_bucket") {
                    allowed.insert("le");
                }
                for (label, _, _) in &s.matchers {
                    assert!(
                        allowed.contains(label.as_str()),
                        "{title}: {} has no label {label} of its own (metrics.rs), so {expr} \
                         matches the target's or nothing",
                        s.metric
                    );
                }
                if m.per_cluster() {
                    for (label, op, value) in OPERATOR_SELECTOR {
                        assert!(
                            s.has(label, op, value),
                            "{title}: {} must be selected with {label}{op}\"{value}\" in {expr}",
                            s.metric
                        );
                    }
                }
            } else if VAULT_METRICS.contains(&s.metric.as_str()) {
                for (label, op, value) in VAULT_SELECTOR {
                    assert!(
                        s.has(label, op, value),
                        "{title}: {} must be selected with {label}{op}\"{value}\" in {expr}",
                        s.metric
                    );
                }
            } else {
                panic!(
                    "{title}: {expr} reads {:?}, which neither the operator registers \
                     (crates/vaultkeeper/src/metrics.rs) nor is among Vault's series here",
                    s.metric
                );
            }
        }
    }
    for m in &operator {
        assert!(
            m.exported().iter().any(|n| used.contains(n)),
            "the operator exports {} but no panel shows it",
            m.name
        );
    }
    for name in VAULT_METRICS {
        assert!(
            used.contains(*name),
            "{name} is listed as read but no panel reads it"
        );
    }
}

#[test]
fn the_metric_list_from_the_source_has_the_operators_known_shapes() {
    let operator = operator_metrics();
    let get = |n: &str| {
        operator
            .iter()
            .find(|m| m.name == n)
            .unwrap_or_else(|| panic!("{n} is not registered: {operator:?}"))
    };
    let reconciles = get("vaultkeeper_reconciles");
    assert_eq!(reconciles.kind, MetricKind::Counter);
    assert_eq!(reconciles.exported(), ["vaultkeeper_reconciles_total"]);
    assert!(reconciles.per_cluster());
    let duration = get("vaultkeeper_reconcile_duration_seconds");
    assert_eq!(duration.kind, MetricKind::Histogram);
    assert!(duration.labels.is_empty(), "the histogram is operator-wide");
    assert!(get("vaultkeeper_leader").labels.is_empty());
    assert_eq!(
        get("vaultkeeper_tls_expiry_timestamp_seconds").labels,
        ["certificate", "name", "namespace"]
            .map(str::to_owned)
            .into()
    );
    // The parsed list is what the operator really exports.
    let metrics = Metrics::new();
    fill(&metrics, "vault", "prod", 1);
    let text = metrics.encode();
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let parsed: BTreeSet<String> = operator.iter().flat_map(OperatorMetric::exported).collect();
    assert_eq!(
        exported,
        parsed.iter().map(String::as_str).collect(),
        "the names read from metrics.rs are the names /metrics serves"
    );
}

// ---------------------------------------------------------------------------------------
// Every query evaluated against series shaped like the real ones.
// ---------------------------------------------------------------------------------------

/// Sets every operator metric for one cluster, as a pass over it would.
fn fill(metrics: &Metrics, namespace: &str, name: &str, seed: u32) {
    let labels = ClusterLabels {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    let n = i64::from(seed);
    metrics.reconciles.get_or_create(&labels).inc_by(10);
    metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            reason: "VaultUnreachable".to_owned(),
        })
        .inc();
    metrics.reconcile_duration.observe(0.2);
    metrics.ready_pods.get_or_create(&labels).set(3);
    metrics.sealed_pods.get_or_create(&labels).set(0);
    metrics.unsealed_pods.get_or_create(&labels).set(3);
    metrics.cluster_ready.get_or_create(&labels).set(1);
    for result in ["success", "failure"] {
        metrics
            .unseal_operations
            .get_or_create(&UnsealLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }
    metrics.leader.set(1);
    metrics.writes_last_pass.get_or_create(&labels).set(2);
    metrics
        .backup_last_success
        .get_or_create(&labels)
        .set(1_800.0);
    metrics
        .backup_schedule_period
        .get_or_create(&labels)
        .set(86_400);
    metrics.backup_last_duration.get_or_create(&labels).set(4.5);
    metrics
        .backup_last_size
        .get_or_create(&labels)
        .set(1_000 * n);
    metrics.backup_failures.get_or_create(&labels).inc();
    metrics.backup_healthy.get_or_create(&labels).set(1);
    for certificate in ["ca", "server"] {
        metrics
            .tls_expiry
            .get_or_create(&CertificateLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                certificate: certificate.to_owned(),
            })
            .set(10_000_000);
    }
    metrics
        .metrics_token_expiry
        .get_or_create(&labels)
        .set(1_200_000);
    metrics.metrics_token_failures.get_or_create(&labels).inc();
    metrics.monitoring_ready.get_or_create(&labels).set(1);
}

/// One series for `promtool test rules`: `metric{labels}` and its values in promtool's
/// expanding notation, 41 samples a minute apart.
fn series(name_and_labels: String, value: f64, counter: bool) -> Value {
    let values = if counter {
        format!("{value}+1x40")
    } else {
        format!("{value}x40")
    };
    json!({"series": name_and_labels, "values": values})
}

/// The operator's /metrics as Prometheus stores it: the real encoder's output, with the
/// target labels prometheus-operator adds. `honorLabels: true` keeps the series' own
/// `namespace`; only a series without one gets the operator's.
fn operator_series(operator: &[OperatorMetric]) -> Vec<Value> {
    let metrics = Metrics::new();
    // The cluster the dashboard is pointed at, a neighbour and a namesake elsewhere.
    fill(&metrics, "vault", "prod", 1);
    fill(&metrics, "vault", "other", 2);
    fill(&metrics, "team-b", "prod", 3);
    let counters: BTreeSet<String> = operator
        .iter()
        .filter(|m| m.kind != MetricKind::Gauge)
        .flat_map(OperatorMetric::exported)
        .collect();
    let mut out = Vec::new();
    for line in metrics.encode().lines().filter(|l| !l.starts_with('#')) {
        let (series_text, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("cannot read the sample {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("sample {line:?}: {e}"));
        let (name, labels) = match series_text.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}').to_owned()),
            None => (series_text, String::new()),
        };
        let mut all: Vec<String> = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if !all.iter().any(|l| l.starts_with("namespace=")) {
            all.push(format!("namespace=\"{OPERATOR_NAMESPACE}\""));
        }
        all.extend([
            "job=\"vaultkeeper-metrics\"".to_owned(),
            "service=\"vaultkeeper-metrics\"".to_owned(),
            "pod=\"vaultkeeper-5d8f7c9b4-x2x7q\"".to_owned(),
        ]);
        out.push(series(
            format!("{name}{{{}}}", all.join(",")),
            value,
            counters.contains(name),
        ));
    }
    out
}

/// Vault's series for three-node clusters scraped through their `-internal` Service, as
/// prometheus-operator labels them; pod 0 is the active node.
fn vault_series() -> Vec<Value> {
    // (name, extra labels, active node only, counter, value)
    let shapes: &[(&str, &str, bool, bool, f64)] = &[
        ("up", "", false, false, 1.0),
        (
            "vault_core_active",
            ",cluster=\"vault-cluster-1\"",
            false,
            false,
            0.0,
        ),
        (
            "vault_core_unsealed",
            ",cluster=\"vault-cluster-1\"",
            false,
            false,
            1.0,
        ),
        (
            "vault_autopilot_node_healthy",
            ",node_id=\"vault-0\"",
            true,
            false,
            1.0,
        ),
        ("vault_autopilot_failure_tolerance", "", true, false, 1.0),
        ("vault_autopilot_healthy", "", true, false, 1.0),
        ("vault_core_handle_request_count", "", false, true, 100.0),
        (
            "vault_core_handle_request",
            ",quantile=\"0.5\"",
            false,
            false,
            0.4,
        ),
        (
            "vault_core_handle_request",
            ",quantile=\"0.99\"",
            false,
            false,
            2.5,
        ),
        ("vault_audit_log_request_failure", "", false, true, 0.0),
        ("process_resident_memory_bytes", "", false, false, 1.5e8),
    ];
    for name in VAULT_METRICS {
        assert!(
            shapes.iter().any(|s| s.0 == *name),
            "{name} has no series in this test"
        );
    }
    let mut out = Vec::new();
    for (namespace, cluster) in [("vault", "prod"), ("vault", "other"), ("team-b", "prod")] {
        for pod in 0..3 {
            for (name, extra, active_only, counter, value) in shapes {
                if *active_only && pod != 0 {
                    continue;
                }
                let value = if *name == "vault_core_active" && pod == 0 {
                    1.0
                } else {
                    *value
                };
                out.push(series(
                    format!(
                        "{name}{{namespace=\"{namespace}\",service=\"{cluster}-internal\",\
                         pod=\"{cluster}-{pod}\",job=\"{cluster}-internal\",\
                         endpoint=\"https\"{extra}}}"
                    ),
                    value,
                    *counter,
                ));
            }
        }
    }
    out
}

/// `VAULTKEEPER_PROMTOOL`, else `.tools/bin/promtool` (scripts/install-tools.sh).
fn promtool() -> PathBuf {
    vaultkeeper_e2e::operator::tool("promtool", "VAULTKEEPER_PROMTOOL")
}

#[test]
fn every_query_returns_data_for_the_chosen_cluster_and_nothing_for_another() {
    let operator = operator_metrics();
    let per_cluster: BTreeSet<String> = operator
        .iter()
        .filter(|m| m.per_cluster())
        .flat_map(OperatorMetric::exported)
        .chain(VAULT_METRICS.iter().map(|s| (*s).to_owned()))
        .collect();
    let mut input = operator_series(&operator);
    input.extend(vault_series());

    let substitute = |expr: &str, namespace: &str, cluster: &str| {
        let e = expr
            .replace("$namespace", namespace)
            .replace("$cluster", cluster);
        assert!(
            !e.contains('$'),
            "{expr} uses a variable other than $namespace and $cluster"
        );
        e
    };
    let mut cases = Vec::new();
    let mut described = Vec::new();
    for (title, expr) in queries(&dashboard()) {
        // Some data for the chosen cluster: one sample once grouped.
        cases.push(json!({
            "expr": format!("group({})", substitute(&expr, "vault", "prod")),
            "eval_time": "40m",
            "exp_samples": [{"labels": "{}", "value": 1}],
        }));
        described.push(format!("{title}: {expr} returns data"));
        if selectors(&expr)
            .iter()
            .any(|s| per_cluster.contains(&s.metric))
        {
            for (namespace, cluster) in [("vault", "absent"), ("absent", "prod")] {
                cases.push(json!({
                    "expr": format!("group({})", substitute(&expr, namespace, cluster)),
                    "eval_time": "40m",
                    "exp_samples": [],
                }));
                described.push(format!(
                    "{title}: {expr} returns nothing for {namespace}/{cluster}"
                ));
            }
        }
    }
    let tests = json!({
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input, "promql_expr_test": cases}],
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("dashboard-test.yaml");
    // JSON is YAML; promtool reads it as such.
    std::fs::write(&file, tests.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(promtool())
        .arg("test")
        .arg("rules")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running promtool: {e}"));
    assert!(
        output.status.success(),
        "promtool test rules failed ({}):\n{}{}\nthe cases, in order:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        described.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The chart: the sidecar ConfigMap and the operator's ServiceMonitor.
// ---------------------------------------------------------------------------------------

#[test]
fn the_chart_ships_the_dashboard_for_the_sidecar_only_when_asked() {
    let objects = ok(helm_template(&[]));
    assert!(
        of_kind(&objects, "ConfigMap").is_empty(),
        "no ConfigMap by default: {:?}",
        objects.iter().map(kind).collect::<Vec<_>>()
    );

    let objects = ok(helm_template(&["--set", "grafanaDashboard.enabled=true"]));
    let maps = of_kind(&objects, "ConfigMap");
    assert_eq!(maps.len(), 1, "one ConfigMap, the dashboard's");
    let cm = ok(find(&objects, "ConfigMap", "vaultkeeper-dashboard"));
    assert_eq!(install::namespace(cm), OPERATOR_NAMESPACE);
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/instance"],
        "vaultkeeper"
    );
    assert!(cm["metadata"]["annotations"].is_null());
    let data = cm["data"].as_object().cloned().unwrap_or_default();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["vaultkeeper.json"],
        "one key, the file Grafana loads"
    );
    assert!(
        data["vaultkeeper.json"].as_str() == Some(dashboard_text().as_str()),
        "the ConfigMap carries dashboards/vaultkeeper.json byte for byte"
    );

    let objects = ok(helm_template(&[
        "--set",
        "grafanaDashboard.enabled=true,grafanaDashboard.label=dashboards,grafanaDashboard.labelValue=1",
        "--set",
        "grafanaDashboard.namespace=monitoring,grafanaDashboard.annotations.grafana_folder=Vault",
    ]));
    let cm = ok(find(&objects, "ConfigMap", "vaultkeeper-dashboard"));
    assert_eq!(install::namespace(cm), "monitoring");
    assert_eq!(
        cm["metadata"]["labels"]["dashboards"], "1",
        "the value is a string even when --set reads it as a number"
    );
    assert!(cm["metadata"]["labels"]["grafana_dashboard"].is_null());
    assert_eq!(
        cm["metadata"]["annotations"],
        json!({"grafana_folder": "Vault"})
    );

    let report = ok(install::helm_lint(&[
        "--set",
        "grafanaDashboard.enabled=true,grafanaDashboard.annotations.grafana_folder=Vault",
    ]));
    assert!(
        report.contains("0 chart(s) failed") && !report.contains("[WARNING]"),
        "{report}"
    );
}

#[test]
fn operator_service_monitor_keeps_the_clusters_namespace_label() {
    let objects = ok(helm_template(&["--set", "serviceMonitor.enabled=true"]));
    let sm = ok(find(&objects, "ServiceMonitor", "vaultkeeper"));
    let endpoints = sm["spec"]["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!endpoints.is_empty(), "{sm}");
    for e in &endpoints {
        assert_eq!(
            e["honorLabels"], true,
            "the per-cluster series carry the VaultCluster's namespace; without honorLabels \
             Prometheus replaces it with the operator's: {e}"
        );
    }
}
