//! Weights & Biases offline runs, written directly: the `wandb/offline-run-*` directory and its
//! `run-<id>.wandb` transaction log (LevelDB-style log blocks with CRC-32 around hand-encoded
//! `wandb_internal.Record` protobufs). `wandb sync <run dir>` uploads it later.
//!
//! See `docs/bridges.md` for the records and history keys the bridge writes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use obs_core::{Backend, BackendError, Data, Event, EventType, Value, unix_now};

use crate::crc::crc32_ieee2;
use crate::histogram::Accumulator;
use crate::names::{hostname, new_run_id, split_unix, utc_timespec, valid_run_id};
use crate::proto::{self, Enc, Wire};
use crate::steps::{
    LAYER_STATS, Steps, accumulate, for_each_leaf, health_rule, layer_name, recommendations,
};
use crate::{BridgeError, Histogram, json};

/// The first seven bytes of every `.wandb` file: `:W&B`, the magic `0xBEE1` (LE), version 0.
pub const FILE_HEADER: [u8; 7] = [b':', b'W', b'&', b'B', 0xE1, 0xBE, 0];
const BLOCK: usize = 32 * 1024;
const CHUNK_HEADER: usize = 7;
const WRITE_BUFFER: usize = 64 * 1024;
const BATCH: usize = 512;
/// The keys the SDK adds to every history row.
const SPECIAL_KEYS: [&str; 3] = ["_step", "_runtime", "_timestamp"];

/// `wandb_internal.Record` field numbers of the record kinds the bridge writes.
mod field {
    pub(super) const HISTORY: u32 = 2;
    pub(super) const SUMMARY: u32 = 3;
    pub(super) const CONFIG: u32 = 5;
    pub(super) const OUTPUT_RAW: u32 = 13;
    pub(super) const RUN: u32 = 17;
    pub(super) const EXIT: u32 = 18;
}

/// Counts of what a [`WandbBridge`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WandbStats {
    /// Events received.
    pub events: u64,
    /// Records written (run, history, summary, config, console, exit).
    pub records: u64,
    /// History rows written.
    pub history_rows: u64,
    /// Console lines (health warnings) written.
    pub console_lines: u64,
    /// Values left out: malformed `histogram` data, gradient events without a norm.
    pub skipped: u64,
    /// Bytes written to the `.wandb` file, framing included.
    pub bytes: u64,
    /// The exit code written on close, once closed.
    pub exit_code: Option<i32>,
}

/// Marks a run as failed from anywhere, after the bridge itself was moved into a logger.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use obs_bridges::WandbBridge;
/// let bridge = WandbBridge::builder("demo").dir(dir.path()).create()?;
/// let failed = bridge.failure_flag();
/// // ... logger.add_backend(bridge)?; training fails ...
/// failed.mark_failed(); // the exit record will carry exit code 1
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct FailureFlag(Arc<AtomicBool>);

