//! Images: naming, listing, tagging, removal, disk usage and consistency checks over the
//! blob store, the metadata database and the layer directories. Pull, push, save/load and
//! import live in their own modules.

mod archive;
mod check;
pub mod config;
pub mod import;
mod pull;
mod push;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_distribution::reference::Reference;
use berth_distribution::Client;
use berth_store::{BlobStore, Digest, ImageRecord, LayerRecord, Meta};
use tokio::sync::Semaphore;

pub use check::CheckReport;
use config::ImageConfig;

use crate::error::{Error, Result};
use crate::events::Events;
use crate::EngineConfig;

/// Filters as the API gives them: key to accepted values.
pub type Filters = BTreeMap<String, Vec<String>>;

pub struct Images {
    blobs: BlobStore,
    meta: Meta,
    /// One directory per unpacked layer, named by chain id hex.
    layers_root: PathBuf,
    /// Layers being unpacked; emptied at start.
    tmp_root: PathBuf,
    client: Client,
    events: Events,
    downloads: Arc<Semaphore>,
    uploads: Arc<Semaphore>,
    /// Single flight per layer: two pulls sharing a layer unpack it once.
    layer_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Layers and blobs that running operations hold; garbage collection leaves them alone.
    leases: Mutex<HashMap<String, usize>>,
    /// Which container (and whether it runs) uses an image: such an image stays.
    in_use: std::sync::OnceLock<InUse>,
}

/// Answers which container uses an image id, and whether that container is running.
pub type InUse = Box<dyn Fn(&str) -> Option<(String, bool)> + Send + Sync>;

/// An image with its names, as listings and inspect show it.
#[derive(Debug, Clone)]
pub struct ImageView {
    pub record: ImageRecord,
    pub config: serde_json::Value,
    pub parsed: ImageConfig,
    /// Familiar `name:tag` strings.
    pub repo_tags: Vec<String>,
    /// Familiar `name@digest` strings.
    pub repo_digests: Vec<String>,
    /// Unpacked layer directories, bottom first.
    pub layer_dirs: Vec<PathBuf>,
    /// Bytes of layers this image shares with another image.
    pub shared_size: u64,
}

/// One line of `docker history`.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: u64,
    pub comment: String,
}

/// One line of an image delete response.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    Untagged(String),
    Deleted(String),
}

/// Disk usage, from the database only (no tree walks).
#[derive(Debug, Clone)]
pub struct DiskUsage {
    pub layers_size: u64,
    pub images: Vec<ImageView>,
}

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

fn hex_of(id: &str) -> &str {
    id.split_once(':').map_or(id, |(_, h)| h)
}

/// Parses a user-given reference, naming it in the error as docker does.
pub fn parse_reference(name: &str) -> Result<Reference> {
    Reference::parse_normalized(name).map_err(|e| Error::InvalidArgument(e.to_string()))
}

impl Images {
    pub fn open(config: &EngineConfig, events: Events) -> Result<Images> {
        let root = config.data_root.join("image");
        let layers_root = root.join("layers");
        let tmp_root = root.join("tmp");
        for dir in [&layers_root, &tmp_root] {
            std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        }
        let blobs = BlobStore::open(&root.join("content"))?;
        let meta = Meta::open(&root.join("meta.redb"))?;
        let client = Client::new(config.registry.clone())?;
        let images = Images {
            blobs,
            meta,
            layers_root,
            tmp_root,
            client,
            events,
            downloads: Arc::new(Semaphore::new(config.max_concurrent_downloads.max(1))),
            uploads: Arc::new(Semaphore::new(config.max_concurrent_uploads.max(1))),
            layer_locks: Mutex::new(HashMap::new()),
            leases: Mutex::new(HashMap::new()),
            in_use: std::sync::OnceLock::new(),
        };
        images.clean_after_crash()?;
        Ok(images)
    }

