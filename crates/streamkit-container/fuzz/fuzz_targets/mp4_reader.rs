//! Arbitrary bytes into the MP4 reader, whole and in pushes: no panic, every
//! listed sample inside the input, and both ways agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamkit_container::mp4::{self, Mp4Reader};

fuzz_target!(|data: &[u8]| {
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
});
