//! Fault injection for tests: fail a share of API requests with a chosen status, add
//! latency, drop every open watch, or fail every discovery request. A failure rule applies
//! only to resource requests (not discovery), optionally narrowed to some verbs and
//! resources; discovery fails only when asked for on its own.

use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// A fault on what matching `pods/exec` commands answer: the command runs for real, and
/// its output reaches the client late, cut short or replaced, as from a slow or broken
/// node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecAnswerFault {
    /// Applies to commands whose argv holds every one of these words.
    pub argv_contains: Vec<String>,
    /// Applies only to commands run in these pods (by name); empty: in any pod.
    pub pods: Vec<String>,
    /// How long stdout and the exit status are held back after the command exits.
    pub delay: Duration,
    /// Only the first this-many bytes of stdout arrive.
    pub truncate_to: Option<usize>,
    /// These bytes arrive instead of stdout.
    pub replace_stdout: Option<Vec<u8>>,
}

impl ExecAnswerFault {
    /// Whether it applies to `argv` run in `pod`.
    pub fn matches(&self, pod: &str, argv: &[String]) -> bool {
        (self.pods.is_empty() || self.pods.iter().any(|p| p == pod))
            && self
                .argv_contains
                .iter()
                .all(|word| argv.iter().any(|a| a == word))
    }

    /// What the client gets instead of `stdout`.
    pub fn answer(&self, stdout: Vec<u8>) -> Vec<u8> {
        match (&self.replace_stdout, self.truncate_to) {
            (Some(replacement), _) => replacement.clone(),
            (None, Some(n)) => stdout.into_iter().take(n).collect(),
            (None, None) => stdout,
        }
    }
}

/// A failure rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRule {
    /// Share of matching requests that fail, 0.0–1.0.
    pub share: f64,
    /// HTTP status to answer: 500, 429 or 409.
    pub code: u16,
    /// Verbs it applies to (`create`, `patch`, …); empty: all.
    pub verbs: Vec<String>,
    /// Resources it applies to (`pods`, `statefulsets`); empty: all.
    pub resources: Vec<String>,
    /// Object names it applies to (requests that name one in their path); empty: all.
    pub names: Vec<String>,
}

/// The fault settings of a running cluster.
#[derive(Debug)]
pub struct Faults {
    failure: Mutex<Option<FailureRule>>,
    latency: Mutex<Duration>,
    watch_epoch: watch::Sender<u64>,
    discovery: Mutex<bool>,
    exec_answer: Mutex<Option<ExecAnswerFault>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            failure: Mutex::new(None),
            latency: Mutex::new(Duration::ZERO),
            watch_epoch: watch::channel(0).0,
            discovery: Mutex::new(false),
            exec_answer: Mutex::new(None),
        }
    }
}

impl Faults {
    /// Sets (or clears) the failure rule.
    pub fn set_failure(&self, rule: Option<FailureRule>) {
        if let Ok(mut f) = self.failure.lock() {
            *f = rule;
        }
    }

    /// Sets extra latency for every resource request.
    pub fn set_latency(&self, d: Duration) {
        if let Ok(mut l) = self.latency.lock() {
            *l = d;
        }
    }

    /// Current latency.
    pub fn latency(&self) -> Duration {
        self.latency.lock().map(|l| *l).unwrap_or_default()
    }

    /// Closes every open watch (clients see the stream end and must re-watch).
    pub fn drop_watches(&self) {
        self.watch_epoch.send_modify(|e| *e += 1);
    }

    /// A receiver that changes when watches are dropped.
    pub fn watch_epoch(&self) -> watch::Receiver<u64> {
        self.watch_epoch.subscribe()
    }

    /// Makes every discovery request (`/api`, `/apis`, …) answer 500, or stops doing so.
    pub fn set_discovery_failure(&self, fail: bool) {
        if let Ok(mut d) = self.discovery.lock() {
            *d = fail;
        }
    }

    /// Sets (or clears) the fault on exec answers.
    pub fn set_exec_answer(&self, fault: Option<ExecAnswerFault>) {
        if let Ok(mut f) = self.exec_answer.lock() {
            *f = fault;
        }
    }

    /// The exec-answer fault for `argv` run in `pod`, if one applies.
    pub fn exec_answer_for(&self, pod: &str, argv: &[String]) -> Option<ExecAnswerFault> {
        self.exec_answer
            .lock()
            .ok()?
            .clone()
            .filter(|f| f.matches(pod, argv))
    }

    /// Whether discovery requests fail now.
    pub fn discovery_fails(&self) -> bool {
        self.discovery.lock().map(|d| *d).unwrap_or(false)
    }

    /// Whether this request should fail, given a uniform sample in [0, 1).
    pub fn should_fail(&self, verb: &str, resource: &str, name: &str, sample: f64) -> Option<u16> {
        let rule = self.failure.lock().ok()?.clone()?;
        decide_failure(&rule, verb, resource, name, sample)
    }
}

/// Pure decision: does a request with this sample fail under `rule`?
pub fn decide_failure(
    rule: &FailureRule,
    verb: &str,
    resource: &str,
    name: &str,
    sample: f64,
) -> Option<u16> {
    let verb_ok = rule.verbs.is_empty() || rule.verbs.iter().any(|v| v == verb);
    let res_ok = rule.resources.is_empty() || rule.resources.iter().any(|r| r == resource);
    let name_ok = rule.names.is_empty() || rule.names.iter().any(|n| n == name);
    (verb_ok && res_ok && name_ok && sample < rule.share).then_some(rule.code)
}

/// A uniform sample in [0, 1) from the system RNG.
pub fn sample() -> f64 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_rule_table() {
        let rule = FailureRule {
            share: 0.5,
            code: 429,
            verbs: vec!["patch".into()],
            resources: vec![],
            names: vec![],
        };
        assert_eq!(decide_failure(&rule, "patch", "pods", "p", 0.1), Some(429));
        assert_eq!(decide_failure(&rule, "patch", "pods", "p", 0.9), None);
        assert_eq!(decide_failure(&rule, "get", "pods", "p", 0.1), None);
        let all = FailureRule {
            share: 1.0,
            code: 500,
            verbs: vec![],
            resources: vec!["secrets".into()],
            names: vec!["keys".into()],
        };
        assert_eq!(
            decide_failure(&all, "get", "secrets", "keys", 0.99),
            Some(500)
        );
        assert_eq!(decide_failure(&all, "get", "secrets", "tls", 0.0), None);
        assert_eq!(decide_failure(&all, "get", "pods", "keys", 0.0), None);
    }
}