    /// Removes what an interrupted run left: half-unpacked layers, and layer directories
    /// that were renamed into place but never recorded (the record is written last).
    fn clean_after_crash(&self) -> Result<()> {
        for entry in std::fs::read_dir(&self.tmp_root).map_err(Error::io("read dir", &self.tmp_root))? {
            let entry = entry.map_err(Error::io("read dir", &self.tmp_root))?;
            berth_snapshot::remove_tree(&entry.path())?;
        }
        let known: BTreeSet<String> = self.meta.read()?.layers()?.into_iter().map(|l| l.dir).collect();
        for entry in std::fs::read_dir(&self.layers_root).map_err(Error::io("read dir", &self.layers_root))? {
            let entry = entry.map_err(Error::io("read dir", &self.layers_root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                tracing::info!(layer = %name, "removing unrecorded layer directory");
                berth_snapshot::remove_tree(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Tells the image service which images containers use.
    pub fn set_in_use(&self, in_use: InUse) {
        let _ = self.in_use.set(in_use);
    }

    fn image_user(&self, image_id: &str) -> Option<(String, bool)> {
        self.in_use.get().and_then(|f| f(image_id))
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn layer_dir(&self, layer: &LayerRecord) -> PathBuf {
        self.layers_root.join(&layer.dir)
    }

    /// Finds an image by reference (`busybox`, `busybox:1`, `name@sha256:...`), full id
    /// (`sha256:...`) or unique id prefix, as docker does.
    pub fn lookup(&self, name: &str) -> Result<ImageRecord> {
        let tx = self.meta.read()?;
        // Only `sha256:<hex>` or bare hex is an id; `repo:1` is not the id prefix "1".
        let id = name.strip_prefix("sha256:").unwrap_or(if name.contains([':', '/', '@']) { "" } else { name });
        if name.starts_with("sha256:") && id.len() == 64 {
            return tx.image(name)?.ok_or_else(|| Error::NoSuchImage(name.to_string()));
        }
        if let Ok(reference) = Reference::parse_normalized(name) {
            let found = match reference.digest() {
                Some(_) => tx.digest_ref(&reference.to_string())?,
                None => tx.tag(&reference.to_string())?,
            };
            if let Some(id) = found {
                if let Some(image) = tx.image(&id)? {
                    return Ok(image);
                }
            }
        }
        if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            let mut matches = tx.images()?.into_iter().filter(|i| hex_of(&i.id).starts_with(id));
            if let Some(first) = matches.next() {
                if matches.next().is_some() {
                    return Err(Error::InvalidArgument(format!("ambiguous image id {name:?}: more than one image matches")));
                }
                return Ok(first);
            }
        }
        Err(Error::NoSuchImage(name.to_string()))
    }

    /// How many images there are (no config reads).
    pub fn count(&self) -> Result<usize> {
        Ok(self.meta.read()?.images()?.len())
    }

    /// Every image with its names.
    pub fn list(&self, all: bool, filters: &Filters) -> Result<Vec<ImageView>> {
        let _ = all; // no intermediate build images exist yet, so -a changes nothing
        for key in filters.keys() {
            if !matches!(key.as_str(), "dangling" | "label" | "reference" | "before" | "since" | "until") {
                return Err(Error::InvalidArgument(format!("invalid filter '{key}'")));
            }
        }
        let bound = |key: &str| -> Result<Option<i64>> {
            match filters.get(key).and_then(|v| v.first()) {
                None => Ok(None),
                Some(name) => Ok(Some(self.view(&self.lookup(name)?)?.parsed.created_unix())),
            }
        };
        let before = bound("before")?;
        let since = bound("since")?;
        let mut out = Vec::new();
        for view in self.views()? {
            let created = view.parsed.created_unix();
            if let Some(values) = filters.get("dangling") {
                let want = values.iter().any(|v| v == "true" || v == "1");
                if want != view.repo_tags.is_empty() {
                    continue;
                }
            }
            if let Some(labels) = filters.get("label") {
                let have = view.parsed.labels();
                let ok = labels.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => have.get(k).is_some_and(|x| x == v),
                    None => have.contains_key(l),
                });
                if !ok {
                    continue;
                }
            }
            let mut view = view;
            if let Some(patterns) = filters.get("reference") {
                // As dockerd does, only the names that matched are listed.
                view.repo_tags.retain(|t| patterns.iter().any(|p| reference_matches(p, t)));
                view.repo_digests.retain(|d| patterns.iter().any(|p| reference_matches(p, d.split('@').next().unwrap_or(d))));
                if view.repo_tags.is_empty() {
                    continue;
                }
            }
            if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
                continue;
            }
            if let Some(until) = filters.get("until").and_then(|v| v.first()) {
                if let Some(limit) = parse_time_filter(until) {
                    if created > limit {
                        continue;
                    }
                }
            }
            out.push(view);
        }
        out.sort_by(|a, b| b.parsed.created_unix().cmp(&a.parsed.created_unix()).then(a.record.id.cmp(&b.record.id)));
        Ok(out)
    }

    /// All images with names and shared sizes, computed from the database only.
    fn views(&self) -> Result<Vec<ImageView>> {
        let tx = self.meta.read()?;
        let layers: HashMap<String, LayerRecord> = tx.layers()?.into_iter().map(|l| (l.chain_id.clone(), l)).collect();
        let tags = tx.tags()?;
        let digests = tx.digest_refs()?;
        let mut out = Vec::new();
        for record in tx.images()? {
            out.push(self.make_view(record, &layers, &tags, &digests)?);
        }
        Ok(out)
    }

    fn make_view(
        &self,
        record: ImageRecord,
        layers: &HashMap<String, LayerRecord>,
        tags: &[(String, String)],
        digests: &[(String, String)],
    ) -> Result<ImageView> {
        let config_digest: Digest = record.id.parse()?;
        let bytes = self.blobs.read(&config_digest)?;
        let config: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let parsed = ImageConfig::parse(&bytes).unwrap_or_default();
        let familiar = |full: &str| Reference::parse_normalized(full).map(|r| r.familiar_string()).unwrap_or_else(|_| full.to_string());
        let mut repo_tags: Vec<String> = tags.iter().filter(|(_, id)| *id == record.id).map(|(r, _)| familiar(r)).collect();
        repo_tags.sort();
        let mut repo_digests: Vec<String> = digests.iter().filter(|(_, id)| *id == record.id).map(|(r, _)| familiar(r)).collect();
        repo_digests.sort();
        let mut layer_dirs = Vec::new();
        let mut shared_size = 0;
        for chain in &record.layers {
            if let Some(layer) = layers.get(chain) {
                layer_dirs.push(self.layer_dir(layer));
                if layer.refs > 1 {
                    shared_size += layer.size;
                }
            }
        }
        Ok(ImageView { record, config, parsed, repo_tags, repo_digests, layer_dirs, shared_size })
    }

    pub fn view(&self, record: &ImageRecord) -> Result<ImageView> {
        let tx = self.meta.read()?;
        let layers = record
            .layers
            .iter()
            .filter_map(|c| tx.layer(c).transpose())
            .map(|l| l.map(|l| (l.chain_id.clone(), l)))
            .collect::<berth_store::Result<HashMap<_, _>>>()?;
        self.make_view(record.clone(), &layers, &tx.tags()?, &tx.digest_refs()?)
    }

    pub fn inspect(&self, name: &str) -> Result<ImageView> {
        self.view(&self.lookup(name)?)
    }

    /// The config history, newest first, with layer sizes where a layer was made.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        let view = self.inspect(name)?;
        let tx = self.meta.read()?;
        let mut sizes = Vec::new();
        for chain in &view.record.layers {
            sizes.push(tx.layer(chain)?.map_or(0, |l| l.size));
        }
        let mut sizes = sizes.into_iter();
        let mut entries = Vec::new();
        let history = if view.parsed.history.is_empty() {
            // Images without history (some imports) get one line per layer.
            view.record.layers.iter().map(|_| config::History::default()).collect()
        } else {
            view.parsed.history.clone()
        };
        for h in &history {
            let size = if h.empty_layer { 0 } else { sizes.next().unwrap_or(0) };
            entries.push(HistoryEntry {
                id: "<missing>".to_string(),
                created: h.created.as_deref().and_then(config::parse_rfc3339).unwrap_or(0),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: Vec::new(),
                size,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        entries.reverse();
        if let Some(top) = entries.first_mut() {
            top.id = view.record.id.clone();
            top.tags = view.repo_tags.clone();
        }
        Ok(entries)
    }

    /// Tags the image `source` as `target` (default tag `latest`).
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let image = self.lookup(source)?;
        let reference = parse_reference(target)?;
        if reference.digest().is_some() {
            return Err(Error::InvalidArgument("refusing to create a tag with a digest reference".to_string()));
        }
        let tx = self.meta.write()?;
        tx.set_tag(&reference.to_string(), &image.id)?;
        let mut record = tx.image(&image.id)?.unwrap_or(image);
        record.last_tag_time = Some(now_nanos());
        tx.put_image(&record)?;
        tx.commit()?;
        self.events.publish("image", "tag", &record.id, BTreeMap::from([("name".to_string(), reference.familiar_string())]));
        Ok(())
    }

    /// Removes a name, and the image with it when no name is left; by id, the image and all
    /// its names (refusing an image named in several repositories unless `force`).
    pub fn remove(&self, name: &str, force: bool, prune: bool) -> Result<Vec<Deleted>> {
        let _ = prune; // there are no parent images to prune yet
        let image = self.lookup(name)?;
        let tx = self.meta.write()?;
        let refs: Vec<String> = tx
            .tags()?
            .into_iter()
            .chain(tx.digest_refs()?)
            .filter(|(_, id)| *id == image.id)
            .map(|(r, _)| r)
            .collect();
        let by_reference = Reference::parse_normalized(name).ok().filter(|r| refs.contains(&r.to_string()));
        let mut out = Vec::new();
        match by_reference {
            Some(reference) => {
                let full = reference.to_string();
                remove_ref(&tx, &full)?;
                out.push(Deleted::Untagged(reference.familiar_string()));
                // Digest references of the same repository go with its last tag.
                let left: Vec<&String> = refs.iter().filter(|r| **r != full).collect();
                let repo = reference.name();
                let same_repo_tags = left.iter().any(|r| r.starts_with(&format!("{repo}:")));
                if !same_repo_tags && reference.digest().is_none() {
                    for r in left.iter().filter(|r| r.starts_with(&format!("{repo}@"))) {
                        remove_ref(&tx, r)?;
                        out.push(Deleted::Untagged(familiar_of(r)));
                    }
                }
                let remaining = refs.len() - out.len();
                let user = self.image_user(&image.id);
                if remaining == 0 {
                    if let Some((container, _)) = &user {
                        if !force {
                            return Err(Error::Conflict(format!(
                                "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                                &container[..12],
                                &hex_of(&image.id)[..12]
                            )));
                        }
                    }
                }
                if remaining > 0 || user.is_some() {
                    tx.commit()?;
                    self.publish_untags(&image.id, &out);
                    return Ok(out);
                }
            }
            None => {
                let user = self.image_user(&image.id);
                if let Some((container, running)) = &user {
                    let (how, state) = if *running { ("cannot be forced", "running") } else { ("must be forced", "stopped") };
                    if *running || !force {
                        return Err(Error::Conflict(format!(
                            "conflict: unable to delete {} ({how}) - image is being used by {state} container {}",
                            &hex_of(&image.id)[..12],
                            &container[..12]
                        )));
                    }
                }
                if !force && !is_single_reference(&refs) {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        &hex_of(&image.id)[..12]
                    )));
                }
                for r in &refs {
                    remove_ref(&tx, r)?;
                    out.push(Deleted::Untagged(familiar_of(r)));
                }
                if user.is_some() {
                    // Forced, with a stopped container using it: the names go, the image stays.
                    tx.commit()?;
                    self.publish_untags(&image.id, &out);
                    return Ok(out);
                }
            }
        }
        let freed = self.delete_image_records(&tx, &image)?;
        tx.commit()?;
        self.publish_untags(&image.id, &out);
        out.push(Deleted::Deleted(image.id.clone()));
        self.events.publish("image", "delete", &image.id, BTreeMap::from([("name".to_string(), image.id.clone())]));
        self.remove_content(&freed);
        for layer in &freed.layers {
            out.push(Deleted::Deleted(layer.chain_id.clone()));
        }
        Ok(out)
    }

