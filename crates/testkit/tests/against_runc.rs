//! Exercises the harness against a real runtime. Runs only when BERTH_TEST_RUNTIME is set
//! (e.g. `BERTH_TEST_RUNTIME=/usr/sbin/runc cargo test -p berth-testkit`), as root.

use std::time::Duration;

use berth_testkit::{host_ns_inode, require_root, Bundle, Runtime};
use serde_json::{json, Value};

const EROFS: i64 = 30;

fn runtime() -> Option<Runtime> {
    if !require_root() {
        return None;
    }
    Runtime::from_env().map(|r| r.expect("runtime"))
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    n.sort();
    n
}

#[test]
fn probe_sees_spec_identity_and_namespaces() {
    let Some(rt) = runtime() else { return };
    let bundle = Bundle::new().unwrap();
    let r = rt.run_probe(&bundle).unwrap();

    assert_eq!(r["hostname"], "runc");
    assert_eq!(r["uid"], 0);
    assert_eq!(r["gid"], 0);
    assert_eq!(r["pid"], 1, "the probe is pid 1 of a new pid namespace");
    assert_eq!(r["cwd"], "/");
    assert_eq!(r["env"]["TERM"], "xterm");
    for ns in ["pid", "net", "ipc", "uts", "mnt"] {
        let inner = r["namespaces"][ns].as_u64();
        assert!(inner.is_some(), "no {ns} namespace in report");
        assert_ne!(inner, host_ns_inode(ns), "{ns} namespace is the host's");
    }
    // Not in the spec, so shared with the host.
    assert_eq!(r["namespaces"]["user"].as_u64(), host_ns_inode("user"));
}

#[test]
fn probe_sees_spec_capabilities_and_limits() {
    let Some(rt) = runtime() else { return };
    let bundle = Bundle::new().unwrap();
    let r = rt.run_probe(&bundle).unwrap();
    let spec = &bundle.config()["process"]["capabilities"];

    let caps = &r["capabilities"];
    assert_eq!(names(&caps["CapEff"]["names"]), names(&spec["effective"]));
    assert_eq!(names(&caps["CapPrm"]["names"]), names(&spec["permitted"]));
    assert_eq!(names(&caps["CapBnd"]["names"]), names(&spec["bounding"]));
    assert_eq!(names(&caps["CapInh"]["names"]), names(&spec["inheritable"]));
    // The kernel raises an ambient cap only if it is also inheritable; runc's spec lists
    // none inheritable, so the ambient set ends up empty.
    let inheritable = names(&spec["inheritable"]);
    let ambient: Vec<String> = names(&spec["ambient"])
        .into_iter()
        .filter(|c| inheritable.contains(c))
        .collect();
    assert_eq!(names(&caps["CapAmb"]["names"]), ambient);
    assert_eq!(r["no_new_privs"], true);
    assert_eq!(
        r["rlimits"]["RLIMIT_NOFILE"],
        json!({ "soft": 1024, "hard": 1024 })
    );
    assert_eq!(r["tty"]["0"]["isatty"], false);
}

#[test]
fn proc_sys_and_root_are_read_only() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new().unwrap();

    let w = rt
        .run_probe_args(&mut bundle, &["try-open", "/proc/sys/kernel/shmmax", "w"])
        .unwrap();
    assert_eq!(w["ok"], false, "{w}");
    assert_eq!(w["errno"], EROFS, "{w}");

    let w = rt
        .run_probe_args(&mut bundle, &["try-write", "/etc/probe-was-here"])
        .unwrap();
    assert_eq!(w["errno"], EROFS, "{w}");
    assert!(!bundle.rootfs().join("etc/probe-was-here").exists());

    let r = rt.run_probe_args(&mut bundle, &["report"]).unwrap();
    let mounts = r["mounts"].as_array().cloned().unwrap_or_default();
    let find = |mp: &str| {
        mounts
            .iter()
            .rev()
            .find(|m| m["mount_point"] == mp)
            .cloned()
    };
    let proc_sys = find("/proc/sys").expect("/proc/sys is its own mount");
    assert!(
        names(&proc_sys["options"]).contains(&"ro".to_string()),
        "{proc_sys}"
    );
    assert_eq!(
        find("/proc").map(|m| m["fstype"].clone()),
        Some(json!("proc"))
    );
    assert_eq!(
        find("/dev").map(|m| m["fstype"].clone()),
        Some(json!("tmpfs"))
    );
}

