//! Authentication (the admin bearer token and service-account JWTs this server issues)
//! and RBAC authorization
//! (<https://kubernetes.io/docs/reference/access-authn-authz/rbac/>,
//! <https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/>).
//! Service-account identities are checked against Roles, ClusterRoles and their bindings,
//! so a rule missing from a chart shows up as the 403 a real cluster would answer.

use crate::clock::format_time;
use crate::core::Core;
use crate::error::SimError;
use crate::pki::ISSUER;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name (`system:serviceaccount:ns:name` for service accounts).
    pub username: String,
    /// UID (the ServiceAccount's UID).
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes (`authentication.kubernetes.io/pod-name`, …).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The cluster administrator (group `system:masters`, allowed everything).
    pub fn admin() -> Self {
        UserInfo {
            username: "vaultkeeper-sim-admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            extra: BTreeMap::new(),
        }
    }

    /// Whether this identity bypasses authorization.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }

    /// The user as `TokenReview.status.user`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.username, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

/// Default token lifetime when a TokenRequest asks for none (the real default: 1 hour).
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Issues a service-account token (TokenRequest), optionally bound to a pod.
pub fn issue_token(
    core: &Core,
    ns: &str,
    sa: &Value,
    audiences: &[String],
    expiration_seconds: i64,
    pod: Option<&Value>,
) -> Result<(SecretString, String), SimError> {
    let now = core.clock.now();
    let exp = now.as_second() + expiration_seconds.max(600);
    let sa_name = sa["metadata"]["name"].as_str().unwrap_or_default();
    let mut k8s = json!({
        "namespace": ns,
        "serviceaccount": {"name": sa_name, "uid": sa["metadata"]["uid"]},
    });
    if let Some(p) = pod {
        k8s["pod"] = json!({"name": p["metadata"]["name"], "uid": p["metadata"]["uid"]});
        if let Some(node) = p["spec"]["nodeName"].as_str() {
            k8s["node"] = json!({"name": node});
        }
    }
    let aud: Vec<String> = if audiences.is_empty() {
        vec![ISSUER.to_string()]
    } else {
        audiences.to_vec()
    };
    let claims = json!({
        "aud": aud,
        "exp": exp,
        "iat": now.as_second(),
        "nbf": now.as_second(),
        "iss": ISSUER,
        "jti": crate::core::new_uid(),
        "kubernetes.io": k8s,
        "sub": format!("system:serviceaccount:{ns}:{sa_name}"),
    });
    let token = core.signer.sign(&claims)?;
    let expiry = jiff::Timestamp::from_second(exp)
        .map(format_time)
        .unwrap_or_default();
    Ok((token, expiry))
}

/// Why a token was not accepted (for TokenReview's `status.error`; never echoes the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRejected(pub String);

