//! Provisioning of headless Chromium for the dashboard's browser tests (owned by the dashboard
//! work).
//!
//! The tests in `crates/obs-dashboard/tests/it/browser.rs` load generated dashboards in the
//! browser named by `OBS_CHROMIUM`. On a Debian machine without one, Debian's `chromium`
//! package is installed with apt (`apt-get update`, then `apt-get install -y chromium`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const DEBIAN_CHROMIUM: &str = "/usr/bin/chromium";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn apt_get(args: &[&str]) -> Result<()> {
    eprintln!("==> browser: apt-get {}", args.join(" "));
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("could not run apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn install() -> Result<PathBuf> {
    if !Path::new("/usr/bin/apt-get").exists() {
        bail!("{DEBIAN_CHROMIUM} is missing and this machine has no apt-get to install it");
    }
    apt_get(&["update"])?;
    apt_get(&["install", "-y", "chromium"])?;
    let path = PathBuf::from(DEBIAN_CHROMIUM);
    if !path.is_file() {
        bail!("installed the chromium package but {DEBIAN_CHROMIUM} is still missing");
    }
    Ok(path)
}

/// Makes a headless browser available to the tests, adding the environment variables the tests
/// read to `env`: `OBS_CHROMIUM`, the browser's path.
///
/// Under CI a browser that cannot be provided is an error (the browser tests would fail
/// anyway); elsewhere it is a warning and those tests skip with a loud message.
pub(crate) fn provision(env: &mut Vec<(String, String)>) -> Result<()> {
    let given = std::env::var_os("OBS_CHROMIUM").map(PathBuf::from).filter(|p| p.is_file());
    let found = match given {
        Some(p) => Ok(p),
        None if Path::new(DEBIAN_CHROMIUM).is_file() => Ok(PathBuf::from(DEBIAN_CHROMIUM)),
        None => install(),
    };
    match found {
        Ok(path) => {
            eprintln!("==> browser: dashboard tests use {}", path.display());
            env.push(("OBS_CHROMIUM".to_owned(), path.display().to_string()));
            Ok(())
        }
        Err(e) if in_ci() => {
            Err(e.context("headless Chromium is required for the dashboard tests"))
        }
        Err(e) => {
            eprintln!(
                "==> browser: WARNING: no headless Chromium ({e:#}); browser tests will skip"
            );
            Ok(())
        }
    }
}
