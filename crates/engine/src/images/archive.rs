//! `save` and `load`: image archives in docker's `docker save` format that are at the same
//! time OCI image layouts (`manifest.json` and `repositories` for docker, `oci-layout`,
//! `index.json` and `blobs/sha256/*` for OCI tools), as docker 25+ writes them.
//!
//! Save streams: every layer is written as its uncompressed tar, decompressed from the
//! stored blob (never re-tarred from the layer directory, so its bytes hash to the diff id).
//! Load streams too: each archive entry goes straight into the blob store as it arrives
//! (small ones are held in memory), so the archive is never spooled whole; once the
//! manifest (docker puts it last) is read, layers are unpacked from the stored blobs into
//! temporary directories, synced, renamed and recorded in one transaction, like a pull.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_distribution::manifest::{media_type, Descriptor, Index, Manifest, Platform};
use berth_distribution::reference::Reference;
use berth_snapshot::Compression;
use berth_store::digest::Hasher;
use berth_store::{Digest, ImageRecord, LayerBlob, LayerRecord};
use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::config::{chain_ids, ImageConfig};
use super::{hex_of, now_nanos, now_unix, parse_reference, Images, Lease};
use crate::error::{Error, ErrorKind, Result};
use crate::progress::Progress;

pub(super) const MEDIA_LAYER_GZIP: &str = media_type::DOCKER_LAYER_GZIP;
const MEDIA_LAYER_ZSTD: &str = media_type::OCI_LAYER_ZSTD;
const MEDIA_LAYER_TAR: &str = media_type::OCI_LAYER;
const MEDIA_OCI_MANIFEST: &str = media_type::OCI_MANIFEST;
const MEDIA_OCI_INDEX: &str = media_type::OCI_INDEX;
const MEDIA_OCI_CONFIG: &str = media_type::OCI_CONFIG;
const MEDIA_DOCKER_MANIFEST: &str = media_type::DOCKER_MANIFEST;
const MEDIA_DOCKER_LIST: &str = media_type::DOCKER_MANIFEST_LIST;
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Archive entries up to this size are kept in memory while the archive streams in (configs,
/// manifests, docker's per-layer `json`/`VERSION` files); larger ones go to the blob store.
const SMALL_ENTRY: u64 = 1 << 20;
/// At most this much is kept in memory; further small entries go to the blob store too.
const SMALL_TOTAL: u64 = 64 << 20;
/// Largest JSON document (manifest, index, config) read from an archive.
const MAX_JSON: u64 = 8 << 20;
/// Symlinks and hardlinks followed to find an entry, at most.
const MAX_LINK_HOPS: usize = 16;
const COPY_BUFFER: usize = 1 << 20;

/// The media type recorded for a layer blob of this compression.
fn layer_media_type(compression: Compression) -> &'static str {
    match compression {
        Compression::Gzip => MEDIA_LAYER_GZIP,
        Compression::Zstd => MEDIA_LAYER_ZSTD,
        Compression::None => MEDIA_LAYER_TAR,
    }
}

/// A blob whose digest is known only once it is written (an archive entry, an import's gzip
/// layer): written to a temporary file beside the layer temp dirs while it is hashed, then
/// fsynced and renamed into the blob store under its digest. The store's own ingest needs the
/// digest up front.
pub(super) struct NewBlob {
    file: BufWriter<tempfile::NamedTempFile>,
    hasher: Hasher,
    size: u64,
}

impl NewBlob {
    pub(super) fn create(tmp_root: &Path) -> Result<NewBlob> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(tmp_root)
            .map_err(Error::io("create temp file in", tmp_root))?;
        Ok(NewBlob { file: BufWriter::with_capacity(COPY_BUFFER, file), hasher: Hasher::sha256(), size: 0 })
    }

    /// Moves the blob into the store, held for the operation from before it appears there.
    /// Returns its digest and size.
    pub(super) fn commit(self, touched: &mut Touched<'_>) -> Result<(Digest, u64)> {
        let blobs = &touched.images.blobs;
        let digest = self.hasher.finish();
        let size = self.size;
        let file = self.file.into_inner().map_err(|e| {
            let (error, file) = e.into_parts();
            Error::io("write", file.get_ref().path())(error)
        })?;
        touched.hold(&digest);
        if blobs.contains(&digest) {
            return Ok((digest, size));
        }
        file.as_file().sync_all().map_err(Error::io("fsync", file.path()))?;
        let dest = blobs.path(&digest);
        match file.persist(&dest) {
            Ok(_) => {
                if let Some(dir) = dest.parent() {
                    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("fsync", dir))?;
                }
            }
            // Another filesystem: copy through the store's verified ingest instead.
            Err(e) if e.error.raw_os_error() == Some(libc_exdev()) => {
                let mut source = e.file.reopen().map_err(Error::io("reopen", e.file.path()))?;
                let mut ingest = blobs.ingest(&digest, Some(size))?;
                if ingest.offset() > 0 {
                    ingest.restart()?;
                }
                let mut buf = vec![0u8; COPY_BUFFER];
                loop {
                    let n = source.read(&mut buf).map_err(Error::io("read", e.file.path()))?;
                    if n == 0 {
                        break;
                    }
                    ingest.write_all(&buf[..n])?;
                }
                ingest.commit()?;
            }
            Err(e) => return Err(Error::io("rename into", &dest)(e.error)),
        }
        touched.created.push(digest.clone());
        Ok((digest, size))
    }
}

/// The blobs an operation writes or relies on: leased against garbage collection from the
/// moment it knows them, and the ones it created removed at the end unless a record names
/// them (an archive entry that was no layer, everything of a load that failed).
pub(super) struct Touched<'a> {
    images: &'a Images,
    created: Vec<Digest>,
    leases: Vec<Lease<'a>>,
}