#[test]
fn writable_root_and_user_with_groups() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new().unwrap();
    bundle.config_mut()["root"]["readonly"] = json!(false);
    bundle
        .set(
            "/process/user",
            json!({ "uid": 1000, "gid": 1000, "additionalGids": [2000] }),
        )
        .unwrap();

    let r = rt.run_probe(&bundle).unwrap();
    assert_eq!(r["uid"], 1000);
    assert_eq!(r["euid"], 1000);
    assert_eq!(r["gid"], 1000);
    assert!(names(&json!(r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()))
    .contains(&"2000".to_string()));

    let w = rt
        .run_probe_args(&mut bundle, &["try-write", "/tmp/written", "hi"])
        .unwrap();
    assert_eq!(w["ok"], true, "{w}");
    assert_eq!(
        std::fs::read_to_string(bundle.rootfs().join("tmp/written")).unwrap(),
        "hi"
    );
}

#[test]
fn lifecycle_create_start_exec_kill_delete() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new().unwrap();
    bundle.set_probe_args(&["sleep", "60"]);
    let id = rt.unique_id("life");

    rt.create(&bundle, &id).unwrap().ok().unwrap();
    assert_eq!(rt.state_json(&id).unwrap()["status"], "created");
    let listed = rt.list_json().unwrap();
    assert!(listed.iter().any(|c| c["id"] == id.as_str()));

    rt.start(&id).unwrap().ok().unwrap();
    assert_eq!(rt.state_json(&id).unwrap()["status"], "running");

    let ex = rt
        .exec_with(&id, &["--user", "1000:1000"], &["/bin/probe", "report"])
        .unwrap()
        .ok()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ex["uid"], 1000);
    assert_ne!(ex["pid"], 1);

    let ps = rt.ps(&id).unwrap().ok().unwrap().json().unwrap();
    assert!(ps.as_array().is_some_and(|a| !a.is_empty()), "{ps}");

    rt.kill(&id, "KILL").unwrap().ok().unwrap();
    rt.wait_stopped(&id, Duration::from_secs(10)).unwrap();
    rt.delete(&id).unwrap().ok().unwrap();
    assert!(!rt.state(&id).unwrap().success());
}

#[test]
fn container_output_after_create_lands_in_create_capture() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new().unwrap();
    bundle.set_probe_args(&["try-syscall", "reboot"]);
    let id = rt.unique_id("capture");

    let created = rt.create(&bundle, &id).unwrap().ok().unwrap();
    rt.start(&id).unwrap().ok().unwrap();
    rt.wait_stopped(&id, Duration::from_secs(10)).unwrap();
    let out = created.reread().unwrap().json().unwrap();
    // Without CAP_SYS_BOOT the kernel refuses with EPERM before looking at the arguments.
    assert_eq!(out["errno"], 1, "{out}");
    rt.delete(&id).unwrap().ok().unwrap();
}

#[test]
fn dropping_bundle_force_deletes_running_container() {
    let Some(rt) = runtime() else { return };
    let id = rt.unique_id("dropped");
    let path = {
        let mut bundle = Bundle::new().unwrap();
        bundle.set_probe_args(&["sleep", "60"]);
        rt.create(&bundle, &id).unwrap().ok().unwrap();
        rt.start(&id).unwrap().ok().unwrap();
        bundle.path().to_path_buf()
    };
    assert!(
        !rt.state(&id).unwrap().success(),
        "container survived its bundle"
    );
    assert!(!path.exists(), "bundle dir left behind");
}

