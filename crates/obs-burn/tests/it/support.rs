//! Real burn training for the tests: Fisher's Iris data, an MLP that holds the session's
//! probe, and burn's `Learner` on the Flex CPU backend.

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::module::{Module, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, MetricEarlyStoppingStrategy, StoppingCondition,
    SupervisedTraining, TrainOutput, TrainStep,
};
use obs_burn::{ParamSnapshot, Probe, QuietRenderer, RunReport, Session};
use obs_core::Activation;

/// One Iris flower: standardised features and the class.
#[derive(Clone, Debug)]
pub(crate) struct Flower {
    x: [f32; 4],
    y: i64,
}

/// Iris as standardised flowers, in file order.
pub(crate) fn iris() -> Vec<Flower> {
    let rows = obs_testkit::Dataset::Iris.rows().expect("a real table");
    let flowers: Vec<Flower> = rows
        .x
        .as_chunks::<4>()
        .0
        .iter()
        .zip(&rows.y)
        .map(|(x, &y)| Flower { x: *x, y: y as i64 })
        .collect();
    assert_eq!(flowers.len(), 150);
    flowers
}

/// Every fifth flower is held out for validation (10 of each class).
pub(crate) fn split() -> (Vec<Flower>, Vec<Flower>) {
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for (i, f) in iris().into_iter().enumerate() {
        if i % 5 == 4 { valid.push(f) } else { train.push(f) }
    }
    (train, valid)
}

/// A batch of flowers on a device.
#[derive(Clone, Debug)]
pub(crate) struct FlowerBatch {
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

/// A 4-16-16-3 ReLU MLP that reports to the session's probe from its training step.
#[derive(Module, Debug)]
pub(crate) struct Mlp {
    dense_0: Linear,
    dense_1: Linear,
    out: Linear,
    #[module(skip)]
    probe: Option<Probe>,
}

fn with_bias(linear: Linear, bias: f32, device: &Device) -> Linear {
    let units = linear.weight.dims()[1];
    Linear { bias: Some(Param::from_tensor(Tensor::full([units], bias, device))), ..linear }
}

impl Mlp {
    pub(crate) fn new(device: &Device, bias: Option<f32>, probe: Option<Probe>) -> Self {
        let layer = |i, o| {
            let l = LinearConfig::new(i, o).init(device);
            match bias {
                Some(b) => with_bias(l, b, device),
                None => l,
            }
        };
        Mlp {
            dense_0: layer(4, 16),
            dense_1: layer(16, 16),
            out: LinearConfig::new(16, 3).init(device),
            probe,
        }
    }

    fn forward(&self, x: Tensor<2>, observe: bool) -> Tensor<2> {
        let h0 = relu(self.dense_0.forward(x));
        let h1 = relu(self.dense_1.forward(h0.clone()));
        if observe && let Some(p) = &self.probe {
            p.layer(0, "dense_0", &h0, Activation::Relu).expect("observing dense_0");
            p.layer(1, "dense_1", &h1, Activation::Relu).expect("observing dense_1");
        }
        self.out.forward(h1)
    }

    fn classify(&self, batch: FlowerBatch, observe: bool) -> ClassificationOutput {
        let logits = self.forward(batch.x, observe);
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
        if let Some(p) = &self.probe {
            p.gradients(self, &grads).expect("gradient norms");
        }
        TrainOutput { grads, item }
    }

    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        let probe = self.probe.clone();
        let before = probe.as_ref().map(|_| ParamSnapshot::take(&self));
        let after = optim.step(lr, self, grads);
        if let (Some(p), Some(before)) = (probe, before) {
            p.updates(&before, &after).expect("update norms");
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

/// The optimiser of a run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Opt {
    Adam,
    Sgd,
}

/// One training run's settings.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub(crate) epochs: usize,
    pub(crate) batch_size: usize,
    pub(crate) lr: f64,
    pub(crate) optimizer: Opt,
    pub(crate) bias: Option<f32>,
    pub(crate) probe: bool,
    pub(crate) out_dir: Option<std::path::PathBuf>,
    /// Stop when the validation loss has not improved for this many epochs (burn's
    /// `MetricEarlyStoppingStrategy`, which reads the values back from the logger).
    pub(crate) early_stopping: Option<usize>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            epochs: 30,
            batch_size: 16,
            lr: 1e-2,
            optimizer: Opt::Adam,
            bias: None,
            probe: true,
            out_dir: None,
            early_stopping: None,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) report: RunReport,
    pub(crate) val_accuracy: f64,
}

