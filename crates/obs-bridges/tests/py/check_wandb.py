"""Reads a W&B offline run directory with wandb's own tools and prints what they saw.

Usage: python check_wandb.py <wandb executable> <run dir>

Prints one JSON object with:
  "summary":  `wandb leet inspect --summary --json <run dir>` (wandb's Go reader: run state,
              config, summary, tags, last step),
  "records":  `wandb leet inspect --json <run dir>`, one object per record,
  "stderr":   what leet printed on stderr (it reports corrupt chunks there, exit code 0),
  "protobuf": every record decoded with wandb's own `wandb_internal_pb2.Record`, after
              checking the file header and the CRC-32 of every chunk in this script.
The assertions live in the Rust test that runs this script.
"""

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from google.protobuf.json_format import MessageToDict
from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)


def read_records(path):
    data = Path(path).read_bytes()
    if data[:7] != HEADER:
        raise SystemExit(f"bad header {data[:7]!r}")
    pos, records, pending = 7, [], None
    while pos < len(data):
        room = BLOCK - pos % BLOCK
        if room < 7:
            pos += room
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        if len(chunk) != length:
            raise SystemExit(f"truncated chunk at {pos}")
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise SystemExit(f"checksum mismatch at {pos}")
        pos += 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
            pending = None
        else:
            raise SystemExit(f"unexpected chunk type {kind} at {pos}")
    if pending is not None:
        raise SystemExit("record cut off at end of file")
    out = []
    for raw in records:
        rec = pb.Record()
        rec.ParseFromString(raw)
        record = MessageToDict(rec, preserving_proto_field_name=True)
        if rec.HasField("run"):
            # MessageToDict prints timestamps as RFC 3339 text; give the exact seconds too.
            start = rec.run.start_time
            record["start_time_unix"] = start.seconds + start.nanos / 1e9
        out.append(record)
    return out


def leet(wandb, *args):
    """Starts `wandb leet inspect` with no network use (offline, no error reporting)."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_ERROR_REPORTING="false", WANDB_SILENT="true")
    return subprocess.Popen(
        [wandb, "leet", "inspect", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc):
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{proc.args} failed ({proc.returncode}): {err}")
    return out, err


def main(wandb, run_dir):
    # Both readers run at once: each starts a Python CLI and the Go core, which is slow.
    summary_proc = leet(wandb, "--summary", "--json", run_dir)
    records_proc = leet(wandb, "--json", run_dir)
    (log,) = Path(run_dir).glob("run-*.wandb")
    decoded = read_records(log)
    summary, err1 = finish(summary_proc)
    records, err2 = finish(records_proc)
    out = {
        "summary": json.loads(summary),
        "records": [json.loads(line) for line in records.splitlines() if line.strip()],
        "stderr": err1 + err2,
        "protobuf": decoded,
    }
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
