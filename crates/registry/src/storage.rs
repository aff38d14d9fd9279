//! The filesystem backend. Blobs (layers, configs and manifests alike) live once under
//! `blobs/<algorithm>/<hex>`, shared by every repository; a repository holds only links:
//!
//! ```text
//! repositories/<name>/_layers/<alg>/<hex>            blob visible in the repository (empty file)
//! repositories/<name>/_manifests/<alg>/<hex>         manifest in the repository (holds its media type)
//! repositories/<name>/_tags/<tag>                    tag -> manifest digest
//! repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>   subject -> referring manifest (empty file)
//! uploads/<id>/                                      upload sessions (see `uploads`)
//! tmp/                                               temporary files, renamed into place
//! lock                                               held (flock) by the one process serving the root
//! ```
//!
//! Names and digests are validated before they reach a path, and repository path components
//! never begin with `_`, so the link directories cannot collide with nested repositories.
//! All functions here block; callers run them on the blocking pool.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use berth_store::Digest;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::manifest::{self, Manifest, Target};
use crate::names::{is_valid_tag, parse_digest, Reference, RepoName};

const LAYERS: &str = "_layers";
const MANIFESTS: &str = "_manifests";
const TAGS: &str = "_tags";
const REFERRERS: &str = "_referrers";

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
        Ok(storage)
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

    /// Makes a stored blob visible in the repository (after a push or a mount).
    pub fn link_blob(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        if !self.blob_exists(digest) {
            return Err(blob_unknown(name, digest));
        }
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
        let target = self.blob_path(digest);
        if fsutil::exists(&target) {
            let _ = fs::remove_file(data);
            return Ok(());
        }
        fsutil::rename_durable(data, &target)
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
        // Content first, then the links that make it visible: a crash in between leaves
        // only unreferenced content behind.
        let blob = self.blob_path(digest);
        if !fsutil::exists(&blob) {
            fsutil::write_atomic(&self.tmp, &blob, body)?;
        }
        let link = self.link(name, MANIFESTS, digest);
        if self.manifest_media_type(name, digest)?.as_deref() != Some(manifest.media_type.as_str()) {
            fsutil::write_atomic(&self.tmp, &link, manifest.media_type.as_bytes())?;
        }
        if let Some(subject) = &manifest.subject {
            let link = self.referrer_link(name, subject, digest);
            if !fsutil::exists(&link) {
                fsutil::write_atomic(&self.tmp, &link, b"")?;
            }
        }
        for tag in tags {
            fsutil::write_atomic(&self.tmp, &self.tag_path(name, tag), digest.as_str().as_bytes())?;
        }
        Ok(())
    }

    /// Removes a tag; the manifest stays.
    pub fn delete_tag(&self, name: &RepoName, tag: &str) -> Result<()> {
        if fsutil::remove_durable(&self.tag_path(name, tag))? {
            Ok(())
        } else {
            Err(Error::ManifestUnknown { repository: name.to_string(), reference: tag.to_string() })
        }
    }

    /// Removes a manifest from the repository with the tags that point at it.
    pub fn delete_manifest(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        let Some(media_type) = self.manifest_media_type(name, digest)? else {
            return Err(Error::ManifestUnknown { repository: name.to_string(), reference: digest.to_string() });
        };
        // Tags first: a crash midway leaves an untagged manifest, never a dangling tag.
        for tag in self.tags(name)? {
            if self.resolve_tag(name, &tag).ok().flatten().as_ref() == Some(digest) {
                fsutil::remove_durable(&self.tag_path(name, &tag))?;
            }
        }
        if let Ok(body) = fs::read(self.blob_path(digest)) {
            if let Ok(Manifest { subject: Some(subject), .. }) = manifest::parse(Some(&media_type), &body) {
                let link = self.referrer_link(name, &subject, digest);
                fsutil::remove_durable(&link)?;
                if let Some(dir) = link.parent() {
                    fsutil::prune_empty_dirs(dir, &self.repo_dir(name).join(REFERRERS));
                }
            }
        }
        fsutil::remove_durable(&self.link(name, MANIFESTS, digest))?;
        Ok(())
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
