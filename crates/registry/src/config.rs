//! `registry.toml`: where to listen, where to store, TLS, upload expiry, access control,
//! webhooks, pull-through mirrors, garbage collection and metrics.
//!
//! ```toml
//! addr = "127.0.0.1:5000"        # HOST:PORT
//! root = "./registry-data"       # relative paths are relative to the working directory
//! upload_expiry = "1h"           # idle upload sessions are removed after this
//! [tls]
//! cert = "/etc/berth-registry/cert.pem"
//! key = "/etc/berth-registry/key.pem"
//! [auth]
//! htpasswd = "/etc/berth-registry/htpasswd"
//! token = { issuer = "berth-registry", service = "registry.example", key = "token.key", expiry = "5m" }
//! [[auth.repository]]
//! match = "library/*"
//! public = true
//! push = ["alice"]
//! [[webhook]]
//! url = "http://127.0.0.1:9000/hook"
//! events = ["push", "delete"]
//! [[mirror]]
//! namespace = "docker.io"
//! upstream = "https://registry-1.docker.io"
//! manifest_ttl = "10m"
//! max_age = "30d"
//! [gc]
//! interval = "1h"
//! grace = "1h"
//! [metrics]
//! token = "secret"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::hooks::Action;

pub const DEFAULT_ADDR: &str = "127.0.0.1:5000";
pub const DEFAULT_ROOT: &str = "./registry-data";
pub const DEFAULT_UPLOAD_EXPIRY: Duration = Duration::from_secs(3600);
pub const DEFAULT_REALM: &str = "berth-registry";
pub const DEFAULT_ISSUER: &str = "berth-registry";
pub const DEFAULT_SERVICE: &str = "berth-registry";
pub const DEFAULT_TOKEN_EXPIRY: Duration = Duration::from_secs(300);
pub const DEFAULT_REFRESH_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_WEBHOOK_RETRIES: u32 = 5;
pub const DEFAULT_WEBHOOK_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_WEBHOOK_QUEUE: usize = 1024;
pub const DEFAULT_MANIFEST_TTL: Duration = Duration::from_secs(600);
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(3600);
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(3600);
/// The namespace docker asks a mirror for (it sends no `ns`), and the default one.
pub const DOCKER_HUB_NAMESPACE: &str = "docker.io";

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[auth]`: who may do what. Without it the registry is open to everyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// bcrypt entries (`htpasswd -B`); without it there are no users, only public pulls.
    pub htpasswd: Option<PathBuf>,
    /// The realm of Basic challenges.
    pub realm: String,
    /// The token service; without it clients use Basic authentication.
    pub token: Option<Token>,
    /// Per-repository rules; the first whose pattern matches decides, none matching denies.
    pub repositories: Vec<Rule>,
}

/// `[auth.token]`: the registry issues and checks its own bearer tokens (JWT, ES256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The `iss` claim.
    pub issuer: String,
    /// The `service` of challenges and the `aud` claim.
    pub service: String,
    /// PKCS#8 PEM P-256 key; made at first start when missing. `None`: `<root>/token.key`.
    pub key: Option<PathBuf>,
    /// A certificate (chain, PEM) for the key, sent as the `x5c` header.
    pub cert: Option<PathBuf>,
    /// How long an access token is valid.
    pub expiry: Duration,
    /// How long a refresh token is valid.
    pub refresh_expiry: Duration,
    /// The realm URL of challenges; `None`: `http(s)://<Host of the request>/token`.
    pub realm: Option<String>,
}

/// One `[[auth.repository]]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Glob on the repository name: `*` matches any run of characters (also `/`), `?` one.
    pub pattern: String,
    /// Anyone, also anonymous, may pull.
    pub public: bool,
    /// Users who may pull (`*`: every authenticated user).
    pub pull: Vec<String>,
    /// Users who may push (and pull).
    pub push: Vec<String>,
    /// Users who may delete; `None`: those who may push.
    pub delete: Option<Vec<String>>,
}

/// One `[[webhook]]`: an endpoint told about pushes, pulls and deletes of manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub events: Vec<Action>,
    /// Extra request headers, such as `Authorization`.
    pub headers: Vec<(String, String)>,
    /// Per delivery attempt.
    pub timeout: Duration,
    /// Attempts after the first failed one.
    pub retries: u32,
    /// The wait before the first retry; it doubles with each further one.
    pub backoff: Duration,
    /// Events waiting for delivery at most; more are dropped with a warning.
    pub queue: usize,
}

