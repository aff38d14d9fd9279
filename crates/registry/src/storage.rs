//! The filesystem backend. Blobs (layers, configs and manifests alike) live once under
//! `blobs/<algorithm>/<hex>`, shared by every repository; a repository holds only links:
//!
//! ```text
//! repositories/<name>/_layers/<alg>/<hex>            blob visible in the repository (empty file)
//! repositories/<name>/_manifests/<alg>/<hex>         manifest in the repository (holds its media type)
//! repositories/<name>/_tags/<tag>                    tag -> manifest digest
//! repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>   subject -> referring manifest (empty file)
//! repositories/<name>/_mirrored/<tag>               the tag was fetched from a mirror's upstream
//! repositories/<name>/_cached/<alg>/<hex>            the manifest was fetched from a mirror's upstream;
//!                                                    its time is the manifest's last use
//! uploads/<id>/                                      upload sessions (see `uploads`)
//! tmp/                                               temporary files, renamed into place
//! lock                                               held (flock) by the one process serving the root
//! ```
//!
//! Names and digests are validated before they reach a path, and repository path components
//! never begin with `_`, so the link directories cannot collide with nested repositories.
//! All functions here block; callers run them on the blocking pool.
//!
//! Writes that change references keep the garbage collector's counts ([`Refs`]) in step
//! and follow its lock protocol (see `gc`).

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use berth_store::Digest;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::gc::Refs;
use crate::manifest::{self, Manifest, Target};
use crate::names::{is_valid_tag, parse_digest, Reference, RepoName};

const LAYERS: &str = "_layers";
const MANIFESTS: &str = "_manifests";
const TAGS: &str = "_tags";
const REFERRERS: &str = "_referrers";
const MIRRORED: &str = "_mirrored";
const CACHED: &str = "_cached";

/// A manifest as stored: its digest, the media type it was pushed with, and its bytes.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub struct Storage {
    root: PathBuf,
    blobs: PathBuf,
    repos: PathBuf,
    uploads: PathBuf,
    tmp: PathBuf,
    /// Keeps a second registry process off this root while this one lives.
    _lock: File,
    refs: Refs,
    blob_count: AtomicU64,
    blob_bytes: AtomicU64,
}

