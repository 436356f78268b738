//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: every quality gate CI runs (fmt, clippy, tests, examples, the detection
//!   benchmark, docs).
//! - `test`: the test suite and the examples.
//! - `detect`: the labelled detection benchmark; fails when a held-out target is missed.
//! - `python`: only the `observatory` Python package's pytest suite (part of `test`).
//! - `bench [crate]`: the criterion benchmarks, all or those of one crate.
//! - `release prepare <version>` | `release check` | `release publish [--dry-run]`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod browser;
mod python;
mod release;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => ci(),
        ["test"] => test(),
        ["detect"] => detect(),
        ["python"] => python_tests(),
        ["bench"] => bench(None),
        ["bench", name] => bench(Some(name)),
        ["release", "prepare", version] => release::prepare(version),
        ["release", "check"] => release::check(),
        ["release", "publish"] => release::publish(false),
        ["release", "publish", "--dry-run"] => release::publish(true),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | test | detect | python | bench [crate] | release prepare <version> | \
                 release check | release publish [--dry-run]>"
            );
            bail!("unknown command {args:?}")
        }
    }
}

pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

pub(crate) fn run(
    what: &str,
    program: &str,
    args: &[&str],
    envs: &[(String, String)],
) -> Result<()> {
    run_in(&project_root(), what, program, args, envs)
}

