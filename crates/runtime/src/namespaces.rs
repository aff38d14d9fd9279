//! Namespace kinds: names, clone flags and /proc/<pid>/ns file names.

use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxNamespaceType as T;

/// The name used in error messages and in `/proc/<pid>/ns/`.
pub fn name(t: T) -> &'static str {
    match t {
        T::Mount => "mnt",
        T::Cgroup => "cgroup",
        T::Uts => "uts",
        T::Ipc => "ipc",
        T::User => "user",
        T::Pid => "pid",
        T::Network => "net",
        T::Time => "time",
    }
}

pub fn clone_flag(t: T) -> CloneFlags {
    match t {
        T::Mount => CloneFlags::CLONE_NEWNS,
        T::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        T::Uts => CloneFlags::CLONE_NEWUTS,
        T::Ipc => CloneFlags::CLONE_NEWIPC,
        T::User => CloneFlags::CLONE_NEWUSER,
        T::Pid => CloneFlags::CLONE_NEWPID,
        T::Network => CloneFlags::CLONE_NEWNET,
        // CLONE_NEWTIME shares its value with CSIGNAL bits in clone(); unshare takes it.
        T::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The order in which to join existing namespaces: user first (it decides what we may
/// do in the others), mount last (it changes how paths resolve).
pub fn join_order(t: T) -> u8 {
    match t {
        T::User => 0,
        T::Mount => 9,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_user_first_mount_last() {
        let mut v = [T::Mount, T::Network, T::User, T::Pid];
        v.sort_by_key(|t| join_order(*t));
        assert_eq!(v[0], T::User);
        assert_eq!(v[3], T::Mount);
        assert_eq!(name(T::Network), "net");
    }
}
