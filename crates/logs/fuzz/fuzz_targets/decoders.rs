//! Decoders and the multi-line joiner on arbitrary lines: no panic, bounded messages.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sonde_logs::decode::{CriDecoder, DockerJsonDecoder, MultilineJoiner, decode_plain};

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut docker = DockerJsonDecoder::new(MAX);
    let mut cri = CriDecoder::new(MAX);
    let mut joiner = MultilineJoiner::new(MAX, 64);
    for line in data.split(|&b| b == b'\n') {
        if let Ok(Some(r)) = docker.decode(line) {
            assert!(r.message.len() <= MAX);
        }
        if let Ok(Some(r)) = cri.decode(line) {
            assert!(r.message.len() <= MAX);
        }
        if let Some(m) = joiner.push(&decode_plain(line)) {
            assert!(m.len() <= MAX + 64);
        }
    }
    for r in docker.flush().into_iter().chain(cri.flush()) {
        assert!(r.message.len() <= MAX);
    }
    if let Some(m) = joiner.flush() {
        assert!(m.len() <= MAX + 64);
    }
});
