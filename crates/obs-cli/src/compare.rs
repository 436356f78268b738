//! `obs compare`: several stored runs on one offline page.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use observatory::dashboard::{Comparison, Dashboard, DashboardConfig, MAX_COMPARED_RUNS};
use observatory::fingerprint::{FingerprintDiff, TrainingFingerprint};
use observatory::storage::FINGERPRINT_FILE;

use crate::error::{CliError, Context};
use crate::output::{bytes, say};
use crate::{logs, progress};

/// Arguments of `obs compare`.
#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// Two or more run directories (or directories of `run-*` runs: the newest is read).
    #[arg(num_args = 2.., required = true, value_name = "RUN_DIR")]
    dirs: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(short, long, default_value = "compare.html")]
    output: PathBuf,
    /// The page title (default: "Run comparison — N runs").
    #[arg(long)]
    title: Option<String>,
}

/// One run read from its directory.
struct Run {
    label: String,
    dashboard: Dashboard,
    fingerprint: Result<TrainingFingerprint, String>,
}

fn read(dir: &Path) -> Result<Run, CliError> {
    let built = Dashboard::from_logs(dir, DashboardConfig::default())
        .context(|| format!("cannot read the run in {}", dir.display()))?;
    logs::note_skipped(&built.stats);
    // The path as typed tells runs apart best; a base directory also names the run read.
    let label = if built.run_dir == dir {
        dir.display().to_string()
    } else {
        let run = built.run_dir.file_name().map(|n| n.to_string_lossy().into_owned());
        format!("{}/{}", dir.display(), run.unwrap_or_default())
    };
    let file = built.run_dir.join(FINGERPRINT_FILE);
    let fingerprint = if file.exists() {
        TrainingFingerprint::load(&file).map_err(|e| format!("unreadable fingerprint: {e}"))
    } else {
        Err(format!("no {FINGERPRINT_FILE} in {}", built.run_dir.display()))
    };
    Ok(Run { label, dashboard: built.dashboard, fingerprint })
}

/// Every field in which some run's fingerprint differs from the first run's, with each run's
/// value. A field absent from run k's diff has the first run's value there.
fn difference_rows(diffs: &[FingerprintDiff]) -> Vec<(String, Vec<String>)> {
    let mut fields: Vec<&str> = Vec::new();
    for d in diffs {
        for c in &d.changes {
            if !fields.contains(&c.field.as_str()) {
                fields.push(&c.field);
            }
        }
    }
    fields
        .into_iter()
        .map(|field| {
            let first =
                diffs.iter().find_map(|d| d.get(field)).map(|c| c.left.clone()).unwrap_or_default();
            let mut values = vec![first.clone()];
            values.extend(
                diffs
                    .iter()
                    .map(|d| d.get(field).map_or_else(|| first.clone(), |c| c.right.clone())),
            );
            (field.to_owned(), values)
        })
        .collect()
}

/// Runs `obs compare`: exit 0 when every fingerprint agrees with the first run's (apart from
/// run id and time), 1 when any differs or is missing, 2 on error.
pub(crate) fn run(args: &CompareArgs) -> Result<ExitCode, CliError> {
    if args.dirs.len() > MAX_COMPARED_RUNS {
        return Err(CliError::new(format!(
            "{} runs given; at most {MAX_COMPARED_RUNS} fit on one page",
            args.dirs.len()
        )));
    }
    let bar = progress::counter("reading logs");
    let runs: Result<Vec<Run>, CliError> = args.dirs.iter().map(|d| read(d)).collect();
    bar.finish_and_clear();
    let runs = runs?;
    let mut page = Comparison::new();
    if let Some(t) = &args.title {
        page.set_title(t.clone());
    }
    let mut missing = Vec::new();
    for r in &runs {
        if let Err(why) = &r.fingerprint {
            missing.push(format!("{}: {why}", r.label));
        }
    }
    let fingerprints: Vec<&TrainingFingerprint> =
        runs.iter().filter_map(|r| r.fingerprint.as_ref().ok()).collect();
    let rows = if missing.is_empty() {
        let diffs: Vec<FingerprintDiff> =
            fingerprints[1..].iter().map(|fp| fingerprints[0].diff(fp)).collect();
        difference_rows(&diffs)
    } else {
        Vec::new()
    };
    for r in runs {
        page.add_run(r.label, r.dashboard).context(|| "cannot compare the runs".to_owned())?;
    }
    for note in &missing {
        page.add_note(format!("Fingerprints not compared: {note}"));
    }
    let fields_differ = !rows.is_empty();
    for (field, values) in rows {
        page.add_difference(field, values).context(|| "cannot compare the runs".to_owned())?;
    }
    page.write(&args.output).context(|| format!("cannot write {}", args.output.display()))?;
    let size = std::fs::metadata(&args.output).map_or(0, |m| m.len());
    let labels: Vec<&str> = page.labels().collect();
    say!(
        "Comparison of {} runs ({}) written to {} ({})",
        labels.len(),
        labels.join(", "),
        args.output.display(),
        bytes(size)
    );
    for note in &missing {
        eprintln!("obs: note: fingerprints not compared: {note}");
    }
    if missing.is_empty() {
        if fields_differ {
            say!("The fingerprints differ: see \"What changed between the runs\" on the page");
        } else {
            say!("The fingerprints agree on everything but run id and time");
        }
    }
    Ok(if missing.is_empty() && !fields_differ { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
