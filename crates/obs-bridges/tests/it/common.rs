//! A synthetic run with known values, shared by the tests.

use std::collections::BTreeMap;

use obs_bridges::Histogram;
use obs_bridges::wandb::WandbRecord;
use obs_core::{Event, EventType, Severity, data};

pub(crate) const EPOCHS: u64 = 3;
pub(crate) const BATCHES: u64 = 4;
pub(crate) const T0: f64 = 1_740_000_000.0;

pub(crate) fn batch_loss(epoch: u64, batch: u64) -> f64 {
    1.0 / (1.0 + (epoch * BATCHES + batch) as f64) + 0.01 * batch as f64
}

pub(crate) fn epoch_loss(epoch: u64) -> f64 {
    0.5 / (epoch + 1) as f64
}

pub(crate) fn epoch_accuracy(epoch: u64) -> f64 {
    0.6 + 0.1 * epoch as f64
}

/// Validation loss, NaN in the last epoch: non-finite values must survive both formats.
pub(crate) fn val_loss(epoch: u64) -> f64 {
    if epoch == EPOCHS - 1 { f64::NAN } else { 0.7 - 0.1 * epoch as f64 }
}

pub(crate) fn grad_norm(layer: usize, step: u64) -> f64 {
    (layer as f64 + 1.0) * 0.5 + step as f64 * 0.01
}

pub(crate) fn histogram(step: u64) -> Histogram {
    let values: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37 + step as f64).sin()).collect();
    Histogram::from_values(&values, 5).unwrap()
}

fn at(t: EventType, epoch: Option<u64>, batch: Option<u64>, tick: &mut f64) -> Event {
    let mut e = Event::new(t, t.default_level()).at(epoch, batch);
    *tick += 0.25;
    e.timestamp = T0 + *tick;
    e
}

/// Train start, 3 epochs of 4 batches with gradient norms for two layers, an activation event
/// with statistics and a histogram on the last batch of each epoch, one health warning in epoch
/// 1 (batch 2) and one after epoch 2, and train end.
pub(crate) fn run(with_end: bool) -> Vec<Event> {
    let mut tick = 0.0;
    let mut out = Vec::new();
    out.push(
        at(EventType::TrainStart, None, None, &mut tick)
            .message("Training started (3 epochs)")
            .data(data! {
                "total_epochs" => EPOCHS,
                "model_info" => data! { "name" => "mlp", "params" => 1234 },
                "hyperparameters" => data! { "lr" => 0.01, "batch_size" => 32 },
            }),
    );
    let mut step = 0;
    for epoch in 0..EPOCHS {
        out.push(at(EventType::EpochStart, Some(epoch), None, &mut tick));
        for batch in 0..BATCHES {
            out.push(at(EventType::BatchStart, Some(epoch), Some(batch), &mut tick));
            for layer in 0..2 {
                out.push(
                    at(EventType::GradientComputed, Some(epoch), Some(batch), &mut tick)
                        .layer(format!("dense_{layer}"), Some(layer as u64))
                        .field("grad_norm", grad_norm(layer, step)),
                );
            }
            if batch == BATCHES - 1 {
                let mut d = data! {
                    "count" => 50, "mean" => 0.1 * epoch as f64, "std" => 0.5, "min" => -1.0,
                    "max" => 1.0, "l2_norm" => 3.5 + epoch as f64, "zeros_pct" => 10.0,
                    "nan_count" => 0, "inf_count" => 0, "activation" => "relu",
                    "saturation_pct" => 1.5,
                };
                d.insert("histogram", histogram(step).to_data());
                out.push(
                    at(EventType::LayerForward, Some(epoch), Some(batch), &mut tick)
                        .layer("dense_0", Some(0))
                        .data(d),
                );
            }
            out.push(
                at(EventType::BatchEnd, Some(epoch), Some(batch), &mut tick)
                    .data(data! { "metrics" => data! { "loss" => batch_loss(epoch, batch) } }),
            );
            if epoch == 1 && batch == 2 {
                out.push(
                    at(EventType::HealthCheck, Some(epoch), Some(batch), &mut tick)
                        .severity(Severity::Warning)
                        .message("Loss spiked")
                        .data(data! {
                            "rule_name" => "loss_spike",
                            "diagnosis" => "loss rose 3x over its mean",
                            "recommendations" => vec!["lower the learning rate", "clip gradients"],
                        }),
                );
            }
            step += 1;
        }
        out.push(at(EventType::EpochEnd, Some(epoch), None, &mut tick).data(data! {
            "metrics" => data! {
                "loss" => epoch_loss(epoch),
                "accuracy" => epoch_accuracy(epoch),
                "val" => data! { "loss" => val_loss(epoch) },
                "optimizer" => "sgd",
            },
            "duration_s" => 1.5,
        }));
    }
    out.push(
        at(EventType::HealthCheck, Some(2), None, &mut tick)
            .severity(Severity::Danger)
            .message("Overfitting: val loss rising")
            .data(data! { "trigger" => "overfitting" }),
    );
    if with_end {
        out.push(
            at(EventType::TrainEnd, Some(2), None, &mut tick)
                .severity(Severity::Success)
                .data(data! { "metrics" => data! { "accuracy" => 0.8 }, "duration_s" => 12.0 }),
        );
    }
    out
}

