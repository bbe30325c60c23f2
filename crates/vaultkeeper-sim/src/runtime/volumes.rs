//! Pod volumes: what each volume contains (a pure plan from the pod spec and the objects
//! the glue looked up) and writing it to the pod's directory on the host (the act).
//!
//! ConfigMap, Secret, projected and downward-API volumes are written the way the kubelet's
//! atomic writer writes them (a timestamped directory, a `..data` symlink to it, and one
//! symlink per top-level entry), with `items`, per-item `mode` and `defaultMode` applied;
//! they are mounted read-only. `emptyDir` is a fresh directory; a PersistentVolumeClaim is
//! the host directory the glue keeps for the claim, which outlives the pod. With
//! `fsGroup`, files are group-owned by it and made group-readable (read-only volumes) or
//! group-writable, directories get the setgid bit, exactly as the kubelet's
//! `SetVolumeOwnership` does.

use super::env::{FieldRefUse, field_ref_value, secret_data};
use super::error::{Result, RuntimeError};
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};
use secrecy::{ExposeSecret, SecretSlice};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The Kubernetes default for `defaultMode` (0644).
pub const DEFAULT_MODE: i32 = 0o644;

/// Service-account tokens the glue minted for this pod. The default token serves every
/// `serviceAccountToken` projection without an audience; an audience needs its own.
#[derive(Debug, Clone, Default)]
pub struct ServiceAccountTokens {
    /// Token for the API server's own audience.
    pub default: Option<SecretSlice<u8>>,
    /// Tokens for explicit audiences.
    pub by_audience: BTreeMap<String, SecretSlice<u8>>,
}

/// One file of a ConfigMap/Secret/projected/downward-API volume.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Path relative to the volume root, e.g. `tls.crt` or `nested/dir/file`.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Contents (possibly secret).
    pub contents: SecretSlice<u8>,
}

// Written by hand because secrets have no `==` of their own: the kubelet compares a
// volume's planned files with the ones on disk to decide whether to rewrite it.
impl PartialEq for PlannedFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
            && self.mode == other.mode
            && self.contents.expose_secret() == other.contents.expose_secret()
    }
}

impl Eq for PlannedFile {}

/// What a volume is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeContent {
    /// Files written by the atomic writer; always mounted read-only.
    Files(Vec<PlannedFile>),
    /// A fresh, world-writable directory (`emptyDir`).
    EmptyDir,
    /// The claim's host directory.
    Claim {
        /// The claim's name.
        claim: String,
        /// Host directory backing the claim.
        host_dir: PathBuf,
        /// `persistentVolumeClaim.readOnly`.
        read_only: bool,
    },
}

/// One volume of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    /// The volume's name in the spec.
    pub name: String,
    /// Its content.
    pub content: VolumeContent,
}

impl VolumePlan {
    /// True for volumes the kubelet always mounts read-only.
    pub fn always_read_only(&self) -> bool {
        matches!(self.content, VolumeContent::Files(_))
    }
}

/// What volume planning reads.
#[derive(Debug, Clone, Copy)]
pub struct VolumeInputs<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Pod IP (for completeness of downward-API resolution).
    pub pod_ip: IpAddr,
    /// Node IP.
    pub host_ip: IpAddr,
    /// ConfigMaps by name.
    pub config_maps: &'a BTreeMap<String, ConfigMap>,
    /// Secrets by name.
    pub secrets: &'a BTreeMap<String, Secret>,
    /// Claim name → host directory.
    pub claims: &'a BTreeMap<String, PathBuf>,
    /// Service-account tokens.
    pub tokens: &'a ServiceAccountTokens,
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// Checks an item path the way the kubelet does: relative, no `..` element, bounded.
pub fn validate_item_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("path must not be empty".to_string());
    }
    if path.starts_with('/') {
        return Err(format!("{path:?} must be a relative path"));
    }
    if path.len() > 4096 || path.split('/').any(|c| c.len() > 255) {
        return Err(format!("{path:?} is too long"));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("{path:?} must not contain '..'"));
    }
    if path.starts_with("..") {
        return Err(format!("{path:?} must not start with '..'"));
    }
    Ok(())
}

