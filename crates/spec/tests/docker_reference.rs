//! The spec `build` produces against the config.json a real dockerd gave its runtime for
//! the same `docker run` (fixtures recorded by tests/fixtures/generate.sh with the
//! dockerd installed here). The comparison ignores what differs by nature (ids, paths,
//! the order of sets) and accounts, by name, for what changed in Docker since the
//! recorded version; anything else that differs fails the test.

use berth_spec::{
    build_with, mount_requests, resolve_user, Context, EtcFiles, HostInfo, NamespacePaths,
    ResolvedMount,
};
use bollard_stubs::models::{ContainerConfig, HostConfig};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

const ID: &str = "5f1c0d2c7a7b4e2f9a3b8c1d0e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Paths Docker masks since the recorded version (GHSA-6fw5-f8r9-fgfm, GHSA-jq35-85cj-fj4p).
const MASKED_SINCE: [&str; 2] = ["/proc/interrupts", "/sys/devices/virtual/powercap"];
/// Syscalls Docker's default profile allows unconditionally since the recorded version.
const SYSCALLS_ADDED_SINCE: [&str; 21] = [
    "cachestat",
    "fchmodat2",
    "futex_requeue",
    "futex_wait",
    "futex_wake",
    "getxattrat",
    "listmount",
    "listxattrat",
    "map_shadow_stack",
    "mseal",
    "name_to_handle_at",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "process_vm_readv",
    "process_vm_writev",
    "removexattrat",
    "riscv_hwprobe",
    "setxattrat",
    "statmount",
    "uretprobe",
];
/// ... and no longer allows: io_uring, and socket only for families other than AF_ALG
/// and AF_VSOCK.
const SYSCALLS_REMOVED_SINCE: [&str; 4] = [
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "socket",
];

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).expect("reading fixture"))
        .expect("parsing fixture")
}

/// A rootfs with busybox's /etc/passwd and /etc/group (all `build` reads from it).
fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\n",
    )
    .unwrap();
    dir
}

/// What `docker run [options] busybox true` sends, merged with the busybox image config.
fn ours(config: ContainerConfig, host: HostConfig) -> Value {
    let dir = rootfs();
    let etc = tempfile::tempdir().unwrap();
    let user = resolve_user(dir.path(), config.user.as_deref().unwrap_or_default(), &[]).unwrap();
    berth_spec::validate(&config, &host).unwrap();
    let mounts: Vec<ResolvedMount> = mount_requests(&config, &host)
        .unwrap()
        .iter()
        .map(|m| m.resolve(None).unwrap())
        .collect();
    let ctx = Context {
        id: ID,
        rootfs: dir.path(),
        config: &config,
        host: &host,
        user: &user,
        mounts: &mounts,
        etc_files: EtcFiles {
            hostname: Some(&etc.path().join("hostname")),
            hosts: Some(&etc.path().join("hosts")),
            resolv_conf: Some(&etc.path().join("resolv.conf")),
        },
        shm_path: None,
        namespace_paths: NamespacePaths::default(),
        cgroup_parent: "/docker",
        init_path: None,
        seccomp_profile: None,
    };
    let spec = serde_json::to_value(build_with(&ctx, &recording_host()).unwrap()).unwrap();
    assert_eq!(spec["linux"]["cgroupsPath"], format!("/docker/{ID}"));
    assert_eq!(spec["hostname"], &ID[..12]);
    spec
}

/// The facts of the machine the fixtures were recorded on (x86-64, cgroup v1, kernel
/// 6.18), with this machine's capabilities (privileged containers get what the engine
/// holds).
fn recording_host() -> HostInfo {
    HostInfo {
        cgroup_v2: false,
        kernel: (6, 18),
        arch: "amd64",
        ping_group_range: true,
        unprivileged_port_start: true,
        user_namespace: false,
        seccomp: true,
        ..HostInfo::detect().clone()
    }
}

fn busybox(args: &[&str]) -> ContainerConfig {
    ContainerConfig {
        cmd: Some(args.iter().map(|s| s.to_string()).collect()),
        env: Some(vec![PATH_ENV.into()]),
        image: Some("busybox".into()),
        ..Default::default()
    }
}

fn sort_strings(v: &mut Value) {
    if let Some(list) = v.as_array_mut() {
        list.sort_by_key(|x| x.to_string());
    }
}

