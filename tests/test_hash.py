"""BLAKE3 digests: `_core.hash_file` and the catalog's `blake3` column agree with the
reference `blake3` package at every size class the hasher treats differently (read into
a buffer, memory-mapped, hashed in parallel, hashed in several 64 MiB windows)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import do_scan, files_by_path, write_bytes_path
from mediaforge import _core
from mediaforge.errors import MediaForgeError, PathNotFoundError

KIB, MIB = 1024, 1024 * 1024
# Below, at and above each threshold of rust/core/src/hash.rs (16 KiB mmap, 4 MiB
# parallel, 64 MiB window), of rust/core/src/lanes.rs (up to 64 KiB, files are hashed
# together, one per SIMD lane) and of rust/core/src/scan.rs (below 1 MiB, the walker
# hashes a file as soon as it has listed its folder; from 1 MiB on, the hash phase does).
SIZES = [
    0, 1, 16 * KIB - 1, 16 * KIB, 16 * KIB + 1, 64 * KIB, 64 * KIB + 1,
    1 * MIB - 1, 1 * MIB, 4 * MIB - 1, 4 * MIB, 5 * MIB + 12_345,
]


def reference(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def reference_file(path: bytes) -> str:
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update_mmap(os.fsdecode(path))
    return h.hexdigest()


def pattern(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.fixture(scope="module")
def sized_files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[bytes, bytes]]:
    root = tmp_path_factory.mktemp("sizes")
    out = {}
    for n in SIZES:
        data = pattern(n, n)
        p = os.fsencode(root / f"f{n}.bin")
        write_bytes_path(p, data)
        out[n] = (p, data)
    return out


@pytest.mark.parametrize("size", SIZES)
def test_hash_file_matches_reference(sized_files: dict[int, tuple[bytes, bytes]], size: int) -> None:
    path, data = sized_files[size]
    assert _core.hash_file(path) == reference(data)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_count_does_not_change_the_digest(sized_files: dict[int, tuple[bytes, bytes]], threads: int) -> None:
    path, data = sized_files[5 * MIB + 12_345]
    assert _core.hash_file(path, threads) == reference(data)


def test_catalog_digests_match_reference_at_every_size(tmp_path: Path, catalog_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    expected = {}
    for n in SIZES:
        data = pattern(n, n + 1)
        p = os.fsencode(lib / f"size-{n}.dat")
        write_bytes_path(p, data)
        expected[p] = reference(data)
    summary = do_scan(catalog_path, lib)
    assert summary.hashed_files == len(SIZES)
    assert summary.hashed_bytes == sum(SIZES)
    got = {p: r["blake3"] for p, r in files_by_path(catalog_path).items()}
    assert got == expected


def test_a_folder_of_many_small_files_hashed_side_by_side_matches_reference(tmp_path: Path, catalog_path: Path) -> None:
    # Small files are hashed in batches, a block of a different file in each SIMD lane:
    # lengths at every block (64 B) and chunk (1 KiB) edge, and random ones, in one folder
    # of more files than a batch holds, so that lanes mix lengths and batches end mid-folder.
    rng = random.Random(7)
    edges = [n + d for n in (64, 1024, 2048, 3072, 4096, 8192, 16384, 32768, 65536) for d in (-1, 0, 1)]
    sizes = [0, 1, 2, 63] + edges + [rng.randrange(0, 70 * KIB) for _ in range(600)]
    lib = tmp_path / "lib"
    lib.mkdir()
    expected = {}
    for i, n in enumerate(sizes):
        data = pattern(n, 1000 + i)
        p = os.fsencode(lib / f"small-{i:04d}.dat")
        write_bytes_path(p, data)
        expected[p] = reference(data)
    summary = do_scan(catalog_path, lib)
    assert summary.hashed_files == len(sizes)
    got = {p: r["blake3"] for p, r in files_by_path(catalog_path).items()}
    assert got == expected


def test_multi_window_file_with_data_at_the_window_edges(tmp_path: Path, catalog_path: Path) -> None:
    """A file over 64 MiB is hashed window by window with a stability check in between;
    content right at the window boundary and at the end must count."""
    lib = tmp_path / "lib"
    lib.mkdir()
    p = os.fsencode(lib / "big.mov")
    window = 64 * MIB
    size = window + 4 * MIB + 7
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, size)  # sparse, so the test writes only a few KiB
        for off, n in ((0, 4096), (window - 3000, 6000), (size - 5000, 5000)):
            os.pwrite(fd, pattern(n, off), off)
    finally:
        os.close(fd)
    want = reference_file(p)
    assert _core.hash_file(p) == want
    do_scan(catalog_path, lib)
    assert files_by_path(catalog_path)[p]["blake3"] == want


def test_hash_file_takes_non_utf8_paths(tmp_path: Path) -> None:
    p = os.path.join(os.fsencode(tmp_path), b"\xff\xfe caf\xe9\n.raw")
    write_bytes_path(p, b"raw bytes")
    assert _core.hash_file(p) == reference(b"raw bytes")


def test_hash_file_of_missing_path_is_file_not_found(tmp_path: Path) -> None:
    missing = os.fsencode(tmp_path / "nope.jpg")
    with pytest.raises(PathNotFoundError) as e:
        _core.hash_file(missing)
    assert isinstance(e.value, FileNotFoundError)
    assert "nope.jpg" in str(e.value)


def test_hash_file_of_a_folder_is_a_mediaforge_error(tmp_path: Path) -> None:
    with pytest.raises(MediaForgeError):
        _core.hash_file(os.fsencode(tmp_path))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=2 * KIB), st.integers(16 * KIB - 64, 80 * KIB).map(lambda n: pattern(n, n))))
def test_hash_file_equals_reference_for_any_content(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = os.fsencode(tmp_path_factory.getbasetemp() / "hypothesis-hash.bin")
    write_bytes_path(p, data)
    first = _core.hash_file(p)
    assert first == reference(data)
    assert _core.hash_file(p) == first  # deterministic
