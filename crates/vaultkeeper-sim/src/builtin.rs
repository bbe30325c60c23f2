//! Per-kind behaviour of built-in kinds: the defaults the real API server fills in
//! (`pkg/apis/*/v1/defaults.go`), the validation rules the project's objects can trip
//! over (immutable fields, StatefulSet spec restrictions), and which kinds track
//! `metadata.generation`. Pure functions: randomness and the cluster's address plan are
//! passed in. The controllers read CronJob schedules with the same parser validation
//! uses, so a schedule the server accepts is one the controller can run.

use crate::error::{Cause, SimError};
use serde_json::{Value, json};

/// Kinds whose strategy sets and bumps `metadata.generation` on spec changes.
pub fn tracks_generation(kind: &str) -> bool {
    matches!(
        kind,
        "StatefulSet"
            | "Deployment"
            | "ReplicaSet"
            | "DaemonSet"
            | "Job"
            | "CronJob"
            | "PodDisruptionBudget"
            | "Ingress"
            | "NetworkPolicy"
            | "CustomResourceDefinition"
            | "IngressClass"
            | "PriorityClass"
    )
}

/// Kinds whose PUT creates the object when it does not exist (`AllowCreateOnUpdate`).
pub fn allows_create_on_update(kind: &str) -> bool {
    matches!(kind, "Endpoints" | "Event" | "Lease" | "EndpointSlice")
}

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Value::Object(m) = obj
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

/// Defaults of a pod spec (also inside templates).
pub fn default_pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    if let Some(sa) = spec
        .get("serviceAccountName")
        .cloned()
        .filter(|v| !v.is_null())
    {
        set_default(spec, "serviceAccount", sa);
    }
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs {
                let image = c["image"].as_str().unwrap_or_default().to_string();
                let latest = !image.contains(':') || image.ends_with(":latest");
                set_default(
                    c,
                    "imagePullPolicy",
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                );
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                set_default(c, "resources", json!({}));
                if let Some(Value::Array(ports)) = c.get_mut("ports") {
                    for p in ports {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
                for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                    if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
                        set_default(p, "timeoutSeconds", json!(1));
                        set_default(p, "periodSeconds", json!(10));
                        set_default(p, "successThreshold", json!(1));
                        set_default(p, "failureThreshold", json!(3));
                        if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                            set_default(h, "path", json!("/"));
                            set_default(h, "scheme", json!("HTTP"));
                        }
                    }
                }
            }
        }
    }
    if let Some(Value::Array(vols)) = spec.get_mut("volumes") {
        for v in vols {
            for src in ["configMap", "secret", "projected", "downwardAPI"] {
                if let Some(s) = v.get_mut(src).filter(|s| s.is_object()) {
                    set_default(s, "defaultMode", json!(420));
                }
            }
        }
    }
}

fn default_template(obj: &mut Value) {
    if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
        default_pod_spec(spec);
    }
}