/// One `[[mirror]]`: a pull-through cache of an upstream registry's content.
#[derive(Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The registry this mirrors as clients name it (`docker.io`, `ghcr.io`,
    /// `registry.example:5000`); Docker Hub's other names are folded into `docker.io`.
    pub namespace: String,
    /// The upstream's base URL (`https://registry-1.docker.io`, `http://127.0.0.1:5001`).
    pub upstream: String,
    /// Credentials for the upstream (Basic or the token flow, as it asks).
    pub username: Option<String>,
    pub password: Option<String>,
    /// Manifests fetched by tag are revalidated upstream after this; by digest never.
    pub manifest_ttl: Duration,
    /// The namespace also takes pushes, stored here and never sent upstream.
    pub local: bool,
    /// Cached manifests not used for this long are evicted by garbage collection sweeps;
    /// `None` keeps them forever.
    pub max_age: Option<Duration>,
}

/// Secrets stay out of logs.
impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("namespace", &self.namespace)
            .field("upstream", &self.upstream)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("manifest_ttl", &self.manifest_ttl)
            .field("local", &self.local)
            .field("max_age", &self.max_age)
            .finish()
    }
}

impl Mirror {
    /// The first path component of the repositories holding this mirror's content: the
    /// namespace with `:` written as `__` (a host name never holds `__`), so that it is a
    /// valid repository name component.
    pub fn prefix(&self) -> String {
        storage_prefix(&self.namespace)
    }
}

/// The repository name component a namespace is stored under (`host:5000` -> `host__5000`).
pub fn storage_prefix(namespace: &str) -> String {
    namespace.replace(':', "__")
}

/// Docker Hub's other host names are the `docker.io` namespace.
pub fn canonical_namespace(namespace: &str) -> &str {
    match namespace {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB_NAMESPACE,
        other => other,
    }
}

/// `[gc]`: the background sweep of unreferenced blobs and untagged manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gc {
    /// Whether the server sweeps by itself (`berth-registry gc` works either way).
    pub enabled: bool,
    /// Time between two sweeps.
    pub interval: Duration,
    /// How long content must have been unreferenced before it is deleted.
    pub grace: Duration,
}

impl Default for Gc {
    fn default() -> Gc {
        Gc { enabled: true, interval: DEFAULT_GC_INTERVAL, grace: DEFAULT_GC_GRACE }
    }
}

/// `[metrics]`: `GET /metrics` in the Prometheus text format.
#[derive(Clone, PartialEq, Eq)]
pub struct Metrics {
    pub enabled: bool,
    /// When set, scrapes must send `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics { enabled: true, token: None }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("enabled", &self.enabled).field("token", &self.token.as_ref().map(|_| "<set>")).finish()
    }
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub addr: String,
    pub root: PathBuf,
    pub upload_expiry: Duration,
    pub tls: Option<Tls>,
    pub auth: Option<Auth>,
    pub webhooks: Vec<Webhook>,
    pub mirrors: Vec<Mirror>,
    pub gc: Gc,
    pub metrics: Metrics,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            addr: DEFAULT_ADDR.to_string(),
            root: PathBuf::from(DEFAULT_ROOT),
            upload_expiry: DEFAULT_UPLOAD_EXPIRY,
            tls: None,
            auth: None,
            webhooks: Vec::new(),
            mirrors: Vec::new(),
            gc: Gc::default(),
            metrics: Metrics::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    addr: Option<String>,
    root: Option<PathBuf>,
    upload_expiry: Option<String>,
    tls: Option<Tls>,
    auth: Option<AuthFile>,
    #[serde(default)]
    webhook: Vec<WebhookFile>,
    #[serde(default)]
    mirror: Vec<MirrorFile>,
    gc: Option<GcFile>,
    metrics: Option<MetricsFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorFile {
    namespace: String,
    upstream: String,
    username: Option<String>,
    password: Option<String>,
    manifest_ttl: Option<String>,
    #[serde(default)]
    local: bool,
    max_age: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GcFile {
    enabled: Option<bool>,
    interval: Option<String>,
    grace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    enabled: Option<bool>,
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    htpasswd: Option<PathBuf>,
    realm: Option<String>,
    token: Option<TokenFile>,
    #[serde(default)]
    repository: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    issuer: Option<String>,
    service: Option<String>,
    key: Option<PathBuf>,
    cert: Option<PathBuf>,
    expiry: Option<String>,
    refresh_expiry: Option<String>,
    realm: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(rename = "match")]
    pattern: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    pull: Vec<String>,
    #[serde(default)]
    push: Vec<String>,
    delete: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    url: String,
    events: Option<Vec<Action>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    timeout: Option<String>,
    retries: Option<u32>,
    backoff: Option<String>,
    queue: Option<usize>,
}

