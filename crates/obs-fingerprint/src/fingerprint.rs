//! `TrainingFingerprint`: what it records, how it is captured, and its JSON form.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use obs_core::{Data, TrainingLogger};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::FingerprintError;
use crate::canonical::ModelFingerprint;
use crate::dataset::{Dataset, DatasetFingerprint, HashProgress};
use crate::git::GitInfo;
use crate::hex::hex;
use crate::system::{GpuProbe, Hardware, OsInfo};
use crate::time::Instant;

/// The version of the JSON layout written by this crate.
pub const SCHEMA_VERSION: u32 = 1;

/// The version of every Observatory crate: the workspace shares one version.
pub const OBSERVATORY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `rustc --version` of the compiler that built this crate.
pub const RUSTC_VERSION: &str = env!("OBS_FINGERPRINT_RUSTC");

/// The target triple this crate was built for.
pub const BUILD_TARGET: &str = env!("OBS_FINGERPRINT_TARGET");

/// Software versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Versions {
    /// The Observatory version (every `obs-*` crate shares it).
    pub observatory: String,
    /// `rustc --version` of the compiler that built Observatory, captured at build time.
    pub rustc: String,
    /// The target triple Observatory was built for.
    pub target: String,
    /// Versions the caller supplied: `candle`, `burn`, `python`, `cuda`, ...
    pub frameworks: BTreeMap<String, String>,
}

/// Everything needed to reproduce a training run: seeds, dataset, versions, hardware, OS,
/// model, hyperparameters and git state.
///
/// Capture one with [`TrainingFingerprint::builder`]; print it with
/// [`TrainingFingerprint::format_text`]; store it with [`TrainingFingerprint::save`] or attach it
/// to a logger's `train_start` event with [`TrainingFingerprint::emit_train_start`]; compare two
/// with [`TrainingFingerprint::diff`].
///
/// It records no environment variables and no credentials: the git remote URL loses its
/// user-info, and the hardware and OS fields come from the system, not from the environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrainingFingerprint {
    /// The JSON layout version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The run id: as given, else 12 random hex digits.
    pub run_id: String,
    /// When the capture started, RFC 3339 in UTC with milliseconds.
    pub timestamp_utc: String,
    /// The same instant in Unix seconds.
    pub timestamp_unix: f64,
    /// Random seeds by name, as given.
    pub seeds: BTreeMap<String, u64>,
    /// The training data, when one was given.
    pub dataset: Option<DatasetFingerprint>,
    /// Software versions.
    pub versions: Versions,
    /// The machine.
    pub hardware: Hardware,
    /// The operating system.
    pub os: OsInfo,
    /// The model description and its hash, when one was given.
    pub model: Option<ModelFingerprint>,
    /// Training hyperparameters, as given.
    pub hyperparameters: Data,
    /// The git state; `None` outside any repository or when git capture was turned off.
    pub git: Option<GitInfo>,
}

/// Where the git state comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum GitSource {
    /// Discover upwards from the current directory.
    #[default]
    CurrentDir,
    /// Discover upwards from this directory.
    From(PathBuf),
    /// Record no git state.
    Off,
}

/// Configures and runs a fingerprint capture. Made by [`TrainingFingerprint::builder`].
pub struct FingerprintBuilder<'a> {
    run_id: Option<String>,
    seeds: BTreeMap<String, u64>,
    dataset: Option<Dataset<'a>>,
    progress: Option<Box<dyn FnMut(HashProgress) + 'a>>,
    model_info: Option<Data>,
    hyperparameters: Data,
    frameworks: BTreeMap<String, String>,
    git: GitSource,
    include_untracked: bool,
    gpu: GpuProbe,
}

impl fmt::Debug for FingerprintBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FingerprintBuilder")
            .field("run_id", &self.run_id)
            .field("seeds", &self.seeds)
            .field("dataset", &self.dataset)
            .field("progress", &self.progress.as_ref().map(|_| "callback"))
            .field("model_info", &self.model_info)
            .field("hyperparameters", &self.hyperparameters)
            .field("frameworks", &self.frameworks)
            .field("git", &self.git)
            .field("include_untracked", &self.include_untracked)
            .field("gpu", &self.gpu)
            .finish()
    }
}

impl<'a> FingerprintBuilder<'a> {
    fn new() -> Self {
        FingerprintBuilder {
            run_id: None,
            seeds: BTreeMap::new(),
            dataset: None,
            progress: None,
            model_info: None,
            hyperparameters: Data::new(),
            frameworks: BTreeMap::new(),
            git: GitSource::CurrentDir,
            include_untracked: false,
            gpu: GpuProbe::default(),
        }
    }

