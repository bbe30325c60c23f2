//! `vaultkeeper import --from-helm-values`, run as a user runs it, against the real Helm
//! binary and the packaged Vault chart (tests/fixtures/vault-helm): for each values file,
//! the imported VaultCluster is rendered by vaultkeeper-render and compared with `helm
//! template` of the same values on names, selectors, ports, env, probes, mounts, security
//! context, claims, placement and the PodDisruptionBudget. Where both define a thing it must
//! be equal; every difference is one this file names, and no other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use proptest::prelude::*;
use serde_json::{Value, json};
use vaultkeeper::helm_values::{ImportOptions, Why, import, parse_values};
use vaultkeeper_api::{AccessMode, TlsMode, VaultCluster, parse_manifests, validate};
use vaultkeeper_render::{RenderContext, pki, render};

const NAMESPACE: &str = "vault-ns";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> PathBuf {
    root().join("tests/fixtures/vault-helm/vault-0.34.1.tgz")
}

/// Helm 3 where scripts/install-tools.sh puts it (or `VAULTKEEPER_HELM`); missing is a
/// failure naming the script, never a skip.
fn helm() -> PathBuf {
    let path = std::env::var_os("VAULTKEEPER_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".tools/bin/helm"));
    assert!(
        path.is_file(),
        "helm not found at {}: run scripts/install-tools.sh, or point VAULTKEEPER_HELM at it",
        path.display()
    );
    path
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn vaultkeeper_import(values: &Path, release: &str) -> Output {
    run(
        Path::new(env!("CARGO_BIN_EXE_vaultkeeper")),
        &[
            "import",
            "--from-helm-values",
            values.to_str().expect("path"),
            "--release",
            release,
            "--namespace",
            NAMESPACE,
        ],
    )
}

/// `helm template` of the chart with the values, every document parsed.
fn helm_template(values: &Path, release: &str) -> Vec<Value> {
    let output = run(
        &helm(),
        &[
            "template",
            release,
            chart().to_str().expect("path"),
            "--namespace",
            NAMESPACE,
            "-f",
            values.to_str().expect("path"),
        ],
    );
    assert!(
        output.status.success(),
        "helm template failed: {}",
        text(&output.stderr)
    );
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text(&output.stdout)).expect("helm prints YAML");
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

/// Imports through the binary, checks the output is a valid VaultCluster, and renders it.
fn import_and_render(values: &Path, release: &str) -> (VaultCluster, String, Vec<Value>) {
    let output = vaultkeeper_import(values, release);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "import failed: {stderr}");
    let clusters = parse_manifests(&text(&output.stdout)).expect("the output is a VaultCluster");
    assert_eq!(clusters.len(), 1);
    let cluster = clusters.into_iter().next().expect("one");
    validate(&cluster).unwrap_or_else(|e| panic!("the imported VaultCluster is invalid: {e:?}"));
    let material = (cluster.spec.tls.mode == TlsMode::SelfSigned).then(|| {
        pki::issue_new(&cluster, NAMESPACE, time::OffsetDateTime::now_utc()).expect("PKI")
    });
    let manifests =
        render(&cluster, &RenderContext::new(NAMESPACE, material.as_ref())).expect("renders");
    let objects = manifests.into_iter().map(|m| m.object).collect();
    (cluster, stderr, objects)
}

fn find<'a>(objects: &'a [Value], kind: &str) -> BTreeMap<String, &'a Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .filter_map(|o| Some((o["metadata"]["name"].as_str()?.to_owned(), o)))
        .collect()
}

