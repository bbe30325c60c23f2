//! What the runtime reports about a pod: container states (waiting, running, terminated
//! with exit code and signal), last state, restart counts, readiness, the pod phase and
//! conditions, computed the way the kubelet computes them, and converted to the
//! `k8s_openapi` status types the glue writes to the API server.

use super::restart::RestartPolicy;
use jiff::Timestamp;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::net::IpAddr;

/// A pod on this node: `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl PodKey {
    /// A key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A container's state, as `ContainerState` in the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Not running: being created, crash-looping, or unable to start.
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `ErrImagePull`,
        /// `CreateContainerConfigError`.
        reason: String,
        /// Details a person can act on.
        message: Option<String>,
    },
    /// Its process runs.
    Running {
        /// When it started.
        started_at: Timestamp,
    },
    /// Its process ended.
    Terminated {
        /// Exit code (128 + signal when killed).
        exit_code: i32,
        /// The signal that killed it.
        signal: Option<i32>,
        /// `Completed`, `Error` or `StartError`.
        reason: String,
        /// Details, e.g. why it could not start.
        message: Option<String>,
        /// When it started (absent when it never did).
        started_at: Option<Timestamp>,
        /// When it ended.
        finished_at: Timestamp,
    },
}

impl ContainerState {
    /// True while the process runs.
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }

    fn to_k8s(&self) -> core::ContainerState {
        match self {
            ContainerState::Waiting { reason, message } => core::ContainerState {
                waiting: Some(core::ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            ContainerState::Running { started_at } => core::ContainerState {
                running: Some(core::ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..Default::default()
            },
            ContainerState::Terminated {
                exit_code,
                signal,
                reason,
                message,
                started_at,
                finished_at,
            } => core::ContainerState {
                terminated: Some(core::ContainerStateTerminated {
                    exit_code: *exit_code,
                    signal: *signal,
                    reason: Some(reason.clone()),
                    message: message.clone(),
                    started_at: started_at.map(Time),
                    finished_at: Some(Time(*finished_at)),
                    container_id: None,
                }),
                ..Default::default()
            },
        }
    }
}

/// One container's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Container name.
    pub name: String,
    /// The spec's image.
    pub image: String,
    /// `simrt://…` id of the current (or last) instance.
    pub container_id: Option<String>,
    /// Current state.
    pub state: ContainerState,
    /// The previous instance's final state.
    pub last_state: Option<ContainerState>,
    /// Readiness (probe result, or running-and-started without a readiness probe).
    pub ready: bool,
    /// Startup-probe result (or running without one).
    pub started: bool,
    /// How many times it was restarted.
    pub restart_count: i32,
    /// Host pid of the running process (diagnostics and fault injection).
    pub pid: Option<i32>,
}

impl ContainerStatus {
    /// The API's `ContainerStatus`.
    pub fn to_k8s(&self) -> core::ContainerStatus {
        core::ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image.clone(),
            container_id: self.container_id.clone(),
            state: Some(self.state.to_k8s()),
            last_state: Some(
                self.last_state
                    .as_ref()
                    .map(ContainerState::to_k8s)
                    .unwrap_or_default(),
            ),
            ready: self.ready,
            started: Some(self.started),
            restart_count: self.restart_count,
            ..Default::default()
        }
    }
}

/// The pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    /// Accepted; not all containers started yet.
    Pending,
    /// Bound and at least one container is running or will restart.
    Running,
    /// All containers exited 0 and will not restart.
    Succeeded,
    /// All containers ended, at least one failed, and none will restart.
    Failed,
}

impl PodPhase {
    /// The API string.
    pub fn as_str(&self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
        }
    }
}

