//! `berth-runc features`: the runtime-spec features document (what this runtime supports).

use serde_json::{json, Value};

/// Mount options the runtime accepts in `mounts[].options`: mount(2) flags, their recursive
/// (mount_setattr) forms, propagation types, and runtime-defined extensions (tmpcopyup,
/// idmap, ridmap).
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// Every capability the kernel defines as of Linux 5.9, in number order.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Hook lists the runtime runs.
pub const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Namespace types the runtime can create or join.
pub const NAMESPACES: &[&str] = &[
    "cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time",
];

/// The features document printed by `berth-runc features`.
pub fn features() -> Value {
    use berth_runtime::seccomp;
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        "org.opencontainers.runtime-spec.features.berth.version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    if let Some(v) = seccomp::library_version() {
        annotations.insert("io.github.seccomp.libseccomp.version".into(), v.into());
    }
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": HOOKS,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": NAMESPACES,
            "capabilities": CAPABILITIES,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": seccomp::ACTIONS,
                "operators": seccomp::OPERATORS,
                "archs": seccomp::supported_archs(),
                "knownFlags": seccomp::KNOWN_FLAGS,
                "supportedFlags": seccomp::supported_flags(),
            },
            "apparmor": {"enabled": berth_runtime::process::apparmor_enabled()},
            "selinux": {"enabled": berth_runtime::process::selinux_enabled()},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}},
        },
        "annotations": annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_the_spec_shape() {
        let v = features();
        // The spec's own type accepts it (field names and enum spellings are right).
        let typed: oci_spec::runtime::Features =
            serde_json::from_value(v.clone()).expect("valid features document");
        assert_eq!(typed.oci_version_min(), "1.0.0");
        assert_eq!(typed.oci_version_max(), "1.2.0");

        assert_eq!(v["hooks"].as_array().unwrap().len(), 6);
        let opts: Vec<&str> = v["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        for o in [
            "rbind",
            "rro",
            "tmpcopyup",
            "idmap",
            "ridmap",
            "nosymfollow",
            "rprivate",
        ] {
            assert!(opts.contains(&o), "{o}");
        }
        assert!(
            MOUNT_OPTIONS.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );

        let linux = &v["linux"];
        assert_eq!(linux["namespaces"].as_array().unwrap().len(), 8);
        let caps = linux["capabilities"].as_array().unwrap();
        assert_eq!(caps.len(), 41);
        assert_eq!(caps.last().unwrap(), "CAP_CHECKPOINT_RESTORE");
        assert_eq!(linux["cgroup"]["v2"], true);
        assert_eq!(linux["cgroup"]["systemd"], false);

        let sc = &linux["seccomp"];
        assert_eq!(sc["enabled"], true);
        let actions: Vec<&str> = sc["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(actions.contains(&"SCMP_ACT_ERRNO") && !actions.contains(&"SCMP_ACT_NOTIFY"));
        assert_eq!(sc["operators"].as_array().unwrap().len(), 7);
        assert!(!sc["archs"].as_array().unwrap().is_empty());
        assert_eq!(sc["knownFlags"].as_array().unwrap().len(), 4);
        assert!(sc["supportedFlags"].is_array());

        for key in ["apparmor", "selinux", "intelRdt"] {
            assert!(linux[key]["enabled"].is_boolean(), "{key}");
        }
        assert_eq!(linux["mountExtensions"]["idmap"]["enabled"], false);
        assert_eq!(
            v["annotations"]["org.opencontainers.runtime-spec.features.berth.version"],
            env!("CARGO_PKG_VERSION")
        );
    }
}
