//! `cp`: files and directories between a container and the local filesystem through the
//! archive API (`GET`/`PUT /containers/{id}/archive`, `HEAD` for the path's stat), with
//! the path rules of docker's `pkg/archive` copy: trailing `/` and `/.`, renaming on
//! copy, `-L`, and `-` for a tar stream on stdin or stdout.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use http::Method;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::runopts::clean_path;
use crate::cli::Cli;
use crate::client::{empty, escape_path, from_reader, read_body, Query};
use crate::error::{go_io_error, Error, Result};
use crate::flags::Parsed;
use crate::format::units::human_size_with_precision;
use crate::term;

/// Go's `os.ModeDir`, `os.ModeSymlink`, `os.ModeDevice` and `os.ModeIrregular` bits.
const MODE_DIR: u64 = 1 << 31;
const MODE_SYMLINK: u64 = 1 << 27;
const MODE_DEVICE: u64 = 1 << 26;
const MODE_IRREGULAR: u64 = 1 << 19;

/// A container path's stat, as the `X-Docker-Container-Path-Stat` header carries it.
#[derive(Debug, Clone, Default)]
struct PathStat {
    mode: u64,
    link_target: String,
}

impl PathStat {
    fn is_dir(&self) -> bool {
        self.mode & MODE_DIR != 0
    }

    fn is_symlink(&self) -> bool {
        self.mode & MODE_SYMLINK != 0
    }
}

fn decode_stat(header: Option<&http::HeaderValue>) -> Option<PathStat> {
    let value = header?.to_str().ok()?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(value)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(value))
        .ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&data).ok()?;
    Some(PathStat {
        mode: doc
            .get("mode")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        link_target: doc
            .get("linkTarget")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

fn has_trailing_separator(path: &str) -> bool {
    path.ends_with('/')
}

fn specifies_current_dir(path: &str) -> bool {
    base_name(path) == "."
}

/// Go's `filepath.Base`.
fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() {
            ".".into()
        } else {
            "/".into()
        };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Go's `filepath.Dir`.
fn dir_name(path: &str) -> String {
    match path.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => clean_path(&path[..i]),
        None => ".".to_string(),
    }
}

/// Go's `filepath.Join` of two parts.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        return clean_path(name);
    }
    clean_path(&format!("{dir}/{name}"))
}

/// `archive.PreserveTrailingDotOrSeparator`.
fn preserve_trailing(cleaned: &str, original: &str) -> String {
    let mut out = cleaned.to_string();
    if !specifies_current_dir(&out) && specifies_current_dir(original) {
        if !has_trailing_separator(&out) {
            out.push('/');
        }
        out.push('.');
    }
    if !has_trailing_separator(&out) && has_trailing_separator(original) {
        out.push('/');
    }
    out
}

/// `archive.SplitPathDirEntry`.
fn split_path_dir_entry(path: &str) -> (String, String) {
    let mut cleaned = clean_path(path);
    if specifies_current_dir(path) {
        cleaned.push_str("/.");
    }
    (dir_name(&cleaned), base_name(&cleaned))
}

/// `archive.GetRebaseName`.
fn rebase_name(path: &str, resolved: &str) -> (String, String) {
    let mut resolved = resolved.to_string();
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if has_trailing_separator(path) && !has_trailing_separator(&resolved) {
        resolved.push('/');
    }
    let rebase = if base_name(path) != base_name(&resolved) {
        base_name(path)
    } else {
        String::new()
    };
    (resolved, rebase)
}

/// The absolute form of a local path, keeping a trailing `/` or `/.`.
fn resolve_local_path(path: &str) -> Result<String> {
    let absolute = if path.starts_with('/') {
        clean_path(path)
    } else {
        let cwd = std::env::current_dir().map_err(|source| Error::Io {
            operation: "getting the working directory",
            source,
        })?;
        clean_path(&format!("{}/{path}", cwd.display()))
    };
    Ok(preserve_trailing(&absolute, path))
}

/// docker's `splitCpArg`: `CONTAINER:PATH`, unless the argument is a local path.
fn split_cp_arg(arg: &str) -> (String, String) {
    if arg.starts_with('/') {
        return (String::new(), arg.to_string());
    }
    match arg.split_once(':') {
        Some((container, path)) if !container.starts_with('.') => {
            (container.to_string(), path.to_string())
        }
        _ => (String::new(), arg.to_string()),
    }
}

