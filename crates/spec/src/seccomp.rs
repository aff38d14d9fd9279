//! Seccomp profiles in Docker's JSON format (`archMap`, per-rule `includes`/`excludes` on
//! capabilities, architectures and kernel versions) turned into the OCI `linux.seccomp`
//! for this host and one container's capabilities. Docker's default profile is one such
//! profile, embedded as data.

use crate::error::{invalid, Result};
use crate::host::HostInfo;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSyscall,
};
use serde::Deserialize;

/// Docker's default seccomp profile (moby's profiles/seccomp/default.json, as data).
pub const DEFAULT_PROFILE: &[u8] = include_bytes!("seccomp_default.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: Option<String>,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<Arch>>,
    arch_map: Option<Vec<ArchMap>>,
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    listener_path: Option<std::path::PathBuf>,
    listener_metadata: Option<String>,
    syscalls: Option<Vec<Rule>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    name: Option<String>,
    names: Option<Vec<String>>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
    includes: Option<Filter>,
    excludes: Option<Filter>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

/// Parses a profile and checks what can be checked without a host: Docker's decoding
/// errors, at create time instead of start time.
pub fn check_profile(profile: &[u8]) -> Result<()> {
    let p = parse(profile)?;
    for (i, rule) in p.syscalls.iter().flatten().enumerate() {
        for f in [&rule.includes, &rule.excludes].into_iter().flatten() {
            if let Some(v) = &f.min_kernel {
                parse_min_kernel(v).map_err(|e| {
                    invalid(format!(
                        "decoding seccomp profile failed: syscalls[{i}]: {e}"
                    ))
                })?;
            }
        }
    }
    Ok(())
}

/// Converts a Docker seccomp profile into the OCI filter for a container whose bounding
/// capability set is `caps`, on `host`. `None` when the profile filters nothing (no
/// default action and no rules), as in Docker.
pub fn to_oci(profile: &[u8], caps: &[String], host: &HostInfo) -> Result<Option<LinuxSeccomp>> {
    let p = parse(profile)?;
    let rules = p.syscalls.unwrap_or_default();
    let default_action = p.default_action.filter(|a| !a.is_empty());
    let Some(default_action) = default_action else {
        if rules.is_empty() {
            return Ok(None);
        }
        return Err(invalid(
            "seccomp profile: defaultAction is required when syscalls are given",
        ));
    };
    let default_action: LinuxSeccompAction = serde_json::from_value(serde_json::Value::String(
        default_action.clone(),
    ))
    .map_err(|_| {
        invalid(format!(
            "decoding seccomp profile failed: defaultAction: unknown action {default_action:?}"
        ))
    })?;
    let arch_map = p.arch_map.unwrap_or_default();
    let mut architectures = p.architectures.unwrap_or_default();
    if !architectures.is_empty() && !arch_map.is_empty() {
        return Err(invalid(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'",
        ));
    }
    if let Some(native) = scmp_arch(host.arch) {
        if let Some(m) = arch_map.iter().find(|m| m.architecture == native) {
            architectures.push(m.architecture);
            architectures.extend(m.sub_architectures.iter().flatten().copied());
        }
    }

    let mut syscalls = Vec::new();
    for (i, rule) in rules.into_iter().enumerate() {
        let names = match (rule.name.filter(|n| !n.is_empty()), rule.names.unwrap_or_default()) {
            (Some(_), names) if !names.is_empty() => {
                return Err(invalid(
                    "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'",
                ))
            }
            (Some(name), _) => vec![name],
            (None, names) => names,
        };
        let applies =
            applies(rule.includes.as_ref(), rule.excludes.as_ref(), caps, host).map_err(|e| {
                invalid(format!(
                    "decoding seccomp profile failed: syscalls[{i}]: {e}"
                ))
            })?;
        if !applies {
            continue;
        }
        let mut s = LinuxSyscall::default();
        s.set_names(names);
        s.set_action(rule.action);
        s.set_errno_ret(rule.errno_ret);
        s.set_args(rule.args.filter(|a| !a.is_empty()));
        syscalls.push(s);
    }

    let mut out = LinuxSeccomp::default();
    out.set_default_action(default_action);
    out.set_default_errno_ret(p.default_errno_ret);
    out.set_architectures(Some(architectures).filter(|a| !a.is_empty()));
    out.set_flags(p.flags.filter(|f| !f.is_empty()));
    out.set_listener_path(p.listener_path);
    out.set_listener_metadata(p.listener_metadata);
    out.set_syscalls(Some(syscalls));
    Ok(Some(out))
}

fn parse(profile: &[u8]) -> Result<Profile> {
    let de = &mut serde_json::Deserializer::from_slice(profile);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            invalid(format!("decoding seccomp profile failed: {inner}"))
        } else {
            invalid(format!("decoding seccomp profile failed: {path}: {inner}"))
        }
    })
}

