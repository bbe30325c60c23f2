//! A container's environment and command line, resolved the way the kubelet resolves them:
//! `envFrom` first, then `env` in order (each `value` expanded with `$(VAR)` against the
//! variables before it and the service variables, each `valueFrom` resolved from the
//! downward API, a ConfigMap or a Secret), then the service variables nothing overrode;
//! `command` and `args` are expanded against the result. All pure: the glue hands over the
//! objects, nothing here touches the network, a clock or a file.

use super::image::ImageRule;
use k8s_openapi::api::core::v1::{ConfigMap, Container, ObjectFieldSelector, Pod, Secret};
use secrecy::{ExposeSecret, SecretSlice};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::net::IpAddr;
use std::os::unix::ffi::OsStringExt;

/// One resolved environment variable. The value may come from a Secret, so it is
/// a [`SecretSlice`]: a printed `EnvVar` shows only its name.
#[derive(Clone)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Variable value.
    pub value: SecretSlice<u8>,
}

impl std::fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=<redacted>", self.name)
    }
}

/// What env resolution reads: the pod, its addresses, and the objects it references.
#[derive(Debug, Clone, Copy)]
pub struct EnvContext<'a> {
    /// The pod (metadata and spec).
    pub pod: &'a Pod,
    /// The pod's IP.
    pub pod_ip: IpAddr,
    /// The node's IP.
    pub host_ip: IpAddr,
    /// ConfigMaps by name, as the glue found them in the pod's namespace.
    pub config_maps: &'a BTreeMap<String, ConfigMap>,
    /// Secrets by name, as the glue found them in the pod's namespace.
    pub secrets: &'a BTreeMap<String, Secret>,
    /// Service variables (`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`, and the
    /// `<SVC>_SERVICE_HOST` family when `enableServiceLinks`), as the glue computed them.
    pub service_env: &'a [(String, String)],
}

/// The resolved environment plus the warnings the kubelet would record as Events
/// (`InvalidEnvironmentVariableNames`).
#[derive(Debug, Clone, Default)]
pub struct ResolvedEnv {
    /// Variables in the order the container declares them, service variables last.
    pub vars: Vec<EnvVar>,
    /// Human-readable warnings (names only, never values).
    pub warnings: Vec<String>,
}

/// An env resolution failure: the field's JSON path (relative to the container) and what
/// is wrong.
pub type EnvFailure = (String, String);

/// Expands `$(VAR)` references as Kubernetes does: `$$` is a literal `$`, an undefined
/// reference or an unterminated `$(` stays as written, and any other `$x` is kept.
pub fn expand<'a>(input: &[u8], lookup: impl Fn(&str) -> Option<&'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        if c != b'$' || i + 1 == input.len() {
            out.push(c);
            i += 1;
            continue;
        }
        match input[i + 1] {
            b'$' => {
                out.push(b'$');
                i += 2;
            }
            b'(' => match input[i + 2..].iter().position(|&b| b == b')') {
                Some(len) => {
                    let name = &input[i + 2..i + 2 + len];
                    match std::str::from_utf8(name).ok().and_then(&lookup) {
                        Some(value) => out.extend_from_slice(value),
                        None => out.extend_from_slice(&input[i..i + 3 + len]),
                    }
                    i += 3 + len;
                }
                None => {
                    out.extend_from_slice(b"$(");
                    i += 2;
                }
            },
            other => {
                out.push(b'$');
                out.push(other);
                i += 2;
            }
        }
    }
    out
}

/// Environment variable names the API server accepts for `envFrom` keys (the relaxed
/// rule, on by default since Kubernetes 1.30): printable ASCII except `=`.
fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// A Secret's data. The simulated API server folds `stringData` into `data` as a real one
/// does; a Secret built in memory (tests) may still carry it, so it is merged here too.
pub(super) fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    data
}

/// Where a downward-API field reference is used: env vars and volume files accept
/// different fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRefUse {
    /// `env[].valueFrom.fieldRef`.
    Env,
    /// `downwardAPI.items[].fieldRef`.
    Volume,
}

