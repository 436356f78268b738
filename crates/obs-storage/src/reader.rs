//! Streaming, damage-tolerant reading of tiered logs.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};

use obs_core::{Event, EventType, Severity, Tier};
use serde::Serialize;

use crate::StorageError;
use crate::follow::{FollowFrom, Follower};
use crate::lines::{Line, LineReader};
use crate::names::{FINGERPRINT_FILE, FileNames, list_runs, rank_dirs};

/// The default cap on one line: 16 MiB. Longer lines are skipped (never buffered) and counted.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// How many bad lines [`ReadStats::bad_lines`] describes in detail; the rest are only counted.
pub const MAX_REPORTED_BAD_LINES: usize = 8;

/// Settings of a [`LogReader`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReaderConfig {
    /// The tier file names to look for. Default `basic.log`, `health.log`, `debug.log`.
    pub names: FileNames,
    /// Lines longer than this many bytes (excluding the `\n`) are skipped and counted as
    /// [`BadLineKind::TooLong`]. Default [`DEFAULT_MAX_LINE_BYTES`]; at least 1.
    pub max_line_bytes: usize,
    /// When `false` (the default), a tier file whose first non-blank line is not an event is
    /// refused with [`StorageError::NotAnEventLog`]: it is probably not one of ours. When `true`,
    /// that line is skipped and counted like any other corrupt line.
    pub accept_foreign: bool,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            names: FileNames::default(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            accept_foreign: false,
        }
    }
}

impl ReaderConfig {
    /// Sets [`ReaderConfig::names`].
    #[must_use]
    pub fn names(mut self, names: FileNames) -> Self {
        self.names = names;
        self
    }

    /// Sets [`ReaderConfig::max_line_bytes`].
    #[must_use]
    pub fn max_line_bytes(mut self, max: usize) -> Self {
        self.max_line_bytes = max.max(1);
        self
    }

    /// Sets [`ReaderConfig::accept_foreign`].
    #[must_use]
    pub fn accept_foreign(mut self, accept: bool) -> Self {
        self.accept_foreign = accept;
        self
    }
}

/// Why a line was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadLineKind {
    /// Not a valid event (bad JSON, missing key, bad UTF-8, a line cut short by a crash...).
    Corrupt,
    /// Longer than [`ReaderConfig::max_line_bytes`].
    TooLong,
}

/// One skipped line, as described in [`ReadStats::bad_lines`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BadLine {
    /// The file it is in.
    pub file: PathBuf,
    /// Its 1-based line number in that file.
    pub line: u64,
    /// The byte offset of its first byte.
    pub offset: u64,
    /// Why it was skipped.
    pub kind: BadLineKind,
    /// A short explanation (the parse error, or the line's length).
    pub detail: String,
}

/// What a read found besides events: counts of skipped lines and where the first few were.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReadStats {
    /// Events returned (after the filter).
    pub events: u64,
    /// Events parsed but left out by the filter.
    pub filtered_out: u64,
    /// Empty or whitespace-only lines, ignored.
    pub blank_lines: u64,
    /// Lines that are not events.
    pub corrupt_lines: u64,
    /// Lines longer than the cap.
    pub too_long_lines: u64,
    /// Bytes after the last `\n` of the last file: a line still being written, or torn by a
    /// crash. Not an event (yet) and not counted as corrupt.
    pub partial_tail_bytes: u64,
    /// The first [`MAX_REPORTED_BAD_LINES`] corrupt or too-long lines.
    pub bad_lines: Vec<BadLine>,
    /// I/O errors met while reading (a file vanished, a read failed); reading went on with the
    /// next file.
    pub io_errors: Vec<String>,
}

impl ReadStats {
    /// Lines skipped because they were corrupt or too long.
    pub fn skipped(&self) -> u64 {
        self.corrupt_lines + self.too_long_lines
    }

    /// Whether nothing was skipped and no I/O error happened (blank lines and a partial tail
    /// are normal).
    pub fn is_clean(&self) -> bool {
        self.skipped() == 0 && self.io_errors.is_empty()
    }

    pub(crate) fn bad(
        &mut self,
        file: &Path,
        line: u64,
        offset: u64,
        kind: BadLineKind,
        detail: String,
    ) {
        match kind {
            BadLineKind::Corrupt => self.corrupt_lines += 1,
            BadLineKind::TooLong => self.too_long_lines += 1,
        }
        if self.bad_lines.len() < MAX_REPORTED_BAD_LINES {
            self.bad_lines.push(BadLine { file: file.to_owned(), line, offset, kind, detail });
        }
    }

