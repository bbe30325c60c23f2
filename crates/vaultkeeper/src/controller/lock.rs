//! The operation lock: `status.operation` says which disruptive operation runs on a
//! cluster, who runs it and since when, and nothing disruptive happens without holding
//! it. Rolling updates and scale-downs take it in the pass; rekey and restore take it
//! through [`acquire`] and give it back through [`release`].
//!
//! The rules ([`decide`], pure):
//! 1. Taken, changed and released only with a status write that carries the
//!    resourceVersion this replica read: a concurrent change (409) means someone else
//!    moved first, so the caller re-reads and does not act.
//! 2. One kind at a time. A holder that wants another kind releases first; the next
//!    pass takes the new kind.
//! 3. A lock whose holder is another replica is stale once this replica has led without
//!    interruption for `stale_after` (the lease duration): the other replica's fence
//!    closed before this one could take the Lease, so it no longer acts. The leader then
//!    takes it over, with a Warning Event. Times are measured on this replica's clock,
//!    never by comparing `startedAt` (another replica's clock) with it.
//! 4. Break-glass: the annotation `vaultkeeper.io/break-lock: <holder>` clears a lock
//!    held by `<holder>` once, with an Event; the annotation is then removed.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use vaultkeeper_api::{OperationKind, OperationStatus, VaultCluster};

use super::context::Context;
use super::error::{Error, kube_err};
use super::events::EventSpec;
use crate::leader::Fenced;

/// The annotation a person sets to break a lock: its value names the holder.
pub const BREAK_LOCK_ANNOTATION: &str = "vaultkeeper.io/break-lock";

/// Proof that this replica holds the lock for `kind`; give it to [`release`].
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// The operation.
    pub kind: OperationKind,
    /// The lock as status records it.
    pub operation: OperationStatus,
    /// The VaultCluster's resourceVersion after the lock was written (or as read when
    /// nothing had to be written): later status writes of the same pass carry it.
    pub resource_version: Option<String>,
}

/// Why the lock was not taken: do not act.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Busy {
    /// This replica does not lead (any more).
    #[error(transparent)]
    Fenced(#[from] Fenced),
    /// Another operation holds it.
    #[error("the operation lock is held by {holder} for {kind:?}")]
    HeldBy {
        /// The holder (empty when the lock names none).
        holder: String,
        /// Its operation.
        kind: OperationKind,
    },
    /// The VaultCluster changed since it was read: read it again.
    #[error("the VaultCluster changed since it was read; the next pass reads it again")]
    Conflict,
    /// The write failed.
    #[error("writing the operation lock: {0}")]
    Write(String),
}

/// What to do about the lock. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// No lock, none wanted.
    Nothing,
    /// Ours, for the wanted kind: keep it.
    Keep,
    /// Free: take it for the wanted kind.
    Take(OperationKind),
    /// Stale (its holder no longer leads): take it over, for `then` or to clear it.
    TakeOver {
        from: String,
        then: Option<OperationKind>,
    },
    /// Ours, no longer wanted (or another kind is wanted next): give it back.
    Release,
    /// A person asked to break it.
    Break { holder: String },
    /// Held elsewhere, or by one of our operations the caller does not manage.
    Wait { holder: String, kind: OperationKind },
}

/// Decides about the lock. `current` is the lock as read; `wanted` the kind the caller
/// would run (`None`: nothing); `managed` the kinds the caller takes and gives back
/// itself; `led_for` how long this replica has led without interruption.
pub(crate) fn decide(
    current: Option<&OperationStatus>,
    wanted: Option<OperationKind>,
    managed: &[OperationKind],
    identity: &str,
    led_for: Duration,
    stale_after: Duration,
    break_lock: Option<&str>,
) -> Step {
    let Some(op) = current else {
        return wanted.map_or(Step::Nothing, Step::Take);
    };
    let holder = op.holder.clone().unwrap_or_default();
    if break_lock.is_some_and(|b| b == holder) {
        return Step::Break { holder };
    }
    if holder == identity {
        if !managed.contains(&op.kind) {
            return match wanted {
                Some(_) => Step::Wait {
                    holder,
                    kind: op.kind,
                },
                None => Step::Nothing,
            };
        }
        return if wanted == Some(op.kind) {
            Step::Keep
        } else {
            Step::Release
        };
    }
    // A stale restore lock is taken over only by the restore controller, which resumes the
    // restore (every step repeats safely); a pass would clear it and roll pods in the
    // middle of a half-done restore.
    if op.kind == OperationKind::Restore && !managed.contains(&OperationKind::Restore) {
        return match wanted {
            Some(_) => Step::Wait {
                holder,
                kind: op.kind,
            },
            None => Step::Nothing,
        };
    }
    if led_for >= stale_after {
        return Step::TakeOver {
            from: holder,
            then: wanted,
        };
    }
    match wanted {
        Some(_) => Step::Wait {
            holder,
            kind: op.kind,
        },
        None => Step::Nothing,
    }
}

