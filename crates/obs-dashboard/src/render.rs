//! Turning a [`Dashboard`] into one self-contained HTML page.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, context};
use obs_core::{EventType, Severity, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bucket::{Bucket, Series, coarsened};
use crate::model::{GradSource, Pos};
use crate::{Dashboard, DashboardError};

const TEMPLATE: &str = include_str!("../templates/dashboard.html");
const COMPARE_TEMPLATE: &str = include_str!("../templates/compare.html");
/// The page frame both pages extend, and the chart sections they share.
const BASE_TEMPLATE: &str = include_str!("../templates/base.html");
const CHARTS_TEMPLATE: &str = include_str!("../templates/charts.html");
const CSS: &str = include_str!("../templates/dashboard.css");
const JS: &str = include_str!("../templates/dashboard.js");
/// Runs before anything else on the page: records errors, stray `alert` calls and console
/// errors so that the page can report on itself (the browser tests read the report).
const GUARD_JS: &str = "window.__obs={errors:[],alerts:0,consoleErrors:0};\
window.alert=function(){window.__obs.alerts++;};\
window.addEventListener('error',function(e){window.__obs.errors.push(String(e.message||e.type));});\
(function(c){var f=c.error;c.error=function(){window.__obs.consoleErrors++;return f.apply(c,arguments);};})(console);";
/// Rows shown per information table.
const MAX_ROWS: usize = 200;
/// Longest value shown in an information table, in characters.
const MAX_CELL: usize = 400;

/// The template environment, built once.
fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Autoescaping follows the template name: `.html` escapes every `{{ }}` for HTML.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        // The template is part of the crate and checked by the tests; a failure here is a bug.
        for (name, source) in [
            ("base.html", BASE_TEMPLATE),
            ("charts.html", CHARTS_TEMPLATE),
            ("dashboard.html", TEMPLATE),
            ("compare.html", COMPARE_TEMPLATE),
        ] {
            if let Err(e) = env.add_template(name, source) {
                panic!("the built-in template {name} does not parse: {e}");
            }
        }
        env
    })
}

/// Renders template `name` (one of the crate's pages) with its view `page` and the chart data
/// `data_json`, which is escaped for the `<script>` element here.
pub(crate) fn render_template(
    name: &str,
    page: &impl Serialize,
    data_json: &str,
) -> Result<String, DashboardError> {
    let data = escape_json_for_script(data_json);
    environment()
        .get_template(name)
        .and_then(|t| {
            t.render(context! {
                page => Serde(page),
                csp => content_security_policy(),
                css => minijinja::Value::from_safe_string(CSS.to_owned()),
                guard_js => minijinja::Value::from_safe_string(GUARD_JS.to_owned()),
                js => minijinja::Value::from_safe_string(JS.to_owned()),
                data => minijinja::Value::from_safe_string(data),
            })
        })
        .map_err(|e| DashboardError::Template(e.to_string()))
}

/// The Content-Security-Policy of the page: nothing may be fetched, and only our two inline
/// scripts (pinned by hash) may run, so even an injection that escaped escaping could not.
fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = |s: &str| {
            let digest = Sha256::digest(s.as_bytes());
            format!("'sha256-{}'", base64(&digest))
        };
        format!(
            "default-src 'none'; script-src {} {}; style-src 'unsafe-inline'; img-src data:; \
             base-uri 'none'; form-action 'none'",
            hash(GUARD_JS),
            hash(JS)
        )
    })
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Makes JSON safe to embed in a `<script>` element: `<`, `>` and `&` become `\u` escapes (so
/// no `</script>` or `<!--` can appear), and so do U+2028 and U+2029 (line terminators to
/// older JavaScript parsers). These characters can only occur inside JSON strings, where the
/// escapes mean the same characters.
pub(crate) fn escape_json_for_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Writes `bytes` to `path` atomically: to a temporary file in the same directory, then
/// renamed over `path`, so a reader sees the old file or the new one, never half of one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DashboardError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io_err = |source: io::Error| DashboardError::Io { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io_err(io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))
    })?;
    fs::create_dir_all(&dir).map_err(io_err)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}

