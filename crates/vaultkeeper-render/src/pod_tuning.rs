//! The Vault container's probes, shutdown timing and extra server arguments, from
//! `spec.pod`'s chart-style tuning.
//!
//! Its own module because each setting has a default that must stay what vaultkeeper
//! rendered before the setting existed (and what the Vault Helm chart renders), and the
//! extra arguments end up in a shell script, where quoting is the whole concern.

use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use vaultkeeper_api::ProbeSpec;

use crate::Scope;
use crate::config::API_PORT;

/// The readiness path: ready means unsealed and serving, active or standby.
pub const READINESS_PATH: &str =
    "/v1/sys/health?standbyok=true&perfstandbyok=true&sealedcode=503&uninitcode=501";

/// The liveness path: a sealed or uninitialized server is alive (a restart would not
/// unseal or initialize it, and would throw away unseal progress).
pub const LIVENESS_PATH: &str = "/v1/sys/health?standbyok=true&sealedcode=204&uninitcode=204";

/// Default grace period and preStop sleep, the chart's.
pub const TERMINATION_GRACE_PERIOD_SECONDS: i64 = 10;
pub const PRE_STOP_SLEEP_SECONDS: i32 = 5;

/// A probe's defaults.
struct Defaults {
    enabled: bool,
    path: &'static str,
    initial_delay_seconds: i32,
    period_seconds: i32,
    timeout_seconds: i32,
    success_threshold: i32,
    failure_threshold: i32,
}

const READINESS: Defaults = Defaults {
    enabled: true,
    path: READINESS_PATH,
    initial_delay_seconds: 5,
    period_seconds: 5,
    timeout_seconds: 3,
    success_threshold: 1,
    failure_threshold: 2,
};

const LIVENESS: Defaults = Defaults {
    enabled: false,
    path: LIVENESS_PATH,
    initial_delay_seconds: 60,
    period_seconds: 5,
    timeout_seconds: 3,
    success_threshold: 1,
    failure_threshold: 2,
};

pub(crate) fn readiness_probe(scope: &Scope<'_>) -> Option<Probe> {
    probe(
        scope,
        scope.cluster.spec.pod.readiness_probe.as_ref(),
        &READINESS,
    )
}

pub(crate) fn liveness_probe(scope: &Scope<'_>) -> Option<Probe> {
    probe(
        scope,
        scope.cluster.spec.pod.liveness_probe.as_ref(),
        &LIVENESS,
    )
}

fn probe(scope: &Scope<'_>, tuning: Option<&ProbeSpec>, defaults: &Defaults) -> Option<Probe> {
    let none = ProbeSpec::default();
    let tuning = tuning.unwrap_or(&none);
    if !tuning.enabled.unwrap_or(defaults.enabled) {
        return None;
    }
    Some(Probe {
        http_get: Some(HTTPGetAction {
            path: Some(
                tuning
                    .path
                    .clone()
                    .unwrap_or_else(|| defaults.path.to_owned()),
            ),
            port: IntOrString::Int(tuning.port.unwrap_or(i32::from(API_PORT))),
            scheme: Some(scope.tls.scheme().to_ascii_uppercase()),
            ..HTTPGetAction::default()
        }),
        failure_threshold: Some(
            tuning
                .failure_threshold
                .unwrap_or(defaults.failure_threshold),
        ),
        initial_delay_seconds: Some(
            tuning
                .initial_delay_seconds
                .unwrap_or(defaults.initial_delay_seconds),
        ),
        period_seconds: Some(tuning.period_seconds.unwrap_or(defaults.period_seconds)),
        success_threshold: Some(
            tuning
                .success_threshold
                .unwrap_or(defaults.success_threshold),
        ),
        timeout_seconds: Some(tuning.timeout_seconds.unwrap_or(defaults.timeout_seconds)),
        ..Probe::default()
    })
}

/// Give endpoint removal time to propagate before the server stops. The server is the
/// container's main process (the start script `exec`s it), so Kubernetes' SIGTERM after
/// the hook reaches it directly.
pub(crate) fn lifecycle(scope: &Scope<'_>) -> Lifecycle {
    let sleep = scope
        .cluster
        .spec
        .pod
        .pre_stop_sleep_seconds
        .unwrap_or(PRE_STOP_SLEEP_SECONDS);
    Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    format!("sleep {sleep}"),
                ]),
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    }
}

pub(crate) fn termination_grace_period_seconds(scope: &Scope<'_>) -> i64 {
    scope
        .cluster
        .spec
        .pod
        .termination_grace_period_seconds
        .unwrap_or(TERMINATION_GRACE_PERIOD_SECONDS)
}

/// `spec.pod.extraArgs` for the end of the start script's `server` line, each one
/// single-quoted so the shell passes it as one word and interprets nothing in it
/// (validation already refuses anything but flags; this holds even if it did not).
pub(crate) fn extra_args(scope: &Scope<'_>) -> String {
    scope
        .cluster
        .spec
        .pod
        .extra_args
        .iter()
        .map(|arg| format!(" {}", shell_word(arg)))
        .collect()
}

/// `text` as one single-quoted shell word: the shell expands nothing inside single
/// quotes, and a single quote itself is closed, escaped and reopened.
fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real shell hands every quoted word back unchanged, however hostile.
    #[test]
    fn quoted_arguments_reach_the_server_as_one_word_each() {
        let words = [
            "-log-level=debug",
            "-x=$(touch /tmp/never) `id` ; rm -rf / && echo",
            "-y='it''s' \"q\" \\ * ? ~ #",
            "-z=line\nbreak",
        ];
        let script = format!(
            "printf '%s\\0' {}",
            words
                .iter()
                .map(|w| shell_word(w))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = std::process::Command::new("/bin/sh")
            .args(["-ec", &script])
            .output()
            .expect("/bin/sh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let echoed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        assert_eq!(echoed, words);
    }
}
