//! An OCI bundle in a temporary directory: a rootfs copied from the cached template and a
//! config.json kept as plain JSON, so the harness never depends on the runtime's types.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::rootfs::{self, CopyMode};
use crate::runtime;

/// A container some runtime created from this bundle, to force-delete on drop.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    pub(crate) bin: PathBuf,
    pub(crate) global: Vec<String>,
    pub(crate) id: String,
}

/// A bundle directory (`config.json` + `rootfs/`) removed with everything in it on drop.
#[derive(Debug)]
pub struct Bundle {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    config: Value,
    containers: Mutex<Vec<Registered>>,
}

impl Bundle {
    /// A bundle with a private rootfs copy and [`Bundle::base_config`].
    pub fn new() -> Result<Bundle> {
        Bundle::with_config(Bundle::base_config(), CopyMode::Copy)
    }

    /// A bundle whose rootfs is hard-linked to the template; keep `root.readonly` true.
    pub fn new_hardlinked() -> Result<Bundle> {
        Bundle::with_config(Bundle::base_config(), CopyMode::Hardlink)
    }

    /// A bundle with the given config and rootfs copy mode.
    pub fn with_config(config: Value, mode: CopyMode) -> Result<Bundle> {
        let dir = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .map_err(|e| Error::io("create temp dir", std::env::temp_dir(), e))?;
        let path = dir.path().to_path_buf();
        // The runtime (and users inside the container) must be able to traverse it.
        set_mode(&path, 0o755)?;
        rootfs::copy_template(&path.join("rootfs"), mode)?;
        let bundle = Bundle {
            dir: Some(dir),
            path,
            config,
            containers: Mutex::new(Vec::new()),
        };
        bundle.save()?;
        Ok(bundle)
    }

    /// `runc spec` (runc 1.1.5) with `terminal: false` and args `["/bin/probe", "report"]`.
    pub fn base_config() -> Value {
        json!({
            "ociVersion": "1.0.2-dev",
            "process": {
                "terminal": false,
                "user": { "uid": 0, "gid": 0 },
                "args": ["/bin/probe", "report"],
                "env": [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"
                ],
                "cwd": "/",
                "capabilities": {
                    "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                    "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                    "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                    "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                },
                "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
                "noNewPrivileges": true
            },
            "root": { "path": "rootfs", "readonly": true },
            "hostname": "runc",
            "mounts": [
                { "destination": "/proc", "type": "proc", "source": "proc" },
                {
                    "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]
                },
                {
                    "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                    "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
                },
                {
                    "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                    "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
                },
                {
                    "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                    "options": ["nosuid", "noexec", "nodev"]
                },
                {
                    "destination": "/sys", "type": "sysfs", "source": "sysfs",
                    "options": ["nosuid", "noexec", "nodev", "ro"]
                },
                {
                    "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                    "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
                }
            ],
            "linux": {
                "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
                "namespaces": [
                    { "type": "pid" },
                    { "type": "network" },
                    { "type": "ipc" },
                    { "type": "uts" },
                    { "type": "mount" }
                ],
                "maskedPaths": [
                    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                    "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
                ],
                "readonlyPaths": [
                    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
                ]
            }
        })
    }

