//! The runtime: accepts pods, prepares their files, starts their containers through the
//! sandbox, supervises them (logs, exits, restarts, probes, hooks), serves exec and logs,
//! and stops them on deletion. This is the wiring; the decisions it applies live in the
//! pure modules (env, volumes, mounts, restart, probes, status).

use super::env::{self, EnvContext, EnvVar};
use super::error::{Result, RuntimeError};
use super::exec::{ExecOptions, ExecOrigin, ExecOutput, ExecRecord, ExecSession};
use super::hosts::{HostEntry, render_hosts_file};
use super::image::{IMAGE_BIN_DIR, ImageMap, ImageRule};
use super::logs::{LogBuffer, LogOptions, LogReader, LogStream, capture};
use super::loopback;
use super::mounts::{plan_container_mounts, resolve_mount_source};
use super::privilege::check_privileges;
use super::probes::{
    ProbeAction, ProbeKind, ProbeOutcome, ProbeSpec, ProbeTracker, http_probe, parse_probe,
    tcp_probe,
};
use super::restart::{Backoff, RestartPolicy, restart_delay, should_restart};
use super::sandbox::{ExitStatus, PidNamespace, Process, ProcessPlan, Spawner, Step, cstr};
use super::status::{
    ContainerState, ContainerStatus, PodCondition, PodKey, PodStatus, pod_conditions, pod_phase,
};
use super::volumes::{
    FsGroupPolicy, ServiceAccountTokens, VolumeContent, VolumeInputs, apply_fs_group,
    data_dir_stamp, plan_volumes, write_files_volume,
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, LifecycleHandler, Pod, Secret};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::net::unix::pipe;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// The clock the runtime stamps logs and states with (the glue can pass the cluster's).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// How the runtime runs.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Directory for per-pod files (hosts file, volume contents, mount points). Must be an
    /// absolute path without `,`, `:` or whitespace (it ends up in overlay mount options).
    pub state_dir: PathBuf,
    /// Image → binary.
    pub images: ImageMap,
    /// Bytes of log kept per container instance.
    pub log_limit_bytes: usize,
    /// Crash-loop back-off.
    pub backoff: Backoff,
    /// Time source.
    pub clock: Clock,
    /// Translate "localhost" and wildcard binds to the pod IP (see `loopback`). On by
    /// default; turning it off makes pods share the host's loopback like plain processes.
    pub translate_loopback: bool,
}

impl std::fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("state_dir", &self.state_dir)
            .field("images", &self.images)
            .field("log_limit_bytes", &self.log_limit_bytes)
            .field("backoff", &self.backoff)
            .field("translate_loopback", &self.translate_loopback)
            .finish_non_exhaustive()
    }
}

impl RuntimeConfig {
    /// Defaults: 1 MiB of log per instance, the kubelet's back-off, the real clock,
    /// loopback translation on.
    pub fn new(state_dir: impl Into<PathBuf>, images: ImageMap) -> Self {
        RuntimeConfig {
            state_dir: state_dir.into(),
            images,
            log_limit_bytes: 1 << 20,
            backoff: Backoff::default(),
            clock: Arc::new(Timestamp::now),
            translate_loopback: true,
        }
    }
}

/// Everything the glue resolved for one pod. Its `Debug` names the referenced objects
/// but never prints their data (Secrets, tokens).
#[derive(Clone)]
pub struct PodLaunch {
    /// The pod (metadata: namespace, name, uid, labels, annotations; spec).
    pub pod: Pod,
    /// Its IP (a loopback address such as 127.22.0.10).
    pub pod_ip: IpAddr,
    /// The node's IP.
    pub host_ip: IpAddr,
    /// The hosts file entries (pod and Service names in every form pods use).
    pub hosts: Vec<HostEntry>,
    /// ConfigMaps the pod references, by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets the pod references, by name.
    pub secrets: BTreeMap<String, Secret>,
    /// Claim name → host directory (kept by the glue; outlives the pod).
    pub claims: BTreeMap<String, PathBuf>,
    /// Service-account tokens for projected `serviceAccountToken` sources.
    pub tokens: ServiceAccountTokens,
    /// `KUBERNETES_SERVICE_HOST`/`_PORT` and other service variables.
    pub service_env: Vec<(String, String)>,
}

