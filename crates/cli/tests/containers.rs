//! Container and volume commands: `berth` and the real `docker` CLI against the same
//! daemon must print the same and exit with the same status. Where a command changes
//! state, each client works on a container of its own (names ending in `-b` and `-d`)
//! and the outputs are compared after swapping the names; IDs, times and sizes are
//! masked where they differ by nature.
//!
//! Point `BERTH_TEST_DAEMON` at a daemon socket to test against it; otherwise each test
//! starts a private dockerd (and is skipped when dockerd is not installed).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{unique, Run, TestEnv};
use regex::Regex;

/// Replaces full and short container/image IDs.
fn mask_ids(text: &str) -> String {
    let full = Regex::new(r"\b(sha256:)?[0-9a-f]{64}\b").expect("regex");
    let short = Regex::new(r"\b[0-9a-f]{12}\b").expect("regex");
    let text = full.replace_all(text, "<id>");
    short.replace_all(&text, "<short>").into_owned()
}

/// Replaces relative times ("2 seconds ago", "Up Less than a second").
fn mask_times(text: &str) -> String {
    let re = Regex::new(
        r"(Less than a second|About a minute|About an hour|\d+ (seconds?|minutes?|hours?))",
    )
    .expect("regex");
    re.replace_all(text, "<time>").into_owned()
}

/// Replaces timestamps (RFC 3339 and Go's `time.String`).
fn mask_timestamps(text: &str) -> String {
    let rfc = Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z").expect("regex");
    let go = Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}( \+0000 UTC)?").expect("regex");
    let text = rfc.replace_all(text, "<ts>");
    go.replace_all(&text, "<ts>").into_owned()
}

