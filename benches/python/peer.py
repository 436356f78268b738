"""Side-by-side benchmark: neurogebra 2.5.11 (the Python reference) against observatory on
identical workloads, in one run, printing each ratio.

Run it with both packages installed in one virtualenv (`benches/python/run.sh` makes one
under target/ and builds observatory's release wheel into it):

    python benches/python/peer.py [--quick]

Workloads (the issue's): `on_layer_forward` of a (256, 4096) float32 activation at EXPERT,
`check_batch` with a loss and 4 layers' gradient norms, `record_batch`, 100k events into tiered
storage (100k `on_batch_end` calls at DEBUG with the storage as backend; observatory also with
`on_batch_end_many`, the same events in one call; timed from opening the storage to its
close, the temporary directory's creation and removal excluded), and fingerprinting a 256 MiB float64
dataset. Each figure is the best of several repeats (the machine is shared); targets are
printed next to the ratios. The script also re-checks the signature record used by the test
suite (crates/obs-python/tests/reference_signatures.json) against the live reference.
"""

import argparse
import gc
import inspect
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import observatory as obs
from neurogebra.logging import logger as ng_logger
from neurogebra.logging.epoch_summary import EpochSummarizer as NgSummarizer
from neurogebra.logging.fingerprint import TrainingFingerprint as NgFingerprint
from neurogebra.logging.health_warnings import AutoHealthWarnings as NgHealth
from neurogebra.logging.tiered_storage import TieredStorage as NgStorage

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def best(fn, repeats):
    """Best wall time of `repeats` calls of fn() (each call does a whole workload)."""
    times = []
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def per_call(fn, n, repeats):
    def loop():
        for _ in range(n):
            fn()

    fn()
    return best(loop, repeats) / n


def forward(quick):
    a = np.random.default_rng(0).standard_normal((256, 4096)).astype(np.float32)
    ng = ng_logger.TrainingLogger(level=ng_logger.LogLevel.EXPERT)
    ours = obs.TrainingLogger(level=obs.LogLevel.EXPERT)
    n = 5 if quick else 20

    def ng_call():
        ng.on_layer_forward(0, "dense_0", output_data=a)

    def ours_call():
        ours.on_layer_forward(0, "dense_0", output_data=a, activation="relu")

    r = per_call(ng_call, n, 3), per_call(ours_call, n * 10, 3)
    ours.close()
    return r


def check_batch(quick):
    grads = {"dense_0": 0.05, "dense_1": 0.03, "dense_2": 0.02, "dense_3": 0.01}
    n = 2000 if quick else 10000
    out = []
    for engine in (NgHealth(), obs.AutoHealthWarnings()):
        i = [0]

        def call(engine=engine, i=i):
            i[0] += 1
            engine.check_batch(epoch=0, batch=i[0], loss=0.5, gradient_norms=grads)

        out.append(per_call(call, n, 3))
    return tuple(out)


def record_batch(quick):
    grads = {"dense_0": 0.05, "dense_1": 0.03, "dense_2": 0.02, "dense_3": 0.01}
    metrics = {"loss": 0.5, "accuracy": 0.9}
    n = 5000 if quick else 20000
    out = []
    for s in (NgSummarizer(), obs.EpochSummarizer()):
        out.append(per_call(lambda s=s: s.record_batch(0, metrics=metrics, gradient_norms=grads), n, 3))
    return tuple(out)


def storage(quick):
    n = 20_000 if quick else 100_000
    repeats = 2 if quick else 3

    def run(make_logger, make_storage, many=False):
        # Timed: opening the storage, the events, flush, close. Not timed: making and removing
        # the temporary directory (removing 22 MB of logs took 4-5 ms, a tenth of
        # observatory's whole run, and is no part of logging).
        def once():
            gc.collect()
            d = tempfile.mkdtemp(prefix="peer-storage-")
            try:
                t = time.perf_counter()
                st = make_storage(d)
                lg = make_logger()
                lg.add_backend(st)
                if many:
                    lg.on_batch_end_many(np.arange(n), loss=np.full(n, 0.5), metrics={"accuracy": np.full(n, 0.9)})
                else:
                    for k in range(n):
                        lg.on_batch_end(k, loss=0.5, metrics={"accuracy": 0.9})
                st.flush()
                st.close()
                got = st.summary()["total_events"]
                elapsed = time.perf_counter() - t
                assert got >= n, (got, n)
                return elapsed
            finally:
                shutil.rmtree(d, ignore_errors=True)

        return n / min(once() for _ in range(repeats))

    ng = run(lambda: ng_logger.TrainingLogger(level=ng_logger.LogLevel.DEBUG), lambda d: NgStorage(base_dir=d))
    ours = run(lambda: obs.TrainingLogger(level=obs.LogLevel.DEBUG), lambda d: obs.TieredStorage(base_dir=d))
    many = run(lambda: obs.TrainingLogger(level=obs.LogLevel.DEBUG), lambda d: obs.TieredStorage(base_dir=d), many=True)
    return ng, ours, many


