//! The registry client: resolves references to manifests (through mirrors, then the
//! origin), streams blobs with resume, pushes blobs and manifests, lists tags, searches and
//! logs in. Authentication, retries and scheme fallback happen here, once for every call.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE,
    LOCATION, RANGE, WWW_AUTHENTICATE,
};
use http::{Method, StatusCode};
use tracing::{debug, warn};
use url::Url;

use crate::auth::{self, repository_scope, AuthConfig, Challenge, TokenRequest};
use crate::blob::{BlobState, BlobStream, Opened};
use crate::config::{Endpoint, Endpoints, RegistryConfig};
use crate::manifest::{self, media_type, Index, Manifest, Parsed, Platform};
use crate::search::SearchResults;
use crate::{digest, Error, Reference};

/// Manifests larger than this are refused (containerd's limit too).
const MAX_MANIFEST_SIZE: usize = 4 << 20;
/// Without a known size, `fetch_blob_bytes` reads at most this much.
const MAX_SMALL_BLOB_SIZE: u64 = 64 << 20;
/// Blobs up to this size are pushed in one PUT; larger ones are streamed with PATCH.
pub const MONOLITHIC_PUSH_MAX: u64 = 4 << 20;
/// Error bodies are read up to this size for their message.
const MAX_ERROR_BODY: usize = 64 << 10;
/// Past this many cached tokens, expired ones are dropped (a long-running daemon sees many scopes).
const MAX_CACHED_TOKENS: usize = 256;
const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

/// A registry client. Cheap to clone: clones share one connection pool and token cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Endpoints,
    max_retries: u32,
    http: reqwest::Client,
    /// For insecure registries: certificates are not checked.
    http_insecure: reqwest::Client,
    pings: Mutex<HashMap<Endpoint, Arc<Ping>>>,
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
}

/// What `GET /v2/` told about an endpoint: the base URL that answered and its challenges.
struct Ping {
    base: Url,
    challenges: Vec<Challenge>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    host: String,
    scopes: String,
    credentials: String,
}

struct CachedToken {
    token: String,
    expires: Instant,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("max_retries", &self.inner.max_retries)
            .finish_non_exhaustive()
    }
}

/// The raw bytes of a manifest or index and what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    /// The digest of `bytes`.
    pub digest: String,
    pub media_type: String,
    pub bytes: Bytes,
}

/// What a manifest HEAD answer says about a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// The Docker-Content-Digest header (the reference's digest when it names one).
    pub digest: String,
    /// The Content-Type header without parameters. Some registries send a generic type
    /// (`application/json`) here; the body's `mediaType` is what a GET would go by.
    pub media_type: String,
    /// The Content-Length header: the size of the manifest in bytes.
    pub size: u64,
}

/// A reference resolved to one image manifest.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub reference: Reference,
    /// Where the manifests came from; blobs are fetched from the same place.
    pub endpoint: Endpoint,
    /// The digest of what the reference names (the index for a multi-platform image): the
    /// digest docker records in RepoDigests.
    pub digest: String,
    /// The index the image was picked from, when the reference named one.
    pub index: Option<RawManifest>,
    /// The image manifest, its digest, media type and bytes.
    pub manifest: Manifest,
    pub manifest_digest: String,
    pub media_type: String,
    pub bytes: Bytes,
    /// The platform of the index entry that was picked.
    pub platform: Option<Platform>,
}

/// A request that can be sent again (no streamed body).
struct Request {
    method: Method,
    /// A path (`/v2/...`) or an absolute URL, resolved against the endpoint's base URL.
    target: String,
    headers: HeaderMap,
    body: Option<Bytes>,
    /// Whether retrying after a failure is safe.
    idempotent: bool,
}

impl Request {
    fn new(method: Method, target: impl Into<String>) -> Request {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE
        );
        Request {
            method,
            target: target.into(),
            headers: HeaderMap::new(),
            body: None,
            idempotent,
        }
    }

    fn header(mut self, name: HeaderName, value: &str) -> Request {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    fn body(mut self, body: Bytes) -> Request {
        self.body = Some(body);
        self
    }

    fn once(mut self) -> Request {
        self.idempotent = false;
        self
    }
}

/// `GET /v2/x/manifests/latest` for messages: method and path, no host or query.
fn describe(method: &Method, url: &Url) -> String {
    format!("{method} {}", url.path())
}