    /// Adds `other`'s counts to these (bad-line details up to the cap).
    pub fn merge(&mut self, other: &ReadStats) {
        self.events += other.events;
        self.filtered_out += other.filtered_out;
        self.blank_lines += other.blank_lines;
        self.corrupt_lines += other.corrupt_lines;
        self.too_long_lines += other.too_long_lines;
        self.partial_tail_bytes += other.partial_tail_bytes;
        let room = MAX_REPORTED_BAD_LINES.saturating_sub(self.bad_lines.len());
        self.bad_lines.extend(other.bad_lines.iter().take(room).cloned());
        self.io_errors.extend(other.io_errors.iter().cloned());
    }
}

/// Which events a read returns. The default keeps everything; each setting narrows it.
///
/// ```
/// use obs_core::{EventType, Severity};
/// let f = obs_storage::EventFilter::new()
///     .event_type(EventType::LayerForward)
///     .epochs(2..=4)
///     .layer("dense_0")
///     .min_severity(Severity::Warning);
/// # let _ = f;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFilter {
    types: u16,
    epoch_lo: Bound<u64>,
    epoch_hi: Bound<u64>,
    layer: Option<String>,
    min_severity: Severity,
}

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter {
            types: 0,
            epoch_lo: Bound::Unbounded,
            epoch_hi: Bound::Unbounded,
            layer: None,
            min_severity: Severity::Info,
        }
    }
}

impl EventFilter {
    /// A filter that keeps everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps events of `event_type` (calls add up: any of the listed types).
    #[must_use]
    pub fn event_type(mut self, event_type: EventType) -> Self {
        self.types |= 1 << event_type.index();
        self
    }

    /// Keeps events of any of `types`.
    #[must_use]
    pub fn event_types(self, types: impl IntoIterator<Item = EventType>) -> Self {
        types.into_iter().fold(self, EventFilter::event_type)
    }

    /// Keeps events whose epoch is in `range`; events without an epoch are left out.
    #[must_use]
    pub fn epochs(mut self, range: impl RangeBounds<u64>) -> Self {
        self.epoch_lo = range.start_bound().cloned();
        self.epoch_hi = range.end_bound().cloned();
        self
    }

    /// Keeps events about the layer named `name` (exact match).
    #[must_use]
    pub fn layer(mut self, name: impl Into<String>) -> Self {
        self.layer = Some(name.into());
        self
    }

    /// Keeps events at least as serious as `severity`.
    #[must_use]
    pub fn min_severity(mut self, severity: Severity) -> Self {
        self.min_severity = severity;
        self
    }

    /// Whether the filter keeps everything.
    pub fn is_pass_all(&self) -> bool {
        *self == EventFilter::default()
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        if self.types != 0 && self.types & (1 << event.event_type.index()) == 0 {
            return false;
        }
        if event.severity < self.min_severity {
            return false;
        }
        if let Some(layer) = &self.layer
            && event.layer_name.as_deref() != Some(layer.as_str())
        {
            return false;
        }
        if (self.epoch_lo, self.epoch_hi) != (Bound::Unbounded, Bound::Unbounded) {
            let Some(epoch) = event.epoch else { return false };
            if !(self.epoch_lo, self.epoch_hi).contains(&epoch) {
                return false;
            }
        }
        true
    }
}

/// A non-blank complete line: an event or a bad line.
pub(crate) enum Raw {
    Event(Event),
    Bad { path: PathBuf, line: u64, offset: u64, kind: BadLineKind, detail: String },
}

/// What one result of [`LineReader::next_line`] amounts to.
pub(crate) enum Step {
    Blank,
    Raw(Raw),
    /// End of the bytes available; this many bytes follow the last `\n`.
    Eof(u64),
}

impl Step {
    pub(crate) fn of(line: Line<'_>, path: &Path, max_line: usize) -> Step {
        match line {
            Line::Complete { bytes, .. } if bytes.iter().all(u8::is_ascii_whitespace) => {
                Step::Blank
            }
            Line::Complete { bytes, number, offset } => {
                Step::Raw(match Event::from_ndjson_bytes(bytes) {
                    Ok(e) => Raw::Event(e),
                    Err(e) => Raw::Bad {
                        path: path.to_owned(),
                        line: number,
                        offset,
                        kind: BadLineKind::Corrupt,
                        detail: e.to_string(),
                    },
                })
            }
            Line::TooLong { number, offset, len } => Step::Raw(Raw::Bad {
                path: path.to_owned(),
                line: number,
                offset,
                kind: BadLineKind::TooLong,
                detail: format!("{len} bytes, more than the {max_line} byte cap"),
            }),
            Line::Eof { partial } => Step::Eof(partial),
        }
    }
}

