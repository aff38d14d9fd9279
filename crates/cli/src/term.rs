//! Terminal handling: detection, width, prompts and reading a password without echo.

use std::io::{self, BufRead, IsTerminal, Write};
use std::os::fd::AsFd;

use nix::sys::termios::{self, LocalFlags, SetArg};

/// Whether standard output is a terminal.
pub fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal()
}

/// Whether standard input is a terminal.
pub fn stdin_is_terminal() -> bool {
    io::stdin().is_terminal()
}

/// The width of the terminal on standard output, or 200 (docker's default) when unknown.
pub fn stdout_width() -> usize {
    // SAFETY: `winsize` is plain old data, so an all-zero value is valid.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a `winsize` into the pointed-to struct, which lives for the
    // duration of the call; the descriptor is only queried.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    if rc == 0 && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        200
    }
}

/// Prints `message` and reads one line from standard input, trimmed.
pub fn read_line(out: &mut dyn Write, message: &str) -> io::Result<Option<String>> {
    out.write_all(message.as_bytes())?;
    out.flush()?;
    let mut line = String::new();
    let n = io::stdin().lock().read_line(&mut line)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim().to_string()))
}

/// docker's confirmation prompt: true only for "y" or "Y".
pub fn confirm(out: &mut dyn Write, message: &str) -> io::Result<bool> {
    let answer = read_line(out, &format!("{message} [y/N] "))?;
    Ok(answer.is_some_and(|a| a.eq_ignore_ascii_case("y")))
}

/// Reads a line with terminal echo turned off (restored afterwards, also on error).
pub fn read_secret(out: &mut dyn Write, message: &str) -> io::Result<Option<String>> {
    let stdin = io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(original) = &saved {
        let mut quiet = original.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &quiet);
    }
    let result = read_line(out, message);
    if let Some(original) = &saved {
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, original);
    }
    result
}

/// The size (rows, columns) of the terminal on `fd`, or (0, 0) when it is not one.
pub fn size_of(fd: i32) -> (u16, u16) {
    // SAFETY: `winsize` is plain old data, so an all-zero value is valid.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a `winsize` into the pointed-to struct, which lives for the
    // duration of the call; the descriptor is only queried.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) };
    if rc == 0 {
        (size.ws_row, size.ws_col)
    } else {
        (0, 0)
    }
}

/// The size (rows, columns) of the terminal on standard output, or (0, 0).
pub fn stdout_size() -> (u16, u16) {
    if stdout_is_terminal() {
        size_of(libc::STDOUT_FILENO)
    } else {
        (0, 0)
    }
}

/// Standard input in raw mode until dropped; the previous settings come back on every
/// way out (return, error, unwinding).
pub struct RawInput {
    saved: termios::Termios,
}

impl RawInput {
    /// Puts standard input in raw mode when it is a terminal.
    pub fn enable() -> io::Result<Option<RawInput>> {
        if !stdin_is_terminal() {
            return Ok(None);
        }
        let stdin = io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).map_err(io::Error::from)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).map_err(io::Error::from)?;
        Ok(Some(RawInput { saved }))
    }
}

impl Drop for RawInput {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}
