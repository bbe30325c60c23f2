//! Label and field selectors, parsed and matched as the API server does
//! (<https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors>,
//! <https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/>).
//! Pure functions: no I/O.

use crate::error::SimError;
use serde_json::Value;
use std::collections::BTreeMap;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `key` — the label exists.
    Exists(String),
    /// `!key` — the label does not exist.
    NotExists(String),
    /// `key=value`, `key==value`, `key in (a,b)`.
    In(String, Vec<String>),
    /// `key!=value`, `key notin (a,b)`: also matches objects without the label.
    NotIn(String, Vec<String>),
    /// `key>n`.
    Gt(String, i64),
    /// `key<n`.
    Lt(String, i64),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

impl LabelSelector {
    /// Parses the `labelSelector` query parameter syntax.
    pub fn parse(s: &str) -> Result<Self, SimError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(LabelSelector(reqs))
    }

    /// Builds the selector a `metav1.LabelSelector` (matchLabels + matchExpressions)
    /// describes, as controllers use for `spec.selector`.
    pub fn from_label_selector(sel: &Value) -> Result<Self, SimError> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(LabelRequirement::In(
                    k.clone(),
                    vec![v.as_str().unwrap_or_default().to_string()],
                ));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e["key"].as_str().unwrap_or_default().to_string();
                let values: Vec<String> = e["values"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(match e["operator"].as_str().unwrap_or_default() {
                    "In" => LabelRequirement::In(key, values),
                    "NotIn" => LabelRequirement::NotIn(key, values),
                    "Exists" => LabelRequirement::Exists(key),
                    "DoesNotExist" => LabelRequirement::NotExists(key),
                    other => {
                        return Err(SimError::BadRequest(format!(
                            "selector.matchExpressions: unsupported operator {other:?} (In, NotIn, Exists, DoesNotExist)"
                        )));
                    }
                });
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// A selector from a plain label map (`Service.spec.selector`).
    pub fn from_map(m: &BTreeMap<String, String>) -> Self {
        LabelSelector(
            m.iter()
                .map(|(k, v)| LabelRequirement::In(k.clone(), vec![v.clone()]))
                .collect(),
        )
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object's labels satisfy every requirement.
    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::NotExists(k) => get(k).is_none(),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            LabelRequirement::NotIn(k, vs) => get(k).is_none_or(|v| vs.iter().all(|x| x != v)),
            LabelRequirement::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelRequirement::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    /// Whether an object (its `metadata.labels`) matches.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj["metadata"]["labels"].as_object())
    }
}

/// Splits on commas outside parentheses (`a in (x,y),b`).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_requirement(part: &str) -> Result<LabelRequirement, SimError> {
    let bad = || SimError::BadRequest(format!("unable to parse requirement: {part:?}"));
    if let Some(k) = part.strip_prefix('!') {
        return Ok(LabelRequirement::NotExists(valid_key(k.trim(), part)?));
    }
    for (op, neg) in [(" notin ", true), (" in ", false)] {
        if let Some((k, rest)) = part.split_once(op) {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(bad)?;
            let values = inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            let key = valid_key(k.trim(), part)?;
            return Ok(if neg {
                LabelRequirement::NotIn(key, values)
            } else {
                LabelRequirement::In(key, values)
            });
        }
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(LabelRequirement::NotIn(
            valid_key(k.trim(), part)?,
            vec![v.trim().to_string()],
        ));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(LabelRequirement::In(
            valid_key(k.trim(), part)?,
            vec![v.trim().to_string()],
        ));
    }
    if let Some((k, v)) = part.split_once('>') {
        let n = v.trim().parse().map_err(|_| bad())?;
        return Ok(LabelRequirement::Gt(valid_key(k.trim(), part)?, n));
    }
    if let Some((k, v)) = part.split_once('<') {
        let n = v.trim().parse().map_err(|_| bad())?;
        return Ok(LabelRequirement::Lt(valid_key(k.trim(), part)?, n));
    }
    Ok(LabelRequirement::Exists(valid_key(part, part)?))
}

fn valid_key(k: &str, part: &str) -> Result<String, SimError> {
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(k.to_string())
    } else {
        Err(SimError::BadRequest(format!(
            "unable to parse requirement: invalid label key {k:?} in {part:?}"
        )))
    }
}

