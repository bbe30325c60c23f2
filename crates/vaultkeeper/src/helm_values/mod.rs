//! Converting the official Vault Helm chart's values (chart 0.34.1) into the equivalent
//! `VaultCluster`, for `vaultkeeper import --from-helm-values`.
//!
//! A pure function: the values file's text and the release in, a VaultCluster and the list
//! of values it could not carry (each with why) out. The rules:
//!
//! - The values are merged over the chart's defaults as Helm merges them (maps merge key by
//!   key, a `null` removes a default, anything else replaces it), and the chart's modes are
//!   decided as its templates decide them (dev, HA, standalone, or no server at all).
//! - Every value the user set that differs from the chart's default is either carried into
//!   a VaultCluster field, or named as a [`Leftover`] with its [`Why`]. Nothing is dropped
//!   silently; a value that only matters when a feature is on is ignored while it is off.
//! - What the chart renders from its own defaults and vaultkeeper does not (the agent
//!   injector, which the chart turns on by default) is named too.
//! - The server configuration (HCL or JSON) is read: the listener decides TLS, the storage
//!   must be raft, and the plain settings go to `spec.config`; what vaultkeeper renders
//!   itself (listener, storage, seal, addresses) never goes there.
//! - Secret values (an enterprise license, seal credentials) are never copied into the
//!   output or a message: leftovers name paths, not values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};
use vaultkeeper_api::{VaultCluster, VaultClusterSpec};

mod config;
mod leftovers;
mod pod;
mod services;
#[cfg(test)]
mod tests;
mod workload;

use config::{parse_error, server_config};
use leftovers::{components, generic_reason, not_carried};
use pod::{environment, image, placement, server_mode, storage, unseal};
use services::{ingress, monitoring, services, tls, ui_and_config};
use workload::{disruption_budget, workload};

/// The chart version whose values and templates this conversion follows.
pub const CHART_VERSION: &str = "0.34.1";

/// The chart's name (the default of `nameOverride`).
const CHART_NAME: &str = "vault";

/// The top-level keys of the chart's values.
const CHART_KEYS: &[&str] = &[
    "global",
    "injector",
    "server",
    "ui",
    "csi",
    "serverTelemetry",
    "nameOverride",
    "fullnameOverride",
];

/// Where the chart mounts extra Secrets (`server.extraVolumes[].path`'s default).
const USERCONFIG_DIR: &str = "/vault/userconfig";

/// What the import needs besides the values.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The Helm release name; the VaultCluster is named as the chart names its objects.
    pub release: String,
    /// The namespace; `None` means `global.namespace`, else none in the output.
    pub namespace: Option<String>,
}

/// The result of an import.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The equivalent VaultCluster.
    pub cluster: VaultCluster,
    /// Values that could not be carried over, in path order.
    pub leftovers: Vec<Leftover>,
    /// Things the output does differently from the values on purpose, for the user to read.
    pub notes: Vec<String>,
}

/// A value that has no place in the VaultCluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leftover {
    /// The value's path in the chart's values, e.g. `server.extraContainers`.
    pub path: String,
    /// Why it is not carried.
    pub why: Why,
    /// What it does in the chart, and what to do instead.
    pub detail: String,
}

/// Why a value is not carried over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Why {
    /// VaultCluster has no field for it yet.
    NoField,
    /// It has no meaning when vaultkeeper runs the cluster (the operator does it, or the
    /// chart component is not part of a Vault cluster).
    NotUnderOperator,
    /// It can be carried only after a step a person takes (data migration, a Secret with
    /// other keys).
    NeedsAction,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Why::NoField => "no VaultCluster field yet",
            Why::NotUnderOperator => "not meaningful under the operator",
            Why::NeedsAction => "needs a step by hand",
        })
    }
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path, self.why, self.detail)
    }
}

