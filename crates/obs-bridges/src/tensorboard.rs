//! TensorBoard event files, written directly: TFRecord framing with masked CRC-32C around
//! hand-encoded `tensorboard.Event` protobufs. No Python, TensorFlow or protobuf compiler.
//!
//! See `docs/bridges.md` for every tag the bridge writes and at which step.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use obs_core::{Backend, BackendError, Event, EventType, Value, unix_now};

use crate::crc::masked_crc32c;
use crate::histogram::Accumulator;
use crate::names::{hostname, sanitize_component};
use crate::proto::{self, Enc, Wire};
use crate::steps::{
    LAYER_STATS, Steps, accumulate, for_each_leaf, health_rule, layer_name, recommendations,
};
use crate::{BridgeError, Histogram, json};

const WRITE_BUFFER: usize = 64 * 1024;
const BATCH: usize = 512;

/// Counts of what a [`TensorBoardBridge`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TensorBoardStats {
    /// Events received.
    pub events: u64,
    /// TFRecord records written, the file-version record included.
    pub records: u64,
    /// Scalar values written.
    pub scalars: u64,
    /// Text values written.
    pub texts: u64,
    /// Histogram values written.
    pub histograms: u64,
    /// Values left out: non-numeric metrics, malformed `histogram` data.
    pub skipped: u64,
    /// Bytes written to the event file.
    pub bytes: u64,
}

/// Options of a [`TensorBoardBridge`]; start from [`TensorBoardBridge::builder`].
#[derive(Clone, Debug)]
pub struct TensorBoardBuilder {
    log_dir: PathBuf,
    run_name: Option<String>,
    distributions: bool,
}

impl TensorBoardBuilder {
    /// Writes into `log_dir/<run name>` instead of `log_dir`, the run name sanitised into one
    /// path component (see [`crate::sanitize_component`]). TensorBoard shows each
    /// sub-directory as a run.
    #[must_use]
    pub fn run_name(mut self, name: impl Into<String>) -> Self {
        self.run_name = Some(name.into());
        self
    }

    /// Whether to write per-epoch distributions (histograms) of every batch metric and every
    /// layer's gradient norm (default `true`).
    #[must_use]
    pub fn distributions(mut self, on: bool) -> Self {
        self.distributions = on;
        self
    }

    /// Creates the directory and a new event file in it.
    ///
    /// # Errors
    /// [`BridgeError::CreateDir`] or [`BridgeError::CreateFile`] when the directory is not
    /// writable; [`BridgeError::Write`] when the first record cannot be written.
    pub fn create(self) -> Result<TensorBoardBridge, BridgeError> {
        let dir = match &self.run_name {
            Some(name) => self.log_dir.join(sanitize_component(name)),
            None => self.log_dir.clone(),
        };
        fs::create_dir_all(&dir)
            .map_err(|source| BridgeError::CreateDir { path: dir.clone(), source })?;
        let (file, path) = create_event_file(&dir)?;
        let mut bridge = TensorBoardBridge {
            dir,
            path,
            out: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            enc: Enc::default(),
            text: String::new(),
            key: String::new(),
            steps: Steps::default(),
            distributions: self.distributions,
            dists: BTreeMap::new(),
            health_warnings: 0,
            stats: TensorBoardStats::default(),
        };
        // Every event file starts with its version; readers take 2 to mean "no step purging".
        bridge.enc.double(1, unix_now());
        bridge.enc.str_parts(3, &["brain.Event:2"]);
        bridge.write_record()?;
        Ok(bridge)
    }
}

/// Creates `events.out.tfevents.<secs>.<host>.<pid>.<n>` with `create_new`, counting `n` up
/// until the name is free: an existing file is never opened.
fn create_event_file(dir: &Path) -> Result<(File, PathBuf), BridgeError> {
    let secs = unix_now().max(0.0) as u64;
    let (host, pid) = (hostname(), std::process::id());
    for n in 0..10_000u32 {
        let path = dir.join(format!("events.out.tfevents.{secs:010}.{host}.{pid}.{n}"));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(BridgeError::CreateFile { path, source }),
        }
    }
    Err(BridgeError::AlreadyExists { path: dir.join(format!("events.out.tfevents.{secs:010}.*")) })
}