/// A reqwest error with its causes ("error sending request: connection refused").
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The message of an error body: the registry's `{"errors":[{code,message}]}` as docker
/// prints it ("manifest unknown: manifest unknown"), a token server's `details`, or the text.
pub(crate) fn error_detail(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ErrorEntry>,
        #[serde(default)]
        details: String,
        #[serde(default)]
        error: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|x| {
                let code = x.code.replace('_', " ").to_lowercase();
                match (code.is_empty(), x.message.is_empty()) {
                    (false, false) => format!("{code}: {}", x.message),
                    (false, true) => code,
                    _ => x.message.clone(),
                }
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
        for text in [e.details, e.error, e.message] {
            if !text.is_empty() {
                return text;
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if looks_like_html(text.as_bytes()) {
        return format!("{status} (an HTML page instead of a registry error)");
    }
    if text.is_empty() {
        return status.to_string();
    }
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push_str("...");
    }
    short
}

fn looks_like_html(body: &[u8]) -> bool {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let head = String::from_utf8_lossy(&body[start..body.len().min(start + 64)]).to_lowercase();
    head.starts_with("<!doctype html")
        || head.starts_with("<html")
        || head.starts_with("<head")
        || head.starts_with("<body")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The Content-Length header (not the body's size hint, which HEAD answers lack).
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, &CONTENT_LENGTH).and_then(|v| v.trim().parse().ok())
}

/// Exponential backoff: 200ms, 400ms, ... capped at 5s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.saturating_sub(1).min(5)))
        .min(Duration::from_secs(5))
}

/// The `rel="next"` target of a Link header.
fn link_next(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(',').find_map(|link| {
                let (target, params) = link.trim().split_once(';')?;
                let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
                params
                    .split(';')
                    .any(|p| {
                        matches!(
                            p.trim().replace(' ', "").as_str(),
                            "rel=\"next\"" | "rel=next"
                        )
                    })
                    .then(|| target.to_string())
            })
        })
}

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Client {
    /// A client for `config`; fails on a malformed mirror or insecure-registry entry.
    pub fn new(config: RegistryConfig) -> Result<Client, Error> {
        let endpoints = Endpoints::new(&config)?;
        let builder = || {
            reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .connect_timeout(Duration::from_secs(30))
                .read_timeout(Duration::from_secs(60))
                .tcp_nodelay(true)
        };
        let http = builder()
            .build()
            .map_err(|source| Error::HttpClient { source })?;
        let http_insecure = builder()
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(|source| Error::HttpClient { source })?;
        Ok(Client {
            inner: Arc::new(Inner {
                endpoints,
                max_retries: config.max_retries,
                http,
                http_insecure,
                pings: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Where pulls of `domain` go, in order: its mirrors, then the registry itself.
    pub async fn pull_endpoints(&self, domain: &str) -> Vec<Endpoint> {
        self.inner.endpoints.pull(domain).await
    }

    /// The registry itself (pushes go only there).
    pub async fn origin(&self, domain: &str) -> Endpoint {
        self.inner.endpoints.origin(domain).await
    }

    /// Mirrors answer at once or are skipped; the origin gets the configured retries.
    fn retries(&self, ep: &Endpoint) -> u32 {
        if ep.is_mirror() {
            0
        } else {
            self.inner.max_retries
        }
    }

    pub(crate) fn max_retries(&self) -> u32 {
        self.inner.max_retries
    }

    fn http_for(&self, skip_verify: bool) -> &reqwest::Client {
        if skip_verify {
            &self.inner.http_insecure
        } else {
            &self.inner.http
        }
    }

    /// `GET /v2/` on the endpoint (cached): finds the scheme that answers and the challenges.
    async fn ping(&self, ep: &Endpoint) -> Result<Arc<Ping>, Error> {
        if let Some(p) = self.lock_pings().get(ep) {
            return Ok(p.clone());
        }
        let bases = ep.base_urls();
        let mut last = None;
        for (i, base) in bases.iter().enumerate() {
            let last_try = i + 1 == bases.len();
            let unreachable = |reason: String| Error::Connect {
                registry: ep.label(),
                url: format!("{base}/v2/"),
                reason,
            };
            let base = Url::parse(base).map_err(|e| unreachable(e.to_string()))?;
            let url = base.join("/v2/").map_err(|e| unreachable(e.to_string()))?;
            let retries = if last_try { self.retries(ep) } else { 0 };
            let mut attempt = 0;
            let resp = loop {
                match self
                    .http_for(ep.skips_tls_verify())
                    .get(url.clone())
                    .send()
                    .await
                {
                    Ok(r)
                        if crate::error::is_retryable_status(r.status().as_u16())
                            && attempt < retries => {}
                    Ok(r) => break Ok(r),
                    Err(e) if attempt < retries => {
                        debug!(url = %url, error = %error_chain(&e), "ping failed, retrying")
                    }
                    Err(e) => break Err(unreachable(error_chain(&e))),
                }
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
            };
            match resp {
                Ok(r) if r.status().is_server_error() => {
                    let status = r.status();
                    let body = r.bytes().await.unwrap_or_default();
                    last = Some(Error::Status {
                        registry: ep.label(),
                        request: describe(&Method::GET, &url),
                        status: status.as_u16(),
                        detail: error_detail(status, &body),
                    });
                }
                Ok(r) => {
                    let challenges = auth::parse_challenges(
                        r.headers()
                            .get_all(WWW_AUTHENTICATE)
                            .iter()
                            .filter_map(|v| v.to_str().ok()),
                    );
                    let ping = Arc::new(Ping { base, challenges });
                    self.lock_pings().insert(ep.clone(), ping.clone());
                    return Ok(ping);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Connect {
            registry: ep.label(),
            url: ep.to_string(),
            reason: "no URL to try".into(),
        }))
    }

    fn lock_pings(&self) -> std::sync::MutexGuard<'_, HashMap<Endpoint, Arc<Ping>>> {
        // A panic while holding the lock cannot leave the map inconsistent: take it anyway.
        self.inner.pings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, CachedToken>> {
        self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Authorization header for `scopes` at `ep`: a bearer token (cached until it
    /// expires unless `fresh`), basic credentials for a Basic challenge, or none.
    async fn authorization(
        &self,
        ep: &Endpoint,
        challenges: &[Challenge],
        scopes: &[String],
        auth: Option<&AuthConfig>,
        fresh: bool,
    ) -> Result<Option<HeaderValue>, Error> {
        if let Some(a) = auth.filter(|a| !a.registry_token.is_empty()) {
            return Ok(HeaderValue::from_str(&format!("Bearer {}", a.registry_token)).ok());
        }
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let Some(realm) = bearer.param("realm") else {
                return Err(Error::BadResponse {
                    registry: ep.label(),
                    request: "GET /v2/".into(),
                    reason: "a bearer challenge without a realm".into(),
                });
            };
            let key = TokenKey {
                host: ep.host().to_string(),
                scopes: scopes.join(" "),
                credentials: auth.map(AuthConfig::cache_key).unwrap_or_default(),
            };
            if !fresh {
                if let Some(t) = self
                    .lock_tokens()
                    .get(&key)
                    .filter(|t| t.expires > Instant::now())
                {
                    return Ok(HeaderValue::from_str(&format!("Bearer {}", t.token)).ok());
                }
            }
            let realm_host = Url::parse(realm).ok().and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
            });
            let skip_verify = match realm_host {
                Some(h) => self.inner.endpoints.is_insecure(&h).await,
                None => false,
            };
            let request = TokenRequest {
                realm,
                service: bearer.param("service"),
                scopes,
                auth,
                offline: false,
            };
            let token = auth::fetch_token(self.http_for(skip_verify), &request).await?;
            let header = HeaderValue::from_str(&format!("Bearer {}", token.token)).ok();
            let lifetime = token.expires_in.mul_f64(0.9);
            let mut tokens = self.lock_tokens();
            if tokens.len() >= MAX_CACHED_TOKENS {
                let now = Instant::now();
                tokens.retain(|_, t| t.expires > now);
            }
            tokens.insert(
                key,
                CachedToken {
                    token: token.token,
                    expires: Instant::now() + lifetime,
                },
            );
            return Ok(header);
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            if let Some((user, pass)) = auth.and_then(AuthConfig::username_password) {
                use base64::Engine;
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                return Ok(HeaderValue::from_str(&format!("Basic {encoded}")).ok());
            }
        }
        Ok(None)
    }

    /// Sends `req` to `ep` with authentication and retries. On a 401 the challenge of the
    /// answer is followed once (a new token, or a scope the ping did not announce).
    async fn execute(
        &self,
        ep: &Endpoint,
        req: &Request,
        scopes: &[String],
        auth: Option<&AuthConfig>,
    ) -> Result<reqwest::Response, Error> {
        let ping = self.ping(ep).await?;
        let url = ping
            .base
            .join(&req.target)
            .map_err(|e| Error::BadResponse {
                registry: ep.label(),
                request: req.target.clone(),
                reason: format!("bad URL: {e}"),
            })?;
        let mut authorization = self
            .authorization(ep, &ping.challenges, scopes, auth, false)
            .await?;
        let retries = if req.idempotent { self.retries(ep) } else { 0 };
        let mut attempt = 0;
        let mut reauthorized = false;
        loop {
            let mut builder = self
                .http_for(ep.skips_tls_verify())
                .request(req.method.clone(), url.clone())
                .headers(req.headers.clone());
            if let Some(a) = &authorization {
                builder = builder.header(AUTHORIZATION, a.clone());
            }
            if let Some(body) = &req.body {
                builder = builder.body(body.clone());
            } else if matches!(req.method, Method::POST | Method::PUT | Method::PATCH) {
                builder = builder.header(CONTENT_LENGTH, "0");
            }
            match builder.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !reauthorized => {
                    reauthorized = true;
                    let challenges = auth::parse_challenges(
                        resp.headers()
                            .get_all(WWW_AUTHENTICATE)
                            .iter()
                            .filter_map(|v| v.to_str().ok()),
                    );
                    let next = self
                        .authorization(ep, &challenges, scopes, auth, true)
                        .await?;
                    if next.is_none() || next == authorization {
                        return Ok(resp);
                    }
                    debug!(url = %url, "following the registry's authentication challenge");
                    authorization = next;
                    continue;
                }
                Ok(resp)
                    if crate::error::is_retryable_status(resp.status().as_u16())
                        && attempt < retries =>
                {
                    debug!(url = %url, status = %resp.status(), "retrying");
                }
                Ok(resp) => return Ok(resp),
                Err(e) if attempt < retries => {
                    debug!(url = %url, error = %error_chain(&e), "retrying")
                }
                Err(e) => {
                    return Err(Error::Connect {
                        registry: ep.label(),
                        url: url.to_string(),
                        reason: error_chain(&e),
                    });
                }
            }
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    /// The Authorization header for a request that cannot be replayed (a streamed PATCH).
    async fn prepared_authorization(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        auth: Option<&AuthConfig>,
    ) -> Result<(Arc<Ping>, Option<HeaderValue>), Error> {
        let ping = self.ping(ep).await?;
        let authorization = self
            .authorization(ep, &ping.challenges, scopes, auth, false)
            .await?;
        Ok((ping, authorization))
    }

    /// Reads a body of at most `limit` bytes.
    async fn read_body(
        ep: &Endpoint,
        request: &str,
        mut resp: reqwest::Response,
        limit: usize,
    ) -> Result<Bytes, Error> {
        let mut buf = BytesMut::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > limit {
                        return Err(Error::BadResponse {
                            registry: ep.label(),
                            request: request.to_string(),
                            reason: format!("the body is larger than {limit} bytes"),
                        });
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(buf.freeze()),
                Err(e) => {
                    return Err(Error::Transfer {
                        registry: ep.label(),
                        what: request.to_string(),
                        reason: error_chain(&e),
                    });
                }
            }
        }
    }

    /// The error for a non-success answer, with the registry's message.
    async fn status_error(
        ep: &Endpoint,
        request: &str,
        resp: reqwest::Response,
    ) -> (StatusCode, String) {
        let status = resp.status();
        let body = Client::read_body(ep, request, resp, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        (status, error_detail(status, &body))
    }

    /// Sends a GET or HEAD for the manifest `r` names to one endpoint, with the Accept
    /// header of every manifest type; a non-success answer becomes the error docker reports.
    async fn request_manifest_at(
        &self,
        ep: &Endpoint,
        method: Method,
        r: &Reference,
        auth: Option<&AuthConfig>,
    ) -> Result<(String, reqwest::Response), Error> {
        let key = r.manifest_key();
        let scopes = [repository_scope(r.path(), false)];
        let req = Request::new(method.clone(), format!("/v2/{}/manifests/{key}", r.path()))
            .header(ACCEPT, media_type::MANIFEST_ACCEPT);
        let resp = self.execute(ep, &req, &scopes, auth).await?;
        let request = describe(&method, resp.url());
        let status = resp.status();
        if status.is_success() {
            return Ok((request, resp));
        }
        let (status, detail) = Client::status_error(ep, &request, resp).await;
        Err(match status.as_u16() {
            404 => Error::ManifestNotFound {
                reference: r.familiar_string(),
                detail,
            },
            401 | 403 => Error::PullDenied {
                name: r.familiar_name(),
                detail,
            },
            code => Error::Status {
                registry: ep.label(),
                request,
                status: code,
                detail,
            },
        })
    }

    /// Fetches a manifest by tag or digest from one endpoint, checks its digest, and parses it.
    async fn fetch_manifest_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        auth: Option<&AuthConfig>,
    ) -> Result<(RawManifest, Parsed), Error> {
        let (request, resp) = self.request_manifest_at(ep, Method::GET, r, auth).await?;
        let content_type = header_str(resp.headers(), &CONTENT_TYPE).map(str::to_string);
        let announced = header_str(resp.headers(), &DOCKER_CONTENT_DIGEST).map(str::to_string);
        let bytes = Client::read_body(ep, &request, resp, MAX_MANIFEST_SIZE).await?;
        let bad = |reason: String| Error::BadResponse {
            registry: ep.label(),
            request: request.clone(),
            reason,
        };
        if content_type.as_deref().map(manifest::base_media_type) == Some("text/html")
            || looks_like_html(&bytes)
        {
            return Err(bad(format!(
                "an HTML page ({}) instead of a manifest",
                content_type.as_deref().unwrap_or("no content type")
            )));
        }
        let (expected, by_digest) = match r.digest() {
            Some(d) => (Some(d.to_string()), true),
            None => (announced, false),
        };
        if let Some(expected) = &expected {
            match digest::compute_like(expected, &bytes) {
                Some(actual) if &actual == expected => {}
                Some(actual) => {
                    return Err(Error::DigestMismatch {
                        reference: r.familiar_string(),
                        expected: expected.clone(),
                        actual,
                    });
                }
                None => {
                    return Err(bad(format!(
                        "an invalid Docker-Content-Digest {expected:?}"
                    )))
                }
            }
        }
        let digest = match (by_digest, expected) {
            (true, Some(d)) => d,
            _ => digest::sha256(&bytes),
        };
        let (media_type, parsed) =
            manifest::parse(&r.familiar_string(), content_type.as_deref(), &bytes)?;
        Ok((
            RawManifest {
                digest,
                media_type,
                bytes,
            },
            parsed,
        ))
    }

    /// Fetches the manifest `r` names from the pull endpoints (mirrors, then origin); when
    /// it is an index, picks the entry for `platform` and fetches that too. Everything
    /// fetched by digest is verified against it.
    pub async fn resolve(
        &self,
        r: &Reference,
        auth: Option<&AuthConfig>,
        platform: &Platform,
    ) -> Result<Resolved, Error> {
        self.on_pull_endpoints(r.domain(), |ep| async move { self.resolve_at(&ep, r, auth, platform).await }).await
    }

    /// Runs `op` on each pull endpoint of `domain` in order (mirrors, then the origin) and
    /// returns the first success; a failing mirror is logged and skipped, the origin's
    /// error is the result.
    async fn on_pull_endpoints<T, F, Fut>(&self, domain: &str, op: F) -> Result<T, Error>
    where
        F: Fn(Endpoint) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut endpoints = self.pull_endpoints(domain).await;
        let Some(origin) = endpoints.pop() else {
            return Err(Error::InvalidConfig { reason: format!("no endpoint for {domain}") });
        };
        for ep in &endpoints {
            match op(ep.clone()).await {
                Ok(value) => return Ok(value),
                Err(e) => warn!(endpoint = %ep, error = %e, "mirror failed, trying the next endpoint"),
            }
        }
        op(origin).await
    }

    async fn resolve_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        auth: Option<&AuthConfig>,
        platform: &Platform,
    ) -> Result<Resolved, Error> {
        let (top, parsed) = self.fetch_manifest_at(ep, r, auth).await?;
        let index = match parsed {
            Parsed::Image(manifest) => {
                return Ok(Resolved {
                    reference: r.clone(),
                    endpoint: ep.clone(),
                    digest: top.digest.clone(),
                    index: None,
                    manifest,
                    manifest_digest: top.digest,
                    media_type: top.media_type,
                    bytes: top.bytes,
                    platform: None,
                });
            }
            Parsed::Index(index) => index,
        };
        let entry = select_entry(&index, r, platform)?;
        let child_ref = r.name_only().with_digest(&entry.digest)?;
        let (child, parsed) = self.fetch_manifest_at(ep, &child_ref, auth).await?;
        if child.bytes.len() as u64 != entry.size {
            return Err(Error::InvalidManifest {
                reference: r.familiar_string(),
                reason: format!(
                    "index entry {} says {} bytes, the manifest has {}",
                    entry.digest,
                    entry.size,
                    child.bytes.len()
                ),
            });
        }
        let Parsed::Image(manifest) = parsed else {
            return Err(Error::UnsupportedManifest {
                reference: r.familiar_string(),
                reason: format!("index entry {} is itself an index", entry.digest),
            });
        };
        Ok(Resolved {
            reference: r.clone(),
            endpoint: ep.clone(),
            digest: top.digest.clone(),
            index: Some(top),
            manifest,
            manifest_digest: child.digest,
            media_type: child.media_type,
            bytes: child.bytes,
            platform: entry.platform.clone(),
        })
    }

    /// The manifest or index `r` names, as bytes, from the pull endpoints.
    pub async fn get_manifest(
        &self,
        r: &Reference,
        auth: Option<&AuthConfig>,
    ) -> Result<RawManifest, Error> {
        self.on_pull_endpoints(r.domain(), |ep| async move { Ok(self.fetch_manifest_at(&ep, r, auth).await?.0) }).await
    }

    /// What the manifest `r` names is, from a HEAD request to the pull endpoints (mirrors,
    /// then the origin): its digest, media type and size, without its body. Registries
    /// such as Docker Hub count manifest GETs against pull limits, and HEADs not, so this
    /// is how a cached manifest is checked for change.
    pub async fn head_manifest(
        &self,
        r: &Reference,
        auth: Option<&AuthConfig>,
    ) -> Result<ManifestHead, Error> {
        self.on_pull_endpoints(r.domain(), |ep| async move { self.head_manifest_at(&ep, r, auth).await }).await
    }

    async fn head_manifest_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        auth: Option<&AuthConfig>,
    ) -> Result<ManifestHead, Error> {
        let (request, resp) = self.request_manifest_at(ep, Method::HEAD, r, auth).await?;
        let headers = resp.headers();
        let bad = |reason: String| Error::BadResponse {
            registry: ep.label(),
            request: request.clone(),
            reason,
        };
        let media_type = header_str(headers, &CONTENT_TYPE)
            .map(manifest::base_media_type)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("no Content-Type header".into()))?;
        if media_type == "text/html" {
            return Err(bad("an HTML page instead of a manifest".into()));
        }
        let announced = header_str(headers, &DOCKER_CONTENT_DIGEST).map(str::trim);
        let digest = match (announced, r.digest()) {
            (Some(announced), Some(asked)) if announced != asked => {
                return Err(Error::DigestMismatch {
                    reference: r.familiar_string(),
                    expected: asked.to_string(),
                    actual: announced.to_string(),
                });
            }
            (_, Some(asked)) => asked.to_string(),
            (Some(announced), None) => {
                digest::validate(announced).map_err(|message| {
                    bad(format!(
                        "an invalid Docker-Content-Digest {announced:?}: {message}"
                    ))
                })?;
                announced.to_string()
            }
            (None, None) => return Err(bad("no Docker-Content-Digest header".into())),
        };
        let size = content_length(headers).ok_or_else(|| bad("no Content-Length header".into()))?;
        if size > MAX_MANIFEST_SIZE as u64 {
            return Err(bad(format!(
                "a manifest of {size} bytes, more than the {MAX_MANIFEST_SIZE} allowed"
            )));
        }
        Ok(ManifestHead {
            digest,
            media_type: media_type.to_string(),
            size,
        })
    }

    /// Streams blob `digest` of repository `repo` (a reference path) from `endpoint`,
    /// starting at `offset`. A connection that breaks mid-stream is resumed with a Range
    /// request (up to the retry budget), so the caller sees one continuous stream. The
    /// digest is not verified here (the caller hashes while storing); `size`, when given,
    /// is checked against Content-Length. A mirror that cannot serve the blob is replaced
    /// by the origin before the stream starts.
    pub async fn fetch_blob(
        &self,
        endpoint: &Endpoint,
        repo: &str,
        digest: &str,
        size: Option<u64>,
        offset: u64,
        auth: Option<&AuthConfig>,
    ) -> Result<BlobStream, Error> {
        digest::validate(digest).map_err(|message| Error::InvalidDigest {
            digest: digest.to_string(),
            message,
        })?;
        if let Some(size) = size {
            if offset > size {
                return Err(Error::InvalidRange {
                    digest: digest.to_string(),
                    offset,
                    size,
                });
            }
            if offset == size {
                return Ok(BlobStream::empty(endpoint.clone(), size));
            }
        }
        let (ep, opened) = match self
            .open_blob(endpoint, repo, digest, size, offset, auth, true)
            .await
        {
            Ok(opened) => (endpoint.clone(), opened),
            Err(e) if endpoint.is_mirror() => {
                warn!(endpoint = %endpoint, error = %e, "mirror cannot serve the blob, using the origin");
                let origin = self.origin(endpoint.registry()).await;
                let opened = self
                    .open_blob(&origin, repo, digest, size, offset, auth, true)
                    .await?;
                (origin, opened)
            }
            Err(e) => return Err(e),
        };
        let state = BlobState::new(
            self.clone(),
            ep,
            repo,
            digest,
            auth.cloned(),
            offset,
            opened,
        );
        Ok(state.into_stream())
    }

    /// Sends the GET for a blob from `offset` and checks the answer's status and lengths.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open_blob(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
        size: Option<u64>,
        offset: u64,
        auth: Option<&AuthConfig>,
        retry: bool,
    ) -> Result<Opened, Error> {
        let mut req = Request::new(Method::GET, format!("/v2/{repo}/blobs/{digest}"));
        if offset > 0 {
            req = req.header(RANGE, &format!("bytes={offset}-"));
        }
        if !retry {
            req = req.once();
        }
        let resp = self
            .execute(ep, &req, &[repository_scope(repo, false)], auth)
            .await?;
        let request = describe(&Method::GET, resp.url());
        let bad = |reason: String| Error::BadResponse {
            registry: ep.label(),
            request: request.clone(),
            reason,
        };
        let length = content_length(resp.headers());
        let (skip, total) = match resp.status() {
            StatusCode::OK => {
                if let (Some(len), Some(size)) = (length, size) {
                    if len != size {
                        return Err(bad(format!(
                            "Content-Length {len} does not match the blob size {size}"
                        )));
                    }
                }
                (offset, size.or(length))
            }
            StatusCode::PARTIAL_CONTENT => {
                let range =
                    header_str(resp.headers(), &http::header::CONTENT_RANGE).unwrap_or_default();
                let (start, total) = parse_content_range(range)
                    .ok_or_else(|| bad(format!("a partial answer with Content-Range {range:?}")))?;
                if start != offset {
                    return Err(bad(format!(
                        "asked for bytes from {offset}, got bytes from {start}"
                    )));
                }
                let total = size.or(total);
                if let (Some(len), Some(total)) = (length, total) {
                    if len != total - offset {
                        return Err(bad(format!(
                            "Content-Length {len} does not match the {} bytes left of {total}",
                            total - offset
                        )));
                    }
                }
                (0, total)
            }
            _ => {
                let (status, detail) = Client::status_error(ep, &request, resp).await;
                return Err(match status.as_u16() {
                    404 => Error::BlobNotFound {
                        registry: ep.label(),
                        repository: repo.to_string(),
                        digest: digest.to_string(),
                        detail,
                    },
                    401 | 403 => Error::Denied {
                        action: format!("pull of blob {digest} from {repo} on {}", ep.label()),
                        detail,
                    },
                    code => Error::Status {
                        registry: ep.label(),
                        request,
                        status: code,
                        detail,
                    },
                });
            }
        };
        Ok(Opened {
            body: Box::pin(resp.bytes_stream()),
            skip,
            total,
        })
    }

    /// Fetches a small blob (a config) whole and verifies its digest.
    pub async fn fetch_blob_bytes(
        &self,
        endpoint: &Endpoint,
        repo: &str,
        digest: &str,
        size: Option<u64>,
        auth: Option<&AuthConfig>,
    ) -> Result<Bytes, Error> {
        let limit = size.unwrap_or(MAX_SMALL_BLOB_SIZE);
        let mut stream = self
            .fetch_blob(endpoint, repo, digest, size, 0, auth)
            .await?;
        let mut buf = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(Error::BadResponse {
                    registry: stream.endpoint().label(),
                    request: format!("GET /v2/{repo}/blobs/{digest}"),
                    reason: format!("the blob is larger than {limit} bytes"),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        let bytes = buf.freeze();
        let actual = digest::compute_like(digest, &bytes).unwrap_or_default();
        if actual != digest {
            return Err(Error::DigestMismatch {
                reference: format!("{repo}@{digest}"),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The size of blob `digest` in `r`'s repository at the origin, or `None` if it is not there.
    pub async fn blob_exists(
        &self,
        r: &Reference,
        digest: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<Option<u64>, Error> {
        let ep = self.origin(r.domain()).await;
        let req = Request::new(Method::HEAD, format!("/v2/{}/blobs/{digest}", r.path()));
        let resp = self
            .execute(&ep, &req, &[repository_scope(r.path(), false)], auth)
            .await?;
        let request = describe(&Method::HEAD, resp.url());
        match resp.status() {
            StatusCode::OK => Ok(Some(content_length(resp.headers()).unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.push_error(&ep, r, &request, resp).await),
        }
    }

    /// Mounts blob `digest` from `from_repo` (a path on the same registry) into `r`'s
    /// repository. False when the registry started an upload instead (it is cancelled).
    pub async fn mount_blob(
        &self,
        r: &Reference,
        digest: &str,
        from_repo: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<bool, Error> {
        let ep = self.origin(r.domain()).await;
        let mut target = Url::parse("http://x/").map_err(|e| Error::InvalidConfig {
            reason: e.to_string(),
        })?;
        target.set_path(&format!("/v2/{}/blobs/uploads/", r.path()));
        target
            .query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from_repo);
        let path_and_query = format!("{}?{}", target.path(), target.query().unwrap_or_default());
        let scopes = [
            repository_scope(r.path(), true),
            repository_scope(from_repo, false),
        ];
        let resp = self
            .execute(
                &ep,
                &Request::new(Method::POST, path_and_query).once(),
                &scopes,
                auth,
            )
            .await?;
        let request = describe(&Method::POST, resp.url());
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Some(location) = header_str(resp.headers(), &LOCATION) {
                    let location = location.to_string();
                    self.cancel_upload(&ep, &location, &scopes, auth).await;
                }
                Ok(false)
            }
            _ => Err(self.push_error(&ep, r, &request, resp).await),
        }
    }

    async fn push_error(
        &self,
        ep: &Endpoint,
        r: &Reference,
        request: &str,
        resp: reqwest::Response,
    ) -> Error {
        let (status, detail) = Client::status_error(ep, request, resp).await;
        match status.as_u16() {
            401 | 403 => Error::Denied {
                action: format!("push to {}", r.familiar_name()),
                detail,
            },
            code => Error::Status {
                registry: ep.label(),
                request: request.to_string(),
                status: code,
                detail,
            },
        }
    }

    async fn cancel_upload(
        &self,
        ep: &Endpoint,
        location: &str,
        scopes: &[String],
        auth: Option<&AuthConfig>,
    ) {
        let req = Request::new(Method::DELETE, location).once();
        if let Err(e) = self.execute(ep, &req, scopes, auth).await {
            debug!(location, error = %e, "cancelling an upload failed");
        }
    }

    /// Uploads a blob to `r`'s repository at the origin: one PUT for small blobs, one
    /// streamed PATCH then a closing PUT for large ones. The registry's digest is checked.
    pub async fn push_blob<S>(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        body: S,
        auth: Option<&AuthConfig>,
    ) -> Result<(), Error>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        digest::validate(digest).map_err(|message| Error::InvalidDigest {
            digest: digest.to_string(),
            message,
        })?;
        let ep = self.origin(r.domain()).await;
        let scopes = [repository_scope(r.path(), true)];
        let start = Request::new(Method::POST, format!("/v2/{}/blobs/uploads/", r.path())).once();
        let resp = self.execute(&ep, &start, &scopes, auth).await?;
        let request = describe(&Method::POST, resp.url());
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.push_error(&ep, r, &request, resp).await);
        }
        let location = upload_location(&ep, &request, &resp)?;
        let result = self
            .upload(&ep, r, &scopes, &location, digest, size, body, auth)
            .await;
        if result.is_err() {
            self.cancel_upload(&ep, location.as_str(), &scopes, auth)
                .await;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload<S>(
        &self,
        ep: &Endpoint,
        r: &Reference,
        scopes: &[String],
        location: &Url,
        digest: &str,
        size: u64,
        body: S,
        auth: Option<&AuthConfig>,
    ) -> Result<(), Error>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        let close = if size <= MONOLITHIC_PUSH_MAX {
            let data = collect_exact(body, digest, size).await?;
            let url = with_digest_query(location, digest);
            Request::new(Method::PUT, url.as_str())
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(data)
                .once()
        } else {
            let next = self
                .patch_stream(ep, r, scopes, location, digest, size, body, auth)
                .await?;
            Request::new(Method::PUT, with_digest_query(&next, digest).as_str()).once()
        };
        let resp = self.execute(ep, &close, scopes, auth).await?;
        let request = describe(&Method::PUT, resp.url());
        if resp.status() != StatusCode::CREATED {
            return Err(self.push_error(ep, r, &request, resp).await);
        }
        match header_str(resp.headers(), &DOCKER_CONTENT_DIGEST) {
            Some(d) if d != digest => Err(Error::DigestMismatch {
                reference: format!("{}@{digest}", r.familiar_name()),
                expected: digest.to_string(),
                actual: d.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Streams the body in one chunked PATCH; returns the upload's next location.
    #[allow(clippy::too_many_arguments)]
    async fn patch_stream<S>(
        &self,
        ep: &Endpoint,
        r: &Reference,
        scopes: &[String],
        location: &Url,
        digest: &str,
        size: u64,
        body: S,
        auth: Option<&AuthConfig>,
    ) -> Result<Url, Error>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        let (_, authorization) = self.prepared_authorization(ep, scopes, auth).await?;
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let source_error: Arc<Mutex<Option<io::Error>>> = Arc::new(Mutex::new(None));
        let (c, s) = (counted.clone(), source_error.clone());
        let stream = body.map(move |item| match item {
            Ok(chunk) => {
                let total = c.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed)
                    + chunk.len() as u64;
                if total > size {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "more bytes than the blob size",
                    ));
                }
                Ok(chunk)
            }
            Err(e) => {
                let message = e.to_string();
                *s.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Err(io::Error::other(message))
            }
        });
        let mut builder = self
            .http_for(ep.skips_tls_verify())
            .patch(location.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream));
        if let Some(a) = authorization {
            builder = builder.header(AUTHORIZATION, a);
        }
        let request = describe(&Method::PATCH, location);
        let sent = builder.send().await;
        let actual = counted.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(source) = source_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(Error::PushSource {
                digest: digest.to_string(),
                source,
            });
        }
        if actual > size {
            return Err(Error::PushSizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual,
            });
        }
        let resp = sent.map_err(|e| Error::Transfer {
            registry: ep.label(),
            what: request.clone(),
            reason: error_chain(&e),
        })?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.push_error(ep, r, &request, resp).await);
        }
        if actual != size {
            return Err(Error::PushSizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual,
            });
        }
        upload_location(ep, &request, &resp)
    }

    /// Uploads a manifest under `r`'s tag (or digest) at the origin; returns its digest.
    pub async fn put_manifest(
        &self,
        r: &Reference,
        media_type: &str,
        bytes: Bytes,
        auth: Option<&AuthConfig>,
    ) -> Result<String, Error> {
        let digest = match r.digest() {
            Some(expected) => {
                let actual = digest::compute_like(expected, &bytes).unwrap_or_default();
                if actual != expected {
                    return Err(Error::DigestMismatch {
                        reference: r.familiar_string(),
                        expected: expected.to_string(),
                        actual,
                    });
                }
                expected.to_string()
            }
            None => digest::sha256(&bytes),
        };
        manifest::parse(&r.familiar_string(), Some(media_type), &bytes)?;
        let key = r.tag().unwrap_or(&digest);
        let ep = self.origin(r.domain()).await;
        let req = Request::new(Method::PUT, format!("/v2/{}/manifests/{key}", r.path()))
            .header(CONTENT_TYPE, media_type)
            .body(bytes);
        let resp = self
            .execute(&ep, &req, &[repository_scope(r.path(), true)], auth)
            .await?;
        let request = describe(&Method::PUT, resp.url());
        if resp.status() != StatusCode::CREATED {
            return Err(self.push_error(&ep, r, &request, resp).await);
        }
        match header_str(resp.headers(), &DOCKER_CONTENT_DIGEST) {
            Some(d) if d != digest && digest::validate(d) == digest::validate(&digest) => {
                Err(Error::DigestMismatch {
                    reference: r.familiar_string(),
                    expected: digest,
                    actual: d.to_string(),
                })
            }
            _ => Ok(digest),
        }
    }

    /// All tags of `r`'s repository, following Link pagination, from the pull endpoints.
    pub async fn list_tags(
        &self,
        r: &Reference,
        auth: Option<&AuthConfig>,
    ) -> Result<Vec<String>, Error> {
        self.on_pull_endpoints(r.domain(), |ep| async move { self.list_tags_at(&ep, r, auth).await }).await
    }

    async fn list_tags_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        auth: Option<&AuthConfig>,
    ) -> Result<Vec<String>, Error> {
        const MAX_PAGES: usize = 10_000;
        let scopes = [repository_scope(r.path(), false)];
        let mut tags = Vec::new();
        let mut next = Some(format!("/v2/{}/tags/list", r.path()));
        let mut seen = std::collections::HashSet::new();
        while let Some(target) = next.take() {
            let req = Request::new(Method::GET, target);
            let resp = self.execute(ep, &req, &scopes, auth).await?;
            let request = describe(&Method::GET, resp.url());
            if !seen.insert(resp.url().to_string()) || seen.len() > MAX_PAGES {
                return Err(Error::BadResponse {
                    registry: ep.label(),
                    request,
                    reason: "the tag list pages loop".into(),
                });
            }
            if !resp.status().is_success() {
                let (status, detail) = Client::status_error(ep, &request, resp).await;
                return Err(match status.as_u16() {
                    401 | 403 => Error::PullDenied {
                        name: r.familiar_name(),
                        detail,
                    },
                    code => Error::Status {
                        registry: ep.label(),
                        request,
                        status: code,
                        detail,
                    },
                });
            }
            let base = resp.url().clone();
            next = link_next(resp.headers())
                .and_then(|l| base.join(&l).ok())
                .map(|u| u.to_string());
            let body = Client::read_body(ep, &request, resp, MAX_MANIFEST_SIZE).await?;
            let page: TagList = serde_json::from_slice(&body).map_err(|e| Error::BadResponse {
                registry: ep.label(),
                request: request.clone(),
                reason: format!("not a tag list: {e}"),
            })?;
            tags.extend(page.tags.unwrap_or_default());
        }
        Ok(tags)
    }

    /// Searches `registry` (`docker.io` or a host) like `docker search`: `GET /v1/search`.
    pub async fn search(
        &self,
        registry: &str,
        term: &str,
        limit: u32,
        auth: Option<&AuthConfig>,
    ) -> Result<SearchResults, Error> {
        let domain = crate::config::canonical_domain(registry).to_string();
        let host = if domain == crate::reference::DEFAULT_DOMAIN {
            crate::config::DOCKER_HUB_INDEX_HOST
        } else {
            domain.as_str()
        };
        let ep = self.inner.endpoints.at_host(&domain, host).await;
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", term)
            .append_pair("n", &limit.to_string())
            .finish();
        let req = Request::new(Method::GET, format!("/v1/search?{query}"));
        let resp = self
            .execute(&ep, &req, &["registry:catalog:search".to_string()], auth)
            .await?;
        let request = describe(&Method::GET, resp.url());
        match resp.status() {
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                return Err(Error::SearchUnsupported {
                    registry: ep.label(),
                });
            }
            s if !s.is_success() => {
                let (status, detail) = Client::status_error(&ep, &request, resp).await;
                return Err(match status.as_u16() {
                    401 | 403 => Error::Denied {
                        action: format!("search on {}", ep.label()),
                        detail,
                    },
                    code => Error::Status {
                        registry: ep.label(),
                        request,
                        status: code,
                        detail,
                    },
                });
            }
            _ => {}
        }
        let body = Client::read_body(&ep, &request, resp, MAX_MANIFEST_SIZE).await?;
        serde_json::from_slice(&body).map_err(|e| Error::BadResponse {
            registry: ep.label(),
            request,
            reason: format!("not search results: {e}"),
        })
    }

    /// Checks credentials like `docker login`: `GET /v2/`, then the challenge's scheme with
    /// `auth`. Returns the identity (refresh) token when the token server issued one.
    pub async fn login(&self, server: &str, auth: &AuthConfig) -> Result<Option<String>, Error> {
        let domain = auth::registry_domain(server);
        let ep = self.origin(&domain).await;
        // A fresh look: credentials or the registry's setup may have changed.
        self.lock_pings().remove(&ep);
        let ping = self.ping(&ep).await?;
        let url = ping.base.join("/v2/").map_err(|e| Error::InvalidConfig {
            reason: e.to_string(),
        })?;
        let mut refresh_token = None;
        let authorization =
            if let Some(bearer) = ping.challenges.iter().find(|c| c.scheme == "bearer") {
                let realm = bearer.param("realm").unwrap_or_default();
                let realm_host = Url::parse(realm)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string));
                let skip_verify = match realm_host {
                    Some(h) => self.inner.endpoints.is_insecure(&h).await,
                    None => false,
                };
                let request = TokenRequest {
                    realm,
                    service: bearer.param("service"),
                    scopes: &[],
                    auth: Some(auth),
                    offline: true,
                };
                let token = auth::fetch_token(self.http_for(skip_verify), &request).await?;
                refresh_token = token.refresh_token;
                Some(format!("Bearer {}", token.token))
            } else if ping.challenges.iter().any(|c| c.scheme == "basic") {
                let (user, pass) = auth.username_password().unwrap_or_default();
                use base64::Engine;
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
                ))
            } else {
                // The registry asks for no credentials.
                return Ok(None);
            };
        let mut req = self.http_for(ep.skips_tls_verify()).get(url.clone());
        if let Some(a) = authorization {
            req = req.header(AUTHORIZATION, a);
        }
        let resp = req.send().await.map_err(|e| Error::Connect {
            registry: ep.label(),
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
        if !resp.status().is_success() {
            return Err(Error::LoginFailed {
                url: url.to_string(),
                status: resp.status().to_string(),
            });
        }
        Ok(refresh_token)
    }
}

