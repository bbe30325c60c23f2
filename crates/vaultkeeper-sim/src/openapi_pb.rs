//! `/openapi/v2` as protobuf: gnostic's `openapi.v2.Document`, the form client-go asks
//! for (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) and older kubectl
//! needs for `explain` and for the patches of `apply`.
//!
//! The messages below declare the part of gnostic's `OpenAPIv2.proto` that a Swagger
//! document made of definitions uses, with that file's field numbers; prost encodes them.
//! Paths are left out: clients read models (definitions and their vendor extensions) from
//! this document, and the JSON form still carries the paths.
//!
//! Vendor extensions (`x-kubernetes-group-version-kind`, `x-kubernetes-patch-strategy`…),
//! defaults, enums and examples travel as gnostic's `Any`, whose `yaml` field holds the
//! value's text; JSON is YAML, so the value is written as JSON.

use serde_json::Value;

/// The media type client-go asks for.
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The media type of the answer: the same with `.` for `@`, which is not a token
/// character, so that Go's `mime.ParseMediaType` (client-go reads every answer's type with
/// it) accepts it, as the real server answers.
pub const RESPONSE_MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Whether an Accept header item names the protobuf form (with `@` or `.` before the
/// version, as clients have spelled it).
pub fn is_openapi_protobuf(media_type: &str) -> bool {
    let m = media_type.split(';').next().unwrap_or_default().trim();
    m == MEDIA_TYPE || m == RESPONSE_MEDIA_TYPE
}

/// `openapi.v2.Document` (fields used: swagger 1, info 2, definitions 9).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
}

/// `openapi.v2.Info` (title 1, version 2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `openapi.v2.Definitions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Definitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.NamedSchema`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSchema {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

/// `openapi.v2.Any`: the value as YAML text (field 2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

/// `openapi.v2.NamedAny`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedAny {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

/// `openapi.v2.TypeItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

/// `openapi.v2.ItemsItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

/// `openapi.v2.Properties`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Properties {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.AdditionalPropertiesItem`: a schema or a boolean.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalProperties", tags = "1, 2")]
    pub oneof: Option<AdditionalProperties>,
}

/// The oneof of [`AdditionalPropertiesItem`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AdditionalProperties {
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

/// `openapi.v2.Schema`, with gnostic's field numbers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Schema {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    #[prost(double, tag = "7")]
    pub maximum: f64,
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    pub minimum: f64,
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    #[prost(string, tag = "13")]
    pub pattern: String,
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, optional, boxed, tag = "21")]
    pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    #[prost(string, tag = "26")]
    pub discriminator: String,
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

