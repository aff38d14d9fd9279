//! Pulling an image: resolve the manifest, then download every missing layer in parallel,
//! each streamed through digest checking and decompression straight into its own layer
//! directory while it downloads (layers are independent overlay lowers, so no layer waits
//! for another). Everything lands in temporary directories; one `syncfs`, renames, and a
//! single metadata transaction make the image appear whole or not at all.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_distribution::auth::AuthConfig;
use berth_distribution::manifest::Platform;
use berth_distribution::reference::Reference;
use berth_store::{Digest, ImageRecord, Ingest, LayerBlob, LayerRecord};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::config::{chain_ids, ImageConfig};
use super::{hex_of, now_nanos, now_unix, parse_reference, Images};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// The descriptors of an image manifest (docker schema2 or OCI) the pull needs.
#[derive(Debug, Deserialize)]
struct ManifestView {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    urls: Vec<String>,
}

/// A layer unpacked by this pull, waiting for the final rename and record.
struct Unpacked {
    tmp: tempfile::TempDir,
    size: u64,
}

enum LayerOutcome {
    /// Recorded or unpacked by someone else already.
    Present,
    Unpacked(Unpacked),
}

impl Images {
    /// Pulls `reference` (all tags of the repository with `all_tags`), reporting progress
    /// as docker does.
    pub async fn pull(
        self: &Arc<Self>,
        reference: &str,
        platform: Option<&str>,
        all_tags: bool,
        auth: Option<AuthConfig>,
        progress: &Progress,
    ) -> Result<()> {
        let reference = parse_reference(reference)?;
        let platform = match platform.filter(|p| !p.is_empty()) {
            Some(p) => p.parse::<Platform>().map_err(|e| Error::InvalidArgument(e.to_string()))?,
            None => Platform::host(),
        };
        if all_tags {
            let tags = self.client.list_tags(&reference, auth.as_ref()).await?;
            for tag in tags {
                self.pull_one(&reference.with_tag(&tag)?, &platform, auth.as_ref(), progress).await?;
            }
            progress.status(None, format!("Status: Downloaded images for {}", reference.familiar_name()));
            return Ok(());
        }
        self.pull_one(&reference, &platform, auth.as_ref(), progress).await
    }