impl ReadStats {
    /// Counts `raw` and returns its event if it passes `filter`.
    pub(crate) fn take(&mut self, raw: Raw, filter: &EventFilter) -> Option<Event> {
        match raw {
            Raw::Event(e) if filter.matches(&e) => {
                self.events += 1;
                Some(e)
            }
            Raw::Event(_) => {
                self.filtered_out += 1;
                None
            }
            Raw::Bad { path, line, offset, kind, detail } => {
                self.bad(&path, line, offset, kind, detail);
                None
            }
        }
    }
}

/// The files of one tier of one rank (or of a single-process run), read in order.
#[derive(Debug)]
struct Source {
    /// The rank of the directory the files are in; stamped on events that carry none.
    rank: Option<u32>,
    pending: VecDeque<PathBuf>,
    current: Option<(PathBuf, LineReader<File>)>,
}

impl Source {
    /// The next line that is an event or a bad line; blanks, tails and I/O errors are counted
    /// in `stats`. `None` when every file is exhausted.
    fn next_raw(&mut self, max_line: usize, stats: &mut ReadStats) -> Option<Raw> {
        loop {
            if self.current.is_none() {
                let path = self.pending.pop_front()?;
                match File::open(&path) {
                    Ok(f) => self.current = Some((path, LineReader::new(f, max_line, 0, 0))),
                    Err(e) => {
                        stats.io_errors.push(format!("opening {}: {e}", path.display()));
                    }
                }
                continue;
            }
            let Some((path, reader)) = self.current.as_mut() else { continue };
            match reader.next_line().map(|line| Step::of(line, path, max_line)) {
                Ok(Step::Blank) => stats.blank_lines += 1,
                Ok(Step::Raw(Raw::Event(mut e))) => {
                    if e.rank.is_none() && self.rank.is_some() {
                        e.rank = self.rank;
                    }
                    return Some(Raw::Event(e));
                }
                Ok(Step::Raw(raw)) => return Some(raw),
                Ok(Step::Eof(partial)) => {
                    let (number, offset) = (reader.line_number() + 1, reader.complete_offset());
                    let path = path.clone();
                    self.current = None;
                    if partial > 0 {
                        if self.pending.is_empty() {
                            stats.partial_tail_bytes += partial;
                        } else {
                            // A later segment exists, so this line will never be completed.
                            return Some(Raw::Bad {
                                detail: format!(
                                    "{partial} bytes without a final newline in {}",
                                    path.display()
                                ),
                                path,
                                line: number,
                                offset,
                                kind: BadLineKind::Corrupt,
                            });
                        }
                    }
                }
                Err(e) => {
                    stats.io_errors.push(format!("reading {}: {e}", path.display()));
                    self.current = None;
                }
            }
        }
    }
}

/// A streaming iterator over the events of one tier (all its segments, oldest first).
///
/// Bad lines are skipped and counted in [`EventIter::stats`]; memory stays bounded by the line
/// cap. The iterator reads what is on disk when each file is reached; a line being written
/// (no `\n` yet) is not an event and is left for a later read or a [`Follower`].
///
/// In a run of several ranks (`rank-<r>/` subdirectories) the ranks' streams are merged in
/// `(timestamp, rank)` order, each rank's own file order kept; every event carries its rank
/// (the directory's, when the line itself has none). Memory: one pending event per rank.
#[derive(Debug)]
pub struct EventIter {
    tier: Tier,
    sources: Vec<Source>,
    max_line: usize,
    filter: EventFilter,
    stats: ReadStats,
    /// The next event of each source, once primed (for a single source: a peeked event).
    heads: Vec<Option<Event>>,
    primed: bool,
}

