//! vaultkeeper-vault
