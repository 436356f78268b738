//! An MLflow tracking server, fed over its REST API (`/api/2.0/mlflow/...`): the bridge finds or
//! creates the experiment, creates the run (or joins an existing one), sends metrics, params and
//! tags with `runs/log-batch`, and ends the run with `runs/update`.
//!
//! Delivery, in short (details in `docs/mlflow.md`):
//! * values are queued on the bus thread and sent in batches within the server's limits (at most
//!   1000 metrics, 100 params and 100 tags, 1000 items in all, per request);
//! * connection errors, timeouts and 5xx answers are retried with exponential backoff, resending
//!   exactly the same `(key, value, step, timestamp)` tuples; 4xx answers are not retried;
//! * every request is bounded by a timeout, and while the server is down the bus thread makes at
//!   most one short attempt per [`MlflowBuilder::retry_interval`], so training never waits on it;
//! * the queue is bounded ([`MlflowBuilder::max_buffered`]); what falls out of it during a long
//!   outage is resent from the run's stored logs ([`MlflowBuilder::storage_dir`]) once the server
//!   answers again;
//! * a server that stays down makes `flush`/`close` fail, which the bus turns into a
//!   `backend_failure` health event.
//!
//! The token (`MLFLOW_TRACKING_TOKEN`) is sent as `Authorization: Bearer ...` and never appears in
//! `Debug` output, errors or log lines.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use obs_core::{Backend, BackendError, Event, EventType, Value, unix_now};
use serde_json::{Value as Json, json};

use crate::BridgeError;
use crate::steps::{LAYER_STATS, Steps, for_each_leaf, health_rule, layer_name};

/// The most metrics one `runs/log-batch` request may carry.
pub const MAX_BATCH_METRICS: usize = 1000;
/// The most params one `runs/log-batch` request may carry.
pub const MAX_BATCH_PARAMS: usize = 100;
/// The most tags one `runs/log-batch` request may carry.
pub const MAX_BATCH_TAGS: usize = 100;
/// The most items (metrics, params and tags together) one request may carry.
const MAX_BATCH_ITEMS: usize = 1000;
/// Longest metric, param or tag key the server accepts.
const MAX_KEY: usize = 250;
/// Longest param value the server accepts.
const MAX_PARAM_VALUE: usize = 6000;
/// Longest tag value the bridge sends (the server's limit is larger in recent versions).
const MAX_TAG_VALUE: usize = 5000;

/// A secret that prints as `<redacted>`.
#[derive(Clone, Default)]
struct Secret(Option<String>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(<redacted>)"),
            None => f.write_str("None"),
        }
    }
}

/// How a run ends, settable from anywhere after the bridge moved into a logger.
///
/// Without a mark, the run ends `FINISHED` after a `train_end` event and `FAILED` without one.
#[derive(Clone, Debug, Default)]
pub struct RunOutcome(Arc<AtomicU8>);

impl RunOutcome {
    const FAILED: u8 = 1;
    const KILLED: u8 = 2;

    /// The run failed: it ends `FAILED`.
    pub fn mark_failed(&self) {
        self.0.store(Self::FAILED, Ordering::Relaxed);
    }

    /// The run was stopped on purpose (an interrupt): it ends `KILLED`.
    pub fn mark_killed(&self) {
        self.0.store(Self::KILLED, Ordering::Relaxed);
    }

    fn status(&self, train_ended: bool) -> &'static str {
        match self.0.load(Ordering::Relaxed) {
            Self::FAILED => "FAILED",
            Self::KILLED => "KILLED",
            _ if train_ended => "FINISHED",
            _ => "FAILED",
        }
    }
}

/// Counts of what an [`MlflowBridge`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MlflowStats {
    /// Events received.
    pub events: u64,
    /// Metric values the server accepted.
    pub metrics_sent: u64,
    /// Params the server accepted.
    pub params_sent: u64,
    /// Tags the server accepted.
    pub tags_sent: u64,
    /// `log-batch` requests the server accepted.
    pub batches: u64,
    /// Requests retried after a connection error, a timeout or a 5xx answer.
    pub retries: u64,
    /// Metric values that fell out of the full queue during an outage.
    pub dropped: u64,
    /// Of those, values resent from the stored logs.
    pub caught_up: u64,
    /// Values the server rejected with a 4xx answer (not retried).
    pub rejected: u64,
    /// The status sent on close, once closed.
    pub status: Option<&'static str>,
}

/// Options of an [`MlflowBridge`]; start from [`MlflowBridge::builder`].
#[derive(Clone, Debug)]
pub struct MlflowBuilder {
    uri: Option<String>,
    token: Secret,
    experiment: String,
    run_name: Option<String>,
    run_id: Option<String>,
    run_group: Option<String>,
    join_timeout: Duration,
    tags: Vec<(String, String)>,
    params: Vec<(String, String)>,
    storage_dir: Option<PathBuf>,
    rank: Option<(u32, u32)>,
    timeout: Duration,
    attempts: u32,
    backoff: Duration,
    retry_interval: Duration,
    max_buffered: usize,
}