    /// The bundle directory (pass as `--bundle`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.path.join("rootfs")
    }

    /// The config as it will be written.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The config for editing; it is written to config.json before each runtime call.
    pub fn config_mut(&mut self) -> &mut Value {
        &mut self.config
    }

    /// Sets the value at a JSON pointer, creating missing objects on the way.
    pub fn set(&mut self, pointer: &str, value: Value) -> Result<&mut Self> {
        set_pointer(&mut self.config, pointer, value)?;
        Ok(self)
    }

    /// Sets `process.args`.
    pub fn set_args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Sets `process.args` to `/bin/probe` followed by `args`.
    pub fn set_probe_args(&mut self, args: &[&str]) -> &mut Self {
        let mut v = vec!["/bin/probe"];
        v.extend_from_slice(args);
        self.set_args(&v)
    }

    /// Appends `KEY=VALUE` to `process.env`.
    pub fn push_env(&mut self, kv: &str) -> &mut Self {
        push(&mut self.config["process"]["env"], json!(kv));
        self
    }

    /// Appends a mount entry.
    pub fn add_mount(&mut self, mount: Value) -> &mut Self {
        push(&mut self.config["mounts"], mount);
        self
    }

    /// Adds a namespace of `ns_type` (with `path` when given), replacing one of that type.
    pub fn set_namespace(&mut self, ns_type: &str, path: Option<&str>) -> &mut Self {
        self.remove_namespace(ns_type);
        let mut ns = json!({ "type": ns_type });
        if let Some(p) = path {
            ns["path"] = json!(p);
        }
        push(&mut self.config["linux"]["namespaces"], ns);
        self
    }

    /// Removes the namespace of `ns_type` from `linux.namespaces`.
    pub fn remove_namespace(&mut self, ns_type: &str) -> &mut Self {
        if let Some(list) = self.config["linux"]["namespaces"].as_array_mut() {
            list.retain(|n| n["type"] != ns_type);
        }
        self
    }

    /// Writes config.json (temp name, then rename, so a runtime never reads half a file).
    pub fn save(&self) -> Result<()> {
        let path = self.path.join("config.json");
        let tmp = self.path.join(".config.json.tmp");
        let text = serde_json::to_vec_pretty(&self.config).map_err(|e| Error::Json {
            what: "serialize config".into(),
            text: String::new(),
            source: e,
        })?;
        fs::write(&tmp, text).map_err(|e| Error::io("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
    }

    /// Writes a file inside the rootfs (path relative to the rootfs), creating parents.
    /// A symlink at that path is replaced rather than followed.
    pub fn write_rootfs_file(&self, rel: &str, data: &[u8]) -> Result<PathBuf> {
        let p = self.rootfs().join(rel.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(&p).map_err(|e| Error::io("remove", &p, e))?;
        }
        fs::write(&p, data).map_err(|e| Error::io("write", &p, e))?;
        Ok(p)
    }

    pub(crate) fn register(&self, c: Registered) {
        if let Ok(mut list) = self.containers.lock() {
            if !list.iter().any(|r| r.id == c.id && r.bin == c.bin) {
                list.push(c);
            }
        }
    }

    /// Keeps the directory instead of removing it on drop (for debugging a failure).
    pub fn keep(mut self) -> PathBuf {
        if let Some(d) = self.dir.take() {
            let _ = d.keep();
        }
        self.path.clone()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let containers = self
            .containers
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        for c in containers {
            runtime::force_delete(&c.bin, &c.global, &c.id);
        }
        if self.dir.is_some() {
            unmount_under(&self.path);
        }
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(|e| Error::io("chmod", p, e))
}

fn push(slot: &mut Value, v: Value) {
    match slot.as_array_mut() {
        Some(a) => a.push(v),
        None => *slot = json!([v]),
    }
}

/// Sets `value` at `pointer` (RFC 6901), creating objects for missing keys; `-` appends
/// to an array.
pub fn set_pointer(root: &mut Value, pointer: &str, value: Value) -> Result<()> {
    let err = |reason: &str| Error::Patch {
        pointer: pointer.to_string(),
        reason: reason.to_string(),
    };
    if pointer.is_empty() {
        *root = value;
        return Ok(());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(err("must start with '/'"));
    };
    let tokens: Vec<String> = rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        return Err(err("empty"));
    };
    let mut cur = root;
    for t in parents {
        if cur.is_null() {
            *cur = json!({});
        }
        cur = match cur {
            Value::Object(m) => m.entry(t.clone()).or_insert(Value::Null),
            Value::Array(a) => {
                let i: usize = t.parse().map_err(|_| err("bad array index"))?;
                a.get_mut(i)
                    .ok_or_else(|| err("array index out of range"))?
            }
            _ => return Err(err("path goes through a scalar")),
        };
    }
    if cur.is_null() {
        *cur = json!({});
    }
    match cur {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) if last == "-" => a.push(value),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| err("bad array index"))?;
            let slot = a
                .get_mut(i)
                .ok_or_else(|| err("array index out of range"))?;
            *slot = value;
        }
        _ => return Err(err("path ends in a scalar")),
    }
    Ok(())
}

/// Mount points at or below `dir` in this process's mount table, deepest first.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Lazily unmounts whatever a failed runtime left mounted under `dir`.
pub fn unmount_under(dir: &Path) {
    // Repeat: stacked mounts on one point need one umount each.
    for _ in 0..8 {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let points = mounts_under(&info, dir);
        if points.is_empty() {
            return;
        }
        for p in points {
            if let Ok(c) = CString::new(p.as_os_str().as_bytes()) {
                // SAFETY: c is a valid path; MNT_DETACH never blocks.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_pointer_creates_objects_and_appends() {
        let mut v = json!({ "linux": { "namespaces": [] } });
        set_pointer(&mut v, "/linux/resources/memory/limit", json!(1024)).unwrap();
        set_pointer(&mut v, "/linux/namespaces/-", json!({ "type": "pid" })).unwrap();
        set_pointer(&mut v, "/linux/namespaces/0/path", json!("/proc/1/ns/pid")).unwrap();
        set_pointer(&mut v, "/a~1b", json!(true)).unwrap();
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 1024);
        assert_eq!(v["linux"]["namespaces"][0]["path"], "/proc/1/ns/pid");
        assert_eq!(v["a/b"], true);
    }

    #[test]
    fn set_pointer_rejects_bad_paths() {
        let mut v = json!({ "x": 1, "a": [] });
        assert!(set_pointer(&mut v, "x", json!(1)).is_err());
        assert!(set_pointer(&mut v, "/x/y", json!(1)).is_err());
        assert!(set_pointer(&mut v, "/a/3", json!(1)).is_err());
        assert!(set_pointer(&mut v, "/a/q", json!(1)).is_err());
    }

    #[test]
    fn mounts_under_orders_deepest_first() {
        let info = "1 0 0:1 / / rw - ext4 /dev/vda rw\n\
                    2 1 0:2 / /tmp/b/rootfs rw - bind x rw\n\
                    3 2 0:3 / /tmp/b/rootfs/proc rw - proc proc rw\n\
                    4 1 0:4 / /tmp/bb rw - tmpfs tmpfs rw\n\
                    5 1 0:5 / /tmp/b/with\\040space rw - tmpfs tmpfs rw\n";
        let got = mounts_under(info, Path::new("/tmp/b"));
        assert_eq!(
            got,
            [
                PathBuf::from("/tmp/b/rootfs/proc"),
                PathBuf::from("/tmp/b/rootfs"),
                PathBuf::from("/tmp/b/with space"),
            ]
        );
    }

    #[test]
    fn base_config_matches_runc_spec_shape() {
        let c = Bundle::base_config();
        assert_eq!(c["process"]["terminal"], false);
        assert_eq!(c["process"]["args"], json!(["/bin/probe", "report"]));
        assert_eq!(c["root"]["readonly"], true);
        assert_eq!(c["linux"]["namespaces"].as_array().map(Vec::len), Some(5));
        assert_eq!(c["mounts"].as_array().map(Vec::len), Some(7));
    }
}
