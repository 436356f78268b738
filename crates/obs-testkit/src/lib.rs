#![doc = include_str!("../README.md")]

mod alloc;
mod data;
mod net;
mod observer;
mod rng;
mod train;

#[cfg(unix)]
pub mod mlflow;

use std::fmt;
use std::str::FromStr;

pub use obs_core::{Activation, TensorView};

pub use alloc::{CountingAllocator, allocations};
pub use data::{Dataset, Samples, split};
pub use net::l2_norm;
pub use observer::{
    BatchReport, EpochReport, History, LayerInfo, LoggerObserver, TrainObserver, TrainOutcome,
    model_info,
};
pub use rng::Rng;
pub use train::train;

/// What the inputs of the batch named by [`RunConfig::inject_spike_at`] are multiplied by.
///
/// Negating the inputs maps each arm of the two spirals onto the other, so a network that has
/// learnt them is confidently wrong on that batch: its loss jumps about tenfold while the data
/// stays finite and in range, and the run recovers within a few batches.
pub const SPIKE_INPUT_SCALE: f32 = -1.0;

/// How the batch named by [`RunConfig::inject_spike_at`] is corrupted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Corruption {
    /// Its inputs are multiplied by [`SPIKE_INPUT_SCALE`] (for the spirals: every point moves
    /// onto the other arm).
    #[default]
    NegateInputs,
    /// Its labels are shifted to the next class (`y -> (y + 1) mod classes`): a batch whose
    /// labels went out of step with its inputs, as a broken data pipeline makes.
    ShiftLabels,
    /// One input value of its first sample becomes NaN: a broken record in the data, which
    /// poisons the loss and every gradient of that step.
    NanInput,
}

/// A training run showing one behaviour, healthy or pathological.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// ReLU MLP learning two spirals: stable loss, few dead units.
    Healthy,
    /// Tanh and sigmoid hidden layers, healthy: little saturation.
    HealthyTanh,
    /// ReLU units that die: most hidden units are zero for whole batches.
    DyingRelu,
    /// Weight-gradient norms far above 100 while the loss is still finite.
    Exploding,
    /// A deep sigmoid stack whose first layers get gradients below 1e-7.
    Vanishing,
    /// The loss becomes NaN or infinite within a few epochs.
    NanDivergence,
    /// A tiny training set: validation loss climbs far above training loss.
    Overfit,
    /// Learning rate 0: weights never change, the loss is flat.
    Stagnant,
    /// A healthy run with one corrupted batch whose loss jumps.
    LossSpike,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 9] = [
        Scenario::Healthy,
        Scenario::HealthyTanh,
        Scenario::DyingRelu,
        Scenario::Exploding,
        Scenario::Vanishing,
        Scenario::NanDivergence,
        Scenario::Overfit,
        Scenario::Stagnant,
        Scenario::LossSpike,
    ];

    /// The scenario's name: `"healthy"`, `"healthy-tanh"`, `"dying-relu"`, `"exploding"`,
    /// `"vanishing"`, `"nan"`, `"overfit"`, `"stagnant"`, `"loss-spike"`.
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::HealthyTanh => "healthy-tanh",
            Scenario::DyingRelu => "dying-relu",
            Scenario::Exploding => "exploding",
            Scenario::Vanishing => "vanishing",
            Scenario::NanDivergence => "nan",
            Scenario::Overfit => "overfit",
            Scenario::Stagnant => "stagnant",
            Scenario::LossSpike => "loss-spike",
        }
    }

    /// Whether the scenario is one of the healthy ones ([`Scenario::Healthy`],
    /// [`Scenario::HealthyTanh`]).
    pub const fn is_healthy(self) -> bool {
        matches!(self, Scenario::Healthy | Scenario::HealthyTanh)
    }

    /// The first `(epoch, batch)` at which the default configuration
    /// ([`RunConfig::for_scenario`]) shows the pathology in its numbers, as the crate's tests
    /// verify; `None` for the healthy scenarios. See the crate docs for what "shows" means for
    /// each.
    pub const fn expected_onset(self) -> Option<(u64, u64)> {
        match self {
            Scenario::Healthy | Scenario::HealthyTanh => None,
            Scenario::DyingRelu => Some(onset::DYING_RELU),
            Scenario::Exploding => Some(onset::EXPLODING),
            Scenario::Vanishing => Some(onset::VANISHING),
            Scenario::NanDivergence => Some(onset::NAN),
            Scenario::Overfit => Some(onset::OVERFIT),
            Scenario::Stagnant => Some((0, 0)),
            Scenario::LossSpike => Some(onset::LOSS_SPIKE),
        }
    }
}

/// Onsets measured on the default configurations (and pinned by tests).
mod onset {
    pub(crate) const DYING_RELU: (u64, u64) = (0, 7);
    pub(crate) const EXPLODING: (u64, u64) = (0, 0);
    pub(crate) const VANISHING: (u64, u64) = (0, 0);
    pub(crate) const NAN: (u64, u64) = (2, 5);
    pub(crate) const OVERFIT: (u64, u64) = (6, 0);
    pub(crate) const LOSS_SPIKE: (u64, u64) = (3, 5);
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`Scenario`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownScenario {
    /// The name given.
    pub name: String,
}

impl fmt::Display for UnknownScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown scenario {:?}; expected one of", self.name)?;
        for (i, s) in Scenario::ALL.iter().enumerate() {
            write!(f, "{}{}", if i == 0 { " " } else { ", " }, s.name())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownScenario {}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    /// Parses a [`Scenario::name`] exactly.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| UnknownScenario { name: s.to_owned() })
    }
}

