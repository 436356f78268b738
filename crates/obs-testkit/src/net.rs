//! The network: dense layers, softmax cross-entropy, backward pass and optimiser steps, in f32.

use obs_core::Activation;

use crate::Optimizer;
use crate::rng::Rng;

/// Applies an activation in place. Unknown activations act as the identity.
fn activate(activation: Activation, z: &mut [f32]) {
    match activation {
        Activation::Relu => z.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Tanh => z.iter_mut().for_each(|v| *v = v.tanh()),
        Activation::Sigmoid => z.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
        _ => {}
    }
}

/// Multiplies `delta` (dL/da) by da/dz, written in terms of the output `a`.
fn activation_backward(activation: Activation, a: &[f32], delta: &mut [f32]) {
    match activation {
        // `a > 0` is false for NaN, so a NaN activation passes no gradient rather than poisoning.
        Activation::Relu => {
            delta.iter_mut().zip(a).for_each(|(d, &a)| *d = if a > 0.0 { *d } else { 0.0 })
        }
        Activation::Tanh => delta.iter_mut().zip(a).for_each(|(d, &a)| *d *= 1.0 - a * a),
        Activation::Sigmoid => delta.iter_mut().zip(a).for_each(|(d, &a)| *d *= a * (1.0 - a)),
        _ => {}
    }
}

/// L2 norm of a slice, in f64. Non-finite elements make it non-finite (NaN or infinity),
/// which is what a training-loop gradient norm should show.
pub fn l2_norm(values: &[f32]) -> f64 {
    values.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt()
}

/// One fully connected layer with its gradients and optimiser state.
#[derive(Debug)]
pub(crate) struct Dense {
    pub(crate) fan_in: usize,
    pub(crate) fan_out: usize,
    pub(crate) activation: Activation,
    /// Weights, row-major `[fan_in, fan_out]`.
    pub(crate) w: Vec<f32>,
    pub(crate) b: Vec<f32>,
    pub(crate) gw: Vec<f32>,
    gb: Vec<f32>,
    /// First and second moment (Adam) or velocity (SGD, in `mw`/`mb`).
    mw: Vec<f32>,
    vw: Vec<f32>,
    mb: Vec<f32>,
    vb: Vec<f32>,
    /// Post-activation output of the last forward pass, `[batch, fan_out]`.
    pub(crate) out: Vec<f32>,
    /// dL/dz of the last backward pass, `[batch, fan_out]`.
    delta: Vec<f32>,
}

impl Dense {
    fn new(
        fan_in: usize,
        fan_out: usize,
        activation: Activation,
        init_scale: f32,
        bias: f32,
        rng: &mut Rng,
    ) -> Dense {
        // He init keeps ReLU activations at unit scale; Glorot suits the symmetric squashers.
        let std = match activation {
            Activation::Relu => (2.0 / fan_in.max(1) as f32).sqrt(),
            _ => (2.0 / (fan_in + fan_out).max(1) as f32).sqrt(),
        } * init_scale;
        let n = fan_in * fan_out;
        Dense {
            fan_in,
            fan_out,
            activation,
            w: (0..n).map(|_| rng.normal() * std).collect(),
            b: vec![bias; fan_out],
            gw: vec![0.0; n],
            gb: vec![0.0; fan_out],
            mw: vec![0.0; n],
            vw: vec![0.0; n],
            mb: vec![0.0; fan_out],
            vb: vec![0.0; fan_out],
            out: Vec::new(),
            delta: Vec::new(),
        }
    }

    fn forward(&mut self, input: &[f32], rows: usize) {
        let (fi, fo) = (self.fan_in, self.fan_out);
        self.out.clear();
        self.out.reserve(rows * fo);
        for r in 0..rows {
            self.out.extend_from_slice(&self.b);
            let out = &mut self.out[r * fo..(r + 1) * fo];
            for (i, &xi) in input[r * fi..(r + 1) * fi].iter().enumerate() {
                let w = &self.w[i * fo..(i + 1) * fo];
                out.iter_mut().zip(w).for_each(|(o, &w)| *o += xi * w);
            }
        }
        activate(self.activation, &mut self.out);
    }

