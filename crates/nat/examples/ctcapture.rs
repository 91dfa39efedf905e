//! Prints the raw datagrams of a conntrack dump and of the next events as hex, one per line:
//! how the fixtures of `src/decode/tests.rs` were captured.
//! `cargo run -p sonde-nat --example ctcapture -- 5` (seconds of events).

use std::time::{Duration, Instant};

use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() -> std::io::Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut ev = Socket::new(NETLINK_NETFILTER)?;
    ev.bind_auto()?;
    for g in [1, 2, 3] {
        ev.add_membership(g)?;
    }
    let mut d = Socket::new(NETLINK_NETFILTER)?;
    d.bind_auto()?;
    d.connect(&SocketAddr::new(0, 0))?;
    d.send(&sonde_nat::decode::dump_request(1), 0)?;
    let mut buf = Vec::with_capacity(65536);
    loop {
        buf.clear();
        d.recv(&mut buf, 0)?;
        println!("dump {}", hex(&buf));
        if sonde_nat::decode::messages(&buf)
            .any(|m| matches!(m, Ok(sonde_nat::decode::Message::Done) | Err(_)))
        {
            break;
        }
    }
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        buf.clear();
        match ev.recv(&mut buf, libc::MSG_DONTWAIT) {
            Ok(_) => println!("event {}", hex(&buf)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => println!("error {e}"),
        }
    }
    Ok(())
}
