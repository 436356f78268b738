//! Following a tier while another process appends to it (`obs tail`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use obs_core::{Event, Tier};
use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::lines::LineReader;
use crate::reader::{BadLineKind, EventFilter, ReadStats, ReaderConfig, Step};

/// A place in a tier's stream: segment number (0 = `debug.log`, 1 = `debug.1.log`, ...) and
/// the byte offset just past the last complete line consumed. Save it to resume later.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct FollowPosition {
    /// The segment number.
    pub segment: u32,
    /// The byte offset in that segment; always at the start of a line.
    pub offset: u64,
}

/// Where a [`Follower`] starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowFrom {
    /// The first line of the first segment: every event, then new ones.
    Start,
    /// After the last complete line present now: only events written from now on.
    End,
    /// A position saved from [`Follower::position`].
    Position(FollowPosition),
}

/// Reads the events appended to one tier since the last poll, following rotation.
///
/// A line without its `\n` is still being written: it is left for the next poll, never
/// reported as corrupt. When the current file is shorter than the saved offset it was
/// truncated or replaced: following restarts at its beginning and
/// [`Follower::truncations`] counts it.
///
/// Line numbers in [`ReadStats::bad_lines`] count from where following started in that file;
/// offsets are exact.
#[derive(Debug)]
pub struct Follower {
    run_dir: PathBuf,
    config: ReaderConfig,
    tier: Tier,
    pos: FollowPosition,
    line: u64,
    filter: EventFilter,
    stats: ReadStats,
    truncations: u64,
}

impl Follower {
    pub(crate) fn new(
        run_dir: PathBuf,
        config: ReaderConfig,
        tier: Tier,
        from: FollowFrom,
    ) -> Result<Follower, StorageError> {
        let pos = match from {
            FollowFrom::Start => FollowPosition::default(),
            FollowFrom::Position(p) => p,
            FollowFrom::End => {
                let segments = config.names.segments(&run_dir, tier)?;
                match segments.last() {
                    None => FollowPosition::default(),
                    Some((n, path)) => FollowPosition {
                        segment: *n,
                        offset: last_line_end(path, config.max_line_bytes)
                            .map_err(|e| StorageError::io("reading", path, e))?,
                    },
                }
            }
        };
        Ok(Follower {
            run_dir,
            config,
            tier,
            pos,
            line: 0,
            filter: EventFilter::default(),
            stats: ReadStats::default(),
            truncations: 0,
        })
    }

    /// Only events passing `filter` are returned from now on.
    #[must_use]
    pub fn with_filter(mut self, filter: EventFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Where the next poll resumes.
    pub fn position(&self) -> FollowPosition {
        self.pos
    }

    /// The tier being followed.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Counts since following started.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// How many times the file was found truncated or replaced.
    pub fn truncations(&self) -> u64 {
        self.truncations
    }

    /// Appends to `out` at most `max_events` events written since the last poll and returns how
    /// many it appended. Returns 0 when nothing new is complete yet: poll again later.
    ///
    /// # Errors
    /// I/O errors other than a segment not existing yet.
    pub fn poll(&mut self, out: &mut Vec<Event>, max_events: usize) -> Result<usize, StorageError> {
        let mut added = 0;
        let mut rechecked = false;
        loop {
            let path =
                self.run_dir.join(self.config.names.segment_name(self.tier, self.pos.segment));
            let len = self.read_segment(&path, out, max_events, &mut added)?;
            if added >= max_events {
                return Ok(added);
            }
            let next = self
                .config
                .names
                .segments(&self.run_dir, self.tier)?
                .into_iter()
                .map(|(n, _)| n)
                .find(|&n| n > self.pos.segment);
            let Some(next) = next else { return Ok(added) };
            // The writer creates a later segment only after its last write to this one, but that
            // write may have landed after our read: read this one once more before moving on.
            if !rechecked {
                rechecked = true;
                continue;
            }
            if let Some(len) = len
                && len > self.pos.offset
            {
                self.stats.bad(
                    &path,
                    self.line + 1,
                    self.pos.offset,
                    BadLineKind::Corrupt,
                    format!("{} bytes without a final newline", len - self.pos.offset),
                );
            }
            self.pos = FollowPosition { segment: next, offset: 0 };
            self.line = 0;
            rechecked = false;
        }
    }

    /// Reads complete lines of `path` from the saved offset. Returns the file length seen, or
    /// `None` when the file does not exist.
    fn read_segment(
        &mut self,
        path: &std::path::Path,
        out: &mut Vec<Event>,
        max_events: usize,
        added: &mut usize,
    ) -> Result<Option<u64>, StorageError> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("opening", path, e)),
        };
        let len = file.metadata().map_err(|e| StorageError::io("reading", path, e))?.len();
        if len < self.pos.offset {
            self.truncations += 1;
            self.pos.offset = 0;
            self.line = 0;
        }
        file.seek(SeekFrom::Start(self.pos.offset))
            .map_err(|e| StorageError::io("seeking", path, e))?;
        // Read only what existed when we looked, so a fast writer cannot keep us here forever.
        let limited = file.take(len - self.pos.offset);
        let mut reader =
            LineReader::new(limited, self.config.max_line_bytes, self.pos.offset, self.line);
        while *added < max_events {
            let line = reader.next_line().map_err(|e| StorageError::io("reading", path, e))?;
            match Step::of(line, path, self.config.max_line_bytes) {
                Step::Blank => self.stats.blank_lines += 1,
                Step::Raw(raw) => {
                    if let Some(e) = self.stats.take(raw, &self.filter) {
                        out.push(e);
                        *added += 1;
                    }
                }
                Step::Eof(_) => break,
            }
            self.pos.offset = reader.complete_offset();
            self.line = reader.line_number();
        }
        Ok(Some(len))
    }
}

/// The offset just past the last `\n` of the file (0 if none within reach): where "new" lines
/// start. Looks back at most `max_line + 1` bytes; beyond that the partial line is too long to
/// be an event anyway and following starts at the end.
fn last_line_end(path: &std::path::Path, max_line: usize) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let floor = len.saturating_sub(max_line as u64 + 1);
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > floor {
        let start = end.saturating_sub(buf.len() as u64).max(floor);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(if floor == 0 { 0 } else { len })
}
