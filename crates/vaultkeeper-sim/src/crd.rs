//! CustomResourceDefinitions: turning a CRD into served kinds, and handling custom objects
//! the way the apiextensions server does — prune unknown fields, apply schema defaults,
//! validate against the structural schema, then run the `x-kubernetes-validations` CEL
//! rules (<https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/>).
//! CEL evaluation uses the `kube-cel` crate, which fails closed on a rule it cannot
//! evaluate, so a rule is never silently skipped.

use crate::error::{Cause, SimError};
use crate::kinds::{CustomKind, KindSource, ResourceType, View};
use crate::patch::{ListType, ListTypes, builtin_list_type};
use serde_json::{Map, Value, json};
use std::sync::Arc;

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or_default()
}

/// Checks a CRD is one the server can serve honestly: v1 structural schema per version,
/// CEL rules that compile, and a conversion strategy it supports.
pub fn validate_crd(crd: &Value) -> Result<(), SimError> {
    let name = str_at(crd, &["metadata", "name"]).to_string();
    let invalid = |causes: Vec<Cause>| SimError::Invalid {
        kind: "CustomResourceDefinition".into(),
        group: "apiextensions.k8s.io".into(),
        name: name.clone(),
        causes,
    };
    let spec = &crd["spec"];
    let group = str_at(spec, &["group"]);
    let plural = str_at(spec, &["names", "plural"]);
    let mut causes = Vec::new();
    if name != format!("{plural}.{group}") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if str_at(spec, &["names", "kind"]).is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    if !matches!(str_at(spec, &["scope"]), "Namespaced" | "Cluster") {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.scope",
            "Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.versions",
            "Required value",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let schema = &v["schema"]["openAPIV3Schema"];
        if schema.is_null() {
            causes.push(Cause::new(
                "FieldValueRequired",
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Required value: schemas are required",
            ));
            continue;
        }
        structural_check(
            schema,
            &format!("spec.versions[{i}].schema.openAPIV3Schema"),
            &mut causes,
            true,
        );
        let compiled = kube_cel::compile_schema(schema);
        collect_compile_errors(
            &compiled,
            &format!("spec.versions[{i}].schema.openAPIV3Schema"),
            &mut causes,
        );
    }
    let strategy = str_at(spec, &["conversion", "strategy"]);
    if strategy == "Webhook" {
        return Err(SimError::NotImplemented(format!(
            "customresourcedefinitions {name:?}: conversion webhooks are not simulated; use strategy None"
        )));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(causes))
    }
}

fn collect_compile_errors(c: &kube_cel::CompiledSchema, path: &str, causes: &mut Vec<Cause>) {
    for e in c.compilation_errors() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            format!("{path}.x-kubernetes-validations"),
            format!("Invalid value: compilation failed: {e}"),
        ));
    }
    for (k, child) in &c.properties {
        collect_compile_errors(child, &format!("{path}.properties[{k}]"), causes);
    }
    if let Some(items) = &c.items {
        collect_compile_errors(items, &format!("{path}.items"), causes);
    }
    if let Some(ap) = &c.additional_properties {
        collect_compile_errors(ap, &format!("{path}.additionalProperties"), causes);
    }
}

/// The structural-schema rule the v1 API enforces: every node states its type unless it
/// is int-or-string or preserves unknown fields.
fn structural_check(s: &Value, path: &str, causes: &mut Vec<Cause>, root: bool) {
    let has_type = s.get("type").and_then(Value::as_str).is_some();
    let int_or_string = s["x-kubernetes-int-or-string"] == json!(true);
    let preserve = s["x-kubernetes-preserve-unknown-fields"] == json!(true);
    let typed = has_type || int_or_string || (preserve && !root);
    if !typed {
        causes.push(Cause::new(
            "FieldValueRequired",
            format!("{path}.type"),
            "Required value: must not be empty for specified object fields",
        ));
    }
    if root
        && s.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "object")
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            format!("{path}.type"),
            "Invalid value: must be object at the root",
        ));
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            if root && k == "metadata" {
                continue;
            }
            structural_check(child, &format!("{path}.properties[{k}]"), causes, false);
        }
    }
    if let Some(items) = s.get("items") {
        structural_check(items, &format!("{path}.items"), causes, false);
    }
    if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
        structural_check(ap, &format!("{path}.additionalProperties"), causes, false);
    }
}

