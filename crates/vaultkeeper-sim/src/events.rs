//! `events.k8s.io/v1` Events are the core/v1 Events seen through another schema: the real
//! API server stores one object and converts field by field
//! (<https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/>).
//! Stored here in the core/v1 shape so `kubectl describe` (core/v1) shows what a
//! `kube::runtime` recorder (events.k8s.io/v1) wrote.

use serde_json::{Map, Value};

const PAIRS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

const SAME: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "reportingInstance",
    "action",
    "reason",
    "related",
    "type",
];

/// core/v1 Event → events.k8s.io/v1 Event.
pub fn core_to_v1(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "apiVersion".into(),
        Value::String("events.k8s.io/v1".into()),
    );
    out.insert("kind".into(), Value::String("Event".into()));
    for f in SAME {
        if let Some(v) = core.get(*f) {
            out.insert((*f).into(), v.clone());
        }
    }
    for (c, e) in PAIRS {
        if let Some(v) = core.get(*c).filter(|v| !v.is_null()) {
            out.insert((*e).into(), v.clone());
        }
    }
    if let Some(Value::Object(series)) = out.get_mut("series") {
        series.remove("state");
    }
    Value::Object(out)
}

/// events.k8s.io/v1 Event → core/v1 Event.
pub fn v1_to_core(ev: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String("v1".into()));
    out.insert("kind".into(), Value::String("Event".into()));
    for f in SAME {
        if let Some(v) = ev.get(*f) {
            out.insert((*f).into(), v.clone());
        }
    }
    for (c, e) in PAIRS {
        if let Some(v) = ev.get(*e).filter(|v| !v.is_null()) {
            out.insert((*c).into(), v.clone());
        }
    }
    // The real conversion fills the deprecated source from the reporting controller so
    // older clients still see who reported it.
    if !out.contains_key("source")
        && let Some(rc) = ev.get("reportingController").and_then(Value::as_str)
    {
        out.insert("source".into(), serde_json::json!({"component": rc}));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversion_round_trips_the_fields_describe_shows() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "regarding": {"kind": "VaultCluster", "name": "vc", "namespace": "ns"},
            "note": "initialized", "reason": "Initialized", "type": "Normal",
            "reportingController": "vaultkeeper", "reportingInstance": "op-0", "action": "Init",
            "eventTime": "2026-01-01T00:00:00.000000Z"});
        let core = v1_to_core(&v1);
        assert_eq!(core["involvedObject"]["name"], "vc");
        assert_eq!(core["message"], "initialized");
        assert_eq!(core["source"]["component"], "vaultkeeper");
        let back = core_to_v1(&core);
        assert_eq!(back["regarding"], v1["regarding"]);
        assert_eq!(back["note"], v1["note"]);
    }
}