/// Writes a run's events as a TensorBoard event file; a [`Backend`] for the event bus.
///
/// * `epoch_end` → scalars `metrics/<name>` for every numeric metric (nested maps joined with
///   `/`) and `epoch/duration_s`, at the epoch step;
/// * `batch_end` → scalars `batch/<name>` (the batch loss is `batch/loss`) at the global batch
///   step;
/// * `gradient_computed` → `grad_norm/<layer>`; `layer_forward`, `layer_backward` and
///   `weight_updated` → `activations/`, `gradients/` and `weights/<layer>/<stat>` for the
///   [`LAYER_STATS`] present (plus `weights/<layer>/update_norm`), and a histogram
///   `activations/<layer>` (...) when the event's data has a `histogram` entry with real bucket
///   counts ([`Histogram::from_data`]);
/// * at each epoch end, histograms `batch_distribution/<name>` and
///   `grad_norm_distribution/<layer>` of every value seen in that epoch (unless turned off);
/// * `health_check` → a text `health/<rule>/text_summary` (Markdown: severity, message,
///   diagnosis, recommendations) and the scalar `health/warnings` (running count);
/// * `train_start` → a text `run/text_summary` with its data as JSON; `train_end` → scalars
///   `final/<name>` at the last epoch step.
///
/// Steps are explained in `docs/bridges.md`. All work runs on the bus thread; the training
/// thread only queues events.
///
/// # Examples
/// ```
/// use obs_bridges::TensorBoardBridge;
/// use obs_core::{LogLevel, TrainingLogger, data};
///
/// let dir = tempfile::tempdir()?;
/// let logger = TrainingLogger::new(LogLevel::Detailed)?;
/// logger.add_backend(TensorBoardBridge::create(dir.path())?)?;
/// logger.on_epoch_start(0);
/// logger.on_batch_end(0, data! { "loss" => 0.9 });
/// logger.on_epoch_end(0, data! { "loss" => 0.8, "accuracy" => 0.6 });
/// logger.close()?;
/// // Then: tensorboard --logdir <dir>
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TensorBoardBridge {
    dir: PathBuf,
    path: PathBuf,
    out: Option<BufWriter<File>>,
    enc: Enc,
    text: String,
    key: String,
    steps: Steps,
    distributions: bool,
    dists: BTreeMap<String, Accumulator>,
    health_warnings: u64,
    stats: TensorBoardStats,
}

impl TensorBoardBridge {
    /// A bridge writing a new event file directly in `log_dir` (created if missing).
    ///
    /// # Errors
    /// As [`TensorBoardBuilder::create`].
    pub fn create(log_dir: impl AsRef<Path>) -> Result<TensorBoardBridge, BridgeError> {
        Self::builder(log_dir).create()
    }

    /// Options: a run sub-directory, distributions.
    pub fn builder(log_dir: impl AsRef<Path>) -> TensorBoardBuilder {
        TensorBoardBuilder {
            log_dir: log_dir.as_ref().to_path_buf(),
            run_name: None,
            distributions: true,
        }
    }

    /// The directory holding the event file (give its parent to `tensorboard --logdir`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What was written so far.
    pub fn stats(&self) -> &TensorBoardStats {
        &self.stats
    }

    /// Heap bytes the bridge holds: encoding buffers, the write buffer and the per-epoch
    /// distribution buckets. Bounded by the number of distinct series, not the run length.
    pub fn memory_bytes(&self) -> usize {
        let dists: usize = self
            .dists
            .iter()
            .map(|(k, a)| k.capacity() + a.len() * 2 * std::mem::size_of::<u64>() + 64)
            .sum();
        self.enc.buf.capacity() + self.text.capacity() + self.key.capacity() + WRITE_BUFFER + dists
    }

