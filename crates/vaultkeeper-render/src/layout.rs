//! Where things live inside a server pod, per flavor. The Vault Helm chart and the OpenBao
//! Helm chart use the same layout under different names (`/vault/...` and `VAULT_*`
//! against `/openbao/...` and `BAO_*`); runbooks written for either keep working.

use vaultkeeper_api::Flavor;

/// Paths, names and environment variable names of one flavor's server container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLayout {
    flavor: Flavor,
}

impl ServerLayout {
    /// The layout of `flavor`.
    pub fn new(flavor: Flavor) -> Self {
        Self { flavor }
    }

    /// The flavor.
    pub fn flavor(self) -> Flavor {
        self.flavor
    }

    fn root(self) -> &'static str {
        match self.flavor {
            Flavor::Vault => "/vault",
            Flavor::OpenBao => "/openbao",
        }
    }

    /// Name of the server container (`vault` or `openbao`), as the charts name it.
    pub fn container_name(self) -> &'static str {
        match self.flavor {
            Flavor::Vault => "vault",
            Flavor::OpenBao => "openbao",
        }
    }

    /// The value of `app.kubernetes.io/name`, as the charts set it.
    pub fn app_name(self) -> &'static str {
        self.container_name()
    }

    /// The CLI and server binary.
    pub fn binary(self) -> &'static str {
        self.flavor.cli_binary()
    }

    /// Where the ConfigMap with the server configuration is mounted.
    pub fn config_dir(self) -> String {
        format!("{}/config", self.root())
    }

    /// The configuration file inside [`Self::config_dir`] (the charts' key name).
    pub fn config_file_name(self) -> &'static str {
        "extraconfig-from-values.hcl"
    }

    /// Where the raft data volume is mounted.
    pub fn data_dir(self) -> String {
        format!("{}/data", self.root())
    }

    /// Where the audit volume is mounted.
    pub fn audit_dir(self) -> String {
        format!("{}/audit", self.root())
    }

    /// Where Secrets are mounted, one directory each (the charts' `userconfig`).
    pub fn userconfig_dir(self, secret_name: &str) -> String {
        format!("{}/userconfig/{secret_name}", self.root())
    }

    /// HOME of the server process.
    pub fn home_dir(self) -> &'static str {
        match self.flavor {
            Flavor::Vault => "/home/vault",
            Flavor::OpenBao => "/home/openbao",
        }
    }

    /// An environment variable name with the flavor's prefix: `VAULT_ADDR` or `BAO_ADDR`.
    pub fn env(self, suffix: &str) -> String {
        match self.flavor {
            Flavor::Vault => format!("VAULT_{suffix}"),
            Flavor::OpenBao => format!("BAO_{suffix}"),
        }
    }

    /// The pod label service registration writes, e.g. `vault-active` or `openbao-active`.
    pub fn registration_label(self, suffix: &str) -> String {
        format!(
            "{}-{suffix}",
            self.flavor.service_registration_label_prefix()
        )
    }
}
