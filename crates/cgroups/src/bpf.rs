//! cgroup v2 device filter: a minimal eBPF assembler, the BPF_PROG_TYPE_CGROUP_DEVICE
//! program generated from the emulated rule set, and loading/attaching it with bpf(2).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::devices::{DevType, Emulator, Perms};
use crate::error::{Error, Result};

/// One eBPF instruction (struct bpf_insn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcode pieces from linux/bpf_common.h and linux/bpf.h.
pub(crate) const BPF_LDX: u8 = 0x01;
pub(crate) const BPF_ALU: u8 = 0x04;
pub(crate) const BPF_JMP: u8 = 0x05;
pub(crate) const BPF_W: u8 = 0x00;
pub(crate) const BPF_MEM: u8 = 0x60;
pub(crate) const BPF_K: u8 = 0x00;
pub(crate) const BPF_X: u8 = 0x08;
pub(crate) const BPF_AND: u8 = 0x50;
pub(crate) const BPF_RSH: u8 = 0x70;
pub(crate) const BPF_MOV: u8 = 0xb0;
pub(crate) const BPF_JNE: u8 = 0x50;
pub(crate) const BPF_EXIT: u8 = 0x90;

// struct bpf_cgroup_dev_ctx type values.
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

pub(crate) const R0: u8 = 0;
pub(crate) const R1: u8 = 1;
pub(crate) const R2: u8 = 2;
pub(crate) const R3: u8 = 3;
pub(crate) const R4: u8 = 4;
pub(crate) const R5: u8 = 5;

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// dst = *(u32 *)(src + off)
    pub const fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
    }

    /// 32-bit ALU op with an immediate.
    pub const fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(BPF_ALU | op | BPF_K, dst, 0, 0, imm)
    }

    /// 32-bit ALU op with a register.
    pub const fn alu32_reg(op: u8, dst: u8, src: u8) -> Insn {
        Insn::new(BPF_ALU | op | BPF_X, dst, src, 0, 0)
    }

    /// if dst != imm goto +off
    pub const fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)
    }

    /// if dst != src goto +off
    pub const fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_JMP | BPF_JNE | BPF_X, dst, src, off, 0)
    }

    pub const fn exit() -> Insn {
        Insn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
    }

    /// The 8-byte kernel encoding.
    pub fn encode(self) -> [u8; 8] {
        // The register nibbles are a C bitfield: dst_reg is the low nibble on
        // little-endian hosts and the high one on big-endian hosts.
        let regs = if cfg!(target_endian = "little") {
            (self.dst & 0xf) | (self.src << 4)
        } else {
            (self.dst << 4) | (self.src & 0xf)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

/// Generates the device filter for an emulated rule set: load the context, then one
/// block per exception (all of the opposite action to the default, so order does not
/// matter), then the default verdict. Returns 1 to allow, 0 to deny.
pub(crate) fn device_program(emu: &Emulator) -> Vec<Insn> {
    let mut p = vec![
        // R2 = type (low 16 bits of access_type), R3 = access (high 16 bits)
        Insn::ldx_w(R2, R1, 0),
        Insn::alu32_imm(BPF_AND, R2, 0xffff),
        Insn::ldx_w(R3, R1, 0),
        Insn::alu32_imm(BPF_RSH, R3, 16),
        // R4 = major, R5 = minor
        Insn::ldx_w(R4, R1, 4),
        Insn::ldx_w(R5, R1, 8),
    ];
    for (meta, perms) in &emu.rules {
        let start = p.len();
        let typ = match meta.typ {
            DevType::Block => BPF_DEVCG_DEV_BLOCK,
            DevType::Char => BPF_DEVCG_DEV_CHAR,
        };
        // Jump offsets are patched once the block's length is known.
        p.push(Insn::jne_imm(R2, typ, 0));
        if *perms != Perms::ALL {
            // Match only if every requested access bit is granted: (R3 & perms) == R3.
            p.push(Insn::alu32_reg(BPF_MOV, R1, R3));
            p.push(Insn::alu32_imm(BPF_AND, R1, i32::from(perms.0)));
            p.push(Insn::jne_reg(R1, R3, 0));
        }
        if let Some(major) = meta.major {
            // Rule conversion bounds numbers to i32::MAX.
            p.push(Insn::jne_imm(R4, major as i32, 0));
        }
        if let Some(minor) = meta.minor {
            p.push(Insn::jne_imm(R5, minor as i32, 0));
        }
        p.push(Insn::alu32_imm(BPF_MOV, R0, i32::from(!emu.default_allow)));
        p.push(Insn::exit());
        let next = p.len();
        for (i, insn) in p.iter_mut().enumerate().take(next).skip(start) {
            if insn.code & 0x07 == BPF_JMP && insn.code & 0xf0 == BPF_JNE {
                // Blocks are a handful of instructions: the offset always fits.
                insn.off = (next - i - 1) as i16;
            }
        }
    }
    p.push(Insn::alu32_imm(BPF_MOV, R0, i32::from(emu.default_allow)));
    p.push(Insn::exit());
    p
}

// bpf(2) commands and constants.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    // Some kernels write this field whatever size is passed, so it must exist here.
    revision: u64,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    loop {
        // SAFETY: `attr` is a live, properly sized #[repr(C)] prefix of union bpf_attr;
        // the kernel reads/writes at most size_of::<T>() bytes of it, and every pointer
        // stored inside refers to memory the caller keeps alive across this call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut T as *mut libc::c_void,
                std::mem::size_of::<T>() as libc::c_uint,
            )
        };
        if r >= 0 {
            return Ok(r);
        }
        let e = io::Error::last_os_error();
        // The verifier can be interrupted by a signal and then asks for a retry.
        if e.raw_os_error() == Some(libc::EINTR)
            || (cmd == BPF_PROG_LOAD && e.raw_os_error() == Some(libc::EAGAIN))
        {
            continue;
        }
        return Err(e);
    }
}

