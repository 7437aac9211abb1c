//! The typed parent↔child handshake: one `SOCK_SEQPACKET` socket pair, close-on-exec at both
//! ends, carrying fixed-size [`Message`]s from the child to the parent:
//!
//! - `Listener`: the runtime API socket the child made in its network namespace (`SCM_RIGHTS`);
//! - `Failed`: the step that failed, an index within it (which mount) and the `errno`;
//! - `Ready`: a sandbox made ahead (`ready.rs`) is set up and waits for its program;
//! - `Exec`: set-up is done and the child is about to `execve` its program.
//!
//! and one message from the parent to a sandbox made ahead, [`Program`]: what to run (argv,
//! environment as NUL-terminated strings) with the code and runtime directories as
//! detached read-only mounts and the output pipe (`SCM_RIGHTS`).
//!
//! Success is `Exec`, then end-of-file (`execve` closed the child's end); end-of-file without
//! `Exec` is a child that ended during set-up without a failed step (killed from outside).
//! The child's side ([`ChildChannel`]) uses stack buffers and raw `sendmsg` only, as it runs
//! between `clone` and `execve`.

use crate::{SandboxError, SetupStep};
use libc::c_int;
use nix::errno::Errno;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Bytes in every message: tag, a, b as native-endian 32-bit words.
const MSG_LEN: usize = 12;
const TAG_LISTENER: u32 = 1;
const TAG_FAILED: u32 = 2;
const TAG_READY: u32 = 3;
const TAG_PROGRAM: u32 = 4;
const TAG_EXEC: u32 = 5;
/// Header of a program message: tag, argc, envc, length of the strings.
const PROGRAM_HEADER: usize = 16;
/// Largest program message (argv and environment): Lambda allows 4 KB of environment.
pub(crate) const PROGRAM_MAX: usize = 64 * 1024;
/// Descriptors passed with a program: code mount, runtime mount, output pipe, stdin.
const PROGRAM_FDS: usize = 4;

/// What the child tells the parent.
#[derive(Debug)]
pub(crate) enum Message {
    /// The listening runtime API socket, bound inside the sandbox's network namespace.
    Listener(OwnedFd),
    /// Set-up failed at `step` (`index` says which mount, for mounts) with `errno`.
    Failed {
        step: SetupStep,
        index: u32,
        errno: Errno,
    },
    /// A sandbox made ahead finished its set-up and waits for its program.
    Ready,
    /// Set-up is done: the child is about to `execve` its program.
    Exec,
}

/// What a sandbox made ahead runs, as the child receives it (into memory it mapped itself).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Program {
    pub argc: usize,
    pub envc: usize,
    /// Bytes of NUL-terminated strings at the start of the receive buffer: argv, then envp.
    pub len: usize,
    /// Code mount, runtime mount, output pipe, stdin.
    pub fds: [c_int; PROGRAM_FDS],
}

fn encode(tag: u32, a: u32, b: i32) -> [u8; MSG_LEN] {
    let mut buf = [0u8; MSG_LEN];
    buf[0..4].copy_from_slice(&tag.to_ne_bytes());
    buf[4..8].copy_from_slice(&a.to_ne_bytes());
    buf[8..12].copy_from_slice(&b.to_ne_bytes());
    buf
}

fn word(buf: &[u8; MSG_LEN], at: usize) -> [u8; 4] {
    [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
}

/// Space for up to three file descriptors' control message, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct FdControl([u8; 32]);

/// Creates the pair: the parent keeps the first end, the child uses the second.
pub(crate) fn pair() -> io::Result<(ParentEnd, OwnedFd)> {
    let (parent, child) = seqpacket_pair()?;
    Ok((ParentEnd(parent), child))
}

/// A connected `SOCK_SEQPACKET` pair, close-on-exec at both ends.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)
}

/// The child's end, used between `clone` and `execve`: async-signal-safe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildChannel(pub(crate) RawFd);

