//! `obs demo --framework candle`: the demo's pipeline fed by a real candle training loop
//! through `obs_candle::Session` (built only with the `candle` feature).
//!
//! The network is a candle-nn MLP (4 -> 16 ReLU -> 16 ReLU -> 3) trained on Fisher's Iris data
//! (obs-testkit's copy, standardised), 120 rows for training and 30 for validation.

use std::process::ExitCode;
use std::time::Instant;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW, SGD, VarBuilder, VarMap};
use obs_candle::{HostCopy, Observed, Session};
use obs_testkit::Dataset;
use observatory::core::{Activation, data};
use observatory::health::HealthWarning;

use super::{DemoArgs, ScenarioArg, file_size, print_tiers};
use crate::error::{CliError, Context};
use crate::output::{bytes, num, say, say_warning};

const HIDDEN: usize = 16;

/// What a scenario changes in the candle run.
#[derive(Clone, Copy, Debug)]
struct Setup {
    adamw: bool,
    learning_rate: f64,
    batch_size: usize,
    epochs: u64,
    /// Every hidden bias starts here (-8 keeps every ReLU unit at zero).
    bias: f64,
}

fn setup(scenario: ScenarioArg) -> Result<Setup, CliError> {
    let healthy = Setup { adamw: true, learning_rate: 0.01, batch_size: 30, epochs: 40, bias: 0.0 };
    match scenario {
        ScenarioArg::Healthy => Ok(healthy),
        ScenarioArg::DyingRelu => Ok(Setup { bias: -8.0, epochs: 5, ..healthy }),
        ScenarioArg::Nan => {
            Ok(Setup { adamw: false, learning_rate: 400.0, batch_size: 10, epochs: 3, bias: 0.0 })
        }
        other => Err(CliError::new(format!(
            "scenario {} is not available with --framework candle (available: healthy, \
             dying-relu, nan)",
            other.scenario()
        ))),
    }
}

/// Iris as standardised `[150, 4]` features and class indices.
fn iris(device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let rows =
        Dataset::Iris.rows().ok_or_else(|| candle_core::Error::Msg("no Iris table".into()))?;
    let y: Vec<u32> = rows.y.iter().map(|&c| c as u32).collect();
    Ok((Tensor::from_vec(rows.x, (y.len(), 4), device)?, Tensor::new(y, device)?))
}

/// A permutation of `0..n` from `seed` (xorshift, Fisher-Yates).
fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        p.swap(i, (s % (i as u64 + 1)) as usize);
    }
    p
}

/// A linear layer and its ReLU.
struct DenseRelu(Linear);

impl Module for DenseRelu {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.0.forward(x)?.relu()
    }
}

fn accuracy(logits: &Tensor, y: &Tensor) -> candle_core::Result<f64> {
    let hits = logits.argmax(D::Minus1)?.eq(y)?.to_dtype(DType::F32)?.mean_all()?;
    Ok(f64::from(hits.to_scalar::<f32>()?))
}

/// Prints each finding once (the session's warnings are its anomalies' warnings).
fn print_findings(warnings: &[HealthWarning]) -> u64 {
    warnings.iter().for_each(say_warning);
    warnings.len() as u64
}

fn candle(what: &str) -> impl FnOnce() -> String + '_ {
    move || format!("candle: {what}")
}

