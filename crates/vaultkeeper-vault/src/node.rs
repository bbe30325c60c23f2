//! Domain types for one Vault/OpenBao node: who it is, where it listens, and what it says
//! about itself. Both transports parse the same JSON into these types (the HTTP API's body
//! and the CLI's `-format=json` output carry the same fields), so the decision code never
//! sees a transport.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result, Step};

/// The name of a Vault pod, which is also its raft node id (the operator always sets
/// `VAULT_RAFT_NODE_ID` to the pod name, so peer removal is exact).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodName(String);

impl PodName {
    /// Validates a pod name: a DNS-1123 label (lowercase letters, digits, `-`, at most 63
    /// characters, starting and ending with a letter or digit). The check also keeps names
    /// safe as CLI arguments (no `-` prefix, no `@file` or `key=value` tricks).
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if valid {
            Ok(PodName(name))
        } else {
            Err(Error::invalid(
                "pod name",
                format!("{name:?} is not a DNS-1123 label"),
                "use lowercase letters, digits and '-', at most 63 characters, e.g. vault-0",
            ))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The StatefulSet ordinal (`vault-2` → 2), when the name ends in one.
    pub fn ordinal(&self) -> Option<u32> {
        self.0.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
    }
}

impl fmt::Display for PodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Where the HTTP transport reaches one pod: the name its certificate carries and the
/// address to connect to. In a cluster that is `vault-0.vault-internal` at the pod IP; the
/// client connects to the IP and verifies the certificate for the name, so no DNS is needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEndpoint {
    /// The name to verify the server certificate against (a DNS name or an IP literal).
    pub server_name: String,
    /// The address to connect to (pod IP and API port, normally 8200).
    pub address: SocketAddr,
}

impl NodeEndpoint {
    /// An endpoint whose certificate carries the IP address itself.
    pub fn by_ip(ip: IpAddr, port: u16) -> Self {
        NodeEndpoint {
            server_name: ip.to_string(),
            address: SocketAddr::new(ip, port),
        }
    }

    /// An endpoint verified by DNS name but reached at a fixed address.
    pub fn by_name(server_name: impl Into<String>, address: SocketAddr) -> Self {
        NodeEndpoint {
            server_name: server_name.into(),
            address,
        }
    }
}

/// The kind of seal a node reports (`type` in `sys/seal-status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealType {
    /// Shamir: unsealed with unseal key shares.
    Shamir,
    /// An auto-unseal seal (`transit`, `awskms`, `static`, …): unseals itself; init returns
    /// recovery shares, not unseal shares.
    Auto(String),
}

impl SealType {
    fn from_wire(kind: &str) -> Self {
        if kind == "shamir" {
            SealType::Shamir
        } else {
            SealType::Auto(kind.to_string())
        }
    }

    /// Whether the node unseals itself.
    pub fn is_auto(&self) -> bool {
        matches!(self, SealType::Auto(_))
    }
}

/// `sys/seal-status`: the one read that works in every state (uninitialized, sealed,
/// unsealed), so observation starts with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealStatus {
    /// Whether the node (or, before joining, the raft cluster it reached) is initialized.
    pub initialized: bool,
    /// Whether the node is sealed.
    pub sealed: bool,
    /// Shares needed to unseal (`t`); 0 before init.
    pub threshold: u8,
    /// Shares that exist (`n`); 0 before init.
    pub shares: u8,
    /// Shares entered so far in the current unseal attempt.
    pub progress: u8,
    /// The seal kind.
    pub seal_type: SealType,
    /// Server version.
    pub version: String,
    /// Cluster id, once known (absent while sealed).
    pub cluster_id: Option<String>,
}

#[derive(Deserialize)]
struct SealStatusWire {
    initialized: bool,
    sealed: bool,
    #[serde(default)]
    t: u8,
    #[serde(default)]
    n: u8,
    #[serde(default)]
    progress: u8,
    #[serde(rename = "type", default)]
    seal_type: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    cluster_id: Option<String>,
}

