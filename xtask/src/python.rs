//! Provisioning of the Python side: the tools that check our bridge files, and the
//! `observatory` Python package (crates/obs-python) with its pytest suite.
//!
//! The bridge tests read what `obs-bridges` wrote with the real `tensorboard` and `wandb`
//! packages. They live in a virtualenv at `target/obs-venv`, created with `python3 -m venv`
//! and filled from PyPI with pinned versions the first time; later runs find them installed
//! and skip pip entirely. The tests get the interpreter as `OBS_PYTHON`. The same virtualenv
//! holds numpy, pytest and maturin, which builds the `observatory` wheel into it for
//! [`python_package_tests`].

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The packages the checkers import, pinned to the versions the formats were verified with
/// (`shared/FORMATS.md`).
/// numpy, pytest and maturin serve the `observatory` package: its dependency, its test runner
/// and its build backend.
const PACKAGES: [(&str, &str); 5] = [
    ("tensorboard", "2.21.0"),
    ("wandb", "0.31.0"),
    ("numpy", "2.4.6"),
    ("pytest", "9.2.0"),
    ("maturin", "1.16.0"),
];

/// Makes the Python checkers available to the tests, adding the environment variables the tests
/// read to `env`.
///
/// An `OBS_PYTHON` already set by the caller is kept as is. If the virtualenv cannot be made
/// (no `python3`, no network), this warns and leaves `OBS_PYTHON` unset: locally the bridge
/// tests then skip loudly, and under `CI=true` they fail, so CI never passes without them.
pub(crate) fn provision(env: &mut Vec<(String, String)>) -> Result<()> {
    provide(env, "OBS_PYTHON", "the Python checkers", venv_python);
    Ok(())
}

/// Sets `var` to the caller's value when given, else to the interpreter `make` provisions; when
/// that fails, warns and leaves `var` unset (the tests then skip locally, fail under CI).
fn provide(
    env: &mut Vec<(String, String)>,
    var: &str,
    what: &str,
    make: impl FnOnce() -> Result<PathBuf>,
) {
    if let Some(given) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        env.push((var.to_owned(), given.to_string_lossy().into_owned()));
        return;
    }
    match make() {
        Ok(python) => env.push((var.to_owned(), python.to_string_lossy().into_owned())),
        Err(e) => eprintln!(
            "warning: could not provision {what} of the bridge tests: {e:#}\n\
             warning: those tests will skip locally and fail under CI=true"
        ),
    }
}

/// The MLflow tracking server and client of the MLflow bridge tests, in a virtualenv of their
/// own (`target/mlflow-venv`, about 700 MB: the server's dependencies would slow every install
/// of the checkers). `uv` (pinned) resolves and installs it much faster than pip does.
const MLFLOW: (&str, &str) = ("mlflow", "3.17.2");
const UV: (&str, &str) = ("uv", "0.9.0");

/// Sets `OBS_MLFLOW_PYTHON` (kept when the caller set it), or warns: the MLflow tests then skip
/// locally and fail under `CI=true`.
pub(crate) fn provision_mlflow(env: &mut Vec<(String, String)>) {
    provide(env, "OBS_MLFLOW_PYTHON", "the MLflow server", mlflow_venv_python);
}

fn mlflow_venv_python() -> Result<PathBuf> {
    let venv = super::project_root().join("target").join("mlflow-venv");
    let bin = venv.join(if cfg!(windows) { "Scripts" } else { "bin" });
    let python = bin.join(if cfg!(windows) { "python.exe" } else { "python" });
    let pin = |(name, v): (&str, &str)| format!("{name}=={v}");
    if has_packages(&python, &[MLFLOW]) {
        eprintln!("==> mlflow server: {} (cached)", venv.display());
        return Ok(python);
    }
    let started = std::time::Instant::now();
    if !python.exists() {
        run(
            "create the mlflow virtualenv",
            Path::new("python3"),
            &["-m", "venv", &path_str(&venv)?],
        )?;
    }
    run(
        "install uv",
        &python,
        &["-m", "pip", "install", "--disable-pip-version-check", "--quiet", &pin(UV)],
    )?;
    let uv = bin.join(if cfg!(windows) { "uv.exe" } else { "uv" });
    run(
        "install mlflow",
        &uv,
        &["pip", "install", "--quiet", "--python", &path_str(&python)?, &pin(MLFLOW)],
    )?;
    if !has_packages(&python, &[MLFLOW]) {
        bail!("{} still lacks {} after uv pip install", python.display(), pin(MLFLOW));
    }
    eprintln!("==> mlflow server installed in {:.0?}", started.elapsed());
    Ok(python)
}

