//! The sans-IO [`Aligner`]: frames from several sources in, sets of frames
//! captured at the same instant out. Time is an input (`now`), so the
//! matching is tested with synthetic timestamps, faster than real time;
//! [`crate::MultiStreamCompositor`] wraps it around real sources.
//!
//! Each source has a queue sorted by sync time (`Timing::sync_time_ns()`:
//! PTP time when stamped, else capture time). Matching looks only at the
//! queue heads, like a k-way merge:
//!
//! * **strict** — when all heads lie within the tolerance they form a set;
//!   otherwise the earliest head cannot be in any complete set (the source
//!   with the latest head has nothing earlier), so it is dropped as stale.
//! * **best effort** — the earliest head anchors a window `[t, t + tol]`;
//!   every source whose head lies in the window is a member, a source whose
//!   head lies beyond it (or that ended) is missing, and a source with an
//!   empty queue is waited for until `max_wait` after the anchor arrived.
//!   Sets with at least `min_members` frames are returned.
//!
//! Every step either returns a set or drops a frame, and costs O(sources):
//! aligning a buffer of depth n costs O(n), not O(n²).

use std::collections::VecDeque;
use std::sync::Arc;

/// Whether a set must hold a frame from every source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// Only complete sets; waits as long as it takes.
    #[default]
    Strict,
    /// Whatever matches within the tolerance, after a bounded wait.
    BestEffort,
}

impl SyncMode {
    pub fn parse(text: &str) -> Option<SyncMode> {
        match text {
            "strict" => Some(SyncMode::Strict),
            "best_effort" | "best-effort" => Some(SyncMode::BestEffort),
            _ => None,
        }
    }
}

/// Settings of an [`Aligner`].
#[derive(Clone, Copy, Debug)]
pub struct AlignConfig {
    /// Largest spread of sync times within a set (ns).
    pub tolerance_ns: u64,
    pub mode: SyncMode,
    /// Frames buffered per source; beyond, the oldest is dropped (counted).
    pub max_buffer: usize,
    /// Best effort: how long after a set's first frame arrived to wait for
    /// the sources that have not delivered yet (ns).
    pub max_wait_ns: u64,
    /// Best effort: smallest set returned (a lone frame matched nothing).
    pub min_members: usize,
}

impl Default for AlignConfig {
    fn default() -> Self {
        AlignConfig {
            tolerance_ns: 1_000_000,
            mode: SyncMode::Strict,
            max_buffer: 32,
            max_wait_ns: 50_000_000,
            min_members: 2,
        }
    }
}

/// One frame of a set.
#[derive(Clone, Debug, PartialEq)]
pub struct Member<T> {
    pub source: usize,
    pub time_ns: u64,
    pub item: T,
}

/// Frames captured within the tolerance of each other.
#[derive(Clone, Debug, PartialEq)]
pub struct AlignedSet<T> {
    /// In source order.
    pub members: Vec<Member<T>>,
    /// Sources without a frame in this set (best effort only).
    pub missing: Vec<usize>,
    /// The mean sync time of the members.
    pub reference_ns: u64,
    /// Latest minus earliest sync time.
    pub skew_ns: u64,
}

/// Running mean and standard deviation (Welford).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Running {
    pub count: u64,
    pub mean: f64,
    m2: f64,
    pub max: f64,
}

impl Running {
    pub fn add(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        self.max = if self.count == 1 { x } else { self.max.max(x) };
    }

    pub fn std_dev(&self) -> f64 {
        if self.count > 1 {
            (self.m2 / (self.count - 1) as f64).sqrt()
        } else {
            0.0
        }
    }
}

/// Sync quality of one source over time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceStats {
    pub id: Arc<str>,
    pub frames_in: u64,
    /// Frames returned in a set.
    pub matched: u64,
    /// Frames dropped because no set could hold them.
    pub unmatched: u64,
    /// Frames dropped because the buffer was full.
    pub overflow: u64,
    /// Sets returned without this source (best effort).
    pub missing: u64,
    /// This source's sync time minus the set's reference: mean and spread (jitter).
    pub offset_ns: Running,
    sums: [f64; 5],
    origin_ns: Option<u64>,
}

impl SourceStats {
    /// Drift against the other sources: the slope of this source's offset
    /// from the set reference over time, in ppm (None before two seconds).
    pub fn drift_ppm(&self) -> Option<f64> {
        let [n, sx, sy, sxy, sxx] = self.sums;
        let var = n * sxx - sx * sx;
        (n >= 3.0 && var > 0.0 && sxx / n - (sx / n).powi(2) > 0.25).then(|| (n * sxy - sx * sy) / var / 1000.0)
    }