/// Runs the candle demo.
pub(super) fn run(args: &DemoArgs) -> Result<ExitCode, CliError> {
    let setup = setup(args.scenario)?;
    let epochs = args.epochs.unwrap_or(setup.epochs);
    let seed = args.seed.unwrap_or(42);
    let scenario = args.scenario.scenario();
    let device = Device::Cpu;
    let started = Instant::now();

    let (x, y) = iris(&device).context(candle("loading the Iris data"))?;
    let order = permutation(150, seed);
    let rows = |r: &[u32]| Tensor::new(r, &device);
    let (train_rows, val_rows) = order.split_at(120);
    let pick = |r: &[u32]| -> candle_core::Result<(Tensor, Tensor)> {
        let idx = rows(r)?;
        Ok((x.index_select(&idx, 0)?, y.index_select(&idx, 0)?))
    };
    let (x_train, y_train) = pick(train_rows).context(candle("splitting the data"))?;
    let (x_val, y_val) = pick(val_rows).context(candle("splitting the data"))?;

    let optimizer = if setup.adamw { "adamw" } else { "sgd" };
    let varmap = VarMap::new();
    let mut session = Session::builder()
        .out_dir(&args.out)
        .run_name(format!("demo-candle-{scenario}"))
        .varmap(&varmap)
        .host_copy(HostCopy::default())
        .model_info(data! {
            "name" => "candle mlp",
            "scenario" => scenario.name(),
            "layers" => format!("relu {HIDDEN} -> relu {HIDDEN} -> linear 3"),
        })
        .hyperparameters(data! {
            "optimizer" => optimizer,
            "learning_rate" => setup.learning_rate,
            "batch_size" => setup.batch_size,
            "epochs" => epochs,
            "bias_init" => setup.bias,
            "dataset" => "iris (120 train, 30 validation)",
        })
        .seed("split_seed", seed)
        .dataset(&x_train)
        .build(&device)
        .context(|| "starting the candle session".to_owned())?;
    let run_dir = session.paths().map(|p| p.run_dir.clone()).unwrap_or_default();

    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let model = (|| -> candle_core::Result<_> {
        let tap = session.tap();
        let d0 = Observed::new(
            0,
            "dense_0",
            Activation::Relu,
            DenseRelu(candle_nn::linear(4, HIDDEN, vb.pp("dense_0"))?),
            tap,
        );
        let d1 = Observed::new(
            1,
            "dense_1",
            Activation::Relu,
            DenseRelu(candle_nn::linear(HIDDEN, HIDDEN, vb.pp("dense_1"))?),
            tap,
        );
        let out = candle_nn::linear(HIDDEN, 3, vb.pp("dense_2"))?;
        for name in ["dense_0.bias", "dense_1.bias"] {
            if let Some(var) = varmap
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("varmap lock".into()))?
                .get(name)
            {
                var.set(&(var.ones_like()? * setup.bias)?)?;
            }
        }
        Ok((d0, d1, out))
    })()
    .context(candle("building the model"))?;
    let forward = |x: &Tensor| model.2.forward(&model.1.forward(&model.0.forward(x)?)?);
    let vars = varmap.all_vars();
    let params = ParamsAdamW { lr: setup.learning_rate, ..Default::default() };
    let mut adamw = AdamW::new(vars.clone(), params).context(candle("creating AdamW"))?;
    let mut sgd = SGD::new(vars, setup.learning_rate).context(candle("creating SGD"))?;

    say!(
        "obs demo (candle {}): scenario {scenario}, {epochs} epochs, seed {seed}: candle-nn MLP \
         relu {HIDDEN} -> relu {HIDDEN} -> linear 3 on Iris, {optimizer} lr {}, batch {}",
        obs_candle::CANDLE_VERSION,
        setup.learning_rate,
        setup.batch_size
    );
    say!("Run directory: {}", run_dir.display());
    say!("(candle's CPU generator cannot be seeded: the initial weights differ between runs)");
    say!();

    let mut found = 0;
    let mut diverged = false;
    let (mut final_loss, mut final_val_loss, mut final_val_acc) = (f64::NAN, f64::NAN, f64::NAN);
    session.train_start(epochs);
    'epochs: for epoch in 0..epochs {
        session.epoch_start(epoch);
        let shuffled = permutation(train_rows.len(), seed.wrapping_add(epoch + 1));
        let mut losses = Vec::new();
        for (batch, chunk) in shuffled.chunks(setup.batch_size).enumerate() {
            let idx = rows(chunk).context(candle("indexing a batch"))?;
            let xb = x_train.index_select(&idx, 0).context(candle("indexing a batch"))?;
            let yb = y_train.index_select(&idx, 0).context(candle("indexing a batch"))?;
            session.batch_start(batch as u64);
            let logits = forward(&xb).context(candle("forward pass"))?;
            let loss = candle_nn::loss::cross_entropy(&logits, &yb).context(candle("loss"))?;
            let acc = accuracy(&logits, &yb).context(candle("accuracy"))?;
            let step = if setup.adamw {
                session.step_with(&mut adamw, &loss, &[("accuracy", acc)])
            } else {
                session.step_with(&mut sgd, &loss, &[("accuracy", acc)])
            }
            .context(|| format!("training step e{epoch} b{batch}"))?;
            found += print_findings(&step.warnings);
            losses.push(step.loss);
            if !step.loss.is_finite() {
                diverged = true;
            }
        }
        final_loss = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
        let logits = forward(&x_val).context(candle("validation"))?;
        final_val_loss = candle_nn::loss::cross_entropy(&logits, &y_val)
            .and_then(|l| l.to_scalar::<f32>())
            .map(f64::from)
            .context(candle("validation loss"))?;
        final_val_acc = accuracy(&logits, &y_val).context(candle("validation accuracy"))?;
        let report = session
            .epoch_end(epoch, final_loss, Some(final_val_loss), &[("val_accuracy", final_val_acc)])
            .context(|| format!("ending epoch {epoch}"))?;
        say!("{}", report.summary.format_text().trim_end());
        say!(
            "  Epoch {epoch} result: loss={} val_loss={} val_accuracy={}",
            num(final_loss),
            num(final_val_loss),
            num(final_val_acc)
        );
        found += print_findings(&report.warnings);
        if diverged {
            say!("  The loss became NaN/Inf: training stops here.");
            break 'epochs;
        }
    }
    let report = session
        .finish(&[
            ("loss", final_loss),
            ("val_loss", final_val_loss),
            ("val_accuracy", final_val_acc),
        ])
        .context(|| "closing the logger".to_owned())?;

    say!();
    say!(
        "Run complete in {:.2} s: final loss={} val_loss={} val_accuracy={}{}",
        started.elapsed().as_secs_f64(),
        num(final_loss),
        num(final_val_loss),
        num(final_val_acc),
        if diverged { " (DIVERGED: the loss became NaN/Inf)" } else { "" }
    );
    say!();
    if let Some(storage) = &report.storage {
        print_tiers(storage);
    }
    super::print_findings(&report.health, &report.anomalies);
    say!(
        "Findings printed above: {found}; steps reduced on the host: {} of {}",
        report.host_steps,
        report.steps
    );
    for f in &report.close.failures {
        say!("backend failure: {f}");
    }
    if let Some(paths) = &report.paths {
        let run = paths.run_dir.display();
        say!();
        say!("Files:");
        say!("  logs         {run}/{{basic,health,debug}}.log   (NDJSON: grep, jq)");
        say!("  fingerprint  {run}/fingerprint.json");
        for (what, path) in [("dashboard", &paths.dashboard), ("tensorboard", &paths.tensorboard)] {
            if let Some(p) = path {
                say!("  {what:<12} {} ({})", p.display(), bytes(file_size(p)));
            }
        }
        if let Some(p) = &paths.wandb {
            say!("  wandb        {}", p.display());
        }
        say!();
        say!(
            "Next: obs summary {run}, obs report {run}, obs tail {run} --from-start --tier health"
        );
    }
    Ok(ExitCode::SUCCESS)
}
