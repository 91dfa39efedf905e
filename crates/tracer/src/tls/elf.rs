//! What a file offers the TLS uprobes: OpenSSL's `SSL_*` entry points, or a
//! Go binary's `crypto/tls.(*Conn)` methods with their RET offsets.
//!
//! Files are read lazily (`object::ReadCache`): a Go binary of 100 MB costs
//! its headers, symbol table and the two functions' bytes, not a full read.

use std::fs::File;
use std::path::Path;

use iced_x86::{Decoder, DecoderOptions, Mnemonic};
use object::read::ReadCache;
use object::{Architecture, Object, ObjectSection, ObjectSymbol};

/// File offsets of OpenSSL's entry points (0: absent; the `_ex` variants
/// exist from 1.1.1 on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OpenSslOffsets {
    pub(crate) ssl_write: u64,
    pub(crate) ssl_write_ex: u64,
    pub(crate) ssl_read: u64,
    pub(crate) ssl_read_ex: u64,
    pub(crate) ssl_set_fd: u64,
}

/// File offsets in a Go binary: the entries of `(*Conn).Write` and
/// `(*Conn).Read`, and each RET instruction of `Read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoOffsets {
    pub(crate) version: String,
    pub(crate) write: u64,
    pub(crate) read: u64,
    pub(crate) read_rets: Vec<u64>,
}

/// Why a file gets no probes (the `reason` label of the skip counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// Not readable, or not an ELF file.
    Unreadable,
    /// Not x86-64: the probes read x86-64 registers.
    Architecture,
    /// A libssl without `SSL_write` and `SSL_read`.
    NoOpenSslSymbols,
    /// A Go binary without a symbol table (built with `-ldflags=-s`).
    GoStripped,
    /// A Go binary without crypto/tls (nothing to probe; not an error).
    GoNoTls,
    /// Go before 1.17 passes arguments on the stack; the probes read registers.
    GoStackAbi,
    /// A function's bytes did not decode as x86-64 instructions: no RET
    /// offset can be trusted, so no probe is placed (a probe off an
    /// instruction boundary would corrupt the program).
    GoDecode,
    /// The kernel refused the probe (see the log line for the error).
    AttachFailed,
    /// The target bound was reached.
    TooManyTargets,
}

impl SkipReason {
    /// Every reason, in label order (rendered even when 0: a known label set).
    pub const ALL: [SkipReason; 9] = [
        SkipReason::Unreadable,
        SkipReason::Architecture,
        SkipReason::NoOpenSslSymbols,
        SkipReason::GoStripped,
        SkipReason::GoNoTls,
        SkipReason::GoStackAbi,
        SkipReason::GoDecode,
        SkipReason::AttachFailed,
        SkipReason::TooManyTargets,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::Unreadable => "unreadable",
            SkipReason::Architecture => "architecture",
            SkipReason::NoOpenSslSymbols => "no_openssl_symbols",
            SkipReason::GoStripped => "go_stripped",
            SkipReason::GoNoTls => "go_no_tls",
            SkipReason::GoStackAbi => "go_stack_abi",
            SkipReason::GoDecode => "go_decode",
            SkipReason::AttachFailed => "attach_failed",
            SkipReason::TooManyTargets => "too_many_targets",
        }
    }
}

/// What the file is, for the probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inspection {
    OpenSsl(OpenSslOffsets),
    Go(GoOffsets),
    /// A Go binary or library that cannot or need not be probed.
    Skip(SkipReason),
    /// Neither a Go binary nor a libssl: nothing to do, nothing counted.
    NotTls,
}

const GO_WRITE: &str = "crypto/tls.(*Conn).Write";
const GO_READ: &str = "crypto/tls.(*Conn).Read";
/// Longest function decoded; (*Conn).Read is ~1 KB.
const GO_FUNCTION_MAX: u64 = 64 * 1024;

/// Inspects `path`. `libssl`: the file was mapped under a libssl name (look
/// for OpenSSL's symbols); otherwise it is an executable (look for Go).
pub(crate) fn inspect(path: &Path, libssl: bool) -> Inspection {
    let Ok(file) = File::open(path) else {
        return Inspection::Skip(SkipReason::Unreadable);
    };
    let cache = ReadCache::new(file);
    let Ok(elf) = object::File::parse(&cache) else {
        return if libssl {
            Inspection::Skip(SkipReason::Unreadable)
        } else {
            Inspection::NotTls
        };
    };
    if libssl {
        return inspect_openssl(&elf);
    }
    let Some(buildinfo) = elf.section_by_name(".go.buildinfo") else {
        return Inspection::NotTls;
    };
    if elf.architecture() != Architecture::X86_64 {
        return Inspection::Skip(SkipReason::Architecture);
    }
    let version = buildinfo
        .data()
        .ok()
        .and_then(|data| go_version(&elf, data))
        .unwrap_or_default();
    if !register_abi(&version) {
        return Inspection::Skip(SkipReason::GoStackAbi);
    }
    inspect_go(&elf, version)
}

