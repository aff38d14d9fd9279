//! `registry.toml`: where to listen, where to store, TLS, upload expiry.
//!
//! ```toml
//! addr = "127.0.0.1:5000"        # HOST:PORT
//! root = "./registry-data"       # relative paths are relative to the working directory
//! upload_expiry = "1h"           # idle upload sessions are removed after this
//! [tls]
//! cert = "/etc/berth-registry/cert.pem"
//! key = "/etc/berth-registry/key.pem"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

pub const DEFAULT_ADDR: &str = "127.0.0.1:5000";
pub const DEFAULT_ROOT: &str = "./registry-data";
pub const DEFAULT_UPLOAD_EXPIRY: Duration = Duration::from_secs(3600);

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub addr: String,
    pub root: PathBuf,
    pub upload_expiry: Duration,
    pub tls: Option<Tls>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            addr: DEFAULT_ADDR.to_string(),
            root: PathBuf::from(DEFAULT_ROOT),
            upload_expiry: DEFAULT_UPLOAD_EXPIRY,
            tls: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    addr: Option<String>,
    root: Option<PathBuf>,
    upload_expiry: Option<String>,
    tls: Option<Tls>,
}

/// Parses a duration such as `90s`, `30m`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let d = humantime::parse_duration(text).map_err(|e| Error::Config(format!("invalid duration {text:?}: {e}")))?;
    if d.is_zero() {
        return Err(Error::Config(format!("invalid duration {text:?}: must be longer than zero")));
    }
    Ok(d)
}

impl Config {
    /// Parses the text of a `registry.toml`; absent keys keep their defaults.
    pub fn from_toml(text: &str) -> Result<Config> {
        let file: File = toml::from_str(text).map_err(|e| Error::Config(e.to_string().trim_end().to_string()))?;
        let mut config = Config::default();
        if let Some(addr) = file.addr {
            config.addr = addr;
        }
        if let Some(root) = file.root {
            config.root = root;
        }
        if let Some(expiry) = file.upload_expiry {
            config.upload_expiry = parse_duration(&expiry)?;
        }
        config.tls = file.tls;
        Ok(config)
    }

    /// Reads a `registry.toml`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read config", path))?;
        Config::from_toml(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults() {
        let c = Config::from_toml("addr = \"0.0.0.0:5001\"\nupload_expiry = \"90s\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n").unwrap();
        assert_eq!(c.addr, "0.0.0.0:5001");
        assert_eq!(c.root, PathBuf::from(DEFAULT_ROOT));
        assert_eq!(c.upload_expiry, Duration::from_secs(90));
        assert_eq!(c.tls.unwrap().key, PathBuf::from("k.pem"));
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        let e = Config::from_toml("adr = \"x\"").unwrap_err().to_string();
        assert!(e.contains("adr"), "{e}");
        assert!(Config::from_toml("upload_expiry = \"soon\"").is_err());
        assert!(Config::from_toml("upload_expiry = \"0s\"").is_err());
        assert!(Config::from_toml("[tls]\ncert = \"c\"").is_err());
    }
}
