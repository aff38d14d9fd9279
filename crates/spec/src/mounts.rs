//! The container's mount requests: `-v`/`Binds`, `--mount`/`Mounts`, `--tmpfs`/`Tmpfs` and
//! the image's anonymous `VOLUME`s, parsed and checked the way Docker does. The engine
//! resolves volumes to host paths ([`MountRequest::resolve`]) and hands the result to
//! [`crate::build`].

use crate::error::{invalid, Error, Result};
use bollard_stubs::models::{ContainerConfig, HostConfig, Mount, MountTypeEnum};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host file or directory, bind-mounted.
    HostPath(PathBuf),
    /// A volume; `name` is `None` for an anonymous one. `nocopy` keeps the image's files
    /// at the destination from being copied into a new volume.
    Volume {
        name: Option<String>,
        nocopy: bool,
        subpath: Option<String>,
        driver: Option<String>,
    },
    /// A tmpfs; `options` holds the other mount options (`exec`, `uid=1000`, ...).
    Tmpfs {
        size: Option<u64>,
        mode: Option<u32>,
        options: Vec<String>,
    },
}

/// Docker's bind options (`--mount type=bind,bind-recursive=...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// `bind` instead of `rbind`: submounts of the source are not carried along.
    pub non_recursive: bool,
    /// Read-only only at the top (`ro` instead of `rro`).
    pub read_only_non_recursive: bool,
    /// Fail rather than fall back when `rro` is unavailable.
    pub read_only_force_recursive: bool,
    /// Create the host path when it is missing (always so for `-v`, as with Docker).
    pub create_mountpoint: bool,
}

/// One mount the container asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    pub source: MountSource,
    /// Absolute, cleaned path inside the container.
    pub destination: String,
    pub read_only: bool,
    /// Bind propagation (`rprivate` unless asked otherwise); `None` for volumes and tmpfs.
    pub propagation: Option<String>,
    pub bind_options: BindOptions,
}

/// What a mount is after the engine resolved its volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedSource {
    Path(PathBuf),
    Tmpfs {
        size: Option<u64>,
        mode: Option<u32>,
        options: Vec<String>,
    },
}

/// A mount ready for [`crate::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMount {
    pub destination: String,
    pub source: ResolvedSource,
    pub read_only: bool,
    pub propagation: Option<String>,
    pub bind_options: BindOptions,
}

impl MountRequest {
    /// Resolves the request; `volume_path` is the host directory of a volume (its subpath
    /// is appended here) and is ignored for binds and tmpfs.
    pub fn resolve(&self, volume_path: Option<&Path>) -> Result<ResolvedMount> {
        let source = match &self.source {
            MountSource::HostPath(p) => ResolvedSource::Path(p.clone()),
            MountSource::Volume { subpath, .. } => {
                let base = volume_path.ok_or_else(|| {
                    invalid(format!(
                        "volume mount at {}: no host path given",
                        self.destination
                    ))
                })?;
                ResolvedSource::Path(match subpath {
                    Some(s) => base.join(s),
                    None => base.to_path_buf(),
                })
            }
            MountSource::Tmpfs {
                size,
                mode,
                options,
            } => ResolvedSource::Tmpfs {
                size: *size,
                mode: *mode,
                options: options.clone(),
            },
        };
        Ok(ResolvedMount {
            destination: self.destination.clone(),
            source,
            read_only: self.read_only,
            propagation: self.propagation.clone(),
            bind_options: self.bind_options.clone(),
        })
    }
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];
const DEFAULT_PROPAGATION: &str = "rprivate";