/// Template error details differ between Go's text/template and gtmpl; what must agree
/// is that the error is reported, how, and the exit status.
fn template_errors(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("template parsing error:") {
            Some(_) => "template parsing error: <detail>".to_string(),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines in sorted order (the daemon lists some things in map order).
fn sorted_lines(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// docker logs tar writer failures through logrus when the daemon refuses a copy early;
/// berth reports only the refusal.
fn without_logrus(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("time=\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn mask_all(text: &str) -> String {
    mask_times(&mask_timestamps(&mask_ids(text)))
}

/// Imports the test rootfs as an image whose default command is `sh`.
fn image(env: &TestEnv, prefix: &str) -> String {
    let name = format!("{}:v1", unique(prefix));
    env.import_image(&name, &["-c", "CMD [\"sh\"]"]);
    name
}

/// A pair of names, one per client.
fn pair(prefix: &str) -> (String, String) {
    let base = unique(prefix);
    (format!("{base}-b"), format!("{base}-d"))
}

/// Runs `args` with `{}` replaced by the berth name through berth, and by the docker
/// name through docker; asserts the same result once the names are swapped back.
fn compare_pair(
    env: &TestEnv,
    names: &(String, String),
    args: &[&str],
    stdin: Option<&[u8]>,
    normalize: impl Fn(&str) -> String,
) -> Run {
    let with = |name: &str| -> Vec<String> { args.iter().map(|a| a.replace("{}", name)).collect() };
    let (b_args, d_args) = (with(&names.0), with(&names.1));
    let b_refs: Vec<&str> = b_args.iter().map(String::as_str).collect();
    let d_refs: Vec<&str> = d_args.iter().map(String::as_str).collect();
    let (b, d) = match stdin {
        Some(input) => (
            env.berth_stdin(&b_refs, input),
            env.docker_stdin(&d_refs, input),
        ),
        None => (env.berth(&b_refs), env.docker(&d_refs)),
    };
    let norm = |r: &Run, own: &str| {
        let swap = |s: &str| normalize(&env.normalize(&s.replace(own, "<name>")));
        (swap(&r.stdout), swap(&r.stderr), r.code)
    };
    let (nb, nd) = (norm(&b, &names.0), norm(&d, &names.1));
    assert_eq!(
        nb, nd,
        "berth and docker differ for {args:?}\n--- berth:\n{b:#?}\n--- docker:\n{d:#?}"
    );
    b
}

/// Waits until `docker inspect -f {{.State.Status}}` says `status`.
fn wait_for_state(env: &TestEnv, name: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = env.docker(&["inspect", "-f", "{{.State.Status}}", name]);
        if out.stdout.trim() == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not become {status}: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A long-running command that stops at once on SIGTERM.
const SERVE: &str = "trap 'exit 0' TERM; while true; do sleep 0.1; done";

#[test]
fn run_prints_output_and_exit_statuses() {
    let Some(env) = TestEnv::new() else { return };
    let img = image(&env, "run");
    env.compare(&["run", "--rm", &img, "echo", "hello"]);
    let r = env.compare(&[
        "run",
        "--rm",
        &img,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str(), r.code),
        ("out\n", "err\n", 3)
    );
    let r = env.compare(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-e",
        "B",
        "-w",
        "/tmp",
        "-u",
        "1000",
        &img,
        "sh",
        "-c",
        "echo \"$A\"; pwd; id -u",
    ]);
    assert_eq!(r.stdout, "1\n/tmp\n1000\n");
    env.compare(&[
        "run",
        "--rm",
        "-h",
        "myhost",
        "--entrypoint",
        "hostname",
        &img,
    ]);
    env.compare(&["run", "--rm", "--env-file", "/dev/null", &img, "true"]);
    env.compare(&["container", "run", "--rm", &img, "echo", "management"]);

    // Piped stdin with -i reaches the container and its end closes it.
    let b = env.berth_stdin(
        &["run", "--rm", "-i", &img, "sh", "-c", "cat; echo done"],
        b"piped\n",
    );
    let d = env.docker_stdin(
        &["run", "--rm", "-i", &img, "sh", "-c", "cat; echo done"],
        b"piped\n",
    );
    assert_eq!(b, d);
    assert_eq!(b.stdout, "piped\ndone\n");

    // --name, and -d printing the full ID.
    let names = pair("named");
    env.track_container(&names.0);
    env.track_container(&names.1);
    let r = compare_pair(
        &env,
        &names,
        &["run", "-d", "--name", "{}", &img, "sh", "-c", "echo bg"],
        None,
        mask_ids,
    );
    assert!(
        Regex::new(r"^[0-9a-f]{64}\n$").unwrap().is_match(&r.stdout),
        "{r:?}"
    );
    compare_pair(&env, &names, &["wait", "{}"], None, |s| s.to_string());
    compare_pair(&env, &names, &["logs", "{}"], None, |s| s.to_string());

    // A name in use, for both clients the same container.
    env.compare(&["create", "--name", &names.0, &img]);
    // --rm removes the container also when it exits non-zero.
    let gone = unique("gone");
    let r = env.berth(&["run", "--rm", "--name", &gone, &img, "sh", "-c", "exit 4"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert_eq!(env.docker(&["inspect", &gone]).code, 1);

    // Daemon errors: 127 for a missing command, 125 for a missing image.
    env.compare(&["run", "--rm", &img, "nonexistent-command"]);
    env.compare(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "berthtest-no-such-image:v1",
        "true",
    ]);
    env.compare(&["run", "--rm", "Bad/Name", "true"]);
}

#[test]
fn run_and_create_reject_bad_options_like_docker() {
    let Some(env) = TestEnv::new() else { return };
    let img = "berthtest-never-created:v1";
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "--memory", "abc", img],
        vec!["run", "--memory-swap", "1x", img],
        vec!["run", "--cpus", "abc", img],
        vec!["run", "--cpus", "0.0000000001", img],
        vec!["run", "-e", "=x", img],
        vec!["run", "--ulimit", "foo=1", img],
        vec!["run", "--ulimit", "nofile=2:1", img],
        vec!["run", "--health-interval", "5", img],
        vec!["run", "--sysctl", "kernel.foo=1", img],
        vec!["run", "--add-host", "bad", img],
        vec!["run", "--dns", "x", img],
        vec!["run", "--mount", "type=bind", img],
        vec!["run", "--mount", "type=bind,dst=/x,volume-nocopy", img],
        vec!["run", "-a", "stdio", img],
        vec!["run", "--blkio-weight", "x", img],
        vec!["run", "--stop-timeout", "x", img],
        vec!["run", "-p", "99999", img],
        vec!["run", "-p", "1-2:3-5", img],
        vec!["run", "--expose", "a:b", img],
        vec!["run", "--rm", "--restart", "always", img],
        vec!["run", "--restart", ":1", img],
        vec!["run", "--restart", "on-failure:x", img],
        vec!["run", "--no-healthcheck", "--health-cmd", "x", img],
        vec!["run", "--security-opt", "foo", img],
        vec!["run", "--security-opt", "seccomp=/nonexistent.json", img],
        vec!["run", "--device", "/dev/null:rel", img],
        vec!["run", "--pid", "bad", img],
        vec!["run", "--uts", "bad", img],
        vec!["run", "--memory-swappiness", "101", img],
        vec!["run", "--pull", "sometimes", img],
        vec!["run", "-d", "-a", "stdout", img],
        vec!["run", "--log-driver", "none", "--log-opt", "a=b", img],
        vec!["run", "--env-file", "/nonexistent.env", img],
        vec!["run", "-v", "::/x", img],
        vec!["create", "--memory", "abc", img],
        vec!["create", "--pull", "sometimes", img],
        vec!["run"],
        vec!["exec", "x"],
        vec!["commit"],
        vec!["port", "a", "b", "c"],
        vec!["run", "--no-such-flag", img],
    ];
    for args in cases {
        env.compare(&args);
    }
}

#[test]
fn create_body_matches_docker() {
    let Some(env) = TestEnv::new() else { return };
    let img = image(&env, "body");
    let names = pair("body");
    env.track_container(&names.0);
    env.track_container(&names.1);
    let volume = unique("bodyvol");
    env.track_volume(&volume);
    let host_dir = tempfile::tempdir().expect("bind source");
    let bind = format!("{}:/hostdir:ro", host_dir.path().display());
    // One bind only: docker orders several in Go's random map order.
    let named = format!("type=volume,src={volume},dst=/data");
    let args = [
        "create",
        "--name",
        "{}",
        "-e",
        "A=1",
        "-l",
        "a=b",
        "-w",
        "/tmp",
        "-u",
        "1000",
        "--memory",
        "64m",
        "--memory-reservation",
        "32m",
        "--cpus",
        "1.5",
        "--cpu-shares",
        "512",
        "--restart",
        "on-failure:3",
        "--ulimit",
        "nofile=100:200",
        "-p",
        "127.0.0.1:18080:80",
        "--expose",
        "90-91/udp",
        "--add-host",
        "h:1.2.3.4",
        "--dns",
        "8.8.8.8",
        "--dns-search",
        "example.com",
        "--dns-option",
        "ndots:2",
        "--tmpfs",
        "/run:size=1m",
        "-v",
        &bind,
        "-v",
        &named,
        "-v",
        "/anon",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1m",
        "--health-cmd",
        "true",
        "--health-interval",
        "5s",
        "--health-retries",
        "2",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "5",
        "--init",
        "--pids-limit",
        "10",
        "--cap-add",
        "net_admin",
        "--cap-drop",
        "chown",
        "--read-only",
        "--shm-size",
        "1m",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--group-add",
        "2000",
        "--oom-score-adj",
        "100",
        "-h",
        "hh",
        "--security-opt",
        "no-new-privileges",
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-size=1m",
        "--entrypoint",
        "/bin/sh",
        "-it",
        &img,
        "-c",
        "true",
    ];
    compare_pair(&env, &names, &args, None, mask_ids);
    for template in [
        "{{json .Config}}",
        "{{json .HostConfig}}",
        "{{range .Mounts}}{{json .}}\n{{end}}",
        "{{.Path}} {{.Args}} {{.Config.Healthcheck.Interval}} {{.HostConfig.RestartPolicy}}",
    ] {
        // Mounts come in the daemon's map order.
        compare_pair(
            &env,
            &names,
            &["inspect", "-f", template, "{}"],
            None,
            |s| sorted_lines(&mask_ids(s)),
        );
    }
    // The same flags are accepted by `run -d` and the container really starts.
    let started = pair("started");
    env.track_container(&started.0);
    env.track_container(&started.1);
    compare_pair(
        &env,
        &started,
        &[
            "run",
            "-d",
            "--name",
            "{}",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "-e",
            "X=2",
            &img,
            "sh",
            "-c",
            "echo $X",
        ],
        None,
        mask_ids,
    );
    compare_pair(&env, &started, &["wait", "{}"], None, |s| s.to_string());
    compare_pair(&env, &started, &["logs", "{}"], None, |s| s.to_string());
}

#[test]
fn lifecycle_and_listing() {
    let Some(env) = TestEnv::new() else { return };
    let img = image(&env, "life");
    let names = pair("life");
    env.track_container(&names.0);
    env.track_container(&names.1);
    let label = format!("suite={}", names.0);
    let filter = format!("label={label}");
    for name in [&names.0, &names.1] {
        env.docker(&[
            "create", "--name", name, "-l", &label, &img, "sh", "-c", SERVE,
        ])
        .ok();
    }
    let table = "table {{.Names}}\t{{.Image}}\t{{.Command}}\t{{.Status}}\t{{.Labels}}\t{{.Ports}}\t{{.Mounts}}\t{{.State}}";
    env.compare_with(
        &["ps", "-a", "--filter", &filter, "--format", table],
        mask_all,
    );
    env.compare_with(&["ps", "--filter", &filter], mask_all);
    compare_pair(&env, &names, &["start", "{}"], None, |s| s.to_string());
    wait_for_state(&env, &names.0, "running");
    wait_for_state(&env, &names.1, "running");
    for args in [
        vec!["ps", "--filter", filter.as_str()],
        vec!["ps", "-a", "--filter", &filter, "--no-trunc"],
        vec!["ps", "-q", "--filter", &filter],
        vec!["ps", "-aq", "--no-trunc", "--filter", &filter],
        vec!["ps", "-s", "--filter", &filter],
        vec!["ps", "--filter", &filter, "--format", "json"],
        vec!["ps", "--filter", &filter, "--format", "{{.ID}} {{.Names}} {{.Size}} {{.CreatedAt}} {{.RunningFor}} {{.Networks}} {{.LocalVolumes}}"],
        vec!["ps", "--filter", &filter, "--format", "raw"],
        vec!["ps", "--filter", &filter, "-q", "--format", "{{.Names}}"],
        vec!["ps", "--filter", &filter, "--filter", "status=running", "--format", "{{.Names}} {{.State}}"],
        vec!["container", "ls", "--filter", &filter, "--format", "{{.Names}}"],
        vec!["container", "list", "--filter", &filter, "--format", "{{.Names}}"],
        vec!["container", "ps", "--filter", &filter, "--format", "{{.Names}}"],
    ] {
        env.compare_clock_with(&args, mask_all);
    }
    if !env.daemon.is_shared() {
        env.compare_clock_with(&["ps", "-n", "1", "--format", "{{.Names}}"], mask_all);
        env.compare_clock_with(&["ps", "-l", "--format", "{{.Names}}"], mask_all);
        env.compare_clock_with(&["ps", "-a"], mask_all);
    }
    compare_pair(&env, &names, &["pause", "{}"], None, |s| s.to_string());
    env.compare_clock_with(
        &[
            "ps",
            "--filter",
            &filter,
            "--format",
            "{{.Names}} {{.Status}}",
        ],
        mask_all,
    );
    compare_pair(&env, &names, &["unpause", "{}"], None, |s| s.to_string());
    // The container's loop starts short-lived `sleep`s; the shell is what stays.
    compare_pair(&env, &names, &["top", "{}", "-o", "args"], None, |s| {
        s.lines()
            .filter(|l| !l.contains("sleep"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    compare_pair(&env, &names, &["port", "{}"], None, |s| s.to_string());
    compare_pair(&env, &names, &["port", "{}", "80/tcp"], None, |s| {
        s.to_string()
    });
    compare_pair(
        &env,
        &names,
        &[
            "update",
            "--memory",
            "64m",
            "--memory-swap",
            "128m",
            "--restart",
            "on-failure:2",
            "{}",
        ],
        None,
        |s| s.to_string(),
    );
    compare_pair(
        &env,
        &names,
        &[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}",
            "{}",
        ],
        None,
        |s| s.to_string(),
    );
    compare_pair(&env, &names, &["restart", "-t", "1", "{}"], None, |s| {
        s.to_string()
    });
    compare_pair(&env, &names, &["kill", "-s", "USR1", "{}"], None, |s| {
        s.to_string()
    });
    compare_pair(&env, &names, &["stop", "-t", "1", "{}"], None, |s| {
        s.to_string()
    });
    compare_pair(
        &env,
        &names,
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "{}",
        ],
        None,
        |s| s.to_string(),
    );
    compare_pair(&env, &names, &["kill", "{}"], None, mask_ids);
    compare_pair(
        &env,
        &names,
        &["start", "{}", "berthtest-no-such-container"],
        None,
        |s| s.to_string(),
    );
    compare_pair(&env, &names, &["kill", "{}"], None, mask_ids);
    wait_for_state(&env, &names.0, "exited");
    wait_for_state(&env, &names.1, "exited");
    compare_pair(&env, &names, &["wait", "{}"], None, |s| s.to_string());
    let renamed = (format!("{}-r", names.0), format!("{}-r", names.1));
    env.track_container(&renamed.0);
    env.track_container(&renamed.1);
    let b = env.berth(&["rename", &names.0, &renamed.0]);
    let d = env.docker(&["rename", &names.1, &renamed.1]);
    assert_eq!(b, d);
    compare_pair(&env, &renamed, &["rename", "{}", "{}"], None, mask_ids);
    compare_pair(&env, &renamed, &["rm", "{}"], None, |s| s.to_string());
    compare_pair(&env, &renamed, &["rm", "-f", "{}"], None, |s| s.to_string());

    // Unknown containers, and several at once.
    for args in [
        vec!["start", "berthtest-nosuch"],
        vec!["stop", "berthtest-nosuch", "berthtest-other"],
        vec!["restart", "berthtest-nosuch"],
        vec!["kill", "berthtest-nosuch"],
        vec!["rm", "berthtest-nosuch"],
        vec!["rm", "-f", "berthtest-nosuch"],
        vec!["pause", "berthtest-nosuch"],
        vec!["unpause", "berthtest-nosuch"],
        vec!["wait", "berthtest-nosuch"],
        vec!["logs", "berthtest-nosuch"],
        vec!["top", "berthtest-nosuch"],
        vec!["port", "berthtest-nosuch"],
        vec!["diff", "berthtest-nosuch"],
        vec!["export", "berthtest-nosuch"],
        vec!["rename", "berthtest-nosuch", "x"],
        vec!["update", "--memory", "64m", "berthtest-nosuch"],
        vec!["update", "berthtest-nosuch"],
        vec!["attach", "berthtest-nosuch"],
        vec!["exec", "berthtest-nosuch", "true"],
        vec!["commit", "berthtest-nosuch"],
        vec!["container", "inspect", "berthtest-nosuch"],
        vec!["inspect", "berthtest-nosuch"],
        vec!["stats", "--no-stream", "berthtest-nosuch"],
        vec!["cp", "berthtest-nosuch:/etc", "/tmp/berthtest-nowhere"],
    ] {
        env.compare(&args);
    }
}

#[test]
fn logs_inspect_and_stats() {
    let Some(env) = TestEnv::new() else { return };
    let img = image(&env, "logs");
    let name = unique("logs");
    env.track_container(&name);
    env.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        &img,
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; done; echo err >&2",
    ])
    .ok();
    env.compare(&["wait", &name]);
    for args in [
        vec!["logs", name.as_str()],
        vec!["logs", "--tail", "2", &name],
        vec!["logs", "-n", "1", &name],
        vec!["logs", "-t", &name],
        vec!["logs", "--details", &name],
        vec!["logs", "--since", "1h", &name],
        vec!["logs", "--since", "2099-01-01", &name],
        vec!["logs", "--until", "2000-01-01T00:00:00Z", &name],
        vec!["logs", "-f", &name],
        vec!["container", "logs", "--tail", "1", &name],
    ] {
        env.compare(&args);
    }
    for args in [
        vec!["inspect", name.as_str()],
        vec!["inspect", "-s", &name],
        vec!["container", "inspect", &name],
        vec!["inspect", "--format", "json", &name],
        vec!["inspect", &name, &img],
        vec!["inspect", "--type", "container", &img],
        vec!["inspect", "--type", "image", &name],
        vec!["inspect", "--type", "bogus", &name],
        vec!["inspect", "-f", "{{.Id}} {{.Name}} {{.State.Status}} {{.State.ExitCode}}", &name],
        vec!["inspect", "-f", "{{.ID}} {{.Config.Cmd}} {{.Config.Env}} {{.HostConfig.Binds}} {{.HostConfig.NetworkMode}}", &name],
        vec!["inspect", "-f", "{{json .State}} {{json .Config.Labels}} {{.RestartCount}}", &name],
        vec!["inspect", "-f", "{{range .Mounts}}{{.Destination}}{{end}}|{{.HostConfig.LogConfig.Type}}|{{.Config.Tty}}", &name],
        vec!["container", "inspect", "-f", "{{.State.Running}} {{.HostConfig.PidsLimit}} {{.HostConfig.OomKillDisable}}", &name],
        vec!["inspect", "-f", "{{.NoSuchField}}", &name],
        vec!["inspect", "-f", "{{.Name", &name],
    ] {
        env.compare_with(&args, template_errors);
    }

    // Stats of a running container: the figures move, the layout does not.
    let running = unique("stats");
    env.track_container(&running);
    env.docker(&["run", "-d", "--name", &running, &img, "sleep", "1000"])
        .ok();
    env.compare(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.Container}} {{.ID}}",
        &running,
    ]);
    env.compare(&[
        "stats",
        "--no-stream",
        "--no-trunc",
        "--format",
        "{{.ID}}",
        &running,
    ]);
    env.compare(&[
        "container",
        "stats",
        "--no-stream",
        "--format",
        "table {{.Name}}\t{{.PIDs}}",
        &running,
    ]);
    let figures = Regex::new(r"[0-9.]+(%|[kKMGT]?i?B)").expect("regex");
    let masked = |s: &str| figures.replace_all(&mask_ids(s), "<n>").into_owned();
    env.compare_with(&["stats", "--no-stream", &running], masked);
    env.compare_with(
        &["stats", "--no-stream", "--format", "json", &running],
        masked,
    );
    if !env.daemon.is_shared() {
        env.compare_with(&["stats", "--no-stream", "--format", "{{.Name}}"], masked);
    }
    // Streaming redraws the table in place until interrupted.
    let mut child = std::process::Command::new(common::berth_bin())
        .args([
            "-H",
            &env.daemon.host(),
            "stats",
            "--format",
            "{{.Name}}",
            &running,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("berth stats");
    std::thread::sleep(Duration::from_millis(1800));
    let _ = child.kill();
    let out = child.wait_with_output().expect("stats output");
    let text = String::from_utf8_lossy(&out.stdout);
    let frame = format!("\x1b[H{running}\n\x1b[H{running} \x1b[K\n \x1b[K\n\x1b[J");
    assert!(text.starts_with(&frame), "{text:?}");
    assert!(text.matches("\x1b[J").count() >= 2, "{text:?}");
}

#[test]
fn exec_runs_commands_in_a_container() {
    let Some(env) = TestEnv::new() else { return };
    let img = image(&env, "exec");
    let name = unique("exec");
    env.track_container(&name);
    env.docker(&["run", "-d", "--name", &name, &img, "sh", "-c", SERVE])
        .ok();
    wait_for_state(&env, &name, "running");
    let r = env.compare(&[
        "exec",
        "-e",
        "X=1",
        "-w",
        "/tmp",
        "-u",
        "1000",
        &name,
        "sh",
        "-c",
        "echo $X; pwd; id -u; echo err >&2",
    ]);
    assert_eq!(r.stdout, "1\n/tmp\n1000\n");
    let r = env.compare(&["exec", &name, "sh", "-c", "exit 7"]);
    assert_eq!(r.code, 7);
    env.compare(&["exec", "-t", &name, "echo", "on a tty"]);
    env.compare(&["exec", &name, "nonexistent-command"]);
    env.compare(&[
        "container",
        "exec",
        "--env-file",
        "/dev/null",
        &name,
        "true",
    ]);
    let b = env.berth_stdin(
        &["exec", "-i", &name, "sh", "-c", "cat; echo end"],
        b"from stdin\n",
    );
    let d = env.docker_stdin(
        &["exec", "-i", &name, "sh", "-c", "cat; echo end"],
        b"from stdin\n",
    );
    assert_eq!(b, d);
    assert_eq!(b.stdout, "from stdin\nend\n");
    let b = env.berth(&["exec", "-d", &name, "sh", "-c", "echo x > /tmp/detached"]);
    assert_eq!((b.code, b.stdout.as_str()), (0, ""), "{b:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while env
        .docker(&["exec", &name, "test", "-f", "/tmp/detached"])
        .code
        != 0
    {
        assert!(Instant::now() < deadline, "exec -d did not run");
        std::thread::sleep(Duration::from_millis(100));
    }
    env.compare(&["exec", "-i", "-t", &name, "true"]);
    env.docker(&["stop", "-t", "1", &name]).ok();
    env.compare(&["exec", &name, "true"]);
}

#[test]
fn attach_and_start_attach() {
    let Some(env) = TestEnv::new() else { return };
    let img = image(&env, "attach");
    let created = pair("starta");
    env.track_container(&created.0);
    env.track_container(&created.1);
    for name in [&created.0, &created.1] {
        env.docker(&[
            "create",
            "--name",
            name,
            &img,
            "sh",
            "-c",
            "echo started; echo err >&2; exit 5",
        ])
        .ok();
    }
    let r = compare_pair(&env, &created, &["start", "-a", "{}"], None, |s| {
        s.to_string()
    });
    assert_eq!((r.stdout.as_str(), r.code), ("started\n", 5));

    let interactive = pair("startai");
    env.track_container(&interactive.0);
    env.track_container(&interactive.1);
    for name in [&interactive.0, &interactive.1] {
        env.docker(&[
            "create",
            "-i",
            "--name",
            name,
            &img,
            "sh",
            "-c",
            "cat; exit 2",
        ])
        .ok();
    }
    let r = compare_pair(
        &env,
        &interactive,
        &["start", "-ai", "{}"],
        Some(b"typed\n"),
        |s| s.to_string(),
    );
    assert_eq!((r.stdout.as_str(), r.code), ("typed\n", 2));

    let late = pair("attach");
    env.track_container(&late.0);
    env.track_container(&late.1);
    // Each container starts right before its client attaches: the output comes later.
    let start_late = |name: &str| {
        env.docker(&[
            "run",
            "-d",
            "--name",
            name,
            &img,
            "sh",
            "-c",
            "sleep 2; echo late; echo lateerr >&2; exit 6",
        ])
        .ok();
    };
    start_late(&late.0);
    let b = env.berth(&["attach", &late.0]);
    start_late(&late.1);
    let d = env.docker(&["attach", &late.1]);
    assert_eq!(b, d);
    assert_eq!(
        (b.stdout.as_str(), b.stderr.as_str(), b.code),
        ("late\n", "lateerr\n", 6)
    );
    compare_pair(&env, &late, &["attach", "{}"], None, |s| s.to_string());
    env.compare(&["start", "-a", &created.0, &created.1]);
}

#[test]
fn run_interactive_on_a_terminal() {
    let Some(env) = TestEnv::new() else { return };
    let img = image(&env, "tty");
    let Some(r) = env.berth_on_terminal_paced(
        &["run", "-it", "--rm", &img, "sh"],
        &[("echo hi-from-tty; exit 3\r", 1500)],
    ) else {
        return;
    };
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stdout.contains("hi-from-tty\r\n"), "{r:?}");

    // ctrl-p ctrl-q detaches and leaves the container running; attach gets it back.
    let name = unique("detach");
    env.track_container(&name);
    let r = env
        .berth_on_terminal_paced(
            &["run", "-it", "--name", &name, &img, "sh"],
            &[("\x10", 4000), ("\x11", 300)],
        )
        .expect("script");
    assert_eq!(r.code, 0, "{r:?}");
    wait_for_state(&env, &name, "running");
    let r = env
        .berth_on_terminal_paced(
            &["exec", "-it", &name, "sh"],
            &[("echo in-exec; exit 2\r", 1500)],
        )
        .expect("script");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("in-exec\r\n"), "{r:?}");
    let r = env
        .berth_on_terminal_paced(
            &["attach", "--detach-keys", "ctrl-a,b", &name],
            &[("echo attached; exit 4\r", 1500)],
        )
        .expect("script");
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stdout.contains("attached\r\n"), "{r:?}");
    wait_for_state(&env, &name, "exited");
}

