//! Endpoints and EndpointSlice controllers
//! (<https://kubernetes.io/docs/concepts/services-networking/service/#endpoints>): for each
//! Service with a selector, the IPs of matching pods — ready ones as `addresses`, others
//! as `notReadyAddresses`, unless `publishNotReadyAddresses` publishes them all (the
//! headless `-internal` Service of the Vault chart relies on it) — with target ports
//! resolved against the pods' named container ports.

use super::{controller_ref, manager, name_of, pod_ready, terminating};
use crate::core::{Core, DeleteOptions};
use crate::selectors::LabelSelector;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Ready addresses, not-ready addresses and the ports they share.
type AddressGroup = (Vec<Value>, Vec<Value>, Vec<Value>);

/// The `subsets` of an Endpoints object for a Service and candidate pods (pure).
pub fn subsets(svc: &Value, pods: &[&Value]) -> Vec<Value> {
    let publish_all = svc["spec"]["publishNotReadyAddresses"] == json!(true);
    let svc_name = name_of(svc);
    // Group addresses by their resolved port list, as the real controller does.
    let mut groups: BTreeMap<String, AddressGroup> = BTreeMap::new();
    for pod in pods {
        let Some(ip) = pod["status"]["podIP"].as_str().filter(|s| !s.is_empty()) else {
            continue;
        };
        if terminating(pod) && !publish_all {
            continue;
        }
        let ports: Vec<Value> = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let target =
                    resolve_target_port(pod, &p["targetPort"]).or_else(|| p["port"].as_i64())?;
                let mut e =
                    json!({"port": target, "protocol": p["protocol"].as_str().unwrap_or("TCP")});
                if let Some(n) = p["name"].as_str() {
                    e["name"] = json!(n);
                }
                Some(e)
            })
            .collect();
        let mut addr = json!({"ip": ip, "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}});
        if let Some(n) = pod["spec"]["nodeName"].as_str() {
            addr["nodeName"] = json!(n);
        }
        if pod["spec"]["subdomain"] == svc_name
            && let Some(h) = pod["spec"]["hostname"].as_str()
        {
            addr["hostname"] = json!(h);
        }
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let entry = groups
            .entry(key)
            .or_insert_with(|| (Vec::new(), Vec::new(), ports.clone()));
        if pod_ready(pod) || publish_all {
            entry.0.push(addr);
        } else {
            entry.1.push(addr);
        }
    }
    groups
        .into_values()
        .map(|(ready, not_ready, ports)| {
            let mut s = json!({"ports": ports});
            if !ready.is_empty() {
                s["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                s["notReadyAddresses"] = json!(not_ready);
            }
            s
        })
        .collect()
}

fn resolve_target_port(pod: &Value, target: &Value) -> Option<i64> {
    if let Some(n) = target.as_i64() {
        return Some(n);
    }
    let name = target.as_str()?;
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_i64())
}

/// One pass over every Service.
pub fn pass(core: &Core) {
    let (Ok(svc_t), Ok(pod_t), Ok(ep_t), Ok(es_t)) = (
        core.core_type("services"),
        core.core_type("pods"),
        core.core_type("endpoints"),
        core.type_of("discovery.k8s.io", "v1", "endpointslices"),
    ) else {
        return;
    };
    let opts = manager("endpoint-controller");
    let services = core.list_raw(&svc_t, None);
    for svc in &services {
        let Some(sel) = svc["spec"]["selector"]
            .as_object()
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        if terminating(svc) {
            continue;
        }
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = name_of(svc);
        let selector = LabelSelector::from_map(
            &sel.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
        );
        let all = core.list_raw(&pod_t, Some(ns));
        let pods: Vec<&Value> = all
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| selector.matches_object(p))
            .collect();
        let subsets = subsets(svc, &pods);
        let mut ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns}});
        if let Some(l) = svc["metadata"].get("labels") {
            ep["metadata"]["labels"] = l.clone();
        }
        if !subsets.is_empty() {
            ep["subsets"] = json!(subsets);
        }
        match core.get_raw(&ep_t, ns, name) {
            Some(cur)
                if cur["subsets"] == ep["subsets"]
                    && cur["metadata"]["labels"] == ep["metadata"]["labels"] => {}
            Some(cur) => {
                ep["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
                let _ = core.update(&ep_t, ns, name, ep, None, &opts);
            }
            None => {
                let _ = core.create(&ep_t, ns, ep, &opts);
            }
        }
        write_slice(core, &es_t, svc, &pods);
    }
    // Endpoints of deleted Services go with them.
    for ep in core.list_raw(&ep_t, None) {
        let ns = ep["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = name_of(&ep);
        if name == "kubernetes" && ns == "default" {
            continue;
        }
        if core.get_raw(&svc_t, ns, name).is_none() {
            let _ = core.delete(&ep_t, ns, name, &DeleteOptions::default());
        }
    }
}

