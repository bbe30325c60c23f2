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

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, EnvVarSource, LocalObjectReference, PodSecurityContext, ResourceRequirements,
    SecretKeySelector, SecurityContext, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};
use vaultkeeper_api::{
    AuditStorageSpec, AwsKmsSeal, AzureKeyVaultSeal, Flavor, GcpCkmsSeal, ImagePullPolicy,
    ServiceType, TlsMode, TokenSecretRef, TransitSeal, UnsealType, VaultCluster, VaultClusterSpec,
    rules,
};

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

/// The chart's other components: named when they would run, ignored when off.
fn components(r: &mut Reader, global: bool) {
    let injector = enabled_or_global(r.peek("injector.enabled"), global);
    r.consume("injector");
    if injector {
        r.left(
            "injector.enabled",
            Why::NotUnderOperator,
            "the Agent Injector (vault-k8s) is a separate component, on by default in the \
             chart; vaultkeeper does not run it: install it on its own, pointed at this \
             cluster, or set injector.enabled: false",
        );
    }
    let csi = enabled_or_global(r.peek("csi.enabled"), global);
    r.consume("csi");
    if csi {
        r.left(
            "csi.enabled",
            Why::NotUnderOperator,
            "the CSI provider is a separate component; vaultkeeper does not run it: install \
             it on its own",
        );
    }
    if is_true(r.peek("global.psp.enable")) {
        r.left(
            "global.psp.enable",
            Why::NotUnderOperator,
            "PodSecurityPolicy was removed in Kubernetes 1.25",
        );
    }
    r.consume("global.psp");
    // Only the injector and the CSI provider read it.
    r.consume("global.serverTelemetry");
    for (base, detail) in [
        ("server.route", "OpenShift Routes are not rendered yet"),
        (
            "server.httproute",
            "Gateway API routes are not rendered yet",
        ),
        (
            "server.serviceCA",
            "OpenShift service-CA certificates are not supported yet",
        ),
    ] {
        let enabled = format!("{base}.enabled");
        if is_true(r.peek(&enabled)) {
            r.left(enabled, Why::NoField, detail);
        }
        r.consume(base);
    }
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

fn server_mode(r: &mut Reader, spec: &mut VaultClusterSpec) -> Result<Mode, NotVaultValues> {
    if is_true(r.take("server.dev.enabled").as_ref()) {
        r.left(
            "server.dev.enabled",
            Why::NotUnderOperator,
            "dev mode runs one in-memory, unsealed server with a known root token; \
             vaultkeeper runs a real sealed cluster and keeps its keys, so the import \
             describes a standalone cluster instead",
        );
    }
    r.consume("server.dev");
    if is_true(r.peek("server.dev.enabled")) {
        spec.replicas = 1;
        r.consume("server.ha");
        r.consume("server.standalone");
        return Ok(Mode::Dev);
    }
    if is_true(r.take("server.ha.enabled").as_ref()) {
        let raft = is_true(r.take("server.ha.raft.enabled").as_ref());
        // The chart takes a number as it is and anything else as 3.
        let replicas = match r.take("server.ha.replicas") {
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f.clamp(-1.0, 99.0) as i64))
                .unwrap_or(3),
            _ => 3,
        };
        spec.replicas = match replicas {
            i64::MIN..=1 => 1,
            2 | 3 => 3,
            4 | 5 => 5,
            _ => 7,
        };
        if i64::from(spec.replicas) != replicas {
            r.left(
                "server.ha.replicas",
                Why::NeedsAction,
                format!(
                    "VaultCluster runs 1, 3, 5 or 7 raft voters; {replicas} became {}",
                    spec.replicas
                ),
            );
        }
        r.consume("server.standalone");
        if !raft {
            r.consume("server.ha.raft");
        }
        let set_node_id = is_true(r.take("server.ha.raft.setNodeId").as_ref());
        if raft && !set_node_id {
            r.notes.push(
                "vaultkeeper always sets VAULT_RAFT_NODE_ID to the pod's name; with \
                 server.ha.raft.setNodeId false the chart's pods have random raft node ids"
                    .to_owned(),
            );
        }
        Ok(Mode::Ha { raft })
    } else {
        spec.replicas = 1;
        r.consume("server.ha");
        r.consume("server.standalone.enabled");
        Ok(Mode::Standalone)
    }
}

fn image(r: &mut Reader, spec: &mut VaultClusterSpec) {
    let repository = r.take_str("server.image.repository");
    let tag = r.take_str("server.image.tag");
    let tag = if tag.is_empty() { "latest" } else { &tag };
    let image = format!("{repository}:{tag}");
    spec.flavor = Some(Flavor::detect_from_image(&image));
    if spec.flavor == Some(Flavor::OpenBao) {
        r.notes.push(
            "the image is OpenBao: vaultkeeper names the container openbao, labels the pods \
             app.kubernetes.io/name: openbao and uses /openbao paths, as the OpenBao chart \
             does, where the Vault chart used vault"
                .to_owned(),
        );
    }
    if !repository.is_empty() {
        spec.image = Some(image);
    }
    spec.image_pull_policy = match r.take_str("server.image.pullPolicy").as_str() {
        "Always" => Some(ImagePullPolicy::Always),
        "IfNotPresent" => Some(ImagePullPolicy::IfNotPresent),
        "Never" => Some(ImagePullPolicy::Never),
        _ => None,
    };
    if let Some(Value::Array(secrets)) = r.take("global.imagePullSecrets") {
        for secret in secrets {
            let name = match &secret {
                Value::String(s) => s.clone(),
                Value::Object(o) => o.get("name").map(to_text).unwrap_or_default(),
                _ => String::new(),
            };
            if !name.is_empty() {
                spec.image_pull_secrets.push(LocalObjectReference { name });
            }
        }
    }
}

/// What the server configuration says, as far as VaultCluster cares.
#[derive(Default)]
struct ConfigFacts {
    /// The `ui` setting.
    ui: Option<Value>,
    /// Settings for `spec.config`.
    extra: Map<String, Value>,
    /// The listener's certificate files, when it names them.
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    /// `tls_disable` of the listener.
    listener_tls_disabled: Option<bool>,
    /// The seal stanza: where it is, its type and its body.
    seal: Option<(String, String, Value)>,
}

/// One top-level item of the server configuration.
struct ConfigItem {
    key: String,
    label: Option<String>,
    body: Value,
}