/// One `field=value` / `field!=value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Field path (`metadata.name`, `spec.nodeName`).
    pub field: String,
    /// Value compared against.
    pub value: String,
    /// `!=` rather than `=`.
    pub negated: bool,
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter and checks every field is one the
    /// real API server supports for `kind` (it answers 400 otherwise, and so do we).
    pub fn parse(s: &str, kind: &str) -> Result<Self, SimError> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, value, negated) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, v, false)
            } else {
                return Err(SimError::BadRequest(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim().to_string();
            if !supported_field(kind, &field) {
                return Err(SimError::BadRequest(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push(FieldRequirement {
                field,
                value: value.trim().to_string(),
                negated,
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether an object of `kind` satisfies every term.
    pub fn matches(&self, kind: &str, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let v = field_value(kind, obj, &r.field).unwrap_or_default();
            (v == r.value) != r.negated
        })
    }

    /// The single `metadata.name=X` a watch is narrowed to, if that is all it asks.
    pub fn only_name(&self) -> Option<&str> {
        match self.0.as_slice() {
            [r] if r.field == "metadata.name" && !r.negated => Some(&r.value),
            _ => None,
        }
    }
}

/// The field-selector fields each kind supports (the real server's `GetAttrs`/
/// `AddFieldLabelConversionFunc` tables for the kinds served here).
fn supported_field(kind: &str, field: &str) -> bool {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return true;
    }
    let extra: &[&str] = match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "Job" => &["status.successful"],
        "Node" => &["spec.unschedulable"],
        "ReplicaSet" => &["status.replicas"],
        "CertificateSigningRequest" => &["spec.signerName"],
        _ => &[],
    };
    extra.contains(&field)
}

/// The string value of a selectable field of an object.
pub fn field_value(kind: &str, obj: &Value, field: &str) -> Option<String> {
    if kind == "Event" && field == "source" {
        return obj["source"]["component"].as_str().map(str::to_string);
    }
    let mut cur = obj;
    for seg in field.split('.') {
        cur = cur.get(seg)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Value {
        json!({"metadata": {"labels": v}})
    }

    #[test]
    fn label_selector_syntax_table() {
        // (selector, labels, matches) — cases from the labels concept page.
        let cases = [
            ("", json!({}), true),
            ("app=vault", json!({"app": "vault"}), true),
            ("app==vault", json!({"app": "vault"}), true),
            ("app=vault", json!({"app": "other"}), false),
            ("app!=vault", json!({}), true),
            ("app!=vault", json!({"app": "vault"}), false),
            ("app", json!({"app": "x"}), true),
            ("!app", json!({"app": "x"}), false),
            ("!app", json!({}), true),
            (
                "env in (prod, qa),tier notin (front)",
                json!({"env": "qa", "tier": "back"}),
                true,
            ),
            ("env in (prod,qa)", json!({"env": "dev"}), false),
            ("tier notin (front)", json!({}), true),
            ("n>3", json!({"n": "4"}), true),
            ("n<3", json!({"n": "4"}), false),
            (
                "openbao-active=true,app.kubernetes.io/name=vault",
                json!({"openbao-active": "true", "app.kubernetes.io/name": "vault"}),
                true,
            ),
        ];
        for (sel, l, want) in cases {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches_object(&labels(l.clone())), want, "{sel} vs {l}");
        }
    }

    #[test]
    fn bad_label_selector_is_a_bad_request() {
        assert!(matches!(
            LabelSelector::parse("a in b"),
            Err(SimError::BadRequest(_))
        ));
        assert!(matches!(
            LabelSelector::parse("a b=c"),
            Err(SimError::BadRequest(_))
        ));
    }

    #[test]
    fn match_expressions_follow_label_selector_semantics() {
        let s = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"app": "vault"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]
        }))
        .unwrap();
        assert!(s.matches_object(&labels(json!({"app": "vault"}))));
        assert!(!s.matches_object(&labels(json!({"app": "vault", "tier": "x"}))));
    }

    #[test]
    fn unsupported_field_is_refused_like_the_real_server() {
        let e = FieldSelector::parse("spec.bogus=1", "Pod").unwrap_err();
        assert_eq!(e.to_string(), "field label not supported: spec.bogus");
        let f = FieldSelector::parse("status.phase=Running,metadata.name!=a", "Pod").unwrap();
        let pod = json!({"metadata": {"name": "b"}, "status": {"phase": "Running"}});
        assert!(f.matches("Pod", &pod));
        let ev =
            FieldSelector::parse("involvedObject.name=vault-0,source=kubelet", "Event").unwrap();
        assert!(ev.matches(
            "Event",
            &json!({"involvedObject": {"name": "vault-0"}, "source": {"component": "kubelet"}})
        ));
    }
}
