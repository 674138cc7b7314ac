//! HLS output checked by real peers: an x264 stream through [`HlsWriter`],
//! then FFmpeg/ffprobe read the playlist and every segment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use streamkit_h264::nal::{is_keyframe, nal_type, nal_units, AccessUnitSplitter, NAL_PPS, NAL_SPS};
use streamkit_hls::playlist::format_program_date_time;
use streamkit_hls::{serve, EncodedUnit, HlsFormat, HlsOptions, HlsWriter};
use streamkit_testkit::{ffprobe_packets, ffprobe_video, require_tool, run_tool, temp_dir};

const WALLCLOCK_BASE_NS: u64 = 1_700_000_000_000_000_000;

/// 300 frames of 640x360 baseline H.264 at 30 fps, keyframes every 60, split
/// into access units. `None` (skip) without ffmpeg/ffprobe outside CI.
fn x264_access_units(dir: &Path) -> Option<Vec<Vec<u8>>> {
    if !require_tool("ffmpeg") || !require_tool("ffprobe") {
        return None;
    }
    let input = dir.join("in.h264");
    run_tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-frames:v",
            "300",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
            input.to_str().unwrap(),
        ],
    );
    let bytes = std::fs::read(&input).unwrap();
    std::fs::remove_file(&input).unwrap();
    let mut splitter = AccessUnitSplitter::new();
    let mut units = Vec::new();
    // Feed in odd-sized chunks, as a pipe would deliver them.
    for chunk in bytes.chunks(4093) {
        splitter.push(chunk).unwrap();
        units.extend(std::iter::from_fn(|| splitter.pop()));
    }
    splitter.finish();
    units.extend(std::iter::from_fn(|| splitter.pop()));
    assert_eq!(units.len(), 300, "access units in the x264 stream");
    Some(units)
}

/// Writes `units` (frame n at pts n*3000) through an [`HlsWriter`].
async fn write_hls(dir: &Path, units: &[Vec<u8>], playlist_size: usize) {
    let options = HlsOptions { segment_duration: Duration::from_secs(2), playlist_size, format: HlsFormat::Ts };
    let mut writer = HlsWriter::create(dir, options).await.unwrap();
    for (n, data) in units.iter().enumerate() {
        let n = n as u64;
        let keyframe = is_keyframe(data);
        // The encoder put keyframes exactly where the segmenter wants them.
        assert_eq!(writer.keyframe_due(n * 3000), keyframe, "frame {n}");
        let unit = EncodedUnit {
            data: data.clone(),
            pts_90k: n * 3000,
            dts_90k: n * 3000,
            keyframe,
            wallclock_ns: Some(WALLCLOCK_BASE_NS + n * 1_000_000_000 / 30),
        };
        writer.write_unit(unit).await.unwrap();
    }
    writer.finish().await.unwrap();
}

fn listed_segments(playlist: &str) -> Vec<String> {
    playlist.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

/// Checks the transport-stream framing of one segment: whole packets, PAT
/// then PMT first, then a video packet starting a PES with PCR and the
/// random access indicator.
fn check_segment_framing(path: &Path) {
    let ts = std::fs::read(path).unwrap();
    assert!(!ts.is_empty() && ts.chunks_exact(188).remainder().is_empty(), "{}: {} bytes", path.display(), ts.len());
    assert!(ts.chunks(188).all(|p| p[0] == 0x47), "sync bytes");
    let pid = |p: &[u8]| u16::from_be_bytes([p[1] & 0x1F, p[2]]);
    let packets: Vec<&[u8]> = ts.chunks(188).collect();
    assert_eq!(pid(packets[0]), 0x0000, "PAT first");
    assert_eq!(pid(packets[1]), 0x1000, "PMT second");
    let video = packets[2];
    assert_eq!(pid(video), 0x0100);
    assert!(video[1] & 0x40 != 0, "payload unit start");
    assert_eq!(video[3] & 0x30, 0x30, "adaptation field and payload");
    assert!(video[5] & 0x40 != 0, "random_access_indicator");
    assert!(video[5] & 0x10 != 0, "PCR");
    // Video continuity counters step by one on payload packets; PCRs grow and
    // are at most 40 ms (3600 ticks) apart.
    let mut cc: Option<u8> = None;
    let mut pcrs = Vec::new();
    for p in packets.iter().filter(|p| pid(p) == 0x0100) {
        let control = (p[3] >> 4) & 3;
        if control & 1 != 0 {
            if let Some(prev) = cc {
                assert_eq!(p[3] & 0x0F, (prev + 1) & 0x0F, "continuity counter");
            }
            cc = Some(p[3] & 0x0F);
        }
        if control & 2 != 0 && p[4] > 0 && p[5] & 0x10 != 0 {
            let b = &p[6..11];
            let base = (u64::from(b[0]) << 25)
                | (u64::from(b[1]) << 17)
                | (u64::from(b[2]) << 9)
                | (u64::from(b[3]) << 1)
                | (u64::from(b[4]) >> 7);
            pcrs.push(base);
        }
    }
    assert!(pcrs.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 3600), "PCR intervals: {pcrs:?}");
}

