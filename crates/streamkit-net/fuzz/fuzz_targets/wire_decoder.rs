//! Fuzzes the wire-format decoder: arbitrary bytes, pushed in pieces whose
//! sizes come from the input itself, must never panic, never yield a payload
//! beyond the limit, and every frame they yield must decompress or fail
//! cleanly.
//!
//! ```sh
//! scripts/fuzz wire_decoder
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| streamkit_net::fuzzing::wire_decoder(data));
