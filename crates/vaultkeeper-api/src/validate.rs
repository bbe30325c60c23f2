//! The validation rules of [`crate::rules`], checked in Rust.
//!
//! The operator runs this on every pass and reports the result as the `SpecValid`
//! condition; `vaultkeeper render` runs it before rendering. Every check here uses the
//! message of the matching CEL rule, so a person sees the same sentence whichever layer
//! caught the mistake. A few checks need more than CEL can express (a cron expression's
//! meaning, a token period against the renewal schedule); they are marked operator-only.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{LazyLock, Mutex, OnceLock};

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use regex::Regex;

use crate::rules::{self, SpecRule};
use crate::spec::{
    BackupSpec, IngressSpec, Initialization, RecoverySpec, ShamirSpec, TlsMode, TlsSpec, Transport,
    UnsealSpec, UnsealType, VaultClusterSpec,
};
use crate::{Duration, Flavor, InitializedWith, VaultCluster};

/// One thing wrong with a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The field, as a path from the object root (e.g. `spec.unseal.shamir.threshold`).
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Violation {
    fn of(rule: &SpecRule) -> Self {
        Self {
            field: rule.field.to_owned(),
            message: rule.message.clone(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every violation found in one VaultCluster.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSpec {
    /// What is wrong, in the order the fields appear in the spec.
    pub violations: Vec<Violation>,
}

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let messages: Vec<&str> = self.violations.iter().map(|v| v.message.as_str()).collect();
        f.write_str(&messages.join("; "))
    }
}

/// Checks a VaultCluster the way the CRD's rules do, plus the checks only the operator
/// can make.
pub fn validate(vault_cluster: &VaultCluster) -> Result<(), InvalidSpec> {
    let name = vault_cluster.metadata.name.as_deref().unwrap_or_default();
    let violations = validate_spec(name, &vault_cluster.spec);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(InvalidSpec { violations })
    }
}

/// Checks a spec for the VaultCluster called `name`.
pub fn validate_spec(name: &str, spec: &VaultClusterSpec) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut check = |ok: bool, rule: SpecRule| {
        if !ok {
            found.push(Violation::of(&rule));
        }
    };

    check(
        name.len() <= crate::names::MAX_CLUSTER_NAME,
        rules::name_length(),
    );
    check(DNS_1035.is_match(name), rules::name_format());
    check(matches!(spec.replicas, 1 | 3 | 5 | 7), rules::replicas());

    let explicit_openbao = spec.flavor == Some(Flavor::OpenBao);
    check(
        spec.unseal.kind != UnsealType::Static || explicit_openbao,
        rules::static_seal_needs_openbao(),
    );
    check(
        spec.keys.initialization != Initialization::SelfInit || explicit_openbao,
        rules::self_init_needs_openbao(),
    );
    check(
        spec.keys.initialization != Initialization::SelfInit || spec.unseal.kind.is_auto_unseal(),
        rules::self_init_needs_auto_unseal(),
    );
    check(
        spec.keys
            .rotation
            .as_ref()
            .is_none_or(|r| r.rekey.is_none())
            || !spec.unseal.kind.is_auto_unseal(),
        rules::rekey_needs_shamir(),
    );
    check(
        !(spec.ingress.enabled && spec.ingress.tls.passthrough)
            || spec.tls.mode != TlsMode::Disabled,
        rules::passthrough_needs_tls(),
    );

    check(
        spec.transport != Transport::Http || spec.tls.mode != TlsMode::Disabled,
        rules::http_transport_needs_tls(),
    );

    if let Some(config) = &spec.config {
        for (key, why) in rules::RENDERED_CONFIG_KEYS {
            check(
                !config.contains_key(*key),
                rules::config_key_not_rendered(key, why),
            );
        }
    }

    for (index, var) in spec.pod.env.iter().enumerate() {
        if !rules::env_name_allowed(&var.name) {
            found.push(reserved_env(index, &var.name));
        }
    }

    found.extend(validate_pod(name, spec));
    found.extend(validate_storage(spec));
    found.extend(validate_tls(&spec.tls));
    found.extend(validate_unseal(&spec.unseal));
    found.extend(validate_ingress(&spec.ingress));
    found.extend(validate_backup(&spec.backup));
    found.extend(validate_escrow(spec));
    found.extend(validate_monitoring(spec));
    found
}

