//! Images map to local binaries: there is no registry and no container engine here, so a
//! container's `image` chooses which host binary the pod runs. Matching is by repository
//! path (registry, tag and digest ignored), so `hashicorp/vault:1.18`,
//! `docker.io/hashicorp/vault@sha256:…` and `quay.io/openbao/openbao:2.2` all resolve. An
//! image nobody mapped is an error on the container (`ErrImagePull`), never a silent
//! stand-in.

use std::path::PathBuf;

/// The default `PATH` of the Vault and OpenBao images (Alpine/UBI based).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Directory inside every pod where mapped binaries appear (on the default `PATH`).
pub const IMAGE_BIN_DIR: &str = "/usr/local/bin";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (`docker.io` when the reference names none).
    pub registry: String,
    /// Repository path, e.g. `hashicorp/vault` or `library/busybox`.
    pub repository: String,
    /// Tag, when given.
    pub tag: Option<String>,
    /// Digest, when given.
    pub digest: Option<String>,
}

/// Parses an image reference the way container engines normalise it.
pub fn parse_image_reference(image: &str) -> Result<ImageRef, String> {
    let image = image.trim();
    if image.is_empty() {
        return Err("the image is empty; set it to e.g. hashicorp/vault:1.18".to_string());
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(rest[last_slash + i + 1..].to_string()),
        ),
        None => (rest, None),
    };
    let (registry, path) = match name.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), path.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    let path = if registry == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
    if path.is_empty() || !path.chars().all(valid) || path.split('/').any(str::is_empty) {
        return Err(format!(
            "{image:?} is not a valid image reference (repository names are lower-case \
             letters, digits, '.', '_', '-' and '/')"
        ));
    }
    if tag.as_deref() == Some("") {
        return Err(format!("{image:?} has an empty tag after ':'"));
    }
    Ok(ImageRef {
        registry,
        repository: path,
        tag,
        digest,
    })
}

/// A file an image provides besides its binary (e.g. the Vault image's
/// `docker-entrypoint.sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// Absolute path inside the pod.
    pub path: String,
    /// Contents.
    pub contents: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// How one image repository runs here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRule {
    /// Repository path this rule serves, e.g. `hashicorp/vault`; a mirror that prefixes
    /// it (`mirror.example/team/hashicorp/vault`) matches too.
    pub repository: String,
    /// The host binary that stands in for the image.
    pub binary: PathBuf,
    /// Names under which the binary appears in [`IMAGE_BIN_DIR`] inside the pod.
    pub names: Vec<String>,
    /// The image's ENTRYPOINT (used when the container sets no `command`).
    pub entrypoint: Vec<String>,
    /// The image's CMD (used when the container sets neither `command` nor `args`).
    pub cmd: Vec<String>,
    /// The image's ENV (a container's `env` overrides it).
    pub env: Vec<(String, String)>,
    /// The image's USER (uid the container runs as without `runAsUser`).
    pub user: u32,
    /// Further files the image carries.
    pub files: Vec<ImageFile>,
    /// The image's `/bin/sh`, when it differs from the host's. The Vault and OpenBao images
    /// are Alpine-based: their shell is busybox ash, whose builtins differ from Debian's
    /// dash (the Helm chart's preStop hook runs `kill -SIGTERM`, which dash rejects).
    pub shell: Option<PathBuf>,
}

/// Image repository → local binary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMap {
    rules: Vec<ImageRule>,
}

impl ImageMap {
    /// An empty map: every image is unknown.
    pub fn new() -> Self {
        ImageMap::default()
    }

