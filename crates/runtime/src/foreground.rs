//! Foreground waiting for `run` and `exec`: forward signals to the container process,
//! proxy its terminal when we own one, reap it and report its exit code.

use crate::error::{Error, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Every signal we forward, plus SIGCHLD to learn of the exit.
fn forwarded() -> SigSet {
    let mut set = SigSet::all();
    for s in [Signal::SIGKILL, Signal::SIGSTOP, Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGILL, Signal::SIGFPE, Signal::SIGTSTP, Signal::SIGTTIN, Signal::SIGTTOU] {
        set.remove(s);
    }
    set
}

pub fn block_signals() -> Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), None).map_err(|e| Error::sys("block signals", e))
}

/// Restores the terminal mode on drop.
struct RawMode {
    fd: i32,
    saved: termios::Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd: fd.as_raw_fd(), saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd is our stdin, open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, termios::SetArg::TCSANOW, &self.saved);
    }
}

pub(crate) fn window_size(fd: i32) -> Option<(u16, u16)> {
    let mut ws: libc::winsize = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer, which outlives the call.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some((ws.ws_row, ws.ws_col))
}

fn copy(from: BorrowedFd, to: BorrowedFd) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match nix::unistd::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

pub fn wait(pid: i32, console: Option<OwnedFd>) -> Result<i32> {
    let sfd = SignalFd::with_flags(&forwarded(), SfdFlags::SFD_CLOEXEC).map_err(|e| Error::sys("signalfd", e))?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let _raw = console.as_ref().and_then(|_| RawMode::enter(stdin.as_fd()));
    if let (Some(m), Some((r, c))) = (&console, window_size(0)) {
        crate::terminal::set_size(m.as_raw_fd(), r, c);
    }
    let mut stdin_open = console.is_some();
    let mut master_open = console.is_some();
    loop {
        // Reap first: the exit may have happened before we started polling.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => {
                    drain(&console, stdout.as_fd());
                    return Ok(code);
                }
                Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                    drain(&console, stdout.as_fd());
                    return Ok(128 + sig as i32);
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &console {
            if master_open {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll", e)),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        if ready[0] {
            if let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGWINCH {
                    if let (Some(m), Some((r, c))) = (&console, window_size(0)) {
                        crate::terminal::set_size(m.as_raw_fd(), r, c);
                    }
                } else if sig != libc::SIGCHLD {
                    // SAFETY: kill with integer arguments.
                    unsafe { libc::kill(pid, sig) };
                }
            }
        }
        if let Some(m) = &console {
            let mut i = 1;
            if master_open {
                if ready[i] && !copy(m.as_fd(), stdout.as_fd()) {
                    master_open = false;
                }
                i += 1;
            }
            if stdin_open && ready.get(i).copied().unwrap_or(false) && !copy(stdin.as_fd(), m.as_fd()) {
                stdin_open = false;
            }
        }
    }
}

// Output the process wrote right before exiting is still in the pty buffer.
fn drain(console: &Option<OwnedFd>, out: BorrowedFd) {
    if let Some(m) = console {
        let mut fds = [PollFd::new(m.as_fd(), PollFlags::POLLIN)];
        while matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
            if !copy(m.as_fd(), out) {
                break;
            }
        }
    }
}
