//! Manifests and indexes (Docker schema 2 and OCI), their media types, and platforms with
//! docker's matching rules for picking an image out of a multi-platform index.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{digest, Error};

/// Media types the client knows.
pub mod media_type {
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_PLUGIN_CONFIG: &str = "application/vnd.docker.plugin.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
    pub const DOCKER_FOREIGN_LAYER: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_NONDISTRIBUTABLE: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

    /// The Accept header of a manifest request, most wanted first.
    pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
        application/vnd.docker.distribution.manifest.list.v2+json, \
        application/vnd.oci.image.manifest.v1+json, \
        application/vnd.docker.distribution.manifest.v2+json";
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a layer media type, or `None` when it is not a layer type.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    use media_type::*;
    match media_type {
        DOCKER_LAYER | OCI_LAYER | OCI_LAYER_NONDISTRIBUTABLE => Some(Compression::None),
        DOCKER_LAYER_GZIP
        | DOCKER_FOREIGN_LAYER
        | OCI_LAYER_GZIP
        | OCI_LAYER_NONDISTRIBUTABLE_GZIP => Some(Compression::Gzip),
        DOCKER_LAYER_ZSTD | OCI_LAYER_ZSTD | OCI_LAYER_NONDISTRIBUTABLE_ZSTD => {
            Some(Compression::Zstd)
        }
        _ => None,
    }
}

/// Foreign (non-distributable) layers live at their descriptor's `urls`, not in the registry;
/// docker does not pull or push them by default.
pub fn is_foreign_layer(media_type: &str) -> bool {
    use media_type::*;
    matches!(
        media_type,
        DOCKER_FOREIGN_LAYER
            | OCI_LAYER_NONDISTRIBUTABLE
            | OCI_LAYER_NONDISTRIBUTABLE_GZIP
            | OCI_LAYER_NONDISTRIBUTABLE_ZSTD
    )
}

/// Whether a media type names an image config.
pub fn is_config(media_type: &str) -> bool {
    matches!(
        media_type,
        media_type::DOCKER_CONFIG | media_type::OCI_CONFIG
    )
}

/// A content descriptor: what a manifest says about a blob or a child manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// An image manifest (Docker schema 2 or OCI): a config and layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A multi-platform index (OCI index or Docker manifest list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A parsed manifest document.
// Short-lived (parse, then match); boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Image(Manifest),
    Index(Index),
}

/// Whether a media type is an image manifest, an index, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    Index,
}

pub fn manifest_kind(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        media_type::DOCKER_MANIFEST | media_type::OCI_MANIFEST => Some(ManifestKind::Image),
        media_type::DOCKER_MANIFEST_LIST | media_type::OCI_INDEX => Some(ManifestKind::Index),
        _ => None,
    }
}

/// The few fields needed to tell what a manifest document is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

/// Parses manifest bytes served with `content_type`, returning the effective media type.
/// `reference` only names the manifest in errors. Like docker, a generic content type
/// (`application/json`, none) is resolved from the document's `mediaType` or its shape.
pub fn parse(
    reference: &str,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<(String, Parsed), Error> {
    let invalid = |reason: String| Error::InvalidManifest {
        reference: reference.to_string(),
        reason,
    };
    let unsupported = |reason: String| Error::UnsupportedManifest {
        reference: reference.to_string(),
        reason,
    };
    let content_type = content_type.map(base_media_type).unwrap_or_default();
    if matches!(
        content_type,
        media_type::DOCKER_SCHEMA1 | media_type::DOCKER_SCHEMA1_SIGNED
    ) {
        return Err(unsupported(schema1_reason()));
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a JSON manifest: {e}")))?;
    if probe.schema_version == Some(1) {
        return Err(unsupported(schema1_reason()));
    }
    let declared = probe.media_type.as_deref().filter(|m| !m.is_empty());
    let media_type = match (manifest_kind(content_type), declared) {
        (Some(_), Some(d)) if manifest_kind(d) != manifest_kind(content_type) => {
            return Err(invalid(format!(
                "served as {content_type} but its mediaType is {d}"
            )));
        }
        (Some(_), _) => content_type.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) if is_generic_content_type(content_type) => {
            if probe.manifests.is_some() {
                media_type::OCI_INDEX.to_string()
            } else if probe.config.is_some() {
                media_type::OCI_MANIFEST.to_string()
            } else {
                return Err(unsupported(
                    "the document is neither an image manifest nor an index".into(),
                ));
            }
        }
        (None, None) => content_type.to_string(),
    };
    let parsed = match manifest_kind(&media_type) {
        Some(ManifestKind::Image) => {
            let m: Manifest = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
            check_descriptors(std::iter::once(&m.config).chain(&m.layers)).map_err(invalid)?;
            Parsed::Image(m)
        }
        Some(ManifestKind::Index) => {
            let i: Index = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
            check_descriptors(&i.manifests).map_err(invalid)?;
            Parsed::Index(i)
        }
        None => return Err(unsupported(format!("unknown media type {media_type:?}"))),
    };
    let schema_version = match &parsed {
        Parsed::Image(m) => m.schema_version,
        Parsed::Index(i) => i.schema_version,
    };
    if schema_version != 2 {
        return Err(invalid(format!(
            "schemaVersion is {schema_version}, expected 2"
        )));
    }
    Ok((media_type, parsed))
}

fn schema1_reason() -> String {
    "Docker Image manifest version 2, schema 1 is no longer supported; the image must be pushed \
     again with a current client"
        .to_string()
}

/// `application/json; charset=utf-8` -> `application/json`.
pub(crate) fn base_media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

fn is_generic_content_type(ct: &str) -> bool {
    matches!(
        ct,
        "" | "application/json" | "text/plain" | "application/octet-stream"
    )
}

fn check_descriptors<'a>(
    descriptors: impl IntoIterator<Item = &'a Descriptor>,
) -> Result<(), String> {
    for d in descriptors {
        digest::validate(&d.digest)
            .map_err(|m| format!("descriptor digest {:?}: {m}", d.digest))?;
    }
    Ok(())
}

