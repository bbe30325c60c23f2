//! Protobuf bodies (`application/vnd.kubernetes.protobuf`) for the built-in kinds that
//! client-go's typed clients write, translated to and from the JSON the store keeps.
//!
//! client-go based tools (Helm's release storage, `kubectl create namespace`/`secret`/
//! `configmap`/`serviceaccount`) send built-in objects, and the `DeleteOptions` of a delete,
//! as protobuf. The wire format is the 4-byte magic `k8s\0` followed by a `runtime.Unknown`
//! message whose `typeMeta` names the kind and whose `raw` holds the object's own message.
//! The message types are the ones generated from Kubernetes' `.proto` files (`k8s-pb`);
//! this module only maps their fields onto the JSON field names.
//!
//! Only the kinds listed in [`SUPPORTED`] are translated. Every other kind is refused with a
//! 415 that names it, rather than half-decoded: a mapping that silently dropped a field the
//! client set would store something the client never asked for.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message as _;
use serde_json::{Map, Value, json};

use crate::error::SimError;

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The prefix of every Kubernetes protobuf body.
const MAGIC: &[u8; 4] = b"k8s\0";

/// `(apiVersion, kind)` of every object translated in both directions.
pub const SUPPORTED: &[(&str, &str)] = &[
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    // The body of a delete; client-go labels it with the group version of the client.
    ("*", "DeleteOptions"),
];

/// Whether a `Content-Type` or `Accept` entry is the Kubernetes protobuf media type.
pub fn is_protobuf(media_type: &str) -> bool {
    media_type.split(';').next().unwrap_or_default().trim() == MEDIA_TYPE
}

/// Decodes a protobuf request body into the JSON object the store keeps.
pub fn decode(body: &[u8]) -> Result<Value, SimError> {
    let raw = body.strip_prefix(MAGIC).ok_or_else(|| {
        SimError::BadRequest(
            "the protobuf body does not start with the Kubernetes magic number \"k8s\\x00\"".into(),
        )
    })?;
    let unknown = Unknown::decode(raw)
        .map_err(|e| SimError::BadRequest(format!("decoding runtime.Unknown: {e}")))?;
    if let Some(encoding) = unknown
        .content_encoding
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        return Err(unsupported(&format!(
            "content encoding {encoding:?} of a protobuf body"
        )));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let bad = |e: prost::DecodeError| SimError::BadRequest(format!("decoding {kind}: {e}"));
    let mut object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => secret_to_json(core::Secret::decode(&raw[..]).map_err(bad)?),
        ("v1", "ConfigMap") => config_map_to_json(core::ConfigMap::decode(&raw[..]).map_err(bad)?),
        ("v1", "Namespace") => namespace_to_json(core::Namespace::decode(&raw[..]).map_err(bad)?),
        ("v1", "ServiceAccount") => {
            service_account_to_json(core::ServiceAccount::decode(&raw[..]).map_err(bad)?)
        }
        (_, "DeleteOptions") => {
            delete_options_to_json(meta::DeleteOptions::decode(&raw[..]).map_err(bad)?)
        }
        _ => return Err(unsupported(&kind_name(&api_version, &kind))),
    };
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Ok(Value::Object(object))
}

/// Encodes a JSON object of a supported kind as a protobuf response body; `None` for any
/// other kind (the caller answers 406).
pub fn encode(object: &Value) -> Option<Vec<u8>> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let raw = match (api_version, kind) {
        ("v1", "Secret") => secret_from_json(object).encode_to_vec(),
        ("v1", "ConfigMap") => config_map_from_json(object).encode_to_vec(),
        ("v1", "Namespace") => namespace_from_json(object).encode_to_vec(),
        ("v1", "ServiceAccount") => service_account_from_json(object).encode_to_vec(),
        _ => return None,
    };
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    unknown.encode(&mut body).ok()?;
    Some(body)
}