impl FailureFlag {
    /// The run ended in failure: the exit record gets exit code 1.
    pub fn mark_failed(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the run was marked failed.
    pub fn is_failed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Options of a [`WandbBridge`]; start from [`WandbBridge::builder`].
#[derive(Clone, Debug)]
pub struct WandbBuilder {
    root: PathBuf,
    project: String,
    entity: Option<String>,
    run_name: Option<String>,
    run_id: Option<String>,
    tags: Vec<String>,
    config: Data,
    notes: Option<String>,
    group: Option<String>,
    job_type: Option<String>,
    started_at: Option<f64>,
    distributions: bool,
}

impl WandbBuilder {
    /// The directory that holds (or will hold) the `wandb/` folder (default: the current
    /// directory, as the wandb SDK does).
    #[must_use]
    pub fn dir(mut self, root: impl AsRef<Path>) -> Self {
        self.root = root.as_ref().to_path_buf();
        self
    }

    /// The W&B entity (user or team); when unset, `wandb sync` uses the logged-in default.
    #[must_use]
    pub fn entity(mut self, entity: impl Into<String>) -> Self {
        self.entity = Some(entity.into());
        self
    }

    /// The run's display name.
    #[must_use]
    pub fn run_name(mut self, name: impl Into<String>) -> Self {
        self.run_name = Some(name.into());
        self
    }

    /// A fixed run id (1 to 64 characters of `[A-Za-z0-9_-]`); default: 8 random `[a-z0-9]`.
    /// A run directory with that id must not exist yet.
    #[must_use]
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// The run config (hyperparameters), written in the run record. `train_start` data is
    /// added as config updates later.
    #[must_use]
    pub fn config(mut self, config: Data) -> Self {
        self.config = config;
        self
    }

    /// Notes shown with the run.
    #[must_use]
    pub fn notes(mut self, notes: impl Into<String>) -> Self {
        self.notes = Some(notes.into());
        self
    }

    /// The run group.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The job type.
    #[must_use]
    pub fn job_type(mut self, job_type: impl Into<String>) -> Self {
        self.job_type = Some(job_type.into());
        self
    }

    /// The run's start, in Unix seconds: names the directory and is the run's start time.
    /// Default: the directory is named after the current time and the start time is the
    /// first event's timestamp, which keeps `_runtime` right when replaying an old run.
    #[must_use]
    pub fn started_at(mut self, unix_seconds: f64) -> Self {
        self.started_at = Some(unix_seconds);
        self
    }

    /// Whether to log per-epoch distributions (W&B histograms) of every batch metric and every
    /// layer's gradient norm (default `true`).
    #[must_use]
    pub fn distributions(mut self, on: bool) -> Self {
        self.distributions = on;
        self
    }

    /// Creates `<dir>/wandb/offline-run-YYYYMMDD_HHMMSS-<id>/` with `files/` and the
    /// `run-<id>.wandb` log, never touching an existing run.
    ///
    /// # Errors
    /// [`BridgeError::InvalidProject`], [`BridgeError::InvalidRunId`],
    /// [`BridgeError::AlreadyExists`] for a given run id that is taken, and
    /// [`BridgeError::CreateDir`]/[`BridgeError::CreateFile`]/[`BridgeError::Write`] when the
    /// directory is not writable.
    pub fn create(self) -> Result<WandbBridge, BridgeError> {
        let p = &self.project;
        if p.is_empty()
            || p.chars().count() > 128
            || p.chars().any(|c| matches!(c, '/' | '\\' | '#' | '?' | '%' | ':') || c.is_control())
        {
            return Err(BridgeError::InvalidProject(self.project));
        }
        if let Some(id) = &self.run_id
            && !valid_run_id(id)
        {
            return Err(BridgeError::InvalidRunId(id.clone()));
        }
        let wandb_dir = self.root.join("wandb");
        fs::create_dir_all(&wandb_dir)
            .map_err(|source| BridgeError::CreateDir { path: wandb_dir.clone(), source })?;
        let timespec = utc_timespec(self.started_at.unwrap_or_else(unix_now));
        let (run_id, run_dir) = create_run_dir(&wandb_dir, &timespec, self.run_id.as_deref())?;
        let files = run_dir.join("files");
        fs::create_dir(&files).map_err(|source| BridgeError::CreateDir { path: files, source })?;
        let path = run_dir.join(format!("run-{run_id}.wandb"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| BridgeError::CreateFile { path: path.clone(), source })?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        out.write_all(&FILE_HEADER)
            .map_err(|source| BridgeError::Write { path: path.clone(), source })?;
        point_latest_run(&wandb_dir, &run_dir);
        Ok(WandbBridge {
            meta: RunMeta {
                project: self.project,
                entity: self.entity,
                name: self.run_name,
                id: run_id,
                tags: self.tags,
                config: self.config,
                notes: self.notes,
                group: self.group,
                job_type: self.job_type,
                host: hostname(),
            },
            run_dir,
            path,
            out: Some(out),
            block_offset: FILE_HEADER.len(),
            num: 0,
            enc: Enc::default(),
            rec: Enc::default(),
            json: String::new(),
            key: String::new(),
            start_time: self.started_at,
            run_written: false,
            steps: Steps::default(),
            row: Row::default(),
            next_step: 0,
            specials: Default::default(),
            specials_dirty: false,
            summary: BTreeMap::new(),
            distributions: self.distributions,
            dists: BTreeMap::new(),
            health_warnings: 0,
            train_ended: false,
            failed: FailureFlag::default(),
            last_time: None,
            stats: WandbStats::default(),
        })
    }
}

/// Creates the run directory with `create_dir` (which fails if it exists), drawing a new
/// random id on a collision unless the caller fixed the id.
fn create_run_dir(
    wandb_dir: &Path,
    timespec: &str,
    fixed: Option<&str>,
) -> Result<(String, PathBuf), BridgeError> {
    if let Some(id) = fixed {
        // Any earlier directory of this id (another timestamp, online or offline) would make
        // `wandb sync` treat ours as a resumed run.
        let suffix = format!("-{id}");
        if let Ok(entries) = fs::read_dir(wandb_dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(&suffix) {
                    return Err(BridgeError::AlreadyExists { path: entry.path() });
                }
            }
        }
    }
    for _ in 0..64 {
        let id = fixed.map_or_else(new_run_id, str::to_owned);
        let dir = wandb_dir.join(format!("offline-run-{timespec}-{id}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if fixed.is_some() {
                    return Err(BridgeError::AlreadyExists { path: dir });
                }
            }
            Err(source) => return Err(BridgeError::CreateDir { path: dir, source }),
        }
    }
    Err(BridgeError::AlreadyExists { path: wandb_dir.join(format!("offline-run-{timespec}-*")) })
}

/// Points `wandb/latest-run` at the new run, as the SDK does. Best effort, and only ever
/// replaces a symbolic link, never a real file or directory.
fn point_latest_run(wandb_dir: &Path, run_dir: &Path) {
    #[cfg(unix)]
    {
        let link = wandb_dir.join("latest-run");
        let is_link = fs::symlink_metadata(&link).map(|m| m.file_type().is_symlink());
        if matches!(is_link, Ok(true)) {
            let _ = fs::remove_file(&link);
        } else if is_link.is_ok() {
            return;
        }
        if let Some(name) = run_dir.file_name() {
            let _ = std::os::unix::fs::symlink(name, &link);
        }
    }
    #[cfg(not(unix))]
    let _ = (wandb_dir, run_dir);
}

#[derive(Clone, Debug)]
struct RunMeta {
    project: String,
    entity: Option<String>,
    name: Option<String>,
    id: String,
    tags: Vec<String>,
    config: Data,
    notes: Option<String>,
    group: Option<String>,
    job_type: Option<String>,
    host: String,
}

/// The history row being filled: every event with the same global step lands in one row.
///
/// Slots are reused from row to row (`len` of them are in use), so a steady run allocates no
/// strings per row.
#[derive(Debug, Default)]
struct Row {
    key: Option<u64>,
    items: Vec<(String, String)>,
    len: usize,
    timestamp: f64,
}

impl Row {
    fn set(&mut self, key: &str, json: &str) {
        if let Some((_, v)) = self.items[..self.len].iter_mut().find(|(k, _)| k == key) {
            json.clone_into(v);
            return;
        }
        match self.items.get_mut(self.len) {
            Some((k, v)) => {
                key.clone_into(k);
                json.clone_into(v);
            }
            None => self.items.push((key.to_owned(), json.to_owned())),
        }
        self.len += 1;
    }

