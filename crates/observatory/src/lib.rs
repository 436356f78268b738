#![doc = include_str!("../README.md")]

/// Events, levels, the backend trait, the event bus, `TrainingLogger` and the statistics
/// kernels (the `obs-core` crate; always present).
pub use obs_core as core;

/// `AdaptiveLogger` and `AnomalyConfig` (the `obs-adaptive` crate; feature `adaptive`).
#[cfg(feature = "adaptive")]
pub use obs_adaptive as adaptive;

/// `AutoHealthWarnings`, `WarningConfig` and the rules (the `obs-health` crate; feature
/// `health`).
#[cfg(feature = "health")]
pub use obs_health as health;

/// `EpochSummarizer` and `EpochSummary` (the `obs-summary` crate; feature `summary`).
#[cfg(feature = "summary")]
pub use obs_summary as summary;

/// `TieredStorage` and the log reader (the `obs-storage` crate; feature `storage`).
#[cfg(feature = "storage")]
pub use obs_storage as storage;

/// `DashboardExporter` and the from-logs renderer (the `obs-dashboard` crate; feature
/// `dashboard`).
#[cfg(feature = "dashboard")]
pub use obs_dashboard as dashboard;

/// `TrainingFingerprint`: capture, text, JSON, diff (the `obs-fingerprint` crate; feature
/// `fingerprint`).
#[cfg(feature = "fingerprint")]
pub use obs_fingerprint as fingerprint;

/// `TensorBoardBridge`, `WandbBridge` and `MlflowBridge` (the `obs-bridges` crate; features
/// `tensorboard` and `wandb`, both in `bridges`, and `mlflow`, off by default).
#[cfg(any(feature = "tensorboard", feature = "wandb", feature = "mlflow"))]
pub use obs_bridges as bridges;

/// The candle integration: `Session`, `Observed`, on-device norms (the `obs-candle` crate;
/// feature `candle`, off by default).
#[cfg(feature = "candle")]
pub use obs_candle as candle;

/// The burn integration: a burn-train `MetricLogger`, the training-step `Probe`, gradient and
/// update norms (the `obs-burn` crate; feature `burn`, off by default).
#[cfg(feature = "burn")]
pub use obs_burn as burn;

pub use obs_core::data;

/// The types a training loop needs, for `use observatory::prelude::*;`.
///
/// Each feature adds its own types; with every feature on (the default) this is the whole
/// pipeline of the reference's "full integration" example.
pub mod prelude {
    pub use obs_core::{
        Activation, Backend, BackendError, Data, Event, EventType, LogLevel, Severity, TensorStats,
        TensorView, Tier, TrainingLogger, Value, data,
    };

    #[cfg(feature = "adaptive")]
    pub use obs_adaptive::{AdaptiveLogger, AnomalyConfig, Trigger};

    #[cfg(feature = "health")]
    pub use obs_health::{
        ActivationStats, AutoHealthWarnings, BatchInput, HealthWarning, WarningConfig,
    };

    #[cfg(feature = "summary")]
    pub use obs_summary::{EpochSummarizer, EpochSummary};

    #[cfg(feature = "storage")]
    pub use obs_storage::{LogReader, OpenMode, StorageConfig, TieredStorage};

    #[cfg(feature = "dashboard")]
    pub use obs_dashboard::{DashboardConfig, DashboardExporter};

    #[cfg(feature = "fingerprint")]
    pub use obs_fingerprint::TrainingFingerprint;

    #[cfg(feature = "tensorboard")]
    pub use obs_bridges::TensorBoardBridge;

    #[cfg(feature = "wandb")]
    pub use obs_bridges::WandbBridge;
}

/// The Rust examples of `docs/getting-started.md`, compiled and run as doctests so the guide
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/getting-started.md")]
mod getting_started {}

/// The Rust examples of `docs/health.md`, compiled and run as doctests.
#[cfg(all(doctest, feature = "health"))]
#[doc = include_str!("../../../docs/health.md")]
mod health_guide {}

/// The Rust examples of `docs/adaptive.md`, compiled and run as doctests.
#[cfg(all(doctest, feature = "adaptive"))]
#[doc = include_str!("../../../docs/adaptive.md")]
mod adaptive_guide {}