fn venv_python() -> Result<PathBuf> {
    let venv = super::project_root().join("target").join("obs-venv");
    let python = if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    };
    if has_packages(&python, &PACKAGES) {
        eprintln!("==> python checkers: {} (cached)", venv.display());
        return Ok(python);
    }
    if !python.exists() {
        run("create the virtualenv", Path::new("python3"), &["-m", "venv", &path_str(&venv)?])?;
    }
    let pins: Vec<String> = PACKAGES.iter().map(|(name, v)| format!("{name}=={v}")).collect();
    let mut args = vec!["-m", "pip", "install", "--disable-pip-version-check", "--quiet"];
    args.extend(pins.iter().map(String::as_str));
    run("install the python checkers", &python, &args)?;
    if !has_packages(&python, &PACKAGES) {
        bail!("{} still lacks {pins:?} after pip install", python.display());
    }
    Ok(python)
}

/// Whether `python` runs and has exactly the pinned versions of `pins` installed.
fn has_packages(python: &Path, pins: &[(&str, &str)]) -> bool {
    let checks: Vec<String> =
        pins.iter().map(|(name, v)| format!("m.version({name:?}) == {v:?}")).collect();
    let code = format!(
        "import importlib.metadata as m, sys; sys.exit(0 if {} else 1)",
        checks.join(" and ")
    );
    python.exists()
        && Command::new(python).args(["-c", &code]).output().is_ok_and(|o| o.status.success())
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str().map(str::to_owned).with_context(|| format!("non-UTF-8 path {}", p.display()))
}

fn run(what: &str, program: &Path, args: &[&str]) -> Result<()> {
    eprintln!("==> {what}: {} {}", program.display(), args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("could not run {}", program.display()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Builds the `observatory` wheel into the virtualenv with maturin and runs its pytest suite
/// (`crates/obs-python/tests`). The interpreter comes from `env` (`OBS_PYTHON`, set by
/// [`provision`]). Without one this skips with a warning locally and fails under `CI=true`.
///
/// The wheel is built with the dev profile: the suite checks behaviour, not speed, and the
/// release build of the whole dependency tree would cost CI minutes (`benches/python/peer.py`
/// builds its own release wheel).
pub(crate) fn python_package_tests(env: &[(String, String)]) -> Result<()> {
    let python = env.iter().find(|(k, _)| k == "OBS_PYTHON").map(|(_, v)| PathBuf::from(v));
    let Some(python) = python else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            bail!("no Python virtualenv for the observatory package tests (see the warning above)");
        }
        eprintln!("warning: skipping the observatory Python package tests: no virtualenv");
        return Ok(());
    };
    let root = super::project_root();
    let venv = python
        .parent()
        .and_then(Path::parent)
        .context("OBS_PYTHON is not inside a virtualenv")?
        .to_path_buf();
    let manifest = root.join("crates").join("obs-python").join("Cargo.toml");
    // A wheel installed into the virtualenv (not an editable install, which would leave the
    // extension module in the source tree).
    let wheels = root.join("target").join("wheels").join("obs-python");
    let _ = std::fs::remove_dir_all(&wheels);
    let status = Command::new(&python)
        .args(["-m", "maturin", "build", "--quiet", "--profile", "dev", "--interpreter"])
        .arg(&python)
        .args(["--manifest-path", &path_str(&manifest)?, "--out", &path_str(&wheels)?])
        .env("VIRTUAL_ENV", &venv)
        .current_dir(&root)
        .status()
        .context("could not run maturin")?;
    eprintln!("==> build the observatory wheel: maturin build ({status})");
    if !status.success() {
        bail!("maturin build failed ({status})");
    }
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("maturin built no wheel")?;
    run(
        "install the observatory wheel",
        &python,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--force-reinstall",
            &path_str(&wheel)?,
        ],
    )?;
    let tests = root.join("crates").join("obs-python").join("tests");
    // The Rust `obs` binary for the tests that read the logs back with `obs summary`.
    let obs = root.join("target").join("debug").join(if cfg!(windows) { "obs.exe" } else { "obs" });
    let status = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", &path_str(&tests)?])
        .env("OBS_BIN", &obs)
        .current_dir(&root)
        .status()
        .context("could not run pytest")?;
    eprintln!("==> observatory Python package tests: pytest ({status})");
    if !status.success() {
        bail!("the observatory Python package tests failed ({status})");
    }
    Ok(())
}
