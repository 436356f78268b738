//! Several runs on one page: curves overlaid, findings side by side, what changed between them.

use std::borrow::Cow;
use std::path::Path;

use obs_core::{EventType, Severity};
use serde::Serialize;

use crate::model::{MAX_NAME, MAX_TEXT, Named, clip};
use crate::render::{
    Card, Chart, Panel, SeriesRef, at, charts_document, count, duration, find, human, is_accuracy,
    is_loss, natural_cmp, ordered, render_template, write_atomic,
};
use crate::{Dashboard, DashboardError};

/// Most runs one page overlays: beyond this the curves are unreadable.
pub const MAX_COMPARED_RUNS: usize = 16;

/// One page that overlays several runs.
///
/// Add each run's [`Dashboard`] (for stored runs, [`Dashboard::from_logs`]) under a label, and
/// optionally the fingerprint fields that differ between the runs (`obs compare` takes them
/// from `obs_fingerprint`'s diff), then render. Loss, accuracy, other metrics and epoch time
/// are drawn per run on shared axes; the health timeline has a row per run and rule; findings
/// and run facts are tables with a column per run.
///
/// # Examples
/// ```
/// use obs_core::{Event, EventType, LogLevel, data};
/// use obs_dashboard::{Comparison, Dashboard};
///
/// let run = |lr: f64| {
///     let events = (0..5u64).map(|e| {
///         Event::new(EventType::EpochEnd, LogLevel::Basic)
///             .at(Some(e), None)
///             .field("metrics", data! { "loss" => 1.0 / (1.0 + lr * e as f64) })
///     });
///     Dashboard::from_events(Default::default(), events)
/// };
/// let mut page = Comparison::new();
/// page.add_run("lr=0.1", run(0.1))?;
/// page.add_run("lr=1.0", run(1.0))?;
/// page.add_difference("hyperparameters.lr", ["0.1", "1.0"])?;
/// let html = page.render()?;
/// assert!(html.contains("lr=1.0") && html.contains("hyperparameters.lr"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    title: Option<String>,
    runs: Vec<(String, Dashboard)>,
    differences: Vec<(String, Vec<String>)>,
    notes: Vec<String>,
}

impl Comparison {
    /// An empty comparison.
    pub fn new() -> Self {
        Comparison::default()
    }

    /// Sets the page title (default "Run comparison — N runs").
    pub fn set_title(&mut self, title: impl Into<String>) {
        self.title = Some(clip(&title.into(), MAX_TEXT));
    }

    /// Adds a run under `label` (shown in legends and column heads; clipped when very long; a
    /// label used twice gets a `#2` suffix so the legends stay unambiguous).
    ///
    /// # Errors
    /// [`DashboardError::Compare`] when [`MAX_COMPARED_RUNS`] runs are already added, or when
    /// differences were added before this run (each difference needs a value per run).
    pub fn add_run(
        &mut self,
        label: impl Into<String>,
        dashboard: Dashboard,
    ) -> Result<(), DashboardError> {
        if self.runs.len() >= MAX_COMPARED_RUNS {
            return Err(DashboardError::Compare(format!(
                "at most {MAX_COMPARED_RUNS} runs can be compared on one page"
            )));
        }
        if !self.differences.is_empty() {
            return Err(DashboardError::Compare(
                "add every run before the fingerprint differences".into(),
            ));
        }
        let base = clip(&label.into(), MAX_NAME);
        let base = if base.is_empty() { format!("run {}", self.runs.len() + 1) } else { base };
        let mut label = base.clone();
        let mut n = 1;
        while self.runs.iter().any(|(l, _)| *l == label) {
            n += 1;
            label = format!("{base} #{n}");
        }
        self.runs.push((label, dashboard));
        Ok(())
    }

