//! The `VaultCluster` custom resource (`vaultkeeper.io/v1alpha1`): types, defaults,
//! validation and CRD generation.

mod flavor;

pub use flavor::Flavor;