fn server_config(r: &mut Reader, mode: Mode, names: &ChartNames) -> ConfigFacts {
    let path = match mode {
        Mode::Ha { raft: true } => "server.ha.raft.config",
        Mode::Ha { raft: false } => "server.ha.config",
        Mode::Standalone => "server.standalone.config",
        Mode::Dev => return ConfigFacts::default(),
    };
    let text = r.take_str(path);
    let mut facts = ConfigFacts::default();
    let text = match expand(&text, names) {
        Ok(text) => text,
        Err(why) => {
            r.left(
                path,
                Why::NeedsAction,
                format!("it holds {why}; write the settings into spec.config by hand"),
            );
            return facts;
        }
    };
    let items = match parse_config(&text) {
        Ok(items) => items,
        Err(why) => {
            r.left(
                path,
                Why::NeedsAction,
                format!("it cannot be read ({why}); write the settings into spec.config by hand"),
            );
            return facts;
        }
    };
    let mut listeners = 0;
    for item in items {
        let at = format!("{path} {}", item.key);
        match item.key.as_str() {
            "ui" => facts.ui = Some(item.body),
            "disable_mlock" => {
                if item.body != Value::Bool(true) && item.body != json!("true") {
                    facts.extra.insert(item.key, item.body);
                }
            }
            "listener" => {
                listeners += 1;
                if listeners > 1 || item.label.as_deref() != Some("tcp") {
                    r.left(
                        at,
                        Why::NoField,
                        "VaultCluster renders one TCP listener on port 8200",
                    );
                } else {
                    listener(r, &at, &item.body, &mut facts);
                }
            }
            "storage" => storage_stanza(r, &at, item.label.as_deref(), &item.body),
            "ha_storage" => r.left(
                at,
                Why::NeedsAction,
                "VaultCluster runs integrated storage (raft), which is its own HA storage",
            ),
            "service_registration" => {
                let extra = item.body.as_object().is_some_and(|o| !o.is_empty());
                if item.label.as_deref() != Some("kubernetes") || extra {
                    r.left(
                        at,
                        Why::NotUnderOperator,
                        "vaultkeeper always renders service_registration \"kubernetes\" {}: \
                         its active/standby Services select by the labels it writes",
                    );
                }
            }
            "seal" => {
                let at = format!("{at} {:?}", item.label.clone().unwrap_or_default());
                if facts.seal.is_some() {
                    r.left(
                        at,
                        Why::NeedsAction,
                        "a second seal (a seal migration): VaultCluster has one seal; \
                         finish the migration first",
                    );
                } else {
                    facts.seal = Some((at, item.label.unwrap_or_default(), item.body));
                }
            }
            "api_addr" | "cluster_addr" => r.left(
                at,
                Why::NotUnderOperator,
                "vaultkeeper sets each pod's API and cluster address itself (names its \
                 certificate carries)",
            ),
            key if rules::RENDERED_CONFIG_KEYS.iter().any(|(k, _)| *k == key) => r.left(
                at,
                Why::NotUnderOperator,
                "vaultkeeper renders this part of the configuration itself",
            ),
            _ => {
                let value = match item.label {
                    Some(label) => json!({ label: item.body }),
                    None => item.body,
                };
                if facts.extra.contains_key(&item.key) {
                    r.left(at, Why::NoField, "it appears twice in the configuration");
                } else {
                    facts.extra.insert(item.key, value);
                }
            }
        }
    }
    let placeholders = ["API_ADDR", "TRANSIT_ADDR", "RAFT_ADDR"];
    let extra_text = Value::Object(facts.extra.clone()).to_string();
    for placeholder in placeholders {
        if extra_text.contains(placeholder) {
            r.left(
                format!("{path} {placeholder}"),
                Why::NoField,
                format!(
                    "the chart substitutes {placeholder} from the environment at start; \
                     vaultkeeper substitutes only HOST_IP, POD_IP and HOSTNAME"
                ),
            );
        }
    }
    facts
}

/// A parser's message without the source excerpt some parsers add: the excerpt could
/// hold a credential from the configuration, and a long line would flood the terminal.
fn parse_error(error: &dyn fmt::Display) -> String {
    let text = error.to_string();
    // Excerpt lines are drawn with `|`; the location and the reason are not.
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains('|'))
        .map(|l| {
            l.trim()
                .trim_start_matches("-->")
                .trim_start_matches('=')
                .trim()
        })
        .filter(|l| !l.is_empty())
        .collect();
    let message = if kept.is_empty() {
        "unreadable".to_owned()
    } else {
        kept.join("; ")
    };
    message.chars().take(300).collect()
}

/// Reads HCL or JSON server configuration into its top-level items.
fn parse_config(text: &str) -> Result<Vec<ConfigItem>, String> {
    if text.trim_start().starts_with('{') {
        let map: Map<String, Value> = serde_json::from_str(text).map_err(|e| parse_error(&e))?;
        let mut items = Vec::new();
        for (key, value) in map {
            let labelled = matches!(
                key.as_str(),
                "listener" | "storage" | "ha_storage" | "seal" | "service_registration"
            );
            let entries = match value {
                Value::Array(entries) if labelled => entries,
                other => vec![other],
            };
            for entry in entries {
                match entry {
                    Value::Object(map) if labelled && map.len() == 1 => {
                        for (label, body) in map {
                            items.push(ConfigItem {
                                key: key.clone(),
                                label: Some(label),
                                body,
                            });
                        }
                    }
                    body => items.push(ConfigItem {
                        key: key.clone(),
                        label: None,
                        body,
                    }),
                }
            }
        }
        return Ok(items);
    }
    let body = hcl::parse(text).map_err(|e| parse_error(&e))?;
    let mut items = Vec::new();
    for structure in body {
        match structure {
            hcl::Structure::Attribute(attribute) => {
                let value = serde_json::to_value(hcl::Value::from(attribute.expr))
                    .map_err(|e| parse_error(&e))?;
                items.push(ConfigItem {
                    key: attribute.key.to_string(),
                    label: None,
                    body: value,
                });
            }
            hcl::Structure::Block(block) => {
                let mut labels: Vec<String> =
                    block.labels.iter().map(|l| l.as_str().to_owned()).collect();
                let mut body: Value = hcl::from_body(block.body).map_err(|e| parse_error(&e))?;
                // Labels after the first nest, as they do in JSON configuration.
                while labels.len() > 1 {
                    let last = labels.pop().unwrap_or_default();
                    body = json!({ last: body });
                }
                items.push(ConfigItem {
                    key: block.identifier.to_string(),
                    label: labels.pop(),
                    body,
                });
            }
        }
    }
    Ok(items)
}

fn listener(r: &mut Reader, at: &str, body: &Value, facts: &mut ConfigFacts) {
    let Some(map) = body.as_object() else {
        r.left(at, Why::NoField, "the listener is not a block");
        return;
    };
    for (key, value) in map {
        let text = to_text(value);
        match key.as_str() {
            "address" if text == "[::]:8200" || text == "0.0.0.0:8200" => {}
            "cluster_address" if text == "[::]:8201" || text == "0.0.0.0:8201" => {}
            "tls_disable" => {
                facts.listener_tls_disabled =
                    Some(matches!(text.as_str(), "1" | "true" | "\"1\"" | "\"true\""));
            }
            "tls_cert_file" => facts.cert_file = Some(text),
            "tls_key_file" => facts.key_file = Some(text),
            "tls_client_ca_file" => facts.client_ca_file = Some(text),
            _ => r.left(
                format!("{at}.{key}"),
                Why::NoField,
                "VaultCluster renders the listener (addresses [::]:8200 and [::]:8201, TLS \
                 from spec.tls) and has no field for this setting",
            ),
        }
    }
}

