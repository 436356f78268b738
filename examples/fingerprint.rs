//! The training fingerprint, as in SEED section 6: capture everything needed to reproduce a
//! run, print the boxed block, save it to JSON, load it back, attach it to the logger's
//! `train_start` event, and diff it against a run that changed a seed and a hyperparameter.
//!
//! Run with `cargo run -p obs-examples --example fingerprint`.

use obs_core::{LogLevel, TrainingLogger, data};
use obs_fingerprint::{Dataset, TrainingFingerprint};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A stand-in for X_train: 10 000 samples of 784 features, borrowed, never copied.
    let x_train: Vec<f32> =
        (0..10_000u64 * 784).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();

    let fingerprint = TrainingFingerprint::builder()
        .model_info(data! {
            "name" => "my_model",
            "layers" => vec![
                data! { "type" => "dense", "units" => 64, "activation" => "relu" },
                data! { "type" => "dense", "units" => 32, "activation" => "tanh" },
                data! { "type" => "dense", "units" => 1, "activation" => "sigmoid" },
            ],
        })
        .hyperparameters(data! { "lr" => 0.01, "batch_size" => 32, "epochs" => 50 })
        .dataset(Dataset::slice(&x_train, &[10_000, 784]))
        .seed("random_seed", 42)
        .framework("candle", "0.9.1")
        .capture()?;

    // Pretty-print.
    eprintln!("{}", fingerprint.format_text());

    // Save to JSON and load it back: the round trip is exact.
    let dir = std::env::temp_dir().join(format!("obs-fingerprint-example-{}", fingerprint.run_id));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("fingerprint.json");
    fingerprint.save(&path)?;
    let loaded = TrainingFingerprint::load(&path)?;
    assert_eq!(loaded, fingerprint);
    eprintln!("saved and reloaded {}", path.display());

    // Attach it to the run: obs-storage writes `data.fingerprint` of train_start to
    // fingerprint.json in the run directory.
    let logger = TrainingLogger::new(LogLevel::Basic)?;
    fingerprint.emit_train_start(&logger, 50);
    logger.close()?;

    // Why doesn't this other run reproduce the first one?
    let other = TrainingFingerprint::builder()
        .model_info(fingerprint.model.as_ref().map(|m| m.info.clone()).unwrap_or_default())
        .hyperparameters(data! { "lr" => 0.02, "batch_size" => 32, "epochs" => 50 })
        .dataset(Dataset::slice(&x_train, &[10_000, 784]))
        .seed("random_seed", 7)
        .framework("candle", "0.9.1")
        .capture()?;
    eprintln!("{}", fingerprint.diff(&other));

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
