//! Conformance: the probe inside the container proves each part of the spec was applied,
//! the CLI behaves like runc's, and bad input fails cleanly. Needs root; skipped otherwise.

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_testkit::{host_ns_inode, Bundle, CmdOutput, Runtime};
use common::*;
use serde_json::{json, Value};

fn run_ok(rt: &Runtime, bundle: &Bundle) -> CmdOutput {
    let id = rt.unique_id("conf");
    let out = rt.run(bundle, &id).unwrap();
    assert!(out.success(), "run failed: {}\n{}", out.stderr, out.stdout);
    out
}

/// Starts the bundle detached and returns its id.
fn start_detached(rt: &Runtime, bundle: &Bundle, name: &str) -> String {
    let id = rt.unique_id(name);
    rt.run_with(bundle, &id, &["--detach"])
        .unwrap()
        .ok()
        .unwrap();
    id
}

fn sleeper(hardlinked: bool) -> Bundle {
    let mut b = if hardlinked {
        Bundle::new_hardlinked()
    } else {
        Bundle::new()
    }
    .unwrap();
    b.set_probe_args(&["sleep", "120"]);
    b
}

fn exec_report(rt: &Runtime, id: &str) -> Value {
    let out = rt
        .exec(id, &["/bin/probe", "report"])
        .unwrap()
        .ok()
        .unwrap();
    last_json(&out.stdout)
}

fn sh(rt: &Runtime, bundle: &mut Bundle, script: &str) -> String {
    bundle.set_args(&["/bin/sh", "-c", script]);
    run_ok(rt, bundle).stdout
}

// ---------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------

#[test]
fn every_new_namespace_differs_from_the_host() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new().unwrap();
    chown_tree(&bundle.rootfs(), 100_000);
    let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    bundle.set("/linux/uidMappings", map.clone()).unwrap();
    bundle.set("/linux/gidMappings", map).unwrap();
    for ns in [
        "pid", "network", "ipc", "uts", "mount", "cgroup", "time", "user",
    ] {
        bundle.set_namespace(ns, None);
    }
    let r = rt.run_probe(&bundle).unwrap();
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup", "time", "user"] {
        let inner = r["namespaces"][ns].as_u64();
        assert!(
            inner.is_some(),
            "no {ns} namespace in report: {}",
            r["namespaces"]
        );
        assert_ne!(inner, host_ns_inode(ns), "{ns} namespace is the host's");
    }
    assert_eq!(r["pid"], 1);
}

/// A network namespace made with `ip netns add`, deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> NetNs {
        let name = format!("berth-test-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run ip");
        assert!(out.status.success(), "ip netns add: {}", text(&out.stderr));
        NetNs(name)
    }
    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[test]
fn namespaces_joined_by_path_are_the_ones_named() {
    let Some(rt) = runtime() else { return };

    let netns = NetNs::new();
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set_namespace("network", Some(netns.path().to_str().unwrap()));
    let r = rt.run_probe(&bundle).unwrap();
    assert_eq!(
        r["namespaces"]["net"].as_u64(),
        Some(ns_inode(&netns.path())),
        "not in the ip netns"
    );

    // The namespaces of another container's sleeping process.
    let sleeper_bundle = sleeper(true);
    let a = start_detached(&rt, &sleeper_bundle, "ns-owner");
    let apid = state_pid(&rt, &a);
    let mut b = Bundle::new_hardlinked().unwrap();
    b.config_mut().as_object_mut().unwrap().remove("hostname");
    for (ty, file) in [
        ("network", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("pid", "pid"),
    ] {
        b.set_namespace(ty, Some(&format!("/proc/{apid}/ns/{file}")));
    }
    let r = rt.run_probe(&b).unwrap();
    for file in ["net", "ipc", "uts", "pid"] {
        let want = ns_inode(Path::new(&format!("/proc/{apid}/ns/{file}")));
        assert_eq!(
            r["namespaces"][file].as_u64(),
            Some(want),
            "{file} not joined"
        );
    }
    let a_mnt = ns_inode(Path::new(&format!("/proc/{apid}/ns/mnt")));
    assert_ne!(
        r["namespaces"]["mnt"].as_u64(),
        Some(a_mnt),
        "mount namespace should be new"
    );
    assert_ne!(r["pid"], 1, "joined pid namespace already has an init");
    assert_eq!(
        r["hostname"], "runc",
        "shares the uts namespace (and hostname) of the other container"
    );
    rt.delete_force(&a).unwrap().ok().unwrap();
}

fn uptime(text: &str) -> f64 {
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad uptime {text:?}"))
}

#[test]
fn time_namespace_offsets_are_applied() {
    let Some(rt) = runtime() else { return };
    const OFFSET: i64 = 10 * 86400;
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set_namespace("time", None);
    bundle
        .set(
            "/linux/timeOffsets",
            json!({ "boottime": { "secs": OFFSET, "nanosecs": 0 }, "monotonic": { "secs": OFFSET, "nanosecs": 0 } }),
        )
        .unwrap();
    let host_before = uptime(&read_trim("/proc/uptime"));
    let out = sh(
        &rt,
        &mut bundle,
        "cat /proc/uptime; ls -l /proc/self/ns/time",
    );
    let host_after = uptime(&read_trim("/proc/uptime"));
    let inside = uptime(out.lines().next().unwrap());
    let d = inside - host_before;
    assert!(
        d >= OFFSET as f64 && inside <= host_after + OFFSET as f64 + 1.0,
        "uptime {inside} vs host {host_before}: offset not applied"
    );
    let link = out.lines().nth(1).unwrap_or_default();
    assert!(
        !link.contains(&format!("[{}]", host_ns_inode("time").unwrap())),
        "still the host time namespace: {link}"
    );
}

// ---------------------------------------------------------------------------------------
// Process: identity, environment, limits, capabilities
// ---------------------------------------------------------------------------------------

#[test]
fn hostname_and_domainname() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set("/hostname", json!("conf-host")).unwrap();
    bundle.set("/domainname", json!("conf.example")).unwrap();
    let r = rt.run_probe(&bundle).unwrap();
    assert_eq!(r["hostname"], "conf-host");
    assert_eq!(r["domainname"], "conf.example");
}

#[test]
fn user_groups_and_umask() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle
        .set(
            "/process/user",
            json!({ "uid": 1000, "gid": 1001, "additionalGids": [2000, 3000], "umask": 0o027 }),
        )
        .unwrap();
    let r = rt.run_probe(&bundle).unwrap();
    for k in ["uid", "euid", "suid"] {
        assert_eq!(r[k], 1000, "{k}: {r}");
    }
    for k in ["gid", "egid", "sgid"] {
        assert_eq!(r[k], 1001, "{k}: {r}");
    }
    let mut groups: Vec<u64> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_u64().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, [2000, 3000], "{}", r["groups"]);
    assert_eq!(r["umask"], 0o027);

    // exec --user and --additional-gids
    bundle.set_probe_args(&["sleep", "120"]);
    let id = start_detached(&rt, &bundle, "user");
    let out = rt
        .exec_with(
            &id,
            &["--user", "4000:5000", "--additional-gids", "6000"],
            &["/bin/probe", "report"],
        )
        .unwrap()
        .ok()
        .unwrap();
    let r = last_json(&out.stdout);
    assert_eq!(
        (r["uid"].as_u64(), r["gid"].as_u64()),
        (Some(4000), Some(5000)),
        "{r}"
    );
    assert_eq!(r["groups"], json!([6000]));
    rt.delete_force(&id).unwrap().ok().unwrap();
}