/// Docker's rule filters: every `includes` condition must hold and no `excludes` one.
/// Capability conditions look at the container's bounding set.
fn applies(
    includes: Option<&Filter>,
    excludes: Option<&Filter>,
    caps: &[String],
    host: &HostInfo,
) -> Result<bool, String> {
    let has_cap = |c: &String| caps.contains(c);
    if let Some(ex) = excludes {
        if ex.arches.iter().flatten().any(|a| a == host.arch)
            || ex.caps.iter().flatten().any(has_cap)
        {
            return Ok(false);
        }
        if let Some(v) = &ex.min_kernel {
            if host.kernel >= parse_min_kernel(v)? {
                return Ok(false);
            }
        }
    }
    if let Some(inc) = includes {
        let arches = inc.arches.as_deref().unwrap_or_default();
        if !arches.is_empty() && !arches.iter().any(|a| a == host.arch) {
            return Ok(false);
        }
        if !inc.caps.iter().flatten().all(has_cap) {
            return Ok(false);
        }
        if let Some(v) = &inc.min_kernel {
            if host.kernel < parse_min_kernel(v)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// "<kernel>.<major>", e.g. "4.8"; "" means no condition.
fn parse_min_kernel(v: &str) -> Result<(u32, u32), String> {
    let bad = || format!("invalid kernel version: {v:?}, expected \"<kernel>.<major>\"");
    if v.is_empty() {
        return Ok((0, 0));
    }
    let (a, b) = v.split_once('.').ok_or_else(bad)?;
    let a: u8 = a.parse().map_err(|_| bad())?;
    let b: u8 = b.parse().map_err(|_| bad())?;
    if a == 0 && b == 0 {
        return Err(format!("{}: version cannot be 0.0", bad()));
    }
    Ok((a.into(), b.into()))
}

/// The seccomp architecture of a Docker architecture name.
fn scmp_arch(native: &str) -> Option<Arch> {
    Some(match native {
        "x86" => Arch::ScmpArchX86,
        "amd64" => Arch::ScmpArchX86_64,
        "arm" => Arch::ScmpArchArm,
        "arm64" => Arch::ScmpArchAarch64,
        "loong64" => Arch::ScmpArchLoongarch64,
        "mips64" => Arch::ScmpArchMips64,
        "mips64n32" => Arch::ScmpArchMips64n32,
        "mipsel64" => Arch::ScmpArchMipsel64,
        "mipsel64n32" => Arch::ScmpArchMipsel64n32,
        "mipsle" => Arch::ScmpArchMipsel,
        "ppc" => Arch::ScmpArchPpc,
        "ppc64" => Arch::ScmpArchPpc64,
        "ppc64le" => Arch::ScmpArchPpc64le,
        "riscv64" => Arch::ScmpArchRiscv64,
        "s390" => Arch::ScmpArchS390,
        "s390x" => Arch::ScmpArchS390x,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccompOperator as Op;
    use std::collections::BTreeSet;

    fn default_caps() -> Vec<String> {
        crate::caps::DEFAULT.iter().map(|c| c.to_string()).collect()
    }

    fn default_for(caps: &[String], host: &HostInfo) -> LinuxSeccomp {
        to_oci(DEFAULT_PROFILE, caps, host).unwrap().unwrap()
    }

    /// Rules for `name`: (action, errno, args).
    fn rules_for(
        s: &LinuxSeccomp,
        name: &str,
    ) -> Vec<(LinuxSeccompAction, Option<u32>, Vec<LinuxSeccompArg>)> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == name))
            .map(|r| {
                (
                    r.action(),
                    r.errno_ret(),
                    r.args().clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    fn unconditionally_allowed(s: &LinuxSeccomp) -> BTreeSet<String> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    fn default_profile_header() {
        let s = default_for(&default_caps(), &HostInfo::reference());
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1));
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
    }

    #[test]
    fn default_profile_allow_list() {
        let allowed =
            unconditionally_allowed(&default_for(&default_caps(), &HostInfo::reference()));
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "cachestat",
            "arch_prctl",
            "modify_ldt",
            "ptrace",
        ] {
            assert!(allowed.contains(name), "{name} should be allowed");
        }
        // Privileged operations stay denied with the default capabilities.
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "reboot",
            "kexec_load",
            "init_module",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
            "open_by_handle_at",
            "settimeofday",
            "clock_settime",
            "swapon",
            "pivot_root",
            "syslog",
            "acct",
            "iopl",
            "ioperm",
            "vhangup",
            "kcmp",
            "lookup_dcookie",
            "userfaultfd",
            "quotactl",
            "io_uring_setup",
        ] {
            assert!(!allowed.contains(name), "{name} must not be allowed");
            assert!(
                rules_for(&default_for(&default_caps(), &HostInfo::reference()), name).is_empty(),
                "{name}"
            );
        }
        // chroot comes with CAP_SYS_CHROOT, which is a default capability.
        assert!(allowed.contains("chroot"));
    }

    #[test]
    fn clone_with_namespace_flags_denied_without_sys_admin() {
        let s = default_for(&default_caps(), &HostInfo::reference());
        let clone = rules_for(&s, "clone");
        assert_eq!(clone.len(), 1, "{clone:?}");
        let (action, _, args) = &clone[0];
        assert_eq!(*action, LinuxSeccompAction::ScmpActAllow);
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].op(), Op::ScmpCmpMaskedEq);
        // CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: all must be clear.
        assert_eq!(args[0].value(), 0x7E02_0000);
        assert_eq!(args[0].value_two().unwrap_or(0), 0);
        // clone3 cannot be filtered by flags: ENOSYS makes libc fall back to clone.
        assert_eq!(
            rules_for(&s, "clone3"),
            vec![(LinuxSeccompAction::ScmpActErrno, Some(38), vec![])]
        );

        let mut admin = default_caps();
        admin.push("CAP_SYS_ADMIN".into());
        let s = default_for(&admin, &HostInfo::reference());
        let allowed = unconditionally_allowed(&s);
        for name in [
            "clone", "clone3", "mount", "umount2", "unshare", "setns", "bpf", "fsopen",
        ] {
            assert!(allowed.contains(name), "{name} with CAP_SYS_ADMIN");
        }
        assert!(rules_for(&s, "clone3")
            .iter()
            .all(|r| r.0 == LinuxSeccompAction::ScmpActAllow));
    }

    #[test]
    fn personality_only_with_safe_arguments() {
        let s = default_for(&default_caps(), &HostInfo::reference());
        let values: BTreeSet<u64> = rules_for(&s, "personality")
            .into_iter()
            .map(|(action, _, args)| {
                assert_eq!(action, LinuxSeccompAction::ScmpActAllow);
                assert_eq!(args.len(), 1);
                assert_eq!(args[0].op(), Op::ScmpCmpEq);
                args[0].value()
            })
            .collect();
        // PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26, query.
        assert_eq!(
            values,
            BTreeSet::from([0, 8, 0x20000, 0x20008, 0xffff_ffff])
        );
    }

    #[test]
    fn socket_families_alg_and_vsock_denied() {
        let s = default_for(&default_caps(), &HostInfo::reference());
        let rules = rules_for(&s, "socket");
        let allows = |family: u64| {
            rules.iter().any(|(_, _, args)| {
                args.iter().all(|a| match a.op() {
                    Op::ScmpCmpLt => family < a.value(),
                    Op::ScmpCmpEq => family == a.value(),
                    Op::ScmpCmpGt => family > a.value(),
                    Op::ScmpCmpNe => family != a.value(),
                    other => panic!("unexpected {other:?}"),
                })
            })
        };
        assert!(allows(1) && allows(2) && allows(10) && allows(16) && allows(39) && allows(44));
        assert!(!allows(38), "AF_ALG");
        assert!(!allows(40), "AF_VSOCK");
    }

    #[test]
    fn ptrace_family_on_new_kernels() {
        let new = unconditionally_allowed(&default_for(&default_caps(), &HostInfo::reference()));
        assert!(new.contains("ptrace") && new.contains("process_vm_readv"));
        let old = HostInfo {
            kernel: (4, 4),
            ..HostInfo::reference()
        };
        let old = unconditionally_allowed(&default_for(&default_caps(), &old));
        assert!(!old.contains("ptrace") && !old.contains("process_vm_readv"));
        let mut ptrace = default_caps();
        ptrace.push("CAP_SYS_PTRACE".into());
        let old = HostInfo {
            kernel: (4, 4),
            ..HostInfo::reference()
        };
        let with_cap = unconditionally_allowed(&default_for(&ptrace, &old));
        assert!(with_cap.contains("ptrace") && with_cap.contains("kcmp"));
    }

    #[test]
    fn capability_rules() {
        for (cap, calls) in [
            ("CAP_SYS_TIME", &["settimeofday", "clock_settime"][..]),
            (
                "CAP_SYS_MODULE",
                &["init_module", "finit_module", "delete_module"],
            ),
            ("CAP_SYS_BOOT", &["reboot"]),
            ("CAP_SYSLOG", &["syslog"]),
            ("CAP_BPF", &["bpf"]),
            ("CAP_PERFMON", &["perf_event_open"]),
            ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
            ("CAP_SYS_NICE", &["mbind", "set_mempolicy"]),
        ] {
            let mut caps = default_caps();
            caps.push(cap.into());
            let allowed = unconditionally_allowed(&default_for(&caps, &HostInfo::reference()));
            for c in calls {
                assert!(allowed.contains(*c), "{c} with {cap}");
            }
        }
        // Without CAP_SYS_CHROOT (dropped), chroot is denied.
        let caps: Vec<String> = default_caps()
            .into_iter()
            .filter(|c| c != "CAP_SYS_CHROOT")
            .collect();
        assert!(
            !unconditionally_allowed(&default_for(&caps, &HostInfo::reference()))
                .contains("chroot")
        );
    }

    #[test]
    fn arch_specific_rules() {
        let arm = HostInfo {
            arch: "arm64",
            ..HostInfo::reference()
        };
        let s = default_for(&default_caps(), &arm);
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        let allowed = unconditionally_allowed(&s);
        assert!(allowed.contains("cacheflush") && !allowed.contains("arch_prctl"));
        let s390 = HostInfo {
            arch: "s390x",
            ..HostInfo::reference()
        };
        let clone = rules_for(&default_for(&default_caps(), &s390), "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].2[0].index(), 1, "s390 passes clone flags second");
    }

    #[test]
    fn user_profiles() {
        let host = HostInfo::reference();
        let p = br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["chmod"], "action": "SCMP_ACT_LOG", "args": null, "includes": {}, "comment": "x"}
        ]}"#;
        let s = to_oci(p, &default_caps(), &host).unwrap().unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(s.architectures(), &None);
        assert_eq!(
            rules_for(&s, "mkdir"),
            vec![(LinuxSeccompAction::ScmpActErrno, Some(13), vec![])]
        );
        assert_eq!(rules_for(&s, "chmod").len(), 1);

        assert!(to_oci(b"{}", &[], &host).unwrap().is_none());
        let e = to_oci(br#"{"defaultAction": "SCMP_ACT_NOPE"}"#, &[], &host)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("defaultAction") && e.contains("SCMP_ACT_NOPE"),
            "{e}"
        );
        let e = to_oci(br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "BAD"}]}"#, &[], &host)
            .unwrap_err()
            .to_string();
        assert!(e.contains("syscalls[0].action"), "{e}");
        let e = to_oci(br#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#, &[], &host)
            .unwrap_err()
            .to_string();
        assert!(e.contains("use either 'architectures' or 'archMap'"), "{e}");
        let e = to_oci(br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_LOG"}]}"#, &[], &host)
            .unwrap_err()
            .to_string();
        assert!(e.contains("use either 'name' or 'names'"), "{e}");
        let e = check_profile(br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_LOG", "includes": {"minKernel": "4"}}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid kernel version"), "{e}");
        assert!(check_profile(b"not json")
            .unwrap_err()
            .to_string()
            .starts_with("decoding seccomp profile failed"));
    }

    #[test]
    fn default_profile_compiles_in_the_runtime() {
        let s = default_for(&default_caps(), HostInfo::detect());
        let filter =
            berth_runtime::seccomp::compile(&s).expect("the runtime compiles the default profile");
        assert!(filter.instructions() > 100);
    }
}
