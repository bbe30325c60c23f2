//! Why a pass failed. The variant names are the `reason` label of the
//! `vaultkeeper_reconcile_errors` metric.

use crate::apply::ApplyError;

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The VaultCluster has no namespace (it is namespaced; this is a bug elsewhere).
    #[error("the VaultCluster has no namespace")]
    NoNamespace,
    /// Applying or pruning rendered objects failed.
    #[error(transparent)]
    Apply(Box<ApplyError>),
    /// A Kubernetes request failed.
    #[error("{step}: {source}")]
    Kube {
        /// What the operator was doing.
        step: &'static str,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Rendering failed (the message names the field).
    #[error("rendering: {0}")]
    Render(#[from] vaultkeeper_render::RenderError),
    /// The lifecycle library refused or failed.
    #[error("lifecycle: {0}")]
    Lifecycle(#[from] vaultkeeper_vault::Error),
    /// The system's random number generator failed (no key can be generated).
    #[error("the system random number generator failed")]
    Random,
    /// A deleted cluster's init output is still only in memory: the finalizer stays until
    /// the keys Secret takes it.
    #[error(
        "the cluster is being deleted, but its init output is held only in memory and cannot be saved yet ({0}); the deletion waits for the save"
    )]
    KeysUnsaved(String),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The operation lock could not be written.
    #[error("operation lock: {0}")]
    Lock(String),
    /// The status could not be turned into JSON (a bug, never expected).
    #[error("serializing the status: {0}")]
    Status(#[from] serde_json::Error),
}

impl Error {
    /// The metric label of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NoNamespace => "NoNamespace",
            Error::Apply(_) => "Apply",
            Error::Kube { .. } => "Kube",
            Error::Lock(_) => "Lock",
            Error::Render(_) => "Render",
            Error::Lifecycle(_) => "Lifecycle",
            Error::Random => "Random",
            Error::KeysUnsaved(_) => "KeysUnsaved",
            Error::Finalizer(_) => "Finalizer",
            Error::Status(_) => "Status",
        }
    }
}

/// Maps a Kubernetes error to [`Error::Kube`] for `step`.
pub(crate) fn kube_err(step: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube {
        step,
        source: Box::new(source),
    }
}

impl From<ApplyError> for Error {
    fn from(error: ApplyError) -> Self {
        Error::Apply(Box::new(error))
    }
}