#[test]
fn env_and_cwd() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.push_env("FOO=bar");
    bundle.push_env("SPACED=a b  c");
    bundle.set("/process/cwd", json!("/tmp")).unwrap();
    let r = rt.run_probe(&bundle).unwrap();
    assert_eq!(r["env"]["FOO"], "bar");
    assert_eq!(r["env"]["SPACED"], "a b  c");
    assert_eq!(r["env"]["TERM"], "xterm");
    assert_eq!(r["cwd"], "/tmp");

    bundle.set_probe_args(&["sleep", "120"]);
    let id = start_detached(&rt, &bundle, "env");
    let out = rt
        .exec_with(
            &id,
            &["--env", "FOO=baz", "--env", "NEW=1", "--cwd", "/etc"],
            &["/bin/probe", "report"],
        )
        .unwrap()
        .ok()
        .unwrap();
    let r = last_json(&out.stdout);
    assert_eq!(r["env"]["FOO"], "baz");
    assert_eq!(r["env"]["NEW"], "1");
    assert_eq!(r["env"]["SPACED"], "a b  c");
    assert_eq!(r["cwd"], "/etc");
    rt.delete_force(&id).unwrap().ok().unwrap();
}

#[test]
fn rlimits() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle
        .set(
            "/process/rlimits",
            json!([
                { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024 },
                { "type": "RLIMIT_CORE", "soft": 0, "hard": 4096 },
                { "type": "RLIMIT_NPROC", "soft": 300, "hard": 400 }
            ]),
        )
        .unwrap();
    let r = rt.run_probe(&bundle).unwrap();
    assert_eq!(
        r["rlimits"]["RLIMIT_NOFILE"],
        json!({ "soft": 512, "hard": 1024 })
    );
    assert_eq!(
        r["rlimits"]["RLIMIT_CORE"],
        json!({ "soft": 0, "hard": 4096 })
    );
    assert_eq!(
        r["rlimits"]["RLIMIT_NPROC"],
        json!({ "soft": 300, "hard": 400 })
    );
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn capabilities_all_five_sets() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    // A non-root user, so that execve does not grant root's full set: then bounding and
    // inheritable are kept as given, ambient survives (it is in permitted and
    // inheritable), and permitted and effective become the ambient set.
    let bounding = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_RAW",
        "CAP_SETUID",
        "CAP_AUDIT_WRITE",
    ];
    let effective = ["CAP_KILL", "CAP_NET_RAW"];
    let permitted = ["CAP_KILL", "CAP_NET_RAW", "CAP_CHOWN"];
    let inheritable = ["CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"];
    let ambient = ["CAP_KILL", "CAP_NET_RAW"];
    bundle
        .set("/process/user", json!({ "uid": 1000, "gid": 1000 }))
        .unwrap();
    bundle
        .set(
            "/process/capabilities",
            json!({ "bounding": bounding, "effective": effective, "permitted": permitted,
                    "inheritable": inheritable, "ambient": ambient }),
        )
        .unwrap();
    let r = rt.run_probe(&bundle).unwrap();
    for (set, want) in [("CapBnd", &bounding[..]), ("CapInh", &inheritable[..]), ("CapAmb", &ambient[..]), ("CapEff", &effective[..]), ("CapPrm", &ambient[..])] {
        assert_eq!(cap_names(&r, set), sorted(want), "{set}: {}", r["capabilities"]);
    }

    // Root: the bounding set limits what execve grants.
    let mut bundle = Bundle::new_hardlinked().unwrap();
    let small = ["CAP_KILL", "CAP_CHOWN"];
    bundle
        .set("/process/capabilities", json!({ "bounding": small, "effective": small, "permitted": small, "inheritable": [], "ambient": [] }))
        .unwrap();
    let r = rt.run_probe(&bundle).unwrap();
    for set in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(
            cap_names(&r, set),
            sorted(&small),
            "{set}: {}",
            r["capabilities"]
        );
    }
    assert_eq!(cap_names(&r, "CapInh"), Vec::<String>::new());
    assert_eq!(cap_names(&r, "CapAmb"), Vec::<String>::new());
}

#[test]
fn no_new_privileges() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle
        .set("/process/user", json!({ "uid": 1000, "gid": 1000 }))
        .unwrap();
    assert_eq!(rt.run_probe(&bundle).unwrap()["no_new_privs"], true);
    bundle
        .set("/process/noNewPrivileges", json!(false))
        .unwrap();
    assert_eq!(rt.run_probe(&bundle).unwrap()["no_new_privs"], false);
}

#[test]
fn oom_score_adj() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set("/process/oomScoreAdj", json!(500)).unwrap();
    assert_eq!(rt.run_probe(&bundle).unwrap()["oom_score_adj"], 500);
    bundle.set_probe_args(&["sleep", "120"]);
    let id = start_detached(&rt, &bundle, "oom");
    let pid = state_pid(&rt, &id);
    assert_eq!(read_trim(format!("/proc/{pid}/oom_score_adj")), "500");
    assert_eq!(
        exec_report(&rt, &id)["oom_score_adj"],
        500,
        "exec'd process inherits it"
    );
    rt.delete_force(&id).unwrap().ok().unwrap();
}

#[test]
fn sysctls_apply_inside_only() {
    let Some(rt) = runtime() else { return };
    let host_forward = read_trim("/proc/sys/net/ipv4/ip_forward");
    let host_shmmax = read_trim("/proc/sys/kernel/shmmax");
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle
        .set(
            "/linux/sysctl",
            json!({ "net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789" }),
        )
        .unwrap();
    let out = sh(
        &rt,
        &mut bundle,
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["1", "123456789"]);
    assert_eq!(read_trim("/proc/sys/net/ipv4/ip_forward"), host_forward);
    assert_eq!(read_trim("/proc/sys/kernel/shmmax"), host_shmmax);
}

#[test]
fn personality_linux32() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle
        .set("/linux/personality", json!({ "domain": "LINUX32" }))
        .unwrap();
    let out = sh(&rt, &mut bundle, "uname -m; /bin/probe report");
    assert_eq!(out.lines().next(), Some("i686"), "{out}");
    assert_eq!(last_json(&out)["personality"], 8, "PER_LINUX32");
    bundle
        .set("/linux/personality", json!({ "domain": "LINUX" }))
        .unwrap();
    let out = sh(&rt, &mut bundle, "uname -m");
    assert_eq!(out.trim(), "x86_64");
}

