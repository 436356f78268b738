//! Device-side measurements: norms, updates, and the host-copy policy in a session.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Optimizer, SGD};
use obs_candle::{HostCopy, Session, StatsSource, TrackedVars, l2_norms};
use obs_core::Activation;

use crate::support::{Spec, train};

#[test]
fn l2_norms_are_exact_for_every_dtype_and_zero_for_empty_tensors() {
    let d = Device::Cpu;
    let a = Tensor::new(&[3f32, 4.0], &d).expect("a");
    let b = Tensor::new(&[[1f64, 2.0], [2.0, 4.0]], &d).expect("b");
    let c = a.to_dtype(DType::F16).expect("c");
    let e = Tensor::zeros(0, DType::BF16, &d).expect("e");
    let n = l2_norms(&[&a, &b, &c, &e]).expect("norms");
    assert_eq!(n, vec![5.0, 5.0, 5.0, 0.0]);
    // f16 would overflow if it were squared in f16 (300² > 65504).
    let big = Tensor::new(&[300f32, 400.0], &d).and_then(|t| t.to_dtype(DType::F16)).expect("big");
    assert_eq!(l2_norms(&[&big]).expect("norm"), vec![500.0]);
    let bad = Tensor::new(&[1f32, f32::NAN], &d).expect("nan");
    assert!(l2_norms(&[&bad]).expect("norm")[0].is_nan());
}

#[test]
fn sgd_update_norm_is_learning_rate_times_gradient_norm() {
    let d = Device::Cpu;
    let w = Var::new(&[[0.5f32, -1.0], [2.0, 0.25]], &d).expect("w");
    let vars = TrackedVars::new([("w", w.clone())]);
    let x = Tensor::new(&[[1f32, 2.0], [3.0, -1.0]], &d).expect("x");
    let loss = w.as_tensor().matmul(&x).and_then(|y| y.sqr()?.sum_all()).expect("loss");
    let grads = loss.backward().expect("grads");
    let g = vars.grad_norms(&grads).expect("norms")[0].expect("w has a gradient");
    let snapshot = vars.snapshot().expect("snapshot");
    let mut opt = SGD::new(vec![w.clone()], 0.01).expect("sgd");
    opt.step(&grads).expect("step");
    let u = vars.update_norms(&snapshot).expect("updates")[0];
    assert!(g > 1.0);
    assert!((u - 0.01 * g).abs() < 1e-5 * g, "update {u}, 0.01 x gradient {}", 0.01 * g);
}

fn policy_sources(policy: HostCopy) -> Vec<StatsSource> {
    let spec = Spec { host_copy: policy, epochs: 2, ..Spec::default() };
    let run = train(&spec).expect("training runs");
    run.steps.iter().map(|s| s.activations[0].2).collect()
}

#[test]
fn host_copy_policy_decides_where_statistics_are_computed() {
    use StatsSource::{Device as D, Host as H};
    // Healthy runs are never escalated, so only the period counts once host borrowing is off.
    assert_eq!(policy_sources(HostCopy::every(3).borrow_host(false)), [H, D, D, H, D, D, H, D]);
    assert_eq!(policy_sources(HostCopy::never()), [D; 8]);
    assert_eq!(policy_sources(HostCopy::default()), [H; 8]);
}

#[test]
fn variables_of_a_varmap_are_tracked_by_name_once_training_starts() {
    let d = Device::Cpu;
    let varmap = candle_nn::VarMap::new();
    let mut s = Session::builder().varmap(&varmap).fingerprint(false).build(&d).expect("session");
    // The model is built after the session, with its tap.
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &d);
    let linear = candle_nn::linear(2, 3, vb.pp("dense_0")).expect("linear");
    let layer = obs_candle::Observed::new(
        0,
        "dense_0",
        Activation::Tanh,
        move |x: &Tensor| linear.forward(x)?.tanh(),
        s.tap(),
    );
    let mut opt = SGD::new(varmap.all_vars(), 0.1).expect("sgd");
    s.train_start(1);
    assert_eq!(s.vars().names().collect::<Vec<_>>(), ["dense_0.bias", "dense_0.weight"]);
    s.epoch_start(0);
    s.batch_start(0);
    let x = Tensor::new(&[[1f32, -1.0], [0.5, 2.0]], &d).expect("x");
    let loss = layer.forward(&x).and_then(|y| y.sqr()?.mean_all()).expect("loss");
    let step = s.step(&mut opt, &loss).expect("step");
    assert_eq!(step.activations.len(), 1);
    assert_eq!(&*step.activations[0].0, "dense_0");
    assert_eq!(
        step.grad_norms.iter().map(|(n, _)| &**n).collect::<Vec<_>>(),
        ["dense_0.bias", "dense_0.weight"]
    );
    // A forward pass outside a batch (validation) is not observed.
    layer.forward(&x).expect("validation forward");
    assert!(!s.tap().is_armed());
    s.epoch_end(0, step.loss, None, &[]).expect("epoch end");
    assert_eq!(s.finish(&[]).expect("finish").steps, 1);
}