/// Where a copy lands (docker's `CopyInfo`).
#[derive(Debug, Clone, Default)]
struct CopyInfo {
    path: String,
    exists: bool,
    is_dir: bool,
    rebase: String,
}

/// `archive.PrepareArchiveCopy`: the directory to extract in and how to rename the
/// archive's top entry (`None` keeps the names).
fn prepare_copy(src: &CopyInfo, dst: &CopyInfo) -> Result<(String, Option<(String, String)>)> {
    let (dst_dir, dst_base) = split_path_dir_entry(&dst.path);
    let (_, mut src_base) = split_path_dir_entry(&src.path);
    if !src.rebase.is_empty() {
        src_base = src.rebase.clone();
    }
    if dst.exists && dst.is_dir {
        return Ok((dst.path.clone(), None));
    }
    if dst.exists && src.is_dir {
        return Err(Error::InvalidArgument("cannot copy directory".to_string()));
    }
    if !dst.exists
        && !src.is_dir
        && (has_trailing_separator(&dst.path) || specifies_current_dir(&dst.path))
    {
        return Err(Error::InvalidArgument("no such directory".to_string()));
    }
    Ok((dst_dir, Some((src_base, dst_base))))
}

/// `archive.RebaseArchiveEntries`' renaming: the first occurrence of the old base.
fn rebase(name: &str, rename: &Option<(String, String)>) -> String {
    match rename {
        Some((old, new)) => {
            let old = if old == "/" { "" } else { old.as_str() };
            name.replacen(old, new, 1)
        }
        None => name.to_string(),
    }
}

/// The normal components of an archive path; `None` when it climbs out or is empty.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    }
}

fn untar_error(e: io::Error) -> Error {
    Error::Io {
        operation: "extracting archive",
        source: e,
    }
}

/// docker's `Untar` with `NoLchown` and `NoOverwriteDirNonDir`: extracts `archive` into
/// `dir`, renaming entries first, never writing outside `dir`.
fn untar(archive: impl Read, dir: &Path, rename: &Option<(String, String)>) -> Result<()> {
    let root = fs::canonicalize(dir).map_err(|source| Error::File {
        operation: "stat",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries().map_err(untar_error)? {
        let mut entry = entry.map_err(untar_error)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(relative) = safe_relative(&rebase(&name, rename)) else {
            continue;
        };
        let target = root.join(&relative);
        let kind = entry.header().entry_type();
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(untar_error)?;
            let real = fs::canonicalize(parent).map_err(untar_error)?;
            if !real.starts_with(&root) {
                return Err(Error::InvalidArgument(format!(
                    "invalid archive entry {name}: it leaves the destination"
                )));
            }
        }
        if let Ok(existing) = fs::symlink_metadata(&target) {
            let dir_entry = kind.is_dir();
            if existing.is_dir() && !dir_entry {
                return Err(Error::InvalidArgument(format!(
                    "cannot overwrite directory \"{}\" with non-directory \"{name}\"",
                    target.display()
                )));
            }
            if !existing.is_dir() && dir_entry {
                return Err(Error::InvalidArgument(format!(
                    "cannot overwrite non-directory \"{}\" with directory \"{name}\"",
                    target.display()
                )));
            }
        }
        if kind.is_hard_link() {
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let Some(source) = safe_relative(&rebase(&link, rename)) else {
                continue;
            };
            let _ = fs::remove_file(&target);
            fs::hard_link(root.join(source), &target).map_err(untar_error)?;
            continue;
        }
        entry.set_preserve_permissions(true);
        entry.set_preserve_mtime(true);
        entry.set_unpack_xattrs(false);
        entry.unpack(&target).map_err(untar_error)?;
    }
    Ok(())
}

/// `archive.TarWithOptions` for one source (file or tree), with entries renamed as
/// `rename` says, written to `out`.
fn write_tar(
    source_dir: &str,
    source_base: &str,
    rename: &Option<(String, String)>,
    out: impl Write,
) -> io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    let start = Path::new(source_dir).join(source_base);
    let mut stack: Vec<(PathBuf, String)> = vec![(start, source_base.to_string())];
    while let Some((path, name)) = stack.pop() {
        let meta = fs::symlink_metadata(&path)?;
        let archived = rebase(&name, rename);
        builder.append_path_with_name(&path, &archived)?;
        if meta.is_dir() {
            let mut children: Vec<String> = fs::read_dir(&path)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            // Walked in lexical order, as Go's filepath.Walk does.
            children.sort();
            for child in children.into_iter().rev() {
                stack.push((path.join(&child), format!("{name}/{child}")));
            }
        }
    }
    builder.finish()
}

