//! Leader election with a `coordination.k8s.io/v1` Lease, with fencing, so two operator
//! replicas never act on a cluster at the same time.
//!
//! The rules:
//! 1. Every write carries the Lease's resourceVersion: two replicas racing for a free
//!    lease cannot both win (the second gets a conflict).
//! 2. A follower measures expiry on its own monotonic clock, from the moment it last saw
//!    the lease record change (holder, renewTime or resourceVersion), never by comparing
//!    the holder's `renewTime` (the holder's clock) with its own: a skewed clock cannot
//!    make it take over early.
//! 3. The holder considers itself leader only while its last successful renewal was
//!    sent less than the renew deadline ago. The renew deadline is shorter than the lease
//!    duration, so the holder stops acting (its [`Fence`] closes) at least
//!    `duration - renew_deadline` before any follower can take over.
//! 4. Disruptive actions check the [`Fence`] right before acting.
//! 5. On shutdown the controllers are drained first; only then is the lease released
//!    ([`Leadership::release`]).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

/// Timings of the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a lease is valid without renewal, as followers measure it.
    pub duration: Duration,
    /// How long the holder keeps acting without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the holder renews, and followers look again.
    pub retry: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// Lease timings that cannot fence: the message names the flags and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidTimings(String);

impl LeaseTimings {
    /// Checks that the timings fence: retry < renew deadline < duration, with room for
    /// at least one retry inside the deadline and a second of margin after it.
    pub fn validate(&self) -> Result<(), InvalidTimings> {
        let secs = |d: Duration| d.as_secs_f64();
        if self.retry.is_zero() {
            return Err(InvalidTimings(
                "--lease-retry-period-seconds must be at least 1".into(),
            ));
        }
        if self.duration.subsec_nanos() != 0 || self.duration.as_secs() > i32::MAX as u64 {
            return Err(InvalidTimings(format!(
                "--lease-duration-seconds ({}) must be a whole number of seconds that fits a Lease's leaseDurationSeconds",
                secs(self.duration)
            )));
        }
        if self.renew_deadline < self.retry * 2 {
            return Err(InvalidTimings(format!(
                "--lease-renew-deadline-seconds ({}) must be at least twice --lease-retry-period-seconds ({}), so a failed renewal is retried before leadership is given up; lower the retry period or raise the deadline",
                secs(self.renew_deadline),
                secs(self.retry)
            )));
        }
        if self.duration < self.renew_deadline + Duration::from_secs(1) {
            return Err(InvalidTimings(format!(
                "--lease-duration-seconds ({}) must be at least 1 s longer than --lease-renew-deadline-seconds ({}): the holder must stop acting before another replica can take over; e.g. 15 and 10",
                secs(self.duration),
                secs(self.renew_deadline)
            )));
        }
        Ok(())
    }
}

/// Lease faults the end-to-end tests inject (never in the operator's image).
#[cfg(feature = "fault-injection")]
pub trait LeaseFaults: Send + Sync {
    /// How long to hold each Lease request back (renewal, acquisition, release) before
    /// sending it: a slow or partitioned API server.
    fn renewal_delay(&self) -> Duration {
        Duration::ZERO
    }
    /// How far this replica's wall clock is off (written into `renewTime`).
    fn clock_offset(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::ZERO
    }
}

/// No lease faults.
#[cfg(feature = "fault-injection")]
pub struct NoLeaseFaults;

#[cfg(feature = "fault-injection")]
impl LeaseFaults for NoLeaseFaults {}

/// What decides whether a lease record changed: who holds it, their renewal stamp, and
/// the API server's version of it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct LeaseRecord {
    pub(crate) holder: Option<String>,
    pub(crate) renew_time: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) duration_seconds: Option<i32>,
}

impl LeaseRecord {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        Self {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            renew_time: spec
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0.to_string()),
            resource_version: lease.metadata.resource_version.clone(),
            duration_seconds: spec.and_then(|s| s.lease_duration_seconds),
        }
    }
}

/// A lease record and when we first saw it as it is, on our own clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Observed {
    pub(crate) record: LeaseRecord,
    pub(crate) at: Instant,
}

