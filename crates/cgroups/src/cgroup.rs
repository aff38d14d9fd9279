//! The container's cgroup: resolution of its directories, creation, resource
//! application, membership, statistics and removal.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::devices::{Emulator, Rule};
use crate::error::{Error, Result};
use crate::fs::{self, apply_writes, Write};
use crate::mountinfo::{self, Hierarchy};
use crate::{freezer, layout, resources, stats, Layout, Stats, CGROUP_ROOT, UNIFIED_HYBRID};

/// The resolved directories of one container's cgroup, one per hierarchy.
/// Serializable so a later process can reload it from the container's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    /// v1 hierarchies (controllers as mounted) and the container's directory in each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    v1: Vec<V1Dir>,
    /// The container's directory in the v2 hierarchy (pure v2, or hybrid's unified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v2: Option<V2Dir>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct V1Dir {
    controllers: Vec<String>,
    path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct V2Dir {
    path: PathBuf,
    /// The hierarchy's mount point: where the list of available controllers is read.
    mount: PathBuf,
}

/// Where a controller lives for this cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// Turns `linux.cgroupsPath` (or the default) into a relative path below a hierarchy
/// base, rejecting ".." and paths that name the base itself.
fn normalize(cgroups_path: &Path) -> Result<PathBuf> {
    let bad = |reason| Error::InvalidPath {
        path: cgroups_path.to_path_buf(),
        reason,
    };
    let mut out = PathBuf::new();
    for c in cgroups_path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(s) => out.push(s),
            Component::ParentDir => return Err(bad("\"..\" components are not allowed")),
            Component::Prefix(_) => return Err(bad("unexpected path prefix")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(bad(if cgroups_path.is_absolute() {
            "it names the hierarchy root"
        } else {
            "it names the caller's own cgroup"
        }));
    }
    Ok(out)
}

fn check_container_id(id: &str) -> Result<()> {
    let bad = |reason| Error::InvalidId {
        id: id.to_string(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("empty"));
    }
    if id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(bad("must be a single path component"));
    }
    Ok(())
}

/// Whether a v1 hierarchy belongs in a container's cgroup: any real controller, or the
/// systemd named hierarchy (other named hierarchies are someone else's).
fn wanted_v1(h: &Hierarchy) -> bool {
    h.version == 1
        && h.controllers
            .iter()
            .any(|c| !c.starts_with("name=") || c == "name=systemd")
}

/// The directory of hierarchy `h` that relative cgroup paths start from.
fn base_dir(h: &Hierarchy, own: Option<&[mountinfo::OwnCgroup]>) -> Result<PathBuf> {
    let Some(own) = own else {
        return Ok(h.mount_point.clone());
    };
    let line = mountinfo::own_for(own, h).ok_or_else(|| Error::Parse {
        path: "/proc/self/cgroup".into(),
        reason: format!(
            "no entry for the hierarchy mounted at {}",
            h.mount_point.display()
        ),
    })?;
    // The mount shows the hierarchy from `root` down; our path is relative to the
    // hierarchy (namespace) root.
    let rel = line.path.strip_prefix(&h.root).map_err(|_| Error::Parse {
        path: "/proc/self/cgroup".into(),
        reason: format!(
            "own cgroup {} is outside the mount at {} (root {})",
            line.path.display(),
            h.mount_point.display(),
            h.root.display()
        ),
    })?;
    Ok(h.mount_point.join(rel))
}