/// Drops what differs by nature and spells equivalent things one way.
fn normalize(mut spec: Value, is_ours: bool) -> Value {
    let obj = spec.as_object_mut().unwrap();
    for key in ["hooks", "ociVersion", "hostname"] {
        obj.remove(key);
    }
    let root = obj.get_mut("root").unwrap().as_object_mut().unwrap();
    root.remove("path");
    if root.get("readonly") == Some(&json!(false)) {
        root.remove("readonly");
    }

    let p = obj.get_mut("process").unwrap().as_object_mut().unwrap();
    if p.get("terminal") == Some(&json!(false)) {
        p.remove("terminal");
    }
    for e in p.get_mut("env").unwrap().as_array_mut().unwrap() {
        if e.as_str().unwrap().starts_with("HOSTNAME=") {
            *e = json!("HOSTNAME=<id>");
        }
    }
    if let Some(caps) = p.get_mut("capabilities").and_then(|c| c.as_object_mut()) {
        for set in caps.values_mut() {
            sort_strings(set);
        }
        // Docker 20.10 omits empty sets; newer writes them.
        caps.retain(|_, v| v.as_array().is_some_and(|a| !a.is_empty()));
    }
    sort_strings(&mut p["user"]["additionalGids"]);

    for m in obj.get_mut("mounts").unwrap().as_array_mut().unwrap() {
        if m["type"] == "bind" {
            m["source"] = json!("<host path>");
        }
        // Read-only binds are recursively read-only (rro) since Docker 25.
        for o in m["options"].as_array_mut().unwrap() {
            if *o == "rro" {
                *o = json!("ro");
            }
        }
    }

    let linux = obj.get_mut("linux").unwrap().as_object_mut().unwrap();
    linux.remove("cgroupsPath");
    linux.remove("seccomp");
    if linux
        .get("devices")
        .is_some_and(|d| d.as_array().is_some_and(|a| a.is_empty()))
    {
        linux.remove("devices");
    }
    // Containers get a time namespace of their own since Docker 29.5.
    linux["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "time");
    if let Some(masked) = linux.get_mut("maskedPaths").and_then(|m| m.as_array_mut()) {
        if is_ours {
            masked.retain(|p| {
                let p = p.as_str().unwrap();
                !MASKED_SINCE.contains(&p) && !p.ends_with("/thermal_throttle")
            });
        }
        masked.sort_by_key(|x| x.to_string());
    }
    let res = linux.get_mut("resources").unwrap().as_object_mut().unwrap();
    // Docker 20.10 writes zero shares and weight; both mean "not set".
    if let Some(cpu) = res.get_mut("cpu").and_then(|c| c.as_object_mut()) {
        if cpu.get("shares") == Some(&json!(0)) {
            cpu.remove("shares");
        }
    }
    if let Some(b) = res.get_mut("blockIO").and_then(|c| c.as_object_mut()) {
        if b.get("weight") == Some(&json!(0)) {
            b.remove("weight");
        }
    }
    res.retain(|_, v| !v.as_object().is_some_and(|o| o.is_empty()));
    spec
}

fn unconditional(seccomp: &Value) -> BTreeSet<String> {
    seccomp["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none_or(|a| a.is_null()))
        .flat_map(|r| {
            r["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
        })
        .collect()
}

/// The rules with arguments or other actions, as comparable strings.
fn conditional(seccomp: &Value) -> BTreeSet<String> {
    seccomp["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] != "SCMP_ACT_ALLOW" || r.get("args").is_some_and(|a| !a.is_null()))
        .map(|r| {
            let mut args = r.get("args").cloned().unwrap_or(json!(null));
            for a in args.as_array_mut().into_iter().flatten() {
                let a = a.as_object_mut().unwrap();
                if a.get("valueTwo") == Some(&json!(0)) {
                    a.remove("valueTwo");
                }
            }
            format!(
                "{} {} {} {}",
                r["action"],
                r["names"],
                args,
                r.get("errnoRet").unwrap_or(&json!(null))
            )
        })
        .collect()
}

/// Docker's default seccomp profile then and now, with the known changes accounted for.
fn compare_seccomp(ours: &Value, docker: &Value) {
    assert_eq!(ours["defaultAction"], docker["defaultAction"]);
    assert_eq!(ours["architectures"], docker["architectures"]);
    let (o, d) = (unconditional(ours), unconditional(docker));
    let added: BTreeSet<String> = o.difference(&d).cloned().collect();
    let removed: BTreeSet<String> = d.difference(&o).cloned().collect();
    // Kernel- and capability-dependent rules decide part of the set: compare against the
    // lists only for what this host enables.
    let expected_added: BTreeSet<String> =
        SYSCALLS_ADDED_SINCE.iter().map(|s| s.to_string()).collect();
    assert!(
        added.is_subset(&expected_added),
        "unexpected syscalls allowed: {:?}",
        added.difference(&expected_added)
    );
    let expected_removed: BTreeSet<String> = SYSCALLS_REMOVED_SINCE
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        removed,
        expected_removed.intersection(&d).cloned().collect(),
        "syscalls no longer allowed"
    );
    let (oc, dc) = (conditional(ours), conditional(docker));
    let new_rules: Vec<&String> = oc.difference(&dc).collect();
    assert!(
        new_rules.iter().all(|r| r.contains("[\"socket\"]")),
        "new conditional rules: {new_rules:?}"
    );
    assert!(
        dc.is_subset(&oc),
        "conditional rules missing: {:?}",
        dc.difference(&oc)
    );
}

fn assert_same(ours: Value, docker: Value) {
    let (o, d) = (normalize(ours, true), normalize(docker, false));
    if o != d {
        panic!(
            "specs differ\n--- ours ---\n{}\n--- docker ---\n{}",
            serde_json::to_string_pretty(&o).unwrap(),
            serde_json::to_string_pretty(&d).unwrap()
        );
    }
}

#[test]
fn docker_run_busybox() {
    let docker = fixture("docker-default.json");
    let spec = ours(
        busybox(&["true"]),
        HostConfig {
            network_mode: Some("default".into()),
            ..Default::default()
        },
    );
    compare_seccomp(&spec["linux"]["seccomp"], &docker["linux"]["seccomp"]);
    assert_same(spec, docker);
}

#[test]
fn docker_run_with_options() {
    // docker run -t -u nobody --cap-drop ALL --cap-add NET_ADMIN --memory 64m --cpus 1.5
    //   --pids-limit 10 --read-only --tmpfs /run busybox true
    let docker = fixture("docker-options.json");
    let config = ContainerConfig {
        tty: Some(true),
        user: Some("nobody".into()),
        ..busybox(&["true"])
    };
    let host = HostConfig {
        network_mode: Some("default".into()),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(vec!["NET_ADMIN".into()]),
        memory: Some(64 << 20),
        nano_cpus: Some(1_500_000_000),
        pids_limit: Some(10),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([("/run".into(), String::new())])),
        ..Default::default()
    };
    let spec = ours(config, host);
    // With only CAP_NET_ADMIN, no capability-gated syscall (chroot) is allowed.
    compare_seccomp(&spec["linux"]["seccomp"], &docker["linux"]["seccomp"]);
    assert_same(spec, docker);
}

#[test]
fn docker_run_privileged() {
    let mut docker = fixture("docker-privileged.json");
    let mut spec = ours(
        busybox(&["true"]),
        HostConfig {
            network_mode: Some("default".into()),
            privileged: Some(true),
            ..Default::default()
        },
    );
    assert!(docker["linux"].get("seccomp").is_none() && spec["linux"].get("seccomp").is_none());

    // Docker 20.10 grants the 38 capabilities it knows whether or not it holds them (so
    // runc failed where the engine lacks one); Docker now grants what it holds, of all 41.
    let held = &HostInfo::detect().capabilities;
    let bounding: BTreeSet<String> =
        serde_json::from_value(spec["process"]["capabilities"]["bounding"].clone()).unwrap();
    assert_eq!(bounding, held.iter().cloned().collect());
    let docker_caps: BTreeSet<String> =
        serde_json::from_value(docker["process"]["capabilities"]["bounding"].clone()).unwrap();
    let newer: BTreeSet<String> = ["CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]
        .map(String::from)
        .into();
    let expected: BTreeSet<String> = docker_caps
        .union(&newer)
        .filter(|c| held.contains(c))
        .cloned()
        .collect();
    assert_eq!(bounding, expected);
    spec["process"]
        .as_object_mut()
        .unwrap()
        .remove("capabilities");
    docker["process"]
        .as_object_mut()
        .unwrap()
        .remove("capabilities");

    // Every host device: compare with what still exists of the recorded ones.
    let key = |d: &Value| format!("{} {} {}:{}", d["path"], d["type"], d["major"], d["minor"]);
    let ours_devices: BTreeSet<String> = spec["linux"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let recorded: BTreeSet<String> = docker["linux"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| Path::new(d["path"].as_str().unwrap()).exists())
        .map(key)
        .collect();
    assert!(!recorded.is_empty());
    assert!(
        recorded.is_subset(&ours_devices),
        "missing host devices: {:?}",
        recorded.difference(&ours_devices)
    );
    spec["linux"].as_object_mut().unwrap().remove("devices");
    docker["linux"].as_object_mut().unwrap().remove("devices");
    assert_same(spec, docker);
}
