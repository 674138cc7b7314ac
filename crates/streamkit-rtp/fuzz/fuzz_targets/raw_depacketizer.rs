//! Arbitrary bytes as RFC 4175 datagrams into the raw receive path, for a
//! small frame whose size the input picks. Any write outside the frame
//! would panic (slice bounds); every frame that comes out has the size of
//! the format.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| streamkit_rtp::fuzzing::raw_depacketizer(data));
