//! Shared test helpers: tar building (including names the tar crate refuses), tree snapshots,
//! sandboxes with sentinels, overlay mount guards.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

pub fn require_root() {
    assert_eq!(rustix::process::geteuid().as_raw(), 0, "these tests need root (mknod, chown, overlay mounts)");
}

/// Metadata of one entry of a layer being built.
#[derive(Clone)]
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// PAX records written before the entry (mtime with nanoseconds, xattrs, path...).
    pub pax: Vec<(String, Vec<u8>)>,
}

impl Meta {
    pub fn mode(mode: u32) -> Meta {
        Meta { mode, uid: 0, gid: 0, mtime: 1_600_000_000, pax: Vec::new() }
    }

    pub fn owner(mut self, uid: u64, gid: u64) -> Meta {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn mtime(mut self, secs: u64) -> Meta {
        self.mtime = secs;
        self
    }

    pub fn pax(mut self, key: &str, value: &[u8]) -> Meta {
        self.pax.push((key.to_owned(), value.to_vec()));
        self
    }

    pub fn xattr(self, name: &str, value: &[u8]) -> Meta {
        self.pax(&format!("SCHILY.xattr.{name}"), value)
    }
}

/// Builds layer tars entry by entry. Names and link names are written as given (no cleaning, no
/// refusal of `..` or absolute paths): long ones go into PAX `path`/`linkpath` records.
pub struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Layer::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer { builder: tar::Builder::new(Vec::new()) }
    }

    pub fn entry(&mut self, kind: EntryType, name: &str, link: Option<&str>, data: &[u8], meta: &Meta) -> &mut Self {
        self.entry_bytes(kind, name.as_bytes(), link.map(str::as_bytes), data, meta, (0, 0))
    }

    pub fn entry_bytes(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: Option<&[u8]>,
        data: &[u8],
        meta: &Meta,
        device: (u32, u32),
    ) -> &mut Self {
        let mut header = Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid);
        header.set_gid(meta.gid);
        header.set_mtime(meta.mtime);
        header.set_size(data.len() as u64);
        header.set_device_major(device.0).unwrap();
        header.set_device_minor(device.1).unwrap();
        let mut pax = meta.pax.clone();
        let old = header.as_old_mut();
        if name.len() < old.name.len() {
            old.name[..name.len()].copy_from_slice(name);
        } else {
            old.name[..10].copy_from_slice(b"longname__");
            pax.push(("path".into(), name.to_vec()));
        }
        if let Some(link) = link {
            if link.len() < old.linkname.len() {
                old.linkname[..link.len()].copy_from_slice(link);
            } else {
                pax.push(("linkpath".into(), link.to_vec()));
            }
        }
        header.set_cksum();
        if !pax.is_empty() {
            self.builder.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).unwrap();
        }
        self.builder.append(&header, data).unwrap();
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8], meta: &Meta) -> &mut Self {
        self.entry(EntryType::Regular, name, None, data, meta)
    }

    pub fn dir(&mut self, name: &str, meta: &Meta) -> &mut Self {
        self.entry(EntryType::Directory, name, None, b"", meta)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(EntryType::Symlink, name, Some(target), b"", &Meta::mode(0o777))
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(EntryType::Link, name, Some(target), b"", &Meta::mode(0o644))
    }

    pub fn char_device(&mut self, name: &str, major: u32, minor: u32, meta: &Meta) -> &mut Self {
        self.entry_bytes(EntryType::Char, name.as_bytes(), None, b"", meta, (major, minor))
    }

    pub fn fifo(&mut self, name: &str, meta: &Meta) -> &mut Self {
        self.entry(EntryType::Fifo, name, None, b"", meta)
    }

    /// Appends through the tar crate's own path handling (GNU long names for long paths).
    pub fn gnu_file(&mut self, name: &str, data: &[u8], meta: &Meta) -> &mut Self {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid);
        header.set_gid(meta.gid);
        header.set_mtime(meta.mtime);
        header.set_size(data.len() as u64);
        self.builder.append_data(&mut header, name, data).unwrap();
        self
    }

    pub fn bytes(&mut self) -> Vec<u8> {
        self.builder.finish().unwrap();
        self.builder.get_ref().clone()
    }
}

/// What a tree entry looks like, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub content: Vec<u8>,
    pub link: Vec<u8>,
    pub rdev: u64,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The first path (in sorted order) sharing this inode, for hardlinks.
    pub same_inode_as: Option<PathBuf>,
}

pub struct SnapshotOptions {
    /// Compare mtimes at whole seconds (trees written back to tar lose nanoseconds).
    pub whole_seconds: bool,
    /// Compare directory mtimes (views whose directories were changed by deletions do not).
    pub dir_mtimes: bool,
}