impl ChildChannel {
    /// Sends the listening socket. Returns the `errno` of a failed `sendmsg`.
    pub(crate) fn send_listener(self, listener: RawFd) -> Result<(), c_int> {
        let msg = encode(TAG_LISTENER, 0, 0);
        let mut control = FdControl([0; 32]);
        let mut iov = libc::iovec {
            iov_base: msg.as_ptr() as *mut libc::c_void,
            iov_len: MSG_LEN,
        };
        // SAFETY: a zeroed msghdr is valid; every pointer set below points at live stack data,
        // and the control buffer is large enough and aligned for one `int`'s cmsghdr.
        unsafe {
            let mut hdr: libc::msghdr = std::mem::zeroed();
            hdr.msg_iov = &mut iov;
            hdr.msg_iovlen = 1;
            hdr.msg_control = control.0.as_mut_ptr().cast();
            hdr.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), listener);
            if libc::sendmsg(self.0, &hdr, libc::MSG_NOSIGNAL) < 0 {
                return Err(*libc::__errno_location());
            }
        }
        Ok(())
    }

    /// Says set-up is done and the sandbox waits for its program.
    pub(crate) fn send_ready(self) -> Result<(), c_int> {
        self.send_tag(TAG_READY)
    }

    /// Says set-up is done and the program is about to be `execve`d.
    pub(crate) fn send_exec(self) -> Result<(), c_int> {
        self.send_tag(TAG_EXEC)
    }

    fn send_tag(self, tag: u32) -> Result<(), c_int> {
        let msg = encode(tag, 0, 0);
        // SAFETY: sending a stack buffer on a descriptor we own.
        let rc = unsafe { libc::send(self.0, msg.as_ptr().cast(), MSG_LEN, libc::MSG_NOSIGNAL) };
        if rc < 0 {
            // SAFETY: reading this thread's errno.
            return Err(unsafe { *libc::__errno_location() });
        }
        Ok(())
    }

    /// Waits for the program, receiving its strings into `buf` (the header is stripped).
    /// `Ok(None)`: the host closed its end (it stopped, or dropped this sandbox).
    pub(crate) fn recv_program(self, buf: &mut [u8]) -> Result<Option<Program>, c_int> {
        let mut header = [0u8; PROGRAM_HEADER];
        let mut control = FdControl([0; 32]);
        let mut iov = [
            libc::iovec {
                iov_base: header.as_mut_ptr().cast(),
                iov_len: PROGRAM_HEADER,
            },
            libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            },
        ];
        // SAFETY: a zeroed msghdr is valid; the pointers set point at live buffers; the
        // control buffer holds three descriptors' cmsghdr (CMSG_SPACE(12) = 32).
        unsafe {
            let mut hdr: libc::msghdr = std::mem::zeroed();
            hdr.msg_iov = iov.as_mut_ptr();
            hdr.msg_iovlen = 2;
            hdr.msg_control = control.0.as_mut_ptr().cast();
            hdr.msg_controllen = control.0.len() as _;
            let n = loop {
                let n = libc::recvmsg(self.0, &mut hdr, libc::MSG_CMSG_CLOEXEC);
                if n >= 0 || *libc::__errno_location() != libc::EINTR {
                    break n;
                }
            };
            if n < 0 {
                return Err(*libc::__errno_location());
            }
            if n == 0 {
                return Ok(None);
            }
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            let fd_bytes = PROGRAM_FDS * std::mem::size_of::<c_int>();
            if (n as usize) < PROGRAM_HEADER
                || hdr.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0
                || cmsg.is_null()
                || (*cmsg).cmsg_type != libc::SCM_RIGHTS
                || (*cmsg).cmsg_len as usize != libc::CMSG_LEN(fd_bytes as u32) as usize
            {
                return Err(libc::EPROTO);
            }
            let mut fds = [0 as c_int; PROGRAM_FDS];
            std::ptr::copy_nonoverlapping(
                libc::CMSG_DATA(cmsg),
                fds.as_mut_ptr().cast::<u8>(),
                fd_bytes,
            );
            let w = |at: usize| {
                u32::from_ne_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
            };
            let program = Program {
                argc: w(4) as usize,
                envc: w(8) as usize,
                len: w(12) as usize,
                fds,
            };
            if w(0) != TAG_PROGRAM || program.len != n as usize - PROGRAM_HEADER {
                return Err(libc::EPROTO);
            }
            Ok(Some(program))
        }
    }

    /// Reports a failed step. Best effort: if this fails too, the parent sees end-of-file
    /// without a listener and reports that the child vanished.
    pub(crate) fn send_failure(self, step: SetupStep, index: u32, errno: c_int) {
        let msg = encode(TAG_FAILED, step as u32 | ((index & 0xffff) << 16), errno);
        // SAFETY: sending a stack buffer on a descriptor we own.
        unsafe {
            libc::send(self.0, msg.as_ptr().cast(), MSG_LEN, libc::MSG_NOSIGNAL);
        }
    }
}

