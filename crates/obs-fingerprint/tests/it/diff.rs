//! Diffs between fingerprints: which fields differ and why a run does not reproduce.

use obs_core::data;
use obs_fingerprint::{Dataset, GpuProbe, TrainingFingerprint};

use crate::repo_with_commit;

fn base<'a>(x: &'a [f32], repo: &std::path::Path) -> obs_fingerprint::FingerprintBuilder<'a> {
    TrainingFingerprint::builder()
        .seed("random_seed", 42)
        .dataset(Dataset::slice(x, &[4, 2]))
        .model_info(data! { "name" => "mlp", "layers" => vec![64, 32] })
        .hyperparameters(data! { "lr" => 0.01, "epochs" => 5 })
        .framework("candle", "0.9.1")
        .git_dir(repo)
        .gpu_probe(GpuProbe::disabled())
}

#[test]
fn identical_setups_do_not_differ() {
    let repo = repo_with_commit();
    let x = [0.5f32; 8];
    let a = base(&x, repo.path()).capture().unwrap();
    let b = base(&x, repo.path()).capture().unwrap();
    assert_ne!(a.run_id, b.run_id, "random run ids differ");
    let diff = a.diff(&b);
    assert!(diff.is_empty(), "{diff}");
    assert!(diff.format_text().contains("no differences"));
    assert!(a.diff(&a).is_empty());
}

#[test]
fn every_changed_input_is_named() {
    let repo = repo_with_commit();
    let x = [0.5f32; 8];
    let mut y = x;
    y[3] = 0.25;
    let a = base(&x, repo.path()).capture().unwrap();
    std::fs::write(repo.path().join("train.py"), "print('edited')\n").unwrap();
    let b = base(&y, repo.path())
        .seed("random_seed", 43)
        .model_info(data! { "name" => "mlp", "layers" => vec![64, 16] })
        .hyperparameters(data! { "lr" => 0.02, "epochs" => 5, "momentum" => 0.9 })
        .framework("candle", "0.9.2")
        .capture()
        .unwrap();
    let diff = a.diff(&b);
    let fields: Vec<&str> = diff.changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "seeds.random_seed",
            "dataset.sha256",
            "versions.frameworks.candle",
            "model.sha256",
            "model.info.layers[1]",
            "hyperparameters.lr",
            "hyperparameters.momentum",
            "git.dirty",
            "git.changed_files",
            "git.worktree_sha256",
        ]
    );
    let seed = diff.get("seeds.random_seed").unwrap();
    assert_eq!((seed.left.as_str(), seed.right.as_str()), ("42", "43"));
    let momentum = diff.get("hyperparameters.momentum").unwrap();
    assert_eq!((momentum.left.as_str(), momentum.right.as_str()), ("(absent)", "0.9"));
    let worktree = diff.get("git.worktree_sha256").unwrap();
    assert_eq!(worktree.left, "(none)");

    let text = diff.format_text();
    assert!(text.contains("10 differences"), "{text}");
    for section in
        ["  Seeds:", "  Dataset:", "  Versions:", "  Model:", "  Hyperparameters:", "  Git:"]
    {
        assert!(text.contains(section), "{section} in {text}");
    }
    assert!(text.contains("    seeds.random_seed: 42 -> 43\n"), "{text}");
    assert!(text.contains(&a.run_id) && text.contains(&b.run_id));
    assert_eq!(diff.to_string(), text);

    // Structured form for tools.
    let json = serde_json::to_value(&diff).unwrap();
    assert_eq!(json["changes"][0]["field"], "seeds.random_seed");
}

#[test]
fn a_dataset_or_git_appearing_is_one_change() {
    let repo = repo_with_commit();
    let x = [0.5f32; 8];
    let with = base(&x, repo.path()).capture().unwrap();
    let without = TrainingFingerprint::builder()
        .seed("random_seed", 42)
        .model_info(data! { "name" => "mlp", "layers" => vec![64, 32] })
        .hyperparameters(data! { "lr" => 0.01, "epochs" => 5 })
        .framework("candle", "0.9.1")
        .without_git()
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap();
    let diff = with.diff(&without);
    let fields: Vec<&str> = diff.changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["dataset", "git"]);
    assert_eq!(diff.changes[0].right, "(none)");
    assert!(diff.changes[0].left.starts_with("{\"sha256\":"));
}

#[test]
fn diff_survives_a_save_and_load() {
    let repo = repo_with_commit();
    let x = [0.5f32; 8];
    let a = base(&x, repo.path()).capture().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    a.save(&path).unwrap();
    let loaded = TrainingFingerprint::load(&path).unwrap();
    assert!(a.diff(&loaded).is_empty());
}
