//! The HTTP transport: the operator's calls to the API of the pod they name, each pod
//! reached through its own [`VaultHttp`] and verified against the cluster CA.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use super::{KubernetesAuthConfig, KubernetesRole, NodeClient, TokenRole, Transport, wire};
use crate::error::{Error, Result, Step};
use crate::keys::{AnswerFormat, RawInit};
use crate::node::{
    AutopilotState, Health, InitRequest, LeaderStatus, NodeEndpoint, PodName, RaftConfiguration,
    SealStatus, TokenInfo, UnsealProgress,
};
use crate::rotation::{self, RekeyAnswer, RekeyCall, RotationApi};
use crate::secret::{ExposeSecret, KeyShare, SecretString, Token};

use super::vault_http::{HttpOptions, VaultHttp, tls_config};

/// The HTTP transport's node client: a [`VaultHttp`] per pod, which pods can be added to
/// as the cluster scales. Errors name the pod.
pub struct HttpNodeClient {
    tls: Arc<rustls::ClientConfig>,
    /// The cluster CA, handed to a joining node so it verifies the leader with it.
    ca_pem: String,
    options: HttpOptions,
    pods: RwLock<BTreeMap<PodName, VaultHttp>>,
}

impl HttpNodeClient {
    /// A client that trusts only the CA certificates in `ca_pem` (the cluster CA).
    pub fn new(ca_pem: &[u8], options: HttpOptions) -> Result<Self> {
        Ok(HttpNodeClient {
            tls: Arc::new(tls_config(Some(ca_pem))?),
            ca_pem: String::from_utf8_lossy(ca_pem).into_owned(),
            options,
            pods: RwLock::new(BTreeMap::new()),
        })
    }

    /// Adds (or replaces) the endpoint of a pod.
    pub fn add_pod(&self, pod: PodName, endpoint: &NodeEndpoint) -> Result<()> {
        let client =
            VaultHttp::for_pod(pod.clone(), endpoint, Arc::clone(&self.tls), self.options)?;
        if let Ok(mut pods) = self.pods.write() {
            pods.insert(pod, client);
        }
        Ok(())
    }

    fn node(&self, pod: &PodName, step: Step) -> Result<VaultHttp> {
        self.pods
            .read()
            .ok()
            .and_then(|pods| pods.get(pod).cloned())
            .ok_or_else(|| Error::UnknownPod {
                pod: pod.clone(),
                step,
            })
    }
}

#[async_trait]
impl NodeClient for HttpNodeClient {
    fn transport(&self) -> Transport {
        Transport::Http
    }

    async fn health(&self, pod: &PodName) -> Result<Health> {
        self.node(pod, Step::Health)?.health().await
    }

    async fn seal_status(&self, pod: &PodName) -> Result<SealStatus> {
        let step = Step::SealStatus;
        let node = self.node(pod, step)?;
        let reply = node
            .call(step, Method::GET, "sys/seal-status", None, None)
            .await?;
        SealStatus::parse(pod, step, &node.decode(step, &reply)?)
    }

    async fn init_status(&self, pod: &PodName) -> Result<bool> {
        let step = Step::InitStatus;
        let node = self.node(pod, step)?;
        let reply = node.call(step, Method::GET, "sys/init", None, None).await?;
        wire::initialized(pod, &node.decode(step, &reply)?)
    }

    async fn leader(&self, pod: &PodName) -> Result<LeaderStatus> {
        self.node(pod, Step::Leader)?.leader().await
    }

    async fn raft_configuration(&self, pod: &PodName, token: &Token) -> Result<RaftConfiguration> {
        let step = Step::RaftConfiguration;
        let data = self
            .node(pod, step)?
            .required_data(step, "sys/storage/raft/configuration", token)
            .await?;
        RaftConfiguration::parse(pod, &data)
    }

    async fn autopilot_state(&self, pod: &PodName, token: &Token) -> Result<AutopilotState> {
        let step = Step::AutopilotState;
        let data = self
            .node(pod, step)?
            .required_data(step, "sys/storage/raft/autopilot/state", token)
            .await?;
        AutopilotState::parse(pod, &data)
    }