/// docker's `cp`.
pub async fn cp(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let (source, destination) = (&p.args[0], &p.args[1]);
    if source.is_empty() {
        return Err(Error::InvalidArgument(
            "source can not be empty".to_string(),
        ));
    }
    if destination.is_empty() {
        return Err(Error::InvalidArgument(
            "destination can not be empty".to_string(),
        ));
    }
    let quiet = if p.changed("quiet") {
        p.bool("quiet")
    } else {
        !term::stdout_is_terminal()
    };
    let (src_container, src_path) = split_cp_arg(source);
    let (dst_container, dst_path) = split_cp_arg(destination);
    let options = Options {
        follow_link: p.bool("follow-link"),
        archive: p.bool("archive"),
        quiet,
    };
    match (src_container.is_empty(), dst_container.is_empty()) {
        (false, true) => {
            copy_from_container(cli, &src_container, &src_path, &dst_path, &options).await
        }
        (true, false) => {
            copy_to_container(cli, &src_path, &dst_container, &dst_path, &options).await
        }
        (false, false) => Err(Error::InvalidArgument(
            "copying between containers is not supported".to_string(),
        )),
        (true, true) => Err(Error::InvalidArgument(
            "must specify at least one container source".to_string(),
        )),
    }
}

struct Options {
    follow_link: bool,
    archive: bool,
    quiet: bool,
}

/// `HEAD /containers/{id}/archive?path=`: the path's stat, or `None`.
async fn stat_path(cli: &mut Cli, container: &str, path: &str) -> Option<PathStat> {
    let query = Query::new().add("path", path);
    let response = cli
        .client()
        .request(
            Method::HEAD,
            &format!("/containers/{}/archive", escape_path(container)),
            &query,
            &[],
            empty(),
        )
        .await
        .ok()?;
    let stat = decode_stat(response.headers().get("X-Docker-Container-Path-Stat"));
    let _ = read_body(response).await;
    stat
}

/// docker's `ValidateOutputPath` for a local destination.
fn validate_output_path(path: &str) -> Result<()> {
    let dir = dir_name(&clean_path(path));
    if !dir.is_empty() && dir != "." && !Path::new(&dir).exists() {
        return Err(Error::InvalidArgument(format!(
            "invalid output path: directory \"{dir}\" does not exist"
        )));
    }
    if let Ok(meta) = fs::metadata(path) {
        let kind = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        if !kind.is_dir() && !kind.is_file() && (kind.is_block_device() || kind.is_char_device()) {
            return Err(Error::InvalidArgument(format!(
                "invalid output path: \"{path}\" must be a directory or a regular file: got a device"
            )));
        }
    }
    Ok(())
}

