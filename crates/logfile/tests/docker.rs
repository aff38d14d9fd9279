//! Against a real, private dockerd: berth reads the json-file logs docker writes (rotated
//! and compressed too) and, fed the same output, writes the very same bytes.
//!
//! Needs root and `dockerd` (Debian's docker.io); skipped with a note otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_logfile::{read, ContainerInfo, Entry, LogConfig, ReadOptions, Writer};
use common::*;

const IMAGE: &str = "berth-logfile-test:latest";

/// A dockerd with its own data root, exec root and socket under a temporary directory;
/// stopped, with everything it started, on drop.
struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
    cli: PathBuf,
}

impl Dockerd {
    fn start() -> Option<Dockerd> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipping: dockerd needs root");
            return None;
        }
        let dockerd = Path::new("/usr/sbin/dockerd");
        let cli = ["/usr/bin/docker", "/usr/local/bin/docker"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let (true, Some(cli)) = (dockerd.exists(), cli) else {
            eprintln!(
                "skipping: dockerd or the docker CLI is not installed (apt-get install docker.io)"
            );
            return None;
        };
        // Short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("berth-logfile")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let root = dir.path();
        std::fs::write(root.join("daemon.json"), "{}").expect("daemon.json");
        let log = std::fs::File::create(root.join("dockerd.log")).expect("dockerd.log");
        let child = Command::new(dockerd)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", root.join("docker.sock").display()))
            .arg("--pidfile")
            .arg(root.join("pid"))
            .arg("--config-file")
            .arg(root.join("daemon.json"))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut daemon = Dockerd { child, dir, cli };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !daemon.docker(&["version"]).status.success() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                let log = std::fs::read_to_string(daemon.dir.path().join("dockerd.log"))
                    .unwrap_or_default();
                panic!("dockerd exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 90s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(daemon)
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new(&self.cli)
            .arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A busybox image made from the host's static busybox.
    fn import_busybox(&self) {
        let rootfs = self.dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs");
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static");
        std::fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
        std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).expect("symlink");
        let socket = format!("unix://{}", self.dir.path().join("docker.sock").display());
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C '{}' -c . | '{}' -H '{socket}' import - {IMAGE} >/dev/null",
                rootfs.display(),
                self.cli.display()
            ))
            .status()
            .expect("import");
        assert!(status.success(), "docker import failed");
    }

    /// Runs a container to its end and returns its id.
    fn run(&self, args: &[&str], script: &str) -> String {
        let mut all = vec!["run", "-d", "--network", "none"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[IMAGE, "/bin/busybox", "sh", "-c", script]);
        let id = self.ok(&all);
        assert_eq!(self.ok(&["wait", &id]), "0");
        id
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join("data/containers").join(id)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // containerd and shims dockerd started name our directory on their command lines.
        let needle = self.dir.path().to_string_lossy().into_owned();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&needle) {
                    let _ = Command::new("kill")
                        .arg("-KILL")
                        .arg(pid.to_string())
                        .status();
                }
            }
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&needle))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = Command::new("umount").arg("-l").arg(mount).status();
        }
    }
}

fn read_docker_logs(dir: &Path, id: &str, config: &LogConfig, opts: &ReadOptions) -> Vec<Entry> {
    read(dir, id, config, opts, &|| true)
        .expect("open")
        .collect::<Result<_, _>>()
        .expect("read docker's log")
}

