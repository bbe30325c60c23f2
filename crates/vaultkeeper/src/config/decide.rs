//! The decisions of a configuration pass, without I/O: who owns a Vault name when several
//! resources ask for it, what a difference between the spec and Vault is called, and the
//! status that says how a pass ended. Tested by tables below.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use vaultkeeper_api::ConfigStatus;

/// The condition every configuration resource reports.
pub(crate) const SYNCED: &str = "Synced";

/// How a pass over one resource ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Vault holds what the spec says, at `path`.
    Synced { path: String },
    /// Nothing was applied: `reason` (CamelCase) and a sentence naming the field and the
    /// fix. `path` is what the resource still manages in Vault, if anything.
    NotSynced {
        reason: &'static str,
        message: String,
        path: Option<String>,
    },
}

impl Outcome {
    /// A refusal or failure that leaves what the resource manages as recorded.
    pub(crate) fn failed(reason: &'static str, message: String, path: Option<String>) -> Self {
        Outcome::NotSynced {
            reason,
            message,
            path,
        }
    }
}

/// One resource in the contest for a Vault name: (created at, namespace, name).
pub(crate) type Claim = (Option<jiff::Timestamp>, String, String);

/// Of several admitted resources asking for the same Vault object, the oldest owns it
/// (ties broken by namespace, then name), so the owner never changes because another
/// resource appeared later. Answers the owner among `claims`.
pub(crate) fn owner(claims: &[Claim]) -> Option<&Claim> {
    claims.iter().min_by(|a, b| {
        // A missing creation time (never expected from an API server) sorts last.
        let key = |c: &Claim| (c.0.is_none(), c.0, c.1.clone(), c.2.clone());
        key(a).cmp(&key(b))
    })
}

/// What differs between the text in Vault and the spec, for an Event: how many lines
/// were added and removed, and the first line that differs.
pub(crate) fn describe_change(current: &str, desired: &str) -> String {
    let old: Vec<&str> = current.lines().collect();
    let new: Vec<&str> = desired.lines().collect();
    let removed = old.iter().filter(|l| !new.contains(l)).count();
    let added = new.iter().filter(|l| !old.contains(l)).count();
    let first = old
        .iter()
        .zip(new.iter())
        .position(|(a, b)| a != b)
        .unwrap_or(old.len().min(new.len()));
    let mut text =
        format!("{added} line(s) differed from the spec, {removed} line(s) were not in it");
    if let Some(line) = old.get(first) {
        let line: String = line.trim().chars().take(120).collect();
        text.push_str(&format!(
            "; first difference at line {}: {line:?}",
            first + 1
        ));
    }
    text
}

/// The status after a pass: `previous` carried forward where nothing changed (the
/// transition time of an unchanged condition, the last sync time).
pub(crate) fn status(
    previous: Option<&ConfigStatus>,
    generation: Option<i64>,
    outcome: &Outcome,
    now: jiff::Timestamp,
) -> ConfigStatus {
    let (state, reason, message, path, synced_at) = match outcome {
        Outcome::Synced { path } => (
            "True",
            "Synced",
            format!("Vault holds {path} as the spec says"),
            Some(path.clone()),
            Some(Time(now)),
        ),
        Outcome::NotSynced {
            reason,
            message,
            path,
        } => (
            "False",
            *reason,
            message.clone(),
            path.clone(),
            previous.and_then(|p| p.last_synced_time.clone()),
        ),
    };
    let before = previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == SYNCED));
    let transition = before
        .filter(|c| c.status == state)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    ConfigStatus {
        observed_generation: generation,
        vault_path: path,
        last_synced_time: synced_at,
        last_error: (state == "False").then(|| message.clone()),
        conditions: vec![Condition {
            type_: SYNCED.to_owned(),
            status: state.to_owned(),
            reason: reason.to_owned(),
            message,
            last_transition_time: transition,
            observed_generation: generation,
        }],
    }
}

/// Whether two statuses say the same thing (the sync time aside, so a pass that found
/// nothing changed does not write).
pub(crate) fn same_status(a: &ConfigStatus, b: &ConfigStatus) -> bool {
    let strip = |s: &ConfigStatus| ConfigStatus {
        last_synced_time: None,
        ..s.clone()
    };
    strip(a) == strip(b)
}