fn storage_stanza(r: &mut Reader, at: &str, label: Option<&str>, body: &Value) {
    if label != Some("raft") {
        r.left(
            format!("{at} {:?}", label.unwrap_or_default()),
            Why::NeedsAction,
            "VaultCluster runs integrated storage (raft) only: move the data first (`vault \
             operator migrate` to raft, or take a snapshot of a raft cluster and restore it)",
        );
        return;
    }
    let Some(map) = body.as_object() else {
        return;
    };
    for (key, value) in map {
        match key.as_str() {
            "path" if to_text(value) == "/vault/data" => {}
            // vaultkeeper renders one retry_join per possible pod.
            "retry_join" | "node_id" => {}
            _ => r.left(
                format!("{at}.{key}"),
                Why::NoField,
                "VaultCluster renders the raft stanza (path /vault/data, a retry_join per \
                 pod) and has no field for this setting",
            ),
        }
    }
}

fn tls(r: &mut Reader, spec: &mut VaultClusterSpec, enabled: bool, config: &ConfigFacts) {
    let volumes = match r.take("server.extraVolumes") {
        Some(Value::Array(volumes)) => volumes,
        _ => Vec::new(),
    };
    if config.listener_tls_disabled == Some(enabled) {
        r.left(
            "global.tlsDisable",
            Why::NeedsAction,
            "it disagrees with the listener's tls_disable in the server configuration; the \
             import follows global.tlsDisable",
        );
    }
    let mut tls_volume = None;
    if !enabled {
        spec.tls.mode = TlsMode::Disabled;
        r.notes.push(
            "spec.tls.mode is Disabled because global.tlsDisable is true (the chart's \
             default): tokens and unseal keys then cross the network in clear text; remove \
             spec.tls to have vaultkeeper run its own CA"
                .to_owned(),
        );
    } else {
        match tls_secret(config, &volumes) {
            Some((index, secret, files)) => {
                spec.tls.mode = TlsMode::Secret;
                spec.tls.secret_name = Some(secret.clone());
                tls_volume = Some(index);
                if files != ["tls.crt", "tls.key", "ca.crt"] {
                    r.left(
                        format!("server.extraVolumes[{index}]"),
                        Why::NeedsAction,
                        format!(
                            "the listener reads {} from the Secret {secret}; VaultCluster \
                             reads tls.crt, tls.key and ca.crt: add those keys to the Secret",
                            files.join(", ")
                        ),
                    );
                }
            }
            None => {
                spec.tls.mode = TlsMode::SelfSigned;
                r.notes.push(
                    "TLS is on but the listener's files are not in a Secret mounted through \
                     server.extraVolumes: vaultkeeper issues the certificate from its own CA \
                     (spec.tls.mode SelfSigned); set mode Secret or CertManager to use yours"
                        .to_owned(),
                );
            }
        }
    }
    for (index, volume) in volumes.iter().enumerate() {
        if Some(index) == tls_volume {
            continue;
        }
        let name = volume.get("name").map(to_text).unwrap_or_default();
        r.left(
            format!("server.extraVolumes[{index}]"),
            Why::NoField,
            format!("the {name:?} volume: VaultCluster mounts only the TLS and seal Secrets"),
        );
    }
}

/// The `server.extraVolumes` entry holding the listener's certificate files: its index,
/// the Secret's name and the file names (certificate, key, CA).
fn tls_secret(config: &ConfigFacts, volumes: &[Value]) -> Option<(usize, String, Vec<String>)> {
    let cert = config.cert_file.as_deref()?;
    let key = config.key_file.as_deref()?;
    let (dir, cert_name) = cert.rsplit_once('/')?;
    let (key_dir, key_name) = key.rsplit_once('/')?;
    let ca_name = match config.client_ca_file.as_deref() {
        Some(ca) => {
            let (ca_dir, ca_name) = ca.rsplit_once('/')?;
            (ca_dir == dir).then_some(ca_name)?
        }
        None => "ca.crt",
    };
    if key_dir != dir {
        return None;
    }
    volumes.iter().enumerate().find_map(|(index, volume)| {
        let kind = volume.get("type").map(to_text).unwrap_or_default();
        let name = volume.get("name").map(to_text).unwrap_or_default();
        let base = volume
            .get("path")
            .map(to_text)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| USERCONFIG_DIR.to_owned());
        // VaultCluster mounts the Secret where the chart's default path puts it.
        (kind == "secret" && base == USERCONFIG_DIR && dir == format!("{base}/{name}")).then(|| {
            (
                index,
                name,
                vec![
                    cert_name.to_owned(),
                    key_name.to_owned(),
                    ca_name.to_owned(),
                ],
            )
        })
    })
}

fn ui_and_config(r: &mut Reader, spec: &mut VaultClusterSpec, config: ConfigFacts) {
    spec.ui.enabled = is_true(r.take("ui.enabled").as_ref());
    let mut extra = config.extra;
    // VaultCluster's ui.enabled also writes `ui` into the configuration; the chart keeps the
    // Service and the setting apart.
    let config_ui = config
        .ui
        .map(|v| matches!(v, Value::Bool(true)) || matches!(&v, Value::String(s) if s == "true"));
    if let Some(ui) = config_ui
        && ui != spec.ui.enabled
    {
        extra.insert("ui".to_owned(), Value::Bool(ui));
    }
    if !extra.is_empty() {
        spec.config = Some(extra);
    }
    if !spec.ui.enabled {
        r.consume("ui");
        return;
    }
    spec.ui.service_type = match service_type(r, "ui.serviceType") {
        Some(t) => t,
        None => ServiceType::ClusterIP,
    };
    if let Some(annotations) = string_map(r, "ui.annotations") {
        spec.ui.annotations = annotations;
    }
    for (path, detail) in [
        (
            "ui.activeVaultPodOnly",
            "the <name>-ui Service selects every server pod",
        ),
        (
            "ui.serviceNodePort",
            "the node port is assigned by Kubernetes",
        ),
        ("ui.externalPort", "the <name>-ui Service listens on 8200"),
        ("ui.targetPort", "the <name>-ui Service targets 8200"),
        (
            "ui.publishNotReadyAddresses",
            "the <name>-ui Service publishes not-ready addresses",
        ),
        ("ui.serviceIPFamilyPolicy", "no IP family settings"),
        ("ui.serviceIPFamilies", "no IP family settings"),
        ("ui.loadBalancerIP", "no load balancer settings"),
        ("ui.loadBalancerSourceRanges", "no load balancer settings"),
    ] {
        r.left_if_changed(path, Why::NoField, detail);
    }
    if r.changed("ui.externalTrafficPolicy") && spec.ui.service_type != ServiceType::ClusterIP {
        r.left(
            "ui.externalTrafficPolicy",
            Why::NoField,
            "no externalTrafficPolicy setting",
        );
    }
    r.consume("ui.externalTrafficPolicy");
}

