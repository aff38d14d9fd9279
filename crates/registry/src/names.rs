//! Validation of the path parameters: repository names, tags, digests and upload ids.
//!
//! Every value that becomes part of a filesystem path passes through here first. No valid
//! name component, tag, digest or upload id can be `.` or `..` or contain a separator
//! other than the `/` between name components, so a valid value never leaves its directory.

use std::fmt;
use std::sync::LazyLock;

use berth_store::Digest;
use regex::Regex;

use crate::error::{Error, Result};

/// The longest repository name accepted (the spec wants fewer than 256 characters).
const MAX_NAME_LEN: usize = 255;

static NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$").expect("name regex")
});
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").expect("tag regex"));

/// A repository name that matched the spec's grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(name: &str) -> Result<RepoName> {
        let invalid = |reason| Err(Error::NameInvalid { name: name.to_string(), reason });
        if name.is_empty() {
            return invalid("empty");
        }
        if name.len() > MAX_NAME_LEN {
            return invalid("longer than 255 characters");
        }
        if !NAME.is_match(name) {
            return invalid("path components are lowercase letters and digits separated by '.', '_', '__' or '-'");
        }
        Ok(RepoName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `tag` matches the spec's tag grammar.
pub fn is_valid_tag(tag: &str) -> bool {
    TAG.is_match(tag)
}

/// Parses a digest; only sha256 and sha512 with lowercase hex are accepted.
pub fn parse_digest(text: &str) -> Result<Digest> {
    text.parse::<Digest>().map_err(|e| Error::DigestMalformed {
        digest: text.to_string(),
        reason: match e {
            berth_store::Error::InvalidDigest(_, why) => why.to_string(),
            other => other.to_string(),
        },
    })
}

/// The `<reference>` of a manifest path: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference> {
        if text.contains(':') {
            return parse_digest(text).map(Reference::Digest);
        }
        if is_valid_tag(text) {
            Ok(Reference::Tag(text.to_string()))
        } else {
            Err(Error::TagInvalid(text.to_string()))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// Whether `id` has the form of the upload ids this registry hands out (a UUID in
/// lowercase hex); anything else cannot name an upload.
pub fn is_upload_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// A fresh random upload id (UUID version 4 layout).
pub fn new_upload_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| bytes[r].iter().map(|b| format!("{b:02x}")).collect::<String>();
    format!("{}-{}-{}-{}-{}", h(0..4), h(4..6), h(6..8), h(8..10), h(10..16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "library/ubuntu", "a-b/c_d/e.f", "a__b", "a---b/x0", "0"] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in ["", "A", "a/", "/a", "a//b", "..", "a/../b", "a/./b", "_a", "a_", "a___b", "a.-b", "a b", "a%2fb", &long] {
            assert!(RepoName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references() {
        assert_eq!(Reference::parse("latest").unwrap(), Reference::Tag("latest".into()));
        assert!(matches!(Reference::parse(&format!("sha256:{}", "0".repeat(64))).unwrap(), Reference::Digest(_)));
        for bad in ["..", ".x", "-x", "a/b", &"x".repeat(129), "sha256:zz", "md5:00", ""] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert!(is_valid_tag(&"x".repeat(128)));
    }

    #[test]
    fn upload_ids() {
        let id = new_upload_id();
        assert!(is_upload_id(&id), "{id}");
        for bad in ["", "../../etc", "0000000-0000-0000-0000-000000000000x", "AAAAAAAA-0000-0000-0000-000000000000"] {
            assert!(!is_upload_id(bad), "{bad}");
        }
    }
}
