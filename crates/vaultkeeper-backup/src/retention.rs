//! Which backups to keep, which to delete, which abandoned uploads to abort.
//!
//! Pure decisions over an S3 listing; the clock is passed in. The rules, in order:
//! - only keys that parse exactly as this cluster's names are considered (never anything
//!   else under the prefix);
//! - a backup is *complete* when both its object and its manifest are listed;
//! - the newest complete backup is always kept, whatever its age: a cluster whose backups
//!   have been failing for a month still has its last good one;
//! - with `keep_last` and/or `max_age`, a complete backup is kept if either rule keeps it
//!   (the union: when in doubt, keep);
//! - an object without a manifest (an upload whose manifest write failed) is deleted only
//!   once a newer complete backup exists and it is older than the grace period; a manifest
//!   without an object (half of an interrupted deletion) likewise after the grace period;
//! - with no rule configured nothing is deleted.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use jiff::{SignedDuration, Timestamp};

use crate::naming::{BackupLocation, KeyKind, manifest_key};

/// How long an incomplete object or an orphaned manifest is left alone, in case the run
/// that wrote it is still going.
pub const INCOMPLETE_GRACE: SignedDuration = SignedDuration::from_hours(24);

/// Default age after which an unfinished multipart upload of ours is aborted.
pub const DEFAULT_STALE_UPLOAD_AFTER: SignedDuration = SignedDuration::from_hours(12);

/// One object from an S3 listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// One unfinished multipart upload from an S3 listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// Object key being uploaded.
    pub key: String,
    /// Multipart upload id.
    pub upload_id: String,
    /// When it was started, if S3 said.
    pub initiated: Option<Timestamp>,
}

/// The retention rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    /// Keep at least this many newest complete backups.
    pub keep_last: Option<NonZeroU32>,
    /// Keep every complete backup younger than this.
    pub max_age: Option<SignedDuration>,
}

impl RetentionPolicy {
    /// Whether any rule is configured.
    pub fn is_enabled(&self) -> bool {
        self.keep_last.is_some() || self.max_age.is_some()
    }
}

/// A complete backup: object and manifest both present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteBackup {
    /// When it was started.
    pub taken_at: Timestamp,
    /// Snapshot object key.
    pub object_key: String,
    /// Manifest key.
    pub manifest_key: String,
    /// Object size from the listing.
    pub size: u64,
}

/// Why a key is to be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionReason {
    /// A complete backup outside the retention rules.
    Expired,
    /// An object without manifest, superseded by a newer complete backup.
    Incomplete,
    /// A manifest whose object is gone.
    OrphanManifest,
}

/// One key to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The key.
    pub key: String,
    /// Why.
    pub reason: DeletionReason,
}

/// The outcome of [`plan_retention`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionPlan {
    /// Object keys of the complete backups kept, newest first.
    pub keep: Vec<String>,
    /// Keys to delete, in order. A backup's manifest comes before its object, so an
    /// interrupted deletion never leaves a manifest pointing at nothing that `latest`
    /// would pick.
    pub delete: Vec<Deletion>,
}

#[derive(Default)]
struct Pair {
    object_size: Option<u64>,
    manifest: bool,
}

fn pairs(
    listing: &[ListedObject],
    location: &BackupLocation,
) -> BTreeMap<(Timestamp, String), Pair> {
    let mut pairs: BTreeMap<(Timestamp, String), Pair> = BTreeMap::new();
    for object in listing {
        let Some(parsed) = location.parse(&object.key) else {
            continue;
        };
        let entry = pairs
            .entry((parsed.taken_at, parsed.object_key))
            .or_default();
        match parsed.kind {
            KeyKind::Object => entry.object_size = Some(object.size),
            KeyKind::Manifest => entry.manifest = true,
        }
    }
    pairs
}

/// This cluster's complete backups in a listing, newest first.
pub fn complete_backups(
    listing: &[ListedObject],
    location: &BackupLocation,
) -> Vec<CompleteBackup> {
    let mut complete: Vec<CompleteBackup> = pairs(listing, location)
        .into_iter()
        .filter_map(|((taken_at, object_key), pair)| match pair {
            Pair {
                object_size: Some(size),
                manifest: true,
            } => Some(CompleteBackup {
                taken_at,
                manifest_key: manifest_key(&object_key),
                object_key,
                size,
            }),
            _ => None,
        })
        .collect();
    complete.reverse();
    complete
}