fn inspect_openssl<'a, R: object::ReadRef<'a>>(elf: &object::File<'a, R>) -> Inspection {
    if elf.architecture() != Architecture::X86_64 {
        return Inspection::Skip(SkipReason::Architecture);
    }
    let mut o = OpenSslOffsets::default();
    for sym in elf.dynamic_symbols() {
        if sym.is_undefined() || sym.kind() != object::SymbolKind::Text {
            continue;
        }
        let slot = match sym.name() {
            Ok("SSL_write") => &mut o.ssl_write,
            Ok("SSL_write_ex") => &mut o.ssl_write_ex,
            Ok("SSL_read") => &mut o.ssl_read,
            Ok("SSL_read_ex") => &mut o.ssl_read_ex,
            Ok("SSL_set_fd") => &mut o.ssl_set_fd,
            _ => continue,
        };
        if let Some(off) = file_offset(elf, sym.address()) {
            *slot = off;
        }
    }
    if o.ssl_write == 0 || o.ssl_read == 0 {
        return Inspection::Skip(SkipReason::NoOpenSslSymbols);
    }
    Inspection::OpenSsl(o)
}

fn inspect_go<'a, R: object::ReadRef<'a>>(
    elf: &object::File<'a, R>,
    version: String,
) -> Inspection {
    let mut write = None;
    let mut read = None;
    let mut any = false;
    for sym in elf.symbols() {
        any = true;
        match sym.name() {
            Ok(GO_WRITE) => write = Some((sym.address(), sym.size())),
            Ok(GO_READ) => read = Some((sym.address(), sym.size())),
            _ => continue,
        }
        if write.is_some() && read.is_some() {
            break;
        }
    }
    if !any {
        return Inspection::Skip(SkipReason::GoStripped);
    }
    let (Some((waddr, _)), Some((raddr, rsize))) = (write, read) else {
        return Inspection::Skip(SkipReason::GoNoTls);
    };
    let (Some(write), Some(read)) = (file_offset(elf, waddr), file_offset(elf, raddr)) else {
        return Inspection::Skip(SkipReason::GoDecode);
    };
    if rsize == 0 || rsize > GO_FUNCTION_MAX {
        return Inspection::Skip(SkipReason::GoDecode);
    }
    let Some(bytes) = function_bytes(elf, raddr, rsize) else {
        return Inspection::Skip(SkipReason::GoDecode);
    };
    let Some(rets) = ret_offsets(bytes) else {
        return Inspection::Skip(SkipReason::GoDecode);
    };
    if rets.is_empty() {
        return Inspection::Skip(SkipReason::GoDecode);
    }
    Inspection::Go(GoOffsets {
        version,
        write,
        read,
        read_rets: rets.into_iter().map(|r| read + r).collect(),
    })
}

/// The offset in the file of virtual address `addr` (the section that holds it).
fn file_offset<'a, R: object::ReadRef<'a>>(elf: &object::File<'a, R>, addr: u64) -> Option<u64> {
    elf.sections().find_map(|s| {
        let (off, size) = s.file_range()?;
        let start = s.address();
        (addr >= start && addr < start + size).then(|| addr - start + off)
    })
}

fn function_bytes<'a, R: object::ReadRef<'a>>(
    elf: &object::File<'a, R>,
    addr: u64,
    size: u64,
) -> Option<&'a [u8]> {
    elf.sections()
        .find_map(|s| s.data_range(addr, size).ok().flatten())
}

/// Offsets (from the function's start) of every RET in `code`, decoding it
/// from its first byte to its last; None if any of it does not decode (the
/// offsets could then fall inside an instruction).
pub(crate) fn ret_offsets(code: &[u8]) -> Option<Vec<u64>> {
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut rets = Vec::new();
    while decoder.can_decode() {
        let ins = decoder.decode();
        if ins.is_invalid() {
            return None;
        }
        if ins.mnemonic() == Mnemonic::Ret {
            rets.push(ins.ip());
        }
    }
    Some(rets)
}

