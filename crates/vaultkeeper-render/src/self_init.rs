//! OpenBao's declarative self-initialization (`initialize` stanzas).

use vaultkeeper_api::VaultCluster;

use crate::RenderError;

/// The `initialize` stanzas for `spec.keys.initialization: SelfInit`.
pub(crate) fn initialize_stanzas(
    _cluster: &VaultCluster,
) -> Result<Vec<hcl::Structure>, RenderError> {
    Err(RenderError::Invalid {
        field: "spec.keys.initialization",
        detail: "spec.keys.initialization SelfInit cannot be rendered by this version of \
                 vaultkeeper; use initialization: Operator"
            .to_owned(),
    })
}
