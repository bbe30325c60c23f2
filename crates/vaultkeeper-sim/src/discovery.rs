//! Discovery and OpenAPI documents, built from the served kinds: legacy discovery
//! (`/api`, `/apis`, per-group-version resource lists), aggregated discovery
//! (`apidiscovery.k8s.io/v2`, which kubectl asks for first), and OpenAPI v3 per group
//! version — enough for `kubectl explain` and for kubectl to learn that the server
//! validates fields itself (`fieldValidation` on PATCH operations), so it sends
//! `fieldValidation=Strict` instead of validating client-side.

use crate::kinds::{KindSource, ResourceType};
use crate::patch::{ListType, builtin_list_type};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Group name → versions (in preference order) → resources.
pub type GroupMap = Vec<(String, Vec<(String, Vec<Arc<ResourceType>>)>)>;

/// Groups in the order discovery lists them: core first, then in registration order.
pub fn group_map(types: &[Arc<ResourceType>]) -> GroupMap {
    let mut out: GroupMap = Vec::new();
    for t in types {
        let g = match out.iter_mut().find(|(g, _)| *g == t.group) {
            Some(g) => g,
            None => {
                out.push((t.group.clone(), Vec::new()));
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        match g.1.iter_mut().find(|(v, _)| *v == t.version) {
            Some(v) => v.1.push(t.clone()),
            None => g.1.push((t.version.clone(), vec![t.clone()])),
        }
    }
    out
}

fn subresource_kind(t: &ResourceType, sub: &str) -> (String, String, String, Vec<&'static str>) {
    let same = (t.group.clone(), t.version.clone(), t.kind.clone());
    match sub {
        "status" => (same.0, same.1, same.2, vec!["get", "patch", "update"]),
        "scale" => (
            "autoscaling".into(),
            "v1".into(),
            "Scale".into(),
            vec!["get", "patch", "update"],
        ),
        "exec" => (
            "".into(),
            "v1".into(),
            "PodExecOptions".into(),
            vec!["create", "get"],
        ),
        "log" => ("".into(), "v1".into(), "Pod".into(), vec!["get"]),
        "binding" => ("".into(), "v1".into(), "Binding".into(), vec!["create"]),
        "eviction" => (
            "policy".into(),
            "v1".into(),
            "Eviction".into(),
            vec!["create"],
        ),
        "token" => (
            "authentication.k8s.io".into(),
            "v1".into(),
            "TokenRequest".into(),
            vec!["create"],
        ),
        "finalize" => (same.0, same.1, same.2, vec!["update"]),
        _ => (same.0, same.1, same.2, vec!["get"]),
    }
}

/// `APIResourceList` for one group version.
pub fn resource_list(group_version: &str, types: &[Arc<ResourceType>]) -> Value {
    let mut resources = Vec::new();
    for t in types {
        let mut r = json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
            "kind": t.kind, "verbs": t.verbs,
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        for sub in &t.subresources {
            let (g, v, k, verbs) = subresource_kind(t, sub);
            let mut r = json!({"name": format!("{}/{}", t.plural, sub), "singularName": "", "namespaced": t.namespaced, "kind": k, "verbs": verbs});
            if g != t.group || v != t.version {
                r["group"] = json!(g);
                r["version"] = json!(v);
            }
            resources.push(r);
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

/// `APIGroup` for one group.
pub fn api_group(name: &str, versions: &[(String, Vec<Arc<ResourceType>>)]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|(v, _)| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// `APIGroupList` (`/apis`).
pub fn api_group_list(groups: &GroupMap) -> Value {
    let gs: Vec<Value> = groups
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| {
            let mut v = api_group(g, vs);
            if let Value::Object(m) = &mut v {
                m.remove("kind");
                m.remove("apiVersion");
            }
            v
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) for the
/// core group (`/api`) or the named groups (`/apis`).
pub fn aggregated(groups: &GroupMap, core: bool) -> Value {
    let items: Vec<Value> = groups
        .iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|(v, ts)| {
                    let resources: Vec<Value> = ts
                        .iter()
                        .map(|t| {
                            let subs: Vec<Value> = t
                                .subresources
                                .iter()
                                .map(|s| {
                                    let (sg, sv, sk, verbs) = subresource_kind(t, s);
                                    json!({"subresource": s, "responseKind": {"group": sg, "version": sv, "kind": sk}, "verbs": verbs})
                                })
                                .collect();
                            let mut r = json!({
                                "resource": t.plural,
                                "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
                                "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": t.singular,
                                "verbs": t.verbs,
                            });
                            if !t.short_names.is_empty() {
                                r["shortNames"] = json!(t.short_names);
                            }
                            if !t.categories.is_empty() {
                                r["categories"] = json!(t.categories);
                            }
                            if !subs.is_empty() {
                                r["subresources"] = json!(subs);
                            }
                            r
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let meta = if g.is_empty() { json!({"creationTimestamp": null}) } else { json!({"name": g, "creationTimestamp": null}) };
            json!({"metadata": meta, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// The URL prefix of a group version (`api/v1`, `apis/apps/v1`).
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the list of group-version documents.
pub fn openapi_v3_root(groups: &GroupMap, revision: u64) -> Value {
    let mut paths = Map::new();
    for (g, vs) in groups {
        for (v, _) in vs {
            let p = gv_path(g, v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={revision:016X}")}),
            );
        }
    }
    json!({"paths": paths})
}

fn schema_key(t: &ResourceType) -> String {
    match &t.source {
        KindSource::Custom(c) => {
            let rev: String = c.group.split('.').rev().collect::<Vec<_>>().join(".");
            format!("{rev}.{}.{}", c.version, c.kind)
        }
        KindSource::Builtin { .. } => String::new(),
    }
}

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#/components/schemas/{name}");
            }
            for (_, c) in m.iter_mut() {
                rewrite_refs(c);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

/// Adds the strategic-merge extensions kubectl reads (`x-kubernetes-patch-merge-key`,
/// `x-kubernetes-patch-strategy`) to built-in schemas, from the same table the server's
/// own strategic merge uses.
fn add_patch_extensions(name: &str, schema: &mut Value) {
    let Some(Value::Object(props)) = schema.get_mut("properties") else {
        return;
    };
    let in_container = name.ends_with(".Container") || name.ends_with(".EphemeralContainer");
    let in_service = name.ends_with(".ServiceSpec");
    let in_meta = name.ends_with(".ObjectMeta");
    for (field, p) in props.iter_mut() {
        let path: Vec<&str> = if in_container {
            vec!["containers", field]
        } else if in_service {
            vec!["spec", field]
        } else if in_meta {
            vec!["metadata", field]
        } else {
            vec![field]
        };
        match builtin_list_type(&path) {
            ListType::Map(keys) => {
                p["x-kubernetes-patch-merge-key"] = json!(keys[0]);
                p["x-kubernetes-patch-strategy"] = json!("merge");
                p["x-kubernetes-list-type"] = json!("map");
                p["x-kubernetes-list-map-keys"] = json!(keys);
            }
            ListType::Set => {
                p["x-kubernetes-patch-strategy"] = json!("merge");
                p["x-kubernetes-list-type"] = json!("set");
            }
            ListType::Atomic => {}
        }
    }
}

/// One group version's OpenAPI v3 document.
pub fn openapi_v3_gv(
    group: &str,
    version: &str,
    types: &[Arc<ResourceType>],
    object_meta: &Value,
) -> Value {
    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    let mut paths = Map::new();
    let base = format!("/{}", gv_path(group, version));
    for t in types {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let (key, mut schema) = match &t.source {
            KindSource::Builtin { schema, .. } => {
                let mut s = schema();
                if let Some(Value::Object(defs)) = s.get_mut("$defs").map(Value::take) {
                    for (k, mut v) in defs {
                        rewrite_refs(&mut v);
                        add_patch_extensions(&k, &mut v);
                        schemas.insert(k, v);
                    }
                }
                let title = s.get("title").and_then(Value::as_str).map(str::to_string);
                if let Value::Object(m) = &mut s {
                    m.remove("$schema");
                    m.remove("$defs");
                    m.remove("title");
                }
                rewrite_refs(&mut s);
                let key = title.unwrap_or_else(|| format!("{}.{}.{}", t.group, t.version, t.kind));
                (key, s)
            }
            KindSource::Custom(c) => {
                let mut s = c.schema.clone();
                if let Some(Value::Object(props)) = s.get_mut("properties") {
                    props.insert(
                        "metadata".into(),
                        json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
                    );
                    props.entry("apiVersion").or_insert(json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
                    props.entry("kind").or_insert(json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
                }
                // ObjectMeta and the types it refers to, under the names the built-in
                // documents use.
                let mut meta = object_meta.clone();
                if let Some(Value::Object(defs)) = meta.get_mut("$defs").map(Value::take) {
                    for (k, mut v) in defs {
                        rewrite_refs(&mut v);
                        schemas.entry(k).or_insert(v);
                    }
                }
                if let Value::Object(m) = &mut meta {
                    m.remove("$defs");
                }
                rewrite_refs(&mut meta);
                schemas.insert(
                    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
                    meta,
                );
                (schema_key(t), s)
            }
        };
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(key.clone(), schema);
        let resp = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{key}")}}}}});
        let op = |action: &str, extra: Vec<Value>| {
            let mut params = vec![
                json!({"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}}),
                json!({"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}}),
            ];
            params.extend(extra);
            json!({"operationId": format!("{action}{}", t.kind), "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": resp})
        };
        let field_validation = json!({"name": "fieldValidation", "in": "query", "description": "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields.", "schema": {"type": "string", "uniqueItems": true}});
        let force = json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}});
        let prefix = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("{base}/{}", t.plural)
        };
        paths.insert(
            prefix.clone(),
            json!({"get": op("list", vec![]), "post": op("post", vec![field_validation.clone()])}),
        );
        paths.insert(
            format!("{prefix}/{{name}}"),
            json!({
                "get": op("get", vec![]),
                "put": op("put", vec![field_validation.clone()]),
                "patch": op("patch", vec![field_validation.clone(), force.clone()]),
                "delete": op("delete", vec![]),
            }),
        );
        if t.has_subresource("status") {
            paths.insert(
                format!("{prefix}/{{name}}/status"),
                json!({"get": op("get", vec![]), "put": op("put", vec![field_validation.clone()]), "patch": op("patch", vec![field_validation.clone(), force])}),
            );
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// `/openapi/v2`: one Swagger 2.0 document for every group version, made from the same
/// schemas and paths as the v3 documents (CRDs included), for clients older than kubectl
/// 1.27 and tools that read only v2.
pub fn openapi_v2(groups: &GroupMap, object_meta: &Value) -> Value {
    let mut definitions = Map::new();
    let mut paths = Map::new();
    for (g, vs) in groups {
        for (v, types) in vs {
            let mut doc = openapi_v3_gv(g, v, types, object_meta);
            if let Some(Value::Object(schemas)) =
                doc["components"].get_mut("schemas").map(Value::take)
            {
                for (name, mut schema) in schemas {
                    to_v2_schema(&mut schema);
                    definitions.insert(name, schema);
                }
            }
            if let Value::Object(v3_paths) = doc["paths"].take() {
                for (path, mut item) in v3_paths {
                    if let Value::Object(operations) = &mut item {
                        operations.values_mut().for_each(to_v2_operation);
                    }
                    paths.insert(path, item);
                }
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "definitions": definitions,
    })
}

/// A v3 schema as a v2 definition: references point into `definitions`, and the keywords
/// Swagger 2.0 lacks (`nullable`, `oneOf`, `anyOf`, `not`) go, as the real server drops them
/// from CRD schemas it publishes as v2.
fn to_v2_schema(v: &mut Value) {
    let Value::Object(m) = v else { return };
    if let Some(Value::String(r)) = m.get_mut("$ref")
        && let Some(name) = r.strip_prefix("#/components/schemas/")
    {
        *r = format!("#/definitions/{name}");
    }
    for keyword in ["nullable", "oneOf", "anyOf", "not"] {
        m.remove(keyword);
    }
    for (keyword, child) in m.iter_mut() {
        match (keyword.as_str(), child) {
            // Maps from names to schemas.
            ("properties" | "patternProperties" | "definitions", Value::Object(named)) => {
                named.values_mut().for_each(to_v2_schema);
            }
            // Lists of schemas.
            ("allOf", Value::Array(list)) | ("items", Value::Array(list)) => {
                list.iter_mut().for_each(to_v2_schema);
            }
            // One schema.
            ("items" | "additionalProperties", child @ Value::Object(_)) => to_v2_schema(child),
            _ => {}
        }
    }
}

/// A v3 operation as a v2 one: parameter types inline, response schemas without the
/// per-media-type `content` level.
fn to_v2_operation(op: &mut Value) {
    if let Some(Value::Array(params)) = op.get_mut("parameters") {
        for p in params {
            if let Some(Value::Object(schema)) = p.as_object_mut().and_then(|m| m.remove("schema"))
            {
                for (k, v) in schema {
                    p[k] = v;
                }
            }
        }
    }
    if let Some(Value::Object(responses)) = op.get_mut("responses") {
        for response in responses.values_mut() {
            if let Some(mut schema) = response
                .get_mut("content")
                .map(Value::take)
                .and_then(|mut c| c.get_mut("application/json").map(Value::take))
                .and_then(|mut j| j.get_mut("schema").map(Value::take))
            {
                to_v2_schema(&mut schema);
                response["schema"] = schema;
            }
            if let Value::Object(m) = response {
                m.remove("content");
            }
        }
    }
    op["consumes"] = json!(["*/*"]);
    op["produces"] = json!(["application/json", "application/yaml"]);
    op["schemes"] = json!(["https"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::builtin_types;

    #[test]
    fn discovery_lists_subresources_with_their_kinds() {
        let types: Vec<Arc<ResourceType>> = builtin_types().into_iter().map(Arc::new).collect();
        let groups = group_map(&types);
        assert_eq!(groups[0].0, "", "core group first");
        let core = &groups[0].1[0].1;
        let list = resource_list("v1", core);
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods/exec"));
        assert!(names.contains(&"serviceaccounts/token"));
        let agg = aggregated(&groups, false);
        let apps = agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "apps")
            .unwrap();
        let sts = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "statefulsets")
            .unwrap();
        assert_eq!(sts["subresources"][1]["responseKind"]["kind"], "Scale");
    }

    /// Every `$ref` in `doc` names an entry of `doc[section]`.
    fn dangling_refs(doc: &Value, prefix: &str, section: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![doc];
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref")
                        && r.strip_prefix(prefix)
                            .is_none_or(|name| section.get(name).is_none())
                    {
                        out.push(r.clone());
                    }
                    stack.extend(m.values());
                }
                Value::Array(a) => stack.extend(a.iter()),
                _ => {}
            }
        }
        out
    }

    fn with_a_crd() -> GroupMap {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "size": {"type": "string", "nullable": true},
                            "port": {"oneOf": [{"type": "integer"}, {"type": "string"}]}
                        }}
                    }}}}]}
        });
        let mut types: Vec<Arc<ResourceType>> = builtin_types().into_iter().map(Arc::new).collect();
        types.extend(crate::crd::served_types(&crd).into_iter().map(Arc::new));
        group_map(&types)
    }

    fn object_meta() -> Value {
        let mut meta = serde_json::to_value(schemars::schema_for!(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta
        ))
        .unwrap();
        meta.as_object_mut().unwrap().remove("$schema");
        meta
    }

    #[test]
    fn openapi_v2_holds_every_kind_with_resolved_references() {
        let doc = openapi_v2(&with_a_crd(), &object_meta());
        assert_eq!(doc["swagger"], "2.0");
        let definitions = &doc["definitions"];
        for name in [
            "io.k8s.api.core.v1.Secret",
            "io.k8s.api.apps.v1.Deployment",
            "com.example.v1.Widget",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        ] {
            assert!(definitions.get(name).is_some(), "no definition {name}");
        }
        assert_eq!(
            dangling_refs(&doc, "#/definitions/", definitions),
            Vec::<String>::new()
        );
        // v3-only keywords are dropped from the CRD's schema; the field stays.
        let spec = &definitions["com.example.v1.Widget"]["properties"]["spec"]["properties"];
        assert_eq!(spec["size"], json!({"type": "string"}));
        assert_eq!(spec["port"], json!({}));
        // Parameters carry their type inline, responses their schema.
        let patch =
            &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
        let force = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "force")
            .unwrap();
        assert_eq!(force["type"], "boolean");
        assert_eq!(
            patch["responses"]["200"]["schema"]["$ref"],
            "#/definitions/com.example.v1.Widget"
        );
    }

    #[test]
    fn openapi_v3_of_a_crd_resolves_object_meta_references() {
        let groups = with_a_crd();
        let (_, versions) = groups.iter().find(|(g, _)| g == "example.com").unwrap();
        let doc = openapi_v3_gv("example.com", "v1", &versions[0].1, &object_meta());
        let schemas = &doc["components"]["schemas"];
        assert!(
            schemas
                .get("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference")
                .is_some()
        );
        assert_eq!(
            dangling_refs(&doc, "#/components/schemas/", schemas),
            Vec::<String>::new()
        );
    }

    #[test]
    fn openapi_v3_documents_patch_with_field_validation() {
        let types: Vec<Arc<ResourceType>> = builtin_types()
            .into_iter()
            .map(Arc::new)
            .filter(|t| t.group == "apps")
            .collect();
        let doc = openapi_v3_gv("apps", "v1", &types, &json!({}));
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "StatefulSet"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let spec = &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"];
        assert_eq!(
            spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
            "name"
        );
    }
}
