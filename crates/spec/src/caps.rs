//! Capabilities: Docker's default set, `--cap-add`/`--cap-drop` and `--privileged`.

use crate::error::{invalid, Result};

/// Every capability Linux knows (the `caps` crate's list), in numeric order.
pub fn known() -> &'static [String] {
    static KNOWN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut all: Vec<caps::Capability> = caps::all().into_iter().collect();
        all.sort_by_key(|c| c.index());
        all.iter().map(|c| c.to_string()).collect()
    })
}

/// The capabilities every container gets, in Docker's order.
pub const DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const ALL: &str = "ALL";

/// Upper-cases `caps` and adds the `CAP_` prefix where missing; `ALL` stays as it is.
/// An unknown name is `unknown capability: "CAP_X"`.
pub fn normalize(caps: &[String]) -> Result<Vec<String>> {
    caps.iter()
        .map(|c| {
            let c = c.to_uppercase();
            if c == ALL {
                return Ok(c);
            }
            let c = if c.starts_with("CAP_") {
                c
            } else {
                format!("CAP_{c}")
            };
            if known().contains(&c) {
                Ok(c)
            } else {
                Err(invalid(format!("unknown capability: {c:?}")))
            }
        })
        .collect()
}

/// The container's capability set. `available` is what this host can grant (the
/// engine's own effective set): privileged containers and `--cap-add ALL` get all of it,
/// and asking for anything outside it is an error, as with Docker.
pub fn effective(
    adds: &[String],
    drops: &[String],
    privileged: bool,
    available: &[String],
) -> Result<Vec<String>> {
    if privileged {
        return Ok(available.to_vec());
    }
    let adds = normalize(adds).map_err(|e| invalid(format!("invalid CapAdd: {e}")))?;
    let drops = normalize(drops).map_err(|e| invalid(format!("invalid CapDrop: {e}")))?;
    let has_all = |list: &[String]| list.iter().any(|c| c == ALL);
    let mut caps: Vec<String> = if has_all(&adds) {
        available
            .iter()
            .filter(|c| !drops.contains(c))
            .cloned()
            .collect()
    } else if has_all(&drops) {
        adds
    } else {
        let mut caps: Vec<String> = DEFAULT
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drops.contains(c))
            .collect();
        caps.extend(adds);
        caps
    };
    let mut seen = std::collections::HashSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    if let Some(missing) = caps.iter().find(|c| !available.contains(c)) {
        return Err(invalid(format!(
            "capability not supported by your kernel or not available in the current environment: {missing:?}"
        )));
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|c| c.to_string()).collect()
    }

    fn all() -> Vec<String> {
        known().to_vec()
    }

    #[test]
    fn defaults_without_options() {
        assert_eq!(effective(&[], &[], false, &all()).unwrap(), s(&DEFAULT));
    }

    #[test]
    fn add_and_drop_accept_any_case_and_prefix() {
        let caps = effective(
            &s(&["net_admin", "CAP_sys_time"]),
            &s(&["chown", "CAP_KILL"]),
            false,
            &all(),
        )
        .unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(caps.contains(&"CAP_SYS_TIME".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert!(!caps.contains(&"CAP_KILL".to_string()));
        assert_eq!(caps.len(), 14);
    }

    #[test]
    fn drop_all_keeps_only_adds() {
        assert_eq!(
            effective(&s(&["NET_ADMIN"]), &s(&["all"]), false, &all()).unwrap(),
            s(&["CAP_NET_ADMIN"])
        );
        assert!(effective(&[], &s(&["ALL"]), false, &all())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn add_all_takes_what_is_available_minus_drops() {
        let available = s(&["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"]);
        assert_eq!(
            effective(&s(&["ALL"]), &s(&["KILL"]), false, &available).unwrap(),
            s(&["CAP_CHOWN", "CAP_SYS_ADMIN"])
        );
    }

    #[test]
    fn privileged_gets_everything_available() {
        let available = s(&["CAP_CHOWN", "CAP_SYS_ADMIN"]);
        assert_eq!(
            effective(&s(&["bogus"]), &[], true, &available).unwrap(),
            available
        );
    }

    #[test]
    fn unknown_and_unavailable_are_errors() {
        let e = effective(&s(&["NET_FROB"]), &[], false, &all())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid CapAdd: unknown capability: \"CAP_NET_FROB\"");
        let e = effective(&[], &s(&["bad"]), false, &all())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid CapDrop: unknown capability: \"CAP_BAD\"");
        let mut available = all();
        available.retain(|c| c != "CAP_SYS_RESOURCE");
        let e = effective(&s(&["SYS_RESOURCE"]), &[], false, &available)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not available in the current environment: \"CAP_SYS_RESOURCE\""),
            "{e}"
        );
    }

    #[test]
    fn duplicates_collapse() {
        let caps = effective(&s(&["CHOWN", "chown"]), &[], false, &all()).unwrap();
        assert_eq!(caps.iter().filter(|c| *c == "CAP_CHOWN").count(), 1);
    }
}
