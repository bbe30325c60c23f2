//! Object names: where a cluster's backups live in the bucket, and how to tell ours apart.
//!
//! ```text
//! {prefix}{cluster}/{cluster}-{YYYYMMDDTHHMMSSZ}.vkb                 the encrypted snapshot
//! {prefix}{cluster}/{cluster}-{YYYYMMDDTHHMMSSZ}.vkb.manifest.json   its manifest
//! {prefix}escrow/{cluster}/{YYYYMMDDTHHMMSSZ}-{fingerprint[..16]}.age the escrowed keys
//! ```
//!
//! Escrowed key records (age-encrypted by the operator, see `docs/custody.md`) live in
//! their own directory, outside `{prefix}{cluster}/`, so retention never lists them: an
//! old backup needs the keys of its own time, so every escrow object is kept.
//!
//! Names sort by time (fixed-width UTC timestamps), carry the cluster name even when the
//! object is copied elsewhere, and one directory per cluster keeps clusters sharing a
//! bucket apart. Only keys that parse exactly are ours: retention never touches anything
//! else under the prefix. Pure: no clock (the time is passed in).

use jiff::Timestamp;
use jiff::fmt::strtime;

use crate::error::{Error, Result};

/// Suffix of an encrypted snapshot object.
pub const OBJECT_SUFFIX: &str = ".vkb";
/// Suffix of a manifest object (appended to the snapshot object's key).
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
const TIMESTAMP_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// Escrow objects' timestamps: to the millisecond (`20261206T044216.123Z`).
const ESCROW_TIMESTAMP_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";
const ESCROW_TIMESTAMP_LEN: usize = 20;
const TIMESTAMP_LEN: usize = 16;

/// Where one cluster's backups live: a bucket prefix and a cluster name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLocation {
    prefix: String,
    cluster: String,
}

/// What kind of object a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// An encrypted snapshot.
    Object,
    /// The manifest of an encrypted snapshot.
    Manifest,
}

/// A key that belongs to this location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    /// When the backup was started (second precision, UTC).
    pub taken_at: Timestamp,
    /// Snapshot or manifest.
    pub kind: KeyKind,
    /// The snapshot object's key (for a manifest: the key it describes).
    pub object_key: String,
}

impl BackupLocation {
    /// A location. `prefix` may be empty; a missing trailing `/` is added. `cluster` must be
    /// a DNS label (what Kubernetes allows as a VaultCluster name).
    pub fn new(prefix: &str, cluster: &str) -> Result<Self> {
        validate_cluster_name(cluster)?;
        if prefix.starts_with('/') {
            return Err(Error::InvalidArgument {
                field: "--prefix",
                reason: format!("{prefix:?} starts with '/'; S3 keys have no leading slash"),
            });
        }
        let mut prefix = prefix.to_owned();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Self {
            prefix,
            cluster: cluster.to_owned(),
        })
    }

    /// The cluster name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The normalised bucket prefix (empty or ending in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prefix to list to see this cluster's backups.
    pub fn list_prefix(&self) -> String {
        format!("{}{}/", self.prefix, self.cluster)
    }

    /// The snapshot object key for a backup started at `taken_at`.
    pub fn object_key(&self, taken_at: Timestamp) -> String {
        // Formatting a Timestamp with this pattern cannot fail; fall back to the
        // RFC 3339 form rather than panic if it ever did.
        let stamp =
            strtime::format(TIMESTAMP_FORMAT, taken_at).unwrap_or_else(|_| taken_at.to_string());
        format!(
            "{}{}-{stamp}{OBJECT_SUFFIX}",
            self.list_prefix(),
            self.cluster
        )
    }

    /// Parses `key`; `None` when it is not exactly one of our names.
    pub fn parse(&self, key: &str) -> Option<ParsedKey> {
        let rest = key.strip_prefix(&self.list_prefix())?;
        let rest = rest.strip_prefix(&self.cluster)?.strip_prefix('-')?;
        let (stamp, kind) = if let Some(stamp) = rest
            .strip_suffix(MANIFEST_SUFFIX)
            .and_then(|r| r.strip_suffix(OBJECT_SUFFIX))
        {
            (stamp, KeyKind::Manifest)
        } else {
            (rest.strip_suffix(OBJECT_SUFFIX)?, KeyKind::Object)
        };
        if stamp.len() != TIMESTAMP_LEN {
            return None;
        }
        let taken_at = strtime::parse(TIMESTAMP_FORMAT, stamp)
            .ok()?
            .to_datetime()
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp();
        // Only the canonical spelling is ours (no "2026013T..." that happens to parse).
        if self.object_key(taken_at) != key.strip_suffix(MANIFEST_SUFFIX).unwrap_or(key) {
            return None;
        }
        Some(ParsedKey {
            taken_at,
            kind,
            object_key: self.object_key(taken_at),
        })
    }
}

