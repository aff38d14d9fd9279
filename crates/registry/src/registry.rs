//! The registry's operations over storage, upload sessions and the manifest cache,
//! independent of HTTP; mirrored repositories go through their upstream, and garbage
//! collection sweeps run from here.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use berth_store::Digest;
use bytes::Bytes;
use serde_json::Value;

use crate::config;
use crate::error::{Error, ErrorKind, Result};
use crate::gc::{self, SweepOptions};
use crate::hooks::{Access, Action, AllowAll, Event, Events, LogEvents, Object, Origin};
use crate::manifest::{self, MAX_MANIFEST_SIZE};
use crate::metrics::{CacheKind, Metrics};
use crate::mirror::{Fetched, Mirrors, Upstream};
use crate::names::{is_valid_tag, Reference, RepoName};
use crate::storage::Storage;
use crate::uploads::{hasher_for, Uploads};

/// A manifest ready to serve.
#[derive(Debug)]
pub struct CachedManifest {
    pub digest: Digest,
    pub media_type: String,
    pub body: Bytes,
}

/// What a manifest push stored.
#[derive(Debug)]
pub struct PushedManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
    pub media_type: String,
}

/// Manifests by `repository@reference`, so a GET or HEAD costs no disk access. Every write
/// to a repository bumps the generation and drops its entries; a reader that looked at
/// disk before a write cannot put the old answer back (its generation is stale).
struct ManifestCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<String, Arc<CachedManifest>>,
    bytes: usize,
    generation: u64,
}

/// Bounds of the manifest cache; past them it starts over.
const CACHE_BYTES: usize = 32 << 20;
const CACHE_ENTRIES: usize = 16_384;

fn cache_key(name: &RepoName, reference: &Reference) -> String {
    format!("{name}@{reference}")
}

impl ManifestCache {
    fn get(&self, key: &str) -> (Option<Arc<CachedManifest>>, u64) {
        match self.inner.lock() {
            Ok(c) => (c.entries.get(key).cloned(), c.generation),
            Err(_) => (None, 0),
        }
    }

    fn insert(&self, key: String, entry: Arc<CachedManifest>, seen_generation: u64) {
        let Ok(mut c) = self.inner.lock() else { return };
        if c.generation != seen_generation {
            return;
        }
        if c.bytes + entry.body.len() > CACHE_BYTES || c.entries.len() >= CACHE_ENTRIES {
            c.entries.clear();
            c.bytes = 0;
        }
        c.bytes += entry.body.len();
        if let Some(old) = c.entries.insert(key, entry) {
            c.bytes -= old.body.len();
        }
    }

    fn invalidate(&self, name: &RepoName) {
        let Ok(mut c) = self.inner.lock() else { return };
        c.generation += 1;
        let prefix = format!("{name}@");
        let mut freed = 0;
        c.entries.retain(|k, v| {
            let keep = !k.starts_with(&prefix);
            if !keep {
                freed += v.body.len();
            }
            keep
        });
        c.bytes -= freed;
    }
}

/// A registry over one storage root.
pub struct Registry {
    storage: Arc<Storage>,
    uploads: Uploads,
    cache: ManifestCache,
    access: Arc<dyn Access>,
    events: Arc<dyn Events>,
    metrics: Arc<Metrics>,
    mirrors: Mirrors,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("blocking task failed: {e}")))?
}

impl Registry {
    /// Opens the storage under `root`; upload sessions idle longer than `upload_expiry`
    /// are removed by [`Registry::expire_uploads`].
    pub fn open(root: &Path, upload_expiry: Duration) -> Result<Registry> {
        let storage = Arc::new(Storage::open(root)?);
        let uploads = Uploads::open(storage.clone(), upload_expiry)?;
        Ok(Registry {
            storage,
            uploads,
            cache: ManifestCache { inner: Mutex::new(CacheInner::default()) },
            access: Arc::new(AllowAll),
            events: Arc::new(LogEvents),
            metrics: Arc::new(Metrics::default()),
            mirrors: Mirrors::default(),
        })
    }

