//! A process logging at full speed is killed with SIGKILL: every complete line on disk parses,
//! and every event flushed before the kill is there.
//!
//! The test re-runs its own binary as the child: `crash_child_entry` does the logging when
//! `OBS_STORAGE_CRASH_DIR` is set and does nothing otherwise.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use obs_core::{EventType, LogLevel, Severity, TrainingLogger, data};
use obs_storage::{LogReader, TieredStorage};

const DIR_VAR: &str = "OBS_STORAGE_CRASH_DIR";
const FLUSH_EVERY: u64 = 200;

/// The child: logs batches as fast as it can, flushing every `FLUSH_EVERY` events and then
/// printing how many events are now guaranteed on disk.
#[test]
#[allow(clippy::print_stdout, reason = "the parent reads the flushed count from stdout")]
fn crash_child_entry() {
    let Some(dir) = std::env::var_os(DIR_VAR) else { return };
    let logger = TrainingLogger::new(LogLevel::Detailed).unwrap();
    logger.add_backend(TieredStorage::open(dir).unwrap()).unwrap();
    logger.on_train_start(1_000_000, data! { "name" => "crash" });
    logger.on_epoch_start(0);
    for seq in 0u64.. {
        logger.on_batch_end(seq, data! { "seq" => seq, "loss" => 1.0 / (1.0 + seq as f64) });
        if seq % 1000 == 999 {
            logger.on_health_check(Severity::Warning, "tick", None, data! { "seq" => seq });
        }
        if (seq + 1) % FLUSH_EVERY == 0 {
            logger.flush().unwrap();
            println!("flushed {}", seq + 1);
        }
    }
}

#[test]
fn sigkill_loses_only_unflushed_events_and_leaves_valid_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash::crash_child_entry", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut flushed = 0u64;
    let mut line = String::new();
    // Kill it in the middle of a burst, well after it got going.
    while flushed < 20 * FLUSH_EVERY {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child stopped early");
        if let Some(n) = line.trim().strip_prefix("flushed ") {
            flushed = n.parse().unwrap();
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let reader = LogReader::open(dir.path()).unwrap();
    let (batches, stats) = reader.read_debug().unwrap().collect_with_stats();
    assert!(stats.is_clean(), "every complete line parses: {stats:?}");
    assert!(batches.len() as u64 >= flushed, "{} on disk, {flushed} flushed", batches.len());
    for (i, e) in batches.iter().enumerate() {
        assert_eq!(e.event_type, EventType::BatchEnd);
        assert_eq!(
            e.data.path(&["metrics", "seq"]).and_then(|v| v.as_u64()),
            Some(i as u64),
            "in order, none lost"
        );
    }
    let (health, stats) = reader.read_health().unwrap().collect_with_stats();
    assert!(stats.is_clean(), "{stats:?}");
    assert!(health.len() as u64 >= flushed / 1000);
    let (basic, stats) = reader.read_basic().unwrap().collect_with_stats();
    assert!(stats.is_clean(), "{stats:?}");
    assert_eq!(basic.len(), 2, "train_start and epoch_start were flushed");
}
