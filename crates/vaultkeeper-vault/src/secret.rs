//! Secret values: unseal and recovery shares, tokens, and the bytes that carry them.
//!
//! Every secret this crate handles lives in one of these types. They print `<redacted>`
//! in `Debug` and `Display`, so a `{:?}` in a log line or an error cannot leak one, and they
//! zeroize their memory when dropped. The only way to the value is an explicit
//! [`SecretString::expose`], which makes every use easy to find in review.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const REDACTED: &str = "<redacted>";

/// A secret string: redacted when printed, zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value. The `String` is moved, not copied, so no second copy is left behind.
    pub fn new(value: String) -> Self {
        SecretString(value)
    }

    /// The secret value. Call it only where the value leaves the process (a request body,
    /// the stdin of a command, a key store) and never to format a message.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (an empty token or share is always a bug upstream).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

// Serde exists only so a key store can persist init output; no other type in this crate
// that holds a secret is serializable.
impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretString)
    }
}

/// One share of the unseal key (Shamir) or of the recovery key (auto-unseal), base64.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyShare(SecretString);

impl KeyShare {
    /// Wraps a base64 share as Vault prints it (`unseal_keys_b64` / `recovery_keys_b64`).
    pub fn new(value: String) -> Self {
        KeyShare(SecretString::new(value))
    }

    /// The share, for the request body or stdin that hands it to a server.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for KeyShare {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for KeyShare {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SecretString::deserialize(deserializer).map(KeyShare)
    }
}

/// A Vault token (root token, a login token, a periodic token).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(SecretString);

impl Token {
    /// Wraps a token as the server returned it.
    pub fn new(value: String) -> Self {
        Token(SecretString::new(value))
    }

    /// The token, for the `X-Vault-Token` header or the stdin of a command.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Token {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SecretString::deserialize(deserializer).map(Token)
    }
}

/// Bytes that may hold a secret (a command's stdin or stdout, a serialized key record):
/// zeroized on drop, never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps bytes; the vector is moved, not copied.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The bytes, for writing them where they must go.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let value = "hvs.very-secret-token-value";
        let printed = [
            format!("{:?}", SecretString::new(value.into())),
            format!("{}", SecretString::new(value.into())),
            format!("{:?}", Token::new(value.into())),
            format!("{:?}", KeyShare::new(value.into())),
            format!("{:?}", SecretBytes::new(value.as_bytes().to_vec())),
            format!("{:#?}", Some(Token::new(value.into()))),
        ];
        for line in printed {
            assert!(!line.contains(value), "leaked in {line}");
            assert!(line.contains("redacted"), "{line}");
        }
    }

    #[test]
    fn serde_round_trips_the_value_for_storage() -> Result<(), serde_json::Error> {
        let share = KeyShare::new("c2hhcmU=".into());
        let json = serde_json::to_string(&share)?;
        assert_eq!(json, "\"c2hhcmU=\"");
        let back: KeyShare = serde_json::from_str(&json)?;
        assert_eq!(back.expose(), "c2hhcmU=");
        Ok(())
    }
}