    fn items(&self) -> &[(String, String)] {
        &self.items[..self.len]
    }

    fn clear(&mut self) {
        self.key = None;
        self.len = 0;
    }
}

/// Writes a run's events as a W&B offline run; a [`Backend`] for the event bus.
///
/// What it writes (details and exact keys in `docs/bridges.md`):
/// * the **run record** first (project, entity, display name, id, tags, notes, group, job
///   type, host, start time, and the config given to the builder);
/// * **config updates** from `train_start` (`total_epochs`, `model_info`, each
///   `hyperparameters` entry at top level, `fingerprint`, any other entry);
/// * **history rows**, one per global step, with `_step` (0, 1, 2, ...), `_runtime` and
///   `_timestamp`: `batch/<metric>` from `batch_end`; `epoch`, `metrics/<metric>` and
///   `epoch/duration_s` from `epoch_end`; `grad_norm/<layer>`; `activations/`, `gradients/`,
///   `weights/<layer>/<stat>`; W&B histograms from real bucket data; `health/warnings`;
/// * **summary updates** (the latest value of every key) at each epoch end, on flush and on
///   close, plus `final/<metric>` from `train_end` and `health/last_warning`;
/// * each **health warning** as a console line (stderr) in the run's logs;
/// * the **exit record** on close: exit code 0 after a `train_end` event, 1 when the run was
///   closed without one (an error or a panic unwound the training loop) or was marked failed.
///
/// # Examples
/// ```
/// use obs_bridges::WandbBridge;
/// use obs_core::{LogLevel, TrainingLogger, data};
///
/// let dir = tempfile::tempdir()?;
/// let bridge = WandbBridge::builder("my_experiment")
///     .run_name("experiment_001")
///     .config(data! { "lr" => 0.01, "epochs" => 50 })
///     .dir(dir.path())
///     .create()?;
/// let run_dir = bridge.run_dir().to_path_buf();
/// let logger = TrainingLogger::new(LogLevel::Detailed)?;
/// logger.add_backend(bridge)?;
/// logger.on_train_start(1, data! {});
/// logger.on_epoch_start(0);
/// logger.on_batch_end(0, data! { "loss" => 0.9 });
/// logger.on_epoch_end(0, data! { "loss" => 0.8 });
/// logger.on_train_end(data! {});
/// logger.close()?;
/// assert!(run_dir.join("files").is_dir());
/// // Later, online: wandb sync <run_dir>
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct WandbBridge {
    meta: RunMeta,
    run_dir: PathBuf,
    path: PathBuf,
    out: Option<BufWriter<File>>,
    block_offset: usize,
    num: u64,
    /// The record body being encoded.
    enc: Enc,
    /// The whole record (number and body).
    rec: Enc,
    json: String,
    key: String,
    start_time: Option<f64>,
    run_written: bool,
    steps: Steps,
    row: Row,
    next_step: u64,
    /// `_step`, `_runtime` and `_timestamp` of the last row written, as JSON.
    specials: [String; 3],
    specials_dirty: bool,
    /// Latest JSON value of every key, and whether it changed since the last summary record.
    summary: BTreeMap<String, (String, bool)>,
    distributions: bool,
    dists: BTreeMap<String, Accumulator>,
    health_warnings: u64,
    train_ended: bool,
    failed: FailureFlag,
    last_time: Option<f64>,
    stats: WandbStats,
}

impl WandbBridge {
    /// Options for a run in `project`.
    pub fn builder(project: impl Into<String>) -> WandbBuilder {
        WandbBuilder {
            root: PathBuf::from("."),
            project: project.into(),
            entity: None,
            run_name: None,
            run_id: None,
            tags: Vec::new(),
            config: Data::new(),
            notes: None,
            group: None,
            job_type: None,
            started_at: None,
            distributions: true,
        }
    }

    /// The run directory (`.../wandb/offline-run-YYYYMMDD_HHMMSS-<id>`): give it to
    /// `wandb sync`.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The `run-<id>.wandb` transaction log.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.meta.id
    }

    /// What was written so far.
    pub fn stats(&self) -> &WandbStats {
        &self.stats
    }

    /// A handle that marks the run failed even after the bridge moved into a logger.
    pub fn failure_flag(&self) -> FailureFlag {
        self.failed.clone()
    }

    /// Marks the run failed: the exit record will carry exit code 1.
    pub fn mark_failed(&mut self) {
        self.failed.mark_failed();
    }

    /// Heap bytes the bridge holds: encoding buffers, the write buffer, the pending history
    /// row, the latest value of every key and the per-epoch distribution buckets. Bounded by
    /// the number of distinct keys, not by the run length.
    pub fn memory_bytes(&self) -> usize {
        let row: usize = self.row.items.iter().map(|(k, v)| k.capacity() + v.capacity() + 48).sum();
        let summary: usize =
            self.summary.iter().map(|(k, (v, _))| k.capacity() + v.capacity() + 64).sum();
        let dists: usize = self
            .dists
            .iter()
            .map(|(k, a)| k.capacity() + a.len() * 2 * std::mem::size_of::<u64>() + 64)
            .sum();
        self.enc.buf.capacity()
            + self.rec.buf.capacity()
            + self.json.capacity()
            + self.key.capacity()
            + self.specials.iter().map(String::capacity).sum::<usize>()
            + WRITE_BUFFER
            + row
            + summary
            + dists
    }

