"""Type stubs of the native module (re-exported by ``observatory``)."""

import enum
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = npt.NDArray[Any]
StatsLike = Union[Mapping[str, Any], ArrayLike]
PathLike = Union[str, "os.PathLike[str]"]

class LogLevel(enum.IntEnum):
    SILENT = 0
    BASIC = 1
    DETAILED = 2
    EXPERT = 3
    DEBUG = 4

class TrainingLogger:
    def __init__(
        self,
        level: Union[LogLevel, int, str] = LogLevel.BASIC,
        backends: Optional[Sequence[Any]] = None,
    ) -> None: ...
    level: LogLevel
    def add_backend(self, backend: Any) -> "TrainingLogger": ...
    def on_train_start(
        self,
        *,
        model_info: Optional[Dict[str, Any]] = None,
        total_epochs: int = 0,
        total_samples: int = 0,
        batch_size: int = 0,
        **extra: Any,
    ) -> None: ...
    def on_train_end(self, *, final_metrics: Optional[Dict[str, Any]] = None, **extra: Any) -> None: ...
    def on_epoch_start(self, epoch: int, **extra: Any) -> None: ...
    def on_epoch_end(self, epoch: int, *, metrics: Optional[Dict[str, Any]] = None, **extra: Any) -> None: ...
    def on_batch_start(
        self,
        batch: int,
        *,
        epoch: Optional[int] = None,
        X_batch: Optional[ArrayLike] = None,
        y_batch: Optional[ArrayLike] = None,
        **extra: Any,
    ) -> None: ...
    def on_batch_end(
        self,
        batch: int,
        *,
        epoch: Optional[int] = None,
        loss: Optional[float] = None,
        metrics: Optional[Dict[str, Any]] = None,
        **extra: Any,
    ) -> None: ...
    def on_batch_end_many(
        self,
        batches: ArrayLike,
        *,
        loss: Optional[ArrayLike] = None,
        metrics: Optional[Dict[str, ArrayLike]] = None,
    ) -> int: ...
    def on_layer_forward(
        self,
        layer_index: int,
        layer_name: str,
        *,
        input_data: Optional[ArrayLike] = None,
        output_data: Optional[ArrayLike] = None,
        weights: Optional[ArrayLike] = None,
        bias: Optional[ArrayLike] = None,
        formula: str = "",
        **extra: Any,
    ) -> None: ...
    def on_layer_backward(
        self,
        layer_index: int,
        layer_name: str,
        *,
        grad_output: Optional[ArrayLike] = None,
        grad_weights: Optional[ArrayLike] = None,
        grad_bias: Optional[ArrayLike] = None,
        formula: str = "",
        **extra: Any,
    ) -> None: ...
    def on_gradient_computed(self, param_name: str, gradient: float, **extra: Any) -> None: ...
    def on_weight_updated(
        self,
        param_name: str,
        old_value: Union[float, ArrayLike],
        new_value: Union[float, ArrayLike],
        **extra: Any,
    ) -> None: ...
    def on_health_check(
        self,
        check_name: str,
        severity: str,
        message: str,
        recommendations: Optional[List[str]] = None,
        **extra: Any,
    ) -> None: ...
    def summary(self) -> Dict[str, Any]: ...
    def flush(self) -> None: ...
    def close(self) -> Dict[str, Any]: ...
    def __enter__(self) -> "TrainingLogger": ...
    def __exit__(self, *args: Any) -> None: ...

class AnomalyConfig:
    def __init__(
        self,
        zeros_pct_threshold: Optional[float] = None,
        gradient_spike_factor: Optional[float] = None,
        gradient_rolling_window: Optional[int] = None,
        gradient_vanish_threshold: Optional[float] = None,
        gradient_explode_threshold: Optional[float] = None,
        loss_spike_pct: Optional[float] = None,
        saturation_threshold: Optional[float] = None,
        weight_stagnation_threshold: Optional[float] = None,
        weight_stagnation_window: Optional[int] = None,
        escalation_cooldown: Optional[int] = None,
        **settings: Any,
    ) -> None: ...
    @property
    def escalation_cooldown(self) -> int: ...
    def to_dict(self) -> Dict[str, Any]: ...

