//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use streamkit_core::time::monotonic_ns;
use streamkit_core::{Frame, PixelFormat, Source, TimeBase, Timing};

/// A smooth moving gradient (kind to JPEG and H.264) with every timing field
/// and some metadata set.
pub fn test_frame(format: PixelFormat, width: u32, height: u32, n: u64) -> Frame {
    let mut rgba = Frame::new(PixelFormat::Rgba8Premul, width, height).unwrap();
    let w = width as usize;
    for (i, px) in rgba.data_mut().chunks_exact_mut(4).enumerate() {
        let (x, y) = (i % w, i / w);
        px.copy_from_slice(&[(x + n as usize * 3) as u8, (y * 2) as u8, ((x + y) / 2) as u8, 255]);
    }
    let mut frame = streamkit_core::convert::convert(&rgba, format).unwrap();
    frame.timing = Timing {
        pts: n as i64 * 3000,
        time_base: TimeBase::RTP_VIDEO,
        capture_time_ns: monotonic_ns(),
        ptp_time_ns: Some(1_750_000_000_000_000_000 + n * 33_333_333),
        frame_number: n,
        sync_source: Some(Arc::from("ptp:0:001122.fffe.334455")),
        drift_ns: -1500 + n as i64,
    };
    frame.metadata.insert("source_id", "phone_cam_0");
    frame.metadata.insert("n", n.to_string());
    frame
}

/// Mean absolute difference of two frames' bytes (same format and size).
pub fn mean_abs_diff(a: &Frame, b: &Frame) -> f64 {
    assert_eq!((a.format(), a.size()), (b.format(), b.size()));
    let sum: u64 = a.data().iter().zip(b.data()).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    sum as f64 / a.data().len() as f64
}

/// The next frame within `limit`, panicking with `what` otherwise.
pub async fn next_within(source: &mut (impl Source + ?Sized), limit: Duration, what: &str) -> Option<Frame> {
    match tokio::time::timeout(limit, source.next_frame()).await {
        Ok(result) => result.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => panic!("{what}: no frame within {limit:?}"),
    }
}
