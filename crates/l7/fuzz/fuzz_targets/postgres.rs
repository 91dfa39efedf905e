//! A whole Postgres session on arbitrary conversations: no panic, nothing misattributed.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::run_session(sonde_l7::Protocol::Postgres, &[], data));
