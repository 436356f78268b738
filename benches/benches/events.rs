//! Encoding and decoding one NDJSON event line: the cost behind storage writes and every reader
//! (dashboard from logs, `obs summary`, replay into the bridges).
//!
//! Run with `cargo bench -p obs-benches --bench events`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use obs_core::{Activation, Event, EventType, LogLevel, TensorView, data, tensor_stats};
use std::hint::black_box;

fn batch_end() -> Event {
    Event::new(EventType::BatchEnd, LogLevel::Detailed)
        .at(Some(3), Some(17))
        .data(data! { "metrics" => data! { "loss" => 0.3421, "accuracy" => 0.8912 } })
}

fn layer_forward() -> Event {
    let acts: Vec<f32> = (0..32 * 64).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 0.5).collect();
    let stats = tensor_stats(TensorView::new(&acts, &[32, 64]).expect("shape"), Activation::Relu);
    let mut data = stats.to_data();
    data.insert("shape", vec![32usize, 64]);
    Event::new(EventType::LayerForward, LogLevel::Expert)
        .at(Some(3), Some(17))
        .layer("dense_0", Some(0))
        .data(data)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_ndjson");
    group.throughput(Throughput::Elements(1));
    for (name, event) in [("batch_end", batch_end()), ("layer_forward", layer_forward())] {
        let line = event.to_ndjson();
        let mut buf = Vec::with_capacity(1024);
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                black_box(&event).write_ndjson(&mut buf).expect("vec write");
                black_box(buf.len())
            })
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| Event::from_ndjson_bytes(black_box(line.as_bytes())).expect("valid line"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
