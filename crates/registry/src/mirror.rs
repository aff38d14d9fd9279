//! Pull-through mirrors: repositories of a configured namespace (`docker.io`, `ghcr.io`)
//! are fetched from its upstream registry on first use and served from storage after.
//!
//! Which namespace a request is for, first match wins:
//! 1. the first path component names it: `/v2/ghcr.io/org/app/manifests/1` (the form
//!    under which this registry also stores the content, `host:port` written `host__port`);
//! 2. containerd's `?ns=ghcr.io` on every request to a mirror;
//! 3. none given: the `docker.io` mirror (docker uses mirrors for Docker Hub only and sends
//!    no namespace), when one is configured.
//!
//! Manifests by digest are kept forever; by tag they are revalidated upstream once older
//! than the mirror's `manifest_ttl`, with a HEAD (fetched only when the tag moved), and
//! served stale, with a warning, when the upstream cannot be reached. Blobs are streamed to the client while they are written to storage;
//! concurrent requests for one blob share one upstream fetch, and a blob whose content does
//! not match its digest is never stored nor fully sent. The upstream is spoken to with
//! `berth-distribution`'s client (Basic or token authentication, retries, resume).
//!
//! Uses of cached content are recorded for eviction (`max_age`, see `gc`): the time of a
//! manifest's `_cached` mark and of a blob's file, renewed at most once per
//! [`Upstream::renewal`] so a hot manifest costs no disk write per request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use berth_distribution::{AuthConfig, Client, RegistryConfig};
use berth_store::Digest;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::config::{self, canonical_namespace};
use crate::error::{Error, ErrorKind, Result};
use crate::fsutil;
use crate::gc;
use crate::manifest;
use crate::metrics::{CacheKind, Metrics};
use crate::names::{Reference, RepoName};
use crate::registry::CachedManifest;
use crate::storage::Storage;
use crate::uploads::hasher_for;

/// Reads of a blob still arriving, sent to clients in pieces of at most this size.
const TAIL_READ: usize = 256 << 10;
/// Retries of an upstream request: few, so a cached copy is served soon when it is down.
const UPSTREAM_RETRIES: u32 = 2;
/// Recorded uses are renewed at most this often (or every `max_age / 24` when shorter).
const USE_RENEWAL: Duration = Duration::from_secs(3600);
/// Entries of the in-memory tables (fresh tags, recent uses) before old ones are dropped.
const TABLE_ENTRIES: usize = 16_384;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("blocking task failed: {e}")))?
}

/// Every configured mirror.
#[derive(Default)]
pub struct Mirrors {
    upstreams: Vec<Arc<Upstream>>,
    /// The `docker.io` mirror, for requests that name no namespace.
    default: Option<usize>,
}