    /// Writes one event (what the bus does for each event of a batch).
    ///
    /// # Errors
    /// [`BridgeError::Write`] when the file cannot be written; [`BridgeError::Closed`] after
    /// [`TensorBoardBridge::close`].
    pub fn write_event(&mut self, e: &Event) -> Result<(), BridgeError> {
        if self.out.is_none() {
            return Err(BridgeError::Closed);
        }
        self.stats.events += 1;
        match e.event_type {
            EventType::EpochEnd => self.epoch_end(e),
            EventType::BatchEnd => self.batch_end(e),
            EventType::GradientComputed => self.gradient(e),
            EventType::LayerForward => self.layer(e, "activations"),
            EventType::LayerBackward => self.layer(e, "gradients"),
            EventType::WeightUpdated => self.layer(e, "weights"),
            EventType::HealthCheck => self.health(e),
            EventType::TrainStart => self.train_start(e),
            EventType::TrainEnd => self.train_end(e),
            // Summaries restate batch metrics the bridges already wrote as scalars.
            EventType::EpochStart | EventType::BatchStart | EventType::EpochSummary => Ok(()),
        }
    }

    /// Replays stored events (for example `obs_storage::LogReader::read_all`) into the file,
    /// in batches, exactly as the bus would. Returns how many events were read.
    ///
    /// # Errors
    /// As [`TensorBoardBridge::write_event`].
    pub fn replay(&mut self, events: impl IntoIterator<Item = Event>) -> Result<u64, BridgeError> {
        let mut batch = Vec::with_capacity(BATCH);
        let mut n = 0;
        for e in events {
            batch.push(e);
            if batch.len() == BATCH {
                n += self.write_batch(&batch)?;
                batch.clear();
            }
        }
        n += self.write_batch(&batch)?;
        Ok(n)
    }

    fn write_batch(&mut self, events: &[Event]) -> Result<u64, BridgeError> {
        for e in events {
            self.write_event(e)?;
        }
        Ok(events.len() as u64)
    }

    /// Hands everything written so far to the operating system.
    ///
    /// # Errors
    /// [`BridgeError::Write`]; [`BridgeError::Closed`] after close.
    pub fn flush(&mut self) -> Result<(), BridgeError> {
        let out = self.out.as_mut().ok_or(BridgeError::Closed)?;
        out.flush().map_err(|source| BridgeError::Write { path: self.path.clone(), source })
    }

    /// Writes the distributions of an unfinished epoch, flushes and syncs the file to disk.
    /// Idempotent: a second call does nothing.
    ///
    /// # Errors
    /// [`BridgeError::Write`] when writing or syncing fails.
    pub fn close(&mut self) -> Result<(), BridgeError> {
        if self.out.is_none() {
            return Ok(());
        }
        // Values of an epoch that never ended belong to the epoch after the last one that did.
        let pending = self.write_distributions(self.steps.next_epoch(), unix_now());
        let mut out = self.out.take().ok_or(BridgeError::Closed)?;
        let path = self.path.clone();
        pending?;
        out.flush().map_err(|source| BridgeError::Write { path: path.clone(), source })?;
        out.get_ref().sync_all().map_err(|source| BridgeError::Write { path, source })
    }

    // ---- one method per event kind ----

    fn epoch_end(&mut self, e: &Event) -> Result<(), BridgeError> {
        let step = self.steps.epoch_end(e);
        let wall = wall_time(e);
        let Self { enc, stats, .. } = self;
        begin(enc, wall, step);
        enc.nested(5, |s| {
            if let Some(metrics) = e.data.get("metrics").and_then(Value::as_map) {
                for_each_leaf(metrics, &mut |name, v| scalar(s, stats, &["metrics/", name], v));
            }
            if let Some(d) = e.data.get("duration_s") {
                scalar(s, stats, &["epoch/duration_s"], d);
            }
        });
        self.write_summary()?;
        self.write_distributions(step, wall)
    }

