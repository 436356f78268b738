//! Host views of burn tensors, parameter names, and gradient and update norms reduced on the
//! tensors' own device.

use std::collections::HashMap;
use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Device, Tensor};
use obs_core::{Activation, TensorStats, TensorView, tensor_stats};

use crate::error::{Error, Result};

/// A device's name for the fingerprint and the dashboard: burn's description of it
/// (`Flex`, `NdArray`, `Cube(Cuda(0))`, ...), without autodiff's wrapper.
pub fn device_name(device: &Device) -> String {
    let text = format!("{:?}", device.clone().without_autodiff());
    let text = text.strip_prefix("Device<").and_then(|t| t.strip_suffix('>')).unwrap_or(&text);
    text.to_owned()
}

/// Whether a device keeps its tensors in host memory (burn's CPU backends: Flex, NdArray,
/// cubecl's CPU runtime). Reading such a tensor is one memory copy, not a device transfer, so
/// the [`obs_core::HostCopy`] policy treats it as already on the host.
pub fn is_host_device(device: &Device) -> bool {
    let name = device_name(device);
    ["Flex", "NdArray", "Cpu"].iter().any(|k| name.contains(k))
}

/// Calls `f` with a [`TensorView`] of `t`'s elements, read into host memory (one copy on a
/// CPU backend, a device transfer on a GPU). `f64` tensors are read as `f64`, every other
/// float dtype (`f32`, `f16`, `bf16`, burn's `flex32`) as `f32`.
///
/// # Errors
/// [`Error::Empty`] for a tensor with no elements, [`Error::Read`] when burn cannot read it.
///
/// # Examples
/// ```
/// use burn::tensor::{Device, Tensor};
/// use obs_burn::with_host_view;
///
/// let t = Tensor::<2>::from_floats([[1.0, 0.0], [3.0, 4.0]], &Device::default());
/// let (len, shape) = with_host_view("t", &t, |view| (view.len(), view.shape()))?;
/// assert_eq!((len, shape), (4, vec![2, 2]));
/// # Ok::<(), obs_burn::Error>(())
/// ```
pub fn with_host_view<const D: usize, R>(
    name: &str,
    t: &Tensor<D>,
    f: impl FnOnce(TensorView<'_>) -> R,
) -> Result<R> {
    let dims = t.dims();
    if dims.iter().product::<usize>() == 0 {
        return Err(Error::Empty { name: name.to_owned(), shape: dims.to_vec() });
    }
    if t.dtype() == DType::F64 {
        let data = t.try_to_data_as::<f64>().map_err(|e| Error::read(name, e))?;
        let slice = data.as_slice::<f64>().map_err(|e| Error::read(name, format!("{e:?}")))?;
        Ok(f(TensorView::new(slice, &dims)?))
    } else {
        let data = t.try_to_data_as::<f32>().map_err(|e| Error::read(name, e))?;
        let slice = data.as_slice::<f32>().map_err(|e| Error::read(name, format!("{e:?}")))?;
        Ok(f(TensorView::new(slice, &dims)?))
    }
}

/// The full statistics of `t` (see [`obs_core::tensor_stats`]), computed by Observatory's
/// kernel on a host copy of the tensor ([`with_host_view`]).
///
/// # Errors
/// As [`with_host_view`].
///
/// # Examples
/// ```
/// use burn::tensor::{Device, Tensor};
/// use obs_burn::host_stats;
/// use obs_core::Activation;
///
/// let out = Tensor::<2>::from_floats([[0.0, 2.0], [0.0, 1.0]], &Device::default());
/// let stats = host_stats("dense_0", &out, Activation::Relu)?;
/// assert_eq!(stats.zeros, 2);
/// assert_eq!(stats.dead_units_pct(), Some(50.0)); // column 0 is zero for every sample
/// # Ok::<(), obs_burn::Error>(())
/// ```
pub fn host_stats<const D: usize>(
    name: &str,
    t: &Tensor<D>,
    activation: Activation,
) -> Result<TensorStats> {
    with_host_view(name, t, |view| tensor_stats(view, activation))
}

/// Joins the module path of a parameter (`["dense_0", "weight"]` -> `"dense_0.weight"`).
#[derive(Debug, Default)]
struct Path {
    parts: Vec<String>,
}

impl Path {
    fn enter(&mut self, name: &str) {
        self.parts.push(name.to_owned());
    }

    fn exit(&mut self) {
        self.parts.pop();
    }

    fn name(&self) -> Arc<str> {
        if self.parts.is_empty() { Arc::from("param") } else { Arc::from(self.parts.join(".")) }
    }
}

/// Collects every float parameter's id and dotted name, in visiting order.
#[derive(Debug, Default)]
struct Names {
    path: Path,
    found: Vec<(ParamId, Arc<str>)>,
}

impl ModuleVisitor for Names {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.found.push((param.id, self.path.name()));
    }
}

