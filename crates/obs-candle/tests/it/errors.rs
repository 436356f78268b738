//! Tensors that cannot be observed give clear errors, never a panic, and the errors work with
//! `candle_core::Result`.

use candle_core::{DType, Device, Tensor};
use obs_candle::{Error, Session, device_stats, host_stats};
use obs_core::Activation;

fn session() -> Session {
    Session::builder().fingerprint(false).build(&Device::Cpu).expect("session")
}

fn transposed() -> Tensor {
    Tensor::arange(0f32, 12.0, &Device::Cpu)
        .and_then(|t| t.reshape((3, 4)))
        .and_then(|t| t.t())
        .expect("tensor")
}

#[test]
fn non_contiguous_tensor_is_refused_with_advice() {
    let t = transposed();
    assert!(!t.is_contiguous());
    for result in
        [host_stats("dense_0", &t, Activation::Relu), device_stats("dense_0", &t, Activation::Relu)]
    {
        let err = result.expect_err("a transposed view is refused");
        assert!(
            matches!(&err, Error::NonContiguous { name, shape, .. } if name == "dense_0" && shape == &[4, 3])
        );
        let msg = err.to_string();
        assert!(msg.contains("not contiguous") && msg.contains(".contiguous()"), "{msg}");
    }
    // The contiguous copy is accepted.
    let stats =
        host_stats("dense_0", &t.contiguous().expect("copy"), Activation::Relu).expect("ok");
    assert_eq!(stats.count, 12);
}

#[test]
fn empty_tensor_is_refused() {
    let t = Tensor::zeros((0, 8), DType::F32, &Device::Cpu).expect("tensor");
    for result in
        [host_stats("dense_1", &t, Activation::Relu), device_stats("dense_1", &t, Activation::Tanh)]
    {
        let err = result.expect_err("an empty tensor is refused");
        assert!(
            matches!(&err, Error::Empty { name, shape } if name == "dense_1" && shape == &[0, 8])
        );
        assert_eq!(err.to_string(), "tensor 'dense_1' has no elements (shape [0, 8])");
    }
}

#[test]
fn integer_tensor_is_refused() {
    let t = Tensor::new(&[1u32, 2, 3], &Device::Cpu).expect("tensor");
    let err = host_stats("labels", &t, Activation::None).expect_err("refused");
    assert!(matches!(err, Error::UnsupportedDType { dtype: DType::U32, .. }), "{err}");
}

#[test]
fn observing_in_a_session_refuses_bad_tensors_and_keeps_going() {
    let mut s = session();
    s.train_start(1);
    s.epoch_start(0);
    assert!(matches!(
        s.observe(0, "dense_0", &transposed(), Activation::Relu),
        Err(Error::Order(_))
    ));
    s.batch_start(0);
    assert!(matches!(
        s.observe(0, "dense_0", &transposed(), Activation::Relu),
        Err(Error::NonContiguous { .. })
    ));
    let empty = Tensor::zeros((0, 3), DType::F32, &Device::Cpu).expect("tensor");
    assert!(matches!(s.observe(0, "dense_0", &empty, Activation::Relu), Err(Error::Empty { .. })));
    // Nothing was recorded for the refused tensors: the good one is accepted under that name,
    // and a second observation of it in the same batch is refused.
    let good = transposed().contiguous().expect("copy");
    assert!(s.observe(0, "dense_0", &good, Activation::Relu).expect("accepted").is_some());
    assert!(matches!(
        s.observe(0, "dense_0", &good, Activation::Relu),
        Err(Error::DuplicateLayer { batch: 0, .. })
    ));
}

#[test]
fn a_non_contiguous_tapped_output_fails_the_step_without_a_panic() {
    use candle_core::Module;
    use candle_nn::{Optimizer, VarBuilder, VarMap};
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let linear = candle_nn::linear(3, 4, vb.pp("dense_0")).expect("linear");
    let mut s =
        Session::builder().varmap(&varmap).fingerprint(false).build(&Device::Cpu).expect("session");
    // A layer whose output is a transposed view.
    let layer = obs_candle::Observed::new(
        0,
        "dense_0",
        Activation::Linear,
        move |x: &Tensor| linear.forward(x)?.t(),
        s.tap(),
    );
    let mut opt = candle_nn::SGD::new(varmap.all_vars(), 0.1).expect("sgd");
    s.train_start(1);
    s.epoch_start(0);
    s.batch_start(0);
    let x = Tensor::ones((2, 3), DType::F32, &Device::Cpu).expect("x");
    let loss = layer.forward(&x).and_then(|y| y.sqr()?.mean_all()).expect("loss");
    let err = s.step(&mut opt, &loss).expect_err("the tapped view is refused");
    assert!(matches!(err, Error::NonContiguous { .. }), "{err}");
}

/// A function in candle's style: obs-candle errors convert with `?`.
fn candle_style(t: &Tensor) -> candle_core::Result<f64> {
    Ok(host_stats("x", t, Activation::None)?.mean)
}

#[test]
fn errors_convert_into_candle_errors() {
    assert_eq!(candle_style(&transposed().contiguous().expect("copy")).expect("ok"), 5.5);
    let err = candle_style(&transposed()).expect_err("refused");
    assert!(err.to_string().contains("tensor 'x' is not contiguous"), "{err}");
    // A candle error passes through unchanged.
    let inner = candle_core::Error::Msg("boom".to_owned());
    let back: candle_core::Error = Error::Candle(inner).into();
    assert!(matches!(back, candle_core::Error::Msg(m) if m == "boom"));
}

#[test]
fn step_outside_a_batch_is_an_order_error() {
    let mut s = session();
    let loss = Tensor::new(1f32, &Device::Cpu).expect("loss");
    let mut opt = <candle_nn::SGD as candle_nn::Optimizer>::new(vec![], 0.1).expect("sgd");
    let err = s.step(&mut opt, &loss).expect_err("no batch");
    assert!(err.to_string().contains("batch_start"), "{err}");
}
