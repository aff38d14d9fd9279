//! Real peers for client tests: test images made with tests/make-image.py, skopeo, a
//! private dockerd, podman with its own roots, the reference registry. Everything they
//! start or mount is stopped and removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::{have, raw_request, repo_root, run};

/// A busybox rootfs and an OCI layout made from it; returns the top-level digest.
pub fn make_image(work: &Path, layout: &str, extra: &[&str]) -> String {
    let rootfs = work.join("rootfs");
    if !rootfs.exists() {
        run(Command::new(repo_root().join("tests/make-rootfs.sh")).arg(&rootfs));
    }
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("tests/make-image.py")).arg(work.join(layout));
    if !extra.contains(&"--index") {
        cmd.arg("--layer").arg(&rootfs);
    }
    for a in extra {
        cmd.arg(a.replace("ROOTFS", &rootfs.to_string_lossy()));
    }
    run(&mut cmd).trim().to_string()
}

pub fn skopeo(args: &[&str]) -> String {
    run(Command::new("skopeo").args(args))
}

pub fn inspect_raw(reference: &str) -> Vec<u8> {
    let out = Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", reference]).output().unwrap();
    assert!(out.status.success(), "skopeo inspect --raw {reference}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The manifest digest an OCI layout's index.json points at.
pub fn layout_digest(dir: &Path) -> String {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_string()
}

pub fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(dir.join("blobs/sha256").join(&digest[7..])).unwrap()
}

/// Processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        if std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle)) {
            pids.push(pid);
        }
    }
    pids
}

/// Lazily unmounts everything at or below `dir`, deepest first.
pub fn unmount_below(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in mounts {
        let _ = Command::new("umount").arg("-l").arg(&m).status();
    }
}

/// A private dockerd (own data root, exec root, socket) trusting the registry over HTTP.
pub struct Dockerd {
    child: Child,
    dir: TempDir,
    cli: PathBuf,
}

impl Dockerd {
    /// Starts a dockerd that reaches `insecure_registries` over plain HTTP.
    pub fn start(insecure_registries: &[&str]) -> Option<Dockerd> {
        Dockerd::start_with(insecure_registries, "{}")
    }

    /// Starts a dockerd with `daemon_json` as its configuration file.
    pub fn start_with(insecure_registries: &[&str], daemon_json: &str) -> Option<Dockerd> {
        if !have("dockerd", "docker.io") {
            return None;
        }
        let Some(cli) = ["/usr/bin/docker", "/usr/local/bin/docker"].iter().map(PathBuf::from).find(|p| p.exists()) else {
            eprintln!("skipping: no docker CLI (tests/install-deps.sh docker.io)");
            return None;
        };
        // Short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new().prefix("berth-reg-dockerd").tempdir_in("/tmp").unwrap();
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), daemon_json).unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--config-file").arg(d.join("daemon.json"))
            .arg("--data-root").arg(d.join("data"))
            .arg("--exec-root").arg(d.join("exec"))
            .arg("--pidfile").arg(d.join("pid"))
            .arg("-H").arg(format!("unix://{}", d.join("sock").display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(insecure_registries.iter().flat_map(|r| ["--insecure-registry", r]))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let mut dockerd = Dockerd { child, dir, cli };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !dockerd.docker(&["version"]).status.success() {
            if let Ok(Some(status)) = dockerd.child.try_wait() {
                panic!("dockerd exited with {status}: {}", std::fs::read_to_string(dockerd.dir.path().join("dockerd.log")).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "dockerd did not start within 90s");
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(dockerd)
    }

    /// Runs the docker CLI (with its own config directory, for logins) against this dockerd.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        self.docker_with_input(args, b"")
    }

    /// Like [`Dockerd::docker`], writing `input` to the CLI's stdin.
    pub fn docker_with_input(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(&self.cli)
            .arg("--config")
            .arg(self.config_dir())
            .arg("-H")
            .arg(format!("unix://{}", self.dir.path().join("sock").display()))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running docker");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input);
        }
        child.wait_with_output().expect("running docker")
    }

    /// The docker CLI's config directory (`config.json` holds logins).
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("cli-config")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(out.status.success(), "docker {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process by its id.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // containerd and shims started for this dockerd name its private directory.
        for pid in processes_mentioning(&self.dir.path().to_string_lossy()) {
            // SAFETY: these processes belong to the dockerd this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        unmount_below(self.dir.path());
    }
}

/// Podman with its own storage and run directories in a temporary directory.
pub struct Podman {
    dir: TempDir,
}

impl Podman {
    pub fn new() -> Option<Podman> {
        if !have("podman", "podman") {
            return None;
        }
        Some(Podman { dir: tempfile::Builder::new().prefix("berth-reg-podman").tempdir_in("/tmp").unwrap() })
    }

    pub fn cmd(&self, args: &[&str]) -> std::process::Output {
        let d = self.dir.path();
        Command::new("podman")
            .arg("--root").arg(d.join("root"))
            .arg("--runroot").arg(d.join("run"))
            .arg("--tmpdir").arg(d.join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(args)
            .output()
            .expect("running podman")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "podman {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rmi", "-af"]);
        unmount_below(self.dir.path());
    }
}

