#![doc = include_str!("../README.md")]

use std::path::{Path, PathBuf};

use obs_bridges::{TensorBoardBridge, WandbBridge};
use obs_core::{Data, TrainingLogger};
use obs_dashboard::{DashboardConfig, DashboardExporter};
use obs_fingerprint::{FingerprintBuilder, TrainingFingerprint};
use obs_storage::{OpenMode, StorageConfig, StorageHandle, TieredStorage};

/// Where a run's files were written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunPaths {
    /// The run directory (`<out>/run-YYYYMMDD-HHMMSS...`): `basic.log`, `health.log`,
    /// `debug.log` and `fingerprint.json`.
    pub run_dir: PathBuf,
    /// The HTML dashboard, if one was written.
    pub dashboard: Option<PathBuf>,
    /// The TensorBoard event file, if one was written.
    pub tensorboard: Option<PathBuf>,
    /// The W&B offline run directory, if one was written.
    pub wandb: Option<PathBuf>,
}

/// Why a run's files could not be set up: what was being done, and the underlying error.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct SetupError {
    /// What was being set up ("opening the log storage", ...).
    pub context: &'static str,
    /// The underlying error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl SetupError {
    fn new(context: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        SetupError { context, source: Box::new(e) }
    }
}

/// Which files a run writes besides its tiered logs, and how they are labelled.
#[derive(Clone, Debug)]
pub struct RunFiles {
    run_name: String,
    framework: Option<String>,
    dashboard: bool,
    tensorboard: bool,
    wandb_project: Option<String>,
    config: Data,
}

impl RunFiles {
    /// Every file, for a run called `run_name`: the dashboard, TensorBoard event files and a
    /// W&B offline run in project `"observatory"`.
    pub fn new(run_name: impl Into<String>) -> Self {
        RunFiles {
            run_name: run_name.into(),
            framework: None,
            dashboard: true,
            tensorboard: true,
            wandb_project: Some("observatory".to_owned()),
            config: Data::new(),
        }
    }

    /// The framework the run trains with, shown in the dashboard's title (`"<run> (candle)"`).
    #[must_use]
    pub fn framework(mut self, name: impl Into<String>) -> Self {
        self.framework = Some(name.into());
        self
    }

    /// Whether to write `dashboard.html`.
    #[must_use]
    pub fn dashboard(mut self, on: bool) -> Self {
        self.dashboard = on;
        self
    }

    /// Whether to write TensorBoard event files under `tensorboard/`.
    #[must_use]
    pub fn tensorboard(mut self, on: bool) -> Self {
        self.tensorboard = on;
        self
    }

    /// The W&B project of the offline run; `None` writes no W&B run.
    #[must_use]
    pub fn wandb(mut self, project: Option<&str>) -> Self {
        self.wandb_project = project.map(str::to_owned);
        self
    }

    /// The W&B run's `config` (the run's hyperparameters).
    #[must_use]
    pub fn config(mut self, config: Data) -> Self {
        self.config = config;
        self
    }

