//! Arbitrary bytes as RTP datagrams into the H.264 receive path.
//!
//! The input is cut into datagrams by a length byte each. Datagrams whose
//! first byte is even go through the whole receiver (RTP parsing, SSRC and
//! payload-type checks, reorder buffer); the others get a valid RTP header
//! with the next sequence number, so that the fuzzer spends its effort on
//! FU-A / STAP-A / single NAL payloads rather than on the header.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| streamkit_rtp::fuzzing::h264_depacketizer(data));
