//! The from-logs renderer over real stored runs.

use std::fs;

use obs_core::{LogLevel, TrainingLogger};
use obs_dashboard::{Dashboard, DashboardConfig, DashboardError, DashboardExporter, render_logs};
use obs_storage::TieredStorage;

use crate::support::*;

#[test]
fn logs_render_the_same_charts_as_the_live_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let live = dir.path().join("live.html");
    let logger = TrainingLogger::new(LogLevel::Debug).unwrap();
    logger.add_backend(TieredStorage::open(&logs).unwrap()).unwrap();
    logger.add_backend(DashboardExporter::new(&live)).unwrap();
    for e in hostile_run(3, 20) {
        logger.emit(e);
    }
    logger.close().unwrap();

    let out = dir.path().join("from-logs.html");
    let read = render_logs(&logs, &out, DashboardConfig::default()).unwrap();
    assert!(read.stats.is_clean(), "{:?}", read.stats);
    assert_eq!(read.dashboard.events(), hostile_run(3, 20).len() as u64);
    let from_logs = fs::read_to_string(&out).unwrap();
    let from_bus = fs::read_to_string(&live).unwrap();
    assert_eq!(page_data(&from_logs), page_data(&from_bus), "same data from both paths");
    assert!(from_logs.contains("log directory"));
    assert!(from_logs.contains("<h3>Fingerprint</h3>"));
}

#[test]
fn a_base_directory_reads_its_newest_run_and_damage_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run-20260101-000000-1");
    fs::create_dir_all(&run).unwrap();
    let mut basic = String::new();
    for e in hostile_run(2, 3).iter().filter(|e| e.tier() == obs_core::Tier::Basic) {
        basic.push_str(&e.to_ndjson());
        basic.push('\n');
    }
    basic.push_str("{not json at all}\n");
    basic.push_str("{\"event_type\":\"epoch_end\",\"level\":\"BA"); // torn last line
    fs::write(run.join("basic.log"), basic).unwrap();
    fs::write(run.join("fingerprint.json"), r#"{"run_id":"from-file","seed":7}"#).unwrap();

    let read = Dashboard::from_logs(dir.path(), DashboardConfig::default()).unwrap();
    assert_eq!(read.run_dir, run);
    assert_eq!(read.stats.corrupt_lines, 1);
    assert!(read.stats.partial_tail_bytes > 0);
    let html = read.dashboard.render().unwrap();
    assert!(html.contains("skipped log lines"));
    assert!(html.contains("1 corrupt"));
    // train_start carries its own fingerprint here; it wins over the file.
    assert!(html.contains("abc123") && !html.contains("from-file"));
    assert!(html.contains("No train_end in logs") || html.contains("Complete"));
}

#[test]
fn the_fingerprint_file_is_used_when_train_start_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let e = epoch_end(0, obs_core::data! { "loss" => 0.5 }, 1.0);
    fs::write(dir.path().join("basic.log"), format!("{}\n", e.to_ndjson())).unwrap();
    fs::write(dir.path().join("fingerprint.json"), r#"{"run_id":"from-file","seed":7}"#).unwrap();
    let html = Dashboard::from_logs(dir.path(), DashboardConfig::default())
        .unwrap()
        .dashboard
        .render()
        .unwrap();
    assert!(html.contains("<th>run_id</th><td>from-file</td>"));
    assert!(html.contains("No train_end in logs"));

    fs::write(dir.path().join("fingerprint.json"), "{broken").unwrap();
    let html = Dashboard::from_logs(dir.path(), DashboardConfig::default())
        .unwrap()
        .dashboard
        .render()
        .unwrap();
    assert!(html.contains("fingerprint.json") && html.contains("unreadable"));
}

#[test]
fn a_directory_without_logs_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        render_logs(dir.path(), dir.path().join("x.html"), DashboardConfig::default()).unwrap_err();
    assert!(matches!(err, DashboardError::Logs(_)), "{err}");
    let err =
        Dashboard::from_logs(dir.path().join("missing"), DashboardConfig::default()).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(!dir.path().join("x.html").exists());
}
