//! Property tests: the reader on arbitrary bytes, and the merge order.

use obs_core::{Event, EventType, Tier};
use obs_storage::{FollowFrom, LogReader, ReaderConfig};
use proptest::prelude::*;

use crate::support::{event, ndjson};

/// A piece of a log file: a valid event line, garbage, or a long run of one byte.
#[derive(Clone, Debug)]
enum Piece {
    Event(u64),
    Bytes(Vec<u8>),
    Run(u8, usize),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        (0u64..1000).prop_map(Piece::Event),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Piece::Bytes),
        (any::<u8>(), 0usize..3000).prop_map(|(b, n)| Piece::Run(b, n)),
    ]
}

fn render(pieces: &[Piece]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        match p {
            Piece::Event(i) => out.extend(ndjson(&[event(EventType::BatchEnd, *i, *i as f64)])),
            Piece::Bytes(b) => out.extend_from_slice(b),
            Piece::Run(b, n) => out.extend(std::iter::repeat_n(*b, *n)),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the bytes, reading never panics, accounts for every complete line, and a
    /// follower polling in small steps sees exactly the events a one-shot read sees.
    #[test]
    fn any_bytes_read_without_panic_and_consistently(pieces in proptest::collection::vec(piece(), 0..24)) {
        let bytes = render(&pieces);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("debug.log"), &bytes).unwrap();
        let strict = LogReader::open(dir.path()).unwrap();
        // Refusal is allowed (a foreign first line); a panic is not.
        let _ = strict.read_debug().map(Iterator::count);

        let config = ReaderConfig::default().accept_foreign(true).max_line_bytes(1024);
        let reader = LogReader::open_with(dir.path(), config).unwrap();
        let (events, stats) = reader.read_debug().unwrap().collect_with_stats();
        let complete_lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        prop_assert_eq!(stats.events + stats.blank_lines + stats.skipped(), complete_lines);
        let tail = bytes.len() - bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        prop_assert_eq!(stats.partial_tail_bytes, tail as u64);
        prop_assert!(stats.bad_lines.len() <= obs_storage::MAX_REPORTED_BAD_LINES);

        let mut follower = reader.follow(Tier::Debug, FollowFrom::Start).unwrap();
        let mut followed = Vec::new();
        while follower.poll(&mut followed, 3).unwrap() > 0 {}
        prop_assert_eq!(&followed, &events);
        prop_assert_eq!(follower.stats().skipped(), stats.skipped());
    }

    /// Valid lines survive any garbage between them (when the garbage ends with a newline).
    #[test]
    fn every_valid_line_between_garbage_lines_is_read(
        ids in proptest::collection::vec(0u64..1000, 1..20),
        junk in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..20),
    ) {
        let mut bytes = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let mut j = junk[i % junk.len()].clone();
            j.retain(|&b| b != b'\n');
            bytes.extend_from_slice(&j);
            bytes.push(b'\n');
            bytes.extend(ndjson(&[event(EventType::BatchEnd, *id, 0.0)]));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("debug.log"), &bytes).unwrap();
        let reader = LogReader::open_with(dir.path(), ReaderConfig::default().accept_foreign(true)).unwrap();
        let epochs: Vec<u64> = reader.read_debug().unwrap().filter_map(|e| e.epoch).collect();
        prop_assert_eq!(epochs, ids);
    }

    /// The merge is sorted by timestamp when each file is, and keeps each file's order.
    #[test]
    fn merge_is_sorted_and_stable(
        times in proptest::collection::vec(proptest::collection::vec(0u32..50, 0..30), 3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let kinds = [EventType::EpochEnd, EventType::HealthCheck, EventType::BatchEnd];
        let names = ["basic.log", "health.log", "debug.log"];
        for (t, (kind, name)) in kinds.iter().zip(names).enumerate() {
            let mut ts = times[t].clone();
            ts.sort_unstable();
            let events: Vec<Event> = ts.iter().enumerate().map(|(i, &s)| event(*kind, i as u64, f64::from(s))).collect();
            std::fs::write(dir.path().join(name), ndjson(&events)).unwrap();
        }
        let merged: Vec<Event> = LogReader::open(dir.path()).unwrap().read_all().unwrap().collect();
        prop_assert_eq!(merged.len(), times.iter().map(Vec::len).sum::<usize>());
        for w in merged.windows(2) {
            prop_assert!(w[0].timestamp <= w[1].timestamp);
            if w[0].timestamp == w[1].timestamp && w[0].event_type == w[1].event_type {
                prop_assert!(w[0].epoch < w[1].epoch, "file order kept");
            }
        }
    }
}
