//! The smallest end-to-end use of the logger: a backend that prints NDJSON to stderr.
//!
//! Run with `cargo run -p obs-examples --example quickstart`.

use obs_core::{
    Activation, Backend, BackendError, Event, LogLevel, TensorView, TrainingLogger, data,
};

/// Prints every event as its NDJSON line.
#[derive(Debug)]
struct Stderr;

impl Backend for Stderr {
    fn name(&self) -> &str {
        "stderr"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        for e in events {
            eprintln!("{}", e.to_ndjson());
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let logger = TrainingLogger::new(LogLevel::Expert)?;
    logger.add_backend(Stderr)?;
    logger.on_train_start(2, data! { "name" => "toy", "layers" => 1 });
    for epoch in 0..2u64 {
        logger.on_epoch_start(epoch);
        for batch in 0..3u64 {
            logger.on_batch_start(batch);
            let acts: Vec<f32> = (0..8).map(|i| ((i + batch) % 3) as f32 * 0.5).collect();
            logger.on_layer_forward(
                0,
                "dense_0",
                TensorView::new(&acts, &[2, 4])?,
                Activation::Relu,
            )?;
            logger
                .on_batch_end(batch, data! { "loss" => 1.0 / (1.0 + (epoch * 3 + batch) as f64) });
        }
        logger.on_epoch_end(epoch, data! { "loss" => 0.5 / (1.0 + epoch as f64) });
    }
    logger.on_train_end(data! {});
    let report = logger.close()?;
    eprintln!("{:?}", logger.summary());
    assert!(report.failures.is_empty());
    Ok(())
}