/// Picks the index entry for `platform`.
fn select_entry<'a>(
    index: &'a Index,
    r: &Reference,
    platform: &Platform,
) -> Result<&'a manifest::Descriptor, Error> {
    let entry = platform
        .select(&index.manifests)
        .ok_or_else(|| Error::NoMatchingPlatform {
            reference: r.familiar_string(),
            platform: platform.to_string(),
        })?;
    if manifest::manifest_kind(&entry.media_type) != Some(manifest::ManifestKind::Image) {
        return Err(Error::UnsupportedManifest {
            reference: r.familiar_string(),
            reason: format!(
                "index entry {} has media type {:?}",
                entry.digest, entry.media_type
            ),
        });
    }
    Ok(entry)
}

/// The upload URL of a 202 answer, resolved against the request URL.
fn upload_location(ep: &Endpoint, request: &str, resp: &reqwest::Response) -> Result<Url, Error> {
    let bad = |reason: String| Error::BadResponse {
        registry: ep.label(),
        request: request.to_string(),
        reason,
    };
    let location = header_str(resp.headers(), &LOCATION)
        .ok_or_else(|| bad("an upload without a Location".into()))?;
    resp.url()
        .join(location)
        .map_err(|e| bad(format!("a bad upload Location {location:?}: {e}")))
}

