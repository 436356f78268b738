//! The writer: open modes, flush rules, summary, rotation, fingerprint and failures.

use std::path::Path;

use obs_core::{Backend, Event, EventType, LogLevel, Severity, Tier, TrainingLogger, data};
use obs_storage::{
    FileNames, FsyncPolicy, LogReader, OpenMode, StorageConfig, StorageError, TieredStorage,
    is_append_boundary, list_runs,
};

use crate::support::{event, ndjson, warning, write_raw};

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Opens with a buffer so large that only the flush rules under test write anything.
fn big_buffers(dir: &Path) -> StorageConfig {
    StorageConfig::new(dir).buffer_size(1_000_000).buffer_bytes(1 << 24)
}

#[test]
fn create_new_writes_into_an_empty_dir_and_refuses_a_used_one() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("training_logs");
    let mut s = TieredStorage::open(&base).unwrap();
    assert_eq!(s.run_dir(), base);
    for name in ["basic.log", "health.log", "debug.log"] {
        assert!(base.join(name).is_file(), "{name}");
    }
    s.write(&[event(EventType::TrainStart, 0, 1.0)]).unwrap();
    s.close().unwrap();

    let err = TieredStorage::open(&base).unwrap_err();
    assert!(matches!(err, StorageError::ExistingLogs { .. }), "{err}");
    let msg = err.to_string();
    for option in ["OpenMode::RunDir", "OpenMode::Append", "OpenMode::Overwrite", "basic.log"] {
        assert!(msg.contains(option), "{msg}");
    }
    // The earlier run is untouched.
    let reader = LogReader::open(&base).unwrap();
    assert_eq!(reader.read_basic().unwrap().count(), 1);
}

#[test]
fn run_dirs_are_fresh_every_time_and_the_reader_takes_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::new(dir.path()).mode(OpenMode::RunDir);
    let mut runs = Vec::new();
    for epoch in 0..3 {
        let mut s = TieredStorage::with_config(config.clone()).unwrap();
        s.write(&[event(EventType::EpochEnd, epoch, 1.0)]).unwrap();
        s.close().unwrap();
        runs.push(s.run_dir().to_owned());
    }
    runs.dedup();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(list_runs(dir.path()).unwrap(), runs);
    let name = runs[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with("run-") && name.len() >= 19, "{name}");
    let reader = LogReader::open(dir.path()).unwrap();
    assert_eq!(reader.run_dir(), runs[2]);
    assert_eq!(reader.read_basic().unwrap().next().unwrap().epoch, Some(2));
}

#[test]
fn append_keeps_the_old_run_closes_a_torn_line_and_marks_the_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let old = [event(EventType::TrainStart, 0, 1.0), event(EventType::EpochEnd, 0, 2.0)];
    let mut bytes = ndjson(&old);
    bytes.extend_from_slice(br#"{"event_type":"epoch_e"#);
    write_raw(dir.path(), "basic.log", &bytes);

    let config = big_buffers(dir.path()).mode(OpenMode::Append);
    let mut s = TieredStorage::with_config(config).unwrap();
    let handle = s.handle();
    // Two old lines (the torn one is not counted) plus the boundary.
    assert_eq!(handle.summary().basic.events, 3);
    // Health and debug were empty: no boundary there.
    assert_eq!(handle.summary().health.events, 0);
    let new = event(EventType::TrainStart, 0, 3.0);
    s.write(std::slice::from_ref(&new)).unwrap();
    s.close().unwrap();

    let (events, stats) = handle.read_basic().unwrap().collect_with_stats();
    assert_eq!(events.len(), 4);
    assert_eq!(events[..2], old);
    assert!(is_append_boundary(&events[2]), "{:?}", events[2]);
    assert_eq!(events[3], new);
    assert_eq!(stats.corrupt_lines, 1, "the torn line is closed and skipped");
    assert_eq!(stats.partial_tail_bytes, 0);
    let summary = handle.summary();
    assert_eq!(summary.basic.events, 4);
    assert_eq!(summary.basic.size_bytes, file_len(&dir.path().join("basic.log")));
}

#[test]
fn overwrite_removes_the_old_run_entirely() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["basic.log", "debug.log", "debug.1.log", "health.log"] {
        write_raw(dir.path(), name, &ndjson(&[event(EventType::EpochEnd, 9, 1.0)]));
    }
    write_raw(dir.path(), "fingerprint.json", b"{}");
    let config = StorageConfig::new(dir.path()).mode(OpenMode::Overwrite).write_debug(false);
    let mut s = TieredStorage::with_config(config).unwrap();
    s.write(&[event(EventType::EpochEnd, 1, 1.0)]).unwrap();
    s.close().unwrap();
    assert!(!dir.path().join("debug.log").exists());
    assert!(!dir.path().join("debug.1.log").exists());
    assert!(!dir.path().join("fingerprint.json").exists());
    let reader = LogReader::open(dir.path()).unwrap();
    let epochs: Vec<_> = reader.read_basic().unwrap().map(|e| e.epoch).collect();
    assert_eq!(epochs, [Some(1)]);
    assert_eq!(reader.read_health().unwrap().count(), 0);
}

