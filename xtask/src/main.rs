//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: every quality gate CI runs (fmt, clippy, tests, docs).
//! - `test`: the test suite alone.
//! - `bench [crate]`: the criterion benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod browser;
mod python;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => ci(),
        ["test"] => test(),
        ["bench"] => bench(None),
        ["bench", name] => bench(Some(name)),
        _ => {
            eprintln!("usage: cargo xtask <ci | test | bench [crate]>");
            bail!("unknown command {args:?}")
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn run(what: &str, program: &str, args: &[&str], envs: &[(String, String)]) -> Result<()> {
    eprintln!("==> {what}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .current_dir(project_root())
        .status()
        .with_context(|| format!("could not run {program}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn ci() -> Result<()> {
    run("format", "cargo", &["fmt", "--all", "--check"], &[])?;
    run(
        "clippy",
        "cargo",
        &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
        &[],
    )?;
    test()?;
    run(
        "docs",
        "cargo",
        &["doc", "--workspace", "--no-deps", "--all-features"],
        &[("RUSTDOCFLAGS".to_owned(), "-D warnings".to_owned())],
    )?;
    eprintln!("==> all gates passed");
    Ok(())
}

fn test() -> Result<()> {
    // The real tools that check our output files: Python packages for the bridges, a headless
    // browser for the dashboard. Each adds the variables its tests read.
    let mut env = Vec::new();
    python::provision(&mut env)?;
    browser::provision(&mut env)?;
    run("tests", "cargo", &["test", "--workspace", "--all-features"], &env)?;
    run(
        "examples",
        "cargo",
        &["run", "--quiet", "-p", "obs-examples", "--example", "quickstart"],
        &[],
    )
}

fn bench(krate: Option<&str>) -> Result<()> {
    let mut args = vec!["bench", "-p", "obs-benches"];
    if let Some(k) = krate {
        args.extend(["--bench", k]);
    }
    run("benchmarks", "cargo", &args, &[])
}