/// The kinds a CRD serves, one per served version.
pub fn served_types(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let crd_name = str_at(crd, &["metadata", "name"]).to_string();
    let group = str_at(spec, &["group"]).to_string();
    let names = &spec["names"];
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let plural = str_at(names, &["plural"]).to_string();
    let kind = str_at(names, &["kind"]).to_string();
    let singular = match str_at(names, &["singular"]) {
        "" => kind.to_ascii_lowercase(),
        s => s.to_string(),
    };
    spec["versions"]
        .as_array()
        .map(|vs| vs.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|v| v["served"] != json!(false))
        .map(|v| {
            let version = str_at(v, &["name"]).to_string();
            let schema = v["schema"]["openAPIV3Schema"].clone();
            let compiled = kube_cel::compile_schema(&schema);
            let mut subresources = Vec::new();
            if !v["subresources"]["status"].is_null() {
                subresources.push("status".to_string());
            }
            if !v["subresources"]["scale"].is_null() {
                subresources.push("scale".to_string());
            }
            let custom = CustomKind {
                crd_name: crd_name.clone(),
                group: group.clone(),
                version: version.clone(),
                kind: kind.clone(),
                schema,
                compiled,
                printer_columns: v["additionalPrinterColumns"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                scale: v["subresources"].get("scale").cloned(),
            };
            ResourceType {
                group: group.clone(),
                version,
                plural: plural.clone(),
                singular: singular.clone(),
                kind: kind.clone(),
                namespaced: str_at(spec, &["scope"]) == "Namespaced",
                short_names: strs(&names["shortNames"]),
                categories: strs(&names["categories"]),
                subresources,
                verbs: vec![
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "create",
                    "update",
                    "watch",
                ],
                storage: format!("{group}/{plural}"),
                view: View::Native,
                source: KindSource::Custom(Arc::new(custom)),
            }
        })
        .collect()
}

/// List semantics of a custom kind: `x-kubernetes-list-type` from its schema; metadata
/// follows the built-in rules.
pub struct SchemaLists<'a>(pub &'a Value);