    /// Given `self.delta` (dL/dz), fills the weight and bias gradients and, when `input_delta`
    /// is given, writes dL/d(input) into it.
    fn backward(&mut self, input: &[f32], rows: usize, input_delta: Option<&mut Vec<f32>>) {
        let (fi, fo) = (self.fan_in, self.fan_out);
        self.gw.iter_mut().for_each(|g| *g = 0.0);
        self.gb.iter_mut().for_each(|g| *g = 0.0);
        for r in 0..rows {
            let d = &self.delta[r * fo..(r + 1) * fo];
            self.gb.iter_mut().zip(d).for_each(|(g, &d)| *g += d);
            for (i, &xi) in input[r * fi..(r + 1) * fi].iter().enumerate() {
                let gw = &mut self.gw[i * fo..(i + 1) * fo];
                gw.iter_mut().zip(d).for_each(|(g, &d)| *g += xi * d);
            }
        }
        if let Some(dx) = input_delta {
            dx.clear();
            for r in 0..rows {
                let d = &self.delta[r * fo..(r + 1) * fo];
                for i in 0..fi {
                    let w = &self.w[i * fo..(i + 1) * fo];
                    dx.push(w.iter().zip(d).map(|(&w, &d)| w * d).sum());
                }
            }
        }
    }

    /// One optimiser step; returns the L2 norm of the change applied to the weights.
    fn step(&mut self, optimizer: &Optimizer, lr: f32, t: i32) -> f64 {
        let mut update_sq = 0.0f64;
        match *optimizer {
            Optimizer::Sgd { momentum } => {
                for ((w, &g), v) in self.w.iter_mut().zip(&self.gw).zip(&mut self.mw) {
                    *v = momentum * *v + g;
                    let u = lr * *v;
                    *w -= u;
                    update_sq += f64::from(u) * f64::from(u);
                }
                for ((b, &g), v) in self.b.iter_mut().zip(&self.gb).zip(&mut self.mb) {
                    *v = momentum * *v + g;
                    *b -= lr * *v;
                }
            }
            Optimizer::Adam { beta1, beta2, eps } => {
                let c1 = 1.0 - beta1.powi(t);
                let c2 = 1.0 - beta2.powi(t);
                let adam = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    let u = lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                    *p -= u;
                    u
                };
                for (((w, &g), m), v) in
                    self.w.iter_mut().zip(&self.gw).zip(&mut self.mw).zip(&mut self.vw)
                {
                    let u = adam(w, g, m, v);
                    update_sq += f64::from(u) * f64::from(u);
                }
                for (((b, &g), m), v) in
                    self.b.iter_mut().zip(&self.gb).zip(&mut self.mb).zip(&mut self.vb)
                {
                    adam(b, g, m, v);
                }
            }
        }
        update_sq.sqrt()
    }
}

/// Loss and accuracy of one batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BatchLoss {
    /// Mean cross-entropy over the batch.
    pub(crate) loss: f64,
    /// Fraction of rows whose arg-max logit is the label; rows with a non-finite logit count
    /// as wrong.
    pub(crate) accuracy: f64,
}

/// A multi-layer perceptron ending in a linear layer read through softmax cross-entropy.
#[derive(Debug)]
pub(crate) struct Mlp {
    pub(crate) layers: Vec<Dense>,
    classes: usize,
    steps: i32,
    scratch: Vec<f32>,
}

impl Mlp {
    pub(crate) fn new(
        inputs: usize,
        hidden: &[(usize, Activation)],
        classes: usize,
        init_scale: f32,
        hidden_bias: f32,
        rng: &mut Rng,
    ) -> Mlp {
        let mut layers = Vec::with_capacity(hidden.len() + 1);
        let mut fan_in = inputs;
        for &(units, activation) in hidden {
            let units = units.max(1);
            layers.push(Dense::new(fan_in, units, activation, init_scale, hidden_bias, rng));
            fan_in = units;
        }
        layers.push(Dense::new(fan_in, classes, Activation::Linear, init_scale, 0.0, rng));
        Mlp { layers, classes, steps: 0, scratch: Vec::new() }
    }

