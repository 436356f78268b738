//! `record_batch` allocates nothing once every name is known.

use obs_summary::EpochSummarizer;

use obs_testkit::allocations;

#[global_allocator]
static GLOBAL: obs_testkit::CountingAllocator = obs_testkit::CountingAllocator;

#[test]
fn steady_state_record_batch_does_not_allocate() {
    let mut s = EpochSummarizer::new();
    let grads = ["dense_0", "dense_1", "dense_2", "dense_3"];
    for epoch in 0..3u64 {
        for batch in 0..50u64 {
            let x = (epoch * 50 + batch) as f64;
            let g: Vec<(&str, f64)> = grads.iter().map(|&n| (n, x * 0.01)).collect();
            let before = allocations();
            s.record_batch(epoch, &[("loss", 1.0 / (1.0 + x)), ("accuracy", 0.5)], &g)
                .expect("record");
            let made = allocations() - before;
            // The very first batch learns the names; later epochs reuse them.
            if epoch > 0 || batch > 0 {
                assert_eq!(made, 0, "epoch {epoch} batch {batch}");
            }
        }
        s.finalize_epoch(epoch).expect("finalize");
    }
    // Names seen out of order are found too, still without allocating.
    let before = allocations();
    s.record_batch(3, &[("accuracy", 0.1), ("loss", 0.2)], &[("dense_3", 1.0), ("dense_0", 1.0)])
        .expect("record");
    assert_eq!(allocations() - before, 0);
}
