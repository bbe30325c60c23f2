//! The cluster's Vault nodes as the controller reaches them: the lifecycle (init, unseal,
//! raft, bootstrap; see `vaultkeeper_vault::lifecycle`) with the transport and key store
//! the spec asks for, and what the lifecycle is told about the spec.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use tracing::warn;
use vaultkeeper_api::names::vault as vault_names;
use vaultkeeper_api::{
    ClusterNames, Flavor, Initialization, RootTokenPolicy, Transport, UnsealType, VaultCluster,
};
use vaultkeeper_render::{API_PORT, ServerLayout, TlsFiles};
use vaultkeeper_vault::bootstrap::{BootstrapSpec, Identity};
use vaultkeeper_vault::client::{
    Cli, ExecNodeClient, Executor, HttpNodeClient, HttpOptions, KubernetesAuthConfig, NodeClient,
};
use vaultkeeper_vault::decide::{ClusterIntent, InitMode, RaftJoin, SealIntent};
use vaultkeeper_vault::keys::KeyStore;
use vaultkeeper_vault::lifecycle::{Lifecycle, OperatorLogin};
use vaultkeeper_vault::node::{NodeEndpoint, PodName};

use super::context::{Context, Settings};
use super::error::Error;
use crate::custody::{KubeExecutor, SecretKeyStore};

/// The lifecycle of one cluster, over whichever transport it uses.
pub(crate) type ClusterLifecycle = Lifecycle<Arc<dyn NodeClient>, Arc<dyn KeyStore>>;

/// The lifecycle and, for the HTTP transport, the client that must be told where each
/// pod is now.
pub(crate) struct NodeAccess {
    key: AccessKey,
    /// The lifecycle.
    pub(crate) lifecycle: ClusterLifecycle,
    http: Option<Arc<HttpNodeClient>>,
}

/// What the lifecycle is built from; a change rebuilds it.
#[derive(Clone, PartialEq, Eq)]
struct AccessKey {
    transport: Transport,
    flavor: Flavor,
    keys_secret: String,
    ca: Option<String>,
}

