"""Duplicates: exact copies from the catalog's BLAKE3 (or the Rust core's funnel for
files not hashed yet), and near-duplicate pictures, videos and sound from perceptual
hashes and audio fingerprints searched in the Rust core."""

from __future__ import annotations

from .find import (DEFAULT_RADIUS, drop_colourless_pairs, exact_groups, hash_candidates, similar_audio,
                   similar_groups, similar_videos, still_videos, unhashed)

__all__ = ["DEFAULT_RADIUS", "drop_colourless_pairs", "exact_groups", "hash_candidates", "similar_audio",
           "similar_groups", "similar_videos", "still_videos", "unhashed"]
