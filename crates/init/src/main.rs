//! berth-init: pid 1 of containers run with `--init` (mounted as `/sbin/docker-init`).
//!
//! `berth-init [--] program [args...]` runs the program as its only direct child, forwards
//! every signal it can catch to it, reaps every process that ends up reparented to it, and
//! exits with the child's status (128 + the signal when the child was killed). Without it
//! the container's program is pid 1: the kernel drops signals it has no handler for
//! (`docker stop` waits for the timeout) and orphans' zombies pile up.
//!
//! Signals are blocked and taken with `sigwaitinfo`, not caught by handlers: a blocked
//! signal stays pending even for a pid 1 without a handler, and the loop stays simple.
//! Statically linked (see `build-static.sh`): the container may have no libc.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::{sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// Signals the process raises on itself when it faults: blocking them would turn a crash
/// into a hang, and forwarding them makes no sense.
const SYNCHRONOUS: [Signal; 7] =
    [Signal::SIGFPE, Signal::SIGILL, Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGABRT, Signal::SIGTRAP, Signal::SIGSYS];

/// Terminal stop signals: berth-init ignores them so that it is never stopped itself.
const TERMINAL_STOPS: [Signal; 2] = [Signal::SIGTTIN, Signal::SIGTTOU];

const USAGE: &str = "usage: berth-init [--] program [args...]";

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    let Some((program, program_args)) = args.split_first() else {
        eprintln!("{USAGE}");
        return 2;
    };

    let mut forwarded = SigSet::all();
    for sig in SYNCHRONOUS.iter().chain(&TERMINAL_STOPS) {
        forwarded.remove(*sig);
    }
    let mut original = SigSet::empty();
    if let Err(e) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&forwarded), Some(&mut original)) {
        eprintln!("berth-init: block signals: {e}");
        return 1;
    }
    for sig in TERMINAL_STOPS {
        // SAFETY: SIG_IGN installs no handler code; nothing runs in signal context.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) };
    }
    // Orphans come to us also when we are not pid 1 (a shared pid namespace).
    let _ = nix::sys::prctl::set_child_subreaper(true);

    let mut command = Command::new(program);
    command.args(program_args);
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (setpgid, isatty, tcsetpgrp, signal, sigprocmask); it allocates nothing.
    unsafe {
        command.pre_exec(move || child_setup(&original));
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("berth-init: exec {} failed: {e}", program.to_string_lossy());
            return match e.kind() {
                ErrorKind::NotFound => 127,
                _ => 126,
            };
        }
    };
    let child = Pid::from_raw(child.id() as i32);

    loop {
        let sig = wait_signal(&forwarded);
        if sig != libc::SIGCHLD && sig > 0 {
            // SAFETY: kill(2) takes plain integers; a signal number not valid for it fails
            // with EINVAL and nothing else happens.
            unsafe {
                libc::kill(child.as_raw(), sig);
            }
        }
        if let Some(code) = reap(child) {
            return code;
        }
    }
}

/// In the child before exec: its own process group, in the terminal's foreground when
/// there is one (so ^C reaches it directly), with the signal state it would have had.
fn child_setup(original: &SigSet) -> std::io::Result<()> {
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    let stdin = std::io::stdin();
    if nix::unistd::isatty(&stdin).unwrap_or(false) {
        // SIGTTOU is still ignored here, so a background group may take the terminal.
        let _ = nix::unistd::tcsetpgrp(&stdin, nix::unistd::getpgrp());
    }
    for sig in TERMINAL_STOPS {
        // SAFETY: SIG_DFL installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(original), None)?;
    Ok(())
}

/// The next pending signal of `set` (every one of them is blocked).
fn wait_signal(set: &SigSet) -> i32 {
    loop {
        // SAFETY: `set` is a valid sigset_t for the call's duration and the info pointer
        // may be null.
        let sig = unsafe { libc::sigwaitinfo(set.as_ref(), std::ptr::null_mut()) };
        if sig > 0 {
            return sig;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // Nothing sensible is left to wait for; poll for exits instead of spinning.
            std::thread::sleep(std::time::Duration::from_millis(100));
            return 0;
        }
    }
}

/// Reaps every child that has exited; returns the exit code once `child` is among them.
fn reap(child: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid int to write to; WNOHANG keeps the call from blocking.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            // 0: nobody else has exited; -1: no children left.
            return code;
        }
        if pid == child.as_raw() {
            code = Some(if libc::WIFSIGNALED(status) { 128 + libc::WTERMSIG(status) } else { libc::WEXITSTATUS(status) });
        }
    }
}
