//! Arbitrary bytes as an SPS (and as an avcC record, a slice header and
//! length-prefixed NAL units): errors, never panics; sizes stay sane.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| streamkit_h264::fuzzing::parse_sps(data));