/// The value of a downward-API `fieldRef`.
pub fn field_ref_value(
    pod: &Pod,
    pod_ip: IpAddr,
    host_ip: IpAddr,
    selector: &ObjectFieldSelector,
    usage: FieldRefUse,
) -> Result<String, String> {
    match selector.api_version.as_deref() {
        None | Some("") | Some("v1") => {}
        Some(other) => {
            return Err(format!(
                "apiVersion {other:?} is not supported for fieldRef; use \"v1\""
            ));
        }
    }
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let path = selector.field_path.as_str();
    let subscript = |prefix: &str| -> Option<String> {
        path.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_string)
    };
    if let Some(key) = subscript("metadata.labels") {
        return Ok(lookup_map(meta.labels.as_ref(), &key));
    }
    if let Some(key) = subscript("metadata.annotations") {
        return Ok(lookup_map(meta.annotations.as_ref(), &key));
    }
    let value = match (path, usage) {
        ("metadata.name", _) => meta.name.clone().unwrap_or_default(),
        ("metadata.namespace", _) => meta.namespace.clone().unwrap_or_default(),
        ("metadata.uid", _) => meta.uid.clone().unwrap_or_default(),
        ("metadata.labels", FieldRefUse::Volume) => format_map(meta.labels.as_ref()),
        ("metadata.annotations", FieldRefUse::Volume) => format_map(meta.annotations.as_ref()),
        ("spec.nodeName", FieldRefUse::Env) => {
            spec.and_then(|s| s.node_name.clone()).unwrap_or_default()
        }
        ("spec.serviceAccountName", FieldRefUse::Env) => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        ("status.podIP" | "status.podIPs", FieldRefUse::Env) => pod_ip.to_string(),
        ("status.hostIP" | "status.hostIPs", FieldRefUse::Env) => host_ip.to_string(),
        _ => {
            return Err(format!(
                "fieldPath {path:?} is not supported here; use metadata.name, \
                 metadata.namespace, metadata.uid, metadata.labels['KEY'], \
                 metadata.annotations['KEY']{}",
                match usage {
                    FieldRefUse::Env =>
                        ", spec.nodeName, spec.serviceAccountName, status.podIP or status.hostIP",
                    FieldRefUse::Volume => ", metadata.labels or metadata.annotations",
                }
            ));
        }
    };
    Ok(value)
}

fn lookup_map(map: Option<&BTreeMap<String, String>>, key: &str) -> String {
    map.and_then(|m| m.get(key)).cloned().unwrap_or_default()
}

