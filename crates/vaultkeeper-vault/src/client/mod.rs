//! The node client: one trait, [`NodeClient`], with two transports.
//!
//! - [`HttpNodeClient`]: the API on each pod over HTTPS, verifying the cluster CA, through
//!   [`VaultHttp`], the one Vault HTTP client (the backup, restore and metrics-token jobs
//!   use it directly, with the address they are given).
//! - [`ExecNodeClient`]: the `vault`/`bao` CLI run inside the pod through an [`Executor`]
//!   (the operator's pods/exec executor, or [`LocalProcessExecutor`] in tests). Secrets
//!   travel on stdin only; every command vector is built in [`crate::commands`].
//!
//! Every method names the pod it talks to; the client knows how to reach each pod.
//! Methods that need authorization take the token to use; nothing is cached between calls.

mod exec;
mod http;
mod vault_http;
mod wire;

use std::collections::BTreeMap;

use async_trait::async_trait;

pub use exec::{
    Cli, ExecNodeClient, ExecOutput, ExecRequest, Executor, LocalProcessExecutor, RecordedCommand,
    RecordingExecutor, Wait,
};
pub use http::HttpNodeClient;
pub use vault_http::{HttpOptions, IssuedToken, TokenRequest, VaultHttp, error_text, tls_config};

use crate::error::Result;
use crate::keys::RawInit;
use crate::node::{
    AutopilotState, Health, InitRequest, LeaderStatus, PodName, RaftConfiguration, SealStatus,
    TokenInfo, UnsealProgress,
};
use crate::rotation::{RekeyAnswer, RekeyCall, RotationApi};
use crate::secret::{KeyShare, SecretString, Token};

/// Which transport a client uses (for logs and status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The HTTP API at the pod address.
    Http,
    /// The CLI inside the pod.
    Exec,
}

/// Kubernetes auth method configuration (`auth/<mount>/config`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesAuthConfig {
    /// The API server the auth method sends TokenReviews to, e.g.
    /// `https://kubernetes.default.svc:443`.
    pub kubernetes_host: String,
    /// PEM CA of that API server. `None` with `disable_local_ca_jwt = false` makes the
    /// server use its own pod's service-account CA (the normal in-cluster setup).
    pub kubernetes_ca_cert: Option<String>,
    /// Expected issuer of service-account tokens, when the cluster needs it checked.
    pub issuer: Option<String>,
    /// `true` when the server is not running in a pod with a service-account token to use
    /// as reviewer (the client's own JWT is then used for the TokenReview).
    pub disable_local_ca_jwt: bool,
}

/// A Kubernetes auth role (`auth/<mount>/role/<name>`): which service accounts in which
/// namespaces get which policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesRole {
    /// Role name.
    pub name: String,
    /// Service account names allowed to log in.
    pub bound_service_account_names: Vec<String>,
    /// Namespaces those service accounts live in.
    pub bound_service_account_namespaces: Vec<String>,
    /// The audience a login JWT must carry (its `aud` claim, and the TokenReview's
    /// audience). Empty accepts any audience, including the API server's own: roles
    /// vaultkeeper writes always set it (see `vaultkeeper_api::login`).
    pub audience: String,
    /// Policies on the issued token.
    pub token_policies: Vec<String>,
    /// TTL of the issued token, seconds.
    pub token_ttl_seconds: u64,
    /// Maximum TTL of the issued token, seconds.
    pub token_max_ttl_seconds: u64,
    /// Leave out the `default` policy (least privilege: no self-lookup either).
    pub token_no_default_policy: bool,
}

/// A token role (`auth/token/roles/<name>`): the template for tokens created through
/// `auth/token/create/<name>`, which lets a non-root identity create exactly this kind of
/// token and nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRole {
    /// Role name.
    pub name: String,
    /// Policies a token created from the role may carry.
    pub allowed_policies: Vec<String>,
    /// Tokens are orphans: they outlive the short login token of whoever created them.
    pub orphan: bool,
    /// Tokens can be renewed.
    pub renewable: bool,
    /// Renewal period in seconds (a periodic token lives as long as it is renewed within
    /// the period).
    pub token_period_seconds: u64,
    /// Leave out the `default` policy: the token can do what its policies say and nothing
    /// else (it cannot even look itself up; its issuer renews it).
    pub token_no_default_policy: bool,
}

