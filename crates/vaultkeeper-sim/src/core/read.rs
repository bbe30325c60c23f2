//! Reads: GET and LIST straight from storage, with the list semantics clients depend on
//! (label and field selectors, `limit`/`continue` paging against one snapshot,
//! `resourceVersion` and `resourceVersionMatch`). Nothing here changes storage.

use super::{Core, ListOptions, meta_str};
use crate::error::SimError;
use crate::kinds::ResourceType;
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;

impl Core {
    /// GET one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, SimError> {
        let store = self.store();
        store
            .get(&rt.storage, ns, name)
            .map(|o| Self::to_view(rt, &o))
            .ok_or_else(|| Self::not_found(rt, name))
    }

    /// GET without the view conversion, for controllers reading storage directly.
    pub fn get_raw(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.store().get(&rt.storage, ns, name)
    }

    /// All objects of a type (one namespace or all), unfiltered.
    pub fn list_raw(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.store().list(&rt.storage, ns)
    }

    /// LIST with selectors, paging and resourceVersion semantics.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<Value, SimError> {
        let store = self.store();
        let current = store.revision();
        let (snapshot_rv, start) = match &opts.continue_token {
            Some(tok) => {
                let (rv, start) = decode_continue(tok)?;
                (rv, Some(start))
            }
            None => {
                let rv = match (
                    opts.resource_version.as_deref(),
                    opts.resource_version_match.as_deref(),
                ) {
                    (Some(v), Some("Exact")) => v.parse::<u64>().map_err(|_| {
                        SimError::BadRequest(format!("invalid resource version {v:?}"))
                    })?,
                    (Some(v), _) if !v.is_empty() && v != "0" => {
                        let n: u64 = v.parse().map_err(|_| {
                            SimError::BadRequest(format!("invalid resource version {v:?}"))
                        })?;
                        if n > current {
                            return Err(SimError::Timeout(format!(
                                "Too large resource version: {n}, current: {current}"
                            )));
                        }
                        current
                    }
                    _ => current,
                };
                (rv, None)
            }
        };
        let objects = store.list_at(&rt.storage, ns, snapshot_rv)?;
        drop(store);
        let mut items = Vec::new();
        let mut next_key = None;
        let mut remaining = 0usize;
        for o in objects {
            let key = format!("{}/{}", meta_str(&o, "namespace"), meta_str(&o, "name"));
            if start.as_ref().is_some_and(|s| key.as_str() <= s.as_str()) {
                continue;
            }
            let view = Self::to_view(rt, &o);
            if !opts.labels.matches_object(&view) || !opts.fields.matches(&rt.kind, &o) {
                continue;
            }
            if opts.limit > 0 && items.len() >= opts.limit {
                remaining += 1;
                continue;
            }
            if opts.limit > 0 && items.len() + 1 == opts.limit {
                next_key = Some(key);
            }
            items.push(view);
        }
        let mut metadata = json!({"resourceVersion": snapshot_rv.to_string()});
        if remaining > 0
            && let Some(k) = next_key
        {
            metadata["continue"] = json!(encode_continue(snapshot_rv, &k));
            if opts.labels.is_empty() && opts.fields.0.is_empty() {
                metadata["remainingItemCount"] = json!(remaining);
            }
        }
        Ok(json!({
            "apiVersion": rt.api_version(),
            "kind": format!("{}List", rt.kind),
            "metadata": metadata,
            "items": items,
        }))
    }
}

/// Continue token as the real server encodes it (base64 of a small JSON document).
fn encode_continue(rv: u64, start: &str) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(
        json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{start}\u{0}")}).to_string(),
    )
}

fn decode_continue(token: &str) -> Result<(u64, String), SimError> {
    let bad = || SimError::BadRequest(format!("invalid continue token {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"]
        .as_str()
        .ok_or_else(bad)?
        .trim_end_matches('\u{0}')
        .to_string();
    Ok((rv, start))
}
