//! Content-addressed blob files with resumable, verified ingest.
//!
//! Layout under the store root: `blobs/<alg>/<hex>` for committed blobs and
//! `ingest/<alg>-<hex>` for partial downloads. A partial download survives a crash and is
//! resumed by the next ingest of the same digest; commit verifies size and digest, fsyncs
//! and renames, so a blob path that exists always holds the full, verified content.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) the blob store under `root`.
    pub fn open(root: &Path) -> Result<BlobStore> {
        let store = BlobStore { blobs: root.join("blobs"), ingest: root.join("ingest") };
        for dir in [store.blobs.join("sha256"), store.blobs.join("sha512"), store.ingest.clone()] {
            fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        }
        Ok(store)
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.algorithm()).join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).exists()
    }

    pub fn size(&self, digest: &Digest) -> Result<u64> {
        match fs::metadata(self.path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::BlobNotFound(digest.to_string())),
            Err(e) => Err(Error::io("stat", self.path(digest))(e)),
        }
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::BlobNotFound(digest.to_string()),
            _ => Error::io("open", &path)(e),
        })
    }

    /// Reads a whole (small) blob such as a manifest or config.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        let path = self.path(digest);
        self.open_blob(digest)?.read_to_end(&mut data).map_err(Error::io("read", &path))?;
        Ok(data)
    }

    /// Stores `data` as a sha256 blob and returns its digest (no-op when present).
    pub fn put(&self, data: &[u8]) -> Result<Digest> {
        let digest = Digest::sha256_of(data);
        if !self.contains(&digest) {
            let mut ingest = self.ingest(&digest, Some(data.len() as u64))?;
            if ingest.offset() > 0 {
                ingest.restart()?;
            }
            ingest.write_all(data)?;
            ingest.commit()?;
        }
        Ok(digest)
    }

    /// Starts or resumes writing the blob `expected`. The returned ingest is positioned after
    /// the bytes a previous, interrupted ingest left (see [`Ingest::offset`]). Two ingests of
    /// the same digest at once conflict: the second gets an error.
    pub fn ingest(&self, expected: &Digest, expected_size: Option<u64>) -> Result<Ingest> {
        let path = self.ingest.join(format!("{}-{}", expected.algorithm(), expected.hex()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(Error::io("open ingest", &path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| Error::Io {
            op: "lock ingest",
            path: path.clone(),
            source: std::io::Error::other("another transfer of this blob is in progress"),
        })?;
        // Rehash what a previous attempt wrote so the digest check covers the whole blob.
        let mut hasher = expected.hasher();
        let mut offset = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(Error::io("read ingest", &path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        let mut ingest =
            Ingest { file, path, hasher, offset, expected: expected.clone(), expected_size, blobs: self.clone(), flushed: offset };
        if expected_size.is_some_and(|size| offset > size) {
            ingest.restart()?;
        }
        Ok(ingest)
    }

    /// Deletes a blob; deleting a missing blob is not an error.
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Every committed blob.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in ["sha256", "sha512"] {
            let dir = self.blobs.join(alg);
            for entry in fs::read_dir(&dir).map_err(Error::io("read dir", &dir))? {
                let entry = entry.map_err(Error::io("read dir", &dir))?;
                let name = entry.file_name();
                // Anything that is not a valid digest name is not ours to judge here.
                if let Ok(d) = format!("{alg}:{}", name.to_string_lossy()).parse() {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Rehashes a blob; an error says it is missing or corrupt.
    pub fn verify(&self, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        let mut file = self.open_blob(digest)?;
        let mut hasher = digest.hasher();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(Error::io("read", &path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let actual = hasher.finish();
        if &actual != digest {
            return Err(Error::DigestMismatch { expected: digest.to_string(), actual: actual.to_string() });
        }
        Ok(())
    }

    /// Partial downloads and their sizes.
    pub fn ingests(&self) -> Result<Vec<(PathBuf, u64, SystemTime)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.ingest).map_err(Error::io("read dir", &self.ingest))? {
            let entry = entry.map_err(Error::io("read dir", &self.ingest))?;
            if let Ok(meta) = entry.metadata() {
                out.push((entry.path(), meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
        Ok(out)
    }

    /// Removes partial downloads untouched for `age` (not locked by a running transfer).
    pub fn clean_ingests(&self, age: Duration) -> Result<u64> {
        let mut freed = 0;
        for (path, size, modified) in self.ingests()? {
            let stale = modified.elapsed().is_ok_and(|e| e >= age);
            let Ok(file) = File::open(&path) else { continue };
            if stale && rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
                fs::remove_file(&path).map_err(Error::io("remove", &path))?;
                freed += size;
            }
        }
        Ok(freed)
    }
}

/// A blob being written. Dropping it keeps the partial data for a later resume.
pub struct Ingest {
    file: File,
    path: PathBuf,
    hasher: Hasher,
    offset: u64,
    expected: Digest,
    expected_size: Option<u64>,
    blobs: BlobStore,
    /// Bytes already handed to writeback.
    flushed: u64,
}

/// How much written data triggers an asynchronous writeback request.
const WRITEBACK_CHUNK: u64 = 8 << 20;

/// Asks the kernel to start writing a range back without waiting for it.
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads the fd and integer arguments; a failure is harmless
    // (the fsync at commit still makes the data durable).
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

impl Ingest {
    /// How many bytes are already written (where a download should resume).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn digest(&self) -> &Digest {
        &self.expected
    }

    /// Drops the partial content and starts from zero.
    pub fn restart(&mut self) -> Result<()> {
        self.file.set_len(0).map_err(Error::io("truncate", &self.path))?;
        self.file.seek(SeekFrom::Start(0)).map_err(Error::io("seek", &self.path))?;
        self.hasher = self.expected.hasher();
        self.offset = 0;
        self.flushed = 0;
        Ok(())
    }

    pub fn write_all(&mut self, data: &[u8]) -> Result<()> {
        if let Some(size) = self.expected_size {
            if self.offset + data.len() as u64 > size {
                return Err(Error::SizeMismatch {
                    digest: self.expected.to_string(),
                    expected: size,
                    actual: self.offset + data.len() as u64,
                });
            }
        }
        self.file.write_all(data).map_err(Error::io("write", &self.path))?;
        self.hasher.update(data);
        self.offset += data.len() as u64;
        // Start writeback of what has piled up, so the fsync at commit finds little to do.
        if self.offset - self.flushed >= WRITEBACK_CHUNK {
            start_writeback(&self.file, self.flushed, self.offset - self.flushed);
            self.flushed = self.offset;
        }
        Ok(())
    }

    /// Verifies size and digest, makes the data durable and moves it into place. A digest
    /// mismatch discards the partial data (it can never become the right blob).
    pub fn commit(self) -> Result<()> {
        if let Some(size) = self.expected_size {
            if self.offset != size {
                return Err(Error::SizeMismatch { digest: self.expected.to_string(), expected: size, actual: self.offset });
            }
        }
        let actual = self.hasher.finish();
        if actual != self.expected {
            let _ = fs::remove_file(&self.path);
            return Err(Error::DigestMismatch { expected: self.expected.to_string(), actual: actual.to_string() });
        }
        self.file.sync_all().map_err(Error::io("fsync", &self.path))?;
        let dest = self.blobs.path(&self.expected);
        fs::rename(&self.path, &dest).map_err(Error::io("rename into", &dest))?;
        if let Some(dir) = dest.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("fsync", dir))?;
        }
        Ok(())
    }

    /// Throws the partial data away.
    pub fn abort(self) {
        let _ = fs::remove_file(&self.path);
    }
}
