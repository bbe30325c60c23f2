//! The `scale` subresource: the `autoscaling/v1` Scale view of a workload or of a custom
//! resource that declares `subresources.scale`, and writing its replicas back.

use super::Core;
use crate::error::SimError;
use crate::kinds::ResourceType;
use serde_json::{Value, json};

impl Core {
    pub(super) fn apply_scale(
        &self,
        rt: &ResourceType,
        old: &Value,
        scale: &Value,
    ) -> Result<Value, SimError> {
        let replicas = scale["spec"]["replicas"].clone();
        if !replicas.is_i64() && !replicas.is_u64() {
            return Err(SimError::BadRequest(
                "Scale.spec.replicas must be an integer".into(),
            ));
        }
        let mut n = old.clone();
        let path = match rt.custom().and_then(|c| c.scale.clone()) {
            Some(s) => s["specReplicasPath"]
                .as_str()
                .unwrap_or(".spec.replicas")
                .to_string(),
            None => ".spec.replicas".into(),
        };
        let ptr = path.replace('.', "/");
        match n.pointer_mut(&ptr) {
            Some(v) => *v = replicas,
            None => {
                let segs: Vec<&str> = path.trim_start_matches('.').split('.').collect();
                let mut cur = &mut n;
                for s in &segs[..segs.len().saturating_sub(1)] {
                    if cur.get(*s).is_none() {
                        cur[*s] = json!({});
                    }
                    cur = &mut cur[*s];
                }
                if let Some(last) = segs.last() {
                    cur[*last] = replicas;
                }
            }
        }
        n["metadata"]["resourceVersion"] = scale["metadata"]["resourceVersion"].clone();
        if n["metadata"]["resourceVersion"].is_null() {
            n["metadata"]["resourceVersion"] = json!("");
        }
        Ok(n)
    }

    /// The `Scale` object for a resource with a scale subresource.
    pub fn get_scale(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, SimError> {
        let obj = self.get(rt, ns, name)?;
        let (spec_path, status_path, selector_path) =
            match rt.custom().and_then(|c| c.scale.clone()) {
                Some(s) => (
                    s["specReplicasPath"]
                        .as_str()
                        .unwrap_or(".spec.replicas")
                        .to_string(),
                    s["statusReplicasPath"]
                        .as_str()
                        .unwrap_or(".status.replicas")
                        .to_string(),
                    s["labelSelectorPath"].as_str().map(str::to_string),
                ),
                None => (".spec.replicas".into(), ".status.replicas".into(), None),
            };
        let at = |p: &str| {
            obj.pointer(&p.replace('.', "/"))
                .cloned()
                .unwrap_or(json!(0))
        };
        let selector = match selector_path {
            Some(p) => at(&p),
            None => json!(label_selector_string(&obj["spec"]["selector"])),
        };
        Ok(json!({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": name, "namespace": ns, "uid": obj["metadata"]["uid"], "resourceVersion": obj["metadata"]["resourceVersion"], "creationTimestamp": obj["metadata"]["creationTimestamp"]},
            "spec": {"replicas": at(&spec_path)},
            "status": {"replicas": at(&status_path), "selector": selector},
        }))
    }
}

/// `metav1.LabelSelector` → its string form (`a=b,c in (d)`), as Scale.status.selector.
pub fn label_selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let vals: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", vals.join(",")),
            "NotIn" => format!("{key} notin ({})", vals.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}
