//! The runs of the benchmark: families of training configurations, each trained with several
//! seeds. A family's `intent` says what it was built to show; the labels never come from it
//! (they come from the run's evidence, see [`crate::oracle`]), and the report flags every run
//! whose evidence disagrees with its intent.

use obs_core::Activation::{self, Linear, Relu, Sigmoid, Tanh};
use obs_testkit::{Corruption, Dataset, Optimizer, RunConfig, Scenario};

/// What a family is meant to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Intent {
    /// A healthy run: no problem at all.
    Healthy,
    /// Units that die on every input.
    DyingRelu,
    /// A loss that blows up to NaN or infinity.
    BlowUp,
    /// Gradient norms above 100 while the loss stays finite.
    Exploding,
    /// Gradients that vanish in a deep sigmoid stack.
    Vanishing,
    /// Validation loss climbing while training loss falls.
    Overfitting,
    /// Weights that never move (learning rate 0).
    ZeroLearningRate,
    /// A loss that stays at its initial level, with batch noise.
    Plateau,
    /// Saturated tanh or sigmoid units.
    Saturation,
    /// One corrupted batch in a healthy run.
    CorruptedBatch,
}

/// Which seeds a run belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    /// Seeds the thresholds were calibrated on.
    Calibration,
    /// Seeds kept out of calibration; the targets are judged on these.
    HeldOut,
}

impl Split {
    /// `"calibration"` or `"held-out"`.
    pub const fn name(self) -> &'static str {
        match self {
            Split::Calibration => "calibration",
            Split::HeldOut => "held-out",
        }
    }
}

/// Seeds of the calibration split.
pub const CALIBRATION_SEEDS: [u64; 3] = [1, 2, 3];
/// Seeds of the held-out split.
pub const HELD_OUT_SEEDS: [u64; 3] = [101, 102, 103];

/// A family of runs: one configuration, several seeds.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// Short unique name, e.g. `"healthy-relu-adam"`.
    pub name: &'static str,
    /// What the family is meant to show.
    pub intent: Intent,
    /// One line on the configuration.
    pub about: &'static str,
    /// The configuration for a seed.
    pub config: fn(u64) -> RunConfig,
}

/// One run of the benchmark.
#[derive(Clone, Debug)]
pub struct Run {
    /// The family.
    pub family: Family,
    /// The seed.
    pub seed: u64,
    /// Calibration or held-out.
    pub split: Split,
}

impl Run {
    /// `family/seed`, e.g. `"healthy-relu-adam/101"`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.family.name, self.seed)
    }

    /// The run's configuration.
    pub fn config(&self) -> RunConfig {
        (self.family.config)(self.seed)
    }
}

fn base(seed: u64) -> RunConfig {
    RunConfig { seed, ..RunConfig::for_scenario(Scenario::Healthy) }
}

fn net(units: usize, activation: Activation, depth: usize) -> Vec<(usize, Activation)> {
    vec![(units, activation); depth]
}

const SGD_MOMENTUM: Optimizer = Optimizer::Sgd { momentum: 0.9 };
const SGD: Optimizer = Optimizer::Sgd { momentum: 0.0 };

