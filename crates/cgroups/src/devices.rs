//! Device access rules: conversion from OCI, an emulator of the v1 devices controller
//! (so v1 and v2 enforce the same thing), minimal v1 transitions, and v1 rule strings.

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// Device node type a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum DevType {
    Block,
    Char,
}

impl DevType {
    fn letter(self) -> char {
        match self {
            DevType::Block => 'b',
            DevType::Char => 'c',
        }
    }
}

/// Access bits, using the kernel's BPF_DEVCG_ACC_* values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Perms(pub u8);

impl Perms {
    pub const MKNOD: u8 = 1;
    pub const READ: u8 = 2;
    pub const WRITE: u8 = 4;
    pub const ALL: Perms = Perms(7);

    pub fn parse(s: &str) -> Option<Perms> {
        let mut bits = 0;
        for c in s.chars() {
            bits |= match c {
                'r' => Self::READ,
                'w' => Self::WRITE,
                'm' => Self::MKNOD,
                _ => return None,
            };
        }
        Some(Perms(bits))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn union(self, o: Perms) -> Perms {
        Perms(self.0 | o.0)
    }

    fn minus(self, o: Perms) -> Perms {
        Perms(self.0 & !o.0)
    }

    fn intersects(self, o: Perms) -> bool {
        self.0 & o.0 != 0
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [(Self::READ, 'r'), (Self::WRITE, 'w'), (Self::MKNOD, 'm')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// The device(s) a rule matches. `None` is a wildcard. Field order gives runc's
/// (major, minor, type) sort order, with wildcards first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Meta {
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub typ: DevType,
}

/// One rule: `meta == None` is the "a" (all devices) rule that resets the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub allow: bool,
    pub meta: Option<Meta>,
    pub perms: Perms,
}

fn num(n: Option<u32>) -> String {
    n.map_or_else(|| "*".to_string(), |v| v.to_string())
}

impl Rule {
    /// The v1 devices.allow/devices.deny line, e.g. "c 1:3 rwm".
    pub fn cgroup_string(&self) -> String {
        match self.meta {
            None => "a *:* rwm".to_string(),
            Some(m) => format!(
                "{} {}:{} {}",
                m.typ.letter(),
                num(m.major),
                num(m.minor),
                self.perms
            ),
        }
    }

    /// Converts an OCI rule. Missing type means "a" (as runc); missing access means "rwm".
    pub fn from_oci(d: &LinuxDeviceCgroup) -> Result<Rule> {
        let describe = || {
            format!(
                "{{allow: {}, type: {}, major: {}, minor: {}, access: {}}}",
                d.allow(),
                d.typ()
                    .map_or_else(|| "a".to_string(), |t| t.as_str().to_string()),
                d.major().map_or("*".into(), |v| v.to_string()),
                d.minor().map_or("*".into(), |v| v.to_string()),
                d.access().as_deref().unwrap_or("rwm"),
            )
        };
        let bad = |reason: &str| Error::DeviceRule {
            rule: describe(),
            reason: reason.to_string(),
        };
        let perms = match d.access().as_deref() {
            None => Perms::ALL,
            Some(a) => Perms::parse(a).ok_or_else(|| bad("access may only contain r, w and m"))?,
        };
        let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => {
                return Ok(Rule {
                    allow: d.allow(),
                    meta: None,
                    perms: Perms::ALL,
                })
            }
            LinuxDeviceType::B => DevType::Block,
            // "u" (unbuffered) nodes are character devices.
            LinuxDeviceType::C | LinuxDeviceType::U => DevType::Char,
            LinuxDeviceType::P => {
                return Err(bad(
                    "fifo (p) rules are not supported by the devices controller",
                ))
            }
        };
        let conv = |v: Option<i64>, what: &str| -> Result<Option<u32>> {
            match v {
                None => Ok(None),
                Some(n) if n < 0 => Ok(None),
                // Linux device numbers fit easily; the bound keeps BPF immediates positive.
                Some(n) => match i32::try_from(n) {
                    Ok(v) => Ok(Some(v as u32)),
                    Err(_) => Err(bad(&format!("{what} number out of range"))),
                },
            }
        };
        Ok(Rule {
            allow: d.allow(),
            meta: Some(Meta {
                major: conv(d.major(), "major")?,
                minor: conv(d.minor(), "minor")?,
                typ,
            }),
            perms,
        })
    }
}

/// State of a v1 devices cgroup: a default action and exceptions to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Emulator {
    pub default_allow: bool,
    pub rules: BTreeMap<Meta, Perms>,
}

impl Emulator {
    /// A deny-all cgroup: the starting point for an OCI rule list.
    pub fn deny_all() -> Emulator {
        Emulator::default()
    }

