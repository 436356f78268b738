//! `obs fingerprint` and `obs diff`.

use observatory::fingerprint::{Dataset, TrainingFingerprint};

use crate::{demo, obs, tempdir};

#[test]
fn fingerprint_json_hashes_the_dataset_and_records_git() {
    let dir = tempdir();
    let data = dir.path().join("train.bin");
    std::fs::write(&data, (0..10_000u32).flat_map(u32::to_le_bytes).collect::<Vec<u8>>()).unwrap();
    let run =
        obs(dir.path(), &["fingerprint", "--json", "--no-git", "--dataset", "train.bin"]).expect(0);
    let fp = TrainingFingerprint::from_json(&run.stdout).unwrap();
    let expected = Dataset::path(&data).hash().unwrap();
    assert_eq!(fp.dataset.as_ref().map(|d| d.sha256.as_str()), Some(expected.sha256.as_str()));
    assert!(fp.git.is_none());

    // The repository this test lives in.
    let repo = env!("CARGO_MANIFEST_DIR");
    let run = obs(dir.path(), &["fingerprint", "--json", "--repo", repo]).expect(0);
    let fp = TrainingFingerprint::from_json(&run.stdout).unwrap();
    let commit = fp.git.and_then(|g| g.commit).unwrap_or_default();
    assert_eq!(commit.len(), 40, "{commit}");

    // The text block, and saving.
    let run = obs(dir.path(), &["fingerprint", "--no-git", "-o", "fp.json"]).expect(0);
    assert!(run.stdout.contains("Training Fingerprint"), "{}", run.stdout);
    TrainingFingerprint::load(dir.path().join("fp.json")).unwrap();
}

#[test]
fn diff_exits_0_when_identical_1_when_different_2_on_error() {
    let dir = tempdir();
    obs(dir.path(), &["fingerprint", "--no-git", "-o", "a.json"]).expect(0);
    obs(dir.path(), &["fingerprint", "--no-git", "-o", "b.json"]).expect(0);
    // Two captures on one machine differ only in run id and time.
    let same = obs(dir.path(), &["diff", "a.json", "b.json"]).expect(0);
    assert!(same.stdout.contains("no differences"), "{}", same.stdout);

    let mut changed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("b.json")).unwrap()).unwrap();
    changed["seeds"]["random_seed"] = serde_json::json!(7);
    std::fs::write(dir.path().join("c.json"), changed.to_string()).unwrap();
    let differ = obs(dir.path(), &["diff", "a.json", "c.json"]).expect(1);
    assert!(differ.stdout.contains("seeds.random_seed: (absent) -> 7"), "{}", differ.stdout);
    let json = obs(dir.path(), &["diff", "a.json", "c.json", "--json"]).expect(1);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["changes"][0]["field"], "seeds.random_seed");

    let missing = obs(dir.path(), &["diff", "a.json", "nope.json"]).expect(2);
    assert!(
        missing.stderr.starts_with("obs: error: ") && missing.stderr.contains("nope.json"),
        "{}",
        missing.stderr
    );
    std::fs::write(dir.path().join("bad.json"), "{ not json").unwrap();
    let bad = obs(dir.path(), &["diff", "a.json", "bad.json"]).expect(2);
    assert!(bad.stderr.contains("invalid fingerprint JSON in bad.json"), "{}", bad.stderr);
}

#[test]
fn diff_reads_run_directories() {
    let dir = tempdir();
    let (first, _) = demo(dir.path(), 1, &[]);
    let (second, _) = demo(dir.path(), 1, &["--seed", "9"]);
    obs(dir.path(), &["diff", first.to_str().unwrap(), first.to_str().unwrap()]).expect(0);
    let run =
        obs(dir.path(), &["diff", first.to_str().unwrap(), second.to_str().unwrap()]).expect(1);
    assert!(run.stdout.contains("seeds.random_seed: 42 -> 9"), "{}", run.stdout);
    assert!(run.stdout.contains("dataset.sha256"), "{}", run.stdout);
}
