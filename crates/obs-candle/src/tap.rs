//! [`LayerTap`] and [`Observed`]: layer outputs picked up from inside a model's forward pass.

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{Module, Tensor};
use obs_core::Activation;

/// One layer output seen by a tap.
#[derive(Clone, Debug)]
pub(crate) struct Tapped {
    pub(crate) index: usize,
    pub(crate) name: Arc<str>,
    pub(crate) output: Tensor,
    pub(crate) activation: Activation,
}

#[derive(Debug, Default)]
struct TapState {
    armed: bool,
    seen: Vec<Tapped>,
}

/// Where [`Observed`] layers leave their outputs during a training batch.
///
/// A tap is armed by [`crate::Session::batch_start`] and emptied by the session's step, so
/// only the forward pass of a training batch is observed; forward passes for validation or
/// inference (outside `batch_start` .. step) record nothing. What it keeps is a `Tensor`
/// handle (candle tensors are reference-counted; the output is not copied and stays alive
/// only until the step, as it does anyway for the backward pass).
///
/// Cloning gives another handle to the same tap; it is `Send + Sync`.
#[derive(Clone, Debug, Default)]
pub struct LayerTap {
    state: Arc<Mutex<TapState>>,
}

impl LayerTap {
    /// A new, disarmed tap.
    pub fn new() -> Self {
        LayerTap::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut TapState) -> R) -> R {
        // A panic elsewhere while the lock was held leaves plain data behind: keep using it.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    /// Records `output` of layer `index` if the tap is armed.
    pub fn record(&self, index: usize, name: &Arc<str>, output: &Tensor, activation: Activation) {
        self.with(|s| {
            if s.armed {
                s.seen.push(Tapped {
                    index,
                    name: Arc::clone(name),
                    output: output.clone(),
                    activation,
                });
            }
        });
    }

    /// Whether outputs are being recorded.
    pub fn is_armed(&self) -> bool {
        self.with(|s| s.armed)
    }

    /// Starts recording, dropping anything left from an earlier batch.
    pub(crate) fn arm(&self) {
        self.with(|s| {
            s.armed = true;
            s.seen.clear();
        });
    }

    /// Stops recording and hands out what was recorded.
    pub(crate) fn take(&self) -> Vec<Tapped> {
        self.with(|s| {
            s.armed = false;
            std::mem::take(&mut s.seen)
        })
    }
}

/// A [`Module`] whose output is observed: `forward` runs the inner module and leaves the
/// output on a [`LayerTap`] for the session's step to reduce and judge.
///
/// Wrap the part of the model whose output is the layer's *activation* (the linear map and
/// its ReLU together, say), and give the activation it ends with: it decides what counts as
/// saturated or dead.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// use candle_nn::{VarBuilder, VarMap};
/// use obs_candle::{LayerTap, Observed};
/// use obs_core::Activation;
///
/// let varmap = VarMap::new();
/// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
/// let linear = candle_nn::linear(4, 8, vb.pp("dense_0"))?;
/// let tap = LayerTap::new();
/// let dense_0 = Observed::new(
///     0,
///     "dense_0",
///     Activation::Relu,
///     move |x: &Tensor| linear.forward(x)?.relu(),
///     &tap,
/// );
/// let y = dense_0.forward(&Tensor::ones((2, 4), DType::F32, &Device::Cpu)?)?;
/// assert_eq!(y.dims(), &[2, 8]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Observed<M> {
    inner: M,
    index: usize,
    name: Arc<str>,
    activation: Activation,
    tap: LayerTap,
}

impl<M> Observed<M> {
    /// Observes `inner` as layer `index` named `name`, whose output comes from `activation`.
    pub fn new(
        index: usize,
        name: impl AsRef<str>,
        activation: Activation,
        inner: M,
        tap: &LayerTap,
    ) -> Self {
        Observed { inner, index, name: Arc::from(name.as_ref()), activation, tap: tap.clone() }
    }

    /// The wrapped module.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// The layer name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<M: Module> Module for Observed<M> {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let out = self.inner.forward(xs)?;
        self.tap.record(self.index, &self.name, &out, self.activation);
        Ok(out)
    }
}
