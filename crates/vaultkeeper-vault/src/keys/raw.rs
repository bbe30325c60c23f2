//! The init answer exactly as it arrived ([`RawInit`]): what the lifecycle saves before it
//! reads a single byte of it, and how it is read into [`InitKeys`] afterwards.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{InitKeys, KeyKind, KeysSummary, RECORD_VERSION};
use crate::error::{Error, Result, Step};
use crate::node::InitRequest;
use crate::secret::{ExposeSecret, KeyShare, SecretSlice, Token, secret_bytes};

/// Which client produced an init answer: the API's JSON (`keys_base64`,
/// `recovery_keys_base64`) or the CLI's (`unseal_keys_b64`, `recovery_keys_b64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerFormat {
    /// `PUT sys/init`'s body.
    Api,
    /// `operator init -format=json`'s stdout.
    Cli,
}

/// The init answer exactly as it arrived, with the request that produced it: what is
/// persisted first, before anything reads it. It holds every share and the root token.
#[derive(Clone)]
pub struct RawInit {
    /// What was asked (the threshold is not in the answer).
    pub request: InitRequest,
    /// Which parser reads it.
    pub format: AnswerFormat,
    /// The bytes, unchanged.
    pub answer: SecretSlice<u8>,
}

impl fmt::Debug for RawInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawInit")
            .field("request", &self.request)
            .field("format", &self.format)
            .field(
                "answer",
                &format_args!("<{} bytes redacted>", self.answer.expose_secret().len()),
            )
            .finish()
    }
}

/// The stored form of a [`RawInit`]: versioned, the answer in base64 (it may not even be
/// text).
#[derive(Serialize, Deserialize)]
struct RawRecord {
    version: u32,
    seal: KeyKind,
    shares: u8,
    threshold: u8,
    format: AnswerFormat,
    answer_base64: String,
}

impl RawInit {
    /// A summary from the request alone (safe to log; the answer is not read).
    pub fn summary(&self) -> KeysSummary {
        let (kind, shares, threshold) = match self.request {
            InitRequest::Shamir { shares, threshold } => (KeyKind::Unseal, shares, threshold),
            InitRequest::Recovery { shares, threshold } => (KeyKind::Recovery, shares, threshold),
        };
        KeysSummary {
            kind,
            threshold,
            shares,
            root_token_kept: true,
        }
    }

    /// Serializes for a store, in a zeroizing buffer.
    pub fn to_json(&self) -> Result<SecretSlice<u8>> {
        use base64::Engine as _;
        let summary = self.summary();
        let mut record = RawRecord {
            version: RECORD_VERSION,
            seal: summary.kind,
            shares: summary.shares,
            threshold: summary.threshold,
            format: self.format,
            answer_base64: base64::engine::general_purpose::STANDARD
                .encode(self.answer.expose_secret()),
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| Error::KeyStore {
            step: Step::KeyStoreStore,
            reason: format!("cannot encode the init answer: {e}"),
        });
        zeroize::Zeroize::zeroize(&mut record.answer_base64);
        bytes.map(secret_bytes)
    }

    /// Parses what [`RawInit::to_json`] wrote.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        use base64::Engine as _;
        let unreadable = |reason: String| Error::KeyStore {
            step: Step::KeyStoreLoad,
            reason,
        };
        let mut record: RawRecord = serde_json::from_slice(bytes).map_err(|e| {
            unreadable(format!(
                "the saved init answer is not valid JSON of the expected shape: {e}"
            ))
        })?;
        let answer = base64::engine::general_purpose::STANDARD
            .decode(record.answer_base64.as_bytes())
            .map_err(|e| unreadable(format!("the saved init answer is not base64: {e}")));
        zeroize::Zeroize::zeroize(&mut record.answer_base64);
        if record.version != RECORD_VERSION {
            return Err(unreadable(format!(
                "the saved init answer has version {}, this build reads version {RECORD_VERSION}; upgrade the operator",
                record.version
            )));
        }
        let request = match record.seal {
            KeyKind::Unseal => InitRequest::Shamir {
                shares: record.shares,
                threshold: record.threshold,
            },
            KeyKind::Recovery => InitRequest::Recovery {
                shares: record.shares,
                threshold: record.threshold,
            },
        };
        Ok(RawInit {
            request,
            format: record.format,
            answer: secret_bytes(answer?),
        })
    }

    /// Reads the answer into [`InitKeys`]: every share asked for, and a root token. An
    /// answer that is not JSON, or is missing any of it, is [`Error::InitAnswerUnreadable`]
    /// with what is wrong (never the content).
    pub fn parse(&self) -> Result<InitKeys> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            keys_base64: Option<Vec<KeyShare>>,
            #[serde(default)]
            recovery_keys_base64: Option<Vec<KeyShare>>,
            #[serde(default)]
            unseal_keys_b64: Option<Vec<KeyShare>>,
            #[serde(default)]
            recovery_keys_b64: Option<Vec<KeyShare>>,
            #[serde(default)]
            root_token: Option<Token>,
        }
        let unreadable = |reason: String| Error::InitAnswerUnreadable { reason };
        // serde_json's errors name a line and column, never the text, so they are safe.
        let answer: Answer = serde_json::from_slice(self.answer.expose_secret())
            .map_err(|e| unreadable(format!("it is not the expected JSON ({e})")))?;
        let summary = self.summary();
        let shares = match (summary.kind, self.format) {
            (KeyKind::Unseal, AnswerFormat::Api) => answer.keys_base64,
            (KeyKind::Recovery, AnswerFormat::Api) => answer.recovery_keys_base64,
            (KeyKind::Unseal, AnswerFormat::Cli) => answer.unseal_keys_b64,
            (KeyKind::Recovery, AnswerFormat::Cli) => answer.recovery_keys_b64,
        }
        .unwrap_or_default();
        if shares.len() != usize::from(summary.shares) {
            return Err(unreadable(format!(
                "{} {:?} shares were asked for and it holds {}; the seal in the server configuration may not match the requested seal kind",
                summary.shares,
                summary.kind,
                shares.len()
            )));
        }
        if shares.iter().any(|s| s.expose_secret().is_empty()) {
            return Err(unreadable("one of its shares is empty".into()));
        }
        let root_token = answer
            .root_token
            .filter(|t| !t.expose_secret().is_empty())
            .ok_or_else(|| unreadable("it holds no root token".into()))?;
        Ok(InitKeys {
            kind: summary.kind,
            threshold: summary.threshold,
            shares,
            root_token: Some(root_token),
            next: None,
            previous: None,
        })
    }
}