#[test]
fn dockerd_json_file_logs() {
    let Some(docker) = Dockerd::start() else {
        return;
    };
    docker.import_busybox();

    // 1. Output with escapes, attributes, long lines and a last line without a newline.
    let opts = [
        ("labels", "app"),
        ("env", "FOO"),
        ("tag", "{{.Name}}/{{.ID}}"),
    ];
    let script = r#"printf 'hello\n'; printf 'tab\there <b>&amp; "q" back\\slash\r\n' >&2;
        printf '\001\033[31mred\342\200\250 caf\303\251 \360\237\230\200\n';
        /bin/busybox head -c 20000 /dev/zero | /bin/busybox tr '\0' a; echo;
        /bin/busybox head -c 16384 /dev/zero | /bin/busybox tr '\0' b; echo;
        echo err >&2; printf 'no newline'"#;
    let id = docker.run(
        &[
            "--label",
            "app=web",
            "--label",
            "other=x",
            "-e",
            "FOO=bar",
            "--log-opt",
            "labels=app",
            "--log-opt",
            "env=FOO",
            "--log-opt",
            "tag={{.Name}}/{{.ID}}",
        ],
        script,
    );
    let name = docker.ok(&["inspect", "--format", "{{.Name}}", &id]);
    let attr_config = config("json-file", &opts);
    let dir = docker.container_dir(&id);
    let entries = read_docker_logs(&dir, &id, &attr_config, &ReadOptions::default());
    let text: Vec<(berth_logfile::Stream, String, bool)> = entries
        .iter()
        .map(|e| {
            (
                e.stream,
                String::from_utf8_lossy(&e.line).into_owned(),
                e.partial,
            )
        })
        .collect();
    use berth_logfile::Stream::{Stderr, Stdout};
    let expected = vec![
        (Stdout, "hello\n".to_string(), false),
        (
            Stderr,
            "tab\there <b>&amp; \"q\" back\\slash\r\n".to_string(),
            false,
        ),
        (
            Stdout,
            "\u{1}\u{1b}[31mred\u{2028} café 😀\n".to_string(),
            false,
        ),
        (Stdout, "a".repeat(16384), true),
        (Stdout, format!("{}\n", "a".repeat(20000 - 16384)), false),
        (Stdout, "b".repeat(16384), true),
        (Stdout, "\n".to_string(), false),
        (Stderr, "err\n".to_string(), false),
        (Stdout, "no newline".to_string(), true),
    ];
    // stdout and stderr are copied by separate goroutines: compare each stream in order.
    for stream in [Stdout, Stderr] {
        let got: Vec<_> = text.iter().filter(|t| t.0 == stream).collect();
        let want: Vec<_> = expected.iter().filter(|t| t.0 == stream).collect();
        assert_eq!(got, want, "{stream:?}");
    }
    let tag = format!("{}/{}", name.trim_start_matches('/'), &id[..12]);
    let attrs = vec![
        ("FOO".to_string(), "bar".to_string()),
        ("app".to_string(), "web".to_string()),
        ("tag".to_string(), tag),
    ];
    assert!(
        entries.iter().all(|e| e.attrs == attrs),
        "{:?}",
        entries[0].attrs
    );

    // Replaying the same output through berth's writer gives docker's bytes exactly.
    let container = ContainerInfo {
        id: id.clone(),
        name: name.clone(),
        labels: [
            ("app".to_string(), "web".to_string()),
            ("other".to_string(), "x".to_string()),
        ]
        .into(),
        env: vec![
            "FOO=bar".to_string(),
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ],
        ..ContainerInfo::default()
    };
    let ours = tempfile::tempdir().expect("tempdir");
    let mut w = Writer::open(
        ours.path(),
        &id,
        &attr_config,
        attr_config.attributes(&container).expect("attributes"),
    )
    .expect("open");
    for e in &entries {
        w.write(e.stream, &e.line, e.time).expect("write");
        if e.partial && e.line.len() < berth_logfile::MAX_MESSAGE {
            w.flush_partial().expect("flush");
        }
    }
    drop(w);
    let ours =
        std::fs::read_to_string(ours.path().join(format!("{id}-json.log"))).expect("read ours");
    let dockers =
        std::fs::read_to_string(dir.join(format!("{id}-json.log"))).expect("read docker's");
    assert_eq!(ours, dockers);

    // 2. Rotation with compression: berth reads docker's rotated set, oldest first.
    let opts = [("max-size", "1k"), ("max-file", "3"), ("compress", "true")];
    let id = docker.run(
        &["--log-opt", "max-size=1k", "--log-opt", "max-file=3", "--log-opt", "compress=true"],
        "i=0; while [ $i -lt 300 ]; do echo \"line $(/bin/busybox printf %05d $i) padding padding padding\"; i=$((i+1)); done",
    );
    let dir = docker.container_dir(&id);
    // docker compresses in the background; wait for its .gz files to settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && file_names(&dir)
            .iter()
            .any(|n| n.ends_with("-json.log.1") || n.ends_with("-json.log.2"))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rotating = config("json-file", &opts);
    let all = numbers(&read_docker_logs(
        &dir,
        &id,
        &rotating,
        &ReadOptions::default(),
    ));
    assert_eq!(all.last(), Some(&299));
    assert!(
        all.len() > 20,
        "three files of 1k hold more than {} lines",
        all.len()
    );
    assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "{all:?}");
    let tail = numbers(&read_docker_logs(
        &dir,
        &id,
        &rotating,
        &ReadOptions {
            tail: Some(15),
            ..Default::default()
        },
    ));
    assert_eq!(tail, (285..300).collect::<Vec<_>>());
    assert!(
        file_names(&dir).iter().any(|n| n.ends_with(".gz")),
        "{:?}",
        file_names(&dir)
    );
}
