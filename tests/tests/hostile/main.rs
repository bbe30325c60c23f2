//! The attacker's suite: on the simulated cluster, with RBAC enforced, a person who may
//! only edit VaultClusters and create pods in namespace `team-a`
//! ([`vaultkeeper_e2e::hostile`]) tries each way past the operator's trust boundary and
//! gains nothing: no token the API server accepts, no Secret outside `team-a`, no deleted
//! object that is not theirs, and the operator keeps serving other clusters. Each attack is
//! its own test, with an assertion on what the attacker got. The threat model these tests
//! hold the operator to is `docs/security.md`.
//!
//! Slots 170–184 of the simulated cluster's port range belong to this suite.

mod boundary;
mod bounds;
mod environment;
mod identity;
mod images;
mod members;
mod rbac;
