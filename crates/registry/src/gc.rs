//! Online garbage collection. Reference counts are kept in memory as manifests and tags
//! are written and deleted (blob -> manifests referencing it; manifest -> tags and index
//! entries pointing at it); they are rebuilt from the manifests on disk when the storage
//! opens, so a crash can never leave them wrong. A sweep deletes untagged manifests and
//! blobs that have been unreferenced for longer than a grace period, and evicts the
//! manifests of mirror caches that have not been used for their mirror's `max_age` (what
//! they referenced is then released like anything else).
//!
//! The lock protocol that keeps a sweep from breaking a push: every write that adds a
//! reference (a manifest PUT with its checks, a blob commit or mount) holds the `gate`
//! shared; the sweep takes it exclusively for each deletion and re-checks the counts and
//! times under it. A manifest PUT therefore either sees a blob the sweep has not deleted
//! (and the count it adds keeps the blob alive) or sees it gone and is refused with
//! `MANIFEST_BLOB_UNKNOWN`: never a stored manifest with a dangling reference. Writes to
//! one repository are serialised by a striped lock (taken before the gate), so a tag
//! moving between manifests is counted exactly. Eviction holds that lock while it checks
//! the manifest's last use and removes it, and a mirror stores what it fetches under the
//! same lock, so a manifest fetched again is never evicted half-way. Uploads in progress
//! live under `uploads/` and are never looked at here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use berth_store::Digest;
use serde::{Deserialize, Serialize};

use crate::config;
use crate::error::Result;
use crate::manifest::{Manifest, Target};
use crate::names::RepoName;
use crate::storage::Storage;

/// Number of repository write locks; repositories share them by hash.
const STRIPES: usize = 64;

/// A manifest in one repository.
type ManifestKey = (String, Digest);

/// What points at one manifest of a repository.
#[derive(Debug, Clone, Default)]
struct ManifestRefs {
    /// The manifest is stored in the repository (its `_manifests` link exists).
    present: bool,
    tags: u32,
    /// Indexes of the same repository listing it.
    parents: u32,
    /// The manifest it refers to (a signature, an SBOM): kept while the subject lives.
    subject: Option<Digest>,
    /// When its last tag or parent went away (in this process).
    released: Option<SystemTime>,
}

/// The reference counts.
#[derive(Debug, Clone, Default)]
struct Index {
    /// Blob -> number of stored manifests that are it or reference it.
    blobs: HashMap<Digest, u32>,
    manifests: HashMap<ManifestKey, ManifestRefs>,
    /// When a blob's count dropped to zero (in this process).
    released_blobs: HashMap<Digest, SystemTime>,
}

