//! Turning the calling process into the container's process: rlimits, security labels,
//! identity, capabilities, no_new_privs, and the final execve. Shared by init and exec.

use crate::error::{Error, Result};
use caps::CapSet;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, PosixRlimitType, Process};
use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What execve needs, computed before any privilege is dropped.
pub struct Command {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::InvalidSpec(format!("{what}: {s:?} contains a NUL byte")))
}

/// Resolves the program like execvp does, in the current root, with the process's PATH.
pub fn command(process: &Process) -> Result<Command> {
    let args = process.args().as_deref().unwrap_or_default();
    let arg0 = args.first().ok_or_else(|| Error::InvalidSpec("process.args: must not be empty".into()))?;
    let env = process.env().as_deref().unwrap_or_default();
    let path = find_executable(arg0, env)?;
    Ok(Command {
        path: CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::InvalidSpec("process.args[0]: NUL byte".into()))?,
        argv: args.iter().map(|a| cstring(a, "process.args")).collect::<Result<_>>()?,
        envp: env.iter().map(|e| cstring(e, "process.env")).collect::<Result<_>>()?,
    })
}

fn find_executable(arg0: &str, env: &[String]) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if arg0.contains('/') {
        return if Path::new(arg0).exists() {
            Ok(PathBuf::from(arg0))
        } else {
            Err(Error::InvalidSpec(format!("exec: {arg0:?}: no such file or directory")))
        };
    }
    let path_var = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    path_var
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(arg0))
        .find(|p| is_exec(p))
        .ok_or_else(|| Error::InvalidSpec(format!("exec: {arg0:?}: executable file not found in $PATH")))
}