    /// Builds the state an OCI rule list produces, starting from deny-all.
    pub fn from_rules(rules: &[Rule]) -> Result<Emulator> {
        let mut e = Emulator::deny_all();
        for r in rules {
            e.apply(r)?;
        }
        Ok(e)
    }

    /// Applies one rule with the v1 controller's semantics.
    pub fn apply(&mut self, rule: &Rule) -> Result<()> {
        let Some(meta) = rule.meta else {
            *self = Emulator {
                default_allow: rule.allow,
                rules: BTreeMap::new(),
            };
            return Ok(());
        };
        if rule.allow == self.default_allow {
            // Same action as the default: it removes a matching exception.
            self.remove(rule, meta)
        } else {
            let e = self.rules.entry(meta).or_default();
            *e = e.union(rule.perms);
            Ok(())
        }
    }

    fn remove(&mut self, rule: &Rule, meta: Meta) -> Result<()> {
        // The kernel silently ignores removals that only partially overlap a wildcard
        // exception; refuse them so a rule list never means less than it says.
        for partial in [
            Meta {
                major: None,
                ..meta
            },
            Meta {
                minor: None,
                ..meta
            },
            Meta {
                major: None,
                minor: None,
                ..meta
            },
        ] {
            if partial == meta {
                continue;
            }
            if let Some(p) = self.rules.get(&partial) {
                if p.intersects(rule.perms) {
                    return Err(Error::DeviceRule {
                        rule: rule.cgroup_string(),
                        reason: format!(
                            "cannot punch a hole in the wildcard rule {}",
                            Rule {
                                allow: !self.default_allow,
                                meta: Some(partial),
                                perms: *p
                            }
                            .cgroup_string()
                        ),
                    });
                }
            }
        }
        if let Some(p) = self.rules.get_mut(&meta) {
            *p = p.minus(rule.perms);
            if p.is_empty() {
                self.rules.remove(&meta);
            }
        }
        Ok(())
    }