impl EventIter {
    /// One tier of a single-process run, or of one rank (`rank` then names it).
    pub(crate) fn open(
        tier: Tier,
        files: Vec<(Option<u32>, Vec<PathBuf>)>,
        config: &ReaderConfig,
    ) -> Result<EventIter, StorageError> {
        let sources: Vec<Source> = files
            .into_iter()
            .map(|(rank, files)| Source { rank, pending: files.into(), current: None })
            .collect();
        let mut iter = EventIter {
            tier,
            heads: sources.iter().map(|_| None).collect(),
            sources,
            max_line: config.max_line_bytes.max(1),
            filter: EventFilter::default(),
            stats: ReadStats::default(),
            primed: false,
        };
        if !config.accept_foreign {
            for i in 0..iter.sources.len() {
                match iter.sources[i].next_raw(iter.max_line, &mut iter.stats) {
                    None => {}
                    Some(Raw::Event(e)) => iter.heads[i] = Some(e),
                    Some(Raw::Bad { path, line, detail, .. }) => {
                        return Err(StorageError::NotAnEventLog { path, line, reason: detail });
                    }
                }
            }
        }
        Ok(iter)
    }

    /// An iterator over nothing (a tier without files).
    pub fn empty(tier: Tier) -> EventIter {
        EventIter {
            tier,
            sources: Vec::new(),
            max_line: DEFAULT_MAX_LINE_BYTES,
            filter: EventFilter::default(),
            stats: ReadStats::default(),
            heads: Vec::new(),
            primed: false,
        }
    }

    /// Only events passing `filter` are returned from now on.
    #[must_use]
    pub fn with_filter(mut self, filter: EventFilter) -> Self {
        self.filter = filter;
        self
    }

    /// The tier being read.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Counts so far: events returned, lines skipped and why.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// Reads everything into a vector and returns it with the final counts.
    pub fn collect_with_stats(mut self) -> (Vec<Event>, ReadStats) {
        let events: Vec<Event> = self.by_ref().collect();
        (events, self.stats)
    }

    /// Refills source `i`'s head with its next event, counting the bad lines on the way.
    fn refill(&mut self, i: usize) {
        while let Some(raw) = self.sources[i].next_raw(self.max_line, &mut self.stats) {
            match raw {
                Raw::Event(e) => {
                    self.heads[i] = Some(e);
                    return;
                }
                bad => {
                    let _ = self.stats.take(bad, &self.filter);
                }
            }
        }
    }

    /// The next event of any rank, unfiltered; bad lines are counted on the way.
    fn next_event(&mut self) -> Option<Event> {
        if self.sources.len() == 1 {
            if let Some(e) = self.heads[0].take() {
                return Some(e);
            }
            loop {
                match self.sources[0].next_raw(self.max_line, &mut self.stats)? {
                    Raw::Event(e) => return Some(e),
                    bad => {
                        let _ = self.stats.take(bad, &self.filter);
                    }
                }
            }
        }
        if !self.primed {
            self.primed = true;
            for i in 0..self.sources.len() {
                if self.heads[i].is_none() {
                    self.refill(i);
                }
            }
        }
        let i = earliest(&self.heads)?;
        let event = self.heads[i].take();
        self.refill(i);
        event
    }
}

impl Iterator for EventIter {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            let e = self.next_event()?;
            if let Some(e) = self.stats.take(Raw::Event(e), &self.filter) {
                return Some(e);
            }
        }
    }
}

impl std::iter::FusedIterator for EventIter {}

/// All tiers merged into one stream in timestamp order; ties (and each file's own order) are
/// kept stable: basic before health before debug. Memory: one pending event per tier.
#[derive(Debug)]
pub struct MergedIter {
    iters: [EventIter; 3],
    heads: [Option<Event>; 3],
    primed: bool,
}

impl MergedIter {
    /// Only events passing `filter` are returned.
    #[must_use]
    pub fn with_filter(self, filter: EventFilter) -> Self {
        let MergedIter { iters, heads, primed } = self;
        let iters = iters.map(|i| i.with_filter(filter.clone()));
        let heads = heads.map(|h| h.filter(|e| filter.matches(e)));
        MergedIter { iters, heads, primed }
    }

    /// The counts of `tier`'s reader.
    pub fn stats(&self, tier: Tier) -> &ReadStats {
        &self.iters[crate::tier_index(tier)].stats
    }

    /// The counts of all three tiers added up.
    pub fn total_stats(&self) -> ReadStats {
        let mut total = ReadStats::default();
        for it in &self.iters {
            total.merge(&it.stats);
        }
        total
    }
}

