//! The cluster's clock. Timestamps, token expiry and CronJob schedules all read it, and
//! a test can move it forward to make a schedule fire without waiting.

use jiff::{SignedDuration, Timestamp};
use std::sync::Mutex;

/// Wall-clock time plus an offset the test controls.
#[derive(Debug, Default)]
pub struct SimClock {
    offset: Mutex<SignedDuration>,
}

impl SimClock {
    /// A clock that starts at the real time.
    pub fn new() -> Self {
        SimClock::default()
    }

    /// The cluster's current time.
    pub fn now(&self) -> Timestamp {
        let offset = self.offset.lock().map(|o| *o).unwrap_or_default();
        Timestamp::now()
            .checked_add(offset)
            .unwrap_or_else(|_| Timestamp::now())
    }

    /// Moves the clock forward (CronJob schedules due in between then fire).
    pub fn advance(&self, by: SignedDuration) {
        if let Ok(mut o) = self.offset.lock() {
            *o = o.saturating_add(by);
        }
    }

    /// Sets the clock to `t` (only forward moves make sense for schedules).
    pub fn set(&self, t: Timestamp) {
        if let Ok(mut o) = self.offset.lock() {
            *o = t.duration_since(Timestamp::now());
        }
    }

    /// The current time as the API's RFC 3339 string with seconds precision
    /// (`metav1.Time` serialises to whole seconds).
    pub fn now_rfc3339(&self) -> String {
        format_time(self.now())
    }
}

/// `metav1.Time` wire format: RFC 3339, UTC, whole seconds.
pub fn format_time(t: Timestamp) -> String {
    let secs = t.as_second();
    Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// `metav1.MicroTime` wire format (Events' `eventTime`, Leases' `renewTime`).
pub fn format_micro(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Parses an RFC 3339 timestamp as found in objects.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward() {
        let c = SimClock::new();
        let before = c.now();
        c.advance(SignedDuration::from_hours(24));
        assert!(c.now().duration_since(before) >= SignedDuration::from_hours(24));
    }

    #[test]
    fn times_format_like_metav1() {
        let t: Timestamp = "2026-01-02T03:04:05.678Z".parse().unwrap();
        assert_eq!(format_time(t), "2026-01-02T03:04:05Z");
        assert_eq!(format_micro(t), "2026-01-02T03:04:05.678000Z");
    }
}