/// Decides what to keep and what to delete.
pub fn plan_retention(
    listing: &[ListedObject],
    location: &BackupLocation,
    policy: &RetentionPolicy,
    now: Timestamp,
) -> RetentionPlan {
    let complete = complete_backups(listing, location);
    if !policy.is_enabled() {
        return RetentionPlan {
            keep: complete.into_iter().map(|b| b.object_key).collect(),
            delete: Vec::new(),
        };
    }
    let mut plan = RetentionPlan::default();
    for (index, backup) in complete.iter().enumerate() {
        let age = now.duration_since(backup.taken_at);
        let newest = index == 0;
        let within_count = policy.keep_last.is_some_and(|n| index < n.get() as usize);
        let within_age = policy.max_age.is_some_and(|max| age <= max);
        if newest || within_count || within_age {
            plan.keep.push(backup.object_key.clone());
        } else {
            plan.delete.push(Deletion {
                key: backup.manifest_key.clone(),
                reason: DeletionReason::Expired,
            });
            plan.delete.push(Deletion {
                key: backup.object_key.clone(),
                reason: DeletionReason::Expired,
            });
        }
    }
    let newest_complete = complete.first().map(|b| b.taken_at);
    for ((taken_at, object_key), pair) in pairs(listing, location) {
        let past_grace = now.duration_since(taken_at) > INCOMPLETE_GRACE;
        match pair {
            Pair {
                object_size: Some(_),
                manifest: false,
            } if past_grace && newest_complete.is_some_and(|n| n > taken_at) => {
                plan.delete.push(Deletion {
                    key: object_key,
                    reason: DeletionReason::Incomplete,
                });
            }
            Pair {
                object_size: None,
                manifest: true,
            } if past_grace => plan.delete.push(Deletion {
                key: manifest_key(&object_key),
                reason: DeletionReason::OrphanManifest,
            }),
            _ => {}
        }
    }
    plan
}