/// The JSON Swagger document (as `discovery::openapi_v2` builds it) as protobuf bytes.
pub fn encode(doc: &Value) -> Vec<u8> {
    let definitions = doc["definitions"].as_object().map(|defs| Definitions {
        additional_properties: defs
            .iter()
            .map(|(name, schema)| NamedSchema {
                name: name.clone(),
                value: Some(schema_of(schema)),
            })
            .collect(),
    });
    let document = Document {
        swagger: doc["swagger"].as_str().unwrap_or("2.0").to_string(),
        info: Some(Info {
            title: doc["info"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            version: doc["info"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }),
        definitions,
    };
    prost::Message::encode_to_vec(&document)
}

fn any(v: &Value) -> Any {
    Any {
        yaml: v.to_string(),
    }
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// One JSON schema as gnostic's `Schema`. Keywords it has no field for are dropped, as
/// gnostic drops them when it reads a document.
fn schema_of(v: &Value) -> Schema {
    let mut s = Schema {
        r#ref: text(v, "$ref"),
        format: text(v, "format"),
        title: text(v, "title"),
        description: text(v, "description"),
        pattern: text(v, "pattern"),
        discriminator: text(v, "discriminator"),
        ..Schema::default()
    };
    let Some(m) = v.as_object() else { return s };
    for (key, value) in m {
        match key.as_str() {
            "default" => s.default = Some(any(value)),
            "example" => s.example = Some(any(value)),
            "multipleOf" => s.multiple_of = value.as_f64().unwrap_or_default(),
            "maximum" => s.maximum = value.as_f64().unwrap_or_default(),
            "minimum" => s.minimum = value.as_f64().unwrap_or_default(),
            "exclusiveMaximum" => s.exclusive_maximum = value.as_bool().unwrap_or_default(),
            "exclusiveMinimum" => s.exclusive_minimum = value.as_bool().unwrap_or_default(),
            "maxLength" => s.max_length = value.as_i64().unwrap_or_default(),
            "minLength" => s.min_length = value.as_i64().unwrap_or_default(),
            "maxItems" => s.max_items = value.as_i64().unwrap_or_default(),
            "minItems" => s.min_items = value.as_i64().unwrap_or_default(),
            "uniqueItems" => s.unique_items = value.as_bool().unwrap_or_default(),
            "maxProperties" => s.max_properties = value.as_i64().unwrap_or_default(),
            "minProperties" => s.min_properties = value.as_i64().unwrap_or_default(),
            "readOnly" => s.read_only = value.as_bool().unwrap_or_default(),
            "required" => {
                s.required = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect();
            }
            "enum" => s.r#enum = value.as_array().into_iter().flatten().map(any).collect(),
            "type" => {
                let value = match value {
                    Value::String(t) => vec![t.clone()],
                    Value::Array(ts) => ts
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                s.r#type = Some(TypeItem { value });
            }
            "items" => {
                let schema = match value {
                    Value::Array(items) => items.iter().map(schema_of).collect(),
                    other => vec![schema_of(other)],
                };
                s.items = Some(ItemsItem { schema });
            }
            "allOf" => {
                s.all_of = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(schema_of)
                    .collect()
            }
            "properties" => {
                s.properties = value.as_object().map(|props| Properties {
                    additional_properties: props
                        .iter()
                        .map(|(name, p)| NamedSchema {
                            name: name.clone(),
                            value: Some(schema_of(p)),
                        })
                        .collect(),
                });
            }
            "additionalProperties" => {
                let oneof = match value {
                    Value::Bool(b) => AdditionalProperties::Boolean(*b),
                    other => AdditionalProperties::Schema(Box::new(schema_of(other))),
                };
                s.additional_properties =
                    Some(Box::new(AdditionalPropertiesItem { oneof: Some(oneof) }));
            }
            k if k.starts_with("x-") => s.vendor_extension.push(NamedAny {
                name: k.to_string(),
                value: Some(any(value)),
            }),
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_definition_round_trips_through_the_wire_format() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "definitions": {
                "io.k8s.api.core.v1.ConfigMap": {
                    "type": "object",
                    "description": "holds configuration data",
                    "required": ["metadata"],
                    "properties": {
                        "data": {"type": "object", "additionalProperties": {"type": "string"}},
                        "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                        "keys": {"type": "array", "items": {"type": "string"},
                                 "x-kubernetes-patch-strategy": "merge"},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                 "additionalProperties": true},
                        "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
                    },
                    "x-kubernetes-group-version-kind": [{"group": "", "kind": "ConfigMap", "version": "v1"}],
                },
            },
        });
        let bytes = encode(&doc);
        let back = Document::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(back.swagger, "2.0");
        assert_eq!(
            back.info.as_ref().map(|i| i.version.as_str()),
            Some("v1.33.0")
        );
        let defs = back.definitions.expect("definitions").additional_properties;
        assert_eq!(defs.len(), 1);
        let cm = defs[0].value.as_ref().expect("schema");
        assert_eq!(defs[0].name, "io.k8s.api.core.v1.ConfigMap");
        assert_eq!(cm.r#type.as_ref().expect("type").value, vec!["object"]);
        assert_eq!(cm.required, vec!["metadata"]);
        let gvk = &cm.vendor_extension[0];
        assert_eq!(gvk.name, "x-kubernetes-group-version-kind");
        let yaml = &gvk.value.as_ref().expect("value").yaml;
        assert_eq!(
            serde_json::from_str::<Value>(yaml).expect("the value is JSON text"),
            json!([{"group": "", "kind": "ConfigMap", "version": "v1"}])
        );
        let props = &cm
            .properties
            .as_ref()
            .expect("properties")
            .additional_properties;
        let prop = |n: &str| {
            props
                .iter()
                .find(|p| p.name == n)
                .and_then(|p| p.value.clone())
                .unwrap_or_else(|| panic!("no property {n}"))
        };
        assert_eq!(
            prop("metadata").r#ref,
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        match prop("data").additional_properties.and_then(|a| a.oneof) {
            Some(AdditionalProperties::Schema(s)) => {
                assert_eq!(s.r#type.expect("type").value, vec!["string"])
            }
            other => panic!("data's additionalProperties: {other:?}"),
        }
        assert_eq!(
            prop("free").additional_properties.and_then(|a| a.oneof),
            Some(AdditionalProperties::Boolean(true))
        );
        let keys = prop("keys");
        assert_eq!(
            keys.items.expect("items").schema[0]
                .r#type
                .as_ref()
                .expect("type")
                .value,
            vec!["string"]
        );
        assert_eq!(keys.vendor_extension[0].name, "x-kubernetes-patch-strategy");
        let mode = prop("mode");
        assert_eq!(mode.r#enum.len(), 2);
        assert_eq!(mode.default.expect("default").yaml, "\"A\"");
    }

    #[test]
    fn both_spellings_of_the_media_type_are_recognized() {
        assert!(is_openapi_protobuf(MEDIA_TYPE));
        assert!(is_openapi_protobuf(
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        ));
        assert!(!is_openapi_protobuf("application/json"));
    }
}
