//! Every float dtype candle trains in: f32, f64, f16 and bf16.

use candle_core::{DType, Device, Tensor};
use obs_candle::{StatsSource, device_stats, host_stats, with_host_view};
use obs_core::{Activation, TensorData};

use crate::support::{Opt, Spec, train};

const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

#[test]
fn every_float_dtype_trains_observed() {
    for dtype in DTYPES {
        // Plain SGD: candle's AdamW divides by `sqrt(v) + 1e-8`, and 1e-8 is zero in f16.
        let spec = Spec { dtype, epochs: 3, optimizer: Opt::Sgd, lr: 0.1, ..Spec::default() };
        let run = train(&spec).unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
        assert_eq!(run.steps.len(), 12, "{dtype:?}");
        let (first, last) = (run.steps[0].loss, run.steps[11].loss);
        assert!(first.is_finite() && last < first, "{dtype:?}: loss {first} -> {last}");
        for s in &run.steps {
            assert_eq!(s.grad_norms.len(), 6, "{dtype:?}");
            assert!(s.grad_norms.iter().all(|(_, g)| g.is_finite() && *g > 0.0), "{dtype:?}");
            assert!(s.update_norms.iter().all(|(_, u)| u.is_finite() && *u > 0.0), "{dtype:?}");
            for (name, stats, source) in &s.activations {
                assert_eq!(*source, StatsSource::Host, "{dtype:?} {name}");
                assert_eq!(stats.count, 30 * 16, "{dtype:?} {name}");
                assert_eq!(stats.nan + stats.inf, 0, "{dtype:?} {name}");
            }
        }
    }
}

/// A `[4, 3]` ReLU-like output with zeros, a dead column and values that round in f16/bf16.
fn sample(dtype: DType) -> Tensor {
    let values = [0.0f32, 1.5, 0.25, 0.0, 0.0, 3.0, 0.0, 2.0, 0.125, 0.0, 0.5, 7.0];
    Tensor::from_vec(values.to_vec(), (4, 3), &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .expect("tensor")
}

#[test]
fn host_and_device_statistics_agree_in_every_dtype() {
    for dtype in DTYPES {
        let t = sample(dtype);
        let host = host_stats("out", &t, Activation::Relu).expect("host");
        let dev = device_stats("out", &t, Activation::Relu).expect("device");
        assert_eq!((host.count, host.zeros, host.nan, host.inf), (12, 5, 0, 0), "{dtype:?}");
        assert_eq!(
            (dev.count, dev.zeros, dev.nan, dev.inf, dev.dead_units),
            (host.count, host.zeros, host.nan, host.inf, host.dead_units),
            "{dtype:?}"
        );
        assert_eq!(host.dead_units_pct(), Some(100.0 / 3.0), "{dtype:?}");
        // These values are exact in every dtype, so the moments agree closely.
        for (a, b) in [(host.mean, dev.mean), (host.std, dev.std), (host.l2, dev.l2)] {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{dtype:?}: {a} vs {b}");
        }
        assert_eq!((host.min, host.max), (dev.min, dev.max), "{dtype:?}");
    }
}

#[test]
fn half_precision_is_read_as_f32_and_wide_dtypes_as_themselves() {
    for (dtype, expected) in [
        (DType::F32, "float32"),
        (DType::F64, "float64"),
        (DType::F16, "float32"),
        (DType::BF16, "float32"),
    ] {
        let seen = with_host_view("out", &sample(dtype), |v| v.data().dtype()).expect("view");
        assert_eq!(seen, expected, "{dtype:?}");
    }
}

#[test]
fn f32_on_the_cpu_is_borrowed_not_copied() {
    let t = sample(DType::F32);
    let (storage, layout) = t.storage_and_layout();
    let start = match &*storage {
        candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)) => {
            v[layout.start_offset()..].as_ptr()
        }
        other => panic!("unexpected storage {other:?}"),
    };
    drop(storage);
    let seen = with_host_view("out", &t, |v| match v.data() {
        TensorData::F32(d) => d.as_ptr(),
        TensorData::F64(_) => std::ptr::null(),
    })
    .expect("view");
    assert_eq!(seen, start, "the view must point into candle's own storage");
}

#[test]
fn saturation_is_counted_on_the_device_as_on_the_host() {
    let values = [0.995f32, -0.999, 0.2, f32::NAN, 0.0, 0.999, f32::INFINITY, -0.5];
    let t = Tensor::from_vec(values.to_vec(), (2, 4), &Device::Cpu).expect("tensor");
    for activation in [Activation::Tanh, Activation::Sigmoid, Activation::Relu] {
        let host = host_stats("out", &t, activation).expect("host");
        let dev = device_stats("out", &t, activation).expect("device");
        assert_eq!(
            (dev.saturated, dev.nan, dev.inf, dev.zeros),
            (host.saturated, host.nan, host.inf, host.zeros),
            "{activation}"
        );
        assert_eq!((dev.min, dev.max), (host.min, host.max), "{activation}");
        assert!((dev.mean - host.mean).abs() < 1e-6, "{activation}: {} vs {}", dev.mean, host.mean);
    }
}
