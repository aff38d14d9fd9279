//! Image references (`[domain/]path[:tag][@digest]`): docker's grammar, normalisation
//! ("busybox" is `docker.io/library/busybox:latest`) and familiar forms, with docker's
//! error messages.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

use crate::{digest, Error};

/// The registry that names without a domain refer to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's old name, still accepted in references and used as the auth key.
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Docker Hub's namespace of official images.
const OFFICIAL_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository path docker accepts.
const PATH_MAX: usize = 255;

// The grammar of distribution's reference package, with `\w` spelled out as ASCII (Rust's is
// Unicode) so the regexes accept exactly what Go's do; both engines are leftmost-first.
const ALPHANUMERIC: &str = r"[a-z0-9]+";
const SEPARATOR: &str = r"(?:[._]|__|[-]+)";
const DOMAIN_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const IPV6: &str = r"\[(?:[a-fA-F0-9:]+)\]";
const TAG: &str = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
const DIGEST: &str = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";

fn domain_and_port() -> String {
    let domain_name = format!(r"{DOMAIN_COMPONENT}(?:\.{DOMAIN_COMPONENT})*");
    format!(r"(?:{domain_name}|{IPV6})(?::[0-9]+)?")
}

fn remote_name() -> String {
    let component = format!("{ALPHANUMERIC}(?:{SEPARATOR}{ALPHANUMERIC})*");
    format!("{component}(?:/{component})*")
}

fn regex(pattern: &str) -> Regex {
    // The patterns are constants of this file; a failure here is a bug caught by every test.
    Regex::new(pattern).expect("reference grammar regex compiles")
}

/// `name[:tag][@digest]`, capturing name, tag and digest.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let name = format!("(?:{}/)?{}", domain_and_port(), remote_name());
    regex(&format!("^({name})(?::({TAG}))?(?:@({DIGEST}))?$"))
});
/// A name, capturing its domain and path.
static ANCHORED_NAME: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        "^(?:({})/)?({})$",
        domain_and_port(),
        remote_name()
    ))
});
static ANCHORED_TAG: LazyLock<Regex> = LazyLock::new(|| regex(&format!("^{TAG}$")));
static ANCHORED_DIGEST: LazyLock<Regex> = LazyLock::new(|| regex(&format!("^{DIGEST}$")));
static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| regex("^[a-f0-9]{64}$"));

/// A normalised image reference: a domain, a repository path and a tag and/or digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn invalid(input: &str, message: impl Into<String>) -> Error {
    Error::InvalidReference {
        input: input.to_string(),
        message: message.into(),
    }
}

impl Reference {
    /// Parses a reference as `docker pull` does: normalised (`busybox` is
    /// `docker.io/library/busybox`) and tagged `latest` when it has neither tag nor digest.
    pub fn parse_normalized(s: &str) -> Result<Reference, Error> {
        let mut r = Reference::parse_named(s)?;
        if r.is_name_only() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses and normalises like docker's `ParseNormalizedNamed`: no default tag is added.
    pub fn parse_named(s: &str) -> Result<Reference, Error> {
        if IDENTIFIER.is_match(s) {
            return Err(invalid(
                s,
                format!(
                    "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
                ),
            ));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = remainder.split(':').next().unwrap_or_default();
        if remote.to_lowercase() != remote {
            return Err(invalid(
                s,
                format!("invalid reference format: repository name ({remote}) must be lowercase"),
            ));
        }
        Reference::parse_full(s, &format!("{domain}/{remainder}"))
    }

    /// Parses a fully qualified `domain/path[:tag][@digest]` (docker's `Parse`).
    fn parse_full(input: &str, s: &str) -> Result<Reference, Error> {
        let Some(caps) = REFERENCE.captures(s) else {
            let lower = s.to_lowercase();
            if lower != s && REFERENCE.is_match(&lower) {
                return Err(invalid(input, "repository name must be lowercase"));
            }
            return Err(invalid(input, "invalid reference format"));
        };
        let name = caps.get(1).map_or("", |m| m.as_str());
        let (domain, path) = match ANCHORED_NAME.captures(name) {
            Some(n) => (
                n.get(1).map_or("", |m| m.as_str()).to_string(),
                n.get(2).map_or("", |m| m.as_str()).to_string(),
            ),
            None => (String::new(), name.to_string()),
        };
        if path.len() > PATH_MAX {
            return Err(invalid(
                input,
                format!("repository name must not be more than {PATH_MAX} characters"),
            ));
        }
        let digest = match caps.get(3) {
            Some(d) => {
                digest::validate(d.as_str()).map_err(|m| invalid(input, m))?;
                Some(d.as_str().to_string())
            }
            None => None,
        };
        Ok(Reference {
            domain,
            path,
            tag: caps.get(2).map(|t| t.as_str().to_string()),
            digest,
        })
    }

    /// The registry domain, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The name as docker shows it: `busybox`, `user/app`, `localhost:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.path.strip_prefix(OFFICIAL_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.path.clone(),
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// True when the reference has neither tag nor digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// The same name with `tag` (the digest, if any, is kept).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, Error> {
        if !ANCHORED_TAG.is_match(tag) {
            return Err(invalid(tag, "invalid tag format"));
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            ..self.clone()
        })
    }

