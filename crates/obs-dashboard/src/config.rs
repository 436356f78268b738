//! Dashboard options.

use std::time::Duration;

/// Options of a [`crate::Dashboard`] and [`crate::DashboardExporter`].
///
/// Take [`DashboardConfig::default`] and set fields:
/// ```
/// let mut config = obs_dashboard::DashboardConfig::default();
/// config.title = Some("resnet-18 on CIFAR-10".into());
/// config.live = true;
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DashboardConfig {
    /// Page title. `None` (default): "Training dashboard", followed by the model's
    /// `model_info.name` when the run has one.
    pub title: Option<String>,
    /// Re-render the file at every `epoch_end` (default `false`). Every write is atomic (a
    /// temporary file renamed over the old one), so a browser refresh never sees half a file.
    pub live: bool,
    /// In live mode, skip an epoch-end render when the previous render is more recent than
    /// this (default zero: render at every epoch end). A skipped render happens at the next
    /// epoch end after the interval, on `flush`, or on `close`.
    pub live_min_interval: Duration,
    /// Buckets per step-axis series (batch metrics, gradient norms, health timeline). Runs of
    /// up to this many steps are drawn exactly; longer runs keep the min, max and mean of
    /// each bucket. Default 2048, clamped to 16..=65536.
    pub step_buckets: usize,
    /// Buckets per epoch-axis series (epoch metrics and timing). Default 2048, clamped to
    /// 16..=65536.
    pub epoch_buckets: usize,
    /// At most this many metric names per axis are charted (default 32); later names are
    /// counted and listed as omitted.
    pub max_metrics: usize,
    /// At most this many layers get a gradient-norm series (default 64); later layers are
    /// counted as omitted.
    pub max_layers: usize,
    /// At most this many health rules get their own group (default 64); later rules share one
    /// group named `other`.
    pub max_rules: usize,
    /// Upper bound on gradient-norm buckets written to the page across all layers (default
    /// 16384). With many layers each layer's series is merged further (min and max kept) so
    /// the file stays small.
    pub max_layer_points: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            title: None,
            live: false,
            live_min_interval: Duration::ZERO,
            step_buckets: 2048,
            epoch_buckets: 2048,
            max_metrics: 32,
            max_layers: 64,
            max_rules: 64,
            max_layer_points: 16_384,
        }
    }
}

impl DashboardConfig {
    pub(crate) fn step_capacity(&self) -> usize {
        self.step_buckets.clamp(16, 65_536)
    }

    pub(crate) fn epoch_capacity(&self) -> usize {
        self.epoch_buckets.clamp(16, 65_536)
    }
}