    /// Writes one event (what the bus does for each event of a batch).
    ///
    /// # Errors
    /// [`BridgeError::Write`] when the file cannot be written; [`BridgeError::Closed`] after
    /// [`WandbBridge::close`].
    pub fn write_event(&mut self, e: &Event) -> Result<(), BridgeError> {
        if self.out.is_none() {
            return Err(BridgeError::Closed);
        }
        self.stats.events += 1;
        if e.timestamp.is_finite() {
            self.last_time = Some(self.last_time.map_or(e.timestamp, |t| t.max(e.timestamp)));
        }
        self.ensure_run(e.timestamp)?;
        match e.event_type {
            EventType::TrainStart => self.train_start(e),
            EventType::EpochEnd => self.epoch_end(e),
            EventType::BatchEnd => self.batch_end(e),
            EventType::GradientComputed => self.gradient(e),
            EventType::LayerForward => self.layer(e, "activations"),
            EventType::LayerBackward => self.layer(e, "gradients"),
            EventType::WeightUpdated => self.layer(e, "weights"),
            EventType::HealthCheck => self.health(e),
            EventType::TrainEnd => self.train_end(e),
            // Summaries restate batch metrics the bridges already wrote as scalars.
            EventType::EpochStart | EventType::BatchStart | EventType::EpochSummary => Ok(()),
        }
    }

    /// Replays stored events (for example `obs_storage::LogReader::read_all`) into the run,
    /// in batches, exactly as the bus would. Returns how many events were read. Call
    /// [`WandbBridge::close`] afterwards to write the exit record.
    ///
    /// # Errors
    /// As [`WandbBridge::write_event`].
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

    /// Writes the pending history row and the summary changes, and hands everything to the
    /// operating system.
    ///
    /// # Errors
    /// [`BridgeError::Write`]; [`BridgeError::Closed`] after close.
    pub fn flush(&mut self) -> Result<(), BridgeError> {
        if self.out.is_none() {
            return Err(BridgeError::Closed);
        }
        if self.run_written {
            self.commit_row()?;
            self.write_summary()?;
        }
        let out = self.out.as_mut().ok_or(BridgeError::Closed)?;
        out.flush().map_err(|source| BridgeError::Write { path: self.path.clone(), source })
    }

    /// Finishes the run: the pending row, the distributions of an unfinished epoch, the final
    /// summary and the exit record (exit code 0 after `train_end`, 1 without it or when marked
    /// failed), then flushes and syncs. Idempotent: a second call does nothing.
    ///
    /// # Errors
    /// [`BridgeError::Write`] when writing or syncing fails.
    pub fn close(&mut self) -> Result<(), BridgeError> {
        if self.out.is_none() {
            return Ok(());
        }
        let result = self.finish();
        let closing = self.out.take();
        result?;
        let mut out = closing.ok_or(BridgeError::Closed)?;
        let path = self.path.clone();
        out.flush().map_err(|source| BridgeError::Write { path: path.clone(), source })?;
        out.get_ref().sync_all().map_err(|source| BridgeError::Write { path, source })
    }

    fn finish(&mut self) -> Result<(), BridgeError> {
        self.ensure_run(self.last_time.unwrap_or_else(unix_now))?;
        if self.dists.values().any(|a| !a.is_empty()) {
            let key = self.row.key.unwrap_or(u64::MAX);
            self.row_at(key, self.last_time.unwrap_or_else(unix_now))?;
            self.add_distributions();
        }
        self.commit_row()?;
        let runtime = self.runtime(self.last_time.unwrap_or_else(unix_now));
        // The SDK keeps the run time in the summary as `_wandb.runtime` (whole seconds).
        self.summary_set_nested(&["_wandb", "runtime"], &format!("{}", runtime as i64));
        self.write_summary()?;
        let exit_code = i32::from(self.failed.is_failed() || !self.train_ended);
        let Self { enc, .. } = self;
        enc.clear();
        if exit_code != 0 {
            enc.varint(1, exit_code as u64);
        }
        let secs = runtime.clamp(0.0, f64::from(i32::MAX)) as u64;
        if secs != 0 {
            enc.varint(2, secs);
        }
        self.write_record(field::EXIT)?;
        self.stats.exit_code = Some(exit_code);
        Ok(())
    }

    // ---- events ----

    fn ensure_run(&mut self, timestamp: f64) -> Result<(), BridgeError> {
        if self.run_written {
            return Ok(());
        }
        let start =
            self.start_time.unwrap_or(if timestamp.is_finite() { timestamp } else { unix_now() });
        self.start_time = Some(start);
        let Self { enc, meta, json, .. } = self;
        enc.clear();
        enc.str_parts(1, &[&meta.id]);
        if let Some(entity) = &meta.entity {
            enc.str_parts(2, &[entity]);
        }
        enc.str_parts(3, &[&meta.project]);
        if !meta.config.is_empty() {
            enc.nested(4, |c| {
                for (k, v) in &meta.config {
                    json.clear();
                    json::value(json, v);
                    config_item(c, k, json);
                }
            });
        }
        for (field, v) in [(6, &meta.group), (7, &meta.job_type), (8, &meta.name), (9, &meta.notes)]
        {
            if let Some(v) = v {
                enc.str_parts(field, &[v]);
            }
        }
        for t in &meta.tags {
            enc.str_parts(10, &[t]);
        }
        enc.str_parts(13, &[&meta.host]);
        enc.nested(17, |t| timestamp_fields(t, start));
        self.write_record(field::RUN)?;
        self.run_written = true;
        Ok(())
    }

    fn train_start(&mut self, e: &Event) -> Result<(), BridgeError> {
        if e.data.is_empty() {
            return Ok(());
        }
        let Self { enc, json, .. } = self;
        enc.clear();
        for (k, v) in &e.data {
            match (k, v) {
                ("hyperparameters", Value::Map(hp)) => {
                    for (hk, hv) in hp {
                        json.clear();
                        json::value(json, hv);
                        enc.nested(1, |c| config_body(c, hk, json));
                    }
                }
                _ => {
                    json.clear();
                    json::value(json, v);
                    enc.nested(1, |c| config_body(c, k, json));
                }
            }
        }
        self.write_record(field::CONFIG)
    }

