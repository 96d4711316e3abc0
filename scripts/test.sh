#!/usr/bin/env bash
# The README's second command: set everything up, then run every test
# (Rust unit tests, then pytest end to end on real files).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
# The reflink tests clone files on a small XFS image: they need mkfs.xfs (xfsprogs).
if ! command -v mkfs.xfs >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "== installing xfsprogs (for the reflink tests)" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xfsprogs >/dev/null \
        || echo "xfsprogs could not be installed; the reflink-on-XFS test will say so" >&2
fi
echo "== cargo test (rust/core)" >&2
# --release shares the dependencies the extension build just compiled (a debug build would
# compile tantivy and the rest a second time).
cargo test --release -p mediaforge-core --lib --quiet
echo "== pytest" >&2
# One process per core (pytest-xdist); `-n 0` among the arguments runs them in this one.
python -m pytest -n auto "$@"