/// `archive.CopyInfoDestinationPath`: follows symlinks; a missing path needs an existing
/// parent directory.
fn local_destination(path: &str) -> Result<CopyInfo> {
    let mut path = path.to_string();
    let original = path.clone();
    let mut hops = 0;
    loop {
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > 10 {
                    return Err(Error::InvalidArgument(format!(
                        "too many symlinks in {original}"
                    )));
                }
                let target = fs::read_link(&path).map_err(|source| Error::File {
                    operation: "readlink",
                    path: PathBuf::from(&path),
                    source,
                })?;
                let target = target.to_string_lossy().into_owned();
                path = if target.starts_with('/') {
                    target
                } else {
                    join(&split_path_dir_entry(&path).0, &target)
                };
            }
            Ok(meta) => {
                return Ok(CopyInfo {
                    path,
                    exists: true,
                    is_dir: meta.is_dir(),
                    rebase: String::new(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (parent, _) = split_path_dir_entry(&path);
                let meta = fs::metadata(&parent).map_err(|source| Error::File {
                    operation: "stat",
                    path: PathBuf::from(&parent),
                    source,
                })?;
                if !meta.is_dir() {
                    return Err(Error::InvalidArgument("not a directory".to_string()));
                }
                return Ok(CopyInfo {
                    path,
                    ..CopyInfo::default()
                });
            }
            Err(source) => {
                return Err(Error::File {
                    operation: "lstat",
                    path: PathBuf::from(&path),
                    source,
                })
            }
        }
    }
}

/// Reads chunks handed over from the runtime on a blocking thread.
struct ChannelReader {
    rx: mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

async fn copy_from_container(
    cli: &mut Cli,
    container: &str,
    src_path: &str,
    dst_path: &str,
    options: &Options,
) -> Result<()> {
    let dst_path = if dst_path == "-" {
        dst_path.to_string()
    } else {
        resolve_local_path(dst_path)?
    };
    validate_output_path(&dst_path)?;
    let mut src_path = src_path.to_string();
    let mut rebase_to = String::new();
    if options.follow_link {
        if let Some(stat) = stat_path(cli, container, &src_path).await {
            if stat.is_symlink() {
                let mut target = stat.link_target.clone();
                if !target.starts_with('/') {
                    target = join(&split_path_dir_entry(&src_path).0, &target);
                }
                let (resolved, rebase) = rebase_name(&src_path, &target);
                src_path = resolved;
                rebase_to = rebase;
            }
        }
    }
    let query = Query::new().add("path", src_path.as_str());
    let response = cli
        .client()
        .request(
            Method::GET,
            &format!("/containers/{}/archive", escape_path(container)),
            &query,
            &[],
            empty(),
        )
        .await?;
    let stat =
        decode_stat(response.headers().get("X-Docker-Container-Path-Stat")).unwrap_or_default();
    let mut body = response.into_body();
    if dst_path == "-" {
        let mut stdout = io::stdout().lock();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| Error::Transport {
                operation: "reading archive",
                source,
            })?;
            if let Ok(data) = frame.into_data() {
                stdout.write_all(&data).map_err(|source| Error::Io {
                    operation: "writing output",
                    source,
                })?;
            }
        }
        return stdout.flush().map_err(|source| Error::Io {
            operation: "writing output",
            source,
        });
    }
    let src = CopyInfo {
        path: src_path.clone(),
        exists: true,
        is_dir: stat.is_dir(),
        rebase: rebase_to.clone(),
    };
    // Entries come named after the path the daemon archived; `-L` renames them back.
    let first_rename = if rebase_to.is_empty() {
        None
    } else {
        Some((split_path_dir_entry(&src.path).1, rebase_to.clone()))
    };
    let dst = local_destination(&dst_path)?;
    let (dst_dir, rename) = prepare_copy(&src, &dst)?;
    let (tx, rx) = mpsc::channel::<bytes::Bytes>(16);
    let extract = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            rx,
            current: bytes::Bytes::new(),
        };
        let reader = RenamingReader::new(reader, first_rename)?;
        untar(reader, Path::new(&dst_dir), &rename)
    });
    let mut copied: u64 = 0;
    let mut send_failed = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| Error::Transport {
            operation: "reading archive",
            source,
        })?;
        if let Ok(data) = frame.into_data() {
            copied += data.len() as u64;
            if tx.send(data).await.is_err() {
                send_failed = true;
                break;
            }
        }
    }
    drop(tx);
    let result = extract
        .await
        .map_err(|e| Error::InvalidArgument(format!("extracting archive: {e}")))?;
    result?;
    if send_failed {
        return Err(Error::InvalidArgument(
            "extracting archive: stopped early".to_string(),
        ));
    }
    if !options.quiet {
        eprintln!(
            "Successfully copied {} to {dst_path}",
            human_size_with_precision(copied as f64, 3)
        );
    }
    Ok(())
}

/// Applies `-L`'s renaming (`RebaseArchiveEntries`) while reading: an archive is
/// rewritten entry by entry only when there is something to rename.
enum RenamingReader<R: Read> {
    Plain(R),
    Renamed(io::Cursor<Vec<u8>>),
}

impl<R: Read> RenamingReader<R> {
    fn new(reader: R, rename: Option<(String, String)>) -> Result<RenamingReader<R>> {
        let Some(rename) = rename else {
            return Ok(RenamingReader::Plain(reader));
        };
        let mut archive = tar::Archive::new(reader);
        let mut builder = tar::Builder::new(Vec::new());
        for entry in archive.entries().map_err(untar_error)? {
            let mut entry = entry.map_err(untar_error)?;
            let mut header = entry.header().clone();
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let renamed = rebase(&name, &Some(rename.clone()));
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(untar_error)?;
            if header.entry_type().is_hard_link() || header.entry_type().is_symlink() {
                let link = entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                let link = if header.entry_type().is_hard_link() {
                    rebase(&link, &Some(rename.clone()))
                } else {
                    link
                };
                builder
                    .append_link(&mut header, &renamed, &link)
                    .map_err(untar_error)?;
            } else {
                builder
                    .append_data(&mut header, &renamed, data.as_slice())
                    .map_err(untar_error)?;
            }
        }
        let bytes = builder.into_inner().map_err(untar_error)?;
        Ok(RenamingReader::Renamed(io::Cursor::new(bytes)))
    }
}