impl Cgroup {
    /// Resolves where the container's cgroup lives, touching nothing.
    ///
    /// `cgroups_path` is the OCI `linux.cgroupsPath`: absolute paths are placed under
    /// each hierarchy's mount point, relative ones under the calling process's own cgroup
    /// in each hierarchy, and `None` means `/<container_id>`.
    pub fn resolve(cgroups_path: Option<&Path>, container_id: &str) -> Result<Cgroup> {
        let (rel, absolute) = match cgroups_path {
            Some(p) => (normalize(p)?, p.is_absolute()),
            None => {
                check_container_id(container_id)?;
                (PathBuf::from(container_id), true)
            }
        };
        let layout = layout()?;
        let hs = mountinfo::cached()?;
        let own = if absolute {
            None
        } else {
            Some(mountinfo::own_cgroups()?)
        };
        let own = own.as_deref();

        let mut v1 = Vec::new();
        if layout != Layout::V2 {
            for h in hs.iter().filter(|h| wanted_v1(h)) {
                v1.push(V1Dir {
                    controllers: h.controllers.clone(),
                    path: base_dir(h, own)?.join(&rel),
                });
            }
        }
        let v2 = match layout {
            Layout::V1 => None,
            Layout::V2 | Layout::Hybrid => {
                let mount = Path::new(if layout == Layout::V2 {
                    CGROUP_ROOT
                } else {
                    UNIFIED_HYBRID
                });
                let h = hs
                    .iter()
                    .find(|h| h.version == 2 && h.mount_point == mount)
                    .cloned()
                    .unwrap_or_else(|| Hierarchy {
                        mount_point: mount.to_path_buf(),
                        controllers: Vec::new(),
                        version: 2,
                        root: PathBuf::from("/"),
                    });
                Some(V2Dir {
                    path: base_dir(&h, own)?.join(&rel),
                    mount: mount.to_path_buf(),
                })
            }
        };
        if v1.is_empty() && v2.is_none() {
            return Err(Error::NotMounted {
                path: PathBuf::from(CGROUP_ROOT),
            });
        }
        Ok(Cgroup { v1, v2 })
    }

    /// The unified (v2) directory, if there is one.
    pub fn v2_path(&self) -> Option<&Path> {
        self.v2.as_ref().map(|d| d.path.as_path())
    }

