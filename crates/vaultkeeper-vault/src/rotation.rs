//! Key rotation: a rekey (new unseal or recovery shares, and with them a new root key) and
//! a rotation of the keyring's encryption key, each an explicit operation a person asks
//! for.
//!
//! A rekey keeps to the save-first rule. It is started with verification required, so the
//! new shares take effect only once they have been entered again (`…/verify`):
//!
//! ```text
//!   init ─► update × threshold (old shares) ─► new shares
//!      ─► SAVE {current: old, next: new}            (a failed save cancels the rekey)
//!      ─► verify × threshold (new shares)           (now the new shares are in force)
//!      ─► SAVE {current: new, previous: old}        (held and retried until saved)
//! ```
//!
//! Until the second save, the keys Secret holds the new shares as `next`; after it, the old
//! ones as `previous`, until every pod has been unsealed with the new ones (a pod whose
//! data predates the rekey still needs the old shares once). Unsealing tries the current
//! shares, then the others, so no state in between can leave a pod sealed for good.
//!
//! OpenBao serves the rekey at `sys/rotate/root/*` and the keyring rotation at
//! `sys/rotate/keyring`, both behind a token (its unauthenticated `sys/rekey/*` is off);
//! Vault serves `sys/rekey/*` and `sys/rotate`.

use serde::Deserialize;
use tracing::{info, warn};

use crate::bootstrap::Authority;
use crate::client::NodeClient;
use crate::error::{Error, Result, Step};
use crate::keys::{InitKeys, KeyKind, KeyStore, OtherShares};
use crate::lifecycle::{Done, Lifecycle};
use crate::node::{PodName, UnsealProgress};
use crate::secret::{ExposeSecret, KeyShare, Token};

/// Which server's paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationApi {
    /// `sys/rotate/root/*`, `sys/rotate/keyring`.
    OpenBao,
    /// `sys/rekey/*`, `sys/rotate`.
    Vault,
}

impl RotationApi {
    /// The path of one rekey call (`init`, `update`, `verify`).
    pub fn rekey_path(self, call: &str) -> String {
        match self {
            RotationApi::OpenBao => format!("sys/rotate/root/{call}"),
            RotationApi::Vault => format!("sys/rekey/{call}"),
        }
    }

    /// The keyring rotation's path.
    pub fn keyring_path(self) -> &'static str {
        match self {
            RotationApi::OpenBao => "sys/rotate/keyring",
            RotationApi::Vault => "sys/rotate",
        }
    }
}

/// One call of the rekey protocol.
#[derive(Debug)]
pub enum RekeyCall<'a> {
    /// Starts a rekey to `shares` shares of which `threshold` unseal, with verification.
    Start {
        /// New share count.
        shares: u8,
        /// New threshold.
        threshold: u8,
    },
    /// Cancels a rekey in progress (nothing takes effect).
    Cancel,
    /// Enters one current share.
    Submit {
        /// The rekey's nonce.
        nonce: &'a str,
        /// A current share.
        share: &'a KeyShare,
    },
    /// Enters one new share to verify them.
    Verify {
        /// The verification nonce.
        nonce: &'a str,
        /// A new share.
        share: &'a KeyShare,
    },
}

impl RekeyCall<'_> {
    /// The path segment and whether the call deletes.
    pub fn endpoint(&self) -> (&'static str, bool) {
        match self {
            RekeyCall::Start { .. } => ("init", false),
            RekeyCall::Cancel => ("init", true),
            RekeyCall::Submit { .. } => ("update", false),
            RekeyCall::Verify { .. } => ("verify", false),
        }
    }

    /// The JSON body (it holds a share for `Submit` and `Verify`: drop it right after use).
    pub fn body(&self) -> Option<serde_json::Value> {
        match self {
            RekeyCall::Start { shares, threshold } => Some(serde_json::json!({
                "secret_shares": shares,
                "secret_threshold": threshold,
                "require_verification": true,
            })),
            RekeyCall::Cancel => None,
            RekeyCall::Submit { nonce, share } | RekeyCall::Verify { nonce, share } => {
                Some(serde_json::json!({ "nonce": nonce, "key": share.expose_secret() }))
            }
        }
    }
}

