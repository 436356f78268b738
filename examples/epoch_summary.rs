//! SEED section 3, "Log Summarization Per Epoch": summarise every epoch of a real training run
//! (obs-testkit's small network learning two spirals) and print the summaries.
//!
//! Run with `cargo run -p obs-examples --example epoch_summary`.

use obs_core::{EventType, LogLevel, TrainingLogger, Value};
use obs_summary::EpochSummarizer;
use obs_testkit::{BatchReport, EpochReport, RunConfig, Scenario, TrainObserver, train};

/// Records every batch's metrics and gradient norms, and prints each epoch's summary.
struct Summarize {
    summarizer: EpochSummarizer,
}

impl TrainObserver for Summarize {
    fn batch_end(&mut self, r: &BatchReport) {
        let grads: Vec<(&str, f64)> = r.grad_norms.iter().map(|(n, g)| (n.as_str(), *g)).collect();
        if let Err(e) = self.summarizer.record_batch(
            r.epoch,
            &[("loss", r.loss), ("accuracy", r.accuracy)],
            &grads,
        ) {
            eprintln!("not recorded: {e}");
        }
    }

    fn epoch_end(&mut self, r: &EpochReport) {
        match self.summarizer.finalize_epoch(r.epoch) {
            Ok(summary) => eprint!("{}", summary.format_text()),
            Err(e) => eprintln!("no summary: {e}"),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Each finalized summary also goes to the logger's backends as an `epoch_end` event.
    let logger = TrainingLogger::new(LogLevel::Basic)?;
    logger.on(EventType::EpochEnd, |e| {
        if let Some(mean) =
            e.data.path(&["summary", "metrics", "loss", "mean"]).and_then(Value::as_f64)
        {
            eprintln!("  (backend got the epoch {:?} summary: loss mean {mean:.6})", e.epoch);
        }
    })?;

    let mut config = RunConfig::for_scenario(Scenario::Healthy);
    config.epochs = 6;
    let mut observer = Summarize { summarizer: EpochSummarizer::new().with_logger(logger.clone()) };
    train(&config, &mut observer);
    logger.flush()?;

    // Programmatic access: the structured data of the last epoch, and every summary.
    let all = observer.summarizer.get_all_summaries();
    let last = all.last().ok_or("no epochs")?;
    let d = last.to_data();
    let get = |k: &str| d.path(&["metrics", "loss", k]).and_then(Value::as_f64);
    eprintln!("last epoch loss: mean {:?}, std {:?}", get("mean"), get("std"));
    eprintln!("{} epoch summaries; as JSON: {}", all.len(), serde_json::to_string(last)?);
    logger.close()?;
    Ok(())
}
