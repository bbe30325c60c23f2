//! Installing the operator the way users do, for tests: render the Helm chart and the
//! kustomize base with the real `helm` and `kubectl`, read the one list of the operator's
//! permissions (`deploy/rbac/clusterrole.yaml`), generate the chart's rule templates from
//! it, and apply the manifests into a [`SimCluster`] so a test can act as the operator's
//! ServiceAccount with RBAC enforced.
//!
//! Tools are found through an environment variable (`VAULTKEEPER_HELM`,
//! `VAULTKEEPER_KUBECTL`) or else where `scripts/install-tools.sh` puts them; a missing
//! tool is an error naming that script, never a skipped test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use vaultkeeper_sim::{SimCluster, SimError};

/// Namespace the kustomize base installs the operator into.
pub const OPERATOR_NAMESPACE: &str = "vaultkeeper-system";
/// ServiceAccount the operator runs as (kustomize base, and the chart released as
/// `vaultkeeper`).
pub const OPERATOR_SERVICE_ACCOUNT: &str = "vaultkeeper";
/// Release name the tests install the chart under, so its object names match `deploy/`.
pub const RELEASE_NAME: &str = "vaultkeeper";
/// Field manager for what the tests apply as an administrator.
pub const INSTALLER: &str = "vaultkeeper-install-test";

/// Resources that exist only at cluster scope among those the operator's rules name.
/// The chart generator keeps rules on these in the ClusterRole in per-namespace mode.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("", "namespaces"),
    ("", "nodes"),
    ("", "persistentvolumes"),
];

