//! ServiceAccounts and RBAC: the server's (service registration and TokenReview, as the
//! charts grant them) and the jobs' own identities.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use crate::labels::Component;
use crate::manifest::{Manifest, cluster_metadata, metadata};
use crate::{RenderError, Scope};

pub(crate) fn render(scope: &Scope<'_>) -> Result<Vec<Manifest>, RenderError> {
    let names = &scope.names;
    let server_labels = scope.labels.object(Component::Server);
    let mut out = Vec::new();

    let mut sa_meta = metadata(scope, names.service_account(), server_labels.clone());
    let annotations = &scope.cluster.spec.pod.service_account_annotations;
    if !annotations.is_empty() {
        sa_meta.annotations = Some(annotations.clone());
    }
    out.push(Manifest::new(
        "v1",
        "ServiceAccount",
        &sa_meta,
        &ServiceAccount {
            metadata: sa_meta.clone(),
            ..ServiceAccount::default()
        },
    )?);

    // Kubernetes service registration: the pods label themselves (vault-active, …). With a
    // pre-created ClusterRole the rights are bound, not granted: whoever applies this needs
    // `bind` on that one role instead of the power to patch pods.
    if let Some(cluster_role) = scope.ctx.server_cluster_role {
        out.push(binding(
            scope,
            names.discovery_cluster_role_binding(),
            ("ClusterRole", cluster_role.to_owned()),
            names.service_account(),
            server_labels.clone(),
        )?);
    } else {
        out.extend(discovery_role(scope, server_labels.clone())?);
    }

    // Kubernetes auth: Vault reviews service-account tokens with its own identity.
    let crb_meta = cluster_metadata(
        names.server_cluster_role_binding(scope.namespace()),
        server_labels,
    );
    out.push(Manifest::new(
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        &crb_meta,
        &ClusterRoleBinding {
            metadata: crb_meta.clone(),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_owned(),
                kind: "ClusterRole".to_owned(),
                name: "system:auth-delegator".to_owned(),
            },
            subjects: Some(vec![subject(names.service_account(), scope.namespace())]),
        },
    )?);

    if crate::jobs::backup_enabled(scope) {
        // The backup job needs no Kubernetes API access: it reads its Secrets through
        // volumes and environment, and reports through its exit status and log.
        out.push(service_account(
            scope,
            names.backup(),
            scope.labels.object(Component::Backup),
        )?);
    }
    if scope.cluster.spec.monitoring.enabled {
        let labels = scope.labels.object(Component::MetricsToken);
        out.push(service_account(
            scope,
            names.metrics_token_job(),
            labels.clone(),
        )?);
        // It writes the metrics token into exactly one Secret, which the operator creates.
        out.push(role(
            scope,
            names.metrics_token_job(),
            labels.clone(),
            rule(
                &[""],
                &["secrets"],
                &["get", "update", "patch"],
                &[names.metrics_token_secret()],
            ),
        )?);
        out.push(role_binding(
            scope,
            names.metrics_token_job(),
            names.metrics_token_job(),
            names.metrics_token_job(),
            labels,
        )?);
    }
    Ok(out)
}

fn service_account(
    scope: &Scope<'_>,
    name: String,
    labels: BTreeMap<String, String>,
) -> Result<Manifest, RenderError> {
    let meta = metadata(scope, name, labels);
    Manifest::new(
        "v1",
        "ServiceAccount",
        &meta,
        &ServiceAccount {
            metadata: meta.clone(),
            ..ServiceAccount::default()
        },
    )
}

/// The Role (and its binding) the Vault chart renders for service registration.
fn discovery_role(
    scope: &Scope<'_>,
    server_labels: BTreeMap<String, String>,
) -> Result<Vec<Manifest>, RenderError> {
    let names = &scope.names;
    Ok(vec![
        role(
            scope,
            names.discovery_role(),
            server_labels.clone(),
            rule(
                &[""],
                &["pods"],
                &["get", "watch", "list", "update", "patch"],
                &[],
            ),
        )?,
        role_binding(
            scope,
            names.discovery_role_binding(),
            names.discovery_role(),
            names.service_account(),
            server_labels,
        )?,
    ])
}

/// A Role named `name` with one rule.
fn role(
    scope: &Scope<'_>,
    name: String,
    labels: BTreeMap<String, String>,
    rule: PolicyRule,
) -> Result<Manifest, RenderError> {
    let meta = metadata(scope, name, labels);
    Manifest::new(
        "rbac.authorization.k8s.io/v1",
        "Role",
        &meta,
        &Role {
            metadata: meta.clone(),
            rules: Some(vec![rule]),
        },
    )
}

fn role_binding(
    scope: &Scope<'_>,
    name: String,
    role: String,
    service_account: String,
    labels: BTreeMap<String, String>,
) -> Result<Manifest, RenderError> {
    binding(scope, name, ("Role", role), service_account, labels)
}

/// A RoleBinding of `service_account` to a Role or ClusterRole (`role`: kind and name).
fn binding(
    scope: &Scope<'_>,
    name: String,
    role: (&str, String),
    service_account: String,
    labels: BTreeMap<String, String>,
) -> Result<Manifest, RenderError> {
    let meta = metadata(scope, name, labels);
    Manifest::new(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        &meta,
        &RoleBinding {
            metadata: meta.clone(),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_owned(),
                kind: role.0.to_owned(),
                name: role.1,
            },
            subjects: Some(vec![subject(service_account, scope.namespace())]),
        },
    )
}

fn subject(name: String, namespace: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name,
        namespace: Some(namespace.to_owned()),
        api_group: None,
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[String]) -> PolicyRule {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        resource_names: (!names.is_empty()).then(|| names.to_vec()),
        non_resource_urls: None,
    }
}