fn service_type(r: &mut Reader, path: &str) -> Option<ServiceType> {
    match r.take_str(path).as_str() {
        "" | "ClusterIP" => Some(ServiceType::ClusterIP),
        "NodePort" => Some(ServiceType::NodePort),
        "LoadBalancer" => Some(ServiceType::LoadBalancer),
        other => {
            r.left(
                path,
                Why::NoField,
                format!(
                    "VaultCluster Services are ClusterIP, NodePort or LoadBalancer, not {other:?}"
                ),
            );
            None
        }
    }
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

/// A Kubernetes type from a value that may be a template string.
fn typed<T: serde::de::DeserializeOwned>(
    r: &mut Reader,
    path: &str,
    names: &ChartNames,
) -> Option<T> {
    let value = r.take(path)?;
    let parsed = match templated(&value, names) {
        Ok(v) => v,
        Err(why) => {
            r.left(path, Why::NeedsAction, format!("it holds {why}"));
            return None;
        }
    };
    if !truthy(Some(&parsed)) {
        return None;
    }
    match serde_json::from_value(parsed) {
        Ok(v) => Some(v),
        Err(e) => {
            r.left(
                path,
                Why::NeedsAction,
                format!("it is not what Kubernetes expects here: {e}"),
            );
            None
        }
    }
}

fn placement(r: &mut Reader, spec: &mut VaultClusterSpec, names: &ChartNames) {
    spec.pod.resources = typed::<ResourceRequirements>(r, "server.resources", names);
    let affinity = typed::<Affinity>(r, "server.affinity", names);
    // The chart's default (one pod per node) is VaultCluster's default too.
    let default_affinity = templated(&chart_defaults()["server"]["affinity"], names)
        .ok()
        .and_then(|v| serde_json::from_value::<Affinity>(v).ok());
    if affinity != default_affinity {
        spec.pod.affinity = affinity.or_else(|| Some(Affinity::default()));
    }
    if let Some(tolerations) = typed::<Vec<Toleration>>(r, "server.tolerations", names) {
        spec.pod.tolerations = tolerations;
    }
    if let Some(selector) = typed::<BTreeMap<String, String>>(r, "server.nodeSelector", names) {
        spec.pod.node_selector = selector;
    }
    if let Some(spread) =
        typed::<Vec<TopologySpreadConstraint>>(r, "server.topologySpreadConstraints", names)
    {
        spec.pod.topology_spread_constraints = spread;
    }
    let priority = r.take_str("server.priorityClassName");
    spec.pod.priority_class_name = (!priority.is_empty()).then_some(priority);
    if let Some(annotations) = string_map(r, "server.annotations") {
        spec.pod.annotations = annotations;
    }
    if let Some(labels) = string_map(r, "server.extraLabels") {
        spec.pod.labels = labels;
    }
    if let Some(annotations) = string_map(r, "server.serviceAccount.annotations") {
        spec.pod.service_account_annotations = annotations;
    }
    let openshift = is_true(r.take("global.openshift").as_ref());
    let pod_context =
        typed::<PodSecurityContext>(r, "server.statefulSet.securityContext.pod", names);
    let container_context =
        typed::<SecurityContext>(r, "server.statefulSet.securityContext.container", names);
    let uid = r.take("server.uid");
    let gid = r.take("server.gid");
    spec.pod.security_context = match pod_context {
        Some(context) => Some(context),
        // On OpenShift the chart sets none, so the restricted SCC assigns the user.
        None if openshift => Some(PodSecurityContext::default()),
        None if uid.is_some() || gid.is_some() => {
            let number = |v: &Option<Value>, default: i64| {
                v.as_ref().and_then(Value::as_i64).unwrap_or(default)
            };
            Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(number(&uid, 100)),
                run_as_group: Some(number(&gid, 1000)),
                fs_group: Some(number(&gid, 1000)),
                ..PodSecurityContext::default()
            })
        }
        None => None,
    };
    spec.pod.container_security_context = match container_context {
        Some(context) => Some(context),
        None if openshift => Some(SecurityContext::default()),
        None => None,
    };
    if openshift {
        r.notes.push(
            "global.openshift: the pod and container security contexts are left empty, as \
             the chart leaves them, so the restricted SCC assigns the user"
                .to_owned(),
        );
    }
}

