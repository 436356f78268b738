//! `obs demo`: a real training run observed end to end.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use obs_testkit::{Dataset, Optimizer, RunConfig, Scenario};
use observatory::adaptive::{AdaptiveLogger, AnomalyConfig, AnomalySummary};
use observatory::bridges::{MlflowBridge, TensorBoardBridge, WandbBridge};
use observatory::core::{Data, LogLevel, Tier, TrainingLogger, Value, data};
use observatory::dashboard::{DashboardConfig, DashboardExporter};
use observatory::fingerprint::{Dataset as DatasetInput, TrainingFingerprint};
use observatory::health::HealthSummary;
use observatory::storage::{OpenMode, StorageConfig, StorageSummary, TieredStorage};
use observatory::summary::EpochSummarizer;

use crate::error::{CliError, Context};
use crate::output::{bytes, num, say};
use crate::pipeline::Pipeline;
use crate::progress;

#[cfg(feature = "candle")]
#[path = "candle_demo.rs"]
mod candle_demo;

/// The W&B project the demo's offline run belongs to.
const WANDB_PROJECT: &str = "observatory-demo";

/// Which behaviour the demo network shows (obs-testkit's scenarios).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScenarioArg {
    /// ReLU network learning two spirals: no warnings expected.
    Healthy,
    /// Tanh and sigmoid hidden layers, healthy.
    HealthyTanh,
    /// Learning rate too high: most ReLU units die.
    DyingRelu,
    /// Huge initial weights: gradient norms far above 100.
    Exploding,
    /// Deep sigmoid stack: first layers' gradients below 1e-7.
    Vanishing,
    /// Tiny training set: validation loss climbs above training loss.
    Overfit,
    /// Linear layers with a large learning rate: the loss becomes NaN.
    Nan,
    /// Learning rate 0: weights never move.
    Stagnant,
    /// One corrupted batch whose loss jumps.
    LossSpike,
}

impl ScenarioArg {
    fn scenario(self) -> Scenario {
        match self {
            ScenarioArg::Healthy => Scenario::Healthy,
            ScenarioArg::HealthyTanh => Scenario::HealthyTanh,
            ScenarioArg::DyingRelu => Scenario::DyingRelu,
            ScenarioArg::Exploding => Scenario::Exploding,
            ScenarioArg::Vanishing => Scenario::Vanishing,
            ScenarioArg::Overfit => Scenario::Overfit,
            ScenarioArg::Nan => Scenario::NanDivergence,
            ScenarioArg::Stagnant => Scenario::Stagnant,
            ScenarioArg::LossSpike => Scenario::LossSpike,
        }
    }
}

/// Which framework trains the demo network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FrameworkArg {
    /// obs-testkit's own MLP (every scenario).
    Testkit,
    /// A candle-nn MLP on Fisher's Iris data, observed through obs-candle (scenarios healthy,
    /// dying-relu and nan; needs `obs` built with `--features candle`).
    Candle,
}

/// Arguments of `obs demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// The behaviour to show.
    #[arg(long, value_enum, default_value_t = ScenarioArg::Healthy)]
    scenario: ScenarioArg,
    /// Where to write; every run gets a fresh `run-YYYYMMDD-HHMMSS` directory inside.
    #[arg(long, default_value = "observatory-demo")]
    out: PathBuf,
    /// Epochs to train (default: the scenario's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    epochs: Option<u64>,
    /// Seed of the data, the initial weights and the shuffling (default 42).
    #[arg(long)]
    seed: Option<u64>,
    /// The framework that trains the network.
    #[arg(long, value_enum, default_value_t = FrameworkArg::Testkit)]
    framework: FrameworkArg,
    /// Also log the run to this MLflow tracking server (`http://host:port`; default: none,
    /// `MLFLOW_TRACKING_URI` is not read here). The experiment is `observatory-demo`.
    #[arg(long, value_name = "URI")]
    mlflow: Option<String>,
}

/// An `f32` setting as the `f64` a person would write (`0.2`, not `0.20000000298023224`).
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// `relu 64 -> relu 64 -> linear 2`.
fn architecture(config: &RunConfig) -> String {
    let mut parts: Vec<String> =
        config.hidden.iter().map(|(units, act)| format!("{} {units}", act.as_str())).collect();
    parts.push(format!("linear {}", config.dataset.classes()));
    parts.join(" -> ")
}