    /// The run id (default: 12 random hex digits).
    #[must_use]
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// Records a named seed (`"random_seed"`, `"numpy_seed"`, `"shuffle"`); a name given twice
    /// keeps the last value.
    #[must_use]
    pub fn seed(mut self, name: impl Into<String>, value: u64) -> Self {
        self.seeds.insert(name.into(), value);
        self
    }

    /// The training data to hash: see [`Dataset`].
    #[must_use]
    pub fn dataset(mut self, dataset: Dataset<'a>) -> Self {
        self.dataset = Some(dataset);
        self
    }

    /// Called while the dataset is hashed: after every 16 MiB and once at the end.
    #[must_use]
    pub fn on_progress(mut self, progress: impl FnMut(HashProgress) + 'a) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// The model description (name, layers, sizes); it is recorded and hashed canonically.
    #[must_use]
    pub fn model_info(mut self, info: Data) -> Self {
        self.model_info = Some(info);
        self
    }

    /// The training hyperparameters.
    #[must_use]
    pub fn hyperparameters(mut self, hyperparameters: Data) -> Self {
        self.hyperparameters = hyperparameters;
        self
    }

    /// Records the version of a framework or tool (`"candle"`, `"burn"`, `"python"`).
    #[must_use]
    pub fn framework(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.frameworks.insert(name.into(), version.into());
        self
    }

    /// Discovers the git repository upwards from `dir` (default: the current directory).
    #[must_use]
    pub fn git_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.git = GitSource::From(dir.into());
        self
    }

    /// Records no git state.
    #[must_use]
    pub fn without_git(mut self) -> Self {
        self.git = GitSource::Off;
        self
    }

    /// Also looks for untracked (not ignored) files: they then count as dirty and enter the
    /// worktree hash (default `false`: only tracked changes count).
    #[must_use]
    pub fn include_untracked(mut self, include: bool) -> Self {
        self.include_untracked = include;
        self
    }

    /// Where to look for GPUs (default: `nvidia-smi`, then `/sys/class/drm`).
    #[must_use]
    pub fn gpu_probe(mut self, probe: GpuProbe) -> Self {
        self.gpu = probe;
        self
    }

    /// Captures the fingerprint.
    ///
    /// # Errors
    /// Dataset errors (a shape that does not fit the slice, a file that cannot be read
    /// completely), [`FingerprintError::Git`] when a repository was found but cannot be read,
    /// and [`FingerprintError::CurrentDir`] when discovery should start from an unavailable
    /// current directory. Being outside any repository is not an error: `git` is `None`.
    pub fn capture(mut self) -> Result<TrainingFingerprint, FingerprintError> {
        let now = Instant::now();
        let dataset = match &self.dataset {
            Some(d) => Some(match self.progress.as_mut() {
                Some(progress) => d.hash_with_progress(&mut **progress)?,
                None => d.hash()?,
            }),
            None => None,
        };
        let git = match &self.git {
            GitSource::Off => None,
            GitSource::CurrentDir => {
                let dir = std::env::current_dir().map_err(FingerprintError::CurrentDir)?;
                GitInfo::capture(&dir, self.include_untracked)?
            }
            GitSource::From(dir) => GitInfo::capture(dir, self.include_untracked)?,
        };
        Ok(TrainingFingerprint {
            schema_version: SCHEMA_VERSION,
            run_id: self.run_id.take().unwrap_or_else(|| random_run_id(now)),
            timestamp_utc: now.rfc3339(),
            timestamp_unix: now.unix_seconds(),
            seeds: self.seeds,
            dataset,
            versions: Versions {
                observatory: OBSERVATORY_VERSION.to_owned(),
                rustc: RUSTC_VERSION.to_owned(),
                target: BUILD_TARGET.to_owned(),
                frameworks: self.frameworks,
            },
            hardware: Hardware::capture(&self.gpu),
            os: OsInfo::capture(),
            model: self.model_info.map(ModelFingerprint::new),
            hyperparameters: self.hyperparameters,
            git,
        })
    }
}

/// 12 hex digits that differ between runs: a hash of the time, the process id and a counter.
fn random_run_id(now: Instant) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(now.unix_millis.to_le_bytes());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let mut id = hex(&h.finalize());
    id.truncate(12);
    id
}

