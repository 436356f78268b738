//! The W&B bridge, checked with our own decoder.

use std::path::Path;

use obs_bridges::wandb::{WandbRecord, read_run_file};
use obs_bridges::{BridgeError, WandbBridge};
use obs_core::{Backend, Event, EventType, LogLevel, TrainingLogger, data};

use crate::common;

pub(crate) fn demo(root: &Path) -> WandbBridge {
    WandbBridge::builder("obs-test")
        .run_name("demo")
        .tag("a")
        .tag("b")
        .config(data! { "lr" => 0.01 })
        .dir(root)
        .create()
        .unwrap()
}

fn exit_code(records: &[WandbRecord]) -> Option<i32> {
    match records.last() {
        Some(WandbRecord::Exit { exit_code, .. }) => Some(*exit_code),
        _ => None,
    }
}

#[test]
fn a_replayed_run_reads_back_exactly_in_the_wandb_layout() {
    let dir = tempfile::tempdir().unwrap();
    let mut wb = demo(dir.path());
    let events = common::run(true);
    assert_eq!(wb.replay(events.clone()).unwrap(), events.len() as u64);
    wb.close().unwrap();
    let id = wb.run_id().to_owned();
    assert_eq!(id.len(), 8);
    let name = wb.run_dir().file_name().unwrap().to_str().unwrap().to_owned();
    // offline-run-YYYYMMDD_HHMMSS-<id>
    let stamp = name.strip_prefix("offline-run-").unwrap().strip_suffix(&format!("-{id}")).unwrap();
    assert_eq!(stamp.len(), 15);
    assert!(stamp.chars().enumerate().all(|(i, c)| if i == 8 {
        c == '_'
    } else {
        c.is_ascii_digit()
    }));
    assert_eq!(wb.run_dir().parent().unwrap(), dir.path().join("wandb"));
    assert!(wb.run_dir().join("files").is_dir());
    assert_eq!(wb.path(), wb.run_dir().join(format!("run-{id}.wandb")));
    #[cfg(unix)]
    assert_eq!(std::fs::read_link(dir.path().join("wandb/latest-run")).unwrap(), Path::new(&name));

    let records = read_run_file(wb.path()).unwrap();
    common::check_wandb(&records, &id, 0);
    let stats = wb.stats();
    assert_eq!(stats.records, records.len() as u64);
    assert_eq!(stats.history_rows, 13);
    assert_eq!(stats.console_lines, 2);
    assert_eq!(stats.exit_code, Some(0));
    assert_eq!(stats.bytes + 7, std::fs::metadata(wb.path()).unwrap().len());
}

#[test]
fn a_run_closed_without_train_end_exits_with_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut wb = demo(dir.path());
    wb.replay(common::run(false)).unwrap();
    wb.close().unwrap();
    let records = read_run_file(wb.path()).unwrap();
    common::check_wandb(&records, wb.run_id(), 1);
}

#[test]
fn mark_failed_overrides_a_normal_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut wb = demo(dir.path());
    wb.replay(common::run(true)).unwrap();
    wb.mark_failed();
    wb.close().unwrap();
    assert_eq!(exit_code(&read_run_file(wb.path()).unwrap()), Some(1));
    assert_eq!(wb.stats().exit_code, Some(1));
}

#[test]
fn the_failure_flag_works_after_the_bridge_moved_into_a_logger() {
    let dir = tempfile::tempdir().unwrap();
    let wb = demo(dir.path());
    let (path, flag) = (wb.path().to_path_buf(), wb.failure_flag());
    let logger = TrainingLogger::new(LogLevel::Detailed).unwrap();
    logger.add_backend(wb).unwrap();
    logger.on_train_start(1, data! {});
    logger.on_epoch_start(0);
    logger.on_batch_end(0, data! { "loss" => 1.0 });
    logger.on_epoch_end(0, data! { "loss" => 1.0 });
    logger.on_train_end(data! {});
    flag.mark_failed();
    assert!(flag.is_failed());
    logger.close().unwrap();
    assert_eq!(exit_code(&read_run_file(&path).unwrap()), Some(1));
}

#[test]
fn a_panic_in_the_training_loop_ends_the_run_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let wb = demo(dir.path());
    let path = wb.path().to_path_buf();
    let result = std::panic::catch_unwind(move || {
        let logger = TrainingLogger::new(LogLevel::Detailed).unwrap();
        logger.add_backend(wb).unwrap();
        logger.on_train_start(3, data! {});
        logger.on_epoch_start(0);
        logger.on_batch_end(0, data! { "loss" => 1.0 });
        panic!("the model exploded");
    });
    assert!(result.is_err());
    // The logger was dropped while unwinding: the bus closed the bridge, which wrote the row
    // it had pending and an exit record with code 1.
    let records = read_run_file(&path).unwrap();
    assert_eq!(exit_code(&records), Some(1));
    assert!(records.iter().any(|r| matches!(r, WandbRecord::History { items, .. }
        if items.iter().any(|(k, v)| k == "batch/loss" && v == "1.0"))));
}

