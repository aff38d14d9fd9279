//! The OCI runtime spec for one container: Docker's defaults plus the container's options.

use crate::error::{invalid, Error, Result};
use crate::host::HostInfo;
use crate::mounts::{check_propagation, clean, tmpfs_options, ResolvedMount, ResolvedSource};
use crate::user::User;
use crate::validate::{container_of, parse_device_cgroup_rule, security_options, SecurityOptions};
use bollard_stubs::models::{ContainerConfig, HostConfig, HostConfigCgroupnsModeEnum};
use oci_spec::runtime::Spec;
use serde_json::{json, Map, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where the engine wrote the container's /etc files (`None`: not mounted).
#[derive(Debug, Clone, Copy, Default)]
pub struct EtcFiles<'a> {
    pub hostname: Option<&'a Path>,
    pub hosts: Option<&'a Path>,
    pub resolv_conf: Option<&'a Path>,
}

/// Namespaces to join for `container:<id>` modes: `/proc/<pid>/ns/<kind>` of the other
/// container's init.
#[derive(Debug, Clone, Default)]
pub struct NamespacePaths {
    pub network: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub pid: Option<PathBuf>,
}

/// What the engine prepared for one container.
pub struct Context<'a> {
    /// The container id (64 hex); the hostname defaults to its first 12 characters.
    pub id: &'a str,
    /// The mounted root filesystem.
    pub rootfs: &'a Path,
    /// The container's config, already merged with the image's.
    pub config: &'a ContainerConfig,
    pub host: &'a HostConfig,
    pub user: &'a User,
    /// Binds, volumes and tmpfs mounts, resolved to host paths.
    pub mounts: &'a [ResolvedMount],
    pub etc_files: EtcFiles<'a>,
    /// The /dev/shm to bind for `--ipc shareable|container:|host`; unused for private
    /// and none (a private tmpfs, or no /dev/shm).
    pub shm_path: Option<&'a Path>,
    pub namespace_paths: NamespacePaths,
    /// Parent of the container's cgroup ("/berth" by default); `--cgroup-parent` wins.
    pub cgroup_parent: &'a str,
    /// `--init`: host path of the init binary, mounted at /sbin/docker-init.
    pub init_path: Option<&'a Path>,
    /// The daemon's default seccomp profile (Docker JSON); `None` for Docker's built-in
    /// one. A profile in the container's `--security-opt seccomp=` wins over it.
    pub seccomp_profile: Option<&'a [u8]>,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const INIT_PATH: &str = "/sbin/docker-init";
const DEFAULT_SHM_SIZE: i64 = 64 << 20;
const DEFAULT_CGROUP_PARENT: &str = "/berth";

/// Builds the spec on this host (see [`HostInfo::detect`]).
pub fn build(ctx: &Context) -> Result<Spec> {
    build_with(ctx, HostInfo::detect())
}

/// Builds the spec as it would be on `host_info`.
pub fn build_with(ctx: &Context, host_info: &HostInfo) -> Result<Spec> {
    let (c, h) = (ctx.config, ctx.host);
    let sec = security_options(h.security_opt.as_deref().unwrap_or_default())?;
    let privileged = h.privileged.unwrap_or(false);
    let modes = Modes::of(h);

    let hostname = match c.hostname.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None if modes.net == "host" => host_info.hostname.clone(),
        None => ctx
            .id
            .get(..12)
            .ok_or_else(|| invalid(format!("container id {:?} is too short", ctx.id)))?
            .to_string(),
    };
    let caps = crate::caps::effective(
        h.cap_add.as_deref().unwrap_or_default(),
        h.cap_drop.as_deref().unwrap_or_default(),
        privileged,
        &host_info.capabilities,
    )?;
    let (process, init) = process(ctx, &sec, &hostname, &caps, &modes)?;

    let mut spec = Map::new();
    spec.insert("ociVersion".into(), json!("1.2.0"));
    spec.insert("process".into(), process);
    let readonly = h.readonly_rootfs.unwrap_or(false);
    spec.insert(
        "root".into(),
        json!({"path": ctx.rootfs, "readonly": readonly}),
    );
    if modes.uts != "host" {
        spec.insert("hostname".into(), json!(hostname));
    }
    let (mounts, rootfs_propagation) = mounts(ctx, &sec, &modes, init, host_info)?;
    spec.insert(
        "mounts".into(),
        serde_json::to_value(mounts).map_err(|e| Error::Internal(e.to_string()))?,
    );
    let mut linux = linux(ctx, &sec, &modes, &caps, host_info)?;
    if let Some(p) = rootfs_propagation {
        linux.insert("rootfsPropagation".into(), json!(p));
    }
    spec.insert("linux".into(), Value::Object(linux));
    if let Some(a) = h.annotations.as_ref().filter(|a| !a.is_empty()) {
        spec.insert("annotations".into(), json!(a));
    }
    serde_json::from_value(Value::Object(spec)).map_err(|e| Error::Internal(e.to_string()))
}

/// The namespace modes with Docker's defaults filled in.
struct Modes<'a> {
    net: &'a str,
    ipc: &'a str,
    pid: &'a str,
    uts: &'a str,
}

