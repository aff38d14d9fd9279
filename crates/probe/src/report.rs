//! `probe report`: gathers what the process sees of its own execution environment.

use std::ffi::CStr;
use std::fs;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::parse;

/// Namespace links reported, in /proc/self/ns naming.
const NAMESPACES: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

/// Cgroup files read when present; v1 paths are relative to /sys/fs/cgroup, v2 paths too.
const CGROUP_FILES: [&str; 18] = [
    "memory/memory.limit_in_bytes",
    "memory/memory.memsw.limit_in_bytes",
    "memory/memory.soft_limit_in_bytes",
    "pids/pids.max",
    "cpu/cpu.cfs_quota_us",
    "cpu/cpu.cfs_period_us",
    "cpu/cpu.shares",
    "cpuset/cpuset.cpus",
    "cpuset/cpuset.mems",
    "blkio/blkio.weight",
    "memory.max",
    "memory.swap.max",
    "memory.low",
    "pids.max",
    "cpu.max",
    "cpu.weight",
    "cpuset.cpus",
    "cpuset.mems",
];

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim_end().to_string())
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn ids() -> Value {
    let (mut ruid, mut euid, mut suid) = (0, 0, 0);
    let (mut rgid, mut egid, mut sgid) = (0, 0, 0);
    // SAFETY: the pointers are to live locals of the type the calls expect.
    let (ru, rg) = unsafe {
        (
            libc::getresuid(&mut ruid, &mut euid, &mut suid),
            libc::getresgid(&mut rgid, &mut egid, &mut sgid),
        )
    };
    if ru != 0 || rg != 0 {
        return json!({ "error": std::io::Error::last_os_error().to_string() });
    }
    json!({
        "uid": ruid, "euid": euid, "suid": suid,
        "gid": rgid, "egid": egid, "sgid": sgid,
    })
}

fn groups() -> Value {
    // SAFETY: a zero size asks only for the count and does not touch the pointer.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let Ok(len) = usize::try_from(n) else {
        return Value::Null;
    };
    let mut buf: Vec<libc::gid_t> = vec![0; len];
    // SAFETY: buf has room for exactly `n` entries.
    let got = unsafe { libc::getgroups(n, buf.as_mut_ptr()) };
    match usize::try_from(got) {
        Ok(got) => {
            buf.truncate(got);
            json!(buf)
        }
        Err(_) => Value::Null,
    }
}

fn umask() -> u32 {
    // SAFETY: umask cannot fail; the old mask is restored right away.
    unsafe {
        let old = libc::umask(0);
        libc::umask(old);
        old
    }
}

fn uname() -> (Value, Value) {
    // SAFETY: utsname is plain data; zeroed is a valid value for it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return (Value::Null, Value::Null);
    }
    // Bounded by the array, so a missing NUL cannot run past it.
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (json!(field(&uts.nodename)), json!(field(&uts.domainname)))
}

fn env() -> Value {
    let map: Map<String, Value> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                Value::String(v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    Value::Object(map)
}

fn namespaces() -> Value {
    let map: Map<String, Value> = NAMESPACES
        .iter()
        .map(|ns| {
            let inode = fs::read_link(format!("/proc/self/ns/{ns}"))
                .ok()
                .and_then(|l| parse::ns_inode(&l.to_string_lossy()));
            ((*ns).to_string(), json!(inode))
        })
        .collect();
    Value::Object(map)
}

fn rlimits() -> Value {
    let list = [
        ("RLIMIT_AS", libc::RLIMIT_AS),
        ("RLIMIT_CORE", libc::RLIMIT_CORE),
        ("RLIMIT_CPU", libc::RLIMIT_CPU),
        ("RLIMIT_DATA", libc::RLIMIT_DATA),
        ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
        ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
        ("RLIMIT_NICE", libc::RLIMIT_NICE),
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        ("RLIMIT_RSS", libc::RLIMIT_RSS),
        ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
        ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
        ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
        ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ];
    let map: Map<String, Value> = list
        .iter()
        .map(|(name, res)| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: lim is a valid, writable rlimit.
            let v = if unsafe { libc::getrlimit(*res, &mut lim) } == 0 {
                json!({ "soft": lim.rlim_cur, "hard": lim.rlim_max })
            } else {
                Value::Null
            };
            ((*name).to_string(), v)
        })
        .collect();
    Value::Object(map)
}