#[test]
fn cp_both_ways() {
    let Some(env) = TestEnv::new() else { return };
    let img = image(&env, "cp");
    let name = unique("cp");
    env.track_container(&name);
    env.docker(&["run", "-d", "--name", &name, &img, "sh", "-c", SERVE])
        .ok();
    wait_for_state(&env, &name, "running");
    env.docker(&["exec", &name, "sh", "-c", "mkdir -p /data/sub && echo a > /data/sub/a && ln -s sub/a /data/link && ln -s /data /datalink && mkdir /tb /td"]).ok();

    // From the container: files, directories, `/.`, renames, symlinks with and without -L.
    let out_b = tempfile::tempdir().expect("dir");
    let out_d = tempfile::tempdir().expect("dir");
    let cases: Vec<(String, String)> = vec![
        (format!("{name}:/etc/passwd"), "/".into()),
        (format!("{name}:/data"), "/data2".into()),
        (format!("{name}:/data/."), "/data3".into()),
        (format!("{name}:/data/sub/a"), "/renamed".into()),
        (format!("{name}:/datalink"), "/nolink".into()),
        (format!("{name}:/datalink/"), "/throughlink".into()),
        (format!("{name}:/data/link"), "/plainlink".into()),
        (format!("{name}:/nope"), "/x".into()),
        (format!("{name}:/etc/passwd"), "/missing/dir/".into()),
        (format!("{name}:/etc/passwd"), "/newdir/".into()),
    ];
    for (src, dst) in &cases {
        let b = env.berth(&["cp", src, &format!("{}{dst}", out_b.path().display())]);
        let d = env.docker(&["cp", src, &format!("{}{dst}", out_d.path().display())]);
        let norm = |r: &Run, dir: &Path| {
            (
                r.stdout.replace(&dir.display().to_string(), "<dir>"),
                r.stderr.replace(&dir.display().to_string(), "<dir>"),
                r.code,
            )
        };
        assert_eq!(
            norm(&b, out_b.path()),
            norm(&d, out_d.path()),
            "cp {src} {dst}: {b:?} {d:?}"
        );
    }
    let b = env.berth(&[
        "cp",
        "-L",
        &format!("{name}:/data/link"),
        &format!("{}/followed", out_b.path().display()),
    ]);
    let d = env.docker(&[
        "cp",
        "-L",
        &format!("{name}:/data/link"),
        &format!("{}/followed", out_d.path().display()),
    ]);
    assert_eq!((b.code, &b.stderr), (d.code, &d.stderr));
    assert_eq!(tree(out_b.path()), tree(out_d.path()));
    assert_eq!(
        std::fs::read_to_string(out_b.path().join("followed")).expect("followed link"),
        "a\n"
    );

    // A tar stream on stdout.
    let b = env.berth(&["cp", &format!("{name}:/data"), "-"]);
    let d = env.docker(&["cp", &format!("{name}:/data"), "-"]);
    assert_eq!(b.code, 0, "{b:?}");
    assert_eq!(b.raw_stdout, d.raw_stdout);

    // Into the container: files, directories, renames, `-` tar on stdin, errors.
    let src = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(src.path().join("dir/sub")).expect("mkdir");
    std::fs::write(src.path().join("dir/sub/b"), "b\n").expect("write");
    std::fs::write(src.path().join("file"), "f\n").expect("write");
    let s = src.path().display().to_string();
    let cases: Vec<(String, String)> = vec![
        (format!("{s}/file"), "/".into()),
        (format!("{s}/file"), "/renamed".into()),
        (format!("{s}/dir"), "/".into()),
        (format!("{s}/dir"), "/newdir".into()),
        (format!("{s}/dir/."), "/dotdir".into()),
        (format!("{s}/dir"), "/renamed".into()),
        (format!("{s}/nope"), "/".into()),
        (format!("{s}/file"), "/missing/".into()),
    ];
    for (from, dst) in &cases {
        let b = env.berth(&["cp", from, &format!("{name}:/tb{dst}")]);
        let d = env.docker(&["cp", from, &format!("{name}:/td{dst}")]);
        assert_eq!(
            (
                b.stdout.replace("/tb", "/t"),
                without_logrus(&b.stderr.replace("/tb", "/t")),
                b.code
            ),
            (
                d.stdout.replace("/td", "/t"),
                without_logrus(&d.stderr.replace("/td", "/t")),
                d.code
            ),
            "cp {from} {dst}"
        );
    }
    let archive = std::process::Command::new("tar")
        .args(["-C", &s, "-c", "dir"])
        .output()
        .expect("tar")
        .stdout;
    let b = env.berth_stdin(&["cp", "-", &format!("{name}:/tb/")], &archive);
    let d = env.docker_stdin(&["cp", "-", &format!("{name}:/td/")], &archive);
    assert_eq!((b.code, &b.stderr), (d.code, &d.stderr), "{b:?}");
    let b = env.berth_stdin(&["cp", "-", &format!("{name}:/tb/renamed")], &archive);
    let d = env.docker_stdin(&["cp", "-", &format!("{name}:/td/renamed")], &archive);
    assert_eq!(
        (b.code, b.stderr.replace("/tb", "/t")),
        (d.code, d.stderr.replace("/td", "/t"))
    );
    let list = |dir: &str| {
        env.docker(&["exec", &name, "sh", "-c", &format!("cd {dir} && find . | sort && cat renamed newdir/sub/b && stat -c '%u %a %n' file dir/sub/b")])
            .stdout
    };
    assert_eq!(list("/tb"), list("/td"));
    env.compare_with(
        &[
            "cp",
            &format!("{s}/file"),
            &format!("{name}:/tb/not-a-dir/"),
        ],
        without_logrus,
    );
}

