//! The kubelet glue: watches the pods bound to the simulated node, resolves everything a
//! pod needs from the API (IP, hosts entries, ConfigMaps, Secrets, claim directories,
//! service-account tokens, `KUBERNETES_SERVICE_*`), asks the pod runtime to start and stop
//! it, and writes status and Events back. Also serves `pods/exec` and `pods/log` for the
//! API server through [`PodIo`].
//!
//! Deliberate differences from a real node, because no container network exists here:
//! - pod IPs are loopback addresses, and a pod keeps its IP when it is recreated under the
//!   same name (hosts files are written once, at start, so names must stay valid);
//! - a StatefulSet's pod names are resolvable before those pods exist (their IPs are
//!   reserved from the ordinal range), as `retry_join` with DNS names needs;
//! - without kube-proxy a Service name resolves to one ready endpoint's IP (headless or
//!   not) at pod start; the `kubernetes` Service resolves to the API server itself.

use crate::auth;
use crate::controllers::{manager, name_of, namespace_of, terminating};
use crate::core::{Core, DeleteOptions};
use crate::error::SimError;
use crate::podio::{ExecExit, ExecRequest, ExecStreams, LogRequest, PodIo};
use crate::runtime::{
    EventType, ExecOptions, HostEntry, ImageMap, LogOptions, PodKey, PodLaunch, Runtime,
    RuntimeConfig, RuntimeEvent, RuntimeEventKind, ServiceAccountTokens,
};
use bytes::Bytes;
use futures::stream::BoxStream;
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// What the kubelet needs to run pods.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The OpenBao binary (`hashicorp/vault*` and `openbao/openbao*` images run it).
    pub bao: PathBuf,
    /// The project's image repository and the built `vaultkeeper` binary it maps to.
    pub vaultkeeper: Option<(String, PathBuf)>,
    /// Crash-loop back-off (the kubelet's by default; tests shorten it).
    pub backoff: Option<crate::runtime::Backoff>,
    /// Further images, e.g. a hostile test image; they win over the standard ones for
    /// the same repository.
    pub extra_images: Vec<crate::runtime::ImageRule>,
}

struct State {
    /// Stable pod IPs by namespace/name.
    ips: HashMap<(String, String), Ipv4Addr>,
    /// UIDs handed to the runtime.
    started: HashSet<String>,
    /// UIDs being stopped.
    stopping: HashSet<String>,
    /// UIDs whose start failed (not retried until the pod changes).
    failed: HashMap<String, String>,
}

/// The kubelet of the one simulated node.
pub struct Kubelet {
    core: Arc<Core>,
    runtime: Arc<Runtime>,
    node: String,
    node_ip: Ipv4Addr,
    pod_ip_start: Ipv4Addr,
    pod_ip_count: u32,
    claims_dir: PathBuf,
    state: Mutex<State>,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet").field("node", &self.node).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn rt_err(e: crate::runtime::RuntimeError) -> SimError {
    use crate::runtime::RuntimeError as R;
    match e {
        R::PodNotFound { .. }
        | R::ContainerNotFound { .. }
        | R::ContainerNotRunning { .. }
        | R::NoPreviousInstance { .. } => SimError::BadRequest(e.to_string()),
        R::Unsupported { .. } => SimError::NotImplemented(e.to_string()),
        other => SimError::Internal(other.to_string()),
    }
}