/// `key="value"` lines, keys sorted, values quoted like Go's `%q` (the downward API's
/// format for `metadata.labels` and `metadata.annotations` files).
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote` for the characters labels and annotations can hold.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A ConfigMap's or Secret's data as bytes (absent when the object does not exist).
type KeyValues = BTreeMap<String, Vec<u8>>;

/// Ordered variables with replace-in-place, like the kubelet's map but deterministic.
#[derive(Default)]
struct EnvList {
    vars: Vec<EnvVar>,
    index: HashMap<String, usize>,
}

impl EnvList {
    fn set(&mut self, name: String, value: SecretSlice<u8>) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].value = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push(EnvVar { name, value });
            }
        }
    }

    fn get(&self, name: &str) -> Option<&[u8]> {
        self.index
            .get(name)
            .map(|&i| self.vars[i].value.expose_secret())
    }
}

/// Resolves one container's environment. Errors name the field relative to the container
/// (`env[2].valueFrom.secretKeyRef`) and say what is missing.
pub fn resolve_container_env(
    ctx: &EnvContext<'_>,
    container: &Container,
) -> Result<ResolvedEnv, EnvFailure> {
    let mut list = EnvList::default();
    let mut warnings = Vec::new();
    for (i, from) in container.env_from.iter().flatten().enumerate() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, optional, data): (&str, String, bool, Option<KeyValues>) =
            if let Some(r) = &from.config_map_ref {
                let data = ctx.config_maps.get(&r.name).map(|cm| {
                    cm.data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                        .collect()
                });
                ("configmap", r.name.clone(), r.optional == Some(true), data)
            } else if let Some(r) = &from.secret_ref {
                let data = ctx.secrets.get(&r.name).map(secret_data);
                ("secret", r.name.clone(), r.optional == Some(true), data)
            } else {
                return Err((
                    format!("envFrom[{i}]"),
                    "names neither configMapRef nor secretRef".to_string(),
                ));
            };
        let Some(data) = data else {
            if optional {
                continue;
            }
            return Err((
                format!("envFrom[{i}]"),
                format!("{kind} {name:?} not found; create it or mark the reference optional"),
            ));
        };
        let mut invalid = Vec::new();
        for (k, v) in data {
            let key = format!("{prefix}{k}");
            if is_env_var_name(&key) {
                list.set(key, SecretSlice::from(v));
            } else {
                invalid.push(key);
            }
        }
        if !invalid.is_empty() {
            warnings.push(format!(
                "Keys [{}] from the EnvFrom {kind} {name} were skipped since they are \
                 considered invalid environment variable names.",
                invalid.join(", ")
            ));
        }
    }

    let service: HashMap<&str, &[u8]> = ctx
        .service_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    for (i, var) in container.env.iter().flatten().enumerate() {
        let field = format!("env[{i}]");
        let literal = var.value.as_deref().unwrap_or_default();
        let value = if !literal.is_empty() {
            SecretSlice::from(expand(literal.as_bytes(), |n| {
                list.get(n).or_else(|| service.get(n).copied())
            }))
        } else if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                let v = field_ref_value(ctx.pod, ctx.pod_ip, ctx.host_ip, f, FieldRefUse::Env)
                    .map_err(|m| (format!("{field}.valueFrom.fieldRef"), m))?;
                SecretSlice::from(v.into_bytes())
            } else if from.resource_field_ref.is_some() {
                return Err((
                    format!("{field}.valueFrom.resourceFieldRef"),
                    "resourceFieldRef is not supported by the simulated kubelet; set the \
                     value explicitly"
                        .to_string(),
                ));
            } else if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional == Some(true);
                match ctx.config_maps.get(&r.name) {
                    None if optional => continue,
                    None => {
                        return Err((
                            format!("{field}.valueFrom.configMapKeyRef"),
                            format!(
                                "configmap {:?} not found; create it or mark the reference \
                                 optional",
                                r.name
                            ),
                        ));
                    }
                    Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => SecretSlice::from(v.as_bytes().to_vec()),
                        None if optional => continue,
                        None => {
                            return Err((
                                format!("{field}.valueFrom.configMapKeyRef"),
                                format!("couldn't find key {} in ConfigMap {}", r.key, r.name),
                            ));
                        }
                    },
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional == Some(true);
                match ctx.secrets.get(&r.name) {
                    None if optional => continue,
                    None => {
                        return Err((
                            format!("{field}.valueFrom.secretKeyRef"),
                            format!(
                                "secret {:?} not found; create it or mark the reference optional",
                                r.name
                            ),
                        ));
                    }
                    Some(s) => match secret_data(s).remove(&r.key) {
                        Some(v) => SecretSlice::from(v),
                        None if optional => continue,
                        None => {
                            return Err((
                                format!("{field}.valueFrom.secretKeyRef"),
                                format!("couldn't find key {} in Secret {}", r.key, r.name),
                            ));
                        }
                    },
                }
            } else {
                return Err((
                    format!("{field}.valueFrom"),
                    "names no source (fieldRef, configMapKeyRef or secretKeyRef)".to_string(),
                ));
            }
        } else {
            SecretSlice::default()
        };
        list.set(var.name.clone(), value);
    }
    for (k, v) in ctx.service_env {
        if list.get(k).is_none() {
            list.set(k.clone(), SecretSlice::from(v.as_bytes().to_vec()));
        }
    }
    Ok(ResolvedEnv {
        vars: list.vars,
        warnings,
    })
}

/// The process environment: the image's ENV, then `HOSTNAME` (as container engines set
/// it), then the kubelet's variables, later entries overriding earlier ones by name.
pub fn process_env(image: &ImageRule, hostname: &str, kubelet_env: &[EnvVar]) -> Vec<EnvVar> {
    let mut list = EnvList::default();
    for (k, v) in &image.env {
        list.set(k.clone(), SecretSlice::from(v.as_bytes().to_vec()));
    }
    list.set(
        "HOSTNAME".to_string(),
        SecretSlice::from(hostname.as_bytes().to_vec()),
    );
    for v in kubelet_env {
        list.set(v.name.clone(), v.value.clone());
    }
    list.vars
}

/// The argv a container runs: Kubernetes' ENTRYPOINT/CMD rules with `$(VAR)` expansion of
/// the spec's `command` and `args` against the container's environment.
pub fn container_argv(
    container: &Container,
    image: &ImageRule,
    env: &[EnvVar],
) -> Result<Vec<OsString>, EnvFailure> {
    let lookup = |n: &str| {
        env.iter()
            .find(|v| v.name == n)
            .map(|v| v.value.expose_secret())
    };
    let expand_all = |items: &[String]| -> Vec<OsString> {
        items
            .iter()
            .map(|s| OsString::from_vec(expand(s.as_bytes(), lookup)))
            .collect()
    };
    let plain = |items: &[String]| -> Vec<OsString> { items.iter().map(OsString::from).collect() };
    let command = container.command.as_deref().unwrap_or_default();
    let args = container.args.as_deref().unwrap_or_default();
    let mut argv = if command.is_empty() {
        plain(&image.entrypoint)
    } else {
        expand_all(command)
    };
    if !args.is_empty() {
        argv.extend(expand_all(args));
    } else if command.is_empty() {
        argv.extend(plain(&image.cmd));
    }
    if argv.is_empty() {
        return Err((
            "command".to_string(),
            "no command to run: the image has no entrypoint and the container sets no \
             command; set spec.containers[].command"
                .to_string(),
        ));
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVarSource, PodSpec,
        SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn expand_str(input: &str) -> String {
        let vars: HashMap<&str, &str> = [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ]
        .into_iter()
        .collect();
        String::from_utf8(expand(input.as_bytes(), |n| {
            vars.get(n).map(|v| v.as_bytes())
        }))
        .unwrap()
    }

    /// The cases of Kubernetes' own expansion tests, which define the semantics.
    #[test]
    fn expansion_matches_kubernetes() {
        let cases = [
            ("$(VAR_A)", "A"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("foo$(VAR_EMPTY)bar", "foobar"),
            ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
            ("$?_boo_$!", "$?_boo_$!"),
            ("$VAR_A", "$VAR_A"),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
            ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
            ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
            ("$$$$$$$(VAR_A)", "$$$A"),
            ("$VAR_A)", "$VAR_A)"),
            ("${VAR_A}", "${VAR_A}"),
            ("$(VAR_B)_______$(A", "B_______$(A"),
            ("$(VAR_C)_______$(", "C_______$("),
            ("$(VAR_A)foobarzab$", "Afoobarzab$"),
            ("--$($($($($--", "--$($($($($--"),
            ("$($($($($--foo$(", "$($($($($--foo$("),
            ("$(foo$$var)", "$(foo$$var)"),
            ("\n", "\n"),
        ];
        for (input, want) in cases {
            assert_eq!(expand_str(input), want, "input {input:?}");
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("vault-0".into()),
                namespace: Some("vault".into()),
                uid: Some("uid-1".into()),
                labels: Some(
                    [("app".to_string(), "vault".to_string())]
                        .into_iter()
                        .collect(),
                ),
                annotations: Some(
                    [("note".to_string(), "a \"quoted\"\nvalue".to_string())]
                        .into_iter()
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                service_account_name: Some("vault".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn var(name: &str, value: &str) -> k8s_openapi::api::core::v1::EnvVar {
        k8s_openapi::api::core::v1::EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn field(name: &str, path: &str) -> k8s_openapi::api::core::v1::EnvVar {
        k8s_openapi::api::core::v1::EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: path.into(),
                }),
                ..Default::default()
            }),
        }
    }

    fn values(env: &ResolvedEnv) -> Vec<(String, String)> {
        env.vars
            .iter()
            .map(|v| {
                (
                    v.name.clone(),
                    String::from_utf8(v.value.expose_secret().to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn helm_chart_env_resolves_downward_api_and_expansion() {
        let pod = pod();
        let container = Container {
            name: "vault".into(),
            env: Some(vec![
                field("HOST_IP", "status.hostIP"),
                field("POD_IP", "status.podIP"),
                field("VAULT_K8S_POD_NAME", "metadata.name"),
                field("VAULT_K8S_NAMESPACE", "metadata.namespace"),
                var("VAULT_ADDR", "https://127.0.0.1:8200"),
                var("VAULT_API_ADDR", "https://$(POD_IP):8200"),
                var("HOSTNAME", "vault-0"),
                var(
                    "VAULT_CLUSTER_ADDR",
                    "https://$(HOSTNAME).vault-internal:8201",
                ),
                field("APP", "metadata.labels['app']"),
                field("NODE", "spec.nodeName"),
                var(
                    "SVC",
                    "$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)",
                ),
                var("KUBERNETES_SERVICE_PORT", "8443"),
            ]),
            ..Default::default()
        };
        let service_env = vec![
            (
                "KUBERNETES_SERVICE_HOST".to_string(),
                "127.22.0.1".to_string(),
            ),
            ("KUBERNETES_SERVICE_PORT".to_string(), "6443".to_string()),
        ];
        let (cms, secrets) = (BTreeMap::new(), BTreeMap::new());
        let ctx = EnvContext {
            pod: &pod,
            pod_ip: "127.22.0.10".parse().unwrap(),
            host_ip: "127.22.0.2".parse().unwrap(),
            config_maps: &cms,
            secrets: &secrets,
            service_env: &service_env,
        };
        let env = resolve_container_env(&ctx, &container).unwrap();
        let got = values(&env);
        let want: Vec<(String, String)> = [
            ("HOST_IP", "127.22.0.2"),
            ("POD_IP", "127.22.0.10"),
            ("VAULT_K8S_POD_NAME", "vault-0"),
            ("VAULT_K8S_NAMESPACE", "vault"),
            ("VAULT_ADDR", "https://127.0.0.1:8200"),
            ("VAULT_API_ADDR", "https://127.22.0.10:8200"),
            ("HOSTNAME", "vault-0"),
            ("VAULT_CLUSTER_ADDR", "https://vault-0.vault-internal:8201"),
            ("APP", "vault"),
            ("NODE", "node-a"),
            // Service variables are visible to expansion before the container's own
            // override of the same name.
            ("SVC", "127.22.0.1:6443"),
            ("KUBERNETES_SERVICE_PORT", "8443"),
            ("KUBERNETES_SERVICE_HOST", "127.22.0.1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn config_map_and_secret_references_resolve_or_name_what_is_missing() {
        let pod = pod();
        let cms: BTreeMap<String, ConfigMap> = [(
            "settings".to_string(),
            ConfigMap {
                data: Some(
                    [
                        ("LOG_LEVEL".to_string(), "debug".to_string()),
                        ("bad=key".to_string(), "x".to_string()),
                    ]
                    .into_iter()
                    .collect(),
                ),
                ..Default::default()
            },
        )]
        .into_iter()
        .collect();
        let secrets: BTreeMap<String, Secret> = [(
            "creds".to_string(),
            Secret {
                data: Some(
                    [("token".to_string(), ByteString(b"s3cr3t".to_vec()))]
                        .into_iter()
                        .collect(),
                ),
                ..Default::default()
            },
        )]
        .into_iter()
        .collect();
        let ctx = EnvContext {
            pod: &pod,
            pod_ip: "127.22.0.10".parse().unwrap(),
            host_ip: "127.22.0.2".parse().unwrap(),
            config_maps: &cms,
            secrets: &secrets,
            service_env: &[],
        };
        let secret_ref = |key: &str, optional: Option<bool>| k8s_openapi::api::core::v1::EnvVar {
            name: "TOKEN".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "creds".into(),
                    key: key.into(),
                    optional,
                }),
                ..Default::default()
            }),
        };
        let container = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "settings".into(),
                    optional: None,
                }),
                prefix: Some("APP_".into()),
                secret_ref: None,
            }]),
            env: Some(vec![
                secret_ref("token", None),
                secret_ref("absent", Some(true)),
                var("LEVEL", "$(APP_LOG_LEVEL)"),
            ]),
            ..Default::default()
        };
        let env = resolve_container_env(&ctx, &container).unwrap();
        assert_eq!(
            values(&env),
            vec![
                ("APP_LOG_LEVEL".to_string(), "debug".to_string()),
                ("TOKEN".to_string(), "s3cr3t".to_string()),
                ("LEVEL".to_string(), "debug".to_string()),
            ]
        );
        assert_eq!(env.warnings.len(), 1);
        assert!(env.warnings[0].contains("APP_bad=key"));
        // Debug output of the resolved env never shows a value.
        assert!(!format!("{:?}", env.vars).contains("s3cr3t"));

        let missing_key = Container {
            name: "c".into(),
            env: Some(vec![secret_ref("nope", None)]),
            ..Default::default()
        };
        let (field, msg) = resolve_container_env(&ctx, &missing_key).unwrap_err();
        assert_eq!(field, "env[0].valueFrom.secretKeyRef");
        assert!(
            msg.contains("couldn't find key nope in Secret creds"),
            "{msg}"
        );

        let missing_cm = Container {
            name: "c".into(),
            env: Some(vec![k8s_openapi::api::core::v1::EnvVar {
                name: "X".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "absent".into(),
                        key: "k".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            }]),
            ..Default::default()
        };
        let (field, msg) = resolve_container_env(&ctx, &missing_cm).unwrap_err();
        assert_eq!(field, "env[0].valueFrom.configMapKeyRef");
        assert!(msg.contains("configmap \"absent\" not found"), "{msg}");
    }

    #[test]
    fn unsupported_field_paths_are_refused_by_name() {
        let pod = pod();
        let sel = |p: &str| ObjectFieldSelector {
            api_version: None,
            field_path: p.into(),
        };
        let ip = "127.22.0.1".parse().unwrap();
        assert!(field_ref_value(&pod, ip, ip, &sel("spec.hostname"), FieldRefUse::Env).is_err());
        assert!(field_ref_value(&pod, ip, ip, &sel("metadata.labels"), FieldRefUse::Env).is_err());
        assert!(field_ref_value(&pod, ip, ip, &sel("status.podIP"), FieldRefUse::Volume).is_err());
        assert_eq!(
            field_ref_value(
                &pod,
                ip,
                ip,
                &sel("metadata.annotations"),
                FieldRefUse::Volume
            )
            .unwrap(),
            "note=\"a \\\"quoted\\\"\\nvalue\""
        );
        assert_eq!(
            field_ref_value(
                &pod,
                ip,
                ip,
                &sel("metadata.labels['none']"),
                FieldRefUse::Env
            )
            .unwrap(),
            ""
        );
    }

    #[test]
    fn argv_follows_entrypoint_and_cmd_rules() {
        let image = ImageRule {
            repository: "hashicorp/vault".into(),
            binary: "/bao".into(),
            names: vec![],
            entrypoint: vec!["docker-entrypoint.sh".into()],
            cmd: vec!["server".into(), "-dev".into()],
            env: vec![],
            user: 0,
            files: vec![],
            shell: None,
        };
        let env = vec![EnvVar {
            name: "POD_IP".into(),
            value: SecretSlice::from(b"127.22.0.10".to_vec()),
        }];
        let c = |command: Option<Vec<&str>>, args: Option<Vec<&str>>| Container {
            name: "c".into(),
            command: command.map(|v| v.into_iter().map(String::from).collect()),
            args: args.map(|v| v.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        let run = |c: Container| -> Vec<String> {
            container_argv(&c, &image, &env)
                .unwrap()
                .into_iter()
                .map(|s| s.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            run(c(None, None)),
            ["docker-entrypoint.sh", "server", "-dev"]
        );
        assert_eq!(
            run(c(None, Some(vec!["server", "-config=/x"]))),
            ["docker-entrypoint.sh", "server", "-config=/x"]
        );
        assert_eq!(
            run(c(Some(vec!["/bin/sh", "-ec"]), None)),
            ["/bin/sh", "-ec"]
        );
        assert_eq!(
            run(c(
                Some(vec!["vault"]),
                Some(vec!["-addr=$(POD_IP)", "$(NOPE)"])
            )),
            ["vault", "-addr=127.22.0.10", "$(NOPE)"]
        );
        let empty = ImageRule {
            entrypoint: vec![],
            cmd: vec![],
            ..image.clone()
        };
        assert!(container_argv(&c(None, None), &empty, &env).is_err());
    }

    #[test]
    fn process_env_layers_image_hostname_and_kubelet_values() {
        let image = ImageRule {
            repository: "r".into(),
            binary: "/b".into(),
            names: vec![],
            entrypoint: vec![],
            cmd: vec![],
            env: vec![("PATH".into(), "/usr/bin".into()), ("A".into(), "1".into())],
            user: 0,
            files: vec![],
            shell: None,
        };
        let kubelet = vec![EnvVar {
            name: "A".into(),
            value: SecretSlice::from(b"2".to_vec()),
        }];
        let env = process_env(&image, "vault-0", &kubelet);
        let got: Vec<(String, Vec<u8>)> = env
            .into_iter()
            .map(|v| (v.name, v.value.expose_secret().to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("PATH".to_string(), b"/usr/bin".to_vec()),
                ("A".to_string(), b"2".to_vec()),
                ("HOSTNAME".to_string(), b"vault-0".to_vec()),
            ]
        );
    }

    #[test]
    fn a_printed_env_var_shows_its_name_only() {
        let v = EnvVar {
            name: "VAULT_TOKEN".into(),
            value: SecretSlice::from(b"hvs.root-token".to_vec()),
        };
        assert_eq!(format!("{v:?}"), "VAULT_TOKEN=<redacted>");
        assert_eq!(v.value.expose_secret(), b"hvs.root-token");
    }
}
