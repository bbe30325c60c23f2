//! vaultkeeper-backup