/// The violation for `spec.pod.env[index]`: the rule's message, after the exact entry
/// (which CEL cannot name: the API server prints the list's path).
fn reserved_env(index: usize, name: &str) -> Violation {
    let rule = rules::pod_env_not_reserved();
    Violation {
        field: format!("spec.pod.env[{index}].name"),
        message: format!("spec.pod.env[{index}].name is {name}: {}", rule.message),
    }
}

/// The fields of `spec` that are fixed once the cluster is initialized, as values (see
/// [`InitializedWith`]).
pub fn fixed_fields(name: &str, spec: &VaultClusterSpec) -> InitializedWith {
    InitializedWith {
        flavor: spec.effective_flavor(),
        unseal_type: spec.unseal.kind,
        keys_secret_name: spec
            .keys
            .secret_name
            .clone()
            .unwrap_or_else(|| crate::ClusterNames::new(name).default_keys_secret()),
        initialization: spec.keys.initialization,
    }
}

/// The fixed fields of `now` that differ from what the cluster was initialized with, with
/// the messages of the CRD's transition rules ([`rules::immutable_rules`]). Catches what
/// those rules cannot: objects written before the rules existed, and a flavor that changed
/// through the image it is detected from.
pub fn validate_fixed(initialized: &InitializedWith, now: &InitializedWith) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut check = |same: bool, rule: SpecRule| {
        if !same {
            found.push(Violation::of(&rule));
        }
    };
    check(now.flavor == initialized.flavor, rules::flavor_immutable());
    check(
        now.unseal_type == initialized.unseal_type,
        rules::unseal_type_immutable(),
    );
    check(
        now.keys_secret_name == initialized.keys_secret_name,
        rules::keys_secret_immutable(),
    );
    check(
        now.initialization == initialized.initialization,
        rules::initialization_immutable(),
    );
    found
}

/// `spec.pod`'s workload settings: the CRD's rules, the schema's ranges (which the API
/// server checks before any rule) and the names of the cluster's own Services, which no
/// rule can know (operator-only).
fn validate_pod(name: &str, spec: &VaultClusterSpec) -> Vec<Violation> {
    let pod = &spec.pod;
    let mut found = Vec::new();
    if pod.extra_args.iter().any(|a| !EXTRA_ARG_FORM.is_match(a)) {
        found.push(Violation::of(&rules::extra_args_form()));
    }
    if pod
        .extra_args
        .iter()
        .any(|a| EXTRA_ARG_RESERVED.is_match(a))
    {
        found.push(Violation::of(&rules::extra_args_not_reserved()));
    }
    if pod.extra_ports.iter().any(|p| {
        rules::RENDERED_PORTS.contains(&p.container_port)
            || p.name
                .as_deref()
                .is_some_and(|n| rules::RENDERED_PORT_NAMES.contains(&n))
    }) {
        found.push(Violation::of(&rules::extra_ports_no_clash()));
    }
    if pod.extra_ports.iter().any(|p| {
        p.host_port.is_some_and(|h| h != 0) || p.host_ip.as_deref().is_some_and(|h| !h.is_empty())
    }) {
        found.push(Violation::of(&rules::extra_ports_no_host_port()));
    }
    let hostnames = || {
        pod.host_aliases
            .iter()
            .flat_map(|h| h.hostnames.iter().flatten())
    };
    let names = crate::ClusterNames::new(name);
    if hostnames().any(|n| !rules::host_alias_allowed(n)) {
        found.push(Violation::of(&rules::host_aliases_not_in_cluster()));
    } else if let Some(hostname) = hostnames().find(|n| rules::host_alias_names_cluster(n, &names))
    {
        found.push(Violation {
            field: "spec.pod.hostAliases".to_owned(),
            message: format!(
                "spec.pod.hostAliases names {hostname:?}, a name of this cluster: {}",
                rules::host_alias_message()
            ),
        });
    }
    if pod
        .liveness_probe
        .as_ref()
        .and_then(|p| p.success_threshold)
        .is_some_and(|t| t != 1)
    {
        found.push(Violation::of(&rules::liveness_success_threshold()));
    }
    for (field, probe) in [
        ("spec.pod.readinessProbe", &pod.readiness_probe),
        ("spec.pod.livenessProbe", &pod.liveness_probe),
    ] {
        let Some(probe) = probe else { continue };
        if probe.path.as_deref().is_some_and(|p| !p.starts_with('/')) {
            let mut violation = Violation::of(&rules::probe_path_absolute());
            violation.field = format!("{field}.path");
            found.push(violation);
        }
        let ranges = [
            ("port", probe.port, 1, Some(65535)),
            ("initialDelaySeconds", probe.initial_delay_seconds, 0, None),
            ("periodSeconds", probe.period_seconds, 1, None),
            ("timeoutSeconds", probe.timeout_seconds, 1, None),
            ("successThreshold", probe.success_threshold, 1, None),
            ("failureThreshold", probe.failure_threshold, 1, None),
        ];
        for (key, value, min, max) in ranges {
            found.extend(range(
                &format!("{field}.{key}"),
                value.map(i64::from),
                min,
                max,
            ));
        }
    }
    found.extend(range(
        "spec.pod.terminationGracePeriodSeconds",
        pod.termination_grace_period_seconds,
        0,
        None,
    ));
    found.extend(range(
        "spec.pod.preStopSleepSeconds",
        pod.pre_stop_sleep_seconds.map(i64::from),
        0,
        None,
    ));
    if let Some(max) = pod
        .disruption_budget
        .as_ref()
        .and_then(|b| b.max_unavailable)
    {
        if max > (spec.replicas - 1) / 2 {
            found.push(Violation::of(&rules::disruption_budget_keeps_quorum()));
        }
        found.extend(range(
            "spec.pod.disruptionBudget.maxUnavailable",
            Some(i64::from(max)),
            0,
            None,
        ));
    }
    if pod
        .stateful_set_annotations
        .keys()
        .any(|k| k.starts_with("vaultkeeper.io/"))
    {
        found.push(Violation::of(&rules::statefulset_annotations_not_reserved()));
    }
    found
}

