//! ClickHouse native TCP protocol.
//!
//! Native packets are varint-typed and carry no length, and data blocks are
//! only decodable with their column types: the stream cannot be followed
//! byte by byte from a 512-byte window. So, as coroot-node-agent does, a
//! chunk is judged by its first packet. A request-direction chunk that
//! starts with a well-formed Query packet (type 1, an empty or UUID query
//! id, client info of an initial or secondary query over a known interface)
//! is a query. It completes at the first response-direction chunk that
//! starts with Data (the result's header block), Exception or EndOfStream:
//! Exception is `failed`, the others `ok`. Progress, Log, ProfileEvents,
//! TableColumns and the like come before and are passed over, as are the
//! packets after the completing one. An exception raised after the header
//! block was sent is therefore counted `ok` (coroot's behaviour too).

use crate::framer::{Inflight, completed, is_request};
use crate::{Chunk, Method, Protocol, Request, Role, SessionStats, Status};

const CLIENT_QUERY: u8 = 1;
const SERVER_DATA: u8 = 1;
const SERVER_EXCEPTION: u8 = 2;
const SERVER_END_OF_STREAM: u8 = 5;
const QUERY_ID_UUID: u8 = 36;
const MAX_USER: u8 = 63;
const MAX_ADDRESS: u8 = 48;
/// Compression methods of a compressed block (None, LZ4, ZSTD).
const COMPRESSION: [u8; 3] = [0x02, 0x82, 0x90];

fn is_uuid(b: &[u8]) -> bool {
    b.len() >= 36 && b[8] == b'-' && b[13] == b'-' && b[18] == b'-' && b[23] == b'-'
}

/// True if `p` starts with a client Query packet (see the module doc).
pub(crate) fn is_query(p: &[u8]) -> bool {
    let get = |i: usize| p.get(i).copied();
    if get(0) != Some(CLIENT_QUERY) {
        return false;
    }
    let mut at = 2;
    match get(1) {
        Some(QUERY_ID_UUID) if p.get(2..).is_some_and(is_uuid) => at += 36,
        Some(0) => {}
        _ => return false,
    }
    // client_info: query_kind (1 initial, 2 secondary)
    if !matches!(get(at), Some(1 | 2)) {
        return false;
    }
    at += 1;
    // initial_user
    match get(at) {
        Some(n) if n <= MAX_USER => at += 1 + usize::from(n),
        _ => return false,
    }
    // initial_query_id: empty or a UUID
    match get(at) {
        Some(0) => at += 1,
        Some(QUERY_ID_UUID) if p.get(at + 1..).is_some_and(is_uuid) => at += 37,
        _ => return false,
    }
    // initial_address: an IP:port or [IPv6]:port
    match get(at) {
        Some(0) => at += 1,
        Some(n) if n <= MAX_ADDRESS => {
            if !matches!(get(at + 1), Some(b'0'..=b'9' | b'[' | b':')) {
                return false;
            }
            at += 1 + usize::from(n);
        }
        _ => return false,
    }
    // interface (TCP, HTTP, GRPC, MYSQL, POSTGRESQL, LOCAL, TCP_INTERSERVER,
    // PROMETHEUS), after initial_query_start_time_microseconds (8 bytes)
    // from protocol revision 54449 on, right here before it.
    matches!(get(at + 8), Some(1..=8)) || matches!(get(at), Some(1..=8))
}