impl std::fmt::Debug for PodLaunch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLaunch")
            .field(
                "pod",
                &(&self.pod.metadata.namespace, &self.pod.metadata.name),
            )
            .field("pod_ip", &self.pod_ip)
            .field("host_ip", &self.host_ip)
            .field("hosts", &self.hosts)
            .field("config_maps", &self.config_maps.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("claims", &self.claims)
            .field("tokens", &self.tokens)
            .field(
                "service_env",
                &self.service_env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Normal or Warning, as Kubernetes Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Normal.
    Normal,
    /// Warning.
    Warning,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEventKind {
    /// The pod's status changed: read [`Runtime::status`] and write it to the API.
    StatusChanged,
    /// A kubelet-style Event for `kubectl describe` (`Started`, `Killing`, `Unhealthy`,
    /// `BackOff`, `Failed`…).
    Event {
        /// Normal or Warning.
        type_: EventType,
        /// Reason, as the kubelet words it.
        reason: String,
        /// Message (never contains a secret: no env values, no file contents).
        message: String,
    },
    /// The pod is gone from the node (after deletion).
    Deleted,
}

/// A notification about a pod. Delivered on a broadcast channel: a slow receiver may miss
/// some, so treat `StatusChanged` as "re-read the status", not as a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEvent {
    /// The pod.
    pub pod: PodKey,
    /// The container, when the event is about one.
    pub container: Option<String>,
    /// What happened.
    pub kind: RuntimeEventKind,
}

#[derive(Debug, Clone)]
struct Identity {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

#[derive(Debug, Clone)]
struct ResolvedMount {
    volume: String,
    source: PathBuf,
    target: String,
    read_only: bool,
    is_file: bool,
}

#[derive(Debug, Clone)]
enum Handler {
    Exec(Vec<String>),
    HttpGet(ProbeAction),
    Sleep(Duration),
}

#[derive(Debug)]
struct Prepared {
    argv: Vec<OsString>,
    env: Vec<EnvVar>,
    image: ImageRule,
    image_files: Vec<(PathBuf, String)>,
    mounts: Vec<ResolvedMount>,
    identity: Identity,
    working_dir: String,
    read_only_root: bool,
    no_new_privs: bool,
    hostname: String,
    probes: Vec<ProbeSpec>,
    post_start: Option<Handler>,
    pre_stop: Option<Handler>,
}

#[derive(Debug)]
struct Instance {
    process: Arc<Process>,
    /// The container's namespaces, for exec; `None` when its PID 1 exited before they
    /// could be opened (a short-lived process: nothing can exec into it any more).
    namespaces: Option<Namespaces>,
    stopping: AtomicBool,
}

#[derive(Debug)]
struct Namespaces {
    mnt: Arc<OwnedFd>,
    uts: Arc<OwnedFd>,
    pid: Arc<OwnedFd>,
}

#[derive(Debug)]
struct ContainerRuntime {
    state: ContainerState,
    last_state: Option<ContainerState>,
    restart_count: i32,
    instances: u32,
    ready: bool,
    started: bool,
    container_id: Option<String>,
    running: Option<Arc<Instance>>,
    logs: Arc<LogBuffer>,
    previous_logs: Option<Arc<LogBuffer>>,
}

#[derive(Debug)]
struct ContainerRecord {
    name: String,
    image: String,
    prepared: std::result::Result<Arc<Prepared>, (String, String)>,
    runtime: Mutex<ContainerRuntime>,
}

struct PodRecord {
    key: PodKey,
    host_aliases: Vec<k8s_openapi::api::core::v1::HostAlias>,
    fs_group: Option<u32>,
    /// ConfigMap/Secret/projected/downward-API volumes: directory and current files.
    files_volumes: Mutex<BTreeMap<String, (PathBuf, Vec<super::volumes::PlannedFile>)>>,
    uid: String,
    pod_ip: IpAddr,
    host_ip: IpAddr,
    dir: PathBuf,
    restart_policy: RestartPolicy,
    grace: Duration,
    start_time: Timestamp,
    init: Vec<Arc<ContainerRecord>>,
    containers: Vec<Arc<ContainerRecord>>,
    conditions: Mutex<Vec<PodCondition>>,
    stopping: watch::Sender<bool>,
    finished: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl PodRecord {
    fn all_containers(&self) -> impl Iterator<Item = &Arc<ContainerRecord>> {
        self.init.iter().chain(self.containers.iter())
    }

    fn find(&self, name: &str) -> Option<&Arc<ContainerRecord>> {
        self.all_containers().find(|c| c.name == name)
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }
}

fn snapshot(c: &ContainerRecord) -> ContainerStatus {
    let rt = match c.runtime.lock() {
        Ok(rt) => rt,
        Err(poisoned) => poisoned.into_inner(),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        container_id: rt.container_id.clone(),
        state: rt.state.clone(),
        last_state: rt.last_state.clone(),
        ready: rt.ready,
        started: rt.started,
        restart_count: rt.restart_count,
        pid: rt.running.as_ref().map(|i| i.process.pid()),
    }
}

struct Inner {
    config: RuntimeConfig,
    spawner: Spawner,
    pods: Mutex<BTreeMap<PodKey, Arc<PodRecord>>>,
    events: broadcast::Sender<RuntimeEvent>,
    audit: Mutex<std::collections::VecDeque<ExecRecord>>,
    processes: Mutex<Vec<Weak<Process>>>,
    shut_down: AtomicBool,
    next_id: AtomicU64,
}

/// How many exec records the audit keeps (oldest dropped first).
pub const AUDIT_LIMIT: usize = 100_000;

/// Runs pods as real processes. Dropping it kills every process it started.
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn validate_state_dir(dir: &Path) -> Result<PathBuf> {
    let bad = |message: &str| RuntimeError::Config {
        field: "state_dir".to_string(),
        message: format!("{}: {message}", dir.display()),
    };
    if !dir.is_absolute() {
        return Err(bad("must be an absolute path"));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| RuntimeError::io(format!("creating {}", dir.display()), e))?;
    let canonical = dir
        .canonicalize()
        .map_err(|e| RuntimeError::io(format!("resolving {}", dir.display()), e))?;
    let text = canonical.to_string_lossy();
    if text.contains([',', ':', '\\']) || text.chars().any(char::is_whitespace) {
        return Err(bad(
            "must not contain ',', ':', '\\' or whitespace (it is used in overlay mount options); \
             choose another directory",
        ));
    }
    Ok(canonical)
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

impl Runtime {
    /// Starts a runtime. Fails with [`RuntimeError::NotPrivileged`] (naming the missing
    /// privilege) unless running as root, and with [`RuntimeError::Config`] for a bad state
    /// directory.
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        check_privileges()?;
        let state_dir = validate_state_dir(&config.state_dir)?;
        let spawner =
            Spawner::start().map_err(|e| RuntimeError::io("starting the spawner thread", e))?;
        let (events, _) = broadcast::channel(4096);
        Ok(Runtime {
            inner: Arc::new(Inner {
                config: RuntimeConfig {
                    state_dir,
                    ..config
                },
                spawner,
                pods: Mutex::new(BTreeMap::new()),
                events,
                audit: Mutex::new(std::collections::VecDeque::new()),
                processes: Mutex::new(Vec::new()),
                shut_down: AtomicBool::new(false),
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// Receives events about every pod (see [`RuntimeEvent`]).
    pub fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.events.subscribe()
    }

    /// Accepts a pod: writes its hosts file and volumes, prepares each container (an unknown
    /// image or an unresolvable env var leaves that container waiting with the reason, as
    /// the kubelet does), and starts it in the background. Errors are spec problems the
    /// pod cannot run with (a missing ConfigMap for a volume, an unsupported volume type,
    /// an invalid mount or probe); nothing is left running when it fails.
    pub async fn start_pod(&self, launch: PodLaunch) -> Result<()> {
        let inner = &self.inner;
        if inner.shut_down.load(Ordering::SeqCst) {
            return Err(RuntimeError::ShutDown);
        }
        let meta = &launch.pod.metadata;
        let key = PodKey::new(
            meta.namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            meta.name.clone().unwrap_or_default(),
        );
        let uid = meta.uid.clone().unwrap_or_default();
        let invalid = |field: &str, message: String| RuntimeError::InvalidPod {
            pod: key.to_string(),
            field: field.to_string(),
            message,
        };
        if !is_dns_label(&key.name) {
            return Err(invalid(
                "metadata.name",
                format!("{:?} is not a valid pod name", key.name),
            ));
        }
        if !is_dns_label(&key.namespace) {
            return Err(invalid(
                "metadata.namespace",
                format!("{:?} is not a valid namespace", key.namespace),
            ));
        }
        if uid.is_empty() || !uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid(
                "metadata.uid",
                "the glue must set a uid (letters, digits, '-')".to_string(),
            ));
        }
        if lock(&inner.pods).contains_key(&key) {
            return Err(RuntimeError::AlreadyPresent {
                pod: key.to_string(),
            });
        }
        let dir = inner
            .config
            .state_dir
            .join("pods")
            .join(format!("{}_{}_{}", key.namespace, key.name, uid));
        match prepare_pod(inner, &key, &uid, &dir, &launch).await {
            Ok(record) => {
                let record = Arc::new(record);
                {
                    let mut pods = lock(&inner.pods);
                    if pods.contains_key(&key) {
                        let _ = std::fs::remove_dir_all(&dir);
                        return Err(RuntimeError::AlreadyPresent {
                            pod: key.to_string(),
                        });
                    }
                    pods.insert(key.clone(), record.clone());
                }
                refresh_conditions(inner, &record);
                let task = tokio::spawn(supervise_pod(inner.clone(), record.clone()));
                *lock(&record.task) = Some(task);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// The pod's current status, or `None` when it is not on this node.
    pub fn status(&self, key: &PodKey) -> Option<PodStatus> {
        let pod = lock(&self.inner.pods).get(key).cloned()?;
        Some(pod_status(&self.inner, &pod))
    }

    /// Every pod on this node.
    pub fn pods(&self) -> Vec<PodKey> {
        lock(&self.inner.pods).keys().cloned().collect()
    }

    /// Stops a pod as the kubelet does on deletion: preStop hooks, SIGTERM, SIGKILL after
    /// the grace period (the spec's `terminationGracePeriodSeconds`, 30 s by default,
    /// unless `grace` overrides it), then removes its files (claim directories stay).
    /// Returns the final status.
    pub async fn delete_pod(&self, key: &PodKey, grace: Option<Duration>) -> Result<PodStatus> {
        let inner = &self.inner;
        let pod = lock(&inner.pods)
            .get(key)
            .cloned()
            .ok_or_else(|| RuntimeError::PodNotFound {
                pod: key.to_string(),
            })?;
        pod.stopping.send_replace(true);
        emit_status(inner, &pod);
        let grace = grace.unwrap_or(pod.grace);
        let stops = pod.all_containers().map(|c| {
            stop_container(
                inner.clone(),
                pod.clone(),
                c.clone(),
                grace,
                "Stopping container",
            )
        });
        futures::future::join_all(stops).await;
        let mut finished = pod.finished.subscribe();
        while !*finished.borrow_and_update() {
            if finished.changed().await.is_err() {
                break;
            }
        }
        let status = pod_status(inner, &pod);
        lock(&inner.pods).remove(key);
        if let Err(e) = std::fs::remove_dir_all(&pod.dir) {
            tracing::warn!(pod = %key, error = %e, "removing the pod's directory failed");
        }
        let _ = inner.events.send(RuntimeEvent {
            pod: key.clone(),
            container: None,
            kind: RuntimeEventKind::Deleted,
        });
        Ok(status)
    }

    /// Rewrites a running pod's `/etc/hosts` (e.g. when Endpoints change). The file is
    /// rewritten in place, so the pod's bind mount sees the new content at once; like
    /// the kubelet's, the localhost lines and the spec's `hostAliases` stay.
    pub fn update_hosts(&self, key: &PodKey, hosts: Vec<HostEntry>) -> Result<()> {
        let pod =
            lock(&self.inner.pods)
                .get(key)
                .cloned()
                .ok_or_else(|| RuntimeError::PodNotFound {
                    pod: key.to_string(),
                })?;
        let content =
            render_hosts_file(&hosts, &pod.host_aliases).map_err(|(field, message)| {
                RuntimeError::InvalidPod {
                    pod: key.to_string(),
                    field,
                    message,
                }
            })?;
        // Same inode: truncate and write, never replace the file.
        let path = pod.dir.join("hosts");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| RuntimeError::io(format!("pod {key}: opening its hosts file"), e))?;
        std::io::Write::write_all(&mut file, content.as_bytes())
            .map_err(|e| RuntimeError::io(format!("pod {key}: writing its hosts file"), e))
    }

    /// Brings a running pod's ConfigMap, Secret, projected (service-account token) and
    /// downward-API volumes up to date with `launch` (the glue calls it when a referenced
    /// object, a token or the pod's labels change), as the kubelet does: each changed
    /// volume is swapped atomically; `subPath` mounts keep their old content. Returns the
    /// names of the volumes that changed. A referenced object that disappeared is an error
    /// and leaves every volume as it was.
    pub fn refresh_volumes(&self, key: &PodKey, launch: &PodLaunch) -> Result<Vec<String>> {
        let inner = &self.inner;
        let pod = lock(&inner.pods)
            .get(key)
            .cloned()
            .ok_or_else(|| RuntimeError::PodNotFound {
                pod: key.to_string(),
            })?;
        let plans = plan_volumes(&VolumeInputs {
            pod: &launch.pod,
            pod_ip: pod.pod_ip,
            host_ip: pod.host_ip,
            config_maps: &launch.config_maps,
            secrets: &launch.secrets,
            claims: &launch.claims,
            tokens: &launch.tokens,
        })?;
        let mut current = lock(&pod.files_volumes);
        let mut updated = Vec::new();
        for plan in plans {
            let VolumeContent::Files(files) = plan.content else {
                continue;
            };
            let Some((dir, old)) = current.get_mut(&plan.name) else {
                continue;
            };
            if *old == files {
                continue;
            }
            let stamp = format!(
                "{}{}",
                data_dir_stamp(inner.now()),
                inner.next_id.fetch_add(1, Ordering::SeqCst)
            );
            super::volumes::update_files_volume(dir, &files, &stamp, pod.fs_group).map_err(
                |e| RuntimeError::Volume {
                    pod: key.to_string(),
                    volume: plan.name.clone(),
                    message: format!("updating files: {e}"),
                },
            )?;
            *old = files;
            updated.push(plan.name);
        }
        Ok(updated)
    }

    /// Sends `signal` to a container's main process (fault injection: `SIGKILL` simulates a
    /// crash; the container then restarts according to `restartPolicy`).
    pub fn signal_container(&self, key: &PodKey, container: &str, signal: i32) -> Result<()> {
        let (_, c) = self.container(key, container)?;
        let instance =
            lock(&c.runtime)
                .running
                .clone()
                .ok_or_else(|| RuntimeError::ContainerNotRunning {
                    pod: key.to_string(),
                    container: container.to_string(),
                })?;
        instance
            .process
            .signal(signal)
            .map_err(|e| RuntimeError::io(format!("signalling {container} in {key}"), e))
    }

    fn container(
        &self,
        key: &PodKey,
        name: &str,
    ) -> Result<(Arc<PodRecord>, Arc<ContainerRecord>)> {
        let pod =
            lock(&self.inner.pods)
                .get(key)
                .cloned()
                .ok_or_else(|| RuntimeError::PodNotFound {
                    pod: key.to_string(),
                })?;
        let c = pod
            .find(name)
            .cloned()
            .ok_or_else(|| RuntimeError::ContainerNotFound {
                pod: key.to_string(),
                container: name.to_string(),
            })?;
        Ok((pod, c))
    }

    /// Runs `command` inside a running container (its namespaces, uid/gid, environment and
    /// working directory) and returns the session; the argv is recorded in the audit.
    pub async fn exec(
        &self,
        key: &PodKey,
        container: &str,
        command: Vec<String>,
        options: ExecOptions,
    ) -> Result<ExecSession> {
        let (pod, c) = self.container(key, container)?;
        if options.tty {
            return Err(RuntimeError::Unsupported {
                pod: key.to_string(),
                field: "tty".to_string(),
                what: "exec with a terminal (tty=true)".to_string(),
            });
        }
        exec_in(
            &self.inner,
            &pod,
            &c,
            command,
            options.stdin,
            ExecOrigin::Exec,
        )
        .await
    }

    /// Every command run inside any container so far (exec, probes, hooks), oldest first;
    /// the last [`AUDIT_LIMIT`] are kept.
    pub fn exec_audit(&self) -> Vec<ExecRecord> {
        lock(&self.inner.audit).iter().cloned().collect()
    }

    /// A reader over a container's log (`previous` reads the instance before the last
    /// restart).
    pub fn logs(&self, key: &PodKey, container: &str, options: LogOptions) -> Result<LogReader> {
        let (_, c) = self.container(key, container)?;
        let rt = lock(&c.runtime);
        let buffer = if options.previous {
            rt.previous_logs
                .clone()
                .ok_or_else(|| RuntimeError::NoPreviousInstance {
                    pod: key.to_string(),
                    container: container.to_string(),
                })?
        } else {
            if rt.instances == 0
                && let ContainerState::Waiting { reason, .. } = &rt.state
            {
                return Err(RuntimeError::ContainerWaiting {
                    pod: key.to_string(),
                    container: container.to_string(),
                    reason: reason.clone(),
                });
            }
            rt.logs.clone()
        };
        Ok(LogReader::new(buffer, options))
    }

    /// Stops every pod gracefully (preStop, SIGTERM, then SIGKILL after `grace`).
    pub async fn shutdown(&self, grace: Duration) {
        for key in self.pods() {
            let _ = self.delete_pod(&key, Some(grace)).await;
        }
        self.inner.shut_down_now();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.inner.shut_down_now();
    }
}

impl Inner {
    fn now(&self) -> Timestamp {
        (self.config.clock)()
    }

    fn track(&self, process: &Arc<Process>) {
        let mut list = lock(&self.processes);
        list.retain(|w| w.upgrade().is_some_and(|p| p.exit_status().is_none()));
        list.push(Arc::downgrade(process));
    }

    fn audit(&self, pod: &PodKey, container: &str, argv: &[String], origin: ExecOrigin) {
        let mut audit = lock(&self.audit);
        // Bounded for long sandbox sessions (probes run every few seconds); far more than
        // any test produces.
        if audit.len() >= AUDIT_LIMIT {
            audit.pop_front();
        }
        audit.push_back(ExecRecord {
            at: self.now(),
            pod: pod.clone(),
            container: container.to_string(),
            argv: argv.to_vec(),
            origin,
        });
    }

    fn event(
        &self,
        pod: &PodKey,
        container: Option<&str>,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        let _ = self.events.send(RuntimeEvent {
            pod: pod.clone(),
            container: container.map(str::to_string),
            kind: RuntimeEventKind::Event {
                type_,
                reason: reason.to_string(),
                message,
            },
        });
    }

    /// Kills every process synchronously (for Drop): nothing outlives the runtime.
    fn shut_down_now(&self) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        for pod in lock(&self.pods).values() {
            pod.stopping.send_replace(true);
            if let Some(t) = lock(&pod.task).take() {
                t.abort();
            }
        }
        let processes: Vec<Arc<Process>> = lock(&self.processes)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for p in &processes {
            let _ = p.signal(libc::SIGKILL);
        }
        for p in &processes {
            p.kill_and_reap_blocking(Duration::from_secs(2));
        }
        self.spawner.stop();
        let pods: Vec<Arc<PodRecord>> = std::mem::take(&mut *lock(&self.pods))
            .into_values()
            .collect();
        for pod in pods {
            let _ = std::fs::remove_dir_all(&pod.dir);
        }
    }
}

fn emit_status(inner: &Inner, pod: &PodRecord) {
    let _ = inner.events.send(RuntimeEvent {
        pod: pod.key.clone(),
        container: None,
        kind: RuntimeEventKind::StatusChanged,
    });
}

fn pod_status(inner: &Inner, pod: &PodRecord) -> PodStatus {
    let init: Vec<ContainerStatus> = pod.init.iter().map(|c| snapshot(c)).collect();
    let containers: Vec<ContainerStatus> = pod.containers.iter().map(|c| snapshot(c)).collect();
    let _ = inner;
    PodStatus {
        key: pod.key.clone(),
        uid: pod.uid.clone(),
        phase: pod_phase(pod.restart_policy, &init, &containers),
        pod_ip: pod.pod_ip,
        host_ip: pod.host_ip,
        start_time: pod.start_time,
        init_containers: init,
        containers,
        conditions: lock(&pod.conditions).clone(),
        terminating: pod.is_stopping(),
    }
}

/// Recomputes the pod's conditions (recording transition times) and tells the glue.
fn refresh_conditions(inner: &Inner, pod: &PodRecord) {
    let init: Vec<ContainerStatus> = pod.init.iter().map(|c| snapshot(c)).collect();
    let containers: Vec<ContainerStatus> = pod.containers.iter().map(|c| snapshot(c)).collect();
    let now = inner.now();
    {
        let mut stored = lock(&pod.conditions);
        for (type_, status, reason, message) in pod_conditions(true, &init, &containers) {
            match stored.iter_mut().find(|c| c.type_ == type_) {
                Some(c) => {
                    if c.status != status {
                        c.last_transition = now;
                    }
                    c.status = status;
                    c.reason = reason;
                    c.message = message;
                }
                None => stored.push(PodCondition {
                    type_: type_.to_string(),
                    status,
                    last_transition: now,
                    reason,
                    message,
                }),
            }
        }
    }
    emit_status(inner, pod);
}

fn update(
    inner: &Inner,
    pod: &PodRecord,
    c: &ContainerRecord,
    f: impl FnOnce(&mut ContainerRuntime),
) {
    {
        let mut rt = lock(&c.runtime);
        f(&mut rt);
    }
    refresh_conditions(inner, pod);
}

fn nonneg_u32(v: Option<i64>, field: &str, pod: &PodKey) -> Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| RuntimeError::InvalidPod {
                pod: pod.to_string(),
                field: field.to_string(),
                message: format!("{v} is not a valid id (0 to 4294967295)"),
            }),
    }
}

fn parse_handler(
    h: &LifecycleHandler,
    container: &Container,
    field: &str,
    pod: &PodKey,
) -> Result<Handler> {
    let invalid = |f: String, m: String| RuntimeError::InvalidPod {
        pod: pod.to_string(),
        field: f,
        message: m,
    };
    if let Some(e) = &h.exec {
        let command = e.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Err(invalid(
                format!("{field}.exec.command"),
                "must not be empty".to_string(),
            ));
        }
        return Ok(Handler::Exec(command));
    }
    if let Some(s) = &h.sleep {
        if s.seconds < 0 {
            return Err(invalid(
                format!("{field}.sleep.seconds"),
                "must not be negative".to_string(),
            ));
        }
        return Ok(Handler::Sleep(Duration::from_secs(s.seconds as u64)));
    }
    if let Some(http) = &h.http_get {
        let probe = k8s_openapi::api::core::v1::Probe {
            http_get: Some(http.clone()),
            ..Default::default()
        };
        let spec = parse_probe(ProbeKind::Readiness, &probe, container).map_err(|(f, m)| {
            invalid(
                format!("{field}.{}", f.trim_start_matches("readinessProbe.")),
                m,
            )
        })?;
        return Ok(Handler::HttpGet(spec.action));
    }
    Err(invalid(
        field.to_string(),
        "only exec, httpGet and sleep handlers run in the simulated kubelet".to_string(),
    ))
}

/// Resolves one container: image, env, argv, mounts, identity, probes, hooks.
#[allow(clippy::too_many_arguments)]
fn prepare_container(
    config: &RuntimeConfig,
    key: &PodKey,
    launch: &PodLaunch,
    container: &Container,
    field: &str,
    volume_dirs: &BTreeMap<String, (PathBuf, super::volumes::VolumePlan)>,
    pod_dir: &Path,
    hostname: &str,
) -> Result<std::result::Result<Prepared, (String, String)>> {
    let spec = launch.pod.spec.as_ref();
    let psc = spec.and_then(|s| s.security_context.as_ref());
    let csc = container.security_context.as_ref();
    // Spec errors (what API validation would reject) fail the pod; configuration the
    // kubelet cannot resolve leaves the container waiting with the reason.
    let mut probes = Vec::new();
    for (kind, probe) in [
        (ProbeKind::Startup, container.startup_probe.as_ref()),
        (ProbeKind::Liveness, container.liveness_probe.as_ref()),
        (ProbeKind::Readiness, container.readiness_probe.as_ref()),
    ] {
        if let Some(p) = probe {
            let spec =
                parse_probe(kind, p, container).map_err(|(f, m)| RuntimeError::InvalidPod {
                    pod: key.to_string(),
                    field: format!("{field}.{f}"),
                    message: m,
                })?;
            probes.push(spec);
        }
    }
    let lifecycle = container.lifecycle.as_ref();
    let post_start = lifecycle
        .and_then(|l| l.post_start.as_ref())
        .map(|h| parse_handler(h, container, &format!("{field}.lifecycle.postStart"), key))
        .transpose()?;
    let pre_stop = lifecycle
        .and_then(|l| l.pre_stop.as_ref())
        .map(|h| parse_handler(h, container, &format!("{field}.lifecycle.preStop"), key))
        .transpose()?;
    let working_dir = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string());
    if !working_dir.starts_with('/') {
        return Err(RuntimeError::InvalidPod {
            pod: key.to_string(),
            field: format!("{field}.workingDir"),
            message: format!("{working_dir:?} must be an absolute path"),
        });
    }
    let run_as_user = nonneg_u32(
        csc.and_then(|s| s.run_as_user)
            .or(psc.and_then(|s| s.run_as_user)),
        &format!("{field}.securityContext.runAsUser"),
        key,
    )?;
    let run_as_group = nonneg_u32(
        csc.and_then(|s| s.run_as_group)
            .or(psc.and_then(|s| s.run_as_group)),
        &format!("{field}.securityContext.runAsGroup"),
        key,
    )?;
    let fs_group = nonneg_u32(
        psc.and_then(|s| s.fs_group),
        "spec.securityContext.fsGroup",
        key,
    )?;
    let mut groups: Vec<u32> = Vec::new();
    if let Some(g) = fs_group {
        groups.push(g);
    }
    for (i, g) in psc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if let Some(g) = nonneg_u32(
            Some(*g),
            &format!("spec.securityContext.supplementalGroups[{i}]"),
            key,
        )? && !groups.contains(&g)
        {
            groups.push(g);
        }
    }

    let image = match config
        .images
        .resolve(&container.image.clone().unwrap_or_default())
    {
        Ok(rule) => rule.clone(),
        Err(message) => return Ok(Err(("ErrImagePull".to_string(), message))),
    };
    let uid = run_as_user.unwrap_or(image.user);
    let run_as_non_root = csc
        .and_then(|s| s.run_as_non_root)
        .or(psc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    if run_as_non_root && uid == 0 {
        return Ok(Err((
            "CreateContainerConfigError".to_string(),
            "container has runAsNonRoot and image will run as root; set securityContext.runAsUser"
                .to_string(),
        )));
    }
    let ctx = EnvContext {
        pod: &launch.pod,
        pod_ip: launch.pod_ip,
        host_ip: launch.host_ip,
        config_maps: &launch.config_maps,
        secrets: &launch.secrets,
        service_env: &launch.service_env,
    };
    let resolved = match env::resolve_container_env(&ctx, container) {
        Ok(r) => r,
        Err((f, m)) => {
            return Ok(Err((
                "CreateContainerConfigError".to_string(),
                format!("{field}.{f}: {m}"),
            )));
        }
    };
    let env = env::process_env(&image, hostname, &resolved.vars);
    let argv = match env::container_argv(container, &image, &env) {
        Ok(a) => a,
        Err((f, m)) => {
            return Ok(Err((
                "CreateContainerConfigError".to_string(),
                format!("{field}.{f}: {m}"),
            )));
        }
    };
    let plans: Vec<super::volumes::VolumePlan> =
        volume_dirs.values().map(|(_, p)| p.clone()).collect();
    let requests = plan_container_mounts(&key.to_string(), container, field, &plans, &env)?;
    let mut mounts = Vec::with_capacity(requests.len());
    for r in &requests {
        let Some((dir, _)) = volume_dirs.get(&r.volume) else {
            continue;
        };
        match resolve_mount_source(dir, r) {
            Ok((source, is_file)) => mounts.push(ResolvedMount {
                volume: r.volume.clone(),
                source,
                target: r.target.clone(),
                read_only: r.read_only,
                is_file,
            }),
            Err(m) => {
                return Ok(Err((
                    "CreateContainerConfigError".to_string(),
                    format!(
                        "failed to prepare subPath for volumeMount {:?}: {m}",
                        r.volume
                    ),
                )));
            }
        }
    }
    // The image's extra files (e.g. docker-entrypoint.sh) live in the pod directory.
    let mut image_files = Vec::new();
    for (i, f) in image.files.iter().enumerate() {
        let host = pod_dir
            .join("image-files")
            .join(format!("{}-{i}", container.name));
        if let Some(parent) = host.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| RuntimeError::io("creating image files", e))?;
        }
        std::fs::write(&host, &f.contents)
            .map_err(|e| RuntimeError::io("writing image files", e))?;
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(f.mode))
            .map_err(|e| RuntimeError::io("writing image files", e))?;
        image_files.push((host, f.path.clone()));
    }
    Ok(Ok(Prepared {
        argv,
        env,
        image,
        image_files,
        mounts,
        identity: Identity {
            uid,
            gid: run_as_group.unwrap_or(0),
            groups,
        },
        working_dir,
        read_only_root: csc.and_then(|s| s.read_only_root_filesystem) == Some(true),
        no_new_privs: csc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        hostname: hostname.to_string(),
        probes,
        post_start,
        pre_stop,
    }))
}