/// The source whose next event comes first; on a tie the earlier source (sources are in rank
/// or tier order, so the lower rank comes first).
fn earliest(heads: &[Option<Event>]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, head) in heads.iter().enumerate() {
        if let Some(e) = head {
            let better = match best.and_then(|b| heads[b].as_ref()) {
                None => true,
                Some(cur) => sort_key(e) < sort_key(cur),
            };
            if better {
                best = Some(i);
            }
        }
    }
    best
}

/// NaN timestamps sort first so that they never hold back the rest of their file.
fn sort_key(e: &Event) -> f64 {
    if e.timestamp.is_nan() { f64::NEG_INFINITY } else { e.timestamp }
}

impl Iterator for MergedIter {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if !self.primed {
            self.primed = true;
            for (head, it) in self.heads.iter_mut().zip(&mut self.iters) {
                *head = it.next();
            }
        }
        let i = earliest(&self.heads)?;
        let next = self.iters[i].next();
        std::mem::replace(&mut self.heads[i], next)
    }
}

impl std::iter::FusedIterator for MergedIter {}

/// Reads the logs of one run directory.
///
/// ```no_run
/// let reader = obs_storage::LogReader::open("training_logs")?;
/// for event in reader.read_health()? {
///     eprintln!("{}", event.message);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct LogReader {
    run_dir: PathBuf,
    config: ReaderConfig,
    /// The `rank-<r>` subdirectories with logs, by rank; empty for a single-process run.
    ranks: Vec<(u32, PathBuf)>,
}

impl LogReader {
    /// Opens `dir` with default settings: a run directory holding the `.log` files, a run
    /// directory of several ranks (`rank-<r>/` subdirectories holding the `.log` files: all
    /// ranks are read, merged), or a base directory holding `run-*` subdirectories (then the
    /// newest run is read).
    ///
    /// # Errors
    /// [`StorageError::MissingDirectory`] when `dir` is not a directory; [`StorageError::NoLogs`]
    /// when it holds neither logs nor runs.
    pub fn open(dir: impl AsRef<Path>) -> Result<LogReader, StorageError> {
        Self::open_with(dir, ReaderConfig::default())
    }