/// Authenticates a service-account JWT: signature, issuer, time window, audience, and
/// that the service account (and the pod it is bound to) still exist with the same UID.
pub fn authenticate_jwt(
    core: &Core,
    token: &str,
    audiences: &[String],
) -> Result<UserInfo, TokenRejected> {
    let claims = core
        .signer
        .verify(token)
        .ok_or_else(|| TokenRejected("invalid bearer token".into()))?;
    if claims["iss"] != ISSUER {
        return Err(TokenRejected(
            "invalid bearer token, token issuer is not accepted".into(),
        ));
    }
    let now = core.clock.now().as_second();
    if claims["exp"].as_i64().is_none_or(|e| e < now) {
        return Err(TokenRejected(
            "invalid bearer token, token has expired".into(),
        ));
    }
    if claims["nbf"].as_i64().is_some_and(|n| n > now + 60) {
        return Err(TokenRejected(
            "invalid bearer token, token is not valid yet".into(),
        ));
    }
    let want: Vec<String> = if audiences.is_empty() {
        vec![ISSUER.to_string()]
    } else {
        audiences.to_vec()
    };
    let token_aud: Vec<&str> = claims["aud"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !want.iter().any(|w| token_aud.contains(&w.as_str())) {
        return Err(TokenRejected(
            "invalid bearer token, token audiences are invalid".into(),
        ));
    }
    let k8s = &claims["kubernetes.io"];
    let ns = k8s["namespace"].as_str().unwrap_or_default();
    let sa_name = k8s["serviceaccount"]["name"].as_str().unwrap_or_default();
    let sa_uid = k8s["serviceaccount"]["uid"].as_str().unwrap_or_default();
    let sa_type = core
        .core_type("serviceaccounts")
        .map_err(|e| TokenRejected(e.to_string()))?;
    let sa = core
        .get_raw(&sa_type, ns, sa_name)
        .ok_or_else(|| TokenRejected(format!("serviceaccounts \"{sa_name}\" not found")))?;
    if sa["metadata"]["uid"] != sa_uid {
        return Err(TokenRejected(format!(
            "service account UID ({}) does not match claim ({sa_uid})",
            sa["metadata"]["uid"].as_str().unwrap_or_default()
        )));
    }
    let mut extra = BTreeMap::new();
    if let Some(pod_name) = k8s["pod"]["name"].as_str() {
        let pod_type = core
            .core_type("pods")
            .map_err(|e| TokenRejected(e.to_string()))?;
        let pod = core
            .get_raw(&pod_type, ns, pod_name)
            .ok_or_else(|| TokenRejected(format!("pods \"{pod_name}\" not found")))?;
        if pod["metadata"]["uid"] != k8s["pod"]["uid"] {
            return Err(TokenRejected(format!(
                "pod UID does not match claim for pods \"{pod_name}\""
            )));
        }
        if !pod["metadata"]["deletionTimestamp"].is_null()
            && pod["metadata"]["deletionGracePeriodSeconds"] == json!(0)
        {
            return Err(TokenRejected(format!(
                "pods \"{pod_name}\" is being deleted"
            )));
        }
        extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec![pod_name.to_string()],
        );
        extra.insert(
            "authentication.kubernetes.io/pod-uid".into(),
            vec![k8s["pod"]["uid"].as_str().unwrap_or_default().to_string()],
        );
    }
    if let Some(jti) = claims["jti"].as_str() {
        extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={jti}")],
        );
    }
    Ok(UserInfo {
        username: format!("system:serviceaccount:{ns}:{sa_name}"),
        uid: sa_uid.to_string(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
        extra,
    })
}

/// Authenticates a bearer token: the admin token, else a service-account JWT.
pub fn authenticate(
    core: &Core,
    admin: &SecretString,
    bearer: Option<&str>,
) -> Result<UserInfo, SimError> {
    let Some(token) = bearer else {
        return Err(SimError::Unauthorized);
    };
    if constant_time_eq(token.as_bytes(), admin.expose_secret().as_bytes()) {
        return Ok(UserInfo::admin());
    }
    authenticate_jwt(core, token, &[]).map_err(|_| SimError::Unauthorized)
}

/// What a request asks to do, for authorization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`).
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource (`status`, `exec`).
    pub subresource: String,
    /// Namespace (empty for cluster scope).
    pub namespace: String,
    /// Object name (empty for list/create).
    pub name: String,
    /// Non-resource path (`/api`), when this is not a resource request.
    pub path: Option<String>,
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strs(&rule["verbs"]);
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if let Some(path) = &a.path {
        return strs(&rule["nonResourceURLs"]).iter().any(|u| {
            *u == "*" || *u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
        });
    }
    if !strs(&rule["apiGroups"])
        .iter()
        .any(|g| *g == "*" || *g == a.group)
    {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let res_ok = strs(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (a.subresource.is_empty() && *r == a.resource)
            || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
            || (!a.subresource.is_empty() && *r == format!("{}/*", a.resource))
    });
    if !res_ok {
        return false;
    }
    let names = strs(&rule["resourceNames"]);
    names.is_empty() || (!a.name.is_empty() && names.contains(&a.name.as_str()))
}