/// A node's seal status and, when it is unsealed, its `sys/leader` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// `sys/seal-status`.
    pub seal: SealStatus,
    /// `sys/leader`, for an initialized and unsealed node.
    pub leader: Option<LeaderStatus>,
}

/// One node, read and driven through some transport.
///
/// Errors name the pod and the step (see [`crate::Error`]); "nothing there" answers
/// (a missing policy or role) are `Ok(None)`, not errors.
#[async_trait]
pub trait NodeClient: Send + Sync {
    /// The transport in use.
    fn transport(&self) -> Transport;

    /// `sys/health`, with every state answered (no error status for standby, sealed,
    /// uninitialized).
    async fn health(&self, pod: &PodName) -> Result<Health>;

    /// `sys/seal-status`.
    async fn seal_status(&self, pod: &PodName) -> Result<SealStatus>;

    /// `sys/init`: whether the node reports initialized.
    async fn init_status(&self, pod: &PodName) -> Result<bool>;

    /// `sys/leader` (unsealed nodes only).
    async fn leader(&self, pod: &PodName) -> Result<LeaderStatus>;

    /// What one look at a node needs: its seal status and, once it is initialized and
    /// unsealed, `sys/leader`. Transports that can answer both at once override this (the
    /// exec transport runs one `status` command instead of two reads).
    async fn node_status(&self, pod: &PodName) -> Result<NodeStatus> {
        let seal = self.seal_status(pod).await?;
        let leader = if seal.initialized && !seal.sealed {
            Some(self.leader(pod).await?)
        } else {
            None
        };
        Ok(NodeStatus { seal, leader })
    }

    /// `sys/storage/raft/configuration`.
    async fn raft_configuration(&self, pod: &PodName, token: &Token) -> Result<RaftConfiguration>;

    /// `sys/storage/raft/autopilot/state`.
    async fn autopilot_state(&self, pod: &PodName, token: &Token) -> Result<AutopilotState>;

    /// `sys/init`: initializes the cluster through this pod. The answer is the one and only
    /// copy of the keys, returned exactly as it arrived, unread: the caller persists it
    /// before doing anything else, then reads it ([`RawInit::parse`]). This call has no
    /// client-side deadline: a slow server's answer is waited for, never discarded.
    async fn init(&self, pod: &PodName, request: &InitRequest) -> Result<RawInit>;

    /// One call of the rekey protocol (see [`crate::rotation`]). Calls carrying a share
    /// send it in the body (HTTP) or on stdin (exec), never on a command line.
    async fn rekey(
        &self,
        pod: &PodName,
        api: RotationApi,
        call: RekeyCall<'_>,
        token: &Token,
    ) -> Result<RekeyAnswer>;

    /// Rotates the keyring's encryption key (`sys/rotate/keyring` or `sys/rotate`).
    async fn rotate_keyring(&self, pod: &PodName, api: RotationApi, token: &Token) -> Result<()>;

    /// `sys/unseal` with one share; answers the progress after it.
    async fn unseal(&self, pod: &PodName, share: &KeyShare) -> Result<UnsealProgress>;

    /// `sys/unseal` with `reset`: discards shares entered so far.
    async fn unseal_reset(&self, pod: &PodName) -> Result<UnsealProgress>;

    /// `sys/storage/raft/join` on an uninitialized (or joining) node: asks the leader at
    /// `leader_api_addr` for a fresh join challenge, trusting the cluster CA for it. No
    /// token: the node has none yet. On a node that already holds raft data the server
    /// answers success and does nothing.
    async fn join_raft(&self, pod: &PodName, leader_api_addr: &str) -> Result<()>;

    /// `sys/storage/raft/remove-peer`; removing an id that is not a peer succeeds.
    async fn remove_raft_peer(&self, pod: &PodName, node_id: &str, token: &Token) -> Result<()>;

    /// `sys/step-down`: the active node gives up leadership.
    async fn step_down(&self, pod: &PodName, token: &Token) -> Result<()>;

