//! A runc-compatible runtime CLI driven as a subprocess, with its own `--root` so tests
//! never see each other's containers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bundle::{Bundle, Registered};
use crate::error::{Error, Result};

/// Environment variable naming the runtime binary under test; it wins over the default.
pub const RUNTIME_ENV: &str = "BERTH_TEST_RUNTIME";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// What one runtime command did. Output goes through files rather than pipes because a
/// container started by `create` inherits the runtime's stdio and would hold a pipe open.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl CmdOutput {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, if the command exited rather than died of a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// `Ok(self)` when it exited 0, else an error carrying stdout and stderr.
    pub fn ok(self) -> Result<CmdOutput> {
        if self.success() {
            Ok(self)
        } else {
            Err(Error::Failed {
                cmd: self.cmd,
                status: self.status.to_string(),
                stdout: self.stdout,
                stderr: self.stderr,
            })
        }
    }

    /// Parses stdout as one JSON value.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(self.stdout.trim()).map_err(|e| Error::Json {
            what: format!("stdout of {}", self.cmd),
            text: format!("{}\nstderr: {}", self.stdout, self.stderr),
            source: e,
        })
    }

    /// Reads the capture files again: after `create` + `start`, the container's own
    /// output lands in the files of the `create` call.
    pub fn reread(&self) -> Result<CmdOutput> {
        let mut again = self.clone();
        again.stdout = read_lossy(&self.stdout_path)?;
        again.stderr = read_lossy(&self.stderr_path)?;
        Ok(again)
    }
}

fn read_lossy(p: &Path) -> Result<String> {
    fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| Error::io("read", p, e))
}

/// A runtime binary plus a private state root.
#[derive(Debug)]
pub struct Runtime {
    bin: PathBuf,
    global: Vec<String>,
    dir: tempfile::TempDir,
    timeout: Duration,
    created: Mutex<Vec<String>>,
}

impl Runtime {
    /// Wraps `bin` with a fresh temporary `--root`.
    pub fn new(bin: impl Into<PathBuf>) -> Result<Runtime> {
        let mut bin = bin.into();
        // Tests run in their crate's directory; a relative path is meant from the workspace.
        if bin.is_relative() && !bin.exists() {
            bin = crate::rootfs::workspace_root().join(bin);
        }
        if !bin.exists() {
            return Err(Error::Setup(format!(
                "runtime binary {} does not exist",
                bin.display()
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-runtime-")
            .tempdir()
            .map_err(|e| Error::io("create temp dir", std::env::temp_dir(), e))?;
        let root = dir.path().join("root");
        fs::create_dir(&root).map_err(|e| Error::io("create", &root, e))?;
        fs::create_dir(dir.path().join("io")).map_err(|e| Error::io("create", dir.path(), e))?;
        Ok(Runtime {
            bin,
            global: vec!["--root".into(), root.to_string_lossy().into_owned()],
            dir,
            timeout: Duration::from_secs(60),
            created: Mutex::new(Vec::new()),
        })
    }

    /// `$BERTH_TEST_RUNTIME` if set, else `default`. Callers pass their binary, e.g.
    /// `Runtime::from_env_or(env!("CARGO_BIN_EXE_berth-runc"))`.
    pub fn from_env_or(default: impl Into<PathBuf>) -> Result<Runtime> {
        match std::env::var_os(RUNTIME_ENV) {
            Some(p) if !p.is_empty() => Runtime::new(p),
            _ => Runtime::new(default),
        }
    }

    /// `Some` only when `$BERTH_TEST_RUNTIME` is set; prints a skip note otherwise.
    pub fn from_env() -> Option<Result<Runtime>> {
        match std::env::var_os(RUNTIME_ENV) {
            Some(p) if !p.is_empty() => Some(Runtime::new(p)),
            _ => {
                eprintln!("skipping: {RUNTIME_ENV} is not set");
                None
            }
        }
    }

    /// Adds global flags (after `--root`), such as `--debug` or `--log FILE`.
    pub fn with_global_args(mut self, args: &[&str]) -> Runtime {
        self.global.extend(args.iter().map(|s| (*s).to_string()));
        self
    }

    /// Changes the per-command timeout (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Runtime {
        self.timeout = timeout;
        self
    }

    /// The runtime binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The state directory passed as `--root`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A container id unique in this machine's test run: `name-pid-counter`.
    pub fn unique_id(&self, name: &str) -> String {
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{clean}-{}-{n}", std::process::id())
    }

    /// Runs `<bin> <global flags> <args>` with stdin closed.
    pub fn command<S: AsRef<str>>(&self, args: &[S]) -> Result<CmdOutput> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let io = self.dir.path().join("io");
        let out_path = io.join(format!("{n}.out"));
        let err_path = io.join(format!("{n}.err"));
        let out = fs::File::create(&out_path).map_err(|e| Error::io("create", &out_path, e))?;
        let err = fs::File::create(&err_path).map_err(|e| Error::io("create", &err_path, e))?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.global)
            .args(args.iter().map(AsRef::as_ref))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let shown = format!(
            "{} {}",
            self.bin.display(),
            args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" ")
        );
        let status = wait_with_timeout(&mut cmd, &shown, self.timeout)?;
        Ok(CmdOutput {
            cmd: shown,
            status,
            stdout: read_lossy(&out_path)?,
            stderr: read_lossy(&err_path)?,
            stdout_path: out_path,
            stderr_path: err_path,
        })
    }

