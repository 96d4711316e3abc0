"""Media metadata, thumbnails and near-duplicate fingerprints: PyAV for containers,
mutagen for audio tags, Pillow for images and EXIF, in a pool of worker processes with
a per-file timeout.

Names are imported on first use: the worker processes import only the readers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .engine import ExtractConfig, ExtractProgress, ExtractSummary, extract, fingerprint, make_thumbs

__getattr__ = lazy_exports(__name__, globals(), {n: "engine" for n in (
    "ExtractConfig", "ExtractProgress", "ExtractSummary", "extract", "fingerprint", "make_thumbs")})

__all__ = ["ExtractConfig", "ExtractProgress", "ExtractSummary", "extract", "fingerprint", "make_thumbs"]
