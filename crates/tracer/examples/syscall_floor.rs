//! The floor under the L7 programs' fast path: attaches `ebpf/bench.bpf.o`'s
//! `syscall_enter_only` and `syscall_exit_only` (tp_btf on raw_syscalls sys_enter/sys_exit,
//! returning at once) for the given number of seconds, so a syscall loop run meanwhile (`dd
//! bs=1 ...`) measures what tracing every syscall costs before any work of the agent's own.
//! Compare with no programs and with the agent's `l7_sys_enter`/`l7_sys_exit`
//! (scripts/bench-l7.sh; docs/benchmarks.md, "L7").
//!
//! With `sock` as a second argument it attaches `sock_send_only`/`sock_recv_only` instead
//! (tp_btf on sock/sock_send_length and sock/sock_recv_length, kernel >= 6.3): the floor of
//! the socket-tracepoint attachment, which runs on socket I/O only.
//!
//! usage: cargo run --release -p sonde-tracer --example syscall_floor -- SECONDS [sock]   (root)

use std::time::Duration;

use aya::programs::BtfTracePoint;
use aya::{Btf, EbpfLoader};

static BENCH_OBJECT: &[u8] = aya::include_bytes_aligned!("../../../ebpf/bench.bpf.o");

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let sock = std::env::args().nth(2).as_deref() == Some("sock");
    let programs: &[(&str, &str)] = if sock {
        &[
            ("sock_send_only", "sock_send_length"),
            ("sock_recv_only", "sock_recv_length"),
        ]
    } else {
        &[
            ("syscall_enter_only", "sys_enter"),
            ("syscall_exit_only", "sys_exit"),
        ]
    };
    let btf = Btf::from_sys_fs().unwrap_or_else(|e| panic!("kernel BTF: {e}"));
    let mut bench = EbpfLoader::new()
        .load(BENCH_OBJECT)
        .unwrap_or_else(|e| panic!("loading bench.bpf.o: {e}"));
    for &(name, tracepoint) in programs {
        let prog: &mut BtfTracePoint = bench
            .program_mut(name)
            .and_then(|p| p.try_into().ok())
            .unwrap_or_else(|| panic!("{name} missing from bench.bpf.o"));
        prog.load(tracepoint, &btf)
            .unwrap_or_else(|e| panic!("loading {name}: {e}"));
        prog.attach()
            .unwrap_or_else(|e| panic!("attaching {name}: {e}"));
    }
    println!("attached; holding for {secs} s");
    std::thread::sleep(Duration::from_secs(secs));
}