impl Index {
    fn blob_ref(&mut self, digest: &Digest, up: bool, now: SystemTime) {
        if up {
            *self.blobs.entry(digest.clone()).or_insert(0) += 1;
            self.released_blobs.remove(digest);
            return;
        }
        let Some(count) = self.blobs.get_mut(digest) else { return };
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.blobs.remove(digest);
            self.released_blobs.insert(digest.clone(), now);
        }
    }

    fn entry(&mut self, repo: &str, digest: &Digest) -> &mut ManifestRefs {
        self.manifests.entry((repo.to_string(), digest.clone())).or_default()
    }

    /// Drops an entry nothing needs any more; marks one that lost its last reference.
    fn settle(&mut self, repo: &str, digest: &Digest, now: SystemTime) {
        let key = (repo.to_string(), digest.clone());
        let Some(e) = self.manifests.get_mut(&key) else { return };
        if e.tags == 0 && e.parents == 0 {
            if !e.present {
                self.manifests.remove(&key);
            } else if e.released.is_none() {
                e.released = Some(now);
            }
        } else {
            e.released = None;
        }
    }

    fn add_manifest(&mut self, repo: &str, digest: &Digest, manifest: &Manifest, now: SystemTime) {
        let e = self.entry(repo, digest);
        if e.present {
            return;
        }
        e.present = true;
        e.subject = manifest.subject.clone();
        self.blob_ref(digest, true, now);
        for target in &manifest.targets {
            match target {
                Target::Blob(d) => self.blob_ref(d, true, now),
                Target::Manifest(d) => {
                    self.entry(repo, d).parents += 1;
                    self.settle(repo, d, now);
                }
            }
        }
    }

    /// `manifest` is `None` when its body could not be read: then what it references
    /// stays counted, which can only keep content longer, never delete it early.
    fn remove_manifest(&mut self, repo: &str, digest: &Digest, manifest: Option<&Manifest>, now: SystemTime) {
        let key = (repo.to_string(), digest.clone());
        if !self.manifests.get(&key).is_some_and(|e| e.present) {
            return;
        }
        self.entry(repo, digest).present = false;
        self.settle(repo, digest, now);
        self.blob_ref(digest, false, now);
        for target in manifest.map(|m| m.targets.as_slice()).unwrap_or_default() {
            match target {
                Target::Blob(d) => self.blob_ref(d, false, now),
                Target::Manifest(d) => {
                    let e = self.entry(repo, d);
                    e.parents = e.parents.saturating_sub(1);
                    self.settle(repo, d, now);
                }
            }
        }
    }

    fn tag(&mut self, repo: &str, old: Option<&Digest>, new: Option<&Digest>, now: SystemTime) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            let e = self.entry(repo, old);
            e.tags = e.tags.saturating_sub(1);
            self.settle(repo, old, now);
        }
        if let Some(new) = new {
            self.entry(repo, new).tags += 1;
            self.settle(repo, new, now);
        }
    }

    /// Whether a stored manifest is still wanted: tagged, listed by an index, the
    /// referrer of a stored manifest, or in a repository that is always kept.
    fn manifest_wanted(&self, key: &ManifestKey, keep: &dyn Fn(&str) -> bool) -> bool {
        let Some(e) = self.manifests.get(key) else { return false };
        if !e.present {
            return false;
        }
        let subject_lives = e.subject.as_ref().is_some_and(|s| {
            self.manifests.get(&(key.0.clone(), s.clone())).is_some_and(|m| m.present)
        });
        e.tags > 0 || e.parents > 0 || subject_lives || keep(&key.0)
    }

    /// Stored manifests that only their own use keeps (no index of the repository lists
    /// them and they refer to no stored manifest) in repositories `evicts` names, in a
    /// stable order.
    fn eviction_candidates<'a>(&self, evicts: &dyn Fn(&str) -> Option<&'a Eviction>) -> Vec<(ManifestKey, &'a Eviction)> {
        let mut out: Vec<(ManifestKey, &Eviction)> = self
            .manifests
            .iter()
            .filter(|(k, _)| self.only_use_keeps(k))
            .filter_map(|(k, _)| evicts(&k.0).map(|e| (k.clone(), e)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Whether a stored manifest is held by nothing but its own use: no index of its
    /// repository lists it, and it is not the referrer of a stored manifest.
    fn only_use_keeps(&self, key: &ManifestKey) -> bool {
        let Some(e) = self.manifests.get(key) else { return false };
        let subject_lives = e.subject.as_ref().is_some_and(|s| {
            self.manifests.get(&(key.0.clone(), s.clone())).is_some_and(|m| m.present)
        });
        e.present && e.parents == 0 && !subject_lives
    }

    /// Stored manifests that nothing wants, in a stable order.
    fn unwanted_manifests(&self, keep: &dyn Fn(&str) -> bool) -> Vec<ManifestKey> {
        let mut out: Vec<ManifestKey> = self
            .manifests
            .iter()
            .filter(|(k, e)| e.present && !self.manifest_wanted(k, keep))
            .map(|(k, _)| k.clone())
            .collect();
        out.sort();
        out
    }
}

/// The reference counts of a storage root and the locks of the protocol above.
#[derive(Debug)]
pub struct Refs {
    gate: RwLock<()>,
    stripes: Vec<Mutex<()>>,
    index: Mutex<Index>,
    /// One sweep at a time.
    sweeping: Mutex<()>,
    /// A stored manifest could not be read when the counts were built: what it references
    /// is unknown, so no blob is swept.
    incomplete: AtomicBool,
}

impl Default for Refs {
    fn default() -> Refs {
        Refs {
            gate: RwLock::new(()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            index: Mutex::new(Index::default()),
            sweeping: Mutex::new(()),
            incomplete: AtomicBool::new(false),
        }
    }
}

/// A lock whose holder panicked is still usable: the counts are updated in single steps.
fn relock<T>(r: std::sync::LockResult<T>) -> T {
    r.unwrap_or_else(|e| e.into_inner())
}

impl Refs {
    /// Serialises the writes to one repository (taken before [`Refs::shared`]).
    pub(crate) fn repository(&self, name: &str) -> MutexGuard<'_, ()> {
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        relock(self.stripes[(hash % STRIPES as u64) as usize].lock())
    }

    /// Held by writes that add references.
    pub(crate) fn shared(&self) -> RwLockReadGuard<'_, ()> {
        relock(self.gate.read())
    }

    fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        relock(self.gate.write())
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        relock(self.index.lock())
    }

    pub(crate) fn add_manifest(&self, repo: &RepoName, digest: &Digest, manifest: &Manifest) {
        self.index().add_manifest(repo.as_str(), digest, manifest, SystemTime::now());
    }

    pub(crate) fn remove_manifest(&self, repo: &RepoName, digest: &Digest, manifest: Option<&Manifest>) {
        self.index().remove_manifest(repo.as_str(), digest, manifest, SystemTime::now());
    }

    /// A tag of `repo` moved from `old` to `new` (either may be none).
    pub(crate) fn tag(&self, repo: &RepoName, old: Option<&Digest>, new: Option<&Digest>) {
        self.index().tag(repo.as_str(), old, new, SystemTime::now());
    }

    /// Records that a stored manifest's references are unknown.
    pub(crate) fn references_unknown(&self) {
        self.incomplete.store(true, Ordering::Relaxed);
    }

    /// How many stored manifests are or reference `digest`.
    pub fn blob_refs(&self, digest: &Digest) -> u32 {
        self.index().blobs.get(digest).copied().unwrap_or(0)
    }

    /// The tags and index entries pointing at a manifest of `repo`.
    pub fn manifest_refs(&self, repo: &RepoName, digest: &Digest) -> u32 {
        self.index().manifests.get(&(repo.to_string(), digest.clone())).map_or(0, |e| e.tags + e.parents)
    }
}