impl<'a> Touched<'a> {
    pub(super) fn new(images: &'a Images) -> Touched<'a> {
        Touched { images, created: Vec::new(), leases: Vec::new() }
    }

    pub(super) fn hold(&mut self, digest: &Digest) {
        self.leases.push(self.images.lease(vec![digest.to_string()]));
    }

    /// Stores small content as a blob, held.
    pub(super) fn put(&mut self, data: &[u8]) -> Result<Digest> {
        let digest = Digest::sha256_of(data);
        self.hold(&digest);
        if !self.images.blobs.contains(&digest) {
            self.images.blobs.put(data)?;
            self.created.push(digest.clone());
        }
        Ok(digest)
    }

    /// Releases the blobs and removes the created ones nothing records.
    pub(super) fn finish(self) {
        let Touched { images, created, leases } = self;
        drop(leases);
        images.discard_unused(&created);
    }
}

fn libc_exdev() -> i32 {
    rustix::io::Errno::XDEV.raw_os_error()
}

impl Write for NewBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Rate limit for progress lines: at most every 100 ms, and always at the end.
pub(super) struct Meter {
    total: u64,
    last: Option<Instant>,
}

impl Meter {
    pub(super) fn new(total: u64) -> Meter {
        Meter { total, last: None }
    }

    pub(super) fn due(&mut self, current: u64) -> bool {
        let due = current >= self.total || self.last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if due {
            self.last = Some(Instant::now());
        }
        due
    }
}

/// docker's short id: the first 12 hex digits of a digest.
pub(super) fn short(digest: &str) -> &str {
    let hex = hex_of(digest);
    &hex[..hex.len().min(12)]
}

/// Whether a user-given name carries a tag or digest (`busybox:1`, `x@sha256:..`), as
/// opposed to a bare repository name that normalization would give `:latest`.
fn names_tag_or_digest(name: &str) -> bool {
    Reference::parse_named(name).is_ok_and(|r| !r.is_name_only())
}

// ---------------------------------------------------------------------------------------
// save

/// One image of an archive being written.
struct SaveImage {
    id: Digest,
    config: Vec<u8>,
    diff_ids: Vec<String>,
    tags: Vec<Reference>,
    /// Modification time of its entries: the image's creation time.
    mtime: u64,
}

/// One layer of an archive being written, its stored blob already open (so a concurrent
/// removal cannot take the content away mid-save).
struct SaveLayer {
    diff_id: Digest,
    blob: File,
    blob_digest: String,
    compressed: bool,
    /// Bytes of the uncompressed tar.
    size: u64,
    /// Creation time of the first image using it.
    mtime: u64,
}

struct SavePlan {
    images: Vec<SaveImage>,
    layers: Vec<SaveLayer>,
}

#[derive(Serialize)]
struct DockerManifestOut {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A descriptor of archive content, no platform or annotations unless given.
fn descriptor(media_type: &str, digest: String, size: u64, annotations: BTreeMap<String, String>) -> Descriptor {
    Descriptor { media_type: media_type.to_string(), digest, size, urls: Vec::new(), annotations, platform: None, artifact_type: None }
}

/// Sends the archive to a channel in chunks, for a streamed HTTP body.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
}

impl ChannelWriter {
    const CHUNK: usize = 256 << 10;

    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the receiver of the archive went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::CHUNK {
            self.send_buffered()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffered()
    }
}

impl Images {
    /// Writes the images `names` (references or ids) to `out` as one archive: docker's save
    /// format and an OCI image layout at once. A bare repository name saves all its tags; an
    /// id saves the image without names. Nothing is written when a name is unknown.
    pub async fn save(self: &Arc<Self>, names: &[String], out: impl Write + Send + 'static) -> Result<()> {
        let plan = self.plan_save_task(names).await?;
        let images = Arc::clone(self);
        tokio::task::spawn_blocking(move || images.write_archive(plan, out))
            .await
            .map_err(|e| Error::Internal(format!("save task: {e}")))?
    }

    /// Like [`Images::save`], as a stream of chunks for an HTTP body. Unknown names fail here,
    /// before the first chunk; a later failure ends the stream with an error item.
    pub async fn save_stream(self: &Arc<Self>, names: &[String]) -> Result<mpsc::Receiver<io::Result<Bytes>>> {
        let plan = self.plan_save_task(names).await?;
        let (tx, rx) = mpsc::channel(16);
        let images = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut writer = ChannelWriter { tx: tx.clone(), buf: BytesMut::new() };
            let result = images.write_archive(plan, &mut writer).and_then(|()| writer.flush().map_err(Error::io("send", "archive")));
            if let Err(e) = result {
                tracing::warn!(error = %e, "save failed while streaming");
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        });
        Ok(rx)
    }

    async fn plan_save_task(self: &Arc<Self>, names: &[String]) -> Result<SavePlan> {
        if names.is_empty() {
            return Err(Error::InvalidArgument("save: no image names given".to_string()));
        }
        let images = Arc::clone(self);
        let names = names.to_vec();
        tokio::task::spawn_blocking(move || images.plan_save(&names))
            .await
            .map_err(|e| Error::Internal(format!("save task: {e}")))?
    }

