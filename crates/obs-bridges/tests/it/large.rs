//! A long run exports in memory bounded by the number of series, not by its length.
//!
//! The test runs 200 000 batches (a debug build on two cores takes a few seconds); the
//! `bridges` benchmark pushes one million through each bridge and reports the same figure.

use obs_bridges::{TensorBoardBridge, WandbBridge};
use obs_core::{Event, EventType, LogLevel, data};

const EPOCHS: u64 = 200;
const BATCHES: u64 = 1000;

/// Events of a long run, generated lazily so the test itself holds none of them.
fn long_run(epochs: std::ops::Range<u64>) -> impl Iterator<Item = Event> {
    epochs.flat_map(|epoch| {
        let batches = (0..BATCHES).map(move |batch| {
            let loss = 1.0 / (1.0 + (epoch * BATCHES + batch) as f64).sqrt();
            Event::new(EventType::BatchEnd, LogLevel::Detailed)
                .at(Some(epoch), Some(batch))
                .data(data! { "metrics" => data! { "loss" => loss } })
        });
        let end = Event::new(EventType::EpochEnd, LogLevel::Basic)
            .at(Some(epoch), None)
            .data(data! { "metrics" => data! { "loss" => 1.0 / (1 + epoch) as f64 } });
        batches.chain(std::iter::once(end))
    })
}

#[test]
fn a_long_run_exports_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut tb = TensorBoardBridge::create(dir.path().join("tb")).unwrap();
    let mut wb = WandbBridge::builder("big").dir(dir.path()).create().unwrap();

    // Warm up over 10 epochs, then watch what the bridges hold over the remaining 190.
    let warm = 10;
    for e in long_run(0..warm) {
        tb.write_event(&e).unwrap();
        wb.write_event(&e).unwrap();
    }
    let (tb_warm, wb_warm) = (tb.memory_bytes(), wb.memory_bytes());
    let (mut tb_peak, mut wb_peak) = (tb_warm, wb_warm);
    for (i, e) in long_run(warm..EPOCHS).enumerate() {
        tb.write_event(&e).unwrap();
        wb.write_event(&e).unwrap();
        if i % 997 == 0 {
            tb_peak = tb_peak.max(tb.memory_bytes());
            wb_peak = wb_peak.max(wb.memory_bytes());
        }
    }
    tb.close().unwrap();
    wb.close().unwrap();

    // A bucket histogram may fill more of its fixed buckets; nothing grows with the run.
    assert!(tb_peak <= tb_warm + 64 * 1024, "tensorboard: {tb_warm} -> {tb_peak} bytes");
    assert!(wb_peak <= wb_warm + 64 * 1024, "wandb: {wb_warm} -> {wb_peak} bytes");
    assert!(tb_peak < 512 * 1024 && wb_peak < 512 * 1024, "{tb_peak} {wb_peak}");

    let n = EPOCHS * BATCHES;
    let tb_stats = tb.stats();
    assert_eq!(tb_stats.events, n + EPOCHS);
    assert_eq!(tb_stats.scalars, n + EPOCHS);
    assert_eq!(tb_stats.histograms, EPOCHS);
    let wb_stats = wb.stats();
    assert_eq!(wb_stats.history_rows, n);
    assert_eq!(wb_stats.exit_code, Some(1), "no train_end: the run counts as failed");
}
