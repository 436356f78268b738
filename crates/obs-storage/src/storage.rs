//! The tiered storage backend.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use obs_core::{Backend, BackendError, Event, EventType, LogLevel, Tier, Value};

use crate::handle::{Shared, TierCounters};
use crate::names::{FINGERPRINT_FILE, utc_stamp};
use crate::{FsyncPolicy, OpenMode, StorageConfig, StorageError, StorageHandle, StorageSummary};

/// The `data` key that marks a boundary event written by [`OpenMode::Append`].
pub const APPEND_BOUNDARY_KEY: &str = "storage_boundary";

/// Whether `event` is the boundary that [`OpenMode::Append`] writes before a new run's events.
pub fn is_append_boundary(event: &Event) -> bool {
    event.event_type == EventType::TrainStart && event.data.get(APPEND_BOUNDARY_KEY).is_some()
}

/// Where a tier's bytes go. Tests swap in a failing writer.
#[derive(Debug)]
enum Out {
    File(File),
    #[cfg(test)]
    Test(test_support::Faulty),
}

impl Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Out::File(f) => f.write(buf),
            #[cfg(test)]
            Out::Test(t) => t.write(buf),
        }
    }

    /// Asks the OS to start writing `len` bytes at `offset` to the disk, without waiting.
    fn start_writeback(&self, offset: u64, len: u64) {
        match self {
            Out::File(f) => start_writeback(f, offset, len),
            #[cfg(test)]
            Out::Test(_) => {}
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match self {
            Out::File(f) => f.sync_all(),
            #[cfg(test)]
            Out::Test(_) => Ok(()),
        }
    }
}

/// One tier: its current segment, its buffer of complete lines, and its counters.
#[derive(Debug)]
struct TierWriter {
    tier: Tier,
    segment: u32,
    path: PathBuf,
    out: Out,
    /// Complete NDJSON lines not yet handed to the OS (after a failed write, the unwritten rest
    /// of a line may lead: it is written first on the next attempt, so lines never interleave).
    buf: Vec<u8>,
    /// Events whose lines are in `buf`, counted once the last of their bytes is written.
    buf_events: u64,
    /// Bytes in the current segment on disk.
    segment_bytes: u64,
    /// Written since the last fsync.
    unsynced: bool,
    /// Where the bytes not yet handed to background writeback start (see [`WRITEBACK_CHUNK`]).
    writeback_from: u64,
}

/// Bytes written to a segment after which the OS is asked to start writing them to the disk
/// in the background. The fsync at close (or at each flush, by [`FsyncPolicy`]) then waits only
/// for the last chunk instead of the whole run's logs: without it, closing after 100 000 batch
/// events (22 MB) spent 11 ms in fsync, a quarter of the run's logging time. Databases do the
/// same for the same reason (RocksDB's `bytes_per_sync`).
const WRITEBACK_CHUNK: u64 = 1 << 20;

/// Starts writeback of a file range (Linux `sync_file_range` with `SYNC_FILE_RANGE_WRITE`:
/// it queues the I/O and returns). Best effort: a failure here only leaves the work to fsync.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
    // SAFETY: the descriptor is open for the life of `file`, and `sync_file_range` reads no
    // memory of this process.
    let _ = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