    /// Adds a fingerprint field that differs between the runs, with its value in each run in
    /// the order the runs were added (as text; `(absent)` where a run lacks the field).
    ///
    /// # Errors
    /// [`DashboardError::Compare`] when the number of values is not the number of runs.
    pub fn add_difference<I, S>(
        &mut self,
        field: impl Into<String>,
        values: I,
    ) -> Result<(), DashboardError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let values: Vec<String> = values.into_iter().map(|v| clip(v.as_ref(), MAX_TEXT)).collect();
        if values.len() != self.runs.len() {
            return Err(DashboardError::Compare(format!(
                "a difference needs one value per run: got {} values for {} runs",
                values.len(),
                self.runs.len()
            )));
        }
        self.differences.push((clip(&field.into(), MAX_NAME), values));
        Ok(())
    }

    /// Adds a line shown above the fingerprint table (for example "run b has no fingerprint").
    pub fn add_note(&mut self, note: impl Into<String>) {
        self.notes.push(clip(&note.into(), MAX_TEXT));
    }

    /// The labels of the runs, in the order they were added.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.runs.iter().map(|(l, _)| l.as_str())
    }

    /// Renders the page: one self-contained HTML file, with the same charts, escaping and
    /// Content-Security-Policy as the single-run dashboard.
    ///
    /// # Errors
    /// [`DashboardError::Compare`] with no runs; [`DashboardError::Template`] on a bug.
    pub fn render(&self) -> Result<String, DashboardError> {
        if self.runs.is_empty() {
            return Err(DashboardError::Compare("no runs to compare".into()));
        }
        let charts = self.charts();
        render_template("compare.html", &self.page(&charts), &self.data_json(&charts))
    }

    /// Renders the page and writes it to `path` atomically, creating the directory if needed.
    ///
    /// # Errors
    /// As [`Comparison::render`]; [`DashboardError::Io`] when the file cannot be written.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), DashboardError> {
        let html = self.render()?;
        write_atomic(path.as_ref(), html.as_bytes())
    }

    /// Every run's series of `list` that `keep` selects, labelled `run · metric`.
    fn overlay<'a>(
        &'a self,
        list: impl Fn(&'a Dashboard) -> &'a [Named],
        keep: impl Fn(&str) -> bool,
        width: impl Fn(&'a Dashboard) -> u64,
    ) -> Vec<SeriesRef<'a>> {
        let mut out = Vec::new();
        for (label, dash) in &self.runs {
            for n in ordered(list(dash).iter().filter(|n| keep(&n.name))) {
                let color = out.len();
                out.push((
                    format!("{label} · {}", n.name),
                    color,
                    width(dash),
                    Cow::from(&n.series.buckets[..]),
                ));
            }
        }
        out
    }

    fn charts(&self) -> Vec<Chart<'_>> {
        fn epoch_w(d: &Dashboard) -> u64 {
            d.epoch_axis.width
        }
        fn step_w(d: &Dashboard) -> u64 {
            d.step_axis.width
        }
        fn epochs(d: &Dashboard) -> &[Named] {
            &d.epoch_metrics
        }
        fn batches(d: &Dashboard) -> &[Named] {
            &d.batch_metrics
        }
        fn line<'a>(id: &'static str, axis: &'static str, series: Vec<SeriesRef<'a>>) -> Chart<'a> {
            Chart { id, kind: "line", axis, ylog: false, series }
        }
        let mut charts = vec![
            line("loss", "epoch", self.overlay(epochs, is_loss, epoch_w)),
            line(
                "accuracy",
                "epoch",
                self.overlay(epochs, |n| !is_loss(n) && is_accuracy(n), epoch_w),
            ),
            line(
                "epoch-metrics",
                "epoch",
                self.overlay(epochs, |n| !is_loss(n) && !is_accuracy(n), epoch_w),
            ),
            line("batch", "step", self.overlay(batches, is_loss, step_w)),
        ];
        let timing = self
            .runs
            .iter()
            .enumerate()
            .filter(|(_, (_, d))| d.epoch_time.count > 0)
            .map(|(i, (label, d))| {
                (label.clone(), i, d.epoch_axis.width, Cow::from(&d.epoch_time.buckets[..]))
            })
            .collect();
        charts.push(line("timing", "epoch", timing));
        let mut health = Vec::new();
        for (label, d) in &self.runs {
            for g in &d.health {
                let color = health.len();
                health.push((
                    format!("{label} · {}", g.name),
                    color,
                    d.step_axis.width,
                    Cow::from(&g.timeline.buckets[..]),
                ));
            }
        }
        charts.push(Chart {
            id: "health",
            kind: "timeline",
            axis: "step",
            ylog: false,
            series: health,
        });
        charts.retain(|c| !c.series.is_empty());
        charts
    }

    fn data_json(&self, charts: &[Chart<'_>]) -> String {
        let max =
            |f: fn(&Dashboard) -> Option<u64>| self.runs.iter().filter_map(|(_, d)| f(d)).max();
        charts_document(
            [("epoch", 1, max(|d| d.epoch_axis.max_x)), ("step", 1, max(|d| d.step_axis.max_x))],
            charts,
        )
    }

    fn page(&self, charts: &[Chart<'_>]) -> ComparePage {
        let has = |id: &str| charts.iter().any(|c| c.id == id);
        let panel = |id: &'static str, title: &str, note: &str, wide: bool| Panel {
            id,
            title: title.into(),
            note: note.into(),
            wide,
            tall: false,
        };
        let mut epoch_panels = Vec::new();
        for (id, title, note) in [
            ("loss", "Loss", "per epoch, every run"),
            ("accuracy", "Accuracy", "per epoch, every run"),
            ("timing", "Epoch time", "seconds per epoch (duration_s), every run"),
            ("epoch-metrics", "Other epoch metrics", "per epoch, every run"),
        ] {
            if has(id) {
                epoch_panels.push(panel(id, title, note, false));
            }
        }
        let mut step_panels = Vec::new();
        if has("batch") {
            step_panels.push(panel(
                "batch",
                "Batch loss",
                "global step; runs with many steps are drawn as bucket mean with min–max band",
                true,
            ));
        }
        let heads: Vec<String> = self.labels().map(str::to_owned).collect();
        ComparePage {
            title: self
                .title
                .clone()
                .unwrap_or_else(|| format!("Run comparison — {} runs", self.runs.len())),
            generated: crate::render::utc(obs_core::unix_now()),
            cards: self.runs.iter().map(|(label, d)| run_card(label, d)).collect(),
            epoch_panels,
            step_panels,
            has_health_timeline: has("health"),
            runs: Matrix { heads: heads.clone(), rows: self.facts() },
            findings: Matrix { heads: heads.clone(), rows: self.findings() },
            differences: Matrix {
                heads,
                rows: self
                    .differences
                    .iter()
                    .map(|(field, values)| Row {
                        name: field.clone(),
                        cells: values.iter().map(|v| Cell::plain(v.clone())).collect(),
                    })
                    .collect(),
            },
            difference_notes: self.notes.clone(),
            events: self.runs.iter().map(|(_, d)| d.events()).sum(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// One row per fact, one cell per run.
    fn facts(&self) -> Vec<Row> {
        let row = |name: &str, cell: &dyn Fn(&Dashboard) -> Cell| Row {
            name: name.into(),
            cells: self.runs.iter().map(|(_, d)| cell(d)).collect(),
        };
        let last = |names: &'static [&'static str]| {
            move |d: &Dashboard| {
                find(&d.epoch_metrics, names)
                    .or_else(|| find(&d.batch_metrics, names))
                    .and_then(|s| s.last)
                    .map_or_else(Cell::none, |(_, v)| {
                        Cell::toned(human(v), if v.is_finite() { "plain" } else { "bad" })
                    })
            }
        };
        let best = |names: &'static [&'static str], low: bool| {
            move |d: &Dashboard| {
                find(&d.epoch_metrics, names)
                    .and_then(|s| if low { s.min } else { s.max })
                    .map_or_else(Cell::none, |(x, v)| {
                        Cell::plain(format!("{} (epoch {x})", human(v)))
                    })
            }
        };
        const LOSS: &[&str] = &["loss", "train_loss"];
        const VAL_LOSS: &[&str] = &["val_loss", "valid_loss", "validation_loss"];
        const VAL_ACC: &[&str] =
            &["val_accuracy", "val_acc", "valid_accuracy", "validation_accuracy"];
        vec![
            row("status", &|d| {
                let (status, tone) = d.status();
                Cell::toned(status.into(), tone)
            }),
            row("epochs", &|d| Cell::plain(count(d.counts[EventType::EpochEnd.index()]))),
            row("batches", &|d| Cell::plain(count(d.counts[EventType::BatchEnd.index()]))),
            row("last train loss", &last(LOSS)),
            row("best train loss", &best(LOSS, true)),
            row("last validation loss", &last(VAL_LOSS)),
            row("best validation loss", &best(VAL_LOSS, true)),
            row("best validation accuracy", &best(VAL_ACC, false)),
            row("mean epoch time", &|d| {
                let s = &d.epoch_time;
                let (sum, n) = s
                    .buckets
                    .iter()
                    .fold((0.0, 0u64), |(sum, n), b| (sum + b.mean * b.n as f64, n + b.n));
                if n == 0 { Cell::none() } else { Cell::plain(duration(sum / n as f64)) }
            }),
            row("health findings", &|d| Cell::toned(count(d.health_total), tone_of(worst(d)))),
            row("events", &|d| Cell::plain(count(d.events()))),
        ]
    }

    /// One row per rule any run reported, one cell per run: count, worst severity, first step.
    fn findings(&self) -> Vec<Row> {
        let mut rules: Vec<&str> =
            self.runs.iter().flat_map(|(_, d)| d.health.iter().map(|g| g.name.as_str())).collect();
        rules.sort_by(|a, b| natural_cmp(a, b));
        rules.dedup();
        rules
            .into_iter()
            .map(|rule| Row {
                name: rule.to_owned(),
                cells: self
                    .runs
                    .iter()
                    .map(|(_, d)| match d.health.iter().find(|g| g.name == rule) {
                        None => Cell::none(),
                        Some(g) => Cell {
                            text: format!("× {}, first at {}", count(g.count), at(&g.first)),
                            tone: tone_of(Some(g.max_severity())),
                            severity: Some(g.max_severity().as_str()),
                        },
                    })
                    .collect(),
            })
            .collect()
    }
}

fn worst(d: &Dashboard) -> Option<Severity> {
    d.health.iter().map(|g| g.max_severity()).max()
}

fn tone_of(worst: Option<Severity>) -> &'static str {
    match worst {
        None | Some(Severity::Info | Severity::Success) => "good",
        Some(Severity::Warning) => "warn",
        Some(Severity::Danger | Severity::Critical) => "bad",
    }
}

