//! sonde's node extras: kernel activity counters node_exporter users expect (context switches,
//! interrupts, forks from /proc/stat; page faults and swapping from /proc/vmstat). Named as
//! node_exporter names them; the vmstat ones gain `_total`, being counters.

use prometheus::proto::MetricFamily;
use sonde_node::NodeSnapshot;

use crate::catalogue as cat;
use crate::exposition::{Family, NodeLabels};

/// Renders the node activity counters present in `snap` (a part that failed to read is absent).
pub fn render_node_activity(snap: &NodeSnapshot, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    let mut values: Vec<(&'static cat::MetricDef, u64)> = Vec::with_capacity(7);
    if let Some(a) = &snap.activity {
        values.extend([
            (&cat::NODE_CONTEXT_SWITCHES, a.context_switches),
            (&cat::NODE_INTERRUPTS, a.interrupts),
            (&cat::NODE_FORKS, a.forks),
        ]);
    }
    if let Some(v) = &snap.vmstat {
        values.extend([
            (&cat::NODE_PAGE_FAULTS, v.page_faults),
            (&cat::NODE_MAJOR_PAGE_FAULTS, v.major_page_faults),
            (&cat::NODE_SWAP_IN, v.swap_in_pages),
            (&cat::NODE_SWAP_OUT, v.swap_out_pages),
        ]);
    }
    for (def, value) in values {
        let mut f = Family::new(def);
        f.add(&[], value as f64);
        f.finish(node, out);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sonde_node::procfs::{StatCounters, VmStat};

    #[test]
    fn renders_what_was_read() {
        let mut snap = NodeSnapshot {
            activity: Some(StatCounters {
                context_switches: 1,
                interrupts: 2,
                forks: 3,
            }),
            ..Default::default()
        };
        let mut out = Vec::new();
        render_node_activity(&snap, &NodeLabels::default(), &mut out);
        let names: Vec<&str> = out.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "node_context_switches_total",
                "node_intr_total",
                "node_forks_total"
            ]
        );
        assert_eq!(out[2].get_metric()[0].get_counter().value(), 3.0);
        snap.vmstat = Some(VmStat {
            page_faults: 10,
            major_page_faults: 11,
            swap_in_pages: 12,
            swap_out_pages: 13,
        });
        snap.activity = None;
        out.clear();
        render_node_activity(&snap, &NodeLabels::default(), &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(out[1].name(), "node_vmstat_pgmajfault_total");
        assert_eq!(out[3].get_metric()[0].get_counter().value(), 13.0);
    }
}
