//! obs-burn: what observing a burn training step costs.
//!
//! Group `burn_step_mlp_2x256_batch128`: one Adam training step (forward, cross-entropy,
//! backward, `GradientsParams`, optimiser step, reading the loss) of a 64 -> 256 -> 256 -> 10
//! ReLU MLP on a batch of 128, on burn's Flex CPU backend, four ways:
//! - `unobserved`: the step alone;
//! - `pipeline`: the step and `Session::record_step` with the loss, which feeds the adaptive
//!   logger, the health rules and the summarizer, with tiered storage attached: what the
//!   `Learner`'s `ObservatoryLogger` does per step when the model holds no probe;
//! - `grads`: as `pipeline`, plus the six gradient norms from `GradientsParams`
//!   (`Probe::gradients`);
//! - `scalars`: as `grads`, plus the six update norms around the optimiser step
//!   (`ParamSnapshot` + `Probe::updates`): every scalar the probe measures.
//!
//! The four models start from the same weights and train in lockstep: every iteration runs
//! one step of each (in an order that rotates), and each bench reports only its own quarter.
//! The bench also keeps every lockstep iteration's times and prints, after the group, the
//! median of each and the median of the per-iteration ratios to `unobserved`: those come from
//! steps run side by side and are the figures to compare.
//!
//! Target (issue 15): observed with scalars only at most 5% slower than `unobserved`. Run:
//! `cargo bench -p obs-benches --bench burn`. Figures: docs/performance.md.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use obs_benches::values;
use obs_burn::{HostCopy, ParamSnapshot, Probe, Session};

const INPUTS: usize = 64;
const HIDDEN: usize = 256;
const CLASSES: usize = 10;
const BATCH: usize = 128;
const BATCHES: usize = 16;

#[derive(Module, Debug)]
struct Mlp {
    l0: Linear,
    l1: Linear,
    out: Linear,
}

impl Mlp {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.out.forward(relu(self.l1.forward(relu(self.l0.forward(x)))))
    }
}

/// How much of the observation a run does.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Mode {
    Unobserved,
    Pipeline,
    Grads,
    Scalars,
}

struct Run {
    model: Option<Mlp>,
    optim: ModuleOptimizer,
    mode: Mode,
    session: Session,
    probe: Probe,
    batch: usize,
}

impl Run {
    fn step(&mut self, data: &[(Tensor<2>, Tensor<1, Int>)]) -> f64 {
        let model = self.model.take().expect("a model between steps");
        let (x, y) = data[self.batch % data.len()].clone();
        self.batch += 1;
        let logits = model.forward(x);
        let loss = CrossEntropyLossConfig::new().init(&logits.device()).forward(logits, y);
        let loss_value: f64 = loss.clone().into_scalar::<f32>().into();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        if self.mode >= Mode::Grads {
            self.probe.gradients(&model, &grads).expect("gradient norms");
        }
        let before = (self.mode >= Mode::Scalars).then(|| ParamSnapshot::take(&model));
        let model = self.optim.step(0.001, model, grads);
        if let Some(before) = before {
            self.probe.updates(&before, &model).expect("update norms");
        }
        if self.mode >= Mode::Pipeline {
            self.session.record_step(Some(loss_value), &[]).expect("a step");
        }
        self.model = Some(model);
        loss_value
    }
}

fn bench_step(c: &mut Criterion) {
    let device = Device::flex();
    device.seed(1);
    let train = device.clone().autodiff();
    let model = Mlp {
        l0: LinearConfig::new(INPUTS, HIDDEN).init(&train),
        l1: LinearConfig::new(HIDDEN, HIDDEN).init(&train),
        out: LinearConfig::new(HIDDEN, CLASSES).init(&train),
    };
    let data: Vec<(Tensor<2>, Tensor<1, Int>)> = (0..BATCHES)
        .map(|b| {
            let x = values(BATCH * INPUTS, b as u64 + 7);
            let y: Vec<i64> = (0..BATCH).map(|i| ((i * 7 + b) % CLASSES) as i64).collect();
            (
                Tensor::from_data(TensorData::new(x, [BATCH, INPUTS]), &train),
                Tensor::from_data(TensorData::new(y, [BATCH]), &train),
            )
        })
        .collect();
    let logs = tempfile::tempdir().expect("temp dir");
    let run = |mode| {
        let mut session = Session::builder()
            .out_dir(logs.path())
            .dashboard(false)
            .tensorboard(false)
            .wandb(None)
            .fingerprint(false)
            .host_copy(HostCopy::never())
            .build(&train)
            .expect("a session");
        session.train_start(0);
        session.epoch_start(1);
        let probe = session.probe();
        Run {
            model: Some(model.clone()),
            optim: AdamConfig::new().init(),
            mode,
            session,
            probe,
            batch: 0,
        }
    };
    let runs =
        RefCell::new([Mode::Unobserved, Mode::Pipeline, Mode::Grads, Mode::Scalars].map(run));
    let times: RefCell<Vec<[Duration; 4]>> = RefCell::new(Vec::new());
    let turn = RefCell::new(0usize);
    let lockstep = |which: usize, iters: u64| {
        let mut own = Duration::ZERO;
        let mut runs = runs.borrow_mut();
        for _ in 0..iters {
            let mut t = [Duration::ZERO; 4];
            let first = *turn.borrow();
            *turn.borrow_mut() = (first + 1) % 4;
            for i in (0..4).map(|k| (first + k) % 4) {
                let start = Instant::now();
                black_box(runs[i].step(&data));
                t[i] = start.elapsed();
            }
            own += t[which];
            times.borrow_mut().push(t);
        }
        own
    };
    let mut group = c.benchmark_group("burn_step_mlp_2x256_batch128");
    group.sample_size(20).measurement_time(Duration::from_secs(6));
    group.bench_function("unobserved", |b| b.iter_custom(|iters| lockstep(0, iters)));
    group.bench_function("pipeline", |b| b.iter_custom(|iters| lockstep(1, iters)));
    group.bench_function("grads", |b| b.iter_custom(|iters| lockstep(2, iters)));
    group.bench_function("scalars", |b| b.iter_custom(|iters| lockstep(3, iters)));
    group.finish();

    let times = times.into_inner();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    eprintln!(
        "burn step, {} lockstep iterations (median step, median ratio to unobserved):",
        times.len()
    );
    for (i, name) in ["unobserved", "pipeline", "grads", "scalars"].iter().enumerate() {
        let step = median(times.iter().map(|t| t[i].as_secs_f64()).collect());
        let ratio = median(times.iter().map(|t| t[i].as_secs_f64() / t[0].as_secs_f64()).collect());
        eprintln!("  {name:<10} {:.3} ms  {ratio:.3}x", step * 1e3);
    }
    eprintln!("  target: scalars <= 1.05x");
}

criterion_group!(benches, bench_step);
criterion_main!(benches);