// ---------------------------------------------------------------------------------------------
// The embedded chart data.

/// Appends `v` as a JSON number, or `null` when it is not finite.
fn num(out: &mut String, v: f64) {
    if v.is_finite() {
        // `{:?}` is the shortest representation that reads back exactly, in JSON syntax.
        let _ = write!(out, "{v:?}");
    } else {
        out.push_str("null");
    }
}

fn string(out: &mut String, s: &str) {
    // Serialising a string to JSON cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
}

/// One chart series as JSON: `v` (bucket means), and when any bucket holds several values
/// `lo`, `hi` (bucket min and max) and `n` (counts); `nf` lists `[bucket, count]` of
/// non-finite values; `w` is the bucket width.
fn series_json(out: &mut String, name: &str, color: usize, width: u64, buckets: &[Bucket]) {
    out.push_str("{\"name\":");
    string(out, name);
    let _ = write!(out, ",\"color\":{color},\"w\":{width},\"v\":[");
    let mut several = false;
    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        several |= b.n > 1;
        if b.n == 0 { out.push_str("null") } else { num(out, b.mean) }
    }
    out.push(']');
    if several {
        for (key, pick) in [("lo", true), ("hi", false)] {
            let _ = write!(out, ",\"{key}\":[");
            for (i, b) in buckets.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if b.n == 0 {
                    out.push_str("null");
                } else {
                    num(out, if pick { b.min } else { b.max });
                }
            }
            out.push(']');
        }
        out.push_str(",\"n\":[");
        for (i, b) in buckets.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}", b.n);
        }
        out.push(']');
    }
    out.push_str(",\"nf\":[");
    let mut first = true;
    for (i, b) in buckets.iter().enumerate().filter(|(_, b)| b.nonfinite > 0) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "[{i},{}]", b.nonfinite);
    }
    out.push_str("]}");
}

pub(crate) type SeriesRef<'a> = (String, usize, u64, std::borrow::Cow<'a, [Bucket]>);

pub(crate) fn pick<'a>(list: &[&'a crate::model::Named], w: u64) -> Vec<SeriesRef<'a>> {
    list.iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i, w, std::borrow::Cow::from(&n.series.buckets[..])))
        .collect()
}

/// A chart: which panel it fills and what it draws.
pub(crate) struct Chart<'a> {
    pub(crate) id: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) axis: &'static str,
    pub(crate) ylog: bool,
    pub(crate) series: Vec<SeriesRef<'a>>,
}

/// A health-timeline row as JSON: `n` (findings per bucket) and `s` (the highest severity
/// rank in each bucket, 0 = info ... 4 = critical).
fn timeline_json(out: &mut String, name: &str, color: usize, width: u64, buckets: &[Bucket]) {
    out.push_str("{\"name\":");
    string(out, name);
    let _ = write!(out, ",\"color\":{color},\"w\":{width},\"n\":[");
    for (i, b) in buckets.iter().enumerate() {
        let _ = write!(out, "{}{}", if i > 0 { "," } else { "" }, b.n);
    }
    out.push_str("],\"s\":[");
    for (i, b) in buckets.iter().enumerate() {
        let rank = if b.n > 0 { b.max.clamp(0.0, 4.0) as u8 } else { 0 };
        let _ = write!(out, "{}{rank}", if i > 0 { "," } else { "" });
    }
    out.push_str("]}");
}

fn chart_json(out: &mut String, c: &Chart<'_>) {
    let _ = write!(
        out,
        "{{\"id\":\"{}\",\"kind\":\"{}\",\"axis\":\"{}\",\"ylog\":{},\"series\":[",
        c.id, c.kind, c.axis, c.ylog
    );
    for (i, (name, color, width, buckets)) in c.series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if c.kind == "timeline" {
            timeline_json(out, name, *color, *width, buckets);
        } else {
            series_json(out, name, *color, *width, buckets);
        }
    }
    out.push_str("]}");
}