/// Unfinished multipart uploads of ours older than `stale_after`: left by a run that was
/// killed before it could abort them. Uploads of unknown age and foreign keys are left.
pub fn stale_uploads<'a>(
    uploads: &'a [PendingUpload],
    location: &BackupLocation,
    now: Timestamp,
    stale_after: SignedDuration,
) -> Vec<&'a PendingUpload> {
    uploads
        .iter()
        .filter(|u| {
            location
                .parse(&u.key)
                .is_some_and(|p| p.kind == KeyKind::Object)
                && u.initiated
                    .is_some_and(|started| now.duration_since(started) > stale_after)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc() -> BackupLocation {
        BackupLocation::new("bk", "vault").unwrap()
    }

    fn now() -> Timestamp {
        "2026-06-30T12:00:00Z".parse().unwrap()
    }

    /// A complete backup taken `days_ago` days before `now()`.
    fn complete(days_ago: i64) -> Vec<ListedObject> {
        let key = object_key(days_ago);
        vec![
            ListedObject {
                key: manifest_key(&key),
                size: 400,
            },
            ListedObject { key, size: 1000 },
        ]
    }

    fn object_key(days_ago: i64) -> String {
        loc().object_key(now() - SignedDuration::from_hours(24 * days_ago))
    }

    fn only_object(days_ago: i64) -> Vec<ListedObject> {
        vec![ListedObject {
            key: object_key(days_ago),
            size: 1000,
        }]
    }

    fn only_object_hours_ago(hours: i64) -> Vec<ListedObject> {
        vec![ListedObject {
            key: loc().object_key(now() - SignedDuration::from_hours(hours)),
            size: 1000,
        }]
    }

    fn only_manifest(days_ago: i64) -> Vec<ListedObject> {
        vec![ListedObject {
            key: manifest_key(&object_key(days_ago)),
            size: 400,
        }]
    }

    fn policy(keep_last: Option<u32>, max_age_days: Option<i64>) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: keep_last.and_then(NonZeroU32::new),
            max_age: max_age_days.map(|d| SignedDuration::from_hours(24 * d)),
        }
    }

    fn days_deleted(plan: &RetentionPlan) -> Vec<(i64, DeletionReason)> {
        let mut out = Vec::new();
        for d in &plan.delete {
            let parsed = loc().parse(&d.key).unwrap();
            let days = now().duration_since(parsed.taken_at).as_hours() / 24;
            if !out.contains(&(days, d.reason)) {
                out.push((days, d.reason));
            }
        }
        out
    }

    #[test]
    fn retention_table() {
        use DeletionReason::*;
        struct Row {
            case: &'static str,
            listing: Vec<Vec<ListedObject>>,
            policy: RetentionPolicy,
            deleted: Vec<(i64, DeletionReason)>,
        }
        let foreign = vec![
            ListedObject {
                key: "bk/vault/important-notes.txt".into(),
                size: 1,
            },
            ListedObject {
                key: "bk/vault/vault-prod-20200101T000000Z.vkb".into(),
                size: 1,
            },
            ListedObject {
                key: "bk/vault-prod/vault-prod-20200101T000000Z.vkb".into(),
                size: 1,
            },
            ListedObject {
                key: "elsewhere/vault/vault-20200101T000000Z.vkb".into(),
                size: 1,
            },
        ];
        let rows = vec![
            Row {
                case: "no rule: nothing deleted",
                listing: vec![complete(1), complete(100), only_object(200)],
                policy: policy(None, None),
                deleted: vec![],
            },
            Row {
                case: "keep last 2 of 4",
                listing: vec![complete(1), complete(2), complete(3), complete(4)],
                policy: policy(Some(2), None),
                deleted: vec![(3, Expired), (4, Expired)],
            },
            Row {
                case: "max age 7 days",
                listing: vec![complete(1), complete(6), complete(8), complete(30)],
                policy: policy(None, Some(7)),
                deleted: vec![(8, Expired), (30, Expired)],
            },
            Row {
                case: "both rules: kept if either keeps it",
                listing: vec![
                    complete(1),
                    complete(2),
                    complete(3),
                    complete(10),
                    complete(20),
                ],
                policy: policy(Some(4), Some(2)),
                deleted: vec![(20, Expired)],
            },
            Row {
                case: "the only backup is kept however old",
                listing: vec![complete(365)],
                policy: policy(None, Some(7)),
                deleted: vec![],
            },
            Row {
                case: "the newest good backup is kept when all are too old",
                listing: vec![complete(40), complete(50), complete(60)],
                policy: policy(None, Some(7)),
                deleted: vec![(50, Expired), (60, Expired)],
            },
            Row {
                case: "an incomplete newer object does not count as the good one",
                listing: vec![only_object(2), complete(40), complete(50)],
                policy: policy(Some(1), None),
                deleted: vec![(50, Expired)],
            },
            Row {
                case: "incomplete object older than a good one and past grace is removed",
                listing: vec![complete(1), only_object(3)],
                policy: policy(Some(5), None),
                deleted: vec![(3, Incomplete)],
            },
            Row {
                case: "incomplete object within grace is left (its run may be going), past grace removed",
                listing: vec![
                    complete(0),
                    only_object_hours_ago(30),
                    only_object_hours_ago(20),
                ],
                policy: policy(Some(5), None),
                deleted: vec![(1, Incomplete)],
            },
            Row {
                case: "orphan manifest past grace is removed",
                listing: vec![complete(1), only_manifest(5)],
                policy: policy(Some(5), None),
                deleted: vec![(5, OrphanManifest)],
            },
            Row {
                case: "foreign keys under the prefix are never touched",
                listing: vec![foreign.clone(), complete(1), complete(2)],
                policy: policy(Some(1), None),
                deleted: vec![(2, Expired)],
            },
            Row {
                case: "a backup from the future (clock skew) is kept",
                listing: vec![complete(-1), complete(1)],
                policy: policy(None, Some(7)),
                deleted: vec![],
            },
        ];
        for row in rows {
            let listing: Vec<ListedObject> = row.listing.into_iter().flatten().collect();
            let plan = plan_retention(&listing, &loc(), &row.policy, now());
            assert_eq!(days_deleted(&plan), row.deleted, "{}", row.case);
            for d in &plan.delete {
                assert!(
                    loc().parse(&d.key).is_some(),
                    "{}: deletes foreign {}",
                    row.case,
                    d.key
                );
            }
            if !complete_backups(&listing, &loc()).is_empty() {
                assert!(!plan.keep.is_empty(), "{}: no good backup kept", row.case);
            }
        }
    }

    #[test]
    fn a_manifest_is_deleted_before_its_object() {
        let listing: Vec<_> = [complete(1), complete(2)].concat();
        let plan = plan_retention(&listing, &loc(), &policy(Some(1), None), now());
        let keys: Vec<&str> = plan.delete.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                manifest_key(&object_key(2)).as_str(),
                object_key(2).as_str()
            ]
        );
        assert_eq!(plan.keep, vec![object_key(1)]);
    }

    #[test]
    fn complete_backups_are_newest_first_and_need_both_halves() {
        let listing: Vec<_> = [complete(3), only_object(1), complete(2), only_manifest(0)].concat();
        let found: Vec<String> = complete_backups(&listing, &loc())
            .into_iter()
            .map(|b| b.object_key)
            .collect();
        assert_eq!(found, vec![object_key(2), object_key(3)]);
    }

    #[test]
    fn stale_upload_table() {
        let hours_ago = |h: i64| Some(now() - SignedDuration::from_hours(h));
        let upload = |key: String, initiated| PendingUpload {
            key,
            upload_id: "id".into(),
            initiated,
        };
        let uploads = vec![
            upload(object_key(1), hours_ago(13)),
            upload(object_key(0), hours_ago(1)),
            upload(object_key(2), None),
            upload("bk/vault/someone-elses.bin".into(), hours_ago(100)),
        ];
        let stale = stale_uploads(&uploads, &loc(), now(), DEFAULT_STALE_UPLOAD_AFTER);
        assert_eq!(stale, vec![&uploads[0]]);
    }
}