/// The phase from container statuses, as the kubelet's `getPhase` computes it.
pub fn pod_phase(
    policy: RestartPolicy,
    init: &[ContainerStatus],
    containers: &[ContainerStatus],
) -> PodPhase {
    let init_done = init
        .iter()
        .all(|c| matches!(c.state, ContainerState::Terminated { exit_code: 0, .. }));
    if !init_done {
        let failed_for_good = init.iter().any(
            |c| matches!(c.state, ContainerState::Terminated { exit_code, .. } if exit_code != 0),
        ) && policy == RestartPolicy::Never;
        return if failed_for_good {
            PodPhase::Failed
        } else {
            PodPhase::Pending
        };
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            ContainerState::Running { .. } => running += 1,
            ContainerState::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            ContainerState::Waiting { .. } => {
                if c.last_state.is_some() {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
        }
    }
    if waiting > 0 {
        PodPhase::Pending
    } else if running > 0 {
        PodPhase::Running
    } else if stopped > 0 {
        match policy {
            RestartPolicy::Always => PodPhase::Running,
            _ if stopped == succeeded => PodPhase::Succeeded,
            RestartPolicy::Never => PodPhase::Failed,
            RestartPolicy::OnFailure => PodPhase::Running,
        }
    } else {
        PodPhase::Pending
    }
}

/// A pod condition the runtime owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCondition {
    /// `PodReadyToStartContainers`, `Initialized`, `ContainersReady` or `Ready`.
    pub type_: String,
    /// Its status.
    pub status: bool,
    /// When the status last changed.
    pub last_transition: Timestamp,
    /// Why it is false (e.g. `ContainersNotReady`).
    pub reason: Option<String>,
    /// Details.
    pub message: Option<String>,
}

/// Everything the runtime knows about one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodStatus {
    /// The pod.
    pub key: PodKey,
    /// Its uid.
    pub uid: String,
    /// Its phase.
    pub phase: PodPhase,
    /// Pod IP.
    pub pod_ip: IpAddr,
    /// Node IP.
    pub host_ip: IpAddr,
    /// When the runtime accepted it.
    pub start_time: Timestamp,
    /// Init containers, in spec order.
    pub init_containers: Vec<ContainerStatus>,
    /// Containers, in spec order.
    pub containers: Vec<ContainerStatus>,
    /// Conditions owned by the kubelet.
    pub conditions: Vec<PodCondition>,
    /// True once deletion started.
    pub terminating: bool,
}

impl PodStatus {
    /// A container's status by name (init containers included).
    pub fn container(&self, name: &str) -> Option<&ContainerStatus> {
        self.containers
            .iter()
            .chain(self.init_containers.iter())
            .find(|c| c.name == name)
    }