fn run_card(label: &str, d: &Dashboard) -> Card {
    let loss = find(&d.epoch_metrics, &["loss", "train_loss"])
        .or_else(|| find(&d.batch_metrics, &["loss", "train_loss"]))
        .and_then(|s| s.last);
    let (status, _) = d.status();
    Card {
        label: "run",
        value: label.to_owned(),
        hint: format!(
            "{status} · loss {} · {} finding{}",
            loss.map_or_else(|| "—".to_owned(), |(_, v)| human(v)),
            count(d.health_total),
            if d.health_total == 1 { "" } else { "s" }
        ),
        tone: tone_of(worst(d)),
    }
}

/// A table cell of the comparison.
#[derive(Serialize)]
struct Cell {
    text: String,
    tone: &'static str,
    severity: Option<&'static str>,
}

impl Cell {
    fn plain(text: String) -> Cell {
        Cell { text, tone: "plain", severity: None }
    }
    fn toned(text: String, tone: &'static str) -> Cell {
        Cell { text, tone, severity: None }
    }
    fn none() -> Cell {
        Cell { text: "—".into(), tone: "muted", severity: None }
    }
}

#[derive(Serialize)]
struct Row {
    name: String,
    cells: Vec<Cell>,
}

/// A table with a column per run.
#[derive(Serialize)]
struct Matrix {
    heads: Vec<String>,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct ComparePage {
    title: String,
    generated: String,
    cards: Vec<Card>,
    epoch_panels: Vec<Panel>,
    step_panels: Vec<Panel>,
    has_health_timeline: bool,
    runs: Matrix,
    findings: Matrix,
    differences: Matrix,
    difference_notes: Vec<String>,
    events: u64,
    version: &'static str,
}