fn check_mode(mode: i32, field: &str) -> std::result::Result<u32, String> {
    if (0..=0o777).contains(&mode) {
        Ok(mode as u32)
    } else {
        Err(format!(
            "{field}: {mode} is not a valid file mode (0 to 0777 octal, 511 decimal)"
        ))
    }
}

/// Projects key/value data through `items` as the kubelet does.
fn project_items(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    optional: bool,
    kind: &str,
    field: &str,
    out: &mut Vec<PlannedFile>,
) -> std::result::Result<(), String> {
    match items {
        None => {
            for (key, value) in data {
                validate_item_path(key).map_err(|m| format!("{kind} key: {m}"))?;
                out.push(PlannedFile {
                    path: key.clone(),
                    mode: default_mode,
                    contents: SecretSlice::from(value.clone()),
                });
            }
        }
        Some(items) => {
            for (i, item) in items.iter().enumerate() {
                let Some(value) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!(
                        "{field}.items[{i}]: {kind} references non-existent key: {}",
                        item.key
                    ));
                };
                validate_item_path(&item.path)
                    .map_err(|m| format!("{field}.items[{i}].path: {m}"))?;
                let mode = match item.mode {
                    Some(m) => check_mode(m, &format!("{field}.items[{i}].mode"))?,
                    None => default_mode,
                };
                out.push(PlannedFile {
                    path: item.path.clone(),
                    mode,
                    contents: SecretSlice::from(value.clone()),
                });
            }
        }
    }
    Ok(())
}

fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        data.insert(k.clone(), v.0.clone());
    }
    data
}

fn downward_files(
    inputs: &VolumeInputs<'_>,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    field: &str,
    out: &mut Vec<PlannedFile>,
) -> std::result::Result<(), String> {
    for (i, item) in items.iter().enumerate() {
        validate_item_path(&item.path).map_err(|m| format!("{field}.items[{i}].path: {m}"))?;
        let value = if let Some(f) = &item.field_ref {
            field_ref_value(
                inputs.pod,
                inputs.pod_ip,
                inputs.host_ip,
                f,
                FieldRefUse::Volume,
            )
            .map_err(|m| format!("{field}.items[{i}].fieldRef: {m}"))?
        } else if item.resource_field_ref.is_some() {
            return Err(format!(
                "{field}.items[{i}].resourceFieldRef: not supported by the simulated kubelet"
            ));
        } else {
            return Err(format!(
                "{field}.items[{i}]: names neither fieldRef nor resourceFieldRef"
            ));
        };
        let mode = match item.mode {
            Some(m) => check_mode(m, &format!("{field}.items[{i}].mode"))?,
            None => default_mode,
        };
        out.push(PlannedFile {
            path: item.path.clone(),
            mode,
            contents: SecretSlice::from(value.into_bytes()),
        });
    }
    Ok(())
}

