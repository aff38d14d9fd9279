//! The parts of an image config (docker's image JSON / OCI image config) the engine reads.
//! The config blob itself is kept verbatim; this is a typed view over it.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Vec<History>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "Labels", default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct History {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// Parses and checks a config blob: a rootfs of type `layers` with valid diff ids.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, String> {
        let config: ImageConfig = serde_json::from_slice(bytes).map_err(|e| format!("invalid image config: {e}"))?;
        if config.rootfs.kind != "layers" {
            return Err(format!("invalid image config: rootfs type {:?}, expected \"layers\"", config.rootfs.kind));
        }
        for id in &config.rootfs.diff_ids {
            id.parse::<berth_store::Digest>().map_err(|e| format!("invalid image config: {e}"))?;
        }
        Ok(config)
    }

    pub fn labels(&self) -> std::collections::BTreeMap<String, String> {
        self.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default()
    }

    /// Creation time as unix seconds (0 when absent or unparsable).
    pub fn created_unix(&self) -> i64 {
        self.created.as_deref().and_then(parse_rfc3339).unwrap_or(0)
    }
}

pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok().map(|t| t.unix_timestamp())
}

/// Chain ids of a diff id list: chain(0) = diff(0), chain(n) = sha256(chain(n-1) + " " + diff(n)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => berth_store::Digest::sha256_of(format!("{parent} {diff}").as_bytes()).to_string(),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], berth_store::Digest::sha256_of(format!("{a} {b}").as_bytes()).to_string());
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(ImageConfig::parse(b"{}").is_err());
        assert!(ImageConfig::parse(br#"{"rootfs":{"type":"layers","diff_ids":["sha256:../x"]}}"#).is_err());
        assert!(ImageConfig::parse(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#).is_ok());
    }
}
