//! Seccomp: compiles the spec's `linux.seccomp` into a BPF program and loads it.
//!
//! All the work happens in [`compile`], in the parent before fork: the spec is validated,
//! libseccomp builds the filter and the BPF program is exported into memory. [`Filter::load`]
//! is then a single `seccomp(2)` call, safe to make in a forked child right before execve
//! (no allocation, no library state).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use crate::error::{Error, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::errno::Errno;
use nix::sys::memfd::{memfd_create, MFdFlags};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

/// Actions `compile` accepts (SCMP_ACT_NOTIFY is not supported yet), as the features
/// document lists them.
pub const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// Argument comparison operators `compile` accepts.
pub const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Filter flags this runtime recognises; see [`supported_flags`] for the ones it can apply.
pub const KNOWN_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// The kernel's limit on the length of a BPF program (BPF_MAXINSNS).
const MAX_INSTRUCTIONS: usize = 4096;

/// Above this many syscall entries libseccomp's binary-tree layout is used: it keeps the
/// per-syscall cost logarithmic for allowlists like Docker's default profile.
const BINARY_TREE_THRESHOLD: usize = 32;

const NOTIFY_UNSUPPORTED: &str = "seccomp notify (SCMP_ACT_NOTIFY) is not supported yet";

/// A compiled filter, ready to load in the container process right before exec.
pub struct Filter {
    /// The BPF program exported by libseccomp.
    program: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* bits passed to seccomp(2).
    flags: libc::c_ulong,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &self.flags)
            .finish()
    }
}

/// Where compiled programs are kept (see [`set_cache_dir`]).
static CACHE_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Keeps compiled programs in `dir` (created 0700, root's), so a process that starts many
/// containers with one profile (Docker's default takes libseccomp ~15 ms) compiles it once.
/// An entry holds the exact profile it was compiled from and is used only for that
/// profile, on the same kernel.
pub fn set_cache_dir(dir: std::path::PathBuf) {
    let _ = CACHE_DIR.set(dir);
}

/// The cache entry's identity: the profile as JSON, the kernel and libseccomp versions.
fn cache_key(seccomp: &LinuxSeccomp) -> Option<Vec<u8>> {
    let mut key = serde_json::to_vec(seccomp).ok()?;
    let uname = nix::sys::utsname::uname().ok()?;
    let v = libseccomp::ScmpVersion::current().ok()?;
    key.extend_from_slice(format!("\n{} {} {}.{}.{}", uname.release().to_string_lossy(), uname.machine().to_string_lossy(), v.major, v.minor, v.micro).as_bytes());
    Some(key)
}

fn cache_path(dir: &std::path::Path, key: &[u8]) -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    dir.join(format!("{:016x}.bpf", h.finish()))
}

/// Entry layout: key length (u32 LE), key, flags (u64 LE), program (8 bytes per instruction).
fn cache_load(path: &std::path::Path, key: &[u8]) -> Option<Filter> {
    let bytes = std::fs::read(path).ok()?;
    let key_len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    if bytes.get(4..4 + key_len)? != key {
        return None;
    }
    let rest = &bytes[4 + key_len..];
    let flags = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as libc::c_ulong;
    let program = &rest[8..];
    if program.is_empty() || program.len() % 8 != 0 {
        return None;
    }
    let program = program
        .chunks_exact(8)
        .map(|c| libc::sock_filter { code: u16::from_ne_bytes([c[0], c[1]]), jt: c[2], jf: c[3], k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]) })
        .collect();
    Some(Filter { program, flags })
}

