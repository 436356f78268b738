//! Runs of several ranks: one `rank-<r>/` directory per process, merged by the reader.

use obs_core::{Backend, EventType, Tier};
use obs_storage::{LogReader, OpenMode, StorageConfig, StorageError, TieredStorage};

use crate::support::{event, ndjson, warning, write_raw};

#[test]
fn each_rank_writes_its_own_directory_and_the_reader_merges_them() {
    let run = tempfile::tempdir().unwrap();
    for rank in [1u32, 0] {
        let mut storage =
            TieredStorage::with_config(StorageConfig::new(run.path()).rank(rank)).unwrap();
        assert_eq!(storage.run_dir(), run.path().join(format!("rank-{rank}")));
        let t0 = 100.0 + f64::from(rank) * 0.5;
        let mut events = vec![
            event(EventType::TrainStart, 0, t0),
            event(EventType::EpochEnd, 0, t0 + 1.0),
            warning("dense", 0, t0 + 1.2),
            event(EventType::EpochEnd, 1, t0 + 2.0),
        ];
        // Rank 1's lines carry their rank; rank 0's get it from the directory name.
        if rank == 1 {
            events = events.into_iter().map(|e| e.ranked(Some(1), Some(2))).collect();
        }
        storage.write(&events).unwrap();
        storage.close().unwrap();
    }
    let reader = LogReader::open(run.path()).unwrap();
    assert_eq!(reader.ranks(), vec![0, 1]);
    let basic: Vec<_> = reader.read_basic().unwrap().collect();
    let order: Vec<(f64, Option<u32>)> = basic.iter().map(|e| (e.timestamp, e.rank)).collect();
    assert_eq!(
        order,
        vec![
            (100.0, Some(0)),
            (100.5, Some(1)),
            (101.0, Some(0)),
            (101.5, Some(1)),
            (102.0, Some(0)),
            (102.5, Some(1)),
        ]
    );
    let health: Vec<_> = reader.read_health().unwrap().collect();
    assert_eq!(health.iter().map(|e| e.rank).collect::<Vec<_>>(), vec![Some(0), Some(1)]);
    assert_eq!(reader.read_all().unwrap().count(), 8);
    let one = reader.rank(1).unwrap();
    assert!(one.read_basic().unwrap().all(|e| e.rank == Some(1)));
    assert!(reader.rank(7).is_none());
}

#[test]
fn a_damaged_line_in_one_rank_is_reported_not_fatal() {
    let run = tempfile::tempdir().unwrap();
    for rank in 0..3u32 {
        let dir = run.path().join(format!("rank-{rank}"));
        std::fs::create_dir(&dir).unwrap();
        let mut bytes = ndjson(&[
            event(EventType::TrainStart, 0, 10.0 + f64::from(rank)),
            event(EventType::EpochEnd, 0, 20.0 + f64::from(rank)),
        ]);
        if rank == 2 {
            bytes.extend_from_slice(b"{\"event_type\":\"epoch_end\",\"lev\n");
            bytes.extend_from_slice(&ndjson(&[event(EventType::EpochEnd, 1, 30.0)]));
            bytes.extend_from_slice(b"{\"torn");
        }
        write_raw(&dir, "basic.log", &bytes);
    }
    let reader = LogReader::open(run.path()).unwrap();
    let (events, stats) = reader.read(Tier::Basic).unwrap().collect_with_stats();
    assert_eq!(events.len(), 7);
    assert_eq!(events.iter().filter(|e| e.rank == Some(2)).count(), 3);
    assert_eq!(stats.skipped(), 1, "{stats:?}");
    assert!(stats.bad_lines[0].file.ends_with("rank-2/basic.log"), "{stats:?}");
    assert_eq!(stats.partial_tail_bytes, 6);
}

#[test]
fn rank_directories_in_a_base_directory_and_bad_configs() {
    let base = tempfile::tempdir().unwrap();
    let err =
        TieredStorage::with_config(StorageConfig::new(base.path()).rank(0).mode(OpenMode::RunDir))
            .unwrap_err();
    assert!(matches!(err, StorageError::InvalidConfig(_)), "{err}");
    // A second process claiming the same rank is refused, as for one directory.
    let mut first = TieredStorage::with_config(StorageConfig::new(base.path()).rank(3)).unwrap();
    first.write(&[event(EventType::TrainStart, 0, 1.0)]).unwrap();
    first.close().unwrap();
    let err = TieredStorage::with_config(StorageConfig::new(base.path()).rank(3)).unwrap_err();
    assert!(matches!(err, StorageError::ExistingLogs { .. }), "{err}");
    // Directories that only look like ranks are ignored.
    std::fs::create_dir(base.path().join("rank-01")).unwrap();
    write_raw(
        &base.path().join("rank-01"),
        "basic.log",
        &ndjson(&[event(EventType::EpochEnd, 0, 2.0)]),
    );
    let reader = LogReader::open(base.path()).unwrap();
    assert_eq!(reader.ranks(), vec![3]);
}
