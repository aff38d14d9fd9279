//! The real docker CLI (and the raw API) on berthd: `stats` (one document, streamed, the
//! table), `top`, `update` of limits and restart policy checked in the cgroup files,
//! healthchecks turning healthy and unhealthy with their events and `ps` filters, and
//! `--init` (docker-init as pid 1, zombies reaped, signals forwarded).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The statically linked berth-init, built once and handed to every berthd of this file.
fn static_init() -> &'static Path {
    static INIT: OnceLock<PathBuf> = OnceLock::new();
    INIT.get_or_init(|| {
        let out = ok(run(&mut Command::new(repo_root().join("crates/init/build-static.sh")), None));
        let path = PathBuf::from(out.trim());
        // berthd inherits it: the binary next to a debug berthd is dynamically linked.
        std::env::set_var("BERTH_INIT_PATH", &path);
        path
    })
}

fn setup() -> Option<(Daemon, tempfile::TempDir)> {
    if !have(&["docker", "ps"]) {
        return None;
    }
    static_init();
    let work = tempfile::Builder::new().prefix("container-stats-").tempdir_in("/var/tmp").unwrap();
    let daemon = Daemon::start(&[]);
    load_busybox(&daemon, work.path(), "busybox:latest");
    Some((daemon, work))
}

fn inspect(daemon: &Daemon, id: &str, format: &str) -> String {
    ok(daemon.docker(&["inspect", "-f", format, id])).trim().to_string()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// A GET on berthd's socket; returns the status code and a reader of the body (HTTP/1.0,
/// so the body ends when the connection does).
fn get(daemon: &Daemon, path: &str) -> (u16, BufReader<UnixStream>) {
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: berth\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header == "\r\n" || header.is_empty() {
            break;
        }
    }
    (status, reader)
}

fn get_json(daemon: &Daemon, path: &str) -> (u16, Value) {
    let (status, mut body) = get(daemon, path);
    let mut text = String::new();
    body.read_to_string(&mut text).unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}")))
}

/// The container's file of a cgroup controller, v1 or v2, on this host.
fn cgroup_file(id: &str, v1: (&str, &str), v2: &str) -> (PathBuf, bool) {
    let (controller, file) = v1;
    let v1_path = Path::new("/sys/fs/cgroup").join(controller).join("berth").join(id).join(file);
    if v1_path.exists() {
        return (v1_path, true);
    }
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let p = Path::new(root).join("berth").join(id).join(v2);
        if p.exists() {
            return (p, false);
        }
    }
    panic!("no {file} or {v2} for {id}");
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

const MIB: u64 = 1 << 20;