    fn track(&self, bundle: &Bundle, id: &str) {
        if let Ok(mut c) = self.created.lock() {
            if !c.iter().any(|x| x == id) {
                c.push(id.to_string());
            }
        }
        bundle.register(Registered {
            bin: self.bin.clone(),
            global: self.global.clone(),
            id: id.to_string(),
        });
    }

    fn bundle_cmd(
        &self,
        verb: &str,
        flags: &[&str],
        bundle: &Bundle,
        id: &str,
    ) -> Result<CmdOutput> {
        bundle.save()?;
        self.track(bundle, id);
        let b = bundle.path().to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec![verb, "--bundle", &b];
        args.extend_from_slice(flags);
        args.push(id);
        self.command(&args)
    }

    /// `run --bundle B ID`: runs to completion (config.json is saved first).
    pub fn run(&self, bundle: &Bundle, id: &str) -> Result<CmdOutput> {
        self.bundle_cmd("run", &[], bundle, id)
    }

    /// `run --bundle B FLAGS... ID`, e.g. `--detach` or `--no-pivot`.
    pub fn run_with(&self, bundle: &Bundle, id: &str, flags: &[&str]) -> Result<CmdOutput> {
        self.bundle_cmd("run", flags, bundle, id)
    }

    /// `create --bundle B ID`. The container writes into this call's capture files.
    pub fn create(&self, bundle: &Bundle, id: &str) -> Result<CmdOutput> {
        self.bundle_cmd("create", &[], bundle, id)
    }

    /// `create --bundle B FLAGS... ID`, e.g. `--pid-file F`.
    pub fn create_with(&self, bundle: &Bundle, id: &str, flags: &[&str]) -> Result<CmdOutput> {
        self.bundle_cmd("create", flags, bundle, id)
    }

    /// `start ID`.
    pub fn start(&self, id: &str) -> Result<CmdOutput> {
        self.command(&["start", id])
    }

    /// `state ID`.
    pub fn state(&self, id: &str) -> Result<CmdOutput> {
        self.command(&["state", id])
    }

    /// `state ID`, parsed; an error when the command fails.
    pub fn state_json(&self, id: &str) -> Result<Value> {
        self.state(id)?.ok()?.json()
    }

    /// `kill ID SIGNAL`.
    pub fn kill(&self, id: &str, signal: &str) -> Result<CmdOutput> {
        self.command(&["kill", id, signal])
    }

    /// `kill --all ID SIGNAL`.
    pub fn kill_all(&self, id: &str, signal: &str) -> Result<CmdOutput> {
        self.command(&["kill", "--all", id, signal])
    }

    /// `delete ID`.
    pub fn delete(&self, id: &str) -> Result<CmdOutput> {
        self.command(&["delete", id])
    }

    /// `delete --force ID`.
    pub fn delete_force(&self, id: &str) -> Result<CmdOutput> {
        self.command(&["delete", "--force", id])
    }

    /// `exec ID ARGS...`.
    pub fn exec(&self, id: &str, args: &[&str]) -> Result<CmdOutput> {
        self.exec_with(id, &[], args)
    }