/// The lock as a pass leaves it.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// The operation the pass may carry out now (the lock is ours for it).
    pub(crate) held: Option<Held>,
    /// The lock as status must show it afterwards (before this pass's detail).
    pub(crate) operation: Option<OperationStatus>,
    /// The resourceVersion the status write of this pass carries.
    pub(crate) resource_version: Option<String>,
    /// Why the wanted operation waits, when it does.
    pub(crate) waiting: Option<String>,
    /// The VaultCluster changed since the pass read it: write nothing more this pass.
    pub(crate) conflict: bool,
    /// Events to publish.
    pub(crate) events: Vec<EventSpec>,
}

/// The kinds the pass itself takes and releases.
const PASS_KINDS: [OperationKind; 3] = [
    OperationKind::RollingUpdate,
    OperationKind::ScaleDown,
    OperationKind::NodeReset,
];

/// The kinds the pass takes and releases for `vc`: rolling updates, scale-downs and node
/// resets, and
/// the key rotations when the spec asks for them (`spec.keys.rotation`: the pass plans
/// them). Without that field a Rekey lock belongs to whoever took it through [`acquire`].
fn pass_kinds(vc: &VaultCluster) -> Vec<OperationKind> {
    let mut kinds = PASS_KINDS.to_vec();
    if vc.spec.keys.rotation.is_some() {
        kinds.push(OperationKind::Rekey);
    }
    kinds
}

