//! A run of four real processes training data-parallel: one per rank, each on its shard of
//! the testkit data, gradients averaged across the processes after every backward pass (a
//! small all-reduce over loopback TCP), all logging into one run directory. `obs summary` and
//! `obs report` must show every rank, per-rank loss, epoch time and findings, and name the
//! straggler.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use obs_testkit::{
    BatchReport, Corruption, LoggerObserver, RunConfig, Scenario, TensorView, TrainObserver,
};
use observatory::core::{EventType, LogLevel, TrainingLogger};
use observatory::storage::{LogReader, StorageConfig, TieredStorage};

use crate::{obs, tempdir};

const CHILD_DIR: &str = "OBS_TEST_RANK_DIR";
const SYNC_DIR: &str = "OBS_TEST_SYNC_DIR";
const STRAGGLE_MS: &str = "OBS_TEST_STRAGGLE_MS";
const MLFLOW_URI: &str = "OBS_TEST_MLFLOW_URI";
const WORLD: u32 = 4;
const SLOW_RANK: u32 = 2;
/// The rank whose shard holds a broken record: its loss and gradients go NaN at one step.
const NAN_RANK: u32 = 3;
const EPOCHS: u64 = 3;
const BATCH: usize = 16;
const TRAIN_SAMPLES: usize = 384;

/// The configuration of `rank`: the same seed everywhere (same initial weights and data), a
/// shard each; the broken record sits in the NaN rank's shard.
fn config(rank: u32) -> RunConfig {
    RunConfig {
        epochs: EPOCHS,
        batch_size: BATCH,
        train_samples: TRAIN_SAMPLES,
        val_samples: 64,
        shard: Some((rank as usize, WORLD as usize)),
        inject_spike_at: (rank == NAN_RANK).then_some((1, 2)),
        corruption: Corruption::NanInput,
        ..RunConfig::for_scenario(Scenario::Healthy)
    }
}

/// The all-reduce: rank 0 accepts one connection per other rank, sums every rank's gradients in
/// rank order and sends the mean back, so every rank applies exactly the same update.
enum Link {
    Root(Vec<TcpStream>),
    Leaf(TcpStream),
}

fn connect(sync: &Path, rank: u32) -> Link {
    let port_file = sync.join("allreduce.port");
    if rank == 0 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tmp = sync.join("allreduce.port.tmp");
        std::fs::write(&tmp, listener.local_addr().unwrap().port().to_string()).unwrap();
        std::fs::rename(&tmp, &port_file).unwrap();
        let mut peers: Vec<Option<TcpStream>> = (1..WORLD).map(|_| None).collect();
        for _ in 1..WORLD {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = [0u8; 4];
            s.read_exact(&mut r).unwrap();
            s.set_nodelay(true).unwrap();
            peers[u32::from_le_bytes(r) as usize - 1] = Some(s);
        }
        Link::Root(peers.into_iter().map(Option::unwrap).collect())
    } else {
        let start = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "rank 0 never listened");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut s = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(&rank.to_le_bytes()).unwrap();
        Link::Leaf(s)
    }
}

fn send(s: &mut TcpStream, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    s.write_all(&bytes).unwrap();
}

fn receive(s: &mut TcpStream, n: usize) -> Vec<f32> {
    let mut bytes = vec![0u8; n * 4];
    s.read_exact(&mut bytes).unwrap();
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl Link {
    /// Replaces `local` by the mean over every rank.
    fn all_reduce(&mut self, local: &mut [f32]) {
        match self {
            Link::Root(peers) => {
                let mut sum = local.to_vec();
                for p in peers.iter_mut() {
                    for (s, v) in sum.iter_mut().zip(receive(p, local.len())) {
                        *s += v;
                    }
                }
                for (l, s) in local.iter_mut().zip(&sum) {
                    *l = s / WORLD as f32;
                }
                for p in peers.iter_mut() {
                    send(p, local);
                }
            }
            Link::Leaf(s) => {
                send(s, local);
                local.copy_from_slice(&receive(s, local.len()));
            }
        }
    }
}

/// One rank: forwards every hook to the logger, averages the gradients across the ranks, and
/// (the slow rank) stalls at the end of each epoch's training outside the synchronised part,
/// as a rank whose evaluation or data loading is slow does.
struct Rank<'a> {
    inner: &'a mut LoggerObserver,
    link: Link,
    pause: Duration,
    last_batch: u64,
}