    fn record(&mut self, offset_ns: f64, reference_ns: u64) {
        self.offset_ns.add(offset_ns);
        let origin = *self.origin_ns.get_or_insert(reference_ns);
        let x = (reference_ns as i128 - origin as i128) as f64 / 1e9;
        for (sum, v) in self.sums.iter_mut().zip([1.0, x, offset_ns, x * offset_ns, x * x]) {
            *sum += v;
        }
    }
}

/// Sync quality over time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlignStats {
    pub sets: u64,
    pub complete_sets: u64,
    pub partial_sets: u64,
    /// Strict: candidate sets abandoned because a source had no frame for them.
    pub incomplete_dropped: u64,
    /// Skew (latest − earliest) of returned sets: mean, jitter (std dev), max.
    pub skew_ns: Running,
    pub sources: Vec<SourceStats>,
}

impl AlignStats {
    /// All frames dropped (unmatched + overflow) over all sources.
    pub fn frames_dropped(&self) -> u64 {
        self.sources.iter().map(|s| s.unmatched + s.overflow).sum()
    }
}

struct Entry<T> {
    time: u64,
    arrived: u64,
    item: T,
}

struct Queue<T> {
    entries: VecDeque<Entry<T>>,
    ended: bool,
    /// The latest sync time ever pushed: sources deliver in time order, so
    /// an empty queue's next frame comes no earlier than this.
    latest: Option<u64>,
}

impl<T> Queue<T> {
    /// The earliest time this source can still offer.
    fn bound(&self) -> Option<u64> {
        self.entries.front().map(|e| e.time).or(self.latest)
    }
}

/// See the module docs.
pub struct Aligner<T> {
    config: AlignConfig,
    queues: Vec<Queue<T>>,
    stats: AlignStats,
    wake_at: Option<u64>,
    /// End of the window of the last incomplete candidate counted, so one
    /// candidate whose frames are dropped one by one counts once.
    incomplete_until: Option<u64>,
}

impl<T> Aligner<T> {
    pub fn new(config: AlignConfig) -> Aligner<T> {
        Aligner { config, queues: Vec::new(), stats: AlignStats::default(), wake_at: None, incomplete_until: None }
    }

    pub fn config(&self) -> &AlignConfig {
        &self.config
    }

    /// Adds a source; returns its index.
    pub fn add_source(&mut self, id: impl Into<Arc<str>>) -> usize {
        self.queues.push(Queue { entries: VecDeque::new(), ended: false, latest: None });
        self.stats.sources.push(SourceStats { id: id.into(), ..SourceStats::default() });
        self.queues.len() - 1
    }

    pub fn source_count(&self) -> usize {
        self.queues.len()
    }

    /// Offers a frame of `source` with its sync time, received at `now_ns`.
    pub fn push(&mut self, source: usize, time_ns: u64, item: T, now_ns: u64) {
        let max = self.config.max_buffer.max(1);
        let queue = &mut self.queues[source];
        let stats = &mut self.stats.sources[source];
        stats.frames_in += 1;
        queue.latest = Some(queue.latest.map_or(time_ns, |l| l.max(time_ns)));
        if queue.entries.len() >= max {
            queue.entries.pop_front();
            stats.overflow += 1;
        }
        // Sources deliver in time order; a rare late frame is inserted in place.
        let entry = Entry { time: time_ns, arrived: now_ns, item };
        if queue.entries.back().is_none_or(|last| last.time <= time_ns) {
            queue.entries.push_back(entry);
        } else {
            let at = queue.entries.partition_point(|e| e.time <= time_ns);
            queue.entries.insert(at, entry);
        }
    }

    /// The source ended (or failed): no more frames will come from it.
    pub fn end_source(&mut self, source: usize) {
        self.queues[source].ended = true;
    }

    pub fn is_ended(&self, source: usize) -> bool {
        self.queues[source].ended
    }

    /// Frames waiting in `source`'s queue.
    pub fn buffered(&self, source: usize) -> usize {
        self.queues[source].entries.len()
    }

