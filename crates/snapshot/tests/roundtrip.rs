//! Every entry kind applied, checked with lstat/getxattr, written back and re-applied.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use berth_snapshot::{apply_layer, apply_layer_merged, write_layer, ErrorKind};
use common::*;

/// A capability xattr (v2) granting cap_net_raw, as `setcap cap_net_raw+ep` writes it.
const CAP_NET_RAW: &[u8] = &[0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn long_name(depth: usize) -> String {
    (0..depth).map(|i| format!("directory-level-{i:02}")).collect::<Vec<_>>().join("/")
}

fn every_kind() -> Vec<u8> {
    let long_dir_110 = long_name(6); // > 100 bytes
    let long_dir_300 = long_name(16); // > 255 bytes
    let mut layer = Layer::new();
    layer
        .dir("./", &Meta::mode(0o755))
        .dir("etc/", &Meta::mode(0o755).mtime(1_500_000_000))
        .file("etc/hosts", b"127.0.0.1 localhost\n", &Meta::mode(0o644).owner(1000, 1001))
        .file("etc/empty", b"", &Meta::mode(0o600))
        .file("etc/nanos", b"n", &Meta::mode(0o640).pax("mtime", b"1700000000.123456789").pax("atime", b"1700000001.5"))
        .file("usr/bin/passwd", b"#!/bin/true\n", &Meta::mode(0o4755))
        .file("usr/bin/wall", b"#!/bin/true\n", &Meta::mode(0o2755).owner(0, 5))
        .dir("tmp/", &Meta::mode(0o1777))
        .file(
            "usr/bin/ping",
            b"#!/bin/true\n",
            &Meta::mode(0o755).xattr("security.capability", CAP_NET_RAW).xattr("user.comment", b"pings"),
        )
        .dir("data/", &Meta::mode(0o750).owner(33, 33).xattr("user.dir", b"yes"))
        .symlink("data/abs", "/etc/hosts")
        .symlink("data/rel", "../etc/hosts")
        .symlink("data/dangling", "nowhere/at/all")
        .hardlink("data/hosts-link", "etc/hosts")
        .hardlink("/data/hosts-link2", "./etc/hosts")
        .fifo("data/fifo", &Meta::mode(0o620).owner(7, 8))
        .char_device("dev/null", 1, 3, &Meta::mode(0o666))
        .entry_bytes(tar::EntryType::Block, b"dev/loop9", None, b"", &Meta::mode(0o660).owner(0, 6), (7, 9))
        .dir(&format!("{long_dir_110}/"), &Meta::mode(0o700))
        .file(&format!("{long_dir_110}/pax-named"), b"pax", &Meta::mode(0o644))
        .gnu_file(&format!("{long_dir_300}/gnu-named"), b"gnu", &Meta::mode(0o644));
    layer.bytes()
}

#[test]
fn every_entry_kind_is_applied() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let stats = apply_layer(dir, &every_kind()[..]).unwrap();
    assert_eq!(stats.entries, 21);
    let contents = ["127.0.0.1 localhost\n", "n", "#!/bin/true\n", "#!/bin/true\n", "#!/bin/true\n", "pax", "gnu"];
    assert_eq!(stats.size, contents.iter().map(|c| c.len() as u64).sum::<u64>());

    let md = |p: &str| fs::symlink_metadata(dir.join(p)).unwrap();
    let hosts = md("etc/hosts");
    assert_eq!(fs::read(dir.join("etc/hosts")).unwrap(), b"127.0.0.1 localhost\n");
    assert_eq!((hosts.mode() & 0o7777, hosts.uid(), hosts.gid()), (0o644, 1000, 1001));
    assert_eq!((hosts.mtime(), hosts.mtime_nsec()), (1_600_000_000, 0));
    assert_eq!(md("etc/empty").len(), 0);
    assert_eq!(md("etc/empty").mode() & 0o7777, 0o600);

    let nanos = md("etc/nanos");
    assert_eq!((nanos.mtime(), nanos.mtime_nsec()), (1_700_000_000, 123_456_789));
    assert_eq!((nanos.atime(), nanos.atime_nsec()), (1_700_000_001, 500_000_000));

    assert_eq!(md("usr/bin/passwd").mode() & 0o7777, 0o4755);
    let wall = md("usr/bin/wall");
    assert_eq!((wall.mode() & 0o7777, wall.gid()), (0o2755, 5));
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    // Parents missing from the tar are created 0755.
    assert_eq!(md("usr/bin").mode() & 0o7777, 0o755);

    let ping = dir.join("usr/bin/ping");
    assert_eq!(getxattr(&ping, b"security.capability").as_deref(), Some(CAP_NET_RAW));
    assert_eq!(getxattr(&ping, b"user.comment").as_deref(), Some(&b"pings"[..]));

    let data = md("data");
    assert_eq!((data.mode() & 0o7777, data.uid(), data.gid()), (0o750, 33, 33));
    assert_eq!(getxattr(&dir.join("data"), b"user.dir").as_deref(), Some(&b"yes"[..]));
    // Directory times are set after their content was written.
    assert_eq!(md("etc").mtime(), 1_500_000_000);
    assert_eq!(data.mtime(), 1_600_000_000);

    assert_eq!(fs::read_link(dir.join("data/abs")).unwrap(), Path::new("/etc/hosts"));
    assert_eq!(fs::read_link(dir.join("data/rel")).unwrap(), Path::new("../etc/hosts"));
    assert_eq!(fs::read_link(dir.join("data/dangling")).unwrap(), Path::new("nowhere/at/all"));
    assert_eq!(md("data/hosts-link").ino(), hosts.ino());
    assert_eq!(md("data/hosts-link2").ino(), hosts.ino());
    assert_eq!(md("etc/hosts").nlink(), 3);

    let fifo = md("data/fifo");
    assert!(fifo.file_type().is_fifo());
    assert_eq!((fifo.mode() & 0o7777, fifo.uid(), fifo.gid()), (0o620, 7, 8));
    let null = md("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!((null.rdev(), null.mode() & 0o7777), (rustix::fs::makedev(1, 3), 0o666));
    let block = md("dev/loop9");
    assert!(block.file_type().is_block_device());
    assert_eq!((block.rdev(), block.gid()), (rustix::fs::makedev(7, 9), 6));

    let long_dir_110 = long_name(6);
    assert!(long_dir_110.len() > 100);
    assert_eq!(md(&long_dir_110).mode() & 0o7777, 0o700);
    assert_eq!(fs::read(dir.join(&long_dir_110).join("pax-named")).unwrap(), b"pax");
    let long_dir_300 = long_name(16);
    assert!(long_dir_300.len() > 255);
    assert_eq!(fs::read(dir.join(&long_dir_300).join("gnu-named")).unwrap(), b"gnu");
}

#[test]
fn write_layer_round_trips_and_is_deterministic() {
    require_root();
    let first = tempfile::tempdir().unwrap();
    apply_layer(first.path(), &every_kind()[..]).unwrap();

    let mut tar1 = Vec::new();
    let written = write_layer(first.path(), &mut tar1).unwrap();
    assert_eq!(written, tar1.len() as u64);
    let mut again = Vec::new();
    write_layer(first.path(), &mut again).unwrap();
    assert!(tar1 == again, "the same tree gave different bytes");

    let second = tempfile::tempdir().unwrap();
    apply_layer(second.path(), &tar1[..]).unwrap();
    // Written tars carry whole-second mtimes, as docker's do.
    assert_same_tree(&snapshot(first.path(), &SECONDS), &snapshot(second.path(), &SECONDS));

    let mut tar2 = Vec::new();
    write_layer(second.path(), &mut tar2).unwrap();
    assert!(tar1 == tar2, "re-applying and writing again changed the bytes");

    // Hardlinks are tar hardlinks to the first name; GNU tar reads the result.
    let names = tar_names(&tar1);
    assert!(names.contains(&"data/hosts-link".to_owned()));
    let listing = std::process::Command::new("tar")
        .args(["-tvf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&tar1)?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(listing.status.success(), "GNU tar rejected the layer: {}", String::from_utf8_lossy(&listing.stderr));
    let listing = String::from_utf8_lossy(&listing.stdout);
    // Walk order is byte order: data/ comes before etc/.
    assert!(listing.contains("data/hosts-link2 link to data/hosts-link"), "{listing}");
    assert!(listing.contains("etc/hosts link to data/hosts-link"), "{listing}");
    assert!(listing.contains("usr/bin/passwd"), "{listing}");
}

#[test]
fn entries_of_another_type_are_replaced_and_directories_merged() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = Layer::new();
    layer
        .dir("d/", &Meta::mode(0o755))
        .file("d/keep", b"keep", &Meta::mode(0o644))
        .file("f", b"file", &Meta::mode(0o644))
        .dir("gone/", &Meta::mode(0o755))
        .file("gone/child", b"x", &Meta::mode(0o644))
        .symlink("s", "f")
        // The same names again, with other types.
        .dir("d/", &Meta::mode(0o700).owner(5, 5))
        .dir("f/", &Meta::mode(0o755))
        .file("gone", b"now a file", &Meta::mode(0o600))
        .file("s", b"not a link", &Meta::mode(0o644))
        .file("d/keep", b"replaced", &Meta::mode(0o644));
    apply_layer(tmp.path(), &layer.bytes()[..]).unwrap();
    let d = fs::metadata(tmp.path().join("d")).unwrap();
    assert_eq!((d.mode() & 0o7777, d.uid()), (0o700, 5), "a directory over a directory merges its metadata");
    assert_eq!(fs::read(tmp.path().join("d/keep")).unwrap(), b"replaced");
    assert!(fs::symlink_metadata(tmp.path().join("f")).unwrap().is_dir());
    assert_eq!(fs::read(tmp.path().join("gone")).unwrap(), b"now a file");
    let s = fs::symlink_metadata(tmp.path().join("s")).unwrap();
    assert!(s.is_file());
    // Writing `s` replaced the link; it did not write through it into `f`.
    assert_eq!(fs::read(tmp.path().join("s")).unwrap(), b"not a link");
}

#[test]
fn replacing_a_hardlinked_file_leaves_the_other_name_alone() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = Layer::new();
    layer.file("a", b"original", &Meta::mode(0o644)).hardlink("b", "a").file("b", b"new", &Meta::mode(0o644));
    apply_layer(tmp.path(), &layer.bytes()[..]).unwrap();
    assert_eq!(fs::read(tmp.path().join("a")).unwrap(), b"original");
    assert_eq!(fs::read(tmp.path().join("b")).unwrap(), b"new");
}

#[test]
fn files_in_a_setgid_directory_keep_their_own_group() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = Layer::new();
    layer
        .dir("mail/", &Meta::mode(0o2775).owner(0, 8))
        .file("mail/root", b"", &Meta::mode(0o600))
        .dir("mail/sub/", &Meta::mode(0o755));
    apply_layer(tmp.path(), &layer.bytes()[..]).unwrap();
    let file = fs::metadata(tmp.path().join("mail/root")).unwrap();
    assert_eq!((file.gid(), file.mode() & 0o7777), (0, 0o600));
    let sub = fs::metadata(tmp.path().join("mail/sub")).unwrap();
    assert_eq!((sub.gid(), sub.mode() & 0o7777), (0, 0o755), "no setgid bit or group inherited");
}