/// Every float parameter of `module` with its dotted name (`"dense_0.weight"`), in the
/// module's field order.
///
/// # Examples
/// ```
/// use burn::nn::LinearConfig;
/// use burn::tensor::Device;
///
/// let linear = LinearConfig::new(4, 3).init(&Device::default());
/// let names: Vec<String> =
///     obs_burn::param_names(&linear).into_iter().map(|(_, n)| n.to_string()).collect();
/// assert_eq!(names, ["weight", "bias"]);
/// ```
pub fn param_names<M: Module>(module: &M) -> Vec<(ParamId, Arc<str>)> {
    let mut names = Names::default();
    module.visit(&mut names);
    names.found
}

/// Sums of squares of each parameter's gradient, as one-element tensors on the device.
struct GradSquares<'g> {
    path: Path,
    grads: &'g GradientsParams,
    names: Vec<Arc<str>>,
    sums: Vec<Tensor<1>>,
    /// Norms already computed on the host, by position in `names`.
    host: Vec<(usize, f64)>,
    error: Option<Error>,
}

/// The sum of squares of `t`'s elements, read from host memory (one copy, then one pass with
/// eight `f64` accumulators), for tensors of a CPU backend.
fn host_sum_squares<const D: usize>(name: &str, t: &Tensor<D>) -> Result<f64> {
    let data = t.try_to_data_as::<f32>().map_err(|e| Error::read(name, e))?;
    let v = data.as_slice::<f32>().map_err(|e| Error::read(name, format!("{e:?}")))?;
    Ok(sum_squares(v))
}

fn sum_squares(v: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += f64::from(*x) * f64::from(*x);
        }
    }
    acc.iter().sum::<f64>() + rest.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>()
}

fn diff_squares(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = f64::from(x[i]) - f64::from(y[i]);
            acc[i] += d * d;
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
    acc.iter().sum::<f64>() + tail
}

impl ModuleVisitor for GradSquares<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let name = self.path.name();
            if is_host_device(&g.device()) && g.dtype() != DType::F64 {
                match host_sum_squares(&name, &g) {
                    Ok(sum) => self.host.push((self.names.len(), sum.sqrt())),
                    Err(e) => {
                        self.error.get_or_insert(e);
                    }
                }
            } else {
                self.sums.push(g.powi_scalar(2).sum().reshape([1]));
            }
            self.names.push(name);
        }
    }
}

/// Reads one-element tensors in a single copy (they are concatenated on their device first),
/// and takes the square root of each.
fn roots(name: &str, sums: Vec<Tensor<1>>) -> Result<Vec<f64>> {
    if sums.is_empty() {
        return Ok(Vec::new());
    }
    let all = Tensor::cat(sums, 0);
    let data = all.try_to_data_as::<f64>().map_err(|e| Error::read(name, e))?;
    let values = data.as_slice::<f64>().map_err(|e| Error::read(name, format!("{e:?}")))?;
    Ok(values.iter().map(|s| s.max(0.0).sqrt()).collect())
}

/// The L2 norm of each parameter's gradient in `grads`, by dotted name (parameters without a
/// gradient are left out). On a GPU each norm is reduced on the gradient's device and the
/// scalars come back in one copy; on a CPU backend the gradient is read from host memory and
/// reduced in one pass (burn's tensor ops would allocate a temporary per operation).
///
/// # Errors
/// [`Error::Read`] when burn cannot read the reduced values.
///
/// # Examples
/// ```
/// use burn::nn::LinearConfig;
/// use burn::optim::GradientsParams;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::default().autodiff();
/// let linear = LinearConfig::new(2, 1).init(&device);
/// let x = Tensor::<2>::from_floats([[1.0, 2.0]], &device);
/// let grads = linear.forward(x).sum().backward();
/// let grads = GradientsParams::from_grads(grads, &linear);
/// let norms = obs_burn::grad_norms(&linear, &grads)?;
/// // d(sum)/d(weight) is the input, d(sum)/d(bias) is 1.
/// assert_eq!(&*norms[0].0, "weight");
/// assert!((norms[0].1 - 5f64.sqrt()).abs() < 1e-6);
/// assert!((norms[1].1 - 1.0).abs() < 1e-6);
/// # Ok::<(), obs_burn::Error>(())
/// ```
pub fn grad_norms<M: Module>(module: &M, grads: &GradientsParams) -> Result<Vec<(Arc<str>, f64)>> {
    let mut visitor = GradSquares {
        path: Path::default(),
        grads,
        names: Vec::new(),
        sums: Vec::new(),
        host: Vec::new(),
        error: None,
    };
    module.visit(&mut visitor);
    if let Some(e) = visitor.error {
        return Err(e);
    }
    let mut device = roots("gradients", visitor.sums)?.into_iter();
    let mut host = visitor.host.into_iter().peekable();
    let mut out = Vec::with_capacity(visitor.names.len());
    for (i, name) in visitor.names.into_iter().enumerate() {
        let norm = match host.peek() {
            Some((j, n)) if *j == i => {
                let n = *n;
                host.next();
                n
            }
            _ => device.next().unwrap_or(f64::NAN),
        };
        out.push((name, norm));
    }
    Ok(out)
}

