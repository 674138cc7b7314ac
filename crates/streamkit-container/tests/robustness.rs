//! The reader over a corpus of mutated files: bit flips, truncations at
//! every 97th byte, header and count fields forced to 0xffffffff / 1.
//! Deterministic (a fixed PRNG) and bounded; it must never panic, and what
//! it lists must lie inside the input. (`fuzz/` has the libFuzzer target
//! for open-ended runs.)

mod common;

use std::time::Instant;

use common::*;
use streamkit_container::mp4::{self, cmaf, Mp4Reader, Mp4Writer, Sample};
use streamkit_h264::nal;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let units = synthetic_units(30, 10);
    // Out-of-order pts so that composition offsets are written too.
    let samples: Vec<Sample> = units
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let pts = (i as i64 + if i % 3 == 1 { 2 } else { 0 }) * 3000;
            Sample::annexb(u, pts, i as i64 * 3000, 3000, i.is_multiple_of(10))
        })
        .collect();
    for (name, mut writer) in [
        ("fragmented", Mp4Writer::fragmented(90_000)),
        ("faststart-relocated", Mp4Writer::faststart(90_000, 0)),
        ("faststart-in-place", Mp4Writer::faststart(90_000, 8192)),
    ] {
        let mut out = Vec::new();
        for s in &samples {
            writer.write(s, &mut out).unwrap();
        }
        let finalize = writer.finish(&mut out).unwrap();
        files.push((name.to_string(), finalize.apply(out)));
    }
    let config = nal::AvcConfig::from_annexb(&units[0]).unwrap().unwrap();
    let mut segments = cmaf::init_segment(&config, 0, 0, 90_000);
    segments.extend(cmaf::media_segment(1, 0, &samples[..10]));
    segments.extend(cmaf::media_segment(2, 30_000, &samples[10..20]));
    files.push(("cmaf".into(), segments));

    if let Some(dir) = peer_dir("robustness") {
        for (name, args) in [
            ("ffmpeg-plain", &["-c:v", "libx264", "-g", "4"][..]),
            ("ffmpeg-fragmented", &["-c:v", "libx264", "-g", "4", "-movflags", "frag_keyframe+empty_moov"][..]),
        ] {
            let path = ffmpeg_file(&dir, &format!("{name}.mp4"), 10, args);
            files.push((name.into(), std::fs::read(path).unwrap()));
        }
        let _ = std::fs::remove_dir_all(dir);
    }
    for (name, bytes) in &files {
        assert!(mp4::read(bytes).is_ok(), "{name} is valid before mutation");
    }
    files
}

