//! Loading and validating a bundle's config.json: every error names the field at fault.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The newest runtime spec version we implement.
pub const OCI_VERSION: &str = "1.2.0";

/// A validated spec plus the absolute rootfs path it points at.
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

/// Reads `<bundle>/config.json`, parses it (errors carry the JSON path of the bad field),
/// and validates it for creating a container.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle)
        .map_err(|e| Error::InvalidSpec(format!("bundle {}: {e}", bundle.display())))?;
    let config = dir.join("config.json");
    let data = std::fs::read(&config).map_err(|e| Error::io("read", &config, e))?;
    let spec = parse(&data)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("config.json: root: is required".into()))?;
    if root.path().as_os_str().is_empty() {
        return Err(Error::InvalidSpec("config.json: root.path: must not be empty".into()));
    }
    let rootfs = dir.join(root.path());
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::InvalidSpec(format!(
                "config.json: root.path: {} is not a directory",
                rootfs.display()
            )))
        }
        Err(_) => {
            return Err(Error::InvalidSpec(format!(
                "config.json: root.path: rootfs {} does not exist",
                rootfs.display()
            )))
        }
    }
    let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| Error::io("resolve", &rootfs, e))?;
    validate(&spec)?;
    Ok(Bundle { dir, rootfs, spec })
}

/// Parses config.json text; a type error names the JSON path, e.g.
/// `linux.namespaces[2].type: unknown variant "foo"`.
pub fn parse(data: &[u8]) -> Result<Spec> {
    parse_json(data, "config.json")
}

/// Parses JSON into `T`; errors start with `what` and name the bad field's path.
pub fn parse_json<T: serde::de::DeserializeOwned>(data: &[u8], what: &str) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            Error::InvalidSpec(format!("{what}: {inner}"))
        } else {
            Error::InvalidSpec(format!("{what}: {path}: {inner}"))
        }
    })
}

fn invalid(field: impl std::fmt::Display, msg: impl std::fmt::Display) -> Error {
    Error::InvalidSpec(format!("config.json: {field}: {msg}"))
}

/// Checks what serde cannot: required parts, consistency between fields, paths.
pub fn validate(spec: &Spec) -> Result<()> {
    if !spec.version().starts_with("1.") {
        return Err(invalid("ociVersion", format!("unsupported version {:?}", spec.version())));
    }
    let process = spec.process().as_ref().ok_or_else(|| invalid("process", "is required"))?;
    validate_process(process, "process")?;
    let linux = spec.linux().as_ref().ok_or_else(|| invalid("linux", "is required"))?;

    let mut seen = HashSet::new();
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    for (i, ns) in namespaces.iter().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                format!("linux.namespaces[{i}].type"),
                format!("duplicate namespace {}", crate::namespaces::name(ns.typ())),
            ));
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                return Err(invalid(format!("linux.namespaces[{i}].path"), "must be absolute"));
            }
            if std::fs::symlink_metadata(path).is_err() {
                return Err(invalid(
                    format!("linux.namespaces[{i}].path"),
                    format!("{} does not exist", path.display()),
                ));
            }
        }
    }
    let new_ns = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t && n.path().is_none());
    let has_ns = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    if !has_ns(LinuxNamespaceType::Mount) {
        return Err(invalid("linux.namespaces", "a mount namespace is required"));
    }
    let mappings = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if new_ns(LinuxNamespaceType::User) {
        if linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(invalid("linux.uidMappings", "a new user namespace needs uid mappings"));
        }
        if linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(invalid("linux.gidMappings", "a new user namespace needs gid mappings"));
        }
    } else if mappings && !has_ns(LinuxNamespaceType::User) {
        return Err(invalid("linux.uidMappings", "mappings given without a user namespace"));
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !new_ns(LinuxNamespaceType::Uts) {
        return Err(invalid("hostname", "setting the hostname needs a new uts namespace"));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !new_ns(LinuxNamespaceType::Uts) {
        return Err(invalid("domainname", "setting the domainname needs a new uts namespace"));
    }
    for key in linux.sysctl().as_ref().map(|s| s.keys().collect::<Vec<_>>()).unwrap_or_default() {
        validate_sysctl(key, &has_ns)?;
    }
    for (i, m) in spec.mounts().as_deref().unwrap_or_default().iter().enumerate() {
        if !m.destination().is_absolute() {
            return Err(invalid(format!("mounts[{i}].destination"), "must be an absolute path"));
        }
        if m.destination().components().any(|c| c == std::path::Component::ParentDir) {
            return Err(invalid(format!("mounts[{i}].destination"), "must not contain \"..\""));
        }
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(invalid(format!("mounts[{i}]"), "idmapped mounts (uidMappings/gidMappings) are not supported"));
        }
        for opt in m.options().as_deref().unwrap_or_default() {
            crate::mounts::check_option(opt)
                .map_err(|e| invalid(format!("mounts[{i}].options"), e))?;
        }
    }
    for (field, paths) in [("linux.maskedPaths", linux.masked_paths()), ("linux.readonlyPaths", linux.readonly_paths())] {
        for (i, p) in paths.as_deref().unwrap_or_default().iter().enumerate() {
            if !p.starts_with('/') {
                return Err(invalid(format!("{field}[{i}]"), format!("{p:?} must be an absolute path")));
            }
        }
    }
    for (i, d) in linux.devices().as_deref().unwrap_or_default().iter().enumerate() {
        if !d.path().is_absolute() {
            return Err(invalid(format!("linux.devices[{i}].path"), "must be an absolute path"));
        }
    }
    if let Some(p) = linux.personality() {
        use oci_spec::runtime::LinuxPersonalityDomain as D;
        if !matches!(p.domain(), D::PerLinux | D::PerLinux32) {
            return Err(invalid("linux.personality.domain", "only LINUX and LINUX32 are supported"));
        }
        if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(invalid("linux.personality.flags", "flags are not supported"));
        }
    }
    if let Some(label) = linux.mount_label().as_deref().filter(|l| !l.is_empty()) {
        return Err(if crate::process::selinux_enabled() {
            invalid("linux.mountLabel", "mount labels are not applied yet")
        } else {
            invalid("linux.mountLabel", format!("{label:?} requested but SELinux is not enabled on this host"))
        });
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(invalid("linux.netDevices", "moving network devices into the container is not supported yet"));
    }
    if linux.memory_policy().is_some() {
        return Err(invalid("linux.memoryPolicy", "memory policies are not supported yet"));
    }
    if linux.intel_rdt().is_some() {
        return Err(invalid("linux.intelRdt", "intel RDT is not supported"));
    }
    Ok(())
}

