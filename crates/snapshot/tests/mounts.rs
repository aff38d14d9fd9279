//! Overlay mounts with many layers, long paths, a single layer, and unmount behaviour.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use berth_snapshot::{apply_layer, mount_overlay, unmount, Error, ErrorKind};
use common::*;

/// `count` lower directories; layer i holds `layer-i` and its own version of `shared`.
fn make_lowers(base: &Path, count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let dir = base.join(format!("l{i}"));
            fs::create_dir_all(&dir).unwrap();
            let mut layer = Layer::new();
            layer.file(&format!("layer-{i}"), b"", &Meta::mode(0o644)).file(
                "shared",
                format!("{i}").as_bytes(),
                &Meta::mode(0o644),
            );
            apply_layer(&dir, &layer.bytes()[..]).unwrap();
            dir
        })
        .collect()
}

fn check_stack(target: &Path, count: usize, top_first: &[PathBuf]) {
    for i in 0..count {
        assert!(target.join(format!("layer-{i}")).exists(), "layer {i} missing from the view");
    }
    // The first lower is the top-most.
    let top = top_first[0].file_name().unwrap().to_str().unwrap().trim_start_matches('l').to_owned();
    assert_eq!(fs::read_to_string(target.join("shared")).unwrap(), top);
}

#[test]
fn one_hundred_fifty_lowers_read_only() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let mut lowers = make_lowers(tmp.path(), 150);
    lowers.reverse();
    let target = tmp.path().join("mnt");
    fs::create_dir(&target).unwrap();
    mount_overlay(&lowers, None, &target).unwrap();
    let _mounted = MountGuard(target.clone());
    check_stack(&target, 150, &lowers);
    assert!(fs::write(target.join("new"), b"").is_err());
}

#[test]
fn one_hundred_fifty_lowers_with_upper() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let lowers = make_lowers(tmp.path(), 150);
    let (upper, work, target) = (tmp.path().join("upper"), tmp.path().join("work"), tmp.path().join("mnt"));
    for dir in [&upper, &work, &target] {
        fs::create_dir(dir).unwrap();
    }
    mount_overlay(&lowers, Some((&upper, &work)), &target).unwrap();
    let _mounted = MountGuard(target.clone());
    check_stack(&target, 150, &lowers);
    fs::write(target.join("new"), b"written").unwrap();
    assert_eq!(fs::read(upper.join("new")).unwrap(), b"written");
}

#[test]
fn lower_paths_longer_than_fsconfig_takes() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    // Each path is over 255 bytes: it goes to the kernel as /proc/self/fd/N.
    let deep = tmp.path().join("d".repeat(100)).join("e".repeat(100)).join("f".repeat(60));
    let lowers = make_lowers(&deep, 3);
    assert!(lowers[0].as_os_str().len() > 255);
    let upper = deep.join("upper");
    let work = deep.join("work");
    let target = tmp.path().join("mnt");
    for dir in [&upper, &work, &target] {
        fs::create_dir(dir).unwrap();
    }
    mount_overlay(&lowers, Some((&upper, &work)), &target).unwrap();
    let _mounted = MountGuard(target.clone());
    check_stack(&target, 3, &lowers);
}

#[test]
fn single_lower_read_only() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let lowers = make_lowers(tmp.path(), 1);
    let target = tmp.path().join("mnt");
    fs::create_dir(&target).unwrap();
    mount_overlay(&lowers, None, &target).unwrap();
    let _mounted = MountGuard(target.clone());
    check_stack(&target, 1, &lowers);
    assert!(fs::write(target.join("new"), b"").is_err());
}

#[test]
fn bad_requests_are_clear_errors() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("mnt");
    fs::create_dir(&target).unwrap();
    let err = mount_overlay(&[], None, &target).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    let missing = tmp.path().join("missing");
    let err = mount_overlay(&[missing.clone(), missing], None, &target).unwrap_err();
    assert!(err.to_string().contains("mnt"), "{err}");
    assert_ne!(err.kind(), ErrorKind::Internal, "{err}");

    let err = unmount(&target).unwrap_err();
    assert!(matches!(err, Error::NotMounted(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn busy_mounts_are_detached() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let lowers = make_lowers(tmp.path(), 2);
    let target = tmp.path().join("mnt");
    fs::create_dir(&target).unwrap();
    mount_overlay(&lowers, None, &target).unwrap();
    let guard = MountGuard(target.clone());
    let held = fs::File::open(target.join("shared")).unwrap();
    unmount(&target).unwrap();
    assert!(!target.join("shared").exists(), "the mount is gone from the tree");
    drop(held);
    drop(guard);
}