// ---- what a reader saw, normalised so that our decoder and the real tools are checked alike ----

/// A histogram as stored: min, max, num, sum, sum of squares, right edges, counts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hist {
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) num: f64,
    pub(crate) sum: f64,
    pub(crate) sum_squares: f64,
    pub(crate) limits: Vec<f64>,
    pub(crate) counts: Vec<f64>,
}

/// Everything read back from an event file, by tag, in file order.
#[derive(Debug, Default)]
pub(crate) struct TbSeen {
    pub(crate) scalars: BTreeMap<String, Vec<(i64, f32)>>,
    pub(crate) texts: BTreeMap<String, Vec<(i64, String)>>,
    pub(crate) histograms: BTreeMap<String, Vec<(i64, Hist)>>,
}

fn same_f32(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// The scalar series the synthetic run must produce, exactly (values rounded to f32 as
/// TensorBoard stores them).
pub(crate) fn expected_scalars() -> BTreeMap<String, Vec<(i64, f32)>> {
    let mut m: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
    let mut push = |tag: &str, step: u64, v: f64| {
        m.entry(tag.to_owned()).or_default().push((step as i64, v as f32));
    };
    for epoch in 0..EPOCHS {
        for batch in 0..BATCHES {
            let step = epoch * BATCHES + batch;
            for layer in 0..2 {
                push(&format!("grad_norm/dense_{layer}"), step, grad_norm(layer, step));
            }
            if batch == BATCHES - 1 {
                for (stat, v) in [
                    ("mean", 0.1 * epoch as f64),
                    ("std", 0.5),
                    ("min", -1.0),
                    ("max", 1.0),
                    ("l2_norm", 3.5 + epoch as f64),
                    ("zeros_pct", 10.0),
                    ("saturation_pct", 1.5),
                    ("nan_count", 0.0),
                    ("inf_count", 0.0),
                ] {
                    push(&format!("activations/dense_0/{stat}"), step, v);
                }
            }
            push("batch/loss", step, batch_loss(epoch, batch));
            if epoch == 1 && batch == 2 {
                push("health/warnings", step, 1.0);
            }
        }
        push("metrics/loss", epoch, epoch_loss(epoch));
        push("metrics/accuracy", epoch, epoch_accuracy(epoch));
        push("metrics/val/loss", epoch, val_loss(epoch));
        push("epoch/duration_s", epoch, 1.5);
    }
    push("health/warnings", EPOCHS * BATCHES - 1, 2.0);
    push("final/accuracy", EPOCHS - 1, 0.8);
    m
}

/// Checks everything a reader saw in the event file of `run(true)`.
pub(crate) fn check_tensorboard(seen: &TbSeen) {
    // Scalars: exact tags, steps and values.
    let want = expected_scalars();
    assert_eq!(seen.scalars.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (tag, series) in &want {
        let got = &seen.scalars[tag];
        assert_eq!(got.len(), series.len(), "{tag}: {got:?}");
        for (g, w) in got.iter().zip(series) {
            assert!(g.0 == w.0 && same_f32(g.1, w.1), "{tag}: got {g:?}, want {w:?}");
        }
    }
    // Texts: the run config and one per health warning, at their steps.
    let steps = |tag: &str| seen.texts[tag].iter().map(|t| t.0).collect::<Vec<_>>();
    assert_eq!(seen.texts.len(), 3, "{:?}", seen.texts.keys());
    assert_eq!(steps("run/text_summary"), [0]);
    assert_eq!(steps("health/loss_spike/text_summary"), [6]);
    assert_eq!(steps("health/overfitting/text_summary"), [(EPOCHS * BATCHES - 1) as i64]);
    let spike = &seen.texts["health/loss_spike/text_summary"][0].1;
    for part in [
        "**WARNING**",
        "`loss_spike`",
        "epoch 1",
        "batch 2",
        "Loss spiked",
        "loss rose 3x over its mean",
        "- lower the learning rate",
        "- clip gradients",
    ] {
        assert!(spike.contains(part), "{part:?} missing from {spike:?}");
    }
    assert!(seen.texts["health/overfitting/text_summary"][0].1.starts_with("**DANGER**"));
    let config = &seen.texts["run/text_summary"][0].1;
    assert!(config.contains("(3 epochs)") && config.contains(r#""lr":0.01"#), "{config}");

    // Histograms from real bucket data: exactly the histogram each layer event carried.
    assert_eq!(
        seen.histograms.keys().collect::<Vec<_>>(),
        [
            "activations/dense_0",
            "batch_distribution/loss",
            "grad_norm_distribution/dense_0",
            "grad_norm_distribution/dense_1"
        ]
    );
    let acts = &seen.histograms["activations/dense_0"];
    assert_eq!(acts.iter().map(|h| h.0).collect::<Vec<_>>(), [3, 7, 11]);
    for (step, h) in acts {
        let want = histogram(*step as u64);
        assert_eq!(h.limits, want.edges()[1..]);
        assert_eq!(h.counts, want.counts());
        assert_eq!((h.min, h.max, h.num), (want.min(), want.max(), 50.0));
        assert_eq!((h.sum, h.sum_squares), (want.sum(), want.sum_squares()));
    }
    // Per-epoch distributions: every batch value of the epoch, counted once.
    for (tag, values) in [
        ("batch_distribution/loss", (|e, b| batch_loss(e, b)) as fn(u64, u64) -> f64),
        ("grad_norm_distribution/dense_0", |e, b| grad_norm(0, e * BATCHES + b)),
        ("grad_norm_distribution/dense_1", |e, b| grad_norm(1, e * BATCHES + b)),
    ] {
        let series = &seen.histograms[tag];
        assert_eq!(series.iter().map(|h| h.0).collect::<Vec<_>>(), [0, 1, 2], "{tag}");
        for (epoch, h) in series {
            let xs: Vec<f64> = (0..BATCHES).map(|b| values(*epoch as u64, b)).collect();
            assert_eq!(h.num, BATCHES as f64, "{tag}");
            assert_eq!(h.counts.iter().sum::<f64>(), BATCHES as f64, "{tag}");
            assert_eq!(h.min, xs.iter().copied().fold(f64::INFINITY, f64::min));
            assert_eq!(h.max, xs.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            let sum: f64 = xs.iter().sum();
            assert!((h.sum - sum).abs() < 1e-12, "{tag}: {} vs {sum}", h.sum);
            assert!(h.limits.windows(2).all(|w| w[0] < w[1]), "{tag}: {:?}", h.limits);
            assert_eq!(h.limits.last(), Some(&h.max));
            // Each value lies in the bucket it was counted in (left edge: previous limit or min).
            for x in &xs {
                let i = h.limits.iter().position(|l| x < l || *x == h.max).unwrap();
                assert!(h.counts[i] >= 1.0, "{tag}: {x} in empty bucket {i}");
            }
        }
    }
}

/// A `value_json` number, with W&B's bare non-finite tokens.
pub(crate) fn num(json: &str) -> f64 {
    match json {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        s => s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}")),
    }
}

fn get<'a>(items: &'a [(String, String)], key: &str) -> Option<&'a str> {
    items.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn assert_num(items: &[(String, String)], key: &str, want: f64) {
    let got = num(get(items, key).unwrap_or_else(|| panic!("{key} missing from {items:?}")));
    assert!(got == want || (got.is_nan() && want.is_nan()), "{key}: {got} != {want}");
}

/// Checks every record of the `.wandb` log of `run(with_end)` written with run name "demo",
/// tags ["a", "b"] and config {"lr": 0.01}.
pub(crate) fn check_wandb(records: &[WandbRecord], run_id: &str, exit_code: i32) {
    use WandbRecord as R;
    let R::Run { run_id: id, project, display_name, tags, config, start_time } = &records[0] else {
        panic!("first record is not the run: {:?}", records[0]);
    };
    assert_eq!(
        (id.as_str(), project.as_str(), display_name.as_str()),
        (run_id, "obs-test", "demo")
    );
    assert_eq!(tags, &["a", "b"]);
    assert_eq!(config, &[("lr".to_owned(), "0.01".to_owned())]);
    assert!((start_time - (T0 + 0.25)).abs() < 1e-6, "{start_time}");
    assert!(matches!(records.last(), Some(R::Exit { exit_code: c, .. }) if *c == exit_code));

    let configs: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            R::Config(items) => Some(items),
            _ => None,
        })
        .collect();
    assert_eq!(configs.len(), 1);
    let keys: Vec<&str> = configs[0].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["total_epochs", "model_info", "lr", "batch_size"]);
    assert_eq!(get(configs[0], "model_info"), Some(r#"{"name":"mlp","params":1234}"#));

    let rows: Vec<(&Vec<(String, String)>, i64)> = records
        .iter()
        .filter_map(|r| match r {
            R::History { items, step } => Some((items, *step)),
            _ => None,
        })
        .collect();
    let n_rows = (EPOCHS * BATCHES + 1) as usize;
    assert_eq!(rows.len(), n_rows);
    let mut last_ts = 0.0;
    for (i, (items, step)) in rows.iter().enumerate() {
        assert_eq!(*step, i as i64);
        assert_num(items, "_step", i as f64);
        let ts = num(get(items, "_timestamp").unwrap());
        assert!(ts >= last_ts && ts > T0);
        assert!((num(get(items, "_runtime").unwrap()) - (ts - T0 - 0.25)).abs() < 1e-9);
        last_ts = ts;
        if i == n_rows - 1 {
            // The warning after the last epoch ended.
            let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, ["health/warnings", "_step", "_runtime", "_timestamp"]);
            assert_num(items, "health/warnings", 2.0);
            continue;
        }
        let (epoch, batch) = (i as u64 / BATCHES, i as u64 % BATCHES);
        assert_num(items, "batch/loss", batch_loss(epoch, batch));
        for layer in 0..2 {
            assert_num(items, &format!("grad_norm/dense_{layer}"), grad_norm(layer, i as u64));
        }
        assert_eq!(get(items, "health/warnings").is_some(), i == 6, "row {i}");
        let epoch_row = batch == BATCHES - 1;
        assert_eq!(get(items, "metrics/loss").is_some(), epoch_row, "row {i}");
        if epoch_row {
            assert_num(items, "epoch", epoch as f64);
            assert_num(items, "metrics/loss", epoch_loss(epoch));
            assert_num(items, "metrics/accuracy", epoch_accuracy(epoch));
            assert_num(items, "metrics/val/loss", val_loss(epoch));
            assert_eq!(get(items, "metrics/optimizer"), Some(r#""sgd""#));
            assert_num(items, "epoch/duration_s", 1.5);
            assert_num(items, "activations/dense_0/l2_norm", 3.5 + epoch as f64);
            let h = histogram(i as u64);
            let mut want = String::from(r#"{"_type":"histogram","values":["#);
            let join = |v: &[f64]| v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(",");
            want.push_str(&join(h.counts()));
            want.push_str(r#"],"bins":["#);
            want.push_str(&join(h.edges()));
            want.push_str("]}");
            assert_eq!(get(items, "activations/dense_0"), Some(want.as_str()));
            let dist = get(items, "batch_distribution/loss").unwrap();
            assert!(dist.starts_with(r#"{"_type":"histogram","values":["#), "{dist}");
        }
    }

    // The summary: the latest value of every key, after merging the updates in order.
    let mut summary = BTreeMap::new();
    for r in records {
        if let R::Summary(items) = r {
            for (k, v) in items {
                summary.insert(k.clone(), v.clone());
            }
        }
    }
    let s: Vec<(String, String)> = summary.into_iter().collect();
    assert_num(&s, "metrics/loss", epoch_loss(EPOCHS - 1));
    assert_num(&s, "batch/loss", batch_loss(EPOCHS - 1, BATCHES - 1));
    assert_num(&s, "health/warnings", 2.0);
    assert_num(&s, "_step", (n_rows - 1) as f64);
    assert!(get(&s, "_wandb.runtime").is_some());
    assert!(get(&s, "health/last_warning").unwrap().contains(r#""rule":"overfitting""#));
    if exit_code == 0 {
        assert_num(&s, "final/accuracy", 0.8);
        assert_num(&s, "train/duration_s", 12.0);
    } else {
        assert!(get(&s, "final/accuracy").is_none());
    }

    let lines: Vec<&str> = records
        .iter()
        .filter_map(|r| match r {
            R::Output(l) => Some(l.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("[observatory] WARNING loss_spike epoch=1 batch=2: Loss spiked\n")
    );
    assert!(lines[0].contains("  - clip gradients\n"));
    assert!(lines[1].starts_with("[observatory] DANGER overfitting epoch=2"));
}
