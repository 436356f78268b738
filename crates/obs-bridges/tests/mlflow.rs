//! The MLflow bridge against a real tracking server: `mlflow server` from PyPI (SQLite backend
//! store, loopback port), started here, read back with MLflow's own `MlflowClient`.
//!
//! `cargo xtask test` provisions `target/mlflow-venv` and sets `OBS_MLFLOW_PYTHON`. Under CI
//! (`CI=true`) a missing interpreter fails these tests; locally they skip with a loud message.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use obs_bridges::MlflowBridge;
use obs_core::{Backend, Event, EventType, LogLevel, data};
use serde_json::Value as Json;

fn python() -> Option<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let given = std::env::var_os("OBS_MLFLOW_PYTHON").filter(|p| !p.is_empty()).map(PathBuf::from);
    let fallback = || {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/mlflow-venv/bin/python");
        p.exists().then_some(p)
    };
    let candidate = given.or_else(|| if ci { None } else { fallback() });
    let usable = candidate.as_ref().is_some_and(|p| {
        Command::new(p).args(["-c", "import mlflow"]).output().is_ok_and(|o| o.status.success())
    });
    if usable {
        return candidate;
    }
    let why = "OBS_MLFLOW_PYTHON is not set or cannot import mlflow";
    assert!(!ci, "{why}: the MLflow server tests must run in CI (use `cargo xtask test`)");
    eprintln!("SKIPPED: {why}; run `cargo xtask test` to provision target/mlflow-venv");
    None
}

