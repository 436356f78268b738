"""Bad input gives Python exceptions, never a crash."""

import os

import numpy as np
import pytest

from observatory import (
    AdaptiveLogger,
    AnomalyConfig,
    AutoHealthWarnings,
    DashboardExporter,
    EpochSummarizer,
    LogLevel,
    TensorBoardBridge,
    TieredStorage,
    TrainingFingerprint,
    TrainingLogger,
    WarningConfig,
)


@pytest.fixture
def logger():
    lg = TrainingLogger(level=LogLevel.EXPERT)
    yield lg
    lg.close()


def test_empty_arrays_are_value_errors(logger):
    with pytest.raises(ValueError, match="empty"):
        logger.on_layer_forward(0, "dense_0", output_data=np.zeros((0, 4), np.float32))
    adaptive = AdaptiveLogger(TrainingLogger(level=LogLevel.EXPERT))
    with pytest.raises(ValueError, match="empty"):
        adaptive.on_layer_backward(0, "dense_0", grad_weights=np.array([], np.float64))


@pytest.mark.parametrize("bad", [np.array(["a", "b"]), np.array([object(), 1], dtype=object), [1.0, 2.0], "x"])
def test_wrong_dtypes_and_types_are_type_errors(logger, bad):
    with pytest.raises(TypeError):
        logger.on_layer_forward(0, "dense_0", output_data=bad)


def test_other_numeric_dtypes_and_views_are_converted_once(tmp_path):
    storage = TieredStorage(base_dir=str(tmp_path), mode="new")
    lg = TrainingLogger(level=LogLevel.EXPERT)
    lg.add_backend(storage)
    lg.on_layer_forward(0, "ints", output_data=np.arange(12, dtype=np.int16).reshape(3, 4))
    big = np.arange(24, dtype=np.float32).reshape(4, 6)
    lg.on_layer_forward(1, "view", output_data=big[:, ::2])
    lg.close()
    events = storage.read_debug()
    assert events[0]["data"]["max"] == 11 and events[0]["data"]["shape"] == [3, 4]
    assert events[1]["data"]["shape"] == [4, 3] and events[1]["data"]["max"] == 22


def test_nan_is_recorded_as_critical_and_judged(tmp_path):
    storage = TieredStorage(base_dir=str(tmp_path), mode="new")
    lg = TrainingLogger(level=LogLevel.EXPERT)
    lg.add_backend(storage)
    x = np.ones((4, 4), np.float32)
    x[1, 2] = np.nan
    lg.on_layer_forward(0, "dense_0", output_data=x)
    lg.close()
    # A critical event goes to the health tier, whatever its type.
    (event,) = storage.read_health() + storage.read_debug()
    assert event["severity"] == "critical" and event["data"]["nan_count"] == 1, event
    w = AutoHealthWarnings()
    found = w.check_batch(epoch=0, batch=0, loss=float("nan"))
    assert [f.rule_name for f in found] == ["nan_inf_loss"]
    assert found[0].severity == "critical"


@pytest.mark.parametrize("name", ["", "a\nb", "x" * 2000])
def test_odd_names_are_value_errors(logger, name):
    with pytest.raises(ValueError):
        logger.on_layer_forward(0, name, output_data=np.ones(3, np.float32))
    with pytest.raises(ValueError):
        logger.on_gradient_computed(name, 0.1)


def test_negative_indices_and_bad_levels(logger):
    with pytest.raises(ValueError):
        logger.on_epoch_start(-1)
    with pytest.raises(ValueError):
        TrainingLogger(level=7)
    with pytest.raises(ValueError):
        TrainingLogger(level="loud")
    with pytest.raises(TypeError):
        TrainingLogger(level=2.5)


def test_bad_configs():
    with pytest.raises(ValueError):
        WarningConfig(overfit_ratio=float("nan"))
    with pytest.raises(TypeError, match="unknown setting"):
        WarningConfig(no_such_threshold=1)
    with pytest.raises(ValueError):
        AnomalyConfig(gradient_rolling_window=-3)
    with pytest.raises(TypeError):
        AutoHealthWarnings().check_batch(gradient_norms={"dense_0": "big"})
    with pytest.raises(TypeError):
        AutoHealthWarnings().check_batch(gradient_norms=[1, 2])
    with pytest.raises(TypeError):
        AdaptiveLogger("not a logger")


