//! berth-testkit: the harness for runtime integration tests. Builds busybox bundles with
//! the probe inside, drives any runc-compatible CLI (`BERTH_TEST_RUNTIME` picks it), and
//! cleans up containers, mounts and temp dirs on drop.
//!
//! ```ignore
//! use berth_testkit::{Bundle, Runtime};
//! if !berth_testkit::require_root() { return; }
//! let rt = Runtime::from_env_or(env!("CARGO_BIN_EXE_berth-runc")).unwrap();
//! let bundle = Bundle::new().unwrap();
//! let report = rt.run_probe(&bundle).unwrap();
//! assert_eq!(report["hostname"], "runc");
//! ```

pub mod bundle;
pub mod error;
pub mod rootfs;
pub mod runtime;

pub use bundle::Bundle;
pub use error::{Error, Result};
pub use rootfs::CopyMode;
pub use runtime::{CmdOutput, Runtime, RUNTIME_ENV};

/// True when running as root; otherwise prints a skip note. Use as
/// `if !require_root() { return; }`.
pub fn require_root() -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping: test needs root");
    }
    root
}

/// The inode of this process's namespace `name` (`mnt`, `pid`, ...), to compare with
/// the probe's `namespaces` report.
pub fn host_ns_inode(name: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/ns/{name}")).ok()?;
    let s = link.to_string_lossy();
    let start = s.find('[')?;
    let end = s.rfind(']')?;
    s.get(start + 1..end)?.parse().ok()
}
