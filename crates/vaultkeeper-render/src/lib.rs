//! vaultkeeper-render
