#!/usr/bin/env bash
# The README's second command: set everything up, then run every test
# (Rust unit tests, then pytest end to end on real files).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
echo "== cargo test (rust/core)" >&2
cargo test -p mediaforge-core --lib --quiet
echo "== pytest" >&2
python -m pytest "$@"
