//! The netlink side: one `NETLINK_GENERIC` socket, the `TASKSTATS` family resolved once,
//! one request and one reply per query.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_sys::protocols::NETLINK_GENERIC;
use sonde_netlink::{Recv, Socket};

use crate::decode::{self, TgidReply};
use crate::{Error, TaskDelays};

/// How long one reply may take before the query fails. A taskstats reply takes microseconds;
/// this only bounds a scrape when something is badly wrong.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Replies are ~600 bytes; 16 KiB also holds a few stale ones queued behind a timeout.
const RECV_BUF: usize = 16 * 1024;

/// Datagrams read while looking for one reply, skipping stale ones (answers to requests that
/// timed out earlier). Bounds the loop even if the socket is flooded.
const MAX_DATAGRAMS_PER_QUERY: usize = 16;

const FAMILY_LOOKUP: &str = "family lookup";

/// A taskstats client: owns one `NETLINK_GENERIC` socket; the `TASKSTATS` family id is
/// resolved once at construction. Not shareable across threads (`&mut self` per query), which
/// matches one scrape at a time; open one per thread otherwise.
pub struct TaskstatsClient {
    socket: Socket,
    family_id: u16,
    seq: u32,
    buf: Vec<u8>,
    timeout: Duration,
}

impl std::fmt::Debug for TaskstatsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskstatsClient")
            .field("fd", &self.socket.as_raw_fd())
            .field("family_id", &self.family_id)
            .field("seq", &self.seq)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl TaskstatsClient {
    /// Opens the socket in the caller's network namespace (which must be the host's: the
    /// kernel registers TASKSTATS only in the initial one) and resolves the family.
    pub fn new() -> Result<TaskstatsClient, Error> {
        Self::with_timeout(DEFAULT_TIMEOUT)
    }

    /// As [`TaskstatsClient::new`], with a receive timeout other than [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(timeout: Duration) -> Result<TaskstatsClient, Error> {
        let socket = sonde_netlink::open_connected(NETLINK_GENERIC, timeout)?;
        let mut client = TaskstatsClient {
            socket,
            family_id: 0,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
            timeout,
        };
        client.family_id = client.resolve_family()?;
        Ok(client)
    }

    /// Opens the socket inside the network namespace at `netns` (e.g. `/proc/1/ns/net` with
    /// the host's /proc) without moving the calling thread: a short-lived thread enters the
    /// namespace, opens the socket and exits; the socket stays bound to that namespace.
    /// For agents that run without `hostNetwork` but with `hostPID` and `CAP_SYS_ADMIN`.
    pub fn new_in_netns(netns: &Path) -> Result<TaskstatsClient, Error> {
        let path: PathBuf = netns.to_path_buf();
        let joined = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = File::open(&path).map_err(|source| Error::Netns {
                        path: path.clone(),
                        source,
                    })?;
                    // SAFETY: setns on a valid fd; it changes only this (scoped) thread's netns.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(Error::Netns {
                            path: path.clone(),
                            source: io::Error::last_os_error(),
                        });
                    }
                    TaskstatsClient::new()
                })
                .join()
        });
        match joined {
            Ok(result) => result,
            Err(_) => Err(Error::Netns {
                path: netns.to_path_buf(),
                source: io::Error::other("namespace thread panicked"),
            }),
        }
    }

    /// The resolved generic-netlink id of the TASKSTATS family.
    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    /// Delay totals of a whole process (thread group: live threads plus the threads that
    /// already exited). `Ok(None)` when the pid is gone (`ESRCH`).
    pub fn query_tgid(&mut self, tgid: u32) -> Result<Option<TaskDelays>, Error> {
        let seq = self.next_seq();
        let request = decode::tgid_request(self.family_id, seq, tgid);
        let what = || format!("taskstats tgid {tgid}");
        let reply = self.exchange(&request, seq, &what, |msg| {
            decode::parse_tgid_message(msg, tgid)
        })?;
        match reply {
            Ok(TgidReply::Stats(delays)) => Ok(Some(delays)),
            Ok(TgidReply::Gone) => Ok(None),
            Err(errno) => Err(Error::Kernel {
                what: what(),
                errno,
                source: io::Error::from_raw_os_error(errno),
            }),
        }
    }

    /// The raw reply datagram to a tgid query, for recording test fixtures.
    #[doc(hidden)]
    pub fn query_tgid_raw(&mut self, tgid: u32) -> Result<Vec<u8>, Error> {
        let seq = self.next_seq();
        let request = decode::tgid_request(self.family_id, seq, tgid);
        let what = || format!("taskstats tgid {tgid}");
        self.send(&request, &what)?;
        self.recv_datagram(&what)?;
        Ok(self.buf.clone())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn resolve_family(&mut self) -> Result<u16, Error> {
        let seq = self.next_seq();
        let mut genl = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName("TASKSTATS".to_string())],
        });
        genl.finalize();
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(genl));
        msg.finalize();
        let mut request = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut request);

        let what = || FAMILY_LOOKUP.to_string();
        let reply = self.exchange(&request, seq, &what, parse_family_reply)?;
        match reply {
            Ok(id) => Ok(id),
            Err(errno) if errno == libc::ENOENT => Err(Error::FamilyNotFound),
            Err(errno) => Err(Error::Kernel {
                what: what(),
                errno,
                source: io::Error::from_raw_os_error(errno),
            }),
        }
    }

    /// Sends `request` and reads datagrams until the message with `seq` arrives.
    fn exchange<I, T>(
        &mut self,
        request: &[u8],
        seq: u32,
        what: &dyn Fn() -> String,
        parse: impl Fn(NetlinkMessage<I>) -> Result<T, String>,
    ) -> Result<T, Error>
    where
        I: netlink_packet_core::NetlinkDeserializable,
        I::Error: std::fmt::Display,
    {
        self.send(request, what)?;
        for _ in 0..MAX_DATAGRAMS_PER_QUERY {
            self.recv_datagram(what)?;
            match decode::find_reply(&self.buf, seq, &parse) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => continue,
                Err(reason) => {
                    return Err(Error::Malformed {
                        what: what(),
                        reason,
                    });
                }
            }
        }
        Err(Error::Malformed {
            what: what(),
            reason: format!("no reply with sequence {seq} in {MAX_DATAGRAMS_PER_QUERY} datagrams"),
        })
    }

    fn send(&self, request: &[u8], what: &dyn Fn() -> String) -> Result<(), Error> {
        sonde_netlink::send(&self.socket, request).map_err(|source| Error::Send {
            what: what(),
            source,
        })
    }

    /// Reads one datagram into `self.buf`, bounded by `SO_RCVTIMEO`.
    fn recv_datagram(&mut self, what: &dyn Fn() -> String) -> Result<(), Error> {
        match sonde_netlink::recv(&self.socket, &mut self.buf, 0) {
            Ok(Recv::Datagram(_)) => Ok(()),
            Ok(Recv::Truncated(n)) => Err(Error::Malformed {
                what: what(),
                reason: format!("datagram of {n} bytes exceeds the {RECV_BUF}-byte buffer"),
            }),
            Ok(Recv::Nothing) => Err(Error::Timeout {
                what: what(),
                timeout: self.timeout,
            }),
            Err(source) => Err(Error::Recv {
                what: what(),
                source,
            }),
        }
    }
}

/// The family id from a `CTRL_CMD_NEWFAMILY` reply, or the negated kernel errno.
fn parse_family_reply(
    msg: NetlinkMessage<GenlMessage<GenlCtrl>>,
) -> Result<Result<u16, i32>, String> {
    match msg.payload {
        NetlinkPayload::InnerMessage(genl) => genl
            .payload
            .nlas
            .iter()
            .find_map(|attr| match attr {
                GenlCtrlAttrs::FamilyId(id) => Some(Ok(*id)),
                _ => None,
            })
            .ok_or_else(|| "family reply without CTRL_ATTR_FAMILY_ID".to_string()),
        NetlinkPayload::Error(err) => match err.code {
            Some(code) => Ok(Err(code.get().saturating_neg())),
            None => Err("unexpected ACK without data".to_string()),
        },
        other => Err(format!(
            "unexpected netlink message type {}",
            other.message_type()
        )),
    }
}
