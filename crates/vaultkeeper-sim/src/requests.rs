//! The request log: every HTTP request the API server answered, so tests can count the
//! writes an operator pass makes, or check who did what.

use std::sync::Mutex;

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`), empty for non-resource requests.
    pub verb: String,
    /// Resource (plural), empty for non-resource requests.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Authenticated user name (`system:anonymous` when none).
    pub user: String,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Status code answered.
    pub code: u16,
}

impl RequestRecord {
    /// Whether the request was a write (create, update, patch, delete).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// The bounded log.
#[derive(Debug, Default)]
pub struct RequestLog {
    records: Mutex<Vec<RequestRecord>>,
}

const LIMIT: usize = 100_000;

impl RequestLog {
    /// Appends a record (the oldest half is dropped past the limit).
    pub fn push(&self, r: RequestRecord) {
        if let Ok(mut v) = self.records.lock() {
            if v.len() >= LIMIT {
                v.drain(..LIMIT / 2);
            }
            v.push(r);
        }
    }

    /// A copy of every record.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.records.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Forgets everything (start of a measured pass).
    pub fn clear(&self) {
        if let Ok(mut v) = self.records.lock() {
            v.clear();
        }
    }
}
