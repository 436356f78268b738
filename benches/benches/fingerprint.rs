//! Training fingerprint costs.
//!
//! - `fingerprint/dataset_hash`: hashing a 64 MiB dataset (larger than cache) with the
//!   fingerprint's dataset hash (f32, f64 and u8 slices) against a bare `Sha256::digest` of a
//!   buffer of the same size and bytes, in the same run. Target: at least 90% of the bare
//!   digest's throughput. `sha2` picks SHA-NI at run time where the CPU has it.
//! - `fingerprint/capture`: a full capture without a dataset (versions, hardware, OS, GPU
//!   probe, git status of this repository) and one without git. Target: at most 50 ms warm.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use obs_fingerprint::{Dataset, GpuProbe, TrainingFingerprint};
use sha2::{Digest, Sha256};

const BYTES: usize = 64 * 1024 * 1024;

fn dataset_hash(c: &mut Criterion) {
    let f32s: Vec<f32> = (0..BYTES / 4).map(|i| (i % 1000) as f32 * 0.001).collect();
    let f64s: Vec<f64> = (0..BYTES / 8).map(|i| (i % 1000) as f64 * 0.001).collect();
    // The same bytes as the f32 buffer, so the bare digest hashes identical data.
    let bytes: Vec<u8> = f32s.iter().flat_map(|v| v.to_le_bytes()).collect();

    let mut g = c.benchmark_group("fingerprint/dataset_hash");
    g.throughput(Throughput::Bytes(BYTES as u64));
    g.sample_size(10);
    g.bench_function("bare_sha256_digest", |b| b.iter(|| Sha256::digest(black_box(&bytes))));
    g.bench_function("dataset_f32", |b| {
        b.iter(|| Dataset::slice(black_box(&f32s), &[BYTES / 4 / 256, 256]).hash())
    });
    g.bench_function("dataset_f64", |b| {
        b.iter(|| Dataset::slice(black_box(&f64s), &[BYTES / 8 / 256, 256]).hash())
    });
    g.bench_function("dataset_u8", |b| {
        b.iter(|| Dataset::slice(black_box(&bytes), &[BYTES]).hash())
    });
    g.finish();
}

fn capture(c: &mut Criterion) {
    let repo = env!("CARGO_MANIFEST_DIR");
    let mut g = c.benchmark_group("fingerprint/capture");
    g.sample_size(20);
    g.bench_function("no_dataset_with_git", |b| {
        b.iter(|| TrainingFingerprint::builder().seed("random_seed", 42).git_dir(repo).capture())
    });
    g.bench_function("no_dataset_no_git", |b| {
        b.iter(|| TrainingFingerprint::builder().seed("random_seed", 42).without_git().capture())
    });
    g.bench_function("no_dataset_no_git_no_gpu_probe", |b| {
        b.iter(|| {
            TrainingFingerprint::builder()
                .seed("random_seed", 42)
                .without_git()
                .gpu_probe(GpuProbe::disabled())
                .capture()
        })
    });
    g.finish();
}

criterion_group!(benches, dataset_hash, capture);
criterion_main!(benches);