    /// Resolves the names, reads the configs and opens every layer's blob.
    fn plan_save(&self, names: &[String]) -> Result<SavePlan> {
        // Image id -> tags, in the order the names came.
        let mut order: Vec<String> = Vec::new();
        let mut tags: HashMap<String, Vec<Reference>> = HashMap::new();
        for name in names {
            for (id, tag) in self.resolve_for_save(name)? {
                if !tags.contains_key(&id) {
                    order.push(id.clone());
                }
                let list = tags.entry(id).or_default();
                if let Some(tag) = tag {
                    if !list.iter().any(|t| t.to_string() == tag.to_string()) {
                        list.push(tag);
                    }
                }
            }
        }
        let tx = self.meta.read()?;
        let mut plan = SavePlan { images: Vec::new(), layers: Vec::new() };
        let mut seen_layers = HashSet::new();
        for id in order {
            let record = tx.image(&id)?.ok_or_else(|| Error::NoSuchImage(id.clone()))?;
            let digest: Digest = record.id.parse()?;
            let config = self.blobs.read(&digest)?;
            let parsed = ImageConfig::parse(&config).map_err(|e| Error::Internal(format!("save image {id}: {e}")))?;
            let chains = chain_ids(&parsed.rootfs.diff_ids);
            if chains != record.layers {
                return Err(Error::Internal(format!("save image {id}: its config does not match its recorded layers")));
            }
            let mtime = parsed.created_unix().max(0) as u64;
            for chain in &chains {
                let layer = tx.layer(chain)?.ok_or_else(|| Error::Internal(format!("save image {id}: layer {chain} is not recorded")))?;
                if seen_layers.insert(layer.diff_id.clone()) {
                    plan.layers.push(self.open_layer_for_save(&layer, mtime)?);
                }
            }
            plan.images.push(SaveImage { id: digest, config, diff_ids: parsed.rootfs.diff_ids, tags: tags.remove(&id).unwrap_or_default(), mtime });
        }
        Ok(plan)
    }

    /// What a save name means: (image id, tag to write) pairs.
    fn resolve_for_save(&self, name: &str) -> Result<Vec<(String, Option<Reference>)>> {
        if let Ok(reference) = Reference::parse_normalized(name) {
            let tx = self.meta.read()?;
            if !names_tag_or_digest(name) {
                // A bare repository name: every tag of it, as docker does.
                let repo = reference.name();
                let mut out = Vec::new();
                for (full, id) in tx.tags()? {
                    if let Ok(r) = Reference::parse_normalized(&full) {
                        if r.name() == repo {
                            out.push((id, Some(r)));
                        }
                    }
                }
                if !out.is_empty() {
                    out.sort_by_key(|(_, r)| r.as_ref().map(|r| r.to_string()));
                    return Ok(out);
                }
            } else if reference.digest().is_none() {
                if let Some(id) = tx.tag(&reference.to_string())? {
                    return Ok(vec![(id, Some(reference))]);
                }
            }
        }
        // An id, an id prefix or a digest reference: the image without names.
        Ok(vec![(self.lookup(name)?.id, None)])
    }

    /// Picks the stored blob a layer is saved from: the uncompressed one when there is one
    /// (copied as is), else a compressed one, read once here to learn the tar's size (the tar
    /// header needs it before the content) and to check it against the diff id.
    fn open_layer_for_save(&self, layer: &LayerRecord, mtime: u64) -> Result<SaveLayer> {
        let diff_id: Digest = layer.diff_id.parse()?;
        let mut compressed = None;
        for blob in &layer.blobs {
            let Ok(digest) = blob.digest.parse::<Digest>() else { continue };
            let Ok(mut file) = self.blobs.open_blob(&digest) else { continue };
            let mut magic = [0u8; 4];
            let n = read_prefix(&mut file, &mut magic).map_err(Error::io("read", self.blobs.path(&digest)))?;
            file.seek(SeekFrom::Start(0)).map_err(Error::io("seek", self.blobs.path(&digest)))?;
            if berth_snapshot::detect_compression(&magic[..n]) == Compression::None && digest == diff_id {
                let size = file.metadata().map_err(Error::io("stat", self.blobs.path(&digest)))?.len();
                return Ok(SaveLayer { diff_id, blob: file, blob_digest: blob.digest.clone(), compressed: false, size, mtime });
            }
            if compressed.is_none() {
                compressed = Some((file, blob.digest.clone()));
            }
        }
        let Some((mut file, blob_digest)) = compressed else {
            return Err(Error::Internal(format!(
                "save: layer {} has no stored blob to write it from (pull the image again)",
                layer.diff_id
            )));
        };
        let (actual, size) = hash_plain(&mut file).map_err(|e| Error::Internal(format!("save: read blob {blob_digest} of layer {}: {e}", layer.diff_id)))?;
        if actual != diff_id {
            return Err(Error::Internal(format!("save: blob {blob_digest} unpacks to {actual}, not to its layer's diff id {diff_id}")));
        }
        file.seek(SeekFrom::Start(0)).map_err(Error::io("seek", self.blobs.path(&blob_digest.parse()?)))?;
        Ok(SaveLayer { diff_id, blob: file, blob_digest, compressed: true, size, mtime })
    }

