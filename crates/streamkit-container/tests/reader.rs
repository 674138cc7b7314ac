//! The MP4 reader on files made by ffmpeg (plain, faststart, fragmented,
//! non-H.264), compared with what ffprobe says about the same files.

mod common;

use common::*;
use streamkit_container::mp4::{self, FourCc, Mp4Reader};
use streamkit_h264::nal;
use streamkit_testkit::ffprobe_packets;

#[test]
fn reads_ffmpeg_files() {
    let Some(dir) = peer_dir("read-ffmpeg") else { return };
    let x264 = ["-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-g", "10"];
    let cases: [(&str, Vec<&str>, bool); 3] = [
        ("plain.mp4", x264.to_vec(), false),
        ("faststart.mp4", [&x264[..], &["-movflags", "+faststart"]].concat(), false),
        ("fragmented.mp4", [&x264[..], &["-movflags", "frag_keyframe+empty_moov"]].concat(), true),
    ];
    for (name, args, fragmented) in cases {
        let path = ffmpeg_file(&dir, name, 30, &args);
        let bytes = std::fs::read(&path).unwrap();
        let file = mp4::read(&bytes).unwrap();
        assert_eq!(file.fragmented, fragmented, "{name}");
        let track = file.video_track().unwrap();
        assert_eq!((track.codec, track.handler), (FourCc::AVC1, FourCc::VIDE));
        assert_eq!((track.width, track.height), (320, 240));
        assert_eq!(track.samples.len(), 30, "{name}");
        assert!((track.duration_secs() - 1.0).abs() < 0.01, "{name}: {}", track.duration_secs());

        // avcC agrees with the SPS it carries.
        let avc = track.avc.as_ref().unwrap();
        let sps = avc.parse_sps().unwrap();
        assert_eq!((sps.width, sps.height), (320, 240));
        assert_eq!(
            (avc.profile_idc, avc.profile_compat, avc.level_idc),
            (sps.profile_idc, sps.constraint_flags, sps.level_idc)
        );
        assert_eq!(avc.profile_idc, 100);
        assert_eq!(avc.length_size, 4);

        // Keyframe flags agree with ffprobe and with the IDR slices in the data.
        let packets = ffprobe_packets(&path);
        assert_eq!(packets.len(), 30);
        for (i, (s, p)) in track.samples.iter().zip(&packets).enumerate() {
            let data = &bytes[s.offset as usize..][..s.size as usize];
            assert_eq!(s.keyframe, p.2, "{name}: sample {i}");
            assert_eq!(s.keyframe, nal::is_keyframe_avcc(data, 4), "{name}: sample {i}");
        }
        assert_eq!(track.samples.iter().filter(|s| s.keyframe).count(), 3, "{name}: -g 10");

        // Timestamps: the same as ffprobe's up to one constant shift; dts
        // increases; pts is out of decode order (B-frames) but evenly spaced.
        let (dp, dd) = (packets[0].0 - track.samples[0].pts, packets[0].1 - track.samples[0].dts);
        for (s, p) in track.samples.iter().zip(&packets) {
            assert_eq!((p.0 - s.pts, p.1 - s.dts), (dp, dd), "{name}");
        }
        assert!(track.samples.windows(2).all(|w| w[1].dts > w[0].dts));
        let mut pts: Vec<i64> = track.samples.iter().map(|s| s.pts).collect();
        assert!(pts.windows(2).any(|w| w[1] < w[0]), "{name}: B-frames reorder");
        pts.sort_unstable();
        let step = pts[1] - pts[0];
        assert!(step > 0 && pts.windows(2).all(|w| w[1] - w[0] == step), "{name}: {pts:?}");
        assert_eq!(step as u64 * 30, track.timescale as u64, "{name}: 30 fps");
        if !fragmented {
            assert!(track.edit_media_time.is_some(), "{name}: ffmpeg writes an edit list for B-frames");
        }

        // Incremental reading gives the same answer whatever the chunking.
        for chunk in [1, 7, 4096] {
            let mut reader = Mp4Reader::new();
            for piece in bytes.chunks(chunk) {
                reader.push(piece).unwrap();
            }
            assert!(reader.has_moov());
            let (incremental, error) = reader.finish();
            assert!(error.is_none(), "{name}: {error:?}");
            assert_eq!(incremental, file, "{name}: chunk {chunk}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn reports_other_codecs_by_fourcc() {
    let Some(dir) = peer_dir("read-other") else { return };
    let path = ffmpeg_file(&dir, "mpeg4.mp4", 10, &["-c:v", "mpeg4"]);
    let file = mp4::read(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(file.tracks[0].codec, FourCc(*b"mp4v"));
    assert_eq!(file.tracks[0].samples.len(), 10);
    assert_eq!((file.tracks[0].width, file.tracks[0].height), (320, 240));
    let err = file.video_track().unwrap_err().to_string();
    assert!(err.contains("found mp4v (vide)") && err.contains("supported: avc1, avc3"), "{err}");

    // Video plus audio: both tracks listed, the video one found.
    let path = dir.join("av.mp4");
    let p = path.to_str().unwrap();
    streamkit_testkit::run_tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-y",
            p,
        ],
    );
    let file = mp4::read(&std::fs::read(&path).unwrap()).unwrap();
    let kinds: Vec<(FourCc, FourCc)> = file.tracks.iter().map(|t| (t.handler, t.codec)).collect();
    assert_eq!(kinds, [(FourCc::VIDE, FourCc::AVC1), (FourCc::SOUN, FourCc(*b"mp4a"))]);
    assert_eq!(file.video_track().unwrap().samples.len(), 30);
    let audio = &file.tracks[1];
    assert_eq!(audio.timescale, 48_000);
    assert!(audio.samples.len() >= 46, "~47 AAC frames in a second: {}", audio.samples.len());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn truncated_faststart_keeps_the_samples_it_has() {
    let Some(dir) = peer_dir("read-truncated") else { return };
    let path = ffmpeg_file(&dir, "x.mp4", 30, &["-c:v", "libx264", "-g", "10", "-movflags", "+faststart"]);
    let bytes = std::fs::read(&path).unwrap();
    let full = mp4::read(&bytes).unwrap();
    let samples = &full.video_track().unwrap().samples;
    let cut = (samples[14].offset + samples[14].size as u64) as usize;
    let (file, error) = mp4::read_partial(&bytes[..cut]);
    let error = error.unwrap().to_string();
    assert!(error.contains("'mdat'") && error.contains(&format!("truncated at byte {cut}")), "{error}");
    assert_eq!(file.video_track().unwrap().samples[..], samples[..15]);
    // The strict reader refuses it.
    assert!(mp4::read(&bytes[..cut]).is_err());
    // Cut inside the moov: nothing to list, the error says where.
    let moov = top_level_boxes(&bytes).into_iter().find(|b| b.0 == "moov").unwrap();
    let (file, error) = mp4::read_partial(&bytes[..moov.1 as usize + 50]);
    assert!(file.tracks.is_empty());
    assert!(error.unwrap().to_string().contains(&format!("at byte {}", moov.1)));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn not_mp4() {
    for (bytes, expected) in [
        (&b""[..], "empty input"),
        (&b"\x00\x00\x00\x10ftypisom\x00\x00\x02\x00"[..], "no 'moov'"),
        (&b"GIF89a\x01\x00\x01\x00\x00\x00\x00"[..], "not an MP4 box"),
        (&b"\x00\x00\x00\x04ftyp"[..], "less than its own header"),
        (&[0xff; 64][..], "not an MP4 box"),
    ] {
        let err = mp4::read(bytes).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
}