    /// Opens a fresh `run-*` directory inside `out` (created if needed) and attaches tiered
    /// storage, then each chosen file's backend, to `logger`.
    ///
    /// # Errors
    /// [`SetupError`] naming the step that failed: an output directory that cannot be created
    /// or written, a bridge file that cannot be created, or a closed logger.
    pub fn attach(
        &self,
        logger: &TrainingLogger,
        out: &Path,
    ) -> Result<(RunPaths, StorageHandle), SetupError> {
        let storage = TieredStorage::with_config(StorageConfig::new(out).mode(OpenMode::RunDir))
            .map_err(|e| SetupError::new("opening the log storage", e))?;
        let run_dir = storage.run_dir().to_owned();
        let handle = storage.handle();
        let attach = |r: Result<(), obs_core::BusError>| {
            r.map_err(|e| SetupError::new("attaching a backend to the logger", e))
        };
        attach(logger.add_backend(storage))?;
        let mut paths = RunPaths { run_dir, dashboard: None, tensorboard: None, wandb: None };
        if self.dashboard {
            let mut config = DashboardConfig::default();
            config.title = Some(match &self.framework {
                Some(f) => format!("{} ({f})", self.run_name),
                None => self.run_name.clone(),
            });
            let path = paths.run_dir.join("dashboard.html");
            attach(logger.add_backend(DashboardExporter::with_config(&path, config)))?;
            paths.dashboard = Some(path);
        }
        if self.tensorboard {
            let tb = TensorBoardBridge::builder(paths.run_dir.join("tensorboard"))
                .run_name(&self.run_name)
                .create()
                .map_err(|e| SetupError::new("creating the TensorBoard files", e))?;
            paths.tensorboard = Some(tb.path().to_owned());
            attach(logger.add_backend(tb))?;
        }
        if let Some(project) = &self.wandb_project {
            let wandb = WandbBridge::builder(project)
                .run_name(&self.run_name)
                .config(self.config.clone())
                .dir(&paths.run_dir)
                .create()
                .map_err(|e| SetupError::new("creating the W&B offline run", e))?;
            paths.wandb = Some(wandb.run_dir().to_owned());
            attach(logger.add_backend(wandb))?;
        }
        Ok((paths, handle))
    }
}

/// A fingerprint builder with what every framework integration records: the model, the
/// hyperparameters, each `(framework, version)` pair, the seeds, and git state unless `git` is
/// false. Add a dataset (or nothing) and call `capture`.
pub fn fingerprint<'a>(
    model_info: &Data,
    hyperparameters: &Data,
    frameworks: &[(&str, &str)],
    seeds: &[(String, u64)],
    git: bool,
) -> FingerprintBuilder<'a> {
    let mut fp = TrainingFingerprint::builder()
        .model_info(model_info.clone())
        .hyperparameters(hyperparameters.clone());
    for (name, version) in frameworks {
        fp = fp.framework(*name, *version);
    }
    for (name, value) in seeds {
        fp = fp.seed(name.clone(), *value);
    }
    if git { fp } else { fp.without_git() }
}

#[cfg(test)]
mod tests {
    use obs_core::{LogLevel, data};

    use super::*;

    #[test]
    fn attaches_only_the_chosen_files() {
        let out = tempfile::tempdir().unwrap();
        let logger = TrainingLogger::new(LogLevel::Expert).unwrap();
        let (paths, _) = RunFiles::new("r")
            .framework("burn")
            .dashboard(false)
            .tensorboard(false)
            .wandb(None)
            .attach(&logger, out.path())
            .unwrap();
        logger.close().unwrap();
        assert!(paths.run_dir.starts_with(out.path()));
        assert_eq!((paths.dashboard, paths.tensorboard, paths.wandb), (None, None, None));
        let names: Vec<_> = std::fs::read_dir(&paths.run_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.contains("dashboard") || n == "tensorboard"), "{names:?}");
    }

    #[test]
    fn an_unwritable_output_directory_is_a_setup_error_naming_the_step() {
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
        let err = RunFiles::new("r").attach(&logger, &file).unwrap_err();
        assert_eq!(err.context, "opening the log storage");
        assert!(err.to_string().starts_with("opening the log storage: "), "{err}");
    }

    #[test]
    fn the_fingerprint_records_frameworks_seeds_and_hyperparameters() {
        let fp = fingerprint(
            &data! { "name" => "mlp" },
            &data! { "lr" => 0.01 },
            &[("burn", "0.22"), ("obs-burn", "0.1.0")],
            &[("python".to_owned(), 7)],
            false,
        )
        .capture()
        .unwrap();
        let json = fp.to_json();
        for needle in ["\"burn\"", "\"0.22\"", "\"obs-burn\"", "\"lr\"", "\"mlp\""] {
            assert!(json.contains(needle), "{needle} missing from {json}");
        }
        assert!(fp.git.is_none());
    }
}
