//! The operator's installation: the Helm chart (`charts/vaultkeeper`), the kustomize base
//! (`deploy/`) and the Argo CD health check, rendered and linted with the real `helm` and
//! `kubectl`, and the RBAC exercised in the simulated cluster as the operator's own
//! ServiceAccount with RBAC enforced.
//!
//! `deploy/rbac/clusterrole.yaml` is the one list of the operator's permissions; every
//! test here reads it, and `chart_rule_templates_are_generated_from_deploy` regenerates
//! the chart's copy with `VAULTKEEPER_REGENERATE=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use time::OffsetDateTime;
use vaultkeeper_api::{TlsMode, VaultCluster, parse_manifests};
use vaultkeeper_e2e::install::{
    self, InstallError, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, Permission, apply_objects,
    apply_one, chart_dir, deploy_dir, find, helm_lint, helm_template, integration_crds, kind,
    kustomize_build, name, namespace, of_kind, permissions, relative_to, rules, workspace_root,
};
use vaultkeeper_render::{RenderContext, pki, render};
use vaultkeeper_sim::{SimCluster, SimConfig};

/// The operator's field manager, as it applies what it renders.
const OPERATOR_MANAGER: &str = "vaultkeeper";

fn ok<T>(r: Result<T, InstallError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// The reviewed permission list. Adding a permission to deploy/rbac/clusterrole.yaml fails
// `cluster_role_has_no_wildcards_and_exactly_the_reviewed_permissions` until it is added
// here too: widening what the operator may do is a decision a reviewer sees twice.
// ---------------------------------------------------------------------------------------

const CRUD: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// API group, resources, verbs, and the one object name the rule is limited to.
type ReviewedRule = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    Option<&'static str>,
);

fn reviewed_permissions() -> BTreeSet<Permission> {
    let table: &[ReviewedRule] = &[
        (
            "vaultkeeper.io",
            &["vaultclusters"],
            &["get", "list", "watch", "patch", "update"],
            None,
        ),
        (
            "vaultkeeper.io",
            &["vaultclusters/status"],
            &["get", "patch", "update"],
            None,
        ),
        (
            "vaultkeeper.io",
            &["vaultclusters/finalizers"],
            &["update"],
            None,
        ),
        (
            "vaultkeeper.io",
            &["vaultpolicies"],
            &["get", "list", "watch", "patch", "update"],
            None,
        ),
        (
            "vaultkeeper.io",
            &["vaultpolicies/status"],
            &["get", "patch", "update"],
            None,
        ),
        (
            "vaultkeeper.io",
            &["vaultpolicies/finalizers"],
            &["update"],
            None,
        ),
        (
            "vaultkeeper.io",
            &["vaultrestores"],
            &["get", "list", "watch"],
            None,
        ),
        (
            "vaultkeeper.io",
            &["vaultrestores/status"],
            &["get", "patch", "update"],
            None,
        ),
        ("apps", &["statefulsets"], CRUD, None),
        (
            "",
            &["services", "configmaps", "secrets", "serviceaccounts"],
            CRUD,
            None,
        ),
        (
            "rbac.authorization.k8s.io",
            &["roles", "rolebindings", "clusterrolebindings"],
            CRUD,
            None,
        ),
        ("policy", &["poddisruptionbudgets"], CRUD, None),
        ("batch", &["cronjobs"], CRUD, None),
        (
            "networking.k8s.io",
            &["ingresses", "networkpolicies"],
            CRUD,
            None,
        ),
        ("", &["pods"], &["get", "list", "watch", "delete"], None),
        ("", &["pods/exec"], &["get", "create"], None),
        ("", &["pods/log"], &["get"], None),
        // create: the one-off backup before a disruptive operation.
        (
            "batch",
            &["jobs"],
            &["get", "list", "watch", "create"],
            None,
        ),
        (
            "",
            &["persistentvolumeclaims"],
            &["get", "list", "delete"],
            None,
        ),
        ("", &["events"], &["create", "patch"], None),
        ("events.k8s.io", &["events"], &["create", "patch"], None),
        ("cert-manager.io", &["certificates"], CRUD, None),
        (
            "monitoring.coreos.com",
            &["servicemonitors", "prometheusrules"],
            CRUD,
            None,
        ),
        (
            "rbac.authorization.k8s.io",
            &["clusterroles"],
            &["bind"],
            Some("system:auth-delegator"),
        ),
        (
            "rbac.authorization.k8s.io",
            &["clusterroles"],
            &["bind"],
            Some("vaultkeeper-vault-server"),
        ),
        (
            "apiextensions.k8s.io",
            &["customresourcedefinitions"],
            &["get", "list", "watch"],
            None,
        ),
    ];
    let mut out = BTreeSet::new();
    for (group, resources, verbs, name) in table {
        for r in *resources {
            for v in *verbs {
                out.insert(Permission::new(group, r, v, *name));
            }
        }
    }
    out
}

fn deploy_rules() -> Vec<Value> {
    ok(rules(&ok(install::operator_cluster_role())))
}

// ---------------------------------------------------------------------------------------
// Chart: lint and render.
// ---------------------------------------------------------------------------------------

