"""Scanning folders into the catalog.

Names are imported on first use: `ScanConfig` and `Walk` come without DuckDB or pyarrow,
so a command can start walking before it loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .engine import ScanProgress, ScanSummary, scan
    from .launch import ScanConfig, Walk

__getattr__ = lazy_exports(__name__, globals(), {
    "ScanConfig": "launch", "Walk": "launch", "ScanProgress": "engine", "ScanSummary": "engine", "scan": "engine"})

__all__ = ["ScanConfig", "ScanProgress", "ScanSummary", "Walk", "scan"]