/// Sets a file's modification time to now: the garbage collector's grace period counts
/// from it. A file that is gone is left alone (the caller checks existence under the lock).
fn touch(path: &Path) {
    if let Ok(f) = File::open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

impl Storage {
    /// Opens (creating as needed) the storage under `root` and removes temporary files a
    /// crash left behind.
    pub fn open(root: &Path) -> Result<Storage> {
        fsutil::ensure_dir(root)?;
        let lock_path = root.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io("open", &lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|e| {
            Error::Config(format!("storage root {} is in use by another process ({e})", root.display()))
        })?;
        let storage = Storage {
            root: root.to_path_buf(),
            blobs: root.join("blobs"),
            repos: root.join("repositories"),
            uploads: root.join("uploads"),
            tmp: root.join("tmp"),
            _lock: lock,
            refs: Refs::default(),
            blob_count: AtomicU64::new(0),
            blob_bytes: AtomicU64::new(0),
        };
        for dir in [
            storage.blobs.join("sha256"),
            storage.blobs.join("sha512"),
            storage.repos.clone(),
            storage.uploads.clone(),
            storage.tmp.clone(),
        ] {
            fsutil::ensure_dir(&dir)?;
        }
        // Temporary files were never visible under their final names: whatever is here
        // belongs to writes that did not finish.
        let entries = fs::read_dir(&storage.tmp).map_err(Error::io("read directory", &storage.tmp))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        }
        storage.count_references()?;
        Ok(storage)
    }

    /// Rebuilds the reference counts from the manifests and tags on disk, and counts the
    /// stored blobs.
    fn count_references(&self) -> Result<()> {
        let mut count = 0;
        let mut bytes = 0;
        self.scan_blobs(|digest| {
            if let Some((size, _)) = self.blob_meta(&digest) {
                count += 1;
                bytes += size;
            }
        })?;
        self.blob_count.store(count, Ordering::Relaxed);
        self.blob_bytes.store(bytes, Ordering::Relaxed);
        for repo in self.repositories()? {
            let Ok(name) = RepoName::parse(&repo) else { continue };
            for alg in ["sha256", "sha512"] {
                let dir = self.repo_dir(&name).join(MANIFESTS).join(alg);
                let entries = match fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io("read directory", dir)(e)),
                };
                for entry in entries.flatten() {
                    let Some(hex) = entry.file_name().to_str().map(str::to_string) else { continue };
                    let Ok(digest) = parse_digest(&format!("{alg}:{hex}")) else { continue };
                    match self.stored_manifest(&name, &digest) {
                        Ok(Some(m)) => self.refs.add_manifest(&name, &digest, &m),
                        Ok(None) => {}
                        Err(e) => {
                            // What it references is unknown: no blob may be swept.
                            tracing::warn!(repository = %name, %digest, error = %e, "unreadable manifest; blobs will not be garbage collected");
                            self.refs.references_unknown();
                            let empty = Manifest { media_type: String::new(), targets: Vec::new(), subject: None, artifact_type: None, annotations: None };
                            self.refs.add_manifest(&name, &digest, &empty);
                        }
                    }
                }
            }
            for tag in self.tags(&name)? {
                if let Ok(Some(digest)) = self.resolve_tag(&name, &tag) {
                    self.refs.tag(&name, None, Some(&digest));
                }
            }
        }
        Ok(())
    }

    /// The reference counts and the garbage collector's locks.
    pub fn refs(&self) -> &Refs {
        &self.refs
    }

    /// How many blobs are stored and their total size.
    pub fn blob_stats(&self) -> (u64, u64) {
        (self.blob_count.load(Ordering::Relaxed), self.blob_bytes.load(Ordering::Relaxed))
    }

    /// Calls `f` with the digest of every stored blob.
    pub fn scan_blobs(&self, mut f: impl FnMut(Digest)) -> Result<()> {
        for alg in ["sha256", "sha512"] {
            let dir = self.blobs.join(alg);
            let entries = fs::read_dir(&dir).map_err(Error::io("read directory", &dir))?;
            for entry in entries.flatten() {
                let Some(hex) = entry.file_name().to_str().map(str::to_string) else { continue };
                if let Ok(digest) = parse_digest(&format!("{alg}:{hex}")) {
                    f(digest);
                }
            }
        }
        Ok(())
    }

    /// The size and modification time of a stored blob.
    pub fn blob_meta(&self, digest: &Digest) -> Option<(u64, SystemTime)> {
        let meta = fs::metadata(self.blob_path(digest)).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    }

    /// When the `_manifests` link of a manifest was last written.
    pub fn manifest_link_time(&self, name: &RepoName, digest: &Digest) -> Option<SystemTime> {
        fs::metadata(self.link(name, MANIFESTS, digest)).and_then(|m| m.modified()).ok()
    }

    /// A manifest of the repository, parsed; `None` when it is not stored there.
    pub fn stored_manifest(&self, name: &RepoName, digest: &Digest) -> Result<Option<Manifest>> {
        let Some(media_type) = self.manifest_media_type(name, digest)? else { return Ok(None) };
        let path = self.blob_path(digest);
        let body = fs::read(&path).map_err(Error::io("read", &path))?;
        manifest::parse(Some(&media_type), &body).map(Some)
    }

    /// Deletes an unwanted manifest from the repository: its referrer link, then its
    /// manifest link. The caller holds the repository lock and the exclusive gate, and
    /// has checked that nothing wants it. Returns whether it was there.
    pub(crate) fn sweep_manifest(&self, name: &RepoName, digest: &Digest) -> Result<bool> {
        let parsed = self.stored_manifest(name, digest).ok().flatten();
        if self.manifest_media_type(name, digest)?.is_none() {
            return Ok(false);
        }
        if let Some(subject) = parsed.as_ref().and_then(|m| m.subject.as_ref()) {
            let link = self.referrer_link(name, subject, digest);
            fsutil::remove_durable(&link)?;
            if let Some(dir) = link.parent() {
                fsutil::prune_empty_dirs(dir, &self.repo_dir(name).join(REFERRERS));
            }
        }
        fsutil::remove_durable(&self.link(name, MANIFESTS, digest))?;
        self.refs.remove_manifest(name, digest, parsed.as_ref());
        Ok(true)
    }

    /// Deletes a blob's content. The caller holds the exclusive gate and has checked that
    /// nothing references it. Returns whether it was there.
    pub(crate) fn remove_blob(&self, digest: &Digest, size: u64) -> Result<bool> {
        let removed = fsutil::remove_durable(&self.blob_path(digest))?;
        if removed {
            self.blob_count.fetch_sub(1, Ordering::Relaxed);
            self.blob_bytes.fetch_sub(size, Ordering::Relaxed);
        }
        Ok(removed)
    }

    /// Removes the `_layers` links of deleted blobs from every repository, holding the
    /// guard `lock` gives while looking at each repository.
    pub(crate) fn unlink_missing_blobs<G>(&self, digests: &[Digest], lock: impl Fn() -> G) -> Result<()> {
        for repo in self.repositories()? {
            let Ok(name) = RepoName::parse(&repo) else { continue };
            let _guard = lock();
            for digest in digests {
                let link = self.link(&name, LAYERS, digest);
                if !self.blob_exists(digest) && fsutil::exists(&link) {
                    fsutil::remove_durable(&link)?;
                }
            }
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    pub fn uploads_dir(&self) -> &Path {
        &self.uploads
    }

    /// Where the content of `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.algorithm()).join(digest.hex())
    }

    fn repo_dir(&self, name: &RepoName) -> PathBuf {
        self.repos.join(name.as_str())
    }

    fn link(&self, name: &RepoName, kind: &str, digest: &Digest) -> PathBuf {
        self.repo_dir(name).join(kind).join(digest.algorithm()).join(digest.hex())
    }

    fn tag_path(&self, name: &RepoName, tag: &str) -> PathBuf {
        self.repo_dir(name).join(TAGS).join(tag)
    }

    fn referrer_link(&self, name: &RepoName, subject: &Digest, referrer: &Digest) -> PathBuf {
        self.referrers_dir(name, subject).join(format!("{}-{}", referrer.algorithm(), referrer.hex()))
    }

    fn referrers_dir(&self, name: &RepoName, subject: &Digest) -> PathBuf {
        self.repo_dir(name).join(REFERRERS).join(subject.algorithm()).join(subject.hex())
    }

    /// Whether the repository has ever received a blob, manifest or tag.
    pub fn repo_exists(&self, name: &RepoName) -> bool {
        let dir = self.repo_dir(name);
        [LAYERS, MANIFESTS, TAGS].iter().any(|kind| dir.join(kind).is_dir())
    }

    /// Whether the content of `digest` is stored (in any repository).
    pub fn blob_exists(&self, digest: &Digest) -> bool {
        fsutil::exists(&self.blob_path(digest))
    }

    /// The size of a blob visible in the repository.
    pub fn blob_size(&self, name: &RepoName, digest: &Digest) -> Result<u64> {
        self.check_blob_link(name, digest)?;
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(blob_unknown(name, digest)),
            Err(e) => Err(Error::io("stat", path)(e)),
        }
    }

    /// Opens a blob visible in the repository; returns the file and its size.
    pub fn open_blob(&self, name: &RepoName, digest: &Digest) -> Result<(File, u64)> {
        self.check_blob_link(name, digest)?;
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(blob_unknown(name, digest)),
            Err(e) => return Err(Error::io("open", path)(e)),
        };
        let size = file.metadata().map_err(Error::io("stat", &path))?.len();
        Ok((file, size))
    }

    fn check_blob_link(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        if fsutil::exists(&self.link(name, LAYERS, digest)) {
            Ok(())
        } else {
            Err(blob_unknown(name, digest))
        }
    }

    /// Whether a blob is visible in the repository.
    pub fn has_blob_link(&self, name: &RepoName, digest: &Digest) -> bool {
        fsutil::exists(&self.link(name, LAYERS, digest))
    }

    /// Makes a stored blob visible in the repository (after a push or a mount). The
    /// blob's time is renewed: a manifest referencing it has the garbage collector's grace
    /// period to arrive.
    pub fn link_blob(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        let _gate = self.refs.shared();
        self.link_blob_locked(name, digest)
    }

    fn link_blob_locked(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        let blob = self.blob_path(digest);
        if !fsutil::exists(&blob) {
            return Err(blob_unknown(name, digest));
        }
        touch(&blob);
        let link = self.link(name, LAYERS, digest);
        if fsutil::exists(&link) {
            return Ok(());
        }
        fsutil::write_atomic(&self.tmp, &link, b"")
    }

    /// Removes a blob from the repository; the content stays for other repositories.
    pub fn unlink_blob(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        let link = self.link(name, LAYERS, digest);
        if fsutil::remove_durable(&link)? {
            Ok(())
        } else {
            Err(blob_unknown(name, digest))
        }
    }

    /// Moves a verified, fsynced upload into the blob store. A blob that is already
    /// present is kept (same digest, same bytes) and the upload is dropped.
    pub fn commit_blob(&self, data: &Path, digest: &Digest) -> Result<()> {
        let _gate = self.refs.shared();
        self.commit_blob_locked(data, digest)
    }

    /// Commits an upload and makes it visible in the repository, in one step as far as
    /// the garbage collector is concerned.
    pub fn commit_blob_to(&self, data: &Path, digest: &Digest, name: &RepoName) -> Result<()> {
        let _gate = self.refs.shared();
        self.commit_blob_locked(data, digest)?;
        self.link_blob_locked(name, digest)
    }

    fn commit_blob_locked(&self, data: &Path, digest: &Digest) -> Result<()> {
        let target = self.blob_path(digest);
        if fsutil::exists(&target) {
            let _ = fs::remove_file(data);
            touch(&target);
            return Ok(());
        }
        let size = fs::metadata(data).map(|m| m.len()).unwrap_or(0);
        // The data file's time is its last write, possibly long ago for a resumed upload.
        touch(data);
        fsutil::rename_durable(data, &target)?;
        self.blob_count.fetch_add(1, Ordering::Relaxed);
        self.blob_bytes.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    /// The media type of a manifest in the repository, if it is there.
    pub fn manifest_media_type(&self, name: &RepoName, digest: &Digest) -> Result<Option<String>> {
        let link = self.link(name, MANIFESTS, digest);
        match fs::read_to_string(&link) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", link)(e)),
        }
    }

    /// The digest a tag points at.
    pub fn resolve_tag(&self, name: &RepoName, tag: &str) -> Result<Option<Digest>> {
        let path = self.tag_path(name, tag);
        match fs::read_to_string(&path) {
            Ok(text) => parse_digest(text.trim())
                .map(Some)
                .map_err(|e| Error::Internal(format!("tag file {} is damaged: {e}", path.display()))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path)(e)),
        }
    }

    /// Reads a manifest by tag or digest.
    pub fn read_manifest(&self, name: &RepoName, reference: &Reference) -> Result<StoredManifest> {
        let unknown = || {
            if self.repo_exists(name) {
                Error::ManifestUnknown { repository: name.to_string(), reference: reference.to_string() }
            } else {
                Error::NameUnknown(name.to_string())
            }
        };
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => self.resolve_tag(name, t)?.ok_or_else(unknown)?,
        };
        let media_type = self.manifest_media_type(name, &digest)?.ok_or_else(unknown)?;
        let path = self.blob_path(&digest);
        let body = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(unknown()),
            Err(e) => return Err(Error::io("read", path)(e)),
        };
        Ok(StoredManifest { digest, media_type, body })
    }

    /// Stores a parsed and digest-checked manifest, then points `tags` at it. Everything it
    /// references must already be in the repository, except its subject.
    pub fn put_manifest(&self, name: &RepoName, digest: &Digest, manifest: &Manifest, body: &[u8], tags: &[String]) -> Result<()> {
        let _repo = self.refs.repository(name.as_str());
        let _gate = self.refs.shared();
        self.check_targets(name, manifest)?;
        // Pushed here, the manifest exists nowhere else: never evicted as cached content.
        fsutil::remove_durable(&self.cached_mark(name, digest))?;
        self.store_manifest(name, digest, manifest, body, tags)
    }

    /// Stores a manifest fetched from a mirror's upstream: what it references arrives
    /// later, on demand. `tag` is marked as mirrored, and the manifest as cached (its use
    /// recorded now) unless it was pushed here; both marks are written before what they
    /// mark, so a crash never leaves mirrored content that looks pushed.
    pub fn put_mirrored_manifest(&self, name: &RepoName, digest: &Digest, manifest: &Manifest, body: &[u8], tag: Option<&str>) -> Result<()> {
        let _repo = self.refs.repository(name.as_str());
        let _gate = self.refs.shared();
        let tags: Vec<String> = tag.map(str::to_string).into_iter().collect();
        let cached = self.cached_mark(name, digest);
        if fsutil::exists(&cached) {
            touch(&cached);
        } else if self.manifest_media_type(name, digest)?.is_none() {
            fsutil::write_atomic(&self.tmp, &cached, b"")?;
        }
        if let Some(tag) = tag {
            fsutil::write_atomic(&self.tmp, &self.mirror_mark(name, tag), b"")?;
        }
        self.store_manifest(name, digest, manifest, body, &tags)
    }

    fn mirror_mark(&self, name: &RepoName, tag: &str) -> PathBuf {
        self.repo_dir(name).join(MIRRORED).join(tag)
    }

    fn cached_mark(&self, name: &RepoName, digest: &Digest) -> PathBuf {
        self.link(name, CACHED, digest)
    }

    /// Records a use of a manifest cached from a mirror's upstream (its mark's time). With
    /// `mark_unmarked` (a namespace holding only upstream content) a stored manifest
    /// without a mark, cached before marks existed, gets one; otherwise such a manifest
    /// was pushed here and is left alone.
    pub fn record_manifest_use(&self, name: &RepoName, digest: &Digest, mark_unmarked: bool) -> Result<()> {
        let mark = self.cached_mark(name, digest);
        if fsutil::exists(&mark) {
            touch(&mark);
            return Ok(());
        }
        if !mark_unmarked {
            return Ok(());
        }
        // Under the repository lock, so the sweep cannot evict it in between and leave a
        // mark without its manifest.
        let _repo = self.refs.repository(name.as_str());
        if self.manifest_media_type(name, digest)?.is_some() {
            fsutil::write_atomic(&self.tmp, &mark, b"")?;
        }
        Ok(())
    }

    /// Records a use of a stored blob: its time, from which the garbage collector's grace
    /// period counts once nothing references it.
    pub fn record_blob_use(&self, digest: &Digest) {
        touch(&self.blob_path(digest));
    }

    /// When a manifest cached from a mirror's upstream was last used: its mark's time,
    /// else (`all_cached`: the namespace holds only upstream content) when it was stored.
    /// `None` for a manifest pushed here, or one that is not stored.
    pub fn manifest_last_use(&self, name: &RepoName, digest: &Digest, all_cached: bool) -> Option<SystemTime> {
        let time = |path: PathBuf| fs::metadata(path).and_then(|m| m.modified()).ok();
        time(self.cached_mark(name, digest)).or_else(|| if all_cached { self.manifest_link_time(name, digest) } else { None })
    }

    /// Whether a tag pushed here (not fetched from a mirror's upstream) points at `digest`.
    pub fn has_pushed_tag(&self, name: &RepoName, digest: &Digest) -> Result<bool> {
        for tag in self.tags_of(name, digest)? {
            if !fsutil::exists(&self.mirror_mark(name, &tag)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The tags pointing at `digest`.
    pub fn tags_of(&self, name: &RepoName, digest: &Digest) -> Result<Vec<String>> {
        let mut tags = match self.tags(name) {
            Ok(t) => t,
            Err(Error::NameUnknown(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        tags.retain(|t| self.resolve_tag(name, t).ok().flatten().as_ref() == Some(digest));
        Ok(tags)
    }

    /// Evicts a manifest cached from a mirror's upstream: its tags, then what
    /// [`Storage::delete_manifest`] removes, then its mark (last: a crash midway leaves a
    /// marked manifest that the next sweep evicts, never one that looks pushed). The
    /// caller holds the repository lock and the gate, and has checked that it is unused.
    /// Returns whether it was there.
    pub(crate) fn evict_manifest(&self, name: &RepoName, digest: &Digest) -> Result<bool> {
        let removed = self.remove_manifest_locked(name, digest)?;
        fsutil::remove_durable(&self.cached_mark(name, digest))?;
        Ok(removed)
    }

    /// For a tag fetched from a mirror's upstream, when it was last validated there;
    /// `None` for a tag pushed here or one that does not exist.
    pub fn mirrored_tag_time(&self, name: &RepoName, tag: &str) -> Option<SystemTime> {
        if !fsutil::exists(&self.tag_path(name, tag)) {
            return None;
        }
        fs::metadata(self.mirror_mark(name, tag)).and_then(|m| m.modified()).ok()
    }

    /// Records that a mirrored tag was found unchanged upstream just now.
    pub fn renew_mirrored_tag(&self, name: &RepoName, tag: &str) {
        touch(&self.mirror_mark(name, tag));
    }

    fn check_targets(&self, name: &RepoName, manifest: &Manifest) -> Result<()> {
        for target in &manifest.targets {
            let present = match target {
                Target::Blob(d) => {
                    (self.has_blob_link(name, d) && self.blob_exists(d)) || self.manifest_media_type(name, d)?.is_some()
                }
                Target::Manifest(d) => self.manifest_media_type(name, d)?.is_some() && self.blob_exists(d),
            };
            if !present {
                let (Target::Blob(d) | Target::Manifest(d)) = target;
                return Err(Error::ManifestBlobUnknown { repository: name.to_string(), digest: d.to_string() });
            }
        }
        Ok(())
    }

    /// Writes a manifest and its tags; the caller holds the repository lock and the gate.
    fn store_manifest(&self, name: &RepoName, digest: &Digest, manifest: &Manifest, body: &[u8], tags: &[String]) -> Result<()> {
        // Content first, then the links that make it visible: a crash in between leaves
        // only unreferenced content behind.
        let blob = self.blob_path(digest);
        if !fsutil::exists(&blob) {
            fsutil::write_atomic(&self.tmp, &blob, body)?;
            self.blob_count.fetch_add(1, Ordering::Relaxed);
            self.blob_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        }
        let link = self.link(name, MANIFESTS, digest);
        if self.manifest_media_type(name, digest)?.as_deref() != Some(manifest.media_type.as_str()) {
            fsutil::write_atomic(&self.tmp, &link, manifest.media_type.as_bytes())?;
        } else {
            // Pushed again: the grace period for an untagged manifest starts over.
            touch(&link);
        }
        self.refs.add_manifest(name, digest, manifest);
        if let Some(subject) = &manifest.subject {
            let link = self.referrer_link(name, subject, digest);
            if !fsutil::exists(&link) {
                fsutil::write_atomic(&self.tmp, &link, b"")?;
            }
        }
        for tag in tags {
            let old = self.resolve_tag(name, tag).ok().flatten();
            fsutil::write_atomic(&self.tmp, &self.tag_path(name, tag), digest.as_str().as_bytes())?;
            self.refs.tag(name, old.as_ref(), Some(digest));
        }
        Ok(())
    }

    /// A tag pushed here is no longer a mirrored one.
    pub fn unmark_mirrored_tags(&self, name: &RepoName, tags: &[String]) -> Result<()> {
        for tag in tags {
            fsutil::remove_durable(&self.mirror_mark(name, tag))?;
        }
        Ok(())
    }

    /// Removes a tag; the manifest stays.
    pub fn delete_tag(&self, name: &RepoName, tag: &str) -> Result<()> {
        let _repo = self.refs.repository(name.as_str());
        let _gate = self.refs.shared();
        let old = self.resolve_tag(name, tag).ok().flatten();
        if fsutil::remove_durable(&self.tag_path(name, tag))? {
            self.refs.tag(name, old.as_ref(), None);
            let _ = fsutil::remove_durable(&self.mirror_mark(name, tag));
            Ok(())
        } else {
            Err(Error::ManifestUnknown { repository: name.to_string(), reference: tag.to_string() })
        }
    }

    /// Removes a manifest from the repository with the tags that point at it.
    pub fn delete_manifest(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        let _repo = self.refs.repository(name.as_str());
        let _gate = self.refs.shared();
        if !self.remove_manifest_locked(name, digest)? {
            return Err(Error::ManifestUnknown { repository: name.to_string(), reference: digest.to_string() });
        }
        fsutil::remove_durable(&self.cached_mark(name, digest))?;
        Ok(())
    }

    /// Removes a manifest and the tags pointing at it; the caller holds the repository
    /// lock and the gate. Returns whether it was there.
    fn remove_manifest_locked(&self, name: &RepoName, digest: &Digest) -> Result<bool> {
        let Some(media_type) = self.manifest_media_type(name, digest)? else { return Ok(false) };
        // Tags first: a crash midway leaves an untagged manifest, never a dangling tag.
        for tag in self.tags(name)? {
            if self.resolve_tag(name, &tag).ok().flatten().as_ref() == Some(digest) {
                fsutil::remove_durable(&self.tag_path(name, &tag))?;
                self.refs.tag(name, Some(digest), None);
                let _ = fsutil::remove_durable(&self.mirror_mark(name, &tag));
            }
        }
        let parsed = fs::read(self.blob_path(digest)).ok().and_then(|body| manifest::parse(Some(&media_type), &body).ok());
        if let Some(subject) = parsed.as_ref().and_then(|m| m.subject.as_ref()) {
            let link = self.referrer_link(name, subject, digest);
            fsutil::remove_durable(&link)?;
            if let Some(dir) = link.parent() {
                fsutil::prune_empty_dirs(dir, &self.repo_dir(name).join(REFERRERS));
            }
        }
        fsutil::remove_durable(&self.link(name, MANIFESTS, digest))?;
        self.refs.remove_manifest(name, digest, parsed.as_ref());
        Ok(true)
    }

    /// The repository's tags in lexical order.
    pub fn tags(&self, name: &RepoName) -> Result<Vec<String>> {
        if !self.repo_exists(name) {
            return Err(Error::NameUnknown(name.to_string()));
        }
        let dir = self.repo_dir(name).join(TAGS);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read directory", dir)(e)),
        };
        let mut tags: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|t| is_valid_tag(t))
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// Every repository name, in lexical order.
    pub fn repositories(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut stack = vec![self.repos.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read directory", dir)(e)),
            };
            let mut is_repo = false;
            for entry in entries.flatten() {
                let file_name = entry.file_name();
                let Some(file_name) = file_name.to_str() else { continue };
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if file_name.starts_with('_') {
                    is_repo |= [LAYERS, MANIFESTS, TAGS].contains(&file_name);
                } else {
                    stack.push(entry.path());
                }
            }
            if is_repo {
                if let Some(name) = dir.strip_prefix(&self.repos).ok().and_then(|p| p.to_str()) {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Descriptors of the manifests in the repository whose subject is `subject`.
    pub fn referrers(&self, name: &RepoName, subject: &Digest) -> Result<Vec<Value>> {
        let dir = self.referrers_dir(name, subject);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read directory", dir)(e)),
        };
        let mut digests: Vec<Digest> = entries
            .filter_map(|e| {
                let file_name = e.ok()?.file_name().into_string().ok()?;
                let (alg, hex) = file_name.split_once('-')?;
                parse_digest(&format!("{alg}:{hex}")).ok()
            })
            .collect();
        digests.sort();
        let mut descriptors = Vec::new();
        for digest in digests {
            // Deleted since (or a crash between link removals): not a referrer any more.
            let Ok(stored) = self.read_manifest(name, &Reference::Digest(digest)) else { continue };
            let Ok(parsed) = manifest::parse(Some(&stored.media_type), &stored.body) else { continue };
            let mut d = json!({
                "mediaType": stored.media_type,
                "digest": stored.digest.as_str(),
                "size": stored.body.len(),
            });
            if let Some(t) = parsed.artifact_type {
                d["artifactType"] = Value::String(t);
            }
            if let Some(a) = parsed.annotations.filter(|a| !a.is_empty()) {
                d["annotations"] = Value::Object(a);
            }
            descriptors.push(d);
        }
        Ok(descriptors)
    }
}

fn blob_unknown(name: &RepoName, digest: &Digest) -> Error {
    Error::BlobUnknown { repository: name.to_string(), digest: digest.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_shared_and_links_are_per_repository() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path()).unwrap();
        let a = RepoName::parse("a").unwrap();
        let b = RepoName::parse("x/b").unwrap();
        let digest = Digest::sha256_of(b"hello");
        let data = s.tmp_dir().join("upload");
        fs::write(&data, b"hello").unwrap();
        s.commit_blob(&data, &digest).unwrap();
        s.link_blob(&a, &digest).unwrap();
        assert_eq!(s.blob_size(&a, &digest).unwrap(), 5);
        assert!(matches!(s.blob_size(&b, &digest), Err(Error::BlobUnknown { .. })));
        s.link_blob(&b, &digest).unwrap();
        s.unlink_blob(&a, &digest).unwrap();
        assert!(s.blob_size(&a, &digest).is_err());
        assert_eq!(s.blob_size(&b, &digest).unwrap(), 5);
        assert_eq!(s.repositories().unwrap(), vec!["a".to_string(), "x/b".to_string()]);
    }

    #[test]
    fn open_clears_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path()).unwrap();
        fs::write(s.tmp_dir().join("tmp-partial"), b"x").unwrap();
        // One process per root.
        assert!(matches!(Storage::open(dir.path()), Err(Error::Config(_))));
        drop(s);
        let s = Storage::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }
}
