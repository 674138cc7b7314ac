//! The time estimator: turns Sync and Delay_Req/Delay_Resp timestamps into a
//! mapping from the local monotonic clock to the master's time. Nothing is
//! steered — the result is a [`TimeMap`] (offset + rate), the synchronised
//! clock *in the process*.
//!
//! With local time `t`, master time `θ(t) + t` and one-way delay `d`:
//!
//! * each Sync gives `ms = t2 − t1 = d − θ(t2)` (master → slave),
//! * each delay exchange gives `sm = t4 − t3 = d + θ(t3)` (slave → master).
//!
//! `ms` is fitted by a robust least-squares line over a window of Syncs
//! (its slope is the frequency error, a median-absolute-deviation test
//! rejects outliers such as a late software timestamp). Each delay exchange
//! then yields `d = (sm + ms_fit(t3)) / 2` — the line evaluated at the
//! instant of the request, so frequency error does not leak into the delay —
//! and `d` is a robust mean over a window of exchanges. The offset follows as
//! `θ(t) = d − ms_fit(t)`. All arithmetic is relative to a base (the first
//! `ms`), so `f64` only ever holds small numbers.

use std::collections::VecDeque;

/// Settings of the estimator.
#[derive(Clone, Copy, Debug)]
pub struct ServoConfig {
    /// Syncs in the regression window (64 at 8 Hz = 8 s).
    pub sync_window: usize,
    /// Delay exchanges averaged for the mean path delay.
    pub delay_window: usize,
    /// A sample further than `outlier_factor` robust standard deviations
    /// from the fit is an outlier…
    pub outlier_factor: f64,
    /// …but never one closer than this (ns).
    pub outlier_floor_ns: f64,
    /// This many outliers in a row, with no good sample for
    /// `reset_after_ns`, means the master stepped or the path changed:
    /// start again. (Both conditions, so that forged Syncs interleaved with
    /// the master's good ones cannot force a reset.)
    pub reset_after_outliers: usize,
    pub reset_after_ns: u64,
    /// A fit claiming a larger rate difference is not physical (IEEE 1588
    /// clocks are within ±100 ppm): no map comes from it.
    pub max_frequency_ppm: f64,
    /// A delay exchange giving a larger |path delay| is rejected (ns).
    pub max_path_delay_ns: f64,
    /// Syncs needed before the clock counts as locked…
    pub lock_syncs: usize,
    /// …spanning at least this long (ns), so the rate is known…
    pub lock_span_ns: u64,
    /// …and this many delay exchanges.
    pub lock_delays: usize,
}

impl Default for ServoConfig {
    fn default() -> Self {
        ServoConfig {
            sync_window: 64,
            delay_window: 16,
            outlier_factor: 5.0,
            outlier_floor_ns: 2_000.0,
            reset_after_outliers: 6,
            reset_after_ns: 1_000_000_000,
            max_frequency_ppm: 1000.0,
            max_path_delay_ns: 100_000_000.0,
            lock_syncs: 8,
            lock_span_ns: 2_000_000_000,
            lock_delays: 2,
        }
    }
}

/// A mapping from local monotonic nanoseconds to PTP nanoseconds: the
/// synchronised clock. Cheap to copy; evaluate it at any local instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeMap {
    /// The reference instant on the local clock…
    pub local_ns: u64,
    /// …and the PTP time there.
    pub ptp_ns: u64,
    /// How much faster PTP time runs than local time, in parts per billion.
    pub rate_ppb: f64,
    /// Estimated standard error of the mapping near the reference (ns).
    pub error_ns: f64,
}

impl TimeMap {
    /// PTP time at local instant `local_ns`.
    pub fn to_ptp(&self, local_ns: u64) -> u64 {
        let dt = local_ns as i128 - self.local_ns as i128;
        let correction = (dt as f64 * self.rate_ppb * 1e-9).round() as i128;
        (self.ptp_ns as i128 + dt + correction).clamp(0, u64::MAX as i128) as u64
    }

