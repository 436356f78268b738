//! [`TrackedVars`]: the named variables whose gradients and updates are measured.

use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;

use crate::device::{difference_norms, l2_norms};

/// The trainable variables of a model, by name, in a fixed order (sorted by name).
///
/// The names are the ones the variables have in the [`VarMap`] (`"dense_0.weight"`), so
/// warnings and charts say which tensor is meant. Gradient norms and update norms are
/// reported per variable.
#[derive(Clone, Debug, Default)]
pub struct TrackedVars {
    names: Vec<Arc<str>>,
    vars: Vec<Var>,
}

/// The values of the tracked variables before an optimiser step: one device copy of each.
///
/// candle's `Var::set` overwrites a variable's storage in place, so a clone of the tensor
/// would see the new values; the snapshot is a real copy, made on the variable's own device.
#[derive(Debug)]
pub struct Snapshot {
    before: Vec<Tensor>,
}

impl TrackedVars {
    /// Every variable of `varmap`, sorted by name.
    pub fn from_varmap(varmap: &VarMap) -> Self {
        let data = varmap.data().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut pairs: Vec<(String, Var)> =
            data.iter().map(|(name, var)| (name.clone(), var.clone())).collect();
        drop(data);
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Self::new(pairs)
    }

    /// The given variables, in the given order.
    pub fn new<N: AsRef<str>>(vars: impl IntoIterator<Item = (N, Var)>) -> Self {
        let (names, vars) = vars.into_iter().map(|(n, v)| (Arc::from(n.as_ref()), v)).unzip();
        TrackedVars { names, vars }
    }

    /// Keeps only the variables whose name passes `keep` (weights only, say).
    #[must_use]
    pub fn filter(self, mut keep: impl FnMut(&str) -> bool) -> Self {
        let (names, vars) = self.names.into_iter().zip(self.vars).filter(|(n, _)| keep(n)).unzip();
        TrackedVars { names, vars }
    }

    /// How many variables are tracked.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether no variable is tracked.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The names, in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.names.iter().map(|n| &**n)
    }

    pub(crate) fn name_arcs(&self) -> &[Arc<str>] {
        &self.names
    }

    /// The variables, in order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The L2 norm of each variable's gradient in `grads`, reduced on the device (see
    /// [`l2_norms`]); `None` for a variable with no gradient (not part of the loss).
    ///
    /// # Errors
    /// A candle error from the reductions.
    pub fn grad_norms(&self, grads: &GradStore) -> candle_core::Result<Vec<Option<f64>>> {
        let present: Vec<&Tensor> =
            self.vars.iter().filter_map(|v| grads.get(v.as_tensor())).collect();
        let mut norms = l2_norms(&present)?.into_iter();
        Ok(self.vars.iter().map(|v| grads.get(v.as_tensor()).and_then(|_| norms.next())).collect())
    }

    /// Copies every variable on its device, to measure the update of the next optimiser step.
    ///
    /// # Errors
    /// A candle error (out of device memory, say).
    pub fn snapshot(&self) -> candle_core::Result<Snapshot> {
        let before = self.vars.iter().map(|v| v.as_tensor().copy()).collect::<Result<_, _>>()?;
        Ok(Snapshot { before })
    }

    /// The L2 norm of each variable's change since `snapshot`, reduced on the device.
    ///
    /// # Errors
    /// A candle error; a snapshot of other variables (a different count) is a candle error too.
    pub fn update_norms(&self, snapshot: &Snapshot) -> candle_core::Result<Vec<f64>> {
        if snapshot.before.len() != self.vars.len() {
            candle_core::bail!(
                "snapshot of {} variables used with {} tracked variables",
                snapshot.before.len(),
                self.vars.len()
            );
        }
        let pairs: Vec<(&Tensor, &Tensor)> =
            self.vars.iter().map(|v| v.as_tensor()).zip(&snapshot.before).collect();
        difference_norms(&pairs)
    }
}