fn with_digest_query(location: &Url, digest: &str) -> Url {
    let mut url = location.clone();
    url.query_pairs_mut().append_pair("digest", digest);
    url
}

/// Reads the whole body of a small blob to push, checking its size.
async fn collect_exact<S>(body: S, digest: &str, size: u64) -> Result<Bytes, Error>
where
    S: Stream<Item = io::Result<Bytes>> + Send,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|source| Error::PushSource {
            digest: digest.to_string(),
            source,
        })?;
        buf.extend_from_slice(&chunk);
        if buf.len() as u64 > size {
            break;
        }
    }
    if buf.len() as u64 != size {
        return Err(Error::PushSizeMismatch {
            digest: digest.to_string(),
            expected: size,
            actual: buf.len() as u64,
        });
    }
    Ok(buf.freeze())
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) -> (START, TOTAL).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(
            error_detail(StatusCode::NOT_FOUND, body),
            "manifest unknown: manifest unknown"
        );
        let two = br#"{"errors":[{"code":"DENIED","message":"no"},{"code":"UNAUTHORIZED","message":"who"}]}"#;
        assert_eq!(
            error_detail(StatusCode::FORBIDDEN, two),
            "denied: no; unauthorized: who"
        );
        assert_eq!(
            error_detail(
                StatusCode::UNAUTHORIZED,
                br#"{"details":"incorrect username or password"}"#
            ),
            "incorrect username or password"
        );
        assert_eq!(
            error_detail(StatusCode::BAD_GATEWAY, b""),
            "502 Bad Gateway"
        );
        assert_eq!(
            error_detail(StatusCode::BAD_GATEWAY, b"  <html><body>oops</body></html>"),
            "502 Bad Gateway (an HTML page instead of a registry error)"
        );
        assert_eq!(
            error_detail(StatusCode::BAD_REQUEST, b"plain words"),
            "plain words"
        );
    }

    #[test]
    fn links_and_ranges() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::LINK,
            HeaderValue::from_static(r#"</v2/x/tags/list?last=b&n=2>; rel="next""#),
        );
        assert_eq!(link_next(&h).as_deref(), Some("/v2/x/tags/list?last=b&n=2"));
        h.insert(
            http::header::LINK,
            HeaderValue::from_static(r#"<https://a/p>; rel="prev""#),
        );
        assert_eq!(link_next(&h), None);
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }
}