/// Lists /proc/self/fd with link targets; the descriptor used to read the directory is
/// gone by the time links are read, so it drops out on its own.
pub fn fds() -> Value {
    let names: Vec<String> = match fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let mut pairs: Vec<(u64, String)> = names
        .iter()
        .filter_map(|n| {
            let fd: u64 = n.parse().ok()?;
            let target = fs::read_link(format!("/proc/self/fd/{n}")).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect();
    pairs.sort();
    let map: Map<String, Value> = pairs
        .into_iter()
        .map(|(fd, t)| (fd.to_string(), Value::String(t)))
        .collect();
    Value::Object(map)
}

fn tty() -> Value {
    let map: Map<String, Value> = [0, 1, 2]
        .iter()
        .map(|&fd| {
            // SAFETY: isatty only inspects the descriptor number.
            let is = unsafe { libc::isatty(fd) } == 1;
            let name = if is {
                let mut buf = [0 as libc::c_char; 256];
                // SAFETY: buf is writable for its full length, which is passed.
                let rc = unsafe { libc::ttyname_r(fd, buf.as_mut_ptr(), buf.len()) };
                if rc == 0 {
                    // SAFETY: ttyname_r NUL-terminates on success.
                    let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
                    Value::String(s.to_string_lossy().into_owned())
                } else {
                    Value::Null
                }
            } else {
                Value::Null
            };
            (fd.to_string(), json!({ "isatty": is, "ttyname": name }))
        })
        .collect();
    Value::Object(map)
}

fn cgroup_limits() -> Value {
    let map: Map<String, Value> = CGROUP_FILES
        .iter()
        .filter_map(|f| {
            Some((
                (*f).to_string(),
                json!(read_trimmed(format!("/sys/fs/cgroup/{f}"))?),
            ))
        })
        .collect();
    Value::Object(map)
}

/// Builds the full report.
pub fn report() -> Value {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let (hostname, domainname) = uname();
    // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointers.
    let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    // SAFETY: 0xffffffff queries the persona without changing it.
    let persona = unsafe { libc::personality(0xffff_ffff) };
    let persona = if persona == -1 {
        json!({ "errno": errno() })
    } else {
        json!(persona)
    };
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .map(|t| {
            parse::parse_mountinfo(&t)
                .iter()
                .map(parse::MountInfo::to_json)
                .collect()
        })
        .unwrap_or_else(|_| Vec::new());
    let seccomp = parse::status_field(&status, "Seccomp").and_then(|s| s.parse::<u64>().ok());
    let seccomp_filters =
        parse::status_field(&status, "Seccomp_filters").and_then(|s| s.parse::<u64>().ok());
    let cwd = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .ok();
    let mut out = json!({
        "pid": std::process::id(),
        // SAFETY: getppid cannot fail.
        "ppid": unsafe { libc::getppid() },
        "groups": groups(),
        "umask": umask(),
        "cwd": cwd,
        "hostname": hostname,
        "domainname": domainname,
        "env": env(),
        "namespaces": namespaces(),
        "capabilities": parse::capabilities(&status),
        "no_new_privs": nnp == 1,
        "seccomp": seccomp,
        "seccomp_filters": seccomp_filters,
        "rlimits": rlimits(),
        "oom_score_adj": read_trimmed("/proc/self/oom_score_adj").and_then(|s| s.parse::<i64>().ok()),
        "personality": persona,
        "mounts": mounts,
        "cgroup": parse::parse_cgroup(&fs::read_to_string("/proc/self/cgroup").unwrap_or_default()),
        "cgroup_limits": cgroup_limits(),
        "fds": fds(),
        "tty": tty(),
        "uid_map": read_trimmed("/proc/self/uid_map"),
        "gid_map": read_trimmed("/proc/self/gid_map"),
        "setgroups": read_trimmed("/proc/self/setgroups"),
        "lsm_label": read_trimmed("/proc/self/attr/current"),
    });
    // ids go at the top level (uid, euid, ...) so assertions read naturally.
    if let (Value::Object(out), Value::Object(ids)) = (&mut out, ids()) {
        out.extend(ids);
    }
    out
}
