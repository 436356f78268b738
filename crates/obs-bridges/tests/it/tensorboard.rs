//! The TensorBoard bridge, checked with our own decoder.

use std::path::Path;

use obs_bridges::tensorboard::{EventFileReader, TbEvent, TbValueKind};
use obs_bridges::{BridgeError, TensorBoardBridge};
use obs_core::{Activation, Backend, EventType, LogLevel, TensorView, TrainingLogger, data};

use crate::common::{self, Hist, TbSeen};

pub(crate) fn read_all(path: &Path) -> Vec<TbEvent> {
    EventFileReader::open(path).unwrap().collect::<Result<_, _>>().unwrap()
}

pub(crate) fn seen(events: &[TbEvent]) -> TbSeen {
    let mut seen = TbSeen::default();
    for e in events {
        for v in &e.values {
            let tag = v.tag.clone();
            match &v.kind {
                TbValueKind::Scalar(x) => seen.scalars.entry(tag).or_default().push((e.step, *x)),
                TbValueKind::Text(t) => {
                    seen.texts.entry(tag).or_default().push((e.step, t.clone()))
                }
                TbValueKind::Histogram {
                    min,
                    max,
                    num,
                    sum,
                    sum_squares,
                    bucket_limit,
                    bucket,
                } => {
                    seen.histograms.entry(tag).or_default().push((
                        e.step,
                        Hist {
                            min: *min,
                            max: *max,
                            num: *num,
                            sum: *sum,
                            sum_squares: *sum_squares,
                            limits: bucket_limit.clone(),
                            counts: bucket.clone(),
                        },
                    ));
                }
                other => panic!("unexpected value {other:?}"),
            }
        }
    }
    seen
}

#[test]
fn a_replayed_run_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut tb = TensorBoardBridge::create(dir.path()).unwrap();
    let events = common::run(true);
    assert_eq!(tb.replay(events.clone()).unwrap(), events.len() as u64);
    tb.close().unwrap();
    let read = read_all(tb.path());
    assert_eq!(read[0].file_version.as_deref(), Some("brain.Event:2"));
    assert!(read[0].values.is_empty());
    common::check_tensorboard(&seen(&read[1..]));
    let stats = tb.stats();
    let scalars: usize = common::expected_scalars().values().map(Vec::len).sum();
    assert_eq!(stats.scalars, scalars as u64);
    assert_eq!((stats.texts, stats.histograms), (3, 12));
    // The non-numeric metric "optimizer", once per epoch.
    assert_eq!(stats.skipped, 3);
    assert_eq!(stats.records, read.len() as u64);
    assert_eq!(stats.bytes, std::fs::metadata(tb.path()).unwrap().len());
    assert_eq!(stats.events, events.len() as u64);
}

#[test]
fn a_live_run_through_the_logger_is_written_on_the_bus_thread() {
    let dir = tempfile::tempdir().unwrap();
    let tb = TensorBoardBridge::builder(dir.path()).run_name("live").create().unwrap();
    let path = tb.path().to_path_buf();
    let logger = TrainingLogger::new(LogLevel::Expert).unwrap();
    logger.add_backend(tb).unwrap();
    logger.on_train_start(2, data! { "name" => "mlp" });
    let acts = [0.0f32, 0.5, -0.25, 2.0, 0.0, 1.0];
    for epoch in 0..2 {
        logger.on_epoch_start(epoch);
        for batch in 0..5 {
            logger.on_batch_start(batch);
            let view = TensorView::new(&acts[..], &[2, 3]).unwrap();
            logger.on_layer_forward(0, "dense_0", view, Activation::Relu).unwrap();
            logger.on_gradient_computed("dense_0", 0.1 * (batch + 1) as f64);
            logger.on_batch_end(batch, data! { "loss" => 1.0 / (1 + epoch * 5 + batch) as f64 });
        }
        logger.on_epoch_end(epoch, data! { "loss" => 0.5, "val_loss" => f32::NAN });
    }
    logger.on_train_end(data! {});
    let report = logger.close().unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let s = seen(&read_all(&path)[1..]);
    let steps: Vec<i64> = s.scalars["batch/loss"].iter().map(|x| x.0).collect();
    assert_eq!(steps, (0..10).collect::<Vec<_>>());
    assert_eq!(s.scalars["batch/loss"][9].1, (1.0f64 / 10.0) as f32);
    assert_eq!(s.scalars["grad_norm/dense_0"].len(), 10);
    // The layer statistics come from the real kernel: 2 of 6 elements are zero.
    let zeros = &s.scalars["activations/dense_0/zeros_pct"];
    assert_eq!(zeros.len(), 10);
    assert!((zeros[0].1 - 100.0 / 3.0).abs() < 1e-4);
    assert_eq!(s.scalars["metrics/val_loss"].len(), 2);
    assert!(s.scalars["metrics/val_loss"][0].1.is_nan());
    assert_eq!(s.scalars["epoch/duration_s"].len(), 2);
    assert!(path.starts_with(dir.path().join("live")));
}