impl SealStatus {
    /// Parses the body of `sys/seal-status` (or of a `sys/unseal` answer).
    pub fn parse(pod: &PodName, step: Step, value: &Value) -> Result<Self> {
        let wire: SealStatusWire = parse_wire(pod, step, value)?;
        Ok(SealStatus {
            initialized: wire.initialized,
            sealed: wire.sealed,
            threshold: wire.t,
            shares: wire.n,
            progress: wire.progress,
            seal_type: SealType::from_wire(&wire.seal_type),
            version: wire.version,
            cluster_id: wire.cluster_id.filter(|id| !id.is_empty()),
        })
    }
}

/// The answer to one `sys/unseal` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnsealProgress {
    /// Still sealed after this share.
    pub sealed: bool,
    /// Shares needed.
    pub threshold: u8,
    /// Shares entered so far (0 once unsealed or after a reset).
    pub progress: u8,
}

impl From<&SealStatus> for UnsealProgress {
    fn from(status: &SealStatus) -> Self {
        UnsealProgress {
            sealed: status.sealed,
            threshold: status.threshold,
            progress: status.progress,
        }
    }
}

/// `sys/health`, asked with every status remapped to 200 so that every state is an answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "HealthWire")]
pub struct Health {
    /// Initialized.
    pub initialized: bool,
    /// Sealed.
    pub sealed: bool,
    /// A standby (not the active node).
    pub standby: bool,
    /// A performance standby (Vault Enterprise only).
    pub performance_standby: bool,
    /// Server version.
    pub version: String,
    /// Cluster id, once known.
    pub cluster_id: Option<String>,
}

#[derive(Deserialize)]
struct HealthWire {
    initialized: bool,
    sealed: bool,
    #[serde(default)]
    standby: bool,
    #[serde(default)]
    performance_standby: bool,
    #[serde(default)]
    version: String,
    #[serde(default)]
    cluster_id: Option<String>,
}

impl From<HealthWire> for Health {
    fn from(wire: HealthWire) -> Self {
        Health {
            initialized: wire.initialized,
            sealed: wire.sealed,
            standby: wire.standby,
            performance_standby: wire.performance_standby,
            version: wire.version,
            cluster_id: wire.cluster_id.filter(|id| !id.is_empty()),
        }
    }
}

impl Health {
    /// Parses the body of `sys/health`.
    pub fn parse(pod: &PodName, value: &Value) -> Result<Self> {
        parse_wire(pod, Step::Health, value)
    }

    /// Whether this node is the active one (unsealed, not a standby).
    pub fn is_active(&self) -> bool {
        self.initialized && !self.sealed && !self.standby && !self.performance_standby
    }
}

/// `sys/leader` (only answered by unsealed nodes).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "LeaderWire")]
pub struct LeaderStatus {
    /// HA storage (raft) is on.
    pub ha_enabled: bool,
    /// This node is the leader.
    pub is_self: bool,
    /// The leader's API address, when known.
    pub leader_address: Option<String>,
    /// Raft committed index, when raft is used.
    pub raft_committed_index: Option<u64>,
    /// Raft index this node has applied to its state, when raft is used. On the leader,
    /// an applied index far behind the committed one means it is still replaying its log
    /// and cannot serve what was written last.
    pub raft_applied_index: Option<u64>,
}

#[derive(Deserialize)]
struct LeaderWire {
    #[serde(default)]
    ha_enabled: bool,
    #[serde(default)]
    is_self: bool,
    #[serde(default)]
    leader_address: Option<String>,
    #[serde(default)]
    raft_committed_index: Option<u64>,
    #[serde(default)]
    raft_applied_index: Option<u64>,
}

impl From<LeaderWire> for LeaderStatus {
    fn from(wire: LeaderWire) -> Self {
        LeaderStatus {
            ha_enabled: wire.ha_enabled,
            is_self: wire.is_self,
            leader_address: wire.leader_address.filter(|a| !a.is_empty()),
            raft_committed_index: wire.raft_committed_index,
            raft_applied_index: wire.raft_applied_index,
        }
    }
}