/// Checks a process section (also used for `exec -p process.json`).
pub fn validate_process(process: &oci_spec::runtime::Process, field: &str) -> Result<()> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid(format!("{field}.args"), "must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(format!("{field}.cwd"), "must be an absolute path"));
    }
    for (i, r) in process.rlimits().as_deref().unwrap_or_default().iter().enumerate() {
        if r.soft() > r.hard() {
            return Err(invalid(format!("{field}.rlimits[{i}]"), "soft limit exceeds hard limit"));
        }
    }
    for (i, e) in process.env().as_deref().unwrap_or_default().iter().enumerate() {
        if !e.contains('=') {
            return Err(invalid(format!("{field}.env[{i}]"), format!("{e:?} is not KEY=VALUE")));
        }
    }
    Ok(())
}

/// Only namespaced sysctls may be set, and only when their namespace is the container's own.
fn validate_sysctl(key: &str, has_ns: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<()> {
    const IPC: &[&str] = &[
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
    ];
    let field = format!("linux.sysctl[{key:?}]");
    if key.contains("..") || key.contains('/') && key.contains('.') {
        return Err(invalid(field, "invalid sysctl name"));
    }
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        if !has_ns(LinuxNamespaceType::Ipc) {
            return Err(invalid(field, "needs an ipc namespace"));
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if !has_ns(LinuxNamespaceType::Network) {
            return Err(invalid(field, "needs a network namespace"));
        }
        return Ok(());
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        if !has_ns(LinuxNamespaceType::Uts) {
            return Err(invalid(field, "needs a uts namespace"));
        }
        return Ok(());
    }
    Err(invalid(field, "is not namespaced and cannot be set for a container"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.2.0",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "hostname": "h",
            "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "pid"}]}
        })
    }

    fn check(v: serde_json::Value) -> Result<()> {
        let spec = parse(&serde_json::to_vec(&v).unwrap())?;
        validate(&spec)
    }

    #[test]
    fn valid_base() {
        check(base()).unwrap();
    }

    #[test]
    fn unknown_namespace_names_field() {
        let mut v = base();
        v["linux"]["namespaces"][1]["type"] = "bogus".into();
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("linux.namespaces[1].type"), "{e}");
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn malformed_json() {
        let e = parse(b"{\"ociVersion\": ").unwrap_err().to_string();
        assert!(e.starts_with("config.json:"), "{e}");
    }

    #[test]
    fn duplicate_namespace() {
        let mut v = base();
        v["linux"]["namespaces"][2]["type"] = "uts".into();
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("duplicate namespace uts"), "{e}");
    }

    #[test]
    fn empty_args() {
        let mut v = base();
        v["process"]["args"] = serde_json::json!([]);
        assert!(check(v).unwrap_err().to_string().contains("process.args"));
    }

    #[test]
    fn hostname_needs_uts() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}]);
        assert!(check(v).unwrap_err().to_string().contains("hostname"));
    }

    #[test]
    fn user_ns_needs_mappings() {
        let mut v = base();
        v["linux"]["namespaces"].as_array_mut().unwrap().push(serde_json::json!({"type": "user"}));
        assert!(check(v).unwrap_err().to_string().contains("uidMappings"));
    }

    #[test]
    fn sysctls() {
        let mut v = base();
        v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
        assert!(check(v.clone()).unwrap_err().to_string().contains("network namespace"));
        v["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "1"});
        assert!(check(v.clone()).unwrap_err().to_string().contains("not namespaced"));
        v["linux"]["sysctl"] = serde_json::json!({"kernel.domainname": "x"});
        check(v).unwrap();
    }

    #[test]
    fn relative_mount_destination() {
        let mut v = base();
        v["mounts"] = serde_json::json!([{"destination": "proc", "type": "proc", "source": "proc"}]);
        assert!(check(v).unwrap_err().to_string().contains("mounts[0].destination"));
    }

    #[test]
    fn unsupported_parts_are_named() {
        let mut v = base();
        v["mounts"] = serde_json::json!([{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["rbind"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}]);
        assert!(check(v.clone()).unwrap_err().to_string().contains("idmapped"));
        v["mounts"] = serde_json::json!([]);
        v["linux"]["netDevices"] = serde_json::json!({"eth1": {}});
        assert!(check(v).unwrap_err().to_string().contains("linux.netDevices"));
    }

    #[test]
    fn unknown_mount_option() {
        let mut v = base();
        v["mounts"] = serde_json::json!([{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["rbind", "frobnicate"]}]);
        // Unknown options become filesystem data, so only malformed ones fail.
        check(v.clone()).unwrap();
        v["mounts"][0]["options"] = serde_json::json!(["rbind", ""]);
        assert!(check(v).unwrap_err().to_string().contains("mounts[0].options"));
    }
}
