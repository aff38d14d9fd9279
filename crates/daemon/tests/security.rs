//! Docker's default isolation, seen from inside a container that berthd runs: the probe
//! (a static binary bind-mounted in) reports capabilities, seccomp, namespaces, mounts,
//! and tries what a container must not be able to do.

mod common;

use common::*;
use serde_json::Value;

/// The statically linked probe (`tests/build-probe.sh`; run-all sets BERTH_TEST_PROBE).
fn probe() -> Option<String> {
    let path = std::env::var("BERTH_TEST_PROBE").ok()?;
    std::path::Path::new(&path).exists().then_some(path)
}

fn run_probe(daemon: &Daemon, probe: &str, extra: &[&str], args: &[&str]) -> Value {
    let mount = format!("{probe}:/probe:ro");
    let mut cmd = vec!["run", "--rm", "-v", mount.as_str()];
    cmd.extend_from_slice(extra);
    cmd.push("busybox");
    cmd.push("/probe");
    cmd.extend_from_slice(args);
    let out = ok(daemon.docker(&cmd));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("probe output {out:?}: {e}"))
}

#[test]
fn default_isolation_is_dockers() {
    let Some(probe) = probe() else {
        eprintln!("skipping: BERTH_TEST_PROBE is not set (tests/build-probe.sh builds the probe)");
        return;
    };
    if !have(&["docker"]) {
        return;
    }
    let work = tempfile::Builder::new().prefix("security-").tempdir_in("/var/tmp").unwrap();
    let daemon = Daemon::start(&[]);
    load_busybox(&daemon, work.path(), "busybox:latest");
    let report = run_probe(&daemon, &probe, &["--name", "probed"], &["report"]);

    let mut caps: Vec<String> = report["capabilities"]["CapEff"]["names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    caps.sort();
    let mut docker_defaults = vec![
        "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_MKNOD",
        "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
    ];
    docker_defaults.sort();
    assert_eq!(caps, docker_defaults, "the 14 default capabilities");
    assert_eq!(report["capabilities"]["CapBnd"]["names"].as_array().unwrap().len(), 14);
    assert_eq!(report["seccomp"], 2, "seccomp filter mode");

    // Its own namespaces, and the hostname is the short id.
    for ns in ["mnt", "uts", "ipc", "pid", "net"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap().to_string_lossy().into_owned();
        let inside = report["namespaces"][ns].as_u64().unwrap();
        assert!(!host.contains(&inside.to_string()), "{ns} namespace shared with the host");
    }
    assert_eq!(report["pid"], 1);
    assert_eq!(report["hostname"].as_str().unwrap().len(), 12);

    let mounts = report["mounts"].as_array().unwrap();
    let mount = |point: &str| mounts.iter().rev().find(|m| m["mount_point"] == point).unwrap_or_else(|| panic!("no mount at {point}"));
    assert_eq!(mount("/dev")["fstype"], "tmpfs");
    assert_eq!(mount("/dev/shm")["fstype"], "tmpfs");
    assert!(mount("/dev/shm")["super_options"].as_array().unwrap().iter().any(|o| o == "size=65536k"), "{}", mount("/dev/shm"));
    for f in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
        assert!(mount(f)["root"].as_str().unwrap().ends_with(&f["/etc/".len()..]), "{f} is bind-mounted: {}", mount(f));
    }
    assert!(mount("/sys")["options"].as_array().unwrap().iter().any(|o| o == "ro"), "/sys read-only");
    assert!(mount("/proc/sys")["options"].as_array().unwrap().iter().any(|o| o == "ro"), "/proc/sys read-only");

    // What must fail inside.
    let denied = |args: &[&str]| {
        let r = run_probe(&daemon, &probe, &[], args);
        assert_eq!(r["ok"], false, "{args:?} must fail: {r}");
        r
    };
    denied(&["try-write", "/proc/sys/kernel/hostname", "x"]);
    denied(&["try-write", "/sys/kernel/uevent_helper", "/x"]);
    denied(&["try-mount", "proc", "/mnt", "proc"]);
    // CAP_MKNOD is a default: the node can be made, the device cgroup refuses its use.
    let volume = format!("{probe}:/probe:ro");
    let out = ok(daemon.docker(&["run", "--rm", "-v", &volume, "busybox", "sh", "-c", "mknod /tmp/sda b 8 0 && /probe try-open /tmp/sda"]));
    let opened: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(opened["ok"], false, "a host block device opened: {opened}");
    // Docker's masked paths that this kernel has: /dev/null (of the container's tmpfs
    // /dev) bound over files, an empty read-only tmpfs over directories.
    let masked = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"];
    let present: Vec<&str> = masked.iter().copied().filter(|p| std::path::Path::new(p).exists()).collect();
    assert!(!present.is_empty());
    for path in present {
        let m = mount(path);
        assert_eq!(m["fstype"], "tmpfs", "{path} masked: {m}");
        if std::path::Path::new(path).is_file() {
            assert_eq!(m["root"], "/null", "{path} masked by /dev/null: {m}");
        }
    }

    // --privileged and --cap-drop ALL change it the way docker's do.
    let all = run_probe(&daemon, &probe, &["--privileged"], &["report"]);
    assert_eq!(all["seccomp"], 0, "privileged: no seccomp");
    assert!(all["capabilities"]["CapEff"]["names"].as_array().unwrap().len() > 14);
    let none = run_probe(&daemon, &probe, &["--cap-drop", "ALL", "--security-opt", "no-new-privileges"], &["report"]);
    assert!(none["capabilities"]["CapEff"]["names"].as_array().unwrap().is_empty());
    assert_eq!(none["no_new_privs"], true);
}