impl LeaderStatus {
    /// Parses the body of `sys/leader`.
    pub fn parse(pod: &PodName, value: &Value) -> Result<Self> {
        parse_wire(pod, Step::Leader, value)
    }

    /// How many committed raft entries this node has not applied yet (`None` without
    /// raft indexes).
    pub fn apply_lag(&self) -> Option<u64> {
        Some(
            self.raft_committed_index?
                .saturating_sub(self.raft_applied_index?),
        )
    }
}

/// One server in the raft configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftServer {
    /// Raft node id (the pod name).
    pub node_id: String,
    /// Cluster address (`host:8201`).
    pub address: String,
    /// Currently the raft leader.
    pub leader: bool,
    /// A voter (non-voters are promoted by autopilot once stable).
    pub voter: bool,
}

/// `sys/storage/raft/configuration`: the peers raft knows, from the leader's view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftConfiguration {
    /// Every peer.
    pub servers: Vec<RaftServer>,
}

#[derive(Deserialize)]
struct RaftConfigWire {
    config: RaftConfigInner,
}

#[derive(Deserialize)]
struct RaftConfigInner {
    #[serde(default)]
    servers: Vec<RaftServerWire>,
}

#[derive(Deserialize)]
struct RaftServerWire {
    node_id: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    leader: bool,
    #[serde(default)]
    voter: bool,
}

impl RaftConfiguration {
    /// Parses the `data` of `sys/storage/raft/configuration`.
    pub fn parse(pod: &PodName, data: &Value) -> Result<Self> {
        let wire: RaftConfigWire = parse_wire(pod, Step::RaftConfiguration, data)?;
        Ok(RaftConfiguration {
            servers: wire
                .config
                .servers
                .into_iter()
                .map(|s| RaftServer {
                    node_id: s.node_id,
                    address: s.address,
                    leader: s.leader,
                    voter: s.voter,
                })
                .collect(),
        })
    }

    /// The peer that is raft leader, if any.
    pub fn leader(&self) -> Option<&RaftServer> {
        self.servers.iter().find(|s| s.leader)
    }

    /// Node ids of the voters.
    pub fn voters(&self) -> Vec<&str> {
        self.servers
            .iter()
            .filter(|s| s.voter)
            .map(|s| s.node_id.as_str())
            .collect()
    }
}

/// One server as autopilot sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutopilotServer {
    /// Raft node id.
    pub id: String,
    /// `alive` or `left`.
    pub node_status: String,
    /// Autopilot considers it healthy.
    pub healthy: bool,
    /// `leader`, `voter` or `non-voter`.
    pub status: String,
}

/// `sys/storage/raft/autopilot/state`: raft health as autopilot judges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutopilotState {
    /// The whole cluster is healthy.
    pub healthy: bool,
    /// How many voters may fail without losing quorum.
    pub failure_tolerance: u32,
    /// The leader's node id.
    pub leader: String,
    /// Node ids of the voters.
    pub voters: Vec<String>,
    /// Every server by node id.
    pub servers: BTreeMap<String, AutopilotServer>,
}

#[derive(Deserialize)]
struct AutopilotWire {
    #[serde(default)]
    healthy: bool,
    #[serde(default)]
    failure_tolerance: u32,
    #[serde(default)]
    leader: String,
    #[serde(default)]
    voters: Vec<String>,
    #[serde(default)]
    servers: BTreeMap<String, AutopilotServerWire>,
}

#[derive(Deserialize)]
struct AutopilotServerWire {
    id: String,
    #[serde(default)]
    node_status: String,
    #[serde(default)]
    healthy: bool,
    #[serde(default)]
    status: String,
}