/// The 415 for a body this module cannot translate, naming what it was.
fn unsupported(what: &str) -> SimError {
    let served: Vec<String> = SUPPORTED
        .iter()
        .filter(|(v, _)| *v != "*")
        .map(|(v, k)| kind_name(v, k))
        .collect();
    SimError::UnsupportedMediaType(format!(
        "the body of the request was in an unknown format ({MEDIA_TYPE}): protobuf decoding of {what} is not simulated (only {} are); send it as application/json",
        served.join(", ")
    ))
}

/// `apps/v1, Kind=Deployment`, as Kubernetes names a group version kind.
pub fn kind_name(api_version: &str, kind: &str) -> String {
    let api_version = if api_version.is_empty() {
        "<no apiVersion>"
    } else {
        api_version
    };
    let kind = if kind.is_empty() { "<no kind>" } else { kind };
    format!("{api_version}, Kind={kind}")
}

// ---------------------------------------------------------------------------------------
// protobuf → JSON
// ---------------------------------------------------------------------------------------

/// Inserts `value` under `key` unless it is absent (protobuf `optional` not set).
fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.into(), v);
    }
}

fn put_str(map: &mut Map<String, Value>, key: &str, value: Option<String>) {
    put(map, key, value.map(Value::String));
}

fn put_strings(map: &mut Map<String, Value>, key: &str, values: Vec<String>) {
    if !values.is_empty() {
        map.insert(key.into(), json!(values));
    }
}

fn put_string_map(map: &mut Map<String, Value>, key: &str, values: BTreeMap<String, String>) {
    if !values.is_empty() {
        map.insert(key.into(), json!(values));
    }
}

fn put_bytes_map(map: &mut Map<String, Value>, key: &str, values: BTreeMap<String, Vec<u8>>) {
    if !values.is_empty() {
        let encoded: Map<String, Value> = values
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        map.insert(key.into(), Value::Object(encoded));
    }
}