fn cache_store(dir: &std::path::Path, path: &std::path::Path, key: &[u8], filter: &Filter) {
    use std::os::unix::fs::DirBuilderExt;
    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
    let mut bytes = Vec::with_capacity(12 + key.len() + filter.program.len() * 8);
    bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&(filter.flags as u64).to_le_bytes());
    for i in &filter.program {
        bytes.extend_from_slice(&i.code.to_ne_bytes());
        bytes.extend_from_slice(&[i.jt, i.jf]);
        bytes.extend_from_slice(&i.k.to_ne_bytes());
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, &bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Compiles `seccomp` (validating every action, arch, operator and flag) into a filter,
/// or takes it from the cache when one is set and holds this exact profile.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Filter> {
    let Some(dir) = CACHE_DIR.get() else { return compile_uncached(seccomp) };
    let Some(key) = cache_key(seccomp) else { return compile_uncached(seccomp) };
    let path = cache_path(dir, &key);
    if let Some(filter) = cache_load(&path, &key) {
        return Ok(filter);
    }
    let filter = compile_uncached(seccomp)?;
    cache_store(dir, &path, &key, &filter);
    Ok(filter)
}

fn compile_uncached(seccomp: &LinuxSeccomp) -> Result<Filter> {
    if seccomp.listener_path().is_some() {
        return Err(Error::Unsupported(format!(
            "linux.seccomp.listenerPath: {NOTIFY_UNSUPPORTED}"
        )));
    }
    let default_action = action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let mut ctx = ScmpFilterContext::new(default_action).map_err(|e| {
        Error::Seccomp(format!(
            "linux.seccomp.defaultAction {}: {e}",
            action_name(seccomp.default_action())
        ))
    })?;

    for &arch in seccomp.architectures().iter().flatten() {
        let (name, scmp) = arch_info(arch);
        ctx.add_arch(scmp)
            .map_err(|e| Error::Seccomp(format!("linux.seccomp.architectures: add {name}: {e}")))?;
    }

    let flags = filter_flags(seccomp.flags().as_deref().unwrap_or_default())?;

    let syscalls = seccomp.syscalls().as_deref().unwrap_or_default();
    if syscalls.len() > BINARY_TREE_THRESHOLD {
        // Only a speed hint: older libseccomp lacks it and the filter stays correct without.
        if let Err(e) = ctx.set_ctl_optimize(2) {
            tracing::debug!("seccomp binary tree optimization unavailable: {e}");
        }
    }
    for (i, syscall) in syscalls.iter().enumerate() {
        add_syscall(&mut ctx, i, syscall, default_action)?;
    }

    let program = export(&ctx)?;
    if program.len() > MAX_INSTRUCTIONS {
        return Err(Error::Seccomp(format!(
            "linux.seccomp: the filter has {} instructions, more than the kernel's limit of {MAX_INSTRUCTIONS}",
            program.len()
        )));
    }
    Ok(Filter { program, flags })
}

impl Filter {
    /// Loads the filter into the calling process (needs no_new_privs or CAP_SYS_ADMIN).
    pub fn load(&self) -> Result<()> {
        let len = libc::c_ushort::try_from(self.program.len())
            .map_err(|_| Error::Seccomp("load filter: program too long".into()))?;
        let prog = libc::sock_fprog {
            len,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `len` valid instructions owned by `self`, alive for the
        // whole call; the kernel only reads (copies) the program.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        match rc {
            0 => Ok(()),
            rc if rc > 0 => Err(Error::Seccomp(format!(
                "load filter: thread {rc} could not be synchronized (SECCOMP_FILTER_FLAG_TSYNC)"
            ))),
            _ => match Errno::last() {
                Errno::EACCES => Err(Error::Seccomp(
                    "load filter: permission denied (the process needs no_new_privs or CAP_SYS_ADMIN)".into(),
                )),
                errno => Err(Error::sys("seccomp(SECCOMP_SET_MODE_FILTER)", errno)),
            },
        }
    }

    /// Number of BPF instructions in the compiled program.
    pub fn instructions(&self) -> usize {
        self.program.len()
    }
}

/// Flags from [`KNOWN_FLAGS`] that this runtime and the running kernel can apply.
pub fn supported_flags() -> Vec<&'static str> {
    [
        ("SECCOMP_FILTER_FLAG_TSYNC", libc::SECCOMP_FILTER_FLAG_TSYNC),
        (
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        ),
        ("SECCOMP_FILTER_FLAG_LOG", libc::SECCOMP_FILTER_FLAG_LOG),
    ]
    .into_iter()
    .filter(|&(_, bit)| kernel_supports_flag(bit))
    .map(|(name, _)| name)
    .collect()
}

