//! What the container's first process does between clone and execve: set up the rootfs,
//! devices, terminal, masked paths, pivot_root, identity and security, then wait to be
//! started. It reports failures to the runtime over the sync channel.

use crate::error::{Error, Result};
use crate::spec::Bundle;
use crate::sync::{Channel, Tag};
use crate::{devices, hooks, mounts, process, seccomp, terminal};
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::os::fd::OwnedFd;
use std::path::Path;

/// Everything the init process needs; built by the parent before clone.
pub struct InitContext<'a> {
    pub bundle: &'a Bundle,
    pub channel: Channel,
    pub console: Option<OwnedFd>,
    /// The container's state dir, holding exec.fifo; None for `run` (started over the channel).
    pub fifo_dir: Option<OwnedFd>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    pub seccomp: Option<&'a seccomp::Filter>,
    pub new_user: bool,
    pub new_cgroupns: bool,
    pub new_time: bool,
    pub cgroup: &'a berth_cgroups::Cgroup,
}

/// Runs in the cloned child; never returns.
pub fn run(ctx: InitContext) -> ! {
    let channel = ctx.channel.try_clone();
    finish(channel, setup(ctx), "init")
}

/// Reports a setup failure to the runtime and exits. The runtime may be gone already
/// (after `create` returned): then stderr is all we have.
fn finish(channel: Option<Channel>, result: Result<Never>, what: &str) -> ! {
    let err = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if channel.is_none_or(|c| c.send(Tag::Error, err.to_string().as_bytes()).is_err()) {
        eprintln!("berth-runc {what}: {err}");
    }
    exit(127)
}

pub fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing that belong to the parent.
    unsafe { libc::_exit(code) }
}

/// Clears the signal mask inherited from a parent that blocks signals to forward them.
pub fn reset_signals() {
    let empty = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&empty), None);
}

enum Never {}