/// Why a file is not a Vault chart values file (or asks for nothing to import).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotVaultValues {
    /// Not YAML.
    #[error("not valid YAML: {0}")]
    NotYaml(String),
    /// YAML, but not a mapping of values.
    #[error("a values file is a YAML mapping, but this one is {0}")]
    NotMapping(&'static str),
    /// Top-level keys the Vault chart does not have.
    #[error(
        "not keys of the Vault chart's values: {} (its top-level keys are {}); is this another chart's values file? If those keys are yours, remove them",
        keys.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", "),
        CHART_KEYS.join(", ")
    )]
    ForeignKeys {
        /// The unknown keys.
        keys: Vec<String>,
    },
    /// A value with the wrong shape where the chart needs a particular one.
    #[error("{path}: {detail}")]
    BadValue {
        /// The value's path.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The values run no Vault server (injector only, or an external Vault).
    #[error("{0}: these values run no Vault server, so there is nothing to import")]
    NoServer(String),
}

/// The chart's defaults for every value the conversion reads or compares, as the chart's
/// `values.yaml` sets them. The injector's and the CSI provider's settings are left out:
/// they matter only as "is it on".
const CHART_DEFAULTS: &str = r#"
global:
  enabled: true
  namespace: ""
  imagePullSecrets: []
  tlsDisable: true
  externalVaultAddr: ""
  openshift: false
  psp: {enable: false}
  serverTelemetry: {prometheusOperator: false}
injector: {enabled: "-", externalVaultAddr: ""}
csi: {enabled: false}
server:
  enabled: "-"
  enterpriseLicense: {secretName: "", secretKey: license}
  serviceCA: {enabled: false, secretName: vault-tls, configMapName: service-ca-bundle}
  image: {repository: hashicorp/vault, tag: "2.0.4", pullPolicy: IfNotPresent}
  updateStrategyType: OnDelete
  logLevel: ""
  logFormat: ""
  resources: {}
  ingress:
    enabled: false
    labels: {}
    annotations: {}
    ingressClassName: ""
    pathType: Prefix
    activeService: true
    hosts: [{host: chart-example.local, paths: []}]
    extraPaths: []
    tls: []
  httproute: {enabled: false}
  hostAliases: []
  route: {enabled: false}
  authDelegator: {enabled: true}
  extraInitContainers: null
  extraContainers: null
  shareProcessNamespace: false
  extraArgs: ""
  extraPorts: null
  readinessProbe:
    {enabled: true, port: 8200, failureThreshold: 2, initialDelaySeconds: 5,
     periodSeconds: 5, successThreshold: 1, timeoutSeconds: 3}
  livenessProbe:
    {enabled: false, execCommand: [], path: "/v1/sys/health?standbyok=true", port: 8200,
     failureThreshold: 2, initialDelaySeconds: 60, periodSeconds: 5, successThreshold: 1,
     timeoutSeconds: 3}
  terminationGracePeriodSeconds: 10
  preStopSleepSeconds: 5
  preStop: []
  postStart: []
  extraEnvironmentVars: {}
  extraSecretEnvironmentVars: []
  extraVolumes: []
  volumes: null
  volumeMounts: null
  affinity: |
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - labelSelector:
            matchLabels:
              app.kubernetes.io/name: {{ template "vault.name" . }}
              app.kubernetes.io/instance: "{{ .Release.Name }}"
              component: server
          topologyKey: kubernetes.io/hostname
  topologySpreadConstraints: []
  tolerations: []
  nodeSelector: {}
  networkPolicy:
    enabled: false
    egress: []
    ingress:
      - from: [{namespaceSelector: {}}]
        ports: [{port: 8200, protocol: TCP}, {port: 8201, protocol: TCP}]
  priorityClassName: ""
  extraLabels: {}
  annotations: {}
  includeConfigAnnotation: false
  service:
    enabled: true
    active: {enabled: true, annotations: {}}
    standby: {enabled: true, annotations: {}}
    instanceSelector: {enabled: true}
    ipFamilyPolicy: ""
    ipFamilies: []
    publishNotReadyAddresses: true
    externalTrafficPolicy: Cluster
    port: 8200
    targetPort: 8200
    annotations: {}
  dataStorage:
    {enabled: true, size: 10Gi, mountPath: /vault/data, storageClass: null,
     accessMode: ReadWriteOnce, annotations: {}, labels: {}}
  persistentVolumeClaimRetentionPolicy: {}
  auditStorage:
    {enabled: false, size: 10Gi, mountPath: /vault/audit, storageClass: null,
     accessMode: ReadWriteOnce, annotations: {}, labels: {}}
  dev: {enabled: false, devRootToken: root}
  standalone:
    enabled: "-"
    config: |-
      ui = true

      listener "tcp" {
        tls_disable = 1
        address = "[::]:8200"
        cluster_address = "[::]:8201"
      }
      storage "file" {
        path = "/vault/data"
      }
  ha:
    enabled: false
    replicas: 3
    apiAddr: null
    clusterAddr: null
    raft:
      enabled: false
      setNodeId: false
      redundancyZones: {enabled: false}
      config: |
        ui = true

        listener "tcp" {
          tls_disable = 1
          address = "[::]:8200"
          cluster_address = "[::]:8201"
        }

        storage "raft" {
          path = "/vault/data"
        }

        service_registration "kubernetes" {}
    config: |
      ui = true

      listener "tcp" {
        tls_disable = 1
        address = "[::]:8200"
        cluster_address = "[::]:8201"
      }
      storage "consul" {
        path = "vault"
        address = "HOST_IP:8500"
      }

      service_registration "kubernetes" {}
    disruptionBudget: {enabled: true, maxUnavailable: null}
  serviceAccount:
    create: true
    name: ""
    createSecret: false
    annotations: {}
    extraLabels: {}
    serviceDiscovery: {enabled: true}
  statefulSet:
    annotations: {}
    securityContext: {pod: {}, container: {}}
  hostNetwork: false
