//! A classic BPF socket filter for the event socket: the kernel passes only events of entries
//! with the `IPS_DST_NAT` status bit, so untranslated connections (most of a node's) cost the
//! agent nothing: no wakeup, no syscall, no decode, no buffer space (fewer overflows).
//!
//! An event is `nlmsghdr` (16) + `nfgenmsg` (4) + attributes in the order ctnetlink writes
//! them (tuple orig, tuple reply, [zone], id, status, ...). The program walks at most
//! [`MAX_ATTRS`] attributes from offset 20 looking for `CTA_STATUS` (type 3) and tests the bit
//! (the value is big-endian, as a cBPF word load reads it). Attribute headers are host order
//! (little-endian on every platform this agent targets: checked at build time below). Whatever
//! the program does not understand (a length of 256 or more, status not found) is passed to
//! userspace, where the decoder and the table decide: the filter only ever removes work.

use libc::sock_filter;

/// `IPS_DST_NAT` in `enum ip_conntrack_status`.
const IPS_DST_NAT: u32 = 1 << 5;
const CTA_STATUS: u32 = 3;
/// Attributes examined before giving up (and passing the event).
const MAX_ATTRS: usize = 6;
/// Offset of the first attribute: nlmsghdr + nfgenmsg.
const FIRST_ATTR: u32 = 20;

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
// BPF_LD (0) | BPF_B | BPF_IND.
const LD_B_IND: u16 = 0x10 | 0x40;
const LD_W_IND: u16 = 0x40;
const LDX_IMM: u16 = 0x01;
const ALU_ADD_K: u16 = 0x04;
const ALU_ADD_X: u16 = 0x04 | 0x08;
const ALU_AND_K: u16 = 0x04 | 0x50;
const JEQ_K: u16 = 0x05 | 0x10;
const JSET_K: u16 = 0x05 | 0x40;
const RET_K: u16 = 0x06;
const TAX: u16 = 0x07;

const ACCEPT: u32 = 0xffff_ffff;
const DROP: u32 = 0;

// The attribute header loads below read the low byte first: little-endian only.
const _: () = assert!(cfg!(target_endian = "little"));

/// The filter program.
pub fn dst_nat_only() -> Vec<sock_filter> {
    let ins = |code, k, jt, jf| sock_filter { code, jt, jf, k };
    // Per attribute: 9 instructions. After them (cBPF jumps only forward): `ret ACCEPT` (status
    // not found), then the status check: `ld [x+4]`, `jset`, `ret ACCEPT`, `ret DROP`.
    const PER_ATTR: usize = 9;
    let accept_at = 1 + MAX_ATTRS * PER_ATTR;
    let status_at = accept_at + 1;
    let mut p = Vec::with_capacity(status_at + 4);
    p.push(ins(LDX_IMM, FIRST_ATTR, 0, 0));
    let to = |from: usize, target: usize| -> u8 {
        // Relative to the next instruction; the program is far below 256 instructions.
        u8::try_from(target - from - 1).unwrap_or(u8::MAX)
    };
    for _ in 0..MAX_ATTRS {
        let i = p.len();
        // Type's low byte == CTA_STATUS -> check the status.
        p.push(ins(LD_B_IND, 2, 0, 0));
        p.push(ins(JEQ_K, CTA_STATUS, to(i + 1, status_at), 0));
        // Length's high byte must be 0 (attributes skipped here are < 256 bytes); else pass.
        p.push(ins(LD_B_IND, 1, 0, 0));
        p.push(ins(JEQ_K, 0, 0, to(i + 3, accept_at)));
        // X += align4(len).
        p.push(ins(LD_B_IND, 0, 0, 0));
        p.push(ins(ALU_ADD_K, 3, 0, 0));
        p.push(ins(ALU_AND_K, !3u32, 0, 0));
        p.push(ins(ALU_ADD_X, 0, 0, 0));
        p.push(ins(TAX, 0, 0, 0));
    }
    debug_assert_eq!(p.len(), accept_at);
    p.push(ins(RET_K, ACCEPT, 0, 0));
    p.push(ins(LD_W_IND, 4, 0, 0));
    p.push(ins(JSET_K, IPS_DST_NAT, 0, 1));
    p.push(ins(RET_K, ACCEPT, 0, 0));
    p.push(ins(RET_K, DROP, 0, 0));
    p
}

/// Runs the program on `packet` as the kernel would (the subset of cBPF it uses), for tests:
/// true when the packet passes. An out-of-bounds load ends the run with 0 (drop), as in the
/// kernel.
pub fn run(program: &[sock_filter], packet: &[u8]) -> bool {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    while let Some(i) = program.get(pc) {
        pc += 1;
        let at = |off: u32, n: usize| -> Option<&[u8]> {
            let start = usize::try_from(x.checked_add(off)?).ok()?;
            packet.get(start..start.checked_add(n)?)
        };
        match i.code {
            LD_B_IND => match at(i.k, 1) {
                Some(b) => a = u32::from(b[0]),
                None => return false,
            },
            LD_W_IND => match at(i.k, 4) {
                Some(b) => a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                None => return false,
            },
            LDX_IMM => x = i.k,
            ALU_ADD_K => a = a.wrapping_add(i.k),
            ALU_ADD_X => a = a.wrapping_add(x),
            ALU_AND_K => a &= i.k,
            TAX => x = a,
            JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
            JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
            RET_K => return i.k != 0,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
#[path = "filter/tests.rs"]
mod tests;
