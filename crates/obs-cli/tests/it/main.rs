//! Integration tests of the `obs` binary: each runs the real executable in a temporary
//! directory (so the fingerprint records no git state of this repository unless asked).

mod candle;
mod compare;
mod demo;
mod errors;
mod fingerprint;
mod ranks;
mod reading;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one run of `obs` did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Panics with both streams unless the exit code is `code`.
    #[track_caller]
    fn expect(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

/// The `obs` command, started in `dir`.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_obs"));
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    cmd
}

/// Runs `obs args...` in `dir`.
fn obs(dir: &Path, args: &[&str]) -> Run {
    let out = command(dir, args).output().expect("the obs binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `obs demo --out out --epochs N [extra...]` in `dir` and returns the run directory and
/// the demo's output.
fn demo(dir: &Path, epochs: u64, extra: &[&str]) -> (PathBuf, Run) {
    let epochs = epochs.to_string();
    let mut args = vec!["demo", "--out", "out", "--epochs", epochs.as_str()];
    args.extend_from_slice(extra);
    let run = obs(dir, &args).expect(0);
    let line =
        run.stdout.lines().find_map(|l| l.strip_prefix("Run directory: ")).map(str::to_owned);
    let run_dir = dir.join(line.expect("the demo names its run directory"));
    assert!(run_dir.is_dir(), "{}", run_dir.display());
    (run_dir, run)
}

/// The files directly in `dir` whose names start with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)));
    found.sort();
    found
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}
