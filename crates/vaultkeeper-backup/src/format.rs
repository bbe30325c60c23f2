//! The encrypted backup format, version 1: a fixed header followed by STREAM-encrypted chunks.
//!
//! ```text
//! header (41 bytes)
//!   magic         8  "VKBACKUP"
//!   version       1  1
//!   algorithm     1  1 = XChaCha20-Poly1305, STREAM with a 32-bit big-endian counter
//!   chunk size    4  plaintext bytes per chunk, big-endian
//!   key id        8  fingerprint of the key (see `KeyId`)
//!   nonce prefix 19  random per backup
//! chunks
//!   every chunk but the last: exactly `chunk size` plaintext bytes + 16-byte tag
//!   the last chunk: 0 to `chunk size - 1` plaintext bytes + tag, sealed with STREAM's
//!   last-chunk flag
//! ```
//!
//! STREAM puts the chunk counter and a last-chunk flag into each nonce, so reordering,
//! dropping, duplicating or cutting chunks fails authentication; the whole header is the
//! associated data of every chunk, so no header byte can be changed either. Because only
//! the last chunk is shorter than `chunk size`, the decryptor knows where the stream must
//! end without reading ahead, and a stream cut exactly at a chunk boundary is detected as
//! truncated because no chunk carried the last-chunk flag.
//!
//! This module is pure: no I/O, no clock; the random nonce prefix is passed in.

use aead_stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::KeyInit;

use crate::error::{Error, Result};
use crate::secret::{EncryptionKey, KEY_ID_LEN, KeyId};

/// The first bytes of every backup object.
pub const MAGIC: [u8; 8] = *b"VKBACKUP";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Algorithm id of XChaCha20-Poly1305 in the STREAM construction (32-bit BE counter).
pub const ALGORITHM_XCHACHA20POLY1305_STREAM_BE32: u8 = 1;
/// Human-readable name of [`ALGORITHM_XCHACHA20POLY1305_STREAM_BE32`], for manifests.
pub const ALGORITHM_NAME: &str = "xchacha20poly1305-stream-be32";
/// Length of the per-backup nonce prefix (24-byte XChaCha nonce minus STREAM's 5 bytes).
pub const NONCE_PREFIX_LEN: usize = 19;
/// Length of the header in bytes.
pub const HEADER_LEN: usize = 8 + 1 + 1 + 4 + KEY_ID_LEN + NONCE_PREFIX_LEN;
/// Length of the Poly1305 tag that follows every chunk.
pub const TAG_LEN: usize = 16;
/// Default plaintext bytes per chunk: large enough that the tag overhead is 0.02 %, small
/// enough that a chunk is nothing next to an S3 part.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Largest chunk size a header may declare; bounds the decryptor's memory on hostile input.
pub const MAX_CHUNK_SIZE: u32 = 4 * 1024 * 1024;

/// The parsed header of a backup object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Fingerprint of the encryption key.
    pub key_id: KeyId,
    /// Random nonce prefix of this backup.
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl Header {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8] = self.version;
        out[9] = ALGORITHM_XCHACHA20POLY1305_STREAM_BE32;
        out[10..14].copy_from_slice(&self.chunk_size.to_be_bytes());
        out[14..14 + KEY_ID_LEN].copy_from_slice(&self.key_id.0);
        out[14 + KEY_ID_LEN..].copy_from_slice(&self.nonce_prefix);
        out
    }

    /// Parses and checks a header. `bytes` may be longer than the header.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        // Check the magic on whatever we have, so a short foreign object is "not a backup".
        let magic_len = bytes.len().min(MAGIC.len());
        if bytes[..magic_len] != MAGIC[..magic_len] {
            return Err(Error::NotABackup);
        }
        if bytes.len() < HEADER_LEN {
            return Err(Error::TruncatedHeader {
                expected: HEADER_LEN,
            });
        }
        let version = bytes[8];
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedFormatVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if bytes[9] != ALGORITHM_XCHACHA20POLY1305_STREAM_BE32 {
            return Err(Error::UnsupportedAlgorithm { found: bytes[9] });
        }
        let chunk_size = u32::from_be_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::InvalidChunkSize {
                found: chunk_size,
                max: MAX_CHUNK_SIZE,
            });
        }
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&bytes[14..14 + KEY_ID_LEN]);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[14 + KEY_ID_LEN..HEADER_LEN]);
        Ok(Self {
            version,
            chunk_size,
            key_id: KeyId(key_id),
            nonce_prefix,
        })
    }
}

