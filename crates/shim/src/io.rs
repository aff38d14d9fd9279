//! A process's stdio as the shim holds it: pipes (our ends non-blocking) or a terminal
//! master, plus the input waiting to be written to it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::OFlag;

/// Our ends of one process's stdio.
#[derive(Default)]
pub struct ProcessIo {
    /// Write end of the process's stdin pipe.
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The terminal master: output is read from it, input written to it.
    pub terminal: Option<OwnedFd>,
    /// Bytes from attached clients not yet written to the process.
    pub input: Vec<u8>,
    /// Close stdin once `input` is written.
    pub close_input: bool,
}

/// The ends the process gets as fds 0, 1 and 2.
pub struct ChildEnds {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

pub fn set_nonblocking(fd: &impl AsFd) -> std::io::Result<()> {
    let flags = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(())
}

pub fn dev_null() -> std::io::Result<OwnedFd> {
    nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).map_err(std::io::Error::from)
}

impl ProcessIo {
    /// Pipes for stdout and stderr, and for stdin when `stdin` (else the process reads
    /// /dev/null). With `terminal` the process gets /dev/null on all three: the runtime
    /// replaces them with the terminal, whose master arrives later (`set_terminal`).
    pub fn new(stdin: bool, terminal: bool) -> std::io::Result<(ProcessIo, ChildEnds)> {
        if terminal {
            let ends = ChildEnds { stdin: dev_null()?, stdout: dev_null()?, stderr: dev_null()? };
            return Ok((ProcessIo::default(), ends));
        }
        let (stdin_child, stdin_ours) = if stdin {
            let (r, w) = pipe()?;
            set_nonblocking(&w)?;
            (r, Some(w))
        } else {
            (dev_null()?, None)
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        set_nonblocking(&out_r)?;
        set_nonblocking(&err_r)?;
        let io = ProcessIo { stdin: stdin_ours, stdout: Some(out_r), stderr: Some(err_r), ..Default::default() };
        Ok((io, ChildEnds { stdin: stdin_child, stdout: out_w, stderr: err_w }))
    }

    pub fn set_terminal(&mut self, master: OwnedFd) -> std::io::Result<()> {
        set_nonblocking(&master)?;
        self.terminal = Some(master);
        Ok(())
    }

    /// Every output is closed: the process and everything that shared its stdio are gone.
    pub fn outputs_done(&self) -> bool {
        self.stdout.is_none() && self.stderr.is_none() && self.terminal.is_none()
    }

    /// Where input goes: the stdin pipe or the terminal.
    pub fn input_fd(&self) -> Option<&OwnedFd> {
        self.stdin.as_ref().or(self.terminal.as_ref())
    }

    /// Writes as much pending input as the process takes now; closes stdin when asked and
    /// all is written. Returns false if the process can no longer take input.
    pub fn flush_input(&mut self) -> bool {
        while !self.input.is_empty() {
            let Some(fd) = self.input_fd() else {
                self.input.clear();
                return false;
            };
            match nix::unistd::write(fd, &self.input) {
                Ok(n) => {
                    self.input.drain(..n);
                }
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    self.input.clear();
                    self.stdin = None;
                    return false;
                }
            }
        }
        if self.close_input {
            self.stdin = None;
        }
        true
    }

    /// Sets the terminal's window size.
    pub fn resize(&self, height: u16, width: u16) -> std::io::Result<()> {
        let Some(fd) = &self.terminal else {
            return Err(std::io::Error::other("the process has no terminal"));
        };
        let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which outlives the call.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Reads what is there now. `None` means the output is closed (EOF, or EIO from a
/// terminal whose last slave closed); `Some(0)` means nothing to read yet.
pub fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    loop {
        match nix::unistd::read(fd, buf) {
            Ok(0) => return None,
            Ok(n) => return Some(n),
            Err(nix::errno::Errno::EAGAIN) => return Some(0),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}
