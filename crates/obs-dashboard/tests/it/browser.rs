//! The page in a real browser: headless Chromium with the network blocked loads generated
//! dashboards; the page reports on itself (charts drawn, errors, alerts, requests) into a DOM
//! element that these tests read back from the dumped DOM.
//!
//! The browser is `$OBS_CHROMIUM`, else `/usr/bin/chromium` (`cargo xtask test` installs
//! Debian's `chromium` package when it is missing). Without a browser these tests fail under
//! CI (`CI` set) and are skipped with a loud message elsewhere.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use obs_core::{EventType, LogLevel, data};
use obs_dashboard::{Dashboard, DashboardConfig};
use serde_json::Value as Json;

use crate::support::*;

const TIMEOUT: Duration = Duration::from_secs(120);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The browser to use, or `None` (after a loud message) when there is none and this is not CI.
fn chromium() -> Option<PathBuf> {
    let from_env = std::env::var_os("OBS_CHROMIUM").map(PathBuf::from);
    let found = from_env.clone().filter(|p| p.is_file()).or_else(|| {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if in_ci() => panic!(
            "CI is set but no headless Chromium was found (OBS_CHROMIUM={from_env:?}, \
             /usr/bin/chromium): run the tests through `cargo xtask test`, which installs it"
        ),
        None => {
            eprintln!(
                "\n**********************************************************************\n\
                 * SKIPPED browser test: no Chromium (set OBS_CHROMIUM or install     *\n\
                 * Debian's `chromium`; `cargo xtask test` does). CI would FAIL here. *\n\
                 **********************************************************************\n"
            );
            None
        }
    }
}

struct Loaded {
    /// The page's self-check report.
    report: Json,
    /// Console messages and CSP violations from the browser log.
    console: Vec<String>,
}

/// Loads `page` in headless Chromium with every network path closed, and returns what the page
/// reported about itself.
fn load(browser: &Path, page: &Path) -> Loaded {
    load_url(browser, page, "")
}

/// [`load`] with a URL fragment (`#selftest` makes the page exercise its own interactions).
fn load_url(browser: &Path, page: &Path, fragment: &str) -> Loaded {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}{fragment}", page.canonicalize().unwrap().display());
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = out_reader.join().unwrap();
    let log = err_reader.join().unwrap();
    let console: Vec<String> = log
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.contains("Refused to")
                || l.contains("Content Security Policy")
        })
        .map(str::to_owned)
        .collect();
    let open = dom
        .find("id=\"obs-selfcheck\"")
        .unwrap_or_else(|| panic!("no self-check element in the dumped DOM; browser log:\n{log}"));
    let text_start = open + dom[open..].find('>').unwrap() + 1;
    let text_end = text_start + dom[text_start..].find("</pre>").unwrap();
    let text = dom[text_start..text_end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    let report: Json = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("the page did not finish its self-check ({e}): {text:?}\n{log}")
    });
    Loaded { report, console }
}

/// The checks every page must pass: finished, no error, no alert, no request, no console
/// message, and every chart it has data for drawn.
fn assert_clean(loaded: &Loaded, html: &str) {
    let r = &loaded.report;
    assert_eq!(r["done"], true, "{r}");
    assert_eq!(r["errors"], serde_json::json!([]), "script errors: {r}");
    assert_eq!(r["alerts"], 0, "alert() was called: {r}");
    assert_eq!(r["consoleErrors"], 0, "{r}");
    assert_eq!(r["resources"], 0, "the page requested resources: {r}");
    assert_eq!(r["images"], 0, "an <img> element exists: {r}");
    assert_eq!(r["scripts"], 3, "{r}");
    assert!(loaded.console.is_empty(), "console output: {:#?}", loaded.console);
    let data = page_data(html);
    let mut expected: Vec<String> = data["charts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    if chart(&data, "grad").is_some_and(|g| g["series"].as_array().unwrap().len() > 1) {
        expected.push("grad-heat".into());
    }
    let drawn = r["charts"].as_object().unwrap();
    assert_eq!(drawn.len(), expected.len(), "charts drawn {drawn:?}, expected {expected:?}");
    for id in expected {
        let c = &drawn[&id];
        assert!(c["marks"].as_u64().unwrap() > 0, "chart {id} drew no data: {c}");
        assert!(c["pixels"].as_u64().unwrap() > 500, "chart {id} canvas is blank: {c}");
    }
}

fn write(dir: &Path, name: &str, html: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, html).unwrap();
    path
}

#[test]
fn a_hostile_run_draws_every_chart_and_no_payload_executes() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut dash = Dashboard::from_events(DashboardConfig::default(), hostile_run(4, 25));
    let mut extra = health(3, 2, "<svg onload=alert(2)>", obs_core::Severity::Danger, IMG_MESSAGE);
    extra.layer_name = Some(SCRIPT_LAYER.into());
    dash.ingest(&extra);
    let html = dash.render().unwrap();
    for id in ["loss", "accuracy", "timing", "epoch-metrics", "batch", "grad", "health"] {
        assert!(chart(&page_data(&html), id).is_some(), "{id}");
    }
    let loaded = load_url(&browser, &write(dir.path(), "hostile.html", &html), "#selftest");
    assert_clean(&loaded, &html);
    // Hover shows values, the legend hides and shows a series, drag zooms every chart of the
    // axis, shift-drag pans, double-click resets.
    let interaction = &loaded.report["interaction"];
    for check in
        ["tooltip", "tooltipHides", "legendHides", "legendShows", "zoom", "linked", "pan", "reset"]
    {
        assert_eq!(interaction[check], true, "{check}: {interaction}");
    }
}

