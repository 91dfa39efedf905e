//! HPACK (RFC 7541) decoding for the HTTP/2 parser: one decoder per
//! direction of a connection, with its dynamic table.
//!
//! The dynamic table is bounded: its size limit is what the peer announced
//! (SETTINGS_HEADER_TABLE_SIZE, 4096 by default), capped at [`TABLE_CAP`];
//! a size update above the cap is clamped and counted by the caller. Entries
//! are allocated (HPACK's one allocation); decoding a block allocates only
//! when a string is longer than the decoder's scratch buffers have grown.

use std::collections::VecDeque;

/// Largest dynamic table we keep, whatever the peer allows.
pub(crate) const TABLE_CAP: usize = 64 * 1024;
/// RFC 7541 4.1: an entry's size is its name and value plus 32.
const ENTRY_OVERHEAD: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// The block ends inside a representation.
    Truncated,
    /// An index that is in neither table (or a desynchronised table).
    BadIndex,
    /// Invalid Huffman code, EOS inside a string, or bad padding.
    Huffman,
    /// An integer that does not fit.
    Overflow,
    /// A size update above the limit (clamped).
    SizeAboveLimit,
}

#[derive(Debug)]
struct Entry {
    name: Box<[u8]>,
    value: Box<[u8]>,
}

#[derive(Debug)]
pub(crate) struct Decoder {
    /// Newest first.
    table: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    /// The most a size update may set (SETTINGS_HEADER_TABLE_SIZE, capped).
    limit: usize,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: 4096,
            limit: 4096,
            name: Vec::new(),
            value: Vec::new(),
        }
    }
}

impl Decoder {
    /// The peer's SETTINGS_HEADER_TABLE_SIZE. Returns false when it was
    /// above [`TABLE_CAP`] (clamped).
    pub fn set_limit(&mut self, v: u32) -> bool {
        let v = v as usize;
        self.limit = v.min(TABLE_CAP);
        v <= TABLE_CAP
    }

    /// Decode one complete header block, calling `f(name, value)` per field.
    /// On error the fields before it were delivered; the table may then be
    /// out of step with the encoder's.
    pub fn decode(&mut self, mut b: &[u8], f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Error> {
        let mut clamped = false;
        while let Some(&first) = b.first() {
            if first & 0x80 != 0 {
                let (idx, rest) = int(b, 7)?;
                b = rest;
                let (n, v) = self.get(idx)?;
                f(n, v);
            } else if first & 0xe0 == 0x20 {
                let (sz, rest) = int(b, 5)?;
                b = rest;
                let sz = if sz > self.limit {
                    clamped = true;
                    self.limit
                } else {
                    sz
                };
                self.max_size = sz;
                self.evict(0);
            } else {
                // Literal: with incremental indexing (01), without (0000),
                // never indexed (0001).
                let (prefix, index) = if first & 0xc0 == 0x40 {
                    (6, true)
                } else {
                    (4, false)
                };
                let (idx, rest) = int(b, prefix)?;
                b = rest;
                let mut name = std::mem::take(&mut self.name);
                let mut value = std::mem::take(&mut self.value);
                name.clear();
                value.clear();
                let r = (|| {
                    if idx == 0 {
                        b = string(b, &mut name)?;
                    } else {
                        name.extend_from_slice(self.get(idx)?.0);
                    }
                    b = string(b, &mut value)?;
                    Ok(())
                })();
                if r.is_ok() {
                    f(&name, &value);
                    if index {
                        self.insert(&name, &value);
                    }
                }
                self.name = name;
                self.value = value;
                r?;
            }
        }
        if clamped {
            Err(Error::SizeAboveLimit)
        } else {
            Ok(())
        }
    }

    fn get(&self, idx: usize) -> Result<(&[u8], &[u8]), Error> {
        match idx {
            0 => Err(Error::BadIndex),
            1..=61 => Ok(STATIC[idx - 1]),
            _ => self
                .table
                .get(idx - 62)
                .map(|e| (&*e.name, &*e.value))
                .ok_or(Error::BadIndex),
        }
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let sz = name.len() + value.len() + ENTRY_OVERHEAD;
        if sz > self.max_size {
            // RFC 7541 4.4: an entry larger than the table empties it.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(sz);
        self.table.push_front(Entry {
            name: name.into(),
            value: value.into(),
        });
        self.size += sz;
    }

    /// Evict until `extra` more bytes fit.
    fn evict(&mut self, extra: usize) {
        while self.size + extra > self.max_size {
            match self.table.pop_back() {
                Some(e) => self.size -= e.name.len() + e.value.len() + ENTRY_OVERHEAD,
                None => break,
            }
        }
    }

    #[cfg(test)]
    pub fn table_size(&self) -> usize {
        self.size
    }
}

/// RFC 7541 5.1 integer with an N-bit prefix.
fn int(b: &[u8], n: u8) -> Result<(usize, &[u8]), Error> {
    let mask = (1u16 << n) as u8 - 1;
    let first = *b.first().ok_or(Error::Truncated)?;
    let mut v = (first & mask) as usize;
    if v < mask as usize {
        return Ok((v, &b[1..]));
    }
    let mut shift = 0u32;
    for (i, &c) in b[1..].iter().enumerate() {
        if shift > 28 {
            return Err(Error::Overflow);
        }
        v += ((c & 0x7f) as usize) << shift;
        shift += 7;
        if c & 0x80 == 0 {
            return Ok((v, &b[2 + i..]));
        }
    }
    Err(Error::Truncated)
}

/// RFC 7541 5.2 string literal into `out`.
fn string<'a>(b: &'a [u8], out: &mut Vec<u8>) -> Result<&'a [u8], Error> {
    let huffman = b.first().ok_or(Error::Truncated)? & 0x80 != 0;
    let (len, rest) = int(b, 7)?;
    let s = rest.get(..len).ok_or(Error::Truncated)?;
    if huffman {
        huffman_decode(s, out)?;
    } else {
        out.extend_from_slice(s);
    }
    Ok(&rest[len..])
}

