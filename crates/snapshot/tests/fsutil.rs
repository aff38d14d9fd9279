//! remove_tree, disk_usage and sync_filesystem on real trees.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use berth_snapshot::{disk_usage, mount_overlay, remove_tree, sync_filesystem, ErrorKind};
use common::*;

#[test]
fn remove_tree_removes_deep_and_read_only_trees_without_following_links() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"keep").unwrap();

    let tree = tmp.path().join("tree");
    let mut deep = tree.clone();
    for i in 0..300 {
        deep.push(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("leaf"), b"leaf").unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("link-to-outside")).unwrap();
    std::os::unix::fs::symlink(&outside, deep.join("deep-link")).unwrap();
    let ro = tree.join("read-only");
    fs::create_dir(&ro).unwrap();
    fs::write(ro.join("file"), b"x").unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
    fs::set_permissions(tree.join("d0"), fs::Permissions::from_mode(0o000)).unwrap();

    remove_tree(&tree).unwrap();
    assert!(!tree.exists());
    assert_eq!(fs::read(outside.join("keep")).unwrap(), b"keep");
    // Missing paths are fine; a file is removed; a symlink is removed, not its target.
    remove_tree(&tree).unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, b"").unwrap();
    remove_tree(&file).unwrap();
    assert!(!file.exists());
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    remove_tree(&link).unwrap();
    assert!(outside.join("keep").exists());

    let err = remove_tree(Path::new("/")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[test]
fn remove_tree_does_not_cross_into_a_mount() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let lower1 = tmp.path().join("lower1");
    let lower2 = tmp.path().join("lower2");
    for dir in [&lower1, &lower2] {
        fs::create_dir(dir).unwrap();
        fs::write(dir.join(dir.file_name().unwrap()), b"precious").unwrap();
    }
    let tree = tmp.path().join("tree");
    let target = tree.join("sub/mnt");
    fs::create_dir_all(&target).unwrap();
    mount_overlay(&[lower1.clone(), lower2.clone()], None, &target).unwrap();
    let _mounted = MountGuard(target.clone());
    let err = remove_tree(&tree).unwrap_err();
    assert!(err.to_string().contains("mount point"), "{err}");
    assert!(target.join("lower1").exists());
    assert!(lower1.join("lower1").exists() && lower2.join("lower2").exists());
}

#[test]
fn disk_usage_matches_du() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir_all(tree.join("a/b")).unwrap();
    fs::write(tree.join("a/big"), vec![1u8; 1_000_000]).unwrap();
    fs::write(tree.join("a/b/small"), b"small").unwrap();
    fs::hard_link(tree.join("a/big"), tree.join("big-link")).unwrap();
    std::os::unix::fs::symlink("a/big", tree.join("symlink")).unwrap();
    let du = Command::new("du").args(["-s", "-x", "--block-size=1"]).arg(&tree).output().unwrap();
    assert!(du.status.success());
    let du: u64 = String::from_utf8(du.stdout).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let usage = disk_usage(&tree).unwrap();
    assert_eq!(usage, du);
    assert!((1_000_000..2_000_000).contains(&usage), "the hardlinked file counts once: {usage}");

    let err = disk_usage(&tmp.path().join("missing")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn sync_filesystem_syncs_or_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    sync_filesystem(tmp.path()).unwrap();
    let missing = tmp.path().join("missing");
    let err = sync_filesystem(&missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("missing"), "{err}");
}