    /// Local instant at which PTP time reads `ptp_ns`.
    pub fn to_local(&self, ptp_ns: u64) -> u64 {
        let dp = ptp_ns as i128 - self.ptp_ns as i128;
        let dt = (dp as f64 / (1.0 + self.rate_ppb * 1e-9)).round() as i128;
        (self.local_ns as i128 + dt).clamp(0, u64::MAX as i128) as u64
    }
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    t: u64,
    v: f64,
}

#[derive(Clone, Copy, Debug)]
struct Fit {
    t_mean: u64,
    alpha: f64,
    beta: f64,
    sigma: f64,
    inliers: usize,
}

impl Fit {
    fn at(&self, t: u64) -> f64 {
        self.alpha + self.beta * (t as i128 - self.t_mean as i128) as f64
    }
}

/// What happened to one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Used. For a Sync, `offset_ns` is our clock minus the master at that
    /// Sync as predicted before the sample was added (ptp4l's "master offset").
    Used { offset_ns: Option<f64> },
    /// Rejected as an outlier; the estimate is unchanged.
    Outlier,
    /// Too many outliers in a row: the estimate was discarded and restarted
    /// from this sample.
    Reset,
}

/// The estimator. Feed it Syncs and delay exchanges in any order.
#[derive(Clone, Debug)]
pub struct Servo {
    config: ServoConfig,
    /// The first `t2 − t1`: everything else is relative to it.
    base: Option<i128>,
    syncs: VecDeque<Sample>,
    /// `sm + base`, i.e. `t4 − t3 + base`, at `t3`.
    delays: VecDeque<Sample>,
    fit: Option<Fit>,
    mean_delay: Option<(f64, f64)>,
    sync_outliers_in_row: usize,
    last_good_sync: u64,
    delay_outliers_in_row: usize,
    last_offset: Option<f64>,
}

impl Servo {
    pub fn new(config: ServoConfig) -> Servo {
        Servo {
            config,
            base: None,
            syncs: VecDeque::new(),
            delays: VecDeque::new(),
            fit: None,
            mean_delay: None,
            sync_outliers_in_row: 0,
            last_good_sync: 0,
            delay_outliers_in_row: 0,
            last_offset: None,
        }
    }

    pub fn config(&self) -> &ServoConfig {
        &self.config
    }

    /// Forgets everything (new master, master stepped).
    pub fn reset(&mut self) {
        *self = Servo::new(self.config);
    }

    /// A Sync: received at local `t2`, sent at master time `t1` (corrections applied).
    pub fn sync(&mut self, t2_local: u64, t1_master: i128) -> Verdict {
        let ms = t2_local as i128 - t1_master;
        let base = *self.base.get_or_insert(ms);
        let v = (ms - base) as f64;
        if !v.is_finite() || v.abs() > 1e15 {
            // Wildly off the base (another epoch): only a reset can follow it.
            return self.count_sync_outlier(t2_local, t1_master);
        }
        let mut offset = None;
        if let Some(fit) = self.fit.filter(|f| f.inliers >= 4) {
            let residual = v - fit.at(t2_local);
            let threshold = (self.config.outlier_factor * fit.sigma).max(self.config.outlier_floor_ns);
            if residual.abs() > threshold {
                return self.count_sync_outlier(t2_local, t1_master);
            }
            offset = Some(residual);
        }
        self.sync_outliers_in_row = 0;
        self.last_good_sync = self.last_good_sync.max(t2_local);
        self.push_sync(Sample { t: t2_local, v });
        self.last_offset = offset.or(self.last_offset);
        Verdict::Used { offset_ns: offset }
    }

    fn count_sync_outlier(&mut self, t2_local: u64, t1_master: i128) -> Verdict {
        self.sync_outliers_in_row += 1;
        if self.sync_outliers_in_row >= self.config.reset_after_outliers.max(1)
            && t2_local.saturating_sub(self.last_good_sync) >= self.config.reset_after_ns
        {
            self.reset();
            self.sync(t2_local, t1_master);
            return Verdict::Reset;
        }
        Verdict::Outlier
    }

