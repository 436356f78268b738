//! [`Probe`]: what a training step measured (layer outputs, gradient and update norms), handed
//! to the session for the step's record.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use obs_core::{Activation, HostCopy, TensorStats, tensor_stats};

use crate::error::{Error, Result};
use crate::tensors::{ParamSnapshot, grad_norms, is_host_device, with_host_view};

/// The most steps a probe keeps before the session takes them (older ones are dropped and
/// counted): a probe used without a session cannot grow without bound.
const MAX_PENDING: usize = 1024;

/// One observed layer output.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub(crate) index: usize,
    pub(crate) name: Arc<str>,
    pub(crate) shape: Vec<usize>,
    pub(crate) stats: TensorStats,
}

/// What one training step measured, waiting for the session's record of the step.
#[derive(Clone, Debug, Default)]
pub(crate) struct Record {
    pub(crate) step: u64,
    pub(crate) layers: Vec<Layer>,
    pub(crate) grads: Option<Vec<(Arc<str>, f64)>>,
    pub(crate) updates: Option<Vec<(Arc<str>, f64)>>,
    pub(crate) host: bool,
}

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<Record>,
    started: u64,
    dropped: u64,
}

#[derive(Debug)]
pub(crate) struct ProbeShared {
    state: Mutex<State>,
    pub(crate) escalated: AtomicBool,
    host_copy: HostCopy,
}

impl ProbeShared {
    pub(crate) fn new(host_copy: HostCopy) -> Self {
        ProbeShared { state: Mutex::default(), escalated: AtomicBool::new(false), host_copy }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A panic elsewhere while the lock was held leaves plain data behind: keep using it.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    /// The oldest step not yet recorded.
    pub(crate) fn pop(&self) -> Option<Record> {
        self.with(|s| s.pending.pop_front())
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.with(|s| s.dropped)
    }
}

impl State {
    /// The record of the current step: a new one when there is none or the last one already
    /// has its gradients (the backward pass ends a step's measurements).
    fn current(&mut self, for_grads: bool) -> &mut Record {
        let open = self.pending.back().is_some_and(|r| r.grads.is_none() && r.updates.is_none());
        if !open || (for_grads && self.pending.back().is_some_and(|r| r.grads.is_some())) {
            if self.pending.len() >= MAX_PENDING {
                self.pending.pop_front();
                self.dropped += 1;
            }
            let step = self.started;
            self.started += 1;
            self.pending.push_back(Record { step, ..Record::default() });
        }
        self.pending.back_mut().expect("a record was just ensured")
    }
}

/// A handle a training step uses to hand its measurements to the [`crate::Session`]: layer
/// outputs, gradient norms and update norms. It is `Clone + Send + Sync`, so a burn model can
/// hold one (in a `#[module(skip)]` field) and use it from `TrainStep::step` and
/// `TrainStep::optimize`, which the `Learner` runs on its own thread.
///
/// A step's measurements are kept in order and taken by the session's record of the next
/// step: the `Learner`'s train metrics (through [`crate::ObservatoryLogger`]) or
/// [`crate::Session::record_step`]. Call the probe from the training step only, not from
/// validation (`InferenceStep`): every call to [`Probe::gradients`] ends one step.
///
/// # Examples
/// ```
/// use burn::tensor::{Device, Tensor};
/// use obs_burn::Session;
/// use obs_core::Activation;
///
/// let mut session = Session::builder().fingerprint(false).build(&Device::default())?;
/// let probe = session.probe();
/// session.train_start(1);
/// session.epoch_start(1);
/// let hidden = Tensor::<2>::from_floats([[0.0, 1.0], [0.0, 2.0]], &Device::default());
/// let stats = probe.layer(0, "dense_0", &hidden, Activation::Relu)?.expect("CPU: every step");
/// assert_eq!(stats.dead_units_pct(), Some(50.0));
/// let step = session.record_step(Some(0.7), &[])?;
/// assert_eq!(step.activations.len(), 1);
/// # Ok::<(), obs_burn::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Probe {
    pub(crate) shared: Arc<ProbeShared>,
}

impl Probe {
    /// Observes a layer output of the current step: its statistics are computed now by the
    /// kernel on a host copy when the [`HostCopy`] policy says so (on a CPU backend, every
    /// step by default; on a GPU every `k` steps and while the adaptive logger is escalated),
    /// and judged with the step's record. Returns them, or `None` when the policy skipped the
    /// tensor.
    ///
    /// # Errors
    /// [`Error::BadName`] for a name without letters or digits; [`Error::DuplicateLayer`] for
    /// a name already observed in this step; [`Error::Empty`] and [`Error::Read`] for a tensor
    /// that cannot be read. Nothing is recorded then.
    pub fn layer<const D: usize>(
        &self,
        index: usize,
        name: &str,
        output: &Tensor<D>,
        activation: Activation,
    ) -> Result<Option<TensorStats>> {
        let name = crate::session::check_name("layer", name)?;
        let (step, duplicate) = self.shared.with(|s| {
            let r = s.current(false);
            (r.step, r.layers.iter().any(|l| *l.name == *name))
        });
        if duplicate {
            return Err(Error::DuplicateLayer { name: name.to_string(), step });
        }
        let escalated = self.shared.escalated.load(Ordering::Relaxed);
        if !self.shared.host_copy.copy_now(step, escalated, is_host_device(&output.device())) {
            return Ok(None);
        }
        let shape = output.dims().to_vec();
        let stats = with_host_view(&name, output, |view| tensor_stats(view, activation))?;
        self.shared.with(|s| {
            let r = s.current(false);
            r.host = true;
            r.layers.push(Layer { index, name, shape, stats });
        });
        Ok(Some(stats))
    }

    /// Measures each parameter's gradient norm (see [`crate::grad_norms`]) and ends the
    /// step's forward and backward measurements. Returns the norms.
    ///
    /// # Errors
    /// [`Error::Read`] when burn cannot read the reduced values (nothing is recorded).
    pub fn gradients<M: Module>(
        &self,
        module: &M,
        grads: &GradientsParams,
    ) -> Result<Vec<(Arc<str>, f64)>> {
        let norms = grad_norms(module, grads)?;
        self.shared.with(|s| s.current(true).grads = Some(norms.clone()));
        Ok(norms)
    }

    /// Measures each parameter's update between `before` and `after` (the module the
    /// optimiser returned) and adds the norms to the last step. Returns them.
    ///
    /// # Errors
    /// As [`ParamSnapshot::update_norms`].
    pub fn updates<M: Module>(
        &self,
        before: &ParamSnapshot,
        after: &M,
    ) -> Result<Vec<(Arc<str>, f64)>> {
        let norms = before.update_norms(after)?;
        self.shared.with(|s| {
            let r = match s.pending.back_mut() {
                Some(r) if r.updates.is_none() => r,
                _ => s.current(true),
            };
            r.updates = Some(norms.clone());
        });
        Ok(norms)
    }

    /// Steps measured and not yet taken by the session.
    pub fn pending(&self) -> usize {
        self.shared.with(|s| s.pending.len())
    }
}
