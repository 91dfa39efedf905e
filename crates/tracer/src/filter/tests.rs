#![allow(clippy::unwrap_used)]

use super::*;

const HOST: u32 = 4026531840;
const CONTAINER: u32 = 4026532500;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn default_filter() -> ConnectionFilter {
    ConnectionFilter::new(
        DEFAULT_EPHEMERAL_PORTS,
        ConnectionFilter::default_public_networks(),
        HOST,
    )
}

#[test]
fn ephemeral_destination_ports_are_skipped() {
    let f = default_filter();
    assert!(f.is_destination(addr("10.0.0.1:5432"), HOST));
    assert!(f.is_destination(addr("10.0.0.1:32767"), HOST));
    assert!(!f.is_destination(addr("10.0.0.1:32768"), HOST));
    assert!(!f.is_destination(addr("10.0.0.1:45000"), HOST));
    assert!(!f.is_destination(addr("10.0.0.1:60999"), HOST));
    assert!(f.is_destination(addr("10.0.0.1:61000"), HOST));
    let custom = ConnectionFilter::new(parse_port_range("1024-2048").unwrap(), vec![], HOST);
    assert!(!custom.is_destination(addr("10.0.0.1:1500"), HOST));
    assert!(custom.is_destination(addr("10.0.0.1:45000"), HOST));
}

#[test]
fn loopback_counts_only_in_host_netns() {
    let f = default_filter();
    assert!(f.is_destination(addr("127.0.0.1:6379"), HOST));
    assert!(!f.is_destination(addr("127.0.0.1:6379"), CONTAINER));
    assert!(f.is_destination(addr("[::1]:6379"), HOST));
    assert!(!f.is_destination(addr("[::1]:6379"), CONTAINER));
    // Non-loopback destinations count from any netns.
    assert!(f.is_destination(addr("10.0.0.1:6379"), CONTAINER));
}

#[test]
fn unspecified_and_port_zero_are_not_destinations() {
    let f = default_filter();
    assert!(!f.is_destination(addr("0.0.0.0:80"), HOST));
    assert!(!f.is_destination(addr("[::]:80"), HOST));
    assert!(!f.is_destination(addr("10.0.0.1:0"), HOST));
}

#[test]
fn public_networks_are_tracked_only_when_listed() {
    let f = ConnectionFilter::new(
        DEFAULT_EPHEMERAL_PORTS,
        vec![
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        HOST,
    );
    assert!(f.is_destination(addr("203.0.113.7:443"), HOST));
    assert!(!f.is_destination(addr("198.51.100.7:443"), HOST));
    assert!(f.is_destination(addr("[2001:db8::1]:443"), HOST));
    assert!(!f.is_destination(addr("[2a00::1]:443"), HOST));
    // Private ranges always count.
    for p in [
        "10.1.2.3:80",
        "172.16.0.1:80",
        "192.168.1.1:80",
        "100.64.0.1:80",
        "169.254.169.254:80",
        "[fd00::1]:80",
        "[fe80::1]:80",
    ] {
        assert!(f.is_destination(addr(p), HOST), "{p}");
    }
    // Default: every public network.
    assert!(default_filter().is_destination(addr("198.51.100.7:443"), HOST));
    assert!(default_filter().is_destination(addr("[2a00::1]:443"), HOST));
    // Empty list: no public destination at all.
    let none = ConnectionFilter::new(DEFAULT_EPHEMERAL_PORTS, vec![], HOST);
    assert!(!none.is_destination(addr("198.51.100.7:443"), HOST));
    assert!(none.is_destination(addr("10.0.0.1:443"), HOST));
}

#[test]
fn listen_filter() {
    let f = default_filter();
    assert!(f.is_tracked_listen(addr("0.0.0.0:80")));
    assert!(f.is_tracked_listen(addr("127.0.0.1:8080")));
    assert!(!f.is_tracked_listen(addr("0.0.0.0:40000")));
    assert!(!f.is_tracked_listen(addr("0.0.0.0:0")));
}

#[test]
fn cidr_parsing_and_matching() {
    let c: Cidr = "10.0.0.0/8".parse().unwrap();
    assert!(c.contains("10.255.1.1".parse().unwrap()));
    assert!(!c.contains("11.0.0.1".parse().unwrap()));
    assert!(!c.contains("::ffff:10.0.0.1".parse().unwrap()));
    let all: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains("1.2.3.4".parse().unwrap()));
    let host: Cidr = "1.2.3.4/32".parse().unwrap();
    assert!(host.contains("1.2.3.4".parse().unwrap()));
    assert!(!host.contains("1.2.3.5".parse().unwrap()));
    assert_eq!(host.to_string(), "1.2.3.4/32");
    for bad in [
        "10.0.0.0",
        "10.0.0.0/33",
        "::/129",
        "x/8",
        "10.0.0.0/-1",
        "",
    ] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad}");
    }
}

#[test]
fn port_range_parsing() {
    assert_eq!(parse_port_range("32768-60999").unwrap(), 32768..=60999);
    assert_eq!(parse_port_range(" 1 - 1 ").unwrap(), 1..=1);
    for bad in ["", "1", "2-1", "0-10", "1-70000", "a-b", "1-2-3"] {
        assert!(parse_port_range(bad).is_err(), "{bad}");
    }
}

#[test]
fn netns_links() {
    assert_eq!(parse_netns_link("net:[4026531840]"), Some(4026531840));
    assert_eq!(parse_netns_link("mnt:[4026531840]"), None);
    assert_eq!(parse_netns_link("net:[x]"), None);
}

#[test]
fn host_netns_reads_pid1_link_from_injected_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("1/ns")).unwrap();
    std::os::unix::fs::symlink("net:[4026531999]", dir.path().join("1/ns/net")).unwrap();
    assert_eq!(host_netns(dir.path()).unwrap(), 4026531999);
    let empty = tempfile::tempdir().unwrap();
    assert!(host_netns(empty.path()).is_err());
}

#[test]
fn several_ephemeral_ranges_and_grpc_is_always_a_service() {
    let f = ConnectionFilter::new(
        EphemeralPorts::new(vec![
            parse_port_range("32768-60999").unwrap(),
            parse_port_range("10000-10010").unwrap(),
        ]),
        vec![],
        HOST,
    );
    let d = |port| SocketAddr::from(([10, 0, 0, 1], port));
    assert!(!f.is_destination(d(10005), HOST));
    assert!(!f.is_destination(d(40000), HOST));
    assert!(f.is_destination(d(10011), HOST));
    // 50051 (gRPC) lies in the default ephemeral range and is still a service.
    assert!(f.is_destination(d(50051), HOST));
    assert!(f.is_tracked_listen(d(50051)));
    assert!(!f.is_tracked_listen(d(50052)));
}