/// Folds a new read of the lease into what we knew: the observation time moves only when
/// the record changed. Pure.
pub(crate) fn observe(previous: Option<Observed>, record: LeaseRecord, now: Instant) -> Observed {
    match previous {
        Some(p) if p.record == record => p,
        _ => Observed { record, at: now },
    }
}

/// What a replica does about the lease it observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// It is ours: renew it.
    Renew,
    /// Free, or unchanged for a whole lease duration on our clock: take it.
    Acquire,
    /// Someone else holds a live lease.
    Wait(String),
}

/// Decides about an observed lease. `default_duration` applies when the record names
/// none. Pure: the clock comes in as `now`.
pub(crate) fn decide(
    identity: &str,
    observed: &Observed,
    now: Instant,
    default_duration: Duration,
) -> Decision {
    let Some(holder) = &observed.record.holder else {
        return Decision::Acquire;
    };
    if holder == identity {
        return Decision::Renew;
    }
    let duration = observed
        .record
        .duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(default_duration, Duration::from_secs);
    if now.saturating_duration_since(observed.at) >= duration {
        Decision::Acquire
    } else {
        Decision::Wait(holder.clone())
    }
}

/// Whether a holder whose last successful renewal was sent at `renewed_at` may still act
/// at `now`. Pure.
pub(crate) fn fence_holds(
    renewed_at: Instant,
    lost: bool,
    now: Instant,
    renew_deadline: Duration,
) -> bool {
    !lost && now.saturating_duration_since(renewed_at) < renew_deadline
}

struct FenceState {
    identity: String,
    renew_deadline: Duration,
    acquired_at: Instant,
    renewed_at: Mutex<Instant>,
    lost: AtomicBool,
}

/// What a disruptive action asks right before it acts: does this replica still lead?
/// Cheap (a clock read and two loads). Without leader election the fence always holds.
#[derive(Clone)]
pub struct Fence(FenceKind);

#[derive(Clone)]
enum FenceKind {
    Unelected { identity: String, since: Instant },
    Elected(Arc<FenceState>),
}

/// A closed fence: this replica must not act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{identity} no longer leads: {reason}")]
pub struct Fenced {
    /// This replica.
    pub identity: String,
    /// Why.
    pub reason: String,
}

impl Fence {
    /// The fence of a replica that runs without leader election (a single replica).
    pub fn unelected(identity: &str) -> Self {
        Fence(FenceKind::Unelected {
            identity: identity.to_owned(),
            since: Instant::now(),
        })
    }

    fn elected(identity: &str, renew_deadline: Duration, renewed_at: Instant) -> Self {
        Fence(FenceKind::Elected(Arc::new(FenceState {
            identity: identity.to_owned(),
            renew_deadline,
            acquired_at: renewed_at,
            renewed_at: Mutex::new(renewed_at),
            lost: AtomicBool::new(false),
        })))
    }

    /// This replica's identity (the Lease holder name).
    pub fn identity(&self) -> &str {
        match &self.0 {
            FenceKind::Unelected { identity, .. } => identity,
            FenceKind::Elected(s) => &s.identity,
        }
    }

    /// `Ok` while this replica leads: renewed within the renew deadline, and not lost.
    pub fn check(&self) -> Result<(), Fenced> {
        let FenceKind::Elected(state) = &self.0 else {
            return Ok(());
        };
        let renewed_at = *state.renewed_at.lock().unwrap_or_else(|e| e.into_inner());
        let lost = state.lost.load(Ordering::Acquire);
        if fence_holds(renewed_at, lost, Instant::now(), state.renew_deadline) {
            return Ok(());
        }
        Err(Fenced {
            identity: state.identity.clone(),
            reason: if lost {
                "leadership was lost or given up".into()
            } else {
                format!(
                    "the Lease was not renewed within the renew deadline ({}s)",
                    state.renew_deadline.as_secs()
                )
            },
        })
    }

    /// How long this replica has led without interruption (since start without election).
    pub fn led_for(&self) -> Duration {
        match &self.0 {
            FenceKind::Unelected { since, .. } => since.elapsed(),
            FenceKind::Elected(s) => s.acquired_at.elapsed(),
        }
    }