    fn publish_untags(&self, id: &str, deleted: &[Deleted]) {
        for d in deleted {
            if let Deleted::Untagged(name) = d {
                self.events.publish("image", "untag", id, BTreeMap::from([("name".to_string(), name.clone())]));
            }
        }
    }

    /// Drops the image record and its layer references inside `tx`; returns the content
    /// that nothing references any more, to be removed after the commit.
    fn delete_image_records(&self, tx: &berth_store::WriteTx<'_>, image: &ImageRecord) -> Result<Freed> {
        let mut freed = Freed::default();
        tx.delete_image(&image.id)?;
        freed.blobs.push(image.id.clone());
        for (manifest, _) in image.manifests.values() {
            freed.blobs.push(manifest.clone());
        }
        for chain in &image.layers {
            let Some(mut layer) = tx.layer(chain)? else { continue };
            layer.refs = layer.refs.saturating_sub(1);
            if layer.refs == 0 && !self.leased(chain) {
                tx.delete_layer(chain)?;
                freed.blobs.extend(layer.blobs.iter().map(|b| b.digest.clone()));
                freed.layers.push(layer);
            } else {
                tx.put_layer(&layer)?;
            }
        }
        // A blob another image or layer still uses stays.
        let mut used = BTreeSet::new();
        for other in tx.images()? {
            used.insert(other.id.clone());
            used.extend(other.manifests.values().map(|(d, _)| d.clone()));
        }
        for layer in tx.layers()? {
            used.extend(layer.blobs.iter().map(|b| b.digest.clone()));
        }
        freed.blobs.retain(|b| !used.contains(b) && !self.leased(b));
        Ok(freed)
    }