/// Applies the API server's defaults for `kind`. Service cluster IPs come from
/// `allocate_ip` (only called when the Service needs one).
pub fn apply_defaults(
    kind: &str,
    obj: &mut Value,
    allocate_ip: &mut dyn FnMut() -> Option<String>,
) {
    match kind {
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
            }
        }
        "StatefulSet" => {
            if let Some(spec) = obj.get_mut("spec") {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "podManagementPolicy", json!("OrderedReady"));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                if spec["updateStrategy"]["type"] == "RollingUpdate" {
                    set_default(
                        &mut spec["updateStrategy"],
                        "rollingUpdate",
                        json!({"partition": 0}),
                    );
                }
                set_default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                if let Some(Value::Array(ts)) = spec.get_mut("volumeClaimTemplates") {
                    for t in ts {
                        set_default(t, "apiVersion", json!("v1"));
                        set_default(t, "kind", json!("PersistentVolumeClaim"));
                        if let Some(s) = t.get_mut("spec") {
                            set_default(s, "volumeMode", json!("Filesystem"));
                        }
                    }
                }
            }
            default_template(obj);
        }
        "Deployment" | "ReplicaSet" | "DaemonSet" => {
            if let Some(spec) = obj.get_mut("spec") {
                if kind != "DaemonSet" {
                    set_default(spec, "replicas", json!(1));
                }
                set_default(spec, "revisionHistoryLimit", json!(10));
            }
            default_template(obj);
        }
        "Job" => {
            if let Some(spec) = obj.get_mut("spec") {
                set_default(spec, "parallelism", json!(1));
                set_default(spec, "completions", json!(1));
                set_default(spec, "backoffLimit", json!(6));
                set_default(spec, "completionMode", json!("NonIndexed"));
                set_default(spec, "suspend", json!(false));
                set_default(spec, "manualSelector", Value::Null);
                if spec.get("manualSelector").is_some_and(Value::is_null)
                    && let Value::Object(m) = spec
                {
                    m.remove("manualSelector");
                }
                set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            }
            default_template(obj);
        }
        "CronJob" => {
            if let Some(spec) = obj.get_mut("spec") {
                set_default(spec, "concurrencyPolicy", json!("Allow"));
                set_default(spec, "suspend", json!(false));
                set_default(spec, "successfulJobsHistoryLimit", json!(3));
                set_default(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(js) = spec.pointer_mut("/jobTemplate/spec") {
                    set_default(js, "backoffLimit", json!(6));
                    set_default(js, "completionMode", json!("NonIndexed"));
                    set_default(js, "suspend", json!(false));
                    if let Some(ps) = js.pointer_mut("/template/spec") {
                        default_pod_spec(ps);
                    }
                }
            }
        }
        "Service" => {
            if let Some(spec) = obj.get_mut("spec") {
                set_default(spec, "type", json!("ClusterIP"));
                set_default(spec, "sessionAffinity", json!("None"));
                set_default(spec, "internalTrafficPolicy", json!("Cluster"));
                if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                    for p in ports {
                        set_default(p, "protocol", json!("TCP"));
                        let port = p["port"].clone();
                        set_default(p, "targetPort", port);
                    }
                }
                let needs_ip = spec["type"] != "ExternalName"
                    && spec.get("clusterIP").is_none_or(|v| v.is_null() || v == "");
                if needs_ip && let Some(ip) = allocate_ip() {
                    spec["clusterIP"] = json!(ip);
                }
                if let Some(ip) = spec["clusterIP"].as_str().map(str::to_string) {
                    set_default(spec, "clusterIPs", json!([ip]));
                    // IPv4 single stack, headless or not.
                    set_default(spec, "ipFamilies", json!(["IPv4"]));
                    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
                }
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(spec) = obj.get_mut("spec") {
                set_default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        "Secret" => {
            set_default(obj, "type", json!("Opaque"));
            fold_string_data(obj);
        }
        "Namespace" => {
            set_default(obj, "spec", json!({"finalizers": ["kubernetes"]}));
            set_default(obj, "status", json!({"phase": "Active"}));
        }
        "ServiceAccount" | "ConfigMap" => {}
        _ => {}
    }
}

/// `stringData` is write-only, as the API server treats it: its entries are merged over
/// `data` (base64-encoded, a `stringData` key winning over the same `data` key) and the
/// field itself is never stored, so a reader sees only `data`.
fn fold_string_data(secret: &mut Value) {
    use base64::Engine;
    let Some(Value::Object(plain)) = secret.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    if plain.is_empty() {
        return;
    }
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    for (key, value) in plain {
        let text = match value {
            Value::String(text) => text,
            other => other.to_string(),
        };
        secret["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// What the API server adds to a Job at creation (`batch/v1` strategy): a selector on
/// the Job's UID and the matching template labels, unless `manualSelector` is set.
pub fn default_job_selector(job: &mut Value) {
    if job["spec"]["manualSelector"] == json!(true) {
        return;
    }
    let uid = job["metadata"]["uid"].clone();
    let name = job["metadata"]["name"].clone();
    job["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    let labels = &mut job["spec"]["template"]["metadata"]["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels[k] = v.clone();
    }
}

/// Parses a schedule the way the API server validates it: five fields or an `@` macro;
/// `TZ=`/`CRON_TZ=` prefixes are refused (use `spec.timeZone`).
pub fn parse_schedule(s: &str) -> Result<croner::Cron, SimError> {
    let t = s.trim();
    if t.starts_with("TZ=") || t.starts_with("CRON_TZ=") {
        return Err(SimError::BadRequest(format!(
            "schedule {s:?}: TZ is not allowed in the schedule, use spec.timeZone"
        )));
    }
    if !t.starts_with('@') && t.split_whitespace().count() != 5 {
        return Err(SimError::BadRequest(format!(
            "schedule {s:?}: expected exactly 5 fields"
        )));
    }
    t.parse::<croner::Cron>()
        .map_err(|e| SimError::BadRequest(format!("unparseable schedule {s:?}: {e}")))
}

fn invalid(field: &str, msg: impl Into<String>) -> Cause {
    Cause::new("FieldValueInvalid", field, msg)
}

fn required(field: &str) -> Cause {
    Cause::new("FieldValueRequired", field, "Required value")
}

/// Validation rules of built-in kinds that catch real mistakes in rendered objects.
/// `old` is the current object on update.
pub fn validate(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    match kind {
        "Pod" => {
            validate_pod_spec(&obj["spec"], "spec", &mut causes);
            if let Some(old) = old {
                let mut a = old["spec"].clone();
                let mut b = obj["spec"].clone();
                // Mutable pod spec fields: container images, activeDeadlineSeconds,
                // tolerations additions, terminationGracePeriodSeconds (to a lower value).
                for s in [&mut a, &mut b] {
                    for list in ["containers", "initContainers"] {
                        if let Some(Value::Array(cs)) = s.get_mut(list) {
                            for c in cs {
                                if let Value::Object(m) = c {
                                    m.remove("image");
                                }
                            }
                        }
                    }
                    if let Value::Object(m) = s {
                        m.remove("activeDeadlineSeconds");
                        m.remove("tolerations");
                        m.remove("terminationGracePeriodSeconds");
                        // nodeName is set once by binding.
                        m.remove("nodeName");
                    }
                }
                if a != b {
                    causes.push(Cause::new(
                        "FieldValueForbidden",
                        "spec",
                        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                    ));
                }
            }
        }
        "StatefulSet" => {
            let spec = &obj["spec"];
            if spec["selector"].is_null() {
                causes.push(required("spec.selector"));
            }
            validate_selector_matches_template(spec, &mut causes);
            // Claim templates count as volumes of the pod template.
            let mut pod_spec = spec["template"]["spec"].clone();
            let mut vols: Vec<Value> = pod_spec["volumes"].as_array().cloned().unwrap_or_default();
            for t in spec["volumeClaimTemplates"]
                .as_array()
                .into_iter()
                .flatten()
            {
                vols.push(json!({"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": ""}}));
            }
            pod_spec["volumes"] = json!(vols);
            validate_pod_spec(&pod_spec, "spec.template.spec", &mut causes);
            if spec["replicas"].as_i64().is_some_and(|r| r < 0) {
                causes.push(invalid(
                    "spec.replicas",
                    format!(
                        "Invalid value: {}: must be greater than or equal to 0",
                        spec["replicas"]
                    ),
                ));
            }
            if let Some(old) = old {
                let strip = |s: &Value| {
                    let mut s = s.clone();
                    if let Value::Object(m) = &mut s {
                        for f in [
                            "replicas",
                            "ordinals",
                            "template",
                            "updateStrategy",
                            "persistentVolumeClaimRetentionPolicy",
                            "minReadySeconds",
                        ] {
                            m.remove(f);
                        }
                    }
                    s
                };
                if strip(&old["spec"]) != strip(spec) {
                    causes.push(Cause::new(
                        "FieldValueForbidden",
                        "spec",
                        "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                    ));
                }
            }
        }
        "Deployment" | "ReplicaSet" | "DaemonSet" => {
            validate_selector_matches_template(&obj["spec"], &mut causes);
            validate_pod_spec(
                &obj["spec"]["template"]["spec"],
                "spec.template.spec",
                &mut causes,
            );
        }
        "Job" => {
            let rp = obj["spec"]["template"]["spec"]["restartPolicy"]
                .as_str()
                .unwrap_or_default();
            if !matches!(rp, "Never" | "OnFailure") {
                causes.push(Cause::new(
                    "FieldValueNotSupported",
                    "spec.template.spec.restartPolicy",
                    format!(
                        "Unsupported value: {rp:?}: supported values: \"OnFailure\", \"Never\""
                    ),
                ));
            }
            validate_pod_spec(
                &obj["spec"]["template"]["spec"],
                "spec.template.spec",
                &mut causes,
            );
            if let Some(old) = old
                && old["spec"]["template"] != obj["spec"]["template"]
                && obj["spec"]["suspend"] != json!(true)
            {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "spec.template",
                    "Invalid value: field is immutable",
                ));
            }
        }
        "CronJob" => {
            let sched = obj["spec"]["schedule"].as_str().unwrap_or_default();
            if sched.is_empty() {
                causes.push(required("spec.schedule"));
            } else if parse_schedule(sched).is_err() {
                causes.push(invalid(
                    "spec.schedule",
                    format!("Invalid value: {sched:?}: unparseable schedule"),
                ));
            }
            if let Some(tz) = obj["spec"]["timeZone"].as_str()
                && jiff::tz::TimeZone::get(tz).is_err()
            {
                causes.push(invalid(
                    "spec.timeZone",
                    format!("Invalid value: {tz:?}: unknown time zone {tz}"),
                ));
            }
        }
        "Service" => {
            let spec = &obj["spec"];
            let ports = spec["ports"].as_array().map(Vec::len).unwrap_or(0);
            if ports == 0 && spec["clusterIP"] != "None" && spec["type"] != "ExternalName" {
                causes.push(required("spec.ports"));
            }
            if let Some(old) = old {
                let (o, n) = (&old["spec"]["clusterIP"], &spec["clusterIP"]);
                if !o.is_null() && o != n {
                    causes.push(invalid(
                        "spec.clusterIPs[0]",
                        "Invalid value: field is immutable",
                    ));
                }
            }
        }
        "ConfigMap" | "Secret" => {
            if let Some(old) = old
                && old["immutable"] == json!(true)
            {
                let fields = ["data", "binaryData", "stringData"];
                if fields.iter().any(|f| old[f] != obj[f]) {
                    causes.push(Cause::new(
                        "FieldValueForbidden",
                        "data",
                        "Forbidden: field is immutable when `immutable` is set",
                    ));
                }
            }
            if kind == "Secret"
                && let Some(Value::Object(data)) = obj.get("data")
            {
                for (k, v) in data {
                    if v.as_str().is_some_and(|s| {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.decode(s).is_err()
                    }) {
                        causes.push(invalid(
                            &format!("data[{k}]"),
                            "Invalid value: <secret contents redacted>: illegal base64 data",
                        ));
                    }
                }
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(old) = old {
                let strip = |s: &Value| {
                    let mut s = s.clone();
                    if let Some(Value::Object(r)) = s.pointer_mut("/resources/requests") {
                        r.remove("storage");
                    }
                    if let Value::Object(m) = &mut s {
                        m.remove("volumeName");
                    }
                    s
                };
                if strip(&old["spec"]) != strip(&obj["spec"]) {
                    causes.push(Cause::new(
                        "FieldValueForbidden",
                        "spec",
                        "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                    ));
                }
            }
        }
        _ => {}
    }
    causes
}

fn validate_selector_matches_template(spec: &Value, causes: &mut Vec<Cause>) {
    let sel = match crate::selectors::LabelSelector::from_label_selector(&spec["selector"]) {
        Ok(s) => s,
        Err(e) => {
            causes.push(invalid("spec.selector", e.to_string()));
            return;
        }
    };
    if sel.is_empty() {
        causes.push(invalid(
            "spec.selector",
            "Invalid value: empty selector is invalid for deployment/statefulset",
        ));
        return;
    }
    if !sel.matches(spec["template"]["metadata"]["labels"].as_object()) {
        causes.push(invalid(
            "spec.template.metadata.labels",
            format!(
                "Invalid value: {}: `selector` does not match template `labels`",
                spec["template"]["metadata"]["labels"]
            ),
        ));
    }
}

fn validate_pod_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let containers = spec["containers"].as_array();
    if containers.is_none_or(Vec::is_empty) {
        causes.push(required(&format!("{path}.containers")));
        return;
    }
    let mut names = Vec::new();
    for (i, c) in containers.into_iter().flatten().enumerate() {
        let name = c["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            causes.push(required(&format!("{path}.containers[{i}].name")));
        } else if names.contains(&name) {
            causes.push(Cause::new(
                "FieldValueDuplicate",
                format!("{path}.containers[{i}].name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        names.push(name);
        if c["image"].as_str().unwrap_or_default().is_empty() {
            causes.push(required(&format!("{path}.containers[{i}].image")));
        }
        let mut mounts = Vec::new();
        for (j, m) in c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let vol = m["name"].as_str().unwrap_or_default();
            let known = spec["volumes"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| v["name"] == vol));
            if !known {
                causes.push(Cause::new(
                    "FieldValueNotFound",
                    format!("{path}.containers[{i}].volumeMounts[{j}].name"),
                    format!("Not found: {vol:?}"),
                ));
            }
            let mp = m["mountPath"].as_str().unwrap_or_default();
            if mounts.contains(&mp) {
                causes.push(invalid(
                    &format!("{path}.containers[{i}].volumeMounts[{j}].mountPath"),
                    format!("Invalid value: {mp:?}: must be unique"),
                ));
            }
            mounts.push(mp);
        }
    }
}

/// A DNS-1123 subdomain (most object names) or label (namespaces, services).
pub fn validate_name(kind: &str, name: &str) -> Option<String> {
    let label = matches!(kind, "Namespace" | "Service");
    let max = if label { 63 } else { 253 };
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!label && c == '.'));
    let ok_ends = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    // Names of a few kinds are paths or free-form (RBAC allows ':'), as in the real server.
    let free_form = matches!(
        kind,
        "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding" | "Event"
    );
    if free_form {
        return if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            Some(format!("Invalid value: {name:?}: may not contain '/'"))
        } else {
            None
        };
    }
    if name.len() > max || !ok_chars || !ok_ends {
        let what = if label {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        };
        return Some(format!("Invalid value: {name:?}: {what}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_validated_like_the_api_server() {
        assert!(parse_schedule("0 13 * * 4").is_ok());
        assert!(parse_schedule("@hourly").is_ok());
        assert!(parse_schedule("0 0 13 * * 4").is_err(), "six fields");
        assert!(parse_schedule("CRON_TZ=UTC 0 13 * * 4").is_err());
        assert!(parse_schedule("bogus").is_err());
    }

    fn sts() -> Value {
        json!({"spec": {"selector": {"matchLabels": {"app": "v"}}, "serviceName": "v-internal",
            "template": {"metadata": {"labels": {"app": "v"}}, "spec": {"containers": [{"name": "c", "image": "openbao/openbao:2.7.2"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}})
    }

    #[test]
    fn statefulset_defaults_match_the_api_server() {
        let mut s = sts();
        apply_defaults("StatefulSet", &mut s, &mut || None);
        assert_eq!(s["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            s["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            s["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(
            s["spec"]["volumeClaimTemplates"][0]["kind"],
            "PersistentVolumeClaim"
        );
    }

    #[test]
    fn secret_string_data_is_folded_into_data_and_never_stored() {
        let mut secret = json!({"metadata": {"name": "s"},
            "data": {"kept": "a2VwdA==", "both": "b2xk"},
            "stringData": {"both": "new", "plain": "text"}});
        apply_defaults("Secret", &mut secret, &mut || None);
        assert!(secret.get("stringData").is_none(), "{secret}");
        assert_eq!(
            secret["data"],
            json!({"kept": "a2VwdA==", "both": "bmV3", "plain": "dGV4dA=="})
        );
        assert_eq!(secret["type"], "Opaque");

        let mut only_plain = json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}});
        apply_defaults("Secret", &mut only_plain, &mut || None);
        assert_eq!(only_plain["data"], json!({"k": "dg=="}));
    }

    #[test]
    fn statefulset_forbids_changing_claim_templates() {
        let old = sts();
        let mut new = sts();
        new["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        let c = validate("StatefulSet", &new, Some(&old));
        assert!(
            c[0].message
                .contains("updates to statefulset spec for fields other than")
        );
        new = sts();
        new["spec"]["replicas"] = json!(5);
        assert!(validate("StatefulSet", &new, Some(&old)).is_empty());
    }

    #[test]
    fn selector_must_match_template_labels() {
        let mut s = sts();
        s["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
        let c = validate("StatefulSet", &s, None);
        assert_eq!(c[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn service_gets_a_cluster_ip_unless_headless() {
        let mut svc = json!({"spec": {"ports": [{"port": 8200}]}});
        apply_defaults("Service", &mut svc, &mut || Some("127.20.0.130".into()));
        assert_eq!(svc["spec"]["clusterIP"], "127.20.0.130");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8200);
        let mut headless = json!({"spec": {"clusterIP": "None", "ports": [{"port": 8200}]}});
        apply_defaults("Service", &mut headless, &mut || {
            panic!("no IP for headless")
        });
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn names_follow_dns_rules() {
        assert!(validate_name("ConfigMap", "vault-config").is_none());
        assert!(validate_name("ConfigMap", "Vault").is_some());
        assert!(validate_name("Namespace", "a.b").is_some());
        assert!(validate_name("ClusterRole", "system:auth-delegator").is_none());
    }
}