fn write_slice(
    core: &Core,
    es_t: &std::sync::Arc<crate::kinds::ResourceType>,
    svc: &Value,
    pods: &[&Value],
) {
    let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
    let svc_name = name_of(svc);
    let publish_all = svc["spec"]["publishNotReadyAddresses"] == json!(true);
    let mut endpoints = Vec::new();
    for pod in pods {
        let Some(ip) = pod["status"]["podIP"].as_str().filter(|s| !s.is_empty()) else {
            continue;
        };
        let ready = pod_ready(pod) && !terminating(pod);
        let mut e = json!({
            "addresses": [ip],
            "conditions": {"ready": ready || publish_all, "serving": pod_ready(pod), "terminating": terminating(pod)},
            "targetRef": {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
        });
        if let Some(n) = pod["spec"]["nodeName"].as_str() {
            e["nodeName"] = json!(n);
        }
        if pod["spec"]["subdomain"] == svc_name
            && let Some(h) = pod["spec"]["hostname"].as_str()
        {
            e["hostname"] = json!(h);
        }
        endpoints.push(e);
    }
    let ports: Vec<Value> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let port = pods.first().and_then(|pod| resolve_target_port(pod, &p["targetPort"])).or_else(|| p["targetPort"].as_i64()).or_else(|| p["port"].as_i64());
            json!({"name": p["name"].as_str().unwrap_or(""), "port": port, "protocol": p["protocol"].as_str().unwrap_or("TCP")})
        })
        .collect();
    let existing = core
        .list_raw(es_t, Some(ns))
        .into_iter()
        .find(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == svc_name);
    let mut slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"labels": {"kubernetes.io/service-name": svc_name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}, "ownerReferences": [controller_ref(svc)]},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    });
    let opts = manager("endpointslice-controller");
    match existing {
        Some(cur) if cur["endpoints"] == slice["endpoints"] && cur["ports"] == slice["ports"] => {}
        Some(cur) => {
            slice["metadata"]["name"] = cur["metadata"]["name"].clone();
            slice["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
            let _ = core.update(es_t, ns, name_of(&cur), slice, None, &opts);
        }
        None => {
            slice["metadata"]["generateName"] = json!(format!("{svc_name}-"));
            let _ = core.create(es_t, ns, slice, &opts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "namespace": "v", "uid": name}, "spec": {"hostname": name, "subdomain": "vault-internal", "containers": [{"name": "vault", "ports": [{"name": "http", "containerPort": 8200}]}]},
               "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn ready_and_not_ready_addresses_and_publish_not_ready() {
        let svc = json!({"metadata": {"name": "vault-active"}, "spec": {"ports": [{"name": "http", "port": 8200, "targetPort": "http"}]}});
        let (a, b) = (
            pod("vault-0", "127.21.0.10", true),
            pod("vault-1", "127.21.0.11", false),
        );
        let s = subsets(&svc, &[&a, &b]);
        assert_eq!(s[0]["addresses"][0]["ip"], "127.21.0.10");
        assert_eq!(s[0]["notReadyAddresses"][0]["ip"], "127.21.0.11");
        assert_eq!(s[0]["ports"][0]["port"], 8200, "named target port resolved");
        let internal = json!({"metadata": {"name": "vault-internal"}, "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "ports": [{"port": 8200}]}});
        let s = subsets(&internal, &[&a, &b]);
        assert_eq!(s[0]["addresses"].as_array().unwrap().len(), 2);
        assert_eq!(
            s[0]["addresses"][0]["hostname"], "vault-0",
            "pods under the governing service get hostnames"
        );
    }
}
