//! `obs report` (a dashboard from stored logs) and `obs export` (stored logs into the bridges).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Args};
use observatory::bridges::{MlflowBridge, TensorBoardBridge, WandbBridge};
use observatory::dashboard::{Dashboard, DashboardConfig};
use observatory::storage::LogReader;

use crate::error::{CliError, Context};
use crate::output::{bytes, say};
use crate::{logs, progress};

/// Arguments of `obs report`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// A run directory, or a directory of `run-*` runs (the newest is read).
    dir: PathBuf,
    /// The HTML file to write (default: `report.html` in the run directory).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The page title (default: "Training dashboard" and the model's name).
    #[arg(long)]
    title: Option<String>,
}

/// Runs `obs report`.
pub(crate) fn report(args: &ReportArgs) -> Result<ExitCode, CliError> {
    let mut config = DashboardConfig::default();
    config.title.clone_from(&args.title);
    let bar = progress::counter("reading logs");
    let built = Dashboard::from_logs(&args.dir, config)
        .context(|| format!("cannot build a dashboard from {}", args.dir.display()));
    bar.finish_and_clear();
    let built = built?;
    logs::note_skipped(&built.stats);
    let out = args.output.clone().unwrap_or_else(|| built.run_dir.join("report.html"));
    built.dashboard.write(&out).context(|| format!("cannot write {}", out.display()))?;
    let size = std::fs::metadata(&out).map_or(0, |m| m.len());
    say!("Dashboard of {} written to {} ({})", built.run_dir.display(), out.display(), bytes(size));
    say!("{} events read; open the file in a browser (it works offline)", built.dashboard.events());
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `obs export`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).multiple(true).args(["tensorboard", "wandb"])))]
pub(crate) struct ExportArgs {
    /// A run directory, or a directory of `run-*` runs (the newest is read).
    dir: PathBuf,
    /// Write TensorBoard event files under this directory (a sub-directory per run).
    #[arg(long, value_name = "OUT")]
    tensorboard: Option<PathBuf>,
    /// Write a W&B offline run under `OUT/wandb/`.
    #[arg(long, value_name = "OUT")]
    wandb: Option<PathBuf>,
    /// Replay into a run on this MLflow tracking server (`http://host:port`); `-` reads
    /// `MLFLOW_TRACKING_URI`. The token comes from `MLFLOW_TRACKING_TOKEN`.
    #[arg(long, value_name = "URI")]
    mlflow: Option<String>,
    /// The MLflow experiment (created when missing).
    #[arg(long, default_value = "observatory")]
    experiment: String,
    /// The W&B project.
    #[arg(long, default_value = "observatory")]
    project: String,
    /// The run name (default: the run directory's name).
    #[arg(long)]
    name: Option<String>,
}

fn run_name(args: &ExportArgs, reader: &LogReader) -> String {
    args.name.clone().unwrap_or_else(|| {
        reader
            .run_dir()
            .file_name()
            .map_or_else(|| "run".to_owned(), |n| n.to_string_lossy().into_owned())
    })
}

/// Replays every stored event of `reader` through `replay`, with a progress counter.
fn replay(
    reader: &LogReader,
    what: &str,
    replay: impl FnOnce(&mut dyn Iterator<Item = observatory::core::Event>) -> Result<u64, CliError>,
) -> Result<u64, CliError> {
    let mut events = reader
        .read_all()
        .context(|| format!("cannot read logs in {}", reader.run_dir().display()))?;
    let bar = progress::counter(what);
    let mut counted = events.by_ref().inspect(|_| bar.inc(1));
    let n = replay(&mut counted);
    bar.finish_and_clear();
    logs::note_skipped(&events.total_stats());
    n
}

fn export_tensorboard(
    reader: &LogReader,
    name: &str,
    out: &Path,
) -> Result<(u64, PathBuf), CliError> {
    let mut bridge = TensorBoardBridge::builder(out)
        .run_name(name)
        .create()
        .context(|| format!("cannot create TensorBoard files in {}", out.display()))?;
    let path = bridge.path().to_owned();
    let n = replay(reader, "replaying into TensorBoard", |events| {
        bridge.replay(events).context(|| format!("cannot write {}", path.display()))
    })?;
    bridge.close().context(|| format!("cannot finish {}", path.display()))?;
    Ok((n, path))
}

fn export_wandb(
    reader: &LogReader,
    name: &str,
    project: &str,
    out: &Path,
) -> Result<(u64, PathBuf), CliError> {
    let mut bridge = WandbBridge::builder(project)
        .run_name(name)
        .dir(out)
        .create()
        .context(|| format!("cannot create a W&B offline run in {}", out.display()))?;
    let run_dir = bridge.run_dir().to_owned();
    let n = replay(reader, "replaying into W&B", |events| {
        bridge.replay(events).context(|| format!("cannot write {}", run_dir.display()))
    })?;
    bridge.close().context(|| format!("cannot finish {}", run_dir.display()))?;
    Ok((n, run_dir))
}

fn export_mlflow(
    reader: &LogReader,
    name: &str,
    experiment: &str,
    uri: &str,
) -> Result<(u64, String), CliError> {
    let mut builder =
        MlflowBridge::builder(experiment).run_name(name).storage_dir(reader.run_dir());
    if uri != "-" {
        builder = builder.tracking_uri(uri);
    }
    let mut bridge = builder.create().context(|| "cannot create the MLflow run".to_owned())?;
    let run_id = bridge.run_id().to_owned();
    let n = replay(reader, "replaying into MLflow", |events| {
        bridge.replay(events).context(|| format!("cannot send MLflow run {run_id}"))
    })?;
    bridge.close().context(|| format!("cannot finish MLflow run {run_id}"))?;
    Ok((n, run_id))
}

/// Runs `obs export`.
pub(crate) fn export(args: &ExportArgs) -> Result<ExitCode, CliError> {
    let reader = logs::open(&args.dir)?;
    let name = run_name(args, &reader);
    if let Some(out) = &args.tensorboard {
        let (n, file) = export_tensorboard(&reader, &name, out)?;
        say!("TensorBoard: {n} events replayed into {}", file.display());
        say!("  view with: tensorboard --logdir {}", out.display());
    }
    if let Some(out) = &args.wandb {
        let (n, run_dir) = export_wandb(&reader, &name, &args.project, out)?;
        say!("W&B: {n} events replayed into {}", run_dir.display());
        say!("  upload with: wandb sync {}", run_dir.display());
    }
    if let Some(uri) = &args.mlflow {
        let (n, run_id) = export_mlflow(&reader, &name, &args.experiment, uri)?;
        say!("MLflow: {n} events replayed into run {run_id} (experiment {:?})", args.experiment);
    }
    Ok(ExitCode::SUCCESS)
}