#[test]
fn helm_lint_passes_for_the_defaults_and_every_documented_mode() {
    for args in [
        &[][..],
        &["--set", "watchNamespaces={team-a,team-b}"][..],
        &[
            "--set",
            "clusterWide=true",
            "--set-json",
            "watchNamespaces=[]",
        ][..],
        &[
            "--set",
            "serviceMonitor.enabled=true,podDisruptionBudget.enabled=false,replicaCount=1",
        ][..],
        &[
            "--set",
            "grafanaDashboard.enabled=true,grafanaDashboard.namespace=monitoring",
        ][..],
        &[
            "--set",
            "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ][..],
        &[
            "--set",
            "serviceAccount.create=false,serviceAccount.name=existing,rbac.create=false",
        ][..],
    ] {
        let report = helm_lint(args).unwrap_or_else(|e| panic!("helm lint {args:?}: {e}"));
        assert!(
            report.contains("0 chart(s) failed"),
            "helm lint {args:?}:\n{report}"
        );
        assert!(
            !report.contains("[WARNING]") && !report.contains("[ERROR]"),
            "helm lint {args:?}:\n{report}"
        );
    }
}

#[test]
fn helm_template_renders_every_kind_the_operator_needs() {
    let objects = ok(helm_template(&[]));
    let kinds: BTreeSet<&str> = objects.iter().map(kind).collect();
    let expected: BTreeSet<&str> = [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ]
    .into();
    assert_eq!(kinds, expected, "kinds rendered by default");
    for o in &objects {
        // The one object outside: the RoleBinding that lends the operator its rules in the
        // watched namespace.
        let watched = kind(o) == "RoleBinding" && name(o) == "vaultkeeper";
        if watched {
            assert_eq!(namespace(o), "vault", "the default watched namespace");
        } else if !matches!(
            kind(o),
            "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
        ) {
            assert_eq!(
                namespace(o),
                OPERATOR_NAMESPACE,
                "{} {} is in the release namespace",
                kind(o),
                name(o)
            );
        }
    }

    let dep = ok(find(&objects, "Deployment", "vaultkeeper"));
    let spec = &dep["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    assert_eq!(
        dep["spec"]["replicas"], 2,
        "two replicas by default: leader election makes them safe"
    );
    assert_eq!(
        c["image"],
        format!(
            "ghcr.io/vaultkeeper/vaultkeeper:{}",
            env!("CARGO_PKG_VERSION")
        ),
        "image tag is the appVersion"
    );
    assert_eq!(
        c["args"],
        json!([
            "run",
            "--vault-server-cluster-role=vaultkeeper-vault-server",
            "--namespace=vault"
        ])
    );
    assert_eq!(
        c["ports"],
        json!([{"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http-metrics"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "http-metrics"})
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert!(
        c["resources"]["requests"]["memory"].is_string()
            && c["resources"]["limits"]["memory"].is_string()
    );
    assert_eq!(spec["serviceAccountName"], OPERATOR_SERVICE_ACCOUNT);
    // Vault logins use a projected token whose only audience is Vault, at the path
    // `vaultkeeper run` reads by default; the API token never leaves the operator.
    let login_mount = c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"] == vaultkeeper_api::login::VAULT_LOGIN_TOKEN_DIR)
        .unwrap_or_else(|| panic!("no Vault-login token mount: {}", c["volumeMounts"]));
    assert_eq!(login_mount["readOnly"], true);
    let login_volume = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == login_mount["name"])
        .unwrap_or_else(|| panic!("no volume {}", login_mount["name"]));
    assert_eq!(
        login_volume["projected"]["sources"],
        json!([{"serviceAccountToken": {
            "audience": vaultkeeper_api::login::VAULT_LOGIN_AUDIENCE,
            "expirationSeconds": vaultkeeper_api::login::VAULT_LOGIN_TOKEN_SECONDS,
            "path": vaultkeeper_api::login::VAULT_LOGIN_TOKEN_NAME,
        }}])
    );
    let anti =
        &spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        anti["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname",
        "anti-affinity preferred by default"
    );
    assert_eq!(
        anti["podAffinityTerm"]["labelSelector"]["matchLabels"],
        dep["spec"]["selector"]["matchLabels"]
    );
    assert!(
        spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            .is_null(),
        "soft, so one node still runs it"
    );
    let env: BTreeMap<String, Value> = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_owned(),
                e.get("value")
                    .cloned()
                    .unwrap_or_else(|| e["valueFrom"].clone()),
            )
        })
        .collect();
    assert_eq!(env["VAULTKEEPER_LOG_LEVEL"], "info");
    assert_eq!(env["VAULTKEEPER_LOG_FORMAT"], "json");
    assert_eq!(env["VAULTKEEPER_LISTEN_ADDRESS"], "0.0.0.0:8080");
    assert_eq!(env["VAULTKEEPER_LEASE_NAME"], "vaultkeeper");
    assert_eq!(
        env["VAULTKEEPER_POD_NAME"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env["VAULTKEEPER_POD_NAMESPACE"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    // Vault binds the operator's role to this ServiceAccount once the root token is revoked.
    assert_eq!(
        env["VAULTKEEPER_SERVICE_ACCOUNT"]["fieldRef"]["fieldPath"],
        "spec.serviceAccountName"
    );

    let pod_labels = &dep["spec"]["template"]["metadata"]["labels"];
    let selects = |selector: &Value| {
        selector
            .as_object()
            .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| &pod_labels[k] == v))
    };
    let svc = ok(find(&objects, "Service", "vaultkeeper-metrics"));
    assert!(
        selects(&svc["spec"]["selector"]),
        "the metrics Service selects the operator pods"
    );
    assert_eq!(svc["spec"]["ports"][0]["name"], "http-metrics");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http-metrics");
    let pdb = ok(find(&objects, "PodDisruptionBudget", "vaultkeeper"));
    assert!(
        selects(&pdb["spec"]["selector"]["matchLabels"]),
        "the PDB covers the operator pods"
    );
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    // The operator answers only on its metrics port and reaches only the API server, DNS
    // and Vault's port.
    let np = ok(find(&objects, "NetworkPolicy", "vaultkeeper"));
    assert!(selects(&np["spec"]["podSelector"]["matchLabels"]));
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        np["spec"]["ingress"],
        json!([{"ports": [{"port": 8080, "protocol": "TCP"}]}])
    );
    let egress_ports: BTreeSet<i64> = np["spec"]["egress"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(egress_ports, BTreeSet::from([53, 443, 6443, 8200]));
    assert!(
        np["spec"]["egress"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|rule| rule.get("to").is_none()),
        "egress is limited by port; the API server has no pod to select"
    );

    let crb = ok(find(
        &objects,
        "ClusterRoleBinding",
        "vaultkeeper-cluster-scope",
    ));
    assert_eq!(crb["roleRef"]["name"], "vaultkeeper-cluster-scope");
    let watched = ok(find(&objects, "RoleBinding", "vaultkeeper"));
    assert_eq!(watched["roleRef"]["name"], "vaultkeeper");
    assert_eq!(watched["subjects"], crb["subjects"]);
    assert_eq!(
        crb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "vaultkeeper", "namespace": OPERATOR_NAMESPACE}])
    );
    let rb = ok(find(&objects, "RoleBinding", "vaultkeeper-leader-election"));
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vaultkeeper-leader-election"})
    );
    assert_eq!(rb["subjects"], crb["subjects"]);

    // The ServiceMonitor for the operator itself is off by default, and complete when on.
    let with_monitor = ok(helm_template(&[
        "--set",
        "serviceMonitor.enabled=true,serviceMonitor.labels.release=prom",
    ]));
    let sm = ok(find(&with_monitor, "ServiceMonitor", "vaultkeeper"));
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http-metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert!(
        sm["spec"]["selector"]["matchLabels"]
            .as_object()
            .is_some_and(|m| m.iter().all(|(k, v)| &svc["metadata"]["labels"][k] == v)),
        "the ServiceMonitor selects the metrics Service"
    );
}