class AdaptiveLogger:
    def __init__(self, base_logger: TrainingLogger, config: Optional[AnomalyConfig] = None) -> None: ...
    @property
    def is_escalated(self) -> bool: ...
    @property
    def anomalies(self) -> List[Dict[str, Any]]: ...
    def on_train_start(
        self,
        *,
        model_info: Optional[Dict[str, Any]] = None,
        total_epochs: int = 0,
        total_samples: int = 0,
        batch_size: int = 0,
        **extra: Any,
    ) -> None: ...
    def on_train_end(self, *, final_metrics: Optional[Dict[str, Any]] = None, **extra: Any) -> None: ...
    def on_epoch_start(self, epoch: int, **extra: Any) -> None: ...
    def on_epoch_end(self, epoch: int, *, metrics: Optional[Dict[str, Any]] = None, **extra: Any) -> None: ...
    def on_batch_start(self, batch: int, **extra: Any) -> None: ...
    def on_batch_end(
        self, batch: int, *, loss: Optional[float] = None, metrics: Optional[Dict[str, Any]] = None, **extra: Any
    ) -> None: ...
    def on_layer_forward(
        self, layer_index: int, layer_name: str, *, output_data: Optional[ArrayLike] = None, **extra: Any
    ) -> None: ...
    def on_layer_backward(
        self,
        layer_index: int,
        layer_name: str,
        *,
        grad_output: Optional[ArrayLike] = None,
        grad_weights: Optional[ArrayLike] = None,
        **extra: Any,
    ) -> None: ...
    def on_gradient_computed(self, param_name: str, gradient: float, **extra: Any) -> None: ...
    def on_weight_updated(
        self,
        param_name: str,
        old_value: Union[float, ArrayLike],
        new_value: Union[float, ArrayLike],
        **extra: Any,
    ) -> None: ...
    def on_health_check(
        self,
        check_name: str,
        severity: str,
        message: str,
        recommendations: Optional[List[str]] = None,
        **extra: Any,
    ) -> None: ...
    def get_anomaly_summary(self) -> Dict[str, Any]: ...
    def reset(self) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...

class WarningConfig:
    def __init__(
        self,
        dead_relu_zeros_pct: Optional[float] = None,
        gradient_vanish_thresh: Optional[float] = None,
        gradient_explode_thresh: Optional[float] = None,
        gradient_spike_factor: Optional[float] = None,
        gradient_rolling_window: Optional[int] = None,
        overfit_patience: Optional[int] = None,
        overfit_ratio: Optional[float] = None,
        weight_stagnation_eps: Optional[float] = None,
        weight_stagnation_window: Optional[int] = None,
        loss_stagnation_eps: Optional[float] = None,
        loss_stagnation_window: Optional[int] = None,
        loss_divergence_window: Optional[int] = None,
        saturation_pct_thresh: Optional[float] = None,
        lr_too_high_loss_factor: Optional[float] = None,
        **settings: Any,
    ) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def __getattr__(self, name: str) -> Any: ...

