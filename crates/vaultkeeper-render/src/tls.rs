//! Where the listener's certificate comes from, per `spec.tls.mode`, and where it is
//! mounted in the pod.

use vaultkeeper_api::{ClusterNames, TlsMode, VaultCluster};

use crate::layout::ServerLayout;

/// The TLS files of the server pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsFiles {
    /// TLS on: a Secret with `tls.crt`, `tls.key` and `ca.crt` is mounted.
    Enabled(TlsSecret),
    /// Plain HTTP (development only).
    Disabled,
}

/// The Secret holding the server certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSecret {
    /// Name of the Secret.
    pub secret_name: String,
}

impl TlsSecret {
    fn file(&self, layout: ServerLayout, key: &str) -> String {
        format!("{}/{key}", layout.userconfig_dir(&self.secret_name))
    }

    /// The certificate file in the pod.
    pub fn cert_file(&self, layout: ServerLayout) -> String {
        self.file(layout, "tls.crt")
    }

    /// The key file in the pod.
    pub fn key_file(&self, layout: ServerLayout) -> String {
        self.file(layout, "tls.key")
    }

    /// The CA bundle in the pod.
    pub fn ca_file(&self, layout: ServerLayout) -> String {
        self.file(layout, "ca.crt")
    }
}

impl TlsFiles {
    /// The TLS files for a cluster's mode.
    pub fn of(cluster: &VaultCluster) -> Self {
        let names = ClusterNames::new(cluster.metadata.name.as_deref().unwrap_or_default());
        let tls = &cluster.spec.tls;
        match tls.mode {
            TlsMode::Disabled => TlsFiles::Disabled,
            TlsMode::Secret => TlsFiles::Enabled(TlsSecret {
                secret_name: tls
                    .secret_name
                    .clone()
                    .unwrap_or_else(|| names.server_tls_secret()),
            }),
            TlsMode::SelfSigned | TlsMode::CertManager => TlsFiles::Enabled(TlsSecret {
                secret_name: names.server_tls_secret(),
            }),
        }
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        match self {
            TlsFiles::Enabled(_) => "https",
            TlsFiles::Disabled => "http",
        }
    }
}