    fn batch_end(&mut self, e: &Event) -> Result<(), BridgeError> {
        let step = self.steps.batch_end(e);
        let Self { enc, stats, dists, distributions, key, .. } = self;
        begin(enc, wall_time(e), step);
        enc.nested(5, |s| {
            if let Some(metrics) = e.data.get("metrics").and_then(Value::as_map) {
                for_each_leaf(metrics, &mut |name, v| {
                    scalar(s, stats, &["batch/", name], v);
                    if *distributions && let Some(x) = v.as_f64() {
                        accumulate(dists, key, "batch_distribution/", name, x);
                    }
                });
            }
        });
        self.write_summary()
    }

    fn gradient(&mut self, e: &Event) -> Result<(), BridgeError> {
        let step = self.steps.global(e);
        let layer = layer_name(e);
        let Self { enc, stats, dists, distributions, key, .. } = self;
        let Some(v) = e.data.get("grad_norm") else {
            stats.skipped += 1;
            return Ok(());
        };
        begin(enc, wall_time(e), step);
        enc.nested(5, |s| scalar(s, stats, &["grad_norm/", &layer], v));
        if *distributions && let Some(x) = v.as_f64() {
            accumulate(dists, key, "grad_norm_distribution/", &layer, x);
        }
        self.write_summary()
    }

    fn layer(&mut self, e: &Event, prefix: &str) -> Result<(), BridgeError> {
        let step = self.steps.global(e);
        let layer = layer_name(e);
        let Self { enc, stats, .. } = self;
        begin(enc, wall_time(e), step);
        enc.nested(5, |s| {
            for stat in LAYER_STATS
                .iter()
                .copied()
                .chain((e.event_type == EventType::WeightUpdated).then_some("update_norm"))
            {
                if let Some(v) = e.data.get(stat) {
                    scalar(s, stats, &[prefix, "/", &layer, "/", stat], v);
                }
            }
            if let Some(h) = e.data.get("histogram") {
                match h.as_map().and_then(Histogram::from_data) {
                    Some(h) => {
                        histogram(s, &[prefix, "/", &layer], &h);
                        stats.histograms += 1;
                    }
                    None => stats.skipped += 1,
                }
            }
        });
        self.write_summary()
    }

    fn health(&mut self, e: &Event) -> Result<(), BridgeError> {
        let step = self.steps.global(e);
        self.health_warnings += 1;
        let rule = sanitize_tag(health_rule(e));
        let Self { enc, stats, text, health_warnings, .. } = self;
        health_markdown(text, e);
        begin(enc, wall_time(e), step);
        enc.nested(5, |s| {
            text_value(s, &["health/", &rule, "/text_summary"], text);
            stats.texts += 1;
            scalar(s, stats, &["health/warnings"], &Value::from(*health_warnings));
        });
        self.write_summary()
    }

    fn train_start(&mut self, e: &Event) -> Result<(), BridgeError> {
        let Self { enc, stats, text, .. } = self;
        text.clear();
        text.push_str("**Training started**");
        if let Some(n) = e.data.get("total_epochs").and_then(Value::as_u64) {
            text.push_str(&format!(" ({n} epochs)"));
        }
        text.push_str("\n\n```json\n");
        json::map(text, &e.data);
        text.push_str("\n```\n");
        begin(enc, wall_time(e), 0);
        enc.nested(5, |s| text_value(s, &["run/text_summary"], text));
        stats.texts += 1;
        self.write_summary()
    }

    fn train_end(&mut self, e: &Event) -> Result<(), BridgeError> {
        let step = self.steps.epoch_of(e);
        let Some(metrics) = e.data.get("metrics").and_then(Value::as_map) else {
            return Ok(());
        };
        if metrics.is_empty() {
            return Ok(());
        }
        let Self { enc, stats, .. } = self;
        begin(enc, wall_time(e), step);
        enc.nested(5, |s| {
            for_each_leaf(metrics, &mut |name, v| scalar(s, stats, &["final/", name], v));
        });
        self.write_summary()
    }

    fn write_distributions(&mut self, step: u64, wall: f64) -> Result<(), BridgeError> {
        if self.dists.values().all(Accumulator::is_empty) {
            return Ok(());
        }
        let Self { enc, stats, dists, .. } = self;
        begin(enc, wall, step);
        enc.nested(5, |s| {
            for (tag, acc) in dists.iter_mut() {
                if let Some(h) = acc.take() {
                    histogram(s, &[tag], &h);
                    stats.histograms += 1;
                }
            }
        });
        self.write_summary()
    }