impl<'a> Modes<'a> {
    fn of(h: &'a HostConfig) -> Modes<'a> {
        let or =
            |v: &'a Option<String>, d: &'a str| v.as_deref().filter(|s| !s.is_empty()).unwrap_or(d);
        Modes {
            net: or(&h.network_mode, "bridge"),
            ipc: or(&h.ipc_mode, "private"),
            pid: or(&h.pid_mode, ""),
            uts: or(&h.uts_mode, ""),
        }
    }

    /// The container has a network namespace of its own.
    fn private_net(&self) -> bool {
        self.net != "host" && container_of(self.net).is_none()
    }
}

/// `process`, and the init binary to mount when `--init` applies.
fn process<'a>(
    ctx: &Context<'a>,
    sec: &SecurityOptions,
    hostname: &str,
    caps: &[String],
    modes: &Modes,
) -> Result<(Value, Option<&'a Path>)> {
    let (c, h) = (ctx.config, ctx.host);
    let tty = c.tty.unwrap_or(false);
    // `--entrypoint ""` means none.
    let entrypoint: Vec<String> = match c.entrypoint.as_deref() {
        Some([only]) if only.is_empty() => vec![],
        Some(e) => e.to_vec(),
        None => vec![],
    };
    let mut args: Vec<String> = entrypoint
        .into_iter()
        .chain(c.cmd.clone().unwrap_or_default())
        .collect();
    if args.is_empty() {
        return Err(invalid("no command specified"));
    }
    // An init only makes sense as pid 1 of a pid namespace of the container's own.
    let mut init = None;
    if h.init.unwrap_or(false) && modes.pid.is_empty() {
        let path = ctx
            .init_path
            .ok_or_else(|| invalid("--init was requested but no init binary is configured"))?;
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
        init = Some(path);
    }

    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".into());
    }
    for e in c.env.iter().flatten() {
        let key = e.split('=').next().unwrap_or_default();
        let pos = env.iter().position(|d| d.split('=').next() == Some(key));
        match (e.contains('='), pos) {
            (true, Some(i)) => env[i] = e.clone(),
            (true, None) => env.push(e.clone()),
            // "KEY" alone unsets KEY.
            (false, Some(i)) => {
                env.remove(i);
            }
            (false, None) => {}
        }
    }

    let user = ctx.user;
    // A non-root user loses its effective and permitted capabilities at exec anyway;
    // dropping them before exec keeps e.g. CAP_DAC_OVERRIDE from letting it run files
    // it may not execute.
    let (effective, permitted): (&[String], &[String]) = if user.uid == 0 {
        (caps, caps)
    } else {
        (&[], &[])
    };
    let mut p = json!({
        "terminal": tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": args,
        "env": env,
        "cwd": c.working_dir.as_deref().filter(|w| !w.is_empty()).unwrap_or("/"),
        "capabilities": {"bounding": caps, "effective": effective, "permitted": permitted},
        "oomScoreAdj": h.oom_score_adj.unwrap_or(0),
    });
    if sec.no_new_privileges {
        p["noNewPrivileges"] = json!(true);
    }
    if tty {
        if let Some([height, width]) = h.console_size.as_deref() {
            if *height > 0 || *width > 0 {
                p["consoleSize"] = json!({"height": height, "width": width});
            }
        }
    }
    let rlimits: Vec<Value> = h
        .ulimits
        .iter()
        .flatten()
        .map(|u| {
            // -1 is unlimited: RLIM_INFINITY.
            let limit = |v: Option<i64>| v.unwrap_or(0) as u64;
            json!({
                "type": format!("RLIMIT_{}", u.name.as_deref().unwrap_or_default().to_uppercase()),
                "soft": limit(u.soft),
                "hard": limit(u.hard),
            })
        })
        .collect();
    if !rlimits.is_empty() {
        p["rlimits"] = json!(rlimits);
    }
    Ok((p, init))
}

#[derive(serde::Serialize, Debug, Clone)]
struct OciMount {
    destination: String,
    #[serde(rename = "type")]
    typ: String,
    source: String,
    options: Vec<String>,
}

fn oci_mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> OciMount {
    OciMount {
        destination: destination.into(),
        typ: typ.into(),
        source: source.into(),
        options: options.iter().map(|o| o.to_string()).collect(),
    }
}

/// Docker's default mounts, in its order.
fn default_mounts() -> Vec<OciMount> {
    vec![
        oci_mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        oci_mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        oci_mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        oci_mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        oci_mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        oci_mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        oci_mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777"],
        ),
    ]
}

/// A mount the container brings (Docker's "user" mounts: binds, volumes, tmpfs, the
/// /etc files and a shared /dev/shm).
struct UserMount {
    destination: String,
    source: ResolvedSource,
    writable: bool,
    propagation: Option<String>,
    bind: crate::mounts::BindOptions,
}

/// The spec's mounts and, when a bind asks for shared or slave propagation, the
/// rootfs propagation that makes it work.
fn mounts(
    ctx: &Context,
    sec: &SecurityOptions,
    modes: &Modes,
    init: Option<&Path>,
    host_info: &HostInfo,
) -> Result<(Vec<OciMount>, Option<String>)> {
    let h = ctx.host;
    let privileged = h.privileged.unwrap_or(false);
    let readonly = h.readonly_rootfs.unwrap_or(false);

    let mut user: Vec<UserMount> = ctx
        .mounts
        .iter()
        .map(|m| UserMount {
            destination: clean(&m.destination),
            source: m.source.clone(),
            writable: !m.read_only,
            propagation: m.propagation.clone(),
            bind: m.bind_options.clone(),
        })
        .collect();
    let has = |user: &[UserMount], dest: &str| user.iter().any(|m| m.destination == dest);
    let shared_ipc =
        modes.ipc == "shareable" || modes.ipc == "host" || container_of(modes.ipc).is_some();
    if shared_ipc && !has(&user, "/dev/shm") {
        let shm = ctx.shm_path.ok_or_else(|| {
            invalid(format!(
                "ipc mode {:?} needs the path of the shared /dev/shm",
                modes.ipc
            ))
        })?;
        user.push(bind("/dev/shm", shm, true));
    }
    let etc = ctx.etc_files;
    for (dest, path) in [
        ("/etc/resolv.conf", etc.resolv_conf),
        ("/etc/hostname", etc.hostname),
        ("/etc/hosts", etc.hosts),
    ] {
        if let Some(path) = path {
            if !has(&user, dest) {
                user.push(bind(dest, path, !readonly));
            }
        }
    }
    // Parents before children, so a mount never hides one made before it.
    user.sort_by_key(|m| m.destination.matches('/').count());

    let user_dest = |d: &str| user.iter().any(|m| m.destination == d);
    let dev_mounted = user_dest("/dev");
    let mut out: Vec<OciMount> = Vec::new();
    for mut m in default_mounts() {
        if user_dest(&m.destination) || (dev_mounted && m.destination.starts_with("/dev/")) {
            continue;
        }
        if m.destination == "/dev/shm" {
            if modes.ipc == "none" {
                continue;
            }
            let size = h.shm_size.filter(|&s| s > 0).unwrap_or(DEFAULT_SHM_SIZE);
            m.options.push(format!("size={size}"));
        }
        out.push(m);
    }
    if let Some(init) = init {
        if !user_dest(INIT_PATH) {
            out.push(OciMount {
                destination: INIT_PATH.into(),
                typ: "bind".into(),
                source: init.display().to_string(),
                options: vec!["bind".into(), "ro".into()],
            });
        }
    }

    let mut rootfs_propagation: Option<&str> = None;
    for m in &user {
        match &m.source {
            ResolvedSource::Tmpfs {
                size,
                mode,
                options,
            } => {
                out.push(OciMount {
                    destination: m.destination.clone(),
                    typ: "tmpfs".into(),
                    source: "tmpfs".into(),
                    options: tmpfs_options(*size, *mode, options, !m.writable),
                });
            }
            ResolvedSource::Path(source) => {
                let mut options = vec![if m.bind.non_recursive {
                    "bind"
                } else {
                    "rbind"
                }
                .to_string()];
                if !m.writable {
                    let recursive =
                        !m.bind.read_only_non_recursive && host_info.recursive_read_only();
                    if m.bind.read_only_force_recursive && !host_info.recursive_read_only() {
                        return Err(invalid(format!(
                            "{}: rro is not supported: the kernel is older than 5.12",
                            m.destination
                        )));
                    }
                    options.push(if recursive { "rro" } else { "ro" }.into());
                }
                if let Some(p) = m.propagation.as_deref().filter(|p| !p.is_empty()) {
                    check_propagation(source, p)?;
                    match p {
                        "shared" | "rshared" => rootfs_propagation = Some("shared"),
                        "slave" | "rslave" if rootfs_propagation.is_none() => {
                            rootfs_propagation = Some("rslave")
                        }
                        _ => {}
                    }
                    options.push(p.to_string());
                }
                out.push(OciMount {
                    destination: m.destination.clone(),
                    typ: "bind".into(),
                    source: source.display().to_string(),
                    options,
                });
            }
        }
    }

    if readonly {
        for m in out.iter_mut() {
            let kept_rw = ["/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"]
                .contains(&m.destination.as_str());
            if !kept_rw && !user_dest(&m.destination) && !m.options.iter().any(|o| o == "ro") {
                m.options.push("ro".into());
            }
        }
    }
    if privileged {
        clear_read_only(&mut out, |m| m.destination == "/sys");
    }
    if sec.writable_cgroups.unwrap_or(privileged) {
        clear_read_only(&mut out, |m| m.typ == "cgroup");
    }
    Ok((out, rootfs_propagation.map(String::from)))
}