/// Every family, healthy ones first.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "healthy-relu-adam",
        intent: Intent::Healthy,
        about: "spirals, ReLU 64-64, Adam 0.01, batch 32, 20 epochs",
        config: base,
    },
    Family {
        name: "healthy-tanh-sigmoid",
        intent: Intent::Healthy,
        about: "spirals, tanh 64 + sigmoid 64 (init x3), Adam 0.01, batch 32, 20 epochs",
        config: |seed| RunConfig { seed, ..RunConfig::for_scenario(Scenario::HealthyTanh) },
    },
    Family {
        name: "healthy-sigmoid-iris",
        intent: Intent::Healthy,
        about: "iris, sigmoid 16-16, Adam 0.01, batch 16, 60 epochs",
        config: |seed| RunConfig {
            dataset: Dataset::Iris,
            train_samples: 120,
            val_samples: 30,
            hidden: net(16, Sigmoid, 2),
            batch_size: 16,
            epochs: 60,
            ..base(seed)
        },
    },
    Family {
        name: "healthy-sgd-momentum-b10",
        intent: Intent::Healthy,
        about: "wine, ReLU 32-32, SGD 0.01 momentum 0.9, batch 10, 30 epochs",
        config: |seed| RunConfig {
            dataset: Dataset::Wine,
            train_samples: 140,
            val_samples: 38,
            hidden: net(32, Relu, 2),
            optimizer: SGD_MOMENTUM,
            learning_rate: 0.01,
            batch_size: 10,
            epochs: 30,
            ..base(seed)
        },
    },
    Family {
        name: "healthy-adam-b4",
        intent: Intent::Healthy,
        about: "iris, ReLU 32-32, Adam 0.003, batch 4, 15 epochs",
        config: |seed| RunConfig {
            dataset: Dataset::Iris,
            train_samples: 120,
            val_samples: 30,
            hidden: net(32, Relu, 2),
            learning_rate: 0.003,
            batch_size: 4,
            epochs: 15,
            ..base(seed)
        },
    },
    Family {
        name: "healthy-adam-b128",
        intent: Intent::Healthy,
        about: "spirals (2048 samples), ReLU 64-64, Adam 0.01, batch 128, 30 epochs",
        config: |seed| RunConfig {
            train_samples: 2048,
            val_samples: 512,
            batch_size: 128,
            epochs: 30,
            ..base(seed)
        },
    },
    Family {
        name: "healthy-deep-relu",
        intent: Intent::Healthy,
        about: "spirals, 6 ReLU layers of 32, Adam 0.003, batch 32, 20 epochs",
        config: |seed| RunConfig { hidden: net(32, Relu, 6), learning_rate: 0.003, ..base(seed) },
    },
    Family {
        name: "healthy-deep-tanh",
        intent: Intent::Healthy,
        about: "spirals, 6 tanh layers of 32, Adam 0.01, batch 32, 20 epochs",
        config: |seed| RunConfig { hidden: net(32, Tanh, 6), ..base(seed) },
    },
    Family {
        name: "healthy-long-converge",
        intent: Intent::Healthy,
        about: "separable blobs, ReLU 32-32, Adam 0.01, batch 32, 120 epochs: loss to about 1e-4",
        config: |seed| RunConfig {
            dataset: Dataset::Blobs { classes: 3, spread: 0.2 },
            hidden: net(32, Relu, 2),
            epochs: 80,
            train_samples: 384,
            val_samples: 128,
            ..base(seed)
        },
    },
    Family {
        name: "healthy-wine-adam",
        intent: Intent::Healthy,
        about: "wine, ReLU 32-16, Adam 0.005, batch 16, 15 epochs",
        config: |seed| RunConfig {
            dataset: Dataset::Wine,
            train_samples: 140,
            val_samples: 38,
            hidden: vec![(32, Relu), (16, Relu)],
            learning_rate: 0.005,
            batch_size: 16,
            epochs: 15,
            ..base(seed)
        },
    },
    Family {
        name: "healthy-iris-sgd-tanh",
        intent: Intent::Healthy,
        about: "iris, tanh 16, SGD 0.05 momentum 0.9, batch 8, 40 epochs",
        config: |seed| RunConfig {
            dataset: Dataset::Iris,
            train_samples: 120,
            val_samples: 30,
            hidden: net(16, Tanh, 1),
            optimizer: SGD_MOMENTUM,
            learning_rate: 0.05,
            batch_size: 8,
            epochs: 40,
            ..base(seed)
        },
    },
    Family {
        name: "healthy-sgd-plain",
        intent: Intent::Healthy,
        about: "spirals, ReLU 64-64, plain SGD 0.2, batch 32, 40 epochs",
        config: |seed| RunConfig { optimizer: SGD, learning_rate: 0.2, epochs: 40, ..base(seed) },
    },
    Family {
        name: "dying-relu-high-lr",
        intent: Intent::DyingRelu,
        about: "spirals, ReLU 64-64, Adam 0.2 (too high), 10 epochs",
        config: |seed| RunConfig { seed, ..RunConfig::for_scenario(Scenario::DyingRelu) },
    },
    Family {
        name: "dying-relu-negative-bias",
        intent: Intent::DyingRelu,
        about: "iris, ReLU 32-32 with hidden biases initialised to -3, Adam 0.01, 30 epochs",
        config: |seed| RunConfig {
            dataset: Dataset::Iris,
            train_samples: 120,
            val_samples: 30,
            hidden: net(32, Relu, 2),
            bias_init: -1.5,
            batch_size: 16,
            epochs: 30,
            ..base(seed)
        },
    },
    Family {
        name: "blowup-sgd-huge-lr",
        intent: Intent::BlowUp,
        about: "wine, linear 32-32, SGD 1.0 momentum 0.9: NaN within about 10 steps",
        config: |seed| RunConfig {
            dataset: Dataset::Wine,
            train_samples: 140,
            val_samples: 38,
            hidden: net(32, Linear, 2),
            optimizer: SGD_MOMENTUM,
            learning_rate: 1.0,
            batch_size: 16,
            epochs: 5,
            ..base(seed)
        },
    },
    Family {
        name: "blowup-linear-momentum",
        intent: Intent::BlowUp,
        about: "spirals, linear 64-64, SGD 1.0 momentum 0.9: grows for a few epochs, then NaN",
        config: |seed| RunConfig { seed, ..RunConfig::for_scenario(Scenario::NanDivergence) },
    },
    Family {
        name: "exploding-finite",
        intent: Intent::Exploding,
        about: "spirals, ReLU 64-64-64 with init x6, SGD 0.01: gradient norms above 100, finite loss",
        config: |seed| RunConfig { seed, ..RunConfig::for_scenario(Scenario::Exploding) },
    },
    Family {
        name: "vanishing-deep-sigmoid",
        intent: Intent::Vanishing,
        about: "spirals, 8 sigmoid layers of 32 with init x0.1, SGD 0.1",
        config: |seed| RunConfig { seed, ..RunConfig::for_scenario(Scenario::Vanishing) },
    },
    Family {
        name: "vanishing-deep-sigmoid-glorot",
        intent: Intent::Vanishing,
        about: "spirals, 10 sigmoid layers of 32 with Glorot init, SGD 0.1 momentum 0.9",
        config: |seed| RunConfig {
            hidden: net(32, Sigmoid, 10),
            optimizer: SGD_MOMENTUM,
            learning_rate: 0.1,
            epochs: 10,
            ..base(seed)
        },
    },
    Family {
        name: "overfit-little-data",
        intent: Intent::Overfitting,
        about: "48 noisy spiral samples, ReLU 128-128, Adam 0.01, batch 16, 100 epochs",
        config: |seed| RunConfig {
            train_samples: 48,
            epochs: 100,
            dataset: Dataset::Spirals { classes: 2, turns: 1.0, noise: 0.25 },
            ..RunConfig::for_scenario(Scenario::Overfit).with_seed(seed)
        },
    },
    Family {
        name: "zero-learning-rate",
        intent: Intent::ZeroLearningRate,
        about: "spirals, ReLU 64-64, Adam with learning rate 0, 10 epochs",
        config: |seed| RunConfig { seed, ..RunConfig::for_scenario(Scenario::Stagnant) },
    },
    Family {
        name: "plateau-shuffled-labels",
        intent: Intent::Plateau,
        about: "iris with labels shuffled against the inputs, ReLU 8, Adam 0.001, batch 16, 30 epochs",
        config: |seed| RunConfig {
            dataset: Dataset::Iris,
            train_samples: 120,
            val_samples: 30,
            hidden: net(8, Relu, 1),
            learning_rate: 0.001,
            batch_size: 16,
            epochs: 30,
            shuffle_labels: true,
            init_scale: 0.1,
            ..base(seed)
        },
    },
    Family {
        name: "saturated-tanh",
        intent: Intent::Saturation,
        about: "spirals, tanh 64-64 with init x10, Adam 0.01, 10 epochs",
        config: |seed| RunConfig {
            hidden: net(64, Tanh, 2),
            init_scale: 10.0,
            epochs: 10,
            ..base(seed)
        },
    },
    Family {
        name: "saturated-sigmoid",
        intent: Intent::Saturation,
        about: "wine, sigmoid 32-32 with init x8, Adam 0.01, batch 16, 20 epochs",
        config: |seed| RunConfig {
            dataset: Dataset::Wine,
            train_samples: 140,
            val_samples: 38,
            hidden: net(32, Sigmoid, 2),
            init_scale: 12.0,
            batch_size: 16,
            ..base(seed)
        },
    },
    Family {
        name: "corrupted-batch-spirals",
        intent: Intent::CorruptedBatch,
        about: "healthy ReLU run whose batch (12, 5) has its labels shifted",
        config: |seed| RunConfig {
            inject_spike_at: Some((12, 5)),
            corruption: Corruption::ShiftLabels,
            ..base(seed)
        },
    },
    Family {
        name: "corrupted-batch-negated-early",
        intent: Intent::CorruptedBatch,
        about: "healthy ReLU run, still learning, whose batch (3, 5) has its inputs negated",
        config: |seed| RunConfig {
            inject_spike_at: Some((3, 5)),
            corruption: Corruption::NegateInputs,
            ..base(seed)
        },
    },
    Family {
        name: "corrupted-batch-iris",
        intent: Intent::CorruptedBatch,
        about: "iris, ReLU 32-32, Adam 0.01, batch 8; batch (30, 7) has its labels shifted",
        config: |seed| RunConfig {
            dataset: Dataset::Iris,
            train_samples: 120,
            val_samples: 30,
            hidden: net(32, Relu, 2),
            batch_size: 8,
            epochs: 40,
            inject_spike_at: Some((30, 7)),
            corruption: Corruption::ShiftLabels,
            ..base(seed)
        },
    },
];

/// Every run: each family with every seed of both splits.
pub fn runs() -> Vec<Run> {
    let mut out = Vec::new();
    for family in FAMILIES {
        for (split, seeds) in
            [(Split::Calibration, CALIBRATION_SEEDS), (Split::HeldOut, HELD_OUT_SEEDS)]
        {
            for seed in seeds {
                out.push(Run { family: *family, seed, split });
            }
        }
    }
    out
}