    fn renewed(&self, at: Instant) {
        if let FenceKind::Elected(state) = &self.0 {
            let mut renewed = state.renewed_at.lock().unwrap_or_else(|e| e.into_inner());
            if at > *renewed {
                *renewed = at;
            }
        }
    }

    fn lose(&self) {
        if let FenceKind::Elected(state) = &self.0 {
            state.lost.store(true, Ordering::Release);
        }
    }
}

/// One replica's side of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
    observed: Option<Observed>,
    #[cfg(feature = "fault-injection")]
    faults: Arc<dyn LeaseFaults>,
}

/// What one attempt found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the lease (acquired or renewed).
    Held,
    /// Someone else holds a valid lease (or won the race for it).
    Taken(String),
}

impl LeaderElector {
    /// An elector for the Lease `name` in `namespace`, as `identity` (unique per replica).
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timings: LeaseTimings,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timings,
            observed: None,
            #[cfg(feature = "fault-injection")]
            faults: Arc::new(NoLeaseFaults),
        }
    }

    /// The same elector, with lease faults injected.
    #[cfg(feature = "fault-injection")]
    pub fn with_faults(mut self, faults: Arc<dyn LeaseFaults>) -> Self {
        self.faults = faults;
        self
    }

    /// The wall clock written into `renewTime` and `acquireTime`: informative only, never
    /// compared with anyone's clock.
    fn wall_now(&self) -> MicroTime {
        let now = jiff::Timestamp::now();
        #[cfg(feature = "fault-injection")]
        let now = now.checked_add(self.faults.clock_offset()).unwrap_or(now);
        MicroTime(now)
    }

    async fn renewal_delay(&self) {
        #[cfg(feature = "fault-injection")]
        {
            let delay = self.faults.renewal_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// One look at the lease, and the write it calls for. `renewing`: we lead, so a lease
    /// that is not ours means leadership was lost, even one we could take again.
    async fn try_acquire_or_renew(&mut self, renewing: bool) -> Result<Attempt, kube::Error> {
        self.renewal_delay().await;
        let seconds = i32::try_from(self.timings.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let now = self.wall_now();
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observed = Some(observe(None, LeaseRecord::of(&created), Instant::now()));
                    Ok(Attempt::Held)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    Ok(Attempt::Taken(String::new()))
                }
                Err(e) => Err(e),
            };
        };
        let observed = observe(
            self.observed.take(),
            LeaseRecord::of(&lease),
            Instant::now(),
        );
        let decision = decide(
            &self.identity,
            &observed,
            Instant::now(),
            self.timings.duration,
        );
        self.observed = Some(observed);
        let previous_holder = match decision {
            Decision::Wait(holder) => return Ok(Attempt::Taken(holder)),
            Decision::Acquire if renewing => {
                let holder = self.observed.as_ref().and_then(|o| o.record.holder.clone());
                return Ok(Attempt::Taken(holder.unwrap_or_default()));
            }
            Decision::Renew => None,
            Decision::Acquire => Some(
                lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default(),
            ),
        };
        let now = self.wall_now();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if previous_holder.is_some() {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(now);
        // replace() sends the resourceVersion we read: a concurrent writer makes this 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observed = Some(observe(None, LeaseRecord::of(&written), Instant::now()));
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                Ok(Attempt::Taken(previous_holder.unwrap_or_default()))
            }
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease, then keeps renewing it in the background.
    /// `None` when `shutdown` fires first. The [`Leadership`] says when leadership is lost
    /// (no successful renewal within the renew deadline, or another replica took over);
    /// the caller must then stop acting (its [`Fence`] is closed already) and drain.
    pub async fn lead(mut self, mut shutdown: watch::Receiver<bool>) -> Option<Leadership> {
        let acquired_at = loop {
            // The moment before the request: our write lands after it, so anyone who
            // sees it sees it later, and our renew deadline runs out first.
            let sent = Instant::now();
            match self.try_acquire_or_renew(false).await {
                Ok(Attempt::Held) => break sent,
                Ok(Attempt::Taken(holder)) => {
                    tracing::debug!(holder = %holder, "another replica leads; waiting");
                }
                Err(e) => warn!(error = %e, "cannot read or write the leader Lease"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timings.retry) => {}
                _ = shutdown.wait_for(|s| *s) => return None,
            }
        };
        info!(identity = %self.identity, lease = %self.name, "became the leader");
        let fence = Fence::elected(&self.identity, self.timings.renew_deadline, acquired_at);
        let (lost_tx, lost_rx) = watch::channel(false);
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let renew_fence = fence.clone();
        let renew = tokio::spawn(async move {
            let mut renewed_at = acquired_at;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(self.timings.retry) => {}
                    _ = stop_rx.wait_for(|s| *s) => return self,
                }
                let deadline = renewed_at + self.timings.renew_deadline;
                let sent = Instant::now();
                let attempt = self.try_acquire_or_renew(true);
                let outcome = tokio::select! {
                    outcome = attempt => Some(Some(outcome)),
                    _ = tokio::time::sleep_until(deadline.into()) => Some(None),
                    _ = stop_rx.wait_for(|s| *s) => None,
                };
                let Some(outcome) = outcome else {
                    return self;
                };
                match outcome {
                    Some(Ok(Attempt::Held)) => {
                        renewed_at = sent;
                        renew_fence.renewed(sent);
                        continue;
                    }
                    Some(Ok(Attempt::Taken(holder))) => {
                        warn!(holder = %holder, "leadership lost to another replica");
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "cannot renew the leader Lease");
                        if Instant::now() < deadline {
                            continue;
                        }
                        warn!(
                            "leadership lost: the Lease was not renewed within the renew deadline"
                        );
                    }
                    None => {
                        warn!(
                            "leadership lost: the Lease was not renewed within the renew deadline"
                        );
                    }
                }
                renew_fence.lose();
                let _ = lost_tx.send(true);
                return self;
            }
        });
        Some(Leadership {
            fence,
            lost: lost_rx,
            stop: stop_tx,
            renew,
        })
    }

    /// Gives the lease up so another replica takes over without waiting for it to expire:
    /// only when it is still ours, and with the resourceVersion we read.
    async fn release(&self) {
        self.renewal_delay().await;
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!("leader Lease released"),
            Err(e) => warn!(error = %e, "cannot release the leader Lease; it expires by itself"),
        }
    }
}

