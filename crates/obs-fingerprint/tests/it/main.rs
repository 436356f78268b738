//! Integration tests of obs-fingerprint: git states in real temporary repositories, file
//! datasets, GPU probing, JSON and text forms, diffs, logger attachment and privacy.

mod dataset_files;
mod diff;
mod git;
mod gpu;
mod privacy;
mod serial;
mod text;

use std::path::Path;
use std::process::Command;

/// Runs the `git` CLI in `dir` with a fixed identity and no user or system configuration,
/// so the machine's settings (signing, hooks, default branch) cannot change the outcome.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.invalid"])
        .args(["-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("the git CLI runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository with one commit of `train.py`, in a fresh temporary directory.
pub(crate) fn repo_with_commit() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    git(dir.path(), &["init", "-q"]);
    std::fs::write(dir.path().join("train.py"), "print('train')\n").expect("write");
    std::fs::write(dir.path().join(".gitignore"), "*.log\n").expect("write");
    git(dir.path(), &["add", "train.py", ".gitignore"]);
    git(dir.path(), &["commit", "-q", "-m", "first"]);
    dir
}