/// `spec.storage`'s mount paths and claim annotations; the data and audit paths are also
/// compared with the flavor's defaults filled in (operator-only: the rule cannot know the
/// flavor's directories).
fn validate_storage(spec: &VaultClusterSpec) -> Vec<Violation> {
    let storage = &spec.storage;
    let mut found = Vec::new();
    if storage
        .mount_path
        .as_deref()
        .is_some_and(|p| !rules::mount_path_allowed(p))
    {
        found.push(Violation::of(&rules::storage_mount_path(
            "spec.storage.mountPath",
        )));
    }
    let reserved = |k: &String| {
        rules::RESERVED_CLAIM_ANNOTATIONS
            .iter()
            .any(|p| k.starts_with(p))
    };
    if storage.annotations.keys().any(reserved) {
        found.push(Violation::of(&rules::claim_annotations_not_reserved(
            "spec.storage.annotations",
        )));
    }
    let Some(audit) = &storage.audit else {
        return found;
    };
    if audit
        .mount_path
        .as_deref()
        .is_some_and(|p| !rules::mount_path_allowed(p))
    {
        found.push(Violation::of(&rules::storage_mount_path(
            "spec.storage.audit.mountPath",
        )));
    }
    if audit.annotations.keys().any(reserved) {
        found.push(Violation::of(&rules::claim_annotations_not_reserved(
            "spec.storage.audit.annotations",
        )));
    }
    let root = match spec.effective_flavor() {
        Flavor::Vault => "/vault",
        Flavor::OpenBao => "/openbao",
    };
    let data = storage
        .mount_path
        .clone()
        .unwrap_or_else(|| format!("{root}/data"));
    let audit = audit
        .mount_path
        .clone()
        .unwrap_or_else(|| format!("{root}/audit"));
    if data == audit
        || data.starts_with(&format!("{audit}/"))
        || audit.starts_with(&format!("{data}/"))
    {
        let both_given = storage.mount_path.is_some()
            && storage
                .audit
                .as_ref()
                .is_some_and(|a| a.mount_path.is_some());
        found.push(if both_given {
            Violation::of(&rules::storage_mount_paths_distinct())
        } else {
            Violation {
                field: "spec.storage.audit.mountPath".to_owned(),
                message: format!(
                    "the data volume ({data}) and the audit volume ({audit}) overlap: {}",
                    rules::storage_distinct_message()
                ),
            }
        });
    }
    found
}

/// A schema range, checked in Rust for objects that reached the cluster without it.
fn range(field: &str, value: Option<i64>, min: i64, max: Option<i64>) -> Option<Violation> {
    let value = value?;
    let within = value >= min && max.is_none_or(|max| value <= max);
    (!within).then(|| Violation {
        field: field.to_owned(),
        message: match max {
            Some(max) => format!("{field} must be between {min} and {max}, not {value}"),
            None => format!("{field} must be at least {min}, not {value}"),
        },
    })
}