    /// Serves the namespaces of `mirrors` from their upstreams.
    pub fn with_mirrors(mut self, mirrors: &[config::Mirror]) -> Result<Registry> {
        self.mirrors = Mirrors::new(mirrors, self.metrics.clone())?;
        Ok(self)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The counters, for parts that outlive a borrow (webhook delivery tasks).
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn mirrors(&self) -> &Mirrors {
        &self.mirrors
    }

    /// The mirror holding repository `name`, if it is mirrored.
    pub fn mirror_for(&self, name: &RepoName) -> Option<&Arc<Upstream>> {
        self.mirrors.for_repository(name)
    }

    /// A manifest of a mirrored repository: from storage when fresh (or when the upstream
    /// cannot be reached), else from the upstream. Its use is recorded for eviction.
    pub async fn mirrored_manifest(&self, upstream: &Upstream, name: &RepoName, reference: &Reference) -> Result<Arc<CachedManifest>> {
        if let Reference::Digest(_) = reference {
            match self.manifest(name, reference).await {
                Ok(m) => {
                    self.metrics.cache_hit(CacheKind::Manifest);
                    upstream.record_manifest_use(&self.storage, name, &m.digest).await;
                    return Ok(m);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let stored = match upstream.manifest(&self.storage, name, reference).await? {
            Fetched::Unchanged => self.manifest(name, reference).await,
            Fetched::Stored(m) => {
                self.cache.invalidate(name);
                return Ok(m);
            }
        };
        let m = match stored {
            Ok(m) => m,
            // Evicted since the mirror looked at storage: fetched again (once).
            Err(e) if e.kind() == ErrorKind::NotFound => {
                upstream.forget_fresh(name, reference);
                match upstream.manifest(&self.storage, name, reference).await? {
                    Fetched::Unchanged => self.manifest(name, reference).await?,
                    Fetched::Stored(m) => {
                        self.cache.invalidate(name);
                        return Ok(m);
                    }
                }
            }
            Err(e) => return Err(e),
        };
        upstream.record_manifest_use(&self.storage, name, &m.digest).await;
        Ok(m)
    }

    /// A blob of a mirrored repository: stored, or streamed while it is fetched. The use
    /// of a stored one is recorded.
    pub async fn mirrored_blob(&self, upstream: &Arc<Upstream>, name: &RepoName, digest: &Digest) -> Result<crate::mirror::BlobSource> {
        let source = upstream.blob(&self.storage, name, digest).await?;
        if let crate::mirror::BlobSource::Stored = source {
            upstream.record_blob_use(&self.storage, digest).await;
        }
        Ok(source)
    }

    /// Runs one garbage collection sweep (see [`gc`]), evicting what the mirrors' `max_age`
    /// asks; safe while requests are served.
    pub async fn collect_garbage(&self, grace: Duration, dry_run: bool) -> Result<gc::Report> {
        let options = SweepOptions { grace, dry_run, keep_prefixes: self.mirrors.prefixes() };
        let evictions = self.mirrors.evictions();
        let storage = self.storage.clone();
        let report = blocking(move || gc::sweep_evicting(&storage, &options, &evictions)).await?;
        if !dry_run {
            use std::sync::atomic::Ordering::Relaxed;
            self.metrics.gc_runs.fetch_add(1, Relaxed);
            self.metrics.gc_manifests_deleted.fetch_add(report.manifests.len() as u64, Relaxed);
            self.metrics.mirror_evicted.fetch_add(report.evicted() as u64, Relaxed);
            self.metrics.gc_blobs_deleted.fetch_add(report.blobs.len() as u64, Relaxed);
            self.metrics.gc_bytes_freed.fetch_add(report.bytes, Relaxed);
            for m in &report.manifests {
                if let Ok(name) = RepoName::parse(&m.repository) {
                    self.cache.invalidate(&name);
                    if m.unused_secs.is_some() {
                        if let Some(upstream) = self.mirrors.for_repository(&name) {
                            upstream.forget_repository(&name);
                        }
                    }
                }
            }
        }
        Ok(report)
    }

    /// Replaces the access control (default: allow everything).
    pub fn with_access(mut self, access: Arc<dyn Access>) -> Registry {
        self.access = access;
        self
    }

    /// Replaces the event sink (default: the debug log).
    pub fn with_events(mut self, events: Arc<dyn Events>) -> Registry {
        self.events = events;
        self
    }

    pub fn access(&self) -> &dyn Access {
        self.access.as_ref()
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Reports an event to the event sink.
    #[allow(clippy::too_many_arguments)]
    pub fn emit(&self, origin: &Origin, action: Action, object: Object, name: &RepoName, digest: &Digest, media_type: &str, size: u64, tag: Option<String>) {
        self.events.emit(Event {
            action,
            object,
            repository: name.to_string(),
            digest: digest.to_string(),
            media_type: media_type.to_string(),
            size,
            tag,
            time: SystemTime::now(),
            actor: origin.actor.clone(),
            request: origin.request.clone(),
        });
    }

    /// The size of a blob visible in the repository.
    pub async fn blob_size(&self, name: &RepoName, digest: &Digest) -> Result<u64> {
        let (s, n, d) = (self.storage.clone(), name.clone(), digest.clone());
        blocking(move || s.blob_size(&n, &d)).await
    }

    /// Opens a blob visible in the repository and hands the file and its size to `then`,
    /// on the same blocking thread (which can read or map it without a second hop).
    pub async fn open_blob<T: Send + 'static>(
        &self,
        name: &RepoName,
        digest: &Digest,
        then: impl FnOnce(std::fs::File, u64) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (s, n, d) = (self.storage.clone(), name.clone(), digest.clone());
        blocking(move || {
            let (file, size) = s.open_blob(&n, &d)?;
            then(file, size)
        })
        .await
    }

    /// Removes a blob from the repository (its content stays for other repositories).
    pub async fn delete_blob(&self, name: &RepoName, digest: &Digest, origin: &Origin) -> Result<()> {
        let (s, n, d) = (self.storage.clone(), name.clone(), digest.clone());
        blocking(move || s.unlink_blob(&n, &d)).await?;
        self.emit(origin, Action::Delete, Object::Blob, name, digest, "application/octet-stream", 0, None);
        Ok(())
    }

    /// Makes a blob visible in `name` without an upload, when repository `from` has it.
    /// Returns whether it did.
    pub async fn mount_blob(&self, name: &RepoName, digest: &Digest, from: &RepoName, origin: &Origin) -> Result<bool> {
        let (s, n, d, f) = (self.storage.clone(), name.clone(), digest.clone(), from.clone());
        let mounted = blocking(move || {
            let available = s.has_blob_link(&f, &d) && s.blob_exists(&d);
            if available {
                s.link_blob(&n, &d)?;
            }
            Ok(available)
        })
        .await?;
        if mounted {
            self.emit(origin, Action::Push, Object::Blob, name, digest, "application/octet-stream", 0, None);
        }
        Ok(mounted)
    }

    /// The repositories in which a blob is visible, in lexical order.
    pub async fn repositories_with_blob(&self, digest: &Digest) -> Result<Vec<String>> {
        let (s, d) = (self.storage.clone(), digest.clone());
        blocking(move || {
            if !s.blob_exists(&d) {
                return Ok(Vec::new());
            }
            let mut holders = s.repositories()?;
            holders.retain(|n| RepoName::parse(n).is_ok_and(|n| s.has_blob_link(&n, &d)));
            Ok(holders)
        })
        .await
    }

    /// Starts an upload session hashing with `algorithm` (sha256 or sha512).
    pub async fn start_upload(&self, name: &RepoName, algorithm: &str) -> Result<String> {
        self.uploads.create(name, algorithm).await
    }

    /// How many bytes an upload has received.
    pub async fn upload_offset(&self, name: &RepoName, id: &str) -> Result<u64> {
        self.uploads.offset(name, id).await
    }

    /// Appends a chunk to an upload; returns the new offset.
    pub async fn append_upload(&self, name: &RepoName, id: &str, range: Option<(u64, u64)>, body: Body) -> Result<u64> {
        self.uploads.append(name, id, range, body).await
    }

    /// Finishes an upload as the blob `digest`.
    pub async fn complete_upload(&self, name: &RepoName, id: &str, range: Option<(u64, u64)>, body: Body, digest: &Digest, origin: &Origin) -> Result<()> {
        let size = self.uploads.complete(name, id, range, body, digest).await?;
        self.emit(origin, Action::Push, Object::Blob, name, digest, "application/octet-stream", size, None);
        Ok(())
    }

    /// Pushes a blob in one request (`POST ...?digest=`); nothing stays behind on failure.
    pub async fn upload_whole(&self, name: &RepoName, body: Body, digest: &Digest, origin: &Origin) -> Result<()> {
        let id = self.uploads.create(name, digest.algorithm()).await?;
        let result = self.complete_upload(name, &id, None, body, digest, origin).await;
        if result.is_err() {
            let _ = self.uploads.cancel(name, &id).await;
        }
        result
    }

    /// Cancels an upload.
    pub async fn cancel_upload(&self, name: &RepoName, id: &str) -> Result<()> {
        self.uploads.cancel(name, id).await
    }

    /// Removes upload sessions past their expiry; returns how many.
    pub async fn expire_uploads(&self) -> Result<usize> {
        self.uploads.expire().await
    }

    /// A manifest by tag or digest, from the cache when possible.
    pub async fn manifest(&self, name: &RepoName, reference: &Reference) -> Result<Arc<CachedManifest>> {
        let key = cache_key(name, reference);
        let (hit, generation) = self.cache.get(&key);
        if let Some(entry) = hit {
            return Ok(entry);
        }
        let (s, n, r) = (self.storage.clone(), name.clone(), reference.clone());
        let stored = blocking(move || s.read_manifest(&n, &r)).await?;
        let entry = Arc::new(CachedManifest {
            digest: stored.digest,
            media_type: stored.media_type,
            body: Bytes::from(stored.body),
        });
        self.cache.insert(key, entry.clone(), generation);
        Ok(entry)
    }

    /// Pushes a manifest under `reference` (a tag, or the digest the body must have) and
    /// also tags it with `extra_tags`.
    pub async fn put_manifest(&self, name: &RepoName, reference: &Reference, content_type: Option<&str>, body: Bytes, extra_tags: &[String], origin: &Origin) -> Result<PushedManifest> {
        if body.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(Error::ManifestTooLarge { limit: MAX_MANIFEST_SIZE });
        }
        for tag in extra_tags {
            if !is_valid_tag(tag) {
                return Err(Error::TagInvalid(tag.clone()));
            }
        }
        let algorithm = match reference {
            Reference::Digest(d) => d.algorithm(),
            Reference::Tag(_) => "sha256",
        };
        let mut hasher = hasher_for(algorithm)?;
        hasher.update(&body);
        let digest = hasher.finish();
        if let Reference::Digest(expected) = reference {
            if *expected != digest {
                return Err(Error::DigestMismatch { expected: expected.to_string(), actual: digest.to_string() });
            }
        }
        let parsed = manifest::parse(content_type, &body)?;
        let mut tags: Vec<String> = extra_tags.to_vec();
        if let Reference::Tag(t) = reference {
            tags.insert(0, t.clone());
        }
        let mirrored = self.mirrors.for_repository(name).is_some();
        let (s, n, d, p, b, t) = (self.storage.clone(), name.clone(), digest.clone(), parsed.clone(), body.clone(), tags.clone());
        let stored = blocking(move || {
            if mirrored {
                // Tags pushed here stop following the upstream.
                s.unmark_mirrored_tags(&n, &t)?;
            }
            s.put_manifest(&n, &d, &p, &b, &t)
        })
        .await;
        self.cache.invalidate(name);
        stored?;
        let size = body.len() as u64;
        if tags.is_empty() {
            self.emit(origin, Action::Push, Object::Manifest, name, &digest, &parsed.media_type, size, None);
        }
        for tag in tags {
            self.emit(origin, Action::Push, Object::Manifest, name, &digest, &parsed.media_type, size, Some(tag));
        }
        Ok(PushedManifest { digest, subject: parsed.subject, media_type: parsed.media_type })
    }

    /// Deletes a tag, or a manifest (with its tags) by digest.
    pub async fn delete_manifest(&self, name: &RepoName, reference: &Reference, origin: &Origin) -> Result<()> {
        let (s, n, r) = (self.storage.clone(), name.clone(), reference.clone());
        let digest = blocking(move || match &r {
            Reference::Tag(t) => {
                let digest = s.resolve_tag(&n, t)?;
                s.delete_tag(&n, t)?;
                Ok(digest)
            }
            Reference::Digest(d) => s.delete_manifest(&n, d).map(|()| Some(d.clone())),
        })
        .await;
        self.cache.invalidate(name);
        if let Some(digest) = digest? {
            let tag = match reference {
                Reference::Tag(t) => Some(t.clone()),
                Reference::Digest(_) => None,
            };
            self.emit(origin, Action::Delete, Object::Manifest, name, &digest, "", 0, tag);
        }
        Ok(())
    }

    /// The repository's tags in lexical order.
    pub async fn tags(&self, name: &RepoName) -> Result<Vec<String>> {
        let (s, n) = (self.storage.clone(), name.clone());
        blocking(move || s.tags(&n)).await
    }

    /// Every repository name in lexical order.
    pub async fn repositories(&self) -> Result<Vec<String>> {
        let s = self.storage.clone();
        blocking(move || s.repositories()).await
    }

    /// Descriptors of the manifests referring to `subject`, optionally only those of one
    /// artifact type.
    pub async fn referrers(&self, name: &RepoName, subject: &Digest, artifact_type: Option<&str>) -> Result<Vec<Value>> {
        let (s, n, d) = (self.storage.clone(), name.clone(), subject.clone());
        let mut all = blocking(move || s.referrers(&n, &d)).await?;
        if let Some(want) = artifact_type {
            all.retain(|d| d.get("artifactType").and_then(Value::as_str) == Some(want));
        }
        Ok(all)
    }
}