    fn epoch_end(&mut self, e: &Event) -> Result<(), BridgeError> {
        let key = self.steps.global(e);
        let epoch = self.steps.epoch_end(e);
        self.row_at(key, e.timestamp)?;
        self.set_json("epoch", &Value::from(epoch));
        if let Some(metrics) = e.data.get("metrics").and_then(Value::as_map) {
            let Self { row, json, key, .. } = self;
            for_each_leaf(metrics, &mut |name, v| {
                json.clear();
                json::value(json, v);
                key.clear();
                key.push_str("metrics/");
                key.push_str(name);
                row.set(key, json);
            });
        }
        if let Some(d) = e.data.get("duration_s") {
            self.set_json("epoch/duration_s", d);
        }
        self.add_distributions();
        // An epoch is a natural checkpoint: its row and the summary go out now.
        self.commit_row()?;
        self.write_summary()
    }

    fn batch_end(&mut self, e: &Event) -> Result<(), BridgeError> {
        let key = self.steps.batch_end(e);
        self.row_at(key, e.timestamp)?;
        if let Some(metrics) = e.data.get("metrics").and_then(Value::as_map) {
            let Self { row, json, key, dists, distributions, .. } = self;
            for_each_leaf(metrics, &mut |name, v| {
                json.clear();
                json::value(json, v);
                key.clear();
                key.push_str("batch/");
                key.push_str(name);
                row.set(key, json);
                if *distributions && let Some(x) = v.as_f64() {
                    accumulate(dists, key, "batch_distribution/", name, x);
                }
            });
        }
        Ok(())
    }

    fn gradient(&mut self, e: &Event) -> Result<(), BridgeError> {
        let Some(v) = e.data.get("grad_norm") else {
            self.stats.skipped += 1;
            return Ok(());
        };
        let key = self.steps.global(e);
        self.row_at(key, e.timestamp)?;
        let layer = layer_name(e);
        let Self { row, json, key, dists, distributions, .. } = self;
        json.clear();
        json::value(json, v);
        key.clear();
        key.push_str("grad_norm/");
        key.push_str(&layer);
        row.set(key, json);
        if *distributions && let Some(x) = v.as_f64() {
            accumulate(dists, key, "grad_norm_distribution/", &layer, x);
        }
        Ok(())
    }

    fn layer(&mut self, e: &Event, prefix: &str) -> Result<(), BridgeError> {
        let key = self.steps.global(e);
        self.row_at(key, e.timestamp)?;
        let layer = layer_name(e);
        let extra = (e.event_type == EventType::WeightUpdated).then_some("update_norm");
        for stat in LAYER_STATS.iter().copied().chain(extra) {
            if let Some(v) = e.data.get(stat) {
                let Self { row, json, key, .. } = self;
                json.clear();
                json::value(json, v);
                key.clear();
                for part in [prefix, "/", &layer, "/", stat] {
                    key.push_str(part);
                }
                row.set(key, json);
            }
        }
        if let Some(h) = e.data.get("histogram") {
            match h.as_map().and_then(Histogram::from_data) {
                Some(h) => {
                    let Self { row, json, key, .. } = self;
                    json.clear();
                    json::histogram(json, &h);
                    key.clear();
                    for part in [prefix, "/", &layer] {
                        key.push_str(part);
                    }
                    row.set(key, json);
                }
                None => self.stats.skipped += 1,
            }
        }
        Ok(())
    }

    fn health(&mut self, e: &Event) -> Result<(), BridgeError> {
        let key = self.steps.global(e);
        self.row_at(key, e.timestamp)?;
        self.health_warnings += 1;
        self.set_json("health/warnings", &Value::from(self.health_warnings));
        let rule = health_rule(e);
        // The console line, as a user would have seen it in the terminal.
        let mut line = format!("[observatory] {} {rule}", e.severity.as_str().to_uppercase());
        if let Some(ep) = e.epoch {
            line.push_str(&format!(" epoch={ep}"));
        }
        if let Some(b) = e.batch {
            line.push_str(&format!(" batch={b}"));
        }
        if let Some(l) = &e.layer_name {
            line.push_str(&format!(" layer={l}"));
        }
        line.push_str(": ");
        line.push_str(&e.message);
        line.push('\n');
        let diagnosis = match e.data.get("diagnosis") {
            Some(Value::Str(d)) => Some(d.clone()),
            Some(Value::Null) | None => None,
            Some(other) => {
                let mut s = String::new();
                json::value(&mut s, other);
                Some(s)
            }
        };
        if let Some(d) = &diagnosis {
            line.push_str(&format!("  diagnosis: {d}\n"));
        }
        let recs = recommendations(e);
        for r in &recs {
            line.push_str(&format!("  - {r}\n"));
        }
        self.console(&line, e.timestamp)?;
        // The latest warning, as one summary object.
        let mut last = Data::with_capacity(8);
        last.insert("severity", e.severity.as_str());
        last.insert("rule", rule);
        last.insert("message", e.message.as_str());
        last.insert("epoch", e.epoch);
        last.insert("batch", e.batch);
        last.insert("layer", e.layer_name.clone());
        last.insert("diagnosis", diagnosis);
        last.insert("recommendations", recs);
        self.json.clear();
        json::map(&mut self.json, &last);
        let json = std::mem::take(&mut self.json);
        self.summary_set("health/last_warning", &json);
        self.json = json;
        Ok(())
    }

