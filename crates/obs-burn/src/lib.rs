#![doc = include_str!("../README.md")]

mod error;
mod learner;
mod probe;
mod renderer;
mod session;
mod tensors;

pub use error::{Error, Result};
pub use learner::ObservatoryLogger;
/// The host-copy policy, shared with the other framework integrations (defined in `obs-core`).
pub use obs_core::HostCopy;
pub use probe::Probe;
pub use renderer::QuietRenderer;
pub use session::{
    BURN_VERSION, EpochReport, RunPaths, RunReport, Session, SessionBuilder, StepReport,
};
pub use tensors::{
    ParamSnapshot, device_name, grad_norms, host_stats, is_host_device, param_names, with_host_view,
};

/// `docs/burn.md`, compiled and run as doctests so the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/burn.md")]
mod guide {}
