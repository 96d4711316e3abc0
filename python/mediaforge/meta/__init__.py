"""Media metadata and thumbnails: PyAV for containers, mutagen for audio tags, Pillow
for images and EXIF, in a pool of worker processes with a per-file timeout."""

from __future__ import annotations

from .engine import ExtractConfig, ExtractProgress, ExtractSummary, extract, make_thumbs

__all__ = ["ExtractConfig", "ExtractProgress", "ExtractSummary", "extract", "make_thumbs"]