fn bind(dest: &str, source: &Path, writable: bool) -> UserMount {
    UserMount {
        destination: dest.into(),
        source: ResolvedSource::Path(source.to_path_buf()),
        writable,
        propagation: Some("rprivate".into()),
        bind: Default::default(),
    }
}

fn clear_read_only(mounts: &mut [OciMount], which: impl Fn(&OciMount) -> bool) {
    for m in mounts.iter_mut().filter(|m| which(m)) {
        m.options.retain(|o| o != "ro");
    }
}

/// Docker's masked paths.
fn default_masked_paths(host_info: &HostInfo) -> Vec<String> {
    let mut paths: Vec<String> = [
        "/proc/acpi",
        "/proc/asound",
        "/proc/interrupts",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/sys/devices/virtual/powercap",
        "/sys/firmware",
    ]
    .map(String::from)
    .to_vec();
    paths.extend(host_info.thermal_throttle.iter().cloned());
    paths
}

const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn linux(
    ctx: &Context,
    sec: &SecurityOptions,
    modes: &Modes,
    caps: &[String],
    host_info: &HostInfo,
) -> Result<Map<String, Value>> {
    let (c, h) = (ctx.config, ctx.host);
    let privileged = h.privileged.unwrap_or(false);
    let mut linux = Map::new();

    let parent = h
        .cgroup_parent
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(if ctx.cgroup_parent.is_empty() {
            DEFAULT_CGROUP_PARENT
        } else {
            ctx.cgroup_parent
        });
    linux.insert(
        "cgroupsPath".into(),
        json!(clean(&format!("{parent}/{}", ctx.id))),
    );

    linux.insert("namespaces".into(), namespaces(ctx, modes, host_info)?);

    let masked = match &h.masked_paths {
        Some(list) => list.clone(),
        None if privileged => vec![],
        None => default_masked_paths(host_info),
    };
    let readonly = match &h.readonly_paths {
        Some(list) => list.clone(),
        None if privileged => vec![],
        None => DEFAULT_READONLY_PATHS.map(String::from).to_vec(),
    };
    if !masked.is_empty() {
        linux.insert("maskedPaths".into(), json!(masked));
    }
    if !readonly.is_empty() {
        linux.insert("readonlyPaths".into(), json!(readonly));
    }

    let (devices, device_rules) = devices(h)?;
    linux.insert("devices".into(), json!(devices));
    linux.insert("resources".into(), resources(h, device_rules, host_info)?);

    let mut sysctl = Map::new();
    if let Some(d) = c.domainname.as_deref().filter(|d| !d.is_empty()) {
        sysctl.insert("kernel.domainname".into(), json!(d));
    }
    if modes.private_net() {
        // Ping without CAP_NET_RAW and ports below 1024 without CAP_NET_BIND_SERVICE:
        // the container's own network namespace makes both harmless.
        if host_info.ping_group_range && !host_info.user_namespace {
            sysctl.insert("net.ipv4.ping_group_range".into(), json!("0 2147483647"));
        }
        if host_info.unprivileged_port_start {
            sysctl.insert("net.ipv4.ip_unprivileged_port_start".into(), json!("0"));
        }
    }
    for (k, v) in h.sysctls.iter().flatten() {
        sysctl.insert(k.clone(), json!(v));
    }
    linux.insert("sysctl".into(), Value::Object(sysctl));

    if let Some(seccomp) = seccomp(ctx, sec, caps, host_info)? {
        linux.insert(
            "seccomp".into(),
            serde_json::to_value(seccomp).map_err(|e| Error::Internal(e.to_string()))?,
        );
    }
    Ok(linux)
}

fn namespaces(ctx: &Context, modes: &Modes, host_info: &HostInfo) -> Result<Value> {
    let h = ctx.host;
    let paths = &ctx.namespace_paths;
    let joined = |kind: &str, path: &Option<PathBuf>, mode: &str| -> Result<Value> {
        let path = path.as_ref().ok_or_else(|| {
            invalid(format!(
                "{kind} mode {mode:?} needs the other container's namespace path"
            ))
        })?;
        Ok(json!({"type": kind, "path": path}))
    };
    let new = |kind: &str| json!({"type": kind});
    let mut ns = vec![new("mount")];
    match modes.net {
        "host" => {}
        m if container_of(m).is_some() => ns.push(joined("network", &paths.network, m)?),
        _ => ns.push(new("network")),
    }
    if host_info.time_namespace {
        ns.push(new("time"));
    }
    if modes.uts != "host" {
        ns.push(new("uts"));
    }
    match modes.pid {
        "host" => {}
        m if container_of(m).is_some() => ns.push(joined("pid", &paths.pid, m)?),
        _ => ns.push(new("pid")),
    }
    match modes.ipc {
        "host" => {}
        m if container_of(m).is_some() => ns.push(joined("ipc", &paths.ipc, m)?),
        _ => ns.push(new("ipc")),
    }
    // Private on cgroup v2 hosts; on v1 Docker keeps the host's (always so when privileged).
    let private_cgroupns = match h.cgroupns_mode.unwrap_or(HostConfigCgroupnsModeEnum::EMPTY) {
        HostConfigCgroupnsModeEnum::PRIVATE => true,
        HostConfigCgroupnsModeEnum::HOST => false,
        HostConfigCgroupnsModeEnum::EMPTY => host_info.cgroup_v2,
    };
    if private_cgroupns {
        ns.push(new("cgroup"));
    }
    Ok(json!(ns))
}