/// What a store holds: a key record, or only the init answer as it arrived (a process
/// stopped between the two writes, or the answer could not be read).
pub enum Stored {
    /// A key record.
    Keys(InitKeys),
    /// Only the raw answer.
    Raw(RawInit),
}

impl Stored {
    /// The keys: the record, or the raw answer read now. An unreadable answer is
    /// [`Error::InitAnswerUnreadable`], never "nothing".
    pub fn into_keys(self) -> Result<InitKeys> {
        match self {
            Stored::Keys(keys) => Ok(keys),
            Stored::Raw(raw) => raw.parse(),
        }
    }
}

/// Reads either stored form from one byte string (the file store keeps both in one file).
pub fn decode_stored(bytes: &[u8]) -> Result<Stored> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        answer_base64: Option<serde::de::IgnoredAny>,
    }
    let raw = serde_json::from_slice::<Probe>(bytes).is_ok_and(|p| p.answer_base64.is_some());
    if raw {
        RawInit::from_json(bytes).map(Stored::Raw)
    } else {
        InitKeys::from_json(bytes).map(Stored::Keys)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::tests::sample;

    pub(crate) fn raw(format: AnswerFormat, answer: &str) -> RawInit {
        RawInit {
            request: InitRequest::Shamir {
                shares: 3,
                threshold: 2,
            },
            format,
            answer: secret_bytes(answer.as_bytes().to_vec()),
        }
    }

    pub(crate) const CLI_ANSWER: &str = r#"{"unseal_keys_b64":["c2hhcmUtb25l","c2hhcmUtdHdv","c2hhcmUtdGhyZWU="],"unseal_keys_hex":["00"],"root_token":"s.rootTokenValue"}"#;
    const API_ANSWER: &str = r#"{"keys":["00"],"keys_base64":["c2hhcmUtb25l","c2hhcmUtdHdv","c2hhcmUtdGhyZWU="],"root_token":"s.rootTokenValue"}"#;

    #[test]
    fn both_answer_formats_read_into_the_same_keys() -> Result<()> {
        for (format, answer) in [
            (AnswerFormat::Cli, CLI_ANSWER),
            (AnswerFormat::Api, API_ANSWER),
        ] {
            let keys = raw(format, answer).parse()?;
            assert_eq!(keys.summary(), sample().summary(), "{format:?}");
            assert_eq!(keys.shares[2].expose_secret(), "c2hhcmUtdGhyZWU=");
        }
        Ok(())
    }

    #[test]
    fn an_unreadable_answer_says_what_is_wrong_and_never_shows_it() {
        let cases = [
            (&CLI_ANSWER[..40], "not the expected JSON"),
            (
                r#"{"unseal_keys_b64":["c2hhcmUtb25l"],"root_token":"s.rootTokenValue"}"#,
                "holds 1",
            ),
            (
                r#"{"unseal_keys_b64":["c2hhcmUtb25l","c2hhcmUtdHdv","c2hhcmUtdGhyZWU="]}"#,
                "no root token",
            ),
            (API_ANSWER, "holds 0"),
        ];
        for (answer, expected) in cases {
            let err = raw(AnswerFormat::Cli, answer)
                .parse()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(expected), "{answer}: {err}");
            assert!(err.contains("docs/custody.md"), "{err}");
            for secret in ["c2hhcmUtb25l", "s.rootTokenValue"] {
                assert!(!err.contains(secret), "{err}");
            }
        }
    }
}
