//! ctnetlink messages, pure: the dump request the client sends and the decoding of what the
//! kernel answers (dump replies and multicast events share one layout).
//!
//! A datagram holds one or more netlink messages (`struct nlmsghdr`, host byte order, each
//! padded to 4 bytes). A conntrack message is `nlmsghdr` + `struct nfgenmsg` (4 bytes) +
//! attributes (`struct nlattr`, host order; values in network order where the kernel says so).
//! Only what NAT resolution needs is read: the original and reply tuples of TCP entries.
//! Layouts from `include/uapi/linux/netfilter/nfnetlink_conntrack.h` and `netlink.h`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `NFNL_SUBSYS_CTNETLINK`: the high byte of a conntrack message's type.
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
/// `IPCTNL_MSG_CT_NEW`: a new or updated entry, and every dump reply.
const IPCTNL_MSG_CT_NEW: u16 = 0;
/// `IPCTNL_MSG_CT_GET`: with `NLM_F_DUMP`, a request for the whole table.
const IPCTNL_MSG_CT_GET: u16 = 1;
/// `IPCTNL_MSG_CT_DELETE`: a destroyed entry.
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`, flags in an attribute's type.
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000);

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// IANA protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;

/// The netlink multicast groups of conntrack events (`enum nfnetlink_groups`).
pub const NFNLGRP_CONNTRACK_NEW: u32 = 1;
pub const NFNLGRP_CONNTRACK_UPDATE: u32 = 2;
pub const NFNLGRP_CONNTRACK_DESTROY: u32 = 3;

/// The request for a dump of the whole conntrack table, every family (`AF_UNSPEC`).
pub fn dump_request(seq: u32) -> [u8; NLMSG_HDRLEN + NFGENMSG_LEN] {
    let mut b = [0u8; NLMSG_HDRLEN + NFGENMSG_LEN];
    b[0..4].copy_from_slice(&((NLMSG_HDRLEN + NFGENMSG_LEN) as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET).to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // pid 0 (the kernel), nfgen_family AF_UNSPEC, version NFNETLINK_V0, res_id 0.
    b
}

/// One direction of a connection as conntrack saw its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// What happened to a conntrack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A new entry (event), or an entry of a dump.
    New,
    /// An existing entry changed (event).
    Update,
    /// The entry is gone (event).
    Destroy,
}

/// A TCP conntrack entry: its original direction (as the connecting socket sent it) and its
/// reply direction (as the peer answered; after DNAT its source is the real upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub orig: Tuple,
    pub reply: Tuple,
}

impl Entry {
    /// Where the connection really went when it differs from where it was sent (DNAT, a
    /// Kubernetes Service, a Docker published port, a REDIRECT): the reply's source.
    pub fn translated_destination(&self) -> Option<SocketAddr> {
        (self.reply.src != self.orig.dst).then_some(self.reply.src)
    }
}

/// One decoded netlink message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// A TCP conntrack entry.
    Entry(Entry),
    /// A conntrack entry of another protocol (UDP, ICMP, ...): not needed.
    OtherProtocol,
    /// The end of a dump.
    Done,
    /// `NLMSG_ERROR`: 0 is an acknowledgement, otherwise a negative errno.
    Error(i32),
    /// Any other message type (not expected on this socket).
    Other(u16),
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("netlink header truncated: {0} bytes left")]
    TruncatedHeader(usize),
    #[error("netlink message length {len} out of bounds ({left} bytes left)")]
    BadLength { len: usize, left: usize },
    #[error("conntrack message without {0}")]
    Missing(&'static str),
    #[error("attribute {0} has a bad length")]
    BadAttribute(&'static str),
}

/// The messages of one datagram, in order. After a framing error (a length that does not fit)
/// it yields that error and stops: nothing after it can be located.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    buf: &'a [u8],
}

/// Iterates over the messages of `datagram`.
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages { buf: datagram }
}

impl Iterator for Messages<'_> {
    type Item = Result<Message, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let left = self.buf.len();
        if left < NLMSG_HDRLEN {
            self.buf = &[];
            return Some(Err(DecodeError::TruncatedHeader(left)));
        }
        let len = u32_ne(&self.buf[0..4]) as usize;
        if len < NLMSG_HDRLEN || len > left {
            self.buf = &[];
            return Some(Err(DecodeError::BadLength { len, left }));
        }
        let kind = u16_ne(&self.buf[4..6]);
        let flags = u16_ne(&self.buf[6..8]);
        let body = &self.buf[NLMSG_HDRLEN..len];
        self.buf = &self.buf[align4(len).min(left)..];
        Some(decode_message(kind, flags, body))
    }
}

fn decode_message(kind: u16, flags: u16, body: &[u8]) -> Result<Message, DecodeError> {
    match kind {
        NLMSG_DONE => return Ok(Message::Done),
        NLMSG_ERROR => {
            let code = body
                .get(0..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(DecodeError::Missing("error code"))?;
            return Ok(Message::Error(code));
        }
        NLMSG_OVERRUN => return Ok(Message::Other(kind)),
        _ => {}
    }
    if kind >> 8 != NFNL_SUBSYS_CTNETLINK {
        return Ok(Message::Other(kind));
    }
    let entry_kind = match kind & 0xff {
        // Events of new entries carry CREATE|EXCL; dump replies carry MULTI only (an entry
        // that exists: as good as new).
        IPCTNL_MSG_CT_NEW if flags & (NLM_F_CREATE | NLM_F_EXCL | NLM_F_MULTI) != 0 => Kind::New,
        IPCTNL_MSG_CT_NEW => Kind::Update,
        IPCTNL_MSG_CT_DELETE => Kind::Destroy,
        _ => return Ok(Message::Other(kind)),
    };
    let attrs = body
        .get(NFGENMSG_LEN..)
        .ok_or(DecodeError::Missing("nfgenmsg"))?;
    let mut orig = None;
    let mut reply = None;
    for (ty, value) in Attrs::new(attrs) {
        match ty {
            CTA_TUPLE_ORIG => orig = Some(tuple(value)?),
            CTA_TUPLE_REPLY => reply = Some(tuple(value)?),
            _ => {}
        }
    }
    let orig = orig.ok_or(DecodeError::Missing("CTA_TUPLE_ORIG"))?;
    let reply = reply.ok_or(DecodeError::Missing("CTA_TUPLE_REPLY"))?;
    match (orig, reply) {
        (Some(orig), Some(reply)) => Ok(Message::Entry(Entry {
            kind: entry_kind,
            orig,
            reply,
        })),
        _ => Ok(Message::OtherProtocol),
    }
}

/// A `CTA_TUPLE_*` nest: Some for TCP, None for another protocol.
fn tuple(nest: &[u8]) -> Result<Option<Tuple>, DecodeError> {
    let (mut src_ip, mut dst_ip) = (None, None);
    let (mut proto, mut sport, mut dport) = (None, None, None);
    for (ty, value) in Attrs::new(nest) {
        match ty {
            CTA_TUPLE_IP => {
                for (ty, v) in Attrs::new(value) {
                    match ty {
                        CTA_IP_V4_SRC => src_ip = Some(ipv4(v, "CTA_IP_V4_SRC")?),
                        CTA_IP_V4_DST => dst_ip = Some(ipv4(v, "CTA_IP_V4_DST")?),
                        CTA_IP_V6_SRC => src_ip = Some(ipv6(v, "CTA_IP_V6_SRC")?),
                        CTA_IP_V6_DST => dst_ip = Some(ipv6(v, "CTA_IP_V6_DST")?),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (ty, v) in Attrs::new(value) {
                    match ty {
                        CTA_PROTO_NUM => {
                            proto = Some(
                                *v.first()
                                    .ok_or(DecodeError::BadAttribute("CTA_PROTO_NUM"))?,
                            )
                        }
                        CTA_PROTO_SRC_PORT => sport = Some(port(v, "CTA_PROTO_SRC_PORT")?),
                        CTA_PROTO_DST_PORT => dport = Some(port(v, "CTA_PROTO_DST_PORT")?),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let proto = proto.ok_or(DecodeError::Missing("CTA_PROTO_NUM"))?;
    if proto != IPPROTO_TCP {
        return Ok(None);
    }
    let src_ip = src_ip.ok_or(DecodeError::Missing("CTA_IP_*_SRC"))?;
    let dst_ip = dst_ip.ok_or(DecodeError::Missing("CTA_IP_*_DST"))?;
    let sport = sport.ok_or(DecodeError::Missing("CTA_PROTO_SRC_PORT"))?;
    let dport = dport.ok_or(DecodeError::Missing("CTA_PROTO_DST_PORT"))?;
    Ok(Some(Tuple {
        src: SocketAddr::new(src_ip, sport),
        dst: SocketAddr::new(dst_ip, dport),
    }))
}

fn ipv4(v: &[u8], what: &'static str) -> Result<IpAddr, DecodeError> {
    let b: [u8; 4] = v.try_into().map_err(|_| DecodeError::BadAttribute(what))?;
    Ok(IpAddr::V4(Ipv4Addr::from(b)))
}

fn ipv6(v: &[u8], what: &'static str) -> Result<IpAddr, DecodeError> {
    let b: [u8; 16] = v.try_into().map_err(|_| DecodeError::BadAttribute(what))?;
    Ok(IpAddr::V6(Ipv6Addr::from(b)))
}

fn port(v: &[u8], what: &'static str) -> Result<u16, DecodeError> {
    let b: [u8; 2] = v.try_into().map_err(|_| DecodeError::BadAttribute(what))?;
    Ok(u16::from_be_bytes(b))
}

/// The attributes of one level: (type without flags, value). A truncated attribute ends the
/// level (the kernel never sends one; a corrupt message loses its tail, not the agent).
struct Attrs<'a> {
    buf: &'a [u8],
}

impl<'a> Attrs<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Attrs { buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16_ne(&self.buf[0..2]));
        let ty = u16_ne(&self.buf[2..4]) & NLA_TYPE_MASK;
        if len < 4 || len > self.buf.len() {
            self.buf = &[];
            return None;
        }
        let value = &self.buf[4..len];
        self.buf = &self.buf[align4(len).min(self.buf.len())..];
        Some((ty, value))
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_ne(b: &[u8]) -> u16 {
    u16::from_ne_bytes([b[0], b[1]])
}

fn u32_ne(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
#[path = "decode/tests.rs"]
mod tests;