#[test]
fn an_empty_dashboard_loads_cleanly() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let html = Dashboard::default().render().unwrap();
    let loaded = load(&browser, &write(dir.path(), "empty.html", &html));
    assert_clean(&loaded, &html);
    assert_eq!(loaded.report["charts"], serde_json::json!({}));
}

#[test]
fn a_long_run_with_full_buckets_draws() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut dash = Dashboard::default();
    // 100k batches spread over a million steps fill every bucket, as a million would.
    for i in 0..100_000u64 {
        let step = i * 10;
        let (epoch, batch) = (step / 50_000, step % 50_000);
        let loss = 1.0 / (1.0 + step as f64 * 1e-5) + if i % 9973 == 0 { 5.0 } else { 0.0 };
        dash.ingest(&batch_end(epoch, batch, loss));
        if i % 10 == 0 {
            for l in 0..6 {
                dash.ingest(&grad(epoch, batch, &format!("block_{l}"), 0.1 * (l + 1) as f64));
            }
        }
        if batch == 49_990 {
            dash.ingest(&epoch_end(
                epoch,
                data! { "loss" => loss, "val_loss" => loss * 1.1 },
                30.0,
            ));
        }
    }
    dash.ingest(
        &obs_core::Event::new(EventType::HealthCheck, LogLevel::Basic)
            .at(Some(3), Some(7))
            .field("rule_name", "loss_spike"),
    );
    let html = dash.render().unwrap();
    let loaded = load(&browser, &write(dir.path(), "long.html", &html));
    assert_clean(&loaded, &html);
    eprintln!("long run: {} bytes, drawn in {} ms", html.len(), loaded.report["ms"]);
}

#[test]
fn the_harness_notices_an_injection_and_the_policy_blocks_it() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let html =
        Dashboard::from_events(DashboardConfig::default(), hostile_run(2, 5)).render().unwrap();
    // What a missing escape would produce: markup from user data in the page.
    let injected =
        html.replacen("<main>", "<main><img src=x onerror=alert(1)><script>alert(2)</script>", 1);
    let loaded = load(&browser, &write(dir.path(), "injected.html", &injected));
    let r = &loaded.report;
    assert_eq!(r["images"], 1, "the harness sees injected elements: {r}");
    assert_eq!(r["scripts"], 4, "{r}");
    // The Content-Security-Policy stops both payloads and says so on the console.
    assert_eq!(r["alerts"], 0, "{r}");
    assert!(
        loaded
            .console
            .iter()
            .any(|l| l.contains("Content Security Policy") || l.contains("Refused to")),
        "no CSP report in {:#?}",
        loaded.console
    );
}

#[test]
fn a_comparison_draws_every_chart_and_no_payload_executes() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let html = crate::compare::hostile_comparison().render().unwrap();
    for id in ["loss", "accuracy", "timing", "epoch-metrics", "batch", "health"] {
        assert!(chart(&page_data(&html), id).is_some(), "{id}");
    }
    let loaded = load_url(&browser, &write(dir.path(), "compare.html", &html), "#selftest");
    assert_clean(&loaded, &html);
    let interaction = &loaded.report["interaction"];
    for check in
        ["tooltip", "tooltipHides", "legendHides", "legendShows", "zoom", "linked", "pan", "reset"]
    {
        assert_eq!(interaction[check], true, "{check}: {interaction}");
    }
}

/// Four ranks, rank 2 slow, a hostile rule name on rank 1.
fn ranked_run() -> Vec<obs_core::Event> {
    let mut events = Vec::new();
    for rank in 0..4u32 {
        let secs = if rank == 2 { 2.5 } else { 1.0 + f64::from(rank) * 0.01 };
        for epoch in 0..5u64 {
            let loss = 1.0 / (1.0 + epoch as f64) + f64::from(rank) * 0.05;
            for batch in 0..4 {
                events.push(batch_end(epoch, batch, loss).ranked(Some(rank), Some(4)));
            }
            events
                .push(epoch_end(epoch, data! { "loss" => loss }, secs).ranked(Some(rank), Some(4)));
        }
    }
    events.push(
        health(2, 1, "<svg onload=alert(3)>", obs_core::Severity::Warning, IMG_MESSAGE)
            .ranked(Some(1), Some(4)),
    );
    events
}

#[test]
fn a_run_of_four_ranks_shows_each_rank_and_the_straggler() {
    let dash = Dashboard::from_events(DashboardConfig::default(), ranked_run());
    let html = dash.render().unwrap();
    let data = page_data(&html);
    let names: Vec<String> =
        data["charts"].as_array().unwrap().iter().flat_map(series_names).collect();
    for rank in 0..4 {
        assert!(names.contains(&format!("rank {rank} loss")), "{names:?}");
        assert!(names.contains(&format!("rank {rank} epoch_s")), "{names:?}");
        assert!(html.contains(&format!("<th>rank {rank}</th>")), "no row for rank {rank}");
    }
    assert!(html.contains("<th>Straggler</th><td>rank 2: 2.500 s per epoch"), "{html}");
    assert!(html.contains("&lt;svg onload=alert(3)&gt; 1"), "rank 1's finding, escaped");
    assert!(!html.contains("<svg onload"), "a rule name reached the page as markup");
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&browser, &write(dir.path(), "ranks.html", &html));
    assert_clean(&loaded, &html);
}
