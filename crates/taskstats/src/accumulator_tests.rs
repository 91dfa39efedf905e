#![allow(clippy::unwrap_used)]

use super::*;

fn d(cpu_ns: u64, blkio_ns: u64) -> TaskDelays {
    TaskDelays {
        cpu_delay_ns: cpu_ns,
        blkio_delay_ns: blkio_ns,
        version: 16,
    }
}

fn cpu(acc: &DelayAccumulator<&'static str>, c: &'static str) -> f64 {
    acc.totals(&c).unwrap().cpu_delay_seconds
}

fn disk(acc: &DelayAccumulator<&'static str>, c: &'static str) -> f64 {
    acc.totals(&c).unwrap().disk_delay_seconds
}

const S: u64 = 1_000_000_000;

#[test]
fn first_reading_counts_whole_history_then_deltas() {
    let mut acc = DelayAccumulator::new();
    acc.observe(&"a", 10, 500, d(2 * S, S));
    acc.sweep();
    assert_eq!(cpu(&acc, "a"), 2.0);
    assert_eq!(disk(&acc, "a"), 1.0);
    acc.observe(&"a", 10, 500, d(3 * S, S + S / 2));
    acc.sweep();
    assert_eq!(cpu(&acc, "a"), 3.0);
    assert_eq!(disk(&acc, "a"), 1.5);
    assert!(acc.totals(&"b").is_none());
}

#[test]
fn processes_of_one_container_add_up() {
    let mut acc = DelayAccumulator::new();
    acc.observe(&"a", 1, 1, d(S, 0));
    acc.observe(&"a", 2, 1, d(2 * S, 0));
    acc.observe(&"b", 3, 1, d(5 * S, 0));
    acc.sweep();
    assert_eq!(cpu(&acc, "a"), 3.0);
    assert_eq!(cpu(&acc, "b"), 5.0);
    acc.observe(&"a", 1, 1, d(S + S / 4, 0));
    acc.observe(&"a", 2, 1, d(2 * S + S / 4, 0));
    acc.observe(&"b", 3, 1, d(5 * S, 0));
    acc.sweep();
    assert_eq!(cpu(&acc, "a"), 3.5);
    assert_eq!(cpu(&acc, "b"), 5.0);
}

#[test]
fn exited_process_keeps_its_contribution_and_is_forgotten() {
    let mut acc = DelayAccumulator::new();
    acc.observe(&"a", 1, 1, d(S, S));
    acc.observe(&"a", 2, 1, d(S, S));
    acc.sweep();
    assert_eq!(acc.tracked_processes(), 2);
    // pid 2 exited between scrapes: not observed (query said gone). Its growth after the
    // last scrape is lost (at most one interval); what it contributed stays.
    acc.observe(&"a", 1, 1, d(2 * S, S));
    acc.sweep();
    assert_eq!(acc.tracked_processes(), 1);
    assert_eq!(cpu(&acc, "a"), 3.0);
    assert_eq!(disk(&acc, "a"), 2.0);
}

#[test]
fn reused_pid_is_a_new_process_never_negative_or_doubled() {
    let mut acc = DelayAccumulator::new();
    acc.observe(&"a", 7, 100, d(10 * S, 4 * S));
    acc.sweep();
    assert_eq!(cpu(&acc, "a"), 10.0);
    // pid 7 exited and was reused by a new process (new start time) with smaller counters:
    // not a negative delta against the old one; its own history counts once.
    acc.observe(&"a", 7, 900, d(S, 0));
    acc.sweep();
    assert_eq!(cpu(&acc, "a"), 11.0);
    assert_eq!(disk(&acc, "a"), 4.0);
    assert_eq!(acc.tracked_processes(), 1);
    // The new process grows: only its delta is added, not its whole history again.
    acc.observe(&"a", 7, 900, d(2 * S, S));
    acc.sweep();
    assert_eq!(cpu(&acc, "a"), 12.0);
    assert_eq!(disk(&acc, "a"), 5.0);
}

