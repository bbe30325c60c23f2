use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which server the cluster runs: HashiCorp Vault or OpenBao, its API-compatible fork.
///
/// The flavor decides the CLI binary inside the pod (`vault` or `bao`), the default
/// image, the labels its Kubernetes service registration writes on pods, and a few
/// configuration details (OpenBao dropped `disable_mlock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Flavor {
    /// HashiCorp Vault (`hashicorp/vault` images, `vault` CLI).
    Vault,
    /// OpenBao (`openbao/openbao` images, `bao` CLI).
    OpenBao,
}

impl Flavor {
    /// The CLI and server binary inside the container.
    pub fn cli_binary(self) -> &'static str {
        match self {
            Flavor::Vault => "vault",
            Flavor::OpenBao => "bao",
        }
    }

    /// The prefix of the pod labels written by the server's own Kubernetes service
    /// registration: `vault-active`, `vault-sealed`… or `openbao-active`, `openbao-sealed`….
    pub fn service_registration_label_prefix(self) -> &'static str {
        match self {
            Flavor::Vault => "vault",
            Flavor::OpenBao => "openbao",
        }
    }

    /// Guesses the flavor from an image reference: anything naming `openbao` is OpenBao,
    /// everything else is Vault.
    pub fn detect_from_image(image: &str) -> Flavor {
        let repository = image.rsplit_once('@').map_or(image, |(repo, _)| repo);
        let repository = match repository.rsplit_once(':') {
            // A colon after the last slash is a tag; before it, a registry port.
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => repository,
        };
        if repository.to_ascii_lowercase().contains("openbao") {
            Flavor::OpenBao
        } else {
            Flavor::Vault
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavor_is_detected_from_the_image_repository_not_the_tag() {
        let cases = [
            ("openbao/openbao:2.7.2", Flavor::OpenBao),
            ("quay.io/openbao/openbao", Flavor::OpenBao),
            ("registry.local:5000/mirror/openbao:2.7.2", Flavor::OpenBao),
            ("hashicorp/vault:2.0.4", Flavor::Vault),
            (
                "registry.local:5000/hashicorp/vault@sha256:abc",
                Flavor::Vault,
            ),
            // A tag that happens to say openbao does not make a Vault image OpenBao.
            ("hashicorp/vault:openbao-compat", Flavor::Vault),
        ];
        for (image, expected) in cases {
            assert_eq!(Flavor::detect_from_image(image), expected, "{image}");
        }
    }
}