/// The manifest key of a snapshot object key.
pub fn manifest_key(object_key: &str) -> String {
    format!("{object_key}{MANIFEST_SUFFIX}")
}

/// Suffix of an escrowed key record (the age format).
pub const ESCROW_SUFFIX: &str = ".age";
/// Hex digits of the record's fingerprint in an escrow object's name.
pub const ESCROW_FINGERPRINT_LEN: usize = 16;

/// Where one cluster's escrowed key records live: `{prefix}escrow/{cluster}/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowLocation {
    backups: BackupLocation,
}

/// An escrow object key that belongs to a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowKey {
    /// When it was written.
    pub written_at: Timestamp,
    /// The first hex digits of the SHA-256 of the key record it holds.
    pub fingerprint_prefix: String,
}

impl EscrowLocation {
    /// The escrow location next to the backups of `cluster` under `prefix` (normalised as
    /// [`BackupLocation::new`] does).
    pub fn new(prefix: &str, cluster: &str) -> Result<Self> {
        Ok(Self {
            backups: BackupLocation::new(prefix, cluster)?,
        })
    }

    /// The prefix to list to see this cluster's escrow objects.
    pub fn list_prefix(&self) -> String {
        format!(
            "{}escrow/{}/",
            self.backups.prefix(),
            self.backups.cluster()
        )
    }

    /// The key of the record with (hex) `fingerprint`, written at `written_at` (to the
    /// millisecond: a new cluster writes two records within a second, and the name alone
    /// must say which is newer).
    pub fn object_key(&self, written_at: Timestamp, fingerprint: &str) -> String {
        let stamp = strtime::format(ESCROW_TIMESTAMP_FORMAT, written_at)
            .unwrap_or_else(|_| written_at.to_string());
        let short: String = fingerprint.chars().take(ESCROW_FINGERPRINT_LEN).collect();
        format!("{}{stamp}-{short}{ESCROW_SUFFIX}", self.list_prefix())
    }

    /// Parses `key`; `None` when it is not exactly one of our names.
    pub fn parse(&self, key: &str) -> Option<EscrowKey> {
        let rest = key
            .strip_prefix(&self.list_prefix())?
            .strip_suffix(ESCROW_SUFFIX)?;
        let (stamp, fingerprint) = rest.split_once('-')?;
        if stamp.len() != ESCROW_TIMESTAMP_LEN
            || fingerprint.len() != ESCROW_FINGERPRINT_LEN
            || !fingerprint
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let written_at = strtime::parse(ESCROW_TIMESTAMP_FORMAT, stamp)
            .ok()?
            .to_datetime()
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp();
        if self.object_key(written_at, fingerprint) != key {
            return None;
        }
        Some(EscrowKey {
            written_at,
            fingerprint_prefix: fingerprint.to_owned(),
        })
    }

    /// The newest of `keys` that is one of ours (names sort by time).
    pub fn newest<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
        keys.into_iter().filter(|k| self.parse(k).is_some()).max()
    }
}

