//! The prometheus-operator ServiceMonitor and PrometheusRule. The operator applies them
//! only when the `monitoring.coreos.com` CRDs exist in the cluster.

use std::collections::BTreeMap;

use vaultkeeper_api::ScrapeScope;

use crate::labels::Component;
use crate::manifest::{Manifest, metadata};
use crate::tls::TlsFiles;
use crate::{RenderError, Scope};

/// The key of the metrics token in its Secret.
pub const METRICS_TOKEN_KEY: &str = "token";

pub(crate) fn render(scope: &Scope<'_>) -> Result<Vec<Manifest>, RenderError> {
    let monitoring = &scope.cluster.spec.monitoring;
    let mut out = Vec::new();
    if monitoring.enabled && monitoring.service_monitor.enabled {
        out.push(service_monitor(scope)?);
    }
    // The alerts stand on their own: several watch the operator's metrics and the backups,
    // which need no metrics token.
    if monitoring.prometheus_rule.enabled {
        out.push(prometheus_rule(scope)?);
    }
    Ok(out)
}

fn prometheus_rule(scope: &Scope<'_>) -> Result<Manifest, RenderError> {
    let rule = &scope.cluster.spec.monitoring.prometheus_rule;
    let mut labels = scope.labels.object(Component::Server);
    labels.extend(rule.labels.clone());
    let meta = metadata(scope, scope.names.monitoring(), labels);
    let object = serde_json::json!({
        "metadata": meta,
        "spec": {"groups": [crate::alerts::rule_group(scope)]},
    });
    Manifest::new("monitoring.coreos.com/v1", "PrometheusRule", &meta, &object)
}

fn service_monitor(scope: &Scope<'_>) -> Result<Manifest, RenderError> {
    let monitor = &scope.cluster.spec.monitoring.service_monitor;
    let names = &scope.names;
    let mut labels = scope.labels.object(Component::Server);
    labels.extend(monitor.labels.clone());
    let meta = metadata(scope, names.monitoring(), labels);

    // All nodes through the headless Service (each pod reports its own seal status and
    // raft health), or only the active node.
    let (service_label, service_name) = match monitor.scrape {
        ScrapeScope::AllNodes => (
            scope.layout.registration_label("internal"),
            names.internal_service(),
        ),
        ScrapeScope::ActiveOnly => (
            scope.layout.registration_label("active"),
            names.active_service(),
        ),
    };
    let mut selector: BTreeMap<String, String> = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            scope.layout.app_name().to_owned(),
        ),
        (
            "app.kubernetes.io/instance".to_owned(),
            names.cluster().to_owned(),
        ),
    ]);
    selector.insert(service_label, "true".to_owned());

    let mut endpoint = serde_json::json!({
        "port": scope.tls.scheme(),
        "scheme": scope.tls.scheme(),
        "path": "/v1/sys/metrics",
        "params": {"format": ["prometheus"]},
        "interval": monitor.interval,
        "authorization": {
            "type": "Bearer",
            "credentials": {"name": names.metrics_token_secret(), "key": METRICS_TOKEN_KEY},
        },
    });
    if let TlsFiles::Enabled(files) = &scope.tls {
        endpoint["tlsConfig"] = serde_json::json!({
            "ca": {"secret": {"name": files.secret_name, "key": "ca.crt"}},
            "serverName": format!("{service_name}.{}.svc", scope.namespace()),
        });
    }
    let object = serde_json::json!({
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector},
            "namespaceSelector": {"matchNames": [scope.namespace()]},
            "endpoints": [endpoint],
        }
    });
    Manifest::new("monitoring.coreos.com/v1", "ServiceMonitor", &meta, &object)
}