impl TierWriter {
    /// Writes the first `len` bytes of the buffer, which hold `events` whole events.
    fn write_prefix(
        &mut self,
        len: usize,
        events: u64,
        counters: &TierCounters,
    ) -> Result<(), StorageError> {
        let mut written = 0;
        let result = loop {
            if written == len {
                break Ok(());
            }
            match self.out.write(&self.buf[written..len]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if written > 0 {
            self.buf.drain(..written);
            self.segment_bytes += written as u64;
            self.unsynced = true;
            counters.bytes.fetch_add(written as u64, Ordering::Release);
            if self.segment_bytes - self.writeback_from >= WRITEBACK_CHUNK {
                let len = self.segment_bytes - self.writeback_from;
                self.out.start_writeback(self.writeback_from, len);
                self.writeback_from = self.segment_bytes;
            }
        }
        match result {
            Ok(()) => {
                self.buf_events -= events;
                counters.events.fetch_add(events, Ordering::Release);
                Ok(())
            }
            Err(e) => Err(StorageError::io("writing", &self.path, e)),
        }
    }

    fn flush(&mut self, counters: &TierCounters) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.write_prefix(self.buf.len(), self.buf_events, counters)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if self.unsynced {
            self.out.sync().map_err(|e| StorageError::io("syncing", &self.path, e))?;
            self.unsynced = false;
        }
        Ok(())
    }
}

/// The `TieredStorage` backend: routes each event to `basic.log`, `health.log` or `debug.log`
/// (by [`Event::tier`]) as one NDJSON line.
///
/// All encoding and I/O happen in [`Backend::write`], on the bus thread. Each tier buffers
/// complete lines (64 KiB by default) and hands them to the OS:
/// - basic: at every `epoch_end`;
/// - health: at once, at the end of the batch the event arrived in;
/// - every tier: at `train_end`, at `flush`/`close`, and at the end of each batch of events
///   handed over in which [`StorageConfig::buffer_size`] events became buffered in total;
/// - a tier whose buffer reaches [`StorageConfig::buffer_bytes`]: at once.
///
/// Only whole lines are ever written, so a process killed at any moment leaves only valid lines
/// (and, at worst, nothing of the events after the last write).
///
/// Obtain a [`StorageHandle`] with [`TieredStorage::handle`] before giving the storage to a
/// logger: the handle reads the summary, the run directory and the logs from any thread.
#[derive(Debug)]
pub struct TieredStorage {
    tiers: [Option<TierWriter>; 3],
    shared: Arc<Shared>,
    config: StorageConfig,
    closed: bool,
}

impl TieredStorage {
    /// Opens storage in `base_dir` with default settings and [`OpenMode::CreateNew`]: writes
    /// directly into `base_dir` (created if missing) when it holds no logs.
    ///
    /// # Errors
    /// [`StorageError::ExistingLogs`] when `base_dir` already holds logs (choose an
    /// [`OpenMode`] with [`TieredStorage::with_config`]); I/O errors creating the directory or
    /// the files.
    pub fn open(base_dir: impl Into<PathBuf>) -> Result<TieredStorage, StorageError> {
        Self::with_config(StorageConfig::new(base_dir))
    }

