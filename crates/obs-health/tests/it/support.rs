//! Helpers shared by the test modules.

use obs_health::{AutoHealthWarnings, BatchInput, HealthWarning, Rule, WarningConfig};

/// An engine with the default configuration.
pub(crate) fn engine() -> AutoHealthWarnings {
    AutoHealthWarnings::new(WarningConfig::default()).unwrap()
}

/// An engine with a configuration changed by `f`.
pub(crate) fn engine_with(f: impl FnOnce(&mut WarningConfig)) -> AutoHealthWarnings {
    let mut config = WarningConfig::default();
    f(&mut config);
    AutoHealthWarnings::new(config).unwrap()
}

/// An engine that judges each batch on its own: the persistence rules (`dead_relu`,
/// `activation_saturation`, `vanishing_gradient`) need one batch instead of five.
pub(crate) fn immediate() -> AutoHealthWarnings {
    engine_with(|c| {
        c.dead_relu_patience = 1;
        c.saturation_patience = 1;
        c.vanishing_gradient_patience = 1;
    })
}

/// The rules of `warnings`, in order.
pub(crate) fn rules(warnings: &[HealthWarning]) -> Vec<Rule> {
    warnings.iter().map(|w| w.rule().expect("known rule")).collect()
}

/// Checks a batch that only has a loss.
pub(crate) fn loss(engine: &mut AutoHealthWarnings, batch: u64, loss: f64) -> Vec<HealthWarning> {
    engine.check_batch(&BatchInput::new(0, batch).loss(loss))
}

/// Checks a batch that only has gradient norms.
pub(crate) fn grads(
    engine: &mut AutoHealthWarnings,
    batch: u64,
    norms: &[(&str, f64)],
) -> Vec<HealthWarning> {
    engine.check_batch(&BatchInput::new(0, batch).gradient_norms(norms))
}

/// Checks a batch that only has weight-update norms.
pub(crate) fn updates(
    engine: &mut AutoHealthWarnings,
    batch: u64,
    norms: &[(&str, f64)],
) -> Vec<HealthWarning> {
    engine.check_batch(&BatchInput::new(0, batch).update_norms(norms))
}
