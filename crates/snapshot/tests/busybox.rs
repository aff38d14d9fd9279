//! A real root filesystem: /bin/busybox with its applet links, applied, run, written back and
//! read by GNU tar.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use berth_snapshot::{apply_layer, disk_usage, write_layer};
use common::*;

/// A layer like a busybox image: the binary, hardlinks for /bin applets, symlinks for the rest.
fn busybox_layer() -> (Vec<u8>, usize) {
    let binary = fs::read("/bin/busybox").expect("busybox-static is installed");
    let list = Command::new("/bin/busybox").arg("--list-full").output().unwrap();
    assert!(list.status.success());
    let applets: Vec<String> = String::from_utf8(list.stdout).unwrap().lines().map(str::to_owned).collect();
    let mut layer = Layer::new();
    for dir in ["bin/", "sbin/", "usr/", "usr/bin/", "usr/sbin/", "tmp/", "etc/"] {
        layer.dir(dir, &Meta::mode(if dir == "tmp/" { 0o1777 } else { 0o755 }));
    }
    layer.file("bin/busybox", &binary, &Meta::mode(0o755));
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", &Meta::mode(0o644));
    for applet in &applets {
        if applet == "bin/busybox" {
            continue;
        }
        if applet.starts_with("bin/") {
            layer.hardlink(applet, "bin/busybox");
        } else {
            layer.symlink(applet, "/bin/busybox");
        }
    }
    (layer.bytes(), applets.len())
}

fn run(program: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn busybox_rootfs_applies_and_runs() {
    require_root();
    let (tar, applets) = busybox_layer();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    let stats = apply_layer(&root, &tar[..]).unwrap();
    assert!(stats.entries as usize >= applets);
    assert_eq!(stats.size, fs::metadata("/bin/busybox").unwrap().len() + 30);

    // Absolute applet symlinks resolve inside the new root when it is the root.
    let root_str = root.to_str().unwrap();
    let out = run("chroot", &[root_str, "/usr/bin/awk", "{ print $1 }"], b"hello world\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"hello\n");
    let out = run("chroot", &[root_str, "/bin/sh", "-c", "ls /sbin | wc -l; id -un"], b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().nth(1), Some("root"));

    // Hardlinks count once.
    let usage = disk_usage(&root).unwrap();
    let binary_blocks = fs::metadata("/bin/busybox").unwrap().len();
    assert!(usage > binary_blocks && usage < binary_blocks * 2, "usage {usage}");

    // Written back, GNU tar extracts the same tree.
    let mut layer = Vec::new();
    write_layer(&root, &mut layer).unwrap();
    let extracted = tmp.path().join("extracted");
    fs::create_dir(&extracted).unwrap();
    let out = run("tar", &["--xattrs", "--xattrs-include=*", "-xpf", "-", "-C", extracted.to_str().unwrap()], &layer);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_tree(&snapshot(&root, &SECONDS), &snapshot(&extracted, &SECONDS));
}

#[test]
fn gnu_tar_layers_apply_like_gnu_tar_extracts_them() {
    require_root();
    let (tar, _) = busybox_layer();
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    fs::create_dir(&source).unwrap();
    apply_layer(&source, &tar[..]).unwrap();
    // A setuid file with a capability, a fifo and a long name, made by hand and packed by GNU tar.
    fs::write(source.join("bin/su"), b"#!/bin/sh\n").unwrap();
    Command::new("chmod").args(["4755", source.join("bin/su").to_str().unwrap()]).status().unwrap();
    Command::new("mkfifo").arg(source.join("tmp/fifo")).status().unwrap();
    let long = source.join("usr").join("n".repeat(120)).join("m".repeat(150));
    fs::create_dir_all(&long).unwrap();
    fs::write(long.join("file"), b"long").unwrap();

    let packed = run(
        "tar",
        &["--xattrs", "--xattrs-include=*", "--format=posix", "-cf", "-", "-C", source.to_str().unwrap(), "."],
        b"",
    );
    assert!(packed.status.success(), "{}", String::from_utf8_lossy(&packed.stderr));
    let applied = tmp.path().join("applied");
    fs::create_dir(&applied).unwrap();
    apply_layer(&applied, &packed.stdout[..]).unwrap();
    assert_same_tree(&snapshot(&source, &EXACT), &snapshot(&applied, &EXACT));
    assert!(Path::new(&applied).join("tmp/fifo").exists());
}