fn ffmpeg_decode_errors(playlist: &Path) -> String {
    let (_, stderr) = run_tool("ffmpeg", &["-v", "error", "-i", playlist.to_str().unwrap(), "-f", "null", "-"]);
    stderr
}

#[tokio::test]
async fn vod_playlist_decodes_all_300_frames() {
    let dir = temp_dir("hls-vod");
    let Some(units) = x264_access_units(&dir) else { return };
    let out = dir.join("hls");
    write_hls(&out, &units, 0).await;

    let playlist = std::fs::read_to_string(out.join("index.m3u8")).unwrap();
    assert!(playlist.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"));
    assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{playlist}");
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    assert_eq!(playlist.matches("#EXTINF:2.000,\n").count(), 5, "{playlist}");
    let first_date = format!("#EXT-X-PROGRAM-DATE-TIME:{}\n", format_program_date_time(WALLCLOCK_BASE_NS));
    assert_eq!(first_date, "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n");
    assert!(playlist.contains(&first_date), "{playlist}");
    assert!(playlist.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:28.000Z\n#EXTINF:2.000,\nsegment_00004.ts\n"));
    let segments = listed_segments(&playlist);
    assert_eq!(segments, (0..5).map(|i| format!("segment_{i:05}.ts")).collect::<Vec<_>>());
    let mut expected_files = segments.clone();
    expected_files.push("index.m3u8".into());
    expected_files.sort();
    assert_eq!(dir_entries(&out), expected_files, "no temporary files left");

    let stream = ffprobe_video(&out.join("index.m3u8")).unwrap();
    assert_eq!((stream.codec.as_str(), stream.width, stream.height), ("h264", 640, 360));
    assert_eq!(stream.frames, 300, "every frame decodes through the playlist");
    assert_eq!(ffmpeg_decode_errors(&out.join("index.m3u8")), "", "FFmpeg reports no errors");

    // Timestamps run on without gaps across segments: 300 frames at 1/30 s.
    let packets = ffprobe_packets(&out.join("index.m3u8"));
    assert_eq!(packets.len(), 300);
    assert!(packets.windows(2).all(|w| w[1].0 - w[0].0 == 3000), "pts steps of 3000");
    assert!(packets.iter().enumerate().all(|(i, p)| p.2 == (i % 60 == 0)), "keyframes every 60");

    for name in &segments {
        let path = out.join(name);
        check_segment_framing(&path);
        let alone = ffprobe_video(&path).unwrap();
        assert_eq!((alone.width, alone.height, alone.frames), (640, 360, 60), "{name} decodes alone");
    }

    // FFmpeg as an HTTP client of our server, token in the query: the
    // playlist's segment URIs must carry it for every request to pass.
    let server = serve(out.clone(), "127.0.0.1:0".parse().unwrap(), Some("t0ken".into())).await.unwrap();
    let url = format!("http://{}/index.m3u8?token=t0ken", server.local_addr());
    let over_http = tokio::task::spawn_blocking(move || ffprobe_video(Path::new(&url))).await.unwrap().unwrap();
    assert_eq!(over_http.frames, 300, "decoded over HTTP");
    server.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn live_window_keeps_five_segments_and_deletes_the_rest() {
    let dir = temp_dir("hls-live");
    let Some(units) = x264_access_units(&dir) else { return };
    // 20 s: the stream twice. Parameter sets are kept on the first IDR only,
    // so the muxer must put them back before every other IDR.
    let mut twice: Vec<Vec<u8>> = Vec::new();
    for (i, au) in units.iter().chain(units.iter()).enumerate() {
        if i == 0 {
            twice.push(au.clone());
            continue;
        }
        let mut stripped = Vec::new();
        for nal in nal_units(au).filter(|n| !matches!(nal_type(n), NAL_SPS | NAL_PPS)) {
            stripped.extend_from_slice(&[0, 0, 0, 1]);
            stripped.extend_from_slice(nal);
        }
        twice.push(stripped);
    }
    let out = dir.join("hls");
    write_hls(&out, &twice, 5).await;

    let playlist = std::fs::read_to_string(out.join("index.m3u8")).unwrap();
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    assert!(!playlist.contains("PLAYLIST-TYPE"), "a sliding window is not VOD");
    assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:5\n"), "{playlist}");
    let segments = listed_segments(&playlist);
    assert_eq!(segments, (5..10).map(|i| format!("segment_{i:05}.ts")).collect::<Vec<_>>());
    assert_eq!(playlist.matches("#EXTINF:2.000,\n").count(), 5, "{playlist}");
    let mut expected_files = segments.clone();
    expected_files.push("index.m3u8".into());
    expected_files.sort();
    assert_eq!(dir_entries(&out), expected_files, "evicted segments deleted, nothing else left");

    let stream = ffprobe_video(&out.join("index.m3u8")).unwrap();
    assert_eq!(stream.frames, 300, "the five listed segments decode");
    for name in &segments {
        let path: PathBuf = out.join(name);
        check_segment_framing(&path);
        assert_eq!(ffprobe_video(&path).unwrap().frames, 60, "{name} decodes alone (SPS/PPS re-inserted)");
        let (_, errors) = run_tool("ffmpeg", &["-v", "error", "-i", path.to_str().unwrap(), "-f", "null", "-"]);
        assert_eq!(errors, "", "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
