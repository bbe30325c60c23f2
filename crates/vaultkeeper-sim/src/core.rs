//! The API server's storage semantics, independent of HTTP: create, read, update, patch
//! and delete with the rules of the real server
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/>): resourceVersions and
//! optimistic concurrency, `metadata.generation` on spec changes, status subresource
//! separation, server-side apply, finalizers and graceful deletion, no-op writes that
//! change nothing. The HTTP layer and the in-process controllers both call it, so the
//! controllers obey exactly the rules a client sees.

use crate::builtin;
use crate::clock::{SimClock, format_time};
use crate::crd::{self, SchemaLists};
use crate::error::{Cause, SimError};
use crate::events;
use crate::kinds::{KindSource, ResourceType, View, builtin_types};
use crate::patch::{self, BuiltinLists, ListTypes};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::ssa::{self, Scope};
use crate::store::Store;
use base64::Engine;
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

    fn check_namespace(
        &self,
        store: &Store,
        rt: &ResourceType,
        ns: &str,
        name: &str,
    ) -> Result<(), SimError> {
        if !rt.namespaced {
            return Ok(());
        }
        match store.get("/namespaces", "", ns) {
            None => Err(SimError::NotFound {
                resource: "namespaces".into(),
                name: ns.to_string(),
            }),
            Some(n)
                if n["status"]["phase"] == "Terminating"
                    || !n["metadata"]["deletionTimestamp"].is_null() =>
            {
                Err(SimError::Forbidden(format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.qualified()
                )))
            }
            Some(_) => Ok(()),
        }
    }

    fn allocate_service_ip(&self, store: &Store) -> Option<String> {
        let mut used = lock(&self.used_service_ips);
        for svc in store.list("/services", None) {
            if let Some(ip) = svc["spec"]["clusterIP"]
                .as_str()
                .and_then(|s| s.parse().ok())
            {
                used.insert(ip);
            }
        }
        let start = u32::from(self.addresses.service_ip_start);
        (0..self.addresses.service_ip_count)
            .map(|i| Ipv4Addr::from(start + i))
            .find(|ip| !used.contains(ip))
            .map(|ip| {
                used.insert(ip);
                ip.to_string()
            })
    }

    /// Decoding, defaulting and validation of a write (`old` is the current object).
    fn prepare(
        &self,
        store: &Store,
        rt: &ResourceType,
        mut obj: Value,
        old: Option<&Value>,
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> Result<Value, SimError> {
        let name = meta_str(&obj, "name").to_string();
        let invalid = |causes: Vec<Cause>| SimError::Invalid {
            kind: rt.kind.clone(),
            group: rt.group.clone(),
            name: name.clone(),
            causes,
        };
        match &rt.source {
            KindSource::Builtin { roundtrip, .. } => {
                let before = obj.clone();
                obj = roundtrip(obj).map_err(|e| {
                    SimError::BadRequest(format!("{} in body is invalid: {e}", rt.kind))
                })?;
                let mut unknown = Vec::new();
                unknown_fields(&before, &obj, "", &mut unknown);
                report_unknown(rt, &name, unknown, opts, warnings)?;
                let mut alloc = || self.allocate_service_ip(store);
                builtin::apply_defaults(&rt.kind, &mut obj, &mut alloc);
                let causes = builtin::validate(&rt.kind, &obj, old);
                if !causes.is_empty() {
                    return Err(invalid(causes));
                }
                if rt.kind == "CustomResourceDefinition" {
                    crd::validate_crd(&obj)?;
                }
            }
            KindSource::Custom(kind) => {
                let prepared = crd::prune_and_default(kind, &obj);
                report_unknown(rt, &name, prepared.unknown, opts, warnings)?;
                obj = prepared.object;
                let validator = lock(&self.validator);
                crd::validate_object(kind, &obj, old, &validator)?;
            }
        }
        Ok(obj)
    }

    /// POST: create an object.
    pub fn create(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, SimError> {
        self.create_with(rt, ns, body, opts, None)
    }

    /// Create with managedFields computed by a server-side apply.
    fn create_with(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        body: Value,
        opts: &WriteOptions,
        managed: Option<Value>,
    ) -> Result<Written, SimError> {
        let srt = self.storage_type(rt);
        let mut obj = Self::from_view(rt, body);
        let mut store = self.store();
        let mut warnings = Vec::new();
        self.fill_type_meta(&srt, &mut obj, rt)?;
        if srt.namespaced {
            let body_ns = meta_str(&obj, "namespace");
            if !body_ns.is_empty() && body_ns != ns {
                return Err(SimError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            obj["metadata"]["namespace"] = json!(ns);
        } else if let Some(Value::Object(m)) = obj.get_mut("metadata") {
            m.remove("namespace");
        }
        if meta_str(&obj, "name").is_empty() {
            let prefix = meta_str(&obj, "generateName").to_string();
            if prefix.is_empty() {
                return Err(SimError::Invalid {
                    kind: srt.kind.clone(),
                    group: srt.group.clone(),
                    name: String::new(),
                    causes: vec![Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                });
            }
            obj["metadata"]["name"] = json!(format!("{prefix}{}", random_suffix(5)));
        }
        let name = meta_str(&obj, "name").to_string();
        if let Some(msg) = builtin::validate_name(&srt.kind, &name) {
            return Err(SimError::Invalid {
                kind: srt.kind.clone(),
                group: srt.group.clone(),
                name: name.clone(),
                causes: vec![Cause::new("FieldValueInvalid", "metadata.name", msg)],
            });
        }
        if !meta_str(&obj, "resourceVersion").is_empty() {
            return Err(SimError::BadRequest(
                "resourceVersion should not be set on objects to be created".into(),
            ));
        }
        self.check_namespace(&store, &srt, ns, &name)?;
        if store
            .get(&srt.storage, if srt.namespaced { ns } else { "" }, &name)
            .is_some()
        {
            return Err(SimError::AlreadyExists {
                resource: rt.qualified(),
                name,
            });
        }
        let now = self.clock.now_rfc3339();
        if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "selfLink",
            ] {
                meta.remove(f);
            }
            meta.insert("uid".into(), json!(new_uid()));
            meta.insert("creationTimestamp".into(), json!(now));
        }
        if srt.has_status()
            && let Value::Object(m) = &mut obj
        {
            m.remove("status");
        }
        if srt.kind == "Job" && srt.group == "batch" {
            builtin::default_job_selector(&mut obj);
        }
        if srt.kind == "Pod" {
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            self.admit_pod(&store, ns, &mut obj)?;
        }
        obj = self.prepare(&store, &srt, obj, None, opts, &mut warnings)?;
        if srt.custom().is_some() || builtin::tracks_generation(&srt.kind) {
            obj["metadata"]["generation"] = json!(1);
        }
        if let Some(Value::Object(m)) = obj.get_mut("metadata") {
            m.remove("managedFields");
        }
        if let Some(managed) = managed {
            obj["metadata"]["managedFields"] = managed;
        } else if !opts.field_manager.is_empty() {
            let lists = Self::lists_for(&srt);
            let scope = if srt.has_status() {
                Scope::NoStatus
            } else {
                Scope::Whole
            };
            ssa::track_update(
                &json!({}),
                &mut obj,
                lists.as_ref(),
                &opts.field_manager,
                &rt.api_version(),
                "",
                scope,
                &now,
            );
        }
        self.after_write_hooks(&srt, &mut obj, None)?;
        let stored = if opts.dry_run {
            obj
        } else {
            (*store.put(&srt.storage, obj)).clone()
        };
        drop(store);
        if !opts.dry_run {
            self.on_committed(&srt, &stored, None);
        }
        Ok(Written {
            object: Self::to_view(rt, &stored),
            warnings,
            created: true,
        })
    }

    fn fill_type_meta(
        &self,
        srt: &ResourceType,
        obj: &mut Value,
        rt: &ResourceType,
    ) -> Result<(), SimError> {
        if !obj.is_object() {
            return Err(SimError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        let want = srt.api_version();
        match obj.get("apiVersion").and_then(Value::as_str) {
            Some(v)
                if v != want
                    && !(rt.custom().is_some() && v.starts_with(&format!("{}/", rt.group))) =>
            {
                return Err(SimError::BadRequest(format!(
                    "the API version in the data ({v}) does not match the expected API version ({want})"
                )));
            }
            _ => obj["apiVersion"] = json!(want),
        }
        match obj.get("kind").and_then(Value::as_str) {
            Some(k) if k != srt.kind => {
                return Err(SimError::BadRequest(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    srt.kind
                )));
            }
            _ => obj["kind"] = json!(srt.kind),
        }
        if obj.get("metadata").is_none_or(|m| !m.is_object()) {
            obj["metadata"] = json!({});
        }
        Ok(())
    }

    /// ServiceAccount admission (the real plugin): default `serviceAccountName`, require
    /// the account to exist, and mount the projected API credentials unless opted out.
    fn admit_pod(&self, store: &Store, ns: &str, pod: &mut Value) -> Result<(), SimError> {
        let sa_name = pod["spec"]["serviceAccountName"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        pod["spec"]["serviceAccountName"] = json!(sa_name);
        pod["spec"]["serviceAccount"] = json!(sa_name);
        let Some(sa) = store.get("/serviceaccounts", ns, &sa_name) else {
            return Err(SimError::Forbidden(format!(
                "pods \"{}\" is forbidden: error looking up service account {ns}/{sa_name}: serviceaccount \"{sa_name}\" not found",
                meta_str(pod, "name")
            )));
        };
        let automount = pod["spec"]["automountServiceAccountToken"]
            .as_bool()
            .or_else(|| sa["automountServiceAccountToken"].as_bool())
            .unwrap_or(true);
        if !automount {
            return Ok(());
        }
        const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
        let already = pod["spec"]["containers"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["volumeMounts"]
                    .as_array()
                    .is_some_and(|ms| ms.iter().any(|m| m["mountPath"] == MOUNT))
            })
        });
        if already {
            return Ok(());
        }
        let vol_name = format!("kube-api-access-{}", random_suffix(5));
        let volume = json!({"name": vol_name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}});
        match pod["spec"].get_mut("volumes") {
            Some(Value::Array(vs)) => vs.push(volume),
            _ => pod["spec"]["volumes"] = json!([volume]),
        }
        for list in ["containers", "initContainers"] {
            if let Some(Value::Array(cs)) = pod["spec"].get_mut(list) {
                for c in cs {
                    let m = json!({"name": vol_name, "mountPath": MOUNT, "readOnly": true});
                    match c.get_mut("volumeMounts") {
                        Some(Value::Array(ms)) => ms.push(m),
                        _ => c["volumeMounts"] = json!([m]),
                    }
                }
            }
        }
        Ok(())
    }

    /// Kind-specific bookkeeping before a write is stored (CRD status).
    fn after_write_hooks(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        _old: Option<&Value>,
    ) -> Result<(), SimError> {
        if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
            let names = obj["spec"]["names"].clone();
            let mut accepted = names.clone();
            if accepted.get("singular").is_none_or(Value::is_null) {
                accepted["singular"] = json!(
                    names["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                );
            }
            if accepted.get("listKind").is_none_or(Value::is_null) {
                accepted["listKind"] = json!(format!(
                    "{}List",
                    names["kind"].as_str().unwrap_or_default()
                ));
            }
            let now = self.clock.now_rfc3339();
            let stored: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["storage"] == json!(true))
                .map(|v| v["name"].clone())
                .collect();
            obj["status"] = json!({
                "acceptedNames": accepted,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
                ],
                "storedVersions": stored,
            });
        }
        Ok(())
    }

    /// Side effects once a write is stored: CRDs (re)register their kinds.
    fn on_committed(&self, rt: &ResourceType, obj: &Value, _old: Option<&Value>) {
        if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
            let crd_name = meta_str(obj, "name").to_string();
            let new_types = crd::served_types(obj);
            if let Ok(mut types) = self.types.write() {
                types.retain(|t| t.custom().is_none_or(|c| c.crd_name != crd_name));
                types.extend(new_types.into_iter().map(Arc::new));
            }
        }
    }

    /// PUT: replace an object (or its status / scale).
    pub fn update(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        body: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<Written, SimError> {
        let srt = self.storage_type(rt);
        let mut obj = Self::from_view(rt, body);
        self.fill_type_meta(&srt, &mut obj, rt)?;
        let body_name = meta_str(&obj, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(SimError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let key_ns = if srt.namespaced { ns } else { "" };
        let existing = self.store().get(&srt.storage, key_ns, name);
        let Some(old) = existing else {
            if subresource.is_none() && (builtin::allows_create_on_update(&srt.kind)) {
                obj["metadata"]["name"] = json!(name);
                if let Some(Value::Object(m)) = obj.get_mut("metadata") {
                    m.remove("resourceVersion");
                }
                return self.create(rt, ns, Self::to_view(rt, &obj), opts);
            }
            return Err(Self::not_found(rt, name));
        };
        let body_rv = meta_str(&obj, "resourceVersion").to_string();
        if body_rv.is_empty() && srt.custom().is_some() {
            return Err(SimError::Invalid {
                kind: srt.kind.clone(),
                group: srt.group.clone(),
                name: name.to_string(),
                causes: vec![Cause::new(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )],
            });
        }
        let new = match subresource {
            Some("status") => {
                let mut n = (*old).clone();
                n["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
                if n["status"].is_null()
                    && let Value::Object(m) = &mut n
                {
                    m.remove("status");
                }
                n["metadata"]["resourceVersion"] = json!(body_rv);
                n
            }
            Some("scale") => self.apply_scale(&srt, &old, &obj)?,
            _ => {
                let mut n = obj;
                if srt.has_status() {
                    match old.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Value::Object(m) = &mut n {
                                m.remove("status");
                            }
                        }
                    }
                }
                n
            }
        };
        let sub = subresource.unwrap_or_default();
        self.commit_update(rt, &srt, ns, name, &old, new, sub, opts, false)
    }

    /// Writes an updated object after the request-specific merge: preconditions,
    /// server-owned metadata, validation, generation, ownership, finalization.
    #[allow(clippy::too_many_arguments)]
    fn commit_update(
        &self,
        rt: &Arc<ResourceType>,
        srt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        old: &Arc<Value>,
        mut new: Value,
        subresource: &str,
        opts: &WriteOptions,
        from_apply: bool,
    ) -> Result<Written, SimError> {
        let mut store = self.store();
        let key_ns = if srt.namespaced { ns } else { "" };
        // Re-read under the lock: a concurrent writer may have moved the object on.
        let current = store
            .get(&srt.storage, key_ns, name)
            .ok_or_else(|| Self::not_found(rt, name))?;
        let body_rv = meta_str(&new, "resourceVersion").to_string();
        let _ = old;
        if !body_rv.is_empty() && body_rv != meta_str(&current, "resourceVersion") {
            return Err(SimError::Conflict {
                resource: rt.qualified(),
                name: name.to_string(),
                message: format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    rt.qualified()
                ),
                causes: Vec::new(),
            });
        }
        let old = current;
        let now = self.clock.now_rfc3339();
        // Server-owned metadata is kept from the stored object.
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match old["metadata"].get(f) {
                Some(v) => new["metadata"][f] = v.clone(),
                None => {
                    if let Some(Value::Object(m)) = new.get_mut("metadata") {
                        m.remove(f);
                    }
                }
            }
        }
        if subresource == "status" {
            // Status writes reset everything but status (ResetObjectMetaForStatus).
            for f in ["labels", "annotations", "finalizers", "ownerReferences"] {
                match old["metadata"].get(f) {
                    Some(v) => new["metadata"][f] = v.clone(),
                    None => {
                        if let Some(Value::Object(m)) = new.get_mut("metadata") {
                            m.remove(f);
                        }
                    }
                }
            }
        }
        let deleting = !old["metadata"]["deletionTimestamp"].is_null();
        if deleting {
            let old_f: HashSet<String> = finalizers(&old).into_iter().collect();
            if finalizers(&new).iter().any(|f| !old_f.contains(f)) {
                return Err(SimError::Invalid {
                    kind: srt.kind.clone(),
                    group: srt.group.clone(),
                    name: name.to_string(),
                    causes: vec![Cause::new(
                        "FieldValueForbidden",
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                    )],
                });
            }
        }
        let mut warnings = Vec::new();
        new = self.prepare(&store, srt, new, Some(&old), opts, &mut warnings)?;
        if srt.custom().is_some() || builtin::tracks_generation(&srt.kind) {
            let has_status = srt.has_status();
            let mut generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            if spec_part(&old, has_status) != spec_part(&new, has_status) {
                generation += 1;
            }
            new["metadata"]["generation"] = json!(generation);
        }
        let lists = Self::lists_for(srt);
        let scope = match (subresource, srt.has_status()) {
            ("status", _) => Scope::StatusOnly,
            (_, true) => Scope::NoStatus,
            _ => Scope::Whole,
        };
        // An apply already computed its managedFields.
        match from_apply {
            true => {}
            false => {
                // Keep the server's bookkeeping: the request's managedFields are ignored
                // unless it resets them with `[{}]`.
                let reset = new["metadata"]["managedFields"] == json!([{}]);
                if reset {
                    if let Some(Value::Object(m)) = new.get_mut("metadata") {
                        m.remove("managedFields");
                    }
                } else {
                    new["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
                    if new["metadata"]["managedFields"].is_null()
                        && let Some(Value::Object(m)) = new.get_mut("metadata")
                    {
                        m.remove("managedFields");
                    }
                    if !opts.field_manager.is_empty() {
                        ssa::track_update(
                            &old,
                            &mut new,
                            lists.as_ref(),
                            &opts.field_manager,
                            &rt.api_version(),
                            subresource,
                            scope,
                            &now,
                        );
                    }
                }
            }
        }
        self.after_write_hooks(srt, &mut new, Some(&old))?;
        if comparable(&new) == comparable(&old) {
            // No-op: nothing is written and the resourceVersion stays.
            return Ok(Written {
                object: Self::to_view(rt, &old),
                warnings,
                created: false,
            });
        }
        let finalize = deleting
            && finalizers(&new).is_empty()
            && old["metadata"]["deletionGracePeriodSeconds"].as_i64() == Some(0);
        if opts.dry_run {
            return Ok(Written {
                object: Self::to_view(rt, &new),
                warnings,
                created: false,
            });
        }
        let stored = if finalize {
            store.put(&srt.storage, new);
            let gone = store.remove(&srt.storage, key_ns, name);
            drop(store);
            let v = gone.map(|g| (*g).clone()).unwrap_or_default();
            self.on_removed(srt, &v);
            v
        } else {
            let v = (*store.put(&srt.storage, new)).clone();
            drop(store);
            self.on_committed(srt, &v, Some(&old));
            v
        };
        Ok(Written {
            object: Self::to_view(rt, &stored),
            warnings,
            created: false,
        })
    }

    fn apply_scale(
        &self,
        rt: &ResourceType,
        old: &Value,
        scale: &Value,
    ) -> Result<Value, SimError> {
        let replicas = scale["spec"]["replicas"].clone();
        if !replicas.is_i64() && !replicas.is_u64() {
            return Err(SimError::BadRequest(
                "Scale.spec.replicas must be an integer".into(),
            ));
        }
        let mut n = old.clone();
        let path = match rt.custom().and_then(|c| c.scale.clone()) {
            Some(s) => s["specReplicasPath"]
                .as_str()
                .unwrap_or(".spec.replicas")
                .to_string(),
            None => ".spec.replicas".into(),
        };
        let ptr = path.replace('.', "/");
        match n.pointer_mut(&ptr) {
            Some(v) => *v = replicas,
            None => {
                let segs: Vec<&str> = path.trim_start_matches('.').split('.').collect();
                let mut cur = &mut n;
                for s in &segs[..segs.len().saturating_sub(1)] {
                    if cur.get(*s).is_none() {
                        cur[*s] = json!({});
                    }
                    cur = &mut cur[*s];
                }
                if let Some(last) = segs.last() {
                    cur[*last] = replicas;
                }
            }
        }
        n["metadata"]["resourceVersion"] = scale["metadata"]["resourceVersion"].clone();
        if n["metadata"]["resourceVersion"].is_null() {
            n["metadata"]["resourceVersion"] = json!("");
        }
        Ok(n)
    }

    /// The `Scale` object for a resource with a scale subresource.
    pub fn get_scale(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, SimError> {
        let obj = self.get(rt, ns, name)?;
        let (spec_path, status_path, selector_path) =
            match rt.custom().and_then(|c| c.scale.clone()) {
                Some(s) => (
                    s["specReplicasPath"]
                        .as_str()
                        .unwrap_or(".spec.replicas")
                        .to_string(),
                    s["statusReplicasPath"]
                        .as_str()
                        .unwrap_or(".status.replicas")
                        .to_string(),
                    s["labelSelectorPath"].as_str().map(str::to_string),
                ),
                None => (".spec.replicas".into(), ".status.replicas".into(), None),
            };
        let at = |p: &str| {
            obj.pointer(&p.replace('.', "/"))
                .cloned()
                .unwrap_or(json!(0))
        };
        let selector = match selector_path {
            Some(p) => at(&p),
            None => json!(label_selector_string(&obj["spec"]["selector"])),
        };
        Ok(json!({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": name, "namespace": ns, "uid": obj["metadata"]["uid"], "resourceVersion": obj["metadata"]["resourceVersion"], "creationTimestamp": obj["metadata"]["creationTimestamp"]},
            "spec": {"replicas": at(&spec_path)},
            "status": {"replicas": at(&status_path), "selector": selector},
        }))
    }

    /// PATCH (JSON, merge, strategic, apply). Like the real server, a patch that does
    /// not name a resourceVersion is retried when a concurrent write moved the object.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        ptype: PatchType,
        body: &[u8],
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<Written, SimError> {
        let names_rv = body.windows(15).any(|w| w == b"resourceVersion");
        let mut attempt = 0;
        loop {
            match self.patch_once(rt, ns, name, ptype, body, subresource, opts) {
                Err(SimError::Conflict { causes, .. })
                    if causes.is_empty() && !names_rv && attempt < 5 =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn patch_once(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        ptype: PatchType,
        body: &[u8],
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<Written, SimError> {
        let srt = self.storage_type(rt);
        if ptype == PatchType::Strategic && srt.custom().is_some() {
            return Err(SimError::UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
            ));
        }
        let key_ns = if srt.namespaced { ns } else { "" };
        let existing = self.store().get(&srt.storage, key_ns, name);
        if ptype == PatchType::Apply {
            return self.server_side_apply(rt, &srt, ns, name, body, subresource, opts, existing);
        }
        let Some(old) = existing else {
            return Err(Self::not_found(rt, name));
        };
        let base = if subresource == Some("scale") {
            self.get_scale(rt, ns, name)?
        } else {
            Self::to_view(rt, &old)
        };
        let mut doc = base.clone();
        match ptype {
            PatchType::Json => patch::json_patch(&mut doc, body).map_err(|e| match e {
                SimError::Invalid { causes, .. } => SimError::Invalid {
                    kind: srt.kind.clone(),
                    group: srt.group.clone(),
                    name: name.to_string(),
                    causes,
                },
                other => other,
            })?,
            PatchType::Merge => patch::merge_patch(&mut doc, body)?,
            PatchType::Strategic => patch::strategic_merge_patch(&mut doc, body)?,
            PatchType::Apply => {}
        }
        if subresource == Some("scale") {
            let new = self.apply_scale(&srt, &old, &doc)?;
            return self.commit_update(rt, &srt, ns, name, &old, new, "scale", opts, false);
        }
        let mut new = Self::from_view(rt, doc);
        // A patch is applied to the current object, so an unchanged resourceVersion is
        // not a precondition; one the patch set is.
        if meta_str(&new, "resourceVersion").is_empty() {
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        }
        let new = match subresource {
            Some("status") => {
                let mut n = (*old).clone();
                n["status"] = new.get("status").cloned().unwrap_or(Value::Null);
                n["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"].clone();
                n
            }
            _ => {
                if srt.has_status() {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Value::Object(m) = &mut new {
                                m.remove("status");
                            }
                        }
                    }
                }
                new
            }
        };
        self.commit_update(
            rt,
            &srt,
            ns,
            name,
            &old,
            new,
            subresource.unwrap_or_default(),
            opts,
            false,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn server_side_apply(
        &self,
        rt: &Arc<ResourceType>,
        srt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        body: &[u8],
        subresource: Option<&str>,
        opts: &WriteOptions,
        existing: Option<Arc<Value>>,
    ) -> Result<Written, SimError> {
        if !opts.explicit_manager || opts.field_manager.is_empty() {
            return Err(SimError::BadRequest(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
            ));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| SimError::BadRequest("apply patch body is not UTF-8".into()))?;
        let applied: Value = serde_saphyr::from_str(text)
            .map_err(|e| SimError::BadRequest(format!("error decoding YAML: {e}")))?;
        if !applied.is_object() {
            return Err(SimError::BadRequest("apply patch must be an object".into()));
        }
        let mut applied = Self::from_view(rt, applied);
        for f in ["apiVersion", "kind"] {
            if applied
                .get(f)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(SimError::BadRequest(format!(
                    "{f} must be set in an apply patch"
                )));
            }
        }
        self.fill_type_meta(srt, &mut applied, rt)?;
        let applied_name = meta_str(&applied, "name");
        if applied_name.is_empty() {
            applied["metadata"]["name"] = json!(name);
        } else if applied_name != name {
            return Err(SimError::BadRequest(format!(
                "the name of the object ({applied_name}) does not match the name on the URL ({name})"
            )));
        }
        let sub = subresource.unwrap_or_default();
        let scope = match (sub, srt.has_status()) {
            ("status", _) => Scope::StatusOnly,
            (_, true) => Scope::NoStatus,
            _ => Scope::Whole,
        };
        let now = self.clock.now_rfc3339();
        let req = ssa::ApplyRequest {
            manager: &opts.field_manager,
            force: opts.force,
            api_version: &rt.api_version(),
            subresource: sub,
            scope,
            now: &now,
        };
        let lists = Self::lists_for(srt);
        match existing {
            None => {
                if sub == "status" {
                    return Err(Self::not_found(rt, name));
                }
                let mut created = ssa::apply(
                    &json!({}),
                    &applied,
                    lists.as_ref(),
                    &req,
                    &rt.qualified(),
                    name,
                )?;
                if let Some(Value::Object(m)) = created.get_mut("metadata") {
                    m.remove("resourceVersion");
                }
                let managed = created["metadata"]["managedFields"].clone();
                self.create_with(rt, ns, Self::to_view(rt, &created), opts, Some(managed))
            }
            Some(old) => {
                let mut new =
                    ssa::apply(&old, &applied, lists.as_ref(), &req, &rt.qualified(), name)?;
                new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
                if sub != "status" && srt.has_status() {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Value::Object(m) = &mut new {
                                m.remove("status");
                            }
                        }
                    }
                }
                self.commit_update(rt, srt, ns, name, &old, new, sub, opts, true)
            }
        }
    }

    /// DELETE one object: preconditions, propagation finalizers, graceful pod deletion.
    pub fn delete(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, SimError> {
        let srt = self.storage_type(rt);
        let key_ns = if srt.namespaced { ns } else { "" };
        let mut store = self.store();
        let old = store
            .get(&srt.storage, key_ns, name)
            .ok_or_else(|| Self::not_found(rt, name))?;
        let conflict = |what: &str, want: &str, have: &str| SimError::Conflict {
            resource: rt.qualified(),
            name: name.to_string(),
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {what}: {want}, {what} in object meta: {have}",
                rt.qualified()
            ),
            causes: Vec::new(),
        };
        if let Some(uid) = &opts.precondition_uid
            && uid != meta_str(&old, "uid")
        {
            return Err(conflict("UID in precondition", uid, meta_str(&old, "uid")));
        }
        if let Some(rv) = &opts.precondition_rv
            && rv != meta_str(&old, "resourceVersion")
        {
            return Err(conflict(
                "ResourceVersion in precondition",
                rv,
                meta_str(&old, "resourceVersion"),
            ));
        }
        let mut obj = (*old).clone();
        let mut fins = finalizers(&obj);
        match opts.propagation.as_deref() {
            Some("Orphan") => {
                if !fins.iter().any(|f| f == "orphan") {
                    fins.push("orphan".into());
                }
            }
            Some("Foreground") => {
                if !fins.iter().any(|f| f == "foregroundDeletion") {
                    fins.push("foregroundDeletion".into());
                }
            }
            Some("Background") | None => {}
            Some(other) => {
                return Err(SimError::Invalid {
                    kind: "DeleteOptions".into(),
                    group: "meta.k8s.io".into(),
                    name: String::new(),
                    causes: vec![Cause::new(
                        "FieldValueNotSupported",
                        "propagationPolicy",
                        format!(
                            "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                        ),
                    )],
                });
            }
        }
        // Namespaces finalize through the namespace controller.
        if srt.kind == "Namespace" {
            obj["status"]["phase"] = json!("Terminating");
        }
        let pod_grace = if srt.kind == "Pod"
            && !obj["spec"]["nodeName"].is_null()
            && obj["status"]["phase"] != "Succeeded"
            && obj["status"]["phase"] != "Failed"
        {
            let g = opts
                .grace_period
                .or_else(|| obj["metadata"]["deletionGracePeriodSeconds"].as_i64())
                .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
                .unwrap_or(30);
            let g = match obj["metadata"]["deletionGracePeriodSeconds"].as_i64() {
                Some(existing) => g.min(existing),
                None => g,
            };
            if g > 0 { Some(g) } else { None }
        } else {
            None
        };
        let ns_pending = srt.kind == "Namespace"
            && obj["spec"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
        if fins.is_empty() && pod_grace.is_none() && !ns_pending {
            if opts.dry_run {
                return Ok(Deleted::Gone(Self::to_view(rt, &obj)));
            }
            let gone = store.remove(&srt.storage, key_ns, name);
            drop(store);
            let v = gone.map(|g| (*g).clone()).unwrap_or(obj);
            self.on_removed(&srt, &v);
            return Ok(Deleted::Gone(Self::to_view(rt, &v)));
        }
        let now = self.clock.now();
        if obj["metadata"]["deletionTimestamp"].is_null() {
            let ts = match pod_grace {
                Some(g) => now
                    .checked_add(jiff::SignedDuration::from_secs(g))
                    .unwrap_or(now),
                None => now,
            };
            obj["metadata"]["deletionTimestamp"] = json!(format_time(ts));
            if let Some(g) = obj["metadata"]["generation"].as_i64() {
                obj["metadata"]["generation"] = json!(g + 1);
            }
        }
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(pod_grace.unwrap_or(0));
        if !fins.is_empty() {
            obj["metadata"]["finalizers"] = json!(fins);
        }
        if comparable(&obj) == comparable(&old) || opts.dry_run {
            return Ok(Deleted::Pending(Self::to_view(rt, &obj)));
        }
        let stored = store.put(&srt.storage, obj);
        Ok(Deleted::Pending(Self::to_view(rt, &stored)))
    }

    fn on_removed(&self, rt: &ResourceType, obj: &Value) {
        if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
            let crd_name = meta_str(obj, "name").to_string();
            let storage = format!(
                "{}/{}",
                obj["spec"]["group"].as_str().unwrap_or_default(),
                obj["spec"]["names"]["plural"].as_str().unwrap_or_default()
            );
            if let Ok(mut types) = self.types.write() {
                types.retain(|t| t.custom().is_none_or(|c| c.crd_name != crd_name));
            }
            // The CRD's instances go with it (customresourcecleanup finalizer).
            let mut store = self.store();
            for o in store.list(&storage, None) {
                store.remove(&storage, meta_str(&o, "namespace"), meta_str(&o, "name"));
            }
        }
        if rt.kind == "Service"
            && let Some(ip) = obj["spec"]["clusterIP"]
                .as_str()
                .and_then(|s| s.parse().ok())
        {
            lock(&self.used_service_ips).remove(&ip);
        }
    }

    /// DELETE a collection (selectors apply), one delete per matching object.
    pub fn delete_collection(
        &self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Value, SimError> {
        let objects = self.list(rt, ns, list)?;
        let mut items = Vec::new();
        for o in objects["items"].as_array().into_iter().flatten() {
            let ons = meta_str(o, "namespace");
            match self.delete(rt, ons, meta_str(o, "name"), opts) {
                Ok(Deleted::Gone(v)) | Ok(Deleted::Pending(v)) => items.push(v),
                Err(SimError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(
            json!({"apiVersion": rt.api_version(), "kind": format!("{}List", rt.kind), "metadata": {"resourceVersion": self.store().revision().to_string()}, "items": items}),
        )
    }

    /// Writes a namespace's `spec.finalizers` (the `finalize` subresource) and removes the
    /// namespace once it is being deleted and no finalizer of either kind is left.
    pub fn finalize_namespace(&self, new: Value) -> Result<Value, SimError> {
        let ns_t = self.core_type("namespaces")?;
        let name = new["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let w = self.update(
            &ns_t,
            "",
            &name,
            new,
            None,
            &WriteOptions {
                field_manager: "kube-controller-manager".into(),
                ..Default::default()
            },
        )?;
        let obj = w.object;
        let spec_empty = obj["spec"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        let meta_empty = obj["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        if !obj["metadata"]["deletionTimestamp"].is_null() && spec_empty && meta_empty {
            self.delete(&ns_t, "", &name, &DeleteOptions::default())?;
        }
        Ok(obj)
    }

    /// Forget the watch history (tests use it to force 410 Gone).
    pub fn compact(&self) {
        self.store().compact();
    }
}

fn report_unknown(
    rt: &ResourceType,
    name: &str,
    unknown: Vec<String>,
    opts: &WriteOptions,
    warnings: &mut Vec<String>,
) -> Result<(), SimError> {
    if unknown.is_empty() {
        return Ok(());
    }
    match opts.field_validation {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Warn => {
            warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
            Ok(())
        }
        FieldValidation::Strict => {
            let list: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            Err(SimError::BadRequest(format!(
                "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                rt.kind,
                rt.version,
                rt.kind,
                list.join(", ")
            )))
            .inspect_err(|_e| {
                let _ = name;
            })
        }
    }
}

/// Fields present in `before` but gone after decoding into the typed struct.
fn unknown_fields(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    Some(av) => unknown_fields(bv, av, &p, out),
                    None if !bv.is_null() => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a.iter()).enumerate() {
                unknown_fields(bv, av, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `metav1.LabelSelector` → its string form (`a=b,c in (d)`), as Scale.status.selector.
pub fn label_selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let vals: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", vals.join(",")),
            "NotIn" => format!("{key} notin ({})", vals.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}