impl TrainObserver for Rank<'_> {
    fn train_start(&mut self, c: &RunConfig, l: &[obs_testkit::LayerInfo]) {
        self.inner.train_start(c, l);
    }
    fn epoch_start(&mut self, epoch: u64) {
        self.inner.epoch_start(epoch);
    }
    fn batch_start(&mut self, epoch: u64, batch: u64) {
        self.inner.batch_start(epoch, batch);
    }
    fn layer_forward(&mut self, layer: &obs_testkit::LayerInfo, output: TensorView<'_>) {
        self.inner.layer_forward(layer, output);
    }
    fn layer_backward(&mut self, layer: &obs_testkit::LayerInfo, grad: TensorView<'_>) {
        self.inner.layer_backward(layer, grad);
    }
    fn reduce_gradients(&mut self, gradients: &mut [&mut [f32]]) {
        let mut flat: Vec<f32> = gradients.iter().flat_map(|g| g.iter().copied()).collect();
        self.link.all_reduce(&mut flat);
        // As a mixed-precision gradient scaler does: a step whose averaged gradient is not
        // finite is skipped on every rank (zero gradients), so one broken record cannot
        // poison the weights all ranks share.
        if flat.iter().any(|g| !g.is_finite()) {
            flat.fill(0.0);
        }
        let mut rest = &flat[..];
        for g in gradients.iter_mut() {
            let (mine, tail) = rest.split_at(g.len());
            g.copy_from_slice(mine);
            rest = tail;
        }
    }
    fn weight_updated(
        &mut self,
        layer: &obs_testkit::LayerInfo,
        weights: TensorView<'_>,
        update_norm: f64,
    ) {
        self.inner.weight_updated(layer, weights, update_norm);
    }
    fn batch_end(&mut self, report: &BatchReport) {
        self.inner.batch_end(report);
        if report.batch == self.last_batch {
            std::thread::sleep(self.pause);
        }
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
    let sync = PathBuf::from(std::env::var_os(SYNC_DIR).expect("the sync directory is set"));
    let logger =
        TrainingLogger::builder().level(LogLevel::Detailed).rank_from_env().build().unwrap();
    let (rank, world) = logger.rank().expect("RANK and WORLD_SIZE are set");
    assert_eq!(world, WORLD);
    let storage =
        TieredStorage::with_config(StorageConfig::new(Path::new(&dir)).rank(rank)).unwrap();
    logger.add_backend(storage).unwrap();
    // All ranks report to one MLflow run, found through the job's run group; each writes the
    // run id it joined for the parent to compare.
    if let Some(uri) = std::env::var_os(MLFLOW_URI).filter(|u| !u.is_empty()) {
        let bridge = observatory::bridges::MlflowBridge::builder("obs-ddp-test")
            .tracking_uri(uri.to_string_lossy())
            .run_name("ddp")
            .run_group(sync.display().to_string())
            .rank(rank, WORLD)
            .storage_dir(Path::new(&dir).join(format!("rank-{rank}")))
            .create()
            .unwrap();
        std::fs::write(sync.join(format!("mlflow-run.{rank}")), bridge.run_id()).unwrap();
        logger.add_backend(bridge).unwrap();
    }
    let config = config(rank);
    let pause = std::env::var(STRAGGLE_MS).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let per_rank = TRAIN_SAMPLES / WORLD as usize;
    let mut observer = LoggerObserver::new(logger.clone());
    let mut me = Rank {
        inner: &mut observer,
        link: connect(&sync, rank),
        pause: Duration::from_millis(pause),
        last_batch: (per_rank.div_ceil(BATCH) - 1) as u64,
    };
    obs_testkit::train(&config, &mut me);
    let report = logger.close().unwrap();
    // Every backend (storage, and the MLflow bridge when given) took every event.
    assert!(report.failures.is_empty(), "rank {rank}: {:?}", report.failures);
    assert_eq!(report.dropped, 0, "rank {rank}");
}

