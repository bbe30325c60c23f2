//! Object storage: JSON objects keyed by storage, namespace and name, one global
//! resourceVersion counter (etcd's revision), and a bounded history of changes that
//! watches replay from. A watch from a resourceVersion older than the history answers
//! 410 Gone, as the real watch cache does
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions>).

use crate::error::SimError;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change in the history.
#[derive(Debug, Clone)]
pub struct Change {
    /// Revision of this change.
    pub rv: u64,
    /// Storage key (`apps/statefulsets`).
    pub storage: String,
    /// Namespace (`""` for cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// What happened.
    pub kind: EventType,
    /// Object after the change (for Deleted: the last state, with the deletion RV).
    pub object: Arc<Value>,
    /// Object before the change.
    pub old: Option<Arc<Value>>,
}

type Key = (String, String);

/// The storage. Callers hold it behind a mutex; every write bumps the revision, records
/// the change and broadcasts it to watchers in order.
pub struct Store {
    rv: u64,
    objects: HashMap<String, BTreeMap<Key, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Oldest revision a watch may resume from (exclusive lower bound of history).
    compacted: u64,
    tx: broadcast::Sender<Arc<Change>>,
}

impl Store {
    /// An empty store keeping `history_limit` changes for watches.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(16_384);
        Store {
            rv: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(16),
            compacted: 1,
            tx,
        }
    }

    /// Current revision.
    pub fn revision(&self) -> u64 {
        self.rv
    }

    /// Oldest revision still watchable.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Subscribe to changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Reads one object.
    pub fn get(&self, storage: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(storage)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// All objects of a storage (in one namespace, or all when `ns` is None), in key order.
    pub fn list(&self, storage: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some(m) = self.objects.get(storage) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => m
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            None => m.values().cloned().collect(),
        }
    }

    /// Storage keys that hold at least one object.
    pub fn storages(&self) -> Vec<String> {
        self.objects
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Writes an object (create or update), stamping `metadata.resourceVersion`.
    pub fn put(&mut self, storage: &str, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let obj = Arc::new(obj);
        let old = self
            .objects
            .entry(storage.to_string())
            .or_default()
            .insert((ns.clone(), name.clone()), obj.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            rv,
            storage: storage.to_string(),
            namespace: ns,
            name,
            kind,
            object: obj.clone(),
            old,
        });
        obj
    }

    /// Removes an object; the DELETED event carries its last state at the new revision.
    pub fn remove(&mut self, storage: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        let old = self
            .objects
            .get_mut(storage)?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let last = Arc::new(last);
        self.record(Change {
            rv: self.rv,
            storage: storage.to_string(),
            namespace: ns.to_string(),
            name: name.to_string(),
            kind: EventType::Deleted,
            object: last.clone(),
            old: Some(old),
        });
        Some(last)
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change);
    }

    /// Forgets all history up to now (the etcd compaction a test can trigger), so every
    /// watch or continue token older than the current revision gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// The changes after `rv`, or 410 Gone when `rv` is older than the history.
    pub fn changes_since(&self, rv: u64) -> Result<Vec<Arc<Change>>, SimError> {
        if rv < self.compacted {
            return Err(SimError::Gone(format!(
                "too old resource version: {rv} ({})",
                self.compacted
            )));
        }
        Ok(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// The objects of a storage as they were at revision `rv` (for consistent paging with
    /// `continue`), rebuilt by undoing later changes; 410 when the history no longer reaches.
    pub fn list_at(
        &self,
        storage: &str,
        ns: Option<&str>,
        rv: u64,
    ) -> Result<Vec<Arc<Value>>, SimError> {
        if rv == self.rv {
            return Ok(self.list(storage, ns));
        }
        if rv < self.compacted || rv > self.rv {
            return Err(SimError::Gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".into(),
            ));
        }
        let mut snapshot: BTreeMap<Key, Arc<Value>> =
            self.objects.get(storage).cloned().unwrap_or_default();
        for c in self.history.iter().rev().take_while(|c| c.rv > rv) {
            if c.storage != storage {
                continue;
            }
            let key = (c.namespace.clone(), c.name.clone());
            match (&c.kind, &c.old) {
                (EventType::Added, _) => {
                    snapshot.remove(&key);
                }
                (_, Some(old)) => {
                    snapshot.insert(key, old.clone());
                }
                (_, None) => {}
            }
        }
        Ok(snapshot
            .into_iter()
            .filter(|((n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, v: i64) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}, "v": v})
    }

    #[test]
    fn every_write_bumps_the_revision_and_stamps_it() {
        let mut s = Store::new(100);
        let a = s.put("/cm", obj("a", 1));
        let b = s.put("/cm", obj("a", 2));
        let ra: u64 = a["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let rb: u64 = b["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rb > ra);
        assert_eq!(s.revision(), rb);
    }

    #[test]
    fn history_replays_after_a_revision_and_expires_with_410() {
        let mut s = Store::new(16);
        let start = s.revision();
        for i in 0..5 {
            s.put("/cm", obj("a", i));
        }
        assert_eq!(s.changes_since(start).unwrap().len(), 5);
        for i in 0..40 {
            s.put("/cm", obj("b", i));
        }
        let e = s.changes_since(start).unwrap_err();
        assert_eq!(e.code(), 410);
    }

    #[test]
    fn list_at_rebuilds_an_older_snapshot() {
        let mut s = Store::new(100);
        s.put("/cm", obj("a", 1));
        let rv = s.revision();
        s.put("/cm", obj("a", 2));
        s.put("/cm", obj("b", 1));
        s.remove("/cm", "ns", "a");
        let old = s.list_at("/cm", Some("ns"), rv).unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0]["v"], 1);
        s.compact();
        assert_eq!(s.list_at("/cm", Some("ns"), rv).unwrap_err().code(), 410);
    }
}