ui:
  enabled: false
  publishNotReadyAddresses: true
  activeVaultPodOnly: false
  serviceType: ClusterIP
  serviceNodePort: null
  externalPort: 8200
  targetPort: 8200
  serviceIPFamilyPolicy: ""
  serviceIPFamilies: []
  externalTrafficPolicy: Cluster
  annotations: {}
serverTelemetry:
  serviceMonitor:
    {enabled: false, selectors: {}, interval: 30s, scrapeTimeout: 10s, tlsConfig: {},
     authorization: {}, metricRelabelings: [], matchLabels: {}}
  prometheusRules: {enabled: false, selectors: {}, rules: []}
"#;

/// [`CHART_DEFAULTS`], parsed. A unit test pins that it parses.
fn chart_defaults() -> Value {
    serde_saphyr::from_str(CHART_DEFAULTS).unwrap_or_else(|_| Value::Object(Map::new()))
}

/// Parses a values file. An empty file is valid (no overrides), as Helm treats it.
pub fn parse_values(text: &str) -> Result<Value, NotVaultValues> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| NotVaultValues::NotYaml(parse_error(&e)))?;
    let mut documents = documents.into_iter().filter(|d| !d.is_null());
    let values = documents
        .next()
        .unwrap_or_else(|| Value::Object(Map::new()));
    if documents.next().is_some() {
        return Err(NotVaultValues::NotMapping(
            "a stream of several YAML documents",
        ));
    }
    let Value::Object(map) = &values else {
        return Err(NotVaultValues::NotMapping(kind_of(&values)));
    };
    let foreign: Vec<String> = map
        .keys()
        .filter(|k| !CHART_KEYS.contains(&k.as_str()))
        .cloned()
        .collect();
    if !foreign.is_empty() {
        return Err(NotVaultValues::ForeignKeys { keys: foreign });
    }
    Ok(values)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Helm's merge of user values over defaults: maps merge, `null` deletes, the rest replaces.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                if value.is_null() {
                    base.remove(key);
                } else if let Some(existing) = base.get_mut(key) {
                    merge(existing, value);
                } else {
                    base.insert(key.clone(), value.clone());
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

/// Go template truthiness (`if .Values.x`).
fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// The chart's `(x | toString) == "true"` test.
fn is_true(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// The chart's tri-state `enabled` (`true`, or `"-"` following `global.enabled`).
fn enabled_or_global(value: Option<&Value>, global: bool) -> bool {
    is_true(value) || (matches!(value, Some(Value::String(s)) if s == "-") && global)
}

fn to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The values, merged, with a record of which paths the conversion has dealt with.
struct Reader {
    merged: Value,
    defaults: Value,
    user: Value,
    consumed: BTreeSet<String>,
    leftovers: Vec<Leftover>,
    notes: Vec<String>,
}

impl Reader {
    /// The merged value at a dotted path; marks the path as dealt with.
    fn take(&mut self, path: &str) -> Option<Value> {
        self.consumed.insert(path.to_owned());
        self.peek(path).cloned()
    }

    fn peek(&self, path: &str) -> Option<&Value> {
        lookup(&self.merged, path).filter(|v| !v.is_null())
    }

    fn take_str(&mut self, path: &str) -> String {
        self.take(path).map(|v| to_text(&v)).unwrap_or_default()
    }

    /// Marks a whole subtree as dealt with (a feature that is off, or handled as a whole).
    fn consume(&mut self, path: &str) {
        self.consumed.insert(path.to_owned());
    }

    fn left(&mut self, path: impl Into<String>, why: Why, detail: impl Into<String>) {
        let path = path.into();
        self.consumed.insert(path.clone());
        self.leftovers.push(Leftover {
            path,
            why,
            detail: detail.into(),
        });
    }

    /// Names the value at `path` as a leftover when it differs from the chart's default.
    fn left_if_changed(&mut self, path: &str, why: Why, detail: &str) {
        if self.changed(path) {
            self.left(path, why, detail);
        } else {
            self.consume(path);
        }
    }

    fn changed(&self, path: &str) -> bool {
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        self.changed_at(&segments)
    }

    /// Like [`Self::changed`], for keys that may hold dots (annotation names).
    fn changed_at(&self, segments: &[String]) -> bool {
        let at = |tree: &Value| {
            segments
                .iter()
                .try_fold(tree, |current, key| current.as_object()?.get(key))
                .filter(|v| !v.is_null())
                .cloned()
        };
        let (now, default) = (at(&self.merged), at(&self.defaults));
        now != default && (truthy(now.as_ref()) || truthy(default.as_ref()))
    }

    /// Every value the user set that differs from the default and was not dealt with.
    /// Each with whether the chart has the setting (a value below a free-form default,
    /// such as a map, counts as the chart's).
    fn unconsumed(&self) -> Vec<(String, bool)> {
        let mut found = Vec::new();
        leaves(&self.user, Vec::new(), &mut found);
        found
            .into_iter()
            .filter(|segments| self.changed_at(segments))
            .map(|segments| (segments.join("."), self.chart_has(&segments)))
            .filter(|(path, _)| {
                !self
                    .consumed
                    .iter()
                    .any(|c| path == c || path.starts_with(&format!("{c}.")))
            })
            .collect()
    }

    fn chart_has(&self, segments: &[String]) -> bool {
        let mut node = &self.defaults;
        for key in segments {
            match node {
                Value::Object(map) if !map.is_empty() => match map.get(key) {
                    Some(child) => node = child,
                    None => return false,
                },
                _ => return true,
            }
        }
        true
    }
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |current, key| current.as_object()?.get(key))
}

/// The key paths of a tree's leaves (lists and empty maps count as leaves).
fn leaves(value: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let mut path = prefix.clone();
                path.push(key.clone());
                leaves(child, path, out);
            }
        }
        _ if !prefix.is_empty() => out.push(prefix),
        _ => {}
    }
}