async fn prepare_pod(
    inner: &Arc<Inner>,
    key: &PodKey,
    uid: &str,
    dir: &Path,
    launch: &PodLaunch,
) -> Result<PodRecord> {
    let spec = launch
        .pod
        .spec
        .as_ref()
        .ok_or_else(|| RuntimeError::InvalidPod {
            pod: key.to_string(),
            field: "spec".to_string(),
            message: "the pod has no spec".to_string(),
        })?;
    let unsupported = |field: &str, what: &str| RuntimeError::Unsupported {
        pod: key.to_string(),
        field: field.to_string(),
        what: what.to_string(),
    };
    if spec.share_process_namespace == Some(true) {
        return Err(unsupported(
            "spec.shareProcessNamespace",
            "a shared process namespace",
        ));
    }
    if spec.host_network == Some(true) || spec.host_pid == Some(true) || spec.host_ipc == Some(true)
    {
        return Err(unsupported(
            "spec.hostNetwork",
            "host namespaces (hostNetwork, hostPID, hostIPC)",
        ));
    }
    if spec.containers.is_empty() {
        return Err(RuntimeError::InvalidPod {
            pod: key.to_string(),
            field: "spec.containers".to_string(),
            message: "a pod needs at least one container".to_string(),
        });
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        if c.restart_policy.is_some() {
            return Err(unsupported(
                &format!("spec.initContainers[{i}].restartPolicy"),
                "sidecar init containers",
            ));
        }
    }
    let restart_policy = RestartPolicy::from_spec(spec.restart_policy.as_deref()).map_err(|m| {
        RuntimeError::InvalidPod {
            pod: key.to_string(),
            field: "spec.restartPolicy".to_string(),
            message: m,
        }
    })?;
    let grace = match spec.termination_grace_period_seconds {
        None => Duration::from_secs(30),
        Some(s) if s >= 0 => Duration::from_secs(s as u64),
        Some(s) => {
            return Err(RuntimeError::InvalidPod {
                pod: key.to_string(),
                field: "spec.terminationGracePeriodSeconds".to_string(),
                message: format!("{s} must not be negative"),
            });
        }
    };
    let plans = plan_volumes(&VolumeInputs {
        pod: &launch.pod,
        pod_ip: launch.pod_ip,
        host_ip: launch.host_ip,
        config_maps: &launch.config_maps,
        secrets: &launch.secrets,
        claims: &launch.claims,
        tokens: &launch.tokens,
    })?;
    let hosts = render_hosts_file(
        &launch.hosts,
        spec.host_aliases.as_deref().unwrap_or_default(),
    )
    .map_err(|(field, message)| RuntimeError::InvalidPod {
        pod: key.to_string(),
        field,
        message,
    })?;
    let hostname = spec
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| key.name.chars().take(63).collect());

    // From here on the pod's directory exists; the caller removes it on failure.
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| RuntimeError::io(format!("pod {key}: {what}"), e)
    };
    std::fs::create_dir_all(dir.join("volumes")).map_err(io("creating the pod directory"))?;
    std::fs::create_dir_all(dir.join("containers")).map_err(io("creating the pod directory"))?;
    std::fs::write(dir.join("hosts"), hosts).map_err(io("writing the hosts file"))?;
    std::fs::write(dir.join("hostname"), format!("{hostname}\n"))
        .map_err(io("writing the hostname file"))?;
    for f in ["hosts", "hostname"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644))
            .map_err(io("writing the hosts file"))?;
    }
    let psc = spec.security_context.as_ref();
    let fs_group = nonneg_u32(
        psc.and_then(|s| s.fs_group),
        "spec.securityContext.fsGroup",
        key,
    )?;
    let policy = match psc.and_then(|s| s.fs_group_change_policy.as_deref()) {
        Some("OnRootMismatch") => FsGroupPolicy::OnRootMismatch,
        _ => FsGroupPolicy::Always,
    };
    let stamp = data_dir_stamp(inner.now());
    let mut volume_dirs: BTreeMap<String, (PathBuf, super::volumes::VolumePlan)> = BTreeMap::new();
    for plan in &plans {
        let (host_dir, read_only) = match &plan.content {
            VolumeContent::Files(files) => {
                let d = dir.join("volumes").join(&plan.name);
                std::fs::create_dir(&d).map_err(io("creating a volume"))?;
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
                    .map_err(io("creating a volume"))?;
                write_files_volume(&d, files, &stamp).map_err(|e| RuntimeError::Volume {
                    pod: key.to_string(),
                    volume: plan.name.clone(),
                    message: format!("writing files: {e}"),
                })?;
                (d, true)
            }
            VolumeContent::EmptyDir => {
                let d = dir.join("volumes").join(&plan.name);
                std::fs::create_dir(&d).map_err(io("creating an emptyDir"))?;
                // emptyDir is world-writable, as the kubelet creates it.
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777))
                    .map_err(io("creating an emptyDir"))?;
                (d, false)
            }
            VolumeContent::Claim {
                host_dir,
                read_only,
                ..
            } => {
                if !host_dir.is_absolute() {
                    return Err(RuntimeError::Volume {
                        pod: key.to_string(),
                        volume: plan.name.clone(),
                        message: format!("claim directory {} must be absolute", host_dir.display()),
                    });
                }
                if !host_dir.exists() {
                    std::fs::create_dir_all(host_dir).map_err(io("creating a claim directory"))?;
                }
                (host_dir.clone(), *read_only)
            }
        };
        if let Some(gid) = fs_group {
            apply_fs_group(&host_dir, gid, read_only, policy).map_err(|e| {
                RuntimeError::Volume {
                    pod: key.to_string(),
                    volume: plan.name.clone(),
                    message: format!("applying fsGroup {gid}: {e}"),
                }
            })?;
        }
        volume_dirs.insert(plan.name.clone(), (host_dir, plan.clone()));
    }

    let mut records = Vec::new();
    for (list, prefix) in [
        (
            spec.init_containers.as_deref().unwrap_or_default(),
            "spec.initContainers",
        ),
        (spec.containers.as_slice(), "spec.containers"),
    ] {
        let mut out = Vec::new();
        for (i, container) in list.iter().enumerate() {
            let field = format!("{prefix}[{i}]");
            let prepared = prepare_container(
                &inner.config,
                key,
                launch,
                container,
                &field,
                &volume_dirs,
                dir,
                &hostname,
            )?;
            let waiting_reason = if prefix == "spec.containers"
                && !list.is_empty()
                && spec.init_containers.as_ref().is_some_and(|v| !v.is_empty())
            {
                "PodInitializing"
            } else {
                "ContainerCreating"
            };
            let state = match &prepared {
                Ok(_) => ContainerState::Waiting {
                    reason: waiting_reason.to_string(),
                    message: None,
                },
                Err((reason, message)) => ContainerState::Waiting {
                    reason: reason.clone(),
                    message: Some(message.clone()),
                },
            };
            if let Err((reason, message)) = &prepared {
                inner.event(
                    key,
                    Some(&container.name),
                    EventType::Warning,
                    if reason == "ErrImagePull" {
                        "Failed"
                    } else {
                        reason
                    },
                    message.clone(),
                );
            }
            out.push(Arc::new(ContainerRecord {
                name: container.name.clone(),
                image: container.image.clone().unwrap_or_default(),
                prepared: prepared.map(Arc::new),
                runtime: Mutex::new(ContainerRuntime {
                    state,
                    last_state: None,
                    restart_count: 0,
                    instances: 0,
                    ready: false,
                    started: false,
                    container_id: None,
                    running: None,
                    logs: LogBuffer::new(inner.config.log_limit_bytes),
                    previous_logs: None,
                }),
            }));
        }
        records.push(out);
    }
    let containers = records.pop().unwrap_or_default();
    let init = records.pop().unwrap_or_default();
    let (stopping, _) = watch::channel(false);
    let (finished, _) = watch::channel(false);
    let files_volumes = volume_dirs
        .iter()
        .filter_map(|(name, (dir, plan))| match &plan.content {
            VolumeContent::Files(files) => Some((name.clone(), (dir.clone(), files.clone()))),
            _ => None,
        })
        .collect();
    Ok(PodRecord {
        key: key.clone(),
        host_aliases: spec.host_aliases.clone().unwrap_or_default(),
        fs_group,
        files_volumes: Mutex::new(files_volumes),
        uid: uid.to_string(),
        pod_ip: launch.pod_ip,
        host_ip: launch.host_ip,
        dir: dir.to_path_buf(),
        restart_policy,
        grace,
        start_time: inner.now(),
        init,
        containers,
        conditions: Mutex::new(Vec::new()),
        stopping,
        finished,
        task: Mutex::new(None),
    })
}

