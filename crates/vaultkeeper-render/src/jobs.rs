//! The CronJobs that run vaultkeeper itself: scheduled backups and the metrics-token
//! renewal. Each runs as its own ServiceAccount and logs in to Vault with its own
//! Kubernetes-auth role; neither ever sees the root token.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, KeyToPath, ObjectFieldSelector, PodSecurityContext, PodSpec,
    PodTemplateSpec, ProjectedVolumeSource, ResourceRequirements, SecretKeySelector,
    SecretVolumeSource, SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use vaultkeeper_api::login::{
    VAULT_LOGIN_AUDIENCE, VAULT_LOGIN_TOKEN_DIR, VAULT_LOGIN_TOKEN_FILE, VAULT_LOGIN_TOKEN_NAME,
    VAULT_LOGIN_TOKEN_SECONDS,
};
use vaultkeeper_api::rules::{self, SpecRule};
use vaultkeeper_api::{AzureCredentialKind, Duration, S3Spec};

use crate::labels::Component;
use crate::manifest::{Manifest, metadata};
use crate::tls::TlsFiles;
use crate::{RenderError, Scope};

const CA_DIR: &str = "/etc/vaultkeeper/tls";
const BACKUP_KEY_DIR: &str = "/etc/vaultkeeper/backup-key";
const STORE_CREDENTIALS_DIR: &str = "/etc/vaultkeeper/store-credentials";
/// The distroless "nonroot" user the vaultkeeper image runs as.
const JOB_USER: i64 = 65532;

/// Whether the backup CronJob is rendered: backups on and a bucket to send them to.
pub(crate) fn backup_enabled(scope: &Scope<'_>) -> bool {
    let backup = &scope.cluster.spec.backup;
    backup.enabled && backup.has_store()
}

pub(crate) fn render(scope: &Scope<'_>) -> Result<Vec<Manifest>, RenderError> {
    let mut out = Vec::new();
    if backup_enabled(scope) {
        out.push(backup_cronjob(scope)?);
    }
    if scope.cluster.spec.monitoring.enabled {
        out.push(metrics_token_cronjob(scope)?);
    }
    Ok(out)
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// A duration for a Job's flag, in the canonical form the Job's parser reads back to the
/// same length. A text that is not a duration is refused here, with the message of the
/// CRD rule it breaks, rather than by every Job at its start.
fn duration_env(name: &str, text: &str, rule: SpecRule) -> Result<EnvVar, RenderError> {
    let duration: Duration = text.parse().map_err(|_| RenderError::Invalid {
        field: rule.field,
        detail: rule.message,
    })?;
    Ok(env(name, duration.to_string()))
}

fn env_from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// Environment and volumes every job shares: where Vault is, how to trust it, and the
/// token to log in with.
fn vault_connection(
    scope: &Scope<'_>,
    role: String,
) -> (Vec<EnvVar>, Vec<Volume>, Vec<VolumeMount>) {
    let mut env_vars = vec![
        env("VAULTKEEPER_VAULT_ADDR", scope.active_address()),
        env("VAULTKEEPER_AUTH_ROLE", role),
        env("VAULTKEEPER_CLUSTER_NAME", scope.names.cluster()),
        env(
            "VAULTKEEPER_SERVICE_ACCOUNT_TOKEN_FILE",
            VAULT_LOGIN_TOKEN_FILE,
        ),
        EnvVar {
            name: "VAULTKEEPER_NAMESPACE".to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.namespace".to_owned(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
        },
    ];
    // The Job logs in to Vault with a token minted for Vault alone, never with its API
    // token (which the pod keeps for the Kubernetes API): a Vault server that records what
    // it is sent gets nothing the API server accepts.
    let mut volumes = vec![vault_login_token_volume()];
    let mut mounts = vec![read_only_mount(VAULT_LOGIN_VOLUME, VAULT_LOGIN_TOKEN_DIR)];
    if let TlsFiles::Enabled(files) = &scope.tls {
        env_vars.push(env("VAULTKEEPER_VAULT_CA_CERT", format!("{CA_DIR}/ca.crt")));
        volumes.push(secret_volume("vault-ca", &files.secret_name, "ca.crt"));
        mounts.push(read_only_mount("vault-ca", CA_DIR));
    }
    (env_vars, volumes, mounts)
}

const VAULT_LOGIN_VOLUME: &str = "vault-login-token";

/// The projected, audience-bound, short-lived token for Vault logins.
fn vault_login_token_volume() -> Volume {
    Volume {
        name: VAULT_LOGIN_VOLUME.to_owned(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o440),
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(VAULT_LOGIN_AUDIENCE.to_owned()),
                    expiration_seconds: Some(VAULT_LOGIN_TOKEN_SECONDS),
                    path: VAULT_LOGIN_TOKEN_NAME.to_owned(),
                }),
                ..VolumeProjection::default()
            }]),
        }),
        ..Volume::default()
    }
}

fn secret_volume(name: &str, secret: &str, key: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_owned()),
            items: Some(vec![KeyToPath {
                key: key.to_owned(),
                path: key.to_owned(),
                mode: None,
            }]),
            default_mode: Some(0o440),
            optional: Some(false),
        }),
        ..Volume::default()
    }
}

