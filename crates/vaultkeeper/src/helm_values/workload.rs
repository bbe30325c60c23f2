//! The chart's `server.*` workload tuning as `spec.pod`: extra arguments and ports, host
//! aliases, shutdown timing, probes and StatefulSet annotations.
//!
//! Its own module because every value here is first checked against VaultCluster's own
//! validation (a chart value VaultCluster refuses, such as `-dev` in `server.extraArgs` or
//! a host alias for an in-cluster name, becomes a leftover naming the refusal rather than
//! an invalid output), and because the chart's defaults and VaultCluster's differ in one
//! place (the liveness path), which the import writes out so the rendering matches.

use k8s_openapi::api::core::v1::{ContainerPort, HostAlias};
use serde_json::Value;
use vaultkeeper_api::{DisruptionBudgetSpec, PodSpec, ProbeSpec, VaultClusterSpec, validate_spec};

use super::pod::typed;
use super::{ChartNames, Mode, Reader, Why, string_map, truthy};

/// Converts the workload settings; `cluster` is the VaultCluster's name (the host alias
/// check needs the cluster's Service names).
pub(super) fn workload(
    r: &mut Reader,
    spec: &mut VaultClusterSpec,
    names: &ChartNames,
    cluster: &str,
) {
    extra_args(r, spec, cluster);
    if let Some(ports) = typed::<Vec<ContainerPort>>(r, "server.extraPorts", names) {
        accept(r, spec, cluster, "server.extraPorts", |pod| {
            pod.extra_ports = ports
        });
    }
    if let Some(aliases) = typed::<Vec<HostAlias>>(r, "server.hostAliases", names) {
        accept(r, spec, cluster, "server.hostAliases", |pod| {
            pod.host_aliases = aliases
        });
    }
    if r.changed("server.terminationGracePeriodSeconds") {
        let path = "server.terminationGracePeriodSeconds";
        match number(r, path) {
            Some(seconds) => accept(r, spec, cluster, path, |pod| {
                pod.termination_grace_period_seconds = Some(seconds)
            }),
            None => r.left(
                path,
                Why::NeedsAction,
                "it is not a whole number of seconds",
            ),
        }
    }
    r.consume("server.terminationGracePeriodSeconds");
    if r.changed("server.preStopSleepSeconds") {
        let path = "server.preStopSleepSeconds";
        match number(r, path).and_then(|n| i32::try_from(n).ok()) {
            Some(seconds) => accept(r, spec, cluster, path, |pod| {
                pod.pre_stop_sleep_seconds = Some(seconds)
            }),
            None => r.left(
                path,
                Why::NeedsAction,
                "it is not a whole number of seconds",
            ),
        }
    }
    r.consume("server.preStopSleepSeconds");
    readiness(r, spec, cluster);
    liveness(r, spec, cluster);
    if let Some(annotations) = string_map(r, "server.statefulSet.annotations")
        && !annotations.is_empty()
    {
        accept(r, spec, cluster, "server.statefulSet.annotations", |pod| {
            pod.stateful_set_annotations = annotations
        });
    }
}

/// Applies a change to `spec.pod` when VaultCluster's validation accepts it on its own;
/// otherwise names the value with the refusal.
fn accept(
    r: &mut Reader,
    spec: &mut VaultClusterSpec,
    cluster: &str,
    path: &str,
    change: impl FnOnce(&mut PodSpec),
) {
    let mut probe = VaultClusterSpec::default();
    probe.backup.enabled = false;
    probe.replicas = spec.replicas;
    change(&mut probe.pod);
    let refused: Vec<String> = validate_spec(cluster, &probe)
        .into_iter()
        .filter(|v| v.field.starts_with("spec.pod."))
        .map(|v| v.message)
        .collect();
    if refused.is_empty() {
        let pod = std::mem::take(&mut probe.pod);
        merge_pod(&mut spec.pod, pod);
    } else {
        r.left(
            path,
            Why::NotUnderOperator,
            format!("VaultCluster refuses it: {}", refused.join("; ")),
        );
    }
}

/// Copies the workload fields `from` sets into `into`.
fn merge_pod(into: &mut PodSpec, from: PodSpec) {
    if !from.extra_args.is_empty() {
        into.extra_args = from.extra_args;
    }
    if !from.extra_ports.is_empty() {
        into.extra_ports = from.extra_ports;
    }
    if !from.host_aliases.is_empty() {
        into.host_aliases = from.host_aliases;
    }
    into.termination_grace_period_seconds = from
        .termination_grace_period_seconds
        .or(into.termination_grace_period_seconds);
    into.pre_stop_sleep_seconds = from.pre_stop_sleep_seconds.or(into.pre_stop_sleep_seconds);
    into.readiness_probe = from.readiness_probe.or(into.readiness_probe.take());
    into.liveness_probe = from.liveness_probe.or(into.liveness_probe.take());
    if !from.stateful_set_annotations.is_empty() {
        into.stateful_set_annotations = from.stateful_set_annotations;
    }
    into.disruption_budget = from.disruption_budget.or(into.disruption_budget.take());
}

