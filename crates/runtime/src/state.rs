//! A container's state on disk under the runtime root: `<root>/<id>/state.json` (written
//! atomically), `exec.fifo` while created, and a lock file that serialises invocations.

use crate::error::{Error, Result};
use nix::fcntl::{Flock, FlockArg};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// Written before the cgroup is made, so a create killed half-way can still be undone.
const CGROUP_FILE: &str = "cgroup.json";

/// The status of a container, as the OCI spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What we persist about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/<pid>/stat), to tell a recycled pid apart.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    pub cgroup: Option<berth_cgroups::Cgroup>,
    pub config: Spec,
}

/// The OCI state document (`state` command output, hooks' stdin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
}

/// The directory of one container under the runtime root.
pub struct Dir {
    pub path: PathBuf,
    pub id: String,
}

/// Container ids: what runc accepts, so ids never escape the root dir.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!("invalid container id {id:?}: use letters, digits and _ + - .")))
    }
}

impl Dir {
    /// The directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<Dir> {
        let dir = Dir::at(root, id)?;
        if !dir.path.join(STATE_FILE).exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        Ok(dir)
    }

    /// Where the container `id` lives, whether or not anything is there.
    pub fn at(root: &Path, id: &str) -> Result<Dir> {
        validate_id(id)?;
        Ok(Dir { path: root.join(id), id: id.to_string() })
    }

    /// Creates the directory of a new container; fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<Dir> {
        validate_id(id)?;
        std::fs::create_dir_all(root).map_err(|e| Error::io("create", root, e))?;
        let path = root.join(id);
        match std::fs::create_dir(&path) {
            Ok(()) => Ok(Dir { path, id: id.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists(id.to_string())),
            Err(e) => Err(Error::io("create", &path, e)),
        }
    }

    /// Takes the container's lock, held until the guard drops. It is a flock on the
    /// directory itself: a lock file inside would be created again by a waiter while the
    /// holder removes the directory (a racing `delete` then fails with "not empty").
    pub fn lock(&self) -> Result<Flock<std::fs::File>> {
        let f = std::fs::File::open(&self.path).map_err(|e| Error::io("open", &self.path, e))?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| Error::path("lock", &self.path, e))
    }

    pub fn load(&self) -> Result<Record> {
        let p = self.path.join(STATE_FILE);
        let data = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(self.id.clone())
            } else {
                Error::io("read", &p, e)
            }
        })?;
        serde_json::from_slice(&data).map_err(|e| Error::Other(format!("{}: corrupt state: {e}", p.display())))
    }

    pub fn save(&self, rec: &Record) -> Result<()> {
        let data = serde_json::to_vec(rec).map_err(|e| Error::Other(format!("encode state: {e}")))?;
        crate::fsutil::write_atomic(&self.path.join(STATE_FILE), &data)
    }

    /// Records the cgroup a create is about to make (see `CGROUP_FILE`).
    pub fn save_cgroup(&self, cg: &berth_cgroups::Cgroup) -> Result<()> {
        let data = serde_json::to_vec(cg).map_err(|e| Error::Other(format!("encode cgroup: {e}")))?;
        crate::fsutil::write_atomic(&self.path.join(CGROUP_FILE), &data)
    }

    /// The cgroup of a create that never finished, if it got that far.
    pub fn unfinished_cgroup(&self) -> Option<berth_cgroups::Cgroup> {
        let data = std::fs::read(self.path.join(CGROUP_FILE)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &self.path, e)),
        }
    }
}

/// Start time of a process (clock ticks since boot), or None if it is gone or a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

impl Record {
    /// Is the container's init process still the one we started?
    pub fn init_alive(&self) -> bool {
        self.pid > 0 && process_start_time(self.pid) == Some(self.pid_start)
    }

    pub fn status(&self, dir: &Dir) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if dir.fifo().exists() {
            return Status::Created;
        }
        if let Some(cg) = &self.cgroup {
            if cg.is_frozen().unwrap_or(false) {
                return Status::Paused;
            }
        }
        Status::Running
    }

    pub fn oci_state(&self, status: Status) -> OciState {
        OciState {
            oci_version: crate::spec::OCI_VERSION.to_string(),
            id: self.id.clone(),
            pid: if status == Status::Stopped { 0 } else { self.pid },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.config.annotations().clone().unwrap_or_default(),
        }
    }
}

/// Ids of all containers under `root`.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io("read dir", root, e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Now, as RFC 3339 with nanoseconds in UTC, as runc prints `created`.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        validate_id("abc-1_2.x+y").unwrap();
        for bad in ["", ".", "..", "a/b", "../x", "a b", "ä"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
        assert!(now_rfc3339().ends_with('Z'));
    }

    #[test]
    fn own_start_time() {
        assert!(process_start_time(std::process::id() as i32).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }

    #[test]
    fn create_twice_fails() {
        let dir = tempfile::tempdir().unwrap();
        Dir::create(dir.path(), "c1").unwrap();
        assert!(matches!(Dir::create(dir.path(), "c1"), Err(Error::AlreadyExists(_))));
        assert!(matches!(Dir::open(dir.path(), "nope"), Err(Error::NotFound(_))));
    }
}