/// An image platform. Fields are kept as the registry wrote them; comparisons normalise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];
const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: &str) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.to_string(),
            ..Platform::default()
        }
    }

    /// The platform this process runs on (what docker pulls by default).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "loongarch64" => "loong64",
            other => other,
        };
        let variant = if arch == "arm" { "v7" } else { "" };
        Platform::new(std::env::consts::OS, arch, variant)
    }

    /// Parses `os[/arch[/variant]]` or a bare architecture like containerd's `platforms.Parse`:
    /// `linux` is the host's architecture on linux, `arm64` is `linux/arm64`.
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let bad = || Error::InvalidPlatform {
            input: s.to_string(),
        };
        let parts: Vec<String> = s.split('/').map(str::to_lowercase).collect();
        if parts.iter().any(|p| {
            p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }) {
            return Err(bad());
        }
        let known_os = |os: &str| KNOWN_OS.contains(&normalize_os(os).as_str());
        let known_arch = |arch: &str| KNOWN_ARCH.contains(&normalize_arch(arch, "").0.as_str());
        let p = match parts.as_slice() {
            [one] if known_os(one) => {
                let host = Platform::host();
                Platform::new(one, &host.architecture, &host.variant)
            }
            [one] if known_arch(one) => Platform::new("linux", one, ""),
            [os, arch] if known_os(os) && known_arch(arch) => Platform::new(os, arch, ""),
            [os, arch, variant] if known_os(os) && known_arch(arch) => {
                Platform::new(os, arch, variant)
            }
            _ => return Err(bad()),
        };
        Ok(p.normalized())
    }

    /// The canonical spelling: `x86_64` is `amd64`, `aarch64` is `arm64`, arm64's `v8` and
    /// amd64's `v1` variants are implied, 32-bit arm defaults to `v7`.
    pub fn normalized(&self) -> Platform {
        let (architecture, variant) = normalize_arch(&self.architecture, &self.variant);
        Platform {
            os: normalize_os(&self.os),
            architecture,
            variant,
            ..self.clone()
        }
    }

    /// Whether `other` is exactly this platform once both are normalised.
    pub fn matches(&self, other: &Platform) -> bool {
        let (a, b) = (self.normalized(), other.normalized());
        a.os == b.os && a.architecture == b.architecture && a.variant == b.variant
    }

    /// The platforms that can run on this one, best first (containerd's `platforms.Only`):
    /// amd64/v3 also runs v2, v1 and 386; arm64 also runs arm v8..v5; arm/v7 runs v6 and v5.
    pub fn compatible(&self) -> Vec<Platform> {
        let p = self.normalized();
        let mut out = vec![p.clone()];
        let version = |v: &str| v.trim_start_matches('v').parse::<u32>().ok();
        match p.architecture.as_str() {
            "amd64" => {
                for v in (1..version(&p.variant).unwrap_or(1)).rev() {
                    let variant = if v == 1 {
                        String::new()
                    } else {
                        format!("v{v}")
                    };
                    out.push(Platform::new(&p.os, "amd64", &variant));
                }
                out.push(Platform::new(&p.os, "386", ""));
            }
            "arm64" => {
                for v in (5..=8).rev() {
                    out.push(Platform::new(&p.os, "arm", &format!("v{v}")));
                }
            }
            "arm" => {
                for v in (5..version(&p.variant).unwrap_or(7)).rev() {
                    out.push(Platform::new(&p.os, "arm", &format!("v{v}")));
                }
            }
            _ => {}
        }
        out
    }

    /// The entry of an index to pull for this platform: the best compatible platform, and
    /// the first entry among equals, like docker.
    pub fn select<'a>(&self, manifests: &'a [Descriptor]) -> Option<&'a Descriptor> {
        self.compatible().iter().find_map(|want| {
            manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        })
    }
}

