//! Image references (`[registry/]repository[:tag][@digest]`) parsed and normalized as
//! docker's `distribution/reference` does: `busybox` is `docker.io/library/busybox`, and
//! the familiar form drops those defaults again.

use std::fmt;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// The key under which docker stores Docker Hub credentials.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

/// Why a reference did not parse; the messages are docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: repository name must be lowercase")]
    ContainsUppercase,
    #[error("repository name must have at least one component")]
    NameEmpty,
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    #[error("invalid checksum digest format")]
    DigestFormat,
    #[error("unsupported digest algorithm")]
    DigestAlgorithm,
    #[error("invalid checksum digest length")]
    DigestLength,
}

/// A normalized, named image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// `reference.ParseNormalizedNamed`.
    pub fn parse_normalized(s: &str) -> Result<Reference, ReferenceError> {
        if is_hex_id(s) {
            return Err(ReferenceError::HexName(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = remainder
            .split_once(':')
            .map_or(remainder.as_str(), |(r, _)| r);
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::Uppercase(remote.to_string()));
        }
        parse(&format!("{domain}/{remainder}"))
    }

    /// The full repository name, with its registry ("docker.io/library/busybox").
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as users write it ("busybox", "127.0.0.1:5000/test").
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            if let Some(rest) = self.path.strip_prefix(OFFICIAL_PREFIX) {
                if !rest.contains('/') {
                    return rest.to_string();
                }
            }
            return self.path.clone();
        }
        self.name()
    }

    /// docker's `FamiliarString`: the familiar name with its tag and digest.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Neither tag nor digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// Adds the `latest` tag to a name-only reference.
    pub fn with_default_tag(mut self) -> Reference {
        if self.is_name_only() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// The tag, or the digest when there is no tag: what the API's `tag` parameter takes.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The key credentials for this reference's registry are stored under.
    pub fn auth_key(&self) -> String {
        auth_key_for_domain(&self.domain)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The credentials key for a registry host: Docker Hub's legacy URL, or the host itself.
pub fn auth_key_for_domain(domain: &str) -> String {
    if domain == DEFAULT_DOMAIN || domain == LEGACY_DEFAULT_DOMAIN {
        INDEX_SERVER.to_string()
    } else {
        domain.to_string()
    }
}

/// `reference.ParseAnyReference`: an image ID, a digest or a named reference.
pub fn validate_any(s: &str) -> Result<(), ReferenceError> {
    if is_hex_id(s) || validate_digest(s).is_ok() {
        return Ok(());
    }
    Reference::parse_normalized(s).map(|_| ())
}

/// The registry a `search` term addresses ("docker.io" unless the term names one).
pub fn search_index(term: &str) -> String {
    match term.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            if first == LEGACY_DEFAULT_DOMAIN {
                DEFAULT_DOMAIN.to_string()
            } else {
                first.to_string()
            }
        }
        _ => DEFAULT_DOMAIN.to_string(),
    }
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (domain, mut remote) = match name.split_once('/') {
        None => (
            DEFAULT_DOMAIN.to_string(),
            format!("{OFFICIAL_PREFIX}{name}"),
        ),
        Some((first, rest)) => {
            if first == "localhost" || first.contains('.') || first.contains(':') {
                if first == LEGACY_DEFAULT_DOMAIN {
                    (DEFAULT_DOMAIN.to_string(), rest.to_string())
                } else {
                    (first.to_string(), rest.to_string())
                }
            } else if first.to_lowercase() != first {
                (first.to_string(), rest.to_string())
            } else {
                (DEFAULT_DOMAIN.to_string(), name.to_string())
            }
        }
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        remote = format!("{OFFICIAL_PREFIX}{remote}");
    }
    (domain, remote)
}

/// `reference.Parse` of a string that starts with a domain.
fn parse(s: &str) -> Result<Reference, ReferenceError> {
    match parse_exact(s) {
        Ok(r) => Ok(r),
        Err(ReferenceError::InvalidFormat) => {
            if s.is_empty() {
                Err(ReferenceError::NameEmpty)
            } else if parse_exact(&s.to_lowercase()).is_ok() {
                Err(ReferenceError::ContainsUppercase)
            } else {
                Err(ReferenceError::InvalidFormat)
            }
        }
        Err(e) => Err(e),
    }
}