    /// Writes the archive: layers, configs and OCI manifests under `blobs/sha256/`, then
    /// `index.json`, `manifest.json`, `oci-layout` and `repositories`.
    fn write_archive(&self, plan: SavePlan, out: impl Write) -> Result<()> {
        let mut out = TarWriter { out: BufWriter::with_capacity(COPY_BUFFER, out) };
        out.dir("blobs/", 0)?;
        out.dir("blobs/sha256/", 0)?;
        let mut sizes: HashMap<String, u64> = HashMap::new();
        for layer in plan.layers {
            let path = format!("blobs/sha256/{}", layer.diff_id.hex());
            let mtime = layer.mtime;
            let (diff_id, size, blob_digest) = (layer.diff_id.clone(), layer.size, layer.blob_digest.clone());
            let source = BufReader::with_capacity(COPY_BUFFER, layer.blob);
            let plain: Box<dyn Read> = if layer.compressed { berth_snapshot::decompress(source)? } else { Box::new(source) };
            let actual = out
                .file_from(&path, size, mtime, plain)
                .map_err(|e| Error::Internal(format!("save: write layer {diff_id} from blob {blob_digest}: {e}")))?;
            if actual != diff_id {
                return Err(Error::Internal(format!("save: blob {blob_digest} changed while saving: it unpacks to {actual}, not {diff_id}")));
            }
            sizes.insert(diff_id.to_string(), size);
        }

        let mut index = Index {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_INDEX.to_string()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
        };
        let mut docker_manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for image in &plan.images {
            out.bytes(&format!("blobs/sha256/{}", image.id.hex()), &image.config, image.mtime)?;
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(MEDIA_OCI_MANIFEST.to_string()),
                artifact_type: None,
                config: descriptor(MEDIA_OCI_CONFIG, image.id.to_string(), image.config.len() as u64, BTreeMap::new()),
                layers: image
                    .diff_ids
                    .iter()
                    .map(|d| descriptor(MEDIA_LAYER_TAR, d.clone(), sizes.get(d).copied().unwrap_or(0), BTreeMap::new()))
                    .collect(),
                subject: None,
                annotations: BTreeMap::new(),
            };
            let manifest_bytes = to_json(&manifest)?;
            let manifest_digest = Digest::sha256_of(&manifest_bytes);
            out.bytes(&format!("blobs/sha256/{}", manifest_digest.hex()), &manifest_bytes, image.mtime)?;
            let entry = |annotations| descriptor(MEDIA_OCI_MANIFEST, manifest_digest.to_string(), manifest_bytes.len() as u64, annotations);
            if image.tags.is_empty() {
                index.manifests.push(entry(BTreeMap::new()));
            }
            for tag in &image.tags {
                let short_tag = tag.tag().unwrap_or("latest").to_string();
                index.manifests.push(entry(BTreeMap::from([
                    (ANNOTATION_IMAGE_NAME.to_string(), tag.to_string()),
                    (ANNOTATION_REF_NAME.to_string(), short_tag.clone()),
                ])));
                if let Some(top) = image.diff_ids.last() {
                    repositories.entry(tag.familiar_name()).or_default().insert(short_tag, hex_of(top).to_string());
                }
            }
            docker_manifest.push(DockerManifestOut {
                config: format!("blobs/sha256/{}", image.id.hex()),
                repo_tags: (!image.tags.is_empty()).then(|| image.tags.iter().map(|t| t.familiar_string()).collect()),
                layers: image.diff_ids.iter().map(|d| format!("blobs/sha256/{}", hex_of(d))).collect(),
            });
        }
        out.bytes("index.json", &to_json(&index)?, 0)?;
        out.bytes("manifest.json", &to_json(&docker_manifest)?, 0)?;
        out.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0)?;
        if !repositories.is_empty() {
            out.bytes("repositories", &to_json(&repositories)?, 0)?;
        }
        out.finish()?;
        for image in &plan.images {
            self.events.publish("image", "save", image.id.as_str(), BTreeMap::from([("name".to_string(), image.id.to_string())]));
        }
        Ok(())
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Internal(format!("encode archive json: {e}")))
}

fn read_prefix(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n)
}

/// The diff id and size of the tar inside a compressed blob.
fn hash_plain(file: &mut File) -> Result<(Digest, u64)> {
    let mut plain = berth_snapshot::decompress(BufReader::with_capacity(COPY_BUFFER, file))?;
    let mut hasher = Hasher::sha256();
    let mut size = 0u64;
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = plain.read(&mut buf).map_err(|e| Error::Internal(format!("decompress: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finish(), size))
}

/// A plain tar writer: headers, content and padding, written by hand so a failure mid-entry
/// leaves a visibly truncated archive rather than a finished-looking one.
struct TarWriter<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> TarWriter<W> {
    fn header(path: &str, size: u64, mtime: u64, kind: tar::EntryType, mode: u32) -> io::Result<tar::Header> {
        let mut header = tar::Header::new_ustar();
        header.set_path(path)?;
        header.set_size(size);
        header.set_mtime(mtime);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(kind);
        header.set_cksum();
        Ok(header)
    }

    fn dir(&mut self, path: &str, mtime: u64) -> Result<()> {
        let header = Self::header(path, 0, mtime, tar::EntryType::Directory, 0o755).map_err(Error::io("write archive entry", path))?;
        self.out.write_all(header.as_bytes()).map_err(Error::io("write archive entry", path))
    }

    fn bytes(&mut self, path: &str, data: &[u8], mtime: u64) -> Result<()> {
        self.file_from(path, data.len() as u64, mtime, data).map(|_| ()).map_err(Error::io("write archive entry", path))
    }

    /// Writes an entry of exactly `size` bytes read from `data`; returns their sha256.
    fn file_from(&mut self, path: &str, size: u64, mtime: u64, mut data: impl Read) -> io::Result<Digest> {
        let header = Self::header(path, size, mtime, tar::EntryType::Regular, 0o644)?;
        self.out.write_all(header.as_bytes())?;
        let mut hasher = Hasher::sha256();
        let mut left = size;
        let mut buf = vec![0u8; COPY_BUFFER.min(size.max(1) as usize)];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = data.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("content ended {left} bytes early")));
            }
            hasher.update(&buf[..n]);
            self.out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        let pad = (512 - (size % 512) as usize) % 512;
        self.out.write_all(&[0u8; 512][..pad])?;
        Ok(hasher.finish())
    }

    fn finish(mut self) -> Result<()> {
        self.out.write_all(&[0u8; 1024]).map_err(Error::io("write", "archive end"))?;
        self.out.flush().map_err(Error::io("write", "archive end"))
    }
}

// ---------------------------------------------------------------------------------------
// load

/// An archive entry as it was stored while the archive streamed in.
enum Stored {
    Memory(Vec<u8>),
    Blob { digest: Digest, size: u64 },
    /// A symlink or hardlink, already resolved to an archive path.
    Link(String),
}

/// The archive's entries by normalized path.
struct Spooled {
    entries: HashMap<String, Stored>,
}

/// One image found in an archive, ready to unpack.
struct LoadImage {
    id: String,
    config: ImageConfig,
    chains: Vec<String>,
    layers: Vec<LayerSource>,
    tags: Vec<Reference>,
}