/// The Go version in `.go.buildinfo`: "go1.19.8". Go 1.18+ stores the string
/// inline (flags bit 2); older versions point at a string header.
fn go_version<'a, R: object::ReadRef<'a>>(
    elf: &object::File<'a, R>,
    data: &[u8],
) -> Option<String> {
    const MAGIC: &[u8] = b"\xff Go buildinf:";
    if data.len() < 32 || !data.starts_with(MAGIC) {
        return None;
    }
    let ptr_size = data[14] as usize;
    let flags = data[15];
    if flags & 2 != 0 {
        let (len, n) = uvarint(&data[32..])?;
        let start = 32 + n;
        let bytes = data.get(start..start.checked_add(len as usize)?)?;
        return String::from_utf8(bytes.to_vec()).ok();
    }
    if ptr_size != 8 || flags & 1 != 0 {
        return None; // 32-bit or big-endian: not an amd64 binary anyway
    }
    let header_addr = u64::from_le_bytes(data[16..24].try_into().ok()?);
    let header = read_vaddr(elf, header_addr, 16)?;
    let str_addr = u64::from_le_bytes(header[0..8].try_into().ok()?);
    let str_len = u64::from_le_bytes(header[8..16].try_into().ok()?);
    if str_len > 64 {
        return None;
    }
    String::from_utf8(read_vaddr(elf, str_addr, str_len)?.to_vec()).ok()
}

fn read_vaddr<'a, R: object::ReadRef<'a>>(
    elf: &object::File<'a, R>,
    addr: u64,
    len: u64,
) -> Option<&'a [u8]> {
    elf.sections()
        .find_map(|s| s.data_range(addr, len).ok().flatten())
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Go 1.17 introduced the register ABI on amd64. An unknown version
/// ("devel ...", or none found) is taken as recent: Go has not gone back.
pub(crate) fn register_abi(version: &str) -> bool {
    let Some(rest) = version.strip_prefix("go1.") else {
        return true;
    };
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    minor.parse::<u32>().map_or(true, |m| m >= 17)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rets_found_at_instruction_boundaries() {
        // mov rax, [rsp+8]; ret; xor eax,eax; int3; ret; nop
        let code = [
            0x48, 0x8b, 0x44, 0x24, 0x08, 0xc3, 0x31, 0xc0, 0xcc, 0xc3, 0x90,
        ];
        assert_eq!(ret_offsets(&code), Some(vec![5, 9]));
    }

    #[test]
    fn a_c3_byte_inside_an_instruction_is_no_ret() {
        // mov eax, 0xc3c3c3c3; ret
        let code = [0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3];
        assert_eq!(ret_offsets(&code), Some(vec![5]));
    }

    #[test]
    fn truncated_code_is_refused() {
        // mov eax, imm32 cut after two bytes of the immediate
        assert_eq!(ret_offsets(&[0xc3, 0xb8, 0x01, 0x02]), None);
    }

    #[test]
    fn go_versions() {
        assert!(register_abi("go1.19.8"));
        assert!(register_abi("go1.17"));
        assert!(register_abi("go1.22rc1"));
        assert!(!register_abi("go1.16.15"));
        assert!(!register_abi("go1.9"));
        assert!(register_abi("devel go1.23-abc"));
        assert!(register_abi(""));
    }

    #[test]
    fn varints() {
        assert_eq!(uvarint(&[8]), Some((8, 1)));
        assert_eq!(uvarint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(uvarint(&[0x80]), None);
    }

    #[test]
    fn openssl_of_this_host() {
        // Debian 12's libssl3: the five entry points, each at its own offset.
        let path = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
        if !path.exists() {
            eprintln!("skipped: {} not installed", path.display());
            return;
        }
        let Inspection::OpenSsl(o) = inspect(path, true) else {
            panic!("libssl.so.3 not recognised");
        };
        let all = [
            o.ssl_write,
            o.ssl_write_ex,
            o.ssl_read,
            o.ssl_read_ex,
            o.ssl_set_fd,
        ];
        assert!(all.iter().all(|&x| x > 0), "{o:?}");
        let mut sorted = all.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
    }

    #[test]
    fn non_go_executables_are_not_tls() {
        assert_eq!(inspect(Path::new("/bin/sh"), false), Inspection::NotTls);
        assert_eq!(
            inspect(Path::new("/nonexistent/file"), false),
            Inspection::Skip(SkipReason::Unreadable)
        );
        assert_eq!(
            inspect(Path::new("/bin/sh"), true),
            Inspection::Skip(SkipReason::NoOpenSslSymbols)
        );
    }
}