/// Collects every mount the container asked for, in Docker's order of precedence:
/// binds, `Mounts`, `Tmpfs`, then anonymous volumes for the config's `Volumes` that
/// nothing else covers. Two requests for one destination are an error.
pub fn mount_requests(config: &ContainerConfig, host: &HostConfig) -> Result<Vec<MountRequest>> {
    let local_driver = host
        .volume_driver
        .as_deref()
        .is_none_or(|d| d.is_empty() || d == "local");
    let tmpfs = host.tmpfs.clone().unwrap_or_default();
    let mut tmpfs_dests = BTreeSet::new();
    for dest in tmpfs.keys() {
        validate_destination(dest)?;
        tmpfs_dests.insert(clean(dest));
    }

    let mut out: Vec<MountRequest> = Vec::new();
    let mut taken = BTreeSet::new();
    for raw in host.binds.iter().flatten() {
        let m = parse_bind(raw, host.volume_driver.as_deref(), local_driver)?;
        if !taken.insert(m.destination.clone()) || tmpfs_dests.contains(&m.destination) {
            return Err(duplicate(&m.destination));
        }
        out.push(m);
    }
    for spec in host.mounts.iter().flatten() {
        let m = parse_mount(spec)?;
        if !taken.insert(m.destination.clone()) || tmpfs_dests.contains(&m.destination) {
            return Err(duplicate(&m.destination));
        }
        out.push(m);
    }
    let mut tmpfs: Vec<(&String, &String)> = tmpfs.iter().collect();
    tmpfs.sort();
    for (dest, data) in tmpfs {
        let (read_only, source) = parse_tmpfs_data(data)?;
        taken.insert(clean(dest));
        out.push(MountRequest {
            source,
            destination: clean(dest),
            read_only,
            propagation: None,
            bind_options: BindOptions::default(),
        });
    }
    let mut volumes: Vec<&String> = config.volumes.iter().flat_map(|v| v.keys()).collect();
    volumes.sort();
    for dest in volumes {
        validate_destination(dest)?;
        let dest = clean(dest);
        if taken.insert(dest.clone()) {
            out.push(MountRequest {
                source: MountSource::Volume {
                    name: None,
                    nocopy: false,
                    subpath: None,
                    driver: host.volume_driver.clone().filter(|d| !d.is_empty()),
                },
                destination: dest,
                read_only: false,
                propagation: None,
                bind_options: BindOptions::default(),
            });
        }
    }
    Ok(out)
}

fn duplicate(dest: &str) -> Error {
    invalid(format!("Duplicate mount point: {dest}"))
}

/// Destinations must be absolute and not "/" (Docker's messages).
fn validate_destination(dest: &str) -> Result<()> {
    if clean(dest) == "/" {
        return Err(invalid("invalid specification: destination can't be '/'"));
    }
    if !dest.starts_with('/') {
        return Err(invalid(format!(
            "invalid mount path: '{dest}' mount path must be absolute"
        )));
    }
    Ok(())
}

/// The options of a `-v` mode string ("ro,z,rshared,nocopy").
#[derive(Default)]
struct Mode {
    read_only: bool,
    propagation: Option<String>,
    nocopy: bool,
}

/// Each kind at most once: rw/ro, z/Z, propagation, nocopy, consistency.
fn parse_mode(mode: &str) -> Option<Mode> {
    let mut m = Mode::default();
    if mode.is_empty() {
        return Some(m);
    }
    let mut counts = [0u8; 5];
    for o in mode.split(',') {
        let kind = match o {
            "rw" => 0,
            "ro" => {
                m.read_only = true;
                0
            }
            "z" | "Z" => 1,
            p if PROPAGATIONS.contains(&p) => {
                m.propagation = Some(p.to_string());
                2
            }
            "nocopy" => {
                m.nocopy = true;
                3
            }
            "consistent" | "cached" | "delegated" => 4,
            _ => return None,
        };
        counts[kind] += 1;
    }
    counts.iter().all(|&c| c <= 1).then_some(m)
}

/// A `-v` entry: "dst", "src:dst" or "src:dst:mode"; an absolute source is a host path,
/// anything else a volume name.
fn parse_bind(raw: &str, driver: Option<&str>, local_driver: bool) -> Result<MountRequest> {
    let spec_err = || invalid(format!("invalid volume specification: '{raw}'"));
    let parts: Vec<&str> = raw.splitn(4, ':').collect();
    if parts[0].is_empty() {
        return Err(spec_err());
    }
    let (source, target, mode) = match parts[..] {
        [target] => ("", target, ""),
        [_, second] if parse_mode(second).is_some() => return Err(spec_err()),
        [source, target] => (source, target, ""),
        [source, target, mode] => (source, target, mode),
        _ => return Err(spec_err()),
    };
    let m = parse_mode(mode).ok_or_else(|| invalid(format!("invalid mode: {mode}")))?;
    let wrap = |e: Error| invalid(format!("invalid volume specification: '{raw}': {e}"));
    let is_bind = source.starts_with('/');
    let kind = if is_bind { "bind" } else { "volume" };
    let config_err = |e: &str| {
        wrap(invalid(format!(
            "invalid mount config for type \"{kind}\": {e}"
        )))
    };
    if is_bind && m.nocopy {
        return Err(config_err("field VolumeOptions must not be specified"));
    }
    if !is_bind && m.propagation.is_some() {
        return Err(config_err("field BindOptions must not be specified"));
    }
    validate_destination(target).map_err(|e| config_err(&e.to_string()))?;
    let destination = clean(target);
    if is_bind {
        return Ok(MountRequest {
            source: MountSource::HostPath(PathBuf::from(clean(source))),
            destination,
            read_only: m.read_only,
            propagation: Some(m.propagation.unwrap_or_else(|| DEFAULT_PROPAGATION.into())),
            // Docker creates a missing -v source directory.
            bind_options: BindOptions {
                create_mountpoint: true,
                ..Default::default()
            },
        });
    }
    let name = (!source.is_empty()).then(|| source.to_string());
    if let Some(name) = &name {
        if local_driver {
            validate_volume_name(name)?;
        }
    }
    Ok(MountRequest {
        source: MountSource::Volume {
            name,
            nocopy: m.nocopy,
            subpath: None,
            driver: driver.filter(|d| !d.is_empty()).map(String::from),
        },
        destination,
        read_only: m.read_only,
        propagation: None,
        bind_options: BindOptions::default(),
    })
}

