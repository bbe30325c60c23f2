//! RBAC's escalation prevention
//! (<https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping>):
//! a Role or ClusterRole may only grant what its writer already holds (or may `escalate`),
//! and a binding may only name a role its writer could grant itself or may `bind`. Without
//! it an operator's ability to write RoleBindings would be a way to any right at all, and a
//! chart that relies on `bind` limited by name would go untested.

use serde_json::Value;

use crate::auth::{Attributes, UserInfo, allowed, cluster_role_rules};
use crate::core::Core;

const RBAC: &str = "rbac.authorization.k8s.io";

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

/// Why `user` may not write `body` as the RBAC object `plural`/`name` in `namespace`
/// (empty for cluster scope), as the 403 message; `None` when the write may go on.
/// `existing` is the stored object, for patches that leave `roleRef` out.
pub fn refused(
    core: &Core,
    user: &UserInfo,
    plural: &str,
    namespace: &str,
    name: &str,
    body: &Value,
    existing: Option<&Value>,
) -> Option<String> {
    if user.is_master() {
        return None;
    }
    let qualified = format!("{plural}.{RBAC} \"{name}\"");
    match plural {
        "roles" | "clusterroles" => {
            let may_escalate = allowed(
                core,
                user,
                &Attributes {
                    verb: "escalate".into(),
                    group: RBAC.into(),
                    resource: plural.into(),
                    namespace: namespace.into(),
                    name: name.into(),
                    ..Attributes::default()
                },
            );
            if may_escalate {
                return None;
            }
            let rules = body["rules"].as_array().cloned().unwrap_or_default();
            not_held(core, user, namespace, &rules).map(|missing| {
                format!(
                    "{qualified} is forbidden: user \"{}\" (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{missing}",
                    user.username, user.groups
                )
            })
        }
        "rolebindings" | "clusterrolebindings" => {
            let role_ref = match &body["roleRef"] {
                Value::Null => existing.map(|e| e["roleRef"].clone()).unwrap_or_default(),
                r => r.clone(),
            };
            let kind = role_ref["kind"].as_str().unwrap_or_default();
            let role = role_ref["name"].as_str().unwrap_or_default();
            let role_resource = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            let may_bind = allowed(
                core,
                user,
                &Attributes {
                    verb: "bind".into(),
                    group: RBAC.into(),
                    resource: role_resource.into(),
                    namespace: namespace.into(),
                    name: role.into(),
                    ..Attributes::default()
                },
            );
            if may_bind {
                return None;
            }
            let rules = role_rules(core, kind, namespace, role);
            not_held(core, user, namespace, &rules).map(|missing| {
                format!(
                    "{qualified} is forbidden: user \"{}\" (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{missing}",
                    user.username, user.groups
                )
            })
        }
        _ => None,
    }
}

/// The rules of the role a binding refers to (none when it does not exist).
fn role_rules(core: &Core, kind: &str, namespace: &str, role: &str) -> Vec<Value> {
    if kind == "Role" {
        let Ok(t) = core.type_of(RBAC, "v1", "roles") else {
            return Vec::new();
        };
        return core
            .get_raw(&t, namespace, role)
            .and_then(|r| r["rules"].as_array().cloned())
            .unwrap_or_default();
    }
    let Ok(t) = core.type_of(RBAC, "v1", "clusterroles") else {
        return Vec::new();
    };
    cluster_role_rules(&core.list_raw(&t, None), role)
}

/// The first rule `user` does not hold in `namespace` (cluster-wide when empty), shown the
/// way the API server lists it; `None` when every rule is held.
fn not_held(core: &Core, user: &UserInfo, namespace: &str, rules: &[Value]) -> Option<String> {
    for rule in rules {
        let verbs = strings(&rule["verbs"]);
        let urls = strings(&rule["nonResourceURLs"]);
        let mut names = strings(&rule["resourceNames"]);
        if names.is_empty() {
            names.push(String::new());
        }
        let mut checks = Vec::new();
        for verb in &verbs {
            for url in &urls {
                checks.push(Attributes {
                    verb: verb.clone(),
                    path: Some(url.clone()),
                    ..Attributes::default()
                });
            }
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    let (resource, subresource) = match resource.split_once('/') {
                        Some((r, s)) => (r.to_owned(), s.to_owned()),
                        None => (resource, String::new()),
                    };
                    for name in &names {
                        checks.push(Attributes {
                            verb: verb.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            subresource: subresource.clone(),
                            namespace: namespace.to_owned(),
                            name: name.clone(),
                            path: None,
                        });
                    }
                }
            }
        }
        if checks.iter().any(|a| !allowed(core, user, a)) {
            return Some(format!(
                "{{APIGroups:{:?}, Resources:{:?}, ResourceNames:{:?}, Verbs:{:?}}}",
                strings(&rule["apiGroups"]),
                strings(&rule["resources"]),
                strings(&rule["resourceNames"]),
                verbs
            ));
        }
    }
    None
}