    /// Opens storage as `config` says.
    ///
    /// # Errors
    /// [`StorageError::InvalidConfig`], [`StorageError::ExistingLogs`] (in
    /// [`OpenMode::CreateNew`]) and I/O errors creating or opening directories and files.
    pub fn with_config(config: StorageConfig) -> Result<TieredStorage, StorageError> {
        config.validate()?;
        let base = &config.base_dir;
        if base.exists() && !base.is_dir() {
            return Err(StorageError::io(
                "using as log directory",
                base,
                io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        std::fs::create_dir_all(base)
            .map_err(|e| StorageError::io("creating directory", base, e))?;
        let run_dir = match (config.mode, config.rank) {
            (OpenMode::RunDir, _) => create_run_dir(base)?,
            (_, Some(rank)) => {
                let dir = base.join(crate::names::rank_dir_name(rank));
                std::fs::create_dir_all(&dir)
                    .map_err(|e| StorageError::io("creating directory", &dir, e))?;
                dir
            }
            (_, None) => base.clone(),
        };
        let shared = Arc::new(Shared::new(run_dir.clone(), config.names.clone()));
        let opened = match config.mode {
            OpenMode::CreateNew | OpenMode::RunDir => create_fresh(&run_dir, &config),
            OpenMode::Overwrite => open_overwrite(&run_dir, &config),
            OpenMode::Append => open_append(&run_dir, &config, &shared),
        };
        let tiers = match opened {
            Ok(tiers) => tiers,
            Err(e) => {
                if config.mode == OpenMode::RunDir {
                    // Nothing of ours is left in it; `remove_dir` refuses if anything else is.
                    let _ = std::fs::remove_dir(&run_dir);
                }
                return Err(e);
            }
        };
        let mut storage = TieredStorage { tiers, shared, config, closed: false };
        if storage.config.mode == OpenMode::Append {
            storage.write_boundaries()?;
        }
        Ok(storage)
    }

    /// A cheap, cloneable handle for the summary, the run directory and reading the logs; it
    /// stays valid after the storage is given to a logger.
    pub fn handle(&self) -> StorageHandle {
        StorageHandle { shared: Arc::clone(&self.shared) }
    }

    /// The directory the logs are written to.
    pub fn run_dir(&self) -> &Path {
        &self.shared.run_dir
    }

    /// The settings.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// Events and bytes on disk as of the last flush (same as [`StorageHandle::summary`]).
    pub fn summary(&self) -> StorageSummary {
        self.handle().summary()
    }

    fn write_boundaries(&mut self) -> Result<(), StorageError> {
        for slot in self.tiers.iter_mut().flatten() {
            let counters = self.shared.tier(slot.tier);
            if counters.bytes.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut boundary = Event::new(EventType::TrainStart, LogLevel::Basic)
                .message("obs-storage: a new run is appended below")
                .field(APPEND_BOUNDARY_KEY, "append")
                .field("previous_size_bytes", counters.bytes.load(Ordering::Relaxed));
            boundary.data.insert("pid", std::process::id());
            boundary.encode_ndjson(&mut slot.buf);
            slot.buf_events += 1;
            slot.flush(counters)?;
        }
        Ok(())
    }

    /// Encodes one event into its tier's buffer, rotating first when the line would not fit in
    /// the current segment.
    fn push(&mut self, event: &Event) -> Result<(), StorageError> {
        let tier = event.tier();
        let Some(slot) = self.tiers[crate::tier_index(tier)].as_mut() else { return Ok(()) };
        let counters = self.shared.tier(tier);
        if slot.buf.len() >= self.config.max_pending_bytes {
            counters.lost.fetch_add(1, Ordering::Relaxed);
            return Err(StorageError::Lost { tier, count: 1, path: slot.path.clone() });
        }
        let start = slot.buf.len();
        event.encode_ndjson(&mut slot.buf);
        slot.buf_events += 1;
        if let Some(limit) = self.config.rotate_bytes {
            let before = slot.segment_bytes + start as u64;
            let line = (slot.buf.len() - start) as u64;
            if before > 0 && before + line > limit {
                // Everything but the new line goes to the current segment; on failure the new
                // line stays buffered (and counted) and rotation is retried with the next event.
                slot.write_prefix(start, slot.buf_events - 1, counters)?;
                rotate(slot, &self.shared.run_dir, &self.config)?;
            }
        }
        Ok(())
    }

    fn buffered_events(&self) -> u64 {
        self.tiers.iter().flatten().map(|t| t.buf_events).sum()
    }

    /// Hands `tier`'s buffer to the OS (and fsyncs under [`FsyncPolicy::Always`]).
    fn flush_tier(&mut self, tier: Tier) -> Result<(), StorageError> {
        let Some(slot) = self.tiers[crate::tier_index(tier)].as_mut() else { return Ok(()) };
        slot.flush(self.shared.tier(tier))?;
        if self.config.fsync == FsyncPolicy::Always {
            slot.sync()?;
        }
        Ok(())
    }

    /// Flushes every tier, fsyncing when `sync` is set; tries every tier even after an error.
    fn flush_all(&mut self, sync: bool) -> Result<(), StorageError> {
        let mut first = Ok(());
        for tier in Tier::ALL {
            let mut r = self.flush_tier(tier);
            if r.is_ok()
                && sync
                && let Some(slot) = self.tiers[crate::tier_index(tier)].as_mut()
            {
                r = slot.sync();
            }
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    fn write_fingerprint(&self, fingerprint: &Value) -> Result<(), StorageError> {
        let dir = &self.shared.run_dir;
        let path = dir.join(FINGERPRINT_FILE);
        let tmp = dir.join(format!(".{FINGERPRINT_FILE}.{}.tmp", std::process::id()));
        let mut bytes = serde_json::to_vec_pretty(fingerprint)
            .map_err(|e| StorageError::Encode(e.to_string()))?;
        bytes.push(b'\n');
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            if self.config.fsync != FsyncPolicy::Never {
                f.sync_all()?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(StorageError::io("writing", tmp, e));
        }
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StorageError::io("renaming into place", &path, e)
        })
    }

    fn close_inner(&mut self) -> Result<(), StorageError> {
        if self.closed {
            return Ok(());
        }
        let result = self.flush_all(self.config.fsync != FsyncPolicy::Never);
        if result.is_ok() && self.config.fsync != FsyncPolicy::Never {
            sync_dir(&self.shared.run_dir);
        }
        self.closed = true;
        self.shared.closed.store(true, Ordering::Release);
        result
    }
}

impl Backend for TieredStorage {
    fn name(&self) -> &str {
        "storage.tiered"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        if self.closed {
            return Err(BackendError::Closed);
        }
        let mut first: Result<(), StorageError> = Ok(());
        let mut keep = |r: Result<(), StorageError>| {
            if let (Ok(()), Err(e)) = (&first, r) {
                first = Err(e);
            }
        };
        let (mut basic_due, mut health_due, mut all_due) = (false, false, false);
        for event in events {
            let tier = event.tier();
            if self.tiers[crate::tier_index(tier)].is_none() {
                continue;
            }
            if event.event_type == EventType::TrainStart
                && let Some(fp @ Value::Map(_)) = event.data.get("fingerprint")
            {
                keep(self.write_fingerprint(fp));
            }
            keep(self.push(event));
            match (tier, event.event_type) {
                (_, EventType::TrainEnd) => all_due = true,
                (Tier::Health, _) => health_due = true,
                (Tier::Basic, EventType::EpochEnd) => basic_due = true,
                _ => {}
            }
            let full = self.tiers[crate::tier_index(tier)]
                .as_ref()
                .is_some_and(|t| t.buf.len() >= self.config.buffer_bytes);
            if full {
                keep(self.flush_tier(tier));
            }
        }
        // The count is checked once per handed-over batch, not per event: the batch's events
        // were all in the queue already, so a `write` at every `buffer_size` events inside it
        // would cost syscalls (the biggest share of storage time at high rates) and make
        // nothing safer.
        let count_due = self.buffered_events() >= self.config.buffer_size as u64;
        if all_due || count_due {
            // A train_end is a flush point like `flush()`; reaching the count is not.
            let sync =
                all_due && matches!(self.config.fsync, FsyncPolicy::OnFlush | FsyncPolicy::Always);
            keep(self.flush_all(sync));
        } else {
            if basic_due {
                keep(self.flush_tier(Tier::Basic));
            }
            if health_due {
                keep(self.flush_tier(Tier::Health));
            }
        }
        first.map_err(BackendError::from)
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        if self.closed {
            return Err(BackendError::Closed);
        }
        let sync = matches!(self.config.fsync, FsyncPolicy::OnFlush | FsyncPolicy::Always);
        self.flush_all(sync).map_err(BackendError::from)
    }

    fn close(&mut self) -> Result<(), BackendError> {
        self.close_inner().map_err(BackendError::from)
    }
}

impl Drop for TieredStorage {
    fn drop(&mut self) {
        // A storage used without a bus still keeps what it buffered.
        let _ = self.close_inner();
    }
}

type Tiers = [Option<TierWriter>; 3];

fn enabled(tier: Tier, config: &StorageConfig) -> bool {
    tier != Tier::Debug || config.write_debug
}

/// [`OpenMode::CreateNew`] and [`OpenMode::RunDir`]: new files in a directory without logs.
fn create_fresh(dir: &Path, config: &StorageConfig) -> Result<Tiers, StorageError> {
    let existing = existing_logs(dir, config)?;
    if !existing.is_empty() {
        return Err(StorageError::ExistingLogs { dir: dir.to_owned(), files: existing });
    }
    let mut tiers: Tiers = [None, None, None];
    let mut created = Vec::new();
    for tier in Tier::ALL.into_iter().filter(|t| enabled(*t, config)) {
        let path = dir.join(config.names.name(tier));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => {
                created.push(path.clone());
                tiers[crate::tier_index(tier)] = Some(writer(tier, 0, path, f, 0, config));
            }
            Err(e) => {
                // Lost a race with another process: leave its files alone, remove ours.
                for p in &created {
                    let _ = std::fs::remove_file(p);
                }
                if e.kind() == io::ErrorKind::AlreadyExists {
                    return Err(StorageError::ExistingLogs {
                        dir: dir.to_owned(),
                        files: vec![path],
                    });
                }
                return Err(StorageError::io("creating", path, e));
            }
        }
    }
    Ok(tiers)
}

/// [`OpenMode::Overwrite`]: removes every trace of the earlier run, then truncates.
fn open_overwrite(dir: &Path, config: &StorageConfig) -> Result<Tiers, StorageError> {
    for tier in Tier::ALL {
        for (n, path) in config.names.segments(dir, tier)? {
            if n > 0 || !enabled(tier, config) {
                std::fs::remove_file(&path).map_err(|e| StorageError::io("removing", &path, e))?;
            }
        }
    }
    remove_if_exists(&dir.join(FINGERPRINT_FILE))?;
    let mut tiers: Tiers = [None, None, None];
    for tier in Tier::ALL.into_iter().filter(|t| enabled(*t, config)) {
        let path = dir.join(config.names.name(tier));
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| StorageError::io("creating", &path, e))?;
        tiers[crate::tier_index(tier)] = Some(writer(tier, 0, path, f, 0, config));
    }
    Ok(tiers)
}

/// [`OpenMode::Append`]: the newest segment of each tier, counted into `shared`.
fn open_append(dir: &Path, config: &StorageConfig, shared: &Shared) -> Result<Tiers, StorageError> {
    let mut tiers: Tiers = [None, None, None];
    for tier in Tier::ALL.into_iter().filter(|t| enabled(*t, config)) {
        tiers[crate::tier_index(tier)] =
            Some(open_for_append(dir, tier, config, shared.tier(tier))?);
    }
    Ok(tiers)
}

fn writer(
    tier: Tier,
    segment: u32,
    path: PathBuf,
    file: File,
    size: u64,
    config: &StorageConfig,
) -> TierWriter {
    TierWriter {
        tier,
        segment,
        path,
        out: Out::File(file),
        buf: Vec::with_capacity(config.buffer_bytes.min(1 << 20) + 1024),
        buf_events: 0,
        segment_bytes: size,
        unsynced: false,
        writeback_from: size,
    }
}

/// Log files already in `dir` that a new run would mix with: any segment of any tier, and a
/// fingerprint.
fn existing_logs(dir: &Path, config: &StorageConfig) -> Result<Vec<PathBuf>, StorageError> {
    let mut found = Vec::new();
    for tier in Tier::ALL {
        found.extend(config.names.segments(dir, tier)?.into_iter().map(|(_, p)| p));
    }
    let fp = dir.join(FINGERPRINT_FILE);
    if fp.exists() {
        found.push(fp);
    }
    Ok(found)
}

/// Creates `base/run-YYYYMMDD-HHMMSS[-n]`, never reusing an existing directory.
fn create_run_dir(base: &Path) -> Result<PathBuf, StorageError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = utc_stamp(secs);
    for n in 0..10_000u32 {
        let name = if n == 0 { format!("run-{stamp}") } else { format!("run-{stamp}-{n}") };
        let path = base.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StorageError::io("creating run directory", path, e)),
        }
    }
    Err(StorageError::io(
        "creating run directory in",
        base,
        io::Error::new(io::ErrorKind::AlreadyExists, "10000 run directories with this timestamp"),
    ))
}