impl<R: Read> Read for RenamingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            RenamingReader::Plain(r) => r.read(buf),
            RenamingReader::Renamed(c) => c.read(buf),
        }
    }
}

/// Counts what passes through (for the "Successfully copied" line).
struct Counting<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// `archive.ResolveHostSourcePath` and `CopyInfoSourcePath`.
fn local_source(path: &str, follow_link: bool) -> Result<CopyInfo> {
    let resolve = |p: &str| {
        fs::canonicalize(p)
            .map(|r| r.to_string_lossy().into_owned())
            .map_err(|source| Error::File {
                operation: "lstat",
                path: PathBuf::from(p),
                source,
            })
    };
    let (resolved, rebase) = if follow_link {
        let real = resolve(path)?;
        rebase_name(path, &real)
    } else {
        let (dir, base) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        let dir = if dir.is_empty() { "." } else { dir };
        let real_dir = resolve(dir)?;
        let resolved = format!("{}/{base}", real_dir.trim_end_matches('/'));
        let rebase = if has_trailing_separator(path) && base_name(path) != base_name(&resolved) {
            base_name(path)
        } else {
            String::new()
        };
        (resolved, rebase)
    };
    let meta = fs::symlink_metadata(&resolved).map_err(|source| Error::File {
        operation: "lstat",
        path: PathBuf::from(&resolved),
        source,
    })?;
    Ok(CopyInfo {
        path: resolved,
        exists: true,
        is_dir: meta.is_dir(),
        rebase,
    })
}