fn setup(ctx: InitContext) -> Result<Never> {
    reset_signals();
    let spec = &ctx.bundle.spec;
    let linux = spec.linux().as_ref().ok_or_else(|| Error::InvalidSpec("linux: is required".into()))?;
    let proc_ = spec.process().as_ref().ok_or_else(|| Error::InvalidSpec("process: is required".into()))?;
    let state_json = ctx.channel.expect(Tag::Go)?;
    crate::container::join_cgroup_v1(ctx.cgroup)?;

    if ctx.new_user {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into()).map_err(|e| Error::sys("setgid 0 in user namespace", e))?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into()).map_err(|e| Error::sys("setuid 0 in user namespace", e))?;
    }
    if ctx.new_cgroupns {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP).map_err(|e| Error::sys("unshare cgroup namespace", e))?;
    }
    if ctx.new_time {
        nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .map_err(|e| Error::sys("unshare time namespace", e))?;
        if let Some(offsets) = linux.time_offsets() {
            let text: String = offsets
                .iter()
                .map(|(clock, o)| format!("{clock} {} {}\n", o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0)))
                .collect();
            std::fs::write("/proc/self/timens_offsets", text)
                .map_err(|e| Error::io("write time offsets", "/proc/self/timens_offsets", e))?;
        }
    }

    // The rootfs: keep our mounts from propagating to the host, make the rootfs a mount.
    let rootfs = &ctx.bundle.rootfs;
    let propagation = linux
        .rootfs_propagation()
        .as_deref()
        .map(|p| mounts::propagation(p).ok_or_else(|| Error::InvalidSpec(format!("linux.rootfsPropagation: unknown value {p:?}"))))
        .transpose()?;
    let root_prop = match propagation {
        Some(p) if p.contains(MsFlags::MS_SHARED) => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => p | MsFlags::MS_REC,
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    mount(None::<&str>, "/", None::<&str>, root_prop, None::<&str>).map_err(|e| Error::path("make / private", "/", e))?;
    mount(Some(rootfs), rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| Error::path("bind rootfs", rootfs, e))?;
    let root = nix::fcntl::open(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .map_err(|e| Error::path("open rootfs", rootfs, e))?;

    let spec_mounts = spec.mounts().as_deref().unwrap_or_default();
    mounts::mount_all(&root, spec_mounts, ctx.new_cgroupns)?;
    let dev_bound = spec_mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && mounts::parse_options(m.options().as_deref().unwrap_or_default()).is_bind()
    });
    if !dev_bound {
        let mut nodes = devices::defaults();
        for d in linux.devices().as_deref().unwrap_or_default() {
            let n = devices::from_spec(d)?;
            nodes.retain(|x| x.path != n.path);
            nodes.push(n);
        }
        devices::create(&root, &nodes, ctx.new_user)?;
        devices::symlinks(&root)?;
    }

    let hooks = spec.hooks().as_ref();
    let any = |h: Option<&Vec<oci_spec::runtime::Hook>>| h.is_some_and(|v| !v.is_empty());
    if let Some(h) = hooks {
        #[allow(deprecated)]
        let runtime_hooks = any(h.prestart().as_ref()) || any(h.create_runtime().as_ref());
        if runtime_hooks {
            ctx.channel.send(Tag::HooksRequest, &[])?;
            ctx.channel.expect(Tag::HooksDone)?;
        }
        hooks::run("createContainer", h.create_container().as_deref().unwrap_or_default(), &state_json)?;
    }

    let size = proc_.console_size().map(|b| (b.height() as u16, b.width() as u16));
    if let Some(sock) = &ctx.console {
        let pty = terminal::open_pty(&root)?;
        terminal::mount_console(&root, &pty.slave)?;
        terminal::send_master(sock, &pty.master)?;
        terminal::become_stdio(&pty.slave, size)?;
    }

    if let Some(sysctls) = linux.sysctl() {
        for (key, value) in sysctls {
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            std::fs::write(&path, value).map_err(|e| Error::io("write sysctl", &path, e))?;
        }
    }
    mounts::mask_paths(&root, linux.masked_paths().as_deref().unwrap_or_default())?;
    mounts::readonly_paths(&root, linux.readonly_paths().as_deref().unwrap_or_default())?;

    if ctx.no_pivot {
        nix::unistd::fchdir(&root).map_err(|e| Error::path("chdir", rootfs, e))?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(|e| Error::path("move rootfs to /", rootfs, e))?;
        nix::unistd::chroot(".").map_err(|e| Error::path("chroot", rootfs, e))?;
    } else {
        let old_root = nix::fcntl::open("/", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .map_err(|e| Error::path("open", "/", e))?;
        nix::unistd::fchdir(&root).map_err(|e| Error::path("chdir", rootfs, e))?;
        nix::unistd::pivot_root(".", ".").map_err(|e| Error::path("pivot_root", rootfs, e))?;
        // The old root is now stacked over the new one, but "." is still the new root
        // underneath it: step into the old root itself, or the rslave below would land
        // on the container's mounts and undo their propagation settings.
        nix::unistd::fchdir(&old_root).map_err(|e| Error::path("chdir", "old root", e))?;
        drop(old_root);
        // Detach the old root without touching the host.
        mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| Error::path("make old root slave", "/", e))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(|e| Error::path("unmount old root", "/", e))?;
    }
    nix::unistd::chdir("/").map_err(|e| Error::path("chdir", "/", e))?;
    drop(root);
    let newroot = nix::fcntl::open("/", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .map_err(|e| Error::path("open", "/", e))?;
    if let Some(p) = propagation.filter(|p| p.contains(MsFlags::MS_SHARED)) {
        mount(None::<&str>, "/", None::<&str>, p, None::<&str>).map_err(|e| Error::path("set root propagation", "/", e))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        mounts::remount_bind(&newroot, Path::new("/"), MsFlags::MS_RDONLY)?;
    }
    drop(newroot);

    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| Error::sys(format!("set hostname {h:?}"), e))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: pointer and length describe the string's bytes.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Error::Sys { op: format!("set domainname {d:?}"), source: std::io::Error::last_os_error() });
        }
    }
    if let Some(p) = linux.personality() {
        let persona = if matches!(p.domain(), oci_spec::runtime::LinuxPersonalityDomain::PerLinux32) { 0x0008 } else { 0 };
        // SAFETY: personality takes an integer.
        unsafe { libc::personality(persona) };
    }
    start_process(proc_, ctx.seccomp, ctx.preserve_fds, || {
        ctx.channel.send(Tag::Created, &[])?;
        match &ctx.fifo_dir {
            Some(dir) => {
                // Blocks until `start` opens the fifo for reading.
                let fifo = nix::fcntl::openat(dir, crate::state::EXEC_FIFO, OFlag::O_WRONLY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
                    .map_err(|e| Error::sys("open exec fifo", e))?;
                nix::unistd::write(&fifo, b"0").map_err(|e| Error::sys("write exec fifo", e))?;
                // Left open until execve closes it (O_CLOEXEC): `start` reads to EOF, so it
                // runs poststart only after the startContainer hooks and the exec.
                let _ = std::os::fd::IntoRawFd::into_raw_fd(fifo);
            }
            None => {
                ctx.channel.expect(Tag::Start)?;
            }
        }
        if let Some(h) = ctx.bundle.spec.hooks() {
            hooks::run("startContainer", h.start_container().as_deref().unwrap_or_default(), &state_json)?;
        }
        Ok(())
    })
}

