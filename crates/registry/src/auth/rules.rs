//! Per-repository rules: the first rule whose pattern matches a repository name decides
//! who may pull, push and delete there; no matching rule means nobody may.

use crate::config::Rule;
use crate::hooks::Action;

/// What one caller may do in one repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowed {
    pub pull: bool,
    pub push: bool,
    pub delete: bool,
}

impl Allowed {
    pub fn permits(self, action: Action) -> bool {
        match action {
            Action::Pull => self.pull,
            Action::Push => self.push,
            Action::Delete => self.delete,
        }
    }
}

/// The configured rules, in order.
#[derive(Debug, Clone)]
pub struct Rules(Vec<Rule>);

impl Rules {
    pub fn new(rules: Vec<Rule>) -> Rules {
        Rules(rules)
    }

    /// What `user` (`None`: anonymous) may do in `repository`. Whoever may push or delete
    /// may also pull, as pushing needs to look at what is there.
    pub fn allowed(&self, user: Option<&str>, repository: &str) -> Allowed {
        let Some(rule) = self.0.iter().find(|r| glob_match(&r.pattern, repository)) else {
            return Allowed::default();
        };
        let listed = |list: &[String]| user.is_some_and(|u| list.iter().any(|x| x == "*" || x == u));
        let push = listed(&rule.push);
        let delete = match &rule.delete {
            Some(list) => listed(list),
            None => push,
        };
        let pull = rule.public || listed(&rule.pull) || push || delete;
        Allowed { pull, push, delete }
    }
}

/// Matches `name` against a glob where `*` is any run of characters (`/` included) and
/// `?` any one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was and how much of the name it had taken when we last backtracked.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "a/b/c"));
        assert!(glob_match("library/*", "library/busybox"));
        assert!(glob_match("library/*", "library/a/b"));
        assert!(!glob_match("library/*", "library"));
        assert!(!glob_match("library/*", "other/library/x"));
        assert!(glob_match("*/app", "team/app"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    fn rule(pattern: &str, public: bool, pull: &[&str], push: &[&str], delete: Option<&[&str]>) -> Rule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Rule { pattern: pattern.into(), public, pull: v(pull), push: v(push), delete: delete.map(v) }
    }

    #[test]
    fn first_match_decides() {
        let rules = Rules::new(vec![
            rule("library/*", true, &[], &["alice"], None),
            rule("team/*", false, &["*"], &["bob"], Some(&[])),
            rule("*", false, &["alice"], &[], None),
        ]);
        let all = Allowed { pull: true, push: true, delete: true };
        assert_eq!(rules.allowed(None, "library/x"), Allowed { pull: true, ..Default::default() });
        assert_eq!(rules.allowed(Some("alice"), "library/x"), all);
        assert_eq!(rules.allowed(Some("bob"), "library/x"), Allowed { pull: true, ..Default::default() });
        assert_eq!(rules.allowed(None, "team/x"), Allowed::default());
        assert_eq!(rules.allowed(Some("carol"), "team/x"), Allowed { pull: true, ..Default::default() });
        assert_eq!(rules.allowed(Some("bob"), "team/x"), Allowed { pull: true, push: true, delete: false });
        assert_eq!(rules.allowed(Some("alice"), "other"), Allowed { pull: true, ..Default::default() });
        assert_eq!(rules.allowed(Some("bob"), "other"), Allowed::default());
        assert_eq!(Rules::new(vec![]).allowed(Some("alice"), "x"), Allowed::default());
    }
}
