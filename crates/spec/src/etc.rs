//! The /etc/hosts and /etc/resolv.conf content Docker writes for a container.

use crate::error::{invalid, Result};
use std::net::IpAddr;

/// The name Docker maps to the host's gateway address in `--add-host`.
const HOST_GATEWAY: &str = "host-gateway";

/// Splits an `ExtraHosts` entry, "name:ip" (at the first colon, so IPv6 works).
pub(crate) fn parse_extra_host(entry: &str) -> Result<(String, IpAddr)> {
    let (name, ip) = entry
        .split_once(':')
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| invalid(format!("bad format for add-host: {entry:?}")))?;
    if ip == HOST_GATEWAY {
        return Err(invalid(format!(
            "add-host {entry:?}: host-gateway is not supported yet (berth has no container networking)"
        )));
    }
    let addr = ip
        .parse()
        .map_err(|_| invalid(format!("invalid IP address in add-host: {ip:?}")))?;
    Ok((name.to_string(), addr))
}

/// The container's /etc/hosts: localhost and the IPv6 names, then `--add-host` entries,
/// then the container's own `addresses` under its hostname (none without networking).
/// With `--network host` and no `--add-host`, Docker uses a copy of the host's file
/// instead; the engine does that. A container sharing another's network
/// (`container:<id>`) uses that container's file and cannot add entries.
pub fn hosts_file(
    hostname: &str,
    addresses: &[IpAddr],
    extra_hosts: &[String],
    network_mode: &str,
) -> Result<String> {
    if network_mode.starts_with("container:") && !extra_hosts.is_empty() {
        return Err(invalid(
            "conflicting options: custom host-to-IP mapping and the network mode",
        ));
    }
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::\tip6-localnet\n\
         ff00::\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for entry in extra_hosts {
        let (name, ip) = parse_extra_host(entry)?;
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    // A fully qualified hostname also gets its short name.
    let names = match hostname.split_once('.') {
        Some((short, _)) => format!("{hostname} {short}"),
        None => hostname.to_string(),
    };
    for ip in addresses {
        out.push_str(&format!("{ip}\t{names}\n"));
    }
    Ok(out)
}

/// Docker's fallback when no usable nameserver is left.
const DEFAULT_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// The container's /etc/resolv.conf from the host's (`host_resolv`, its text) and the
/// `--dns`, `--dns-search`, `--dns-option` overrides. Except on the host network,
/// loopback and IPv6 nameservers are dropped (they cannot be reached from a container's
/// network namespace) and Docker's public defaults fill in when none is left. Carries
/// Docker's header and trailer comments.
pub fn resolv_conf(
    host_resolv: &str,
    dns: &[String],
    search: &[String],
    options: &[String],
    network_mode: &str,
) -> String {
    let mut nameservers: Vec<IpAddr> = Vec::new();
    let mut invalid_ns: Vec<String> = Vec::new();
    let mut host_search: Vec<String> = Vec::new();
    let mut host_options: Vec<String> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    for line in host_resolv.lines() {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [] => {}
            ["nameserver", addr, ..] => match addr.parse() {
                Ok(a) => nameservers.push(a),
                Err(_) => invalid_ns.push(addr.to_string()),
            },
            ["search" | "domain", rest @ ..] if !rest.is_empty() => {
                host_search = rest.iter().map(|s| s.to_string()).collect()
            }
            ["options", rest @ ..] if !rest.is_empty() => {
                host_options.extend(rest.iter().map(|s| s.to_string()))
            }
            ["nameserver" | "search" | "domain" | "options"] => {}
            _ => other.push(line.to_string()),
        }
    }
    let ndots_from_host = host_options
        .iter()
        .any(|o| o.split(':').next() == Some("ndots"));

    let ns_override = !dns.is_empty();
    if ns_override {
        nameservers = dns.iter().filter_map(|d| d.parse().ok()).collect();
    }
    let search_override = !search.is_empty();
    let search_list = if search_override {
        search.iter().filter(|s| *s != ".").cloned().collect()
    } else {
        host_search
    };
    let options_override = !options.is_empty();
    let option_list = if options_override {
        options.to_vec()
    } else {
        host_options
    };
    let ndots_from = if options_override {
        option_list
            .iter()
            .any(|o| o.split(':').next() == Some("ndots"))
            .then_some("override")
    } else {
        ndots_from_host.then_some("host")
    };

    let host_network = network_mode == "host";
    let mut warnings = Vec::new();
    if !host_network && !ns_override {
        nameservers.retain(|a| !a.is_loopback() && a.is_ipv4());
        if nameservers.is_empty() {
            nameservers = DEFAULT_NAMESERVERS
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect();
            warnings.push("Used default nameservers.");
        }
    }

    let mut out = String::from(
        "# Generated by Docker Engine.\n\
         # This file can be edited; Docker Engine will not make further changes once it\n\
         # has been modified.\n\n",
    );
    for ns in &nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !search_list.is_empty() {
        out.push_str(&format!("search {}\n", search_list.join(" ")));
    }
    if !option_list.is_empty() {
        out.push_str(&format!("options {}\n", option_list.join(" ")));
    }
    for line in &other {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\n# Based on host file: '/etc/resolv.conf'");
    if !host_network {
        out.push_str(" (legacy)");
    }
    out.push('\n');
    for w in warnings {
        out.push_str(&format!("# {w}\n"));
    }
    if !invalid_ns.is_empty() {
        out.push_str(&format!(
            "# Invalid nameservers: [{}]\n",
            invalid_ns.join(" ")
        ));
    }
    let overrides: Vec<&str> = [
        (ns_override, "nameservers"),
        (search_override, "search"),
        (options_override, "options"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    out.push_str(&format!("# Overrides: [{}]\n", overrides.join(" ")));
    if let Some(from) = ndots_from {
        out.push_str(&format!("# Option ndots from: {from}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_hosts() {
        let h = hosts_file("abc", &[], &[], "none").unwrap();
        assert_eq!(
            h,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\n\
             ff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        );
    }

    #[test]
    fn extra_hosts_and_own_addresses() {
        let extra = vec![
            "db:10.0.0.5".to_string(),
            "v6:::1".into(),
            "br:fe80::1".into(),
        ];
        let h = hosts_file(
            "web.example.com",
            &["172.17.0.2".parse().unwrap()],
            &extra,
            "bridge",
        )
        .unwrap();
        assert!(h.contains("10.0.0.5\tdb\n"), "{h}");
        assert!(h.contains("::1\tv6\n"), "{h}");
        assert!(h.contains("fe80::1\tbr\n"), "{h}");
        assert!(h.ends_with("172.17.0.2\tweb.example.com web\n"), "{h}");
    }

    #[test]
    fn bad_extra_hosts() {
        let e = hosts_file("h", &[], &["a:1.2.3.4".into()], "container:abc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("conflicting options"), "{e}");
        for (entry, msg) in [
            ("nocolon", "bad format for add-host"),
            (":1.2.3.4", "bad format for add-host"),
            ("x:notanip", "invalid IP address in add-host"),
            ("gw:host-gateway", "host-gateway is not supported yet"),
            ("x=1.2.3.4", "bad format for add-host"),
        ] {
            let e = hosts_file("h", &[], &[entry.to_string()], "bridge")
                .unwrap_err()
                .to_string();
            assert!(e.contains(msg), "{entry}: {e}");
        }
    }

    #[test]
    fn resolv_conf_drops_loopback_and_falls_back() {
        let r = resolv_conf(
            "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n",
            &[],
            &[],
            &[],
            "bridge",
        );
        assert_eq!(
            r,
            "# Generated by Docker Engine.\n# This file can be edited; Docker Engine will not make further changes once it\n\
             # has been modified.\n\nnameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch lan\noptions edns0 trust-ad\n\n\
             # Based on host file: '/etc/resolv.conf' (legacy)\n# Used default nameservers.\n# Overrides: []\n"
        );
    }

    #[test]
    fn resolv_conf_keeps_real_servers_and_applies_overrides() {
        let host = "# comment\nnameserver 10.1.1.1\nnameserver fd00::1\nnameserver bogus\nsortlist 10.0.0.0\noptions ndots:2\n";
        let r = resolv_conf(host, &[], &[], &[], "none");
        assert!(
            r.contains("nameserver 10.1.1.1\n") && !r.contains("fd00::1") && !r.contains("8.8.8.8"),
            "{r}"
        );
        assert!(r.contains("sortlist 10.0.0.0\n"), "{r}");
        assert!(
            r.contains("# Invalid nameservers: [bogus]\n")
                && r.contains("# Option ndots from: host\n"),
            "{r}"
        );

        let r = resolv_conf(
            host,
            &["127.0.0.1".into()],
            &["a.example".into(), ".".into()],
            &["ndots:1".into()],
            "none",
        );
        assert!(
            r.contains("nameserver 127.0.0.1\n") && !r.contains("10.1.1.1"),
            "{r}"
        );
        assert!(
            r.contains("search a.example\n") && r.contains("options ndots:1\n"),
            "{r}"
        );
        assert!(
            r.contains(
                "# Overrides: [nameservers search options]\n# Option ndots from: override\n"
            ),
            "{r}"
        );
    }

    #[test]
    fn host_network_keeps_the_host_servers() {
        let r = resolv_conf("nameserver 127.0.0.53\n", &[], &[], &[], "host");
        assert!(
            r.contains("nameserver 127.0.0.53\n") && r.contains("'/etc/resolv.conf'\n"),
            "{r}"
        );
    }
}