fn fd_result(r: libc::c_long) -> OwnedFd {
    // SAFETY: a non-negative return of a bpf(2) command that creates an fd is a new
    // file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

/// Loads the program; on failure retries with the verifier log for the error message.
pub(crate) fn load(insns: &[Insn], path: &Path) -> Result<OwnedFd> {
    let code: Vec<u8> = insns.iter().flat_map(|i| i.encode()).collect();
    let license = CString::from(c"Apache");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..10].copy_from_slice(b"berth_dev\0");
    let mut first = sys_bpf(BPF_PROG_LOAD, &mut attr);
    if matches!(&first, Err(e) if e.raw_os_error() == Some(libc::EPERM)) {
        // Kernels before 5.11 charge programs to RLIMIT_MEMLOCK; raising it may be
        // refused (no CAP_SYS_RESOURCE), in which case the original error stands.
        let inf = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) } == 0 {
            first = sys_bpf(BPF_PROG_LOAD, &mut attr);
        }
    }
    let err = match first {
        Ok(fd) => return Ok(fd_result(fd)),
        Err(e) => e,
    };
    let mut log = vec![0u8; 64 * 1024];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    if let Ok(fd) = sys_bpf(BPF_PROG_LOAD, &mut attr) {
        return Ok(fd_result(fd));
    }
    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
    Err(Error::Bpf {
        op: "load device program",
        path: path.to_path_buf(),
        err,
        log: String::from_utf8_lossy(&log[..end]).into_owned(),
    })
}

/// Ids of the device programs attached directly to the cgroup.
fn attached(dir: RawFd, path: &Path) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut q = QueryAttr {
            target_fd: dir as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match sys_bpf(BPF_PROG_QUERY, &mut q) {
            Ok(_) => {
                ids.truncate(q.prog_cnt as usize);
                return Ok(ids);
            }
            Err(e)
                if e.raw_os_error() == Some(libc::ENOSPC) && (q.prog_cnt as usize) > ids.len() =>
            {
                ids = vec![0u32; q.prog_cnt as usize];
            }
            Err(err) => {
                return Err(Error::Bpf {
                    op: "query device programs",
                    path: path.to_path_buf(),
                    err,
                    log: String::new(),
                })
            }
        }
    }
}

/// Loads `insns` and attaches it to the cgroup directory `path`, then detaches the
/// device programs attached there before (ours from an earlier apply). Attaching first
/// means there is no moment without a filter; while both are attached, both must allow.
pub(crate) fn install(path: &Path, insns: &[Insn]) -> Result<()> {
    let dir = std::fs::File::open(path).map_err(|err| Error::Open {
        path: path.to_path_buf(),
        err,
    })?;
    let dirfd = dir.as_raw_fd();
    let old = attached(dirfd, path)?;
    let prog = load(insns, path)?;
    let mut attach = AttachAttr {
        target_fd: dirfd as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    sys_bpf(BPF_PROG_ATTACH, &mut attach).map_err(|err| Error::Bpf {
        op: "attach device program",
        path: path.to_path_buf(),
        err,
        log: String::new(),
    })?;
    for id in old {
        let mut get = GetFdByIdAttr {
            prog_id: id,
            ..Default::default()
        };
        let old_fd = match sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
            Ok(fd) => fd_result(fd),
            // Already gone, or hidden from us by an LSM: it can only restrict further.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EPERM | libc::EACCES)
                ) =>
            {
                continue
            }
            Err(err) => {
                return Err(Error::Bpf {
                    op: "get old device program",
                    path: path.to_path_buf(),
                    err,
                    log: String::new(),
                })
            }
        };
        let mut detach = AttachAttr {
            target_fd: dirfd as u32,
            attach_bpf_fd: old_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        match sys_bpf(BPF_PROG_DETACH, &mut detach) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(err) => {
                return Err(Error::Bpf {
                    op: "detach old device program",
                    path: path.to_path_buf(),
                    err,
                    log: String::new(),
                })
            }
        }
    }
    Ok(())
}