    /// The v1 directory of the hierarchy carrying `controller` (e.g. "memory",
    /// "name=systemd"), if mounted.
    pub fn v1_path(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.path.as_path())
    }

    /// Every directory of this cgroup: the v1 ones, then the v2 one.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.v1
            .iter()
            .map(|d| d.path.as_path())
            .chain(self.v2.iter().map(|d| d.path.as_path()))
    }

    /// The directory that drives `controller` (v1 name): its v1 hierarchy if mounted
    /// there, else the v2 directory.
    fn target(&self, controller: &str) -> Option<Target<'_>> {
        if let Some(p) = self.v1_path(controller) {
            return Some(Target::V1(p));
        }
        self.v2.as_ref().map(|d| Target::V2(&d.path))
    }

    fn require(&self, controller: &str, what: &str) -> Result<Target<'_>> {
        self.target(controller)
            .ok_or_else(|| Error::ControllerMissing {
                controller: controller.to_string(),
                what: what.to_string(),
            })
    }

    /// Creates the directories (like mkdir -p; existing ones are fine). New v1 cpuset
    /// directories get their parent's cpus and mems, and on v2 the parent's
    /// cgroup.subtree_control is made to delegate every available controller.
    pub fn create(&self) -> Result<()> {
        for d in &self.v1 {
            let created = fs::mkdir_p(&d.path)?;
            if d.controllers.iter().any(|c| c == "cpuset") {
                ensure_cpuset(&d.path, &created)?;
            }
        }
        if let Some(d) = &self.v2 {
            fs::mkdir_p(&d.path)?;
            enable_controllers(&d.path, &d.mount)?;
        }
        Ok(())
    }

    /// Applies resource limits; unset fields cause no writes. Used at create and by update.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(c) = r.cpu() {
            let w = resources::cpuset(c);
            if !w.is_empty() {
                match self.require("cpuset", "cpu cpus/mems")? {
                    Target::V1(p) | Target::V2(p) => apply_writes(p, &w)?,
                }
            }
        }
        if let Some(list) = r.devices() {
            self.apply_devices(list)?;
        }
        if let Some(m) = r.memory() {
            if resources::memory_requested(m) {
                match self.require("memory", "memory limits")? {
                    Target::V1(p) => {
                        let limit_file = p.join("memory.limit_in_bytes");
                        let w = resources::memory_v1(m, || {
                            let s = fs::read_path(&limit_file)?;
                            fs::parse_u64(&limit_file, &s)
                        })?;
                        apply_writes(p, &w)?;
                    }
                    Target::V2(p) => apply_writes(p, &resources::memory_v2(m)?)?,
                }
            }
        }
        if let Some(c) = r.cpu() {
            if resources::cpu_requested(c) {
                match self.require("cpu", "cpu limits")? {
                    Target::V1(p) => apply_writes(p, &resources::cpu_v1(c)?)?,
                    Target::V2(p) => apply_writes(p, &resources::cpu_v2(c)?)?,
                }
            }
        }
        if let Some(p) = r.pids() {
            match self.require("pids", "pids limit")? {
                Target::V1(d) | Target::V2(d) => apply_writes(d, &resources::pids(p))?,
            }
        }
        if let Some(b) = r.block_io() {
            if resources::blkio_requested(b) {
                match self.require("blkio", "block io limits")? {
                    Target::V1(p) => {
                        let w = resources::blkio_v1(b, || v1_weight_files(p))?;
                        apply_writes(p, &w)?;
                    }
                    Target::V2(p) => {
                        let w = resources::blkio_v2(b, || p.join("io.bfq.weight").exists())?;
                        apply_writes(p, &w)?;
                    }
                }
            }
        }
        if let Some(h) = r.hugepage_limits() {
            if !h.is_empty() {
                match self.require("hugetlb", "hugepage limits")? {
                    Target::V1(p) => apply_writes(p, &resources::hugetlb(h, false)?)?,
                    Target::V2(p) => apply_writes(p, &resources::hugetlb(h, true)?)?,
                }
            }
        }
        if let Some(n) = r.network() {
            let (cls, prio) = resources::network(n);
            for (controller, writes, what) in [
                ("net_cls", cls, "network classID"),
                ("net_prio", prio, "network priorities"),
            ] {
                if writes.is_empty() {
                    continue;
                }
                // Both are v1-only controllers.
                let p = self
                    .v1_path(controller)
                    .ok_or_else(|| Error::ControllerMissing {
                        controller: controller.to_string(),
                        what: what.to_string(),
                    })?;
                apply_writes(p, &writes)?;
            }
        }
        if let Some(rdma) = r.rdma() {
            let w = resources::rdma(rdma)?;
            if !w.is_empty() {
                match self.require("rdma", "rdma limits")? {
                    Target::V1(p) | Target::V2(p) => apply_writes(p, &w)?,
                }
            }
        }
        if let Some(u) = r.unified() {
            self.apply_unified(u)?;
        }
        Ok(())
    }

    fn apply_devices(&self, list: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<()> {
        let rules = list
            .iter()
            .map(Rule::from_oci)
            .collect::<Result<Vec<_>>>()?;
        let target = Emulator::from_rules(&rules)?;
        match self.require("devices", "device rules")? {
            Target::V1(p) => {
                let list_file = p.join("devices.list");
                let current =
                    Emulator::from_list(&fs::read_path(&list_file)?).map_err(|reason| {
                        Error::Parse {
                            path: list_file.clone(),
                            reason,
                        }
                    })?;
                let writes: Vec<Write> = current
                    .transition(&target)
                    .iter()
                    .map(|r| {
                        let file = if r.allow {
                            "devices.allow"
                        } else {
                            "devices.deny"
                        };
                        Write::new(file, r.cgroup_string())
                    })
                    .collect();
                apply_writes(p, &writes)
            }
            Target::V2(p) => crate::bpf::install(p, &crate::bpf::device_program(&target)),
        }
    }

    fn apply_unified(&self, u: &std::collections::HashMap<String, String>) -> Result<()> {
        let mut keys: Vec<_> = u.iter().collect();
        keys.sort();
        for (k, v) in keys {
            let ctrl = resources::unified_key(k)?;
            let Some(v2) = &self.v2 else {
                return Err(Error::Unsupported {
                    what: format!("unified resource {k}"),
                    path: PathBuf::from(CGROUP_ROOT),
                    reason: "unified resources need cgroup v2".into(),
                });
            };
            // On hybrid hosts a key only makes sense for a controller on the v2 side.
            let v1_name = if ctrl == "io" { "blkio" } else { ctrl };
            if let Some(p) = self.v1_path(v1_name) {
                return Err(Error::Unsupported {
                    what: format!("unified resource {k}"),
                    path: p.to_path_buf(),
                    reason: format!("the {ctrl} controller is mounted as cgroup v1"),
                });
            }
            fs::write(&v2.path, k, v)?;
        }
        Ok(())
    }

    /// Moves process `pid` into the cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        let pid = pid.to_string();
        for p in self.paths() {
            fs::write(p, "cgroup.procs", &pid)?;
        }
        Ok(())
    }

    /// The hierarchy used to list processes: v1 pids/freezer/memory, else v2.
    fn procs_dir(&self) -> Option<&Path> {
        ["pids", "freezer", "memory"]
            .iter()
            .find_map(|c| self.v1_path(c))
            .or_else(|| self.v2_path())
            .or_else(|| self.v1.first().map(|d| d.path.as_path()))
    }

    /// The processes directly in the cgroup.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let Some(dir) = self.procs_dir() else {
            return Ok(Vec::new());
        };
        let file = dir.join("cgroup.procs");
        let text = fs::read_path(&file)?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.trim().parse::<i32>().map_err(|_| Error::Parse {
                    path: file.clone(),
                    reason: format!("bad pid {l:?}"),
                })
            })
            .collect()
    }

    fn freezer_target(&self) -> Result<Target<'_>> {
        self.require("freezer", "freeze")
    }

    /// Freezes every process in the cgroup and waits until the kernel reports it frozen.
    pub fn freeze(&self) -> Result<()> {
        match self.freezer_target()? {
            Target::V1(p) => freezer::freeze_v1(p),
            Target::V2(p) => freezer::set_v2(p, true),
        }
    }

    /// Thaws the cgroup.
    pub fn thaw(&self) -> Result<()> {
        match self.freezer_target()? {
            Target::V1(p) => freezer::thaw_v1(p),
            Target::V2(p) => freezer::set_v2(p, false),
        }
    }

    /// Whether the cgroup is (completely) frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        match self.freezer_target()? {
            Target::V1(p) => freezer::is_frozen_v1(p),
            Target::V2(p) => freezer::is_frozen_v2(p),
        }
    }

    /// Resource usage statistics.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        match self.target("cpuacct") {
            Some(Target::V1(p)) => stats::v1_cpuacct(p, &mut s)?,
            Some(Target::V2(p)) => stats::v2_cpu(p, &mut s)?,
            None => {}
        }
        // v1 throttling counters live in the cpu hierarchy (v2's cpu.stat was read above).
        if let Some(Target::V1(p)) = self.target("cpu") {
            stats::v1_cpu(p, &mut s)?;
        }
        match self.target("cpuset") {
            Some(Target::V1(p)) => stats::v1_cpuset(p, &mut s)?,
            Some(Target::V2(p)) => stats::v2_cpuset(p, &mut s)?,
            None => {}
        }
        match self.target("memory") {
            Some(Target::V1(p)) => stats::v1_memory(p, &mut s)?,
            Some(Target::V2(p)) => stats::v2_memory(p, &mut s)?,
            None => {}
        }
        if let Some(Target::V1(p) | Target::V2(p)) = self.target("pids") {
            stats::pids(p, &mut s)?;
        }
        match self.target("blkio") {
            Some(Target::V1(p)) => stats::v1_blkio(p, &mut s)?,
            Some(Target::V2(p)) => stats::v2_io(p, &mut s)?,
            None => {}
        }
        match self.target("hugetlb") {
            Some(Target::V1(p)) => stats::v1_hugetlb(p, &mut s)?,
            Some(Target::V2(p)) => stats::v2_hugetlb(p, &mut s)?,
            None => {}
        }
        Ok(s)
    }

    /// Removes the directories (retrying briefly while busy, removing sub-cgroups the
    /// container made). Missing directories are fine.
    pub fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for p in self.paths() {
            // Keep going so one stuck hierarchy does not leak all the others.
            if let Err(e) = fs::remove_cgroup_dir(p) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Picks blkio weight files: CFQ's if present, else BFQ's.
fn v1_weight_files(dir: &Path) -> Result<(&'static str, &'static str)> {
    if dir.join("blkio.weight").exists() {
        Ok(("blkio.weight", "blkio.weight_device"))
    } else if dir.join("blkio.bfq.weight").exists() {
        Ok(("blkio.bfq.weight", "blkio.bfq.weight_device"))
    } else {
        Err(Error::Unsupported {
            what: "blkio weight".into(),
            path: dir.to_path_buf(),
            reason: "neither blkio.weight nor blkio.bfq.weight exists (no CFQ or BFQ scheduler)"
                .into(),
        })
    }
}

/// Gives directories we created (or an existing leaf left empty) the cpus and mems of
/// their parent: an empty v1 cpuset refuses processes.
fn ensure_cpuset(leaf: &Path, created: &[PathBuf]) -> Result<()> {
    let (top, dirs): (&Path, Vec<&Path>) = match created.first() {
        Some(top) => (top, created.iter().map(PathBuf::as_path).collect()),
        None => {
            // Pre-existing leaf: only fill what is empty.
            let cpus = fs::read(leaf, "cpuset.cpus")?;
            let mems = fs::read(leaf, "cpuset.mems")?;
            if !cpus.trim().is_empty() && !mems.trim().is_empty() {
                return Ok(());
            }
            (leaf, vec![leaf])
        }
    };
    let parent = top.parent().ok_or_else(|| Error::InvalidPath {
        path: top.to_path_buf(),
        reason: "cpuset directory has no parent",
    })?;
    let (cpus, mems) = cpuset_of(parent)?;
    for d in dirs {
        fs::write(d, "cpuset.cpus", &cpus)?;
        fs::write(d, "cpuset.mems", &mems)?;
    }
    Ok(())
}

/// The effective cpus/mems of `dir`, filling it from its ancestors first if empty.
fn cpuset_of(dir: &Path) -> Result<(String, String)> {
    let cpus = fs::read(dir, "cpuset.cpus")?.trim().to_string();
    let mems = fs::read(dir, "cpuset.mems")?.trim().to_string();
    if !cpus.is_empty() && !mems.is_empty() {
        return Ok((cpus, mems));
    }
    let parent = dir.parent().ok_or_else(|| Error::InvalidPath {
        path: dir.to_path_buf(),
        reason: "cpuset directory has no parent",
    })?;
    let (pc, pm) = cpuset_of(parent)?;
    let cpus = if cpus.is_empty() {
        fs::write(dir, "cpuset.cpus", &pc)?;
        pc
    } else {
        cpus
    };
    let mems = if mems.is_empty() {
        fs::write(dir, "cpuset.mems", &pm)?;
        pm
    } else {
        mems
    };
    Ok((cpus, mems))
}

/// Makes every controller available at the hierarchy root reach `leaf`, by enabling it
/// in each ancestor's cgroup.subtree_control from the nearest one that lacks it upward.
/// Failures are tolerated (e.g. an ancestor with processes of its own cannot delegate
/// domain controllers): writes to the missing files later report them precisely.
fn enable_controllers(leaf: &Path, mount: &Path) -> Result<()> {
    let Some(parent) = leaf.parent() else {
        return Ok(());
    };
    if !parent.starts_with(mount) {
        return Ok(());
    }
    let wanted = words(&fs::read(mount, "cgroup.controllers")?);
    enable_in(parent, mount, &wanted)
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn enable_in(dir: &Path, mount: &Path, wanted: &[String]) -> Result<()> {
    let enabled = words(&fs::read(dir, "cgroup.subtree_control")?);
    let missing: Vec<&String> = wanted.iter().filter(|c| !enabled.contains(c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if dir != mount {
        let available = words(&fs::read(dir, "cgroup.controllers")?);
        let above: Vec<String> = missing
            .iter()
            .filter(|c| !available.contains(c))
            .map(|c| c.to_string())
            .collect();
        if !above.is_empty() {
            if let Some(parent) = dir.parent().filter(|p| p.starts_with(mount)) {
                enable_in(parent, mount, &above)?;
            }
        }
    }
    let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    if fs::write(dir, "cgroup.subtree_control", &all.join(" ")).is_err() {
        // One at a time, so one refused controller does not block the others.
        for c in &all {
            if let Err(e) = fs::write(dir, "cgroup.subtree_control", c) {
                tracing::debug!("{e}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_cgroups_paths() {
        assert_eq!(normalize(Path::new("/a/b")).unwrap(), Path::new("a/b"));
        assert_eq!(normalize(Path::new("a/./b/")).unwrap(), Path::new("a/b"));
        let e = normalize(Path::new("/a/../b")).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid cgroups path /a/../b: \"..\" components are not allowed"
        );
        assert!(normalize(Path::new("..")).is_err());
        assert!(normalize(Path::new("/")).is_err());
        assert!(normalize(Path::new(".")).is_err());
    }

    #[test]
    fn checks_container_ids() {
        assert!(check_container_id("abc-1").is_ok());
        for bad in ["", ".", "..", "a/b"] {
            assert!(check_container_id(bad).is_err(), "{bad:?}");
        }
    }

    fn hier(mp: &str, ctrls: &[&str], root: &str) -> Hierarchy {
        Hierarchy {
            mount_point: mp.into(),
            controllers: ctrls.iter().map(|s| s.to_string()).collect(),
            version: if ctrls.is_empty() { 2 } else { 1 },
            root: root.into(),
        }
    }

    #[test]
    fn base_dirs_for_relative_paths() {
        let own =
            mountinfo::parse_proc_cgroup("4:memory:/process_api/x\n3:cpu:/docker/c/sub\n0::/u\n");
        let mem = hier("/sys/fs/cgroup/memory", &["memory"], "/");
        assert_eq!(
            base_dir(&mem, Some(&own)).unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/x")
        );
        assert_eq!(
            base_dir(&mem, None).unwrap(),
            Path::new("/sys/fs/cgroup/memory")
        );
        // A mount of a sub-tree: our path is shown relative to the mount's root.
        let cpu = hier("/sys/fs/cgroup/cpu", &["cpu"], "/docker/c");
        assert_eq!(
            base_dir(&cpu, Some(&own)).unwrap(),
            Path::new("/sys/fs/cgroup/cpu/sub")
        );
        let other = hier("/sys/fs/cgroup/cpu", &["cpu"], "/elsewhere");
        assert!(base_dir(&other, Some(&own)).is_err());
        let v2 = hier("/sys/fs/cgroup/unified", &[], "/");
        assert_eq!(
            base_dir(&v2, Some(&own)).unwrap(),
            Path::new("/sys/fs/cgroup/unified/u")
        );
        let pids = hier("/sys/fs/cgroup/pids", &["pids"], "/");
        assert!(base_dir(&pids, Some(&own)).is_err());
    }

    #[test]
    fn selects_v1_hierarchies() {
        assert!(wanted_v1(&hier("/a", &["cpu", "cpuacct"], "/")));
        assert!(wanted_v1(&hier("/a", &["name=systemd"], "/")));
        assert!(!wanted_v1(&hier("/a", &["name=elogind"], "/")));
        assert!(!wanted_v1(&hier("/a", &[], "/")));
    }

    #[test]
    fn routes_controllers_on_hybrid() {
        let cg = Cgroup {
            v1: vec![
                V1Dir {
                    controllers: vec!["memory".into()],
                    path: "/sys/fs/cgroup/memory/c".into(),
                },
                V1Dir {
                    controllers: vec!["name=systemd".into()],
                    path: "/sys/fs/cgroup/systemd/c".into(),
                },
            ],
            v2: Some(V2Dir {
                path: "/sys/fs/cgroup/unified/c".into(),
                mount: "/sys/fs/cgroup/unified".into(),
            }),
        };
        assert_eq!(
            cg.target("memory"),
            Some(Target::V1(Path::new("/sys/fs/cgroup/memory/c")))
        );
        assert_eq!(
            cg.target("hugetlb"),
            Some(Target::V2(Path::new("/sys/fs/cgroup/unified/c")))
        );
        assert_eq!(cg.paths().count(), 3);
        assert_eq!(cg.procs_dir(), Some(Path::new("/sys/fs/cgroup/memory/c")));
        // Round-trips through the runtime's state file.
        let json = serde_json::to_string(&cg).unwrap();
        let back: Cgroup = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cg);
        let v1_only = Cgroup {
            v1: cg.v1.clone(),
            v2: None,
        };
        assert!(v1_only.target("hugetlb").is_none());
        let e = v1_only
            .require("hugetlb", "hugepage limits")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "hugepage limits: the hugetlb controller is not mounted");
    }
}
