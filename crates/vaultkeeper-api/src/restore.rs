//! The `VaultRestore` custom resource: one explicit, audited restore of a backup into a
//! VaultCluster of the same namespace.
//!
//! A VaultRestore runs once. When it has Succeeded or Failed it is never run again, and a
//! later change to its spec changes nothing: create a new VaultRestore to restore again.
//! That keeps a destructive act from ever being repeated by a GitOps sync or an edit.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Restores a backup of a VaultCluster: takes the cluster's operation lock, verifies the
/// backup completely, restores it, swaps in the keys that open it and checks the result.
// Every printer column repeats `type_`, which the lint takes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "vaultkeeper.io",
    version = "v1alpha1",
    kind = "VaultRestore",
    namespaced,
    shortname = "vr",
    category = "vault",
    status = "VaultRestoreStatus",
    derive = "PartialEq",
    doc = "A one-shot restore of a VaultCluster from one of its backups.",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.clusterRef.name"
    ),
    printcolumn(name = "Source", type_ = "string", json_path = ".status.source"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VaultRestoreSpec {
    /// The VaultCluster to restore into, in the VaultRestore's own namespace. Its data is
    /// replaced by the backup's: everything written after the backup is lost.
    pub cluster_ref: ClusterRef,
    /// Which backup to restore.
    pub source: RestoreSource,
    /// Where the keys that open the backup come from, when the cluster's keys Secret does
    /// not hold them already (the cluster was re-initialized, or the backup is another
    /// cluster's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<RestoreKeys>,
}

/// A VaultCluster in the VaultRestore's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// Name of the VaultCluster.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Which backup: exactly one of `latest`, `object` or `pointInTime`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSource {
    /// The newest complete backup (object and manifest) of the source cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<bool>,
    /// One backup object key, as `status.backup.lastObject` of the VaultCluster or a
    /// listing of the bucket shows it (e.g. `prod/vault/vault-20260101T020000Z.vkb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The newest complete backup started at or before this time (RFC 3339, e.g.
    /// `2026-01-01T02:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<String>,
    /// The cluster whose backups to read, when it is not the target (by default the target
    /// itself). Its backups are read from the target's bucket and prefix. Restoring another
    /// cluster's backup also needs `allowForeignCluster: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_cluster: Option<FromCluster>,
    /// Says that restoring a backup taken from another cluster than the target is meant:
    /// the target's data and keys are replaced by that cluster's. Without it such a
    /// restore is refused before anything is changed.
    #[serde(default)]
    pub allow_foreign_cluster: bool,
}

/// The cluster a backup was taken from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FromCluster {
    /// Its namespace (the VaultRestore's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its VaultCluster name (the directory of its backups in the bucket).
    #[schemars(length(min = 1))]
    pub name: String,
}

/// The keys that open the backup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreKeys {
    /// A Secret in the VaultRestore's namespace holding the age identity
    /// (`AGE-SECRET-KEY-1...`) of one escrow recipient. The operator reads it only during
    /// this restore, to open the escrow object the backup names; it never logs or copies
    /// it. Delete the Secret when the restore has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow_identity_secret_ref: Option<IdentitySecretRef>,
}

/// A key inside a Secret in the VaultRestore's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// Where a VaultRestore is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RestorePhase {
    /// Accepted, waiting to start (e.g. for the cluster's operation lock).
    Pending,
    /// Under way: the cluster's lifecycle actions are paused.
    Running,
    /// Restored and verified. Final.
    Succeeded,
    /// Refused or failed; `message` says why and what to do. Final.
    Failed,
}

impl RestorePhase {
    /// Whether the restore is over and will never run again.
    pub fn is_final(self) -> bool {
        matches!(self, RestorePhase::Succeeded | RestorePhase::Failed)
    }
}

/// What a VaultRestore did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultRestoreStatus {
    /// Pending, Running, Succeeded or Failed. Succeeded and Failed are final: the
    /// restore never runs again, whatever its spec later says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The source as asked (`latest`, the object key or `pointInTime:<time>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The backup object restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_object: Option<String>,
    /// When that backup was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_time: Option<Time>,
    /// The restore endpoint used: `snapshot` or `snapshot-force`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The step reached; after an interruption the restore starts again from the top,
    /// every step being safe to repeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The Secret holding the keys record the cluster had before the swap, when the keys
    /// were swapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_keys_secret: Option<String>,
    /// What the check after the restore found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    /// When the restore started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// What happened, and on failure what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Complete` (True when Succeeded or Failed) and `Succeeded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One problem with a VaultRestore's spec: the field and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSpecError {
    /// The field, e.g. `spec.source`.
    pub field: &'static str,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl std::fmt::Display for RestoreSpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The backup a source asks for, once validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceChoice {
    /// The newest complete backup.
    Latest,
    /// One object key.
    Object(String),
    /// The newest complete backup started at or before this time.
    PointInTime(jiff::Timestamp),
}

impl SourceChoice {
    /// How status shows it.
    pub fn describe(&self) -> String {
        match self {
            SourceChoice::Latest => "latest".to_owned(),
            SourceChoice::Object(key) => key.clone(),
            SourceChoice::PointInTime(t) => format!("pointInTime:{t}"),
        }
    }
}

