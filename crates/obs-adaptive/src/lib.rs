#![doc = include_str!("../README.md")]

mod anomaly;
mod config;
mod logger;

pub use anomaly::{Anomaly, AnomalySummary, Trigger, UnknownTrigger};
pub use config::{AnomalyConfig, ConfigError};
pub use logger::AdaptiveLogger;