/// Opens the newest segment of `tier` for appending, closing a torn last line and counting the
/// lines already there.
fn open_for_append(
    dir: &Path,
    tier: Tier,
    config: &StorageConfig,
    counters: &TierCounters,
) -> Result<TierWriter, StorageError> {
    let segments = config.names.segments(dir, tier)?;
    let (mut events, mut bytes) = (0, 0);
    for (_, path) in &segments {
        let (n, len) = count_lines(path).map_err(|e| StorageError::io("reading", path, e))?;
        events += n;
        bytes += len;
    }
    let (segment, path) =
        segments.last().cloned().unwrap_or_else(|| (0, dir.join(config.names.name(tier))));
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(|e| StorageError::io("opening", &path, e))?;
    let size = file.metadata().map_err(|e| StorageError::io("reading", &path, e))?.len();
    counters.events.store(events, Ordering::Release);
    counters.bytes.store(bytes, Ordering::Release);
    let mut w = writer(tier, segment, path, file, size, config);
    if size > 0
        && !ends_with_newline(&w.path, size).map_err(|e| StorageError::io("reading", &w.path, e))?
    {
        // Without this the first new line would be glued to the torn one and lost with it.
        w.buf.push(b'\n');
        w.flush(counters)?;
    }
    Ok(w)
}

