//! Provisioning of the Python tools that check our bridge files (owned by the bridges work).
//!
//! The bridge tests read what `obs-bridges` wrote with the real `tensorboard` and `wandb`
//! packages. They live in a virtualenv at `target/obs-venv`, created with `python3 -m venv`
//! and filled from PyPI with pinned versions the first time; later runs find them installed
//! and skip pip entirely. The tests get the interpreter as `OBS_PYTHON`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The packages the checkers import, pinned to the versions the formats were verified with
/// (`shared/FORMATS.md`).
const PACKAGES: [(&str, &str); 2] = [("tensorboard", "2.21.0"), ("wandb", "0.31.0")];

/// Makes the Python checkers available to the tests, adding the environment variables the tests
/// read to `env`.
///
/// An `OBS_PYTHON` already set by the caller is kept as is. If the virtualenv cannot be made
/// (no `python3`, no network), this warns and leaves `OBS_PYTHON` unset: locally the bridge
/// tests then skip loudly, and under `CI=true` they fail, so CI never passes without them.
pub(crate) fn provision(env: &mut Vec<(String, String)>) -> Result<()> {
    if let Some(given) = std::env::var_os("OBS_PYTHON").filter(|p| !p.is_empty()) {
        env.push(("OBS_PYTHON".to_owned(), given.to_string_lossy().into_owned()));
        return Ok(());
    }
    match venv_python() {
        Ok(python) => {
            env.push(("OBS_PYTHON".to_owned(), python.to_string_lossy().into_owned()));
        }
        Err(e) => eprintln!(
            "warning: could not provision the Python checkers of the bridge tests: {e:#}\n\
             warning: those tests will skip locally and fail under CI=true"
        ),
    }
    Ok(())
}

fn venv_python() -> Result<PathBuf> {
    let venv = super::project_root().join("target").join("obs-venv");
    let python = if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    };
    if has_packages(&python) {
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
    if !has_packages(&python) {
        bail!("{} still lacks {pins:?} after pip install", python.display());
    }
    Ok(python)
}

/// Whether `python` runs and has exactly the pinned versions installed.
fn has_packages(python: &Path) -> bool {
    let checks: Vec<String> =
        PACKAGES.iter().map(|(name, v)| format!("m.version({name:?}) == {v:?}")).collect();
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