/// Plans every volume of the pod. A missing object or key that is not optional, an invalid
/// path or mode, or a volume type the simulation does not run is an error naming the
/// volume.
pub fn plan_volumes(inputs: &VolumeInputs<'_>) -> Result<Vec<VolumePlan>> {
    let pod = pod_name(inputs.pod);
    let volumes: &[Volume] = inputs
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    let mut plans = Vec::with_capacity(volumes.len());
    for (vi, volume) in volumes.iter().enumerate() {
        let field = format!("spec.volumes[{vi}]");
        let err = |message: String| RuntimeError::Volume {
            pod: pod.clone(),
            volume: volume.name.clone(),
            message,
        };
        let content = if let Some(cm) = &volume.config_map {
            let default_mode =
                check_mode(cm.default_mode.unwrap_or(DEFAULT_MODE), "defaultMode").map_err(err)?;
            let optional = cm.optional == Some(true);
            let mut files = Vec::new();
            match inputs.config_maps.get(&cm.name) {
                Some(obj) => project_items(
                    &config_map_data(obj),
                    cm.items.as_ref(),
                    default_mode,
                    optional,
                    "configmap",
                    &format!("{field}.configMap"),
                    &mut files,
                )
                .map_err(err)?,
                None if optional => {}
                None => return Err(err(format!("configmap {:?} not found", cm.name))),
            }
            VolumeContent::Files(files)
        } else if let Some(s) = &volume.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let default_mode =
                check_mode(s.default_mode.unwrap_or(DEFAULT_MODE), "defaultMode").map_err(err)?;
            let optional = s.optional == Some(true);
            let mut files = Vec::new();
            match inputs.secrets.get(&name) {
                Some(obj) => project_items(
                    &secret_data(obj),
                    s.items.as_ref(),
                    default_mode,
                    optional,
                    "secret",
                    &format!("{field}.secret"),
                    &mut files,
                )
                .map_err(err)?,
                None if optional => {}
                None => return Err(err(format!("secret {name:?} not found"))),
            }
            VolumeContent::Files(files)
        } else if let Some(d) = &volume.downward_api {
            let default_mode =
                check_mode(d.default_mode.unwrap_or(DEFAULT_MODE), "defaultMode").map_err(err)?;
            let mut files = Vec::new();
            downward_files(
                inputs,
                d.items.as_deref().unwrap_or_default(),
                default_mode,
                &format!("{field}.downwardAPI"),
                &mut files,
            )
            .map_err(err)?;
            VolumeContent::Files(files)
        } else if let Some(p) = &volume.projected {
            let default_mode =
                check_mode(p.default_mode.unwrap_or(DEFAULT_MODE), "defaultMode").map_err(err)?;
            let mut files = Vec::new();
            for (si, source) in p.sources.iter().flatten().enumerate() {
                let sfield = format!("{field}.projected.sources[{si}]");
                if let Some(cm) = &source.config_map {
                    let optional = cm.optional == Some(true);
                    match inputs.config_maps.get(&cm.name) {
                        Some(obj) => project_items(
                            &config_map_data(obj),
                            cm.items.as_ref(),
                            default_mode,
                            optional,
                            "configmap",
                            &format!("{sfield}.configMap"),
                            &mut files,
                        )
                        .map_err(err)?,
                        None if optional => {}
                        None => return Err(err(format!("configmap {:?} not found", cm.name))),
                    }
                } else if let Some(s) = &source.secret {
                    let optional = s.optional == Some(true);
                    match inputs.secrets.get(&s.name) {
                        Some(obj) => project_items(
                            &secret_data(obj),
                            s.items.as_ref(),
                            default_mode,
                            optional,
                            "secret",
                            &format!("{sfield}.secret"),
                            &mut files,
                        )
                        .map_err(err)?,
                        None if optional => {}
                        None => return Err(err(format!("secret {:?} not found", s.name))),
                    }
                } else if let Some(d) = &source.downward_api {
                    downward_files(
                        inputs,
                        d.items.as_deref().unwrap_or_default(),
                        default_mode,
                        &format!("{sfield}.downwardAPI"),
                        &mut files,
                    )
                    .map_err(err)?;
                } else if let Some(t) = &source.service_account_token {
                    validate_item_path(&t.path)
                        .map_err(|m| err(format!("{sfield}.serviceAccountToken.path: {m}")))?;
                    let token = match t.audience.as_deref() {
                        None | Some("") => inputs.tokens.default.clone(),
                        Some(aud) => inputs.tokens.by_audience.get(aud).cloned(),
                    };
                    let Some(token) = token else {
                        return Err(err(format!(
                            "{sfield}.serviceAccountToken: no token was issued for audience {:?}",
                            t.audience.as_deref().unwrap_or("")
                        )));
                    };
                    files.push(PlannedFile {
                        path: t.path.clone(),
                        mode: default_mode,
                        contents: token,
                    });
                } else if source.cluster_trust_bundle.is_some() {
                    return Err(RuntimeError::Unsupported {
                        pod: pod.clone(),
                        field: format!("{sfield}.clusterTrustBundle"),
                        what: "clusterTrustBundle projections".to_string(),
                    });
                } else {
                    return Err(err(format!("{sfield}: names no source")));
                }
            }
            VolumeContent::Files(files)
        } else if volume.empty_dir.is_some() {
            VolumeContent::EmptyDir
        } else if let Some(c) = &volume.persistent_volume_claim {
            let Some(host_dir) = inputs.claims.get(&c.claim_name) else {
                return Err(err(format!(
                    "persistentvolumeclaim {:?} has no volume on this node; the glue must \
                     provide a directory for every claim the pod uses",
                    c.claim_name
                )));
            };
            VolumeContent::Claim {
                claim: c.claim_name.clone(),
                host_dir: host_dir.clone(),
                read_only: c.read_only == Some(true),
            }
        } else {
            let kind = unsupported_kind(volume);
            return Err(RuntimeError::Unsupported {
                pod: pod.clone(),
                field: format!("{field}.{kind}"),
                what: format!("{kind} volumes"),
            });
        };
        plans.push(VolumePlan {
            name: volume.name.clone(),
            content,
        });
    }
    Ok(plans)
}

