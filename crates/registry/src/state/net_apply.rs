//! Applying network happenings (TCP and L7) to the state.

use std::time::Instant;

use super::State;
use crate::net::{ActiveCount, NetEvent};

impl State {
    /// Replaces the open-connection counts with those of the tracer's latest dump. A process
    /// counts for its container; one the registry does not know (gone, or never read) for
    /// the container of the cgroup the kernel saw it in at connect.
    pub(super) fn active_connections(&mut self, counts: Vec<ActiveCount>) {
        self.active.clear();
        for a in counts {
            let container = self
                .container_of_pid(a.pid)
                .or_else(|| self.container(a.cgroup_path.as_deref()?));
            let Some(key) = container.map(|c| c.cgroup_id.clone()) else {
                continue;
            };
            *self
                .active
                .entry(key)
                .or_default()
                .entry((a.dst, a.actual))
                .or_default() += a.count;
        }
    }

    /// Applies a TCP happening to the container of `pid`.
    pub fn apply_net(&mut self, pid: u32, event: &NetEvent, now: Instant) {
        let max_fqdns = self.max_fqdns_per_container;
        // Only an L7 request of an unreadable process may need /proc (and a clone of the
        // root): not every TCP event.
        let procfs = matches!(
            event,
            NetEvent::L7 {
                opted_out: None,
                ..
            }
        )
        .then(|| self.procfs.clone());
        let spans = match event {
            NetEvent::L7 { inbound: false, .. } if pid != crate::span_hook::agent_pid() => {
                self.spans.clone()
            }
            _ => None,
        };
        let answers = match self.container_of_pid_mut(pid) {
            Some(c) => match event {
                NetEvent::L7 {
                    dst,
                    actual,
                    inbound,
                    request,
                    opted_out,
                } => {
                    // One opted-out process opts its container out (they share an environment).
                    if *opted_out == Some(true) {
                        c.net.l7.opted_out = true;
                    } else if opted_out.is_none() && !c.net.l7.opt_out_checked {
                        // The process was gone before its environment could be read (a
                        // short-lived client): ask the container's live processes, once.
                        c.net.l7.opt_out_checked = true;
                        if procfs
                            .as_deref()
                            .is_some_and(|p| crate::l7_optout::any_opts_out(p, &c.pids))
                        {
                            c.net.l7.opted_out = true;
                        }
                    }
                    if c.net.l7.opted_out {
                        None
                    } else {
                        if let (Some(hook), Some(id)) = (&spans, c.container_id()) {
                            (hook.0)(id, *actual, request);
                        }
                        c.net.l7.apply(request, *dst, *actual, *inbound, max_fqdns)
                    }
                }
                _ => {
                    c.net.apply(event, now);
                    None
                }
            },
            None => {
                self.unattributed_events += 1;
                None
            }
        };
        if let Some(answers) = answers {
            self.ip_to_fqdn.learn(answers);
        }
    }

    /// Applies a TCP happening of `pid`, which the kernel saw in cgroup `path`: to the
    /// process's container if the registry knows the process, else to the container of
    /// `path` (the process is placed there until its exit event).
    pub fn apply_net_in_cgroup(&mut self, pid: u32, path: &str, event: &NetEvent, now: Instant) {
        if !self.knows_pid(pid) {
            // A process that made a connection runs the container's own workload: the
            // container exists in its runtime by now.
            self.place_ghost(pid, path, true, now);
        }
        self.apply_net(pid, event, now);
    }
}
