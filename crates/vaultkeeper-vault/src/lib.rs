//! The Vault / OpenBao node lifecycle, as a library the operator's controller calls.
//!
//! Three kinds of code, kept apart:
//! - **decide**: [`decide`] turns the observed state of every pod, the key store and the
//!   cluster intent into typed [`decide::Action`]s. Pure: no network, no clock.
//! - **act**: [`client`] reads and drives nodes over HTTP or through `vault`/`bao` exec;
//!   [`keys`] keeps the init output; [`bootstrap`] writes auth, policies and roles;
//!   [`selfinit`] renders OpenBao's `initialize` stanza for the self-init mode.
//! - **run one pass**: [`lifecycle::Lifecycle`] observes, decides and acts, holding the
//!   init output in memory until the key store has it.
//!
//! Secrets (shares, tokens, JWTs) only ever live in [`secret`] types (the `secrecy` crate's,
//! shared by the whole workspace), which print a redaction marker and zeroize on drop, and
//! they never appear in a command line (see [`commands`]). [`client::VaultHttp`] is the
//! one Vault HTTP client, also used by the backup, restore and metrics-token jobs. Every
//! read of bytes a pod sends goes through [`bounded`], which caps it.
//!
//! `docs/lifecycle.md` and `docs/vault-client.md` describe the behaviour for users.

pub mod bootstrap;
pub mod bounded;
pub mod client;
pub mod commands;
pub mod decide;
pub mod error;
pub mod keys;
pub mod lifecycle;
pub mod node;
pub mod rotation;
pub mod secret;
pub mod selfinit;

pub use error::{Error, Result, Step};