    async fn init(&self, pod: &PodName, request: &InitRequest) -> Result<RawInit> {
        request.validate()?;
        let step = Step::Init;
        let body = match *request {
            InitRequest::Shamir { shares, threshold } => {
                json!({ "secret_shares": shares, "secret_threshold": threshold })
            }
            InitRequest::Recovery { shares, threshold } => {
                json!({ "recovery_shares": shares, "recovery_threshold": threshold })
            }
        };
        let answer = self.node(pod, step)?.init(&body).await?;
        Ok(RawInit {
            request: *request,
            format: AnswerFormat::Api,
            answer,
        })
    }

    async fn rekey(
        &self,
        pod: &PodName,
        api: RotationApi,
        call: RekeyCall<'_>,
        token: &Token,
    ) -> Result<RekeyAnswer> {
        let step = Step::Rekey;
        let (segment, delete) = call.endpoint();
        let method = if delete { Method::DELETE } else { Method::PUT };
        let body = call.body();
        let reply = self
            .node(pod, step)?
            .call(
                step,
                method,
                &api.rekey_path(segment),
                Some(token),
                body.as_ref(),
            )
            .await?;
        drop(body);
        rotation::rekey_answer(pod, reply.body.expose_secret())
    }

    async fn rotate_keyring(&self, pod: &PodName, api: RotationApi, token: &Token) -> Result<()> {
        self.node(pod, Step::RotateKeyring)?
            .write(Step::RotateKeyring, api.keyring_path(), token, None)
            .await
    }

    async fn unseal(&self, pod: &PodName, share: &KeyShare) -> Result<UnsealProgress> {
        let step = Step::Unseal;
        let node = self.node(pod, step)?;
        let body = json!({ "key": share.expose_secret() });
        let reply = node
            .call(step, Method::PUT, "sys/unseal", None, Some(&body))
            .await?;
        drop(body);
        SealStatus::parse(pod, step, &node.decode(step, &reply)?).map(|s| UnsealProgress::from(&s))
    }

    async fn unseal_reset(&self, pod: &PodName) -> Result<UnsealProgress> {
        let step = Step::UnsealReset;
        let node = self.node(pod, step)?;
        let body = json!({ "reset": true });
        let reply = node
            .call(step, Method::PUT, "sys/unseal", None, Some(&body))
            .await?;
        SealStatus::parse(pod, step, &node.decode(step, &reply)?).map(|s| UnsealProgress::from(&s))
    }

    async fn join_raft(&self, pod: &PodName, leader_api_addr: &str) -> Result<()> {
        let step = Step::RaftJoin;
        let node = self.node(pod, step)?;
        let body = json!({
            "leader_api_addr": leader_api_addr,
            "leader_ca_cert": self.ca_pem,
        });
        let reply = node
            .call(
                step,
                Method::POST,
                "sys/storage/raft/join",
                None,
                Some(&body),
            )
            .await?;
        wire::joined(pod, &node.decode(step, &reply)?)
    }

    async fn remove_raft_peer(&self, pod: &PodName, node_id: &str, token: &Token) -> Result<()> {
        let body = json!({ "server_id": node_id });
        self.node(pod, Step::RemovePeer)?
            .write(
                Step::RemovePeer,
                "sys/storage/raft/remove-peer",
                token,
                Some(&body),
            )
            .await
    }

    async fn step_down(&self, pod: &PodName, token: &Token) -> Result<()> {
        self.node(pod, Step::StepDown)?
            .write(Step::StepDown, "sys/step-down", token, None)
            .await
    }

    async fn auth_mounts(&self, pod: &PodName, token: &Token) -> Result<BTreeMap<String, String>> {
        let step = Step::AuthMount;
        let data = self
            .node(pod, step)?
            .required_data(step, "sys/auth", token)
            .await?;
        wire::auth_mounts(pod, &data)
    }

    async fn enable_auth(
        &self,
        pod: &PodName,
        path: &str,
        kind: &str,
        token: &Token,
    ) -> Result<()> {
        let body = json!({ "type": kind });
        self.node(pod, Step::AuthMount)?
            .write(
                Step::AuthMount,
                &format!("sys/auth/{path}"),
                token,
                Some(&body),
            )
            .await
    }

