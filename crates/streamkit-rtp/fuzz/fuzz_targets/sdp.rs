//! Arbitrary text into the SDP reader: errors, never panics; what parses
//! writes back out and parses again to the same description.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamkit_rtp::RtpDescription;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(description) = RtpDescription::from_sdp(text) {
        let again = RtpDescription::from_sdp(&description.to_sdp()).expect("our own SDP parses");
        assert_eq!(again.payload, description.payload);
        assert_eq!((again.address, again.port), (description.address, description.port));
    }
});
