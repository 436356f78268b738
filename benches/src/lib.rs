//! Holder crate for the criterion benchmarks in `benches/`, and the timing helpers they share.

use std::time::{Duration, Instant};

/// How long the bus thread is left idle before an event sent "alone": long enough for it to
/// finish the previous event and go back to sleep, as between two training batches.
pub const IDLE: Duration = Duration::from_micros(50);

/// Median, p90 and p99 of `v`.
///
/// # Panics
/// If `v` is empty (a bench bug).
pub fn quantiles(mut v: Vec<Duration>) -> [Duration; 3] {
    v.sort_unstable();
    [50, 90, 99].map(|p| v[(v.len() - 1) * p / 100])
}

/// Times `n` calls of `f`, each on its own after [`IDLE`] of spinning, and returns the
/// quantiles of the individual times.
pub fn alone(n: u64, mut f: impl FnMut(u64)) -> [Duration; 3] {
    let times = (0..n)
        .map(|i| {
            let idle = Instant::now();
            while idle.elapsed() < IDLE {
                std::hint::spin_loop();
            }
            let start = Instant::now();
            f(i);
            start.elapsed()
        })
        .collect();
    quantiles(times)
}

/// The quantiles of an empty timed region: what [`alone`]'s figures include of the timer.
pub fn timer_overhead(n: u64) -> [Duration; 3] {
    alone(n, |i| {
        std::hint::black_box(i);
    })
}

/// Deterministic values in `[-1, 1)` from `seed` (xorshift): the inputs and weights of the
/// framework benches.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}
