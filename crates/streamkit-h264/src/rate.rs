//! Average-bitrate rate control for files and HLS, over OpenH264's
//! fixed-QP mode.
//!
//! OpenH264's own bitrate mode is built for real-time calls: it keeps every
//! second near the target and never goes below QP 12 (`GOM_MIN_QP_MODE`),
//! so a simple picture ends up far under budget at a middling quality. A
//! file or an HLS stream only needs the *average* to hold, so this
//! controller does what x264's ABR does, one QP per frame:
//!
//! * it models a frame's size as `complexity × 2^(−QP/6)` (H.264's
//!   quantiser doubles every 6 QP), with separate running complexities for
//!   IDR and P frames; a P frame far costlier than the running figure (a
//!   scene cut) replaces it at once, and an IDR frame's is scaled by how
//!   much detail the picture has compared with the last IDR's
//!   ([`spatial_activity`]), so a cut to a busy picture at a keyframe is not
//!   coded at the easy picture's QP;
//! * it picks the QP that makes the coming keyframe interval spend its share
//!   of the budget;
//! * it corrects the next frames for what was over- or under-spent, with
//!   savings capped at one second of bits, so a long easy stretch does not
//!   license a long overshoot when the picture becomes busy.
//!
//! Sans-IO: the encoder asks [`AverageRate::next_qp`] before each frame and
//! reports the size with [`AverageRate::record`].

/// QP bounds: all of H.264's range.
const QP_MIN: f64 = 0.0;
const QP_MAX: f64 = 51.0;
/// How much lower an IDR frame's QP is than the P frames' (x264's `ipratio`
/// 1.4 is 2.9 QP): keyframes are referenced by the whole interval.
const IDR_QP_OFFSET: f64 = 3.0;
/// Weight of the newest frame in the running complexities.
const LEARN: f64 = 0.25;
/// A frame's QP moves at most this far below the previous frame's; upwards
/// it moves at once (a scene cut must not wait).
const MAX_STEP_DOWN: f64 = 4.0;
/// Before any frame is measured, an IDR frame's complexity (bits at QP 0)
/// is guessed from its detail: `pixels × (FLAT + PER_ACTIVITY × activity)`.
/// Fitted loosely: a flat synthetic 1080p picture costs ~0.05 bit per pixel
/// at QP 0, camera video (activity ~10) ~0.2 bit per pixel at QP 26.
const PRIOR_FLAT_BPP: f64 = 0.05;
const PRIOR_BPP_PER_ACTIVITY: f64 = 0.4;

#[derive(Clone, Debug)]
pub struct AverageRate {
    /// Budget per frame, in bits.
    frame_bits: f64,
    /// Frames per keyframe interval (≥ 1).
    interval: f64,
    /// Bitrate in bits per second: the cap on saved-up bits.
    max_savings: f64,
    /// Bits spent minus bits budgeted so far (negative: under budget),
    /// never below `-max_savings`.
    debt: f64,
    /// Running `bits × 2^(QP/6)` of P and IDR frames: the size each would
    /// have at QP 0.
    p_complexity: Option<f64>,
    idr_complexity: Option<f64>,
    /// The P-frame QP of the previous frame.
    qp: f64,
    pixels: f64,
    /// Spatial activity of the last IDR frame, and of the one being encoded.
    idr_activity: Option<f64>,
    pending_activity: Option<f64>,
}

impl AverageRate {
    /// `bitrate` bits per second at `fps`, an IDR every `interval` frames (0: rarely).
    pub fn new(bitrate: u32, fps: f64, interval: u32, pixels: u32) -> AverageRate {
        let frame_bits = bitrate as f64 / fps.max(1e-3);
        // A first guess from bits per pixel, for a first frame that comes
        // without its activity: ~0.1 bit per pixel is QP ~26 for camera video.
        let bpp = frame_bits / pixels.max(1) as f64;
        let qp = (26.0 - 6.0 * (bpp / 0.1).log2()).clamp(QP_MIN + 10.0, QP_MAX);
        AverageRate {
            frame_bits,
            interval: if interval == 0 { 300.0 } else { interval as f64 },
            max_savings: bitrate as f64,
            debt: 0.0,
            p_complexity: None,
            idr_complexity: None,
            qp,
            pixels: pixels.max(1) as f64,
            idr_activity: None,
            pending_activity: None,
        }
    }

