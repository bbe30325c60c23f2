//! The controllers of the simulated control plane. Each runs as a task over the API
//! server's core (the same storage rules clients get), woken by storage changes and by a
//! periodic tick; each pass reconciles every object of its kind, which is cheap at the
//! scale of a test cluster and makes missed events impossible.

pub mod cronjob;
pub mod deployment;
pub mod endpoints;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod scheduler;
pub mod statefulset;

use crate::core::{Core, WriteOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Write options of a controller: its field manager, as the real controllers set theirs.
pub fn manager(name: &str) -> WriteOptions {
    WriteOptions {
        field_manager: name.to_string(),
        ..Default::default()
    }
}

/// Runs `pass` whenever a change hits one of `storages`, and at least every `period`.
/// Bursts of changes are coalesced into one pass.
pub fn spawn_loop<F>(
    core: Arc<Core>,
    storages: &'static [&'static str],
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut pass: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(&Core) + Send + 'static,
{
    let mut rx = core.store().subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
                msg = rx.recv() => match msg {
                    Ok(c) if !storages.is_empty() && !storages.contains(&c.storage.as_str()) => continue,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
            // Coalesce whatever else arrived meanwhile.
            while rx.try_recv().is_ok() {}
            pass(&core);
        }
    })
}

/// Starts every controller.
pub fn start_all(
    core: Arc<Core>,
    shutdown: watch::Receiver<bool>,
    node: String,
) -> Vec<tokio::task::JoinHandle<()>> {
    let fast = Duration::from_millis(500);
    vec![
        spawn_loop(
            core.clone(),
            &["/namespaces", "/serviceaccounts", "/configmaps"],
            Duration::from_secs(2),
            shutdown.clone(),
            namespace::pass,
        ),
        spawn_loop(
            core.clone(),
            &[],
            Duration::from_secs(1),
            shutdown.clone(),
            gc::pass,
        ),
        spawn_loop(core.clone(), &["/pods"], fast, shutdown.clone(), move |c| {
            scheduler::pass(c, &node)
        }),
        spawn_loop(
            core.clone(),
            &["apps/statefulsets", "/pods", "/persistentvolumeclaims"],
            fast,
            shutdown.clone(),
            statefulset::pass,
        ),
        spawn_loop(
            core.clone(),
            &["/services", "/pods"],
            fast,
            shutdown.clone(),
            endpoints::pass,
        ),
        spawn_loop(
            core.clone(),
            &["apps/deployments", "apps/replicasets", "/pods"],
            fast,
            shutdown.clone(),
            deployment::pass,
        ),
        spawn_loop(
            core.clone(),
            &["batch/jobs", "/pods"],
            fast,
            shutdown.clone(),
            job::pass,
        ),
        spawn_loop(
            core,
            &["batch/cronjobs", "batch/jobs"],
            fast,
            shutdown,
            cronjob::pass,
        ),
    ]
}

use serde_json::{Value, json};

/// An owner reference to `owner` (`controller: true`, `blockOwnerDeletion: true`, as the
/// workload controllers set them).
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    })
}

/// Whether `obj` is controlled by the object with this UID.
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|rs| {
            rs.iter()
                .any(|r| r["uid"] == uid && r["controller"] == json!(true))
        })
}

/// Whether a pod's `Ready` condition is true.
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Whether a pod is being deleted.
pub fn terminating(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// `metadata.name` of an object.
pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.namespace` of an object.
pub fn namespace_of(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or_default()
}
