//! The exporter on a real logger, and what the page contains.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use obs_core::{LogLevel, Severity, TrainingLogger, data};
use obs_dashboard::{Dashboard, DashboardConfig, DashboardExporter};

use crate::support::*;

#[test]
fn handle_save_renders_the_current_state_and_close_renders_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dashboard.html");
    let exporter = DashboardExporter::new(&path);
    let handle = exporter.handle();
    assert_eq!(exporter.path(), path);
    let logger = TrainingLogger::new(LogLevel::Detailed).unwrap();
    logger.add_backend(exporter).unwrap();
    logger.on_train_start(2, data! { "name" => "tiny" });
    logger.on_epoch_start(0);
    for b in 0..10 {
        logger.on_batch_end(b, data! { "loss" => 1.0 - b as f64 * 0.05 });
    }
    logger.on_epoch_end(0, data! { "loss" => 0.8 });
    logger.flush().unwrap();
    handle.save().unwrap();
    let first = fs::read_to_string(&path).unwrap();
    let d = page_data(&first);
    assert_eq!(chart(&d, "batch").unwrap()["series"][0]["v"].as_array().unwrap().len(), 10);
    assert!(first.contains("Running"));
    assert!(first.contains("Training dashboard — tiny"));

    logger.on_epoch_start(1);
    logger.on_batch_end(0, data! { "loss" => 0.3 });
    logger.on_epoch_end(1, data! { "loss" => 0.5 });
    logger.on_train_end(data! {});
    let report = logger.close().unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let last = fs::read_to_string(&path).unwrap();
    let d = page_data(&last);
    // Batch 0 of epoch 1 is global step 10.
    let v = chart(&d, "batch").unwrap()["series"][0]["v"].as_array().unwrap().clone();
    assert_eq!(v.len(), 11);
    assert_eq!(v[10], 0.3);
    assert_eq!(d["axes"]["step"]["max"], 10);
    assert!(last.contains("Complete"));
    assert_eq!(handle.events(), 17);
    // Only the dashboard is in the directory: no temporary file is left behind.
    let names: Vec<_> =
        fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["dashboard.html"]);
}

#[test]
fn a_closed_run_without_train_end_is_marked_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = DashboardExporter::new(dir.path().join("d.html"));
    let handle = exporter.handle();
    let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
    logger.add_backend(exporter).unwrap();
    logger.on_epoch_start(0);
    logger.on_epoch_end(0, data! { "loss" => 0.8 });
    drop(logger);
    let html = fs::read_to_string(handle.path()).unwrap();
    assert!(html.contains(">Stopped<"), "closing on drop renders the final page");
}

#[test]
fn live_mode_rewrites_the_file_at_each_epoch_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.html");
    let mut config = DashboardConfig::default();
    config.live = true;
    let exporter = DashboardExporter::with_config(&path, config);
    let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
    logger.add_backend(exporter).unwrap();
    logger.on_epoch_start(0);
    logger.flush().unwrap();
    assert!(!path.exists(), "nothing is rendered before the first epoch end");
    for epoch in 0..3u64 {
        logger.on_epoch_start(epoch);
        logger.on_epoch_end(epoch, data! { "loss" => 1.0 / (1.0 + epoch as f64) });
        logger.flush().unwrap();
        let d = page_data(&fs::read_to_string(&path).unwrap());
        let v = chart(&d, "loss").unwrap()["series"][0]["v"].as_array().unwrap().len();
        assert_eq!(v as u64, epoch + 1, "epoch {epoch} is on the page without save()");
    }
    let html = fs::read_to_string(&path).unwrap();
    assert!(html.contains("live: rewritten at every epoch end"));
    logger.close().unwrap();
    assert!(!fs::read_to_string(&path).unwrap().contains("live: rewritten"));
}

#[test]
fn live_renders_are_throttled_by_the_interval_and_caught_up_on_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.html");
    let mut config = DashboardConfig::default();
    config.live = true;
    config.live_min_interval = std::time::Duration::from_secs(3600);
    let exporter = DashboardExporter::with_config(&path, config);
    let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
    logger.add_backend(exporter).unwrap();
    logger.on_epoch_start(0);
    logger.on_epoch_end(0, data! { "loss" => 1.0 });
    logger.bus().flush().unwrap();
    let first = fs::read_to_string(&path).unwrap();
    assert_eq!(
        chart(&page_data(&first), "loss").unwrap()["series"][0]["v"].as_array().unwrap().len(),
        1
    );
    logger.on_epoch_start(1);
    logger.on_epoch_end(1, data! { "loss" => 0.5 });
    logger.flush().unwrap();
    // The second epoch end fell inside the interval; the flush rendered it.
    let second = fs::read_to_string(&path).unwrap();
    assert_eq!(
        chart(&page_data(&second), "loss").unwrap()["series"][0]["v"].as_array().unwrap().len(),
        2
    );
    logger.close().unwrap();
}

