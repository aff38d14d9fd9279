//! Pushing an image: for each tag, every layer in parallel (skipped when the registry has it,
//! mounted from another repository of the same registry when one is known to have it,
//! uploaded otherwise, at most `max_concurrent_uploads` at once), then the config, then the
//! manifest. Layers go up as stored compressed blobs; a layer stored only uncompressed (a
//! load) is gzipped once and the result kept for the next push.

use std::collections::BTreeMap;
use std::io::{self, BufReader};
use std::sync::Arc;

use berth_distribution::auth::AuthConfig;
use berth_distribution::manifest::{layer_compression, media_type, Compression, Manifest};
use berth_distribution::reference::Reference;
use berth_store::{Digest, ImageRecord, LayerBlob, LayerRecord};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::archive::{short, Meter, NewBlob, Touched};
use super::config::ImageConfig;
use super::Images;
use crate::error::{Error, Result};
use crate::progress::Progress;

const READ_CHUNK: usize = 1 << 20;

/// One layer as it goes up: the blob, and where the registry may already have it.
#[derive(Clone)]
struct PushLayer {
    chain: String,
    blob: LayerBlob,
}

/// A docker schema2 manifest, fields in docker's order.
#[derive(Serialize)]
struct Schema2 {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: Schema2Descriptor,
    layers: Vec<Schema2Descriptor>,
}

#[derive(Serialize)]
struct Schema2Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    size: u64,
    digest: String,
}

impl Images {
    /// Pushes `name` (with `tag`, or the tag in `name`; with neither, every local tag of the
    /// repository) to its registry, reporting progress as docker does.
    pub async fn push(self: &Arc<Self>, name: &str, tag: Option<&str>, auth: Option<AuthConfig>, progress: &Progress) -> Result<()> {
        let named = Reference::parse_named(name).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if named.digest().is_some() {
            return Err(Error::InvalidArgument(format!("cannot push a digest reference {name:?}: push a tag")));
        }
        let targets = match (tag.filter(|t| !t.is_empty()), named.tag()) {
            (Some(tag), _) => vec![named.with_tag(tag).map_err(|e| Error::InvalidArgument(e.to_string()))?],
            (None, Some(_)) => vec![named.clone()],
            (None, None) => self.repository_tags(&named)?,
        };
        let missing = || Error::NotFound(format!("An image does not exist locally with the tag: {}", named.familiar_name()));
        if targets.is_empty() {
            return Err(missing());
        }
        // Resolve every tag before saying anything, so a wrong name is a plain error.
        let mut images = Vec::new();
        for target in &targets {
            let id = self.meta.read()?.tag(&target.to_string())?.ok_or_else(missing)?;
            let record = self.meta.read()?.image(&id)?.ok_or_else(missing)?;
            images.push((target.clone(), record));
        }
        progress.status(None, format!("The push refers to repository [{}]", named.name()));
        for (target, record) in images {
            self.push_tag(&target, &record, auth.as_ref(), progress).await?;
        }
        Ok(())
    }

    /// Every local tag of a repository, sorted.
    fn repository_tags(&self, named: &Reference) -> Result<Vec<Reference>> {
        let repo = named.name();
        let mut out: Vec<Reference> = self
            .meta
            .read()?
            .tags()?
            .into_iter()
            .filter_map(|(full, _)| Reference::parse_normalized(&full).ok())
            .filter(|r| r.name() == repo)
            .collect();
        out.sort_by_key(|r| r.to_string());
        Ok(out)
    }

