//! Blob upload sessions, resumable across restarts.
//!
//! A session is the directory `uploads/<id>/` with `state.json` (repository, start time,
//! digest algorithm) and `data` (the bytes received so far). It appears by renaming a
//! complete temporary directory into place, so a session on disk always has both files.
//! Bytes are hashed as they are written; after a restart the data is rehashed, so the
//! offset a client resumes from is exactly what is on disk. The digest is checked before
//! the data becomes a blob, so nothing a crash leaves behind can be served as one.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use berth_store::digest::Hasher;
use berth_store::Digest;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio::sync::OwnedMutexGuard;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::names::{is_upload_id, new_upload_id, RepoName};
use crate::storage::Storage;

const STATE: &str = "state.json";
const DATA: &str = "data";
/// Prefix of session directories still being created.
const CREATING: &str = ".creating-";

/// The small state file of a session.
#[derive(Serialize, Deserialize)]
struct State {
    repository: String,
    /// Seconds since the Unix epoch.
    started_at: u64,
    algorithm: String,
}

struct Session {
    repository: RepoName,
    offset: u64,
    /// The hash of `data[..offset]`.
    hasher: Hasher,
}

type Slot = Arc<tokio::sync::Mutex<Option<Session>>>;

/// A locked, loaded session.
struct Locked {
    id: String,
    slot: Slot,
    guard: OwnedMutexGuard<Option<Session>>,
}

impl Locked {
    fn session(&mut self) -> Result<&mut Session> {
        self.guard.as_mut().ok_or_else(|| Error::UploadUnknown(self.id.clone()))
    }
}

/// All upload sessions of a registry.
pub struct Uploads {
    storage: Arc<Storage>,
    dir: PathBuf,
    expiry: Duration,
    /// Sessions touched since start; others are loaded from disk on first use.
    sessions: Mutex<HashMap<String, Slot>>,
}

/// A new hasher for a digest algorithm name.
pub fn hasher_for(algorithm: &str) -> Result<Hasher> {
    match algorithm {
        "sha256" => Ok(Hasher::sha256()),
        "sha512" => Ok(Hasher::Sha512(sha2::Sha512::new())),
        other => Err(Error::DigestMalformed {
            digest: other.to_string(),
            reason: "unsupported algorithm (sha256 and sha512 are supported)".into(),
        }),
    }
}

fn algorithm_of(hasher: &Hasher) -> &'static str {
    match hasher {
        Hasher::Sha256(_) => "sha256",
        Hasher::Sha512(_) => "sha512",
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("blocking task failed: {e}")))?
}

/// Hashes a file's first `len` bytes.
fn hash_file(path: &Path, mut hasher: Hasher) -> Result<(Hasher, u64)> {
    let mut file = File::open(path).map_err(Error::io("open", path))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(Error::io("read", path))?;
        if n == 0 {
            return Ok((hasher, total));
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// How much of a refused request's body is read and discarded before answering, so the
/// client (still sending) gets to read the error instead of a reset connection.
const DRAIN_LIMIT: u64 = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads and discards what remains of a body, within [`DRAIN_LIMIT`] and [`DRAIN_TIME`].
pub(crate) async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut total = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                total += data.len() as u64;
                if total > DRAIN_LIMIT {
                    break;
                }
            }
        }
    })
    .await;
}

/// Outcome of streaming a request body into a session's data file.
struct Received {
    hasher: Hasher,
    bytes: u64,
    write_error: Option<std::io::Error>,
    body_error: Option<String>,
}

/// Streams `body` into `path` at `offset`, hashing what was written. Network reads and
/// disk writes overlap: a blocking thread writes while the next frames arrive.
async fn receive(path: PathBuf, offset: u64, hasher: Hasher, mut body: Body) -> Result<Received> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let writer = tokio::task::spawn_blocking(move || {
        let mut hasher = hasher;
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) => return (hasher, 0, Some(e)),
        };
        let mut pos = offset;
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = file.write_all_at(&chunk, pos) {
                // Drop anything past what was hashed, so data and hash stay in step.
                let _ = file.set_len(pos);
                return (hasher, pos - offset, Some(e));
            }
            hasher.update(&chunk);
            pos += chunk.len() as u64;
        }
        (hasher, pos - offset, None)
    });
    let mut body_error = None;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    // A send fails only when the writer stopped on an error it reports.
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        break;
                    }
                }
            }
            Some(Err(e)) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    let (hasher, bytes, write_error) =
        writer.await.map_err(|e| Error::Internal(format!("upload writer failed: {e}")))?;
    Ok(Received { hasher, bytes, write_error, body_error })
}