    /// Number of trainable parameters (weights and biases).
    #[cfg(test)]
    pub(crate) fn parameters(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    /// Forward pass over `rows` samples; calls `on_layer(index, output)` after each layer.
    pub(crate) fn forward(
        &mut self,
        x: &[f32],
        rows: usize,
        mut on_layer: impl FnMut(usize, &[f32]),
    ) {
        for l in 0..self.layers.len() {
            let (before, rest) = self.layers.split_at_mut(l);
            let input = before.last().map_or(x, |p| p.out.as_slice());
            rest[0].forward(input, rows);
            on_layer(l, &rest[0].out);
        }
    }

    /// Loss and accuracy of the last forward pass against `y`; when `with_gradient`, also
    /// stores dL/dlogits in the output layer for [`Mlp::backward`].
    pub(crate) fn loss(&mut self, y: &[usize], with_gradient: bool) -> BatchLoss {
        let k = self.classes;
        let Some(last) = self.layers.last_mut() else {
            return BatchLoss { loss: f64::NAN, accuracy: 0.0 };
        };
        let rows = y.len();
        if with_gradient {
            last.delta.clear();
            last.delta.resize(rows * k, 0.0);
        }
        let (mut loss, mut correct) = (0.0f64, 0usize);
        for (r, &label) in y.iter().enumerate() {
            let z = &last.out[r * k..(r + 1) * k];
            // f32::max skips NaN, so a NaN logit shows up in the sum below, not as a panic.
            let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = z.iter().map(|&v| (v - m).exp()).sum();
            let lse = f64::from(m) + f64::from(sum).ln();
            loss += lse - f64::from(z[label]);
            let finite = z.iter().all(|v| v.is_finite());
            let argmax = (1..k).fold(0, |best, j| if z[j] > z[best] { j } else { best });
            if finite && argmax == label {
                correct += 1;
            }
            if with_gradient {
                let d = &mut last.delta[r * k..(r + 1) * k];
                for (j, dj) in d.iter_mut().enumerate() {
                    let p = (z[j] - m).exp() / sum;
                    *dj = (p - if j == label { 1.0 } else { 0.0 }) / rows as f32;
                }
            }
        }
        if rows == 0 {
            return BatchLoss { loss: f64::NAN, accuracy: 0.0 };
        }
        BatchLoss { loss: loss / rows as f64, accuracy: correct as f64 / rows as f64 }
    }

    /// Backward pass from the gradient stored by [`Mlp::loss`], last layer first; calls
    /// `on_layer(index, weight_gradient)` as each layer's weight gradient is ready.
    pub(crate) fn backward(
        &mut self,
        x: &[f32],
        rows: usize,
        mut on_layer: impl FnMut(usize, &[f32]),
    ) {
        for l in (0..self.layers.len()).rev() {
            let (before, rest) = self.layers.split_at_mut(l);
            let layer = &mut rest[0];
            let input = before.last().map_or(x, |p| p.out.as_slice());
            let propagate = (l > 0).then_some(&mut self.scratch);
            layer.backward(input, rows, propagate);
            on_layer(l, &layer.gw);
            if let Some(prev) = before.last_mut() {
                std::mem::swap(&mut prev.delta, &mut self.scratch);
                activation_backward(prev.activation, &prev.out, &mut prev.delta);
            }
        }
    }

    /// Every gradient of the last backward pass: each layer's weights, then its bias.
    pub(crate) fn gradients_mut(&mut self) -> Vec<&mut [f32]> {
        self.layers.iter_mut().flat_map(|l| [&mut l.gw[..], &mut l.gb[..]]).collect()
    }

    /// One optimiser step for every layer; calls `on_layer(index, weights, update_norm)`.
    pub(crate) fn step(
        &mut self,
        optimizer: &Optimizer,
        lr: f32,
        mut on_layer: impl FnMut(usize, &[f32], f64),
    ) {
        self.steps = self.steps.saturating_add(1);
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let norm = layer.step(optimizer, lr, self.steps);
            on_layer(l, &layer.w, norm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Mlp {
        Mlp::new(
            2,
            &[(3, Activation::Tanh), (3, Activation::Sigmoid)],
            2,
            1.0,
            0.1,
            &mut Rng::new(5),
        )
    }

    fn loss_at(net: &mut Mlp, x: &[f32], y: &[usize]) -> f64 {
        net.forward(x, y.len(), |_, _| {});
        net.loss(y, false).loss
    }

    /// The analytic weight gradient matches central finite differences, layer by layer.
    #[test]
    fn backward_matches_finite_differences() {
        let x = [0.3f32, -0.7, 0.9, 0.2, -0.5, -0.4];
        let y = [1usize, 0, 1];
        let mut net = tiny();
        net.forward(&x, 3, |_, _| {});
        net.loss(&y, true);
        let mut grads = vec![Vec::new(); net.layers.len()];
        net.backward(&x, 3, |l, g| grads[l] = g.to_vec());
        for (l, grad) in grads.iter().enumerate() {
            for (i, &analytic) in grad.iter().enumerate() {
                let h = 1e-2f32;
                let w0 = net.layers[l].w[i];
                net.layers[l].w[i] = w0 + h;
                let up = loss_at(&mut net, &x, &y);
                net.layers[l].w[i] = w0 - h;
                let down = loss_at(&mut net, &x, &y);
                net.layers[l].w[i] = w0;
                let numeric = (up - down) / (2.0 * f64::from(h));
                let analytic = f64::from(analytic);
                assert!(
                    (numeric - analytic).abs() < 2e-3 + 0.02 * analytic.abs(),
                    "layer {l} weight {i}: numeric {numeric} analytic {analytic}"
                );
            }
        }
    }

    #[test]
    fn relu_backward_passes_gradient_only_through_active_units() {
        let mut d = [1.0f32, 2.0, 3.0];
        activation_backward(Activation::Relu, &[0.0, 0.5, f32::NAN], &mut d);
        assert_eq!(d, [0.0, 2.0, 0.0]);
    }

    #[test]
    fn loss_survives_nan_and_infinite_logits() {
        let mut net = tiny();
        let x = [f32::NAN, 0.0, f32::INFINITY, 1.0];
        net.forward(&x, 2, |_, _| {});
        let r = net.loss(&[0, 1], true);
        assert!(!r.loss.is_finite());
        assert_eq!(r.accuracy, 0.0);
        net.backward(&x, 2, |_, _| {});
        net.step(&Optimizer::Sgd { momentum: 0.9 }, 0.1, |_, _, _| {});
        assert!(net.loss(&[], false).loss.is_nan());
    }

    #[test]
    fn zero_learning_rate_changes_nothing() {
        let mut net = tiny();
        let x = [0.3f32, -0.7];
        let before: Vec<Vec<f32>> = net.layers.iter().map(|l| l.w.clone()).collect();
        for opt in [Optimizer::Sgd { momentum: 0.9 }, Optimizer::ADAM] {
            net.forward(&x, 1, |_, _| {});
            net.loss(&[1], true);
            net.backward(&x, 1, |_, _| {});
            net.step(&opt, 0.0, |_, _, norm| assert_eq!(norm, 0.0));
        }
        let after: Vec<Vec<f32>> = net.layers.iter().map(|l| l.w.clone()).collect();
        assert_eq!(before, after);
        assert_eq!(net.parameters(), 2 * 3 + 3 + 3 * 3 + 3 + 3 * 2 + 2);
    }

    #[test]
    fn l2_norm_propagates_non_finite() {
        assert_eq!(l2_norm(&[3.0, 4.0]), 5.0);
        assert!(l2_norm(&[1.0, f32::NAN]).is_nan());
        assert_eq!(l2_norm(&[1.0, f32::INFINITY]), f64::INFINITY);
        assert_eq!(l2_norm(&[]), 0.0);
    }
}
