//! Writes: create, update, patch (JSON, merge, strategic, server-side apply) and delete,
//! with the request-level rules of the real server: optimistic concurrency on
//! `resourceVersion`, server-owned metadata, the status subresource split,
//! `metadata.generation`, managed fields, no-op detection, finalizers and graceful
//! deletion. Every write goes through `admission` before it is stored; storing it
//! notifies watchers and controllers through the store's change feed.

use super::{
    Core, DeleteOptions, Deleted, ListOptions, PatchType, WriteOptions, Written, comparable,
    finalizers, meta_str, new_uid, random_suffix, spec_part,
};
use crate::builtin;
use crate::clock::format_time;
use crate::error::{Cause, SimError};
use crate::kinds::ResourceType;
use crate::patch;
use crate::ssa::{self, Scope};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

impl Core {
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
}
