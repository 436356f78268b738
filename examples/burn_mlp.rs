//! A burn MLP trained by burn's `Learner` on Fisher's Iris data, observed end to end by
//! `obs_burn::Session`: burn's metrics go through Observatory's `MetricLogger`, the model's
//! probe adds layer outputs, gradient norms and update norms to each step, and the run writes
//! the same files as `obs demo` (tiered logs, fingerprint, dashboard, TensorBoard and W&B).
//!
//! Run with `cargo run -p obs-examples --example burn_mlp [-- DIR]` (default
//! `training_logs/burn_mlp`). Each run writes a fresh `run-*` directory inside DIR.
//!
//! The data is Fisher's Iris table as obs-testkit ships it (150 flowers, 4 standardised
//! measurements, 3 species; see `crates/obs-testkit/README.md`): every fifth flower
//! validates, the other 120 train.

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
};
use obs_burn::{ParamSnapshot, Probe, QuietRenderer, Session};
use obs_core::{Activation, data};

const EPOCHS: usize = 15;
const BATCH: usize = 16;
const HIDDEN: usize = 32;
const LEARNING_RATE: f64 = 0.01;

/// One flower: its four measurements (standardised) and its species.
#[derive(Clone, Debug)]
struct Flower {
    x: [f32; 4],
    y: i64,
}

/// The flowers in file order, each measurement standardised over the table.
fn load_iris() -> anyhow::Result<Vec<Flower>> {
    let rows = obs_testkit::Dataset::Iris.rows().ok_or_else(|| anyhow::anyhow!("no Iris table"))?;
    let measurements = rows.x.as_chunks::<4>().0;
    Ok(measurements.iter().zip(&rows.y).map(|(x, &y)| Flower { x: *x, y: y as i64 }).collect())
}

#[derive(Clone, Debug)]
struct FlowerBatch {
    x: Tensor<2>,
    y: Tensor<1, Int>,
}

#[derive(Clone, Debug)]
struct FlowerBatcher;

impl Batcher<Flower, FlowerBatch> for FlowerBatcher {
    fn batch(&self, items: Vec<Flower>, device: &Device) -> FlowerBatch {
        let n = items.len();
        let x: Vec<f32> = items.iter().flat_map(|f| f.x).collect();
        let y: Vec<i64> = items.iter().map(|f| f.y).collect();
        FlowerBatch {
            x: Tensor::from_data(TensorData::new(x, [n, 4]), device),
            y: Tensor::from_data(TensorData::new(y, [n]), device),
        }
    }
}

/// A 4-32-32-3 ReLU MLP holding the session's probe (skipped by burn's module machinery).
#[derive(Module, Debug)]
struct Mlp {
    dense_0: Linear,
    dense_1: Linear,
    out: Linear,
    #[module(skip)]
    probe: Probe,
}

impl Mlp {
    fn new(device: &Device, probe: Probe) -> Self {
        Mlp {
            dense_0: LinearConfig::new(4, HIDDEN).init(device),
            dense_1: LinearConfig::new(HIDDEN, HIDDEN).init(device),
            out: LinearConfig::new(HIDDEN, 3).init(device),
            probe,
        }
    }

    /// The logits; in training, the hidden layers' outputs go to the probe.
    fn classify(&self, batch: FlowerBatch, training: bool) -> ClassificationOutput {
        let h0 = relu(self.dense_0.forward(batch.x));
        let h1 = relu(self.dense_1.forward(h0.clone()));
        if training {
            for (i, (name, h)) in [("dense_0", &h0), ("dense_1", &h1)].into_iter().enumerate() {
                if let Err(e) = self.probe.layer(i, name, h, Activation::Relu) {
                    eprintln!("observing {name}: {e}");
                }
            }
        }
        let logits = self.out.forward(h1);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.y.clone());
        ClassificationOutput { loss, output: logits, targets: batch.y }
    }
}

