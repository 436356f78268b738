//! Tiered storage, as in SEED section 4: three NDJSON files (`basic.log`, `health.log`,
//! `debug.log`), a summary that agrees with the disk, and reading the logs back.
//!
//! Run with `cargo run -p obs-examples --example tiered_storage [-- <log dir>]`. Without an
//! argument the logs go to a fresh directory under the system's temp dir. Run it twice with the
//! same directory to see the refusal to mix runs; `OpenMode::RunDir` avoids it.

use std::path::PathBuf;

use obs_core::{Activation, LogLevel, Severity, TensorView, TrainingLogger, data};
use obs_storage::{LogReader, OpenMode, StorageConfig, StorageError, TieredStorage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base_dir = std::env::args_os().nth(1).map_or_else(
        || {
            std::env::temp_dir()
                .join(format!("obs-tiered-{}", std::process::id()))
                .join("training_logs")
        },
        PathBuf::from,
    );

    // storage = TieredStorage(base_dir=..., write_debug=True, buffer_size=50)
    let config = StorageConfig::new(&base_dir).write_debug(true).buffer_size(50);
    let storage = match TieredStorage::with_config(config.clone()) {
        Ok(s) => s,
        Err(e @ StorageError::ExistingLogs { .. }) => {
            eprintln!("{e}\n-> writing into a fresh run directory instead");
            TieredStorage::with_config(config.mode(OpenMode::RunDir))?
        }
        Err(e) => return Err(e.into()),
    };
    // The handle stays usable after the logger's bus thread takes the storage.
    let handle = storage.handle();

    let logger = TrainingLogger::new(LogLevel::Expert)?;
    logger.add_backend(storage)?;

    // ... train as normal ...
    let epochs = 3u64;
    logger.on_train_start_with(
        epochs,
        data! { "name" => "toy", "layers" => 2 },
        data! { "fingerprint" => data! { "random_seed" => 42, "hyperparameters" => data! { "lr" => 0.01 } } },
    );
    for epoch in 0..epochs {
        logger.on_epoch_start(epoch);
        for batch in 0..8u64 {
            logger.on_batch_start(batch);
            let acts: Vec<f32> =
                (0..64).map(|i| ((i * 7 + batch) % 11) as f32 / 10.0 - 0.3).collect();
            logger.on_layer_forward(
                0,
                "dense_0",
                TensorView::new(&acts, &[8, 8])?,
                Activation::Relu,
            )?;
            logger.on_gradient_computed("dense_0", 0.05 / (1.0 + batch as f64));
            let loss = 1.0 / (1.0 + (epoch * 8 + batch) as f64);
            logger.on_batch_end(batch, data! { "loss" => loss });
        }
        let (train_loss, val_loss) = (0.5 / (1.0 + epoch as f64), 0.5 + 0.2 * epoch as f64);
        if val_loss / train_loss > 1.3 {
            logger.on_health_check(
                Severity::Warning,
                "Possible overfitting",
                None,
                data! { "rule_name" => "overfitting", "ratio" => val_loss / train_loss },
            );
        }
        logger.on_epoch_end(epoch, data! { "loss" => train_loss, "val_loss" => val_loss });
    }
    logger.on_train_end(data! {});

    logger.flush()?; // final flush
    let report = logger.close()?; // cleanup (also closes the storage)
    assert!(report.failures.is_empty(), "{report:?}");

    // Check what was written.
    eprintln!("{}", serde_json::to_string_pretty(&handle.summary())?);

    // Reading logs: streaming iterators, with counts of anything skipped.
    let reader = LogReader::open(handle.run_dir())?;
    let basic_events: Vec<_> = reader.read_basic()?.collect();
    let mut health = reader.read_health()?;
    for warning in health.by_ref() {
        eprintln!("health: [{}] {}", warning.severity, warning.message);
    }
    eprintln!("{} basic events, health stats {:?}", basic_events.len(), health.stats());
    eprintln!("fingerprint.json: {}", reader.fingerprint()?.unwrap_or_default());

    // Or from the command line:
    let dir = handle.run_dir().display();
    eprintln!("try: grep overfitting {dir}/health.log");
    eprintln!("     grep dense_0 {dir}/debug.log");
    Ok(())
}
