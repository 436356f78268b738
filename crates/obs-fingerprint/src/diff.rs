//! Comparing two fingerprints: which fields differ, as data and as text.

use std::fmt;
use std::fmt::Write as _;

use obs_core::{Data, Value};
use serde::Serialize;

use crate::TrainingFingerprint;
use crate::time::display_utc;

/// Top-level fields that differ between any two runs and so never explain a failed
/// reproduction; [`FingerprintDiff`] names the runs by them instead.
const IDENTITY: [&str; 3] = ["run_id", "timestamp_utc", "timestamp_unix"];

/// One field that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FieldChange {
    /// The field's path: `seeds.random_seed`, `hardware.gpus[0]`, `hyperparameters.lr`.
    pub field: String,
    /// Its value in the first fingerprint, as text: JSON for lists and maps, `(none)` for
    /// null, `(absent)` when the first fingerprint lacks the field.
    pub left: String,
    /// Its value in the second fingerprint, written the same way.
    pub right: String,
}

/// The differences between two fingerprints: "why doesn't this run reproduce that one?".
///
/// Run ids and timestamps are not compared (they always differ); everything else is, down to
/// single hyperparameters and list elements. Build one with [`TrainingFingerprint::diff`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FingerprintDiff {
    /// The first run's id.
    pub left_run: String,
    /// The second run's id.
    pub right_run: String,
    /// The first run's capture time (RFC 3339).
    pub left_time: String,
    /// The second run's capture time (RFC 3339).
    pub right_time: String,
    /// The differing fields, in the fingerprint's field order.
    pub changes: Vec<FieldChange>,
}

impl FingerprintDiff {
    /// Whether the two fingerprints agree on everything but run id and time.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The change of `field`, if it differs.
    pub fn get(&self, field: &str) -> Option<&FieldChange> {
        self.changes.iter().find(|c| c.field == field)
    }

    /// The differences as text, grouped by section, one `field: left -> right` per line.
    pub fn format_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Run {} ({}) vs run {} ({}):",
            self.left_run,
            display_utc(&self.left_time),
            self.right_run,
            display_utc(&self.right_time)
        );
        if self.changes.is_empty() {
            out.push_str("  no differences (apart from run id and time)\n");
            return out;
        }
        let n = self.changes.len();
        let _ = writeln!(out, "  {n} difference{}:", if n == 1 { "" } else { "s" });
        let mut section = "";
        for change in &self.changes {
            let top = change.field.split(['.', '[']).next().unwrap_or("");
            if top != section {
                section = top;
                let _ = writeln!(out, "  {}:", section_title(top));
            }
            let _ = writeln!(out, "    {}: {} -> {}", change.field, change.left, change.right);
        }
        out
    }
}

impl fmt::Display for FingerprintDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format_text())
    }
}

fn section_title(top: &str) -> &str {
    match top {
        "schema_version" => "Format",
        "seeds" => "Seeds",
        "dataset" => "Dataset",
        "versions" => "Versions",
        "hardware" => "Hardware",
        "os" => "OS",
        "model" => "Model",
        "hyperparameters" => "Hyperparameters",
        "git" => "Git",
        other => other,
    }
}

impl TrainingFingerprint {
    /// The fields in which `other` differs from `self`.
    ///
    /// # Examples
    /// ```
    /// use obs_core::data;
    /// use obs_fingerprint::TrainingFingerprint;
    ///
    /// let a = TrainingFingerprint::builder().seed("random_seed", 1).without_git().capture()?;
    /// let b = TrainingFingerprint::builder()
    ///     .seed("random_seed", 2)
    ///     .hyperparameters(data! { "lr" => 0.1 })
    ///     .without_git()
    ///     .capture()?;
    /// let diff = a.diff(&b);
    /// assert_eq!(diff.get("seeds.random_seed").map(|c| c.right.as_str()), Some("2"));
    /// assert!(diff.get("hyperparameters.lr").is_some());
    /// eprintln!("{diff}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn diff(&self, other: &TrainingFingerprint) -> FingerprintDiff {
        let (a, b) = (self.to_data(), other.to_data());
        let mut changes = Vec::new();
        diff_maps("", &a, &b, &mut changes, true);
        FingerprintDiff {
            left_run: self.run_id.clone(),
            right_run: other.run_id.clone(),
            left_time: self.timestamp_utc.clone(),
            right_time: other.timestamp_utc.clone(),
            changes,
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

fn diff_maps(prefix: &str, a: &Data, b: &Data, out: &mut Vec<FieldChange>, top: bool) {
    // The first map's order, then keys only the second has.
    let keys =
        a.iter().map(|(k, _)| k).chain(b.iter().map(|(k, _)| k).filter(|k| a.get(k).is_none()));
    for key in keys {
        if top && IDENTITY.contains(&key) {
            continue;
        }
        diff_values(&join(prefix, key), a.get(key), b.get(key), out);
    }
}

fn diff_values(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Some(Value::Map(x)), Some(Value::Map(y))) => diff_maps(path, x, y, out, false),
        (Some(Value::List(x)), Some(Value::List(y))) => {
            for i in 0..x.len().max(y.len()) {
                diff_values(&format!("{path}[{i}]"), x.get(i), y.get(i), out);
            }
        }
        _ if a == b => {}
        _ => out.push(FieldChange { field: path.to_owned(), left: show(a), right: show(b) }),
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".to_owned(),
        Some(Value::Null) => "(none)".to_owned(),
        Some(Value::Str(s)) => s.clone(),
        Some(other) => serde_json::to_string(other).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use obs_core::data;

    use super::*;

    #[test]
    fn nested_lists_and_maps_report_leaf_paths() {
        let a = data! { "m" => data! { "layers" => vec![64, 32], "act" => "relu" }, "x" => Value::Null };
        let b = data! { "m" => data! { "layers" => vec![64, 16, 8], "act" => "relu" }, "x" => data! { "k" => 1 } };
        let mut out = Vec::new();
        diff_maps("", &a, &b, &mut out, true);
        let got: Vec<(&str, &str, &str)> =
            out.iter().map(|c| (c.field.as_str(), c.left.as_str(), c.right.as_str())).collect();
        assert_eq!(
            got,
            [
                ("m.layers[1]", "32", "16"),
                ("m.layers[2]", "(absent)", "8"),
                ("x", "(none)", "{\"k\":1}")
            ]
        );
    }

    #[test]
    fn identity_fields_are_skipped_only_at_the_top() {
        let a = data! { "run_id" => "a", "hyperparameters" => data! { "run_id" => 1 } };
        let b = data! { "run_id" => "b", "hyperparameters" => data! { "run_id" => 2 } };
        let mut out = Vec::new();
        diff_maps("", &a, &b, &mut out, true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].field, "hyperparameters.run_id");
    }

    #[test]
    fn nan_equals_nan_and_int_differs_from_float() {
        let a = data! { "x" => f64::NAN, "y" => 1 };
        let b = data! { "x" => f64::NAN, "y" => 1.0 };
        let mut out = Vec::new();
        diff_maps("", &a, &b, &mut out, true);
        assert_eq!(out.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), ["y"]);
    }
}
