//! The server configuration (HCL or JSON) in the values: what VaultCluster renders itself,
//! what goes to `spec.config`, and what has no place.

use std::fmt;

use serde_json::{Map, Value, json};
use vaultkeeper_api::rules;

use super::{ChartNames, Mode, Reader, Why, expand, to_text};

/// What the server configuration says, as far as VaultCluster cares.
#[derive(Default)]
pub(super) struct ConfigFacts {
    /// The `ui` setting.
    pub(super) ui: Option<Value>,
    /// Settings for `spec.config`.
    pub(super) extra: Map<String, Value>,
    /// The listener's certificate files, when it names them.
    pub(super) cert_file: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) client_ca_file: Option<String>,
    /// `tls_disable` of the listener.
    pub(super) listener_tls_disabled: Option<bool>,
    /// The seal stanza: where it is, its type and its body.
    pub(super) seal: Option<(String, String, Value)>,
}

/// One top-level item of the server configuration.
struct ConfigItem {
    key: String,
    label: Option<String>,
    body: Value,
}

pub(super) fn server_config(r: &mut Reader, mode: Mode, names: &ChartNames) -> ConfigFacts {
    let path = match mode {
        Mode::Ha { raft: true } => "server.ha.raft.config",
        Mode::Ha { raft: false } => "server.ha.config",
        Mode::Standalone => "server.standalone.config",
        Mode::Dev => return ConfigFacts::default(),
    };
    let text = r.take_str(path);
    let mut facts = ConfigFacts::default();
    let text = match expand(&text, names) {
        Ok(text) => text,
        Err(why) => {
            r.left(
                path,
                Why::NeedsAction,
                format!("it holds {why}; write the settings into spec.config by hand"),
            );
            return facts;
        }
    };
    let items = match parse_config(&text) {
        Ok(items) => items,
        Err(why) => {
            r.left(
                path,
                Why::NeedsAction,
                format!("it cannot be read ({why}); write the settings into spec.config by hand"),
            );
            return facts;
        }
    };
    let mut listeners = 0;
    for item in items {
        let at = format!("{path} {}", item.key);
        match item.key.as_str() {
            "ui" => facts.ui = Some(item.body),
            "disable_mlock" => {
                if item.body != Value::Bool(true) && item.body != json!("true") {
                    facts.extra.insert(item.key, item.body);
                }
            }
            "listener" => {
                listeners += 1;
                if listeners > 1 || item.label.as_deref() != Some("tcp") {
                    r.left(
                        at,
                        Why::NoField,
                        "VaultCluster renders one TCP listener on port 8200",
                    );
                } else {
                    listener(r, &at, &item.body, &mut facts);
                }
            }
            "storage" => storage_stanza(r, &at, item.label.as_deref(), &item.body),
            "ha_storage" => r.left(
                at,
                Why::NeedsAction,
                "VaultCluster runs integrated storage (raft), which is its own HA storage",
            ),
            "service_registration" => {
                let extra = item.body.as_object().is_some_and(|o| !o.is_empty());
                if item.label.as_deref() != Some("kubernetes") || extra {
                    r.left(
                        at,
                        Why::NotUnderOperator,
                        "vaultkeeper always renders service_registration \"kubernetes\" {}: \
                         its active/standby Services select by the labels it writes",
                    );
                }
            }
            "seal" => {
                let at = format!("{at} {:?}", item.label.clone().unwrap_or_default());
                if facts.seal.is_some() {
                    r.left(
                        at,
                        Why::NeedsAction,
                        "a second seal (a seal migration): VaultCluster has one seal; \
                         finish the migration first",
                    );
                } else {
                    facts.seal = Some((at, item.label.unwrap_or_default(), item.body));
                }
            }
            "api_addr" | "cluster_addr" => r.left(
                at,
                Why::NotUnderOperator,
                "vaultkeeper sets each pod's API and cluster address itself (names its \
                 certificate carries)",
            ),
            key if rules::RENDERED_CONFIG_KEYS.iter().any(|(k, _)| *k == key) => r.left(
                at,
                Why::NotUnderOperator,
                "vaultkeeper renders this part of the configuration itself",
            ),
            _ => {
                let value = match item.label {
                    Some(label) => json!({ label: item.body }),
                    None => item.body,
                };
                if facts.extra.contains_key(&item.key) {
                    r.left(at, Why::NoField, "it appears twice in the configuration");
                } else {
                    facts.extra.insert(item.key, value);
                }
            }
        }
    }
    let placeholders = ["API_ADDR", "TRANSIT_ADDR", "RAFT_ADDR"];
    let extra_text = Value::Object(facts.extra.clone()).to_string();
    for placeholder in placeholders {
        if extra_text.contains(placeholder) {
            r.left(
                format!("{path} {placeholder}"),
                Why::NoField,
                format!(
                    "the chart substitutes {placeholder} from the environment at start; \
                     vaultkeeper substitutes only HOST_IP, POD_IP and HOSTNAME"
                ),
            );
        }
    }
    facts
}