/// Absent, null and empty are the same to Kubernetes.
fn norm(value: &Value) -> Value {
    match value {
        Value::Object(map) if map.is_empty() => Value::Null,
        Value::Array(list) if list.is_empty() => Value::Null,
        Value::String(s) if s.is_empty() => Value::Null,
        // `optional: false` is what a missing `optional` means.
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| !(k.as_str() == "optional" && **v == Value::Bool(false)))
                .map(|(k, v)| (k.clone(), norm(v)))
                .filter(|(_, v)| !v.is_null())
                .collect(),
        ),
        Value::Array(list) => Value::Array(list.iter().map(norm).collect()),
        // Helm's YAML numbers and quantities arrive as numbers or strings.
        Value::Number(n) => Value::String(n.to_string()),
        other => other.clone(),
    }
}

/// Every difference between the chart's objects and vaultkeeper's, as short names.
struct Differences(BTreeSet<String>);

impl Differences {
    fn check(&mut self, what: String, chart: &Value, ours: &Value) {
        if norm(chart) != norm(ours) {
            self.0.insert(what);
        }
    }
}

fn compare(chart: &[Value], ours: &[Value]) -> BTreeSet<String> {
    let mut d = Differences(BTreeSet::new());
    // Services: names, types, selectors, ports, annotations.
    // The chart's injector Service is not part of the server (its leftover is named).
    let mut theirs = find(chart, "Service");
    theirs.retain(|_, s| {
        s["metadata"]["labels"]["app.kubernetes.io/name"]
            .as_str()
            .is_some_and(|n| n == "vault" || n == "vault-ui")
    });
    let mine = find(ours, "Service");
    let service_names: BTreeSet<&String> = theirs.keys().chain(mine.keys()).collect();
    for name in service_names {
        match (theirs.get(name), mine.get(name)) {
            (Some(c), Some(o)) => {
                // A Service without a type is a ClusterIP one.
                let kind = |s: &Value| s["spec"]["type"].as_str().unwrap_or("ClusterIP").to_owned();
                d.check(
                    format!("Service {name} type"),
                    &json!(kind(c)),
                    &json!(kind(o)),
                );
                for field in ["selector", "publishNotReadyAddresses", "clusterIP"] {
                    d.check(
                        format!("Service {name} {field}"),
                        &c["spec"][field],
                        &o["spec"][field],
                    );
                }
                let ports = |s: &Value| -> Value {
                    s["spec"]["ports"]
                        .as_array()
                        .map(|ports| {
                            ports
                                .iter()
                                .map(|p| json!([p["name"], p["port"], p["targetPort"]]))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                d.check(format!("Service {name} ports"), &ports(c), &ports(o));
                d.check(
                    format!("Service {name} annotations"),
                    &c["metadata"]["annotations"],
                    &o["metadata"]["annotations"],
                );
            }
            (Some(_), None) => {
                d.0.insert(format!("Service {name} only in the chart"));
            }
            (None, Some(_)) => {
                d.0.insert(format!("Service {name} only in vaultkeeper"));
            }
            (None, None) => {}
        }
    }

    // The PodDisruptionBudget.
    let (theirs, mine) = (
        find(chart, "PodDisruptionBudget"),
        find(ours, "PodDisruptionBudget"),
    );
    match (theirs.values().next(), mine.values().next()) {
        (Some(c), Some(o)) => {
            d.check(
                "PDB name".into(),
                &c["metadata"]["name"],
                &o["metadata"]["name"],
            );
            d.check(
                "PDB selector".into(),
                &c["spec"]["selector"],
                &o["spec"]["selector"],
            );
            d.check(
                "PDB maxUnavailable".into(),
                &c["spec"]["maxUnavailable"],
                &o["spec"]["maxUnavailable"],
            );
        }
        (None, Some(_)) => {
            d.0.insert("PDB only in vaultkeeper".into());
        }
        (Some(_), None) => {
            d.0.insert("PDB only in the chart".into());
        }
        (None, None) => {}
    }

    // The StatefulSet.
    let (theirs, mine) = (find(chart, "StatefulSet"), find(ours, "StatefulSet"));
    assert_eq!(
        theirs.keys().collect::<Vec<_>>(),
        mine.keys().collect::<Vec<_>>(),
        "StatefulSet names"
    );
    let (Some(c), Some(o)) = (theirs.values().next(), mine.values().next()) else {
        panic!("both render a StatefulSet");
    };
    for field in ["selector", "replicas", "serviceName", "podManagementPolicy"] {
        d.check(
            format!("StatefulSet {field}"),
            &c["spec"][field],
            &o["spec"][field],
        );
    }
    let claims = |s: &Value| -> Value {
        s["spec"]["volumeClaimTemplates"]
            .as_array()
            .map(|claims| {
                claims
                    .iter()
                    .map(|t| {
                        json!([
                            t["metadata"]["name"],
                            t["spec"]["accessModes"],
                            t["spec"]["resources"]["requests"]["storage"],
                            t["spec"]["storageClassName"],
                            t["metadata"]["annotations"]
                        ])
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    d.check("volumeClaimTemplates".into(), &claims(c), &claims(o));
    // The chart's claim labels are all on vaultkeeper's claims too (which add their own,
    // the selector's).
    let ours_claims = o["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for claim in c["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = claim["metadata"]["name"].as_str().unwrap_or_default();
        let ours = ours_claims
            .iter()
            .find(|t| t["metadata"]["name"] == claim["metadata"]["name"]);
        for (key, value) in claim["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let mine = ours.map_or(&Value::Null, |t| &t["metadata"]["labels"][key]);
            d.check(format!("claim {name} label {key}"), value, mine);
        }
    }
    let (cpod, opod) = (
        &c["spec"]["template"]["spec"],
        &o["spec"]["template"]["spec"],
    );
    for field in [
        "securityContext",
        "nodeSelector",
        "tolerations",
        "affinity",
        "priorityClassName",
        "serviceAccountName",
        "terminationGracePeriodSeconds",
        "topologySpreadConstraints",
        "imagePullSecrets",
        "hostAliases",
    ] {
        d.check(format!("pod {field}"), &cpod[field], &opod[field]);
    }
    d.check(
        "StatefulSet annotations".into(),
        &c["metadata"]["annotations"],
        &o["metadata"]["annotations"],
    );
    // The chart's pod annotations and labels (but its own helm.sh/chart) are all ours too.
    for (meta, skip) in [("annotations", ""), ("labels", "helm.sh/chart")] {
        let ours_meta = &o["spec"]["template"]["metadata"][meta];
        if let Some(map) = c["spec"]["template"]["metadata"][meta].as_object() {
            for (key, value) in map.iter().filter(|(k, _)| k.as_str() != skip) {
                d.check(format!("pod {meta} {key}"), value, &ours_meta[key]);
            }
        }
    }
    let container = |pod: &Value| pod["containers"][0].clone();
    let (cc, oc) = (container(cpod), container(opod));
    for field in [
        "name",
        "image",
        "imagePullPolicy",
        "securityContext",
        "resources",
    ] {
        d.check(format!("container {field}"), &cc[field], &oc[field]);
    }
    let ports = |c: &Value| -> Value {
        c["ports"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|p| json!([p["name"], p["containerPort"]]))
                    .collect()
            })
            .unwrap_or_default()
    };
    d.check("container ports".into(), &ports(&cc), &ports(&oc));
    d.check(
        "server arguments".into(),
        &server_arguments(&cc),
        &server_arguments(&oc),
    );
    d.check(
        "preStop sleep".into(),
        &pre_stop_sleep(&cc),
        &pre_stop_sleep(&oc),
    );
    let by_name = |list: &Value| -> BTreeMap<String, Value> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e.clone())))
            .collect()
    };
    let (cenv, oenv) = (by_name(&cc["env"]), by_name(&oc["env"]));
    for name in cenv.keys().chain(oenv.keys()).collect::<BTreeSet<_>>() {
        match (cenv.get(name), oenv.get(name)) {
            (Some(a), Some(b)) => d.check(format!("env {name}"), a, b),
            (Some(_), None) => {
                d.0.insert(format!("env {name} only in the chart"));
            }
            (None, Some(_)) => {
                d.0.insert(format!("env {name} only in vaultkeeper"));
            }
            (None, None) => {}
        }
    }
    let (cmounts, omounts) = (by_name(&cc["volumeMounts"]), by_name(&oc["volumeMounts"]));
    for name in cmounts
        .keys()
        .chain(omounts.keys())
        .collect::<BTreeSet<_>>()
    {
        let view = |m: Option<&Value>| m.map(|m| json!([m["mountPath"], m["readOnly"]]));
        d.check(
            format!("volumeMount {name}"),
            &view(cmounts.get(name)).unwrap_or(Value::Null),
            &view(omounts.get(name)).unwrap_or(Value::Null),
        );
    }
    for probe in ["readinessProbe", "livenessProbe"] {
        let (cp, op) = (&cc[probe], &oc[probe]);
        let timing = |p: &Value| -> Value {
            json!([
                p["failureThreshold"],
                p["initialDelaySeconds"],
                p["periodSeconds"],
                p["successThreshold"],
                p["timeoutSeconds"]
            ])
        };
        let handler = |p: &Value| json!([p["exec"], p["httpGet"]]);
        d.check(format!("{probe} timing"), &timing(cp), &timing(op));
        d.check(format!("{probe} handler"), &handler(cp), &handler(op));
    }
    d.0
}

/// The words after `-config=/tmp/storageconfig.hcl` on the start script's server line
/// (the extra arguments), unquoted, each `-flag=value` split like `-flag value`.
fn server_arguments(container: &Value) -> Value {
    let script = container["args"][0].as_str().unwrap_or_default();
    let Some((_, rest)) = script.split_once("-config=/tmp/storageconfig.hcl") else {
        return Value::Null;
    };
    let line = rest.lines().next().unwrap_or_default();
    let words: Vec<Value> = line
        .split_whitespace()
        .map(|w| w.trim_matches('\''))
        .flat_map(|w| w.splitn(2, '=').map(|part| json!(part)).collect::<Vec<_>>())
        .collect();
    json!(words)
}

/// The seconds of the preStop hook's `sleep`.
fn pre_stop_sleep(container: &Value) -> Value {
    container["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(Value::as_str)
        .and_then(|c| c.split_once("sleep "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map_or(Value::Null, |s| json!(s))
}

/// What every import differs in, by design: the address the CLI in the pod uses and the
/// one other nodes use are the pod's DNS name (which the certificate names) rather than
/// 127.0.0.1 and the pod IP, and readiness is `sys/health` with the codes mapped rather
/// than `vault status`.
const ALWAYS: &[&str] = &[
    "env VAULT_ADDR",
    "env VAULT_API_ADDR",
    "readinessProbe handler",
];

/// [`ALWAYS`] when the values give a readiness path, which VaultCluster carries.
const ADDRESSES: &[&str] = &["env VAULT_ADDR", "env VAULT_API_ADDR"];

/// Without `setNodeId`, the chart's raft node ids are random; vaultkeeper always names them.
const NODE_ID: &str = "env VAULT_RAFT_NODE_ID only in vaultkeeper";

/// The chart's standalone mode has no active/standby Services and no budget.
const STANDALONE: &[&str] = &[
    "Service vault-active only in vaultkeeper",
    "Service vault-standby only in vaultkeeper",
    "PDB only in vaultkeeper",
];

fn expected(groups: &[&[&str]]) -> BTreeSet<String> {
    groups
        .iter()
        .flat_map(|g| g.iter())
        .map(|s| (*s).to_owned())
        .collect()
}

fn leftover_paths(stderr: &str) -> BTreeSet<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split(": ").next())
        .map(str::to_owned)
        .collect()
}

fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write values");
    path
}

fn case(values: &Path, release: &str) -> (VaultCluster, BTreeSet<String>, BTreeSet<String>) {
    let (cluster, stderr, ours) = import_and_render(values, release);
    let chart = helm_template(values, release);
    (cluster, compare(&chart, &ours), leftover_paths(&stderr))
}

#[test]
fn chart_defaults_and_its_own_values_file_import_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = write(&dir, "empty.yaml", "");
    let shown = run(
        &helm(),
        &["show", "values", chart().to_str().expect("path")],
    );
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let full = write(&dir, "values.yaml", &text(&shown.stdout));

    let (cluster, differences, leftovers) = case(&empty, "vault");
    assert_eq!(cluster.spec.replicas, 1);
    assert_eq!(differences, expected(&[ALWAYS, &[NODE_ID], STANDALONE]));
    assert_eq!(
        leftovers,
        expected(&[&[
            "injector.enabled",
            "server.standalone.config storage \"file\""
        ]])
    );

    // The chart's whole values.yaml restates its defaults: the same cluster, the same list.
    let (same, differences_full, leftovers_full) = case(&full, "vault");
    assert_eq!(same.spec, cluster.spec);
    assert_eq!(differences_full, differences);
    assert_eq!(leftovers_full, leftovers);
}

#[test]
fn the_charts_openshift_values_import_with_the_same_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        Path::new("tar"),
        &[
            "-xzf",
            chart().to_str().expect("path"),
            "-C",
            dir.path().to_str().expect("path"),
            "vault/values.openshift.yaml",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let values = dir.path().join("vault/values.openshift.yaml");
    let (cluster, differences, leftovers) = case(&values, "vault");
    assert_eq!(
        cluster.spec.image.as_deref(),
        Some("registry.connect.redhat.com/hashicorp/vault:2.0.4-ubi")
    );
    // No security context at all, as the chart leaves it on OpenShift: compared equal.
    assert_eq!(differences, expected(&[ADDRESSES, &[NODE_ID], STANDALONE]));
    // The chart's readiness path for OpenShift is carried: the probes are the same.
    assert_eq!(
        cluster
            .spec
            .pod
            .readiness_probe
            .as_ref()
            .and_then(|p| p.path.as_deref()),
        Some("/v1/sys/health?uninitcode=204")
    );
    assert_eq!(
        leftovers,
        expected(&[&[
            "injector.enabled",
            "server.standalone.config storage \"file\"",
        ]])
    );
}

#[test]
fn ha_raft_with_tls_from_a_secret_matches_the_chart() {
    let values = root().join("examples/helm/ha-raft-tls.yaml");
    let (cluster, differences, leftovers) = case(&values, "vault");
    assert_eq!(cluster.spec.replicas, 3);
    assert_eq!(cluster.spec.tls.mode, TlsMode::Secret);
    assert_eq!(
        cluster.spec.tls.secret_name.as_deref(),
        Some("vault-ha-tls")
    );
    assert_eq!(
        cluster
            .spec
            .config
            .as_ref()
            .and_then(|c| c.get("default_lease_ttl")),
        Some(&json!("768h"))
    );
    // setNodeId is on, VAULT_CACERT names the same file: only the designed differences,
    // and the chart's server.service.annotations, which it also puts on the headless
    // Service and VaultCluster's spec.service.annotations does not.
    assert_eq!(
        differences,
        expected(&[ALWAYS, &["Service vault-internal annotations"]])
    );
    assert_eq!(
        leftovers,
        expected(&[&["server.extraEnvironmentVars.VAULT_CACERT"]])
    );
}

#[test]
fn a_release_not_named_vault_gets_the_charts_names() {
    let values = root().join("examples/helm/ha-raft-tls.yaml");
    let (cluster, differences, _) = case(&values, "prod");
    assert_eq!(cluster.metadata.name.as_deref(), Some("prod-vault"));
    // The chart's instance label is the release; vaultkeeper's is the cluster's name.
    let mut instance: Vec<String> = [
        "Service prod-vault selector",
        "Service prod-vault-active selector",
        "Service prod-vault-standby selector",
        "Service prod-vault-internal selector",
        "Service prod-vault-ui selector",
        "StatefulSet selector",
        "PDB selector",
        "pod labels app.kubernetes.io/instance",
        "pod affinity",
        "Service prod-vault-internal annotations",
    ]
    .map(str::to_owned)
    .to_vec();
    instance.extend(ALWAYS.iter().map(|s| (*s).to_owned()));
    assert_eq!(differences, instance.into_iter().collect());
}

#[test]
fn standalone_raft_with_audit_storage_matches_the_chart() {
    let values = root().join("crates/vaultkeeper/tests/helm-values/standalone-audit.yaml");
    let (cluster, differences, leftovers) = case(&values, "vault");
    let transit = cluster
        .spec
        .unseal
        .transit
        .as_ref()
        .expect("the transit seal");
    assert_eq!(transit.token_secret.name, "transit-token");
    let audit = cluster.spec.storage.audit.as_ref().expect("audit volume");
    assert_eq!(audit.size, "1Gi");
    assert_eq!(cluster.spec.storage.size, "2Gi");
    assert_eq!(cluster.spec.pod.tolerations.len(), 1);
    assert_eq!(
        cluster.spec.pod.tolerations[0].key.as_deref(),
        Some("vault-only")
    );
    assert_eq!(differences, expected(&[ALWAYS, &[NODE_ID], STANDALONE]));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn settings_without_a_field_are_named_and_show_up_as_the_only_differences() {
    let values = root().join("crates/vaultkeeper/tests/helm-values/ha-leftovers.yaml");
    let output = vaultkeeper_import(&values, "vault");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("injector.enabled: not meaningful under the operator"),
        "{stderr}"
    );
    let (cluster, differences, leftovers) = case(&values, "vault");
    assert_eq!(cluster.spec.replicas, 5);
    assert_eq!(
        leftovers,
        expected(&[&[
            "csi.enabled",
            "injector.enabled",
            "server.extraContainers",
            "server.extraVolumes[0]",
            "server.ha.replicas",
        ]])
    );
    // What those leftovers do in the chart is exactly what differs (the extra container
    // is not compared); the liveness probe, host aliases and StatefulSet annotations are
    // carried and equal.
    let extra = [
        "StatefulSet replicas",
        "PDB maxUnavailable",
        "volumeMount userconfig-plugins",
    ];
    assert_eq!(differences, expected(&[ALWAYS, &[NODE_ID], &extra]));
}

#[test]
fn the_charts_workload_tuning_is_carried_and_renders_as_the_chart_does() {
    let values = root().join("crates/vaultkeeper/tests/helm-values/server-tuning.yaml");
    let (cluster, differences, leftovers) = case(&values, "vault");
    let pod = &cluster.spec.pod;
    assert_eq!(
        pod.extra_args,
        ["-log-level=debug", "-exit-on-core-shutdown"]
    );
    assert_eq!(pod.extra_ports.len(), 1);
    assert_eq!(pod.host_aliases.len(), 1);
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    assert_eq!(pod.pre_stop_sleep_seconds, Some(10));
    let liveness = pod.liveness_probe.as_ref().expect("the liveness probe");
    assert_eq!(liveness.enabled, Some(true));
    assert_eq!(liveness.initial_delay_seconds, Some(90));
    assert_eq!(
        pod.stateful_set_annotations
            .get("example.com/owner")
            .map(String::as_str),
        Some("platform")
    );
    let storage = &cluster.spec.storage;
    assert_eq!(storage.mount_path.as_deref(), Some("/vault/file"));
    assert_eq!(storage.access_mode, Some(AccessMode::ReadWriteOncePod));
    assert_eq!(storage.labels.len(), 1);
    assert_eq!(storage.annotations.len(), 1);
    let audit = storage.audit.as_ref().expect("the audit volume");
    assert_eq!(audit.mount_path.as_deref(), Some("/vault/logs"));
    assert_eq!(audit.access_mode, Some(AccessMode::ReadWriteMany));
    assert_eq!(
        pod.disruption_budget
            .as_ref()
            .and_then(|b| b.max_unavailable),
        Some(1)
    );
    // Arguments, ports, aliases, grace period, preStop sleep, both probes, the
    // StatefulSet's annotations and the claims (access modes, labels, annotations, mount
    // paths) all equal the chart's: only the addresses differ.
    assert_eq!(differences, expected(&[ADDRESSES]));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn workload_values_vaultcluster_refuses_are_named_with_the_refusal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values = write(
        &dir,
        "refused.yaml",
        "injector: {enabled: false}\n\
         server:\n\
         \x20 ha: {enabled: true, raft: {enabled: true, setNodeId: true}, disruptionBudget: {maxUnavailable: 2}}\n\
         \x20 extraArgs: \"-dev -dev-root-token-id=root\"\n\
         \x20 extraPorts: [{containerPort: 8200, name: again}]\n\
         \x20 dataStorage: {mountPath: /vault/config, annotations: {pv.kubernetes.io/bind-completed: 'yes'}}\n\
         \x20 hostAliases: [{ip: 10.0.0.66, hostnames: [vault-0.vault-internal]}]\n\
         \x20 livenessProbe: {enabled: true, execCommand: [/bin/sh, -c, 'cat /vault/userconfig/tls/tls.key']}\n",
    );
    let output = vaultkeeper_import(&values, "vault");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    for (path, says) in [
        ("server.extraArgs", "-config, -dev* or -recovery"),
        ("server.extraPorts", "8200"),
        ("server.hostAliases", "this cluster's own Services and pods"),
        ("server.livenessProbe.execCommand", "HTTP"),
        ("server.dataStorage.mountPath", "/vault/config"),
        ("server.dataStorage.annotations", "pv.kubernetes.io/"),
        ("server.ha.disruptionBudget.maxUnavailable", "raft quorum"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{path}:")))
            .unwrap_or_else(|| panic!("{path} is named: {stderr}"));
        assert!(line.contains("not meaningful under the operator"), "{line}");
        assert!(line.contains(says), "{line}");
    }
    // The token given to -dev-root-token-id is never echoed.
    assert!(!stderr.contains("token-id=root"), "{stderr}");
    let (cluster, _, _) = import_and_render(&values, "vault");
    assert!(cluster.spec.pod.extra_args.is_empty());
    assert!(cluster.spec.pod.host_aliases.is_empty());
    assert!(cluster.spec.pod.liveness_probe.is_none());
    assert!(cluster.spec.storage.mount_path.is_none());
    assert!(cluster.spec.pod.disruption_budget.is_none());
    assert!(cluster.spec.storage.annotations.is_empty());

    // Shell syntax is never carried: the chart's shell would run it, VaultCluster will not.
    let shell = write(
        &dir,
        "shell.yaml",
        "server: {extraArgs: \"-log-level=debug; $(cat /vault/userconfig/tls/tls.key)\"}\n",
    );
    let output = vaultkeeper_import(&shell, "vault");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("server.extraArgs: needs a step by hand: it holds shell syntax"),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_vault_values_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, content, message) in [
        (
            "operator.yaml",
            "replicaCount: 2\nwatchNamespaces: []\n",
            "not keys of the Vault chart's values: \"replicaCount\", \"watchNamespaces\"",
        ),
        (
            "list.yaml",
            "- server\n",
            "a values file is a YAML mapping, but this one is a list",
        ),
        ("broken.yaml", "server: [\n", "not valid YAML"),
        (
            "no-server.yaml",
            "server:\n  enabled: false\n",
            "these values run no Vault server",
        ),
    ] {
        let path = write(&dir, name, content);
        let output = vaultkeeper_import(&path, "vault");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(output.stdout.is_empty(), "{name} printed a manifest");
    }
    // A file that cannot be read is an I/O error: exit 1.
    let output = vaultkeeper_import(&dir.path().join("missing.yaml"), "vault");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("cannot read"));
}