fn run_in(
    dir: &Path,
    what: &str,
    program: &str,
    args: &[&str],
    envs: &[(String, String)],
) -> Result<()> {
    eprintln!("==> {what}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .status()
        .with_context(|| format!("could not run {program}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Features that need a GPU toolkit this machine (and CI) does not have: obs-candle's `cuda` and
/// `metal` pass through to candle, whose build runs nvcc or needs Apple's Metal SDK.
/// `--all-features` would turn them on, so the gates pass [`features_without_gpu`] instead.
const GPU_FEATURES: &[(&str, &str)] = &[("obs-candle", "cuda"), ("obs-candle", "metal")];

/// The `[package]` name and the `[features]` keys (but `default`) of a manifest.
fn manifest_features(manifest: &str) -> (Option<String>, Vec<String>) {
    let (mut section, mut name, mut features) = ("", None, Vec::new());
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim();
        match section {
            "[package]" if key == "name" => name = Some(value.trim().trim_matches('"').to_owned()),
            "[features]" if key != "default" && !key.starts_with('#') => {
                features.push(key.to_owned())
            }
            _ => {}
        }
    }
    (name, features)
}

/// `member/feature` for every feature of every workspace member except [`GPU_FEATURES`]: what
/// `--all-features` turns on, minus what needs a GPU toolkit (default features stay on). One
/// `--features` list for the whole workspace keeps one feature resolution, so every crate is
/// built once; running the GPU crate separately would resolve its dependencies' features
/// differently and rebuild candle (about two minutes here).
fn features_without_gpu() -> Result<String> {
    let root = project_root();
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(root.join("crates"))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.extend(["examples", "benches", "xtask"].map(|d| root.join(d)));
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else { continue };
        let (Some(name), features) = manifest_features(&manifest) else { continue };
        for feature in features {
            if !GPU_FEATURES.contains(&(name.as_str(), feature.as_str())) {
                out.push(format!("{name}/{feature}"));
            }
        }
    }
    Ok(out.join(","))
}

/// Runs `cargo <command> --workspace --features <every feature but the GPU ones> <args>`.
fn cargo_all_features(
    what: &str,
    command: &[&str],
    args: &[&str],
    envs: &[(String, String)],
) -> Result<()> {
    let features = features_without_gpu()?;
    let mut all: Vec<&str> = command.to_vec();
    all.extend(["--workspace", "--features", &features]);
    all.extend(args);
    run(what, "cargo", &all, envs)
}

pub(crate) fn ci() -> Result<()> {
    run("format", "cargo", &["fmt", "--all", "--check"], &[])?;
    cargo_all_features("clippy", &["clippy", "--all-targets"], &["--", "-D", "warnings"], &[])?;
    test()?;
    detect()?;
    cargo_all_features(
        "docs",
        &["doc", "--no-deps"],
        &[],
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
    python::provision_mlflow(&mut env);
    browser::provision(&mut env)?;
    cargo_all_features("tests", &["test"], &[], &env)?;
    // The `observatory` Python package: maturin builds it into the virtualenv, pytest runs
    // its suite (which reads the logs back with the `obs` binary `cargo test` just built).
    python::python_package_tests(&env)?;
    examples()
}

/// The `observatory` Python package's tests alone: provisions the virtualenv, builds `obs`
/// (the suite reads logs back with it), builds and installs the wheel, runs pytest.
fn python_tests() -> Result<()> {
    let mut env = Vec::new();
    python::provision(&mut env)?;
    run("build obs", "cargo", &["build", "--quiet", "-p", "obs-cli"], &[])?;
    python::python_package_tests(&env)
}

/// The labelled detection benchmark (`crates/obs-detect`): trains every run, scores both rule
/// engines and fails when a held-out target is missed. The dev profile keeps it on the test
/// build (the arithmetic crates are optimised there).
fn detect() -> Result<()> {
    run(
        "detection benchmark",
        "cargo",
        &["run", "--quiet", "-p", "obs-detect", "--", "--check"],
        &[],
    )
}

/// Runs every example, each in a fresh temporary directory so the files they write (logs,
/// dashboards, bridge runs) never land in the checkout or collide with each other.
fn examples() -> Result<()> {
    let root = project_root();
    let manifest = root.join("Cargo.toml");
    let manifest = manifest.to_str().context("project path is not UTF-8")?;
    let mut names: Vec<String> = std::fs::read_dir(root.join("examples"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    names.sort();
    for name in &names {
        let dir = std::env::temp_dir().join(format!("obs-example-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let result = run_in(
            &dir,
            &format!("example {name}"),
            "cargo",
            &[
                "run",
                "--quiet",
                "--manifest-path",
                manifest,
                "-p",
                "obs-examples",
                "--example",
                name,
            ],
            &[],
        );
        let _ = std::fs::remove_dir_all(&dir);
        result?;
    }
    Ok(())
}

/// The criterion benches of each crate (all live in the `obs-benches` package).
const BENCHES: &[(&str, &[&str])] = &[
    ("obs-core", &["kernels", "bus", "events"]),
    ("obs-adaptive", &["adaptive"]),
    ("obs-health", &["health"]),
    ("obs-summary", &["summary"]),
    ("obs-storage", &["storage"]),
    ("obs-dashboard", &["dashboard"]),
    ("obs-fingerprint", &["fingerprint"]),
    ("obs-bridges", &["bridges"]),
    ("obs-candle", &["candle"]),
];

fn bench(krate: Option<&str>) -> Result<()> {
    let Some(krate) = krate else {
        return run("benchmarks", "cargo", &["bench", "-p", "obs-benches"], &[]);
    };
    let benches = BENCHES
        .iter()
        .find(|(name, benches)| *name == krate || benches.contains(&krate))
        .map(|(name, benches)| if *name == krate { benches.to_vec() } else { vec![krate] })
        .with_context(|| {
            let known: Vec<&str> = BENCHES.iter().map(|(n, _)| *n).collect();
            format!("no benches for {krate:?}; crates with benches: {}", known.join(", "))
        })?;
    for b in benches {
        run(&format!("bench {b}"), "cargo", &["bench", "-p", "obs-benches", "--bench", b], &[])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_features_are_left_out_and_the_others_kept() {
        let features = features_without_gpu().expect("manifests read");
        let features: Vec<&str> = features.split(',').collect();
        assert!(features.contains(&"obs-bridges/tensorboard"), "{features:?}");
        assert!(features.contains(&"observatory/candle"), "{features:?}");
        assert!(!features.iter().any(|f| f.ends_with("/default")), "{features:?}");
        for (package, feature) in GPU_FEATURES {
            assert!(!features.contains(&format!("{package}/{feature}").as_str()), "{features:?}");
        }
    }

    #[test]
    fn manifest_features_reads_package_and_feature_keys() {
        let manifest = "[package]\nname = \"a\"\n\n[features]\ndefault = [\"x\"]\n# note\nx = []\ny = [\"dep:z\"]\n\n[dependencies]\nname = \"no\"\n";
        assert_eq!(
            manifest_features(manifest),
            (Some("a".to_owned()), vec!["x".to_owned(), "y".to_owned()])
        );
    }
}