fn validate_cluster_name(cluster: &str) -> Result<()> {
    let valid = !cluster.is_empty()
        && cluster.len() <= 63
        && cluster
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !cluster.starts_with('-')
        && !cluster.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            field: "--cluster-name",
            reason: format!(
                "{cluster:?} is not a DNS label (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit): use the VaultCluster's name"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escrow_names_sort_by_time_carry_the_fingerprint_and_stay_out_of_retention() {
        let loc = EscrowLocation::new("backups", "vault").unwrap();
        let fingerprint = "0123456789abcdef".repeat(4);
        let key = loc.object_key(at("2026-01-09T23:59:59Z"), &fingerprint);
        assert_eq!(
            key,
            "backups/escrow/vault/20260109T235959.000Z-0123456789abcdef.age"
        );
        let parsed = loc.parse(&key).unwrap();
        assert_eq!(parsed.written_at, at("2026-01-09T23:59:59Z"));
        assert_eq!(parsed.fingerprint_prefix, "0123456789abcdef");
        // Two records in one second (init, then the root token revoked): the name says
        // which is newer, whatever their fingerprints.
        let same_second = loc.object_key(at("2026-01-09T23:59:59.250Z"), &"0".repeat(64));
        assert_eq!(
            loc.newest([key.as_str(), same_second.as_str()]),
            Some(same_second.as_str())
        );
        let later = loc.object_key(at("2026-01-10T00:00:00Z"), &"f".repeat(64));
        assert_eq!(
            loc.newest([
                key.as_str(),
                later.as_str(),
                "backups/escrow/vault/notes.age"
            ]),
            Some(later.as_str())
        );
        // Not ours: another cluster, a bad fingerprint, another suffix, no prefix.
        for other in [
            "backups/escrow/vault2/20260109T235959.000Z-0123456789abcdef.age",
            "backups/escrow/vault/20260109T235959.000Z-0123456789ABCDEF.age",
            "backups/escrow/vault/20260109T235959.000Z-0123456789abcdef.age.bak",
            "escrow/vault/20260109T235959.000Z-0123456789abcdef.age",
            "backups/escrow/vault/20260109T235959Z-0123456789abcdef.age",
        ] {
            assert_eq!(loc.parse(other), None, "{other}");
        }
        // Retention of a cluster called "escrow" never sees another cluster's escrow.
        let backups = BackupLocation::new("backups", "escrow").unwrap();
        let escrow_of_vault = loc.object_key(at("2026-01-09T23:59:59Z"), &fingerprint);
        assert_eq!(backups.parse(&escrow_of_vault), None);
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn names_carry_cluster_and_sort_by_time() {
        let loc = BackupLocation::new("backups", "vault").unwrap();
        let early = loc.object_key(at("2026-01-09T23:59:59Z"));
        let late = loc.object_key(at("2026-01-10T00:00:00Z"));
        assert_eq!(early, "backups/vault/vault-20260109T235959Z.vkb");
        assert!(early < late);
        assert_eq!(
            manifest_key(&late),
            "backups/vault/vault-20260110T000000Z.vkb.manifest.json"
        );
    }

    #[test]
    fn parse_accepts_exactly_our_names() {
        let loc = BackupLocation::new("b/", "vault").unwrap();
        let t = at("2026-03-01T02:00:00Z");
        let object = loc.object_key(t);
        let table: Vec<(&str, String, Option<KeyKind>)> = vec![
            ("our object", object.clone(), Some(KeyKind::Object)),
            (
                "our manifest",
                manifest_key(&object),
                Some(KeyKind::Manifest),
            ),
            (
                "other cluster in its own dir",
                "b/vault-prod/vault-prod-20260301T020000Z.vkb".into(),
                None,
            ),
            (
                "other cluster with our prefix",
                "b/vault/vault-prod-20260301T020000Z.vkb".into(),
                None,
            ),
            ("a user's file", "b/vault/notes.txt".into(), None),
            (
                "wrong suffix",
                "b/vault/vault-20260301T020000Z.tar.gz".into(),
                None,
            ),
            (
                "short stamp",
                "b/vault/vault-2026031T020000Z.vkb".into(),
                None,
            ),
            (
                "impossible date",
                "b/vault/vault-20261301T020000Z.vkb".into(),
                None,
            ),
            (
                "outside the prefix",
                "other/vault/vault-20260301T020000Z.vkb".into(),
                None,
            ),
            (
                "nested deeper",
                "b/vault/x/vault-20260301T020000Z.vkb".into(),
                None,
            ),
        ];
        for (case, key, expected) in table {
            let parsed = loc.parse(&key);
            assert_eq!(parsed.as_ref().map(|p| p.kind), expected, "{case}: {key}");
            if let Some(p) = parsed {
                assert_eq!(p.taken_at, t, "{case}");
                assert_eq!(p.object_key, object, "{case}");
            }
        }
    }

    #[test]
    fn bad_cluster_names_and_prefixes_name_the_flag() {
        for bad in ["", "Vault", "-v", "v-", "a_b", &"x".repeat(64)] {
            let err = BackupLocation::new("", bad).unwrap_err();
            assert!(err.to_string().contains("--cluster-name"), "{err}");
        }
        let err = BackupLocation::new("/abs", "vault").unwrap_err();
        assert!(err.to_string().contains("--prefix"), "{err}");
        assert_eq!(BackupLocation::new("", "v").unwrap().list_prefix(), "v/");
    }
}
