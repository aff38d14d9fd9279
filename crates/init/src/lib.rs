//! Where berthd finds `berth-init`, the binary it bind-mounts as `/sbin/docker-init` for
//! containers run with `--init`.
//!
//! The binary runs inside the container's root file system, which may have no libc, so it
//! must be statically linked (see `build-static.sh`); a dynamically linked one is refused
//! here with a clear error rather than failing inside the container with a bare ENOENT.

use std::path::{Path, PathBuf};

/// Overrides where the binary is (an installed or separately built static binary).
pub const PATH_ENV: &str = "BERTH_INIT_PATH";

/// The binary's name, next to berthd.
pub const BINARY: &str = "berth-init";

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("find the init binary: {} does not exist (build it with crates/init/build-static.sh and install it next to berthd or set {PATH_ENV})", .path.display())]
    NotFound { path: PathBuf },
    #[error("use the init binary {}: it is not statically linked, so it cannot run inside a container (build it with crates/init/build-static.sh)", .path.display())]
    NotStatic { path: PathBuf },
    #[error("read the init binary {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::NotStatic { .. } => ErrorKind::InvalidArgument,
            Error::Read { .. } => ErrorKind::Internal,
        }
    }
}

/// The init binary: `$BERTH_INIT_PATH`, else `berth-init` next to the running program.
/// Checked to exist and to be statically linked.
pub fn find() -> Result<PathBuf, Error> {
    let path = match std::env::var_os(PATH_ENV).filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().map_err(|source| Error::Read { path: PathBuf::from("/proc/self/exe"), source })?;
            exe.with_file_name(BINARY)
        }
    };
    check(&path)?;
    Ok(path)
}

/// Checks that `path` is a statically linked executable.
pub fn check(path: &Path) -> Result<(), Error> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound { path: path.to_path_buf() }),
        Err(source) => return Err(Error::Read { path: path.to_path_buf(), source }),
    };
    if has_interpreter(&bytes) {
        return Err(Error::NotStatic { path: path.to_path_buf() });
    }
    Ok(())
}

/// Whether an ELF file asks for a program interpreter (`PT_INTERP`): a dynamically linked
/// executable. Files that are not ELF answer false (a script is the kernel's business).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if elf.len() < 0x40 || &elf[..4] != b"\x7fELF" || elf[5] != 1 {
        // Not ELF, or not little-endian (this crate only runs on little-endian Linux).
        return false;
    }
    let bytes = |o: usize, n: usize| o.checked_add(n).and_then(|end| elf.get(o..end));
    let u16_at = |o: usize| bytes(o, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |o: usize| bytes(o, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| bytes(o, 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    // ELFCLASS64 or ELFCLASS32: where the program header table is described.
    let (phoff, phentsize, phnum) = match elf[4] {
        2 => (u64_at(0x20).and_then(|v| usize::try_from(v).ok()), u16_at(0x36), u16_at(0x38)),
        1 => (u32_at(0x1c).map(|v| v as usize), u16_at(0x2a), u16_at(0x2c)),
        _ => return false,
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else { return false };
    (0..phnum).any(|i| {
        let at = phentsize.checked_mul(i).and_then(|o| o.checked_add(phoff));
        at.and_then(u32_at) == Some(PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_and_static_binaries_are_told_apart() {
        // The test binary itself is dynamically linked (the default build).
        let exe = std::env::current_exe().unwrap();
        assert!(has_interpreter(&std::fs::read(&exe).unwrap()));
        assert!(matches!(check(&exe), Err(Error::NotStatic { .. })));
        // A static busybox, when installed, has no interpreter.
        for busybox in ["/bin/busybox", "/usr/bin/busybox"] {
            let Ok(bytes) = std::fs::read(busybox) else { continue };
            let dynamic = std::process::Command::new("ldd").arg(busybox).output().is_ok_and(|o| o.status.success());
            assert_eq!(has_interpreter(&bytes), dynamic, "{busybox}");
        }
    }

    #[test]
    fn missing_and_odd_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = check(&missing).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("nope"), "{e}");
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(check(&script).is_ok());
        // A truncated ELF header is not taken for a dynamic binary, nor does it panic.
        assert!(!has_interpreter(b"\x7fELF\x02\x01\x01"));
        let mut bogus = vec![0u8; 0x40];
        bogus[..6].copy_from_slice(b"\x7fELF\x02\x01");
        bogus[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        bogus[0x36] = 56;
        bogus[0x38] = 3;
        assert!(!has_interpreter(&bogus));
    }
}
