//! The real docker CLI running containers on berthd: run (foreground, detached, stdin,
//! terminal), the lifecycle commands, exec, logs, volumes, restart policies, errors, and
//! containers outliving a crash of berthd.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn setup() -> Option<(Daemon, tempfile::TempDir)> {
    if !have(&["docker"]) {
        return None;
    }
    let work = tempfile::Builder::new().prefix("containers-").tempdir_in("/var/tmp").unwrap();
    let daemon = Daemon::start(&[]);
    load_busybox(&daemon, work.path(), "busybox:latest");
    Some((daemon, work))
}

fn inspect(daemon: &Daemon, id: &str, format: &str) -> String {
    ok(daemon.docker(&["inspect", "-f", format, id])).trim().to_string()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn run_foreground_output_exit_code_and_rm() {
    let Some((daemon, _work)) = setup() else { return };
    let out = daemon.docker(&["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    assert_eq!(ok(daemon.docker(&["ps", "-aq"])).trim(), "", "--rm removed the container");

    // Environment, working directory, user and hostname as docker sets them.
    let out = ok(daemon.docker(&["run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "65534:65534", "--hostname", "box", "busybox", "sh", "-c", "echo $A $(pwd) $(id -u):$(id -g) $(hostname)"]));
    assert_eq!(out.trim(), "1 /tmp 65534:65534 box");

    // stdin through -i.
    let out = run(Command::new(docker_cli()).env("DOCKER_CONFIG", daemon.dir.path().join("docker-config")).args(["-H", &daemon.host(), "run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z"]), Some(b"hello\n"));
    assert_eq!(ok(out), "HELLO\n");
}

#[test]
fn detached_lifecycle_logs_exec() {
    let Some((daemon, _work)) = setup() else { return };
    let id = ok(daemon.docker(&["run", "-d", "--name", "web", "busybox", "sh", "-c", "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"])).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(inspect(&daemon, "web", "{{.State.Status}} {{.State.Running}} {{.Name}}"), "running true /web");
    let ps = ok(daemon.docker(&["ps", "--format", "{{.Names}} {{.Image}} {{.Status}}"]));
    assert!(ps.starts_with("web busybox Up"), "{ps}");
    wait_for("the first log line", || stdout(&daemon.docker(&["logs", "web"])) == "started\n");

    let out = ok(daemon.docker(&["exec", "-e", "X=2", "-w", "/etc", "web", "sh", "-c", "echo $X $(pwd)"]));
    assert_eq!(out.trim(), "2 /etc");
    let failed = daemon.docker(&["exec", "web", "sh", "-c", "exit 4"]);
    assert_eq!(failed.status.code(), Some(4));
    let missing = daemon.docker(&["exec", "web", "/no/such"]);
    assert_eq!(missing.status.code(), Some(126), "{}", stderr(&missing));
    assert!(stdout(&missing).contains("no such file or directory"), "{}", stdout(&missing));

    ok(daemon.docker(&["pause", "web"]));
    assert_eq!(inspect(&daemon, "web", "{{.State.Status}}"), "paused");
    ok(daemon.docker(&["unpause", "web"]));
    assert_eq!(inspect(&daemon, "web", "{{.State.Status}}"), "running");

    ok(daemon.docker(&["stop", "web"]));
    assert_eq!(inspect(&daemon, "web", "{{.State.Status}} {{.State.ExitCode}}"), "exited 0");
    assert_eq!(stdout(&daemon.docker(&["logs", "web"])), "started\nbye\n");
    assert_eq!(ok(daemon.docker(&["ps", "-q"])).trim(), "");
    assert_eq!(ok(daemon.docker(&["ps", "-aq", "--no-trunc"])).trim(), id);

    ok(daemon.docker(&["start", "web"]));
    wait_for("the restart's log line", || stdout(&daemon.docker(&["logs", "web"])).matches("started").count() == 2);
    ok(daemon.docker(&["rename", "web", "web2"]));
    let e = fails(daemon.docker(&["rm", "web2"]));
    assert!(e.contains("You cannot remove a running container"), "{e}");
    ok(daemon.docker(&["kill", "web2"]));
    assert_eq!(ok(daemon.docker(&["wait", "web2"])).trim(), "137");
    ok(daemon.docker(&["rm", "web2"]));
    let e = fails(daemon.docker(&["inspect", "web2"]));
    assert!(e.contains("No such object: web2") || e.contains("No such container"), "{e}");
}

#[test]
fn terminal_through_a_pty() {
    let Some((daemon, _work)) = setup() else { return };
    if !have(&["script"]) {
        return;
    }
    let cmd = format!("{} -H {} run -it --rm busybox sh -c 'stty size; exit 5'", docker_cli(), daemon.host());
    let out = run(Command::new("script").env("DOCKER_CONFIG", daemon.dir.path().join("docker-config")).env("COLUMNS", "99").env("LINES", "33").args(["-qfec", &cmd, "/dev/null"]), None);
    assert_eq!(out.status.code(), Some(5), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn errors_are_dockers() {
    let Some((daemon, _work)) = setup() else { return };
    // A registry that is not there (no network access from tests).
    let e = fails(daemon.docker(&["run", "--rm", "127.0.0.1:9/nosuch:1"]));
    assert!(e.contains("Unable to find image '127.0.0.1:9/nosuch:1' locally"), "{e}");
    let out = daemon.docker(&["run", "--rm", "busybox", "/no/such/program"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("no such file or directory"), "{}", stderr(&out));
    ok(daemon.docker(&["create", "--name", "taken", "busybox"]));
    let e = fails(daemon.docker(&["create", "--name", "taken", "busybox"]));
    assert!(e.contains("is already in use by container"), "{e}");
    let e = fails(daemon.docker(&["run", "--rm", "-u", "nobody-here", "busybox", "true"]));
    assert!(e.contains("nobody-here"), "{e}");
    let e = fails(daemon.docker(&["rmi", "busybox"]));
    assert!(e.contains("is using its referenced image"), "{e}");
    let e = fails(daemon.docker(&["start", "nosuch"]));
    assert!(e.contains("No such container: nosuch"), "{e}");
    // Nothing half-made: one container (the create above), no leftovers on disk.
    assert_eq!(ok(daemon.docker(&["ps", "-aq"])).lines().count(), 1);
    let dirs = std::fs::read_dir(daemon.data_root.join("containers")).unwrap().count();
    assert_eq!(dirs, 1);
}

#[test]
fn volumes_persist_and_copy_up() {
    let Some((daemon, work)) = setup() else { return };
    ok(daemon.docker(&["volume", "create", "data"]));
    ok(daemon.docker(&["run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f"]));
    assert_eq!(ok(daemon.docker(&["run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f"])), "kept\n");
    let e = fails(daemon.docker(&["run", "--rm", "-v", "data:/data:ro", "busybox", "sh", "-c", "echo x > /data/f"]));
    assert!(e.contains("Read-only file system"), "{e}");
    // A new volume mounted over image content starts with that content.
    assert!(ok(daemon.docker(&["run", "--rm", "-v", "etc:/etc", "busybox", "ls", "/etc"])).contains("passwd"));
    let list = ok(daemon.docker(&["volume", "ls", "-q"]));
    assert_eq!(list.split_whitespace().collect::<Vec<_>>(), vec!["data", "etc"]);
    ok(daemon.docker(&["run", "-d", "--name", "user", "-v", "data:/data", "busybox", "sleep", "100"]));
    let e = fails(daemon.docker(&["volume", "rm", "data"]));
    assert!(e.contains("volume is in use"), "{e}");
    ok(daemon.docker(&["rm", "-f", "user"]));
    ok(daemon.docker(&["volume", "rm", "data"]));

    // Volumes belong to a container from its create on, as with docker: a created
    // container holds them and shows them in inspect before it ever ran.
    let host_dir = work.path().join("shared");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("h"), "host\n").unwrap();
    let bind = format!("{}:/host", host_dir.display());
    ok(daemon.docker(&["create", "--name", "src", "-v", "kept:/data", "-v", &bind, "-v", "/anon", "busybox", "true"]));
    let mounts = inspect(&daemon, "src", "{{range .Mounts}}{{.Type}}:{{.Destination}}:{{.RW}} {{end}}");
    let mut mounts: Vec<&str> = mounts.split_whitespace().collect();
    mounts.sort();
    assert_eq!(mounts, ["bind:/host:true", "volume:/anon:true", "volume:/data:true"]);
    let e = fails(daemon.docker(&["volume", "rm", "kept"]));
    assert!(e.contains("volume is in use"), "{e}");
    ok(daemon.docker(&["run", "--rm", "-v", "kept:/data", "busybox", "sh", "-c", "echo shared > /data/f"]));

    // --volumes-from: the same volumes and binds, read-only when asked.
    let out = ok(daemon.docker(&["run", "--rm", "--volumes-from", "src", "busybox", "sh", "-c", "cat /data/f /host/h; echo more > /anon/g"]));
    assert_eq!(out, "shared\nhost\n");
    let e = fails(daemon.docker(&["run", "--rm", "--volumes-from", "src:ro", "busybox", "sh", "-c", "cat /anon/g; echo x > /data/f"]));
    assert!(e.contains("Read-only file system"), "{e}");
    let e = fails(daemon.docker(&["run", "--rm", "--volumes-from", "src:rx", "busybox", "true"]));
    assert!(e.contains("invalid mode: rx"), "{e}");
    // rm -v takes the anonymous volume along; the named one stays.
    let anonymous = inspect(&daemon, "src", "{{range .Mounts}}{{if eq .Destination \"/anon\"}}{{.Name}}{{end}}{{end}}");
    ok(daemon.docker(&["rm", "-v", "src"]));
    let list = ok(daemon.docker(&["volume", "ls", "-q"]));
    assert!(list.contains("kept") && !list.contains(&anonymous), "{list}");
}

#[test]
fn events_for_containers_and_volumes() {
    let Some((daemon, _work)) = setup() else { return };
    ok(daemon.docker(&["run", "--name", "ev", "-v", "evdata:/data", "busybox", "true"]));
    ok(daemon.docker(&["container", "prune", "-f"]));
    // (No `prune -a` in docker 20.10's CLI: the named volume goes by `rm`.)
    ok(daemon.docker(&["volume", "rm", "evdata"]));
    ok(daemon.docker(&["volume", "prune", "-f"]));
    let mut seen = String::new();
    // Events go out as the actions complete; the unmount follows the exit closely.
    wait_for("the events", || {
        seen = ok(daemon.docker(&["events", "--since", "0", "--until", "0s", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.container}}"]));
        seen.contains("volume prune")
    });
    let id = seen.lines().find_map(|l| l.strip_prefix("volume mount ")).unwrap_or_default().to_string();
    assert_eq!(id.len(), 64, "{seen}");
    let actions: Vec<String> =
        seen.lines().filter(|l| !l.starts_with("image ")).map(|l| l.replace(&id, "<id>").replace("<no value>", "").trim().to_string()).collect();
    let expected = [
        "volume create",
        "container create",
        "container attach",
        "volume mount <id>",
        "container start",
        "container die",
        "volume unmount <id>",
        "container destroy",
        "container prune",
        "volume destroy",
        "volume prune",
    ];
    assert_eq!(actions, expected, "{seen}");
}

#[test]
fn a_killed_shim_takes_its_container_along() {
    let Some((daemon, _work)) = setup() else { return };
    let id = ok(daemon.docker(&["run", "-d", "busybox", "sh", "-c", "sleep 1000 & sleep 1000"])).trim().to_string();
    let pid: i32 = inspect(&daemon, &id, "{{.State.Pid}}").parse().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let shim: i32 = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(std::fs::read_to_string(format!("/proc/{shim}/comm")).unwrap().starts_with("berth-shim"));
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    // The container's cgroup directories, in whichever hierarchies hold them (v1, v2
    // or hybrid).
    let hierarchies: Vec<std::path::PathBuf> = std::fs::read_dir("/sys/fs/cgroup").unwrap().map(|e| e.unwrap().path()).chain([std::path::PathBuf::from("/sys/fs/cgroup")]).collect();
    let members: Vec<std::path::PathBuf> = cgroup
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .filter(|path| path.len() > 1)
        .flat_map(|path| hierarchies.iter().map(move |h| h.join(path.trim_start_matches('/'))))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    assert!(!members.is_empty(), "{cgroup}");
    // Someone kills the shim: the container must not live on unmanaged.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_for("the exit", || inspect(&daemon, &id, "{{.State.Status}}") == "exited");
    assert_eq!(inspect(&daemon, &id, "{{.State.ExitCode}}"), "255");
    wait_for("the container's processes to end", || !std::path::Path::new(&format!("/proc/{pid}")).exists());
    for dir in members {
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
    // And it starts again as usual.
    ok(daemon.docker(&["start", &id]));
    assert_eq!(inspect(&daemon, &id, "{{.State.Status}}"), "running");
    ok(daemon.docker(&["rm", "-f", &id]));
}

#[test]
fn restart_policy_and_crash_of_berthd() {
    let Some((mut daemon, _work)) = setup() else { return };
    ok(daemon.docker(&["run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1"]));
    wait_for("two restarts", || inspect(&daemon, "flaky", "{{.RestartCount}} {{.State.Status}}") == "2 exited");

    ok(daemon.docker(&["run", "-d", "--name", "long", "busybox", "sh", "-c", "echo a; sleep 1000"]));
    ok(daemon.docker(&["run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 2; echo done; exit 6"]));
    ok(daemon.docker(&["run", "-d", "--name", "frozen", "busybox", "sleep", "1000"]));
    ok(daemon.docker(&["pause", "frozen"]));
    // Twenty running in all, some with restart policies.
    for i in 0..16 {
        let name = format!("bulk{i}");
        let policy = if i % 4 == 0 { "always" } else if i % 4 == 1 { "unless-stopped" } else { "no" };
        ok(daemon.docker(&["run", "-d", "--name", &name, "--restart", policy, "busybox", "sh", "-c", &format!("echo bulk{i}; sleep 1000")]));
    }
    let long_pid = inspect(&daemon, "long", "{{.State.Pid}}");
    // One being created while berthd dies: afterwards it exists whole or not at all.
    let mut creating = Command::new(docker_cli())
        .env("DOCKER_CONFIG", daemon.dir.path().join("docker-config"))
        .args(["-H", &daemon.host(), "create", "--name", "midway", "busybox", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    daemon.kill9();
    let _ = creating.wait();
    // `short` exits while berthd is down.
    std::thread::sleep(Duration::from_secs(3));
    daemon.spawn();
    assert_eq!(inspect(&daemon, "long", "{{.State.Status}} {{.State.Pid}}"), format!("running {long_pid}"));
    assert_eq!(inspect(&daemon, "short", "{{.State.Status}} {{.State.ExitCode}}"), "exited 6");
    assert_eq!(stdout(&daemon.docker(&["logs", "short"])), "done\n");
    assert_eq!(inspect(&daemon, "frozen", "{{.State.Status}}"), "paused");
    for i in 0..16 {
        let name = format!("bulk{i}");
        assert_eq!(inspect(&daemon, &name, "{{.State.Status}}"), "running", "{name}");
        assert_eq!(stdout(&daemon.docker(&["logs", &name])), format!("bulk{i}\n"));
    }
    let midway = daemon.docker(&["inspect", "-f", "{{.State.Status}}", "midway"]);
    if midway.status.success() {
        assert_eq!(stdout(&midway).trim(), "created");
        ok(daemon.docker(&["start", "-a", "midway"]));
    }
    assert_eq!(ok(daemon.docker(&["ps", "-q"])).lines().count(), 18, "long, frozen and the sixteen");
    // The reconnected shims still serve everything.
    assert_eq!(ok(daemon.docker(&["exec", "long", "echo", "hi"])), "hi\n");
    ok(daemon.docker(&["stop", "-t", "1", "long"]));
    assert_eq!(inspect(&daemon, "long", "{{.State.Status}}"), "exited");
}
