"""Near-duplicate search at scale: `--hashes` random 64-bit hashes (10M by default, the
issue's upper size) with `--planted` near copies 1 to `--radius` bits apart; checks that
every planted pair is found and prints the time, the pairs and the peak memory.

    python benches/near_scale.py [--hashes 10000000] [--planted 10000] [--radius 8]

Prints only (bench_dupes.py reports the 1M case, with its brute-force comparison, in
docs/benchmarks.md); exits 1 if a planted pair is missed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import pyarrow as pa


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hashes", type=int, default=10_000_000)
    ap.add_argument("--planted", type=int, default=10_000)
    ap.add_argument("--radius", type=int, default=8)
    args = ap.parse_args()
    from mediaforge import _core

    rng = np.random.default_rng(42)
    hs = rng.integers(0, np.iinfo(np.uint64).max, size=args.hashes, dtype=np.uint64, endpoint=True)
    planted = []
    for k in range(args.planted):
        mask = np.uint64(0)
        for b in rng.choice(64, size=1 + k % args.radius, replace=False):
            mask |= np.uint64(1) << np.uint64(int(b))
        j = args.hashes - 1 - k
        hs[j] = hs[k] ^ mask
        planted.append((k, j))
    t = time.perf_counter()
    found = pa.record_batch(_core.near_pairs(hs.astype("<u8").tobytes(), args.radius))
    secs = time.perf_counter() - t
    got = set(zip(found.column("a").to_pylist(), found.column("b").to_pylist()))
    ok = all(p in got for p in planted)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.hashes:,} hashes, radius {args.radius}: {secs:.1f} s, {found.num_rows:,} pairs, "
          f"all {args.planted:,} planted found: {ok}, peak RSS {peak:,.0f} MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
