//! The crate's one error type. API-level failures map onto the Kubernetes `Status` object the
//! real API server returns (same `reason`, `code` and message shape), so clients see the
//! errors they would see against a real cluster.

use serde_json::{Value, json};

/// Everything that can go wrong in the simulated cluster: API errors that become a
/// Kubernetes `Status` response, and start-up failures of the cluster itself.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// 404: the object (or its namespace) does not exist.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// Resource, qualified with its group (`pods`, `statefulsets.apps`).
        resource: String,
        /// Object name.
        name: String,
    },
    /// 409: create of an object that already exists.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// Resource, qualified with its group.
        resource: String,
        /// Object name.
        name: String,
    },
    /// 409: optimistic-concurrency failure or a server-side-apply conflict.
    #[error("{message}")]
    Conflict {
        /// Resource, qualified with its group.
        resource: String,
        /// Object name.
        name: String,
        /// The full message, as the real API server words it.
        message: String,
        /// Per-field causes (server-side-apply conflicts list each field and manager).
        causes: Vec<Cause>,
    },
    /// 422: the object fails validation.
    #[error(
        "{} \"{name}\" is invalid: {}",
        qualified_kind(kind, group),
        join_causes(causes)
    )]
    Invalid {
        /// Kind of the object.
        kind: String,
        /// Group of the kind.
        group: String,
        /// Object name.
        name: String,
        /// What is wrong, field by field.
        causes: Vec<Cause>,
    },
    /// 400: the request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or an unknown bearer token.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403: RBAC denies the request, or the namespace is terminating.
    #[error("{0}")]
    Forbidden(String),
    /// 405: the verb is not supported on this resource.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 406: the requested representation is not served.
    #[error("{0}")]
    NotAcceptable(String),
    /// 410: the requested resourceVersion is no longer in the watch window.
    #[error("{0}")]
    Gone(String),
    /// 415: unsupported patch or body content type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: injected throttling.
    #[error("{0}")]
    TooManyRequests(String),
    /// 500: an injected or genuine server failure.
    #[error("{0}")]
    Internal(String),
    /// 501: a feature the simulation refuses to fake.
    #[error("{0}")]
    NotImplemented(String),
    /// 504: the request timed out (e.g. a deletion that did not finish in time).
    #[error("{0}")]
    Timeout(String),
    /// The cluster could not start or stop (TLS set-up, sockets, files).
    #[error("simulated cluster: {0}")]
    Setup(String),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// One field-level cause inside a `Status`'s `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable reason, e.g. `FieldValueRequired`, `FieldManagerConflict`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// JSON path of the field (`spec.replicas`, `.spec.replicas` for SSA conflicts).
    pub field: String,
}

impl Cause {
    /// A cause for `field` with the given reason and message.
    pub fn new(reason: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_string(),
            message: message.into(),
            field: field.into(),
        }
    }
}

/// Result alias used across the crate.
pub type Result<T, E = SimError> = std::result::Result<T, E>;

impl SimError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SimError::Io {
            context: context.into(),
            source,
        }
    }

    /// The HTTP status code the API server answers with.
    pub fn code(&self) -> u16 {
        match self {
            SimError::NotFound { .. } => 404,
            SimError::AlreadyExists { .. } | SimError::Conflict { .. } => 409,
            SimError::Invalid { .. } => 422,
            SimError::BadRequest(_) => 400,
            SimError::Unauthorized => 401,
            SimError::Forbidden(_) => 403,
            SimError::MethodNotAllowed(_) => 405,
            SimError::NotAcceptable(_) => 406,
            SimError::Gone(_) => 410,
            SimError::UnsupportedMediaType(_) => 415,
            SimError::TooManyRequests(_) => 429,
            SimError::NotImplemented(_) => 501,
            SimError::Timeout(_) => 504,
            SimError::Internal(_) | SimError::Setup(_) | SimError::Io { .. } => 500,
        }
    }

    /// The `Status.reason` value the real API server uses for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            SimError::NotFound { .. } => "NotFound",
            SimError::AlreadyExists { .. } => "AlreadyExists",
            SimError::Conflict { .. } => "Conflict",
            SimError::Invalid { .. } => "Invalid",
            SimError::BadRequest(_) => "BadRequest",
            SimError::Unauthorized => "Unauthorized",
            SimError::Forbidden(_) => "Forbidden",
            SimError::MethodNotAllowed(_) => "MethodNotAllowed",
            SimError::NotAcceptable(_) => "NotAcceptable",
            SimError::Gone(_) => "Expired",
            SimError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            SimError::TooManyRequests(_) => "TooManyRequests",
            SimError::NotImplemented(_) => "NotImplemented",
            SimError::Timeout(_) => "Timeout",
            SimError::Internal(_) | SimError::Setup(_) | SimError::Io { .. } => "InternalError",
        }
    }

    /// The Kubernetes `Status` object (`metav1.Status`) for this failure.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        match self {
            SimError::NotFound { resource, name }
            | SimError::AlreadyExists { resource, name }
            | SimError::Conflict { resource, name, .. } => {
                let (res, group) = split_qualified(resource);
                details.insert("name".into(), json!(name));
                details.insert("group".into(), json!(group));
                details.insert("kind".into(), json!(res));
            }
            SimError::Invalid {
                kind, group, name, ..
            } => {
                details.insert("name".into(), json!(name));
                details.insert("group".into(), json!(group));
                details.insert("kind".into(), json!(kind));
            }
            _ => {}
        }
        let causes = match self {
            SimError::Invalid { causes, .. } | SimError::Conflict { causes, .. } => causes.clone(),
            _ => Vec::new(),
        };
        if !causes.is_empty() {
            details.insert(
                "causes".into(),
                Value::Array(
                    causes
                        .iter()
                        .map(
                            |c| json!({"reason": c.reason, "message": c.message, "field": c.field}),
                        )
                        .collect(),
                ),
            );
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        if let SimError::TooManyRequests(_) = self {
            status["details"] = json!({"retryAfterSeconds": 1});
        }
        status
    }
}

fn qualified_kind(kind: &str, group: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// One cause prints bare, several in brackets, as `field.ErrorList.ToAggregate` does.
fn join_causes(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

/// `statefulsets.apps` → (`statefulsets`, `apps`); `pods` → (`pods`, ``).
fn split_qualified(resource: &str) -> (&str, &str) {
    match resource.split_once('.') {
        Some((r, g)) => (r, g),
        None => (resource, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_matches_the_api_servers_shape() {
        let e = SimError::NotFound {
            resource: "statefulsets.apps".into(),
            name: "vault".into(),
        };
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "statefulsets.apps \"vault\" not found");
        assert_eq!(s["details"]["group"], "apps");
        assert_eq!(s["details"]["kind"], "statefulsets");
    }

    #[test]
    fn invalid_lists_every_cause() {
        let e = SimError::Invalid {
            kind: "VaultCluster".into(),
            group: "vaultkeeper.io".into(),
            name: "a".into(),
            causes: vec![Cause::new("FieldValueRequired", "spec.x", "Required value")],
        };
        assert_eq!(e.code(), 422);
        assert_eq!(
            e.to_string(),
            "VaultCluster.vaultkeeper.io \"a\" is invalid: spec.x: Required value"
        );
        assert_eq!(e.to_status()["details"]["causes"][0]["field"], "spec.x");
    }
}