    /// Deletes content whose records are gone. A crash here leaves unrecorded files that the
    /// next start (layers) or garbage collection (blobs) removes.
    fn remove_content(&self, freed: &Freed) {
        for layer in &freed.layers {
            if let Err(e) = berth_snapshot::remove_tree(&self.layer_dir(layer)) {
                tracing::warn!(layer = %layer.chain_id, error = %e, "removing layer directory");
            }
        }
        for blob in &freed.blobs {
            if let Ok(d) = blob.parse::<Digest>() {
                if let Err(e) = self.blobs.delete(&d) {
                    tracing::warn!(blob = %blob, error = %e, "removing blob");
                }
            }
        }
    }

    /// Removes dangling images (all unused ones with `all`); returns what was deleted and
    /// the bytes reclaimed.
    pub fn prune(&self, all: bool, filters: &Filters) -> Result<(Vec<Deleted>, u64)> {
        for key in filters.keys() {
            if !matches!(key.as_str(), "dangling" | "label" | "label!" | "until") {
                return Err(Error::InvalidArgument(format!("invalid filter '{key}'")));
            }
        }
        let all = all || filters.get("dangling").is_some_and(|v| v.iter().any(|x| x == "false" || x == "0"));
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for view in self.views()? {
            if !all && !view.repo_tags.is_empty() {
                continue;
            }
            // Images containers use are never pruned.
            if self.image_user(&view.record.id).is_some() {
                continue;
            }
            let labels = view.parsed.labels();
            let label_ok = |l: &String, have: &BTreeMap<String, String>| match l.split_once('=') {
                Some((k, v)) => have.get(k).is_some_and(|x| x == v),
                None => have.contains_key(l),
            };
            if filters.get("label").is_some_and(|ls| !ls.iter().all(|l| label_ok(l, &labels))) {
                continue;
            }
            if filters.get("label!").is_some_and(|ls| ls.iter().any(|l| label_ok(l, &labels))) {
                continue;
            }
            if let Some(limit) = filters.get("until").and_then(|v| v.first()).and_then(|u| parse_time_filter(u)) {
                if view.parsed.created_unix() >= limit {
                    continue;
                }
            }
            let before = self.usage_of_layers()?;
            deleted.extend(self.remove(&view.record.id, true, true)?);
            reclaimed += before.saturating_sub(self.usage_of_layers()?);
        }
        // Blobs left by interrupted pulls and pushes go too.
        reclaimed += self.collect_garbage()?;
        self.events.publish("image", "prune", "", BTreeMap::from([("reclaimed".to_string(), reclaimed.to_string())]));
        Ok((deleted, reclaimed))
    }

