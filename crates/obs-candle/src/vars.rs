//! [`TrackedVars`]: the named variables whose gradients and updates are measured.

use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;

use crate::device::{CpuSlice, difference_norms, host_diff_squares, l2_norms, with_cpu_slice};

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

/// The values of the tracked variables before an optimiser step: one copy of each.
///
/// candle's `Var::set` overwrites a variable's storage in place, so a clone of the tensor
/// would see the new values; the snapshot is a real copy, made where the variable lives: a
/// variable on the CPU device is copied into a host buffer that
/// [`TrackedVars::snapshot_into`] reuses from step to step (no allocation once warm), any other
/// one is copied on its device.
#[derive(Debug, Default)]
pub struct Snapshot {
    saved: Vec<Saved>,
}

#[derive(Debug)]
enum Saved {
    F32(Vec<f32>),
    F64(Vec<f64>),
    Device(Tensor),
}

impl Saved {
    fn host(&self) -> Option<CpuSlice<'_>> {
        match self {
            Saved::F32(v) => Some(CpuSlice::F32(v)),
            Saved::F64(v) => Some(CpuSlice::F64(v)),
            Saved::Device(_) => None,
        }
    }
}

impl Snapshot {
    /// How many variables it holds.
    pub fn len(&self) -> usize {
        self.saved.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.saved.is_empty()
    }
}

/// Copies `var` into `slot`, reusing the slot's buffer when it is a host buffer of the type.
fn save(var: &Var, slot: Option<Saved>) -> candle_core::Result<Saved> {
    let t = var.as_tensor();
    let copied = with_cpu_slice(t, |s| match (s, slot) {
        (CpuSlice::F32(d), Some(Saved::F32(mut v))) => {
            v.clear();
            v.extend_from_slice(d);
            Saved::F32(v)
        }
        (CpuSlice::F64(d), Some(Saved::F64(mut v))) => {
            v.clear();
            v.extend_from_slice(d);
            Saved::F64(v)
        }
        (CpuSlice::F32(d), _) => Saved::F32(d.to_vec()),
        (CpuSlice::F64(d), _) => Saved::F64(d.to_vec()),
    });
    match copied {
        Some(s) => Ok(s),
        None => Ok(Saved::Device(t.copy()?)),
    }
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

    /// Copies every variable (see [`Snapshot`]), to measure the update of the next optimiser
    /// step.
    ///
    /// # Errors
    /// A candle error (out of device memory, say).
    pub fn snapshot(&self) -> candle_core::Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        self.snapshot_into(&mut snapshot)?;
        Ok(snapshot)
    }

    /// [`TrackedVars::snapshot`] into an existing snapshot, reusing its host buffers.
    ///
    /// # Errors
    /// A candle error (out of device memory, say).
    pub fn snapshot_into(&self, snapshot: &mut Snapshot) -> candle_core::Result<()> {
        let mut old = std::mem::take(&mut snapshot.saved).into_iter();
        snapshot.saved =
            self.vars.iter().map(|v| save(v, old.next())).collect::<candle_core::Result<_>>()?;
        Ok(())
    }

    /// The L2 norm of each variable's change since `snapshot`: for a CPU variable one fused
    /// pass over its storage and the saved buffer, for any other one `after - before` reduced
    /// on its device (the scalars brought back in one copy).
    ///
    /// # Errors
    /// A candle error; a snapshot of other variables (a different count or shape) is a candle
    /// error too.
    pub fn update_norms(&self, snapshot: &Snapshot) -> candle_core::Result<Vec<f64>> {
        if snapshot.saved.len() != self.vars.len() {
            candle_core::bail!(
                "snapshot of {} variables used with {} tracked variables",
                snapshot.saved.len(),
                self.vars.len()
            );
        }
        let mut out = vec![0.0; self.vars.len()];
        let mut device = Vec::new();
        let mut pairs = Vec::new();
        for (i, (var, saved)) in self.vars.iter().zip(&snapshot.saved).enumerate() {
            let after = var.as_tensor();
            if let Some(sum) = saved.host().and_then(|before| host_diff_squares(after, before)) {
                out[i] = sum.sqrt();
                continue;
            }
            let before = match saved {
                Saved::Device(t) => t.clone(),
                Saved::F32(v) => Tensor::from_slice(v, after.dims(), &candle_core::Device::Cpu)?,
                Saved::F64(v) => Tensor::from_slice(v, after.dims(), &candle_core::Device::Cpu)?,
            };
            device.push(i);
            pairs.push((after.clone(), before.to_device(after.device())?));
        }
        let refs: Vec<(&Tensor, &Tensor)> = pairs.iter().map(|(a, b)| (a, b)).collect();
        for (i, norm) in device.into_iter().zip(difference_norms(&refs)?) {
            out[i] = norm;
        }
        Ok(out)
    }
}
