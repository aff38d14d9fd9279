//! Freezing and thawing: v1 freezer.state and v2 cgroup.freeze / cgroup.events.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fs;

const V2_TIMEOUT: Duration = Duration::from_secs(10);

/// v1: write FROZEN until the state reads FROZEN. The v1 freezer can stay in FREEZING
/// while processes keep forking, so it is nudged again, with an occasional thaw and
/// pause to let new tasks settle (the approach runc found reliable).
pub(crate) fn freeze_v1(dir: &Path) -> Result<()> {
    let mut state = String::new();
    for i in 0..1000 {
        if i % 50 == 49 {
            let _ = fs::write(dir, "freezer.state", "THAWED");
            std::thread::sleep(Duration::from_millis(10));
        }
        fs::write(dir, "freezer.state", "FROZEN")?;
        if i % 25 == 24 {
            std::thread::sleep(Duration::from_micros(10));
        }
        state = fs::read(dir, "freezer.state")?.trim().to_string();
        match state.as_str() {
            "FROZEN" => return Ok(()),
            "FREEZING" => continue,
            _ => break,
        }
    }
    // Leave it in a consistent state rather than half-frozen.
    let _ = fs::write(dir, "freezer.state", "THAWED");
    Err(Error::Freeze {
        op: "freeze",
        path: dir.join("freezer.state"),
        state,
    })
}

pub(crate) fn thaw_v1(dir: &Path) -> Result<()> {
    fs::write(dir, "freezer.state", "THAWED")
}

pub(crate) fn is_frozen_v1(dir: &Path) -> Result<bool> {
    Ok(fs::read(dir, "freezer.state")?.trim() == "FROZEN")
}

/// The "frozen" value of a cgroup.events text.
fn events_frozen(text: &str) -> Option<bool> {
    text.lines().find_map(|l| match l.split_once(' ') {
        Some(("frozen", v)) => Some(v.trim() == "1"),
        _ => None,
    })
}

/// v2: write cgroup.freeze, then wait for cgroup.events to report the new state
/// (the file signals changes with POLLPRI).
pub(crate) fn set_v2(dir: &Path, frozen: bool) -> Result<()> {
    fs::write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    match wait_v2(dir, frozen) {
        Ok(()) => Ok(()),
        Err(e) => {
            if frozen {
                let _ = fs::write(dir, "cgroup.freeze", "0");
            }
            Err(e)
        }
    }
}

fn wait_v2(dir: &Path, frozen: bool) -> Result<()> {
    let path = dir.join("cgroup.events");
    let read_err = |err| Error::Read {
        path: path.clone(),
        err,
    };
    let mut f = File::open(&path).map_err(read_err)?;
    let deadline = Instant::now() + V2_TIMEOUT;
    let mut text = String::new();
    loop {
        text.clear();
        f.seek(SeekFrom::Start(0)).map_err(read_err)?;
        f.read_to_string(&mut text).map_err(read_err)?;
        if events_frozen(&text) == Some(frozen) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Freeze {
                op: if frozen { "freeze" } else { "thaw" },
                path,
                state: format!("frozen {}", u8::from(!frozen)),
            });
        }
        let mut fds = [nix::poll::PollFd::new(
            f.as_fd(),
            nix::poll::PollFlags::POLLPRI,
        )];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(read_err(std::io::Error::from(e))),
        }
    }
}

pub(crate) fn is_frozen_v2(dir: &Path) -> Result<bool> {
    let text = fs::read(dir, "cgroup.events")?;
    Ok(events_frozen(&text).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_frozen_from_events() {
        assert_eq!(events_frozen("populated 1\nfrozen 1\n"), Some(true));
        assert_eq!(events_frozen("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(events_frozen("populated 0\n"), None);
    }
}