/// A layer blob in the store, and the archive entry it came from (for error messages).
#[derive(Clone)]
struct LayerSource {
    entry: String,
    digest: Digest,
    size: u64,
    compression: Compression,
}

#[derive(Deserialize)]
struct DockerManifestIn {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// Normalizes an archive path: `./` and duplicate slashes go; absolute paths and `..` are
/// refused (an archive only names files inside itself).
fn archive_path(raw: &str) -> std::result::Result<String, &'static str> {
    if raw.starts_with('/') {
        return Err("absolute paths are not allowed in an image archive");
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("paths with \"..\" are not allowed in an image archive"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Resolves a symlink target relative to the link's directory; it must stay in the archive.
fn resolve_link(link: &str, target: &str) -> std::result::Result<String, &'static str> {
    if target.starts_with('/') {
        return Err("symlink target is absolute, outside the archive");
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("symlink target leaves the archive");
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn bad_archive(why: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("load: {why}"))
}

fn bad_entry(entry: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("load: archive entry {entry:?}: {why}"))
}

/// Names the archive entry in an error from below, keeping whether the input was at fault.
fn in_entry(entry: &str, e: Error) -> Error {
    let message = format!("load: archive entry {entry:?}: {e}");
    match e.kind() {
        ErrorKind::InvalidArgument | ErrorKind::NotFound => Error::InvalidArgument(message),
        _ => Error::Internal(message),
    }
}

/// Counts bytes read and reports them as a progress bar.
struct ProgressReader<'a, R> {
    inner: R,
    read: u64,
    meter: Meter,
    id: String,
    progress: Option<&'a Progress>,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Some(progress) = self.progress {
            if self.meter.due(self.read) {
                progress.bar(&self.id, "Loading layer", self.read, self.meter.total);
            }
        }
        Ok(n)
    }
}

