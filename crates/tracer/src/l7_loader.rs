//! Attaching the L7 programs (ebpf/src/l7.c), all or none.
//!
//! They are optional: a kernel without the syscall tracepoints (CONFIG_FTRACE_SYSCALLS
//! unset) or a verifier that refuses one of them leaves the rest of the tracer
//! running, with the reason in [`crate::Tracer::l7_error`].

use aya::programs::{BtfTracePoint, TracePoint};
use aya::{Btf, Ebpf};
use tracing::{info, warn};

use crate::L7Hooks;

/// The preferred attachment (kernel >= 6.3): tp_btf on the socket tracepoints
/// sock_send_length/sock_recv_length, and nothing on syscalls (ebpf/src/l7/socket_hooks.c
/// says why it is cheaper), with the exec hook that reports new executables to the TLS
/// attacher, and the close of a registered TCP socket told from its last state change.
pub(crate) const L7_SOCKET_PROGRAMS: [(&str, &str); 4] = [
    ("l7_exec_btf", "sched_process_exec"),
    ("l7_sock_send", "sock_send_length"),
    ("l7_sock_recv", "sock_recv_length"),
    ("l7_sock_state", "inet_sock_set_state"),
];

/// The next one (kernel >= 5.5): one tp_btf program per direction on the raw syscall
/// tracepoints (ebpf/src/l7/dispatch.c explains why it is cheaper than the classic ones).
/// Also the fork and exec hooks that pass a process's "may hold sockets" bit to its
/// children (and take it away at exec).
pub(crate) const L7_BTF_PROGRAMS: [(&str, &str); 4] = [
    ("l7_task_newtask_btf", "task_newtask"),
    ("l7_exec_btf", "sched_process_exec"),
    ("l7_sys_enter", "sys_enter"),
    ("l7_sys_exit", "sys_exit"),
];

/// (program function, tracepoint category, tracepoint). Lifecycle first, so a socket is
/// registered before its reads and writes are looked at.
pub(crate) const L7_PROGRAMS: [(&str, &str, &str); 20] = [
    ("l7_task_newtask", "task", "task_newtask"),
    ("l7_exec", "sched", "sched_process_exec"),
    ("l7_enter_connect", "syscalls", "sys_enter_connect"),
    ("l7_exit_connect", "syscalls", "sys_exit_connect"),
    ("l7_exit_accept", "syscalls", "sys_exit_accept"),
    ("l7_exit_accept4", "syscalls", "sys_exit_accept4"),
    ("l7_enter_close", "syscalls", "sys_enter_close"),
    ("l7_enter_write", "syscalls", "sys_enter_write"),
    ("l7_enter_writev", "syscalls", "sys_enter_writev"),
    ("l7_enter_sendto", "syscalls", "sys_enter_sendto"),
    ("l7_enter_sendmsg", "syscalls", "sys_enter_sendmsg"),
    ("l7_enter_sendmmsg", "syscalls", "sys_enter_sendmmsg"),
    ("l7_enter_read", "syscalls", "sys_enter_read"),
    ("l7_enter_readv", "syscalls", "sys_enter_readv"),
    ("l7_enter_recvfrom", "syscalls", "sys_enter_recvfrom"),
    ("l7_enter_recvmsg", "syscalls", "sys_enter_recvmsg"),
    ("l7_exit_read", "syscalls", "sys_exit_read"),
    ("l7_exit_readv", "syscalls", "sys_exit_readv"),
    ("l7_exit_recvfrom", "syscalls", "sys_exit_recvfrom"),
    ("l7_exit_recvmsg", "syscalls", "sys_exit_recvmsg"),
];