#[test]
fn flush_rules_basic_at_epoch_end_health_at_once_all_at_train_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TieredStorage::with_config(big_buffers(dir.path())).unwrap();
    let h = s.handle();
    let on_disk = |tier| h.reader().unwrap().read(tier).unwrap().count();

    s.write(&[event(EventType::TrainStart, 0, 1.0), event(EventType::BatchEnd, 0, 1.0)]).unwrap();
    assert_eq!((on_disk(Tier::Basic), on_disk(Tier::Debug)), (0, 0));
    s.write(&[warning("dense_0", 0, 1.5)]).unwrap();
    assert_eq!(on_disk(Tier::Health), 1);
    s.write(&[event(EventType::EpochEnd, 0, 2.0)]).unwrap();
    assert_eq!((on_disk(Tier::Basic), on_disk(Tier::Debug)), (2, 0));
    s.write(&[event(EventType::BatchEnd, 1, 2.5), event(EventType::TrainEnd, 1, 3.0)]).unwrap();
    assert_eq!((on_disk(Tier::Basic), on_disk(Tier::Debug)), (3, 2));
    assert_eq!(h.summary().total_events, 6);
}

#[test]
fn a_full_buffer_is_written_by_event_count_or_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let by_count = dir.path().join("count");
    let mut s = TieredStorage::with_config(StorageConfig::new(&by_count).buffer_size(3)).unwrap();
    let batch =
        |n: u64| -> Vec<Event> { (0..n).map(|i| event(EventType::BatchEnd, i, 1.0)).collect() };
    s.write(&batch(2)).unwrap();
    assert_eq!(s.summary().debug.events, 0);
    s.write(&batch(1)).unwrap();
    assert_eq!(s.summary().debug.events, 3);

    let by_bytes = dir.path().join("bytes");
    let config = StorageConfig::new(&by_bytes).buffer_size(1_000_000).buffer_bytes(1000);
    let mut s = TieredStorage::with_config(config).unwrap();
    s.write(&batch(20)).unwrap();
    let d = s.summary().debug;
    assert!(d.events > 0 && d.events < 20, "{d:?}");
    assert_eq!(d.size_bytes, file_len(&by_bytes.join("debug.log")));
}

#[test]
fn through_a_logger_the_summary_agrees_with_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let logger = TrainingLogger::new(LogLevel::Expert).unwrap();
    let storage = TieredStorage::open(dir.path()).unwrap();
    let handle = storage.handle();
    logger.add_backend(storage).unwrap();
    logger.on_train_start(2, data! { "name" => "toy" });
    for epoch in 0..2 {
        logger.on_epoch_start(epoch);
        for batch in 0..37 {
            logger.on_batch_start(batch);
            logger.on_gradient_computed("dense_0", 0.01 * batch as f64);
            logger.on_batch_end(batch, data! { "loss" => 1.0 / (1.0 + batch as f64) });
        }
        logger.on_health_check(Severity::Warning, "Possible overfitting", None, data! {});
        logger.on_epoch_end(epoch, data! { "loss" => 0.5, "val_loss" => 0.9 });
    }
    logger.flush().unwrap();
    let mid = handle.summary();
    assert_eq!(mid.basic.events, 5);
    logger.on_train_end(data! {});
    let report = logger.close().unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    assert!(handle.is_closed());

    let summary = handle.summary();
    let reader = LogReader::open(dir.path()).unwrap();
    for tier in Tier::ALL {
        let t = summary.tier(tier);
        let (events, stats) = reader.read(tier).unwrap().collect_with_stats();
        assert!(stats.is_clean(), "{stats:?}");
        assert_eq!(t.events, events.len() as u64, "{tier}");
        let size: u64 = reader.files(tier).unwrap().iter().map(|p| file_len(p)).sum();
        assert_eq!(t.size_bytes, size, "{tier}");
    }
    assert_eq!(
        (summary.basic.events, summary.health.events, summary.debug.events),
        (6, 2, 2 * 37 * 3)
    );
    assert_eq!(summary.total_events, 6 + 2 + 222);
    let json = serde_json::to_value(summary).unwrap();
    assert_eq!(json["health"]["events"], 2);
    assert_eq!(json["total_events"], 230);
}

#[test]
fn rotation_keeps_segments_under_the_limit_and_reads_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::new(dir.path()).rotate_bytes(Some(2_000)).buffer_size(7);
    let mut s = TieredStorage::with_config(config).unwrap();
    let events: Vec<Event> = (0..100).map(|i| event(EventType::BatchEnd, i, i as f64)).collect();
    for chunk in events.chunks(13) {
        s.write(chunk).unwrap();
    }
    s.close().unwrap();
    let reader = s.handle().reader().unwrap();
    let files = reader.files(Tier::Debug).unwrap();
    assert!(files.len() > 3, "{files:?}");
    assert!(files[1].ends_with("debug.1.log"));
    for f in &files {
        assert!(file_len(f) <= 2_000, "{} is {} bytes", f.display(), file_len(f));
    }
    assert_eq!(reader.read_debug().unwrap().collect::<Vec<_>>(), events);
    let total: u64 = files.iter().map(|p| file_len(p)).sum();
    assert_eq!(s.summary().debug.size_bytes, total);
    assert_eq!(s.summary().debug.events, 100);
}

