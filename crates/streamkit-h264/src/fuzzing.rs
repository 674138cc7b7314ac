//! The bodies of the `cargo fuzz` targets (`fuzz/fuzz_targets/`), here so
//! that an ordinary test replays the committed corpus (`fuzz/corpus/`)
//! through exactly the checks the fuzzer runs. Not a public API.

use crate::nal;
use crate::nal::AccessUnitSplitter;

/// Arbitrary bytes through the access-unit splitter in pushes of a size
/// the first byte picks: no panic, and the units put back together are the
/// input from its first start code on.
pub fn access_unit_splitter(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let mut splitter = AccessUnitSplitter::with_max_access_unit(1 << 20);
    let mut units = Vec::new();
    for piece in stream.chunks(chunk as usize + 1) {
        splitter.push(piece).expect("inputs are smaller than the cap");
        units.extend(std::iter::from_fn(|| splitter.pop()));
    }
    splitter.finish();
    units.extend(std::iter::from_fn(|| splitter.pop()));
    let joined = units.concat();
    assert!(stream.ends_with(&joined));
    for unit in &units {
        assert!(!unit.is_empty());
    }
}

/// Arbitrary bytes as an SPS (and as an avcC record, a slice header and
/// length-prefixed NAL units): errors, never panics; sizes stay sane.
pub fn parse_sps(data: &[u8]) {
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
}
