//! Arbitrary bytes through the access-unit splitter in pushes of a size
//! the first byte picks: no panic, and the units put back together are the
//! input from its first start code on.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| streamkit_h264::fuzzing::access_unit_splitter(data));