    /// Adds a rule (later rules win over earlier ones for the same repository).
    pub fn with_rule(mut self, rule: ImageRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The map the simulated cluster uses: `hashicorp/vault`, `hashicorp/vault-enterprise`,
    /// `openbao/openbao` and `openbao/openbao-ubi` run `bao` (reachable as both `vault`
    /// and `bao`), and `vaultkeeper_repository` (the project's own image, e.g.
    /// `ghcr.io/vaultkeeper/vaultkeeper`) runs the built `vaultkeeper` binary.
    pub fn standard(bao: PathBuf, vaultkeeper: Option<(String, PathBuf)>) -> Self {
        let mut map = ImageMap::new();
        for (repository, cli) in [
            ("hashicorp/vault", "vault"),
            ("hashicorp/vault-enterprise", "vault"),
            ("openbao/openbao", "bao"),
            ("openbao/openbao-ubi", "bao"),
        ] {
            map = map.with_rule(ImageRule {
                repository: repository.to_string(),
                binary: bao.clone(),
                names: vec!["vault".to_string(), "bao".to_string()],
                entrypoint: vec!["docker-entrypoint.sh".to_string()],
                cmd: vec!["server".to_string(), "-dev".to_string()],
                env: vec![("PATH".to_string(), DEFAULT_PATH.to_string())],
                user: 0,
                files: vec![ImageFile {
                    path: format!("{IMAGE_BIN_DIR}/docker-entrypoint.sh"),
                    contents: entrypoint_script(cli).into_bytes(),
                    mode: 0o755,
                }],
                shell: None,
            });
        }
        if let Some((repository, binary)) = vaultkeeper {
            let repository = parse_image_reference(&repository)
                .map(|r| r.repository)
                .unwrap_or(repository);
            map = map.with_rule(ImageRule {
                repository,
                binary,
                names: vec!["vaultkeeper".to_string()],
                entrypoint: vec!["vaultkeeper".to_string()],
                cmd: Vec::new(),
                env: vec![("PATH".to_string(), DEFAULT_PATH.to_string())],
                user: 0,
                files: Vec::new(),
                shell: None,
            });
        }
        map
    }

    /// Gives every image in the map `shell` as its `/bin/sh` (e.g. a static busybox, which
    /// is what the Alpine-based Vault and OpenBao images ship). Without it, pods use the
    /// host's `/bin/sh`.
    pub fn with_shell(mut self, shell: PathBuf) -> Self {
        for rule in &mut self.rules {
            rule.shell = Some(shell.clone());
        }
        self
    }

    /// The rule for `image`, or a message for the container's `ErrImagePull` status.
    pub fn resolve(&self, image: &str) -> Result<&ImageRule, String> {
        let reference = parse_image_reference(image)?;
        let path = reference.repository.as_str();
        self.rules
            .iter()
            .rev()
            .find(|r| {
                path == r.repository
                    || path
                        .strip_suffix(r.repository.as_str())
                        .is_some_and(|prefix| prefix.ends_with('/'))
            })
            .ok_or_else(|| {
                let known: Vec<&str> = self.rules.iter().map(|r| r.repository.as_str()).collect();
                format!(
                    "image {image:?} has no local binary on this simulated node (images \
                     that run here: {}); use one of those images or map this one in the \
                     runtime's ImageMap",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )
            })
    }
}

/// A stand-in for the Vault/OpenBao images' `docker-entrypoint.sh`: the same argument
/// handling (a leading flag or an unknown word runs the CLI), without the image's chown,
/// setcap and su-exec steps, which a pod that already runs as its `securityContext` user
/// does not need.
fn entrypoint_script(cli: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # Simulated-cluster stand-in for the image's entrypoint: runs {cli} when the first\n\
         # argument is a flag or not a command, then execs the arguments.\n\
         set -e\n\
         if [ \"${{1#-}}\" != \"$1\" ]; then\n\
         \x20 set -- {cli} \"$@\"\n\
         elif [ -n \"$1\" ] && ! command -v \"$1\" >/dev/null 2>&1; then\n\
         \x20 set -- {cli} \"$@\"\n\
         fi\n\
         exec \"$@\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_normalise_like_container_engines() {
        let cases = [
            (
                "hashicorp/vault",
                "docker.io",
                "hashicorp/vault",
                None,
                None,
            ),
            (
                "hashicorp/vault:1.18.0",
                "docker.io",
                "hashicorp/vault",
                Some("1.18.0"),
                None,
            ),
            ("busybox", "docker.io", "library/busybox", None, None),
            (
                "quay.io/openbao/openbao:2.2.0",
                "quay.io",
                "openbao/openbao",
                Some("2.2.0"),
                None,
            ),
            (
                "localhost:5000/team/app@sha256:abc",
                "localhost:5000",
                "team/app",
                None,
                Some("sha256:abc"),
            ),
            (
                "registry:5000/app:v1",
                "registry:5000",
                "app",
                Some("v1"),
                None,
            ),
        ];
        for (input, registry, repository, tag, digest) in cases {
            let r = parse_image_reference(input).unwrap();
            assert_eq!(r.registry, registry, "{input}");
            assert_eq!(r.repository, repository, "{input}");
            assert_eq!(r.tag.as_deref(), tag, "{input}");
            assert_eq!(r.digest.as_deref(), digest, "{input}");
        }
        for bad in ["", "Hashicorp/Vault", "vault:", "a//b"] {
            assert!(parse_image_reference(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vault_and_openbao_images_run_bao_and_unknown_images_fail() {
        let map = ImageMap::standard(
            PathBuf::from("/tools/bao"),
            Some((
                "ghcr.io/vaultkeeper/vaultkeeper".to_string(),
                PathBuf::from("/target/vaultkeeper"),
            )),
        );
        for image in [
            "hashicorp/vault:1.18.1",
            "docker.io/hashicorp/vault@sha256:00",
            "quay.io/openbao/openbao:2.2.0",
            "ghcr.io/openbao/openbao",
            "mirror.example.com/dockerhub/hashicorp/vault:1.18",
        ] {
            let rule = map.resolve(image).unwrap();
            assert_eq!(rule.binary, PathBuf::from("/tools/bao"), "{image}");
            assert!(rule.names.contains(&"vault".to_string()));
            assert!(rule.names.contains(&"bao".to_string()));
        }
        let own = map
            .resolve("ghcr.io/vaultkeeper/vaultkeeper:0.1.0")
            .unwrap();
        assert_eq!(own.binary, PathBuf::from("/target/vaultkeeper"));
        // The injector and lookalike names are different programs: never a fake success.
        for image in [
            "hashicorp/vault-k8s:1.4",
            "busybox",
            "evilhashicorp/vault",
            "nginx",
        ] {
            let err = map.resolve(image).unwrap_err();
            assert!(err.contains("has no local binary"), "{image}: {err}");
            assert!(err.contains("hashicorp/vault"), "{err}");
        }
    }

    #[test]
    fn entrypoint_script_prepends_the_cli_like_the_image() {
        let s = entrypoint_script("vault");
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("set -- vault \"$@\""));
        assert!(s.ends_with("exec \"$@\"\n"));
    }
}