    /// The same name with `digest` (the tag, if any, is kept).
    pub fn with_digest(&self, digest: &str) -> Result<Reference, Error> {
        if !ANCHORED_DIGEST.is_match(digest) {
            return Err(invalid(digest, "invalid digest format"));
        }
        digest::validate(digest).map_err(|m| invalid(digest, m))?;
        Ok(Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        })
    }

    /// The name alone, without tag or digest.
    pub fn name_only(&self) -> Reference {
        Reference {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// Like docker's `ParseDockerRef`: a reference with both tag and digest keeps only the digest.
    pub fn without_tag_if_digested(&self) -> Reference {
        match self.digest {
            Some(_) => Reference {
                tag: None,
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    /// The familiar form with tag and digest, e.g. `busybox:latest`.
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// What the registry API addresses the manifest by: the digest when there is one.
    pub(crate) fn manifest_key(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest);
        }
    }
}

/// Splits a familiar name into domain and remainder like docker's `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (String, String) {
    let Some((maybe_domain, maybe_remote)) = name.split_once('/') else {
        return (
            DEFAULT_DOMAIN.to_string(),
            format!("{OFFICIAL_PREFIX}{name}"),
        );
    };
    let (domain, remote) = if maybe_domain == "localhost"
        || maybe_domain.contains(['.', ':'])
        || maybe_domain.to_lowercase() != maybe_domain
    {
        // An uppercase first component cannot be a namespace, so docker reads it as a host.
        if maybe_domain == LEGACY_DEFAULT_DOMAIN {
            (DEFAULT_DOMAIN, maybe_remote)
        } else {
            (maybe_domain, maybe_remote)
        }
    } else {
        (DEFAULT_DOMAIN, name)
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        return (domain.to_string(), format!("{OFFICIAL_PREFIX}{remote}"));
    }
    (domain.to_string(), remote.to_string())
}

/// The full normalised string, e.g. `docker.io/library/busybox:latest`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

/// Same as [`Reference::parse_normalized`].
impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse_normalized(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";

    fn err(s: &str) -> String {
        match Reference::parse_named(s) {
            Ok(r) => panic!("{s:?} parsed as {r}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn normalization_and_defaults() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            (
                "index.docker.io/x",
                "docker.io/library/x:latest",
                "x:latest",
            ),
            ("docker.io/library/x:1", "docker.io/library/x:1", "x:1"),
            (
                "localhost/app",
                "localhost/app:latest",
                "localhost/app:latest",
            ),
            (
                "localhost:5000/app:v1",
                "localhost:5000/app:v1",
                "localhost:5000/app:v1",
            ),
            (
                "example.com/a/b/c",
                "example.com/a/b/c:latest",
                "example.com/a/b/c:latest",
            ),
            (
                "library/foo/bar",
                "docker.io/library/foo/bar:latest",
                "library/foo/bar:latest",
            ),
            (
                "[fc00::1]:5000/docker",
                "[fc00::1]:5000/docker:latest",
                "[fc00::1]:5000/docker:latest",
            ),
            ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),
        ];
        for (input, full, familiar) in cases {
            let r = Reference::parse_normalized(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar_string(), familiar, "{input}");
        }
        let r = Reference::parse_normalized(&format!("localhost:5000/app@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.manifest_key(), D);
    }

    /// distribution's TestParseRepositoryInfo: (path, familiar, full, ambiguous, domain).
    #[test]
    fn repository_info() {
        let cases = [
            ("fooo", "localhost/fooo", "localhost/fooo", "", "localhost"),
            (
                "fooo/bar",
                "localhost/fooo/bar",
                "localhost/fooo/bar",
                "",
                "localhost",
            ),
            (
                "fooo",
                "LOCALDOMAIN/fooo",
                "LOCALDOMAIN/fooo",
                "",
                "LOCALDOMAIN",
            ),
            (
                "fooo/bar",
                "fooo/bar",
                "docker.io/fooo/bar",
                "index.docker.io/fooo/bar",
                "docker.io",
            ),
            (
                "library/ubuntu",
                "ubuntu",
                "docker.io/library/ubuntu",
                "library/ubuntu",
                "docker.io",
            ),
            (
                "nonlibrary/ubuntu",
                "nonlibrary/ubuntu",
                "docker.io/nonlibrary/ubuntu",
                "",
                "docker.io",
            ),
            (
                "other/library",
                "other/library",
                "docker.io/other/library",
                "",
                "docker.io",
            ),
            (
                "private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "",
                "127.0.0.1:8000",
            ),
            (
                "privatebase",
                "127.0.0.1:8000/privatebase",
                "127.0.0.1:8000/privatebase",
                "",
                "127.0.0.1:8000",
            ),
            (
                "private/moonbase",
                "example.com/private/moonbase",
                "example.com/private/moonbase",
                "",
                "example.com",
            ),
            (
                "privatebasee",
                "example.com:8000/privatebasee",
                "example.com:8000/privatebasee",
                "",
                "example.com:8000",
            ),
            (
                "library/ubuntu-12.04-base",
                "ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
                "index.docker.io/library/ubuntu-12.04-base",
                "docker.io",
            ),
            (
                "library/foo",
                "foo",
                "docker.io/library/foo",
                "docker.io/foo",
                "docker.io",
            ),
            (
                "library/foo/bar",
                "library/foo/bar",
                "docker.io/library/foo/bar",
                "",
                "docker.io",
            ),
            (
                "store/foo/bar",
                "store/foo/bar",
                "docker.io/store/foo/bar",
                "",
                "docker.io",
            ),
            ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
            ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
        ];
        for (path, familiar, full, ambiguous, domain) in cases {
            for input in [familiar, full, ambiguous]
                .into_iter()
                .filter(|s| !s.is_empty())
            {
                let r = Reference::parse_named(input).unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(r.familiar_name(), familiar, "{input}");
                assert_eq!(r.to_string(), full, "{input}");
                assert_eq!(r.name(), full, "{input}");
                assert_eq!(r.domain(), domain, "{input}");
                assert_eq!(r.path(), path, "{input}");
                assert!(r.is_name_only());
            }
        }
    }

    /// distribution's TestValidateReferenceName and TestValidateRemoteName.
    #[test]
    fn valid_and_invalid_names() {
        let valid = [
            "docker/docker",
            "library/debian",
            "debian",
            "localhost/library/debian",
            "localhost/debian",
            "LOCALDOMAIN/library/debian",
            "LOCALDOMAIN/debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "docker.io/debian",
            "index.docker.io/docker/docker",
            "index.docker.io/library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/debian",
            "192.168.0.1",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "192.168.0.2:25000/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "[fc00::1]:5000/docker",
            "[fc00::1]:5000/docker/docker",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "Docker/docker",
            "DOCKER/docker",
            "docker-rules/docker",
            "docker---rules/docker",
            "doc/docker",
            "d/docker",
            "jess/t",
            "dock__er/docker",
        ];
        for name in valid {
            Reference::parse_named(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let long_namespace = format!("{}/docker", "a".repeat(256));
        let invalid = [
            "https://github.com/docker/docker",
            "docker/Docker",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker/Docker",
            "docker.io/docker///docker",
            "[fc00::1]",
            "[fc00::1]:5000",
            "fc00::1:5000/debian",
            "[fe80::1%eth0]:5000/debian",
            "[2001:db8:3:4::192.0.2.33]:5000/debian",
            "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "docker-/docker",
            "-docker-/docker",
            "____/____",
            "_docker/_docker",
            "dock..er/docker",
            "dock_.er/docker",
            "dock-.er/docker",
            "docker/",
            "",
            "a b",
            &long_namespace,
        ];
        for name in invalid {
            assert!(
                Reference::parse_named(name).is_err(),
                "{name:?} should be invalid"
            );
        }
    }

    /// The messages of docker 28's CLI for the same inputs.
    #[test]
    fn error_messages_match_docker() {
        assert_eq!(
            err("Busybox"),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(
            err("localhost:5000/Foo"),
            "invalid reference format: repository name (Foo) must be lowercase"
        );
        assert_eq!(err("busybox:-x"), "invalid reference format");
        assert_eq!(err("a b"), "invalid reference format");
        assert_eq!(err(""), "invalid reference format");
        assert_eq!(err("docker///x"), "invalid reference format");
        assert_eq!(err("busybox@sha256:abc"), "invalid reference format");
        assert_eq!(
            err(&format!("busybox@sha256:{}", "A".repeat(64))),
            "invalid checksum digest format"
        );
        assert_eq!(
            err(&format!("busybox@sha256:{}", "a".repeat(40))),
            "invalid checksum digest length"
        );
        assert_eq!(
            err(&format!("busybox@md5:{}", "a".repeat(32))),
            "unsupported digest algorithm"
        );
        let hex = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
        assert_eq!(
            err(hex),
            format!("invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings")
        );
        assert_eq!(
            err(&"a".repeat(256)),
            "repository name must not be more than 255 characters"
        );
        let e = Reference::parse_named("Busybox").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
    }

    #[test]
    fn tag_and_digest() {
        let r = Reference::parse_normalized(&format!("busybox:latest@{D}")).unwrap();
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/busybox:latest@{D}")
        );
        assert_eq!(r.familiar_string(), format!("busybox:latest@{D}"));
        assert_eq!(
            r.without_tag_if_digested().to_string(),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(r.manifest_key(), D);

        let b = Reference::parse_named("busybox").unwrap();
        assert!(b.is_name_only());
        assert_eq!(
            b.with_tag("1.36").unwrap().to_string(),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(
            b.with_tag("-foo").unwrap_err().to_string(),
            "invalid tag format"
        );
        assert_eq!(
            b.with_digest("foo").unwrap_err().to_string(),
            "invalid digest format"
        );
        assert_eq!(
            b.with_digest(D).unwrap().to_string(),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(
            b.with_tag(&"t".repeat(128)).unwrap().tag().map(str::len),
            Some(128)
        );
        assert!(b.with_tag(&"t".repeat(129)).is_err());
        let parsed: Reference = "busybox:1".parse().unwrap();
        assert_eq!(parsed.tag(), Some("1"));
        assert_eq!(parsed.name_only().to_string(), "docker.io/library/busybox");
    }

    #[test]
    fn non_ascii_word_characters_are_rejected() {
        // Go's \w is ASCII; a Unicode letter in a tag must not pass.
        assert_eq!(err("busybox:tägg"), "invalid reference format");
    }
}
