//! Restart decisions, as the kubelet makes them: `restartPolicy` decides whether an exited
//! container runs again, and a per-container back-off (10 s doubling to 5 min by default,
//! reset after the container ran long enough) decides when. Pure functions: the caller
//! passes the exit, the count and the durations.

use super::sandbox::ExitStatus;
use std::time::Duration;

/// A pod's (or init container's) `restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restart after every exit.
    Always,
    /// Restart after a non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// Parses the spec value (absent means `Always`).
    pub fn from_spec(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("Always") => Ok(RestartPolicy::Always),
            Some("OnFailure") => Ok(RestartPolicy::OnFailure),
            Some("Never") => Ok(RestartPolicy::Never),
            Some(other) => Err(format!(
                "{other:?} is not a restart policy; use Always, OnFailure or Never"
            )),
        }
    }
}

/// Whether a container that ended with `exit` runs again.
pub fn should_restart(policy: RestartPolicy, exit: &ExitStatus) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !exit.success(),
        RestartPolicy::Never => false,
    }
}

/// Crash-loop back-off parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the second restart (the first is immediate).
    pub initial: Duration,
    /// Upper bound.
    pub max: Duration,
    /// A container that ran at least this long starts over without delay.
    pub reset_after: Duration,
}

impl Default for Backoff {
    /// The kubelet's values: 10 s, doubling, at most 5 min, reset after 10 min of running.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

/// How long to wait before the next start, given how many restarts happened since the last
/// reset (`crashes`, counting the exit just observed as the first) and how long the
/// instance ran.
pub fn restart_delay(backoff: &Backoff, crashes: u32, ran_for: Duration) -> (Duration, u32) {
    let crashes = if ran_for >= backoff.reset_after {
        1
    } else {
        crashes.max(1)
    };
    if crashes <= 1 {
        return (Duration::ZERO, crashes);
    }
    let doublings = (crashes - 2).min(30);
    let delay = backoff
        .initial
        .checked_mul(1u32 << doublings)
        .unwrap_or(backoff.max)
        .min(backoff.max);
    (delay, crashes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus {
            code: Some(code),
            signal: None,
        }
    }

    #[test]
    fn restart_policy_table() {
        let killed = ExitStatus {
            code: None,
            signal: Some(9),
        };
        let cases = [
            (RestartPolicy::Always, exit(0), true),
            (RestartPolicy::Always, exit(1), true),
            (RestartPolicy::OnFailure, exit(0), false),
            (RestartPolicy::OnFailure, exit(2), true),
            (RestartPolicy::OnFailure, killed, true),
            (RestartPolicy::Never, exit(1), false),
            (RestartPolicy::Never, killed, false),
        ];
        for (policy, exit, want) in cases {
            assert_eq!(should_restart(policy, &exit), want, "{policy:?} {exit}");
        }
        assert!(RestartPolicy::from_spec(Some("Sometimes")).is_err());
        assert_eq!(RestartPolicy::from_spec(None), Ok(RestartPolicy::Always));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let b = Backoff::default();
        let short = Duration::from_secs(1);
        let cases = [
            (1, short, 0, 1),
            (2, short, 10, 2),
            (3, short, 20, 3),
            (4, short, 40, 4),
            (7, short, 300, 7),
            (40, short, 300, 40),
            // Ran for ten minutes: a fresh start.
            (9, Duration::from_secs(600), 0, 1),
        ];
        for (crashes, ran, want_secs, want_count) in cases {
            let (d, c) = restart_delay(&b, crashes, ran);
            assert_eq!(
                (d.as_secs(), c),
                (want_secs, want_count),
                "{crashes} {ran:?}"
            );
        }
    }

    #[test]
    fn exit_codes_follow_kubernetes() {
        assert_eq!(exit(3).kubernetes_exit_code(), 3);
        let killed = ExitStatus {
            code: None,
            signal: Some(9),
        };
        assert_eq!(killed.kubernetes_exit_code(), 137);
        assert_eq!(killed.to_string(), "killed by signal 9");
    }
}