    /// The QP for the next frame, an IDR frame or not; `activity` is the
    /// picture's [`spatial_activity`] when it is an IDR frame.
    pub fn next_qp(&mut self, idr: bool, activity: Option<f64>) -> u8 {
        self.pending_activity = activity.filter(|_| idr);
        if let (None, Some(activity)) = (self.idr_complexity, self.pending_activity) {
            // Nothing measured yet: price the picture by its detail.
            let guess = self.pixels * (PRIOR_FLAT_BPP + PRIOR_BPP_PER_ACTIVITY * activity);
            self.idr_complexity = Some(guess);
            self.idr_activity = Some(activity);
            self.p_complexity = Some(guess / 8.0);
            self.qp = QP_MIN; // the step limit must not hold the first guess up
        }
        if let Some(p) = self.p_complexity {
            // Bits the coming interval may spend, corrected by half of the
            // debt (or savings) so that the error decays over a few frames.
            let budget =
                (self.frame_bits * self.interval - self.debt * 0.5).max(self.frame_bits * self.interval * 0.25);
            let detail = match (self.pending_activity, self.idr_activity) {
                (Some(now), Some(then)) => (now + 1.0) / (then + 1.0),
                _ => 1.0,
            };
            let idr = self.idr_complexity.unwrap_or(p * 8.0) * detail * 2f64.powf(IDR_QP_OFFSET / 6.0);
            let wanted = 6.0 * ((p * (self.interval - 1.0) + idr) / budget).log2();
            let floor = self.qp - MAX_STEP_DOWN;
            self.qp = wanted.max(floor).clamp(QP_MIN, QP_MAX);
        }
        let qp = if idr { self.qp - IDR_QP_OFFSET } else { self.qp };
        qp.round().clamp(QP_MIN, QP_MAX) as u8
    }

    /// Records what a frame encoded at `qp` cost.
    pub fn record(&mut self, bits: usize, qp: u8, idr: bool) {
        let bits = bits.max(1) as f64;
        self.debt = (self.debt + bits - self.frame_bits).max(-self.max_savings);
        let complexity = bits * 2f64.powf(qp as f64 / 6.0);
        if idr {
            // A new IDR complexity goes with its picture's detail, replacing the old pair.
            self.idr_complexity = Some(complexity);
            self.idr_activity = self.pending_activity;
        } else {
            self.p_complexity = Some(match self.p_complexity {
                Some(old) if complexity < old * 2.0 => old + (complexity - old) * LEARN,
                _ => complexity, // the first P frame, or a scene cut
            });
        }
        if self.p_complexity.is_none() {
            // Until a P frame is seen, assume it costs an eighth of the IDR.
            self.p_complexity = Some(complexity / 8.0);
        }
    }
}