/// The chart's names for one release.
struct ChartNames {
    /// `vault.fullname`: the prefix of every object's name.
    fullname: String,
    /// `vault.name`: the `app.kubernetes.io/name` label.
    name: String,
    release: String,
    namespace: String,
}

/// Evaluates the template expressions the chart's own defaults use (its name, full name,
/// release and namespace); any other expression is refused with its text.
fn expand(text: &str, names: &ChartNames) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "an unterminated Helm template expression".to_owned())?;
        let inner = after[..end].trim_matches(|c: char| c == '-' || c.is_whitespace());
        let inner: Vec<&str> = inner.split_whitespace().collect();
        let replacement = match inner.join(" ").as_str() {
            "template \"vault.name\" ." | "include \"vault.name\" ." => names.name.clone(),
            "template \"vault.fullname\" ." | "include \"vault.fullname\" ." => {
                names.fullname.clone()
            }
            ".Release.Name" => names.release.clone(),
            ".Release.Namespace" | "include \"vault.namespace\" ." => names.namespace.clone(),
            ".Chart.Name" => CHART_NAME.to_owned(),
            other => {
                let shown: String = other.chars().take(80).collect();
                return Err(format!(
                    "the Helm template expression {{{{ {shown} }}}}, which import cannot evaluate"
                ));
            }
        };
        out.push_str(&replacement);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A value the chart also accepts as a template string (affinity, annotations…): a
