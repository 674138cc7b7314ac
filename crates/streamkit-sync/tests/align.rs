//! The aligner against simulated cameras: fixed offsets, drift in ppm,
//! jitter, dropped frames, different frame rates, and delivery latency —
//! all with synthetic timestamps, faster than real time.

use streamkit_sync::{AlignConfig, AlignedSet, Aligner, SyncMode};

/// Deterministic uniform noise in [-1, 1).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() + 1.0) / 2.0 < p
    }
}

#[derive(Clone, Copy)]
struct Camera {
    fps: f64,
    offset_ns: f64,
    drift_ppm: f64,
    jitter_ns: f64,
    drop: f64,
}

impl Camera {
    fn genlocked(offset_ns: f64) -> Camera {
        Camera { fps: 30.0, offset_ns, drift_ppm: 0.0, jitter_ns: 0.0, drop: 0.0 }
    }
}

/// A frame as the aligner sees it: (camera, frame number, sync time).
type Tag = (usize, u64, u64);

/// Frames of every camera over `seconds`, in arrival order (capture time
/// plus a delivery latency below `latency_ns`).
fn frames(cameras: &[Camera], seconds: f64, latency_ns: f64, seed: u64) -> Vec<(u64, Tag)> {
    let mut noise = Noise(seed);
    let start = 1_700_000_000_000_000_000u64;
    let mut out = Vec::new();
    for (c, cam) in cameras.iter().enumerate() {
        let period = 1e9 / cam.fps;
        let count = (seconds * cam.fps) as u64;
        for k in 0..count {
            let nominal = k as f64 * period;
            let t = nominal * (1.0 + cam.drift_ppm * 1e-6) + cam.offset_ns + noise.next() * cam.jitter_ns;
            if noise.chance(cam.drop) {
                continue;
            }
            let time = start + t.max(0.0) as u64;
            let arrival = time + 1_000_000 + ((noise.next() + 1.0) / 2.0 * latency_ns) as u64;
            out.push((arrival, (c, k, time)));
        }
    }
    out.sort_by_key(|(arrival, _)| *arrival);
    out
}

/// Feeds the frames at their arrival times, polling as the compositor does.
fn run(config: AlignConfig, cameras: usize, arrivals: &[(u64, Tag)]) -> (Vec<AlignedSet<Tag>>, Aligner<Tag>) {
    let mut aligner = Aligner::new(config);
    for c in 0..cameras {
        aligner.add_source(format!("cam_{c}"));
    }
    let mut sets = Vec::new();
    let mut now = 0;
    for &(arrival, tag) in arrivals {
        // Wake-ups the aligner asked for before this frame arrives.
        while let Some(deadline) = aligner.poll_timeout().filter(|&d| d <= arrival) {
            now = deadline;
            match aligner.poll(now) {
                Some(set) => sets.push(set),
                None if aligner.poll_timeout() == Some(deadline) => break,
                None => {}
            }
        }
        now = now.max(arrival);
        aligner.push(tag.0, tag.2, tag, now);
        while let Some(set) = aligner.poll(now) {
            sets.push(set);
        }
    }
    for c in 0..cameras {
        aligner.end_source(c);
    }
    while let Some(set) = aligner.poll(u64::MAX) {
        sets.push(set);
    }
    (sets, aligner)
}

fn config(mode: SyncMode, tolerance_ns: u64) -> AlignConfig {
    AlignConfig { tolerance_ns, mode, max_buffer: 64, max_wait_ns: 50_000_000, min_members: 2 }
}

fn check_within_tolerance(sets: &[AlignedSet<Tag>], tolerance: u64) {
    for set in sets {
        let times: Vec<u64> = set.members.iter().map(|m| m.item.2).collect();
        let spread = times.iter().max().unwrap() - times.iter().min().unwrap();
        assert!(spread <= tolerance, "set spread {spread} ns > {tolerance}");
        assert_eq!(spread, set.skew_ns);
        let mut sources: Vec<usize> = set.members.iter().map(|m| m.source).collect();
        sources.dedup();
        assert_eq!(sources.len(), set.members.len(), "one frame per source");
    }
}