fn unsupported_kind(v: &Volume) -> &'static str {
    if v.host_path.is_some() {
        "hostPath"
    } else if v.ephemeral.is_some() {
        "ephemeral"
    } else if v.csi.is_some() {
        "csi"
    } else if v.nfs.is_some() {
        "nfs"
    } else if v.image.is_some() {
        "image"
    } else {
        "unknown"
    }
}

/// Writes a files volume in the atomic writer's layout under `dir` (which must exist and
/// be empty): `..<stamp>/<files>`, `..data -> ..<stamp>`, `<top> -> ..data/<top>`.
pub fn write_files_volume(dir: &Path, files: &[PlannedFile], stamp: &str) -> std::io::Result<()> {
    let data_dir_name = format!("..{stamp}");
    let data_dir = dir.join(&data_dir_name);
    std::fs::create_dir(&data_dir)?;
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755))?;
    let mut tops = std::collections::BTreeSet::new();
    for f in files {
        let target = data_dir.join(&f.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, f.contents.expose_secret())?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(f.mode))?;
        if let Some(top) = f.path.split('/').next() {
            tops.insert(top.to_string());
        }
    }
    std::os::unix::fs::symlink(&data_dir_name, dir.join("..data"))?;
    for top in tops {
        std::os::unix::fs::symlink(format!("..data/{top}"), dir.join(&top))?;
    }
    Ok(())
}

/// Replaces the content of a files volume written by [`write_files_volume`] the way the
/// kubelet's atomic writer updates a mounted ConfigMap or Secret: a new timestamped
/// directory, then one `rename` of a fresh `..data` symlink over the old one, so a reader
/// sees either the old or the new set of files, never a mix. Top-level links are added or
/// removed to match; the old directory goes last. Files mounted with `subPath` keep their
/// old content, as in Kubernetes. Afterwards `fs_group` (when set) is applied to the new
/// files.
pub fn update_files_volume(
    dir: &Path,
    files: &[PlannedFile],
    stamp: &str,
    fs_group: Option<u32>,
) -> std::io::Result<()> {
    let old_target = std::fs::read_link(dir.join("..data"))?;
    let data_dir_name = format!("..{stamp}");
    let data_dir = dir.join(&data_dir_name);
    std::fs::create_dir(&data_dir)?;
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755))?;
    let mut tops = std::collections::BTreeSet::new();
    for f in files {
        let target = data_dir.join(&f.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, f.contents.expose_secret())?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(f.mode))?;
        if let Some(top) = f.path.split('/').next() {
            tops.insert(top.to_string());
        }
    }
    if let Some(gid) = fs_group {
        apply_fs_group(&data_dir, gid, true, FsGroupPolicy::Always)?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&data_dir_name, &tmp)?;
    std::fs::rename(&tmp, dir.join("..data"))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    for top in tops {
        let link = dir.join(&top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{top}"), link)?;
        }
    }
    if old_target != Path::new(&data_dir_name) {
        std::fs::remove_dir_all(dir.join(old_target))?;
    }
    Ok(())
}

/// When to hand a volume to the pod's `fsGroup` (`fsGroupChangePolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsGroupPolicy {
    /// Always walk the volume (the default).
    Always,
    /// Only when the volume root does not already match.
    OnRootMismatch,
}

const RW_MASK: u32 = 0o660;
const RO_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;