#[test]
fn chart_values_reach_the_deployment() {
    let objects = ok(helm_template(&[
        "--set",
        "logLevel=vaultkeeper=debug\\,kube=info,logFormat=text,replicaCount=3,priorityClassName=system-cluster-critical",
        "--set",
        "extraArgs={--requeue-seconds=30},extraEnv[0].name=HTTPS_PROXY,extraEnv[0].value=http://proxy:3128",
        "--set",
        "nodeSelector.pool=system,tolerations[0].key=dedicated,tolerations[0].operator=Exists",
        "--set",
        "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool",
        "--set",
        "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
        "--set",
        "resources.limits.memory=1Gi,podAnnotations.team=platform,image.tag=0.2.0-rc.1,httpPort=9090",
    ]));
    let dep = ok(find(&objects, "Deployment", "vaultkeeper"));
    let spec = &dep["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    assert_eq!(dep["spec"]["replicas"], 3);
    assert_eq!(c["image"], "ghcr.io/vaultkeeper/vaultkeeper:0.2.0-rc.1");
    assert_eq!(
        c["args"],
        json!([
            "run",
            "--vault-server-cluster-role=vaultkeeper-vault-server",
            "--namespace=vault",
            "--requeue-seconds=30"
        ])
    );
    let env = c["env"].as_array().cloned().unwrap_or_default();
    assert!(
        env.contains(
            &json!({"name": "VAULTKEEPER_LOG_LEVEL", "value": "vaultkeeper=debug,kube=info"})
        ),
        "{env:?}"
    );
    assert!(env.contains(&json!({"name": "VAULTKEEPER_LOG_FORMAT", "value": "text"})));
    assert!(env.contains(&json!({"name": "VAULTKEEPER_LISTEN_ADDRESS", "value": "0.0.0.0:9090"})));
    assert!(env.contains(&json!({"name": "HTTPS_PROXY", "value": "http://proxy:3128"})));
    assert_eq!(c["ports"][0]["containerPort"], 9090);
    assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(spec["nodeSelector"], json!({"pool": "system"}));
    assert_eq!(
        spec["tolerations"],
        json!([{"key": "dedicated", "operator": "Exists"}])
    );
    assert_eq!(spec["priorityClassName"], "system-cluster-critical");
    assert!(
        spec["affinity"]["nodeAffinity"].is_object(),
        "a given affinity replaces the default"
    );
    assert!(spec["affinity"]["podAntiAffinity"].is_null());
    assert_eq!(
        dep["spec"]["template"]["metadata"]["annotations"]["team"],
        "platform"
    );
    let svc = ok(find(&objects, "Service", "vaultkeeper-metrics"));
    assert_eq!(svc["spec"]["ports"][0]["port"], 9090);

    let pinned = ok(helm_template(&[
        "--set",
        "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ]));
    assert_eq!(
        ok(find(&pinned, "Deployment", "vaultkeeper"))["spec"]["template"]["spec"]["containers"][0]
            ["image"],
        "ghcr.io/vaultkeeper/vaultkeeper@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
}

#[test]
fn chart_refuses_bad_values_naming_the_value_and_the_fix() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "logFormat=xml"],
            "logFormat must be json or text",
        ),
        (
            &["--set", "watchNamespaces={Team_A}"],
            "watchNamespaces: \"Team_A\" is not a namespace name",
        ),
        (
            &["--set", "watchNamespaces={team-a,team-a}"],
            "watchNamespaces lists a namespace twice",
        ),
        (
            &["--set", "watchNamespaces=team-a"],
            "watchNamespaces must be a list",
        ),
        (
            &["--set", "image.digest=latest"],
            "image.digest must look like sha256:",
        ),
        (
            &["--set", "serviceAccount.create=false"],
            "serviceAccount.name must name an existing ServiceAccount",
        ),
    ];
    for (args, wanted) in cases {
        match helm_template(args) {
            Ok(_) => panic!("helm template {args:?} rendered; it should refuse"),
            Err(e) => assert!(
                e.to_string().contains(wanted),
                "helm template {args:?}: wanted {wanted:?} in: {e}"
            ),
        }
    }
}

#[test]
fn chart_values_are_all_commented_and_listed_in_the_readme() {
    let values_text = read(&chart_dir().join("values.yaml"));
    let values = ok(install::parse_yaml_stream("values.yaml", &values_text)).remove(0);
    fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&path, child, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut all = Vec::new();
    leaves("", &values, &mut all);

    let readme = read(&chart_dir().join("README.md"));
    // The README's table rows: | `path` | default | description |
    let documented: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();
    for leaf in &all {
        assert!(
            documented
                .iter()
                .any(|d| leaf == d || leaf.starts_with(&format!("{d}."))),
            "value {leaf} is not in the README's table (charts/vaultkeeper/README.md)"
        );
    }
    let lines: Vec<&str> = values_text.lines().collect();
    for d in &documented {
        let path_exists = all
            .iter()
            .any(|leaf| leaf == d || leaf.starts_with(&format!("{d}.")));
        assert!(
            path_exists,
            "the README documents {d}, which values.yaml does not have"
        );
        // Find the key's line by walking its path through the indentation.
        let mut from = 0;
        let mut line_no = None;
        for (depth, part) in d.split('.').enumerate() {
            let want = format!("{}{part}:", "  ".repeat(depth));
            let found = lines[from..]
                .iter()
                .position(|l| l.starts_with(&want))
                .map(|i| i + from);
            let Some(i) = found else {
                panic!("cannot find {d} in values.yaml")
            };
            line_no = Some(i);
            from = i + 1;
        }
        let i = line_no.unwrap_or_default();
        assert!(
            i > 0 && lines[i - 1].trim_start().starts_with('#'),
            "{d} in values.yaml has no comment above it"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The CRD copies.
// ---------------------------------------------------------------------------------------

#[test]
fn crd_copies_are_identical_to_the_generated_crd() {
    for (file, crd_name) in [
        ("vaultcluster.yaml", "vaultclusters.vaultkeeper.io"),
        ("vaultpolicy.yaml", "vaultpolicies.vaultkeeper.io"),
        ("vaultrestore.yaml", "vaultrestores.vaultkeeper.io"),
    ] {
        crd_copies_match(file, crd_name);
    }
}

fn crd_copies_match(file: &str, crd_name: &str) {
    let generated = read(&workspace_root().join("crds").join(file));
    for copy in [
        chart_dir().join("crds").join(file),
        deploy_dir().join("crds").join(file),
    ] {
        assert!(
            read(&copy) == generated,
            "{} differs from crds/{file}: copy it again (cp crds/{file} {})",
            copy.display(),
            copy.strip_prefix(workspace_root())
                .unwrap_or(&copy)
                .display()
        );
    }
    // And both installs really carry it.
    let chart_crd = ok(helm_template(&[]));
    let deploy_crd = ok(kustomize_build(&deploy_dir()));
    let want = ok(install::read_yaml(
        &workspace_root().join("crds").join(file),
    ));
    for (install, objects) in [
        ("helm template", &chart_crd),
        ("kubectl kustomize", &deploy_crd),
    ] {
        let got = ok(find(objects, "CustomResourceDefinition", crd_name));
        if let Some(diff) = first_difference(got, &want, "") {
            panic!("the CRD from {install} differs from crds/{file} at {diff}");
        }
    }
}

/// The first place two JSON documents differ, comparing numbers by value (kustomize
/// writes the `1.0` of a schema minimum as `1`).
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64() != y.as_f64()).then(|| format!("{path}: {x} vs {y}"))
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    &x.get(k).cloned().unwrap_or(Value::Null),
                    &y.get(k).cloned().unwrap_or(Value::Null),
                    &format!("{path}.{k}"),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        _ => (a != b).then(|| format!("{path}: {a} vs {b}")),
    }
}

// ---------------------------------------------------------------------------------------
// RBAC: one list, two installs, least privilege.
// ---------------------------------------------------------------------------------------

#[test]
fn chart_rule_templates_are_generated_from_deploy() {
    let generated = ok(install::chart_rules_template(
        &ok(install::operator_cluster_role()),
        &ok(install::leader_election_role()),
        &ok(install::vault_server_role()),
    ));
    let path = chart_dir().join("templates/_rules.tpl");
    if std::env::var_os("VAULTKEEPER_REGENERATE").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    assert!(
        read(&path) == generated,
        "charts/vaultkeeper/templates/_rules.tpl is out of date with deploy/rbac/: run\n  VAULTKEEPER_REGENERATE=1 cargo test -p vaultkeeper-e2e --test install chart_rule_templates"
    );
}

/// The rules of the operator's two ClusterRoles in `objects`, namespaced then
/// cluster-scoped: the one list deploy/rbac/ holds.
fn operator_rules_in(objects: &[Value]) -> Vec<Value> {
    let mut all = ok(rules(ok(find(objects, "ClusterRole", "vaultkeeper"))));
    all.extend(ok(rules(ok(find(
        objects,
        "ClusterRole",
        "vaultkeeper-cluster-scope",
    )))));
    all
}

#[test]
fn chart_rbac_equals_deploy_rule_by_rule() {
    let objects = ok(helm_template(&[]));
    let chart_rules = operator_rules_in(&objects);
    let deploy = deploy_rules();
    assert_eq!(chart_rules.len(), deploy.len(), "same number of rules");
    for (i, (c, d)) in chart_rules.iter().zip(&deploy).enumerate() {
        assert_eq!(
            c, d,
            "rule {i} of the chart's ClusterRoles differs from deploy/rbac/"
        );
    }
    let leader = ok(find(&objects, "Role", "vaultkeeper-leader-election"));
    assert_eq!(
        leader["rules"],
        ok(install::leader_election_role())["rules"]
    );
    let server = ok(find(&objects, "ClusterRole", "vaultkeeper-vault-server"));
    assert_eq!(server["rules"], ok(install::vault_server_role())["rules"]);

    // And the kustomize build carries the same objects (its copy is the source).
    let mut built = ok(kustomize_build(&deploy_dir()));
    built.extend(ok(kustomize_build(&deploy_dir().join("watch"))));
    assert_eq!(operator_rules_in(&built), deploy);
    assert_eq!(
        ok(find(&built, "Role", "vaultkeeper-leader-election"))["rules"],
        leader["rules"]
    );
    assert_eq!(
        ok(find(&built, "ClusterRole", "vaultkeeper-vault-server"))["rules"],
        server["rules"]
    );
    for (k, n) in [
        ("ClusterRoleBinding", "vaultkeeper-cluster-scope"),
        ("RoleBinding", "vaultkeeper-leader-election"),
        ("RoleBinding", "vaultkeeper"),
    ] {
        let (c, d) = (ok(find(&objects, k, n)), ok(find(&built, k, n)));
        assert_eq!(c["roleRef"], d["roleRef"], "{k} {n}");
        assert_eq!(c["subjects"], d["subjects"], "{k} {n}");
        assert_eq!(namespace(c), namespace(d), "{k} {n}");
    }
}

#[test]
fn watched_namespaces_borrow_the_namespaced_rules_through_role_bindings() {
    let objects = ok(helm_template(&["--set", "watchNamespaces={team-a,team-b}"]));
    for rule in &ok(rules(ok(find(
        &objects,
        "ClusterRole",
        "vaultkeeper-cluster-scope",
    )))) {
        assert!(
            ok(install::is_cluster_scoped_rule(rule)),
            "the cluster-scope ClusterRole holds only cluster-scoped rules, not {rule}"
        );
    }
    assert!(
        of_kind(&objects, "Role")
            .iter()
            .all(|r| name(r) == "vaultkeeper-leader-election"),
        "no copies of the rules as Roles"
    );
    let bindings: Vec<&Value> = of_kind(&objects, "RoleBinding")
        .into_iter()
        .filter(|b| name(b) == "vaultkeeper")
        .collect();
    let namespaces: BTreeSet<&str> = bindings.iter().map(|b| namespace(b)).collect();
    assert_eq!(namespaces, BTreeSet::from(["team-a", "team-b"]));
    for binding in &bindings {
        assert_eq!(
            binding["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "vaultkeeper"})
        );
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "vaultkeeper", "namespace": OPERATOR_NAMESPACE}])
        );
    }
    assert!(
        find(&objects, "ClusterRoleBinding", "vaultkeeper").is_err(),
        "the namespaced rules are bound nowhere cluster-wide"
    );
    let dep = ok(find(&objects, "Deployment", "vaultkeeper"));
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["args"],
        json!([
            "run",
            "--vault-server-cluster-role=vaultkeeper-vault-server",
            "--namespace=team-a",
            "--namespace=team-b"
        ])
    );
}