/// The optimiser.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Stochastic gradient descent with heavy-ball momentum (`v = momentum * v + g; w -= lr * v`;
    /// momentum 0 is plain SGD).
    Sgd {
        /// Momentum coefficient.
        momentum: f32,
    },
    /// Adam with bias correction.
    Adam {
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Denominator guard.
        eps: f32,
    },
}

impl Optimizer {
    /// Adam with the usual constants (0.9, 0.999, 1e-8).
    pub const ADAM: Optimizer = Optimizer::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

    /// `"sgd"` or `"adam"`.
    pub const fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adam { .. } => "adam",
        }
    }
}

/// Everything a run needs; start from [`RunConfig::for_scenario`] and change fields.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The scenario this configuration was made for (reported to observers; the behaviour
    /// comes from the other fields).
    pub scenario: Scenario,
    /// Seed for the data, the initial weights and the shuffling.
    pub seed: u64,
    /// Epochs to run.
    pub epochs: u64,
    /// Samples per batch (0 is treated as 1); the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Training samples.
    pub train_samples: usize,
    /// Validation samples.
    pub val_samples: usize,
    /// Hidden layers: units and activation. An output layer with one unit per class and a
    /// linear activation follows them.
    pub hidden: Vec<(usize, Activation)>,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Learning rate.
    pub learning_rate: f32,
    /// Multiplies the He (ReLU) or Glorot (others) initial weight standard deviation.
    pub init_scale: f32,
    /// `(epoch, batch)`: that batch is corrupted as [`RunConfig::corruption`] says, so its loss
    /// spikes.
    pub inject_spike_at: Option<(u64, u64)>,
    /// How the batch at [`RunConfig::inject_spike_at`] is corrupted.
    pub corruption: Corruption,
    /// Shuffle the training labels once, independently of the inputs, before training: the
    /// inputs then carry no information about the labels (a data pipeline that joined the two
    /// wrongly), so the loss cannot fall much below its initial level. Validation labels are
    /// left alone.
    pub shuffle_labels: bool,
    /// Initial bias of every hidden unit (the output layer starts at 0).
    pub bias_init: f32,
    /// The synthetic dataset.
    pub dataset: Dataset,
    /// `(rank, world_size)`: train on this rank's shard only, the training samples whose index
    /// is `rank` modulo `world_size` (validation keeps every sample). With the same seed on
    /// every rank the initial weights agree, so data-parallel training averages the gradients
    /// of [`TrainObserver::reduce_gradients`] across ranks and the ranks stay in step.
    pub shard: Option<(usize, usize)>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig::for_scenario(Scenario::Healthy)
    }
}

impl RunConfig {
    /// Number of trainable parameters (weights and biases) of the network this configuration
    /// builds.
    pub fn parameter_count(&self) -> usize {
        let mut fan_in = self.dataset.features();
        let mut total = 0;
        for &(units, _) in &self.hidden {
            let units = units.max(1);
            total += fan_in * units + units;
            fan_in = units;
        }
        total + fan_in * self.dataset.classes() + self.dataset.classes()
    }

    /// The same configuration with another seed.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> RunConfig {
        RunConfig { seed, ..self }
    }

    /// The default configuration that shows `scenario` (seed 42); see the crate docs.
    pub fn for_scenario(scenario: Scenario) -> RunConfig {
        use Activation::{Linear, Relu, Sigmoid, Tanh};
        let healthy = RunConfig {
            scenario,
            seed: 42,
            epochs: 20,
            batch_size: 32,
            train_samples: 512,
            val_samples: 256,
            hidden: vec![(64, Relu), (64, Relu)],
            optimizer: Optimizer::ADAM,
            learning_rate: 0.01,
            init_scale: 1.0,
            inject_spike_at: None,
            corruption: Corruption::NegateInputs,
            shuffle_labels: false,
            bias_init: 0.0,
            dataset: Dataset::TWO_SPIRALS,
            shard: None,
        };
        match scenario {
            Scenario::Healthy => healthy,
            Scenario::HealthyTanh => {
                RunConfig { hidden: vec![(64, Tanh), (64, Sigmoid)], init_scale: 3.0, ..healthy }
            }
            Scenario::DyingRelu => RunConfig { learning_rate: 0.2, epochs: 10, ..healthy },
            Scenario::Exploding => RunConfig {
                hidden: vec![(64, Relu), (64, Relu), (64, Relu)],
                optimizer: Optimizer::Sgd { momentum: 0.0 },
                learning_rate: 0.01,
                init_scale: 6.0,
                epochs: 5,
                ..healthy
            },
            Scenario::Vanishing => RunConfig {
                hidden: vec![(32, Sigmoid); 8],
                optimizer: Optimizer::Sgd { momentum: 0.0 },
                learning_rate: 0.1,
                init_scale: 0.1,
                epochs: 5,
                ..healthy
            },
            Scenario::NanDivergence => RunConfig {
                hidden: vec![(64, Linear), (64, Linear)],
                optimizer: Optimizer::Sgd { momentum: 0.9 },
                learning_rate: 1.0,
                epochs: 5,
                ..healthy
            },
            Scenario::Overfit => RunConfig {
                train_samples: 64,
                batch_size: 16,
                hidden: vec![(128, Relu), (128, Relu)],
                epochs: 40,
                dataset: Dataset::Spirals { classes: 2, turns: 1.0, noise: 0.15 },
                ..healthy
            },
            Scenario::Stagnant => RunConfig { learning_rate: 0.0, epochs: 10, ..healthy },
            Scenario::LossSpike => {
                RunConfig { inject_spike_at: Some(onset::LOSS_SPIKE), ..healthy }
            }
        }
    }
}
