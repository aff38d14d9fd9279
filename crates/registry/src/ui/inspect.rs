//! What a repository holds, read for people: manifests with their sizes and platforms,
//! image configs, push times and descriptions. The web UI and search read through here;
//! nothing here writes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::SystemTime;

use berth_store::Digest;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::manifest::{is_index, MAX_MANIFEST_SIZE};
use crate::names::{parse_digest, Reference, RepoName};
use crate::registry::Registry;

/// The annotation or config label whose value describes a repository in search results.
pub const DESCRIPTION_LABEL: &str = "org.opencontainers.image.description";

/// Media types of configs that are image configs (with `config`, `history`, platform).
const IMAGE_CONFIG_TYPES: [&str; 2] =
    ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];

/// Children of an index looked at for a description before giving up.
const DESCRIPTION_CHILDREN: usize = 4;

/// A descriptor of a manifest: what it points at.
#[derive(Debug, Clone, Default)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    /// `os/architecture[/variant]`, for the entries of an index.
    pub platform: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// What a manifest lists.
#[derive(Debug, Clone)]
pub enum Shape {
    Image { config: Descriptor, layers: Vec<Descriptor> },
    Index { manifests: Vec<Descriptor> },
}

/// A stored manifest, parsed for display.
#[derive(Debug, Clone)]
pub struct ManifestView {
    pub digest: Digest,
    pub media_type: String,
    pub body: bytes::Bytes,
    pub shape: Shape,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

impl ManifestView {
    /// The size of an image: its config and layers as the manifest declares them; `None`
    /// for an index.
    pub fn image_size(&self) -> Option<u64> {
        match &self.shape {
            Shape::Image { config, layers } => Some(layers.iter().fold(config.size, |sum, l| sum.saturating_add(l.size))),
            Shape::Index { .. } => None,
        }
    }