    fn usage_of_layers(&self) -> Result<u64> {
        Ok(self.meta.read()?.layers()?.iter().map(|l| l.size).sum())
    }

    /// Disk usage from the database: no filesystem walk.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        Ok(DiskUsage { layers_size: self.usage_of_layers()?, images: self.views()? })
    }

    fn leased(&self, key: &str) -> bool {
        self.leases.lock().unwrap_or_else(|e| e.into_inner()).contains_key(key)
    }

    /// Holds `keys` (chain ids, blob digests) against garbage collection until dropped.
    fn lease(&self, keys: Vec<String>) -> Lease<'_> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        for k in &keys {
            *leases.entry(k.clone()).or_default() += 1;
        }
        Lease { images: self, keys }
    }

    fn layer_lock(&self, chain_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.layer_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(chain_id.to_string()).or_default().clone()
    }

    /// Removes blobs no record references (left by interrupted pulls or crashes) and partial
    /// downloads older than a day. Returns the bytes freed.
    pub fn collect_garbage(&self) -> Result<u64> {
        let tx = self.meta.read()?;
        let mut used = BTreeSet::new();
        for image in tx.images()? {
            used.insert(image.id.clone());
            used.extend(image.manifests.values().map(|(d, _)| d.clone()));
        }
        for layer in tx.layers()? {
            used.extend(layer.blobs.iter().map(|b| b.digest.clone()));
        }
        drop(tx);
        let mut freed = 0;
        for digest in self.blobs.list()? {
            if !used.contains(digest.as_str()) && !self.leased(digest.as_str()) {
                freed += self.blobs.size(&digest).unwrap_or(0);
                self.blobs.delete(&digest)?;
            }
        }
        freed += self.blobs.clean_ingests(std::time::Duration::from_secs(24 * 3600))?;
        Ok(freed)
    }
}

