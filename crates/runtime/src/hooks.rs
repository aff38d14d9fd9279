//! OCI hooks: runs a hook list with the container state on stdin, honouring timeouts.
//!
//! The hook's stdin is a memfd holding the state, and its stdout/stderr go to memfds read
//! after it exits. Nothing is pumped through pipes while the hook runs, so a hook that never
//! reads stdin cannot block us (or raise SIGPIPE), and a background process that keeps the
//! hook's output open cannot stall the wait. No threads are started: hooks may run inside a
//! forked container init.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::sys::memfd::{memfd_create, MFdFlags};
use oci_spec::runtime::Hook;

/// How much of a hook's stderr (and stdout) an error message carries: the tail, where the
/// reason usually is.
const OUTPUT_CAP: usize = 4096;

/// What a hook wrote, for error messages and tests.
#[derive(Debug, Default)]
pub(crate) struct HookOutput {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `hooks` in order, each with `state_json` (the OCI state) on stdin.
/// `kind` names the hook list ("prestart", "createRuntime", ...) for error messages.
pub fn run(kind: &str, hooks: &[Hook], state_json: &[u8]) -> Result<()> {
    // Validate the whole list first so a bad entry does not leave earlier hooks half-applied.
    for hook in hooks {
        validate(kind, hook)?;
    }
    for hook in hooks {
        run_one(kind, hook, state_json)?;
    }
    Ok(())
}

fn label(kind: &str, hook: &Hook) -> String {
    format!("{} ({kind})", hook.path().display())
}

fn hook_error(kind: &str, hook: &Hook, reason: impl Into<String>) -> Error {
    Error::Hook {
        path: label(kind, hook),
        reason: reason.into(),
    }
}

fn validate(kind: &str, hook: &Hook) -> Result<()> {
    let invalid = |what: String| Error::InvalidSpec(format!("hook {}: {what}", label(kind, hook)));
    if !hook.path().is_absolute() {
        return Err(invalid("path must be absolute".into()));
    }
    if let Some(t) = hook.timeout() {
        if t <= 0 {
            return Err(invalid(format!(
                "timeout must be greater than zero, got {t}"
            )));
        }
    }
    if let Some(bad) = hook.env().iter().flatten().find(|e| !e.contains('=')) {
        return Err(invalid(format!("env entry {bad:?} is not KEY=VALUE")));
    }
    Ok(())
}

/// Runs one hook to completion; a non-zero exit, a signal or a timeout is an error.
pub(crate) fn run_one(kind: &str, hook: &Hook, state_json: &[u8]) -> Result<HookOutput> {
    validate(kind, hook)?;
    let err = |reason: String| hook_error(kind, hook, reason);

    let stdin = memfd(c"berth-hook-stdin").map_err(|e| err(format!("create stdin: {e}")))?;
    let mut stdin = File::from(stdin);
    stdin
        .write_all(state_json)
        .and_then(|_| stdin.seek(SeekFrom::Start(0)).map(|_| ()))
        .map_err(|e| err(format!("write state to stdin: {e}")))?;
    let stdout =
        File::from(memfd(c"berth-hook-stdout").map_err(|e| err(format!("create stdout: {e}")))?);
    let stderr =
        File::from(memfd(c"berth-hook-stderr").map_err(|e| err(format!("create stderr: {e}")))?);

    let path = hook.path();
    let args = hook.args().as_deref().unwrap_or_default();
    let mut cmd = Command::new(path);
    match args.split_first() {
        Some((argv0, rest)) => {
            cmd.arg0(argv0).args(rest);
        }
        None => {
            cmd.arg0(path);
        }
    }
    cmd.env_clear();
    for entry in hook.env().iter().flatten() {
        // validate() guarantees the '='.
        if let Some((key, value)) = entry.split_once('=') {
            cmd.env(key, value);
        }
    }
    cmd.stdin(Stdio::from(stdin));
    cmd.stdout(Stdio::from(
        stdout
            .try_clone()
            .map_err(|e| err(format!("dup stdout: {e}")))?,
    ));
    cmd.stderr(Stdio::from(
        stderr
            .try_clone()
            .map_err(|e| err(format!("dup stderr: {e}")))?,
    ));

    let mut child = cmd.spawn().map_err(|e| err(format!("start: {e}")))?;
    // Drop our copies of the child's stdio now that it holds its own.
    drop(cmd);

    let status = match hook.timeout() {
        None => child.wait().map_err(|e| err(format!("wait: {e}")))?,
        Some(secs) => {
            let limit = Duration::from_secs(u64::try_from(secs).unwrap_or(1));
            match wait_timeout(&mut child, limit).map_err(|e| err(format!("wait: {e}")))? {
                Some(status) => status,
                None => {
                    // Already-exited races are fine: kill then reap either way.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(err(format!("timed out after {secs}s")));
                }
            }
        }
    };

    let output = HookOutput {
        stdout: tail(stdout),
        stderr: tail(stderr),
    };
    if status.success() {
        return Ok(output);
    }
    let mut reason = describe(status);
    if !output.stderr.is_empty() {
        reason.push_str(&format!(", stderr: {}", output.stderr));
    }
    if !output.stdout.is_empty() {
        reason.push_str(&format!(", stdout: {}", output.stdout));
    }
    Err(err(reason))
}

fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(s) => format!("killed by signal {sig} ({s})"),
            Err(_) => format!("killed by signal {sig}"),
        },
        None => format!("ended with {status}"),
    }
}

