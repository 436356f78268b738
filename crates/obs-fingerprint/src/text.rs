//! The boxed text form of a fingerprint (the reference's layout).

use std::fmt;
use std::fmt::Write as _;

use crate::TrainingFingerprint;
use crate::time::display_utc;

const TITLE: &str = " Training Fingerprint ";
/// Labels are padded to this width, the width of `"Dataset Hash: "`.
const LABEL: usize = 14;

fn row(out: &mut String, label: &str, value: &str) {
    let label = format!("{label}:");
    let _ = writeln!(out, "  {label:<width$}{value}", width = LABEL.max(label.chars().count() + 1));
}

/// A dimension list as Python prints a tuple: `(10000, 784)`, `(5,)`, `()`.
fn tuple(shape: &[u64]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    }
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl TrainingFingerprint {
    /// The fingerprint as a boxed block of text, one line per field, in the reference's layout:
    ///
    /// ```text
    /// ╔══ Training Fingerprint ══╗
    ///   Run ID:       a1b2c3d4e5f6
    ///   Timestamp:    2026-02-27 14:30:00 UTC
    ///   Seed:         42
    ///   Dataset Hash: 8f14e45fceea167a
    ///   Dataset:      (10000, 784) (float32), 10000 samples
    ///   Observatory:  0.1.0
    ///   Rustc:        1.95.0 (59807616e 2026-04-14)
    ///   CPU:          AMD Ryzen 7 5800X 8-Core Processor (8 cores, 16 threads)
    ///   RAM:          31.3 GiB
    ///   GPU:          NVIDIA GeForce RTX 3060
    ///   OS:           Debian GNU/Linux 12 (kernel 6.1.0-18-amd64, x86_64)
    ///   Git:          main@a1b2c3d4 (dirty)
    ///   Model Hash:   f47ac10b58cc
    ///   Hyperparams:  {"lr":0.01,"batch_size":32,"epochs":50}
    /// ╚══════════════════════════╝
    /// ```
    ///
    /// Hashes are shortened for display (16 and 12 hex digits); the JSON keeps them whole.
    pub fn format_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "╔══{TITLE}══╗");
        row(&mut out, "Run ID", &self.run_id);
        row(&mut out, "Timestamp", &display_utc(&self.timestamp_utc));
        let plain =
            self.seeds.len() == 1 && self.seeds.keys().all(|k| k == "random_seed" || k == "seed");
        if self.seeds.is_empty() {
            row(&mut out, "Seed", "(none)");
        } else if plain {
            let value = self.seeds.values().next().map(u64::to_string).unwrap_or_default();
            row(&mut out, "Seed", &value);
        } else {
            let seeds: Vec<String> = self.seeds.iter().map(|(k, v)| format!("{k}={v}")).collect();
            row(&mut out, "Seeds", &seeds.join(", "));
        }
        match &self.dataset {
            Some(d) => {
                row(&mut out, "Dataset Hash", d.short_hash());
                let samples = if d.samples == 1 { "sample" } else { "samples" };
                row(
                    &mut out,
                    "Dataset",
                    &format!("{} ({}), {} {samples}", tuple(&d.shape), d.dtype, d.samples),
                );
            }
            None => row(&mut out, "Dataset", "(none)"),
        }
        row(&mut out, "Observatory", &self.versions.observatory);
        row(
            &mut out,
            "Rustc",
            self.versions.rustc.strip_prefix("rustc ").unwrap_or(&self.versions.rustc),
        );
        for (name, version) in &self.versions.frameworks {
            row(&mut out, &capitalised(name), version);
        }
        let hw = &self.hardware;
        let cores = match hw.physical_cores {
            Some(p) => format!("{p} cores, {} threads", hw.logical_cores),
            None => format!("{} threads", hw.logical_cores),
        };
        row(
            &mut out,
            "CPU",
            &format!("{} ({cores})", hw.cpu_model.as_deref().unwrap_or("unknown CPU")),
        );
        row(&mut out, "RAM", &format!("{:.1} GiB", hw.ram_bytes as f64 / (1u64 << 30) as f64));
        row(
            &mut out,
            "GPU",
            &if hw.gpus.is_empty() { "None".to_owned() } else { hw.gpus.join(", ") },
        );
        let os = &self.os;
        let name = match (&os.name, &os.version) {
            (Some(n), Some(v)) => format!("{n} {v}"),
            (Some(n), None) => n.clone(),
            (None, _) => os.family.clone(),
        };
        let kernel = os.kernel.as_deref().map(|k| format!("kernel {k}, ")).unwrap_or_default();
        row(&mut out, "OS", &format!("{name} ({kernel}{})", os.arch));
        row(&mut out, "Git", &self.git_summary());
        if let Some(url) = self.git.as_ref().and_then(|g| g.remote_url.as_deref()) {
            row(&mut out, "Remote", url);
        }
        row(&mut out, "Model Hash", self.model.as_ref().map_or("(none)", |m| m.short_hash()));
        row(
            &mut out,
            "Hyperparams",
            &serde_json::to_string(&self.hyperparameters).unwrap_or_else(|_| "{}".to_owned()),
        );
        let width = TITLE.chars().count() + 4;
        let _ = writeln!(out, "╚{}╝", "═".repeat(width));
        out
    }

    /// `main@a1b2c3d4 (dirty)`, `detached@a1b2c3d4`, `main (no commits)`, or
    /// `(not a git repository)`.
    pub(crate) fn git_summary(&self) -> String {
        let Some(git) = &self.git else { return "(not a git repository)".to_owned() };
        let place = match (&git.branch, git.short_commit()) {
            (Some(b), Some(c)) => format!("{b}@{c}"),
            (Some(b), None) => format!("{b} (no commits)"),
            (None, Some(c)) => format!("detached@{c}"),
            (None, None) => "(no commits)".to_owned(),
        };
        if git.dirty { format!("{place} (dirty)") } else { place }
    }
}

/// The same text as [`TrainingFingerprint::format_text`].
impl fmt::Display for TrainingFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_read_like_python() {
        assert_eq!(tuple(&[10_000, 784]), "(10000, 784)");
        assert_eq!(tuple(&[5]), "(5,)");
        assert_eq!(tuple(&[]), "()");
    }

    #[test]
    fn names_are_capitalised_without_panicking() {
        assert_eq!(capitalised("candle"), "Candle");
        assert_eq!(capitalised("éa"), "Éa");
        assert_eq!(capitalised(""), "");
    }

    #[test]
    fn long_labels_keep_a_space() {
        let mut out = String::new();
        row(&mut out, "a-very-long-framework-name", "1.0");
        assert_eq!(out, "  a-very-long-framework-name: 1.0\n");
        let mut out = String::new();
        row(&mut out, "RAM", "1.0 GiB");
        assert_eq!(out, "  RAM:          1.0 GiB\n");
    }
}
