//! Schema pieces schemars cannot derive on its own.

use schemars::{Schema, SchemaGenerator, json_schema};

use crate::rules;

/// `spec.config`: a free-form map of Vault configuration keys that the API server keeps as
/// they are, except the keys vaultkeeper renders itself, which are declared so that a rule
/// can refuse them by name.
pub(crate) fn vault_config(_: &mut SchemaGenerator) -> Schema {
    let mut properties = serde_json::Map::new();
    for (key, rule) in rules::config_rules() {
        let description = format!("Refused: {}.", rule.message);
        let rule = serde_json::to_value(rule.rule()).unwrap_or_default();
        properties.insert(
            key.to_owned(),
            serde_json::json!({
                "description": description,
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "x-kubernetes-validations": [rule],
            }),
        );
    }
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": properties,
    })
}

/// `spec.pod.hostAliases`: Kubernetes' HostAlias, with bounds on every list and string, so
/// the CEL rule that walks every hostname stays within the API server's cost budget (an
/// unbounded schema makes the API server refuse the whole CRD).
pub(crate) fn host_aliases(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 32,
        "items": {
            "description": "One /etc/hosts entry: an IP address and the names that resolve to it.",
            "type": "object",
            "required": ["ip"],
            "properties": {
                "ip": {
                    "description": "The IP address the names resolve to.",
                    "type": "string",
                    "maxLength": 45
                },
                "hostnames": {
                    "description": "The names that resolve to the address.",
                    "type": "array",
                    "maxItems": 16,
                    "items": {"type": "string", "maxLength": 253}
                }
            }
        }
    })
}

/// `spec.pod.extraPorts`: Kubernetes' ContainerPort, bounded for the same reason as
/// [`host_aliases`] (the rules compare every name and host address).
pub(crate) fn extra_ports(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 32,
        "items": {
            "description": "One more port on the Vault container.",
            "type": "object",
            "required": ["containerPort"],
            "properties": {
                "containerPort": {
                    "description": "The port number on the pod's IP address (1-65535).",
                    "type": "integer",
                    "format": "int32",
                    "minimum": 1,
                    "maximum": 65535
                },
                "name": {
                    "description": "The port's name (at most 15 characters), unique in the pod; Services refer to it by this name.",
                    "type": "string",
                    "maxLength": 15
                },
                "protocol": {
                    "description": "TCP (default), UDP or SCTP.",
                    "type": "string",
                    "enum": ["TCP", "UDP", "SCTP"]
                },
                "hostPort": {
                    "description": "Refused: a port on the node's address.",
                    "type": "integer",
                    "format": "int32"
                },
                "hostIP": {
                    "description": "Refused: an address on the node.",
                    "type": "string",
                    "maxLength": 45
                }
            }
        }
    })
}
