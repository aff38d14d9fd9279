//! Users from an htpasswd file of bcrypt entries (`htpasswd -B`). Successful checks are
//! remembered for a short while, since clients in Basic mode send the password with every
//! request and bcrypt is slow on purpose. The file is read again when it changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// How long a verified user and password pair is trusted without bcrypt.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Bound of the cache of verified pairs; past it, expired entries go, then all.
const CACHE_ENTRIES: usize = 4096;
/// How often the file is looked at for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// What identifies a version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: SystemTime,
    len: u64,
    inode: u64,
}

struct Users {
    /// User name to bcrypt hash.
    hashes: HashMap<String, String>,
    /// A hash checked for unknown users, so they take as long as known ones.
    decoy: String,
    stamp: Option<Stamp>,
}

/// The users of an htpasswd file.
pub struct Htpasswd {
    path: PathBuf,
    users: RwLock<Users>,
    last_check: Mutex<Instant>,
    /// Hashes of verified `user:password` pairs (salted per process) and their expiry.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    salt: [u8; 32],
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp { modified: m.modified().ok()?, len: m.len(), inode: m.ino() })
}

/// Parses the file's text: `user:hash` lines, blank lines and `#` comments.
fn parse(path: &Path, text: &str) -> Result<HashMap<String, String>> {
    let mut hashes = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| Error::Htpasswd { path: path.to_path_buf(), line: i + 1, reason };
        let Some((user, hash)) = line.split_once(':') else {
            return Err(bad("expected user:hash".into()));
        };
        if user.is_empty() {
            return Err(bad("empty user name".into()));
        }
        let is_bcrypt = ["$2a$", "$2b$", "$2x$", "$2y$"].iter().any(|p| hash.starts_with(p))
            && hash.parse::<bcrypt::HashParts>().is_ok();
        if !is_bcrypt {
            return Err(bad(format!("user {user}: not a bcrypt hash (only bcrypt entries are accepted: htpasswd -B)")));
        }
        if hashes.insert(user.to_string(), hash.to_string()).is_some() {
            return Err(bad(format!("user {user} appears twice")));
        }
    }
    Ok(hashes)
}

fn read(path: &Path) -> Result<Users> {
    let stamp = stamp(path);
    let text = std::fs::read_to_string(path).map_err(Error::io("read htpasswd file", path))?;
    let hashes = parse(path, &text)?;
    let cost = hashes.values().filter_map(|h| h.parse::<bcrypt::HashParts>().ok()).map(|p| p.get_cost()).max();
    let decoy = bcrypt::hash("decoy", cost.unwrap_or(bcrypt::DEFAULT_COST))
        .map_err(|e| Error::Internal(format!("making a bcrypt hash: {e}")))?;
    Ok(Users { hashes, decoy, stamp })
}

impl Htpasswd {
    /// Reads the file; a line that is not a bcrypt entry is an error naming it.
    pub fn load(path: &Path) -> Result<Htpasswd> {
        let users = read(path)?;
        Ok(Htpasswd {
            path: path.to_path_buf(),
            users: RwLock::new(users),
            last_check: Mutex::new(Instant::now()),
            verified: Mutex::new(HashMap::new()),
            salt: rand::random(),
        })
    }

    /// Whether `password` is `user`'s. Costs a bcrypt check unless verified recently.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.reload_if_changed();
        let key = self.cache_key(user, password);
        let now = Instant::now();
        if self.verified.lock().is_ok_and(|v| v.get(&key).is_some_and(|expiry| *expiry > now)) {
            return true;
        }
        let (hash, known) = match self.users.read() {
            Ok(u) => match u.hashes.get(user) {
                Some(h) => (h.clone(), true),
                None => (u.decoy.clone(), false),
            },
            Err(_) => return false,
        };
        let matches = bcrypt::verify(password, &hash).unwrap_or(false);
        if !(matches && known) {
            return false;
        }
        if let Ok(mut v) = self.verified.lock() {
            if v.len() >= CACHE_ENTRIES {
                v.retain(|_, expiry| *expiry > now);
                if v.len() >= CACHE_ENTRIES {
                    v.clear();
                }
            }
            v.insert(key, now + CACHE_TTL);
        }
        true
    }

    /// A short digest of `user`'s entry, which changes when the password does; `None` for
    /// unknown users. Refresh tokens carry it, so changing a password revokes them.
    pub fn fingerprint(&self, user: &str) -> Option<String> {
        self.reload_if_changed();
        let users = self.users.read().ok()?;
        let hash = users.hashes.get(user)?;
        Some(hex::encode(&Sha256::digest(hash.as_bytes())[..12]))
    }

    /// Compares a fingerprint from a token with `user`'s current one in constant time.
    pub fn fingerprint_matches(&self, user: &str, fingerprint: &str) -> bool {
        self.fingerprint(user).is_some_and(|f| bool::from(f.as_bytes().ct_eq(fingerprint.as_bytes())))
    }

    fn cache_key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Reads the file again when it changed (checked at most every few seconds). A file
    /// that became invalid is reported and the users read before are kept.
    fn reload_if_changed(&self) {
        {
            let Ok(mut last) = self.last_check.lock() else { return };
            if last.elapsed() < RELOAD_CHECK {
                return;
            }
            *last = Instant::now();
        }
        let current = stamp(&self.path);
        if self.users.read().is_ok_and(|u| u.stamp == current) {
            return;
        }
        match read(&self.path) {
            Ok(users) => {
                tracing::info!(path = %self.path.display(), users = users.hashes.len(), "htpasswd file reloaded");
                if let Ok(mut u) = self.users.write() {
                    *u = users;
                }
                if let Ok(mut v) = self.verified.lock() {
                    v.clear();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "htpasswd file changed but cannot be used; keeping the users read before");
                if let Ok(mut u) = self.users.write() {
                    u.stamp = current;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bcrypt_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let alice = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(&path, format!("# users\n\nalice:{alice}\n")).unwrap();
        let users = Htpasswd::load(&path).unwrap();
        assert!(users.verify("alice", "secret"));
        assert!(users.verify("alice", "secret"), "cached");
        assert!(!users.verify("alice", "wrong"));
        assert!(!users.verify("bob", "secret"));
        let f = users.fingerprint("alice").unwrap();
        assert!(users.fingerprint_matches("alice", &f));
        assert!(!users.fingerprint_matches("alice", "00"));
        assert!(!users.fingerprint_matches("bob", &f));

        for (text, needle) in [
            (format!("alice:{alice}\nbob:$apr1$abc$def\n"), "line 2: user bob: not a bcrypt hash"),
            ("carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n".to_string(), "line 1: user carol"),
            ("nocolon\n".to_string(), "line 1: expected user:hash"),
            (format!("alice:{alice}\nalice:{alice}\n"), "line 2: user alice appears twice"),
            ("dave:$2y$05$short\n".to_string(), "line 1: user dave"),
        ] {
            std::fs::write(&path, &text).unwrap();
            let e = Htpasswd::load(&path).err().unwrap().to_string();
            assert!(e.contains(needle) && e.contains(&path.display().to_string()), "{e}");
        }
    }
}