/// The seal stanza as `spec.unseal`. Attributes holding credentials are never copied: the
/// leftover names the attribute and where the credential goes instead. Returns the index
/// of the `server.extraSecretEnvironmentVars` entry that became the transit token.
fn unseal(r: &mut Reader, spec: &mut VaultClusterSpec, config: &ConfigFacts) -> Option<usize> {
    let (at, kind, body) = config.seal.as_ref()?;
    let empty = Map::new();
    let map = body.as_object().unwrap_or(&empty);
    let text = |key: &str| map.get(key).map(to_text).filter(|s| !s.is_empty());
    let unknown = |known: &[&str]| -> Vec<String> {
        map.keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    let credential = |r: &mut Reader, key: &str, instead: &str| {
        r.left(
            format!("{at}.{key}"),
            Why::NeedsAction,
            format!("a credential in the configuration: {instead}"),
        );
    };
    let mut token_env = None;
    let extra: Vec<String> = match kind.as_str() {
        "awskms" => {
            let (Some(region), Some(kms_key_id)) = (text("region"), text("kms_key_id")) else {
                r.left(
                    at.clone(),
                    Why::NeedsAction,
                    "it needs region and kms_key_id (they may come \
                    from the environment in the chart): write spec.unseal.awsKms",
                );
                return None;
            };
            for key in ["access_key", "secret_key", "session_token"] {
                if map.contains_key(key) {
                    credential(
                        r,
                        key,
                        "put AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in a \
                        Secret and name it in spec.unseal.awsKms.credentialsSecret, or use IRSA",
                    );
                }
            }
            spec.unseal.kind = UnsealType::AwsKms;
            spec.unseal.aws_kms = Some(AwsKmsSeal {
                region,
                kms_key_id,
                endpoint: text("endpoint"),
                credentials_secret: None,
            });
            unknown(&[
                "region",
                "kms_key_id",
                "endpoint",
                "access_key",
                "secret_key",
                "session_token",
            ])
        }
        "gcpckms" => {
            let (Some(project), Some(region), Some(key_ring), Some(crypto_key)) = (
                text("project"),
                text("region"),
                text("key_ring"),
                text("crypto_key"),
            ) else {
                r.left(
                    at.clone(),
                    Why::NeedsAction,
                    "it needs project, region, key_ring and \
                    crypto_key: write spec.unseal.gcpCkms",
                );
                return None;
            };
            if map.contains_key("credentials") {
                credential(
                    r,
                    "credentials",
                    "name a Secret with the key file in \
                    spec.unseal.gcpCkms.credentialsSecret, or use workload identity",
                );
            }
            spec.unseal.kind = UnsealType::GcpCkms;
            spec.unseal.gcp_ckms = Some(GcpCkmsSeal {
                project,
                region,
                key_ring,
                crypto_key,
                credentials_secret: None,
            });
            unknown(&["project", "region", "key_ring", "crypto_key", "credentials"])
        }
        "azurekeyvault" => {
            let (Some(tenant_id), Some(vault_name), Some(key_name)) =
                (text("tenant_id"), text("vault_name"), text("key_name"))
            else {
                r.left(
                    at.clone(),
                    Why::NeedsAction,
                    "it needs tenant_id, vault_name and \
                    key_name: write spec.unseal.azureKeyVault",
                );
                return None;
            };
            for key in ["client_id", "client_secret"] {
                if map.contains_key(key) {
                    credential(
                        r,
                        key,
                        "put AZURE_CLIENT_ID and AZURE_CLIENT_SECRET in a \
                        Secret and name it in spec.unseal.azureKeyVault.credentialsSecret",
                    );
                }
            }
            spec.unseal.kind = UnsealType::AzureKeyVault;
            spec.unseal.azure_key_vault = Some(AzureKeyVaultSeal {
                tenant_id,
                vault_name,
                key_name,
                environment: text("environment"),
                credentials_secret: None,
            });
            unknown(&[
                "tenant_id",
                "vault_name",
                "key_name",
                "environment",
                "client_id",
                "client_secret",
            ])
        }
        "transit" => {
            let (Some(address), Some(key_name)) = (text("address"), text("key_name")) else {
                r.left(
                    at.clone(),
                    Why::NeedsAction,
                    "it needs address and key_name: write \
                    spec.unseal.transit",
                );
                return None;
            };
            if map.contains_key("token") {
                credential(
                    r,
                    "token",
                    "put the token in a Secret and name it in \
                    spec.unseal.transit.tokenSecret",
                );
            }
            // The chart's way to give the token: VAULT_TOKEN from a Secret.
            let token = match r.peek("server.extraSecretEnvironmentVars") {
                Some(Value::Array(vars)) => vars.iter().enumerate().find_map(|(i, v)| {
                    let field = |k: &str| v.get(k).map(to_text).filter(|s| !s.is_empty());
                    (field("envName").as_deref() == Some("VAULT_TOKEN"))
                        .then(|| Some((i, field("secretName")?, field("secretKey")?)))
                        .flatten()
                }),
                _ => None,
            };
            let Some((index, name, key)) = token else {
                r.left(
                    at.clone(),
                    Why::NeedsAction,
                    "the transit token's Secret is not given \
                    as VAULT_TOKEN in server.extraSecretEnvironmentVars: write \
                    spec.unseal.transit with tokenSecret",
                );
                return None;
            };
            token_env = Some(index);
            spec.unseal.kind = UnsealType::Transit;
            spec.unseal.transit = Some(TransitSeal {
                address,
                key_name,
                mount_path: text("mount_path").unwrap_or_else(|| "transit/".to_owned()),
                namespace: text("namespace"),
                token_secret: TokenSecretRef { name, key },
                ca_secret: None,
                tls_server_name: text("tls_server_name"),
            });
            unknown(&[
                "address",
                "key_name",
                "mount_path",
                "namespace",
                "token",
                "tls_server_name",
            ])
        }
        other => {
            r.left(
                at.clone(),
                Why::NoField,
                format!("VaultCluster has no {other:?} seal: write spec.unseal by hand"),
            );
            return None;
        }
    };
    for key in extra {
        r.left(
            format!("{at}.{key}"),
            Why::NoField,
            "spec.unseal has no field for this seal setting",
        );
    }
    r.notes.push(
        "the seal became spec.unseal: init hands out recovery shares, which vaultkeeper keeps"
            .to_owned(),
    );
    token_env
}

fn environment(r: &mut Reader, spec: &mut VaultClusterSpec, token_env: Option<usize>) {
    let mut env = Vec::new();
    for (path, name) in [
        ("server.logLevel", "VAULT_LOG_LEVEL"),
        ("server.logFormat", "VAULT_LOG_FORMAT"),
    ] {
        let value = r.take_str(path);
        if !value.is_empty() {
            env.push(EnvVar {
                name: name.to_owned(),
                value: Some(value),
                value_from: None,
            });
        }
    }
    if let Some(Value::Object(vars)) = r.take("server.extraEnvironmentVars") {
        for (key, value) in vars {
            // The chart's name mangling: dots to underscores, upper case.
            let name = key.replace('.', "_").to_uppercase();
            let var = EnvVar {
                name: name.clone(),
                value: Some(to_text(&value)),
                value_from: None,
            };
            push_env(
                r,
                &mut env,
                var,
                &format!("server.extraEnvironmentVars.{key}"),
            );
        }
    }
    if let Some(Value::Array(vars)) = r.take("server.extraSecretEnvironmentVars") {
        for (index, var) in vars.iter().enumerate() {
            if Some(index) == token_env {
                continue;
            }
            let field = |k: &str| var.get(k).map(to_text).unwrap_or_default();
            let (name, secret, key) = (field("envName"), field("secretName"), field("secretKey"));
            let path = format!("server.extraSecretEnvironmentVars[{index}]");
            if name.is_empty() || secret.is_empty() || key.is_empty() {
                r.left(
                    path,
                    Why::NeedsAction,
                    "it needs envName, secretName and secretKey",
                );
                continue;
            }
            let var = EnvVar {
                name,
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret,
                        key,
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
            };
            push_env(r, &mut env, var, &path);
        }
    }
    spec.pod.env = env;
}

fn push_env(r: &mut Reader, env: &mut Vec<EnvVar>, var: EnvVar, path: &str) {
    if !rules::env_name_allowed(&var.name) {
        r.left(
            path,
            Why::NotUnderOperator,
            format!(
                "{} steers the CLI vaultkeeper runs in the pod with unseal keys and tokens, \
                 so VaultCluster refuses it; vaultkeeper sets the address and CA itself",
                var.name
            ),
        );
    } else if is_rendered_env(&var.name) {
        r.left(
            path,
            Why::NotUnderOperator,
            format!("vaultkeeper sets {} itself", var.name),
        );
    } else {
        env.push(var);
    }
}

fn is_rendered_env(name: &str) -> bool {
    matches!(
        name,
        "HOST_IP" | "POD_IP" | "HOSTNAME" | "HOME" | "SKIP_CHOWN" | "SKIP_SETCAP"
    )
}

fn storage(r: &mut Reader, spec: &mut VaultClusterSpec, mode: Mode) {
    let raft_data = matches!(mode, Mode::Standalone | Mode::Ha { raft: true });
    if raft_data {
        if !is_true(r.take("server.dataStorage.enabled").as_ref()) {
            r.left(
                "server.dataStorage.enabled",
                Why::NotUnderOperator,
                "raft data always lives on a persistent volume under vaultkeeper",
            );
        }
        spec.storage.size = r.take_str("server.dataStorage.size");
        if spec.storage.size.is_empty() {
            spec.storage.size = "10Gi".to_owned();
        }
        let class = r.take_str("server.dataStorage.storageClass");
        spec.storage.storage_class_name = (!class.is_empty()).then_some(class);
        volume_extras(r, "server.dataStorage", "/vault/data");
    } else {
        r.consume("server.dataStorage");
    }
    if is_true(r.take("server.auditStorage.enabled").as_ref()) {
        let size = r.take_str("server.auditStorage.size");
        let class = r.take_str("server.auditStorage.storageClass");
        spec.storage.audit = Some(AuditStorageSpec {
            size: if size.is_empty() {
                "10Gi".to_owned()
            } else {
                size
            },
            storage_class_name: (!class.is_empty()).then_some(class),
        });
        volume_extras(r, "server.auditStorage", "/vault/audit");
    } else {
        r.consume("server.auditStorage");
    }
}

fn volume_extras(r: &mut Reader, base: &str, mount: &str) {
    r.left_if_changed(
        &format!("{base}.mountPath"),
        Why::NoField,
        &format!("VaultCluster mounts the volume at {mount}"),
    );
    for key in ["accessMode", "annotations", "labels"] {
        r.left_if_changed(
            &format!("{base}.{key}"),
            Why::NoField,
            "VaultCluster's claim templates are ReadWriteOnce, without extra labels or \
             annotations",
        );
    }
}

fn services(r: &mut Reader, spec: &mut VaultClusterSpec, mode: Mode) {
    if !is_true(r.take("server.service.enabled").as_ref()) {
        r.left(
            "server.service.enabled",
            Why::NoField,
            "VaultCluster always renders the <name>, <name>-active, <name>-standby and \
             <name>-internal Services",
        );
    }
    if let Some(t) = service_type(r, "server.service.type") {
        spec.service.service_type = t;
    }
    if let Some(annotations) = string_map(r, "server.service.annotations") {
        spec.service.annotations = annotations;
    }
    let ha = matches!(mode, Mode::Ha { .. });
    for (path, detail) in [
        (
            "server.service.active.enabled",
            "the <name>-active Service is always rendered",
        ),
        (
            "server.service.standby.enabled",
            "the <name>-standby Service is always rendered",
        ),
        (
            "server.service.active.annotations",
            "no per-Service annotations",
        ),
        (
            "server.service.standby.annotations",
            "no per-Service annotations",
        ),
    ] {
        if ha {
            r.left_if_changed(path, Why::NoField, detail);
        } else {
            r.consume(path);
        }
    }
    for (path, detail) in [
        (
            "server.service.instanceSelector.enabled",
            "the Services always select the instance label",
        ),
        ("server.service.ipFamilyPolicy", "no IP family settings"),
        ("server.service.ipFamilies", "no IP family settings"),
        (
            "server.service.publishNotReadyAddresses",
            "the Services publish not-ready addresses, as raft joins need",
        ),
        ("server.service.port", "the Services listen on 8200"),
        ("server.service.targetPort", "the Services target 8200"),
        (
            "server.service.clusterIP",
            "the cluster IP is assigned by Kubernetes",
        ),
        (
            "server.service.nodePort",
            "node ports are assigned by Kubernetes",
        ),
        (
            "server.service.activeNodePort",
            "node ports are assigned by Kubernetes",
        ),
        (
            "server.service.standbyNodePort",
            "node ports are assigned by Kubernetes",
        ),
    ] {
        r.left_if_changed(path, Why::NoField, detail);
    }
    if r.changed("server.service.externalTrafficPolicy")
        && spec.service.service_type != ServiceType::ClusterIP
    {
        r.left(
            "server.service.externalTrafficPolicy",
            Why::NoField,
            "no externalTrafficPolicy setting",
        );
    }
    r.consume("server.service.externalTrafficPolicy");
    if is_true(r.take("server.networkPolicy.enabled").as_ref()) {
        spec.network_policy.enabled = true;
        r.left_if_changed(
            "server.networkPolicy.ingress",
            Why::NoField,
            "VaultCluster's NetworkPolicy admits raft (8201) from the cluster's own pods and \
             the API (8200) from spec.networkPolicy.apiFrom: write the chart's peers there",
        );
        r.left_if_changed(
            "server.networkPolicy.egress",
            Why::NoField,
            "VaultCluster's NetworkPolicy does not restrict egress",
        );
    } else {
        r.consume("server.networkPolicy");
    }
}

fn ingress(r: &mut Reader, spec: &mut VaultClusterSpec, mode: Mode) {
    if !is_true(r.take("server.ingress.enabled").as_ref()) {
        r.consume("server.ingress");
        return;
    }
    spec.ingress.enabled = true;
    let class = r.take_str("server.ingress.ingressClassName");
    spec.ingress.class_name = (!class.is_empty()).then_some(class);
    spec.ingress.active_only =
        matches!(mode, Mode::Ha { .. }) && is_true(r.take("server.ingress.activeService").as_ref());
    if let Some(annotations) = string_map(r, "server.ingress.annotations") {
        spec.ingress.annotations = annotations;
    }
    let mut paths = BTreeSet::new();
    if let Some(Value::Array(hosts)) = r.take("server.ingress.hosts") {
        for host in &hosts {
            let name = host.get("host").map(to_text).unwrap_or_default();
            if !name.is_empty() {
                spec.ingress.hosts.push(name);
            }
            match host.get("paths") {
                Some(Value::Array(list)) if !list.is_empty() => {
                    paths.extend(list.iter().map(to_text));
                }
                _ => {
                    paths.insert("/".to_owned());
                }
            }
        }
    }
    if spec.ingress.hosts.is_empty() {
        spec.ingress.enabled = false;
        r.left(
            "server.ingress.hosts",
            Why::NeedsAction,
            "the Ingress names no host; VaultCluster's needs at least one (spec.ingress.hosts)",
        );
    }
    let mut paths = paths.into_iter();
    if let Some(first) = paths.next() {
        spec.ingress.path = first;
    }
    if paths.next().is_some() {
        r.left(
            "server.ingress.hosts[].paths",
            Why::NoField,
            "VaultCluster's Ingress routes one path for every host",
        );
    }
    if let Some(Value::Array(tls)) = r.take("server.ingress.tls") {
        let secrets: BTreeSet<String> = tls
            .iter()
            .filter_map(|t| t.get("secretName").map(to_text))
            .collect();
        if secrets.len() > 1 {
            r.left(
                "server.ingress.tls",
                Why::NoField,
                "VaultCluster's Ingress uses one TLS Secret for every host",
            );
        }
        spec.ingress.tls.secret_name = secrets.into_iter().next();
    }
    for path in [
        "server.ingress.labels",
        "server.ingress.pathType",
        "server.ingress.extraPaths",
    ] {
        r.left_if_changed(
            path,
            Why::NoField,
            "VaultCluster's Ingress has no such setting",
        );
    }
}

fn monitoring(r: &mut Reader, spec: &mut VaultClusterSpec) {
    let monitor = is_true(r.take("serverTelemetry.serviceMonitor.enabled").as_ref());
    spec.monitoring.service_monitor.enabled = monitor;
    if monitor {
        let interval = r.take_str("serverTelemetry.serviceMonitor.interval");
        if !interval.is_empty() {
            spec.monitoring.service_monitor.interval = interval;
        }
        if let Some(labels) = string_map(r, "serverTelemetry.serviceMonitor.selectors") {
            spec.monitoring.service_monitor.labels = labels;
        }
    } else {
        r.consume("serverTelemetry.serviceMonitor");
    }
    let rules = is_true(r.take("serverTelemetry.prometheusRules.enabled").as_ref());
    spec.monitoring.prometheus_rule.enabled = rules;
    if rules {
        if let Some(labels) = string_map(r, "serverTelemetry.prometheusRules.selectors") {
            spec.monitoring.prometheus_rule.labels = labels;
        }
        r.left_if_changed(
            "serverTelemetry.prometheusRules.rules",
            Why::NoField,
            "vaultkeeper's PrometheusRule carries its own alerts (docs/monitoring.md)",
        );
    } else {
        r.consume("serverTelemetry.prometheusRules");
    }
}

/// Settings with a known reason that are not dealt with elsewhere.
fn not_carried(r: &mut Reader, mode: Mode) {
    let ha = matches!(mode, Mode::Ha { .. });
    let gated: &[(&str, bool, Why, &str)] = &[
        (
            "server.ha.apiAddr",
            ha,
            Why::NotUnderOperator,
            "vaultkeeper sets each pod's API address (a name its certificate carries)",
        ),
        (
            "server.ha.clusterAddr",
            ha,
            Why::NotUnderOperator,
            "vaultkeeper sets each pod's cluster address",
        ),
        (
            "server.ha.disruptionBudget.enabled",
            ha,
            Why::NoField,
            "VaultCluster always renders the PodDisruptionBudget",
        ),
        (
            "server.ha.disruptionBudget.maxUnavailable",
            ha,
            Why::NoField,
            "VaultCluster's budget is ⌊(replicas-1)/2⌋, the chart's default",
        ),
        (
            "server.ha.raft.redundancyZones.enabled",
            ha,
            Why::NoField,
            "no redundancy zone setting",
        ),
    ];
    for (path, applies, why, detail) in gated {
        if *applies {
            r.left_if_changed(path, *why, detail);
        } else {
            r.consume(path);
        }
    }
    if r.changed("server.readinessProbe.path") {
        r.left(
            "server.readinessProbe.path",
            Why::NotUnderOperator,
            "vaultkeeper's readiness probe is sys/health with the standby, sealed and \
             uninitialized codes mapped: ready means unsealed and serving",
        );
    }
    r.consume("server.readinessProbe.path");
    if truthy(r.peek("server.enterpriseLicense.secretName"))
        && truthy(r.peek("server.enterpriseLicense.secretKey"))
    {
        r.left(
            "server.enterpriseLicense.secretName",
            Why::NoField,
            "no license Secret mount; VAULT_LICENSE may be given in spec.pod.env from a Secret",
        );
    }
    r.consume("server.enterpriseLicense");
}

/// The setting a value no conversion step claimed belongs to, and why it is not carried.
fn generic_reason(path: &str, known: bool) -> (String, Why, &'static str) {
    const TABLE: &[(&str, Why, &str)] = &[
        (
            "global.openshift",
            Why::NoField,
            "OpenShift Routes and service CA are not rendered yet",
        ),
        (
            "server.route",
            Why::NoField,
            "OpenShift Routes are not rendered yet",
        ),
        (
            "server.serviceCA",
            Why::NoField,
            "OpenShift service-CA certificates are not supported yet",
        ),
        (
            "server.httproute",
            Why::NoField,
            "Gateway API routes are not rendered yet",
        ),
        (
            "server.updateStrategyType",
            Why::NotUnderOperator,
            "vaultkeeper rolls the pods itself (OnDelete), standbys first, the active node last",
        ),
        (
            "server.includeConfigAnnotation",
            Why::NotUnderOperator,
            "vaultkeeper always annotates the pods with the configuration's hash",
        ),
        (
            "server.authDelegator",
            Why::NotUnderOperator,
            "the auth-delegator binding is always rendered: Kubernetes auth needs it",
        ),
        (
            "server.serviceAccount.serviceDiscovery",
            Why::NotUnderOperator,
            "service registration is always on: the active/standby Services select by its labels",
        ),
        (
            "server.serviceAccount.create",
            Why::NoField,
            "VaultCluster always creates the <name> ServiceAccount",
        ),
        (
            "server.serviceAccount.name",
            Why::NoField,
            "VaultCluster always creates the <name> ServiceAccount",
        ),
        (
            "server.serviceAccount.createSecret",
            Why::NoField,
            "no long-lived ServiceAccount token Secret",
        ),
        (
            "server.serviceAccount.extraLabels",
            Why::NoField,
            "no ServiceAccount labels",
        ),
        (
            "server.readinessProbe",
            Why::NoField,
            "no readiness probe tuning",
        ),
        ("server.livenessProbe", Why::NoField, "no liveness probe"),
        (
            "server.extraInitContainers",
            Why::NoField,
            "no extra init containers",
        ),
        (
            "server.extraContainers",
            Why::NoField,
            "no extra containers",
        ),
        (
            "server.shareProcessNamespace",
            Why::NoField,
            "no shareProcessNamespace",
        ),
        ("server.hostAliases", Why::NoField, "no host aliases"),
        ("server.hostNetwork", Why::NoField, "no host network"),
        (
            "server.extraArgs",
            Why::NoField,
            "no extra server arguments",
        ),
        (
            "server.extraPorts",
            Why::NoField,
            "no extra container ports",
        ),
        (
            "server.terminationGracePeriodSeconds",
            Why::NoField,
            "the grace period is 10 seconds",
        ),
        (
            "server.preStopSleepSeconds",
            Why::NoField,
            "the preStop sleep is 5 seconds",
        ),
        ("server.preStop", Why::NoField, "no preStop command"),
        ("server.postStart", Why::NoField, "no postStart command"),
        ("server.volumes", Why::NoField, "no extra volumes"),
        (
            "server.volumeMounts",
            Why::NoField,
            "no extra volume mounts",
        ),
        (
            "server.statefulSet.annotations",
            Why::NoField,
            "no StatefulSet annotations",
        ),
        (
            "server.persistentVolumeClaimRetentionPolicy",
            Why::NotUnderOperator,
            "set by vaultkeeper: volumes of scaled-away pods are deleted (they left raft), \
          spec.deletionPolicy decides on deletion",
        ),
    ];
    TABLE
        .iter()
        .find(|(prefix, _, _)| path == *prefix || path.starts_with(&format!("{prefix}.")))
        .map(|(prefix, why, detail)| ((*prefix).to_owned(), *why, *detail))
        .unwrap_or_else(|| {
            let detail = if known {
                "VaultCluster has no field for this chart setting"
            } else {
                "not a setting of the Vault chart (a misspelling?): the chart ignores it too"
            };
            (path.to_owned(), Why::NoField, detail)
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str) -> Imported {
        let values = parse_values(yaml).expect("values");
        import(
            &values,
            &ImportOptions {
                release: "vault".to_owned(),
                namespace: None,
            },
        )
        .expect("imports")
    }

    fn paths(imported: &Imported) -> Vec<&str> {
        imported.leftovers.iter().map(|l| l.path.as_str()).collect()
    }

    #[test]
    fn the_chart_defaults_parse() {
        let defaults: Value = serde_saphyr::from_str(CHART_DEFAULTS).expect("defaults parse");
        assert_eq!(defaults["server"]["ha"]["replicas"], json!(3));
    }

    #[test]
    fn chart_defaults_import_as_a_standalone_cluster_without_tls() {
        let imported = run("");
        assert_eq!(imported.cluster.spec.replicas, 1);
        assert_eq!(imported.cluster.spec.tls.mode, TlsMode::Disabled);
        assert_eq!(
            paths(&imported),
            [
                "injector.enabled",
                "server.standalone.config storage \"file\""
            ]
        );
        assert!(imported.cluster.spec.pod.affinity.is_none());
        assert!(vaultkeeper_api::validate(&imported.cluster).is_ok());
    }

    #[test]
    fn ha_raft_carries_replicas_and_names_odd_counts() {
        let imported = run(
            "server:\n  ha:\n    enabled: true\n    replicas: 4\n    raft:\n      enabled: true\n",
        );
        assert_eq!(imported.cluster.spec.replicas, 5);
        assert!(paths(&imported).contains(&"server.ha.replicas"));
    }

    #[test]
    fn release_names_follow_the_chart_fullname() {
        let values = parse_values("").expect("values");
        let options = |release: &str| ImportOptions {
            release: release.to_owned(),
            namespace: Some("ns".to_owned()),
        };
        let name = |release: &str| {
            import(&values, &options(release))
                .expect("imports")
                .cluster
                .metadata
                .name
        };
        assert_eq!(name("vault").as_deref(), Some("vault"));
        assert_eq!(name("prod").as_deref(), Some("prod-vault"));
        assert_eq!(name("my-vault").as_deref(), Some("my-vault"));
        assert!(matches!(
            import(&values, &options("Bad_Name")),
            Err(NotVaultValues::BadValue { .. })
        ));
    }

    #[test]
    fn files_that_are_not_vault_values_are_refused() {
        assert!(matches!(
            parse_values("a: [\n"),
            Err(NotVaultValues::NotYaml(_))
        ));
        assert!(matches!(
            parse_values("- 1\n"),
            Err(NotVaultValues::NotMapping(_))
        ));
        assert!(matches!(
            parse_values("42"),
            Err(NotVaultValues::NotMapping(_))
        ));
        let err = parse_values("replicaCount: 2\nimage: {}\n").expect_err("foreign");
        assert!(err.to_string().contains("\"replicaCount\""), "{err}");
    }

    #[test]
    fn reserved_environment_is_named_not_carried() {
        let imported =
            run("server:\n  extraEnvironmentVars:\n    VAULT_CACERT: /x\n    http.proxy: p\n");
        assert_eq!(imported.cluster.spec.pod.env.len(), 1);
        assert_eq!(imported.cluster.spec.pod.env[0].name, "HTTP_PROXY");
        assert!(paths(&imported).contains(&"server.extraEnvironmentVars.VAULT_CACERT"));
    }

    fn raft_with(config_lines: &str, extra: &str) -> Imported {
        let config: String = config_lines
            .lines()
            .map(|l| format!("        {l}\n"))
            .collect();
        run(&format!(
            "server:\n  ha:\n    enabled: true\n    raft:\n      enabled: true\n      \
             config: |\n        storage \"raft\" {{}}\n{config}{extra}"
        ))
    }

    #[test]
    fn seals_become_spec_unseal_without_their_credentials() {
        let imported = raft_with(
            "seal \"awskms\" {\n  region = \"eu-west-1\"\n  kms_key_id = \"alias/v\"\n  \
             secret_key = \"hunter2\"\n}",
            "",
        );
        let spec = &imported.cluster.spec;
        assert_eq!(spec.unseal.kind, UnsealType::AwsKms);
        assert_eq!(
            spec.unseal.aws_kms.as_ref().map(|k| k.kms_key_id.as_str()),
            Some("alias/v")
        );
        assert!(paths(&imported).contains(&"server.ha.raft.config seal \"awskms\".secret_key"));
        assert!(!format!("{imported:?}").contains("hunter2"));
        assert!(vaultkeeper_api::validate(&imported.cluster).is_ok());
    }

    #[test]
    fn a_transit_seal_takes_its_token_from_the_charts_secret_environment() {
        let imported = raft_with(
            "seal \"transit\" {\n  address = \"https://transit:8200\"\n  key_name = \"unseal\"\n}",
            "  extraSecretEnvironmentVars:\n    - envName: VAULT_TOKEN\n      secretName: transit\n      \
             secretKey: token\n",
        );
        let transit = imported
            .cluster
            .spec
            .unseal
            .transit
            .as_ref()
            .expect("transit");
        assert_eq!(transit.token_secret.name, "transit");
        assert!(imported.cluster.spec.pod.env.is_empty());
        assert_eq!(paths(&imported), ["injector.enabled"]);
        assert!(vaultkeeper_api::validate(&imported.cluster).is_ok());
        // Without the Secret the seal is named, not half carried.
        let alone = raft_with(
            "seal \"transit\" {\n  address = \"https://transit:8200\"\n  key_name = \"unseal\"\n}",
            "",
        );
        assert_eq!(alone.cluster.spec.unseal.kind, UnsealType::Shamir);
        assert!(paths(&alone).contains(&"server.ha.raft.config seal \"transit\""));
    }

    #[test]
    fn misspelled_settings_are_named_as_such() {
        let imported = run("server:\n  logLevl: debug\n");
        let typo = imported
            .leftovers
            .iter()
            .find(|l| l.path == "server.logLevl")
            .expect("named");
        assert!(typo.detail.contains("misspelling"), "{typo}");
    }

    #[test]
    fn parse_errors_never_quote_the_configuration() {
        let imported = run(
            "server:\n  standalone:\n    config: |\n      seal \"awskms\" { secret_key = \"hunter2\" \n",
        );
        let config = imported
            .leftovers
            .iter()
            .find(|l| l.path == "server.standalone.config")
            .expect("named");
        assert!(!config.detail.contains("hunter2"), "{config}");
    }

    #[test]
    fn dev_mode_is_named_and_becomes_one_real_server() {
        let imported = run("server:\n  dev:\n    enabled: true\n  ha:\n    enabled: true\n");
        assert_eq!(imported.cluster.spec.replicas, 1);
        assert!(paths(&imported).contains(&"server.dev.enabled"));
        assert!(vaultkeeper_api::validate(&imported.cluster).is_ok());
    }

    #[test]
    fn templates_the_chart_cannot_resolve_here_are_named() {
        let imported = run("server:\n  annotations: |\n    a: {{ .Values.x }}\n");
        assert!(paths(&imported).contains(&"server.annotations"));
    }
}
