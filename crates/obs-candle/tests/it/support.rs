//! Real candle training for the tests: Fisher's Iris data, a deterministic MLP, one loop.

use std::path::PathBuf;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW, SGD, VarBuilder, VarMap};
use obs_candle::{EpochReport, HostCopy, LayerTap, Observed, RunReport, Session, StepReport};
use obs_core::Activation;

/// Iris as standardised features (150 x 4, row-major) and class indices, in file order.
pub(crate) fn iris() -> (Vec<f32>, Vec<u32>) {
    let rows = obs_testkit::Dataset::Iris.rows().expect("a real table");
    (rows.x, rows.y.into_iter().map(|c| c as u32).collect())
}

/// SplitMix64: a small deterministic generator (candle's CPU generator cannot be seeded).
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub(crate) fn symmetric(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// A linear layer followed by its activation.
#[derive(Clone, Debug)]
pub(crate) struct Dense {
    linear: Linear,
    activation: Activation,
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let z = self.linear.forward(x)?;
        match self.activation {
            Activation::Relu => z.relu(),
            Activation::Tanh => z.tanh(),
            Activation::Sigmoid => candle_nn::ops::sigmoid(&z),
            _ => Ok(z),
        }
    }
}

/// Observed hidden layers, then a plain linear output layer.
#[derive(Debug)]
pub(crate) struct Mlp {
    pub(crate) hidden: Vec<Observed<Dense>>,
    pub(crate) output: Linear,
}

impl Mlp {
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.hidden {
            h = layer.forward(&h)?;
        }
        self.output.forward(&h)
    }
}

/// Builds the model in `varmap`, then overwrites candle's random initial values with
/// deterministic Glorot-uniform weights and `bias` in every hidden bias (output bias 0).
pub(crate) fn mlp(
    varmap: &VarMap,
    spec: &Spec,
    inputs: usize,
    classes: usize,
    tap: &LayerTap,
) -> candle_core::Result<Mlp> {
    let vb = VarBuilder::from_varmap(varmap, spec.dtype, &spec.device);
    let mut hidden = Vec::new();
    let mut fan_in = inputs;
    for (i, &(units, activation)) in spec.hidden.iter().enumerate() {
        let name = format!("dense_{i}");
        let linear = candle_nn::linear(fan_in, units, vb.pp(&name))?;
        hidden.push(Observed::new(i, &name, activation, Dense { linear, activation }, tap));
        fan_in = units;
    }
    let output = candle_nn::linear(fan_in, classes, vb.pp(format!("dense_{}", spec.hidden.len())))?;
    let out_bias = format!("dense_{}.bias", spec.hidden.len());
    let mut rng = Rng::new(spec.seed);
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let values: Vec<f64> = if name.ends_with(".weight") {
            let limit = (6.0 / (dims[0] + dims[1]) as f64).sqrt();
            (0..n).map(|_| rng.symmetric() * limit).collect()
        } else if *name == out_bias {
            vec![0.0; n]
        } else {
            vec![spec.bias; n]
        };
        let t = Tensor::from_vec(values, dims, &spec.device)?.to_dtype(spec.dtype)?;
        var.set(&t)?;
    }
    drop(data);
    Ok(Mlp { hidden, output })
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Opt {
    AdamW,
    Sgd,
}

/// One training run.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub(crate) hidden: Vec<(usize, Activation)>,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
    pub(crate) optimizer: Opt,
    pub(crate) lr: f64,
    pub(crate) batch_size: usize,
    pub(crate) epochs: u64,
    pub(crate) bias: f64,
    pub(crate) seed: u64,
    pub(crate) host_copy: HostCopy,
    pub(crate) out_dir: Option<PathBuf>,
    /// Stop after the first non-finite batch loss.
    pub(crate) stop_at_non_finite: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            hidden: vec![(16, Activation::Relu), (16, Activation::Relu)],
            dtype: DType::F32,
            device: Device::Cpu,
            optimizer: Opt::AdamW,
            lr: 0.01,
            batch_size: 30,
            epochs: 40,
            bias: 0.0,
            seed: 7,
            host_copy: HostCopy::default(),
            out_dir: None,
            stop_at_non_finite: false,
        }
    }
}

/// Everything a run produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) steps: Vec<StepReport>,
    pub(crate) epochs: Vec<EpochReport>,
    pub(crate) report: RunReport,
    pub(crate) val_accuracy: f64,
}

impl Outcome {
    /// The global step index of the first non-finite batch loss.
    pub(crate) fn first_non_finite_loss(&self) -> Option<usize> {
        self.steps.iter().position(|s| !s.loss.is_finite())
    }