/// The mode a file gets with `fsGroup`: the kubelet's masks, setgid on directories.
pub fn fs_group_mode(current: u32, is_dir: bool, read_only: bool) -> u32 {
    let mut mask = if read_only { RO_MASK } else { RW_MASK };
    if is_dir {
        mask |= EXEC_MASK | libc::S_ISGID;
    }
    (current & 0o7777) | mask
}

fn root_matches(dir: &Path, gid: u32, read_only: bool) -> bool {
    let Ok(meta) = std::fs::metadata(dir) else {
        return false;
    };
    let mode = meta.mode() & 0o7777;
    meta.gid() == gid && mode == fs_group_mode(mode, true, read_only)
}

/// Hands everything under `dir` to group `gid` as the kubelet's `SetVolumeOwnership` does.
pub fn apply_fs_group(
    dir: &Path,
    gid: u32,
    read_only: bool,
    policy: FsGroupPolicy,
) -> std::io::Result<()> {
    if policy == FsGroupPolicy::OnRootMismatch && root_matches(dir, gid, read_only) {
        return Ok(());
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        std::os::unix::fs::lchown(&path, None, Some(gid))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = fs_group_mode(meta.mode(), meta.is_dir(), read_only);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// The atomic writer's directory stamp for a time (`2026_01_02_03_04_05.123456789`).
pub fn data_dir_stamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y_%m_%d_%H_%M_%S.%f").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection, EmptyDirVolumeSource,
        HostPathVolumeSource, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodSpec,
        ProjectedVolumeSource, SecretVolumeSource, ServiceAccountTokenProjection, VolumeProjection,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(volumes: Vec<Volume>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("vault-0".into()),
                namespace: Some("vault".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(volumes),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn vol(name: &str) -> Volume {
        Volume {
            name: name.into(),
            ..Default::default()
        }
    }

    struct World {
        cms: BTreeMap<String, ConfigMap>,
        secrets: BTreeMap<String, Secret>,
        claims: BTreeMap<String, PathBuf>,
        tokens: ServiceAccountTokens,
    }

    fn world() -> World {
        let cms = [
            (
                "vault-config".to_string(),
                ConfigMap {
                    data: Some(
                        [(
                            "extraconfig-from-values.hcl".to_string(),
                            "ui = true".to_string(),
                        )]
                        .into_iter()
                        .collect(),
                    ),
                    ..Default::default()
                },
            ),
            (
                "kube-root-ca.crt".to_string(),
                ConfigMap {
                    data: Some(
                        [("ca.crt".to_string(), "CA PEM".to_string())]
                            .into_iter()
                            .collect(),
                    ),
                    ..Default::default()
                },
            ),
        ]
        .into_iter()
        .collect();
        let secrets = [(
            "vault-tls".to_string(),
            Secret {
                data: Some(
                    [
                        ("tls.crt".to_string(), ByteString(b"CERT".to_vec())),
                        ("tls.key".to_string(), ByteString(b"KEY".to_vec())),
                    ]
                    .into_iter()
                    .collect(),
                ),
                ..Default::default()
            },
        )]
        .into_iter()
        .collect();
        let claims = [(
            "data-vault-0".to_string(),
            PathBuf::from("/pv/data-vault-0"),
        )]
        .into_iter()
        .collect();
        let tokens = ServiceAccountTokens {
            default: Some(SecretSlice::from(b"jwt".to_vec())),
            by_audience: BTreeMap::new(),
        };
        World {
            cms,
            secrets,
            claims,
            tokens,
        }
    }

    fn plan(w: &World, volumes: Vec<Volume>) -> Result<Vec<VolumePlan>> {
        let p = pod(volumes);
        let ip: IpAddr = "127.22.0.10".parse().unwrap();
        plan_volumes(&VolumeInputs {
            pod: &p,
            pod_ip: ip,
            host_ip: ip,
            config_maps: &w.cms,
            secrets: &w.secrets,
            claims: &w.claims,
            tokens: &w.tokens,
        })
    }

    fn files(p: &VolumePlan) -> Vec<(String, u32, Vec<u8>)> {
        match &p.content {
            VolumeContent::Files(f) => f
                .iter()
                .map(|f| (f.path.clone(), f.mode, f.contents.expose_secret().to_vec()))
                .collect(),
            other => panic!("not files: {other:?}"),
        }
    }

    #[test]
    fn helm_chart_volumes_plan_as_the_kubelet_projects_them() {
        let w = world();
        let mut config = vol("config");
        config.config_map = Some(ConfigMapVolumeSource {
            name: "vault-config".into(),
            ..Default::default()
        });
        let mut tls = vol("userconfig-vault-tls");
        tls.secret = Some(SecretVolumeSource {
            secret_name: Some("vault-tls".into()),
            default_mode: Some(0o420),
            items: Some(vec![KeyToPath {
                key: "tls.key".into(),
                path: "private/tls.key".into(),
                mode: Some(0o400),
            }]),
            optional: None,
        });
        let mut data = vol("data");
        data.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
            claim_name: "data-vault-0".into(),
            read_only: None,
        });
        let mut scratch = vol("scratch");
        scratch.empty_dir = Some(EmptyDirVolumeSource::default());
        let mut sa = vol("kube-api-access-x");
        sa.projected = Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(3607),
                        audience: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: Some("v1".into()),
                                field_path: "metadata.namespace".into(),
                            }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
            ]),
        });
        let plans = plan(&w, vec![config, tls, data, scratch, sa]).unwrap();
        assert_eq!(
            files(&plans[0]),
            vec![(
                "extraconfig-from-values.hcl".into(),
                0o644,
                b"ui = true".to_vec()
            )]
        );
        assert_eq!(
            files(&plans[1]),
            vec![("private/tls.key".into(), 0o400, b"KEY".to_vec())]
        );
        assert_eq!(
            plans[2].content,
            VolumeContent::Claim {
                claim: "data-vault-0".into(),
                host_dir: "/pv/data-vault-0".into(),
                read_only: false
            }
        );
        assert_eq!(plans[3].content, VolumeContent::EmptyDir);
        assert_eq!(
            files(&plans[4]),
            vec![
                ("token".into(), 0o644, b"jwt".to_vec()),
                ("ca.crt".into(), 0o644, b"CA PEM".to_vec()),
                ("namespace".into(), 0o644, b"vault".to_vec()),
            ]
        );
        assert!(plans[1].always_read_only() && !plans[2].always_read_only());
        // Secret contents never show in a printed plan.
        assert!(!format!("{plans:?}").contains("KEY\""));
    }

    #[test]
    fn missing_objects_keys_and_unsupported_types_name_the_volume() {
        let w = world();
        let cases: Vec<(Volume, &str)> = vec![
            (
                {
                    let mut v = vol("c");
                    v.config_map = Some(ConfigMapVolumeSource {
                        name: "absent".into(),
                        ..Default::default()
                    });
                    v
                },
                "configmap \"absent\" not found",
            ),
            (
                {
                    let mut v = vol("s");
                    v.secret = Some(SecretVolumeSource {
                        secret_name: Some("vault-tls".into()),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        ..Default::default()
                    });
                    v
                },
                "references non-existent key: ca.crt",
            ),
            (
                {
                    let mut v = vol("s");
                    v.secret = Some(SecretVolumeSource {
                        secret_name: Some("vault-tls".into()),
                        items: Some(vec![KeyToPath {
                            key: "tls.crt".into(),
                            path: "../escape".into(),
                            mode: None,
                        }]),
                        ..Default::default()
                    });
                    v
                },
                "must not contain '..'",
            ),
            (
                {
                    let mut v = vol("s");
                    v.secret = Some(SecretVolumeSource {
                        secret_name: Some("vault-tls".into()),
                        default_mode: Some(0o1777),
                        ..Default::default()
                    });
                    v
                },
                "not a valid file mode",
            ),
            (
                {
                    let mut v = vol("d");
                    v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                        claim_name: "other".into(),
                        read_only: None,
                    });
                    v
                },
                "persistentvolumeclaim \"other\" has no volume",
            ),
            (
                {
                    let mut v = vol("h");
                    v.host_path = Some(HostPathVolumeSource {
                        path: "/etc".into(),
                        type_: None,
                    });
                    v
                },
                "hostPath volumes is not supported",
            ),
        ];
        for (volume, want) in cases {
            let name = volume.name.clone();
            let e = plan(&w, vec![volume]).unwrap_err().to_string();
            assert!(e.contains(want), "{name}: {e}");
            assert!(e.contains("vault/vault-0"), "{e}");
        }
        // Optional references to absent objects give an empty volume.
        let mut v = vol("opt");
        v.secret = Some(SecretVolumeSource {
            secret_name: Some("absent".into()),
            optional: Some(true),
            ..Default::default()
        });
        assert_eq!(files(&plan(&w, vec![v]).unwrap()[0]), vec![]);
    }

    #[test]
    fn fs_group_masks_match_the_kubelet() {
        let cases = [
            (0o400, false, true, 0o440),
            (0o644, false, true, 0o644),
            (0o600, false, false, 0o660),
            (0o755, true, false, 0o775 | libc::S_ISGID),
            (0o755, true, true, 0o755 | libc::S_ISGID),
            (0o700, true, true, 0o750 | libc::S_ISGID),
        ];
        for (current, dir, ro, want) in cases {
            assert_eq!(
                fs_group_mode(current, dir, ro),
                want,
                "{current:o} {dir} {ro}"
            );
        }
    }

    #[test]
    fn updating_a_files_volume_swaps_all_files_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = |path: &str, contents: &str| PlannedFile {
            path: path.into(),
            mode: 0o644,
            contents: SecretSlice::from(contents.as_bytes().to_vec()),
        };
        write_files_volume(
            dir.path(),
            &[file("tls.crt", "old cert"), file("old-only", "x")],
            "2026_01_01_00_00_00.1",
        )
        .unwrap();
        // A reader holding the old path keeps reading through `..data` after the swap.
        update_files_volume(
            dir.path(),
            &[file("tls.crt", "new cert"), file("ca.crt", "ca")],
            "2026_01_01_00_00_01.2",
            None,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("tls.crt")).unwrap(),
            "new cert"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ca.crt")).unwrap(),
            "ca"
        );
        assert!(std::fs::symlink_metadata(dir.path().join("old-only")).is_err());
        assert!(!dir.path().join("..2026_01_01_00_00_00.1").exists());
        assert!(!dir.path().join("..data_tmp").exists());
        assert_eq!(
            std::fs::read_link(dir.path().join("..data")).unwrap(),
            PathBuf::from("..2026_01_01_00_00_01.2")
        );
    }

    #[test]
    fn files_volume_uses_the_atomic_writer_layout() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            PlannedFile {
                path: "tls.crt".into(),
                mode: 0o644,
                contents: SecretSlice::from(b"CERT".to_vec()),
            },
            PlannedFile {
                path: "private/tls.key".into(),
                mode: 0o400,
                contents: SecretSlice::from(b"KEY".to_vec()),
            },
        ];
        write_files_volume(dir.path(), &files, "2026_01_02_03_04_05.000000001").unwrap();
        let link = std::fs::read_link(dir.path().join("..data")).unwrap();
        assert_eq!(link, PathBuf::from("..2026_01_02_03_04_05.000000001"));
        assert_eq!(
            std::fs::read_link(dir.path().join("private")).unwrap(),
            PathBuf::from("..data/private")
        );
        assert_eq!(
            std::fs::read(dir.path().join("private/tls.key")).unwrap(),
            b"KEY"
        );
        let mode = std::fs::metadata(dir.path().join("private/tls.key"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
    }

    #[test]
    fn a_printed_planned_file_hides_its_contents() {
        let f = PlannedFile {
            path: "tls.key".into(),
            mode: 0o600,
            contents: SecretSlice::from(b"PRIVATE KEY BYTES".to_vec()),
        };
        let printed = format!("{f:?}");
        assert!(
            printed.contains("tls.key") && printed.contains("REDACTED"),
            "{printed}"
        );
        assert!(!printed.contains("PRIVATE KEY BYTES"), "{printed}");
        assert!(
            !printed.contains(&format!("{:?}", b"PRIVATE KEY BYTES")),
            "{printed}"
        );
    }
}