/// Attaches the tier `hooks` asks for, or with [`L7Hooks::Best`] the best the kernel
/// allows: the socket tracepoints, else the raw syscall tracepoints, else the classic
/// per-syscall programs. On failure nothing of L7 stays attached.
pub(crate) fn attach(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    hooks: L7Hooks,
) -> Result<Vec<&'static str>, String> {
    let wants = |tier: L7Hooks| hooks == L7Hooks::Best || hooks == tier;
    if let Some(btf) = btf {
        if wants(L7Hooks::Socket) {
            match attach_btf(ebpf, btf, &L7_SOCKET_PROGRAMS) {
                Ok(names) => {
                    info!("L7 programs on the socket tracepoints (no syscall is traced)");
                    return Ok(names);
                }
                Err(reason) => {
                    info!(reason = %reason, "socket tracepoints unavailable for L7 (kernel < 6.3?); trying the raw syscall tracepoints (every syscall of every process pays their slow path)")
                }
            }
        }
        if wants(L7Hooks::Syscalls) {
            match attach_btf(ebpf, btf, &L7_BTF_PROGRAMS) {
                Ok(names) => {
                    info!("L7 programs on the raw syscall tracepoints");
                    return Ok(names);
                }
                Err(reason) => {
                    info!(reason = %reason, "tp_btf raw syscall tracepoints unavailable for L7; trying the per-syscall tracepoints (higher cost per read and write)")
                }
            }
        }
    }
    if !wants(L7Hooks::Tracepoints) {
        let reason = format!(
            "the L7 hooks asked for ({hooks:?}, {}) could not be attached; see the log",
            L7Hooks::ENV
        );
        warn!(reason = %reason, "L7 tracing unavailable");
        return Err(reason);
    }
    attach_classic(ebpf)
}

fn attach_btf(
    ebpf: &mut Ebpf,
    btf: &Btf,
    programs: &[(&'static str, &'static str)],
) -> Result<Vec<&'static str>, String> {
    let mut attached = Vec::new();
    for &(name, tracepoint) in programs {
        let result = ebpf
            .program_mut(name)
            .and_then(|p| <&mut BtfTracePoint>::try_from(p).ok())
            .ok_or_else(|| format!("program {name} missing from the object"))
            .and_then(|prog| {
                prog.load(tracepoint, btf)
                    .map_err(|e| format!("{name}: {}", super::loader::verifier_excerpt(&e)))?;
                prog.attach()
                    .map(|_| ())
                    .map_err(|e| format!("tp_btf/{tracepoint}: {e}"))
            });
        match result {
            Ok(()) => attached.push(name),
            Err(reason) => {
                for n in attached.iter().chain(std::iter::once(&name)) {
                    if let Some(p) = ebpf
                        .program_mut(n)
                        .and_then(|p| <&mut BtfTracePoint>::try_from(p).ok())
                    {
                        let _ = p.unload();
                    }
                }
                return Err(reason);
            }
        }
    }
    Ok(attached)
}

fn attach_classic(ebpf: &mut Ebpf) -> Result<Vec<&'static str>, String> {
    let mut attached = Vec::new();
    let mut failure = None;
    for (name, category, tracepoint) in L7_PROGRAMS {
        let Some(prog) = ebpf
            .program_mut(name)
            .and_then(|p| <&mut TracePoint>::try_from(p).ok())
        else {
            failure = Some(format!("program {name} missing from the object"));
            break;
        };
        let result = prog
            .load()
            .map_err(|e| format!("{name}: {}", super::loader::verifier_excerpt(&e)))
            .and_then(|()| {
                prog.attach(category, tracepoint)
                    .map(|_| ())
                    .map_err(|e| format!("{category}/{tracepoint}: {e}"))
            });
        match result {
            Ok(()) => attached.push(name),
            Err(reason) => {
                let _ = prog.unload();
                failure = Some(reason);
                break;
            }
        }
    }
    if let Some(reason) = failure {
        for name in attached {
            if let Some(prog) = ebpf
                .program_mut(name)
                .and_then(|p| <&mut TracePoint>::try_from(p).ok())
            {
                let _ = prog.unload();
            }
        }
        warn!(reason = %reason, "L7 tracing unavailable: no HTTP, database or DNS request metrics (the rest of the tracer runs)");
        return Err(reason);
    }
    Ok(attached)
}
