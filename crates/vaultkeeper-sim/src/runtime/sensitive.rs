//! File contents and environment values that may hold secrets (Secret volumes, projected
//! service-account tokens, `secretKeyRef` env values). They print as `<redacted>` and are
//! wiped from memory when dropped, so no secret reaches a log line, an error or a `Debug`
//! print of a pod plan by accident.

use zeroize::Zeroizing;

/// Bytes that may be secret: Debug and Display print `<redacted>`; dropped bytes are zeroed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Sensitive(Zeroizing<Vec<u8>>);

impl Sensitive {
    /// Wraps bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Sensitive(Zeroizing::new(bytes.into()))
    }

    /// The bytes themselves, for the one place that writes them to a file or an environment.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes (safe to print: lengths are not secret here).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Sensitive {
    fn from(s: &str) -> Self {
        Sensitive::new(s.as_bytes().to_vec())
    }
}

impl From<String> for Sensitive {
    fn from(s: String) -> Self {
        Sensitive::new(s.into_bytes())
    }
}

impl From<&[u8]> for Sensitive {
    fn from(b: &[u8]) -> Self {
        Sensitive::new(b.to_vec())
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_bytes_never_print() {
        let s = Sensitive::from("hvs.root-token");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), b"hvs.root-token");
        assert_eq!(s.len(), 14);
    }
}