    async fn pull_one(
        self: &Arc<Self>,
        reference: &Reference,
        platform: &Platform,
        auth: Option<&AuthConfig>,
        progress: &Progress,
    ) -> Result<()> {
        // Like dockerd, nothing is streamed before the manifest is found, so an unknown
        // image is a plain HTTP error.
        let resolved = self.client.resolve(reference, auth, platform).await?;
        let shown = reference.tag().or(reference.digest()).unwrap_or("latest").to_string();
        progress.line(Some(&shown), format!("Pulling from {}", reference.path()));
        let manifest: ManifestView = serde_json::from_slice(&resolved.bytes)
            .map_err(|e| Error::InvalidArgument(format!("invalid manifest for {reference}: {e}")))?;
        if let Some(foreign) = manifest.layers.iter().find(|l| !l.urls.is_empty()) {
            return Err(Error::InvalidArgument(format!("layer {} of {reference} is a foreign layer, which is not supported", foreign.digest)));
        }

        // The config names the image and the diff ids every layer must unpack to.
        let config_digest: Digest = manifest.config.digest.parse()?;
        let config_bytes = match self.blobs.read(&config_digest) {
            Ok(bytes) => bytes,
            Err(_) => {
                let bytes = self
                    .client
                    .fetch_blob_bytes(&resolved.endpoint, reference.path(), &manifest.config.digest, Some(manifest.config.size), auth)
                    .await?;
                self.blobs.put(&bytes)?;
                bytes.to_vec()
            }
        };
        let config = ImageConfig::parse(&config_bytes).map_err(|e| Error::InvalidArgument(format!("{reference}: {e}")))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(Error::InvalidArgument(format!(
                "invalid manifest for {reference}: {} layers but the config lists {} diff ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let chains = chain_ids(&config.rootfs.diff_ids);
        let image_id = config_digest.to_string();
        let mut held = chains.clone();
        held.push(image_id.clone());
        held.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        let _lease = self.lease(held);

        // Every layer at once; each waits for a download slot, then streams to disk.
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (i, layer) in manifest.layers.iter().enumerate() {
            let images = Arc::clone(self);
            let layer = layer.clone();
            let (chain, diff) = (chains[i].clone(), config.rootfs.diff_ids[i].clone());
            let (reference, endpoint, auth, progress) =
                (reference.clone(), resolved.endpoint.clone(), auth.cloned(), progress.clone());
            progress.status(Some(short(&layer.digest)), "Pulling fs layer");
            tasks.push(tokio::spawn(async move {
                images.pull_layer(&reference, &endpoint, auth.as_ref(), &layer, &chain, &diff, &progress).await
            }));
        }
        let mut unpacked = Vec::new();
        let mut first_error = None;
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.map_err(|e| Error::Internal(format!("layer task: {e}"))).and_then(|r| r) {
                Ok(LayerOutcome::Unpacked(u)) => unpacked.push((i, u)),
                Ok(LayerOutcome::Present) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }

        // Durable before visible: one syncfs for all layers, then renames, then the record.
        let unpacked_in = started.elapsed();
        let layers_root = self.layers_root.clone();
        let renamed: Vec<(usize, u64)> = tokio::task::spawn_blocking({
            let chains = chains.clone();
            move || -> Result<Vec<(usize, u64)>> {
                if !unpacked.is_empty() {
                    berth_snapshot::sync_filesystem(&layers_root)?;
                }
                let mut out = Vec::new();
                for (i, u) in unpacked {
                    let dest = layers_root.join(hex_of(&chains[i]));
                    if dest.exists() {
                        continue; // a concurrent pull put the same layer in place first
                    }
                    let path = u.tmp.keep();
                    std::fs::rename(&path, &dest).map_err(Error::io("rename into", &dest))?;
                    out.push((i, u.size));
                }
                std::fs::File::open(&layers_root).and_then(|d| d.sync_all()).map_err(Error::io("fsync", &layers_root))?;
                Ok(out)
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("layer rename task: {e}")))??;
        let sizes: BTreeMap<usize, u64> = renamed.into_iter().collect();
        tracing::info!(
            reference = %reference,
            layers = manifest.layers.len(),
            unpacked = sizes.len(),
            download_and_unpack_ms = unpacked_in.as_millis() as u64,
            sync_ms = (started.elapsed() - unpacked_in).as_millis() as u64,
            "pulled"
        );

        let manifest_digest = self.blobs.put(&resolved.bytes)?;
        // The pulled reference named an index: keep it too, for save and push.
        if let Some(index) = &resolved.index {
            self.blobs.put(&index.bytes)?;
        }
        let updated = self.record_image(reference, &resolved.digest, &manifest_digest, &resolved.media_type, &manifest, &chains, &config, &sizes)?;

        progress.status(None, format!("Digest: {}", resolved.digest));
        let name = reference.familiar_string();
        progress.status(
            None,
            if updated { format!("Status: Downloaded newer image for {name}") } else { format!("Status: Image is up to date for {name}") },
        );
        self.events.publish("image", "pull", &reference.familiar_string(), BTreeMap::from([("name".to_string(), reference.familiar_string())]));
        Ok(())
    }

    /// Records the image, its layers, tag and repo digest in one transaction. Returns whether
    /// the reference now points somewhere new.
    #[allow(clippy::too_many_arguments)]
    fn record_image(
        &self,
        reference: &Reference,
        repo_digest: &str,
        manifest_digest: &Digest,
        media_type: &str,
        manifest: &ManifestView,
        chains: &[String],
        config: &ImageConfig,
        sizes: &BTreeMap<usize, u64>,
    ) -> Result<bool> {
        let image_id = manifest.config.digest.clone();
        let repo = reference.name();
        let tx = self.meta.write()?;
        let existing = tx.image(&image_id)?;
        let mut total = 0;
        for (i, chain) in chains.iter().enumerate() {
            let desc = &manifest.layers[i];
            let blob = LayerBlob { digest: desc.digest.clone(), size: desc.size, media_type: desc.media_type.clone(), sources: vec![repo.clone()] };
            let mut layer = match tx.layer(chain)? {
                Some(layer) => layer,
                None => LayerRecord {
                    chain_id: chain.clone(),
                    diff_id: config.rootfs.diff_ids[i].clone(),
                    parent: (i > 0).then(|| chains[i - 1].clone()),
                    dir: hex_of(chain).to_string(),
                    size: sizes.get(&i).copied().or_else(|| dir_size_hint(&self.layers_root.join(hex_of(chain)))).unwrap_or(0),
                    blobs: Vec::new(),
                    refs: 0,
                },
            };
            match layer.blobs.iter_mut().find(|b| b.digest == blob.digest) {
                Some(known) if !known.sources.contains(&repo) => known.sources.push(repo.clone()),
                Some(_) => {}
                None => layer.blobs.push(blob),
            }
            if existing.is_none() {
                layer.refs += 1;
            }
            total += layer.size;
            tx.put_layer(&layer)?;
        }
        let mut record = existing.unwrap_or(ImageRecord {
            id: image_id.clone(),
            layers: chains.to_vec(),
            size: total,
            added: now_unix(),
            last_tag_time: None,
            manifests: Default::default(),
        });
        record.manifests.insert(repo.clone(), (manifest_digest.to_string(), media_type.to_string()));
        let mut updated = false;
        if reference.digest().is_none() {
            let full = reference.to_string();
            updated = tx.tag(&full)?.as_deref() != Some(image_id.as_str());
            if updated {
                tx.set_tag(&full, &image_id)?;
                record.last_tag_time = Some(now_nanos());
            }
        }
        let digest_ref = format!("{repo}@{repo_digest}");
        if tx.digest_ref(&digest_ref)?.as_deref() != Some(image_id.as_str()) {
            tx.set_digest_ref(&digest_ref, &image_id)?;
            updated |= reference.digest().is_some();
        }
        tx.put_image(&record)?;
        tx.commit()?;
        Ok(updated)
    }

    /// Makes one layer present: nothing to do when recorded, otherwise download (or reuse a
    /// stored blob, or resume a partial one) and unpack into a temporary directory.
    #[allow(clippy::too_many_arguments)]
    async fn pull_layer(
        &self,
        reference: &Reference,
        endpoint: &berth_distribution::Endpoint,
        auth: Option<&AuthConfig>,
        layer: &Descriptor,
        chain: &str,
        diff_id: &str,
        progress: &Progress,
    ) -> Result<LayerOutcome> {
        let id = short(&layer.digest).to_string();
        let lock = self.layer_lock(chain);
        let _guard = lock.lock().await;
        if self.meta.read()?.layer(chain)?.is_some() || self.layers_root.join(hex_of(chain)).exists() {
            progress.status(Some(&id), "Already exists");
            return Ok(LayerOutcome::Present);
        }
        let digest: Digest = layer.digest.parse()?;
        let diff_id: Digest = diff_id.parse()?;
        let _permit = self.downloads.acquire().await.map_err(|e| Error::Internal(e.to_string()))?;

        if !self.blobs.contains(&digest) {
            let ingest = self.blobs.ingest(&digest, Some(layer.size))?;
            if ingest.offset() == 0 {
                // The fast path: unpack while downloading.
                let unpacked = self.stream_layer(reference, endpoint, auth, layer, ingest, diff_id, &id, progress).await?;
                progress.status(Some(&id), "Pull complete");
                return Ok(LayerOutcome::Unpacked(unpacked));
            }
            // A previous pull was interrupted: fetch the rest, then unpack from disk.
            self.resume_download(reference, endpoint, auth, layer, ingest, &id, progress).await?;
        } else {
            progress.status(Some(&id), "Download complete");
        }
        let tmp = self.tmp_dir()?;
        let path = tmp.path().to_path_buf();
        let blob = self.blobs.path(&digest);
        progress.status(Some(&id), "Extracting");
        let size = tokio::task::spawn_blocking(move || -> Result<u64> {
            let file = std::fs::File::open(&blob).map_err(Error::io("open", &blob))?;
            unpack(BufReader::with_capacity(1 << 20, file), &path, &diff_id)
        })
        .await
        .map_err(|e| Error::Internal(format!("unpack task: {e}")))??;
        progress.status(Some(&id), "Pull complete");
        Ok(LayerOutcome::Unpacked(Unpacked { tmp, size }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn stream_layer(
        &self,
        reference: &Reference,
        endpoint: &berth_distribution::Endpoint,
        auth: Option<&AuthConfig>,
        layer: &Descriptor,
        ingest: Ingest,
        diff_id: Digest,
        id: &str,
        progress: &Progress,
    ) -> Result<Unpacked> {
        let mut stream = self.client.fetch_blob(endpoint, reference.path(), &layer.digest, Some(layer.size), 0, auth).await?;
        let tmp = self.tmp_dir()?;
        let path = tmp.path().to_path_buf();
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(64);
        let unpacker = tokio::task::spawn_blocking(move || -> Result<u64> {
            let mut source = TeeToIngest { chunks: rx, current: Bytes::new(), ingest: Some(ingest), error: None };
            let result = unpack(BufReader::with_capacity(1 << 20, &mut source), &path, &diff_id);
            if let Some(e) = source.error.take() {
                return Err(e);
            }
            let size = result?;
            // Whatever follows the tar's end still belongs to the blob and its digest.
            io::copy(&mut source, &mut io::sink()).map_err(Error::io("read layer", &path))?;
            if let Some(e) = source.error.take() {
                return Err(e);
            }
            let ingest = source.ingest.take().ok_or_else(|| Error::Internal("ingest lost".into()))?;
            ingest.commit()?;
            Ok(size)
        });
        let mut meter = Meter::new(layer.size);
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(io::Error::other);
            let failed = chunk.is_err();
            if let Ok(c) = &chunk {
                received += c.len() as u64;
                if meter.due(received) {
                    progress.bar(id, "Downloading", received, layer.size);
                }
            }
            if tx.send(chunk).await.is_err() || failed {
                break; // the unpacker stopped (and says why) or the download failed
            }
        }
        drop(tx);
        let size = unpacker.await.map_err(|e| Error::Internal(format!("unpack task: {e}")))??;
        progress.status(Some(id), "Download complete");
        Ok(Unpacked { tmp, size })
    }

    #[allow(clippy::too_many_arguments)]
    async fn resume_download(
        &self,
        reference: &Reference,
        endpoint: &berth_distribution::Endpoint,
        auth: Option<&AuthConfig>,
        layer: &Descriptor,
        mut ingest: Ingest,
        id: &str,
        progress: &Progress,
    ) -> Result<()> {
        let offset = ingest.offset();
        progress.status(Some(id), format!("Resuming download at {}", crate::progress::human_size(offset)));
        let mut stream = self.client.fetch_blob(endpoint, reference.path(), &layer.digest, Some(layer.size), offset, auth).await?;
        let mut meter = Meter::new(layer.size);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            ingest = tokio::task::block_in_place(|| ingest.write_all(&chunk).map(|_| ingest))?;
            if meter.due(ingest.offset()) {
                progress.bar(id, "Downloading", ingest.offset(), layer.size);
            }
        }
        progress.status(Some(id), "Verifying Checksum");
        tokio::task::spawn_blocking(move || ingest.commit())
            .await
            .map_err(|e| Error::Internal(format!("commit task: {e}")))??;
        progress.status(Some(id), "Download complete");
        Ok(())
    }
}

/// Decompresses `blob` (gzip, zstd or plain), unpacks it into `dir` and checks that the
/// plain tar hashes to `diff_id`. Returns the unpacked size.
pub(super) fn unpack(blob: impl io::BufRead, dir: &std::path::Path, diff_id: &Digest) -> Result<u64> {
    let plain = berth_snapshot::decompress(blob)?;
    let mut hashing = HashingReader { inner: plain, hasher: diff_id.hasher() };
    let stats = berth_snapshot::apply_layer(dir, &mut hashing)?;
    io::copy(&mut hashing, &mut io::sink()).map_err(Error::io("read layer", dir))?;
    let actual = hashing.hasher.finish();
    if &actual != diff_id {
        return Err(Error::InvalidArgument(format!("layer unpacks to {actual}, but the image config expects {diff_id}")));
    }
    Ok(stats.size)
}

struct HashingReader<R> {
    inner: R,
    hasher: berth_store::digest::Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads downloaded chunks from the network task, writing each to the blob's ingest as it
/// passes, so the blob is stored and unpacked from the same bytes.
struct TeeToIngest {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    ingest: Option<Ingest>,
    error: Option<Error>,
}

impl Read for TeeToIngest {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) => {
                    if let Some(ingest) = &mut self.ingest {
                        if let Err(e) = ingest.write_all(&chunk) {
                            let message = e.to_string();
                            self.error = Some(e.into());
                            return Err(io::Error::other(message));
                        }
                    }
                    self.current = chunk;
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Rate limit for progress lines: at most every 100 ms, and always at the end.
struct Meter {
    total: u64,
    last: Option<Instant>,
}

impl Meter {
    fn new(total: u64) -> Meter {
        Meter { total, last: None }
    }
    fn due(&mut self, current: u64) -> bool {
        let due = current >= self.total || self.last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if due {
            self.last = Some(Instant::now());
        }
        due
    }
}

/// docker's short id of a layer: the first 12 hex digits of its digest.
fn short(digest: &str) -> &str {
    let hex = hex_of(digest);
    &hex[..hex.len().min(12)]
}

fn dir_size_hint(path: &std::path::Path) -> Option<u64> {
    berth_snapshot::disk_usage(path).ok()
}