#[test]
fn leftovers_never_echo_secret_values() {
    let values = parse_values(
        "server:\n  ha:\n    enabled: true\n    raft:\n      enabled: true\n      config: |\n        \
         seal \"awskms\" {\n          secret_key = \"s3cr3t-value\"\n        }\n        \
         storage \"raft\" {}\n",
    )
    .expect("values");
    let imported = import(
        &values,
        &ImportOptions {
            release: "vault".into(),
            namespace: None,
        },
    )
    .expect("imports");
    let seal = imported
        .leftovers
        .iter()
        .find(|l| l.path.contains("seal"))
        .expect("the seal is named");
    assert_eq!(seal.why, Why::NeedsAction);
    let everything = format!(
        "{:?} {:?} {:?}",
        imported.leftovers, imported.notes, imported.cluster
    );
    assert!(!everything.contains("s3cr3t-value"), "{everything}");
}

/// Values trees built from the chart's own keys and odd scalars.
fn odd_values() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "global",
        "server",
        "ui",
        "injector",
        "csi",
        "serverTelemetry",
        "ha",
        "raft",
        "enabled",
        "replicas",
        "config",
        "image",
        "tag",
        "repository",
        "extraVolumes",
        "extraEnvironmentVars",
        "extraSecretEnvironmentVars",
        "tlsDisable",
        "affinity",
        "tolerations",
        "nodeSelector",
        "annotations",
        "ingress",
        "hosts",
        "paths",
        "tls",
        "auditStorage",
        "dataStorage",
        "size",
        "standalone",
        "dev",
        "service",
        "type",
        "statefulSet",
        "securityContext",
        "pod",
        "container",
        "name",
        "path",
        "fullnameOverride",
        "nameOverride",
        "namespace",
        "resources",
        "serviceMonitor",
        "selectors",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!("-")),
        Just(json!("{{ .Values.nope }}")),
        Just(json!(
            "listener \"tcp\" { tls_cert_file = \"/vault/userconfig/a/b\" }"
        )),
        Just(json!(
            "{\"listener\": [1, {\"tcp\": 2}], \"storage\": \"raft\"}"
        )),
        "[ -~]{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn import_never_panics_on_odd_values(tree in odd_values(), release in "[a-z]{1,8}") {
        let yaml = serde_saphyr::to_string(&tree).unwrap_or_default();
        if let Ok(values) = parse_values(&yaml) {
            let options = ImportOptions { release, namespace: None };
            if let Ok(imported) = import(&values, &options) {
                // Whatever comes out is a VaultCluster vaultkeeper accepts.
                prop_assert!(validate(&imported.cluster).is_ok(), "{:?}", validate(&imported.cluster));
            }
        }
    }

    #[test]
    fn parsing_never_panics_on_odd_text(input in "[\\x00-\\x7f]{0,200}") {
        let _ = parse_values(&input);
    }
}

#[test]
fn deeply_nested_or_exploding_input_is_an_error_not_a_crash() {
    // Aliases that would expand to 10^12 nodes: the parser's budget stops them.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    bomb.push_str("server: *a11\n");
    assert!(parse_values(&bomb).is_err());
    let deep = format!("server: {}{}", "[".repeat(20_000), "]".repeat(20_000));
    let _ = parse_values(&deep);
    let deep_map = format!(
        "server:\n{}",
        (1..2000)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect::<String>()
    );
    if let Ok(values) = parse_values(&deep_map) {
        let _ = import(
            &values,
            &ImportOptions {
                release: "vault".into(),
                namespace: None,
            },
        );
    }
}