impl Mirrors {
    pub fn new(configs: &[config::Mirror], metrics: Arc<Metrics>) -> Result<Mirrors> {
        let mut upstreams = Vec::new();
        for c in configs {
            upstreams.push(Arc::new(Upstream::new(c.clone(), metrics.clone())?));
        }
        let default = upstreams.iter().position(|u| u.config.namespace == config::DOCKER_HUB_NAMESPACE);
        Ok(Mirrors { upstreams, default })
    }

    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }

    /// The repository name prefixes of mirrored content (the garbage collector keeps their
    /// untagged manifests: pulls by digest are what a cache is for).
    pub fn prefixes(&self) -> Vec<String> {
        self.upstreams.iter().map(|u| u.prefix.clone()).collect()
    }

    /// What the garbage collector evicts: the caches of mirrors with a `max_age`.
    pub fn evictions(&self) -> Vec<gc::Eviction> {
        let configs: Vec<config::Mirror> = self.upstreams.iter().map(|u| u.config.clone()).collect();
        gc::Eviction::for_mirrors(&configs)
    }

    /// Rewrites a decoded `/v2/...` path so its repository name is the one the content is
    /// stored under (see the module documentation); `ns` is the `?ns=` parameter.
    pub fn route<'a>(&self, path: &'a str, ns: Option<&str>) -> Cow<'a, str> {
        if self.upstreams.is_empty() {
            return Cow::Borrowed(path);
        }
        let Some(rest) = path.strip_prefix("/v2/") else { return Cow::Borrowed(path) };
        if rest.is_empty() || rest == "_catalog" {
            return Cow::Borrowed(path);
        }
        if let Some((first, tail)) = rest.split_once('/') {
            let named = self.upstreams.iter().find(|u| {
                first == u.prefix || canonical_namespace(first) == u.config.namespace
            });
            if let Some(u) = named {
                // Only when a repository follows: `/v2/docker.io/manifests/x` is repository
                // `docker.io` itself.
                if tail.contains('/') && !["manifests/", "blobs/", "tags/", "referrers/"].iter().any(|m| tail.starts_with(m)) {
                    return Cow::Owned(format!("/v2/{}/{tail}", u.prefix));
                }
            }
        }
        let chosen = match ns.filter(|n| !n.is_empty()) {
            Some(ns) => self.upstreams.iter().find(|u| u.config.namespace == canonical_namespace(ns)),
            None => self.default.map(|i| &self.upstreams[i]),
        };
        match chosen {
            Some(u) => Cow::Owned(format!("/v2/{}/{rest}", u.prefix)),
            None => Cow::Borrowed(path),
        }
    }

    /// The mirror whose content repository `name` holds.
    pub fn for_repository(&self, name: &RepoName) -> Option<&Arc<Upstream>> {
        if self.upstreams.is_empty() {
            return None;
        }
        let (first, _) = name.as_str().split_once('/')?;
        self.upstreams.iter().find(|u| u.prefix == first)
    }
}

/// Where a blob requested from a mirror comes from.
pub enum BlobSource {
    /// Stored and visible in the repository: serve it from storage.
    Stored,
    /// Arriving from the upstream; the body follows the download.
    Streaming { size: Option<u64>, body: Body },
}

/// Progress of one blob download.
#[derive(Debug, Clone)]
enum Progress {
    Opening,
    Open { size: Option<u64>, written: u64 },
    Stored { size: u64 },
    NotFound,
    Failed(String),
}

/// A blob download that clients follow.
struct Fetch {
    /// The temporary file, open for reading (still readable after it is renamed).
    file: Arc<File>,
    progress: watch::Receiver<Progress>,
}

/// Waiters on one manifest fetch.
type Flight = Arc<tokio::sync::Mutex<()>>;

/// One mirror: its configuration, a client for its upstream, and what is in flight.
pub struct Upstream {
    pub config: config::Mirror,
    prefix: String,
    /// `host[:port]` of the upstream, the domain of its references.
    domain: String,
    client: Client,
    auth: Option<AuthConfig>,
    metrics: Arc<Metrics>,
    /// Tags known fresh until the given time, so a hot tag costs no disk access.
    fresh: Mutex<HashMap<String, Instant>>,
    /// When a use of a manifest (`name@digest`) or blob (`digest`) was last recorded.
    uses: Mutex<HashMap<String, Instant>>,
    flights: Mutex<HashMap<String, Flight>>,
    fetches: Mutex<HashMap<(String, Digest), Arc<Fetch>>>,
}

fn poisoned<T>(r: std::sync::LockResult<T>) -> T {
    r.unwrap_or_else(|e| e.into_inner())
}

impl Upstream {
    fn new(config: config::Mirror, metrics: Arc<Metrics>) -> Result<Upstream> {
        let url = url::Url::parse(&config.upstream).map_err(|e| Error::Config(format!("mirror {}: upstream: {e}", config.namespace)))?;
        let host = url.host_str().ok_or_else(|| Error::Config(format!("mirror {}: upstream has no host", config.namespace)))?;
        let domain = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let mut registry = RegistryConfig { max_retries: UPSTREAM_RETRIES, ..RegistryConfig::default() };
        if url.scheme() == "http" {
            registry.insecure.push(domain.clone());
        }
        let client = Client::new(registry).map_err(|e| Error::Config(format!("mirror {}: {e}", config.namespace)))?;
        let auth = match (&config.username, &config.password) {
            (Some(u), Some(p)) => Some(AuthConfig { username: u.clone(), password: p.clone(), ..AuthConfig::default() }),
            _ => None,
        };
        Ok(Upstream {
            prefix: config.prefix(),
            config,
            domain,
            client,
            auth,
            metrics,
            fresh: Mutex::new(HashMap::new()),
            uses: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            fetches: Mutex::new(HashMap::new()),
        })
    }