/// The eviction of one mirror's cached manifests by age of last use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    /// The repository name prefix of the mirror's content.
    pub prefix: String,
    /// Manifests not used for this long are evicted.
    pub max_age: Duration,
    /// The namespace also takes pushes: only manifests marked as fetched from the
    /// upstream are evicted (else every manifest came from there).
    pub local: bool,
}

impl Eviction {
    /// The evictions the mirrors with a `max_age` ask for.
    pub fn for_mirrors(mirrors: &[config::Mirror]) -> Vec<Eviction> {
        mirrors
            .iter()
            .filter_map(|m| Some(Eviction { prefix: m.prefix(), max_age: m.max_age?, local: m.local }))
            .collect()
    }

    /// How long ago the manifest was last used, if it is cached content (not pushed here)
    /// and has gone unused for `max_age`.
    fn unused_for(&self, storage: &Storage, name: &RepoName, digest: &Digest) -> Option<Duration> {
        let last_use = storage.manifest_last_use(name, digest, !self.local)?;
        let unused = SystemTime::now().duration_since(last_use).unwrap_or_default();
        (unused >= self.max_age).then_some(unused)
    }
}

/// What a sweep does.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Content unreferenced for less than this is kept.
    pub grace: Duration,
    /// Report without deleting.
    pub dry_run: bool,
    /// Repository name prefixes whose manifests are kept even untagged (mirror caches).
    pub keep_prefixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweptManifest {
    pub repository: String,
    pub digest: String,
    /// Set when it was evicted from a mirror cache: seconds since its last use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unused_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweptBlob {
    pub digest: String,
    pub size: u64,
}

/// What a sweep deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub dry_run: bool,
    pub manifests: Vec<SweptManifest>,
    pub blobs: Vec<SweptBlob>,
    /// Bytes of the blobs.
    pub bytes: u64,
}

/// Whether repository `repo` is under the name prefix `prefix` (whole components).
fn under(repo: &str, prefix: &str) -> bool {
    repo.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

fn keeps(prefixes: &[String]) -> impl Fn(&str) -> bool + '_ {
    move |repo: &str| prefixes.iter().any(|p| under(repo, p))
}

/// Whether something unreferenced since `since` (or never referenced, then only the file
/// time counts) has waited out the grace period.
fn expired(since: Option<SystemTime>, file_time: Option<SystemTime>, grace: Duration) -> bool {
    let Some(latest) = since.into_iter().chain(file_time).max() else { return false };
    SystemTime::now().duration_since(latest).is_ok_and(|age| age >= grace)
}