    /// No set can come any more: strict and a source ended with an empty
    /// queue, or every source ended and drained.
    pub fn is_finished(&self) -> bool {
        if self.queues.is_empty() {
            return true;
        }
        match self.config.mode {
            SyncMode::Strict => self.queues.iter().any(|q| q.ended && q.entries.is_empty()),
            SyncMode::BestEffort => {
                let live = self.queues.iter().filter(|q| !(q.ended && q.entries.is_empty())).count();
                live < self.min_members()
            }
        }
    }

    /// When [`Aligner::poll`] should be called again even if no frame
    /// arrives (a best-effort wait ends).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.wake_at
    }

    pub fn stats(&self) -> &AlignStats {
        &self.stats
    }

    fn min_members(&self) -> usize {
        self.config.min_members.clamp(1, self.queues.len().max(1))
    }

    /// The next set, if one is complete at `now_ns`.
    pub fn poll(&mut self, now_ns: u64) -> Option<AlignedSet<T>> {
        self.wake_at = None;
        match self.config.mode {
            SyncMode::Strict => self.poll_strict(),
            SyncMode::BestEffort => self.poll_best_effort(now_ns),
        }
    }

    fn poll_strict(&mut self) -> Option<AlignedSet<T>> {
        let tolerance = self.config.tolerance_ns;
        loop {
            let (earliest, first) = self
                .queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| q.entries.front().map(|e| (i, e.time)))
                .min_by_key(|(_, t)| *t)?;
            let window_end = first.saturating_add(tolerance);
            // A source that ended, or whose next frame can only come after
            // the window, leaves the earliest frame without a complete set.
            let hopeless = self
                .queues
                .iter()
                .any(|q| (q.ended && q.entries.is_empty()) || q.bound().is_some_and(|b| b > window_end));
            if !hopeless {
                if self.queues.iter().all(|q| !q.entries.is_empty()) {
                    let members = (0..self.queues.len()).collect();
                    return Some(self.emit(members, Vec::new()));
                }
                return None;
            }
            let partners = self
                .queues
                .iter()
                .enumerate()
                .any(|(i, q)| i != earliest && q.entries.front().is_some_and(|e| e.time <= window_end));
            if partners && self.incomplete_until.is_none_or(|end| first > end) {
                self.stats.incomplete_dropped += 1;
                self.incomplete_until = Some(window_end);
            }
            self.queues[earliest].entries.pop_front();
            self.stats.sources[earliest].unmatched += 1;
        }
    }

    fn poll_best_effort(&mut self, now_ns: u64) -> Option<AlignedSet<T>> {
        let tolerance = self.config.tolerance_ns;
        let min_members = self.min_members();
        loop {
            let (anchor_source, anchor) = self
                .queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| q.entries.front().map(|e| (i, e)))
                .min_by_key(|(_, e)| e.time)?;
            let (window_start, deadline) = (anchor.time, anchor.arrived.saturating_add(self.config.max_wait_ns));
            let window_end = window_start.saturating_add(tolerance);
            let mut members = Vec::new();
            let mut missing = Vec::new();
            let mut pending = false;
            for (i, q) in self.queues.iter().enumerate() {
                match q.entries.front() {
                    Some(e) if e.time <= window_end => members.push(i),
                    Some(_) => missing.push(i),
                    None if q.ended || q.latest.is_some_and(|l| l > window_end) => missing.push(i),
                    None => {
                        pending = true;
                        missing.push(i);
                    }
                }
            }
            if pending && now_ns < deadline {
                self.wake_at = Some(deadline);
                return None;
            }
            if members.len() >= min_members {
                return Some(self.emit(members, missing));
            }
            self.queues[anchor_source].entries.pop_front();
            self.stats.sources[anchor_source].unmatched += 1;
        }
    }

    fn emit(&mut self, members: Vec<usize>, missing: Vec<usize>) -> AlignedSet<T> {
        let mut out = Vec::with_capacity(members.len());
        for &i in &members {
            let e = self.queues[i].entries.pop_front().expect("member has a head");
            out.push(Member { source: i, time_ns: e.time, item: e.item });
        }
        let sum: u128 = out.iter().map(|m| m.time_ns as u128).sum();
        let reference_ns = (sum / out.len().max(1) as u128) as u64;
        let earliest = out.iter().map(|m| m.time_ns).min().unwrap_or(0);
        let latest = out.iter().map(|m| m.time_ns).max().unwrap_or(0);
        let skew_ns = latest - earliest;
        self.stats.sets += 1;
        if missing.is_empty() {
            self.stats.complete_sets += 1;
        } else {
            self.stats.partial_sets += 1;
        }
        self.stats.skew_ns.add(skew_ns as f64);
        for m in &out {
            let s = &mut self.stats.sources[m.source];
            s.matched += 1;
            s.record((m.time_ns as i128 - reference_ns as i128) as f64, reference_ns);
        }
        for &i in &missing {
            self.stats.sources[i].missing += 1;
        }
        AlignedSet { members: out, missing, reference_ns, skew_ns }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligner(mode: SyncMode, sources: usize) -> Aligner<u64> {
        let mut a = Aligner::new(AlignConfig { tolerance_ns: 500_000, mode, ..AlignConfig::default() });
        for i in 0..sources {
            a.add_source(format!("cam_{i}"));
        }
        a
    }

    #[test]
    fn strict_waits_for_every_source() {
        let mut a = aligner(SyncMode::Strict, 3);
        a.push(0, 1_000_000, 0, 0);
        a.push(1, 1_100_000, 1, 0);
        assert!(a.poll(0).is_none());
        a.push(2, 1_300_000, 2, 0);
        let set = a.poll(0).unwrap();
        assert_eq!(set.members.iter().map(|m| m.item).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(set.skew_ns, 300_000);
        assert!(set.missing.is_empty());
    }

    #[test]
    fn strict_drops_frames_that_cannot_complete_a_set() {
        let mut a = aligner(SyncMode::Strict, 2);
        // Source 1 missed its first frame.
        a.push(0, 0, 0, 0);
        a.push(0, 33_000_000, 1, 0);
        a.push(1, 33_100_000, 2, 0);
        let set = a.poll(0).unwrap();
        assert_eq!(set.members.iter().map(|m| m.item).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(a.stats().sources[0].unmatched, 1);
        assert_eq!(a.stats().incomplete_dropped, 0, "no partner was in tolerance of the dropped frame");
    }

    #[test]
    fn best_effort_waits_then_returns_a_partial_set() {
        let mut a = aligner(SyncMode::BestEffort, 3);
        a.push(0, 1_000_000, 0, 10);
        a.push(1, 1_200_000, 1, 10);
        assert!(a.poll(20).is_none(), "source 2 may still deliver");
        assert_eq!(a.poll_timeout(), Some(10 + 50_000_000));
        let set = a.poll(10 + 50_000_000).unwrap();
        assert_eq!(set.members.len(), 2);
        assert_eq!(set.missing, vec![2]);
        // A late frame from source 2 matches nothing (once the others could
        // no longer send a partner for it).
        a.push(2, 1_100_000, 2, 60_000_000);
        assert!(a.poll(60_000_000).is_none());
        a.push(0, 34_000_000, 3, 61_000_000);
        a.push(1, 34_100_000, 4, 61_000_000);
        assert!(a.poll(61_000_000).is_none(), "source 2 may still send its frame at 34 ms");
        assert_eq!(a.stats().sources[2].unmatched, 1);
        assert_eq!(a.poll(111_000_000).unwrap().members.len(), 2);
    }

    #[test]
    fn best_effort_resolves_early_when_the_missing_source_moves_on() {
        let mut a = aligner(SyncMode::BestEffort, 2);
        a.push(0, 0, 0, 0);
        a.push(1, 33_000_000, 1, 0); // source 1 dropped its frame at 0
                                     // No waiting: source 1's head is past the window.
        assert!(a.poll(0).is_none(), "a lone frame is no set");
        assert_eq!(a.stats().sources[0].unmatched, 1);
        a.push(0, 33_300_000, 2, 0);
        assert_eq!(a.poll(0).unwrap().members.len(), 2);
    }

    #[test]
    fn overflow_is_bounded_and_counted() {
        let mut a = Aligner::new(AlignConfig { max_buffer: 4, ..AlignConfig::default() });
        a.add_source("a");
        a.add_source("b");
        for i in 0..10 {
            a.push(0, i * 1_000_000_000, i, 0);
        }
        assert_eq!(a.buffered(0), 4);
        assert_eq!(a.stats().sources[0].overflow, 6);
        assert!(a.poll(0).is_none());
        a.end_source(1);
        assert!(a.is_finished());
    }

    #[test]
    fn out_of_order_frames_are_sorted() {
        let mut a = aligner(SyncMode::Strict, 2);
        a.push(0, 2_000_000_000, 2, 0);
        a.push(0, 1_000_000_000, 1, 0);
        a.push(1, 1_000_100_000, 10, 0);
        assert_eq!(a.poll(0).unwrap().members[0].item, 1);
    }
}