impl AutopilotState {
    /// Parses the `data` of `sys/storage/raft/autopilot/state`.
    pub fn parse(pod: &PodName, data: &Value) -> Result<Self> {
        let wire: AutopilotWire = parse_wire(pod, Step::AutopilotState, data)?;
        Ok(AutopilotState {
            healthy: wire.healthy,
            failure_tolerance: wire.failure_tolerance,
            leader: wire.leader,
            voters: wire.voters,
            servers: wire
                .servers
                .into_iter()
                .map(|(k, s)| {
                    (
                        k,
                        AutopilotServer {
                            id: s.id,
                            node_status: s.node_status,
                            healthy: s.healthy,
                            status: s.status,
                        },
                    )
                })
                .collect(),
        })
    }
}

/// How to split the key at init: Shamir unseal shares, or recovery shares for an
/// auto-unseal seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitRequest {
    /// Shamir seal: `secret_shares` / `secret_threshold`.
    Shamir {
        /// Number of unseal shares.
        shares: u8,
        /// Shares needed to unseal.
        threshold: u8,
    },
    /// Auto-unseal: `recovery_shares` / `recovery_threshold`.
    Recovery {
        /// Number of recovery shares.
        shares: u8,
        /// Shares needed for recovery operations.
        threshold: u8,
    },
}

impl InitRequest {
    /// Checks the numbers the way the server would, but with a message that names the
    /// field: at least one share, threshold between 1 and shares, and a threshold of at
    /// least 2 when there is more than one share (Vault refuses 1-of-N).
    pub fn validate(&self) -> Result<()> {
        let (shares, threshold, field) = match *self {
            InitRequest::Shamir { shares, threshold } => (shares, threshold, "unseal.shamir"),
            InitRequest::Recovery { shares, threshold } => (shares, threshold, "unseal.recovery"),
        };
        if shares == 0 {
            return Err(Error::invalid(
                format!("{field}.keyShares"),
                "must be at least 1",
                "set keyShares to 5 (the default) or another number from 1 to 255",
            ));
        }
        if threshold == 0 || threshold > shares {
            return Err(Error::invalid(
                format!("{field}.keyThreshold"),
                format!("{threshold} is not between 1 and keyShares ({shares})"),
                "set keyThreshold to at most keyShares, e.g. 3 of 5",
            ));
        }
        if shares > 1 && threshold < 2 {
            return Err(Error::invalid(
                format!("{field}.keyThreshold"),
                "1 share out of several would let any single share unseal",
                "set keyThreshold to at least 2 when keyShares is more than 1",
            ));
        }
        Ok(())
    }

    /// Number of shares.
    pub fn shares(&self) -> u8 {
        match *self {
            InitRequest::Shamir { shares, .. } | InitRequest::Recovery { shares, .. } => shares,
        }
    }

    /// Threshold.
    pub fn threshold(&self) -> u8 {
        match *self {
            InitRequest::Shamir { threshold, .. } | InitRequest::Recovery { threshold, .. } => {
                threshold
            }
        }
    }
}

/// The parts of a token lookup that the operator and its jobs care about. Deserializing
/// skips the token itself (`id`), which the lookup answer repeats.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "TokenInfoWire")]
pub struct TokenInfo {
    /// Policies on the token (`root` for a root token).
    pub policies: Vec<String>,
    /// Seconds left; 0 for a token that never expires (root).
    pub ttl_seconds: u64,
    /// Renewal period for periodic tokens.
    pub period_seconds: Option<u64>,
    /// Whether the token is an orphan (survives its creator).
    pub orphan: bool,
    /// Whether the token may be renewed.
    pub renewable: bool,
}

#[derive(Deserialize)]
struct TokenInfoWire {
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    period: Option<u64>,
    #[serde(default)]
    orphan: bool,
    #[serde(default)]
    renewable: bool,
}

impl From<TokenInfoWire> for TokenInfo {
    fn from(wire: TokenInfoWire) -> Self {
        TokenInfo {
            policies: wire.policies,
            ttl_seconds: wire.ttl,
            period_seconds: wire.period.filter(|p| *p > 0),
            orphan: wire.orphan,
            renewable: wire.renewable,
        }
    }
}