/// What a rekey call answered (the parts this library needs).
#[derive(Default)]
pub struct RekeyAnswer {
    /// The rekey's nonce (or, from `verify`, the verification nonce).
    pub nonce: Option<String>,
    /// Shares entered so far.
    pub progress: u8,
    /// Whether this step is complete.
    pub complete: bool,
    /// The new shares (from the `update` that completes).
    pub keys: Vec<KeyShare>,
    /// The nonce to verify the new shares with.
    pub verification_nonce: Option<String>,
}

impl std::fmt::Debug for RekeyAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RekeyAnswer")
            .field("progress", &self.progress)
            .field("complete", &self.complete)
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .finish_non_exhaustive()
    }
}

/// Reads a rekey answer from the bytes either transport got: OpenBao wraps it in `data`,
/// Vault does not. An empty answer (a `DELETE`) is the default.
pub(crate) fn rekey_answer(pod: &PodName, bytes: &[u8]) -> Result<RekeyAnswer> {
    #[derive(Deserialize, Default)]
    struct Fields {
        #[serde(default)]
        nonce: Option<String>,
        #[serde(default)]
        progress: Option<u8>,
        #[serde(default)]
        complete: Option<bool>,
        #[serde(default)]
        keys_base64: Option<Vec<KeyShare>>,
        #[serde(default)]
        verification_nonce: Option<String>,
    }
    #[derive(Deserialize)]
    struct Wrapped {
        #[serde(default)]
        data: Option<Fields>,
        #[serde(flatten)]
        top: Fields,
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(RekeyAnswer::default());
    }
    // serde_json's errors name a line and column, never the text, so they are safe.
    let wrapped: Wrapped =
        serde_json::from_slice(bytes).map_err(|e| Error::UnexpectedResponse {
            pod: pod.clone(),
            step: Step::Rekey,
            reason: format!("the rekey answer is not the expected JSON: {e}"),
        })?;
    let fields = wrapped.data.unwrap_or(wrapped.top);
    Ok(RekeyAnswer {
        nonce: fields.nonce,
        progress: fields.progress.unwrap_or(0),
        complete: fields.complete.unwrap_or(false),
        keys: fields.keys_base64.unwrap_or_default(),
        verification_nonce: fields.verification_nonce.filter(|n| !n.is_empty()),
    })
}

/// What a rekey did, without a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RekeyReport {
    /// New share count.
    pub shares: u8,
    /// New threshold.
    pub threshold: u8,
    /// The kept new shares of an earlier rekey turned out to be in force (its last save
    /// had not happened); they were the ones rekeyed from.
    pub resolved_earlier_rekey: bool,
}

/// Which kept set of shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kept {
    Current,
    Next,
    Previous,
}

/// Whether an error says "these are not the right shares" (the server could not decrypt
/// its root key with them), as opposed to a node that does not answer.
pub(crate) fn wrong_shares(error: &Error) -> bool {
    matches!(error, Error::Api { status: 400, .. })
}