/// Applies the process's rlimits to the calling process.
pub fn apply_rlimits(process: &Process) -> Result<()> {
    for r in process.rlimits().as_deref().unwrap_or_default() {
        let resource = rlimit_resource(r.typ());
        let lim = libc::rlimit { rlim_cur: r.soft(), rlim_max: r.hard() };
        // SAFETY: lim is a valid rlimit for the duration of the call.
        let rc = unsafe { libc::prlimit(0, resource, &lim, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(Error::Sys {
                op: format!("set rlimit {} to {}/{}", r.typ(), r.soft(), r.hard()),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType as R;
    match t {
        R::RlimitCpu => libc::RLIMIT_CPU,
        R::RlimitFsize => libc::RLIMIT_FSIZE,
        R::RlimitData => libc::RLIMIT_DATA,
        R::RlimitStack => libc::RLIMIT_STACK,
        R::RlimitCore => libc::RLIMIT_CORE,
        R::RlimitRss => libc::RLIMIT_RSS,
        R::RlimitNproc => libc::RLIMIT_NPROC,
        R::RlimitNofile => libc::RLIMIT_NOFILE,
        R::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        R::RlimitAs => libc::RLIMIT_AS,
        R::RlimitLocks => libc::RLIMIT_LOCKS,
        R::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        R::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        R::RlimitNice => libc::RLIMIT_NICE,
        R::RlimitRtprio => libc::RLIMIT_RTPRIO,
        R::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// The process's scheduler (sched_setattr), I/O priority (ioprio_set) and the final CPU
/// affinity (execCPUAffinity.final), applied to the calling process before exec.
pub fn apply_scheduling(process: &Process) -> Result<()> {
    if let Some(io) = process.io_priority() {
        use oci_spec::runtime::IOPriorityClass as C;
        let class: libc::c_long = match io.class() {
            C::IoprioClassRt => 1,
            C::IoprioClassBe => 2,
            C::IoprioClassIdle => 3,
        };
        if !(0..=7).contains(&io.priority()) {
            return Err(Error::InvalidSpec(format!("process.ioPriority.priority: {} is not in 0..=7", io.priority())));
        }
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        // SAFETY: ioprio_set with integer arguments only.
        let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, (class << 13) | io.priority() as libc::c_long) };
        if rc != 0 {
            return Err(Error::Sys { op: format!("set I/O priority {:?} {}", io.class(), io.priority()), source: std::io::Error::last_os_error() });
        }
    }
    if let Some(sched) = process.scheduler() {
        set_scheduler(sched)?;
    }
    if let Some(cpus) = process.exec_cpu_affinity().as_ref().and_then(|a| a.cpu_affinity_final().clone()) {
        set_affinity(&cpus, "process.execCPUAffinity.final")?;
    }
    Ok(())
}

fn set_scheduler(sched: &oci_spec::runtime::Scheduler) -> Result<()> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let policy = match sched.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in sched.flags().as_deref().unwrap_or_default() {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: sched.nice().unwrap_or(0),
        priority: sched.priority().unwrap_or(0).max(0) as u32,
        runtime: sched.runtime().unwrap_or(0),
        deadline: sched.deadline().unwrap_or(0),
        period: sched.period().unwrap_or(0),
    };
    // SAFETY: attr is a valid sched_attr whose size field matches; it outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc != 0 {
        return Err(Error::Sys { op: format!("set scheduler {:?}", sched.policy()), source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// Pins the calling process to a CPU list like "0-3,6".
pub fn set_affinity(list: &str, field: &str) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) else {
            return Err(Error::InvalidSpec(format!("{field}: {list:?} is not a CPU list")));
        };
        for cpu in a..=b {
            set.set(cpu).map_err(|_| Error::InvalidSpec(format!("{field}: CPU {cpu} is out of range")))?;
        }
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|e| Error::sys(format!("{field}: set CPU affinity {list}"), e))
}

/// AppArmor profile and SELinux label for the next execve; a clear error when the host
/// does not have the LSM that the spec asks for.
pub fn apply_labels(process: &Process) -> Result<()> {
    if let Some(profile) = process.apparmor_profile().as_deref().filter(|p| !p.is_empty()) {
        if !apparmor_enabled() {
            return Err(Error::Unsupported(format!(
                "process.apparmorProfile: {profile:?} requested but AppArmor is not enabled on this host"
            )));
        }
        let attr = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        std::fs::write(attr, format!("exec {profile}")).map_err(|e| Error::io("set apparmor profile", attr, e))?;
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        if !selinux_enabled() {
            return Err(Error::Unsupported(format!(
                "process.selinuxLabel: {label:?} requested but SELinux is not enabled on this host"
            )));
        }
        std::fs::write("/proc/self/attr/exec", label).map_err(|e| Error::io("set selinux label", "/proc/self/attr/exec", e))?;
    }
    Ok(())
}

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.starts_with('Y'))
}

pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

fn to_caps(set: Option<&Capabilities>) -> Result<HashSet<caps::Capability>> {
    set.into_iter()
        .flatten()
        .map(|c| {
            let name = c.to_string();
            let name = if name.starts_with("CAP_") { name } else { format!("CAP_{}", name.to_uppercase()) };
            name.parse::<caps::Capability>().map_err(|_| Error::InvalidSpec(format!("unknown capability {name}")))
        })
        .collect()
}

/// Drops the bounding set, switches to the process's user and groups, then sets the
/// effective, permitted, inheritable and ambient sets (runc's order, so that setuid
/// does not wipe the capabilities we mean to keep).
pub fn set_identity_and_caps(process: &Process) -> Result<()> {
    let c = process.capabilities().as_ref();
    let bounding = to_caps(c.and_then(|c| c.bounding().as_ref()))?;
    let effective = to_caps(c.and_then(|c| c.effective().as_ref()))?;
    let permitted = to_caps(c.and_then(|c| c.permitted().as_ref()))?;
    let inheritable = to_caps(c.and_then(|c| c.inheritable().as_ref()))?;
    let ambient = to_caps(c.and_then(|c| c.ambient().as_ref()))?;
    let capsys = |op: &str, e: caps::errors::CapsError| Error::Sys { op: op.into(), source: std::io::Error::other(e.to_string()) };

    let current = caps::read(None, CapSet::Bounding).map_err(|e| capsys("read bounding set", e))?;
    for cap in current.difference(&bounding) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| capsys("drop bounding capability", e))?;
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };

    let user = process.user();
    let gids: Vec<Gid> = user.additional_gids().as_deref().unwrap_or_default().iter().map(|g| Gid::from_raw(*g)).collect();
    // setgroups is refused in a user namespace whose setgroups file says deny.
    let deny = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if !deny {
        nix::unistd::setgroups(&gids).map_err(|e| Error::sys(format!("setgroups {gids:?}"), e))?;
    }
    let gid = Gid::from_raw(user.gid());
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| Error::sys(format!("setgid {gid}"), e))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| Error::sys(format!("setuid {uid}"), e))?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };

    // Effective must stay a subset of permitted at every step: shrink it first. The
    // inheritable set may only hold what is permitted at the time of the call, so it is
    // set while permitted is still the full set kept across setuid.
    caps::set(None, CapSet::Effective, &effective).map_err(|e| capsys("set effective capabilities", e))?;
    caps::set(None, CapSet::Inheritable, &inheritable).map_err(|e| capsys("set inheritable capabilities", e))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(|e| capsys("set permitted capabilities", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| capsys("clear ambient capabilities", e))?;
    for cap in &ambient {
        // Raising needs the cap in permitted and inheritable; skip what cannot be raised.
        let _ = caps::raise(None, CapSet::Ambient, *cap);
    }
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    Ok(())
}

pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(Error::Sys { op: "set no_new_privs".into(), source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// A pidfd for `pid`: a handle that cannot end up pointing at a recycled pid.
pub fn pidfd_open(pid: libc::pid_t) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Makes the process undumpable, so processes in the container cannot ptrace it or open
/// its /proc files while it still runs our code.
pub fn set_undumpable() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

/// Changes to the process's cwd and checks that it really is inside the container: a cwd
/// like /proc/self/fd/N could otherwise point at a leaked host directory.
pub fn enter_cwd(cwd: &Path) -> Result<()> {
    nix::unistd::chdir(cwd).map_err(|e| Error::path("chdir to process.cwd", cwd, e))?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(Error::InvalidSpec(format!("process.cwd: {} is outside the container root", cwd.display()))),
    }
}

/// Marks every fd from `first` up close-on-exec, and clears the flag below it (the
/// preserved fds), so nothing else of ours leaks into the container.
pub fn close_fds_on_exec(first: i32) -> Result<()> {
    // SAFETY: close_range with integer arguments only.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc != 0 {
        return Err(Error::Sys { op: "close_range".into(), source: std::io::Error::last_os_error() });
    }
    for fd in 3..first {
        // SAFETY: fcntl on an fd number; a closed fd just fails.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    Ok(())
}

/// Replaces the process image; returns only on failure.
pub fn exec(cmd: &Command) -> Error {
    let err = nix::unistd::execve(&cmd.path, &cmd.argv, &cmd.envp).unwrap_err();
    Error::sys(format!("exec {:?}", cmd.path), err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_in_path() {
        let p = find_executable("sh", &["PATH=/nonexistent:/bin".into()]).unwrap();
        assert_eq!(p, Path::new("/bin/sh"));
        let e = find_executable("definitely-not-here", &[]).unwrap_err().to_string();
        assert!(e.contains("executable file not found"), "{e}");
    }

    #[test]
    fn cpu_lists() {
        // The current affinity is always allowed; a malformed list names the field.
        let e = set_affinity("0-x", "process.execCPUAffinity.final").unwrap_err().to_string();
        assert!(e.contains("execCPUAffinity.final") && e.contains("0-x"), "{e}");
    }

    #[test]
    fn capability_names() {
        let set: Capabilities = serde_json::from_value(serde_json::json!(["CAP_SYS_ADMIN", "CAP_KILL"])).unwrap();
        let c = to_caps(Some(&set)).unwrap();
        assert!(c.contains(&caps::Capability::CAP_SYS_ADMIN) && c.contains(&caps::Capability::CAP_KILL));
    }
}
