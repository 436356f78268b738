//! Finds the version of `candle-core` this build links, for the training fingerprint.
//!
//! candle exposes no version constant, and Cargo tells a build script the versions of its
//! dependencies only for crates with a `links` key. The resolved version is in the
//! `Cargo.lock` of the project being built: this script looks for it above the output
//! directory (the project's `target/` is usually inside the project) and above this crate's
//! manifest (a workspace member), and reads the `candle-core` entry of the 0.11 line. Without a
//! lock file it records the requirement this crate was built against, marked as such.

use std::path::{Path, PathBuf};

/// The requirement in this crate's manifest, used when no lock file is found.
const FALLBACK: &str = "0.11 (lock file not found)";

fn lock_files() -> Vec<PathBuf> {
    let mut starts = Vec::new();
    if let Some(out) = std::env::var_os("OUT_DIR") {
        starts.push(PathBuf::from(out));
    }
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        starts.push(PathBuf::from(dir));
    }
    let mut found = Vec::new();
    for start in starts {
        let mut dir: Option<&Path> = Some(&start);
        while let Some(d) = dir {
            let lock = d.join("Cargo.lock");
            if lock.is_file() && !found.contains(&lock) {
                found.push(lock);
                break;
            }
            dir = d.parent();
        }
    }
    found
}

/// The version of the `candle-core` entry of the 0.11 line in a `Cargo.lock`.
fn candle_version(lock: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"candle-core\"" {
            let version = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            if version.starts_with("0.11.") {
                return Some(version.to_owned());
            }
        }
    }
    None
}

fn main() {
    let mut version = None;
    for lock in lock_files() {
        println!("cargo:rerun-if-changed={}", lock.display());
        if version.is_none() {
            version = std::fs::read_to_string(&lock).ok().as_deref().and_then(candle_version);
        }
    }
    let version = version.unwrap_or_else(|| FALLBACK.to_owned());
    println!("cargo:rustc-env=OBS_CANDLE_CANDLE_VERSION={version}");
    println!("cargo:rerun-if-changed=build.rs");
}