/// Architectures (SCMP_ARCH_*) the installed libseccomp can build filters for.
pub fn supported_archs() -> Vec<&'static str> {
    // Each arch gets a filter of its own: one filter cannot mix byte orders.
    let known = |scmp: ScmpArch| {
        ScmpFilterContext::new(ScmpAction::Allow)
            .and_then(|mut ctx| {
                if scmp != ScmpArch::native() {
                    ctx.remove_arch(ScmpArch::Native)?;
                }
                ctx.add_arch(scmp).map(|_| ())
            })
            .is_ok()
    };
    let mut names: Vec<&'static str> = ALL_ARCHES
        .iter()
        .map(|&arch| arch_info(arch))
        .filter(|&(_, scmp)| known(scmp))
        .map(|(name, _)| name)
        .collect();
    names.sort_unstable();
    names
}

/// The libseccomp version the runtime is linked against, e.g. "2.5.4".
pub fn library_version() -> Option<String> {
    libseccomp::ScmpVersion::current()
        .ok()
        .map(|v| v.to_string())
}

/// Converts an action and its errnoRet, rejecting combinations the spec forbids.
fn action(act: LinuxSeccompAction, errno_ret: Option<u32>, field: &str) -> Result<ScmpAction> {
    let no_errno = |a: ScmpAction| match errno_ret {
        None => Ok(a),
        Some(_) => Err(Error::InvalidSpec(format!(
            "{field}: errnoRet is not allowed with action {}",
            action_name(act)
        ))),
    };
    let ret = || -> Result<u16> {
        let v = errno_ret.unwrap_or(libc::EPERM as u32);
        u16::try_from(v).map_err(|_| {
            Error::InvalidSpec(format!(
                "{field}: errnoRet {v} is out of range (0-{})",
                u16::MAX
            ))
        })
    };
    match act {
        // SCMP_ACT_KILL is the historical name of KILL_THREAD.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            no_errno(ScmpAction::KillThread)
        }
        LinuxSeccompAction::ScmpActKillProcess => no_errno(ScmpAction::KillProcess),
        LinuxSeccompAction::ScmpActTrap => no_errno(ScmpAction::Trap),
        LinuxSeccompAction::ScmpActAllow => no_errno(ScmpAction::Allow),
        LinuxSeccompAction::ScmpActLog => no_errno(ScmpAction::Log),
        LinuxSeccompAction::ScmpActErrno => Ok(ScmpAction::Errno(i32::from(ret()?))),
        LinuxSeccompAction::ScmpActTrace => Ok(ScmpAction::Trace(ret()?)),
        LinuxSeccompAction::ScmpActNotify => {
            Err(Error::Unsupported(format!("{field}: {NOTIFY_UNSUPPORTED}")))
        }
    }
}

fn action_name(act: LinuxSeccompAction) -> &'static str {
    match act {
        LinuxSeccompAction::ScmpActKill => "SCMP_ACT_KILL",
        LinuxSeccompAction::ScmpActKillThread => "SCMP_ACT_KILL_THREAD",
        LinuxSeccompAction::ScmpActKillProcess => "SCMP_ACT_KILL_PROCESS",
        LinuxSeccompAction::ScmpActTrap => "SCMP_ACT_TRAP",
        LinuxSeccompAction::ScmpActErrno => "SCMP_ACT_ERRNO",
        LinuxSeccompAction::ScmpActNotify => "SCMP_ACT_NOTIFY",
        LinuxSeccompAction::ScmpActTrace => "SCMP_ACT_TRACE",
        LinuxSeccompAction::ScmpActLog => "SCMP_ACT_LOG",
        LinuxSeccompAction::ScmpActAllow => "SCMP_ACT_ALLOW",
    }
}