    /// Parses a v1 devices.list. Allow-all cgroups list only "a *:* rwm" (their deny
    /// exceptions are invisible), so they come back as allow-all with no exceptions.
    pub fn from_list(text: &str) -> std::result::Result<Emulator, String> {
        let mut e = Emulator::deny_all();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split([' ', ':']).filter(|s| !s.is_empty()).collect();
            let [t, major, minor, perms] = fields[..] else {
                return Err(format!("malformed line {line:?}"));
            };
            let typ = match t {
                "a" => {
                    e = Emulator {
                        default_allow: true,
                        rules: BTreeMap::new(),
                    };
                    continue;
                }
                "b" => DevType::Block,
                "c" => DevType::Char,
                _ => return Err(format!("unknown device type in {line:?}")),
            };
            let n = |s: &str| -> std::result::Result<Option<u32>, String> {
                if s == "*" {
                    Ok(None)
                } else {
                    s.parse()
                        .map(Some)
                        .map_err(|_| format!("bad number in {line:?}"))
                }
            };
            let perms = Perms::parse(perms)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| format!("bad access in {line:?}"))?;
            let meta = Meta {
                major: n(major)?,
                minor: n(minor)?,
                typ,
            };
            if !e.default_allow {
                let p = e.rules.entry(meta).or_default();
                *p = p.union(perms);
            }
        }
        Ok(e)
    }

    /// The least disruptive rules that turn `self` into `target`.
    pub fn transition(&self, target: &Emulator) -> Vec<Rule> {
        let mut out = Vec::new();
        let empty = BTreeMap::new();
        let mut old = &self.rules;
        // An allow-all source hides its exceptions, so it always needs a reset.
        if self.default_allow || self.default_allow != target.default_allow {
            out.push(Rule {
                allow: target.default_allow,
                meta: None,
                perms: Perms::ALL,
            });
            old = &empty;
        }
        for (meta, old_perms) in old {
            let new_perms = target.rules.get(meta).copied().unwrap_or_default();
            let dropped = old_perms.minus(new_perms);
            if !dropped.is_empty() {
                out.push(Rule {
                    allow: target.default_allow,
                    meta: Some(*meta),
                    perms: dropped,
                });
            }
        }
        for (meta, new_perms) in &target.rules {
            let old_perms = old.get(meta).copied().unwrap_or_default();
            let gained = new_perms.minus(old_perms);
            if !gained.is_empty() {
                out.push(Rule {
                    allow: !target.default_allow,
                    meta: Some(*meta),
                    perms: gained,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    pub(crate) fn rule(
        allow: bool,
        t: char,
        major: Option<u32>,
        minor: Option<u32>,
        p: &str,
    ) -> Rule {
        Rule {
            allow,
            meta: match t {
                'a' => None,
                'b' => Some(Meta {
                    major,
                    minor,
                    typ: DevType::Block,
                }),
                _ => Some(Meta {
                    major,
                    minor,
                    typ: DevType::Char,
                }),
            },
            perms: Perms::parse(p).unwrap(),
        }
    }

    #[test]
    fn formats_v1_rule_strings() {
        assert_eq!(
            rule(true, 'c', Some(1), Some(3), "rwm").cgroup_string(),
            "c 1:3 rwm"
        );
        assert_eq!(
            rule(true, 'b', None, Some(0), "mr").cgroup_string(),
            "b *:0 rm"
        );
        assert_eq!(
            rule(false, 'c', Some(136), None, "w").cgroup_string(),
            "c 136:* w"
        );
        assert_eq!(
            rule(false, 'a', None, None, "r").cgroup_string(),
            "a *:* rwm"
        );
    }

    #[test]
    fn converts_oci_rules() {
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rw")
            .build()
            .unwrap();
        assert_eq!(Rule::from_oci(&d).unwrap().cgroup_string(), "c 1:3 rw");
        // No type means all devices, as runc reads the spec.
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .build()
            .unwrap();
        assert_eq!(
            Rule::from_oci(&d).unwrap(),
            rule(false, 'a', None, None, "rwm")
        );
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::B)
            .major(-1)
            .build()
            .unwrap();
        assert_eq!(Rule::from_oci(&d).unwrap().cgroup_string(), "b *:* rwm");
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .access("rx")
            .build()
            .unwrap();
        let e = Rule::from_oci(&d).unwrap_err().to_string();
        assert!(e.contains("access may only contain"), "{e}");
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::P)
            .build()
            .unwrap();
        assert!(Rule::from_oci(&d).is_err());
    }

    #[test]
    fn emulator_follows_v1_semantics() {
        let rules = [
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(true, 'c', Some(1), Some(5), "r"),
            rule(true, 'c', Some(1), Some(5), "w"),
            rule(false, 'c', Some(1), Some(3), "m"),
            rule(true, 'c', Some(136), None, "rwm"),
        ];
        let e = Emulator::from_rules(&rules).unwrap();
        assert!(!e.default_allow);
        let got: Vec<String> = e
            .transition(&e.clone())
            .iter()
            .map(|r| r.cgroup_string())
            .collect();
        assert!(got.is_empty(), "{got:?}");
        let from_empty: Vec<String> = Emulator::deny_all()
            .transition(&e)
            .iter()
            .map(|r| r.cgroup_string())
            .collect();
        assert_eq!(from_empty, ["c 1:3 rw", "c 1:5 rw", "c 136:* rwm"]);
    }

    #[test]
    fn emulator_rejects_hole_in_wildcard() {
        let rules = [
            rule(true, 'c', None, None, "rwm"),
            rule(false, 'c', Some(1), Some(3), "r"),
        ];
        let err = Emulator::from_rules(&rules).unwrap_err().to_string();
        assert!(err.contains("cannot punch a hole"), "{err}");
    }

    #[test]
    fn a_rule_resets_everything() {
        let rules = [
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(true, 'a', None, None, "r"),
            rule(false, 'b', Some(8), Some(0), "w"),
        ];
        let e = Emulator::from_rules(&rules).unwrap();
        assert!(e.default_allow);
        assert_eq!(e.rules.len(), 1);
    }

    #[test]
    fn transition_from_fresh_v1_cgroup_resets_then_allows() {
        let cur = Emulator::from_list("a *:* rwm\n").unwrap();
        assert!(cur.default_allow);
        let target = Emulator::from_rules(&[
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'c', Some(1), Some(3), "rwm"),
        ])
        .unwrap();
        let t = cur.transition(&target);
        assert_eq!(t.len(), 2);
        assert!(!t[0].allow && t[0].meta.is_none());
        assert!(t[1].allow);
        assert_eq!(t[1].cgroup_string(), "c 1:3 rwm");
    }

    #[test]
    fn transition_between_allow_lists_is_minimal() {
        let cur = Emulator::from_list("c 1:3 rwm\nc 1:5 rwm\nb *:* m\n").unwrap();
        let target = Emulator::from_rules(&[
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(true, 'c', Some(1), Some(5), "r"),
            rule(true, 'c', Some(1), Some(7), "rw"),
        ])
        .unwrap();
        let t: Vec<(bool, String)> = cur
            .transition(&target)
            .iter()
            .map(|r| (r.allow, r.cgroup_string()))
            .collect();
        assert_eq!(
            t,
            [
                (false, "b *:* m".to_string()),
                (false, "c 1:5 wm".to_string()),
                (true, "c 1:7 rw".to_string()),
            ]
        );
    }
}
