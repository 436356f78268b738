//! A run of four real processes, one per rank, each training the testkit MLP on its own shard
//! into one run directory; `obs summary` and `obs report` must show every rank and name the
//! straggler.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use obs_testkit::{BatchReport, LoggerObserver, RunConfig, Scenario, TrainObserver};
use observatory::core::{LogLevel, TrainingLogger};
use observatory::storage::{LogReader, StorageConfig, TieredStorage};

use crate::{obs, tempdir};

const CHILD_DIR: &str = "OBS_TEST_RANK_DIR";
const STRAGGLE_MS: &str = "OBS_TEST_STRAGGLE_MS";
const WORLD: u32 = 4;
const SLOW_RANK: u32 = 2;
/// The rank whose run diverges to NaN: its logger raises critical (health-tier) alerts.
const NAN_RANK: u32 = 3;

/// Forwards to the logger and sleeps after every batch: a slow rank.
struct Slow<'a> {
    inner: &'a mut LoggerObserver,
    pause: Duration,
}

impl TrainObserver for Slow<'_> {
    fn train_start(&mut self, c: &RunConfig, l: &[obs_testkit::LayerInfo]) {
        self.inner.train_start(c, l);
    }
    fn epoch_start(&mut self, epoch: u64) {
        self.inner.epoch_start(epoch);
    }
    fn batch_start(&mut self, epoch: u64, batch: u64) {
        self.inner.batch_start(epoch, batch);
    }
    fn layer_forward(
        &mut self,
        layer: &obs_testkit::LayerInfo,
        output: obs_testkit::TensorView<'_>,
    ) {
        self.inner.layer_forward(layer, output);
    }
    fn layer_backward(
        &mut self,
        layer: &obs_testkit::LayerInfo,
        grad: obs_testkit::TensorView<'_>,
    ) {
        self.inner.layer_backward(layer, grad);
    }
    fn weight_updated(
        &mut self,
        layer: &obs_testkit::LayerInfo,
        weights: obs_testkit::TensorView<'_>,
        update_norm: f64,
    ) {
        self.inner.weight_updated(layer, weights, update_norm);
    }
    fn batch_end(&mut self, report: &BatchReport) {
        std::thread::sleep(self.pause);
        self.inner.batch_end(report);
    }
    fn epoch_end(&mut self, report: &obs_testkit::EpochReport) {
        self.inner.epoch_end(report);
    }
    fn train_end(&mut self, outcome: &obs_testkit::TrainOutcome) {
        self.inner.train_end(outcome);
    }
}

/// The body of one rank process; a no-op unless started by [`four_ranks_in_one_run`].
#[test]
fn rank_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let logger =
        TrainingLogger::builder().level(LogLevel::Detailed).rank_from_env().build().unwrap();
    let (rank, world) = logger.rank().expect("RANK and WORLD_SIZE are set");
    assert_eq!(world, WORLD);
    let storage =
        TieredStorage::with_config(StorageConfig::new(Path::new(&dir)).rank(rank)).unwrap();
    logger.add_backend(storage).unwrap();
    // Each rank trains on its own shard: the same task, a seed of its own.
    let config = if rank == NAN_RANK {
        // The scenario's own data and seed: it diverges at its pinned onset (epoch 2).
        RunConfig { epochs: 3, ..RunConfig::for_scenario(Scenario::NanDivergence) }
    } else {
        RunConfig {
            epochs: 3,
            train_samples: 96,
            val_samples: 32,
            ..RunConfig::for_scenario(Scenario::Healthy).with_seed(1000 + u64::from(rank))
        }
    };
    let pause = std::env::var(STRAGGLE_MS).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut observer = LoggerObserver::new(logger.clone());
    let mut slow = Slow { inner: &mut observer, pause: Duration::from_millis(pause) };
    obs_testkit::train(&config, &mut slow);
    logger.close().unwrap();
}

#[test]
fn four_ranks_in_one_run() {
    let dir = tempdir();
    let run = dir.path().join("run");
    let children: Vec<_> = (0..WORLD)
        .map(|rank| {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args(["ranks::rank_child", "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_DIR, &run)
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", WORLD.to_string())
                .env(STRAGGLE_MS, if rank == SLOW_RANK { "15" } else { "0" });
            (rank, cmd.spawn().unwrap())
        })
        .collect();
    for (rank, mut child) in children {
        assert!(child.wait().unwrap().success(), "rank {rank} failed");
    }

    let reader = LogReader::open(&run).unwrap();
    assert_eq!(reader.ranks(), vec![0, 1, 2, 3]);
    let events: Vec<_> = reader.read_all().unwrap().collect();
    assert!(events.iter().all(|e| e.rank.is_some() && e.world_size == Some(WORLD)));
    for rank in 0..WORLD {
        let epochs = events
            .iter()
            .filter(|e| {
                e.rank == Some(rank) && e.event_type == observatory::core::EventType::EpochEnd
            })
            .count();
        assert_eq!(epochs, 3, "rank {rank}");
    }

    let summary = obs(dir.path(), &["summary", "run"]).expect(0);
    let out = &summary.stdout;
    assert!(out.contains("Ranks: 4 of world size 4"), "{out}");
    for rank in 0..WORLD {
        assert!(out.contains(&format!("──────── Rank {rank} ────────")), "{out}");
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&rank.to_string()))
            .unwrap_or_else(|| panic!("no row for rank {rank}:\n{out}"));
        // Final loss, 3 epochs and a mean epoch time per rank.
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert!(cells[1].parse::<f64>().is_ok(), "{row}");
        assert_eq!(cells[2], "3", "{row}");
        assert!(cells[3].parse::<f64>().is_ok_and(|s| s >= 0.0), "{row}");
        // Findings per rank: only the diverging rank has any.
        let findings: u64 = cells[4].parse().unwrap();
        assert_eq!(findings > 0, rank == NAN_RANK, "{row}");
    }
    assert!(out.contains(&format!("Straggler: rank {SLOW_RANK} (")), "{out}");

    let report = obs(dir.path(), &["report", "run", "-o", "report.html"]).expect(0);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(report.stdout.contains("events read"), "{}", report.stdout);
    assert!(
        html.contains(&format!("<th>Straggler</th><td>rank {SLOW_RANK}: ")),
        "the report names the straggler"
    );
    for rank in 0..WORLD {
        assert!(html.contains(&format!("<th>rank {rank}</th>")), "rank {rank} in the report");
    }
}