/// Every architecture the spec can name except SCMP_ARCH_NATIVE.
const ALL_ARCHES: &[Arch] = &[
    Arch::ScmpArchX86,
    Arch::ScmpArchX86_64,
    Arch::ScmpArchX32,
    Arch::ScmpArchArm,
    Arch::ScmpArchAarch64,
    Arch::ScmpArchMips,
    Arch::ScmpArchMips64,
    Arch::ScmpArchMips64n32,
    Arch::ScmpArchMipsel,
    Arch::ScmpArchMipsel64,
    Arch::ScmpArchMipsel64n32,
    Arch::ScmpArchPpc,
    Arch::ScmpArchPpc64,
    Arch::ScmpArchPpc64le,
    Arch::ScmpArchS390,
    Arch::ScmpArchS390x,
    Arch::ScmpArchParisc,
    Arch::ScmpArchParisc64,
    Arch::ScmpArchRiscv64,
    Arch::ScmpArchLoongarch64,
    Arch::ScmpArchM68k,
    Arch::ScmpArchSh,
    Arch::ScmpArchSheb,
];

fn arch_info(arch: Arch) -> (&'static str, ScmpArch) {
    match arch {
        Arch::ScmpArchNative => ("SCMP_ARCH_NATIVE", ScmpArch::Native),
        Arch::ScmpArchX86 => ("SCMP_ARCH_X86", ScmpArch::X86),
        Arch::ScmpArchX86_64 => ("SCMP_ARCH_X86_64", ScmpArch::X8664),
        Arch::ScmpArchX32 => ("SCMP_ARCH_X32", ScmpArch::X32),
        Arch::ScmpArchArm => ("SCMP_ARCH_ARM", ScmpArch::Arm),
        Arch::ScmpArchAarch64 => ("SCMP_ARCH_AARCH64", ScmpArch::Aarch64),
        Arch::ScmpArchMips => ("SCMP_ARCH_MIPS", ScmpArch::Mips),
        Arch::ScmpArchMips64 => ("SCMP_ARCH_MIPS64", ScmpArch::Mips64),
        Arch::ScmpArchMips64n32 => ("SCMP_ARCH_MIPS64N32", ScmpArch::Mips64N32),
        Arch::ScmpArchMipsel => ("SCMP_ARCH_MIPSEL", ScmpArch::Mipsel),
        Arch::ScmpArchMipsel64 => ("SCMP_ARCH_MIPSEL64", ScmpArch::Mipsel64),
        Arch::ScmpArchMipsel64n32 => ("SCMP_ARCH_MIPSEL64N32", ScmpArch::Mipsel64N32),
        Arch::ScmpArchPpc => ("SCMP_ARCH_PPC", ScmpArch::Ppc),
        Arch::ScmpArchPpc64 => ("SCMP_ARCH_PPC64", ScmpArch::Ppc64),
        Arch::ScmpArchPpc64le => ("SCMP_ARCH_PPC64LE", ScmpArch::Ppc64Le),
        Arch::ScmpArchS390 => ("SCMP_ARCH_S390", ScmpArch::S390),
        Arch::ScmpArchS390x => ("SCMP_ARCH_S390X", ScmpArch::S390X),
        Arch::ScmpArchParisc => ("SCMP_ARCH_PARISC", ScmpArch::Parisc),
        Arch::ScmpArchParisc64 => ("SCMP_ARCH_PARISC64", ScmpArch::Parisc64),
        Arch::ScmpArchRiscv64 => ("SCMP_ARCH_RISCV64", ScmpArch::Riscv64),
        Arch::ScmpArchLoongarch64 => ("SCMP_ARCH_LOONGARCH64", ScmpArch::Loongarch64),
        Arch::ScmpArchM68k => ("SCMP_ARCH_M68K", ScmpArch::M68k),
        Arch::ScmpArchSh => ("SCMP_ARCH_SH", ScmpArch::Sh),
        Arch::ScmpArchSheb => ("SCMP_ARCH_SHEB", ScmpArch::Sheb),
    }
}