def hashing(quick):
    mib = 32 if quick else 256
    x = np.random.default_rng(0).standard_normal(mib * 1024 * 1024 // 8).reshape(-1, 64)
    repeats = 2 if quick else 3
    ng = best(lambda: NgFingerprint.capture(dataset=x), repeats)
    ours = best(lambda: obs.TrainingFingerprint.capture(dataset=x), repeats)
    return mib, ng, ours


def check_signatures():
    """The test suite's record of the reference's signatures still matches the package."""
    with open(os.path.join(ROOT, "crates", "obs-python", "tests", "reference_signatures.json")) as f:
        recorded = json.load(f)
    import importlib

    modules = {
        "TrainingLogger": "neurogebra.logging.logger",
        "AdaptiveLogger": "neurogebra.logging.adaptive",
        "AnomalyConfig": "neurogebra.logging.adaptive",
        "AutoHealthWarnings": "neurogebra.logging.health_warnings",
        "WarningConfig": "neurogebra.logging.health_warnings",
        "HealthWarning": "neurogebra.logging.health_warnings",
        "EpochSummarizer": "neurogebra.logging.epoch_summary",
        "TieredStorage": "neurogebra.logging.tiered_storage",
        "DashboardExporter": "neurogebra.logging.dashboard",
        "TensorBoardBridge": "neurogebra.logging.dashboard",
        "WandBBridge": "neurogebra.logging.dashboard",
        "TrainingFingerprint": "neurogebra.logging.fingerprint",
    }
    bad = []
    for cls, methods in recorded.items():
        live = getattr(importlib.import_module(modules[cls]), cls)
        for method, params in methods.items():
            f = getattr(live, method)
            got = [[p.name, p.kind.name] for p in inspect.signature(f).parameters.values() if p.name not in ("self", "cls")]
            if got != params:
                bad.append(f"{cls}.{method}")
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    args = ap.parse_args()
    import importlib.metadata as md

    print(f"neurogebra {md.version('neurogebra')} vs observatory {obs.__version__}; "
          f"Python {sys.version.split()[0]}, numpy {np.__version__}")
    bad = check_signatures()
    print("reference signatures:", "match the test record" if not bad else f"CHANGED: {bad}")
    rows = []
    ng, ours = forward(args.quick)
    rows.append(("on_layer_forward (256x4096 f32)", f"{ng*1e3:.3f} ms", f"{ours*1e3:.3f} ms", ng / ours, 20))
    ng, ours = check_batch(args.quick)
    rows.append(("check_batch (loss + 4 layers)", f"{ng*1e6:.2f} us", f"{ours*1e6:.2f} us", ng / ours, 10))
    ng, ours = record_batch(args.quick)
    rows.append(("record_batch (2 metrics + 4 norms)", f"{ng*1e6:.2f} us", f"{ours*1e6:.2f} us", ng / ours, None))
    ng, ours, many = storage(args.quick)
    rows.append(("storage, on_batch_end per call", f"{ng/1e3:.0f}k ev/s", f"{ours/1e3:.0f}k ev/s", ours / ng, 20))
    rows.append(("storage, on_batch_end_many", f"{ng/1e3:.0f}k ev/s", f"{many/1e3:.0f}k ev/s", many / ng, 20))
    mib, ng, ours = hashing(args.quick)
    rows.append((f"fingerprint {mib} MiB f64", f"{mib/ng:.0f} MiB/s", f"{mib/ours:.0f} MiB/s", ng / ours, 3))
    print(f"{'workload':38} {'neurogebra':>14} {'observatory':>14} {'ratio':>8}  target")
    for name, a, b, ratio, target in rows:
        verdict = "" if target is None else (f">= {target}x  " + ("met" if ratio >= target else "NOT MET"))
        print(f"{name:38} {a:>14} {b:>14} {ratio:>7.1f}x  {verdict}")


if __name__ == "__main__":
    main()
