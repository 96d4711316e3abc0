#!/usr/bin/env bash
# The README's first command: set everything up, then scan the folders given (or, with
# none, a sample library made with real encoders) into the catalog and print a summary.
set -euo pipefail
here="$PWD"  # folders given as relative paths are the caller's, not the repository's
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/setup.sh
cd "$here"
if [ "$#" -eq 0 ]; then
    sample="${MEDIAFORGE_SAMPLE_DIR:-$repo/.cache/sample-library}"
    echo "no folder given: making a sample library in $sample" >&2
    # Exit 8: a file of the sample's name holds other bytes (one an earlier release's
    # encoders made, say); it is kept, named on stderr, and scanned with the rest.
    mediaforge sample "$sample" >/dev/null || [ "$?" -eq 8 ]
    set -- "$sample"
fi
mediaforge scan "$@"
mediaforge stats