#[test]
fn reused_pid_in_another_container_goes_there() {
    let mut acc = DelayAccumulator::new();
    acc.observe(&"a", 7, 100, d(3 * S, 0));
    acc.sweep();
    acc.observe(&"b", 7, 200, d(S, 0));
    acc.sweep();
    assert_eq!(cpu(&acc, "a"), 3.0);
    assert_eq!(cpu(&acc, "b"), 1.0);
}

#[test]
fn same_key_in_one_scrape_before_and_after_reuse_sweep() {
    // The old process is still tracked (not yet swept) when the new one with the same pid is
    // observed: two keys, no interference, and the old one goes at the next sweep.
    let mut acc = DelayAccumulator::new();
    acc.observe(&"a", 7, 100, d(5 * S, 0));
    acc.observe(&"a", 7, 101, d(S, 0));
    assert_eq!(acc.tracked_processes(), 2);
    acc.sweep();
    acc.observe(&"a", 7, 101, d(2 * S, 0));
    acc.sweep();
    assert_eq!(acc.tracked_processes(), 1);
    assert_eq!(cpu(&acc, "a"), 7.0);
}

#[test]
fn counter_going_backwards_adds_zero_and_rebaselines() {
    let mut acc = DelayAccumulator::new();
    acc.observe(&"a", 1, 1, d(8 * S, 2 * S));
    acc.sweep();
    // A schedstat sum drops when a thread exits (the exited thread's wait leaves the sum).
    acc.observe(&"a", 1, 1, d(5 * S, 2 * S));
    acc.sweep();
    assert_eq!(cpu(&acc, "a"), 8.0);
    // Growth from the new, lower baseline counts.
    acc.observe(&"a", 1, 1, d(6 * S, 2 * S));
    acc.sweep();
    assert_eq!(cpu(&acc, "a"), 9.0);
}

#[test]
fn totals_are_monotonic_over_a_random_walk() {
    // A deterministic pseudo-random mix of growth, drops, exits and pid reuse.
    let mut acc = DelayAccumulator::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut readings: HashMap<(u32, u64), u64> = HashMap::new();
    let mut last_total = 0.0;
    for scrape in 0..500u64 {
        for pid in 0..20u32 {
            let r = next();
            if r % 10 == 0 {
                continue; // not observed this scrape (exited or gone)
            }
            let start = if r % 17 == 0 { scrape } else { 0 }; // occasional reuse
            let value = readings.entry((pid, start)).or_insert(0);
            if r % 13 == 0 {
                *value /= 2; // going backwards
            } else {
                *value += r % 1000;
            }
            acc.observe(&"a", pid, start, d(*value, *value));
        }
        acc.sweep();
        let total = cpu(&acc, "a");
        assert!(
            total >= last_total,
            "scrape {scrape}: {total} < {last_total}"
        );
        last_total = total;
        assert!(acc.tracked_processes() <= 20);
    }
}

#[test]
fn remove_container_drops_totals_and_processes() {
    let mut acc = DelayAccumulator::new();
    acc.observe(&"a", 1, 1, d(S, 0));
    acc.observe(&"b", 2, 1, d(S, 0));
    acc.sweep();
    acc.remove_container(&"a");
    assert!(acc.totals(&"a").is_none());
    assert_eq!(acc.tracked_processes(), 1);
    assert_eq!(acc.tracked_containers(), 1);
    assert_eq!(cpu(&acc, "b"), 1.0);
}

#[test]
fn migrated_process_delta_goes_to_new_container() {
    let mut acc = DelayAccumulator::new();
    acc.observe(&"a", 1, 1, d(2 * S, 0));
    acc.sweep();
    acc.observe(&"b", 1, 1, d(3 * S, 0));
    acc.sweep();
    assert_eq!(cpu(&acc, "a"), 2.0);
    assert_eq!(cpu(&acc, "b"), 1.0);
    // Removing the old container does not drop the migrated process.
    acc.remove_container(&"a");
    assert_eq!(acc.tracked_processes(), 1);
}
