//! Arbitrary text into the SDP reader: errors, never panics; what parses
//! writes back out and parses again to the same description.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| streamkit_rtp::fuzzing::sdp(data));