fn ends_with_newline(path: &Path, size: u64) -> io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(size - 1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Complete non-blank lines of a file, and its length. Reads no further than the length the
/// file has now, so a device (`/dev/full` reads zeros forever) or a growing file cannot hold it.
fn count_lines(path: &Path) -> io::Result<(u64, u64)> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut f = file.take(size);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut lines, mut len, mut content) = (0u64, 0u64, false);
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => return Ok((lines, len)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        len += n as u64;
        for &b in &buf[..n] {
            if b == b'\n' {
                lines += u64::from(content);
                content = false;
            } else if !b.is_ascii_whitespace() {
                content = true;
            }
        }
    }
}

/// Starts the next numbered segment of a tier. The finished one is fsynced unless the policy is
/// [`FsyncPolicy::Never`]: it will never be written again.
fn rotate(slot: &mut TierWriter, dir: &Path, config: &StorageConfig) -> Result<(), StorageError> {
    if config.fsync != FsyncPolicy::Never {
        slot.sync()?;
    }
    let next = slot.segment + 1;
    let path = dir.join(config.names.segment_name(slot.tier, next));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| StorageError::io("creating rotated segment", &path, e))?;
    slot.out = Out::File(file);
    slot.segment = next;
    slot.path = path;
    slot.segment_bytes = 0;
    slot.unsynced = false;
    slot.writeback_from = 0;
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("removing", path, e)),
    }
}

