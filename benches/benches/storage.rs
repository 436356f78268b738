//! Tiered storage costs.
//!
//! - `storage/backend_write_512/*`: events per second that `TieredStorage` encodes and writes to
//!   the page cache when the bus hands it batches of 512 small debug-tier events
//!   (`Backend::write` called directly, final flush included). Target: at least 1 million
//!   events/s. `default` keeps the reference's promptness (every tier written to the OS each 50
//!   buffered events); `bytes_only` writes only when a tier's 64 KiB buffer fills.
//! - `storage/logger_event_in_bursts`: the training thread's cost of recording one small event
//!   (`on_gradient_computed`: build, stamp, send) into a `TrainingLogger` whose bus feeds a
//!   `TieredStorage`, in bursts of 1024 events (a training step's worth) after which the bus
//!   catches up, untimed. Target: median at most 250 ns. A sustained flood faster than the
//!   storage can write is instead bounded by the storage's own rate (back-pressure).
//! - `storage/batch_end_alone` (printed after the criterion groups): the training thread's cost
//!   of one `on_batch_end(b, data! { "loss" => x })` (the metrics map included) into a logger
//!   with `TieredStorage` attached, each call timed on its own after the bus thread has been
//!   idle for 50 µs, as with one event per training batch: median, p90, p99 of 20 000 calls.
//!   Target: median at most 250 ns.
//! - `storage/read_debug_100k`: events per second the streaming reader parses back from a
//!   `debug.log` of 100 000 batch events (the dashboard's and bridges' replay path).
//!
//! Measured (2-core x86-64 shared with other builds, load average 6-8, `--warm-up-time 1
//! --measurement-time 3`): backend_write_512 default 1.01 M events/s, bytes_only 1.28 M events/s;
//! logger_event_in_bursts 314 ns (median of sample means); read_debug_100k 0.57 M events/s.
//! Again on an idle machine (load below 1), after the encoder's prebuilt line heads, inline
//! batch_end metrics and background writeback: backend_write_512 default 6.50 M events/s,
//! bytes_only 6.36 M; logger_event_in_bursts 114 ns; read_debug_100k 1.88 M events/s;
//! batch_end_alone p50 207 ns, p90 410 ns, p99 797 ns.
//!
//! Each sample starts from truncated files (`OpenMode::Overwrite`) so the files stay small.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use obs_benches::{alone, timer_overhead};
use obs_core::{Backend, Event, EventType, LogLevel, TrainingLogger};
use obs_storage::{DEFAULT_BUFFER_SIZE, LogReader, OpenMode, StorageConfig, TieredStorage};

const BATCH: usize = 512;

const BURST: u64 = 1024;

fn storage(dir: &Path, buffer_size: usize) -> TieredStorage {
    let config = StorageConfig::new(dir).mode(OpenMode::Overwrite).buffer_size(buffer_size);
    TieredStorage::with_config(config).expect("open storage")
}

/// A batch of small debug-tier events, as the logger builds them.
fn batch() -> Vec<Event> {
    (0..BATCH as u64)
        .map(|i| {
            Event::new(EventType::GradientComputed, LogLevel::Detailed)
                .at(Some(3), Some(i))
                .layer("dense_0", None)
                .field("grad_norm", 0.001 * i as f64)
        })
        .collect()
}

fn backend_write(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = batch();
    let mut group = c.benchmark_group("storage");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, buffer_size) in [("default", DEFAULT_BUFFER_SIZE), ("bytes_only", usize::MAX)] {
        group.bench_function(format!("backend_write_512/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut s = storage(dir.path(), buffer_size);
                let start = Instant::now();
                for _ in 0..iters {
                    s.write(black_box(&events)).expect("write");
                }
                Backend::flush(&mut s).expect("flush");
                let elapsed = start.elapsed();
                s.close().expect("close");
                elapsed
            })
        });
    }
    group.finish();
}

fn logger_event(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("storage");
    group.bench_function("logger_event_in_bursts", |b| {
        b.iter_custom(|iters| {
            let logger = TrainingLogger::new(LogLevel::Detailed).expect("logger");
            logger.add_backend(storage(dir.path(), DEFAULT_BUFFER_SIZE)).expect("add storage");
            logger.on_epoch_start(0);
            logger.flush().expect("flush");
            let mut x = 0.5f64;
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BURST);
                left -= n;
                let start = Instant::now();
                for _ in 0..n {
                    x = x * 0.999 + 0.0005;
                    logger.on_gradient_computed(black_box("dense_0"), black_box(x));
                }
                elapsed += start.elapsed();
                logger.flush().expect("flush");
            }
            logger.close().expect("close");
            elapsed
        })
    });
    group.finish();
}

/// `on_batch_end` sent alone into a logger with storage attached; not a criterion group because
/// criterion would plan its iterations from the timed part only and spin on the idle gaps.
fn batch_end_alone() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let logger = TrainingLogger::new(LogLevel::Detailed).expect("logger");
    logger.add_backend(storage(dir.path(), DEFAULT_BUFFER_SIZE)).expect("add storage");
    logger.on_train_start(1, obs_core::data! {});
    logger.on_epoch_start(0);
    logger.flush().expect("flush");
    let [t50, ..] = timer_overhead(N);
    let [p50, p90, p99] = alone(N, |b| {
        logger.on_batch_end(b, obs_core::data! { "loss" => 1.0 / (b + 1) as f64 });
    });
    logger.close().expect("close");
    eprintln!(
        "storage/batch_end_alone: p50 {p50:?} p90 {p90:?} p99 {p99:?} (timer overhead p50 {t50:?})"
    );
}

fn read_back(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = storage(dir.path(), usize::MAX);
    let events: Vec<Event> = (0..1000u64)
        .map(|i| {
            Event::new(EventType::BatchEnd, LogLevel::Detailed)
                .at(Some(3), Some(i))
                .field("metrics", obs_core::data! { "loss" => 0.001 * i as f64 })
        })
        .collect();
    for _ in 0..100 {
        s.write(&events).expect("write");
    }
    s.close().expect("close");
    let reader = LogReader::open(dir.path()).expect("reader");
    let mut group = c.benchmark_group("storage");
    group.throughput(Throughput::Elements(100_000));
    group.sample_size(10);
    group.bench_function("read_debug_100k", |b| {
        b.iter(|| reader.read_debug().expect("read").count())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = backend_write, logger_event, read_back
}
fn main() {
    benches();
    batch_end_alone();
    Criterion::default().configure_from_args().final_summary();
}