/// What init and exec share: labels, limits, identity, seccomp, cwd; then `ready`
/// (report and wait for the go-ahead) and execve.
fn start_process(
    p: &oci_spec::runtime::Process,
    seccomp: Option<&seccomp::Filter>,
    preserve_fds: i32,
    ready: impl FnOnce() -> Result<()>,
) -> Result<Never> {
    process::apply_labels(p)?;
    process::apply_rlimits(p)?;
    process::apply_scheduling(p)?;
    let nnp = p.no_new_privileges().unwrap_or(false);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before the drop.
    if let (false, Some(f)) = (nnp, seccomp) {
        f.load()?;
    }
    process::set_identity_and_caps(p)?;
    if nnp {
        process::set_no_new_privs()?;
    }
    process::enter_cwd(p.cwd())?;
    let cmd = process::command(p)?;
    ready()?;
    if let (true, Some(f)) = (nnp, seccomp) {
        f.load()?;
    }
    process::close_fds_on_exec(3 + preserve_fds)?;
    Err(process::exec(&cmd))
}

/// What an exec'd process needs besides the spec's process.
pub struct ExecContext<'a> {
    pub process: &'a oci_spec::runtime::Process,
    pub channel: Channel,
    pub console: Option<OwnedFd>,
    pub preserve_fds: i32,
    pub seccomp: Option<&'a seccomp::Filter>,
}

/// Runs in the process cloned into a running container's namespaces; never returns.
pub fn run_exec(ctx: ExecContext) -> ! {
    let channel = ctx.channel.try_clone();
    finish(channel, setup_exec(ctx), "exec")
}

fn setup_exec(ctx: ExecContext) -> Result<Never> {
    reset_signals();
    process::set_undumpable();
    ctx.channel.expect(Tag::Go)?;
    if let Some(sock) = &ctx.console {
        // setns into the mount namespace made its root ours: "/" is the container's.
        let root = nix::fcntl::open("/", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .map_err(|e| Error::path("open", "/", e))?;
        let pty = terminal::open_pty(&root)?;
        terminal::send_master(sock, &pty.master)?;
        let size = ctx.process.console_size().map(|b| (b.height() as u16, b.width() as u16));
        terminal::become_stdio(&pty.slave, size)?;
    }
    start_process(ctx.process, ctx.seccomp, ctx.preserve_fds, || Ok(()))
}
