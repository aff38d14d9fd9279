//! Pure parsers for the text files the probe reads under /proc, kept free of I/O so
//! they can be unit-tested on the host.

use serde_json::{json, Map, Value};

/// Capability names indexed by bit number, as in linux/capability.h.
pub const CAP_NAMES: [&str; 41] = [
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

/// Decodes a capability mask into names; bits the table does not know become `CAP_<bit>`
/// so a newer kernel never makes the probe lose information.
pub fn cap_names(mask: u64) -> Vec<String> {
    (0..64u32)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| match CAP_NAMES.get(bit as usize) {
            Some(name) => (*name).to_string(),
            None => format!("CAP_{bit}"),
        })
        .collect()
}

/// Returns the value of `Key:` in a /proc/<pid>/status text, trimmed.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// Parses the five capability sets of a status text into
/// `{"CapEff": {"hex": "...", "names": [...]}, ...}`.
pub fn capabilities(status: &str) -> Value {
    let mut out = Map::new();
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let Some(hex) = status_field(status, key) else {
            out.insert(key.to_string(), Value::Null);
            continue;
        };
        let names = u64::from_str_radix(hex, 16)
            .map(cap_names)
            .unwrap_or_default();
        out.insert(key.to_string(), json!({ "hex": hex, "names": names }));
    }
    Value::Object(out)
}

/// Undoes the octal escapes (`\040` for space and friends) the kernel uses in mountinfo.
pub fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u64,
    pub parent: u64,
    pub dev: String,
    pub root: String,
    pub mount_point: String,
    pub options: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_options: Vec<String>,
    /// `shared:N`, `master:N`, `propagate_from:N`, `unbindable`; empty means private.
    pub optional: Vec<String>,
}

impl MountInfo {
    /// The propagation type named the way the OCI spec and mount(8) name it.
    pub fn propagation(&self) -> &'static str {
        let has = |p: &str| self.optional.iter().any(|o| o.starts_with(p));
        if has("unbindable") {
            "unbindable"
        } else if has("shared:") {
            "shared"
        } else if has("master:") {
            "slave"
        } else {
            "private"
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "parent": self.parent,
            "dev": self.dev,
            "root": self.root,
            "mount_point": self.mount_point,
            "options": self.options,
            "fstype": self.fstype,
            "source": self.source,
            "super_options": self.super_options,
            "optional": self.optional,
            "propagation": self.propagation(),
        })
    }
}

/// Parses one mountinfo line; `None` for a line that does not have the documented shape.
pub fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let (head, tail) = line.split_once(" - ")?;
    let mut h = head.split(' ');
    let id = h.next()?.parse().ok()?;
    let parent = h.next()?.parse().ok()?;
    let dev = h.next()?.to_string();
    let root = unescape_octal(h.next()?);
    let mount_point = unescape_octal(h.next()?);
    let options = h.next()?.split(',').map(str::to_string).collect();
    let optional = h.filter(|s| !s.is_empty()).map(str::to_string).collect();
    let mut t = tail.splitn(3, ' ');
    let fstype = t.next()?.to_string();
    let source = unescape_octal(t.next()?);
    let super_options = t
        .next()
        .unwrap_or("")
        .trim_end()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Some(MountInfo {
        id,
        parent,
        dev,
        root,
        mount_point,
        options,
        fstype,
        source,
        super_options,
        optional,
    })
}

/// Parses a whole mountinfo text, skipping lines that do not parse.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

/// Extracts the inode from a namespace link target such as `mnt:[4026531841]`.
pub fn ns_inode(link: &str) -> Option<u64> {
    let start = link.find('[')?;
    let end = link.rfind(']')?;
    link.get(start + 1..end)?.parse().ok()
}

