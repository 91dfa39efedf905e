//! Pure decoding: `struct taskstats` payloads by version, and taskstats netlink replies.
//!
//! Layout facts (include/uapi/linux/taskstats.h history), all fields in host byte order:
//! - v1 (2.6.18 only): `u16 version; u16 padding[3];` then the delay block, so
//!   `cpu_delay_total` is at 16 and `blkio_delay_total` at 32; the block ends at 72.
//! - v2..v14: `u16 version; u32 ac_exitcode; u8 ac_flag; u8 ac_nice;` then `cpu_count`
//!   `aligned(8)` at 16: `cpu_delay_total` at 24, `blkio_delay_total` at 40, block ends at 80.
//! - v15 (6.16): `*_delay_max` and `*_delay_min` were inserted after each `*_delay_total`,
//!   moving `blkio_delay_total` to 56 (block ends at 128). An ABI break, reverted in v16.
//! - v16+: the v14 layout again, max/min appended at the end; newer versions only append.
//!
//! So the fields are chosen by the version field, never by assuming the newest layout.

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    Nla, NlasIterator, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

use crate::{Error, TaskDelays};

/// `TASKSTATS_CMD_GET`: user -> kernel request.
pub(crate) const TASKSTATS_CMD_GET: u8 = 1;
/// `TASKSTATS_CMD_NEW`: kernel -> user reply.
pub(crate) const TASKSTATS_CMD_NEW: u8 = 2;
/// `TASKSTATS_GENL_VERSION`.
const TASKSTATS_GENL_VERSION: u8 = 1;
/// `TASKSTATS_CMD_ATTR_TGID`.
const TASKSTATS_CMD_ATTR_TGID: u16 = 2;

/// `TASKSTATS_TYPE_*` reply attributes.
const TYPE_PID: u16 = 1;
const TYPE_TGID: u16 = 2;
const TYPE_STATS: u16 = 3;
const TYPE_AGGR_PID: u16 = 4;
const TYPE_AGGR_TGID: u16 = 5;

/// Versions above this are taken as garbage rather than a future kernel: the struct gains one
/// version every year or two (v17 in 2025), so 64 leaves decades of headroom.
const MAX_PLAUSIBLE_VERSION: u16 = 64;

const ESRCH: i32 = libc::ESRCH;

/// Where the two delay totals sit in one struct version, and where its delay block ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    cpu_delay_total: usize,
    blkio_delay_total: usize,
    /// End of the delay-accounting block: the minimum payload we accept for this version.
    delay_block_end: usize,
}

fn layout_for(version: u16) -> Option<Layout> {
    match version {
        0 => None,
        1 => Some(Layout {
            cpu_delay_total: 16,
            blkio_delay_total: 32,
            delay_block_end: 72,
        }),
        15 => Some(Layout {
            cpu_delay_total: 24,
            blkio_delay_total: 56,
            delay_block_end: 128,
        }),
        v if v <= MAX_PLAUSIBLE_VERSION => Some(Layout {
            cpu_delay_total: 24,
            blkio_delay_total: 40,
            delay_block_end: 80,
        }),
        _ => None,
    }
}

fn read_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    let field = bytes.get(offset..offset.checked_add(8)?)?;
    let arr: [u8; 8] = field.try_into().ok()?;
    Some(u64::from_ne_bytes(arr))
}

/// Decodes one `struct taskstats` payload (the bytes of a `TASKSTATS_TYPE_STATS` attribute)
/// by its version field: the offsets of `cpu_delay_total` and `blkio_delay_total` depend on it.
///
/// Payloads longer than the version's delay block are accepted (the kernel sends its whole
/// struct, which grows at the end); shorter ones, version 0 or an implausible version are errors.
pub fn decode_taskstats(bytes: &[u8]) -> Result<TaskDelays, Error> {
    let version = match bytes.get(0..2) {
        Some(&[a, b]) => u16::from_ne_bytes([a, b]),
        _ => {
            return Err(Error::Truncated {
                version: 0,
                len: bytes.len(),
                needed: 2,
            });
        }
    };
    let layout = layout_for(version).ok_or(Error::BadVersion { version })?;
    if bytes.len() < layout.delay_block_end {
        return Err(Error::Truncated {
            version,
            len: bytes.len(),
            needed: layout.delay_block_end,
        });
    }
    // Both offsets are inside delay_block_end, checked above; `get` keeps it panic-free anyway.
    let truncated = || Error::Truncated {
        version,
        len: bytes.len(),
        needed: layout.delay_block_end,
    };
    Ok(TaskDelays {
        cpu_delay_ns: read_u64(bytes, layout.cpu_delay_total).ok_or_else(truncated)?,
        blkio_delay_ns: read_u64(bytes, layout.blkio_delay_total).ok_or_else(truncated)?,
        version,
    })
}

/// Generic-netlink payload of the TASKSTATS family: raw attributes. Requests are built from
/// [`TgidAttr`]; replies are walked by [`parse_stats_attrs`] (nested, so kept raw here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskstatsPayload {
    pub(crate) cmd: u8,
    pub(crate) attrs: Vec<u8>,
}

impl TaskstatsPayload {
    /// A `TASKSTATS_CMD_GET` for one thread group.
    pub(crate) fn get_tgid(tgid: u32) -> Self {
        let attr = TgidAttr(tgid);
        let mut attrs = vec![0u8; attr.buffer_len()];
        attr.emit(&mut attrs);
        TaskstatsPayload {
            cmd: TASKSTATS_CMD_GET,
            attrs,
        }
    }
}

impl GenlFamily for TaskstatsPayload {
    fn family_name() -> &'static str {
        "TASKSTATS"
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        TASKSTATS_GENL_VERSION
    }
}

