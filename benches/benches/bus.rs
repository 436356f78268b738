//! Training-thread cost of sending one event through `TrainingLogger` and its `EventBus`.
//!
//! Two backends: `noop` (discards batches) and `ndjson` (`Event::write_ndjson` into a 64 KiB
//! `BufWriter<File>` in a temporary directory, i.e. the page cache). Two events: `batch_end`
//! (`logger.on_batch_end(b, data! { "loss" => x })`, building the data map included) and `emit`
//! (`logger.emit` of a prebuilt small event).
//!
//! Two regimes, because the cost depends on whether the bus thread is awake:
//! * `bus/burst` (criterion): bursts of up to 1024 back-to-back sends, an untimed `flush()`
//!   between bursts so the queue never fills; criterion's per-iteration time is the mean cost
//!   of one send, and it reports the median over samples;
//! * `bus/sparse` (printed after the criterion group): 20,000 sends, each timed on its own
//!   after the bus thread has been idle for 50 µs (as with one event per training batch);
//!   median, p90 and p99, with the timer's own overhead printed alongside.
//!
//! Contract: median send cost <= 250 ns.
//!
//! Run: `cargo bench -p obs-benches --bench bus -- --warm-up-time 1 --measurement-time 3`.
//! Results and hardware: `docs/performance.md`.

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Seek, Write};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use obs_benches::{alone, timer_overhead};
use obs_core::{Backend, BackendError, Event, EventType, LogLevel, TrainingLogger, data};

const BURST: u64 = 1024;
/// The NDJSON file starts over past this size so long runs don't fill the disk.
const FILE_LIMIT: u64 = 64 << 20;

#[derive(Debug)]
struct Noop;

impl Backend for Noop {
    fn name(&self) -> &str {
        "bench.noop"
    }
    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        black_box(events.len());
        Ok(())
    }
}

#[derive(Debug)]
struct Ndjson {
    w: BufWriter<File>,
}

impl Backend for Ndjson {
    fn name(&self) -> &str {
        "bench.ndjson"
    }
    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        for e in events {
            e.write_ndjson(&mut self.w).map_err(|e| BackendError::io("writing events", e))?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BackendError> {
        let io = |e| BackendError::io("flushing events", e);
        self.w.flush().map_err(io)?;
        let f = self.w.get_mut();
        if f.stream_position().map_err(io)? > FILE_LIMIT {
            f.set_len(0).map_err(io)?;
            f.rewind().map_err(io)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Sink {
    Noop,
    Ndjson,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    BatchEnd,
    Emit,
}

struct Setup {
    logger: TrainingLogger,
    _dir: tempfile::TempDir,
}

fn setup(sink: Sink) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let logger = TrainingLogger::new(LogLevel::Expert).expect("logger");
    match sink {
        Sink::Noop => logger.add_backend(Noop),
        Sink::Ndjson => {
            let file = File::create(dir.path().join("events.ndjson")).expect("file");
            logger.add_backend(Ndjson { w: BufWriter::with_capacity(64 << 10, file) })
        }
    }
    .expect("backend");
    logger.on_train_start(1, data! {});
    logger.on_epoch_start(0);
    Setup { logger, _dir: dir }
}

fn small_event(b: u64) -> Event {
    Event::new(EventType::BatchEnd, LogLevel::Detailed)
        .at(Some(0), Some(b))
        .data(data! { "metrics" => data! { "loss" => 0.5 } })
}

/// Sends `n` events back to back; returns the time spent sending.
fn burst(logger: &TrainingLogger, kind: Kind, n: u64, b0: u64) -> Duration {
    match kind {
        Kind::BatchEnd => {
            let start = Instant::now();
            for b in b0..b0 + n {
                logger.on_batch_end(b, data! { "loss" => 1.0 / (b + 1) as f64 });
            }
            start.elapsed()
        }
        Kind::Emit => {
            let mut events: Vec<Event> = (b0..b0 + n).map(small_event).collect();
            let start = Instant::now();
            for e in events.drain(..) {
                logger.emit(e);
            }
            start.elapsed()
        }
    }
}

fn bus(c: &mut Criterion) {
    let mut g = c.benchmark_group("bus/burst");
    for sink in [Sink::Noop, Sink::Ndjson] {
        let s = setup(sink);
        for kind in [Kind::BatchEnd, Kind::Emit] {
            let mut b = 0u64;
            g.bench_function(format!("{}/{}", kind_name(kind), sink_name(sink)), |bench| {
                bench.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(BURST);
                        total += burst(&s.logger, kind, n, b);
                        b += n;
                        left -= n;
                        // Untimed: drain the queue so the next burst never waits for room.
                        s.logger.flush().expect("flush");
                    }
                    total
                })
            });
        }
        s.logger.close().expect("close");
    }
    g.finish();
    // Not a criterion group: criterion plans iterations from the timed part only and would
    // spin for hours on the untimed idle gaps.
    sparse();
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::BatchEnd => "batch_end",
        Kind::Emit => "emit",
    }
}

fn sink_name(s: Sink) -> &'static str {
    match s {
        Sink::Noop => "noop",
        Sink::Ndjson => "ndjson",
    }
}

/// Individually timed sends with the bus thread idle before each: median, p90, p99.
fn sparse() {
    const N: u64 = 20_000;
    let [p50, p90, p99] = timer_overhead(N);
    eprintln!("bus/sparse timer overhead: p50 {p50:?} p90 {p90:?} p99 {p99:?}");
    for sink in [Sink::Noop, Sink::Ndjson] {
        let s = setup(sink);
        for kind in [Kind::BatchEnd, Kind::Emit] {
            let [p50, p90, p99] = match kind {
                Kind::BatchEnd => alone(N, |b| {
                    s.logger.on_batch_end(b, data! { "loss" => 1.0 / (b + 1) as f64 });
                }),
                Kind::Emit => {
                    let mut events: Vec<Event> = (0..N).map(small_event).collect();
                    events.reverse();
                    alone(N, |_| {
                        s.logger.emit(events.pop().expect("one event per call"));
                    })
                }
            };
            eprintln!(
                "bus/sparse/{}/{}: p50 {p50:?} p90 {p90:?} p99 {p99:?}",
                kind_name(kind),
                sink_name(sink)
            );
        }
        s.logger.close().expect("close");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bus
}
criterion_main!(benches);