    /// `sys/auth`: mounted auth methods, path (with trailing `/`) → type.
    async fn auth_mounts(&self, pod: &PodName, token: &Token) -> Result<BTreeMap<String, String>>;

    /// `sys/auth/<path>`: mounts an auth method.
    async fn enable_auth(&self, pod: &PodName, path: &str, kind: &str, token: &Token)
    -> Result<()>;

    /// `sys/policy/<name>`: the policy text, if the policy exists.
    async fn read_policy(&self, pod: &PodName, name: &str, token: &Token)
    -> Result<Option<String>>;

    /// `sys/policy/<name>`: creates or replaces a policy.
    async fn write_policy(
        &self,
        pod: &PodName,
        name: &str,
        rules: &str,
        token: &Token,
    ) -> Result<()>;

    /// `sys/policy/<name>`: deletes a policy (deleting one that does not exist succeeds).
    async fn delete_policy(&self, pod: &PodName, name: &str, token: &Token) -> Result<()>;

    /// `auth/<mount>/config`, if configured.
    async fn read_kubernetes_auth_config(
        &self,
        pod: &PodName,
        mount: &str,
        token: &Token,
    ) -> Result<Option<KubernetesAuthConfig>>;

    /// `auth/<mount>/config`: configures the Kubernetes auth method.
    async fn write_kubernetes_auth_config(
        &self,
        pod: &PodName,
        mount: &str,
        config: &KubernetesAuthConfig,
        token: &Token,
    ) -> Result<()>;

    /// `auth/<mount>/role/<name>`, if it exists.
    async fn read_kubernetes_role(
        &self,
        pod: &PodName,
        mount: &str,
        name: &str,
        token: &Token,
    ) -> Result<Option<KubernetesRole>>;

    /// `auth/<mount>/role/<name>`: creates or replaces a role.
    async fn write_kubernetes_role(
        &self,
        pod: &PodName,
        mount: &str,
        role: &KubernetesRole,
        token: &Token,
    ) -> Result<()>;

    /// `auth/token/roles/<name>`, if it exists.
    async fn read_token_role(
        &self,
        pod: &PodName,
        name: &str,
        token: &Token,
    ) -> Result<Option<TokenRole>>;

    /// `auth/token/roles/<name>`: creates or replaces a token role.
    async fn write_token_role(&self, pod: &PodName, role: &TokenRole, token: &Token) -> Result<()>;

    /// `auth/<mount>/login`: logs in with a service-account JWT.
    async fn kubernetes_login(
        &self,
        pod: &PodName,
        mount: &str,
        role: &str,
        jwt: &SecretString,
    ) -> Result<Token>;

    /// `auth/token/lookup-self`.
    async fn lookup_self(&self, pod: &PodName, token: &Token) -> Result<TokenInfo>;

    /// `auth/token/revoke-self`: revokes the token used.
    async fn revoke_self(&self, pod: &PodName, token: &Token) -> Result<()>;
}

/// A shared client is a client: the operator keeps one per cluster behind an `Arc`.
#[async_trait]
impl<T: NodeClient + ?Sized> NodeClient for std::sync::Arc<T> {
    fn transport(&self) -> Transport {
        (**self).transport()
    }

    async fn health(&self, pod: &PodName) -> Result<Health> {
        (**self).health(pod).await
    }

    async fn seal_status(&self, pod: &PodName) -> Result<SealStatus> {
        (**self).seal_status(pod).await
    }

    async fn init_status(&self, pod: &PodName) -> Result<bool> {
        (**self).init_status(pod).await
    }

    async fn leader(&self, pod: &PodName) -> Result<LeaderStatus> {
        (**self).leader(pod).await
    }

    async fn node_status(&self, pod: &PodName) -> Result<NodeStatus> {
        (**self).node_status(pod).await
    }

    async fn raft_configuration(&self, pod: &PodName, token: &Token) -> Result<RaftConfiguration> {
        (**self).raft_configuration(pod, token).await
    }

    async fn autopilot_state(&self, pod: &PodName, token: &Token) -> Result<AutopilotState> {
        (**self).autopilot_state(pod, token).await
    }

    async fn init(&self, pod: &PodName, request: &InitRequest) -> Result<RawInit> {
        (**self).init(pod, request).await
    }

