"""Reads a TensorBoard log directory with TensorBoard's own loaders and prints what they saw.

Usage: python check_tensorboard.py <run dir>

Prints one JSON object: the file version, every scalar, text and histogram series as
EventAccumulator returns them (size_guidance 0: nothing sampled away), and the tags each plugin
sees through the plugin accumulator (the path TensorBoard's UI uses). Non-finite floats are
printed as the strings "NaN", "Infinity", "-Infinity" so that the output is strict JSON. The
assertions live in the Rust test that runs this script.
"""

import json
import math
import sys

from tensorboard.backend.event_processing import plugin_event_accumulator as pea
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

KEEP_ALL = {"scalars": 0, "tensors": 0, "histograms": 0, "images": 0, "audio": 0}


def num(x):
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def main(logdir):
    ea = EventAccumulator(logdir, size_guidance=KEEP_ALL)
    ea.Reload()
    tags = ea.Tags()
    out = {"file_version": ea.file_version, "scalars": {}, "texts": {}, "histograms": {}}
    for tag in tags["scalars"]:
        out["scalars"][tag] = [[e.step, num(e.value)] for e in ea.Scalars(tag)]
    for tag in tags["tensors"]:
        texts = []
        for e in ea.Tensors(tag):
            strings = [s.decode("utf-8") for s in e.tensor_proto.string_val]
            texts.append([e.step, strings])
        out["texts"][tag] = texts
    for tag in tags["histograms"]:
        series = []
        for e in ea.Histograms(tag):
            h = e.histogram_value
            series.append(
                [
                    e.step,
                    {
                        "min": num(h.min),
                        "max": num(h.max),
                        "num": num(h.num),
                        "sum": num(h.sum),
                        "sum_squares": num(h.sum_squares),
                        "bucket_limit": [num(x) for x in h.bucket_limit],
                        "bucket": [num(x) for x in h.bucket],
                    },
                ]
            )
        out["histograms"][tag] = series
    plugins = pea.EventAccumulator(logdir, size_guidance=KEEP_ALL)
    plugins.Reload()
    out["plugins"] = {
        name: sorted(plugins.PluginTagToContent(name).keys())
        for name in ("scalars", "text", "histograms")
    }
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