fn dataset_name(dataset: &Dataset) -> String {
    match *dataset {
        Dataset::Spirals { classes, turns, noise } => {
            format!("spirals (classes {classes}, turns {turns}, noise {noise})")
        }
        Dataset::Blobs { classes, spread } => format!("blobs (classes {classes}, spread {spread})"),
        Dataset::Iris | Dataset::Wine => dataset.name().to_owned(),
    }
}

fn optimizer(config: &RunConfig) -> Data {
    match config.optimizer {
        Optimizer::Sgd { momentum } => data! { "name" => "sgd", "momentum" => decimal(momentum) },
        Optimizer::Adam { beta1, beta2, eps } => {
            data! {
                "name" => "adam",
                "beta1" => decimal(beta1),
                "beta2" => decimal(beta2),
                "eps" => decimal(eps),
            }
        }
    }
}

/// The model description recorded in `train_start` and hashed into the fingerprint.
fn model_info(config: &RunConfig) -> Data {
    let mut layers: Vec<Value> = config
        .hidden
        .iter()
        .enumerate()
        .map(|(i, (units, act))| {
            data! { "name" => format!("dense_{i}"), "units" => *units, "activation" => act.as_str() }
                .into()
        })
        .collect();
    layers.push(
        data! {
            "name" => format!("dense_{}", config.hidden.len()),
            "units" => config.dataset.classes(),
            "activation" => "linear",
        }
        .into(),
    );
    data! {
        "name" => "obs-testkit mlp",
        "scenario" => config.scenario.name(),
        "inputs" => config.dataset.features(),
        "layers" => layers,
        "parameters" => config.parameter_count(),
    }
}

fn hyperparameters(config: &RunConfig) -> Data {
    data! {
        "optimizer" => optimizer(config),
        "learning_rate" => decimal(config.learning_rate),
        "batch_size" => config.batch_size,
        "epochs" => config.epochs,
        "init_scale" => decimal(config.init_scale),
        "bias_init" => decimal(config.bias_init),
        "train_samples" => config.train_samples,
        "val_samples" => config.val_samples,
        "dataset" => dataset_name(&config.dataset),
    }
}

/// Hashes the training samples (exactly those `train` will use) and captures the rest.
fn capture_fingerprint(config: &RunConfig) -> Result<TrainingFingerprint, CliError> {
    let (train_set, _) =
        obs_testkit::split(&config.dataset, config.train_samples, config.val_samples, config.seed);
    let shape = [train_set.len(), config.dataset.features()];
    let bar = progress::bytes((train_set.x.len() * 4) as u64, "hashing the training set");
    let on_progress = {
        let bar = bar.clone();
        move |p: observatory::fingerprint::HashProgress| {
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_hashed);
        }
    };
    let fp = TrainingFingerprint::builder()
        .seed("random_seed", config.seed)
        .dataset(DatasetInput::slice(&train_set.x, &shape))
        .on_progress(on_progress)
        .model_info(model_info(config))
        .hyperparameters(hyperparameters(config))
        .framework("obs-testkit", env!("CARGO_PKG_VERSION"))
        .capture()
        .context(|| "capturing the training fingerprint".to_owned());
    bar.finish_and_clear();
    fp
}

/// Where each output went.
#[derive(Debug)]
struct Outputs {
    run_dir: PathBuf,
    dashboard: PathBuf,
    tensorboard_dir: PathBuf,
    tensorboard_file: PathBuf,
    wandb_run: PathBuf,
    /// The tracking server and MLflow run id, with `--mlflow`.
    mlflow_run: Option<(String, String)>,
}