impl Uploads {
    /// Opens the sessions under the storage's `uploads/`, removing half-created ones.
    pub fn open(storage: Arc<Storage>, expiry: Duration) -> Result<Uploads> {
        let dir = storage.uploads_dir().to_path_buf();
        let entries = fs::read_dir(&dir).map_err(Error::io("read directory", &dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            let complete = path.join(STATE).is_file() && path.join(DATA).is_file();
            if name.starts_with(CREATING) || (is_upload_id(&name) && !complete) {
                let _ = fs::remove_dir_all(&path);
            }
        }
        Ok(Uploads { storage, dir, expiry, sessions: Mutex::new(HashMap::new()) })
    }

    fn session_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Starts a session for `repository` hashing with `algorithm`; returns its id.
    pub async fn create(&self, repository: &RepoName, algorithm: &str) -> Result<String> {
        let hasher = hasher_for(algorithm)?;
        let id = new_upload_id();
        let state = State { repository: repository.to_string(), started_at: unix_now(), algorithm: algorithm.to_string() };
        let state = serde_json::to_vec(&state).map_err(|e| Error::Internal(format!("encoding upload state: {e}")))?;
        let (dir, target) = (self.dir.clone(), self.session_dir(&id));
        let creating = self.dir.join(format!("{CREATING}{id}"));
        blocking(move || {
            let result = (|| {
                fs::create_dir(&creating).map_err(Error::io("create directory", &creating))?;
                let data = creating.join(DATA);
                File::create(&data).and_then(|f| f.sync_all()).map_err(Error::io("create", &data))?;
                let state_path = creating.join(STATE);
                fs::write(&state_path, &state)
                    .and_then(|()| File::open(&state_path)?.sync_all())
                    .map_err(Error::io("write", &state_path))?;
                fsutil::sync_dir(&creating)?;
                fs::rename(&creating, &target).map_err(Error::io("rename", &target))?;
                fsutil::sync_dir(&dir)
            })();
            if result.is_err() {
                let _ = fs::remove_dir_all(&creating);
            }
            result
        })
        .await?;
        let session = Session { repository: repository.clone(), offset: 0, hasher };
        self.sessions.lock().map_err(poisoned)?.insert(id.clone(), Arc::new(tokio::sync::Mutex::new(Some(session))));
        Ok(id)
    }

    fn slot(&self, id: &str) -> Result<Slot> {
        let mut map = self.sessions.lock().map_err(poisoned)?;
        Ok(map.entry(id.to_string()).or_default().clone())
    }

    /// Drops a slot from the map if it is still the one there.
    fn forget(&self, id: &str, slot: &Slot) {
        if let Ok(mut map) = self.sessions.lock() {
            if map.get(id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                map.remove(id);
            }
        }
    }

    /// Locks a session of `repository`, loading it from disk after a restart.
    async fn lock(&self, repository: &RepoName, id: &str) -> Result<Locked> {
        let unknown = || Error::UploadUnknown(id.to_string());
        if !is_upload_id(id) {
            return Err(unknown());
        }
        let slot = self.slot(id)?;
        let mut guard = slot.clone().lock_owned().await;
        if guard.is_none() {
            let dir = self.session_dir(id);
            match blocking(move || load(&dir)).await {
                Ok(Some(session)) => *guard = Some(session),
                Ok(None) => {
                    drop(guard);
                    self.forget(id, &slot);
                    return Err(unknown());
                }
                Err(e) => {
                    drop(guard);
                    self.forget(id, &slot);
                    return Err(e);
                }
            }
        }
        if guard.as_ref().is_none_or(|s| s.repository != *repository) {
            return Err(unknown());
        }
        Ok(Locked { id: id.to_string(), slot, guard })
    }

    /// The number of bytes received so far.
    pub async fn offset(&self, repository: &RepoName, id: &str) -> Result<u64> {
        let unknown = || Error::UploadUnknown(id.to_string());
        if !is_upload_id(id) {
            return Err(unknown());
        }
        let slot = self.slot(id)?;
        let busy = slot.try_lock().is_err();
        if !busy {
            let mut locked = self.lock(repository, id).await?;
            return Ok(locked.session()?.offset);
        }
        // A chunk is arriving (or the session is being loaded): answer from disk instead
        // of waiting for the request, which may belong to a client that has gone away.
        let (dir, repository) = (self.session_dir(id), repository.clone());
        let size = blocking(move || {
            let state: Option<State> = fs::read(dir.join(STATE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
            Ok(match (state, fs::metadata(dir.join(DATA))) {
                (Some(state), Ok(meta)) if state.repository == repository.as_str() => Some(meta.len()),
                _ => None,
            })
        })
        .await?;
        size.ok_or_else(unknown)
    }

    /// Appends a chunk. With `range` (from Content-Range, inclusive) the chunk must start at
    /// the current offset and have exactly that length. Returns the new offset.
    pub async fn append(&self, repository: &RepoName, id: &str, range: Option<(u64, u64)>, body: Body) -> Result<u64> {
        let mut locked = match self.lock(repository, id).await {
            Ok(l) => l,
            Err(e) => {
                drain(body).await;
                return Err(e);
            }
        };
        self.append_locked(&mut locked, range, body).await
    }

    async fn append_locked(&self, locked: &mut Locked, range: Option<(u64, u64)>, body: Body) -> Result<u64> {
        let id = locked.id.clone();
        let data = self.session_dir(&id).join(DATA);
        let session = locked.session()?;
        let start = session.offset;
        if let Some((first, last)) = range {
            if last < first {
                drain(body).await;
                return Err(Error::UploadInvalid { uuid: id, reason: format!("Content-Range {first}-{last} is empty") });
            }
            if first != start {
                drain(body).await;
                return Err(Error::UploadOutOfOrder { uuid: id, start: first, offset: start });
            }
        }
        let before = session.hasher.clone();
        let received = receive(data.clone(), start, session.hasher.clone(), body).await?;
        if let Some(e) = received.write_error {
            // The writer truncated to what it hashed; keep that, so data and hash agree.
            session.hasher = received.hasher;
            session.offset = start + received.bytes;
            return Err(Error::Io { op: "write", path: data, source: e });
        }
        if let Some((first, last)) = range {
            let declared = last - first + 1;
            if received.body_error.is_none() && received.bytes != declared {
                // A chunk that disagrees with its own Content-Range is refused whole.
                let truncate = data.clone();
                blocking(move || {
                    OpenOptions::new().write(true).open(&truncate).and_then(|f| f.set_len(start)).map_err(Error::io("truncate", &truncate))
                })
                .await?;
                session.hasher = before;
                return Err(Error::SizeInvalid { uuid: id, declared, received: received.bytes });
            }
        }
        // What arrived before a broken connection is kept: the client can resume after it.
        session.hasher = received.hasher;
        session.offset = start + received.bytes;
        match received.body_error {
            Some(e) => Err(Error::Body(e)),
            None => Ok(session.offset),
        }
    }

    /// Finishes an upload: appends the final chunk (if any), verifies `digest` and moves the
    /// data into the blob store, visible in the session's repository. A digest that does
    /// not match ends the session and stores nothing.
    pub async fn complete(&self, repository: &RepoName, id: &str, range: Option<(u64, u64)>, body: Body, digest: &Digest) -> Result<u64> {
        let mut locked = match self.lock(repository, id).await {
            Ok(l) => l,
            Err(e) => {
                drain(body).await;
                return Err(e);
            }
        };
        if range.is_some() || !axum::body::HttpBody::is_end_stream(&body) {
            self.append_locked(&mut locked, range, body).await?;
        }
        let dir = self.session_dir(id);
        let data = dir.join(DATA);
        let session = locked.session()?;
        let size = session.offset;
        let actual = if algorithm_of(&session.hasher) == digest.algorithm() {
            session.hasher.clone().finish()
        } else {
            let (path, hasher) = (data.clone(), hasher_for(digest.algorithm())?);
            blocking(move || hash_file(&path, hasher)).await?.0.finish()
        };
        if actual != *digest {
            self.remove_locked(locked).await?;
            return Err(Error::DigestMismatch { expected: digest.to_string(), actual: actual.to_string() });
        }
        let (storage, repo, digest, uploads) = (self.storage.clone(), repository.clone(), digest.clone(), self.dir.clone());
        blocking(move || {
            File::open(&data).and_then(|f| f.sync_all()).map_err(Error::io("fsync", &data))?;
            storage.commit_blob_to(&data, &digest, &repo)?;
            fs::remove_dir_all(&dir).map_err(Error::io("remove", &dir))?;
            fsutil::sync_dir(&uploads)
        })
        .await?;
        *locked.guard = None;
        let Locked { id, slot, guard } = locked;
        drop(guard);
        self.forget(&id, &slot);
        Ok(size)
    }

    /// Cancels an upload and removes its data.
    pub async fn cancel(&self, repository: &RepoName, id: &str) -> Result<()> {
        let locked = self.lock(repository, id).await?;
        self.remove_locked(locked).await
    }

    async fn remove_locked(&self, mut locked: Locked) -> Result<()> {
        let (dir, uploads) = (self.session_dir(&locked.id), self.dir.clone());
        *locked.guard = None;
        let result = blocking(move || {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", dir)(e)),
            }
            fsutil::sync_dir(&uploads)
        })
        .await;
        let Locked { id, slot, guard } = locked;
        drop(guard);
        self.forget(&id, &slot);
        result
    }

    /// Removes sessions idle for longer than the expiry (no bytes received since); sessions
    /// busy with a request are left alone. Returns how many were removed.
    pub async fn expire(&self) -> Result<usize> {
        let (dir, expiry) = (self.dir.clone(), self.expiry);
        let stale = blocking(move || {
            let now = SystemTime::now();
            let entries = fs::read_dir(&dir).map_err(Error::io("read directory", &dir))?;
            let mut stale = Vec::new();
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !is_upload_id(&name) {
                    continue;
                }
                let started = fs::read(entry.path().join(STATE))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<State>(&b).ok())
                    .map(|s| UNIX_EPOCH + Duration::from_secs(s.started_at));
                let written = fs::metadata(entry.path().join(DATA)).and_then(|m| m.modified()).ok();
                let last = started.into_iter().chain(written).max().unwrap_or(UNIX_EPOCH);
                if now.duration_since(last).is_ok_and(|idle| idle > expiry) {
                    stale.push(name);
                }
            }
            Ok(stale)
        })
        .await?;
        let mut removed = 0;
        for id in stale {
            let slot = self.slot(&id)?;
            let Ok(guard) = slot.clone().try_lock_owned() else { continue };
            let locked = Locked { id: id.clone(), slot, guard };
            self.remove_locked(locked).await?;
            tracing::info!(upload = %id, "expired upload session removed");
            removed += 1;
        }
        Ok(removed)
    }
}

/// Loads a session from disk, rehashing its data; `None` if there is no such session.
fn load(dir: &Path) -> Result<Option<Session>> {
    let state_path = dir.join(STATE);
    let state = match fs::read(&state_path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", state_path)(e)),
    };
    let state: State = serde_json::from_slice(&state)
        .map_err(|e| Error::Internal(format!("upload state {} is damaged: {e}", state_path.display())))?;
    let repository = RepoName::parse(&state.repository)?;
    let data = dir.join(DATA);
    if !data.is_file() {
        return Ok(None);
    }
    let (hasher, offset) = hash_file(&data, hasher_for(&state.algorithm)?)?;
    tracing::info!(upload = %dir.display(), offset, "upload session resumed from disk");
    Ok(Some(Session { repository, offset, hasher }))
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("upload session table lock poisoned".into())
}
