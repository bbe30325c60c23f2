//! Pure rendering of everything vaultkeeper applies for a VaultCluster: the objects the
//! official Vault Helm chart renders in HA raft mode (named and labelled as it names
//! them), the PKI Secrets, the backup and metrics-token CronJobs and the monitoring
//! objects.
//!
//! [`render`] is a pure function: the VaultCluster and a [`RenderContext`] (namespace,
//! PKI material, images) in, [`Manifest`]s out. No client, no clock, no randomness; the
//! PKI decision ([`pki::plan`]) takes the clock as an input, and key generation
//! ([`pki::issue`]) lives beside it, outside rendering.

mod alerts;
mod config;
mod exposure;
mod jobs;
mod labels;
mod layout;
mod manifest;
mod monitoring;
pub mod pki;
mod pod_tuning;
mod rbac;
mod secrets;
mod self_init;
mod services;
mod tls;
mod workload;

use vaultkeeper_api::{ClusterNames, TlsMode, VaultCluster};

pub use config::{API_PORT, CLUSTER_PORT, LISTEN_ADDRESS, server_config};
pub use labels::{Component, Labels, MANAGED_BY, image_tag};
pub use layout::ServerLayout;
pub use manifest::{Manifest, to_yaml_stream};
pub use pki::{CertificateRequest, PkiMaterial, PkiPlan, PrivateKeyPem, RenewReason};
pub use self_init::SELF_INIT_KEY;
pub use tls::{TlsFiles, TlsSecret};

/// The image of vaultkeeper that runs the backup and metrics-token jobs, when the
/// caller names none.
pub const DEFAULT_OPERATOR_IMAGE: &str = concat!(
    "ghcr.io/vaultkeeper/vaultkeeper:",
    env!("CARGO_PKG_VERSION")
);

/// What rendering needs besides the VaultCluster itself.
#[derive(Clone, Debug)]
pub struct RenderContext<'a> {
    /// The namespace the objects go to (the VaultCluster's).
    pub namespace: &'a str,
    /// The internal CA and server certificate; required for `tls.mode: SelfSigned`.
    pub pki: Option<&'a PkiMaterial>,
    /// The vaultkeeper image for the CronJobs.
    pub operator_image: &'a str,
    /// The VaultCluster's uid; when given, every namespaced object gets an owner
    /// reference to it (the operator always gives it; offline rendering has none).
    pub owner_uid: Option<&'a str>,
    /// The StatefulSet's replicas when the operator holds them back from the spec (a
    /// scale-down waits until the departing raft peers are removed).
    pub statefulset_replicas: Option<i32>,
    /// With `keys.initialization: SelfInit`, the `initialize` stanza pod `-0` starts with;
    /// `None` once the cluster is initialized.
    pub self_init_stanza: Option<&'a str>,
    /// A pre-created ClusterRole granting Vault's service registration its pod rights
    /// (the operator's installs create `vaultkeeper-vault-server`). When given, the server
    /// ServiceAccount is bound to it in the cluster's namespace and no Role is rendered, so
    /// whoever applies the objects needs `bind` on that role, not the pod rights
    /// themselves. `None` renders a Role with those rights, as the Vault chart does.
    pub server_cluster_role: Option<&'a str>,
}

impl<'a> RenderContext<'a> {
    /// A context with the default operator image, no owner and the spec's replicas.
    pub fn new(namespace: &'a str, pki: Option<&'a PkiMaterial>) -> Self {
        Self {
            namespace,
            pki,
            operator_image: DEFAULT_OPERATOR_IMAGE,
            owner_uid: None,
            statefulset_replicas: None,
            self_init_stanza: None,
            server_cluster_role: None,
        }
    }
}

/// Why rendering failed. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The VaultCluster has no name.
    #[error("metadata.name is required")]
    MissingName,
    /// The spec is not renderable; `detail` names the field and the fix.
    #[error("{detail}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// `tls.mode: SelfSigned` without PKI material.
    #[error(
        "spec.tls.mode SelfSigned needs the cluster's CA and server certificate; none were given"
    )]
    MissingPki,
    /// The server configuration could not be written as HCL.
    #[error("the server configuration cannot be rendered: {detail}")]
    Config {
        /// What went wrong.
        detail: String,
    },
    /// Generating or reading PKI material failed.
    #[error("PKI: cannot {step}: {detail}")]
    Pki {
        /// The step that failed.
        step: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// An object could not be serialized.
    #[error("cannot serialize {kind} {name}: {detail}")]
    Serialize {
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
        /// What went wrong.
        detail: String,
    },
}

/// Renders every object of a VaultCluster, in apply order.
pub fn render(
    cluster: &VaultCluster,
    ctx: &RenderContext<'_>,
) -> Result<Vec<Manifest>, RenderError> {
    let name = cluster
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or(RenderError::MissingName)?;
    if cluster.spec.tls.mode == TlsMode::SelfSigned && ctx.pki.is_none() {
        return Err(RenderError::MissingPki);
    }
    let scope = Scope::new(cluster, name, ctx);
    let mut out = Vec::new();
    out.extend(rbac::render(&scope)?);
    out.extend(secrets::render(&scope)?);
    out.extend(workload::render_config(&scope)?);
    out.extend(services::render(&scope)?);
    out.extend(workload::render(&scope)?);
    out.extend(exposure::render(&scope)?);
    out.extend(jobs::render(&scope)?);
    out.extend(monitoring::render(&scope)?);
    Ok(out)
}

/// Everything the per-kind renderers share.
pub(crate) struct Scope<'a> {
    pub cluster: &'a VaultCluster,
    pub ctx: &'a RenderContext<'a>,
    pub names: ClusterNames,
    pub layout: ServerLayout,
    pub labels: Labels,
    pub tls: TlsFiles,
    pub image: String,
}

impl<'a> Scope<'a> {
    fn new(cluster: &'a VaultCluster, name: &str, ctx: &'a RenderContext<'a>) -> Self {
        let layout = ServerLayout::new(cluster.spec.effective_flavor());
        let image = cluster.spec.effective_image();
        Self {
            cluster,
            ctx,
            names: ClusterNames::new(name),
            layout,
            labels: Labels::new(layout, name, image_tag(&image)),
            tls: TlsFiles::of(cluster),
            image,
        }
    }

    /// The namespace of every rendered object.
    pub fn namespace(&self) -> &str {
        self.ctx.namespace
    }

    /// The in-cluster address of the active node, for the jobs.
    pub fn active_address(&self) -> String {
        format!(
            "{}://{}.{}.svc:{}",
            self.tls.scheme(),
            self.names.active_service(),
            self.namespace(),
            API_PORT
        )
    }
}