impl MlflowBuilder {
    /// The tracking server, such as `http://127.0.0.1:5000` (default: `MLFLOW_TRACKING_URI`).
    #[must_use]
    pub fn tracking_uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = Some(uri.into());
        self
    }

    /// A bearer token (default: `MLFLOW_TRACKING_TOKEN`, when set).
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Secret(Some(token.into()));
        self
    }

    /// The run name (the `mlflow.runName` tag).
    #[must_use]
    pub fn run_name(mut self, name: impl Into<String>) -> Self {
        self.run_name = Some(name.into());
        self
    }

    /// Logs into an existing run instead of creating one: the run all ranks of a distributed
    /// run share (see `docs/mlflow.md`). Default: `OBS_MLFLOW_RUN_ID` when set. A bridge that
    /// joins a run leaves its status alone unless it is rank 0.
    #[must_use]
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// The distributed run this process belongs to (default: `OBS_RUN_GROUP` when set): rank 0
    /// creates the run with the tag `obs.run_group` set to `group`, and every other rank waits
    /// (at most [`MlflowBuilder::join_timeout`]) until it finds that run in the experiment and
    /// logs into it. An explicit [`MlflowBuilder::run_id`] wins over the group.
    #[must_use]
    pub fn run_group(mut self, group: impl Into<String>) -> Self {
        self.run_group = Some(group.into());
        self
    }

    /// How long a rank other than 0 waits for rank 0's run of its group (default 120 s).
    #[must_use]
    pub fn join_timeout(mut self, timeout: Duration) -> Self {
        self.join_timeout = timeout;
        self
    }

    /// Adds a run tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// Adds a run param (params from `train_start` are added as they come).
    #[must_use]
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// The run's storage directory (what `TieredStorage` writes): after an outage longer than
    /// the queue holds, the missing values are resent from there.
    #[must_use]
    pub fn storage_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.storage_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// This process is rank `rank` of `world_size`: metric keys get a `/rank-<rank>` suffix and
    /// the run gets `rank`/`world_size` tags.
    #[must_use]
    pub fn rank(mut self, rank: u32, world_size: u32) -> Self {
        self.rank = Some((rank, world_size));
        self
    }

    /// The bound on one request, connecting included (default 5 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attempts per request on flush and close, the first included (default 4); the waits
    /// between them double from [`MlflowBuilder::backoff`].
    #[must_use]
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The first wait between attempts (default 200 ms).
    #[must_use]
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// While the server is down, the bus thread tries one request at most this often
    /// (default 5 s).
    #[must_use]
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// The most metric values held while the server is down (default 100 000, about 10 MB).
    #[must_use]
    pub fn max_buffered(mut self, n: usize) -> Self {
        self.max_buffered = n.max(MAX_BATCH_METRICS);
        self
    }

    /// Connects: finds or creates the experiment, then creates the run (or checks the one given
    /// with [`MlflowBuilder::run_id`]) and sends the builder's params and tags.
    ///
    /// # Errors
    /// [`BridgeError::Config`] without a tracking URI or with one that is not `http://`;
    /// [`BridgeError::Http`] when the server cannot be reached after the retries or refuses.
    pub fn create(self) -> Result<MlflowBridge, BridgeError> {
        let uri = self
            .uri
            .clone()
            .or_else(|| std::env::var("MLFLOW_TRACKING_URI").ok().filter(|u| !u.is_empty()))
            .ok_or_else(|| {
                BridgeError::Config("no tracking URI: set MLFLOW_TRACKING_URI".to_owned())
            })?;
        let base = uri.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            return Err(BridgeError::Config(format!(
                "tracking URI {base:?} is not http:// (this build has no TLS)"
            )));
        }
        let token = match self.token.0.clone() {
            Some(t) => Secret(Some(t)),
            None => Secret(std::env::var("MLFLOW_TRACKING_TOKEN").ok().filter(|t| !t.is_empty())),
        };
        let client = Client::new(base, token, self.timeout, self.attempts, self.backoff);
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let run_id = self.run_id.clone().or_else(|| env("OBS_MLFLOW_RUN_ID"));
        let group = self.run_group.clone().or_else(|| env("OBS_RUN_GROUP"));
        let rank0 = self.rank.is_none_or(|(r, _)| r == 0);
        let (run_id, experiment_id, owns_status) = match (run_id, group) {
            (Some(id), _) => {
                let got = client.call_retry("GET", "runs/get", &json!({ "run_id": id }))?;
                let exp = got["run"]["info"]["experiment_id"].as_str().unwrap_or("").to_owned();
                (id, exp, rank0)
            }
            (None, Some(group)) if !rank0 => {
                let exp = client.experiment_id(&self.experiment)?;
                let id = client.find_group_run(&exp, &group, self.join_timeout)?;
                (id, exp, false)
            }
            (None, group) => {
                let exp = client.experiment_id(&self.experiment)?;
                let mut body = json!({
                    "experiment_id": exp,
                    "start_time": (unix_now() * 1000.0) as i64,
                });
                if let Some(name) = &self.run_name {
                    body["run_name"] = json!(name);
                }
                if let Some(group) = &group {
                    body["tags"] = json!([{ "key": "obs.run_group", "value": group }]);
                }
                let got = client.call_retry("POST", "runs/create", &body)?;
                let id = got["run"]["info"]["run_id"]
                    .as_str()
                    .ok_or_else(|| BridgeError::Http("runs/create returned no run id".to_owned()))?
                    .to_owned();
                (id, exp, true)
            }
        };
        let mut conv = Converter::new(self.rank.map(|(r, _)| r));
        let mut bridge = MlflowBridge {
            client,
            run_id,
            experiment_id,
            owns_status,
            storage_dir: self.storage_dir,
            rank: self.rank,
            metrics: VecDeque::new(),
            params: Vec::new(),
            tags: Vec::new(),
            max_buffered: self.max_buffered,
            dropped: None,
            down_until: None,
            retry_interval: self.retry_interval,
            last_error: None,
            outcome: RunOutcome::default(),
            closed: false,
            stats: MlflowStats::default(),
            conv: Converter::new(None),
        };
        if let Some(name) = &self.run_name {
            bridge.push(Item::Tag("mlflow.runName".to_owned(), name.clone()));
        }
        if let Some((rank, world)) = self.rank {
            bridge.push(Item::Tag("world_size".to_owned(), world.to_string()));
            bridge.push(Item::Tag(format!("obs.rank.{rank}"), format!("{rank}/{world}")));
            if bridge.owns_status {
                bridge.push(Item::Tag("rank".to_owned(), rank.to_string()));
            }
        }
        for (k, v) in self.tags {
            bridge.push(Item::Tag(k, v));
        }
        for (k, v) in self.params {
            conv.param(&k, v, &mut |i| bridge.push(i));
        }
        bridge.conv = conv;
        bridge.send_all(true)?;
        Ok(bridge)
    }
}