/// Waits until the pod is being stopped.
async fn stopped(pod: &PodRecord) {
    let mut rx = pod.stopping.subscribe();
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn supervise_pod(inner: Arc<Inner>, pod: Arc<PodRecord>) {
    'init: for c in &pod.init {
        let mut crashes = 0u32;
        loop {
            if pod.is_stopping() {
                break 'init;
            }
            let started = std::time::Instant::now();
            let Some(exit) = run_instance(&inner, &pod, c).await else {
                stopped(&pod).await;
                break 'init;
            };
            if exit.success() {
                break;
            }
            if pod.is_stopping() || pod.restart_policy == RestartPolicy::Never {
                stopped(&pod).await;
                break 'init;
            }
            if !back_off(&inner, &pod, c, &mut crashes, started.elapsed()).await {
                break 'init;
            }
        }
    }
    let init_ok = pod.init.iter().all(|c| {
        matches!(
            lock(&c.runtime).state,
            ContainerState::Terminated { exit_code: 0, .. }
        )
    });
    if init_ok && !pod.is_stopping() {
        let all = pod
            .containers
            .iter()
            .map(|c| supervise_container(inner.clone(), pod.clone(), c.clone()));
        futures::future::join_all(all).await;
    }
    pod.finished.send_replace(true);
    emit_status(&inner, &pod);
}

