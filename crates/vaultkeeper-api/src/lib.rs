//! The `VaultCluster` custom resource (`vaultkeeper.io/v1alpha1`): types, defaults,
//! validation and CRD generation.
//!
//! The doc comments of the spec and status types become the CRD's schema descriptions,
//! which is what `kubectl explain vaultcluster.spec` prints.

pub mod config;
mod crd;
pub mod defaults;
pub mod duration;
mod flavor;
pub mod login;
mod manifest;
pub mod names;
pub mod restore;
pub mod rules;
mod schema;
mod spec;
mod status;
mod validate;
mod workload;

pub use config::{ClusterRef, ConfigDeletionPolicy, ConfigStatus, VaultPolicy, VaultPolicySpec};
pub use crd::{CRD_KINDS, crd, crd_yaml, kind_crd_yaml, restore_crd, restore_crd_yaml};
pub use duration::{Duration, InvalidDuration};
pub use flavor::Flavor;
pub use manifest::{ManifestError, parse_manifests};
pub use names::ClusterNames;
pub use restore::{VaultRestore, VaultRestoreSpec, VaultRestoreStatus};
pub use spec::*;
pub use status::*;
pub use validate::{
    InvalidSpec, Violation, fixed_fields, longest_gap_seconds, parse_recipient, validate,
    validate_fixed, validate_spec,
};
pub use workload::{
    AccessMode, AuditStorageSpec, DisruptionBudgetSpec, PodSpec, ProbeSpec, StorageSpec,
};
