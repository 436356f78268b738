//! JSON round trips, files, the obs-core `Data` form and attachment to a logger.

use std::sync::{Arc, Mutex};

use obs_core::{
    Backend, BackendError, Data, Event, EventType, LogLevel, TrainingLogger, Value, data,
};
use obs_fingerprint::{Dataset, FingerprintError, GpuProbe, TrainingFingerprint};

use crate::repo_with_commit;

fn full() -> TrainingFingerprint {
    let repo = repo_with_commit();
    std::fs::write(repo.path().join("train.py"), "dirty").unwrap();
    let x: Vec<f64> = (0..1000).map(|i| f64::from(i) / 7.0).collect();
    TrainingFingerprint::builder()
        .run_id("run-0001")
        .seed("random_seed", 42)
        .seed("numpy_seed", u64::MAX)
        .dataset(Dataset::slice(&x, &[100, 10]))
        .model_info(data! {
            "name" => "mlp",
            "layers" => vec![Value::from(data! { "units" => 64, "act" => "relu" }), Value::from(data! { "units" => 1 })],
        })
        .hyperparameters(data! {
            "lr" => 0.1 + 0.2, "batch_size" => 32, "decay" => 1e-300, "clip" => f64::INFINITY,
            "warmup" => f64::NAN, "schedule" => "cosine", "zlast" => true, "alpha_after_z" => Value::Null,
        })
        .framework("candle", "0.9.1")
        .framework("python", "3.11.7")
        .git_dir(repo.path())
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap()
}

#[test]
fn json_round_trip_is_exact() {
    let fp = full();
    let json = fp.to_json();
    let back = TrainingFingerprint::from_json(&json).unwrap();
    assert_eq!(back, fp);
    // Exact floats, order of hyperparameters kept, non-finite values as strings.
    assert_eq!(back.hyperparameters.get_f64("lr"), Some(0.1 + 0.2));
    assert_eq!(back.timestamp_unix.to_bits(), fp.timestamp_unix.to_bits());
    let keys: Vec<&str> = back.hyperparameters.iter().map(|(k, _)| k).collect();
    assert_eq!(keys[0], "lr");
    assert_eq!(keys.last(), Some(&"alpha_after_z"));
    assert!(json.contains("\"warmup\": \"NaN\""));
    assert!(json.contains("\"clip\": \"Infinity\""));
    // And twice over: the text is stable.
    assert_eq!(back.to_json(), json);
}

#[test]
fn json_has_every_section() {
    let fp = full();
    let v: serde_json::Value = serde_json::from_str(&fp.to_json()).unwrap();
    for key in [
        "schema_version",
        "run_id",
        "timestamp_utc",
        "timestamp_unix",
        "seeds",
        "dataset",
        "versions",
        "hardware",
        "os",
        "model",
        "hyperparameters",
        "git",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["dataset"]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(v["dataset"]["layout"], "tree-v2");
    assert_eq!(v["model"]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(v["versions"]["observatory"], env!("CARGO_PKG_VERSION"));
    assert!(
        v["versions"]["rustc"].as_str().unwrap().starts_with("rustc "),
        "{}",
        v["versions"]["rustc"]
    );
    assert_eq!(v["git"]["dirty"], true);
    let ts = v["timestamp_utc"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
}

#[test]
fn data_round_trip_keeps_order_and_values() {
    let fp = full();
    let d = fp.to_data();
    let keys: Vec<&str> = d.iter().map(|(k, _)| k).collect();
    assert_eq!(&keys[..3], ["schema_version", "run_id", "timestamp_utc"]);
    assert_eq!(d.path(&["seeds", "numpy_seed"]), Some(&Value::UInt(u64::MAX)));
    assert_eq!(TrainingFingerprint::from_data(&d).unwrap(), fp);
    assert!(matches!(
        TrainingFingerprint::from_data(&data! { "x" => 1 }),
        Err(FingerprintError::Json { .. })
    ));
}

#[test]
fn save_and_load() {
    let fp = full();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fingerprint.json");
    fp.save(&path).unwrap();
    assert_eq!(TrainingFingerprint::load(&path).unwrap(), fp);

    let missing = dir.path().join("nope.json");
    let err = TrainingFingerprint::load(&missing).unwrap_err();
    assert!(matches!(err, FingerprintError::Load { .. }));
    assert!(err.to_string().contains("nope.json"), "{err}");

    std::fs::write(&path, "{\"run_id\": 3").unwrap();
    let err = TrainingFingerprint::load(&path).unwrap_err();
    assert!(
        matches!(&err, FingerprintError::Json { path: Some(p), .. } if p.ends_with("fingerprint.json"))
    );
    assert!(err.to_string().contains("fingerprint.json"), "{err}");

    let err = fp.save(dir.path().join("no-dir").join("f.json")).unwrap_err();
    assert!(matches!(err, FingerprintError::Save { .. }));
    assert!(TrainingFingerprint::from_json("[]").is_err());
}

#[derive(Debug)]
struct Collect(Arc<Mutex<Vec<Event>>>);

impl Backend for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

#[test]
fn emit_train_start_attaches_the_fingerprint() {
    let fp = full();
    let events = Arc::new(Mutex::new(Vec::new()));
    let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
    logger.add_backend(Collect(events.clone())).unwrap();
    fp.emit_train_start(&logger, 20);
    logger.close().unwrap();
    let events = events.lock().unwrap();
    let start = events.iter().find(|e| e.event_type == EventType::TrainStart).expect("train_start");
    assert_eq!(start.data.get("total_epochs").and_then(Value::as_u64), Some(20));
    assert_eq!(start.data.path(&["model_info", "name"]).and_then(Value::as_str), Some("mlp"));
    let attached = start.data.get("fingerprint").and_then(Value::as_map).expect("fingerprint map");
    assert_eq!(TrainingFingerprint::from_data(attached).unwrap(), fp);

    // What obs-storage writes to fingerprint.json (the map's JSON) loads back as well.
    let line = start.to_ndjson();
    let parsed = Event::from_ndjson(&line).unwrap();
    let map: &Data = parsed.data.get("fingerprint").and_then(Value::as_map).unwrap();
    let text = serde_json::to_string_pretty(map).unwrap();
    assert_eq!(TrainingFingerprint::from_json(&text).unwrap(), fp);
}

#[test]
fn a_record_from_before_hash_layouts_loads_and_the_diff_says_why_its_hash_differs() {
    let fp = full();
    let mut v: serde_json::Value = serde_json::from_str(&fp.to_json()).unwrap();
    let dataset = v["dataset"].as_object_mut().unwrap();
    dataset.remove("layout");
    dataset.insert("sha256".to_owned(), serde_json::Value::from("0".repeat(64)));
    let old = TrainingFingerprint::from_json(&v.to_string()).unwrap();
    assert_eq!(old.dataset.as_ref().unwrap().layout, None);
    let diff = old.diff(&fp);
    let layout = diff.get("dataset.layout").expect("the layout is named in the diff");
    assert_eq!((layout.left.as_str(), layout.right.as_str()), ("(absent)", "tree-v2"));
    assert!(diff.get("dataset.sha256").is_some());
    assert!(!old.to_json().contains("layout"), "an absent layout stays absent");
}