static DNS_1035: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("^[a-z]([-a-z0-9]*[a-z0-9])?$").unwrap_or_else(|e| unreachable!("{e}"))
});
static EXTRA_ARG_FORM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(rules::EXTRA_ARG_FORM).unwrap_or_else(|e| unreachable!("{e}")));
static EXTRA_ARG_RESERVED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(rules::EXTRA_ARG_RESERVED).unwrap_or_else(|e| unreachable!("{e}")));
static CRON: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&rules::cron_regex()).unwrap_or_else(|e| unreachable!("{e}")));

fn validate_tls(tls: &TlsSpec) -> Vec<Violation> {
    let mut found = Vec::new();
    let has_secret_name = tls.secret_name.as_deref().is_some_and(|s| !s.is_empty());
    if tls.mode == TlsMode::Secret && !has_secret_name {
        found.push(Violation::of(&rules::tls_secret_needs_name()));
    }
    if tls.secret_name.is_some() && tls.mode != TlsMode::Secret {
        found.push(Violation::of(
            &rules::tls_secret_name_only_with_secret_mode(),
        ));
    }
    if tls.mode == TlsMode::CertManager && tls.cert_manager.is_none() {
        found.push(Violation::of(&rules::tls_cert_manager_needs_issuer()));
    }
    if tls.cert_manager.is_some() && tls.mode != TlsMode::CertManager {
        found.push(Violation::of(&rules::tls_cert_manager_only_with_mode()));
    }
    found
}

fn validate_unseal(unseal: &UnsealSpec) -> Vec<Violation> {
    let mut found = Vec::new();
    let blocks = [
        (UnsealType::Transit, unseal.transit.is_some()),
        (UnsealType::AwsKms, unseal.aws_kms.is_some()),
        (UnsealType::GcpCkms, unseal.gcp_ckms.is_some()),
        (UnsealType::AzureKeyVault, unseal.azure_key_vault.is_some()),
        (UnsealType::Static, unseal.static_key.is_some()),
    ];
    for ((kind, present), (kind_name, field)) in blocks.iter().zip(rules::SEAL_PROVIDERS) {
        if unseal.kind == *kind && !present {
            found.push(Violation::of(&rules::seal_type_needs_block(
                kind_name, field,
            )));
        }
        if *present && unseal.kind != *kind {
            found.push(Violation::of(&rules::seal_block_needs_type(
                kind_name, field,
            )));
        }
    }
    if unseal.shamir.is_some() && unseal.kind != UnsealType::Shamir {
        found.push(Violation::of(&rules::shamir_only_with_shamir()));
    }
    if unseal.recovery.is_some() && unseal.kind == UnsealType::Shamir {
        found.push(Violation::of(&rules::recovery_only_with_auto_unseal()));
    }
    if let Some(ShamirSpec { shares, threshold }) = &unseal.shamir {
        found.extend(validate_shares("spec.unseal.shamir", *shares, *threshold));
    }
    if let Some(RecoverySpec { shares, threshold }) = &unseal.recovery {
        found.extend(validate_shares("spec.unseal.recovery", *shares, *threshold));
    }
    found
}

fn validate_shares(field: &'static str, shares: i32, threshold: i32) -> Vec<Violation> {
    let share_rules = rules::share_rules(field);
    let mut found = Vec::new();
    // The schema's ranges (1..=255), which the API server checks before any CEL rule.
    for (value, name) in [(shares, "shares"), (threshold, "threshold")] {
        if !(1..=255).contains(&value) {
            found.push(Violation {
                field: format!("{field}.{name}"),
                message: format!("{field}.{name} must be between 1 and 255, not {value}"),
            });
        }
    }
    if threshold > shares {
        found.push(Violation::of(&share_rules[0]));
    }
    if shares != 1 && threshold < 2 {
        found.push(Violation::of(&share_rules[1]));
    }
    found
}

fn validate_ingress(ingress: &IngressSpec) -> Vec<Violation> {
    let mut found = Vec::new();
    if ingress.enabled && ingress.hosts.is_empty() {
        found.push(Violation::of(&rules::ingress_needs_hosts()));
    }
    if ingress.tls.passthrough && ingress.tls.cert_manager.is_some() {
        found.push(Violation::of(&rules::passthrough_excludes_cert_manager()));
    }
    found
}

