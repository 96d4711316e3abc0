"""Scanning folders into the catalog.

Names are imported on first use: `ScanConfig` and `Walk` come without DuckDB or pyarrow,
so a command can start walking before it loads them.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .engine import ScanProgress, ScanSummary, scan
    from .launch import ScanConfig, Walk

__getattr__ = lazy_exports(__name__, globals(), {
    "ScanConfig": "launch", "Walk": "launch", "ScanProgress": "engine", "ScanSummary": "engine", "scan": "engine"})

__all__ = ["ScanConfig", "ScanProgress", "ScanSummary", "Walk", "scan"]


class _Package(types.ModuleType):
    """`mediaforge.scan` names both this package and the function `mediaforge` exports.
    Importing the package (as the CLI does, to start walking early) makes it the value of
    `mediaforge.scan`, in place of the function; so calling the package scans too."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.scan(*args, **kwargs)


sys.modules[__name__].__class__ = _Package
