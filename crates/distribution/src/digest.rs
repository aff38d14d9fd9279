//! Content digests ("sha256:<hex>"): validation with go-digest's rules and messages, and
//! hashing of fetched bytes.

use sha2::{Digest as _, Sha256, Sha384, Sha512};

/// A digest algorithm the client can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha384" => Some(Algorithm::Sha384),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// `"<algorithm>:<hex>"` of `data`.
    pub fn digest(self, data: &[u8]) -> String {
        let hex = match self {
            Algorithm::Sha256 => hex::encode(Sha256::digest(data)),
            Algorithm::Sha384 => hex::encode(Sha384::digest(data)),
            Algorithm::Sha512 => hex::encode(Sha512::digest(data)),
        };
        format!("{}:{hex}", self.name())
    }
}

/// Checks a digest string like go-digest's `Digest.Validate`; the error is go-digest's message.
pub fn validate(digest: &str) -> Result<Algorithm, &'static str> {
    const INVALID_FORMAT: &str = "invalid checksum digest format";
    let Some((name, encoded)) = digest.split_once(':') else {
        return Err(INVALID_FORMAT);
    };
    if name.is_empty() || encoded.is_empty() {
        return Err(INVALID_FORMAT);
    }
    let Some(algorithm) = Algorithm::from_name(name) else {
        return Err(if generic_digest_ok(name, encoded) {
            "unsupported digest algorithm"
        } else {
            INVALID_FORMAT
        });
    };
    if encoded.len() != algorithm.hex_len() {
        return Err("invalid checksum digest length");
    }
    if !encoded
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(INVALID_FORMAT);
    }
    Ok(algorithm)
}

/// go-digest's `DigestRegexp`: `[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`.
fn generic_digest_ok(name: &str, encoded: &str) -> bool {
    let component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    name.split(['.', '+', '_', '-']).all(component)
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

/// `"sha256:<hex>"` of `data`.
pub fn sha256(data: &[u8]) -> String {
    Algorithm::Sha256.digest(data)
}

/// The digest of `data` computed with the algorithm of `expected`, or `None` when
/// `expected` is not a valid digest.
pub fn compute_like(expected: &str, data: &[u8]) -> Option<String> {
    validate(expected).ok().map(|a| a.digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages_match_go_digest() {
        let hex64 = "a".repeat(64);
        assert_eq!(validate(&format!("sha256:{hex64}")), Ok(Algorithm::Sha256));
        assert_eq!(
            validate(&format!("sha512:{}", "0".repeat(128))),
            Ok(Algorithm::Sha512)
        );
        assert_eq!(
            validate(&format!("sha256:{}", "A".repeat(64))),
            Err("invalid checksum digest format")
        );
        assert_eq!(
            validate("sha256:abc"),
            Err("invalid checksum digest length")
        );
        assert_eq!(
            validate(&format!("md5:{}", "a".repeat(32))),
            Err("unsupported digest algorithm")
        );
        assert_eq!(validate("sha256"), Err("invalid checksum digest format"));
        assert_eq!(validate(":abc"), Err("invalid checksum digest format"));
        assert_eq!(validate("Bad:abc"), Err("invalid checksum digest format"));
    }

    #[test]
    fn hashes() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let d = sha256(b"x");
        assert_eq!(compute_like(&d, b"x").as_deref(), Some(d.as_str()));
        assert_eq!(compute_like("nope", b"x"), None);
    }
}