// ---------------------------------------------------------------------------------------
// Filesystem: mounts, masked and read-only paths, devices
// ---------------------------------------------------------------------------------------

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn mounts_tmpfs_bind_rbind_propagation() {
    let Some(rt) = runtime() else { return };
    let src = host_dir("berth-mnt-src-");
    fs::write(src.path().join("file"), b"from host\n").unwrap();
    fs::create_dir(src.path().join("sub")).unwrap();
    let _sub = HostMount::tmpfs(&src.path().join("sub"));
    fs::write(src.path().join("sub/inner"), b"in submount\n").unwrap();

    let mut bundle = Bundle::new_hardlinked().unwrap();
    let s = src.path().to_str().unwrap();
    bundle.add_mount(json!({ "destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=1m", "mode=1770"] }));
    bundle.add_mount(
        json!({ "destination": "/ro", "type": "bind", "source": s, "options": ["bind", "ro"] }),
    );
    bundle.add_mount(json!({ "destination": "/rb", "type": "bind", "source": s, "options": ["rbind", "rprivate"] }));
    bundle.add_mount(json!({ "destination": "/shared", "type": "bind", "source": s, "options": ["rbind", "rshared"] }));
    bundle.set_probe_args(&["sleep", "120"]);
    let id = start_detached(&rt, &bundle, "mounts");
    let r = exec_report(&rt, &id);

    let scratch = report_mount(&r, "/scratch").unwrap_or_else(|| panic!("no /scratch: {r}"));
    assert_eq!(scratch["fstype"], "tmpfs");
    let sup = strs(&scratch["super_options"]);
    assert!(
        sup.contains(&"size=1024k".to_string()) && sup.contains(&"mode=1770".to_string()),
        "{scratch}"
    );
    let opts = strs(&scratch["options"]);
    assert!(
        opts.contains(&"nosuid".to_string()) && opts.contains(&"nodev".to_string()),
        "{scratch}"
    );

    let ro = report_mount(&r, "/ro").unwrap_or_else(|| panic!("no /ro: {r}"));
    assert!(strs(&ro["options"]).contains(&"ro".to_string()), "{ro}");
    assert!(
        report_mount(&r, "/ro/sub").is_none(),
        "plain bind must not be recursive"
    );
    let rb = report_mount(&r, "/rb").unwrap();
    assert_eq!(rb["propagation"], "private", "{rb}");
    let rb_sub =
        report_mount(&r, "/rb/sub").unwrap_or_else(|| panic!("rbind lost the submount: {r}"));
    assert_eq!(rb_sub["fstype"], "tmpfs");
    assert_eq!(
        rb_sub["propagation"], "private",
        "rprivate is recursive: {rb_sub}"
    );
    assert_eq!(
        report_mount(&r, "/shared").unwrap()["propagation"],
        "shared"
    );
    assert_eq!(
        report_mount(&r, "/shared/sub").unwrap()["propagation"],
        "shared"
    );

    let probe = |args: &[&str]| -> Value {
        let mut v = vec!["/bin/probe"];
        v.extend_from_slice(args);
        last_json(&rt.exec(&id, &v).unwrap().ok().unwrap().stdout)
    };
    assert_eq!(probe(&["try-open", "/ro/file", "r"])["ok"], true);
    assert_eq!(probe(&["try-write", "/ro/x"])["errno"], EROFS);
    assert_eq!(probe(&["try-open", "/rb/sub/inner", "r"])["ok"], true);
    assert_eq!(probe(&["try-write", "/scratch/x"])["ok"], true);
    // Read-only root.
    assert_eq!(probe(&["try-write", "/x"])["errno"], EROFS);
    assert_eq!(probe(&["try-mkdir", "/etc/x"])["errno"], EROFS);
    rt.delete_force(&id).unwrap().ok().unwrap();
    assert_eq!(
        dir_names(src.path()),
        ["file", "sub"],
        "container wrote into the read-only bind"
    );
}

#[test]
fn masked_and_readonly_paths() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new().unwrap();
    bundle.config_mut()["root"]["readonly"] = json!(false);
    bundle
        .write_rootfs_file("etc/secret", b"top secret\n")
        .unwrap();
    bundle
        .write_rootfs_file("srv/hidden/file", b"hidden\n")
        .unwrap();
    bundle
        .write_rootfs_file("opt/data/file", b"data\n")
        .unwrap();
    let masked = bundle.config_mut()["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap();
    masked.push(json!("/etc/secret"));
    masked.push(json!("/srv/hidden"));
    let ro = bundle.config_mut()["linux"]["readonlyPaths"]
        .as_array_mut()
        .unwrap();
    ro.push(json!("/opt/data"));
    let out = sh(
        &rt,
        &mut bundle,
        "echo \"[$(cat /etc/secret)]\"; echo \"[$(ls -A /srv/hidden)]\"; cat /opt/data/file; \
         /bin/probe try-write /opt/data/new; /bin/probe try-write /opt/data/file; /bin/probe try-write /tmp/ok; \
         echo \"[$(cat /proc/keys)]\"",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "[]", "masked file is not empty: {out}");
    assert_eq!(lines[1], "[]", "masked directory is not empty: {out}");
    assert_eq!(lines[2], "data", "read-only path unreadable: {out}");
    for (i, what) in [
        (3, "new file in read-only path"),
        (4, "file in read-only path"),
    ] {
        let v: Value = serde_json::from_str(lines[i]).unwrap();
        assert_eq!(v["errno"], EROFS, "{what}: {v}");
    }
    let v: Value = serde_json::from_str(lines[5]).unwrap();
    assert_eq!(v["ok"], true, "writable root not writable: {v}");
    assert_eq!(lines[6], "[]", "masked /proc/keys is readable: {out}");
    assert_eq!(read_trim(bundle.rootfs().join("etc/secret")), "top secret");
    assert_eq!(dir_names(&bundle.rootfs().join("opt/data")), ["file"]);
}

#[test]
fn devices_and_dev_symlinks() {
    let Some(rt) = runtime() else { return };
    let mut bundle = sleeper(true);
    bundle
        .set(
            "/linux/devices",
            json!([
                { "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 0, "gid": 5 },
                { "path": "/dev/loop-test", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 1000, "gid": 1000 },
                { "path": "/dev/sub/fifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o620 }
            ]),
        )
        .unwrap();
    let id = start_detached(&rt, &bundle, "devices");
    let pid = state_pid(&rt, &id);
    let dev = PathBuf::from(format!("/proc/{pid}/root/dev"));
    let check = |name: &str, kind: &str, major: u32, minor: u32, mode: u32, uid: u32, gid: u32| {
        let m = fs::symlink_metadata(dev.join(name)).unwrap_or_else(|e| panic!("/dev/{name}: {e}"));
        let ft = m.file_type();
        let got = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else if ft.is_fifo() {
            "p"
        } else {
            "other"
        };
        assert_eq!(got, kind, "/dev/{name} type");
        if kind != "p" {
            assert_eq!(
                (libc::major(m.rdev()), libc::minor(m.rdev())),
                (major, minor),
                "/dev/{name} numbers"
            );
        }
        assert_eq!(m.mode() & 0o7777, mode, "/dev/{name} mode");
        assert_eq!((m.uid(), m.gid()), (uid, gid), "/dev/{name} owner");
    };
    check("fuse", "c", 10, 229, 0o640, 0, 5);
    check("loop-test", "b", 7, 200, 0o600, 1000, 1000);
    check("sub/fifo", "p", 0, 0, 0o620, 0, 0);
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        check(name, "c", major, minor, 0o666, 0, 0);
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let got = fs::read_link(dev.join(name)).unwrap_or_else(|e| panic!("/dev/{name}: {e}"));
        assert_eq!(got, Path::new(target), "/dev/{name}");
    }
    // The device cgroup lets the container use the defaults.
    let out = rt
        .exec(
            &id,
            &[
                "/bin/sh",
                "-c",
                "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok",
            ],
        )
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["4", "null-ok"]
    );
    rt.delete_force(&id).unwrap().ok().unwrap();
}

