//! berth-runtime takes the specs `build` makes: a bundle over a real busybox rootfs
//! (tests/make-rootfs.sh) passes the runtime's bundle loading and validation, and its
//! seccomp filter compiles.

use berth_spec::{
    build, mount_requests, resolve_user, Context, EtcFiles, NamespacePaths, ResolvedMount,
};
use bollard_stubs::models::{ContainerConfig, DeviceMapping, HostConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ID: &str = "8d3c1e0f2a4b6c8d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f";

/// A bundle directory whose rootfs is the busybox test tree.
fn bundle() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/make-rootfs.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(dir.path().join("rootfs"))
        .status()
        .expect("running make-rootfs.sh");
    assert!(status.success(), "make-rootfs.sh failed");
    dir
}

fn check(config: ContainerConfig, host: HostConfig) {
    let dir = bundle();
    let rootfs = dir.path().join("rootfs");
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    for f in ["hostname", "hosts", "resolv.conf"] {
        std::fs::write(etc.join(f), "").unwrap();
    }
    let init = dir.path().join("init");
    std::fs::write(&init, "").unwrap();
    let volumes = dir.path().join("volumes");
    std::fs::create_dir(&volumes).unwrap();

    berth_spec::validate(&config, &host).unwrap();
    let user = resolve_user(
        &rootfs,
        config.user.as_deref().unwrap_or_default(),
        host.group_add.as_deref().unwrap_or_default(),
    )
    .unwrap();
    let mounts: Vec<ResolvedMount> = mount_requests(&config, &host)
        .unwrap()
        .iter()
        .map(|m| m.resolve(Some(&volumes)).unwrap())
        .collect();
    let (hostname, hosts, resolv): (PathBuf, PathBuf, PathBuf) = (
        etc.join("hostname"),
        etc.join("hosts"),
        etc.join("resolv.conf"),
    );
    let ctx = Context {
        id: ID,
        rootfs: &rootfs,
        config: &config,
        host: &host,
        user: &user,
        mounts: &mounts,
        etc_files: EtcFiles {
            hostname: Some(&hostname),
            hosts: Some(&hosts),
            resolv_conf: Some(&resolv),
        },
        shm_path: None,
        namespace_paths: NamespacePaths::default(),
        cgroup_parent: "/berth",
        init_path: Some(&init),
        seccomp_profile: None,
    };
    let spec = build(&ctx).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
    let loaded = berth_runtime::spec::load_bundle(dir.path())
        .unwrap_or_else(|e| panic!("the runtime refuses the spec: {e}"));
    assert_eq!(loaded.rootfs, std::fs::canonicalize(&rootfs).unwrap());
    let linux = loaded.spec.linux().as_ref().unwrap();
    if let Some(seccomp) = linux.seccomp() {
        berth_runtime::seccomp::compile(seccomp)
            .unwrap_or_else(|e| panic!("the runtime cannot compile the filter: {e}"));
    }
}

fn sh() -> ContainerConfig {
    ContainerConfig {
        cmd: Some(vec!["sh".into(), "-c".into(), "true".into()]),
        env: Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ]),
        ..Default::default()
    }
}

#[test]
fn default_container() {
    check(sh(), HostConfig::default());
}

#[test]
fn container_with_options() {
    let config = ContainerConfig {
        tty: Some(true),
        user: Some("test".into()),
        working_dir: Some("/home/test".into()),
        ..sh()
    };
    let host = HostConfig {
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(vec!["NET_ADMIN".into()]),
        memory: Some(64 << 20),
        nano_cpus: Some(500_000_000),
        pids_limit: Some(10),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([("/run".into(), "size=16m,mode=755".into())])),
        binds: Some(vec!["/tmp:/hosttmp:ro".into(), "cache:/cache".into()]),
        group_add: Some(vec!["extra".into()]),
        init: Some(true),
        sysctls: Some(HashMap::from([("net.ipv4.ip_forward".into(), "1".into())])),
        ulimits: Some(vec![bollard_stubs::models::ResourcesUlimits {
            name: Some("nofile".into()),
            soft: Some(1024),
            hard: Some(4096),
        }]),
        devices: Some(vec![DeviceMapping {
            path_on_host: Some("/dev/null".into()),
            path_in_container: Some("/dev/xnull".into()),
            cgroup_permissions: Some("rw".into()),
        }]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        ..Default::default()
    };
    check(config, host);
}

#[test]
fn privileged_container() {
    check(
        sh(),
        HostConfig {
            privileged: Some(true),
            ..Default::default()
        },
    );
}