/// Parses a duration such as `90s`, `30m`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let d = humantime::parse_duration(text).map_err(|e| Error::Config(format!("invalid duration {text:?}: {e}")))?;
    if d.is_zero() {
        return Err(Error::Config(format!("invalid duration {text:?}: must be longer than zero")));
    }
    Ok(d)
}

/// Parses a duration that may be zero (`0s`), such as a grace period.
pub fn parse_duration_or_zero(text: &str) -> Result<Duration> {
    humantime::parse_duration(text).map_err(|e| Error::Config(format!("invalid duration {text:?}: {e}")))
}

fn duration_or(text: Option<String>, default: Duration) -> Result<Duration> {
    text.map_or(Ok(default), |t| parse_duration(&t))
}

/// Whether `namespace` is a registry host name with an optional port.
fn valid_namespace(namespace: &str) -> bool {
    let (host, port) = match namespace.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (namespace, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    host_ok && port_ok && crate::names::RepoName::parse(&storage_prefix(namespace)).is_ok()
}

impl MirrorFile {
    fn into_mirror(self) -> Result<Mirror> {
        let namespace = canonical_namespace(&self.namespace).to_string();
        if !valid_namespace(&namespace) {
            return Err(Error::Config(format!(
                "mirror namespace {:?}: a namespace is a lowercase registry host name, optionally with :PORT",
                self.namespace
            )));
        }
        let key = format!("mirror {namespace}: upstream");
        match url::Url::parse(&self.upstream) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
                if !matches!(u.path(), "" | "/") || u.query().is_some() || !u.username().is_empty() || u.password().is_some() {
                    return Err(Error::Config(format!(
                        "{key} {:?}: a registry URL has no path, query or credentials (use username and password)",
                        self.upstream
                    )));
                }
            }
            Ok(_) => return Err(Error::Config(format!("{key} {:?}: not an http or https URL", self.upstream))),
            Err(e) => return Err(Error::Config(format!("{key} {:?}: {e}", self.upstream))),
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(Error::Config(format!("mirror {namespace}: username and password go together")));
        }
        let named = |key: &str, e: Error| match e {
            Error::Config(m) => Error::Config(format!("mirror {namespace}: {key}: {m}")),
            other => other,
        };
        let manifest_ttl = match self.manifest_ttl {
            Some(t) => parse_duration_or_zero(&t).map_err(|e| named("manifest_ttl", e))?,
            None => DEFAULT_MANIFEST_TTL,
        };
        let max_age = self.max_age.map(|t| parse_duration(&t)).transpose().map_err(|e| named("max_age", e))?;
        Ok(Mirror {
            namespace,
            upstream: self.upstream.trim_end_matches('/').to_string(),
            username: self.username,
            password: self.password,
            manifest_ttl,
            local: self.local,
            max_age,
        })
    }
}