    /// Like [`LogReader::open`] with custom settings.
    ///
    /// # Errors
    /// As [`LogReader::open`], plus [`StorageError::InvalidConfig`] for bad file names.
    pub fn open_with(
        dir: impl AsRef<Path>,
        config: ReaderConfig,
    ) -> Result<LogReader, StorageError> {
        config.names.validate()?;
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(StorageError::MissingDirectory { path: dir.to_owned() });
        }
        let run_dir = if has_logs(dir, &config.names)? {
            return Ok(LogReader { run_dir: dir.to_owned(), config, ranks: Vec::new() });
        } else if !rank_dirs(dir, &config.names)?.is_empty() {
            dir.to_owned()
        } else if let Some(newest) = list_runs(dir)?.pop() {
            newest
        } else {
            return Err(StorageError::NoLogs { dir: dir.to_owned() });
        };
        Self::open_run(run_dir, config)
    }

    /// Reads the run directory `run_dir` exactly as given, without looking for `run-*`
    /// subdirectories or requiring that any log exists yet (missing tiers read as empty).
    ///
    /// # Errors
    /// [`StorageError::MissingDirectory`], [`StorageError::InvalidConfig`].
    pub fn open_run(
        run_dir: impl AsRef<Path>,
        config: ReaderConfig,
    ) -> Result<LogReader, StorageError> {
        config.names.validate()?;
        let dir = run_dir.as_ref();
        if !dir.is_dir() {
            return Err(StorageError::MissingDirectory { path: dir.to_owned() });
        }
        let ranks =
            if has_logs(dir, &config.names)? { Vec::new() } else { rank_dirs(dir, &config.names)? };
        Ok(LogReader { run_dir: dir.to_owned(), config, ranks })
    }

    /// The ranks of a multi-process run (its `rank-<r>/` subdirectories with logs), in order;
    /// empty for a single-process run.
    pub fn ranks(&self) -> Vec<u32> {
        self.ranks.iter().map(|(r, _)| *r).collect()
    }

    /// A reader of one rank's logs alone, if the run has that rank.
    pub fn rank(&self, rank: u32) -> Option<LogReader> {
        let (_, dir) = self.ranks.iter().find(|(r, _)| *r == rank)?;
        Some(LogReader { run_dir: dir.clone(), config: self.config.clone(), ranks: Vec::new() })
    }

    /// `(rank, directory)` of every source of tier files: the run directory itself, or each
    /// rank's subdirectory.
    fn dirs(&self) -> Vec<(Option<u32>, &Path)> {
        if self.ranks.is_empty() {
            vec![(None, self.run_dir.as_path())]
        } else {
            self.ranks.iter().map(|(r, d)| (Some(*r), d.as_path())).collect()
        }
    }

    /// The run directory being read.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The settings.
    pub fn config(&self) -> &ReaderConfig {
        &self.config
    }

    /// The files of `tier` in reading order: `debug.log`, `debug.1.log`, `debug.2.log`, ...
    /// (rank by rank in a run of several ranks).
    ///
    /// # Errors
    /// When the run directory cannot be listed.
    pub fn files(&self, tier: Tier) -> Result<Vec<PathBuf>, StorageError> {
        let mut files = Vec::new();
        for (_, dir) in self.dirs() {
            files.extend(self.config.names.segments(dir, tier)?.into_iter().map(|(_, p)| p));
        }
        Ok(files)
    }

    /// Streams the events of `tier`. A tier without files reads as empty.
    ///
    /// # Errors
    /// [`StorageError::NotAnEventLog`] when the first line is not an event (unless
    /// [`ReaderConfig::accept_foreign`]); I/O errors listing the directory.
    pub fn read(&self, tier: Tier) -> Result<EventIter, StorageError> {
        let mut sources = Vec::new();
        for (rank, dir) in self.dirs() {
            let files = self.config.names.segments(dir, tier)?.into_iter().map(|(_, p)| p);
            sources.push((rank, files.collect()));
        }
        EventIter::open(tier, sources, &self.config)
    }

    /// Streams `basic.log`: train and epoch boundaries.
    ///
    /// # Errors
    /// As [`LogReader::read`].
    pub fn read_basic(&self) -> Result<EventIter, StorageError> {
        self.read(Tier::Basic)
    }

    /// Streams `health.log`: health checks and alerts.
    ///
    /// # Errors
    /// As [`LogReader::read`].
    pub fn read_health(&self) -> Result<EventIter, StorageError> {
        self.read(Tier::Health)
    }

    /// Streams `debug.log` and its rotated segments.
    ///
    /// # Errors
    /// As [`LogReader::read`].
    pub fn read_debug(&self) -> Result<EventIter, StorageError> {
        self.read(Tier::Debug)
    }

    /// Streams all tiers merged in timestamp order (stable within each file).
    ///
    /// # Errors
    /// As [`LogReader::read`], for any tier.
    pub fn read_all(&self) -> Result<MergedIter, StorageError> {
        Ok(MergedIter {
            iters: [self.read_basic()?, self.read_health()?, self.read_debug()?],
            heads: [None, None, None],
            primed: false,
        })
    }

    /// The run's `fingerprint.json`, if one was written (in a run of several ranks: the run
    /// directory's, else the lowest rank's that has one).
    ///
    /// # Errors
    /// [`StorageError::Fingerprint`] when the file is not valid JSON (or larger than the line
    /// cap); I/O errors other than "not found".
    pub fn fingerprint(&self) -> Result<Option<serde_json::Value>, StorageError> {
        let mut path = self.run_dir.join(FINGERPRINT_FILE);
        if !path.exists()
            && let Some(found) =
                self.ranks.iter().map(|(_, d)| d.join(FINGERPRINT_FILE)).find(|p| p.exists())
        {
            path = found;
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("opening", path, e)),
        };
        let limited = BufReader::new(file.take(self.config.max_line_bytes as u64));
        serde_json::from_reader(limited)
            .map(Some)
            .map_err(|source| StorageError::Fingerprint { path, source })
    }

    /// Follows `tier` as another process appends to it (and rotates it), starting at `from`.
    /// In a run of several ranks, follow one rank's reader ([`LogReader::rank`]).
    ///
    /// # Errors
    /// I/O errors locating the starting point.
    pub fn follow(&self, tier: Tier, from: FollowFrom) -> Result<Follower, StorageError> {
        Follower::new(self.run_dir.clone(), self.config.clone(), tier, from)
    }
}

/// Whether `dir` holds at least one segment of any tier.
pub(crate) fn has_logs(dir: &Path, names: &FileNames) -> Result<bool, StorageError> {
    for tier in Tier::ALL {
        if !names.segments(dir, tier)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}