/// `spec.keys.escrow` (operator-only: CEL cannot parse an age recipient). A recipient is
/// parsed exactly as the escrow encrypts to it, so a key accepted here always works.
fn validate_escrow(spec: &VaultClusterSpec) -> Vec<Violation> {
    let Some(escrow) = &spec.keys.escrow else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if escrow.recipients.is_empty() {
        found.push(Violation {
            field: "spec.keys.escrow.recipients".to_owned(),
            message: "spec.keys.escrow.recipients is empty: add at least one age public key \
                      (age1..., from `age-keygen` or `vaultkeeper keys generate-identity`)"
                .to_owned(),
        });
    }
    for (index, recipient) in escrow.recipients.iter().enumerate() {
        if let Err(problem) = parse_recipient(recipient) {
            found.push(Violation {
                field: format!("spec.keys.escrow.recipients[{index}]"),
                message: format!(
                    "spec.keys.escrow.recipients[{index}] is not an age X25519 public key \
                     ({problem}): give the `age1...` line that `age-keygen` or \
                     `vaultkeeper keys generate-identity` prints as the public key, never \
                     the AGE-SECRET-KEY"
                ),
            });
        }
    }
    let backup_bucket = spec.backup.enabled && spec.backup.s3.is_some();
    if escrow.object_store && !backup_bucket {
        found.push(Violation {
            field: "spec.keys.escrow.objectStore".to_owned(),
            message: "spec.keys.escrow.objectStore writes the escrow next to the backups, but \
                      spec.backup has no S3 bucket (or is disabled; the escrow is written to \
                      S3 only, not yet to spec.backup.gcs or spec.backup.azure): configure \
                      spec.backup.s3, or set objectStore: false and give \
                      spec.keys.escrow.secret"
                .to_owned(),
        });
    }
    if !escrow.object_store && escrow.secret.is_none() {
        found.push(Violation {
            field: "spec.keys.escrow".to_owned(),
            message: "spec.keys.escrow writes nowhere: set objectStore: true (with \
                      spec.backup.s3) or give spec.keys.escrow.secret"
                .to_owned(),
        });
    }
    if spec.keys.initialization == Initialization::SelfInit {
        found.push(Violation {
            field: "spec.keys.escrow".to_owned(),
            message: "spec.keys.escrow needs the init output, which vaultkeeper never holds \
                      with initialization: SelfInit: remove spec.keys.escrow, or keep the \
                      recovery keys of a self-initialized cluster yourself"
                .to_owned(),
        });
    }
    found
}

/// Parses one age X25519 recipient; the error says what is wrong without echoing the text
/// (a person may paste a secret key by mistake).
pub fn parse_recipient(text: &str) -> Result<age::x25519::Recipient, &'static str> {
    let trimmed = text.trim();
    if trimmed.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        return Err("this is a secret key: remove it from the spec now and generate a new one");
    }
    if !trimmed.starts_with("age1") {
        return Err("it does not start with age1");
    }
    if trimmed != text {
        return Err("it has leading or trailing spaces");
    }
    trimmed
        .parse::<age::x25519::Recipient>()
        .map_err(|_| "its bech32 encoding or length is wrong")
}

fn validate_backup(backup: &BackupSpec) -> Vec<Violation> {
    let mut found = Vec::new();
    let stores = [
        backup.s3.is_some(),
        backup.gcs.is_some(),
        backup.azure.is_some(),
    ];
    if stores.iter().filter(|set| **set).count() > 1 {
        found.push(Violation::of(&rules::backup_one_store()));
    }
    if backup.enabled {
        let s3_bucket = backup.s3.as_ref().is_some_and(|s3| !s3.bucket.is_empty());
        let gcs_bucket = backup
            .gcs
            .as_ref()
            .is_some_and(|gcs| !gcs.bucket.is_empty());
        if !s3_bucket && !gcs_bucket && backup.azure.is_none() {
            found.push(Violation::of(&rules::backup_needs_bucket()));
        }
        if let Some(s3) = &backup.s3
            && s3.credentials_secret.is_none()
            && !s3.use_ambient_credentials
        {
            found.push(Violation::of(&rules::backup_needs_credentials()));
        }
        if let Some(gcs) = &backup.gcs
            && gcs.credentials_secret.is_none()
            && !gcs.use_ambient_credentials
        {
            found.push(Violation::of(&rules::gcs_needs_credentials()));
        }
        if let Some(azure) = &backup.azure
            && azure.credentials_secret.is_none()
            && !azure.use_ambient_credentials
        {
            found.push(Violation::of(&rules::azure_needs_credentials()));
        }
    }
    found.extend(validate_schedule(
        &backup.schedule,
        rules::backup_schedule(),
    ));
    let retention = &backup.retention;
    if retention.keep_last.is_none() && retention.max_age.is_none() {
        found.push(Violation::of(&rules::retention_keeps_something()));
    }
    if let Some(age) = &retention.max_age
        && age.parse::<Duration>().is_err()
    {
        found.push(Violation::of(&rules::retention_max_age()));
    }
    found
}