/// Starts the four rank processes (the slow rank stalling `straggle_ms` per epoch), reporting
/// to `mlflow` when given, and waits for them; returns the run directory.
fn launch(dir: &Path, mlflow: Option<String>, straggle_ms: u64) -> PathBuf {
    let run = dir.join("run");
    let children: Vec<_> = (0..WORLD)
        .map(|rank| {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args(["ranks::rank_child", "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_DIR, &run)
                .env(SYNC_DIR, dir)
                .env(MLFLOW_URI, mlflow.clone().unwrap_or_default())
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", WORLD.to_string())
                .env(STRAGGLE_MS, if rank == SLOW_RANK { straggle_ms } else { 0 }.to_string());
            (rank, cmd.spawn().unwrap())
        })
        .collect();
    for (rank, mut child) in children {
        assert!(child.wait().unwrap().success(), "rank {rank} failed");
    }
    run
}

/// The four ranks into one MLflow run on a real server (a run of its own: the server's CPU use
/// on this machine would blur the straggler timing of [`four_ranks_in_one_run`]).
#[test]
fn four_ranks_report_to_one_mlflow_run() {
    let Some(python) = obs_testkit::mlflow::python() else { return };
    let dir = tempdir();
    let mlflow_dir = dir.path().join("mlflow");
    std::fs::create_dir(&mlflow_dir).unwrap();
    let server = obs_testkit::mlflow::Server::start(&python, &mlflow_dir);
    let run = launch(dir.path(), Some(server.uri()), 0);
    let events: Vec<_> = LogReader::open(&run).unwrap().read_all().unwrap().collect();
    mlflow_holds_every_rank(&server, dir.path(), &run, &events);
}

#[test]
fn four_ranks_in_one_run() {
    let dir = tempdir();
    let run = launch(dir.path(), None, 600);

    let reader = LogReader::open(&run).unwrap();
    assert_eq!(reader.ranks(), vec![0, 1, 2, 3]);
    let events: Vec<_> = reader.read_all().unwrap().collect();
    assert!(events.iter().all(|e| e.rank.is_some() && e.world_size == Some(WORLD)));
    for rank in 0..WORLD {
        let epochs = events
            .iter()
            .filter(|e| e.rank == Some(rank) && e.event_type == EventType::EpochEnd)
            .count();
        assert_eq!(epochs, 3, "rank {rank}");
    }
    // Data-parallel for real: every rank applied the same averaged updates to the same
    // initial weights, so the validation loss (same validation set) agrees to the bit at every
    // epoch, while the training losses (a shard each) differ.
    let epoch_metric = |rank: u32, key: &str| -> Vec<f64> {
        events
            .iter()
            .filter(|e| e.rank == Some(rank) && e.event_type == EventType::EpochEnd)
            .map(|e| {
                let m = e.data.get("metrics").and_then(|m| m.as_map()).expect("epoch metrics");
                m.get(key).and_then(|v| v.as_f64()).expect(key)
            })
            .collect()
    };
    let val0 = epoch_metric(0, "val_loss");
    assert!(val0.iter().all(|v| v.is_finite()), "{val0:?}");
    for rank in 1..WORLD {
        assert_eq!(epoch_metric(rank, "val_loss"), val0, "rank {rank} left the shared weights");
        assert_ne!(epoch_metric(rank, "loss"), epoch_metric(0, "loss"), "rank {rank}");
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
        // Findings per rank: only the rank with the broken record has any (its NaN step was
        // skipped everywhere, so the others stayed healthy).
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

    // `obs tail` prints every rank's events, each line tagged with its rank.
    let tail = obs(dir.path(), &["tail", "run", "--no-follow"]).expect(0);
    for rank in 0..WORLD {
        let ends = tail
            .stdout
            .lines()
            .filter(|l| l.starts_with(&format!("r{rank} ")) && l.contains("train_end"))
            .count();
        assert_eq!(ends, 1, "rank {rank}:\n{}", tail.stdout);
    }
}

/// The MLflow side of the 4-process run: one run for every rank, per-rank keys holding exactly
/// the stored losses, and `obs export --mlflow` adding cross-rank mean/min/max.
fn mlflow_holds_every_rank(
    server: &obs_testkit::mlflow::Server,
    dir: &Path,
    run: &Path,
    events: &[observatory::core::Event],
) {
    let ids: Vec<String> = (0..WORLD)
        .map(|r| std::fs::read_to_string(dir.join(format!("mlflow-run.{r}"))).unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one MLflow run for all ranks: {ids:?}");
    let got: serde_json::Value = serde_json::from_str(&server.read_back(&ids[0])).unwrap();
    assert_eq!(got["status"], "FINISHED", "{got}");
    assert_eq!(got["tags"]["world_size"], "4");
    // The stored batch losses of each rank, in step order.
    let losses = |rank: u32| -> Vec<f64> {
        events
            .iter()
            .filter(|e| e.rank == Some(rank) && e.event_type == EventType::BatchEnd)
            .map(|e| {
                let m = e.data.get("metrics").and_then(|m| m.as_map()).expect("batch metrics");
                m.get("loss").and_then(|v| v.as_f64()).expect("loss")
            })
            .collect()
    };
    let history = |got: &serde_json::Value, key: &str| -> Vec<f64> {
        got["metrics"][key]
            .as_array()
            .unwrap_or_else(|| {
                panic!(
                    "no {key} in {:?}",
                    got["metrics"].as_object().map(|m| m.keys().collect::<Vec<_>>())
                )
            })
            .iter()
            .map(|m| m[1].as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    for rank in 0..WORLD {
        assert_eq!(got["tags"][format!("obs.rank.{rank}")], format!("{rank}/4"));
        let live = history(&got, &format!("batch/metrics/loss/rank-{rank}"));
        let stored = losses(rank);
        assert_eq!(live.len(), stored.len(), "rank {rank}");
        for (a, b) in live.iter().zip(&stored) {
            assert!(a == b || (a.is_nan() && b.is_nan()), "rank {rank}: {live:?} vs {stored:?}");
        }
    }

    let export = obs(dir, &["export", "--mlflow", &server.uri(), run.to_str().unwrap()]).expect(0);
    let run_id = export
        .stdout
        .split("into run ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id in {}", export.stdout));
    let got: serde_json::Value = serde_json::from_str(&server.read_back(run_id)).unwrap();
    let all: Vec<Vec<f64>> = (0..WORLD).map(losses).collect();
    let (mean, min, max) = (
        history(&got, "batch/metrics/loss/mean"),
        history(&got, "batch/metrics/loss/min"),
        history(&got, "batch/metrics/loss/max"),
    );
    // Steps where every rank's loss is finite (the NaN rank's broken step is left out).
    let mut checked = 0;
    for step in 0..all[0].len() {
        let at: Vec<f64> = all.iter().map(|l| l[step]).collect();
        if at.iter().all(|v| v.is_finite()) {
            assert_eq!(min[step], at.iter().copied().fold(f64::INFINITY, f64::min), "step {step}");
            assert_eq!(
                max[step],
                at.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                "step {step}"
            );
            assert!((mean[step] - at.iter().sum::<f64>() / 4.0).abs() < 1e-12, "step {step}");
            checked += 1;
        }
    }
    assert!(checked >= all[0].len() - 1, "{checked} steps checked");
}
