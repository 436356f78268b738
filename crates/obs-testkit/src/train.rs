//! The training loop.

use std::time::Instant;

use obs_core::TensorView;

use crate::data::split;
use crate::net::{Mlp, l2_norm};
use crate::observer::{BatchReport, EpochReport, LayerInfo, TrainObserver, TrainOutcome};
use crate::rng::Rng;
use crate::{Corruption, RunConfig, SPIKE_INPUT_SCALE};

/// Rows per validation forward pass: bounds the activation buffers, not the result.
const EVAL_CHUNK: usize = 256;

/// A view with an explicit shape; the shapes built here always match, but a mismatch would
/// degrade to a flat view rather than panic.
fn view<'a>(data: &'a [f32], shape: &'a [usize]) -> TensorView<'a> {
    TensorView::new(data, shape).unwrap_or_else(|_| TensorView::flat(data))
}

/// Trains a fresh network as `config` says, calling `observer` at every step.
///
/// Deterministic: the same configuration gives bit-identical losses, gradients and weights.
/// Never panics on diverging numbers: once the loss is NaN or infinite the run continues to
/// the last epoch, hooks keep being called, and the outcome has `diverged = true`.
pub fn train(config: &RunConfig, observer: &mut dyn TrainObserver) -> TrainOutcome {
    let classes = config.dataset.classes();
    let features = config.dataset.features();
    let (mut train_set, val_set) =
        split(&config.dataset, config.train_samples, config.val_samples, config.seed);
    if let Some((rank, world)) = config.shard {
        train_set = train_set.shard(rank, world);
    }
    if config.shuffle_labels {
        Rng::stream(config.seed, 4).shuffle(&mut train_set.y);
    }
    let mut net = Mlp::new(
        features,
        &config.hidden,
        classes,
        config.init_scale,
        config.bias_init,
        &mut Rng::stream(config.seed, 2),
    );
    let layers: Vec<LayerInfo> = net
        .layers
        .iter()
        .enumerate()
        .map(|(index, l)| LayerInfo {
            index,
            name: format!("dense_{index}"),
            activation: l.activation,
        })
        .collect();
    let weight_shapes: Vec<[usize; 2]> = net.layers.iter().map(|l| [l.fan_in, l.fan_out]).collect();
    observer.train_start(config, &layers);

    let batch_size = config.batch_size.max(1);
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    let mut shuffler = Rng::stream(config.seed, 3);
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let mut diverged = false;
    let mut last = EpochReport {
        epoch: 0,
        train_loss: f64::NAN,
        val_loss: f64::NAN,
        train_accuracy: 0.0,
        val_accuracy: 0.0,
        duration_s: 0.0,
    };
    for epoch in 0..config.epochs {
        let started = Instant::now();
        observer.epoch_start(epoch);
        shuffler.shuffle(&mut order);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0.0f64, 0usize);
        for (batch, rows) in order.chunks(batch_size).enumerate() {
            let batch = batch as u64;
            xb.clear();
            yb.clear();
            for &i in rows {
                xb.extend_from_slice(&train_set.x[i * features..(i + 1) * features]);
                yb.push(train_set.y[i]);
            }
            if config.inject_spike_at == Some((epoch, batch)) {
                match config.corruption {
                    Corruption::NegateInputs => {
                        xb.iter_mut().for_each(|v| *v *= SPIKE_INPUT_SCALE);
                    }
                    Corruption::ShiftLabels => yb.iter_mut().for_each(|y| *y = (*y + 1) % classes),
                    Corruption::NanInput => {
                        if let Some(v) = xb.first_mut() {
                            *v = f32::NAN;
                        }
                    }
                }
            }
            let n = rows.len();
            observer.batch_start(epoch, batch);
            net.forward(&xb, n, |l, out| {
                let shape = [n, weight_shapes[l][1]];
                observer.layer_forward(&layers[l], view(out, &shape));
            });
            let result = net.loss(&yb, true);
            let mut grad_norms = vec![0.0; layers.len()];
            net.backward(&xb, n, |l, grad| {
                grad_norms[l] = l2_norm(grad);
                observer.layer_backward(&layers[l], view(grad, &weight_shapes[l]));
            });
            observer.reduce_gradients(&mut net.gradients_mut());
            net.step(&config.optimizer, config.learning_rate, |l, w, update| {
                observer.weight_updated(&layers[l], view(w, &weight_shapes[l]), update);
            });
            diverged |= !result.loss.is_finite();
            loss_sum += result.loss * n as f64;
            correct += result.accuracy * n as f64;
            seen += n;
            observer.batch_end(&BatchReport {
                epoch,
                batch,
                loss: result.loss,
                accuracy: result.accuracy,
                grad_norms: layers.iter().map(|l| l.name.clone()).zip(grad_norms).collect(),
            });
        }
        let (val_loss, val_accuracy) = evaluate(&mut net, &val_set.x, &val_set.y, features);
        last = EpochReport {
            epoch,
            train_loss: if seen == 0 { f64::NAN } else { loss_sum / seen as f64 },
            val_loss,
            train_accuracy: if seen == 0 { 0.0 } else { correct / seen as f64 },
            val_accuracy,
            duration_s: started.elapsed().as_secs_f64(),
        };
        observer.epoch_end(&last);
    }
    let outcome = TrainOutcome {
        epochs_run: config.epochs,
        final_train_loss: last.train_loss,
        final_val_loss: last.val_loss,
        final_val_accuracy: last.val_accuracy,
        diverged,
    };
    observer.train_end(&outcome);
    outcome
}

/// Mean loss and accuracy over a sample set, without hooks or gradients.
fn evaluate(net: &mut Mlp, x: &[f32], y: &[usize], features: usize) -> (f64, f64) {
    if y.is_empty() {
        return (f64::NAN, 0.0);
    }
    let (mut loss, mut acc) = (0.0, 0.0);
    for (xs, ys) in x.chunks(EVAL_CHUNK * features).zip(y.chunks(EVAL_CHUNK)) {
        net.forward(xs, ys.len(), |_, _| {});
        let r = net.loss(ys, false);
        loss += r.loss * ys.len() as f64;
        acc += r.accuracy * ys.len() as f64;
    }
    (loss / y.len() as f64, acc / y.len() as f64)
}