fn subject_matches(subject: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str().unwrap_or_default() {
        "User" => user.username == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or(binding_ns);
            user.username == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

/// The rules of a ClusterRole, following `aggregationRule` one level.
pub(crate) fn cluster_role_rules(
    cluster_roles: &[std::sync::Arc<Value>],
    name: &str,
) -> Vec<Value> {
    let Some(role) = cluster_roles.iter().find(|r| r["metadata"]["name"] == name) else {
        return Vec::new();
    };
    let mut rules: Vec<Value> = role["rules"].as_array().cloned().unwrap_or_default();
    if let Some(sels) = role["aggregationRule"]["clusterRoleSelectors"].as_array() {
        for sel in sels {
            if let Ok(s) = crate::selectors::LabelSelector::from_label_selector(sel) {
                for r in cluster_roles
                    .iter()
                    .filter(|r| r["metadata"]["name"] != name && s.matches_object(r))
                {
                    rules.extend(r["rules"].as_array().cloned().unwrap_or_default());
                }
            }
        }
    }
    rules
}

/// RBAC decision for `user` doing `a`.
pub fn allowed(core: &Core, user: &UserInfo, a: &Attributes) -> bool {
    if user.is_master() {
        return true;
    }
    let (Ok(crb_t), Ok(cr_t), Ok(rb_t), Ok(r_t)) = (
        core.type_of("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
        core.type_of("rbac.authorization.k8s.io", "v1", "clusterroles"),
        core.type_of("rbac.authorization.k8s.io", "v1", "rolebindings"),
        core.type_of("rbac.authorization.k8s.io", "v1", "roles"),
    ) else {
        return false;
    };
    let cluster_roles = core.list_raw(&cr_t, None);
    for b in core.list_raw(&crb_t, None) {
        let subjects = b["subjects"].as_array().cloned().unwrap_or_default();
        if !subjects.iter().any(|s| subject_matches(s, user, "")) {
            continue;
        }
        if b["roleRef"]["kind"] == "ClusterRole" {
            let rules = cluster_role_rules(
                &cluster_roles,
                b["roleRef"]["name"].as_str().unwrap_or_default(),
            );
            if rules.iter().any(|r| rule_allows(r, a)) {
                return true;
            }
        }
    }
    if a.namespace.is_empty() || a.path.is_some() {
        return false;
    }
    for b in core.list_raw(&rb_t, Some(&a.namespace)) {
        let subjects = b["subjects"].as_array().cloned().unwrap_or_default();
        if !subjects
            .iter()
            .any(|s| subject_matches(s, user, &a.namespace))
        {
            continue;
        }
        let role_name = b["roleRef"]["name"].as_str().unwrap_or_default();
        let rules = match b["roleRef"]["kind"].as_str() {
            Some("ClusterRole") => cluster_role_rules(&cluster_roles, role_name),
            Some("Role") => core
                .get_raw(&r_t, &a.namespace, role_name)
                .and_then(|r| r["rules"].as_array().cloned())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if rules.iter().any(|r| rule_allows(r, a)) {
            return true;
        }
    }
    false
}

/// The 403 message the real authorizer produces.
pub fn forbidden_message(user: &UserInfo, a: &Attributes) -> String {
    if let Some(path) = &a.path {
        return format!(
            "forbidden: User \"{}\" cannot {} path \"{path}\"",
            user.username, a.verb
        );
    }
    let qualified = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let subject = if a.name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{}\"", a.name)
    };
    let res = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    format!(
        "{subject} is forbidden: User \"{}\" cannot {} resource \"{res}\" in API group \"{}\" {scope}",
        user.username, a.verb, a.group
    )
}

/// The ClusterRoles and bindings a fresh cluster has (the bootstrap policy subset the
/// project relies on).
pub fn bootstrap_policy() -> Vec<Value> {
    let cr = |name: &str, rules: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
               "rules": rules})
    };
    let crb = |name: &str, role: &str, subjects: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": subjects})
    };
    let group =
        |g: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g});
    let read = json!(["get", "list", "watch"]);
    vec![
        cr("cluster-admin", json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}])),
        cr("system:discovery", json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz", "/version", "/version/", "/openapi", "/openapi/*", "/.well-known/openid-configuration", "/openid/v1/jwks"], "verbs": ["get"]}])),
        cr("system:basic-user", json!([{"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]}, {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}])),
        cr("system:public-info-viewer", json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}])),
        cr("system:auth-delegator", json!([{"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}, {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}])),
        cr("view", json!([{"apiGroups": ["", "apps", "batch", "policy", "networking.k8s.io", "discovery.k8s.io", "coordination.k8s.io", "events.k8s.io"],
            "resources": ["pods", "pods/log", "pods/status", "services", "endpoints", "configmaps", "persistentvolumeclaims", "serviceaccounts", "events", "statefulsets", "statefulsets/scale", "statefulsets/status", "deployments", "replicasets", "jobs", "cronjobs", "poddisruptionbudgets", "ingresses", "networkpolicies", "endpointslices", "leases", "namespaces", "limitranges", "resourcequotas"], "verbs": read}])),
        cr("edit", json!([{"apiGroups": ["", "apps", "batch", "policy", "networking.k8s.io", "discovery.k8s.io", "coordination.k8s.io", "events.k8s.io"],
            "resources": ["pods", "pods/log", "pods/exec", "pods/status", "services", "endpoints", "configmaps", "secrets", "persistentvolumeclaims", "serviceaccounts", "events", "statefulsets", "statefulsets/scale", "deployments", "replicasets", "jobs", "cronjobs", "poddisruptionbudgets", "ingresses", "networkpolicies", "endpointslices", "leases"], "verbs": ["get", "list", "watch", "create", "delete", "deletecollection", "patch", "update"]}])),
        cr("admin", json!([{"apiGroups": ["", "apps", "batch", "policy", "networking.k8s.io", "discovery.k8s.io", "coordination.k8s.io", "events.k8s.io", "rbac.authorization.k8s.io"],
            "resources": ["*"], "verbs": ["get", "list", "watch", "create", "delete", "deletecollection", "patch", "update"]}])),
        crb("cluster-admin", "cluster-admin", json!([group("system:masters")])),
        crb("system:discovery", "system:discovery", json!([group("system:authenticated")])),
        crb("system:basic-user", "system:basic-user", json!([group("system:authenticated")])),
        crb("system:public-info-viewer", "system:public-info-viewer", json!([group("system:authenticated"), group("system:unauthenticated")])),
    ]
    .into_iter()
    .map(|mut v| {
        // Bootstrap objects carry the annotation the real server adds.
        v["metadata"]["annotations"] = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
        v
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa_user(ns: &str, name: &str) -> UserInfo {
        UserInfo {
            username: format!("system:serviceaccount:{ns}:{name}"),
            uid: String::new(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
            extra: BTreeMap::new(),
        }
    }

    fn attrs(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            path: None,
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_names() {
        // RBAC docs, "Referring to resources": subresources are named "pods/exec";
        // resourceNames restrict to named objects and never match create.
        let rule = json!({"apiGroups": [""], "resources": ["pods", "pods/exec"], "verbs": ["get", "create"]});
        assert!(rule_allows(&rule, &attrs("get", "", "pods", "", "ns", "p")));
        assert!(rule_allows(
            &rule,
            &attrs("create", "", "pods", "exec", "ns", "p")
        ));
        assert!(!rule_allows(
            &rule,
            &attrs("create", "", "pods", "log", "ns", "p")
        ));
        assert!(!rule_allows(
            &rule,
            &attrs("patch", "", "pods", "", "ns", "p")
        ));
        assert!(!rule_allows(
            &rule,
            &attrs("get", "apps", "pods", "", "ns", "p")
        ));
        let named = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "update"], "resourceNames": ["keys"]});
        assert!(rule_allows(
            &named,
            &attrs("get", "", "secrets", "", "ns", "keys")
        ));
        assert!(!rule_allows(
            &named,
            &attrs("get", "", "secrets", "", "ns", "other")
        ));
        assert!(!rule_allows(
            &named,
            &attrs("list", "", "secrets", "", "ns", "")
        ));
    }

    #[test]
    fn service_account_subjects_default_to_the_binding_namespace() {
        let u = sa_user("vault", "vault");
        assert!(subject_matches(
            &json!({"kind": "ServiceAccount", "name": "vault"}),
            &u,
            "vault"
        ));
        assert!(!subject_matches(
            &json!({"kind": "ServiceAccount", "name": "vault"}),
            &u,
            "other"
        ));
        assert!(subject_matches(
            &json!({"kind": "Group", "name": "system:serviceaccounts:vault"}),
            &u,
            ""
        ));
    }

    #[test]
    fn forbidden_message_matches_the_real_wording() {
        let u = sa_user("vault", "vault");
        assert_eq!(
            forbidden_message(&u, &attrs("patch", "", "pods", "", "vault", "vault-0")),
            "pods \"vault-0\" is forbidden: User \"system:serviceaccount:vault:vault\" cannot patch resource \"pods\" in API group \"\" in the namespace \"vault\""
        );
        assert_eq!(
            forbidden_message(
                &u,
                &attrs(
                    "create",
                    "authentication.k8s.io",
                    "tokenreviews",
                    "",
                    "",
                    ""
                )
            ),
            "tokenreviews.authentication.k8s.io is forbidden: User \"system:serviceaccount:vault:vault\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"
        );
    }
}
