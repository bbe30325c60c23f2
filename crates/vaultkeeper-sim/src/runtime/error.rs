//! The runtime's error type. Every variant names the pod, container, volume or field it is
//! about and, where a person can fix something, says how. No variant ever carries a file's
//! contents, an environment value or a token: those live in a [`secrecy::SecretSlice`] and never
//! reach an error message.

/// What can go wrong while running pods.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The process lacks a privilege the runtime needs (mount namespaces, pivot_root,
    /// dropping to a pod's uid). Run the simulated cluster as root.
    #[error(
        "the simulated kubelet runs pods in their own mount namespaces and needs root: \
         {missing} (effective uid {euid}); run the tests or the sandbox as root"
    )]
    NotPrivileged {
        /// Effective uid of this process.
        euid: u32,
        /// The missing privilege, e.g. `CAP_SYS_ADMIN (mount, pivot_root)`.
        missing: String,
    },
    /// The runtime's own configuration is wrong.
    #[error("runtime configuration: {field}: {message}")]
    Config {
        /// The configuration field, e.g. `state_dir`.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A pod spec field has a value the runtime cannot use.
    #[error("pod {pod}: {field}: {message}")]
    InvalidPod {
        /// `namespace/name`.
        pod: String,
        /// JSON path of the field, e.g. `spec.containers[0].volumeMounts[1].subPath`.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The pod asks for something the simulated kubelet refuses to fake.
    #[error("pod {pod}: {field}: {what} is not supported by the simulated kubelet")]
    Unsupported {
        /// `namespace/name`.
        pod: String,
        /// JSON path of the field.
        field: String,
        /// The feature, e.g. `hostPath volumes`.
        what: String,
    },
    /// A volume cannot be set up (missing ConfigMap, Secret key, claim directory…).
    #[error("pod {pod}: MountVolume.SetUp failed for volume \"{volume}\": {message}")]
    Volume {
        /// `namespace/name`.
        pod: String,
        /// The volume's name in the pod spec.
        volume: String,
        /// What is missing or wrong.
        message: String,
    },
    /// An environment variable cannot be resolved.
    #[error("pod {pod}, container {container:?}: {field}: {message}")]
    Env {
        /// `namespace/name`.
        pod: String,
        /// The container.
        container: String,
        /// JSON path of the env entry.
        field: String,
        /// What is missing or wrong.
        message: String,
    },
    /// A pod of this name is still present on the runtime.
    #[error("pod {pod} is already present on this node; delete it before starting it again")]
    AlreadyPresent {
        /// `namespace/name`.
        pod: String,
    },
    /// No pod of this name runs here.
    #[error("pod {pod} is not running on this node")]
    PodNotFound {
        /// `namespace/name`.
        pod: String,
    },
    /// The pod has no container of this name.
    #[error("pod {pod} has no container named {container:?}")]
    ContainerNotFound {
        /// `namespace/name`.
        pod: String,
        /// The requested container.
        container: String,
    },
    /// The container exists but its process is not running (waiting, restarting, exited).
    #[error("container {container:?} in pod {pod} is not running")]
    ContainerNotRunning {
        /// `namespace/name`.
        pod: String,
        /// The container.
        container: String,
    },
    /// The container has not started yet (waiting on its image or configuration).
    #[error("container {container:?} in pod {pod} is waiting to start: {reason}")]
    ContainerWaiting {
        /// `namespace/name`.
        pod: String,
        /// The container.
        container: String,
        /// Why, e.g. `ErrImagePull`.
        reason: String,
    },
    /// The container's previous instance has no log (it never restarted).
    #[error("previous terminated container {container:?} in pod {pod} not found")]
    NoPreviousInstance {
        /// `namespace/name`.
        pod: String,
        /// The container.
        container: String,
    },
    /// Setting up a process's private view failed at one step (a mount, pivot_root, setuid…).
    #[error("pod {pod}, container {container:?}: sandbox set-up failed at {step}: {source}")]
    Sandbox {
        /// `namespace/name`.
        pod: String,
        /// The container.
        container: String,
        /// The step that failed, e.g. `bind-mount volume "data" at /vault/data`.
        step: String,
        /// The system call's error.
        source: std::io::Error,
    },
    /// The program could not be started (not found on the container's PATH, not executable).
    #[error("pod {pod}, container {container:?}: cannot run {program:?}: {source}")]
    Start {
        /// `namespace/name`.
        pod: String,
        /// The container.
        container: String,
        /// argv[0] as the spec gives it.
        program: String,
        /// Why exec failed.
        source: std::io::Error,
    },
    /// A file or process operation of the runtime itself failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The runtime has been shut down.
    #[error("the pod runtime has shut down")]
    ShutDown,
}

impl RuntimeError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias for the runtime.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