    /// The description annotation of the manifest itself.
    fn described(&self) -> Option<String> {
        self.annotations.get(DESCRIPTION_LABEL).filter(|d| !d.is_empty()).cloned()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<u64>,
    platform: Option<RawPlatform>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    annotations: Option<BTreeMap<String, String>>,
}

/// `os/architecture[/variant]`.
pub fn platform_text(os: Option<&str>, architecture: Option<&str>, variant: Option<&str>) -> Option<String> {
    let (os, arch) = (os.filter(|s| !s.is_empty()), architecture.filter(|s| !s.is_empty()));
    if os.is_none() && arch.is_none() {
        return None;
    }
    let mut text = format!("{}/{}", os.unwrap_or("?"), arch.unwrap_or("?"));
    if let Some(v) = variant.filter(|v| !v.is_empty()) {
        text.push('/');
        text.push_str(v);
    }
    Some(text)
}

fn descriptor(raw: RawDescriptor) -> Descriptor {
    Descriptor {
        media_type: raw.media_type.unwrap_or_default(),
        digest: raw.digest.unwrap_or_default(),
        size: raw.size.unwrap_or(0),
        platform: raw
            .platform
            .and_then(|p| platform_text(p.os.as_deref(), p.architecture.as_deref(), p.variant.as_deref())),
        annotations: raw.annotations.unwrap_or_default(),
    }
}

/// Parses a stored manifest (it was checked when pushed; this only reads it).
pub fn parse_manifest(digest: Digest, media_type: &str, body: bytes::Bytes) -> Result<ManifestView> {
    let raw: RawManifest = serde_json::from_slice(&body)
        .map_err(|e| Error::Internal(format!("stored manifest {digest} is not readable: {e}")))?;
    let media_type = if media_type.is_empty() { raw.media_type.clone().unwrap_or_default() } else { media_type.to_string() };
    let shape = if is_index(&media_type) || (raw.manifests.is_some() && raw.config.is_none()) {
        Shape::Index { manifests: raw.manifests.unwrap_or_default().into_iter().map(descriptor).collect() }
    } else {
        Shape::Image {
            config: raw.config.map(descriptor).unwrap_or_default(),
            layers: raw.layers.unwrap_or_default().into_iter().map(descriptor).collect(),
        }
    };
    Ok(ManifestView {
        digest,
        media_type,
        body,
        shape,
        artifact_type: raw.artifact_type.filter(|t| !t.is_empty()),
        annotations: raw.annotations.unwrap_or_default(),
    })
}

/// A manifest of the repository by tag or digest.
pub async fn manifest(registry: &Registry, name: &RepoName, reference: &Reference) -> Result<ManifestView> {
    let m = registry.manifest(name, reference).await?;
    parse_manifest(m.digest.clone(), &m.media_type, m.body.clone())
}

/// An image config, the parts people look at.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    pub platform: Option<String>,
    pub created: Option<String>,
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The `created_by` of each history entry, oldest first.
    pub history: Vec<String>,
}

#[derive(Deserialize)]
struct RawImageConfig {
    architecture: Option<String>,
    os: Option<String>,
    variant: Option<String>,
    created: Option<String>,
    config: Option<RawRunConfig>,
    history: Option<Vec<RawHistory>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRunConfig {
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawHistory {
    created_by: Option<String>,
}

/// Whether a config media type is an image config.
pub fn is_image_config(media_type: &str) -> bool {
    IMAGE_CONFIG_TYPES.contains(&media_type)
}

/// Reads a blob of the repository whole, refusing more than `limit` bytes.
async fn read_blob(registry: &Registry, name: &RepoName, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
    let (path, shown) = (registry.storage().blob_path(digest), digest.clone());
    registry
        .open_blob(name, digest, move |file, size| {
            if size > limit {
                return Err(Error::Internal(format!("blob {shown} has {size} bytes, more than the {limit} read for display")));
            }
            let mut data = Vec::with_capacity(size as usize);
            file.take(limit).read_to_end(&mut data).map_err(Error::io("read", path))?;
            Ok(data)
        })
        .await
}

/// Parses an image config.
pub fn parse_image_config(data: &[u8]) -> Result<ImageConfig> {
    let raw: RawImageConfig =
        serde_json::from_slice(data).map_err(|e| Error::Internal(format!("not an image config: {e}")))?;
    let run = raw.config;
    let (env, cmd, entrypoint, working_dir, user, labels) = match run {
        Some(r) => (r.env.unwrap_or_default(), r.cmd, r.entrypoint, r.working_dir, r.user, r.labels.unwrap_or_default()),
        None => Default::default(),
    };
    Ok(ImageConfig {
        platform: platform_text(raw.os.as_deref(), raw.architecture.as_deref(), raw.variant.as_deref()),
        created: raw.created,
        env,
        cmd,
        entrypoint,
        working_dir: working_dir.filter(|w| !w.is_empty()),
        user: user.filter(|u| !u.is_empty()),
        labels,
        history: raw.history.unwrap_or_default().into_iter().filter_map(|h| h.created_by).collect(),
    })
}

/// The image config of an image manifest; `Ok(None)` when its config is not an image
/// config (an artifact).
pub async fn image_config(registry: &Registry, name: &RepoName, view: &ManifestView) -> Result<Option<ImageConfig>> {
    let Shape::Image { config, .. } = &view.shape else { return Ok(None) };
    if !is_image_config(&config.media_type) {
        return Ok(None);
    }
    let digest = parse_digest(&config.digest)?;
    let data = read_blob(registry, name, &digest, MAX_MANIFEST_SIZE).await?;
    parse_image_config(&data).map(Some)
}

/// Where storage keeps a repository's links (see `storage`): push times are the times
/// these files were written.
fn repository_dir(registry: &Registry, name: &RepoName) -> PathBuf {
    registry.storage().root().join("repositories").join(name.as_str())
}

async fn modified(path: PathBuf) -> Option<SystemTime> {
    tokio::fs::metadata(&path).await.ok()?.modified().ok()
}

/// When a tag was last pushed: the tag file is rewritten on every push of the tag.
pub async fn tag_pushed(registry: &Registry, name: &RepoName, tag: &str) -> Option<SystemTime> {
    modified(repository_dir(registry, name).join("_tags").join(tag)).await
}

/// When a manifest was first pushed to the repository.
pub async fn manifest_pushed(registry: &Registry, name: &RepoName, digest: &Digest) -> Option<SystemTime> {
    modified(repository_dir(registry, name).join("_manifests").join(digest.algorithm()).join(digest.hex())).await
}

/// A tag as the repository page lists it.
#[derive(Debug, Clone)]
pub struct TagInfo {
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    /// Config and layers; for an index, those of every image it lists that is present.
    pub size: u64,
    pub pushed: Option<SystemTime>,
    /// An image's platform, or those an index lists.
    pub platforms: Vec<String>,
}

/// The facts of one tag.
pub async fn tag_info(registry: &Registry, name: &RepoName, tag: &str) -> Result<TagInfo> {
    let view = manifest(registry, name, &Reference::Tag(tag.to_string())).await?;
    let pushed = tag_pushed(registry, name, tag).await;
    let (size, platforms) = match &view.shape {
        Shape::Image { .. } => {
            let platform = match image_config(registry, name, &view).await {
                Ok(config) => config.and_then(|c| c.platform),
                Err(e) => {
                    tracing::debug!(repository = %name, tag, error = %e, "config not readable");
                    None
                }
            };
            (view.image_size().unwrap_or(0), platform.into_iter().collect())
        }
        Shape::Index { manifests } => {
            let mut size = 0u64;
            for child in manifests {
                size = size.saturating_add(child_size(registry, name, child).await);
            }
            (size, manifests.iter().filter_map(|m| m.platform.clone()).collect())
        }
    };
    Ok(TagInfo { tag: tag.to_string(), digest: view.digest.to_string(), media_type: view.media_type, size, pushed, platforms })
}

/// The image size of an index entry; 0 when it is not in the repository or not an image.
pub async fn child_size(registry: &Registry, name: &RepoName, child: &Descriptor) -> u64 {
    let Ok(digest) = parse_digest(&child.digest) else { return 0 };
    match manifest(registry, name, &Reference::Digest(digest)).await {
        Ok(view) => view.image_size().unwrap_or(0),
        Err(_) => 0,
    }
}

/// The newest tag of a repository (the one pushed last), if it has tags.
pub async fn newest_tag(registry: &Registry, name: &RepoName) -> Result<Option<String>> {
    let mut newest: Option<(SystemTime, String)> = None;
    for tag in registry.tags(name).await? {
        let time = tag_pushed(registry, name, &tag).await.unwrap_or(SystemTime::UNIX_EPOCH);
        if newest.as_ref().is_none_or(|(t, _)| time >= *t) {
            newest = Some((time, tag));
        }
    }
    Ok(newest.map(|(_, tag)| tag))
}

/// The description of an image manifest: its annotation, else its config's label.
async fn image_description(registry: &Registry, name: &RepoName, view: &ManifestView) -> Option<String> {
    if let Some(d) = view.described() {
        return Some(d);
    }
    let config = image_config(registry, name, view).await.ok().flatten()?;
    config.labels.get(DESCRIPTION_LABEL).filter(|d| !d.is_empty()).cloned()
}

/// A repository's description: the `org.opencontainers.image.description` annotation or
/// config label of its newest tag (for an index, of the index or its first images).
pub async fn description(registry: &Registry, name: &RepoName) -> Option<String> {
    let tag = newest_tag(registry, name).await.ok()??;
    let view = manifest(registry, name, &Reference::Tag(tag)).await.ok()?;
    match &view.shape {
        Shape::Image { .. } => image_description(registry, name, &view).await,
        Shape::Index { manifests } => {
            if let Some(d) = view.described() {
                return Some(d);
            }
            for child in manifests.iter().take(DESCRIPTION_CHILDREN) {
                if let Some(d) = child.annotations.get(DESCRIPTION_LABEL).filter(|d| !d.is_empty()) {
                    return Some(d.clone());
                }
                let Ok(digest) = parse_digest(&child.digest) else { continue };
                let Ok(child_view) = manifest(registry, name, &Reference::Digest(digest)).await else { continue };
                if let Some(d) = image_description(registry, name, &child_view).await {
                    return Some(d);
                }
            }
            None
        }
    }
}

/// The manifest as indented JSON, for reading.
pub fn pretty_json(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned()),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        assert_eq!(platform_text(Some("linux"), Some("arm64"), Some("v8")).as_deref(), Some("linux/arm64/v8"));
        assert_eq!(platform_text(Some("linux"), Some("amd64"), Some("")).as_deref(), Some("linux/amd64"));
        assert_eq!(platform_text(None, None, None), None);
    }