    fn train_end(&mut self, e: &Event) -> Result<(), BridgeError> {
        self.train_ended = true;
        if let Some(metrics) = e.data.get("metrics").and_then(Value::as_map) {
            let mut items = Vec::new();
            for_each_leaf(metrics, &mut |name, v| {
                let mut s = String::new();
                json::value(&mut s, v);
                items.push((format!("final/{name}"), s));
            });
            for (k, v) in items {
                self.summary_set(&k, &v);
            }
        }
        if let Some(d) = e.data.get("duration_s") {
            self.json.clear();
            json::value(&mut self.json, d);
            let json = std::mem::take(&mut self.json);
            self.summary_set("train/duration_s", &json);
            self.json = json;
        }
        Ok(())
    }

    // ---- rows and summary ----

    fn runtime(&self, t: f64) -> f64 {
        let start = self.start_time.unwrap_or(t);
        if t.is_finite() { (t - start).max(0.0) } else { 0.0 }
    }

    /// Makes the pending row the one for global step `key`, committing a row of another step.
    fn row_at(&mut self, key: u64, timestamp: f64) -> Result<(), BridgeError> {
        if self.row.key.is_some_and(|k| k != key) {
            self.commit_row()?;
        }
        self.row.key = Some(key);
        if timestamp.is_finite() {
            self.row.timestamp = timestamp;
        }
        Ok(())
    }

    fn set_json(&mut self, key: &str, v: &Value) {
        self.json.clear();
        json::value(&mut self.json, v);
        self.row.set(key, &self.json);
    }

    fn add_distributions(&mut self) {
        let Self { dists, row, json, .. } = self;
        for (tag, acc) in dists.iter_mut() {
            if let Some(h) = acc.take() {
                json.clear();
                json::histogram(json, &h);
                row.set(tag, json);
            }
        }
    }

    /// Writes the pending row as a history record with `_step`, `_runtime` and `_timestamp`.
    fn commit_row(&mut self) -> Result<(), BridgeError> {
        self.row.key = None;
        if self.row.len == 0 {
            return Ok(());
        }
        let step = self.next_step;
        self.next_step += 1;
        let ts = if self.row.timestamp > 0.0 { self.row.timestamp } else { unix_now() };
        let runtime = self.runtime(ts);
        let Self { enc, row, specials, .. } = self;
        for s in specials.iter_mut() {
            s.clear();
        }
        json::float(&mut specials[1], runtime);
        json::float(&mut specials[2], ts);
        {
            use std::fmt::Write as _;
            let _ = write!(specials[0], "{step}");
        }
        enc.clear();
        for (k, v) in row
            .items()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(SPECIAL_KEYS.into_iter().zip(specials.iter().map(String::as_str)))
        {
            enc.nested(1, |it| item_body(it, &[k], v));
        }
        enc.nested(2, |s| {
            if step != 0 {
                s.varint(1, step);
            }
        });
        self.write_record(field::HISTORY)?;
        self.stats.history_rows += 1;
        // The summary keeps the latest value of every key. `_step`, `_runtime` and `_timestamp`
        // change with every row, so they are taken from `specials` when a summary is written.
        let row = std::mem::take(&mut self.row);
        for (k, v) in row.items() {
            self.summary_set(k, v);
        }
        self.row = row;
        self.row.clear();
        self.specials_dirty = true;
        Ok(())
    }

    fn summary_set(&mut self, key: &str, json: &str) {
        match self.summary.get_mut(key) {
            Some((v, dirty)) => {
                if v != json {
                    json.clone_into(v);
                    *dirty = true;
                }
            }
            None => {
                self.summary.insert(key.to_owned(), (json.to_owned(), true));
            }
        }
    }

    /// Nested summary keys are stored joined with a NUL, which no history key contains.
    fn summary_set_nested(&mut self, path: &[&str], json: &str) {
        self.summary_set(&path.join("\0"), json);
    }

    /// Writes a summary record with every key that changed since the last one.
    fn write_summary(&mut self) -> Result<(), BridgeError> {
        if self.specials_dirty {
            self.specials_dirty = false;
            let specials = std::mem::take(&mut self.specials);
            for (k, v) in SPECIAL_KEYS.iter().zip(&specials) {
                self.summary_set(k, v);
            }
            self.specials = specials;
        }
        if !self.summary.values().any(|(_, dirty)| *dirty) {
            return Ok(());
        }
        let Self { enc, summary, .. } = self;
        enc.clear();
        for (k, (v, dirty)) in summary.iter_mut().filter(|(_, (_, d))| *d) {
            let path: Vec<&str> = k.split('\0').collect();
            enc.nested(1, |it| item_body(it, &path, v));
            *dirty = false;
        }
        self.write_record(field::SUMMARY)
    }

    fn console(&mut self, line: &str, timestamp: f64) -> Result<(), BridgeError> {
        let Self { enc, .. } = self;
        enc.clear();
        // output_type STDERR is the enum's zero value, so it is not written.
        let t = if timestamp.is_finite() { timestamp } else { unix_now() };
        enc.nested(2, |ts| timestamp_fields(ts, t));
        enc.str_parts(3, &[line]);
        self.write_record(field::OUTPUT_RAW)?;
        self.stats.console_lines += 1;
        Ok(())
    }

    // ---- framing ----

    /// Wraps `self.enc` as `Record{num, <field>: body}` and appends it to the log.
    fn write_record(&mut self, field: u32) -> Result<(), BridgeError> {
        self.num += 1;
        let Self { enc, rec, num, .. } = self;
        rec.clear();
        rec.varint(1, *num);
        rec.bytes(field, &enc.buf);
        let payload = std::mem::take(&mut self.rec.buf);
        let r = self.append(&payload);
        self.rec.buf = payload;
        r?;
        self.stats.records += 1;
        Ok(())
    }