impl Images {
    /// Loads images from an archive: docker's save format (any docker version's layout) or
    /// an OCI image layout, the tar itself plain, gzip or zstd, layers compressed or not.
    /// Returns docker's lines ("Loaded image: busybox:latest", "Loaded image ID: sha256:...").
    /// A bad archive changes nothing: no image, layer or tag appears.
    pub async fn load(self: &Arc<Self>, input: impl Read + Send + 'static, quiet: bool, progress: &Progress) -> Result<Vec<String>> {
        let images = Arc::clone(self);
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || {
            let mut touched = Touched::new(&images);
            let result = images.load_blocking(input, quiet, &progress, &mut touched);
            touched.finish();
            result
        })
        .await
        .map_err(|e| Error::Internal(format!("load task: {e}")))?
    }

    fn load_blocking(&self, input: impl Read, quiet: bool, progress: &Progress, touched: &mut Touched<'_>) -> Result<Vec<String>> {
        let spooled = self.spool(input, touched)?;
        let plan = if spooled.entries.contains_key("manifest.json") {
            self.docker_images(&spooled, touched)?
        } else if spooled.entries.contains_key("index.json") {
            self.oci_images(&spooled, touched)?
        } else {
            return Err(bad_archive("the archive has neither manifest.json nor index.json: not an image archive"));
        };
        let plan = merge_images(plan);

        // The blobs are held already; the layers need holding too.
        let _lease = self.lease(plan.iter().flat_map(|i| i.chains.iter().cloned()).collect());

        // Unpack what is missing, each layer once.
        let mut unpacked: Vec<(String, tempfile::TempDir)> = Vec::new();
        let mut sizes: HashMap<String, u64> = HashMap::new();
        let mut seen = HashSet::new();
        for image in &plan {
            for (i, chain) in image.chains.iter().enumerate() {
                if !seen.insert(chain.clone()) {
                    continue;
                }
                let source = &image.layers[i];
                let diff_id: Digest = image.config.rootfs.diff_ids[i].parse()?;
                let lock = self.layer_lock(chain);
                let _guard = lock.blocking_lock();
                if self.meta.read()?.layer(chain)?.is_some() || self.layers_root.join(hex_of(chain)).exists() {
                    continue;
                }
                let tmp = self.tmp_dir()?;
                let path = self.blobs.path(&source.digest);
                let file = File::open(&path).map_err(Error::io("open", &path))?;
                let reader = ProgressReader {
                    inner: file,
                    read: 0,
                    meter: Meter::new(source.size),
                    id: short(diff_id.as_str()).to_string(),
                    progress: (!quiet).then_some(progress),
                };
                let size = super::pull::unpack(BufReader::with_capacity(COPY_BUFFER, reader), tmp.path(), &diff_id)
                    .map_err(|e| in_entry(&source.entry, e))?;
                sizes.insert(chain.clone(), size);
                unpacked.push((chain.clone(), tmp));
            }
        }

        // Durable before visible: one syncfs, renames, then the record.
        if !unpacked.is_empty() {
            berth_snapshot::sync_filesystem(&self.layers_root)?;
        }
        for (chain, tmp) in unpacked {
            let dest = self.layers_root.join(hex_of(&chain));
            if dest.exists() {
                continue; // a concurrent pull or load put the same layer in place first
            }
            let path = tmp.keep();
            std::fs::rename(&path, &dest).map_err(Error::io("rename into", &dest))?;
        }
        File::open(&self.layers_root).and_then(|d| d.sync_all()).map_err(Error::io("fsync", &self.layers_root))?;

        let lines = self.record_loaded(&plan, &sizes)?;
        for image in &plan {
            self.events.publish("image", "load", &image.id, BTreeMap::from([("name".to_string(), image.id.clone())]));
        }
        Ok(lines)
    }

    /// Reads the whole archive once, storing each file entry (small ones in memory, large
    /// ones as blobs) and each link as an alias.
    ///
    /// A layer blob is kept in the form the archive has it: docker's uncompressed layer tars
    /// stay uncompressed. Load spends no CPU on compression (docker's does none either), and
    /// a later save copies the blob back byte for byte. The price is paid once, by the first
    /// push, which gzips the layer and records that blob too.
    fn spool(&self, input: impl Read, touched: &mut Touched<'_>) -> Result<Spooled> {
        let plain = berth_snapshot::decompress(BufReader::with_capacity(COPY_BUFFER, input))
            .map_err(|e| bad_archive(format!("read archive: {e}")))?;
        let mut archive = tar::Archive::new(plain);
        let mut entries = HashMap::new();
        let mut in_memory = 0u64;
        let read_error = |e: io::Error| bad_archive(format!("read archive: {e}"));
        for entry in archive.entries().map_err(read_error)? {
            let mut entry = entry.map_err(read_error)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
            if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
                continue;
            }
            let name = archive_path(&raw).map_err(|why| bad_entry(&raw, why))?;
            match kind {
                tar::EntryType::Directory => {}
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.header().size().map_err(|e| bad_entry(&raw, e))?;
                    if size <= SMALL_ENTRY && in_memory + size <= SMALL_TOTAL {
                        let mut data = Vec::with_capacity(size as usize);
                        entry.read_to_end(&mut data).map_err(|e| bad_entry(&raw, format!("read: {e}")))?;
                        in_memory += data.len() as u64;
                        entries.insert(name, Stored::Memory(data));
                    } else {
                        let mut blob = NewBlob::create(&self.tmp_root)?;
                        copy(&mut entry, &mut blob).map_err(|e| bad_entry(&raw, format!("read: {e}")))?;
                        let (digest, size) = blob.commit(touched)?;
                        entries.insert(name, Stored::Blob { digest, size });
                    }
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .ok_or_else(|| bad_entry(&raw, "link without a target"))?;
                    let resolved = if kind == tar::EntryType::Symlink {
                        resolve_link(&name, &target)
                    } else {
                        archive_path(&target).map_err(|_| "hardlink target leaves the archive")
                    }
                    .map_err(|why| bad_entry(&raw, format!("{why} ({target:?})")))?;
                    entries.insert(name, Stored::Link(resolved));
                }
                other => return Err(bad_entry(&raw, format!("unsupported entry type {other:?} in an image archive"))),
            }
        }
        Ok(Spooled { entries })
    }

    /// Images listed by docker's `manifest.json`.
    fn docker_images(&self, spooled: &Spooled, touched: &mut Touched<'_>) -> Result<Vec<LoadImage>> {
        let manifest: Vec<DockerManifestIn> = self.read_json(spooled, "manifest.json")?;
        if manifest.is_empty() {
            return Err(bad_entry("manifest.json", "lists no images"));
        }
        let mut out = Vec::new();
        for item in manifest {
            let config_path = archive_path(&item.config).map_err(|why| bad_entry("manifest.json", format!("config {:?}: {why}", item.config)))?;
            let config_bytes = self.entry_bytes(spooled, &config_path, MAX_JSON)?;
            let config = ImageConfig::parse(&config_bytes).map_err(|e| bad_entry(&config_path, e))?;
            if config.rootfs.diff_ids.len() != item.layers.len() {
                return Err(bad_entry(
                    &config_path,
                    format!("the config lists {} diff ids but manifest.json lists {} layers", config.rootfs.diff_ids.len(), item.layers.len()),
                ));
            }
            let id = touched.put(&config_bytes)?;
            let mut layers = Vec::new();
            for layer in &item.layers {
                let path = archive_path(layer).map_err(|why| bad_entry("manifest.json", format!("layer {layer:?}: {why}")))?;
                layers.push(self.layer_source(spooled, &path, touched)?);
            }
            let mut tags = Vec::new();
            for tag in item.repo_tags.unwrap_or_default() {
                tags.push(parse_tag(&tag).map_err(|e| bad_entry("manifest.json", e))?);
            }
            out.push(LoadImage { id: id.to_string(), chains: chain_ids(&config.rootfs.diff_ids), config, layers, tags });
        }
        Ok(out)
    }

    /// Images listed by an OCI layout's `index.json`, with names from its annotations; from
    /// a multi-platform index, the host's platform.
    fn oci_images(&self, spooled: &Spooled, touched: &mut Touched<'_>) -> Result<Vec<LoadImage>> {
        let index: Index = self.read_json(spooled, "index.json")?;
        let mut out = Vec::new();
        for top in &index.manifests {
            let annotations = &top.annotations;
            let (manifest_path, manifest) = self.oci_manifest_for_host(spooled, top, "index.json", 0)?;
            let Some(manifest) = manifest else { continue };
            let config_path = blob_path(&manifest.config.digest).map_err(|e| bad_entry(&manifest_path, e))?;
            let config_bytes = self.entry_bytes(spooled, &config_path, MAX_JSON)?;
            let id = touched.put(&config_bytes)?;
            if id.as_str() != manifest.config.digest {
                return Err(bad_entry(&config_path, format!("content has digest {id}, not {}", manifest.config.digest)));
            }
            let config = ImageConfig::parse(&config_bytes).map_err(|e| bad_entry(&config_path, e))?;
            if config.rootfs.diff_ids.len() != manifest.layers.len() {
                return Err(bad_entry(
                    &manifest_path,
                    format!("lists {} layers but the config lists {} diff ids", manifest.layers.len(), config.rootfs.diff_ids.len()),
                ));
            }
            let mut layers = Vec::new();
            for desc in &manifest.layers {
                let path = blob_path(&desc.digest).map_err(|e| bad_entry(&manifest_path, e))?;
                let source = self.layer_source(spooled, &path, touched)?;
                if source.digest.as_str() != desc.digest || source.size != desc.size {
                    return Err(bad_entry(
                        &path,
                        format!("content is {} ({} bytes), the manifest expects {} ({} bytes)", source.digest, source.size, desc.digest, desc.size),
                    ));
                }
                layers.push(source);
            }
            let mut tags = Vec::new();
            if let Some(name) = oci_image_name(annotations) {
                tags.push(parse_tag(&name).map_err(|e| bad_entry("index.json", e))?);
            }
            out.push(LoadImage { id: id.to_string(), chains: chain_ids(&config.rootfs.diff_ids), config, layers, tags });
        }
        if out.is_empty() {
            return Err(bad_entry("index.json", format!("lists no image for {}", Platform::host())));
        }
        Ok(out)
    }

    /// Follows a descriptor to an image manifest; through an index, picks the host's
    /// platform. `None` for descriptors that are not images (attestations, artifacts).
    fn oci_manifest_for_host(&self, spooled: &Spooled, desc: &Descriptor, from: &str, depth: usize) -> Result<(String, Option<Manifest>)> {
        let path = blob_path(&desc.digest).map_err(|e| bad_entry(from, e))?;
        if depth > 2 {
            return Err(bad_entry(&path, "indexes nested too deep"));
        }
        let bytes = self.entry_bytes(spooled, &path, MAX_JSON)?;
        let actual = Digest::sha256_of(&bytes);
        if actual.as_str() != desc.digest {
            return Err(bad_entry(&path, format!("content has digest {actual}, not {}", desc.digest)));
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad_entry(&path, format!("invalid JSON: {e}")))?;
        let media_type = value.get("mediaType").and_then(|m| m.as_str()).unwrap_or(&desc.media_type).to_string();
        let is_index = media_type == MEDIA_OCI_INDEX || media_type == MEDIA_DOCKER_LIST || (media_type.is_empty() && value.get("manifests").is_some());
        if is_index {
            let index: Index = serde_json::from_value(value).map_err(|e| bad_entry(&path, format!("invalid index: {e}")))?;
            let host = Platform::host();
            let Some(chosen) = host.select(&index.manifests) else {
                return Err(bad_entry(&path, format!("the index has no image for {host}")));
            };
            return self.oci_manifest_for_host(spooled, chosen, &path, depth + 1);
        }
        if !(media_type == MEDIA_OCI_MANIFEST || media_type == MEDIA_DOCKER_MANIFEST || media_type.is_empty()) {
            tracing::info!(entry = %path, media_type = %media_type, "skipping a non-image manifest in an archive");
            return Ok((path, None));
        }
        let manifest: Manifest = serde_json::from_value(value).map_err(|e| bad_entry(&path, format!("invalid manifest: {e}")))?;
        Ok((path, Some(manifest)))
    }

    /// Follows links to a stored entry.
    fn find_entry<'s>(&self, spooled: &'s Spooled, path: &str) -> Result<(String, &'s Stored)> {
        let mut current = path.to_string();
        for _ in 0..MAX_LINK_HOPS {
            match spooled.entries.get(&current) {
                None => return Err(bad_entry(path, "missing from the archive")),
                Some(Stored::Link(target)) => current = target.clone(),
                Some(stored) => return Ok((current, stored)),
            }
        }
        Err(bad_entry(path, "too many levels of links"))
    }

    /// The content of a (small) entry.
    fn entry_bytes(&self, spooled: &Spooled, path: &str, limit: u64) -> Result<Vec<u8>> {
        match self.find_entry(spooled, path)? {
            (_, Stored::Memory(data)) => Ok(data.clone()),
            (_, Stored::Blob { size, .. }) if *size > limit => Err(bad_entry(path, format!("too large ({size} bytes, at most {limit} expected)"))),
            (_, Stored::Blob { digest, .. }) => Ok(self.blobs.read(digest)?),
            (_, Stored::Link(_)) => Err(bad_entry(path, "too many levels of links")),
        }
    }

    fn read_json<T: DeserializeOwned>(&self, spooled: &Spooled, path: &str) -> Result<T> {
        let bytes = self.entry_bytes(spooled, path, MAX_JSON)?;
        serde_json::from_slice(&bytes).map_err(|e| bad_entry(path, format!("invalid JSON: {e}")))
    }

    /// A layer entry as a stored blob, with its compression sniffed from its first bytes.
    fn layer_source(&self, spooled: &Spooled, path: &str, touched: &mut Touched<'_>) -> Result<LayerSource> {
        let (entry, stored) = self.find_entry(spooled, path)?;
        let (digest, size) = match stored {
            Stored::Memory(data) => (touched.put(data)?, data.len() as u64),
            Stored::Blob { digest, size } => (digest.clone(), *size),
            Stored::Link(_) => return Err(bad_entry(path, "too many levels of links")),
        };
        let mut file = self.blobs.open_blob(&digest)?;
        let mut magic = [0u8; 4];
        let n = read_prefix(&mut file, &mut magic).map_err(Error::io("read", self.blobs.path(&digest)))?;
        Ok(LayerSource { entry, digest, size, compression: berth_snapshot::detect_compression(&magic[..n]) })
    }

    /// Records every loaded image, its layers and tags in one transaction.
    fn record_loaded(&self, plan: &[LoadImage], sizes: &HashMap<String, u64>) -> Result<Vec<String>> {
        let tx = self.meta.write()?;
        let mut lines = Vec::new();
        for image in plan {
            let existing = tx.image(&image.id)?;
            let mut total = 0;
            for (i, chain) in image.chains.iter().enumerate() {
                let source = &image.layers[i];
                let mut layer = match tx.layer(chain)? {
                    Some(layer) => layer,
                    None => LayerRecord {
                        chain_id: chain.clone(),
                        diff_id: image.config.rootfs.diff_ids[i].clone(),
                        parent: (i > 0).then(|| image.chains[i - 1].clone()),
                        dir: hex_of(chain).to_string(),
                        size: sizes
                            .get(chain)
                            .copied()
                            .or_else(|| berth_snapshot::disk_usage(&self.layers_root.join(hex_of(chain))).ok())
                            .unwrap_or(0),
                        blobs: Vec::new(),
                        refs: 0,
                    },
                };
                if !layer.blobs.iter().any(|b| b.digest == source.digest.as_str()) {
                    layer.blobs.push(LayerBlob {
                        digest: source.digest.to_string(),
                        size: source.size,
                        media_type: layer_media_type(source.compression).to_string(),
                        sources: Vec::new(),
                    });
                }
                if existing.is_none() {
                    layer.refs += 1;
                }
                total += layer.size;
                tx.put_layer(&layer)?;
            }
            let mut record = existing.unwrap_or(ImageRecord {
                id: image.id.clone(),
                layers: image.chains.clone(),
                size: total,
                added: now_unix(),
                last_tag_time: None,
                manifests: Default::default(),
            });
            for tag in &image.tags {
                let full = tag.to_string();
                let familiar = tag.familiar_string();
                if let Some(old) = tx.tag(&full)?.filter(|old| *old != image.id) {
                    lines.push(format!("The image {familiar} already exists, renaming the old one with ID {old} to empty string"));
                }
                tx.set_tag(&full, &image.id)?;
                record.last_tag_time = Some(now_nanos());
                lines.push(format!("Loaded image: {familiar}"));
            }
            if image.tags.is_empty() {
                lines.push(format!("Loaded image ID: {}", image.id));
            }
            tx.put_image(&record)?;
        }
        tx.commit()?;
        Ok(lines)
    }

    /// Deletes blobs an operation created that nothing records or holds.
    fn discard_unused(&self, created: &[Digest]) {
        if created.is_empty() {
            return;
        }
        let used = match self.used_blobs() {
            Ok(used) => used,
            Err(e) => {
                tracing::warn!(error = %e, "reading the store to discard unused blobs");
                return;
            }
        };
        for digest in created {
            if !used.contains(digest.as_str()) && !self.leased(digest.as_str()) {
                if let Err(e) = self.blobs.delete(digest) {
                    tracing::warn!(blob = %digest, error = %e, "removing an unused blob");
                }
            }
        }
    }

    fn used_blobs(&self) -> Result<HashSet<String>> {
        let tx = self.meta.read()?;
        let mut used = HashSet::new();
        for image in tx.images()? {
            used.insert(image.id.clone());
            used.extend(image.manifests.values().map(|(d, _)| d.clone()));
        }
        for layer in tx.layers()? {
            used.extend(layer.blobs.iter().map(|b| b.digest.clone()));
        }
        Ok(used)
    }
}

