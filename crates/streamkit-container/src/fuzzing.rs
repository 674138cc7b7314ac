//! The bodies of the `cargo fuzz` targets (`fuzz/fuzz_targets/`), here so
//! that an ordinary test replays the committed corpus (`fuzz/corpus/`)
//! through exactly the checks the fuzzer runs. Not a public API.

use crate::mp4::{self, Mp4Reader};

/// Arbitrary bytes into the MP4 reader, whole and in pushes: no panic, every
/// listed sample inside the input, and both ways agree.
pub fn mp4_reader(data: &[u8]) {
    let Some((&chunk, bytes)) = data.split_first() else { return };
    let (file, error) = mp4::read_partial(bytes);
    for track in &file.tracks {
        for s in &track.samples {
            assert!(s.offset + s.size as u64 <= bytes.len() as u64);
        }
    }
    let _ = file.video_track();
    // The first byte picks the push size.
    let mut reader = Mp4Reader::new();
    for piece in bytes.chunks(chunk as usize + 1) {
        if reader.push(piece).is_err() {
            break;
        }
    }
    let (pushed, pushed_error) = reader.finish();
    assert_eq!(pushed, file);
    assert_eq!(pushed_error.map(|e| e.to_string()), error.map(|e| e.to_string()));
}
