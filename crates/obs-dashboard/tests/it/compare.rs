//! The comparison page: what it overlays, its tables, its escaping and its errors.

use obs_core::data;
use obs_dashboard::{Comparison, Dashboard, DashboardConfig, DashboardError, MAX_COMPARED_RUNS};

use crate::support::*;

/// A clean run of `epochs` epochs whose loss falls at `rate`.
pub(crate) fn clean_run(epochs: u64, rate: f64) -> Dashboard {
    let mut events = Vec::new();
    for e in 0..epochs {
        for b in 0..10 {
            events.push(batch_end(e, b, 2.0 / (1.0 + rate * (e * 10 + b) as f64)));
        }
        events.push(epoch_end(
            e,
            data! { "loss" => 1.0 / (1.0 + rate * e as f64), "val_acc" => 0.5 + 0.05 * e as f64 },
            1.5 + e as f64 * 0.1,
        ));
    }
    Dashboard::from_events(DashboardConfig::default(), events)
}

/// A comparison of a clean run and the hostile one, labelled with markup.
pub(crate) fn hostile_comparison() -> Comparison {
    let mut page = Comparison::new();
    page.add_run("baseline", clean_run(4, 0.5)).unwrap();
    page.add_run(
        SCRIPT_LAYER,
        Dashboard::from_events(DashboardConfig::default(), hostile_run(4, 12)),
    )
    .unwrap();
    page.add_difference("hyperparameters.lr", ["0.01", IMG_MESSAGE]).unwrap();
    page.add_difference("git.branch", ["main", "\"quoted\" & <tag>"]).unwrap();
    page
}

#[test]
fn every_run_is_overlaid_under_its_label() {
    let html = hostile_comparison().render().unwrap();
    let data = page_data(&html);
    let loss = series_names(chart(&data, "loss").unwrap());
    assert_eq!(
        loss,
        [
            "baseline · loss".to_owned(),
            format!("{SCRIPT_LAYER} · loss"),
            format!("{SCRIPT_LAYER} · val_loss"),
        ]
    );
    assert_eq!(
        series_names(chart(&data, "timing").unwrap()),
        ["baseline".to_owned(), SCRIPT_LAYER.to_owned()]
    );
    assert_eq!(series_names(chart(&data, "batch").unwrap()).len(), 2);
    assert!(chart(&data, "accuracy").is_some());
    // Only the hostile run has findings: one timeline row per rule of that run.
    let health = series_names(chart(&data, "health").unwrap());
    assert!(health.iter().all(|n| n.starts_with(SCRIPT_LAYER)), "{health:?}");
    assert_eq!(health.len(), 2);
    // Both runs' steps fit on the shared step axis.
    assert_eq!(data["axes"]["step"]["max"], 47);
}

#[test]
fn findings_and_differences_are_tables_with_a_column_per_run() {
    let html = hostile_comparison().render().unwrap();
    let findings = &html[html.find("id=\"compare-findings\"").unwrap()..];
    let findings = &findings[..findings.find("</table>").unwrap()];
    // One row per rule, in natural order, with a cell per run.
    let rows: Vec<&str> = findings.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 2, "{findings}");
    assert!(rows[0].starts_with("<th>gradient_spike</th><td class=\"tone-muted\">—</td>"));
    assert!(
        rows[0].contains("warning") && rows[0].contains("× 12, first at step 0 (epoch 0, batch 0)")
    );
    assert!(rows[1].starts_with("<th>nan_inf_loss</th>") && rows[1].contains("critical"));
    let diffs = &html[html.find("id=\"compare-differences\"").unwrap()..];
    assert!(diffs.contains("<th>hyperparameters.lr</th><td class=\"tone-plain\">0.01</td>"));
    assert!(diffs.contains("&lt;img src=x onerror=alert(1)&gt;"));
    let facts = &html[html.find("id=\"compare-runs\"").unwrap()..];
    assert!(facts.contains(
        "<th>health findings</th><td class=\"tone-good\">0</td><td class=\"tone-bad\">13</td>"
    ));
}

#[test]
fn no_label_or_value_reaches_the_page_as_markup() {
    let html = hostile_comparison().render().unwrap();
    for raw in [SCRIPT_LAYER, IMG_MESSAGE, "<tag>", "<b>mlp</b>"] {
        assert!(!html.contains(raw), "{raw:?} appears unescaped");
    }
    assert_eq!(html.matches("<script").count(), 3);
    assert_eq!(html.matches("</script>").count(), 3);
}

#[test]
fn identical_fingerprints_and_missing_ones_say_so() {
    let mut page = Comparison::new();
    page.add_run("a", clean_run(2, 0.5)).unwrap();
    page.add_run("b", clean_run(2, 0.7)).unwrap();
    let html = page.render().unwrap();
    assert!(html.contains("The fingerprints agree on everything but run id and time."));
    assert!(html.contains("No run recorded a health finding."));
    page.add_note("b: no fingerprint.json");
    let html = page.render().unwrap();
    assert!(html.contains("b: no fingerprint.json"));
    assert!(!html.contains("The fingerprints agree"));
}

#[test]
fn labels_are_unique_and_never_empty() {
    let mut page = Comparison::new();
    for label in ["run", "run", "", "run"] {
        page.add_run(label, Dashboard::default()).unwrap();
    }
    assert_eq!(page.labels().collect::<Vec<_>>(), ["run", "run #2", "run 3", "run #3"]);
}

#[test]
fn inconsistent_input_is_a_clear_error() {
    let is_compare = |r: Result<_, DashboardError>, want: &str| match r {
        Err(DashboardError::Compare(m)) => assert!(m.contains(want), "{m}"),
        other => panic!("expected a Compare error containing {want:?}, got {other:?}"),
    };
    is_compare(Comparison::new().render().map(drop), "no runs");
    let mut page = Comparison::new();
    page.add_run("a", Dashboard::default()).unwrap();
    page.add_run("b", Dashboard::default()).unwrap();
    is_compare(page.add_difference("seed", ["1"]), "one value per run: got 1 values for 2 runs");
    page.add_difference("seed", ["1", "2"]).unwrap();
    is_compare(page.add_run("c", Dashboard::default()), "before the fingerprint differences");
    let mut full = Comparison::new();
    for i in 0..MAX_COMPARED_RUNS {
        full.add_run(format!("r{i}"), Dashboard::default()).unwrap();
    }
    is_compare(full.add_run("one too many", Dashboard::default()), "at most 16 runs");
    // A run without any event still renders (its cells are dashes).
    let html = full.render().unwrap();
    assert!(html.contains("None of the runs recorded metrics."));
}