#[derive(Default)]
struct Freed {
    layers: Vec<LayerRecord>,
    blobs: Vec<String>,
}

struct Lease<'a> {
    images: &'a Images,
    keys: Vec<String>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut leases = self.images.leases.lock().unwrap_or_else(|e| e.into_inner());
        for k in &self.keys {
            if let Some(n) = leases.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    leases.remove(k);
                }
            }
        }
    }
}

pub(super) fn remove_ref(tx: &berth_store::WriteTx<'_>, full: &str) -> Result<()> {
    if full.contains('@') {
        tx.delete_digest_ref(full)?;
    } else {
        tx.delete_tag(full)?;
    }
    Ok(())
}

/// docker's rule for deleting by id without force: allowed when the image has at most one
/// tag and its digest references are all of that tag's repository.
fn is_single_reference(refs: &[String]) -> bool {
    if refs.len() <= 1 {
        return true;
    }
    let (digests, tags): (Vec<&String>, Vec<&String>) = refs.iter().partition(|r| r.contains('@'));
    if tags.len() > 1 {
        return false;
    }
    let repo = repository_of(tags.first().copied().unwrap_or(&refs[0]));
    digests.iter().all(|d| repository_of(d) == repo)
}

fn familiar_of(full: &str) -> String {
    Reference::parse_normalized(full).map(|r| r.familiar_string()).unwrap_or_else(|_| full.to_string())
}

/// The repository part of a stored reference (`docker.io/library/busybox`).
fn repository_of(full: &str) -> String {
    Reference::parse_normalized(full).map(|r| r.name()).unwrap_or_else(|_| full.to_string())
}

/// docker's `reference=` filter: a glob on the familiar name, with or without the tag.
fn reference_matches(pattern: &str, familiar_tagged: &str) -> bool {
    let name = familiar_tagged.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or(familiar_tagged, |(n, _)| n);
    glob_match(pattern, familiar_tagged) || glob_match(pattern, name)
}