impl TrainingFingerprint {
    /// A builder to configure a capture.
    ///
    /// # Examples
    /// ```
    /// use obs_core::data;
    /// use obs_fingerprint::{Dataset, TrainingFingerprint};
    ///
    /// let x_train = vec![0.25f32; 100 * 8];
    /// let fp = TrainingFingerprint::builder()
    ///     .seed("random_seed", 42)
    ///     .dataset(Dataset::slice(&x_train, &[100, 8]))
    ///     .model_info(data! { "name" => "mlp", "layers" => 3 })
    ///     .hyperparameters(data! { "lr" => 0.01, "batch_size" => 32 })
    ///     .framework("candle", "0.9.1")
    ///     .without_git()
    ///     .capture()?;
    /// assert_eq!(fp.dataset.as_ref().map(|d| d.samples), Some(100));
    /// assert_eq!(TrainingFingerprint::from_json(&fp.to_json())?, fp);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder<'a>() -> FingerprintBuilder<'a> {
        FingerprintBuilder::new()
    }

    /// Captures the environment alone (versions, hardware, OS, git from the current
    /// directory): `TrainingFingerprint::builder().capture()`.
    ///
    /// # Errors
    /// As [`FingerprintBuilder::capture`].
    pub fn capture() -> Result<TrainingFingerprint, FingerprintError> {
        Self::builder().capture()
    }

    /// Pretty-printed JSON. Reading it back with [`TrainingFingerprint::from_json`] gives an
    /// equal fingerprint: floats are written with round-trip precision, and NaN or infinite
    /// hyperparameters as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (as in events).
    pub fn to_json(&self) -> String {
        // Every field serialises infallibly (string keys, no non-finite floats outside obs-core
        // `Value`s, which write them as strings); the fallback keeps this function total.
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
    }

    /// Parses a fingerprint written by [`TrainingFingerprint::to_json`] (or by obs-storage as
    /// `fingerprint.json`).
    ///
    /// # Errors
    /// [`FingerprintError::Json`] when the text is not a fingerprint.
    pub fn from_json(text: &str) -> Result<Self, FingerprintError> {
        serde_json::from_str(text).map_err(|source| FingerprintError::Json { path: None, source })
    }

    /// The fingerprint as an obs-core [`Data`] map, with the same keys and order as its JSON,
    /// for `logger.on_train_start_with(epochs, model_info, data! { "fingerprint" => fp.to_data() })`.
    pub fn to_data(&self) -> Data {
        // Through the JSON text rather than `serde_json::Value`, whose maps would sort the keys
        // and lose the order of the hyperparameters.
        serde_json::from_str(&self.to_json()).unwrap_or_default()
    }

    /// Reads a fingerprint back from [`TrainingFingerprint::to_data`]'s map (the `fingerprint`
    /// entry of a `train_start` event).
    ///
    /// # Errors
    /// [`FingerprintError::Json`] when the map is not a fingerprint.
    pub fn from_data(data: &Data) -> Result<Self, FingerprintError> {
        let text = serde_json::to_string(data)
            .map_err(|source| FingerprintError::Json { path: None, source })?;
        Self::from_json(&text)
    }

    /// Records the run's start on `logger`: a `train_start` event with `total_epochs`, the model
    /// description as `model_info`, and this fingerprint as `data.fingerprint` (which
    /// obs-storage writes to `fingerprint.json`).
    pub fn emit_train_start(&self, logger: &TrainingLogger, total_epochs: u64) {
        let model_info = self.model.as_ref().map(|m| m.info.clone()).unwrap_or_default();
        let mut extra = Data::with_capacity(1);
        extra.insert("fingerprint", self.to_data());
        logger.on_train_start_with(total_epochs, model_info, extra);
    }

    /// Writes [`TrainingFingerprint::to_json`] to `path` (replacing the file).
    ///
    /// # Errors
    /// [`FingerprintError::Save`] when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), FingerprintError> {
        let path = path.as_ref();
        let mut text = self.to_json();
        text.push('\n');
        std::fs::write(path, text)
            .map_err(|source| FingerprintError::Save { path: path.to_path_buf(), source })
    }

    /// Reads a fingerprint saved with [`TrainingFingerprint::save`] (or obs-storage's
    /// `fingerprint.json`).
    ///
    /// # Errors
    /// [`FingerprintError::Load`] when the file cannot be read, [`FingerprintError::Json`]
    /// (naming the file) when it is not a fingerprint.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, FingerprintError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| FingerprintError::Load { path: path.to_path_buf(), source })?;
        serde_json::from_str(&text)
            .map_err(|source| FingerprintError::Json { path: Some(path.to_path_buf()), source })
    }
}