pub const EXACT: SnapshotOptions = SnapshotOptions { whole_seconds: false, dir_mtimes: true };
pub const SECONDS: SnapshotOptions = SnapshotOptions { whole_seconds: true, dir_mtimes: true };

/// Every entry below `root` (not `root` itself), by relative path.
pub fn snapshot(root: &Path, opts: &SnapshotOptions) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    let mut paths = Vec::new();
    collect(root, Path::new(""), &mut paths);
    paths.sort();
    for rel in paths {
        let full = root.join(&rel);
        let md = fs::symlink_metadata(&full).unwrap();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let same_inode_as = if !ft.is_dir() && md.nlink() > 1 {
            let first = inodes.entry((md.dev(), md.ino())).or_insert_with(|| rel.clone()).clone();
            (first != rel).then_some(first)
        } else {
            None
        };
        let content = if ft.is_file() { fs::read(&full).unwrap() } else { Vec::new() };
        let link =
            if ft.is_symlink() { fs::read_link(&full).unwrap().as_os_str().as_bytes().to_vec() } else { Vec::new() };
        let mut mtime = (md.mtime(), md.mtime_nsec());
        if opts.whole_seconds {
            mtime.1 = 0;
        }
        if ft.is_dir() && !opts.dir_mtimes {
            mtime = (0, 0);
        }
        out.insert(
            rel,
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime,
                content,
                link,
                rdev: md.rdev(),
                xattrs: xattrs(&full),
                same_inode_as,
            },
        );
    }
    out
}

fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(root.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let child = rel.join(entry.file_name());
        out.push(child.clone());
        if entry.file_type().unwrap().is_dir() {
            collect(root, &child, out);
        }
    }
}

/// All xattrs of `path` (not following a symlink), overlay's own left out.
pub fn xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap_or(0);
    let mut out = BTreeMap::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") {
            continue;
        }
        out.insert(name.to_vec(), getxattr(path, name).unwrap());
    }
    out
}

pub fn getxattr(path: &Path, name: &[u8]) -> Option<Vec<u8>> {
    let mut value = vec![0u8; 65536];
    let n = rustix::fs::lgetxattr(path, name, &mut value[..]).ok()?;
    value.truncate(n);
    Some(value)
}

/// Asserts two snapshots are equal, naming the first difference.
pub fn assert_same_tree(a: &BTreeMap<PathBuf, Node>, b: &BTreeMap<PathBuf, Node>) {
    let a_keys: Vec<_> = a.keys().collect();
    let b_keys: Vec<_> = b.keys().collect();
    assert_eq!(a_keys, b_keys, "the trees hold different paths");
    for (path, node) in a {
        assert_eq!(node, &b[path], "entry {} differs", path.display());
    }
}

/// A temp tree for escape tests: `base/a/b/layer` is the target, with a sentinel file next to
/// it (`base/a/b/sentinel`) and a sentinel directory outside (`base/a/outside-dir`).
pub struct Sandbox {
    pub tmp: tempfile::TempDir,
    pub layer: PathBuf,
    before: BTreeMap<PathBuf, Node>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("a/b/layer");
        fs::create_dir_all(&layer).unwrap();
        fs::write(tmp.path().join("a/b/sentinel"), b"sentinel").unwrap();
        fs::create_dir_all(tmp.path().join("a/outside-dir")).unwrap();
        fs::write(tmp.path().join("a/outside-dir/x"), b"outside").unwrap();
        fs::write(tmp.path().join("a/outside-dir/file"), b"outside file").unwrap();
        let before = Sandbox::outside(tmp.path(), &layer);
        Sandbox { tmp, layer, before }
    }

    /// Everything of the sandbox but the layer directory's content.
    fn outside(base: &Path, layer: &Path) -> BTreeMap<PathBuf, Node> {
        let rel = layer.strip_prefix(base).unwrap().to_owned();
        let mut all = snapshot(base, &EXACT);
        all.retain(|p, _| !p.starts_with(&rel) || p == &rel);
        // The layer directory's own times and link count change with its content.
        if let Some(node) = all.get_mut(&rel) {
            node.mtime = (0, 0);
        }
        all
    }

    /// Asserts nothing outside the layer directory was created, removed or changed.
    pub fn assert_outside_untouched(&self) {
        let after = Sandbox::outside(self.tmp.path(), &self.layer);
        assert_same_tree(&self.before, &after);
    }
}

/// Unmounts on drop, also when the test fails.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = berth_snapshot::unmount(&self.0);
    }
}

/// Names of the entries of a tar, in order.
pub fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar);
    archive.entries().unwrap().map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned()).collect()
}

pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}