/// Whether the previous pass ended with the same failure (so its Warning is not repeated
/// on every resync).
pub(crate) fn same_failure(
    previous: Option<&ConfigStatus>,
    generation: Option<i64>,
    outcome: &Outcome,
) -> bool {
    let Outcome::NotSynced {
        reason, message, ..
    } = outcome
    else {
        return false;
    };
    previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == SYNCED))
        .is_some_and(|c| {
            c.status == "False"
                && c.reason == *reason
                && c.message == *message
                && c.observed_generation == generation
        })
}

/// Whether Vault last matched this very generation: a difference found now was made in
/// Vault (drift), not asked for by a new spec.
pub(crate) fn was_synced_at(previous: Option<&ConfigStatus>, generation: Option<i64>) -> bool {
    previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == SYNCED))
        .is_some_and(|c| c.status == "True" && c.observed_generation == generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Option<jiff::Timestamp> {
        jiff::Timestamp::from_second(seconds).ok()
    }

    #[test]
    fn the_oldest_claim_owns_the_name_whatever_the_order() {
        let a: Claim = (at(100), "team-b".into(), "p".into());
        let b: Claim = (at(200), "team-a".into(), "p".into());
        let c: Claim = (at(100), "team-a".into(), "z".into());
        let none: Claim = (None, "team-0".into(), "p".into());
        for claims in [
            vec![a.clone(), b.clone(), c.clone(), none.clone()],
            vec![none.clone(), b.clone(), c.clone(), a.clone()],
        ] {
            assert_eq!(owner(&claims), Some(&c));
        }
        assert_eq!(owner(&[b.clone(), none.clone()]), Some(&b));
        assert_eq!(owner(&[]), None);
    }

    #[test]
    fn a_change_is_described_by_counts_and_the_first_differing_line() {
        let spec = "path \"a\" {\n  capabilities = [\"read\"]\n}\n";
        let hand = "path \"a\" {\n  capabilities = [\"read\", \"update\"]\n}\n";
        let text = describe_change(hand, spec);
        assert!(
            text.starts_with("1 line(s) differed from the spec, 1 line(s)"),
            "{text}"
        );
        assert!(text.contains("line 2") && text.contains("update"), "{text}");
        let text = describe_change("", spec);
        assert!(text.starts_with("3 line(s)"), "{text}");
    }

    #[test]
    fn status_keeps_the_transition_time_of_an_unchanged_condition() {
        let t0 = jiff::Timestamp::from_second(1_000).unwrap_or_default();
        let t1 = jiff::Timestamp::from_second(2_000).unwrap_or_default();
        let synced = Outcome::Synced {
            path: "sys/policy/a".into(),
        };
        let first = status(None, Some(1), &synced, t0);
        assert_eq!(first.conditions[0].status, "True");
        assert_eq!(first.vault_path.as_deref(), Some("sys/policy/a"));
        assert_eq!(first.last_error, None);
        let again = status(Some(&first), Some(1), &synced, t1);
        assert_eq!(again.conditions[0].last_transition_time, Time(t0));
        assert!(same_status(&first, &again));
        assert!(was_synced_at(Some(&again), Some(1)));
        assert!(!was_synced_at(Some(&again), Some(2)));

        let refused = Outcome::failed(
            "VaultRejected",
            "spec.policy: bad".into(),
            again.vault_path.clone(),
        );
        let failed = status(Some(&again), Some(2), &refused, t1);
        assert_eq!(failed.conditions[0].status, "False");
        assert_eq!(failed.conditions[0].last_transition_time, Time(t1));
        assert_eq!(failed.last_error.as_deref(), Some("spec.policy: bad"));
        assert_eq!(failed.vault_path.as_deref(), Some("sys/policy/a"));
        assert_eq!(
            failed.last_synced_time,
            Some(Time(t1)),
            "kept from the last sync"
        );
        assert!(same_failure(Some(&failed), Some(2), &refused));
        assert!(!same_failure(Some(&failed), Some(3), &refused));
        assert!(!same_failure(Some(&again), Some(2), &refused));
    }
}