impl Outcome {
    pub(crate) fn first_non_finite_loss(&self) -> Option<usize> {
        self.report.steps.iter().position(|s| s.loss.is_some_and(|l| !l.is_finite()))
    }

    pub(crate) fn first_warning(&self, rule: &str) -> Option<usize> {
        self.report.steps.iter().position(|s| s.warnings.iter().any(|w| w.rule_name == rule))
    }

    pub(crate) fn warning_rules(&self) -> Vec<String> {
        let mut rules: Vec<String> = self
            .report
            .steps
            .iter()
            .flat_map(|s| s.warnings.iter().map(|w| w.rule_name.clone()))
            .chain(
                self.report
                    .epochs
                    .iter()
                    .flat_map(|e| e.warnings.iter().map(|w| w.rule_name.clone())),
            )
            .collect();
        rules.dedup();
        rules
    }
}

/// Trains the MLP on Iris with burn's `Learner`, observed by a session.
pub(crate) fn train(spec: &Spec) -> Result<Outcome, Box<dyn std::error::Error>> {
    let device = Device::flex();
    device.seed(7);
    let train_device = device.clone().autodiff();
    let mut builder = Session::builder()
        .epochs(spec.epochs as u64)
        .fingerprint(spec.out_dir.is_some())
        .git(false);
    if let Some(out) = &spec.out_dir {
        builder = builder.out_dir(out);
    }
    let session = builder.build(&train_device)?;
    let probe = spec.probe.then(|| session.probe());
    let model = Mlp::new(&train_device, spec.bias, probe);

    let (train, valid) = split();
    let train_loader = DataLoaderBuilder::new(FlowerBatcher)
        .batch_size(spec.batch_size)
        .shuffle(3)
        .set_device(train_device.clone())
        .build(InMemDataset::new(train));
    let valid_loader = DataLoaderBuilder::new(FlowerBatcher)
        .batch_size(30)
        .set_device(device.clone())
        .build(InMemDataset::new(valid.clone()));
    let optim = match spec.optimizer {
        Opt::Adam => AdamConfig::new().init(),
        Opt::Sgd => SgdConfig::new().init(),
    };
    let artifacts = tempfile::tempdir()?;
    let mut training = SupervisedTraining::new(artifacts.path(), train_loader, valid_loader)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_valid_numeric(AccuracyMetric::new())
        .with_metric_logger(session.metric_logger())
        .with_application_logger(None)
        .renderer(Box::new(QuietRenderer))
        .num_epochs(spec.epochs);
    if let Some(n_epochs) = spec.early_stopping {
        training = training.early_stopping(MetricEarlyStoppingStrategy::new(
            &LossMetric::new(),
            Aggregate::Mean,
            Direction::Lowest,
            Split::Valid,
            StoppingCondition::NoImprovementSince { n_epochs },
        ));
    }
    let result = training.launch(Learner::new(model, optim, spec.lr));

    // Accuracy of the trained model on the held-out flowers.
    let model = result.model;
    let batch = FlowerBatcher.batch(valid, &device);
    let predicted = model.forward(batch.x, false).argmax(1).flatten::<1>(0, 1);
    let correct: i64 = predicted.equal(batch.y).int().sum().into_scalar();
    let report = session.finish(&[])?;
    Ok(Outcome { report, val_accuracy: correct as f64 / 30.0 })
}