#[test]
fn host_namespaces() {
    let host = HostConfig {
        network_mode: Some("host".into()),
        pid_mode: Some("host".into()),
        ipc_mode: Some("none".into()),
        uts_mode: Some("host".into()),
        ..Default::default()
    };
    check(sh(), host);
}

/// berth-runc from this workspace's target directory (built by `cargo build --workspace`).
fn berth_runc() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let runc = target.join("debug/berth-runc");
    runc.exists().then_some(runc)
}

/// Removes the cgroup parent the runtime created under every hierarchy.
struct CgroupParent(String);

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().join(&self.0))
            .collect();
        dirs.push(Path::new("/sys/fs/cgroup").join(&self.0));
        for d in dirs {
            // Children first; the container's own cgroup is gone once it exited.
            if let Ok(children) = std::fs::read_dir(&d) {
                for c in children
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                {
                    let _ = std::fs::remove_dir(c.path());
                }
            }
            let _ = std::fs::remove_dir(&d);
        }
    }
}

/// Runs the spec for real with berth-runc and returns what the container printed.
fn run(user: &str) -> Option<String> {
    let Some(runc) = berth_runc() else {
        eprintln!("skipping: target/debug/berth-runc is not built (cargo build -p berth-runc)");
        return None;
    };
    let dir = bundle();
    let rootfs = dir.path().join("rootfs");
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    for f in ["hostname", "hosts", "resolv.conf"] {
        std::fs::write(etc.join(f), format!("# {f}\n")).unwrap();
    }
    let script = "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; id -u; hostname; \
                  echo masked=$(grep -c ' /proc/keys ' /proc/self/mountinfo); touch /rootfs-write 2>/dev/null || echo read-only; \
                  touch /run/x && echo run-writable; chroot / true 2>/dev/null || echo no-chroot";
    let config = ContainerConfig {
        user: Some(user.into()),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        env: Some(vec!["PATH=/bin:/sbin:/usr/bin".into()]),
        ..Default::default()
    };
    let host = HostConfig {
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([("/run".into(), "size=8m".into())])),
        cap_drop: Some(vec!["SYS_CHROOT".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        pids_limit: Some(32),
        ..Default::default()
    };
    berth_spec::validate(&config, &host).unwrap();
    let u = resolve_user(&rootfs, user, &[]).unwrap();
    let mounts: Vec<ResolvedMount> = mount_requests(&config, &host)
        .unwrap()
        .iter()
        .map(|m| m.resolve(None).unwrap())
        .collect();
    let (hostname, hosts, resolv) = (
        etc.join("hostname"),
        etc.join("hosts"),
        etc.join("resolv.conf"),
    );
    let parent = CgroupParent(format!("berth-spec-test-{}-{user}", std::process::id()));
    let cgroup_parent = format!("/{}", parent.0);
    let ctx = Context {
        id: ID,
        rootfs: &rootfs,
        config: &config,
        host: &host,
        user: &u,
        mounts: &mounts,
        etc_files: EtcFiles {
            hostname: Some(&hostname),
            hosts: Some(&hosts),
            resolv_conf: Some(&resolv),
        },
        shm_path: None,
        namespace_paths: NamespacePaths::default(),
        cgroup_parent: &cgroup_parent,
        init_path: None,
        seccomp_profile: None,
    };
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&build(&ctx).unwrap()).unwrap(),
    )
    .unwrap();
    let state = dir.path().join("state");
    let out = Command::new(runc)
        .arg("--root")
        .arg(&state)
        .args(["run", &format!("spec-{user}-{}", std::process::id())])
        .current_dir(dir.path())
        .output()
        .expect("running berth-runc");
    drop(parent);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "berth-runc failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout)
}

#[test]
fn runs_as_docker_would() {
    let Some(out) = run("") else { return };
    // Docker's 14 default capabilities minus SYS_CHROOT (bit 18).
    assert!(out.contains("CapEff:\t00000000a80025fb"), "{out}");
    assert!(
        out.contains("Seccomp:\t2") && out.contains("NoNewPrivs:\t1"),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"0") && lines.contains(&&ID[..12]), "{out}");
    assert!(lines.contains(&"masked=1"), "/proc/keys is masked: {out}");
    assert!(
        lines.contains(&"read-only") && lines.contains(&"run-writable"),
        "{out}"
    );
    assert!(lines.contains(&"no-chroot"), "{out}");
}

#[test]
fn non_root_has_no_effective_capabilities() {
    let Some(out) = run("nobody") else { return };
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.lines().any(|l| l == "65534"), "{out}");
}
