//! The labels every rendered object carries: the Kubernetes recommended
//! `app.kubernetes.io/*` set, plus the charts' `component` label on server pods, which
//! their Service selectors (and runbooks) use.

use std::collections::BTreeMap;

use crate::layout::ServerLayout;

/// The `app.kubernetes.io/managed-by` value.
pub const MANAGED_BY: &str = "vaultkeeper";

/// What part of the cluster an object belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The Vault server pods and everything serving them.
    Server,
    /// The backup CronJob and its identity.
    Backup,
    /// The metrics-token CronJob and its identity.
    MetricsToken,
}

impl Component {
    fn as_str(self) -> &'static str {
        match self {
            Component::Server => "server",
            Component::Backup => "backup",
            Component::MetricsToken => "metrics-token",
        }
    }
}

/// Label sets for one cluster.
#[derive(Clone, Debug)]
pub struct Labels {
    app_name: &'static str,
    instance: String,
    version: Option<String>,
}

impl Labels {
    /// Labels for the cluster `instance` of the given layout; `version` is the image tag.
    pub fn new(layout: ServerLayout, instance: &str, version: Option<String>) -> Self {
        Self {
            app_name: layout.app_name(),
            instance: instance.to_owned(),
            version,
        }
    }

    /// The immutable selector of the server pods (the charts' selector).
    pub fn server_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "app.kubernetes.io/name".to_owned(),
                self.app_name.to_owned(),
            ),
            (
                "app.kubernetes.io/instance".to_owned(),
                self.instance.clone(),
            ),
            ("component".to_owned(), "server".to_owned()),
        ])
    }

    /// Labels for the metadata of an object of `component`.
    pub fn object(&self, component: Component) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (
                "app.kubernetes.io/name".to_owned(),
                self.app_name.to_owned(),
            ),
            (
                "app.kubernetes.io/instance".to_owned(),
                self.instance.clone(),
            ),
            (
                "app.kubernetes.io/component".to_owned(),
                component.as_str().to_owned(),
            ),
            (
                "app.kubernetes.io/managed-by".to_owned(),
                MANAGED_BY.to_owned(),
            ),
            (
                "app.kubernetes.io/part-of".to_owned(),
                "vaultkeeper".to_owned(),
            ),
        ]);
        if let Some(version) = &self.version {
            labels.insert("app.kubernetes.io/version".to_owned(), version.clone());
        }
        labels
    }

    /// Labels for server pods: the selector plus the recommended set.
    pub fn server_pod(&self) -> BTreeMap<String, String> {
        let mut labels = self.object(Component::Server);
        labels.extend(self.server_selector());
        labels
    }

    /// The label selector that finds every object vaultkeeper rendered for this cluster
    /// (for pruning what the spec no longer asks for).
    pub fn owned_selector(instance: &str) -> String {
        format!("app.kubernetes.io/instance={instance},app.kubernetes.io/managed-by={MANAGED_BY}")
    }
}

/// The tag of an image reference, if it has one (`hashicorp/vault:2.0.4` → `2.0.4`).
/// Label values allow at most 63 characters of `[A-Za-z0-9._-]`; anything else is left out.
pub fn image_tag(image: &str) -> Option<String> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let (_, tag) = without_digest.rsplit_once(':')?;
    let valid = !tag.is_empty()
        && tag.len() <= 63
        && !tag.contains('/')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    valid.then(|| tag.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_become_version_labels_only_when_valid() {
        assert_eq!(image_tag("hashicorp/vault:2.0.4").as_deref(), Some("2.0.4"));
        assert_eq!(image_tag("registry:5000/openbao/openbao").as_deref(), None);
        assert_eq!(
            image_tag("registry:5000/openbao/openbao:2.7.2").as_deref(),
            Some("2.7.2")
        );
        assert_eq!(image_tag("hashicorp/vault@sha256:abc").as_deref(), None);
    }
}
