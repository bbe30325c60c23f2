//! The API server's storage semantics, independent of HTTP: create, read, update, patch
//! and delete with the rules of the real server
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/>): resourceVersions and
//! optimistic concurrency, `metadata.generation` on spec changes, status subresource
//! separation, server-side apply, finalizers and graceful deletion, no-op writes that
//! change nothing. The HTTP layer and the in-process controllers both call it, so the
//! controllers obey exactly the rules a client sees.
//!
//! This module holds the shared types and the served kinds; `read`, `write`,
//! `admission` and `scale` each add their part of [`Core`]'s methods. The core never
//! names a controller: a stored change reaches them, like every watcher, through the
//! store's change feed ([`Store::subscribe`]).

mod admission;
mod read;
mod scale;
mod write;

pub use scale::label_selector_string;

use crate::clock::SimClock;
use crate::crd::SchemaLists;
use crate::error::SimError;
use crate::events;
use crate::kinds::{KindSource, ResourceType, View, builtin_types};
use crate::patch::{BuiltinLists, ListTypes};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::Store;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop unknown fields and return a warning per field (the server default).
    #[default]
    Warn,
    /// Refuse unknown fields with 400.
    Strict,
}

/// Options of a write request.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldManager` (or the user-agent prefix the HTTP layer derived).
    pub field_manager: String,
    /// `dryRun=All`: run everything, persist nothing.
    pub dry_run: bool,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `force` for server-side apply.
    pub force: bool,
    /// Whether `fieldManager` was given explicitly (apply requires it).
    pub explicit_manager: bool,
}

/// Result of a write.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as stored (or as it would be, under dry-run).
    pub object: Value,
    /// `Warning` headers to return.
    pub warnings: Vec<String>,
    /// Whether the write created the object (201 rather than 200).
    pub created: bool,
}

/// Patch flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

/// `DeleteOptions` (body or query).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `propagationPolicy`: Orphan, Background, Foreground.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// Outcome of a delete.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Removed from storage now; carries the last state.
    Gone(Value),
    /// Marked for deletion (finalizers or graceful pod termination pending).
    Pending(Value),
}

/// `list` options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Parsed label selector.
    pub labels: LabelSelector,
    /// Parsed field selector.
    pub fields: FieldSelector,
    /// `limit` (0 = none).
    pub limit: usize,
    /// `continue` token.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
}

/// Address plan of the cluster (API server, Service IPs).
#[derive(Debug, Clone)]
pub struct AddressPlan {
    /// API server address (the `kubernetes` Service points here).
    pub api_ip: Ipv4Addr,
    /// API server port.
    pub api_port: u16,
    /// First Service IP.
    pub service_ip_start: Ipv4Addr,
    /// How many Service IPs.
    pub service_ip_count: u32,
}

/// The API server's state and storage rules.
pub struct Core {
    store: Mutex<Store>,
    types: RwLock<Vec<Arc<ResourceType>>>,
    /// The cluster clock.
    pub clock: Arc<SimClock>,
    /// Signs service-account tokens.
    pub signer: crate::pki::TokenSigner,
    /// CA certificate (PEM) pods and kubeconfigs trust.
    pub ca_pem: String,
    /// Address plan.
    pub addresses: AddressPlan,
    validator: Mutex<kube_cel::Validator>,
    used_service_ips: Mutex<HashSet<Ipv4Addr>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("addresses", &self.addresses)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock would poison it; the data stays consistent because
    // every mutation is a single insert/remove, so keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Random lower-case string from the alphabet Kubernetes uses for generated names.
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = vec![0u8; n];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// A random RFC 4122 version-4 UID.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything but `metadata` and (when split off) `status`: what `generation` tracks.
fn spec_part(obj: &Value, has_status: bool) -> Value {
    let mut v = obj.clone();
    if let Value::Object(m) = &mut v {
        m.remove("metadata");
        if has_status {
            m.remove("status");
        }
    }
    v
}

/// The object with volatile bookkeeping removed, for no-op detection: a write that
/// changes nothing else does not bump the resourceVersion.
fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(Value::Object(meta)) = v.get_mut("metadata") {
        meta.remove("resourceVersion");
        if let Some(Value::Array(mf)) = meta.get_mut("managedFields") {
            for e in mf {
                if let Value::Object(e) = e {
                    e.remove("time");
                }
            }
        }
    }
    v
}

impl Core {
    /// A core serving the built-in kinds.
    pub fn new(
        clock: Arc<SimClock>,
        signer: crate::pki::TokenSigner,
        ca_pem: String,
        addresses: AddressPlan,
        history: usize,
    ) -> Self {
        Core {
            store: Mutex::new(Store::new(history)),
            types: RwLock::new(builtin_types().into_iter().map(Arc::new).collect()),
            clock,
            signer,
            ca_pem,
            addresses,
            validator: Mutex::new(kube_cel::Validator::new()),
            used_service_ips: Mutex::new(HashSet::new()),
        }
    }

    /// Locks the store (for watches that must subscribe and replay atomically).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Every served resource type.
    pub fn types(&self) -> Vec<Arc<ResourceType>> {
        self.types.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Finds a resource by group, version and plural.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types()
            .into_iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Finds a resource by `apiVersion` and `kind`.
    pub fn resolve_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.types()
            .into_iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
    }

    /// The core/v1 resource named `plural` (controllers' shorthand).
    pub fn core_type(&self, plural: &str) -> Result<Arc<ResourceType>, SimError> {
        self.resolve("", "v1", plural)
            .ok_or_else(|| SimError::Internal(format!("core resource {plural} missing")))
    }

    /// A resource by `group/version` and plural (controllers' shorthand).
    pub fn type_of(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Arc<ResourceType>, SimError> {
        self.resolve(group, version, plural)
            .ok_or_else(|| SimError::Internal(format!("resource {plural}.{group} missing")))
    }

    fn lists_for(rt: &ResourceType) -> Box<dyn ListTypes + '_> {
        match &rt.source {
            KindSource::Custom(c) => Box::new(SchemaLists(&c.schema)),
            KindSource::Builtin { .. } => Box::new(BuiltinLists),
        }
    }

    fn not_found(rt: &ResourceType, name: &str) -> SimError {
        SimError::NotFound {
            resource: rt.qualified(),
            name: name.to_string(),
        }
    }

    /// Converts a stored object into the served view.
    pub fn to_view(rt: &ResourceType, obj: &Value) -> Value {
        match rt.view {
            View::Native => {
                let mut o = obj.clone();
                // Custom objects are stored at the storage version; serving another
                // version with strategy None only changes apiVersion, as the real server does.
                if rt.custom().is_some() {
                    o["apiVersion"] = json!(rt.api_version());
                }
                o
            }
            View::EventsV1 => events::core_to_v1(obj),
        }
    }

    fn from_view(rt: &ResourceType, obj: Value) -> Value {
        match rt.view {
            View::Native => obj,
            View::EventsV1 => events::v1_to_core(&obj),
        }
    }

    /// The resource type objects are validated as (the storage's own view).
    fn storage_type(&self, rt: &Arc<ResourceType>) -> Arc<ResourceType> {
        match rt.view {
            View::Native => rt.clone(),
            View::EventsV1 => self
                .resolve("", "v1", "events")
                .unwrap_or_else(|| rt.clone()),
        }
    }

    /// Forget the watch history (tests use it to force 410 Gone).
    pub fn compact(&self) {
        self.store().compact();
    }
}
