//! The design's Example 4: multi-camera 3D tracking with PTP sync — four
//! cameras, 0.5 ms tolerance, strict sets — with simulated cameras.
//!
//! ```text
//! cargo run -p streamkit-sync --example multicam -- --sets 150
//! ```
//!
//! Each camera is a `test:` source from streamkit-builtins behind a
//! simulated camera: its own machine's PTP-disciplined clock (a few hundred
//! ns off, a little drift), genlocked frame triggers on that clock (frame k
//! at k × period since the PTP epoch), a trigger latency, exposure jitter,
//! and — for cam_3 — a dropped frame now and then. `SyncedSource` stamps
//! the frames with the camera's clock; `MultiStreamCompositor` returns one
//! frame per camera captured within 0.5 ms, and reports the sync quality.

use std::sync::Arc;

use async_trait::async_trait;
use streamkit_builtins::test_source::{Pattern, TestSource};
use streamkit_core::time::monotonic_ns;
use streamkit_core::{Fps, Frame, Result, Source, SourceInfo};
use streamkit_sync::clock::sample_pair;
use streamkit_sync::{
    Clock, CompositorOptions, GenlockPacer, MultiStreamCompositor, SimulatedClock, SyncMode, SyncedSource,
};

/// A camera triggered on the PTP frame grid of its own clock.
struct SimCamera {
    inner: TestSource,
    clock: Arc<dyn Clock>,
    pacer: GenlockPacer,
    trigger_latency_ns: u64,
    jitter_ns: u64,
    drop_every: Option<u64>,
    seed: u64,
}

impl SimCamera {
    fn jitter(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed % (self.jitter_ns + 1)
    }
}

#[async_trait]
impl Source for SimCamera {
    fn info(&self) -> SourceInfo {
        self.inner.info()
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            let instant = self.pacer.wait_next().await;
            let Some(mut frame) = self.inner.next_frame().await? else { return Ok(None) };
            if self.drop_every.is_some_and(|n| instant.index % n == 0) {
                continue; // the frame never made it off the camera
            }
            // The camera's hardware timestamp: exposure start on its clock,
            // carried as the host's monotonic time of that instant.
            let exposure = instant.time_ns + self.trigger_latency_ns + self.jitter();
            let (mono, own) = sample_pair(|| self.clock.now_ns());
            frame.timing.capture_time_ns = (mono as i128 - (own as i128 - exposure as i128)) as u64;
            return Ok(Some(frame));
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let sets: usize = args
        .iter()
        .position(|a| a == "--sets")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(150);
    let fps = Fps::new(30, 1);

    // Setup multi-stream compositor with strict sync (0.5 ms tolerance).
    let mut compositor = MultiStreamCompositor::new(CompositorOptions {
        sync_tolerance_ns: 500_000,
        sync_mode: SyncMode::Strict,
        ..CompositorOptions::default()
    });

    // Four cameras on four machines, each with a PTP-disciplined clock:
    // (clock error ns, residual drift ppm, trigger latency µs, jitter µs).
    let cameras = [(150, 0.01, 0, 20), (-400, -0.02, 60, 20), (90, 0.0, 140, 30), (-220, 0.015, 210, 40)];
    for (i, &(offset, drift, latency_us, jitter_us)) in cameras.iter().enumerate() {
        let clock: Arc<dyn Clock> = Arc::new(SimulatedClock::new(format!("ptp:0:cam{i}-host"), offset, drift));
        let camera = SimCamera {
            inner: TestSource::new(Pattern::Smpte, 640, 360, fps)?,
            pacer: GenlockPacer::new(clock.clone(), fps),
            clock: clock.clone(),
            trigger_latency_ns: latency_us * 1000,
            jitter_ns: jitter_us * 1000,
            drop_every: (i == 3).then_some(47),
            seed: 0x9e37_79b9 + i as u64,
        };
        compositor.add_synced_source(format!("cam_{i}"), Box::new(SyncedSource::new(Box::new(camera), clock)))?;
    }

    let started = monotonic_ns();
    for n in 0..sets {
        // Frames from all cameras captured at the same moment.
        let Some(synced) = compositor.get_synced_frames().await? else { break };
        // (3D pose estimation would take the frames here.)
        let timestamps: Vec<u64> = synced.frames.iter().filter_map(|f| f.frame.timing.ptp_time_ns).collect();
        let jitter = timestamps.iter().max().unwrap() - timestamps.iter().min().unwrap();
        if n % 30 == 0 {
            println!("set {n:4}: {} cameras, sync jitter {:.3} ms", synced.len(), jitter as f64 / 1e6);
        }
    }
    let elapsed = (monotonic_ns() - started) as f64 / 1e9;
    let stats = compositor.stats();
    println!(
        "\n{} sets in {elapsed:.1} s; skew mean {:.1} µs, jitter {:.1} µs, max {:.1} µs; {} incomplete sets dropped",
        stats.sets,
        stats.skew_ns.mean / 1e3,
        stats.skew_ns.std_dev() / 1e3,
        stats.skew_ns.max / 1e3,
        stats.incomplete_dropped
    );
    for s in &stats.sources {
        println!(
            "  {}: {} frames, {} matched, {} dropped; offset {:+.1} µs ± {:.1} µs, drift {}",
            s.id,
            s.frames_in,
            s.matched,
            s.unmatched + s.overflow,
            s.offset_ns.mean / 1e3,
            s.offset_ns.std_dev() / 1e3,
            s.drift_ppm().map(|d| format!("{d:+.3} ppm")).unwrap_or_else(|| "n/a".into())
        );
    }
    compositor.close().await
}
