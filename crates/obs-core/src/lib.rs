#![doc = include_str!("../README.md")]

mod backend;
pub mod bus;
mod event;
mod json;
mod level;
mod logger;
mod metrics;
mod policy;
pub mod stats;
pub mod time;
mod value;

pub use backend::{Backend, BackendError};
pub use bus::{BusConfig, BusError, CloseReport, EventBus, SendOutcome};
pub use event::{Event, ParseEventError, unix_now};
pub use level::{EventType, LogLevel, ParseNameError, Severity, Tier};
pub use logger::{LoggerBuilder, LoggerSummary, TrainingLogger};
pub use metrics::BatchMetrics;
pub use policy::HostCopy;
pub use stats::{Activation, TensorData, TensorError, TensorStats, TensorView, tensor_stats};
pub use value::{Data, Key, Value, serialize_f64};