/// The base logger with every backend attached.
fn pipeline_logger(
    out: &Path,
    scenario: Scenario,
    config: &RunConfig,
    mlflow: Option<&str>,
) -> Result<(TrainingLogger, Outputs, observatory::storage::StorageHandle), CliError> {
    // A fresh run directory per run: running the demo twice into one `--out` never mixes
    // runs, and readers given `--out` pick the newest run.
    let storage = TieredStorage::with_config(StorageConfig::new(out).mode(OpenMode::RunDir))
        .context(|| format!("opening log storage in {}", out.display()))?;
    let run_dir = storage.run_dir().to_owned();
    let handle = storage.handle();

    let mut dash_config = DashboardConfig::default();
    dash_config.title = Some(format!("obs demo: {scenario}"));
    dash_config.live = true;
    let dashboard_path = run_dir.join("dashboard.html");
    let dashboard = DashboardExporter::with_config(&dashboard_path, dash_config);

    let tensorboard_dir = run_dir.join("tensorboard");
    let tensorboard = TensorBoardBridge::builder(&tensorboard_dir)
        .run_name(scenario.name())
        .create()
        .context(|| format!("creating TensorBoard files in {}", tensorboard_dir.display()))?;
    let tensorboard_file = tensorboard.path().to_owned();

    let wandb = WandbBridge::builder(WANDB_PROJECT)
        .run_name(format!("demo-{scenario}"))
        .config(hyperparameters(config))
        .tag(scenario.name())
        .dir(&run_dir)
        .create()
        .context(|| format!("creating the W&B offline run in {}", run_dir.display()))?;
    let wandb_run = wandb.run_dir().to_owned();

    let mlflow_uri = mlflow;
    let mlflow = match mlflow {
        Some(uri) => Some(
            MlflowBridge::builder(WANDB_PROJECT)
                .tracking_uri(uri)
                .run_name(format!("demo-{scenario}"))
                .tag("scenario", scenario.name())
                .storage_dir(&run_dir)
                .create()
                .context(|| format!("creating an MLflow run on {uri}"))?,
        ),
        None => None,
    };
    let mlflow_run =
        mlflow.as_ref().zip(mlflow_uri).map(|(b, uri)| (uri.to_owned(), b.run_id().to_owned()));

    let logger =
        TrainingLogger::new(LogLevel::Expert).context(|| "starting the logger".to_owned())?;
    let attach = |r: Result<(), observatory::core::BusError>| {
        r.context(|| "attaching a backend to the logger".to_owned())
    };
    attach(logger.add_backend(storage))?;
    attach(logger.add_backend(dashboard))?;
    attach(logger.add_backend(tensorboard))?;
    attach(logger.add_backend(wandb))?;
    if let Some(bridge) = mlflow {
        attach(logger.add_backend(bridge))?;
    }
    let outputs = Outputs {
        run_dir,
        dashboard: dashboard_path,
        tensorboard_dir,
        tensorboard_file,
        wandb_run,
        mlflow_run,
    };
    Ok((logger, outputs, handle))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn print_tiers(summary: &StorageSummary) {
    say!("Events written (storage):");
    for tier in Tier::ALL {
        let t = summary.tier(tier);
        say!(
            "  {:<11} {:>8} events {:>11}",
            format!("{}.log", tier.as_str()),
            t.events,
            bytes(t.size_bytes)
        );
    }
    let total_bytes = Tier::ALL.iter().map(|t| summary.tier(*t).size_bytes).sum();
    say!("  {:<11} {:>8} events {:>11}", "total", summary.total_events, bytes(total_bytes));
}

/// The run's warnings by rule and anomalies by trigger.
fn print_findings(health: &HealthSummary, anomalies: &AnomalySummary) {
    let rules: Vec<String> =
        health.by_rule.iter().map(|(rule, n)| format!("{} {n}", rule.as_str())).collect();
    say!(
        "Health warnings: {}{}; {} repeats suppressed",
        health.total_warnings,
        if rules.is_empty() { String::new() } else { format!(" ({})", rules.join(", ")) },
        health.suppressed
    );
    say!(
        "Adaptive logging: {} of {} batches recorded at EXPERT detail ({} escalations, {} sampled \
         batches of chronic findings)",
        anomalies.escalated_batches,
        anomalies.batches,
        anomalies.escalations,
        anomalies.sampled_batches
    );
}

/// Runs the demo.
pub(crate) fn run(args: &DemoArgs) -> Result<ExitCode, CliError> {
    if args.framework == FrameworkArg::Candle {
        #[cfg(feature = "candle")]
        return candle_demo::run(args);
        #[cfg(not(feature = "candle"))]
        return Err(CliError::new(
            "this `obs` was built without candle support: build it with `cargo run -p obs-cli \
             --features candle -- demo --framework candle`",
        ));
    }
    let scenario = args.scenario.scenario();
    let mut config = RunConfig::for_scenario(scenario);
    if let Some(epochs) = args.epochs {
        config.epochs = epochs;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    let started = Instant::now();

    let (logger, outputs, storage) =
        pipeline_logger(&args.out, scenario, &config, args.mlflow.as_deref())?;
    say!(
        "obs demo: scenario {scenario}, {} epochs, seed {}: {} ({} parameters), {} lr {}, batch {}",
        config.epochs,
        config.seed,
        architecture(&config),
        config.parameter_count(),
        config.optimizer.name(),
        config.learning_rate,
        config.batch_size
    );
    say!("Run directory: {}", outputs.run_dir.display());
    say!();

    let fingerprint = capture_fingerprint(&config)?;
    say!("{}", fingerprint.format_text().trim_end());
    say!();

    let adaptive = AdaptiveLogger::new(logger.clone(), AnomalyConfig::default())
        .context(|| "configuring the health rules and the adaptive logger".to_owned())?;
    let mut pipeline = Pipeline::new(
        adaptive,
        EpochSummarizer::new(),
        model_info(&config),
        data! { "fingerprint" => fingerprint.to_data(), "hyperparameters" => hyperparameters(&config) },
    );
    let outcome = obs_testkit::train(&config, &mut pipeline);
    let trained = started.elapsed();

    // Closing writes every queued event, the final dashboard and the bridges' last records.
    let report = pipeline.adaptive().close().context(|| "closing the logger".to_owned())?;
    let storage_summary = storage.summary();
    let anomalies = pipeline.adaptive().get_anomaly_summary();
    let health = pipeline.adaptive().health().get_summary();
    let tally = pipeline.tally();

    say!();
    say!(
        "Run complete in {:.2} s: final loss={} val_loss={} val_accuracy={}{}",
        trained.as_secs_f64(),
        num(outcome.final_train_loss),
        num(outcome.final_val_loss),
        num(outcome.final_val_accuracy),
        if outcome.diverged { " (DIVERGED: the loss became NaN/Inf)" } else { "" }
    );
    say!();
    print_tiers(&storage_summary);
    print_findings(&health, &anomalies);
    say!(
        "Calm batches: {} recorded as one batch_end line each (loss, accuracy, gradient norms)",
        tally.calm_batches
    );
    if !pipeline.problems().is_empty() || !report.failures.is_empty() || report.dropped > 0 {
        say!();
        for p in pipeline.problems() {
            say!("problem: {p}");
        }
        for f in &report.failures {
            say!("backend failure: {f}");
        }
        if report.dropped > 0 {
            say!("dropped debug events: {}", report.dropped);
        }
    }

    let run = outputs.run_dir.display();
    say!();
    say!("Files:");
    say!("  logs         {run}/{{basic,health,debug}}.log   (NDJSON: grep, jq)");
    say!("  fingerprint  {run}/fingerprint.json");
    say!(
        "  dashboard    {} ({})",
        outputs.dashboard.display(),
        bytes(file_size(&outputs.dashboard))
    );
    say!(
        "  tensorboard  {} ({})",
        outputs.tensorboard_file.display(),
        bytes(file_size(&outputs.tensorboard_file))
    );
    say!("  wandb        {}", outputs.wandb_run.display());
    if let Some((uri, run_id)) = &outputs.mlflow_run {
        say!("  mlflow       run {run_id} on {uri} (experiment {WANDB_PROJECT})");
    }
    say!();
    say!("Next:");
    say!("  open {} in a browser (it works offline)", outputs.dashboard.display());
    say!("  tensorboard --logdir {}", outputs.tensorboard_dir.display());
    say!("  wandb sync {}", outputs.wandb_run.display());
    say!("  obs summary {run}      epoch summaries and warnings by rule");
    say!("  obs tail {run} --from-start --tier health");
    say!("  obs report {run}       the dashboard again, rendered from the logs");
    say!("  obs diff {run}/fingerprint.json <another run>/fingerprint.json");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_a_command_line_name() {
        for arg in ScenarioArg::value_variants() {
            let name = arg.to_possible_value().map(|v| v.get_name().to_owned());
            assert_eq!(name.as_deref(), Some(arg.scenario().name()));
        }
        assert_eq!(ScenarioArg::value_variants().len(), Scenario::ALL.len());
    }

    #[test]
    fn model_description_lists_every_layer() {
        let config = RunConfig::for_scenario(Scenario::Vanishing);
        let info = model_info(&config);
        let layers = info.get("layers").and_then(Value::as_list).map(<[_]>::len);
        assert_eq!(layers, Some(config.hidden.len() + 1));
        assert_eq!(architecture(&config).matches("sigmoid 32").count(), 8);
    }
}
