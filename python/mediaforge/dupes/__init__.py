"""Duplicates: exact copies from the catalog's BLAKE3, and near-duplicate pictures from
perceptual hashes searched in the Rust core."""

from __future__ import annotations

from .find import DEFAULT_RADIUS, exact_groups, similar_groups, similar_videos

__all__ = ["DEFAULT_RADIUS", "exact_groups", "similar_groups", "similar_videos"]
