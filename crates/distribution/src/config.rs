//! Registry settings (mirrors, insecure registries, retries) and the endpoints they give a
//! registry domain: which hosts to contact, in which order, over which schemes.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use crate::reference::DEFAULT_DOMAIN;
use crate::Error;

/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The host that serves Docker Hub's search.
pub const DOCKER_HUB_INDEX_HOST: &str = "index.docker.io";

/// The registry part of the daemon's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// daemon.json `registry-mirrors`: URLs tried in order before Docker Hub for pulls.
    pub mirrors: Vec<String>,
    /// Mirrors of any registry, keyed by its domain (`registry.example.com:5000`).
    pub registry_mirrors: HashMap<String, Vec<String>>,
    /// daemon.json `insecure-registries`: `host[:port]` or CIDR; HTTPS is tried without
    /// certificate checks, then plain HTTP. Loopback hosts are always insecure.
    pub insecure: Vec<String>,
    /// Retries, with exponential backoff, after network errors and 5xx/429 answers.
    pub max_retries: u32,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            mirrors: Vec::new(),
            registry_mirrors: HashMap::new(),
            insecure: Vec::new(),
            max_retries: 4,
        }
    }
}

/// How an endpoint is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Https,
    Http,
    /// HTTPS without certificate verification, then plain HTTP (an insecure registry).
    HttpsThenHttp,
}

/// A host that serves a registry's content: its origin or one of its mirrors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    registry: String,
    host: String,
    scheme: Scheme,
    mirror: bool,
}

impl Endpoint {
    /// The registry domain whose content this endpoint serves (`docker.io`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The `host[:port]` contacted (`registry-1.docker.io`).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn is_mirror(&self) -> bool {
        self.mirror
    }

    /// How messages name the endpoint: its host, and what it mirrors.
    pub(crate) fn label(&self) -> String {
        if self.mirror {
            format!("{} (mirror of {})", self.host, self.registry)
        } else {
            self.host.clone()
        }
    }

    /// Whether TLS certificates go unchecked for this endpoint.
    pub(crate) fn skips_tls_verify(&self) -> bool {
        self.scheme == Scheme::HttpsThenHttp
    }

    /// The base URLs to try, in order.
    pub(crate) fn base_urls(&self) -> Vec<String> {
        match self.scheme {
            Scheme::Https => vec![format!("https://{}", self.host)],
            Scheme::Http => vec![format!("http://{}", self.host)],
            Scheme::HttpsThenHttp => vec![
                format!("https://{}", self.host),
                format!("http://{}", self.host),
            ],
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::Https => write!(f, "https://{}", self.host)?,
            Scheme::Http => write!(f, "http://{}", self.host)?,
            Scheme::HttpsThenHttp => write!(f, "{} (insecure)", self.host)?,
        }
        if self.mirror {
            write!(f, " (mirror of {})", self.registry)?;
        }
        Ok(())
    }
}

/// A mirror URL from the configuration, validated.
#[derive(Debug, Clone)]
struct Mirror {
    host: String,
    https: bool,
}

/// The configuration, parsed once.
#[derive(Debug)]
pub(crate) struct Endpoints {
    mirrors: HashMap<String, Vec<Mirror>>,
    insecure_hosts: Vec<String>,
    insecure_nets: Vec<(IpAddr, u8)>,
}

/// Docker Hub's other names map to `docker.io`.
pub(crate) fn canonical_domain(domain: &str) -> &str {
    match domain {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_DOMAIN,
        other => other,
    }
}

