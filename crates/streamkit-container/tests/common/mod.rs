//! Shared helpers: H.264 streams made by ffmpeg, access units with
//! timestamps, synthetic streams (no ffmpeg needed), ffprobe queries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use streamkit_container::mp4::Sample;
use streamkit_h264::nal::{self, AccessUnitSplitter};
use streamkit_testkit::{ffprobe_show, require_tool, run_tool, temp_dir};

/// 90 kHz ticks per frame at 30 fps.
pub const TICKS: i64 = 3000;

/// A fresh directory for one test, or `None` when ffmpeg/ffprobe are missing.
pub fn peer_dir(name: &str) -> Option<PathBuf> {
    if !require_tool("ffmpeg") || !require_tool("ffprobe") {
        return None;
    }
    Some(temp_dir(&format!("container-{name}")))
}

fn testsrc(frames: u32) -> Vec<String> {
    ["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-frames:v"]
        .iter()
        .map(|s| s.to_string())
        .chain([frames.to_string()])
        .collect()
}

/// `frames` of testsrc2 320x240@30 encoded by libx264 (`args`), Annex-B.
pub fn x264_annexb(dir: &Path, frames: u32, args: &[&str]) -> Vec<u8> {
    let path = dir.join("stream.h264");
    let mut all = testsrc(frames);
    all.extend(["-c:v", "libx264"].iter().map(|s| s.to_string()));
    all.extend(args.iter().map(|s| s.to_string()));
    all.extend(["-bsf:v", "h264_mp4toannexb", "-f", "h264", "-y"].iter().map(|s| s.to_string()));
    all.push(path.to_str().unwrap().to_string());
    run_tool("ffmpeg", &all.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::read(path).unwrap()
}

/// `frames` of testsrc2 320x240@30 written by ffmpeg to `name` with `args`
/// (codec and muxer options).
pub fn ffmpeg_file(dir: &Path, name: &str, frames: u32, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut all = testsrc(frames);
    all.extend(args.iter().map(|s| s.to_string()));
    all.push("-y".into());
    all.push(path.to_str().unwrap().to_string());
    run_tool("ffmpeg", &all.iter().map(String::as_str).collect::<Vec<_>>());
    path
}

/// Access units of an Annex-B stream.
pub fn access_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut s = AccessUnitSplitter::new();
    s.push(stream).unwrap();
    s.finish();
    std::iter::from_fn(|| s.pop()).collect()
}

/// (pts, dts) per access unit at 30 fps in 90 kHz, from the slice headers'
/// picture order counts (B-frames reorder). dts = decode index × 3000; pts is
/// the presentation index shifted by the reorder delay so that pts ≥ dts.
pub fn timestamps(units: &[Vec<u8>]) -> Vec<(i64, i64)> {
    let sps = nal::parse_sps(
        units.iter().flat_map(|u| nal::nal_units(u)).find(|n| nal::nal_type(n) == nal::NAL_SPS).expect("an SPS"),
    )
    .unwrap();
    // Picture order count per unit (8.2.1.1 for type 0; decode order otherwise).
    let mut pocs = Vec::new();
    let (mut prev_msb, mut prev_lsb) = (0i64, 0i64);
    for u in units {
        let slice = nal::nal_units(u).find(|n| nal::is_vcl(nal::nal_type(n))).expect("a slice");
        let h = nal::parse_slice_header(slice, &sps).unwrap();
        if h.nal_type == nal::NAL_IDR {
            (prev_msb, prev_lsb) = (0, 0);
        }
        let poc = match h.pic_order_cnt_lsb {
            Some(lsb) => {
                let lsb = lsb as i64;
                let max = 1i64 << sps.log2_max_pic_order_cnt_lsb;
                let msb = if lsb < prev_lsb && prev_lsb - lsb >= max / 2 {
                    prev_msb + max
                } else if lsb > prev_lsb && lsb - prev_lsb > max / 2 {
                    prev_msb - max
                } else {
                    prev_msb
                };
                if h.nal_ref_idc != 0 {
                    (prev_msb, prev_lsb) = (msb, lsb);
                }
                msb + lsb
            }
            None => pocs.len() as i64 * 2,
        };
        pocs.push((h.nal_type == nal::NAL_IDR, poc));
    }
    // Presentation index: rank of the POC within its IDR period.
    let mut display = vec![0i64; units.len()];
    let mut start = 0;
    while start < units.len() {
        let end = (start + 1..units.len()).find(|&i| pocs[i].0).unwrap_or(units.len());
        let mut order: Vec<usize> = (start..end).collect();
        order.sort_by_key(|&i| pocs[i].1);
        for (rank, i) in order.into_iter().enumerate() {
            display[i] = (start + rank) as i64;
        }
        start = end;
    }
    let delay = (0..units.len()).map(|i| i as i64 - display[i]).max().unwrap_or(0).max(0);
    (0..units.len()).map(|i| ((display[i] + delay) * TICKS, i as i64 * TICKS)).collect()
}

/// Annex-B samples for the units with their timestamps.
pub fn samples<'a>(units: &'a [Vec<u8>], times: &[(i64, i64)]) -> Vec<Sample<'a>> {
    units
        .iter()
        .zip(times)
        .map(|(u, &(pts, dts))| Sample::annexb(u, pts, dts, TICKS as u32, nal::is_keyframe(u)))
        .collect()
}

/// An x264 baseline SPS (320x240) and PPS.
pub const SPS: [u8; 24] = [
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03,
    0xc0, 0xf1, 0x42, 0xa4, 0x80,
];
pub const PPS: [u8; 5] = [0x68, 0xcb, 0x83, 0xcb, 0x20];

/// A synthetic stream (valid SPS/PPS, fake slice bytes): `frames` access
/// units, an IDR every `gop` frames. Good enough for container tests that
/// do not decode.
pub fn synthetic_units(frames: usize, gop: usize) -> Vec<Vec<u8>> {
    let mut x = 0x9e37_79b9u32;
    (0..frames)
        .map(|i| {
            let mut u = Vec::new();
            let key = i.is_multiple_of(gop);
            if key {
                u.extend_from_slice(&[0, 0, 0, 1]);
                u.extend_from_slice(&SPS);
                u.extend_from_slice(&[0, 0, 0, 1]);
                u.extend_from_slice(&PPS);
            }
            u.extend_from_slice(&[0, 0, 1, if key { 0x65 } else { 0x41 }, 0x88]);
            for _ in 0..(200 + (i * 37) % 300) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Keep the payload free of start codes.
                u.push((x as u8) | 1);
            }
            u
        })
        .collect()
}

/// ffprobe's presentation time of the first decoded frame, in seconds.
pub fn ffprobe_first_frame_time(path: &Path) -> f64 {
    let out = ffprobe_show(path, "frame=pts_time", "csv=p=0", &["-read_intervals", "%+#1"]);
    out.lines()
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe frame time: {out}"))
}

/// Top-level boxes of a file: (type, offset, size).
pub fn top_level_boxes(bytes: &[u8]) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as u64;
        let kind = String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).into_owned();
        let size = match size32 {
            1 => u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap()),
            0 => (bytes.len() - pos) as u64,
            n => n,
        };
        out.push((kind, pos as u64, size));
        pos += size as usize;
    }
    out
}