/// Every permission the ClusterRoleBindings among `objects` grant cluster-wide.
fn cluster_wide_permissions(objects: &[Value]) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for binding in of_kind(objects, "ClusterRoleBinding") {
        let role = binding["roleRef"]["name"].as_str().unwrap_or_default();
        if let Ok(role) = find(objects, "ClusterRole", role) {
            out.extend(permissions(&ok(rules(role))));
        }
    }
    out
}

#[test]
fn the_default_installs_grant_no_cluster_wide_secret_exec_or_pod_write() {
    let dangerous = |p: &Permission| {
        (p.group.is_empty() && p.resource == "secrets")
            || (p.group.is_empty() && p.resource == "pods/exec")
            || (p.group.is_empty()
                && p.resource == "pods"
                && matches!(p.verb.as_str(), "update" | "patch" | "delete" | "create"))
            || (p.resource == "clusterroles" && p.verb == "bind" && p.name.is_none())
            || p.verb == "escalate"
    };
    let mut deploy = ok(kustomize_build(&deploy_dir()));
    deploy.extend(ok(kustomize_build(&deploy_dir().join("watch"))));
    for (install, objects) in [
        ("the chart's defaults", ok(helm_template(&[]))),
        ("deploy/ with deploy/watch/", deploy),
    ] {
        let granted: Vec<String> = cluster_wide_permissions(&objects)
            .into_iter()
            .filter(|p| dangerous(p))
            .map(|p| p.to_string())
            .collect();
        assert!(
            granted.is_empty(),
            "{install} grants cluster-wide: {granted:?}"
        );
        let operator_holds = permissions(&operator_rules_in(&objects));
        for verb in ["update", "patch"] {
            assert!(
                !operator_holds.contains(&Permission::new("", "pods", verb, None)),
                "{install}: the operator may {verb} pods (and so change their image)"
            );
        }
    }
    // The opt-in modes do grant them, so the check above can see them when present.
    let chart_wide = ok(helm_template(&[
        "--set",
        "clusterWide=true",
        "--set-json",
        "watchNamespaces=[]",
    ]));
    let wide = cluster_wide_permissions(&chart_wide);
    assert!(wide.contains(&Permission::new("", "secrets", "get", None)));
    assert!(wide.contains(&Permission::new("", "pods/exec", "create", None)));
    let kustomize_wide = cluster_wide_permissions(&ok(install::cluster_wide_build()));
    assert!(kustomize_wide.contains(&Permission::new("", "secrets", "get", None)));
}

#[test]
fn cluster_role_has_no_wildcards_and_exactly_the_reviewed_permissions() {
    let rendered = ok(helm_template(&[]));
    let chart_rules = operator_rules_in(&rendered);
    for rule in &chart_rules {
        for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
            let has_wildcard = rule[field]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v.as_str().is_some_and(|s| s.contains('*')));
            assert!(!has_wildcard, "wildcard in {field} of {rule}");
        }
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "no non-resource URLs: {rule}"
        );
        let verbs = rule["verbs"].as_array().cloned().unwrap_or_default();
        for forbidden in ["escalate", "impersonate", "deletecollection"] {
            assert!(!verbs.contains(&json!(forbidden)), "{forbidden} in {rule}");
        }
        if verbs.contains(&json!("bind")) {
            assert!(
                rule["resourceNames"]
                    .as_array()
                    .is_some_and(|n| !n.is_empty()),
                "bind limited by resourceNames: {rule}"
            );
        }
    }
    let granted = permissions(&chart_rules);
    let reviewed = reviewed_permissions();
    let extra: Vec<String> = granted
        .difference(&reviewed)
        .map(ToString::to_string)
        .collect();
    let missing: Vec<String> = reviewed
        .difference(&granted)
        .map(ToString::to_string)
        .collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "granted but not reviewed: {extra:?}\nreviewed but not granted: {missing:?}"
    );

    let leader = ok(find(&rendered, "Role", "vaultkeeper-leader-election"));
    assert_eq!(
        permissions(&ok(rules(leader))),
        ["get", "create", "update"]
            .iter()
            .map(|v| Permission::new("coordination.k8s.io", "leases", v, None))
            .collect(),
        "leases only, only in the release namespace"
    );
    assert!(
        !granted.iter().any(|p| p.resource == "leases"),
        "no Lease permission cluster-wide"
    );
}

// ---------------------------------------------------------------------------------------
// Kustomize base.
// ---------------------------------------------------------------------------------------

#[test]
fn kustomize_build_installs_the_operator_in_vaultkeeper_system_like_the_chart() {
    let built = ok(kustomize_build(&deploy_dir()));
    let kinds: BTreeSet<&str> = built.iter().map(kind).collect();
    let expected: BTreeSet<&str> = [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ]
    .into();
    assert_eq!(kinds, expected);
    assert_eq!(
        name(ok(find(&built, "Namespace", OPERATOR_NAMESPACE))),
        OPERATOR_NAMESPACE
    );
    for o in &built {
        if !matches!(
            kind(o),
            "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
        ) {
            assert_eq!(namespace(o), OPERATOR_NAMESPACE, "{} {}", kind(o), name(o));
        }
    }

    // The Deployment is the chart's default rendering, minus Helm's own labels.
    let chart = ok(helm_template(&[]));
    let (d, c) = (
        ok(find(&built, "Deployment", "vaultkeeper")),
        ok(find(&chart, "Deployment", "vaultkeeper")),
    );
    let (dp, cp) = (
        &d["spec"]["template"]["spec"],
        &c["spec"]["template"]["spec"],
    );
    assert_eq!(d["spec"]["replicas"], c["spec"]["replicas"]);
    assert_eq!(d["spec"]["selector"], c["spec"]["selector"]);
    for field in [
        "serviceAccountName",
        "securityContext",
        "affinity",
        "terminationGracePeriodSeconds",
    ] {
        assert_eq!(dp[field], cp[field], "pod spec {field}");
    }
    for field in [
        "image",
        "args",
        "env",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "resources",
        "securityContext",
    ] {
        assert_eq!(
            dp["containers"][0][field], cp["containers"][0][field],
            "container {field}"
        );
    }
    for (k, n) in [
        ("Service", "vaultkeeper-metrics"),
        ("PodDisruptionBudget", "vaultkeeper"),
        ("NetworkPolicy", "vaultkeeper"),
    ] {
        assert_eq!(
            ok(find(&built, k, n))["spec"],
            ok(find(&chart, k, n))["spec"],
            "{k} {n}"
        );
    }
}