    /// Writes the event in `self.enc` unless its summary turned out empty (a batch without
    /// metrics, a layer event without statistics): `nested` then left the summary's key `0x2A`
    /// and length 0 as the last two bytes.
    fn write_summary(&mut self) -> Result<(), BridgeError> {
        if self.enc.buf.ends_with(&[0x2A, 0]) {
            return Ok(());
        }
        self.write_record()
    }

    /// Frames `self.enc.buf` as one TFRecord: length, masked CRC of the length, data, masked
    /// CRC of the data (all little-endian).
    fn write_record(&mut self) -> Result<(), BridgeError> {
        let out = self.out.as_mut().ok_or(BridgeError::Closed)?;
        let data = &self.enc.buf;
        let len = (data.len() as u64).to_le_bytes();
        let r = out
            .write_all(&len)
            .and_then(|()| out.write_all(&masked_crc32c(&len).to_le_bytes()))
            .and_then(|()| out.write_all(data))
            .and_then(|()| out.write_all(&masked_crc32c(data).to_le_bytes()));
        r.map_err(|source| BridgeError::Write { path: self.path.clone(), source })?;
        self.stats.records += 1;
        self.stats.bytes += data.len() as u64 + 16;
        Ok(())
    }
}

impl Backend for TensorBoardBridge {
    fn name(&self) -> &str {
        "bridge.tensorboard"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        self.write_batch(events).map(drop).map_err(BackendError::from)
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        TensorBoardBridge::flush(self).map_err(BackendError::from)
    }

    fn close(&mut self) -> Result<(), BackendError> {
        TensorBoardBridge::close(self).map_err(BackendError::from)
    }
}

impl Drop for TensorBoardBridge {
    fn drop(&mut self) {
        // Best effort: a bridge dropped without close still leaves a complete file.
        let _ = self.close();
    }
}

// ---- encoding helpers (free functions so they can borrow the bridge's fields separately) ----

fn wall_time(e: &Event) -> f64 {
    if e.timestamp.is_finite() { e.timestamp } else { unix_now() }
}

/// Tags may hold any text, but a `/` inside a rule name would add a level to TensorBoard's tag
/// tree: keep one component.
fn sanitize_tag(s: &str) -> String {
    s.chars().map(|c| if c == '/' || c.is_control() { '_' } else { c }).collect()
}

fn begin(enc: &mut Enc, wall_time: f64, step: u64) {
    enc.clear();
    enc.double(1, wall_time);
    if step != 0 {
        enc.varint(2, step);
    }
}

/// A `Summary.Value{tag, simple_value}`; non-numeric values are counted as skipped.
fn scalar(s: &mut Enc, stats: &mut TensorBoardStats, tag: &[&str], v: &Value) {
    let Some(x) = v.as_f64() else {
        stats.skipped += 1;
        return;
    };
    s.nested(1, |v| {
        v.str_parts(1, tag);
        v.float(2, x as f32);
    });
    stats.scalars += 1;
}

/// A text summary as tensorboardX writes it: a string tensor of shape `[1]` with the `text`
/// plugin's metadata.
fn text_value(s: &mut Enc, tag: &[&str], text: &str) {
    s.nested(1, |v| {
        v.str_parts(1, tag);
        v.nested(9, |m| m.nested(1, |p| p.str_parts(1, &["text"])));
        v.nested(8, |t| {
            t.varint(1, 7); // DT_STRING
            t.nested(2, |shape| shape.nested(2, |dim| dim.varint(1, 1)));
            t.bytes(8, text.as_bytes());
        });
    });
}