#[test]
fn readers_never_see_a_partial_file_while_saves_race() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.html");
    let exporter = DashboardExporter::new(&path);
    let handle = exporter.handle();
    let logger = TrainingLogger::new(LogLevel::Detailed).unwrap();
    logger.add_backend(exporter).unwrap();
    handle.save().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, path) = (Arc::clone(&stop), path.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) || reads == 0 {
                let html = fs::read_to_string(&path).unwrap();
                assert!(
                    html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>")
                );
                reads += 1;
            }
            reads
        })
    };
    let savers: Vec<_> = (0..2)
        .map(|_| {
            let h = handle.clone();
            std::thread::spawn(move || {
                for _ in 0..15 {
                    h.save().unwrap();
                }
            })
        })
        .collect();
    for b in 0..3000 {
        logger.on_batch_end(b, data! { "loss" => (b as f64).sin() });
    }
    for s in savers {
        s.join().unwrap();
    }
    logger.close().unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    let d = page_data(&fs::read_to_string(&path).unwrap());
    assert_eq!(d["axes"]["step"]["max"], 2999, "the final render has every batch");
}

#[test]
fn absent_series_are_absent_not_zero() {
    let mut dash = Dashboard::default();
    dash.ingest(&epoch_end(0, data! { "loss" => 0.9 }, 1.0));
    dash.ingest(&epoch_end(2, data! { "loss" => 0.7, "val_loss" => 0.8 }, 1.0));
    let html = dash.render().unwrap();
    let d = page_data(&html);
    let loss = chart(&d, "loss").unwrap();
    assert_eq!(series_names(loss), ["loss", "val_loss"]);
    // Epoch 1 was never logged: a gap (null), not a zero; val_loss only exists at epoch 2.
    assert_eq!(loss["series"][0]["v"], serde_json::json!([0.9, null, 0.7]));
    assert_eq!(loss["series"][1]["v"], serde_json::json!([null, null, 0.8]));
    for id in ["accuracy", "batch", "grad", "health", "epoch-metrics"] {
        assert!(chart(&d, id).is_none(), "{id} has no data and no chart");
    }
    assert!(!html.contains("data-chart=\"accuracy\""));
    assert!(!html.contains("Train accuracy"));
    assert!(html.contains("No health findings"));
}

#[test]
fn non_finite_values_keep_the_json_valid_and_are_marked() {
    let mut dash = Dashboard::default();
    for (b, loss) in [1.0, f64::NAN, 0.5, f64::INFINITY, f64::NEG_INFINITY].into_iter().enumerate()
    {
        dash.ingest(&batch_end(0, b as u64, loss));
    }
    dash.ingest(&epoch_end(0, data! { "loss" => f64::NAN }, f64::INFINITY));
    let html = dash.render().unwrap();
    let d = page_data(&html);
    let batch = &chart(&d, "batch").unwrap()["series"][0];
    assert_eq!(batch["v"], serde_json::json!([1.0, null, 0.5, null, null]));
    assert_eq!(batch["nf"], serde_json::json!([[1, 1], [3, 1], [4, 1]]));
    let open = r#"<script type="application/json" id="obs-data">"#;
    let json = html.split(open).nth(1).unwrap().split("</script>").next().unwrap();
    assert!(!json.contains("NaN") && !json.contains("Infinity"));
    // The summary card says what the last value was.
    assert!(html.contains(">NaN<"));
}