/// One value to send.
#[derive(Clone, Debug, PartialEq)]
enum Item {
    Metric(Metric),
    Param(String, String),
    Tag(String, String),
}

#[derive(Clone, Debug, PartialEq)]
struct Metric {
    key: String,
    value: f64,
    step: u64,
    timestamp_ms: i64,
    seq: u64,
}

/// Turns events into items, deterministically: replaying the same events gives the same items
/// with the same sequence numbers, which is what the catch-up from stored logs relies on.
#[derive(Debug, Default)]
struct Converter {
    steps: Steps,
    suffix: String,
    seq: u64,
    params: BTreeMap<String, String>,
    warnings: u64,
    per_rule: BTreeMap<String, u64>,
    train_ended: bool,
    rank: Option<u32>,
    /// The run's params come from this converter: it is not another rank's.
    owns_params: bool,
}

impl Converter {
    fn new(rank: Option<u32>) -> Self {
        Self {
            suffix: rank.map_or_else(String::new, |r| format!("/rank-{r}")),
            rank,
            owns_params: true,
            ..Self::default()
        }
    }

    fn metric(&mut self, key: &str, value: f64, step: u64, e: &Event, out: &mut impl FnMut(Item)) {
        let mut key = sanitize_key(key);
        key.push_str(&self.suffix);
        // Without a rank of its own, the bridge files a ranked event under the event's rank.
        if self.suffix.is_empty()
            && let Some(rank) = e.rank
        {
            key.push_str("/rank-");
            key.push_str(&rank.to_string());
        }
        let ts = if e.timestamp.is_finite() { e.timestamp } else { 0.0 };
        out(Item::Metric(Metric {
            key,
            value,
            step,
            timestamp_ms: (ts * 1000.0).round() as i64,
            seq: self.seq,
        }));
        self.seq += 1;
    }

    /// Params are immutable on the server: a key is sent once, with its first value, and only
    /// by the rank that owns the run's params.
    fn param(&mut self, key: &str, value: String, out: &mut impl FnMut(Item)) {
        if !self.owns_params {
            return;
        }
        let key = sanitize_key(key);
        if self.params.contains_key(&key) {
            return;
        }
        let value = truncate(&value, MAX_PARAM_VALUE);
        self.params.insert(key.clone(), value.clone());
        out(Item::Param(key, value));
    }

    fn event(&mut self, e: &Event, out: &mut impl FnMut(Item)) {
        match e.event_type {
            EventType::TrainStart => self.train_start(e, out),
            EventType::BatchEnd => {
                let step = self.steps.batch_end(e);
                self.leaves("batch/", &e.data, step, e, out);
            }
            EventType::EpochEnd => {
                let step = self.steps.epoch_end(e);
                self.leaves("epoch/", &e.data, step, e, out);
            }
            EventType::GradientComputed => {
                if let Some(x) = e.data.get("grad_norm").and_then(Value::as_f64) {
                    let step = self.steps.global(e);
                    self.metric(&format!("grad_norm/{}", layer_name(e)), x, step, e, out);
                }
            }
            EventType::LayerForward => self.layer(e, "activations", out),
            EventType::LayerBackward => self.layer(e, "gradients", out),
            EventType::WeightUpdated => self.layer(e, "weights", out),
            EventType::HealthCheck => {
                let step = self.steps.global(e);
                self.warnings += 1;
                let rule = sanitize_key(health_rule(e));
                let n = self.per_rule.entry(rule.clone()).or_default();
                *n += 1;
                let n = *n as f64;
                self.metric("health/warnings", self.warnings as f64, step, e, out);
                self.metric(&format!("health/{rule}"), n, step, e, out);
                let message = &e.message;
                out(Item::Tag(
                    format!("obs.health.last{}", self.suffix.replace('/', ".")),
                    truncate(&format!("[{rule}] {message}"), MAX_TAG_VALUE),
                ));
                let rules: Vec<String> =
                    self.per_rule.iter().map(|(r, n)| format!("{r}={n}")).collect();
                out(Item::Tag(
                    format!("obs.health.rules{}", self.suffix.replace('/', ".")),
                    truncate(&rules.join(","), MAX_TAG_VALUE),
                ));
            }
            EventType::TrainEnd => {
                self.train_ended = true;
                let step = self.steps.epoch_of(e);
                self.leaves("final/", &e.data, step, e, out);
            }
            EventType::EpochStart | EventType::BatchStart | EventType::EpochSummary => {}
        }
    }