/// Relative paths, kinds and contents of a tree, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("inside")
                .display()
                .to_string();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            if meta.file_type().is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(&path).expect("link").display()
                ));
            } else if meta.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(path);
            } else {
                out.push(format!(
                    "{rel} = {}",
                    std::fs::read_to_string(&path).unwrap_or_default()
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn diff_export_and_commit() {
    let Some(env) = TestEnv::new() else { return };
    let img = image(&env, "commit");
    let name = unique("changed");
    env.track_container(&name);
    env.docker(&[
        "run",
        "--name",
        &name,
        &img,
        "sh",
        "-c",
        "mkdir /newdir && echo x > /newdir/f && rm /bin/ls && echo y >> /etc/group",
    ])
    .ok();
    env.compare_with(&["diff", &name], sorted_lines);
    env.compare_with(&["container", "diff", &name], sorted_lines);
    let listing = |bytes: &[u8]| -> String {
        let mut child = std::process::Command::new("tar")
            .arg("t")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("tar t");
        let mut stdin = child.stdin.take().expect("tar stdin");
        let data = bytes.to_vec();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().expect("tar output");
        let _ = writer.join();
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines.join("\n")
    };
    let b = env.berth(&["export", &name]).ok();
    let d = env.docker(&["export", &name]).ok();
    assert_eq!(listing(&b.raw_stdout), listing(&d.raw_stdout));
    assert!(listing(&b.raw_stdout).contains("newdir/f"));
    let dir = tempfile::tempdir().expect("dir");
    let (fb, fd) = (dir.path().join("b.tar"), dir.path().join("d.tar"));
    env.berth(&["export", "-o", &fb.display().to_string(), &name])
        .ok();
    env.docker(&["export", "-o", &fd.display().to_string(), &name])
        .ok();
    assert_eq!(
        listing(&std::fs::read(&fb).expect("berth export")),
        listing(&std::fs::read(&fd).expect("docker export"))
    );
    let bad = dir.path().join("nodir/x.tar").display().to_string();
    let b = env.berth(&["export", "-o", &bad, &name]);
    assert_eq!(b.code, 1, "{b:?}");
    assert!(!Path::new(&bad).exists());

    let repo = unique("committed");
    let (tag_b, tag_d) = (format!("{repo}:b"), format!("{repo}:d"));
    env.track(&tag_b);
    env.track(&tag_d);
    let commit = |tag: &str| {
        vec![
            "commit".to_string(),
            "-a".into(),
            "tester".into(),
            "-m".into(),
            "a message".into(),
            "-c".into(),
            "ENV X=from-commit".into(),
            "-c".into(),
            "CMD [\"sh\", \"-c\", \"echo $X; cat /newdir/f\"]".into(),
            "-p=false".into(),
            name.clone(),
            tag.to_string(),
        ]
    };
    let args_b = commit(&tag_b);
    let args_d = commit(&tag_d);
    let b = env
        .berth(&args_b.iter().map(String::as_str).collect::<Vec<_>>())
        .ok();
    let d = env
        .docker(&args_d.iter().map(String::as_str).collect::<Vec<_>>())
        .ok();
    assert_eq!(mask_ids(&b.stdout), mask_ids(&d.stdout));
    assert_eq!(mask_ids(&b.stdout), "<id>\n");
    let rb = env.berth(&["run", "--rm", &tag_b]);
    let rd = env.docker(&["run", "--rm", &tag_d]);
    assert_eq!(rb, rd);
    assert_eq!(rb.stdout, "from-commit\nx\n");
    let fmt = "{{.Author}}|{{.Comment}}|{{.Config.Env}}|{{.Config.Cmd}}";
    assert_eq!(
        env.berth(&["image", "inspect", "-f", fmt, &tag_b])
            .ok()
            .stdout,
        env.docker(&["image", "inspect", "-f", fmt, &tag_d])
            .ok()
            .stdout
    );
    // Commit without a name, and with bad references.
    let b = env.berth(&["commit", &name]).ok();
    let id = b.stdout.trim().to_string();
    env.track(&id);
    env.compare(&["commit", &name, "Bad:Name"]);
    env.compare(&[
        "commit",
        &name,
        &format!("{repo}@sha256:{}", "a".repeat(64)),
    ]);
}

#[test]
fn volumes_like_docker() {
    let Some(env) = TestEnv::new() else { return };
    let names = pair("vol");
    env.track_volume(&names.0);
    env.track_volume(&names.1);
    let label = format!("suite={}", names.0);
    let filter = format!("label={label}");
    compare_pair(
        &env,
        &names,
        &[
            "volume",
            "create",
            "--label",
            &label,
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "{}",
        ],
        None,
        |s| s.to_string(),
    );
    compare_pair(
        &env,
        &names,
        &["volume", "create", "-d", "local", "--name", "{}"],
        None,
        |s| s.to_string(),
    );
    for args in [
        vec!["volume", "ls", "--filter", filter.as_str()],
        vec!["volume", "ls", "-q", "--filter", &filter],
        vec!["volume", "ls", "--format", "json", "--filter", &filter],
        vec![
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Labels}} {{.Scope}} {{.Mountpoint}} {{.Links}} {{.Size}}",
            "--filter",
            &filter,
        ],
        vec![
            "volume",
            "ls",
            "--format",
            "table {{.Name}}\t{{.Labels}}",
            "--filter",
            &filter,
        ],
        vec!["volume", "list", "--format", "raw", "--filter", &filter],
        vec!["volume", "inspect", &names.0, &names.1],
        vec![
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Options}} {{.Labels}} {{json .}}",
            &names.0,
        ],
        vec!["volume", "inspect", "-f", "{{.NoSuchField}}", &names.0],
        vec!["inspect", &names.0],
        vec!["inspect", "--type", "volume", "-f", "{{.Name}}", &names.0],
        vec!["volume", "inspect", "berthtest-no-such-volume"],
        vec!["volume", "rm", "berthtest-no-such-volume"],
        vec!["volume", "create", "--name", "a", "b"],
        vec!["volume", "create", "--label", "=x", "v"],
    ] {
        env.compare_with(&args, template_errors);
    }
    // An anonymous volume gets a generated name.
    let b = env.berth(&["volume", "create"]).ok();
    let anonymous = b.stdout.trim().to_string();
    env.track_volume(&anonymous);
    assert!(
        Regex::new(r"^[0-9a-f]{64}$").unwrap().is_match(&anonymous),
        "{b:?}"
    );

    // A volume in use cannot be removed; prune asks first and honours filters.
    let img = image(&env, "volimg");
    let user = unique("voluser");
    env.track_container(&user);
    env.docker(&[
        "create",
        "--name",
        &user,
        "-v",
        &format!("{}:/data", names.0),
        &img,
    ])
    .ok();
    env.compare_with(&["volume", "rm", &names.0], mask_ids);
    env.docker(&["rm", &user]).ok();
    let b = env.berth_stdin(
        &[
            "volume",
            "prune",
            "--filter",
            &format!("label=suite={}", names.0),
        ],
        b"n\n",
    );
    let d = env.docker_stdin(
        &[
            "volume",
            "prune",
            "--filter",
            &format!("label=suite={}", names.0),
        ],
        b"n\n",
    );
    assert_eq!(env.normalize(&b.stdout), env.normalize(&d.stdout));
    assert_eq!((b.code, b.stderr.as_str()), (0, ""));
    let pruned = pair("pruned");
    for (name, who) in [(&pruned.0, "b"), (&pruned.1, "d")] {
        env.track_volume(name);
        env.docker(&[
            "volume",
            "create",
            "--label",
            &format!("prune={}-{who}", pruned.0),
            name,
        ])
        .ok();
    }
    let b = env.berth(&[
        "volume",
        "prune",
        "-f",
        "--filter",
        &format!("label=prune={}-b", pruned.0),
    ]);
    let d = env.docker(&[
        "volume",
        "prune",
        "-f",
        "--filter",
        &format!("label=prune={}-d", pruned.0),
    ]);
    assert_eq!(
        b.stdout.replace(&pruned.0, "<v>"),
        d.stdout.replace(&pruned.1, "<v>")
    );
    compare_pair(&env, &names, &["volume", "rm", "-f", "{}"], None, |s| {
        s.to_string()
    });
}