impl Endpoints {
    pub(crate) fn new(config: &RegistryConfig) -> Result<Endpoints, Error> {
        let mut mirrors: HashMap<String, Vec<Mirror>> = HashMap::new();
        for url in &config.mirrors {
            mirrors
                .entry(DEFAULT_DOMAIN.to_string())
                .or_default()
                .push(parse_mirror(url)?);
        }
        let mut keys: Vec<&String> = config.registry_mirrors.keys().collect();
        keys.sort();
        for domain in keys {
            let list = mirrors
                .entry(canonical_domain(domain).to_string())
                .or_default();
            for url in &config.registry_mirrors[domain] {
                list.push(parse_mirror(url)?);
            }
        }
        let mut insecure_hosts = Vec::new();
        let mut insecure_nets = Vec::new();
        for entry in &config.insecure {
            if entry.contains("://") {
                return Err(Error::InvalidConfig {
                    reason: format!("insecure registry {entry:?} should not contain '://'"),
                });
            }
            match entry.split_once('/') {
                Some((ip, bits)) => insecure_nets.push(parse_cidr(entry, ip, bits)?),
                None => insecure_hosts.push(entry.clone()),
            }
        }
        Ok(Endpoints {
            mirrors,
            insecure_hosts,
            insecure_nets,
        })
    }

    /// Whether `host[:port]` may be reached without verified TLS, as docker decides: listed
    /// hosts, loopback addresses and `localhost`, and hosts whose address is in a listed CIDR.
    pub(crate) async fn is_insecure(&self, host_port: &str) -> bool {
        if self.insecure_hosts.iter().any(|h| h == host_port) {
            return true;
        }
        let host = strip_port(host_port);
        if host == "localhost" {
            return true;
        }
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return ip.is_loopback() || self.in_insecure_net(ip);
        }
        if self.insecure_nets.is_empty() {
            return false;
        }
        match tokio::net::lookup_host((host, 0)).await {
            Ok(addrs) => addrs
                .map(|a| a.ip())
                .any(|ip| ip.is_loopback() || self.in_insecure_net(ip)),
            Err(_) => false,
        }
    }

    fn in_insecure_net(&self, ip: IpAddr) -> bool {
        self.insecure_nets
            .iter()
            .any(|(net, bits)| in_net(ip, *net, *bits))
    }

    /// The endpoint that is the registry itself.
    pub(crate) async fn origin(&self, domain: &str) -> Endpoint {
        let registry = canonical_domain(domain).to_string();
        let (host, scheme) = if registry == DEFAULT_DOMAIN {
            (DOCKER_HUB_API_HOST.to_string(), Scheme::Https)
        } else if self.is_insecure(&registry).await {
            (registry.clone(), Scheme::HttpsThenHttp)
        } else {
            (registry.clone(), Scheme::Https)
        };
        Endpoint {
            registry,
            host,
            scheme,
            mirror: false,
        }
    }

    /// An endpoint on another host that serves `domain` (search uses Docker Hub's index host).
    pub(crate) async fn at_host(&self, domain: &str, host: &str) -> Endpoint {
        let scheme = if self.is_insecure(host).await {
            Scheme::HttpsThenHttp
        } else {
            Scheme::Https
        };
        Endpoint {
            registry: canonical_domain(domain).to_string(),
            host: host.to_string(),
            scheme,
            mirror: false,
        }
    }

    /// Where to pull `domain`'s content from: its mirrors in order, then the origin.
    pub(crate) async fn pull(&self, domain: &str) -> Vec<Endpoint> {
        let registry = canonical_domain(domain).to_string();
        let mut out = Vec::new();
        for m in self.mirrors.get(&registry).into_iter().flatten() {
            let scheme = match m.https {
                false => Scheme::Http,
                true if self.is_insecure(&m.host).await => Scheme::HttpsThenHttp,
                true => Scheme::Https,
            };
            out.push(Endpoint {
                registry: registry.clone(),
                host: m.host.clone(),
                scheme,
                mirror: true,
            });
        }
        out.push(self.origin(&registry).await);
        out
    }
}