    /// The global step index of the first health warning of `rule`.
    pub(crate) fn first_warning(&self, rule: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.warnings.iter().any(|w| w.rule_name == rule))
    }

    pub(crate) fn warning_rules(&self) -> Vec<String> {
        let mut rules: Vec<String> = self
            .steps
            .iter()
            .flat_map(|s| s.warnings.iter().map(|w| w.rule_name.clone()))
            .chain(self.epochs.iter().flat_map(|e| e.warnings.iter().map(|w| w.rule_name.clone())))
            .collect();
        rules.dedup();
        rules
    }
}

fn accuracy(logits: &Tensor, y: &Tensor) -> candle_core::Result<f64> {
    let hits = logits.argmax(D::Minus1)?.eq(y)?.to_dtype(DType::F32)?.mean_all()?;
    Ok(f64::from(hits.to_scalar::<f32>()?))
}

/// Trains `spec` on Iris (120 training rows, 30 validation rows, split by `seed`), observed by
/// a session, and returns every report.
pub(crate) fn train(spec: &Spec) -> Result<Outcome, Box<dyn std::error::Error>> {
    let (x, y) = iris();
    let mut order: Vec<usize> = (0..y.len()).collect();
    Rng::new(spec.seed ^ 0x5eed).shuffle(&mut order);
    let pick = |rows: &[usize]| -> candle_core::Result<(Tensor, Tensor)> {
        let xs: Vec<f32> = rows.iter().flat_map(|&r| x[r * 4..r * 4 + 4].iter().copied()).collect();
        let ys: Vec<u32> = rows.iter().map(|&r| y[r]).collect();
        Ok((
            Tensor::from_vec(xs, (rows.len(), 4), &spec.device)?.to_dtype(spec.dtype)?,
            Tensor::from_vec(ys, rows.len(), &spec.device)?,
        ))
    };
    let (train_rows, val_rows) = order.split_at(120);
    let (x_val, y_val) = pick(val_rows)?;
    let (x_train, _) = pick(train_rows)?;

    let varmap = VarMap::new();
    let mut builder = Session::builder()
        .run_name("obs-candle test")
        .host_copy(spec.host_copy)
        .git(false)
        .seed("init", spec.seed)
        .dataset(&x_train);
    if let Some(dir) = &spec.out_dir {
        builder = builder.out_dir(dir);
    }
    // The model's variables exist once the model is built; the session tracks them.
    let tap = obs_candle::LayerTap::new();
    let model = mlp(&varmap, spec, 4, 3, &tap)?;
    let mut session = builder.varmap(&varmap).tap(&tap).build(&spec.device)?;
    let vars = varmap.all_vars();
    let mut adamw = AdamW::new(vars.clone(), ParamsAdamW { lr: spec.lr, ..Default::default() })?;
    let mut sgd = SGD::new(vars, spec.lr)?;

    let mut steps = Vec::new();
    let mut epochs = Vec::new();
    let mut val_accuracy = 0.0;
    session.train_start(spec.epochs);
    'run: for epoch in 0..spec.epochs {
        session.epoch_start(epoch);
        let mut rows = train_rows.to_vec();
        Rng::new(spec.seed.wrapping_add(epoch)).shuffle(&mut rows);
        let mut losses = Vec::new();
        for (batch, chunk) in rows.chunks(spec.batch_size).enumerate() {
            let (xb, yb) = pick(chunk)?;
            session.batch_start(batch as u64);
            let logits = model.forward(&xb)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &yb)?;
            let acc = accuracy(&logits, &yb)?;
            let report = match spec.optimizer {
                Opt::AdamW => session.step_with(&mut adamw, &loss, &[("accuracy", acc)])?,
                Opt::Sgd => session.step_with(&mut sgd, &loss, &[("accuracy", acc)])?,
            };
            losses.push(report.loss);
            let stop = spec.stop_at_non_finite && !report.loss.is_finite();
            steps.push(report);
            if stop {
                break 'run;
            }
        }
        let train_loss = losses.iter().sum::<f64>() / losses.len() as f64;
        let logits = model.forward(&x_val)?;
        let val_loss = candle_nn::loss::cross_entropy(&logits, &y_val)?;
        let val_loss = f64::from(val_loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
        val_accuracy = accuracy(&logits, &y_val)?;
        epochs.push(session.epoch_end(epoch, train_loss, Some(val_loss), &[])?);
    }
    let report = session.finish(&[("val_accuracy", val_accuracy)])?;
    Ok(Outcome { steps, epochs, report, val_accuracy })
}