/// Why installing or rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A tool the tests need is not installed.
    #[error(
        "{tool} not found at {}: run scripts/install-tools.sh, or point {env} at it",
        path.display()
    )]
    ToolMissing {
        /// The tool (`helm`, `kubectl`).
        tool: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The variable that overrides the location.
        env: &'static str,
    },
    /// A tool ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line (never holds a secret: these are render and lint commands).
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// YAML that does not parse.
    #[error("{what} is not valid YAML: {detail}")]
    Yaml {
        /// What was being parsed.
        what: String,
        /// The parser's message.
        detail: String,
    },
    /// A manifest that lacks what the installer needs (apiVersion, kind, name, rules).
    #[error("{0}")]
    Manifest(String),
    /// The API server refused an object.
    #[error("applying {kind} {name}: {source}")]
    Apply {
        /// Kind of the object.
        kind: String,
        /// Namespace/name of the object.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// The simulated cluster failed.
    #[error("simulated cluster: {0}")]
    Sim(#[from] SimError),
}

/// The workspace root (the directory holding `charts/`, `deploy/` and `crds/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The Helm chart's directory.
pub fn chart_dir() -> PathBuf {
    workspace_root().join("charts/vaultkeeper")
}

/// The kustomize base's directory.
pub fn deploy_dir() -> PathBuf {
    workspace_root().join("deploy")
}

fn tool(tool: &'static str, env: &'static str, default: PathBuf) -> Result<PathBuf, InstallError> {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or(default);
    if path.is_file() {
        Ok(path)
    } else {
        Err(InstallError::ToolMissing { tool, path, env })
    }
}

/// Helm 3: `VAULTKEEPER_HELM`, else `.tools/bin/helm`.
pub fn helm() -> Result<PathBuf, InstallError> {
    tool(
        "helm",
        "VAULTKEEPER_HELM",
        workspace_root().join(".tools/bin/helm"),
    )
}

/// kubectl (for `kubectl kustomize`): `VAULTKEEPER_KUBECTL`, else `.tools/bin/kubectl`,
/// else `/usr/bin/kubectl`.
pub fn kubectl() -> Result<PathBuf, InstallError> {
    let installed = workspace_root().join(".tools/bin/kubectl");
    let default = if installed.is_file() {
        installed
    } else {
        PathBuf::from("/usr/bin/kubectl")
    };
    tool("kubectl", "VAULTKEEPER_KUBECTL", default)
}

/// Runs a tool and returns its stdout; a non-zero exit is an error carrying stderr.
pub fn run(program: &Path, args: &[&str]) -> Result<String, InstallError> {
    let command = format!("{} {}", program.display(), args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| InstallError::Io {
            path: program.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        return Err(InstallError::Command {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Parses a multi-document YAML stream, dropping empty documents.
pub fn parse_yaml_stream(what: &str, text: &str) -> Result<Vec<Value>, InstallError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| InstallError::Yaml {
        what: what.to_owned(),
        detail: e.to_string(),
    })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Reads one YAML file holding one object.
pub fn read_yaml(path: &Path) -> Result<Value, InstallError> {
    let text = std::fs::read_to_string(path).map_err(|source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut docs = parse_yaml_stream(&path.display().to_string(), &text)?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(InstallError::Manifest(format!(
            "{}: expected one object, found {n}",
            path.display()
        ))),
    }
}

/// `kubectl kustomize <dir>`, parsed.
pub fn kustomize_build(dir: &Path) -> Result<Vec<Value>, InstallError> {
    let dir_arg = dir.display().to_string();
    let out = run(&kubectl()?, &["kustomize", &dir_arg])?;
    parse_yaml_stream(&format!("kubectl kustomize {dir_arg}"), &out)
}

/// `helm template vaultkeeper charts/vaultkeeper --namespace vaultkeeper-system` with
/// extra arguments (`--set`, `-f`), parsed. CRDs from `crds/` are included.
pub fn helm_template(extra: &[&str]) -> Result<Vec<Value>, InstallError> {
    let chart = chart_dir().display().to_string();
    let mut args = vec![
        "template",
        RELEASE_NAME,
        chart.as_str(),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--include-crds",
        // The oldest Kubernetes the chart supports (Chart.yaml kubeVersion).
        "--kube-version",
        "1.33.0",
    ];
    args.extend_from_slice(extra);
    let out = run(&helm()?, &args)?;
    parse_yaml_stream("helm template", &out)
}

/// `helm lint --strict charts/vaultkeeper` with extra arguments; returns its report.
pub fn helm_lint(extra: &[&str]) -> Result<String, InstallError> {
    let chart = chart_dir().display().to_string();
    let mut args = vec![
        "lint",
        "--strict",
        chart.as_str(),
        "--kube-version",
        "1.33.0",
    ];
    args.extend_from_slice(extra);
    run(&helm()?, &args)
}

/// `kind` of a manifest ("" when absent).
pub fn kind(obj: &Value) -> &str {
    obj["kind"].as_str().unwrap_or_default()
}

/// `metadata.name` of a manifest ("" when absent).
pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.namespace` of a manifest ("" when absent).
pub fn namespace(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or_default()
}

/// The objects of `kind` in a stream.
pub fn of_kind<'a>(objects: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| kind(o) == wanted).collect()
}

/// The one object of `kind` named `name`, or an error saying what is there instead.
pub fn find<'a>(
    objects: &'a [Value],
    wanted: &str,
    wanted_name: &str,
) -> Result<&'a Value, InstallError> {
    objects
        .iter()
        .find(|o| kind(o) == wanted && name(o) == wanted_name)
        .ok_or_else(|| {
            let present: Vec<String> = objects
                .iter()
                .map(|o| format!("{} {}", kind(o), name(o)))
                .collect();
            InstallError::Manifest(format!(
                "no {wanted} {wanted_name:?} among: {}",
                present.join(", ")
            ))
        })
}

/// Every rule the operator holds, as one ClusterRole: the rules of the `vaultkeeper`
/// ClusterRole (namespaced resources, lent per watched namespace) followed by those of
/// `vaultkeeper-cluster-scope` (cluster-scoped resources). Together they are the one list
/// of its permissions the chart's rules are generated from.
pub fn operator_cluster_role() -> Result<Value, InstallError> {
    let mut all = rules(&operator_namespaced_role()?)?;
    all.extend(rules(&operator_cluster_scope_role()?)?);
    Ok(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "vaultkeeper"},
        "rules": all,
    }))
}

/// `deploy/rbac/clusterrole.yaml`: the operator's rules on namespaced resources.
pub fn operator_namespaced_role() -> Result<Value, InstallError> {
    read_yaml(&deploy_dir().join("rbac/clusterrole.yaml"))
}

/// `deploy/rbac/cluster-scope-clusterrole.yaml`: the operator's cluster-scoped rules.
pub fn operator_cluster_scope_role() -> Result<Value, InstallError> {
    read_yaml(&deploy_dir().join("rbac/cluster-scope-clusterrole.yaml"))
}

/// `deploy/rbac/vault-server-clusterrole.yaml`: Vault's service-registration rights, which
/// the operator binds but does not hold.
pub fn vault_server_role() -> Result<Value, InstallError> {
    read_yaml(&deploy_dir().join("rbac/vault-server-clusterrole.yaml"))
}

/// `to` as a path relative to the directory `from` (kustomize refuses absolute paths).
pub fn relative_to(from: &Path, to: &Path) -> String {
    let up = from
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count();
    let down = to.strip_prefix("/").unwrap_or(to);
    format!("{}{}", "../".repeat(up), down.display())
}

/// `kubectl kustomize` of an overlay of `deploy/` with the cluster-wide component
/// (`deploy/components/cluster-wide`), the overlay docs/install.md shows.
pub fn cluster_wide_build() -> Result<Vec<Value>, InstallError> {
    let dir = std::env::temp_dir().join(format!(
        "vaultkeeper-cluster-wide-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let failed = |e: std::io::Error| InstallError::Manifest(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let overlay = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- {}\ncomponents:\n- {}\n",
        relative_to(&dir, &deploy_dir()),
        relative_to(&dir, &deploy_dir().join("components/cluster-wide")),
    );
    std::fs::write(dir.join("kustomization.yaml"), overlay).map_err(failed)?;
    let built = kustomize_build(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    built
}

/// The operator's leader-election Role as committed.
pub fn leader_election_role() -> Result<Value, InstallError> {
    read_yaml(&deploy_dir().join("rbac/leader-election-role.yaml"))
}

/// `rules` of a Role or ClusterRole.
pub fn rules(role: &Value) -> Result<Vec<Value>, InstallError> {
    role["rules"].as_array().cloned().ok_or_else(|| {
        InstallError::Manifest(format!("{} {} has no rules", kind(role), name(role)))
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// One permission a rule grants: a verb on a resource (`pods/exec` for subresources) of
/// an API group, optionally limited to one object name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// API group ("" for core).
    pub group: String,
    /// Resource, with `/subresource` when it is one.
    pub resource: String,
    /// Verb.
    pub verb: String,
    /// Object name the permission is limited to (`resourceNames`), if any.
    pub name: Option<String>,
}

impl Permission {
    /// A permission; `name` limits it to one object.
    pub fn new(group: &str, resource: &str, verb: &str, name: Option<&str>) -> Self {
        Permission {
            group: group.to_owned(),
            resource: resource.to_owned(),
            verb: verb.to_owned(),
            name: name.map(str::to_owned),
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {}.{}", self.verb, self.resource, group)?;
        if let Some(n) = &self.name {
            write!(f, " named {n}")?;
        }
        Ok(())
    }
}

/// Every permission a list of rules grants, one entry per group × resource × verb ×
/// name. Wildcards are kept as the literal `*` so a caller can refuse them.
pub fn permissions(rules: &[Value]) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for rule in rules {
        let names = strings(&rule["resourceNames"]);
        let names: Vec<Option<&str>> = if names.is_empty() {
            vec![None]
        } else {
            names.iter().map(|n| Some(n.as_str())).collect()
        };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    for n in &names {
                        out.insert(Permission::new(&group, &resource, &verb, *n));
                    }
                }
            }
        }
    }
    out
}

/// Whether `rules` grant `wanted` the way the RBAC authorizer decides it: a rule without
/// `resourceNames` grants the verb on every object; one with them only on those.
pub fn grants(rules: &[Value], wanted: &Permission) -> bool {
    let any = |v: &[String], x: &str| v.iter().any(|s| s == "*" || s == x);
    rules.iter().any(|rule| {
        let names = strings(&rule["resourceNames"]);
        any(&strings(&rule["apiGroups"]), &wanted.group)
            && any(&strings(&rule["resources"]), &wanted.resource)
            && any(&strings(&rule["verbs"]), &wanted.verb)
            && (names.is_empty() || wanted.name.as_ref().is_some_and(|n| names.contains(n)))
    })
}

/// Whether every resource a rule names is cluster-scoped; an error when it mixes both,
/// since such a rule cannot be split into a Role and a ClusterRole.
pub fn is_cluster_scoped_rule(rule: &Value) -> Result<bool, InstallError> {
    let mut scopes = BTreeSet::new();
    for group in strings(&rule["apiGroups"]) {
        for resource in strings(&rule["resources"]) {
            let base = resource.split('/').next().unwrap_or_default().to_owned();
            scopes.insert(
                CLUSTER_SCOPED
                    .iter()
                    .any(|(g, r)| *g == group && *r == base),
            );
        }
    }
    match (scopes.contains(&true), scopes.contains(&false)) {
        (true, false) => Ok(true),
        (false, _) => Ok(false),
        (true, true) => Err(InstallError::Manifest(format!(
            "rule {rule} mixes cluster-scoped and namespaced resources: split it in deploy/rbac/clusterrole.yaml"
        ))),
    }
}

fn flow(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn rule_yaml(rule: &Value) -> String {
    let mut out = format!(
        "- apiGroups: {}\n  resources: {}\n  verbs: {}\n",
        flow(&strings(&rule["apiGroups"])),
        flow(&strings(&rule["resources"])),
        flow(&strings(&rule["verbs"]))
    );
    let names = strings(&rule["resourceNames"]);
    if !names.is_empty() {
        out.push_str(&format!("  resourceNames: {}\n", flow(&names)));
    }
    out
}

fn define(name: &str, rules: &[&Value]) -> String {
    let body: String = rules.iter().map(|r| rule_yaml(r)).collect();
    format!(
        "{{{{- define \"{name}\" -}}}}\n{}\n{{{{- end -}}}}\n",
        body.trim_end()
    )
}

/// The chart's `templates/_rules.tpl`, generated from the operator's ClusterRole and
/// leader-election Role: `vaultkeeper.namespacedRules` (the rules up to the first
/// cluster-scoped one), `vaultkeeper.clusterRules` (the rest, which must all be
/// cluster-scoped) and `vaultkeeper.leaderElectionRules`.
pub fn chart_rules_template(
    cluster_role: &Value,
    leader_role: &Value,
    server_role: &Value,
) -> Result<String, InstallError> {
    let all = rules(cluster_role)?;
    let mut namespaced = Vec::new();
    let mut cluster = Vec::new();
    for rule in &all {
        if is_cluster_scoped_rule(rule)? {
            cluster.push(rule);
        } else if cluster.is_empty() {
            namespaced.push(rule);
        } else {
            return Err(InstallError::Manifest(format!(
                "rule {rule} on namespaced resources follows a cluster-scoped rule: keep the cluster-scoped rules at the end of deploy/rbac/clusterrole.yaml"
            )));
        }
    }
    let leader = rules(leader_role)?;
    let leader: Vec<&Value> = leader.iter().collect();
    let server = rules(server_role)?;
    let server: Vec<&Value> = server.iter().collect();
    // The chart names the service-registration ClusterRole after its release.
    let cluster_rules = define("vaultkeeper.clusterRules", &cluster).replace(
        "\"vaultkeeper-vault-server\"",
        "\"{{ include \"vaultkeeper.fullname\" . }}-vault-server\"",
    );
    Ok(format!(
        "{{{{/*\nGenerated from deploy/rbac/clusterrole.yaml, cluster-scope-clusterrole.yaml,\nvault-server-clusterrole.yaml and leader-election-role.yaml by tests/tests/install.rs;\ndo not edit. Change those files, then run\n  VAULTKEEPER_REGENERATE=1 cargo test -p vaultkeeper-e2e --test install\nWhy each rule exists: the comments in those files and docs/install.md.\n*/}}}}\n\n{{{{/* Rules on namespaced resources: lent per watched namespace, or everywhere with clusterWide. */}}}}\n{}\n{{{{/* Rules on cluster-scoped resources: always bound cluster-wide. */}}}}\n{}\n{{{{/* Vault's service registration: bound by the operator, not held by it. */}}}}\n{}\n{{{{/* Leader election, in the release namespace only. */}}}}\n{}",
        define("vaultkeeper.namespacedRules", &namespaced),
        cluster_rules,
        define("vaultkeeper.vaultServerRules", &server),
        define("vaultkeeper.leaderElectionRules", &leader),
    ))
}

/// Order in which objects are applied: namespaces and CRDs before what lives in them,
/// identities and their permissions before the workloads.
fn apply_rank(obj: &Value) -> u8 {
    match kind(obj) {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" => 2,
        "ClusterRole" | "Role" => 3,
        "ClusterRoleBinding" | "RoleBinding" => 4,
        _ => 5,
    }
}

/// Applies objects with server-side apply (forced, under `field_manager`) through
/// `client`, in dependency order. Kinds are resolved by discovery, so CRDs applied
/// earlier in the same call are usable by later objects.
pub async fn apply_objects(
    client: &kube::Client,
    objects: &[Value],
    field_manager: &str,
) -> Result<(), InstallError> {
    let mut ordered: Vec<&Value> = objects.iter().collect();
    ordered.sort_by_key(|o| apply_rank(o));
    for obj in ordered {
        apply_one(client, obj, field_manager).await?;
    }
    Ok(())
}

/// Applies one object with server-side apply and returns what the server stored.
pub async fn apply_one(
    client: &kube::Client,
    obj: &Value,
    field_manager: &str,
) -> Result<DynamicObject, InstallError> {
    let api_version = obj["apiVersion"].as_str().ok_or_else(|| {
        InstallError::Manifest(format!("{} {} has no apiVersion", kind(obj), name(obj)))
    })?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind(obj));
    let label = if namespace(obj).is_empty() {
        name(obj).to_owned()
    } else {
        format!("{}/{}", namespace(obj), name(obj))
    };
    let failed = |source: kube::Error| InstallError::Apply {
        kind: kind(obj).to_owned(),
        name: label.clone(),
        source: Box::new(source),
    };
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(failed)?;
    let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
        let ns = if namespace(obj).is_empty() {
            "default"
        } else {
            namespace(obj)
        };
        Api::namespaced_with(client.clone(), ns, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let params = PatchParams::apply(field_manager).force();
    api.patch(name(obj), &params, &Patch::Apply(obj))
        .await
        .map_err(failed)
}

/// Installs the default kustomize base (`deploy/`) into a simulated cluster, without the
/// Deployment (the test starts the operator itself), plus `deploy/watch/`'s RoleBinding
/// in each of `namespaces` (created if missing); returns a client as the operator's
/// ServiceAccount, so every request it makes is authorized by exactly that RBAC.
pub async fn install_operator_rbac_watching(
    sim: &SimCluster,
    namespaces: &[&str],
) -> Result<kube::Client, InstallError> {
    let mut objects: Vec<Value> = kustomize_build(&deploy_dir())?
        .into_iter()
        .filter(|o| kind(o) != "Deployment")
        .collect();
    let binding = read_yaml(&deploy_dir().join("watch/rolebinding.yaml"))?;
    for ns in namespaces {
        objects.push(
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
        let mut b = binding.clone();
        b["metadata"]["namespace"] = serde_json::json!(ns);
        objects.push(b);
    }
    apply_objects(&sim.client()?, &objects, INSTALLER).await?;
    Ok(sim.client_as_service_account(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)?)
}

/// Installs `deploy/` in its opt-in cluster-wide mode (the `components/cluster-wide`
/// overlay) into a simulated cluster, without the Deployment (the test starts the operator
/// itself), and returns a client that authenticates as the operator's ServiceAccount, so
/// every request it makes is authorized by exactly the RBAC that overlay installs.
pub async fn install_operator_rbac(sim: &SimCluster) -> Result<kube::Client, InstallError> {
    let objects: Vec<Value> = cluster_wide_build()?
        .into_iter()
        .filter(|o| kind(o) != "Deployment")
        .collect();
    apply_objects(&sim.client()?, &objects, INSTALLER).await?;
    Ok(sim.client_as_service_account(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)?)
}

/// Installs the Helm chart (rendered with `helm template` and `helm_args`) into a
/// simulated cluster, without the Deployment, creating the release namespace and every
/// watched namespace first; returns a client as the operator's ServiceAccount.
pub async fn install_chart_rbac(
    sim: &SimCluster,
    helm_args: &[&str],
    namespaces: &[&str],
) -> Result<kube::Client, InstallError> {
    let admin = sim.client()?;
    let mut objects: Vec<Value> = Vec::new();
    for ns in std::iter::once(&OPERATOR_NAMESPACE).chain(namespaces) {
        objects.push(
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    objects.extend(
        helm_template(helm_args)?
            .into_iter()
            .filter(|o| kind(o) != "Deployment"),
    );
    apply_objects(&admin, &objects, INSTALLER).await?;
    Ok(sim.client_as_service_account(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)?)
}

/// Stand-ins for the CRDs cert-manager and prometheus-operator install, so their kinds
/// exist in the simulated cluster as on a cluster that has them.
pub fn integration_crds() -> Vec<Value> {
    let crd = |group: &str, kind: &str, plural: &str| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {"group": group, "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.to_ascii_lowercase(), "listKind": format!("{kind}List")},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        })
    };
    vec![
        crd("cert-manager.io", "Certificate", "certificates"),
        crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
        crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules"),
    ]
}
