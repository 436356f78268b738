//! Integration tests of the epoch summarizer.

mod alloc;
mod format;
mod lifecycle;
mod training;