/// Characters a rule pattern may hold: those of repository names plus the wildcards.
fn check_pattern(pattern: &str) -> Result<()> {
    let ok = !pattern.is_empty()
        && pattern.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/*?".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "auth.repository match {pattern:?}: a pattern holds lowercase letters, digits, '.', '_', '-', '/' and the wildcards '*' and '?'"
        )))
    }
}

fn check_users(pattern: &str, key: &str, users: &[String]) -> Result<()> {
    match users.iter().find(|u| u.is_empty() || u.contains(':')) {
        Some(bad) => Err(Error::Config(format!("auth.repository {pattern:?}: {key} lists an invalid user name {bad:?}"))),
        None => Ok(()),
    }
}

impl AuthFile {
    fn into_auth(self) -> Result<Auth> {
        let token = match self.token {
            None => None,
            Some(t) => {
                let realm = t.realm.filter(|r| !r.is_empty());
                if let Some(r) = &realm {
                    check_url("auth.token.realm", r)?;
                }
                Some(Token {
                    issuer: non_empty("auth.token.issuer", t.issuer, DEFAULT_ISSUER)?,
                    service: non_empty("auth.token.service", t.service, DEFAULT_SERVICE)?,
                    key: t.key,
                    cert: t.cert,
                    expiry: duration_or(t.expiry, DEFAULT_TOKEN_EXPIRY)?,
                    refresh_expiry: duration_or(t.refresh_expiry, DEFAULT_REFRESH_EXPIRY)?,
                    realm,
                })
            }
        };
        let mut repositories = Vec::new();
        for r in self.repository {
            check_pattern(&r.pattern)?;
            check_users(&r.pattern, "pull", &r.pull)?;
            check_users(&r.pattern, "push", &r.push)?;
            check_users(&r.pattern, "delete", r.delete.as_deref().unwrap_or_default())?;
            repositories.push(Rule { pattern: r.pattern, public: r.public, pull: r.pull, push: r.push, delete: r.delete });
        }
        let realm = non_empty("auth.realm", self.realm, DEFAULT_REALM)?;
        if realm.contains(['"', '\\']) {
            return Err(Error::Config(format!("auth.realm {realm:?}: must not contain quotes or backslashes")));
        }
        Ok(Auth { htpasswd: self.htpasswd, realm, token, repositories })
    }
}

/// A configured string that must not be empty, or its default.
fn non_empty(key: &str, value: Option<String>, default: &str) -> Result<String> {
    match value {
        None => Ok(default.to_string()),
        Some(v) if v.is_empty() || v.contains('"') => Err(Error::Config(format!("{key} {v:?}: must be non-empty and without quotes"))),
        Some(v) => Ok(v),
    }
}

fn check_url(key: &str, url: &str) -> Result<()> {
    match url::Url::parse(url) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() && !url.contains('"') => Ok(()),
        Ok(_) => Err(Error::Config(format!("{key} {url:?}: not an http or https URL"))),
        Err(e) => Err(Error::Config(format!("{key} {url:?}: {e}"))),
    }
}

impl WebhookFile {
    fn into_webhook(self) -> Result<Webhook> {
        check_url("webhook.url", &self.url)?;
        let mut headers = Vec::new();
        for (name, value) in self.headers {
            let valid = http::HeaderName::from_bytes(name.as_bytes()).is_ok() && http::HeaderValue::from_str(&value).is_ok();
            if !valid {
                return Err(Error::Config(format!("webhook {}: invalid header {name:?}", self.url)));
            }
            headers.push((name, value));
        }
        let events = self.events.unwrap_or_else(|| vec![Action::Push, Action::Pull, Action::Delete]);
        if events.is_empty() {
            return Err(Error::Config(format!("webhook {}: events is empty", self.url)));
        }
        let queue = self.queue.unwrap_or(DEFAULT_WEBHOOK_QUEUE);
        if queue == 0 {
            return Err(Error::Config(format!("webhook {}: queue must be at least 1", self.url)));
        }
        Ok(Webhook {
            events,
            headers,
            timeout: duration_or(self.timeout, DEFAULT_WEBHOOK_TIMEOUT)?,
            retries: self.retries.unwrap_or(DEFAULT_WEBHOOK_RETRIES),
            backoff: duration_or(self.backoff, DEFAULT_WEBHOOK_BACKOFF)?,
            queue,
            url: self.url,
        })
    }
}

impl Config {
    /// Parses the text of a `registry.toml`; absent keys keep their defaults.
    pub fn from_toml(text: &str) -> Result<Config> {
        let file: File = toml::from_str(text).map_err(|e| Error::Config(e.to_string().trim_end().to_string()))?;
        let mut config = Config::default();
        if let Some(addr) = file.addr {
            config.addr = addr;
        }
        if let Some(root) = file.root {
            config.root = root;
        }
        if let Some(expiry) = file.upload_expiry {
            config.upload_expiry = parse_duration(&expiry)?;
        }
        config.tls = file.tls;
        config.auth = file.auth.map(AuthFile::into_auth).transpose()?;
        config.webhooks = file.webhook.into_iter().map(WebhookFile::into_webhook).collect::<Result<_>>()?;
        config.mirrors = file.mirror.into_iter().map(MirrorFile::into_mirror).collect::<Result<_>>()?;
        for (i, m) in config.mirrors.iter().enumerate() {
            if config.mirrors[..i].iter().any(|other| other.namespace == m.namespace) {
                return Err(Error::Config(format!("mirror namespace {} is configured twice", m.namespace)));
            }
        }
        if let Some(gc) = file.gc {
            config.gc = Gc {
                enabled: gc.enabled.unwrap_or(true),
                interval: duration_or(gc.interval, DEFAULT_GC_INTERVAL)?,
                grace: gc.grace.map_or(Ok(DEFAULT_GC_GRACE), |g| parse_duration_or_zero(&g))?,
            };
        }
        if let Some(m) = file.metrics {
            if m.token.as_deref().is_some_and(|t| t.is_empty() || http::HeaderValue::from_str(&format!("Bearer {t}")).is_err()) {
                return Err(Error::Config("metrics.token: must be non-empty printable text".into()));
            }
            config.metrics = Metrics { enabled: m.enabled.unwrap_or(true), token: m.token };
        }
        Ok(config)
    }

    /// Reads a `registry.toml`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read config", path))?;
        Config::from_toml(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults() {
        let c = Config::from_toml("addr = \"0.0.0.0:5001\"\nupload_expiry = \"90s\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n").unwrap();
        assert_eq!(c.addr, "0.0.0.0:5001");
        assert_eq!(c.root, PathBuf::from(DEFAULT_ROOT));
        assert_eq!(c.upload_expiry, Duration::from_secs(90));
        assert_eq!(c.tls.unwrap().key, PathBuf::from("k.pem"));
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        let e = Config::from_toml("adr = \"x\"").unwrap_err().to_string();
        assert!(e.contains("adr"), "{e}");
        assert!(Config::from_toml("upload_expiry = \"soon\"").is_err());
        assert!(Config::from_toml("upload_expiry = \"0s\"").is_err());
        assert!(Config::from_toml("[tls]\ncert = \"c\"").is_err());
        let e = Config::from_toml("[[auth.repository]]\nmatch = \"Library/*\"").unwrap_err().to_string();
        assert!(e.contains("Library/*"), "{e}");
        let e = Config::from_toml("[[auth.repository]]\nmatch = \"*\"\npush = [\"a:b\"]").unwrap_err().to_string();
        assert!(e.contains("a:b"), "{e}");
        let e = Config::from_toml("[[webhook]]\nurl = \"ftp://x/\"").unwrap_err().to_string();
        assert!(e.contains("ftp://x/"), "{e}");
        assert!(Config::from_toml("[[webhook]]\nurl = \"http://x/\"\nevents = [\"pus\"]").is_err());
        assert!(Config::from_toml("[[webhook]]\nurl = \"http://x/\"\nheaders = { \"a b\" = \"c\" }").is_err());
        assert!(Config::from_toml("[auth]\ntoken = { expiry = \"never\" }").is_err());
        assert!(Config::from_toml("[auth]\ntoken = { realm = \"token\" }").is_err());
    }

    #[test]
    fn mirrors_gc_and_metrics() {
        let c = Config::from_toml(
            r#"
[[mirror]]
namespace = "index.docker.io"
upstream = "https://registry-1.docker.io/"
username = "u"
password = "p"
[[mirror]]
namespace = "registry.example:5000"
upstream = "http://127.0.0.1:5001"
manifest_ttl = "0s"
local = true
max_age = "30d"
[gc]
interval = "10m"
grace = "0s"
[metrics]
token = "t"
"#,
        )
        .unwrap();
        assert_eq!(c.mirrors[0].namespace, "docker.io");
        assert_eq!(c.mirrors[0].upstream, "https://registry-1.docker.io");
        assert_eq!(c.mirrors[0].manifest_ttl, DEFAULT_MANIFEST_TTL);
        assert!(!format!("{:?}", c.mirrors[0]).contains("\"p\""), "the password is not logged");
        assert_eq!(c.mirrors[1].prefix(), "registry.example__5000");
        assert_eq!(c.mirrors[1].manifest_ttl, Duration::ZERO);
        assert!(c.mirrors[1].local);
        assert_eq!(c.mirrors[0].max_age, None, "kept forever unless asked");
        assert_eq!(c.mirrors[1].max_age, Some(Duration::from_secs(30 * 24 * 3600)));
        assert_eq!(c.gc, Gc { enabled: true, interval: Duration::from_secs(600), grace: Duration::ZERO });
        assert_eq!(c.metrics.token.as_deref(), Some("t"));
        assert_eq!(Config::from_toml("").unwrap().gc, Gc::default());

        for (bad, named) in [
            ("[[mirror]]\nnamespace = \"Docker.io\"\nupstream = \"https://x\"", "Docker.io"),
            ("[[mirror]]\nnamespace = \"a/b\"\nupstream = \"https://x\"", "a/b"),
            ("[[mirror]]\nnamespace = \"x.io\"\nupstream = \"ftp://x\"", "ftp://x"),
            ("[[mirror]]\nnamespace = \"x.io\"\nupstream = \"https://x/v2/\"", "https://x/v2/"),
            ("[[mirror]]\nnamespace = \"x.io\"\nupstream = \"https://u:p@x\"", "x.io"),
            ("[[mirror]]\nnamespace = \"x.io\"\nupstream = \"https://x\"\nusername = \"u\"", "username and password"),
            ("[[mirror]]\nnamespace = \"x.io\"\nupstream = \"https://x\"\nmanifest_ttl = \"soon\"", "mirror x.io: manifest_ttl: invalid duration \"soon\""),
            ("[[mirror]]\nnamespace = \"x.io\"\nupstream = \"https://x\"\nmax_age = \"a month\"", "mirror x.io: max_age: invalid duration \"a month\""),
            ("[[mirror]]\nnamespace = \"x.io\"\nupstream = \"https://x\"\nmax_age = \"0s\"", "mirror x.io: max_age: invalid duration \"0s\": must be longer than zero"),
            ("[[mirror]]\nnamespace = \"x.io\"\nupstream = \"https://x\"\nmax_age = 30", "max_age"),
            ("[[mirror]]\nnamespace = \"x.io\"\nupstream = \"https://x\"\n[[mirror]]\nnamespace = \"x.io\"\nupstream = \"https://y\"", "twice"),
            ("[gc]\ninterval = \"0s\"", "0s"),
            ("[gc]\ngrace = \"later\"", "later"),
            ("[metrics]\ntoken = \"\"", "metrics.token"),
            ("[metrics]\nenable = true", "enable"),
        ] {
            let e = Config::from_toml(bad).unwrap_err().to_string();
            assert!(e.contains(named), "{bad}: {e}");
        }
    }

    #[test]
    fn auth_and_webhooks() {
        let c = Config::from_toml(
            r#"
[auth]
htpasswd = "/etc/htpasswd"
token = { service = "reg", key = "k.pem", expiry = "2m" }
[[auth.repository]]
match = "library/*"
public = true
push = ["alice"]
[[auth.repository]]
match = "*"
pull = ["*"]
delete = []
[[webhook]]
url = "http://127.0.0.1:9/hook"
events = ["push"]
headers = { Authorization = "Bearer s" }
retries = 2
backoff = "100ms"
"#,
        )
        .unwrap();
        let auth = c.auth.unwrap();
        assert_eq!(auth.htpasswd, Some(PathBuf::from("/etc/htpasswd")));
        assert_eq!(auth.realm, DEFAULT_REALM);
        let token = auth.token.unwrap();
        assert_eq!((token.issuer.as_str(), token.service.as_str()), (DEFAULT_ISSUER, "reg"));
        assert_eq!(token.expiry, Duration::from_secs(120));
        assert_eq!(auth.repositories.len(), 2);
        assert!(auth.repositories[0].public);
        assert_eq!(auth.repositories[0].delete, None);
        assert_eq!(auth.repositories[1].delete, Some(vec![]));
        let hook = &c.webhooks[0];
        assert_eq!(hook.events, vec![Action::Push]);
        assert_eq!(hook.headers, vec![("Authorization".to_string(), "Bearer s".to_string())]);
        assert_eq!((hook.retries, hook.backoff, hook.timeout), (2, Duration::from_millis(100), DEFAULT_WEBHOOK_TIMEOUT));
    }
}
