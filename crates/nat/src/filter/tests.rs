use super::*;
use crate::test_fixtures::*;

fn passes(hex: &[&str]) -> bool {
    run(&dst_nat_only(), &bytes(hex))
}

#[test]
fn translated_events_pass_v4_and_v6_new_and_update() {
    assert!(passes(NEW_V4));
    assert!(passes(NEW_V6));
    assert!(passes(UPDATE_V4));
}

#[test]
fn untranslated_events_are_dropped() {
    assert!(!passes(NEW_UNTRANSLATED));
    // The translated one with its DST_NAT bit cleared (0x1a8 -> 0x188).
    let mut b = bytes(NEW_V4);
    let at = b
        .windows(8)
        .position(|w| w == [8, 0, 3, 0, 0, 0, 1, 0xa8])
        .expect("CTA_STATUS");
    b[at + 7] = 0x88;
    assert!(!run(&dst_nat_only(), &b));
}

#[test]
fn what_it_does_not_understand_passes() {
    // No CTA_STATUS among the attributes examined: the status type byte changed to 0x7f.
    let mut b = bytes(NEW_UNTRANSLATED);
    let at = b
        .windows(8)
        .position(|w| w == [8, 0, 3, 0, 0, 0, 1, 0x88])
        .expect("CTA_STATUS");
    b[at + 2] = 0x7f;
    assert!(run(&dst_nat_only(), &b));
    // An attribute of 256 bytes or more before the status.
    let mut b = bytes(NEW_UNTRANSLATED);
    b[21] = 1;
    assert!(run(&dst_nat_only(), &b));
}

#[test]
fn program_shape_is_what_the_kernel_accepts() {
    let p = dst_nat_only();
    assert!(p.len() < 4096, "BPF_MAXINSNS");
    assert_eq!(p.last().map(|i| i.code), Some(RET_K), "ends with a return");
    for (i, ins) in p.iter().enumerate() {
        if ins.code & 0x07 == 0x05 {
            let far = i + 1 + usize::from(ins.jt.max(ins.jf));
            assert!(far < p.len(), "jump {i} lands inside the program");
        }
    }
}
