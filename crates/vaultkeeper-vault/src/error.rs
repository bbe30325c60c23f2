//! The one error type of this crate.
//!
//! Every variant that comes from talking to a node names the pod (or, for the jobs, the
//! Vault address) and the [`Step`], so an Event, a status condition or a Job's log line
//! built from it tells a person where to look. No variant
//! carries secret material: request bodies and tokens never reach an error, and the text
//! that does (a server's error list, a command's stderr) is scrubbed of every secret the
//! call was given before it is stored (see `client::exec`).

use std::fmt;

use crate::node::PodName;

/// What the library was doing when something failed. Also a stable label for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// `sys/health`.
    Health,
    /// `sys/seal-status`.
    SealStatus,
    /// `sys/init` (read).
    InitStatus,
    /// `sys/leader`.
    Leader,
    /// `sys/storage/raft/configuration`.
    RaftConfiguration,
    /// `sys/storage/raft/autopilot/state`.
    AutopilotState,
    /// `sys/init` (write): the one-time initialization.
    Init,
    /// `sys/unseal` with one share.
    Unseal,
    /// `sys/unseal` with `reset`.
    UnsealReset,
    /// `sys/storage/raft/remove-peer`.
    RemovePeer,
    /// `sys/storage/raft/join`: a new node asks the leader for a join challenge.
    RaftJoin,
    /// `sys/step-down`.
    StepDown,
    /// A rekey call: new unseal or recovery shares.
    Rekey,
    /// Rotation of the keyring's encryption key.
    RotateKeyring,
    /// `sys/auth` (list or enable an auth method).
    AuthMount,
    /// `sys/policies/acl/NAME`.
    Policy,
    /// `auth/<mount>/config`.
    KubernetesAuthConfig,
    /// `auth/<mount>/role/NAME`.
    KubernetesAuthRole,
    /// `auth/token/roles/NAME`.
    TokenRole,
    /// `auth/<mount>/login`.
    KubernetesLogin,
    /// `auth/token/lookup-self`.
    TokenLookup,
    /// `auth/token/revoke-self`.
    TokenRevoke,
    /// `auth/token/create/NAME`: a token from a token role.
    TokenCreate,
    /// `auth/token/renew`: renewing another token by value.
    TokenRenew,
    /// `sys/storage/raft/snapshot` (read): streaming a snapshot out.
    Snapshot,
    /// `sys/storage/raft/snapshot[-force]` (write): restoring a snapshot.
    SnapshotRestore,
    /// Loading init output from the key store.
    KeyStoreLoad,
    /// Persisting init output to the key store.
    KeyStoreStore,
    /// Setting up a client (TLS material, addresses).
    ClientSetup,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Step::Health => "read health",
            Step::SealStatus => "read seal status",
            Step::InitStatus => "read init status",
            Step::Leader => "read leader",
            Step::RaftConfiguration => "read raft configuration",
            Step::AutopilotState => "read autopilot state",
            Step::Init => "initialize",
            Step::Unseal => "unseal",
            Step::UnsealReset => "reset unseal progress",
            Step::RemovePeer => "remove raft peer",
            Step::RaftJoin => "join raft",
            Step::StepDown => "step down",
            Step::Rekey => "rekey",
            Step::RotateKeyring => "rotate the encryption key",
            Step::AuthMount => "auth method mount",
            Step::Policy => "ACL policy",
            Step::KubernetesAuthConfig => "Kubernetes auth config",
            Step::KubernetesAuthRole => "Kubernetes auth role",
            Step::TokenRole => "token role",
            Step::KubernetesLogin => "Kubernetes auth login",
            Step::TokenLookup => "token lookup",
            Step::TokenRevoke => "token revoke",
            Step::TokenCreate => "token create",
            Step::TokenRenew => "token renew",
            Step::Snapshot => "raft snapshot",
            Step::SnapshotRestore => "raft snapshot restore",
            Step::KeyStoreLoad => "load keys",
            Step::KeyStoreStore => "store keys",
            Step::ClientSetup => "client setup",
        };
        f.write_str(name)
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node could not be reached at all (connection refused, timeout, TLS failure,
    /// the exec channel failed). The decision treats the pod as unreachable.
    #[error("{step} on pod {pod}: the node did not answer: {reason}")]
    Unreachable {
        /// The pod that was asked.
        pod: PodName,
        /// What was being done.
        step: Step,
        /// Why, without secrets.
        reason: String,
    },

    /// The server answered with an error status.
    #[error("{step} on pod {pod}: the server answered {status}: {message}")]
    Api {
        /// The pod that was asked.
        pod: PodName,
        /// What was being done.
        step: Step,
        /// HTTP status, or the CLI's exit code for the exec transport.
        status: u16,
        /// The server's error list (or the CLI's stderr), scrubbed of secrets.
        message: String,
    },

    /// The token used was rejected: it expired, was revoked, or lacks the capability.
    #[error(
        "{step} on pod {pod}: permission denied (the token is revoked, expired or lacks the capability)"
    )]
    PermissionDenied {
        /// The pod that was asked.
        pod: PodName,
        /// What was being done.
        step: Step,
    },

    /// The server (or CLI) answered, but not with what this library understands.
    #[error("{step} on pod {pod}: unexpected answer: {reason}")]
    UnexpectedResponse {
        /// The pod that was asked.
        pod: PodName,
        /// What was being done.
        step: Step,
        /// What did not parse; never the body itself, which may hold a secret.
        reason: String,
    },

    /// The key store failed.
    #[error("{step}: {reason}")]
    KeyStore {
        /// [`Step::KeyStoreLoad`] or [`Step::KeyStoreStore`].
        step: Step,
        /// Why, without secrets.
        reason: String,
    },

    /// The init answer was saved exactly as it arrived, but it is not a complete key
    /// record. It is never dropped and never followed by a second init: a person reads
    /// it (see `docs/custody.md`).
    #[error(
        "the init answer is saved exactly as it arrived, but vaultkeeper cannot read the keys in it: {reason}. Nothing else will happen to this cluster until a person looks: see docs/custody.md, \"An unreadable init answer\""
    )]
    InitAnswerUnreadable {
        /// What is wrong with it, without its content.
        reason: String,
    },

    /// An input given to this library is not valid. Names the field and the fix.
    #[error("invalid {field}: {problem}; {fix}")]
    InvalidInput {
        /// The field (in the caller's terms, e.g. `unseal.shamir.keyThreshold`).
        field: String,
        /// What is wrong with it.
        problem: String,
        /// What to do about it.
        fix: String,
    },

    /// A pod was named that the client has no address or executor for.
    #[error(
        "{step} on pod {pod}: this client has no address for the pod; add it to the client's endpoints"
    )]
    UnknownPod {
        /// The pod that was asked for.
        pod: PodName,
        /// What was being done.
        step: Step,
    },

    /// A Vault address given to a job (or the active node it named) could not be reached:
    /// connection refused, timeout, TLS failure, or a stream cut short.
    #[error("{step} at {addr}: Vault did not answer: {reason}")]
    VaultUnreachable {
        /// The address asked.
        addr: String,
        /// What was being done.
        step: Step,
        /// Why, without secrets.
        reason: String,
    },

    /// A Vault address given to a job answered with an error status.
    #[error("{step} at {addr}: Vault answered {status}: {message}; {hint}")]
    VaultRefused {
        /// The address asked.
        addr: String,
        /// What was being done.
        step: Step,
        /// HTTP status.
        status: u16,
        /// Vault's error list.
        message: String,
        /// What to check, for the person reading the Job's log.
        hint: &'static str,
    },

    /// A Vault address given to a job answered with something this library does not
    /// understand.
    #[error("{step} at {addr}: unexpected answer: {reason}")]
    VaultUnexpected {
        /// The address asked.
        addr: String,
        /// What was being done.
        step: Step,
        /// What did not parse; never the body itself.
        reason: String,
    },

    /// A job's Kubernetes auth login was refused.
    #[error(
        "Kubernetes auth login as role {role:?} at {addr} (auth/{mount}) failed with HTTP {status}: {message}; {hint}"
    )]
    LoginRefused {
        /// The address asked.
        addr: String,
        /// Auth mount path.
        mount: String,
        /// Vault role name.
        role: String,
        /// HTTP status.
        status: u16,
        /// Vault's error list.
        message: String,
        /// What to check.
        hint: &'static str,
    },

    /// A step needed a token and none was available.
    #[error("{step}: no token available: {reason}")]
    NoToken {
        /// What was being done.
        step: Step,
        /// Why there is none (root revoked and no operator login configured, ...).
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The pod the error is about, when it is about one.
    pub fn pod(&self) -> Option<&PodName> {
        match self {
            Error::Unreachable { pod, .. }
            | Error::Api { pod, .. }
            | Error::PermissionDenied { pod, .. }
            | Error::UnexpectedResponse { pod, .. }
            | Error::UnknownPod { pod, .. } => Some(pod),
            Error::KeyStore { .. }
            | Error::InitAnswerUnreadable { .. }
            | Error::InvalidInput { .. }
            | Error::NoToken { .. }
            | Error::VaultUnreachable { .. }
            | Error::VaultRefused { .. }
            | Error::VaultUnexpected { .. }
            | Error::LoginRefused { .. } => None,
        }
    }

    /// The step that failed, when there is one.
    pub fn step(&self) -> Option<Step> {
        match self {
            Error::Unreachable { step, .. }
            | Error::Api { step, .. }
            | Error::PermissionDenied { step, .. }
            | Error::UnexpectedResponse { step, .. }
            | Error::UnknownPod { step, .. }
            | Error::KeyStore { step, .. }
            | Error::NoToken { step, .. }
            | Error::VaultUnreachable { step, .. }
            | Error::VaultRefused { step, .. }
            | Error::VaultUnexpected { step, .. } => Some(*step),
            Error::LoginRefused { .. } => Some(Step::KubernetesLogin),
            Error::InitAnswerUnreadable { .. } => Some(Step::KeyStoreLoad),
            Error::InvalidInput { .. } => None,
        }
    }

    /// A short stable name of the variant, for metric labels and Event reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unreachable { .. } => "Unreachable",
            Error::Api { .. } => "Api",
            Error::PermissionDenied { .. } => "PermissionDenied",
            Error::UnexpectedResponse { .. } => "UnexpectedResponse",
            Error::KeyStore { .. } => "KeyStore",
            Error::InitAnswerUnreadable { .. } => "InitAnswerUnreadable",
            Error::InvalidInput { .. } => "InvalidInput",
            Error::UnknownPod { .. } => "UnknownPod",
            Error::NoToken { .. } => "NoToken",
            Error::VaultUnreachable { .. } => "VaultUnreachable",
            Error::VaultRefused { .. } => "VaultRefused",
            Error::VaultUnexpected { .. } => "VaultUnexpected",
            Error::LoginRefused { .. } => "LoginRefused",
        }
    }

    /// The same error naming `field` (a command-line flag, say) for an invalid input,
    /// instead of this library's own name for it.
    pub fn in_field(self, field: &str) -> Self {
        match self {
            Error::InvalidInput { problem, fix, .. } => Error::InvalidInput {
                field: field.to_owned(),
                problem,
                fix,
            },
            other => other,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