/// Settles the lock for a pass that wants `wanted` (with its start time and detail).
pub(crate) async fn gate(
    ctx: &Context,
    vc: &VaultCluster,
    wanted: Option<&OperationStatus>,
    now: jiff::Timestamp,
) -> Result<Gate, Error> {
    let current = vc.status.as_ref().and_then(|s| s.operation.as_ref());
    let fence = ctx.fence();
    let break_lock = vc.annotations().get(BREAK_LOCK_ANNOTATION).cloned();
    let step = decide(
        current,
        wanted.map(|w| w.kind),
        &pass_kinds(vc),
        fence.identity(),
        fence.led_for(),
        ctx.lock_stale_after(),
        break_lock.as_deref(),
    );
    let mut gate = Gate {
        operation: current.cloned(),
        resource_version: vc.metadata.resource_version.clone(),
        ..Gate::default()
    };
    let ours = |kind: OperationKind| OperationStatus {
        kind,
        started_at: wanted
            .filter(|w| w.kind == kind)
            .map_or(Time(now), |w| w.started_at.clone()),
        detail: wanted.and_then(|w| w.detail.clone()),
        holder: Some(fence.identity().to_owned()),
    };
    let new = match &step {
        Step::Nothing => return Ok(gate),
        Step::Wait { holder, kind } => {
            gate.waiting = Some(format!(
                "the operation lock: {kind:?} held by {}",
                if holder.is_empty() {
                    "nobody named"
                } else {
                    holder
                }
            ));
            return Ok(gate);
        }
        Step::Keep => {
            let kind = current.map(|c| c.kind);
            gate.held = kind.map(|kind| Held {
                kind,
                operation: current.cloned().unwrap_or_else(|| ours(kind)),
                resource_version: gate.resource_version.clone(),
            });
            return Ok(gate);
        }
        Step::Take(kind) => Some(ours(*kind)),
        Step::TakeOver { then, .. } => then.map(ours),
        Step::Release | Step::Break { .. } => None,
    };
    // Everything below writes the lock: only while this replica leads.
    if let Err(fenced) = fence.check() {
        gate.waiting = Some(fenced.to_string());
        return Ok(gate);
    }
    match write_lock(ctx, vc, gate.resource_version.as_deref(), new.as_ref()).await {
        Ok(version) => gate.resource_version = version,
        Err(Busy::Conflict) => {
            gate.waiting = Some(Busy::Conflict.to_string());
            // Nothing more is written this pass: the next one reads the new state.
            gate.conflict = true;
            return Ok(gate);
        }
        Err(e) => return Err(Error::Lock(e.to_string())),
    }
    // Published now, not with the pass's other Events: a pass that fails later must not
    // lose the record of a lock taken over or broken.
    let mut published = Vec::new();
    match &step {
        Step::TakeOver { from, .. } => published.push(EventSpec::warning(
            "OperationLockTakenOver",
            format!(
                "took over the operation lock ({:?}) from {}, which no longer leads: this replica has led for {} s",
                current.map(|c| c.kind).unwrap_or(OperationKind::RollingUpdate),
                if from.is_empty() { "an unnamed holder" } else { from },
                fence.led_for().as_secs()
            ),
        )),
        Step::Break { holder } => {
            published.push(EventSpec::normal(
                "OperationLockBroken",
                format!(
                    "broke the operation lock ({:?}) held by {holder}, as the annotation {BREAK_LOCK_ANNOTATION} asked",
                    current.map(|c| c.kind).unwrap_or(OperationKind::RollingUpdate),
                ),
            ));
            remove_break_annotation(ctx, vc).await;
        }
        _ => {}
    }
    for event in &published {
        ctx.publish(vc, event).await;
    }
    gate.held = new.clone().map(|operation| Held {
        kind: operation.kind,
        operation,
        resource_version: gate.resource_version.clone(),
    });
    // A released or broken lock is not taken again in the same pass: the next pass does.
    gate.operation = new;
    Ok(gate)
}

/// Takes the lock for `kind` (rekey, restore) on the VaultCluster as read, unless another
/// operation holds it or this replica does not lead. The caller checks `ctx.fence()`
/// again right before each disruptive step, and gives the lock back with [`release`].
pub async fn acquire(
    ctx: &Context,
    vc: &VaultCluster,
    kind: OperationKind,
    detail: Option<String>,
) -> Result<Held, Busy> {
    let fence = ctx.fence();
    fence.check()?;
    let current = vc.status.as_ref().and_then(|s| s.operation.as_ref());
    let step = decide(
        current,
        Some(kind),
        &[kind],
        fence.identity(),
        fence.led_for(),
        ctx.lock_stale_after(),
        None,
    );
    let rv = vc.metadata.resource_version.clone();
    let operation = OperationStatus {
        kind,
        started_at: Time(jiff::Timestamp::now()),
        detail,
        holder: Some(fence.identity().to_owned()),
    };
    match step {
        Step::Keep => Ok(Held {
            kind,
            operation: current.cloned().unwrap_or(operation),
            resource_version: rv,
        }),
        Step::Take(_) | Step::TakeOver { .. } => {
            let version = write_lock(ctx, vc, rv.as_deref(), Some(&operation)).await?;
            if let Step::TakeOver { from, .. } = step {
                ctx.publish(
                    vc,
                    &EventSpec::warning(
                        "OperationLockTakenOver",
                        format!("took over the operation lock for {kind:?} from {from}, which no longer leads"),
                    ),
                )
                .await;
            }
            Ok(Held {
                kind,
                operation,
                resource_version: version,
            })
        }
        Step::Wait { holder, kind } => Err(Busy::HeldBy { holder, kind }),
        // `wanted` is `Some` and nothing breaks here: these do not occur; refusing is safe.
        Step::Nothing | Step::Release | Step::Break { .. } => Err(Busy::Conflict),
    }
}

