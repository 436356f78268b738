//! A candle-nn MLP trained with AdamW on Fisher's Iris data, observed end to end by
//! `obs_candle::Session`: the same files as `obs demo` (tiered logs, fingerprint, dashboard,
//! TensorBoard and W&B runs).
//!
//! Run with `cargo run -p obs-examples --example candle_mlp [-- DIR]` (default
//! `training_logs/candle_mlp`). Each run writes a fresh `run-*` directory inside DIR.
//!
//! The data is Fisher's Iris table as obs-testkit ships it (150 flowers, 4 standardised
//! measurements, 3 species; see `crates/obs-testkit/README.md`): 120 rows train, 30
//! validate.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use obs_candle::{HostCopy, Observed, Session};
use obs_core::{Activation, data};

const EPOCHS: u64 = 40;
const BATCH: usize = 16;
const HIDDEN: usize = 32;
const LEARNING_RATE: f64 = 0.01;

/// The standardised measurements as a `[150, 4]` tensor and the species as class indices.
fn load_iris(device: &Device) -> anyhow::Result<(Tensor, Tensor)> {
    let rows = obs_testkit::Dataset::Iris.rows().ok_or_else(|| anyhow::anyhow!("no Iris table"))?;
    let labels: Vec<u32> = rows.y.iter().map(|&c| c as u32).collect();
    Ok((Tensor::from_vec(rows.x, (labels.len(), 4), device)?, Tensor::new(labels, device)?))
}

/// A linear layer and a ReLU, observed as one layer.
fn dense_relu(linear: Linear) -> impl Module {
    move |x: &Tensor| linear.forward(x)?.relu()
}

fn accuracy(logits: &Tensor, y: &Tensor) -> candle_core::Result<f64> {
    let hits = logits.argmax(D::Minus1)?.eq(y)?.to_dtype(DType::F32)?.mean_all()?;
    Ok(f64::from(hits.to_scalar::<f32>()?))
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "training_logs/candle_mlp".to_owned());
    let device = Device::Cpu;

    // Data: a fixed interleaved split keeps all three species in both parts.
    let (x, y) = load_iris(&device)?;
    let val_rows: Vec<u32> = (0..150).filter(|i| i % 5 == 0).collect();
    let train_rows: Vec<u32> = (0..150).filter(|i| i % 5 != 0).collect();
    let index = |rows: &[u32]| Tensor::new(rows, &device);
    let (x_train, y_train) =
        (x.index_select(&index(&train_rows)?, 0)?, y.index_select(&index(&train_rows)?, 0)?);
    let (x_val, y_val) =
        (x.index_select(&index(&val_rows)?, 0)?, y.index_select(&index(&val_rows)?, 0)?);

    // The session first: the model's observed layers leave their outputs on its tap.
    let varmap = VarMap::new();
    let mut session = Session::builder()
        .out_dir(&dir)
        .run_name("candle-mlp")
        .varmap(&varmap)
        .host_copy(HostCopy::default())
        .model_info(data! {
            "name" => "candle mlp",
            "layers" => format!("relu {HIDDEN} -> relu {HIDDEN} -> linear 3"),
        })
        .hyperparameters(data! {
            "optimizer" => "adamw",
            "learning_rate" => LEARNING_RATE,
            "batch_size" => BATCH,
            "epochs" => EPOCHS,
            "dataset" => "iris (120 train, 30 validation)",
        })
        .dataset(&x_train)
        .build(&device)?;

    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let tap = session.tap().clone();
    let dense_0 = Observed::new(
        0,
        "dense_0",
        Activation::Relu,
        dense_relu(candle_nn::linear(4, HIDDEN, vb.pp("dense_0"))?),
        &tap,
    );
    let dense_1 = Observed::new(
        1,
        "dense_1",
        Activation::Relu,
        dense_relu(candle_nn::linear(HIDDEN, HIDDEN, vb.pp("dense_1"))?),
        &tap,
    );
    let output = candle_nn::linear(HIDDEN, 3, vb.pp("dense_2"))?;
    let forward = |x: &Tensor| output.forward(&dense_1.forward(&dense_0.forward(x)?)?);
    let mut optimizer =
        AdamW::new(varmap.all_vars(), ParamsAdamW { lr: LEARNING_RATE, ..Default::default() })?;
    if let Some(fp) = session.fingerprint() {
        eprintln!("{}", fp.format_text().trim_end());
    }

    let batches = train_rows.len().div_ceil(BATCH);
    session.train_start(EPOCHS);
    for epoch in 0..EPOCHS {
        session.epoch_start(epoch);
        // A new order every epoch, the same in every run.
        let order: Vec<u32> = (0..train_rows.len() as u32)
            .map(|i| (i * 37 + epoch as u32 * 11) % train_rows.len() as u32)
            .collect();
        let mut loss_sum = 0.0;
        for batch in 0..batches {
            let rows = &order[batch * BATCH..((batch + 1) * BATCH).min(order.len())];
            let rows = index(rows)?;
            let (xb, yb) = (x_train.index_select(&rows, 0)?, y_train.index_select(&rows, 0)?);
            session.batch_start(batch as u64);
            let logits = forward(&xb)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &yb)?;
            let acc = accuracy(&logits, &yb)?;
            let step = session.step_with(&mut optimizer, &loss, &[("accuracy", acc)])?;
            loss_sum += step.loss;
            for w in &step.warnings {
                eprintln!("  [{}] {}: {}", w.severity.as_str(), w.rule_name, w.message);
            }
            for a in &step.anomalies {
                eprintln!("  [{}] anomaly {}: {}", a.severity.as_str(), a.trigger, a.message);
            }
        }
        let logits = forward(&x_val)?;
        let val_loss =
            f64::from(candle_nn::loss::cross_entropy(&logits, &y_val)?.to_scalar::<f32>()?);
        let val_accuracy = accuracy(&logits, &y_val)?;
        let train_loss = loss_sum / batches as f64;
        let report = session.epoch_end(
            epoch,
            train_loss,
            Some(val_loss),
            &[("val_accuracy", val_accuracy)],
        )?;
        for w in &report.warnings {
            eprintln!("  [{}] {}: {}", w.severity.as_str(), w.rule_name, w.message);
        }
        if epoch % 10 == 9 || epoch + 1 == EPOCHS {
            eprintln!("{}", report.summary.format_text().trim_end());
            eprintln!(
                "  epoch {epoch}: loss {train_loss:.4}, val_loss {val_loss:.4}, \
                 val_accuracy {val_accuracy:.3}"
            );
        }
    }

    let logits = forward(&x_val)?;
    let val_accuracy = accuracy(&logits, &y_val)?;
    let report = session.finish(&[("val_accuracy", val_accuracy)])?;
    anyhow::ensure!(
        report.close.failures.is_empty(),
        "backend failures: {:?}",
        report.close.failures
    );
    eprintln!(
        "Final validation accuracy {val_accuracy:.3}; {} health warnings, {} anomalies; \
         {} of {} steps reduced layer outputs on the host",
        report.health.total_warnings, report.anomalies.total, report.host_steps, report.steps
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
    if let Some(storage) = &report.storage {
        eprintln!("  {} events written", storage.total_events);
    }
    Ok(())
}
