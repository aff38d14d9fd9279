//! `berth-runc spec`: writes the starter config.json that `runc spec` writes (same
//! content; our version and hostname).

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

/// The runtime-spec version this runtime implements and writes.
pub const OCI_VERSION: &str = "1.2.0";

const HOSTNAME: &str = "berth";

const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The spec `runc spec` (or `runc spec --rootless`) writes, with our version and hostname.
///
/// Like runc, the cgroup namespace is included only on a cgroup v2 (unified) host, and the
/// rootless variant maps the caller's effective uid/gid.
pub fn default_spec(rootless: bool) -> Spec {
    let host = Host {
        cgroup2: is_cgroup2(),
        euid: nix::unistd::geteuid().as_raw(),
        egid: nix::unistd::getegid().as_raw(),
    };
    build(rootless, &host)
}

/// Writes `default_spec(rootless)` to `dir/config.json`, refusing to replace an existing one.
pub fn write_spec(dir: &Path, rootless: bool) -> anyhow::Result<()> {
    let target = dir.join("config.json");
    if target.symlink_metadata().is_ok() {
        bail!("File config.json exists. Remove it first");
    }
    let json = to_json(&default_spec(rootless))?;
    // Write a temporary file, then link it into place: link(2) never replaces a file, so
    // a config.json created meanwhile is not clobbered, and none is ever half-written.
    let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(json.as_bytes()).and_then(|_| f.sync_all()))
        .with_context(|| format!("write {}", tmp.display()))
        .and_then(|_| match std::fs::hard_link(&tmp, &target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("File config.json exists. Remove it first")
            }
            Err(e) => Err(e).with_context(|| format!("create {}", target.display())),
        });
    let _ = std::fs::remove_file(&tmp);
    result
}

/// What the generated spec depends on from the host.
struct Host {
    cgroup2: bool,
    euid: u32,
    egid: u32,
}

fn build(rootless: bool, host: &Host) -> Spec {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut namespaces = vec!["pid", "network", "ipc", "uts", "mount"];
    if host.cgroup2 {
        namespaces.push("cgroup");
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    let mut linux = json!({
        "resources": {"devices": [{"allow": false, "access": "rwm"}]},
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
    });

    if rootless {
        // As runc's ToRootless: no network namespace (it could not be configured), a user
        // namespace mapping the caller to root, sysfs bound from the host (a fresh sysfs
        // needs a network namespace owned by the user namespace), no uid=/gid= mount
        // options, and no cgroup settings.
        namespaces.retain(|ns| *ns != "network");
        namespaces.push("user");
        for m in &mut mounts {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            } else if let Some(opts) = m.get_mut("options").and_then(Value::as_array_mut) {
                opts.retain(|o| {
                    o.as_str()
                        .is_some_and(|o| !o.starts_with("uid=") && !o.starts_with("gid="))
                });
            }
        }
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": host.euid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": host.egid, "size": 1}]);
        if let Some(l) = linux.as_object_mut() {
            l.remove("resources");
        }
    }
    linux["namespaces"] = namespaces.iter().map(|t| json!({"type": t})).collect();

    let spec = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": HOSTNAME,
        "mounts": mounts,
        "linux": linux,
    });
    // Static content: a failure here is a bug caught by the unit tests.
    serde_json::from_value(spec).expect("the default spec matches the spec types")
}

fn is_cgroup2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Pretty JSON with the capability sets sorted (the spec type keeps them in hash sets,
/// so their order would change from run to run).
pub fn to_json(spec: &Spec) -> anyhow::Result<String> {
    let mut v = serde_json::to_value(spec).context("serialize spec")?;
    if let Some(caps) = v.pointer_mut("/process/capabilities").and_then(Value::as_object_mut) {
        for set in caps.values_mut().filter_map(Value::as_array_mut) {
            set.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
    serde_json::to_string_pretty(&v).context("serialize spec")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn value(rootless: bool, cgroup2: bool) -> Value {
        let host = Host {
            cgroup2,
            euid: 1000,
            egid: 1001,
        };
        serde_json::from_str(&to_json(&build(rootless, &host)).unwrap()).unwrap()
    }

    fn namespaces(v: &Value) -> Vec<&str> {
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn default_spec_matches_runc() {
        let v = value(false, true);
        let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        assert_eq!(v["ociVersion"], "1.2.0");
        assert_eq!(
            v["process"],
            json!({
                "terminal": true,
                "user": {"uid": 0, "gid": 0},
                "args": ["sh"],
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
                "cwd": "/",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "noNewPrivileges": true
            })
        );
        assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
        assert_eq!(v["hostname"], "berth");
        assert_eq!(
            v["mounts"],
            json!([
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                 "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                 "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                 "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                 "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
            ])
        );
        assert_eq!(
            v["linux"]["resources"],
            json!({"devices": [{"allow": false, "access": "rwm"}]})
        );
        assert_eq!(
            namespaces(&v),
            ["pid", "network", "ipc", "uts", "mount", "cgroup"]
        );
        assert_eq!(v["linux"]["maskedPaths"], json!(MASKED_PATHS));
        assert_eq!(v["linux"]["readonlyPaths"], json!(READONLY_PATHS));
        assert!(v["linux"].get("uidMappings").is_none());
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 6, "{keys:?}");

        // cgroup v1 host: no cgroup namespace, as runc.
        assert_eq!(
            namespaces(&value(false, false)),
            ["pid", "network", "ipc", "uts", "mount"]
        );
    }

    #[test]
    fn rootless_differences() {
        let v = value(true, true);
        assert_eq!(
            namespaces(&v),
            ["pid", "ipc", "uts", "mount", "cgroup", "user"]
        );
        assert_eq!(
            v["linux"]["uidMappings"],
            json!([{"containerID": 0, "hostID": 1000, "size": 1}])
        );
        assert_eq!(
            v["linux"]["gidMappings"],
            json!([{"containerID": 0, "hostID": 1001, "size": 1}])
        );
        assert!(v["linux"].get("resources").is_none());
        let mounts = v["mounts"].as_array().unwrap();
        let sys = mounts.iter().find(|m| m["destination"] == "/sys").unwrap();
        assert_eq!(
            *sys,
            json!({"destination": "/sys", "type": "none", "source": "/sys",
                   "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
        );
        let pts = mounts
            .iter()
            .find(|m| m["destination"] == "/dev/pts")
            .unwrap();
        assert_eq!(
            pts["options"],
            json!([
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620"
            ])
        );
        assert_eq!(mounts.len(), 7);
        assert_eq!(
            namespaces(&value(true, false)),
            ["pid", "ipc", "uts", "mount", "user"]
        );
    }

    #[test]
    fn output_is_stable_and_parses_back() {
        let text = to_json(&default_spec(false)).unwrap();
        assert_eq!(text, to_json(&default_spec(false)).unwrap(), "output must not vary");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["process"]["capabilities"]["bounding"], json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]));
        let back: Spec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, default_spec(false));
    }

    #[test]
    fn write_spec_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        write_spec(dir.path(), false).unwrap();
        let first = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        let back: Spec = serde_json::from_str(&first).unwrap();
        assert_eq!(back.hostname().as_deref(), Some("berth"));
        let err = write_spec(dir.path(), true).unwrap_err().to_string();
        assert_eq!(err, "File config.json exists. Remove it first");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("config.json")).unwrap(),
            first
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary files left behind");
    }
}
