//! MongoDB wire protocol: OP_MSG, OP_COMPRESSED, and the legacy OP_QUERY /
//! OP_GET_MORE answered by OP_REPLY.
//!
//! Every message starts `[length: i32][requestID: i32][responseTo: i32]
//! [opCode: i32]` (little-endian). A request (responseTo 0) is matched with
//! the response whose responseTo is its requestID. An OP_MSG with the
//! moreToCome flag expects no response; a response with moreToCome (an
//! exhaust cursor, the streaming hello of a driver's monitor) is followed by
//! more responses each answering the previous one: those are followed, not
//! counted. Counted (coroot counts OP_MSG and OP_COMPRESSED; the legacy ops
//! are the addition): OP_MSG, OP_COMPRESSED, OP_QUERY, OP_GET_MORE.
//! Fire-and-forget legacy writes (OP_INSERT/UPDATE/DELETE/KILL_CURSORS)
//! have no response and are not counted.
//!
//! Status: coroot calls every response `ok`. sonde reads the reply document
//! when its head is visible: a server error reply (`{ok: 0, errmsg, code}`,
//! `ok` first as the server writes it) or an OP_REPLY with the QueryFailure
//! flag is `failed`. A success reply puts `ok: 1` last, usually out of
//! sight: absent a visible `ok: 0`, the reply is `ok`. Compressed replies
//! cannot be read: `ok`.

use crate::framer::{Framer, Inflight, Len, completed, is_request, le_u32, lost_place};
use crate::{Chunk, Method, Protocol, Request, Role, SessionStats, Status};

const OP_REPLY: u32 = 1;
const OP_QUERY: u32 = 2004;
const OP_GET_MORE: u32 = 2005;
const OP_COMPRESSED: u32 = 2012;
const OP_MSG: u32 = 2013;
const MORE_TO_COME: u32 = 1 << 1;
const QUERY_FAILURE: u32 = 1 << 1;
/// mongod's maxMessageSizeBytes is 48 MB.
const MESSAGE_MAX: u64 = 64 << 20;
/// Head bytes looked at: header, flags and the reply document's first
/// element (OP_REPLY's document starts at 36).
const HEAD: usize = 64;

fn message_len(h: &[u8]) -> Len {
    let n = u64::from(le_u32(h, 0));
    if !(16..=MESSAGE_MAX).contains(&n) {
        Len::Garbage
    } else {
        Len::Total(n)
    }
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    ts_ns: u64,
    request_id: u32,
}

#[derive(Debug, Default)]
pub(crate) struct MongoState {
    requests: Framer<HEAD>,
    responses: Framer<HEAD>,
    inflight: Inflight<Waiting>,
    /// requestID of the last response that promised more (moreToCome).
    exhaust: Option<u32>,
}

/// The value of a top-level `ok` element if it is the document's first
/// element (where the server puts it in an error reply); None otherwise.
fn first_ok(doc: &[u8]) -> Option<f64> {
    // [doc length: i32][type: u8]["ok\0"][value]
    let t = *doc.get(4)?;
    if doc.get(5..8)? != b"ok\0" {
        return None;
    }
    let v = doc.get(8..)?;
    match t {
        0x01 => Some(f64::from_le_bytes(v.get(..8)?.try_into().ok()?)),
        0x10 => Some(f64::from(i32::from_le_bytes(v.get(..4)?.try_into().ok()?))),
        0x12 => Some(i64::from_le_bytes(v.get(..8)?.try_into().ok()?) as f64),
        0x08 => Some(f64::from(*v.first()?)),
        _ => None,
    }
}

fn reply_status(h: &[u8], op: u32) -> Status {
    let failed = match op {
        // [flagBits: u32][section kind: u8 = 0][document]
        OP_MSG if h.get(20) == Some(&0) => first_ok(h.get(21..).unwrap_or_default()) == Some(0.0),
        OP_REPLY => {
            le_u32(h, 16) & QUERY_FAILURE != 0
                || first_ok(h.get(36..).unwrap_or_default()) == Some(0.0)
        }
        _ => false,
    };
    if failed { Status::Failed } else { Status::Ok }
}