fn parse_exact(s: &str) -> Result<Reference, ReferenceError> {
    let (name_and_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    let last_slash = name_and_tag.rfind('/').unwrap_or(0);
    let (name, tag) = match name_and_tag[last_slash..].find(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    let (domain, path) = name.split_once('/').ok_or(ReferenceError::InvalidFormat)?;
    if !is_domain(domain) || !is_remote_name(path) {
        return Err(ReferenceError::InvalidFormat);
    }
    if let Some(tag) = tag {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidFormat);
        }
    }
    if let Some(digest) = digest {
        if !matches_digest_pattern(digest) {
            return Err(ReferenceError::InvalidFormat);
        }
        validate_digest(digest)?;
    }
    if path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    Ok(Reference {
        domain: domain.to_string(),
        path: path.to_string(),
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
    })
}

fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || domain.starts_with('[') => (h, Some(p)),
        _ => (domain, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*` components separated by `/`.
fn is_remote_name(path: &str) -> bool {
    path.split('/').all(is_path_component)
}

fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`.
fn matches_digest_pattern(d: &str) -> bool {
    let Some((algo, hex)) = d.split_once(':') else {
        return false;
    };
    let algo_ok = algo.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    algo_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `digest.Parse`: a known algorithm with an encoded value of the right length.
fn validate_digest(d: &str) -> Result<(), ReferenceError> {
    let (algo, hex) = d.split_once(':').ok_or(ReferenceError::DigestFormat)?;
    if algo.is_empty() || hex.is_empty() {
        return Err(ReferenceError::DigestFormat);
    }
    let len = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ReferenceError::DigestAlgorithm),
    };
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ReferenceError::DigestFormat);
    }
    if hex.len() != len {
        return Err(ReferenceError::DigestLength);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> Reference {
        Reference::parse_normalized(s).unwrap()
    }

    #[test]
    fn normalizes_names() {
        let r = parsed("busybox");
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.familiar_name(), "busybox");
        assert!(r.is_name_only());
        assert_eq!(
            r.clone().with_default_tag().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(parsed("user/app:1.0").name(), "docker.io/user/app");
        assert_eq!(
            parsed("index.docker.io/user/app").familiar_name(),
            "user/app"
        );
        let local = parsed("127.0.0.1:5000/test/img:v1");
        assert_eq!(local.familiar_name(), "127.0.0.1:5000/test/img");
        assert_eq!(local.to_string(), "127.0.0.1:5000/test/img:v1");
        assert_eq!(local.tag(), Some("v1"));
        assert_eq!(local.auth_key(), "127.0.0.1:5000");
        assert_eq!(parsed("localhost/x").auth_key(), "localhost");
        assert_eq!(parsed("busybox").auth_key(), INDEX_SERVER);
        assert_eq!(
            parsed("docker.io/library/a/b").familiar_name(),
            "library/a/b"
        );
    }

    #[test]
    fn tags_and_digests() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        let r = parsed(&format!("busybox@{d}"));
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(r.tag_or_digest(), d);
        let r = parsed(&format!("busybox:1@{d}"));
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1@{d}"));
        assert_eq!(
            Reference::parse_normalized("busybox@sha256:abc").unwrap_err(),
            ReferenceError::InvalidFormat
        );
        assert_eq!(
            Reference::parse_normalized(&format!("busybox@md5:{}", "a".repeat(32))).unwrap_err(),
            ReferenceError::DigestAlgorithm
        );
    }

    #[test]
    fn rejects_bad_references() {
        assert_eq!(
            Reference::parse_normalized("Busybox")
                .unwrap_err()
                .to_string(),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(
            Reference::parse_normalized("a b").unwrap_err(),
            ReferenceError::InvalidFormat
        );
        assert_eq!(
            Reference::parse_normalized("busybox:").unwrap_err(),
            ReferenceError::InvalidFormat
        );
        assert_eq!(
            Reference::parse_normalized(&"a".repeat(64)).unwrap_err(),
            ReferenceError::HexName("a".repeat(64))
        );
        assert!(Reference::parse_normalized("-x").is_err());
        assert!(Reference::parse_normalized("a__b").is_ok());
        assert!(Reference::parse_normalized("a___b").is_err());
        assert!(Reference::parse_normalized(&format!("a:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn any_reference_and_search() {
        assert!(validate_any(&"f".repeat(64)).is_ok());
        assert!(validate_any("c13301734603").is_ok());
        assert!(validate_any(&format!("sha256:{}", "f".repeat(64))).is_ok());
        assert!(validate_any("UPPER").is_err());
        assert_eq!(search_index("busybox"), "docker.io");
        assert_eq!(search_index("127.0.0.1:5000/x"), "127.0.0.1:5000");
    }
}