// ---------------------------------------------------------------------------------------
// Cgroups
// ---------------------------------------------------------------------------------------

/// The host file for a limit: v1 `<controller>/<id>/<v1>`, else v2 `<id>/<v2>`.
fn cgroup_file(id: &str, controller: &str, v1: &str, v2: &str) -> PathBuf {
    let p = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(id)
        .join(v1);
    if p.exists() {
        return p;
    }
    for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let p = Path::new(base).join(id).join(v2);
        if p.exists() {
            return p;
        }
    }
    panic!("no cgroup file for {controller} ({v1} / {v2}) of {id}");
}

fn limit_value(s: &str) -> String {
    s.trim().to_string()
}

#[test]
fn cgroup_limits_on_host_and_inside() {
    let Some(rt) = runtime() else { return };
    let mut bundle = sleeper(true);
    bundle
        .set("/linux/resources/memory", json!({ "limit": 64 << 20 }))
        .unwrap();
    bundle
        .set("/linux/resources/pids", json!({ "limit": 50 }))
        .unwrap();
    let id = start_detached(&rt, &bundle, "cgroup");
    let mem = cgroup_file(&id, "memory", "memory.limit_in_bytes", "memory.max");
    let pids = cgroup_file(&id, "pids", "pids.max", "pids.max");
    assert_eq!(limit_value(&read_trim(&mem)), (64u64 << 20).to_string());
    assert_eq!(read_trim(&pids), "50");
    // The container's process is in that cgroup.
    let pid = state_pid(&rt, &id);
    let procs = read_trim(mem.with_file_name("cgroup.procs"));
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "init {pid} not in {}: {procs}",
        mem.display()
    );

    let r = exec_report(&rt, &id);
    let inside = &r["cgroup_limits"];
    let mem_in = inside["memory/memory.limit_in_bytes"]
        .as_str()
        .or(inside["memory.max"].as_str());
    let pids_in = inside["pids/pids.max"]
        .as_str()
        .or(inside["pids.max"].as_str());
    assert_eq!(mem_in, Some((64u64 << 20).to_string().as_str()), "{inside}");
    assert_eq!(pids_in, Some("50"), "{inside}");

    // update --memory/--pids-limit reaches the same files.
    rt.update_with(&id, &["--memory", "128m", "--pids-limit", "77"])
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(read_trim(&mem), (128u64 << 20).to_string());
    assert_eq!(read_trim(&pids), "77");
    let r = exec_report(&rt, &id);
    let pids_in = r["cgroup_limits"]["pids/pids.max"]
        .as_str()
        .or(r["cgroup_limits"]["pids.max"].as_str());
    assert_eq!(pids_in, Some("77"));

    rt.delete_force(&id).unwrap().ok().unwrap();
    assert_nothing_left(&rt, &id, None);
}

// ---------------------------------------------------------------------------------------
// Hooks
// ---------------------------------------------------------------------------------------

const HOOK: &str = r#"#!/bin/sh
state=$(cat)
status=$(echo "$state" | sed -n 's/.*"status" *: *"\([a-z]*\)".*/\1/p')
id=$(echo "$state" | sed -n 's/.*"id" *: *"\([^"]*\)".*/\1/p')
echo "$1 $status $id" >> "$2"
[ -z "$3" ] || { echo "$3" >&2; exit 1; }
"#;