/// Maps the spec's flags to seccomp(2) flag bits, checking the kernel accepts each.
fn filter_flags(flags: &[LinuxSeccompFilterFlag]) -> Result<libc::c_ulong> {
    let mut bits = 0;
    for &flag in flags {
        let (name, bit) = match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {
                ("SECCOMP_FILTER_FLAG_TSYNC", libc::SECCOMP_FILTER_FLAG_TSYNC)
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                ("SECCOMP_FILTER_FLAG_LOG", libc::SECCOMP_FILTER_FLAG_LOG)
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => (
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            ),
            // The kernel only accepts it together with a notify listener.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(Error::Unsupported(format!(
                    "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported: \
                     it only applies to {NOTIFY_UNSUPPORTED}"
                )));
            }
        };
        if !kernel_supports_flag(bit) {
            return Err(Error::Unsupported(format!(
                "linux.seccomp.flags: {name} is not supported by the running kernel"
            )));
        }
        bits |= bit;
    }
    Ok(bits)
}

/// Asks the kernel whether it knows a filter flag: with a NULL program, a known flag fails
/// with EFAULT (reading the program) and an unknown one with EINVAL; nothing is loaded.
fn kernel_supports_flag(bit: libc::c_ulong) -> bool {
    // SAFETY: a NULL program pointer makes the kernel fail before installing anything; no
    // memory of ours is read or written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            bit,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc < 0 && Errno::last() == Errno::EFAULT
}

/// Adds the rules of one `linux.seccomp.syscalls` entry.
fn add_syscall(
    ctx: &mut ScmpFilterContext,
    index: usize,
    syscall: &LinuxSyscall,
    default_action: ScmpAction,
) -> Result<()> {
    let names = syscall.names();
    let label = || format!("linux.seccomp.syscalls[{index}] ({})", names.join(", "));
    let act = action(syscall.action(), syscall.errno_ret(), &label())?;
    if let Some(empty) = names.iter().position(|n| n.is_empty()) {
        return Err(Error::InvalidSpec(format!(
            "linux.seccomp.syscalls[{index}].names[{empty}]: empty syscall name"
        )));
    }
    let args = syscall.args().as_deref().unwrap_or_default();
    let conditions = args
        .iter()
        .enumerate()
        .map(|(j, arg)| {
            condition(arg).map_err(|e| Error::InvalidSpec(format!("{}.args[{j}]: {e}", label())))
        })
        .collect::<Result<Vec<_>>>()?;
    // libseccomp cannot AND two comparisons of the same argument; like runc, such an entry
    // becomes one rule per comparison instead.
    let mut per_index = [0usize; 6];
    for arg in args {
        per_index[arg.index()] += 1;
    }
    let split = per_index.iter().any(|&n| n > 1);

    // libseccomp rejects rules that repeat the default action; they change nothing anyway.
    if act == default_action {
        return Ok(());
    }
    for name in names {
        let Ok(nr) = ScmpSyscall::from_name(name) else {
            // Unknown to this libseccomp: the kernel cannot have it either, skip like runc.
            tracing::debug!("seccomp: unknown syscall {name:?} skipped");
            continue;
        };
        let added = if split {
            conditions
                .iter()
                .try_for_each(|c| ctx.add_rule_conditional(act, nr, &[*c]).map(|_| ()))
        } else {
            ctx.add_rule_conditional(act, nr, &conditions).map(|_| ())
        };
        added.map_err(|e| {
            Error::Seccomp(format!(
                "linux.seccomp.syscalls[{index}]: add rule for {name}: {e}"
            ))
        })?;
    }
    Ok(())
}

fn condition(arg: &LinuxSeccompArg) -> std::result::Result<ScmpArgCompare, String> {
    let index = u32::try_from(arg.index())
        .ok()
        .filter(|&i| i < 6)
        .ok_or_else(|| format!("index {} is out of range (0-5)", arg.index()))?;
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // value is the mask, valueTwo the datum compared after masking.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return Ok(ScmpArgCompare::new(
                index,
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            ));
        }
    };
    Ok(ScmpArgCompare::new(index, op, arg.value()))
}

