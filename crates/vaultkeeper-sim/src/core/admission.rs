//! What every write passes through before it is stored, and the bookkeeping after:
//! decoding into the typed struct (so unknown fields are found as the real server finds
//! them), defaults, validation, CRD schemas and CEL rules, the ServiceAccount admission
//! plugin, Service IP allocation, and the kinds whose storing changes what is served
//! (CustomResourceDefinitions). Kept apart from the request flow in `write` so a reader
//! sees the rules of one write without the per-kind details.

use super::{Core, FieldValidation, WriteOptions, lock, meta_str, random_suffix};
use crate::builtin;
use crate::crd;
use crate::error::{Cause, SimError};
use crate::kinds::{KindSource, ResourceType};
use crate::store::Store;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::sync::Arc;

impl Core {
    pub(super) fn check_namespace(
        &self,
        store: &Store,
        rt: &ResourceType,
        ns: &str,
        name: &str,
    ) -> Result<(), SimError> {
        if !rt.namespaced {
            return Ok(());
        }
        match store.get("/namespaces", "", ns) {
            None => Err(SimError::NotFound {
                resource: "namespaces".into(),
                name: ns.to_string(),
            }),
            Some(n)
                if n["status"]["phase"] == "Terminating"
                    || !n["metadata"]["deletionTimestamp"].is_null() =>
            {
                Err(SimError::Forbidden(format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.qualified()
                )))
            }
            Some(_) => Ok(()),
        }
    }

    pub(super) fn allocate_service_ip(&self, store: &Store) -> Option<String> {
        let mut used = lock(&self.used_service_ips);
        for svc in store.list("/services", None) {
            if let Some(ip) = svc["spec"]["clusterIP"]
                .as_str()
                .and_then(|s| s.parse().ok())
            {
                used.insert(ip);
            }
        }
        let start = u32::from(self.addresses.service_ip_start);
        (0..self.addresses.service_ip_count)
            .map(|i| Ipv4Addr::from(start + i))
            .find(|ip| !used.contains(ip))
            .map(|ip| {
                used.insert(ip);
                ip.to_string()
            })
    }

    /// Decoding, defaulting and validation of a write (`old` is the current object).
    pub(super) fn prepare(
        &self,
        store: &Store,
        rt: &ResourceType,
        mut obj: Value,
        old: Option<&Value>,
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> Result<Value, SimError> {
        let name = meta_str(&obj, "name").to_string();
        let invalid = |causes: Vec<Cause>| SimError::Invalid {
            kind: rt.kind.clone(),
            group: rt.group.clone(),
            name: name.clone(),
            causes,
        };
        match &rt.source {
            KindSource::Builtin { roundtrip, .. } => {
                let before = obj.clone();
                obj = roundtrip(obj).map_err(|e| {
                    SimError::BadRequest(format!("{} in body is invalid: {e}", rt.kind))
                })?;
                let mut unknown = Vec::new();
                unknown_fields(&before, &obj, "", &mut unknown);
                report_unknown(rt, &name, unknown, opts, warnings)?;
                let mut alloc = || self.allocate_service_ip(store);
                builtin::apply_defaults(&rt.kind, &mut obj, &mut alloc);
                let causes = builtin::validate(&rt.kind, &obj, old);
                if !causes.is_empty() {
                    return Err(invalid(causes));
                }
                if rt.kind == "CustomResourceDefinition" {
                    crd::validate_crd(&obj)?;
                }
            }
            KindSource::Custom(kind) => {
                let prepared = crd::prune_and_default(kind, &obj);
                report_unknown(rt, &name, prepared.unknown, opts, warnings)?;
                obj = prepared.object;
                let validator = lock(&self.validator);
                crd::validate_object(kind, &obj, old, &validator)?;
            }
        }
        Ok(obj)
    }

    pub(super) fn fill_type_meta(
        &self,
        srt: &ResourceType,
        obj: &mut Value,
        rt: &ResourceType,
    ) -> Result<(), SimError> {
        if !obj.is_object() {
            return Err(SimError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        let want = srt.api_version();
        match obj.get("apiVersion").and_then(Value::as_str) {
            Some(v)
                if v != want
                    && !(rt.custom().is_some() && v.starts_with(&format!("{}/", rt.group))) =>
            {
                return Err(SimError::BadRequest(format!(
                    "the API version in the data ({v}) does not match the expected API version ({want})"
                )));
            }
            _ => obj["apiVersion"] = json!(want),
        }
        match obj.get("kind").and_then(Value::as_str) {
            Some(k) if k != srt.kind => {
                return Err(SimError::BadRequest(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    srt.kind
                )));
            }
            _ => obj["kind"] = json!(srt.kind),
        }
        if obj.get("metadata").is_none_or(|m| !m.is_object()) {
            obj["metadata"] = json!({});
        }
        Ok(())
    }

    /// ServiceAccount admission (the real plugin): default `serviceAccountName`, require
    /// the account to exist, and mount the projected API credentials unless opted out.
    pub(super) fn admit_pod(
        &self,
        store: &Store,
        ns: &str,
        pod: &mut Value,
    ) -> Result<(), SimError> {
        let sa_name = pod["spec"]["serviceAccountName"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        pod["spec"]["serviceAccountName"] = json!(sa_name);
        pod["spec"]["serviceAccount"] = json!(sa_name);
        let Some(sa) = store.get("/serviceaccounts", ns, &sa_name) else {
            return Err(SimError::Forbidden(format!(
                "pods \"{}\" is forbidden: error looking up service account {ns}/{sa_name}: serviceaccount \"{sa_name}\" not found",
                meta_str(pod, "name")
            )));
        };
        let automount = pod["spec"]["automountServiceAccountToken"]
            .as_bool()
            .or_else(|| sa["automountServiceAccountToken"].as_bool())
            .unwrap_or(true);
        if !automount {
            return Ok(());
        }
        const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
        let already = pod["spec"]["containers"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["volumeMounts"]
                    .as_array()
                    .is_some_and(|ms| ms.iter().any(|m| m["mountPath"] == MOUNT))
            })
        });
        if already {
            return Ok(());
        }
        let vol_name = format!("kube-api-access-{}", random_suffix(5));
        let volume = json!({"name": vol_name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}});
        match pod["spec"].get_mut("volumes") {
            Some(Value::Array(vs)) => vs.push(volume),
            _ => pod["spec"]["volumes"] = json!([volume]),
        }
        for list in ["containers", "initContainers"] {
            if let Some(Value::Array(cs)) = pod["spec"].get_mut(list) {
                for c in cs {
                    let m = json!({"name": vol_name, "mountPath": MOUNT, "readOnly": true});
                    match c.get_mut("volumeMounts") {
                        Some(Value::Array(ms)) => ms.push(m),
                        _ => c["volumeMounts"] = json!([m]),
                    }
                }
            }
        }
        Ok(())
    }

    /// Kind-specific bookkeeping before a write is stored (CRD status).
    pub(super) fn after_write_hooks(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        _old: Option<&Value>,
    ) -> Result<(), SimError> {
        if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
            let names = obj["spec"]["names"].clone();
            let mut accepted = names.clone();
            if accepted.get("singular").is_none_or(Value::is_null) {
                accepted["singular"] = json!(
                    names["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                );
            }
            if accepted.get("listKind").is_none_or(Value::is_null) {
                accepted["listKind"] = json!(format!(
                    "{}List",
                    names["kind"].as_str().unwrap_or_default()
                ));
            }
            let now = self.clock.now_rfc3339();
            let stored: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["storage"] == json!(true))
                .map(|v| v["name"].clone())
                .collect();
            obj["status"] = json!({
                "acceptedNames": accepted,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
                ],
                "storedVersions": stored,
            });
        }
        Ok(())
    }

    /// Side effects once a write is stored: CRDs (re)register their kinds.
    pub(super) fn on_committed(&self, rt: &ResourceType, obj: &Value, _old: Option<&Value>) {
        if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
            let crd_name = meta_str(obj, "name").to_string();
            let new_types = crd::served_types(obj);
            if let Ok(mut types) = self.types.write() {
                types.retain(|t| t.custom().is_none_or(|c| c.crd_name != crd_name));
                types.extend(new_types.into_iter().map(Arc::new));
            }
        }
    }

    pub(super) fn on_removed(&self, rt: &ResourceType, obj: &Value) {
        if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
            let crd_name = meta_str(obj, "name").to_string();
            let storage = format!(
                "{}/{}",
                obj["spec"]["group"].as_str().unwrap_or_default(),
                obj["spec"]["names"]["plural"].as_str().unwrap_or_default()
            );
            if let Ok(mut types) = self.types.write() {
                types.retain(|t| t.custom().is_none_or(|c| c.crd_name != crd_name));
            }
            // The CRD's instances go with it (customresourcecleanup finalizer).
            let mut store = self.store();
            for o in store.list(&storage, None) {
                store.remove(&storage, meta_str(&o, "namespace"), meta_str(&o, "name"));
            }
        }
        if rt.kind == "Service"
            && let Some(ip) = obj["spec"]["clusterIP"]
                .as_str()
                .and_then(|s| s.parse().ok())
        {
            lock(&self.used_service_ips).remove(&ip);
        }
    }
}

fn report_unknown(
    rt: &ResourceType,
    name: &str,
    unknown: Vec<String>,
    opts: &WriteOptions,
    warnings: &mut Vec<String>,
) -> Result<(), SimError> {
    if unknown.is_empty() {
        return Ok(());
    }
    match opts.field_validation {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Warn => {
            warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
            Ok(())
        }
        FieldValidation::Strict => {
            let list: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            Err(SimError::BadRequest(format!(
                "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                rt.kind,
                rt.version,
                rt.kind,
                list.join(", ")
            )))
            .inspect_err(|_e| {
                let _ = name;
            })
        }
    }
}

/// Fields present in `before` but gone after decoding into the typed struct.
fn unknown_fields(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    Some(av) => unknown_fields(bv, av, &p, out),
                    None if !bv.is_null() => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a.iter()).enumerate() {
                unknown_fields(bv, av, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}