#[test]
fn stats_documents_and_the_docker_table() {
    let Some((daemon, _work)) = setup() else { return };
    let busy = ok(daemon.docker(&["run", "-d", "--name", "busy", "-m", "64m", "busybox", "sh", "-c", "while :; do :; done"])).trim().to_string();
    ok(daemon.docker(&["run", "-d", "--name", "idle", "busybox", "sleep", "1000"]));
    ok(daemon.docker(&["create", "--name", "stopped", "busybox", "true"]));

    // One document: two samples a second apart, so precpu is filled and CPU % exists.
    let (status, doc) = get_json(&daemon, "/containers/busy/stats?stream=0");
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["name"], "/busy");
    assert_eq!(doc["id"], busy.as_str());
    assert_eq!(doc["num_procs"], 0);
    assert_eq!(doc["storage_stats"], serde_json::json!({}));
    assert_eq!(doc["pids_stats"]["current"], 1);
    assert_eq!(doc["memory_stats"]["limit"].as_u64(), Some(64 * MIB), "{doc}");
    let usage = doc["memory_stats"]["usage"].as_u64().unwrap_or(0);
    assert!(usage > 0 && usage < 64 * MIB, "{doc}");
    assert!(doc["memory_stats"]["stats"].as_object().is_some_and(|s| !s.is_empty()), "{doc}");
    let cpu = &doc["cpu_stats"];
    let precpu = &doc["precpu_stats"];
    assert!(cpu["online_cpus"].as_u64().unwrap_or(0) >= 1, "{doc}");
    let cpu_delta = cpu["cpu_usage"]["total_usage"].as_u64().unwrap() - precpu["cpu_usage"]["total_usage"].as_u64().unwrap();
    let system_delta = cpu["system_cpu_usage"].as_u64().unwrap() - precpu["system_cpu_usage"].as_u64().unwrap();
    // A busy loop takes what it can of one CPU: clearly more than a tenth of one.
    let online = cpu["online_cpus"].as_u64().unwrap() as f64;
    let percent = cpu_delta as f64 / system_delta as f64 * online * 100.0;
    assert!(percent > 10.0, "cpu {percent}% of {doc}");
    assert!(cpu["throttling_data"].is_object());
    assert!(doc["blkio_stats"]["io_service_bytes_recursive"].is_array(), "{doc}");
    // No network namespace of its own with interfaces (network "none"): no networks.
    assert!(doc.get("networks").is_none(), "{doc}");
    assert_ne!(doc["read"], doc["preread"]);

    // one-shot: a single sample, nothing before it.
    let (_, doc) = get_json(&daemon, "/containers/idle/stats?stream=0&one-shot=1");
    assert!(doc["precpu_stats"].get("system_cpu_usage").is_none(), "{doc}");
    assert_eq!(doc["preread"], "0001-01-01T00:00:00Z");
    assert!(doc["memory_stats"]["limit"].as_u64().unwrap() > 64 * MIB, "the machine's memory: {doc}");
    let (status, doc) = get_json(&daemon, "/containers/idle/stats?stream=1&one-shot=1");
    assert_eq!(status, 400, "{doc}");
    let (status, _) = get_json(&daemon, "/containers/nosuch/stats?stream=0");
    assert_eq!(status, 404);
    // A container that is not running gets docker's empty document.
    let (status, doc) = get_json(&daemon, "/containers/stopped/stats?stream=0");
    assert_eq!((status, doc["name"].as_str()), (200, Some("/stopped")));
    assert_eq!(doc["read"], "0001-01-01T00:00:00Z");
    assert!(doc["blkio_stats"]["io_service_bytes_recursive"].is_null(), "{doc}");

    // The stream: a document a second, each after the first with its predecessor's CPU.
    let started = Instant::now();
    let (status, mut body) = get(&daemon, "/containers/busy/stats");
    assert_eq!(status, 200);
    let mut docs = vec![];
    for _ in 0..3 {
        let mut line = String::new();
        body.read_line(&mut line).unwrap();
        docs.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    drop(body);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_secs(6), "{elapsed:?}");
    assert!(docs[0]["precpu_stats"].get("system_cpu_usage").is_none());
    assert_eq!(docs[2]["precpu_stats"]["cpu_usage"]["total_usage"], docs[1]["cpu_stats"]["cpu_usage"]["total_usage"]);
    assert_eq!(docs[2]["preread"], docs[1]["read"]);

    // What docker users see.
    let table = ok(daemon.docker(&["stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", "busy", "idle"]));
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert_eq!(rows[0][0], "busy");
    let busy_cpu: f64 = rows[0][1].trim_end_matches('%').parse().unwrap();
    assert!(busy_cpu > 10.0, "{table}");
    assert!(rows[0][2].ends_with("/ 64MiB"), "{table}");
    assert_eq!(rows[0][3], "1");
    let idle_cpu: f64 = rows[1][1].trim_end_matches('%').parse().unwrap();
    assert!(idle_cpu < 5.0, "{table}");
    assert!(rows[1][2].ends_with("GiB"), "the machine's memory as the limit: {table}");
    // The streaming table refreshes until interrupted.
    let out = run(
        Command::new("timeout").args(["-s", "TERM", "-k", "2", "3.5", docker_cli(), "-H", &daemon.host(), "stats", "--format", "{{.Name}} {{.MemUsage}}", "busy"]).env("DOCKER_CONFIG", daemon.dir.path().join("docker-config")),
        None,
    );
    let text = stdout(&out);
    assert!(text.matches("busy ").count() >= 2, "{text}{}", stderr(&out));
    assert!(text.contains("/ 64MiB"), "{text}");
}

