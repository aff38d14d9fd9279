//! The channel between the runtime and the process it starts: small tagged messages over
//! a SOCK_SEQPACKET socketpair, so each message arrives whole or not at all.

use crate::error::{Error, Result};
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// parent → child: cgroup joined, id mappings written; carry on.
    Go = 1,
    /// child → parent: mounts are done; run the createRuntime/prestart hooks.
    HooksRequest = 2,
    /// parent → child: hooks ran.
    HooksDone = 3,
    /// child → parent: ready and waiting to be started.
    Created = 4,
    /// parent → child: start now (used by `run`, which needs no exec fifo).
    Start = 5,
    /// child → parent: a process id (from an intermediate process).
    Pid = 6,
    /// child → parent: setup failed; payload is the message.
    Error = 7,
}

pub struct Channel(pub OwnedFd);

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::sys("socketpair", e))?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn try_clone(&self) -> Option<Channel> {
        self.0.try_clone().ok().map(Channel)
    }

    pub fn send(&self, tag: Tag, payload: &[u8]) -> Result<()> {
        let mut buf = Vec::with_capacity(payload.len() + 1);
        buf.push(tag as u8);
        buf.extend_from_slice(payload);
        send(self.0.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL).map_err(|e| Error::sys("sync send", e))?;
        Ok(())
    }

    /// Receives one message; `None` when the other side closed (exited or exec'd).
    pub fn recv(&self) -> Result<Option<(Tag, Vec<u8>)>> {
        let mut buf = vec![0u8; 4096];
        let n = loop {
            match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.map_err(|e| Error::sys("sync recv", e))?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let tag = match buf[0] {
            1 => Tag::Go,
            2 => Tag::HooksRequest,
            3 => Tag::HooksDone,
            4 => Tag::Created,
            5 => Tag::Start,
            6 => Tag::Pid,
            7 => Tag::Error,
            other => return Err(Error::Other(format!("sync: unknown message {other}"))),
        };
        Ok(Some((tag, buf[1..n].to_vec())))
    }

    /// Waits for `want`; an Error message from the child becomes our error.
    pub fn expect(&self, want: Tag) -> Result<Vec<u8>> {
        match self.recv()? {
            Some((t, p)) if t == want => Ok(p),
            Some((Tag::Error, msg)) => Err(Error::Other(String::from_utf8_lossy(&msg).into_owned())),
            Some((t, _)) => Err(Error::Other(format!("sync: expected {want:?}, got {t:?}"))),
            None => Err(Error::Other(format!("sync: process exited before {want:?}"))),
        }
    }
}
