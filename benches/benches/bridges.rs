//! Bridge throughput on the bus thread.
//!
//! - `bridges/{tensorboard,wandb}/batch_end_512`: events per second that a bridge encodes and
//!   writes (page cache) when the bus hands it batches of 512 `batch_end` events (loss and
//!   accuracy; `Backend::write` called directly, flush included).
//! - `bridges/{tensorboard,wandb}/expert_mix_512`: the same for an EXPERT-level mix: per batch,
//!   two `gradient_computed`, two `layer_forward` with full layer statistics and a `batch_end`,
//!   and an `epoch_end` every 100 batches.
//! - `bridges/one_million_batches` (printed, not sampled): one million `batch_end` events and a
//!   thousand `epoch_end` events through each bridge: time, events/s, file size, and the heap
//!   the bridge holds before and after (`memory_bytes`), which must not grow with the run.
//!
//! Each sample writes a new file in a temporary directory and deletes it afterwards.
//!
//! Measured (2-core x86-64 VM shared with other builds, load average 4-8, `--warm-up-time 1
//! --measurement-time 3`): TensorBoard 3.2 M events/s (`batch_end_512`) and 1.4 M events/s
//! (`expert_mix_512`); W&B 0.94 M and 0.85 M events/s. One million batches: TensorBoard 0.54 s,
//! 73 MB, 66.8 KB held after 10 epochs and at peak; W&B 1.09 s, 183 MB, 74.5 KB both times.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use obs_bridges::{TensorBoardBridge, WandbBridge};
use obs_core::{Activation, Backend, Event, EventType, LogLevel, TensorView, data, tensor_stats};

const BATCH: usize = 512;

fn batch_end(epoch: u64, batch: u64) -> Event {
    let loss = 1.0 / (1.0 + (epoch * 1000 + batch) as f64).sqrt();
    Event::new(EventType::BatchEnd, LogLevel::Detailed)
        .at(Some(epoch), Some(batch))
        .data(data! { "metrics" => data! { "loss" => loss, "accuracy" => 1.0 - loss } })
}

fn batch_ends() -> Vec<Event> {
    (0..BATCH as u64).map(|b| batch_end(0, b)).collect()
}

/// Per batch: two gradient norms, two layers' statistics (from the real kernel), the batch end;
/// an epoch end every 100 batches.
fn expert_mix() -> Vec<Event> {
    let acts: Vec<f32> = (0..64 * 32).map(|i| ((i * 37 % 101) as f32 - 30.0) / 50.0).collect();
    let stats =
        tensor_stats(TensorView::new(&acts[..], &[64, 32]).expect("view"), Activation::Relu);
    let mut out = Vec::with_capacity(BATCH);
    let (mut epoch, mut batch) = (0u64, 0u64);
    while out.len() < BATCH {
        for layer in 0..2u64 {
            out.push(
                Event::new(EventType::GradientComputed, LogLevel::Detailed)
                    .at(Some(epoch), Some(batch))
                    .layer(format!("dense_{layer}"), Some(layer))
                    .field("grad_norm", 0.1 + 0.001 * batch as f64),
            );
            let mut d = stats.to_data();
            d.insert("shape", vec![64u64, 32]);
            out.push(
                Event::new(EventType::LayerForward, LogLevel::Expert)
                    .at(Some(epoch), Some(batch))
                    .layer(format!("dense_{layer}"), Some(layer))
                    .data(d),
            );
        }
        out.push(batch_end(epoch, batch));
        batch += 1;
        if batch == 100 {
            out.push(
                Event::new(EventType::EpochEnd, LogLevel::Basic)
                    .at(Some(epoch), None)
                    .data(data! { "metrics" => data! { "loss" => 0.5, "val_loss" => 0.6 } }),
            );
            (epoch, batch) = (epoch + 1, 0);
        }
    }
    out.truncate(BATCH);
    out
}

trait Bridge: Backend + Sized {
    fn open(dir: &Path) -> Self;
    fn file(&self) -> &Path;
    fn memory(&self) -> usize;
}

impl Bridge for TensorBoardBridge {
    fn open(dir: &Path) -> Self {
        TensorBoardBridge::create(dir).expect("tensorboard bridge")
    }
    fn file(&self) -> &Path {
        self.path()
    }
    fn memory(&self) -> usize {
        self.memory_bytes()
    }
}

impl Bridge for WandbBridge {
    fn open(dir: &Path) -> Self {
        WandbBridge::builder("bench").dir(dir).create().expect("wandb bridge")
    }
    fn file(&self) -> &Path {
        self.path()
    }
    fn memory(&self) -> usize {
        self.memory_bytes()
    }
}

/// Times `iters` writes of `events` into a fresh bridge; the file is deleted afterwards.
fn timed<B: Bridge>(dir: &Path, events: &[Event], iters: u64) -> Duration {
    let mut bridge = B::open(dir);
    let start = Instant::now();
    for _ in 0..iters {
        bridge.write(black_box(events)).expect("write");
    }
    Backend::flush(&mut bridge).expect("flush");
    let elapsed = start.elapsed();
    Backend::close(&mut bridge).expect("close");
    let _ = std::fs::remove_file(bridge.file());
    elapsed
}

fn throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("bridges");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, events) in [("batch_end_512", batch_ends()), ("expert_mix_512", expert_mix())] {
        group.bench_function(format!("tensorboard/{name}"), |b| {
            b.iter_custom(|iters| timed::<TensorBoardBridge>(dir.path(), &events, iters))
        });
        group.bench_function(format!("wandb/{name}"), |b| {
            b.iter_custom(|iters| timed::<WandbBridge>(dir.path(), &events, iters))
        });
    }
    group.finish();
}

fn one_million<B: Bridge>(name: &str, dir: &Path) {
    let mut bridge = B::open(dir);
    let mut chunk = Vec::with_capacity(BATCH);
    let mut before = 0;
    let mut peak = 0;
    let mut events = 0u64;
    let start = Instant::now();
    for epoch in 0..1000u64 {
        for batch in 0..1000u64 {
            chunk.push(batch_end(epoch, batch));
            if chunk.len() == BATCH {
                bridge.write(&chunk).expect("write");
                events += chunk.len() as u64;
                chunk.clear();
            }
        }
        chunk.push(
            Event::new(EventType::EpochEnd, LogLevel::Basic)
                .at(Some(epoch), None)
                .data(data! { "metrics" => data! { "loss" => 1.0 / (1 + epoch) as f64 } }),
        );
        if epoch == 9 {
            before = bridge.memory();
        }
        peak = peak.max(bridge.memory());
    }
    bridge.write(&chunk).expect("write");
    events += chunk.len() as u64;
    Backend::close(&mut bridge).expect("close");
    let elapsed = start.elapsed();
    let size = std::fs::metadata(bridge.file()).map_or(0, |m| m.len());
    eprintln!(
        "bridges/one_million_batches/{name}: {events} events in {:.2} s ({:.2} M events/s, \
         event construction included); file {:.1} MB; memory after 10 epochs {before} B, \
         peak over 1000 epochs {peak} B",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64() / 1e6,
        size as f64 / 1e6,
    );
    let _ = std::fs::remove_file(bridge.file());
}

fn million(_: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    one_million::<TensorBoardBridge>("tensorboard", dir.path());
    one_million::<WandbBridge>("wandb", dir.path());
}

criterion_group!(benches, throughput, million);
criterion_main!(benches);
