//! vaultkeeper-sim
