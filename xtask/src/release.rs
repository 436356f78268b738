//! `cargo xtask release`: version bumps, changelog, packaging checks and publishing in
//! dependency order.

use std::fs;

use anyhow::{Context, Result, bail};

use crate::{project_root, run};

/// Publishable crates, each after everything it depends on.
const PUBLISH_ORDER: &[&str] = &[
    "obs-core",
    "obs-adaptive",
    "obs-health",
    "obs-summary",
    "obs-storage",
    "obs-dashboard",
    "obs-fingerprint",
    "obs-bridges",
    "obs-run",
    "obs-candle",
    "obs-burn",
    "observatory",
];

fn valid_version(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Sets the workspace version and every internal dependency's version, and moves the
/// changelog's `[Unreleased]` section under a heading for `version`.
pub(crate) fn prepare(version: &str) -> Result<()> {
    if !valid_version(version) {
        bail!("{version:?} is not a semantic version like 1.2.3");
    }
    let root = project_root();
    let manifest_path = root.join("Cargo.toml");
    let manifest = fs::read_to_string(&manifest_path)?;
    let old = manifest
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| l.strip_prefix("version = \"").and_then(|r| r.strip_suffix('"')))
        .context("no version in [workspace.package]")?
        .to_owned();
    fs::write(&manifest_path, bump(&manifest, &old, version, true))?;
    // Crates that name an internal dependency directly (to choose its features) carry the
    // version too.
    for entry in fs::read_dir(root.join("crates"))? {
        let path = entry?.path().join("Cargo.toml");
        if let Ok(text) = fs::read_to_string(&path) {
            let bumped = bump(&text, &old, version, false);
            if bumped != text {
                fs::write(&path, bumped)?;
            }
        }
    }

    let changelog_path = root.join("CHANGELOG.md");
    let changelog = fs::read_to_string(&changelog_path)?;
    let heading = "## [Unreleased]";
    if !changelog.contains(heading) {
        bail!("CHANGELOG.md has no {heading} section");
    }
    let date = today();
    let changelog =
        changelog.replacen(heading, &format!("{heading}\n\n## [{version}] - {date}"), 1);
    fs::write(&changelog_path, changelog)?;
    eprintln!("==> version {old} -> {version}; CHANGELOG.md has a [{version}] section");
    run("lockfile", "cargo", &["update", "--workspace"], &[])
}

/// Rewrites `version = "old"` to `new` on internal dependency lines, and in
/// `[workspace.package]` when `root` is set.
fn bump(manifest: &str, old: &str, new: &str, root: bool) -> String {
    let from = format!("version = \"{old}\"");
    let to = format!("version = \"{new}\"");
    let mut out = String::with_capacity(manifest.len());
    let mut in_package = false;
    for line in manifest.lines() {
        if line.starts_with('[') {
            in_package = line.trim() == "[workspace.package]";
        }
        let is_internal = line.starts_with("obs-") || line.starts_with("observatory ");
        if root && in_package && line.starts_with("version = ") {
            out.push_str(&to);
        } else if is_internal {
            out.push_str(&line.replace(&from, &to));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Runs every gate, then packages each publishable crate in dependency order.
pub(crate) fn check() -> Result<()> {
    crate::ci()?;
    let mut args = vec!["package", "--no-verify", "--allow-dirty"];
    for krate in PUBLISH_ORDER {
        args.extend(["-p", krate]);
    }
    run("package", "cargo", &args, &[])
}

/// Publishes every crate in dependency order (`--dry-run`: package and verify only).
pub(crate) fn publish(dry_run: bool) -> Result<()> {
    let mut args = vec!["publish"];
    for krate in PUBLISH_ORDER {
        args.extend(["-p", krate]);
    }
    if dry_run {
        args.extend(["--dry-run", "--allow-dirty"]);
    }
    run("publish", "cargo", &args, &[])
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock (days-to-civil conversion).
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::valid_version;

    #[test]
    fn versions_are_checked() {
        assert!(valid_version("0.2.0"));
        assert!(valid_version("1.0.0-rc.1"));
        assert!(!valid_version("1.0"));
        assert!(!valid_version("v1.0.0"));
        assert!(!valid_version("1..0"));
    }
}