fn hook(path: &str, kind: &str, log: &str, fail: Option<&str>) -> Value {
    let mut args = vec!["hook.sh", kind, log];
    if let Some(f) = fail {
        args.push(f);
    }
    json!({ "path": path, "args": args, "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] })
}

fn hook_setup() -> (Bundle, tempfile::TempDir, String) {
    let mut bundle = Bundle::new().unwrap();
    let logs = host_dir("berth-hooks-");
    let host_hook = bundle.path().join("hook.sh");
    fs::write(&host_hook, HOOK).unwrap();
    fs::set_permissions(&host_hook, fs::Permissions::from_mode(0o755)).unwrap();
    let inner = bundle
        .write_rootfs_file("hook.sh", HOOK.as_bytes())
        .unwrap();
    fs::set_permissions(&inner, fs::Permissions::from_mode(0o755)).unwrap();
    bundle.add_mount(json!({ "destination": "/hooklog", "type": "bind", "source": logs.path(), "options": ["rbind", "rw"] }));
    let h = host_hook.to_str().unwrap().to_string();
    (bundle, logs, h)
}

fn log_lines(logs: &Path) -> Vec<String> {
    fs::read_to_string(logs.join("log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn hooks_run_in_order_with_state() {
    let Some(rt) = runtime() else { return };
    let (mut bundle, logs, h) = hook_setup();
    let log = logs.path().join("log");
    let l = log.to_str().unwrap();
    bundle
        .set(
            "/hooks",
            json!({
                "prestart": [hook(&h, "prestart", l, None)],
                "createRuntime": [hook(&h, "createRuntime", l, None)],
                "createContainer": [hook(&h, "createContainer", l, None)],
                "startContainer": [hook("/hook.sh", "startContainer", "/hooklog/log", None)],
                "poststart": [hook(&h, "poststart", l, None)],
                "poststop": [hook(&h, "poststop", l, None)]
            }),
        )
        .unwrap();
    bundle.set_probe_args(&["exit", "0"]);
    let id = rt.unique_id("hooks");
    rt.create(&bundle, &id).unwrap().ok().unwrap();
    let first = log_lines(logs.path());
    assert_eq!(
        first,
        [
            format!("prestart creating {id}"),
            format!("createRuntime creating {id}"),
            format!("createContainer creating {id}")
        ],
        "after create"
    );
    rt.start(&id).unwrap().ok().unwrap();
    rt.wait_stopped(&id, Duration::from_secs(20)).unwrap();
    let after_start = log_lines(logs.path());
    rt.delete(&id).unwrap().ok().unwrap();
    let all = log_lines(logs.path());
    let kinds: Vec<&str> = all.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "hook order: {all:#?} (after start: {after_start:#?})"
    );
    let status = |kind: &str| {
        all.iter()
            .find(|l| l.starts_with(&format!("{kind} ")))
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert!(
        ["created", "creating"].contains(&status("startContainer").as_str()),
        "{all:?}"
    );
    assert_eq!(status("poststart"), "running", "{all:?}");
    assert_eq!(status("poststop"), "stopped", "{all:?}");
    assert!(
        all.iter().all(|l| l.ends_with(&format!(" {id}"))),
        "state without the id: {all:?}"
    );
    assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
}

#[test]
fn failing_create_runtime_hook_fails_create_and_cleans_up() {
    let Some(rt) = runtime() else { return };
    let (mut bundle, logs, h) = hook_setup();
    let log = logs.path().join("log");
    let l = log.to_str().unwrap();
    bundle
        .set(
            "/hooks",
            json!({
                "prestart": [hook(&h, "prestart", l, None)],
                "createRuntime": [hook(&h, "createRuntime", l, Some("hook says no"))],
                "createContainer": [hook(&h, "createContainer", l, None)],
                "poststop": [hook(&h, "poststop", l, None)]
            }),
        )
        .unwrap();
    let id = rt.unique_id("hook-fail");
    let out = rt.create(&bundle, &id).unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("createRuntime") && err.contains("hook says no"),
        "{err}"
    );
    let lines = log_lines(logs.path());
    let kinds: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(&kinds[..2], ["prestart", "createRuntime"], "{lines:?}");
    assert!(
        !kinds.contains(&"createContainer"),
        "createContainer ran after a failed createRuntime: {lines:?}"
    );
    assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
    assert!(!rt.state(&id).unwrap().success());
}

// ---------------------------------------------------------------------------------------
// Lifecycle and CLI
// ---------------------------------------------------------------------------------------

#[test]
fn state_through_the_lifecycle() {
    let Some(rt) = runtime() else { return };
    let bundle = sleeper(true);
    let id = rt.unique_id("state");
    let pid_file = bundle.path().join("init.pid");
    rt.create_with(&bundle, &id, &["--pid-file", pid_file.to_str().unwrap()])
        .unwrap()
        .ok()
        .unwrap();
    let st = rt.state_json(&id).unwrap();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert!(
        st["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{st}"
    );
    let canon = fs::canonicalize(bundle.path()).unwrap();
    assert_eq!(st["bundle"], canon.to_str().unwrap(), "{st}");
    assert_eq!(st["rootfs"], canon.join("rootfs").to_str().unwrap(), "{st}");
    assert!(
        st["created"]
            .as_str()
            .is_some_and(|c| c.contains('T') && c.ends_with('Z')),
        "{st}"
    );
    assert!(st.get("owner").is_some(), "{st}");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(read_trim(&pid_file), pid.to_string(), "--pid-file");
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    rt.start(&id).unwrap().ok().unwrap();
    assert_eq!(rt.state_json(&id).unwrap()["status"], "running");
    assert_eq!(rt.state_json(&id).unwrap()["pid"], pid);
    let again = rt.start(&id).unwrap();
    assert!(
        !again.success() && again.stderr.contains("running"),
        "second start: {}",
        again.stderr
    );

    rt.pause(&id).unwrap().ok().unwrap();
    assert_eq!(rt.state_json(&id).unwrap()["status"], "paused");
    let ex = rt.exec(&id, &["/bin/true"]).unwrap();
    assert!(!ex.success(), "exec into a paused container should fail");
    rt.resume(&id).unwrap().ok().unwrap();
    assert_eq!(rt.state_json(&id).unwrap()["status"], "running");

    rt.kill(&id, "KILL").unwrap().ok().unwrap();
    rt.wait_stopped(&id, Duration::from_secs(10)).unwrap();
    let st = rt.state_json(&id).unwrap();
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["pid"], 0, "{st}");
    let k = rt.kill(&id, "TERM").unwrap();
    assert!(!k.success(), "kill of a stopped container should fail");
    rt.delete(&id).unwrap().ok().unwrap();
    assert!(!rt.state(&id).unwrap().success());
    assert_nothing_left(&rt, &id, None);
}

fn wait_ready(created: &CmdOutput) {
    let ok = wait_until(Duration::from_secs(20), || {
        created.reread().unwrap().stdout.contains("ready")
    });
    assert!(ok, "probe never got ready: {:?}", created.reread().unwrap());
}

#[test]
fn kill_by_name_number_and_default() {
    let Some(rt) = runtime() else { return };
    for (sig, want) in [
        ("SIGUSR1", 10),
        ("USR2", 12),
        ("hup", 1),
        ("3", 3),
        ("", 15),
    ] {
        let mut bundle = Bundle::new_hardlinked().unwrap();
        bundle.set_probe_args(&["wait-signal"]);
        let id = rt.unique_id("kill");
        let created = rt.create(&bundle, &id).unwrap().ok().unwrap();
        rt.start(&id).unwrap().ok().unwrap();
        wait_ready(&created);
        let out = if sig.is_empty() {
            rt.command(&["kill", &id]).unwrap()
        } else {
            rt.kill(&id, sig).unwrap()
        };
        assert!(out.success(), "kill {sig:?}: {}", out.stderr);
        rt.wait_stopped(&id, Duration::from_secs(10)).unwrap();
        let last = last_json(&created.reread().unwrap().stdout);
        assert_eq!(last["signal"], want, "kill {sig:?}");
        rt.delete(&id).unwrap().ok().unwrap();
    }
}

#[test]
fn invalid_signal_is_named_and_harmless() {
    let Some(rt) = runtime() else { return };
    let sleeper_bundle = sleeper(true);
    let id = start_detached(&rt, &sleeper_bundle, "badsig");
    for bad in ["SIGNOPE", "0", "65", "KILLX", "SIGRTMIN+99x"] {
        let out = rt.kill(&id, bad).unwrap();
        let err = one_line_error(&out);
        assert!(
            err.contains(bad),
            "kill {bad}: error does not name it: {err}"
        );
    }
    assert_eq!(rt.state_json(&id).unwrap()["status"], "running");
    rt.delete_force(&id).unwrap().ok().unwrap();
}

#[test]
fn kill_all_reaches_every_process() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set_args(&[
        "/bin/sh",
        "-c",
        "/bin/probe sleep 100 & /bin/probe sleep 100 & wait",
    ]);
    let id = start_detached(&rt, &bundle, "killall");
    let count = || {
        rt.ps(&id)
            .unwrap()
            .ok()
            .unwrap()
            .json()
            .unwrap()
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(10), || count() == 3),
        "expected sh and two sleeps, got {}",
        count()
    );
    // SIGTERM to init alone: sh, as pid 1 without a handler, ignores it.
    rt.kill(&id, "TERM").unwrap().ok().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rt.state_json(&id).unwrap()["status"], "running");
    assert_eq!(count(), 3);
    // --all: the sleeps die, wait returns, sh exits.
    rt.kill_all(&id, "TERM").unwrap().ok().unwrap();
    rt.wait_stopped(&id, Duration::from_secs(10)).unwrap();
    rt.delete(&id).unwrap().ok().unwrap();
    assert_nothing_left(&rt, &id, None);
}

#[test]
fn delete_refuses_running_without_force() {
    let Some(rt) = runtime() else { return };
    let sleeper_bundle = sleeper(true);
    let id = start_detached(&rt, &sleeper_bundle, "delete");
    let pid = state_pid(&rt, &id);
    let out = rt.delete(&id).unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("running") && err.contains(&id), "{err}");
    assert_eq!(rt.state_json(&id).unwrap()["status"], "running");
    rt.delete_force(&id).unwrap().ok().unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || read_trim(format!("/proc/{pid}/stat")).contains(" Z ")
    );
    assert_nothing_left(&rt, &id, None);

    // A created (never started) container can be deleted without --force.
    let bundle = sleeper(true);
    let id = rt.unique_id("delete-created");
    rt.create(&bundle, &id).unwrap().ok().unwrap();
    rt.delete(&id).unwrap().ok().unwrap();
    assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
}