async fn supervise_container(inner: Arc<Inner>, pod: Arc<PodRecord>, c: Arc<ContainerRecord>) {
    let mut crashes = 0u32;
    loop {
        if pod.is_stopping() {
            return;
        }
        let started = std::time::Instant::now();
        let Some(exit) = run_instance(&inner, &pod, &c).await else {
            stopped(&pod).await;
            return;
        };
        if pod.is_stopping() || !should_restart(pod.restart_policy, &exit) {
            return;
        }
        if !back_off(&inner, &pod, &c, &mut crashes, started.elapsed()).await {
            return;
        }
    }
}

/// Waits out the crash-loop back-off; false when the pod is being stopped meanwhile.
async fn back_off(
    inner: &Arc<Inner>,
    pod: &Arc<PodRecord>,
    c: &ContainerRecord,
    crashes: &mut u32,
    ran_for: Duration,
) -> bool {
    let (delay, count) = restart_delay(&inner.config.backoff, *crashes + 1, ran_for);
    *crashes = count;
    if delay.is_zero() {
        return true;
    }
    let message = format!(
        "back-off {}s restarting failed container={} pod={}_{}({})",
        delay.as_secs(),
        c.name,
        pod.key.name,
        pod.key.namespace,
        pod.uid
    );
    update(inner, pod, c, |rt| {
        rt.last_state = Some(rt.state.clone());
        rt.state = ContainerState::Waiting {
            reason: "CrashLoopBackOff".to_string(),
            message: Some(message.clone()),
        };
    });
    inner.event(
        &pod.key,
        Some(&c.name),
        EventType::Warning,
        "BackOff",
        format!(
            "Back-off restarting failed container {} in pod {}",
            c.name, pod.key
        ),
    );
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = stopped(pod) => false,
    }
}

fn mkdir_chain(path: &str, steps: &mut Vec<Step>, include_last: bool) -> std::io::Result<()> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let n = if include_last {
        parts.len()
    } else {
        parts.len().saturating_sub(1)
    };
    let mut current = String::new();
    for p in &parts[..n] {
        current.push('/');
        current.push_str(p);
        steps.push(Step::Mkdir {
            path: cstr(&current)?,
            mode: 0o755,
        });
    }
    Ok(())
}

fn old_root(host: &Path) -> std::io::Result<std::ffi::CString> {
    let mut p = OsString::from("/.oldroot");
    p.push(host.as_os_str());
    cstr(p)
}