    /// True when the `Ready` condition is true.
    pub fn ready(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status)
    }

    /// The API's `PodStatus` (the glue adds `PodScheduled` and readiness gates, and keeps
    /// the `qosClass` the API server computed at creation).
    pub fn to_k8s(&self) -> core::PodStatus {
        let ip = self.pod_ip.to_string();
        let host = self.host_ip.to_string();
        core::PodStatus {
            phase: Some(self.phase.as_str().to_string()),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![core::PodIP { ip }]),
            host_ip: Some(host.clone()),
            host_ips: Some(vec![core::HostIP { ip: host }]),
            start_time: Some(Time(self.start_time)),
            init_container_statuses: (!self.init_containers.is_empty())
                .then(|| self.init_containers.iter().map(|c| c.to_k8s()).collect()),
            container_statuses: Some(self.containers.iter().map(|c| c.to_k8s()).collect()),
            conditions: Some(
                self.conditions
                    .iter()
                    .map(|c| core::PodCondition {
                        type_: c.type_.clone(),
                        status: if c.status { "True" } else { "False" }.to_string(),
                        last_transition_time: Some(Time(c.last_transition)),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }
}

/// The kubelet-owned conditions' (type, status, reason, message) for these statuses.
pub fn pod_conditions(
    sandbox_ready: bool,
    init: &[ContainerStatus],
    containers: &[ContainerStatus],
) -> Vec<(&'static str, bool, Option<String>, Option<String>)> {
    let init_done = init
        .iter()
        .all(|c| matches!(c.state, ContainerState::Terminated { exit_code: 0, .. }));
    let not_ready: Vec<&str> = containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let (ready_reason, ready_message) = if not_ready.is_empty() {
        (None, None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: [{}]",
                not_ready.join(" ")
            )),
        )
    };
    let pending_init: Vec<&str> = init
        .iter()
        .filter(|c| !matches!(c.state, ContainerState::Terminated { exit_code: 0, .. }))
        .map(|c| c.name.as_str())
        .collect();
    vec![
        ("PodReadyToStartContainers", sandbox_ready, None, None),
        (
            "Initialized",
            init_done,
            (!init_done).then(|| "ContainersNotInitialized".to_string()),
            (!init_done).then(|| {
                format!(
                    "containers with incomplete status: [{}]",
                    pending_init.join(" ")
                )
            }),
        ),
        (
            "ContainersReady",
            init_done && not_ready.is_empty(),
            ready_reason.clone(),
            ready_message.clone(),
        ),
        (
            "Ready",
            init_done && not_ready.is_empty(),
            ready_reason,
            ready_message,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn c(state: ContainerState, last: bool, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            image: "hashicorp/vault".into(),
            container_id: None,
            state,
            last_state: last.then(|| ContainerState::Terminated {
                exit_code: 1,
                signal: None,
                reason: "Error".into(),
                message: None,
                started_at: None,
                finished_at: t(),
            }),
            ready,
            started: ready,
            restart_count: i32::from(last),
            pid: None,
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running { started_at: t() }
    }

    fn waiting(reason: &str) -> ContainerState {
        ContainerState::Waiting {
            reason: reason.into(),
            message: None,
        }
    }

    fn exited(code: i32) -> ContainerState {
        ContainerState::Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: Some(t()),
            finished_at: t(),
        }
    }

    #[test]
    fn phase_follows_the_kubelet() {
        use RestartPolicy::*;
        let cases: Vec<(
            RestartPolicy,
            Vec<ContainerStatus>,
            Vec<ContainerStatus>,
            PodPhase,
        )> = vec![
            (
                Always,
                vec![],
                vec![c(waiting("ContainerCreating"), false, false)],
                PodPhase::Pending,
            ),
            (
                Always,
                vec![],
                vec![c(running(), false, true)],
                PodPhase::Running,
            ),
            // Crash-looping: waiting with a last state still counts as running.
            (
                Always,
                vec![],
                vec![c(waiting("CrashLoopBackOff"), true, false)],
                PodPhase::Running,
            ),
            (
                Never,
                vec![],
                vec![c(exited(0), false, false)],
                PodPhase::Succeeded,
            ),
            (
                Never,
                vec![],
                vec![c(exited(2), false, false)],
                PodPhase::Failed,
            ),
            (
                OnFailure,
                vec![],
                vec![c(exited(0), false, false)],
                PodPhase::Succeeded,
            ),
            (
                OnFailure,
                vec![],
                vec![c(exited(1), false, false)],
                PodPhase::Running,
            ),
            (
                Never,
                vec![],
                vec![c(exited(0), false, false), c(running(), false, true)],
                PodPhase::Running,
            ),
            // Init containers gate the pod.
            (
                Always,
                vec![c(running(), false, false)],
                vec![c(waiting("PodInitializing"), false, false)],
                PodPhase::Pending,
            ),
            (
                Never,
                vec![c(exited(1), false, false)],
                vec![c(waiting("PodInitializing"), false, false)],
                PodPhase::Failed,
            ),
            (
                Always,
                vec![c(exited(0), false, false)],
                vec![c(running(), false, true)],
                PodPhase::Running,
            ),
        ];
        for (i, (policy, init, containers, want)) in cases.into_iter().enumerate() {
            assert_eq!(pod_phase(policy, &init, &containers), want, "case {i}");
        }
    }

    #[test]
    fn conditions_name_unready_containers() {
        let mut a = c(running(), false, true);
        a.name = "vault".into();
        let mut b = c(running(), false, false);
        b.name = "sidecar".into();
        let conds = pod_conditions(true, &[], &[a, b]);
        let ready = conds.iter().find(|c| c.0 == "Ready").unwrap();
        assert!(!ready.1);
        assert_eq!(
            ready.3.as_deref(),
            Some("containers with unready status: [sidecar]")
        );
        assert!(conds.iter().find(|c| c.0 == "Initialized").unwrap().1);
    }

    #[test]
    fn status_converts_to_the_api_types() {
        let killed = ContainerState::Terminated {
            exit_code: 137,
            signal: Some(9),
            reason: "Error".into(),
            message: None,
            started_at: Some(t()),
            finished_at: t(),
        };
        let mut status = c(running(), false, true);
        status.last_state = Some(killed);
        status.restart_count = 1;
        let k = status.to_k8s();
        assert_eq!(k.restart_count, 1);
        let last = k.last_state.unwrap().terminated.unwrap();
        assert_eq!((last.exit_code, last.signal), (137, Some(9)));
        assert!(k.state.unwrap().running.is_some());
    }
}
