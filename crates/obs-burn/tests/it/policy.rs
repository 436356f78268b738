//! The host-copy policy decides which steps read layer outputs, and gradient and update
//! norms are exact.

use burn::module::Module;
use burn::nn::LinearConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Tensor};
use obs_burn::{HostCopy, ParamSnapshot, Session};
use obs_core::Activation;

/// For each of `steps` steps, whether the probe computed the layer's statistics.
fn observed_steps(policy: HostCopy, steps: usize) -> Vec<bool> {
    let mut session =
        Session::builder().fingerprint(false).host_copy(policy).build(&Device::flex()).unwrap();
    let probe = session.probe();
    session.train_start(1);
    session.epoch_start(1);
    let out = Tensor::<2>::from_floats([[0.5, 1.0], [2.0, 0.0]], &Device::flex());
    (0..steps)
        .map(|_| {
            let seen = probe.layer(0, "dense_0", &out, Activation::Relu).unwrap().is_some();
            let step = session.record_step(Some(1.0), &[]).unwrap();
            assert_eq!(step.activations.len(), usize::from(seen));
            seen
        })
        .collect()
}

#[test]
fn host_copy_policy_decides_which_steps_read_layer_outputs() {
    // A CPU backend is host memory: every step by default.
    assert!(observed_steps(HostCopy::default(), 4).iter().all(|s| *s));
    assert!(observed_steps(HostCopy::never(), 4).iter().all(|s| !*s));
    let every_3 = HostCopy::every(3).borrow_host(false).while_escalated(false);
    assert_eq!(observed_steps(every_3, 7), [true, false, false, true, false, false, true]);
}

#[test]
fn sgd_update_norm_is_learning_rate_times_gradient_norm() {
    let device = Device::flex().autodiff();
    let model = LinearConfig::new(3, 2).init(&device);
    let x = Tensor::<2>::from_floats([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]], &device);
    let grads =
        GradientsParams::from_grads(model.forward(x).powi_scalar(2).sum().backward(), &model);
    let grad_norms = obs_burn::grad_norms(&model, &grads).unwrap();
    let before = ParamSnapshot::take(&model);
    assert_eq!(before.len(), 2);
    let mut sgd = SgdConfig::new().init();
    let after = sgd.step(0.1, model, grads);
    let updates = before.update_norms(&after).unwrap();
    assert_eq!(updates.len(), 2);
    for ((gn, g), (un, u)) in grad_norms.iter().zip(&updates) {
        assert_eq!(gn, un);
        assert!(*g > 0.0);
        assert!((u - 0.1 * g).abs() < 1e-5 * g.max(1.0), "{un}: update {u}, gradient {g}");
    }
    let names: Vec<&str> = updates.iter().map(|(n, _)| &**n).collect();
    assert_eq!(names, ["weight", "bias"]);
    // A snapshot of another model does not fit.
    let other = LinearConfig::new(4, 2).init(&device);
    assert!(ParamSnapshot::take(&other).update_norms(&after).unwrap().is_empty());
    assert!(after.num_params() > 0);
}