fn memfd(name: &std::ffi::CStr) -> std::io::Result<OwnedFd> {
    memfd_create(name, MFdFlags::MFD_CLOEXEC).map_err(std::io::Error::from)
}

/// The last [`OUTPUT_CAP`] bytes of a captured stream, lossily decoded and trimmed.
fn tail(mut file: File) -> String {
    let Ok(len) = file.seek(SeekFrom::End(0)) else {
        return String::new();
    };
    let start = len.saturating_sub(OUTPUT_CAP as u64);
    let mut buf = Vec::with_capacity(OUTPUT_CAP);
    if file.seek(SeekFrom::Start(start)).is_err()
        || file.take(OUTPUT_CAP as u64).read_to_end(&mut buf).is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let text = text.trim();
    if start > 0 {
        format!("...{text}")
    } else {
        text.to_string()
    }
}

/// Waits up to `limit` for `child`; `None` if it is still running then.
fn wait_timeout(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    let pidfd = crate::process::pidfd_open(pid)?;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        // A pidfd turns readable when the process exits: sleep exactly until then.
        let ms = u16::try_from(left.as_millis().saturating_add(1)).unwrap_or(u16::MAX);
        let mut fds = [nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn hook(value: serde_json::Value) -> Hook {
        serde_json::from_value(value).expect("test hook parses")
    }

    fn script(dir: &Path, name: &str, body: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_string()
    }

    const STATE: &[u8] =
        br#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":42,"bundle":"/b"}"#;

    #[test]
    fn state_arrives_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("state.json");
        let path = script(dir.path(), "h", &format!("/bin/cat > {}", out.display()));
        run("createRuntime", &[hook(json!({"path": path}))], STATE).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), STATE);
    }

    #[test]
    fn hook_that_ignores_stdin_is_fine() {
        // The state is larger than a pipe buffer: a pipe-fed hook that never reads would
        // block the writer or get EPIPE.
        let big = vec![b'x'; 1 << 20];
        run("poststart", &[hook(json!({"path": "/bin/true"}))], &big).unwrap();
    }

    #[test]
    fn env_is_exactly_the_hook_env() {
        let h = hook(
            json!({"path": "/usr/bin/env", "args": ["env"], "env": ["A=1", "B=two words", "C="]}),
        );
        let out = run_one("prestart", &h, STATE).unwrap();
        assert_eq!(out.stdout, "A=1\nB=two words\nC=");
        let h = hook(json!({"path": "/usr/bin/env"}));
        assert_eq!(run_one("prestart", &h, STATE).unwrap().stdout, "");
    }

    #[test]
    fn args_and_argv0() {
        let h = hook(json!({"path": "/bin/sh",
            "args": ["custom-argv0", "-c", "/usr/bin/tr '\\0' ' ' < /proc/$$/cmdline; echo \"|$1|$2\"", "x", "y z"]}));
        let out = run_one("createContainer", &h, STATE).unwrap();
        assert!(
            out.stdout.starts_with("custom-argv0 -c "),
            "{:?}",
            out.stdout
        );
        assert!(out.stdout.ends_with("|y z|"), "{:?}", out.stdout);

        // No args: argv[0] is the path; sh then reads its script from stdin.
        let h = hook(json!({"path": "/bin/sh"}));
        let out = run_one(
            "startContainer",
            &h,
            b"/usr/bin/tr '\\0' ' ' < /proc/$$/cmdline",
        )
        .unwrap();
        assert_eq!(out.stdout, "/bin/sh");
    }

    #[test]
    fn failure_names_kind_path_status_and_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let bad = script(
            dir.path(),
            "bad",
            "echo 'first line' >&2\necho 'no such device' >&2\nexit 3",
        );
        let next = script(
            dir.path(),
            "next",
            &format!("/usr/bin/touch {}", marker.display()),
        );
        let err = run(
            "poststart",
            &[hook(json!({"path": bad})), hook(json!({"path": next}))],
            STATE,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!(
                "hook {bad} (poststart): exited with status 3, stderr: first line\nno such device"
            )
        );
        assert!(!marker.exists(), "hooks after a failure must not run");
    }

    #[test]
    fn stderr_is_capped() {
        let h = hook(
            json!({"path": "/bin/sh", "args": ["sh", "-c", "/usr/bin/head -c 100000 /dev/zero | /usr/bin/tr '\\0' e >&2; echo END >&2; exit 1"]}),
        );
        let err = run("prestart", &[h], STATE).unwrap_err().to_string();
        assert!(err.len() < OUTPUT_CAP + 200, "{} bytes", err.len());
        assert!(err.ends_with("eeeeEND"), "{}", &err[err.len() - 20..]);
    }

    #[test]
    fn killed_by_signal_and_missing_binary() {
        let h = hook(json!({"path": "/bin/sh", "args": ["sh", "-c", "kill -TERM $$"]}));
        let err = run("poststop", &[h], STATE).unwrap_err().to_string();
        assert!(err.contains("killed by signal 15 (SIGTERM)"), "{err}");

        let h = hook(json!({"path": "/nonexistent/hook"}));
        let err = run("prestart", &[h], STATE).unwrap_err().to_string();
        assert!(
            err.starts_with("hook /nonexistent/hook (prestart): start: "),
            "{err}"
        );
    }

    #[test]
    fn invalid_hooks_are_rejected_before_any_runs() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let first = script(
            dir.path(),
            "first",
            &format!("/usr/bin/touch {}", marker.display()),
        );
        for (bad, want) in [
            (
                json!({"path": "relative/hook"}),
                "hook relative/hook (prestart): path must be absolute",
            ),
            (
                json!({"path": "/bin/true", "timeout": 0}),
                "timeout must be greater than zero, got 0",
            ),
            (
                json!({"path": "/bin/true", "env": ["NOEQUALS"]}),
                "env entry \"NOEQUALS\" is not KEY=VALUE",
            ),
        ] {
            let err = run(
                "prestart",
                &[hook(json!({"path": first})), hook(bad)],
                STATE,
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(want), "{err}");
        }
        assert!(!marker.exists());
    }

    #[test]
    fn timeout_kills_the_hook() {
        let h =
            hook(json!({"path": "/bin/sh", "args": ["sh", "-c", "/bin/sleep 5"], "timeout": 1}));
        let start = Instant::now();
        let err = run("createRuntime", &[h], STATE).unwrap_err().to_string();
        let took = start.elapsed();
        assert_eq!(err, "hook /bin/sh (createRuntime): timed out after 1s");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert!(took >= Duration::from_secs(1), "took {took:?}");
    }

    #[test]
    fn fast_hook_with_timeout_returns_promptly() {
        let h = hook(json!({"path": "/bin/true", "timeout": 30}));
        let start = Instant::now();
        run("poststart", &[h.clone(), h], STATE).unwrap();
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn empty_list_is_a_no_op() {
        run("prestart", &[], STATE).unwrap();
    }
}
