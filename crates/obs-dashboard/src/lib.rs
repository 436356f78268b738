#![doc = include_str!("../README.md")]

mod bucket;
mod compare;
mod config;
mod error;
mod exporter;
mod logs;
mod model;
mod render;

pub use compare::{Comparison, MAX_COMPARED_RUNS};
pub use config::DashboardConfig;
pub use error::DashboardError;
pub use exporter::{DashboardExporter, DashboardHandle};
pub use logs::{FromLogs, render_logs};
pub use model::Dashboard;