/// A plain GET (these tests drive command-line tools, without an async runtime).
pub fn get_bytes(url: &str) -> Vec<u8> {
    let rest = url.strip_prefix("http://").expect("http url");
    let (addr, path) = rest.split_once('/').expect("path");
    let (status, body) = raw_request(addr, "GET", &format!("/{path}"), "application/json", b"");
    assert_eq!(status, 200, "GET {url}: {body}");
    body.into_bytes()
}

/// A free loopback port (bound and released; the peer binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The reference registry (Debian's docker-registry, distribution 2.8) on a loopback port,
/// deletes enabled, its access log in its log file; killed on drop.
pub struct Distribution {
    child: Option<Child>,
    /// `127.0.0.1:PORT`
    pub addr: String,
    dir: TempDir,
}

impl Distribution {
    /// `None` (the test skips) when docker-registry is not installed.
    pub fn start() -> Option<Distribution> {
        if !have("docker-registry", "docker-registry") {
            return None;
        }
        let dir = TempDir::new().unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut d = Distribution { child: None, addr, dir };
        d.restart();
        Some(d)
    }

    /// Starts it again (same port, same data) after [`Distribution::stop`].
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&self.addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it; the port stops answering.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// How many `METHOD PATH` requests its access log shows.
    pub fn requests(&self, method: &str, path: &str) -> usize {
        let needle = format!("\"{method} {path} HTTP/");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }

    /// Where it keeps the content of a blob (to tamper with it).
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.dir.path().join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directory holding berthd and berth: `BERTH_BIN_DIR`, else next to berth-registry.
pub fn berth_binaries() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("BERTH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_BIN_EXE_berth-registry")).parent().unwrap().to_path_buf());
    let (berthd, berth) = (dir.join("berthd"), dir.join("berth"));
    if berthd.is_file() && berth.is_file() {
        Some((berthd, berth))
    } else {
        eprintln!("skipping: no berthd and berth in {} (cargo build -p berth-daemon -p berth-cli)", dir.display());
        None
    }
}

/// berthd on a private socket and data root, trusting `insecure` over HTTP.
pub struct Berthd {
    child: Child,
    dir: TempDir,
    berth: PathBuf,
}

impl Berthd {
    pub fn start(berthd: &Path, berth: &Path, insecure: &[&str]) -> Berthd {
        let dir = tempfile::Builder::new().prefix("berth-reg-berthd").tempdir_in("/var/tmp").unwrap();
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(d.join("berthd.log")).unwrap();
        let child = Command::new(berthd)
            .arg("--config-file").arg(d.join("daemon.json"))
            .arg("--data-root").arg(d.join("data"))
            .arg("--exec-root").arg(d.join("exec"))
            .arg("--pidfile").arg(d.join("berthd.pid"))
            .arg("-H").arg(format!("unix://{}", d.join("berth.sock").display()))
            .args(insecure.iter().flat_map(|r| ["--insecure-registry", r]))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting berthd");
        let mut daemon = Berthd { child, dir, berth: berth.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(daemon.dir.path().join("berth.sock")).is_err() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("berthd exited with {status}: {}", daemon.log());
            }
            assert!(Instant::now() < deadline, "berthd did not start: {}", daemon.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    pub fn berth(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let d = self.dir.path();
        let mut child = Command::new(&self.berth)
            .env("HOME", d)
            .env("BERTH_CONFIG", d.join("berth-config"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("berth.sock").display()))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running berth");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input);
        }
        child.wait_with_output().expect("running berth")
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process by its id.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- berthd log ---\n{}", self.log());
        }
        unmount_below(self.dir.path());
        let _ = Command::new("chmod").arg("-R").arg("u+rwx").arg(self.dir.path()).output();
    }
}