/// Draws a fresh nonce prefix from the operating system's generator.
pub fn random_nonce_prefix() -> Result<[u8; NONCE_PREFIX_LEN]> {
    let mut prefix = [0u8; NONCE_PREFIX_LEN];
    getrandom::fill(&mut prefix).map_err(|e| Error::Random(e.to_string()))?;
    Ok(prefix)
}

fn new_cipher(key: &EncryptionKey) -> Result<XChaCha20Poly1305> {
    XChaCha20Poly1305::new_from_slice(key.expose_secret()).map_err(|_| Error::InvalidKey {
        reason: "the cipher rejected its length".into(),
    })
}

/// Incremental encryptor: feed plaintext of any size, collect ciphertext.
///
/// Holds at most one chunk of plaintext. The header is emitted with the first output.
pub struct StreamEncryptor {
    stream: Option<EncryptorBE32<XChaCha20Poly1305>>,
    header: [u8; HEADER_LEN],
    header_written: bool,
    chunk_size: usize,
    pending: Vec<u8>,
    chunks: u64,
}

impl std::fmt::Debug for StreamEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEncryptor")
            .field("chunk_size", &self.chunk_size)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

impl StreamEncryptor {
    /// An encryptor for one backup. `nonce_prefix` must be fresh and random for every
    /// backup made with the same key (use [`random_nonce_prefix`]).
    pub fn new(
        key: &EncryptionKey,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        chunk_size: u32,
    ) -> Result<Self> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::InvalidArgument {
                field: "chunk size",
                reason: format!("{chunk_size} is outside 1..={MAX_CHUNK_SIZE}"),
            });
        }
        let header = Header {
            version: FORMAT_VERSION,
            chunk_size,
            key_id: key.key_id(),
            nonce_prefix,
        }
        .encode();
        let stream = EncryptorBE32::from_aead(new_cipher(key)?, &nonce_prefix.into());
        Ok(Self {
            stream: Some(stream),
            header,
            header_written: false,
            chunk_size: chunk_size as usize,
            pending: Vec::with_capacity(chunk_size as usize + TAG_LEN),
            chunks: 0,
        })
    }

    /// Encrypts `plaintext`, appending the ciphertext of every completed chunk to `out`.
    pub fn update(&mut self, mut plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.write_header(out);
        while !plaintext.is_empty() {
            let room = self.chunk_size - self.pending.len();
            let take = room.min(plaintext.len());
            self.pending.extend_from_slice(&plaintext[..take]);
            plaintext = &plaintext[take..];
            if self.pending.len() == self.chunk_size {
                // A full chunk is never the last one: the last is always shorter (maybe
                // empty), so it can be sealed now without knowing whether more follows.
                let stream = self
                    .stream
                    .as_mut()
                    .ok_or(Error::EncryptionLimit { chunk: self.chunks })?;
                stream
                    .encrypt_next_in_place(&self.header, &mut self.pending)
                    .map_err(|_| Error::EncryptionLimit { chunk: self.chunks })?;
                out.extend_from_slice(&self.pending);
                self.pending.clear();
                self.chunks += 1;
            }
        }
        Ok(())
    }

    /// Seals the last chunk (what is pending, possibly nothing) and appends it to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<()> {
        self.write_header(out);
        let stream = self
            .stream
            .take()
            .ok_or(Error::EncryptionLimit { chunk: self.chunks })?;
        stream
            .encrypt_last_in_place(&self.header, &mut self.pending)
            .map_err(|_| Error::EncryptionLimit { chunk: self.chunks })?;
        out.extend_from_slice(&self.pending);
        Ok(())
    }

    fn write_header(&mut self, out: &mut Vec<u8>) {
        if !self.header_written {
            out.extend_from_slice(&self.header);
            self.header_written = true;
        }
    }
}

enum DecryptState {
    Header(Vec<u8>),
    Body {
        stream: Box<DecryptorBE32<XChaCha20Poly1305>>,
        header: [u8; HEADER_LEN],
        chunk_size: usize,
    },
}

/// Incremental decryptor and verifier: feed ciphertext of any size, collect plaintext.
///
/// Plaintext is only released chunk by chunk after the chunk authenticated; the whole
/// object is known to be intact only when [`StreamDecryptor::finish`] returns `Ok`.
/// Holds at most one chunk.
pub struct StreamDecryptor {
    key: EncryptionKey,
    state: DecryptState,
    pending: Vec<u8>,
    chunks: u64,
}