#[test]
fn a_corrupt_byte_is_reported_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut tb = TensorBoardBridge::create(dir.path()).unwrap();
    tb.replay(common::run(true)).unwrap();
    tb.close().unwrap();
    let mut bytes = std::fs::read(tb.path()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let copy = dir.path().join("corrupt.tfevents");
    std::fs::write(&copy, &bytes).unwrap();
    let results: Vec<_> = EventFileReader::open(&copy).unwrap().collect();
    let (ok, bad): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(bad.len(), 1, "the reader stops at the first bad record");
    match &bad[0] {
        Err(BridgeError::Corrupt { offset, .. }) => assert!(*offset as usize <= middle),
        other => panic!("{other:?}"),
    }
    assert!(!ok.is_empty() && ok.len() < read_all(tb.path()).len());
    // A file cut inside its last record is an error too, not a silent success.
    std::fs::write(&copy, &std::fs::read(tb.path()).unwrap()[..bytes.len() - 3]).unwrap();
    assert!(EventFileReader::open(&copy).unwrap().any(|r| r.is_err()));
}

#[test]
fn bridges_never_share_or_overwrite_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut bridges: Vec<_> =
        (0..5).map(|_| TensorBoardBridge::create(dir.path()).unwrap()).collect();
    let paths: std::collections::HashSet<_> =
        bridges.iter().map(|b| b.path().to_path_buf()).collect();
    assert_eq!(paths.len(), 5);
    for (i, b) in bridges.iter_mut().enumerate() {
        let e = obs_core::Event::new(EventType::BatchEnd, LogLevel::Detailed)
            .at(Some(0), Some(0))
            .data(data! { "metrics" => data! { "loss" => i as f64 } });
        b.write(&[e]).unwrap();
        b.close().unwrap();
    }
    for (i, b) in bridges.iter().enumerate() {
        let s = seen(&read_all(b.path())[1..]);
        assert_eq!(s.scalars["batch/loss"], [(0, i as f32)]);
    }
    for p in &paths {
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("events.out.tfevents.")
                && name.contains(&std::process::id().to_string())
        );
    }
}

#[test]
fn run_names_cannot_escape_the_log_directory() {
    let dir = tempfile::tempdir().unwrap();
    let tb = TensorBoardBridge::builder(dir.path()).run_name("../../etc/x y").create().unwrap();
    assert_eq!(tb.dir(), dir.path().join("_.._etc_x_y"));
    assert!(tb.path().starts_with(dir.path()));
}

#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not_a_dir");
    std::fs::write(&file, b"x").unwrap();
    let err = TensorBoardBridge::create(file.join("logs")).unwrap_err();
    assert!(
        matches!(err, BridgeError::CreateDir { ref path, .. } if path == &file.join("logs")),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("could not create directory"), "{err}");
}

#[test]
fn a_closed_bridge_refuses_events_and_closes_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut tb = TensorBoardBridge::create(dir.path()).unwrap();
    tb.close().unwrap();
    tb.close().unwrap();
    let e = obs_core::Event::new(EventType::EpochEnd, LogLevel::Basic);
    assert!(matches!(tb.write_event(&e), Err(BridgeError::Closed)));
    assert!(matches!(tb.write(&[e]), Err(obs_core::BackendError::Closed)));
    assert_eq!(read_all(tb.path()).len(), 1);
}

#[test]
fn malformed_histograms_and_odd_values_are_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut tb = TensorBoardBridge::builder(dir.path()).distributions(false).create().unwrap();
    let bad = obs_core::Event::new(EventType::LayerForward, LogLevel::Expert)
        .at(Some(0), Some(0))
        .data(data! {
            "mean" => f64::INFINITY,
            "histogram" => data! { "edges" => vec![1.0, 0.0], "counts" => vec![1.0] },
        });
    let nameless = obs_core::Event::new(EventType::GradientComputed, LogLevel::Detailed)
        .field("grad_norm", "not a number");
    let no_norm = obs_core::Event::new(EventType::GradientComputed, LogLevel::Detailed);
    tb.replay([bad, nameless, no_norm]).unwrap();
    tb.close().unwrap();
    let s = seen(&read_all(tb.path())[1..]);
    assert_eq!(s.scalars["activations/unnamed/mean"], [(0, f32::INFINITY)]);
    assert!(s.histograms.is_empty());
    assert_eq!(tb.stats().skipped, 3);
}

#[test]
fn events_without_values_write_no_records_but_still_count_steps() {
    let dir = tempfile::tempdir().unwrap();
    let mut tb = TensorBoardBridge::create(dir.path()).unwrap();
    let ev = |t: EventType, batch: Option<u64>| {
        obs_core::Event::new(t, LogLevel::Expert).at(Some(0), batch)
    };
    tb.replay([
        ev(EventType::EpochStart, None),
        ev(EventType::BatchStart, Some(0)),
        ev(EventType::LayerForward, Some(0)),
        ev(EventType::BatchEnd, Some(0)),
        ev(EventType::BatchEnd, Some(1)).data(data! { "metrics" => data! { "loss" => 0.5 } }),
        ev(EventType::TrainEnd, None),
    ])
    .unwrap();
    tb.close().unwrap();
    let read = read_all(tb.path());
    assert_eq!(read.len(), 3, "version, the loss, the epoch's loss distribution: {read:?}");
    // The batch without metrics still counted: the loss is at global step 1.
    assert_eq!(seen(&read[1..]).scalars["batch/loss"], [(1, 0.5)]);
}