/// A running `mlflow server`, killed on drop (also when the test panics).
struct Server {
    child: Option<Child>,
    python: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn start(python: &Path, dir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = Self { child: None, python: python.to_owned(), dir: dir.to_owned(), port };
        s.spawn();
        s
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mlflow = self.python.with_file_name("mlflow");
        let db = format!("sqlite:///{}", self.dir.join("mlflow.db").display());
        let log =
            std::fs::File::create(self.dir.join(format!("server-{}.log", self.port))).unwrap();
        let child = Command::new(mlflow)
            .args(["server", "--backend-store-uri", &db, "--host", "127.0.0.1", "--workers", "1"])
            .args(["--port", &self.port.to_string()])
            .args(["--default-artifact-root", &self.dir.join("artifacts").display().to_string()])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start mlflow server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if healthy(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("mlflow server did not answer within 120 s; see {}", self.dir.display());
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // The server forks workers: end its whole process group.
            let _ = Command::new("kill").args(["-9", "--", &format!("-{}", c.id())]).status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

use std::os::unix::process::CommandExt;

/// Whether `GET /health` answers 200.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

trait Timed {
    fn time(self, t: f64) -> Self;
}

impl Timed for Event {
    fn time(mut self, t: f64) -> Self {
        self.timestamp = t;
        self
    }
}

const READ_BACK: &str = r#"
import json, sys
from mlflow.tracking import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
run = c.get_run(sys.argv[2])
out = {"status": run.info.status, "params": run.data.params, "tags": run.data.tags, "metrics": {}}
for key in run.data.metrics:
    hist = c.get_metric_history(sys.argv[2], key)
    out["metrics"][key] = sorted([[m.step, m.value, m.timestamp] for m in hist])
print(json.dumps(out))
"#;

fn read_back(python: &Path, uri: &str, run_id: &str) -> Json {
    let out = Command::new(python).args(["-c", READ_BACK, uri, run_id]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn loss(epoch: u64, batch: u64) -> f64 {
    1.0 / (1.0 + epoch as f64 * 10.0 + batch as f64) + 1e-13 * batch as f64
}

fn events(epochs: u64, batches: u64) -> Vec<Event> {
    let t0 = 1_700_000_000.0;
    let mut out = vec![Event::new(EventType::TrainStart, LogLevel::Basic).time(t0).data(data! {
        "total_epochs" => epochs,
        "hyperparameters" => data! { "lr" => 0.01, "optimizer" => "adam" },
        "fingerprint" => data! {
            "git" => data! { "commit" => "0123abcd", "branch" => "main", "dirty" => false },
            "seed" => 42,
        },
    })];
    let mut t = t0;
    for epoch in 0..epochs {
        for batch in 0..batches {
            t += 0.001;
            out.push(
                Event::new(EventType::BatchEnd, LogLevel::Basic)
                    .at(Some(epoch), Some(batch))
                    .time(t)
                    .data(data! { "loss" => loss(epoch, batch) }),
            );
        }
        t += 0.001;
        out.push(
            Event::new(EventType::EpochEnd, LogLevel::Basic)
                .at(Some(epoch), None)
                .time(t)
                .data(data! { "val_loss" => loss(epoch, 0) * 2.0 }),
        );
    }
    out.push(
        Event::new(EventType::HealthCheck, LogLevel::Basic)
            .at(Some(0), None)
            .time(t)
            .message("loss plateau")
            .field("rule_name", "plateau"),
    );
    out.push(Event::new(EventType::TrainEnd, LogLevel::Basic).time(t + 0.001));
    out
}

fn check_metrics(got: &Json, epochs: u64, batches: u64) {
    let hist = |key: &str| -> Vec<(u64, f64)> {
        got["metrics"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no metric {key}: {got}"))
            .iter()
            .map(|r| (r[0].as_u64().unwrap(), r[1].as_f64().unwrap()))
            .collect()
    };
    let want: Vec<(u64, f64)> = (0..epochs)
        .flat_map(|e| (0..batches).map(move |b| (e * batches + b, loss(e, b))))
        .collect();
    assert_eq!(hist("batch/loss"), want, "every batch value and step, exactly once");
    let want: Vec<(u64, f64)> = (0..epochs).map(|e| (e, loss(e, 0) * 2.0)).collect();
    assert_eq!(hist("epoch/val_loss"), want);
    assert_eq!(hist("health/warnings").len(), 1);
    assert_eq!(hist("health/plateau"), [(batches * epochs - 1, 1.0)]);
}

#[test]
fn a_run_reads_back_exactly_with_mlflows_own_client() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&python, dir.path());
    let (epochs, batches) = (3, 700); // 2100 batch values: three log-batch requests at least
    let mut bridge = MlflowBridge::builder("obs-it")
        .tracking_uri(server.uri())
        .token("tok-never-logged")
        .run_name("it-run")
        .tag("team", "observatory")
        .create()
        .unwrap();
    let run_id = bridge.run_id().to_owned();
    let evs = events(epochs, batches);
    for chunk in evs.chunks(256) {
        Backend::write(&mut bridge, chunk).unwrap();
    }
    bridge.close().unwrap();
    assert_eq!(bridge.stats().status, Some("FINISHED"));
    assert!(bridge.stats().batches >= 3, "{:?}", bridge.stats());
    let got = read_back(&python, &server.uri(), &run_id);
    assert_eq!(got["status"], "FINISHED");
    check_metrics(&got, epochs, batches);
    // Timestamps are the events' own, in milliseconds.
    assert_eq!(got["metrics"]["batch/loss"][0][2].as_i64(), Some(1_700_000_000_001));
    let params = &got["params"];
    assert_eq!(params["lr"], "0.01");
    assert_eq!(params["optimizer"], "adam");
    assert_eq!(params["total_epochs"], "3");
    assert_eq!(params["fingerprint/seed"], "42");
    assert_eq!(params["fingerprint/git/commit"], "0123abcd");
    let tags = &got["tags"];
    assert_eq!(tags["mlflow.runName"], "it-run");
    assert_eq!(tags["team"], "observatory");
    assert_eq!(tags["git.commit"], "0123abcd");
    assert_eq!(tags["git.branch"], "main");
    assert_eq!(tags["git.dirty"], "false");
    assert_eq!(tags["mlflow.source.git.commit"], "0123abcd");
    assert_eq!(tags["obs.health.last"], "[plateau] loss plateau");
    assert_eq!(tags["obs.health.rules"], "plateau=1");
    let log: String = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(!log.contains("tok-never-logged"), "the token reached the server log");
    assert!(!format!("{bridge:?}").contains("tok-never-logged"));
}

#[test]
fn a_server_killed_and_restarted_mid_run_loses_nothing() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&python, dir.path());
    let (epochs, batches) = (4, 500);
    let mut bridge = MlflowBridge::builder("obs-restart")
        .tracking_uri(server.uri())
        .attempts(6)
        .backoff(Duration::from_millis(100))
        .timeout(Duration::from_secs(10))
        .retry_interval(Duration::from_millis(200))
        .create()
        .unwrap();
    let run_id = bridge.run_id().to_owned();
    let evs = events(epochs, batches);
    let half = evs.len() / 2;
    for chunk in evs[..half].chunks(100) {
        Backend::write(&mut bridge, chunk).unwrap();
    }
    server.kill();
    let t = Instant::now();
    for chunk in evs[half..].chunks(100) {
        // The bus thread keeps going while the server is down: writes queue, they never fail.
        Backend::write(&mut bridge, chunk).unwrap();
    }
    assert!(t.elapsed() < Duration::from_secs(60), "writes stalled: {:?}", t.elapsed());
    let err = Backend::flush(&mut bridge).unwrap_err();
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(bridge.queued() > 0);
    server.spawn();
    bridge.close().unwrap();
    assert!(bridge.stats().retries > 0);
    let got = read_back(&python, &server.uri(), &run_id);
    assert_eq!(got["status"], "FINISHED");
    check_metrics(&got, epochs, batches);
}

fn rank_loss(rank: u32, epoch: u64, batch: u64) -> f64 {
    loss(epoch, batch) * (1.0 + f64::from(rank) / 8.0)
}

fn rank_events(rank: u32, epochs: u64, batches: u64) -> Vec<Event> {
    let mut evs = events(epochs, batches);
    for e in &mut evs {
        if e.event_type == EventType::BatchEnd {
            let (ep, b) = (e.epoch.unwrap(), e.batch.unwrap());
            e.data = data! { "loss" => rank_loss(rank, ep, b) };
        }
    }
    evs
}

#[test]
fn ranks_share_one_run_with_per_rank_and_cross_rank_keys() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&python, dir.path());
    let (epochs, batches, world) = (2, 30, 4u32);
    // Live: four ranks (threads here; processes in practice) find one run by their group.
    let group = "job-4711";
    let threads: Vec<_> = (0..world)
        .map(|rank| {
            let uri = server.uri();
            std::thread::spawn(move || {
                let mut b = MlflowBridge::builder("obs-ranks")
                    .tracking_uri(uri)
                    .run_name("ddp")
                    .run_group(group)
                    .rank(rank, world)
                    .create()
                    .unwrap();
                Backend::write(&mut b, &rank_events(rank, epochs, batches)).unwrap();
                b.close().unwrap();
                b.run_id().to_owned()
            })
        })
        .collect();
    let ids: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one run for all ranks: {ids:?}");
    let got = read_back(&python, &server.uri(), &ids[0]);
    assert_eq!(got["status"], "FINISHED");
    assert_eq!(got["tags"]["obs.run_group"], group);
    assert_eq!(got["tags"]["rank"], "0");
    assert_eq!(got["tags"]["world_size"], "4");
    for rank in 0..world {
        assert_eq!(got["tags"][format!("obs.rank.{rank}")], format!("{rank}/4"));
        let key = format!("batch/loss/rank-{rank}");
        let hist = got["metrics"][&key].as_array().unwrap_or_else(|| panic!("no {key}"));
        assert_eq!(hist.len() as u64, epochs * batches);
        assert_eq!(hist[7][1].as_f64(), Some(rank_loss(rank, 0, 7)));
    }