impl std::fmt::Debug for StreamDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecryptor")
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

impl StreamDecryptor {
    /// A decryptor expecting a backup encrypted with `key`.
    pub fn new(key: &EncryptionKey) -> Self {
        Self {
            key: key.duplicate(),
            state: DecryptState::Header(Vec::with_capacity(HEADER_LEN)),
            pending: Vec::new(),
            chunks: 0,
        }
    }

    /// The header, once it has been read.
    pub fn header(&self) -> Option<Header> {
        match &self.state {
            DecryptState::Body { header, .. } => Header::decode(header).ok(),
            DecryptState::Header(_) => None,
        }
    }

    /// Number of chunks authenticated so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Decrypts `ciphertext`, appending the plaintext of every authenticated chunk to `out`.
    pub fn update(&mut self, mut ciphertext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if let DecryptState::Header(buf) = &mut self.state {
            let take = (HEADER_LEN - buf.len()).min(ciphertext.len());
            buf.extend_from_slice(&ciphertext[..take]);
            ciphertext = &ciphertext[take..];
            if buf.len() < HEADER_LEN {
                // Reject a foreign object as early as its first bytes allow.
                let seen = buf.len().min(MAGIC.len());
                if buf[..seen] != MAGIC[..seen] {
                    return Err(Error::NotABackup);
                }
                return Ok(());
            }
            let parsed = Header::decode(buf)?;
            let given = self.key.key_id();
            if parsed.key_id != given {
                return Err(Error::WrongKey {
                    backup_key_id: parsed.key_id.to_string(),
                    given_key_id: given.to_string(),
                });
            }
            let mut header = [0u8; HEADER_LEN];
            header.copy_from_slice(buf);
            let stream =
                DecryptorBE32::from_aead(new_cipher(&self.key)?, &parsed.nonce_prefix.into());
            let chunk_size = parsed.chunk_size as usize;
            self.pending = Vec::with_capacity(chunk_size + TAG_LEN);
            self.state = DecryptState::Body {
                stream: Box::new(stream),
                header,
                chunk_size,
            };
        }
        let DecryptState::Body {
            stream,
            header,
            chunk_size,
        } = &mut self.state
        else {
            return Ok(());
        };
        let sealed_chunk = *chunk_size + TAG_LEN;
        while !ciphertext.is_empty() {
            let take = (sealed_chunk - self.pending.len()).min(ciphertext.len());
            self.pending.extend_from_slice(&ciphertext[..take]);
            ciphertext = &ciphertext[take..];
            if self.pending.len() == sealed_chunk {
                // Full length means "not the last chunk" (see the module docs).
                stream
                    .decrypt_next_in_place(header, &mut self.pending)
                    .map_err(|_| Error::Tampered { chunk: self.chunks })?;
                out.extend_from_slice(&self.pending);
                self.pending.clear();
                self.chunks += 1;
            }
        }
        Ok(())
    }

    /// Authenticates the last chunk and appends its plaintext to `out`. Only an `Ok` here
    /// means the whole object is intact.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<()> {
        let DecryptState::Body { stream, header, .. } = self.state else {
            return Err(Error::TruncatedHeader {
                expected: HEADER_LEN,
            });
        };
        let mut pending = self.pending;
        if pending.len() < TAG_LEN {
            return Err(Error::Truncated {
                chunks: self.chunks,
            });
        }
        stream
            .decrypt_last_in_place(&header, &mut pending)
            .map_err(|_| {
                if pending.is_empty() {
                    Error::Truncated {
                        chunks: self.chunks,
                    }
                } else {
                    Error::Tampered { chunk: self.chunks }
                }
            })?;
        out.extend_from_slice(&pending);
        Ok(())
    }
}

/// Encrypts a whole buffer (for tests and small inputs).
pub fn encrypt_all(
    key: &EncryptionKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    chunk_size: u32,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut enc = StreamEncryptor::new(key, nonce_prefix, chunk_size)?;
    let mut out = Vec::with_capacity(plaintext.len() + HEADER_LEN + TAG_LEN);
    enc.update(plaintext, &mut out)?;
    enc.finish(&mut out)?;
    Ok(out)
}

