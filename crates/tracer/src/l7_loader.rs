//! Attaching the L7 programs (ebpf/src/l7.c), all or none.
//!
//! They are optional: a kernel without the syscall tracepoints (CONFIG_FTRACE_SYSCALLS
//! unset) or a verifier that refuses one of them leaves the rest of the tracer
//! running, with the reason in [`crate::Tracer::l7_error`].

use aya::Ebpf;
use aya::programs::TracePoint;
use tracing::warn;

/// (program function, syscall tracepoint). Lifecycle first, so a socket is
/// registered before its reads and writes are looked at.
pub(crate) const L7_PROGRAMS: [(&str, &str); 18] = [
    ("l7_enter_connect", "sys_enter_connect"),
    ("l7_exit_connect", "sys_exit_connect"),
    ("l7_exit_accept", "sys_exit_accept"),
    ("l7_exit_accept4", "sys_exit_accept4"),
    ("l7_enter_close", "sys_enter_close"),
    ("l7_enter_write", "sys_enter_write"),
    ("l7_enter_writev", "sys_enter_writev"),
    ("l7_enter_sendto", "sys_enter_sendto"),
    ("l7_enter_sendmsg", "sys_enter_sendmsg"),
    ("l7_enter_sendmmsg", "sys_enter_sendmmsg"),
    ("l7_enter_read", "sys_enter_read"),
    ("l7_enter_readv", "sys_enter_readv"),
    ("l7_enter_recvfrom", "sys_enter_recvfrom"),
    ("l7_enter_recvmsg", "sys_enter_recvmsg"),
    ("l7_exit_read", "sys_exit_read"),
    ("l7_exit_readv", "sys_exit_readv"),
    ("l7_exit_recvfrom", "sys_exit_recvfrom"),
    ("l7_exit_recvmsg", "sys_exit_recvmsg"),
];

/// Loads and attaches every L7 program; on the first failure unloads the ones
/// already attached and returns the reason.
pub(crate) fn attach(ebpf: &mut Ebpf) -> Result<Vec<&'static str>, String> {
    let mut attached = Vec::new();
    let mut failure = None;
    for (name, tracepoint) in L7_PROGRAMS {
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
                prog.attach("syscalls", tracepoint)
                    .map(|_| ())
                    .map_err(|e| format!("syscalls/{tracepoint}: {e}"))
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