#[test]
fn kustomize_overlay_moves_the_operator_and_its_bindings_to_another_namespace() {
    // The overlay docs/install.md shows, built against this base.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let overlay = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: platform-operators\nresources:\n- {}\nimages:\n- name: ghcr.io/vaultkeeper/vaultkeeper\n  newTag: 9.9.9\nreplicas:\n- name: vaultkeeper\n  count: 3\n",
        relative_to(dir.path(), &deploy_dir())
    );
    std::fs::write(dir.path().join("kustomization.yaml"), overlay)
        .unwrap_or_else(|e| panic!("{e}"));
    let built = ok(kustomize_build(dir.path()));
    assert!(
        find(&built, "Namespace", "platform-operators").is_ok(),
        "the Namespace object moves too"
    );
    for o in &built {
        if !matches!(
            kind(o),
            "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
        ) {
            assert_eq!(
                namespace(o),
                "platform-operators",
                "{} {}",
                kind(o),
                name(o)
            );
        }
        for s in o["subjects"].as_array().into_iter().flatten() {
            assert_eq!(
                s["namespace"],
                "platform-operators",
                "{} {} binds the moved ServiceAccount",
                kind(o),
                name(o)
            );
        }
    }
    let dep = ok(find(&built, "Deployment", "vaultkeeper"));
    assert_eq!(dep["spec"]["replicas"], 3);
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/vaultkeeper/vaultkeeper:9.9.9"
    );
}

