//! Test harness: runs the same commands through `berth` and the real `docker` CLI against
//! one daemon and compares what they print.
//!
//! The daemon is the one whose socket is in `BERTH_TEST_DAEMON` (berthd, or any daemon
//! serving the Docker Engine API); when unset, each test starts its own private
//! `dockerd`. Reference registries (`docker-registry`) run on free loopback ports, which
//! dockerd trusts over plain HTTP. Everything a test starts is stopped and removed when
//! its handles drop, also when the test fails.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a single CLI command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// The `docker` client to compare against.
pub fn docker_cli() -> Option<PathBuf> {
    ["/usr/local/bin/docker", "/usr/bin/docker"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The berth binary under test.
pub fn berth_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth"))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Names unique to this test process, so tests can share a daemon.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "berthtest{}x{}-{prefix}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Sends `GET /_ping` over a unix socket; true on a 200 answer.
fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// Processes whose command line mentions `needle` (children dockerd started for us).
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Mount points at or below `dir`, deepest first.
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A private dockerd with its own data root, exec root and socket.
pub struct PrivateDockerd {
    child: Child,
    dir: TempDir,
}

impl PrivateDockerd {
    fn start() -> Option<PrivateDockerd> {
        let dockerd = Path::new("/usr/sbin/dockerd");
        if !dockerd.exists() {
            eprintln!("skipping: dockerd is not installed (apt-get install docker.io) and BERTH_TEST_DAEMON is not set");
            return None;
        }
        // Short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("berthd-test")
            .tempdir_in("/tmp")
            .expect("creating daemon directory");
        let root = dir.path();
        std::fs::write(root.join("daemon.json"), "{}").expect("writing daemon.json");
        let log = std::fs::File::create(root.join("dockerd.log")).expect("creating log");
        let socket = root.join("docker.sock");
        let child = Command::new(dockerd)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--pidfile")
            .arg(root.join("pid"))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .arg("--config-file")
            .arg(root.join("daemon.json"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let mut daemon = PrivateDockerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !ping(&socket) {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                let log = std::fs::read_to_string(daemon.dir.path().join("dockerd.log"))
                    .unwrap_or_default();
                panic!("dockerd exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 90s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(daemon)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signalling our own child process by its id.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if !wait_with_timeout(&mut self.child, Duration::from_secs(30)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // containerd and shims that dockerd started under our directories.
        let needle = self.dir.path().to_string_lossy().into_owned();
        for pid in processes_mentioning(&needle) {
            // SAFETY: these processes were started by the dockerd this test started and
            // name its private directory on their command line.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for mount in mounts_below(self.dir.path()) {
            if let Ok(c) = std::ffi::CString::new(mount.to_string_lossy().as_bytes()) {
                // SAFETY: `c` is a valid NUL-terminated path; a lazy unmount of a mount
                // this test's daemon created.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// The daemon under test.
pub struct Daemon {
    socket: PathBuf,
    private: Option<PrivateDockerd>,
}

impl Daemon {
    /// The daemon of `BERTH_TEST_DAEMON`, or a private dockerd; `None` when neither can be
    /// had (the test is then skipped).
    pub fn get() -> Option<Daemon> {
        if let Some(socket) = std::env::var_os("BERTH_TEST_DAEMON").filter(|s| !s.is_empty()) {
            return Some(Daemon {
                socket: PathBuf::from(socket),
                private: None,
            });
        }
        let private = PrivateDockerd::start()?;
        Some(Daemon {
            socket: private.socket(),
            private: Some(private),
        })
    }

    /// `unix:///path`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Whether other tests may be using the daemon at the same time.
    pub fn is_shared(&self) -> bool {
        self.private.is_none()
    }
}

/// A reference registry (distribution v2) on a free loopback port.
pub struct Registry {
    child: Child,
    dir: TempDir,
    pub port: u16,
}

impl Registry {
    /// Starts a registry; with `credentials` it requires basic auth (htpasswd).
    pub fn start(credentials: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("registry directory");
        let mut auth = String::new();
        if let Some((user, password)) = credentials {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("running htpasswd (apt-get install apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(&htpasswd, out.stdout).expect("writing htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                htpasswd.display()
            );
        }
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.path().join("data").display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("writing registry config");
            let mut child = Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting docker-registry (apt-get install docker-registry)");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Registry { child, dir, port };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Port taken meanwhile, or a slow start: try another port.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a command printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
    /// Standard output as bytes (archives are not text).
    pub raw_stdout: Vec<u8>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("code", &self.code)
            .field(
                "stdout",
                &self.stdout.chars().take(4000).collect::<String>(),
            )
            .field("stderr", &self.stderr)
            .finish()
    }
}

impl Run {
    fn from_output(out: Output) -> Run {
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
            raw_stdout: out.stdout,
        }
    }

    /// Panics with the output unless the command succeeded.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "command failed:\n{self:#?}");
        self
    }
}

/// A busybox root filesystem as a tar with fixed timestamps and owners, so its layer
/// digest is the same every time. Cached in the test scratch directory of the target dir.
pub fn rootfs_tar() -> PathBuf {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let tar = scratch.join("berth-cli-rootfs.tar");
        if tar.exists() {
            return tar;
        }
        let work = tempfile::tempdir_in(&scratch).expect("rootfs work directory");
        let rootfs = work.path().join("rootfs");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/make-rootfs.sh");
        let status = Command::new("bash")
            .arg(&script)
            .arg(&rootfs)
            .status()
            .expect("running make-rootfs.sh");
        assert!(status.success(), "make-rootfs.sh failed");
        let partial = work.path().join("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args([
                "--sort=name",
                "--mtime=2024-01-01 00:00:00Z",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
            ])
            .arg("-cf")
            .arg(&partial)
            .arg(".")
            .status()
            .expect("running tar");
        assert!(status.success(), "tar failed");
        // Renamed into place whole, so concurrent test processes never see half a file.
        std::fs::rename(&partial, &tar).expect("placing rootfs tar");
        tar
    })
    .clone()
}

/// One test's world: the daemon, and separate client configurations for berth and
/// docker (and a private HOME so nobody's real credentials leak in).
pub struct TestEnv {
    pub docker: PathBuf,
    pub home: TempDir,
    pub berth_config: PathBuf,
    pub docker_config: PathBuf,
    /// Images to remove when the test ends (on a shared daemon they would stay).
    images: std::cell::RefCell<Vec<String>>,
    /// Containers and volumes to remove when the test ends.
    containers: std::cell::RefCell<Vec<String>>,
    volumes: std::cell::RefCell<Vec<String>>,
    pub daemon: Daemon,
}

impl TestEnv {
    /// `None` when the test must be skipped (no daemon or no docker CLI).
    pub fn new() -> Option<TestEnv> {
        let Some(docker) = docker_cli() else {
            eprintln!("skipping: the docker CLI is not installed (apt-get install docker.io)");
            return None;
        };
        let daemon = Daemon::get()?;
        let home = tempfile::tempdir().expect("home directory");
        let berth_config = home.path().join("berth-config");
        let docker_config = home.path().join("docker-config");
        std::fs::create_dir_all(&berth_config).expect("berth config dir");
        std::fs::create_dir_all(&docker_config).expect("docker config dir");
        Some(TestEnv {
            daemon,
            docker,
            home,
            berth_config,
            docker_config,
            images: std::cell::RefCell::new(Vec::new()),
            containers: std::cell::RefCell::new(Vec::new()),
            volumes: std::cell::RefCell::new(Vec::new()),
        })
    }

    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        // Commands that pick their own daemon start with "-H".
        if args.first() != Some(&"-H") {
            cmd.arg("-H").arg(self.daemon.host());
        }
        cmd.args(args)
            .env("HOME", self.home.path())
            .env("BERTH_CONFIG", &self.berth_config)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env("TZ", "UTC")
            .env_remove("BERTH_HOST")
            .env_remove("DOCKER_HOST")
            .env_remove("BERTH_API_VERSION")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CLI_HINTS", "false");
        cmd
    }

    fn run(&self, program: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
        self.run_env(program, args, stdin, &[])
    }

    fn run_env(
        &self,
        program: &Path,
        args: &[&str],
        stdin: Option<&[u8]>,
        envs: &[(&str, &str)],
    ) -> Run {
        let mut cmd = self.command(program, args);
        cmd.envs(envs.iter().copied());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running {program:?}: {e}"));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            let input = input.to_vec();
            // A separate writer so a command that reads little cannot deadlock the test.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(out) => Run::from_output(out.expect("waiting for command")),
            Err(_) => {
                // SAFETY: killing the command this test started, by its id.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("{program:?} {args:?} did not finish within {COMMAND_TIMEOUT:?}");
            }
        }
    }

    /// Runs `berth ARGS`.
    pub fn berth(&self, args: &[&str]) -> Run {
        self.run(&berth_bin(), args, None)
    }

    /// Runs `berth ARGS` with `input` on stdin.
    pub fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        self.run(&berth_bin(), args, Some(input))
    }

    /// Runs `berth ARGS` with extra environment variables.
    pub fn berth_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        self.run_env(&berth_bin(), args, None, envs)
    }

    /// Runs `docker ARGS` with extra environment variables.
    pub fn docker_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        self.run_env(&self.docker, args, None, envs)
    }

    /// Runs `docker ARGS`.
    pub fn docker(&self, args: &[&str]) -> Run {
        self.run(&self.docker, args, None)
    }

    /// Runs `docker ARGS` with `input` on stdin.
    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        self.run(&self.docker, args, Some(input))
    }

    /// Runs `berth ARGS` on a pseudo-terminal (util-linux `script`), typing each of
    /// `typed` after a pause; `None` when `script` is not installed.
    pub fn berth_on_terminal(&self, args: &[&str], typed: &[&str]) -> Option<Run> {
        let paced: Vec<(&str, u64)> = typed.iter().map(|t| (*t, 700)).collect();
        self.berth_on_terminal_paced(args, &paced)
    }

    /// Like `berth_on_terminal`, each text typed after its own pause in milliseconds.
    pub fn berth_on_terminal_paced(&self, args: &[&str], typed: &[(&str, u64)]) -> Option<Run> {
        let script = Path::new("/usr/bin/script");
        if !script.exists() {
            eprintln!("skipping terminal check: util-linux `script` is not installed");
            return None;
        }
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let mut line = format!(
            "stty cols 150; exec {} -H {}",
            quote(&berth_bin().display().to_string()),
            quote(&self.daemon.host())
        );
        for arg in args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        let mut cmd = Command::new(script);
        cmd.args(["-qec", &line, "/dev/null"])
            .env("HOME", self.home.path())
            .env("BERTH_CONFIG", &self.berth_config)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env("TZ", "UTC")
            .env("SHELL", "/bin/sh")
            .env_remove("BERTH_HOST")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("running script");
        let mut stdin = child.stdin.take().expect("script stdin");
        let typed: Vec<(String, u64)> = typed.iter().map(|(s, d)| (s.to_string(), *d)).collect();
        std::thread::spawn(move || {
            for (text, pause) in typed {
                std::thread::sleep(Duration::from_millis(pause));
                let _ = stdin.write_all(text.as_bytes());
                let _ = stdin.flush();
            }
            // Keep the terminal open until the command is done.
            std::thread::sleep(Duration::from_secs(5));
        });
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(out) => Some(Run::from_output(out.expect("waiting for script"))),
            Err(_) => {
                // SAFETY: killing the `script` process this test started, by its id.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("berth {args:?} on a terminal did not finish");
            }
        }
    }

    /// Text that names the client in one and not the other, made equal.
    pub fn normalize(&self, text: &str) -> String {
        text.replace(&self.berth_config.display().to_string(), "<config>")
            .replace(&self.docker_config.display().to_string(), "<config>")
            .replace("docker", "berth")
            .replace("Docker", "berth")
    }

    /// Runs the same command through both clients and asserts the same output and exit
    /// status.
    pub fn compare(&self, args: &[&str]) -> Run {
        self.compare_with(args, |s| s.to_string())
    }

    /// Like `compare`, with a normalization applied to both outputs.
    pub fn compare_with(&self, args: &[&str], normalize: impl Fn(&str) -> String) -> Run {
        self.compare_attempts(args, normalize, 1)
    }

    /// For read-only commands whose output depends on the clock ("2 seconds ago"): the
    /// two runs can straddle a boundary, so a difference is retried a few times.
    pub fn compare_clock(&self, args: &[&str]) -> Run {
        self.compare_attempts(args, |s| s.to_string(), 4)
    }

    /// `compare_clock` with a normalization.
    pub fn compare_clock_with(&self, args: &[&str], normalize: impl Fn(&str) -> String) -> Run {
        self.compare_attempts(args, normalize, 4)
    }

    fn compare_attempts(
        &self,
        args: &[&str],
        normalize: impl Fn(&str) -> String,
        attempts: usize,
    ) -> Run {
        let mut last = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(700));
            }
            let b = self.berth(args);
            let d = self.docker(args);
            let norm = |r: &Run| Run {
                stdout: normalize(&self.normalize(&r.stdout)),
                stderr: normalize(&self.normalize(&r.stderr)),
                code: r.code,
                raw_stdout: Vec::new(),
            };
            let (nb, nd) = (norm(&b), norm(&d));
            if nb == nd {
                return b;
            }
            last = Some((nb, nd));
        }
        let (b, d) = last.expect("at least one attempt");
        panic!(
            "berth and docker differ for {args:?}\n--- berth (exit {}):\n{}{}\n--- docker (exit {}):\n{}{}",
            b.code, b.stdout, b.stderr, d.code, d.stdout, d.stderr
        );
    }

    /// Removes the container `name` (forcibly, with its anonymous volumes) when the
    /// test ends.
    pub fn track_container(&self, name: &str) {
        self.containers.borrow_mut().push(name.to_string());
    }

    /// Removes the volume `name` when the test ends.
    pub fn track_volume(&self, name: &str) {
        self.volumes.borrow_mut().push(name.to_string());
    }

    /// Removes `name` (an image reference or ID) when the test ends.
    pub fn track(&self, name: &str) {
        self.images.borrow_mut().push(name.to_string());
    }

    /// Imports the test rootfs as `name` with docker (the reference client).
    pub fn import_image(&self, name: &str, extra: &[&str]) -> String {
        self.track(name);
        let tar = rootfs_tar();
        let mut args = vec!["import"];
        args.extend_from_slice(extra);
        let tar = tar.display().to_string();
        args.push(&tar);
        args.push(name);
        let id = self.docker(&args).ok().stdout.trim().to_string();
        self.track(&id);
        id
    }

    /// Removes images by name or ID, ignoring those already gone.
    pub fn remove_images(&self, names: &[&str]) {
        if names.is_empty() {
            return;
        }
        let mut args = vec!["rmi", "-f"];
        args.extend_from_slice(names);
        let _ = self.docker(&args);
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let containers = std::mem::take(&mut *self.containers.borrow_mut());
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(containers.iter().map(String::as_str));
            let _ = self.docker(&args);
        }
        let volumes = std::mem::take(&mut *self.volumes.borrow_mut());
        if !volumes.is_empty() {
            let mut args = vec!["volume", "rm", "-f"];
            args.extend(volumes.iter().map(String::as_str));
            let _ = self.docker(&args);
        }
        let names = std::mem::take(&mut *self.images.borrow_mut());
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.remove_images(&refs);
    }
}

/// Replaces every `sha256:` followed by 64 hex digits (and bare 12-character short IDs
/// listed in `ids`) with a placeholder, for outputs that name different images.
pub fn mask_digests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 7..];
        let hex_len = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex_len == 64 {
            out.push_str("sha256:<digest>");
            rest = &after[64..];
        } else {
            out.push_str("sha256:");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}