/// `metav1.Time`: whole seconds in RFC 3339, as the JSON form carries them.
fn time_to_json(time: meta::Time) -> Option<Value> {
    let timestamp = jiff::Timestamp::from_second(time.seconds.unwrap_or_default()).ok()?;
    Some(json!(timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn object_meta_to_json(m: meta::ObjectMeta) -> Value {
    let mut out = Map::new();
    put_str(&mut out, "name", m.name);
    put_str(&mut out, "generateName", m.generate_name);
    put_str(&mut out, "namespace", m.namespace);
    put_str(&mut out, "selfLink", m.self_link);
    put_str(&mut out, "uid", m.uid);
    put_str(&mut out, "resourceVersion", m.resource_version);
    put(&mut out, "generation", m.generation.map(Value::from));
    put(
        &mut out,
        "creationTimestamp",
        m.creation_timestamp.and_then(time_to_json),
    );
    put(
        &mut out,
        "deletionTimestamp",
        m.deletion_timestamp.and_then(time_to_json),
    );
    put(
        &mut out,
        "deletionGracePeriodSeconds",
        m.deletion_grace_period_seconds.map(Value::from),
    );
    put_string_map(&mut out, "labels", m.labels);
    put_string_map(&mut out, "annotations", m.annotations);
    if !m.owner_references.is_empty() {
        let refs: Vec<Value> = m
            .owner_references
            .into_iter()
            .map(|r| {
                let mut o = Map::new();
                put_str(&mut o, "apiVersion", r.api_version);
                put_str(&mut o, "kind", r.kind);
                put_str(&mut o, "name", r.name);
                put_str(&mut o, "uid", r.uid);
                put(&mut o, "controller", r.controller.map(Value::from));
                put(
                    &mut o,
                    "blockOwnerDeletion",
                    r.block_owner_deletion.map(Value::from),
                );
                Value::Object(o)
            })
            .collect();
        out.insert("ownerReferences".into(), json!(refs));
    }
    put_strings(&mut out, "finalizers", m.finalizers);
    if !m.managed_fields.is_empty() {
        let entries: Vec<Value> = m
            .managed_fields
            .into_iter()
            .map(|e| {
                let mut o = Map::new();
                put_str(&mut o, "manager", e.manager);
                put_str(&mut o, "operation", e.operation);
                put_str(&mut o, "apiVersion", e.api_version);
                put(&mut o, "time", e.time.and_then(time_to_json));
                put_str(&mut o, "fieldsType", e.fields_type);
                // FieldsV1 carries its JSON document as bytes.
                put(
                    &mut o,
                    "fieldsV1",
                    e.fields_v1
                        .and_then(|f| f.raw)
                        .and_then(|raw| serde_json::from_slice(&raw).ok()),
                );
                put_str(&mut o, "subresource", e.subresource);
                Value::Object(o)
            })
            .collect();
        out.insert("managedFields".into(), json!(entries));
    }
    Value::Object(out)
}

fn with_metadata(metadata: Option<meta::ObjectMeta>) -> Map<String, Value> {
    let mut out = Map::new();
    put(&mut out, "metadata", metadata.map(object_meta_to_json));
    out
}

fn secret_to_json(s: core::Secret) -> Map<String, Value> {
    let mut out = with_metadata(s.metadata);
    put(&mut out, "immutable", s.immutable.map(Value::from));
    put_bytes_map(&mut out, "data", s.data);
    put_string_map(&mut out, "stringData", s.string_data);
    put_str(&mut out, "type", s.r#type);
    out
}

fn config_map_to_json(c: core::ConfigMap) -> Map<String, Value> {
    let mut out = with_metadata(c.metadata);
    put(&mut out, "immutable", c.immutable.map(Value::from));
    put_string_map(&mut out, "data", c.data);
    put_bytes_map(&mut out, "binaryData", c.binary_data);
    out
}

fn namespace_to_json(n: core::Namespace) -> Map<String, Value> {
    let mut out = with_metadata(n.metadata);
    if let Some(spec) = n.spec {
        let mut s = Map::new();
        put_strings(&mut s, "finalizers", spec.finalizers);
        out.insert("spec".into(), Value::Object(s));
    }
    if let Some(status) = n.status {
        let mut s = Map::new();
        put_str(&mut s, "phase", status.phase);
        if !status.conditions.is_empty() {
            let conditions: Vec<Value> = status
                .conditions
                .into_iter()
                .map(|c| {
                    let mut o = Map::new();
                    put_str(&mut o, "type", c.r#type);
                    put_str(&mut o, "status", c.status);
                    put(
                        &mut o,
                        "lastTransitionTime",
                        c.last_transition_time.and_then(time_to_json),
                    );
                    put_str(&mut o, "reason", c.reason);
                    put_str(&mut o, "message", c.message);
                    Value::Object(o)
                })
                .collect();
            s.insert("conditions".into(), json!(conditions));
        }
        out.insert("status".into(), Value::Object(s));
    }
    out
}

fn service_account_to_json(a: core::ServiceAccount) -> Map<String, Value> {
    let mut out = with_metadata(a.metadata);
    if !a.secrets.is_empty() {
        let secrets: Vec<Value> = a
            .secrets
            .into_iter()
            .map(|r| {
                let mut o = Map::new();
                put_str(&mut o, "kind", r.kind);
                put_str(&mut o, "namespace", r.namespace);
                put_str(&mut o, "name", r.name);
                put_str(&mut o, "uid", r.uid);
                put_str(&mut o, "apiVersion", r.api_version);
                put_str(&mut o, "resourceVersion", r.resource_version);
                put_str(&mut o, "fieldPath", r.field_path);
                Value::Object(o)
            })
            .collect();
        out.insert("secrets".into(), json!(secrets));
    }
    if !a.image_pull_secrets.is_empty() {
        let pulls: Vec<Value> = a
            .image_pull_secrets
            .into_iter()
            .map(|r| {
                let mut o = Map::new();
                put_str(&mut o, "name", r.name);
                Value::Object(o)
            })
            .collect();
        out.insert("imagePullSecrets".into(), json!(pulls));
    }
    put(
        &mut out,
        "automountServiceAccountToken",
        a.automount_service_account_token.map(Value::from),
    );
    out
}

fn delete_options_to_json(d: meta::DeleteOptions) -> Map<String, Value> {
    let mut out = Map::new();
    put(
        &mut out,
        "gracePeriodSeconds",
        d.grace_period_seconds.map(Value::from),
    );
    if let Some(p) = d.preconditions {
        let mut o = Map::new();
        put_str(&mut o, "uid", p.uid);
        put_str(&mut o, "resourceVersion", p.resource_version);
        out.insert("preconditions".into(), Value::Object(o));
    }
    put(
        &mut out,
        "orphanDependents",
        d.orphan_dependents.map(Value::from),
    );
    put_str(&mut out, "propagationPolicy", d.propagation_policy);
    put_strings(&mut out, "dryRun", d.dry_run);
    put(
        &mut out,
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        d.ignore_store_read_error_with_cluster_breaking_potential
            .map(Value::from),
    );
    out
}

// ---------------------------------------------------------------------------------------
// JSON → protobuf (objects the store already validated, so absent or mistyped fields are
// simply left unset)
// ---------------------------------------------------------------------------------------

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn i64_of(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

fn bool_of(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

fn strings_of(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn string_map_of(v: &Value, key: &str) -> BTreeMap<String, String> {
    v.get(key)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, s)| Some((k.clone(), s.as_str()?.to_string())))
        .collect()
}

fn bytes_map_of(v: &Value, key: &str) -> BTreeMap<String, Vec<u8>> {
    v.get(key)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, s)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_str()?)
                .ok()?;
            Some((k.clone(), bytes))
        })
        .collect()
}

fn objects_of<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn time_of(v: &Value, key: &str) -> Option<meta::Time> {
    let timestamp: jiff::Timestamp = v.get(key)?.as_str()?.parse().ok()?;
    Some(meta::Time {
        seconds: Some(timestamp.as_second()),
        nanos: Some(0),
    })
}

fn object_meta_of(v: &Value) -> Option<meta::ObjectMeta> {
    let m = v.get("metadata")?;
    Some(meta::ObjectMeta {
        name: str_of(m, "name"),
        generate_name: str_of(m, "generateName"),
        namespace: str_of(m, "namespace"),
        self_link: str_of(m, "selfLink"),
        uid: str_of(m, "uid"),
        resource_version: str_of(m, "resourceVersion"),
        generation: i64_of(m, "generation"),
        creation_timestamp: time_of(m, "creationTimestamp"),
        deletion_timestamp: time_of(m, "deletionTimestamp"),
        deletion_grace_period_seconds: i64_of(m, "deletionGracePeriodSeconds"),
        labels: string_map_of(m, "labels"),
        annotations: string_map_of(m, "annotations"),
        owner_references: objects_of(m, "ownerReferences")
            .map(|r| meta::OwnerReference {
                api_version: str_of(r, "apiVersion"),
                kind: str_of(r, "kind"),
                name: str_of(r, "name"),
                uid: str_of(r, "uid"),
                controller: bool_of(r, "controller"),
                block_owner_deletion: bool_of(r, "blockOwnerDeletion"),
            })
            .collect(),
        finalizers: strings_of(m, "finalizers"),
        managed_fields: objects_of(m, "managedFields")
            .map(|e| meta::ManagedFieldsEntry {
                manager: str_of(e, "manager"),
                operation: str_of(e, "operation"),
                api_version: str_of(e, "apiVersion"),
                time: time_of(e, "time"),
                fields_type: str_of(e, "fieldsType"),
                fields_v1: e.get("fieldsV1").map(|f| meta::FieldsV1 {
                    raw: Some(f.to_string().into_bytes()),
                }),
                subresource: str_of(e, "subresource"),
            })
            .collect(),
    })
}

fn secret_from_json(v: &Value) -> core::Secret {
    core::Secret {
        metadata: object_meta_of(v),
        immutable: bool_of(v, "immutable"),
        data: bytes_map_of(v, "data"),
        string_data: string_map_of(v, "stringData"),
        r#type: str_of(v, "type"),
    }
}

fn config_map_from_json(v: &Value) -> core::ConfigMap {
    core::ConfigMap {
        metadata: object_meta_of(v),
        immutable: bool_of(v, "immutable"),
        data: string_map_of(v, "data"),
        binary_data: bytes_map_of(v, "binaryData"),
    }
}

fn namespace_from_json(v: &Value) -> core::Namespace {
    core::Namespace {
        metadata: object_meta_of(v),
        spec: v.get("spec").map(|s| core::NamespaceSpec {
            finalizers: strings_of(s, "finalizers"),
        }),
        status: v.get("status").map(|s| core::NamespaceStatus {
            phase: str_of(s, "phase"),
            conditions: objects_of(s, "conditions")
                .map(|c| core::NamespaceCondition {
                    r#type: str_of(c, "type"),
                    status: str_of(c, "status"),
                    last_transition_time: time_of(c, "lastTransitionTime"),
                    reason: str_of(c, "reason"),
                    message: str_of(c, "message"),
                })
                .collect(),
        }),
    }
}

fn service_account_from_json(v: &Value) -> core::ServiceAccount {
    core::ServiceAccount {
        metadata: object_meta_of(v),
        secrets: objects_of(v, "secrets")
            .map(|r| core::ObjectReference {
                kind: str_of(r, "kind"),
                namespace: str_of(r, "namespace"),
                name: str_of(r, "name"),
                uid: str_of(r, "uid"),
                api_version: str_of(r, "apiVersion"),
                resource_version: str_of(r, "resourceVersion"),
                field_path: str_of(r, "fieldPath"),
            })
            .collect(),
        image_pull_secrets: objects_of(v, "imagePullSecrets")
            .map(|r| core::LocalObjectReference {
                name: str_of(r, "name"),
            })
            .collect(),
        automount_service_account_token: bool_of(v, "automountServiceAccountToken"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request body as client-go writes it: magic, then `runtime.Unknown` around `raw`.
    fn wire(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    fn metadata() -> Value {
        json!({
            "name": "sh.helm.release.v1.vk.v1",
            "namespace": "vk-test",
            "uid": "0b5c2d6e-0000-4000-8000-000000000001",
            "resourceVersion": "42",
            "creationTimestamp": "2026-12-06T21:52:52Z",
            "labels": {"owner": "helm", "name": "vk", "status": "deployed", "version": "1"},
            "annotations": {"note": "a"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                "uid": "0b5c2d6e-0000-4000-8000-000000000002", "controller": true,
                "blockOwnerDeletion": true}],
            "finalizers": ["example.com/keep"],
            "managedFields": [{"manager": "helm", "operation": "Update", "apiVersion": "v1",
                "time": "2026-12-06T21:52:52Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {".": {}, "f:release": {}}}}]
        })
    }

    /// Every supported kind, as the store keeps it, survives JSON → protobuf → JSON.
    fn round_trip(object: Value) {
        let body = encode(&object).expect("a supported kind encodes");
        assert!(body.starts_with(b"k8s\0"));
        assert_eq!(decode(&body).expect("decodes"), object);
    }

    #[test]
    fn secret_round_trips_with_binary_data_and_full_metadata() {
        round_trip(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": metadata(),
            "type": "helm.sh/release.v1",
            "data": {"release": "H4sIAAAAAAAA/wAAAP//", "bin": "AAEC/w=="},
            "immutable": false
        }));
    }

    #[test]
    fn config_map_round_trips() {
        round_trip(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"},
            "data": {"a": "1", "b": "two words"}, "binaryData": {"z": "AAE="}
        }));
    }

    #[test]
    fn namespace_round_trips_with_spec_and_status() {
        round_trip(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vk-test"},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Terminating", "conditions": [{"type": "NamespaceContentRemaining",
                "status": "True", "lastTransitionTime": "2026-12-06T21:52:52Z",
                "reason": "SomeResourcesRemain", "message": "1 left"}]}
        }));
    }

    #[test]
    fn service_account_round_trips() {
        round_trip(json!({
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "vk", "namespace": "d"},
            "secrets": [{"name": "s", "namespace": "d", "kind": "Secret"}],
            "imagePullSecrets": [{"name": "regcred"}],
            "automountServiceAccountToken": false
        }));
    }

    #[test]
    fn secret_written_by_a_client_decodes_to_the_json_form() {
        let secret = core::Secret {
            metadata: Some(meta::ObjectMeta {
                name: Some("s".into()),
                labels: BTreeMap::from([("owner".into(), "helm".into())]),
                ..Default::default()
            }),
            data: BTreeMap::from([("k".into(), b"v\x00".to_vec())]),
            string_data: BTreeMap::from([("plain".into(), "text".into())]),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let decoded = decode(&wire("v1", "Secret", secret.encode_to_vec())).expect("decodes");
        assert_eq!(
            decoded,
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "labels": {"owner": "helm"}},
                "data": {"k": "dgA="}, "stringData": {"plain": "text"}, "type": "Opaque"})
        );
    }

    #[test]
    fn delete_options_of_any_group_version_decode() {
        let options = meta::DeleteOptions {
            propagation_policy: Some("Foreground".into()),
            grace_period_seconds: Some(0),
            preconditions: Some(meta::Preconditions {
                uid: Some("u".into()),
                resource_version: None,
            }),
            dry_run: vec!["All".into()],
            ..Default::default()
        };
        let decoded = decode(&wire(
            "meta.k8s.io/v1",
            "DeleteOptions",
            options.encode_to_vec(),
        ))
        .expect("decodes");
        assert_eq!(
            decoded,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions",
                "propagationPolicy": "Foreground", "gracePeriodSeconds": 0,
                "preconditions": {"uid": "u"}, "dryRun": ["All"]})
        );
    }

    #[test]
    fn a_kind_without_a_mapping_is_a_415_naming_it() {
        let err = decode(&wire("apps/v1", "Deployment", vec![])).expect_err("refused");
        assert_eq!(err.code(), 415);
        let message = err.to_string();
        assert!(message.contains("apps/v1, Kind=Deployment"), "{message}");
        assert!(message.contains("application/json"), "{message}");
        assert_eq!(err.to_status()["reason"], "UnsupportedMediaType");
    }

    #[test]
    fn a_body_without_the_magic_number_is_a_400() {
        let err = decode(b"{\"kind\":\"Secret\"}").expect_err("refused");
        assert_eq!(err.code(), 400);
    }

    #[test]
    fn a_compressed_body_is_refused() {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
            }),
            raw: Some(vec![]),
            content_encoding: Some("gzip".into()),
            content_type: None,
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        assert_eq!(decode(&body).expect_err("refused").code(), 415);
    }

    #[test]
    fn kinds_without_a_mapping_are_not_encoded() {
        assert!(encode(&json!({"apiVersion": "apps/v1", "kind": "Deployment"})).is_none());
        assert!(encode(&json!({"apiVersion": "v1", "kind": "SecretList", "items": []})).is_none());
    }

    #[test]
    fn media_type_parameters_are_ignored() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf(
            "application/vnd.kubernetes.protobuf;stream=watch"
        ));
        assert!(!is_protobuf("application/json"));
    }
}
