//! gRPC: an HTTP/2 session that has carried one recorded grpcio unary call
//! (preface, SETTINGS, HEADERS with `content-type: application/grpc`, DATA,
//! trailers with `grpc-status`), then arbitrary conversation: no panic,
//! nothing misattributed, with the HPACK table and streams in gRPC's state.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[path = "common.rs"]
mod common;

static PRELUDE: OnceLock<Vec<(bool, Vec<u8>)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let prelude = PRELUDE
        .get_or_init(|| common::records(include_str!("../../tests/fixtures/grpc_python.txt"), 4));
    common::run_session(sonde_l7::Protocol::Http2, prelude, data)
});