/// Canonical Huffman decoding (the HPACK code is canonical: codes of each
/// length are consecutive, in symbol order), MSB first.
pub(crate) fn huffman_decode(s: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let (mut code, mut first, mut index, mut len) = (0u32, 0u32, 0usize, 0usize);
    // Bits of the code in progress, all ones so far (valid padding).
    let mut ones = true;
    for &byte in s {
        for bit in (0..8).rev() {
            let b = ((byte >> bit) & 1) as u32;
            code |= b;
            ones &= b == 1;
            len += 1;
            if len >= HUFF_COUNT.len() {
                return Err(Error::Huffman);
            }
            let count = HUFF_COUNT[len] as u32;
            if code < first + count {
                let sym = HUFF_SYMS[index + (code - first) as usize];
                if sym == 256 {
                    return Err(Error::Huffman); // EOS in a string
                }
                out.push(sym as u8);
                (code, first, index, len) = (0, 0, 0, 0);
                ones = true;
                continue;
            }
            index += count as usize;
            first = (first + count) << 1;
            code <<= 1;
        }
    }
    // Padding: fewer than 8 bits, all ones (a prefix of EOS).
    if len >= 8 || !ones {
        return Err(Error::Huffman);
    }
    Ok(())
}

/// Codes per bit length (index = length), RFC 7541 Appendix B.
const HUFF_COUNT: [u16; 31] = [
    0, 0, 0, 0, 0, 10, 26, 32, 6, 0, 5, 3, 2, 6, 2, 3, 0, 0, 0, 3, 8, 13, 26, 29, 12, 4, 15, 19,
    29, 0, 4,
];
/// Symbols in canonical order (by code length, then symbol), RFC 7541 Appendix B.
const HUFF_SYMS: [u16; 257] = [
    48, 49, 50, 97, 99, 101, 105, 111, 115, 116, 32, 37, 45, 46, 47, 51, 52, 53, 54, 55, 56, 57,
    61, 65, 95, 98, 100, 102, 103, 104, 108, 109, 110, 112, 114, 117, 58, 66, 67, 68, 69, 70, 71,
    72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 89, 106, 107, 113, 118, 119,
    120, 121, 122, 38, 42, 44, 59, 88, 90, 33, 34, 40, 41, 63, 39, 43, 124, 35, 62, 0, 36, 64, 91,
    93, 126, 94, 125, 60, 96, 123, 92, 195, 208, 128, 130, 131, 162, 184, 194, 224, 226, 153, 161,
    167, 172, 176, 177, 179, 209, 216, 217, 227, 229, 230, 129, 132, 133, 134, 136, 146, 154, 156,
    160, 163, 164, 169, 170, 173, 178, 181, 185, 186, 187, 189, 190, 196, 198, 228, 232, 233, 1,
    135, 137, 138, 139, 140, 141, 143, 147, 149, 150, 151, 152, 155, 157, 158, 165, 166, 168, 174,
    175, 180, 182, 183, 188, 191, 197, 231, 239, 9, 142, 144, 145, 148, 159, 171, 206, 215, 225,
    236, 237, 199, 207, 234, 235, 192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242,
    243, 255, 203, 204, 211, 212, 214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251, 252,
    253, 254, 2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28,
    29, 30, 31, 127, 220, 249, 10, 13, 22, 256,
];

/// The static table, RFC 7541 Appendix A (index 1 first).
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

#[cfg(test)]
#[path = "hpack_tests.rs"]
mod tests;
