//! obs-candle: what observing a candle training step costs.
//!
//! Group `candle_step_mlp_2x256_batch128`: one AdamW training step (forward, cross-entropy,
//! backward, optimiser step) of a 64 -> 256 -> 256 -> 10 ReLU MLP on a batch of 128, on candle's
//! CPU device, three ways:
//! - `unobserved`: the step alone;
//! - `scalars`: through `Session::step` with `HostCopy::never()` and no observed layer: loss,
//!   gradient norms and update norms reduced on the device (plus the variable snapshot the
//!   update norms need), fed to the adaptive logger, the health rules and the summarizer,
//!   with tiered storage attached;
//! - `activations`: as `scalars`, and both hidden layers observed with `HostCopy::always()`,
//!   so every batch their outputs and the weights go through the statistics kernel on
//!   borrowed host memory.
//!
//! The three models start from the same weights and train in lockstep: every iteration runs
//! one step of each (in an order that rotates), and each bench reports only its own third. Criterion measures the three
//! functions one after the other, so on a shared machine their windows see different loads;
//! the bench therefore also keeps every lockstep iteration's three times and prints, after the
//! group, the median of each and the median of the per-iteration ratios: those ratios come
//! from steps run side by side and are the figures to compare.
//!
//! Group `host_stats_f32`: the statistics of one tensor already in host memory, for a
//! (128, 256) layer output and a (256, 4096) one. `kernel` is `obs_core::tensor_stats` on a
//! plain slice; `host_stats` is `obs_candle::host_stats` on a candle tensor holding the same
//! values (checks, the storage read lock, the borrowed view, the kernel). Interleaved the same
//! way, with the same printed medians.
//!
//! Targets (issue 12): `scalars` at most 5% slower than `unobserved`; `host_stats` at most 1.5x
//! `kernel`. Run: `cargo bench -p obs-benches --bench candle`. Figures: docs/performance.md.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use criterion::{Criterion, criterion_group, criterion_main};
use obs_benches::values;
use obs_candle::{HostCopy, LayerTap, Observed, Session, host_stats};
use obs_core::{Activation, TensorView, tensor_stats};

const INPUTS: usize = 64;
const HIDDEN: usize = 256;
const CLASSES: usize = 10;
const BATCH: usize = 128;
const BATCHES: usize = 16;

/// A linear layer and its ReLU.
struct DenseRelu(Linear);

impl Module for DenseRelu {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.0.forward(x)?.relu()
    }
}

struct Model {
    varmap: VarMap,
    hidden: Vec<Observed<DenseRelu>>,
    output: Linear,
}

impl Model {
    /// The MLP with fixed starting weights, its hidden layers on `tap`.
    fn new(tap: &LayerTap, device: &Device) -> candle_core::Result<Model> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let mut hidden = Vec::new();
        let mut fan_in = INPUTS;
        for i in 0..2 {
            let name = format!("dense_{i}");
            let linear = candle_nn::linear(fan_in, HIDDEN, vb.pp(&name))?;
            hidden.push(Observed::new(i, &name, Activation::Relu, DenseRelu(linear), tap));
            fan_in = HIDDEN;
        }
        let output = candle_nn::linear(HIDDEN, CLASSES, vb.pp("dense_2"))?;
        // The same starting weights for every model.
        let data = varmap.data().lock().expect("varmap");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for (k, name) in names.into_iter().enumerate() {
            let var = &data[name];
            let n = var.elem_count();
            let scale =
                if name.ends_with("weight") { (3.0 / var.dims()[1] as f32).sqrt() } else { 0.0 };
            let v: Vec<f32> = values(n, 17 + k as u64).into_iter().map(|x| x * scale).collect();
            var.set(&Tensor::from_vec(v, var.dims(), device)?)?;
        }
        drop(data);
        Ok(Model { varmap, hidden, output })
    }

    fn loss(&self, x: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.hidden {
            h = layer.forward(&h)?;
        }
        candle_nn::loss::cross_entropy(&self.output.forward(&h)?, y)
    }

    fn optimizer(&self) -> candle_core::Result<AdamW> {
        AdamW::new(self.varmap.all_vars(), ParamsAdamW { lr: 1e-3, ..Default::default() })
    }
}

fn session(
    model_tap: &LayerTap,
    varmap: &VarMap,
    policy: HostCopy,
    dir: &std::path::Path,
) -> Session {
    let mut s = Session::builder()
        .out_dir(dir)
        .dashboard(false)
        .tensorboard(false)
        .wandb(None)
        .fingerprint(false)
        .host_copy(policy)
        .device_stats(false)
        .varmap(varmap)
        .tap(model_tap)
        .build(&Device::Cpu)
        .expect("session");
    s.train_start(1);
    s.epoch_start(0);
    s
}