/// A `HistogramProto`: bucket limits are the right edges of the buckets.
fn histogram(s: &mut Enc, tag: &[&str], h: &Histogram) {
    s.nested(1, |v| {
        v.str_parts(1, tag);
        v.nested(5, |p| {
            p.double(1, h.min());
            p.double(2, h.max());
            p.double(3, h.num());
            p.double(4, h.sum());
            p.double(5, h.sum_squares());
            p.packed_doubles(6, h.edges()[1..].iter().copied());
            p.packed_doubles(7, h.counts().iter().copied());
        });
    });
}

fn health_markdown(out: &mut String, e: &Event) {
    out.clear();
    out.push_str("**");
    out.push_str(&e.severity.as_str().to_uppercase());
    out.push_str("** · rule `");
    out.push_str(health_rule(e));
    out.push('`');
    if let Some(ep) = e.epoch {
        out.push_str(&format!(" · epoch {ep}"));
    }
    if let Some(b) = e.batch {
        out.push_str(&format!(" · batch {b}"));
    }
    if let Some(l) = &e.layer_name {
        out.push_str(" · layer `");
        out.push_str(l);
        out.push('`');
    }
    out.push_str("\n\n");
    out.push_str(&e.message);
    match e.data.get("diagnosis") {
        Some(Value::Str(d)) => {
            out.push_str("\n\n**Diagnosis:** ");
            out.push_str(d);
        }
        Some(Value::Null) | None => {}
        Some(other) => {
            out.push_str("\n\n**Diagnosis:** ");
            json::value(out, other);
        }
    }
    let recs = recommendations(e);
    if !recs.is_empty() {
        out.push_str("\n\n**Recommendations:**\n");
        for r in recs {
            out.push_str("\n- ");
            out.push_str(&r);
        }
    }
}

// ---- reading ----

/// One decoded record of an event file: the parts of `tensorboard.Event` the bridge writes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TbEvent {
    /// Unix time in seconds.
    pub wall_time: f64,
    /// The step.
    pub step: i64,
    /// `Some("brain.Event:2")` for the first record of a file.
    pub file_version: Option<String>,
    /// The summary values.
    pub values: Vec<TbValue>,
}

/// One `Summary.Value`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TbValue {
    /// The tag.
    pub tag: String,
    /// What it holds.
    pub kind: TbValueKind,
}

/// The value kinds the bridge writes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TbValueKind {
    /// `simple_value`.
    Scalar(f32),
    /// A string tensor (a text summary).
    Text(String),
    /// `histo`: min, max, num, sum, sum of squares, right bucket edges, counts.
    Histogram {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
        /// Count.
        num: f64,
        /// Sum.
        sum: f64,
        /// Sum of squares.
        sum_squares: f64,
        /// Right edges of the buckets.
        bucket_limit: Vec<f64>,
        /// Bucket counts.
        bucket: Vec<f64>,
    },
    /// Anything else (images, audio, other tensors).
    Other,
}

/// Reads an event file record by record, checking both CRCs of every record.
///
/// Unlike TensorBoard, which silently stops at the first bad record, this reader returns
/// [`BridgeError::Corrupt`] with the record's offset. A file cut in the middle of its last
/// record (a writer killed mid-write) ends the iteration with that error too.
#[derive(Debug)]
pub struct EventFileReader {
    path: PathBuf,
    input: BufReader<File>,
    offset: u64,
    done: bool,
}

