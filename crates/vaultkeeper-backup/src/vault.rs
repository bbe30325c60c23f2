//! What backup and restore decide about the Vault they talk to: which node takes the
//! snapshot, and whether that node can. The HTTP calls themselves are the workspace's one
//! Vault client, `vaultkeeper_vault::client::VaultHttp`.

use vaultkeeper_vault::client::VaultHttp;
use vaultkeeper_vault::node::{Health, LeaderStatus};

use crate::error::{Error, Result};

/// Which address to take the snapshot from (or send it to): the node we asked when it is
/// active, else the active node it names. Pure.
pub fn active_node_address(asked: &str, leader: &LeaderStatus) -> Result<String> {
    if leader.is_self {
        return Ok(asked.to_owned());
    }
    let named = leader
        .leader_address
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/');
    if named.is_empty() {
        return Err(Error::VaultNotReady {
            addr: asked.to_owned(),
            state: "without an active node",
            hint: "no raft leader is known: wait for the cluster to elect one, or check that it is unsealed",
        });
    }
    Ok(named.to_owned())
}

/// The node's health, or a clear reason why it cannot take part: it must be initialized
/// and unsealed.
pub async fn require_unsealed(vault: &VaultHttp) -> Result<Health> {
    let health = vault.health().await?;
    if !health.initialized {
        return Err(Error::VaultNotReady {
            addr: vault.addr().to_owned(),
            state: "not initialized",
            hint: "initialize it first (a restore needs an initialized, unsealed target)",
        });
    }
    if health.sealed {
        return Err(Error::VaultNotReady {
            addr: vault.addr().to_owned(),
            state: "sealed",
            hint: "unseal it first",
        });
    }
    Ok(health)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_node_table() {
        let leader = |is_self, addr: Option<&str>| LeaderStatus {
            ha_enabled: true,
            is_self,
            leader_address: addr.map(str::to_owned),
            raft_committed_index: Some(7),
            raft_applied_index: Some(7),
        };
        let asked = "https://vault-active:8200";
        assert_eq!(
            active_node_address(asked, &leader(true, Some("https://vault-1:8200"))).unwrap(),
            asked
        );
        assert_eq!(
            active_node_address(asked, &leader(false, Some("https://vault-1:8200/"))).unwrap(),
            "https://vault-1:8200"
        );
        let err = active_node_address(asked, &leader(false, None)).unwrap_err();
        assert!(err.to_string().contains("no raft leader"), "{err}");
    }
}