/// Every frame ends in exactly one set or is counted as dropped.
fn check_accounting(arrivals: &[(u64, Tag)], sets: &[AlignedSet<Tag>], aligner: &Aligner<Tag>) {
    let matched: usize = sets.iter().map(|s| s.members.len()).sum();
    let stats = aligner.stats();
    let dropped: u64 = stats.sources.iter().map(|s| s.unmatched + s.overflow).sum();
    assert_eq!(matched as u64 + dropped, arrivals.len() as u64);
    let mut seen: Vec<Tag> = sets.iter().flat_map(|s| s.members.iter().map(|m| m.item)).collect();
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "a frame was returned twice");
}

/// Best effort drops no set: no two unmatched frames of different sources
/// lie within the tolerance of each other (they would have formed a set).
fn check_nothing_wrongly_dropped(arrivals: &[(u64, Tag)], sets: &[AlignedSet<Tag>], tolerance: u64) {
    let matched: std::collections::HashSet<Tag> = sets.iter().flat_map(|s| s.members.iter().map(|m| m.item)).collect();
    let mut unmatched: Vec<Tag> = arrivals.iter().map(|(_, t)| *t).filter(|t| !matched.contains(t)).collect();
    unmatched.sort_by_key(|t| t.2);
    for pair in unmatched.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            a.0 == b.0 || b.2 - a.2 > tolerance,
            "unmatched frames {a:?} and {b:?} are {} ns apart: they should have formed a set",
            b.2 - a.2
        );
    }
}

#[test]
fn genlocked_cameras_with_fixed_offsets_match_every_frame() {
    // Example 4: four cameras, 0.5 ms tolerance, offsets up to 0.3 ms.
    let cameras: Vec<Camera> = [0.0, 120_000.0, 250_000.0, 300_000.0].into_iter().map(Camera::genlocked).collect();
    for mode in [SyncMode::Strict, SyncMode::BestEffort] {
        let arrivals = frames(&cameras, 10.0, 5_000_000.0, 1);
        let (sets, aligner) = run(config(mode, 500_000), 4, &arrivals);
        check_within_tolerance(&sets, 500_000);
        check_accounting(&arrivals, &sets, &aligner);
        assert_eq!(sets.len(), 300, "{mode:?}");
        assert!(sets.iter().all(|s| s.members.len() == 4));
        // Frames of one set share their frame number.
        assert!(sets.iter().all(|s| s.members.iter().all(|m| m.item.1 == s.members[0].item.1)));
        let stats = aligner.stats();
        assert_eq!(stats.skew_ns.max, 300_000.0);
        let cam3 = &stats.sources[3];
        assert!((cam3.offset_ns.mean - (300_000.0 - 167_500.0)).abs() < 1.0, "{:?}", cam3.offset_ns);
    }
}

#[test]
fn jitter_and_drops_strict_returns_only_complete_sets() {
    let cameras = vec![Camera { jitter_ns: 100_000.0, drop: 0.05, ..Camera::genlocked(0.0) }; 4];
    let arrivals = frames(&cameras, 20.0, 10_000_000.0, 2);
    let (sets, aligner) = run(config(SyncMode::Strict, 500_000), 4, &arrivals);
    check_within_tolerance(&sets, 500_000);
    check_accounting(&arrivals, &sets, &aligner);
    // A set exists for every frame number all four delivered.
    let mut complete = std::collections::HashMap::new();
    for (_, (_, k, _)) in &arrivals {
        *complete.entry(*k).or_insert(0) += 1;
    }
    let expected = complete.values().filter(|&&n| n == 4).count();
    assert_eq!(sets.len(), expected);
    assert!(sets.iter().all(|s| s.missing.is_empty()));
    // Each frame number two or three cameras delivered is one candidate set
    // abandoned (counted once, though its frames are dropped one by one).
    let incomplete = complete.values().filter(|&&n| (2..4).contains(&n)).count() as u64;
    assert!(incomplete > 10);
    assert_eq!(aligner.stats().incomplete_dropped, incomplete);
}

#[test]
fn jitter_and_drops_best_effort_loses_no_set() {
    let cameras = vec![Camera { jitter_ns: 100_000.0, drop: 0.05, ..Camera::genlocked(0.0) }; 4];
    let arrivals = frames(&cameras, 20.0, 10_000_000.0, 3);
    let (sets, aligner) = run(config(SyncMode::BestEffort, 500_000), 4, &arrivals);
    check_within_tolerance(&sets, 500_000);
    check_accounting(&arrivals, &sets, &aligner);
    check_nothing_wrongly_dropped(&arrivals, &sets, 500_000);
    // Every frame number that at least two cameras delivered is one set.
    let mut delivered = std::collections::HashMap::new();
    for (_, (_, k, _)) in &arrivals {
        *delivered.entry(*k).or_insert(0) += 1;
    }
    assert_eq!(sets.len(), delivered.values().filter(|&&n| n >= 2).count());
    assert!(aligner.stats().partial_sets > 0);
}