#[test]
fn a_million_batches_stay_bounded_and_every_spike_survives() {
    let mut dash = Dashboard::default();
    let n = 1_000_000u64;
    let spikes = [17u64, 333_333, 999_999];
    for step in 0..n {
        let (epoch, batch) = (step / 10_000, step % 10_000);
        let loss = if spikes.contains(&step) { 100.0 + step as f64 } else { 1.0 };
        dash.ingest(&batch_end(epoch, batch, if step == 500_000 { -7.0 } else { loss }));
    }
    let html = dash.render().unwrap();
    assert!(html.len() < 3_000_000, "{} bytes", html.len());
    let d = page_data(&html);
    let s = &chart(&d, "batch").unwrap()["series"][0];
    let w = s["w"].as_u64().unwrap();
    let buckets = s["v"].as_array().unwrap().len() as u64;
    assert!(buckets <= 2048 && buckets * w >= n, "{buckets} buckets of {w}");
    let hi = s["hi"].as_array().unwrap();
    for step in spikes {
        assert_eq!(hi[(step / w) as usize].as_f64(), Some(100.0 + step as f64), "spike at {step}");
    }
    assert_eq!(s["lo"][(500_000 / w) as usize].as_f64(), Some(-7.0));
    let counted: u64 = s["n"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(counted, n);
}

#[test]
fn health_groups_open_onto_their_diagnosis_and_recommendations() {
    let mut dash = Dashboard::default();
    for b in 0..7 {
        dash.ingest(&health(0, b, "dead_relu", Severity::Warning, "Possible dying ReLU"));
    }
    dash.ingest(&health(0, 9, "exploding_gradient", Severity::Danger, "Exploding gradient"));
    let mut trig = health(0, 9, "ignored", Severity::Critical, "NaN loss");
    trig.data.remove("rule_name");
    trig.data.insert("trigger", "nan_inf");
    dash.ingest(&trig);
    let html = dash.render().unwrap();
    let d = page_data(&html);
    let timeline = chart(&d, "health").unwrap();
    assert_eq!(series_names(timeline), ["dead_relu", "exploding_gradient", "nan_inf"]);
    let counts: u64 = timeline["series"][0]["n"]
        .as_array()
        .map_or(7, |n| n.iter().map(|c| c.as_u64().unwrap()).sum());
    assert_eq!(counts, 7);
    for needle in [
        r#"<details class="rule sev-warning" id="rule-0">"#,
        "<span class=\"rule-count\">× 7</span>",
        "<p>Diagnosis of dead_relu.</p>",
        "<li>First fix for dead_relu</li>",
        "<li>Lower the learning rate</li>",
        r#"<details class="rule sev-critical" id="rule-2">"#,
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    assert!(html.contains(">9<"), "the health card counts every finding");
}

#[test]
fn model_info_and_fingerprint_are_shown() {
    let dash = Dashboard::from_events(DashboardConfig::default(), hostile_run(2, 4));
    let html = dash.render().unwrap();
    for needle in [
        "<h3>Model</h3>",
        "<h3>Fingerprint</h3>",
        "<th>run_id</th><td>abc123</td>",
        "<th>git.branch</th>",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    assert!(html.contains("&quot;quoted&quot; &amp; &lt;tag&gt;"));
}

#[test]
fn a_save_that_cannot_write_is_an_error_and_is_reported_by_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    // The target path is a directory: the final rename must fail.
    let path = dir.path().join("taken");
    fs::create_dir(&path).unwrap();
    fs::write(path.join("keep"), "x").unwrap();
    let exporter = DashboardExporter::new(&path);
    let handle = exporter.handle();
    let err = handle.save().unwrap_err();
    assert!(matches!(err, obs_dashboard::DashboardError::Io { .. }), "{err}");
    assert!(err.to_string().contains("taken"));
    let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
    logger.add_backend(exporter).unwrap();
    let report = logger.close().unwrap();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    // Nothing but the original content is left in the way.
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["taken"]);
}

#[test]
fn many_layers_are_capped_and_merged_to_keep_the_page_small() {
    let mut config = DashboardConfig::default();
    config.max_layers = 40;
    let mut dash = Dashboard::new(config);
    for step in 0..4096u64 {
        for l in 0..50 {
            dash.ingest(&grad(
                0,
                step,
                &format!("layer_{l}"),
                if step == 4000 && l == 3 { 1e6 } else { 0.1 },
            ));
        }
    }
    let html = dash.render().unwrap();
    let d = page_data(&html);
    let g = chart(&d, "grad").unwrap();
    let names = series_names(g);
    assert_eq!(names.len(), 40);
    assert_eq!(&names[..3], ["layer_0", "layer_1", "layer_2"], "natural order");
    let total: usize =
        g["series"].as_array().unwrap().iter().map(|s| s["v"].as_array().unwrap().len()).sum();
    assert!(total <= 16_384, "{total} buckets across layers");
    let l3 = g["series"].as_array().unwrap().iter().find(|s| s["name"] == "layer_3").unwrap();
    let w = l3["w"].as_u64().unwrap();
    assert_eq!(l3["hi"][(4000 / w) as usize].as_f64(), Some(1e6), "the spike survives merging");
    assert!(html.contains("only the first 40 layers are kept"));
}
