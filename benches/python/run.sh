#!/usr/bin/env bash
# Runs benches/python/peer.py: a virtualenv under target/ with neurogebra 2.5.11 from PyPI and
# observatory's release wheel (maturin), then the side-by-side benchmark. Arguments go to
# peer.py (--quick for a smoke run).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/target/peer-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('neurogebra') == '2.5.11'" 2>/dev/null; then
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet neurogebra==2.5.11 numpy maturin==1.16.0
fi
wheels="$root/target/wheels/peer"
rm -rf "$wheels"
VIRTUAL_ENV="$venv" "$venv/bin/python" -m maturin build --release --quiet --interpreter "$venv/bin/python" \
    --manifest-path "$root/crates/obs-python/Cargo.toml" --out "$wheels"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$wheels"/*.whl
exec "$venv/bin/python" "$root/benches/python/peer.py" "$@"