def test_summarizer_epoch_order_is_checked():
    s = EpochSummarizer()
    s.record_batch(1, metrics={"loss": 0.3})
    s.finalize_epoch(1)
    with pytest.raises(ValueError):
        s.record_batch(0, metrics={"loss": 0.3})
    with pytest.raises(ValueError):
        s.finalize_epoch(1)


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else False, reason="root ignores permissions")
def test_unwritable_dirs_are_os_errors_for_users(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(OSError):
        TieredStorage(base_dir=str(ro / "logs"))


def test_unusable_paths_are_os_errors(tmp_path):
    # A regular file where a directory must be: fails for every user, root included.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        TieredStorage(base_dir=str(blocker / "logs"))
    with pytest.raises(OSError):
        TensorBoardBridge(log_dir=str(blocker / "tb"))
    lg = TrainingLogger(level=LogLevel.BASIC)
    dash = DashboardExporter(path=str(blocker / "dash.html"))
    lg.add_backend(dash)
    with pytest.raises(OSError):
        dash.save()
    lg.close()
    with pytest.raises(OSError):
        TrainingFingerprint.capture(dataset=str(tmp_path / "missing.csv"))


def test_existing_logs_are_refused_in_new_mode_and_appended_by_default(tmp_path):
    s = TieredStorage(base_dir=str(tmp_path))
    lg = TrainingLogger(level=LogLevel.BASIC)
    lg.add_backend(s)
    lg.on_epoch_start(0)
    lg.close()
    with pytest.raises(ValueError, match="already"):
        TieredStorage(base_dir=str(tmp_path), mode="new")
    with pytest.raises(ValueError):
        TieredStorage(base_dir=str(tmp_path), mode="sideways")
    again = TieredStorage(base_dir=str(tmp_path))
    assert again.summary()["basic"]["events"] >= 1


def test_fingerprint_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside any git repository: no git state to read
    with pytest.raises(TypeError):
        TrainingFingerprint.capture(dataset=np.zeros(4, np.float16))
    with pytest.raises(TypeError):
        TrainingFingerprint.capture(dataset=[1, 2, 3])
    with pytest.raises(ValueError):
        TrainingFingerprint.from_dict({"run_id": 5})
    with pytest.raises(TypeError):
        TrainingFingerprint.from_dict("nope")
    # A strided view hashes like its contiguous copy.
    x = np.arange(40, dtype=np.float64).reshape(8, 5)
    a = TrainingFingerprint.capture(dataset=x[:, ::2])
    b = TrainingFingerprint.capture(dataset=np.ascontiguousarray(x[:, ::2]))
    assert a.dataset_hash == b.dataset_hash and len(a.dataset_hash) == 64


def test_dataset_hash_is_the_documented_leaf_tree(tmp_path, monkeypatch):
    # docs/fingerprint.md, layout tree-v2, recomputed with hashlib: 2.5 MiB of float32 is two
    # full 1 MiB leaves and a half one.
    import hashlib
    import struct

    monkeypatch.chdir(tmp_path)
    x = np.random.default_rng(3).standard_normal((640, 1024)).astype(np.float32)
    raw = x.tobytes()
    leaves = [raw[i : i + (1 << 20)] for i in range(0, len(raw), 1 << 20)]
    assert len(leaves) == 3
    head = b"obs-fingerprint:dataset:v2\nfloat32\n" + struct.pack("<QQQ", 2, 640, 1024)
    expected = hashlib.sha256(
        head + struct.pack("<Q", 1 << 20) + b"".join(hashlib.sha256(leaf).digest() for leaf in leaves)
    ).hexdigest()
    fp = TrainingFingerprint.capture(dataset=x)
    assert fp.dataset_hash == expected
    assert fp.to_dict()["dataset"]["layout"] == "tree-v2"


def test_gil_is_released_while_hashing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import threading
    import time

    x = np.random.default_rng(0).standard_normal(16 * 1024 * 1024 // 8)
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    time.sleep(0.01)
    before = len(ticks)
    for _ in range(5):
        TrainingFingerprint.capture(dataset=x)
    stop.set()
    t.join()
    # The ticker kept running during the captures.
    assert len(ticks) - before > 5


def test_activation_stats_take_output_arrays_in_place():
    w = AutoHealthWarnings()
    dead = np.zeros((32, 16), np.float32)
    found = w.check_batch(epoch=0, batch=0, activation_stats={"dense_0": {"output": dead, "activation_type": "relu"}})
    assert [f.rule_name for f in found] == ["dead_relu"]
    assert found[0].layer_name == "dense_0" and "100.0% dead units" in found[0].message
    # Units (not elements) decide: half the elements zero, every unit alive somewhere.
    healthy = np.tile(np.array([[0.0, 1.0], [1.0, 0.0]], np.float32), (16, 8))
    assert w.check_batch(epoch=0, batch=1, activation_stats={"dense_1": {"output": healthy, "activation": "relu"}}) == []
    with pytest.raises(TypeError):
        w.check_batch(activation_stats={"dense_0": {"output": "zeros", "activation_type": "relu"}})
