//! `obs fingerprint` (capture) and `obs diff` (compare two).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use observatory::fingerprint::{Dataset, HashProgress, TrainingFingerprint};
use observatory::storage::FINGERPRINT_FILE;

use crate::error::{CliError, Context};
use crate::output::say;
use crate::{logs, progress};

/// Arguments of `obs fingerprint`.
#[derive(Debug, Args)]
pub(crate) struct FingerprintArgs {
    /// A dataset file, or a directory hashed with every file below it.
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Print the fingerprint as JSON instead of the text block.
    #[arg(long)]
    json: bool,
    /// The git repository to record (discovered upwards from this path; default: the current
    /// directory).
    #[arg(long, conflicts_with = "no_git")]
    repo: Option<PathBuf>,
    /// Record no git state.
    #[arg(long)]
    no_git: bool,
    /// Also save the JSON to this file.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Runs `obs fingerprint`.
pub(crate) fn capture(args: &FingerprintArgs) -> Result<ExitCode, CliError> {
    if let Some(repo) = &args.repo
        && !repo.exists()
    {
        return Err(CliError::new(format!("repository path {} does not exist", repo.display())));
    }
    let bar = progress::bytes(0, "hashing the dataset");
    let mut builder = TrainingFingerprint::builder();
    if let Some(path) = &args.dataset {
        let bar = bar.clone();
        builder = builder.dataset(Dataset::path(path)).on_progress(move |p: HashProgress| {
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_hashed);
        });
    }
    if args.no_git {
        builder = builder.without_git();
    } else if let Some(repo) = &args.repo {
        builder = builder.git_dir(repo);
    }
    let fp = builder.capture().context(|| "cannot capture the fingerprint".to_owned());
    bar.finish_and_clear();
    let fp = fp?;
    if args.json {
        say!("{}", fp.to_json());
    } else {
        say!("{}", fp.format_text().trim_end());
    }
    if let Some(out) = &args.output {
        fp.save(out).context(|| "cannot save the fingerprint".to_owned())?;
        eprintln!("obs: fingerprint saved to {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `obs diff`.
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The first fingerprint: a JSON file, or a run directory holding `fingerprint.json`.
    a: PathBuf,
    /// The second fingerprint, given the same way.
    b: PathBuf,
    /// Print the differences as JSON.
    #[arg(long)]
    json: bool,
}

/// A fingerprint file, or the `fingerprint.json` of the run in a directory.
fn load(path: &Path) -> Result<TrainingFingerprint, CliError> {
    let file = if path.is_dir() {
        logs::open(path)?.run_dir().join(FINGERPRINT_FILE)
    } else {
        path.to_owned()
    };
    TrainingFingerprint::load(&file).context(|| "cannot load a fingerprint".to_owned())
}

/// Runs `obs diff`: exit code 0 when the fingerprints agree, 1 when they differ.
pub(crate) fn diff(args: &DiffArgs) -> Result<ExitCode, CliError> {
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let diff = a.diff(&b);
    if args.json {
        let text = serde_json::to_string_pretty(&diff)
            .context(|| "cannot encode the differences".to_owned())?;
        say!("{text}");
    } else {
        say!("{}", diff.format_text().trim_end());
    }
    Ok(if diff.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
