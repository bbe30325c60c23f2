//! The identity vaultkeeper's own processes (the operator, the backup and metrics-token
//! Jobs) present to Vault's Kubernetes auth method, defined once for all of them.
//!
//! A pod's default service-account token is valid against the Kubernetes API with every
//! right of its ServiceAccount. Handing that token to Vault (over HTTP to the pod, or on
//! the stdin of the CLI inside an image the user chose) would hand those rights to whoever
//! controls the Vault pod. So every login uses a separate, projected token whose only
//! audience is [`VAULT_LOGIN_AUDIENCE`]: the API server refuses it, and every Kubernetes
//! auth role vaultkeeper writes in Vault requires that audience, so the API-server token
//! is refused by Vault in turn.

/// The audience of every token vaultkeeper logs in to Vault with, and the `audience`
/// every Kubernetes auth role it writes requires.
pub const VAULT_LOGIN_AUDIENCE: &str = "vaultkeeper";

/// The directory the projected Vault-login token is mounted at, in the operator's pod and
/// in the Jobs' pods.
pub const VAULT_LOGIN_TOKEN_DIR: &str = "/var/run/secrets/vaultkeeper/vault";

/// The file name of the token inside [`VAULT_LOGIN_TOKEN_DIR`].
pub const VAULT_LOGIN_TOKEN_NAME: &str = "token";

/// The projected Vault-login token file: the default `--vault-login-token-file` of
/// `vaultkeeper run` and `--service-account-token-file` of the Jobs.
pub const VAULT_LOGIN_TOKEN_FILE: &str = "/var/run/secrets/vaultkeeper/vault/token";

/// How long a projected Vault-login token lives before the kubelet replaces it (the
/// shortest lifetime Kubernetes allows). The token is read again at every login.
pub const VAULT_LOGIN_TOKEN_SECONDS: i64 = 600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_inside_the_token_directory() {
        assert_eq!(
            VAULT_LOGIN_TOKEN_FILE,
            format!("{VAULT_LOGIN_TOKEN_DIR}/{VAULT_LOGIN_TOKEN_NAME}")
        );
    }
}