/// Waits until `fd` is readable; [`SandboxError::SetupTimeout`] (saying `timeout`) at `deadline`.
pub(crate) fn wait_readable(
    fd: RawFd,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), SandboxError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as c_int;
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            0 => return Err(SandboxError::SetupTimeout(timeout)),
            n if n < 0 => match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e.into()),
            },
            _ => return Ok(()),
        }
    }
}

/// One message from a `SOCK_SEQPACKET` socket into `buf`, waiting until `deadline`: its length
/// and the descriptor it passed (`SCM_RIGHTS`, close-on-exec), or `None` at end-of-file (or
/// a reset: the peer ended without reading everything sent to it).
pub(crate) fn recv_timeout(
    fd: RawFd,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<Option<(usize, Option<OwnedFd>)>, SandboxError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    loop {
        wait_readable(fd, deadline, timeout)?;
        match recv_with_fd(fd, buf) {
            // A peer that ended with messages of ours unread (a sandbox killed before it took
            // its program) resets the connection: that is its end all the same.
            Ok((0, _)) | Err(Errno::ECONNRESET) => return Ok(None),
            Ok(received) => return Ok(Some(received)),
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One `recvmsg` into `buf`: the length, and the first descriptor passed with it.
fn recv_with_fd(fd: RawFd, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>), Errno> {
    let mut control = FdControl([0; 32]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the pointers set point at live locals.
    let (n, hdr) = unsafe {
        let mut hdr: libc::msghdr = std::mem::zeroed();
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.0.as_mut_ptr().cast();
        hdr.msg_controllen = control.0.len() as _;
        let n = libc::recvmsg(fd, &mut hdr, libc::MSG_CMSG_CLOEXEC);
        (n, hdr)
    };
    if n < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel filled `hdr` and its control buffer; we only read what
    // CMSG_FIRSTHDR/CMSG_DATA point at within `control`.
    let passed = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&hdr);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>());
            Some(OwnedFd::from_raw_fd(fd))
        } else {
            None
        }
    };
    Ok((n as usize, passed))
}

/// The parent's end.
#[derive(Debug)]
pub(crate) struct ParentEnd(OwnedFd);