impl Kubelet {
    /// Creates the runtime (fails clearly without root) and the kubelet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        core: Arc<Core>,
        config: &KubeletConfig,
        state_dir: PathBuf,
        node: String,
        node_ip: Ipv4Addr,
        pod_ip_start: Ipv4Addr,
        pod_ip_count: u32,
    ) -> Result<Arc<Kubelet>, SimError> {
        let images = config.extra_images.iter().cloned().fold(
            ImageMap::standard(config.bao.clone(), config.vaultkeeper.clone()),
            ImageMap::with_rule,
        );
        let pods_dir = state_dir.join("pods");
        let claims_dir = state_dir.join("claims");
        for d in [&pods_dir, &claims_dir] {
            std::fs::create_dir_all(d)
                .map_err(|e| SimError::io(format!("creating {}", d.display()), e))?;
        }
        let mut rc = RuntimeConfig::new(pods_dir, images);
        let clock = core.clock.clone();
        rc.clock = Arc::new(move || clock.now());
        if let Some(b) = config.backoff {
            rc.backoff = b;
        }
        let runtime = Runtime::new(rc)
            .map_err(|e| SimError::Setup(format!("starting the pod runtime: {e}")))?;
        Ok(Arc::new(Kubelet {
            core,
            runtime: Arc::new(runtime),
            node,
            node_ip,
            pod_ip_start,
            pod_ip_count,
            claims_dir,
            state: Mutex::new(State {
                ips: HashMap::new(),
                started: HashSet::new(),
                stopping: HashSet::new(),
                failed: HashMap::new(),
            }),
        }))
    }

    /// The pod runtime (exec audit, fault injection).
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Runs the sync loop until shutdown.
    pub fn spawn(
        self: &Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let mut changes = self.core.store().subscribe();
        let mut events = self.runtime.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = tick.tick() => me.sync().await,
                    c = changes.recv() => match c {
                        Ok(c) if c.storage == "/pods" || c.storage == "apps/statefulsets" => me.sync().await,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => me.sync().await,
                        Err(_) => break,
                    },
                    e = events.recv() => match e {
                        Ok(ev) => me.on_runtime_event(ev),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => me.write_all_statuses(),
                        Err(_) => break,
                    },
                }
            }
            me.runtime.shutdown(Duration::from_secs(5)).await;
        })
    }

    fn ip_for(&self, ns: &str, name: &str) -> Option<Ipv4Addr> {
        let mut st = lock(&self.state);
        if let Some(ip) = st.ips.get(&(ns.to_string(), name.to_string())) {
            return Some(*ip);
        }
        let used: HashSet<Ipv4Addr> = st.ips.values().copied().collect();
        let start = u32::from(self.pod_ip_start);
        let ip = (0..self.pod_ip_count)
            .map(|i| Ipv4Addr::from(start + i))
            .find(|ip| !used.contains(ip))?;
        st.ips.insert((ns.to_string(), name.to_string()), ip);
        Some(ip)
    }

    async fn sync(self: &Arc<Self>) {
        let Ok(pod_t) = self.core.core_type("pods") else {
            return;
        };
        // Reserve IPs for StatefulSet ordinals first, so every pod's hosts file names them.
        if let Ok(sts_t) = self.core.type_of("apps", "v1", "statefulsets") {
            for sts in self.core.list_raw(&sts_t, None) {
                let start = sts["spec"]["ordinals"]["start"].as_i64().unwrap_or(0);
                let n = sts["spec"]["replicas"].as_i64().unwrap_or(1);
                for i in start..start + n {
                    self.ip_for(namespace_of(&sts), &format!("{}-{i}", name_of(&sts)));
                }
            }
        }
        let pods: Vec<Arc<Value>> = self
            .core
            .list_raw(&pod_t, None)
            .into_iter()
            .filter(|p| p["spec"]["nodeName"] == self.node.as_str())
            .collect();
        let live: HashSet<String> = pods
            .iter()
            .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
            .collect();
        // Pods force-deleted from the API still running here.
        for key in self.runtime.pods() {
            if let Some(st) = self.runtime.status(&key)
                && !live.contains(&st.uid)
                && lock(&self.state).stopping.insert(st.uid.clone())
            {
                let me = self.clone();
                tokio::spawn(async move {
                    let _ = me
                        .runtime
                        .delete_pod(&key, Some(Duration::from_secs(0)))
                        .await;
                    let mut s = lock(&me.state);
                    s.started.remove(&st.uid);
                    s.stopping.remove(&st.uid);
                });
            }
        }
        for pod in pods {
            let uid = pod["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ns = namespace_of(&pod).to_string();
            let name = name_of(&pod).to_string();
            let started = lock(&self.state).started.contains(&uid);
            if terminating(&pod) {
                if lock(&self.state).stopping.insert(uid.clone()) {
                    let me = self.clone();
                    let grace = pod["metadata"]["deletionGracePeriodSeconds"]
                        .as_i64()
                        .unwrap_or(30)
                        .max(0) as u64;
                    tokio::spawn(async move {
                        if started {
                            let _ = me
                                .runtime
                                .delete_pod(
                                    &PodKey::new(&ns, &name),
                                    Some(Duration::from_secs(grace)),
                                )
                                .await;
                        }
                        let pod_t = me.core.core_type("pods");
                        if let Ok(pod_t) = pod_t {
                            // The kubelet finishes a graceful deletion with grace period 0.
                            if me
                                .core
                                .get_raw(&pod_t, &ns, &name)
                                .is_some_and(|p| p["metadata"]["uid"] == uid.as_str())
                            {
                                let _ = me.core.delete(
                                    &pod_t,
                                    &ns,
                                    &name,
                                    &DeleteOptions {
                                        grace_period: Some(0),
                                        precondition_uid: Some(uid.clone()),
                                        ..Default::default()
                                    },
                                );
                            }
                        }
                        let mut s = lock(&me.state);
                        s.started.remove(&uid);
                        s.stopping.remove(&uid);
                    });
                }
                continue;
            }
            if started || lock(&self.state).failed.contains_key(&uid) {
                continue;
            }
            let key = PodKey::new(&ns, &name);
            // An older pod of the same name (force-deleted) must be gone first.
            if let Some(old) = self.runtime.status(&key)
                && old.uid != uid
            {
                continue;
            }
            match self.launch(&pod).await {
                Ok(Some(launch)) => {
                    lock(&self.state).started.insert(uid.clone());
                    if let Err(e) = self.runtime.start_pod(launch).await {
                        let msg = e.to_string();
                        lock(&self.state).started.remove(&uid);
                        lock(&self.state).failed.insert(uid.clone(), msg.clone());
                        self.record_event(&pod, None, "Warning", "FailedCreatePodSandBox", &msg);
                        self.write_failed_start(&pod, &msg);
                    } else {
                        self.write_status(&key);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let msg = e.to_string();
                    lock(&self.state).failed.insert(uid.clone(), msg.clone());
                    self.record_event(&pod, None, "Warning", "FailedMount", &msg);
                    self.write_failed_start(&pod, &msg);
                }
            }
        }
    }

    /// Everything the runtime needs; `None` when the pod must wait (claim not bound).
    async fn launch(&self, pod: &Value) -> Result<Option<PodLaunch>, SimError> {
        let ns = namespace_of(pod).to_string();
        let name = name_of(pod).to_string();
        let pod_ip = self
            .ip_for(&ns, &name)
            .ok_or_else(|| SimError::Internal("the pod IP range is exhausted".into()))?;
        let (cm_t, sec_t, pvc_t, sa_t) = (
            self.core.core_type("configmaps")?,
            self.core.core_type("secrets")?,
            self.core.core_type("persistentvolumeclaims")?,
            self.core.core_type("serviceaccounts")?,
        );
        let mut claims = BTreeMap::new();
        for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
            if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
                let Some(pvc) = self.core.get_raw(&pvc_t, &ns, claim) else {
                    return Ok(None);
                };
                if pvc["status"]["phase"] != "Bound" {
                    return Ok(None);
                }
                let dir = self.claims_dir.join(&ns).join(format!(
                    "{claim}-{}",
                    pvc["metadata"]["uid"].as_str().unwrap_or_default()
                ));
                std::fs::create_dir_all(&dir)
                    .map_err(|e| SimError::io(format!("creating {}", dir.display()), e))?;
                claims.insert(claim.to_string(), dir);
            }
        }
        let config_maps: BTreeMap<String, k8s_openapi::api::core::v1::ConfigMap> = self
            .core
            .list_raw(&cm_t, Some(&ns))
            .iter()
            .filter_map(|o| {
                Some((
                    name_of(o).to_string(),
                    serde_json::from_value((**o).clone()).ok()?,
                ))
            })
            .collect();
        let secrets: BTreeMap<String, k8s_openapi::api::core::v1::Secret> = self
            .core
            .list_raw(&sec_t, Some(&ns))
            .iter()
            .filter_map(|o| {
                Some((
                    name_of(o).to_string(),
                    serde_json::from_value((**o).clone()).ok()?,
                ))
            })
            .collect();
        let sa_name = pod["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default");
        let mut tokens = ServiceAccountTokens::default();
        if let Some(sa) = self.core.get_raw(&sa_t, &ns, sa_name) {
            let mut audiences: Vec<String> = Vec::new();
            for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
                for s in v["projected"]["sources"].as_array().into_iter().flatten() {
                    if let Some(a) = s["serviceAccountToken"]["audience"].as_str() {
                        audiences.push(a.to_string());
                    }
                }
            }
            let (t, _) = auth::issue_token(&self.core, &ns, &sa, &[], 3607, Some(pod))?;
            tokens.default = Some(SecretSlice::from(t.expose_secret().as_bytes().to_vec()));
            for a in audiences {
                let (t, _) = auth::issue_token(
                    &self.core,
                    &ns,
                    &sa,
                    std::slice::from_ref(&a),
                    3607,
                    Some(pod),
                )?;
                tokens
                    .by_audience
                    .insert(a, SecretSlice::from(t.expose_secret().as_bytes().to_vec()));
            }
        }
        let a = &self.core.addresses;
        let service_env = vec![
            ("KUBERNETES_SERVICE_HOST".to_string(), a.api_ip.to_string()),
            (
                "KUBERNETES_SERVICE_PORT".to_string(),
                a.api_port.to_string(),
            ),
            (
                "KUBERNETES_SERVICE_PORT_HTTPS".to_string(),
                a.api_port.to_string(),
            ),
            (
                "KUBERNETES_PORT".to_string(),
                format!("tcp://{}:{}", a.api_ip, a.api_port),
            ),
            (
                "KUBERNETES_PORT_443_TCP".to_string(),
                format!("tcp://{}:{}", a.api_ip, a.api_port),
            ),
            (
                "KUBERNETES_PORT_443_TCP_PROTO".to_string(),
                "tcp".to_string(),
            ),
            (
                "KUBERNETES_PORT_443_TCP_PORT".to_string(),
                a.api_port.to_string(),
            ),
            (
                "KUBERNETES_PORT_443_TCP_ADDR".to_string(),
                a.api_ip.to_string(),
            ),
        ];
        let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod.clone())
            .map_err(|e| SimError::Internal(format!("decoding pod {ns}/{name}: {e}")))?;
        Ok(Some(PodLaunch {
            pod: typed,
            pod_ip: IpAddr::V4(pod_ip),
            host_ip: IpAddr::V4(self.node_ip),
            hosts: self.hosts_for(&ns),
            config_maps,
            secrets,
            claims,
            tokens,
            service_env,
        }))
    }

    /// Hosts entries every pod of `ns` sees: pods under a governing Service, Services,
    /// and the API server.
    fn hosts_for(&self, ns: &str) -> Vec<HostEntry> {
        let forms = |short: &str, its_ns: &str| -> Vec<String> {
            let mut v = vec![
                format!("{short}.{its_ns}.svc.cluster.local"),
                format!("{short}.{its_ns}.svc"),
                format!("{short}.{its_ns}"),
            ];
            if its_ns == ns {
                v.push(short.to_string());
            }
            v
        };
        let mut out = vec![HostEntry {
            ip: IpAddr::V4(self.core.addresses.api_ip),
            names: forms("kubernetes", "default"),
        }];
        let ips: Vec<((String, String), Ipv4Addr)> = lock(&self.state)
            .ips
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let sts_services: HashMap<(String, String), String> = self
            .core
            .type_of("apps", "v1", "statefulsets")
            .map(|t| {
                self.core
                    .list_raw(&t, None)
                    .iter()
                    .map(|s| {
                        (
                            (namespace_of(s).to_string(), name_of(s).to_string()),
                            s["spec"]["serviceName"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let pod_t = self.core.core_type("pods").ok();
        for ((pns, pname), ip) in &ips {
            // The governing Service: from the pod's subdomain, or the StatefulSet it belongs to.
            let subdomain = pod_t
                .as_ref()
                .and_then(|t| self.core.get_raw(t, pns, pname))
                .and_then(|p| p["spec"]["subdomain"].as_str().map(str::to_string))
                .or_else(|| {
                    let (base, _) = pname.rsplit_once('-')?;
                    sts_services.get(&(pns.clone(), base.to_string())).cloned()
                });
            if let Some(sub) = subdomain.filter(|s| !s.is_empty()) {
                out.push(HostEntry {
                    ip: IpAddr::V4(*ip),
                    names: forms(&format!("{pname}.{sub}"), pns),
                });
            }
        }
        if let (Ok(svc_t), Ok(ep_t)) = (
            self.core.core_type("services"),
            self.core.core_type("endpoints"),
        ) {
            for svc in self.core.list_raw(&svc_t, None) {
                let (sns, sname) = (namespace_of(&svc), name_of(&svc));
                if sns == "default" && sname == "kubernetes" {
                    continue;
                }
                let ep = self.core.get_raw(&ep_t, sns, sname);
                let first = ep.as_ref().and_then(|e| {
                    e["subsets"].as_array()?.iter().find_map(|s| {
                        s["addresses"].as_array()?.first()?["ip"]
                            .as_str()
                            .and_then(|i| i.parse::<Ipv4Addr>().ok())
                    })
                });
                if let Some(ip) = first {
                    out.push(HostEntry {
                        ip: IpAddr::V4(ip),
                        names: forms(sname, sns),
                    });
                }
            }
        }
        out
    }

    fn on_runtime_event(&self, ev: RuntimeEvent) {
        match ev.kind {
            RuntimeEventKind::StatusChanged => self.write_status(&ev.pod),
            RuntimeEventKind::Event {
                type_,
                reason,
                message,
            } => {
                let Ok(pod_t) = self.core.core_type("pods") else {
                    return;
                };
                if let Some(pod) = self.core.get_raw(&pod_t, &ev.pod.namespace, &ev.pod.name) {
                    let ty = match type_ {
                        EventType::Normal => "Normal",
                        EventType::Warning => "Warning",
                    };
                    self.record_event(&pod, ev.container.as_deref(), ty, &reason, &message);
                }
            }
            RuntimeEventKind::Deleted => {}
        }
    }

    fn write_all_statuses(&self) {
        for key in self.runtime.pods() {
            self.write_status(&key);
        }
    }

    fn write_status(&self, key: &PodKey) {
        let Some(st) = self.runtime.status(key) else {
            return;
        };
        let Ok(pod_t) = self.core.core_type("pods") else {
            return;
        };
        let Some(pod) = self.core.get_raw(&pod_t, &key.namespace, &key.name) else {
            return;
        };
        if pod["metadata"]["uid"] != st.uid.as_str() {
            return;
        }
        let Ok(mut status) = serde_json::to_value(st.to_k8s()) else {
            return;
        };
        self.keep_scheduled(&pod, &mut status);
        self.put_status(&pod, status);
    }

    fn keep_scheduled(&self, pod: &Value, status: &mut Value) {
        let scheduled = pod["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled").cloned());
        if let Some(s) = scheduled {
            match status.get_mut("conditions") {
                Some(Value::Array(cs)) => {
                    if !cs.iter().any(|c| c["type"] == "PodScheduled") {
                        cs.push(s);
                    }
                }
                _ => status["conditions"] = json!([s]),
            }
        }
        if status.get("qosClass").is_none()
            && let Some(q) = pod["status"].get("qosClass")
        {
            status["qosClass"] = q.clone();
        }
    }

    fn put_status(&self, pod: &Value, status: Value) {
        let Ok(pod_t) = self.core.core_type("pods") else {
            return;
        };
        let (ns, name) = (namespace_of(pod), name_of(pod));
        if pod["status"] == status {
            return;
        }
        let mut new = pod.clone();
        new["status"] = status;
        let opts = manager("kubelet");
        if let Err(SimError::Conflict { .. }) =
            self.core
                .update(&pod_t, ns, name, new.clone(), Some("status"), &opts)
            && let Some(cur) = self.core.get_raw(&pod_t, ns, name)
            && cur["metadata"]["uid"] == pod["metadata"]["uid"]
        {
            let mut again = (*cur).clone();
            again["status"] = new["status"].clone();
            let _ = self
                .core
                .update(&pod_t, ns, name, again, Some("status"), &opts);
        }
    }

    fn write_failed_start(&self, pod: &Value, message: &str) {
        let mut status = pod["status"].clone();
        status["phase"] = json!("Pending");
        status["message"] = json!(message);
        status["reason"] = json!("FailedStart");
        self.put_status(pod, status);
    }

    fn record_event(
        &self,
        pod: &Value,
        container: Option<&str>,
        ty: &str,
        reason: &str,
        message: &str,
    ) {
        let Ok(ev_t) = self.core.core_type("events") else {
            return;
        };
        let ns = namespace_of(pod);
        let now = self.core.clock.now();
        let mut involved = json!({"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"], "apiVersion": "v1", "resourceVersion": pod["metadata"]["resourceVersion"]});
        if let Some(c) = container {
            involved["fieldPath"] = json!(format!("spec.containers{{{c}}}"));
        }
        let ev = json!({
            "metadata": {"generateName": format!("{}.", name_of(pod))},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": ty,
            "source": {"component": "kubelet", "host": self.node},
            "firstTimestamp": crate::clock::format_time(now), "lastTimestamp": crate::clock::format_time(now), "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": self.node,
        });
        let _ = self.core.create(&ev_t, ns, ev, &manager("kubelet"));
    }
}

#[async_trait::async_trait]
impl PodIo for Kubelet {
    async fn exec(&self, req: ExecRequest) -> Result<ExecStreams, SimError> {
        let key = PodKey::new(&req.namespace, &req.pod);
        let session = self
            .runtime
            .exec(
                &key,
                &req.container,
                req.command,
                ExecOptions {
                    stdin: req.stdin,
                    tty: req.tty,
                },
            )
            .await
            .map_err(rt_err)?;
        let crate::runtime::ExecSession {
            stdin,
            stdout,
            stderr,
            process,
        } = session;
        Ok(ExecStreams {
            stdin: stdin
                .map(|s| Box::pin(s) as std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>),
            stdout: Box::pin(stdout),
            stderr: Box::pin(stderr),
            exit: Box::pin(async move {
                let st = process.wait().await;
                match (st.code, st.signal) {
                    (Some(c), _) => ExecExit::Code(c),
                    (None, Some(s)) => ExecExit::Signal(s),
                    _ => ExecExit::Code(st.kubernetes_exit_code()),
                }
            }),
        })
    }

    async fn logs(&self, req: LogRequest) -> Result<BoxStream<'static, Bytes>, SimError> {
        let key = PodKey::new(&req.namespace, &req.pod);
        let since = req.since_seconds.map(|s| {
            let now = self.core.clock.now();
            now.checked_sub(jiff::SignedDuration::from_secs(s))
                .unwrap_or(now)
        });
        let reader = self
            .runtime
            .logs(
                &key,
                &req.container,
                LogOptions {
                    follow: req.follow,
                    previous: req.previous,
                    timestamps: req.timestamps,
                    tail_lines: req.tail_lines.map(|t| t.max(0) as usize),
                    since,
                    limit_bytes: req.limit_bytes.map(|b| b.max(0) as usize),
                },
            )
            .map_err(rt_err)?;
        Ok(Box::pin(futures::stream::unfold(
            reader,
            |mut r| async move { r.next().await.map(|chunk| (Bytes::from(chunk), r)) },
        )))
    }
}