#[test]
fn list_ps_and_events() {
    let Some(rt) = runtime() else { return };
    let bundle = sleeper(true);
    let id = start_detached(&rt, &bundle, "list");
    let pid = state_pid(&rt, &id);

    let table = rt.command(&["list"]).unwrap().ok().unwrap().stdout;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{table}"
    );
    let row: Vec<&str> = lines
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed: {table}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], pid.to_string());
    assert_eq!(row[2], "running");
    let quiet = rt.command(&["list", "-q"]).unwrap().ok().unwrap().stdout;
    assert_eq!(quiet.lines().collect::<Vec<_>>(), [id.as_str()]);

    let list = rt.list_json().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["pid"], pid);
    assert_eq!(list[0]["status"], "running");

    let ps = rt.ps(&id).unwrap().ok().unwrap().json().unwrap();
    assert_eq!(ps, json!([pid]), "ps --format json");
    let ex = rt
        .exec_with(&id, &["--detach"], &["/bin/probe", "sleep", "100"])
        .unwrap();
    assert!(ex.success(), "{}", ex.stderr);
    let ps = rt.ps(&id).unwrap().ok().unwrap().json().unwrap();
    assert_eq!(ps.as_array().map(Vec::len), Some(2), "{ps}");

    let ev = rt.events_stats(&id).unwrap().ok().unwrap().json().unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    for k in ["memory", "pids", "cpu"] {
        assert!(
            ev["data"][k].is_object(),
            "events --stats: no data.{k}: {ev}"
        );
    }
    assert_eq!(ev["data"]["pids"]["current"], 2, "{ev}");
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{ev}"
    );
    rt.delete_force(&id).unwrap().ok().unwrap();
    assert!(rt.list_json().unwrap().is_empty());
}

#[test]
fn exec_and_run_exit_codes() {
    let Some(rt) = runtime() else { return };
    let sleeper_bundle = sleeper(true);
    let id = start_detached(&rt, &sleeper_bundle, "codes");
    for code in [0, 3, 42] {
        let out = rt
            .exec(&id, &["/bin/sh", "-c", &format!("exit {code}")])
            .unwrap();
        assert_eq!(out.code(), Some(code), "exec exit {code}: {}", out.stderr);
    }
    let out = rt.exec(&id, &["/bin/sh", "-c", "kill -TERM $$"]).unwrap();
    assert_eq!(out.code(), Some(128 + 15), "exec killed by SIGTERM");
    let out = rt.exec(&id, &["/no/such/binary"]).unwrap();
    assert!(
        !out.success() && out.stderr.contains("/no/such/binary"),
        "{}",
        out.stderr
    );
    rt.delete_force(&id).unwrap().ok().unwrap();

    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set_args(&["/bin/sh", "-c", "exit 7"]);
    let id = rt.unique_id("run-exit");
    assert_eq!(rt.run(&bundle, &id).unwrap().code(), Some(7));
    assert_nothing_left(&rt, &id, None);

    // Killed by SIGKILL while `run` waits: 128 + 9.
    let bundle = sleeper(true);
    let id = rt.unique_id("run-killed");
    std::thread::scope(|s| {
        let waiter = s.spawn(|| rt.run(&bundle, &id).unwrap());
        let running = wait_until(Duration::from_secs(20), || {
            rt.state(&id)
                .ok()
                .and_then(|o| o.json().ok())
                .is_some_and(|v| v["status"] == "running")
        });
        assert!(running, "run never got the container running");
        rt.kill(&id, "KILL").unwrap().ok().unwrap();
        let out = waiter.join().unwrap();
        assert_eq!(out.code(), Some(137), "{}", out.stderr);
    });
    assert_nothing_left(&rt, &id, None);
}

#[test]
fn pid_files_match_state_and_ps() {
    let Some(rt) = runtime() else { return };
    let bundle = sleeper(true);
    let id = rt.unique_id("pidfile");
    let init_file = bundle.path().join("init.pid");
    rt.run_with(
        &bundle,
        &id,
        &["--detach", "--pid-file", init_file.to_str().unwrap()],
    )
    .unwrap()
    .ok()
    .unwrap();
    assert_eq!(read_trim(&init_file), state_pid(&rt, &id).to_string());
    let exec_file = bundle.path().join("exec.pid");
    rt.exec_with(
        &id,
        &["--detach", "--pid-file", exec_file.to_str().unwrap()],
        &["/bin/probe", "sleep", "100"],
    )
    .unwrap()
    .ok()
    .unwrap();
    let exec_pid: i32 = read_trim(&exec_file).parse().unwrap();
    let ps = rt.ps(&id).unwrap().ok().unwrap().json().unwrap();
    assert!(
        ps.as_array().unwrap().contains(&json!(exec_pid)),
        "exec pid {exec_pid} not in {ps}"
    );
    let cmdline = fs::read(format!("/proc/{exec_pid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).starts_with("/bin/probe\0sleep"),
        "{:?}",
        String::from_utf8_lossy(&cmdline)
    );
    rt.delete_force(&id).unwrap().ok().unwrap();
}

#[test]
fn preserve_fds_makes_fd3_readable() {
    let Some(rt) = runtime() else { return };
    let host = host_dir("berth-preserve-");
    let p = host.path().join("data");
    fs::write(&p, b"hello through fd 3\n").unwrap();
    let file = fs::File::open(&p).unwrap();
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set_args(&["/bin/sh", "-c", "cat <&3; ls /proc/self/fd"]);
    bundle.save().unwrap();
    let id = rt.unique_id("preserve");
    let b = bundle.path().to_str().unwrap().to_string();
    let out = Raw::new(&rt, &["run", "--preserve-fds", "1", "--bundle", &b, &id])
        .fd3(file.as_raw_fd())
        .output();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().next(),
        Some("hello through fd 3"),
        "{stdout}"
    );
    // Without --preserve-fds the same descriptor is not passed.
    let id = rt.unique_id("no-preserve");
    let out = Raw::new(&rt, &["run", "--bundle", &b, &id])
        .fd3(file.as_raw_fd())
        .output();
    assert!(
        !text(&out.stdout).contains("hello"),
        "fd 3 leaked without --preserve-fds"
    );
    assert_nothing_left(&rt, &id, None);
}

// ---------------------------------------------------------------------------------------
// Bad input: non-zero exit, a one-line error naming the field or value, nothing left
// ---------------------------------------------------------------------------------------

fn bad_create(rt: &Runtime, bundle: &Bundle, wants: &[&str]) {
    let id = rt.unique_id("bad");
    let out = rt.create(bundle, &id).unwrap();
    let err = one_line_error(&out);
    for w in wants {
        assert!(err.contains(w), "error does not mention {w:?}: {err}");
    }
    assert_nothing_left(rt, &id, Some(&bundle.rootfs()));
}

#[test]
fn bad_malformed_config_json() {
    let Some(rt) = runtime() else { return };
    let bundle = Bundle::new_hardlinked().unwrap();
    let id = rt.unique_id("bad-json");
    // Bypass Bundle::save, which writes valid JSON before each call.
    fs::write(
        bundle.path().join("config.json"),
        b"{\"ociVersion\": \"1.0.2\", \"process\": {",
    )
    .unwrap();
    let b = bundle.path().to_str().unwrap();
    let out = rt.command(&["create", "--bundle", b, &id]).unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("config.json"), "{err}");
    assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));

    fs::write(
        bundle.path().join("config.json"),
        br#"{"ociVersion": "1.0.2", "process": {"args": "not a list"}}"#,
    )
    .unwrap();
    let out = rt.command(&["create", "--bundle", b, &id]).unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("process.args"), "{err}");
    assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
}

