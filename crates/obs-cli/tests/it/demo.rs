//! `obs demo`: every file exists and parses.

use observatory::bridges::tensorboard::EventFileReader;
use observatory::bridges::wandb::{WandbRecord, read_run_file};
use observatory::core::{EventType, Severity, Value};
use observatory::fingerprint::TrainingFingerprint;
use observatory::storage::LogReader;

use crate::{demo, files_starting, tempdir};

/// Batches per epoch of the testkit scenarios: 512 training samples in batches of 32.
const BATCHES: usize = 16;

#[test]
fn demo_writes_logs_dashboard_fingerprint_and_bridge_files() {
    let dir = tempdir();
    let (run_dir, run) = demo(dir.path(), 2, &["--seed", "7"]);

    // Logs: every tier parses, nothing damaged; train and epoch boundaries in basic.log.
    let reader = LogReader::open(&run_dir).unwrap();
    let (basic, stats) = reader.read_basic().unwrap().collect_with_stats();
    assert!(stats.is_clean(), "{stats:?}");
    assert_eq!(basic.first().map(|e| e.event_type), Some(EventType::TrainStart));
    assert_eq!(basic.last().map(|e| e.event_type), Some(EventType::TrainEnd));
    assert_eq!(basic.iter().filter(|e| e.event_type == EventType::EpochEnd).count(), 2);
    let (health, stats) = reader.read_health().unwrap().collect_with_stats();
    assert!(stats.is_clean(), "{stats:?}");
    assert!(health.iter().all(|e| e.event_type == EventType::HealthCheck || e.severity.is_alert()));
    let (debug, stats) = reader.read_debug().unwrap().collect_with_stats();
    assert!(stats.is_clean(), "{stats:?}");
    // Every batch is recorded exactly once: by the adaptive logger when escalated, by the
    // demo's one-line record when calm.
    let batch_ends: Vec<(Option<u64>, Option<u64>)> = debug
        .iter()
        .filter(|e| e.event_type == EventType::BatchEnd)
        .map(|e| (e.epoch, e.batch))
        .collect();
    let expected: Vec<(Option<u64>, Option<u64>)> =
        (0..2).flat_map(|e| (0..BATCHES as u64).map(move |b| (Some(e), Some(b)))).collect();
    assert_eq!(batch_ends, expected);
    assert!(debug.iter().all(|e| {
        e.event_type != EventType::BatchEnd
            || e.data.path(&["metrics", "loss"]).and_then(Value::as_f64).is_some()
    }));

    // The fingerprint went with train_start and into fingerprint.json.
    let fp = TrainingFingerprint::load(run_dir.join("fingerprint.json")).unwrap();
    assert_eq!(fp.seeds.get("random_seed"), Some(&7));
    let dataset = fp.dataset.as_ref().expect("the training set is hashed");
    assert_eq!(
        (dataset.samples, dataset.shape.as_slice(), dataset.dtype.as_str()),
        (512, &[512, 2][..], "float32")
    );
    assert!(fp.git.is_none(), "the temporary directory is no repository");
    assert!(basic[0].data.get("fingerprint").is_some());

    // Dashboard: one self-contained page.
    let html = std::fs::read_to_string(run_dir.join("dashboard.html")).unwrap();
    assert!(html.len() > 1000 && html.contains("<html"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));

    // TensorBoard: one event file whose every record checks out.
    let tb = files_starting(&run_dir.join("tensorboard").join("healthy"), "events.out.tfevents.");
    assert_eq!(tb.len(), 1, "{tb:?}");
    let records: Vec<_> = EventFileReader::open(&tb[0]).unwrap().collect::<Result<_, _>>().unwrap();
    assert!(records.len() > 10, "{}", records.len());

    // W&B: an offline run whose log decodes, with history rows and a clean exit.
    let runs = files_starting(&run_dir.join("wandb"), "offline-run-");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let log = files_starting(&runs[0], "run-");
    let records = read_run_file(&log[0]).unwrap();
    assert!(records.iter().any(|r| matches!(r, WandbRecord::History { .. })));
    assert!(records.iter().any(|r| matches!(r, WandbRecord::Exit { exit_code: 0, .. })));

    // The printed report: the fingerprint box, each epoch's summary, counts and where files are.
    let out = &run.stdout;
    for needle in [
        "Training Fingerprint",
        "══ Epoch 0 Summary (16 batches) ══",
        "══ Epoch 1 Summary (16 batches) ══",
        "Events written (storage):",
        "Health warnings: ",
        "Adaptive logging: ",
        "dashboard.html",
        "tensorboard --logdir",
        "wandb sync",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let total = basic.len() + health.len() + debug.len();
    assert!(out.contains(&format!("total {total:>14} events")), "{total} events:\n{out}");
}

#[test]
fn running_twice_into_one_directory_keeps_both_runs() {
    let dir = tempdir();
    let (first, _) = demo(dir.path(), 1, &[]);
    let (second, _) = demo(dir.path(), 1, &[]);
    assert_ne!(first, second);
    for run in [&first, &second] {
        let basic = LogReader::open(run).unwrap().read_basic().unwrap().count();
        assert_eq!(basic, 4, "{}", run.display());
    }
    // Readers given the base directory read the newest run.
    assert_eq!(LogReader::open(dir.path().join("out")).unwrap().run_dir(), second);
}

#[test]
fn dying_relu_warnings_reach_health_log_and_stdout() {
    let dir = tempdir();
    let (run_dir, run) = demo(dir.path(), 1, &["--scenario", "dying-relu"]);
    let health: Vec<_> = LogReader::open(&run_dir).unwrap().read_health().unwrap().collect();
    let rule = |e: &observatory::core::Event| {
        e.data.get("rule_name").and_then(Value::as_str).map(str::to_owned)
    };
    let dead_relu = health.iter().find(|e| rule(e).as_deref() == Some("dead_relu"));
    let dead_relu = dead_relu.expect("a dead_relu warning in health.log");
    assert_eq!(dead_relu.severity, Severity::Warning);
    assert!(
        dead_relu
            .data
            .get("recommendations")
            .and_then(Value::as_list)
            .is_some_and(|r| !r.is_empty())
    );
    // One engine found it: the adaptive logger's, which reports it under the reference's
    // trigger name too, and only once.
    assert_eq!(dead_relu.data.get("source").and_then(Value::as_str), Some("adaptive"));
    assert_eq!(dead_relu.data.get("trigger").and_then(Value::as_str), Some("dead_neurons"));
    let per_layer = |layer: &str| {
        health
            .iter()
            .filter(|e| {
                rule(e).as_deref() == Some("dead_relu") && e.layer_name.as_deref() == Some(layer)
            })
            .count()
    };
    assert_eq!(per_layer(dead_relu.layer_name.as_deref().unwrap_or_default()), 1);
    assert!(run.stdout.contains("[WARNING]  health  e0 b"), "{}", run.stdout);
    assert!(run.stdout.contains("dead_relu: Possible dying ReLU"), "{}", run.stdout);
}