/// Held while this replica leads.
pub struct Leadership {
    fence: Fence,
    lost: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    renew: tokio::task::JoinHandle<LeaderElector>,
}

impl Leadership {
    /// The fence disruptive actions check.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Resolves when leadership is lost.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Whether this replica still leads (the fence holds).
    pub fn is_leader(&self) -> bool {
        self.fence.check().is_ok()
    }

    /// Ends this term: closes the fence, stops renewing, and gives the lease up when it is
    /// still ours. Call it only after every controller has stopped (drained): releasing
    /// earlier lets another replica act while this one still does.
    pub async fn release(self) {
        self.fence.lose();
        let _ = self.stop.send(true);
        match self.renew.await {
            Ok(elector) => elector.release().await,
            Err(e) => warn!(error = %e, "the Lease renewal task ended abnormally"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: Option<&str>, renew: &str, rv: &str) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_owned),
            renew_time: Some(renew.to_owned()),
            resource_version: Some(rv.to_owned()),
            duration_seconds: Some(15),
        }
    }

    const DURATION: Duration = Duration::from_secs(15);

    #[test]
    fn expiry_runs_on_our_clock_from_the_last_change_we_saw() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let first = observe(None, record(Some("a"), "10:00:00", "1"), t0);
        // The same record again: still observed at t0; expired after a whole duration.
        let same = observe(
            Some(first.clone()),
            record(Some("a"), "10:00:00", "1"),
            t0 + s(9),
        );
        assert_eq!(same.at, t0);
        assert_eq!(
            decide("b", &same, t0 + s(14), DURATION),
            Decision::Wait("a".into())
        );
        assert_eq!(decide("b", &same, t0 + s(15), DURATION), Decision::Acquire);
        // A renewal (new renewTime and resourceVersion) restarts the count.
        let renewed = observe(Some(same), record(Some("a"), "10:00:02", "2"), t0 + s(10));
        assert_eq!(renewed.at, t0 + s(10));
        assert_eq!(
            decide("b", &renewed, t0 + s(20), DURATION),
            Decision::Wait("a".into())
        );
        assert_eq!(
            decide("b", &renewed, t0 + s(25), DURATION),
            Decision::Acquire
        );
    }

    #[test]
    fn a_holder_clock_skewed_by_ten_seconds_cannot_make_a_follower_take_over_early() {
        // The holder's renewTime says it renewed 10 s (or an hour) ago by our clock: that
        // is its clock, not a fact about expiry. Only what we saw change counts.
        let t0 = Instant::now();
        for stamp in ["2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z"] {
            let seen = observe(None, record(Some("a"), stamp, "7"), t0);
            for elapsed in [0, 5, 10, 14] {
                assert_eq!(
                    decide("b", &seen, t0 + Duration::from_secs(elapsed), DURATION),
                    Decision::Wait("a".into()),
                    "renewTime {stamp}, {elapsed} s after we saw it"
                );
            }
        }
    }

    #[test]
    fn our_own_or_a_free_lease_is_taken_at_once() {
        let t0 = Instant::now();
        let ours = observe(None, record(Some("a"), "x", "1"), t0);
        assert_eq!(decide("a", &ours, t0, DURATION), Decision::Renew);
        let free = observe(None, record(None, "x", "1"), t0);
        assert_eq!(decide("b", &free, t0, DURATION), Decision::Acquire);
    }

    #[test]
    fn the_holder_stops_acting_at_its_renew_deadline_before_anyone_may_take_over() {
        let timings = LeaseTimings::default();
        let sent = Instant::now();
        // The holder's renewal was sent at `sent`; a follower sees it no earlier.
        let follower = observe(None, record(Some("a"), "x", "3"), sent);
        let s = Duration::from_secs;
        for elapsed in 0..30 {
            let now = sent + s(elapsed);
            let holder_acts = fence_holds(sent, false, now, timings.renew_deadline);
            let follower_takes = decide("b", &follower, now, timings.duration) == Decision::Acquire;
            assert!(!(holder_acts && follower_takes), "both at {elapsed} s");
            assert_eq!(holder_acts, elapsed < 10, "{elapsed} s");
        }
        assert!(
            !fence_holds(sent, true, sent, timings.renew_deadline),
            "lost"
        );
    }

    #[test]
    fn timings_that_cannot_fence_are_refused_naming_the_flag() {
        let s = Duration::from_secs;
        assert_eq!(LeaseTimings::default().validate(), Ok(()));
        let cases = [
            (s(10), s(10), s(2), "--lease-duration-seconds"),
            (s(15), s(3), s(2), "--lease-renew-deadline-seconds"),
            (s(15), s(10), s(0), "--lease-retry-period-seconds"),
            (
                Duration::from_millis(15_500),
                s(10),
                s(2),
                "--lease-duration-seconds",
            ),
        ];
        for (duration, renew_deadline, retry, flag) in cases {
            let timings = LeaseTimings {
                duration,
                renew_deadline,
                retry,
            };
            let err = timings.validate().expect_err("refused");
            assert!(err.to_string().starts_with(flag), "{err}");
        }
    }

    #[test]
    fn an_unelected_fence_always_holds_and_an_elected_one_closes_when_lost() {
        assert!(Fence::unelected("solo").check().is_ok());
        let fence = Fence::elected("a", Duration::from_secs(10), Instant::now());
        assert!(fence.check().is_ok());
        fence.lose();
        let closed = fence.check().expect_err("closed");
        assert!(closed.to_string().contains("no longer leads"), "{closed}");
        let stale = Fence::elected(
            "a",
            Duration::from_secs(10),
            Instant::now() - Duration::from_secs(11),
        );
        assert!(stale.check().is_err(), "not renewed within the deadline");
    }
}