    fn leaves(
        &mut self,
        prefix: &str,
        data: &obs_core::Data,
        step: u64,
        e: &Event,
        out: &mut impl FnMut(Item),
    ) {
        let mut found = Vec::new();
        for_each_leaf(data, &mut |k, v| {
            if let Some(x) = number(v) {
                found.push((format!("{prefix}{k}"), x));
            }
        });
        for (k, x) in found {
            self.metric(&k, x, step, e, out);
        }
    }

    fn layer(&mut self, e: &Event, prefix: &str, out: &mut impl FnMut(Item)) {
        let step = self.steps.global(e);
        let layer = layer_name(e);
        let extra = (e.event_type == EventType::WeightUpdated).then_some("update_norm");
        for stat in LAYER_STATS.iter().copied().chain(extra) {
            if let Some(x) = e.data.get(stat).and_then(number) {
                self.metric(&format!("{prefix}/{layer}/{stat}"), x, step, e, out);
            }
        }
    }

    fn train_start(&mut self, e: &Event, out: &mut impl FnMut(Item)) {
        // Params belong to the run, and every rank of a job shares one run: only rank 0 sends
        // them. Two ranks sending the same param at once race on the server's unique key (one
        // log-batch is refused whole, with its metrics), and a rank-specific value would
        // conflict with rank 0's anyway; what differs per rank goes in the `obs.rank.<n>` tags.
        self.owns_params = self.rank.or(e.rank).is_none_or(|r| r == 0);
        for (k, v) in &e.data {
            match (k, v) {
                ("hyperparameters", Value::Map(hp)) => {
                    let mut found = Vec::new();
                    for_each_leaf(hp, &mut |k, v| found.push((k.to_owned(), text(v))));
                    for (k, v) in found {
                        self.param(&k, v, out);
                    }
                }
                ("fingerprint", Value::Map(fp)) => {
                    let mut found = Vec::new();
                    for_each_leaf(fp, &mut |k, v| found.push((k.to_owned(), text(v))));
                    for (k, v) in found {
                        match k.as_str() {
                            "git/commit" => {
                                out(Item::Tag("mlflow.source.git.commit".to_owned(), v.clone()));
                                out(Item::Tag("git.commit".to_owned(), v.clone()));
                            }
                            "git/branch" => {
                                out(Item::Tag("mlflow.source.git.branch".to_owned(), v.clone()));
                                out(Item::Tag("git.branch".to_owned(), v.clone()));
                            }
                            "git/dirty" => out(Item::Tag("git.dirty".to_owned(), v.clone())),
                            _ => {}
                        }
                        self.param(&format!("fingerprint/{k}"), v, out);
                    }
                }
                (_, Value::Map(inner)) => {
                    let mut found = Vec::new();
                    for_each_leaf(inner, &mut |leaf, v| {
                        found.push((format!("{k}/{leaf}"), text(v)))
                    });
                    for (k, v) in found {
                        self.param(&k, v, out);
                    }
                }
                _ => self.param(k, text(v), out),
            }
        }
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(_) => None,
        other => other.as_f64(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => {
            let mut s = String::new();
            crate::json::value(&mut s, other);
            s
        }
    }
}

/// MLflow keys allow letters, digits, `_ - . / ` and spaces, at most 250 characters.
fn sanitize_key(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_-./ ".contains(c) { c } else { '_' })
        .take(MAX_KEY)
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    s
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A finite number as a JSON number; NaN and infinities as the strings protobuf's JSON mapping
/// (and so the server) reads.
fn metric_value(x: f64) -> Json {
    if x.is_nan() {
        json!("NaN")
    } else if x == f64::INFINITY {
        json!("Infinity")
    } else if x == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(x)
    }
}

/// Why a request failed.
#[derive(Debug)]
enum Failure {
    /// Worth retrying: no connection, a timeout, a 5xx answer.
    Transient(String),
    /// Not worth retrying: a 4xx answer, an unreadable answer.
    Permanent(String),
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Self::Transient(m) | Self::Permanent(m) => m,
        }
    }
}

/// The HTTP side: one `ureq` agent with a timeout on every request.
#[derive(Debug)]
struct Client {
    agent: ureq::Agent,
    base: String,
    token: Secret,
    attempts: u32,
    backoff: Duration,
}

