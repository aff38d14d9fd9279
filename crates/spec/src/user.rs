//! `--user` and `--group-add` resolved against the image's /etc/passwd and /etc/group,
//! read inside the rootfs so that a symlink in the image cannot point us at host files.

use crate::error::{invalid, Error, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io::Read;
use std::path::Path;

/// The process identity a container runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// The primary gid first, then the groups listing the user, then `--group-add`.
    pub additional_gids: Vec<u32>,
    /// The home directory from /etc/passwd, when the user has an entry.
    pub home: Option<String>,
}

/// Larger passwd/group files than this are refused rather than read into memory.
const MAX_FILE: u64 = 16 << 20;
const MAX_ID: i64 = i32::MAX as i64;

fn range_error() -> Error {
    invalid(format!("uids and gids must be in range 0-{MAX_ID}"))
}

/// Resolves `user` (`name`, `uid`, `uid:gid`, `name:group`, or empty for root) the way
/// Docker does: names must exist in the image's /etc/passwd (or /etc/group), numeric ids
/// need no entry; a user matched by name or id gets the groups that list it as a member.
pub fn resolve_user(rootfs: &Path, user: &str, group_add: &[String]) -> Result<User> {
    let mut parts = user.split(':');
    let user_arg = parts.next().unwrap_or_default();
    let group_arg = parts.next().unwrap_or_default();
    let uid_num = parse_numeric(user_arg)?;
    let gid_num = parse_numeric(group_arg)?;

    let root = open_root(rootfs)?;
    let passwd = read_in_root(&root, "etc/passwd")?
        .map(|t| parse_passwd(&t))
        .unwrap_or_default();
    let groups = read_in_root(&root, "etc/group")?
        .map(|t| parse_group(&t))
        .unwrap_or_default();

    let (mut uid, mut gid, mut home, mut matched) = (0i64, 0i64, None, None);
    let found = passwd.iter().find(|u| match uid_num {
        _ if user_arg.is_empty() => u.uid == 0,
        Some(n) => u.uid == n,
        None => u.name == user_arg,
    });
    if let Some(u) = found {
        (uid, gid, home, matched) = (u.uid, u.gid, Some(u.home.clone()), Some(u.name.as_str()));
    } else if !user_arg.is_empty() {
        uid = uid_num.ok_or_else(|| {
            invalid(format!(
                "unable to find user {user_arg}: no matching entries in passwd file"
            ))
        })?;
    }

    let mut sgids = Vec::new();
    if !group_arg.is_empty() {
        let g = groups.iter().find(|g| match gid_num {
            Some(n) => g.gid == n,
            None => g.name == group_arg,
        });
        gid = match (g, gid_num) {
            (Some(g), _) => g.gid,
            (None, Some(n)) => n,
            (None, None) => {
                return Err(invalid(format!(
                    "unable to find group {group_arg}: no matching entries in group file"
                )))
            }
        };
    } else if let Some(name) = matched {
        sgids = groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name))
            .map(|g| g.gid)
            .collect();
    }

    let mut added = Vec::new();
    for ag in group_add {
        let num = parse_numeric(ag)?;
        let g = groups.iter().find(|g| match num {
            Some(n) => g.gid == n,
            None => g.name == *ag,
        });
        added.push(match (g, num) {
            (Some(g), _) => g.gid,
            (None, Some(n)) => n,
            (None, None) => {
                return Err(invalid(format!(
                    "unable to find group {ag}: no matching entries in group file"
                )))
            }
        });
    }

    let id = |v: i64| {
        u32::try_from(v)
            .ok()
            .filter(|&v| i64::from(v) <= MAX_ID)
            .ok_or_else(range_error)
    };
    let mut additional_gids = Vec::new();
    for g in std::iter::once(gid).chain(sgids).chain(added) {
        let g = id(g)?;
        if !additional_gids.contains(&g) {
            additional_gids.push(g);
        }
    }
    Ok(User {
        uid: id(uid)?,
        gid: id(gid)?,
        additional_gids,
        home,
    })
}

/// A number within 0..=2^31-1, `None` for a name; out-of-range numbers are errors.
fn parse_numeric(v: &str) -> Result<Option<i64>> {
    if v.is_empty() {
        return Ok(None);
    }
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match v.parse::<i64>() {
        Ok(n) if (0..=MAX_ID).contains(&n) => Ok(Some(n)),
        _ => Err(range_error()),
    }
}

fn open_root(rootfs: &Path) -> Result<rustix::fd::OwnedFd> {
    rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::ReadRootfs {
        path: rootfs.display().to_string(),
        source: e.into(),
    })
}

/// Reads `path` with the rootfs as "/": `..` and absolute symlinks stay inside it.
/// `None` when the file does not exist.
fn read_in_root(root: &rustix::fd::OwnedFd, path: &str) -> Result<Option<String>> {
    let err = |e: std::io::Error| Error::ReadRootfs {
        path: format!("/{path}"),
        source: e,
    };
    let fd = match rustix::fs::openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(err(e.into())),
    };
    // A fifo or device planted in the image must not block or flood us.
    let st = rustix::fs::fstat(&fd).map_err(|e| err(e.into()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(err(std::io::Error::other("not a regular file")));
    }
    let mut text = String::new();
    let read = std::fs::File::from(fd)
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(err)?;
    if read as u64 > MAX_FILE {
        return Err(err(std::io::Error::other(format!(
            "larger than {MAX_FILE} bytes"
        ))));
    }
    Ok(Some(text))
}

