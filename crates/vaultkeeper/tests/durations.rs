//! A duration travels from the VaultCluster to the Job that reads it: what the CRD and
//! validation accept is rendered into the CronJob's environment, and the job's own
//! argument parsing reads it back to the same number of seconds. What they refuse, the
//! job refuses too, in the same words.

use clap::Parser;
use vaultkeeper::commands::backup::{BackupArgs, retention_policy};
use vaultkeeper::commands::metrics_token::token_period_seconds;
use vaultkeeper_api::{VaultCluster, Violation, duration, parse_manifests, rules, validate};
use vaultkeeper_render::{RenderContext, RenderError, render};

/// `vaultkeeper backup`'s arguments, parsed the way the binary parses them.
#[derive(Parser)]
struct Backup {
    #[command(flatten)]
    args: BackupArgs,
}

fn cluster(max_age: &str, token_period: &str) -> VaultCluster {
    let yaml = format!(
        "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata:\n  name: vault\n  \
         namespace: vault\nspec:\n  tls:\n    mode: Disabled\n  backup:\n    s3:\n      \
         bucket: snapshots\n      useAmbientCredentials: true\n    retention:\n      \
         maxAge: {max_age:?}\n  monitoring:\n    tokenRenewSchedule: '*/10 * * * *'\n    \
         tokenPeriod: {token_period:?}\n"
    );
    parse_manifests(&yaml)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
        .remove(0)
}

/// The value of `variable` in the container of the CronJob `name`.
fn cronjob_env(cluster: &VaultCluster, name: &str, variable: &str) -> String {
    let manifests = render(cluster, &RenderContext::new("vault", None)).expect("renders");
    let cronjob = manifests
        .iter()
        .find(|m| m.kind == "CronJob" && m.name == name)
        .unwrap_or_else(|| panic!("no CronJob {name}"));
    let env =
        &cronjob.object["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"];
    env.as_array()
        .expect("an env list")
        .iter()
        .find(|e| e["name"] == variable)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("no {variable} in {name}"))
        .to_owned()
}

/// `--max-age` through clap and the retention policy the backup command builds from it.
fn backup_max_age_seconds(max_age: &str) -> Result<i64, String> {
    let parsed = Backup::try_parse_from([
        "backup",
        "--vault-addr",
        "https://vault-active.vault.svc:8200",
        "--bucket",
        "snapshots",
        "--cluster-name",
        "vault",
        "--encryption-key-file",
        "/etc/vaultkeeper/backup-key/key",
        // `=` keeps clap from reading a value such as `-1d` as a flag.
        &format!("--max-age={max_age}"),
    ])
    .map_err(|e| e.to_string())?;
    let policy = retention_policy(parsed.args.keep_last, parsed.args.max_age.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(policy.max_age.expect("a max age").as_secs())
}

#[test]
fn every_accepted_duration_reaches_the_jobs_as_the_same_number_of_seconds() {
    for (written, seconds) in [
        ("1h30m", 5_400),
        ("2w", 14 * 86_400),
        ("36h", 36 * 3_600),
        ("14d", 14 * 86_400),
        ("90m", 5_400),
    ] {
        let cluster = cluster(written, written);
        validate(&cluster).unwrap_or_else(|e| panic!("{written}: {e}"));

        let max_age = cronjob_env(&cluster, "vault-backup", "VAULTKEEPER_MAX_AGE");
        assert_eq!(
            backup_max_age_seconds(&max_age),
            Ok(seconds),
            "maxAge {written} rendered as {max_age}"
        );

        let period = cronjob_env(&cluster, "vault-metrics", "VAULTKEEPER_TOKEN_PERIOD");
        assert_eq!(
            token_period_seconds(&period).map_err(|e| e.to_string()),
            Ok(seconds),
            "tokenPeriod {written} rendered as {period}"
        );
    }
}

#[test]
fn what_validation_refuses_the_backup_job_refuses_in_the_same_words() {
    let grammar = format!("must be {}", duration::description());
    let rule = rules::retention_max_age();
    for refused in ["1x", "h", "-1d"] {
        let cluster = cluster(refused, "2w");
        let violations: Vec<Violation> = validate(&cluster)
            .expect_err(refused)
            .violations
            .into_iter()
            .filter(|v| v.field == rule.field)
            .collect();
        assert_eq!(
            violations,
            vec![Violation {
                field: rule.field.to_owned(),
                message: rule.message.clone(),
            }],
            "{refused}"
        );
        assert!(rule.message.ends_with(&grammar), "{}", rule.message);

        let refusal = backup_max_age_seconds(refused).expect_err(refused);
        assert_eq!(
            refusal,
            format!("invalid --max-age: {refused:?} {grammar}"),
            "{refused}"
        );

        // Rendering refuses it too, rather than handing every Job a value it cannot read.
        match render(&cluster, &RenderContext::new("vault", None)) {
            Err(RenderError::Invalid { field, detail }) => {
                assert_eq!((field, detail), (rule.field, rule.message.clone()));
            }
            other => panic!("{refused}: rendered {:?}", other.map(|m| m.len())),
        }
    }
}
