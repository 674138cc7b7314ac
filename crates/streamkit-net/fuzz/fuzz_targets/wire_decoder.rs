//! Fuzzes the wire-format decoder: arbitrary bytes, pushed in pieces whose
//! sizes come from the input itself, must never panic, never yield a payload
//! beyond the limit, and every frame they yield must decompress or fail
//! cleanly.
//!
//! ```sh
//! cd crates/streamkit-net/fuzz && cargo +nightly fuzz run wire_decoder -- -max_total_time=60
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamkit_net::wire::{Join, WireDecoder, WireEvent, WireLimits};
use streamkit_net::FrameDecompressor;

const LIMIT: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
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
});