/// The status a response-direction chunk starting with `p` gives the
/// waiting query, or None if it does not complete it.
fn response_status(p: &[u8], size: u32) -> Option<Status> {
    match *p.first()? {
        SERVER_DATA => {
            // Temporary table name: always empty in a result.
            if *p.get(1)? != 0 {
                return None;
            }
            // Uncompressed block: BlockInfo field 1; compressed: the method
            // byte after the 16-byte checksum.
            if *p.get(2)? == 1 || COMPRESSION.contains(p.get(18)?) {
                Some(Status::Ok)
            } else {
                None
            }
        }
        SERVER_EXCEPTION => {
            let code = i32::from_le_bytes(p.get(1..5)?.try_into().ok()?);
            (1..=10_000).contains(&code).then_some(Status::Failed)
        }
        SERVER_END_OF_STREAM if size == 1 => Some(Status::Ok),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub(crate) struct ClickhouseState {
    inflight: Inflight<u64>,
}

impl ClickhouseState {
    pub(crate) fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        if is_request(role, chunk) {
            if is_query(chunk.payload) && self.inflight.push(chunk.ts_ns) {
                stats.pending_overflow += 1;
            }
            return;
        }
        if self.inflight.is_empty() {
            return;
        }
        if let Some(status) = response_status(chunk.payload, chunk.size)
            && let Some(ts) = self.inflight.pop_front()
        {
            out.push(completed(
                Protocol::Clickhouse,
                status,
                ts,
                chunk.ts_ns,
                Method::Unknown,
            ));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Direction;

    /// A Query packet as clickhouse-client (revision 54460+) writes it,
    /// built from ClickHouse's Connection::sendQuery / ClientInfo::write.
    pub(crate) fn query(sql: &str) -> Vec<u8> {
        let mut q = vec![CLIENT_QUERY, 36];
        q.extend_from_slice(b"8f6c1a1e-2d0b-4b8e-9a52-3b6f0d1c2e4f");
        q.push(1); // initial query
        q.push(7);
        q.extend_from_slice(b"default");
        q.push(0); // initial_query_id
        q.push(15);
        q.extend_from_slice(b"127.0.0.1:54321");
        q.extend_from_slice(&0u64.to_le_bytes());
        q.push(1); // TCP
        q.extend_from_slice(b"\x04root\x09localhost\x11ClickHouse client\x17\x08\xd1\xa9\x03");
        q.extend_from_slice(b"\x00\x00\x02\x00"); // settings end, secret, stage, compression
        q.push(sql.len() as u8);
        q.extend_from_slice(sql.as_bytes());
        q
    }

    fn feed(
        s: &mut ClickhouseState,
        d: Direction,
        ts: u64,
        b: &[u8],
        out: &mut Vec<Request>,
        st: &mut SessionStats,
    ) {
        s.feed(
            Role::Client,
            &Chunk {
                ts_ns: ts,
                direction: d,
                size: b.len() as u32,
                payload: b,
            },
            out,
            st,
        );
    }

    #[test]
    fn queries_data_exception_progress() {
        let mut s = ClickhouseState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        use Direction::{Egress, Ingress};
        // Hello and its answer: not a query.
        feed(
            &mut s,
            Egress,
            1,
            b"\x00\x11ClickHouse client\x17\x08\xd1\xa9\x03\x07default\x07default\x00",
            &mut out,
            &mut st,
        );
        feed(
            &mut s,
            Ingress,
            2,
            b"\x00\x0aClickHouse\x17\x08\xd1\xa9\x03",
            &mut out,
            &mut st,
        );
        feed(&mut s, Egress, 10, &query("SELECT 1"), &mut out, &mut st);
        feed(
            &mut s,
            Ingress,
            12,
            b"\x03\x01\x01\x00\x00\x00",
            &mut out,
            &mut st,
        ); // Progress
        feed(
            &mut s,
            Ingress,
            15,
            b"\x01\x00\x01\x00\x02\xff\xff\xff\xff\x00\x01\x01\x01\x31\x05UInt8",
            &mut out,
            &mut st,
        );
        feed(&mut s, Ingress, 16, b"\x05", &mut out, &mut st);
        feed(&mut s, Egress, 20, &query("SELEC 1"), &mut out, &mut st);
        feed(
            &mut s,
            Ingress,
            27,
            b"\x02\x3e\x00\x00\x00\x14DB::Exception\x05Syntax",
            &mut out,
            &mut st,
        );
        feed(
            &mut s,
            Egress,
            30,
            &query("CREATE TABLE t (x UInt8) ENGINE=Memory"),
            &mut out,
            &mut st,
        );
        feed(&mut s, Ingress, 31, b"\x05", &mut out, &mut st);
        assert_eq!(st, SessionStats::default());
        let got: Vec<_> = out.iter().map(|r| (r.status, r.duration_ns)).collect();
        assert_eq!(
            got,
            vec![(Status::Ok, 5), (Status::Failed, 7), (Status::Ok, 1)]
        );
    }

    #[test]
    fn recorded_clickhouse_18_16() {
        for role in [Role::Client, Role::Server] {
            let (out, stats) = crate::testutil16::run(
                include_str!("../fixtures/clickhouse.txt"),
                role,
                ClickhouseState::feed,
            );
            assert_eq!(crate::testutil16::tally(&out), (5, 2), "{role:?}");
            assert_eq!(stats, SessionStats::default());
            assert!(out.iter().all(|r| r.duration_ns == 1000));
        }
    }

    #[test]
    fn not_queries() {
        assert!(!is_query(b"\x01\x05hello"));
        assert!(!is_query(b"\x01\x00\x03"));
        assert!(!is_query(&query("SELECT 1")[..50]));
    }
}