impl ParentEnd {
    /// Sends a sandbox made ahead its program. Fails with `InvalidInput` when the strings
    /// exceed [`PROGRAM_MAX`] (the caller then starts a sandbox from scratch).
    pub(crate) fn send_program(
        &self,
        argv: &[String],
        envp: &[String],
        fds: [RawFd; PROGRAM_FDS],
    ) -> io::Result<()> {
        let mut strings = Vec::with_capacity(1024);
        for s in argv.iter().chain(envp) {
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
        }
        if strings.len() > PROGRAM_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "argv and environment exceed what a sandbox made ahead accepts",
            ));
        }
        let mut header = [0u8; PROGRAM_HEADER];
        for (i, v) in [
            TAG_PROGRAM,
            argv.len() as u32,
            envp.len() as u32,
            strings.len() as u32,
        ]
        .into_iter()
        .enumerate()
        {
            header[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        let mut iov = [
            libc::iovec {
                iov_base: header.as_mut_ptr().cast(),
                iov_len: PROGRAM_HEADER,
            },
            libc::iovec {
                iov_base: strings.as_mut_ptr().cast(),
                iov_len: strings.len(),
            },
        ];
        let mut control = FdControl([0; 32]);
        let fd_bytes = PROGRAM_FDS * std::mem::size_of::<c_int>();
        // SAFETY: a zeroed msghdr is valid; every pointer points at live locals; the control
        // buffer is large enough and aligned for three descriptors.
        let rc = unsafe {
            let mut hdr: libc::msghdr = std::mem::zeroed();
            hdr.msg_iov = iov.as_mut_ptr();
            hdr.msg_iovlen = 2;
            hdr.msg_control = control.0.as_mut_ptr().cast();
            hdr.msg_controllen = libc::CMSG_SPACE(fd_bytes as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fd_bytes,
            );
            libc::sendmsg(self.0.as_raw_fd(), &hdr, libc::MSG_NOSIGNAL)
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next message, or `None` at end-of-file (the child exec'd, or died). Gives up with
    /// [`SandboxError::SetupTimeout`] at `deadline`.
    pub(crate) fn recv(&self, deadline: Instant) -> Result<Option<Message>, SandboxError> {
        let mut buf = [0u8; MSG_LEN];
        let Some((n, passed)) = recv_timeout(self.0.as_raw_fd(), &mut buf, deadline)? else {
            return Ok(None);
        };
        if n != MSG_LEN {
            return Err(
                io::Error::new(io::ErrorKind::InvalidData, "short handshake message").into(),
            );
        }
        let tag = u32::from_ne_bytes(word(&buf, 0));
        let a = u32::from_ne_bytes(word(&buf, 4));
        let b = i32::from_ne_bytes(word(&buf, 8));
        match (tag, passed) {
            (TAG_LISTENER, Some(fd)) => Ok(Some(Message::Listener(fd))),
            (TAG_READY, None) => Ok(Some(Message::Ready)),
            (TAG_EXEC, None) => Ok(Some(Message::Exec)),
            (TAG_FAILED, _) => {
                let step = SetupStep::from_code(a & 0xffff).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unknown setup step {a}"),
                    )
                })?;
                Ok(Some(Message::Failed {
                    step,
                    index: a >> 16,
                    errno: Errno::from_raw(b),
                }))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected handshake message {tag}"),
            )
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn listener_and_failure_round_trip_then_eof() {
        let (parent, child) = pair().unwrap();
        let channel = ChildChannel(child.as_raw_fd());
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        channel.send_listener(socket.as_raw_fd()).unwrap();
        channel.send_failure(SetupStep::Mount, 7, libc::ENOENT);
        drop(child);

        let d = deadline();
        let Some(Message::Listener(fd)) = parent.recv(d).unwrap() else {
            panic!("expected the listener");
        };
        let received = std::net::TcpListener::from(fd);
        assert_eq!(received.local_addr().unwrap().port(), port);
        // SAFETY: fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(received.as_fd().as_raw_fd(), libc::F_GETFD) };
        assert!(
            flags & libc::FD_CLOEXEC != 0,
            "received fd must be close-on-exec"
        );

        match parent.recv(d).unwrap() {
            Some(Message::Failed { step, index, errno }) => {
                assert_eq!((step, index, errno), (SetupStep::Mount, 7, Errno::ENOENT));
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        assert!(parent.recv(d).unwrap().is_none(), "expected end-of-file");
    }

    #[test]
    fn silence_times_out() {
        let (parent, _child) = pair().unwrap();
        let t = Duration::from_millis(20);
        let err = parent.recv(Instant::now() + t).unwrap_err();
        assert!(matches!(err, SandboxError::SetupTimeout(_)), "{err}");
    }
}