    /// Appends one record in LevelDB log format: 32 KiB blocks, chunks that never cross a
    /// block (`FULL`, or `FIRST`/`MIDDLE`/`LAST`), each with a CRC-32 of its type byte and
    /// payload, zero padding when fewer than 7 bytes are left in a block.
    fn append(&mut self, payload: &[u8]) -> Result<(), BridgeError> {
        let out = self.out.as_mut().ok_or(BridgeError::Closed)?;
        let mut left = payload;
        let mut first = true;
        let mut written = 0u64;
        let r = (|| -> io::Result<()> {
            loop {
                let room = BLOCK - self.block_offset;
                if room < CHUNK_HEADER {
                    out.write_all(&[0u8; CHUNK_HEADER][..room])?;
                    written += room as u64;
                    self.block_offset = 0;
                }
                let avail = BLOCK - self.block_offset - CHUNK_HEADER;
                let n = left.len().min(avail);
                let last = n == left.len();
                let kind: u8 = match (first, last) {
                    (true, true) => 1,
                    (true, false) => 2,
                    (false, false) => 3,
                    (false, true) => 4,
                };
                let (chunk, rest) = left.split_at(n);
                let mut header = [0u8; CHUNK_HEADER];
                header[..4].copy_from_slice(&crc32_ieee2(&[kind], chunk).to_le_bytes());
                header[4..6].copy_from_slice(&(n as u16).to_le_bytes());
                header[6] = kind;
                out.write_all(&header)?;
                out.write_all(chunk)?;
                written += (CHUNK_HEADER + n) as u64;
                self.block_offset += CHUNK_HEADER + n;
                left = rest;
                first = false;
                if last {
                    return Ok(());
                }
            }
        })();
        self.stats.bytes += written;
        r.map_err(|source| BridgeError::Write { path: self.path.clone(), source })
    }
}

impl Backend for WandbBridge {
    fn name(&self) -> &str {
        "bridge.wandb"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        self.write_batch(events).map(drop).map_err(BackendError::from)
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        WandbBridge::flush(self).map_err(BackendError::from)
    }

    fn close(&mut self) -> Result<(), BackendError> {
        WandbBridge::close(self).map_err(BackendError::from)
    }
}

impl Drop for WandbBridge {
    fn drop(&mut self) {
        // A bridge dropped without close (the bus died, a panic unwound past it) still ends
        // its run, with exit code 1 unless training ended normally.
        let _ = self.close();
    }
}

/// `google.protobuf.Timestamp{seconds, nanos}`.
fn timestamp_fields(t: &mut Enc, unix: f64) {
    let (secs, nanos) = split_unix(unix);
    if secs != 0 {
        t.varint(1, secs as u64);
    }
    if nanos != 0 {
        t.varint(2, nanos as u64);
    }
}

/// A `ConfigItem{key, value_json}` inside a `ConfigRecord` (field 1 = update).
fn config_item(c: &mut Enc, key: &str, json: &str) {
    c.nested(1, |it| config_body(it, key, json));
}

fn config_body(it: &mut Enc, key: &str, json: &str) {
    it.str_parts(1, &[key]);
    it.str_parts(16, &[json]);
}

/// A `HistoryItem`/`SummaryItem` as the 0.31 SDK writes them: the key path in `nested_key`.
fn item_body(it: &mut Enc, path: &[&str], json: &str) {
    for p in path {
        it.str_parts(2, &[p]);
    }
    it.str_parts(16, &[json]);
}

// ---- reading ----

/// One decoded record of a `.wandb` log, reduced to what the bridge writes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum WandbRecord {
    /// The run record.
    Run {
        /// Run id.
        run_id: String,
        /// Project.
        project: String,
        /// Display name.
        display_name: String,
        /// Tags.
        tags: Vec<String>,
        /// Config items (`key`, JSON value).
        config: Vec<(String, String)>,
        /// Start time in Unix seconds.
        start_time: f64,
    },
    /// A history row: items (key path joined with `.`, JSON value) and `step.num`.
    History {
        /// Items.
        items: Vec<(String, String)>,
        /// `step.num`.
        step: i64,
    },
    /// A summary update.
    Summary(Vec<(String, String)>),
    /// A config update.
    Config(Vec<(String, String)>),
    /// A console chunk.
    Output(String),
    /// The exit record.
    Exit {
        /// Exit code.
        exit_code: i32,
        /// Run time in seconds.
        runtime: i32,
    },
    /// Any other record type, by its field number in `Record`.
    Other(u32),
}