/// The parameters of a module before an optimiser step, to measure the step's update.
///
/// burn's optimisers return a new module and leave the old tensors alone, so a snapshot holds
/// handles to the parameters, not copies: taking one costs nothing, but it keeps the old
/// values alive (one extra set of weights in memory) until [`ParamSnapshot::update_norms`]
/// has run and the snapshot is dropped.
#[derive(Debug, Default)]
pub struct ParamSnapshot {
    params: HashMap<ParamId, SavedParam>,
    order: Vec<ParamId>,
}

#[derive(Debug)]
struct SavedParam {
    name: Arc<str>,
    dims: Vec<usize>,
    flat: Tensor<1>,
}

struct Take<'s> {
    path: Path,
    snapshot: &'s mut ParamSnapshot,
}

impl ModuleVisitor for Take<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().without_autodiff();
        let dims = value.dims().to_vec();
        let flat = value.flatten::<1>(0, D.saturating_sub(1));
        self.snapshot.order.push(param.id);
        self.snapshot.params.insert(param.id, SavedParam { name: self.path.name(), dims, flat });
    }
}

struct UpdateSquares<'s> {
    snapshot: &'s ParamSnapshot,
    found: Vec<(ParamId, Tensor<1>)>,
    host: Vec<(ParamId, f64)>,
    mismatched: Option<Arc<str>>,
    error: Option<Error>,
}

impl ModuleVisitor for UpdateSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(saved) = self.snapshot.params.get(&param.id) else { return };
        let after = param.val().without_autodiff();
        if after.dims().as_slice() != saved.dims.as_slice() {
            self.mismatched.get_or_insert_with(|| Arc::clone(&saved.name));
            return;
        }
        let after = after.flatten::<1>(0, D.saturating_sub(1));
        let device = after.device();
        if is_host_device(&device)
            && is_host_device(&saved.flat.device())
            && after.dtype() != DType::F64
        {
            let read =
                |t: &Tensor<1>| t.try_to_data_as::<f32>().map_err(|e| Error::read(&saved.name, e));
            let result = read(&after).and_then(|a| {
                let b = read(&saved.flat)?;
                let (a, b) = (a.as_slice::<f32>(), b.as_slice::<f32>());
                match (a, b) {
                    (Ok(a), Ok(b)) => Ok(diff_squares(a, b)),
                    _ => Err(Error::read(&saved.name, "not f32 data")),
                }
            });
            match result {
                Ok(sum) => self.host.push((param.id, sum.sqrt())),
                Err(e) => {
                    self.error.get_or_insert(e);
                }
            }
            return;
        }
        let before = saved.flat.clone().to_device(&device);
        self.found.push((param.id, (after - before).powi_scalar(2).sum().reshape([1])));
    }
}

impl ParamSnapshot {
    /// Takes a snapshot of every float parameter of `module`.
    pub fn take<M: Module>(module: &M) -> Self {
        let mut snapshot = ParamSnapshot::default();
        module.visit(&mut Take { path: Path::default(), snapshot: &mut snapshot });
        snapshot
    }

    /// How many parameters it holds.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The L2 norm of each parameter's change between the snapshot and `after` (the module
    /// the optimiser returned), by dotted name in the snapshot's order. On a GPU each
    /// difference is reduced on its device and the scalars come back in one copy; on a CPU
    /// backend both values are read from host memory and reduced in one fused pass. Parameters of `after` that
    /// the snapshot does not hold are left out.
    ///
    /// # Errors
    /// [`Error::Order`] when a parameter changed shape (the snapshot is of another model);
    /// [`Error::Read`] when burn cannot read the reduced values.
    ///
    /// # Examples
    /// ```
    /// use burn::nn::LinearConfig;
    /// use burn::tensor::Device;
    /// use obs_burn::ParamSnapshot;
    ///
    /// let before = LinearConfig::new(2, 2).init(&Device::default());
    /// let snapshot = ParamSnapshot::take(&before);
    /// let norms = snapshot.update_norms(&before)?; // nothing changed
    /// assert_eq!(norms.len(), 2);
    /// assert!(norms.iter().all(|(_, n)| *n == 0.0));
    /// # Ok::<(), obs_burn::Error>(())
    /// ```
    pub fn update_norms<M: Module>(&self, after: &M) -> Result<Vec<(Arc<str>, f64)>> {
        let mut visitor = UpdateSquares {
            snapshot: self,
            found: Vec::new(),
            host: Vec::new(),
            mismatched: None,
            error: None,
        };
        after.visit(&mut visitor);
        if let Some(e) = visitor.error {
            return Err(e);
        }
        if visitor.mismatched.is_some() {
            return Err(Error::Order(
                "a parameter changed shape since the snapshot: take the snapshot of the model \
                 the optimiser steps",
            ));
        }
        let (ids, sums): (Vec<ParamId>, Vec<Tensor<1>>) = visitor.found.into_iter().unzip();
        let norms = roots("updates", sums)?;
        let mut by_id: HashMap<ParamId, f64> = ids.into_iter().zip(norms).collect();
        by_id.extend(visitor.host);
        Ok(self
            .order
            .iter()
            .filter_map(|id| {
                let norm = by_id.get(id)?;
                Some((Arc::clone(&self.params.get(id)?.name), *norm))
            })
            .collect())
    }
}