/// Runs one sweep over `storage` that evicts nothing. Blocking; safe while the registry
/// serves requests.
pub fn sweep(storage: &Storage, options: &SweepOptions) -> Result<Report> {
    sweep_evicting(storage, options, &[])
}

/// Runs one sweep over `storage`, evicting as `evictions` ask. Blocking; safe while the
/// registry serves requests.
pub fn sweep_evicting(storage: &Storage, options: &SweepOptions, evictions: &[Eviction]) -> Result<Report> {
    let refs = storage.refs();
    let _one = relock(refs.sweeping.lock());
    let keep = keeps(&options.keep_prefixes);
    let evicts = |repo: &str| evictions.iter().find(|e| under(repo, &e.prefix));
    let mut report = Report { dry_run: options.dry_run, ..Report::default() };
    // A dry run plays the deletions on a copy of the counts, so what a deleted manifest
    // releases is reported as a real sweep would find it.
    let mut simulated = options.dry_run.then(|| refs.index().clone());

    // Manifests first, in rounds: deleting an index releases its children.
    loop {
        let candidates = match &simulated {
            Some(index) => index.unwanted_manifests(&keep),
            None => refs.index().unwanted_manifests(&keep),
        };
        let mut progressed = false;
        for (repo, digest) in candidates {
            let Ok(name) = RepoName::parse(&repo) else { continue };
            let deleted = match &mut simulated {
                Some(index) => {
                    let key = (repo.clone(), digest.clone());
                    let released = index.manifests.get(&key).and_then(|e| e.released);
                    if !expired(released, storage.manifest_link_time(&name, &digest), options.grace) {
                        continue;
                    }
                    let parsed = storage.stored_manifest(&name, &digest).ok().flatten();
                    index.remove_manifest(&repo, &digest, parsed.as_ref(), SystemTime::now());
                    true
                }
                None => {
                    let _repo = refs.repository(&repo);
                    let _gate = refs.exclusive();
                    let key = (repo.clone(), digest.clone());
                    let (wanted, released) = {
                        let index = refs.index();
                        (index.manifest_wanted(&key, &keep), index.manifests.get(&key).and_then(|e| e.released))
                    };
                    if wanted || !expired(released, storage.manifest_link_time(&name, &digest), options.grace) {
                        continue;
                    }
                    storage.sweep_manifest(&name, &digest)?
                }
            };
            if deleted {
                tracing::info!(repository = %repo, %digest, dry_run = options.dry_run, "unreferenced manifest swept");
                report.manifests.push(SweptManifest { repository: repo, digest: digest.to_string(), unused_secs: None });
                progressed = true;
            }
        }
        // Mirror caches: manifests unused for their mirror's max_age, with their tags.
        // Evicting an index releases its children, which the next round judges by their
        // own use.
        let candidates = match &simulated {
            Some(index) => index.eviction_candidates(&evicts),
            None => refs.index().eviction_candidates(&evicts),
        };
        for ((repo, digest), eviction) in candidates {
            let Ok(name) = RepoName::parse(&repo) else { continue };
            let Some(unused) = eviction.unused_for(storage, &name, &digest) else { continue };
            let unused = match &mut simulated {
                Some(index) => {
                    if storage.has_pushed_tag(&name, &digest)? {
                        continue;
                    }
                    for _ in storage.tags_of(&name, &digest)? {
                        index.tag(&repo, Some(&digest), None, SystemTime::now());
                    }
                    let parsed = storage.stored_manifest(&name, &digest).ok().flatten();
                    index.remove_manifest(&repo, &digest, parsed.as_ref(), SystemTime::now());
                    unused
                }
                None => {
                    // Again under the repository lock, which a fetch of this manifest and
                    // every change of its tags and parents hold.
                    let _repo = refs.repository(&repo);
                    let _gate = refs.shared();
                    let held = !refs.index().only_use_keeps(&(repo.clone(), digest.clone()));
                    if held || storage.has_pushed_tag(&name, &digest)? {
                        continue;
                    }
                    let Some(unused) = eviction.unused_for(storage, &name, &digest) else { continue };
                    if !storage.evict_manifest(&name, &digest)? {
                        continue;
                    }
                    unused
                }
            };
            let unused_secs = Some(unused.as_secs());
            tracing::info!(repository = %repo, %digest, unused_secs = unused.as_secs(), dry_run = options.dry_run, "unused mirrored manifest evicted");
            report.manifests.push(SweptManifest { repository: repo, digest: digest.to_string(), unused_secs });
            progressed = true;
        }
        if !progressed {
            break;
        }
    }

    if refs.incomplete.load(Ordering::Relaxed) {
        tracing::warn!("a stored manifest could not be read: no blob is garbage collected (see the log of the start)");
        return Ok(report);
    }
    // Then blobs no stored manifest is or references (most are referenced: look at the
    // counts first, the file only for the rest).
    let mut unreferenced = Vec::new();
    storage.scan_blobs(|digest| {
        let referenced = match &simulated {
            Some(index) => index.blobs.contains_key(&digest),
            None => refs.index().blobs.contains_key(&digest),
        };
        if !referenced {
            unreferenced.push(digest);
        }
    })?;
    let released = |index: &Index, digest: &Digest| index.released_blobs.get(digest).copied();
    let mut deleted = Vec::new();
    for digest in unreferenced {
        let Some((size, modified)) = storage.blob_meta(&digest) else { continue };
        match &simulated {
            Some(index) => {
                if !expired(released(index, &digest), Some(modified), options.grace) {
                    continue;
                }
            }
            None => {
                if !expired(released(&refs.index(), &digest), Some(modified), options.grace) {
                    continue;
                }
                // Again under the lock: a manifest PUT may have referenced the blob, or a
                // commit or mount renewed its time, since the look above.
                let _gate = refs.exclusive();
                let (free, since) = {
                    let index = refs.index();
                    (!index.blobs.contains_key(&digest), released(&index, &digest))
                };
                let Some((size_now, modified)) = storage.blob_meta(&digest) else { continue };
                if !free || !expired(since, Some(modified), options.grace) || !storage.remove_blob(&digest, size_now)? {
                    continue;
                }
                refs.index().released_blobs.remove(&digest);
                deleted.push(digest.clone());
            }
        }
        tracing::info!(%digest, size, dry_run = options.dry_run, "unreferenced blob swept");
        report.bytes += size;
        report.blobs.push(SweptBlob { digest: digest.to_string(), size });
    }
    if !deleted.is_empty() {
        storage.unlink_missing_blobs(&deleted, || refs.exclusive())?;
    }
    Ok(report)
}

