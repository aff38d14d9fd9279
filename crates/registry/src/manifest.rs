//! Manifest parsing: which media types are accepted, what a manifest references (and so
//! what must be present before it is stored), and its referrers descriptor.

use berth_store::Digest;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::names::parse_digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The largest manifest accepted; the spec asks registries to take at least 4 MiB.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// Whether a manifest media type lists other manifests (index, manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// What a manifest points at, and whether the target is a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Blob(Digest),
    Manifest(Digest),
}

/// The facts about a manifest that the registry acts on.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    /// Descriptors that must be present in the repository (config, layers, children);
    /// layers that name external `urls` are left out, as they are fetched from elsewhere.
    pub targets: Vec<Target>,
    /// The manifest this one refers to; allowed to be missing.
    pub subject: Option<Digest>,
    /// The artifact type the referrers API reports.
    pub artifact_type: Option<String>,
    pub annotations: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<Map<String, Value>>,
}

/// Strips parameters (`; charset=utf-8`) from a Content-Type.
fn bare_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

fn descriptor(raw: &RawDescriptor, field: &str) -> Result<Digest> {
    let digest = raw
        .digest
        .as_deref()
        .ok_or_else(|| Error::ManifestInvalid(format!("{field} has no digest")))?;
    let digest = parse_digest(digest).map_err(|e| Error::ManifestInvalid(format!("{field}: {e}")))?;
    match raw.size {
        Some(size) if size >= 0 => Ok(digest),
        Some(size) => Err(Error::ManifestInvalid(format!("{field} has a negative size {size}"))),
        None => Err(Error::ManifestInvalid(format!("{field} has no size"))),
    }
}

/// Parses and checks a manifest body sent with `content_type`.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Manifest> {
    let raw: RawManifest =
        serde_json::from_slice(body).map_err(|e| Error::ManifestInvalid(format!("not a JSON manifest: {e}")))?;
    match raw.schema_version {
        Some(2) => {}
        Some(1) => return Err(Error::ManifestInvalid("schema 1 manifests are not supported".into())),
        Some(v) => return Err(Error::ManifestInvalid(format!("unsupported schemaVersion {v}"))),
        None => return Err(Error::ManifestInvalid("schemaVersion is missing".into())),
    }
    let header = content_type.map(bare_type).filter(|t| !t.is_empty() && *t != "application/json" && *t != "application/octet-stream");
    if let (Some(header), Some(field)) = (header, raw.media_type.as_deref()) {
        if header != field {
            return Err(Error::ManifestInvalid(format!(
                "Content-Type {header} differs from the manifest's mediaType {field}"
            )));
        }
    }
    // Without a declared type, the shape tells: an index lists manifests, an image has a config.
    let media_type = match (header, raw.media_type.as_deref()) {
        (Some(t), _) | (None, Some(t)) => t.to_string(),
        (None, None) if raw.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) => OCI_MANIFEST.to_string(),
    };

    let mut targets = Vec::new();
    let artifact_type = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            if raw.manifests.is_some() {
                return Err(Error::ManifestInvalid(format!("an image manifest ({media_type}) has no manifests field")));
            }
            let config = raw.config.as_ref().ok_or_else(|| Error::ManifestInvalid("config is missing".into()))?;
            targets.push(Target::Blob(descriptor(config, "config")?));
            for (i, layer) in raw.layers.iter().flatten().enumerate() {
                let digest = descriptor(layer, &format!("layers[{i}]"))?;
                if layer.urls.is_empty() {
                    targets.push(Target::Blob(digest));
                }
            }
            raw.artifact_type
                .clone()
                .filter(|t| !t.is_empty())
                .or_else(|| config.media_type.clone().filter(|t| !t.is_empty()))
        }
        OCI_INDEX | DOCKER_LIST => {
            if raw.config.is_some() || raw.layers.is_some() {
                return Err(Error::ManifestInvalid(format!("an index ({media_type}) has no config or layers")));
            }
            let manifests =
                raw.manifests.as_ref().ok_or_else(|| Error::ManifestInvalid("manifests is missing".into()))?;
            for (i, m) in manifests.iter().enumerate() {
                targets.push(Target::Manifest(descriptor(m, &format!("manifests[{i}]"))?));
            }
            raw.artifact_type.clone().filter(|t| !t.is_empty())
        }
        other => return Err(Error::ManifestInvalid(format!("unsupported manifest media type {other}"))),
    };
    let subject = raw.subject.as_ref().map(|s| descriptor(s, "subject")).transpose()?;
    Ok(Manifest { media_type, targets, subject, artifact_type, annotations: raw.annotations })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifest_targets_and_artifact_type() {
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.example.config", "digest": d('a'), "size": 2},
            "layers": [{"mediaType": "x", "digest": d('b'), "size": 3},
                       {"mediaType": "x", "digest": d('c'), "size": 3, "urls": ["https://example.com/c"]}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": d('e'), "size": 9}
        });
        let m = parse(Some(OCI_MANIFEST), body.to_string().as_bytes()).unwrap();
        assert_eq!(m.targets.len(), 2);
        assert_eq!(m.artifact_type.as_deref(), Some("application/vnd.example.config"));
        assert_eq!(m.subject.unwrap().as_str(), d('e'));
    }

    #[test]
    fn rejects_bad_manifests() {
        let ok_config = serde_json::json!({"mediaType": "c", "digest": d('a'), "size": 1});
        let cases = [
            (Some(OCI_MANIFEST), serde_json::json!({"schemaVersion": 1})),
            (Some(OCI_MANIFEST), serde_json::json!({"schemaVersion": 2, "layers": []})),
            (Some(DOCKER_MANIFEST), serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": ok_config})),
            (Some("text/plain"), serde_json::json!({"schemaVersion": 2, "config": ok_config})),
            (Some(OCI_INDEX), serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": "sha256:xyz", "size": 1}]})),
            (Some(OCI_MANIFEST), serde_json::json!({"schemaVersion": 2, "config": {"digest": d('a'), "size": -1}})),
        ];
        for (ct, body) in cases {
            assert!(matches!(parse(ct, body.to_string().as_bytes()), Err(Error::ManifestInvalid(_))), "{body}");
        }
        assert!(parse(None, b"not json").is_err());
    }

    #[test]
    fn sniffs_type_without_header() {
        let body = serde_json::json!({"schemaVersion": 2, "manifests": []});
        assert_eq!(parse(None, body.to_string().as_bytes()).unwrap().media_type, OCI_INDEX);
        let body = serde_json::json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": []});
        assert_eq!(parse(Some("application/json; charset=utf-8"), body.to_string().as_bytes()).unwrap().media_type, DOCKER_LIST);
    }
}