#[test]
fn container_prune_honours_filters() {
    let Some(env) = TestEnv::new() else { return };
    let img = image(&env, "prune");
    let names = pair("prune");
    env.track_container(&names.0);
    env.track_container(&names.1);
    for (name, who) in [(&names.0, "b"), (&names.1, "d")] {
        env.docker(&[
            "create",
            "--name",
            name,
            "-l",
            &format!("prune={}-{who}", names.0),
            &img,
        ])
        .ok();
    }
    let b = env.berth_stdin(
        &[
            "container",
            "prune",
            "--filter",
            &format!("label=prune={}-b", names.0),
        ],
        b"n\n",
    );
    let d = env.docker_stdin(
        &[
            "container",
            "prune",
            "--filter",
            &format!("label=prune={}-d", names.0),
        ],
        b"n\n",
    );
    assert_eq!(env.normalize(&b.stdout), env.normalize(&d.stdout));
    assert_eq!(b.code, 0);
    assert_eq!(
        env.docker(&["inspect", "-f", "{{.Name}}", &names.0]).code,
        0
    );
    let b = env.berth(&[
        "container",
        "prune",
        "-f",
        "--filter",
        &format!("label=prune={}-b", names.0),
    ]);
    let d = env.docker(&[
        "container",
        "prune",
        "-f",
        "--filter",
        &format!("label=prune={}-d", names.0),
    ]);
    assert_eq!(mask_ids(&b.stdout), mask_ids(&d.stdout));
    assert!(b.stdout.starts_with("Deleted Containers:\n"), "{b:?}");
    assert_eq!(env.docker(&["inspect", &names.0]).code, 1);
    env.compare(&[
        "container",
        "prune",
        "-f",
        "--filter",
        "label=berthtest-matches-nothing",
    ]);
    env.compare(&["container", "prune", "-f", "--filter", "bad"]);
}