#[test]
fn a_truncated_layer_is_an_error() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = Layer::new();
    layer.file("big", &vec![7u8; 100_000], &Meta::mode(0o644));
    let bytes = layer.bytes();
    let err = apply_layer(tmp.path(), &bytes[..50_000]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("big"), "{err}");
}

#[test]
fn a_corrupt_header_is_an_error() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = Layer::new().file("f", b"x", &Meta::mode(0o644)).bytes();
    bytes[0] ^= 0xff;
    let err = apply_layer(tmp.path(), &bytes[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[test]
fn a_file_entry_for_the_root_is_rejected_and_root_dir_entries_skipped() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut layer = Layer::new();
    layer.dir("/", &Meta::mode(0o700).owner(9, 9)).dir("./", &Meta::mode(0o700));
    apply_layer(tmp.path(), &layer.bytes()[..]).unwrap();
    let root = fs::metadata(tmp.path()).unwrap();
    assert_eq!((root.mode() & 0o7777, root.uid()), (0o755, 0), "the root belongs to the snapshot");

    let err = apply_layer(tmp.path(), &Layer::new().file("./", b"x", &Meta::mode(0o644)).bytes()[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[test]
fn overlay_xattrs_in_a_tar_are_not_applied() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = Layer::new();
    layer
        .dir("d/", &Meta::mode(0o755).xattr("trusted.overlay.opaque", b"y").xattr("trusted.overlay.redirect", b"/etc"));
    apply_layer(tmp.path(), &layer.bytes()[..]).unwrap();
    assert_eq!(getxattr(&tmp.path().join("d"), b"trusted.overlay.opaque"), None);
    assert_eq!(getxattr(&tmp.path().join("d"), b"trusted.overlay.redirect"), None);
}

#[test]
fn merged_form_applies_the_same_entries() {
    require_root();
    let overlay = tempfile::tempdir().unwrap();
    let merged = tempfile::tempdir().unwrap();
    apply_layer(overlay.path(), &every_kind()[..]).unwrap();
    apply_layer_merged(merged.path(), &every_kind()[..]).unwrap();
    // Directories missing from the tar get the time they were made at.
    let opts = SnapshotOptions { whole_seconds: false, dir_mtimes: false };
    assert_same_tree(&snapshot(overlay.path(), &opts), &snapshot(merged.path(), &opts));
}

#[test]
fn layers_apply_concurrently_without_touching_process_state() {
    require_root();
    let cwd = std::env::current_dir().unwrap();
    let umask_before = fs::read_to_string("/proc/self/status").unwrap();
    let umask_before = umask_before.lines().find(|l| l.starts_with("Umask:")).unwrap().to_owned();
    let tar = every_kind();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    std::thread::scope(|scope| {
        for dir in &dirs {
            let tar = &tar;
            scope.spawn(move || apply_layer(dir.path(), &tar[..]).unwrap());
        }
    });
    let opts = SnapshotOptions { whole_seconds: false, dir_mtimes: false };
    let first = snapshot(dirs[0].path(), &opts);
    for dir in &dirs[1..] {
        assert_same_tree(&first, &snapshot(dir.path(), &opts));
    }
    assert_eq!(std::env::current_dir().unwrap(), cwd);
    let umask_after = fs::read_to_string("/proc/self/status").unwrap();
    assert!(umask_after.lines().any(|l| l == umask_before));
}
