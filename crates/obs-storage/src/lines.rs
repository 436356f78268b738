//! A line splitter with a hard cap on line length: the rest of an over-long line is skipped
//! without being buffered, so memory stays bounded whatever the input.

use std::io::{self, BufRead, BufReader, Read};

/// What [`LineReader::next_line`] found.
#[derive(Debug)]
pub(crate) enum Line<'a> {
    /// A complete line (without its `\n`), with its 1-based number and byte offset.
    Complete { bytes: &'a [u8], number: u64, offset: u64 },
    /// A line longer than the cap; its content was skipped.
    TooLong { number: u64, offset: u64, len: u64 },
    /// End of input; `partial` bytes after the last `\n` are not a line yet.
    Eof { partial: u64 },
}

/// Splits a reader into `\n`-terminated lines of at most `max` bytes.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    max: usize,
    /// Offset just past the last complete line: where a follower resumes.
    complete_offset: u64,
    number: u64,
}

/// The read buffer; large enough that a read is a few syscalls per MiB.
const READ_BUF: usize = 64 * 1024;

impl<R: Read> LineReader<R> {
    /// Reads lines from `inner`, whose first byte is at `offset` in the file, numbering lines
    /// after `line_number`.
    pub(crate) fn new(inner: R, max: usize, offset: u64, line_number: u64) -> Self {
        LineReader {
            inner: BufReader::with_capacity(READ_BUF, inner),
            line: Vec::new(),
            max: max.max(1),
            complete_offset: offset,
            number: line_number,
        }
    }

    /// The offset just past the last complete line returned.
    pub(crate) fn complete_offset(&self) -> u64 {
        self.complete_offset
    }

    /// The number of complete lines seen so far (including those before `new`'s offset).
    pub(crate) fn line_number(&self) -> u64 {
        self.number
    }

    /// The next line. After `Eof` the reader may be called again: it returns whatever was
    /// appended meanwhile only if the underlying reader yields more bytes.
    pub(crate) fn next_line(&mut self) -> io::Result<Line<'_>> {
        if self.line.capacity() > 4 * READ_BUF {
            // Give back the memory of an earlier long line.
            self.line = Vec::with_capacity(READ_BUF);
        }
        self.line.clear();
        let start = self.complete_offset;
        let mut len: u64 = 0;
        let mut too_long = false;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                // The partial line stays unconsumed in the file's terms: callers resume at
                // `complete_offset`. Drop it here so a later call starts clean.
                return Ok(Line::Eof { partial: len });
            }
            let (take, done) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if !too_long {
                if self.line.len() + take > self.max {
                    too_long = true;
                    self.line = Vec::new();
                } else {
                    self.line.extend_from_slice(&avail[..take]);
                }
            }
            let consumed = take + usize::from(done);
            self.inner.consume(consumed);
            len += consumed as u64;
            if done {
                self.number += 1;
                self.complete_offset = start + len;
                if too_long {
                    return Ok(Line::TooLong { number: self.number, offset: start, len: len - 1 });
                }
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                return Ok(Line::Complete {
                    bytes: &self.line,
                    number: self.number,
                    offset: start,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(input, max, 0, 0);
        let mut out = Vec::new();
        loop {
            match r.next_line().unwrap() {
                Line::Complete { bytes, number, offset } => {
                    out.push(format!("{number}@{offset}:{}", String::from_utf8_lossy(bytes)));
                }
                Line::TooLong { number, offset, len } => {
                    out.push(format!("{number}@{offset}:long{len}"))
                }
                Line::Eof { partial } => {
                    out.push(format!("eof{partial}"));
                    return out;
                }
            }
        }
    }

    #[test]
    fn splits_caps_and_reports_the_tail() {
        assert_eq!(lines(b"ab\n\ncd\r\nxyz", 10), ["1@0:ab", "2@3:", "3@4:cd", "eof3"]);
        assert_eq!(lines(b"abcdef\nab\n", 3), ["1@0:long6", "2@7:ab", "eof0"]);
        assert_eq!(lines(b"", 3), ["eof0"]);
    }

    #[test]
    fn long_lines_spanning_many_buffers_are_skipped() {
        let mut input = vec![b'x'; 3 * READ_BUF + 17];
        input.extend_from_slice(b"\nok\n");
        let got = lines(&input, 100);
        assert_eq!(
            got,
            [
                format!("1@0:long{}", 3 * READ_BUF + 17),
                format!("2@{}:ok", 3 * READ_BUF + 18),
                "eof0".into()
            ]
        );
    }

    #[test]
    fn memory_stays_bounded_by_the_cap_on_a_huge_line() {
        let input = vec![b'{'; 8 << 20];
        let mut r = LineReader::new(input.as_slice(), 1000, 0, 0);
        assert!(matches!(r.next_line().unwrap(), Line::Eof { partial } if partial == 8 << 20));
        assert!(r.line.capacity() <= 4 * READ_BUF, "{}", r.line.capacity());
    }
}
