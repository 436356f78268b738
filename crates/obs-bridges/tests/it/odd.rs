//! Odd input never panics or corrupts a file: every event type with odd payloads, stamps and
//! timestamps goes through both bridges, and both files read back cleanly.

use obs_bridges::tensorboard::EventFileReader;
use obs_bridges::wandb::{WandbRecord, read_run_file};
use obs_bridges::{TensorBoardBridge, WandbBridge};
use obs_core::{Data, Event, EventType, LogLevel, Severity, Value, data};

fn payloads() -> Vec<Data> {
    let long = "é/\"\\\n\t\u{0}".repeat(2000);
    vec![
        Data::new(),
        data! { "metrics" => Value::Null },
        data! { "metrics" => vec![1.0, 2.0] },
        data! { "metrics" => "loss" },
        data! { "metrics" => data! {} },
        data! { "metrics" => data! {
            "loss" => f64::NAN, "acc" => f64::INFINITY, "neg" => f64::NEG_INFINITY,
            "big" => u64::MAX, "flag" => true, "name" => long.as_str(),
            "deep" => data! { "a" => data! { "b" => data! { "c" => -0.0 } } },
        } },
        data! { "grad_norm" => f64::NAN, "duration_s" => "slow", "total_epochs" => -5 },
        data! { "mean" => 1e308, "std" => -1e-308, "l2_norm" => Value::Null, "zeros_pct" => "x" },
        data! { "histogram" => data! { "edges" => vec![0.0, 1.0], "counts" => vec![f64::NAN] } },
        data! { "histogram" => data! { "edges" => vec![0.0, 1e-300, 1e300], "counts" => vec![0.0, 1e18] } },
        data! { "histogram" => "not a map" },
        data! { "rule_name" => long.as_str(), "diagnosis" => vec![1, 2], "recommendations" => data! {} },
        data! { "trigger" => "a/b", "recommendations" => vec![Value::Null, Value::from(3)] },
        data! { "hyperparameters" => "not a map", "fingerprint" => data! { "x" => f64::NAN } },
    ]
}

/// Writes every event type with every odd payload into both bridges under `dir`, closes them
/// and returns them (closed) for inspection.
pub(crate) fn write_odd_run(dir: &std::path::Path) -> (TensorBoardBridge, WandbBridge) {
    let mut tb = TensorBoardBridge::builder(dir).run_name("odd/../name").create().unwrap();
    let mut wb = WandbBridge::builder("odd").run_name("").dir(dir).create().unwrap();
    let stamps = [
        (None, None),
        (Some(0), Some(0)),
        (Some(u64::MAX), Some(u64::MAX)),
        (Some(3), None),
        (None, Some(7)),
    ];
    let times = [f64::NAN, -1.0, 0.0, 1e300, f64::INFINITY, 1_740_000_000.0];
    let mut n = 0u64;
    for (i, data) in payloads().into_iter().enumerate() {
        for t in EventType::ALL {
            let (epoch, batch) = stamps[(i + n as usize) % stamps.len()];
            let mut e = Event::new(t, LogLevel::Debug)
                .at(epoch, batch)
                .severity(Severity::ALL[n as usize % Severity::ALL.len()])
                .message("odd \u{1F4A5} message\nwith lines")
                .data(data.clone());
            e.timestamp = times[n as usize % times.len()];
            if n.is_multiple_of(3) {
                e = e.layer(if n.is_multiple_of(2) { "" } else { "a/b c" }, Some(n));
            }
            tb.write_event(&e).unwrap();
            wb.write_event(&e).unwrap();
            n += 1;
        }
    }
    tb.close().unwrap();
    wb.close().unwrap();
    (tb, wb)
}

#[test]
fn odd_events_are_written_and_read_back_without_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (tb, wb) = write_odd_run(dir.path());
    assert!(tb.path().starts_with(dir.path()));
    let read: Vec<_> = EventFileReader::open(tb.path()).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(read.len() as u64, tb.stats().records);
    let records = read_run_file(wb.path()).unwrap();
    assert_eq!(records.len() as u64, wb.stats().records);
    assert!(matches!(records[0], WandbRecord::Run { .. }));
    assert!(matches!(records.last(), Some(WandbRecord::Exit { exit_code: 0, .. })));
    assert!(tb.stats().skipped > 0 && wb.stats().skipped > 0);
}