    fn push_sync(&mut self, sample: Sample) {
        // Keep time order even if samples arrive out of order.
        let at = self.syncs.partition_point(|s| s.t <= sample.t);
        self.syncs.insert(at, sample);
        while self.syncs.len() > self.config.sync_window.max(2) {
            self.syncs.pop_front();
        }
        self.fit = robust_fit(&self.syncs, self.config.outlier_factor, self.config.outlier_floor_ns);
        self.update_delay();
    }

    /// A delay exchange: Delay_Req left at local `t3`, reached the master at
    /// master time `t4` (Delay_Resp correction applied).
    pub fn delay(&mut self, t3_local: u64, t4_master: i128) -> Verdict {
        let Some(base) = self.base else {
            // No Sync yet: nothing to relate the exchange to.
            return Verdict::Outlier;
        };
        let v = (t4_master - t3_local as i128 + base) as f64;
        if !v.is_finite() || v.abs() > 1e15 {
            return Verdict::Outlier;
        }
        if let Some(fit) = self.fit {
            if ((v + fit.at(t3_local)) / 2.0).abs() > self.config.max_path_delay_ns {
                return Verdict::Outlier;
            }
        }
        if let (Some(fit), Some((delay, sigma))) = (self.fit, self.mean_delay) {
            if self.delays.len() >= 4 {
                let d = (v + fit.at(t3_local)) / 2.0;
                let threshold = (self.config.outlier_factor * sigma).max(self.config.outlier_floor_ns);
                if (d - delay).abs() > threshold {
                    self.delay_outliers_in_row += 1;
                    if self.delay_outliers_in_row < self.config.reset_after_outliers.max(1) {
                        return Verdict::Outlier;
                    }
                    // The path changed: trust the new exchanges.
                    self.delays.clear();
                }
            }
        }
        self.delay_outliers_in_row = 0;
        let at = self.delays.partition_point(|s| s.t <= t3_local);
        self.delays.insert(at, Sample { t: t3_local, v });
        while self.delays.len() > self.config.delay_window.max(1) {
            self.delays.pop_front();
        }
        self.update_delay();
        Verdict::Used { offset_ns: None }
    }

    fn update_delay(&mut self) {
        let Some(fit) = self.fit else { return };
        let ds: Vec<f64> = self.delays.iter().map(|s| (s.v + fit.at(s.t)) / 2.0).collect();
        self.mean_delay = robust_mean(&ds, self.config.outlier_factor, self.config.outlier_floor_ns);
    }

    /// Enough Syncs and delay exchanges for a trustworthy map.
    pub fn locked(&self) -> bool {
        let span = match (self.syncs.front(), self.syncs.back()) {
            (Some(first), Some(last)) => last.t - first.t,
            _ => 0,
        };
        self.syncs.len() >= self.config.lock_syncs
            && span >= self.config.lock_span_ns
            && self.delays.len() >= self.config.lock_delays
            && self.map().is_some()
    }

    /// The current mapping, once a Sync and a delay exchange have been seen.
    pub fn map(&self) -> Option<TimeMap> {
        let (fit, (delay, delay_sigma), base) = (self.fit?, self.mean_delay?, self.base?);
        if (fit.beta * 1e6).abs() > self.config.max_frequency_ppm {
            return None;
        }
        let t_ref = self.syncs.back()?.t;
        // θ(t) = d − ms(t) = d − (fit(t) + base)
        let theta = delay - fit.at(t_ref);
        let ptp = t_ref as i128 - base + theta.round() as i128;
        let n_sync = fit.inliers.max(1) as f64;
        let n_delay = self.delays.len().max(1) as f64;
        let error = (fit.sigma * fit.sigma / n_sync + delay_sigma * delay_sigma / n_delay).sqrt();
        Some(TimeMap {
            local_ns: t_ref,
            ptp_ns: ptp.clamp(0, u64::MAX as i128) as u64,
            rate_ppb: -fit.beta * 1e9,
            error_ns: error,
        })
    }