impl TokenInfo {
    /// Parses the `data` of `auth/token/lookup-self`.
    pub fn parse(pod: &PodName, data: &Value) -> Result<Self> {
        parse_wire(pod, Step::TokenLookup, data)
    }

    /// Whether this is a root token.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
}

/// Deserializes a known shape; the error keeps serde's reason (field names, types), never
/// the body.
pub(crate) fn parse_wire<T: serde::de::DeserializeOwned>(
    pod: &PodName,
    step: Step,
    value: &Value,
) -> Result<T> {
    T::deserialize(value).map_err(|e| Error::UnexpectedResponse {
        pod: pod.clone(),
        step,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> PodName {
        PodName("vault-0".into())
    }

    #[test]
    fn pod_names_are_dns_labels_and_safe_cli_arguments() {
        for good in ["vault-0", "a", "my-vault-12"] {
            assert!(PodName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-vault",
            "Vault-0",
            "vault_0",
            "vault-0-",
            "@etc",
            "k=v",
            &"a".repeat(64),
        ] {
            let err = PodName::new(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("pod name"), "{bad:?}: {err}");
        }
        assert_eq!(
            PodName::new("vault-2").ok().and_then(|p| p.ordinal()),
            Some(2)
        );
    }

    #[test]
    fn seal_status_parses_every_state() -> Result<()> {
        let uninit = json!({"type":"shamir","initialized":false,"sealed":true,"t":0,"n":0,"progress":0,"version":"2.7.2"});
        let s = SealStatus::parse(&pod(), Step::SealStatus, &uninit)?;
        assert!(!s.initialized && s.sealed && s.seal_type == SealType::Shamir);
        let partial = json!({"type":"shamir","initialized":true,"sealed":true,"t":3,"n":5,"progress":2,"version":"2.7.2"});
        let s = SealStatus::parse(&pod(), Step::SealStatus, &partial)?;
        assert_eq!((s.threshold, s.shares, s.progress), (3, 5, 2));
        let auto = json!({"type":"transit","initialized":true,"sealed":false,"t":1,"n":1,"progress":0,"recovery_seal":true,"cluster_id":"c1","version":"2.7.2"});
        let s = SealStatus::parse(&pod(), Step::SealStatus, &auto)?;
        assert_eq!(s.seal_type, SealType::Auto("transit".into()));
        assert_eq!(s.cluster_id.as_deref(), Some("c1"));
        Ok(())
    }

    #[test]
    fn a_malformed_answer_names_pod_and_step() {
        let err = SealStatus::parse(&pod(), Step::SealStatus, &json!({"sealed": "yes"}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("vault-0") && err.contains("seal status"),
            "{err}"
        );
    }

    #[test]
    fn init_request_validation_names_the_field() {
        let cases = [
            (
                InitRequest::Shamir {
                    shares: 5,
                    threshold: 3,
                },
                None,
            ),
            (
                InitRequest::Shamir {
                    shares: 1,
                    threshold: 1,
                },
                None,
            ),
            (
                InitRequest::Shamir {
                    shares: 0,
                    threshold: 0,
                },
                Some("unseal.shamir.keyShares"),
            ),
            (
                InitRequest::Shamir {
                    shares: 3,
                    threshold: 4,
                },
                Some("unseal.shamir.keyThreshold"),
            ),
            (
                InitRequest::Recovery {
                    shares: 5,
                    threshold: 1,
                },
                Some("unseal.recovery.keyThreshold"),
            ),
        ];
        for (request, field) in cases {
            match (request.validate(), field) {
                (Ok(()), None) => {}
                (Err(e), Some(field)) => assert!(e.to_string().contains(field), "{e}"),
                (result, expected) => panic!("{request:?}: {result:?}, expected {expected:?}"),
            }
        }
    }
}