impl ListTypes for SchemaLists<'_> {
    fn list_type(&self, path: &[&str]) -> ListType {
        if path.first() == Some(&"metadata") {
            return builtin_list_type(path);
        }
        let mut s = self.0;
        for p in path {
            let next = s
                .get("properties")
                .and_then(|props| props.get(*p))
                .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
                .or_else(|| {
                    s.get("items").and_then(|i| {
                        i.get("properties")
                            .and_then(|props| props.get(*p))
                            .or_else(|| i.get("additionalProperties").filter(|a| a.is_object()))
                    })
                });
            match next {
                Some(n) => s = n,
                None => return ListType::Atomic,
            }
        }
        match s["x-kubernetes-list-type"].as_str() {
            Some("map") => ListType::Map(
                s["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Some("set") => ListType::Set,
            _ => ListType::Atomic,
        }
    }
}

/// Outcome of preparing a custom object: the pruned, defaulted object plus the unknown
/// fields that were dropped (reported under `fieldValidation=Strict|Warn`).
pub struct Prepared {
    /// The object as it will be stored.
    pub object: Value,
    /// Paths of fields not in the schema.
    pub unknown: Vec<String>,
}

/// Prunes unknown fields and applies defaults.
pub fn prune_and_default(kind: &CustomKind, obj: &Value) -> Prepared {
    let mut unknown = Vec::new();
    let mut out = obj.clone();
    if let Value::Object(m) = &mut out {
        for (k, v) in m.iter_mut() {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(s) = kind.schema.get("properties").and_then(|p| p.get(k)) {
                prune(v, s, k, &mut unknown);
            }
        }
        let props = kind.schema.get("properties").and_then(Value::as_object);
        let preserve = kind.schema["x-kubernetes-preserve-unknown-fields"] == json!(true);
        if !preserve {
            m.retain(|k, _| {
                let keep = matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                    || props.is_some_and(|p| p.contains_key(k));
                if !keep {
                    unknown.push(k.clone());
                }
                keep
            });
        }
    }
    let defaulted = kube_cel::apply_defaults(&kind.schema, &out);
    Prepared {
        object: defaulted,
        unknown,
    }
}

fn prune(v: &mut Value, s: &Value, path: &str, unknown: &mut Vec<String>) {
    if s["x-kubernetes-preserve-unknown-fields"] == json!(true)
        && s.get("properties").is_none()
        && s.get("items").is_none()
    {
        return;
    }
    match v {
        Value::Object(m) => {
            if s["x-kubernetes-embedded-resource"] == json!(true) {
                // Embedded objects keep their type/object meta.
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                let preserve = s["x-kubernetes-preserve-unknown-fields"] == json!(true);
                let embedded = s["x-kubernetes-embedded-resource"] == json!(true);
                let mut drop = Vec::new();
                for (k, child) in m.iter_mut() {
                    match props.get(k) {
                        Some(cs) => prune(child, cs, &format!("{path}.{k}"), unknown),
                        None if preserve
                            || (embedded
                                && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")) => {}
                        None => drop.push(k.clone()),
                    }
                }
                for k in drop {
                    unknown.push(format!("{path}.{k}"));
                    m.remove(&k);
                }
            } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in m.iter_mut() {
                    prune(child, ap, &format!("{path}.{k}"), unknown);
                }
            } else if s["x-kubernetes-preserve-unknown-fields"] != json!(true)
                && s["type"] == json!("object")
                && s.get("additionalProperties") != Some(&json!(true))
            {
                for k in m.keys() {
                    unknown.push(format!("{path}.{k}"));
                }
                m.clear();
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item, is, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Validates a (pruned, defaulted) custom object against the schema, then the CEL
/// rules (with the old object for transition rules on update).
pub fn validate_object(
    kind: &CustomKind,
    obj: &Value,
    old: Option<&Value>,
    validator: &kube_cel::Validator,
) -> Result<(), SimError> {
    let mut causes = Vec::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(s) = kind.schema.get("properties").and_then(|p| p.get(k)) {
                check(v, s, k, &mut causes);
            }
        }
        if let Some(req) = kind.schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !m.contains_key(r) {
                    causes.push(Cause::new("FieldValueRequired", r, "Required value"));
                }
            }
        }
    }
    if causes.is_empty() {
        let ctx = kube_cel::RootContext {
            api_version: format!("{}/{}", kind.group, kind.version),
            api_group: kind.group.clone(),
            kind: kind.kind.clone(),
        };
        if let Err(errs) =
            validator.validate_compiled_with_context(&kind.compiled, obj, old, Some(&ctx))
        {
            for e in errs.iter() {
                let reason = match e.reason.as_deref() {
                    Some("FieldValueForbidden") => "FieldValueForbidden",
                    Some("FieldValueRequired") => "FieldValueRequired",
                    Some("FieldValueDuplicate") => "FieldValueDuplicate",
                    _ => "FieldValueInvalid",
                };
                let field = e.field_path.trim_start_matches('.').to_string();
                let message = match e.kind {
                    kube_cel::ErrorKind::ValidationFailure => {
                        format!("Invalid value: \"object\": {}", e.message)
                    }
                    // A rule the evaluator cannot run rejects the object (fail closed),
                    // saying why, instead of pretending it passed.
                    _ => format!(
                        "Internal error: rule {:?} could not be evaluated: {}",
                        e.rule, e.message
                    ),
                };
                causes.push(Cause::new(reason, field, message));
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(SimError::Invalid {
            kind: kind.kind.clone(),
            group: kind.group.clone(),
            name: str_at(obj, &["metadata", "name"]).to_string(),
            causes,
        })
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

/// Structural validation of one node, with the real server's message shapes
/// (`spec.replicas in body should be less than or equal to 7`).
fn check(v: &Value, s: &Value, path: &str, causes: &mut Vec<Cause>) {
    if v.is_null() {
        if s["nullable"] == json!(true) {
            return;
        }
        causes.push(Cause::new(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                s["type"].as_str().unwrap_or("object")
            ),
        ));
        return;
    }
    let int_or_string = s["x-kubernetes-int-or-string"] == json!(true);
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == t
            || (t == "number" && actual == "integer")
            || (int_or_string && matches!(actual, "integer" | "string"));
        if !ok {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must be of type {t}: \"{actual}\"",
                    show(v)
                ),
            ));
            return;
        }
    }
    if let Some(en) = s.get("enum").and_then(Value::as_array)
        && !en.contains(v)
    {
        let supported: Vec<String> = en.iter().map(|e| e.to_string()).collect();
        causes.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                v,
                supported.join(", ")
            ),
        ));
    }
    if let Some(n) = v.as_f64() {
        let excl_min = s["exclusiveMinimum"] == json!(true);
        let excl_max = s["exclusiveMaximum"] == json!(true);
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && (n < min || (excl_min && n == min))
        {
            let rel = if excl_min {
                "greater than"
            } else {
                "greater than or equal to"
            };
            causes.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {v}: {path} in body should be {rel} {}",
                    s["minimum"]
                ),
            ));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && (n > max || (excl_max && n == max))
        {
            let rel = if excl_max {
                "less than"
            } else {
                "less than or equal to"
            };
            causes.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {v}: {path} in body should be {rel} {}",
                    s["maximum"]
                ),
            ));
        }
        if s["format"] == json!("int32") && (n > i32::MAX as f64 || n < i32::MIN as f64) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {v}: {path} in body must be of type int32"),
            ));
        }
    }
    if let Some(st) = v.as_str() {
        let len = st.chars().count() as u64;
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {v}: {path} in body should be at least {min} chars long"),
            ));
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            causes.push(Cause::new(
                "FieldValueTooLong",
                path,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            match regex::Regex::new(p) {
                Ok(re) if !re.is_match(st) => causes.push(Cause::new(
                    "FieldValueInvalid",
                    path,
                    format!("Invalid value: {v}: {path} in body should match '{p}'"),
                )),
                Ok(_) => {}
                Err(_) => causes.push(Cause::new(
                    "FieldValueInvalid",
                    path,
                    format!("Internal error: pattern {p:?} does not compile"),
                )),
            }
        }
    }
    match v {
        Value::Array(items) => {
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {}: {path} in body should have at least {min} items",
                        items.len()
                    ),
                ));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                causes.push(Cause::new(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, is, &format!("{path}[{i}]"), causes);
                }
            }
            if s["x-kubernetes-list-type"] == json!("set")
                || s["x-kubernetes-list-type"] == json!("map")
            {
                let keys: Option<Vec<&str>> = s["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect());
                let mut seen: Vec<Value> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let probe = match &keys {
                        Some(ks) => Value::Object(
                            ks.iter()
                                .map(|k| (k.to_string(), item[*k].clone()))
                                .collect::<Map<_, _>>(),
                        ),
                        None => item.clone(),
                    };
                    if seen.contains(&probe) {
                        causes.push(Cause::new(
                            "FieldValueDuplicate",
                            format!("{path}[{i}]"),
                            format!("Duplicate value: {probe}"),
                        ));
                    }
                    seen.push(probe);
                }
            }
        }
        Value::Object(m) => {
            if let Some(req) = s.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !m.contains_key(r) {
                        causes.push(Cause::new(
                            "FieldValueRequired",
                            format!("{path}.{r}"),
                            "Required value",
                        ));
                    }
                }
            }
            if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
                && (m.len() as u64) > max
            {
                causes.push(Cause::new(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {}: must have at most {max} items", m.len()),
                ));
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, child) in m {
                    if let Some(cs) = props.get(k) {
                        check(child, cs, &format!("{path}.{k}"), causes);
                    }
                }
            } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in m {
                    check(child, ap, &format!("{path}.{k}"), causes);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "vaultclusters.vaultkeeper.io"},
            "spec": {"group": "vaultkeeper.io", "scope": "Namespaced",
                "names": {"plural": "vaultclusters", "kind": "VaultCluster", "shortNames": ["vc"]},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "required": ["image"],
                            "x-kubernetes-validations": [{"rule": "self.replicas % 2 == 1", "message": "replicas must be odd"}],
                            "properties": {
                            "replicas": {"type": "integer", "default": 3, "minimum": 1, "maximum": 7},
                            "image": {"type": "string", "minLength": 1},
                            "flavor": {"type": "string", "enum": ["Vault", "OpenBao"]}
                        }},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }}}}]}
        })
    }

    fn kind() -> Arc<CustomKind> {
        served_types(&crd())[0].custom().unwrap().clone()
    }

    fn run(obj: Value) -> Result<Value, SimError> {
        let k = kind();
        let p = prune_and_default(&k, &obj);
        validate_object(&k, &p.object, None, &kube_cel::Validator::new())?;
        Ok(p.object)
    }

    #[test]
    fn defaults_are_applied_and_unknown_fields_pruned() {
        let k = kind();
        let p = prune_and_default(
            &k,
            &json!({"metadata": {"name": "a"}, "spec": {"image": "x", "bogus": 1}}),
        );
        assert_eq!(p.object["spec"]["replicas"], 3);
        assert!(p.object["spec"].get("bogus").is_none());
        assert_eq!(p.unknown, vec!["spec.bogus".to_string()]);
    }

    #[test]
    fn schema_violations_name_the_field_like_the_real_server() {
        let cases = [
            (
                json!({"image": "x", "replicas": 9}),
                "spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 7",
            ),
            (
                json!({"image": "x", "replicas": "3"}),
                "spec.replicas: Invalid value: \"3\": spec.replicas in body must be of type integer: \"string\"",
            ),
            (
                json!({"image": "x", "flavor": "Consul"}),
                "spec.flavor: Unsupported value: \"Consul\": supported values: \"Vault\", \"OpenBao\"",
            ),
            (json!({"replicas": 3}), "spec.image: Required value"),
        ];
        for (spec, want) in cases {
            let e = run(json!({"metadata": {"name": "a"}, "spec": spec})).unwrap_err();
            assert_eq!(e.code(), 422);
            assert!(e.to_string().contains(want), "{e} should contain {want}");
        }
    }

    #[test]
    fn cel_rules_run_after_defaults() {
        let e = run(json!({"metadata": {"name": "a"}, "spec": {"image": "x", "replicas": 4}}))
            .unwrap_err();
        assert!(e.to_string().contains("replicas must be odd"), "{e}");
        assert!(run(json!({"metadata": {"name": "a"}, "spec": {"image": "x"}})).is_ok());
    }

    #[test]
    fn non_structural_and_uncompilable_crds_are_refused() {
        let mut bad = crd();
        bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["x"] = json!({"description": "no type"});
        assert!(
            validate_crd(&bad)
                .unwrap_err()
                .to_string()
                .contains("properties[x].type")
        );
        let mut bad = crd();
        bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
            json!([{"rule": "self.(("}]);
        assert!(validate_crd(&bad).is_err());
        assert!(validate_crd(&crd()).is_ok());
        let mut webhook = crd();
        webhook["spec"]["conversion"] = json!({"strategy": "Webhook"});
        assert_eq!(validate_crd(&webhook).unwrap_err().code(), 501);
    }
}