/// Devices every container gets (bound from the host's /dev).
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// The child's steps for a new container instance; see the module docs of `sandbox` and
/// the runtime's docs for the layout.
fn container_steps(
    prepared: &Prepared,
    pod_dir: &Path,
    instance_dir: &Path,
    loopback_socket: Option<i32>,
) -> std::io::Result<Vec<Step>> {
    let scratch = instance_dir.join("scratch");
    let rootfs = instance_dir.join("rootfs");
    let mut s = vec![
        Step::Unshare {
            flags: libc::CLONE_NEWNS | libc::CLONE_NEWUTS,
        },
        Step::MakeRootPrivate,
        Step::MountTmpfs {
            target: cstr(&scratch)?,
            data: cstr("mode=755")?,
            flags: libc::MS_NOSUID | libc::MS_NODEV,
        },
        Step::Mkdir {
            path: cstr(scratch.join("upper"))?,
            mode: 0o755,
        },
        Step::Mkdir {
            path: cstr(scratch.join("work"))?,
            mode: 0o755,
        },
        Step::MountOverlay {
            target: cstr(&rootfs)?,
            data: cstr(format!(
                "lowerdir=/,upperdir={},workdir={}",
                scratch.join("upper").display(),
                scratch.join("work").display()
            ))?,
        },
        Step::Mkdir {
            path: cstr(rootfs.join(".oldroot"))?,
            mode: 0o700,
        },
        Step::PivotRoot {
            new_root: cstr(&rootfs)?,
            put_old: cstr(rootfs.join(".oldroot"))?,
        },
        Step::MountProc {
            target: cstr("/proc")?,
        },
        Step::MountTmpfs {
            target: cstr("/dev")?,
            data: cstr("mode=755")?,
            flags: libc::MS_NOSUID,
        },
    ];
    for d in DEVICES {
        let target = format!("/dev/{d}");
        s.push(Step::CreateFile {
            path: cstr(&target)?,
        });
        s.push(Step::Bind {
            source: cstr(format!("/.oldroot/dev/{d}"))?,
            target: cstr(&target)?,
            what: format!("binding device {target}"),
        });
    }
    s.push(Step::Mkdir {
        path: cstr("/dev/shm")?,
        mode: 0o1777,
    });
    s.push(Step::MountTmpfs {
        target: cstr("/dev/shm")?,
        data: cstr("mode=1777")?,
        flags: libc::MS_NOSUID | libc::MS_NODEV,
    });
    for (target, link) in [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ] {
        s.push(Step::Symlink {
            target: cstr(target)?,
            link: cstr(link)?,
        });
    }
    s.push(Step::Bind {
        source: cstr("/.oldroot/sys")?,
        target: cstr("/sys")?,
        what: "binding /sys".to_string(),
    });
    s.push(Step::RemountReadOnly {
        target: cstr("/sys")?,
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    });
    // Fresh writable places: nothing of the host's /tmp, /run, /root or /home shows.
    for (dir, mode) in [
        ("/tmp", "1777"),
        ("/var/tmp", "1777"),
        ("/run", "755"),
        ("/home", "755"),
        ("/root", "700"),
    ] {
        s.push(Step::Mkdir {
            path: cstr(dir)?,
            mode: 0o755,
        });
        s.push(Step::MountTmpfs {
            target: cstr(dir)?,
            data: cstr(format!("mode={mode}"))?,
            flags: libc::MS_NOSUID | libc::MS_NODEV,
        });
    }
    s.push(Step::Mkdir {
        path: cstr("/run/lock")?,
        mode: 0o1777,
    });
    for (file, target) in [("hosts", "/etc/hosts"), ("hostname", "/etc/hostname")] {
        s.push(Step::CreateFile {
            path: cstr(target)?,
        });
        s.push(Step::Bind {
            source: old_root(&pod_dir.join(file))?,
            target: cstr(target)?,
            what: format!("binding the pod's {target}"),
        });
    }
    mkdir_chain(IMAGE_BIN_DIR, &mut s, true)?;
    let binary = prepared.image.binary.canonicalize()?;
    for name in &prepared.image.names {
        let target = format!("{IMAGE_BIN_DIR}/{name}");
        s.push(Step::CreateFile {
            path: cstr(&target)?,
        });
        s.push(Step::Bind {
            source: old_root(&binary)?,
            target: cstr(&target)?,
            what: format!("binding the image binary at {target}"),
        });
        s.push(Step::RemountReadOnly {
            target: cstr(&target)?,
            flags: 0,
        });
    }
    if let Some(shell) = &prepared.image.shell {
        // Through /bin → usr/bin on merged-/usr hosts this replaces the sh symlink in the
        // overlay only; the host's shell stays as it is.
        let shell = shell.canonicalize()?;
        s.push(Step::ReplaceWithFile {
            path: cstr("/bin/sh")?,
        });
        s.push(Step::Bind {
            source: old_root(&shell)?,
            target: cstr("/bin/sh")?,
            what: "binding the image's /bin/sh".to_string(),
        });
        s.push(Step::RemountReadOnly {
            target: cstr("/bin/sh")?,
            flags: 0,
        });
    }
    for (host, target) in &prepared.image_files {
        mkdir_chain(target, &mut s, false)?;
        s.push(Step::CreateFile {
            path: cstr(target)?,
        });
        s.push(Step::Bind {
            source: old_root(host)?,
            target: cstr(target)?,
            what: format!("binding the image file {target}"),
        });
        s.push(Step::RemountReadOnly {
            target: cstr(target)?,
            flags: 0,
        });
    }
    for m in &prepared.mounts {
        if m.is_file {
            mkdir_chain(&m.target, &mut s, false)?;
            s.push(Step::CreateFile {
                path: cstr(&m.target)?,
            });
        } else {
            mkdir_chain(&m.target, &mut s, true)?;
        }
        s.push(Step::Bind {
            source: old_root(&m.source)?,
            target: cstr(&m.target)?,
            what: format!("bind-mounting volume {:?} at {}", m.volume, m.target),
        });
        if m.read_only {
            s.push(Step::RemountReadOnly {
                target: cstr(&m.target)?,
                flags: 0,
            });
        }
    }
    let id = &prepared.identity;
    if let Some(home) = prepared
        .env
        .iter()
        .find(|v| v.name == "HOME")
        .and_then(|v| std::str::from_utf8(v.value.expose_secret()).ok())
        .filter(|h| h.starts_with("/home/") || h.starts_with("/root/"))
    {
        // The image would carry its user's home; create it for the pod's user.
        mkdir_chain(home, &mut s, true)?;
        s.push(Step::Chown {
            path: cstr(home)?,
            uid: id.uid,
            gid: id.gid,
        });
    }
    mkdir_chain(&prepared.working_dir, &mut s, true)?;
    s.push(Step::Detach {
        target: cstr("/.oldroot")?,
    });
    s.push(Step::Rmdir {
        path: cstr("/.oldroot")?,
    });
    if prepared.read_only_root {
        s.push(Step::RemountReadOnly {
            target: cstr("/")?,
            flags: 0,
        });
    }
    s.push(Step::SetHostname {
        name: cstr(&prepared.hostname)?,
    });
    s.push(Step::Chdir {
        path: cstr(&prepared.working_dir)?,
    });
    identity_steps(prepared, loopback_socket, &mut s);
    Ok(s)
}

fn identity_steps(prepared: &Prepared, loopback_socket: Option<i32>, s: &mut Vec<Step>) {
    if let Some(socket) = loopback_socket {
        s.push(Step::LoopbackFilter {
            program: loopback::filter_program(),
            socket,
        });
    }
    if prepared.no_new_privs {
        s.push(Step::NoNewPrivs);
    }
    let id = &prepared.identity;
    s.push(Step::SetIdentity {
        uid: id.uid,
        gid: id.gid,
        groups: id.groups.clone(),
    });
    s.push(Step::DieWithSpawner);
}

fn pod_ipv4(inner: &Inner, pod: &PodRecord) -> Option<std::net::Ipv4Addr> {
    match pod.pod_ip {
        IpAddr::V4(ip) if inner.config.translate_loopback => Some(ip),
        _ => None,
    }
}