impl Emitable for TaskstatsPayload {
    fn buffer_len(&self) -> usize {
        self.attrs.len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        buffer[..self.attrs.len()].copy_from_slice(&self.attrs);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for TaskstatsPayload {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(TaskstatsPayload {
            cmd: header.cmd,
            attrs: buf.to_vec(),
        })
    }
}

/// `TASKSTATS_CMD_ATTR_TGID` request attribute.
struct TgidAttr(u32);

impl Nla for TgidAttr {
    fn value_len(&self) -> usize {
        4
    }
    fn kind(&self) -> u16 {
        TASKSTATS_CMD_ATTR_TGID
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        buffer[..4].copy_from_slice(&self.0.to_ne_bytes());
    }
}

/// What one reply message to a tgid query said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TgidReply {
    /// The stats of the thread group.
    Stats(TaskDelays),
    /// `ESRCH`: the process is gone.
    Gone,
}

/// Walks the attributes of a `TASKSTATS_CMD_NEW` reply. The kernel nests the answer:
/// `AGGR_TGID { TGID(u32), STATS(struct taskstats) }` (or `AGGR_PID { PID, STATS }` for pid
/// queries), possibly with `TYPE_NULL` padding around; a bare `STATS` is accepted too.
/// When an id attribute is present it must equal `expect_id`.
pub(crate) fn parse_stats_attrs(attrs: &[u8], expect_id: u32) -> Result<TaskDelays, String> {
    let mut found = None;
    walk_stats(attrs, expect_id, 0, &mut found)?;
    found.ok_or_else(|| "no TASKSTATS_TYPE_STATS attribute".to_string())
}

fn walk_stats(
    attrs: &[u8],
    expect_id: u32,
    depth: u8,
    found: &mut Option<TaskDelays>,
) -> Result<(), String> {
    // The kernel nests one level; two guards against hostile recursion.
    if depth > 2 {
        return Err("attributes nested too deep".to_string());
    }
    for nla in NlasIterator::new(attrs) {
        let nla = nla.map_err(|e| format!("bad attribute: {e}"))?;
        let value = nla.value();
        match nla.kind() {
            TYPE_AGGR_TGID | TYPE_AGGR_PID => walk_stats(value, expect_id, depth + 1, found)?,
            TYPE_PID | TYPE_TGID => {
                let id = match value.get(0..4) {
                    Some(&[a, b, c, d]) => u32::from_ne_bytes([a, b, c, d]),
                    _ => return Err(format!("id attribute of {} bytes", value.len())),
                };
                if id != expect_id {
                    return Err(format!("reply is for id {id}, asked {expect_id}"));
                }
            }
            TYPE_STATS => {
                let delays = decode_taskstats(value).map_err(|e| e.to_string())?;
                *found = Some(delays);
            }
            // TYPE_NULL padding and attributes of future kernels.
            _ => {}
        }
    }
    Ok(())
}

/// Splits a received datagram into netlink messages and returns the first one carrying
/// `seq`, parsed by `parse`. Messages with other sequence numbers are stale answers to
/// requests that timed out earlier and are skipped. `Ok(None)`: nothing for `seq` here.
pub(crate) fn find_reply<I, T>(
    datagram: &[u8],
    seq: u32,
    parse: impl Fn(NetlinkMessage<I>) -> Result<T, String>,
) -> Result<Option<T>, String>
where
    I: NetlinkDeserializable,
    I::Error: std::fmt::Display,
{
    let mut offset = 0usize;
    while offset < datagram.len() {
        let rest = &datagram[offset..];
        let len = match rest.get(0..4) {
            Some(&[a, b, c, d]) => u32::from_ne_bytes([a, b, c, d]) as usize,
            _ => return Err(format!("{} trailing bytes after messages", rest.len())),
        };
        // 16 = sizeof(struct nlmsghdr): a shorter length would loop forever or misparse.
        if len < 16 || len > rest.len() {
            return Err(format!(
                "message length {len} with {} bytes left",
                rest.len()
            ));
        }
        let msg = NetlinkMessage::<I>::deserialize(&rest[..len]).map_err(|e| e.to_string())?;
        if msg.header.sequence_number == seq {
            return parse(msg).map(Some);
        }
        // NLMSG_ALIGN
        offset = offset.saturating_add((len + 3) & !3);
    }
    Ok(None)
}

/// Parses one reply message to a tgid query.
pub(crate) fn parse_tgid_message(
    msg: NetlinkMessage<GenlMessage<TaskstatsPayload>>,
    tgid: u32,
) -> Result<Result<TgidReply, i32>, String> {
    match msg.payload {
        NetlinkPayload::InnerMessage(genl) => {
            if genl.payload.cmd != TASKSTATS_CMD_NEW {
                return Err(format!("unexpected command {}", genl.payload.cmd));
            }
            parse_stats_attrs(&genl.payload.attrs, tgid).map(|d| Ok(TgidReply::Stats(d)))
        }
        NetlinkPayload::Error(err) => match err.code {
            None => Err("unexpected ACK without data".to_string()),
            Some(code) if code.get() == -ESRCH => Ok(Ok(TgidReply::Gone)),
            Some(code) => Ok(Err(code.get().saturating_neg())),
        },
        other => Err(format!(
            "unexpected netlink message type {}",
            other.message_type()
        )),
    }
}

/// Builds the full netlink request bytes for a tgid query (pure, for the client and tests).
pub(crate) fn tgid_request(family_id: u16, seq: u32, tgid: u32) -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(TaskstatsPayload::get_tgid(tgid));
    genl.set_resolved_family_id(family_id);
    genl.finalize();
    let mut header = NetlinkHeader::default();
    header.flags = netlink_packet_core::NLM_F_REQUEST;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(genl));
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