/// A device node to create: the OCI `linux.devices` entry.
fn device_entry(path: &str, meta: &std::fs::Metadata) -> Option<Value> {
    let ft = meta.file_type();
    let typ = if ft.is_block_device() {
        "b"
    } else if ft.is_char_device() {
        "c"
    } else if ft.is_fifo() {
        "p"
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(json!({
        "path": path,
        "type": typ,
        "major": rustix::fs::major(rdev),
        "minor": rustix::fs::minor(rdev),
        "fileMode": meta.mode() & 0o7777,
        "uid": meta.uid(),
        "gid": meta.gid(),
    }))
}

/// The device nodes and cgroup device rules: Docker's allow list plus `--device` and
/// `--device-cgroup-rule`; everything for privileged containers.
fn devices(h: &HostConfig) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut devices = Vec::new();
    let mut rules = Vec::new();
    let privileged = h.privileged.unwrap_or(false);
    if privileged {
        devices.extend(host_devices(Path::new("/dev"))?);
        rules.push(json!({"allow": true, "access": "rwm"}));
    } else {
        rules.push(json!({"allow": false, "access": "rwm"}));
        for (major, minor) in [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)] {
            rules.push(json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}));
        }
        // fuse stays denied unless asked for.
        rules
            .push(json!({"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
    }
    for d in h.devices.iter().flatten() {
        let on_host = d.path_on_host.as_deref().unwrap_or_default();
        let in_container = d
            .path_in_container
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(on_host);
        let perms = d
            .cgroup_permissions
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("rwm");
        // Privileged containers already have every host device at its own path.
        if privileged && on_host == in_container {
            continue;
        }
        for dev in devices_from_path(Path::new(on_host), in_container)? {
            if !privileged {
                rules.push(json!({"allow": true, "type": dev["type"], "major": dev["major"], "minor": dev["minor"], "access": perms}));
            }
            devices.push(dev);
        }
    }
    if !privileged {
        for rule in h.device_cgroup_rules.iter().flatten() {
            let (typ, major, minor, access) = parse_device_cgroup_rule(rule)?;
            let mut r = json!({"allow": true, "type": typ.to_string(), "access": access});
            if let Some(m) = major {
                r["major"] = json!(m);
            }
            if let Some(m) = minor {
                r["minor"] = json!(m);
            }
            rules.push(r);
        }
    }
    Ok((devices, rules))
}

/// `--device`: a device node, or a directory whose device nodes all come along.
fn devices_from_path(on_host: &Path, in_container: &str) -> Result<Vec<Value>> {
    let err = |e: std::io::Error| Error::Device {
        path: on_host.to_path_buf(),
        source: e,
    };
    let resolved = match std::fs::symlink_metadata(on_host) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(on_host).map_err(err)?,
        Ok(_) => on_host.to_path_buf(),
        Err(e) => return Err(err(e)),
    };
    let meta = std::fs::symlink_metadata(&resolved).map_err(err)?;
    if let Some(d) = device_entry(in_container, &meta) {
        return Ok(vec![d]);
    }
    if !meta.is_dir() {
        return Err(err(std::io::Error::other("not a device node")));
    }
    let mut found = Vec::new();
    walk_devices(&resolved, &resolved, in_container, &mut found);
    if found.is_empty() {
        return Err(err(std::io::Error::other(
            "no device nodes in this directory",
        )));
    }
    Ok(found)
}

fn walk_devices(dir: &Path, base: &Path, in_container: &str, out: &mut Vec<Value>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk_devices(&path, base, in_container, out);
        } else if let Ok(rel) = path.strip_prefix(base) {
            let target = format!("{}/{}", in_container.trim_end_matches('/'), rel.display());
            out.extend(device_entry(&target, &meta));
        }
    }
}

/// Every device node under the host's /dev, as Docker gives privileged containers
/// (not pts, shm, mqueue, fd, the console or fifos).
fn host_devices(dev: &Path) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dev).map_err(|e| Error::HostDevices {
        path: dev.to_path_buf(),
        source: e,
    })?;
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if [".lxc", ".lxd-mounts", ".udev", "fd", "mqueue", "pts", "shm"]
                .iter()
                .any(|n| name == *n)
            {
                continue;
            }
            out.extend(host_devices(&path)?);
        } else if name != "console" && !meta.file_type().is_fifo() {
            out.extend(device_entry(&path.display().to_string(), &meta));
        }
    }
    Ok(out)
}

/// Major and minor numbers of a block device, for blkio limits.
fn block_device(path: &str) -> Result<(u32, u32)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Device {
        path: path.into(),
        source: e,
    })?;
    Ok((
        rustix::fs::major(meta.rdev()),
        rustix::fs::minor(meta.rdev()),
    ))
}

