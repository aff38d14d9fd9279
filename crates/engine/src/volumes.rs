//! Volumes with the `local` driver: a directory `<data-root>/volumes/<name>/_data`, or,
//! with driver options, a tmpfs or a bind of a host device or directory mounted there
//! while a container uses it. `volume.json` beside `_data` is the record, written last
//! (temp + rename): a directory without it is a create that did not finish.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::Events;

const RECORD: &str = "volume.json";

/// A volume's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub created: i128,
    /// Made for one container (image `VOLUME`, `-v /path`): removed with it by `rm -v`.
    #[serde(default)]
    pub anonymous: bool,
}

/// The volume service.
pub struct Volumes {
    root: PathBuf,
    events: Events,
    /// Serializes creates and removals.
    lock: Mutex<()>,
    /// How many running containers have each volume mounted (for tmpfs/bind options).
    mounted: Mutex<HashMap<String, usize>>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl Volumes {
    pub fn open(data_root: &Path, events: Events) -> Result<Volumes> {
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root).map_err(Error::io("create", &root))?;
        for entry in std::fs::read_dir(&root).map_err(Error::io("read", &root))?.flatten() {
            let dir = entry.path();
            if !dir.join(RECORD).exists() {
                let _ = berth_snapshot::unmount(&dir.join("_data"));
                let _ = berth_snapshot::remove_tree(&dir);
            } else {
                // Mounts of driver options do not outlive a restart of berthd's users.
                let _ = berth_snapshot::unmount(&dir.join("_data"));
            }
        }
        Ok(Volumes { root, events, lock: Mutex::new(()), mounted: Mutex::new(HashMap::new()) })
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Where a volume's content is (its mount point).
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.dir(name).join("_data")
    }

    /// Creates a volume; an existing one of that name is returned as it is (docker's
    /// `volume create` is idempotent).
    pub fn create(&self, name: Option<&str>, driver: Option<&str>, options: BTreeMap<String, String>, labels: BTreeMap<String, String>, anonymous: bool) -> Result<Volume> {
        let driver = driver.filter(|d| !d.is_empty()).unwrap_or("local");
        if driver != "local" {
            return Err(Error::NotFound(format!("error looking up volume plugin {driver}: plugin \"{driver}\" not found")));
        }
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) if !valid_name(n) => {
                return Err(Error::InvalidArgument(format!(
                    "create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
                )))
            }
            Some(n) => n.to_string(),
            None => hex::encode(rand::random::<[u8; 32]>()),
        };
        for key in options.keys() {
            if !["type", "device", "o", "size"].contains(&key.as_str()) {
                return Err(Error::InvalidArgument(format!("create {name}: invalid option key: {key:?}")));
            }
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(existing) = self.get(&name) {
            return Ok(existing);
        }
        let volume = Volume { name: name.clone(), driver: driver.into(), labels, options, created: crate::containers::record::now_nanos(), anonymous };
        let dir = self.dir(&name);
        let data = dir.join("_data");
        std::fs::create_dir_all(&data).map_err(Error::io("create", &data))?;
        let tmp = dir.join(".volume.json.tmp");
        let bytes = serde_json::to_vec(&volume).map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(Error::io("write", &tmp))?;
        std::fs::rename(&tmp, dir.join(RECORD)).map_err(Error::io("rename", &tmp))?;
        self.events.publish("volume", "create", &name, BTreeMap::from([("driver".to_string(), driver.to_string())]));
        Ok(volume)
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        let path = self.dir(name).join(RECORD);
        if !valid_name(name) {
            return Err(Error::NotFound(format!("get {name}: no such volume")));
        }
        let bytes = std::fs::read(&path).map_err(|_| Error::NotFound(format!("get {name}: no such volume")))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Internal(format!("{}: {e}", path.display())))
    }

    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut out = vec![];
        for entry in std::fs::read_dir(&self.root).map_err(Error::io("read", &self.root))?.flatten() {
            if let Ok(v) = self.get(&entry.file_name().to_string_lossy()) {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a volume; `in_use` names the containers using it (docker refuses then).
    pub fn remove(&self, name: &str, in_use: &[String]) -> Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.get(name)?;
        if !in_use.is_empty() {
            return Err(Error::Conflict(format!("remove {name}: volume is in use - [{}]", in_use.join(", "))));
        }
        let dir = self.dir(name);
        let _ = berth_snapshot::unmount(&dir.join("_data"));
        let grave = self.root.join(format!(".removing-{name}"));
        // The record goes first (with the rename): a crash leaves a leftover, not a volume.
        std::fs::rename(&dir, &grave).map_err(Error::io("rename", &dir))?;
        let _ = std::fs::remove_file(grave.join(RECORD));
        berth_snapshot::remove_tree(&grave)?;
        self.events.publish("volume", "destroy", name, BTreeMap::new());
        Ok(())
    }

    /// Bytes used by a volume's content.
    pub fn size(&self, name: &str) -> u64 {
        berth_snapshot::disk_usage(&self.data_path(name)).unwrap_or(0)
    }

    /// Makes a volume's content available for a starting container: mounts the tmpfs or
    /// device its options name (once, for all its users). Returns the host path.
    pub fn acquire(&self, name: &str) -> Result<PathBuf> {
        let volume = self.get(name)?;
        let data = self.data_path(name);
        let mut mounted = self.mounted.lock().unwrap_or_else(|e| e.into_inner());
        let count = mounted.entry(name.to_string()).or_insert(0);
        if *count == 0 && !volume.options.is_empty() {
            mount_options(&volume, &data)?;
        }
        *count += 1;
        Ok(data)
    }

    /// The counterpart of `acquire`, when a container stops.
    pub fn release(&self, name: &str) {
        let mut mounted = self.mounted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = mounted.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                mounted.remove(name);
                if self.get(name).is_ok_and(|v| !v.options.is_empty()) {
                    let _ = berth_snapshot::unmount(&self.data_path(name));
                }
            }
        }
    }
}