/// Gives the lock back: reads the VaultCluster again and clears the lock when it is still
/// `held` (same holder and kind), with the resourceVersion it read; a conflict is retried.
pub async fn release(ctx: &Context, vc: &VaultCluster, held: Held) -> Result<(), Error> {
    let api: Api<VaultCluster> =
        Api::namespaced(ctx.client.clone(), &vc.namespace().unwrap_or_default());
    for _ in 0..5 {
        let live = api
            .get(&vc.name_any())
            .await
            .map_err(kube_err("reading the VaultCluster to release the lock"))?;
        let current = live.status.as_ref().and_then(|s| s.operation.as_ref());
        let still_ours = current.is_some_and(|c| {
            c.kind == held.kind && c.holder.as_deref() == Some(ctx.fence().identity())
        });
        if !still_ours {
            return Ok(());
        }
        match write_lock(ctx, &live, live.metadata.resource_version.as_deref(), None).await {
            Ok(_) => return Ok(()),
            Err(Busy::Conflict) => continue,
            Err(e) => return Err(Error::Lock(e.to_string())),
        }
    }
    Err(Error::Lock(
        "the VaultCluster kept changing while the lock was released; it is released by the next pass"
            .into(),
    ))
}

/// Writes `operation` (null: cleared) into the status, with `resource_version` as the
/// precondition. The new resourceVersion on success.
async fn write_lock(
    ctx: &Context,
    vc: &VaultCluster,
    resource_version: Option<&str>,
    operation: Option<&OperationStatus>,
) -> Result<Option<String>, Busy> {
    let api: Api<VaultCluster> =
        Api::namespaced(ctx.client.clone(), &vc.namespace().unwrap_or_default());
    let operation = serde_json::to_value(operation).map_err(|e| Busy::Write(e.to_string()))?;
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": resource_version },
        "status": { "operation": operation },
    });
    let name = vc.name_any();
    let params = PatchParams::default();
    let patch = Patch::Merge(&patch);
    match crate::apply::with_retries_keeping_conflicts(|| api.patch_status(&name, &params, &patch))
        .await
    {
        Ok(written) => Ok(written.metadata.resource_version),
        Err(kube::Error::Api(status)) if status.code == 409 => Err(Busy::Conflict),
        Err(e) => Err(Busy::Write(e.to_string())),
    }
}

