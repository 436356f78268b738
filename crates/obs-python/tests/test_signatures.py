"""Signature parity with the reference (neurogebra 2.5.11).

`reference_signatures.json` was recorded from `pip install neurogebra==2.5.11` with
`inspect.signature` (parameter names and kinds of every public method); installing the
reference here would pull scipy, matplotlib and sympy into CI, so the test reads the record.
`benches/python/peer.py`, which installs the reference, re-checks against the live package.
"""

import inspect
import json
import os

import pytest

import observatory

HERE = os.path.dirname(__file__)
with open(os.path.join(HERE, "reference_signatures.json")) as f:
    REFERENCE = json.load(f)

# Reference methods that observatory does not provide, each for a reason.
OMITTED = {
    # In-memory event lists: observatory streams events to backends instead of keeping them
    # (read them back with TieredStorage.read_*).
    ("TrainingLogger", "get_event_log"),
    ("TrainingLogger", "get_events_by_type"),
    ("TrainingLogger", "clear"),
    # Python callbacks would run on the logger's background thread under the GIL.
    ("TrainingLogger", "register_callback"),
    # The reference's dataclass constructor: fingerprints are made by capture() (or read back
    # by from_dict()), never field by field.
    ("TrainingFingerprint", "__init__"),
}
# The reference's backends receive events through handle_* methods; observatory's backends
# are Rust objects on the logger's background thread.
HANDLERS = ("handle_",)


def params(obj):
    sig = inspect.signature(obj)
    return [(p.name, p.kind.name) for p in sig.parameters.values() if p.name not in ("self", "cls")]


CASES = [
    (cls, method, ref)
    for cls, methods in REFERENCE.items()
    for method, ref in methods.items()
    if (cls, method) not in OMITTED and not method.startswith(HANDLERS)
]


@pytest.mark.parametrize("cls,method,ref", CASES, ids=[f"{c}.{m}" for c, m, _ in CASES])
def test_same_parameters_as_the_reference(cls, method, ref):
    ours_cls = getattr(observatory, cls)
    target = ours_cls if method == "__init__" else getattr(ours_cls, method)
    if isinstance(inspect.getattr_static(ours_cls, method, None), property) or not callable(target):
        pytest.fail(f"{cls}.{method} is an attribute here, a method in the reference")
    ours = params(target)
    names = {n: k for n, k in ours}
    ref_kinds = {n: k for n, k in ref}
    for name, kind in ref:
        if kind == "VAR_KEYWORD":
            assert any(k == "VAR_KEYWORD" for _, k in ours), f"{cls}.{method} takes no **kwargs: {ours}"
        elif kind == "VAR_POSITIONAL":
            continue
        elif "VAR_KEYWORD" in ref_kinds.values() and name not in names:
            # The reference's **kwargs methods (AdaptiveLogger) accept any keyword.
            assert any(k == "VAR_KEYWORD" for _, k in ours)
        else:
            assert name in names, f"{cls}.{method} lacks {name!r}: ours {ours}, reference {ref}"
            assert names[name] == kind, (
                f"{cls}.{method}({name}) is {names[name]} here, {kind} in the reference"
            )
    # Positional parameters come in the reference's order.
    positional = [n for n, k in ref if k == "POSITIONAL_OR_KEYWORD"]
    ours_positional = [n for n, k in ours if k == "POSITIONAL_OR_KEYWORD" and n in positional]
    assert ours_positional == positional


def test_log_levels_match():
    assert [observatory.LogLevel.SILENT, observatory.LogLevel.BASIC, observatory.LogLevel.DETAILED,
            observatory.LogLevel.EXPERT, observatory.LogLevel.DEBUG] == sorted(
        [observatory.LogLevel.DEBUG, observatory.LogLevel.EXPERT, observatory.LogLevel.DETAILED,
         observatory.LogLevel.BASIC, observatory.LogLevel.SILENT])
    assert int(observatory.LogLevel.EXPERT) == 3


def test_docstrings_are_real():
    for name in observatory.__all__:
        obj = getattr(observatory, name)
        if name.startswith("__") or name == "LogLevel":
            continue
        assert obj.__doc__ and len(obj.__doc__) > 40, name
    assert "output_data" in observatory.TrainingLogger.__doc__


def test_defaults_read_like_the_reference():
    sig = inspect.signature(observatory.TieredStorage)
    assert sig.parameters["base_dir"].default == "./training_logs"
    assert sig.parameters["buffer_size"].default == 50
    assert inspect.signature(observatory.DashboardExporter).parameters["path"].default == "training_logs/dashboard.html"
    assert inspect.signature(observatory.TensorBoardBridge).parameters["log_dir"].default == "./tb_logs"