/// Checks a VaultRestore's spec in the namespace it lives in. Pure. Answers the chosen
/// source and the name of the cluster whose backups to read.
pub fn validate_restore(
    spec: &VaultRestoreSpec,
    namespace: &str,
) -> Result<(SourceChoice, String), RestoreSpecError> {
    let source = &spec.source;
    let mut chosen = Vec::new();
    if source.latest == Some(true) {
        chosen.push(SourceChoice::Latest);
    }
    if let Some(object) = &source.object {
        if object.trim().is_empty() {
            return Err(RestoreSpecError {
                field: "spec.source.object",
                message: "is empty: give a backup object key, or use latest: true".into(),
            });
        }
        chosen.push(SourceChoice::Object(object.clone()));
    }
    if let Some(text) = &source.point_in_time {
        let at: jiff::Timestamp = text.parse().map_err(|_| RestoreSpecError {
            field: "spec.source.pointInTime",
            message: format!("{text:?} is not an RFC 3339 time: write e.g. 2026-01-01T02:00:00Z"),
        })?;
        chosen.push(SourceChoice::PointInTime(at));
    }
    if chosen.len() != 1 {
        return Err(RestoreSpecError {
            field: "spec.source",
            message: format!(
                "names {} backups: set exactly one of latest: true, object or pointInTime",
                chosen.len()
            ),
        });
    }
    if spec.cluster_ref.name.trim().is_empty() {
        return Err(RestoreSpecError {
            field: "spec.clusterRef.name",
            message: "is empty: name the VaultCluster to restore into".into(),
        });
    }
    if let Some(keys) = &spec.keys
        && let Some(identity) = &keys.escrow_identity_secret_ref
        && (identity.name.trim().is_empty() || identity.key.trim().is_empty())
    {
        return Err(RestoreSpecError {
            field: "spec.keys.escrowIdentitySecretRef",
            message: "needs both name and key of the Secret holding the age identity".into(),
        });
    }
    let from = source.from_cluster.as_ref();
    let from_name = from.map_or(spec.cluster_ref.name.as_str(), |f| f.name.as_str());
    let from_namespace = from
        .and_then(|f| f.namespace.as_deref())
        .unwrap_or(namespace);
    let foreign = from_name != spec.cluster_ref.name || from_namespace != namespace;
    if foreign && !source.allow_foreign_cluster {
        return Err(RestoreSpecError {
            field: "spec.source.allowForeignCluster",
            message: format!(
                "the backup is of cluster {from_namespace}/{from_name}, the target is {namespace}/{}: \
                 restoring it replaces the target's data and keys with that cluster's; set \
                 allowForeignCluster: true if that is what you mean",
                spec.cluster_ref.name
            ),
        });
    }
    let choice = chosen.remove(0);
    Ok((choice, from_name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(source: RestoreSource) -> VaultRestoreSpec {
        VaultRestoreSpec {
            cluster_ref: ClusterRef {
                name: "vault".into(),
            },
            source,
            keys: None,
        }
    }

    #[test]
    fn exactly_one_source_is_accepted_and_a_foreign_one_needs_the_explicit_field() {
        let latest = RestoreSource {
            latest: Some(true),
            ..RestoreSource::default()
        };
        assert_eq!(
            validate_restore(&spec(latest.clone()), "ns").unwrap(),
            (SourceChoice::Latest, "vault".to_owned())
        );
        let none = RestoreSource::default();
        assert_eq!(
            validate_restore(&spec(none), "ns").unwrap_err().field,
            "spec.source"
        );
        let two = RestoreSource {
            latest: Some(true),
            object: Some("a/vault/x.vkb".into()),
            ..RestoreSource::default()
        };
        assert_eq!(
            validate_restore(&spec(two), "ns").unwrap_err().field,
            "spec.source"
        );
        let bad_time = RestoreSource {
            point_in_time: Some("yesterday".into()),
            ..RestoreSource::default()
        };
        assert_eq!(
            validate_restore(&spec(bad_time), "ns").unwrap_err().field,
            "spec.source.pointInTime"
        );
        let foreign = RestoreSource {
            from_cluster: Some(FromCluster {
                namespace: None,
                name: "other".into(),
            }),
            ..latest.clone()
        };
        let refused = validate_restore(&spec(foreign.clone()), "ns").unwrap_err();
        assert_eq!(refused.field, "spec.source.allowForeignCluster");
        assert!(refused.message.contains("ns/other"), "{refused}");
        let allowed = RestoreSource {
            allow_foreign_cluster: true,
            ..foreign
        };
        assert_eq!(
            validate_restore(&spec(allowed), "ns").unwrap().1,
            "other".to_owned()
        );
        let other_namespace = RestoreSource {
            from_cluster: Some(FromCluster {
                namespace: Some("elsewhere".into()),
                name: "vault".into(),
            }),
            ..latest
        };
        assert!(validate_restore(&spec(other_namespace), "ns").is_err());
    }
}