/// Runs one instance of a container to its end. `None` when it cannot start at all
/// (waiting on configuration); otherwise its exit status.
async fn run_instance(
    inner: &Arc<Inner>,
    pod: &Arc<PodRecord>,
    c: &Arc<ContainerRecord>,
) -> Option<ExitStatus> {
    let prepared = match &c.prepared {
        Ok(p) => p.clone(),
        Err(_) => return None,
    };
    let id_number = inner.next_id.fetch_add(1, Ordering::SeqCst);
    let container_id = format!("simrt://{id_number:016x}");
    let instance_dir = pod
        .dir
        .join("containers")
        .join(format!("{}-{id_number}", c.name));
    let now = inner.now();
    let fail_start = |message: String| {
        update(inner, pod, c, |rt| {
            if rt.instances > 0 {
                rt.restart_count += 1;
                if matches!(rt.state, ContainerState::Terminated { .. }) {
                    rt.last_state = Some(rt.state.clone());
                }
            }
            rt.instances += 1;
            rt.container_id = Some(container_id.clone());
            rt.state = ContainerState::Terminated {
                exit_code: 128,
                signal: None,
                reason: "StartError".to_string(),
                message: Some(message.clone()),
                started_at: None,
                finished_at: now,
            };
        });
        inner.event(
            &pod.key,
            Some(&c.name),
            EventType::Warning,
            "Failed",
            format!("Error: {message}"),
        );
        Some(ExitStatus {
            code: Some(128),
            signal: None,
        })
    };
    for d in ["scratch", "rootfs"] {
        if let Err(e) = std::fs::create_dir_all(instance_dir.join(d)) {
            return fail_start(format!("creating the container's mount points: {e}"));
        }
    }
    let loopback = match pod_ipv4(inner, pod) {
        Some(_) => match loopback::socket_pair() {
            Ok(pair) => Some(pair),
            Err(e) => return fail_start(format!("creating the loopback translation socket: {e}")),
        },
        None => None,
    };
    let steps = match container_steps(
        &prepared,
        &pod.dir,
        &instance_dir,
        loopback
            .as_ref()
            .map(|(_, child)| std::os::fd::AsRawFd::as_raw_fd(child)),
    ) {
        Ok(s) => s,
        Err(e) => return fail_start(format!("preparing the sandbox: {e}")),
    };
    let keep_open = loopback.as_ref().map(|_| Vec::new()).unwrap_or_default();
    let plan = ProcessPlan {
        argv: prepared.argv.clone(),
        env: prepared.env.clone(),
        stdin: false,
        pid_namespace: PidNamespace::New,
        steps,
        keep_open,
    };
    inner.event(
        &pod.key,
        Some(&c.name),
        EventType::Normal,
        "Pulled",
        format!("Container image {:?} already present on machine", c.image),
    );
    let spawned = inner.spawner.spawn(plan).await;
    let (parent_socket, child_socket) = match loopback {
        Some((p, c)) => (Some(p), Some(c)),
        None => (None, None),
    };
    drop(child_socket);
    if spawned.is_ok() {
        inner.event(
            &pod.key,
            Some(&c.name),
            EventType::Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
    }
    let spawned = match spawned {
        Ok(s) => s,
        Err(f) => {
            let _ = std::fs::remove_dir_all(&instance_dir);
            let program = prepared
                .argv
                .first()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default();
            let message = match f.step {
                Some(step) => format!("sandbox set-up failed at {step}: {}", f.source),
                None if f.source.kind() == std::io::ErrorKind::NotFound => {
                    format!("exec: {program:?}: executable file not found in $PATH")
                }
                None => format!("exec: {program:?}: {}", f.source),
            };
            return fail_start(message);
        }
    };
    let process = spawned.process.clone();
    inner.track(&process);
    if let (Some(socket), Some(ip)) = (parent_socket, pod_ipv4(inner, pod)) {
        match loopback::receive_listener(&socket).and_then(|l| loopback::serve(l, ip)) {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(pod = %pod.key, container = %c.name, error = %e, "loopback translation unavailable")
            }
        }
    }
    // A process that already exited (an init container that only echoes) has no
    // namespaces left to open; that is not a start failure, its exit is reported below.
    let namespaces = (|| -> std::io::Result<Namespaces> {
        Ok(Namespaces {
            mnt: Arc::new(super::sandbox::open_namespace(process.pid(), "mnt")?),
            uts: Arc::new(super::sandbox::open_namespace(process.pid(), "uts")?),
            pid: Arc::new(super::sandbox::open_namespace(process.pid(), "pid")?),
        })
    })()
    .ok();
    let started_at = inner.now();
    let instance = Arc::new(Instance {
        process: process.clone(),
        namespaces,
        stopping: AtomicBool::new(false),
    });
    let logs = LogBuffer::new(inner.config.log_limit_bytes);
    let has_startup = prepared.probes.iter().any(|p| p.kind == ProbeKind::Startup);
    let has_readiness = prepared
        .probes
        .iter()
        .any(|p| p.kind == ProbeKind::Readiness);
    update(inner, pod, c, |rt| {
        if rt.instances > 0 {
            rt.restart_count += 1;
            rt.previous_logs = Some(rt.logs.clone());
            if matches!(rt.state, ContainerState::Terminated { .. }) {
                rt.last_state = Some(rt.state.clone());
            }
        }
        rt.instances += 1;
        rt.logs = logs.clone();
        rt.container_id = Some(container_id.clone());
        rt.state = ContainerState::Running { started_at };
        rt.started = !has_startup;
        rt.ready = !has_startup && !has_readiness;
        rt.running = Some(instance.clone());
    });
    inner.event(
        &pod.key,
        Some(&c.name),
        EventType::Normal,
        "Started",
        format!("Started container {}", c.name),
    );

    let capture_tasks = {
        let mut tasks = Vec::new();
        for (fd, stream) in [
            (spawned.stdout, LogStream::Stdout),
            (spawned.stderr, LogStream::Stderr),
        ] {
            match pipe::Receiver::from_owned_fd(fd) {
                Ok(r) => tasks.push(tokio::spawn(capture(
                    r,
                    stream,
                    logs.clone(),
                    inner.config.clock.clone(),
                ))),
                Err(e) => {
                    tracing::warn!(pod = %pod.key, container = %c.name, error = %e, "capturing output failed")
                }
            }
        }
        tasks
    };
    let probe_task = (!prepared.probes.is_empty()).then(|| {
        tokio::spawn(run_probes(
            inner.clone(),
            pod.clone(),
            c.clone(),
            instance.clone(),
            prepared.clone(),
        ))
    });
    if let Some(h) = &prepared.post_start {
        let outcome = run_handler(
            inner,
            pod,
            c,
            &instance,
            h,
            ExecOrigin::PostStartHook,
            pod.grace,
        )
        .await;
        if !outcome.success {
            inner.event(
                &pod.key,
                Some(&c.name),
                EventType::Warning,
                "FailedPostStartHook",
                format!("PostStartHook failed: {}", outcome.message),
            );
            let _ = stop_instance(inner, pod, c, &instance, pod.grace, false).await;
        }
    }
    let exit = process.wait().await;
    if let Some(t) = probe_task {
        t.abort();
    }
    for t in capture_tasks {
        // Output still in the pipe after exit is read to the end (descendants holding the
        // pipe were killed with the PID namespace).
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    logs.close();
    let finished_at = inner.now();
    let reason = if exit.success() { "Completed" } else { "Error" };
    update(inner, pod, c, |rt| {
        rt.state = ContainerState::Terminated {
            exit_code: exit.kubernetes_exit_code(),
            signal: exit.signal,
            reason: reason.to_string(),
            message: None,
            started_at: Some(started_at),
            finished_at,
        };
        rt.ready = false;
        rt.running = None;
    });
    if !instance.stopping.load(Ordering::SeqCst) && !exit.success() {
        inner.event(
            &pod.key,
            Some(&c.name),
            EventType::Warning,
            "Died",
            format!("Container {} exited: {exit}", c.name),
        );
    }
    let _ = std::fs::remove_dir_all(&instance_dir);
    Some(exit)
}

/// Stops the container's running instance: preStop hook, SIGTERM, SIGKILL after `grace`.
async fn stop_container(
    inner: Arc<Inner>,
    pod: Arc<PodRecord>,
    c: Arc<ContainerRecord>,
    grace: Duration,
    why: &str,
) {
    let instance = lock(&c.runtime).running.clone();
    if let Some(instance) = instance {
        inner.event(
            &pod.key,
            Some(&c.name),
            EventType::Normal,
            "Killing",
            format!("{why} {}", c.name),
        );
        let _ = stop_instance(&inner, &pod, &c, &instance, grace, true).await;
    }
}

async fn stop_instance(
    inner: &Arc<Inner>,
    pod: &Arc<PodRecord>,
    c: &Arc<ContainerRecord>,
    instance: &Arc<Instance>,
    grace: Duration,
    run_pre_stop: bool,
) -> ExitStatus {
    if instance.stopping.swap(true, Ordering::SeqCst) {
        return instance.process.wait().await;
    }
    let deadline = tokio::time::Instant::now() + grace;
    if run_pre_stop
        && let Ok(prepared) = &c.prepared
        && let Some(h) = &prepared.pre_stop
        && !grace.is_zero()
    {
        let hook = run_handler(inner, pod, c, instance, h, ExecOrigin::PreStopHook, grace);
        if let Ok(outcome) = tokio::time::timeout_at(deadline, hook).await
            && !outcome.success
        {
            inner.event(
                &pod.key,
                Some(&c.name),
                EventType::Warning,
                "FailedPreStopHook",
                format!("PreStopHook failed: {}", outcome.message),
            );
        }
    }
    let _ = instance.process.signal(libc::SIGTERM);
    let exited = tokio::time::timeout_at(deadline, instance.process.wait()).await;
    match exited {
        Ok(status) => status,
        Err(_) => {
            let _ = instance.process.signal(libc::SIGKILL);
            instance.process.wait().await
        }
    }
}

async fn run_handler(
    inner: &Arc<Inner>,
    pod: &Arc<PodRecord>,
    c: &Arc<ContainerRecord>,
    instance: &Arc<Instance>,
    handler: &Handler,
    origin: ExecOrigin,
    timeout: Duration,
) -> ProbeOutcome {
    match handler {
        Handler::Sleep(d) => {
            tokio::time::sleep(*d).await;
            ProbeOutcome {
                success: true,
                message: String::new(),
            }
        }
        Handler::Exec(command) => {
            exec_probe(inner, pod, c, instance, command, origin, timeout).await
        }
        Handler::HttpGet(action) => network_probe(pod, action, timeout).await,
    }
}

async fn exec_probe(
    inner: &Arc<Inner>,
    pod: &Arc<PodRecord>,
    c: &Arc<ContainerRecord>,
    instance: &Arc<Instance>,
    command: &[String],
    origin: ExecOrigin,
    timeout: Duration,
) -> ProbeOutcome {
    let session =
        match exec_with_instance(inner, pod, c, instance, command.to_vec(), false, origin).await {
            Ok(s) => s,
            Err(e) => {
                return ProbeOutcome {
                    success: false,
                    message: e.to_string(),
                };
            }
        };
    let process = session.process.clone();
    match tokio::time::timeout(timeout, session.output(b"")).await {
        Ok(Ok(ExecOutput {
            status,
            stdout,
            stderr,
        })) => {
            let mut text = String::from_utf8_lossy(&stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&stderr));
            text.truncate(10 * 1024);
            ProbeOutcome {
                success: status.success(),
                message: if status.success() {
                    text
                } else {
                    format!("{text} ({status})")
                },
            }
        }
        Ok(Err(e)) => ProbeOutcome {
            success: false,
            message: e.to_string(),
        },
        Err(_) => {
            let _ = process.signal(libc::SIGKILL);
            ProbeOutcome {
                success: false,
                message: format!("command timed out after {}s", timeout.as_secs()),
            }
        }
    }
}

async fn network_probe(pod: &PodRecord, action: &ProbeAction, timeout: Duration) -> ProbeOutcome {
    let target = |host: &Option<String>, port: u16| -> std::result::Result<SocketAddr, String> {
        let ip = match host {
            None => pod.pod_ip,
            Some(h) => h
                .parse::<IpAddr>()
                .map_err(|_| format!("probe host {h:?} is not an IP address; the simulated kubelet does not resolve names"))?,
        };
        Ok(SocketAddr::new(ip, port))
    };
    match action {
        ProbeAction::HttpGet {
            scheme,
            host,
            port,
            path,
            headers,
        } => match target(host, *port) {
            Ok(addr) => http_probe(addr, *scheme, path, headers, timeout).await,
            Err(m) => ProbeOutcome {
                success: false,
                message: m,
            },
        },
        ProbeAction::TcpSocket { host, port } => match target(host, *port) {
            Ok(addr) => tcp_probe(addr, timeout).await,
            Err(m) => ProbeOutcome {
                success: false,
                message: m,
            },
        },
        ProbeAction::Exec { .. } => ProbeOutcome {
            success: false,
            message: "exec handlers run through the exec path".to_string(),
        },
    }
}

async fn probe_once(
    inner: &Arc<Inner>,
    pod: &Arc<PodRecord>,
    c: &Arc<ContainerRecord>,
    instance: &Arc<Instance>,
    spec: &ProbeSpec,
) -> ProbeOutcome {
    match &spec.action {
        ProbeAction::Exec { command } => {
            exec_probe(
                inner,
                pod,
                c,
                instance,
                command,
                ExecOrigin::Probe(spec.kind),
                spec.timeout,
            )
            .await
        }
        other => network_probe(pod, other, spec.timeout).await,
    }
}