fn parse_mirror(url: &str) -> Result<Mirror, Error> {
    let bad = |why: &str| Error::InvalidConfig {
        reason: format!("invalid mirror {url:?}: {why}"),
    };
    let parsed = url::Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
    let https = match parsed.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(bad("the scheme must be http or https")),
    };
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() || parsed.fragment().is_some()
    {
        return Err(bad("a mirror URL has no path, query or fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("credentials do not belong in the URL"));
    }
    let host = parsed.host_str().ok_or_else(|| bad("no host"))?;
    let host = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    Ok(Mirror { host, https })
}

fn parse_cidr(entry: &str, ip: &str, bits: &str) -> Result<(IpAddr, u8), Error> {
    let bad = || Error::InvalidConfig {
        reason: format!("insecure registry {entry:?} is not a valid CIDR"),
    };
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let bits: u8 = bits.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(bad());
    }
    Ok((ip, bits))
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let mask = |len: u32| {
        if bits == 0 {
            0u128
        } else {
            u128::MAX << (len - u32::from(bits))
        }
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = mask(32) as u32;
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = mask(128);
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

/// `host:port` -> `host`, `[::1]:5000` -> `[::1]`.
fn strip_port(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        return host_port
            .split_once(']')
            .map_or(host_port, |(h, _)| &host_port[..h.len() + 1]);
    }
    match host_port.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host_port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(insecure: &[&str]) -> RegistryConfig {
        RegistryConfig {
            insecure: insecure.iter().map(|s| s.to_string()).collect(),
            ..RegistryConfig::default()
        }
    }

    #[tokio::test]
    async fn insecure_matching() {
        let e = Endpoints::new(&config(&["myreg:5000", "10.1.0.0/16", "fd00::/8"])).unwrap();
        assert!(e.is_insecure("myreg:5000").await);
        assert!(!e.is_insecure("myreg").await);
        assert!(e.is_insecure("localhost:5000").await);
        assert!(e.is_insecure("127.0.0.1:5000").await);
        assert!(e.is_insecure("127.1.2.3").await);
        assert!(e.is_insecure("[::1]:5000").await);
        assert!(e.is_insecure("10.1.200.3:443").await);
        assert!(!e.is_insecure("10.2.0.1").await);
        assert!(e.is_insecure("[fd12::1]:5000").await);
        assert!(!e.is_insecure("registry.example.com").await);
    }

    #[test]
    fn bad_config() {
        for (c, msg) in [
            (config(&["http://x"]), "should not contain"),
            (config(&["10.0.0.0/33"]), "not a valid CIDR"),
            (config(&["nope/8"]), "not a valid CIDR"),
            (
                RegistryConfig {
                    mirrors: vec!["ftp://m".into()],
                    ..RegistryConfig::default()
                },
                "scheme",
            ),
            (
                RegistryConfig {
                    mirrors: vec!["https://m/path".into()],
                    ..RegistryConfig::default()
                },
                "no path",
            ),
            (
                RegistryConfig {
                    mirrors: vec!["m:5000".into()],
                    ..RegistryConfig::default()
                },
                "invalid mirror",
            ),
        ] {
            let e = Endpoints::new(&c).unwrap_err();
            assert!(e.to_string().contains(msg), "{e}");
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        }
    }

    #[tokio::test]
    async fn pull_order() {
        let mut c = RegistryConfig {
            mirrors: vec!["https://m1".into(), "http://127.0.0.1:5001/".into()],
            ..RegistryConfig::default()
        };
        c.registry_mirrors
            .insert("index.docker.io".into(), vec!["https://m3:8443".into()]);
        c.registry_mirrors
            .insert("reg.example.com".into(), vec!["https://m4".into()]);
        let e = Endpoints::new(&c).unwrap();
        let hub: Vec<String> = e
            .pull("docker.io")
            .await
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            hub,
            [
                "https://m1 (mirror of docker.io)",
                "http://127.0.0.1:5001 (mirror of docker.io)",
                "https://m3:8443 (mirror of docker.io)",
                "https://registry-1.docker.io",
            ]
        );
        let other: Vec<String> = e
            .pull("reg.example.com")
            .await
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            other,
            [
                "https://m4 (mirror of reg.example.com)",
                "https://reg.example.com"
            ]
        );
        assert_eq!(
            e.pull("localhost:5000").await[0].to_string(),
            "localhost:5000 (insecure)"
        );
    }

    #[test]
    fn ports() {
        assert_eq!(strip_port("a:1"), "a");
        assert_eq!(strip_port("a"), "a");
        assert_eq!(strip_port("[::1]:5000"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
