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