/// The local volume driver's naming rule.
fn validate_volume_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.clone().next().is_some()
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first_ok && rest_ok {
        return Ok(());
    }
    Err(invalid(format!(
        "create {name}: {name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )))
}

/// A `--mount` entry, checked like Docker's ValidateMountConfig (bind sources must exist
/// unless `CreateMountpoint`).
fn parse_mount(spec: &Mount) -> Result<MountRequest> {
    let typ = spec.typ.unwrap_or(MountTypeEnum::EMPTY);
    let err = |e: &str| invalid(format!("invalid mount config for type \"{typ}\": {e}"));
    let extra = |field: &str| err(&format!("field {field} must not be specified"));
    if typ != MountTypeEnum::BIND && spec.bind_options.is_some() {
        return Err(extra("BindOptions"));
    }
    if typ != MountTypeEnum::VOLUME && spec.volume_options.is_some() {
        return Err(extra("VolumeOptions"));
    }
    if typ != MountTypeEnum::TMPFS && spec.tmpfs_options.is_some() {
        return Err(extra("TmpfsOptions"));
    }
    let target = spec.target.as_deref().unwrap_or_default();
    if target.is_empty() {
        return Err(err("field Target must not be empty"));
    }
    validate_destination(target).map_err(|e| err(&e.to_string()))?;
    let destination = clean(target);
    let read_only = spec.read_only.unwrap_or(false);
    let source = spec.source.as_deref().unwrap_or_default();
    match typ {
        MountTypeEnum::BIND => {
            if source.is_empty() {
                return Err(err("field Source must not be empty"));
            }
            if !source.starts_with('/') {
                return Err(err(&format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            let o = spec.bind_options.clone().unwrap_or_default();
            let propagation = o
                .propagation
                .map(|p| p.to_string())
                .filter(|p| !p.is_empty());
            let bind_options = BindOptions {
                non_recursive: o.non_recursive.unwrap_or(false),
                read_only_non_recursive: o.read_only_non_recursive.unwrap_or(false),
                read_only_force_recursive: o.read_only_force_recursive.unwrap_or(false),
                create_mountpoint: o.create_mountpoint.unwrap_or(false),
            };
            if !read_only
                && (bind_options.read_only_non_recursive || bind_options.read_only_force_recursive)
            {
                return Err(invalid("mount options conflict: !ReadOnly && BindOptions.ReadOnlyNonRecursive or ReadOnlyForceRecursive"));
            }
            if bind_options.read_only_non_recursive && bind_options.read_only_force_recursive {
                return Err(invalid("mount options conflict: ReadOnlyNonRecursive && BindOptions.ReadOnlyForceRecursive"));
            }
            let source = clean(source);
            if !bind_options.create_mountpoint && std::fs::metadata(&source).is_err() {
                return Err(err(&format!("bind source path does not exist: {source}")));
            }
            Ok(MountRequest {
                source: MountSource::HostPath(PathBuf::from(source)),
                destination,
                read_only,
                propagation: Some(propagation.unwrap_or_else(|| DEFAULT_PROPAGATION.into())),
                bind_options,
            })
        }
        MountTypeEnum::VOLUME => {
            let o = spec.volume_options.clone().unwrap_or_default();
            let subpath = o.subpath.filter(|s| !s.is_empty());
            if let Some(sub) = &subpath {
                if source.is_empty() {
                    return Err(err("must not set Subpath when using anonymous volumes"));
                }
                if !is_local(sub) {
                    return Err(err("subpath must be a relative path within the volume"));
                }
            }
            let driver = o
                .driver_config
                .and_then(|d| d.name)
                .filter(|d| !d.is_empty());
            if !source.is_empty() && driver.as_deref().is_none_or(|d| d == "local") {
                validate_volume_name(source)?;
            }
            Ok(MountRequest {
                source: MountSource::Volume {
                    name: (!source.is_empty()).then(|| source.to_string()),
                    nocopy: o.no_copy.unwrap_or(false),
                    subpath,
                    driver,
                },
                destination,
                read_only,
                propagation: None,
                bind_options: BindOptions::default(),
            })
        }
        MountTypeEnum::TMPFS => {
            if !source.is_empty() {
                return Err(err("field Source must not be specified"));
            }
            let o = spec.tmpfs_options.clone().unwrap_or_default();
            let size = match o.size_bytes {
                Some(n) if n < 0 => return Err(err(&format!("invalid size: {n}"))),
                Some(0) | None => None,
                Some(n) => Some(n as u64),
            };
            let mode = match o.mode {
                Some(0) | None => None,
                Some(m) => Some(
                    u32::try_from(m)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| err(&format!("invalid mode: {m:o}")))?,
                ),
            };
            let mut options = Vec::new();
            for opt in o.options.iter().flatten() {
                let name = opt.first().map(String::as_str).unwrap_or_default();
                if opt.is_empty() || opt.len() > 2 {
                    return Err(err("invalid option array length"));
                }
                if name != "exec" && name != "noexec" {
                    return Err(err(&format!("invalid option: {name}")));
                }
                options.push(opt.join("="));
            }
            Ok(MountRequest {
                source: MountSource::Tmpfs {
                    size,
                    mode,
                    options,
                },
                destination,
                read_only,
                propagation: None,
                bind_options: BindOptions::default(),
            })
        }
        _ => Err(err("mount type unknown")),
    }
}

/// Lexically inside: relative, without ".." escaping.
fn is_local(p: &str) -> bool {
    if p.starts_with('/') {
        return false;
    }
    let c = clean(p);
    c != ".." && !c.starts_with("../")
}

/// Mount flags a tmpfs option may carry, besides the data keys below.
const TMPFS_FLAGS: &[&str] = &[
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "exec",
    "noexec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "bind",
    "rbind",
    "unbindable",
    "runbindable",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
];

/// `--tmpfs /dst:size=64m,mode=1777,exec`: Docker passes the string through; here it is
/// checked (unknown options, malformed sizes, modes and ids are errors) and split.
fn parse_tmpfs_data(data: &str) -> Result<(bool, MountSource)> {
    let mut read_only = false;
    let (mut size, mut mode, mut options) = (None, None, Vec::new());
    if data.is_empty() {
        return Ok((
            false,
            MountSource::Tmpfs {
                size,
                mode,
                options,
            },
        ));
    }
    for opt in data.split(',') {
        if opt.is_empty() {
            return Err(invalid("invalid tmpfs option \"\""));
        }
        match opt {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "defaults" => {}
            _ if TMPFS_FLAGS.contains(&opt) => options.push(opt.to_string()),
            _ => {
                let (key, value) = opt
                    .split_once('=')
                    .ok_or_else(|| invalid(format!("invalid tmpfs option {opt:?}")))?;
                let bad = || invalid(format!("invalid tmpfs option {opt:?}: bad value"));
                match key {
                    "size" => {
                        // A percentage of RAM stays an option; a later size replaces it.
                        options.retain(|o: &String| !o.starts_with("size="));
                        size = None;
                        let percent = value.strip_suffix('%').is_some_and(|p| {
                            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
                        });
                        if percent {
                            options.push(opt.to_string());
                        } else {
                            size = Some(parse_size(value).ok_or_else(bad)?);
                        }
                    }
                    "mode" => {
                        mode = Some(
                            u32::from_str_radix(value, 8)
                                .ok()
                                .filter(|m| *m <= 0o7777)
                                .ok_or_else(bad)?,
                        )
                    }
                    "uid" | "gid" | "nr_inodes" | "nr_blocks" => {
                        if parse_size(value).is_none() {
                            return Err(bad());
                        }
                        options.push(opt.to_string());
                    }
                    "mpol" => options.push(opt.to_string()),
                    _ => return Err(invalid(format!("invalid tmpfs option {key:?}"))),
                }
            }
        }
    }
    Ok((
        read_only,
        MountSource::Tmpfs {
            size,
            mode,
            options,
        },
    ))
}

/// The kernel's memparse: digits with an optional k/m/g/t/p/e suffix (any case).
pub(crate) fn parse_size(v: &str) -> Option<u64> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, suffix) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        "e" => 60,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// The OCI options of a tmpfs mount: Docker's defaults (noexec, nosuid, nodev, rprivate)
/// overridden by the request's, one option per kind (the last one wins).
pub(crate) fn tmpfs_options(
    size: Option<u64>,
    mode: Option<u32>,
    options: &[String],
    read_only: bool,
) -> Vec<String> {
    let mut all: Vec<String> = ["noexec", "nosuid", "nodev", "rprivate"]
        .map(String::from)
        .to_vec();
    if read_only {
        all.push("ro".into());
    }
    if let Some(m) = mode {
        all.push(format!("mode={m:o}"));
    }
    if let Some(s) = size {
        all.push(format!("size={}", size_with_suffix(s)));
    }
    all.extend(options.iter().cloned());
    merge_options(&all)
}

/// Keeps the last of each kind: one per mount flag pair (ro/rw, exec/noexec, ...), one
/// propagation, one per data key; order follows the kept entries.
fn merge_options(options: &[String]) -> Vec<String> {
    let kind = |o: &str| -> String {
        let flag_pairs: [(&str, &str); 11] = [
            ("ro", "rw"),
            ("suid", "nosuid"),
            ("dev", "nodev"),
            ("exec", "noexec"),
            ("sync", "async"),
            ("mand", "nomand"),
            ("atime", "noatime"),
            ("diratime", "nodiratime"),
            ("relatime", "norelatime"),
            ("strictatime", "nostrictatime"),
            ("dirsync", "dirsync"),
        ];
        if let Some((a, _)) = flag_pairs.iter().find(|(a, b)| o == *a || o == *b) {
            return format!("flag:{a}");
        }
        if PROPAGATIONS.contains(&o) || ["bind", "rbind", "unbindable", "runbindable"].contains(&o)
        {
            return "propagation".into();
        }
        match o.split_once('=') {
            Some((k, _)) => format!("data:{k}"),
            None => format!("other:{o}"),
        }
    };
    let mut seen = BTreeSet::new();
    let mut kept: Vec<String> = options
        .iter()
        .rev()
        .filter(|o| seen.insert(kind(o)))
        .cloned()
        .collect();
    kept.reverse();
    kept
}

/// Docker's rendering of a tmpfs size: the largest of g/m/k that divides it.
fn size_with_suffix(size: u64) -> String {
    for (suffix, div) in [("g", 1u64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        // div is a power of two.
        if size & (div - 1) == 0 {
            return format!("{}{suffix}", size / div);
        }
    }
    size.to_string()
}

/// Go's path.Clean: the shortest lexically equivalent path.
pub(crate) fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Shared and slave propagation only work when the source's mount propagates; Docker
/// refuses otherwise instead of silently not propagating.
pub(crate) fn check_propagation(source: &Path, propagation: &str) -> Result<()> {
    let wanted: &[&str] = match propagation {
        "shared" | "rshared" => &["shared:"],
        "slave" | "rslave" => &["shared:", "master:"],
        _ => return Ok(()),
    };
    let Ok(real) = std::fs::canonicalize(source) else {
        return Ok(());
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Ok(());
    };
    // The longest mount point containing the source; later entries win ties.
    let mut best: Option<(String, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(mountpoint), Some(sep)) = (fields.get(4), fields.iter().position(|f| *f == "-"))
        else {
            continue;
        };
        let mountpoint = unescape(mountpoint);
        if real.starts_with(&mountpoint)
            && best
                .as_ref()
                .is_none_or(|(m, _)| mountpoint.len() >= m.len())
        {
            let optional = fields.get(6..sep).map(|f| f.join(" ")).unwrap_or_default();
            best = Some((mountpoint, optional));
        }
    }
    let Some((mountpoint, optional)) = best else {
        return Ok(());
    };
    if optional
        .split(' ')
        .any(|o| wanted.iter().any(|w| o.starts_with(w)))
    {
        return Ok(());
    }
    let kind = if wanted.len() == 1 {
        "a shared"
    } else {
        "a shared or slave"
    };
    Err(invalid(format!(
        "path {} is mounted on {mountpoint} but it is not {kind} mount",
        source.display()
    )))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(c as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::{
        MountBindOptions, MountBindOptionsPropagationEnum, MountTmpfsOptions, MountVolumeOptions,
    };
    use std::collections::HashMap;

    fn binds(list: &[&str]) -> Result<Vec<MountRequest>> {
        let host = HostConfig {
            binds: Some(list.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        mount_requests(&ContainerConfig::default(), &host)
    }

    fn one_bind(b: &str) -> MountRequest {
        binds(&[b]).unwrap().remove(0)
    }

    fn bind_err(b: &str) -> String {
        binds(&[b]).unwrap_err().to_string()
    }

    #[test]
    fn bind_forms() {
        let m = one_bind("/src/./a/:/dst//x");
        assert_eq!(m.source, MountSource::HostPath("/src/a".into()));
        assert_eq!(
            (
                m.destination.as_str(),
                m.read_only,
                m.propagation.as_deref()
            ),
            ("/dst/x", false, Some("rprivate"))
        );
        assert!(
            m.bind_options.create_mountpoint,
            "-v creates a missing source"
        );

        let m = one_bind("/src:/dst:ro,Z,rshared");
        assert_eq!(
            (m.read_only, m.propagation.as_deref()),
            (true, Some("rshared"))
        );

        let m = one_bind("data:/var/lib/data:nocopy,ro");
        assert_eq!(
            m.source,
            MountSource::Volume {
                name: Some("data".into()),
                nocopy: true,
                subpath: None,
                driver: None
            }
        );
        assert_eq!((m.read_only, m.propagation), (true, None));

        let m = one_bind("/anon");
        assert_eq!(
            m.source,
            MountSource::Volume {
                name: None,
                nocopy: false,
                subpath: None,
                driver: None
            }
        );
    }

    #[test]
    fn bind_errors() {
        assert_eq!(
            bind_err("/foo:rw"),
            "invalid volume specification: '/foo:rw'"
        );
        assert_eq!(bind_err(":/x"), "invalid volume specification: ':/x'");
        assert_eq!(
            bind_err("/a:/b:ro:x"),
            "invalid volume specification: '/a:/b:ro:x'"
        );
        assert_eq!(bind_err("/a:/b:bogus"), "invalid mode: bogus");
        assert_eq!(bind_err("/a:/b:ro,rw"), "invalid mode: ro,rw");
        assert_eq!(
            bind_err("/a:/"),
            "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"
        );
        assert_eq!(
            bind_err("/a:rel"),
            "invalid volume specification: '/a:rel': invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(
            bind_err("/a:/b:nocopy"),
            "invalid volume specification: '/a:/b:nocopy': invalid mount config for type \"bind\": field VolumeOptions must not be specified"
        );
        assert_eq!(
            bind_err("vol:/b:rshared"),
            "invalid volume specification: 'vol:/b:rshared': invalid mount config for type \"volume\": field BindOptions must not be specified"
        );
        assert!(bind_err("a b:/x").contains("includes invalid characters for a local volume name"));
        assert_eq!(
            binds(&["/a:/x", "/b:/x/"]).unwrap_err().to_string(),
            "Duplicate mount point: /x"
        );
    }

    #[test]
    fn other_volume_drivers_take_any_name() {
        let host = HostConfig {
            binds: Some(vec!["a b:/x".into()]),
            volume_driver: Some("nfs".into()),
            ..Default::default()
        };
        let m = mount_requests(&ContainerConfig::default(), &host)
            .unwrap()
            .remove(0);
        assert_eq!(
            m.source,
            MountSource::Volume {
                name: Some("a b".into()),
                nocopy: false,
                subpath: None,
                driver: Some("nfs".into())
            }
        );
    }

    fn mounts(list: Vec<Mount>) -> Result<Vec<MountRequest>> {
        mount_requests(
            &ContainerConfig::default(),
            &HostConfig {
                mounts: Some(list),
                ..Default::default()
            },
        )
    }

    fn mount(typ: MountTypeEnum, source: &str, target: &str) -> Mount {
        Mount {
            typ: Some(typ),
            source: Some(source.into()),
            target: Some(target.into()),
            ..Default::default()
        }
    }

    #[test]
    fn mount_specs() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().to_str().unwrap();
        let m = mounts(vec![Mount {
            read_only: Some(true),
            bind_options: Some(MountBindOptions {
                propagation: Some(MountBindOptionsPropagationEnum::RSLAVE),
                non_recursive: Some(true),
                ..Default::default()
            }),
            ..mount(MountTypeEnum::BIND, src, "/data")
        }])
        .unwrap()
        .remove(0);
        assert_eq!(
            (
                m.read_only,
                m.propagation.as_deref(),
                m.bind_options.non_recursive
            ),
            (true, Some("rslave"), true)
        );

        let e = mounts(vec![mount(MountTypeEnum::BIND, "/no/such/dir", "/x")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid mount config for type \"bind\": bind source path does not exist: /no/such/dir"
        );
        let created = Mount {
            bind_options: Some(MountBindOptions {
                create_mountpoint: Some(true),
                ..Default::default()
            }),
            ..mount(MountTypeEnum::BIND, "/no/such/dir", "/x")
        };
        assert!(mounts(vec![created]).is_ok());

        let t = mounts(vec![Mount {
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: Some(64 << 20),
                mode: Some(0o1777),
                options: Some(vec![vec!["exec".into()]]),
            }),
            ..mount(MountTypeEnum::TMPFS, "", "/run")
        }])
        .unwrap()
        .remove(0);
        assert_eq!(
            t.source,
            MountSource::Tmpfs {
                size: Some(64 << 20),
                mode: Some(0o1777),
                options: vec!["exec".into()]
            }
        );

        let v = mounts(vec![Mount {
            volume_options: Some(MountVolumeOptions {
                no_copy: Some(true),
                subpath: Some("sub/dir".into()),
                ..Default::default()
            }),
            ..mount(MountTypeEnum::VOLUME, "vol", "/v")
        }])
        .unwrap()
        .remove(0);
        assert_eq!(
            v.source,
            MountSource::Volume {
                name: Some("vol".into()),
                nocopy: true,
                subpath: Some("sub/dir".into()),
                driver: None
            }
        );
    }

    #[test]
    fn mount_spec_errors() {
        let e = |m: Mount| mounts(vec![m]).unwrap_err().to_string();
        assert_eq!(
            e(mount(MountTypeEnum::BIND, "/tmp", "")),
            "invalid mount config for type \"bind\": field Target must not be empty"
        );
        assert_eq!(
            e(mount(MountTypeEnum::BIND, "", "/x")),
            "invalid mount config for type \"bind\": field Source must not be empty"
        );
        assert_eq!(
            e(mount(MountTypeEnum::TMPFS, "x", "/x")),
            "invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        assert_eq!(
            e(mount(MountTypeEnum::NPIPE, "x", "/x")),
            "invalid mount config for type \"npipe\": mount type unknown"
        );
        assert_eq!(
            e(Mount {
                tmpfs_options: Some(MountTmpfsOptions::default()),
                ..mount(MountTypeEnum::BIND, "/tmp", "/x")
            }),
            "invalid mount config for type \"bind\": field TmpfsOptions must not be specified"
        );
        assert_eq!(
            e(Mount {
                tmpfs_options: Some(MountTmpfsOptions {
                    options: Some(vec![vec!["nosuid".into()]]),
                    ..Default::default()
                }),
                ..mount(MountTypeEnum::TMPFS, "", "/x")
            }),
            "invalid mount config for type \"tmpfs\": invalid option: nosuid"
        );
        assert_eq!(
            e(Mount {
                volume_options: Some(MountVolumeOptions { subpath: Some("../up".into()), ..Default::default() }),
                ..mount(MountTypeEnum::VOLUME, "v", "/x")
            }),
            "invalid mount config for type \"volume\": subpath must be a relative path within the volume"
        );
        assert_eq!(
            e(Mount {
                volume_options: Some(MountVolumeOptions { subpath: Some("a".into()), ..Default::default() }),
                ..mount(MountTypeEnum::VOLUME, "", "/x")
            }),
            "invalid mount config for type \"volume\": must not set Subpath when using anonymous volumes"
        );
        let two = mounts(vec![
            mount(MountTypeEnum::TMPFS, "", "/x"),
            mount(MountTypeEnum::TMPFS, "", "/x"),
        ]);
        assert_eq!(two.unwrap_err().to_string(), "Duplicate mount point: /x");
    }

    fn tmpfs(dest: &str, data: &str) -> Result<Vec<MountRequest>> {
        let host = HostConfig {
            tmpfs: Some(HashMap::from([(dest.to_string(), data.to_string())])),
            ..Default::default()
        };
        mount_requests(&ContainerConfig::default(), &host)
    }

    #[test]
    fn tmpfs_map() {
        let m = tmpfs("/run", "size=64m,mode=1777,exec,uid=1000,ro")
            .unwrap()
            .remove(0);
        assert!(m.read_only);
        assert_eq!(
            m.source,
            MountSource::Tmpfs {
                size: Some(64 << 20),
                mode: Some(0o1777),
                options: vec!["exec".into(), "uid=1000".into()]
            }
        );
        let m = tmpfs("/run", "size=50%").unwrap().remove(0);
        assert_eq!(
            m.source,
            MountSource::Tmpfs {
                size: None,
                mode: None,
                options: vec!["size=50%".into()]
            }
        );
        for (data, msg) in [
            ("bogus", "invalid tmpfs option \"bogus\""),
            ("foo=1", "invalid tmpfs option \"foo\""),
            ("size=lots", "bad value"),
            ("mode=999", "bad value"),
            ("uid=me", "bad value"),
            ("exec,,ro", "invalid tmpfs option \"\""),
        ] {
            let e = tmpfs("/run", data).unwrap_err().to_string();
            assert!(e.contains(msg), "{data}: {e}");
        }
        assert_eq!(
            tmpfs("/", "").unwrap_err().to_string(),
            "invalid specification: destination can't be '/'"
        );
        assert_eq!(
            tmpfs("run", "").unwrap_err().to_string(),
            "invalid mount path: 'run' mount path must be absolute"
        );
        let host = HostConfig {
            tmpfs: Some(HashMap::from([("/x".to_string(), String::new())])),
            binds: Some(vec!["/a:/x".into()]),
            ..Default::default()
        };
        assert_eq!(
            mount_requests(&ContainerConfig::default(), &host)
                .unwrap_err()
                .to_string(),
            "Duplicate mount point: /x"
        );
    }

    #[test]
    fn anonymous_volumes_fill_the_gaps() {
        let config = ContainerConfig {
            volumes: Some(HashMap::from([
                ("/data".into(), HashMap::new()),
                ("/logs/".into(), HashMap::new()),
                ("/b".into(), HashMap::new()),
            ])),
            ..Default::default()
        };
        let host = HostConfig {
            binds: Some(vec!["/host:/data".into()]),
            ..Default::default()
        };
        let list = mount_requests(&config, &host).unwrap();
        let dests: Vec<&str> = list.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(dests, ["/data", "/b", "/logs"]);
        assert!(matches!(
            list[1].source,
            MountSource::Volume { name: None, .. }
        ));
        let bad = ContainerConfig {
            volumes: Some(HashMap::from([("rel".into(), HashMap::new())])),
            ..Default::default()
        };
        assert!(mount_requests(&bad, &HostConfig::default()).is_err());
    }

    #[test]
    fn tmpfs_option_merge() {
        assert_eq!(
            tmpfs_options(None, None, &[], false),
            ["noexec", "nosuid", "nodev", "rprivate"]
        );
        assert_eq!(
            tmpfs_options(
                Some(64 << 20),
                Some(0o1777),
                &["exec".into(), "uid=1000".into()],
                true
            ),
            [
                "nosuid",
                "nodev",
                "rprivate",
                "ro",
                "mode=1777",
                "size=64m",
                "exec",
                "uid=1000"
            ]
        );
        assert_eq!(
            tmpfs_options(Some(1000), None, &["rshared".into(), "suid".into()], false),
            ["noexec", "nodev", "size=1000", "rshared", "suid"]
        );
        assert_eq!(size_with_suffix(3 << 30), "3g");
        assert_eq!(size_with_suffix(3072), "3k");
        assert_eq!(size_with_suffix(1536), "1536");
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1.5g"), None);
    }

    #[test]
    fn clean_like_go() {
        for (input, want) in [
            ("/a/b/../c/./d/", "/a/c/d"),
            ("//x", "/x"),
            ("/..", "/"),
            ("a/../..", ".."),
            ("", "."),
            ("/", "/"),
        ] {
            assert_eq!(clean(input), want, "{input}");
        }
        assert!(is_local("a/b") && !is_local("../a") && !is_local("/a") && !is_local("a/../../b"));
    }

    #[test]
    fn resolve_volumes() {
        let m = one_bind("vol:/v");
        let r = m
            .resolve(Some(Path::new("/var/lib/berth/volumes/vol/_data")))
            .unwrap();
        assert_eq!(
            r.source,
            ResolvedSource::Path("/var/lib/berth/volumes/vol/_data".into())
        );
        assert!(m.resolve(None).is_err());
        let b = one_bind("/src:/dst:ro");
        assert_eq!(
            b.resolve(None).unwrap().source,
            ResolvedSource::Path("/src".into())
        );
    }

    #[test]
    fn propagation_needs_a_shared_source() {
        // / is usually shared on systemd hosts and private in containers: build a private
        // mount to be sure of the answer.
        let dir = tempfile::tempdir().unwrap();
        assert!(check_propagation(dir.path(), "rprivate").is_ok());
        let mounted = std::process::Command::new("mount")
            .args(["--make-private", "-t", "tmpfs", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipping: cannot mount a tmpfs (not root?)");
            return;
        }
        let result = check_propagation(dir.path(), "rshared");
        let slave = check_propagation(dir.path(), "rslave");
        let _ = std::process::Command::new("umount")
            .arg(dir.path())
            .status();
        let e = result.unwrap_err().to_string();
        assert!(e.contains("is not a shared mount"), "{e}");
        assert!(slave
            .unwrap_err()
            .to_string()
            .contains("is not a shared or slave mount"));
    }
}
