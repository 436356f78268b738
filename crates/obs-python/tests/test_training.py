"""A real numpy training loop (forward, backward, SGD) observed end to end: the logs, the
dashboard and the fingerprint it writes are read back by the Rust reader (`obs summary`)."""

import json
import os
import subprocess

import numpy as np

from observatory import (
    AdaptiveLogger,
    AnomalyConfig,
    AutoHealthWarnings,
    DashboardExporter,
    EpochSummarizer,
    LogLevel,
    TieredStorage,
    TrainingFingerprint,
    TrainingLogger,
)


def train(mlp, x, y, logger, warnings, summarizer, epochs=8, batch=32, lr=0.2, adaptive=None):
    hooks = adaptive or logger
    n = len(x)
    losses = []
    for epoch in range(epochs):
        hooks.on_epoch_start(epoch)
        for b, start in enumerate(range(0, n, batch)):
            xb, yb = x[start : start + batch], y[start : start + batch]
            hooks.on_batch_start(b)
            mlp.forward(xb)
            hooks.on_layer_forward(0, "dense_0", output_data=mlp.a1, activation="relu")
            hooks.on_layer_forward(1, "dense_1", output_data=mlp.p, activation="sigmoid")
            loss = mlp.loss(yb)
            mlp.backward(yb)
            hooks.on_layer_backward(0, "dense_0", grad_weights=mlp.gw1)
            hooks.on_layer_backward(1, "dense_1", grad_weights=mlp.gw2)
            old = mlp.step(lr)
            hooks.on_weight_updated("dense_0", old["dense_0"], mlp.w1)
            hooks.on_weight_updated("dense_1", old["dense_1"], mlp.w2)
            g = {"dense_0": float(np.linalg.norm(mlp.gw1)), "dense_1": float(np.linalg.norm(mlp.gw2))}
            warnings.check_batch(epoch=epoch, batch=b, loss=loss, gradient_norms=g)
            summarizer.record_batch(epoch, metrics={"loss": loss}, gradient_norms=g)
            hooks.on_batch_end(b, loss=loss)
        summary = summarizer.finalize_epoch(epoch)
        train_loss = summary.to_dict()["metrics"]["loss"]["mean"]
        losses.append(train_loss)
        mlp.forward(x)
        acc = float((mlp.p.argmax(axis=1) == y).mean())
        warnings.check_epoch(epoch=epoch, train_loss=train_loss, val_loss=train_loss * 1.05)
        hooks.on_epoch_end(epoch, metrics={"loss": train_loss, "accuracy": acc, "val_loss": train_loss * 1.05})
    return losses, acc


