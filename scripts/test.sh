#!/usr/bin/env bash
# The README's second command: set everything up, then run every test
# (Rust unit tests, then pytest end to end on real files).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
# The reflink tests clone files on a small XFS image: they need mkfs.xfs (xfsprogs). The
# arithmetic-coded JPEG tests make theirs with jpegtran (libjpeg-turbo-progs).
need=()
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v jpegtran >/dev/null || need+=(libjpeg-turbo-progs)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${need[*]} (for the tests that use them)" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
        || echo "${need[*]} could not be installed; the tests that need them will say so" >&2
fi
echo "== cargo test (rust/core)" >&2
# --release shares the dependencies the extension build just compiled (a debug build would
# compile tantivy and the rest a second time).
cargo test --release -p mediaforge-core --lib --quiet
echo "== pytest" >&2
# One process per core (pytest-xdist); `-n 0` among the arguments runs them in this one.
# The slowest tests are listed at the end, to keep the whole run short.
python -m pytest -n auto --durations=25 "$@"