/// A reference interpreter for the instructions the generator emits, so tests can check
/// the program's verdicts without a kernel.
#[cfg(test)]
pub(crate) fn interpret(prog: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
    let ctx = [(access << 16) | typ, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 10_000, "program does not terminate");
        let i = prog[pc];
        let (d, s) = (i.dst as usize, i.src as usize);
        match i.code {
            c if c == BPF_LDX | BPF_MEM | BPF_W => {
                assert_eq!(s, 1, "loads only from the context");
                let off = usize::try_from(i.off).unwrap();
                assert_eq!(off % 4, 0);
                r[d] = u64::from(ctx[off / 4]);
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => r[d] = u64::from(r[d] as u32 & i.imm as u32),
            c if c == BPF_ALU | BPF_RSH | BPF_K => r[d] = u64::from((r[d] as u32) >> i.imm),
            c if c == BPF_ALU | BPF_MOV | BPF_K => r[d] = u64::from(i.imm as u32),
            c if c == BPF_ALU | BPF_MOV | BPF_X => r[d] = u64::from(r[s] as u32),
            c if c == BPF_JMP | BPF_JNE | BPF_K => {
                // 64-bit compare against the sign-extended immediate.
                if r[d] != i64::from(i.imm) as u64 {
                    assert!(i.off >= 0, "backward jump");
                    pc += i.off as usize;
                }
            }
            c if c == BPF_JMP | BPF_JNE | BPF_X => {
                if r[d] != r[s] {
                    assert!(i.off >= 0, "backward jump");
                    pc += i.off as usize;
                }
            }
            c if c == BPF_JMP | BPF_EXIT => return r[0],
            c => panic!("unexpected opcode {c:#x}"),
        }
        pc += 1;
        assert!(pc < prog.len(), "fell off the end");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{Meta, Rule};

    const R: u32 = Perms::READ as u32;
    const W: u32 = Perms::WRITE as u32;
    const M: u32 = Perms::MKNOD as u32;
    const CHR: u32 = BPF_DEVCG_DEV_CHAR as u32;
    const BLK: u32 = BPF_DEVCG_DEV_BLOCK as u32;

    fn rule(
        allow: bool,
        typ: Option<DevType>,
        major: Option<u32>,
        minor: Option<u32>,
        p: &str,
    ) -> Rule {
        Rule {
            allow,
            meta: typ.map(|typ| Meta { major, minor, typ }),
            perms: Perms::parse(p).unwrap(),
        }
    }

    #[test]
    fn encodes_instructions_like_the_kernel() {
        // Known encodings (as produced by clang/llvm-objdump for x86_64).
        assert_eq!(
            Insn::ldx_w(R2, R1, 0).encode(),
            [0x61, 0x12, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::ldx_w(R4, R1, 4).encode(),
            [0x61, 0x14, 4, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::alu32_imm(BPF_AND, R2, 0xffff).encode(),
            [0x54, 0x02, 0, 0, 0xff, 0xff, 0, 0]
        );
        assert_eq!(
            Insn::alu32_imm(BPF_RSH, R3, 16).encode(),
            [0x74, 0x03, 0, 0, 16, 0, 0, 0]
        );
        assert_eq!(
            Insn::alu32_reg(BPF_MOV, R1, R3).encode(),
            [0xbc, 0x31, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::jne_imm(R2, 2, 5).encode(),
            [0x55, 0x02, 5, 0, 2, 0, 0, 0]
        );
        assert_eq!(
            Insn::jne_reg(R1, R3, 1).encode(),
            [0x5d, 0x31, 1, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::alu32_imm(BPF_MOV, R0, 1).encode(),
            [0xb4, 0x00, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(Insn::exit().encode(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn program_for_single_rule_has_expected_shape() {
        let emu = Emulator::from_rules(&[rule(true, Some(DevType::Char), Some(1), Some(3), "rwm")])
            .unwrap();
        let p = device_program(&emu);
        assert_eq!(
            p[6..],
            [
                Insn::jne_imm(R2, 2, 4),
                Insn::jne_imm(R4, 1, 3),
                Insn::jne_imm(R5, 3, 2),
                Insn::alu32_imm(BPF_MOV, R0, 1),
                Insn::exit(),
                Insn::alu32_imm(BPF_MOV, R0, 0),
                Insn::exit(),
            ]
        );
    }

    #[test]
    fn verdicts_match_the_emulated_rules() {
        let rules = [
            rule(false, None, None, None, "rwm"),
            rule(true, Some(DevType::Char), Some(1), Some(3), "rwm"), // null
            rule(true, Some(DevType::Char), Some(1), Some(5), "r"),   // zero, read-only
            rule(true, Some(DevType::Char), Some(136), None, "rw"),   // pts
            rule(true, Some(DevType::Block), None, None, "m"),        // mknod any block
            rule(false, Some(DevType::Char), Some(1), Some(3), "w"),  // then no write to null
        ];
        let emu = Emulator::from_rules(&rules).unwrap();
        let p = device_program(&emu);
        let run = |t, a, ma, mi| interpret(&p, t, a, ma, mi);
        assert_eq!(run(CHR, R, 1, 3), 1);
        assert_eq!(run(CHR, W, 1, 3), 0);
        assert_eq!(run(CHR, M, 1, 3), 1);
        assert_eq!(run(CHR, R, 1, 5), 1);
        assert_eq!(run(CHR, R | W, 1, 5), 0);
        assert_eq!(run(CHR, R | W, 136, 7), 1);
        assert_eq!(run(CHR, M, 136, 7), 0);
        assert_eq!(run(BLK, M, 8, 0), 1);
        assert_eq!(run(BLK, R, 8, 0), 0);
        assert_eq!(run(CHR, R, 5, 0), 0);
        // Exhaustive cross-check against the emulator on a small grid.
        for typ in [BLK, CHR] {
            for access in 1..8u32 {
                for major in [0, 1, 5, 136] {
                    for minor in [0, 3, 5, 7] {
                        let want = emulated_verdict(&emu, typ, access, major, minor);
                        assert_eq!(
                            run(typ, access, major, minor),
                            u64::from(want),
                            "{typ} {access} {major}:{minor}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn allow_list_default_with_deny_exceptions() {
        let rules = [
            rule(true, None, None, None, "rwm"),
            rule(false, Some(DevType::Char), Some(1), Some(3), "rwm"),
        ];
        let p = device_program(&Emulator::from_rules(&rules).unwrap());
        assert_eq!(interpret(&p, CHR, R, 1, 3), 0);
        assert_eq!(interpret(&p, CHR, R, 1, 5), 1);
        assert_eq!(interpret(&p, BLK, W, 8, 0), 1);
    }

    fn emulated_verdict(emu: &Emulator, typ: u32, access: u32, major: u32, minor: u32) -> bool {
        let t = if typ == BLK {
            DevType::Block
        } else {
            DevType::Char
        };
        let hit = emu.rules.iter().any(|(m, p)| {
            m.typ == t
                && m.major.is_none_or(|v| v == major)
                && m.minor.is_none_or(|v| v == minor)
                && (access & !u32::from(p.0)) == 0
        });
        hit != emu.default_allow
    }

    /// Root only: attach a filter to a real cgroup2 directory and check that a process
    /// in it is refused /dev/null while /dev/zero still opens. Skips without cgroup2.
    #[test]
    fn kernel_enforces_generated_program() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let base = match crate::layout() {
            Ok(crate::Layout::V2) => Path::new("/sys/fs/cgroup"),
            Ok(crate::Layout::Hybrid) => Path::new("/sys/fs/cgroup/unified"),
            _ => {
                eprintln!("skipped: no cgroup2 hierarchy");
                return;
            }
        };
        let dir = base.join(format!("berth-bpf-unit-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        struct Rm(std::path::PathBuf);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = crate::fs::remove_cgroup_dir(&self.0);
            }
        }
        let _guard = Rm(dir.clone());
        let rules = [
            rule(false, None, None, None, "rwm"),
            rule(true, Some(DevType::Char), Some(1), Some(5), "rwm"),
        ];
        let emu = Emulator::from_rules(&rules).unwrap();
        install(&dir, &device_program(&emu)).unwrap();
        // Installing again replaces rather than stacks.
        install(&dir, &device_program(&emu)).unwrap();
        let f = std::fs::File::open(&dir).unwrap();
        assert_eq!(attached(f.as_raw_fd(), &dir).unwrap().len(), 1);

        let procs = dir.join("cgroup.procs");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}; if cat /dev/null; then echo null-ok; else echo null-denied; fi; \
                 if head -c1 /dev/zero > /tmp/berth-bpf-unit-$$; then echo zero-ok; fi; rm -f /tmp/berth-bpf-unit-$$",
                procs.display()
            ))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("null-denied"),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("zero-ok"), "{stdout}");
    }
}
