#![doc = include_str!("../README.md")]

mod serde_util;
mod summarizer;
mod summary;

pub(crate) use serde_util::{float, named};

pub use summarizer::{EpochSummarizer, SummaryError, summary_event};
pub use summary::{EpochSummary, LayerSummary, MetricStats, NAME_WIDTH};
