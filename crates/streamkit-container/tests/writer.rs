//! Mp4Writer and CMAF segments, checked by ffprobe (a real peer) and by our
//! own reader.

mod common;

use common::*;
use streamkit_container::mp4::{self, cmaf, Finalize, FragmentPolicy, Mp4Layout, Mp4Writer, Mp4WriterOptions, Sample};
use streamkit_h264::nal;
use streamkit_testkit::{ffprobe_duration, ffprobe_packets, ffprobe_video};

/// Writes every sample, then finishes; returns the finished file bytes and
/// how it was finalised.
fn write_all(mut writer: Mp4Writer, samples: &[Sample<'_>]) -> (Vec<u8>, Finalize) {
    let mut out = Vec::new();
    for s in samples {
        writer.write(s, &mut out).unwrap();
    }
    let finalize = writer.finish(&mut out).unwrap();
    (finalize.clone().apply(out), finalize)
}

fn assert_plays(path: &std::path::Path, frames: u64) {
    let v = ffprobe_video(path).expect("ffprobe is present");
    assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", 320, 240), "{path:?}");
    assert_eq!(v.frames, frames, "{path:?}");
    assert_eq!(v.frame_rate, "30/1", "{path:?}");
}

fn assert_duration(path: &std::path::Path, secs: f64) {
    let d = ffprobe_duration(path);
    assert!((d - secs).abs() < 0.04, "{path:?}: duration {d}, expected {secs}");
}

#[test]
fn fragmented_mp4_from_x264() {
    let Some(dir) = peer_dir("frag") else { return };
    for (name, args) in [
        ("baseline", &["-profile:v", "baseline", "-g", "10"][..]),
        ("bframes", &["-profile:v", "high", "-bf", "2", "-g", "10"][..]),
    ] {
        let units = access_units(&x264_annexb(&dir, 30, args));
        assert_eq!(units.len(), 30);
        let times = timestamps(&units);
        let (file, finalize) = write_all(Mp4Writer::fragmented(90_000), &samples(&units, &times));
        assert_eq!(finalize, Finalize::Complete);
        let boxes: Vec<String> = top_level_boxes(&file).into_iter().map(|b| b.0).collect();
        assert_eq!(
            boxes,
            ["ftyp", "moov", "moof", "mdat", "moof", "mdat", "moof", "mdat"],
            "{name}: a fragment per GOP"
        );
        let path = dir.join(format!("{name}.mp4"));
        std::fs::write(&path, &file).unwrap();
        assert_plays(&path, 30);
        assert_duration(&path, 1.0);
        // Presentation starts at 0 with the signed (version 1) trun offsets.
        // FFmpeg shifts pts by the most negative offset (as with its own
        // `-movflags negative_cts_offsets` files): one frame here.
        let first = ffprobe_first_frame_time(&path);
        let expected = if name == "bframes" { 1.0 / 30.0 } else { 0.0 };
        assert!((first - expected).abs() < 1e-3, "{name}: first frame at {first}");

        // Our reader agrees.
        let parsed = mp4::read(&file).unwrap();
        assert!(parsed.fragmented);
        let track = parsed.video_track().unwrap();
        assert_eq!((track.width, track.height, track.timescale), (320, 240, 90_000));
        assert_eq!(track.samples.len(), 30);
        let keys: Vec<usize> = track.samples.iter().enumerate().filter(|(_, s)| s.keyframe).map(|(i, _)| i).collect();
        assert_eq!(keys, [0, 10, 20]);
        let shift = times[0].0 - times[0].1;
        for (s, &(pts, dts)) in track.samples.iter().zip(&times) {
            assert_eq!((s.pts, s.dts, s.duration), (pts - times[0].1 - shift, dts - times[0].1, 3000), "{name}");
        }
        if name == "bframes" {
            let pts: Vec<i64> = track.samples.iter().map(|s| s.pts).collect();
            assert!(pts.windows(2).any(|w| w[1] < w[0]), "B-frames: pts out of decode order");
            assert!(pts.iter().any(|&p| p < 0) || pts.iter().all(|&p| p >= 0));
        }
        // The samples are the encoder's slices, length-prefixed.
        for (s, u) in track.samples.iter().zip(&units) {
            let mut expected = Vec::new();
            nal::annexb_to_avcc(u, &mut expected);
            assert!(file[s.offset as usize..][..s.size as usize] == expected[..]);
        }
        assert_eq!(track.avc.as_ref().unwrap().sps[0], nal::nal_units(&units[0]).next().unwrap());
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn killed_fragmented_writer_leaves_a_playable_file() {
    let Some(dir) = peer_dir("killed") else { return };
    let units = access_units(&x264_annexb(&dir, 30, &["-profile:v", "baseline", "-g", "10"]));
    let times = timestamps(&units);
    // What a sink has on disk when the process dies while the third fragment
    // is being written: everything the writer emitted so far, cut short.
    let mut writer = Mp4Writer::fragmented(90_000);
    let mut out = Vec::new();
    for s in samples(&units, &times) {
        writer.write(&s, &mut out).unwrap();
    }
    writer.finish(&mut out).unwrap();
    let boxes = top_level_boxes(&out);
    let (_, last_moof, _) = boxes.iter().rev().find(|b| b.0 == "moof").unwrap().clone();
    let (_, _, last_mdat_size) = boxes.last().unwrap().clone();
    let cut = (last_moof as usize) + 100 + (last_mdat_size as usize) / 2;
    let path = dir.join("killed.mp4");
    std::fs::write(&path, &out[..cut]).unwrap();
    let v = ffprobe_video(&path).unwrap();
    assert!(v.frames >= 20, "the two complete fragments decode: {v:?}");
    assert_eq!((v.width, v.height), (320, 240));

    let (file, error) = mp4::read_partial(&out[..cut]);
    let error = error.expect("truncation is reported").to_string();
    assert!(error.contains("truncated"), "{error}");
    // The complete fragments, plus the samples of the cut one whose bytes
    // are all there.
    let listed = &file.video_track().unwrap().samples;
    assert!((20..30).contains(&listed.len()), "{}", listed.len());
    assert!(listed.iter().all(|s| s.offset + s.size as u64 <= cut as u64));
    // Cut inside the last moof: same complete fragments.
    let (file, error) = mp4::read_partial(&out[..last_moof as usize + 30]);
    assert!(error.unwrap().to_string().contains("'moof'"));
    assert_eq!(file.video_track().unwrap().samples.len(), 20);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn faststart_mp4_from_x264() {
    let Some(dir) = peer_dir("faststart") else { return };
    for (name, args) in [
        ("baseline", &["-profile:v", "baseline", "-g", "10"][..]),
        ("bframes", &["-profile:v", "high", "-bf", "2", "-g", "10"][..]),
    ] {
        let units = access_units(&x264_annexb(&dir, 30, args));
        let times = timestamps(&units);
        let samples = samples(&units, &times);
        for reserve in [0, Mp4Writer::suggested_moov_reserve(30), 4096] {
            let (file, finalize) = write_all(Mp4Writer::faststart(90_000, reserve), &samples);
            match (&finalize, reserve) {
                (Finalize::Relocate { .. }, 0) | (Finalize::Overwrite { .. }, _) => {}
                other => panic!("{name}: reserve {reserve} gave {other:?}"),
            }
            let boxes: Vec<String> = top_level_boxes(&file).into_iter().map(|b| b.0).collect();
            let expected: &[&str] =
                if reserve == 0 { &["ftyp", "moov", "mdat"] } else { &["ftyp", "moov", "free", "mdat"] };
            assert_eq!(boxes, expected, "{name}: moov before mdat");
            let path = dir.join(format!("{name}-{reserve}.mp4"));
            std::fs::write(&path, &file).unwrap();
            assert_plays(&path, 30);
            assert_duration(&path, 1.0);
            assert!(ffprobe_first_frame_time(&path).abs() < 1e-6, "{name}: the edit list starts at the first frame");

            let parsed = mp4::read(&file).unwrap();
            assert!(!parsed.fragmented);
            let track = parsed.video_track().unwrap();
            assert_eq!(track.samples.len(), 30);
            assert_eq!(track.duration, 90_000);
            let delay = times[0].0 - times[0].1;
            assert_eq!(track.edit_media_time, (delay > 0).then_some(delay));
            for (s, &(pts, dts)) in track.samples.iter().zip(&times) {
                assert_eq!((s.pts, s.dts), (pts - times[0].1, dts - times[0].1));
            }
            let keys = track.samples.iter().filter(|s| s.keyframe).count();
            assert_eq!(keys, 3);
            // ffprobe sees the same packets (pts/dts up to a constant shift).
            let packets = ffprobe_packets(&path);
            assert_eq!(packets.len(), 30);
            let (p0, d0) = (packets[0].0 - track.samples[0].pts, packets[0].1 - track.samples[0].dts);
            for (p, s) in packets.iter().zip(&track.samples) {
                assert_eq!((p.0 - s.pts, p.1 - s.dts, p.2), (p0, d0, s.keyframe), "{name}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cmaf_segments_play_concatenated() {
    let Some(dir) = peer_dir("cmaf") else { return };
    let units = access_units(&x264_annexb(&dir, 30, &["-profile:v", "main", "-bf", "2", "-g", "10"]));
    let times = timestamps(&units);
    let samples = samples(&units, &times);
    let config = nal::AvcConfig::from_annexb(&units[0]).unwrap().unwrap();
    let init = cmaf::init_segment(&config, 320, 240, 90_000);
    let mut stream = init.clone();
    let mut segments = Vec::new();
    for (i, gop) in samples.chunks(10).enumerate() {
        let base = (gop[0].dts - samples[0].dts) as u64;
        let segment = cmaf::media_segment(i as u32 + 1, base, gop);
        assert_eq!(&segment[4..8], b"styp");
        segments.push(segment.clone());
        stream.extend_from_slice(&segment);
    }
    let path = dir.join("cmaf.mp4");
    std::fs::write(&path, &stream).unwrap();
    assert_plays(&path, 30);
    assert_duration(&path, 1.0);
    // The init segment alone: the track, no samples.
    let parsed = mp4::read(&init).unwrap();
    assert!(parsed.fragmented && parsed.compatible_brands.iter().any(|b| &b.0 == b"cmfc"));
    assert_eq!(parsed.video_track().unwrap().samples.len(), 0);
    let parsed = mp4::read(&stream).unwrap();
    let track = parsed.video_track().unwrap();
    assert_eq!(track.samples.len(), 30);
    for (s, &(pts, dts)) in track.samples.iter().zip(&times) {
        assert_eq!((s.pts, s.dts), (pts - times[0].1, dts - times[0].1));
    }
    // A segment on its own (after a fresh init) also plays: HLS players
    // fetch them separately.
    let path = dir.join("cmaf-second.mp4");
    std::fs::write(&path, [init, segments[1].clone()].concat()).unwrap();
    assert_plays(&path, 10);
    let _ = std::fs::remove_dir_all(dir);
}

// ---- without ffmpeg ---------------------------------------------------------

#[test]
fn writer_rules() {
    let units = synthetic_units(20, 5);
    let sample = |i: usize| Sample::annexb(&units[i], i as i64 * 3000, i as i64 * 3000, 3000, i.is_multiple_of(5));
    let mut w = Mp4Writer::fragmented(90_000);
    let mut out = Vec::new();
    // Non-keyframes before the first keyframe are dropped.
    w.write(&sample(1), &mut out).unwrap();
    assert_eq!((w.dropped_before_keyframe(), w.samples_written(), out.len()), (1, 0, 0));
    w.write(&sample(5), &mut out).unwrap();
    assert!(!out.is_empty(), "the header goes out with the first keyframe");
    assert_eq!(w.config().unwrap().codec_string(), "avc1.42c00d");
    // dts must increase.
    let err = w.write(&sample(5), &mut out).unwrap_err().to_string();
    assert!(err.contains("does not increase"), "{err}");
    // A changed SPS is refused.
    let mut other = units[10].clone();
    let sps_at = 4 + 3; // level_idc of the SPS
    other[sps_at] = 0x1f;
    let err = w.write(&Sample::annexb(&other, 60_000, 60_000, 3000, true), &mut out).unwrap_err().to_string();
    assert!(err.contains("SPS/PPS changed"), "{err}");
    w.finish(&mut out).unwrap();
    assert!(w.finish(&mut out).is_err());
    // No samples: no file.
    let err = Mp4Writer::faststart(90_000, 0).finish(&mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("no samples"), "{err}");
    // Length-prefixed samples need the configuration first.
    let mut avcc = Vec::new();
    nal::annexb_to_avcc(&units[0], &mut avcc);
    let mut w = Mp4Writer::fragmented(90_000);
    assert!(w.write(&Sample::avcc(&avcc, 0, 0, 3000, true), &mut Vec::new()).is_err());
    w.set_config(nal::AvcConfig::from_parameter_sets(&SPS, &PPS).unwrap()).unwrap();
    w.write(&Sample::avcc(&avcc, 0, 0, 3000, true), &mut Vec::new()).unwrap();
}

#[test]
fn faststart_finalisation_both_ways() {
    let units = synthetic_units(60, 15);
    let samples: Vec<Sample> = units
        .iter()
        .enumerate()
        .map(|(i, u)| Sample::annexb(u, i as i64 * 3000 + 6000, i as i64 * 3000, 0, i.is_multiple_of(15)))
        .collect();
    let mut files = Vec::new();
    for reserve in [0, 100, 100_000] {
        let mut w = Mp4Writer::faststart(90_000, reserve);
        let mut written = Vec::new();
        for s in &samples {
            w.write(s, &mut written).unwrap();
        }
        let finalize = w.finish(&mut written).unwrap();
        match &finalize {
            Finalize::Overwrite { bytes } => {
                assert!(reserve == 100_000);
                let data_start = bytes.len();
                assert_eq!(&bytes[data_start - 12..data_start - 8], b"mdat");
            }
            Finalize::Relocate { head, data_start } => {
                assert!(reserve < 1000, "a small reserve relocates");
                assert!(&head[head.len() - 4..] == b"mdat");
                assert!(*data_start > 0);
            }
            Finalize::Complete => panic!("faststart is never complete by itself"),
        }
        let file = finalize.apply(written);
        let parsed = mp4::read(&file).unwrap();
        let track = parsed.video_track().unwrap();
        assert_eq!(track.samples.len(), 60);
        assert_eq!(track.edit_media_time, Some(6000));
        assert_eq!(track.samples.last().unwrap().duration, 3000, "duration 0: the previous one is repeated");
        for (s, u) in track.samples.iter().zip(&units) {
            let mut expected = Vec::new();
            nal::annexb_to_avcc(u, &mut expected);
            assert!(file[s.offset as usize..][..s.size as usize] == expected[..]);
        }
        files.push(parsed);
    }
    // The three layouts describe the same samples.
    let strip = |f: &mp4::Mp4File| -> Vec<(u32, i64, i64, bool)> {
        f.tracks[0].samples.iter().map(|s| (s.size, s.dts, s.pts, s.keyframe)).collect()
    };
    assert_eq!(strip(&files[0]), strip(&files[1]));
    assert_eq!(strip(&files[0]), strip(&files[2]));
}

#[test]
fn fragment_policy() {
    let units = synthetic_units(90, 10);
    let samples: Vec<Sample> = units
        .iter()
        .enumerate()
        .map(|(i, u)| Sample::annexb(u, i as i64 * 3000, i as i64 * 3000, 3000, i.is_multiple_of(10)))
        .collect();
    let count_fragments = |policy: FragmentPolicy| {
        let w = Mp4Writer::new(Mp4WriterOptions { layout: Mp4Layout::Fragmented(policy), timescale: 90_000 });
        let (file, _) = write_all(w, &samples);
        let n = top_level_boxes(&file).iter().filter(|b| b.0 == "moof").count();
        assert_eq!(mp4::read(&file).unwrap().tracks[0].samples.len(), 90);
        n
    };
    assert_eq!(count_fragments(FragmentPolicy::default()), 9, "one per keyframe");
    assert_eq!(count_fragments(FragmentPolicy { min_duration: 90_000, ..Default::default() }), 3, "at least 1 s");
    assert!(count_fragments(FragmentPolicy { max_bytes: 2000, ..Default::default() }) > 12, "bounded by size");
    // A fragment flushed by hand.
    let mut w = Mp4Writer::fragmented(90_000);
    let mut out = Vec::new();
    w.write(&samples[0], &mut out).unwrap();
    w.write(&samples[1], &mut out).unwrap();
    let before = out.len();
    w.flush_fragment(&mut out);
    assert!(out.len() > before);
    let parsed = mp4::read(&out).unwrap();
    assert_eq!(parsed.tracks[0].samples.len(), 2);
}
