//! A container's volume mounts: which volume goes where, read-only or not, with `subPath`
//! resolved inside the volume. The checks are the API server's and the kubelet's: absolute
//! mount paths without `..`, unique per container, `subPath` relative and never escaping
//! its volume (symlinks included), volumes the kubelet always mounts read-only stay so.

use super::env::{EnvVar, expand};
use super::error::{Result, RuntimeError};
use super::volumes::{VolumeContent, VolumePlan, validate_item_path};
use k8s_openapi::api::core::v1::Container;
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};

/// One mount of a container, before the host path is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    /// The volume's name.
    pub volume: String,
    /// Absolute path inside the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Path inside the volume to mount instead of its root.
    pub sub_path: Option<String>,
    /// Whether the volume may gain a missing `subPath` directory (emptyDir, claims).
    pub writable_volume: bool,
}

fn check_mount_path(path: &str) -> std::result::Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must be an absolute path"));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("{path:?} must not contain '..'"));
    }
    Ok(())
}

/// Normalises `/a//b/` to `/a/b` so duplicates are found.
fn normalise(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// Plans a container's mounts. `field` is the container's JSON path
/// (`spec.containers[0]`), `env` its resolved environment (for `subPathExpr`).
pub fn plan_container_mounts(
    pod: &str,
    container: &Container,
    field: &str,
    volumes: &[VolumePlan],
    env: &[EnvVar],
) -> Result<Vec<MountRequest>> {
    let invalid = |f: String, message: String| RuntimeError::InvalidPod {
        pod: pod.to_string(),
        field: f,
        message,
    };
    let mut out: Vec<MountRequest> = Vec::new();
    for (i, m) in container.volume_mounts.iter().flatten().enumerate() {
        let f = format!("{field}.volumeMounts[{i}]");
        let Some(volume) = volumes.iter().find(|v| v.name == m.name) else {
            return Err(invalid(
                format!("{f}.name"),
                format!("no volume named {:?} in spec.volumes", m.name),
            ));
        };
        check_mount_path(&m.mount_path).map_err(|e| invalid(format!("{f}.mountPath"), e))?;
        let target = normalise(&m.mount_path);
        if out.iter().any(|o| o.target == target) {
            return Err(invalid(
                format!("{f}.mountPath"),
                format!("{target:?} is already mounted by another volumeMount; each path once"),
            ));
        }
        if m.mount_propagation.as_deref() == Some("Bidirectional") {
            return Err(RuntimeError::Unsupported {
                pod: pod.to_string(),
                field: format!("{f}.mountPropagation"),
                what: "Bidirectional mount propagation".to_string(),
            });
        }
        let sub_path = match (m.sub_path.as_deref(), m.sub_path_expr.as_deref()) {
            (Some(s), Some(e)) if !s.is_empty() && !e.is_empty() => {
                return Err(invalid(
                    format!("{f}.subPathExpr"),
                    "subPath and subPathExpr are mutually exclusive".to_string(),
                ));
            }
            (Some(s), _) if !s.is_empty() => Some(s.to_string()),
            (_, Some(e)) if !e.is_empty() => {
                let lookup = |n: &str| {
                    env.iter()
                        .find(|v| v.name == n)
                        .map(|v| v.value.expose_secret())
                };
                let expanded = String::from_utf8_lossy(&expand(e.as_bytes(), lookup)).into_owned();
                if expanded.contains("$(") {
                    return Err(invalid(
                        format!("{f}.subPathExpr"),
                        format!("{e:?} references a variable the container does not define"),
                    ));
                }
                Some(expanded)
            }
            _ => None,
        };
        if let Some(s) = &sub_path {
            validate_item_path(s).map_err(|e| invalid(format!("{f}.subPath"), e))?;
        }
        let (claim_read_only, writable_volume) = match &volume.content {
            VolumeContent::Claim { read_only, .. } => (*read_only, true),
            VolumeContent::EmptyDir => (false, true),
            VolumeContent::Files(_) => (true, false),
        };
        out.push(MountRequest {
            volume: m.name.clone(),
            target,
            read_only: m.read_only == Some(true) || volume.always_read_only() || claim_read_only,
            sub_path,
            writable_volume,
        });
    }
    Ok(out)
}

/// Resolves the host source of a mount: the volume directory, or `subPath` inside it
/// (created as a directory when missing in a writable volume), never outside the volume.
/// Returns the path and whether it is a regular file.
pub fn resolve_mount_source(
    volume_dir: &Path,
    request: &MountRequest,
) -> std::result::Result<(PathBuf, bool), String> {
    let base = volume_dir
        .canonicalize()
        .map_err(|e| format!("volume directory {}: {e}", volume_dir.display()))?;
    let Some(sub) = &request.sub_path else {
        return Ok((base, false));
    };
    let candidate = base.join(sub);
    if std::fs::symlink_metadata(&candidate).is_err() {
        if !request.writable_volume {
            return Err(format!(
                "subPath {sub:?} does not exist in volume {:?}",
                request.volume
            ));
        }
        std::fs::create_dir_all(&candidate)
            .map_err(|e| format!("creating subPath {sub:?}: {e}"))?;
    }
    let resolved = candidate
        .canonicalize()
        .map_err(|e| format!("subPath {sub:?}: {e}"))?;
    if !resolved.starts_with(&base) {
        return Err(format!(
            "subPath {sub:?} resolves outside volume {:?}; symlinks must stay inside the volume",
            request.volume
        ));
    }
    let is_file = std::fs::metadata(&resolved)
        .map(|m| m.is_file())
        .unwrap_or(false);
    Ok((resolved, is_file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::volumes::PlannedFile;
    use k8s_openapi::api::core::v1::VolumeMount;
    use secrecy::SecretSlice;

    fn volumes() -> Vec<VolumePlan> {
        vec![
            VolumePlan {
                name: "config".into(),
                content: VolumeContent::Files(vec![PlannedFile {
                    path: "a.hcl".into(),
                    mode: 0o644,
                    contents: SecretSlice::from(b"x".to_vec()),
                }]),
            },
            VolumePlan {
                name: "data".into(),
                content: VolumeContent::Claim {
                    claim: "data-vault-0".into(),
                    host_dir: "/pv".into(),
                    read_only: false,
                },
            },
        ]
    }

    fn mount(name: &str, path: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..Default::default()
        }
    }

    fn container(mounts: Vec<VolumeMount>) -> Container {
        Container {
            name: "vault".into(),
            volume_mounts: Some(mounts),
            ..Default::default()
        }
    }

    #[test]
    fn mounts_keep_config_read_only_and_data_writable() {
        let env = vec![EnvVar {
            name: "POD".into(),
            value: SecretSlice::from(b"vault-0".to_vec()),
        }];
        let mut sub = mount("data", "/vault/logs");
        sub.sub_path_expr = Some("logs/$(POD)".into());
        let got = plan_container_mounts(
            "vault/vault-0",
            &container(vec![
                mount("config", "/vault/config/"),
                mount("data", "/vault/data"),
                sub,
            ]),
            "spec.containers[0]",
            &volumes(),
            &env,
        )
        .unwrap();
        assert_eq!(got[0].target, "/vault/config");
        assert!(got[0].read_only, "configMap volumes are always read-only");
        assert!(!got[1].read_only);
        assert_eq!(got[2].sub_path.as_deref(), Some("logs/vault-0"));
    }

    #[test]
    fn bad_mounts_name_the_field() {
        let cases: Vec<(Vec<VolumeMount>, &str)> = vec![
            (vec![mount("nope", "/x")], "volumeMounts[0].name"),
            (vec![mount("data", "relative")], "volumeMounts[0].mountPath"),
            (vec![mount("data", "/a/../b")], "volumeMounts[0].mountPath"),
            (
                vec![mount("data", "/v"), mount("config", "/v/")],
                "volumeMounts[1].mountPath",
            ),
            (
                vec![{
                    let mut m = mount("data", "/v");
                    m.sub_path = Some("../etc".into());
                    m
                }],
                "volumeMounts[0].subPath",
            ),
            (
                vec![{
                    let mut m = mount("data", "/v");
                    m.sub_path_expr = Some("$(UNDEFINED)".into());
                    m
                }],
                "volumeMounts[0].subPathExpr",
            ),
        ];
        for (mounts, want) in cases {
            let e = plan_container_mounts(
                "vault/vault-0",
                &container(mounts),
                "spec.containers[0]",
                &volumes(),
                &[],
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn sub_path_never_escapes_its_volume() {
        let root = tempfile::tempdir().unwrap();
        let vol = root.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::fs::write(root.path().join("outside"), "secret").unwrap();
        std::os::unix::fs::symlink("../outside", vol.join("link")).unwrap();
        std::fs::write(vol.join("file"), "in").unwrap();
        let req = |sub: &str, writable| MountRequest {
            volume: "v".into(),
            target: "/t".into(),
            read_only: false,
            sub_path: Some(sub.into()),
            writable_volume: writable,
        };
        let err = resolve_mount_source(&vol, &req("link", true)).unwrap_err();
        assert!(err.contains("resolves outside volume"), "{err}");
        let (p, is_file) = resolve_mount_source(&vol, &req("file", false)).unwrap();
        assert!(is_file && p.ends_with("vol/file"));
        let (p, is_file) = resolve_mount_source(&vol, &req("new/dir", true)).unwrap();
        assert!(!is_file && p.is_dir());
        assert!(resolve_mount_source(&vol, &req("missing", false)).is_err());
    }
}
