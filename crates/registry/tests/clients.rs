//! Real clients against the registry: skopeo (copy in and out, inspect, index copies,
//! Docker media types, cross-repository copies, delete), dockerd with the docker CLI
//! (push, pull) and podman (push, pull). Each test skips with a message when its tool is
//! missing; everything a test starts is stopped and removed when it ends.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tempfile::TempDir;

/// A busybox rootfs and an OCI layout made from it; returns the top-level digest.
fn make_image(work: &Path, layout: &str, extra: &[&str]) -> String {
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

fn skopeo(args: &[&str]) -> String {
    run(Command::new("skopeo").args(args))
}

fn inspect_raw(reference: &str) -> Vec<u8> {
    let out = Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", reference]).output().unwrap();
    assert!(out.status.success(), "skopeo inspect --raw {reference}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The manifest digest an OCI layout's index.json points at.
fn layout_digest(dir: &Path) -> String {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_string()
}

fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(dir.join("blobs/sha256").join(&digest[7..])).unwrap()
}

#[test]
fn skopeo_copy_in_inspect_and_out() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    let reg = Registry::start();
    let work = TempDir::new().unwrap();
    let digest = make_image(work.path(), "in", &[]);
    let dest = format!("docker://{}/skopeo/busybox:latest", reg.addr);
    skopeo(&["copy", "--dest-tls-verify=false", "--preserve-digests", &format!("oci:{}:latest", work.path().join("in").display()), &dest]);

    let info: Value = serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &dest])).unwrap();
    assert_eq!(info["Digest"], digest.as_str());
    assert_eq!(info["RepoTags"], serde_json::json!(["latest"]));
    let raw = inspect_raw(&dest);
    assert_eq!(raw, layout_blob(&work.path().join("in"), &digest), "the registry changed the manifest bytes");

    // Out again into a fresh layout: same manifest, same layers, byte for byte.
    let out = work.path().join("out");
    skopeo(&["copy", "--src-tls-verify=false", "--preserve-digests", &dest, &format!("oci:{}:latest", out.display())]);
    assert_eq!(layout_digest(&out), digest);
    let manifest: Value = serde_json::from_slice(&layout_blob(&out, &digest)).unwrap();
    for layer in manifest["layers"].as_array().unwrap().iter().chain([&manifest["config"]]) {
        let d = layer["digest"].as_str().unwrap();
        assert_eq!(sha256(&layout_blob(&out, d)), d);
        assert_eq!(layout_blob(&out, d), layout_blob(&work.path().join("in"), d));
    }

    // Registry to registry (another repository): blobs are mounted, not sent again.
    let copy = format!("docker://{}/skopeo/copy:v1", reg.addr);
    skopeo(&["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests", &dest, &copy]);
    assert_eq!(inspect_raw(&copy), raw);

    // Docker media types (v2s2).
    let v2s2 = format!("docker://{}/skopeo/v2s2:latest", reg.addr);
    skopeo(&["copy", "--dest-tls-verify=false", "--format", "v2s2", &format!("oci:{}:latest", work.path().join("in").display()), &v2s2]);
    let m: Value = serde_json::from_slice(&inspect_raw(&v2s2)).unwrap();
    assert_eq!(m["mediaType"], DOCKER_MANIFEST);

    // Delete by digest.
    skopeo(&["delete", "--tls-verify=false", &format!("docker://{}/skopeo/copy@{digest}", reg.addr)]);
    let out = Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", &copy]).output().unwrap();
    assert!(!out.status.success(), "deleted manifest still served");
}

