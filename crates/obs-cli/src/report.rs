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
#[command(group(ArgGroup::new("target").required(true).multiple(true).args(["tensorboard", "wandb", "mlflow"])))]
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

/// The `rank-<n>/` subdirectories of a multi-rank run directory, by rank.
fn rank_dirs(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rank = name.strip_prefix("rank-")?.parse().ok()?;
            Some((rank, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// `obs export --mlflow` of a multi-rank run: one MLflow run, per-rank keys and cross-rank
/// mean/min/max.
fn export_mlflow_ranks(
    args: &ExportArgs,
    uri: &str,
    ranks: &[(u32, PathBuf)],
) -> Result<(u64, String), CliError> {
    let name = args.name.clone().unwrap_or_else(|| {
        args.dir.file_name().map_or_else(|| "run".to_owned(), |n| n.to_string_lossy().into_owned())
    });
    let mut per_rank = Vec::new();
    let mut n = 0;
    for (rank, dir) in ranks {
        let reader = logs::open(dir)?;
        let events: Vec<_> = reader
            .read_all()
            .context(|| format!("cannot read logs in {}", dir.display()))?
            .collect();
        n += events.len() as u64;
        per_rank.push((*rank, events));
    }
    let mut builder = MlflowBridge::builder(&args.experiment).run_name(name);
    if uri != "-" {
        builder = builder.tracking_uri(uri);
    }
    let run_id = observatory::bridges::export_ranks(builder, per_rank)
        .context(|| "cannot export the ranks to MLflow".to_owned())?;
    Ok((n, run_id))
}

/// Runs `obs export`.
pub(crate) fn export(args: &ExportArgs) -> Result<ExitCode, CliError> {
    let ranks = rank_dirs(&args.dir);
    if let Some(uri) = args.mlflow.as_deref().filter(|_| !ranks.is_empty()) {
        let (n, run_id) = export_mlflow_ranks(args, uri, &ranks)?;
        say!(
            "MLflow: {n} events of {} ranks replayed into run {run_id} (experiment {:?})",
            ranks.len(),
            args.experiment
        );
        if args.tensorboard.is_none() && args.wandb.is_none() {
            return Ok(ExitCode::SUCCESS);
        }
    }
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
    if let Some(uri) = args.mlflow.as_ref().filter(|_| ranks.is_empty()) {
        let (n, run_id) = export_mlflow(&reader, &name, &args.experiment, uri)?;
        say!("MLflow: {n} events replayed into run {run_id} (experiment {:?})", args.experiment);
    }
    Ok(ExitCode::SUCCESS)
}
