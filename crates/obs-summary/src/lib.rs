#![doc = include_str!("../README.md")]

mod ranks;
mod serde_util;
mod summarizer;
mod summary;

pub(crate) use serde_util::{float, named};

pub use ranks::{RankDigest, RankStats, Straggler};
pub use summarizer::{EpochSummarizer, SummaryError, summary_event};
pub use summary::{EpochSummary, LayerSummary, MetricStats, NAME_WIDTH};
