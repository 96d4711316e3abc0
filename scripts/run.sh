#!/usr/bin/env bash
# The README's first command: set everything up, then scan the folders given (or, with
# none, a sample library made with real encoders) into the catalog and print a summary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
if [ "$#" -eq 0 ]; then
    sample="${MEDIAFORGE_SAMPLE_DIR:-$PWD/.cache/sample-library}"
    echo "no folder given: making a sample library in $sample" >&2
    mediaforge sample "$sample" >/dev/null
    set -- "$sample"
fi
mediaforge scan "$@"
mediaforge stats