/// Mean absolute difference between luma samples four pixels apart,
/// across and down, over every fourth row and column: how much detail an
/// intra-coded picture has to spend bits on. About 0.1 ms at 1080p.
pub fn spatial_activity(luma: &[u8], stride: usize, width: usize, height: usize) -> f64 {
    const STEP: usize = 4;
    let (mut sum, mut count) = (0u64, 0u64);
    for row in (0..height.saturating_sub(STEP)).step_by(STEP) {
        let (line, below) = (&luma[row * stride..row * stride + width], &luma[(row + STEP) * stride..]);
        for col in (0..width.saturating_sub(STEP)).step_by(STEP) {
            sum += line[col].abs_diff(line[col + STEP]) as u64 + line[col].abs_diff(below[col]) as u64;
            count += 2;
        }
    }
    sum as f64 / count.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic encoder: a frame of complexity `c` costs `c × 2^(−QP/6)` bits.
    /// IDR complexity is taken as proportional to the picture's activity.
    fn run(rate: &mut AverageRate, frames: usize, interval: usize, p: f64, idr: f64) -> (f64, Vec<u8>) {
        let mut bits = 0.0;
        let mut qps = Vec::new();
        for n in 0..frames {
            let key = n % interval == 0;
            let qp = rate.next_qp(key, Some(idr / 10_000.0));
            let size = (if key { idr } else { p }) * 2f64.powf(-(qp as f64) / 6.0);
            rate.record(size as usize, qp, key);
            bits += size;
            qps.push(qp);
        }
        (bits, qps)
    }

    #[test]
    fn busy_content_lands_on_the_bitrate() {
        let mut rate = AverageRate::new(4_000_000, 30.0, 60, 1920 * 1080);
        // Complexities that need QP ~30 for 4 Mb/s.
        let (bits, qps) = run(&mut rate, 600, 60, 40_000.0 * 32.0, 400_000.0 * 32.0);
        let bps = bits / 20.0;
        assert!((bps / 4e6 - 1.0).abs() < 0.05, "{bps:.0} b/s");
        // Steady: P frames within one QP of each other once settled.
        let p_qps: Vec<u8> = qps[300..].iter().enumerate().filter(|(i, _)| i % 60 != 0).map(|(_, &q)| q).collect();
        let (lo, hi) = (p_qps.iter().min().unwrap(), p_qps.iter().max().unwrap());
        assert!(hi - lo <= 1, "{p_qps:?}");
    }

    #[test]
    fn simple_content_goes_down_to_qp_0_and_stays_under_budget() {
        let mut rate = AverageRate::new(4_000_000, 30.0, 60, 1920 * 1080);
        let (bits, qps) = run(&mut rate, 600, 60, 2_000.0, 200_000.0);
        assert!(bits / 20.0 < 4e6);
        assert_eq!(qps[300..].iter().max(), Some(&0));
    }

    /// After a long easy stretch, busy content overshoots for a while (at
    /// most twice the bitrate over the first two seconds), then returns to
    /// the bitrate.
    #[test]
    fn savings_are_capped_when_content_turns_busy() {
        let mut rate = AverageRate::new(4_000_000, 30.0, 60, 1920 * 1080);
        run(&mut rate, 1800, 60, 2_000.0, 200_000.0);
        let (first, qps) = run(&mut rate, 60, 60, 40_000.0 * 32.0, 400_000.0 * 32.0);
        // 8 Mbit of budget and 4 of savings; the IDR that starts the busy
        // stretch is priced by its detail, but the P frames after it only
        // once they are seen, and debt is repaid over the next seconds.
        assert!(first < 8e6 * 2.0, "first busy 2 s: {first:.0} bits, QPs {qps:?}");
        assert!(qps[0] >= 2 && qps[2] >= 20, "{qps:?}");
        let (later, _) = run(&mut rate, 300, 60, 40_000.0 * 32.0, 400_000.0 * 32.0);
        assert!((later / 10.0 / 4e6 - 1.0).abs() < 0.1, "{:.0} b/s", later / 10.0);
    }

    /// A scene cut to much busier content raises the QP on the next frame.
    #[test]
    fn activity_of_flat_and_detailed_pictures() {
        let flat = vec![128u8; 64 * 64];
        assert_eq!(spatial_activity(&flat, 64, 64, 64), 0.0);
        let checker: Vec<u8> =
            (0..64 * 64).map(|i| if (i % 64 / 4 + i / 64 / 4) % 2 == 0 { 16 } else { 235 }).collect();
        assert!(spatial_activity(&checker, 64, 64, 64) > 200.0);
    }

    #[test]
    fn qp_rises_at_once_on_a_scene_cut() {
        let mut rate = AverageRate::new(2_000_000, 30.0, 60, 1280 * 720);
        run(&mut rate, 120, 60, 20_000.0 * 32.0, 200_000.0 * 32.0);
        let before = rate.next_qp(false, None);
        rate.record(2_000_000, before, false); // one huge frame
        let after = rate.next_qp(false, None);
        assert!(after >= before + 4, "{before} → {after}");
    }
}
