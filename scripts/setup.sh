#!/usr/bin/env bash
# Set up a fresh machine for MediaForge: a virtualenv in .venv, the Python dependencies,
# and the Rust extension built in release mode. Safe to run again: each step is skipped
# when its inputs have not changed. Sourced by scripts/run.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating virtualenv in .venv" >&2
    "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

# Python dependencies, re-installed only when pyproject.toml or these scripts change.
# The versions installed are those in scripts/constraints.txt (the ones last tested).
stamp="$VENV/.deps-$(cat pyproject.toml scripts/setup.sh scripts/pillow_simd.sh scripts/constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing Python dependencies" >&2
    python -m pip install -q --upgrade pip
    python -m pip install -q -c scripts/constraints.txt "maturin>=1.5,<2" \
        "duckdb>=1.1" "pyarrow>=18" "typer>=0.12,<0.29" "rich>=13" \
        "av>=12" "pillow>=10" "mutagen>=1.47" "rawpy>=0.19" "timezonefinder>=6" "tzdata" \
        "pytest>=8" "pytest-xdist>=3.5" "hypothesis>=6.100" "blake3>=0.4"
    # pillow-heif declares a dependency on Pillow; --no-deps keeps pip from putting
    # Pillow back over pillow-simd below.
    python -m pip install -q --no-deps -c scripts/constraints.txt "pillow-heif>=0.18"
    bash scripts/pillow_simd.sh || echo "setup: pillow-simd did not build; keeping Pillow (thumbnails still work, slower)" >&2
    rm -f "$VENV"/.deps-*
    touch "$stamp"
fi

# The Rust extension, release profile; cargo's own cache in target/ makes a rebuild cheap.
ext_stamp="$VENV/.ext-stamp"
newest=$(find rust Cargo.toml Cargo.lock pyproject.toml .cargo -newer "$ext_stamp" -print -quit 2>/dev/null || true)
if [ ! -f "$ext_stamp" ] || [ -n "$newest" ] || ! python -c "import mediaforge._core" 2>/dev/null; then
    echo "setup: building the Rust extension (release)" >&2
    # maturin also re-checks the Python dependencies through pip: keep only what matters.
    maturin develop --release --quiet 2>&1 \
        | grep -vE '^(Requirement already satisfied|Ignoring |📦|🔗|🐍|📡|✏️|🛠|📖|⚠️  Warning: .*PATH)' >&2 || true
    python -c "import mediaforge._core" || { echo "setup: the extension failed to build" >&2; exit 1; }
    touch "$ext_stamp"
fi
# Bytecode for the package, as pip makes for what it installs: every process (the CLI and
# each extraction worker) then loads it instead of compiling the source, also where
# PYTHONDONTWRITEBYTECODE keeps Python from caching it. Only changed files are compiled.
python -m compileall -q python/mediaforge >/dev/null || true
