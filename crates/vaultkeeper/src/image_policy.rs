//! Which server images a platform team lets VaultClusters run. `spec.image` is free user
//! input, and the image runs the CLI that carries unseal shares: a team that wants only
//! its mirror, or only pinned digests, sets a policy on the operator, and a VaultCluster
//! asking for anything else gets a condition naming the field, never a pod.
//!
//! Pure: the decision needs no client.

use vaultkeeper_api::Violation;

/// The operator's image policy (`vaultkeeper run --allowed-image … --require-image-digest`).
/// The default allows every image, as Kubernetes itself does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImagePolicy {
    /// Allowed images. An entry ending in `/` allows every repository under that registry
    /// or path (`registry.example.com/vault/`); any other entry allows exactly that
    /// repository (`docker.io/hashicorp/vault`), with any tag or digest. Images are compared
    /// in their full form: `hashicorp/vault` is `docker.io/hashicorp/vault`, `vault` is
    /// `docker.io/library/vault`. Empty: every repository.
    pub allowed: Vec<String>,
    /// Images must be pinned by digest (`…@sha256:<64 hex>`), so what runs cannot change
    /// under the same name.
    pub require_digest: bool,
}

/// An image reference split into its full repository and the digest, if any.
struct Reference {
    repository: String,
    digest: Option<String>,
}

fn parse(image: &str) -> Reference {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d.to_owned())),
        None => (image, None),
    };
    // A tag follows the last `:` after the last `/` (a `:` before it is a registry port).
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last_slash..].find(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repository = if has_registry {
        name.to_owned()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    Reference { repository, digest }
}

fn pinned(digest: Option<&str>) -> bool {
    digest
        .and_then(|d| d.strip_prefix("sha256:"))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl ImagePolicy {
    /// Whether the policy allows anything less than every image.
    pub fn is_set(&self) -> bool {
        !self.allowed.is_empty() || self.require_digest
    }

    /// Checks the image `field` asks for; the violation names the field, the image, and
    /// what the policy allows.
    pub fn check(&self, field: &str, image: &str) -> Result<(), Violation> {
        let reference = parse(image);
        if self.require_digest && !pinned(reference.digest.as_deref()) {
            return Err(Violation {
                field: field.to_owned(),
                message: format!(
                    "{field}: {image:?} is not pinned by digest, and this operator runs only images pinned as <repository>@sha256:<64 hex digits>; pin it (the digest is in your registry or `crane digest {image}`)"
                ),
            });
        }
        let allowed = self.allowed.is_empty()
            || self.allowed.iter().any(|entry| {
                let entry = entry.trim();
                if entry.ends_with('/') {
                    reference.repository.starts_with(entry)
                } else {
                    reference.repository == parse(entry).repository
                }
            });
        if allowed {
            Ok(())
        } else {
            Err(Violation {
                field: field.to_owned(),
                message: format!(
                    "{field}: {image:?} (repository {}) is not among the images this operator may run: {}; use one of those, or ask whoever runs the operator to allow it",
                    reference.repository,
                    self.allowed.join(", ")
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn policy(allowed: &[&str], require_digest: bool) -> ImagePolicy {
        ImagePolicy {
            allowed: allowed.iter().map(|s| (*s).to_owned()).collect(),
            require_digest,
        }
    }

    #[test]
    fn images_are_compared_by_full_repository_never_by_a_bare_prefix() {
        let table: &[(&[&str], &str, bool)] = &[
            (&[], "evil.example.com/x:1", true),
            (&["docker.io/hashicorp/vault"], "hashicorp/vault:1.17", true),
            (
                &["docker.io/hashicorp/vault"],
                "docker.io/hashicorp/vault@sha256:abc",
                true,
            ),
            (&["hashicorp/vault"], "docker.io/hashicorp/vault:1.17", true),
            // A repository entry is not a prefix: vault-evil is another repository.
            (
                &["docker.io/hashicorp/vault"],
                "hashicorp/vault-evil:1",
                false,
            ),
            (
                &["docker.io/hashicorp/vault"],
                "hashicorp/vault/../../x",
                false,
            ),
            (&["quay.io/openbao/"], "quay.io/openbao/openbao:2.7.2", true),
            (
                &["quay.io/openbao/"],
                "quay.io/openbaoevil/openbao:1",
                false,
            ),
            (
                &["quay.io/openbao/"],
                "quay.io.evil.com/openbao/openbao:1",
                false,
            ),
            // A registry port is not a tag.
            (
                &["registry.local:5000/vault/"],
                "registry.local:5000/vault/server:1",
                true,
            ),
            (
                &["registry.local:5000/vault"],
                "registry.local:5000/vault:1",
                true,
            ),
            (&["vault"], "docker.io/library/vault:1", true),
            (&["vault"], "myvault:1", false),
        ];
        for (allowed, image, ok) in table {
            assert_eq!(
                policy(allowed, false).check("spec.image", image).is_ok(),
                *ok,
                "{allowed:?} allowing {image}"
            );
        }
    }

    #[test]
    fn a_required_digest_means_a_full_sha256_and_the_message_names_the_field() {
        let p = policy(&[], true);
        assert!(
            p.check("spec.image", &format!("quay.io/openbao/openbao@{DIGEST}"))
                .is_ok()
        );
        assert!(
            p.check(
                "spec.image",
                &format!("quay.io/openbao/openbao:2.7.2@{DIGEST}")
            )
            .is_ok()
        );
        for bad in [
            "quay.io/openbao/openbao:2.7.2",
            "quay.io/openbao/openbao@sha256:abc",
            "quay.io/openbao/openbao@md5:0123456789abcdef0123456789abcdef",
        ] {
            let v = p.check("spec.image", bad).expect_err(bad);
            assert_eq!(v.field, "spec.image");
            assert!(v.message.starts_with("spec.image:"), "{}", v.message);
            assert!(v.message.contains("pinned by digest"), "{}", v.message);
        }
        let refused = policy(&["quay.io/openbao/"], false)
            .check("spec.image", "evil.example.com/vault:1")
            .expect_err("refused");
        assert!(
            refused.message.contains("quay.io/openbao/"),
            "{}",
            refused.message
        );
        assert!(!policy(&[], false).is_set());
        assert!(policy(&[], true).is_set());
    }
}