/// `server.ha.disruptionBudget`: the chart renders the budget in HA mode only, and uses
/// `maxUnavailable` only when it is a number other than 0 and there is more than one
/// replica (else its default, which is VaultCluster's too).
pub(super) fn disruption_budget(
    r: &mut Reader,
    spec: &mut VaultClusterSpec,
    cluster: &str,
    mode: Mode,
) {
    let base = "server.ha.disruptionBudget";
    if !matches!(mode, Mode::Ha { .. }) {
        r.consume(base);
        return;
    }
    if !super::is_true(r.take(&format!("{base}.enabled")).as_ref()) {
        r.consume(base);
        accept(r, spec, cluster, base, |pod| {
            pod.disruption_budget = Some(DisruptionBudgetSpec {
                enabled: Some(false),
                max_unavailable: None,
            })
        });
        return;
    }
    let path = format!("{base}.maxUnavailable");
    let given = truthy(r.peek(&path)) && spec.replicas > 1;
    if !given {
        r.consume(&path);
        return;
    }
    match number(r, &path).and_then(|n| i32::try_from(n).ok()) {
        Some(max) => accept(r, spec, cluster, &path, |pod| {
            pod.disruption_budget = Some(DisruptionBudgetSpec {
                enabled: None,
                max_unavailable: Some(max),
            })
        }),
        None => r.left(
            &path,
            Why::NeedsAction,
            "it is not a whole number (a percentage is not supported): write a number of pods",
        ),
    }
}

/// Characters the chart's shell would interpret in `server.extraArgs`.
const SHELL_SYNTAX: &[char] = &[
    '\'', '"', '`', '$', ';', '|', '&', '<', '>', '(', ')', '{', '}', '\\', '*', '?', '!', '#',
    '~', '[', ']',
];

/// `server.extraArgs` is a string the chart pastes into its start script; VaultCluster
/// takes one flag per entry. `-flag value` pairs become `-flag=value` (`vault server`
/// takes no positional arguments, so a word after a flag is always its value).
fn extra_args(r: &mut Reader, spec: &mut VaultClusterSpec, cluster: &str) {
    let path = "server.extraArgs";
    let text = r.take_str(path);
    if text.trim().is_empty() {
        return;
    }
    if text.contains(SHELL_SYNTAX) {
        r.left(
            path,
            Why::NeedsAction,
            "it holds shell syntax (quotes, variables, command separators), which the chart's \
             start script interprets and VaultCluster never does: write spec.pod.extraArgs \
             by hand, one -flag=value per entry",
        );
        return;
    }
    let mut args: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match args.last_mut() {
            Some(last)
                if !word.starts_with('-') && last.starts_with('-') && !last.contains('=') =>
            {
                last.push('=');
                last.push_str(word);
            }
            _ => args.push(word.to_owned()),
        }
    }
    accept(r, spec, cluster, path, |pod| pod.extra_args = args);
}

/// A whole number, also when written as a string.
fn number(r: &mut Reader, path: &str) -> Option<i64> {
    match r.take(path)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// One whole-number field of a probe.
type ProbeField = fn(&mut ProbeSpec) -> &mut Option<i32>;

/// The probe settings that differ from the chart's defaults (which are VaultCluster's
/// too, but for the liveness path).
fn probe_tuning(r: &mut Reader, base: &str, probe: &mut ProbeSpec) -> bool {
    let mut fine = true;
    let timing: [(&str, ProbeField); 6] = [
        ("port", |p| &mut p.port),
        ("initialDelaySeconds", |p| &mut p.initial_delay_seconds),
        ("periodSeconds", |p| &mut p.period_seconds),
        ("timeoutSeconds", |p| &mut p.timeout_seconds),
        ("successThreshold", |p| &mut p.success_threshold),
        ("failureThreshold", |p| &mut p.failure_threshold),
    ];
    for (key, field) in timing {
        let path = format!("{base}.{key}");
        if !r.changed(&path) {
            r.consume(&path);
            continue;
        }
        match number(r, &path).and_then(|n| i32::try_from(n).ok()) {
            Some(n) => *field(probe) = Some(n),
            None => {
                r.left(
                    &path,
                    Why::NeedsAction,
                    "it is not a whole number (a named port is not supported): write it as \
                     a number",
                );
                fine = false;
            }
        }
    }
    fine
}

fn readiness(r: &mut Reader, spec: &mut VaultClusterSpec, cluster: &str) {
    let base = "server.readinessProbe";
    let mut probe = ProbeSpec::default();
    if !super::is_true(r.take(&format!("{base}.enabled")).as_ref()) {
        probe.enabled = Some(false);
        r.consume(base);
    } else {
        // Without a path the chart runs `vault status`; VaultCluster's default is
        // sys/health with the codes mapped, which means the same (unsealed and serving).
        let path = r.take_str(&format!("{base}.path"));
        probe.path = (!path.is_empty()).then_some(path);
        if !probe_tuning(r, base, &mut probe) {
            return;
        }
    }
    if probe != ProbeSpec::default() {
        accept(r, spec, cluster, base, |pod| {
            pod.readiness_probe = Some(probe)
        });
    }
}

fn liveness(r: &mut Reader, spec: &mut VaultClusterSpec, cluster: &str) {
    let base = "server.livenessProbe";
    if !super::is_true(r.take(&format!("{base}.enabled")).as_ref()) {
        r.consume(base);
        return;
    }
    if let Some(Value::Array(command)) = r.take(&format!("{base}.execCommand"))
        && !command.is_empty()
    {
        r.left(
            format!("{base}.execCommand"),
            Why::NotUnderOperator,
            "a command run inside the Vault container, where the TLS key and the unsealed \
             server live; VaultCluster's liveness probe is an HTTP GET: set \
             spec.pod.livenessProbe.path instead",
        );
        return;
    }
    let mut probe = ProbeSpec {
        enabled: Some(true),
        // The chart's path, written out: VaultCluster's default also counts a sealed or
        // uninitialized server as alive, where the chart's restarts it.
        path: Some(r.take_str(&format!("{base}.path"))).filter(|p| !p.is_empty()),
        ..ProbeSpec::default()
    };
    if probe_tuning(r, base, &mut probe) {
        accept(r, spec, cluster, base, |pod| {
            pod.liveness_probe = Some(probe)
        });
    }
}