#[test]
fn fingerprint_json_is_written_atomically_from_train_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::new(dir.path()).fsync(FsyncPolicy::Always);
    let mut s = TieredStorage::with_config(config).unwrap();
    let fp = data! { "seed" => 42, "dataset" => data! { "sha256" => "ab12", "nan" => f64::NAN } };
    let start = Event::new(EventType::TrainStart, LogLevel::Basic).field("fingerprint", fp);
    s.write(&[start]).unwrap();
    let text = std::fs::read_to_string(dir.path().join("fingerprint.json")).unwrap();
    assert!(text.contains("\n  \"seed\": 42"), "pretty-printed: {text}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let read = s.handle().fingerprint().unwrap().unwrap();
    assert_eq!(read["seed"], 42);
    assert_eq!(read["dataset"]["nan"], "NaN");
}

#[test]
fn write_debug_false_creates_no_debug_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s =
        TieredStorage::with_config(StorageConfig::new(dir.path()).write_debug(false)).unwrap();
    s.write(&[event(EventType::BatchEnd, 0, 1.0), event(EventType::TrainEnd, 0, 2.0)]).unwrap();
    assert!(!dir.path().join("debug.log").exists());
    assert_eq!(s.summary().debug.events, 0);
    assert_eq!(s.summary().basic.events, 1);
}

#[test]
fn custom_names_are_used_by_writer_and_handle() {
    let dir = tempfile::tempdir().unwrap();
    let names = FileNames::new("epochs.ndjson", "alerts.ndjson", "detail.ndjson");
    let mut s = TieredStorage::with_config(StorageConfig::new(dir.path()).names(names)).unwrap();
    s.write(&[warning("d", 0, 1.0)]).unwrap();
    assert!(dir.path().join("alerts.ndjson").is_file());
    assert_eq!(s.handle().read_health().unwrap().count(), 1);
    let bad = StorageConfig::new(dir.path().join("x")).names(FileNames::new("a/b", "h", "d"));
    assert!(matches!(TieredStorage::with_config(bad), Err(StorageError::InvalidConfig(_))));
    let zero = StorageConfig::new(dir.path().join("y")).buffer_size(0);
    assert!(matches!(TieredStorage::with_config(zero), Err(StorageError::InvalidConfig(_))));
}

#[test]
fn an_unusable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a_file");
    write_raw(dir.path(), "a_file", b"x");
    let err = TieredStorage::open(&file).unwrap_err();
    assert!(err.to_string().contains("a_file"), "{err}");
    let err = TieredStorage::open(file.join("sub")).unwrap_err();
    assert!(matches!(err, StorageError::Io { action: "creating directory", .. }), "{err}");
}

#[test]
fn closed_storage_refuses_writes_and_close_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TieredStorage::open(dir.path()).unwrap();
    s.close().unwrap();
    s.close().unwrap();
    assert!(s.write(&[event(EventType::BatchEnd, 0, 1.0)]).is_err());
}

/// `/dev/full` accepts opens and fails every write with ENOSPC: a disk that is full.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_reported_through_the_logger() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("health.log")).unwrap();
    let config = StorageConfig::new(dir.path()).mode(OpenMode::Append);
    let storage = TieredStorage::with_config(config).unwrap();
    let handle = storage.handle();
    let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
    logger.add_backend(storage).unwrap();
    logger.on_epoch_end(0, data! { "loss" => 1.0 });
    logger.on_health_check(Severity::Danger, "Exploding gradient", Some("dense_0"), data! {});
    let err = logger.flush().unwrap_err();
    assert!(err.to_string().contains("no space left while writing"), "{err}");
    assert!(err.to_string().contains("health.log"), "{err}");
    // The healthy tier still got its event.
    assert_eq!(handle.summary().basic.events, 1);
    let _ = logger.close();
}

#[test]
fn racing_openers_never_share_a_directory() {
    for round in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let barrier = std::sync::Barrier::new(4);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let (barrier, base) = (&barrier, dir.path());
                    s.spawn(move || {
                        let mode = if i % 2 == 0 { OpenMode::CreateNew } else { OpenMode::RunDir };
                        barrier.wait();
                        TieredStorage::with_config(StorageConfig::new(base).mode(mode))
                            .map(|s| s.run_dir().to_owned())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let direct = won.iter().filter(|p| **p == dir.path()).count();
        assert_eq!(direct, 1, "round {round}: exactly one CreateNew wins: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, StorageError::ExistingLogs { .. }), "{e}");
            }
        }
        won.sort();
        won.dedup();
        assert_eq!(won.len(), 3, "round {round}: the two run dirs are distinct: {results:?}");
    }
}