async fn copy_to_container(
    cli: &mut Cli,
    src_path: &str,
    container: &str,
    dst_path: &str,
    options: &Options,
) -> Result<()> {
    let src_path = if src_path == "-" {
        src_path.to_string()
    } else {
        resolve_local_path(src_path)?
    };
    let mut dst = CopyInfo {
        path: dst_path.to_string(),
        ..CopyInfo::default()
    };
    let mut stat = stat_path(cli, container, dst_path).await;
    if let Some(s) = stat.as_ref().filter(|s| s.is_symlink()) {
        let mut target = s.link_target.clone();
        if !target.starts_with('/') {
            target = join(&split_path_dir_entry(dst_path).0, &target);
        }
        dst.path = target.clone();
        stat = stat_path(cli, container, &target).await;
    }
    if let Some(s) = &stat {
        let bad = if s.mode & MODE_DEVICE != 0 {
            Some("got a device")
        } else if s.mode & MODE_IRREGULAR != 0 {
            Some("got an irregular file")
        } else {
            None
        };
        if let Some(reason) = bad {
            return Err(Error::InvalidArgument(format!(
                "destination \"{container}:{dst_path}\" must be a directory or a regular file: {reason}"
            )));
        }
        dst.exists = true;
        dst.is_dir = s.is_dir();
    }
    let copied = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (dst_dir, body, failure) = if src_path == "-" {
        if !dst.is_dir {
            return Err(Error::InvalidArgument(format!(
                "destination \"{container}:{dst_path}\" must be a directory"
            )));
        }
        (dst.path.clone(), from_reader(Box::new(io::stdin())), None)
    } else {
        let src = local_source(&src_path, options.follow_link)?;
        let (dst_dir, rename) = prepare_copy(&src, &dst)?;
        let (source_dir, source_base) = split_path_dir_entry(&src.path);
        // The source's own rename (a trailing `/` through a symlink) comes first.
        let combined = match (src.rebase.is_empty(), rename) {
            (true, rename) => rename,
            (false, Some((_, new))) => Some((source_base.clone(), new)),
            (false, None) => Some((source_base.clone(), src.rebase.clone())),
        };
        let (reader, writer) =
            std::os::unix::net::UnixStream::pair().map_err(|source| Error::Io {
                operation: "creating archive pipe",
                source,
            })?;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let result = write_tar(&source_dir, &source_base, &combined, writer);
            let _ = done_tx.send(result);
        });
        let counting = Counting {
            inner: reader,
            count: copied.clone(),
        };
        (dst_dir, from_reader(Box::new(counting)), Some(done_rx))
    };
    let mut query = Query::new()
        .add("path", dst_dir.as_str())
        .add("noOverwriteDirNonDir", "true");
    if options.archive {
        query = query.add("copyUIDGID", "true");
    }
    let result = async {
        let response = cli
            .client()
            .request(
                Method::PUT,
                &format!("/containers/{}/archive", escape_path(container)),
                &query,
                &[("Content-Type", "application/x-tar".to_string())],
                body,
            )
            .await?;
        read_body(response).await
    }
    .await;
    if let Some(done) = failure {
        if let Ok(Err(e)) = done.await {
            if e.kind() != io::ErrorKind::BrokenPipe {
                return Err(Error::InvalidArgument(go_io_error(&e)));
            }
        }
    }
    result?;
    if !options.quiet {
        eprintln!(
            "Successfully copied {} to {container}:{}",
            human_size_with_precision(copied.load(std::sync::atomic::Ordering::Relaxed) as f64, 3),
            dst.path
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules_follow_pkg_archive() {
        assert_eq!(split_cp_arg("c1:/etc"), ("c1".into(), "/etc".into()));
        assert_eq!(split_cp_arg("/abs:x"), ("".into(), "/abs:x".into()));
        assert_eq!(split_cp_arg("./c:x"), ("".into(), "./c:x".into()));
        assert_eq!(split_cp_arg("-"), ("".into(), "-".into()));
        assert_eq!(preserve_trailing("/a/b", "b/."), "/a/b/.");
        assert_eq!(preserve_trailing("/a/b", "b/"), "/a/b/");
        assert_eq!(split_path_dir_entry("/a/b/."), ("/a/b".into(), ".".into()));
        assert_eq!(split_path_dir_entry("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(
            rebase_name("/x/link/", "/real"),
            ("/real/".into(), "link".into())
        );
        assert_eq!(
            rebase("dir/file", &Some(("dir".into(), "new".into()))),
            "new/file"
        );
    }

    #[test]
    fn prepare_copy_cases() {
        let file = CopyInfo {
            path: "/src/f".into(),
            exists: true,
            ..CopyInfo::default()
        };
        let dir = CopyInfo {
            is_dir: true,
            ..file.clone()
        };
        let existing_dir = CopyInfo {
            path: "/dst".into(),
            exists: true,
            is_dir: true,
            ..CopyInfo::default()
        };
        assert_eq!(
            prepare_copy(&file, &existing_dir).unwrap(),
            ("/dst".into(), None)
        );
        let missing = CopyInfo {
            path: "/dst/new".into(),
            ..CopyInfo::default()
        };
        assert_eq!(
            prepare_copy(&dir, &missing).unwrap(),
            ("/dst".into(), Some(("f".into(), "new".into())))
        );
        let missing_dir = CopyInfo {
            path: "/dst/new/".into(),
            ..CopyInfo::default()
        };
        assert_eq!(
            prepare_copy(&file, &missing_dir).unwrap_err().to_string(),
            "no such directory"
        );
        let existing_file = CopyInfo {
            path: "/dst/x".into(),
            exists: true,
            ..CopyInfo::default()
        };
        assert_eq!(
            prepare_copy(&dir, &existing_file).unwrap_err().to_string(),
            "cannot copy directory"
        );
    }

    #[test]
    fn tar_round_trip_with_rename_stays_inside() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("tree/sub")).unwrap();
        fs::write(src.path().join("tree/sub/a.txt"), "A").unwrap();
        std::os::unix::fs::symlink("sub/a.txt", src.path().join("tree/link")).unwrap();
        let mut archive = Vec::new();
        write_tar(
            &src.path().to_string_lossy(),
            "tree",
            &Some(("tree".into(), "copy".into())),
            &mut archive,
        )
        .unwrap();
        let dst = tempfile::tempdir().unwrap();
        untar(archive.as_slice(), dst.path(), &None).unwrap();
        assert_eq!(
            fs::read_to_string(dst.path().join("copy/sub/a.txt")).unwrap(),
            "A"
        );
        assert_eq!(
            fs::read_link(dst.path().join("copy/link")).unwrap(),
            PathBuf::from("sub/a.txt")
        );

        // An entry climbing out of the destination is skipped.
        let mut evil = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        {
            let name = b"../escape.txt";
            let gnu = header.as_old_mut();
            gnu.name[..name.len()].copy_from_slice(name);
        }
        header.set_cksum();
        evil.append(&header, &b"x"[..]).unwrap();
        let evil = evil.into_inner().unwrap();
        let inner = dst.path().join("inner");
        fs::create_dir(&inner).unwrap();
        untar(evil.as_slice(), &inner, &None).unwrap();
        assert!(!dst.path().join("escape.txt").exists());
    }
}