#[test]
fn skopeo_copy_all_of_an_index() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    let reg = Registry::start();
    let work = TempDir::new().unwrap();
    make_image(work.path(), "unused", &[]);
    let digest = make_image(work.path(), "multi", &["--index", "linux/amd64=ROOTFS", "linux/arm64/v8=ROOTFS"]);
    let dest = format!("docker://{}/skopeo/multi:latest", reg.addr);
    skopeo(&["copy", "--all", "--dest-tls-verify=false", "--preserve-digests", &format!("oci:{}:latest", work.path().join("multi").display()), &dest]);
    let raw = inspect_raw(&dest);
    assert_eq!(sha256(&raw), digest);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    for m in index["manifests"].as_array().unwrap() {
        let child = format!("docker://{}/skopeo/multi@{}", reg.addr, m["digest"].as_str().unwrap());
        assert_eq!(sha256(&inspect_raw(&child)), m["digest"].as_str().unwrap());
    }
    let out = work.path().join("out");
    skopeo(&["copy", "--all", "--src-tls-verify=false", "--preserve-digests", &dest, &format!("oci:{}:latest", out.display())]);
    assert_eq!(layout_digest(&out), digest);
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<i32> {
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
fn unmount_below(dir: &Path) {
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
struct Dockerd {
    child: Child,
    dir: TempDir,
    cli: PathBuf,
}

impl Dockerd {
    fn start(insecure_registry: &str) -> Option<Dockerd> {
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
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--config-file").arg(d.join("daemon.json"))
            .arg("--data-root").arg(d.join("data"))
            .arg("--exec-root").arg(d.join("exec"))
            .arg("--pidfile").arg(d.join("pid"))
            .arg("-H").arg(format!("unix://{}", d.join("sock").display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--insecure-registry", insecure_registry])
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

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.cli)
            .arg("-H")
            .arg(format!("unix://{}", self.dir.path().join("sock").display()))
            .args(args)
            .output()
            .expect("running docker")
    }

    fn ok(&self, args: &[&str]) -> String {
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

#[test]
fn docker_push_and_pull() {
    if !have("python3", "python3") {
        return;
    }
    let reg = Registry::start();
    let Some(dockerd) = Dockerd::start(&reg.addr) else { return };
    let work = TempDir::new().unwrap();
    let archive = work.path().join("busybox.tar");
    make_image(work.path(), "layout", &["--docker-archive", &archive.to_string_lossy(), "--repo-tag", "berth-test/busybox:src"]);
    dockerd.ok(&["load", "-i", &archive.to_string_lossy()]);
    let id = dockerd.ok(&["image", "inspect", "-f", "{{.Id}}", "berth-test/busybox:src"]).trim().to_string();

    let target = format!("{}/docker/busybox:v1", reg.addr);
    dockerd.ok(&["tag", "berth-test/busybox:src", &target]);
    let pushed = dockerd.ok(&["push", &target]);
    assert!(pushed.contains("digest: sha256:"), "{pushed}");
    // A second repository: the layer is mounted from the first.
    let second = format!("{}/docker/other:v2", reg.addr);
    dockerd.ok(&["tag", "berth-test/busybox:src", &second]);
    let pushed2 = dockerd.ok(&["push", &second]);
    assert!(pushed2.contains("Mounted from docker/busybox") || pushed2.contains("Layer already exists"), "{pushed2}");

    dockerd.ok(&["rmi", "berth-test/busybox:src", &target, &second]);
    assert!(!dockerd.docker(&["image", "inspect", &target]).status.success());
    let pulled = dockerd.ok(&["pull", &target]);
    assert!(pulled.contains("Digest: sha256:"), "{pulled}");
    let pulled_id = dockerd.ok(&["image", "inspect", "-f", "{{.Id}}", &target]).trim().to_string();
    assert_eq!(pulled_id, id);
    // The pushed manifest is what the registry serves.
    let repo_digest = dockerd.ok(&["image", "inspect", "-f", "{{index .RepoDigests 0}}", &target]);
    let digest = repo_digest.trim().rsplit('@').next().unwrap().to_string();
    let raw = get_bytes(&reg.url(&format!("/v2/docker/busybox/manifests/{digest}")));
    assert_eq!(sha256(&raw), digest);
}

/// Podman with its own storage and run directories in a temporary directory.
struct Podman {
    dir: TempDir,
}

impl Podman {
    fn new() -> Option<Podman> {
        if !have("podman", "podman") {
            return None;
        }
        Some(Podman { dir: tempfile::Builder::new().prefix("berth-reg-podman").tempdir_in("/tmp").unwrap() })
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
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

    fn ok(&self, args: &[&str]) -> String {
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

#[test]
fn podman_push_and_pull() {
    if !have("python3", "python3") {
        return;
    }
    let Some(podman) = Podman::new() else { return };
    let reg = Registry::start();
    let work = TempDir::new().unwrap();
    let archive = work.path().join("busybox.tar");
    make_image(work.path(), "layout", &["--docker-archive", &archive.to_string_lossy(), "--repo-tag", "berth-test/busybox:src"]);
    podman.ok(&["load", "-q", "-i", &archive.to_string_lossy()]);
    let id = podman.ok(&["image", "inspect", "-f", "{{.Id}}", "berth-test/busybox:src"]).trim().to_string();
    let target = format!("{}/podman/busybox:v1", reg.addr);
    podman.ok(&["tag", &id, &target]);
    podman.ok(&["push", "--tls-verify=false", &target]);
    podman.ok(&["rmi", "-af"]);
    assert!(!podman.cmd(&["image", "exists", &target]).status.success());
    podman.ok(&["pull", "--tls-verify=false", &target]);
    let pulled_id = podman.ok(&["image", "inspect", "-f", "{{.Id}}", &target]).trim().to_string();
    assert_eq!(pulled_id, id);
    let digest = podman.ok(&["image", "inspect", "-f", "{{.Digest}}", &target]).trim().to_string();
    let raw = get_bytes(&reg.url(&format!("/v2/podman/busybox/manifests/{digest}")));
    assert_eq!(sha256(&raw), digest);
}

/// A plain GET (these tests drive command-line tools, without an async runtime).
fn get_bytes(url: &str) -> Vec<u8> {
    let rest = url.strip_prefix("http://").expect("http url");
    let (addr, path) = rest.split_once('/').expect("path");
    let (status, body) = raw_request(addr, "GET", &format!("/{path}"), "application/json", b"");
    assert_eq!(status, 200, "GET {url}: {body}");
    body.into_bytes()
}