#[test]
fn top_shows_the_container_processes() {
    let Some((daemon, _work)) = setup() else { return };
    ok(daemon.docker(&["run", "-d", "--name", "tops", "busybox", "sh", "-c", "sleep 1001 & sleep 1002; echo done"]));
    wait_for("both sleeps", Duration::from_secs(10), || stdout(&daemon.docker(&["top", "tops"])).contains("sleep 1002"));
    let out = ok(daemon.docker(&["top", "tops"]));
    let mut lines = out.lines();
    let titles: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(titles, ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "sh and two sleeps, nothing of the host: {out}");
    assert!(out.contains("sleep 1001") && out.contains("sh -c sleep 1001 & sleep 1002; echo done"), "{out}");
    // The rows are host pids: the container's init is the one inspect names.
    let pid = inspect(&daemon, "tops", "{{.State.Pid}}");
    assert!(rows.iter().any(|r| r.split_whitespace().nth(1) == Some(pid.as_str())), "{out}");

    // ps arguments pass through; PID may not be renamed.
    let (status, v) = get_json(&daemon, "/containers/tops/top?ps_args=-o%20pid,comm");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Titles"], serde_json::json!(["PID", "COMMAND"]));
    let names: Vec<&str> = v["Processes"].as_array().unwrap().iter().map(|p| p[1].as_str().unwrap()).collect();
    assert_eq!(names, ["sh", "sleep", "sleep"]);
    let e = fails(daemon.docker(&["top", "tops", "-o", "user=PID"]));
    assert!(e.contains("specifying \"user=PID\" is not allowed"), "{e}");

    ok(daemon.docker(&["kill", "tops"]));
    ok(daemon.docker(&["wait", "tops"]));
    let e = fails(daemon.docker(&["top", "tops"]));
    assert!(e.contains("is not running"), "{e}");
}

#[test]
fn update_limits_live_and_in_the_record() {
    let Some((daemon, _work)) = setup() else { return };
    let id = ok(daemon.docker(&["run", "-d", "--name", "upd", "-m", "64m", "busybox", "sleep", "1000"])).trim().to_string();
    let (memory_file, _) = cgroup_file(&id, ("memory", "memory.limit_in_bytes"), "memory.max");
    assert_eq!(read_trim(&memory_file), (64 * MIB).to_string());

    let out = ok(daemon.docker(&["update", "-m", "96m", "--cpus", "0.5", "--pids-limit", "50", "upd"]));
    assert_eq!(out.trim(), "upd");
    assert_eq!(read_trim(&memory_file), (96 * MIB).to_string());
    let (quota_file, v1) = cgroup_file(&id, ("cpu", "cpu.cfs_quota_us"), "cpu.max");
    assert_eq!(read_trim(&quota_file), if v1 { "50000" } else { "50000 100000" });
    let (pids_file, _) = cgroup_file(&id, ("pids", "pids.max"), "pids.max");
    assert_eq!(read_trim(&pids_file), "50");
    assert_eq!(
        inspect(&daemon, "upd", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"),
        format!("{} {} 500000000 50", 96 * MIB, 128 * MIB)
    );
    let table = ok(daemon.docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "upd"]));
    assert!(table.trim().ends_with("/ 96MiB"), "{table}");

    // docker's refusals, and nothing changed by them.
    let e = fails(daemon.docker(&["update", "-m", "256m", "upd"]));
    assert!(e.contains(&format!("Cannot update container {id}: Memory limit should be smaller than already set memoryswap limit")), "{e}");
    let e = fails(daemon.docker(&["update", "-m", "64m", "--memory-swap", "32m", "upd"]));
    assert!(e.contains("Minimum memoryswap limit should be larger than memory limit"), "{e}");
    let e = fails(daemon.docker(&["update", "-m", "4m", "upd"]));
    assert!(e.contains("Minimum memory limit allowed is 6MB"), "{e}");
    let e = fails(daemon.docker(&["update", "--cpu-quota", "20000", "upd"]));
    assert!(e.contains("CPU Quota cannot be updated as NanoCPUs has already been set"), "{e}");
    assert_eq!(read_trim(&memory_file), (96 * MIB).to_string());
    assert_eq!(inspect(&daemon, "upd", "{{.HostConfig.Memory}}"), (96 * MIB).to_string());
    let e = fails(daemon.docker(&["update", "--cpus", "1", "nosuch"]));
    assert!(e.contains("No such container: nosuch"), "{e}");

    // Below what the container uses: the kernel refuses, docker's message names the usage.
    // (The echo keeps the shell, and its 30 MB variable, alive.)
    ok(daemon.docker(&["run", "-d", "--name", "hog", "-m", "100m", "busybox", "sh", "-c", "x=$(yes | head -c 30000000); sleep 1000; echo ${#x}"]));
    wait_for("the hog's memory", Duration::from_secs(20), || {
        let (_, doc) = get_json(&daemon, "/containers/hog/stats?stream=0&one-shot=1");
        doc["memory_stats"]["usage"].as_u64().unwrap_or(0) > 25 * MIB
    });
    let e = fails(daemon.docker(&["update", "-m", "8m", "--memory-swap", "8m", "hog"]));
    assert!(e.contains("unable to set memory limit to 8388608 (current usage:"), "{e}");
    assert_eq!(inspect(&daemon, "hog", "{{.HostConfig.Memory}} {{.State.Status}}"), format!("{} running", 100 * MIB));

    // A stopped container keeps the update for its next start.
    let later = ok(daemon.docker(&["create", "--name", "later", "busybox", "sleep", "1000"])).trim().to_string();
    ok(daemon.docker(&["update", "--cpus", "1.5", "later"]));
    ok(daemon.docker(&["start", "later"]));
    let (quota_file, v1) = cgroup_file(&later, ("cpu", "cpu.cfs_quota_us"), "cpu.max");
    assert_eq!(read_trim(&quota_file), if v1 { "150000" } else { "150000 100000" });
}

