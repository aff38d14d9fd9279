//! Layers that try to write outside the target directory. Each test asserts an error or that
//! nothing outside the directory was created or changed (sentinels next to it and outside it).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_snapshot::{apply_layer, apply_layer_merged, Error, ErrorKind};
use common::*;

/// A name unique to this run, for paths outside the sandbox (`/escape-...`).
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn file(layer: &mut Layer, name: &str) {
    layer.file(name, b"escaped?", &Meta::mode(0o644));
}

#[test]
fn dotdot_relative_name_is_rejected() {
    require_root();
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    file(&mut layer, "../../escape");
    let err = apply_layer(&sb.layer, &layer.bytes()[..]).unwrap_err();
    assert!(matches!(err, Error::EntryEscapes { ref entry } if entry == "../../escape"), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    sb.assert_outside_untouched();
}

#[test]
fn dotdot_after_absolute_name_is_rejected() {
    require_root();
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    file(&mut layer, "/abs/../../escape");
    let err = apply_layer(&sb.layer, &layer.bytes()[..]).unwrap_err();
    assert!(matches!(err, Error::EntryEscapes { .. }), "{err}");
    sb.assert_outside_untouched();
}

#[test]
fn dotdot_inside_name_is_rejected() {
    require_root();
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    layer.dir("a/", &Meta::mode(0o755));
    file(&mut layer, "a/../../escape");
    let err = apply_layer(&sb.layer, &layer.bytes()[..]).unwrap_err();
    assert!(err.to_string().contains("a/../../escape"), "the error names the entry: {err}");
    sb.assert_outside_untouched();
}

#[test]
fn symlink_to_host_root_stays_inside() {
    require_root();
    let sb = Sandbox::new();
    let name = unique("escape");
    let mut layer = Layer::new();
    layer.symlink("evil", "/");
    file(&mut layer, &format!("evil/{name}"));
    apply_layer(&sb.layer, &layer.bytes()[..]).unwrap();
    assert!(!Path::new("/").join(&name).exists(), "wrote into the host root");
    assert_eq!(fs::read(sb.layer.join(&name)).unwrap(), b"escaped?", "the link resolves to the layer root");
    sb.assert_outside_untouched();
}

#[test]
fn symlink_to_dotdot_stays_inside() {
    require_root();
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    layer.symlink("evil", "../..");
    file(&mut layer, "evil/escape");
    apply_layer(&sb.layer, &layer.bytes()[..]).unwrap();
    assert!(sb.layer.join("escape").is_file());
    sb.assert_outside_untouched();
}

#[test]
fn hardlink_through_symlink_to_outside_dir_fails() {
    require_root();
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    layer.symlink("evil", "../../outside-dir").hardlink("stolen", "evil/x");
    let err = apply_layer(&sb.layer, &layer.bytes()[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("stolen"), "{err}");
    let outside = sb.tmp.path().join("a/outside-dir/x");
    assert_eq!(fs::metadata(&outside).unwrap().nlink(), 1, "the outside file gained a link");
    sb.assert_outside_untouched();
}

#[test]
fn hardlink_with_dotdot_target_is_rejected() {
    require_root();
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    layer.hardlink("link", "../../outside-dir/file");
    let err = apply_layer(&sb.layer, &layer.bytes()[..]).unwrap_err();
    assert!(matches!(err, Error::LinkEscapes { .. }), "{err}");
    sb.assert_outside_untouched();
}

#[test]
fn hardlink_to_absolute_host_path_resolves_inside() {
    require_root();
    let sb = Sandbox::new();
    let passwd = fs::metadata("/etc/passwd").unwrap();
    let mut layer = Layer::new();
    layer.hardlink("passwd", "/etc/passwd");
    let err = apply_layer(&sb.layer, &layer.bytes()[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), passwd.nlink());
    assert!(!sb.layer.join("passwd").exists());

    // With an `etc/passwd` inside the layer, the link goes to that one.
    let mut layer = Layer::new();
    layer.file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", &Meta::mode(0o644)).hardlink("passwd", "/etc/passwd");
    apply_layer(&sb.layer, &layer.bytes()[..]).unwrap();
    let link = fs::metadata(sb.layer.join("passwd")).unwrap();
    assert_ne!(link.ino(), passwd.ino());
    assert_eq!(link.ino(), fs::metadata(sb.layer.join("etc/passwd")).unwrap().ino());
    sb.assert_outside_untouched();
}

#[test]
fn symlink_replacing_a_directory_then_entries_below_it() {
    require_root();
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    layer.dir("d/", &Meta::mode(0o755)).file("d/f", b"in d", &Meta::mode(0o644)).symlink("d", "../../outside-dir");
    file(&mut layer, "d/escape");
    layer.hardlink("d/x", "d/f");
    // Either refused or kept inside; never outside.
    let _ = apply_layer(&sb.layer, &layer.bytes()[..]);
    assert!(fs::symlink_metadata(sb.layer.join("d")).unwrap().file_type().is_symlink());
    sb.assert_outside_untouched();

    let sb = Sandbox::new();
    let mut layer = Layer::new();
    layer.dir("d/", &Meta::mode(0o755)).file("d/f", b"in d", &Meta::mode(0o644)).symlink("d", "/");
    file(&mut layer, "d/escape");
    apply_layer(&sb.layer, &layer.bytes()[..]).unwrap();
    assert!(sb.layer.join("escape").is_file(), "`d` now means the layer root");
    sb.assert_outside_untouched();
}

#[test]
fn file_over_symlink_does_not_write_through() {
    require_root();
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    layer.symlink("s", "../../outside-dir/file").symlink("t", "../../outside-dir");
    file(&mut layer, "s");
    layer.dir("t/", &Meta::mode(0o755));
    file(&mut layer, "t/inside");
    apply_layer(&sb.layer, &layer.bytes()[..]).unwrap();
    assert!(fs::symlink_metadata(sb.layer.join("s")).unwrap().is_file());
    assert!(fs::symlink_metadata(sb.layer.join("t")).unwrap().is_dir());
    assert!(sb.layer.join("t/inside").is_file());
    sb.assert_outside_untouched();
}

#[test]
fn symlink_metadata_never_reaches_the_target() {
    require_root();
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    let meta = Meta::mode(0o777).owner(1234, 1234).mtime(1).xattr("trusted.test", b"set");
    layer.entry(tar::EntryType::Symlink, "s", Some("../../outside-dir/file"), b"", &meta);
    layer.entry(tar::EntryType::Symlink, "abs", Some("/etc/passwd"), b"", &meta);
    let passwd = fs::metadata("/etc/passwd").unwrap();
    apply_layer(&sb.layer, &layer.bytes()[..]).unwrap();
    let s = fs::symlink_metadata(sb.layer.join("s")).unwrap();
    assert_eq!((s.uid(), s.mtime()), (1234, 1));
    assert_eq!(getxattr(&sb.layer.join("s"), b"trusted.test").as_deref(), Some(&b"set"[..]));
    let after = fs::metadata("/etc/passwd").unwrap();
    assert_eq!((after.uid(), after.mtime(), after.mode()), (passwd.uid(), passwd.mtime(), passwd.mode()));
    assert_eq!(getxattr(Path::new("/etc/passwd"), b"trusted.test"), None);
    sb.assert_outside_untouched();
}

#[test]
fn whiteout_names_that_escape() {
    require_root();
    // `.wh.../../x` cleans to `x`: an ordinary file inside, not a whiteout of anything outside.
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    file(&mut layer, ".wh.../../x");
    apply_layer(&sb.layer, &layer.bytes()[..]).unwrap();
    assert!(sb.layer.join("x").is_file());
    sb.assert_outside_untouched();

    let sb = Sandbox::new();
    let mut layer = Layer::new();
    file(&mut layer, "dir/../../.wh.sentinel");
    let err = apply_layer_merged(&sb.layer, &layer.bytes()[..]).unwrap_err();
    assert!(matches!(err, Error::EntryEscapes { .. }), "{err}");
    sb.assert_outside_untouched();

    // `.wh...` would white out `..`.
    let sb = Sandbox::new();
    fs::create_dir(sb.layer.join("sub")).unwrap();
    let mut layer = Layer::new();
    file(&mut layer, "sub/.wh...");
    let err = apply_layer_merged(&sb.layer, &layer.bytes()[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(sb.layer.join("sub").is_dir());
    sb.assert_outside_untouched();
}

#[test]
fn merged_whiteout_through_symlink_deletes_only_inside() {
    require_root();
    let sb = Sandbox::new();
    fs::write(sb.layer.join("sentinel"), b"inside").unwrap();
    let mut layer = Layer::new();
    layer.symlink("evil", "../../");
    file(&mut layer, "evil/.wh.sentinel");
    layer.symlink("evil2", "../../outside-dir");
    file(&mut layer, "evil2/.wh.x");
    apply_layer_merged(&sb.layer, &layer.bytes()[..]).unwrap();
    assert!(!sb.layer.join("sentinel").exists(), "the whiteout resolves inside the root");
    sb.assert_outside_untouched();
}

#[test]
fn device_node_as_a_parent_directory_fails() {
    require_root();
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    layer.char_device("dev0", 1, 3, &Meta::mode(0o666));
    file(&mut layer, "dev0/escape");
    let err = apply_layer(&sb.layer, &layer.bytes()[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("dev0/escape"), "{err}");
    sb.assert_outside_untouched();

    // An overlay whiteout is a device too.
    let sb = Sandbox::new();
    let mut layer = Layer::new();
    file(&mut layer, ".wh.w");
    file(&mut layer, "w/x");
    let err = apply_layer(&sb.layer, &layer.bytes()[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    sb.assert_outside_untouched();
}
