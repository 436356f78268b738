//! `EpochSummarizer` costs on the training thread: `record_batch` with 2 metrics and 4
//! gradient norms (target: at most 300 ns), and `finalize_epoch` of a 100-batch epoch.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use obs_core::stats::Welford;
use obs_summary::EpochSummarizer;

const GRADS: [&str; 4] = ["dense_0", "dense_1", "dense_2", "dense_3"];

fn record_batch(c: &mut Criterion) {
    let mut s = EpochSummarizer::new();
    let mut x = 0.5f64;
    // Names are learnt in the first call; every measured call is the steady state.
    c.bench_function("summary/record_batch_2_metrics_4_grads", |b| {
        b.iter(|| {
            x = x * 0.999 + 0.0005;
            let metrics = [("loss", x), ("accuracy", 1.0 - x)];
            let grads = [(GRADS[0], x), (GRADS[1], x * 0.5), (GRADS[2], x * 0.25), (GRADS[3], x)];
            s.record_batch(black_box(0), black_box(&metrics), black_box(&grads))
        })
    });
}

/// The floor `record_batch` builds on: six Welford pushes into fixed accumulators.
fn welford_floor(c: &mut Criterion) {
    let mut acc = [Welford::new(); 6];
    let mut x = 0.5f64;
    c.bench_function("summary/reference_6_welford_pushes", |b| {
        b.iter(|| {
            x = x * 0.999 + 0.0005;
            for (a, v) in acc.iter_mut().zip([x, 1.0 - x, x, x * 0.5, x * 0.25, x]) {
                a.push(black_box(v));
            }
        })
    });
}

fn finalize_epoch(c: &mut Criterion) {
    c.bench_function("summary/finalize_epoch_100_batches", |b| {
        b.iter_batched_ref(
            || {
                let mut s = EpochSummarizer::new();
                for i in 0..100 {
                    let x = f64::from(i) * 0.01;
                    let grads = GRADS.map(|n| (n, x));
                    let _ = s.record_batch(0, &[("loss", x), ("accuracy", x)], &grads);
                }
                s
            },
            |s| s.finalize_epoch(black_box(0)),
            BatchSize::SmallInput,
        )
    });
}

fn format_text(c: &mut Criterion) {
    let mut s = EpochSummarizer::new();
    for i in 0..100 {
        let x = f64::from(i) * 0.01;
        let _ = s.record_batch(0, &[("loss", x), ("accuracy", x)], &GRADS.map(|n| (n, x)));
    }
    let summary = s.finalize_epoch(0).expect("recorded");
    c.bench_function("summary/format_text", |b| b.iter(|| black_box(&summary).format_text()));
}

criterion_group!(benches, welford_floor, record_batch, finalize_epoch, format_text);
criterion_main!(benches);
