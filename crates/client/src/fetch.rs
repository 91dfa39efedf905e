//! A minimal blocking HTTP/1.1 GET of the agent's /metrics: loopback, no TLS, one request per
//! connection. A dependency-free client keeps `sonde top` and `sonde record` small, and every
//! read is bounded in time and size.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::Error;

/// Largest response accepted (a node with thousands of containers stays far below).
const MAX_RESPONSE: u64 = 256 << 20;

/// Where the agent is: `host:port` and the path to GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUrl {
    /// `host:port`.
    pub authority: String,
    /// The path, e.g. `/metrics`.
    pub path: String,
}

impl AgentUrl {
    /// Parses `http://host:port[/path]` or `host:port[/path]`; the path defaults to /metrics.
    pub fn parse(url: &str) -> Result<AgentUrl, Error> {
        let err = |reason| Error::Url {
            url: url.to_owned(),
            reason,
        };
        if url.starts_with("https://") {
            return Err(err("https is not supported (the agent serves plain HTTP)"));
        }
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        if authority.is_empty() {
            return Err(err("no host"));
        }
        if !authority.contains(':') {
            return Err(err("no port (e.g. 127.0.0.1:10300)"));
        }
        Ok(AgentUrl {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The agent serving on `listen` as seen from this node: an unspecified address (0.0.0.0,
    /// [::]) is reached on loopback.
    pub fn from_listen(listen: std::net::SocketAddr) -> AgentUrl {
        let ip = match listen.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            }
            ip => ip,
        };
        AgentUrl {
            authority: std::net::SocketAddr::new(ip, listen.port()).to_string(),
            path: "/metrics".to_owned(),
        }
    }

    /// The URL as text, for messages.
    pub fn to_url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }

    /// GETs the body, within `timeout` for connecting and for each read.
    pub fn get(&self, timeout: Duration) -> Result<String, Error> {
        let io = |source| Error::Fetch {
            url: self.to_url(),
            source,
        };
        let addr = self
            .authority
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| io(std::io::Error::other("the host resolves to no address")))?;
        let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        // One write: a server that answers after the first bytes must still get the request.
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: text/plain\r\n\r\n",
            self.path, self.authority
        );
        stream.write_all(request.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE + 1)
            .read_to_end(&mut raw)
            .map_err(io)?;
        if raw.len() as u64 > MAX_RESPONSE {
            return Err(self.bad(format!("larger than {MAX_RESPONSE} bytes")));
        }
        self.body(&raw)
    }

    fn bad(&self, reason: String) -> Error {
        Error::Response {
            url: self.to_url(),
            reason,
        }
    }

    /// The body of a raw response: status 200 required, chunked or plain.
    fn body(&self, raw: &[u8]) -> Result<String, Error> {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| self.bad("no end of headers".to_owned()))?;
        let head = String::from_utf8_lossy(&raw[..split]);
        let body = &raw[split + 4..];
        let mut lines = head.lines();
        let status = lines.next().unwrap_or("");
        let code = status.split_whitespace().nth(1).unwrap_or("");
        if code != "200" {
            return Err(self.bad(format!("status {status:?}")));
        }
        let chunked = lines.any(|l| {
            l.split_once(':').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("transfer-encoding")
                    && v.trim().eq_ignore_ascii_case("chunked")
            })
        });
        let body = if chunked {
            dechunk(body).ok_or_else(|| self.bad("malformed chunked body".to_owned()))?
        } else {
            body.to_vec()
        };
        String::from_utf8(body).map_err(|_| self.bad("the body is not UTF-8".to_owned()))
    }
}

/// Decodes a chunked body; None when malformed or truncated.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls() {
        let u = AgentUrl::parse("http://127.0.0.1:10300").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("127.0.0.1:10300", "/metrics")
        );
        let u = AgentUrl::parse("localhost:9/m").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("localhost:9", "/m")
        );
        assert_eq!(u.to_url(), "http://localhost:9/m");
        let l = |s: &str| AgentUrl::from_listen(s.parse().unwrap()).to_url();
        assert_eq!(l("0.0.0.0:10300"), "http://127.0.0.1:10300/metrics");
        assert_eq!(l("[::]:9"), "http://[::1]:9/metrics");
        assert_eq!(l("10.1.2.3:9"), "http://10.1.2.3:9/metrics");
        for bad in ["https://a:1", "http://", "127.0.0.1", "/metrics"] {
            assert!(AgentUrl::parse(bad).is_err(), "{bad}");
        }
    }

    /// Serves one canned response on a loopback port.
    fn serve(response: &'static [u8]) -> AgentUrl {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            s.write_all(response).unwrap();
        });
        AgentUrl::parse(&format!("127.0.0.1:{port}")).unwrap()
    }

    #[test]
    fn plain_chunked_and_errors() {
        let t = Duration::from_secs(5);
        let u = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nm 1\n");
        assert_eq!(u.get(t).unwrap(), "m 1\n");
        let u = serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nm 1\n\r\n3;x=y\r\nn 2\r\n0\r\n\r\n");
        assert_eq!(u.get(t).unwrap(), "m 1\nn 2");
        let u = serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\nshort");
        assert!(u.get(t).unwrap_err().to_string().contains("bad response"));
        let u = serve(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let e = u.get(t).unwrap_err().to_string();
        assert!(e.contains("503"), "{e}");
        let u = serve(b"garbage");
        assert!(u.get(t).is_err());
        // Nothing listening.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let u = AgentUrl::parse(&format!("127.0.0.1:{port}")).unwrap();
        assert!(matches!(u.get(t), Err(Error::Fetch { .. })));
    }
}
