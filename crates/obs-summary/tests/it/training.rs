//! Summaries of a real training run from obs-testkit.

use obs_summary::EpochSummarizer;
use obs_testkit::{BatchReport, EpochReport, History, RunConfig, Scenario, train};

/// Feeds every batch of a run into a summarizer and finalizes each epoch.
#[derive(Default)]
struct Summarize {
    summarizer: EpochSummarizer,
    history: History,
}

impl obs_testkit::TrainObserver for Summarize {
    fn batch_end(&mut self, r: &BatchReport) {
        let grads: Vec<(&str, f64)> = r.grad_norms.iter().map(|(n, g)| (n.as_str(), *g)).collect();
        self.summarizer
            .record_batch(r.epoch, &[("loss", r.loss), ("accuracy", r.accuracy)], &grads)
            .expect("epochs go forwards");
        self.history.batch_end(r);
    }
    fn epoch_end(&mut self, r: &EpochReport) {
        self.summarizer.finalize_epoch(r.epoch).expect("recorded");
        self.history.epoch_end(r);
    }
}

#[test]
fn healthy_run_summaries_match_the_trainer_numbers() {
    let mut config = RunConfig::for_scenario(Scenario::Healthy);
    config.epochs = 4;
    let mut obs = Summarize::default();
    train(&config, &mut obs);
    let all = obs.summarizer.get_all_summaries();
    assert_eq!(all.len(), 4);
    for (s, e) in all.iter().zip(&obs.history.epochs) {
        assert_eq!(s.epoch, e.epoch);
        assert_eq!(s.batches, 16);
        // 512 samples in 16 full batches: the mean batch loss is the epoch's training loss.
        let loss = s.metric("loss").expect("loss");
        assert!((loss.mean - e.train_loss).abs() < 1e-9, "{} vs {}", loss.mean, e.train_loss);
        assert!(loss.min <= loss.mean && loss.mean <= loss.max && loss.std > 0.0);
        let names: Vec<&str> = s.gradient_norms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["dense_0", "dense_1", "dense_2"]);
        assert_eq!(s.non_finite(), 0);
    }
    assert!(all[3].metric("loss").expect("loss").mean < all[0].metric("loss").expect("loss").mean);
}

#[test]
fn diverging_run_reports_its_non_finite_batches() {
    let mut obs = Summarize::default();
    let config = RunConfig::for_scenario(Scenario::NanDivergence);
    train(&config, &mut obs);
    let (epoch, batch) = Scenario::NanDivergence.expected_onset().expect("onset");
    let s = obs.summarizer.summary(epoch).expect("summary");
    let loss = s.metric("loss").expect("loss");
    assert_eq!(loss.count, batch, "finite batches before the onset");
    assert_eq!(loss.non_finite, s.batches - batch);
    assert!(s.format_text().contains("non_finite="));
    let last = obs.summarizer.get_all_summaries().last().expect("last");
    assert_eq!(last.metric("loss").expect("loss").count, 0);
}