class HealthWarning:
    def __init__(
        self,
        rule_name: str,
        severity: str,
        message: str,
        diagnosis: str,
        recommendations: Optional[List[str]] = None,
        layer_name: Optional[str] = None,
        epoch: Optional[int] = None,
        batch: Optional[int] = None,
        timestamp: Optional[float] = None,
        data: Optional[Dict[str, Any]] = None,
    ) -> None: ...
    @property
    def rule_name(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def diagnosis(self) -> str: ...
    @property
    def recommendations(self) -> List[str]: ...
    @property
    def layer_name(self) -> Optional[str]: ...
    @property
    def epoch(self) -> Optional[int]: ...
    @property
    def batch(self) -> Optional[int]: ...
    @property
    def timestamp(self) -> float: ...
    @property
    def data(self) -> Dict[str, Any]: ...
    @property
    def repeats(self) -> int: ...
    def to_dict(self) -> Dict[str, Any]: ...

class AutoHealthWarnings:
    def __init__(self, config: Optional[WarningConfig] = None) -> None: ...
    def check_batch(
        self,
        *,
        epoch: Optional[int] = None,
        batch: Optional[int] = None,
        loss: Optional[float] = None,
        gradient_norms: Optional[Dict[str, float]] = None,
        weight_stats: Optional[Dict[str, StatsLike]] = None,
        activation_stats: Optional[Dict[str, StatsLike]] = None,
        weight_deltas: Optional[Dict[str, float]] = None,
    ) -> List[HealthWarning]: ...
    def check_epoch(
        self,
        *,
        epoch: int,
        train_loss: Optional[float] = None,
        val_loss: Optional[float] = None,
        train_acc: Optional[float] = None,
        val_acc: Optional[float] = None,
        gradient_norms: Optional[Dict[str, float]] = None,
        weight_stats: Optional[Dict[str, StatsLike]] = None,
        activation_stats: Optional[Dict[str, StatsLike]] = None,
    ) -> List[HealthWarning]: ...
    def get_summary(self) -> Dict[str, Any]: ...
    @property
    def warnings(self) -> List[HealthWarning]: ...
    def reset(self) -> None: ...

class EpochSummary:
    @property
    def epoch(self) -> int: ...
    @property
    def num_batches(self) -> int: ...
    @property
    def metrics(self) -> Dict[str, Dict[str, float]]: ...
    @property
    def gradient_norms(self) -> Dict[str, Dict[str, float]]: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def format_text(self) -> str: ...

class EpochSummarizer:
    def __init__(self) -> None: ...
    def record_batch(
        self,
        epoch: int,
        *,
        metrics: Optional[Dict[str, float]] = None,
        gradient_norms: Optional[Dict[str, float]] = None,
        weight_stats: Optional[Dict[str, StatsLike]] = None,
        activation_stats: Optional[Dict[str, StatsLike]] = None,
    ) -> None: ...
    def finalize_epoch(self, epoch: int) -> EpochSummary: ...
    def get_all_summaries(self) -> List[Dict[str, Any]]: ...
    @property
    def summaries(self) -> List[EpochSummary]: ...
    def reset(self) -> None: ...

class TieredStorage:
    def __init__(
        self,
        base_dir: PathLike = "./training_logs",
        basic_filename: str = "basic.log",
        health_filename: str = "health.log",
        debug_filename: str = "debug.log",
        write_debug: bool = True,
        buffer_size: int = 50,
        *,
        mode: str = "append",
    ) -> None: ...
    @property
    def run_dir(self) -> str: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def summary(self) -> Dict[str, Any]: ...
    def read_basic(self) -> List[Dict[str, Any]]: ...
    def read_health(self) -> List[Dict[str, Any]]: ...
    def read_debug(self) -> List[Dict[str, Any]]: ...

class DashboardExporter:
    def __init__(self, path: PathLike = "training_logs/dashboard.html") -> None: ...
    @property
    def path(self) -> str: ...
    def save(self) -> str: ...

class TensorBoardBridge:
    def __init__(self, log_dir: PathLike = "./tb_logs") -> None: ...
    @property
    def available(self) -> bool: ...
    @property
    def path(self) -> Optional[str]: ...
    def close(self) -> None: ...

class WandBBridge:
    def __init__(
        self,
        project: str = "observatory",
        run_name: Optional[str] = None,
        config: Optional[Dict[str, Any]] = None,
        *,
        dir: Optional[PathLike] = None,
    ) -> None: ...
    @property
    def available(self) -> bool: ...
    @property
    def run_dir(self) -> Optional[str]: ...
    def close(self) -> None: ...

class TrainingFingerprint:
    @classmethod
    def capture(
        cls,
        *,
        model_info: Optional[Dict[str, Any]] = None,
        hyperparameters: Optional[Dict[str, Any]] = None,
        dataset: Optional[Union[ArrayLike, PathLike]] = None,
        random_seed: Optional[int] = None,
        numpy_seed: Optional[int] = None,
        run_id: Optional[str] = None,
    ) -> "TrainingFingerprint": ...
    def to_dict(self) -> Dict[str, Any]: ...
    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrainingFingerprint": ...
    def to_json(self) -> str: ...
    def save(self, path: PathLike) -> None: ...
    def format_text(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def random_seed(self) -> Optional[int]: ...
    @property
    def dataset_hash(self) -> Optional[str]: ...
    @property
    def dataset_shape(self) -> Optional[List[int]]: ...
    @property
    def dataset_dtype(self) -> Optional[str]: ...
    @property
    def model_info(self) -> Dict[str, Any]: ...
    @property
    def model_architecture_hash(self) -> Optional[str]: ...
    @property
    def hyperparameters(self) -> Dict[str, Any]: ...