/// The page's chart data: both axes (`(name, bucket width, largest x)`) and every chart, as
/// JSON (not yet escaped for `<script>`).
pub(crate) fn charts_document(axes: [(&str, u64, Option<u64>); 2], charts: &[Chart<'_>]) -> String {
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("{\"axes\":{");
    for (i, (name, width, max)) in axes.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{name}\":{{\"w\":{width},\"max\":");
        match max {
            Some(m) => {
                let _ = write!(out, "{m}");
            }
            None => out.push_str("null"),
        }
        out.push('}');
    }
    out.push_str("},\"charts\":[");
    for (i, c) in charts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        chart_json(&mut out, c);
    }
    out.push_str("]}");
    out
}

/// Orders names as people do: `dense_2` before `dense_10`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> impl Iterator<Item = (bool, &str)> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digit = first.is_ascii_digit();
            let end = rest
                .char_indices()
                .find(|(_, c)| c.is_ascii_digit() != digit)
                .map_or(rest.len(), |(i, _)| i);
            let (head, tail) = rest.split_at(end);
            rest = tail;
            Some((digit, head))
        })
    }
    let (mut ca, mut cb) = (chunks(a), chunks(b));
    loop {
        match (ca.next(), cb.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((da, x)), Some((db, y))) => {
                let ord = if da && db {
                    let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                } else {
                    x.cmp(y)
                };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

pub(crate) fn is_loss(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with("loss")
}

pub(crate) fn is_accuracy(name: &str) -> bool {
    name.to_ascii_lowercase().contains("acc")
}

pub(crate) fn is_validation(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("val") || n.starts_with("valid") || n.starts_with("test") || n.contains("_val")
}

/// Training series first, then validation, keeping arrival order otherwise.
pub(crate) fn ordered<'a>(
    items: impl Iterator<Item = &'a crate::model::Named>,
) -> Vec<&'a crate::model::Named> {
    let mut v: Vec<_> = items.collect();
    v.sort_by_key(|n| is_validation(&n.name));
    v
}

// ---------------------------------------------------------------------------------------------
// The template's view.

#[derive(Serialize)]
pub(crate) struct Card {
    pub(crate) label: &'static str,
    pub(crate) value: String,
    pub(crate) hint: String,
    pub(crate) tone: &'static str,
}

#[derive(Serialize)]
pub(crate) struct Panel {
    pub(crate) id: &'static str,
    pub(crate) title: String,
    pub(crate) note: String,
    pub(crate) wide: bool,
    pub(crate) tall: bool,
}

#[derive(Serialize)]
struct RecentView {
    at: String,
    severity: &'static str,
    message: String,
    layer: String,
}

#[derive(Serialize)]
struct GroupView {
    index: usize,
    name: String,
    count: u64,
    severity: &'static str,
    severities: Vec<(String, u64)>,
    range: String,
    diagnosis: String,
    recommendations: Vec<String>,
    layers: String,
    recent: Vec<RecentView>,
}

#[derive(Serialize)]
pub(crate) struct Table {
    pub(crate) title: &'static str,
    pub(crate) rows: Vec<(String, String)>,
    pub(crate) truncated: bool,
}

#[derive(Serialize)]
struct Page {
    title: String,
    status: &'static str,
    status_tone: &'static str,
    generated: String,
    live: bool,
    events: u64,
    cards: Vec<Card>,
    epoch_panels: Vec<Panel>,
    step_panels: Vec<Panel>,
    health: Vec<GroupView>,
    health_total: u64,
    health_note: String,
    has_health_timeline: bool,
    tables: Vec<Table>,
    notices: Vec<String>,
    version: &'static str,
}

/// Formats a number for people: 4 significant decimals, scientific when very large or small.
pub(crate) fn human(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+∞".into() } else { "−∞".into() };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" { "0".into() } else { s.to_owned() }
    }
}

pub(crate) fn duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "—".into();
    }
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 { format!("{h} h {m:02} min") } else { format!("{m} min {sec:02} s") }
}

pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc(ts: f64) -> String {
    if !ts.is_finite() || ts < 0.0 {
        return "—".into();
    }
    let secs = ts as u64;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01, by eras of 400 years (146097 days).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

pub(crate) fn at(p: &Pos) -> String {
    match (p.epoch, p.batch) {
        (Some(e), Some(b)) => format!("step {} (epoch {e}, batch {b})", count(p.step)),
        (Some(e), None) => format!("step {} (epoch {e})", count(p.step)),
        _ => format!("step {}", count(p.step)),
    }
}

fn cell(v: &Value) -> String {
    let s = match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => human(*f),
        Value::Str(s) => s.clone(),
        Value::List(_) | Value::Map(_) => serde_json::to_string(v).unwrap_or_default(),
    };
    crate::model::clip(&s, MAX_CELL)
}

/// Flattens nested maps into `a.b.c` rows.
fn flatten(prefix: &str, v: &Value, rows: &mut Vec<(String, String)>, truncated: &mut bool) {
    match v {
        Value::Map(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.to_owned() } else { format!("{prefix}.{k}") };
                flatten(&key, v, rows, truncated);
            }
        }
        _ => {
            if rows.len() < MAX_ROWS {
                rows.push((crate::model::clip(prefix, 200), cell(v)));
            } else {
                *truncated = true;
            }
        }
    }
}

pub(crate) fn table(title: &'static str, entries: &[(&str, &Value)]) -> Option<Table> {
    let mut rows = Vec::new();
    let mut truncated = false;
    for (k, v) in entries {
        flatten(k, v, &mut rows, &mut truncated);
    }
    (!rows.is_empty()).then_some(Table { title, rows, truncated })
}

/// Where the series should be read from, for the summary cards.
pub(crate) fn find<'a>(list: &'a [crate::model::Named], names: &[&str]) -> Option<&'a Series> {
    names.iter().find_map(|want| list.iter().find(|n| n.name == *want).map(|n| &n.series))
}

impl Dashboard {
    /// Renders the dashboard as one self-contained HTML page.
    ///
    /// # Errors
    /// [`DashboardError::Template`] if the template engine fails (a bug; never caused by data).
    pub fn render(&self) -> Result<String, DashboardError> {
        render_template("dashboard.html", &self.page(), &self.data_json())
    }

