"""Every Python snippet of SEED.md runs against `observatory` with only its import lines
changed (`from neurogebra.logging.X import A` -> `from observatory import A`)."""

import json
import os
import re

import numpy as np
import pytest

from seed_snippets import SNIPPETS

IMPORT = re.compile(r"^from neurogebra\.logging\.[a-z_]+ import (.+)$", re.M)


def port(snippet):
    """The snippet with its neurogebra imports pointed at observatory; nothing else changes.
    The full example's model builder import points at the test's stand-in (`seed_support`),
    since building models is not what observatory provides."""
    out = IMPORT.sub(r"from observatory import \1", snippet)
    out = out.replace(
        "from neurogebra.builders.model_builder import ModelBuilder",
        "from seed_support import ModelBuilder",
    )
    assert "neurogebra" not in out, out
    changed = [
        (a, b) for a, b in zip(snippet.splitlines(), out.splitlines()) if a != b
    ]
    assert all(a.startswith("from ") and b.startswith("from ") for a, b in changed)
    return out


def preamble():
    """The names the snippets leave to the reader (data, losses, counts)."""
    rng = np.random.default_rng(0)
    x_train = rng.standard_normal((64, 8))
    return {
        "np": np,
        "normal_activations": np.abs(rng.standard_normal((32, 16))).astype(np.float32) + 0.1,
        "dead_activations": np.zeros((32, 16), np.float32),
        "epochs": 3,
        "batches": [(x_train[i : i + 16], None) for i in range(0, 64, 16)],
        "current_loss": 0.5,
        "train_loss": 0.45,
        "val_loss": 0.5,
        "num_batches": 4,
        "batch_loss": 0.4,
        "batch_acc": 0.8,
        "grad_norm_0": 0.05,
        "grad_norm_1": 0.03,
        "X_train": x_train,
        "loss": 0.42,
    }


@pytest.fixture
def namespace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return preamble()


def run(i, ns):
    exec(compile(port(SNIPPETS[i]), f"SEED.md snippet {i}", "exec"), ns)


def test_the_seed_has_fourteen_python_snippets():
    assert len(SNIPPETS) == 14


def test_adaptive_usage_and_custom_thresholds(namespace, capsys):
    run(0, namespace)
    summary = namespace["adaptive"].get_anomaly_summary()
    assert isinstance(summary["total_anomalies"], int)
    run(1, namespace)
    assert namespace["adaptive"].get_anomaly_summary()["total_anomalies"] == 0
    assert "total_anomalies" in capsys.readouterr().out


def test_health_warnings_usage_and_warning_object(namespace, capsys):
    run(2, namespace)
    summary = namespace["warnings_engine"].get_summary()
    assert summary["batches_checked"] == 3 * 4
    assert summary["epochs_checked"] == 3
    assert "total_warnings" in capsys.readouterr().out


def test_health_warning_constructor_keeps_its_fields(namespace):
    from observatory import HealthWarning

    namespace["HealthWarning"] = HealthWarning
    w = eval(port(SNIPPETS[3]), namespace)
    assert (w.rule_name, w.severity, w.layer_name, w.epoch, w.batch) == (
        "dead_relu",
        "warning",
        "dense_0",
        5,
        10,
    )
    assert w.recommendations[0].startswith("Use LeakyReLU")


def test_epoch_summaries(namespace, capsys):
    run(4, namespace)
    out = capsys.readouterr().out
    assert "══ Epoch 2 Summary (4 batches) ══" in out
    run(5, namespace)
    out = capsys.readouterr().out.split()
    assert float(out[0]) == pytest.approx(0.4) and float(out[1]) == 0.0
    assert len(namespace["all_summaries"]) == 3


def test_tiered_storage_and_reading(namespace, capsys):
    run(6, namespace)
    assert os.path.exists("training_logs/basic.log")
    run(7, namespace)
    assert namespace["basic_events"] == [] and namespace["health_events"] == []
    assert "'total_events': 0" in capsys.readouterr().out


def test_dashboard_and_bridges(namespace):
    run(8, namespace)
    assert os.path.getsize("training_logs/dashboard.html") > 1000
    run(9, namespace)
    assert any(f.startswith("events.out.tfevents") for f in os.listdir("tb_logs"))
    run(10, namespace)
    assert any(d.startswith("offline-run-") for d in os.listdir("wandb"))


def test_fingerprint_and_serialisation(namespace, capsys):
    run(11, namespace)
    assert "Training Fingerprint" in capsys.readouterr().out
    run(12, namespace)
    assert namespace["fp2"] == namespace["fingerprint"]
    with open("fingerprint.json") as f:
        saved = json.load(f)
    assert saved["dataset"]["shape"] == [64, 8]


def test_full_integration_example(namespace, capsys):
    run(13, namespace)
    out = capsys.readouterr().out
    assert "Anomalies detected: " in out and "Health warnings: " in out
    assert out.count("Summary (4 batches)") == 20
    assert os.path.getsize("logs/dash.html") > 1000
    basic = [json.loads(line) for line in open("logs/basic.log")]
    assert [e["event_type"] for e in basic].count("epoch_end") == 20


def test_readme_and_guide_examples_run(tmp_path, monkeypatch, capsys):
    """The Python examples of README.md and docs/python.md run as printed."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..")
    monkeypatch.chdir(tmp_path)
    for doc in ("README.md", os.path.join("docs", "python.md")):
        with open(os.path.join(root, doc), encoding="utf-8") as f:
            blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
        assert blocks, doc
        for block in blocks:
            exec(compile(block, doc, "exec"), {})
    out = capsys.readouterr().out
    assert out.count("critical NaN/Inf detected in loss!") == 2