impl<C: NodeClient, S: KeyStore> Lifecycle<C, S> {
    /// Enters the shares in force into `pod`; when it refuses them, with a rekey's kept
    /// new shares (which are then in force: promoted), then with the old ones (a pod whose
    /// data predates the rekey). Old shares go once every pod has been unsealed with the
    /// current ones. It reads the keys only, so several pods can be unsealed at once; the
    /// bookkeeping ([`Lifecycle::after_unseal`]) follows, one pod at a time.
    pub(crate) async fn submit_kept_shares(
        &self,
        pod: &PodName,
        keys: &InitKeys,
    ) -> Result<(Done, Kept)> {
        let mut sets = vec![Kept::Current];
        sets.extend(keys.next.as_ref().map(|_| Kept::Next));
        sets.extend(keys.previous.as_ref().map(|_| Kept::Previous));
        let mut refused = None;
        for (i, kept) in sets.iter().enumerate() {
            if i > 0 {
                self.client.unseal_reset(pod).await?;
            }
            let (threshold, shares) = match kept {
                Kept::Current => (keys.threshold, &keys.shares),
                Kept::Next => keys
                    .next
                    .as_ref()
                    .map(|n| (n.threshold, &n.shares))
                    .ok_or_else(|| Error::invalid("kept shares", "gone", "report this as a bug"))?,
                Kept::Previous => keys
                    .previous
                    .as_ref()
                    .map(|p| (p.threshold, &p.shares))
                    .ok_or_else(|| Error::invalid("kept shares", "gone", "report this as a bug"))?,
            };
            // The threshold's shares go in at once: the server takes them one at a time
            // under its own lock and unseals on the last, so the order does not matter
            // and the pod waits for one round trip instead of one per share.
            let answers = futures::future::join_all(
                shares
                    .iter()
                    .take(usize::from(threshold))
                    .map(|share| self.client.unseal(pod, share)),
            )
            .await;
            let mut progress: Option<UnsealProgress> = None;
            let mut outcome = None;
            let mut failed = None;
            for answer in answers {
                match answer {
                    Ok(answer) if !answer.sealed => outcome = Some(Done::Unsealed),
                    // The answer to the share that reached the threshold shows progress
                    // back at 0 (a joining node unseals once raft lets it in): report the
                    // lowest, which is that one whenever the threshold was reached.
                    Ok(answer) => {
                        if progress
                            .as_ref()
                            .is_none_or(|p| answer.progress < p.progress)
                        {
                            progress = Some(answer);
                        }
                    }
                    Err(e) if wrong_shares(&e) && sets.len() > 1 => refused = Some(e),
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if outcome.is_none()
                && refused.is_none()
                && let Some(e) = failed
            {
                return Err(e);
            }
            if outcome.is_none() && refused.is_some() {
                refused = None;
                continue;
            }
            let done = match (outcome, progress) {
                (Some(done), _) => done,
                (None, Some(p)) => Done::SharesSubmitted(p),
                (None, None) => {
                    return Err(Error::KeyStore {
                        step: Step::KeyStoreLoad,
                        reason: "the stored record has no shares".into(),
                    });
                }
            };
            return Ok((done, *kept));
        }
        Err(Error::Api {
            pod: pod.clone(),
            step: Step::Unseal,
            status: 400,
            message: "the pod refused every set of shares the keys Secret holds".into(),
        })
    }

    /// Bookkeeping after `kept` unsealed `pod`: a rekey's new shares are promoted; the pod
    /// is crossed off the list the old shares wait for.
    pub(crate) async fn after_unseal(&mut self, pod: &PodName, kept: Kept, keys: &mut InitKeys) {
        let changed = match kept {
            Kept::Next => {
                let Some(next) = keys.next.take() else {
                    return;
                };
                warn!(pod = %pod, "the kept shares of an unfinished rekey unsealed this pod: they are in force; keeping them as the current shares");
                let old = OtherShares {
                    threshold: keys.threshold,
                    shares: std::mem::replace(&mut keys.shares, next.shares),
                    pods_left: self
                        .intent
                        .pods()
                        .iter()
                        .filter(|p| *p != pod)
                        .map(|p| p.as_str().to_owned())
                        .collect(),
                };
                keys.threshold = next.threshold;
                keys.previous = Some(old);
                true
            }
            Kept::Current => match keys.previous.as_mut() {
                Some(previous) if previous.pods_left.iter().any(|p| p == pod.as_str()) => {
                    previous.pods_left.retain(|p| p != pod.as_str());
                    if previous.pods_left.is_empty() {
                        info!(
                            "every pod has been unsealed with the current shares; dropping the old ones"
                        );
                        keys.previous = None;
                    }
                    true
                }
                _ => false,
            },
            Kept::Previous => false,
        };
        if changed {
            // The shares that unsealed are in the record either way; a failed write only
            // delays the bookkeeping to the next unseal.
            if let Err(e) = self.store.store(keys).await {
                warn!(error = %e, "cannot record which shares unsealed; trying again at the next unseal");
            }
        }
    }

    /// Rekeys through the active pod `via` (see the module documentation for the
    /// sequence). The new record is saved before anything else happens; a failed final
    /// save is held and retried like init output.
    pub async fn rekey(&mut self, via: &PodName, api: RotationApi) -> Result<RekeyReport> {
        if self.has_pending_keys() {
            return Err(Error::KeyStore {
                step: Step::KeyStoreStore,
                reason: "key material is still waiting to be saved; the rekey waits for it".into(),
            });
        }
        let mut held = self.store.load().await?;
        if held.is_none() {
            return Err(Error::KeyStore {
                step: Step::KeyStoreLoad,
                reason: "the keys Secret holds no shares to rekey with".into(),
            });
        }
        if held.as_ref().is_some_and(|k| k.kind == KeyKind::Recovery) {
            return Err(Error::invalid(
                "spec.keys.rotation.rekey",
                "this cluster unseals through its seal (auto-unseal); its shares are recovery shares, which this rekey does not replace",
                "remove spec.keys.rotation.rekey; rotate the recovery shares by hand with `bao operator rotate-keys -target=recovery` (`vault operator rekey -target=recovery`) and put the new ones in the keys Secret",
            ));
        }
        let (token, authority) = self.token(via, &mut held).await?;
        let mut keys = held.ok_or_else(|| Error::KeyStore {
            step: Step::KeyStoreLoad,
            reason: "the keys Secret holds no shares to rekey with".into(),
        })?;
        let result = self.rekey_with(via, api, &token, &mut keys).await;
        self.end_session(via, Some((token, authority))).await;
        result
    }

    async fn rekey_with(
        &mut self,
        via: &PodName,
        api: RotationApi,
        token: &Token,
        keys: &mut InitKeys,
    ) -> Result<RekeyReport> {
        let (count, threshold) = (
            u8::try_from(keys.shares.len()).unwrap_or(u8::MAX),
            keys.threshold,
        );
        let start = RekeyCall::Start {
            shares: count,
            threshold,
        };
        // A rekey already in progress is one an earlier attempt left behind (its process
        // died between the calls; its new shares, if any were saved, are kept as `next`)
        // or one a person started by hand. This one was asked for in the spec and holds
        // the operation lock: cancel the other (nothing of it is in force before its
        // verification) and start again.
        let started = match self.client.rekey(via, api, start, token).await {
            Ok(answer) => answer,
            Err(Error::Api { status: 400, .. }) => {
                warn!(pod = %via, "a rekey was already in progress; cancelling it and starting again");
                self.client
                    .rekey(via, api, RekeyCall::Cancel, token)
                    .await?;
                let start = RekeyCall::Start {
                    shares: count,
                    threshold,
                };
                self.client.rekey(via, api, start, token).await?
            }
            Err(e) => return Err(e),
        };
        let nonce = started.nonce.ok_or_else(|| Error::UnexpectedResponse {
            pod: via.clone(),
            step: Step::Rekey,
            reason: "the rekey started without a nonce".into(),
        })?;

        // Enter the shares in force: the current ones, or those of an earlier rekey whose
        // last save did not happen.
        let mut candidates = vec![Kept::Current];
        candidates.extend(keys.next.as_ref().map(|_| Kept::Next));
        let mut finished = None;
        for kept in candidates {
            let (t, shares) = match kept {
                Kept::Next => match keys.next.as_ref() {
                    Some(n) => (n.threshold, n.shares.clone()),
                    None => continue,
                },
                _ => (keys.threshold, keys.shares.clone()),
            };
            let mut answer = None;
            for share in shares.iter().take(usize::from(t)) {
                let call = RekeyCall::Submit {
                    nonce: &nonce,
                    share,
                };
                match self.client.rekey(via, api, call, token).await {
                    Ok(a) if a.complete => {
                        answer = Some(a);
                        break;
                    }
                    Ok(_) => {}
                    Err(e) if wrong_shares(&e) => break,
                    Err(e) => {
                        let _ = self.client.rekey(via, api, RekeyCall::Cancel, token).await;
                        return Err(e);
                    }
                }
            }
            if let Some(answer) = answer {
                finished = Some((kept, answer));
                break;
            }
        }
        let Some((in_force, answer)) = finished else {
            let _ = self.client.rekey(via, api, RekeyCall::Cancel, token).await;
            return Err(Error::invalid(
                "rekey",
                "the server accepted none of the shares the keys Secret holds",
                "check that the keys Secret holds this cluster's shares",
            ));
        };
        let resolved_earlier_rekey = in_force == Kept::Next;
        if let (true, Some(next)) = (resolved_earlier_rekey, keys.next.take()) {
            keys.previous = Some(OtherShares {
                threshold: keys.threshold,
                shares: std::mem::replace(&mut keys.shares, next.shares),
                pods_left: Vec::new(),
            });
            keys.threshold = next.threshold;
        }
        let verification = answer.verification_nonce.clone();
        if answer.keys.len() != usize::from(count) || verification.is_none() {
            let _ = self.client.rekey(via, api, RekeyCall::Cancel, token).await;
            return Err(Error::UnexpectedResponse {
                pod: via.clone(),
                step: Step::Rekey,
                reason: format!(
                    "asked for {count} new shares with verification, got {} {}",
                    answer.keys.len(),
                    if verification.is_some() {
                        "with a verification nonce"
                    } else {
                        "without a verification nonce"
                    }
                ),
            });
        }

        // Save first: the new shares, not in force yet, next to the ones that are.
        keys.next = Some(OtherShares {
            threshold,
            shares: answer.keys,
            pods_left: Vec::new(),
        });
        if let Err(e) = self.store.store(keys).await {
            // Nothing is in force yet: cancelling loses nothing.
            let _ = self.client.rekey(via, api, RekeyCall::Cancel, token).await;
            return Err(e);
        }
        info!(pod = %via, "new shares saved next to the current ones; verifying them");

        // Verify: from here on the new shares are in force once the server says complete.
        let verification = verification.unwrap_or_default();
        let new_shares = keys
            .next
            .as_ref()
            .map(|n| n.shares.clone())
            .unwrap_or_default();
        let mut complete = false;
        for share in new_shares.iter().take(usize::from(threshold)) {
            let call = RekeyCall::Verify {
                nonce: &verification,
                share,
            };
            // An error here leaves `next` kept: whether the server finished is not known,
            // and the next rekey or unseal tells.
            if self.client.rekey(via, api, call, token).await?.complete {
                complete = true;
                break;
            }
        }
        if !complete {
            return Err(Error::UnexpectedResponse {
                pod: via.clone(),
                step: Step::Rekey,
                reason: "the verification did not complete after the threshold of new shares"
                    .into(),
            });
        }

        // In force: the new shares become current; the old ones wait for every pod.
        if let Some(next) = keys.next.take() {
            keys.previous = Some(OtherShares {
                threshold: keys.threshold,
                shares: std::mem::replace(&mut keys.shares, next.shares),
                pods_left: self
                    .intent
                    .pods()
                    .iter()
                    .map(|p| p.as_str().to_owned())
                    .collect(),
            });
            keys.threshold = next.threshold;
        }
        self.pending = Some(keys.clone());
        self.flush_pending().await?;
        info!(pod = %via, "rekeyed: the new shares are in force and saved");
        Ok(RekeyReport {
            shares: count,
            threshold,
            resolved_earlier_rekey,
        })
    }

    /// Rotates the keyring's encryption key through the active pod `via`.
    pub async fn rotate_keyring(&mut self, via: &PodName, api: RotationApi) -> Result<()> {
        let mut held = if self.has_pending_keys() {
            None
        } else {
            self.store.load().await?
        };
        let (token, authority) = self.token(via, &mut held).await?;
        let result = self.client.rotate_keyring(via, api, &token).await;
        if authority == Authority::Operator {
            let _ = self.client.revoke_self(via, &token).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodName {
        PodName::new("vault-0".to_owned()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn both_answer_shapes_are_read() -> Result<()> {
        let openbao = br#"{"request_id":"x","data":{"complete":true,"keys_base64":["YQ==","Yg=="],"nonce":"n1","verification_nonce":"v1","verification_required":true}}"#;
        let vault = br#"{"complete":true,"keys_base64":["YQ==","Yg=="],"nonce":"n1","verification_nonce":"v1"}"#;
        for bytes in [&openbao[..], &vault[..]] {
            let answer = rekey_answer(&pod(), bytes)?;
            assert!(answer.complete);
            assert_eq!(answer.keys.len(), 2);
            assert_eq!(answer.verification_nonce.as_deref(), Some("v1"));
            assert!(!format!("{answer:?}").contains("YQ=="));
        }
        assert!(!rekey_answer(&pod(), b"")?.complete);
        let err = rekey_answer(&pod(), b"{\"keys_base64\":[\"c2VjcmV0")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("not the expected JSON") && !err.contains("c2VjcmV0"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn paths_follow_the_server() {
        assert_eq!(
            RotationApi::OpenBao.rekey_path("verify"),
            "sys/rotate/root/verify"
        );
        assert_eq!(RotationApi::Vault.rekey_path("init"), "sys/rekey/init");
        assert_eq!(RotationApi::OpenBao.keyring_path(), "sys/rotate/keyring");
        assert_eq!(RotationApi::Vault.keyring_path(), "sys/rotate");
        assert_eq!(RekeyCall::Cancel.endpoint(), ("init", true));
    }
}