impl EventFileReader {
    /// Opens an event file.
    ///
    /// # Errors
    /// [`BridgeError::Read`] when it cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<EventFileReader, BridgeError> {
        let path = path.as_ref().to_path_buf();
        let file =
            File::open(&path).map_err(|source| BridgeError::Read { path: path.clone(), source })?;
        Ok(EventFileReader { path, input: BufReader::new(file), offset: 0, done: false })
    }

    fn corrupt(&self, reason: impl Into<String>) -> BridgeError {
        BridgeError::Corrupt { path: self.path.clone(), offset: self.offset, reason: reason.into() }
    }

    fn read_record(&mut self) -> Result<Option<Vec<u8>>, BridgeError> {
        let mut header = [0u8; 12];
        let mut got = 0;
        while got < header.len() {
            match self.input.read(&mut header[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(self.corrupt("truncated record header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(BridgeError::Read { path: self.path.clone(), source }),
            }
        }
        let len_bytes: [u8; 8] = header[..8].try_into().unwrap_or_default();
        let crc = u32::from_le_bytes(header[8..].try_into().unwrap_or_default());
        if masked_crc32c(&len_bytes) != crc {
            return Err(self.corrupt("length checksum mismatch"));
        }
        let len = u64::from_le_bytes(len_bytes);
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= 1 << 30)
            .ok_or_else(|| self.corrupt(format!("implausible record length {len}")))?;
        let mut data = vec![0u8; len + 4];
        self.input.read_exact(&mut data).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.corrupt("truncated record")
            } else {
                BridgeError::Read { path: self.path.clone(), source: e }
            }
        })?;
        let crc = u32::from_le_bytes(data[len..].try_into().unwrap_or_default());
        data.truncate(len);
        if masked_crc32c(&data) != crc {
            return Err(self.corrupt("data checksum mismatch"));
        }
        self.offset += 16 + len as u64;
        Ok(Some(data))
    }
}

impl Iterator for EventFileReader {
    type Item = Result<TbEvent, BridgeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = match self.read_record() {
            Ok(None) => None,
            Ok(Some(data)) => {
                Some(decode_event(&data).map_err(|()| self.corrupt("malformed Event protobuf")))
            }
            Err(e) => Some(Err(e)),
        };
        self.done = !matches!(r, Some(Ok(_)));
        r
    }
}

/// Decodes one serialised `tensorboard.Event`.
fn decode_event(data: &[u8]) -> Result<TbEvent, ()> {
    let mut ev = TbEvent { wall_time: 0.0, step: 0, file_version: None, values: Vec::new() };
    for f in proto::fields(data) {
        match f.map_err(drop)? {
            (1, w) => ev.wall_time = w.as_f64().ok_or(())?,
            (2, w) => ev.step = w.as_u64().ok_or(())? as i64,
            (3, w) => ev.file_version = Some(w.as_str().ok_or(())?.to_owned()),
            (5, w) => {
                for vf in proto::fields(w.as_bytes().ok_or(())?) {
                    if let (1, Wire::Len(b)) = vf.map_err(drop)? {
                        ev.values.push(decode_value(b)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(ev)
}

fn decode_value(data: &[u8]) -> Result<TbValue, ()> {
    let mut tag = String::new();
    let mut kind = TbValueKind::Other;
    for f in proto::fields(data) {
        match f.map_err(drop)? {
            (1, w) => w.as_str().ok_or(())?.clone_into(&mut tag),
            (2, w) => kind = TbValueKind::Scalar(w.as_f32().ok_or(())?),
            (5, w) => kind = decode_histogram(w.as_bytes().ok_or(())?)?,
            (8, w) => {
                for tf in proto::fields(w.as_bytes().ok_or(())?) {
                    if let (8, s) = tf.map_err(drop)? {
                        kind = TbValueKind::Text(
                            String::from_utf8_lossy(s.as_bytes().ok_or(())?).into_owned(),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    Ok(TbValue { tag, kind })
}

fn decode_histogram(data: &[u8]) -> Result<TbValueKind, ()> {
    let (mut min, mut max, mut num, mut sum, mut sum_squares) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut bucket_limit, mut bucket) = (Vec::new(), Vec::new());
    for f in proto::fields(data) {
        match f.map_err(drop)? {
            (1, w) => min = w.as_f64().ok_or(())?,
            (2, w) => max = w.as_f64().ok_or(())?,
            (3, w) => num = w.as_f64().ok_or(())?,
            (4, w) => sum = w.as_f64().ok_or(())?,
            (5, w) => sum_squares = w.as_f64().ok_or(())?,
            (6, w) => {
                bucket_limit = proto::packed_doubles(w.as_bytes().ok_or(())?).map_err(drop)?
            }
            (7, w) => bucket = proto::packed_doubles(w.as_bytes().ok_or(())?).map_err(drop)?,
            _ => {}
        }
    }
    Ok(TbValueKind::Histogram { min, max, num, sum, sum_squares, bucket_limit, bucket })
}
