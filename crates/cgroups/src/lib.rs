//! berth-cgroups: cgroup v1, v2 and hybrid managers for the OCI runtime.
//!
//! [`Cgroup::resolve`] turns an OCI `linux.cgroupsPath` into one directory per mounted
//! hierarchy without touching anything; the other methods create, configure, populate,
//! freeze, measure and remove those directories. On hybrid hosts each controller is
//! driven on whichever hierarchy carries it. The start path does the least I/O it can:
//! mountinfo is read once per process and unset resources cause no writes.

mod bpf;
mod cgroup;
mod devices;
mod error;
mod freezer;
mod fs;
mod mountinfo;
mod resources;
pub mod stats;

use std::path::Path;
use std::sync::OnceLock;

pub use cgroup::Cgroup;
pub use error::{Error, ErrorKind, Result};
pub use mountinfo::{hierarchies, Hierarchy};
pub use resources::{blkio_weight_to_io_weight, shares_to_weight};
pub use stats::Stats;

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    /// Only v1 hierarchies.
    V1,
    /// Only the v2 unified hierarchy, at /sys/fs/cgroup.
    V2,
    /// v1 hierarchies plus a v2 hierarchy at /sys/fs/cgroup/unified.
    Hybrid,
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const UNIFIED_HYBRID: &str = "/sys/fs/cgroup/unified";

/// Detects the layout with statfs(2) on /sys/fs/cgroup (and /sys/fs/cgroup/unified).
/// The answer is cached for the life of the process.
pub fn layout() -> Result<Layout> {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    if let Some(l) = LAYOUT.get() {
        return Ok(*l);
    }
    let l = detect_layout()?;
    Ok(*LAYOUT.get_or_init(|| l))
}

fn detect_layout() -> Result<Layout> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, SYSFS_MAGIC};
    let root = Path::new(CGROUP_ROOT);
    let st = statfs(root).map_err(|e| Error::Statfs {
        path: root.to_path_buf(),
        err: std::io::Error::from(e),
    })?;
    if st.filesystem_type() == CGROUP2_SUPER_MAGIC {
        return Ok(Layout::V2);
    }
    if st.filesystem_type() == SYSFS_MAGIC {
        // Nothing mounted over the bare sysfs directory.
        return Err(Error::NotMounted {
            path: root.to_path_buf(),
        });
    }
    match statfs(UNIFIED_HYBRID) {
        Ok(u) if u.filesystem_type() == CGROUP2_SUPER_MAGIC => Ok(Layout::Hybrid),
        _ => Ok(Layout::V1),
    }
}
