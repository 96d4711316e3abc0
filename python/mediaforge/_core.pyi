"""Type stubs for the private Rust extension `mediaforge._core`."""

import os
from typing import Any, Iterator

__version__: str

class ArrowBatch:
    """An Arrow record batch; pass it to `pyarrow.record_batch()`."""

    @property
    def num_rows(self) -> int: ...
    def __arrow_c_schema__(self, requested_schema: object | None = None) -> object: ...
    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]: ...

class Scanner:
    """A running scan; iterate or `poll` for `(kind, payload)` events."""

    def __init__(
        self,
        roots: list[bytes],
        previous: object | None = None,
        *,
        hash: bool = True,
        threads: int = 0,
        excludes: list[str] = ...,
        ignore_files: bool = True,
        include_hidden: bool = True,
        follow_symlinks: bool = False,
        one_file_system: bool = False,
        batch_rows: int = 245_760,
        flush_seconds: float = 2.0,
        previous_later: bool = False,
        skip: list[bytes] = ...,
        skip_ids: list[tuple[int, int]] = ...,
    ) -> None: ...
    def set_previous(self, previous: object | None = None, expected_rows: int = 0) -> None: ...
    def __iter__(self) -> Iterator[tuple[str, Any]]: ...
    def __next__(self) -> tuple[str, Any]: ...
    def poll(self, timeout: float) -> tuple[str, Any] | None: ...
    def progress(self) -> dict[str, Any]: ...
    def close(self) -> None: ...

def hash_file(path: bytes, threads: int = 0) -> str: ...
def hash_bytes(data: bytes) -> str: ...
def search_words(query: str) -> list[tuple[str, str, str | None, bool]]:
    """A search query's words as the index reads them: (as typed, value, filter key or None,
    whether it excludes: `-word`)."""
def classify(name: bytes, head: bytes | None = None) -> tuple[str, str]: ...
def image_hashes(gray: bytes, width: int, height: int) -> tuple[int, int]:
    """(pHash, dHash) of a grey image of width x height bytes."""

def jpeg_damage(paths: list[bytes]) -> list[str | None]: ...
def fine_hash(gray: bytes, width: int, height: int) -> bytes:
    """The finer 256-bit pHash (32 bytes) of a grey image of width x height bytes."""

def near_pairs(hashes: bytes, radius: int, brute: bool = False) -> ArrowBatch:
    """Pairs (a, b, distance), a < b, of little-endian u64 hashes within `radius` bits."""

def similar_groups(hashes: bytes, radius: int, fine: bytes | None = None, known: bytes | None = None,
                   fine_radius: int = 256) -> tuple[ArrowBatch, int]:
    """Members (index, group, leader, distance) of near-duplicate groups, and the pair count;
    pairs whose finer hashes (32 bytes each, `known` 1 where one is) lie more than
    `fine_radius` bits apart are none."""

def exact_funnel(files: Any, threads: int = 0) -> tuple[ArrowBatch, dict[str, int]]:
    """Verdicts (index, blake3, verdict, error) for an Arrow stream of files (path_bytes, size,
    mtime_ns, dev, inode, blake3), reading by size, 4 KiB ends, then whole files; and counts."""

def audio_fingerprint(pcm: bytes) -> bytes:
    """Little-endian u32 words for mono float32 PCM at 11,025 Hz; empty if short or silent."""

def audio_matches(fingerprints: list[bytes], durations: list[float], max_ber: float) -> ArrowBatch:
    """Pairs (a, b, ber), a < b, of tracks within the duration guard and `max_ber` bit errors."""

def durations_agree(a: float, b: float) -> bool:
    """Whether two track lengths (seconds) pass the duration guard of `audio_matches`:
    within 2 % of the longer, or 1 s."""


class SearchIndex:
    """A full-text search index in a folder (created when missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None: ...
    def upsert(self, docs: Any, deletes: list[str] = ...) -> int:
        """Replace the docs of `docs` (an object with `__arrow_c_stream__`: utf8 media_id, name,
        path, tags and collections joined by "\\n", meta, kind, ext; int32 or int64 year, nullable)
        and delete `deletes`, in one commit. Returns the number of docs added."""
    def clear(self) -> None: ...
    def search(self, query: str, limit: int = 20, restrict: list[str] | None = None) -> ArrowBatch:
        """Hits best first: an Arrow batch (media_id utf8, score float32, year int32 nullable)."""
    def num_docs(self) -> int: ...