impl Client {
    fn new(
        base: String,
        token: Secret,
        timeout: Duration,
        attempts: u32,
        backoff: Duration,
    ) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(2))))
            .http_status_as_error(false)
            .build();
        Self { agent: config.into(), base, token, attempts, backoff }
    }

    fn call(&self, method: &str, endpoint: &str, body: &Json) -> Result<Json, Failure> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let auth = self.token.0.as_ref().map(|t| format!("Bearer {t}"));
        let result = if method == "GET" {
            let mut req = self.agent.get(&url);
            if let Some(map) = body.as_object() {
                for (k, v) in map {
                    req = req.query(k, v.as_str().unwrap_or_default());
                }
            }
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            req.call()
        } else {
            let mut req = self.agent.post(&url).header("Content-Type", "application/json");
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            req.send(body.to_string())
        };
        let mut response = match result {
            Ok(r) => r,
            Err(e) => return Err(Failure::Transient(format!("{endpoint}: {e}"))),
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if status >= 500 {
            return Err(Failure::Transient(format!("{endpoint}: HTTP {status}: {}", short(&text))));
        }
        if status >= 400 {
            return Err(Failure::Permanent(format!("{endpoint}: HTTP {status}: {}", short(&text))));
        }
        if text.trim().is_empty() {
            return Ok(Json::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| Failure::Permanent(format!("{endpoint}: unreadable answer: {e}")))
    }

    /// `call` with up to `attempts` tries, the waits doubling from `backoff`.
    fn call_with(
        &self,
        method: &str,
        endpoint: &str,
        body: &Json,
        attempts: u32,
        retries: &mut u64,
    ) -> Result<Json, Failure> {
        let mut wait = self.backoff;
        let mut attempt = 1;
        loop {
            match self.call(method, endpoint, body) {
                Err(Failure::Transient(m)) if attempt < attempts => {
                    let _ = m;
                    *retries += 1;
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn call_retry(&self, method: &str, endpoint: &str, body: &Json) -> Result<Json, BridgeError> {
        self.call_with(method, endpoint, body, self.attempts, &mut 0)
            .map_err(|f| BridgeError::Http(f.message().to_owned()))
    }

    /// Polls `runs/search` until the run tagged `obs.run_group = group` shows up.
    fn find_group_run(
        &self,
        exp: &str,
        group: &str,
        wait: Duration,
    ) -> Result<String, BridgeError> {
        let deadline = Instant::now() + wait;
        let filter = format!("tags.`obs.run_group` = '{}'", group.replace('\'', "\\'"));
        let body = json!({ "experiment_ids": [exp], "filter": filter, "max_results": 1 });
        loop {
            let got = self.call_retry("POST", "runs/search", &body)?;
            if let Some(id) = got["runs"][0]["info"]["run_id"].as_str() {
                return Ok(id.to_owned());
            }
            if Instant::now() >= deadline {
                return Err(BridgeError::Http(format!(
                    "no run of group {group:?} appeared within {wait:?}: is rank 0 running?"
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn experiment_id(&self, name: &str) -> Result<String, BridgeError> {
        match self.call_with(
            "GET",
            "experiments/get-by-name",
            &json!({ "experiment_name": name }),
            self.attempts,
            &mut 0,
        ) {
            Ok(got) => {
                if let Some(id) = got["experiment"]["experiment_id"].as_str() {
                    return Ok(id.to_owned());
                }
            }
            Err(Failure::Transient(m)) => return Err(BridgeError::Http(m)),
            Err(Failure::Permanent(_)) => {} // RESOURCE_DOES_NOT_EXIST: create it
        }
        match self.call_retry("POST", "experiments/create", &json!({ "name": name })) {
            Ok(got) => got["experiment_id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| BridgeError::Http("experiments/create returned no id".to_owned())),
            // Another rank created it in the meantime.
            Err(e) => {
                let got = self.call_retry(
                    "GET",
                    "experiments/get-by-name",
                    &json!({ "experiment_name": name }),
                )?;
                got["experiment"]["experiment_id"].as_str().map(str::to_owned).ok_or(e)
            }
        }
    }
}

fn short(s: &str) -> String {
    truncate(s.trim(), 300)
}

/// Sends a run's events to an MLflow tracking server; a [`Backend`] for the event bus.
///
/// What it sends (exact keys in `docs/mlflow.md`):
/// * **metrics** with their step and timestamp (ms): `batch/<metric>` at the global batch step,
///   `epoch/<metric>` at the epoch, `grad_norm/<layer>`, `activations/`, `gradients/`,
///   `weights/<layer>/<stat>`, `health/warnings` and `health/<rule>` (running counts), and
///   `final/<metric>` from `train_end`; with a rank (the builder's, else the event's), every
///   key ends in `/rank-<n>`;
/// * **params** from `train_start`: each hyperparameter, `fingerprint/<path>`, any other entry;
/// * **tags**: `mlflow.runName`, `git.commit`/`git.branch`/`git.dirty` (and MLflow's own
///   `mlflow.source.git.*`), `rank`/`world_size`, `obs.health.last` and `obs.health.rules`;
/// * the **status** on close: `FINISHED` after `train_end`, else `FAILED`, or what
///   [`RunOutcome`] says (`FAILED`, `KILLED`).
///
/// # Examples
/// ```no_run
/// use obs_bridges::MlflowBridge;
/// use obs_core::{LogLevel, TrainingLogger, data};
///
/// let bridge = MlflowBridge::builder("my_experiment")
///     .tracking_uri("http://127.0.0.1:5000")
///     .run_name("experiment_001")
///     .create()?;
/// let logger = TrainingLogger::new(LogLevel::Detailed)?;
/// logger.add_backend(bridge)?;
/// logger.on_train_start(1, data! { "hyperparameters" => data! { "lr" => 0.01 } });
/// logger.on_batch_end(0, data! { "loss" => 0.9 });
/// logger.on_train_end(data! {});
/// logger.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MlflowBridge {
    client: Client,
    run_id: String,
    experiment_id: String,
    owns_status: bool,
    storage_dir: Option<PathBuf>,
    rank: Option<(u32, u32)>,
    metrics: VecDeque<Metric>,
    params: Vec<(String, String)>,
    tags: Vec<(String, String)>,
    max_buffered: usize,
    /// Sequence numbers `[from, to)` of the values that fell out of the queue.
    dropped: Option<(u64, u64)>,
    /// While the server is down: no new attempt from `write` before this instant.
    down_until: Option<Instant>,
    retry_interval: Duration,
    last_error: Option<String>,
    outcome: RunOutcome,
    closed: bool,
    stats: MlflowStats,
    conv: Converter,
}

impl fmt::Debug for MlflowBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlflowBridge")
            .field("uri", &self.client.base)
            .field("token", &self.client.token)
            .field("run_id", &self.run_id)
            .field("experiment_id", &self.experiment_id)
            .field("rank", &self.rank)
            .field("queued", &self.metrics.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl MlflowBridge {
    /// Options for a run in the experiment named `experiment` (created when missing).
    pub fn builder(experiment: impl Into<String>) -> MlflowBuilder {
        MlflowBuilder {
            uri: None,
            token: Secret(None),
            experiment: experiment.into(),
            run_name: None,
            run_id: None,
            run_group: None,
            join_timeout: Duration::from_secs(120),
            tags: Vec::new(),
            params: Vec::new(),
            storage_dir: None,
            rank: None,
            timeout: Duration::from_secs(5),
            attempts: 4,
            backoff: Duration::from_millis(200),
            retry_interval: Duration::from_secs(5),
            max_buffered: 100_000,
        }
    }

    /// The MLflow run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The experiment id.
    pub fn experiment_id(&self) -> &str {
        &self.experiment_id
    }

    /// What was sent so far.
    pub fn stats(&self) -> &MlflowStats {
        &self.stats
    }

    /// Metric values waiting to be sent.
    pub fn queued(&self) -> usize {
        self.metrics.len()
    }

    /// A handle that sets how the run ends, even after the bridge moved into a logger.
    pub fn outcome(&self) -> RunOutcome {
        self.outcome.clone()
    }

    fn push(&mut self, item: Item) {
        match item {
            Item::Metric(m) => {
                if self.metrics.len() >= self.max_buffered
                    && let Some(old) = self.metrics.pop_front()
                {
                    self.stats.dropped += 1;
                    let to = self.metrics.front().map_or(old.seq + 1, |m| m.seq);
                    self.dropped = Some((self.dropped.map_or(old.seq, |(from, _)| from), to));
                }
                self.metrics.push_back(m);
            }
            Item::Param(k, v) => self.params.push((k, v)),
            Item::Tag(k, v) => {
                // A newer value of a queued tag replaces it.
                if let Some(slot) = self.tags.iter_mut().find(|(key, _)| *key == k) {
                    slot.1 = v;
                } else {
                    self.tags.push((k, v));
                }
            }
        }
    }

    /// Queues one event's values (what the bus does for each event of a batch), sending full
    /// batches.
    ///
    /// # Errors
    /// [`BridgeError::Closed`] after close; [`BridgeError::Http`] when the server rejected a
    /// batch (values held back by an outage are kept and are not an error here).
    pub fn write_event(&mut self, e: &Event) -> Result<(), BridgeError> {
        if self.closed {
            return Err(BridgeError::Closed);
        }
        self.stats.events += 1;
        let mut conv = std::mem::take(&mut self.conv);
        conv.event(e, &mut |i| self.push(i));
        self.conv = conv;
        if self.metrics.len() >= MAX_BATCH_METRICS
            || self.params.len() >= MAX_BATCH_PARAMS
            || self.tags.len() >= MAX_BATCH_TAGS
        {
            self.send_all(false)?;
        }
        Ok(())
    }

    /// Replays stored events (for example `obs_storage::LogReader::read_all`) into the run, then
    /// sends what is queued. Returns how many events were read. Call [`MlflowBridge::close`]
    /// afterwards to set the status.
    ///
    /// # Errors
    /// As [`MlflowBridge::write_event`] and [`MlflowBridge::flush`].
    pub fn replay(&mut self, events: impl IntoIterator<Item = Event>) -> Result<u64, BridgeError> {
        let mut n = 0;
        for e in events {
            self.write_event(&e)?;
            n += 1;
        }
        self.flush()?;
        Ok(n)
    }

    /// Sends everything queued, retrying with backoff.
    ///
    /// # Errors
    /// [`BridgeError::Http`] when the server stays down or rejects a batch (the values stay
    /// queued when it is down); [`BridgeError::Closed`] after close.
    pub fn flush(&mut self) -> Result<(), BridgeError> {
        if self.closed {
            return Err(BridgeError::Closed);
        }
        self.send_all(true)
    }

    /// Sends everything queued, catches up from the stored logs when values were dropped, and
    /// ends the run with its status. Idempotent.
    ///
    /// # Errors
    /// [`BridgeError::Http`] when the server stays down: the values still queued are lost and
    /// the error says how many.
    pub fn close(&mut self) -> Result<(), BridgeError> {
        if self.closed {
            return Ok(());
        }
        let sent = self.send_all(true);
        self.closed = true;
        sent?;
        let status = self.outcome.status(self.conv.train_ended);
        if self.owns_status {
            let body = json!({
                "run_id": self.run_id,
                "status": status,
                "end_time": (unix_now() * 1000.0) as i64,
            });
            self.client.call_retry("POST", "runs/update", &body)?;
        }
        self.stats.status = Some(status);
        Ok(())
    }

    /// Sends the queue in batches. With `patient`, each request gets every attempt; without,
    /// a server known to be down gets one attempt per retry interval.
    fn send_all(&mut self, patient: bool) -> Result<(), BridgeError> {
        if !patient && self.down_until.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        // The bus thread makes one attempt; flush and close make them all.
        let attempts = if patient { self.client.attempts } else { 1 };
        while !self.metrics.is_empty() || !self.params.is_empty() || !self.tags.is_empty() {
            let n_params = self.params.len().min(MAX_BATCH_PARAMS);
            let n_tags = self.tags.len().min(MAX_BATCH_TAGS);
            let n_metrics =
                self.metrics.len().min(MAX_BATCH_METRICS).min(MAX_BATCH_ITEMS - n_params - n_tags);
            let body = batch_body(
                &self.run_id,
                self.metrics.iter().take(n_metrics),
                &self.params[..n_params],
                &self.tags[..n_tags],
            );
            match self.client.call_with(
                "POST",
                "runs/log-batch",
                &body,
                attempts,
                &mut self.stats.retries,
            ) {
                Ok(_) => {
                    self.metrics.drain(..n_metrics);
                    self.params.drain(..n_params);
                    self.tags.drain(..n_tags);
                    self.stats.metrics_sent += n_metrics as u64;
                    self.stats.params_sent += n_params as u64;
                    self.stats.tags_sent += n_tags as u64;
                    self.stats.batches += 1;
                    self.down_until = None;
                }
                Err(Failure::Permanent(m)) => {
                    self.metrics.drain(..n_metrics);
                    self.params.drain(..n_params);
                    self.tags.drain(..n_tags);
                    self.stats.rejected += (n_metrics + n_params + n_tags) as u64;
                    return Err(BridgeError::Http(format!(
                        "the server rejected {} values: {m}",
                        n_metrics + n_params + n_tags
                    )));
                }
                Err(Failure::Transient(m)) => {
                    self.down_until = Some(Instant::now() + self.retry_interval);
                    let message = format!(
                        "tracking server unreachable ({m}); {} metric values queued",
                        self.metrics.len()
                    );
                    self.last_error = Some(message.clone());
                    return if patient { Err(BridgeError::Http(message)) } else { Ok(()) };
                }
            }
        }
        if self.dropped.is_some() {
            self.catch_up(attempts)?;
        }
        Ok(())
    }

    /// Resends the values that fell out of the queue, rebuilt from the stored logs.
    fn catch_up(&mut self, attempts: u32) -> Result<(), BridgeError> {
        let Some((from, to)) = self.dropped else { return Ok(()) };
        let Some(dir) = self.storage_dir.clone() else {
            return Err(BridgeError::Http(format!(
                "{} metric values were dropped during the outage and no storage_dir was given \
                 to catch up from",
                to - from
            )));
        };
        let reader = obs_storage::LogReader::open(&dir).map_err(|e| {
            BridgeError::Http(format!("cannot catch up from {}: {e}", dir.display()))
        })?;
        let events = reader.read_all().map_err(|e| {
            BridgeError::Http(format!("cannot catch up from {}: {e}", dir.display()))
        })?;
        let mut conv = Converter::new(self.rank.map(|(r, _)| r));
        let mut missing = Vec::new();
        for e in events {
            conv.event(&e, &mut |i| {
                if let Item::Metric(m) = i
                    && (from..to).contains(&m.seq)
                {
                    missing.push(m);
                }
            });
            if conv.seq >= to {
                break;
            }
        }
        for chunk in missing.chunks(MAX_BATCH_METRICS) {
            let body = batch_body(&self.run_id, chunk.iter(), &[], &[]);
            self.client
                .call_with("POST", "runs/log-batch", &body, attempts, &mut self.stats.retries)
                .map_err(|f| BridgeError::Http(format!("catch-up: {}", f.message())))?;
            self.stats.metrics_sent += chunk.len() as u64;
            self.stats.caught_up += chunk.len() as u64;
            self.stats.batches += 1;
        }
        let found = missing.len() as u64;
        self.dropped = None;
        if found < to - from {
            return Err(BridgeError::Http(format!(
                "the stored logs in {} held {found} of the {} metric values dropped during the \
                 outage",
                dir.display(),
                to - from
            )));
        }
        Ok(())
    }
}

/// Sends a stored multi-rank run into one MLflow run: every rank's values under its own keys
/// (`batch/loss/rank-1`), and for each key and step that every rank logged, the cross-rank
/// `.../mean`, `.../min` and `.../max` (`batch/loss/mean`), stamped with the latest of the ranks'
/// timestamps. Params and tags come from every rank (the first value of a param wins); the
/// status follows rank 0 (the lowest rank given). Returns the MLflow run id.
///
/// # Errors
/// As [`MlflowBuilder::create`] and [`MlflowBridge::close`].
pub fn export_ranks(
    builder: MlflowBuilder,
    ranks: Vec<(u32, Vec<Event>)>,
) -> Result<String, BridgeError> {
    let world = u32::try_from(ranks.len()).unwrap_or(u32::MAX);
    let mut bridge = MlflowBuilder { rank: None, ..builder }.create()?;
    bridge.push(Item::Tag("world_size".to_owned(), world.to_string()));
    let mut across: BTreeMap<(String, u64), Vec<(f64, i64)>> = BTreeMap::new();
    let mut first = true;
    for (rank, events) in &ranks {
        bridge.push(Item::Tag(format!("obs.rank.{rank}"), format!("{rank}/{world}")));
        let mut conv = Converter::new(Some(*rank));
        // Params are shared: a key already sent by an earlier rank is not sent again.
        conv.params = std::mem::take(&mut bridge.conv.params);
        let suffix = conv.suffix.clone();
        for e in events {
            let mut items = Vec::new();
            conv.event(e, &mut |i| items.push(i));
            for item in items {
                if let Item::Metric(m) = &item
                    && let Some(base) = m.key.strip_suffix(&suffix)
                    && (base.starts_with("batch/") || base.starts_with("epoch/"))
                {
                    across
                        .entry((base.to_owned(), m.step))
                        .or_default()
                        .push((m.value, m.timestamp_ms));
                }
                bridge.push(item);
                if bridge.metrics.len() >= MAX_BATCH_METRICS {
                    bridge.send_all(true)?;
                }
            }
        }
        if first {
            bridge.conv.train_ended = conv.train_ended;
            first = false;
        }
        bridge.conv.params = std::mem::take(&mut conv.params);
    }
    let mut seq = 0;
    for ((key, step), values) in across {
        if values.len() != ranks.len() {
            continue;
        }
        let n = values.len() as f64;
        let mean = values.iter().map(|v| v.0).sum::<f64>() / n;
        let min = values.iter().map(|v| v.0).fold(f64::INFINITY, f64::min);
        let max = values.iter().map(|v| v.0).fold(f64::NEG_INFINITY, f64::max);
        let ts = values.iter().map(|v| v.1).max().unwrap_or(0);
        for (what, value) in [("mean", mean), ("min", min), ("max", max)] {
            bridge.push(Item::Metric(Metric {
                key: format!("{key}/{what}"),
                value,
                step,
                timestamp_ms: ts,
                seq,
            }));
            seq += 1;
        }
        if bridge.metrics.len() >= MAX_BATCH_METRICS {
            bridge.send_all(true)?;
        }
    }
    bridge.close()?;
    Ok(bridge.run_id)
}

fn batch_body<'a>(
    run_id: &str,
    metrics: impl Iterator<Item = &'a Metric>,
    params: &[(String, String)],
    tags: &[(String, String)],
) -> Json {
    let metrics: Vec<Json> = metrics
        .map(|m| {
            json!({
                "key": m.key,
                "value": metric_value(m.value),
                "timestamp": m.timestamp_ms,
                "step": m.step,
            })
        })
        .collect();
    let params: Vec<Json> = params.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
    let tags: Vec<Json> = tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
    json!({ "run_id": run_id, "metrics": metrics, "params": params, "tags": tags })
}

impl Backend for MlflowBridge {
    fn name(&self) -> &str {
        "bridge.mlflow"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        for e in events {
            self.write_event(e)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        Ok(MlflowBridge::flush(self)?)
    }

    fn close(&mut self) -> Result<(), BackendError> {
        Ok(MlflowBridge::close(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use obs_core::{LogLevel, data};

    #[test]
    fn keys_are_sanitized_and_bounded() {
        assert_eq!(sanitize_key("val/loss (x)"), "val/loss _x_");
        assert_eq!(sanitize_key(""), "_");
        assert_eq!(sanitize_key(&"a".repeat(400)).len(), MAX_KEY);
    }

    #[test]
    fn non_finite_values_use_protobuf_json_strings() {
        assert_eq!(metric_value(f64::NAN), json!("NaN"));
        assert_eq!(metric_value(f64::INFINITY), json!("Infinity"));
        assert_eq!(metric_value(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(metric_value(0.25), json!(0.25));
    }

    #[test]
    fn conversion_is_deterministic_and_ranked() {
        let events = [
            Event::new(EventType::TrainStart, LogLevel::Basic).data(data! {
                "hyperparameters" => data! { "lr" => 0.01 },
                "fingerprint" => data! { "git" => data! { "commit" => "abc", "dirty" => true } },
            }),
            Event::new(EventType::BatchEnd, LogLevel::Basic)
                .at(Some(0), Some(0))
                .data(data! { "loss" => 0.5 }),
            Event::new(EventType::BatchEnd, LogLevel::Basic)
                .at(Some(0), Some(1))
                .data(data! { "loss" => 0.4 }),
        ];
        let convert = |rank| {
            let mut c = Converter::new(rank);
            let mut items = Vec::new();
            for e in &events {
                c.event(e, &mut |i| items.push(i));
            }
            items
        };
        let run = || convert(Some(2));
        let items = run();
        assert_eq!(items, run());
        // Params belong to the run: rank 0 (or an unranked bridge) sends them, other ranks not.
        let lr = Item::Param("lr".to_owned(), "0.01".to_owned());
        assert!(!items.iter().any(|i| matches!(i, Item::Param(..))), "{items:?}");
        assert!(convert(Some(0)).contains(&lr));
        assert!(convert(None).contains(&lr));
        assert!(items.contains(&Item::Tag("git.commit".to_owned(), "abc".to_owned())));
        assert!(items.contains(&Item::Tag("git.dirty".to_owned(), "true".to_owned())));
        let metrics: Vec<(String, f64, u64, u64)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Metric(m) => Some((m.key.clone(), m.value, m.step, m.seq)),
                _ => None,
            })
            .collect();
        assert_eq!(
            metrics,
            [
                ("batch/loss/rank-2".to_owned(), 0.5, 0, 0),
                ("batch/loss/rank-2".to_owned(), 0.4, 1, 1)
            ]
        );
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let b = MlflowBridge::builder("e").tracking_uri("http://127.0.0.1:9").token("s3cr3t-tok");
        let shown = format!("{b:?}");
        assert!(!shown.contains("s3cr3t-tok"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn an_unreachable_server_fails_fast_without_leaking_the_token() {
        let started = Instant::now();
        let err = MlflowBridge::builder("e")
            .tracking_uri("http://127.0.0.1:9")
            .token("s3cr3t-tok")
            .attempts(2)
            .backoff(Duration::from_millis(10))
            .timeout(Duration::from_millis(500))
            .create()
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("s3cr3t-tok"), "{shown}");
        assert!(matches!(err, BridgeError::Http(_)), "{shown}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn tls_uris_are_refused_with_a_clear_error() {
        let err = MlflowBridge::builder("e").tracking_uri("https://x").create().unwrap_err();
        assert!(err.to_string().contains("not http://"), "{err}");
    }
}