/// Reads a `.wandb` log, checking the header and the CRC of every chunk, and decoding each
/// record into a [`WandbRecord`]. Stops with [`BridgeError::Corrupt`] at the first bad chunk.
///
/// # Errors
/// [`BridgeError::Read`] when the file cannot be read; [`BridgeError::Corrupt`] when it is not
/// a valid log.
pub fn read_run_file(path: impl AsRef<Path>) -> Result<Vec<WandbRecord>, BridgeError> {
    let path = path.as_ref();
    let mut data = Vec::new();
    File::open(path)
        .and_then(|f| BufReader::new(f).read_to_end(&mut data))
        .map_err(|source| BridgeError::Read { path: path.to_path_buf(), source })?;
    let corrupt = |offset: usize, reason: &str| BridgeError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.to_owned(),
    };
    if data.len() < FILE_HEADER.len() || data[..FILE_HEADER.len()] != FILE_HEADER {
        return Err(corrupt(0, "not a W&B transaction log (bad header)"));
    }
    let mut records = Vec::new();
    let mut pos = FILE_HEADER.len();
    let mut pending: Option<(usize, Vec<u8>)> = None;
    while pos < data.len() {
        let room = BLOCK - pos % BLOCK;
        if room < CHUNK_HEADER {
            pos += room;
            continue;
        }
        if data.len() - pos < CHUNK_HEADER {
            return Err(corrupt(pos, "truncated chunk header"));
        }
        let h = &data[pos..pos + CHUNK_HEADER];
        let crc = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let len = usize::from(u16::from_le_bytes([h[4], h[5]]));
        let kind = h[6];
        let start = pos + CHUNK_HEADER;
        if kind == 0 && len == 0 && crc == 0 {
            // Zero padding written by a writer that preallocates; skip to the next block.
            pos += room;
            continue;
        }
        if len > room - CHUNK_HEADER || start + len > data.len() {
            return Err(corrupt(pos, "chunk overruns its block or the file"));
        }
        let chunk = &data[start..start + len];
        if crc32_ieee2(&[kind], chunk) != crc {
            return Err(corrupt(pos, "checksum mismatch"));
        }
        match (kind, pending.take()) {
            (1, None) => {
                records.push(decode_record(chunk).map_err(|()| corrupt(pos, "bad record"))?)
            }
            (2, None) => pending = Some((pos, chunk.to_vec())),
            (3, Some((at, mut buf))) => {
                buf.extend_from_slice(chunk);
                pending = Some((at, buf));
            }
            (4, Some((at, mut buf))) => {
                buf.extend_from_slice(chunk);
                records.push(decode_record(&buf).map_err(|()| corrupt(at, "bad record"))?);
            }
            _ => return Err(corrupt(pos, "unexpected chunk type")),
        }
        pos = start + len;
    }
    if let Some((at, _)) = pending {
        return Err(corrupt(at, "record cut off at end of file"));
    }
    Ok(records)
}

fn decode_items(data: &[u8], sep: &str) -> Result<Vec<(String, String)>, ()> {
    let mut items = Vec::new();
    for f in proto::fields(data) {
        let (n, w) = f.map_err(drop)?;
        if n != 1 {
            continue;
        }
        let (mut key, mut path, mut value) = (String::new(), Vec::new(), String::new());
        for g in proto::fields(w.as_bytes().ok_or(())?) {
            match g.map_err(drop)? {
                (1, w) => w.as_str().ok_or(())?.clone_into(&mut key),
                (2, w) => path.push(w.as_str().ok_or(())?.to_owned()),
                (16, w) => w.as_str().ok_or(())?.clone_into(&mut value),
                _ => {}
            }
        }
        if key.is_empty() {
            key = path.join(sep);
        }
        items.push((key, value));
    }
    Ok(items)
}

fn decode_timestamp(data: &[u8]) -> Result<f64, ()> {
    let (mut secs, mut nanos) = (0u64, 0u64);
    for f in proto::fields(data) {
        match f.map_err(drop)? {
            (1, w) => secs = w.as_u64().ok_or(())?,
            (2, w) => nanos = w.as_u64().ok_or(())?,
            _ => {}
        }
    }
    Ok(secs as i64 as f64 + nanos as f64 / 1e9)
}

fn decode_record(data: &[u8]) -> Result<WandbRecord, ()> {
    let mut out = None;
    for f in proto::fields(data) {
        let (n, w) = f.map_err(drop)?;
        let body = || w.as_bytes().ok_or(());
        out = Some(match n {
            1 | 16 | 19 | 200 => continue,
            field::HISTORY => {
                // Items are field 1 of HistoryRecord, as updates are of Summary/ConfigRecord.
                let items = decode_items(body()?, ".")?;
                let mut step = 0;
                for g in proto::fields(body()?) {
                    if let (2, Wire::Len(b)) = g.map_err(drop)? {
                        for s in proto::fields(b) {
                            if let (1, w) = s.map_err(drop)? {
                                step = w.as_u64().ok_or(())? as i64;
                            }
                        }
                    }
                }
                WandbRecord::History { items, step }
            }
            field::SUMMARY => WandbRecord::Summary(decode_items(body()?, ".")?),
            field::CONFIG => WandbRecord::Config(decode_items(body()?, ".")?),
            field::OUTPUT_RAW | 4 => {
                let mut line = String::new();
                for g in proto::fields(body()?) {
                    if let (3, w) = g.map_err(drop)? {
                        w.as_str().ok_or(())?.clone_into(&mut line);
                    }
                }
                WandbRecord::Output(line)
            }
            field::RUN => {
                let (mut run_id, mut project, mut display_name) =
                    (String::new(), String::new(), String::new());
                let (mut tags, mut config, mut start_time) = (Vec::new(), Vec::new(), 0.0);
                for g in proto::fields(body()?) {
                    match g.map_err(drop)? {
                        (1, w) => w.as_str().ok_or(())?.clone_into(&mut run_id),
                        (3, w) => w.as_str().ok_or(())?.clone_into(&mut project),
                        (4, w) => config = decode_items(w.as_bytes().ok_or(())?, ".")?,
                        (8, w) => w.as_str().ok_or(())?.clone_into(&mut display_name),
                        (10, w) => tags.push(w.as_str().ok_or(())?.to_owned()),
                        (17, w) => start_time = decode_timestamp(w.as_bytes().ok_or(())?)?,
                        _ => {}
                    }
                }
                WandbRecord::Run { run_id, project, display_name, tags, config, start_time }
            }
            field::EXIT => {
                let (mut exit_code, mut runtime) = (0, 0);
                for g in proto::fields(body()?) {
                    match g.map_err(drop)? {
                        (1, w) => exit_code = w.as_u64().ok_or(())? as i32,
                        (2, w) => runtime = w.as_u64().ok_or(())? as i32,
                        _ => {}
                    }
                }
                WandbRecord::Exit { exit_code, runtime }
            }
            other => WandbRecord::Other(other),
        });
    }
    out.ok_or(())
}