fn read_only_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

struct JobShape {
    name: String,
    component: Component,
    schedule: String,
    time_zone: Option<String>,
    suspend: bool,
    successful_history: i32,
    failed_history: i32,
    deadline_seconds: i64,
    args: Vec<String>,
    /// Labels for the pod only (e.g. the one Azure workload identity's webhook looks for).
    pod_labels: BTreeMap<String, String>,
    env: Vec<EnvVar>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
    resources: Option<ResourceRequirements>,
}

fn cronjob(scope: &Scope<'_>, shape: JobShape) -> Result<Manifest, RenderError> {
    let labels = scope.labels.object(shape.component);
    let job_labels: BTreeMap<String, String> = labels.clone();
    let mut pod_labels = job_labels.clone();
    pod_labels.extend(shape.pod_labels);
    let container = Container {
        name: match shape.component {
            Component::Backup => "backup",
            _ => "metrics-token",
        }
        .to_owned(),
        image: Some(scope.ctx.operator_image.to_owned()),
        args: Some(shape.args),
        env: Some(shape.env),
        volume_mounts: Some(shape.mounts),
        resources: shape.resources,
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let meta = metadata(scope, shape.name.clone(), labels);
    let cronjob = CronJob {
        metadata: meta.clone(),
        spec: Some(CronJobSpec {
            schedule: shape.schedule,
            time_zone: shape.time_zone,
            suspend: Some(shape.suspend),
            // Never two at once: two snapshots or two token renewals would race.
            concurrency_policy: Some("Forbid".to_owned()),
            successful_jobs_history_limit: Some(shape.successful_history),
            failed_jobs_history_limit: Some(shape.failed_history),
            starting_deadline_seconds: Some(600),
            job_template: JobTemplateSpec {
                // The Jobs carry the cluster's labels too, so the operator can watch the
                // Jobs of its clusters (their owner is the CronJob, not the VaultCluster).
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(1),
                    active_deadline_seconds: Some(shape.deadline_seconds),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(pod_labels),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(PodSpec {
                            service_account_name: Some(shape.name),
                            restart_policy: Some("Never".to_owned()),
                            security_context: Some(PodSecurityContext {
                                run_as_non_root: Some(true),
                                run_as_user: Some(JOB_USER),
                                run_as_group: Some(JOB_USER),
                                fs_group: Some(JOB_USER),
                                ..PodSecurityContext::default()
                            }),
                            containers: vec![container],
                            volumes: Some(shape.volumes),
                            ..PodSpec::default()
                        }),
                    },
                    ..JobSpec::default()
                }),
            },
        }),
        status: None,
    };
    Manifest::new("batch/v1", "CronJob", &meta, &cronjob)
}