fn resources(h: &HostConfig, device_rules: Vec<Value>, host_info: &HostInfo) -> Result<Value> {
    let mut r = Map::new();
    r.insert("devices".into(), json!(device_rules));

    let mut memory = Map::new();
    let limit = h.memory.unwrap_or(0);
    if limit > 0 {
        memory.insert("limit".into(), json!(limit));
        // Docker's default: as much swap as memory (memory+swap = twice the limit).
        match h.memory_swap.unwrap_or(0) {
            0 => {
                memory.insert("swap".into(), json!(limit.saturating_mul(2)));
            }
            s if s > 0 => {
                memory.insert("swap".into(), json!(s));
            }
            _ => {} // -1: unlimited swap
        }
    }
    if let Some(res) = h.memory_reservation.filter(|&r| r > 0) {
        memory.insert("reservation".into(), json!(res));
    }
    // Neither knob exists on cgroup v2: Docker drops them there.
    if !host_info.cgroup_v2 {
        if let Some(s) = h.memory_swappiness.filter(|&s| s >= 0) {
            memory.insert("swappiness".into(), json!(s));
        }
        memory.insert(
            "disableOOMKiller".into(),
            json!(h.oom_kill_disable.unwrap_or(false)),
        );
    }
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }

    let mut cpu = Map::new();
    if let Some(shares) = h.cpu_shares.filter(|&s| s > 0) {
        cpu.insert("shares".into(), json!(shares));
    }
    if let Some(cpus) = h.cpuset_cpus.as_deref().filter(|s| !s.is_empty()) {
        cpu.insert("cpus".into(), json!(cpus));
    }
    if let Some(mems) = h.cpuset_mems.as_deref().filter(|s| !s.is_empty()) {
        cpu.insert("mems".into(), json!(mems));
    }
    if let Some(nano) = h.nano_cpus.filter(|&n| n > 0) {
        const PERIOD: i64 = 100_000;
        cpu.insert("period".into(), json!(PERIOD));
        cpu.insert("quota".into(), json!(nano * PERIOD / 1_000_000_000));
    }
    if let Some(p) = h.cpu_period.filter(|&p| p != 0) {
        cpu.insert("period".into(), json!(p));
    }
    if let Some(q) = h.cpu_quota.filter(|&q| q != 0) {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(p) = h.cpu_realtime_period.filter(|&p| p != 0) {
        cpu.insert("realtimePeriod".into(), json!(p));
    }
    if let Some(rt) = h.cpu_realtime_runtime.filter(|&r| r != 0) {
        cpu.insert("realtimeRuntime".into(), json!(rt));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }

    if let Some(limit) = h.pids_limit {
        // 0 and negative mean unlimited, which the runtime spells -1.
        r.insert(
            "pids".into(),
            json!({"limit": if limit <= 0 { -1 } else { limit }}),
        );
    }

    let mut blkio = Map::new();
    if let Some(w) = h.blkio_weight.filter(|&w| w > 0) {
        blkio.insert("weight".into(), json!(w));
    }
    let weights = h
        .blkio_weight_device
        .iter()
        .flatten()
        .map(|d| {
            let (major, minor) = block_device(d.path.as_deref().unwrap_or_default())?;
            Ok(json!({"major": major, "minor": minor, "weight": d.weight.unwrap_or(0)}))
        })
        .collect::<Result<Vec<_>>>()?;
    if !weights.is_empty() {
        blkio.insert("weightDevice".into(), json!(weights));
    }
    for (key, list) in [
        ("throttleReadBpsDevice", &h.blkio_device_read_bps),
        ("throttleWriteBpsDevice", &h.blkio_device_write_bps),
        ("throttleReadIOPSDevice", &h.blkio_device_read_iops),
        ("throttleWriteIOPSDevice", &h.blkio_device_write_iops),
    ] {
        let devices = list
            .iter()
            .flatten()
            .map(|d| {
                let (major, minor) = block_device(d.path.as_deref().unwrap_or_default())?;
                Ok(json!({"major": major, "minor": minor, "rate": d.rate.unwrap_or(0)}))
            })
            .collect::<Result<Vec<_>>>()?;
        if !devices.is_empty() {
            blkio.insert(key.into(), json!(devices));
        }
    }
    r.insert("blockIO".into(), Value::Object(blkio));
    Ok(Value::Object(r))
}