/// string is expanded and read as YAML; anything else is taken as it is.
fn templated(value: &Value, names: &ChartNames) -> Result<Value, String> {
    let Value::String(text) = value else {
        return Ok(value.clone());
    };
    let text = expand(text, names)?;
    serde_saphyr::from_str::<Value>(&text)
        .map_err(|e| format!("not valid YAML: {}", parse_error(&e)))
}

/// Converts merged-over-defaults values into a VaultCluster.
pub fn import(values: &Value, options: &ImportOptions) -> Result<Imported, NotVaultValues> {
    let defaults = chart_defaults();
    let mut merged = defaults.clone();
    merge(&mut merged, values);
    let mut r = Reader {
        merged,
        defaults,
        user: values.clone(),
        consumed: BTreeSet::new(),
        leftovers: Vec::new(),
        notes: Vec::new(),
    };

    let names = chart_names(&mut r, options)?;
    let global = is_true(r.take("global.enabled").as_ref());
    let server_enabled = enabled_or_global(r.take("server.enabled").as_ref(), global);
    let external = truthy(r.take("global.externalVaultAddr").as_ref())
        || truthy(r.peek("injector.externalVaultAddr"));
    if external {
        return Err(NotVaultValues::NoServer(
            "global.externalVaultAddr or injector.externalVaultAddr is set".to_owned(),
        ));
    }
    if !server_enabled {
        return Err(NotVaultValues::NoServer(
            "server.enabled is false (or \"-\" with global.enabled false)".to_owned(),
        ));
    }
    components(&mut r, global);

    let mut spec = VaultClusterSpec::default();
    let mode = server_mode(&mut r, &mut spec)?;
    image(&mut r, &mut spec);
    let tls_enabled = !truthy(r.take("global.tlsDisable").as_ref());
    let config = server_config(&mut r, mode, &names);
    tls(&mut r, &mut spec, tls_enabled, &config);
    let token_env = unseal(&mut r, &mut spec, &config);
    ui_and_config(&mut r, &mut spec, config);
    placement(&mut r, &mut spec, &names);
    workload(&mut r, &mut spec, &names, &names.fullname);
    disruption_budget(&mut r, &mut spec, &names.fullname, mode);
    environment(&mut r, &mut spec, token_env);
    storage(&mut r, &mut spec, mode);
    services(&mut r, &mut spec, mode);
    ingress(&mut r, &mut spec, mode);
    monitoring(&mut r, &mut spec);
    not_carried(&mut r, mode);

    // The chart takes no backups; vaultkeeper's are on by default and need a bucket.
    spec.backup.enabled = false;
    r.notes.push(
        "spec.backup.enabled is false because the chart takes no backups: name a bucket in \
         spec.backup to have vaultkeeper take encrypted raft snapshots"
            .to_owned(),
    );

    for (path, known) in r.unconsumed() {
        let (setting, why, detail) = generic_reason(&path, known);
        r.leftovers.push(Leftover {
            path: setting,
            why,
            detail: detail.to_owned(),
        });
    }
    r.leftovers.sort();
    r.leftovers.dedup_by(|a, b| a.path == b.path);

    let namespace = options.namespace.clone().or_else(|| {
        r.peek("global.namespace")
            .map(to_text)
            .filter(|s| !s.is_empty())
    });
    let cluster = VaultCluster {
        metadata: ObjectMeta {
            name: Some(names.fullname),
            namespace,
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    Ok(Imported {
        cluster,
        leftovers: r.leftovers,
        notes: r.notes,
    })
}

fn chart_names(r: &mut Reader, options: &ImportOptions) -> Result<ChartNames, NotVaultValues> {
    let name_override = r.take_str("nameOverride");
    if !name_override.is_empty() {
        r.left(
            "nameOverride",
            Why::NoField,
            "it changes the app.kubernetes.io/name label of the pods and so every selector; \
             VaultCluster pods are labelled app.kubernetes.io/name: vault",
        );
    }
    let name = if name_override.is_empty() {
        CHART_NAME.to_owned()
    } else {
        truncate_name(&name_override)
    };
    let fullname_override = r.take_str("fullnameOverride");
    let fullname = if !fullname_override.is_empty() {
        truncate_name(&fullname_override)
    } else if options.release.contains(&name) {
        truncate_name(&options.release)
    } else {
        truncate_name(&format!("{}-{name}", options.release))
    };
    // Only the name's rules can fail for this spec.
    let mut probe = VaultClusterSpec::default();
    probe.backup.enabled = false;
    let problems = vaultkeeper_api::validate_spec(&fullname, &probe);
    if let Some(problem) = problems.first() {
        return Err(NotVaultValues::BadValue {
            path: "the release name".to_owned(),
            detail: format!(
                "the chart names the objects {fullname:?}, which cannot be a VaultCluster's \
                 name ({}); pass another --release or set fullnameOverride",
                problem.message
            ),
        });
    }
    let namespace = options
        .namespace
        .clone()
        .or_else(|| {
            r.peek("global.namespace")
                .map(to_text)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "default".to_owned());
    Ok(ChartNames {
        fullname,
        name,
        release: options.release.clone(),
        namespace,
    })
}

/// The chart's `trunc 63 | trimSuffix "-"`.
fn truncate_name(name: &str) -> String {
    let cut: String = name.chars().take(63).collect();
    cut.strip_suffix('-').map(str::to_owned).unwrap_or(cut)
}

/// The chart's server mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `server.ha.enabled`, with raft storage or not.
    Ha { raft: bool },
    /// One server (`server.standalone`).
    Standalone,
    /// `server.dev`: one in-memory server; the chart reads no configuration.
    Dev,
}

/// A map of strings (labels, annotations), given as a map or a template string.
fn string_map(r: &mut Reader, path: &str) -> Option<BTreeMap<String, String>> {
    let value = r.take(path)?;
    let names = placeholder_names();
    let parsed = match templated(&value, &names) {
        Ok(v) => v,
        Err(why) => {
            r.left(path, Why::NeedsAction, format!("it holds {why}"));
            return None;
        }
    };
    match parsed {
        Value::Object(map) => Some(map.iter().map(|(k, v)| (k.clone(), to_text(v))).collect()),
        Value::Null => None,
        _ => {
            r.left(path, Why::NeedsAction, "it is not a map of strings");
            None
        }
    }
}

/// Names for templates in values where the release is irrelevant (annotations).
fn placeholder_names() -> ChartNames {
    ChartNames {
        fullname: CHART_NAME.to_owned(),
        name: CHART_NAME.to_owned(),
        release: CHART_NAME.to_owned(),
        namespace: "default".to_owned(),
    }
}

/// The VaultCluster as YAML, with only the fields that differ from VaultCluster's
/// defaults, so the output reads as what the values asked for.
pub fn to_manifest_yaml(imported: &Imported, source: &str) -> Result<String, String> {
    let mut spec = serde_json::to_value(&imported.cluster.spec).map_err(|e| e.to_string())?;
    let defaults = serde_json::to_value(VaultClusterSpec::default()).map_err(|e| e.to_string())?;
    prune_defaults(&mut spec, &defaults);
    let mut metadata = Map::new();
    if let Some(name) = &imported.cluster.metadata.name {
        metadata.insert("name".to_owned(), json!(name));
    }
    if let Some(namespace) = &imported.cluster.metadata.namespace {
        metadata.insert("namespace".to_owned(), json!(namespace));
    }
    let document = json!({
        "apiVersion": "vaultkeeper.io/v1alpha1",
        "kind": "VaultCluster",
        "metadata": metadata,
        "spec": spec,
    });
    let mut yaml = serde_saphyr::to_string(&document).map_err(|e| e.to_string())?;
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    let source: String = source.chars().filter(|c| !c.is_control()).collect();
    Ok(format!(
        "# Imported from the Vault Helm chart ({CHART_VERSION}) values {source} by \
         `vaultkeeper import`.\n# Values not carried over are listed on stderr; see \
         docs/migrating-from-helm.md.\n{yaml}"
    ))
}

fn prune_defaults(value: &mut Value, default: &Value) {
    if let (Value::Object(map), Value::Object(defaults)) = (value, default) {
        map.retain(|key, child| match defaults.get(key) {
            Some(d) if d == child => false,
            Some(d) => {
                prune_defaults(child, d);
                !matches!(child, Value::Object(m) if m.is_empty())
            }
            None => true,
        });
    }
}