impl MongoState {
    pub(crate) fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        if is_request(role, chunk) {
            let inflight = &mut self.inflight;
            let r = self.requests.feed(chunk, 4, message_len, |h, _, ts| {
                let (request_id, response_to, op) = (le_u32(h, 4), le_u32(h, 8), le_u32(h, 12));
                if h.len() < 16 || response_to != 0 {
                    stats.parse_errors += 1;
                    return;
                }
                let answered = match op {
                    OP_MSG => le_u32(h, 16) & MORE_TO_COME == 0,
                    OP_COMPRESSED | OP_QUERY | OP_GET_MORE => true,
                    _ => false,
                };
                if answered
                    && inflight.push(Waiting {
                        ts_ns: ts,
                        request_id,
                    })
                {
                    stats.pending_overflow += 1;
                }
            });
            // Matched by id: a request lost with the place is never
            // answered by another's response, so what waits stays.
            lost_place(r, stats);
        } else {
            let (inflight, exhaust) = (&mut self.inflight, &mut self.exhaust);
            let r = self.responses.feed(chunk, 4, message_len, |h, _, ts| {
                let (request_id, response_to, op) = (le_u32(h, 4), le_u32(h, 8), le_u32(h, 12));
                if h.len() < 16 || !matches!(op, OP_MSG | OP_COMPRESSED | OP_REPLY) {
                    stats.parse_errors += 1;
                    return;
                }
                let more = op == OP_MSG && le_u32(h, 16) & MORE_TO_COME != 0;
                if let Some(w) = inflight.take(|w| w.request_id == response_to) {
                    out.push(completed(
                        Protocol::Mongo,
                        reply_status(h, op),
                        w.ts_ns,
                        ts,
                        Method::Unknown,
                    ));
                } else if *exhaust != Some(response_to) {
                    stats.unmatched_responses += 1;
                }
                *exhaust = more.then_some(request_id);
            });
            // Matched by id: a request lost with the place is never
            // answered by another's response, so what waits stays.
            lost_place(r, stats);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Direction;

    /// A BSON document of one element `name` (a double, or a string).
    pub(crate) fn doc(elems: &[(&str, Option<f64>, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, num, s) in elems {
            match num {
                Some(v) => {
                    b.push(0x01);
                    b.extend_from_slice(name.as_bytes());
                    b.push(0);
                    b.extend_from_slice(&v.to_le_bytes());
                }
                None => {
                    b.push(0x02);
                    b.extend_from_slice(name.as_bytes());
                    b.push(0);
                    b.extend_from_slice(&(s.len() as i32 + 1).to_le_bytes());
                    b.extend_from_slice(s.as_bytes());
                    b.push(0);
                }
            }
        }
        let mut d = ((b.len() + 5) as i32).to_le_bytes().to_vec();
        d.extend(b);
        d.push(0);
        d
    }

    /// An OP_MSG with one kind-0 section.
    pub(crate) fn op_msg(id: u32, to: u32, flags: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + 4 + 1 + body.len()) as u32).to_le_bytes());
        m.extend_from_slice(&id.to_le_bytes());
        m.extend_from_slice(&to.to_le_bytes());
        m.extend_from_slice(&OP_MSG.to_le_bytes());
        m.extend_from_slice(&flags.to_le_bytes());
        m.push(0);
        m.extend_from_slice(body);
        m
    }

    fn feed(
        s: &mut MongoState,
        dir: Direction,
        ts: u64,
        b: &[u8],
        out: &mut Vec<Request>,
        st: &mut SessionStats,
    ) {
        let c = Chunk {
            ts_ns: ts,
            direction: dir,
            size: b.len() as u32,
            payload: &b[..b.len().min(512)],
        };
        s.feed(Role::Client, &c, out, st);
    }

    #[test]
    fn op_msg_ok_error_and_exhaust() {
        let mut s = MongoState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        use Direction::{Egress, Ingress};
        let find = op_msg(7, 0, 0, &doc(&[("find", None, "t"), ("$db", None, "test")]));
        feed(&mut s, Egress, 100, &find, &mut out, &mut st);
        // A driver reads the 16-byte header, then the body.
        let reply = op_msg(
            900,
            7,
            0,
            &doc(&[("n", Some(1.0), ""), ("ok", Some(1.0), "")]),
        );
        feed(&mut s, Ingress, 130, &reply[..16], &mut out, &mut st);
        feed(&mut s, Ingress, 131, &reply[16..], &mut out, &mut st);
        let bad = op_msg(
            8,
            0,
            0,
            &doc(&[("drop", None, "missing"), ("$db", None, "test")]),
        );
        feed(&mut s, Egress, 200, &bad, &mut out, &mut st);
        let err = op_msg(
            901,
            8,
            0,
            &doc(&[("ok", Some(0.0), ""), ("errmsg", None, "ns not found")]),
        );
        feed(&mut s, Ingress, 210, &err, &mut out, &mut st);
        // Fire-and-forget (moreToCome): no response expected.
        feed(
            &mut s,
            Egress,
            300,
            &op_msg(9, 0, 2, &doc(&[("insert", None, "t")])),
            &mut out,
            &mut st,
        );
        // Streaming hello: one answer, then a stream of replies.
        feed(
            &mut s,
            Egress,
            400,
            &op_msg(10, 0, 1 << 16, &doc(&[("hello", Some(1.0), "")])),
            &mut out,
            &mut st,
        );
        feed(
            &mut s,
            Ingress,
            410,
            &op_msg(902, 10, 2, &doc(&[("ok", Some(1.0), "")])),
            &mut out,
            &mut st,
        );
        feed(
            &mut s,
            Ingress,
            420,
            &op_msg(903, 902, 2, &doc(&[("ok", Some(1.0), "")])),
            &mut out,
            &mut st,
        );
        feed(
            &mut s,
            Ingress,
            430,
            &op_msg(904, 903, 0, &doc(&[("ok", Some(1.0), "")])),
            &mut out,
            &mut st,
        );
        assert_eq!(st, SessionStats::default());
        let got: Vec<_> = out.iter().map(|r| (r.status, r.duration_ns)).collect();
        assert_eq!(
            got,
            vec![(Status::Ok, 30), (Status::Failed, 10), (Status::Ok, 10)]
        );
    }

    #[test]
    fn legacy_op_query_and_reply() {
        let mut s = MongoState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        let q = doc(&[("isMaster", Some(1.0), "")]);
        let mut m = Vec::new();
        let body_len = 4 + 11 + 4 + 4 + q.len();
        m.extend_from_slice(&((16 + body_len) as u32).to_le_bytes());
        m.extend_from_slice(&5u32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&OP_QUERY.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(b"admin.$cmd\0");
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&1u32.to_le_bytes());
        m.extend_from_slice(&q);
        feed(&mut s, Direction::Egress, 1, &m, &mut out, &mut st);
        for (to, flags, ok) in [(5u32, 0u32, 1.0), (6, 2, 0.0)] {
            if to == 6 {
                let mut m2 = m.clone();
                m2[4] = 6;
                feed(&mut s, Direction::Egress, 2, &m2, &mut out, &mut st);
            }
            let d = doc(&[("ok", Some(ok), "")]);
            let mut r = Vec::new();
            r.extend_from_slice(&((36 + d.len()) as u32).to_le_bytes());
            r.extend_from_slice(&77u32.to_le_bytes());
            r.extend_from_slice(&to.to_le_bytes());
            r.extend_from_slice(&OP_REPLY.to_le_bytes());
            r.extend_from_slice(&flags.to_le_bytes());
            r.extend_from_slice(&[0; 16]);
            r.extend_from_slice(&d);
            feed(&mut s, Direction::Ingress, 5, &r, &mut out, &mut st);
        }
        assert_eq!(st, SessionStats::default());
        let got: Vec<_> = out.iter().map(|r| r.status).collect();
        assert_eq!(got, vec![Status::Ok, Status::Failed]);
    }
}