    async fn unseal(&self, pod: &PodName, share: &KeyShare) -> Result<UnsealProgress> {
        (**self).unseal(pod, share).await
    }

    async fn rekey(
        &self,
        pod: &PodName,
        api: RotationApi,
        call: RekeyCall<'_>,
        token: &Token,
    ) -> Result<RekeyAnswer> {
        (**self).rekey(pod, api, call, token).await
    }

    async fn rotate_keyring(&self, pod: &PodName, api: RotationApi, token: &Token) -> Result<()> {
        (**self).rotate_keyring(pod, api, token).await
    }

    async fn unseal_reset(&self, pod: &PodName) -> Result<UnsealProgress> {
        (**self).unseal_reset(pod).await
    }

    async fn join_raft(&self, pod: &PodName, leader_api_addr: &str) -> Result<()> {
        (**self).join_raft(pod, leader_api_addr).await
    }

    async fn remove_raft_peer(&self, pod: &PodName, node_id: &str, token: &Token) -> Result<()> {
        (**self).remove_raft_peer(pod, node_id, token).await
    }

    async fn step_down(&self, pod: &PodName, token: &Token) -> Result<()> {
        (**self).step_down(pod, token).await
    }

    async fn auth_mounts(&self, pod: &PodName, token: &Token) -> Result<BTreeMap<String, String>> {
        (**self).auth_mounts(pod, token).await
    }

    async fn enable_auth(
        &self,
        pod: &PodName,
        path: &str,
        kind: &str,
        token: &Token,
    ) -> Result<()> {
        (**self).enable_auth(pod, path, kind, token).await
    }

    async fn read_policy(
        &self,
        pod: &PodName,
        name: &str,
        token: &Token,
    ) -> Result<Option<String>> {
        (**self).read_policy(pod, name, token).await
    }

    async fn write_policy(
        &self,
        pod: &PodName,
        name: &str,
        rules: &str,
        token: &Token,
    ) -> Result<()> {
        (**self).write_policy(pod, name, rules, token).await
    }

    async fn delete_policy(&self, pod: &PodName, name: &str, token: &Token) -> Result<()> {
        (**self).delete_policy(pod, name, token).await
    }

    async fn read_kubernetes_auth_config(
        &self,
        pod: &PodName,
        mount: &str,
        token: &Token,
    ) -> Result<Option<KubernetesAuthConfig>> {
        (**self)
            .read_kubernetes_auth_config(pod, mount, token)
            .await
    }

    async fn write_kubernetes_auth_config(
        &self,
        pod: &PodName,
        mount: &str,
        config: &KubernetesAuthConfig,
        token: &Token,
    ) -> Result<()> {
        (**self)
            .write_kubernetes_auth_config(pod, mount, config, token)
            .await
    }

    async fn read_kubernetes_role(
        &self,
        pod: &PodName,
        mount: &str,
        name: &str,
        token: &Token,
    ) -> Result<Option<KubernetesRole>> {
        (**self).read_kubernetes_role(pod, mount, name, token).await
    }

    async fn write_kubernetes_role(
        &self,
        pod: &PodName,
        mount: &str,
        role: &KubernetesRole,
        token: &Token,
    ) -> Result<()> {
        (**self)
            .write_kubernetes_role(pod, mount, role, token)
            .await
    }

    async fn read_token_role(
        &self,
        pod: &PodName,
        name: &str,
        token: &Token,
    ) -> Result<Option<TokenRole>> {
        (**self).read_token_role(pod, name, token).await
    }

    async fn write_token_role(&self, pod: &PodName, role: &TokenRole, token: &Token) -> Result<()> {
        (**self).write_token_role(pod, role, token).await
    }

    async fn kubernetes_login(
        &self,
        pod: &PodName,
        mount: &str,
        role: &str,
        jwt: &SecretString,
    ) -> Result<Token> {
        (**self).kubernetes_login(pod, mount, role, jwt).await
    }

    async fn lookup_self(&self, pod: &PodName, token: &Token) -> Result<TokenInfo> {
        (**self).lookup_self(pod, token).await
    }

    async fn revoke_self(&self, pod: &PodName, token: &Token) -> Result<()> {
        (**self).revoke_self(pod, token).await
    }
}