impl TrainStep for Mlp {
    type Input = FlowerBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: FlowerBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.classify(batch, true);
        let grads = GradientsParams::from_grads(item.loss.backward(), self);
        if let Err(e) = self.probe.gradients(self, &grads) {
            eprintln!("gradient norms: {e}");
        }
        TrainOutput { grads, item }
    }

    /// burn's optimiser step, with the update of every parameter measured around it.
    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        let before = ParamSnapshot::take(&self);
        let after = optim.step(lr, self, grads);
        if let Err(e) = after.probe.updates(&before, &after) {
            eprintln!("update norms: {e}");
        }
        after
    }
}

impl InferenceStep for Mlp {
    type Input = FlowerBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: FlowerBatch) -> ClassificationOutput {
        self.classify(batch, false)
    }
}

fn main() -> anyhow::Result<()> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "training_logs/burn_mlp".to_owned());
    let device = Device::flex();
    device.seed(42);
    let train_device = device.clone().autodiff();

    let session = Session::builder()
        .out_dir(&out)
        .run_name("burn_mlp")
        .epochs(EPOCHS as u64)
        .model_info(data! { "layers" => "4-32-32-3 ReLU MLP", "framework" => "burn" })
        .hyperparameters(data! {
            "optimizer" => "adam", "learning_rate" => LEARNING_RATE, "batch_size" => BATCH as u64,
        })
        .seed("burn", 42)
        .build(&train_device)?;
    if let Some(fp) = session.fingerprint() {
        eprintln!("{}", fp.format_text().trim_end());
    }

    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for (i, f) in load_iris()?.into_iter().enumerate() {
        if i % 5 == 4 { valid.push(f) } else { train.push(f) }
    }
    let train_loader = DataLoaderBuilder::new(FlowerBatcher)
        .batch_size(BATCH)
        .shuffle(42)
        .set_device(train_device.clone())
        .build(InMemDataset::new(train));
    let valid_loader = DataLoaderBuilder::new(FlowerBatcher)
        .batch_size(valid.len())
        .set_device(device.clone())
        .build(InMemDataset::new(valid));

    let artifacts = tempfile::tempdir()?;
    let model = Mlp::new(&train_device, session.probe());
    let learner = Learner::new(model, AdamConfig::new().init(), LEARNING_RATE);
    SupervisedTraining::new(artifacts.path(), train_loader, valid_loader)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_valid_numeric(AccuracyMetric::new())
        .with_metric_logger(session.metric_logger())
        .with_application_logger(None)
        .renderer(Box::new(QuietRenderer))
        .num_epochs(EPOCHS)
        .launch(learner);

    let report = session.finish(&[])?;
    for epoch in &report.epochs {
        eprintln!(
            "epoch {:>2}: val_loss {:.4}{}",
            epoch.epoch,
            epoch.val_loss.unwrap_or(f64::NAN),
            if epoch.warnings.is_empty() { "" } else { " (warnings)" }
        );
        for w in &epoch.warnings {
            eprintln!("  [{}] {}: {}", w.severity.as_str(), w.rule_name, w.message);
        }
    }
    for step in report.steps.iter().filter(|s| !s.warnings.is_empty()) {
        for w in &step.warnings {
            eprintln!(
                "  step {}: [{}] {}: {}",
                step.batch,
                w.severity.as_str(),
                w.rule_name,
                w.message
            );
        }
    }
    for e in &report.errors {
        eprintln!("not recorded: {e}");
    }
    eprintln!(
        "{} steps ({} with layer statistics on the host), {} warnings, {} anomalies",
        report.steps.len(),
        report.host_steps,
        report.health.total_warnings,
        report.anomalies.total
    );
    if let Some(paths) = &report.paths {
        eprintln!("Run directory: {}", paths.run_dir.display());
        for (what, path) in [
            ("dashboard", &paths.dashboard),
            ("tensorboard", &paths.tensorboard),
            ("wandb", &paths.wandb),
        ] {
            if let Some(p) = path {
                eprintln!("  {what:<12} {}", p.display());
            }
        }
    }
    anyhow::ensure!(
        report.errors.is_empty(),
        "{} metrics could not be recorded",
        report.errors.len()
    );
    Ok(())
}
