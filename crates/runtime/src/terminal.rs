//! The container's terminal: a pty from the container's own devpts, its master handed to
//! the caller over the console socket (SCM_RIGHTS), its slave made the process's stdio.

use crate::error::{Error, Result};
use crate::fsutil::{ensure_in_root, fd_path, open_no_symlinks, Leaf};
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Opens a new pty from the devpts instance at `<root>/dev/pts`. The ptmx is opened
/// without following symlinks and checked to be 5:2, and the slave comes from the master
/// (TIOCGPTPEER), so a rootfs that swaps /dev/pts/N for a symlink reaches nothing.
pub fn open_pty(root: &OwnedFd) -> Result<Pty> {
    let ptmx = open_no_symlinks(root, Path::new("/dev/pts/ptmx"), OFlag::O_RDWR | OFlag::O_NOCTTY)
        .map_err(|e| Error::path("open", "/dev/pts/ptmx", e))?;
    let st = nix::sys::stat::fstat(&ptmx).map_err(|e| Error::path("stat", "/dev/pts/ptmx", e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != nix::sys::stat::makedev(5, 2) {
        return Err(Error::Other("/dev/pts/ptmx in the container is not a pty multiplexer".into()));
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which outlives the call.
    if unsafe { libc::ioctl(ptmx.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(Error::Sys { op: "unlock pty".into(), source: std::io::Error::last_os_error() });
    }
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new fd.
    let slave = unsafe { libc::ioctl(ptmx.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if slave < 0 {
        return Err(Error::Sys { op: "open pty peer".into(), source: std::io::Error::last_os_error() });
    }
    // SAFETY: the ioctl just returned this fd and nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    Ok(Pty { master: ptmx, slave })
}

/// Bind-mounts the pty slave onto the rootfs's /dev/console, refusing a symlink there.
pub fn mount_console(root: &OwnedFd, slave: &OwnedFd) -> Result<()> {
    let console = Path::new("/dev/console");
    let target = match open_no_symlinks(root, console, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
        // O_PATH|O_NOFOLLOW opens a trailing symlink itself instead of failing with ELOOP.
        Ok(fd) if crate::fsutil::file_type(&fd).map_err(|e| Error::path("stat", console, e))? == nix::sys::stat::SFlag::S_IFLNK => {
            return Err(Error::InvalidSpec("/dev/console in the rootfs is a symlink".into()))
        }
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => ensure_in_root(root, console, Leaf::File)?,
        Err(nix::errno::Errno::ELOOP) => {
            return Err(Error::InvalidSpec("/dev/console in the rootfs is a symlink".into()))
        }
        Err(e) => return Err(Error::path("open", console, e)),
    };
    mount(Some(&fd_path(slave)), &fd_path(&target), None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| Error::path("mount", console, e))
}

/// Sends the master to whoever listens on the console socket, as runc does.
pub fn send_master(socket: &OwnedFd, master: &OwnedFd) -> Result<()> {
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let name = b"/dev/ptmx";
    let iov = [IoSlice::new(name)];
    sendmsg::<UnixAddr>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| Error::sys("send pty master over console socket", e))?;
    Ok(())
}

/// Makes `slave` the controlling terminal and stdio of a new session.
pub fn become_stdio(slave: &OwnedFd, size: Option<(u16, u16)>) -> Result<()> {
    nix::unistd::setsid().map_err(|e| Error::sys("setsid", e))?;
    // SAFETY: TIOCSCTTY takes an int argument by value.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::Sys { op: "set controlling terminal".into(), source: std::io::Error::last_os_error() });
    }
    if let Some((rows, cols)) = size {
        set_size(slave.as_raw_fd(), rows, cols);
    }
    for target in 0..3 {
        // SAFETY: dup2 on valid fd numbers.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(Error::Sys { op: "dup2 pty".into(), source: std::io::Error::last_os_error() });
        }
    }
    Ok(())
}

pub fn set_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which outlives the call.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

/// Connects to the caller's console socket.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType};
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| Error::sys("console socket", e))?;
    let addr = UnixAddr::new(path).map_err(|e| Error::path("console socket address", path, e))?;
    connect(fd.as_raw_fd(), &addr).map_err(|e| Error::path("connect to console socket", path, e))?;
    Ok(fd)
}

/// Receives a pty master sent with SCM_RIGHTS (used by `run` and `exec` with a terminal
/// when no console socket is given).
pub fn recv_master(socket: &OwnedFd) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| Error::sys("receive pty master", e))?;
    for c in msg.cmsgs().map_err(|e| Error::sys("receive pty master", e))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::Other("console socket: no pty master received".into()))
}