    // Offline: the stored logs of four ranks, exported with cross-rank statistics.
    let ranks: Vec<(u32, Vec<Event>)> =
        (0..world).map(|r| (r, rank_events(r, epochs, batches))).collect();
    let run_id = obs_bridges::export_ranks(
        MlflowBridge::builder("obs-ranks-export").tracking_uri(server.uri()).run_name("ddp"),
        ranks,
    )
    .unwrap();
    let got = read_back(&python, &server.uri(), &run_id);
    assert_eq!(got["status"], "FINISHED");
    let at = |key: &str, i: usize| got["metrics"][key][i][1].as_f64().unwrap();
    let all: Vec<f64> = (0..world).map(|r| rank_loss(r, 1, 3)).collect();
    let i = (batches + 3) as usize;
    assert_eq!(at("batch/loss/rank-2", i), all[2]);
    assert_eq!(at("batch/loss/min", i), all[0]);
    assert_eq!(at("batch/loss/max", i), all[3]);
    assert_eq!(at("batch/loss/mean", i), all.iter().sum::<f64>() / 4.0);
    assert_eq!(
        got["metrics"]["batch/loss/mean"].as_array().unwrap().len() as u64,
        epochs * batches
    );
    assert_eq!(got["params"]["lr"], "0.01");
}

const PY_BENCH: &str = r#"
import sys, time
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
exp = c.create_experiment("py-bench-" + sys.argv[3])
run = c.create_run(exp).info.run_id
n = int(sys.argv[2])
metrics = [Metric("batch/loss", 1.0 / (1 + i), 1_700_000_000_000 + i, i) for i in range(n)]
t = time.perf_counter()
for i in range(0, n, 1000):
    c.log_batch(run, metrics=metrics[i:i + 1000])
print(n / (time.perf_counter() - t))
"#;

/// Metric values per second into the local server: `MlflowBridge` against MLflow's own Python
/// client `log_batch`, in one run. A report, not a check: run with
/// `cargo test -p obs-bridges --features mlflow --release --test mlflow -- --ignored --nocapture`.
#[test]
#[ignore = "a throughput report; run explicitly"]
#[allow(clippy::print_stdout, reason = "the report is the output")]
fn bench_metric_throughput_against_the_python_client() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&python, dir.path());
    let n: u64 = 50_000;
    let evs: Vec<Event> = (0..n)
        .map(|i| {
            Event::new(EventType::BatchEnd, LogLevel::Basic)
                .at(Some(0), Some(i))
                .time(1_700_000_000.0 + i as f64 * 1e-3)
                .data(data! { "loss" => 1.0 / (1.0 + i as f64) })
        })
        .collect();
    // The server's first requests are several times slower: warm it up (untimed) first.
    let py_run = |size: u64, name: &str| {
        let args = ["-c", PY_BENCH, &server.uri(), &size.to_string(), name];
        Command::new(&python).args(args).output()
    };
    assert!(py_run(10_000, "warm-up").unwrap().status.success());
    let out = py_run(n, "timed");
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let mut bridge = MlflowBridge::builder("rs-bench").tracking_uri(server.uri()).create().unwrap();
    let t = Instant::now();
    for chunk in evs.chunks(512) {
        Backend::write(&mut bridge, chunk).unwrap();
    }
    bridge.close().unwrap();
    let rust = n as f64 / t.elapsed().as_secs_f64();
    assert_eq!(bridge.stats().metrics_sent, n);
    println!(
        "MLflow log-batch, {n} metric values: MlflowBridge {rust:.0}/s, Python MlflowClient \
         {py:.0}/s, ratio {:.2}x",
        rust / py
    );
}