    async fn push_tag(self: &Arc<Self>, target: &Reference, image: &ImageRecord, auth: Option<&AuthConfig>, progress: &Progress) -> Result<()> {
        let tag = target.tag().unwrap_or("latest").to_string();
        let config_digest: Digest = image.id.parse()?;
        let config_bytes = self.blobs.read(&config_digest)?;
        let config = ImageConfig::parse(&config_bytes).map_err(|e| Error::Internal(format!("push {}: {e}", target.familiar_string())))?;
        let layers: Vec<LayerRecord> = {
            let tx = self.meta.read()?;
            image
                .layers
                .iter()
                .map(|c| tx.layer(c)?.ok_or_else(|| berth_store::Error::BlobNotFound(c.clone())))
                .collect::<berth_store::Result<_>>()
                .map_err(|e| Error::Internal(format!("push {}: layer record missing: {e}", target.familiar_string())))?
        };
        if layers.len() != config.rootfs.diff_ids.len() {
            return Err(Error::Internal(format!("push {}: the config and the recorded layers differ", target.familiar_string())));
        }
        let reused = self.stored_manifest(target, image, &layers);
        let mut held: Vec<String> = image.layers.clone();
        held.push(image.id.clone());
        held.extend(layers.iter().flat_map(|l| l.blobs.iter().map(|b| b.digest.clone())));
        let _lease = self.lease(held);

        // Preparing: every layer named up front, top first as docker shows them.
        for layer in layers.iter().rev() {
            progress.status(Some(short(&layer.diff_id)), "Preparing");
        }
        let mut tasks = Vec::new();
        for (i, layer) in layers.iter().enumerate().rev() {
            let images = Arc::clone(self);
            let (target, auth, progress) = (target.clone(), auth.cloned(), progress.clone());
            let layer = layer.clone();
            let chosen = reused.as_ref().map(|(_, _, m)| m.layers[i].digest.clone());
            tasks.push((
                i,
                tokio::spawn(async move { images.push_layer(&target, &layer, chosen.as_deref(), auth.as_ref(), &progress).await }),
            ));
        }
        let mut pushed: Vec<Option<PushLayer>> = (0..layers.len()).map(|_| None).collect();
        let mut first_error = None;
        for (i, task) in tasks {
            match task.await.map_err(|e| Error::Internal(format!("layer push task: {e}"))).and_then(|r| r) {
                Ok(done) => pushed[i] = Some(done),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let pushed: Vec<PushLayer> = pushed.into_iter().flatten().collect();

        // The config, then the manifest naming everything.
        if self.client.blob_exists(target, &image.id, auth).await?.is_none() {
            let size = config_bytes.len() as u64;
            let body = futures_util::stream::once(std::future::ready(Ok::<_, io::Error>(Bytes::from(config_bytes.clone()))));
            self.client.push_blob(target, &image.id, size, body, auth).await?;
        }
        let (manifest_bytes, manifest_type) = match reused {
            Some((bytes, media, _)) => (bytes, media),
            None => (schema2_manifest(&image.id, config_bytes.len() as u64, &pushed)?, media_type::DOCKER_MANIFEST.to_string()),
        };
        let digest = self.client.put_manifest(target, &manifest_type, Bytes::from(manifest_bytes.clone()), auth).await?;
        let size = manifest_bytes.len();
        self.record_push(target, image, &digest, &manifest_bytes, &manifest_type, &pushed)?;
        progress.status(None, format!("{tag}: digest: {digest} size: {size}"));
        progress.aux(serde_json::json!({ "Tag": tag, "Digest": digest, "Size": size }));
        self.events.publish("image", "push", &target.familiar_string(), BTreeMap::from([("name".to_string(), target.familiar_name())]));
        Ok(())
    }

    /// A manifest this image was pulled (or pushed) with, when it still describes exactly
    /// what we have: pushing it again keeps the image's digest.
    fn stored_manifest(&self, target: &Reference, image: &ImageRecord, layers: &[LayerRecord]) -> Option<(Vec<u8>, String, Manifest)> {
        let repo = target.name();
        let mut candidates: Vec<&(String, String)> = image.manifests.get(&repo).into_iter().collect();
        candidates.extend(image.manifests.iter().filter(|(r, _)| **r != repo).map(|(_, m)| m));
        for (digest, media) in candidates {
            let Ok(bytes) = digest.parse().and_then(|d: Digest| self.blobs.read(&d)) else { continue };
            let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else { continue };
            let usable = manifest.config.digest == image.id
                && manifest.layers.len() == layers.len()
                && manifest.layers.iter().zip(layers).all(|(desc, layer)| {
                    layer.blobs.iter().any(|b| b.digest == desc.digest && b.size == desc.size)
                        && desc.digest.parse().is_ok_and(|d: Digest| self.blobs.contains(&d))
                });
            if usable {
                return Some((bytes, media.clone(), manifest));
            }
        }
        None
    }

    /// Makes one layer present in the target repository.
    async fn push_layer(
        self: &Arc<Self>,
        target: &Reference,
        layer: &LayerRecord,
        chosen: Option<&str>,
        auth: Option<&AuthConfig>,
        progress: &Progress,
    ) -> Result<PushLayer> {
        let id = short(&layer.diff_id).to_string();
        let permit = match Arc::clone(&self.uploads).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                progress.status(Some(&id), "Waiting");
                Arc::clone(&self.uploads).acquire_owned().await.map_err(|e| Error::Internal(e.to_string()))?
            }
        };
        let blob = match chosen {
            Some(digest) => layer.blobs.iter().find(|b| b.digest == digest).cloned(),
            None => self.compressed_blob(layer),
        };
        let blob = match blob {
            Some(blob) => blob,
            None => self.gzip_layer(layer).await?,
        };
        let item = PushLayer { chain: layer.chain_id.clone(), blob };
        if self.client.blob_exists(target, &item.blob.digest, auth).await?.is_some() {
            progress.status(Some(&id), "Layer already exists");
            return Ok(item);
        }
        // Another repository of the same registry that has it: a mount copies nothing.
        let prefix = format!("{}/", target.domain());
        for source in item.blob.sources.iter().filter_map(|s| s.strip_prefix(&prefix)).filter(|p| *p != target.path()).take(3) {
            match self.client.mount_blob(target, &item.blob.digest, source, auth).await {
                Ok(true) => {
                    progress.status(Some(&id), format!("Mounted from {source}"));
                    return Ok(item);
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(blob = %item.blob.digest, from = %source, error = %e, "cross-repository mount failed"),
            }
        }
        let digest: Digest = item.blob.digest.parse()?;
        let path = self.blobs.path(&digest);
        let file = tokio::fs::File::open(&path).await.map_err(Error::io("open", &path))?;
        let size = file.metadata().await.map_err(Error::io("stat", &path))?.len();
        let body = progress_stream(file, id.clone(), size, progress.clone());
        self.client.push_blob(target, &item.blob.digest, size, body, auth).await?;
        drop(permit);
        progress.status(Some(&id), "Pushed");
        Ok(item)
    }

    /// A stored gzip blob of the layer (what docker schema2 manifests carry).
    fn compressed_blob(&self, layer: &LayerRecord) -> Option<LayerBlob> {
        layer
            .blobs
            .iter()
            .filter(|b| b.digest.parse().is_ok_and(|d: Digest| self.blobs.contains(&d)))
            .find(|b| layer_compression(&b.media_type) == Some(Compression::Gzip))
            .cloned()
    }

    /// Gzips a layer from any stored blob of it (an uncompressed one from a load, a zstd
    /// one) and records the result, so the next push finds it.
    async fn gzip_layer(self: &Arc<Self>, layer: &LayerRecord) -> Result<LayerBlob> {
        let source = layer
            .blobs
            .iter()
            .find_map(|b| b.digest.parse().ok().filter(|d: &Digest| self.blobs.contains(d)))
            .ok_or_else(|| Error::Internal(format!("push: layer {} has no stored blob to push (pull the image again)", layer.diff_id)))?;
        let images = Arc::clone(self);
        let layer = layer.clone();
        tokio::task::spawn_blocking(move || -> Result<LayerBlob> {
            let path = images.blobs.path(&source);
            let file = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
            let mut plain = berth_snapshot::decompress(BufReader::with_capacity(READ_CHUNK, file))?;
            let mut blob = NewBlob::create(&images.tmp_root)?;
            let mut gzip = berth_snapshot::gzip_writer(&mut blob);
            let mut hashing = HashingWriter { inner: &mut gzip, hasher: berth_store::digest::Hasher::sha256() };
            io::copy(&mut plain, &mut hashing).map_err(Error::io("compress layer from", &path))?;
            let actual = hashing.hasher.finish();
            if actual.as_str() != layer.diff_id {
                return Err(Error::Internal(format!("push: blob {source} unpacks to {actual}, not to its layer's diff id {}", layer.diff_id)));
            }
            gzip.finish().map_err(Error::io("compress layer from", &path))?;
            // Held from its creation until recorded; dropped again if the layer went away.
            let mut touched = Touched::new(&images);
            let (digest, size) = blob.commit(&mut touched)?;
            let blob = LayerBlob { digest: digest.to_string(), size, media_type: media_type::DOCKER_LAYER_GZIP.to_string(), sources: Vec::new() };
            let tx = images.meta.write()?;
            if let Some(mut record) = tx.layer(&layer.chain_id)? {
                if !record.blobs.iter().any(|b| b.digest == blob.digest) {
                    record.blobs.push(blob.clone());
                    tx.put_layer(&record)?;
                }
            }
            tx.commit()?;
            touched.finish();
            Ok(blob)
        })
        .await
        .map_err(|e| Error::Internal(format!("compress task: {e}")))?
    }

    /// Records the repo digest, the manifest, and that the target repository has each layer.
    fn record_push(&self, target: &Reference, image: &ImageRecord, digest: &str, manifest: &[u8], media: &str, pushed: &[PushLayer]) -> Result<()> {
        let manifest_digest = self.blobs.put(manifest)?;
        let repo = target.name();
        let tx = self.meta.write()?;
        for layer in pushed {
            let Some(mut record) = tx.layer(&layer.chain)? else { continue };
            let blob = match record.blobs.iter_mut().find(|b| b.digest == layer.blob.digest) {
                Some(blob) => blob,
                None => {
                    record.blobs.push(layer.blob.clone());
                    record.blobs.last_mut().ok_or_else(|| Error::Internal("layer blob list".into()))?
                }
            };
            if !blob.sources.contains(&repo) {
                blob.sources.push(repo.clone());
            }
            tx.put_layer(&record)?;
        }
        if let Some(mut record) = tx.image(&image.id)? {
            record.manifests.insert(repo.clone(), (manifest_digest.to_string(), media.to_string()));
            tx.put_image(&record)?;
            tx.set_digest_ref(&format!("{repo}@{digest}"), &image.id)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// docker's schema2 manifest for the pushed layers, indented as docker indents it.
fn schema2_manifest(config_digest: &str, config_size: u64, layers: &[PushLayer]) -> Result<Vec<u8>> {
    let manifest = Schema2 {
        schema_version: 2,
        media_type: media_type::DOCKER_MANIFEST,
        config: Schema2Descriptor { media_type: media_type::DOCKER_CONFIG.to_string(), size: config_size, digest: config_digest.to_string() },
        layers: layers
            .iter()
            .map(|l| Schema2Descriptor { media_type: media_type::DOCKER_LAYER_GZIP.to_string(), size: l.blob.size, digest: l.blob.digest.clone() })
            .collect(),
    };
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    manifest.serialize(&mut serializer).map_err(|e| Error::Internal(format!("encode manifest: {e}")))?;
    Ok(out)
}

/// Reads a blob file as a stream of chunks, reporting "Pushing" progress as it goes.
fn progress_stream(file: tokio::fs::File, id: String, total: u64, progress: Progress) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
    let state = (file, 0u64, Meter::new(total), false);
    futures_util::stream::unfold(state, move |(mut file, sent, mut meter, done)| {
        let (id, progress) = (id.clone(), progress.clone());
        async move {
            if done {
                return None;
            }
            let mut buf = BytesMut::zeroed(READ_CHUNK);
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let sent = sent + n as u64;
                    if meter.due(sent) {
                        progress.bar(&id, "Pushing", sent, total);
                    }
                    Some((Ok(buf.freeze()), (file, sent, meter, false)))
                }
                Err(e) => Some((Err(e), (file, sent, meter, true))),
            }
        }
    })
}

/// Hashes what is written through it.
struct HashingWriter<'a, W> {
    inner: &'a mut W,
    hasher: berth_store::digest::Hasher,
}

impl<W: io::Write> io::Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