/// The archive path of an OCI layout blob; the digest is checked so it cannot name a path.
fn blob_path(digest: &str) -> std::result::Result<String, String> {
    let parsed: Digest = digest.parse().map_err(|e| format!("{e}"))?;
    if parsed.algorithm() != "sha256" {
        return Err(format!("unsupported digest algorithm in {digest}"));
    }
    Ok(format!("blobs/{}/{}", parsed.algorithm(), parsed.hex()))
}

/// The image name an OCI index entry carries: containerd's full name, or a reference name
/// that is a whole reference (a bare tag like `latest` names no repository).
fn oci_image_name(annotations: &BTreeMap<String, String>) -> Option<String> {
    if let Some(name) = annotations.get(ANNOTATION_IMAGE_NAME) {
        return Some(name.clone());
    }
    annotations.get(ANNOTATION_REF_NAME).filter(|n| n.contains(':') || n.contains('/')).cloned()
}

/// A tag from an archive: a valid reference with a tag and no digest.
fn parse_tag(tag: &str) -> std::result::Result<Reference, String> {
    let reference = parse_reference(tag).map_err(|e| format!("invalid tag {tag:?}: {e}"))?;
    if reference.digest().is_some() || !names_tag_or_digest(tag) {
        return Err(format!("invalid tag {tag:?}: a tag must name a repository and a tag"));
    }
    Ok(reference)
}

