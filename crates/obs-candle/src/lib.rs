#![doc = include_str!("../README.md")]

mod device;
mod error;
mod host;
mod session;
mod tap;
mod vars;

pub use device::{device_stats, difference_norms, l2_norms};
pub use error::{Error, Result};
pub use host::{host_stats, with_host_view};
/// The host-copy policy, shared with the other framework integrations (defined in `obs-core`).
pub use obs_core::HostCopy;
pub use session::{
    CANDLE_VERSION, EpochReport, RunPaths, RunReport, Session, SessionBuilder, StatsSource,
    StepReport, device_name,
};
pub use tap::{LayerTap, Observed};
pub use vars::{Snapshot, TrackedVars};

/// The candle section of `docs/integrations.md`, compiled and run as doctests so the guide
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/integrations.md")]
mod integrations {}