/// Parses `bytes`; checks the invariants that hold for any input.
fn check(bytes: &[u8]) -> bool {
    let (file, error) = mp4::read_partial(bytes);
    for t in &file.tracks {
        assert!(t.samples.len() as u64 <= bytes.len().max(4096) as u64);
        for s in &t.samples {
            assert!(s.offset + s.size as u64 <= bytes.len() as u64, "listed sample past the end: {s}");
        }
    }
    error.is_none()
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn mutated_files_never_panic() {
    // STREAMKIT_MUTATIONS raises the number of random mutants per file for
    // a longer local soak (the 5 s bound then does not apply).
    let soak: Option<u64> = std::env::var("STREAMKIT_MUTATIONS").ok().and_then(|v| v.parse().ok());
    let (flips, multi) = soak.map_or((1500, 300), |n| (n, n));
    let started = Instant::now();
    let mut rng = XorShift(soak.map_or(0x5eed_1234_abcd_ef01, |n| n ^ 0x5eed_1234_abcd_ef01));
    let mut parses = 0u64;
    for (name, file) in corpus() {
        // Truncations.
        for cut in (0..file.len()).step_by(97) {
            // (A cut at a box boundary can be a valid, shorter file.)
            check(&file[..cut]);
            parses += 1;
        }
        // Bit flips, one at a time, anywhere.
        let mut mutated = file.clone();
        for _ in 0..flips {
            let bit = (rng.next() % (file.len() as u64 * 8)) as usize;
            mutated[bit / 8] ^= 1 << (bit % 8);
            check(&mutated);
            mutated[bit / 8] ^= 1 << (bit % 8);
            parses += 1;
        }
        // Several flips at once in the metadata.
        let meta: Vec<(u64, u64)> = top_level_boxes(&file)
            .into_iter()
            .filter(|b| b.0 != "mdat" && b.0 != "free")
            .map(|b| (b.1, b.2.min(file.len() as u64 - b.1)))
            .collect();
        for _ in 0..multi {
            let mut m = file.clone();
            for _ in 0..8 {
                let (start, len) = meta[(rng.next() % meta.len() as u64) as usize];
                let at = start + rng.next() % len;
                m[at as usize] = rng.next() as u8;
            }
            check(&m);
            parses += 1;
        }
        // Every length and count field (any 4 bytes of metadata) set to
        // 0xffffffff, 1 and 0.
        for &(start, len) in &meta {
            for at in start..start + len.saturating_sub(3) {
                for value in [0xffff_ffffu32, 1, 0] {
                    let at = at as usize;
                    let saved: [u8; 4] = file[at..at + 4].try_into().unwrap();
                    mutated[at..at + 4].copy_from_slice(&value.to_be_bytes());
                    check(&mutated);
                    mutated[at..at + 4].copy_from_slice(&saved);
                    parses += 1;
                }
            }
        }
        // The incremental reader on a few mutants, in odd-sized pushes.
        for _ in 0..20 {
            let mut m = file.clone();
            let at = (rng.next() % file.len() as u64) as usize;
            m[at] ^= 0xff;
            let mut reader = Mp4Reader::new();
            for piece in m.chunks(13) {
                if reader.push(piece).is_err() {
                    break;
                }
            }
            let (whole, whole_err) = mp4::read_partial(&m);
            let (pushed, pushed_err) = reader.finish();
            assert_eq!(whole, pushed, "{name}: pushes and whole input agree");
            assert_eq!(whole_err.map(|e| e.to_string()), pushed_err.map(|e| e.to_string()));
            parses += 1;
        }
    }
    let elapsed = started.elapsed();
    eprintln!("{parses} parses in {elapsed:?}");
    if soak.is_none() {
        assert!(elapsed.as_secs_f64() < 5.0, "bounded: {parses} parses took {elapsed:?}");
    }
}

#[test]
fn hostile_tables_are_bounded() {
    // A moov whose stsz declares 2^32-1 one-byte samples in one chunk:
    // only those inside the file are listed, quickly.
    let units = synthetic_units(3, 3);
    let mut w = Mp4Writer::faststart(90_000, 0);
    let mut out = Vec::new();
    for (i, u) in units.iter().enumerate() {
        w.write(&Sample::annexb(u, i as i64 * 3000, i as i64 * 3000, 3000, i == 0), &mut out).unwrap();
    }
    let mut file = w.finish(&mut out).unwrap().apply(out);
    let stsz = file.windows(4).position(|w| w == b"stsz").unwrap();
    // From the type: version/flags, sample_size, sample_count, entries.
    file[stsz + 8..stsz + 12].copy_from_slice(&1u32.to_be_bytes());
    file[stsz + 12..stsz + 16].copy_from_slice(&u32::MAX.to_be_bytes());
    let stsc = file.windows(4).position(|w| w == b"stsc").unwrap();
    file[stsc + 16..stsc + 20].copy_from_slice(&u32::MAX.to_be_bytes()); // samples_per_chunk
    let started = Instant::now();
    let (parsed, error) = mp4::read_partial(&file);
    assert!(started.elapsed().as_secs_f64() < 1.0);
    let error = error.unwrap().to_string();
    assert!(error.contains("'stts' covers fewer samples"), "{error}");
    assert!(parsed.tracks[0].samples.len() <= file.len());
    // A trun of 2^32-1 samples of the trex default size (0 bytes): listing
    // stops at the sample budget instead of allocating gigabytes.
    let mut w = Mp4Writer::fragmented(90_000);
    let mut out = Vec::new();
    w.write(&Sample::annexb(&units[0], 0, 0, 3000, true), &mut out).unwrap();
    w.finish(&mut out).unwrap();
    let trun = out.windows(4).position(|w| w == b"trun").unwrap();
    // Clear the per-sample fields and declare the maximum sample count.
    out[trun + 4..trun + 8].copy_from_slice(&0x0000_0001u32.to_be_bytes());
    out[trun + 8..trun + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    let started = Instant::now();
    let (parsed, error) = mp4::read_partial(&out);
    assert!(started.elapsed().as_secs_f64() < 1.0);
    let error = error.unwrap().to_string();
    assert!(error.contains("more samples than the file has bytes"), "{error}");
    assert!(parsed.tracks[0].samples.len() <= out.len().max(4096));
}
