//! Fingerprints never record environment variables or credentials.
//!
//! The test re-runs this test binary as a child process with a secret in its environment (set
//! with `Command::env`, so the test process's own environment is never modified) and checks the
//! fingerprint the child captures.

use std::process::Command;

use obs_fingerprint::{Dataset, GpuProbe, TrainingFingerprint};

use crate::{git, repo_with_commit};

const SECRET: &str = "obs-secret-7f3a9c1e5d";
const CHILD: &str = "OBS_FINGERPRINT_PRIVACY_CHILD";

/// In the child: capture a full fingerprint from the repository named by the environment and
/// print its JSON and text.
#[test]
fn privacy_child() {
    let Some(repo) = std::env::var_os(CHILD) else { return };
    let x = [1.0f32; 4];
    let fp = TrainingFingerprint::builder()
        .seed("random_seed", 1)
        .dataset(Dataset::slice(&x, &[2, 2]))
        .git_dir(repo)
        .include_untracked(true)
        .gpu_probe(GpuProbe::default())
        .capture()
        .unwrap();
    #[allow(clippy::print_stdout, reason = "the parent test reads the child's output")]
    {
        println!("{}", fp.to_json());
        println!("{}", fp.format_text());
    }
}

#[test]
fn no_environment_variable_or_credential_is_recorded() {
    let repo = repo_with_commit();
    git(
        repo.path(),
        &["remote", "add", "origin", &format!("https://ci-bot:{SECRET}@example.com/r.git")],
    );
    std::fs::write(repo.path().join("train.py"), "edited").unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", "privacy::privacy_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, repo.path())
        .env("OBS_TEST_API_KEY", SECRET)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("HF_TOKEN", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\"remote_url\": \"https://example.com/r.git\""), "{stdout}");
    assert!(stdout.contains("Training Fingerprint"), "{stdout}");
    assert!(!stdout.contains(SECRET), "{stdout}");
    assert!(!stdout.contains("ci-bot"), "{stdout}");
    for name in ["OBS_TEST_API_KEY", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN", CHILD] {
        assert!(!stdout.contains(name), "{name} in {stdout}");
    }
}