/// Merges entries naming the same image (one per tag in some archives).
fn merge_images(plan: Vec<LoadImage>) -> Vec<LoadImage> {
    let mut out: Vec<LoadImage> = Vec::new();
    for image in plan {
        match out.iter_mut().find(|i| i.id == image.id) {
            Some(known) => {
                for tag in image.tags {
                    if !known.tags.iter().any(|t| t.to_string() == tag.to_string()) {
                        known.tags.push(tag);
                    }
                }
            }
            None => out.push(image),
        }
    }
    out
}

fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_stay_inside() {
        assert_eq!(archive_path("./manifest.json").unwrap(), "manifest.json");
        assert_eq!(archive_path("blobs//sha256/ab").unwrap(), "blobs/sha256/ab");
        assert!(archive_path("/etc/passwd").is_err());
        assert!(archive_path("a/../../x").is_err());
        assert!(archive_path("..").is_err());
    }

    #[test]
    fn links_resolve_inside() {
        assert_eq!(resolve_link("a/layer.tar", "../b/layer.tar").unwrap(), "b/layer.tar");
        assert_eq!(resolve_link("a/layer.tar", "other.tar").unwrap(), "a/other.tar");
        assert!(resolve_link("a/layer.tar", "../../etc/passwd").is_err());
        assert!(resolve_link("layer.tar", "/etc/passwd").is_err());
    }

    #[test]
    fn names_with_tags() {
        assert!(names_tag_or_digest("busybox:1"));
        assert!(names_tag_or_digest("localhost:5000/x:1"));
        assert!(!names_tag_or_digest("localhost:5000/x"));
        assert!(names_tag_or_digest(&format!("x@sha256:{}", "a".repeat(64))));
        assert!(!names_tag_or_digest("busybox"));
    }

    #[test]
    fn blob_paths_are_digests() {
        let hex = "a".repeat(64);
        assert_eq!(blob_path(&format!("sha256:{hex}")).unwrap(), format!("blobs/sha256/{hex}"));
        assert!(blob_path("sha256:../../etc/passwd").is_err());
    }
}
