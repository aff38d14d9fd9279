//! Whiteouts and opaque directories: applied as overlay layers and mounted, applied merged,
//! and written back from a real overlay upper directory.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use berth_snapshot::{apply_layer, apply_layer_merged, mount_overlay, write_layer};
use common::*;

fn layer1() -> Vec<u8> {
    let mut layer = Layer::new();
    layer
        .dir("etc/", &Meta::mode(0o755))
        .file("etc/keep", b"keep", &Meta::mode(0o644))
        .file("etc/delete-me", b"bye", &Meta::mode(0o644))
        .dir("opaque/", &Meta::mode(0o755))
        .file("opaque/old-a", b"a", &Meta::mode(0o644))
        .dir("opaque/old-dir/", &Meta::mode(0o755))
        .file("opaque/old-dir/deep", b"deep", &Meta::mode(0o644))
        .dir("gone-dir/", &Meta::mode(0o755))
        .file("gone-dir/child", b"c", &Meta::mode(0o644))
        .file("replaced", b"v1", &Meta::mode(0o644));
    layer.bytes()
}

fn layer2() -> Vec<u8> {
    let mut layer = Layer::new();
    layer
        .dir("etc/", &Meta::mode(0o755).mtime(1_650_000_000))
        .file("etc/.wh.delete-me", b"", &Meta::mode(0o644))
        .file("etc/new", b"new", &Meta::mode(0o644))
        .dir("opaque/", &Meta::mode(0o700).mtime(1_650_000_000))
        .file("opaque/.wh..wh..opq", b"", &Meta::mode(0o644))
        .file("opaque/fresh", b"fresh", &Meta::mode(0o644))
        .file(".wh.gone-dir", b"", &Meta::mode(0o644))
        .file("replaced", b"v2", &Meta::mode(0o600))
        // AUFS bookkeeping: skipped with everything below it.
        .dir(".wh..wh.plnk/", &Meta::mode(0o700))
        .file(".wh..wh.plnk/123.456", b"", &Meta::mode(0o644));
    layer.bytes()
}

fn check_merged_view(root: &std::path::Path) {
    assert_eq!(fs::read(root.join("etc/keep")).unwrap(), b"keep");
    assert_eq!(fs::read(root.join("etc/new")).unwrap(), b"new");
    assert!(!root.join("etc/delete-me").exists());
    assert!(!root.join("gone-dir").exists());
    let mut opaque: Vec<_> = fs::read_dir(root.join("opaque")).unwrap().map(|e| e.unwrap().file_name()).collect();
    opaque.sort();
    assert_eq!(opaque, ["fresh"]);
    assert_eq!(fs::metadata(root.join("opaque")).unwrap().mode() & 0o7777, 0o700);
    assert_eq!(fs::read(root.join("replaced")).unwrap(), b"v2");
    assert!(!root.join(".wh..wh.plnk").exists());
}

#[test]
fn overlay_layers_mount_and_match_the_merged_form() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let lower1 = tmp.path().join("lower1");
    let lower2 = tmp.path().join("lower2");
    let merged = tmp.path().join("merged");
    let target = tmp.path().join("mnt");
    for dir in [&lower1, &lower2, &merged, &target] {
        fs::create_dir(dir).unwrap();
    }
    apply_layer(&lower1, &layer1()[..]).unwrap();
    apply_layer(&lower2, &layer2()[..]).unwrap();

    // The layer directory holds overlay whiteouts.
    let wh = fs::symlink_metadata(lower2.join("etc/delete-me")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(fs::symlink_metadata(lower2.join("gone-dir")).unwrap().file_type().is_char_device());
    assert_eq!(getxattr(&lower2.join("opaque"), b"trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert!(!lower2.join("opaque/.wh..wh..opq").exists());
    assert!(!lower2.join(".wh..wh.plnk").exists());

    mount_overlay(&[lower2.clone(), lower1.clone()], None, &target).unwrap();
    let _mounted = MountGuard(target.clone());
    check_merged_view(&target);
    assert!(fs::write(target.join("etc/x"), b"x").is_err(), "a mount without upper is read-only");

    apply_layer_merged(&merged, &layer1()[..]).unwrap();
    apply_layer_merged(&merged, &layer2()[..]).unwrap();
    check_merged_view(&merged);
    assert_same_tree(&snapshot(&target, &EXACT), &snapshot(&merged, &EXACT));
}

#[test]
fn merged_opaque_keeps_what_the_same_layer_put_there() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    apply_layer_merged(tmp.path(), &layer1()[..]).unwrap();
    // Children listed before the marker stay; the lower content goes.
    let mut layer = Layer::new();
    layer
        .dir("opaque/", &Meta::mode(0o755))
        .dir("opaque/old-dir/", &Meta::mode(0o755))
        .file("opaque/old-dir/mine", b"mine", &Meta::mode(0o644))
        .file("opaque/.wh..wh..opq", b"", &Meta::mode(0o644));
    apply_layer_merged(tmp.path(), &layer.bytes()[..]).unwrap();
    let root = tmp.path();
    assert!(!root.join("opaque/old-a").exists());
    assert!(!root.join("opaque/old-dir/deep").exists(), "lower content below a kept directory goes too");
    assert_eq!(fs::read(root.join("opaque/old-dir/mine")).unwrap(), b"mine");
}

/// Changes made through a real writable overlay, written back with write_layer, give the same
/// tree when applied merged onto the lower content.
#[test]
fn real_overlay_upper_round_trips() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    let upper = tmp.path().join("upper");
    let work = tmp.path().join("work");
    let target = tmp.path().join("mnt");
    let copy = tmp.path().join("copy");
    for dir in [&lower, &upper, &work, &target, &copy] {
        fs::create_dir(dir).unwrap();
    }
    apply_layer(&lower, &layer1()[..]).unwrap();
    {
        mount_overlay(std::slice::from_ref(&lower), Some((&upper, &work)), &target).unwrap();
        let _mounted = MountGuard(target.clone());
        fs::remove_file(target.join("etc/delete-me")).unwrap();
        fs::remove_dir_all(target.join("opaque")).unwrap();
        fs::create_dir(target.join("opaque")).unwrap();
        fs::write(target.join("opaque/fresh"), b"fresh").unwrap();
        fs::remove_dir_all(target.join("gone-dir")).unwrap();
        fs::write(target.join("replaced"), b"changed").unwrap();
        fs::hard_link(target.join("replaced"), target.join("replaced-link")).unwrap();
        fs::create_dir_all(target.join("new/deeper")).unwrap();
        std::os::unix::fs::symlink("../etc/keep", target.join("new/deeper/link")).unwrap();
        let expected = snapshot(&target, &SECONDS);

        let mut tar = Vec::new();
        write_layer(&upper, &mut tar).unwrap();
        let names = tar_names(&tar);
        for name in ["etc/.wh.delete-me", "opaque/.wh..wh..opq", ".wh.gone-dir", "replaced-link"] {
            assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
        }

        apply_layer_merged(&copy, &layer1()[..]).unwrap();
        apply_layer_merged(&copy, &tar[..]).unwrap();
        // Directories whose content was deleted by whiteouts carry the time of this apply.
        let opts = SnapshotOptions { whole_seconds: true, dir_mtimes: false };
        let expected: std::collections::BTreeMap<PathBuf, Node> = expected
            .into_iter()
            .map(|(p, mut n)| {
                if n.kind == "dir" {
                    n.mtime = (0, 0);
                }
                (p, n)
            })
            .collect();
        assert_same_tree(&expected, &snapshot(&copy, &opts));
    }
}