fn training_step(c: &mut Criterion) {
    let device = Device::Cpu;
    let data: Vec<(Tensor, Tensor)> = (0..BATCHES)
        .map(|b| {
            let x =
                Tensor::from_vec(values(BATCH * INPUTS, 1000 + b as u64), (BATCH, INPUTS), &device);
            let y: Vec<u32> = values(BATCH, 2000 + b as u64)
                .iter()
                .map(|v| ((v + 1.0) * 5.0) as u32 % 10)
                .collect();
            (x.expect("x"), Tensor::new(y, &device).expect("y"))
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");

    // Unobserved: a tap nobody arms records nothing.
    let plain = Model::new(&LayerTap::new(), &device).expect("model");
    let mut plain_opt = plain.optimizer().expect("adamw");
    // Scalars only: the layers' tap is not the session's, so no layer output is observed.
    let scalars = Model::new(&LayerTap::new(), &device).expect("model");
    let mut scalars_opt = scalars.optimizer().expect("adamw");
    let mut scalars_session =
        session(&LayerTap::new(), &scalars.varmap, HostCopy::never(), &dir.path().join("s"));
    // Activation statistics every batch.
    let tap = LayerTap::new();
    let observed = Model::new(&tap, &device).expect("model");
    let mut observed_opt = observed.optimizer().expect("adamw");
    let mut observed_session =
        session(&tap, &observed.varmap, HostCopy::always(), &dir.path().join("a"));

    let mut batch = 0u64;
    let samples: RefCell<Vec<[Duration; 3]>> = RefCell::new(Vec::new());
    let mut lockstep = |iters: u64, which: usize| {
        let mut t = [Duration::ZERO; 3];
        for _ in 0..iters {
            let (x, y) = &data[batch as usize % BATCHES];
            // The order rotates every iteration, so no variant always runs first.
            let mut d = [Duration::ZERO; 3];
            for k in 0..3 {
                let variant = (batch as usize + k) % 3;
                let start = Instant::now();
                match variant {
                    0 => {
                        let loss = plain.loss(x, y).expect("loss");
                        plain_opt.backward_step(&loss).expect("step");
                    }
                    1 => {
                        scalars_session.batch_start(batch);
                        let loss = scalars.loss(x, y).expect("loss");
                        black_box(scalars_session.step(&mut scalars_opt, &loss).expect("step"));
                    }
                    _ => {
                        observed_session.batch_start(batch);
                        let loss = observed.loss(x, y).expect("loss");
                        let report = observed_session.step(&mut observed_opt, &loss).expect("step");
                        assert_eq!(report.activations.len(), 2);
                    }
                }
                d[variant] = start.elapsed();
            }
            batch += 1;
            samples.borrow_mut().push(d);
            for (total, one) in t.iter_mut().zip(d) {
                *total += one;
            }
        }
        t[which]
    };
    let mut group = c.benchmark_group("candle_step_mlp_2x256_batch128");
    group.bench_function("unobserved", |b| b.iter_custom(|n| lockstep(n, 0)));
    group.bench_function("scalars", |b| b.iter_custom(|n| lockstep(n, 1)));
    group.bench_function("activations", |b| b.iter_custom(|n| lockstep(n, 2)));
    group.finish();
    report_lockstep("candle step", &["unobserved", "scalars", "activations"], &samples.borrow());
    let anomalies = observed_session.adaptive().get_anomaly_summary();
    eprintln!(
        "observed run: {} anomalies, escalated batches {}",
        anomalies.total, anomalies.escalated_batches
    );
}

fn host_tensor_stats(c: &mut Criterion) {
    let mut group = c.benchmark_group("host_stats_f32");
    for (rows, units) in [(BATCH, HIDDEN), (256, 4096)] {
        let data: Vec<f32> = values(rows * units, 99).into_iter().map(|v| v.max(0.0)).collect();
        let shape = [rows, units];
        let view = TensorView::new(&data, &shape).expect("shape");
        let tensor = Tensor::from_vec(data.clone(), (rows, units), &Device::Cpu).expect("tensor");
        assert_eq!(
            host_stats("dense_0", &tensor, Activation::Relu).expect("stats"),
            tensor_stats(view, Activation::Relu)
        );
        let samples: RefCell<Vec<[Duration; 2]>> = RefCell::new(Vec::new());
        let interleaved = |iters: u64, which: usize| {
            let mut t = [Duration::ZERO; 2];
            for _ in 0..iters {
                let t0 = Instant::now();
                black_box(tensor_stats(black_box(view), Activation::Relu));
                let t1 = Instant::now();
                black_box(host_stats("dense_0", black_box(&tensor), Activation::Relu).ok());
                let t2 = Instant::now();
                samples.borrow_mut().push([t1 - t0, t2 - t1]);
                t[0] += t1 - t0;
                t[1] += t2 - t1;
            }
            t[which]
        };
        group.bench_function(format!("kernel/{rows}x{units}"), |b| {
            b.iter_custom(|n| interleaved(n, 0))
        });
        group.bench_function(format!("host_stats/{rows}x{units}"), |b| {
            b.iter_custom(|n| interleaved(n, 1))
        });
        report_lockstep(
            &format!("host stats {rows}x{units}"),
            &["kernel", "host_stats"],
            &samples.borrow(),
        );
    }
    group.finish();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

/// Prints the median time of each column and the median of each column's per-iteration ratio
/// to the first column, over every iteration run side by side.
fn report_lockstep<const N: usize>(what: &str, names: &[&str; N], samples: &[[Duration; N]]) {
    let mut line = format!("{what}, {} iterations side by side:", samples.len());
    for (i, name) in names.iter().enumerate() {
        let t = median(samples.iter().map(|s| s[i].as_secs_f64()).collect());
        let r = median(samples.iter().map(|s| s[i].as_secs_f64() / s[0].as_secs_f64()).collect());
        line.push_str(&format!(" {name} {:.1} us ({r:.3}x)", t * 1e6));
    }
    eprintln!("{line}");
}

criterion_group!(benches, training_step, host_tensor_stats);
criterion_main!(benches);