def test_training_loop_end_to_end(tmp_path, mlp, data, obs_bin, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = data
    logs = tmp_path / "logs"
    storage = TieredStorage(base_dir=str(logs), mode="new")
    dashboard = DashboardExporter(path=str(tmp_path / "dash.html"))
    logger = TrainingLogger(level=LogLevel.EXPERT)
    logger.add_backend(storage).add_backend(dashboard)
    fp = TrainingFingerprint.capture(
        model_info={"name": "mlp", "layers": [4, 16, 3]},
        hyperparameters={"lr": 0.2, "batch_size": 32},
        dataset=x,
        random_seed=0,
    )
    logger.on_train_start(total_epochs=8, model_info=fp.model_info, fingerprint=fp.to_dict())
    warnings, summarizer = AutoHealthWarnings(), EpochSummarizer()
    losses, acc = train(mlp, x, y, logger, warnings, summarizer)
    assert len(summarizer.summaries) == 8
    logger.on_train_end(final_metrics={"loss": losses[-1], "accuracy": acc})
    assert losses[-1] < losses[0] * 0.5, losses
    assert acc > 0.9
    storage.flush()
    s = storage.summary()
    assert s["basic"]["events"] == 2 + 2 * 8
    # 8 batches of 240/32 (the last partial) x (start, 2 forward, 2 backward, 2 weights, end)
    assert s["debug"]["events"] == 8 * 8 * 8
    dashboard.save()
    storage.close()
    logger.close()

    basic = storage.read_basic()
    ends = [e for e in basic if e["event_type"] == "epoch_end"]
    assert [e["epoch"] for e in ends] == list(range(8))
    assert [e["data"]["metrics"]["loss"] for e in ends] == losses
    fwd = [e for e in storage.read_debug() if e["event_type"] == "layer_forward"]
    assert fwd[0]["data"]["shape"] == [32, 16] and fwd[0]["layer_name"] == "dense_0"

    # The Rust reader: `obs summary` recomputes the epoch summaries from the same files.
    out = subprocess.run([obs_bin, "summary", str(logs)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Model: mlp, 8 epochs planned" in out.stdout, out.stdout
    for epoch, summary in enumerate(summarizer.summaries):
        assert f"══ Epoch {epoch} Summary (8 batches) ══" in out.stdout
        mean = summary.to_dict()["metrics"]["loss"]["mean"]
        assert f"mean={mean:.6f}" in out.stdout, (epoch, mean)
    # The fingerprint went to fingerprint.json next to the logs and reads back.
    with open(logs / "fingerprint.json") as f:
        saved = json.load(f)
    assert TrainingFingerprint.from_dict(saved) == fp
    assert saved["dataset"]["sha256"] == fp.dataset_hash
    html = (tmp_path / "dash.html").read_text()
    assert "<html" in html.lower() and "dense_0" in html


def test_adaptive_logger_records_detail_only_around_findings(tmp_path, mlp, data):
    x, y = data
    storage = TieredStorage(base_dir=str(tmp_path), mode="new")
    base = TrainingLogger(level=LogLevel.EXPERT)
    base.add_backend(storage)
    adaptive = AdaptiveLogger(base, config=AnomalyConfig(escalation_cooldown=2))
    adaptive.on_train_start(total_epochs=4)
    train(mlp, x, y, base, AutoHealthWarnings(), EpochSummarizer(), epochs=4, adaptive=adaptive)
    # A dead layer: every unit of dense_0 zero for a batch.
    adaptive.on_epoch_start(4)
    adaptive.on_batch_start(0)
    adaptive.on_layer_forward(0, "dense_0", output_data=np.zeros((32, 16), np.float32), activation="relu")
    adaptive.on_batch_end(0, loss=0.1)
    adaptive.on_train_end()
    summary = adaptive.get_anomaly_summary()
    assert summary["by_rule"].get("dead_relu") == 1, summary
    assert summary["total_anomalies"] >= 1
    storage.flush()
    health = storage.read_health()
    assert any(e["data"].get("rule_name") == "dead_relu" for e in health)
    debug = storage.read_debug()
    # Healthy batches were not recorded at EXPERT detail; the dead one was.
    forwards = [e for e in debug if e["event_type"] == "layer_forward"]
    assert 1 <= len(forwards) < 4 * 8 * 2, len(forwards)
    base.close()


def test_on_batch_end_many_writes_the_events_of_single_calls(tmp_path):
    n = 50
    loss = np.linspace(1.0, 0.1, n)
    acc = np.linspace(0.2, 0.9, n)
    stores = []
    for name, many in (("single", False), ("many", True)):
        storage = TieredStorage(base_dir=str(tmp_path / name), mode="new")
        lg = TrainingLogger(level=LogLevel.DEBUG)
        lg.add_backend(storage)
        lg.on_epoch_start(0)
        if many:
            assert lg.on_batch_end_many(np.arange(n), loss=loss, metrics={"accuracy": acc}) == n
        else:
            for i in range(n):
                lg.on_batch_end(i, loss=float(loss[i]), metrics={"accuracy": float(acc[i])})
        lg.close()
        stores.append(storage.read_debug())
    strip = lambda events: [{k: v for k, v in e.items() if k != "timestamp"} for e in events]
    assert len(stores[0]) == n and strip(stores[0]) == strip(stores[1])
    lg = TrainingLogger(level=LogLevel.DEBUG)
    import pytest

    with pytest.raises(ValueError, match="values for"):
        lg.on_batch_end_many(np.arange(3), loss=np.ones(2))
    with pytest.raises(ValueError):
        lg.on_batch_end_many(np.arange(4).reshape(2, 2))
    with pytest.raises(ValueError):
        lg.on_batch_end_many(np.array([-1, 0]))
    lg.close()


def test_backends_at_construction_and_context_manager(tmp_path):
    storage = TieredStorage(base_dir=str(tmp_path / "a"), mode="new")
    dashboard = DashboardExporter(path=str(tmp_path / "d.html"))
    with TrainingLogger(level=LogLevel.BASIC, backends=[storage, dashboard]) as lg:
        assert lg.level == LogLevel.BASIC
        lg.on_train_start(total_epochs=1, total_samples=10, batch_size=5)
        lg.on_epoch_start(0)
        lg.on_epoch_end(0, metrics={"loss": 0.3})
        lg.on_train_end(final_metrics={"loss": 0.3})
        assert dashboard.save().endswith("d.html")
    (start, *_rest) = storage.read_basic()
    assert start["event_type"] == "train_start"
    assert start["data"]["total_samples"] == 10 and start["data"]["batch_size"] == 5
    assert storage.summary()["basic"]["events"] == 4
    import pytest

    with pytest.raises(TypeError, match="add_backend takes"):
        TrainingLogger().add_backend(object())


def test_every_metric_name_reaches_storage_intact(tmp_path):
    # Names are shared between events up to a cap (4096 names of up to 64 bytes); names past
    # the cap, long names and unusual characters must still be written exactly.
    storage = TieredStorage(base_dir=str(tmp_path), mode="new")
    lg = TrainingLogger(level=LogLevel.DEBUG)
    lg.add_backend(storage)
    names = [f"metric_{i}" for i in range(5000)] + ["x" * 65, "ünïcödé ✓", "a\"b\\c", ""]
    for i in range(0, len(names), 500):
        lg.on_batch_end(i, metrics={n: float(j) for j, n in enumerate(names[i : i + 500])})
    lg.on_batch_end(99, metrics={"metric_1": 1.5, "x" * 65: 2.5})
    lg.close()
    written = [e["data"]["metrics"] for e in storage.read_debug() if e["event_type"] == "batch_end"]
    assert [list(m) for m in written[:-1]] == [names[i : i + 500] for i in range(0, len(names), 500)]
    assert written[-1] == {"metric_1": 1.5, "x" * 65: 2.5}


def test_batch_end_forms_write_the_same_metrics(tmp_path):
    # The common form takes a positional native fast path with metrics carried inline when
    # they are a few floats; more metrics, other values, `epoch=` and extra keywords take
    # the general path. Every form must record the same metrics.
    storage = TieredStorage(base_dir=str(tmp_path), mode="new")
    lg = TrainingLogger(level=LogLevel.DEBUG)
    lg.add_backend(storage)
    lg.on_epoch_start(0)
    small = {"accuracy": 0.9, "lr": 0.01}
    big = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "n": 7, "phase": "warmup", "nan": float("nan")}
    lg.on_batch_end(0, loss=0.5, metrics=small)
    lg.on_batch_end(1, loss=0.5, metrics=big)
    lg.on_batch_end(2, epoch=0, loss=0.5, metrics=small)
    lg.on_batch_end(3, loss=0.5, metrics=small, note="extra")
    lg.on_batch_end(4)
    lg.close()
    events = [e for e in storage.read_debug() if e["event_type"] == "batch_end"]
    assert [e["batch"] for e in events] == [0, 1, 2, 3, 4]
    assert all(e["epoch"] == 0 for e in events)
    m = [e["data"]["metrics"] for e in events]
    assert m[0] == m[2] == m[3] == {"accuracy": 0.9, "lr": 0.01, "loss": 0.5}
    assert list(m[1]) == ["a", "b", "c", "d", "n", "phase", "nan", "loss"]
    assert m[1]["n"] == 7 and m[1]["phase"] == "warmup" and m[1]["nan"] != m[1]["nan"]
    assert m[4] == {}
    assert events[3]["data"]["note"] == "extra"


def test_batch_end_rejects_bad_arguments_at_every_level():
    import pytest

    for level in (LogLevel.BASIC, LogLevel.DEBUG):
        lg = TrainingLogger(level=level)
        with pytest.raises(TypeError, match="expected a dict"):
            lg.on_batch_end(0, metrics=[0.5])
        with pytest.raises(TypeError):
            lg.on_batch_end(0, loss="low")
        with pytest.raises(ValueError, match="batch"):
            lg.on_batch_end(-1, loss=0.5)
        with pytest.raises(TypeError):
            lg.on_batch_end()
        lg.close()
