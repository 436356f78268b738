//! `obs demo --framework candle`: the demo's pipeline fed by a real candle training loop.

use crate::{demo, obs, tempdir};

#[cfg(feature = "candle")]
mod with_candle {
    use observatory::core::{EventType, Value};
    use observatory::fingerprint::TrainingFingerprint;
    use observatory::storage::LogReader;

    use crate::{demo, tempdir};

    #[test]
    fn candle_demo_writes_every_file_and_records_candle() {
        let dir = tempdir();
        let (run_dir, run) = demo(dir.path(), 2, &["--framework", "candle"]);
        let reader = LogReader::open(&run_dir).unwrap();
        let (basic, stats) = reader.read_basic().unwrap().collect_with_stats();
        assert!(stats.is_clean(), "{stats:?}");
        assert_eq!(basic.first().map(|e| e.event_type), Some(EventType::TrainStart));
        assert_eq!(basic.last().map(|e| e.event_type), Some(EventType::TrainEnd));
        // 120 training rows in batches of 30: every batch recorded once.
        let debug: Vec<_> = reader.read_debug().unwrap().collect();
        let batch_ends = debug.iter().filter(|e| e.event_type == EventType::BatchEnd).count();
        assert_eq!(batch_ends, 8);
        let fp = TrainingFingerprint::load(run_dir.join("fingerprint.json")).unwrap();
        assert_eq!(
            fp.versions.frameworks.get("candle").map(String::as_str),
            Some(obs_candle::CANDLE_VERSION)
        );
        assert_eq!(fp.hyperparameters.get("device").and_then(Value::as_str), Some("cpu"));
        assert_eq!(fp.dataset.as_ref().map(|d| d.shape.clone()), Some(vec![120, 4]));
        assert!(run_dir.join("dashboard.html").is_file());
        assert!(run.stdout.contains("obs demo (candle "), "{}", run.stdout);
        assert!(run.stdout.contains("Epoch 1 result"), "{}", run.stdout);
    }

    #[test]
    fn candle_dying_relu_is_reported() {
        let dir = tempdir();
        let (_, run) = demo(dir.path(), 1, &["--framework", "candle", "--scenario", "dying-relu"]);
        assert!(
            run.stdout.contains("dead_relu: Possible dying ReLU in 'dense_0'"),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("health  e0 b0"), "{}", run.stdout);
    }
}

#[cfg(feature = "candle")]
#[test]
fn candle_refuses_scenarios_it_does_not_have() {
    let dir = tempdir();
    let run =
        obs(dir.path(), &["demo", "--framework", "candle", "--scenario", "vanishing"]).expect(2);
    assert!(run.stderr.contains("not available with --framework candle"), "{}", run.stderr);
}

#[cfg(not(feature = "candle"))]
#[test]
fn without_the_feature_candle_is_a_clear_error() {
    let dir = tempdir();
    let run = obs(dir.path(), &["demo", "--framework", "candle"]).expect(2);
    assert!(run.stderr.contains("--features candle"), "{}", run.stderr);
}

/// The default framework is unchanged.
#[test]
fn testkit_is_the_default_framework() {
    let dir = tempdir();
    let (_, run) = demo(dir.path(), 1, &["--framework", "testkit"]);
    assert!(run.stdout.starts_with("obs demo: scenario healthy"), "{}", run.stdout);
}