impl NodeAccess {
    /// The cluster's lifecycle, rebuilt only when the transport, flavor, keys Secret or CA
    /// changes, and never while it holds init output that is not yet persisted (that copy
    /// must survive passes). `None` when the nodes cannot be reached yet: the HTTP
    /// transport without the cluster CA.
    pub(crate) fn prepare<'m>(
        ctx: &Context,
        slot: &'m mut Option<NodeAccess>,
        vc: &VaultCluster,
        ca: Option<&str>,
        bootstrapped: bool,
    ) -> Result<Option<&'m mut NodeAccess>, Error> {
        let namespace = vc.namespace().ok_or(Error::NoNamespace)?;
        let layout = ServerLayout::new(vc.spec.effective_flavor());
        let key = AccessKey {
            transport: vc.spec.transport,
            flavor: layout.flavor(),
            keys_secret: keys_secret_name(vc),
            ca: ca.map(str::to_owned),
        };
        let keep = slot
            .as_ref()
            .is_some_and(|a| a.key == key || a.lifecycle.has_pending_keys());
        if !keep {
            let approval = vc
                .spec
                .keys
                .escrow
                .as_ref()
                .map(|e| crate::escrow::recipients_fingerprint(&e.recipients));
            let store: Arc<dyn KeyStore> = Arc::new(
                SecretKeyStore::new(
                    ctx.client.clone(),
                    &namespace,
                    &key.keys_secret,
                    &vc.name_any(),
                )
                .approving_escrow(approval),
            );
            #[cfg(feature = "fault-injection")]
            let store = ctx.faults.key_store(store);
            let (client, http): (Arc<dyn NodeClient>, Option<Arc<HttpNodeClient>>) = match vc
                .spec
                .transport
            {
                Transport::Exec => {
                    let executor =
                        KubeExecutor::new(ctx.client.clone(), &namespace, layout.container_name());
                    #[cfg(feature = "fault-injection")]
                    let executor = match ctx.faults.exec_timeout() {
                        Some(timeout) => executor.with_timeout(timeout),
                        None => executor,
                    };
                    let executor: Arc<dyn Executor> = Arc::new(executor);
                    #[cfg(feature = "fault-injection")]
                    let executor = ctx.faults.executor(executor);
                    (
                        Arc::new(ExecNodeClient::new(executor, exec_cli(vc, layout))),
                        None,
                    )
                }
                Transport::Http => {
                    let Some(ca) = ca else {
                        return Ok(None);
                    };
                    let http =
                        Arc::new(HttpNodeClient::new(ca.as_bytes(), HttpOptions::default())?);
                    (http.clone(), Some(http))
                }
            };
            let bootstrap = bootstrap_spec(&ctx.settings, vc, &namespace);
            let mut lifecycle = Lifecycle::new(
                client,
                store,
                intent_for(vc, &[ClusterNames::new(vc.name_any()).pod(0)])?,
            )
            .with_bootstrap(bootstrap)
            .with_operator_login(OperatorLogin {
                mount: vault_names::KUBERNETES_AUTH_MOUNT.to_owned(),
                role: vault_names::OPERATOR_ROLE.to_owned(),
                jwt: ctx.settings.jwt.clone(),
            });
            // After an operator restart, status remembers whether bootstrap is applied.
            lifecycle.set_bootstrapped(bootstrapped);
            *slot = Some(NodeAccess {
                key,
                lifecycle,
                http,
            });
        }
        Ok(slot.as_mut())
    }

    /// Tells the HTTP client where each pod is now (pod IPs change on restart); the pod's
    /// DNS name is what its certificate is verified against.
    pub(crate) fn locate(&self, pods: &[Pod], names: &ClusterNames) {
        let Some(http) = &self.http else {
            return;
        };
        for pod in pods {
            let ip = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
            let (Some(ip), Ok(name)) = (ip, PodName::new(pod.name_any())) else {
                continue;
            };
            let server_name = format!("{}.{}", name.as_str(), names.internal_service());
            let endpoint = NodeEndpoint::by_name(
                server_name,
                std::net::SocketAddr::new(ip, vaultkeeper_render::API_PORT),
            );
            if let Err(e) = http.add_pod(name, &endpoint) {
                warn!(pod = %pod.name_any(), error = %e, "cannot reach this pod over HTTP");
            }
        }
    }
}

/// The CLI the exec transport runs in a pod: the flavor's binary, told its server's
/// address (the pod's own loopback, which the server certificate carries) and the CA file
/// mounted in the container, so nothing in the container's environment can send a share or
/// token elsewhere.
pub(crate) fn exec_cli(vc: &VaultCluster, layout: ServerLayout) -> Cli {
    let binary = layout.flavor().cli_binary();
    match TlsFiles::of(vc) {
        TlsFiles::Enabled(secret) => Cli::tls(binary, API_PORT, secret.ca_file(layout)),
        TlsFiles::Disabled => Cli::plaintext(binary, API_PORT),
    }
}

/// The keys Secret of a cluster.
pub(crate) fn keys_secret_name(vc: &VaultCluster) -> String {
    vc.spec
        .keys
        .secret_name
        .clone()
        .unwrap_or_else(|| ClusterNames::new(vc.name_any()).default_keys_secret())
}

/// The backup encryption key of a cluster: Secret name and key.
pub(crate) fn backup_key_ref(vc: &VaultCluster) -> (String, String) {
    vc.spec.backup.encryption_key_secret.as_ref().map_or_else(
        || {
            (
                ClusterNames::new(vc.name_any()).default_backup_key_secret(),
                "key".to_owned(),
            )
        },
        |r| (r.name.clone(), r.key.clone()),
    )
}