fn validate_monitoring(spec: &VaultClusterSpec) -> Vec<Violation> {
    let monitoring = &spec.monitoring;
    let mut found = validate_schedule(
        &monitoring.token_renew_schedule,
        rules::token_renew_schedule(),
    );
    let period = match monitoring.token_period.parse::<Duration>() {
        Ok(period) => Some(period.as_seconds()),
        Err(_) => {
            found.push(Violation::of(&rules::token_period()));
            None
        }
    };
    // Operator-only: a token that lapses between two renewals would break scraping every
    // time. Require the period to cover two renewal gaps, so one failed run is survivable.
    if let (Some(period), Some(gap)) = (
        period,
        longest_gap_seconds(&monitoring.token_renew_schedule),
    ) && period < 2 * gap
    {
        found.push(Violation {
            field: "spec.monitoring.tokenPeriod".to_owned(),
            message: format!(
                "spec.monitoring.tokenPeriod ({}) must be at least twice the longest gap \
                 between renewals of spec.monitoring.tokenRenewSchedule ({}h), so one \
                 failed renewal does not let the metrics token lapse; raise the period to \
                 at least {}h or renew more often",
                monitoring.token_period,
                gap / 3600,
                (2 * gap + 3599) / 3600
            ),
        });
    }
    found
}

/// A cron schedule must match the CronJob grammar (the CEL rule) and mean something
/// (operator-only: e.g. February 30th never comes).
fn validate_schedule(schedule: &str, rule: SpecRule) -> Vec<Violation> {
    if !CRON.is_match(schedule) {
        return vec![Violation::of(&rule)];
    }
    match longest_gap_seconds(schedule) {
        Some(_) => Vec::new(),
        None => vec![Violation {
            field: rule.field.to_owned(),
            message: format!(
                "{} \"{schedule}\" never fires within a year; pick a date that exists",
                rule.field
            ),
        }],
    }
}

/// Expands the descriptors Kubernetes accepts into five-field expressions.
fn five_fields(schedule: &str) -> &str {
    match schedule {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    }
}

/// The longest time between two consecutive firings of a schedule over a year, in
/// seconds; `None` when the schedule does not parse or does not fire twice in a year.
/// Evaluated from a fixed instant, so the answer never depends on the clock.
///
/// Every reconcile pass asks for the same few schedules several times (validation, the
/// alerts' thresholds, backup health) and walking a frequent schedule takes milliseconds,
/// so answers are remembered; the memory is bounded and cleared when full.
pub fn longest_gap_seconds(schedule: &str) -> Option<i64> {
    static KNOWN: OnceLock<Mutex<HashMap<String, Option<i64>>>> = OnceLock::new();
    const MAX_KNOWN: usize = 256;
    let known = KNOWN.get_or_init(Mutex::default);
    if let Some(gap) = known
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(schedule)
    {
        return *gap;
    }
    let gap = walk_longest_gap(schedule);
    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
    if known.len() >= MAX_KNOWN {
        known.clear();
    }
    known.insert(schedule.to_owned(), gap);
    gap
}

fn walk_longest_gap(schedule: &str) -> Option<i64> {
    let cron = Cron::from_str(five_fields(schedule)).ok()?;
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single()?;
    let horizon = start + chrono::Duration::days(800);
    let mut previous: Option<DateTime<Utc>> = None;
    let mut longest = 0_i64;
    // Frequent schedules have short gaps: after enough firings the answer is known.
    for (count, next) in cron.iter_after(start).enumerate() {
        if next > horizon || count > 50_000 {
            break;
        }
        if let Some(previous) = previous {
            longest = longest.max((next - previous).num_seconds());
        }
        previous = Some(next);
    }
    (longest > 0).then_some(longest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_gap_of_weekly_and_monthly_schedules() {
        assert_eq!(longest_gap_seconds("0 13 * * 4"), Some(7 * 86_400));
        assert_eq!(longest_gap_seconds("@daily"), Some(86_400));
        // Monthly on the 1st: the longest month has 31 days.
        assert_eq!(longest_gap_seconds("0 0 1 * *"), Some(31 * 86_400));
        assert_eq!(longest_gap_seconds("0 0 30 2 *"), None);
    }
}
