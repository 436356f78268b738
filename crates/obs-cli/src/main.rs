//! `obs`: the Observatory command line.
//!
//! `obs demo` trains a small real network with every Observatory feature on and writes its
//! logs, dashboard, fingerprint and TensorBoard/W&B files; the other commands read what a run
//! left behind: `report` (HTML dashboard), `summary` (epoch summaries and warnings), `tail`
//! (follow a live run), `fingerprint`, `diff`, `compare` (several runs on one page) and `export`. See `docs/cli.md`.
//!
//! Exit codes: 0 on success; 1 when `obs diff` or `obs compare` finds fingerprint differences; 2 on any error (bad
//! arguments, missing or unreadable files, corrupt inputs). Results go to stdout, progress bars
//! and error messages to stderr.

mod compare;
mod demo;
mod error;
mod fingerprint;
mod logs;
mod output;
mod pipeline;
mod progress;
mod report;
mod summary;
mod tail;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

/// Observatory: watch neural-network training runs.
#[derive(Debug, Parser)]
#[command(
    name = "obs",
    version,
    about = "Observatory: watch neural-network training runs",
    long_about = "Observatory: watch neural-network training runs.\n\n\
        `obs demo` trains a small real network with every feature on (adaptive logging, health \
        warnings, epoch summaries, tiered logs, dashboard, fingerprint, TensorBoard and W&B \
        files). The other commands read what a run left behind.\n\n\
        Exit codes: 0 success, 1 `obs diff` or `obs compare` found fingerprint differences, 2 error.",
    after_help = "See docs/cli.md for every command with sample output."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a small real network with every Observatory feature on and write all its files.
    Demo(demo::DemoArgs),
    /// Render the HTML dashboard of a stored run.
    Report(report::ReportArgs),
    /// Print a stored run's epoch summaries (recomputed from its logs) and its warnings by rule.
    Summary(summary::SummaryArgs),
    /// Follow a live run's logs, warnings tagged; stops at train_end.
    Tail(tail::TailArgs),
    /// Capture the fingerprint of this machine, a dataset and a git repository.
    Fingerprint(fingerprint::FingerprintArgs),
    /// Compare two fingerprints: exit 0 when identical, 1 when different, 2 on error.
    Diff(fingerprint::DiffArgs),
    /// Overlay several stored runs on one offline dashboard: curves, findings, fingerprint
    /// differences. Exit 0 when the fingerprints agree, 1 when they differ, 2 on error.
    Compare(compare::CompareArgs),
    /// Replay a stored run into TensorBoard event files and/or a W&B offline run.
    Export(report::ExportArgs),
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Report(args) => report::report(&args),
        Command::Summary(args) => summary::run(&args),
        Command::Tail(args) => tail::run(&args),
        Command::Fingerprint(args) => fingerprint::capture(&args),
        Command::Diff(args) => fingerprint::diff(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Export(args) => report::export(&args),
    }
}

fn main() -> ExitCode {
    // Clap prints usage errors itself and exits with code 2, the code of every other error.
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("obs: error: {e}");
            ExitCode::from(error::EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