    /// The repository path at the upstream for a stored repository name.
    fn upstream_path<'a>(&self, name: &'a RepoName) -> &'a str {
        name.as_str().strip_prefix(&self.prefix).and_then(|p| p.strip_prefix('/')).unwrap_or(name.as_str())
    }

    fn reference(&self, name: &RepoName, suffix: &str) -> Result<berth_distribution::Reference> {
        let text = format!("{}/{}{suffix}", self.domain, self.upstream_path(name));
        berth_distribution::Reference::parse_named(&text).map_err(|e| self.error(format!("reference {text}: {e}")))
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::Upstream { upstream: self.config.upstream.clone(), reason: reason.into() }
    }

    /// Writes are refused in a mirrored namespace unless it is also local.
    pub fn check_writable(&self, name: &RepoName, operation: &'static str) -> Result<()> {
        if self.config.local {
            Ok(())
        } else {
            Err(Error::MirrorReadOnly { repository: name.to_string(), namespace: self.config.namespace.clone(), operation })
        }
    }

    /// Waits for (and then holds) the one fetch of `key` at a time.
    async fn flight(&self, key: &str) -> FlightGuard<'_> {
        let flight = poisoned(self.flights.lock()).entry(key.to_string()).or_default().clone();
        let guard = flight.clone().lock_owned().await;
        FlightGuard { upstream: self, key: key.to_string(), flight, _guard: guard }
    }

    /// A manifest by tag or digest: whether storage holds the answer, or what was fetched
    /// from the upstream. By digest, the caller has looked in storage first.
    pub(crate) async fn manifest(&self, storage: &Arc<Storage>, name: &RepoName, reference: &Reference) -> Result<Fetched> {
        let key = format!("{name}@{reference}");
        match reference {
            Reference::Digest(_) => {
                let _flight = self.flight(&key).await;
                // Whoever held the flight before may have stored it.
                if is_stored(storage, name, reference).await? {
                    self.metrics.cache_hit(CacheKind::Manifest);
                    return Ok(Fetched::Unchanged);
                }
                self.metrics.cache_miss(CacheKind::Manifest);
                self.fetch_manifest(storage, name, reference, None).await
            }
            Reference::Tag(tag) => {
                if poisoned(self.fresh.lock()).get(&key).is_some_and(|until| Instant::now() < *until) {
                    self.metrics.cache_hit(CacheKind::Manifest);
                    return Ok(Fetched::Unchanged);
                }
                let _flight = self.flight(&key).await;
                let (s, n, t) = (storage.clone(), name.clone(), tag.clone());
                let (validated, tagged) = blocking(move || Ok((s.mirrored_tag_time(&n, &t), s.resolve_tag(&n, &t)?.is_some()))).await?;
                let Some(validated) = validated else {
                    if tagged {
                        // Pushed here (a local namespace): not the upstream's business.
                        self.remember_fresh(&key, self.config.manifest_ttl);
                        return Ok(Fetched::Unchanged);
                    }
                    self.metrics.cache_miss(CacheKind::Manifest);
                    return self.fetch_manifest(storage, name, reference, Some(tag)).await;
                };
                let age = SystemTime::now().duration_since(validated).unwrap_or_default();
                if age < self.config.manifest_ttl {
                    self.remember_fresh(&key, self.config.manifest_ttl - age);
                    self.metrics.cache_hit(CacheKind::Manifest);
                    return Ok(Fetched::Unchanged);
                }
                match self.revalidate(storage, name, reference, tag).await {
                    Ok(fetched) => Ok(fetched),
                    Err(e) if e.kind() == ErrorKind::Unavailable => {
                        tracing::warn!(repository = %name, %tag, error = %e, "upstream unreachable, serving the cached manifest");
                        self.metrics.mirror_stale.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Ok(Fetched::Unchanged)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Forgets that a tag is fresh (its manifest was found evicted): the next request
    /// looks at storage and the upstream again.
    pub(crate) fn forget_fresh(&self, name: &RepoName, reference: &Reference) {
        poisoned(self.fresh.lock()).remove(&format!("{name}@{reference}"));
    }

    /// Forgets the fresh tags of a repository whose manifests were evicted.
    pub(crate) fn forget_repository(&self, name: &RepoName) {
        let prefix = format!("{name}@");
        poisoned(self.fresh.lock()).retain(|k, _| !k.starts_with(&prefix));
    }

    /// How often a recorded use is renewed at most: hourly, or 24 times per `max_age`
    /// when that is shorter, so eviction errs by at most 1/24 of it.
    pub fn renewal(&self) -> Duration {
        self.config.max_age.map_or(USE_RENEWAL, |age| (age / 24).min(USE_RENEWAL))
    }

    /// Whether a use of `key` is to be written now (none recorded within the renewal
    /// period); if so, notes it as recorded.
    fn use_due(&self, key: String) -> bool {
        let now = Instant::now();
        let renewal = self.renewal();
        let mut uses = poisoned(self.uses.lock());
        if uses.get(&key).is_some_and(|at| now.duration_since(*at) < renewal) {
            return false;
        }
        if uses.len() >= TABLE_ENTRIES {
            uses.retain(|_, at| now.duration_since(*at) < renewal);
            if uses.len() >= TABLE_ENTRIES {
                // More distinct uses per period than the table holds: the cost is only
                // some renewals written twice.
                uses.clear();
            }
        }
        uses.insert(key, now);
        true
    }

    /// Records that a cached manifest was served (see the module documentation).
    pub(crate) async fn record_manifest_use(&self, storage: &Arc<Storage>, name: &RepoName, digest: &Digest) {
        if !self.use_due(format!("{name}@{digest}")) {
            return;
        }
        let (s, n, d, mark_unmarked) = (storage.clone(), name.clone(), digest.clone(), !self.config.local);
        if let Err(e) = blocking(move || s.record_manifest_use(&n, &d, mark_unmarked)).await {
            tracing::warn!(repository = %name, %digest, error = %e, "recording the use of a cached manifest failed");
        }
    }

    /// Records that a cached blob was served.
    pub(crate) async fn record_blob_use(&self, storage: &Arc<Storage>, digest: &Digest) {
        if !self.use_due(digest.to_string()) {
            return;
        }
        let (s, d) = (storage.clone(), digest.clone());
        let _ = blocking(move || {
            s.record_blob_use(&d);
            Ok(())
        })
        .await;
    }

    fn remember_fresh(&self, key: &str, for_how_long: Duration) {
        let mut fresh = poisoned(self.fresh.lock());
        if fresh.len() > TABLE_ENTRIES {
            let now = Instant::now();
            fresh.retain(|_, until| *until > now);
        }
        fresh.insert(key.to_string(), Instant::now() + for_how_long);
    }

    /// Checks a stored tag upstream with a HEAD, which Docker Hub does not count against
    /// its pull limits as it does GETs. Unchanged, the tag's validation time is renewed;
    /// moved, or when the HEAD answer lacks what it should carry, the manifest is fetched.
    async fn revalidate(&self, storage: &Arc<Storage>, name: &RepoName, reference: &Reference, tag: &String) -> Result<Fetched> {
        let r = self.reference(name, &format!(":{tag}"))?;
        match self.client.head_manifest(&r, self.auth.as_ref()).await {
            Ok(head) => {
                let (s, n, t) = (storage.clone(), name.clone(), tag.clone());
                let upstream_digest = head.digest.clone();
                let unchanged = blocking(move || {
                    let same = s.resolve_tag(&n, &t)?.is_some_and(|d| d.as_str() == upstream_digest) && s.mirrored_tag_time(&n, &t).is_some();
                    if same {
                        s.renew_mirrored_tag(&n, &t);
                    }
                    Ok(same)
                })
                .await?;
                if unchanged {
                    self.remember_fresh(&format!("{name}@{tag}"), self.config.manifest_ttl);
                    tracing::debug!(repository = %name, %tag, digest = %head.digest, "manifest unchanged upstream");
                    return Ok(Fetched::Unchanged);
                }
            }
            Err(e @ berth_distribution::Error::BadResponse { .. }) => {
                tracing::debug!(repository = %name, %tag, error = %e, "manifest HEAD answer unusable, fetching the manifest");
            }
            Err(e) => return Err(self.manifest_error(name, reference, e)),
        }
        self.fetch_manifest(storage, name, reference, Some(tag)).await
    }

    /// What a failed manifest request upstream is to this registry's clients.
    fn manifest_error(&self, name: &RepoName, reference: &Reference, e: berth_distribution::Error) -> Error {
        match e {
            // A refusal (credentials) is the upstream's trouble, not a missing manifest:
            // what is cached stays served.
            berth_distribution::Error::PullDenied { .. } => self.error(e.to_string()),
            e if e.kind() == berth_distribution::ErrorKind::NotFound => {
                Error::ManifestUnknown { repository: name.to_string(), reference: reference.to_string() }
            }
            e => self.error(e.to_string()),
        }
    }

    /// Fetches a manifest upstream and stores it (by tag: marked as mirrored; when the
    /// tag already points at the same digest, only its validation time is renewed).
    async fn fetch_manifest(&self, storage: &Arc<Storage>, name: &RepoName, reference: &Reference, tag: Option<&String>) -> Result<Fetched> {
        let suffix = match reference {
            Reference::Tag(t) => format!(":{t}"),
            Reference::Digest(d) => format!("@{d}"),
        };
        let r = self.reference(name, &suffix)?;
        let raw = self.client.get_manifest(&r, self.auth.as_ref()).await.map_err(|e| self.manifest_error(name, reference, e))?;
        let digest: Digest = raw.digest.parse().map_err(|_| self.error(format!("manifest digest {:?} is not supported", raw.digest)))?;
        let parsed = manifest::parse(Some(&raw.media_type), &raw.bytes).map_err(|e| self.error(format!("manifest {r}: {e}")))?;
        let (s, n, d, body, t) = (storage.clone(), name.clone(), digest.clone(), raw.bytes.clone(), tag.cloned());
        let media_type = parsed.media_type.clone();
        let changed = blocking(move || {
            if let Some(tag) = &t {
                if s.resolve_tag(&n, tag)?.as_ref() == Some(&d) && s.mirrored_tag_time(&n, tag).is_some() {
                    s.renew_mirrored_tag(&n, tag);
                    return Ok(false);
                }
            }
            s.put_mirrored_manifest(&n, &d, &parsed, &body, t.as_deref())?;
            Ok(true)
        })
        .await?;
        if let Some(tag) = tag {
            self.remember_fresh(&format!("{name}@{tag}"), self.config.manifest_ttl);
            tracing::debug!(repository = %name, %tag, %digest, changed, "manifest validated upstream");
        }
        if changed {
            // Storing it recorded its use.
            self.use_due(format!("{name}@{digest}"));
        }
        let manifest = Arc::new(CachedManifest { digest, media_type, body: raw.bytes });
        Ok(if changed { Fetched::Stored(manifest) } else { Fetched::Unchanged })
    }

    /// All tags of a mirrored repository, as the upstream lists them.
    pub async fn tags(&self, name: &RepoName) -> Result<Vec<String>> {
        let r = self.reference(name, "")?;
        match self.client.list_tags(&r, self.auth.as_ref()).await {
            Ok(mut tags) => {
                tags.sort();
                tags.dedup();
                Ok(tags)
            }
            Err(e @ berth_distribution::Error::PullDenied { .. }) => Err(self.error(e.to_string())),
            Err(e) if e.kind() == berth_distribution::ErrorKind::NotFound => Err(Error::NameUnknown(name.to_string())),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// The size of a blob the upstream has in this repository, `None` if it has not.
    pub async fn blob_size(&self, name: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let r = self.reference(name, "")?;
        self.client.blob_exists(&r, digest.as_str(), self.auth.as_ref()).await.map_err(|e| self.error(e.to_string()))
    }

    /// A blob of the repository: stored already, or streamed from the upstream while it
    /// is stored (one download however many clients ask at once).
    pub async fn blob(self: &Arc<Self>, storage: &Arc<Storage>, name: &RepoName, digest: &Digest) -> Result<BlobSource> {
        let (s, n, d) = (storage.clone(), name.clone(), digest.clone());
        let (linked, stored) = blocking(move || Ok((s.has_blob_link(&n, &d) && s.blob_exists(&d), s.blob_exists(&d)))).await?;
        if linked {
            self.metrics.cache_hit(CacheKind::Blob);
            return Ok(BlobSource::Stored);
        }
        if stored {
            // The content is here for another repository: visible in this one only when
            // the upstream confirms it has the blob there.
            return match self.blob_size(name, digest).await? {
                Some(_) => {
                    let (s, n, d) = (storage.clone(), name.clone(), digest.clone());
                    blocking(move || s.link_blob(&n, &d)).await?;
                    self.metrics.cache_hit(CacheKind::Blob);
                    Ok(BlobSource::Stored)
                }
                None => Err(Error::BlobUnknown { repository: name.to_string(), digest: digest.to_string() }),
            };
        }
        self.metrics.cache_miss(CacheKind::Blob);
        let fetch = self.start_fetch(storage, name, digest).await?;
        let mut progress = fetch.progress.clone();
        let state = progress
            .wait_for(|p| !matches!(p, Progress::Opening))
            .await
            .map(|p| p.clone())
            .map_err(|_| self.error(format!("the download of {digest} stopped")))?;
        match state {
            Progress::Stored { .. } => Ok(BlobSource::Stored),
            Progress::NotFound => Err(Error::BlobUnknown { repository: name.to_string(), digest: digest.to_string() }),
            Progress::Failed(reason) => Err(self.error(reason)),
            Progress::Open { size, .. } => Ok(BlobSource::Streaming { size, body: tail(fetch) }),
            Progress::Opening => Err(Error::Internal("blob download in an impossible state".into())),
        }
    }

    /// The download of a blob into a repository: the one in progress, or a new one.
    async fn start_fetch(self: &Arc<Self>, storage: &Arc<Storage>, name: &RepoName, digest: &Digest) -> Result<Arc<Fetch>> {
        let key = (name.to_string(), digest.clone());
        if let Some(f) = poisoned(self.fetches.lock()).get(&key) {
            return Ok(f.clone());
        }
        let path = fsutil::temp_path(storage.tmp_dir());
        let created = path.clone();
        let (writer, reader) = blocking(move || {
            let writer = OpenOptions::new().write(true).create_new(true).open(&created).map_err(Error::io("create", &created))?;
            let reader = File::open(&created).map_err(Error::io("open", &created))?;
            Ok((writer, reader))
        })
        .await?;
        let (tx, rx) = watch::channel(Progress::Opening);
        let fetch = Arc::new(Fetch { file: Arc::new(reader), progress: rx });
        {
            let mut fetches = poisoned(self.fetches.lock());
            if let Some(f) = fetches.get(&key) {
                // Another request started it while the file was made.
                let _ = std::fs::remove_file(&path);
                return Ok(f.clone());
            }
            fetches.insert(key.clone(), fetch.clone());
        }
        let (me, storage, name, digest) = (self.clone(), storage.clone(), name.clone(), digest.clone());
        tokio::spawn(async move {
            let outcome = me.download(&storage, &name, &digest, writer, &path, &tx).await;
            match outcome {
                Ok(size) => {
                    let _ = tx.send(Progress::Stored { size });
                }
                Err(failure) => {
                    let _ = std::fs::remove_file(&path);
                    if !matches!(failure, Progress::NotFound) {
                        tracing::warn!(repository = %name, %digest, upstream = %me.config.upstream, failure = ?failure, "blob not cached");
                    }
                    let _ = tx.send(failure);
                }
            }
            poisoned(me.fetches.lock()).remove(&key);
        });
        Ok(fetch)
    }

    /// Streams a blob from the upstream into `path`, hashing it, and commits it when the
    /// digest matches. Returns its size, or the failure clients are told.
    async fn download(&self, storage: &Arc<Storage>, name: &RepoName, digest: &Digest, writer: File, path: &std::path::Path, progress: &watch::Sender<Progress>) -> std::result::Result<u64, Progress> {
        let r = self.reference(name, "").map_err(|e| Progress::Failed(e.to_string()))?;
        let endpoint = self.client.origin(r.domain()).await;
        let mut stream = match self.client.fetch_blob(&endpoint, r.path(), digest.as_str(), None, 0, self.auth.as_ref()).await {
            Ok(s) => s,
            Err(e) if e.kind() == berth_distribution::ErrorKind::NotFound => return Err(Progress::NotFound),
            Err(e) => return Err(Progress::Failed(e.to_string())),
        };
        let size = stream.size();
        let _ = progress.send(Progress::Open { size, written: 0 });
        // The disk writes run on one blocking thread while the next chunks arrive.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(32);
        let hasher = hasher_for(digest.algorithm()).map_err(|e| Progress::Failed(e.to_string()))?;
        let writes = progress.clone();
        let written_path = path.to_path_buf();
        let writer_task = tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
            let mut pos = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                writer.write_all_at(&chunk, pos).map_err(|e| format!("writing {}: {e}", written_path.display()))?;
                hasher.update(&chunk);
                pos += chunk.len() as u64;
                writes.send_modify(|p| {
                    if let Progress::Open { written, .. } = p {
                        *written = pos;
                    }
                });
            }
            writer.sync_all().map_err(|e| format!("fsync {}: {e}", written_path.display()))?;
            Ok::<_, String>((hasher.finish(), pos))
        });
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => {
                    if tx.send(bytes).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        drop(tx);
        let written = writer_task.await.map_err(|e| Progress::Failed(format!("blob writer failed: {e}")))?;
        if let Some(reason) = failure {
            return Err(Progress::Failed(reason));
        }
        let (actual, len) = written.map_err(Progress::Failed)?;
        if actual != *digest {
            return Err(Progress::Failed(format!("the upstream sent content with digest {actual} for {digest}")));
        }
        if size.is_some_and(|s| s != len) {
            return Err(Progress::Failed(format!("the upstream announced {} bytes and sent {len}", size.unwrap_or(0))));
        }
        let (s, n, d, p) = (storage.clone(), name.clone(), digest.clone(), path.to_path_buf());
        blocking(move || s.commit_blob_to(&p, &d, &n)).await.map_err(|e| Progress::Failed(e.to_string()))?;
        tracing::info!(repository = %name, %digest, size = len, "blob cached from upstream");
        Ok(len)
    }
}

/// What a manifest request to a mirror found.
pub(crate) enum Fetched {
    /// Storage holds the answer (fresh, revalidated, stale, or pushed here): read it the
    /// usual way.
    Unchanged,
    /// Just fetched and stored.
    Stored(Arc<CachedManifest>),
}

async fn is_stored(storage: &Arc<Storage>, name: &RepoName, reference: &Reference) -> Result<bool> {
    let (s, n, r) = (storage.clone(), name.clone(), reference.clone());
    match blocking(move || s.read_manifest(&n, &r)).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Holds a manifest flight; the table entry goes when nobody else waits for it.
struct FlightGuard<'a> {
    upstream: &'a Upstream,
    key: String,
    flight: Flight,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = poisoned(self.upstream.flights.lock());
        // Ours, the table's and the guard's own reference: nobody else is waiting.
        if Arc::strong_count(&self.flight) <= 3 {
            flights.remove(&self.key);
        }
    }
}

/// The body of a blob that is still arriving: follows the download and reads what is on
/// disk. The last byte is held back until the digest is verified, so a client never gets
/// all of a blob whose content turned out wrong; the body then ends with an error.
fn tail(fetch: Arc<Fetch>) -> Body {
    let stream = futures_util::stream::unfold((fetch, 0u64), |(fetch, offset)| async move {
        let mut progress = fetch.progress.clone();
        loop {
            let state = progress.borrow_and_update().clone();
            let (readable, done) = match &state {
                Progress::Open { written, .. } => (written.saturating_sub(1), false),
                Progress::Stored { size } => (*size, true),
                Progress::Failed(reason) => return Some((Err(std::io::Error::other(reason.clone())), (fetch, u64::MAX))),
                Progress::NotFound => return Some((Err(std::io::Error::other("the upstream has no such blob")), (fetch, u64::MAX))),
                Progress::Opening => (0, false),
            };
            if offset == u64::MAX || (done && offset >= readable) {
                return None;
            }
            if offset < readable {
                let len = (readable - offset).min(TAIL_READ as u64) as usize;
                let file = fetch.file.clone();
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; len];
                    let n = file.read_at(&mut buf, offset)?;
                    buf.truncate(n);
                    Ok::<_, std::io::Error>(buf)
                })
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
                return match read {
                    Ok(buf) if buf.is_empty() => Some((Err(std::io::Error::other("blob file ended early")), (fetch, u64::MAX))),
                    Ok(buf) => {
                        let next = offset + buf.len() as u64;
                        Some((Ok(Bytes::from(buf)), (fetch, next)))
                    }
                    Err(e) => Some((Err(e), (fetch, u64::MAX))),
                };
            }
            if progress.changed().await.is_err() {
                // The download task ended without a final state (it cannot, but be safe).
                let last = progress.borrow().clone();
                if !matches!(last, Progress::Stored { .. }) {
                    return Some((Err(std::io::Error::other("the blob download stopped")), (fetch, u64::MAX)));
                }
            }
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(namespace: &str) -> config::Mirror {
        config::Mirror {
            namespace: namespace.into(),
            upstream: "http://127.0.0.1:9".into(),
            username: None,
            password: None,
            manifest_ttl: Duration::from_secs(60),
            local: false,
            max_age: None,
        }
    }

    #[test]
    fn routing() {
        let m = Mirrors::new(&[mirror("docker.io"), mirror("ghcr.io"), mirror("localhost:5000")], Arc::new(Metrics::default())).unwrap();
        let r = |p: &str, ns: Option<&str>| m.route(p, ns).into_owned();
        // Docker: no namespace, Docker Hub.
        assert_eq!(r("/v2/library/busybox/manifests/1", None), "/v2/docker.io/library/busybox/manifests/1");
        // containerd: ?ns=.
        assert_eq!(r("/v2/org/app/manifests/1", Some("ghcr.io")), "/v2/ghcr.io/org/app/manifests/1");
        assert_eq!(r("/v2/library/x/blobs/sha256:0", Some("index.docker.io")), "/v2/docker.io/library/x/blobs/sha256:0");
        assert_eq!(r("/v2/org/app/manifests/1", Some("quay.io")), "/v2/org/app/manifests/1");
        // The first path component.
        assert_eq!(r("/v2/ghcr.io/org/app/manifests/1", None), "/v2/ghcr.io/org/app/manifests/1");
        assert_eq!(r("/v2/localhost:5000/app/manifests/1", None), "/v2/localhost__5000/app/manifests/1");
        assert_eq!(r("/v2/localhost__5000/app/blobs/uploads/x", Some("docker.io")), "/v2/localhost__5000/app/blobs/uploads/x");
        assert_eq!(r("/v2/", None), "/v2/");
        assert_eq!(r("/v2/_catalog", None), "/v2/_catalog");
        let name = RepoName::parse("localhost__5000/app").unwrap();
        assert_eq!(m.for_repository(&name).unwrap().config.namespace, "localhost:5000");
        assert_eq!(m.for_repository(&name).unwrap().upstream_path(&name), "app");
        assert!(m.for_repository(&RepoName::parse("other/app").unwrap()).is_none());
        let none = Mirrors::new(&[mirror("ghcr.io")], Arc::new(Metrics::default())).unwrap();
        assert_eq!(none.route("/v2/library/x/manifests/1", None), "/v2/library/x/manifests/1");
    }
}
