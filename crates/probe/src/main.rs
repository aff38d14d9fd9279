//! berth-probe: runs inside a container and prints what it sees as JSON, so tests can
//! assert that a runtime applied the spec. Statically linked; only std, libc, serde_json.

mod parse;
mod report;
mod tryops;

use std::io::Write;
use std::process::ExitCode;

use serde_json::{json, Value};

const USAGE: &str = "usage: probe <command> [args]
  report                       everything the process sees, as one JSON object
  fds                          open file descriptors and their targets
  try-write PATH [DATA]        create/truncate PATH and write DATA
  try-open PATH [r|w]          open PATH for reading or writing
  try-mkdir PATH               create a directory
  try-mknod PATH               create a character device 1:3
  try-mount SRC DST FSTYPE     mount, then detach again
  try-syscall NAME             one of: mkdir chmod unshare mount ptrace keyctl reboot sethostname
  wait-signal                  print {\"ready\":true}, then the first signal received, and exit
  zombies                      zombie processes visible in /proc
  sleep SECONDS                sleep, then exit 0
  exit CODE                    exit with CODE";

fn print(v: &Value) -> ExitCode {
    let mut out = std::io::stdout().lock();
    // A closed stdout is the caller's choice; nothing useful to do about it here.
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
    ExitCode::SUCCESS
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("probe: {msg}\n{USAGE}");
    ExitCode::from(2)
}

fn zombies() -> Value {
    let mut pids = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // The state follows the last ')' because the command name may contain parens.
            let state = stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3));
            if state == Some("Z") {
                pids.push(pid);
            }
        }
    }
    pids.sort_unstable();
    json!({ "zombies": pids })
}

fn wait_signal() -> ExitCode {
    // SAFETY: sigset_t is plain data; the calls only fill and read it.
    let sig = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        print(&json!({ "ready": true }));
        libc::sigwaitinfo(&set, std::ptr::null_mut())
    };
    print(&json!({ "signal": sig }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["report"] => print(&report::report()),
        ["fds"] => print(&json!({ "fds": report::fds() })),
        ["zombies"] => print(&zombies()),
        ["wait-signal"] => wait_signal(),
        ["try-write", path] => print(&tryops::outcome(tryops::try_write(path, "probe\n"))),
        ["try-write", path, data] => print(&tryops::outcome(tryops::try_write(path, data))),
        ["try-open", path] => print(&tryops::outcome(tryops::try_open(path, "r"))),
        ["try-open", path, mode @ ("r" | "w")] => {
            print(&tryops::outcome(tryops::try_open(path, mode)))
        }
        ["try-mkdir", path] => print(&tryops::outcome(tryops::try_mkdir(path))),
        ["try-mknod", path] => print(&tryops::outcome(tryops::try_mknod(path))),
        ["try-mount", src, dst, fstype] => {
            print(&tryops::outcome(tryops::try_mount(src, dst, fstype)))
        }
        ["try-syscall", name] => match tryops::try_syscall(name) {
            Some(r) => print(&tryops::outcome(r)),
            None => usage(&format!(
                "unknown syscall {name:?}; known: {:?}",
                tryops::SYSCALLS
            )),
        },
        ["sleep", secs] => match secs.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => {
                std::thread::sleep(std::time::Duration::from_secs_f64(s));
                ExitCode::SUCCESS
            }
            _ => usage(&format!("bad duration {secs:?}")),
        },
        ["exit", code] => match code.parse::<u8>() {
            Ok(c) => ExitCode::from(c),
            Err(_) => usage(&format!("bad exit code {code:?}")),
        },
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => usage("unknown command or wrong arguments"),
    }
}