#[test]
fn update_restart_policy() {
    let Some((daemon, _work)) = setup() else { return };
    ok(daemon.docker(&["run", "-d", "--name", "rp", "busybox", "sh", "-c", "sleep 1; exit 3"]));
    ok(daemon.docker(&["update", "--restart", "on-failure:2", "rp"]));
    assert_eq!(inspect(&daemon, "rp", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"), "on-failure:2");
    // The new policy governs the exits that follow.
    wait_for("two restarts", Duration::from_secs(30), || inspect(&daemon, "rp", "{{.RestartCount}} {{.State.Status}}") == "2 exited");
    ok(daemon.docker(&["update", "--restart", "no", "rp"]));
    assert_eq!(inspect(&daemon, "rp", "{{.HostConfig.RestartPolicy.Name}}"), "no");

    ok(daemon.docker(&["run", "-d", "--rm", "--name", "gone", "busybox", "sleep", "1000"]));
    let e = fails(daemon.docker(&["update", "--restart", "always", "gone"]));
    assert!(e.contains("Restart policy cannot be updated because AutoRemove is enabled for the container"), "{e}");
    let e = fails(daemon.docker(&["update", "--restart", "always:3", "gone"]));
    assert!(e.contains("maximum retry count"), "{e}");
}

fn health(daemon: &Daemon, name: &str) -> Value {
    let out = ok(daemon.docker(&["inspect", "-f", "{{json .State.Health}}", name]));
    serde_json::from_str(out.trim()).unwrap()
}

fn ps_names(daemon: &Daemon, filter: &str) -> Vec<String> {
    let out = ok(daemon.docker(&["ps", "-a", "--filter", filter, "--format", "{{.Names}}"]));
    let mut names: Vec<String> = out.lines().map(String::from).collect();
    names.sort();
    names
}

#[test]
fn healthchecks_turn_healthy_and_unhealthy() {
    let Some((daemon, work)) = setup() else { return };
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let fast = ["--health-interval", "1s", "--health-retries", "2"];
    let run_checked = |name: &str, cmd: &str, extra: &[&str]| {
        let mut args = vec!["run", "-d", "--name", name, "--health-cmd", cmd];
        args.extend_from_slice(&fast);
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sleep", "1000"]);
        ok(daemon.docker(&args));
    };
    run_checked("good", "echo fine", &[]);
    run_checked("bad", "echo failing; exit 1", &[]);
    run_checked("slow", "sleep 5", &["--health-timeout", "500ms"]);
    ok(daemon.docker(&["run", "-d", "--name", "later", "--health-cmd", "true", "--health-interval", "1h", "busybox", "sleep", "1000"]));
    ok(daemon.docker(&["run", "-d", "--name", "plain", "busybox", "sleep", "1000"]));

    // Before the first check runs: starting.
    let status = ok(daemon.docker(&["ps", "--filter", "name=later", "--format", "{{.Status}}"]));
    assert!(status.trim().ends_with("(health: starting)"), "{status}");
    assert_eq!(health(&daemon, "later")["Status"], "starting");

    wait_for("good to be healthy", Duration::from_secs(20), || health(&daemon, "good")["Status"] == "healthy");
    wait_for("bad to be unhealthy", Duration::from_secs(20), || health(&daemon, "bad")["Status"] == "unhealthy");
    wait_for("slow to be unhealthy", Duration::from_secs(20), || health(&daemon, "slow")["Status"] == "unhealthy");

    let good = health(&daemon, "good");
    assert_eq!(good["FailingStreak"], 0);
    let log = good["Log"].as_array().unwrap();
    assert_eq!((log[0]["ExitCode"].as_i64(), log[0]["Output"].as_str()), (Some(0), Some("fine\n")), "{good}");
    let bad = health(&daemon, "bad");
    assert!(bad["FailingStreak"].as_i64().unwrap() >= 2, "{bad}");
    assert_eq!((bad["Log"][0]["ExitCode"].as_i64(), bad["Log"][0]["Output"].as_str()), (Some(1), Some("failing\n")), "{bad}");
    let slow = health(&daemon, "slow");
    assert_eq!((slow["Log"][0]["ExitCode"].as_i64(), slow["Log"][0]["Output"].as_str()), (Some(-1), Some("Health check exceeded timeout (500ms)")), "{slow}");
    // Timed-out checks are killed with what they started: they do not pile up (each would
    // live 5 s, one starts every 1.5 s).
    std::thread::sleep(Duration::from_millis(1200));
    let top = ok(daemon.docker(&["top", "slow"]));
    assert!(top.matches("sleep 5").count() <= 2, "{top}");

    // The last five results are kept, and the checks' execs are not listed.
    wait_for("five results", Duration::from_secs(20), || health(&daemon, "bad")["Log"].as_array().unwrap().len() == 5);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(health(&daemon, "bad")["Log"].as_array().unwrap().len(), 5);
    assert_eq!(inspect(&daemon, "bad", "{{json .ExecIDs}}"), "null");

    // docker ps: the status column and the health filter.
    let status = ok(daemon.docker(&["ps", "--filter", "name=good", "--format", "{{.Status}}"]));
    assert!(status.trim().starts_with("Up ") && status.trim().ends_with("(healthy)"), "{status}");
    let status = ok(daemon.docker(&["ps", "--filter", "name=bad", "--format", "{{.Status}}"]));
    assert!(status.trim().ends_with("(unhealthy)"), "{status}");
    assert_eq!(ps_names(&daemon, "health=healthy"), ["good"]);
    assert_eq!(ps_names(&daemon, "health=unhealthy"), ["bad", "slow"]);
    assert_eq!(ps_names(&daemon, "health=starting"), ["later"]);
    assert_eq!(ps_names(&daemon, "health=none"), ["plain"]);
    let e = fails(daemon.docker(&["ps", "--filter", "health=sick"]));
    assert!(e.contains("Unrecognised filter value for health: sick"), "{e}");

    // Each change of status is an event.
    let until = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1).to_string();
    let events = ok(daemon.docker(&["events", "--since", &since, "--until", &until, "--format", "{{.Action}} {{.Actor.Attributes.name}}"]));
    let health_events: Vec<&str> = events.lines().filter(|l| l.starts_with("health_status")).collect();
    assert!(health_events.contains(&"health_status: healthy good"), "{events}");
    assert!(health_events.contains(&"health_status: unhealthy bad"), "{events}");
    assert_eq!(health_events.iter().filter(|l| l.ends_with(" good")).count(), 1, "{events}");

    // The checks stop with the container.
    ok(daemon.docker(&["stop", "-t", "1", "bad"]));
    let count = health(&daemon, "bad")["Log"][4]["Start"].clone();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(health(&daemon, "bad")["Log"][4]["Start"], count);
    let status = ok(daemon.docker(&["ps", "-a", "--filter", "name=bad", "--format", "{{.Status}}"]));
    assert!(status.starts_with("Exited"), "{status}");

    // An image's HEALTHCHECK applies, and --no-healthcheck turns it off.
    let rootfs = busybox_rootfs(work.path());
    let archive = work.path().join("checked.tar");
    ok(run(
        Command::new(repo_root().join("tests/make-image.py"))
            .arg(work.path().join("checked-layout"))
            .arg("--layer")
            .arg(&rootfs)
            .args(["--config-json", r#"{"Cmd":["sleep","1000"],"Healthcheck":{"Test":["CMD-SHELL","test -e /etc/passwd"],"Interval":1000000000,"Retries":1}}"#])
            .arg("--docker-archive")
            .arg(&archive)
            .args(["--repo-tag", "checked:latest"]),
        None,
    ));
    ok(daemon.docker(&["load", "-q", "-i", &archive.display().to_string()]));
    ok(daemon.docker(&["run", "-d", "--name", "from-image", "checked"]));
    ok(daemon.docker(&["run", "-d", "--name", "unchecked", "--no-healthcheck", "checked"]));
    wait_for("the image's check", Duration::from_secs(20), || health(&daemon, "from-image")["Status"] == "healthy");
    assert_eq!(inspect(&daemon, "unchecked", "{{json .State.Health}}"), "null");
}

#[test]
fn init_is_pid_one_reaps_and_forwards_signals() {
    let Some((daemon, _work)) = setup() else { return };
    let ps = ok(daemon.docker(&["run", "--rm", "--init", "busybox", "ps", "-o", "pid,args"]));
    let first = ps.lines().nth(1).unwrap_or_default();
    assert!(first.trim_start().starts_with("1 ") && first.contains("/sbin/docker-init -- ps"), "{ps}");
    assert_eq!(ps.lines().count(), 3, "docker-init and ps: {ps}");

    // The child's status comes out: its exit code, or 128 + the signal that killed it.
    let out = daemon.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let out = daemon.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let out = daemon.docker(&["run", "--rm", "--init", "busybox", "/no/such"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));

    // An orphan that exits is reaped by the init; without it, it stays a zombie of pid 1
    // (here a `sleep` that never waits).
    let orphan = "sh -c 'sleep 0.2 & exec true'; exec sleep 1000";
    ok(daemon.docker(&["run", "-d", "--init", "--name", "with", "busybox", "sh", "-c", orphan]));
    ok(daemon.docker(&["run", "-d", "--name", "without", "busybox", "sh", "-c", orphan]));
    std::thread::sleep(Duration::from_millis(1500));
    let zombies = |name: &str| ok(daemon.docker(&["exec", name, "ps", "-o", "stat"])).lines().filter(|l| l.trim().starts_with('Z')).count();
    assert_eq!(zombies("without"), 1, "the check sees zombies where they exist");
    assert_eq!(zombies("with"), 0);

    // SIGTERM reaches the program through the init: stop is prompt.
    ok(daemon.docker(&["run", "-d", "--init", "--name", "sleeper", "busybox", "sleep", "1000"]));
    let started = Instant::now();
    ok(daemon.docker(&["stop", "sleeper"]));
    assert!(started.elapsed() < Duration::from_secs(5), "stop took {:?}", started.elapsed());
    assert_eq!(inspect(&daemon, "sleeper", "{{.State.ExitCode}}"), "143");
}