/// Removes the break-glass annotation once it was honoured (a failure is only logged:
/// the annotation names a holder that no longer holds anything).
async fn remove_break_annotation(ctx: &Context, vc: &VaultCluster) {
    let api: Api<VaultCluster> =
        Api::namespaced(ctx.client.clone(), &vc.namespace().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {"annotations": {BREAK_LOCK_ANNOTATION: null}}});
    if let Err(e) = api
        .patch(
            &vc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        tracing::warn!(error = %e, "cannot remove the break-lock annotation");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OperationKind, holder: &str) -> OperationStatus {
        OperationStatus {
            kind,
            started_at: Time(jiff::Timestamp::UNIX_EPOCH),
            detail: None,
            holder: (!holder.is_empty()).then(|| holder.to_owned()),
        }
    }

    const ROLL: OperationKind = OperationKind::RollingUpdate;
    const SCALE: OperationKind = OperationKind::ScaleDown;
    const REKEY: OperationKind = OperationKind::Rekey;

    #[test]
    fn a_stale_restore_lock_is_taken_over_only_by_the_restore_controller() {
        let restore = OperationKind::Restore;
        let stale = Duration::from_secs(15);
        let held = op(restore, "b");
        // A pass (rolling updates, scale-downs) waits, however long this replica led.
        assert_eq!(
            decide(
                Some(&held),
                Some(ROLL),
                &PASS_KINDS,
                "a",
                Duration::from_secs(600),
                stale,
                None
            ),
            Step::Wait {
                holder: "b".into(),
                kind: restore
            }
        );
        assert_eq!(
            decide(
                Some(&held),
                None,
                &PASS_KINDS,
                "a",
                Duration::from_secs(600),
                stale,
                None
            ),
            Step::Nothing
        );
        // The restore controller resumes it once it is stale, not before.
        assert_eq!(
            decide(
                Some(&held),
                Some(restore),
                &[restore],
                "a",
                Duration::from_secs(15),
                stale,
                None
            ),
            Step::TakeOver {
                from: "b".into(),
                then: Some(restore)
            }
        );
        assert_eq!(
            decide(
                Some(&held),
                Some(restore),
                &[restore],
                "a",
                Duration::from_secs(3),
                stale,
                None
            ),
            Step::Wait {
                holder: "b".into(),
                kind: restore
            }
        );
        // Break-glass still works.
        assert_eq!(
            decide(
                Some(&held),
                None,
                &PASS_KINDS,
                "a",
                Duration::ZERO,
                stale,
                Some("b")
            ),
            Step::Break { holder: "b".into() }
        );
    }

    #[test]
    fn the_lock_is_taken_kept_released_or_waited_for_by_the_table() {
        let s = Duration::from_secs;
        let stale = s(15);
        // (current, wanted, led for, break annotation) → step, for replica "a" in a pass.
        // (current, wanted, led for (s), break annotation, step)
        type Row<'a> = (
            Option<OperationStatus>,
            Option<OperationKind>,
            u64,
            Option<&'a str>,
            Step,
        );
        let table: Vec<Row> = vec![
            (None, None, 60, None, Step::Nothing),
            (None, Some(ROLL), 0, None, Step::Take(ROLL)),
            (Some(op(ROLL, "a")), Some(ROLL), 0, None, Step::Keep),
            (Some(op(ROLL, "a")), None, 0, None, Step::Release),
            // A scale-down asked while rolling: release, take the next kind next pass.
            (Some(op(ROLL, "a")), Some(SCALE), 0, None, Step::Release),
            // Our own rekey is not the pass's to keep or release.
            (
                Some(op(REKEY, "a")),
                Some(ROLL),
                60,
                None,
                Step::Wait {
                    holder: "a".into(),
                    kind: REKEY,
                },
            ),
            (Some(op(REKEY, "a")), None, 60, None, Step::Nothing),
            // Another replica's lock, while it may still be finishing a step: wait.
            (
                Some(op(SCALE, "b")),
                Some(ROLL),
                14,
                None,
                Step::Wait {
                    holder: "b".into(),
                    kind: SCALE,
                },
            ),
            (Some(op(SCALE, "b")), None, 14, None, Step::Nothing),
            // Once we have led for a whole lease duration, it is stale.
            (
                Some(op(SCALE, "b")),
                Some(ROLL),
                15,
                None,
                Step::TakeOver {
                    from: "b".into(),
                    then: Some(ROLL),
                },
            ),
            (
                Some(op(SCALE, "b")),
                None,
                15,
                None,
                Step::TakeOver {
                    from: "b".into(),
                    then: None,
                },
            ),
            (
                Some(op(ROLL, "")),
                Some(ROLL),
                15,
                None,
                Step::TakeOver {
                    from: String::new(),
                    then: Some(ROLL),
                },
            ),
            // Break-glass names the holder; a name that does not match does nothing.
            (
                Some(op(SCALE, "b")),
                Some(ROLL),
                0,
                Some("b"),
                Step::Break { holder: "b".into() },
            ),
            (
                Some(op(SCALE, "b")),
                Some(ROLL),
                0,
                Some("c"),
                Step::Wait {
                    holder: "b".into(),
                    kind: SCALE,
                },
            ),
        ];
        for (current, wanted, led, break_lock, want) in table {
            assert_eq!(
                decide(
                    current.as_ref(),
                    wanted,
                    &PASS_KINDS,
                    "a",
                    s(led),
                    stale,
                    break_lock
                ),
                want,
                "current {current:?} wanted {wanted:?} led {led} s break {break_lock:?}"
            );
        }
    }

    #[test]
    fn a_rekey_caller_keeps_its_own_lock_and_waits_for_a_rolling_update() {
        let s = Duration::from_secs;
        assert_eq!(
            decide(
                Some(&op(REKEY, "a")),
                Some(REKEY),
                &[REKEY],
                "a",
                s(0),
                s(15),
                None
            ),
            Step::Keep
        );
        assert_eq!(
            decide(
                Some(&op(ROLL, "a")),
                Some(REKEY),
                &[REKEY],
                "a",
                s(99),
                s(15),
                None
            ),
            Step::Wait {
                holder: "a".into(),
                kind: ROLL
            }
        );
    }
}