/// What the Vault-side bootstrap creates for this cluster: the operator's, the backup
/// job's and the metrics-token job's identities.
pub(crate) fn bootstrap_spec(
    settings: &Settings,
    vc: &VaultCluster,
    namespace: &str,
) -> BootstrapSpec {
    let names = ClusterNames::new(vc.name_any());
    let period = str::parse::<vaultkeeper_api::Duration>(&vc.spec.monitoring.token_period)
        .map_or(336 * 3600, vaultkeeper_api::Duration::as_seconds);
    BootstrapSpec {
        namespace: namespace.to_owned(),
        kubernetes_mount: vault_names::KUBERNETES_AUTH_MOUNT.to_owned(),
        kubernetes: KubernetesAuthConfig {
            kubernetes_host: settings.kubernetes_host.clone(),
            kubernetes_ca_cert: settings.kubernetes_ca.clone(),
            issuer: None,
            disable_local_ca_jwt: false,
        },
        operator: Identity {
            service_account: settings.operator_service_account.clone(),
            role: vault_names::OPERATOR_ROLE.to_owned(),
            policy: vault_names::OPERATOR_POLICY.to_owned(),
        },
        operator_namespace: Some(settings.operator_namespace.clone()),
        backup: Identity {
            service_account: names.backup(),
            role: names.vault_backup_role(),
            policy: vault_names::BACKUP_POLICY.to_owned(),
        },
        metrics_token_job: Identity {
            service_account: names.metrics_token_job(),
            role: names.vault_metrics_job_role(),
            policy: vault_names::METRICS_JOB_POLICY.to_owned(),
        },
        metrics_policy: vault_names::METRICS_POLICY.to_owned(),
        metrics_token_role: vault_names::METRICS_TOKEN_ROLE.to_owned(),
        metrics_token_period_seconds: u64::try_from(period).unwrap_or(336 * 3600),
        // VaultRestores run in the operator, which logs in with this role only to load a
        // verified snapshot.
        restore: Some(Identity {
            service_account: settings.operator_service_account.clone(),
            role: vault_names::RESTORE_ROLE.to_owned(),
            policy: vault_names::RESTORE_POLICY.to_owned(),
        }),
        config: Some(Identity {
            service_account: settings.operator_service_account.clone(),
            role: vault_names::CONFIG_ROLE.to_owned(),
            policy: vault_names::CONFIG_POLICY.to_owned(),
        }),
        login_ttl_seconds: 900,
        revoke_root_token: vc.spec.keys.root_token == RootTokenPolicy::Revoke,
    }
}

/// What the lifecycle should make of the cluster: these pods, this seal, this init mode.
pub(crate) fn intent_for(vc: &VaultCluster, desired: &[String]) -> Result<ClusterIntent, Error> {
    let shares = vc.spec.unseal.shares();
    let share = |v: i32| u8::try_from(v).unwrap_or(u8::MAX);
    let seal = if vc.spec.unseal.kind == UnsealType::Shamir {
        SealIntent::Shamir {
            shares: share(shares.shares),
            threshold: share(shares.threshold),
        }
    } else {
        SealIntent::Auto {
            recovery_shares: share(shares.shares),
            recovery_threshold: share(shares.threshold),
        }
    };
    let init_mode = match vc.spec.keys.initialization {
        Initialization::Operator => InitMode::Operator,
        Initialization::SelfInit => InitMode::SelfInit,
    };
    let pods = desired
        .iter()
        .map(|p| PodName::new(p.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    // New pods join the active node explicitly, at the address the rendered `retry_join`
    // stanzas name (the one the server certificates carry).
    let join = RaftJoin {
        scheme: match TlsFiles::of(vc) {
            TlsFiles::Enabled(_) => "https",
            TlsFiles::Disabled => "http",
        }
        .to_owned(),
        domain: ClusterNames::new(vc.name_any()).internal_service(),
        port: API_PORT,
    };
    Ok(ClusterIntent::new(pods, seal, init_mode)?.with_join(join))
}