/// Docker's choice of profile: none when unconfined (or privileged without an explicit
/// profile), else the container's, the daemon's, or the built-in default.
fn seccomp(
    ctx: &Context,
    sec: &SecurityOptions,
    caps: &[String],
    host_info: &HostInfo,
) -> Result<Option<oci_spec::runtime::LinuxSeccomp>> {
    let privileged = ctx.host.privileged.unwrap_or(false);
    let explicit: Option<&[u8]> = match sec.seccomp.as_deref() {
        Some("unconfined") => return Ok(None),
        Some("builtin") => Some(crate::seccomp::DEFAULT_PROFILE),
        Some(json) => Some(json.as_bytes()),
        None => None,
    };
    if privileged && explicit.is_none() {
        return Ok(None);
    }
    if !host_info.seccomp {
        if explicit.is_some_and(|p| p != crate::seccomp::DEFAULT_PROFILE) {
            return Err(invalid(
                "seccomp is not enabled in your kernel, cannot run a custom seccomp profile",
            ));
        }
        return Ok(None);
    }
    let profile = explicit
        .or(ctx.seccomp_profile)
        .unwrap_or(crate::seccomp::DEFAULT_PROFILE);
    crate::seccomp::to_oci(profile, caps, host_info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::{mount_requests, BindOptions};
    use std::collections::HashMap;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn root() -> User {
        User {
            uid: 0,
            gid: 0,
            additional_gids: vec![0],
            home: Some("/root".into()),
        }
    }

    fn config() -> ContainerConfig {
        ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            env: Some(vec![format!("PATH={DEFAULT_PATH}")]),
            ..Default::default()
        }
    }

    struct Case {
        config: ContainerConfig,
        host: HostConfig,
        user: User,
        info: HostInfo,
        shm: Option<PathBuf>,
        ns: NamespacePaths,
        init: Option<PathBuf>,
        daemon_profile: Option<Vec<u8>>,
    }

    impl Case {
        fn new(host: HostConfig) -> Case {
            Case {
                config: config(),
                host,
                user: root(),
                info: HostInfo::reference(),
                shm: None,
                ns: NamespacePaths::default(),
                init: None,
                daemon_profile: None,
            }
        }

        fn try_build(&self) -> Result<Value> {
            let mounts: Vec<ResolvedMount> = mount_requests(&self.config, &self.host)?
                .iter()
                .map(|m| m.resolve(Some(Path::new("/volumes/v"))))
                .collect::<Result<_>>()?;
            let ctx = Context {
                id: ID,
                rootfs: Path::new("/rootfs"),
                config: &self.config,
                host: &self.host,
                user: &self.user,
                mounts: &mounts,
                etc_files: EtcFiles {
                    hostname: Some(Path::new("/c/hostname")),
                    hosts: Some(Path::new("/c/hosts")),
                    resolv_conf: Some(Path::new("/c/resolv.conf")),
                },
                shm_path: self.shm.as_deref(),
                namespace_paths: self.ns.clone(),
                cgroup_parent: "",
                init_path: self.init.as_deref(),
                seccomp_profile: self.daemon_profile.as_deref(),
            };
            Ok(serde_json::to_value(build_with(&ctx, &self.info)?).unwrap())
        }

        fn build(&self) -> Value {
            self.try_build().unwrap()
        }
    }

    fn dests(spec: &Value) -> Vec<String> {
        spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap().to_string())
            .collect()
    }

    fn mount<'a>(spec: &'a Value, dest: &str) -> &'a Value {
        spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == dest)
            .unwrap()
    }

    fn options(spec: &Value, dest: &str) -> Vec<String> {
        serde_json::from_value(mount(spec, dest)["options"].clone()).unwrap()
    }

    fn ns_types(spec: &Value) -> Vec<String> {
        spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect()
    }

    fn sorted(v: &Value) -> Vec<String> {
        let mut list: Vec<String> = serde_json::from_value(v.clone()).unwrap_or_default();
        list.sort();
        list
    }

    #[test]
    fn docker_defaults() {
        let s = Case::new(HostConfig::default()).build();
        assert_eq!(s["hostname"], "0123456789ab");
        assert_eq!(s["process"]["args"], json!(["sh"]));
        assert_eq!(
            s["process"]["env"],
            json!([format!("PATH={DEFAULT_PATH}"), "HOSTNAME=0123456789ab"])
        );
        assert_eq!(s["process"]["cwd"], "/");
        assert_eq!(s["process"]["terminal"], false);
        assert_eq!(s["process"]["oomScoreAdj"], 0);
        assert!(s["process"].get("noNewPrivileges").is_none());
        let mut default_caps: Vec<String> = crate::caps::DEFAULT.map(String::from).to_vec();
        default_caps.sort();
        for set in ["bounding", "effective", "permitted"] {
            assert_eq!(
                sorted(&s["process"]["capabilities"][set]),
                default_caps,
                "{set}"
            );
        }
        assert!(s["process"]["capabilities"].get("inheritable").is_none());
        assert!(s["process"]["capabilities"].get("ambient").is_none());
        assert_eq!(s["root"], json!({"path": "/rootfs", "readonly": false}));
        assert_eq!(
            dests(&s),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm",
                "/etc/resolv.conf",
                "/etc/hostname",
                "/etc/hosts"
            ]
        );
        assert_eq!(
            options(&s, "/dev/shm"),
            ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
        );
        assert_eq!(options(&s, "/etc/hosts"), ["rbind", "rprivate"]);
        assert_eq!(
            options(&s, "/sys/fs/cgroup"),
            ["ro", "nosuid", "noexec", "nodev"]
        );
        assert_eq!(
            ns_types(&s),
            ["mount", "network", "time", "uts", "pid", "ipc", "cgroup"]
        );
        assert_eq!(s["linux"]["cgroupsPath"], format!("/berth/{ID}"));
        assert_eq!(s["linux"]["maskedPaths"].as_array().unwrap().len(), 12);
        assert_eq!(s["linux"]["readonlyPaths"].as_array().unwrap().len(), 5);
        assert_eq!(
            s["linux"]["sysctl"],
            json!({"net.ipv4.ping_group_range": "0 2147483647", "net.ipv4.ip_unprivileged_port_start": "0"})
        );
        let rules = s["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules.len(), 8);
        assert_eq!(rules[0], json!({"allow": false, "access": "rwm"}));
        assert_eq!(
            rules[7],
            json!({"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
        );
        assert!(
            s["linux"]["resources"].get("memory").is_none(),
            "cgroup v2: no OOM-killer switch"
        );
        assert_eq!(
            s["linux"]["devices"],
            json!([]),
            "no devices beyond the runtime's defaults"
        );
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(s.get("annotations").is_none() && s.get("hooks").is_none());
    }

    #[test]
    fn cgroup_v1_host() {
        let mut case = Case::new(HostConfig::default());
        case.info = HostInfo {
            cgroup_v2: false,
            time_namespace: false,
            ..HostInfo::reference()
        };
        let s = case.build();
        assert_eq!(ns_types(&s), ["mount", "network", "uts", "pid", "ipc"]);
        assert_eq!(
            s["linux"]["resources"]["memory"],
            json!({"disableOOMKiller": false})
        );
        case.host.cgroupns_mode = Some(HostConfigCgroupnsModeEnum::PRIVATE);
        assert!(ns_types(&case.build()).contains(&"cgroup".to_string()));
    }

    #[test]
    fn run_options() {
        let mut case = Case::new(HostConfig {
            cap_add: Some(vec!["net_admin".into()]),
            cap_drop: Some(vec!["ALL".into()]),
            memory: Some(64 << 20),
            nano_cpus: Some(1_500_000_000),
            pids_limit: Some(10),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([("/run".into(), String::new())])),
            console_size: Some(vec![24, 80]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ulimits: Some(vec![bollard_stubs::models::ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(1024),
                hard: Some(-1),
            }]),
            oom_score_adj: Some(500),
            ..Default::default()
        });
        case.config.tty = Some(true);
        case.config.working_dir = Some("/srv".into());
        case.user = User {
            uid: 65534,
            gid: 65534,
            additional_gids: vec![65534],
            home: None,
        };
        let s = case.build();
        let p = &s["process"];
        assert_eq!(p["terminal"], true);
        assert_eq!(p["consoleSize"], json!({"height": 24, "width": 80}));
        assert_eq!(p["env"][2], "TERM=xterm");
        assert_eq!(p["cwd"], "/srv");
        assert_eq!(
            p["user"],
            json!({"uid": 65534, "gid": 65534, "additionalGids": [65534]})
        );
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_NET_ADMIN"]));
        assert_eq!(
            p["capabilities"]["effective"],
            json!([]),
            "non-root: dropped before exec"
        );
        assert_eq!(p["noNewPrivileges"], true);
        assert_eq!(p["oomScoreAdj"], 500);
        assert_eq!(
            p["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": u64::MAX}])
        );
        let r = &s["linux"]["resources"];
        assert_eq!(r["memory"], json!({"limit": 64 << 20, "swap": 128 << 20}));
        assert_eq!(r["cpu"], json!({"period": 100000, "quota": 150000}));
        assert_eq!(r["pids"], json!({"limit": 10}));
        assert_eq!(s["root"]["readonly"], true);
        assert_eq!(
            options(&s, "/run"),
            ["noexec", "nosuid", "nodev", "rprivate"]
        );
        assert_eq!(options(&s, "/etc/hosts"), ["rbind", "rro", "rprivate"]);
        assert_eq!(
            options(&s, "/sys/fs/cgroup"),
            ["ro", "nosuid", "noexec", "nodev"]
        );
        assert_eq!(
            options(&s, "/dev/shm"),
            ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
            "/dev/shm stays writable"
        );
        assert!(options(&s, "/dev/mqueue").iter().all(|o| o != "ro"));
        // Seccomp follows the capabilities: no chroot without CAP_SYS_CHROOT.
        let names: Vec<String> = s["linux"]["seccomp"]["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| sorted(&r["names"]))
            .collect();
        assert!(!names.contains(&"chroot".to_string()));
    }

    #[test]
    fn swap_and_pids_semantics() {
        let swap = |mem, swap| {
            let s = Case::new(HostConfig {
                memory: Some(mem),
                memory_swap: swap,
                ..Default::default()
            })
            .build();
            s["linux"]["resources"]["memory"].clone()
        };
        assert_eq!(swap(64 << 20, Some(-1)), json!({"limit": 64 << 20}));
        assert_eq!(
            swap(64 << 20, Some(100 << 20)),
            json!({"limit": 64 << 20, "swap": 100 << 20})
        );
        let pids = |l| {
            Case::new(HostConfig {
                pids_limit: Some(l),
                ..Default::default()
            })
            .build()["linux"]["resources"]["pids"]
                .clone()
        };
        assert_eq!(pids(0), json!({"limit": -1}));
        assert_eq!(pids(-1), json!({"limit": -1}));
        let cpu = Case::new(HostConfig {
            cpu_shares: Some(512),
            cpu_period: Some(50000),
            cpu_quota: Some(25000),
            cpuset_cpus: Some("0-1".into()),
            cpuset_mems: Some("0".into()),
            blkio_weight: Some(300),
            ..Default::default()
        })
        .build();
        assert_eq!(
            cpu["linux"]["resources"]["cpu"],
            json!({"shares": 512, "period": 50000, "quota": 25000, "cpus": "0-1", "mems": "0"})
        );
        assert_eq!(cpu["linux"]["resources"]["blockIO"], json!({"weight": 300}));
    }

    #[test]
    fn privileged() {
        let mut case = Case::new(HostConfig {
            privileged: Some(true),
            readonly_rootfs: Some(true),
            ..Default::default()
        });
        case.info.capabilities = vec!["CAP_CHOWN".into(), "CAP_SYS_ADMIN".into()];
        let s = case.build();
        assert_eq!(
            sorted(&s["process"]["capabilities"]["bounding"]),
            ["CAP_CHOWN", "CAP_SYS_ADMIN"]
        );
        assert!(s["linux"].get("seccomp").is_none());
        assert!(
            s["linux"].get("maskedPaths").is_none() && s["linux"].get("readonlyPaths").is_none()
        );
        assert_eq!(options(&s, "/sys"), ["nosuid", "noexec", "nodev"]);
        assert_eq!(options(&s, "/sys/fs/cgroup"), ["nosuid", "noexec", "nodev"]);
        assert_eq!(
            s["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        let devices = s["linux"]["devices"].as_array().unwrap();
        assert!(devices
            .iter()
            .any(|d| d["path"] == "/dev/null" && d["major"] == 1 && d["minor"] == 3));
        assert!(devices
            .iter()
            .all(|d| !d["path"].as_str().unwrap().starts_with("/dev/pts/")));
        // An explicit profile still applies.
        case.host.security_opt = Some(vec!["seccomp=builtin".into()]);
        assert!(case.build()["linux"].get("seccomp").is_some());
    }

    #[test]
    fn namespace_modes() {
        let mut case = Case::new(HostConfig {
            network_mode: Some("host".into()),
            pid_mode: Some("host".into()),
            ipc_mode: Some("host".into()),
            uts_mode: Some("host".into()),
            cgroupns_mode: Some(HostConfigCgroupnsModeEnum::HOST),
            ..Default::default()
        });
        case.shm = Some("/dev/shm".into());
        let s = case.build();
        assert_eq!(ns_types(&s), ["mount", "time"]);
        assert!(s.get("hostname").is_none());
        assert_eq!(
            s["process"]["env"][1], "HOSTNAME=host",
            "host network: the host's name"
        );
        assert_eq!(
            s["linux"]["sysctl"],
            json!({}),
            "no network sysctls in the host's namespace"
        );
        assert_eq!(mount(&s, "/dev/shm")["source"], "/dev/shm");
        assert_eq!(mount(&s, "/dev/shm")["type"], "bind");

        let mut case = Case::new(HostConfig {
            network_mode: Some("container:web".into()),
            pid_mode: Some("container:web".into()),
            ipc_mode: Some("container:web".into()),
            ..Default::default()
        });
        let e = case.try_build().unwrap_err().to_string();
        assert!(e.contains("needs the path of the shared /dev/shm"), "{e}");
        case.shm = Some("/c/web/shm".into());
        assert!(case
            .try_build()
            .unwrap_err()
            .to_string()
            .contains("namespace path"));
        case.ns = NamespacePaths {
            network: Some("/proc/7/ns/net".into()),
            ipc: Some("/proc/7/ns/ipc".into()),
            pid: Some("/proc/7/ns/pid".into()),
        };
        let s = case.build();
        let ns = s["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network", "path": "/proc/7/ns/net"})));
        assert!(ns.contains(&json!({"type": "pid", "path": "/proc/7/ns/pid"})));
        assert!(ns.contains(&json!({"type": "ipc", "path": "/proc/7/ns/ipc"})));
        assert_eq!(s["linux"]["sysctl"], json!({}));

        let s = Case::new(HostConfig {
            ipc_mode: Some("none".into()),
            ..Default::default()
        })
        .build();
        assert!(!dests(&s).contains(&"/dev/shm".to_string()));
    }

    #[test]
    fn user_mounts_replace_defaults_and_sort_by_depth() {
        let case = Case::new(HostConfig {
            binds: Some(vec![
                "/host/hosts:/etc/hosts:ro".into(),
                "/host/deep:/a/b/c".into(),
                "/host/a:/a".into(),
            ]),
            tmpfs: Some(HashMap::from([("/dev/shm".into(), "size=1g".into())])),
            readonly_rootfs: Some(true),
            ..Default::default()
        });
        let s = case.build();
        let d = dests(&s);
        assert_eq!(d.iter().filter(|x| *x == "/dev/shm").count(), 1);
        assert_eq!(mount(&s, "/dev/shm")["source"], "tmpfs");
        assert_eq!(
            options(&s, "/dev/shm"),
            ["noexec", "nosuid", "nodev", "rprivate", "size=1g"]
        );
        assert_eq!(mount(&s, "/etc/hosts")["source"], "/host/hosts");
        assert_eq!(
            options(&s, "/a"),
            ["rbind", "rprivate"],
            "user mounts keep their own mode on a read-only root"
        );
        let pos = |x: &str| d.iter().position(|y| y == x).unwrap();
        assert!(pos("/a") < pos("/a/b/c") && pos("/a") < pos("/etc/hosts"));

        let s = Case::new(HostConfig {
            mounts: Some(vec![bollard_stubs::models::Mount {
                typ: Some(bollard_stubs::models::MountTypeEnum::TMPFS),
                target: Some("/dev".into()),
                ..Default::default()
            }]),
            ..Default::default()
        })
        .build();
        let d = dests(&s);
        assert!(
            !d.iter().any(|x| x.starts_with("/dev/")),
            "a user /dev replaces everything below it: {d:?}"
        );
    }

    #[test]
    fn bind_options_and_volumes() {
        let mounts = [
            ResolvedMount {
                destination: "/nr".into(),
                source: ResolvedSource::Path("/src".into()),
                read_only: true,
                propagation: Some("rprivate".into()),
                bind_options: BindOptions {
                    non_recursive: true,
                    read_only_non_recursive: true,
                    ..Default::default()
                },
            },
            ResolvedMount {
                destination: "/vol".into(),
                source: ResolvedSource::Path("/volumes/v".into()),
                read_only: true,
                propagation: None,
                bind_options: BindOptions::default(),
            },
        ];
        let c = config();
        let h = HostConfig::default();
        let user = root();
        let ctx = Context {
            id: ID,
            rootfs: Path::new("/r"),
            config: &c,
            host: &h,
            user: &user,
            mounts: &mounts,
            etc_files: EtcFiles::default(),
            shm_path: None,
            namespace_paths: NamespacePaths::default(),
            cgroup_parent: "/custom",
            init_path: None,
            seccomp_profile: None,
        };
        let s = serde_json::to_value(build_with(&ctx, &HostInfo::reference()).unwrap()).unwrap();
        assert_eq!(options(&s, "/nr"), ["bind", "ro", "rprivate"]);
        assert_eq!(options(&s, "/vol"), ["rbind", "rro"]);
        assert_eq!(s["linux"]["cgroupsPath"], format!("/custom/{ID}"));
        let old = HostInfo {
            kernel: (5, 10),
            ..HostInfo::reference()
        };
        let s = serde_json::to_value(build_with(&ctx, &old).unwrap()).unwrap();
        assert_eq!(options(&s, "/vol"), ["rbind", "ro"], "no rro before 5.12");
        assert!(!dests(&s).contains(&"/etc/hosts".to_string()));
    }

    #[test]
    fn init_process() {
        let mut case = Case::new(HostConfig {
            init: Some(true),
            ..Default::default()
        });
        assert!(case
            .try_build()
            .unwrap_err()
            .to_string()
            .contains("no init binary"));
        case.init = Some("/usr/libexec/berth-init".into());
        let s = case.build();
        assert_eq!(
            s["process"]["args"],
            json!(["/sbin/docker-init", "--", "sh"])
        );
        assert_eq!(
            mount(&s, "/sbin/docker-init")["options"],
            json!(["bind", "ro"])
        );
        assert_eq!(
            mount(&s, "/sbin/docker-init")["source"],
            "/usr/libexec/berth-init"
        );
        case.host.pid_mode = Some("host".into());
        assert_eq!(
            case.build()["process"]["args"],
            json!(["sh"]),
            "no init outside a private pid namespace"
        );
    }

    #[test]
    fn entrypoint_env_hostname_domainname() {
        let mut case = Case::new(HostConfig {
            sysctls: Some(HashMap::from([(
                "net.core.somaxconn".into(),
                "1024".into(),
            )])),
            ..Default::default()
        });
        case.config.entrypoint = Some(vec!["/bin/app".into(), "-v".into()]);
        case.config.cmd = Some(vec!["run".into()]);
        case.config.env = Some(vec![
            "PATH=/opt/bin".into(),
            "HOSTNAME".into(),
            "A=1".into(),
            "A=2".into(),
            "GONE".into(),
        ]);
        case.config.hostname = Some("web".into());
        case.config.domainname = Some("example.com".into());
        let s = case.build();
        assert_eq!(s["process"]["args"], json!(["/bin/app", "-v", "run"]));
        assert_eq!(s["process"]["env"], json!(["PATH=/opt/bin", "A=2"]));
        assert_eq!(s["hostname"], "web");
        assert_eq!(s["linux"]["sysctl"]["kernel.domainname"], "example.com");
        assert_eq!(s["linux"]["sysctl"]["net.core.somaxconn"], "1024");
        case.config.entrypoint = Some(vec!["".into()]);
        case.config.cmd = None;
        assert_eq!(
            case.try_build().unwrap_err().to_string(),
            "no command specified"
        );
    }

    #[test]
    fn devices_and_rules() {
        let s = Case::new(HostConfig {
            devices: Some(vec![bollard_stubs::models::DeviceMapping {
                path_on_host: Some("/dev/null".into()),
                path_in_container: Some("/dev/mynull".into()),
                cgroup_permissions: Some("rw".into()),
            }]),
            device_cgroup_rules: Some(vec!["c 42:* rmw".into()]),
            ..Default::default()
        })
        .build();
        let dev = &s["linux"]["devices"][0];
        assert_eq!(
            (
                dev["path"].as_str(),
                dev["type"].as_str(),
                dev["major"].as_u64(),
                dev["minor"].as_u64()
            ),
            (Some("/dev/mynull"), Some("c"), Some(1), Some(3))
        );
        let rules = s["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(
            rules[8],
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"})
        );
        assert_eq!(
            rules[9],
            json!({"allow": true, "type": "c", "major": 42, "access": "rmw"})
        );

        let e = Case::new(HostConfig {
            devices: Some(vec![bollard_stubs::models::DeviceMapping {
                path_on_host: Some("/dev/nosuchdevice".into()),
                ..Default::default()
            }]),
            ..Default::default()
        })
        .try_build()
        .unwrap_err();
        assert!(e.to_string().contains("\"/dev/nosuchdevice\""), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
    }

    #[test]
    fn seccomp_choices() {
        let with = |opts: &[&str]| {
            Case::new(HostConfig {
                security_opt: Some(opts.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            })
        };
        assert!(with(&["seccomp=unconfined"]).build()["linux"]
            .get("seccomp")
            .is_none());
        let custom = r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#;
        let s = with(&[custom]).build();
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
        let mut daemon = with(&[]);
        daemon.daemon_profile = Some(br#"{"defaultAction":"SCMP_ACT_LOG"}"#.to_vec());
        assert_eq!(
            daemon.build()["linux"]["seccomp"]["defaultAction"],
            "SCMP_ACT_LOG"
        );
        let mut no_kernel = with(&[custom]);
        no_kernel.info.seccomp = false;
        assert!(no_kernel
            .try_build()
            .unwrap_err()
            .to_string()
            .contains("seccomp is not enabled in your kernel"));
        let mut no_kernel = with(&[]);
        no_kernel.info.seccomp = false;
        assert!(no_kernel.build()["linux"].get("seccomp").is_none());
    }

    #[test]
    fn masked_paths_from_the_request() {
        let s = Case::new(HostConfig {
            masked_paths: Some(vec![]),
            readonly_paths: Some(vec!["/proc/x".into()]),
            ..Default::default()
        })
        .build();
        assert!(s["linux"].get("maskedPaths").is_none());
        assert_eq!(s["linux"]["readonlyPaths"], json!(["/proc/x"]));
        let mut case = Case::new(HostConfig::default());
        case.info.thermal_throttle = vec!["/sys/devices/system/cpu/cpu0/thermal_throttle".into()];
        assert_eq!(
            case.build()["linux"]["maskedPaths"]
                .as_array()
                .unwrap()
                .len(),
            13
        );
    }

    #[test]
    fn writable_cgroups_and_annotations() {
        let s = Case::new(HostConfig {
            security_opt: Some(vec!["writable-cgroups=true".into()]),
            annotations: Some(HashMap::from([("org.example/k".into(), "v".into())])),
            ..Default::default()
        })
        .build();
        assert_eq!(options(&s, "/sys/fs/cgroup"), ["nosuid", "noexec", "nodev"]);
        assert_eq!(s["annotations"], json!({"org.example/k": "v"}));
    }
}