#[test]
fn bad_oci_version() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set("/ociVersion", json!("2.0")).unwrap();
    bad_create(&rt, &bundle, &["ociVersion", "2.0"]);
}

#[test]
fn bad_unknown_namespace_type() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.config_mut()["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "bogusns" }));
    bad_create(&rt, &bundle, &["linux.namespaces[5].type", "bogusns"]);
}

#[test]
fn bad_missing_rootfs() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set("/root/path", json!("no-such-rootfs")).unwrap();
    bad_create(&rt, &bundle, &["root.path", "no-such-rootfs"]);
}

#[test]
fn bad_empty_args() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set_args(&[]);
    bad_create(&rt, &bundle, &["process.args"]);
}

#[test]
fn bad_args0_not_found() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set_args(&["/no/such/program", "x"]);
    bad_create(&rt, &bundle, &["/no/such/program"]);
    bundle.set_args(&["no-such-program-in-path"]);
    bad_create(&rt, &bundle, &["no-such-program-in-path"]);
    // A directory is not executable either.
    bundle.set_args(&["/etc"]);
    let id = rt.unique_id("bad-dir");
    let out = rt.run(&bundle, &id).unwrap();
    assert!(!out.success(), "ran a directory");
    assert!(out.stderr.contains("/etc"), "{}", out.stderr);
    assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
}

#[test]
fn bad_unknown_container_id() {
    let Some(rt) = runtime() else { return };
    let id = "no-such-container-xyz";
    for args in [
        vec!["state", id],
        vec!["kill", id, "KILL"],
        vec!["delete", id],
        vec!["start", id],
        vec!["exec", id, "/bin/true"],
        vec!["pause", id],
        vec!["ps", id],
        vec!["events", "--stats", id],
        vec!["update", "--pids-limit", "5", id],
    ] {
        let out = rt.command(&args).unwrap();
        let err = one_line_error(&out);
        assert!(
            err.contains(id) && err.contains("does not exist"),
            "{args:?}: {err}"
        );
    }
    assert!(!rt.root().join(id).exists());
    assert!(
        rt.command(&["delete", "--force", id]).unwrap().success(),
        "delete --force of nothing is fine (runc)"
    );
}

#[test]
fn bad_id_already_in_use() {
    let Some(rt) = runtime() else { return };
    let bundle = sleeper(true);
    let id = rt.unique_id("dup");
    rt.create(&bundle, &id).unwrap().ok().unwrap();
    let pid = state_pid(&rt, &id);
    let other = sleeper(true);
    let out = rt.create(&other, &id).unwrap();
    let err = one_line_error(&out);
    assert!(err.contains(&id) && err.contains("already exists"), "{err}");
    // The first container is untouched.
    let st = rt.state_json(&id).unwrap();
    assert_eq!(
        (st["status"].as_str(), st["pid"].as_i64()),
        (Some("created"), Some(pid as i64))
    );
    assert!(
        !cgroup_dirs_named(&id).is_empty(),
        "the first container's cgroup was removed"
    );
    rt.start(&id).unwrap().ok().unwrap();
    assert_eq!(rt.state_json(&id).unwrap()["status"], "running");
    rt.delete_force(&id).unwrap().ok().unwrap();
    assert_nothing_left(&rt, &id, None);
}

#[test]
fn bad_invalid_ids() {
    let Some(rt) = runtime() else { return };
    let bundle = Bundle::new_hardlinked().unwrap();
    let outside = rt.root().parent().unwrap().to_path_buf();
    let before = dir_names(&outside);
    for id in [
        "../x",
        "a/b",
        "..",
        ".",
        "",
        "with space",
        "../../tmp/escape",
    ] {
        let out = rt.create(&bundle, id).unwrap();
        let err = one_line_error(&out);
        assert!(err.contains("invalid container id"), "{id:?}: {err}");
        for verb in ["state", "delete", "start"] {
            let out = rt.command(&[verb, id]).unwrap();
            assert!(!out.success(), "{verb} {id:?} succeeded");
        }
    }
    assert_eq!(
        dir_names(&outside),
        before,
        "something was created next to the state root"
    );
    assert!(
        dir_names(&rt.root()).is_empty(),
        "state root: {:?}",
        dir_names(&rt.root())
    );
    assert!(!Path::new("/tmp/escape").exists());
    assert!(!Path::new("/sys/fs/cgroup/memory/x").exists());
}

#[test]
fn bad_duplicate_namespaces() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.config_mut()["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "network" }));
    bad_create(&rt, &bundle, &["linux.namespaces[5]", "duplicate", "net"]);
}

#[test]
fn bad_sysctls() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle
        .set("/linux/sysctl", json!({ "vm.swappiness": "10" }))
        .unwrap();
    bad_create(&rt, &bundle, &["vm.swappiness", "not namespaced"]);
    bundle
        .set("/linux/sysctl", json!({ "net.ipv4.ip_forward": "1" }))
        .unwrap();
    bundle.remove_namespace("network");
    bad_create(&rt, &bundle, &["net.ipv4.ip_forward", "network namespace"]);
    bundle
        .set("/linux/sysctl", json!({ "kernel/../../etc": "1" }))
        .unwrap();
    bad_create(&rt, &bundle, &["kernel/../../etc"]);
}

#[test]
fn security_labels_the_host_cannot_apply() {
    let Some(rt) = runtime() else { return };
    let apparmor = fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.starts_with('Y'));
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    let mut bundle = Bundle::new_hardlinked().unwrap();
    if !apparmor {
        bundle.set("/process/apparmorProfile", json!("berth-test")).unwrap();
        bad_create(&rt, &bundle, &["apparmorProfile", "berth-test", "AppArmor is not enabled"]);
        bundle.config_mut()["process"].as_object_mut().unwrap().remove("apparmorProfile");
    }
    if !selinux {
        bundle.set("/process/selinuxLabel", json!("system_u:system_r:container_t:s0")).unwrap();
        bad_create(&rt, &bundle, &["selinuxLabel", "SELinux is not enabled"]);
        bundle.config_mut()["process"].as_object_mut().unwrap().remove("selinuxLabel");
        bundle.set("/linux/mountLabel", json!("system_u:object_r:container_file_t:s0")).unwrap();
        bad_create(&rt, &bundle, &["mountLabel", "SELinux is not enabled"]);
    }
}

// ---------------------------------------------------------------------------------------
// Terminal without a console socket: the runtime owns the pty and proxies it

