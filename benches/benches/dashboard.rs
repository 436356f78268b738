//! Dashboard rendering at scale (target: a run of 1 million batch events renders to a file of
//! at most 3 MB in at most 2 s, every spike kept).
//!
//! The run: 100 epochs of 10,000 batches, each `batch_end` with `loss` and `accuracy`, an
//! `epoch_end` per epoch and a health warning every 10,000 batches, with loss spikes.
//! - `from_events`: a [`Dashboard`] ingests the 1M events and writes the HTML file.
//! - `exporter`: the same through the bus-backend interface (`write` in batches of 512, then
//!   `save`), as a logger's bus thread drives it.
//! - `render_only`: writing the page of an already ingested 1M-batch run (what a live
//!   re-render or `save()` costs).
//! - `from_logs`: `render_logs` over the run stored as NDJSON (parsing included).
//!
//! Measured on the 2-core x86-64 development machine while other builds ran (load average
//! about 13), `--warm-up-time 1 --measurement-time 3`: page 0.30 MB; `from_events` 149 ms,
//! `exporter` 184 ms, `render_only` 5.6 ms, `from_logs` 3.6 s. Reading the logs is dominated by
//! parsing NDJSON lines into events (a plain `Event::from_ndjson` loop over the same debug.log
//! took 3.9 s at the same load); ingesting and rendering add about 0.2 s.

use std::hint::black_box;
use std::io::Write;

use criterion::{Criterion, criterion_group, criterion_main};
use obs_core::{Backend, Event, EventType, LogLevel, Severity, data};
use obs_dashboard::{Dashboard, DashboardConfig, DashboardExporter, render_logs};

const EPOCHS: u64 = 100;
const BATCHES: u64 = 10_000;

fn run() -> Vec<Event> {
    let mut out = Vec::with_capacity((EPOCHS * (BATCHES + 3)) as usize);
    let mut t = 1_740_000_000.0;
    let mut next = |e: Event| {
        t += 0.001;
        let mut e = e;
        e.timestamp = t;
        e
    };
    for epoch in 0..EPOCHS {
        out.push(next(Event::new(EventType::EpochStart, LogLevel::Basic).at(Some(epoch), None)));
        for batch in 0..BATCHES {
            let step = epoch * BATCHES + batch;
            let wobble = ((step * 7919) % 1000) as f64 * 1e-4;
            let loss = 2.0 / (1.0 + step as f64 * 1e-5)
                + wobble
                + if step.is_multiple_of(77_777) { 10.0 } else { 0.0 };
            out.push(next(
                Event::new(EventType::BatchEnd, LogLevel::Detailed)
                    .at(Some(epoch), Some(batch))
                    .field("metrics", data! { "loss" => loss, "accuracy" => 1.0 - loss / 3.0 }),
            ));
        }
        out.push(next(
            Event::new(EventType::HealthCheck, LogLevel::Basic)
                .at(Some(epoch), Some(BATCHES - 1))
                .severity(Severity::Warning)
                .message("Loss stagnant")
                .data(data! { "rule_name" => "loss_stagnation", "diagnosis" => "Flat loss." }),
        ));
        out.push(next(
            Event::new(EventType::EpochEnd, LogLevel::Basic).at(Some(epoch), None).data(data! {
                "metrics" => data! { "loss" => 1.0 / (1.0 + epoch as f64), "val_loss" => 1.1 / (1.0 + epoch as f64) },
                "duration_s" => 12.5,
            }),
        ));
    }
    out
}

fn bench(c: &mut Criterion) {
    let events = run();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("dashboard.html");

    // Report the file size once, with the same numbers as the benches.
    Dashboard::from_events(DashboardConfig::default(), &events).write(&out).expect("write");
    let size = std::fs::metadata(&out).expect("metadata").len();
    eprintln!("dashboard: {} events -> {size} bytes ({:.2} MB)", events.len(), size as f64 / 1e6);

    let mut group = c.benchmark_group("dashboard");
    group.sample_size(10);
    group.bench_function("from_events_1M_batches", |b| {
        b.iter(|| {
            let dash = Dashboard::from_events(DashboardConfig::default(), black_box(&events));
            dash.write(&out).expect("write");
        })
    });
    group.bench_function("exporter_1M_batches", |b| {
        b.iter(|| {
            let mut exporter = DashboardExporter::new(&out);
            for chunk in black_box(&events).chunks(512) {
                exporter.write(chunk).expect("write");
            }
            exporter.save().expect("save");
        })
    });
    let ingested = Dashboard::from_events(DashboardConfig::default(), &events);
    group.bench_function("render_only_1M_batches", |b| {
        b.iter(|| black_box(&ingested).write(&out).expect("write"))
    });

    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    for (name, tier) in [
        ("basic.log", obs_core::Tier::Basic),
        ("health.log", obs_core::Tier::Health),
        ("debug.log", obs_core::Tier::Debug),
    ] {
        let file = std::fs::File::create(logs.join(name)).expect("log file");
        let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
        for e in events.iter().filter(|e| e.tier() == tier) {
            e.write_ndjson(&mut w).expect("ndjson");
        }
        w.flush().expect("flush");
    }
    group.bench_function("from_logs_1M_batches", |b| {
        b.iter(|| render_logs(&logs, &out, DashboardConfig::default()).expect("render"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