/// Runs the instance's probes on their periods until the instance exits.
async fn run_probes(
    inner: Arc<Inner>,
    pod: Arc<PodRecord>,
    c: Arc<ContainerRecord>,
    instance: Arc<Instance>,
    prepared: Arc<Prepared>,
) {
    let find = |k: ProbeKind| prepared.probes.iter().find(|p| p.kind == k).cloned();
    let alive =
        |i: &Instance| i.process.exit_status().is_none() && !i.stopping.load(Ordering::SeqCst);
    if let Some(spec) = find(ProbeKind::Startup) {
        let mut tracker = ProbeTracker::new(&spec);
        tokio::time::sleep(spec.initial_delay).await;
        let mut failures = 0u32;
        loop {
            if !alive(&instance) {
                return;
            }
            let outcome = probe_once(&inner, &pod, &c, &instance, &spec).await;
            if outcome.success {
                tracker.record(true);
                break;
            }
            failures += 1;
            inner.event(
                &pod.key,
                Some(&c.name),
                EventType::Warning,
                "Unhealthy",
                format!("Startup probe failed: {}", outcome.message),
            );
            if failures >= spec.failure_threshold {
                inner.event(
                    &pod.key,
                    Some(&c.name),
                    EventType::Normal,
                    "Killing",
                    format!(
                        "Container {} failed startup probe, will be restarted",
                        c.name
                    ),
                );
                let grace = spec.termination_grace.unwrap_or(pod.grace);
                let _ = stop_instance(&inner, &pod, &c, &instance, grace, true).await;
                return;
            }
            tokio::time::sleep(spec.period).await;
        }
        let readiness = find(ProbeKind::Readiness).is_some();
        update(&inner, &pod, &c, |rt| {
            rt.started = true;
            if !readiness {
                rt.ready = true;
            }
        });
    }
    let mut loops = Vec::new();
    for kind in [ProbeKind::Readiness, ProbeKind::Liveness] {
        let Some(spec) = find(kind) else { continue };
        let (inner, pod, c, instance) = (inner.clone(), pod.clone(), c.clone(), instance.clone());
        loops.push(async move {
            let mut tracker = ProbeTracker::new(&spec);
            tokio::time::sleep(spec.initial_delay).await;
            loop {
                if !alive(&instance) {
                    return;
                }
                let outcome = probe_once(&inner, &pod, &c, &instance, &spec).await;
                if !alive(&instance) {
                    return;
                }
                if !outcome.success {
                    let what = if kind == ProbeKind::Readiness {
                        "Readiness"
                    } else {
                        "Liveness"
                    };
                    inner.event(
                        &pod.key,
                        Some(&c.name),
                        EventType::Warning,
                        "Unhealthy",
                        format!("{what} probe failed: {}", outcome.message.trim()),
                    );
                }
                if let Some(result) = tracker.record(outcome.success) {
                    match kind {
                        ProbeKind::Readiness => update(&inner, &pod, &c, |rt| {
                            rt.ready = result && rt.running.is_some()
                        }),
                        _ if !result => {
                            inner.event(
                                &pod.key,
                                Some(&c.name),
                                EventType::Normal,
                                "Killing",
                                format!(
                                    "Container {} failed liveness probe, will be restarted",
                                    c.name
                                ),
                            );
                            let grace = spec.termination_grace.unwrap_or(pod.grace);
                            let _ = stop_instance(&inner, &pod, &c, &instance, grace, true).await;
                            return;
                        }
                        _ => {}
                    }
                }
                tokio::time::sleep(spec.period).await;
            }
        });
    }
    futures::future::join_all(loops).await;
}

async fn exec_in(
    inner: &Arc<Inner>,
    pod: &Arc<PodRecord>,
    c: &Arc<ContainerRecord>,
    command: Vec<String>,
    stdin: bool,
    origin: ExecOrigin,
) -> Result<ExecSession> {
    let instance =
        lock(&c.runtime)
            .running
            .clone()
            .ok_or_else(|| RuntimeError::ContainerNotRunning {
                pod: pod.key.to_string(),
                container: c.name.clone(),
            })?;
    exec_with_instance(inner, pod, c, &instance, command, stdin, origin).await
}

async fn exec_with_instance(
    inner: &Arc<Inner>,
    pod: &Arc<PodRecord>,
    c: &Arc<ContainerRecord>,
    instance: &Arc<Instance>,
    command: Vec<String>,
    stdin: bool,
    origin: ExecOrigin,
) -> Result<ExecSession> {
    let not_running = || RuntimeError::ContainerNotRunning {
        pod: pod.key.to_string(),
        container: c.name.clone(),
    };
    if command.is_empty() {
        return Err(RuntimeError::InvalidPod {
            pod: pod.key.to_string(),
            field: "command".to_string(),
            message: "exec needs a command".to_string(),
        });
    }
    inner.audit(&pod.key, &c.name, &command, origin);
    let prepared = c.prepared.as_ref().map_err(|_| not_running())?.clone();
    if instance.process.exit_status().is_some() {
        return Err(not_running());
    }
    let Some(ns) = &instance.namespaces else {
        return Err(not_running());
    };
    let loopback = match pod_ipv4(inner, pod) {
        Some(_) => Some(
            loopback::socket_pair()
                .map_err(|e| RuntimeError::io("creating the loopback socket", e))?,
        ),
        None => None,
    };
    let mut steps = vec![
        Step::SetNs {
            fd: std::os::fd::AsRawFd::as_raw_fd(&*ns.mnt),
            nstype: libc::CLONE_NEWNS,
            what: "mount",
        },
        Step::SetNs {
            fd: std::os::fd::AsRawFd::as_raw_fd(&*ns.uts),
            nstype: libc::CLONE_NEWUTS,
            what: "UTS",
        },
        Step::Chdir {
            path: cstr(&prepared.working_dir)
                .map_err(|e| RuntimeError::io("building the exec", e))?,
        },
    ];
    identity_steps(
        &prepared,
        loopback
            .as_ref()
            .map(|(_, child)| std::os::fd::AsRawFd::as_raw_fd(child)),
        &mut steps,
    );
    let plan = ProcessPlan {
        argv: command.iter().map(OsString::from).collect(),
        env: prepared.env.clone(),
        stdin,
        pid_namespace: PidNamespace::Join(ns.pid.clone()),
        steps,
        keep_open: vec![ns.mnt.clone(), ns.uts.clone()],
    };
    let result = inner.spawner.spawn(plan).await;
    let (parent_socket, child_socket) = match loopback {
        Some((p, c)) => (Some(p), Some(c)),
        None => (None, None),
    };
    drop(child_socket);
    let spawned = match result {
        Ok(s) => s,
        Err(f) => {
            if instance.process.exit_status().is_some() {
                return Err(not_running());
            }
            return Err(match f.step {
                Some(step) => RuntimeError::Sandbox {
                    pod: pod.key.to_string(),
                    container: c.name.clone(),
                    step,
                    source: f.source,
                },
                None => RuntimeError::Start {
                    pod: pod.key.to_string(),
                    container: c.name.clone(),
                    program: command[0].clone(),
                    source: f.source,
                },
            });
        }
    };
    inner.track(&spawned.process);
    if let (Some(socket), Some(ip)) = (parent_socket, pod_ipv4(inner, pod))
        && let Err(e) = loopback::receive_listener(&socket).and_then(|l| loopback::serve(l, ip))
    {
        tracing::warn!(pod = %pod.key, container = %c.name, error = %e, "loopback translation unavailable for exec");
    }
    let io = |e| RuntimeError::io("attaching to the exec's pipes", e);
    Ok(ExecSession {
        stdin: spawned
            .stdin
            .map(pipe::Sender::from_owned_fd)
            .transpose()
            .map_err(io)?,
        stdout: pipe::Receiver::from_owned_fd(spawned.stdout).map_err(io)?,
        stderr: pipe::Receiver::from_owned_fd(spawned.stderr).map_err(io)?,
        process: spawned.process,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_must_be_usable_in_overlay_options() {
        assert!(validate_state_dir(Path::new("relative")).is_err());
        let base = tempfile::tempdir().unwrap();
        let bad = base.path().join("has,comma");
        let e = validate_state_dir(&bad).unwrap_err().to_string();
        assert!(e.contains("state_dir") && e.contains("overlay"), "{e}");
        assert!(validate_state_dir(&base.path().join("fine")).is_ok());
    }

    #[test]
    fn handles_can_be_shared_across_tasks() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Runtime>();
        send_sync::<PodLaunch>();
        send::<ExecSession>();
        send::<LogReader>();
    }

    #[test]
    fn printing_a_launch_never_shows_secret_data() {
        use k8s_openapi::ByteString;
        let mut secrets = BTreeMap::new();
        secrets.insert(
            "vault-keys".to_string(),
            Secret {
                data: Some([("key".to_string(), ByteString(b"unseal-share-1".to_vec()))].into()),
                ..Default::default()
            },
        );
        let launch = PodLaunch {
            pod: Pod::default(),
            pod_ip: "127.22.0.10".parse().unwrap(),
            host_ip: "127.22.0.1".parse().unwrap(),
            hosts: vec![],
            config_maps: BTreeMap::new(),
            secrets,
            claims: BTreeMap::new(),
            tokens: ServiceAccountTokens {
                default: Some(secrecy::SecretSlice::from(b"jwt-token-value".to_vec())),
                by_audience: BTreeMap::new(),
            },
            service_env: vec![("API_TOKEN".into(), "env-secret".into())],
        };
        let printed = format!("{launch:?}");
        assert!(printed.contains("vault-keys"), "{printed}");
        for secret in ["unseal-share-1", "jwt-token-value", "env-secret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn mkdir_chain_creates_every_parent() {
        let mut steps = Vec::new();
        mkdir_chain("/vault/userconfig/tls", &mut steps, true).unwrap();
        let described: Vec<String> = steps.iter().map(Step::describe).collect();
        assert_eq!(
            described,
            [
                "creating directory /vault",
                "creating directory /vault/userconfig",
                "creating directory /vault/userconfig/tls"
            ]
        );
        let mut steps = Vec::new();
        mkdir_chain("/etc/hosts", &mut steps, false).unwrap();
        assert_eq!(steps.len(), 1);
    }
}