fn backup_cronjob(scope: &Scope<'_>) -> Result<Manifest, RenderError> {
    let backup = &scope.cluster.spec.backup;
    let names = &scope.names;
    let (mut env_vars, mut volumes, mut mounts) = vault_connection(scope, names.backup());

    let (key_secret, key) = backup.encryption_key_secret.as_ref().map_or_else(
        || (names.default_backup_key_secret(), "key".to_owned()),
        |r| (r.name.clone(), r.key.clone()),
    );
    volumes.push(secret_volume("backup-key", &key_secret, &key));
    mounts.push(read_only_mount("backup-key", BACKUP_KEY_DIR));
    env_vars.push(env(
        "VAULTKEEPER_ENCRYPTION_KEY_FILE",
        format!("{BACKUP_KEY_DIR}/{key}"),
    ));

    let mut pod_labels = BTreeMap::new();
    if let Some(s3) = &backup.s3 {
        s3_env(scope, s3, &mut env_vars);
    } else if let Some(gcs) = &backup.gcs {
        env_vars.push(env("VAULTKEEPER_STORE", "gcs"));
        env_vars.push(env("VAULTKEEPER_GCS_BUCKET", gcs.bucket.clone()));
        env_vars.push(env(
            "VAULTKEEPER_S3_PREFIX",
            store_prefix(scope, &gcs.prefix),
        ));
        if let Some(endpoint) = &gcs.endpoint {
            env_vars.push(env("VAULTKEEPER_GCS_ENDPOINT", endpoint.clone()));
        }
        if let Some(credentials) = &gcs.credentials_secret {
            // A file in a Secret volume: the key never enters the CronJob spec or env.
            volumes.push(secret_volume(
                "store-credentials",
                &credentials.name,
                &credentials.key,
            ));
            mounts.push(read_only_mount("store-credentials", STORE_CREDENTIALS_DIR));
            env_vars.push(env(
                "VAULTKEEPER_GCS_SERVICE_ACCOUNT_KEY_FILE",
                format!("{STORE_CREDENTIALS_DIR}/{}", credentials.key),
            ));
        }
    } else if let Some(azure) = &backup.azure {
        env_vars.push(env("VAULTKEEPER_STORE", "azure"));
        env_vars.push(env("VAULTKEEPER_AZURE_ACCOUNT", azure.account.clone()));
        env_vars.push(env("VAULTKEEPER_AZURE_CONTAINER", azure.container.clone()));
        env_vars.push(env(
            "VAULTKEEPER_S3_PREFIX",
            store_prefix(scope, &azure.prefix),
        ));
        if let Some(endpoint) = &azure.endpoint {
            env_vars.push(env("VAULTKEEPER_AZURE_ENDPOINT", endpoint.clone()));
        }
        match &azure.credentials_secret {
            Some(credentials) => {
                volumes.push(secret_volume(
                    "store-credentials",
                    &credentials.name,
                    &credentials.key,
                ));
                mounts.push(read_only_mount("store-credentials", STORE_CREDENTIALS_DIR));
                let variable = match credentials.kind {
                    AzureCredentialKind::AccountKey => "VAULTKEEPER_AZURE_ACCOUNT_KEY_FILE",
                    AzureCredentialKind::Sas => "VAULTKEEPER_AZURE_SAS_TOKEN_FILE",
                };
                env_vars.push(env(
                    variable,
                    format!("{STORE_CREDENTIALS_DIR}/{}", credentials.key),
                ));
            }
            // The workload identity webhook injects the federated token into pods
            // carrying this label.
            None => {
                pod_labels.insert("azure.workload.identity/use".to_owned(), "true".to_owned());
            }
        }
    } else {
        return Err(RenderError::Invalid {
            field: "spec.backup.s3",
            detail: "spec.backup.s3.bucket is required when backups are on".to_owned(),
        });
    }
    if let Some(keep_last) = backup.retention.keep_last {
        env_vars.push(env("VAULTKEEPER_KEEP_LAST", keep_last.to_string()));
    }
    if let Some(max_age) = &backup.retention.max_age {
        env_vars.push(duration_env(
            "VAULTKEEPER_MAX_AGE",
            max_age,
            rules::retention_max_age(),
        )?);
    }
    cronjob(
        scope,
        JobShape {
            name: names.backup(),
            component: Component::Backup,
            schedule: backup.schedule.clone(),
            time_zone: backup.time_zone.clone(),
            suspend: backup.suspend,
            successful_history: backup.successful_jobs_history_limit,
            failed_history: backup.failed_jobs_history_limit,
            deadline_seconds: backup.active_deadline_seconds,
            args: vec!["backup".to_owned()],
            pod_labels,
            env: env_vars,
            volumes,
            mounts,
            resources: backup.resources.clone(),
        },
    )
}

fn metrics_token_cronjob(scope: &Scope<'_>) -> Result<Manifest, RenderError> {
    let monitoring = &scope.cluster.spec.monitoring;
    let names = &scope.names;
    let (mut env_vars, volumes, mounts) = vault_connection(scope, names.metrics_token_job());
    env_vars.push(env(
        "VAULTKEEPER_TOKEN_SECRET",
        names.metrics_token_secret(),
    ));
    env_vars.push(duration_env(
        "VAULTKEEPER_TOKEN_PERIOD",
        &monitoring.token_period,
        rules::token_period(),
    )?);
    cronjob(
        scope,
        JobShape {
            name: names.metrics_token_job(),
            component: Component::MetricsToken,
            schedule: monitoring.token_renew_schedule.clone(),
            time_zone: None,
            suspend: false,
            successful_history: 3,
            failed_history: 3,
            deadline_seconds: 600,
            args: vec!["metrics-token".to_owned()],
            pod_labels: BTreeMap::new(),
            env: env_vars,
            volumes,
            mounts,
            resources: None,
        },
    )
}

/// The S3 settings of the backup Job, as they always were.
fn s3_env(scope: &Scope<'_>, s3: &S3Spec, env_vars: &mut Vec<EnvVar>) {
    env_vars.push(env("VAULTKEEPER_S3_BUCKET", s3.bucket.clone()));
    env_vars.push(env(
        "VAULTKEEPER_S3_PREFIX",
        s3.prefix
            .clone()
            .unwrap_or_else(|| scope.namespace().to_owned()),
    ));
    env_vars.push(env("VAULTKEEPER_S3_REGION", s3.region.clone()));
    if let Some(endpoint) = &s3.endpoint {
        env_vars.push(env("VAULTKEEPER_S3_ENDPOINT", endpoint.clone()));
    }
    if s3.force_path_style {
        env_vars.push(env("VAULTKEEPER_S3_PATH_STYLE", "true"));
    }
    if let Some(credentials) = &s3.credentials_secret {
        // The SDK's default chain reads these; the values never enter the CronJob spec.
        env_vars.push(env_from_secret(
            "AWS_ACCESS_KEY_ID",
            &credentials.name,
            &credentials.access_key_id_key,
        ));
        env_vars.push(env_from_secret(
            "AWS_SECRET_ACCESS_KEY",
            &credentials.name,
            &credentials.secret_access_key_key,
        ));
    }
}

/// The key prefix: as given, or the namespace.
fn store_prefix(scope: &Scope<'_>, prefix: &Option<String>) -> String {
    prefix
        .clone()
        .unwrap_or_else(|| scope.namespace().to_owned())
}