/// Makes the directory entries of new files durable (Unix only; best effort).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod test_support {
    use std::io;
    use std::sync::{Arc, Mutex};

    /// A writer that accepts `budget` bytes, then fails with "no space" until the budget is
    /// raised again; what it accepted is kept for inspection.
    #[derive(Debug, Clone, Default)]
    pub(super) struct Faulty {
        pub(super) state: Arc<Mutex<(usize, Vec<u8>)>>,
    }

    impl Faulty {
        pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut s = self.state.lock().unwrap();
            if s.0 == 0 {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            let n = buf.len().min(s.0);
            s.0 -= n;
            s.1.extend_from_slice(&buf[..n]);
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use obs_core::Severity;

    fn ev(t: EventType, i: u64) -> Event {
        Event::new(t, t.default_level()).at(Some(0), Some(i)).message(format!("e{i}"))
    }

    #[test]
    fn background_writeback_follows_each_segment_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig::new(dir.path()).rotate_bytes(Some(3 * WRITEBACK_CHUNK));
        let mut s = TieredStorage::with_config(config).unwrap();
        let events: Vec<Event> = (0..512).map(|i| ev(EventType::BatchEnd, i)).collect();
        let mut segments = std::collections::BTreeSet::new();
        for _ in 0..200 {
            s.write(&events).unwrap();
            let slot = s.tiers[crate::tier_index(Tier::Debug)].as_ref().unwrap();
            segments.insert(slot.segment);
            // Everything written to the current segment, up to less than one chunk, has been
            // handed to writeback, and never a range past its end.
            assert!(slot.writeback_from <= slot.segment_bytes);
            assert!(slot.segment_bytes - slot.writeback_from < WRITEBACK_CHUNK);
        }
        assert!(segments.len() >= 3, "the run rotated: {segments:?}");
        Backend::close(&mut s).unwrap();
        let read = crate::LogReader::open(s.run_dir()).unwrap().read_debug().unwrap();
        assert_eq!(read.count(), 200 * 512);
    }

    #[test]
    fn a_full_disk_loses_nothing_and_never_splits_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut s =
            TieredStorage::with_config(StorageConfig::new(dir.path()).buffer_size(1)).unwrap();
        let faulty = test_support::Faulty::default();
        faulty.state.lock().unwrap().0 = 150; // Room for less than one line.
        s.tiers[crate::tier_index(Tier::Debug)].as_mut().unwrap().out = Out::Test(faulty.clone());

        let events: Vec<Event> = (0..5).map(|i| ev(EventType::BatchEnd, i)).collect();
        let err = s.write(&events[..3]).unwrap_err();
        assert!(err.to_string().contains("no space left while writing"), "{err}");
        let summary = s.summary();
        assert_eq!((summary.debug.events, summary.debug.size_bytes), (0, 150));

        faulty.state.lock().unwrap().0 = usize::MAX; // Space is freed.
        s.write(&events[3..]).unwrap();
        Backend::flush(&mut s).unwrap();
        let bytes = faulty.state.lock().unwrap().1.clone();
        let lines: Vec<Event> = bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| Event::from_ndjson_bytes(l).unwrap())
            .collect();
        assert_eq!(lines, events);
        assert_eq!(s.summary().debug.events, 5);
        assert_eq!(s.summary().debug.size_bytes, bytes.len() as u64);
    }

    #[test]
    fn a_tier_that_keeps_failing_drops_and_counts_beyond_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig::new(dir.path()).buffer_size(1).max_pending_bytes(1000);
        let mut s = TieredStorage::with_config(config).unwrap();
        let handle = s.handle();
        s.tiers[crate::tier_index(Tier::Health)].as_mut().unwrap().out =
            Out::Test(test_support::Faulty::default());
        let warn = |i| ev(EventType::HealthCheck, i).severity(Severity::Warning);
        for i in 0..100 {
            let _ = s.write(&[warn(i)]);
        }
        let lost = handle.lost_events();
        assert!(lost > 80 && lost < 100, "{lost}");
        let pending = s.tiers[crate::tier_index(Tier::Health)].as_ref().unwrap().buf.len();
        assert!(pending < 1000 + 300, "{pending}");
        // The other tiers are still written (the error reports the failing one).
        let err = s.write(&[ev(EventType::EpochEnd, 0)]).unwrap_err();
        assert!(err.to_string().contains("health.log"), "{err}");
        assert_eq!(handle.summary().basic.events, 1);
    }
}
