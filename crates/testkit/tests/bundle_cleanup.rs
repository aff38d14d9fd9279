//! Bundle drop removes mounts left under it (needs root to mount; no runtime needed).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use berth_testkit::{require_root, Bundle};

#[test]
fn drop_unmounts_leftovers_and_removes_dir() {
    if !require_root() {
        return;
    }
    let bundle = Bundle::new().unwrap();
    let path = bundle.path().to_path_buf();
    let target = bundle.rootfs().join("tmp");
    let c = |p: &std::path::Path| CString::new(p.as_os_str().as_bytes()).unwrap();
    let (src, ty) = (c("tmpfs".as_ref()), c("tmpfs".as_ref()));
    // SAFETY: valid NUL-terminated strings; null data.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            c(&target).as_ptr(),
            ty.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "mount: {}", std::io::Error::last_os_error());
    // A second, stacked mount on the same point.
    // SAFETY: as above.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            c(&target).as_ptr(),
            ty.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0);
    drop(bundle);
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!info.contains(path.to_str().unwrap()), "mount left behind");
    assert!(!path.exists(), "bundle dir left behind");
}

#[test]
fn bundles_are_independent_copies() {
    if !require_root() {
        return;
    }
    let a = Bundle::new().unwrap();
    let b = Bundle::new().unwrap();
    a.write_rootfs_file("etc/hosts", b"changed\n").unwrap();
    let other = std::fs::read_to_string(b.rootfs().join("etc/hosts")).unwrap();
    assert!(
        other.contains("localhost"),
        "write leaked into another bundle"
    );
    assert!(b.rootfs().join("bin/probe").exists());
    assert!(b.rootfs().join("bin/sh").exists());
}
