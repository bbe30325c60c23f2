//! Namespace lifecycle (<https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/>):
//! every namespace gets the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap;
//! a deleted namespace turns `Terminating`, its content is deleted, then the `kubernetes`
//! finalizer is removed and the namespace goes.

use super::manager;
use crate::core::{Core, DeleteOptions};
use serde_json::{Value, json};

/// One pass over all namespaces.
pub fn pass(core: &Core) {
    let Ok(ns_t) = core.core_type("namespaces") else {
        return;
    };
    for ns in core.list_raw(&ns_t, None) {
        let name = ns["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if ns["metadata"]["deletionTimestamp"].is_null() {
            ensure_defaults(core, &name);
        } else {
            terminate(core, &ns, &name);
        }
    }
}

fn ensure_defaults(core: &Core, ns: &str) {
    let (Ok(sa_t), Ok(cm_t)) = (
        core.core_type("serviceaccounts"),
        core.core_type("configmaps"),
    ) else {
        return;
    };
    if core.get_raw(&sa_t, ns, "default").is_none() {
        let _ = core.create(
            &sa_t,
            ns,
            json!({"metadata": {"name": "default"}}),
            &manager("kube-controller-manager"),
        );
    }
    if core.get_raw(&cm_t, ns, "kube-root-ca.crt").is_none() {
        let _ = core.create(
            &cm_t,
            ns,
            json!({"metadata": {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}}, "data": {"ca.crt": core.ca_pem}}),
            &manager("kube-controller-manager"),
        );
    }
}

fn terminate(core: &Core, ns: &Value, name: &str) {
    let mut remaining = 0;
    for t in core
        .types()
        .iter()
        .filter(|t| t.namespaced && t.view == crate::kinds::View::Native && !t.create_only())
    {
        for o in core.list_raw(t, Some(name)) {
            remaining += 1;
            if o["metadata"]["deletionTimestamp"].is_null() {
                let n = o["metadata"]["name"].as_str().unwrap_or_default();
                let _ = core.delete(
                    t,
                    name,
                    n,
                    &DeleteOptions {
                        propagation: Some("Background".into()),
                        ..Default::default()
                    },
                );
            }
        }
    }
    if remaining == 0 {
        let mut new = ns.clone();
        new["spec"]["finalizers"] = json!([]);
        let _ = core.finalize_namespace(new);
    }
}
