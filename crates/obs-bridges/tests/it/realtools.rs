//! What we wrote, read by the real tools: TensorBoard's `EventAccumulator` and wandb's
//! `leet inspect` and `wandb_internal_pb2`, from a Python virtualenv.
//!
//! `cargo xtask test` provisions the virtualenv and sets `OBS_PYTHON`. Under CI (`CI=true`) a
//! missing or unusable interpreter fails these tests; locally they skip with a loud message.

use std::path::{Path, PathBuf};
use std::process::Command;

use obs_bridges::TensorBoardBridge;
use obs_bridges::wandb::WandbRecord;
use serde_json::Value as Json;

use crate::common::{self, Hist, TbSeen};

/// The interpreter with `tensorboard` and `wandb`, or `None` (locally) when there is none.
///
/// # Panics
/// Under `CI=true` when `OBS_PYTHON` is missing or cannot import both packages.
pub(crate) fn python() -> Option<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let given = std::env::var_os("OBS_PYTHON").filter(|p| !p.is_empty()).map(PathBuf::from);
    // Locally, fall back to the virtualenv `cargo xtask test` leaves in the workspace target.
    let fallback = || {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/obs-venv/bin/python");
        p.exists().then_some(p)
    };
    let candidate = given.clone().or_else(|| if ci { None } else { fallback() });
    let usable = candidate.as_ref().is_some_and(|p| {
        Command::new(p)
            .args(["-c", "import tensorboard, wandb"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if usable {
        return candidate;
    }
    let why = match &given {
        Some(p) => format!("OBS_PYTHON={} cannot import tensorboard and wandb", p.display()),
        None => "OBS_PYTHON is not set".to_owned(),
    };
    if ci {
        panic!(
            "{why}: the real-tool checks of the bridges must run in CI (use `cargo xtask test`)"
        );
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! SKIPPED: reading the bridge files with the real TensorBoard and wandb tools.\n\
         !! {why}. Run `cargo xtask test` to provision them.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    None
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

fn run_json(python: &Path, args: &[&std::ffi::OsStr]) -> Json {
    let out = Command::new(python).args(args).output().expect("run python");
    assert!(
        out.status.success(),
        "{:?} failed: {}\n{}",
        args,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("checker prints JSON")
}

fn f(v: &Json) -> f64 {
    match v {
        Json::String(s) => common::num(s),
        other => other.as_f64().unwrap_or_else(|| panic!("not a number: {other}")),
    }
}

fn read_tensorboard(python: &Path, logdir: &Path) -> Json {
    run_json(python, &[script("check_tensorboard.py").as_os_str(), logdir.as_os_str()])
}

fn tb_seen(out: &Json) -> TbSeen {
    let mut seen = TbSeen::default();
    for (tag, series) in out["scalars"].as_object().unwrap() {
        let points = series.as_array().unwrap().iter();
        let points = points.map(|p| (p[0].as_i64().unwrap(), f(&p[1]) as f32)).collect();
        seen.scalars.insert(tag.clone(), points);
    }
    for (tag, series) in out["texts"].as_object().unwrap() {
        let texts = series.as_array().unwrap().iter().map(|p| {
            let strings = p[1].as_array().unwrap();
            assert_eq!(strings.len(), 1, "a text summary is one string");
            (p[0].as_i64().unwrap(), strings[0].as_str().unwrap().to_owned())
        });
        seen.texts.insert(tag.clone(), texts.collect());
    }
    for (tag, series) in out["histograms"].as_object().unwrap() {
        let hists = series.as_array().unwrap().iter().map(|p| {
            let h = &p[1];
            let list = |k: &str| h[k].as_array().unwrap().iter().map(f).collect::<Vec<_>>();
            let hist = Hist {
                min: f(&h["min"]),
                max: f(&h["max"]),
                num: f(&h["num"]),
                sum: f(&h["sum"]),
                sum_squares: f(&h["sum_squares"]),
                limits: list("bucket_limit"),
                counts: list("bucket"),
            };
            (p[0].as_i64().unwrap(), hist)
        });
        seen.histograms.insert(tag.clone(), hists.collect());
    }
    seen
}

#[test]
fn tensorboard_reads_exactly_what_we_wrote() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut tb = TensorBoardBridge::builder(dir.path()).run_name("demo").create().unwrap();
    tb.replay(common::run(true)).unwrap();
    tb.close().unwrap();
    let out = read_tensorboard(&python, tb.dir());
    assert_eq!(out["file_version"], 2.0);
    common::check_tensorboard(&tb_seen(&out));
    // TensorBoard's UI path (the plugin accumulator) files each kind under its plugin.
    let plugins = &out["plugins"];
    let tags = |p: &str| plugins[p].as_array().unwrap().len();
    assert_eq!(tags("scalars"), common::expected_scalars().len());
    assert_eq!(tags("text"), 3);
    assert_eq!(tags("histograms"), 4);
}

#[test]
fn tensorboard_silently_stops_at_a_corrupt_record_so_we_count() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut tb = TensorBoardBridge::create(dir.path().join("good")).unwrap();
    tb.replay(common::run(true)).unwrap();
    tb.close().unwrap();
    let mut bytes = std::fs::read(tb.path()).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join(tb.path().file_name().unwrap()), bytes).unwrap();
    let count = |out: &Json| -> usize {
        out["scalars"].as_object().unwrap().values().map(|s| s.as_array().unwrap().len()).sum()
    };
    let good = count(&read_tensorboard(&python, tb.dir()));
    let corrupt = count(&read_tensorboard(&python, &bad));
    assert_eq!(good, common::expected_scalars().values().map(Vec::len).sum::<usize>());
    assert!(corrupt < good, "a flipped byte must lose records: {corrupt} vs {good}");
}

/// Converts a record as `MessageToDict` prints it into our own decoded form.
fn wandb_record(r: &Json) -> WandbRecord {
    let items = |v: &Json, field: &str| -> Vec<(String, String)> {
        v[field]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|it| {
                        let key = match it["key"].as_str() {
                            Some(k) => k.to_owned(),
                            None => it["nested_key"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|k| k.as_str().unwrap())
                                .collect::<Vec<_>>()
                                .join("."),
                        };
                        (key, it["value_json"].as_str().unwrap().to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let int = |v: &Json| -> i64 {
        match v {
            Json::String(s) => s.parse().unwrap(),
            Json::Null => 0,
            other => other.as_i64().unwrap(),
        }
    };
    if let Some(run) = r.get("run") {
        let strings = |k: &str| -> Vec<String> {
            run[k].as_array().map_or_else(Vec::new, |a| {
                a.iter().map(|t| t.as_str().unwrap().to_owned()).collect()
            })
        };
        return WandbRecord::Run {
            run_id: run["run_id"].as_str().unwrap().to_owned(),
            project: run["project"].as_str().unwrap().to_owned(),
            display_name: run["display_name"].as_str().unwrap_or_default().to_owned(),
            tags: strings("tags"),
            config: items(&run["config"], "update"),
            start_time: r["start_time_unix"].as_f64().unwrap(),
        };
    }
    if let Some(h) = r.get("history") {
        return WandbRecord::History { items: items(h, "item"), step: int(&h["step"]["num"]) };
    }
    if let Some(s) = r.get("summary") {
        return WandbRecord::Summary(items(s, "update"));
    }
    if let Some(c) = r.get("config") {
        return WandbRecord::Config(items(c, "update"));
    }
    if let Some(o) = r.get("output_raw") {
        return WandbRecord::Output(o["line"].as_str().unwrap().to_owned());
    }
    if let Some(e) = r.get("exit") {
        return WandbRecord::Exit {
            exit_code: int(&e["exit_code"]) as i32,
            runtime: int(&e["runtime"]) as i32,
        };
    }
    panic!("unexpected record {r}");
}

fn read_wandb(python: &Path, run_dir: &Path) -> Json {
    let wandb = python.with_file_name("wandb");
    run_json(
        python,
        &[script("check_wandb.py").as_os_str(), wandb.as_os_str(), run_dir.as_os_str()],
    )
}

fn check_wandb_run(python: &Path, with_end: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut wb = crate::wandb::demo(dir.path());
    wb.replay(common::run(with_end)).unwrap();
    wb.close().unwrap();
    let out = read_wandb(python, wb.run_dir());
    let exit_code = if with_end { 0 } else { 1 };

    // wandb's protobuf classes decode every record to what we meant to write.
    let records: Vec<WandbRecord> =
        out["protobuf"].as_array().unwrap().iter().map(wandb_record).collect();
    common::check_wandb(&records, wb.run_id(), exit_code);

    // wandb's own Go reader (the code `wandb sync` runs) sees a complete run.
    assert_eq!(out["stderr"], "", "leet reported problems");
    assert_eq!(out["records"].as_array().unwrap().len(), records.len());
    let s = &out["summary"];
    assert_eq!(s["state"], if with_end { "finished" } else { "failed" }, "{s}");
    assert_eq!(s["exit_code"], exit_code);
    assert_eq!(
        (&s["project"], &s["name"], &s["run_id"]),
        (&"obs-test".into(), &"demo".into(), &wb.run_id().into())
    );
    assert_eq!(s["step"], 12);
    assert_eq!(s["console_lines"], 5);
    let config = &s["config"];
    assert_eq!(
        (&config["lr"], &config["batch_size"], &config["total_epochs"]),
        (&0.01.into(), &32.into(), &3.into())
    );
    assert_eq!(config["model_info"]["name"], "mlp");
    let summary = &s["summary"];
    assert_eq!(f(&summary["metrics/loss"]), common::epoch_loss(common::EPOCHS - 1));
    assert_eq!(
        f(&summary["batch/loss"]),
        common::batch_loss(common::EPOCHS - 1, common::BATCHES - 1)
    );
    assert!(f(&summary["metrics/val/loss"]).is_nan());
    assert_eq!(summary["health/warnings"], 2);
    assert_eq!(summary["health/last_warning"]["rule"], "overfitting");
    assert_eq!(summary["batch_distribution/loss"]["_type"], "histogram");
    assert_eq!(summary["final/accuracy"].as_f64(), with_end.then_some(0.8));
}

#[test]
fn wandb_reads_a_finished_run() {
    let Some(python) = python() else { return };
    check_wandb_run(&python, true);
}

#[test]
fn wandb_reads_a_run_that_ended_without_train_end_as_failed() {
    let Some(python) = python() else { return };
    check_wandb_run(&python, false);
}

#[test]
fn wandb_reads_records_split_across_blocks() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let big = "y".repeat(70_000);
    let mut wb = obs_bridges::WandbBridge::builder("obs-test")
        .config(obs_core::data! { "blob" => big.as_str() })
        .dir(dir.path())
        .create()
        .unwrap();
    let events = (0..2000u64).map(|i| {
        obs_core::Event::new(obs_core::EventType::BatchEnd, obs_core::LogLevel::Detailed)
            .at(Some(0), Some(i))
            .data(obs_core::data! { "metrics" => obs_core::data! { "loss" => i as f64 / 7.0 } })
    });
    wb.replay(events).unwrap();
    wb.close().unwrap();
    let out = read_wandb(&python, wb.run_dir());
    assert_eq!(out["stderr"], "");
    let records: Vec<WandbRecord> =
        out["protobuf"].as_array().unwrap().iter().map(wandb_record).collect();
    let losses: Vec<f64> = records
        .iter()
        .filter_map(|r| match r {
            WandbRecord::History { items, .. } => Some(common::num(&items[0].1)),
            _ => None,
        })
        .collect();
    assert_eq!(losses, (0..2000).map(|i| i as f64 / 7.0).collect::<Vec<_>>());
    assert_eq!(out["summary"]["config"]["blob"].as_str().map(str::len), Some(70_000));
    assert_eq!(out["summary"]["step"], 1999);
}

#[test]
fn both_tools_read_odd_runs_completely() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (tb, wb) = crate::odd::write_odd_run(dir.path());
    // TensorBoard stops silently at a bad record: every scalar we wrote must be there.
    let out = read_tensorboard(&python, tb.dir());
    let scalars: u64 = out["scalars"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s.as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(scalars, tb.stats().scalars);
    let texts: u64 = out["texts"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s.as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(texts, tb.stats().texts);
    // wandb decodes every record, and its Go reader reports nothing corrupt.
    let out = read_wandb(&python, wb.run_dir());
    assert_eq!(out["stderr"], "", "leet reported problems");
    assert_eq!(out["protobuf"].as_array().unwrap().len() as u64, wb.stats().records);
    assert_eq!(out["records"].as_array().unwrap().len() as u64, wb.stats().records);
    assert_eq!(out["summary"]["state"], "finished");
}
