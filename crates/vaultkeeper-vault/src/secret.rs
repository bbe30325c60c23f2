//! Secret values: unseal and recovery shares, tokens, JWTs, and the bytes that carry them.
//!
//! The generic containers are the `secrecy` crate's ([`SecretString`], [`SecretSlice`]),
//! re-exported here so every crate of the workspace uses the same ones. [`KeyShare`] and
//! [`Token`] are thin wrappers over them that say what the value is. All of them print a
//! redaction marker in `Debug`, have no `Display`, and wipe their memory when dropped. The
//! only way to the value is [`ExposeSecret::expose_secret`], which makes every use easy to
//! find in review.

use std::fmt;

pub use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// Moves a string into a [`SecretString`] without leaving a copy behind.
///
/// `SecretString::from` shrinks a string with spare capacity, which reallocates and leaves
/// the old buffer unwiped; here such a string is copied into an exact-size buffer and the
/// original wiped.
pub fn secret_string(mut value: String) -> SecretString {
    if value.len() == value.capacity() {
        return SecretString::from(value);
    }
    let exact: Box<str> = Box::from(value.as_str());
    value.zeroize();
    SecretString::from(exact)
}

/// Moves bytes into a [`SecretSlice`] without leaving a copy behind (see [`secret_string`]).
pub fn secret_bytes(mut value: Vec<u8>) -> SecretSlice<u8> {
    if value.len() == value.capacity() {
        return SecretSlice::from(value);
    }
    let exact: Box<[u8]> = Box::from(value.as_slice());
    value.zeroize();
    SecretSlice::from(exact)
}

/// One share of the unseal key (Shamir) or of the recovery key (auto-unseal), base64.
#[derive(Clone)]
pub struct KeyShare(SecretString);

impl KeyShare {
    /// Wraps a base64 share as Vault prints it (`unseal_keys_b64` / `recovery_keys_b64`).
    pub fn new(value: String) -> Self {
        KeyShare(secret_string(value))
    }
}

impl ExposeSecret<str> for KeyShare {
    /// The share, for the request body or stdin that hands it to a server.
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyShare(<redacted>)")
    }
}

/// A Vault token (root token, a login token, a periodic token).
#[derive(Clone)]
pub struct Token(SecretString);

impl Token {
    /// Wraps a token as the server returned it.
    pub fn new(value: String) -> Self {
        Token(secret_string(value))
    }
}

impl From<SecretString> for Token {
    /// A token read as a generic secret (from a file, say), moved without a copy.
    fn from(value: SecretString) -> Self {
        Token(value)
    }
}

impl ExposeSecret<str> for Token {
    /// The token, for the `X-Vault-Token` header or the stdin of a command.
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

// Serde exists only so a key store can persist init output: the value is written through
// `expose_secret` here, and nowhere else in this crate is a secret serializable.
impl Serialize for KeyShare {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose_secret())
    }
}

impl<'de> Deserialize<'de> for KeyShare {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(KeyShare::new)
    }
}

impl Serialize for Token {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose_secret())
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Token::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let value = "hvs.very-secret-token-value";
        let printed = [
            format!("{:?}", secret_string(value.into())),
            format!("{:?}", Token::new(value.into())),
            format!("{:?}", KeyShare::new(value.into())),
            format!("{:?}", secret_bytes(value.as_bytes().to_vec())),
            format!("{:#?}", Some(Token::new(value.into()))),
        ];
        for line in printed {
            assert!(!line.contains(value), "leaked in {line}");
            assert!(line.to_lowercase().contains("redacted"), "{line}");
        }
    }

    #[test]
    fn strings_with_spare_capacity_keep_their_value() {
        let mut spare = String::with_capacity(64);
        spare.push_str("s.token");
        assert_eq!(secret_string(spare).expose_secret(), "s.token");
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(b"share");
        assert_eq!(secret_bytes(bytes).expose_secret(), b"share");
    }

    #[test]
    fn serde_round_trips_the_value_for_storage() -> Result<(), serde_json::Error> {
        let share = KeyShare::new("c2hhcmU=".into());
        let json = serde_json::to_string(&share)?;
        assert_eq!(json, "\"c2hhcmU=\"");
        let back: KeyShare = serde_json::from_str(&json)?;
        assert_eq!(back.expose_secret(), "c2hhcmU=");
        Ok(())
    }
}
