//! Waiting for a log file to change: inotify on its directory, or a short sleep when
//! inotify is unavailable (e.g. the per-user instance limit is reached).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify;

/// How long a wait lasts at most with inotify: the caller re-checks its stop condition
/// this often.
const WATCH_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a wait lasts without inotify.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

pub(crate) struct Watcher {
    inotify: Option<OwnedFd>,
}

impl Watcher {
    pub(crate) fn new(dir: &Path) -> Watcher {
        let inotify = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .and_then(|fd| {
                let events = inotify::WatchFlags::MODIFY
                    | inotify::WatchFlags::CREATE
                    | inotify::WatchFlags::MOVED_TO
                    | inotify::WatchFlags::MOVED_FROM
                    | inotify::WatchFlags::DELETE
                    | inotify::WatchFlags::CLOSE_WRITE;
                inotify::add_watch(&fd, dir, events)?;
                Ok(fd)
            })
            .map_err(|e| tracing::debug!(dir = %dir.display(), error = %e, "inotify unavailable, polling log files"))
            .ok();
        Watcher { inotify }
    }

    /// Returns after a change in the directory or a timeout.
    pub(crate) fn wait(&mut self) {
        let Some(fd) = &self.inotify else {
            std::thread::sleep(POLL_INTERVAL);
            return;
        };
        let timeout = Timespec {
            tv_sec: 0,
            tv_nsec: WATCH_TIMEOUT.as_nanos() as _,
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        if poll(&mut fds, Some(&timeout)).is_err() {
            std::thread::sleep(POLL_INTERVAL);
            return;
        }
        // Drain the events: which file changed does not matter, the caller looks again.
        let mut buf = [0u8; 4096];
        while let Ok(n) = rustix::io::read(fd, &mut buf) {
            if n == 0 {
                break;
            }
        }
    }
}