    /// Renders the dashboard and writes it to `path` atomically (a temporary file in the same
    /// directory renamed over `path`), creating the directory if needed.
    ///
    /// # Errors
    /// [`DashboardError::Io`] when the file cannot be written.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), DashboardError> {
        let html = self.render()?;
        write_atomic(path.as_ref(), html.as_bytes())
    }

    /// The per-rank table of a multi-process run: final loss, epochs, mean epoch time and
    /// findings of every rank, and the straggler with its lag behind the median.
    fn rank_table(&self) -> Option<Table> {
        if self.ranks.is_empty() {
            return None;
        }
        let mut rows = Vec::new();
        let secs = |s: f64| format!("{s:.3} s");
        let straggler = self.ranks.straggler();
        if let Some(s) = &straggler {
            rows.push((
                "Straggler".to_owned(),
                format!(
                    "rank {}: {} per epoch, {} ({:+.0}%) behind the median {}",
                    s.rank,
                    secs(s.mean_epoch_seconds),
                    secs(s.lag_seconds),
                    s.lag_ratio * 100.0,
                    secs(s.median_epoch_seconds)
                ),
            ));
        }
        for r in &self.ranks.ranks {
            let rules: Vec<String> =
                r.findings_by_rule.iter().map(|(rule, n)| format!("{rule} {n}")).collect();
            rows.push((
                format!("rank {}", r.rank),
                format!(
                    "final loss {} · {} epochs · mean epoch {} · {} findings{}",
                    r.final_loss().map_or_else(|| "–".to_owned(), human),
                    r.epoch_seconds.len().max(r.epoch_loss.len()),
                    r.mean_epoch_seconds().map_or_else(|| "–".to_owned(), secs),
                    count(r.findings),
                    if rules.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", rules.join(", "))
                    }
                ),
            ));
        }
        Some(Table { title: "Ranks", rows, truncated: false })
    }

    fn layer_label(&self, i: usize) -> String {
        let l = &self.layers[i];
        let both = self.layers.iter().any(|o| o.name == l.name && o.source != l.source);
        match (both, l.source) {
            (true, GradSource::Backward) => format!("{} (layer_backward l2_norm)", l.name),
            _ => l.name.clone(),
        }
    }

    /// Every chart's data, as JSON (not yet escaped for `<script>`).
    pub(crate) fn data_json(&self) -> String {
        let mut charts: Vec<Chart<'_>> = Vec::new();
        let ew = self.epoch_axis.width;
        let sw = self.step_axis.width;
        let losses = ordered(self.epoch_metrics.iter().filter(|n| is_loss(&n.name)));
        let accs = ordered(
            self.epoch_metrics.iter().filter(|n| !is_loss(&n.name) && is_accuracy(&n.name)),
        );
        let others: Vec<_> = self
            .epoch_metrics
            .iter()
            .filter(|n| !is_loss(&n.name) && !is_accuracy(&n.name))
            .collect();
        for (id, list, ylog) in [
            ("loss", &losses, false),
            ("accuracy", &accs, false),
            ("epoch-metrics", &others, false),
        ] {
            if !list.is_empty() {
                charts.push(Chart {
                    id,
                    kind: "line",
                    axis: "epoch",
                    ylog,
                    series: pick(list, ew),
                });
            }
        }
        if self.epoch_time.count > 0 {
            charts.push(Chart {
                id: "timing",
                kind: "bar",
                axis: "epoch",
                ylog: false,
                series: vec![("duration_s".into(), 5, ew, (&self.epoch_time.buckets[..]).into())],
            });
        }
        let batch_loss = ordered(self.batch_metrics.iter().filter(|n| is_loss(&n.name)));
        let batch_other: Vec<_> = self.batch_metrics.iter().filter(|n| !is_loss(&n.name)).collect();
        if !batch_loss.is_empty() {
            charts.push(Chart {
                id: "batch",
                kind: "line",
                axis: "step",
                ylog: false,
                series: pick(&batch_loss, sw),
            });
        }
        if !batch_other.is_empty() {
            charts.push(Chart {
                id: "batch-metrics",
                kind: "line",
                axis: "step",
                ylog: false,
                series: pick(&batch_other, sw),
            });
        }
        if !self.layers.is_empty() {
            // Merge further when many layers would make the page heavy; min and max survive.
            let longest = self.layers.iter().map(|l| l.series.buckets.len()).max().unwrap_or(0);
            let budget = (self.config.max_layer_points.max(16) / self.layers.len()).max(1);
            let mut factor = 1usize;
            while longest.div_ceil(factor) > budget {
                factor *= 2;
            }
            let mut order: Vec<usize> = (0..self.layers.len()).collect();
            order.sort_by(|&a, &b| {
                let (la, lb) = (&self.layers[a], &self.layers[b]);
                natural_cmp(&la.name, &lb.name)
                    .then_with(|| (la.source as u8).cmp(&(lb.source as u8)))
            });
            let series: Vec<_> = order
                .into_iter()
                .map(|i| (i, &self.layers[i]))
                .map(|(i, l)| {
                    let buckets = if factor == 1 {
                        std::borrow::Cow::from(&l.series.buckets[..])
                    } else {
                        std::borrow::Cow::Owned(coarsened(&l.series.buckets, factor))
                    };
                    (self.layer_label(i), i, sw * factor as u64, buckets)
                })
                .collect();
            charts.push(Chart { id: "grad", kind: "line", axis: "step", ylog: true, series });
        }
        if !self.health.is_empty() {
            let series = self
                .health
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    (g.name.clone(), i, sw, std::borrow::Cow::from(&g.timeline.buckets[..]))
                })
                .collect();
            charts.push(Chart {
                id: "health",
                kind: "timeline",
                axis: "step",
                ylog: false,
                series,
            });
        }
        charts_document(
            [
                ("epoch", self.epoch_axis.width, self.epoch_axis.max_x),
                ("step", self.step_axis.width, self.step_axis.max_x),
            ],
            &charts,
        )
    }

    pub(crate) fn status(&self) -> (&'static str, &'static str) {
        if self.run.ended {
            ("Complete", "good")
        } else if self.closed {
            if self.from_logs { ("No train_end in logs", "warn") } else { ("Stopped", "warn") }
        } else if self.events() == 0 {
            ("Waiting for events", "info")
        } else {
            ("Running", "info")
        }
    }

    fn cards(&self) -> Vec<Card> {
        let mut cards = Vec::new();
        let (status, tone) = self.status();
        let span = match (self.first_timestamp, self.last_timestamp) {
            (Some(a), Some(b)) if b >= a => Some(b - a),
            _ => None,
        };
        let elapsed = self.run.duration_s.or(span);
        cards.push(Card {
            label: "Status",
            value: status.to_owned(),
            hint: elapsed.map_or_else(String::new, |d| format!("{} elapsed", duration(d))),
            tone,
        });
        let epochs_done = self.counts[EventType::EpochEnd.index()];
        if epochs_done > 0 || self.run.total_epochs.is_some() {
            cards.push(Card {
                label: "Epochs",
                value: match self.run.total_epochs {
                    Some(t) => format!("{} / {}", count(epochs_done), count(t)),
                    None => count(epochs_done),
                },
                hint: "epochs completed".into(),
                tone: "plain",
            });
        }
        let batches = self.counts[EventType::BatchEnd.index()];
        if batches > 0 {
            cards.push(Card {
                label: "Batches",
                value: count(batches),
                hint: match self.step_axis.max_x {
                    Some(m) => format!("global steps 0–{}", count(m)),
                    None => String::new(),
                },
                tone: "plain",
            });
        }
        let metric = |label: &'static str, names: &[&str], best_low: bool| -> Option<Card> {
            let (s, on_epochs) = match find(&self.epoch_metrics, names) {
                Some(s) => (s, true),
                None => (find(&self.batch_metrics, names)?, false),
            };
            let (x, last) = s.last?;
            let unit = if on_epochs { "epoch" } else { "step" };
            let best = if best_low { s.min } else { s.max };
            let hint = match best {
                Some((bx, b)) => format!(
                    "{} {} at {unit} {bx} · last at {unit} {x}",
                    if best_low { "min" } else { "max" },
                    human(b)
                ),
                None => format!("at {unit} {x}"),
            };
            let tone = if last.is_finite() { "plain" } else { "bad" };
            Some(Card { label, value: human(last), hint, tone })
        };
        cards.extend(metric("Train loss", &["loss", "train_loss"], true));
        cards.extend(metric(
            "Validation loss",
            &["val_loss", "valid_loss", "validation_loss"],
            true,
        ));
        cards.extend(metric(
            "Train accuracy",
            &["accuracy", "acc", "train_accuracy", "train_acc"],
            false,
        ));
        cards.extend(metric(
            "Validation accuracy",
            &["val_accuracy", "val_acc", "valid_accuracy", "validation_accuracy"],
            false,
        ));
        let worst = self.health.iter().map(|g| g.max_severity()).max();
        cards.push(Card {
            label: "Health findings",
            value: count(self.health_total),
            hint: if self.health.is_empty() {
                "no warnings".into()
            } else {
                format!(
                    "{} rule{} · worst: {}",
                    self.health.len(),
                    if self.health.len() == 1 { "" } else { "s" },
                    worst.map_or("info", Severity::as_str)
                )
            },
            tone: match worst {
                None | Some(Severity::Info | Severity::Success) => "good",
                Some(Severity::Warning) => "warn",
                Some(Severity::Danger | Severity::Critical) => "bad",
            },
        });
        cards.push(Card {
            label: "Events",
            value: count(self.events()),
            hint: "received by the dashboard".into(),
            tone: "plain",
        });
        cards
    }

    fn page(&self) -> Page {
        let model_name = self
            .run
            .model_info
            .as_ref()
            .and_then(|m| m.as_map())
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str);
        let title = match (&self.config.title, model_name) {
            (Some(t), _) => t.clone(),
            (None, Some(n)) => format!("Training dashboard — {}", crate::model::clip(n, 120)),
            (None, None) => "Training dashboard".to_owned(),
        };
        let (status, status_tone) = self.status();
        let sw = self.step_axis.width;
        let step_note = if sw == 1 {
            "every batch drawn exactly".to_owned()
        } else {
            format!(
                "each point covers {} steps: line = mean, band = min–max, so every spike stays visible",
                count(sw)
            )
        };
        let mut epoch_panels = Vec::new();
        let has = |pred: &dyn Fn(&str) -> bool| self.epoch_metrics.iter().any(|n| pred(&n.name));
        if has(&is_loss) {
            epoch_panels.push(Panel {
                id: "loss",
                title: "Loss".into(),
                note: "per epoch".into(),
                wide: false,
                tall: false,
            });
        }
        if has(&|n: &str| !is_loss(n) && is_accuracy(n)) {
            epoch_panels.push(Panel {
                id: "accuracy",
                title: "Accuracy".into(),
                note: "per epoch".into(),
                wide: false,
                tall: false,
            });
        }
        if self.epoch_time.count > 0 {
            epoch_panels.push(Panel {
                id: "timing",
                title: "Epoch time".into(),
                note: "seconds per epoch (duration_s)".into(),
                wide: false,
                tall: false,
            });
        }
        if has(&|n: &str| !is_loss(n) && !is_accuracy(n)) {
            epoch_panels.push(Panel {
                id: "epoch-metrics",
                title: "Other epoch metrics".into(),
                note: "per epoch".into(),
                wide: false,
                tall: false,
            });
        }
        let mut step_panels = Vec::new();
        if self.batch_metrics.iter().any(|n| is_loss(&n.name)) {
            step_panels.push(Panel {
                id: "batch",
                title: "Batch loss".into(),
                note: step_note.clone(),
                wide: true,
                tall: false,
            });
        }
        if self.batch_metrics.iter().any(|n| !is_loss(&n.name)) {
            step_panels.push(Panel {
                id: "batch-metrics",
                title: "Other batch metrics".into(),
                note: step_note.clone(),
                wide: true,
                tall: false,
            });
        }
        if !self.layers.is_empty() {
            step_panels.push(Panel {
                id: "grad",
                title: "Gradient norms per layer".into(),
                note: "log scale; gradient_computed grad_norm, or layer_backward l2_norm".into(),
                wide: true,
                tall: false,
            });
            if self.layers.len() > 1 {
                step_panels.push(Panel {
                    id: "grad-heat",
                    title: "Gradient-norm heatmap".into(),
                    note: "rows = layers, colour = log10 of the largest norm in each step range"
                        .into(),
                    wide: true,
                    tall: self.layers.len() > 12,
                });
            }
        }
        let health = self
            .health
            .iter()
            .enumerate()
            .map(|(index, g)| GroupView {
                index,
                name: g.name.clone(),
                count: g.count,
                severity: g.max_severity().as_str(),
                severities: Severity::ALL
                    .into_iter()
                    .rev()
                    .filter(|s| g.by_severity[*s as usize] > 0)
                    .map(|s| (s.as_str().to_owned(), g.by_severity[s as usize]))
                    .collect(),
                range: if g.first == g.last {
                    at(&g.first)
                } else {
                    format!("{} → {}", at(&g.first), at(&g.last))
                },
                diagnosis: g.diagnosis.clone().unwrap_or_default(),
                recommendations: g.recommendations.clone(),
                layers: {
                    let mut s = g.layers.join(", ");
                    if g.more_layers {
                        s.push_str(", …");
                    }
                    s
                },
                recent: g
                    .recent
                    .iter()
                    .rev()
                    .map(|r| RecentView {
                        at: at(&r.pos),
                        severity: r.severity.as_str(),
                        message: r.message.clone(),
                        layer: r.layer.clone().unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect();
        let mut tables = Vec::new();
        let total = self.run.total_epochs.map(Value::from);
        let mut run_entries: Vec<(&str, &Value)> = Vec::new();
        if let Some(t) = &total {
            run_entries.push(("total_epochs", t));
        }
        for (k, v) in &self.run.extra {
            run_entries.push((k.as_str(), v));
        }
        let final_metrics =
            self.run.final_metrics.clone().filter(|m| !m.is_empty()).map(Value::Map);
        if let Some(m) = &final_metrics {
            run_entries.push(("final_metrics", m));
        }
        let duration_v = self.run.duration_s.map(Value::from);
        if let Some(d) = &duration_v {
            run_entries.push(("duration_s", d));
        }
        let first = self.first_timestamp.map(|t| Value::from(utc(t)));
        if let Some(f) = &first {
            run_entries.push(("first_event", f));
        }
        let last = self.last_timestamp.map(|t| Value::from(utc(t)));
        if let Some(l) = &last {
            run_entries.push(("last_event", l));
        }
        let notes: Vec<(String, Value)> =
            self.notes.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        for (k, v) in &notes {
            run_entries.push((k.as_str(), v));
        }
        tables.extend(table("Run", &run_entries));
        tables.extend(self.rank_table());
        if let Some(m) = &self.run.model_info {
            tables.extend(table("Model", &[("", m)]));
        }
        if let Some(f) = &self.run.fingerprint {
            tables.extend(table("Fingerprint", &[("", f)]));
        }
        let mut notices = Vec::new();
        if self.omitted_metric_values > 0 {
            notices.push(format!(
                "{} metric values were not charted: only the first {} metric names per axis are kept.",
                count(self.omitted_metric_values),
                self.config.max_metrics
            ));
        }
        if self.omitted_layer_values > 0 {
            notices.push(format!(
                "{} gradient norms were not charted: only the first {} layers are kept.",
                count(self.omitted_layer_values),
                self.config.max_layers
            ));
        }
        Page {
            title,
            status,
            status_tone,
            generated: utc(obs_core::unix_now()),
            live: self.config.live && !self.closed,
            events: self.events(),
            cards: self.cards(),
            epoch_panels,
            step_panels,
            health,
            health_total: self.health_total,
            health_note: if self.health.is_empty() {
                String::new()
            } else {
                format!(
                    "{} findings in {} group{}; click a row or a group to read its diagnosis",
                    count(self.health_total),
                    self.health.len(),
                    if self.health.len() == 1 { "" } else { "s" }
                )
            },
            has_health_timeline: !self.health.is_empty(),
            tables,
            notices,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_escaping_round_trips_and_hides_markup() {
        let nasty = "</script><script>alert(1)</script> & <!-- \u{2028}\u{2029} \" \\";
        let json = serde_json::to_string(&serde_json::json!({ "k": nasty })).unwrap();
        let safe = escape_json_for_script(&json);
        for bad in ["<", ">", "&", "\u{2028}", "\u{2029}"] {
            assert!(!safe.contains(bad), "{bad:?} left in {safe}");
        }
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["k"], nasty);
    }

    #[test]
    fn numbers_are_json_and_non_finite_become_null() {
        let mut s = String::new();
        for v in [0.1, 1e-300, 1e300, -0.0, 3.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            s.push_str(if s.is_empty() { "[" } else { "," });
            num(&mut s, v);
        }
        s.push(']');
        let back: Vec<Option<f64>> = serde_json::from_str(&s).unwrap();
        assert_eq!(
            back,
            [Some(0.1), Some(1e-300), Some(1e300), Some(-0.0), Some(3.0), None, None, None]
        );
    }

    #[test]
    fn natural_order_compares_numbers_by_value() {
        let mut names = vec!["dense_10", "dense_2", "conv", "dense_02x", "Dense_1", "dense_2"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["Dense_1", "conv", "dense_2", "dense_2", "dense_02x", "dense_10"]);
    }

    #[test]
    fn base64_matches_known_vectors() {
        for (input, expected) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn utc_dates_and_human_numbers() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_740_000_000.0), "2025-02-19 21:20:00 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(f64::NAN), "—");
        assert_eq!(human(0.5), "0.5");
        assert_eq!(human(1234.56789), "1234.5679");
        assert_eq!(human(1e-7), "1.000e-7");
        assert_eq!(human(f64::NAN), "NaN");
        assert_eq!(human(-0.0), "0");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(duration(75.0), "1 min 15 s");
        assert_eq!(duration(3725.0), "1 h 02 min");
    }
}
