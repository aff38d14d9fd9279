//! kill -9 of berthd in the middle of pulls: after a restart the store checks clean and the
//! pull completes (resuming what was downloaded).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `POST /system/check` through curl; returns the report.
fn check(daemon: &Daemon, repair: bool) -> serde_json::Value {
    let url = format!("http://berth/system/check{}", if repair { "?repair=1" } else { "" });
    let out = ok(run(Command::new("curl").args(["-sf", "-X", "POST", "--unix-socket"]).arg(&daemon.socket).arg(url), None));
    serde_json::from_str(&out).unwrap()
}

fn assert_clean(daemon: &Daemon) {
    let report = check(daemon, false);
    assert_eq!(report["problems"], serde_json::json!([]), "system check after a crash: {report}");
}

/// Starts `docker pull` and kills berthd with SIGKILL once the output contains `marker`
/// (or after `delay` when marker is empty).
fn pull_and_crash(daemon: &mut Daemon, image: &str, marker: &str, delay: Duration) {
    let config = daemon.dir.path().join("docker-config");
    let mut child = Command::new(docker_cli())
        .env("DOCKER_CONFIG", &config)
        .args(["-H", &daemon.host(), "pull", image])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let start = Instant::now();
    if marker.is_empty() {
        std::thread::sleep(delay);
    } else {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(marker) {
                std::thread::sleep(delay);
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no {marker:?} in pull output");
        }
    }
    daemon.kill9();
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kill9_during_pulls_then_check_and_resume() {
    if !have(&["docker", "skopeo", "docker-registry", "curl"]) {
        return;
    }
    let registry = Registry::start(&[]);
    let work = tempfile::Builder::new().prefix("crash-").tempdir_in("/var/tmp").unwrap();
    let rootfs = busybox_rootfs(work.path());
    // A big incompressible layer keeps the download going long enough to be interrupted.
    let big = work.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    ok(run(Command::new("dd").args(["if=/dev/urandom", "bs=1M", "count=300", "status=none"]).arg(format!("of={}/blob", big.display())), None));
    push_test_image(&registry, &[&rootfs, &big], "crash/big:1", &["--compression", "none"]);
    let image = format!("{}/crash/big:1", registry.addr);

    let mut daemon = Daemon::start(&[]);
    // Crash at different moments: while layers start, mid-download, later in the download.
    for (marker, delay) in [("", Duration::from_millis(150)), ("Downloading", Duration::ZERO), ("Downloading", Duration::from_millis(400))] {
        pull_and_crash(&mut daemon, &image, marker, delay);
        daemon.spawn();
        assert_clean(&daemon);
    }
    let out = ok(daemon.docker(&["pull", &image]));
    assert!(out.contains("Downloaded newer image") || out.contains("Image is up to date"), "{out}");
    let ids = ok(daemon.docker(&["images", "-q"]));
    assert_eq!(ids.lines().count(), 1, "{ids}");
    assert_clean(&daemon);

    // Damage the store: a layer directory vanishes. Check finds it and repair rebuilds it.
    let layers = daemon.data_root.join("image/layers");
    let victim = std::fs::read_dir(&layers).unwrap().next().unwrap().unwrap().path();
    ok(run(Command::new("rm").arg("-rf").arg(&victim), None));
    let report = check(&daemon, false);
    assert_eq!(report["problems"].as_array().unwrap().len(), 1, "{report}");
    let report = check(&daemon, true);
    assert_eq!(report["problems"][0]["repaired"], true, "{report}");
    assert!(victim.is_dir());
    assert_clean(&daemon);
}

#[test]
fn kill9_during_push_then_push_again() {
    if !have(&["docker", "skopeo", "docker-registry", "curl"]) {
        return;
    }
    let registry = Registry::start(&[]);
    let work = tempfile::Builder::new().prefix("crash-push-").tempdir_in("/var/tmp").unwrap();
    let rootfs = busybox_rootfs(work.path());
    ok(run(Command::new("dd").args(["if=/dev/urandom", "bs=1M", "count=200", "status=none"]).arg(format!("of={}/big", rootfs.display())), None));
    let tarball = work.path().join("rootfs.tar");
    ok(run(Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tarball).arg("."), None));
    let mut daemon = Daemon::start(&[]);
    let image = format!("{}/crash/pushed:1", registry.addr);
    ok(daemon.docker(&["import", tarball.to_str().unwrap(), &image]));

    let config = daemon.dir.path().join("docker-config");
    let mut child = Command::new(docker_cli())
        .env("DOCKER_CONFIG", &config)
        .args(["-H", &daemon.host(), "push", &image])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if line.map_or(true, |l| l.contains("Pushing")) {
            break;
        }
    }
    daemon.kill9();
    let _ = child.kill();
    let _ = child.wait();

    daemon.spawn();
    assert_clean(&daemon);
    let out = ok(daemon.docker(&["push", &image]));
    let digest = out.lines().find_map(|l| l.split("digest: ").nth(1)).and_then(|r| r.split_whitespace().next()).expect("digest line").to_string();
    let inspect = ok(run(Command::new("skopeo").args(["inspect", "--tls-verify=false"]).arg(format!("docker://{image}")), None));
    let remote: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(remote["Digest"], digest.as_str(), "{out}");
    assert_clean(&daemon);
}