#[test]
fn install_docs_carry_the_health_check_and_every_permission() {
    let docs = read(&workspace_root().join("docs/install.md"));
    let script = read(&deploy_dir().join("argocd/health.lua"));
    // The argocd-cm example embeds the script, indented under its key.
    let key = "  resource.customizations.health.vaultkeeper.io_VaultCluster: |\n";
    let start = docs
        .find(key)
        .unwrap_or_else(|| panic!("docs/install.md has no argocd-cm example"))
        + key.len();
    let block_end = docs[start..]
        .find("```")
        .map(|i| i + start)
        .unwrap_or(docs.len());
    let embedded: String = docs[start..block_end]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert!(
        embedded.trim_end() == script.trim_end(),
        "the health check in docs/install.md differs from deploy/argocd/health.lua: paste it again, indented by four spaces"
    );
    for p in permissions(&deploy_rules()) {
        let resource = p.resource.split('/').next().unwrap_or_default();
        assert!(
            docs.contains(&format!("`{resource}")),
            "docs/install.md does not explain the permission on {resource}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Escalation prevention: the operator must hold what its rendered Roles grant.
// ---------------------------------------------------------------------------------------

fn examples() -> Vec<(String, VaultCluster)> {
    let dir = workspace_root().join("examples");
    let mut found = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = read(&path);
        // A VaultRestore is applied by its own test (--test restore), not rendered.
        if text.contains("\nkind: VaultRestore") {
            continue;
        }
        for cluster in parse_manifests(&text).unwrap_or_else(|e| panic!("{stem}: {e}")) {
            found.push((stem.clone(), cluster));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        found.len() >= 6,
        "the examples/ directory has the documented examples"
    );
    found
}

/// Renders a VaultCluster into `namespace` as the operator would, as JSON objects.
fn render_into(cluster: &VaultCluster, namespace: &str, owner_uid: Option<&str>) -> Vec<Value> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let material = (cluster.spec.tls.mode == TlsMode::SelfSigned).then(|| {
        pki::issue_new(cluster, namespace, OffsetDateTime::now_utc())
            .unwrap_or_else(|e| panic!("pki: {e}"))
    });
    let mut ctx = RenderContext::new(namespace, material.as_ref());
    ctx.owner_uid = owner_uid;
    // As the operator renders: service registration bound to the pre-created ClusterRole.
    ctx.server_cluster_role = Some("vaultkeeper-vault-server");
    render(cluster, &ctx)
        .unwrap_or_else(|e| panic!("rendering {name}: {e}"))
        .into_iter()
        .map(|m| serde_json::to_value(&m.object).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn group_of(obj: &Value) -> &str {
    obj["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit_once('/'))
        .map(|(g, _)| g)
        .unwrap_or("")
}

fn plural(kind: &str) -> String {
    match kind {
        "Ingress" => "ingresses".into(),
        "NetworkPolicy" => "networkpolicies".into(),
        k => format!("{}s", k.to_ascii_lowercase()),
    }
}

#[test]
fn operator_holds_every_permission_its_rendered_objects_need() {
    let operator = deploy_rules();
    let mut kinds_seen = BTreeSet::new();
    for (example, cluster) in examples() {
        for obj in render_into(
            &cluster,
            "vault",
            Some("00000000-0000-4000-8000-000000000000"),
        ) {
            let (group, k) = (group_of(&obj), kind(&obj));
            kinds_seen.insert(k.to_owned());
            // Server-side apply, watch and prune of every rendered kind.
            for verb in CRUD {
                let p = Permission::new(group, &plural(k), verb, None);
                assert!(
                    install::grants(&operator, &p),
                    "{example}: rendering {k} {} needs {p}",
                    name(&obj)
                );
            }
            // Kubernetes lets a Role be created only by someone holding what it grants.
            if k == "Role" {
                for p in permissions(&ok(rules(&obj))) {
                    assert!(
                        install::grants(&operator, &p),
                        "{example}: Role {} grants {p}, which the operator lacks",
                        name(&obj)
                    );
                }
            }
            // And a binding only by someone allowed to `bind` the ClusterRole it names
            // (or holding all of it; the operator holds only `bind`).
            if matches!(k, "ClusterRoleBinding" | "RoleBinding")
                && obj["roleRef"]["kind"] == "ClusterRole"
            {
                let role = obj["roleRef"]["name"].as_str().unwrap_or_default();
                let p = Permission::new(
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    "bind",
                    Some(role),
                );
                assert!(
                    install::grants(&operator, &p),
                    "{example}: {k} {} binds ClusterRole {role}; the operator needs {p}",
                    name(&obj)
                );
            }
        }
    }
    for k in [
        "StatefulSet",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRoleBinding",
        "PodDisruptionBudget",
        "CronJob",
        "ServiceMonitor",
        "Certificate",
        "Ingress",
    ] {
        assert!(
            kinds_seen.contains(k),
            "no example renders a {k}, so its permissions go unchecked"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Argo CD health check.
// ---------------------------------------------------------------------------------------

/// Converts JSON into Lua values the way Argo CD hands an object to its health scripts:
/// objects and arrays become tables, numbers are Lua numbers, null is absent.
fn to_lua(lua: &mlua::Lua, v: &Value) -> mlua::Result<mlua::Value> {
    Ok(match v {
        Value::Null => mlua::Value::Nil,
        Value::Bool(b) => mlua::Value::Boolean(*b),
        Value::Number(n) => mlua::Value::Number(n.as_f64().unwrap_or_default()),
        Value::String(s) => mlua::Value::String(lua.create_string(s)?),
        Value::Array(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                t.set(i + 1, to_lua(lua, item)?)?;
            }
            mlua::Value::Table(t)
        }
        Value::Object(m) => {
            let t = lua.create_table()?;
            for (k, item) in m {
                t.set(k.as_str(), to_lua(lua, item)?)?;
            }
            mlua::Value::Table(t)
        }
    })
}

/// Runs health.lua on one object: (status, message).
fn argocd_health(script: &str, obj: &Value) -> (String, String) {
    let lua = mlua::Lua::new();
    let value = to_lua(&lua, obj).unwrap_or_else(|e| panic!("{e}"));
    lua.globals()
        .set("obj", value)
        .unwrap_or_else(|e| panic!("{e}"));
    let hs: mlua::Table = lua
        .load(script)
        .set_name("health.lua")
        .eval()
        .unwrap_or_else(|e| panic!("health.lua failed: {e}"));
    let status: String = hs
        .get("status")
        .unwrap_or_else(|e| panic!("hs.status: {e}"));
    let message: String = hs
        .get("message")
        .unwrap_or_else(|e| panic!("hs.message: {e}"));
    (status, message)
}

#[test]
fn argocd_health_check_gives_the_expected_status_for_every_case() {
    let dir = deploy_dir().join("argocd");
    let script = read(&dir.join("health.lua"));
    let cases = ok(install::read_yaml(&dir.join("health_test.yaml")));
    let cases = cases["tests"].as_array().cloned().unwrap_or_default();
    let mut covered = BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        let input = case["inputPath"].as_str().unwrap_or_default();
        let obj = ok(install::read_yaml(&dir.join(input)));
        let want = (
            case["healthStatus"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            case["healthStatus"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        let got = argocd_health(&script, &obj);
        if got != want {
            failures.push(format!("{input}: got {got:?}, want {want:?}"));
        }
        covered.insert(
            input
                .trim_start_matches("testdata/")
                .trim_end_matches(".yaml")
                .to_owned(),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for required in [
        "ready",
        "progressing",
        "degraded",
        "stale-observed-generation",
        "no-status",
        "spec-invalid",
        "blocked-keys-missing",
    ] {
        assert!(
            covered.contains(required),
            "health_test.yaml has no {required} case"
        );
    }
}

#[test]
fn argocd_health_check_never_fails_on_partial_status() {
    // What an API server may hold mid-way: odd shapes must give a status, not a Lua error.
    let script = read(&deploy_dir().join("argocd/health.lua"));
    for status in [
        json!({}),
        json!({"conditions": []}),
        json!({"conditions": [{"type": "Ready"}]}),
        json!({"observedGeneration": 1, "conditions": "not-a-list"}),
        json!({"observedGeneration": 1, "phase": "Blocked"}),
    ] {
        let obj = json!({"metadata": {"name": "vault", "generation": 1}, "status": status});
        let (s, m) = argocd_health(&script, &obj);
        assert!(
            matches!(s.as_str(), "Healthy" | "Progressing" | "Degraded"),
            "{status}: {s}"
        );
        assert!(!m.is_empty(), "{status}: empty message");
    }
    let (s, _) = argocd_health(
        &script,
        &json!({"metadata": {"name": "vault", "generation": 1}, "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    assert_eq!(s, "Healthy");
}

// ---------------------------------------------------------------------------------------
// In the simulated cluster, as the operator's ServiceAccount, with RBAC enforced.
// ---------------------------------------------------------------------------------------

/// A simulated cluster on this file's own addresses: API server and Services on
/// 127.50.`slot`.0/24, pods on 127.50.`slot + 128`.0/24.
async fn sim(slot: u8) -> SimCluster {
    let config = SimConfig {
        api_address: Ipv4Addr::new(127, 50, slot, 1),
        service_ip_start: Ipv4Addr::new(127, 50, slot, 100),
        service_ip_count: 150,
        pod_ip_start: Ipv4Addr::new(127, 50, slot + 128, 10),
        ..SimConfig::default()
    };
    SimCluster::start(config)
        .await
        .unwrap_or_else(|e| panic!("starting the simulated cluster: {e}"))
}

async fn create_namespace(sim: &SimCluster, ns: &str) {
    let admin = sim.client().unwrap_or_else(|e| panic!("{e}"));
    ok(apply_objects(
        &admin,
        &[json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})],
        "test",
    )
    .await);
}

/// SelfSubjectAccessReview as `client`: what the authorizer answers for one permission.
async fn can(client: &kube::Client, p: &Permission, ns: &str) -> bool {
    let (resource, subresource) = match p.resource.split_once('/') {
        Some((r, s)) => (r.to_owned(), Some(s.to_owned())),
        None => (p.resource.clone(), None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(p.group.clone()),
                resource: Some(resource),
                subresource,
                verb: Some(p.verb.clone()),
                name: p.name.clone(),
                namespace: (!ns.is_empty()).then(|| ns.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .unwrap_or_else(|e| panic!("SelfSubjectAccessReview for {p}: {e}"));
    answer.status.is_some_and(|s| s.allowed)
}

fn api_path(group: &str, resource: &str, ns: &str) -> String {
    let version = match group {
        "" => "api/v1".to_owned(),
        "vaultkeeper.io" => "apis/vaultkeeper.io/v1alpha1".to_owned(),
        "events.k8s.io"
        | "rbac.authorization.k8s.io"
        | "networking.k8s.io"
        | "policy"
        | "batch"
        | "apps"
        | "apiextensions.k8s.io"
        | "coordination.k8s.io"
        | "cert-manager.io"
        | "monitoring.coreos.com" => format!("apis/{group}/v1"),
        other => panic!("no version known for API group {other}"),
    };
    if ns.is_empty() {
        format!("/{version}/{resource}")
    } else {
        format!("/{version}/namespaces/{ns}/{resource}")
    }
}

/// Sends the request a verb maps to and returns the HTTP status. Authorization comes
/// before everything else the API server checks, so anything but 403 means allowed; the
/// body and object need not exist.
async fn status_of(client: &kube::Client, p: &Permission, ns: &str) -> Option<u16> {
    let (resource, sub) = match p.resource.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (p.resource.as_str(), None),
    };
    let collection = api_path(
        &p.group,
        resource,
        if CLUSTER_SCOPED_RESOURCES.contains(&resource) {
            ""
        } else {
            ns
        },
    );
    let object = format!(
        "{collection}/{}",
        p.name.as_deref().unwrap_or("no-such-object")
    );
    let object = match sub {
        Some(s) => format!("{object}/{s}"),
        None => object,
    };
    let (method, uri, content_type) = match (p.verb.as_str(), sub) {
        // These verbs have no endpoint of their own (the authorizer checks them while
        // serving other requests), and `finalizers` is checked by admission, not served.
        ("bind" | "escalate" | "impersonate", _) | (_, Some("finalizers")) => return None,
        ("get", Some("exec")) => (
            http::Method::GET,
            format!("{object}?command=true&stdout=true"),
            None,
        ),
        ("create", Some("exec")) => (
            http::Method::POST,
            format!("{object}?command=true&stdout=true"),
            None,
        ),
        ("get", _) => (http::Method::GET, object, None),
        ("list", _) => (http::Method::GET, collection, None),
        ("watch", _) => (
            http::Method::GET,
            format!("{collection}?watch=true&timeoutSeconds=1"),
            None,
        ),
        ("create", _) => (http::Method::POST, collection, Some("application/json")),
        ("update", _) => (http::Method::PUT, object, Some("application/json")),
        ("patch", _) => (
            http::Method::PATCH,
            object,
            Some("application/merge-patch+json"),
        ),
        ("delete", _) => (http::Method::DELETE, object, None),
        ("deletecollection", _) => (http::Method::DELETE, collection, None),
        (verb, _) => panic!("no request for verb {verb}"),
    };
    let mut req = http::Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        req = req.header(http::header::CONTENT_TYPE, ct);
    }
    let body = if content_type.is_some() {
        b"{}".to_vec()
    } else {
        Vec::new()
    };
    let req = req
        .body(kube::client::Body::from(body))
        .unwrap_or_else(|e| panic!("{e}"));
    let resp = client
        .send(req)
        .await
        .unwrap_or_else(|e| panic!("{p}: {e}"));
    Some(resp.status().as_u16())
}

const CLUSTER_SCOPED_RESOURCES: &[&str] = &[
    "clusterrolebindings",
    "clusterroles",
    "customresourcedefinitions",
    "namespaces",
    "nodes",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_account_is_granted_every_permission_of_every_rule() {
    let sim = sim(1).await;
    let admin = sim.client().unwrap_or_else(|e| panic!("{e}"));
    ok(apply_objects(&admin, &integration_crds(), "test").await);
    let operator = ok(install::install_operator_rbac(&sim).await);
    create_namespace(&sim, "vault").await;

    let mut failures = Vec::new();
    for p in permissions(&deploy_rules()) {
        let ns = if CLUSTER_SCOPED_RESOURCES
            .contains(&p.resource.split('/').next().unwrap_or_default())
        {
            ""
        } else {
            "vault"
        };
        if !can(&operator, &p, ns).await {
            failures.push(format!("the authorizer refuses {p}"));
        }
        if let Some(code) = status_of(&operator, &p, ns).await
            && matches!(code, 401 | 403)
        {
            failures.push(format!("{p} answered {code}"));
        }
    }
    // The leader-election Lease, in the operator's own namespace.
    for verb in ["get", "create", "update"] {
        let p = Permission::new("coordination.k8s.io", "leases", verb, None);
        if !can(&operator, &p, OPERATOR_NAMESPACE).await {
            failures.push(format!(
                "the authorizer refuses {p} in {OPERATOR_NAMESPACE}"
            ));
        }
        if let Some(code) = status_of(&operator, &p, OPERATOR_NAMESPACE).await
            && code == 403
        {
            failures.push(format!("{p} in {OPERATOR_NAMESPACE} answered 403"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_account_applies_watches_and_prunes_everything_rendered_for_every_example() {
    let sim = sim(2).await;
    let admin = sim.client().unwrap_or_else(|e| panic!("{e}"));
    ok(apply_objects(&admin, &integration_crds(), "test").await);
    let operator = ok(install::install_operator_rbac(&sim).await);

    for (i, (example, cluster)) in examples().into_iter().enumerate() {
        let ns = format!("ex-{i}-{example}");
        create_namespace(&sim, &ns).await;
        // The user applies the VaultCluster; the operator does everything else.
        let mut cr = serde_json::to_value(&cluster).unwrap_or_else(|e| panic!("{e}"));
        cr["metadata"]["namespace"] = json!(ns);
        let stored = ok(apply_one(&admin, &cr, "kubectl").await);
        let uid = stored.metadata.uid.clone().unwrap_or_default();
        let cr_name = stored.metadata.name.clone().unwrap_or_default();
        let rendered = render_into(&cluster, &ns, Some(&uid));

        // Apply (server-side, one field manager) and re-apply, as every pass does.
        for _ in 0..2 {
            apply_objects(&operator, &rendered, OPERATOR_MANAGER)
                .await
                .unwrap_or_else(|e| {
                    panic!("{example}: the operator could not apply what it rendered: {e}")
                });
        }

        // The finalizer, then status, as the reconcile writes them.
        let vc = api_for(
            &operator,
            "vaultkeeper.io",
            "v1alpha1",
            "VaultCluster",
            "vaultclusters",
            &ns,
        );
        let finalizer = json!({"metadata": {"finalizers": ["vaultkeeper.io/cleanup"]}});
        vc.patch(
            &cr_name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&finalizer),
        )
        .await
        .unwrap_or_else(|e| panic!("{example}: adding the finalizer: {e}"));
        let status = json!({"status": {"phase": "Pending", "observedGeneration": stored.metadata.generation}});
        vc.patch_status(
            &cr_name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .unwrap_or_else(|e| panic!("{example}: writing status: {e}"));

        // What it reads and watches in the namespace.
        for (group, version, kind, plural) in [
            ("", "v1", "Pod", "pods"),
            ("batch", "v1", "Job", "jobs"),
            ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
            ("apps", "v1", "StatefulSet", "statefulsets"),
            ("", "v1", "Secret", "secrets"),
        ] {
            let api = api_for(&operator, group, version, kind, plural, &ns);
            api.list(&Default::default())
                .await
                .unwrap_or_else(|e| panic!("{example}: listing {plural}: {e}"));
        }

        // An Event about the VaultCluster, as kube's recorder writes it.
        let event = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": format!("{cr_name}.initialized"), "namespace": ns},
            "eventTime": "2026-11-20T10:00:00.000000Z", "reportingController": "vaultkeeper.io/operator",
            "reportingInstance": "vaultkeeper-0", "action": "Initialize", "reason": "Initialized", "type": "Normal",
            "note": "Vault initialized on vault-0; keys stored in the keys Secret",
            "regarding": {"apiVersion": "vaultkeeper.io/v1alpha1", "kind": "VaultCluster", "name": cr_name, "namespace": ns, "uid": uid}
        });
        let events = api_for(&operator, "events.k8s.io", "v1", "Event", "events", &ns);
        let event: kube::api::DynamicObject =
            serde_json::from_value(event).unwrap_or_else(|e| panic!("{e}"));
        events
            .create(&PostParams::default(), &event)
            .await
            .unwrap_or_else(|e| panic!("{example}: recording an Event: {e}"));

        // Prune: delete everything it rendered (deletionPolicy and spec changes do this).
        for obj in &rendered {
            let (group, version) = obj["apiVersion"]
                .as_str()
                .and_then(|v| v.rsplit_once('/'))
                .unwrap_or(("", "v1"));
            let k = kind(obj);
            let scope_ns = if k == "ClusterRoleBinding" {
                ""
            } else {
                ns.as_str()
            };
            let api = api_for(&operator, group, version, k, &plural(k), scope_ns);
            api.delete(name(obj), &Default::default())
                .await
                .unwrap_or_else(|e| panic!("{example}: pruning {k} {}: {e}", name(obj)));
        }
    }

    // Leader election in its own namespace: create, read, renew.
    let leases = api_for(
        &operator,
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        OPERATOR_NAMESPACE,
    );
    let lease: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "vaultkeeper", "namespace": OPERATOR_NAMESPACE},
        "spec": {"holderIdentity": "vaultkeeper-0", "leaseDurationSeconds": 15}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    leases
        .create(&PostParams::default(), &lease)
        .await
        .unwrap_or_else(|e| panic!("creating the Lease: {e}"));
    let mut held = leases
        .get("vaultkeeper")
        .await
        .unwrap_or_else(|e| panic!("reading the Lease: {e}"));
    held.data["spec"]["holderIdentity"] = json!("vaultkeeper-1");
    leases
        .replace("vaultkeeper", &PostParams::default(), &held)
        .await
        .unwrap_or_else(|e| panic!("taking over the Lease: {e}"));

    // It notices integrations appearing.
    let crds = api_for(
        &operator,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "",
    );
    let names: Vec<String> = crds
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("listing CRDs: {e}"))
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(
        names.contains(&"servicemonitors.monitoring.coreos.com".to_owned()),
        "{names:?}"
    );
    sim.shutdown().await;
}

fn api_for(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: &str,
) -> Api<kube::api::DynamicObject> {
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
    if ns.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), ns, &resource)
    }
}

/// Expects the API server to refuse with 403.
async fn assert_forbidden(client: &kube::Client, what: &str, p: &Permission, ns: &str) {
    assert!(!can(client, p, ns).await, "the authorizer allows {what}");
    if let Some(code) = status_of(client, p, ns).await {
        assert_eq!(code, 403, "{what} answered {code}, not 403");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_account_is_refused_everything_outside_its_rules() {
    let sim = sim(3).await;
    let operator = ok(install::install_operator_rbac(&sim).await);
    create_namespace(&sim, "vault").await;
    let refused: &[(&str, Permission, &str)] = &[
        (
            "creating pods (it renders a StatefulSet; the controller creates pods)",
            Permission::new("", "pods", "create", None),
            "vault",
        ),
        (
            "deleting the VaultCluster CRD",
            Permission::new(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "delete",
                Some("vaultclusters.vaultkeeper.io"),
            ),
            "",
        ),
        (
            "updating a CRD",
            Permission::new(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "update",
                Some("vaultclusters.vaultkeeper.io"),
            ),
            "",
        ),
        (
            "creating VaultClusters (users do that)",
            Permission::new("vaultkeeper.io", "vaultclusters", "create", None),
            "vault",
        ),
        (
            "deleting VaultClusters",
            Permission::new("vaultkeeper.io", "vaultclusters", "delete", None),
            "vault",
        ),
        (
            "creating VaultPolicies (teams do that)",
            Permission::new("vaultkeeper.io", "vaultpolicies", "create", None),
            "vault",
        ),
        (
            "deleting VaultPolicies",
            Permission::new("vaultkeeper.io", "vaultpolicies", "delete", None),
            "vault",
        ),
        (
            "creating VaultRestores (people do that)",
            Permission::new("vaultkeeper.io", "vaultrestores", "create", None),
            "vault",
        ),
        (
            "changing a VaultRestore's spec",
            Permission::new("vaultkeeper.io", "vaultrestores", "patch", None),
            "vault",
        ),
        (
            "creating Deployments",
            Permission::new("apps", "deployments", "create", None),
            "vault",
        ),
        (
            "deleting Jobs (their CronJobs and owners do that)",
            Permission::new("batch", "jobs", "delete", None),
            "vault",
        ),
        (
            "deleting a collection of Secrets",
            Permission::new("", "secrets", "deletecollection", None),
            "vault",
        ),
        (
            "minting ServiceAccount tokens",
            Permission::new("", "serviceaccounts/token", "create", Some("default")),
            "vault",
        ),
        (
            "reading nodes",
            Permission::new("", "nodes", "list", None),
            "",
        ),
        (
            "changing namespaces",
            Permission::new("", "namespaces", "patch", Some("vault")),
            "",
        ),
        (
            "creating ClusterRoles",
            Permission::new("rbac.authorization.k8s.io", "clusterroles", "create", None),
            "",
        ),
        (
            "binding cluster-admin",
            Permission::new(
                "rbac.authorization.k8s.io",
                "clusterroles",
                "bind",
                Some("cluster-admin"),
            ),
            "",
        ),
        (
            "escalating through a ClusterRole",
            Permission::new(
                "rbac.authorization.k8s.io",
                "clusterroles",
                "escalate",
                Some("system:auth-delegator"),
            ),
            "",
        ),
        (
            "escalating through a Role",
            Permission::new("rbac.authorization.k8s.io", "roles", "escalate", None),
            "vault",
        ),
        (
            "binding any Role it does not hold",
            Permission::new("rbac.authorization.k8s.io", "roles", "bind", None),
            "vault",
        ),
        (
            "impersonating users",
            Permission::new("", "users", "impersonate", Some("admin")),
            "",
        ),
        (
            "taking Leases outside its namespace",
            Permission::new("coordination.k8s.io", "leases", "create", None),
            "vault",
        ),
        (
            "deleting its own Lease",
            Permission::new(
                "coordination.k8s.io",
                "leases",
                "delete",
                Some("vaultkeeper"),
            ),
            OPERATOR_NAMESPACE,
        ),
        (
            "evicting pods",
            Permission::new("", "pods/eviction", "create", Some("vault-0")),
            "vault",
        ),
        (
            "attaching to pods",
            Permission::new("", "pods/attach", "create", Some("vault-0")),
            "vault",
        ),
        (
            "port-forwarding to pods",
            Permission::new("", "pods/portforward", "create", Some("vault-0")),
            "vault",
        ),
        (
            "creating PersistentVolumeClaims",
            Permission::new("", "persistentvolumeclaims", "create", None),
            "vault",
        ),
        (
            "changing PersistentVolumes",
            Permission::new("", "persistentvolumes", "delete", Some("pv-1")),
            "",
        ),
        (
            "changing Events it did not write",
            Permission::new("", "events", "delete", Some("x")),
            "vault",
        ),
        (
            "creating Issuers",
            Permission::new("cert-manager.io", "issuers", "create", None),
            "vault",
        ),
    ];
    for (what, p, ns) in refused {
        if !can(&operator, p, ns).await {
            // Requests for resources the simulated cluster does not serve stop at 404
            // before authorization, so only check the HTTP answer for served ones.
            if matches!(
                p.resource.as_str(),
                "pods"
                    | "customresourcedefinitions"
                    | "vaultclusters"
                    | "vaultpolicies"
                    | "vaultrestores"
                    | "deployments"
                    | "jobs"
                    | "secrets"
                    | "nodes"
                    | "namespaces"
                    | "clusterroles"
                    | "leases"
                    | "persistentvolumeclaims"
            ) {
                assert_forbidden(&operator, what, p, ns).await;
            }
            continue;
        }
        panic!("the operator may {what} ({p}), which it must not");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_namespace_install_confines_the_operator_to_the_listed_namespaces() {
    let sim = sim(4).await;
    let operator = ok(install::install_chart_rbac(
        &sim,
        &["--set", "watchNamespaces={team-a}"],
        &["team-a", "team-b"],
    )
    .await);
    let secrets = |verb: &str| Permission::new("", "secrets", verb, None);
    assert!(
        can(&operator, &secrets("list"), "team-a").await,
        "secrets in a watched namespace"
    );
    assert_eq!(
        status_of(&operator, &secrets("list"), "team-a").await,
        Some(200)
    );
    for (ns, what) in [
        ("team-b", "an unlisted namespace"),
        ("kube-system", "kube-system"),
        ("", "all namespaces"),
    ] {
        assert!(
            !can(&operator, &secrets("list"), ns).await,
            "listing secrets in {what} is refused"
        );
        assert!(
            !can(&operator, &secrets("get"), ns).await,
            "reading secrets in {what} is refused"
        );
        if !ns.is_empty() {
            assert_eq!(
                status_of(&operator, &secrets("list"), ns).await,
                Some(403),
                "listing secrets in {what}"
            );
        }
    }
    assert!(
        !can(
            &operator,
            &Permission::new("", "pods/exec", "create", Some("vault-0")),
            "team-b"
        )
        .await
    );
    assert!(
        !can(
            &operator,
            &Permission::new("vaultkeeper.io", "vaultclusters", "watch", None),
            ""
        )
        .await,
        "no cluster-wide watch"
    );

    // What stays cluster-wide still works: the auth-delegator binding, CRD discovery.
    assert!(
        can(
            &operator,
            &Permission::new(
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                "create",
                None
            ),
            ""
        )
        .await
    );
    assert!(
        can(
            &operator,
            &Permission::new(
                "rbac.authorization.k8s.io",
                "clusterroles",
                "bind",
                Some("system:auth-delegator")
            ),
            ""
        )
        .await
    );
    assert!(
        can(
            &operator,
            &Permission::new(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "watch",
                None
            ),
            ""
        )
        .await
    );
    assert!(
        can(
            &operator,
            &Permission::new(
                "coordination.k8s.io",
                "leases",
                "update",
                Some("vaultkeeper")
            ),
            OPERATOR_NAMESPACE
        )
        .await
    );

    // And a whole cluster's objects apply in the watched namespace.
    let (_, cluster) = examples()
        .into_iter()
        .find(|(n, _)| n == "ha-raft")
        .unwrap_or_else(|| panic!("examples/ha-raft.yaml"));
    let admin = sim.client().unwrap_or_else(|e| panic!("{e}"));
    ok(apply_objects(&admin, &integration_crds(), "test").await);
    let mut cr = serde_json::to_value(&cluster).unwrap_or_else(|e| panic!("{e}"));
    cr["metadata"]["namespace"] = json!("team-a");
    let stored = ok(apply_one(&admin, &cr, "kubectl").await);
    let rendered = render_into(&cluster, "team-a", stored.metadata.uid.as_deref());
    apply_objects(&operator, &rendered, OPERATOR_MANAGER)
        .await
        .unwrap_or_else(|e| panic!("applying ha-raft in a watched namespace: {e}"));
    let in_team_b = render_into(&cluster, "team-b", None);
    let refused = apply_objects(&operator, &in_team_b, OPERATOR_MANAGER).await;
    assert!(
        matches!(&refused, Err(InstallError::Apply { source, .. }) if matches!(source.as_ref(), kube::Error::Api(s) if s.code == 403)),
        "applying in an unwatched namespace is refused with 403: {refused:?}"
    );
    sim.shutdown().await;
}
