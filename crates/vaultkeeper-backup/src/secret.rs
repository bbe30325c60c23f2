//! The backup encryption key and its public fingerprint, and reading secrets from files.
//!
//! The key is held in a `secrecy` box like every other secret of the workspace (see
//! `vaultkeeper_vault::secret`): redacted when printed, wiped on drop. Its raw bytes are
//! visible to this crate's cipher only.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecretMut, SecretBox};
use sha2::{Digest, Sha256};
use vaultkeeper_vault::secret::{ExposeSecret, SecretString, secret_string};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of a backup encryption key in bytes.
pub const KEY_LEN: usize = 32;

/// The symmetric key that encrypts backups (XChaCha20-Poly1305, 256 bits).
///
/// In production it lives in a Kubernetes Secret; the caller generates it with
/// [`EncryptionKey::generate`] and stores it when the Secret is absent. Losing it makes
/// every backup encrypted with it unreadable.
pub struct EncryptionKey(SecretBox<[u8; KEY_LEN]>);

impl EncryptionKey {
    /// An all-zero key to fill in place, so the key bytes never sit on the stack.
    fn zeroed() -> Self {
        Self(SecretBox::new(Box::new([0u8; KEY_LEN])))
    }

    /// A key from exactly 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != KEY_LEN {
            return Err(Error::InvalidKey {
                reason: format!("it is {} bytes long", bytes.len()),
            });
        }
        let mut key = Self::zeroed();
        key.0.expose_secret_mut().copy_from_slice(bytes);
        Ok(key)
    }

    /// A key from the contents of a file or Secret value: 32 raw bytes, or the standard
    /// base64 encoding of 32 bytes (surrounding whitespace ignored).
    ///
    /// Both are accepted because a Secret's `data` value mounted as a file gives raw bytes,
    /// while a person writing a key by hand writes base64. They cannot be confused: base64
    /// of 32 bytes is 44 characters.
    pub fn from_file_contents(contents: &[u8]) -> Result<Self> {
        if contents.len() == KEY_LEN {
            return Self::from_bytes(contents);
        }
        let text = std::str::from_utf8(contents).map_err(|_| Error::InvalidKey {
            reason: format!("it is {} bytes long and not base64 text", contents.len()),
        })?;
        let decoded = Zeroizing::new(STANDARD.decode(text.trim().as_bytes()).map_err(|_| {
            Error::InvalidKey {
                reason: format!("it is {} bytes long and not valid base64", contents.len()),
            }
        })?);
        Self::from_bytes(&decoded).map_err(|_| Error::InvalidKey {
            reason: format!("its base64 decodes to {} bytes", decoded.len()),
        })
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let mut key = Self::zeroed();
        getrandom::fill(key.0.expose_secret_mut()).map_err(|e| Error::Random(e.to_string()))?;
        Ok(key)
    }

    /// The key as base64 text, for the caller to store in a Secret.
    pub fn to_base64(&self) -> SecretString {
        secret_string(STANDARD.encode(self.0.expose_secret()))
    }

    /// The public fingerprint of this key (see [`KeyId`]).
    pub fn key_id(&self) -> KeyId {
        let mut hasher = Sha256::new();
        hasher.update(b"vaultkeeper-backup key id v1\0");
        hasher.update(self.0.expose_secret());
        let digest = hasher.finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        KeyId(id)
    }

    /// A second handle on the same key (zeroized independently).
    pub(crate) fn duplicate(&self) -> Self {
        let mut key = Self::zeroed();
        key.0
            .expose_secret_mut()
            .copy_from_slice(self.0.expose_secret());
        key
    }

    /// The raw key, for the cipher only (not public: nothing outside this crate needs it).
    pub(crate) fn expose_secret(&self) -> &[u8; KEY_LEN] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

impl fmt::Display for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Length of a [`KeyId`] in bytes.
pub const KEY_ID_LEN: usize = 8;

/// A public fingerprint of an [`EncryptionKey`]: the first 8 bytes of a domain-separated
/// SHA-256 of the key.
///
/// It is written into every backup header so that restore can say "wrong key" instead of
/// "tampered", and printed in hex so a person can match a backup with a key Secret. It
/// reveals nothing usable about a 256-bit random key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Reads a secret (a token, a JWT, an S3 key) from a file, trimming surrounding whitespace
/// (files written by `echo` end with a newline). `what` names the flag, for the error.
pub fn read_secret_file(what: &'static str, path: &std::path::Path) -> Result<SecretString> {
    let raw = Zeroizing::new(std::fs::read(path).map_err(|source| Error::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })?);
    let text = std::str::from_utf8(&raw).map_err(|_| Error::InvalidArgument {
        field: what,
        reason: format!("{} is not UTF-8 text", path.display()),
    })?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Error::InvalidArgument {
            field: what,
            reason: format!("{} is empty", path.display()),
        });
    }
    Ok(secret_string(trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_token_never_print_their_value() {
        let key = EncryptionKey::from_bytes(&[0x41; 32]).unwrap();
        let token = secret_string("s.supersecret".into());
        for printed in [format!("{key:?}"), format!("{key}"), format!("{token:?}")] {
            assert!(printed.to_lowercase().contains("redacted"), "{printed}");
            assert!(!printed.contains("AAAA") && !printed.contains("supersecret"));
        }
    }

    #[test]
    fn key_accepts_raw_bytes_and_base64_and_rejects_other_lengths() {
        let raw = [7u8; 32];
        let from_raw = EncryptionKey::from_file_contents(&raw).unwrap();
        let b64 = format!("{}\n", STANDARD.encode(raw));
        let from_b64 = EncryptionKey::from_file_contents(b64.as_bytes()).unwrap();
        assert_eq!(from_raw.key_id(), from_b64.key_id());

        let short = EncryptionKey::from_file_contents(&[1u8; 16]).unwrap_err();
        assert!(short.to_string().contains("16 bytes"), "{short}");
        let b64_short = STANDARD.encode([1u8; 16]);
        let err = EncryptionKey::from_file_contents(b64_short.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("decodes to 16 bytes"), "{err}");
    }

    #[test]
    fn generated_keys_differ_and_round_trip_through_base64() {
        let a = EncryptionKey::generate().unwrap();
        let b = EncryptionKey::generate().unwrap();
        assert_ne!(a.key_id(), b.key_id());
        let again =
            EncryptionKey::from_file_contents(a.to_base64().expose_secret().as_bytes()).unwrap();
        assert_eq!(a.key_id(), again.key_id());
    }
}
