//! The reader on healthy and damaged logs.

use obs_core::{EventType, Severity, Tier};
use obs_storage::{BadLineKind, EventFilter, FollowFrom, LogReader, ReaderConfig, StorageError};

use crate::support::{event, ndjson, warning, write_raw};

#[test]
fn reads_each_tier_and_merges_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let basic = [event(EventType::TrainStart, 0, 1.0), event(EventType::EpochEnd, 0, 4.0)];
    let health = [warning("dense_0", 0, 3.0)];
    let debug = [event(EventType::BatchEnd, 0, 2.0), event(EventType::BatchEnd, 0, 4.0)];
    write_raw(dir.path(), "basic.log", &ndjson(&basic));
    write_raw(dir.path(), "health.log", &ndjson(&health));
    write_raw(dir.path(), "debug.log", &ndjson(&debug));

    let reader = LogReader::open(dir.path()).unwrap();
    assert_eq!(reader.run_dir(), dir.path());
    assert_eq!(reader.read_basic().unwrap().collect::<Vec<_>>(), basic);
    assert_eq!(reader.read_health().unwrap().collect::<Vec<_>>(), health);
    let times: Vec<(f64, EventType)> =
        reader.read_all().unwrap().map(|e| (e.timestamp, e.event_type)).collect();
    assert_eq!(
        times,
        [
            (1.0, EventType::TrainStart),
            (2.0, EventType::BatchEnd),
            (3.0, EventType::HealthCheck),
            // A tie keeps basic before debug.
            (4.0, EventType::EpochEnd),
            (4.0, EventType::BatchEnd),
        ]
    );
}

#[test]
fn damaged_lines_are_skipped_counted_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let good = event(EventType::EpochEnd, 1, 5.0);
    let mut bytes = ndjson(&[event(EventType::EpochStart, 1, 4.0)]);
    bytes.extend_from_slice(b"\n   \n{\"event_type\":\"epoch_end\",\"lev\n");
    bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
    bytes.extend(std::iter::repeat_n(b'x', 5000));
    bytes.push(b'\n');
    bytes.extend(ndjson(std::slice::from_ref(&good)));
    let torn = br#"{"event_type":"epoch_end","level":"BA"#;
    bytes.extend_from_slice(torn);
    write_raw(dir.path(), "basic.log", &bytes);

    let config = ReaderConfig::default().max_line_bytes(1000);
    let reader = LogReader::open_with(dir.path(), config).unwrap();
    let mut iter = reader.read_basic().unwrap();
    let events: Vec<_> = iter.by_ref().collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1], good);
    let stats = iter.stats();
    assert_eq!(stats.events, 2);
    assert_eq!(stats.blank_lines, 2);
    assert_eq!(stats.corrupt_lines, 2);
    assert_eq!(stats.too_long_lines, 1);
    assert_eq!(stats.partial_tail_bytes, torn.len() as u64);
    let where_: Vec<(u64, BadLineKind)> =
        stats.bad_lines.iter().map(|b| (b.line, b.kind)).collect();
    assert_eq!(
        where_,
        [(4, BadLineKind::Corrupt), (5, BadLineKind::Corrupt), (6, BadLineKind::TooLong)]
    );
    assert!(stats.bad_lines[2].detail.contains("5000 bytes"), "{:?}", stats.bad_lines[2]);
}

#[test]
fn a_file_that_is_not_ours_is_refused_or_counted_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"2025-01-01 12:00:00 INFO some other program\n".to_vec();
    bytes.extend(ndjson(&[event(EventType::EpochEnd, 0, 1.0)]));
    write_raw(dir.path(), "basic.log", &bytes);

    let err = LogReader::open(dir.path()).unwrap().read_basic().unwrap_err();
    assert!(matches!(err, StorageError::NotAnEventLog { line: 1, .. }), "{err}");
    assert!(err.to_string().contains("basic.log is not an Observatory event log"), "{err}");

    let lenient = ReaderConfig::default().accept_foreign(true);
    let reader = LogReader::open_with(dir.path(), lenient).unwrap();
    let (events, stats) = reader.read_basic().unwrap().collect_with_stats();
    assert_eq!(events.len(), 1);
    assert_eq!(stats.corrupt_lines, 1);
}

#[test]
fn missing_and_empty_directories_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = LogReader::open(&missing).unwrap_err();
    assert!(matches!(err, StorageError::MissingDirectory { .. }), "{err}");
    let err = LogReader::open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::NoLogs { .. }), "{err}");
}

#[test]
fn a_base_directory_reads_its_newest_run() {
    let dir = tempfile::tempdir().unwrap();
    for (name, epoch) in
        [("run-20250101-120000", 1), ("run-20250101-120000-10", 3), ("run-20250101-120000-2", 2)]
    {
        let run = dir.path().join(name);
        std::fs::create_dir(&run).unwrap();
        write_raw(&run, "basic.log", &ndjson(&[event(EventType::EpochEnd, epoch, 1.0)]));
    }
    let reader = LogReader::open(dir.path()).unwrap();
    assert!(reader.run_dir().ends_with("run-20250101-120000-10"));
    assert_eq!(reader.read_basic().unwrap().next().unwrap().epoch, Some(3));
    // Missing tiers read as empty.
    assert_eq!(reader.read_debug().unwrap().count(), 0);
}