    async fn read_policy(
        &self,
        pod: &PodName,
        name: &str,
        token: &Token,
    ) -> Result<Option<String>> {
        let step = Step::Policy;
        match self
            .node(pod, step)?
            .read_data(step, &format!("sys/policy/{name}"), Some(token))
            .await?
        {
            None => Ok(None),
            Some(data) => wire::policy_text(pod, &data).map(Some),
        }
    }

    async fn write_policy(
        &self,
        pod: &PodName,
        name: &str,
        rules: &str,
        token: &Token,
    ) -> Result<()> {
        let body = json!({ "policy": rules });
        self.node(pod, Step::Policy)?
            .write(
                Step::Policy,
                &format!("sys/policy/{name}"),
                token,
                Some(&body),
            )
            .await
    }

    async fn delete_policy(&self, pod: &PodName, name: &str, token: &Token) -> Result<()> {
        self.node(pod, Step::Policy)?
            .call(
                Step::Policy,
                Method::DELETE,
                &format!("sys/policy/{name}"),
                Some(token),
                None,
            )
            .await
            .map(|_| ())
    }

    async fn read_kubernetes_auth_config(
        &self,
        pod: &PodName,
        mount: &str,
        token: &Token,
    ) -> Result<Option<KubernetesAuthConfig>> {
        let step = Step::KubernetesAuthConfig;
        match self
            .node(pod, step)?
            .read_data(step, &format!("auth/{mount}/config"), Some(token))
            .await?
        {
            // An unconfigured mount answers an empty `data`.
            None | Some(Value::Null) => Ok(None),
            Some(data) => wire::kubernetes_config(pod, &data).map(Some),
        }
    }

    async fn write_kubernetes_auth_config(
        &self,
        pod: &PodName,
        mount: &str,
        config: &KubernetesAuthConfig,
        token: &Token,
    ) -> Result<()> {
        let step = Step::KubernetesAuthConfig;
        let body = wire::kubernetes_config_body(config);
        self.node(pod, step)?
            .write(step, &format!("auth/{mount}/config"), token, Some(&body))
            .await
    }

    async fn read_kubernetes_role(
        &self,
        pod: &PodName,
        mount: &str,
        name: &str,
        token: &Token,
    ) -> Result<Option<KubernetesRole>> {
        let step = Step::KubernetesAuthRole;
        match self
            .node(pod, step)?
            .read_data(step, &format!("auth/{mount}/role/{name}"), Some(token))
            .await?
        {
            None => Ok(None),
            Some(data) => wire::kubernetes_role(pod, name, &data).map(Some),
        }
    }

    async fn write_kubernetes_role(
        &self,
        pod: &PodName,
        mount: &str,
        role: &KubernetesRole,
        token: &Token,
    ) -> Result<()> {
        let step = Step::KubernetesAuthRole;
        let body = wire::kubernetes_role_body(role);
        self.node(pod, step)?
            .write(
                step,
                &format!("auth/{mount}/role/{}", role.name),
                token,
                Some(&body),
            )
            .await
    }

    async fn read_token_role(
        &self,
        pod: &PodName,
        name: &str,
        token: &Token,
    ) -> Result<Option<TokenRole>> {
        let step = Step::TokenRole;
        match self
            .node(pod, step)?
            .read_data(step, &format!("auth/token/roles/{name}"), Some(token))
            .await?
        {
            None => Ok(None),
            Some(data) => wire::token_role(pod, name, &data).map(Some),
        }
    }

    async fn write_token_role(&self, pod: &PodName, role: &TokenRole, token: &Token) -> Result<()> {
        let step = Step::TokenRole;
        let body = wire::token_role_body(role);
        self.node(pod, step)?
            .write(
                step,
                &format!("auth/token/roles/{}", role.name),
                token,
                Some(&body),
            )
            .await
    }

    async fn kubernetes_login(
        &self,
        pod: &PodName,
        mount: &str,
        role: &str,
        jwt: &SecretString,
    ) -> Result<Token> {
        self.node(pod, Step::KubernetesLogin)?
            .kubernetes_login(mount, role, jwt)
            .await
    }

    async fn lookup_self(&self, pod: &PodName, token: &Token) -> Result<TokenInfo> {
        self.node(pod, Step::TokenLookup)?.lookup_self(token).await
    }

    async fn revoke_self(&self, pod: &PodName, token: &Token) -> Result<()> {
        self.node(pod, Step::TokenRevoke)?.revoke_self(token).await
    }
}
