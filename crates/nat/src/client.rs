//! The netlink side: an event socket subscribed to conntrack's NEW and DESTROY groups, and a
//! short-lived socket per table dump. Both are `NETLINK_NETFILTER` sockets in the caller's
//! network namespace, which must be the host's (see docs/nat.md).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_sys::protocols::NETLINK_NETFILTER;
use sonde_netlink::{Recv, Socket};

use crate::Error;
use crate::decode::{
    self, DecodeError, Entry, Message, NFNLGRP_CONNTRACK_DESTROY, NFNLGRP_CONNTRACK_NEW,
};

/// A dump reply datagram is at most ~32 KiB (the kernel's netlink dump allocation); twice that
/// leaves room, and MSG_TRUNC tells if it ever did not fit.
const RECV_BUF: usize = 64 * 1024;

/// What one drain of the event socket saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub datagrams: usize,
    /// The kernel dropped events since the last read (ENOBUFS): the table needs a resync.
    pub overflowed: bool,
}

/// The event subscription. Reads never block (MSG_DONTWAIT); the reader thread polls.
pub struct EventSocket {
    socket: Socket,
    buf: Vec<u8>,
}

impl std::fmt::Debug for EventSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSocket")
            .field("fd", &self.socket.as_raw_fd())
            .finish()
    }
}

impl EventSocket {
    /// Subscribes to new and destroyed entries. Updates are not subscribed: a translation is
    /// fixed when the entry is created, and updates (one per TCP state change) would multiply
    /// the traffic, and so the risk of overflow, for nothing NAT resolution needs.
    ///
    /// With `kernel_filter`, only events of translated entries reach the socket
    /// ([`crate::filter`]); if the kernel refuses the filter, every event does (a debug log),
    /// which costs CPU, not correctness.
    pub fn open(rcvbuf: usize, kernel_filter: bool) -> Result<EventSocket, Error> {
        let socket = sonde_netlink::open(NETLINK_NETFILTER)?;
        for group in [NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY] {
            socket
                .add_membership(group)
                .map_err(|source| Error::Socket {
                    step: "subscribe to conntrack events of",
                    source,
                })?;
        }
        sonde_netlink::set_rcvbuf(&socket, rcvbuf);
        if kernel_filter && let Err(e) = attach_filter(&socket, &crate::filter::dst_nat_only()) {
            tracing::debug!(error = %e, "Conntrack event filter refused; reading every event");
        }
        Ok(EventSocket {
            socket,
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    pub fn fd(&self) -> i32 {
        self.socket.as_raw_fd()
    }

    /// Reads what is queued, at most `max_datagrams`, without blocking, handing each message
    /// to `f`.
    pub fn drain(
        &mut self,
        max_datagrams: usize,
        mut f: impl FnMut(Result<Message, DecodeError>),
    ) -> Result<Drained, Error> {
        let mut out = Drained::default();
        while out.datagrams < max_datagrams {
            match sonde_netlink::recv(&self.socket, &mut self.buf, libc::MSG_DONTWAIT) {
                Ok(Recv::Datagram(_)) => {
                    out.datagrams += 1;
                    decode::messages(&self.buf).for_each(&mut f);
                }
                Ok(Recv::Truncated(_)) => {
                    out.datagrams += 1;
                    // Cut short: its tail is lost, like an overflow.
                    out.overflowed = true;
                    decode::messages(&self.buf).for_each(&mut f);
                }
                Ok(Recv::Nothing) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => out.overflowed = true,
                Err(source) => return Err(Error::Recv { source }),
            }
        }
        Ok(out)
    }
}

/// Counts of one dump.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DumpStats {
    /// TCP entries seen (translated or not).
    pub tcp_entries: u64,
    pub decode_errors: u64,
}

/// Dumps the whole conntrack table on a socket of its own, handing each TCP entry to `f`.
/// `timeout` bounds each read (a dump of a full table takes well under a second).
pub fn dump(timeout: Duration, mut f: impl FnMut(&Entry)) -> Result<DumpStats, Error> {
    let socket = sonde_netlink::open_connected(NETLINK_NETFILTER, timeout)?;
    let seq = 1;
    sonde_netlink::send(&socket, &decode::dump_request(seq)).map_err(|source| Error::Socket {
        step: "send the dump request on",
        source,
    })?;
    let mut stats = DumpStats::default();
    let mut buf = Vec::with_capacity(RECV_BUF);
    loop {
        match sonde_netlink::recv(&socket, &mut buf, 0) {
            Ok(Recv::Datagram(_)) => {}
            Ok(Recv::Truncated(len)) => return Err(Error::Truncated { len }),
            Ok(Recv::Nothing) => return Err(Error::DumpTimeout(timeout)),
            Err(source) => return Err(Error::Recv { source }),
        }
        for msg in decode::messages(&buf) {
            match msg {
                Ok(Message::Entry(e)) => {
                    stats.tcp_entries += 1;
                    f(&e);
                }
                Ok(Message::Done) => return Ok(stats),
                Ok(Message::Error(0)) => {}
                Ok(Message::Error(code)) => {
                    return Err(Error::Refused {
                        source: io::Error::from_raw_os_error(code.saturating_neg()),
                    });
                }
                Ok(Message::OtherProtocol | Message::Other(_)) => {}
                Err(_) => stats.decode_errors += 1,
            }
        }
    }
}

fn attach_filter(socket: &Socket, program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| io::Error::other("filter too long"))?,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: valid fd; `prog` points at `program`, alive for the call (the kernel copies it).
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
