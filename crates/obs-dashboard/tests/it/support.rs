//! Helpers shared by the integration tests.

use obs_core::{Event, EventType, LogLevel, Severity, data};

/// The chart data embedded in a page, parsed.
pub(crate) fn page_data(html: &str) -> serde_json::Value {
    let open = r#"<script type="application/json" id="obs-data">"#;
    let start = html.find(open).expect("the page embeds its data") + open.len();
    let end = start + html[start..].find("</script>").expect("the data script is closed");
    serde_json::from_str(&html[start..end]).expect("the embedded data is valid JSON")
}

/// The chart with `id`, if the page has one.
pub(crate) fn chart<'a>(data: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    data["charts"].as_array()?.iter().find(|c| c["id"] == id)
}

/// The names of a chart's series.
pub(crate) fn series_names(chart: &serde_json::Value) -> Vec<String> {
    chart["series"]
        .as_array()
        .map(|s| s.iter().map(|s| s["name"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

pub(crate) fn batch_end(epoch: u64, batch: u64, loss: f64) -> Event {
    Event::new(EventType::BatchEnd, LogLevel::Detailed)
        .at(Some(epoch), Some(batch))
        .field("metrics", data! { "loss" => loss })
}

pub(crate) fn epoch_end(epoch: u64, metrics: obs_core::Data, duration_s: f64) -> Event {
    Event::new(EventType::EpochEnd, LogLevel::Basic)
        .at(Some(epoch), None)
        .field("metrics", metrics)
        .field("duration_s", duration_s)
}

pub(crate) fn grad(epoch: u64, batch: u64, layer: &str, norm: f64) -> Event {
    Event::new(EventType::GradientComputed, LogLevel::Detailed)
        .at(Some(epoch), Some(batch))
        .layer(layer, None)
        .field("grad_norm", norm)
}

pub(crate) fn health(
    epoch: u64,
    batch: u64,
    rule: &str,
    severity: Severity,
    message: &str,
) -> Event {
    Event::new(EventType::HealthCheck, LogLevel::Basic)
        .at(Some(epoch), Some(batch))
        .severity(severity)
        .message(message)
        .data(data! {
            "rule_name" => rule,
            "diagnosis" => format!("Diagnosis of {rule}."),
            "recommendations" => vec![format!("First fix for {rule}"), "Lower the learning rate".to_owned()],
        })
}

/// The payloads of the security tests.
pub(crate) const SCRIPT_LAYER: &str = "</script><script>alert(1)</script>";
pub(crate) const IMG_MESSAGE: &str = "<img src=x onerror=alert(1)>";

/// A run exercising every chart, with hostile strings and non-finite numbers in it.
pub(crate) fn hostile_run(epochs: u64, batches: u64) -> Vec<Event> {
    let mut out = vec![
        Event::new(EventType::TrainStart, LogLevel::Basic)
            .message("Training started")
            .data(data! {
                "total_epochs" => epochs,
                "model_info" => data! { "name" => "<b>mlp</b>\u{2028}", "layers" => 3 },
                "fingerprint" => data! { "run_id" => "abc123", "seed" => 42, "git" => data! { "branch" => "\"quoted\" & <tag>" } },
            }),
    ];
    for e in 0..epochs {
        out.push(Event::new(EventType::EpochStart, LogLevel::Basic).at(Some(e), None));
        for b in 0..batches {
            let step = e * batches + b;
            let loss =
                if step == batches + 3 { f64::NAN } else { 2.0 / (1.0 + step as f64 * 0.05) };
            out.push(batch_end(e, b, loss));
            for (i, layer) in ["dense_0", SCRIPT_LAYER, "dense_10"].iter().enumerate() {
                out.push(grad(
                    e,
                    b,
                    layer,
                    0.01 * (i + 1) as f64 + if step == 7 { 50.0 } else { 0.0 },
                ));
            }
            if b % 5 == 0 {
                out.push(health(e, b, "gradient_spike", Severity::Warning, IMG_MESSAGE));
            }
        }
        if e == 1 {
            out.push(health(
                e,
                batches - 1,
                "nan_inf_loss",
                Severity::Critical,
                "NaN/Inf detected in loss!",
            ));
        }
        let metrics = data! {
            "loss" => 1.0 / (1.0 + e as f64),
            "val_loss" => if e == 2 { f64::INFINITY } else { 1.2 / (1.0 + e as f64) },
            "accuracy" => 0.5 + 0.1 * e as f64,
            "lr" => 0.01,
        };
        out.push(epoch_end(e, metrics, 1.5 + e as f64 * 0.1));
    }
    out.push(
        Event::new(EventType::TrainEnd, LogLevel::Basic)
            .severity(Severity::Success)
            .field("duration_s", 12.5),
    );
    // Distinct, increasing timestamps: the storage reader merges tiers by time.
    for (i, e) in out.iter_mut().enumerate() {
        e.timestamp = 1_740_000_000.0 + i as f64 * 0.01;
    }
    out
}
