//! Arbitrary bytes as an SPS (and as an avcC record, a slice header and
//! length-prefixed NAL units): errors, never panics; sizes stay sane.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamkit_h264::nal;

fuzz_target!(|data: &[u8]| {
    let mut sps_nal = vec![0x67];
    sps_nal.extend_from_slice(data);
    if let Ok(sps) = nal::parse_sps(&sps_nal) {
        assert!(sps.width > 0 && sps.width <= sps.coded_width && sps.coded_width <= 16384);
        assert!(sps.height > 0 && sps.height <= sps.coded_height && sps.coded_height <= 32768);
        let mut slice = vec![0x65];
        slice.extend_from_slice(data);
        let _ = nal::parse_slice_header(&slice, &sps);
    }
    if let Ok(config) = nal::AvcConfig::parse(data) {
        let again = nal::AvcConfig::parse(&config.to_bytes()).expect("a parsed record serialises to a valid one");
        assert_eq!((again.sps, again.pps), (config.sps, config.pps));
    }
    for size in 1..=4 {
        let _ = nal::avcc_to_annexb(data, size, &mut Vec::new());
    }
    let _ = nal::first_mb_in_slice(data);
});