/// Decrypts and verifies a whole buffer (for tests and small inputs).
pub fn decrypt_all(key: &EncryptionKey, ciphertext: &[u8]) -> Result<Vec<u8>> {
    let mut dec = StreamDecryptor::new(key);
    let mut out = Vec::with_capacity(ciphertext.len());
    dec.update(ciphertext, &mut out)?;
    dec.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: [u8; NONCE_PREFIX_LEN] = [9; NONCE_PREFIX_LEN];

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_bytes(&[byte; 32]).unwrap()
    }

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_every_length_around_chunk_boundaries() {
        let chunk = 16u32;
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 160, 1000] {
            let data = plaintext(len);
            let sealed = encrypt_all(&key(1), PREFIX, chunk, &data).unwrap();
            let full_chunks = len / chunk as usize;
            assert_eq!(
                sealed.len(),
                HEADER_LEN + len + (full_chunks + 1) * TAG_LEN,
                "len {len}"
            );
            assert_eq!(decrypt_all(&key(1), &sealed).unwrap(), data, "len {len}");
        }
    }

    #[test]
    fn streaming_in_odd_pieces_gives_the_same_bytes_as_one_call() {
        let data = plaintext(10_000);
        let whole = encrypt_all(&key(1), PREFIX, 100, &data).unwrap();
        let mut enc = StreamEncryptor::new(&key(1), PREFIX, 100).unwrap();
        let mut pieces = Vec::new();
        for piece in data.chunks(37) {
            enc.update(piece, &mut pieces).unwrap();
        }
        enc.finish(&mut pieces).unwrap();
        assert_eq!(pieces, whole);

        let mut dec = StreamDecryptor::new(&key(1));
        let mut out = Vec::new();
        for piece in whole.chunks(53) {
            dec.update(piece, &mut out).unwrap();
        }
        dec.finish(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn header_round_trips_and_carries_version_and_key_id() {
        let sealed = encrypt_all(&key(1), PREFIX, 4096, b"snapshot").unwrap();
        let header = Header::decode(&sealed).unwrap();
        assert_eq!(&sealed[..8], b"VKBACKUP");
        assert_eq!(header.version, FORMAT_VERSION);
        assert_eq!(header.chunk_size, 4096);
        assert_eq!(header.key_id, key(1).key_id());
        assert_eq!(header.nonce_prefix, PREFIX);
        assert_eq!(Header::decode(&header.encode()).unwrap(), header);
    }

    /// Each row: how the object is damaged, and the error restore must give.
    #[test]
    fn damaged_objects_are_refused_with_the_right_error() {
        let chunk = 16usize;
        let data = plaintext(chunk * 4 + 5); // 4 full chunks + a short last one
        let sealed = encrypt_all(&key(1), PREFIX, chunk as u32, &data).unwrap();
        let sealed_chunk = chunk + TAG_LEN;
        let body = HEADER_LEN;
        let nth = |i: usize| body + i * sealed_chunk..body + (i + 1) * sealed_chunk;

        let mut version_bumped = sealed.clone();
        version_bumped[8] = 2;
        let mut algorithm_changed = sealed.clone();
        algorithm_changed[9] = 7;
        let mut chunk_size_changed = sealed.clone();
        chunk_size_changed[13] = 32;
        let mut nonce_changed = sealed.clone();
        nonce_changed[HEADER_LEN - 1] ^= 1;
        let mut flipped_bit = sealed.clone();
        flipped_bit[body + sealed_chunk + 3] ^= 0x01;
        let mut swapped = sealed.clone();
        let (c0, c1) = (sealed[nth(0)].to_vec(), sealed[nth(1)].to_vec());
        swapped[nth(0)].copy_from_slice(&c1);
        swapped[nth(1)].copy_from_slice(&c0);
        let mut dropped = sealed[..body].to_vec();
        dropped.extend_from_slice(&sealed[nth(1).start..]);
        let mut duplicated = sealed[..nth(1).end].to_vec();
        duplicated.extend_from_slice(&sealed[nth(1)]);
        duplicated.extend_from_slice(&sealed[nth(2).start..]);
        let cut_at_boundary = sealed[..nth(3).end].to_vec();
        let cut_mid_chunk = sealed[..nth(2).start + 7].to_vec();
        let cut_past_tag = sealed[..nth(2).start + 20].to_vec();
        let cut_in_last = sealed[..sealed.len() - 1].to_vec();
        let mut appended = sealed.clone();
        appended.extend_from_slice(b"junk");
        let mut foreign = sealed.clone();
        foreign[0] = b'X';

        type Check = fn(&Error) -> bool;
        let table: Vec<(&str, Vec<u8>, Check)> = vec![
            ("version bumped", version_bumped, |e| {
                matches!(
                    e,
                    Error::UnsupportedFormatVersion {
                        found: 2,
                        supported: 1
                    }
                )
            }),
            ("algorithm changed", algorithm_changed, |e| {
                matches!(e, Error::UnsupportedAlgorithm { found: 7 })
            }),
            ("chunk size in header changed", chunk_size_changed, |e| {
                matches!(e, Error::Tampered { chunk: 0 })
            }),
            ("nonce prefix changed", nonce_changed, |e| {
                matches!(e, Error::Tampered { chunk: 0 })
            }),
            ("one bit flipped in chunk 1", flipped_bit, |e| {
                matches!(e, Error::Tampered { chunk: 1 })
            }),
            ("chunks 0 and 1 swapped", swapped, |e| {
                matches!(e, Error::Tampered { chunk: 0 })
            }),
            ("chunk 0 dropped", dropped, |e| {
                matches!(e, Error::Tampered { chunk: 0 })
            }),
            ("chunk 1 duplicated", duplicated, |e| {
                matches!(e, Error::Tampered { chunk: 2 })
            }),
            ("cut at a chunk boundary", cut_at_boundary, |e| {
                matches!(e, Error::Truncated { chunks: 4 })
            }),
            ("cut 7 bytes into chunk 2", cut_mid_chunk, |e| {
                matches!(e, Error::Truncated { chunks: 2 })
            }),
            ("cut 20 bytes into chunk 2", cut_past_tag, |e| {
                matches!(e, Error::Tampered { chunk: 2 })
            }),
            ("last byte missing", cut_in_last, |e| {
                matches!(e, Error::Tampered { chunk: 4 })
            }),
            ("junk appended", appended, |e| {
                matches!(e, Error::Tampered { chunk: 4 })
            }),
            ("not our magic", foreign, |e| matches!(e, Error::NotABackup)),
            ("header only", sealed[..HEADER_LEN].to_vec(), |e| {
                matches!(e, Error::Truncated { chunks: 0 })
            }),
            ("half a header", sealed[..20].to_vec(), |e| {
                matches!(e, Error::TruncatedHeader { .. })
            }),
            ("empty object", Vec::new(), |e| {
                matches!(e, Error::TruncatedHeader { .. })
            }),
        ];
        for (case, object, expected) in table {
            let err = decrypt_all(&key(1), &object).expect_err(case);
            assert!(expected(&err), "{case}: got {err:?}");
        }
    }

    #[test]
    fn wrong_key_is_named_as_such_not_as_tampering() {
        let sealed = encrypt_all(&key(1), PREFIX, 64, b"data").unwrap();
        let err = decrypt_all(&key(2), &sealed).unwrap_err();
        let Error::WrongKey {
            backup_key_id,
            given_key_id,
        } = &err
        else {
            panic!("expected WrongKey, got {err:?}");
        };
        assert_eq!(backup_key_id, &key(1).key_id().to_string());
        assert_eq!(given_key_id, &key(2).key_id().to_string());
    }

    #[test]
    fn no_plaintext_is_released_before_its_chunk_authenticates() {
        let data = plaintext(100);
        let mut sealed = encrypt_all(&key(1), PREFIX, 16, &data).unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 0xff;
        let mut dec = StreamDecryptor::new(&key(1));
        let mut out = Vec::new();
        dec.update(&sealed, &mut out).unwrap();
        // The six full chunks authenticated; the damaged last one was held back.
        assert_eq!(out, data[..96]);
        assert!(matches!(
            dec.finish(&mut out),
            Err(Error::Tampered { chunk: 6 })
        ));
        assert_eq!(out.len(), 96);
    }

    #[test]
    fn invalid_chunk_sizes_are_rejected_when_encrypting() {
        for size in [0, MAX_CHUNK_SIZE + 1] {
            let err = StreamEncryptor::new(&key(1), PREFIX, size).unwrap_err();
            assert!(err.to_string().contains("chunk size"), "{err}");
        }
    }

    #[test]
    fn ciphertext_differs_with_the_nonce_prefix() {
        let a = encrypt_all(&key(1), [1; NONCE_PREFIX_LEN], 64, b"same").unwrap();
        let b = encrypt_all(&key(1), [2; NONCE_PREFIX_LEN], 64, b"same").unwrap();
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
    }
}
