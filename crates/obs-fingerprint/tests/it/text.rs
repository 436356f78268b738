//! The boxed text layout.

use obs_core::data;
use obs_fingerprint::{Dataset, GpuProbe, TrainingFingerprint};

fn labels(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| l.trim_start().split(':').next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn layout_follows_the_reference() {
    let x = vec![1.0f64; 10_000 * 4];
    let fp = TrainingFingerprint::builder()
        .run_id("a1b2c3d4e5f6")
        .seed("random_seed", 42)
        .dataset(Dataset::slice(&x, &[10_000, 4]))
        .model_info(data! { "name" => "my_model", "layers" => 3 })
        .hyperparameters(data! { "lr" => 0.01, "batch_size" => 32, "epochs" => 50 })
        .framework("candle", "0.9.1")
        .without_git()
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap();
    let text = fp.format_text();
    assert_eq!(fp.to_string(), text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"╔══ Training Fingerprint ══╗"));
    assert_eq!(lines.last(), Some(&"╚══════════════════════════╝"));
    assert_eq!(lines[0].chars().count(), lines[lines.len() - 1].chars().count());
    assert_eq!(
        labels(&text),
        [
            "Run ID",
            "Timestamp",
            "Seed",
            "Dataset Hash",
            "Dataset",
            "Observatory",
            "Rustc",
            "Candle",
            "CPU",
            "RAM",
            "GPU",
            "OS",
            "Git",
            "Model Hash",
            "Hyperparams",
        ]
    );
    assert!(text.contains("  Run ID:       a1b2c3d4e5f6\n"));
    assert!(text.contains("  Seed:         42\n"));
    let d = fp.dataset.as_ref().unwrap();
    assert!(text.contains(&format!("  Dataset Hash: {}\n", &d.sha256[..16])));
    assert!(text.contains("  Dataset:      (10000, 4) (float64), 10000 samples\n"));
    assert!(text.contains(&format!("  Observatory:  {}\n", env!("CARGO_PKG_VERSION"))));
    assert!(text.contains("  Candle:       0.9.1\n"));
    assert!(text.contains("  GPU:          None\n"));
    let m = fp.model.as_ref().unwrap();
    assert!(text.contains(&format!("  Model Hash:   {}\n", &m.sha256[..12])));
    assert!(text.contains("  Hyperparams:  {\"lr\":0.01,\"batch_size\":32,\"epochs\":50}\n"));
    let ts = &fp.timestamp_utc;
    assert!(text.contains(&format!("  Timestamp:    {} {} UTC\n", &ts[..10], &ts[11..19])));
    // Every value column starts at the same offset.
    for line in &lines[1..lines.len() - 1] {
        let at = |i| line.chars().nth(i).map(char::is_whitespace);
        assert_eq!((at(15), at(16)), (Some(true), Some(false)), "{line:?}");
    }
}

#[test]
fn empty_fields_say_so() {
    let fp = TrainingFingerprint::builder()
        .seed("shuffle", 7)
        .seed("init", 1)
        .without_git()
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap();
    let text = fp.format_text();
    assert!(text.contains("  Seeds:        init=1, shuffle=7\n"), "{text}");
    assert!(text.contains("  Dataset:      (none)\n"));
    assert!(text.contains("  Model Hash:   (none)\n"));
    assert!(text.contains("  Hyperparams:  {}\n"));
    assert!(text.contains("  Git:          (not a git repository)\n"));
    assert!(!text.contains("Dataset Hash"));
    let fp = TrainingFingerprint::builder()
        .without_git()
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap();
    assert!(fp.format_text().contains("  Seed:         (none)\n"));
}