/// Has libseccomp generate the BPF program and reads it back from a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let fd = memfd_create(c"berth-seccomp", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| Error::sys("memfd_create for the seccomp program", e))?;
    let mut file = File::from(fd);
    ctx.export_bpf(&file)
        .map_err(|e| Error::Seccomp(format!("generate the BPF program: {e}")))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|source| Error::Sys {
            op: "read the seccomp program".into(),
            source,
        })?;
    let size = std::mem::size_of::<libc::sock_filter>();
    if bytes.is_empty() || bytes.len() % size != 0 {
        return Err(Error::Seccomp(format!(
            "libseccomp exported a malformed program ({} bytes)",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(size)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_programs_are_the_compiled_ones_and_only_for_their_profile() {
        let dir = tempfile::tempdir().unwrap();
        let profile: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read", "write", "exit"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap();
        let fresh = compile_uncached(&profile).unwrap();
        let key = cache_key(&profile).unwrap();
        let path = cache_path(dir.path(), &key);
        cache_store(dir.path(), &path, &key, &fresh);
        let cached = cache_load(&path, &key).unwrap();
        assert_eq!(cached.flags, fresh.flags);
        let words = |f: &Filter| f.program.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect::<Vec<_>>();
        assert_eq!(words(&cached), words(&fresh));
        // Another profile never gets this entry, even under the same file name.
        let mut other = key.clone();
        other.push(b'x');
        assert!(cache_load(&path, &other).is_none());
    }
    use serde_json::json;
    use std::time::Instant;

    fn spec(value: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(value).expect("test spec parses")
    }

    /// The unconditional allowlist of Docker's default profile (moby profiles/seccomp).
    const DOCKER_ALLOW: &str = "accept accept4 access adjtimex alarm bind brk capget capset chdir chmod \
        chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime \
        clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect \
        copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old \
        epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit \
        exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod \
        fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork \
        fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 \
        futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32 \
        geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp \
        getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit \
        get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday \
        getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch \
        io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get \
        ioprio_set io_setup io_submit io_uring_enter io_uring_register io_uring_setup ipc kill \
        landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr \
        link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 \
        madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 \
        mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive \
        mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv \
        msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open \
        openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free \
        pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease \
        pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv \
        recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat \
        renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask \
        rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 \
        rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max \
        sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 \
        sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select \
        semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg \
        sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 \
        setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 \
        setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area \
        set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack \
        signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs \
        statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time \
        timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime \
        timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime \
        timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime \
        utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev";

    /// Docker's default profile as dockerd hands it to the runtime for an amd64 container with
    /// the default capabilities.
    fn docker_default() -> LinuxSeccomp {
        let names: Vec<&str> = DOCKER_ALLOW.split_whitespace().collect();
        let mut syscalls = vec![
            json!({"names": names, "action": "SCMP_ACT_ALLOW"}),
            json!({"names": ["process_vm_readv", "process_vm_writev", "ptrace"], "action": "SCMP_ACT_ALLOW"}),
            json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}),
        ];
        for persona in [0u64, 8, 131072, 131080, 4294967295] {
            syscalls.push(json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}]}));
        }
        syscalls.push(json!({"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW"}));
        syscalls.push(json!({"names": ["modify_ldt"], "action": "SCMP_ACT_ALLOW"}));
        syscalls.push(json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}));
        syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}));
        spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": syscalls,
        }))
    }

    /// Forks, runs `check` in the child after loading `filter`, and returns the child's exit
    /// code. The child only makes raw syscalls, so forking from the threaded test is fine.
    fn in_child(filter: &Filter, check: fn() -> i32) -> i32 {
        // SAFETY: the child calls only async-signal-safe functions (prctl, seccomp, raw
        // syscalls) and leaves with _exit.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                // SAFETY: plain prctl; lets the filter load without CAP_SYS_ADMIN too.
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                let code = if filter.load().is_ok() { check() } else { 100 };
                // SAFETY: ends the forked child without running the parent's destructors.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                match nix::sys::wait::waitpid(child, None).expect("waitpid") {
                    nix::sys::wait::WaitStatus::Exited(_, code) => code,
                    other => panic!("child ended abnormally: {other:?}"),
                }
            }
        }
    }

    fn errno() -> i32 {
        Errno::last_raw()
    }

    #[test]
    fn compiles_basic_and_arg_specs() {
        let f = compile(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW"}))).unwrap();
        assert!(f.instructions() > 0);
        compile(&spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_NATIVE"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": [
                {"names": ["read", "write", "exit_group", "no_such_syscall_anywhere"], "action": "SCMP_ACT_ALLOW"},
                // known to libseccomp, but only on other architectures
                {"names": ["arm_fadvise64_64", "breakpoint", "cacheflush", "set_tls", "s390_pci_mmio_read",
                           "riscv_flush_icache", "sync_file_range2", "swapcontext"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["tkill"], "action": "SCMP_ACT_KILL"},
                {"names": ["tgkill"], "action": "SCMP_ACT_TRAP"},
                {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                {"names": ["uname"], "action": "SCMP_ACT_LOG"},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 5, "op": "SCMP_CMP_LE"}]},
                // two comparisons of the same argument: split into separate rules
                {"names": ["socketpair"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GE"},
                          {"index": 0, "value": 9, "op": "SCMP_CMP_LT"},
                          {"index": 2, "value": 0, "op": "SCMP_CMP_NE"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288u64, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["setsid"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_GT"}]},
                // same as the default action: skipped instead of rejected by libseccomp
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            ]
        })))
        .unwrap();
    }

    #[test]
    fn rejects_invalid_specs_with_clear_messages() {
        let cases = [
            (json!({"defaultAction": "SCMP_ACT_NOTIFY"}), "seccomp notify (SCMP_ACT_NOTIFY) is not supported yet"),
            (json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}), "listenerPath"),
            (json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
             "linux.seccomp.syscalls[0] (mkdir): seccomp notify (SCMP_ACT_NOTIFY) is not supported yet"),
            (json!({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}),
             "linux.seccomp.defaultAction: errnoRet is not allowed with action SCMP_ACT_KILL"),
            (json!({"defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}),
             "linux.seccomp.syscalls[0] (read): errnoRet is not allowed with action SCMP_ACT_ALLOW"),
            (json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}),
             "linux.seccomp.syscalls[0] (read): errnoRet 70000 is out of range"),
            (json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                  "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
             "linux.seccomp.syscalls[0] (read).args[0]: index 6 is out of range (0-5)"),
            (json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["read", ""], "action": "SCMP_ACT_ERRNO"}]}),
             "linux.seccomp.syscalls[0].names[1]: empty syscall name"),
            (json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}),
             "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported"),
        ];
        for (value, want) in cases {
            let err = compile(&spec(value.clone()))
                .expect_err(&value.to_string())
                .to_string();
            assert!(err.contains(want), "{value}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn unknown_values_fail_to_parse() {
        // The spec types reject unknown actions, operators, arches and flags at parse time.
        for bad in [
            json!({"defaultAction": "SCMP_ACT_BOGUS"}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
                "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}),
        ] {
            assert!(
                serde_json::from_value::<LinuxSeccomp>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn errno_rules_apply_in_child() {
        let filter = compile(&spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99,
                 "args": [{"index": 0, "value": 57005, "op": "SCMP_CMP_EQ"}]},
            ]
        })))
        .unwrap();
        let code = in_child(&filter, || {
            // SAFETY: raw syscalls on static, NUL-terminated or stack buffers.
            unsafe {
                if libc::mkdir(c"/nonexistent-dir/berth-seccomp-test".as_ptr(), 0o700) != -1
                    || errno() != libc::EPERM
                {
                    return 1;
                }
                let mut buf = [0u8; 256];
                if libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) != -1
                    || errno() != 38
                {
                    return 2;
                }
                if libc::personality(0xdead) != -1 || errno() != 99 {
                    return 3;
                }
                // Other argument values are not matched: the query succeeds.
                if libc::personality(0xffff_ffff) == -1 {
                    return 4;
                }
            }
            0
        });
        assert_eq!(code, 0, "child check {code} failed (100: load failed)");
    }

    #[test]
    fn docker_default_profile_compiles_fast_and_works() {
        let profile = docker_default();
        let rules: usize = profile
            .syscalls()
            .iter()
            .flatten()
            .map(|s| s.names().len())
            .sum();
        assert!(rules > 300, "{rules} rules");
        let start = Instant::now();
        let filter = compile(&profile).unwrap();
        let compiled = start.elapsed();
        eprintln!(
            "docker default profile: {rules} rules, {} instructions, compiled in {compiled:?}",
            filter.instructions()
        );
        let code = in_child(&filter, || {
            // SAFETY: raw syscalls with valid or deliberately NULL arguments.
            unsafe {
                let t0 = libc::getpid();
                if t0 <= 0 {
                    return 1;
                }
                // unshare is outside the default allowlist: default errno EPERM.
                if libc::unshare(0) != -1 || errno() != libc::EPERM {
                    return 2;
                }
                // clone3 gets ENOSYS so libc falls back to clone.
                if libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0) != -1
                    || errno() != libc::ENOSYS
                {
                    return 3;
                }
                // clone with namespace flags is refused by the MASKED_EQ rule...
                if libc::syscall(
                    libc::SYS_clone,
                    libc::CLONE_NEWNS as libc::c_ulong,
                    0,
                    0,
                    0,
                    0,
                ) != -1
                    || errno() != libc::EPERM
                {
                    return 4;
                }
                // ...while a plain fork works.
                let pid = libc::fork();
                if pid == 0 {
                    libc::_exit(0);
                }
                if pid < 0 {
                    return 5;
                }
                let mut status = 0;
                libc::waitpid(pid, &mut status, 0);
                // socket(AF_VSOCK=40) refused, AF_UNIX allowed.
                if libc::socket(40, libc::SOCK_STREAM, 0) != -1 || errno() != libc::EPERM {
                    return 6;
                }
                if libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) < 0 {
                    return 7;
                }
            }
            0
        });
        assert_eq!(code, 0, "child check {code} failed (100: load failed)");
    }

    #[test]
    fn load_time_of_docker_profile() {
        let filter = compile(&docker_default()).unwrap();
        let fds = nix::unistd::pipe().expect("pipe");
        // SAFETY: the child makes only raw syscalls (clock_gettime, seccomp, write) and _exits.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                // SAFETY: plain prctl.
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                let start = Instant::now();
                let ok = filter.load().is_ok();
                let nanos = if ok {
                    start.elapsed().as_nanos() as u64
                } else {
                    u64::MAX
                };
                let bytes = nanos.to_ne_bytes();
                // SAFETY: writes 8 bytes from a stack buffer to our pipe, then exits.
                unsafe {
                    libc::write(
                        std::os::fd::AsRawFd::as_raw_fd(&fds.1),
                        bytes.as_ptr().cast(),
                        8,
                    );
                    libc::_exit(0)
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(fds.1);
                let mut buf = [0u8; 8];
                let mut r = File::from(fds.0);
                r.read_exact(&mut buf).expect("read load time");
                nix::sys::wait::waitpid(child, None).expect("waitpid");
                let nanos = u64::from_ne_bytes(buf);
                assert_ne!(nanos, u64::MAX, "load failed in child");
                eprintln!(
                    "docker default profile: load took {:?}",
                    std::time::Duration::from_nanos(nanos)
                );
            }
        }
    }

    #[test]
    fn feature_probes() {
        let archs = supported_archs();
        assert!(
            archs.contains(&"SCMP_ARCH_X86_64") || archs.contains(&"SCMP_ARCH_AARCH64"),
            "{archs:?}"
        );
        let flags = supported_flags();
        assert!(flags.contains(&"SECCOMP_FILTER_FLAG_TSYNC"), "{flags:?}");
        assert!(library_version().is_some());
    }
}