/// Runs `cmd` under script(1), which gives it a real terminal of 33 rows by 99 columns.
fn under_terminal(cmd: &str) -> String {
    let out = Command::new("timeout")
        .args(["60", "script", "-qec", &format!("stty rows 33 cols 99; {cmd}"), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .output()
        .expect("script(1) runs");
    text(&out.stdout).replace('\r', "")
}

#[test]
fn foreground_run_and_exec_with_terminal() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set("/process/terminal", json!(true)).unwrap();
    bundle.set_args(&["/bin/sh", "-c", "tty; stty size; exit 5"]);
    bundle.save().unwrap();
    let id = rt.unique_id("tty");
    let bin = rt.bin().display().to_string();
    let root = rt.root().display().to_string();
    let shown = under_terminal(&format!(
        "{bin} --root {root} run --bundle {} {id}; echo status=$?",
        bundle.path().display()
    ));
    assert!(shown.contains("/dev/pts/0\n"), "no pty inside: {shown:?}");
    assert!(shown.contains("33 99\n"), "window size not passed on: {shown:?}");
    assert!(shown.contains("status=5"), "exit status lost: {shown:?}");
    assert_nothing_left(&rt, &id, None);

    let sleeper = sleeper(true);
    sleeper.save().unwrap();
    let id = start_detached(&rt, &sleeper, "ttyexec");
    let shown = under_terminal(&format!("{bin} --root {root} exec -t {id} /bin/sh -c 'tty; stty size; exit 4'; echo status=$?"));
    assert!(shown.contains("/dev/pts/"), "no pty for exec: {shown:?}");
    assert!(shown.contains("33 99\n"), "exec window size not passed on: {shown:?}");
    assert!(shown.contains("status=4"), "exec exit status lost: {shown:?}");
    rt.delete_force(&id).unwrap().ok().unwrap();
}

// ---------------------------------------------------------------------------------------
// A create killed half-way (kill -9) is undone by `delete --force`
// ---------------------------------------------------------------------------------------

#[test]
fn create_killed_midway_is_cleaned_up_by_delete() {
    let Some(rt) = runtime() else { return };
    let mut bundle = sleeper(true);
    let logs = host_dir("killed-create");
    let marker = logs.path().join("hook-ran");
    // The createRuntime hook holds create after the cgroup and init exist.
    bundle
        .set(
            "/hooks",
            json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}; sleep 30", marker.display())]}]}),
        )
        .unwrap();
    bundle.save().unwrap();
    let id = rt.unique_id("killed");
    let mut create = Command::new(rt.bin())
        .args(["--root", rt.root().to_str().unwrap(), "create", "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || marker.exists()), "the hook never ran");
    assert!(!cgroup_dirs_named(&id).is_empty(), "create had not made its cgroup yet");
    create.kill().unwrap();
    create.wait().unwrap();
    // The hook outlives the runtime; it is not the container's business.
    let _ = Command::new("pkill").args(["-f", &marker.display().to_string()]).status();

    assert!(!rt.state(&id).unwrap().success(), "a half-made container has no state");
    rt.delete_force(&id).unwrap().ok().unwrap();
    assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
}

// ---------------------------------------------------------------------------------------
// Concurrent invocations on one --root
// ---------------------------------------------------------------------------------------

/// A runtime process started in the background. Its stderr goes to a file, not a pipe:
/// a created container inherits it and would hold a pipe open.
struct Spawned {
    child: std::process::Child,
    stderr: tempfile::NamedTempFile,
}

impl Spawned {
    fn finish(mut self) -> (bool, String) {
        let ok = self.child.wait().unwrap().success();
        (ok, fs::read_to_string(self.stderr.path()).unwrap_or_default())
    }
}

fn spawn_runtime(rt: &Runtime, args: &[&str]) -> Spawned {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(rt.bin())
        .arg("--root")
        .arg(rt.root())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .unwrap();
    Spawned { child, stderr }
}

#[test]
fn concurrent_invocations_keep_state_consistent() {
    let Some(rt) = runtime() else { return };
    let bundle = sleeper(true);
    bundle.save().unwrap();
    let b = bundle.path().to_str().unwrap().to_string();

    // Eight creates of one id at once: exactly one wins, the rest say the id is taken.
    let id = rt.unique_id("race");
    let racers: Vec<_> = (0..8).map(|_| spawn_runtime(&rt, &["create", "--bundle", &b, &id])).collect();
    let outs: Vec<_> = racers.into_iter().map(Spawned::finish).collect();
    let winners = outs.iter().filter(|(ok, _)| *ok).count();
    assert_eq!(winners, 1, "{outs:?}");
    for (_, err) in outs.iter().filter(|(ok, _)| !ok) {
        assert!(err.contains("already exists"), "{err}");
    }
    assert_eq!(rt.state_json(&id).unwrap()["status"], "created");

    // Different ids at once all work and all show up.
    let ids: Vec<String> = (0..6).map(|i| rt.unique_id(&format!("many{i}"))).collect();
    let many: Vec<_> = ids.iter().map(|i| spawn_runtime(&rt, &["run", "--detach", "--bundle", &b, i])).collect();
    for c in many {
        let (ok, err) = c.finish();
        assert!(ok, "{err}");
    }
    let listed: Vec<String> = rt.list_json().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    for i in ids.iter().chain([&id]) {
        assert!(listed.contains(i), "{i} missing from list {listed:?}");
    }

    // Deletes racing each other and a kill: every forced delete succeeds (a container
    // already gone is fine with --force), the kill may find it gone, nothing is left.
    let mut kills = Vec::new();
    let mut deletes = Vec::new();
    for i in ids.iter().chain([&id]) {
        kills.push(spawn_runtime(&rt, &["kill", i, "KILL"]));
        for _ in 0..3 {
            deletes.push(spawn_runtime(&rt, &["delete", "--force", i]));
        }
    }
    for c in deletes {
        let (ok, err) = c.finish();
        assert!(ok, "delete --force failed: {err}");
    }
    for c in kills {
        let (ok, err) = c.finish();
        assert!(ok || err.contains("does not exist") || err.contains("stopped"), "unexpected kill failure: {err}");
    }
    for i in ids.iter().chain([&id]) {
        assert_nothing_left(&rt, i, Some(&bundle.rootfs()));
    }
}

// ---------------------------------------------------------------------------------------
// Scheduling: process.scheduler, ioPriority, execCPUAffinity
// ---------------------------------------------------------------------------------------

#[test]
fn scheduler_io_priority_and_cpu_affinity() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set("/process/scheduler", json!({"policy": "SCHED_BATCH", "nice": 5})).unwrap();
    bundle.set("/process/ioPriority", json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0})).unwrap();
    bundle.set("/process/execCPUAffinity", json!({"final": "0"})).unwrap();
    // Fields 19 and 41 of /proc/self/stat: nice and scheduling policy (3 = SCHED_BATCH).
    let out = sh(&rt, &mut bundle, "cut -d' ' -f19,41 /proc/self/stat; ionice -p $$; grep Cpus_allowed_list /proc/self/status");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"5 3"), "{out}");
    assert_eq!(lines.get(1), Some(&"idle"), "{out}");
    assert!(lines.get(2).is_some_and(|l| l.ends_with("\t0")), "{out}");

    // A process whose spec sets none of this keeps the defaults.
    let sleeper = sleeper(true);
    let id = start_detached(&rt, &sleeper, "sched");
    let out = rt.exec(&id, &["/bin/sh", "-c", "cut -d' ' -f19,41 /proc/self/stat"]).unwrap().ok().unwrap();
    assert_eq!(out.stdout.trim(), "0 0", "{}", out.stdout);
    rt.delete_force(&id).unwrap().ok().unwrap();

    bundle.set("/process/ioPriority", json!({"class": "IOPRIO_CLASS_BE", "priority": 9})).unwrap();
    bad_create(&rt, &bundle, &["ioPriority", "9"]);
}
