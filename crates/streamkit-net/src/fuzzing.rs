//! The bodies of the `cargo fuzz` targets (`fuzz/fuzz_targets/`), here so
//! that an ordinary test replays the committed corpus (`fuzz/corpus/`)
//! through exactly the checks the fuzzer runs. Not a public API.

use crate::wire::{Join, WireDecoder, WireEvent, WireLimits};
use crate::FrameDecompressor;

const LIMIT: u32 = 1 << 20;
/// Fuzzes the wire-format decoder: arbitrary bytes, pushed in pieces whose
/// sizes come from the input itself, must never panic, never yield a payload
/// beyond the limit, and every frame they yield must decompress or fail
/// cleanly.
pub fn wire_decoder(data: &[u8]) {
    let _ = Join::parse(data);
    let Some((&split, rest)) = data.split_first() else { return };
    let mut decoder = WireDecoder::with_limits("fuzz", WireLimits { max_payload: LIMIT });
    let mut decompressor = FrameDecompressor::new();
    let step = split as usize % 64 + 1;
    for piece in rest.chunks(step) {
        decoder.push(piece);
        while let Ok(Some(event)) = decoder.poll() {
            if let WireEvent::Frame(frame) = event {
                assert!(frame.payload.len() <= LIMIT as usize);
                let _ = decompressor.decompress(frame);
            }
        }
    }
    let _ = decoder.finish();
}