struct PasswdEntry {
    name: String,
    uid: i64,
    gid: i64,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: i64,
    members: Vec<String>,
}

/// name:password:uid:gid:gecos:home:shell; malformed numbers count as 0, as in Docker.
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let field = |i: usize| f.get(i).copied().unwrap_or_default();
            PasswdEntry {
                name: field(0).to_string(),
                uid: field(2).parse().unwrap_or(0),
                gid: field(3).parse().unwrap_or(0),
                home: field(5).to_string(),
            }
        })
        .collect()
}

/// name:password:gid:member,member; comment lines are skipped.
fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let field = |i: usize| f.get(i).copied().unwrap_or_default();
            GroupEntry {
                name: field(0).to_string(),
                gid: field(2).parse().unwrap_or(0),
                members: field(3)
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
             test:x:1000:1000:test:/home/test:/bin/sh\n\
             \n  app:x:1001:1001::/srv/app:/bin/sh  \n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\n# comment\nwheel:x:10:test,app\nextra:x:2000:test\nnogroup:x:65534:\napp:x:1001:\n",
        )
        .unwrap();
        dir
    }

    fn resolve(user: &str, add: &[&str]) -> Result<User> {
        let dir = rootfs();
        let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
        resolve_user(dir.path(), user, &add)
    }

    #[test]
    fn root_by_default() {
        let u = resolve("", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids.clone()), (0, 0, vec![0]));
        assert_eq!(u.home.as_deref(), Some("/root"));
    }

    #[test]
    fn names_ids_and_groups() {
        let u = resolve("test", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![1000, 10, 2000]);
        assert_eq!(u.home.as_deref(), Some("/home/test"));

        let u = resolve("1000", &[]).unwrap();
        assert_eq!(
            u.additional_gids,
            vec![1000, 10, 2000],
            "uid matched in passwd counts as the user"
        );

        let u = resolve("test:extra", &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 2000, vec![2000]),
            "explicit group: no memberships"
        );

        let u = resolve("4242", &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone(), u.home.clone()),
            (4242, 0, vec![0], None)
        );

        let u = resolve("4242:4343", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 4343));

        let u = resolve("nobody:0", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (65534, 0));

        let u = resolve("app", &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1001, 1001, vec![1001, 10]),
            "whitespace around lines is trimmed"
        );
    }

    #[test]
    fn group_add() {
        let u = resolve("nobody", &["extra", "777", "wheel", "extra"]).unwrap();
        assert_eq!(u.additional_gids, vec![65534, 2000, 777, 10]);
        let e = resolve("nobody", &["nosuch"]).unwrap_err().to_string();
        assert_eq!(
            e,
            "unable to find group nosuch: no matching entries in group file"
        );
    }

    #[test]
    fn docker_errors() {
        assert_eq!(
            resolve("ghost", &[]).unwrap_err().to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        assert_eq!(
            resolve("test:ghosts", &[]).unwrap_err().to_string(),
            "unable to find group ghosts: no matching entries in group file"
        );
        assert_eq!(
            resolve("-1", &[]).unwrap_err().to_string(),
            "uids and gids must be in range 0-2147483647"
        );
        assert_eq!(
            resolve("2147483648", &[]).unwrap_err().to_string(),
            "uids and gids must be in range 0-2147483647"
        );
        assert_eq!(
            resolve("0:99999999999", &[]).unwrap_err().kind(),
            crate::ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn missing_files_allow_numeric_ids_only() {
        let dir = tempfile::tempdir().unwrap();
        let u = resolve_user(dir.path(), "12:34", &["56".into()]).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (12, 34, vec![34, 56]));
        let u = resolve_user(dir.path(), "", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert!(resolve_user(dir.path(), "root", &[]).is_err());
    }

    #[test]
    fn symlinks_stay_inside_the_rootfs() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "evil:x:0:0::/:/bin/sh\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        // Absolute and relative escapes both resolve inside the rootfs, where nothing is.
        std::os::unix::fs::symlink(outside.path().join("passwd"), dir.path().join("etc/passwd"))
            .unwrap();
        assert!(resolve_user(dir.path(), "evil", &[]).is_err());
        std::fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        let rel = format!(
            "../../../../../../../..{}",
            outside.path().join("passwd").display()
        );
        std::os::unix::fs::symlink(rel, dir.path().join("etc/passwd")).unwrap();
        assert!(resolve_user(dir.path(), "evil", &[]).is_err());
        // A link that stays inside works.
        std::fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        std::fs::write(dir.path().join("etc/real"), "svc:x:5:6::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/etc/real", dir.path().join("etc/passwd")).unwrap();
        assert_eq!(resolve_user(dir.path(), "svc", &[]).unwrap().uid, 5);
    }

    #[test]
    fn special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let fifo = dir.path().join("etc/passwd");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let e = resolve_user(dir.path(), "x", &[]).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
