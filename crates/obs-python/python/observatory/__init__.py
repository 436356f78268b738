"""Observatory: observe neural-network training runs with a Rust engine.

The classes and hook signatures are those of the neurogebra reference's Observatory Pro, so a
training loop written for it changes only its import lines::

    from observatory import TrainingLogger, LogLevel, AdaptiveLogger, AnomalyConfig
    from observatory import AutoHealthWarnings, WarningConfig, EpochSummarizer
    from observatory import TieredStorage, DashboardExporter, TrainingFingerprint

numpy arrays are read in place (C-contiguous float32/float64), the GIL is released while the
statistics kernels, hashing and file I/O run, and errors are raised as ``ValueError``,
``TypeError`` or ``OSError``.
"""

from observatory._native import (
    AdaptiveLogger,
    AnomalyConfig,
    AutoHealthWarnings,
    DashboardExporter,
    EpochSummarizer,
    EpochSummary,
    HealthWarning,
    LogLevel,
    TensorBoardBridge,
    TieredStorage,
    TrainingFingerprint,
    TrainingLogger,
    WandBBridge,
    WarningConfig,
    __version__,
)

__all__ = [
    "AdaptiveLogger",
    "AnomalyConfig",
    "AutoHealthWarnings",
    "DashboardExporter",
    "EpochSummarizer",
    "EpochSummary",
    "HealthWarning",
    "LogLevel",
    "TensorBoardBridge",
    "TieredStorage",
    "TrainingFingerprint",
    "TrainingLogger",
    "WandBBridge",
    "WarningConfig",
    "__version__",
]

_native_on_batch_end = TrainingLogger.on_batch_end


def _on_batch_end(self, batch, *, epoch=None, loss=None, metrics=None, **extra):
    # The hook runs once per batch: its common form goes to a positional native method, which
    # skips PyO3's per-call keyword parsing (see `TrainingLogger._batch_end`).
    if epoch is None and not extra:
        self._batch_end(batch, loss, metrics)
    else:
        _native_on_batch_end(self, batch, epoch=epoch, loss=loss, metrics=metrics, **extra)


_on_batch_end.__doc__ = _native_on_batch_end.__doc__
_on_batch_end.__qualname__ = "TrainingLogger.on_batch_end"
TrainingLogger.on_batch_end = _on_batch_end
