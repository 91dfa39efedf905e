//! The socket plumbing of sonde's netlink clients (`sonde-nat`'s ctnetlink, `sonde-taskstats`'
//! generic netlink), written once: open and bind (and connect to the kernel), a receive
//! timeout, a larger receive buffer, and reading one datagram with its real length. The
//! protocols' messages stay in their crates; this crate knows only sockets.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

pub use netlink_sys::Socket;
use netlink_sys::SocketAddr;

/// A socket call that failed, and which one (for the caller's error message).
#[derive(Debug, thiserror::Error)]
#[error("netlink socket: {step} failed")]
pub struct Error {
    /// What was done to the socket: `open`, `bind`, `connect`, `set SO_RCVTIMEO on`.
    pub step: &'static str,
    #[source]
    pub source: io::Error,
}

fn step(step: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error { step, source }
}

/// Opens a socket of `protocol` (`netlink_sys::protocols::*`) and binds it to a kernel-chosen
/// port id, in the calling thread's network namespace.
pub fn open(protocol: isize) -> Result<Socket, Error> {
    let mut socket = Socket::new(protocol).map_err(step("open"))?;
    socket.bind_auto().map_err(step("bind"))?;
    Ok(socket)
}

/// [`open`], connected to the kernel (port 0) for request/reply exchanges, each read bounded
/// by `timeout` (see [`set_recv_timeout`]).
pub fn open_connected(protocol: isize, timeout: Duration) -> Result<Socket, Error> {
    let socket = open(protocol)?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(step("connect"))?;
    set_recv_timeout(&socket, timeout)?;
    Ok(socket)
}

/// Bounds each blocking read by `timeout` (`SO_RCVTIMEO`); a read past it answers
/// [`Recv::Nothing`]. At least 1 ms: a zero timeval means "block forever" to the kernel.
pub fn set_recv_timeout(socket: &Socket, timeout: Duration) -> Result<(), Error> {
    let timeout = timeout.max(Duration::from_millis(1));
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    // SAFETY: valid fd, pointer to a live timeval and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Error {
            step: "set SO_RCVTIMEO on",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Asks for a receive buffer of `bytes` so bursts do not overflow it. Root may exceed
/// `net.core.rmem_max` (`SO_RCVBUFFORCE`); otherwise the kernel caps the request. Best effort:
/// a refusal leaves the default buffer.
pub fn set_rcvbuf(socket: &Socket, bytes: usize) {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: valid fd, pointer to a live c_int and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// Sends `request` whole, again when a signal interrupted the call.
pub fn send(socket: &Socket, request: &[u8]) -> io::Result<()> {
    loop {
        match socket.send(request, 0) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// What one read of a datagram gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// A whole datagram of this many bytes is in the buffer.
    Datagram(usize),
    /// A datagram of this many bytes did not fit: the buffer holds its start only.
    Truncated(usize),
    /// Nothing came: the socket is empty (`MSG_DONTWAIT`) or the receive timeout passed.
    Nothing,
}

/// Reads one datagram into `buf` (cleared first, filled up to its capacity), with `flags`
/// (`libc::MSG_DONTWAIT` for a non-blocking read), again when a signal interrupted the call.
/// Other errors (e.g. `ENOBUFS`: the kernel dropped messages) are the caller's to judge.
pub fn recv(socket: &Socket, buf: &mut Vec<u8>, flags: libc::c_int) -> io::Result<Recv> {
    loop {
        buf.clear();
        // With MSG_TRUNC the datagram's real length comes back even if it did not fit.
        match socket.recv(buf, flags | libc::MSG_TRUNC) {
            Ok(n) if n > buf.len() => return Ok(Recv::Truncated(n)),
            Ok(n) => return Ok(Recv::Datagram(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return Ok(Recv::Nothing);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use netlink_sys::protocols::NETLINK_ROUTE;

    // NETLINK_ROUTE sockets need no privilege: these run anywhere.

    #[test]
    fn an_empty_socket_answers_nothing_without_blocking_or_after_its_timeout() {
        let socket = open_connected(NETLINK_ROUTE, Duration::from_millis(20)).unwrap();
        let mut buf = Vec::with_capacity(4096);
        assert_eq!(
            recv(&socket, &mut buf, libc::MSG_DONTWAIT).unwrap(),
            Recv::Nothing
        );
        assert_eq!(recv(&socket, &mut buf, 0).unwrap(), Recv::Nothing);
    }

    /// An RTM_GETLINK dump request: a 16-byte header and a 16-byte ifinfomsg.
    fn getlink_dump() -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
        m.extend_from_slice(&(libc::RTM_GETLINK).to_ne_bytes()); // nlmsg_type
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&1u32.to_ne_bytes()); // seq
        m.extend_from_slice(&0u32.to_ne_bytes()); // pid
        m.extend_from_slice(&[0u8; 16]); // ifinfomsg, AF_UNSPEC
        m
    }

    #[test]
    fn a_datagram_larger_than_the_buffer_is_reported_truncated_with_its_length() {
        let socket = open_connected(NETLINK_ROUTE, Duration::from_secs(1)).unwrap();
        send(&socket, &getlink_dump()).unwrap();
        // Every namespace has `lo`: its RTM_NEWLINK message alone is far over 16 bytes.
        let mut small = Vec::with_capacity(16);
        match recv(&socket, &mut small, 0).unwrap() {
            Recv::Truncated(n) => assert!(n > 16 && small.len() <= 16, "{n}"),
            other => panic!("expected a truncated datagram, got {other:?}"),
        }
        // The next datagram of the dump fits a large buffer (or the dump ended in the first).
        let mut big = Vec::with_capacity(64 * 1024);
        match recv(&socket, &mut big, 0).unwrap() {
            Recv::Datagram(n) => assert_eq!(n, big.len()),
            Recv::Nothing => {}
            Recv::Truncated(n) => panic!("{n} bytes do not fit 64 KiB"),
        }
    }

    #[test]
    fn rcvbuf_and_timeout_apply() {
        let socket = open(NETLINK_ROUTE).unwrap();
        set_rcvbuf(&socket, 1 << 20);
        set_recv_timeout(&socket, Duration::ZERO).unwrap();
        let mut buf = Vec::with_capacity(1024);
        // A zero timeout became 1 ms, not "forever": the read returns.
        assert_eq!(recv(&socket, &mut buf, 0).unwrap(), Recv::Nothing);
    }
}
