//! [`HostCopy`]: when a tensor's elements go through Observatory's statistics kernel.
//!
//! This type knows no framework: it decides from a step number, the adaptive logger's state
//! and whether the tensor already lives in host memory. The framework integrations
//! (`obs-candle`, `obs-burn`) share it, so one policy means the same thing in both.

/// When a layer output or a weight tensor is reduced by the full statistics kernel on the host.
///
/// The kernel needs the elements in host memory. A tensor that is already there (candle's CPU
/// device, burn's CPU backends) costs one pass of the kernel (candle's is borrowed in place,
/// burn's is read out with one memory copy); a tensor on a GPU has to be **copied** to the
/// host first, which costs far more than the pass. The policy says when that price is paid:
///
/// - every [`every`](Self::every) steps (step 0, `every`, `2 * every`, ...);
/// - on every step while the adaptive logger is escalated, if
///   [`while_escalated`](Self::while_escalated) (the detail is recorded then, so it should be
///   complete);
/// - on every step for tensors already in host memory, if
///   [`borrow_host`](Self::borrow_host).
///
/// On the other steps a GPU tensor's health numbers (zeros, dead units, saturation, NaN/Inf,
/// moments) can still be computed **on the device** with a few reductions and one small copy
/// (`obs_candle::device_stats`), or skipped.
///
/// # Examples
/// ```
/// use obs_core::HostCopy;
///
/// let policy = HostCopy::every(10);
/// assert!(policy.copy_now(20, false, false)); // every 10th step
/// assert!(!policy.copy_now(21, false, false)); // a GPU tensor on a calm step: not copied
/// assert!(policy.copy_now(21, true, false)); // escalated: copied
/// assert!(policy.copy_now(21, false, true)); // already in host memory: borrowed
/// assert!(!HostCopy::never().copy_now(0, true, true));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct HostCopy {
    /// Reduce on the host every this many steps; `0` never does so periodically.
    pub every: u64,
    /// Reduce on the host on every step while the adaptive logger is escalated.
    pub while_escalated: bool,
    /// Reduce tensors already in host memory on every step (no device transfer is needed).
    pub borrow_host: bool,
}

impl HostCopy {
    /// Every `k` steps and while escalated; host tensors on every step. `k == 0` means only
    /// while escalated (and host tensors).
    pub const fn every(k: u64) -> Self {
        HostCopy { every: k, while_escalated: true, borrow_host: true }
    }

    /// Every step, wherever the tensor lives.
    pub const fn always() -> Self {
        HostCopy { every: 1, while_escalated: true, borrow_host: true }
    }

    /// Never: only device-side numbers (or nothing) reach the rules.
    pub const fn never() -> Self {
        HostCopy { every: 0, while_escalated: false, borrow_host: false }
    }

    /// Sets [`HostCopy::borrow_host`].
    #[must_use]
    pub const fn borrow_host(mut self, on: bool) -> Self {
        self.borrow_host = on;
        self
    }

    /// Sets [`HostCopy::while_escalated`].
    #[must_use]
    pub const fn while_escalated(mut self, on: bool) -> Self {
        self.while_escalated = on;
        self
    }

    /// Whether step `step` reduces a tensor on the host, given whether the adaptive logger is
    /// escalated and whether the tensor is already in host memory.
    pub const fn copy_now(&self, step: u64, escalated: bool, on_host: bool) -> bool {
        (on_host && self.borrow_host)
            || (escalated && self.while_escalated)
            || (self.every > 0 && step.is_multiple_of(self.every))
    }
}

impl Default for HostCopy {
    /// [`HostCopy::every`]`(10)`: host tensors every step, GPU tensors every 10th step and
    /// while escalated.
    fn default() -> Self {
        HostCopy::every(10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_zero_copies_only_when_asked_otherwise() {
        let p = HostCopy::every(0);
        assert!(!p.copy_now(0, false, false));
        assert!(p.copy_now(0, true, false));
        assert!(p.copy_now(7, false, true));
    }

    #[test]
    fn always_copies_and_never_does_not() {
        for step in 0..5 {
            assert!(HostCopy::always().copy_now(step, false, false));
            assert!(!HostCopy::never().copy_now(step, true, true));
        }
    }

    #[test]
    fn host_tensors_follow_borrow_host() {
        let p = HostCopy::every(3).borrow_host(false);
        assert!(!p.copy_now(1, false, true));
        assert!(p.copy_now(3, false, true));
        assert!(!p.while_escalated(false).copy_now(1, true, false));
    }
}
