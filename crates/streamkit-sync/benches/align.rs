//! Alignment cost per set for 4 sources at buffer depths 8, 64 and 512.
//!
//! Setup (not timed) fills the four queues to the given depth: genlocked
//! cameras with small offsets, 5% of frames missing, so stale frames are
//! dropped along the way. The timed part drains every set. Criterion's
//! throughput is sets per second: flat across depths for the [`Aligner`]
//! (O(1) per set, O(n) in total); the design's reference algorithm (scan
//! every buffer for the closest frame, remove from the middle) is measured
//! beside it for contrast — its cost per set grows with the depth (O(n²)
//! in total).
//!
//! `cargo bench -p streamkit-sync --bench align`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use streamkit_sync::{AlignConfig, Aligner, SyncMode};

const SOURCES: usize = 4;
const TOLERANCE: u64 = 500_000;
const PERIOD: u64 = 33_333_333;

/// (source, time) of `depth` frames per source, every 20th frame dropped.
fn frames(depth: usize) -> Vec<(usize, u64)> {
    let mut out = Vec::with_capacity(depth * SOURCES);
    for k in 0..depth as u64 {
        for s in 0..SOURCES {
            if (k * 7 + s as u64 * 3).is_multiple_of(20) {
                continue;
            }
            out.push((s, k * PERIOD + s as u64 * 100_000));
        }
    }
    out
}

fn filled_aligner(frames: &[(usize, u64)], depth: usize) -> Aligner<u64> {
    let mut aligner = Aligner::new(AlignConfig {
        tolerance_ns: TOLERANCE,
        mode: SyncMode::Strict,
        max_buffer: depth,
        ..AlignConfig::default()
    });
    for s in 0..SOURCES {
        aligner.add_source(format!("cam_{s}"));
    }
    for &(s, t) in frames {
        aligner.push(s, t, t, 0);
    }
    aligner
}

fn drain(mut aligner: Aligner<u64>) -> usize {
    let mut sets = 0;
    while let Some(set) = aligner.poll(0) {
        black_box(&set);
        sets += 1;
    }
    sets
}

fn filled_buffers(frames: &[(usize, u64)]) -> Vec<Vec<u64>> {
    let mut buffers: Vec<Vec<u64>> = vec![Vec::new(); SOURCES];
    for &(s, t) in frames {
        buffers[s].push(t);
    }
    buffers
}

/// The design's `_find_temporally_aligned_frames`: the first source's
/// oldest frame as reference, a full scan of every other buffer for the
/// closest frame, removal from the middle of the buffer.
fn reference_drain(mut buffers: Vec<Vec<u64>>) -> usize {
    let mut sets = 0;
    while !buffers[0].is_empty() {
        let reference = buffers[0][0];
        let mut picks = [0usize; SOURCES];
        let mut ok = true;
        for (s, buffer) in buffers.iter().enumerate().skip(1) {
            let best = buffer.iter().enumerate().min_by_key(|(_, &t)| t.abs_diff(reference));
            match best {
                Some((i, &t)) if t.abs_diff(reference) <= TOLERANCE => picks[s] = i,
                _ => ok = false,
            }
        }
        if ok {
            for (s, &i) in picks.iter().enumerate() {
                black_box(buffers[s].remove(i));
            }
            sets += 1;
        } else {
            buffers[0].remove(0);
        }
    }
    sets
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("align_4_sources");
    for depth in [8usize, 64, 512] {
        let frames = frames(depth);
        let sets = drain(filled_aligner(&frames, depth));
        assert_eq!(sets, reference_drain(filled_buffers(&frames)), "both find the same sets");
        group.throughput(Throughput::Elements(sets as u64));
        group.bench_with_input(BenchmarkId::new("aligner", depth), &frames, |b, f| {
            b.iter_batched(|| filled_aligner(f, depth), drain, BatchSize::SmallInput)
        });
        group.bench_with_input(BenchmarkId::new("design_reference", depth), &frames, |b, f| {
            b.iter_batched(|| filled_buffers(f), reference_drain, BatchSize::SmallInput)
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