/// Splits /proc/self/cgroup into `{"hierarchy", "controllers", "path"}` objects.
pub fn parse_cgroup(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some(json!({
                "hierarchy": hierarchy.parse::<u64>().ok(),
                "controllers": controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>(),
                "path": path,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_names_decodes_known_and_unknown_bits() {
        assert_eq!(
            cap_names(0x20000420),
            ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
        );
        assert_eq!(cap_names(0), Vec::<String>::new());
        assert_eq!(cap_names(1 << 50), ["CAP_50"]);
        assert_eq!(cap_names(0x1ffffffffff).len(), 41);
    }

    #[test]
    fn status_fields_and_capabilities() {
        let status = "Name:\tprobe\nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n\
                      CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n\
                      CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";
        assert_eq!(status_field(status, "Seccomp"), Some("2"));
        assert_eq!(status_field(status, "Seccomp_filters"), Some("1"));
        assert_eq!(status_field(status, "Missing"), None);
        let caps = capabilities(status);
        assert_eq!(caps["CapInh"]["names"], json!([]));
        assert_eq!(caps["CapEff"]["hex"], "00000000a80425fb");
        let eff = caps["CapEff"]["names"].as_array().map(Vec::len);
        assert_eq!(eff, Some(14));
        assert!(caps["CapEff"]["names"]
            .as_array()
            .is_some_and(|v| v.contains(&json!("CAP_SETFCAP"))));
    }

    #[test]
    fn capabilities_missing_lines_are_null() {
        let caps = capabilities("Name:\tx\n");
        assert_eq!(caps["CapEff"], Value::Null);
    }

    #[test]
    fn unescape_handles_octal_and_plain_backslashes() {
        assert_eq!(unescape_octal("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_octal("tab\\011x"), "tab\tx");
        assert_eq!(unescape_octal("back\\134slash"), "back\\slash");
        assert_eq!(unescape_octal("trailing\\04"), "trailing\\04");
        assert_eq!(unescape_octal("no\\9escape"), "no\\9escape");
        assert_eq!(unescape_octal("end\\"), "end\\");
    }

    #[test]
    fn mountinfo_line_with_optional_fields() {
        let line = "36 35 98:0 /mnt1 /mnt/my\\040dir rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue";
        let m = parse_mountinfo_line(line).expect("parses");
        assert_eq!(m.id, 36);
        assert_eq!(m.parent, 35);
        assert_eq!(m.dev, "98:0");
        assert_eq!(m.root, "/mnt1");
        assert_eq!(m.mount_point, "/mnt/my dir");
        assert_eq!(m.options, ["rw", "noatime"]);
        assert_eq!(m.optional, ["master:1", "shared:7"]);
        assert_eq!(m.fstype, "ext3");
        assert_eq!(m.source, "/dev/root");
        assert_eq!(m.super_options, ["rw", "errors=continue"]);
        assert_eq!(m.propagation(), "shared");
    }

    #[test]
    fn mountinfo_propagation_kinds() {
        let private = "1 0 0:5 / / rw - tmpfs tmpfs rw";
        let slave = "1 0 0:5 / / rw master:3 - tmpfs tmpfs rw";
        let unbindable = "1 0 0:5 / / rw unbindable - tmpfs tmpfs rw";
        let p = |l| parse_mountinfo_line(l).map(|m| m.propagation());
        assert_eq!(p(private), Some("private"));
        assert_eq!(p(slave), Some("slave"));
        assert_eq!(p(unbindable), Some("unbindable"));
    }

    #[test]
    fn mountinfo_skips_garbage_and_empty_super_options() {
        let text = "garbage\n25 1 0:22 / /proc rw,nosuid - proc proc \n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_point, "/proc");
        assert!(mounts[0].super_options.is_empty());
        assert_eq!(mounts[0].to_json()["propagation"], "private");
    }

    #[test]
    fn ns_inode_parses_link_targets() {
        assert_eq!(ns_inode("mnt:[4026531841]"), Some(4026531841));
        assert_eq!(ns_inode("time:[4026531834]"), Some(4026531834));
        assert_eq!(ns_inode("mnt"), None);
        assert_eq!(ns_inode("mnt:[x]"), None);
    }

    #[test]
    fn cgroup_lines_v1_and_v2() {
        let text = "4:memory:/process_api/abc\n9:name=systemd:/\n0::/user.slice\n";
        let v = parse_cgroup(text);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["controllers"], json!(["memory"]));
        assert_eq!(v[0]["path"], "/process_api/abc");
        assert_eq!(v[2]["hierarchy"], 0);
        assert_eq!(v[2]["controllers"], json!([]));
    }
}