#[test]
fn privileged_operations_are_denied_without_caps() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new().unwrap();
    const EPERM: i64 = 1;
    for name in ["mount", "unshare", "reboot", "sethostname"] {
        let r = rt
            .run_probe_args(&mut bundle, &["try-syscall", name])
            .unwrap();
        assert_eq!(r["errno"], EPERM, "{name}: {r}");
    }
    let r = rt
        .run_probe_args(&mut bundle, &["try-mknod", "/dev/probe-null"])
        .unwrap();
    assert_eq!(r["errno"], EPERM, "{r}");
    let r = rt
        .run_probe_args(&mut bundle, &["try-mount", "tmpfs", "/tmp", "tmpfs"])
        .unwrap();
    assert_eq!(r["errno"], EPERM, "{r}");
    let r = rt
        .run_probe_args(&mut bundle, &["try-syscall", "keyctl"])
        .unwrap();
    assert_eq!(r["ok"], true, "{r}");
}

#[test]
fn seccomp_filter_is_reported_and_applied() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new().unwrap();
    bundle
        .set(
            "/linux/seccomp",
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{
                    "names": ["mkdir", "mkdirat"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 38
                }]
            }),
        )
        .unwrap();
    let r = rt.run_probe(&bundle).unwrap();
    assert_eq!(r["seccomp"], 2, "filter mode");
    assert!(r["seccomp_filters"].as_u64() >= Some(1));
    // Without the filter this is EROFS (read-only root); the filter answers first.
    let m = rt
        .run_probe_args(&mut bundle, &["try-syscall", "mkdir"])
        .unwrap();
    assert_eq!(m["errno"], 38, "{m}");
}

#[test]
fn signal_reaches_the_container_process() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new().unwrap();
    bundle.set_probe_args(&["wait-signal"]);
    let id = rt.unique_id("signal");

    let created = rt.create(&bundle, &id).unwrap().ok().unwrap();
    rt.start(&id).unwrap().ok().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !created.reread().unwrap().stdout.contains("ready") {
        assert!(
            std::time::Instant::now() < deadline,
            "probe never got ready"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    rt.kill(&id, "TERM").unwrap().ok().unwrap();
    rt.wait_stopped(&id, Duration::from_secs(10)).unwrap();
    let out = created.reread().unwrap().stdout;
    let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["signal"], 15, "{out}");
    rt.delete(&id).unwrap().ok().unwrap();
}

#[test]
fn probe_fds_show_only_stdio() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new().unwrap();
    let r = rt.run_probe_args(&mut bundle, &["fds"]).unwrap();
    let fds = r["fds"].as_object().unwrap();
    let mut keys: Vec<&str> = fds.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["0", "1", "2"], "leaked descriptors: {r}");
}

#[test]
fn pause_resume_update_and_stats() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new().unwrap();
    bundle.set_probe_args(&["sleep", "60"]);
    bundle
        .set("/linux/resources/pids", json!({ "limit": 100 }))
        .unwrap();
    let id = rt.unique_id("pause");
    rt.run_with(&bundle, &id, &["--detach"])
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(rt.state_json(&id).unwrap()["status"], "running");

    rt.pause(&id).unwrap().ok().unwrap();
    assert_eq!(rt.state_json(&id).unwrap()["status"], "paused");
    rt.resume(&id).unwrap().ok().unwrap();
    assert_eq!(rt.state_json(&id).unwrap()["status"], "running");

    rt.update(&id, &json!({ "pids": { "limit": 50 } }))
        .unwrap()
        .ok()
        .unwrap();
    let stats = rt.events_stats(&id).unwrap().ok().unwrap().json().unwrap();
    assert_eq!(stats["type"], "stats", "{stats}");
    assert_eq!(stats["data"]["pids"]["limit"], 50, "{stats}");
    assert!(stats["data"]["pids"]["current"].as_u64() >= Some(1));

    rt.delete_force(&id).unwrap().ok().unwrap();
    assert!(rt.list_json().unwrap().is_empty());
}