    /// `exec FLAGS... ID ARGS...`, e.g. `--user 1000:1000`, `--env K=V`, `--cwd /tmp`.
    pub fn exec_with(&self, id: &str, flags: &[&str], args: &[&str]) -> Result<CmdOutput> {
        let mut v: Vec<&str> = vec!["exec"];
        v.extend_from_slice(flags);
        v.push(id);
        // No "--": runc stops parsing flags at the id and would run "--" as the command.
        v.extend_from_slice(args);
        self.command(&v)
    }

    /// `ps --format json ID`.
    pub fn ps(&self, id: &str) -> Result<CmdOutput> {
        self.command(&["ps", "--format", "json", id])
    }

    /// `pause ID`.
    pub fn pause(&self, id: &str) -> Result<CmdOutput> {
        self.command(&["pause", id])
    }

    /// `resume ID`.
    pub fn resume(&self, id: &str) -> Result<CmdOutput> {
        self.command(&["resume", id])
    }

    /// `list --format json`.
    pub fn list(&self) -> Result<CmdOutput> {
        self.command(&["list", "--format", "json"])
    }

    /// `list --format json`, parsed; runc prints `null` for none, read as an empty list.
    pub fn list_json(&self) -> Result<Vec<Value>> {
        match self.list()?.ok()?.json()? {
            Value::Array(v) => Ok(v),
            _ => Ok(Vec::new()),
        }
    }

    /// `events --stats ID`: one stats snapshot.
    pub fn events_stats(&self, id: &str) -> Result<CmdOutput> {
        self.command(&["events", "--stats", id])
    }

    /// `update --resources FILE ID` with `resources` written to FILE.
    pub fn update(&self, id: &str, resources: &Value) -> Result<CmdOutput> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let file = self
            .dir
            .path()
            .join("io")
            .join(format!("{n}.resources.json"));
        fs::write(&file, resources.to_string()).map_err(|e| Error::io("write", &file, e))?;
        let f = file.to_string_lossy().into_owned();
        self.command(&["update", "--resources", &f, id])
    }

    /// `update FLAGS... ID`, e.g. `--memory 64M`.
    pub fn update_with(&self, id: &str, flags: &[&str]) -> Result<CmdOutput> {
        let mut v: Vec<&str> = vec!["update"];
        v.extend_from_slice(flags);
        v.push(id);
        self.command(&v)
    }

    /// Polls `state` until the status is `stopped` or the container is gone.
    pub fn wait_stopped(&self, id: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.state(id)?;
            if !st.success() {
                return Ok(());
            }
            if st
                .json()
                .ok()
                .and_then(|v| v["status"].as_str().map(String::from))
                .as_deref()
                == Some("stopped")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    cmd: format!("waiting for {id} to stop"),
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs the bundle as it is configured (by default `probe report`) and parses the
    /// JSON the probe printed.
    pub fn run_probe(&self, bundle: &Bundle) -> Result<Value> {
        let id = self.unique_id("probe");
        self.run(bundle, &id)?.ok()?.json()
    }

    /// Sets the args to `/bin/probe ARGS...`, runs, and parses the probe's JSON.
    pub fn run_probe_args(&self, bundle: &mut Bundle, args: &[&str]) -> Result<Value> {
        bundle.set_probe_args(args);
        self.run_probe(bundle)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let ids = self.created.lock().map(|c| c.clone()).unwrap_or_default();
        for id in ids {
            force_delete(&self.bin, &self.global, &id);
        }
    }
}

/// `delete --force ID`, ignoring the outcome: used on cleanup paths, where the container
/// may long be gone.
pub(crate) fn force_delete(bin: &Path, global: &[String], id: &str) {
    let mut cmd = Command::new(bin);
    cmd.args(global)
        .args(["delete", "--force", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _ = wait_with_timeout(&mut cmd, "delete --force", Duration::from_secs(20));
}

fn wait_with_timeout(cmd: &mut Command, shown: &str, timeout: Duration) -> Result<ExitStatus> {
    let mut child = cmd.spawn().map_err(|e| Error::Spawn {
        cmd: shown.to_string(),
        source: e,
    })?;
    let deadline = Instant::now() + timeout;
    // Short first sleeps keep fast commands fast; later ones keep polling cheap.
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => {
                return Err(Error::Spawn {
                    cmd: shown.to_string(),
                    source: e,
                })
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Timeout {
                cmd: shown.to_string(),
                secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}