fn normalize_os(os: &str) -> String {
    match os.to_lowercase().as_str() {
        "macos" => "darwin".to_string(),
        other => other.to_string(),
    }
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_lowercase();
    let variant = variant.to_lowercase();
    let (arch, variant) = match arch.as_str() {
        "i386" | "i486" | "i586" | "i686" | "x86" => ("386", variant),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64",
            if variant == "v1" {
                String::new()
            } else {
                variant
            },
        ),
        "aarch64" | "arm64" => (
            "arm64",
            if matches!(variant.as_str(), "8" | "v8") {
                String::new()
            } else {
                variant
            },
        ),
        "armhf" => ("arm", "v7".to_string()),
        "armel" => ("arm", "v6".to_string()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm", v)
        }
        other => return (other.to_string(), variant),
    };
    (arch.to_string(), variant)
}

/// `os/arch[/variant]`, e.g. `linux/arm64/v8`.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(platform: &str) -> Descriptor {
        let parts: Vec<&str> = platform.split('/').collect();
        Descriptor {
            media_type: media_type::OCI_MANIFEST.into(),
            digest: digest::sha256(platform.as_bytes()),
            size: 1,
            urls: vec![],
            annotations: BTreeMap::new(),
            platform: Some(Platform::new(
                parts[0],
                parts[1],
                parts.get(2).copied().unwrap_or(""),
            )),
            artifact_type: None,
        }
    }

    #[test]
    fn platform_parsing() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/armhf").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("Linux/AMD64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(Platform::parse("linux").unwrap().os, "linux");
        for bad in [
            "",
            "foo",
            "linux/foo",
            "linux/amd64/v3/x",
            "linux//amd64",
            "linux/am d64",
        ] {
            let e = Platform::parse(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{bad:?}: unknown operating system or architecture")
            );
        }
    }

    #[test]
    fn platform_selection() {
        let index = [
            desc("linux/amd64"),
            desc("linux/arm64/v8"),
            desc("linux/arm/v6"),
            desc("windows/amd64"),
        ];
        let pick = |p: &str| {
            Platform::parse(p)
                .unwrap()
                .select(&index)
                .map(|d| d.platform.clone().unwrap().to_string())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("linux/amd64"));
        assert_eq!(pick("linux/arm64").as_deref(), Some("linux/arm64/v8"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("linux/arm/v6"));
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(pick("windows/amd64").as_deref(), Some("windows/amd64"));
        assert_eq!(pick("linux/s390x"), None);
        // amd64/v3 hosts prefer a v3 build but run the baseline one.
        let v = [desc("linux/amd64"), desc("linux/amd64/v3")];
        assert_eq!(
            Platform::parse("linux/amd64/v3").unwrap().select(&v),
            Some(&v[1])
        );
        assert_eq!(
            Platform::parse("linux/amd64/v2").unwrap().select(&v),
            Some(&v[0])
        );
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().select(&v),
            Some(&v[0])
        );
        // Only 386 offered: an amd64 host runs it.
        assert!(Platform::parse("linux/amd64")
            .unwrap()
            .select(&[desc("linux/386")])
            .is_some());
        assert!(Platform::host().matches(&Platform::host().normalized()));
    }

    #[test]
    fn parse_by_content_type_and_shape() {
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[]}}"#,
            media_type::OCI_CONFIG,
            digest::sha256(b"{}")
        );
        let (mt, p) = parse("r", Some(media_type::DOCKER_MANIFEST), manifest.as_bytes()).unwrap();
        assert_eq!(mt, media_type::DOCKER_MANIFEST);
        assert!(matches!(p, Parsed::Image(_)));
        let (mt, _) = parse(
            "r",
            Some("application/json; charset=utf-8"),
            manifest.as_bytes(),
        )
        .unwrap();
        assert_eq!(mt, media_type::OCI_MANIFEST);
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        let (mt, p) = parse("r", None, index.as_bytes()).unwrap();
        assert_eq!(mt, media_type::OCI_INDEX);
        assert!(matches!(p, Parsed::Index(_)));

        let e = parse(
            "r",
            Some(media_type::OCI_INDEX),
            manifest
                .replace(
                    "\"config\"",
                    "\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\"",
                )
                .as_bytes(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("its mediaType is"), "{e}");
        let e = parse(
            "r",
            Some("application/vnd.example+json"),
            manifest.as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported manifest for r: unknown media type \"application/vnd.example+json\""
        );
        let e = parse("r", Some(media_type::DOCKER_SCHEMA1_SIGNED), b"{}").unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        let e = parse("r", Some(media_type::OCI_MANIFEST), b"<html></html>").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid manifest for r: not a JSON manifest"),
            "{e}"
        );
        let bad_digest = manifest.replace(&digest::sha256(b"{}"), "sha256:zz");
        let e = parse("r", Some(media_type::OCI_MANIFEST), bad_digest.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("invalid checksum digest"), "{e}");
    }

    #[test]
    fn layer_types() {
        assert_eq!(
            layer_compression(media_type::OCI_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        assert_eq!(
            layer_compression(media_type::DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(
            layer_compression(media_type::OCI_LAYER),
            Some(Compression::None)
        );
        assert_eq!(layer_compression(media_type::OCI_CONFIG), None);
        assert!(is_foreign_layer(media_type::DOCKER_FOREIGN_LAYER));
        assert!(!is_foreign_layer(media_type::OCI_LAYER_GZIP));
        assert!(is_config(media_type::DOCKER_CONFIG));
    }
}