/// The local driver's options: `type=tmpfs o=size=64m`, `type=none o=bind device=/path`,
/// or a block device with its filesystem type.
fn mount_options(volume: &Volume, target: &Path) -> Result<()> {
    use rustix::mount::{mount, mount_bind, MountFlags};
    let typ = volume.options.get("type").map(String::as_str).unwrap_or("");
    let device = volume.options.get("device").map(String::as_str).unwrap_or("");
    let o = volume.options.get("o").map(String::as_str).unwrap_or("");
    let err = |e: rustix::io::Errno| Error::Io { op: "mount volume", path: target.to_path_buf(), source: e.into() };
    let flags_and_data = |o: &str| -> (MountFlags, String) {
        let mut flags = MountFlags::empty();
        let mut data = vec![];
        for opt in o.split(',').filter(|s| !s.is_empty()) {
            match opt {
                "ro" => flags |= MountFlags::RDONLY,
                "nosuid" => flags |= MountFlags::NOSUID,
                "nodev" => flags |= MountFlags::NODEV,
                "noexec" => flags |= MountFlags::NOEXEC,
                "bind" | "rbind" | "rw" => {}
                other => data.push(other),
            }
        }
        (flags, data.join(","))
    };
    if o.split(',').any(|x| x == "bind" || x == "rbind") {
        if device.is_empty() {
            return Err(Error::InvalidArgument(format!("volume {}: a bind needs a device", volume.name)));
        }
        return mount_bind(device, target).map_err(err);
    }
    let fstype = if typ.is_empty() || typ == "none" { "tmpfs" } else { typ };
    let source = if device.is_empty() { fstype } else { device };
    let (flags, data) = flags_and_data(o);
    let data = std::ffi::CString::new(data).map_err(|_| Error::InvalidArgument(format!("volume {}: invalid mount options", volume.name)))?;
    mount(source, target, fstype, flags, Some(data.as_c_str())).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_idempotent_and_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let v = Volumes::open(dir.path(), Events::default()).unwrap();
        let a = v.create(Some("data"), None, BTreeMap::new(), BTreeMap::new(), false).unwrap();
        let b = v.create(Some("data"), None, BTreeMap::new(), BTreeMap::new(), false).unwrap();
        assert_eq!(a.created, b.created);
        assert!(v.create(Some("../x"), None, BTreeMap::new(), BTreeMap::new(), false).unwrap_err().to_string().contains("invalid characters"));
        assert!(v.create(Some("x1"), Some("nfs"), BTreeMap::new(), BTreeMap::new(), false).is_err());
        assert_eq!(v.list().unwrap().len(), 1);
        assert!(v.remove("data", &["c1".into()]).unwrap_err().to_string().contains("volume is in use"));
        v.remove("data", &[]).unwrap();
        assert!(v.get("data").is_err());
        // A create that died before its record is gone at the next open.
        std::fs::create_dir_all(dir.path().join("volumes/half/_data")).unwrap();
        Volumes::open(dir.path(), Events::default()).unwrap();
        assert!(!dir.path().join("volumes/half").exists());
    }
}
