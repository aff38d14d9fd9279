//! Discovery of mounted cgroup hierarchies (/proc/self/mountinfo) and of the calling
//! process's own cgroups (/proc/self/cgroup).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::Result;

/// A mounted cgroup hierarchy, for mounting cgroupfs inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where the hierarchy is mounted.
    pub mount_point: PathBuf,
    /// v1 controller names, including named hierarchies such as "name=systemd";
    /// empty for the v2 unified hierarchy.
    pub controllers: Vec<String>,
    /// 1 or 2.
    pub version: u8,
    /// The root field of mountinfo: which cgroup of the hierarchy is mounted there.
    pub root: PathBuf,
}

impl Hierarchy {
    /// Whether this v1 hierarchy carries `controller`.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mounted cgroup hierarchies, one per hierarchy (bind mounts of the same one are
/// folded, preferring the mount under /sys/fs/cgroup). Read once per process.
pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    cached().map(|h| h.to_vec())
}

pub(crate) fn cached() -> Result<&'static [Hierarchy]> {
    static CACHE: OnceLock<Vec<Hierarchy>> = OnceLock::new();
    if let Some(h) = CACHE.get() {
        return Ok(h);
    }
    let text = crate::fs::read_path(Path::new(MOUNTINFO))?;
    let parsed = parse_mountinfo(&text);
    Ok(CACHE.get_or_init(|| parsed))
}

/// Parses mountinfo text into cgroup hierarchies.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    // (device, hierarchy) in mount order.
    let mut found: Vec<(String, Hierarchy)> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 4 {
            continue;
        }
        let fstype = fields[sep + 1];
        let version = match fstype {
            "cgroup" => 1,
            "cgroup2" => 2,
            _ => continue,
        };
        let device = fields[2].to_string();
        let root = PathBuf::from(unescape(fields[3]));
        let mount_point = PathBuf::from(unescape(fields[4]));
        let controllers = if version == 1 {
            fields[sep + 3]
                .split(',')
                .filter(|o| is_controller_option(o))
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        let h = Hierarchy {
            mount_point,
            controllers,
            version,
            root,
        };
        match found.iter_mut().find(|(d, _)| *d == device) {
            Some((_, existing)) => {
                if !under_sys_fs_cgroup(&existing.mount_point)
                    && under_sys_fs_cgroup(&h.mount_point)
                {
                    *existing = h;
                }
            }
            None => found.push((device, h)),
        }
    }
    found.into_iter().map(|(_, h)| h).collect()
}

fn under_sys_fs_cgroup(p: &Path) -> bool {
    p.starts_with("/sys/fs/cgroup")
}

/// Super options of a v1 cgroup mount that are not controller names.
fn is_controller_option(o: &str) -> bool {
    !matches!(
        o,
        "rw" | "ro"
            | "noprefix"
            | "clone_children"
            | "xattr"
            | "cpuset_v2_mode"
            | "none"
            | ""
            | "favordynmods"
            | "nofavordynmods"
    ) && !o.starts_with("release_agent=")
}

/// Undoes mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash).
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of /proc/self/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnCgroup {
    /// Controllers of the hierarchy (empty for v2's "0::" line).
    pub controllers: Vec<String>,
    /// The cgroup path, relative to the cgroup namespace root.
    pub path: PathBuf,
    pub v2: bool,
}

/// The calling process's cgroups.
pub(crate) fn own_cgroups() -> Result<Vec<OwnCgroup>> {
    let text = crate::fs::read_path(Path::new("/proc/self/cgroup"))?;
    Ok(parse_proc_cgroup(&text))
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<OwnCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?;
            let ctrls = parts.next()?;
            let path = parts.next()?;
            let v2 = id == "0" && ctrls.is_empty();
            Some(OwnCgroup {
                controllers: ctrls
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: PathBuf::from(path),
                v2,
            })
        })
        .collect()
}

/// Finds the line of /proc/self/cgroup for hierarchy `h`.
pub(crate) fn own_for<'a>(own: &'a [OwnCgroup], h: &Hierarchy) -> Option<&'a OwnCgroup> {
    if h.version == 2 {
        return own.iter().find(|o| o.v2);
    }
    own.iter().find(|o| {
        !o.v2
            && o.controllers.len() == h.controllers.len()
            && o.controllers.iter().all(|c| h.has(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/lib/systemd/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:32 /docker/abc /tmp/my\\040mem rw - cgroup cgroup rw,memory
";

    #[test]
    fn parses_hybrid_mountinfo() {
        let h = parse_mountinfo(HYBRID);
        assert_eq!(h.len(), 5, "{h:#?}");
        assert_eq!(h[0].mount_point, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(h[0].controllers, ["cpu"]);
        assert_eq!(h[1].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h[1].controllers, ["cpu", "cpuacct"]);
        assert_eq!(h[3].controllers, ["name=systemd"]);
        assert_eq!(h[4].version, 2);
        assert!(h[4].controllers.is_empty());
        // The bind mount of the memory hierarchy is folded into the /sys/fs/cgroup one.
        assert_eq!(h[2].mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(h[2].root, Path::new("/"));
    }

    #[test]
    fn prefers_mount_under_sys_fs_cgroup_and_unescapes() {
        let text = "\
50 23 0:32 /docker/abc /tmp/my\\040mem rw - cgroup cgroup rw,memory
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
60 23 0:40 /x /tmp/a\\040b rw - cgroup cgroup rw,pids
";
        let h = parse_mountinfo(text);
        assert_eq!(h[0].mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(h[1].mount_point, Path::new("/tmp/a b"));
        assert_eq!(h[1].root, Path::new("/x"));
    }

    #[test]
    fn parses_proc_self_cgroup() {
        let own = parse_proc_cgroup("9:name=systemd:/\n4:memory:/a/b\n2:cpu,cpuacct:/c\n0::/u\n");
        assert_eq!(own.len(), 4);
        let h = Hierarchy {
            mount_point: "/sys/fs/cgroup/cpu,cpuacct".into(),
            controllers: vec!["cpuacct".into(), "cpu".into()],
            version: 1,
            root: "/".into(),
        };
        assert_eq!(own_for(&own, &h).unwrap().path, Path::new("/c"));
        let v2 = Hierarchy {
            mount_point: "/sys/fs/cgroup/unified".into(),
            controllers: vec![],
            version: 2,
            root: "/".into(),
        };
        assert_eq!(own_for(&own, &v2).unwrap().path, Path::new("/u"));
    }
}
