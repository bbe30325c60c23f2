//! The request log: every HTTP request the API server answered, so tests can count the
//! writes an operator pass makes, check who did what, and when: each record carries when
//! the request arrived and when it was done, so a test can prove two clients' requests
//! never overlapped. An exec is done when its session ends, not when the websocket is
//! accepted.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// The query string as sent (an exec's command is in it, as in an API server's audit
    /// log: which is why no secret may ever be part of one).
    pub query: String,
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
    /// When the request arrived (this process' monotonic clock).
    pub started: Instant,
    /// When it was done: the answer sent, or for an upgraded request (pods/exec) the end
    /// of its session.
    pub finished: Instant,
    /// The request's number in arrival order.
    pub id: u64,
}

impl RequestRecord {
    /// Whether this request and `other` were in progress at the same moment.
    pub fn overlaps(&self, other: &RequestRecord) -> bool {
        self.started < other.finished && other.started < self.finished
    }

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
    next_id: AtomicU64,
}

const LIMIT: usize = 100_000;

impl RequestLog {
    /// A number for a request that has just arrived.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Records that the request `id` (already pushed) finished at `at`: an upgraded
    /// request whose session outlived its answer.
    pub fn finish(&self, id: u64, at: Instant) {
        if let Ok(mut v) = self.records.lock()
            && let Some(r) = v.iter_mut().rev().find(|r| r.id == id)
        {
            r.finished = at;
        }
    }

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