    /// Our clock minus the master at the last used Sync (a-priori residual).
    pub fn last_offset_ns(&self) -> Option<f64> {
        self.last_offset
    }

    pub fn mean_path_delay_ns(&self) -> Option<f64> {
        self.mean_delay.map(|(d, _)| d)
    }

    /// PTP rate relative to the local clock, ppb (positive: the master runs faster).
    pub fn frequency_ppb(&self) -> Option<f64> {
        self.fit.filter(|f| f.inliers >= 2).map(|f| -f.beta * 1e9)
    }

    /// Robust standard deviation of the Sync residuals (ns).
    pub fn sync_jitter_ns(&self) -> Option<f64> {
        self.fit.map(|f| f.sigma)
    }

    pub fn sync_samples(&self) -> usize {
        self.syncs.len()
    }

    pub fn delay_samples(&self) -> usize {
        self.delays.len()
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Median, then the mean of the values within `factor` robust standard
/// deviations of it. Returns (mean, robust standard deviation).
fn robust_mean(values: &[f64], factor: f64, floor: f64) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    let med = median(&mut sorted);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    let sigma = 1.4826 * median(&mut deviations);
    let threshold = (factor * sigma).max(floor);
    let inliers: Vec<f64> = values.iter().copied().filter(|v| (v - med).abs() <= threshold).collect();
    let mean = inliers.iter().sum::<f64>() / inliers.len() as f64;
    let spread = if inliers.len() > 1 {
        (inliers.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (inliers.len() - 1) as f64).sqrt()
    } else {
        floor
    };
    Some((mean, spread))
}

/// Least-squares line through the samples, refitted without the samples
/// further than `factor` robust standard deviations from the first fit.
fn robust_fit(samples: &VecDeque<Sample>, factor: f64, floor: f64) -> Option<Fit> {
    let first = ols(samples.iter().copied())?;
    let residuals: Vec<f64> = samples.iter().map(|s| s.v - first.at(s.t)).collect();
    let mut abs: Vec<f64> = residuals.iter().map(|r| r.abs()).collect();
    let sigma = 1.4826 * median(&mut abs);
    let threshold = (factor * sigma).max(floor);
    let inliers = samples.iter().zip(&residuals).filter(|(_, r)| r.abs() <= threshold).map(|(s, _)| *s);
    let mut fit = ols(inliers).unwrap_or(first);
    let spread: Vec<f64> = samples.iter().map(|s| s.v - fit.at(s.t)).filter(|r| r.abs() <= threshold).collect();
    fit.sigma = if spread.len() > 2 {
        (spread.iter().map(|r| r * r).sum::<f64>() / (spread.len() - 2) as f64).sqrt()
    } else {
        floor
    };
    Some(fit)
}

fn ols(samples: impl Iterator<Item = Sample> + Clone) -> Option<Fit> {
    let n = samples.clone().count();
    if n == 0 {
        return None;
    }
    let t0 = samples.clone().next()?.t;
    let mean_dt = samples.clone().map(|s| (s.t - t0.min(s.t)) as f64).sum::<f64>() / n as f64;
    let t_mean = t0 + mean_dt.round() as u64;
    let mean_v = samples.clone().map(|s| s.v).sum::<f64>() / n as f64;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for s in samples {
        let x = (s.t as i128 - t_mean as i128) as f64;
        sxx += x * x;
        sxy += x * (s.v - mean_v);
    }
    // Less than 10 ms of spread cannot tell a slope from noise.
    let beta = if n >= 2 && sxx > (n as f64) * 1e13 { sxy / sxx } else { 0.0 };
    Some(Fit { t_mean, alpha: mean_v, beta, sigma: 0.0, inliers: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator of jitter (xorshift), in [-1, 1).
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    const EPOCH: i128 = 1_700_000_000_000_000_000;

    /// Master time at local `t`: offset + rate.
    fn master(t: u64, offset: i128, ppb: f64) -> i128 {
        t as i128 + offset + (t as f64 * ppb * 1e-9) as i128
    }

    #[test]
    fn converges_with_offset_rate_delay_and_jitter() {
        let mut servo = Servo::new(ServoConfig::default());
        let mut noise = Noise(7);
        let (offset, ppb, delay) = (EPOCH, 25_000.0, 2_500i128);
        let start = 5_000_000_000u64;
        let mut t = start;
        let mut n = 0;
        while t < start + 30_000_000_000 {
            // Sync every 125 ms: sent at master(t − delay), stamped locally at t.
            let jitter = (noise.next() * 300.0) as i128;
            servo.sync(t, master(t, offset, ppb) - delay + jitter);
            if n % 8 == 3 {
                let t3 = t + 10_000_000;
                let jitter = (noise.next() * 300.0) as i128;
                servo.delay(t3, master(t3, offset, ppb) + delay + jitter);
            }
            n += 1;
            t += 125_000_000;
        }
        assert!(servo.locked());
        let map = servo.map().unwrap();
        for probe in [t, t + 50_000_000, t + 500_000_000] {
            let err = map.to_ptp(probe) as i128 - master(probe, offset, ppb);
            assert!(err.abs() < 200, "error {err} ns at {probe}");
        }
        assert!((map.rate_ppb - ppb).abs() < 50.0, "rate {}", map.rate_ppb);
        assert!((servo.mean_path_delay_ns().unwrap() - delay as f64).abs() < 150.0);
        // to_local inverts to_ptp.
        let p = map.to_ptp(t);
        assert!((map.to_local(p) as i128 - t as i128).abs() <= 1);
    }

    #[test]
    fn rejects_outliers_and_resets_on_a_step() {
        let mut servo = Servo::new(ServoConfig::default());
        let delay = 2_000i128;
        let mut t = 1_000_000_000u64;
        for n in 0..40 {
            servo.sync(t, master(t, EPOCH, 0.0) - delay);
            if n % 4 == 0 {
                servo.delay(t + 1_000_000, master(t + 1_000_000, EPOCH, 0.0) + delay);
            }
            t += 125_000_000;
        }
        let before = servo.map().unwrap();
        // One late timestamp (50 µs): rejected, the map does not move.
        assert_eq!(servo.sync(t, master(t, EPOCH, 0.0) - delay - 50_000), Verdict::Outlier);
        assert_eq!(servo.map().unwrap(), before);
        // The master steps by 1 ms: after `reset_after_outliers` the servo follows.
        let mut verdicts = Vec::new();
        for _ in 0..10 {
            t += 125_000_000;
            verdicts.push(servo.sync(t, master(t, EPOCH + 1_000_000, 0.0) - delay));
        }
        assert!(verdicts.contains(&Verdict::Reset), "{verdicts:?}");
        assert!(!servo.locked(), "no delay exchange since the reset");
    }

    #[test]
    fn sample_order_does_not_matter() {
        let mut a = Servo::new(ServoConfig::default());
        let mut b = Servo::new(ServoConfig::default());
        let times: Vec<u64> = (0..20).map(|i| 1_000_000_000 + i * 125_000_000).collect();
        for &t in &times {
            a.sync(t, master(t, EPOCH, 1000.0) - 1000);
        }
        // The first sample is the same (it sets the base); the rest reversed.
        b.sync(times[0], master(times[0], EPOCH, 1000.0) - 1000);
        for &t in times[1..].iter().rev() {
            b.sync(t, master(t, EPOCH, 1000.0) - 1000);
        }
        let t3 = times[10];
        a.delay(t3, master(t3, EPOCH, 1000.0) + 1000);
        b.delay(t3, master(t3, EPOCH, 1000.0) + 1000);
        let (ma, mb) = (a.map().unwrap(), b.map().unwrap());
        assert!((ma.to_ptp(t3) as i128 - mb.to_ptp(t3) as i128).abs() <= 1);
    }
}
