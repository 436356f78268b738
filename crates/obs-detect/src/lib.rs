#![doc = include_str!("../README.md")]

pub mod catalogue;
pub mod evidence;
pub mod oracle;
pub mod replay;
pub mod report;
pub mod score;

use catalogue::Run;
use score::RunScore;

/// Trains, labels and scores every run in `runs`, on `workers` threads, in the order given.
///
/// # Errors
/// When a logger's bus thread cannot start or close.
pub fn evaluate(runs: Vec<Run>, workers: usize) -> anyhow::Result<Vec<RunScore>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(runs.len()));
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(run) = runs.get(i) else { break };
                    let scored = replay::observe(&run.config()).map(|observed| {
                        let labels = oracle::label(&observed.evidence);
                        score::score(run.clone(), labels, &observed)
                    });
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((i, scored));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