/// A parser's message without the source excerpt some parsers add: the excerpt could
/// hold a credential from the configuration, and a long line would flood the terminal.
pub(super) fn parse_error(error: &dyn fmt::Display) -> String {
    let text = error.to_string();
    // Excerpt lines are drawn with `|`; the location and the reason are not.
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains('|'))
        .map(|l| {
            l.trim()
                .trim_start_matches("-->")
                .trim_start_matches('=')
                .trim()
        })
        .filter(|l| !l.is_empty())
        .collect();
    let message = if kept.is_empty() {
        "unreadable".to_owned()
    } else {
        kept.join("; ")
    };
    message.chars().take(300).collect()
}

/// Reads HCL or JSON server configuration into its top-level items.
fn parse_config(text: &str) -> Result<Vec<ConfigItem>, String> {
    if text.trim_start().starts_with('{') {
        let map: Map<String, Value> = serde_json::from_str(text).map_err(|e| parse_error(&e))?;
        let mut items = Vec::new();
        for (key, value) in map {
            let labelled = matches!(
                key.as_str(),
                "listener" | "storage" | "ha_storage" | "seal" | "service_registration"
            );
            let entries = match value {
                Value::Array(entries) if labelled => entries,
                other => vec![other],
            };
            for entry in entries {
                match entry {
                    Value::Object(map) if labelled && map.len() == 1 => {
                        for (label, body) in map {
                            items.push(ConfigItem {
                                key: key.clone(),
                                label: Some(label),
                                body,
                            });
                        }
                    }
                    body => items.push(ConfigItem {
                        key: key.clone(),
                        label: None,
                        body,
                    }),
                }
            }
        }
        return Ok(items);
    }
    let body = hcl::parse(text).map_err(|e| parse_error(&e))?;
    let mut items = Vec::new();
    for structure in body {
        match structure {
            hcl::Structure::Attribute(attribute) => {
                let value = serde_json::to_value(hcl::Value::from(attribute.expr))
                    .map_err(|e| parse_error(&e))?;
                items.push(ConfigItem {
                    key: attribute.key.to_string(),
                    label: None,
                    body: value,
                });
            }
            hcl::Structure::Block(block) => {
                let mut labels: Vec<String> =
                    block.labels.iter().map(|l| l.as_str().to_owned()).collect();
                let mut body: Value = hcl::from_body(block.body).map_err(|e| parse_error(&e))?;
                // Labels after the first nest, as they do in JSON configuration.
                while labels.len() > 1 {
                    let last = labels.pop().unwrap_or_default();
                    body = json!({ last: body });
                }
                items.push(ConfigItem {
                    key: block.identifier.to_string(),
                    label: labels.pop(),
                    body,
                });
            }
        }
    }
    Ok(items)
}

fn listener(r: &mut Reader, at: &str, body: &Value, facts: &mut ConfigFacts) {
    let Some(map) = body.as_object() else {
        r.left(at, Why::NoField, "the listener is not a block");
        return;
    };
    for (key, value) in map {
        let text = to_text(value);
        match key.as_str() {
            "address" if text == "[::]:8200" || text == "0.0.0.0:8200" => {}
            "cluster_address" if text == "[::]:8201" || text == "0.0.0.0:8201" => {}
            "tls_disable" => {
                facts.listener_tls_disabled =
                    Some(matches!(text.as_str(), "1" | "true" | "\"1\"" | "\"true\""));
            }
            "tls_cert_file" => facts.cert_file = Some(text),
            "tls_key_file" => facts.key_file = Some(text),
            "tls_client_ca_file" => facts.client_ca_file = Some(text),
            _ => r.left(
                format!("{at}.{key}"),
                Why::NoField,
                "VaultCluster renders the listener (addresses [::]:8200 and [::]:8201, TLS \
                 from spec.tls) and has no field for this setting",
            ),
        }
    }
}

fn storage_stanza(r: &mut Reader, at: &str, label: Option<&str>, body: &Value) {
    if label != Some("raft") {
        r.left(
            format!("{at} {:?}", label.unwrap_or_default()),
            Why::NeedsAction,
            "VaultCluster runs integrated storage (raft) only: move the data first (`vault \
             operator migrate` to raft, or take a snapshot of a raft cluster and restore it)",
        );
        return;
    }
    let Some(map) = body.as_object() else {
        return;
    };
    // VaultCluster's raft path is the data volume's mount path, as the chart's default
    // configuration has it.
    let mount = r
        .peek("server.dataStorage.mountPath")
        .map(to_text)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/vault/data".to_owned());
    for (key, value) in map {
        match key.as_str() {
            "path" if to_text(value) == mount => {}
            // vaultkeeper renders one retry_join per possible pod.
            "retry_join" | "node_id" => {}
            _ => r.left(
                format!("{at}.{key}"),
                Why::NoField,
                "VaultCluster renders the raft stanza (path: the data volume's mount path, \
                 server.dataStorage.mountPath; a retry_join per pod) and has no field for \
                 this setting",
            ),
        }
    }
}