/// Formats a byte count for people (`1.5 MiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats an age in seconds for people, in its two largest units (`40d 3h`, `5m 2s`).
fn human_age(secs: u64) -> String {
    let (days, hours, minutes, seconds) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

impl Report {
    /// How many of the manifests were evicted from mirror caches.
    pub fn evicted(&self) -> usize {
        self.manifests.iter().filter(|m| m.unused_secs.is_some()).count()
    }

    /// The lines `berth-registry gc` prints.
    pub fn lines(&self) -> Vec<String> {
        let verb = if self.dry_run { "would delete" } else { "deleted" };
        let mut out = Vec::new();
        for m in &self.manifests {
            match m.unused_secs {
                Some(secs) => out.push(format!("{verb} manifest {}@{} (evicted: unused for {})", m.repository, m.digest, human_age(secs))),
                None => out.push(format!("{verb} manifest {}@{}", m.repository, m.digest)),
            }
        }
        for b in &self.blobs {
            out.push(format!("{verb} blob {} {} bytes", b.digest, b.size));
        }
        let evicted = self.evicted();
        let of_which = if evicted > 0 { format!(" ({evicted} evicted from mirror caches)") } else { String::new() };
        out.push(format!(
            "{verb} {} manifests{of_which} and {} blobs, {} bytes ({})",
            self.manifests.len(),
            self.blobs.len(),
            self.bytes,
            human_bytes(self.bytes)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    fn image(config: char, layers: &[char]) -> Manifest {
        let mut targets = vec![Target::Blob(d(config))];
        targets.extend(layers.iter().map(|c| Target::Blob(d(*c))));
        Manifest { media_type: crate::manifest::OCI_MANIFEST.into(), targets, subject: None, artifact_type: None, annotations: None }
    }

    #[test]
    fn counts_follow_manifests_tags_and_indexes() {
        let now = SystemTime::now();
        let mut ix = Index::default();
        ix.add_manifest("r", &d('1'), &image('a', &['b', 'c']), now);
        ix.add_manifest("r", &d('2'), &image('a', &['b', 'd']), now);
        // A second add of the same manifest counts nothing.
        ix.add_manifest("r", &d('2'), &image('a', &['b', 'd']), now);
        assert_eq!(ix.blobs[&d('a')], 2);
        assert_eq!(ix.blobs[&d('d')], 1);
        ix.tag("r", None, Some(&d('1')), now);
        ix.tag("r", Some(&d('1')), Some(&d('2')), now);
        let none = |_: &str| false;
        assert_eq!(ix.unwanted_manifests(&none), vec![("r".to_string(), d('1'))]);
        ix.remove_manifest("r", &d('1'), Some(&image('a', &['b', 'c'])), now);
        assert_eq!(ix.blobs[&d('a')], 1);
        assert!(!ix.blobs.contains_key(&d('c')));
        assert!(ix.released_blobs.contains_key(&d('c')));

        let index = Manifest {
            media_type: crate::manifest::OCI_INDEX.into(),
            targets: vec![Target::Manifest(d('2'))],
            subject: None,
            artifact_type: None,
            annotations: None,
        };
        ix.tag("r", Some(&d('2')), None, now);
        ix.add_manifest("r", &d('9'), &index, now);
        assert_eq!(ix.unwanted_manifests(&none), vec![("r".to_string(), d('9'))]);
        let keep_r = |r: &str| r == "r";
        assert!(ix.unwanted_manifests(&keep_r).is_empty());
    }

    #[test]
    fn referrers_live_with_their_subject() {
        let now = SystemTime::now();
        let mut ix = Index::default();
        ix.add_manifest("r", &d('1'), &image('a', &[]), now);
        ix.tag("r", None, Some(&d('1')), now);
        let mut sig = image('e', &[]);
        sig.subject = Some(d('1'));
        ix.add_manifest("r", &d('2'), &sig, now);
        let none = |_: &str| false;
        assert!(ix.unwanted_manifests(&none).is_empty());
        ix.tag("r", Some(&d('1')), None, now);
        assert_eq!(ix.unwanted_manifests(&none).len(), 1, "the subject, untagged");
        ix.remove_manifest("r", &d('1'), Some(&image('a', &[])), now);
        assert_eq!(ix.unwanted_manifests(&none), vec![("r".to_string(), d('2'))]);
    }

    #[test]
    fn keep_prefixes_match_whole_components() {
        let prefixes = vec!["docker.io".to_string()];
        let keep = keeps(&prefixes);
        assert!(keep("docker.io/library/x"));
        assert!(!keep("docker.iox/y"));
        assert!(!keep("docker.io"));
    }

    /// A storage root holding mirrored content, with helpers to store and age it.
    struct Cache {
        _dir: tempfile::TempDir,
        root: std::path::PathBuf,
        storage: Storage,
    }

    impl Cache {
        fn new() -> Cache {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_path_buf();
            let storage = Storage::open(&root).unwrap();
            Cache { _dir: dir, root, storage }
        }

        fn blob(&self, repo: &str, data: &[u8]) -> serde_json::Value {
            let digest = Digest::sha256_of(data);
            let tmp = self.storage.tmp_dir().join("upload");
            std::fs::write(&tmp, data).unwrap();
            self.storage.commit_blob_to(&tmp, &digest, &RepoName::parse(repo).unwrap()).unwrap();
            serde_json::json!({ "mediaType": "application/octet-stream", "digest": digest.to_string(), "size": data.len() })
        }

        /// Stores a manifest as a mirror's fetch (`tag` mirrored) or, with `pushed`, as a push.
        fn manifest(&self, repo: &str, body: serde_json::Value, tag: Option<&str>, pushed: bool) -> Digest {
            let body = body.to_string().into_bytes();
            let digest = Digest::sha256_of(&body);
            let parsed = crate::manifest::parse(None, &body).unwrap();
            let name = RepoName::parse(repo).unwrap();
            if pushed {
                let tags: Vec<String> = tag.map(str::to_string).into_iter().collect();
                self.storage.put_manifest(&name, &digest, &parsed, &body, &tags).unwrap();
            } else {
                self.storage.put_mirrored_manifest(&name, &digest, &parsed, &body, tag).unwrap();
            }
            digest
        }

        fn image(&self, repo: &str, seed: &str, layers: &[&[u8]], tag: Option<&str>, pushed: bool) -> Digest {
            let config = self.blob(repo, format!("config {seed}").as_bytes());
            let layers: Vec<serde_json::Value> = layers.iter().map(|l| self.blob(repo, l)).collect();
            let body = serde_json::json!({ "schemaVersion": 2, "mediaType": crate::manifest::OCI_MANIFEST, "config": config, "layers": layers });
            self.manifest(repo, body, tag, pushed)
        }

        /// Sets every file under `dir` (relative to the root) `days` back.
        fn age(&self, dir: &str, days: u64) {
            let when = SystemTime::now() - Duration::from_secs(days * 24 * 3600);
            let mut stack = vec![self.root.join(dir)];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap().flatten() {
                    if e.file_type().unwrap().is_dir() {
                        stack.push(e.path());
                    } else {
                        std::fs::File::open(e.path()).unwrap().set_modified(when).unwrap();
                    }
                }
            }
        }

        fn has_manifest(&self, repo: &str, digest: &Digest) -> bool {
            self.storage.manifest_media_type(&RepoName::parse(repo).unwrap(), digest).unwrap().is_some()
        }
    }

    fn options(dry_run: bool) -> SweepOptions {
        SweepOptions { grace: Duration::ZERO, dry_run, keep_prefixes: vec!["docker.io".into(), "local.io".into()] }
    }

    fn evictions() -> Vec<Eviction> {
        let month = Duration::from_secs(30 * 24 * 3600);
        vec![
            Eviction { prefix: "docker.io".into(), max_age: month, local: false },
            Eviction { prefix: "local.io".into(), max_age: month, local: true },
        ]
    }

    #[test]
    fn eviction_by_last_use() {
        let c = Cache::new();
        let r = "docker.io/library/app";
        let old = c.image(r, "old", &[b"shared", b"old only"], Some("old"), false);
        let recent = c.image(r, "recent", &[b"shared", b"recent only"], Some("recent"), false);
        // An index fetched by tag and its child fetched by digest, and a child used
        // recently on its own.
        let child = c.image(r, "child", &[b"child only"], None, false);
        let used_child = c.image(r, "used child", &[b"used child only"], None, false);
        let descriptor = |d: &Digest| serde_json::json!({ "mediaType": crate::manifest::OCI_MANIFEST, "digest": d.to_string(), "size": 1 });
        let index = c.manifest(r, serde_json::json!({ "schemaVersion": 2, "mediaType": crate::manifest::OCI_INDEX, "manifests": [descriptor(&child), descriptor(&used_child)] }), Some("multi"), false);
        // Not mirrored at all: never evicted.
        let other = c.image("team/app", "other", &[b"other"], Some("v1"), true);
        c.age("repositories", 40);
        c.age("blobs", 40);
        let name = RepoName::parse(r).unwrap();
        for d in [&recent, &used_child] {
            c.storage.record_manifest_use(&name, d, true).unwrap();
        }

        // Without eviction (or a max_age) the cache is kept whole.
        assert!(sweep(&c.storage, &options(false)).unwrap().manifests.is_empty());

        let files = |root: &std::path::Path| {
            let mut all = Vec::new();
            let mut stack = vec![root.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap().flatten() {
                    all.push((e.path(), e.metadata().unwrap().modified().unwrap()));
                    if e.file_type().unwrap().is_dir() {
                        stack.push(e.path());
                    }
                }
            }
            all.sort();
            all
        };
        let before = files(&c.root);
        let dry = sweep_evicting(&c.storage, &options(true), &evictions()).unwrap();
        assert_eq!(files(&c.root), before, "a dry run changed the storage");
        let expect: Vec<String> = [&old, &index, &child].iter().map(|d| d.to_string()).collect();
        let mut listed: Vec<String> = dry.manifests.iter().map(|m| m.digest.clone()).collect();
        listed.sort();
        let mut sorted = expect.clone();
        sorted.sort();
        assert_eq!(listed, sorted, "{dry:?}");
        assert!(dry.manifests.iter().all(|m| m.unused_secs.is_some_and(|s| s >= 40 * 24 * 3600)));
        assert!(dry.lines().iter().any(|l| l.starts_with(&format!("would delete manifest {r}@{old} (evicted: unused for 40d 0h)"))), "{:?}", dry.lines());
        assert!(dry.lines().last().unwrap().starts_with("would delete 3 manifests (3 evicted from mirror caches) and "), "{:?}", dry.lines());

        let real = sweep_evicting(&c.storage, &options(false), &evictions()).unwrap();
        assert_eq!(real.manifests, dry.manifests);
        assert_eq!(real.blobs, dry.blobs, "the dry run names the blobs the eviction releases");
        for d in [&old, &index, &child] {
            assert!(!c.has_manifest(r, d), "{d} not evicted");
            assert!(!c.root.join(format!("repositories/{r}/_cached/sha256/{}", d.hex())).exists());
        }
        for d in [&recent, &used_child] {
            assert!(c.has_manifest(r, d), "{d} was used recently");
        }
        assert!(c.has_manifest("team/app", &other));
        assert_eq!(c.storage.tags(&name).unwrap(), vec!["recent".to_string()]);
        assert!(!c.root.join(format!("repositories/{r}/_mirrored/old")).exists());
        // The blobs only evicted manifests used went; shared ones stayed.
        assert!(!c.storage.blob_exists(&Digest::sha256_of(b"old only")));
        assert!(!c.storage.blob_exists(&Digest::sha256_of(b"child only")));
        assert!(!c.storage.blob_exists(&old) && !c.storage.blob_exists(&index));
        for kept in [b"shared".as_slice(), b"recent only", b"used child only", b"other"] {
            assert!(c.storage.blob_exists(&Digest::sha256_of(kept)));
        }
        // Nothing left to evict.
        assert!(sweep_evicting(&c.storage, &options(false), &evictions()).unwrap().manifests.is_empty());
    }

    #[test]
    fn pushed_content_is_not_evicted() {
        let c = Cache::new();
        let r = "local.io/team/app";
        let fetched = c.image(r, "fetched", &[b"a"], Some("up"), false);
        let pushed = c.image(r, "pushed", &[b"b"], Some("mine"), true);
        let by_digest = c.image(r, "pushed by digest", &[b"c"], None, true);
        // Fetched first, then pushed under a tag of its own: pushed content now.
        let both = c.image(r, "both", &[b"d"], Some("up2"), false);
        c.image(r, "both", &[b"d"], Some("mine2"), true);
        // In a namespace of upstream content only: a manifest stored before uses were
        // recorded counts from when it was stored, unless a pushed tag points at it.
        let unmarked = c.image("docker.io/x/y", "unmarked", &[b"e"], Some("t"), false);
        let tagged_here = c.image("docker.io/x/y", "tagged here", &[b"f"], Some("u"), false);
        std::fs::remove_dir_all(c.root.join("repositories/docker.io/x/y/_cached")).unwrap();
        std::fs::remove_file(c.root.join("repositories/docker.io/x/y/_mirrored/u")).unwrap();
        c.age("repositories", 40);
        let report = sweep_evicting(&c.storage, &options(false), &evictions()).unwrap();
        let evicted: Vec<&str> = report.manifests.iter().map(|m| m.digest.as_str()).collect();
        assert_eq!(evicted.len(), 2, "{report:?}");
        assert!(evicted.contains(&fetched.as_str()) && evicted.contains(&unmarked.as_str()), "{report:?}");
        for d in [&pushed, &by_digest, &both] {
            assert!(c.has_manifest(r, d));
        }
        assert!(c.has_manifest("docker.io/x/y", &tagged_here));
    }

    #[test]
    fn expiry() {
        let old = SystemTime::now() - Duration::from_secs(100);
        assert!(expired(Some(old), None, Duration::from_secs(10)));
        assert!(!expired(Some(old), Some(SystemTime::now()), Duration::from_secs(10)));
        assert!(expired(None, Some(SystemTime::now()), Duration::ZERO));
        assert!(!expired(None, None, Duration::ZERO));
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_age(40 * 86_400 + 3 * 3600 + 59), "40d 3h");
        assert_eq!(human_age(3600 + 120), "1h 2m");
        assert_eq!(human_age(62), "1m 2s");
        assert_eq!(human_age(5), "5s");
    }
}