    #[test]
    fn image_sizes_and_index_entries() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": crate::manifest::OCI_MANIFEST,
            "config": {"mediaType": IMAGE_CONFIG_TYPES[0], "digest": d('a'), "size": 10},
            "layers": [{"mediaType": "l", "digest": d('b'), "size": 100}, {"mediaType": "l", "digest": d('c'), "size": 1000}],
            "annotations": {DESCRIPTION_LABEL: "an image"}
        });
        let view = parse_manifest(Digest::sha256_of(b"x"), crate::manifest::OCI_MANIFEST, body.to_string().into()).unwrap();
        assert_eq!(view.image_size(), Some(1110));
        assert_eq!(view.described().as_deref(), Some("an image"));
        let body = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "m", "digest": d('a'), "size": 5, "platform": {"os": "linux", "architecture": "amd64"}}]
        });
        let view = parse_manifest(Digest::sha256_of(b"y"), crate::manifest::OCI_INDEX, body.to_string().into()).unwrap();
        let Shape::Index { manifests } = &view.shape else { panic!("not an index") };
        assert_eq!(manifests[0].platform.as_deref(), Some("linux/amd64"));
        assert_eq!(view.image_size(), None);
    }

    #[test]
    fn image_configs() {
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["A=1"], "Cmd": null, "Entrypoint": ["/bin/sh"], "Labels": {"k": "<v>"}},
            "history": [{"created_by": "RUN x"}, {"empty_layer": true}]
        });
        let c = parse_image_config(config.to_string().as_bytes()).unwrap();
        assert_eq!(c.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(c.env, vec!["A=1".to_string()]);
        assert_eq!(c.cmd, None);
        assert_eq!(c.entrypoint, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(c.labels.get("k").map(String::as_str), Some("<v>"));
        assert_eq!(c.history, vec!["RUN x".to_string()]);
        assert!(parse_image_config(b"[]").is_err());
    }
}
