//! Bearer tokens are secrets: they print as `<redacted>` and are wiped from memory when
//! dropped, so a token never reaches a log line or a `Debug` print by accident.

use zeroize::Zeroizing;

/// A bearer token (admin token, service-account JWT).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// Wraps a token string.
    pub fn new(s: impl Into<String>) -> Self {
        Token(Zeroizing::new(s.into()))
    }

    /// The token itself, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let t = Token::new("s3cr3t");
        assert_eq!(format!("{t:?} {t}"), "<redacted> <redacted>");
        assert_eq!(t.expose(), "s3cr3t");
    }
}