#[test]
fn rotated_segments_are_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for (name, epoch) in
        [("debug.log", 0), ("debug.2.log", 2), ("debug.1.log", 1), ("debug.10.log", 10)]
    {
        write_raw(dir.path(), name, &ndjson(&[event(EventType::BatchEnd, epoch, epoch as f64)]));
    }
    let reader = LogReader::open(dir.path()).unwrap();
    let epochs: Vec<_> = reader.read_debug().unwrap().filter_map(|e| e.epoch).collect();
    assert_eq!(epochs, [0, 1, 2, 10]);
}

#[test]
fn filters_select_type_epochs_layer_and_severity() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    for epoch in 0..6 {
        events.push(event(EventType::LayerForward, epoch, epoch as f64).layer("dense_0", Some(0)));
        events.push(event(EventType::LayerForward, epoch, epoch as f64).layer("dense_1", Some(1)));
        events.push(event(EventType::BatchEnd, epoch, epoch as f64).severity(Severity::Success));
    }
    write_raw(dir.path(), "debug.log", &ndjson(&events));
    let reader = LogReader::open(dir.path()).unwrap();
    let filter =
        EventFilter::new().event_type(EventType::LayerForward).epochs(2..4).layer("dense_1");
    let mut iter = reader.read_debug().unwrap().with_filter(filter);
    let got: Vec<_> = iter.by_ref().map(|e| (e.epoch, e.layer_name)).collect();
    assert_eq!(got, [(Some(2), Some("dense_1".into())), (Some(3), Some("dense_1".into()))]);
    assert_eq!(iter.stats().filtered_out, 16);

    let severe = EventFilter::new().min_severity(Severity::Success);
    assert_eq!(reader.read_debug().unwrap().with_filter(severe).count(), 6);
    let merged = reader.read_all().unwrap().with_filter(EventFilter::new().epochs(5..));
    assert_eq!(merged.count(), 3);
}

#[test]
fn a_follower_sees_only_complete_lines_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let first = event(EventType::BatchEnd, 0, 1.0);
    let second = event(EventType::BatchEnd, 1, 2.0);
    let mut bytes = ndjson(std::slice::from_ref(&first));
    let line2 = ndjson(std::slice::from_ref(&second));
    bytes.extend_from_slice(&line2[..20]);
    write_raw(dir.path(), "debug.log", &bytes);

    let reader = LogReader::open(dir.path()).unwrap();
    let mut from_end = reader.follow(Tier::Debug, FollowFrom::End).unwrap();
    let mut follower = reader.follow(Tier::Debug, FollowFrom::Start).unwrap();
    let mut out = Vec::new();
    assert_eq!(follower.poll(&mut out, 100).unwrap(), 1);
    assert_eq!(out, std::slice::from_ref(&first));
    assert_eq!(follower.poll(&mut out, 100).unwrap(), 0);

    // The writer finishes the line, then rotates to a new segment.
    bytes.extend_from_slice(&line2[20..]);
    write_raw(dir.path(), "debug.log", &bytes);
    let third = event(EventType::BatchEnd, 2, 3.0);
    write_raw(dir.path(), "debug.1.log", &ndjson(std::slice::from_ref(&third)));
    out.clear();
    assert_eq!(follower.poll(&mut out, 100).unwrap(), 2);
    assert_eq!(out, [second.clone(), third.clone()]);
    assert!(follower.stats().is_clean());
    assert_eq!(follower.position().segment, 1);

    out.clear();
    assert_eq!(from_end.poll(&mut out, 1).unwrap(), 1);
    assert_eq!(out, [second]);
    let resume = from_end.position();
    let mut resumed = reader.follow(Tier::Debug, FollowFrom::Position(resume)).unwrap();
    out.clear();
    assert_eq!(resumed.poll(&mut out, 100).unwrap(), 1);
    assert_eq!(out, [third]);
}

#[test]
fn a_follower_restarts_after_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<_> = (0..5).map(|i| event(EventType::BatchEnd, i, i as f64)).collect();
    write_raw(dir.path(), "debug.log", &ndjson(&events));
    let reader = LogReader::open(dir.path()).unwrap();
    let mut follower = reader.follow(Tier::Debug, FollowFrom::Start).unwrap();
    let mut out = Vec::new();
    assert_eq!(follower.poll(&mut out, 100).unwrap(), 5);
    write_raw(dir.path(), "debug.log", &ndjson(&events[..1]));
    out.clear();
    assert_eq!(follower.poll(&mut out, 100).unwrap(), 1);
    assert_eq!(follower.truncations(), 1);
}

#[test]
fn fingerprint_is_read_when_present() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "basic.log", b"");
    let reader = LogReader::open(dir.path()).unwrap();
    assert!(reader.fingerprint().unwrap().is_none());
    write_raw(dir.path(), "fingerprint.json", b"{\"seed\": 42}");
    assert_eq!(reader.fingerprint().unwrap().unwrap()["seed"], 42);
    write_raw(dir.path(), "fingerprint.json", b"{\"seed\": ");
    assert!(matches!(reader.fingerprint(), Err(StorageError::Fingerprint { .. })));
}