/// Go's `path.Match` subset: `*` (not across `/`), `?` and literal characters.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).take_while(|&i| i == 0 || t[i - 1] != b'/').any(|i| go(&p[1..], &t[i..])),
            Some(b'?') => !t.is_empty() && t[0] != b'/' && go(&p[1..], &t[1..]),
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// A time filter value: unix seconds (with optional fraction), RFC 3339, or a duration
/// ago like `10m`, `2h`.
pub fn parse_time_filter(value: &str) -> Option<i64> {
    if let Ok(secs) = value.split('.').next().unwrap_or("").parse::<i64>() {
        if !value.ends_with(|c: char| c.is_ascii_alphabetic()) {
            return Some(secs);
        }
    }
    if let Some(t) = config::parse_rfc3339(value) {
        return Some(t);
    }
    let (num, unit) = value.split_at(value.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(now_unix() - secs as i64)
}

impl Images {
    /// Where the unpacked layers of an image live (bottom first), for mounting.
    pub fn layer_paths(&self, image: &ImageRecord) -> Result<Vec<PathBuf>> {
        let tx = self.meta.read()?;
        image
            .layers
            .iter()
            .map(|c| {
                tx.layer(c)?
                    .map(|l| self.layer_dir(&l))
                    .ok_or_else(|| Error::Internal(format!("image {} lacks layer {c}", image.id)))
            })
            .collect()
    }

    pub fn tmp_dir(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new().prefix("layer-").tempdir_in(&self.tmp_root).map_err(Error::io("create temp dir in", &self.tmp_root))
    }

    pub fn layers_root(&self) -> &Path {
        &self.layers_root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter_globs_like_docker() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busy*", "busybox:latest"));
        assert!(reference_matches("busybox:lat*", "busybox:latest"));
        assert!(!reference_matches("busy", "busybox:latest"));
        assert!(!reference_matches("*", "library/x:1"));
        assert!(reference_matches("*/*", "library/x:1"));
        assert!(reference_matches("localhost:5000/a", "localhost:5000/a:v1"));
    }

    #[test]
    fn single_reference_rule() {
        let t = |s: &str| s.replace("DIGEST", &format!("sha256:{}", "0".repeat(64)));
        assert!(is_single_reference(&[t("docker.io/library/a:1")]));
        assert!(is_single_reference(&[t("docker.io/library/a:1"), t("docker.io/library/a@DIGEST")]));
        assert!(!is_single_reference(&[t("docker.io/library/a:1"), t("docker.io/library/a:2")]));
        assert!(!is_single_reference(&[t("docker.io/library/a:1"), t("docker.io/library/b@DIGEST")]));
    }

    #[test]
    fn time_filters() {
        assert_eq!(parse_time_filter("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time_filter("1700000000.5"), Some(1_700_000_000));
        assert_eq!(parse_time_filter("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        let ago = parse_time_filter("10m").unwrap();
        assert!((now_unix() - ago - 600).abs() < 5);
        assert_eq!(parse_time_filter("bogus"), None);
    }
}

/// A search result from a registry's `/v1/search`.
pub use berth_distribution::SearchResult;

impl Images {
    /// Searches the registry named by the term's first component (docker.io by default).
    pub async fn search(&self, term: &str, limit: u32, auth: Option<&berth_distribution::auth::AuthConfig>) -> Result<Vec<SearchResult>> {
        let (registry, term) = match term.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => (first, rest),
            _ => ("docker.io", term),
        };
        Ok(self.client.search(registry, term, limit, auth).await?.results)
    }

    /// Checks credentials against a registry as `docker login` does; returns an identity
    /// token when the registry issued one.
    pub async fn login(&self, auth: &berth_distribution::auth::AuthConfig) -> Result<Option<String>> {
        let server = auth.server_address.clone();
        let token = self.client.login(&server, auth).await?;
        self.events.publish("registry", "login", &server, BTreeMap::new());
        Ok(token)
    }
}