#[test]
fn a_dropped_bridge_still_finishes_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut wb = demo(dir.path());
    wb.replay(common::run(false)).unwrap();
    let path = wb.path().to_path_buf();
    drop(wb);
    let records = read_run_file(&path).unwrap();
    common::check_wandb(&records, records_run_id(&records), 1);
}

fn records_run_id(records: &[WandbRecord]) -> &str {
    match &records[0] {
        WandbRecord::Run { run_id, .. } => run_id,
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_empty_run_still_has_a_run_record_and_an_exit() {
    let dir = tempfile::tempdir().unwrap();
    let mut wb =
        WandbBridge::builder("p").dir(dir.path()).started_at(1_740_000_000.0).create().unwrap();
    assert!(
        wb.run_dir()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("offline-run-20250219_212000-")
    );
    wb.close().unwrap();
    let records = read_run_file(wb.path()).unwrap();
    assert!(
        matches!(&records[0], WandbRecord::Run { start_time, .. } if *start_time == 1_740_000_000.0)
    );
    assert_eq!(exit_code(&records), Some(1));
    assert!(matches!(
        wb.write_event(&Event::new(EventType::TrainEnd, LogLevel::Basic)),
        Err(BridgeError::Closed)
    ));
}

#[test]
fn runs_never_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<_> = (0..20).map(|_| demo(dir.path())).collect();
    let dirs: std::collections::HashSet<_> =
        runs.iter().map(|r| r.run_dir().to_path_buf()).collect();
    assert_eq!(dirs.len(), 20);
    let fixed = WandbBridge::builder("p").run_id("fixed-id_1").dir(dir.path()).create().unwrap();
    let again = WandbBridge::builder("p").run_id("fixed-id_1").dir(dir.path()).create();
    assert!(
        matches!(again, Err(BridgeError::AlreadyExists { ref path }) if path == fixed.run_dir()),
        "{again:?}"
    );
    for bad in ["", "a/b", "../x", "white space", &"x".repeat(65)] {
        let r = WandbBridge::builder("p").run_id(bad).dir(dir.path()).create();
        assert!(matches!(r, Err(BridgeError::InvalidRunId(_))), "{bad:?}");
    }
    for bad in ["", "a/b", "what?", "100%", "x:y", &"p".repeat(129)] {
        let r = WandbBridge::builder(bad).dir(dir.path()).create();
        assert!(matches!(r, Err(BridgeError::InvalidProject(_))), "{bad:?}");
    }
}

#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = WandbBridge::builder("p").dir(&file).create().unwrap_err();
    assert!(
        matches!(err, BridgeError::CreateDir { ref path, .. } if path == &file.join("wandb")),
        "{err:?}"
    );
}

#[test]
fn records_larger_than_a_block_are_split_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(100_000);
    let mut wb = WandbBridge::builder("p")
        .config(data! { "blob" => big.as_str() })
        .dir(dir.path())
        .create()
        .unwrap();
    // Many small rows so that chunk boundaries fall everywhere in the 32 KiB blocks.
    let events = (0..3000u64).map(|i| {
        Event::new(EventType::BatchEnd, LogLevel::Detailed)
            .at(Some(0), Some(i))
            .data(data! { "metrics" => data! { "loss" => i as f64 } })
    });
    wb.replay(events).unwrap();
    wb.close().unwrap();
    let records = read_run_file(wb.path()).unwrap();
    let WandbRecord::Run { config, .. } = &records[0] else { panic!() };
    assert_eq!(config[0].1, format!("\"{big}\""));
    let losses: Vec<f64> = records
        .iter()
        .filter_map(|r| match r {
            WandbRecord::History { items, .. } => Some(common::num(&items[0].1)),
            _ => None,
        })
        .collect();
    assert_eq!(losses, (0..3000).map(|i| i as f64).collect::<Vec<_>>());
    assert!(std::fs::metadata(wb.path()).unwrap().len() > 4 * 32 * 1024);
    // A flipped byte is found.
    let mut bytes = std::fs::read(wb.path()).unwrap();
    let at = bytes.len() - 5000;
    bytes[at] ^= 1;
    let copy = dir.path().join("copy.wandb");
    std::fs::write(&copy, bytes).unwrap();
    assert!(matches!(read_run_file(&copy), Err(BridgeError::Corrupt { .. })));
}

#[test]
fn backend_errors_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut wb = demo(dir.path());
    Backend::close(&mut wb).unwrap();
    assert!(matches!(
        wb.write(&[Event::new(EventType::EpochEnd, LogLevel::Basic)]),
        Err(obs_core::BackendError::Closed)
    ));
    assert!(Backend::flush(&mut wb).is_err());
}
