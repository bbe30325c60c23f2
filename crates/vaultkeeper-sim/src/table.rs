//! Server-side printing: `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables>).
//! Custom kinds print their `additionalPrinterColumns` (JSONPath evaluated per object);
//! built-in kinds print the columns `kubectl get` shows for them.

use crate::kinds::ResourceType;
use jsonpath_rust::JsonPath;
use serde_json::{Value, json};

/// Which object each row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
}

struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    priority: i64,
    description: &'static str,
}

const fn col(
    name: &'static str,
    ty: &'static str,
    priority: i64,
    description: &'static str,
) -> Column {
    Column {
        name,
        ty,
        format: if matches!(name.as_bytes(), b"Name") {
            "name"
        } else {
            ""
        },
        priority,
        description,
    }
}

fn age_col() -> Column {
    col(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    )
}

fn name_col() -> Column {
    col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    )
}

fn age(obj: &Value, now: jiff::Timestamp) -> String {
    obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(crate::clock::parse_time)
        .map(|t| human_duration(now.duration_since(t)))
        .unwrap_or_else(|| "<unknown>".into())
}

/// `kubectl`'s short age format (`5s`, `3m`, `2d4h`).
pub fn human_duration(d: jiff::SignedDuration) -> String {
    let s = d.as_secs().max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 600 {
        format!("{}m{}s", s / 60, s % 60)
    } else if s < 3 * 3600 {
        format!("{}m", s / 60)
    } else if s < 8 * 3600 {
        format!("{}h{}m", s / 3600, (s % 3600) / 60)
    } else if s < 48 * 3600 {
        format!("{}h", s / 3600)
    } else if s < 8 * 86400 {
        format!("{}d{}h", s / 86400, (s % 86400) / 3600)
    } else {
        format!("{}d", s / 86400)
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "<none>".into(),
        Value::String(x) if x.is_empty() => "<none>".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

fn builtin_columns(kind: &str) -> Vec<Column> {
    match kind {
        "Pod" => vec![
            name_col(),
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age_col(),
            col("IP", "string", 1, "The IP address assigned to the pod."),
            col(
                "Node",
                "string",
                1,
                "The name of the node the pod is scheduled on.",
            ),
        ],
        "StatefulSet" => vec![
            name_col(),
            col("Ready", "string", 0, "Number of the pod with ready state"),
            age_col(),
        ],
        "Service" => vec![
            name_col(),
            col("Type", "string", 0, "The type of the service."),
            col("Cluster-IP", "string", 0, "The cluster IP of the service."),
            col(
                "External-IP",
                "string",
                0,
                "The external IP of the service.",
            ),
            col("Port(s)", "string", 0, "The ports of the service."),
            age_col(),
            col("Selector", "string", 1, "The selector of the service."),
        ],
        "Endpoints" => vec![
            name_col(),
            col("Endpoints", "string", 0, "Endpoints of the service"),
            age_col(),
        ],
        "Job" => vec![
            name_col(),
            col("Status", "string", 0, "Status of the job."),
            col(
                "Completions",
                "string",
                0,
                "The completion status of the job.",
            ),
            col(
                "Duration",
                "string",
                0,
                "Time required to complete the job.",
            ),
            age_col(),
        ],
        "CronJob" => vec![
            name_col(),
            col("Schedule", "string", 0, "The schedule for running the job."),
            col("Timezone", "string", 0, "The time zone for the schedule."),
            col(
                "Suspend",
                "boolean",
                0,
                "Whether the cron job is suspended.",
            ),
            col("Active", "integer", 0, "Number of active jobs."),
            col(
                "Last Schedule",
                "string",
                0,
                "Last time the job was scheduled.",
            ),
            age_col(),
        ],
        "ConfigMap" => vec![
            name_col(),
            col("Data", "string", 0, "Number of data entries"),
            age_col(),
        ],
        "Secret" => vec![
            name_col(),
            col("Type", "string", 0, "The type of the secret"),
            col("Data", "string", 0, "Number of data entries"),
            age_col(),
        ],
        "Namespace" => vec![
            name_col(),
            col("Status", "string", 0, "The status of the namespace"),
            age_col(),
        ],
        "PersistentVolumeClaim" => vec![
            name_col(),
            col("Status", "string", 0, "The phase of the claim."),
            col("Volume", "string", 0, "The name of the bound volume."),
            col("Capacity", "string", 0, "The capacity of the bound volume."),
            col("Access Modes", "string", 0, "Access modes of the claim."),
            col(
                "StorageClass",
                "string",
                0,
                "The storage class of the claim.",
            ),
            age_col(),
        ],
        "Lease" => vec![
            name_col(),
            col("Holder", "string", 0, "The holder of the lease."),
            age_col(),
        ],
        "Event" => vec![
            col("Last Seen", "string", 0, "Time of the last occurrence."),
            col("Type", "string", 0, "Type of the event."),
            col("Reason", "string", 0, "Reason of the event."),
            col("Object", "string", 0, "The object the event is about."),
            col("Message", "string", 0, "Message of the event."),
        ],
        "CustomResourceDefinition" => vec![
            name_col(),
            col("Created At", "date", 0, "When the CRD was created"),
        ],
        _ => vec![name_col(), age_col()],
    }
}

fn builtin_cells(kind: &str, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = json!(obj["metadata"]["name"]);
    let age = json!(age(obj, now));
    match kind {
        "Pod" => {
            let statuses = obj["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = obj["spec"]["containers"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0);
            let ready = statuses
                .iter()
                .filter(|c| c["ready"] == json!(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .filter_map(|c| c["restartCount"].as_i64())
                .sum();
            let mut status = obj["status"]["phase"]
                .as_str()
                .unwrap_or("Pending")
                .to_string();
            for c in &statuses {
                if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
                    status = r.to_string();
                } else if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
                    status = r.to_string();
                }
            }
            if !obj["metadata"]["deletionTimestamp"].is_null() {
                status = "Terminating".into();
            }
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                age,
                json!(s(&obj["status"]["podIP"])),
                json!(s(&obj["spec"]["nodeName"])),
            ]
        }
        "StatefulSet" => vec![
            name,
            json!(format!(
                "{}/{}",
                obj["status"]["readyReplicas"].as_i64().unwrap_or(0),
                obj["spec"]["replicas"].as_i64().unwrap_or(1)
            )),
            age,
        ],
        "Service" => {
            let ports: Vec<String> = obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                .collect();
            let selector: Vec<String> = obj["spec"]["selector"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            vec![
                name,
                json!(s(&obj["spec"]["type"])),
                json!(s(&obj["spec"]["clusterIP"])),
                json!("<none>"),
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                }),
                age,
                json!(if selector.is_empty() {
                    "<none>".to_string()
                } else {
                    selector.join(",")
                }),
            ]
        }
        "Endpoints" => {
            let mut eps = Vec::new();
            for sub in obj["subsets"].as_array().into_iter().flatten() {
                for a in sub["addresses"].as_array().into_iter().flatten() {
                    for p in sub["ports"].as_array().into_iter().flatten() {
                        eps.push(format!(
                            "{}:{}",
                            a["ip"].as_str().unwrap_or_default(),
                            p["port"]
                        ));
                    }
                }
            }
            vec![
                name,
                json!(if eps.is_empty() {
                    "<none>".into()
                } else {
                    eps.join(",")
                }),
                age,
            ]
        }
        "Job" => {
            let succeeded = obj["status"]["succeeded"].as_i64().unwrap_or(0);
            let completions = obj["spec"]["completions"].as_i64().unwrap_or(1);
            let conds = obj["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let status = if conds
                .iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
            {
                "Complete"
            } else if conds
                .iter()
                .any(|c| c["type"] == "Failed" && c["status"] == "True")
            {
                "Failed"
            } else {
                "Running"
            };
            let duration = match (
                obj["status"]["startTime"]
                    .as_str()
                    .and_then(crate::clock::parse_time),
                obj["status"]["completionTime"]
                    .as_str()
                    .and_then(crate::clock::parse_time),
            ) {
                (Some(a), Some(b)) => human_duration(b.duration_since(a)),
                (Some(a), None) => human_duration(now.duration_since(a)),
                _ => String::new(),
            };
            vec![
                name,
                json!(status),
                json!(format!("{succeeded}/{completions}")),
                json!(duration),
                age,
            ]
        }
        "CronJob" => vec![
            name,
            json!(s(&obj["spec"]["schedule"])),
            json!(s(&obj["spec"]["timeZone"])),
            obj["spec"]["suspend"].clone(),
            json!(
                obj["status"]["active"]
                    .as_array()
                    .map(Vec::len)
                    .unwrap_or(0)
            ),
            json!(
                obj["status"]["lastScheduleTime"]
                    .as_str()
                    .and_then(crate::clock::parse_time)
                    .map(|t| human_duration(now.duration_since(t)))
                    .unwrap_or_else(|| "<none>".into())
            ),
            age,
        ],
        "ConfigMap" => {
            let n = obj["data"].as_object().map(|m| m.len()).unwrap_or(0)
                + obj["binaryData"].as_object().map(|m| m.len()).unwrap_or(0);
            vec![name, json!(n.to_string()), age]
        }
        "Secret" => vec![
            name,
            json!(s(&obj["type"])),
            json!(
                obj["data"]
                    .as_object()
                    .map(|m| m.len())
                    .unwrap_or(0)
                    .to_string()
            ),
            age,
        ],
        "Namespace" => vec![name, json!(s(&obj["status"]["phase"])), age],
        "PersistentVolumeClaim" => vec![
            name,
            json!(s(&obj["status"]["phase"])),
            json!(s(&obj["spec"]["volumeName"])),
            json!(
                obj["status"]["capacity"]["storage"]
                    .as_str()
                    .unwrap_or_default()
            ),
            json!(
                obj["status"]["accessModes"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|m| match m {
                            "ReadWriteOnce" => "RWO",
                            "ReadOnlyMany" => "ROX",
                            "ReadWriteMany" => "RWX",
                            "ReadWriteOncePod" => "RWOP",
                            o => o,
                        })
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default()
            ),
            json!(s(&obj["spec"]["storageClassName"])),
            age,
        ],
        "Lease" => vec![name, json!(s(&obj["spec"]["holderIdentity"])), age],
        "Event" => {
            let last = obj["lastTimestamp"]
                .as_str()
                .or_else(|| obj["eventTime"].as_str())
                .and_then(crate::clock::parse_time)
                .map(|t| human_duration(now.duration_since(t)))
                .unwrap_or_else(|| "<unknown>".into());
            vec![
                json!(last),
                json!(s(&obj["type"])),
                json!(s(&obj["reason"])),
                json!(format!(
                    "{}/{}",
                    obj["involvedObject"]["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                    obj["involvedObject"]["name"].as_str().unwrap_or_default()
                )),
                json!(s(&obj["message"])),
            ]
        }
        "CustomResourceDefinition" => vec![name, obj["metadata"]["creationTimestamp"].clone()],
        _ => vec![name, age],
    }
}

/// Evaluates a printer column's JSONPath (Kubernetes syntax `.status.phase`).
pub fn eval_column(obj: &Value, path: &str) -> Value {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p);
    let query = format!("${p}");
    match obj.query(&query) {
        Ok(found) => match found.as_slice() {
            [] => Value::Null,
            [one] => (*one).clone(),
            many => json!(
                many.iter()
                    .map(|v| match v {
                        Value::String(x) => x.clone(),
                        o => o.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        },
        Err(_) => Value::Null,
    }
}

fn metadata_only(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

/// Builds a `Table` for objects of one resource.
pub fn to_table(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: &str,
    include: IncludeObject,
    now: jiff::Timestamp,
    with_columns: bool,
) -> Value {
    let (defs, rows): (Vec<Value>, Vec<Value>) = match rt.custom() {
        Some(c) => {
            let mut defs = vec![
                json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. More info: http://kubernetes.io/docs/user-guide/identifiers#names", "priority": 0}),
            ];
            for pc in &c.printer_columns {
                defs.push(json!({
                    "name": pc["name"], "type": pc["type"], "format": pc["format"].as_str().unwrap_or_default(),
                    "description": pc["description"].as_str().unwrap_or_default(), "priority": pc["priority"].as_i64().unwrap_or(0)
                }));
            }
            if c.printer_columns.is_empty() {
                defs.push(json!({"name": "Age", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
            }
            let rows = objects
                .iter()
                .map(|o| {
                    let mut cells = vec![o["metadata"]["name"].clone()];
                    for pc in &c.printer_columns {
                        let v = eval_column(o, pc["jsonPath"].as_str().unwrap_or_default());
                        // Date columns print as an age, as the CRD table convertor does.
                        let v = match (pc["type"].as_str(), &v) {
                            (Some("date"), Value::String(t)) => crate::clock::parse_time(t)
                                .map(|t| json!(human_duration(now.duration_since(t))))
                                .unwrap_or(v),
                            _ => v,
                        };
                        cells.push(v);
                    }
                    if c.printer_columns.is_empty() {
                        cells.push(json!(age(o, now)));
                    }
                    row(o, cells, include)
                })
                .collect();
            (defs, rows)
        }
        None => {
            let cols = builtin_columns(&rt.kind);
            let defs = cols
                .iter()
                .map(|c| json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority}))
                .collect();
            let rows = objects
                .iter()
                .map(|o| row(o, builtin_cells(&rt.kind, o, now), include))
                .collect();
            (defs, rows)
        }
    };
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "rows": rows,
    });
    t["columnDefinitions"] = if with_columns {
        Value::Array(defs)
    } else {
        Value::Null
    };
    t
}

fn row(o: &Value, cells: Vec<Value>, include: IncludeObject) -> Value {
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => r["object"] = metadata_only(o),
        IncludeObject::Object => r["object"] = o.clone(),
    }
    r
}

/// The `PartialObjectMetadata` form of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    metadata_only(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_jsonpaths_evaluate_like_kubectl() {
        let obj = json!({"spec": {"replicas": 3}, "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Sealed", "status": "False"}]}});
        assert_eq!(eval_column(&obj, ".spec.replicas"), json!(3));
        assert_eq!(
            eval_column(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            json!("True")
        );
        assert_eq!(eval_column(&obj, ".status.missing"), Value::Null);
    }

    #[test]
    fn ages_print_in_kubectl_short_form() {
        assert_eq!(human_duration(jiff::SignedDuration::from_secs(5)), "5s");
        assert_eq!(human_duration(jiff::SignedDuration::from_secs(300)), "5m0s");
        assert_eq!(
            human_duration(jiff::SignedDuration::from_secs(3 * 86400 + 3600)),
            "3d1h"
        );
    }
}
