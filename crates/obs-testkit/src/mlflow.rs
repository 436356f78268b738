//! A real `mlflow server` for tests: started on a free loopback port with a SQLite backend
//! store, killed (its whole process group) on drop, also when the test panics; and MLflow's own
//! Python client to read a run back.
//!
//! The interpreter is `OBS_MLFLOW_PYTHON` (`cargo xtask test` provisions `target/mlflow-venv`
//! and sets it). Under CI (`CI=true`) a missing or unusable interpreter fails the test; locally
//! the test skips with a loud message.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python interpreter with `mlflow` installed, or `None` (after a loud message) outside CI.
///
/// # Panics
/// Under CI when there is none: the MLflow tests must run there.
pub fn python() -> Option<PathBuf> {
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
    eprintln!(
        "\n*** SKIPPED: {why}; run `cargo xtask test` to provision target/mlflow-venv. \
         CI would FAIL here. ***\n"
    );
    None
}

/// A running `mlflow server`, killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    python: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Server {
    /// Starts a server whose store and logs live in `dir`, and waits until it answers.
    ///
    /// # Panics
    /// When it cannot be started or does not answer within 120 s.
    pub fn start(python: &Path, dir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut s = Server { child: None, python: python.to_owned(), dir: dir.to_owned(), port };
        s.spawn();
        s
    }

    /// The tracking URI.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory holding the store and the server's log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts the server again on the same port and store (after [`Server::kill`]).
    ///
    /// # Panics
    /// As [`Server::start`].
    pub fn spawn(&mut self) {
        let mlflow = self.python.with_file_name("mlflow");
        let db = format!("sqlite:///{}", self.dir.join("mlflow.db").display());
        let log = std::fs::File::create(self.dir.join(format!("server-{}.log", self.port)))
            .expect("the server log");
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

    /// Kills the server and every worker it forked.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // The server forks workers: end its whole process group.
            let _ = Command::new("kill").args(["-9", "--", &format!("-{}", c.id())]).status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Run `run_id` as MLflow's own `MlflowClient` sees it, as JSON: `status`, `params`, `tags`
    /// and `metrics` (each key's full history as sorted `[step, value, timestamp]` triples; a
    /// non-finite value is the string `"nan"`, `"inf"` or `"-inf"`).
    ///
    /// # Panics
    /// When the client fails.
    pub fn read_back(&self, run_id: &str) -> String {
        let out = Command::new(&self.python)
            .args(["-c", READ_BACK, &self.uri(), run_id])
            .output()
            .expect("run the MLflow client");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

const READ_BACK: &str = r#"
import json, math, sys
from mlflow.tracking import MlflowClient
# Strict JSON: non-finite values become the strings "nan", "inf", "-inf".
num = lambda v: v if math.isfinite(v) else str(v)
c = MlflowClient(tracking_uri=sys.argv[1])
run = c.get_run(sys.argv[2])
out = {"status": run.info.status, "params": run.data.params, "tags": run.data.tags, "metrics": {}}
for key in run.data.metrics:
    hist = c.get_metric_history(sys.argv[2], key)
    out["metrics"][key] = sorted([[m.step, num(m.value), m.timestamp] for m in hist])
print(json.dumps(out))
"#;

/// Whether `GET /health` answers 200.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}
