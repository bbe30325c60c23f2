//! Leader election with a `coordination.k8s.io/v1` Lease, so two operator replicas are
//! safe: only the holder reconciles; the other waits and takes over when the holder's
//! lease expires (or at once, when the holder releases it on shutdown).
//!
//! Every write carries the Lease's resourceVersion, so two replicas racing for an expired
//! lease cannot both win: the API server refuses the second update with a conflict.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

/// Timings of the election.
#[derive(Clone, Debug)]
pub struct LeaseTimings {
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How often the holder renews, and others retry.
    pub retry: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(4),
        }
    }
}

/// One replica's side of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
}

/// What one attempt found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the lease (acquired or renewed).
    Held,
    /// Someone else holds a valid lease.
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
        }
    }

    fn now() -> MicroTime {
        MicroTime(jiff::Timestamp::now())
    }

    async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let now = Self::now();
        let seconds = i32::try_from(self.timings.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
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
                Ok(_) => Ok(Attempt::Held),
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    Ok(Attempt::Taken(String::new()))
                }
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.identity;
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(renewed), Some(duration)) => {
                let deadline = renewed.0 + jiff::SignedDuration::from_secs(i64::from(duration));
                deadline < now.0
            }
            _ => true,
        };
        if !ours && !holder.is_empty() && !expired {
            return Ok(Attempt::Taken(holder));
        }
        if !ours {
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
            Ok(_) => Ok(Attempt::Held),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Taken(holder)),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease, then keeps renewing it in the background.
    /// The returned receiver turns `false` when leadership is lost (renewal failed for a
    /// whole lease duration, or another replica took over); the caller must then stop
    /// reconciling at once.
    pub async fn lead(self, mut shutdown: watch::Receiver<bool>) -> Option<Leadership> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => break,
                Ok(Attempt::Taken(holder)) => {
                    info!(holder = %holder, "another replica leads; waiting");
                }
                Err(e) => warn!(error = %e, "cannot read or write the leader Lease"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timings.retry) => {}
                _ = shutdown.changed() => return None,
            }
        }
        info!(identity = %self.identity, lease = %self.name, "became the leader");
        let (tx, rx) = watch::channel(true);
        let renew = tokio::spawn(async move {
            let mut last_renewal = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(self.timings.retry) => {}
                    _ = shutdown.changed() => {
                        self.release().await;
                        let _ = tx.send(false);
                        return;
                    }
                }
                match self.try_acquire_or_renew().await {
                    Ok(Attempt::Held) => last_renewal = tokio::time::Instant::now(),
                    Ok(Attempt::Taken(holder)) => {
                        warn!(holder = %holder, "leadership lost to another replica");
                        let _ = tx.send(false);
                        return;
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot renew the leader Lease");
                        if last_renewal.elapsed() >= self.timings.duration {
                            warn!("leadership lost: the Lease could not be renewed in time");
                            let _ = tx.send(false);
                            return;
                        }
                    }
                }
            }
        });
        Some(Leadership { rx, _renew: renew })
    }

    /// Gives the lease up so another replica takes over without waiting for it to expire.
    async fn release(&self) {
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
    rx: watch::Receiver<bool>,
    _renew: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Resolves when leadership is lost.
    pub async fn lost(&mut self) {
        while *self.rx.borrow() {
            if self.rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether this replica still leads.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }
}
