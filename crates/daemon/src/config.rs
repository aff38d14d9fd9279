//! berthd's configuration: `/etc/berth/daemon.json` with dockerd's key names, overridden by
//! flags named as dockerd names them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Parser;
use serde::Deserialize;

pub const DEFAULT_CONFIG: &str = "/etc/berth/daemon.json";
pub const DEFAULT_SOCKET: &str = "unix:///run/berth/berth.sock";

#[derive(Debug, Parser)]
#[command(name = "berthd", version, about = "The berth container engine daemon")]
pub struct Flags {
    /// Daemon configuration file
    #[arg(long = "config-file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Root directory of persistent state
    #[arg(long = "data-root", value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Root directory for execution state files
    #[arg(long = "exec-root", value_name = "DIR")]
    pub exec_root: Option<PathBuf>,
    /// Daemon socket(s) to listen on (unix:///path, tcp://host:port)
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Path to the daemon's pid file
    #[arg(short = 'p', long = "pidfile", value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Group owning the unix socket
    #[arg(short = 'G', long = "group", value_name = "GROUP")]
    pub group: Option<String>,
    /// Registry reachable over plain HTTP (host:port or CIDR)
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    pub insecure_registries: Vec<String>,
    /// Preferred registry mirror for docker.io
    #[arg(long = "registry-mirror", value_name = "URL")]
    pub registry_mirrors: Vec<String>,
    /// Enable debug mode
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    /// Logging level (debug, info, warn, error, fatal)
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format (text, json)
    #[arg(long = "log-format", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Maximum concurrent downloads per pull
    #[arg(long = "max-concurrent-downloads", value_name = "N")]
    pub max_concurrent_downloads: Option<usize>,
    /// Maximum concurrent uploads per push
    #[arg(long = "max-concurrent-uploads", value_name = "N")]
    pub max_concurrent_uploads: Option<usize>,
    /// Keep containers running when the daemon stops
    #[arg(long = "live-restore")]
    pub live_restore: bool,
    /// Storage driver (only overlay2)
    #[arg(short = 's', long = "storage-driver", value_name = "DRIVER")]
    pub storage_driver: Option<String>,
    /// Use TLS and verify the remote (required for tcp hosts)
    #[arg(long = "tlsverify")]
    pub tls_verify: bool,
    /// CA that signs trusted client certificates
    #[arg(long = "tlscacert", value_name = "FILE")]
    pub tls_ca_cert: Option<PathBuf>,
    /// TLS certificate file
    #[arg(long = "tlscert", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS key file
    #[arg(long = "tlskey", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

/// daemon.json, with dockerd's key names. Unknown keys are an error, as dockerd makes them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct File {
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub hosts: Option<Vec<String>>,
    pub pidfile: Option<PathBuf>,
    pub group: Option<String>,
    pub registry_mirrors: Option<Vec<String>>,
    /// berth's extension: mirrors for any registry, by its host (`ghcr.io`, `reg:5000`).
    pub registry_host_mirrors: Option<std::collections::HashMap<String, Vec<String>>>,
    pub insecure_registries: Option<Vec<String>>,
    pub max_concurrent_downloads: Option<usize>,
    pub max_concurrent_uploads: Option<usize>,
    pub debug: Option<bool>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub live_restore: Option<bool>,
    pub storage_driver: Option<String>,
    pub tlsverify: Option<bool>,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    /// Accepted for compatibility; berth keeps its own defaults for these.
    #[serde(default, rename = "features")]
    pub _features: BTreeMap<String, bool>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub hosts: Vec<String>,
    pub pidfile: PathBuf,
    pub group: Option<String>,
    pub registry_mirrors: Vec<String>,
    pub registry_host_mirrors: std::collections::HashMap<String, Vec<String>>,
    pub insecure_registries: Vec<String>,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    pub debug: bool,
    pub log_level: String,
    pub log_format: String,
    pub live_restore: bool,
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Config {
    pub fn load(flags: Flags) -> anyhow::Result<Config> {
        let path = flags.config_file.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let file = read_file(&path, flags.config_file.is_some())?;
        let debug = flags.debug || file.debug.unwrap_or(false);
        let storage_driver = flags.storage_driver.or(file.storage_driver);
        if let Some(driver) = storage_driver.filter(|d| d != "overlay2" && d != "overlay") {
            bail!("storage driver {driver:?} is not supported: berth uses overlay2");
        }
        let log_level = flags.log_level.or(file.log_level).unwrap_or_else(|| if debug { "debug" } else { "info" }.to_string());
        if !matches!(log_level.as_str(), "debug" | "info" | "warn" | "error" | "fatal" | "trace") {
            bail!("invalid log level {log_level:?}: use debug, info, warn, error or fatal");
        }
        let log_format = flags.log_format.or(file.log_format).unwrap_or_else(|| "text".to_string());
        if !matches!(log_format.as_str(), "text" | "json") {
            bail!("invalid log format {log_format:?}: use text or json");
        }
        let mut hosts = if flags.hosts.is_empty() { file.hosts.unwrap_or_default() } else { flags.hosts };
        if hosts.is_empty() {
            hosts.push(DEFAULT_SOCKET.to_string());
        }
        let tls_verify = flags.tls_verify || file.tlsverify.unwrap_or(false);
        let tls = match (flags.tls_ca_cert.or(file.tlscacert), flags.tls_cert.or(file.tlscert), flags.tls_key.or(file.tlskey)) {
            (Some(ca_cert), Some(cert), Some(key)) if tls_verify => Some(Tls { ca_cert, cert, key }),
            _ if tls_verify => bail!("--tlsverify needs --tlscacert, --tlscert and --tlskey"),
            _ => None,
        };
        let non_zero = |name: &str, v: Option<usize>, default: usize| match v {
            Some(0) => bail!("invalid {name}: must be at least 1"),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let pick = |flag: Vec<String>, file: Option<Vec<String>>| if flag.is_empty() { file.unwrap_or_default() } else { flag };
        Ok(Config {
            data_root: flags.data_root.or(file.data_root).unwrap_or_else(|| PathBuf::from("/var/lib/berth")),
            exec_root: flags.exec_root.or(file.exec_root).unwrap_or_else(|| PathBuf::from("/run/berth")),
            hosts,
            pidfile: flags.pidfile.or(file.pidfile).unwrap_or_else(|| PathBuf::from("/run/berth/berthd.pid")),
            group: flags.group.or(file.group),
            registry_mirrors: pick(flags.registry_mirrors, file.registry_mirrors),
            registry_host_mirrors: file.registry_host_mirrors.unwrap_or_default(),
            insecure_registries: pick(flags.insecure_registries, file.insecure_registries),
            max_concurrent_downloads: non_zero("max-concurrent-downloads", flags.max_concurrent_downloads.or(file.max_concurrent_downloads), 3)?,
            max_concurrent_uploads: non_zero("max-concurrent-uploads", flags.max_concurrent_uploads.or(file.max_concurrent_uploads), 5)?,
            debug,
            log_level,
            log_format,
            live_restore: flags.live_restore || file.live_restore.unwrap_or(false),
            tls,
        })
    }
}

fn read_file(path: &Path, required: bool) -> anyhow::Result<File> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(File::default()),
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("invalid configuration file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(File::default()),
        Err(e) => Err(e).with_context(|| format!("reading configuration file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str, args: &[&str]) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, json).unwrap();
        let mut argv = vec!["berthd", "--config-file", path.to_str().unwrap()];
        argv.extend_from_slice(args);
        Config::load(Flags::parse_from(argv))
    }

    #[test]
    fn flags_override_the_file() {
        let c = load(r#"{"data-root":"/a","debug":false,"max-concurrent-downloads":6,"registry-mirrors":["http://m"]}"#, &["--data-root", "/b", "-D"]).unwrap();
        assert_eq!(c.data_root, PathBuf::from("/b"));
        assert!(c.debug);
        assert_eq!(c.max_concurrent_downloads, 6);
        assert_eq!(c.registry_mirrors, vec!["http://m"]);
        assert_eq!(c.hosts, vec![DEFAULT_SOCKET]);
    }

    #[test]
    fn bad_files_are_named() {
        let e = load(r#"{"no-such-key":1}"#, &[]).unwrap_err();
        assert!(format!("{e:#}").contains("no-such-key"), "{e:#}");
        assert!(load(r#"{"storage-driver":"vfs"}"#, &[]).is_err());
        assert!(load("{", &[]).is_err());
        assert!(load(r#"{"max-concurrent-downloads":0}"#, &[]).is_err());
        assert!(load("{}", &["--tlsverify"]).is_err());
    }
}