#[test]
fn help_and_usage() {
    let Some(env) = TestEnv::new() else { return };
    for args in [
        vec!["rename", "a"],
        vec!["logs"],
        vec!["wait"],
        vec!["attach", "a", "b"],
        vec!["ps", "x"],
        vec!["volume", "ls", "x"],
        vec!["volume", "nosuchverb"],
        vec!["container", "nosuchverb"],
        vec!["cp", "a"],
        vec!["cp", "a", "b"],
        vec!["cp", "a:/x", "b:/y"],
        vec!["cp", "", "b"],
        vec!["stop", "-t", "x", "a"],
        vec!["ps", "-n", "x"],
    ] {
        env.compare(&args);
    }
    let help = env.berth(&["run", "--help"]).ok();
    assert!(help
        .stdout
        .contains("Usage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]"));
    assert!(help.stdout.contains("  -h, --hostname string"));
    assert!(!help.stdout.contains("--net "), "hidden flags stay hidden");
    let help = env.berth(&["container", "--help"]).ok();
    assert!(help.stdout.contains("  ls          List containers"));
}

#[test]
fn run_pulls_missing_images_and_proxies_signals() {
    let Some(env) = TestEnv::new() else { return };
    let img = image(&env, "pull");
    let registry = common::Registry::start(None);
    let remote = format!("{}/{}:v1", registry.address(), unique("remote"));
    env.track(&remote);
    env.docker(&["tag", &img, &remote]).ok();
    env.docker(&["push", &remote]).ok();
    // Missing locally: "Unable to find image", the pull's progress on stderr, then the run.
    let mut runs = Vec::new();
    for client in ["berth", "docker"] {
        env.docker(&["rmi", &remote]).ok();
        let args = ["run", "--rm", remote.as_str(), "echo", "pulled"];
        runs.push(if client == "berth" {
            env.berth(&args)
        } else {
            env.docker(&args)
        });
    }
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0].stdout, "pulled\n");
    assert!(
        runs[0]
            .stderr
            .starts_with(&format!("Unable to find image '{remote}' locally\n")),
        "{:?}",
        runs[0]
    );
    env.compare(&["run", "--rm", "--pull", "always", "-q", &remote, "true"]);
    env.compare(&["run", "--rm", "--pull", "always", &remote, "true"]);
    env.docker(&["rmi", &remote]).ok();
    env.compare(&["run", "--rm", "--pull", "never", &remote, "true"]);
    env.compare(&["create", "--pull", "never", &remote]);
    let missing = format!("{}/{}:v1", registry.address(), unique("absent"));
    env.compare_with(&["run", "--rm", &missing, "true"], mask_ids);

    // --cidfile: written on success, refused when present, removed on failure.
    let dir = tempfile::tempdir().expect("dir");
    let cidfile = dir.path().join("cid").display().to_string();
    let name = unique("cid");
    env.track_container(&name);
    let r = env
        .berth(&[
            "run",
            "-d",
            "--name",
            &name,
            "--cidfile",
            &cidfile,
            &img,
            "true",
        ])
        .ok();
    assert_eq!(
        std::fs::read_to_string(&cidfile).expect("cidfile"),
        r.stdout.trim()
    );
    env.compare(&["run", "--cidfile", &cidfile, &img, "true"]);
    let failed = dir.path().join("failed").display().to_string();
    let r = env.berth(&[
        "create",
        "--pull",
        "never",
        "--cidfile",
        &failed,
        "berthtest-no-such-image:v1",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!Path::new(&failed).exists());

    // Signals sent to `run` reach the container (--sig-proxy, on by default).
    let name = unique("sigproxy");
    env.track_container(&name);
    let mut child = std::process::Command::new(common::berth_bin())
        .args([
            "-H",
            &env.daemon.host(),
            "run",
            "--name",
            &name,
            &img,
            "sh",
            "-c",
            "trap 'echo got-usr1; exit 9' USR1; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("berth run");
    wait_for_state(&env, &name, "running");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling the berth process this test started, by its id.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth run did not end after the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got-usr1\n");
}
