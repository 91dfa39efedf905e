//! ICMP echo over a raw IPv4 socket: packet building and parsing (pure) and one round of
//! requests and replies with kernel receive timestamps.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::{Error, sys};

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request with `ident`, `seq` and 8 bytes of payload (sonde's marker).
pub fn echo_packet(ident: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = ECHO_REQUEST;
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"sonde-pg");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// From a datagram read off a raw ICMP socket (IPv4 header included): the source address and
/// the sequence number, when it is an echo reply carrying `ident`.
pub fn parse_reply(datagram: &[u8], ident: u16) -> Option<(Ipv4Addr, u16)> {
    let ihl = usize::from(datagram.first()? & 0x0f) * 4;
    if ihl < 20 || datagram.first()? >> 4 != 4 {
        return None;
    }
    let src = Ipv4Addr::new(
        *datagram.get(12)?,
        *datagram.get(13)?,
        *datagram.get(14)?,
        *datagram.get(15)?,
    );
    let icmp = datagram.get(ihl..)?;
    if icmp.len() < 8 || icmp[0] != ECHO_REPLY || icmp[1] != 0 {
        return None;
    }
    if u16::from_be_bytes([icmp[4], icmp[5]]) != ident {
        return None;
    }
    Some((src, u16::from_be_bytes([icmp[6], icmp[7]])))
}

pub(crate) struct RawSocket {
    fd: OwnedFd,
}

impl RawSocket {
    pub(crate) fn open() -> Result<RawSocket, Error> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::IPPROTO_ICMP,
            )
        };
        if fd < 0 {
            return Err(sys("socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)"));
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let on: libc::c_int = 1;
        // SAFETY: valid fd, option and value.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(sys("setsockopt(SO_TIMESTAMPNS)"));
        }
        Ok(RawSocket { fd })
    }

    fn send(&self, to: Ipv4Addr, packet: &[u8]) -> Result<(), Error> {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(to).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: valid fd, buffer and address of the right length.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(sys("sendto"));
        }
        Ok(())
    }

    /// One datagram and its kernel receive time (CLOCK_REALTIME), or None when none is queued.
    fn recv(&self, buf: &mut [u8]) -> Result<Option<(usize, Duration)>, Error> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; 16];
        // SAFETY: zeroed msghdr is valid; the pointers set below outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: valid fd and msghdr.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(Error::Sys {
                    call: "recvmsg",
                    source: e,
                })
            };
        }
        let mut ts = None;
        // SAFETY: walking the control buffer the kernel filled, with the CMSG macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let t = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                    ts = Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(Some((n as usize, ts.unwrap_or_else(realtime))))
    }

    fn wait_readable(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
    }
}

/// Now on CLOCK_REALTIME, the clock of SO_TIMESTAMPNS.
fn realtime() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Sends one request per target (sequence number = index) and collects the replies.
pub(crate) fn round(
    sock: &RawSocket,
    targets: &[Ipv4Addr],
    timeout: Duration,
    ident: u16,
) -> Result<Vec<(Ipv4Addr, Duration)>, Error> {
    let n = targets.len().min(usize::from(u16::MAX));
    let mut sent: Vec<Option<Duration>> = vec![None; n];
    let mut rtt: Vec<Option<Duration>> = vec![None; n];
    for (i, &ip) in targets.iter().take(n).enumerate() {
        let packet = echo_packet(ident, i as u16);
        let at = realtime();
        // An unreachable target (no route) is no round failure: it just gets no RTT.
        if sock.send(ip, &packet).is_ok() {
            sent[i] = Some(at);
        }
    }
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    let mut pending = sent.iter().filter(|s| s.is_some()).count();
    while pending > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !sock.wait_readable(left) {
            break;
        }
        while let Some((len, at)) = sock.recv(&mut buf)? {
            let Some((src, seq)) = parse_reply(&buf[..len], ident) else {
                continue;
            };
            let i = usize::from(seq);
            if i < n
                && targets[i] == src
                && rtt[i].is_none()
                && let Some(t0) = sent[i]
            {
                rtt[i] = Some(at.saturating_sub(t0));
                pending -= 1;
            }
        }
    }
    Ok(targets
        .iter()
        .zip(rtt)
        .filter_map(|(ip, r)| Some((*ip, r?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        // RFC 1071's example words.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        // A packet with its checksum in place sums to zero.
        let p = echo_packet(0x1234, 7);
        assert_eq!(checksum(&p), 0);
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn replies_are_matched_by_ident_and_type() {
        let mut reply = vec![
            0x45, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1,
        ];
        let mut icmp = echo_packet(0xbeef, 3).to_vec();
        icmp[0] = ECHO_REPLY;
        reply.extend_from_slice(&icmp);
        assert_eq!(
            parse_reply(&reply, 0xbeef),
            Some((Ipv4Addr::new(10, 77, 0, 2), 3))
        );
        assert_eq!(parse_reply(&reply, 0xbeee), None);
        // Our own request looped back, a truncated datagram, a non-IPv4 one: ignored.
        let mut request = reply.clone();
        request[20] = ECHO_REQUEST;
        assert_eq!(parse_reply(&request, 0xbeef), None);
        assert_eq!(parse_reply(&reply[..24], 0xbeef), None);
        assert_eq!(parse_reply(&[0x65; 40], 0xbeef), None);
        assert_eq!(parse_reply(&[], 0xbeef), None);
    }
}