#[test]
fn drifting_cameras_stay_within_tolerance_and_drift_is_measured() {
    // Free-running cameras: ±50 ppm. Over 60 s they slide 3 ms apart, so
    // they match while within 0.5 ms and not after.
    let cameras = vec![
        Camera { drift_ppm: 0.0, jitter_ns: 20_000.0, ..Camera::genlocked(0.0) },
        Camera { drift_ppm: 50.0, jitter_ns: 20_000.0, ..Camera::genlocked(0.0) },
        Camera { drift_ppm: -50.0, jitter_ns: 20_000.0, ..Camera::genlocked(0.0) },
    ];
    let arrivals = frames(&cameras, 60.0, 5_000_000.0, 4);
    let (sets, aligner) = run(config(SyncMode::BestEffort, 500_000), 3, &arrivals);
    check_within_tolerance(&sets, 500_000);
    check_accounting(&arrivals, &sets, &aligner);
    check_nothing_wrongly_dropped(&arrivals, &sets, 500_000);
    assert!(sets.iter().any(|s| s.members.len() == 3));
    assert!(aligner.stats().sources[0].unmatched > 0, "late in the run nothing matches camera 0");
    let stats = aligner.stats();
    let drift1 = stats.sources[1].drift_ppm().unwrap();
    let drift2 = stats.sources[2].drift_ppm().unwrap();
    assert!(drift1 > 10.0 && drift2 < -10.0, "drift {drift1} / {drift2} ppm");
}

#[test]
fn different_frame_rates_pair_on_common_instants() {
    // 30 fps and 60 fps, genlocked: every 30 fps frame pairs with every
    // other 60 fps frame; the odd 60 fps frames have no partner.
    let cameras = vec![Camera::genlocked(0.0), Camera { fps: 60.0, ..Camera::genlocked(50_000.0) }];
    for mode in [SyncMode::Strict, SyncMode::BestEffort] {
        let arrivals = frames(&cameras, 10.0, 3_000_000.0, 5);
        let (sets, aligner) = run(config(mode, 500_000), 2, &arrivals);
        check_within_tolerance(&sets, 500_000);
        check_accounting(&arrivals, &sets, &aligner);
        assert_eq!(sets.len(), 300, "{mode:?}");
        assert!(sets.iter().all(|s| s.members[1].item.1 == 2 * s.members[0].item.1));
        assert_eq!(aligner.stats().sources[1].unmatched, 300);
        if mode == SyncMode::BestEffort {
            check_nothing_wrongly_dropped(&arrivals, &sets, 500_000);
        }
    }
}

#[test]
fn a_dead_camera_bounds_the_buffers() {
    // Camera 2 delivers 10 frames and then nothing (not ended: it hangs).
    let cameras = vec![Camera::genlocked(0.0); 3];
    let mut arrivals = frames(&cameras, 10.0, 1_000_000.0, 6);
    arrivals.retain(|(_, (c, k, _))| *c != 2 || *k < 10);
    let mut aligner = Aligner::new(config(SyncMode::Strict, 500_000));
    for c in 0..3 {
        aligner.add_source(format!("cam_{c}"));
    }
    let mut sets = 0;
    for &(arrival, tag) in &arrivals {
        aligner.push(tag.0, tag.2, tag, arrival);
        while aligner.poll(arrival).is_some() {
            sets += 1;
        }
        assert!((0..3).all(|c| aligner.buffered(c) <= 64));
    }
    assert_eq!(sets, 10);
    // Beyond the buffer the old frames go (as overflow, or as stale once the
    // other live source's oldest frame was pushed out first).
    let cam0 = &aligner.stats().sources[0];
    assert!(cam0.overflow > 100 && cam0.overflow + cam0.unmatched > 200, "{cam0:?}");
    // Best effort goes on without it after the wait.
    let (sets, aligner) = run(config(SyncMode::BestEffort, 500_000), 3, &arrivals);
    assert_eq!(sets.len(), 300);
    assert_eq!(aligner.stats().sources[2].missing, 290);
}
